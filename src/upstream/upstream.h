/* Runtime upstream of a service: its nodes (with resolved addresses) and its balancer.
 * Built per configuration generation by the main thread, read by every worker. */
#ifndef SL_UPSTREAM_UPSTREAM_H
#define SL_UPSTREAM_UPSTREAM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "upstream/resolver.h"

typedef struct sl_series sl_series_t;
typedef struct sl_upstream sl_upstream_t;

/* What outlives a generation for one node of one service (keyed by service name and node
 * address): health and load. Every worker reads and updates it with atomics. Owned by the
 * keeper (base/keeper.h) through upstream/health.h. */
typedef struct sl_node_state sl_node_state_t;

typedef struct sl_node {
    const sl_node_cfg_t *cfg;
    const char *name; /* "host:port" as configured */
    uint32_t weight;
    int priority;
    struct sockaddr_storage addr; /* valid when cfg->addr.is_ip */
    sl_resolved_t *resolved;      /* hostname nodes */
    sl_node_state_t *state;
} sl_node_t;

/* The nodes one request or session has tried, for failover and retries: a bitset over the
 * upstream's nodes, inline up to SL_TRIED_INLINE nodes (no allocation for the common sizes), on
 * the heap beyond. Owned by the exchange or session; one thread at a time. */
#define SL_TRIED_INLINE 128
typedef struct sl_tried {
    const sl_node_t *last; /* the node tried last, NULL before the first try */
    unsigned count;        /* tries added, a node tried twice counted twice */
    size_t n_nodes;
    uint64_t small[SL_TRIED_INLINE / 64];
    uint64_t *big; /* more than SL_TRIED_INLINE nodes: allocated at the first add */
} sl_tried_t;

/* Empties t for an upstream of n_nodes nodes. */
void sl_tried_init(sl_tried_t *t, size_t n_nodes);
/* Records a try of node n of u; n becomes t->last. */
void sl_tried_add(sl_tried_t *t, const sl_upstream_t *u, const sl_node_t *n);
void sl_tried_free(sl_tried_t *t);
/* True when node index i (n - u->nodes) was tried. */
static inline int sl_tried_has(const sl_tried_t *t, size_t i)
{
    if (i >= t->n_nodes) return 0;
    /* A large set has its bits on the heap from the first add on; before it, nothing is in it. */
    const uint64_t *bits = t->n_nodes > SL_TRIED_INLINE ? t->big : t->small;
    return bits && (int)((bits[i / 64] >> (i % 64)) & 1);
}

/* What a balancer may use to choose, and which nodes it may choose from. */
typedef struct sl_pick_ctx {
    const sl_upstream_t *upstream;
    const char *key; /* hash / cookie balancers: the request's key, NULL when it has none */
    size_t key_len;
    /* A node of this upstream that just failed this request; avoid when possible. Set only for a
     * retry or failover pick, which balancers that keep turns (round_robin, weighted) serve
     * without taking a first try's turn. */
    const sl_node_t *exclude;
    /* Every node this request tried (exclude among them), avoided as exclude is; NULL for a pick
     * that knows only its last failure. */
    const sl_tried_t *tried;
    int priority; /* only nodes of this priority are candidates */
    int panic;    /* every node unhealthy: health is ignored */
} sl_pick_ctx_t;

/* How a request to a node ended, for passive health checks and load-aware balancers. */
typedef enum {
    SL_OUTCOME_OK,              /* a response whose status is not a configured failure */
    SL_OUTCOME_FAILED_STATUS,   /* a response with a status listed in passive_check.statuses */
    SL_OUTCOME_CONNECT_FAILURE, /* refused or connect timeout */
    SL_OUTCOME_TIMEOUT,         /* no response in time */
    SL_OUTCOME_RESET,           /* closed or malformed before a response */
    SL_OUTCOME_ABORTED,         /* the client went away: says nothing about the node */
} sl_outcome_t;

