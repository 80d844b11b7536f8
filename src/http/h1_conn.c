/* The HTTP/1.1 server codec: accepts connections, parses requests with llhttp (strict) behind
 * the framing checker (h1_scan.h), enforces the head limits and message rules, turns each
 * request into a protocol-neutral sl_http_req_t for proxy.c, and implements the stream ops
 * (request.h) that write the responses back, in request order (pipelining), with the client
 * timeouts. */
#include "http/h1_internal.h"
#include "http/uri.h"
#include "base/common.h"
#include "base/log.h"
#include "base/time.h"
#include "observe/access_log.h"
#include "base/random.h"
#include "policy/policy.h"
#include "runtime/server.h"

#include <ctype.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

static llhttp_settings_t client_settings;
static void client_close(sl_client_t *c);
static void client_feed(sl_client_t *c, const char *data, size_t len);
static void exchange_finish(sl_client_t *c);
static void client_read_start(sl_client_t *c);
static void client_timeout(sl_client_t *c);
static void client_continue(sl_client_t *c);
static void client_read_stop(sl_client_t *c);
static void upstream_drained(sl_client_t *c);
static void exchange_maybe_done(sl_client_t *c);

/* A closing connection whose peer reads nothing for this long is dropped. */
#define SL_LINGER_MS 5000

/* ---- timeouts and request state ---------------------------------------------------------- */

static void timer_set(sl_client_t *c, int q, uint64_t ms)
{
    if (c->closing) return; /* its memory goes with the handle; it must not stay queued */
    sl_list_remove(&c->tlink);
    c->tq = (uint8_t)q;
    c->deadline = uv_now(&c->w->loop) + ms;
    /* Usually the tail: every entry of a queue has the same duration. After a reload shortened
     * one, walk back to keep the queue sorted. */
    sl_list_t *head = &sl_h1w(c->w)->tq[q], *at = head->prev;
    while (at != head && sl_container_of(at, sl_client_t, tlink)->deadline > c->deadline) at = at->prev;
    sl_list_push(at, &c->tlink);
}

static void timer_stop(sl_client_t *c)
{
    sl_list_remove(&c->tlink);
}

void sl_h1_timeouts(sl_worker_t *w)
{
    uint64_t now = uv_now(&w->loop);
    for (int q = 0; q < SL_TQ_COUNT; q++) {
        while (!sl_list_empty(&sl_h1w(w)->tq[q])) {
            sl_client_t *c = sl_container_of(sl_h1w(w)->tq[q].next, sl_client_t, tlink);
            if (c->deadline > now) break;
            timer_stop(c);
            client_timeout(c);
        }
    }
}

static void rq_attach(sl_client_t *c)
{
    if (c->rq) return;
    sl_creq_t *rq = sl_h1_rq_take(c->w);
    llhttp_init(&rq->parser, HTTP_REQUEST, &client_settings);
    rq->parser.data = c;
    c->rq = rq;
}

static void rq_detach(sl_client_t *c)
{
    sl_creq_t *rq = c->rq;
    if (!rq) return;
    c->rq = NULL;
    sl_h1_rq_give(c->w, rq);
}

static const sl_gateway_cfg_t *gw(const sl_client_t *c)
{
    return &c->w->gen->cfg->gateway;
}

/* ---- writing ---------------------------------------------------------------------------- */

static void on_client_written(uv_write_t *req, int status)
{
    sl_wreq_t *wr = sl_container_of(req, sl_wreq_t, req);
    sl_client_t *c = wr->owner;
    c->write_queued -= wr->len;
    free(wr);
    if (c->closing) return;
    if (status < 0) {
        client_close(c);
        return;
    }
    if (c->state == SL_C_CLOSING) {
        timer_set(c, SL_TQ_LINGER, SL_LINGER_MS); /* progress: the peer is reading */
        return;
    }
    if (c->state == SL_C_TUNNEL) return; /* the 101 head; the tunnel counts its own writes */
    if (c->write_queued < SL_LOW_WATER) {
        if (c->rq) sl_proxy_stream_drained(&c->rq->ex);
        if (c->out_blocked) client_continue(c);
    }
}

#define SL_BATCH_MAX 16384

