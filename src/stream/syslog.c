/* syslog: one RFC 5424 message per finished session (observe/syslog.h sends it), with the
 * session's facts as structured data:
 *
 *   <134>1 2026-11-22T07:00:00.123Z gw1 sluice 4242 session [session@32473 service="mysql"
 *   route="mysql-route" client_addr="10.0.0.7" client_port="51234" server_addr="127.0.0.10"
 *   server_port="9101" upstream="127.0.0.1:3306" bytes_from_client="120" bytes_to_client="4096"
 *   bytes_from_upstream="4096" bytes_to_upstream="120" duration="0.250" status="200"] ...
 *
 * Each route opens its own handle when its generation is built (main thread) and closes it with
 * the generation, so a reload applies the new settings while the sender, shared by every handle
 * to the same host, port and transport, keeps its queue.
 *
 * Metrics. The sender counts the messages it sent and dropped; sluice_syslog_messages_total
 * follows those counts per destination. A destination record holds a handle of its own (so the
 * sender lives as long as the record) and what of the counts is in the series already; the
 * routes using it hold references. When the last route goes, the counts so far are folded into
 * the series; messages dropped in the sender's final flush after that are in the process log
 * only. */
#include "base/common.h"
#include "config/config.h"
#include "observe/metrics.h"
#include "observe/syslog.h"
#include "base/keeper.h"
#include "stream/stream.h"

#include <stdio.h>
#include <string.h>

/* RFC 5612's Private Enterprise Number for documentation: sluice has none of its own. */
#define SD_ID "session@32473"

/* Kept by destination name (base/keeper.h); the routes using it hold the references. */
typedef struct dest {
    sl_syslog_t *probe; /* for the sender's counters */
    sl_series_t *sent, *dropped;
    uint64_t seen_sent, seen_dropped; /* sender counts already in the series */
} dest_t;

struct sl_stream_syslog {
    sl_syslog_t *log;
    dest_t *dest;
};

static sl_metric_family_t *messages;

void sl_stream_syslog_metrics_init(sl_metrics_t *m)
{
    static const char *const labels[] = {"destination", "result"};
    messages = sl_metrics_family(m, "sluice_syslog_messages_total",
                                 "Messages of the stream syslog plugin by destination (host:port/transport): sent "
                                 "(written to the TCP connection, or a datagram the kernel took), or dropped (the "
                                 "queue was full, the kernel refused it, or it was left unsent at close).",
                                 SL_METRIC_COUNTER, labels, 2, NULL, 0);
}

/* Adds what the sender counted since the last look. Under the keeper's lock, which every
 * look at a record takes. */
static void follow(dest_t *d)
{
    uint64_t sent = sl_syslog_sent(d->probe), dropped = sl_syslog_dropped(d->probe);
    if (d->sent && sent > d->seen_sent) sl_series_add(d->sent, SL_METRICS_MAIN_THREAD, (int64_t)(sent - d->seen_sent));
    if (d->dropped && dropped > d->seen_dropped)
        sl_series_add(d->dropped, SL_METRICS_MAIN_THREAD, (int64_t)(dropped - d->seen_dropped));
    d->seen_sent = sent;
    d->seen_dropped = dropped;
}

static void follow_each(void *state, void *ctx)
{
    SL_UNUSED(ctx);
    follow(state);
}

typedef struct dest_settings {
    const sl_syslog_cfg_t *cfg;
    const char *name;
} dest_settings_t;

/* The caller holds a handle to the same destination, so the probe's open shares the running
 * sender: no name lookup, no I/O. */
static void *dest_create(const void *settings)
{
    const dest_settings_t *ds = settings;
    sl_syslog_t *probe = sl_syslog_open(ds->cfg);
    if (!probe) return NULL;
    dest_t *d = sl_xcalloc(1, sizeof(*d));
    d->probe = probe;
    if (messages) {
        const char *sent[] = {ds->name, "sent"}, *dropped[] = {ds->name, "dropped"};
        d->sent = sl_metrics_series(messages, sent);
        d->dropped = sl_metrics_series(messages, dropped);
    }
    /* A sender may outlive the record it had (a route of an old generation still closing): what
     * it counted then is in the series already. */
    d->seen_sent = sl_syslog_sent(probe);
    d->seen_dropped = sl_syslog_dropped(probe);
    return d;
}