/* One balancing policy, one file each (balancer_*.c), listed in upstream.c. */
typedef struct sl_balancer_ops {
    const char *name;
    /* Creates the policy's state for u (NULL for stateless policies). */
    void *(*create)(const sl_upstream_t *u);
    /* Picks a candidate (sl_node_candidate()), avoiding ctx->exclude and ctx->tried when another
     * candidate exists (sl_balancer_ok()); NULL only when there is no candidate. Thread-safe. */
    sl_node_t *(*pick)(sl_upstream_t *u, const sl_pick_ctx_t *ctx);
    /* Optional: a request to n took latency_ms to its response head (ewma); a try that failed
     * without one (refused, timed out, reset) is observed as SL_FAILED_TRY_MS. Thread-safe. */
    void (*observe)(sl_upstream_t *u, sl_node_t *n, double latency_ms);
    void (*destroy)(void *state);
} sl_balancer_ops_t;

struct sl_upstream {
    const sl_service_cfg_t *svc;
    const sl_upstream_cfg_t *cfg;
    sl_node_t *nodes;
    size_t n_nodes;
    const sl_balancer_ops_t *balancer;
    void *balancer_state;
    sl_series_t *latency; /* sluice_upstream_latency_seconds{service} */
    /* Which priority takes traffic (and whether every node is down), cached so a pick does not
     * scan the nodes: recomputed when sl_health_epoch moves, and at least every
     * SL_LEVEL_REFRESH_MS (time-based recoveries such as a passive cooldown). */
    atomic_uint_fast64_t level_epoch, level_ms;
    atomic_int level_priority, level_mode;
};

/* Bumped on every change of a node's health, so upstreams recompute their priority level. */
extern atomic_uint_fast64_t sl_health_epoch;
#define SL_LEVEL_REFRESH_MS 50

/* Fills u from the service's configuration, balanced by balancer (the registry's for its
 * upstream.balance, sl_balancer_of()); resolves hostnames and attaches each node's lasting state
 * (main thread). */
void sl_upstream_init(sl_upstream_t *u, const sl_service_cfg_t *svc, const sl_balancer_ops_t *balancer);
void sl_upstream_destroy(sl_upstream_t *u);

/* Chooses the node for the next request: the highest priority that has a healthy node, the
 * balancer among those. When no node is healthy: every node (panic), or NULL when the
 * upstream says on_all_unhealthy: reject. key/key_len as in sl_pick_ctx_t. exclude is NULL for
 * a request's first try, and the node of u that its last try failed on for a retry or failover:
 * such a pick does not move round_robin's or weighted's turn, so first tries keep their order
 * however many retries run between them. */
sl_node_t *sl_upstream_pick(sl_upstream_t *u, const char *key, size_t key_len, const sl_node_t *exclude);

/* As sl_upstream_pick(), for a request that records its tries in tried: a node tried already is
 * chosen only when no candidate is left untried, so every candidate gets one try before any gets
 * two. The first pick (tried empty) takes a turn as a first try does, later ones are failover
 * picks (exclude = tried->last). The caller adds the node it then tries (sl_tried_add). */
sl_node_t *sl_upstream_pick_untried(sl_upstream_t *u, const char *key, size_t key_len, const sl_tried_t *tried);

/* True when n may be chosen under ctx (its priority, and healthy unless panicking). */
int sl_node_candidate(const sl_node_t *n, const sl_pick_ctx_t *ctx);

/* A failed try's latency for the latency balancer: without one, a node that refuses every
 * connection would never be measured and so would look the fastest of all. It decays as any
 * sample does, so the node is tried again once it has been left alone for a while. */
#define SL_FAILED_TRY_MS 10000.0

/* A request to n starts / ended. latency_ms < 0 when no response head arrived. */
void sl_upstream_begin(sl_upstream_t *u, sl_node_t *n);
void sl_upstream_end(sl_upstream_t *u, sl_node_t *n, sl_outcome_t outcome, double latency_ms);

/* The node's current address with port; returns 0, or -1 if its name does not resolve. */
int sl_node_addr(const sl_node_t *n, struct sockaddr_storage *out);

/* Cookie balancer: the cookie value that sticks to node n (written into out); -1 when u does
 * not balance by hash. */
int sl_upstream_cookie_value(const sl_upstream_t *u, const sl_node_t *n, char *out, size_t size);

extern const sl_balancer_ops_t sl_balancer_random;
extern const sl_balancer_ops_t sl_balancer_round_robin;
extern const sl_balancer_ops_t sl_balancer_weighted;
extern const sl_balancer_ops_t sl_balancer_hash; /* hash and cookie */
extern const sl_balancer_ops_t sl_balancer_least_conn;
extern const sl_balancer_ops_t sl_balancer_ewma;

#endif
