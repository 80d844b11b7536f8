/* Stream routes of a generation: the listening addresses they need, matching a connection or a
 * datagram, and the plugins' access and end hooks (ip-restriction, limit-conn, prometheus, syslog). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "observe/metrics.h"
#include "observe/syslog.h"
#include "runtime/generation.h"
#include "runtime/server.h"
#include "stream/stream.h"
#include "stream/udp_proxy.h"

static sl_generation_t *build(const char *yaml)
{
    sl_config_t *cfg = NULL;
    sl_config_errors_t errs = {0};
    int rc = sl_config_load_buffer("gw.yaml", yaml, strlen(yaml), &cfg, &errs);
    char line[SL_CONFIG_ERROR_TEXT_MAX];
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "  | %s\n", sl_config_errors_text(&errs, i, line));
    sl_config_errors_free(&errs);
    assert_int_equal(rc, 0);
    sl_generation_t *g = sl_generation_create(cfg, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "  | %s\n", sl_config_errors_text(&errs, i, line));
    sl_config_errors_free(&errs);
    return g;
}

static sl_ip_t ip(const char *s)
{
    sl_ip_t out;
    assert_int_equal(sl_ip_parse(s, strlen(s), &out), 0);
    return out;
}

static const char *listens(const sl_generation_t *g, char *buf, size_t size)
{
    buf[0] = '\0';
    for (size_t i = 0; i < g->n_listens; i++) {
        size_t len = strlen(buf);
        sl_listen_kind_t k = g->listens[i].kind;
        const char *prefix = k == SL_LISTEN_HTTP ? "http:" : k == SL_LISTEN_STREAM_UDP ? "udp:" : "";
        snprintf(buf + len, size - len, "%s%s%s", i ? " " : "", prefix, g->listens[i].addr.text);
    }
    return buf;
}

#define SVC(name, routes)                                                                                              \
    "  - name: " name "\n    type: stream\n    upstream: {scheme: tcp, nodes: [\"127.0.0.1:1\", \"127.0.0.1:2\"]}\n"   \
    "    routes: " routes "\n"

static void test_listens(void **state)
{
    (void)state;
    char buf[512];
    sl_generation_t *g = build("gateway: {http: {listen: [\"127.0.0.1:8080\"]}}\nservices:\n" SVC(
        "a", "[{server_addr: 127.0.0.10, server_port: 9101}, {server_addr: 127.0.0.11, server_port: 9101},"
             " {server_addr: 127.0.0.10, server_port: 9101, remote_addr: 10.0.0.0/8}, {server_port: 9102},"
             " {server_addr: 127.0.0.5, server_port: 9103}, {server_addr: 10.0.0.0/8, server_port: 9103},"
             " {server_addr: \"::1\", server_port: 9104}, {server_addr: \"fd00::/8\", server_port: 9104}]"));
    /* Distinct addresses once each; a port where a route needs the wildcard has only that. */
    assert_string_equal(listens(g, buf, sizeof(buf)), "http:127.0.0.1:8080 127.0.0.10:9101 127.0.0.11:9101 "
                                                      "0.0.0.0:9102 0.0.0.0:9103 [::]:9104");
    assert_int_equal(g->n_stream_routes, 8);
    assert_int_equal(g->n_routes, 0); /* no HTTP routes: stream routes never reach the HTTP router */
    sl_generation_release(g);
}

static void test_match(void **state)
{
    (void)state;
    sl_generation_t *g = build(
        "services:\n" SVC("a", "[{name: ten-a, server_addr: 127.0.0.10, server_port: 9101, remote_addr: 127.0.0.2},"
                               " {name: ten, server_addr: 127.0.0.10, server_port: 9101},"
                               " {name: net, server_addr: 127.0.0.0/8, server_port: 9101},"
                               " {name: any, server_port: 9102, remote_addr: \"2001:db8::/32\"}]"));
    sl_ip_t ten = ip("127.0.0.10"), eleven = ip("127.0.0.11"), c2 = ip("127.0.0.2"), c3 = ip("127.0.0.3");
    assert_string_equal(sl_stream_match(g, &ten, 9101, &c2)->cfg->name, "ten-a"); /* the first match wins */
    assert_string_equal(sl_stream_match(g, &ten, 9101, &c3)->cfg->name, "ten");
    assert_string_equal(sl_stream_match(g, &eleven, 9101, &c2)->cfg->name, "net");
    sl_ip_t other = ip("10.0.0.1"), v6 = ip("2001:db8::7"), v6b = ip("2001:db9::7"), any6 = ip("::1");
    assert_null(sl_stream_match(g, &other, 9101, &c2));
    assert_null(sl_stream_match(g, &ten, 9103, &c2));
    assert_string_equal(sl_stream_match(g, &any6, 9102, &v6)->cfg->name, "any");
    assert_null(sl_stream_match(g, &any6, 9102, &v6b));
    assert_null(sl_stream_match(g, &ten, 9102, &c2));
    /* Whatever the client: the route that says whether a PROXY protocol header comes first. */
    assert_string_equal(sl_stream_match_listener(g, &ten, 9101)->cfg->name, "ten-a");
    assert_string_equal(sl_stream_match_listener(g, &eleven, 9101)->cfg->name, "net");
    assert_string_equal(sl_stream_match_listener(g, &any6, 9102)->cfg->name, "any");
    assert_null(sl_stream_match_listener(g, &other, 9101));
    sl_generation_release(g);
}

