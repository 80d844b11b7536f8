/* The exchange: one request and its response, from the server codec that read it to the
 * upstream client that forwards it, driven by proxy.c. Everything here is protocol-neutral;
 * the codecs keep their wire state to themselves (the server codec in its stream, the upstream
 * client in the exchange's client slot). Internal to http/. */
#ifndef SL_HTTP_PROXY_H
#define SL_HTTP_PROXY_H

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "http/request.h"
#include "policy/policy.h"
#include "runtime/generation.h"
#include "runtime/worker.h"

typedef struct sl_exchange sl_exchange_t;

/* An upstream codec (h1_client.c; later h2): runs one try of ex on ex->node. It reports back
 * through the sl_proxy_on_* functions below; after cancel it reports nothing more. */
typedef struct sl_http_client_ops {
    /* Connects to ex->node (a pooled connection unless fresh) and sends ex's upstream request
     * (built once, in ex->up) with the body so far. A try after cancel(ex, 1) sends again
     * what the cancelled one had sent. */
    void (*start)(sl_exchange_t *ex, int fresh);
    /* More request body (n may be 0); last: the body is complete. Returns 1 when the upstream
     * side is over its high water mark (until sl_proxy_on_upstream_drained), else 0. */
    int (*write_body)(sl_exchange_t *ex, const char *p, size_t n, int last);
    /* Ends the try and its connection. again: keep what was sent for the next start (a retry);
     * else free everything (the exchange is over). */
    void (*cancel)(sl_exchange_t *ex, int again);
    /* The client side has room again: read more of the response. */
    void (*resume)(sl_exchange_t *ex);
} sl_http_client_ops_t;

/* Room for a client's per-exchange state (its connection, the bytes kept for a replay). */
#define SL_HTTP_CLIENT_STATE 96

struct sl_exchange {
    int active;
    sl_worker_t *w;
    sl_generation_t *gen;
    sl_route_rt_t *route;
    sl_node_t *node;
    sl_tried_t tried; /* every node this request has tried: failover and retries avoid them */
    const char *peer; /* the TCP peer's address (NUL-terminated, the connection's) */
    uint16_t peer_port;
    int attempt_open; /* sl_upstream_begin() was called for node, sl_upstream_end() not yet */
    const char *pick_key; /* hash / cookie balancer key (in the request or the peer address), or NULL */
    size_t pick_key_len;
    int issue_cookie; /* cookie balancer: set the sticky cookie on the response */
    uint64_t deadline_ns; /* timeout policy: the whole request ends by then (0: none) */
    int refused_status;   /* a request policy refused it (ip_access: 403) */
    const char *refused_code;
    sl_policy_state_t policy; /* what request policies recorded for the response (rate limit) */
    int upgrade;          /* a WebSocket handshake the route lets through: a tunnel if the upstream agrees */
    int tries;            /* nodes tried after connect failures (the upstream's own failover) */
    int retries;          /* tries sent again by the retry policy */
    const char *retry_stop; /* why a try the retry policy wanted again was not, for the log */
    uint64_t try_deadline_ns; /* retry policy's per_try_timeout: this try's head by then (0: none) */
    struct sl_backoff *backoff; /* waiting to retry */
    /* The client's request: method, target and header vector. */
    sl_http_req_t req;
    /* The request as it goes upstream (proxy.c builds it once; the client writes it). */
    sl_http_req_t up;
    /* The server codec answering this exchange (request.h), and the stream it answers on. */
    const sl_http_stream_ops_t *sops;
    void *stream;
    /* The upstream codec and its state for this exchange. */
    const sl_http_client_ops_t *cops;
    alignas(max_align_t) unsigned char client[SL_HTTP_CLIENT_STATE];
    /* Per-exchange allocations (header vectors, rewritten values); cleared when it ends. */
    sl_arena_t *arena;
    /* The upstream response's headers the access log asks for (the connection's buffer). */
    sl_buf_t *resp_log;
    int expect_continue;
    int req_complete;
    int req_streamed;  /* body bytes went to the upstream (the client keeps them if replayable) */
    int replayable;    /* the client keeps everything sent, to send again */
    const char *host;  /* lower-cased, without port */
    size_t host_len;
    /* The request id (request_id), kept from the client or made here, and its settings (in
     * the generation's configuration); request_id_len 0 when there is none. */
    const sl_request_id_cfg_t *request_id_cfg;
    char request_id[132];
    uint8_t request_id_len;
    /* response */
    int status;
    int upstream_status;
    int head_sent;
    int counted; /* in sluice_http_requests_total already (at its head) */
    int resp_complete;
    uint64_t bytes_in, bytes_out;
    uint64_t t_start_ns, t_sent_ns;
    uint64_t start_unix_ms;
    double upstream_ms;
    /* The last try's connect: when it started, and how long it took (0 for a pooled
     * connection); connect_tried 0 when no try got that far. */
    uint64_t connect_start_ns;
    double upstream_connect_ms;
    int connect_tried;
    const char *error;
    const char *node_name; /* the node's configured address, owned by the generation */
};