static void client_write(sl_client_t *c, const uv_buf_t *bufs, unsigned n)
{
    if (c->closing) return;
    sl_worker_t *w = c->w;
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) total += bufs[i].len;
    if (c->rq) c->rq->ex.bytes_out += total;
    uv_buf_t iov[5];
    unsigned k = 0;
    if (sl_h1w(w)->batch_owner == c) {
        if (sl_h1w(w)->batch.len + total <= SL_BATCH_MAX) {
            for (unsigned i = 0; i < n; i++) sl_buf_append(&sl_h1w(w)->batch, bufs[i].base, bufs[i].len);
            return;
        }
        /* Too big to copy: what is gathered goes first, in the same write. */
        if (sl_h1w(w)->batch.len) iov[k++] = uv_buf_init(sl_h1w(w)->batch.data, (unsigned)sl_h1w(w)->batch.len);
    }
    for (unsigned i = 0; i < n && k < SL_ARRAY_LEN(iov); i++) iov[k++] = bufs[i];
    ssize_t queued = sl_stream_write((uv_stream_t *)&c->tcp, iov, k, c, on_client_written);
    if (sl_h1w(w)->batch_owner == c) sl_h1w(w)->batch.len = 0;
    if (queued < 0) client_close(c);
    else c->write_queued += (size_t)queued;
}

void sl_client_batch_begin(sl_client_t *c)
{
    sl_h1w(c->w)->batch_owner = c;
    sl_h1w(c->w)->batch.len = 0;
}

void sl_client_batch_end(sl_client_t *c)
{
    sl_worker_t *w = c->w;
    if (sl_h1w(w)->batch_owner != c) return;
    sl_h1w(w)->batch_owner = NULL;
    if (!sl_h1w(w)->batch.len || c->closing) {
        sl_h1w(w)->batch.len = 0;
        return;
    }
    uv_buf_t b = uv_buf_init(sl_h1w(w)->batch.data, (unsigned)sl_h1w(w)->batch.len);
    sl_h1w(w)->batch.len = 0;
    ssize_t queued = sl_stream_write((uv_stream_t *)&c->tcp, &b, 1, c, on_client_written);
    if (queued < 0) client_close(c);
    else c->write_queued += (size_t)queued;
}

void sl_client_send(sl_client_t *c, const void *p, size_t n)
{
    if (!n) return;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    client_write(c, &b, 1);
}

/* ---- closing ---------------------------------------------------------------------------- */

static void on_client_handle_closed(uv_handle_t *h)
{
    sl_client_t *c = h->data;
    sl_worker_t *w = c->w;
    rq_detach(c);
    sl_buf_free(&c->pending);
    free(c->shutdown_req);
    free(c);
    sl_worker_connection_closed(w);
}

static void exchange_release(sl_client_t *c)
{
    if (!c->rq) return;
    sl_exchange_t *ex = &c->rq->ex;
    sl_proxy_release(ex);
    c->rq->resp_log.len = 0;
    sl_arena_clear(&c->rq->arena);
    if (ex->gen) sl_generation_release(ex->gen);
    memset(ex, 0, sizeof(*ex));
}

static void client_close(sl_client_t *c)
{
    if (c->closing) return;
    c->closing = 1;
    if (sl_h1w(c->w)->batch_owner == c) {
        sl_h1w(c->w)->batch_owner = NULL;
        sl_h1w(c->w)->batch.len = 0;
    }
    if (c->tunnel) sl_tunnel_close(c);
    if (c->rq && c->rq->ex.active) {
        /* The client went away mid-exchange: log what happened and free the upstream side. */
        if (!c->rq->ex.error && !c->rq->ex.resp_complete) c->rq->ex.error = "client_closed";
        exchange_finish(c);
    }
    exchange_release(c);
    sl_list_remove(&c->link);
    sl_h1w(c->w)->n_clients--;
    sl_series_add(sl_metrics.connections_active, c->w->index, -1);
    timer_stop(c);
    uv_close((uv_handle_t *)&c->tcp, on_client_handle_closed);
}

/* After a response that ends the connection: send FIN once the writes are out, then discard
 * what the client still sends for a moment, so unread bytes do not turn our close into a
 * reset that destroys the response in flight. */
static void on_linger_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    SL_UNUSED(buf);
    sl_client_t *c = s->data;
    if (nread < 0) client_close(c);
}

static void on_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    SL_UNUSED(suggested);
    sl_client_t *c = h->data;
    /* One read buffer per worker: libuv calls read right after alloc, and every byte is
     * consumed or copied before the callback returns. */
    buf->base = c->w->read_buf;
    buf->len = sizeof(c->w->read_buf);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    sl_client_t *c = req->data;
    if (c->closing) return;
    if (status < 0) {
        client_close(c);
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc, on_linger_read);
    timer_set(c, SL_TQ_LINGER, 2000); /* long enough for the peer to see our FIN */
}