#define UDP_SVC(name, routes)                                                                                          \
    "  - name: " name "\n    type: stream\n    upstream: {scheme: udp, nodes: [\"127.0.0.1:1\"]}\n"                    \
    "    routes: " routes "\n"

static void test_udp_routes(void **state)
{
    (void)state;
    char buf[512];
    const char *yaml = "gateway: {http: {listen: [\"127.0.0.1:8080\"]}}\nservices:\n" SVC(
        "tcp", "[{name: t, server_addr: 127.0.0.10, server_port: 53}]")
        UDP_SVC("dns", "[{name: ten, server_addr: 127.0.0.10, server_port: 53, remote_addr: 127.0.0.2},"
                       " {name: any, server_port: 53}, {name: eleven, server_addr: 127.0.0.11, server_port: 54}]")
            UDP_SVC("other", "[{name: v6, server_addr: \"::1\", server_port: 54}]");
    sl_generation_t *g = build(yaml);
    /* TCP and UDP ports are apart: port 53 is one address over TCP and the wildcard over UDP. */
    assert_string_equal(listens(g, buf, sizeof(buf)),
                        "http:127.0.0.1:8080 127.0.0.10:53 udp:0.0.0.0:53 udp:127.0.0.11:54 udp:[::1]:54");
    sl_ip_t ten = ip("127.0.0.10"), eleven = ip("127.0.0.11"), c2 = ip("127.0.0.2"), c3 = ip("127.0.0.3");
    assert_string_equal(sl_stream_match(g, &ten, 53, &c2)->cfg->name, "t");
    assert_string_equal(sl_stream_match_udp(g, &ten, 53, &c2)->cfg->name, "ten");
    assert_string_equal(sl_stream_match_udp(g, &ten, 53, &c3)->cfg->name, "any");
    assert_string_equal(sl_stream_match_udp(g, &eleven, 54, &c3)->cfg->name, "eleven");
    assert_null(sl_stream_match(g, &eleven, 54, &c3));
    assert_null(sl_stream_match_udp(g, &ten, 54, &c3));
    /* max_sessions counts per service, across the generations that have it. */
    sl_generation_t *g2 = build(yaml);
    assert_null(g->stream_routes[0].udp_quota);
    assert_non_null(g->stream_routes[1].udp_quota);
    assert_ptr_equal(g->stream_routes[1].udp_quota, g->stream_routes[3].udp_quota);
    assert_ptr_equal(g->stream_routes[1].udp_quota, g2->stream_routes[1].udp_quota);
    assert_ptr_not_equal(g->stream_routes[1].udp_quota, g->stream_routes[4].udp_quota);
    sl_generation_release(g);
    sl_generation_release(g2);
    /* The last generation gone, a new one starts a new count. */
    g = build(yaml);
    assert_non_null(g->stream_routes[1].udp_quota);
    sl_generation_release(g);
}

static sl_stream_peer_t peer(const char *client, const char *server)
{
    sl_stream_peer_t p = {.client = ip(client), .client_port = 40000, .server = ip(server), .server_port = 9101};
    return p;
}

/* Ends a session on r as the TCP side does. */
static void end(sl_stream_route_t *r, sl_stream_peer_t *p, sl_stream_plugin_state_t *st, int status)
{
    sl_stream_facts_t f = {.route = r,
                           .peer = p,
                           .client_ip = "",
                           .server_ip = "",
                           .client_rx = 10,
                           .upstream_tx = 10,
                           .duration_s = 0.5,
                           .status = status,
                           .state = st};
    sl_stream_session_end(&f);
}

