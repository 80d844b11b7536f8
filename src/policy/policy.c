/* The HTTP route's chain: the registry's policies the route enables (src/modules.c), built by
 * the one chain implementation (base/chain.h), and the hooks run over it in order. */
#include "policy/policy.h"
#include "base/common.h"
#include "base/log.h"
#include "modules.h"
#include "runtime/generation.h"

/* The i-th policy of rt's chain. */
static const sl_policy_ops_t *at(const sl_route_rt_t *rt, size_t i)
{
    return (const sl_policy_ops_t *)rt->chain.mods[i]; /* m is the ops table's first member */
}

int sl_policy_chain_init(sl_route_rt_t *rt, sl_config_errors_t *errs)
{
    const sl_policies_cfg_t *pc = &rt->cfg->policies;
    const sl_module_t *mods[SL_POLICY_MODULES_MAX];
    unsigned char on[SL_POLICY_MODULES_MAX];
    for (size_t i = 0; i < sl_n_policy_modules; i++) {
        const sl_policy_module_t *m = &sl_policy_modules[i];
        mods[i] = &m->ops->m;
        on[i] = m->read ? pc->settings[i] != NULL : m->ops->enabled(pc) != 0;
    }
    const sl_module_t *failed = sl_chain_build(&rt->chain, mods, on, sl_n_policy_modules, rt);
    if (!failed) return 0;
    sl_config_errors_add(errs, NULL, 0, 0, NULL, "service %s, route %s: policy %s failed to initialise",
                         rt->svc ? rt->svc->name : "?", rt->cfg->name, failed->name);
    return -1;
}

const void *sl_policy_settings(const sl_route_rt_t *rt, const sl_policy_ops_t *ops)
{
    for (size_t i = 0; i < sl_n_policy_modules; i++)
        if (sl_policy_modules[i].ops == ops) return rt->cfg->policies.settings[i];
    return NULL;
}

void sl_policy_chain_destroy(sl_route_rt_t *rt)
{
    sl_chain_destroy(&rt->chain);
}

int sl_policy_on_request(const sl_route_rt_t *rt, const sl_policy_req_t *req, const char **code)
{
    for (size_t i = 0; i < rt->chain.n; i++) {
        if (!at(rt, i)->on_request) continue;
        int status = at(rt, i)->on_request(rt, rt->chain.data[i], req, code);
        if (status) return status;
    }
    return 0;
}

void sl_policy_on_upstream_request(const sl_route_rt_t *rt, sl_http_req_t *up, sl_arena_t *a)
{
    for (size_t i = 0; i < rt->chain.n; i++)
        if (at(rt, i)->on_upstream_request) at(rt, i)->on_upstream_request(rt, rt->chain.data[i], up, a);
}

void sl_policy_on_response_headers(const sl_route_rt_t *rt, const sl_policy_state_t *st, sl_http_resp_t *resp,
                                   sl_arena_t *a)
{
    /* Reverse order: the response travels back through the chain (cookie_rewrite sees the
     * upstream's Set-Cookie before response_headers replaces it, the rate limit's fields come
     * after what response_headers adds). */
    for (size_t i = rt->chain.n; i-- > 0;)
        if (at(rt, i)->on_response_headers) at(rt, i)->on_response_headers(rt, rt->chain.data[i], st, resp, a);
}

void sl_policy_on_log(const sl_route_rt_t *rt, const sl_policy_state_t *st, struct sl_access_entry *e)
{
    for (size_t i = 0; i < rt->chain.n; i++)
        if (at(rt, i)->on_log) at(rt, i)->on_log(rt, rt->chain.data[i], st, e);
}

uint64_t sl_policy_deadline_ms(const sl_route_rt_t *rt)
{
    for (size_t i = 0; i < rt->chain.n; i++)
        if (at(rt, i)->deadline_ms) return at(rt, i)->deadline_ms(rt, rt->chain.data[i]);
    return 0;
}

uint64_t sl_policy_websocket_idle_ms(const sl_route_rt_t *rt)
{
    for (size_t i = 0; i < rt->chain.n; i++)
        if (at(rt, i)->websocket_idle_ms) return at(rt, i)->websocket_idle_ms(rt, rt->chain.data[i]);
    return 0;
}
