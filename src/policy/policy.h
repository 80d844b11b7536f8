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

/* What request hooks record about one request for the response side: zeroed for each request,
 * kept with it (the exchange) until its response is sent. */
typedef struct sl_policy_state {
    struct {
        int counted; /* local_rate_limit counted the request: the fields below are set */
        int refused;
        uint64_t limit, remaining, reset_s, retry_after_s;
    } rate_limit;
} sl_policy_state_t;

/* What the request-side hooks see of a request. */
typedef struct sl_policy_req {
    const char *peer;   /* the TCP peer's address */
    const char *remote; /* the client gateway.proxy_layers hops from the right of X-Forwarded-For */
    size_t remote_len;
    /* The value of the request's first header called name (case-insensitive): 1 with *value and
     * *len (not NUL-terminated, valid while the request is), or 0 when it has none. */
    int (*header)(const void *ctx, const char *name, const char **value, size_t *len);
    const void *ctx;
    sl_policy_state_t *state; /* this request's */
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
    /* An upstream response header the client gets (after response_drop): appends a new value to
     * out and returns 1, or returns 0 and appends nothing to keep the value. */
    int (*response_header)(const sl_route_rt_t *rt, const char *name, size_t nlen, const char *value, size_t vlen,
                           sl_buf_t *out);
    /* Headers from the request's policy state, on every response of the route: proxied ones and
     * those the gateway answers itself (refusals, errors, direct responses). */
    void (*state_emit)(const sl_route_rt_t *rt, const sl_policy_state_t *st, sl_buf_t *head);
    /* The most the whole request may take, in ms (0: no bound). */
    uint64_t (*deadline_ms)(const sl_route_rt_t *rt);
    /* WebSocket upgrades are allowed: a tunnel's idle timeout in ms (0: upgrades refused). */
    uint64_t (*websocket_idle_ms)(const sl_route_rt_t *rt);
} sl_policy_ops_t;

/* Builds rt's chain from its configuration (main thread). Returns 0, or -1 when a policy could
 * not initialise (the reason appended to errs; rt is left with no policy at all, so the
 * generation that holds it must not be published). */
int sl_policy_chain_init(sl_route_rt_t *rt, sl_config_errors_t *errs);
void sl_policy_chain_destroy(sl_route_rt_t *rt);

/* The chain's hooks, in order (see sl_policy_ops_t). */
int sl_policy_on_request(const sl_route_rt_t *rt, const sl_policy_req_t *req, const char **code);
int sl_policy_upstream_path(const sl_route_rt_t *rt, const char *path, size_t len, sl_buf_t *out);
int sl_policy_upstream_drop(const sl_route_rt_t *rt, const char *name, size_t len);
void sl_policy_upstream_emit(const sl_route_rt_t *rt, sl_buf_t *head);
int sl_policy_response_drop(const sl_route_rt_t *rt, const char *name, size_t len);
void sl_policy_response_emit(const sl_route_rt_t *rt, sl_buf_t *head);
/* The first policy that rewrites the header's value wins. */
int sl_policy_response_header(const sl_route_rt_t *rt, const char *name, size_t nlen, const char *value, size_t vlen,
                              sl_buf_t *out);
void sl_policy_state_emit(const sl_route_rt_t *rt, const sl_policy_state_t *st, sl_buf_t *head);
uint64_t sl_policy_deadline_ms(const sl_route_rt_t *rt);
uint64_t sl_policy_websocket_idle_ms(const sl_route_rt_t *rt);

/* How a try ended without a response the client can be given (retry.c). */
typedef enum {
    SL_TRY_CONNECT_FAILURE, /* refused, unreachable, timed out connecting */
    SL_TRY_RESET,           /* closed or reset before the response head */
    SL_TRY_TIMEOUT,         /* no response head within the read or per-try timeout */
    SL_TRY_BAD_RESPONSE,    /* a response that is not HTTP */
    SL_TRY_STATUS,          /* a response head whose status (or grpc-status) is retried */
    SL_TRY_RESULTS
} sl_try_result_t;

/* Whether rc retries a try that ended with r (status and grpc_status, -1 when absent, for
 * SL_TRY_STATUS). */
int sl_retry_wanted(const sl_retry_cfg_t *rc, sl_try_result_t r, int status, int grpc_status);
/* The back-off before retry n (0 for the first), from a uniformly random r. */
uint64_t sl_retry_backoff_ms(const sl_retry_cfg_t *rc, unsigned n, uint64_t r);
/* The reason label of r in sluice_http_retries_total. */
const char *sl_try_result_name(sl_try_result_t r);

/* Shared by request_headers and response_headers (headers.c). */
int sl_header_ops_drop(const sl_header_ops_cfg_t *ops, const char *name, size_t len);
void sl_header_ops_emit(const sl_header_ops_cfg_t *ops, sl_buf_t *head);

extern const sl_policy_ops_t sl_policy_ip_access;
extern const sl_policy_ops_t sl_policy_local_rate_limit;
extern const sl_policy_ops_t sl_policy_path_rewrite;
extern const sl_policy_ops_t sl_policy_request_headers;
extern const sl_policy_ops_t sl_policy_timeout;
extern const sl_policy_ops_t sl_policy_retry;
extern const sl_policy_ops_t sl_policy_websocket;
extern const sl_policy_ops_t sl_policy_response_headers;
extern const sl_policy_ops_t sl_policy_cookie_rewrite;

#endif
