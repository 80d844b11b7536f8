/* A stream session's access log line (every session, the refused ones and those no route took
 * included, whatever the route's plugins), and the count of connections no route took. */
#include "base/common.h"
#include "observe/access_log.h"
#include "observe/metrics.h"
#include "runtime/generation.h"
#include "runtime/worker.h"
#include "stream/stream.h"

#include <string.h>

static sl_series_t *unrouted[2]; /* tcp, udp */

void sl_stream_log_metrics_init(sl_metrics_t *m)
{
    static const char *const proto[] = {"protocol"};
    sl_metric_family_t *f = sl_metrics_family(m, "sluice_stream_unrouted_total",
                                              "Stream connections (tcp) and sessions (udp) refused because no route "
                                              "takes their address, port and client.",
                                              SL_METRIC_COUNTER, proto, 1, NULL, 0);
    unrouted[0] = sl_metrics_series(f, (const char *const[]){"tcp"});
    unrouted[1] = sl_metrics_series(f, (const char *const[]){"udp"});
}

void sl_stream_log(struct sl_worker *w, const sl_generation_t *g, const sl_stream_facts_t *f, int udp)
{
    if (!f->route && f->error && !strcmp(f->error, "no_route") && unrouted[udp ? 1 : 0])
        sl_series_add(unrouted[udp ? 1 : 0], w->index, 1);
    sl_access_log_t *log = g ? sl_generation_access_log(g) : NULL;
    if (!log) return;
    sl_stream_entry_t e = {
        .time_unix_ms = f->start_unix_ms,
        .udp = udp,
        .client = f->client_ip,
        .client_port = f->peer->client_port,
        .server = f->server_ip,
        .server_port = f->peer->server_port,
        .route = f->route ? f->route->cfg->name : NULL,
        .service = f->route ? f->route->svc->name : NULL,
        .upstream = f->upstream,
        .client_rx = f->client_rx,
        .client_tx = f->client_tx,
        .upstream_rx = f->upstream_rx,
        .upstream_tx = f->upstream_tx,
        .duration_ms = f->duration_s * 1e3,
        .status = f->status,
        .error = f->error,
    };
    sl_access_buf_write_stream(&w->alog, log, &g->cfg->gateway.access_log.fmt, &e, uv_now(&w->loop));
}
