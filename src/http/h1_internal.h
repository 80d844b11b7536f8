/* Internal to http/: the HTTP/1.1 codecs, the server side (h1_conn.c) and the upstream client
 * (h1_client.c), and what they share (message heads, h1_head.c; the WebSocket tunnel,
 * tunnel.c). Only http/ includes it; runtime/ reaches the codec through its entry points. */
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
#include "http/h1.h"
#include "http/h1_scan.h"
#include "http/proxy.h"
#include "http/request.h"
#include "http/response.h"
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

typedef struct sl_upconn sl_upconn_t;
typedef struct sl_client sl_client_t;

enum { SL_C_HEAD, SL_C_BODY, SL_C_WAIT, SL_C_CLOSING, SL_C_TUNNEL };

/* Everything a connection needs only while a request is in progress. Idle keep-alive
 * connections hold none of it: it comes from a per-worker free list when bytes arrive and
 * goes back when the exchange is done, which keeps an idle connection small. */
/* Client timeout queues: each holds timeouts of one duration, so appending keeps it sorted
 * and the tick only looks at the front. */
enum { SL_TQ_HEADER, SL_TQ_BODY, SL_TQ_KEEPALIVE, SL_TQ_LINGER, SL_TQ_COUNT };

/* A worker's HTTP state: its slot in sl_worker_t.kind_state, made by the listener kind's
 * worker_init (h1_listener.c). */
typedef struct sl_h1_worker {
    sl_list_t clients; /* every open client connection */
    size_t n_clients;
    sl_list_t tq[SL_TQ_COUNT];
    struct sl_creq *free_rq; /* request states ready for reuse */
    size_t n_free_rq;
    sl_map_t pools; /* upstream address -> idle connection list */
    uint64_t last_sweep_ms;
    /* Output coalescing: while one client's response is produced from one upstream read, small
     * pieces (head, chunk lines, small bodies) gather here and leave in one write. */
    struct sl_client *batch_owner;
    sl_buf_t batch;
} sl_h1_worker_t;

static inline sl_h1_worker_t *sl_h1w(const sl_worker_t *w)
{
    return (sl_h1_worker_t *)w->kind_state[SL_LISTEN_HTTP];
}
/* Fills a new worker's slot (a test or fuzzer's fake worker too). */
void sl_h1_worker_init(sl_worker_t *w);

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
     * and the upstream wait for that (exchange_begin() in h1_conn.c). */
    uint8_t begin_pending;
    size_t trailer_bytes;
    uint8_t resp_chunked; /* re-chunking the response body for the client */
    uint8_t local;        /* the gateway answers this request itself (sl_proxy_begin said so) */
    uint8_t local_sent;   /* that answer (or an error) went out: the exchange ends with it */
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

/* h1_conn.c */
/* Gathers c's small writes until sl_client_batch_end(), which sends them in one write. */
void sl_client_batch_begin(sl_client_t *c);
void sl_client_batch_end(sl_client_t *c);
void sl_client_send(sl_client_t *c, const void *p, size_t n);
/* c's tunnel is over (error NULL when both directions ended cleanly): logs the exchange and
 * closes the connection, the tunnel's upstream side with it. */
void sl_client_tunnel_done(sl_client_t *c, const char *error);
/* The client connection's stream ops (request.h). */
extern const sl_http_stream_ops_t sl_h1_stream_ops;

/* h1_rq.c: the worker's pool of request states. take returns one reset (its buffers kept);
 * give puts it back, or frees it when the pool is full or it grew large. */
sl_creq_t *sl_h1_rq_take(sl_worker_t *w);
void sl_h1_rq_give(sl_worker_t *w, sl_creq_t *rq);

/* h1_target.c */
/* Drops the fields whose name has an underscore (gateway.http.headers_with_underscores: drop). */
void sl_h1_drop_underscore_names(sl_head_t *h);
int sl_h1_has_underscore_name(const sl_head_t *h);
/* Sets rq->ex's host, authority, path (normalised into rq->path_store) and query from the
 * request target and the Host field (host, or NULL); -1 when either is malformed. */
int sl_h1_parse_target(sl_creq_t *rq, const sl_hdr_t *host, const sl_gateway_cfg_t *g, const char *peer);
/* llhttp's method number as the protocol-neutral one. */
sl_http_method_t sl_h1_method_id(uint8_t m);

/* h1_client.c */
/* Closes an upstream connection handed to a tunnel (the stream sl_tunnel_start() was given). */
void sl_upstream_close_detached(uv_stream_t *s);

/* tunnel.c: a WebSocket connection after the upstream's 101, a byte pipe (runtime/pipe.h) between
 * the client and the upstream connection that ends after the route's idle timeout without bytes. */
/* Starts c's tunnel over the upstream connection up (now the tunnel's, up->data included),
 * first sending what the client sent after its handshake (c->pending) and early, the upstream
 * bytes that followed the 101 in the same read. May end the tunnel (and close c) at once. */
void sl_tunnel_start(void *c, uv_stream_t *up, const char *early, size_t n);
/* Stops c's tunnel and closes its upstream connection (c is closing). */
void sl_tunnel_close(sl_client_t *c);

#endif