static void client_end(sl_client_t *c)
{
    if (c->closing || c->lingering) return;
    sl_client_batch_end(c); /* gathered bytes go before the FIN */
    c->lingering = 1;
    c->state = SL_C_CLOSING;
    /* The FIN waits for the queued response; a peer that never reads must not hold us. */
    timer_set(c, SL_TQ_LINGER, SL_LINGER_MS);
    c->shutdown_req = sl_xmalloc(sizeof(*c->shutdown_req));
    c->shutdown_req->data = c;
    if (uv_shutdown(c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) client_close(c);
}

/* ---- exchange lifecycle ----------------------------------------------------------------- */

static void exchange_finish(sl_client_t *c)
{
    sl_exchange_t *ex = &c->rq->ex;
    const sl_head_t *h = &c->rq->head;
    ex->req.target = h->first_len ? sl_head_str(h, h->first_off) : NULL;
    ex->req.target_len = h->first_len;
    sl_proxy_log(ex);
    ex->active = 0;
}

/* Both the request and the response are complete: log, then go on with the next request. */
static void exchange_maybe_done(sl_client_t *c)
{
    sl_exchange_t *ex = &c->rq->ex;
    if (!ex->active || !ex->req_complete || !ex->resp_complete || c->closing) return;
    exchange_finish(c);
    exchange_release(c);
    if (c->close_after || c->peer_eof) {
        client_end(c);
        return;
    }
    c->state = SL_C_HEAD;
    sl_head_reset(&c->rq->head);
    timer_set(c, SL_TQ_KEEPALIVE, gw(c)->http.keepalive_timeout_ms);
    if (c->in_parse) return; /* client_feed's loop continues with the bytes after this message */
    client_continue(c);
}

/* After an answered exchange (outside the parser): parse what was pipelined behind it, unless
 * the client is not reading its responses, then read on. */
static void client_continue(sl_client_t *c)
{
    if (c->write_queued > SL_HIGH_WATER) {
        c->out_blocked = 1; /* on_client_written comes back here */
        client_read_stop(c);
        return;
    }
    c->out_blocked = 0;
    if (c->rq) {
        llhttp_resume(&c->rq->parser);
        if (!c->pending.len) rq_detach(c);
    }
    if (c->pending.len) {
        sl_buf_t p = c->pending;
        memset(&c->pending, 0, sizeof(c->pending));
        client_feed(c, p.data, p.len);
        sl_buf_free(&p);
    }
    if (!c->closing && !c->out_blocked && c->state != SL_C_WAIT && c->state != SL_C_CLOSING) client_read_start(c);
}

/* ---- the stream ops: framing a response head for HTTP/1.1 ------------------------------- */

static void h1_send_head(void *stream, const sl_http_resp_t *r)
{
    sl_client_t *c = stream;
    sl_exchange_t *ex = &c->rq->ex;
    sl_buf_t *b = sl_buf_thread_scratch(); /* the bytes are copied by the write */
    /* Numbers by hand: printf is most of what formatting a head would cost. */
    char num[24];
    sl_buf_append(b, "HTTP/1.1 ", 9);
    sl_buf_append(b, num, sl_http_u64(num, (uint64_t)r->status));
    sl_buf_putc(b, ' ');
    if (r->reason) sl_buf_append(b, r->reason, r->reason_len);
    else sl_buf_puts(b, sl_http_reason(r->status));
    sl_buf_puts(b, "\r\n");
    for (uint32_t i = 0; i < r->hdrs.n; i++) {
        const sl_http_hdr_t *x = &r->hdrs.v[i];
        if (SL_HDR_IS(x, "content-length")) continue; /* framing is ours, below */
        sl_buf_reserve(b, x->name_len + x->value_len + 4);
        memcpy(b->data + b->len, x->name, x->name_len);
        b->len += x->name_len;
        b->data[b->len++] = ':';
        b->data[b->len++] = ' ';
        memcpy(b->data + b->len, x->value, x->value_len);
        b->len += x->value_len;
        b->data[b->len++] = '\r';
        b->data[b->len++] = '\n';
    }
    if (r->local) {
        c->rq->local_sent = 1;
        /* The request body may still be arriving: the connection cannot be reused after this. */
        if (!ex->req_complete) c->close_after = 1;
    }
    if (r->upgrade) {
        /* Upgrade and Connection are hop-by-hop: ours, naming the protocol the client asked for. */
        sl_buf_puts(b, "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        sl_client_send(c, b->data, b->len);
        return;
    }
    /* RFC 9110 8.6: a 204 has no Content-Length, whatever the upstream wrote. */
    if (r->content_length >= 0 && r->status != 204 && r->status >= 200)
    {
        sl_buf_append(b, "Content-Length: ", 16);
        sl_buf_append(b, num, sl_http_u64(num, (uint64_t)r->content_length));
        sl_buf_append(b, "\r\n", 2);
    }
    c->rq->resp_chunked = 0;
    if (r->content_length < 0 && !r->no_body) {
        if (ex->req.http_minor >= 1) {
            c->rq->resp_chunked = 1;
            sl_buf_puts(b, "Transfer-Encoding: chunked\r\n");
        } else {
            c->close_after = 1; /* HTTP/1.0: the body ends when the connection does */
        }
    }
    if (c->w->stopping || !c->keepalive) c->close_after = 1;
    if (c->close_after) sl_buf_puts(b, "Connection: close\r\n");
    else if (ex->req.http_minor == 0) sl_buf_puts(b, "Connection: keep-alive\r\n");
    sl_buf_puts(b, "\r\n");
    if (r->local && !r->no_body && r->body_len) sl_buf_append(b, r->body, r->body_len);
    sl_client_send(c, b->data, b->len);
}

static void response_done(sl_client_t *c)
{
    if (c->rq->resp_chunked) sl_client_send(c, "0\r\n\r\n", 5);
    c->rq->ex.resp_complete = 1;
    /* An early answer while the body still arrives: read (and drop) the rest of it. */
    if (c->state == SL_C_BODY) upstream_drained(c);
    exchange_maybe_done(c);
}

static int h1_send_body(void *stream, const char *p, size_t n)
{
    sl_client_t *c = stream;
    if (!c->rq->resp_chunked) {
        sl_client_send(c, p, n);
    } else {
        char line[24];
        int m = snprintf(line, sizeof(line), "%zx\r\n", n);
        uv_buf_t bufs[3] = {uv_buf_init(line, (unsigned)m), uv_buf_init((char *)p, (unsigned)n),
                            uv_buf_init("\r\n", 2)};
        client_write(c, bufs, 3);
    }
    return c->write_queued > SL_HIGH_WATER;
}

static void h1_end(void *stream)
{
    sl_client_t *c = stream;
    if (c->rq->local_sent) {
        /* The gateway's own answer ends the exchange, whatever of the request is left. */
        c->rq->ex.req_complete = 1;
        exchange_maybe_done(c);
        return;
    }
    response_done(c);
}

static void h1_reset(void *stream, const char *error)
{
    sl_client_t *c = stream;
    c->rq->ex.error = error;
    client_close(c);
}

static void h1_hold(void *stream, int on)
{
    if (on) sl_client_batch_begin(stream);
    else sl_client_batch_end(stream);
}

static void h1_resume(void *stream)
{
    upstream_drained(stream);
}

const sl_http_stream_ops_t sl_h1_stream_ops = {
    .send_head = h1_send_head,
    .send_body = h1_send_body,
    .end = h1_end,
    .reset = h1_reset,
    .hold = h1_hold,
    .resume = h1_resume,
};

/* ---- request parsing -------------------------------------------------------------------- */

static int fail_parse(sl_client_t *c, int status, const char *code)
{
    c->rq->err_set = 1;
    c->rq->err_status = status;
    c->rq->err_code = code;
    return -1;
}

static int on_message_begin(llhttp_t *p)
{
    sl_client_t *c = p->data;
    sl_exchange_t *ex = &c->rq->ex;
    memset(ex, 0, sizeof(*ex));
    ex->active = 1;
    ex->t_start_ns = sl_now_ns();
    ex->start_unix_ms = sl_unix_ms();
    ex->gen = c->w->gen;
    sl_generation_retain(ex->gen);
    ex->w = c->w;
    ex->peer = c->peer_ip;
    ex->peer_port = c->peer_port;
    ex->sops = &sl_h1_stream_ops;
    ex->stream = c;
    ex->arena = &c->rq->arena;
    ex->resp_log = &c->rq->resp_log;
    ex->req.scheme = "http";
    sl_head_reset(&c->rq->head);
    sl_buf_reserve(&c->rq->head.buf, 512);
    c->rq->head_done = 0;
    c->rq->begin_pending = 0;
    c->rq->local = c->rq->local_sent = 0;
    c->rq->resp_chunked = 0;
    c->rq->trailer_bytes = 0;
    /* The header timeout runs from the first byte of a request, not from the idle time before it. */
    timer_set(c, SL_TQ_HEADER, gw(c)->http.header_timeout_ms);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    sl_client_t *c = p->data;
    sl_head_first(&c->rq->head, at, n);
    c->rq->ex.bytes_in += n;
    if (c->rq->head.first_len > gw(c)->http.max_uri_bytes) return fail_parse(c, 414, "uri_too_long");
    return 0;
}

static int check_head_limits(sl_client_t *c)
{
    const sl_gateway_cfg_t *g = gw(c);
    if (c->rq->head.bytes > g->http.max_header_bytes || c->rq->head.n > g->http.max_headers)
        return fail_parse(c, 431, "headers_too_large");
    return 0;
}

/* Trailer fields are checked by the framing checker, counted against the head limit and
 * dropped: the head stays frozen once complete (h1_internal.h). */
static int trailer_bytes(sl_client_t *c, size_t n)
{
    c->rq->trailer_bytes += n;
    c->rq->ex.bytes_in += n;
    if (c->rq->trailer_bytes > gw(c)->http.max_header_bytes) return fail_parse(c, 431, "headers_too_large");
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    sl_client_t *c = p->data;
    if (c->rq->head_done) return trailer_bytes(c, n);
    sl_head_field(&c->rq->head, at, n);
    c->rq->ex.bytes_in += n;
    return check_head_limits(c);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    sl_client_t *c = p->data;
    if (c->rq->head_done) return trailer_bytes(c, n);
    if (sl_head_value(&c->rq->head, at, n) != 0) return fail_parse(c, 400, "bad_request");
    c->rq->ex.bytes_in += n;
    return check_head_limits(c);
}

static int on_header_value_complete(llhttp_t *p)
{
    sl_client_t *c = p->data;
    if (!c->rq->head_done) sl_head_value_done(&c->rq->head);
    return 0;
}

/* The head is complete. Everything about it is judged here (ours and the framing checker's
 * rules); llhttp has a few checks of its own after this callback, so routing, policies and the
 * upstream wait until it goes on (exchange_begin). */
static int on_headers_complete(llhttp_t *p)
{
    sl_client_t *c = p->data;
    sl_creq_t *rq = c->rq;
    sl_exchange_t *ex = &rq->ex;
    sl_head_t *h = &rq->head;
    ex->req.method_id = sl_h1_method_id(p->method);
    ex->req.method = llhttp_method_name((llhttp_method_t)p->method);
    ex->req.http_minor = p->http_major == 1 ? p->http_minor : 0;
    if (p->http_major != 1) return fail_parse(c, 400, "bad_request");
    rq->ex.bytes_in += 2;
    rq->head_done = 1;
    if (rq->scan.phase != SL_SCAN_HEAD_DONE) return fail_parse(c, 400, "bad_request");
    /* A tunnel to anywhere is not a gateway's to open. */
    if (ex->req.method_id == SL_HTTP_CONNECT) return fail_parse(c, 405, "method_not_allowed");
    if (!sl_head_names_valid(h)) return fail_parse(c, 400, "bad_request");
    int underscores = gw(c)->http.headers_with_underscores;
    if (underscores != SL_UNDERSCORES_ALLOW && sl_h1_has_underscore_name(h)) {
        if (underscores == SL_UNDERSCORES_REJECT) return fail_parse(c, 400, "header_with_underscore");
        sl_h1_drop_underscore_names(h);
    }

    int n_te = sl_head_te_count(h, (p->flags & F_CHUNKED) != 0), n_host = 0;
    if (n_te < 0) return fail_parse(c, 400, "bad_request");
    const sl_hdr_t *host = NULL;
    for (size_t i = 0; i < h->n; i++) {
        const sl_hdr_t *x = &h->hdrs[i];
        if (sl_hdr_is(h, x, "host")) {
            n_host++;
            host = x;
        } else if (sl_hdr_is(h, x, "expect")) {
            if (!sl_hdr_value_is(h, x, "100-continue")) return fail_parse(c, 417, "expectation_failed");
            ex->expect_continue = 1;
        }
    }
    /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing. */
    if (n_te && ex->req.http_minor == 0) return fail_parse(c, 400, "bad_request");
    if (n_host > 1 || (n_host == 0 && ex->req.http_minor >= 1)) return fail_parse(c, 400, "bad_request");
    if (p->flags & F_CHUNKED) ex->req.body = SL_HTTP_BODY_STREAM;
    else if ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0) ex->req.body = SL_HTTP_BODY_LENGTH;
    ex->req.body_length = ex->req.body == SL_HTTP_BODY_LENGTH ? p->content_length : 0;
    ex->req.upgrade = p->upgrade ? 1 : 0;
    if (sl_h1_parse_target(rq, host, gw(c), c->peer_ip) != 0) return fail_parse(c, 400, "bad_request");
    /* The head is frozen from here on: the request's fields can point into it. */
    sl_head_to_hdrs(h, &ex->req.hdrs, ex->arena);

    /* The body's framing is checked from here on, ahead of llhttp, before any of it is sent. */
    sl_h1_scan_body(&rq->scan, ex->req.body == SL_HTTP_BODY_STREAM ? SL_SCAN_BODY_CHUNKED
                               : ex->req.body == SL_HTTP_BODY_LENGTH ? SL_SCAN_BODY_LENGTH
                                                                : SL_SCAN_BODY_NONE,
                    p->content_length);
    if (rq->scan_at && rq->feed_end > rq->scan_at) {
        ssize_t r = sl_h1_scan(&rq->scan, rq->scan_at, (size_t)(rq->feed_end - rq->scan_at));
        if (r < 0) return fail_parse(c, 400, "bad_request");
    }
    c->keepalive = llhttp_should_keep_alive(p) ? 1 : 0;
    /* An upgrade answered as HTTP/1.1 (h2c, or a WebSocket handshake the upstream declines) ends
     * the connection: what the client sends next may be in the other protocol. */
    if (p->upgrade) c->close_after = 1;
    c->state = SL_C_BODY;
    rq->begin_pending = 1;
    return 0;
}

/* Hands the request to the proxy once llhttp has accepted the head (at the first body byte,
 * the end of the message, or the end of the bytes at hand). Returns -1 when the parser must
 * stop (the connection is being answered and closed). */
static int exchange_begin(sl_client_t *c)
{
    sl_creq_t *rq = c->rq;
    if (!rq->begin_pending) return 0;
    rq->begin_pending = 0;
    sl_exchange_t *ex = &rq->ex;
    int r = sl_proxy_begin(ex);
    if (r < 0) return -1;
    if (r > 0) {
        rq->local = 1;
        /* Answered here, after the body is read and dropped; a client waiting for 100-continue
         * is answered now instead, and the connection closes. */
        if (ex->req.body != SL_HTTP_BODY_NONE && ex->expect_continue && !ex->req_complete) {
            c->close_after = 1;
            sl_proxy_answer_local(ex);
            return -1;
        }
        return 0;
    }
    if (ex->expect_continue && ex->req.body != SL_HTTP_BODY_NONE && ex->req.http_minor >= 1 && !ex->req_complete)
        sl_client_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    ex->bytes_out = 0; /* the interim response is not part of the final one */
    sl_proxy_start(ex);
    if (c->closing || c->state == SL_C_CLOSING) return -1;
    /* While a body arrives, body_timeout bounds each pause between reads. */
    if (ex->req.body != SL_HTTP_BODY_NONE && !ex->req_complete) timer_set(c, SL_TQ_BODY, gw(c)->http.body_timeout_ms);
    return 0;
}

/* The upstream side is over its high water mark: stop reading the client. Waiting on the
 * upstream is bounded by its send timeout, not by the client's. */
static void pause_for_upstream(sl_client_t *c)
{
    client_read_stop(c);
    timer_stop(c);
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    sl_client_t *c = p->data;
    sl_exchange_t *ex = &c->rq->ex;
    ex->bytes_in += n;
    if (c->state == SL_C_CLOSING || exchange_begin(c) < 0) return -1;
    if (c->rq->local || c->closing) return 0;
    if (sl_proxy_body(ex, at, n, 0)) pause_for_upstream(c);
    return 0;
}

static int on_chunk_header(llhttp_t *p)
{
    sl_client_t *c = p->data;
    return c->state == SL_C_CLOSING || exchange_begin(c) < 0 ? -1 : 0;
}

static int on_message_complete(llhttp_t *p)
{
    sl_client_t *c = p->data;
    sl_exchange_t *ex = &c->rq->ex;
    if (c->state == SL_C_CLOSING || exchange_begin(c) < 0) return -1;
    c->keepalive = llhttp_should_keep_alive(p) ? 1 : 0;
    if (!c->keepalive) c->close_after = 1;
    ex->req_complete = 1;
    c->state = SL_C_WAIT;
    timer_stop(c);
    if (c->rq->local) sl_proxy_answer_local(ex);
    else if (sl_proxy_body(ex, NULL, 0, 1)) pause_for_upstream(c);
    /* Stop at the message boundary: pipelined requests wait until this one is answered. */
    if (!c->closing) exchange_maybe_done(c);
    return HPE_PAUSED;
}

/* ---- reading ---------------------------------------------------------------------------- */

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void client_read_start(sl_client_t *c)
{
    if (c->reading || c->closing || c->lingering) return;
    c->reading = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc, on_client_read);
}

