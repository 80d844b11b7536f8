/* round_robin: the candidate nodes in turn, one shared counter for all workers.
 *
 * Only a request's first try takes a turn. A retry or failover (a pick with ctx->exclude) goes
 * to the next candidate after the node that failed and leaves the counter alone: were it to take
 * the next turn, every retry would shift the first tries by one, and with one failing node of
 * two every first try would land on the failing one. Walking on from the failed node also
 * visits every node once before a request comes back to one it tried. */
#include "upstream/balancer.h"
#include "base/common.h"

#include <stdatomic.h>

typedef struct rr_state {
    atomic_uint_fast64_t next;
} rr_state_t;

static void *rr_create(const sl_upstream_t *u)
{
    SL_UNUSED(u);
    rr_state_t *s = sl_xcalloc(1, sizeof(*s));
    atomic_init(&s->next, 0);
    return s;
}

static sl_node_t *rr_pick(sl_upstream_t *u, const sl_pick_ctx_t *ctx)
{
    rr_state_t *s = u->balancer_state;
    size_t start;
    if (ctx->exclude)
        start = (size_t)(ctx->exclude - u->nodes + 1) % u->n_nodes;
    else
        start = (size_t)(atomic_fetch_add_explicit(&s->next, 1, memory_order_relaxed) % u->n_nodes);
    sl_node_t *fallback = NULL;
    /* O(1) while the node in turn is a candidate; skipping walks on to the next one. */
    for (size_t i = 0; i < u->n_nodes; i++) {
        sl_node_t *n = &u->nodes[(start + i) % u->n_nodes];
        if (sl_balancer_ok(n, ctx)) return n;
        if (!fallback && sl_node_candidate(n, ctx)) fallback = n;
    }
    return fallback;
}

const sl_balancer_ops_t sl_balancer_round_robin = {
    .name = "round_robin",
    .create = rr_create,
    .pick = rr_pick,
    .destroy = free,
};
