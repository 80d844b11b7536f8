/* timeout: the most the whole request may take, retries included. The proxy arms its
 * upstream timers with what is left of it; past it the client gets 504. */
#include "policy/policy.h"
#include "runtime/generation.h"

static int enabled(const sl_policies_cfg_t *pc)
{
    return pc->timeout.enabled;
}

static uint64_t deadline_ms(const sl_route_rt_t *rt, void *data)
{
    (void)data;
    return rt->cfg->policies.timeout.ms;
}

const sl_policy_ops_t sl_policy_timeout = {
    .m = {.name = "timeout"},
    .enabled = enabled,
    .deadline_ms = deadline_ms,
};

/* ---- configuration: timeout, read by the loader (config/schema.h) ---- */

#include "config/schema.h"

/* timeout: whole seconds (at least 1), as in the product we answer to, or a duration. */
void sl_policy_timeout_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc)
{
    uint64_t ms = 0;
    static const char msg[] =
        "expected whole seconds (at least 1) or a duration such as 500ms, 5s, 1m30s (at most 24h)";
    if (sl_schema_duration_in(v, n, 1, SL_DAY_MS, &ms, msg) != 0) return;
    pc->timeout.enabled = 1;
    pc->timeout.ms = ms;
}