static void dest_destroy(void *state)
{
    dest_t *d = state;
    follow(d);
    sl_syslog_close(d->probe);
    free(d);
}

static const sl_keep_type_t dest_type = {.name = "syslog destination", .create = dest_create, .destroy = dest_destroy};

void sl_stream_syslog_metrics_update(void)
{
    sl_keep_each(&dest_type, follow_each, NULL);
}

/* The record for cfg's destination, with one more reference. */
static dest_t *dest_get(const sl_syslog_cfg_t *cfg)
{
    char name[300];
    snprintf(name, sizeof(name), strchr(cfg->host, ':') ? "[%s]:%u/%s" : "%s:%u/%s", cfg->host, (unsigned)cfg->port,
             cfg->transport == SL_SYSLOG_TCP ? "tcp" : "udp");
    dest_settings_t ds = {cfg, name};
    return sl_keep_get_names(&dest_type, name, NULL, &ds);
}

static int enabled(const sl_stream_plugins_cfg_t *pc)
{
    return pc->syslog.enabled;
}

static int init(const void *route, void **data)
{
    const sl_stream_route_t *r = route;
    const sl_syslog_plugin_cfg_t *pc = &r->cfg->stream.plugins.syslog;
    sl_syslog_cfg_t cfg = {
        .host = pc->host,
        .port = (uint16_t)pc->port,
        .transport = pc->sock_type == SL_SYSLOG_SOCK_TCP ? SL_SYSLOG_TCP : SL_SYSLOG_UDP,
        .facility = SL_SYSLOG_LOCAL0,
        .batch_size = SL_MIN(pc->batch_max_size, SL_SYSLOG_BATCH_MAX),
        .flush_interval_ms = pc->flush_timeout_ms,
        .max_queued = pc->max_pending,
        .io_timeout_ms = pc->timeout_ms,
    };
    /* The route's handle first: it resolves the host and starts the sender when it is new. */
    sl_syslog_t *log = sl_syslog_open(&cfg);
    if (!log) return -1;
    dest_t *d = dest_get(&cfg);
    if (!d) {
        sl_syslog_close(log);
        return -1;
    }
    struct sl_stream_syslog *s = sl_xcalloc(1, sizeof(*s));
    s->log = log;
    s->dest = d;
    *data = s;
    return 0;
}

static void destroy(void *data)
{
    struct sl_stream_syslog *s = data;
    /* The route's handle goes first, so that a record alive always has the sender it counts. */
    sl_syslog_close(s->log);
    sl_keep_release(s->dest);
    free(s);
}

/* "addr:port", IPv6 in brackets. */
static void endpoint(char *out, size_t size, const char *ip, unsigned port)
{
    snprintf(out, size, strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, port);
}

static void on_log(const sl_stream_route_t *r, void *data, const sl_stream_facts_t *f)
{
    sl_syslog_sd_t sd;
    sl_syslog_sd_init(&sd);
    sl_syslog_sd_begin(&sd, SD_ID);
    sl_syslog_sd_param(&sd, "service", r->svc->name);
    sl_syslog_sd_param(&sd, "route", r->cfg->name);
    sl_syslog_sd_param(&sd, "client_addr", f->client_ip);
    sl_syslog_sd_paramf(&sd, "client_port", "%u", (unsigned)f->peer->client_port);
    if (f->proxy_ip) {
        sl_syslog_sd_param(&sd, "proxy_addr", f->proxy_ip);
        sl_syslog_sd_paramf(&sd, "proxy_port", "%u", (unsigned)f->proxy_port);
    }
    sl_syslog_sd_param(&sd, "server_addr", f->server_ip);
    sl_syslog_sd_paramf(&sd, "server_port", "%u", (unsigned)f->peer->server_port);
    sl_syslog_sd_param(&sd, "upstream", f->upstream ? f->upstream : "");
    sl_syslog_sd_paramf(&sd, "bytes_from_client", "%llu", (unsigned long long)f->client_rx);
    sl_syslog_sd_paramf(&sd, "bytes_to_client", "%llu", (unsigned long long)f->client_tx);
    sl_syslog_sd_paramf(&sd, "bytes_from_upstream", "%llu", (unsigned long long)f->upstream_rx);
    sl_syslog_sd_paramf(&sd, "bytes_to_upstream", "%llu", (unsigned long long)f->upstream_tx);
    sl_syslog_sd_paramf(&sd, "duration", "%.3f", f->duration_s);
    sl_syslog_sd_paramf(&sd, "status", "%d", f->status);
    if (f->error) sl_syslog_sd_param(&sd, "error", f->error);

    char client[64], server[64], msg[256];
    endpoint(client, sizeof(client), f->client_ip, f->peer->client_port);
    endpoint(server, sizeof(server), f->server_ip, f->peer->server_port);
    snprintf(msg, sizeof(msg), "%s -> %s -> %s: %d%s%s", client, server, f->upstream ? f->upstream : "-", f->status,
             f->error ? " " : "", f->error ? f->error : "");
    int severity = f->status == SL_STREAM_OK ? SL_SYSLOG_INFO : f->status >= 500 ? SL_SYSLOG_WARNING : SL_SYSLOG_NOTICE;
    sl_syslog_send(((struct sl_stream_syslog *)data)->log, severity, "session", sl_syslog_sd_str(&sd), msg);
}

