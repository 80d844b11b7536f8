/* The protocol-neutral HTTP exchange: a request and a response as method, target and a header
 * vector, whatever codec read or writes them, and the two seams codecs plug into:
 *
 *   sl_http_stream_ops_t   a server-side codec (h1_conn.c; later h2) answering one stream;
 *   sl_http_client_ops_t   an upstream codec (h1_client.c; later h2) sending one request.
 *
 * proxy.c and response.c see only these types: no wire bytes, no framing, no parser state.
 * Header names and values are not NUL-terminated; they point into the codec's buffers or into
 * the exchange's arena (base/arena.h), and live until the exchange is released. */
#ifndef SL_HTTP_REQUEST_H
#define SL_HTTP_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"

typedef struct sl_http_hdr {
    const char *name, *value;
    uint32_t name_len, value_len;
} sl_http_hdr_t;

/* An ordered list of fields; repeated names stay separate entries, in order. */
typedef struct sl_http_hdrs {
    sl_http_hdr_t *v;
    uint32_t n, cap;
} sl_http_hdrs_t;

/* Makes room for more fields (the array moves into a bigger one in a). */
void sl_http_hdrs_grow(sl_http_hdrs_t *h, sl_arena_t *a);
/* Appends a field (name and value borrowed, not copied); the array grows in a. Inline: a head
 * is built of a few dozen of these per request. */
static inline void sl_http_hdrs_add(sl_http_hdrs_t *h, sl_arena_t *a, const char *name, size_t nlen,
                                    const char *value, size_t vlen)
{
    if (h->n == h->cap) sl_http_hdrs_grow(h, a);
    sl_http_hdr_t *x = &h->v[h->n++];
    x->name = name;
    x->value = value;
    x->name_len = (uint32_t)nlen;
    x->value_len = (uint32_t)vlen;
}
/* Appends name with the decimal value v, formatted into a. */
void sl_http_hdrs_add_u64(sl_http_hdrs_t *h, sl_arena_t *a, const char *name, uint64_t v);
/* v in decimal into out (at least 20 bytes, no NUL); returns the length. Heads carry numbers
 * on every response, and printf would be most of what formatting one costs. */
size_t sl_http_u64(char *out, uint64_t v);
/* Removes every field called name (any case); returns how many. */
size_t sl_http_hdrs_remove(sl_http_hdrs_t *h, const char *name, size_t nlen);
/* The index of the first field called name (any case) at or after from, or -1. */
long sl_http_hdrs_find(const sl_http_hdrs_t *h, const char *name, size_t nlen, size_t from);
/* The field's name is name (any case). */
int sl_http_hdr_is(const sl_http_hdr_t *x, const char *name, size_t nlen);
/* True when a field called name lists token (comma-separated, any case). */
int sl_http_hdrs_has_token(const sl_http_hdrs_t *h, const char *name, const char *token);
/* True for hop-by-hop fields (RFC 9110 7.6.1) and those a Connection field of h names (except
 * Content-Length and Host): they belong to one connection, never forwarded. */
int sl_http_hdrs_hop_by_hop(const sl_http_hdrs_t *h, const sl_http_hdr_t *x);

#define SL_HDR_IS(x, lit) sl_http_hdr_is((x), lit, sizeof(lit) - 1)

/* Methods the proxy treats differently; everything else is SL_HTTP_OTHER (name says which). */
typedef enum {
    SL_HTTP_OTHER,
    SL_HTTP_GET,
    SL_HTTP_HEAD,
    SL_HTTP_POST,
    SL_HTTP_PUT,
    SL_HTTP_DELETE,
    SL_HTTP_OPTIONS,
    SL_HTTP_TRACE,
    SL_HTTP_CONNECT,
} sl_http_method_t;

/* How a request body arrives: none, with a known length, or as a stream of unknown length. */
typedef enum { SL_HTTP_BODY_NONE, SL_HTTP_BODY_LENGTH, SL_HTTP_BODY_STREAM } sl_http_body_t;

/* A request: what the client sent (the codec's, read-only to the proxy), or what goes upstream
 * (built by the proxy in the exchange's arena). */
typedef struct sl_http_req {
    sl_http_method_t method_id;
    const char *method; /* NUL-terminated */
    const char *scheme; /* "http"; NUL-terminated */
    const char *target; /* the request target as sent, for the log (set when logging) */
    size_t target_len;
    const char *authority; /* an absolute target's host[:port] (replaces Host), or NULL */
    size_t authority_len;
    const char *path; /* normalised, without the query */
    size_t path_len;
    const char *query; /* "?..." as sent, or NULL */
    size_t query_len;
    /* The client's: every field as received. Upstream: what is forwarded (no hop-by-hop or
     * framing fields: the codec writes those from body and body_length). */
    sl_http_hdrs_t hdrs;
    uint8_t http_minor;  /* the client's protocol version, for the log and for framing */
    sl_http_body_t body;
    uint64_t body_length; /* SL_HTTP_BODY_LENGTH */
    /* The client's: it asks for a protocol upgrade (Connection: upgrade). Upstream: a WebSocket
     * handshake the route lets through. */
    unsigned upgrade : 1;
    unsigned keepalive : 1; /* upstream: the connection may be kept for another request */
} sl_http_req_t;

/* A response head (and, for the gateway's own answers, its whole body). */
typedef struct sl_http_resp {
    int status;
    const char *reason; /* the upstream's reason phrase, or NULL for the standard one */
    size_t reason_len;
    sl_http_hdrs_t hdrs;    /* without hop-by-hop fields; a Content-Length is the codec's to rewrite */
    int64_t content_length; /* -1: unknown (streamed, or ends with the connection) */
    unsigned no_body : 1;   /* HEAD, 204, 304, 1xx: no body whatever the fields say */
    unsigned local : 1;     /* answered by the gateway itself, not the upstream */
    unsigned upgrade : 1;   /* 101 to a WebSocket handshake: a tunnel follows */
    const char *body;       /* local responses: the whole body */
    size_t body_len;
} sl_http_resp_t;

/* The standard reason phrase of status. */
const char *sl_http_reason(int status);

/* What a server-side codec does for one stream (one request/response exchange). The proxy
 * calls send_head once, then send_body any number of times, then end, or reset instead. */
typedef struct sl_http_stream_ops {
    /* Writes the head (with the codec's framing: Content-Length, chunking, Connection) and, for
     * a local response, its body. */
    void (*send_head)(void *stream, const sl_http_resp_t *resp);
    /* Returns 1 when the stream is congested (the proxy stops reading the upstream until the
     * codec calls sl_proxy_stream_drained), else 0. */
    int (*send_body)(void *stream, const char *p, size_t n);
    /* The response is complete (for the gateway's own answer: the exchange is over). */
    void (*end)(void *stream);
    /* Part of the response is out and the rest never will be: cut the stream (error for the log). */
    void (*reset)(void *stream, const char *error);
    /* Gathers the writes that follow until hold(stream, 0) (one upstream read's worth). */
    void (*hold)(void *stream, int on);
    /* The upstream can take request body again: read on. */
    void (*resume)(void *stream);
} sl_http_stream_ops_t;

#endif
