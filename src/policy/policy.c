#include "policy/policy.h"
#include "base/common.h"
#include "base/log.h"
#include "runtime/generation.h"

/* Every policy, in chain order. */
static const sl_policy_ops_t *const policies[SL_POLICY_MAX] = {
    &sl_policy_ip_access,
    &sl_policy_local_rate_limit,
    &sl_policy_path_rewrite,
    &sl_policy_request_headers,
    &sl_policy_timeout,
    &sl_policy_retry,
    &sl_policy_websocket,
    &sl_policy_response_headers,
    &sl_policy_cookie_rewrite,
};

int sl_policy_chain_init(sl_route_rt_t *rt, sl_config_errors_t *errs)
{
    rt->n_chain = 0;
    for (size_t i = 0; i < SL_ARRAY_LEN(policies) && policies[i]; i++) {
        if (!policies[i]->enabled(&rt->cfg->policies)) continue;
        if (policies[i]->init && policies[i]->init(rt) != 0) {
            sl_config_errors_add(errs, NULL, 0, 0, NULL, "service %s, route %s: policy %s failed to initialise",
                                 rt->svc ? rt->svc->name : "?", rt->cfg->name, policies[i]->name);
            sl_policy_chain_destroy(rt);
            return -1;
        }
        rt->chain[rt->n_chain++] = policies[i];
    }
    return 0;
}

void sl_policy_chain_destroy(sl_route_rt_t *rt)
{
    for (size_t i = 0; i < rt->n_chain; i++)
        if (rt->chain[i]->destroy) rt->chain[i]->destroy(rt);
    rt->n_chain = 0;
}

int sl_policy_on_request(const sl_route_rt_t *rt, const sl_policy_req_t *req, const char **code)
{
    for (size_t i = 0; i < rt->n_chain; i++) {
        if (!rt->chain[i]->on_request) continue;
        int status = rt->chain[i]->on_request(rt, req, code);
        if (status) return status;
    }
    return 0;
}

int sl_policy_upstream_path(const sl_route_rt_t *rt, const char *path, size_t len, sl_buf_t *out)
{
    for (size_t i = 0; i < rt->n_chain; i++)
        if (rt->chain[i]->upstream_path && rt->chain[i]->upstream_path(rt, path, len, out)) return 1;
    return 0;
}

int sl_policy_upstream_drop(const sl_route_rt_t *rt, const char *name, size_t len)
{
    for (size_t i = 0; i < rt->n_chain; i++)
        if (rt->chain[i]->upstream_drop && rt->chain[i]->upstream_drop(rt, name, len)) return 1;
    return 0;
}

void sl_policy_upstream_emit(const sl_route_rt_t *rt, sl_buf_t *head)
{
    for (size_t i = 0; i < rt->n_chain; i++)
        if (rt->chain[i]->upstream_emit) rt->chain[i]->upstream_emit(rt, head);
}

int sl_policy_response_drop(const sl_route_rt_t *rt, const char *name, size_t len)
{
    for (size_t i = 0; i < rt->n_chain; i++)
        if (rt->chain[i]->response_drop && rt->chain[i]->response_drop(rt, name, len)) return 1;
    return 0;
}

void sl_policy_response_emit(const sl_route_rt_t *rt, sl_buf_t *head)
{
    for (size_t i = 0; i < rt->n_chain; i++)
        if (rt->chain[i]->response_emit) rt->chain[i]->response_emit(rt, head);
}

int sl_policy_response_header(const sl_route_rt_t *rt, const char *name, size_t nlen, const char *value, size_t vlen,
                              sl_buf_t *out)
{
    for (size_t i = 0; i < rt->n_chain; i++)
        if (rt->chain[i]->response_header && rt->chain[i]->response_header(rt, name, nlen, value, vlen, out)) return 1;
    return 0;
}

void sl_policy_state_emit(const sl_route_rt_t *rt, const sl_policy_state_t *st, sl_buf_t *head)
{
    for (size_t i = 0; i < rt->n_chain; i++)
        if (rt->chain[i]->state_emit) rt->chain[i]->state_emit(rt, st, head);
}

uint64_t sl_policy_deadline_ms(const sl_route_rt_t *rt)
{
    for (size_t i = 0; i < rt->n_chain; i++)
        if (rt->chain[i]->deadline_ms) return rt->chain[i]->deadline_ms(rt);
    return 0;
}

uint64_t sl_policy_websocket_idle_ms(const sl_route_rt_t *rt)
{
    for (size_t i = 0; i < rt->n_chain; i++)
        if (rt->chain[i]->websocket_idle_ms) return rt->chain[i]->websocket_idle_ms(rt);
    return 0;
}
