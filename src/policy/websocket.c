/* websocket: lets a request with "Upgrade: websocket" through to the upstream. When the upstream
 * answers 101, the client and upstream connections become a tunnel (http/tunnel.c) that ends
 * after idle_timeout without bytes either way; routes without the policy refuse such requests. */
#include "policy/policy.h"
#include "runtime/generation.h"

static int enabled(const sl_policies_cfg_t *pc)
{
    return pc->websocket.enabled;
}

static uint64_t websocket_idle_ms(const sl_route_rt_t *rt, void *data)
{
    (void)data;
    uint64_t ms = rt->cfg->policies.websocket.idle_timeout_ms;
    /* Like nginx's proxy_read_timeout, which bounds a quiet WebSocket too. */
    return ms ? ms : rt->svc->upstream.read_timeout_ms;
}

const sl_policy_ops_t sl_policy_websocket = {
    .name = "websocket",
    .enabled = enabled,
    .websocket_idle_ms = websocket_idle_ms,
};
