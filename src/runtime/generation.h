/* A configuration generation: the validated configuration plus everything built from it
 * (router, upstreams, per-route metric handles). Immutable once published; reference-counted
 * so a request keeps the generation it started with across a reload. */
#ifndef SL_RUNTIME_GENERATION_H
#define SL_RUNTIME_GENERATION_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/chain.h"
#include "config/config.h"
#include "http/router.h"
#include "upstream/upstream.h"

typedef struct sl_access_log sl_access_log_t;

/* sluice_http_requests_total series by status, cached so that counting a request takes no
 * lock: a few slots per route, filled on first use of a status. */
#define SL_STATUS_CACHE 8
typedef struct sl_status_cache {
    _Atomic int status[SL_STATUS_CACHE];
    _Atomic(sl_series_t *) series[SL_STATUS_CACHE];
} sl_status_cache_t;

typedef struct sl_policy_ops sl_policy_ops_t;

#define SL_POLICY_MAX SL_CHAIN_MAX /* policies one route can chain */

typedef struct sl_route_rt {
    const sl_route_cfg_t *cfg;
    const sl_service_cfg_t *svc;
    sl_upstream_t *upstream; /* NULL for direct responses */
    sl_status_cache_t requests;
    sl_chain_t chain; /* the route's policies in order (policy/policy.h), each with its state */
} sl_route_rt_t;

/* A listening address of the generation: HTTP ones as configured, then those the stream routes
 * need, TCP and UDP (stream/stream.h). Workers key their listeners by kind and text; what a
 * kind does with its connections is its sl_listener_ops_t (runtime/listen_kind.h). */
typedef enum { SL_LISTEN_HTTP, SL_LISTEN_STREAM_TCP, SL_LISTEN_STREAM_UDP, SL_LISTEN_KINDS } sl_listen_kind_t;
typedef struct sl_listen {
    sl_listen_kind_t kind;
    sl_hostport_t addr; /* a literal address for stream listeners: "127.0.0.10:9101", "0.0.0.0:9101" */
} sl_listen_t;

typedef struct sl_stream_route sl_stream_route_t;

typedef struct sl_generation {
    atomic_int refs;
    uint64_t id;
    sl_config_t *cfg;
    sl_router_t *router;
    sl_upstream_t *upstreams; /* one per service, same index */
    sl_route_rt_t *routes; /* HTTP routes */
    size_t n_routes;
    sl_stream_route_t *stream_routes; /* stream routes, in configuration order */
    size_t n_stream_routes;
    sl_listen_t *listens;
    size_t n_listens;
    sl_access_log_t *access_log; /* a keeper reference (base/keeper.h); NULL when the access log is off */
    sl_status_cache_t no_route;      /* requests that matched no route */
    /* Listening sockets opened at publish time for addresses new in this generation, one per
     * worker: [listens index * n_workers + worker], -1 where none. Workers take theirs; the
     * rest are closed with the generation. */
    atomic_int *listen_fds;
    unsigned n_workers;
} sl_generation_t;

/* Takes worker's prepared socket for listens[i], or returns -1. Any thread. */
int sl_generation_take_listen_fd(sl_generation_t *g, size_t i, unsigned worker);

/* Counts one answered request in sluice_http_requests_total (route NULL: no route matched).
 * Any worker thread. */
void sl_generation_count_request(sl_generation_t *g, sl_route_rt_t *route, int status, unsigned worker);

/* Builds a generation from cfg (takes ownership of cfg). Main thread. State shared with earlier
 * generations (the access log of the same path, rate-limit buckets, node health...) is kept by
 * base/keeper.h. Returns the generation, or NULL when any part of it cannot be built (a policy or stream plugin that does
 * not initialise, an access log that cannot be opened): each reason is appended to errs and cfg
 * is freed. A generation is built whole or not at all, never published without the part that
 * failed. Callers other than tests go through sl_runtime_apply() (runtime/runtime.h). */
sl_generation_t *sl_generation_create(sl_config_t *cfg, sl_config_errors_t *errs);

/* The access log to write to, or NULL when off. */
sl_access_log_t *sl_generation_access_log(const sl_generation_t *g);

void sl_generation_retain(sl_generation_t *g);
/* Drops one reference; the last one frees the generation (any thread). */
void sl_generation_release(sl_generation_t *g);

/* The published generation: sl_generation_current() returns it with a new reference.
 * sl_generation_publish() takes over the caller's reference to g. */
sl_generation_t *sl_generation_current(void);
void sl_generation_publish(sl_generation_t *g);

#endif
