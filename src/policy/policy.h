/* HTTP policies: one file per policy, each a const table of hooks, chained by policy.c.
 * A route's chain (the policies it enables, in the documented order) is built once per
 * configuration generation, never per request; the proxy calls the sl_policy_* functions,
 * which run the chain. Policies see header vectors (http/request.h), never wire text: the
 * codecs write the bytes.
 *
 * Every policy is listed once, in chain order, in the registry (src/modules.c): ip_access, cors,
 * local_rate_limit, path_rewrite, request_headers, proxy (timeout, retry, websocket),
 * response_headers, cookie_rewrite. */
#ifndef SL_POLICY_POLICY_H
#define SL_POLICY_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/chain.h"
#include "config/config.h"
#include "http/request.h"

struct sl_access_entry;

typedef struct sl_route_rt sl_route_rt_t;

/* What request hooks record about one request for the response side: zeroed for each request,
 * kept with it (the exchange) until its response is sent. */
typedef struct sl_policy_state {
    const sl_http_req_t *req; /* the client's request, for the response hooks */
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
    const sl_http_req_t *req; /* the client's request (headers valid while the request is) */
    sl_policy_state_t *state; /* this request's */
} sl_policy_req_t;

/* A policy: a const table of hooks over protocol-neutral requests and responses (http/request.h).
 * Every hook gets the route and the policy's own per-route state (init's *data, opaque to
 * everyone else). Hooks a policy does not need are NULL. */
typedef struct sl_policy_ops {
    /* Its name (its key in a route's policies map), and the init (route: the sl_route_rt_t
     * being built; compiled patterns, kept state...) and destroy of its per-route state. */
    sl_module_t m;
    /* Whether the route's configuration turns the policy on. */
    int (*enabled)(const sl_policies_cfg_t *pc);
    /* A request was routed here: 0 to go on, or the status the gateway answers it with itself:
     * a refusal with its error code in *code (a JSON error body), or, with *code NULL, an
     * answer without a body (a CORS preflight's 204). Runs before anything is sent upstream. */
    int (*on_request)(const sl_route_rt_t *rt, void *data, const sl_policy_req_t *req, const char **code);
    /* The request about to go upstream: may replace up->path and edit up->hdrs (the gateway's
     * own fields, Host and X-Forwarded-*, included); new bytes go into a. */
    void (*on_upstream_request)(const sl_route_rt_t *rt, void *data, sl_http_req_t *up, sl_arena_t *a);
    /* The response head about to go to the client: proxied, a 101, or the gateway's own answer
     * (resp->local: refusals, errors, direct responses); st is what the request hooks recorded.
     * Run once per response, in reverse chain order (the last policy sees the upstream's fields
     * first). May edit resp->hdrs; new bytes go into a. */
    void (*on_response_headers)(const sl_route_rt_t *rt, void *data, const sl_policy_state_t *st, sl_http_resp_t *resp,
                                sl_arena_t *a);
    /* The exchange is being logged: may add to what the access log line says. */
    void (*on_log)(const sl_route_rt_t *rt, void *data, const sl_policy_state_t *st, struct sl_access_entry *e);
    /* The most the whole request may take, in ms (0: no bound). */
    uint64_t (*deadline_ms)(const sl_route_rt_t *rt, void *data);
    /* WebSocket upgrades are allowed: a tunnel's idle timeout in ms (0: upgrades refused). */
    uint64_t (*websocket_idle_ms)(const sl_route_rt_t *rt, void *data);
} sl_policy_ops_t;

/* Builds rt's chain from its configuration (main thread). Returns 0, or -1 when a policy could
 * not initialise (the reason appended to errs; rt is left with no policy at all, so the
 * generation that holds it must not be published). */
int sl_policy_chain_init(sl_route_rt_t *rt, sl_config_errors_t *errs);
/* The settings of a policy that owns their type (read by its module's `read`), for rt's route;
 * NULL when the route does not enable it. Called by the policy's init. */
const void *sl_policy_settings(const sl_route_rt_t *rt, const sl_policy_ops_t *ops);
void sl_policy_chain_destroy(sl_route_rt_t *rt);

/* The chain's hooks, in order (see sl_policy_ops_t). */
int sl_policy_on_request(const sl_route_rt_t *rt, const sl_policy_req_t *req, const char **code);
void sl_policy_on_upstream_request(const sl_route_rt_t *rt, sl_http_req_t *up, sl_arena_t *a);
void sl_policy_on_response_headers(const sl_route_rt_t *rt, const sl_policy_state_t *st, sl_http_resp_t *resp,
                                   sl_arena_t *a);
void sl_policy_on_log(const sl_route_rt_t *rt, const sl_policy_state_t *st, struct sl_access_entry *e);
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
/* The route's retry settings, or NULL when its retry policy is off: how the proxy reads them. */
const sl_retry_cfg_t *sl_retry_settings(const sl_route_rt_t *rt);
/* Counts a retry of rt's for r in sluice_http_retries_total (worker's slot). */
void sl_retry_count(const sl_route_rt_t *rt, sl_try_result_t r, unsigned worker);
/* The reason label of r in sluice_http_retries_total. */
const char *sl_try_result_name(sl_try_result_t r);

/* Shared by request_headers and response_headers (headers.c): removes the fields that set or
 * remove name, then appends set and add. */
void sl_header_ops_apply(const sl_header_ops_cfg_t *ops, sl_http_hdrs_t *h, sl_arena_t *a);

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