const sl_stream_plugin_ops_t sl_stream_syslog = {
    .m = {.name = "syslog", .init = init, .destroy = destroy},
    .enabled = enabled,
    .on_log = on_log,
};

/* ---- configuration: plugins.syslog, read by the loader (config/schema.h) ---- */

#include "config/schema.h"

static void parse_syslog_host(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_syslog_plugin_cfg_t *sc = base;
    const char *s = sl_schema_string(v, n, 0);
    sl_ip_t ip;
    if (!s) return;
    if (sl_ip_parse(s, strlen(s), &ip) != 0 &&
        (sl_schema_all_digits_dots(s, strlen(s)) || !sl_schema_hostname_ok(s, strlen(s))))
        sl_schema_err(v, n, "expected an IP address or a host name, got '%s'", s);
    else
        sc->host = s;
}

#define SY_OFF(m) offsetof(sl_syslog_plugin_cfg_t, m)
static const sl_schema_choice_t syslog_socks[] = {
    {"udp", SL_SYSLOG_SOCK_UDP, NULL},
    {"tcp", SL_SYSLOG_SOCK_TCP, NULL},
    {NULL, 0, NULL},
};
static const sl_schema_field_t syslog_fields[] = {
    {.name = "host", .type = SL_FIELD_CUSTOM, .custom = parse_syslog_host, .required = 1},
    {.name = "port", .type = SL_FIELD_INT, .off = SY_OFF(port), .min = 1, .max = 65535, .required = 1},
    {.name = "sock_type",
     .type = SL_FIELD_ENUM,
     .off = SY_OFF(sock_type),
     .choices = syslog_socks,
     .def = SL_SYSLOG_SOCK_UDP},
    {.name = "timeout", .type = SL_FIELD_DURATION, .off = SY_OFF(timeout_ms), .min = 1, .max = 60000, .def = 3000},
    {.name = "batch_max_size", .type = SL_FIELD_U32, .off = SY_OFF(batch_max_size), .min = 1, .max = 10000, .def = 100},
    {.name = "flush_timeout",
     .type = SL_FIELD_DURATION,
     .off = SY_OFF(flush_timeout_ms),
     .min = 1,
     .max = 3600000,
     .def = 1000},
    {.name = "max_pending", .type = SL_FIELD_U32, .off = SY_OFF(max_pending), .min = 1, .max = 1000000, .def = 10000},
};
static const sl_schema_section_t syslog_section = SL_SCHEMA_SECTION(syslog_fields);

static void parse_syslog(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_syslog_plugin_cfg_t *sc)
{
    sl_schema_defaults(v, &syslog_section, sc);
    sl_schema_parse(v, n, &syslog_section, sc);
    sc->enabled = 1;
    const sl_config_node_t *bm = sl_node_get(n, "batch_max_size");
    if (bm && sc->batch_max_size > sc->max_pending) {
        size_t old = sl_schema_path_key(v, "batch_max_size");
        sl_schema_err(v, bm, "must not be larger than max_pending (%u)", sc->max_pending);
        sl_schema_path_pop(v, old);
    }
}

void sl_stream_syslog_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_stream_plugins_cfg_t *pc)
{
    parse_syslog(v, n, &pc->syslog);
}
