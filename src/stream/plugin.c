/* The stream plugins' chain (the plugins in the registry's order, src/modules.c) and the end
 * of every session. */
#include "base/common.h"
#include "base/log.h"
#include "modules.h"
#include "stream/stream.h"

int sl_stream_plugins_init(sl_stream_route_t *r, sl_config_errors_t *errs)
{
    const sl_stream_plugins_cfg_t *pc = &r->cfg->stream.plugins;
    for (size_t i = 0; i < sl_n_stream_plugin_modules; i++) {
        const sl_stream_plugin_ops_t *p = sl_stream_plugin_modules[i].ops;
        if (!p->enabled(pc)) continue;
        /* No chain with a hole: a route without its ip-restriction or limit-conn would admit
         * whom the configuration refuses. */
        if (p->init && p->init(r) != 0) {
            sl_config_errors_add(errs, NULL, 0, 0, NULL, "stream route %s: plugin %s failed to initialise", r->cfg->name,
                                 p->name);
            sl_stream_plugins_destroy(r);
            return -1;
        }
        r->chain[r->n_chain++] = p;
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
