/* Node health: node states, active checks and passive checks.
 *
 * A node's state is kept by service name and node address (base/keeper.h) and outlives
 * generations, so a reload keeps the health of nodes that stay. Nodes start healthy. Active checks run on the
 * main loop, one checker per upstream for the whole process (not one per worker), with jitter;
 * passive checks count failures reported by the workers. The verdict is one atomic flag every
 * worker reads when it picks a node. */
#ifndef SL_UPSTREAM_HEALTH_H
#define SL_UPSTREAM_HEALTH_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"
#include "upstream/upstream.h"

typedef struct sl_generation sl_generation_t;
typedef struct sl_metrics sl_metrics_t;

/* What marked a node unhealthy. SL_DOWN_TRIAL: down by passive checks, cooldown over, taking
 * traffic again until the first result decides (passive checks without active checks). */
enum { SL_DOWN_NONE, SL_DOWN_ACTIVE, SL_DOWN_PASSIVE, SL_DOWN_TRIAL };

struct sl_node_state {
    atomic_int healthy;                         /* 1 healthy, 0 unhealthy; starts at 1 */
    atomic_int active;                          /* requests in flight, all workers (least_conn, status page) */
    _Atomic uint64_t ewma_bits;                 /* ewma balancer: peak-EWMA latency in ms, as double bits */
    _Atomic uint64_t ewma_ns;                   /* when ewma_bits was last updated (monotonic ns) */
    atomic_uint fails;                          /* passive: consecutive failures */
    _Atomic uint64_t down_ms;                   /* passive without active checks: when it was marked down */
    atomic_int down_by;                         /* SL_DOWN_*: what marked it unhealthy, and the passive trial */
    _Atomic uint64_t last_check_ms;             /* wall clock of the last active check, 0 = never */
    _Atomic uint64_t checks_ok, checks_failed;  /* active checks, for the status page */
    char last_error[128];                       /* last failure seen (active or passive); under a lock */
    sl_series_t *m_healthy;                     /* sluice_upstream_node_healthy{service,node} */
    sl_series_t *m_check_ok, *m_check_failed;   /* sluice_upstream_health_checks_total */
    sl_series_t *m_to_healthy, *m_to_unhealthy; /* sluice_upstream_node_transitions_total */
    char *service;
    char *address;
};

/* Sets a node's verdict; a change moves sl_health_epoch so upstreams see it at their next
 * pick. Any thread. */
static inline void sl_health_set(sl_node_state_t *st, int healthy)
{
    if (atomic_exchange(&st->healthy, healthy) != healthy) atomic_fetch_add(&sl_health_epoch, 1);
}

/* Main thread. Returns the state for (service, address) with a new reference, creating it
 * healthy when new. */
sl_node_state_t *sl_health_state_get(const char *service, const char *address);
/* Drops a reference (any thread); the last one frees the state. */
void sl_health_state_release(sl_node_state_t *st);

/* True when n may take traffic: healthy, or down by passive checks only and past the
 * cooldown (it gets a trial request). Any thread. */
int sl_health_node_up(const sl_upstream_t *u, const sl_node_t *n);

/* True when status counts as a failure for passive checks (passive_check.statuses, default
 * 500, 502, 503, 504). Any thread. */
int sl_health_status_fails(const sl_upstream_t *u, int status);

/* Passive checks: how a request to n ended. Any thread. */
void sl_health_report(const sl_upstream_t *u, sl_node_t *n, sl_outcome_t outcome);

/* Registers the health metric families in m (before any state is created). Main thread. */
void sl_health_metrics_init(sl_metrics_t *m);

/* Makes the active checkers follow generation g (may be NULL: stop them all): starts one for
 * every node of an upstream with health_check, stops those of nodes that left, applies new
 * settings. Nodes that stay keep their checker, counters and health. Keeps a reference to g
 * while checkers use it. Main thread, on loop; call after each publish. */
void sl_health_sync(uv_loop_t *loop, sl_generation_t *g);

/* Stops every checker (their handles close on the next loop turn). Main thread. */
void sl_health_shutdown(void);

/* Appends the JSON document of GET /status/upstreams for g to out. Main thread. */
void sl_health_status_json(const sl_generation_t *g, sl_buf_t *out);

#endif
