/* weighted: smooth weighted round robin. Each step adds every node's weight to its running
 * score, takes the highest score and subtracts the total weight from it, so weights 5:1:1 give
 * a a b a c a a rather than bursts, and over a cycle the shares match the weights exactly.
 *
 * The cycle (total weight long) is computed once per generation, so a pick is one atomic
 * increment and a table read, whatever the node count. Cycles longer than SCHEDULE_MAX fall
 * back to computing each step under a lock.
 *
 * Only a request's first try takes a step of the cycle. A retry or failover (a pick with
 * ctx->exclude) reads the same schedule through a cursor of its own, so retries never shift the
 * first tries: with a failing node of weight 1 beside a working one of weight 1, first tries
 * still alternate and half of them are retried, not all. Without a schedule a retry takes a
 * random other candidate rather than a step. */
#include "upstream/balancer.h"
#include "base/common.h"

#include <pthread.h>
#include <stdatomic.h>

#define SCHEDULE_MAX (1u << 20)

typedef struct wrr_state {
    atomic_uint_fast64_t next;
    atomic_uint_fast64_t retry_next; /* the retries' own position in the schedule */
    uint32_t *schedule;              /* node index for each step of the cycle, or NULL */
    uint64_t total;
    pthread_mutex_t lock; /* without a schedule */
    int64_t current[];
} wrr_state_t;

static size_t step(const sl_upstream_t *u, wrr_state_t *s)
{
    size_t best = 0;
    for (size_t i = 0; i < u->n_nodes; i++) {
        s->current[i] += u->nodes[i].weight;
        if (s->current[i] > s->current[best]) best = i;
    }
    s->current[best] -= (int64_t)s->total;
    return best;
}

static void *wrr_create(const sl_upstream_t *u)
{
    wrr_state_t *s = sl_xcalloc(1, sizeof(*s) + u->n_nodes * sizeof(int64_t));
    atomic_init(&s->next, 0);
    atomic_init(&s->retry_next, 0);
    pthread_mutex_init(&s->lock, NULL);
    for (size_t i = 0; i < u->n_nodes; i++) s->total += u->nodes[i].weight;
    if (s->total && s->total <= SCHEDULE_MAX) {
        s->schedule = sl_xmalloc(s->total * sizeof(uint32_t));
        for (uint64_t k = 0; k < s->total; k++) s->schedule[k] = (uint32_t)step(u, s);
    }
    return s;
}

static sl_node_t *wrr_pick(sl_upstream_t *u, const sl_pick_ctx_t *ctx)
{
    wrr_state_t *s = u->balancer_state;
    if (ctx->exclude && !s->schedule) return sl_balancer_random_candidate(u, ctx);
    atomic_uint_fast64_t *cursor = ctx->exclude ? &s->retry_next : &s->next;
    /* Steps whose node is not a candidate are passed over; the others keep their order. */
    for (size_t tries = 0; tries < 2 * u->n_nodes + 8; tries++) {
        size_t i;
        if (s->schedule) {
            i = s->schedule[atomic_fetch_add_explicit(cursor, 1, memory_order_relaxed) % s->total];
        } else {
            pthread_mutex_lock(&s->lock);
            i = step(u, s);
            pthread_mutex_unlock(&s->lock);
        }
        sl_node_t *n = &u->nodes[i];
        if (sl_balancer_ok(n, ctx)) return n;
    }
    /* A heavy excluded node can fill every step tried: another candidate still comes first. */
    return sl_balancer_random_candidate(u, ctx);
}

static void wrr_destroy(void *state)
{
    wrr_state_t *s = state;
    pthread_mutex_destroy(&s->lock);
    free(s->schedule);
    free(s);
}

const sl_balancer_ops_t sl_balancer_weighted = {
    .name = "weighted",
    .create = wrr_create,
    .pick = wrr_pick,
    .destroy = wrr_destroy,
};
