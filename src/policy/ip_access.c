/* ip_access: allow or deny lists of IPv4/IPv6 addresses and CIDRs. source: peer checks the
 * TCP peer; source: remote (default) the client gateway.proxy_layers hops from the right of
 * X-Forwarded-For (with one proxy in front, the client it saw), the peer when there are fewer
 * hops. Refused requests get 403 and nothing reaches the upstream. */
#include "base/cidr.h"
#include "base/common.h"
#include "policy/policy.h"
#include "runtime/generation.h"

#include <string.h>

static int enabled(const sl_policies_cfg_t *pc)
{
    return pc->ip_access.enabled;
}

static int init(const sl_route_rt_t *rt, void **data)
{
    const sl_policies_cfg_t *pc = &rt->cfg->policies;
    sl_cidr_set_t *set = sl_xmalloc(sizeof(*set));
    sl_cidr_set_init(set);
    for (size_t i = 0; i < pc->ip_access.n_cidrs; i++) {
        sl_ip_t ip;
        int prefix;
        /* The loader checked every entry; one that still does not parse must not be skipped,
         * or a deny list would lose it and admit that address. */
        if (sl_cidr_parse(pc->ip_access.cidrs[i], &ip, &prefix) != 0) {
            sl_cidr_set_free(set); /* not in the chain yet: destroy() will not run */
            free(set);
            return -1;
        }
        sl_cidr_set_add(set, &ip, prefix);
    }
    *data = set;
    return 0;
}

static void destroy(void *data)
{
    if (!data) return;
    sl_cidr_set_free(data);
    free(data);
}

static int on_request(const sl_route_rt_t *rt, void *data, const sl_policy_req_t *req, const char **code)
{
    const sl_policies_cfg_t *pc = &rt->cfg->policies;
    const char *addr = pc->ip_access.source_peer ? req->peer : req->remote;
    size_t len = pc->ip_access.source_peer ? strlen(req->peer) : req->remote_len;
    sl_ip_t ip;
    /* A source that is not an address (a forged X-Forwarded-For) matches no list entry. */
    int listed = sl_ip_parse(addr, len, &ip) == 0 && sl_cidr_set_contains(data, &ip);
    if (listed == pc->ip_access.allow) return 0;
    *code = "ip_denied";
    return 403;
}

const sl_policy_ops_t sl_policy_ip_access = {
    .name = "ip_access",
    .enabled = enabled,
    .init = init,
    .destroy = destroy,
    .on_request = on_request,
};
