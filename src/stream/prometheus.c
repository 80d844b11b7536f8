/* prometheus: a route's sessions on /metrics. Connections total and open, bytes received from
 * and sent to each side, session durations, and sessions by outcome (SL_STREAM_*). Series are
 * created when the generation is built, so a session only adds to per-worker shards; they are
 * looked up by labels, so a reload that keeps a route keeps counting into the same series. */
#include "base/common.h"
#include "observe/metrics.h"
#include "stream/stream.h"

#include <stdio.h>

static const int statuses[] = {SL_STREAM_OK,       SL_STREAM_BAD_CLIENT,  SL_STREAM_FORBIDDEN,
                               SL_STREAM_INTERNAL, SL_STREAM_BAD_GATEWAY, SL_STREAM_UNAVAILABLE};

enum { SIDE_CLIENT, SIDE_UPSTREAM };

struct sl_stream_route_metrics {
    sl_series_t *total, *active, *duration;
    sl_series_t *received[2], *sent[2]; /* by SIDE_* */
    sl_series_t *sessions[SL_ARRAY_LEN(statuses)];
};

static struct {
    sl_metric_family_t *total, *active, *received, *sent, *duration, *sessions;
} fam;

void sl_stream_metrics_init(sl_metrics_t *m)
{
    static const char *const route[] = {"service", "route"};
    static const char *const side[] = {"service", "route", "side"};
    static const char *const status[] = {"service", "route", "status"};
    /* Sessions last from milliseconds (a query) to hours (a database connection). */
    static const double buckets[] = {0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400};
    fam.total = sl_metrics_family(m, "sluice_stream_connections_total",
                                  "Stream connections accepted by a route (refused ones included).", SL_METRIC_COUNTER,
                                  route, 2, NULL, 0);
    fam.active = sl_metrics_family(m, "sluice_stream_connections_active", "Stream sessions of a route open now.",
                                   SL_METRIC_GAUGE, route, 2, NULL, 0);
    fam.received = sl_metrics_family(m, "sluice_stream_received_bytes_total",
                                     "Bytes a route's sessions received, from the client or from the upstream.",
                                     SL_METRIC_COUNTER, side, 3, NULL, 0);
    fam.sent = sl_metrics_family(m, "sluice_stream_sent_bytes_total",
                                 "Bytes a route's sessions sent, to the client or to the upstream.", SL_METRIC_COUNTER,
                                 side, 3, NULL, 0);
    fam.duration = sl_metrics_family(m, "sluice_stream_session_duration_seconds",
                                     "How long a route's sessions lasted, from accept to close.", SL_METRIC_HISTOGRAM,
                                     route, 2, buckets, SL_ARRAY_LEN(buckets));
    fam.sessions = sl_metrics_family(m, "sluice_stream_sessions_total",
                                     "Finished stream sessions by outcome: 200 closed normally, 400 client problem, "
                                     "403 refused by an access rule, 500 internal error, 502 upstream unreachable or "
                                     "reset, 503 over the connection limit.",
                                     SL_METRIC_COUNTER, status, 3, NULL, 0);
    sl_stream_log_metrics_init(m);
}

static int enabled(const sl_stream_plugins_cfg_t *pc)
{
    return pc->prometheus.enabled;
}

static int init(const void *owner, void **data)
{
    const sl_stream_route_t *r = owner;
    if (!fam.total) return -1; /* sl_stream_metrics_init() was not called */
    struct sl_stream_route_metrics *m = sl_xcalloc(1, sizeof(*m));
    const char *route[] = {r->svc->name, r->cfg->name};
    m->total = sl_metrics_series(fam.total, route);
    m->active = sl_metrics_series(fam.active, route);
    m->duration = sl_metrics_series(fam.duration, route);
    static const char *const sides[] = {[SIDE_CLIENT] = "client", [SIDE_UPSTREAM] = "upstream"};
    for (size_t i = 0; i < 2; i++) {
        const char *side[] = {r->svc->name, r->cfg->name, sides[i]};
        m->received[i] = sl_metrics_series(fam.received, side);
        m->sent[i] = sl_metrics_series(fam.sent, side);
    }
    for (size_t i = 0; i < SL_ARRAY_LEN(statuses); i++) {
        char text[8];
        snprintf(text, sizeof(text), "%d", statuses[i]);
        const char *status[] = {r->svc->name, r->cfg->name, text};
        m->sessions[i] = sl_metrics_series(fam.sessions, status);
    }
    *data = m;
    return 0;
}

static void destroy(void *data)
{
    free(data);
}

static int on_access(const sl_stream_route_t *r, void *data, const sl_stream_peer_t *peer, sl_stream_plugin_state_t *st,
                     unsigned worker, uint64_t *delay_ms)
{
    SL_UNUSED(r);
    SL_UNUSED(peer);
    SL_UNUSED(delay_ms);
    struct sl_stream_route_metrics *m = data;
    sl_series_add(m->total, worker, 1);
    sl_series_add(m->active, worker, 1);
    st->prometheus_counted = 1;
    st->prometheus_seen = 1;
    return 0;
}

static void on_log(const sl_stream_route_t *r, void *data, const sl_stream_facts_t *f)
{
    SL_UNUSED(r);
    struct sl_stream_route_metrics *m = data;
    unsigned w = f->worker;
    if (f->state->prometheus_counted) {
        f->state->prometheus_counted = 0;
        sl_series_add(m->active, w, -1);
    }
    /* A session that ended before its access (a broken PROXY protocol header) is a connection
     * the route took all the same. */
    if (!f->state->prometheus_seen) {
        f->state->prometheus_seen = 1;
        sl_series_add(m->total, w, 1);
    }
    if (f->client_rx) sl_series_add(m->received[SIDE_CLIENT], w, (int64_t)f->client_rx);
    if (f->upstream_rx) sl_series_add(m->received[SIDE_UPSTREAM], w, (int64_t)f->upstream_rx);
    if (f->client_tx) sl_series_add(m->sent[SIDE_CLIENT], w, (int64_t)f->client_tx);
    if (f->upstream_tx) sl_series_add(m->sent[SIDE_UPSTREAM], w, (int64_t)f->upstream_tx);
    sl_series_observe(m->duration, w, f->duration_s);
    for (size_t i = 0; i < SL_ARRAY_LEN(statuses); i++)
        if (statuses[i] == f->status) sl_series_add(m->sessions[i], w, 1);
}

const sl_stream_plugin_ops_t sl_stream_prometheus = {
    .m = {.name = "prometheus", .init = init, .destroy = destroy},
    .enabled = enabled,
    .on_access = on_access,
    .on_log = on_log,
};

/* ---- configuration: plugins.prometheus, read by the loader (config/schema.h) ---- */

#include "config/schema.h"

void sl_stream_prometheus_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_stream_plugins_cfg_t *pc)
{
    if (!sl_node_is_null(n) && (n->kind != SL_NODE_MAP || n->n))
        sl_schema_err(v, n, "expected {} (the plugin has no settings)");
    pc->prometheus.enabled = 1;
}
