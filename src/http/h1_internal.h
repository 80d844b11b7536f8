/* Internal structures shared by the HTTP/1.1 client side (h1_server.c) and the upstream side
 * (h1_upstream.c) of the proxy. Not part of any public interface. */
#ifndef SL_HTTP_H1_INTERNAL_H
#define SL_HTTP_H1_INTERNAL_H

#include <llhttp.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "base/arena.h"
#include "base/buf.h"
#include "http/h1_scan.h"
#include "http/request.h"
#include "policy/policy.h"
#include "runtime/generation.h"
#include "runtime/pipe.h"
#include "runtime/worker.h"

/* Sent bytes kept so a request can be replayed when a pooled connection turns out closed. */
#define SL_REPLAY_MAX (64 * 1024)
/* Most bytes of an upstream response head. */
#define SL_MAX_RESPONSE_HEAD (64 * 1024)

/* A message head under construction: every name and value copied into one buffer and
 * referenced by offset, since llhttp may hand them over in pieces across reads. */
typedef struct sl_hdr {
    uint32_t name_off, name_len, value_off, value_len;
} sl_hdr_t;

enum { SL_HEAD_NONE, SL_HEAD_FIELD, SL_HEAD_VALUE, SL_HEAD_VALUE_DONE };

typedef struct sl_head {
    sl_buf_t buf;
    sl_hdr_t *hdrs;
    size_t n, cap;
    uint32_t first_off, first_len; /* request target, or response reason phrase */
    size_t bytes;                  /* head bytes seen, for limits */
    int last;                      /* SL_HEAD_* of the previous callback */
} sl_head_t;

void sl_head_reset(sl_head_t *h);
void sl_head_free(sl_head_t *h);
void sl_head_first(sl_head_t *h, const char *p, size_t n);
/* Returns -1 on obs-fold (a value continued after it completed). */
int sl_head_field(sl_head_t *h, const char *p, size_t n);
int sl_head_value(sl_head_t *h, const char *p, size_t n);
void sl_head_value_done(sl_head_t *h);
static inline const char *sl_head_str(const sl_head_t *h, uint32_t off)
{
    return h->buf.data + off;
}
/* Case-insensitive name comparison. Inline: with a literal name the length is known when
 * compiling, and most fields differ from it in length alone. */
static inline int sl_hdr_is(const sl_head_t *h, const sl_hdr_t *x, const char *name)
{
    size_t n = strlen(name);
    return x->name_len == n && strncasecmp(sl_head_str(h, x->name_off), name, n) == 0;
}
/* True when every header name is a non-empty RFC 9110 token. */
int sl_head_names_valid(const sl_head_t *h);
/* The field's value, without surrounding whitespace, is want (case-insensitive). */
int sl_hdr_value_is(const sl_head_t *h, const sl_hdr_t *x, const char *want);
/* How many Transfer-Encoding fields the head has (0 or 1), or -1 when they are anything but
 * one field of exactly "chunked" that llhttp also read as chunked (chunked: its F_CHUNKED).
 * Any other coding list is how messages get smuggled past proxies, or one we cannot decode. */
int sl_head_te_count(const sl_head_t *h, int chunked);
/* Appends h's fields to v (borrowed: h must not change while v is used). */
void sl_head_to_hdrs(const sl_head_t *h, sl_http_hdrs_t *v, sl_arena_t *a);
/* True when a header called name lists token (comma-separated, case-insensitive). */
int sl_head_has_token(const sl_head_t *h, const char *name, const char *token);

typedef struct sl_upconn sl_upconn_t;
typedef struct sl_client sl_client_t;

enum { SL_BODY_NONE, SL_BODY_LENGTH, SL_BODY_CHUNKED };

