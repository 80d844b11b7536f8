/* ewma: peak-EWMA latency with the power of two choices (as Finagle and Linkerd do). Each
 * node keeps an exponentially weighted moving average of its response-head latency that jumps
 * up at once on a slow response and decays over about DECAY_NS; a pick compares two random
 * candidates by latency times (requests in flight + 1) and takes the cheaper. */
#include "upstream/balancer.h"
#include "base/time.h"
#include "upstream/health.h"

#include <math.h>
#include <string.h>

#define DECAY_NS 10e9

static double load_double(_Atomic uint64_t *a)
{
    uint64_t bits = atomic_load_explicit(a, memory_order_relaxed);
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

static double cost(const sl_node_t *n, uint64_t now)
{
    double ewma = load_double(&n->state->ewma_bits);
    /* Decay to now, not only when the node answers: a node that was slow once and then got no
     * traffic must look better as time passes, or it would never be tried again. */
    uint64_t at = atomic_load_explicit(&n->state->ewma_ns, memory_order_relaxed);
    if (at && now > at) ewma *= exp(-(double)(now - at) / DECAY_NS);
    int active = atomic_load_explicit(&n->state->active, memory_order_relaxed);
    /* A node never measured looks fast, so it gets tried. */
    return (ewma > 0 ? ewma : 0.001) * (active + 1) / n->weight;
}

static sl_node_t *ewma_pick(sl_upstream_t *u, const sl_pick_ctx_t *ctx)
{
    sl_node_t *a = sl_balancer_random_candidate(u, ctx);
    if (!a) return NULL;
    /* The second candidate is drawn from the others. Drawing again until it differs from a
     * would, with two nodes, hand back a unexamined 1 time in 256: a node known to refuse every
     * connection then got a try now and then. A retry's failed and tried nodes stay out of the contest. */
    sl_pick_ctx_t others = *ctx;
    others.exclude = a;
    sl_node_t *b = sl_balancer_random_candidate(u, &others);
    if (!b || b == a || !sl_balancer_ok(b, ctx)) return a;
    uint64_t now = sl_now_ns();
    return cost(b, now) < cost(a, now) ? b : a;
}

static void ewma_observe(sl_upstream_t *u, sl_node_t *n, double latency_ms)
{
    (void)u;
    uint64_t now = sl_now_ns();
    uint64_t prev_ns = atomic_exchange_explicit(&n->state->ewma_ns, now, memory_order_relaxed);
    uint64_t old_bits = atomic_load_explicit(&n->state->ewma_bits, memory_order_relaxed);
    for (;;) {
        double old;
        memcpy(&old, &old_bits, sizeof(old));
        double w = prev_ns && now > prev_ns ? exp(-(double)(now - prev_ns) / DECAY_NS) : 0;
        double v = latency_ms > old ? latency_ms : old * w + latency_ms * (1 - w);
        uint64_t bits;
        memcpy(&bits, &v, sizeof(bits));
        if (atomic_compare_exchange_weak_explicit(&n->state->ewma_bits, &old_bits, bits, memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
    }
}

const sl_balancer_ops_t sl_balancer_ewma = {
    .name = "ewma",
    .pick = ewma_pick,
    .observe = ewma_observe,
};
