#include "upstream/upstream.h"
#include "base/common.h"

#include <string.h>
#include <uv.h>

static const sl_balancer_ops_t *balancer_for(sl_balance_t b)
{
    /* Only round robin exists so far; the configuration loader rejects the others. */
    SL_UNUSED(b);
    return &sl_balancer_round_robin;
}

void sl_upstream_init(sl_upstream_t *u, const sl_service_cfg_t *svc)
{
    memset(u, 0, sizeof(*u));
    u->svc = svc;
    u->cfg = &svc->upstream;
    u->n_nodes = svc->upstream.n_nodes;
    u->nodes = sl_xcalloc(u->n_nodes, sizeof(sl_node_t));
    for (size_t i = 0; i < u->n_nodes; i++) {
        sl_node_t *n = &u->nodes[i];
        n->cfg = &svc->upstream.nodes[i];
        n->name = n->cfg->addr.text;
        n->weight = n->cfg->weight ? n->cfg->weight : 1;
        if (n->cfg->addr.is_ip) {
            if (uv_ip4_addr(n->cfg->addr.host, n->cfg->addr.port, (struct sockaddr_in *)&n->addr) != 0)
                uv_ip6_addr(n->cfg->addr.host, n->cfg->addr.port, (struct sockaddr_in6 *)&n->addr);
        } else {
            n->resolved = sl_resolver_get(n->cfg->addr.host);
        }
    }
    u->balancer = balancer_for(svc->upstream.balance);
    u->balancer_state = u->balancer->create(u);
}

void sl_upstream_destroy(sl_upstream_t *u)
{
    if (u->balancer) u->balancer->destroy(u->balancer_state);
    free(u->nodes);
    memset(u, 0, sizeof(*u));
}

sl_node_t *sl_upstream_pick(sl_upstream_t *u, const sl_node_t *exclude)
{
    if (!u->n_nodes) return NULL;
    return u->balancer->pick(u, exclude);
}

int sl_node_addr(const sl_node_t *n, struct sockaddr_storage *out)
{
    if (!n->resolved) {
        *out = n->addr;
        return 0;
    }
    return sl_resolved_addr(n->resolved, n->cfg->addr.port, out);
}
