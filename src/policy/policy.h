/* HTTP policies: one file per policy, each a const table of hooks, registered in policy.c.
 * A route's chain (the policies it enables, in the documented order) is built once per
 * configuration generation, never per request; the proxy calls the sl_policy_* functions,
 * which run the chain.
 *
 * Order: ip_access, local_rate_limit, path_rewrite, request_headers, proxy (timeout, retry,
 * websocket), response_headers, cookie_rewrite. (Policies not built yet are refused by the loader.) */
#ifndef SL_POLICY_POLICY_H
#define SL_POLICY_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "config/config.h"

typedef struct sl_route_rt sl_route_rt_t;

/* What the request-side hooks see of a request. */
typedef struct sl_policy_req {
    const char *peer;   /* the TCP peer's address */
    const char *remote; /* the client gateway.proxy_layers hops from the right of X-Forwarded-For */
    size_t remote_len;
} sl_policy_req_t;

typedef struct sl_policy_ops {
    const char *name;
    /* Whether the route's configuration turns the policy on. */
    int (*enabled)(const sl_policies_cfg_t *pc);
    /* Builds per-generation state in rt (compiled patterns...); 0, or -1 when it cannot. */
    int (*init)(sl_route_rt_t *rt);
    void (*destroy)(sl_route_rt_t *rt);
    /* A request was routed here: 0 to go on, or the status to refuse it with (and its error
     * code in *code). Runs before anything is sent upstream. */
    int (*on_request)(const sl_route_rt_t *rt, const sl_policy_req_t *req, const char **code);
    /* The path sent upstream (no query): writes a new one into out (emptied first) and returns
     * 1, or returns 0 to leave it. */
    int (*upstream_path)(const sl_route_rt_t *rt, const char *path, size_t len, sl_buf_t *out);
    /* Request to the upstream: whether a client header is left out, and headers to append. */
    int (*upstream_drop)(const sl_route_rt_t *rt, const char *name, size_t len);
    void (*upstream_emit)(const sl_route_rt_t *rt, sl_buf_t *head);
    /* Response to the client: whether an upstream header is left out, and headers to append. */
    int (*response_drop)(const sl_route_rt_t *rt, const char *name, size_t len);
    void (*response_emit)(const sl_route_rt_t *rt, sl_buf_t *head);
    /* The most the whole request may take, in ms (0: no bound). */
    uint64_t (*deadline_ms)(const sl_route_rt_t *rt);
    /* WebSocket upgrades are allowed: a tunnel's idle timeout in ms (0: upgrades refused). */
    uint64_t (*websocket_idle_ms)(const sl_route_rt_t *rt);
} sl_policy_ops_t;

/* Builds rt's chain from its configuration (main thread). Returns 0, or -1 when a policy could
 * not initialise (its state is released). */
int sl_policy_chain_init(sl_route_rt_t *rt);
void sl_policy_chain_destroy(sl_route_rt_t *rt);

/* The chain's hooks, in order (see sl_policy_ops_t). */
int sl_policy_on_request(const sl_route_rt_t *rt, const sl_policy_req_t *req, const char **code);
int sl_policy_upstream_path(const sl_route_rt_t *rt, const char *path, size_t len, sl_buf_t *out);
int sl_policy_upstream_drop(const sl_route_rt_t *rt, const char *name, size_t len);
void sl_policy_upstream_emit(const sl_route_rt_t *rt, sl_buf_t *head);
int sl_policy_response_drop(const sl_route_rt_t *rt, const char *name, size_t len);
void sl_policy_response_emit(const sl_route_rt_t *rt, sl_buf_t *head);
uint64_t sl_policy_deadline_ms(const sl_route_rt_t *rt);
uint64_t sl_policy_websocket_idle_ms(const sl_route_rt_t *rt);

/* Shared by request_headers and response_headers (headers.c). */
int sl_header_ops_drop(const sl_header_ops_cfg_t *ops, const char *name, size_t len);
void sl_header_ops_emit(const sl_header_ops_cfg_t *ops, sl_buf_t *head);

extern const sl_policy_ops_t sl_policy_ip_access;
extern const sl_policy_ops_t sl_policy_path_rewrite;
extern const sl_policy_ops_t sl_policy_request_headers;
extern const sl_policy_ops_t sl_policy_timeout;
extern const sl_policy_ops_t sl_policy_websocket;
extern const sl_policy_ops_t sl_policy_response_headers;

#endif