static void test_ip_restriction(void **state)
{
    (void)state;
    sl_generation_t *g = build("services:\n" SVC(
        "a", "[{name: w, server_port: 9101, plugins: {ip-restriction: {whitelist: [127.0.0.2, \"10.0.0.0/8\"]}}},"
             " {name: b, server_port: 9102, plugins: {ip-restriction: {blacklist: [127.0.0.2]}}}]"));
    sl_stream_route_t *w = &g->stream_routes[0], *b = &g->stream_routes[1];
    uint64_t delay;
    sl_stream_plugin_state_t st = {0};
    sl_stream_peer_t p2 = peer("127.0.0.2", "127.0.0.1"), p3 = peer("127.0.0.3", "127.0.0.1"),
                     p10 = peer("10.9.8.7", "127.0.0.1");
    assert_int_equal(sl_stream_plugins_access(w, &p2, &st, 0, &delay), 0);
    assert_int_equal(sl_stream_plugins_access(w, &p10, &st, 0, &delay), 0);
    assert_int_equal(sl_stream_plugins_access(w, &p3, &st, 0, &delay), SL_STREAM_FORBIDDEN);
    assert_int_equal(sl_stream_plugins_access(b, &p2, &st, 0, &delay), SL_STREAM_FORBIDDEN);
    assert_int_equal(sl_stream_plugins_access(b, &p3, &st, 0, &delay), 0);
    sl_generation_release(g);
}

static const char limit_yaml[] =
    "services:\n" SVC("lim", "[{name: r, server_port: 9101, plugins: {prometheus: {}, limit-conn: {conn: 2, burst: 1, "
                             "default_conn_delay: 250ms}}},"
                             " {name: s, server_port: 9102, plugins: {limit-conn: {conn: 1, burst: 0, "
                             "default_conn_delay: 1s, key: server_addr}}}]");

static void test_limit_conn(void **state)
{
    (void)state;
    sl_generation_t *g = build(limit_yaml);
    sl_stream_route_t *r = &g->stream_routes[0];
    sl_stream_peer_t p = peer("127.0.0.2", "127.0.0.1"), q = peer("127.0.0.3", "127.0.0.1");
    sl_stream_plugin_state_t st[5] = {0};
    uint64_t delay;
    /* Up to conn: through; inside the burst: delayed; beyond: refused. */
    assert_int_equal(sl_stream_plugins_access(r, &p, &st[0], 0, &delay), 0);
    assert_int_equal(delay, 0);
    assert_int_equal(sl_stream_plugins_access(r, &p, &st[1], 0, &delay), 0);
    assert_int_equal(delay, 0);
    assert_int_equal(sl_stream_plugins_access(r, &p, &st[2], 0, &delay), 0);
    assert_int_equal(delay, 250);
    assert_int_equal(sl_stream_plugins_access(r, &p, &st[3], 0, &delay), SL_STREAM_UNAVAILABLE);
    end(r, &p, &st[3], SL_STREAM_UNAVAILABLE);
    /* Another client has its own count. */
    assert_int_equal(sl_stream_plugins_access(r, &q, &st[4], 0, &delay), 0);
    assert_int_equal(delay, 0);
    end(r, &q, &st[4], SL_STREAM_OK);

    /* A reload that keeps the route keeps the count: the old generation's sessions still hold
     * their places. */
    sl_generation_t *g2 = build(limit_yaml);
    sl_stream_route_t *r2 = &g2->stream_routes[0];
    sl_stream_plugin_state_t st2 = {0};
    assert_int_equal(sl_stream_plugins_access(r2, &p, &st2, 1, &delay), SL_STREAM_UNAVAILABLE);
    end(r2, &p, &st2, SL_STREAM_UNAVAILABLE);
    end(r, &p, &st[0], SL_STREAM_OK);
    assert_int_equal(sl_stream_plugins_access(r2, &p, &st2, 1, &delay), 0);
    assert_int_equal(delay, 250);
    /* Ending twice gives the place back once. */
    end(r2, &p, &st2, SL_STREAM_OK);
    end(r2, &p, &st2, SL_STREAM_OK);
    assert_int_equal(sl_stream_plugins_access(r2, &p, &st2, 1, &delay), 0);
    assert_int_equal(delay, 250);
    end(r2, &p, &st2, SL_STREAM_OK);
    end(r, &p, &st[1], SL_STREAM_OK);
    end(r, &p, &st[2], SL_STREAM_OK);
    sl_generation_release(g);

    /* Keyed on the server address: clients share it. */
    sl_stream_route_t *s = &g2->stream_routes[1];
    sl_stream_peer_t a = peer("127.0.0.2", "127.0.0.20"), b = peer("127.0.0.3", "127.0.0.20"),
                     c = peer("127.0.0.3", "127.0.0.21");
    sl_stream_plugin_state_t sa = {0}, sb = {0}, sc = {0};
    assert_int_equal(sl_stream_plugins_access(s, &a, &sa, 0, &delay), 0);
    assert_int_equal(sl_stream_plugins_access(s, &b, &sb, 0, &delay), SL_STREAM_UNAVAILABLE);
    assert_int_equal(sl_stream_plugins_access(s, &c, &sc, 0, &delay), 0);
    end(s, &a, &sa, SL_STREAM_OK);
    end(s, &c, &sc, SL_STREAM_OK);

    /* prometheus saw every session of route r, in both generations. */
    const char *labels[] = {"lim", "r"};
    sl_metric_family_t *total =
        sl_metrics_family(sl_metrics.registry, "sluice_stream_connections_total", "", SL_METRIC_COUNTER,
                          (const char *const[]){"service", "route"}, 2, NULL, 0);
    sl_metric_family_t *active =
        sl_metrics_family(sl_metrics.registry, "sluice_stream_connections_active", "", SL_METRIC_GAUGE,
                          (const char *const[]){"service", "route"}, 2, NULL, 0);
    assert_int_equal(sl_series_value(sl_metrics_series(total, labels)), 8);
    assert_int_equal(sl_series_value(sl_metrics_series(active, labels)), 0);
    const char *refused[] = {"lim", "r", "503"};
    sl_metric_family_t *sessions =
        sl_metrics_family(sl_metrics.registry, "sluice_stream_sessions_total", "", SL_METRIC_COUNTER,
                          (const char *const[]){"service", "route", "status"}, 3, NULL, 0);
    assert_int_equal(sl_series_value(sl_metrics_series(sessions, refused)), 2);
    sl_generation_release(g2);
}

