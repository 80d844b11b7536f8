/* least_conn: the candidate with the fewest requests in flight (across all workers) relative to
 * its weight. Ties go to a random one of them, so equal nodes share the load. */
#include "upstream/balancer.h"
#include "upstream/health.h"

static sl_node_t *lc_pick(sl_upstream_t *u, const sl_pick_ctx_t *ctx)
{
    sl_node_t *best = NULL;
    double best_load = 0;
    uint64_t ties = 0;
    size_t start = (size_t)(sl_balancer_rand() % u->n_nodes);
    for (size_t k = 0; k < u->n_nodes; k++) {
        sl_node_t *n = &u->nodes[(start + k) % u->n_nodes];
        if (!sl_balancer_ok(n, ctx)) continue;
        double load = (double)atomic_load_explicit(&n->state->active, memory_order_relaxed) / n->weight;
        if (!best || load < best_load) {
            best = n;
            best_load = load;
            ties = 1;
        } else if (load == best_load && sl_balancer_rand() % ++ties == 0) {
            best = n;
        }
    }
    return best ? best : sl_balancer_random_candidate(u, ctx);
}

const sl_balancer_ops_t sl_balancer_least_conn = {
    .name = "least_conn",
    .pick = lc_pick,
};
