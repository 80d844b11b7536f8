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

static int init(sl_stream_route_t *r)
{
    const sl_stream_plugins_cfg_t *pc = &r->cfg->stream.plugins;
    r->ip_set = sl_xmalloc(sizeof(*r->ip_set));
    sl_cidr_set_init(r->ip_set);
    for (size_t i = 0; i < pc->ip_restriction.n_cidrs; i++)
        sl_cidr_set_add(r->ip_set, &pc->ip_restriction.cidrs[i].ip, pc->ip_restriction.cidrs[i].prefix);
    return 0;
}

static void destroy(sl_stream_route_t *r)
{
    if (!r->ip_set) return;
    sl_cidr_set_free(r->ip_set);
    free(r->ip_set);
    r->ip_set = NULL;
}

static int on_access(sl_stream_route_t *r, const sl_stream_peer_t *peer, sl_stream_plugin_state_t *st, unsigned worker,
                     uint64_t *delay_ms)
{
    SL_UNUSED(st);
    SL_UNUSED(worker);
    SL_UNUSED(delay_ms);
    int listed = sl_cidr_set_contains(r->ip_set, &peer->client);
    return listed == r->cfg->stream.plugins.ip_restriction.whitelist ? 0 : SL_STREAM_FORBIDDEN;
}

const sl_stream_plugin_ops_t sl_stream_ip_restriction = {
    .name = "ip-restriction",
    .enabled = enabled,
    .init = init,
    .destroy = destroy,
    .on_access = on_access,
};