/* One request/response exchange on a client connection. */
typedef struct sl_exchange {
    int active;
    sl_generation_t *gen;
    sl_route_rt_t *route;
    sl_node_t *node;
    const sl_node_t *failed_node;
    int attempt_open; /* sl_upstream_begin() was called for node, sl_upstream_end() not yet */
    const char *pick_key; /* hash / cookie balancer key (in the frozen head or the peer address), or NULL */
    size_t pick_key_len;
    int issue_cookie; /* cookie balancer: set the sticky cookie on the response */
    uint64_t deadline_ns; /* timeout policy: the whole request ends by then (0: none) */
    int refused_status;   /* a request policy refused it (ip_access: 403) */
    const char *refused_code;
    sl_policy_state_t policy; /* what request policies recorded for the response (rate limit) */
    int upgrade;          /* a WebSocket handshake the route lets through: a tunnel if the upstream agrees */
    sl_upconn_t *uc;
    int tries;            /* nodes tried after connect failures (the upstream's own failover) */
    int retries;          /* tries sent again by the retry policy */
    const char *retry_stop; /* why a try the retry policy wanted again was not, for the log */
    uint64_t try_deadline_ns; /* retry policy's per_try_timeout: this try's head by then (0: none) */
    struct sl_backoff *backoff; /* waiting to retry */
    /* The client's request: method, target and header vector (pointing into the frozen head). */
    sl_http_req_t req;
    /* The server codec answering this exchange (request.h), and the stream it answers on. */
    const sl_http_stream_ops_t *sops;
    void *stream;
    /* Per-exchange allocations (header vectors, rewritten values); cleared when it ends. */
    sl_arena_t *arena;
    /* The upstream response's headers the access log asks for (the connection's buffer). */
    sl_buf_t *resp_log;
    int req_body;
    uint64_t req_length; /* Content-Length of the request body, as the head said */
    int expect_continue;
    int req_complete;
    int req_streamed;  /* body bytes went to the upstream and cannot be replayed */
    const char *host;  /* lower-cased, without port (in the request state's host_store) */
    size_t host_len;
    /* The request id (request_id), kept from the client or made here, and its settings (in
     * the generation's configuration); request_id_len 0 when there is none. */
    const sl_request_id_cfg_t *request_id_cfg;
    char request_id[132];
    uint8_t request_id_len;
    sl_buf_t prebuf;   /* upstream bytes waiting for the connection */
    sl_buf_t replay;   /* bytes sent on this connection, to send again (see replayable) */
    int replayable;    /* replay holds everything sent on this connection */
    int pool_replay;   /* a pooled connection that closed before answering may get it again */
    size_t replay_limit;
    /* response */
    int status;
    int upstream_status;
    int head_sent;
    int resp_chunked;  /* re-chunking the body for the client */
    int resp_complete;
    int skip_interim;  /* ignoring a 1xx response from the upstream */
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
} sl_exchange_t;

enum { SL_C_HEAD, SL_C_BODY, SL_C_WAIT, SL_C_CLOSING, SL_C_TUNNEL };

/* Everything a connection needs only while a request is in progress. Idle keep-alive
 * connections hold none of it: it comes from a per-worker free list when bytes arrive and
 * goes back when the exchange is done, which keeps an idle connection small. */
typedef struct sl_creq {
    llhttp_t parser;
    sl_head_t head;
    sl_exchange_t ex;
    int err_status;
    const char *err_code;
    unsigned err_set : 1;
    /* The framing checker running ahead of llhttp (h1_scan.h), and where it stopped in the
     * buffer being parsed when the head ended (the body is checked from there on). */
    sl_h1_scan_t scan;
    /* The exchange's normalised host and path. Like head's buffer, they are kept from request
     * to request, so that normalising allocates nothing once a connection is warm. */
    sl_buf_t host_store, path_store;
    /* The upstream response's headers the access log asks for (response_header.NAME), as
     * records of name length, name, value length, value; kept like the stores above. */
    sl_buf_t resp_log;
    sl_arena_t arena; /* the exchange's (sl_exchange_t.arena), cleared after each */
    const char *scan_at;
    const char *feed_end;
    /* The head is complete and frozen: nothing is added to head (trailer fields are checked,
     * counted and dropped), so pointers into it stay valid until the exchange is released. */
    uint8_t head_done;
    /* The head passed llhttp's checks as well as ours only once llhttp goes on past it: routing
     * and the upstream wait for that (exchange_begin() in h1_server.c). */
    uint8_t begin_pending;
    size_t trailer_bytes;
    struct sl_creq *next_free;
} sl_creq_t;

struct sl_client {
    uv_tcp_t tcp;
    sl_list_t link;     /* worker's clients */
    sl_list_t tlink;    /* worker's timeout queue, when a timeout is armed */
    uint64_t deadline;  /* loop time (ms) the armed timeout fires */
    sl_worker_t *w;
    sl_creq_t *rq;      /* NULL while idle */
    sl_buf_t pending;   /* bytes after a finished message, parsed once it is answered */
    size_t write_queued;
    uv_shutdown_t *shutdown_req;
    struct sl_tunnel *tunnel; /* after a WebSocket upgrade (tunnel.c) */
    uint8_t state;
    uint8_t tq;         /* SL_TQ_* of the armed timeout */
    unsigned reading : 1, peer_eof : 1, close_after : 1, closing : 1, keepalive : 1, in_parse : 1, lingering : 1,
        out_blocked : 1;
    uint16_t peer_port;
    char peer_ip[INET6_ADDRSTRLEN];
};

