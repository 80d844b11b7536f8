/* Configuration loader: valid files and defaults, then one test per class of error. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/log.h"

#include "base/buf.h"
#include "base/common.h"
#include "config/config.h"

static sl_config_errors_t errs;

#define POLICY_NAMES                                                                                                   \
    "ip_access, cors, local_rate_limit, path_rewrite, request_headers, timeout, retry, websocket, response_headers, "        \
    "cookie_rewrite"

/* Loads text under name; returns the config or NULL (errors in the global errs). */
static sl_config_t *load_as(const char *name, const char *text)
{
    sl_config_t *cfg = NULL;
    sl_config_errors_free(&errs);
    int rc = sl_config_load_buffer(name, text, strlen(text), &cfg, &errs);
    if (rc == 0) {
        assert_non_null(cfg);
        assert_int_equal(errs.n, 0);
    } else {
        assert_int_equal(rc, -1);
        assert_null(cfg);
        assert_true(errs.n > 0);
    }
    return cfg;
}

static sl_config_t *load(const char *text)
{
    return load_as("gw.yaml", text);
}

/* The text of error i of e, in a buffer the next call reuses. */
static const char *text_of(const sl_config_errors_t *e, size_t i)
{
    static char buf[SL_CONFIG_ERROR_TEXT_MAX];
    return sl_config_errors_text(e, i, buf);
}

static void dump_errors(void)
{
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "  | %s\n", text_of(&errs, i));
}

/* Asserts that one error line is exactly want. */
static void expect_error(const char *want)
{
    for (size_t i = 0; i < errs.n; i++)
        if (!strcmp(text_of(&errs, i), want)) return;
    dump_errors();
    fail_msg("missing error line: %s", want);
}

/* Asserts that one error line contains want. */
static void expect_error_part(const char *want)
{
    for (size_t i = 0; i < errs.n; i++)
        if (strstr(text_of(&errs, i), want)) return;
    dump_errors();
    fail_msg("no error line contains: %s", want);
}

static void expect_fail(const char *text, const char *want)
{
    sl_config_t *cfg = load(text);
    if (cfg) {
        sl_config_free(cfg);
        fail_msg("expected failure with: %s", want);
    }
    expect_error(want);
}

static int teardown(void **state)
{
    (void)state;
    sl_config_errors_free(&errs);
    return 0;
}

static void test_empty_is_defaults(void **state)
{
    (void)state;
    sl_config_t *cfg = load("");
    assert_non_null(cfg);
    const sl_gateway_cfg_t *g = &cfg->gateway;
    assert_string_equal(cfg->source, "gw.yaml");
    assert_int_equal(g->workers, 0);
    assert_int_equal(g->proxy_layers, 0);
    assert_int_equal(g->shutdown_timeout_ms, 30000);
    assert_int_equal(g->http.n_listen, 1);
    assert_string_equal(g->http.listen[0].text, "0.0.0.0:9080");
    assert_string_equal(g->http.listen[0].host, "0.0.0.0");
    assert_int_equal(g->http.listen[0].port, 9080);
    assert_int_equal(g->http.max_header_bytes, 32768);
    assert_int_equal(g->http.max_headers, 100);
    assert_int_equal(g->http.max_uri_bytes, 8192);
    assert_int_equal(g->http.header_timeout_ms, 10000);
    assert_int_equal(g->http.keepalive_timeout_ms, 60000);
    assert_int_equal(g->status.enabled, 1);
    assert_string_equal(g->status.listen.host, "127.0.0.1");
    assert_int_equal(g->status.listen.port, 9091);
    assert_string_equal(g->access_log.path, "stdout");
    assert_int_equal(g->access_log.fmt.format, SL_ALOG_JSON);
    assert_int_equal(g->access_log.fmt.buffer, 64 * 1024);
    assert_int_equal(g->access_log.fmt.flush_ms, 1000);
    assert_null(g->access_log.fmt.fields);
    assert_int_equal(g->log.level, SL_LOG_INFO);
    assert_int_equal(g->log.format, SL_LOG_TEXT);
    assert_int_equal(g->request_id.enabled, 1);
    assert_string_equal(g->request_id.header, "X-Request-Id");
    assert_int_equal(g->request_id.header_len, 12);
    assert_int_equal(g->request_id.format, SL_REQUEST_ID_UUID);
    assert_int_equal(g->request_id.incoming, SL_REQUEST_ID_KEEP);
    assert_int_equal(cfg->n_services, 0);
    sl_config_free(cfg);

    cfg = load("services: []\ngateway:\n");
    assert_non_null(cfg);
    assert_int_equal(cfg->n_services, 0);
    sl_config_free(cfg);
}

static const char full_yaml[] = "gateway:\n"
                                "  workers: 4\n"
                                "  proxy_layers: 1\n"
                                "  shutdown_timeout: 5s\n"
                                "  http:\n"
                                "    listen: [\"0.0.0.0:8080\", \"[::1]:8081\", \"localhost:8082\"]\n"
                                "    max_header_bytes: 16384\n"
                                "    max_headers: 50\n"
                                "    max_uri_bytes: 4096\n"
                                "    header_timeout: 500ms\n"
                                "    keepalive_timeout: 2m\n"
                                "  status: {listen: \"127.0.0.1:9999\"}\n"
                                "  access_log: {path: /var/log/sluice.log, format: json}\n"
                                "services:\n"
                                "  - name: users\n"
                                "    type: http\n"
                                "    upstream:\n"
                                "      scheme: http\n"
                                "      balance: round_robin\n"
                                "      nodes:\n"
                                "        - {address: 127.0.0.1:8081, weight: 3}\n"
                                "        - users-b.internal:8080\n"
                                "      timeouts: {connect: 1s, read: 1h}\n"
                                "      keepalive: {max_idle: 0}\n"
                                "      resolve_interval: 10\n"
                                "    routes:\n"
                                "      - name: list-users\n"
                                "        hosts: [\"API.Example.com\", \"*.example.org\"]\n"
                                "        paths: [\"/users\", \"/users/*\"]\n"
                                "        methods: [GET, POST]\n"
                                "        policies: {}\n"
                                "      - paths: [/hello]\n"
                                "        direct_response:\n"
                                "          status: 200\n"
                                "          headers: {Content-Type: text/plain}\n"
                                "          body: \"hi\\n\"\n";

static void test_full_config(void **state)
{
    (void)state;
    sl_config_t *cfg = load(full_yaml);
    if (!cfg) dump_errors();
    assert_non_null(cfg);
    const sl_gateway_cfg_t *g = &cfg->gateway;
    assert_int_equal(g->workers, 4);
    assert_int_equal(g->proxy_layers, 1);
    assert_int_equal(g->shutdown_timeout_ms, 5000);
    assert_int_equal(g->http.n_listen, 3);
    assert_string_equal(g->http.listen[1].text, "[::1]:8081");
    assert_string_equal(g->http.listen[1].host, "::1");
    assert_int_equal(g->http.listen[1].port, 8081);
    assert_int_equal(g->http.listen[1].is_ip, 1);
    /* localhost is the IPv4 loopback, as the listener binds it (sl_config_listen_addr). */
    assert_string_equal(g->http.listen[2].text, "localhost:8082");
    assert_string_equal(g->http.listen[2].host, "127.0.0.1");
    assert_int_equal(g->http.listen[2].is_ip, 1);
    assert_int_equal(g->http.max_header_bytes, 16384);
    assert_int_equal(g->http.max_headers, 50);
    assert_int_equal(g->http.max_uri_bytes, 4096);
    assert_int_equal(g->http.header_timeout_ms, 500);
    assert_int_equal(g->http.keepalive_timeout_ms, 120000);
    assert_int_equal(g->status.enabled, 1);
    assert_int_equal(g->status.listen.port, 9999);
    assert_string_equal(g->access_log.path, "/var/log/sluice.log");

    assert_int_equal(cfg->n_services, 1);
    const sl_service_cfg_t *s = &cfg->services[0];
    assert_string_equal(s->name, "users");
    assert_int_equal(s->type, SL_SERVICE_HTTP);
    assert_int_equal(s->line, 15);
    assert_int_equal(s->col, 5);
    assert_true(s->has_upstream);
    const sl_upstream_cfg_t *u = &s->upstream;
    assert_int_equal(u->scheme, SL_SCHEME_HTTP);
    assert_int_equal(u->balance, SL_BALANCE_ROUND_ROBIN);
    assert_int_equal(u->n_nodes, 2);
    assert_string_equal(u->nodes[0].addr.host, "127.0.0.1");
    assert_int_equal(u->nodes[0].addr.port, 8081);
    assert_int_equal(u->nodes[0].addr.is_ip, 1);
    assert_int_equal(u->nodes[0].weight, 3);
    assert_int_equal(u->nodes[0].line, 21);
    assert_string_equal(u->nodes[1].addr.host, "users-b.internal");
    assert_int_equal(u->nodes[1].addr.is_ip, 0);
    assert_int_equal(u->nodes[1].weight, 1);
    assert_int_equal(u->connect_timeout_ms, 1000);
    assert_int_equal(u->send_timeout_ms, 30000); /* default */
    assert_int_equal(u->read_timeout_ms, 3600000);
    assert_int_equal(u->keepalive_max_idle, 0);
    assert_int_equal(u->keepalive_idle_timeout_ms, 60000);
    assert_int_equal(u->resolve_interval_ms, 10000);

    assert_int_equal(s->n_routes, 2);
    const sl_route_cfg_t *r = &s->routes[0];
    assert_string_equal(r->name, "list-users");
    assert_int_equal(r->n_hosts, 2);
    assert_string_equal(r->hosts[0], "api.example.com");
    assert_string_equal(r->hosts[1], "*.example.org");
    assert_int_equal(r->n_paths, 2);
    assert_string_equal(r->paths[1], "/users/*");
    assert_int_equal(r->methods, SL_METHOD_GET | SL_METHOD_POST);
    assert_null(r->direct_response);
    r = &s->routes[1];
    assert_string_equal(r->name, "users-1");
    assert_int_equal(r->methods, 0);
    assert_int_equal(r->n_hosts, 0);
    assert_non_null(r->direct_response);
    assert_int_equal(r->direct_response->status, 200);
    assert_int_equal(r->direct_response->n_headers, 1);
    assert_string_equal(r->direct_response->headers[0].name, "Content-Type");
    assert_string_equal(r->direct_response->headers[0].value, "text/plain");
    assert_string_equal(r->direct_response->body, "hi\n");
    assert_int_equal(r->direct_response->body_len, 3);
    sl_config_free(cfg);
}

static void test_service_defaults_and_direct_only(void **state)
{
    (void)state;
    sl_config_t *cfg = load("services:\n"
                            "  - name: api\n"
                            "    upstream: {nodes: [\"10.0.0.1:80\"]}\n"
                            "    routes: [{paths: [/]}]\n"
                            "  - name: static\n"
                            "    routes: [{direct_response: {status: 404}}]\n"
                            "gateway: {status: false, workers: auto, http: {listen: \"127.0.0.1:8000\"}}\n");
    if (!cfg) dump_errors();
    assert_non_null(cfg);
    const sl_upstream_cfg_t *u = &cfg->services[0].upstream;
    assert_int_equal(u->connect_timeout_ms, 2000);
    assert_int_equal(u->send_timeout_ms, 30000);
    assert_int_equal(u->read_timeout_ms, 30000);
    assert_int_equal(u->keepalive_max_idle, 64);
    assert_int_equal(u->keepalive_idle_timeout_ms, 60000);
    assert_int_equal(u->resolve_interval_ms, 30000);
    assert_int_equal(u->nodes[0].weight, 1);
    assert_string_equal(cfg->services[0].routes[0].name, "api-0");
    assert_false(cfg->services[1].has_upstream);
    assert_string_equal(cfg->services[1].routes[0].name, "static-0");
    assert_null(cfg->services[1].routes[0].direct_response->body);
    assert_int_equal(cfg->gateway.status.enabled, 0);
    assert_int_equal(cfg->gateway.http.n_listen, 1);
    assert_int_equal(cfg->gateway.http.listen[0].port, 8000);
    sl_config_free(cfg);

    expect_fail("services:\n"
                "  - name: static\n"
                "    routes:\n"
                "      - {direct_response: {status: 204}}\n"
                "      - {name: api, paths: [/api]}\n",
                "gw.yaml:5:9: services[0].routes[1]: route 'api' has no direct_response and service has no upstream");
}