static void client_read_stop(sl_client_t *c)
{
    if (!c->reading) return;
    c->reading = 0;
    uv_read_stop((uv_stream_t *)&c->tcp);
}

static void upstream_drained(sl_client_t *c)
{
    if (c->state != SL_C_BODY || c->closing || c->reading) return;
    client_read_start(c);
    timer_set(c, SL_TQ_BODY, gw(c)->http.body_timeout_ms);
}

void sl_client_tunnel_done(sl_client_t *c, const char *error)
{
    c->rq->ex.error = error;
    c->rq->ex.resp_complete = 1;
    client_close(c);
}

static void client_parse_error(sl_client_t *c, llhttp_errno_t err)
{
    int status = 400;
    const char *code = "bad_request";
    if (c->rq->err_set) {
        status = c->rq->err_status;
        code = c->rq->err_code;
    }
    sl_log_debug("client %s: %s (%s)", c->peer_ip, code, llhttp_errno_name(err));
    if (!c->rq->ex.active) {
        /* An error before a request began (garbage between messages): still answer and log it. */
        on_message_begin(&c->rq->parser);
    }
    c->close_after = 1;
    sl_proxy_fail(&c->rq->ex, status, code);
}

static void client_feed(sl_client_t *c, const char *data, size_t len)
{
    rq_attach(c);
    c->in_parse = 1;
    c->rq->feed_end = data + len;
    while (len && !c->closing && c->state != SL_C_CLOSING) {
        llhttp_errno_t err;
        sl_creq_t *rq = c->rq;
        ssize_t scanned = sl_h1_scan(&rq->scan, data, len);
        rq->scan_at = scanned >= 0 ? data + scanned : NULL;
        if (scanned < 0) {
            rq->err_set = 0;
            err = HPE_USER;
        } else {
            err = llhttp_execute(&rq->parser, data, len);
        }
        if (err == HPE_OK) {
            /* llhttp took the head and all of its own checks passed: now it may go upstream. */
            if (rq->begin_pending) exchange_begin(c);
            break;
        }
        if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
            const char *pos = llhttp_get_error_pos(&c->rq->parser);
            size_t used = pos ? (size_t)(pos - data) : len;
            data += used;
            len -= used;
            if (c->closing || c->state == SL_C_CLOSING) break;
            sl_h1_scan_reset(&c->rq->scan); /* the next message's head starts here */
            if (c->state == SL_C_HEAD && !c->rq->ex.active && c->write_queued <= SL_HIGH_WATER) {
                /* Answered synchronously (local response): parse the next pipelined request. */
                llhttp_resume(&c->rq->parser);
                continue;
            }
            if (c->state == SL_C_HEAD && !c->rq->ex.active) {
                /* The client does not read its answers: parse no more until it does. */
                c->out_blocked = 1;
                client_read_stop(c);
            }
            /* Keep the rest until this exchange is answered. Reading goes on (stopping and
             * restarting would cost an epoll_ctl per request), into pending, up to a bound. */
            if (len) sl_buf_append(&c->pending, data, len);
            if (c->pending.len > SL_LOW_WATER) client_read_stop(c);
            break;
        }
        /* A callback may have ended the connection and returned an error to stop the parser. */
        if (!c->closing && c->state != SL_C_CLOSING) client_parse_error(c, err);
        break;
    }
    c->in_parse = 0;
    /* Between requests (only empty lines seen, or all answered) the state goes back to the pool. */
    if (c->rq && !c->rq->ex.active && c->state == SL_C_HEAD && !c->pending.len) rq_detach(c);
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    sl_client_t *c = s->data;
    if (nread == 0) return;
    if (c->state == SL_C_WAIT) {
        /* The request is complete and waits for its answer: keep what follows for later. */
        if (nread < 0) {
            /* A half-close after a full request: answer it, then close. */
            c->peer_eof = 1;
            client_read_stop(c);
            return;
        }
        sl_buf_append(&c->pending, buf->base, (size_t)nread);
        if (c->pending.len > SL_LOW_WATER) client_read_stop(c);
        return;
    }
    if (nread < 0) {
        if (c->state == SL_C_HEAD && (!c->rq || !c->rq->ex.active)) {
            /* Between requests: done, once what is queued for the client has gone out. */
            if (c->write_queued) {
                c->peer_eof = 1;
                client_end(c);
            } else {
                client_close(c);
            }
        } else if (c->state == SL_C_BODY || c->state == SL_C_HEAD) {
            /* Closed mid-request. An unfinished head still gets its 400 in the log. */
            c->rq->ex.error = "client_closed";
            client_close(c);
        } else {
            client_close(c);
        }
        return;
    }
    if (c->state == SL_C_BODY) timer_set(c, SL_TQ_BODY, gw(c)->http.body_timeout_ms);
    client_feed(c, buf->base, (size_t)nread);
}