/* h1_server.c */
void sl_h1_accept(sl_worker_t *w, uv_stream_t *server);
/* Closes idle clients and marks busy ones to close after their response (worker stopping). */
void sl_h1_drain(sl_worker_t *w);
/* Closes every client now (grace period over). */
void sl_h1_close_all(sl_worker_t *w);
/* Fires the client timeouts that are due (the worker's tick). */
void sl_h1_timeouts(sl_worker_t *w);
/* Frees the worker's cached request states. */
void sl_h1_worker_cleanup(sl_worker_t *w);
/* Gathers c's small writes until sl_client_batch_end(), which sends them in one write. */
void sl_client_batch_begin(sl_client_t *c);
void sl_client_batch_end(sl_client_t *c);
/* Called by the upstream side. */
void sl_client_send(sl_client_t *c, const void *p, size_t n);
void sl_client_response_body(sl_client_t *c, const char *p, size_t n);
void sl_client_response_done(sl_client_t *c);
/* The client connection's stream ops (request.h), for ex->sops. */
extern const sl_http_stream_ops_t sl_h1_stream_ops;

/* response.c: the one writer of response heads. Each runs the response phase once (the route's
 * on_response_headers hooks, the request id, the sticky cookie, the access log's capture) and
 * hands the head to the exchange's stream ops. */
/* An upstream's response (resp->hdrs: its fields without hop-by-hop ones), or a 101. */
void sl_http_respond(sl_exchange_t *ex, sl_http_resp_t *resp);
/* The gateway's own answer: status, extra fields, Content-Type (or NULL) and the whole body. */
void sl_http_respond_local(sl_exchange_t *ex, int status, const sl_header_kv_t *hdrs, size_t n_hdrs,
                           const char *ctype, const char *body, size_t body_len);
/* A JSON error answer {"error": code, "status": status}; code is the log's error too. */
void sl_http_respond_error(sl_exchange_t *ex, int status, const char *code);
/* A field's value in a header vector (the access log's request_header.NAME); ctx is the vector. */
const char *sl_http_log_header(const void *ctx, const char *name, size_t n, size_t *len);
/* The exchange failed: answer with a JSON error if nothing was sent yet, else drop the connection. */
void sl_client_fail(sl_client_t *c, int status, const char *code);
/* The upstream side can take more request bytes (below the low water mark). */
void sl_client_upstream_drained(sl_client_t *c);
/* The upstream side is over its high water mark: stop reading the client. */
void sl_client_pause_for_upstream(sl_client_t *c);
/* c's tunnel is over (error NULL when both directions ended cleanly): logs the exchange and
 * closes the connection, the tunnel's upstream side with it. */
void sl_client_tunnel_done(sl_client_t *c, const char *error);

/* h1_upstream.c */
/* Picks a node and starts sending the request head in c->ex.prebuf. */
void sl_upstream_start(sl_client_t *c);
/* Sends request bytes (head remainder or body) to the exchange's upstream. */
void sl_upstream_send(sl_client_t *c, const void *p, size_t n);
/* The request was fully sent: arm the read timeout. */
void sl_upstream_request_done(sl_client_t *c);
/* Sends ex.prebuf on a new connection to the current node (a pooled one failed). */
void sl_upstream_connect_fresh(sl_client_t *c);
/* Detaches and closes the exchange's upstream connection (client went away or failed). */
void sl_upstream_abort(sl_client_t *c);
/* The client has room again: resume reading the upstream. */
void sl_upstream_client_drained(sl_client_t *c);
void sl_pool_close_all(sl_worker_t *w);
void sl_pool_sweep(sl_worker_t *w);
/* Closes an upstream connection handed to a tunnel (the stream sl_tunnel_start() was given). */
void sl_upstream_close_detached(uv_stream_t *s);

/* tunnel.c: a WebSocket connection after the upstream's 101, a byte pipe (runtime/pipe.h) between
 * the client and the upstream connection that ends after the route's idle timeout without bytes. */
/* Starts c's tunnel over the upstream connection up (now the tunnel's, up->data included),
 * first sending what the client sent after its handshake (c->pending) and early, the upstream
 * bytes that followed the 101 in the same read. May end the tunnel (and close c) at once. */
void sl_tunnel_start(sl_client_t *c, uv_stream_t *up, const char *early, size_t n);
/* Stops c's tunnel and closes its upstream connection (c is closing). */
void sl_tunnel_close(sl_client_t *c);

#endif