/* The clock proxy.c reads for deadlines and timings (sl_now_ns; unit tests replace it). */
extern uint64_t (*sl_proxy_clock)(void);

/* ---- for server codecs ---- */

/* The head of ex->req is complete and accepted: routes it, runs the request policies, picks a
 * node and starts the upstream. Returns 1 when the gateway answers it itself (no route, a
 * refusal, a direct response: sl_proxy_answer_local once the body is read), 0 when it went
 * upstream, -1 when it was answered already (no node: 503) or the stream ended. */
int sl_proxy_begin(sl_exchange_t *ex);
/* Starts the first try (after sl_proxy_begin returned 0, and the codec's interim answers). */
void sl_proxy_start(sl_exchange_t *ex);
/* Counts the exchange in sluice_http_requests_total by its status, once (at its head, or at its
 * end when it had none). */
void sl_proxy_count(sl_exchange_t *ex);
/* Logs the exchange (access log, request counters); the codec sets req.target first. */
void sl_proxy_log(sl_exchange_t *ex);
/* The gateway's own answer to an exchange sl_proxy_begin kept (refusal, no route, direct). */
void sl_proxy_answer_local(sl_exchange_t *ex);
/* Request body for the upstream; last: the request is complete. Returns 1 when the upstream
 * side is over its high water mark: stop reading until the stream ops' resume. */
int sl_proxy_body(sl_exchange_t *ex, const char *p, size_t n, int last);
/* The exchange failed: a JSON error when nothing was sent yet (then the stream's end), else
 * the stream is reset. The upstream side is let go. */
void sl_proxy_fail(sl_exchange_t *ex, int status, const char *code);
/* The stream has room again: resume the upstream's response. */
void sl_proxy_stream_drained(sl_exchange_t *ex);
/* Lets go of the upstream side (the exchange is over or its stream went away). */
void sl_proxy_release(sl_exchange_t *ex);

/* ---- for upstream clients ---- */

/* The try's connection is up (connect_ms: how long connecting took; 0 for a pooled one). */
void sl_proxy_on_connected(sl_exchange_t *ex, double connect_ms);
/* Connecting failed or timed out. */
void sl_proxy_on_connect_failed(sl_exchange_t *ex, const char *code);
/* The try ended without a response head (r), or (after the head, or the route's deadline) the
 * exchange cannot go on: retried when the retry policy covers it, else the client gets status. */
void sl_proxy_on_try_failed(sl_exchange_t *ex, sl_try_result_t r, int status, const char *code);
void sl_proxy_on_failed(sl_exchange_t *ex, int status, const char *code);
/* A pooled connection closed before answering an exchange that may be sent again: one more
 * try on a fresh connection to the same node. */
void sl_proxy_on_pool_closed(sl_exchange_t *ex);
/* The final response head (or a 101 for ex->upgrade). grpc_status: -1 when absent. Returns 0
 * when it goes to the client, -1 when the try is retried instead (the client was cancelled). */
int sl_proxy_on_head(sl_exchange_t *ex, sl_http_resp_t *resp, int grpc_status);
/* Response body; returns 1 when the stream is congested: read no more until resume. */
int sl_proxy_on_body(sl_exchange_t *ex, const char *p, size_t n);
/* The response is complete (its trailer fields, if any, are dropped: trailers may be NULL). */
void sl_proxy_on_trailers(sl_exchange_t *ex, const sl_http_hdrs_t *trailers);
/* The upstream can take more request body. */
void sl_proxy_on_upstream_drained(sl_exchange_t *ex);
/* Ends the current attempt's accounting on ex->node (sl_upstream_end). */
void sl_proxy_attempt_end(sl_exchange_t *ex, sl_outcome_t outcome, double latency_ms);

/* The HTTP/1.1 upstream client (h1_client.c). */
extern const sl_http_client_ops_t sl_h1_client_ops;

#endif