static void test_unknown_key_suggestion(void **state)
{
    (void)state;
    expect_fail("gateway:\n  htp: {}\n", "gw.yaml:2:3: gateway.htp: unknown key (did you mean 'http'?)");
    expect_fail("gateway:\n  http:\n    max_header_byte: 10\n",
                "gw.yaml:3:5: gateway.http.max_header_byte: unknown key (did you mean 'max_header_bytes'?)");
    expect_fail("servics: []\n", "gw.yaml:1:1: servics: unknown key (did you mean 'services'?)");
    /* Nothing close: the valid keys are listed instead. */
    expect_fail("gateway:\n  zzzzzzzzzz: 1\n",
                "gw.yaml:2:3: gateway.zzzzzzzzzz: unknown key (valid keys: workers, proxy_layers, shutdown_timeout, "
                "http, status, access_log, request_id, log)");
    expect_fail("gateway: {http: {}, http: {}}\n", "gw.yaml:1:21: gateway.http: duplicate key (first at line 1)");
}

static void test_out_of_range(void **state)
{
    (void)state;
    expect_fail("gateway:\n  proxy_layers: 17\n", "gw.yaml:2:17: gateway.proxy_layers: must be between 0 and 16");
    expect_fail("gateway: {http: {max_headers: 0}}\n",
                "gw.yaml:1:31: gateway.http.max_headers: must be between 1 and 1000");
    expect_fail("gateway: {workers: 65}\n",
                "gw.yaml:1:20: gateway.workers: must be 'auto' or an integer between 1 and 64");
    expect_fail("gateway: {http: {max_uri_bytes: lots}}\n",
                "gw.yaml:1:33: gateway.http.max_uri_bytes: expected an integer, got 'lots'");
    expect_fail("gateway: {http: {max_uri_bytes: 99999999999999999999999}}\n",
                "gw.yaml:1:33: gateway.http.max_uri_bytes: expected an integer, got '99999999999999999999999'");
    expect_fail("services:\n  - name: a\n    upstream: {nodes: [{address: \"1.2.3.4:80\", weight: 0}]}\n"
                "    routes: [{}]\n",
                "gw.yaml:3:56: services[0].upstream.nodes[0].weight: must be between 1 and 1000");
    expect_fail("services:\n  - name: a\n    routes: [{direct_response: {status: 99}}]\n",
                "gw.yaml:3:41: services[0].routes[0].direct_response.status: must be between 200 and 599");
    expect_fail("gateway: {http: [1]}\n", "gw.yaml:1:17: gateway.http: expected a map, got a list");
    expect_fail("services: {a: 1}\n", "gw.yaml:1:11: services: expected a list, got a map");
    expect_fail("gateway: {access_log: {path: [x]}}\n",
                "gw.yaml:1:30: gateway.access_log.path: expected a string, got a list");
}

static void test_bad_duration(void **state)
{
    (void)state;
    expect_fail("gateway:\n  shutdown_timeout: 10 seconds\n",
                "gw.yaml:2:21: gateway.shutdown_timeout: invalid duration '10 seconds' (expected e.g. 500ms, 10s, "
                "1m30s, 1.5h)");
    expect_fail("gateway: {http: {header_timeout: 0ms}}\n",
                "gw.yaml:1:34: gateway.http.header_timeout: must be between 1ms and 1h");
    expect_fail("gateway: {http: {header_timeout: -1s}}\n",
                "gw.yaml:1:34: gateway.http.header_timeout: invalid duration '-1s' (must not be negative)");
    expect_fail("gateway: {http: {header_timeout: 0.5ms}}\n",
                "gw.yaml:1:34: gateway.http.header_timeout: invalid duration '0.5ms' (the smallest step is 1ms)");
    expect_fail("gateway: {http: {header_timeout: 99999999999999999999h}}\n",
                "gw.yaml:1:34: gateway.http.header_timeout: must be between 1ms and 1h");
    expect_fail("gateway: {http: {header_timeout: 1h1m}}\n",
                "gw.yaml:1:34: gateway.http.header_timeout: must be between 1ms and 1h");
    static const char *const bad[] = {"1s30m", "1m1m", "1h 30m", "1.s", ".5s", "1d", "1.5.5s", "s", "1sm", "1mss"};
    char text[128], want[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "gateway: {shutdown_timeout: \"%s\"}\n", bad[i]);
        snprintf(want, sizeof(want),
                 "gw.yaml:1:29: gateway.shutdown_timeout: invalid duration '%s' (expected e.g. 500ms, 10s, 1m30s, 1.5h)",
                 bad[i]);
        expect_fail(text, want);
    }
}

/* One grammar for every duration: compound units largest first, decimals, a bare number of
 * seconds; the same in gateway, upstream, policy and stream plugin fields. */
static void test_duration_grammar(void **state)
{
    (void)state;
    sl_config_t *cfg = load("gateway:\n"
                            "  shutdown_timeout: 1m30s\n"
                            "  http: {header_timeout: 1.5s, keepalive_timeout: 0.25}\n"
                            "services:\n"
                            "  - name: a\n"
                            "    upstream:\n"
                            "      nodes: [127.0.0.1:1]\n"
                            "      timeouts: {connect: 250ms, read: 1h30m, send: 2h0m0.5s}\n"
                            "      health_check: {interval: 1.5m, timeout: 1s500ms}\n"
                            "    routes:\n"
                            "      - policies: {timeout: 1m30s, retry: {on: [5xx], per_try_timeout: 0.1}}\n"
                            "      - policies: {timeout: 5}\n"
                            "  - name: s\n"
                            "    type: stream\n"
                            "    upstream: {scheme: tcp, nodes: [127.0.0.1:1]}\n"
                            "    routes:\n"
                            "      - server_port: 9999\n"
                            "        plugins: {limit-conn: {conn: 1, burst: 1, default_conn_delay: 1m30s}}\n"
                            "      - server_port: 9998\n"
                            "        plugins: {limit-conn: {conn: 1, burst: 1, default_conn_delay: 0.1}}\n"
                            "      - server_port: 9997\n"
                            "        plugins: {limit-conn: {conn: 1, burst: 1, default_conn_delay: 1.5s}}\n");
    if (!cfg) dump_errors();
    assert_non_null(cfg);
    assert_int_equal(cfg->gateway.shutdown_timeout_ms, 90000);
    assert_int_equal(cfg->gateway.http.header_timeout_ms, 1500);
    assert_int_equal(cfg->gateway.http.keepalive_timeout_ms, 250);
    const sl_upstream_cfg_t *u = &cfg->services[0].upstream;
    assert_int_equal(u->connect_timeout_ms, 250);
    assert_int_equal(u->read_timeout_ms, 5400000);
    assert_int_equal(u->send_timeout_ms, 7200500);
    assert_int_equal(u->health_check.interval_ms, 90000);
    assert_int_equal(u->health_check.timeout_ms, 1500);
    assert_int_equal(cfg->services[0].routes[0].policies.timeout.ms, 90000);
    assert_int_equal(cfg->services[0].routes[0].policies.retry.per_try_timeout_ms, 100);
    assert_int_equal(cfg->services[0].routes[1].policies.timeout.ms, 5000);
    assert_int_equal(cfg->services[1].routes[0].stream.plugins.limit_conn.delay_ms, 90000);
    assert_int_equal(cfg->services[1].routes[1].stream.plugins.limit_conn.delay_ms, 100);
    assert_int_equal(cfg->services[1].routes[2].stream.plugins.limit_conn.delay_ms, 1500);
    sl_config_free(cfg);
    /* The same refusals in the hand-parsed fields as in the table-driven ones. */
    expect_fail("services:\n  - name: a\n    upstream: {nodes: [127.0.0.1:1]}\n"
                "    routes: [{policies: {timeout: -5s}}]\n",
                "gw.yaml:4:35: services[0].routes[0].policies.timeout: expected whole seconds (at least 1) or a duration "
                "such as 500ms, 5s, 1m30s (at most 24h)");
    expect_fail("services:\n  - name: s\n    type: stream\n    upstream: {scheme: tcp, nodes: [127.0.0.1:1]}\n"
                "    routes: [{server_port: 9, plugins: {limit-conn: {conn: 1, burst: 1, default_conn_delay: 1s1m}}}]\n",
                "gw.yaml:5:93: services[0].routes[0].plugins.limit-conn.default_conn_delay: invalid duration '1s1m' "
                "(expected e.g. 500ms, 10s, 1m30s, 1.5h)");
    expect_fail("services:\n  - name: s\n    type: stream\n    upstream: {scheme: tcp, nodes: [127.0.0.1:1]}\n"
                "    routes: [{server_port: 9, plugins: {limit-conn: {conn: 1, burst: 1, default_conn_delay: -0.1}}}]\n",
                "gw.yaml:5:93: services[0].routes[0].plugins.limit-conn.default_conn_delay: invalid duration '-0.1' "
                "(must not be negative)");
}

static void test_bad_address(void **state)
{
    (void)state;
    expect_fail("gateway: {status: {listen: \"127.0.0.1:0\"}}\n",
                "gw.yaml:1:28: gateway.status.listen: invalid port in '127.0.0.1:0' (must be between 1 and 65535)");
    expect_fail("gateway: {status: {listen: \"127.0.0.1\"}}\n",
                "gw.yaml:1:28: gateway.status.listen: invalid address '127.0.0.1' (expected host:port)");
    expect_fail("gateway: {status: {listen: \"::1:80\"}}\n",
                "gw.yaml:1:28: gateway.status.listen: invalid address '::1:80' (IPv6 addresses go in brackets, e.g. "
                "[::1]:8080)");
    expect_fail("gateway: {status: {listen: \"[::g]:80\"}}\n",
                "gw.yaml:1:28: gateway.status.listen: invalid IPv6 address in '[::g]:80'");
    expect_fail("gateway: {status: {listen: \"300.1.1.1:80\"}}\n",
                "gw.yaml:1:28: gateway.status.listen: invalid IPv4 address in '300.1.1.1:80'");
    expect_fail("gateway: {status: {listen: \"-bad-.example:80\"}}\n",
                "gw.yaml:1:28: gateway.status.listen: invalid host name in '-bad-.example:80'");
    expect_fail("gateway: {status: {listen: \":80\"}}\n",
                "gw.yaml:1:28: gateway.status.listen: invalid address ':80' (missing host)");
    expect_fail("gateway: {http: {listen: []}}\n", "gw.yaml:1:26: gateway.http.listen: must not be empty");
}

/* A listen address is an IP literal or localhost, read by the function the listener binds
 * with; another host name is refused at validation rather than at start-up. */
