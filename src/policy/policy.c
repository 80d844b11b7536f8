#include "policy/policy.h"
#include "base/common.h"
#include "base/log.h"
#include "modules.h"
#include "runtime/generation.h"

int sl_policy_chain_init(sl_route_rt_t *rt, sl_config_errors_t *errs)
{
    rt->n_chain = 0;
    const sl_policies_cfg_t *pc = &rt->cfg->policies;
    for (size_t i = 0; i < sl_n_policy_modules; i++) {
        const sl_policy_module_t *m = &sl_policy_modules[i];
        if (m->read ? !pc->settings[i] : !m->ops->enabled(pc)) continue;
        void *data = NULL;
        if (m->ops->init && m->ops->init(rt, &data) != 0) {
            sl_config_errors_add(errs, NULL, 0, 0, NULL, "service %s, route %s: policy %s failed to initialise",
                                 rt->svc ? rt->svc->name : "?", rt->cfg->name, m->ops->name);
            sl_policy_chain_destroy(rt);
            return -1;
        }
        rt->chain_data[rt->n_chain] = data;
        rt->chain[rt->n_chain++] = m->ops;
    }
    return 0;
}

const void *sl_policy_settings(const sl_route_rt_t *rt, const sl_policy_ops_t *ops)
{
    for (size_t i = 0; i < sl_n_policy_modules; i++)
        if (sl_policy_modules[i].ops == ops) return rt->cfg->policies.settings[i];
    return NULL;
}

void sl_policy_chain_destroy(sl_route_rt_t *rt)
{
    for (size_t i = 0; i < rt->n_chain; i++) {
        if (rt->chain[i]->destroy) rt->chain[i]->destroy(rt->chain_data[i]);
        rt->chain_data[i] = NULL;
    }
    rt->n_chain = 0;
}

int sl_policy_on_request(const sl_route_rt_t *rt, const sl_policy_req_t *req, const char **code)
{
    for (size_t i = 0; i < rt->n_chain; i++) {
        if (!rt->chain[i]->on_request) continue;
        int status = rt->chain[i]->on_request(rt, rt->chain_data[i], req, code);
        if (status) return status;
    }
    return 0;
}

void sl_policy_on_upstream_request(const sl_route_rt_t *rt, sl_http_req_t *up, sl_arena_t *a)
{
    for (size_t i = 0; i < rt->n_chain; i++)
        if (rt->chain[i]->on_upstream_request) rt->chain[i]->on_upstream_request(rt, rt->chain_data[i], up, a);
}

void sl_policy_on_response_headers(const sl_route_rt_t *rt, const sl_policy_state_t *st, sl_http_resp_t *resp,
                                   sl_arena_t *a)
{
    /* Reverse order: the response travels back through the chain (cookie_rewrite sees the
     * upstream's Set-Cookie before response_headers replaces it, the rate limit's fields come
     * after what response_headers adds). */
    for (size_t i = rt->n_chain; i-- > 0;)
        if (rt->chain[i]->on_response_headers) rt->chain[i]->on_response_headers(rt, rt->chain_data[i], st, resp, a);
}

void sl_policy_on_log(const sl_route_rt_t *rt, const sl_policy_state_t *st, struct sl_access_entry *e)
{
    for (size_t i = 0; i < rt->n_chain; i++)
        if (rt->chain[i]->on_log) rt->chain[i]->on_log(rt, rt->chain_data[i], st, e);
}

uint64_t sl_policy_deadline_ms(const sl_route_rt_t *rt)
{
    for (size_t i = 0; i < rt->n_chain; i++)
        if (rt->chain[i]->deadline_ms) return rt->chain[i]->deadline_ms(rt, rt->chain_data[i]);
    return 0;
}

uint64_t sl_policy_websocket_idle_ms(const sl_route_rt_t *rt)
{
    for (size_t i = 0; i < rt->n_chain; i++)
        if (rt->chain[i]->websocket_idle_ms) return rt->chain[i]->websocket_idle_ms(rt, rt->chain_data[i]);
    return 0;
}