static void client_timeout(sl_client_t *c)
{
    if (c->tq == SL_TQ_LINGER || c->state == SL_C_CLOSING) {
        client_close(c);
    } else if (c->state == SL_C_HEAD && (!c->rq || !c->rq->ex.active)) {
        client_close(c); /* idle keep-alive connection */
    } else if (c->state == SL_C_HEAD) {
        c->close_after = 1;
        client_read_stop(c);
        sl_proxy_fail(&c->rq->ex, 408, "header_timeout");
    } else if (c->state == SL_C_BODY && !c->rq->ex.head_sent) {
        /* A body that stops arriving (body_timeout): 408, and the upstream side is let go. */
        c->close_after = 1;
        client_read_stop(c);
        sl_proxy_fail(&c->rq->ex, 408, "body_timeout");
    } else {
        c->rq->ex.error = c->state == SL_C_BODY ? "body_timeout" : "client_timeout";
        client_close(c);
    }
}

/* ---- accepting -------------------------------------------------------------------------- */

/* Filled once for every worker: two workers' first connections may arrive together. */
static void settings_fill(void)
{
    llhttp_settings_init(&client_settings);
    client_settings.on_message_begin = on_message_begin;
    client_settings.on_url = on_url;
    client_settings.on_header_field = on_header_field;
    client_settings.on_header_value = on_header_value;
    client_settings.on_header_value_complete = on_header_value_complete;
    client_settings.on_headers_complete = on_headers_complete;
    client_settings.on_body = on_body;
    client_settings.on_chunk_header = on_chunk_header;
    client_settings.on_message_complete = on_message_complete;
}

