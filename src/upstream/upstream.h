/* Runtime upstream of a service: its nodes (with resolved addresses) and its balancer.
 * Built per configuration generation by the main thread, read by every worker. */
#ifndef SL_UPSTREAM_UPSTREAM_H
#define SL_UPSTREAM_UPSTREAM_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "upstream/resolver.h"

typedef struct sl_series sl_series_t;
typedef struct sl_upstream sl_upstream_t;

typedef struct sl_node {
    const sl_node_cfg_t *cfg;
    const char *name; /* "host:port" as configured */
    uint32_t weight;
    struct sockaddr_storage addr; /* valid when cfg->addr.is_ip */
    sl_resolved_t *resolved;      /* hostname nodes */
} sl_node_t;

/* One balancing policy. State lives in the upstream's balancer_state. */
typedef struct sl_balancer_ops {
    const char *name;
    /* Creates the policy's state for u; returns NULL only for policies without state. */
    void *(*create)(const sl_upstream_t *u);
    /* Picks a node other than `exclude` when possible; never NULL while u has nodes. Thread-safe. */
    sl_node_t *(*pick)(sl_upstream_t *u, const sl_node_t *exclude);
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
};

/* Fills u from the service's configuration; resolves hostnames (main thread). */
void sl_upstream_init(sl_upstream_t *u, const sl_service_cfg_t *svc);
void sl_upstream_destroy(sl_upstream_t *u);

/* Chooses the node for the next request (see sl_balancer_ops_t.pick). */
sl_node_t *sl_upstream_pick(sl_upstream_t *u, const sl_node_t *exclude);

/* The node's current address with port; returns 0, or -1 if its name does not resolve. */
int sl_node_addr(const sl_node_t *n, struct sockaddr_storage *out);

extern const sl_balancer_ops_t sl_balancer_round_robin;

#endif
