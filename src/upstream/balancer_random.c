/* random: uniform over the candidate nodes (the default balancer). */
#include "upstream/balancer.h"

#include <time.h>

uint64_t sl_balancer_rand(void)
{
    static _Thread_local uint64_t s;
    if (!s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&s;
        if (!s) s = 0x9e3779b97f4a7c15ull;
    }
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

sl_node_t *sl_balancer_random_candidate(sl_upstream_t *u, const sl_pick_ctx_t *ctx)
{
    for (int i = 0; i < 8; i++) {
        sl_node_t *n = &u->nodes[sl_balancer_rand() % u->n_nodes];
        if (sl_balancer_ok(n, ctx)) return n;
    }
    /* Many nodes are out: choose uniformly among the rest in one pass (reservoir sampling). */
    sl_node_t *pick = NULL, *fallback = NULL;
    uint64_t seen = 0;
    for (size_t i = 0; i < u->n_nodes; i++) {
        sl_node_t *n = &u->nodes[i];
        if (!sl_node_candidate(n, ctx)) continue;
        if (!sl_balancer_ok(n, ctx)) {
            fallback = n;
            continue;
        }
        if (sl_balancer_rand() % ++seen == 0) pick = n;
    }
    return pick ? pick : fallback;
}

static sl_node_t *random_pick(sl_upstream_t *u, const sl_pick_ctx_t *ctx)
{
    return sl_balancer_random_candidate(u, ctx);
}

const sl_balancer_ops_t sl_balancer_random = {
    .name = "random",
    .pick = random_pick,
};
