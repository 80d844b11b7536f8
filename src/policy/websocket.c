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
    .m = {.name = "websocket"},
    .enabled = enabled,
    .websocket_idle_ms = websocket_idle_ms,
};

/* ---- configuration: websocket, read by the loader (config/schema.h) ---- */

#include "config/schema.h"

#define WS_OFF(m) offsetof(sl_policies_cfg_t, websocket.m)
static const sl_schema_field_t websocket_fields[] = {
    {.name = "idle_timeout", .type = SL_FIELD_DURATION, .off = WS_OFF(idle_timeout_ms), .min = 1, .max = SL_DAY_MS},
};
static const sl_schema_section_t websocket_section = SL_SCHEMA_SECTION(websocket_fields);

/* websocket: true | false | {idle_timeout: DURATION}. */
void sl_policy_websocket_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc)
{
    if (n->kind == SL_NODE_MAP) {
        sl_schema_parse(v, n, &websocket_section, pc);
        pc->websocket.enabled = 1;
        return;
    }
    if (n->kind == SL_NODE_SCALAR && n->bad) return;
    const char *s = n->kind == SL_NODE_SCALAR && !sl_node_is_null(n) ? n->str : "";
    if (sl_schema_parse_bool(s, &pc->websocket.enabled) != 0)
        sl_schema_err(v, n, "expected true, false or a map such as {idle_timeout: 10m}");
}
