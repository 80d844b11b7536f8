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
    .name = "timeout",
    .enabled = enabled,
    .deadline_ms = deadline_ms,
};
