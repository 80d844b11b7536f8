/* The stream plugins, in the order their hooks run, and the end of every session. */
#include "base/common.h"
#include "base/log.h"
#include "stream/stream.h"

/* prometheus first, so that refused sessions are counted too. The syslog plugin goes last: its
 * on_log sends the session's message. */
static const sl_stream_plugin_ops_t *const plugins[] = {
    &sl_stream_prometheus,
    &sl_stream_ip_restriction,
    &sl_stream_limit_conn,
    &sl_stream_syslog,
};

int sl_stream_plugins_init(sl_stream_route_t *r, sl_config_errors_t *errs)
{
    const sl_stream_plugins_cfg_t *pc = &r->cfg->stream.plugins;
    for (size_t i = 0; i < SL_ARRAY_LEN(plugins) && r->n_chain < SL_STREAM_PLUGIN_MAX; i++) {
        if (!plugins[i]->enabled(pc)) continue;
        /* No chain with a hole: a route without its ip-restriction or limit-conn would admit
         * whom the configuration refuses. */
        if (plugins[i]->init && plugins[i]->init(r) != 0) {
            sl_config_errors_add(errs, NULL, 0, 0, NULL, "stream route %s: plugin %s failed to initialise", r->cfg->name,
                                 plugins[i]->name);
            sl_stream_plugins_destroy(r);
            return -1;
        }
        r->chain[r->n_chain++] = plugins[i];
    }
    return 0;
}

void sl_stream_plugins_destroy(sl_stream_route_t *r)
{
    for (size_t i = 0; i < r->n_chain; i++)
        if (r->chain[i]->destroy) r->chain[i]->destroy(r);
    r->n_chain = 0;
}

int sl_stream_plugins_access(sl_stream_route_t *r, const sl_stream_peer_t *peer, sl_stream_plugin_state_t *st,
                             unsigned worker, uint64_t *delay_ms)
{
    *delay_ms = 0;
    for (size_t i = 0; i < r->n_chain; i++) {
        if (!r->chain[i]->on_access) continue;
        uint64_t d = 0;
        int status = r->chain[i]->on_access(r, peer, st, worker, &d);
        if (status) return status;
        if (d > *delay_ms) *delay_ms = d;
    }
    return 0;
}

void sl_stream_session_end(const sl_stream_facts_t *f)
{
    sl_stream_route_t *r = f->route;
    for (size_t i = 0; i < r->n_chain; i++)
        if (r->chain[i]->on_log) r->chain[i]->on_log(r, f);
}
