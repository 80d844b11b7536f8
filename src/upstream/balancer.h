/* Helpers shared by the balancers (balancer_*.c). */
#ifndef SL_UPSTREAM_BALANCER_H
#define SL_UPSTREAM_BALANCER_H

#include <stdint.h>

#include "upstream/upstream.h"

/* A per-thread xorshift generator: uniform enough for spreading load, and lock-free. */
uint64_t sl_balancer_rand(void);

/* A uniformly random candidate other than ctx->exclude and ctx->tried when one exists, else any
 * candidate, else NULL. Tries random slots first, so it is O(1) while most nodes are candidates. */
sl_node_t *sl_balancer_random_candidate(sl_upstream_t *u, const sl_pick_ctx_t *ctx);

/* True when n is a candidate, not the excluded node and not one the request tried. */
static inline int sl_balancer_ok(const sl_node_t *n, const sl_pick_ctx_t *ctx)
{
    return n != ctx->exclude && !(ctx->tried && sl_tried_has(ctx->tried, (size_t)(n - ctx->upstream->nodes))) &&
           sl_node_candidate(n, ctx);
}

#endif