static void settings_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, settings_fill);
}

static void on_unaccepted_closed(uv_handle_t *h)
{
    free(h->data);
}

void sl_h1_accept(sl_worker_t *w, uv_stream_t *server)
{
    settings_init();
    sl_client_t *c = sl_xcalloc(1, sizeof(*c));
    c->w = w;
    uv_tcp_init(&w->loop, &c->tcp);
    c->tcp.data = c;
    sl_list_init(&c->tlink);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_unaccepted_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer_ip, sizeof(c->peer_ip));
            c->peer_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer_ip, sizeof(c->peer_ip));
            c->peer_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    c->keepalive = 1;
    c->state = SL_C_HEAD;
    sl_list_push(&sl_h1w(w)->clients, &c->link);
    sl_h1w(w)->n_clients++;
    sl_series_add(sl_metrics.connections_active, w->index, 1);
    /* A new connection must send its request head within the header timeout. */
    timer_set(c, SL_TQ_HEADER, gw(c)->http.header_timeout_ms);
    c->reading = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc, on_client_read);
}

void sl_h1_drain(sl_worker_t *w)
{
    for (sl_list_t *l = sl_h1w(w)->clients.next, *next; l != &sl_h1w(w)->clients; l = next) {
        next = l->next;
        sl_client_t *c = sl_container_of(l, sl_client_t, link);
        c->close_after = 1;
        if (c->state == SL_C_HEAD && (!c->rq || !c->rq->ex.active)) client_close(c);
    }
}

void sl_h1_close_all(sl_worker_t *w)
{
    for (sl_list_t *l = sl_h1w(w)->clients.next, *next; l != &sl_h1w(w)->clients; l = next) {
        next = l->next;
        client_close(sl_container_of(l, sl_client_t, link));
    }
}
