#include "upstream/upstream.h"
#include "base/common.h"
#include "upstream/health.h"

#include <string.h>
#include <time.h>
#include <uv.h>

void sl_upstream_init(sl_upstream_t *u, const sl_service_cfg_t *svc, const sl_balancer_ops_t *balancer)
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
    u->balancer = balancer;
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
    return n->priority == ctx->priority && (ctx->panic || sl_health_node_up(ctx->upstream, n));
}

atomic_uint_fast64_t sl_health_epoch = 1;

enum { LEVEL_NORMAL, LEVEL_PANIC, LEVEL_REJECT };

static uint64_t coarse_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The highest priority with a node up; when none is up, panic or reject. O(nodes): run only
 * when health changed or the cached answer is old. Racing threads compute the same answer. */
static void level_refresh(sl_upstream_t *u, uint64_t epoch, uint64_t now)
{
    int found = 0, prio = 0, top = u->nodes[0].priority;
    for (size_t i = 0; i < u->n_nodes; i++) {
        const sl_node_t *n = &u->nodes[i];
        if (n->priority > top) top = n->priority;
        if ((!found || n->priority > prio) && sl_health_node_up(u, n)) {
            prio = n->priority;
            found = 1;
        }
    }
    int mode = LEVEL_NORMAL;
    if (!found) {
        /* Every node is down. Envoy and APISIX then spread traffic over all of them (panic),
         * since a health check may be wrong; on_all_unhealthy: reject says 503 instead. */
        mode = u->cfg->reject_when_all_unhealthy ? LEVEL_REJECT : LEVEL_PANIC;
        prio = top;
    }
    atomic_store_explicit(&u->level_priority, prio, memory_order_relaxed);
    atomic_store_explicit(&u->level_mode, mode, memory_order_relaxed);
    atomic_store_explicit(&u->level_ms, now, memory_order_relaxed);
    atomic_store_explicit(&u->level_epoch, epoch, memory_order_release);
}

static sl_node_t *pick(sl_upstream_t *u, const char *key, size_t key_len, const sl_node_t *exclude,
                       const sl_tried_t *tried)
{
    if (!u->n_nodes) return NULL;
    uint64_t epoch = atomic_load_explicit(&sl_health_epoch, memory_order_acquire);
    uint64_t now = coarse_ms();
    if (atomic_load_explicit(&u->level_epoch, memory_order_acquire) != epoch ||
        now - atomic_load_explicit(&u->level_ms, memory_order_relaxed) >= SL_LEVEL_REFRESH_MS)
        level_refresh(u, epoch, now);
    int mode = atomic_load_explicit(&u->level_mode, memory_order_relaxed);
    if (mode == LEVEL_REJECT) return NULL;
    sl_pick_ctx_t ctx = {.upstream = u,
                         .key = key,
                         .key_len = key_len,
                         .exclude = exclude,
                         .tried = tried,
                         .priority = atomic_load_explicit(&u->level_priority, memory_order_relaxed),
                         .panic = mode == LEVEL_PANIC};
    return u->balancer->pick(u, &ctx);
}

sl_node_t *sl_upstream_pick(sl_upstream_t *u, const char *key, size_t key_len, const sl_node_t *exclude)
{
    return pick(u, key, key_len, exclude, NULL);
}

sl_node_t *sl_upstream_pick_untried(sl_upstream_t *u, const char *key, size_t key_len, const sl_tried_t *tried)
{
    if (!tried->count) return pick(u, key, key_len, NULL, NULL);
    return pick(u, key, key_len, tried->last, tried);
}

void sl_tried_init(sl_tried_t *t, size_t n_nodes)
{
    memset(t, 0, sizeof(*t));
    t->n_nodes = n_nodes;
}

void sl_tried_add(sl_tried_t *t, const sl_upstream_t *u, const sl_node_t *n)
{
    size_t i = (size_t)(n - u->nodes);
    t->last = n;
    if (i >= t->n_nodes) return;
    if (!t->big && t->n_nodes > SL_TRIED_INLINE) t->big = sl_xcalloc((t->n_nodes + 63) / 64, sizeof(uint64_t));
    uint64_t *bits = t->n_nodes > SL_TRIED_INLINE ? t->big : t->small;
    bits[i / 64] |= 1ull << (i % 64);
    t->count++;
}

void sl_tried_free(sl_tried_t *t)
{
    free(t->big);
    t->big = NULL;
}

void sl_upstream_begin(sl_upstream_t *u, sl_node_t *n)
{
    SL_UNUSED(u);
    atomic_fetch_add_explicit(&n->state->active, 1, memory_order_relaxed);
}

void sl_upstream_end(sl_upstream_t *u, sl_node_t *n, sl_outcome_t outcome, double latency_ms)
{
    atomic_fetch_sub_explicit(&n->state->active, 1, memory_order_relaxed);
    if (latency_ms < 0 && (outcome == SL_OUTCOME_CONNECT_FAILURE || outcome == SL_OUTCOME_TIMEOUT ||
                           outcome == SL_OUTCOME_RESET))
        latency_ms = SL_FAILED_TRY_MS;
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