static const char *const route_labels[] = {"service", "route"};
static const char *const status_labels[] = {"service", "route", "status"};
static const char *const syslog_labels[] = {"destination", "result"};

/* The value of a series, looking its family up again as it was registered. */
static int64_t series_value(const char *family, sl_metric_type_t type, const char *const *names, size_t n,
                            const char *const *labels)
{
    sl_metric_family_t *f = sl_metrics_family(sl_metrics.registry, family, "", type, names, n, NULL, 0);
    assert_non_null(f);
    return sl_series_value(sl_metrics_series(f, labels));
}

static int64_t syslog_count(const char *const *labels)
{
    return series_value("sluice_syslog_messages_total", SL_METRIC_COUNTER, syslog_labels, 2, labels);
}

/* A session that ends before its access (its PROXY protocol header was broken) is still a
 * connection of the route. */
static void test_prometheus_end_without_access(void **state)
{
    (void)state;
    sl_generation_t *g = build("services:\n" SVC("early", "[{name: r, server_port: 9101, plugins: {prometheus: {}}}]"));
    sl_stream_route_t *r = &g->stream_routes[0];
    sl_stream_peer_t p = peer("127.0.0.2", "127.0.0.1");
    sl_stream_plugin_state_t st = {0};
    end(r, &p, &st, SL_STREAM_BAD_CLIENT);
    end(r, &p, &st, SL_STREAM_BAD_CLIENT); /* counted once */
    const char *route[] = {"early", "r"}, *bad[] = {"early", "r", "400"};
    assert_int_equal(series_value("sluice_stream_connections_total", SL_METRIC_COUNTER, route_labels, 2, route), 1);
    assert_int_equal(series_value("sluice_stream_connections_active", SL_METRIC_GAUGE, route_labels, 2, route), 0);
    assert_int_equal(series_value("sluice_stream_sessions_total", SL_METRIC_COUNTER, status_labels, 3, bad), 2);
    sl_generation_release(g);
}

/* The syslog plugin: one RFC 5424 message per session, to a real UDP socket, and the sender's
 * counts in sluice_syslog_messages_total. */
