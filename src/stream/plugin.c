/* The stream plugins' chain (the plugins in the registry's order, src/modules.c) and the end
 * of every session. */
#include "base/common.h"
#include "base/log.h"
#include "modules.h"
#include "stream/stream.h"

/* The i-th plugin of r's chain. */
static const sl_stream_plugin_ops_t *at(const sl_stream_route_t *r, size_t i)
{
    return (const sl_stream_plugin_ops_t *)r->chain.mods[i]; /* m is the ops table's first member */
}

int sl_stream_plugins_init(sl_stream_route_t *r, sl_config_errors_t *errs)
{
    const sl_stream_plugins_cfg_t *pc = &r->cfg->stream.plugins;
    const sl_module_t *mods[SL_STREAM_PLUGIN_MAX];
    unsigned char on[SL_STREAM_PLUGIN_MAX];
    for (size_t i = 0; i < sl_n_stream_plugin_modules; i++) {
        mods[i] = &sl_stream_plugin_modules[i].ops->m;
        on[i] = sl_stream_plugin_modules[i].ops->enabled(pc) != 0;
    }
    const sl_module_t *failed = sl_chain_build(&r->chain, mods, on, sl_n_stream_plugin_modules, r);
    if (!failed) return 0;
    sl_config_errors_add(errs, NULL, 0, 0, NULL, "stream route %s: plugin %s failed to initialise", r->cfg->name,
                         failed->name);
    return -1;
}

void sl_stream_plugins_destroy(sl_stream_route_t *r)
{
    sl_chain_destroy(&r->chain);
}

int sl_stream_plugins_access(sl_stream_route_t *r, const sl_stream_peer_t *peer, sl_stream_plugin_state_t *st,
                             unsigned worker, uint64_t *delay_ms)
{
    *delay_ms = 0;
    for (size_t i = 0; i < r->chain.n; i++) {
        if (!at(r, i)->on_access) continue;
        uint64_t d = 0;
        int status = at(r, i)->on_access(r, r->chain.data[i], peer, st, worker, &d);
        if (status) return status;
        if (d > *delay_ms) *delay_ms = d;
    }
    return 0;
}

void sl_stream_session_end(const sl_stream_facts_t *f)
{
    sl_stream_route_t *r = f->route;
    for (size_t i = 0; i < r->chain.n; i++)
        if (at(r, i)->on_log) at(r, i)->on_log(r, r->chain.data[i], f);
}
