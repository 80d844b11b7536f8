/* Smooth weighted round robin: every pick adds each node's weight to its running score, takes
 * the highest score and subtracts the total weight from it. Weights 5:1:1 give a,a,b,a,c,a,a
 * rather than bursts, and with equal weights it is plain round robin. One short lock per pick
 * keeps the sequence exact across worker threads. */
#include "upstream/upstream.h"
#include "base/common.h"

#include <pthread.h>

typedef struct rr_state {
    pthread_mutex_t lock;
    int64_t total;
    int64_t current[];
} rr_state_t;

static void *rr_create(const sl_upstream_t *u)
{
    rr_state_t *s = sl_xcalloc(1, sizeof(*s) + u->n_nodes * sizeof(int64_t));
    pthread_mutex_init(&s->lock, NULL);
    for (size_t i = 0; i < u->n_nodes; i++) s->total += u->nodes[i].weight;
    return s;
}

static sl_node_t *rr_pick(sl_upstream_t *u, const sl_node_t *exclude)
{
    rr_state_t *s = u->balancer_state;
    sl_node_t *best = NULL;
    size_t best_i = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < u->n_nodes; i++) {
        s->current[i] += u->nodes[i].weight;
        if (&u->nodes[i] == exclude && u->n_nodes > 1) continue;
        if (!best || s->current[i] > s->current[best_i]) {
            best = &u->nodes[i];
            best_i = i;
        }
    }
    s->current[best_i] -= s->total;
    pthread_mutex_unlock(&s->lock);
    return best;
}

static void rr_destroy(void *state)
{
    rr_state_t *s = state;
    pthread_mutex_destroy(&s->lock);
    free(s);
}

const sl_balancer_ops_t sl_balancer_round_robin = {
    .name = "round_robin",
    .create = rr_create,
    .pick = rr_pick,
    .destroy = rr_destroy,
};