static void test_syslog(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    unsigned port = ntohs(a.sin_port);

    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "services:\n" SVC("logged", "[{name: r, server_port: 9101, plugins: {syslog: {host: 127.0.0.1, port: %u, "
                                         "batch_max_size: 1}}}, {name: r2, server_port: 9102, plugins: {syslog: "
                                         "{host: 127.0.0.1, port: %u, batch_max_size: 1}}}]"),
             port, port);
    sl_generation_t *g = build(yaml);
    sl_stream_route_t *r = &g->stream_routes[0];
    assert_non_null(sl_chain_data(&r->chain, &sl_stream_syslog.m));
    assert_non_null(sl_chain_data(&g->stream_routes[1].chain, &sl_stream_syslog.m));

    sl_stream_peer_t p = {
        .client = ip("10.1.2.3"), .client_port = 40001, .server = ip("127.0.0.1"), .server_port = 9101};
    sl_stream_plugin_state_t st = {0};
    sl_stream_facts_t f = {.route = r,
                           .peer = &p,
                           .client_ip = "10.1.2.3",
                           .server_ip = "127.0.0.1",
                           .proxy_ip = "127.0.0.9",
                           .proxy_port = 50000,
                           .upstream = "127.0.0.1:1",
                           .client_rx = 11,
                           .client_tx = 22,
                           .upstream_rx = 33,
                           .upstream_tx = 44,
                           .duration_s = 1.25,
                           .status = SL_STREAM_BAD_GATEWAY,
                           .error = "upstream_reset",
                           .state = &st};
    sl_stream_session_end(&f);

    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 10000), 1);
    char msg[SL_SYSLOG_MAX_LEN + 1];
    ssize_t n = recv(fd, msg, sizeof(msg) - 1, 0);
    assert_true(n > 0);
    msg[n] = '\0';
    /* local0.warning, then the time, host and process id, which vary. */
    assert_true(!strncmp(msg, "<132>1 ", 7));
    char want_pid[40];
    snprintf(want_pid, sizeof(want_pid), " sluice %ld session [", (long)getpid());
    assert_non_null(strstr(msg, want_pid));
    assert_non_null(strstr(msg, "[session@32473 service=\"logged\" route=\"r\" client_addr=\"10.1.2.3\" "
                                "client_port=\"40001\" proxy_addr=\"127.0.0.9\" proxy_port=\"50000\" "
                                "server_addr=\"127.0.0.1\" server_port=\"9101\" upstream=\"127.0.0.1:1\" "
                                "bytes_from_client=\"11\" bytes_to_client=\"22\" bytes_from_upstream=\"33\" "
                                "bytes_to_upstream=\"44\" duration=\"1.250\" status=\"502\" "
                                "error=\"upstream_reset\"] 10.1.2.3:40001 -> 127.0.0.1:9101 -> 127.0.0.1:1: 502 "
                                "upstream_reset"));
    assert_int_equal(msg[n - 1], 't'); /* nothing after MSG */

    /* Both routes share the destination: one series, counted once. */
    char dest[64];
    snprintf(dest, sizeof(dest), "127.0.0.1:%u/udp", port);
    const char *sent[] = {dest, "sent"}, *dropped[] = {dest, "dropped"};
    for (int i = 0; i < 1000 && syslog_count(sent) < 1; i++) {
        sl_stream_syslog_metrics_update();
        usleep(10000);
    }
    assert_int_equal(syslog_count(sent), 1);
    assert_int_equal(syslog_count(dropped), 0);
    sl_stream_syslog_metrics_update();
    assert_int_equal(syslog_count(sent), 1);

    /* A reload keeps the destination's sender; a session of the old generation after it is
     * counted in the same series. */
    sl_generation_t *g2 = build(yaml);
    f.status = SL_STREAM_OK;
    f.error = NULL;
    f.proxy_ip = NULL;
    f.upstream = NULL;
    sl_stream_session_end(&f);
    sl_generation_release(g);
    assert_int_equal(poll(&pfd, 1, 10000), 1);
    n = recv(fd, msg, sizeof(msg) - 1, 0);
    assert_true(n > 0);
    msg[n] = '\0';
    assert_true(!strncmp(msg, "<134>1 ", 7)); /* local0.info */
    assert_non_null(strstr(msg, "client_port=\"40001\" server_addr=\"127.0.0.1\" server_port=\"9101\" upstream=\"\" "));
    assert_non_null(strstr(msg, "status=\"200\"] 10.1.2.3:40001 -> 127.0.0.1:9101 -> -: 200"));
    for (int i = 0; i < 1000 && syslog_count(sent) < 2; i++) {
        sl_stream_syslog_metrics_update();
        usleep(10000);
    }
    assert_int_equal(syslog_count(sent), 2);
    sl_generation_release(g2);
    sl_syslog_shutdown();
    close(fd);
}

int main(void)
{
    sl_server_metrics_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listens),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_udp_routes),
        cmocka_unit_test(test_ip_restriction),
        cmocka_unit_test(test_limit_conn),
        cmocka_unit_test(test_prometheus_end_without_access),
        cmocka_unit_test(test_syslog),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sl_metrics_destroy(sl_metrics.registry);
    return rc;
}
