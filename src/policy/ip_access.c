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

static int init(const void *route, void **data)
{
    const sl_route_rt_t *rt = route;
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
    .m = {.name = "ip_access", .init = init, .destroy = destroy},
    .enabled = enabled,
    .on_request = on_request,
};

/* ---- configuration: ip_access, read by the loader (config/schema.h) ---- */

#include "config/schema.h"

static void parse_cidr_list(sl_schema_ctx_t *v, const sl_config_node_t *n, const char ***out, size_t *n_out)
{
    long cnt = sl_schema_list(v, n, 0);
    if (cnt <= 0) return;
    *out = sl_arena_calloc(v->a, (size_t)cnt * sizeof(**out));
    size_t i = 0;
    for (const sl_config_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        const char *s = sl_schema_string(v, c, 0);
        sl_ip_t ip;
        int prefix;
        if (s && sl_cidr_parse(s, &ip, &prefix) != 0)
            sl_schema_err(v, c, "expected an IPv4 or IPv6 address or CIDR (10.0.0.0/8, 2001:db8::/32), got '%s'", s);
        else if (s)
            (*out)[(*n_out)++] = s;
        sl_schema_path_pop(v, old);
    }
}

void sl_policy_ip_access_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc)
{
    if (n->kind != SL_NODE_MAP) {
        sl_schema_err(v, n, "expected a map with 'allow' or 'deny', got %s", sl_node_kind_name(n));
        return;
    }
    const sl_config_node_t *allow = sl_node_get(n, "allow"), *deny = sl_node_get(n, "deny"),
                           *source = sl_node_get(n, "source");
    for (const sl_config_node_t *c = n->first; c; c = c->next)
        if (strcmp(c->key, "allow") && strcmp(c->key, "deny") && strcmp(c->key, "source")) {
            size_t old = sl_schema_path_key(v, c->key);
            sl_schema_err_at(v, c->key_line, c->key_col, "unknown key (expected one of: allow, deny, source)");
            sl_schema_path_pop(v, old);
        }
    if (!allow == !deny) {
        sl_schema_err(v, n, "needs exactly one of 'allow' and 'deny'");
        return;
    }
    pc->ip_access.enabled = 1;
    pc->ip_access.allow = allow != NULL;
    size_t old = sl_schema_path_key(v, allow ? "allow" : "deny");
    parse_cidr_list(v, allow ? allow : deny, &pc->ip_access.cidrs, &pc->ip_access.n_cidrs);
    sl_schema_path_pop(v, old);
    if (source) {
        old = sl_schema_path_key(v, "source");
        const char *s = sl_schema_string(v, source, 0);
        if (s && !strcmp(s, "peer"))
            pc->ip_access.source_peer = 1;
        else if (s && strcmp(s, "remote"))
            sl_schema_err(v, source, "unknown value '%s' (expected one of: remote, peer)", s);
        sl_schema_path_pop(v, old);
    }
}
