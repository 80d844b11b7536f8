#include "upstream/upstream.h"
#include "base/common.h"
#include "upstream/health.h"

#include <string.h>
#include <uv.h>

/* Every balancing policy, by its sl_balance_t value. */
static const sl_balancer_ops_t *const balancers[] = {
    [SL_BALANCE_RANDOM] = &sl_balancer_random,
    [SL_BALANCE_ROUND_ROBIN] = &sl_balancer_round_robin,
    [SL_BALANCE_WEIGHTED] = &sl_balancer_weighted,
    [SL_BALANCE_COOKIE] = &sl_balancer_hash,
    [SL_BALANCE_HASH] = &sl_balancer_hash,
    [SL_BALANCE_LEAST_CONN] = &sl_balancer_least_conn,
    [SL_BALANCE_EWMA] = &sl_balancer_ewma,
};

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
        n->priority = n->cfg->priority;
        n->state = sl_health_state_get(svc->name, n->name);
        if (n->cfg->addr.is_ip) {
            if (uv_ip4_addr(n->cfg->addr.host, n->cfg->addr.port, (struct sockaddr_in *)&n->addr) != 0)
                uv_ip6_addr(n->cfg->addr.host, n->cfg->addr.port, (struct sockaddr_in6 *)&n->addr);
        } else {
            n->resolved = sl_resolver_get(n->cfg->addr.host);
        }
    }
    u->balancer = balancers[svc->upstream.balance];
    u->balancer_state = u->balancer->create ? u->balancer->create(u) : NULL;
}

void sl_upstream_destroy(sl_upstream_t *u)
{
    if (u->balancer && u->balancer->destroy) u->balancer->destroy(u->balancer_state);
    for (size_t i = 0; i < u->n_nodes; i++) sl_health_state_release(u->nodes[i].state);
    free(u->nodes);
    memset(u, 0, sizeof(*u));
}

int sl_node_candidate(const sl_node_t *n, const sl_pick_ctx_t *ctx)
{
    return n->priority == ctx->priority && (ctx->panic || atomic_load_explicit(&n->state->healthy, memory_order_relaxed));
}

sl_node_t *sl_upstream_pick(sl_upstream_t *u, const char *key, size_t key_len, const sl_node_t *exclude)
{
    if (!u->n_nodes) return NULL;
    sl_pick_ctx_t ctx = {.key = key, .key_len = key_len, .exclude = exclude};
    /* The highest priority with a node up; the backups below it wait. */
    int found = 0;
    for (size_t i = 0; i < u->n_nodes; i++) {
        const sl_node_t *n = &u->nodes[i];
        if ((!found || n->priority > ctx.priority) && sl_health_node_up(u, n)) {
            ctx.priority = n->priority;
            found = 1;
        }
    }
    if (!found) {
        /* Every node is down. Envoy and APISIX then spread traffic over all of them (panic),
         * since a health check may be wrong; on_all_unhealthy: reject says 503 instead. */
        if (u->cfg->reject_when_all_unhealthy) return NULL;
        ctx.panic = 1;
        ctx.priority = u->nodes[0].priority;
        for (size_t i = 1; i < u->n_nodes; i++)
            if (u->nodes[i].priority > ctx.priority) ctx.priority = u->nodes[i].priority;
    }
    return u->balancer->pick(u, &ctx);
}

void sl_upstream_begin(sl_upstream_t *u, sl_node_t *n)
{
    SL_UNUSED(u);
    atomic_fetch_add_explicit(&n->state->active, 1, memory_order_relaxed);
}

void sl_upstream_end(sl_upstream_t *u, sl_node_t *n, sl_outcome_t outcome, double latency_ms)
{
    atomic_fetch_sub_explicit(&n->state->active, 1, memory_order_relaxed);
    if (latency_ms >= 0 && u->balancer->observe) u->balancer->observe(u, n, latency_ms);
    if (outcome != SL_OUTCOME_ABORTED) sl_health_report(u, n, outcome);
}

int sl_node_addr(const sl_node_t *n, struct sockaddr_storage *out)
{
    if (!n->resolved) {
        *out = n->addr;
        return 0;
    }
    return sl_resolved_addr(n->resolved, n->cfg->addr.port, out);
}