static void test_listen_addresses(void **state)
{
    (void)state;
    sl_config_t *cfg = load("gateway:\n  http: {listen: [\"LocalHost:8080\", \"[::1]:8080\"]}\n"
                            "  status: {listen: \"localhost:8081\"}\n");
    if (!cfg) dump_errors();
    assert_non_null(cfg);
    assert_string_equal(cfg->gateway.http.listen[0].host, "127.0.0.1");
    assert_string_equal(cfg->gateway.status.listen.host, "127.0.0.1");
    assert_string_equal(cfg->gateway.status.listen.text, "localhost:8081");
    struct sockaddr_storage ss;
    assert_int_equal(sl_config_listen_addr(&cfg->gateway.http.listen[1], &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    sl_config_free(cfg);
    sl_hostport_t hp = {.text = "localhost:80", .host = "localhost", .port = 80};
    assert_int_equal(sl_config_listen_addr(&hp, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), INADDR_LOOPBACK);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 80);
    hp.host = "example.com";
    assert_int_equal(sl_config_listen_addr(&hp, &ss), -EINVAL);

    expect_fail("gateway: {http: {listen: [\"gw.example.com:8080\"]}}\n",
                "gw.yaml:1:27: gateway.http.listen[0]: cannot listen on 'gw.example.com:8080': a listen address takes "
                "an IP address or localhost, not a host name (e.g. 0.0.0.0:8080, [::]:8080, 127.0.0.1:8080)");
    expect_fail("gateway: {http: {listen: \"myhost:8080\"}}\n",
                "gw.yaml:1:26: gateway.http.listen: cannot listen on 'myhost:8080': a listen address takes an IP "
                "address or localhost, not a host name (e.g. 0.0.0.0:8080, [::]:8080, 127.0.0.1:8080)");
    expect_fail("gateway: {status: {listen: \"localhost.localdomain:9091\"}}\n",
                "gw.yaml:1:28: gateway.status.listen: cannot listen on 'localhost.localdomain:9091': a listen address "
                "takes an IP address or localhost, not a host name (e.g. 0.0.0.0:9091, [::]:9091, 127.0.0.1:9091)");
    expect_fail("gateway: {http: {listen: [\"localhost:8080\", \"127.0.0.1:8080\"]}}\n",
                "gw.yaml:1:45: gateway.http.listen[1]: duplicate listen address '127.0.0.1:8080' (the same socket as "
                "'localhost:8080')");
    expect_fail("gateway: {http: {listen: [\"[::]:8080\", \"[0::0]:8080\"]}}\n",
                "gw.yaml:1:40: gateway.http.listen[1]: duplicate listen address '[0::0]:8080' (the same socket as "
                "'[::]:8080')");
    /* Stream routes listen on server_addr, which takes IP addresses only. */
    expect_fail("services:\n  - name: s\n    type: stream\n    upstream: {scheme: tcp, nodes: [127.0.0.1:1]}\n"
                "    routes: [{server_port: 9, server_addr: localhost}]\n",
                "gw.yaml:5:44: services[0].routes[0].server_addr: expected an IPv4 or IPv6 address or CIDR (127.0.0.10, "
                "10.0.0.0/8, 2001:db8::/32), got 'localhost'");
    /* An upstream node may still be a host name: it is resolved, not bound. */
    cfg = load("services:\n  - name: a\n    upstream: {nodes: [\"localhost:8080\", \"users.internal:80\"]}\n"
               "    routes: [{name: r}]\n");
    assert_non_null(cfg);
    assert_string_equal(cfg->services[0].upstream.nodes[0].addr.host, "localhost");
    sl_config_free(cfg);
}

static void test_routes_hosts_paths_methods(void **state)
{
    (void)state;
    const char *head = "services:\n  - name: s\n    upstream: {nodes: [\"a.b:1\"]}\n    routes:\n";
    char buf[512];
    snprintf(buf, sizeof(buf), "%s      - paths: [users]\n", head);
    expect_fail(buf, "gw.yaml:5:17: services[0].routes[0].paths[0]: must start with '/'");
    snprintf(buf, sizeof(buf), "%s      - paths: [/ok, \"/a/*/b\", \"/a*\"]\n", head);
    expect_fail(buf, "gw.yaml:5:22: services[0].routes[0].paths[1]: '*' is only allowed as the final \"/*\" of a "
                     "prefix");
    expect_error("gw.yaml:5:32: services[0].routes[0].paths[2]: '*' is only allowed as the final \"/*\" of a prefix");
    snprintf(buf, sizeof(buf), "%s      - hosts: [\"bad host\", \"*.\"]\n", head);
    expect_fail(buf, "gw.yaml:5:17: services[0].routes[0].hosts[0]: invalid host 'bad host' (expected a host name "
                     "like api.example.com or *.example.com)");
    expect_error_part("routes[0].hosts[1]: invalid host '*.'");
    snprintf(buf, sizeof(buf), "%s      - methods: [GET, get, FETCH]\n", head);
    expect_fail(buf, "gw.yaml:5:24: services[0].routes[0].methods[1]: unknown method 'get' (expected GET, HEAD, "
                     "POST, PUT, DELETE, PATCH, OPTIONS, CONNECT or TRACE)");
    expect_error_part("methods[2]: unknown method 'FETCH'");
    snprintf(buf, sizeof(buf), "%s      - policies: {retry: {attempts: 3}}\n", head);
    expect_fail(buf, "gw.yaml:5:27: services[0].routes[0].policies.retry.on: is required");
    snprintf(buf, sizeof(buf), "%s      - plugins: {prometheus: {}}\n", head);
    expect_fail(buf, "gw.yaml:5:9: services[0].routes[0].plugins: plugins are for stream routes; http routes use "
                     "'policies'");
    snprintf(buf, sizeof(buf), "%s      - direct_response: {status: 200, headers: {Content-Length: 3}}\n", head);
    expect_fail(buf, "gw.yaml:5:50: services[0].routes[0].direct_response.headers.Content-Length: is set by the "
                     "gateway from the body");
}

static void test_balancer_keys(void **state)
{
    (void)state;
    expect_fail("services:\n  - name: a\n    upstream: {balance: hash, hash: {on: header}, nodes: [\"h:1\"]}\n"
                "    routes: [{}]\n",
                "gw.yaml:3:37: services[0].upstream.hash: 'key' is required when hashing on a header, query "
                "parameter or cookie");
    expect_fail("services:\n  - name: a\n    upstream: {balance: cookie, nodes: [\"h:1\"]}\n    routes: [{}]\n",
                "gw.yaml:3:25: services[0].upstream.cookie: 'name' is required for balance: cookie");
    expect_fail("services:\n  - name: a\n    upstream: {hash: {on: ip}, nodes: [\"h:1\"]}\n    routes: [{}]\n",
                "gw.yaml:3:22: services[0].upstream.hash: only used with balance: hash");
    expect_fail("services:\n  - name: a\n    upstream: {balance: hash, hash: {on: body}, nodes: [\"h:1\"]}\n"
                "    routes: [{}]\n",
                "gw.yaml:3:42: services[0].upstream.hash.on: unknown value 'body' (expected one of: ip, header, query, "
                "cookie)");
    expect_fail("services:\n  - name: a\n    upstream: {nodes: [{address: \"h:1\", priority: 5000}]}\n"
                "    routes: [{}]\n",
                "gw.yaml:3:51: services[0].upstream.nodes[0].priority: must be between -1000 and 1000");
}

static void test_not_supported_yet(void **state)
{
    (void)state;
    expect_fail("services:\n  - name: a\n    upstream: {balance: fastest, nodes: [\"h:1\"]}\n    routes: [{}]\n",
                "gw.yaml:3:25: services[0].upstream.balance: unknown value 'fastest' (expected one of: random, "
                "round_robin, weighted, cookie, hash, least_conn, ewma)");
    expect_fail("services:\n  - name: a\n    upstream: {scheme: https, nodes: [\"h:1\"]}\n    routes: [{}]\n",
                "gw.yaml:3:24: services[0].upstream.scheme: scheme 'https' is not supported yet");
    expect_fail("gateway: {access_log: {format: text}}\n",
                "gw.yaml:1:32: gateway.access_log.format: unknown value 'text' (expected one of: json, combined)");
}

static void test_access_log_settings(void **state)
{
    (void)state;
    sl_config_t *cfg = load("gateway:\n  access_log:\n    path: /tmp/a.log\n    format: json\n    buffer: 256KiB\n"
                            "    flush: 250ms\n    fields: [time, path, user_agent, request_header.X-Tenant]\n");
    assert_non_null(cfg);
    const sl_access_format_t *f = &cfg->gateway.access_log.fmt;
    assert_int_equal(f->buffer, 256 * 1024);
    assert_int_equal(f->flush_ms, 250);
    assert_int_equal(f->n_fields, 4);
    assert_int_equal(f->fields[2].id, SL_AF_USER_AGENT);
    assert_int_equal(f->fields[3].id, SL_AF_REQUEST_HEADER);
    assert_string_equal(f->fields[3].key, "request_header.X-Tenant");
    assert_string_equal(f->fields[3].header, "x-tenant");
    assert_int_equal(f->fields[3].header_len, 8);
    sl_config_free(cfg);
    cfg = load("gateway: {access_log: {format: combined, flush: 0s}}\n");
    assert_non_null(cfg);
    assert_int_equal(cfg->gateway.access_log.fmt.format, SL_ALOG_COMBINED);
    assert_int_equal(cfg->gateway.access_log.fmt.flush_ms, 0);
    sl_config_free(cfg);

    expect_fail("gateway: {access_log: {fields: [path, colour]}}\n",
                "gw.yaml:1:39: gateway.access_log.fields[1]: unknown access log field 'colour' (expected one of: time, "
                "client, client_port, method, host, path, protocol, status, bytes_in, bytes_out, route, service, "
                "upstream, upstream_status, duration_ms, upstream_ms, error, retries, retry_stop, user_agent, referer, "
                "request_id, upstream_connect_ms, tags, request_header.NAME, response_header.NAME)");
    expect_fail("gateway: {access_log: {fields: [path, path]}}\n",
                "gw.yaml:1:39: gateway.access_log.fields[1]: field 'path' is listed twice");
    expect_fail("gateway: {access_log: {fields: [\"request_header.a b\"]}}\n",
                "gw.yaml:1:33: gateway.access_log.fields[0]: 'a b' is not a header name");
    expect_fail("gateway: {access_log: {fields: [request_header.]}}\n",
                "gw.yaml:1:33: gateway.access_log.fields[0]: unknown access log field 'request_header.' (expected one "
                "of: time, client, client_port, method, host, path, protocol, status, bytes_in, bytes_out, route, "
                "service, upstream, upstream_status, duration_ms, upstream_ms, error, retries, retry_stop, user_agent, "
                "referer, request_id, upstream_connect_ms, tags, request_header.NAME, response_header.NAME)");
    expect_fail("gateway: {access_log: {fields: []}}\n", "gw.yaml:1:32: gateway.access_log.fields: must not be empty");
    expect_fail("gateway: {access_log: {format: combined, fields: [path]}}\n",
                "gw.yaml:1:50: gateway.access_log.fields: applies to format json only (combined has fixed fields)");
    expect_fail("gateway: {access_log: {buffer: 1KiB}}\n",
                "gw.yaml:1:32: gateway.access_log.buffer: must be at least 4KiB");
    expect_fail("gateway: {access_log: {buffer: 8MiB}}\n",
                "gw.yaml:1:32: gateway.access_log.buffer: must be at most 4194304 bytes");
    expect_fail("gateway: {access_log: {flush: 2m}}\n",
                "gw.yaml:1:31: gateway.access_log.flush: must be between 0ms and 1m");
}

static void test_request_id_settings(void **state)
{
    (void)state;
    sl_config_t *cfg = load("gateway: {request_id: {header: X-Trace, format: hex, incoming: replace}}\n"
                            "services:\n  - name: a\n    upstream: {nodes: [\"h:1\"]}\n"
                            "    routes: [{name: r1, request_id: false}, {name: r2}, {name: r3, request_id: {header: X-Id}}]\n");
    assert_non_null(cfg);
    const sl_request_id_cfg_t *g = &cfg->gateway.request_id;
    assert_string_equal(g->header, "X-Trace");
    assert_int_equal(g->format, SL_REQUEST_ID_HEX);
    assert_int_equal(g->incoming, SL_REQUEST_ID_REPLACE);
    const sl_route_cfg_t *r = cfg->services[0].routes;
    assert_true(r[0].request_id.set);
    assert_false(r[0].request_id.enabled);
    assert_false(r[1].request_id.set);
    assert_true(r[2].request_id.set && r[2].request_id.enabled);
    assert_string_equal(r[2].request_id.header, "X-Id");
    assert_int_equal(r[2].request_id.format, SL_REQUEST_ID_UUID); /* a route's own: defaults, not the gateway's */
    sl_config_free(cfg);
    cfg = load("services:\n  - name: a\n    upstream: {nodes: [\"h:1\"]}\n    routes: [{name: r, tags: [team-a, \"tier 1\"]}]\n");
    assert_non_null(cfg);
    assert_int_equal(cfg->services[0].routes[0].n_tags, 2);
    assert_string_equal(cfg->services[0].routes[0].tags[1], "tier 1");
    sl_config_free(cfg);
    expect_fail("services:\n  - name: a\n    upstream: {nodes: [\"h:1\"]}\n    routes: [{name: r, tags: [x, x]}]\n",
                "gw.yaml:4:34: services[0].routes[0].tags[1]: tag 'x' is listed twice");
    cfg = load("gateway: {log: {level: warn, format: json}}\n");
    assert_non_null(cfg);
    assert_int_equal(cfg->gateway.log.level, SL_LOG_WARN);
    assert_int_equal(cfg->gateway.log.format, SL_LOG_JSON);
    sl_config_free(cfg);
    expect_fail("gateway: {log: {level: trace}}\n",
                "gw.yaml:1:24: gateway.log.level: unknown value 'trace' (expected one of: debug, info, warn, error)");
    cfg = load("gateway: {request_id: off}\n");
    assert_non_null(cfg);
    assert_false(cfg->gateway.request_id.enabled);
    sl_config_free(cfg);

    expect_fail("gateway: {request_id: {header: Content-Length}}\n",
                "gw.yaml:1:32: gateway.request_id.header: 'Content-Length' cannot carry a request id (it must be a "
                "header name the gateway does not write itself)");
    expect_fail("gateway: {request_id: {header: \"a b\"}}\n",
                "gw.yaml:1:32: gateway.request_id.header: 'a b' cannot carry a request id (it must be a header name "
                "the gateway does not write itself)");
    expect_fail("gateway: {request_id: {format: ulid}}\n",
                "gw.yaml:1:32: gateway.request_id.format: unknown value 'ulid' (expected one of: uuid, hex)");
}

static void test_health_check_hex(void **state)
{
    (void)state;
    static const char head[] = "services:\n  - name: db\n    type: stream\n    upstream:\n      scheme: tcp\n"
                               "      nodes: [\"127.0.0.1:5432\"]\n      health_check: ";
    static const char tail[] = "\n    routes: [{server_port: 6432}]\n";
    char text[512];
    snprintf(text, sizeof(text), "%s{send_hex: \"00000008 04D2162f\", expect_hex: \"?? 4e\"}%s", head, tail);
    sl_config_t *cfg = load(text);
    assert_non_null(cfg);
    const sl_health_cfg_t *h = &cfg->services[0].upstream.health_check;
    static const unsigned char send[] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
    assert_int_equal(h->send_len, 8);
    assert_memory_equal(h->send, send, 8);
    assert_int_equal(h->expect_len, 2);
    assert_true(h->expect_any[0] && !h->expect_any[1]);
    assert_int_equal(h->expect[1], 0x4e);
    sl_config_free(cfg);

    snprintf(text, sizeof(text), "%s{send: \"PING\", send_hex: \"00\"}%s", head, tail);
    expect_fail(text, "gw.yaml:7:46: services[0].upstream.health_check.send_hex: only one of send and send_hex");
    snprintf(text, sizeof(text), "%s{send_hex: \"0g\"}%s", head, tail);
    expect_fail(text, "gw.yaml:7:32: services[0].upstream.health_check.send_hex: expected hex digits, two per byte "
                      "(spaces between bytes allowed), at '0g'");
    snprintf(text, sizeof(text), "%s{expect_hex: \"4e 5\"}%s", head, tail);
    expect_fail(text, "gw.yaml:7:34: services[0].upstream.health_check.expect_hex: expected hex digits, two per byte "
                      "(spaces between bytes allowed, ?? for any byte), at '5'");
    snprintf(text, sizeof(text), "%s{send_hex: \"??\"}%s", head, tail);
    expect_fail(text, "gw.yaml:7:32: services[0].upstream.health_check.send_hex: expected hex digits, two per byte "
                      "(spaces between bytes allowed), at '?\?'");
}

static const char stream_yaml[] = "gateway:\n"
                                  "  http: {listen: [\"127.0.0.1:9080\"]}\n"
                                  "services:\n"
                                  "  - name: mysql\n"
                                  "    routes:\n"
                                  "      - name: mysql-route\n"
                                  "        server_addr: 127.0.0.10\n"
                                  "        server_port: 9101\n"
                                  "        remote_addr: 10.0.0.0/8\n"
                                  "        plugins:\n"
                                  "          ip-restriction: {whitelist: [10.0.0.0/8, \"2001:db8::1\"]}\n"
                                  "          limit-conn: {conn: 100, burst: 50, default_conn_delay: 0.1}\n"
                                  "          prometheus: {}\n"
                                  "      - server_port: 9080\n"
                                  "        server_addr: \"::/0\"\n"
                                  "        plugins:\n"
                                  "          ip-restriction: {blacklist: [192.168.0.0/16]}\n"
                                  "          limit-conn: {conn: 1, burst: 0, default_conn_delay: 50ms,\n"
                                  "                       key: server_addr}\n"
                                  "          prometheus:\n"
                                  "    type: stream\n"
                                  "    upstream:\n"
                                  "      scheme: tcp\n"
                                  "      balance: hash\n"
                                  "      hash: {on: ip}\n"
                                  "      nodes: [127.0.0.1:3306, 127.0.0.1:3307, 127.0.0.1:3308]\n"
                                  "      health_check: {interval: 5s, timeout: 1s,\n"
                                  "                     send: \"PING\\r\\n\", expect: \"+PONG\"}\n"
                                  "      passive_check: {failures: 2}\n";

static void test_stream_service(void **state)
{
    (void)state;
    sl_config_t *cfg = load(stream_yaml);
    if (!cfg) dump_errors();
    assert_non_null(cfg);
    const sl_service_cfg_t *s = &cfg->services[0];
    assert_int_equal(s->type, SL_SERVICE_STREAM);
    assert_int_equal(s->type_line, 21);
    const sl_upstream_cfg_t *u = &s->upstream;
    assert_int_equal(u->scheme, SL_SCHEME_TCP);
    assert_int_equal(u->balance, SL_BALANCE_HASH);
    assert_int_equal(u->hash.on, SL_HASH_IP);
    assert_int_equal(u->tries, 2);
    assert_int_equal(u->idle_timeout_ms, 600000);
    assert_int_equal(u->connect_timeout_ms, 2000);
    assert_int_equal(u->proxy_protocol_send, SL_PROXY_PROTOCOL_NONE);
    assert_string_equal(u->health_check.send, "PING\r\n");
    assert_string_equal(u->health_check.expect, "+PONG");
    assert_int_equal(s->n_routes, 2);

    const sl_route_cfg_t *r = &s->routes[0];
    const sl_stream_route_cfg_t *sr = &r->stream;
    assert_string_equal(r->name, "mysql-route");
    assert_int_equal(sr->has_server_addr, 1);
    assert_string_equal(sr->server_addr.text, "127.0.0.10");
    assert_int_equal(sr->server_addr.ip.family, 4);
    assert_int_equal(sr->server_addr.prefix, 32);
    assert_int_equal(sr->server_port, 9101);
    assert_int_equal(sr->port_line, 8);
    assert_int_equal(sr->has_remote_addr, 1);
    assert_int_equal(sr->remote_addr.prefix, 8);
    assert_int_equal(sr->proxy_protocol_accept, 0);
    const sl_stream_plugins_cfg_t *pc = &sr->plugins;
    assert_int_equal(pc->ip_restriction.enabled, 1);
    assert_int_equal(pc->ip_restriction.whitelist, 1);
    assert_int_equal(pc->ip_restriction.n_cidrs, 2);
    assert_int_equal(pc->ip_restriction.cidrs[1].ip.family, 6);
    assert_int_equal(pc->limit_conn.enabled, 1);
    assert_int_equal(pc->limit_conn.conn, 100);
    assert_int_equal(pc->limit_conn.burst, 50);
    assert_int_equal(pc->limit_conn.delay_ms, 100);
    assert_int_equal(pc->limit_conn.key, SL_LIMIT_CONN_REMOTE_ADDR);
    assert_int_equal(pc->prometheus.enabled, 1);
    assert_int_equal(pc->syslog.enabled, 0);

    r = &s->routes[1];
    assert_string_equal(r->name, "mysql-1");
    assert_int_equal(r->stream.has_remote_addr, 0);
    assert_int_equal(r->stream.server_addr.ip.family, 6);
    assert_int_equal(r->stream.server_addr.prefix, 0);
    assert_int_equal(r->stream.plugins.ip_restriction.whitelist, 0);
    assert_int_equal(r->stream.plugins.limit_conn.key, SL_LIMIT_CONN_SERVER_ADDR);
    assert_int_equal(r->stream.plugins.limit_conn.delay_ms, 50);
    assert_int_equal(r->stream.plugins.prometheus.enabled, 1);
    sl_config_free(cfg);
}

/* A stream service "db" as the list item of services, and as a whole file. */
#define STREAM_ITEM(upstream, route)                                                                                   \
    "  - name: db\n    type: stream\n    upstream: {scheme: tcp, nodes: [\"127.0.0.1:1\"]" upstream "}\n"            \
    "    routes: [{server_port: 9101" route "}]\n"
#define STREAM_SVC(upstream, route) "services:\n" STREAM_ITEM(upstream, route)

static void test_stream_errors(void **state)
{
    (void)state;
    /* Keys of the other kind of service. */
    expect_fail(STREAM_SVC("", ", hosts: [a.com]"),
                "gw.yaml:5:34: services[0].routes[0].hosts: only valid on http routes (stream routes match "
                "server_addr, server_port, remote_addr)");
    expect_fail(STREAM_SVC("", ", policies: {timeout: 1s}"),
                "gw.yaml:5:34: services[0].routes[0].policies: policies are for http routes; stream routes use "
                "'plugins'");
    expect_fail(STREAM_SVC("", ", direct_response: {status: 200}"),
                "gw.yaml:5:34: services[0].routes[0].direct_response: only valid on http routes (a stream route "
                "always proxies)");
    expect_fail(STREAM_SVC(", keepalive: {max_idle: 1}", ""),
                "gw.yaml:4:53: services[0].upstream.keepalive: only for http services (a stream session has its own "
                "upstream connection)");
    expect_fail(STREAM_SVC(", timeouts: {read: 1s}", ""),
                "gw.yaml:4:64: services[0].upstream.timeouts.read: only for http services (a stream session ends "
                "after timeouts.idle without bytes)");
    expect_fail(STREAM_SVC(", health_check: {path: /x}", ""),
                "gw.yaml:4:68: services[0].upstream.health_check.path: only for http services (a stream service's "
                "check is a TCP connect, with optional send and expect)");
    expect_fail(STREAM_SVC(", passive_check: {statuses: [500]}", ""),
                "gw.yaml:4:69: services[0].upstream.passive_check.statuses: only for http services (stream sessions "
                "have no status: connect failures and resets count)");
    expect_fail(STREAM_SVC(", balance: hash, hash: {on: header, key: X}", ""),
                "gw.yaml:4:79: services[0].upstream.hash.on: stream services hash on ip (the client address) only");
    expect_fail(STREAM_SVC(", balance: cookie, cookie: {name: c}", ""),
                "gw.yaml:4:62: services[0].upstream.balance: cookie balancing needs HTTP (stream services can use "
                "hash: {on: ip})");
    expect_fail(STREAM_SVC(", max_sessions: 5", ""),
                "gw.yaml:4:53: services[0].upstream.max_sessions: only for udp upstreams");
    expect_fail("services:\n  - name: web\n    upstream: {nodes: [\"127.0.0.1:1\"], tries: 3, timeouts: {idle: 1s}}\n"
                "    routes: [{server_port: 1, plugins: {}}]\n",
                "gw.yaml:3:40: services[0].upstream.tries: only for stream services");
    expect_error("gw.yaml:3:61: services[0].upstream.timeouts.idle: only for stream services");
    expect_error("gw.yaml:4:15: services[0].routes[0].server_port: only valid on stream routes");
    expect_error("gw.yaml:4:31: services[0].routes[0].plugins: plugins are for stream routes; http routes use "
                 "'policies'");
    expect_fail("services:\n  - name: web\n    upstream: {scheme: tcp, nodes: [\"127.0.0.1:1\"]}\n    routes: [{}]\n",
                "gw.yaml:3:24: services[0].upstream.scheme: 'tcp' is for stream services (type: stream)");

    /* Scheme and upstream. */
    expect_fail("services:\n  - name: db\n    type: stream\n    upstream: {nodes: [\"127.0.0.1:1\"]}\n"
                "    routes: [{server_port: 1}]\n",
                "gw.yaml:4:15: services[0].upstream.scheme: is required for stream services (tcp or udp)");
    expect_fail("services:\n  - name: db\n    type: stream\n    upstream: {scheme: http, nodes: [\"127.0.0.1:1\"]}\n"
                "    routes: [{server_port: 1}]\n",
                "gw.yaml:4:24: services[0].upstream.scheme: stream services use tcp or udp");
    expect_fail("services:\n  - name: db\n    type: stream\n    routes: [{server_port: 1}]\n",
                "gw.yaml:2:5: services[0].upstream: is required for stream services");
    expect_fail(STREAM_SVC(", tries: 0", ""), "gw.yaml:4:60: services[0].upstream.tries: must be between 1 and 100");

    /* Routes. */
    expect_fail("services:\n  - name: db\n    type: stream\n    upstream: {scheme: tcp, nodes: [\"127.0.0.1:1\"]}\n"
                "    routes: [{server_addr: 127.0.0.1}]\n",
                "gw.yaml:5:14: services[0].routes[0].server_port: is required");
    expect_fail(STREAM_SVC("", ", server_addr: 10.0.0.0/33"),
                "gw.yaml:5:47: services[0].routes[0].server_addr: expected an IPv4 or IPv6 address or CIDR "
                "(127.0.0.10, 10.0.0.0/8, 2001:db8::/32), got '10.0.0.0/33'");
    expect_fail(STREAM_SVC("", ", remote_addr: example.com"),
                "gw.yaml:5:47: services[0].routes[0].remote_addr: expected an IPv4 or IPv6 address or CIDR "
                "(127.0.0.10, 10.0.0.0/8, 2001:db8::/32), got 'example.com'");
    expect_fail(STREAM_SVC("", ", server_port: 70000"),
                "gw.yaml:5:34: services[0].routes[0].server_port: duplicate key (first at line 5)");
    expect_fail(STREAM_SVC("", "}, {server_port: 0"),
                "gw.yaml:5:49: services[0].routes[1].server_port: must be between 1 and 65535");

    /* Plugins. */
    expect_fail(STREAM_SVC("", ", plugins: {ip-restrict: {whitelist: [1.2.3.4]}}"),
                "gw.yaml:5:44: services[0].routes[0].plugins.ip-restrict: unknown plugin (did you mean "
                "'ip-restriction'?); valid plugins: ip-restriction, limit-conn, prometheus, syslog");
    expect_fail(STREAM_SVC("", ", plugins: {ip_access: {allow: [1.2.3.4]}}"),
                "gw.yaml:5:44: services[0].routes[0].plugins.ip_access: is an http policy; stream routes take the "
                "plugins ip-restriction, limit-conn, prometheus, syslog");
    expect_fail(STREAM_SVC("", ", plugins: {ip-restriction: {whitelist: [1.2.3.4], blacklist: [1.2.3.5]}}"),
                "gw.yaml:5:60: services[0].routes[0].plugins.ip-restriction: needs exactly one of 'whitelist' and "
                "'blacklist'");
    expect_fail(STREAM_SVC("", ", plugins: {ip-restriction: {whitelist: [1.2.3.4/40]}}"),
                "gw.yaml:5:73: services[0].routes[0].plugins.ip-restriction.whitelist[0]: expected an IPv4 or IPv6 "
                "address or CIDR (127.0.0.10, 10.0.0.0/8, 2001:db8::/32), got '1.2.3.4/40'");
    expect_fail(STREAM_SVC("", ", plugins: {limit-conn: {conn: 1, default_conn_delay: soon}}"),
                "gw.yaml:5:56: services[0].routes[0].plugins.limit-conn.burst: is required");
    expect_error("gw.yaml:5:86: services[0].routes[0].plugins.limit-conn.default_conn_delay: invalid duration "
                 "'soon' (expected e.g. 500ms, 10s, 1m30s, 1.5h)");
    expect_fail(STREAM_SVC("", ", plugins: {limit-conn: {conn: 1, burst: 1, default_conn_delay: 1s, key: ip}}"),
                "gw.yaml:5:105: services[0].routes[0].plugins.limit-conn.key: unknown value 'ip' (expected one of: "
                "remote_addr, server_addr)");
    expect_fail(STREAM_SVC("", ", plugins: {prometheus: {prefer_name: true}}"),
                "gw.yaml:5:56: services[0].routes[0].plugins.prometheus: expected {} (the plugin has no settings)");
    expect_fail(STREAM_SVC("", ", plugins: {syslog: {port: 514, sock_type: tls}}"),
                "gw.yaml:5:52: services[0].routes[0].plugins.syslog.host: is required");
    expect_error("gw.yaml:5:75: services[0].routes[0].plugins.syslog.sock_type: unknown value 'tls' (expected one "
                 "of: udp, tcp)");
    expect_fail(STREAM_SVC("", ", plugins: {syslog: {host: log.internal, port: 514, batch_max_size: 20, "
                               "max_pending: 10}}"),
                "gw.yaml:5:100: services[0].routes[0].plugins.syslog.batch_max_size: must not be larger than "
                "max_pending (10)");
    expect_fail(STREAM_SVC(", proxy_protocol: {send: v3}", ""),
                "gw.yaml:4:76: services[0].upstream.proxy_protocol.send: unknown value 'v3' (expected one of: v1, "
                "v2)");
}

/* The PROXY protocol is for TCP only. */
static void test_stream_udp_no_proxy_protocol(void **state)
{
    (void)state;
    expect_fail("services:\n  - name: dns\n    type: stream\n"
                "    upstream: {scheme: udp, nodes: [\"127.0.0.1:53\"], proxy_protocol: {send: v1}}\n"
                "    routes: [{server_port: 5353}]\n",
                "gw.yaml:4:54: services[0].upstream.proxy_protocol: only for tcp upstreams");
    assert_int_equal(errs.n, 1);
}

/* The PROXY protocol (accept on routes, send on upstreams) and the syslog plugin. */
static void test_stream_proxy_protocol_syslog(void **state)
{
    (void)state;
    sl_config_t *cfg = load(STREAM_SVC(", proxy_protocol: {send: v2}",
                                       ", proxy_protocol: {accept: true}, plugins: {syslog: {host: 127.0.0.1, "
                                       "port: 514, sock_type: tcp, timeout: 500ms}}}, "
                                       "{server_port: 9102, proxy_protocol: {accept: true, timeout: 2s}}, "
                                       "{server_port: 9103, plugins: {syslog: {host: \"::1\", port: 5514}}"));
    if (!cfg) dump_errors();
    assert_non_null(cfg);
    const sl_service_cfg_t *s = &cfg->services[0];
    assert_int_equal(s->upstream.proxy_protocol_send, SL_PROXY_PROTOCOL_V2);
    const sl_stream_route_cfg_t *r0 = &s->routes[0].stream, *r1 = &s->routes[1].stream, *r2 = &s->routes[2].stream;
    assert_int_equal(r0->proxy_protocol_accept, 1);
    assert_int_equal(r0->proxy_protocol_timeout_ms, 10000);
    assert_int_equal(r1->proxy_protocol_accept, 1);
    assert_int_equal(r1->proxy_protocol_timeout_ms, 2000);
    assert_int_equal(r2->proxy_protocol_accept, 0);
    const sl_syslog_plugin_cfg_t *sy = &r0->plugins.syslog;
    assert_int_equal(sy->enabled, 1);
    assert_string_equal(sy->host, "127.0.0.1");
    assert_int_equal(sy->port, 514);
    assert_int_equal(sy->sock_type, SL_SYSLOG_SOCK_TCP);
    assert_int_equal(sy->timeout_ms, 500);
    assert_int_equal(sy->batch_max_size, 100);
    assert_int_equal(sy->flush_timeout_ms, 1000);
    assert_int_equal(sy->max_pending, 10000);
    assert_int_equal(r2->plugins.syslog.sock_type, SL_SYSLOG_SOCK_UDP);
    assert_string_equal(r2->plugins.syslog.host, "::1");
    sl_config_free(cfg);

    cfg = load(STREAM_SVC(", proxy_protocol: {send: v1}", ""));
    assert_non_null(cfg);
    assert_int_equal(cfg->services[0].upstream.proxy_protocol_send, SL_PROXY_PROTOCOL_V1);
    sl_config_free(cfg);

    expect_fail(STREAM_SVC("", ", proxy_protocol: {accept: true, timeout: 0ms}"),
                "gw.yaml:5:74: services[0].routes[0].proxy_protocol.timeout: must be between 1ms and 1h");

    /* Whether a connection starts with a header is a property of where it arrives: routes that
     * may take the same connections agree on it, across services too. */
    expect_fail(STREAM_SVC("", ", server_addr: 127.0.0.0/8, proxy_protocol: {accept: true}}, "
                               "{server_port: 9101, server_addr: 127.0.0.5, remote_addr: 10.0.0.0/8"),
                "gw.yaml:5:107: services[0].routes[1].proxy_protocol: routes on one address and port must agree on "
                "accepting the PROXY protocol: services[0].routes[0] on port 9101 accepts it, this route does not");
    expect_fail("services:\n" STREAM_ITEM("", "") "  - name: db2\n    type: stream\n"
                "    upstream: {scheme: tcp, nodes: [\"127.0.0.1:1\"]}\n"
                "    routes: [{server_port: 9101, server_addr: \"127.0.0.1\", proxy_protocol: {accept: true}}]\n",
                "gw.yaml:9:28: services[1].routes[0].proxy_protocol: routes on one address and port must agree on "
                "accepting the PROXY protocol: services[0].routes[0] on port 9101 does not accept it, this route "
                "does");
    /* The route named is the first earlier one that disagrees and overlaps: not route 1 (another
     * address), but route 0 for a wildcard route that overlaps both. */
    expect_fail(STREAM_SVC("", ", server_addr: 127.0.0.10}, "
                               "{server_port: 9101, server_addr: 127.0.0.11, proxy_protocol: {accept: true}}, "
                               "{server_port: 9101, server_addr: 127.0.0.12}, "
                               "{server_port: 9101, proxy_protocol: {accept: true}"),
                "gw.yaml:5:198: services[0].routes[3].proxy_protocol: routes on one address and port must agree on "
                "accepting the PROXY protocol: services[0].routes[0] on port 9101 does not accept it, this route "
                "does");
    assert_int_equal(errs.n, 1);
    /* Other addresses, other families or other ports may differ. */
    cfg = load(STREAM_SVC("", ", server_addr: 127.0.0.10, proxy_protocol: {accept: true}}, "
                              "{server_port: 9101, server_addr: 127.0.0.11}, "
                              "{server_port: 9101, server_addr: \"::/0\"}, {server_port: 9102"));
    if (!cfg) dump_errors();
    assert_non_null(cfg);
    sl_config_free(cfg);
}

static void test_stream_ports(void **state)
{
    (void)state;
    expect_fail("gateway: {http: {listen: [\"127.0.0.1:9080\"]}, status: {listen: \"127.0.0.1:9091\"}}\n"
                STREAM_SVC("", "}, {server_port: 9080}, {server_addr: 127.0.0.1, server_port: 9091"),
                "gw.yaml:6:49: services[0].routes[1].server_port: port 9080 is already gateway.http.listen "
                "'127.0.0.1:9080'");
    expect_error("gw.yaml:6:94: services[0].routes[2].server_port: port 9091 is already gateway.status.listen "
                 "'127.0.0.1:9091'");
    assert_int_equal(errs.n, 2);
    /* Another address on the same port, or another family, is fine. */
    sl_config_t *cfg = load("gateway: {http: {listen: [\"127.0.0.1:9080\"]}}\n" STREAM_SVC(
        "", ", server_addr: 127.0.0.2}, {server_port: 9080, server_addr: \"::1\""));
    if (!cfg) dump_errors();
    assert_non_null(cfg);
    sl_config_free(cfg);
}

/* UDP services: their defaults, and the keys that only make sense over TCP. */
static void test_udp_service(void **state)
{
    (void)state;
    sl_config_t *cfg = load("services:\n  - name: dns\n    type: stream\n"
                            "    upstream: {scheme: udp, nodes: [\"127.0.0.1:53\"], passive_check: {failures: 1}}\n"
                            "    routes: [{server_port: 5353, plugins: {limit-conn: {conn: 1, burst: 1, "
                            "default_conn_delay: 1s}, ip-restriction: {whitelist: [127.0.0.0/8]}, prometheus: {}}}]\n");
    if (!cfg) dump_errors();
    assert_non_null(cfg);
    const sl_upstream_cfg_t *u = &cfg->services[0].upstream;
    assert_int_equal(u->scheme, SL_SCHEME_UDP);
    assert_int_equal(u->idle_timeout_ms, 30000);
    assert_int_equal(u->max_sessions, 10000);
    assert_int_equal(u->passive_check.enabled, 1);
    sl_config_free(cfg);
    expect_fail("services:\n  - name: dns\n    type: stream\n"
                "    upstream: {scheme: udp, nodes: [\"127.0.0.1:53\"], tries: 2, health_check: {interval: 1s}}\n"
                "    routes: [{server_port: 5353}]\n",
                "gw.yaml:4:54: services[0].upstream.tries: only for tcp upstreams (a UDP session has no connect to "
                "try again)");
    expect_error("gw.yaml:4:64: services[0].upstream.health_check: only for tcp upstreams: use passive_check, where a "
                 "datagram the node refuses (ICMP port unreachable) counts as a failure");
    assert_int_equal(errs.n, 2);
}

static void test_reload_type_change(void **state)
{
    (void)state;
    sl_config_t *old = load("services:\n  - name: db\n    upstream: {nodes: [\"127.0.0.1:1\"]}\n"
                            "    routes: [{paths: [/x]}]\n  - name: web\n    upstream: {nodes: [\"127.0.0.1:1\"]}\n"
                            "    routes: [{paths: [/y]}]\n");
    assert_non_null(old);
    sl_config_t *cfg = load("services:\n  - name: web\n    upstream: {nodes: [\"127.0.0.1:1\"]}\n"
                            "    routes: [{paths: [/y]}]\n" STREAM_ITEM("", ""));
    if (!cfg) dump_errors();
    assert_non_null(cfg);
    sl_config_errors_t e = {0};
    assert_int_equal(sl_config_check_reload(old, cfg, &e), -1);
    assert_int_equal(e.n, 1);
    assert_string_equal(text_of(&e, 0), "gw.yaml:6:11: services[1].type: service 'db' is http in the running "
                                    "configuration and cannot become stream (a service's type is fixed: give the "
                                    "new service another name)");
    sl_config_errors_free(&e);
    /* The same configuration, or one without the service, reloads. */
    assert_int_equal(sl_config_check_reload(cfg, cfg, &e), 0);
    assert_int_equal(sl_config_check_reload(old, old, &e), 0);
    assert_int_equal(e.n, 0);
    sl_config_free(old);
    sl_config_free(cfg);
}

static void test_duplicate_names(void **state)
{
    (void)state;
    expect_fail("services:\n"
                "  - {name: a, routes: [{direct_response: {status: 200}}]}\n"
                "  - {name: a, routes: [{direct_response: {status: 200}}]}\n",
                "gw.yaml:3:12: services[1].name: duplicate service name 'a' (also services[0])");
    expect_fail("services:\n"
                "  - name: a\n"
                "    routes:\n"
                "      - {name: r, direct_response: {status: 200}}\n"
                "      - {name: r, direct_response: {status: 200}}\n",
                "gw.yaml:5:16: services[0].routes[1].name: duplicate route name 'r' (also routes[0])");
    /* A chosen name may collide with a generated default. */
    expect_fail("services:\n"
                "  - name: a\n"
                "    routes:\n"
                "      - {direct_response: {status: 200}}\n"
                "      - {name: a-0, direct_response: {status: 200}}\n",
                "gw.yaml:5:16: services[0].routes[1].name: duplicate route name 'a-0' (also routes[0])");
    expect_fail("services:\n  - name: \"a b\"\n    routes: [{direct_response: {status: 200}}]\n",
                "gw.yaml:2:11: services[0].name: invalid name 'a b' (use 1 to 128 of A-Z a-z 0-9 _ . -)");
}

/* A key written twice is an error in every map, whoever reads the map: schema sections, the
 * policies and plugins maps, header maps, a policy's own keys; YAML and JSON alike. The error
 * sits at the second key and names the first one's line. */
static void test_duplicate_keys_everywhere(void **state)
{
    (void)state;
    static const char route_head[] = "services:\n"
                                     "  - name: a\n"
                                     "    upstream: {nodes: [127.0.0.1:1]}\n"
                                     "    routes:\n"
                                     "      - name: r\n";
    char text[1024];
    snprintf(text, sizeof(text), "%s        policies:\n          ip_access: {deny: [0.0.0.0/0]}\n"
             "          timeout: 5s\n          ip_access: {allow: [0.0.0.0/0]}\n", route_head);
    expect_fail(text, "gw.yaml:9:11: services[0].routes[0].policies.ip_access: duplicate key (first at line 7)");
    assert_int_equal(errs.n, 1);
    snprintf(text, sizeof(text), "%s        policies: {ip_access: {deny: [10.0.0.0/8], deny: [0.0.0.0/0]}}\n",
             route_head);
    expect_fail(text, "gw.yaml:6:52: services[0].routes[0].policies.ip_access.deny: duplicate key (first at line 6)");
    snprintf(text, sizeof(text), "%s        policies: {request_headers: {set: {X-A: '1', X-A: '2'}}}\n", route_head);
    expect_fail(text,
                "gw.yaml:6:54: services[0].routes[0].policies.request_headers.set.X-A: duplicate key (first at line 6)");
    snprintf(text, sizeof(text), "%s        policies: {retry: {on: [5xx], attempts: 2, attempts: 3}}\n", route_head);
    expect_fail(text, "gw.yaml:6:52: services[0].routes[0].policies.retry.attempts: duplicate key (first at line 6)");
    snprintf(text, sizeof(text),
             "services:\n  - name: a\n    upstream:\n      nodes: [127.0.0.1:1]\n"
             "      health_check: {headers: {X-A: '1', X-A: '1'}}\n    routes: [{name: r}]\n");
    expect_fail(text, "gw.yaml:5:42: services[0].upstream.health_check.headers.X-A: duplicate key (first at line 5)");
    expect_fail("services:\n"
                "  - name: s\n"
                "    type: stream\n"
                "    upstream: {scheme: tcp, nodes: [127.0.0.1:1]}\n"
                "    routes:\n"
                "      - server_port: 9999\n"
                "        plugins:\n"
                "          prometheus: {}\n"
                "          limit-conn: {conn: 1, burst: 1, default_conn_delay: 1s}\n"
                "          limit-conn: {conn: 2, burst: 1, default_conn_delay: 1s}\n",
                "gw.yaml:10:11: services[0].routes[0].plugins.limit-conn: duplicate key (first at line 9)");
    /* Keys that only differ in case are different keys. */
    snprintf(text, sizeof(text), "%s        policies: {Timeout: 5s, timeout: 5s}\n", route_head);
    expect_fail(text, "gw.yaml:6:20: services[0].routes[0].policies.Timeout: unknown policy (did you mean 'timeout'?); "
                      "valid policies: " POLICY_NAMES);
    /* JSON, and a map big enough for the hash-map path: the repeat is found wherever it is. */
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_puts(&b, "{\"services\": [{\"name\": \"a\", \"routes\": [{\"direct_response\": {\"status\": 200,\n"
                    "\"headers\": {");
    for (int i = 0; i < 40; i++) sl_buf_printf(&b, "\"X-%d\": \"v\",\n", i);
    sl_buf_puts(&b, "\"X-7\": \"again\"}}}]}]}\n");
    sl_config_t *cfg = load_as("gw.json", sl_buf_cstr(&b));
    sl_buf_free(&b);
    assert_null(cfg);
    expect_error("gw.json:42:1: services[0].routes[0].direct_response.headers.X-7: duplicate key (first at line 9)");
    assert_int_equal(errs.n, 1);
}

static void test_missing_required(void **state)
{
    (void)state;
    expect_fail("services:\n  - routes: [{direct_response: {status: 200}}]\n",
                "gw.yaml:2:5: services[0].name: is required");
    expect_fail("services:\n  - name: a\n", "gw.yaml:2:5: services[0].routes: is required");
    expect_fail("services:\n  - name: a\n    routes: []\n", "gw.yaml:3:13: services[0].routes: must not be empty");
    expect_fail("services:\n  - name: a\n    upstream: {}\n    routes: [{}]\n",
                "gw.yaml:3:15: services[0].upstream.nodes: is required");
    expect_fail("services:\n  - name: a\n    upstream: {nodes: [{weight: 2}]}\n    routes: [{}]\n",
                "gw.yaml:3:24: services[0].upstream.nodes[0].address: is required");
    expect_fail("services:\n  - name: a\n    routes: [{direct_response: {body: x}}]\n",
                "gw.yaml:3:32: services[0].routes[0].direct_response.status: is required");
    expect_fail("services:\n  - name:\n    routes: [{direct_response: {status: 200}}]\n",
                "gw.yaml:2:10: services[0].name: expected a string, got null");
}

static void test_env_substitution(void **state)
{
    (void)state;
    setenv("SL_TEST_PORT", "7070", 1);
    setenv("SL_TEST_HOST", "backend.internal", 1);
    unsetenv("SL_TEST_UNSET");
    sl_config_t *cfg =
        load("gateway:\n"
             "  http: {listen: [\"0.0.0.0:${SL_TEST_PORT}\"]}\n"
             "  access_log: {path: \"${SL_TEST_UNSET:-/tmp/x.log}\"}\n"
             "services:\n"
             "  - name: a\n"
             "    upstream: {nodes: [\"${SL_TEST_HOST}:${SL_TEST_PORT}\"]}\n"
             "    routes:\n"
             "      - direct_response: {status: 200, body: \"price: $5 $${X} ${SL_TEST_UNSET:-}end\"}\n");
    if (!cfg) dump_errors();
    assert_non_null(cfg);
    assert_int_equal(cfg->gateway.http.listen[0].port, 7070);
    assert_string_equal(cfg->gateway.access_log.path, "/tmp/x.log");
    assert_string_equal(cfg->services[0].upstream.nodes[0].addr.host, "backend.internal");
    assert_int_equal(cfg->services[0].upstream.nodes[0].addr.port, 7070);
    assert_string_equal(cfg->services[0].routes[0].direct_response->body, "price: $5 ${X} end");
    sl_config_free(cfg);

    expect_fail("gateway:\n  http: {listen: [\"0.0.0.0:${SL_TEST_UNSET}\"]}\n",
                "gw.yaml:2:19: gateway.http.listen[0]: environment variable 'SL_TEST_UNSET' is not set");
    assert_int_equal(errs.n, 1); /* no follow-up error about the address */
    expect_fail("gateway:\n  access_log: {path: \"${1BAD}\"}\n",
                "gw.yaml:2:22: gateway.access_log.path: invalid ${...} reference (expected ${NAME} or "
                "${NAME:-default})");
    expect_fail("gateway:\n  access_log: {path: \"${OPEN\"}\n",
                "gw.yaml:2:22: gateway.access_log.path: invalid ${...} reference (expected ${NAME} or "
                "${NAME:-default})");
    /* An empty default is an empty string, not a missing value. */
    setenv("SL_TEST_WORKERS", "3", 1);
    cfg = load("gateway: {workers: \"${SL_TEST_WORKERS}\", access_log: {format: \"${SL_TEST_UNSET:-json}\"}}\n");
    assert_non_null(cfg);
    assert_int_equal(cfg->gateway.workers, 3);
    sl_config_free(cfg);
}

static void test_json(void **state)
{
    (void)state;
    sl_config_t *cfg =
        load_as("gw.json", "{\n"
                           "  \"gateway\": {\"workers\": 2, \"http\": {\"listen\": [\"[::]:80\"]}},\n"
                           "  \"services\": [\n"
                           "    {\"name\": \"a\", \"routes\": [{\"paths\": [\"/\\u00e9\"],\n"
                           "      \"direct_response\": {\"status\": 200, \"body\": \"\\ud83d\\ude00\"}}]}\n"
                           "  ]\n"
                           "}\n");
    if (!cfg) dump_errors();
    assert_non_null(cfg);
    assert_int_equal(cfg->gateway.workers, 2);
    assert_string_equal(cfg->gateway.http.listen[0].host, "::");
    assert_string_equal(cfg->services[0].routes[0].paths[0], "/\xc3\xa9");
    assert_string_equal(cfg->services[0].routes[0].direct_response->body, "\xf0\x9f\x98\x80");
    assert_int_equal(cfg->services[0].line, 4);
    assert_int_equal(cfg->services[0].col, 5);
    sl_config_free(cfg);

    /* Detected by content too, with line and column of the offending value or key. */
    cfg = load_as("config", "\n{\"gateway\": {\n    \"proxy_layers\": 99,\n\t\"htp\": {}}}");
    assert_null(cfg);
    expect_error("config:3:21: gateway.proxy_layers: must be between 0 and 16");
    expect_error("config:4:2: gateway.htp: unknown key (did you mean 'http'?)");

    cfg = load_as("gw.json", "{\"gateway\": {\"workers\": 2,}}");
    assert_null(cfg);
    expect_error("gw.json:1:27: JSON syntax error: expected a string key");
    cfg = load_as("gw.json", "{\"a\": \"x\n\"}");
    assert_null(cfg);
    expect_error("gw.json:1:9: JSON syntax error: control character in string");
    cfg = load_as("gw.json", "{\"a\": 1} x");
    assert_null(cfg);
    expect_error("gw.json:1:10: JSON syntax error: unexpected data after the top-level value");
    cfg = load_as("gw.json", "{\"a\": 01}");
    assert_null(cfg);
    expect_error_part("gw.json:1:8: JSON syntax error");
}

static void test_yaml_syntax_and_limits(void **state)
{
    (void)state;
    sl_config_t *cfg = load("gateway:\n  http: [\n  x: 1\n");
    assert_null(cfg);
    expect_error_part("gw.yaml:4:1: YAML syntax error: did not find expected ',' or ']'");
    cfg = load("gateway:\n  workers: 2\n   proxy_layers: 1\n");
    assert_null(cfg);
    expect_error_part("gw.yaml:3:16: YAML syntax error:");

    cfg = load("a: &x [1, 2]\nb: *x\nc: *x\n");
    assert_null(cfg);
    expect_error("gw.yaml:2:4: YAML aliases are not supported");
    expect_error("gw.yaml:3:4: YAML aliases are not supported");

    char deep[400] = "x: ";
    for (int i = 0; i < 100; i++)
        strcat(deep, "[");
    cfg = load(deep);
    assert_null(cfg);
    expect_error_part("nesting deeper than 64 levels");

    cfg = load("gateway: {}\n---\ngateway: {}\n");
    assert_null(cfg);
    expect_error("gw.yaml:2:1: multiple YAML documents are not supported");

    cfg = load("- 1\n- 2\n");
    assert_null(cfg);
    expect_error("gw.yaml:1:1: expected a map, got a list");

    char *big = malloc(17u << 20);
    memset(big, ' ', 17u << 20);
    sl_config_errors_free(&errs);
    assert_int_equal(sl_config_load_buffer("big.yaml", big, 17u << 20, &cfg, &errs), -1);
    free(big);
    expect_error("big.yaml: configuration is larger than 16 MiB");
}

static void test_error_lines_stay_readable(void **state)
{
    (void)state;
    /* User text quoted in a message cannot break the one-line-per-error format. */
    sl_config_t *cfg = load("gateway: {shutdown_timeout: \"1\\n2\"}\n");
    assert_null(cfg);
    expect_error("gw.yaml:1:29: gateway.shutdown_timeout: invalid duration '1?2' (expected e.g. 500ms, 10s, 1m30s, 1.5h)");
    char text[3000] = "gateway: {shutdown_timeout: ";
    memset(text + strlen(text), 'x', 2000);
    strcat(text, "}\n");
    cfg = load(text);
    assert_null(cfg);
    assert_int_equal(strlen(text_of(&errs, 0)), 512);
    assert_string_equal(text_of(&errs, 0) + 509, "...");
    /* A flood of errors is cut after 200 with one closing line. */
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_puts(&b, "gateway:\n");
    for (int i = 0; i < 300; i++)
        sl_buf_printf(&b, "  k%d: 1\n", i);
    cfg = load(sl_buf_cstr(&b));
    sl_buf_free(&b);
    assert_null(cfg);
    assert_int_equal(errs.n, 201);
    assert_string_equal(text_of(&errs, 200), "gw.yaml: too many errors, stopping here");
    assert_string_equal(text_of(&errs, 0), "gw.yaml:2:3: gateway.k0: unknown key (valid keys: workers, proxy_layers, "
                                       "shutdown_timeout, http, status, access_log, request_id, log)");
    assert_true(strstr(text_of(&errs, 199), "gateway.k199: unknown key") != NULL);
}

/* Errors come out in file order, whatever order the checks ran in (the duplicate-key walk runs
 * first, cross-field checks last), and a flood keeps the first 200 of the file. */
static void test_errors_in_line_order(void **state)
{
    (void)state;
    sl_config_t *cfg = load("services:\n"                                    /* 1 */
                            "  - name: a\n"                                  /* 2 */
                            "    upstream: {nodes: [127.0.0.1:1]}\n"         /* 3 */
                            "    routes:\n"                                  /* 4 */
                            "      - {name: r, paths: [nope]}\n"             /* 5 */
                            "      - {name: r, methods: [get]}\n"            /* 6 */
                            "gateway:\n"                                     /* 7 */
                            "  workers: 0\n"                                 /* 8 */
                            "  http: {header_timeout: 1x, header_timeout: 1s}\n" /* 9 */
                            "services: []\n");                               /* 10 */
    assert_null(cfg);
    static const char *const want[] = {
        "gw.yaml:5:27: services[0].routes[0].paths[0]: must start with '/'",
        "gw.yaml:6:16: services[0].routes[1].name: duplicate route name 'r' (also routes[0])",
        "gw.yaml:6:29: services[0].routes[1].methods[0]: unknown method 'get' (expected GET, HEAD, POST, PUT, DELETE, "
        "PATCH, OPTIONS, CONNECT or TRACE)",
        "gw.yaml:8:12: gateway.workers: must be 'auto' or an integer between 1 and 64",
        "gw.yaml:9:26: gateway.http.header_timeout: invalid duration '1x' (expected e.g. 500ms, 10s, 1m30s, 1.5h)",
        "gw.yaml:9:30: gateway.http.header_timeout: duplicate key (first at line 9)",
        "gw.yaml:10:1: services: duplicate key (first at line 1)",
    };
    if (errs.n != SL_ARRAY_LEN(want)) dump_errors();
    assert_int_equal(errs.n, SL_ARRAY_LEN(want));
    for (size_t i = 0; i < SL_ARRAY_LEN(want); i++) assert_string_equal(text_of(&errs, i), want[i]);

    /* 300 errors written bottom-up by the checks still keep the file's first 200. */
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_puts(&b, "services:\n  - name: a\n    routes:\n");
    for (int i = 0; i < 300; i++) sl_buf_printf(&b, "      - {name: r, direct_response: {status: 200}}\n");
    cfg = load(sl_buf_cstr(&b));
    sl_buf_free(&b);
    assert_null(cfg);
    assert_int_equal(errs.n, 201);
    assert_string_equal(text_of(&errs, 0), "gw.yaml:5:16: services[0].routes[1].name: duplicate route name 'r' (also "
                                       "routes[0])");
    assert_string_equal(text_of(&errs, 199), "gw.yaml:204:16: services[0].routes[200].name: duplicate route name 'r' "
                                         "(also routes[0])");
    assert_string_equal(text_of(&errs, 200), "gw.yaml: too many errors, stopping here");
}

/* Hints for common mistakes: a URL where an address goes, unknown names with the valid ones. */
static void test_error_hints(void **state)
{
    (void)state;
    expect_fail("services:\n  - name: a\n    upstream: {nodes: [\"http://127.0.0.1:8080\"]}\n    routes: [{name: r}]\n",
                "gw.yaml:3:24: services[0].upstream.nodes[0]: invalid address 'http://127.0.0.1:8080': the scheme does "
                "not belong in the address (write '127.0.0.1:8080' and set upstream.scheme)");
    expect_fail("services:\n  - name: a\n    upstream: {nodes: [{address: \"https://[::1]:8443/api\"}]}\n"
                "    routes: [{name: r}]\n",
                "gw.yaml:3:34: services[0].upstream.nodes[0].address: invalid address 'https://[::1]:8443/api': the "
                "scheme does not belong in the address (write '[::1]:8443' and set upstream.scheme)");
    expect_fail("services:\n  - name: a\n    upstream: {nodes: [\"users.internal:80/v1\"]}\n    routes: [{name: r}]\n",
                "gw.yaml:3:24: services[0].upstream.nodes[0]: invalid address 'users.internal:80/v1': an address has "
                "no path (write 'users.internal:80')");
    expect_fail("gateway: {http: {listen: [\"http://0.0.0.0:9080\"]}}\n",
                "gw.yaml:1:27: gateway.http.listen[0]: invalid address 'http://0.0.0.0:9080': the scheme does not "
                "belong in the address (write '0.0.0.0:9080')");
    /* A bare IPv6 address still gets the brackets hint. */
    expect_fail("services:\n  - name: a\n    upstream: {nodes: [\"::1:8080\"]}\n    routes: [{name: r}]\n",
                "gw.yaml:3:24: services[0].upstream.nodes[0]: invalid address '::1:8080' (IPv6 addresses go in "
                "brackets, e.g. [::1]:8080)");
    static const char head[] = "services:\n  - name: a\n    upstream: {nodes: [127.0.0.1:1]}\n    routes:\n"
                               "      - policies: {";
    char text[512];
    snprintf(text, sizeof(text), "%sratelimit: {requests: 1, per: second}}\n", head);
    expect_fail(text, "gw.yaml:5:20: services[0].routes[0].policies.ratelimit: unknown policy; valid policies: "
                      POLICY_NAMES);
    snprintf(text, sizeof(text), "%sretrys: {on: [5xx]}}\n", head);
    expect_fail(text, "gw.yaml:5:20: services[0].routes[0].policies.retrys: unknown policy (did you mean 'retry'?); "
                      "valid policies: " POLICY_NAMES);
    expect_fail(STREAM_SVC("", ", plugins: {rate-limit: {}}"),
                "gw.yaml:5:44: services[0].routes[0].plugins.rate-limit: unknown plugin; valid plugins: ip-restriction, "
                "limit-conn, prometheus, syslog");
    expect_fail("services:\n  - name: a\n    upstream: {balance: roundrobin, nodes: [127.0.0.1:1]}\n"
                "    routes: [{name: r}]\n",
                "gw.yaml:3:25: services[0].upstream.balance: unknown value 'roundrobin' (expected one of: random, "
                "round_robin, weighted, cookie, hash, least_conn, ewma)");
}

static void test_multiple_errors(void **state)
{
    (void)state;
    sl_config_t *cfg = load("gateway:\n"
                            "  htp: {}\n"
                            "  workers: 0\n"
                            "  shutdown_timeout: soon\n"
                            "services:\n"
                            "  - name: a\n"
                            "    upstream: {nodes: [\"x:0\"]}\n"
                            "    routes: [{paths: [nope]}]\n");
    assert_null(cfg);
    assert_int_equal(errs.n, 5);
    expect_error("gw.yaml:2:3: gateway.htp: unknown key (did you mean 'http'?)");
    expect_error("gw.yaml:3:12: gateway.workers: must be 'auto' or an integer between 1 and 64");
    expect_error("gw.yaml:4:21: gateway.shutdown_timeout: invalid duration 'soon' (expected e.g. 500ms, 10s, 1m30s, 1.5h)");
    expect_error("gw.yaml:7:24: services[0].upstream.nodes[0]: invalid port in 'x:0' (must be between 1 and 65535)");
    expect_error("gw.yaml:8:23: services[0].routes[0].paths[0]: must start with '/'");
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/sl_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "gateway:\n  workers: 3\n";
    assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
    close(fd);
    sl_config_t *cfg = NULL;
    sl_config_errors_free(&errs);
    assert_int_equal(sl_config_load_file(path, &cfg, &errs), 0);
    assert_int_equal(cfg->gateway.workers, 3);
    assert_string_equal(cfg->source, path);
    sl_config_free(cfg);
    unlink(path);

    assert_int_equal(sl_config_load_file("/nonexistent/sluice.yaml", &cfg, &errs), -1);
    assert_null(cfg);
    expect_error("/nonexistent/sluice.yaml: cannot open: No such file or directory");
}

static void test_method_bit(void **state)
{
    (void)state;
    assert_int_equal(sl_method_bit("GET", 3), SL_METHOD_GET);
    assert_int_equal(sl_method_bit("OPTIONS", 7), SL_METHOD_OPTIONS);
    assert_int_equal(sl_method_bit("TRACE", 5), SL_METHOD_TRACE);
    assert_int_equal(sl_method_bit("GETX", 3), SL_METHOD_GET); /* length-bounded */
    assert_int_equal(sl_method_bit("get", 3), 0);
    assert_int_equal(sl_method_bit("GE", 2), 0);
    assert_int_equal(sl_method_bit("PROPFIND", 8), 0);
    assert_int_equal(sl_method_bit(NULL, 0), 0);
}

static void test_errors_add(void **state)
{
    (void)state;
    sl_config_errors_t e = {0};
    sl_config_errors_add(&e, "a.yaml", 3, 7, "services[0].name", "must be %s", "a token");
    sl_config_errors_add(&e, "a.yaml", 0, 0, NULL, "cannot open");
    sl_config_errors_add(&e, NULL, 0, 0, "access_log", "cannot open %d", 2);
    assert_int_equal(e.n, 3);
    assert_string_equal(text_of(&e, 0), "a.yaml:3:7: services[0].name: must be a token");
    assert_string_equal(text_of(&e, 1), "a.yaml: cannot open");
    assert_string_equal(text_of(&e, 2), "access_log: cannot open 2");
    sl_config_errors_free(&e);
}

/* An error is a record: the field path apart from the message, so an API can return it as it is;
 * the text form puts them back together. */
static void test_errors_are_records(void **state)
{
    (void)state;
    sl_config_t *cfg = load("services:\n"
                            "  - name: a\n"
                            "    upstream: {nodes: [127.0.0.1:1]}\n"
                            "    routes:\n"
                            "      - {paths: [/a]}\n"
                            "      - {paths: [/b], policies: {timeout: 0}}\n");
    assert_null(cfg);
    assert_int_equal(errs.n, 1);
    const sl_config_error_t *r = &errs.items[0];
    assert_string_equal(r->file, "gw.yaml");
    assert_int_equal(r->line, 6);
    assert_int_equal(r->col, 43);
    assert_string_equal(r->path, "services[0].routes[1].policies.timeout");
    assert_string_equal(r->message, "expected whole seconds (at least 1) or a duration such as 500ms, 5s, 1m30s "
                                    "(at most 24h)");
    assert_string_equal(text_of(&errs, 0), "gw.yaml:6:43: services[0].routes[1].policies.timeout: expected whole "
                                           "seconds (at least 1) or a duration such as 500ms, 5s, 1m30s (at most 24h)");

    /* A syntax error has a position and no path; a file-level error neither. */
    cfg = load("a: [\n");
    assert_null(cfg);
    assert_null(errs.items[0].path);
    assert_int_equal(errs.items[0].line, 2);
    assert_true(!strncmp(errs.items[0].message, "YAML syntax error: ", 19));
    assert_int_equal(sl_config_load_file("/nonexistent/sluice.yaml", &cfg, &errs), -1);
    r = &errs.items[errs.n - 1];
    assert_string_equal(r->file, "/nonexistent/sluice.yaml");
    assert_int_equal(r->line, 0);
    assert_null(r->path);
    assert_string_equal(r->message, "cannot open: No such file or directory");

    /* The path is not quoted into the message of the "too many errors" record either. */
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_puts(&b, "gateway:\n");
    for (int i = 0; i < 201; i++)
        sl_buf_printf(&b, "  k%d: 1\n", i);
    cfg = load(sl_buf_cstr(&b));
    sl_buf_free(&b);
    assert_null(cfg);
    assert_int_equal(errs.n, 201);
    assert_string_equal(errs.items[199].path, "gateway.k199");
    assert_true(!strncmp(errs.items[199].message, "unknown key (valid keys: ", 25));
    assert_null(errs.items[200].path);
    assert_int_equal(errs.items[200].line, 0);
    assert_string_equal(errs.items[200].message, "too many errors, stopping here");
}

static void test_errors_json(void **state)
{
    (void)state;
    sl_config_t *cfg = load("gateway:\n  workers: 0\n  k: 1\n");
    assert_null(cfg);
    json_t *j = sl_config_errors_json(&errs);
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(s, "[{\"file\":\"gw.yaml\",\"line\":2,\"col\":12,\"path\":\"gateway.workers\","
                           "\"message\":\"must be 'auto' or an integer between 1 and 64\"},"
                           "{\"file\":\"gw.yaml\",\"line\":3,\"col\":3,\"path\":\"gateway.k\",\"message\":\"unknown key "
                           "(valid keys: workers, proxy_layers, shutdown_timeout, http, status, access_log, request_id, "
                           "log)\"}]");
    free(s);
    json_decref(j);

    /* No file, no path: null. Text that is not UTF-8 (a file name may not be) still makes valid
     * JSON, and a line break in a message stays out of the text. */
    sl_config_errors_t e = {0};
    sl_config_errors_add(&e, NULL, 0, 0, NULL, "cannot bind %s", "a\nb");
    sl_config_errors_add(&e, "caf\xc3\xa9-\xff.yaml", 0, 0, "access_log.path", "cannot open");
    assert_string_equal(text_of(&e, 0), "cannot bind a?b");
    j = sl_config_errors_json(&e);
    s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(s, "[{\"file\":null,\"line\":0,\"col\":0,\"path\":null,\"message\":\"cannot bind a?b\"},"
                           "{\"file\":\"caf\xc3\xa9-?.yaml\",\"line\":0,\"col\":0,\"path\":\"access_log.path\","
                           "\"message\":\"cannot open\"}]");
    free(s);
    json_decref(j);
    sl_config_errors_free(&e);
    j = sl_config_errors_json(&e);
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_empty_is_defaults, teardown),
        cmocka_unit_test_teardown(test_full_config, teardown),
        cmocka_unit_test_teardown(test_service_defaults_and_direct_only, teardown),
        cmocka_unit_test_teardown(test_unknown_key_suggestion, teardown),
        cmocka_unit_test_teardown(test_out_of_range, teardown),
        cmocka_unit_test_teardown(test_bad_duration, teardown),
        cmocka_unit_test_teardown(test_duration_grammar, teardown),
        cmocka_unit_test_teardown(test_bad_address, teardown),
        cmocka_unit_test_teardown(test_listen_addresses, teardown),
        cmocka_unit_test_teardown(test_routes_hosts_paths_methods, teardown),
        cmocka_unit_test_teardown(test_balancer_keys, teardown),
        cmocka_unit_test_teardown(test_not_supported_yet, teardown),
        cmocka_unit_test_teardown(test_access_log_settings, teardown),
        cmocka_unit_test_teardown(test_request_id_settings, teardown),
        cmocka_unit_test_teardown(test_health_check_hex, teardown),
        cmocka_unit_test_teardown(test_stream_service, teardown),
        cmocka_unit_test_teardown(test_stream_errors, teardown),
        cmocka_unit_test_teardown(test_stream_udp_no_proxy_protocol, teardown),
        cmocka_unit_test_teardown(test_stream_proxy_protocol_syslog, teardown),
        cmocka_unit_test_teardown(test_stream_ports, teardown),
        cmocka_unit_test_teardown(test_udp_service, teardown),
        cmocka_unit_test_teardown(test_reload_type_change, teardown),
        cmocka_unit_test_teardown(test_duplicate_names, teardown),
        cmocka_unit_test_teardown(test_duplicate_keys_everywhere, teardown),
        cmocka_unit_test_teardown(test_missing_required, teardown),
        cmocka_unit_test_teardown(test_env_substitution, teardown),
        cmocka_unit_test_teardown(test_json, teardown),
        cmocka_unit_test_teardown(test_yaml_syntax_and_limits, teardown),
        cmocka_unit_test_teardown(test_error_lines_stay_readable, teardown),
        cmocka_unit_test_teardown(test_multiple_errors, teardown),
        cmocka_unit_test_teardown(test_errors_in_line_order, teardown),
        cmocka_unit_test_teardown(test_error_hints, teardown),
        cmocka_unit_test_teardown(test_load_file, teardown),
        cmocka_unit_test_teardown(test_method_bit, teardown),
        cmocka_unit_test(test_errors_add),
        cmocka_unit_test_teardown(test_errors_are_records, teardown),
        cmocka_unit_test_teardown(test_errors_json, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
