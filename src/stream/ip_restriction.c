/* ip-restriction: a whitelist or a blacklist of IPv4/IPv6 addresses and CIDRs, checked against
 * the client before anything else happens; a refused client is closed (403) and no upstream
 * connection is made. */
#include "base/cidr.h"
#include "base/common.h"
#include "stream/stream.h"

static int enabled(const sl_stream_plugins_cfg_t *pc)
{
    return pc->ip_restriction.enabled;
}

static int init(const void *route, void **data)
{
    const sl_stream_route_t *r = route;
    const sl_stream_plugins_cfg_t *pc = &r->cfg->stream.plugins;
    sl_cidr_set_t *set = sl_xmalloc(sizeof(*set));
    sl_cidr_set_init(set);
    for (size_t i = 0; i < pc->ip_restriction.n_cidrs; i++)
        sl_cidr_set_add(set, &pc->ip_restriction.cidrs[i].ip, pc->ip_restriction.cidrs[i].prefix);
    *data = set;
    return 0;
}

static void destroy(void *data)
{
    sl_cidr_set_free(data);
    free(data);
}

static int on_access(const sl_stream_route_t *r, void *data, const sl_stream_peer_t *peer, sl_stream_plugin_state_t *st,
                     unsigned worker, uint64_t *delay_ms)
{
    SL_UNUSED(st);
    SL_UNUSED(worker);
    SL_UNUSED(delay_ms);
    int listed = sl_cidr_set_contains(data, &peer->client);
    return listed == r->cfg->stream.plugins.ip_restriction.whitelist ? 0 : SL_STREAM_FORBIDDEN;
}

const sl_stream_plugin_ops_t sl_stream_ip_restriction = {
    .m = {.name = "ip-restriction", .init = init, .destroy = destroy},
    .enabled = enabled,
    .on_access = on_access,
};

/* ---- configuration: plugins.ip-restriction, read by the loader (config/schema.h) ---- */

#include "config/schema.h"
#include <string.h>

void sl_stream_ip_restriction_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_stream_plugins_cfg_t *pc)
{
    if (n->kind != SL_NODE_MAP) {
        sl_schema_err(v, n, "expected a map with 'whitelist' or 'blacklist', got %s", sl_node_kind_name(n));
        return;
    }
    const sl_config_node_t *white = sl_node_get(n, "whitelist"), *black = sl_node_get(n, "blacklist");
    for (const sl_config_node_t *c = n->first; c; c = c->next)
        if (strcmp(c->key, "whitelist") && strcmp(c->key, "blacklist")) {
            size_t old = sl_schema_path_key(v, c->key);
            sl_schema_err_at(v, c->key_line, c->key_col, "unknown key (expected one of: whitelist, blacklist)");
            sl_schema_path_pop(v, old);
        }
    if (!white == !black) {
        sl_schema_err(v, n, "needs exactly one of 'whitelist' and 'blacklist'");
        return;
    }
    const sl_config_node_t *list = white ? white : black;
    size_t old = sl_schema_path_key(v, white ? "whitelist" : "blacklist");
    long cnt = sl_schema_list(v, list, 0);
    if (cnt > 0) {
        pc->ip_restriction.cidrs = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*pc->ip_restriction.cidrs));
        size_t i = 0;
        for (const sl_config_node_t *c = list->first; c; c = c->next, i++) {
            size_t o2 = sl_schema_path_idx(v, i);
            if (sl_schema_cidr(v, c, &pc->ip_restriction.cidrs[pc->ip_restriction.n_cidrs]) == 0)
                pc->ip_restriction.n_cidrs++;
            sl_schema_path_pop(v, o2);
        }
    }
    sl_schema_path_pop(v, old);
    pc->ip_restriction.enabled = 1;
    pc->ip_restriction.whitelist = white != NULL;
}
