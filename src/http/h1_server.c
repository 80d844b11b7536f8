/* HTTP/1.1 client side: accepts connections, parses requests with llhttp (strict), enforces
 * the head limits and message rules, routes, and writes responses back in request order. */
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
static void answer_locally(sl_client_t *c);
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
    sl_list_t *head = &c->w->tq[q], *at = head->prev;
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
        while (!sl_list_empty(&w->tq[q])) {
            sl_client_t *c = sl_container_of(w->tq[q].next, sl_client_t, tlink);
            if (c->deadline > now) break;
            timer_stop(c);
            client_timeout(c);
        }
    }
}

static void rq_attach(sl_client_t *c)
{
    if (c->rq) return;
    sl_worker_t *w = c->w;
    sl_creq_t *rq = w->free_rq;
    if (rq) {
        w->free_rq = rq->next_free;
        w->n_free_rq--;
        sl_head_t head = rq->head;
        sl_buf_t host = rq->host_store, path = rq->path_store, resp_log = rq->resp_log;
        memset(rq, 0, sizeof(*rq));
        rq->head = head; /* keep the buffers: no allocation per request */
        rq->host_store = host;
        rq->path_store = path;
        rq->resp_log = resp_log;
        rq->resp_log.len = 0;
        sl_head_reset(&rq->head);
    } else {
        rq = sl_xcalloc(1, sizeof(*rq));
    }
    llhttp_init(&rq->parser, HTTP_REQUEST, &client_settings);
    rq->parser.data = c;
    c->rq = rq;
}

static void rq_free(sl_creq_t *rq)
{
    sl_head_free(&rq->head);
    sl_buf_free(&rq->host_store);
    sl_buf_free(&rq->path_store);
    sl_buf_free(&rq->resp_log);
    free(rq);
}

static void rq_detach(sl_client_t *c)
{
    sl_creq_t *rq = c->rq;
    if (!rq) return;
    c->rq = NULL;
    sl_worker_t *w = c->w;
    if (w->n_free_rq >= 256 || rq->head.buf.cap > 16384 ||
        rq->host_store.cap + rq->path_store.cap + rq->resp_log.cap > 16384) {
        rq_free(rq);
        return;
    }
    rq->next_free = w->free_rq;
    w->free_rq = rq;
    w->n_free_rq++;
}

void sl_h1_worker_cleanup(sl_worker_t *w)
{
    while (w->free_rq) {
        sl_creq_t *rq = w->free_rq;
        w->free_rq = rq->next_free;
        rq_free(rq);
    }
    w->n_free_rq = 0;
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
        sl_upstream_client_drained(c);
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
    if (w->batch_owner == c) {
        if (w->batch.len + total <= SL_BATCH_MAX) {
            for (unsigned i = 0; i < n; i++) sl_buf_append(&w->batch, bufs[i].base, bufs[i].len);
            return;
        }
        /* Too big to copy: what is gathered goes first, in the same write. */
        if (w->batch.len) iov[k++] = uv_buf_init(w->batch.data, (unsigned)w->batch.len);
    }
    for (unsigned i = 0; i < n && k < SL_ARRAY_LEN(iov); i++) iov[k++] = bufs[i];
    ssize_t queued = sl_stream_write((uv_stream_t *)&c->tcp, iov, k, c, on_client_written);
    if (w->batch_owner == c) w->batch.len = 0;
    if (queued < 0) client_close(c);
    else c->write_queued += (size_t)queued;
}

void sl_client_batch_begin(sl_client_t *c)
{
    c->w->batch_owner = c;
    c->w->batch.len = 0;
}

void sl_client_batch_end(sl_client_t *c)
{
    sl_worker_t *w = c->w;
    if (w->batch_owner != c) return;
    w->batch_owner = NULL;
    if (!w->batch.len || c->closing) {
        w->batch.len = 0;
        return;
    }
    uv_buf_t b = uv_buf_init(w->batch.data, (unsigned)w->batch.len);
    w->batch.len = 0;
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
    if (ex->uc || ex->backoff) sl_upstream_abort(c);
    sl_buf_free(&ex->prebuf);
    sl_buf_free(&ex->replay);
    c->rq->resp_log.len = 0;
    if (ex->gen) sl_generation_release(ex->gen);
    memset(ex, 0, sizeof(*ex));
}

static void client_close(sl_client_t *c)
{
    if (c->closing) return;
    c->closing = 1;
    if (c->w->batch_owner == c) {
        c->w->batch_owner = NULL;
        c->w->batch.len = 0;
    }
    if (c->tunnel) sl_tunnel_close(c);
    if (c->rq && c->rq->ex.active) {
        /* The client went away mid-exchange: log what happened and free the upstream side. */
        if (!c->rq->ex.error && !c->rq->ex.resp_complete) c->rq->ex.error = "client_closed";
        exchange_finish(c);
    }
    exchange_release(c);
    sl_list_remove(&c->link);
    c->w->n_clients--;
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

/* ---- local responses -------------------------------------------------------------------- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 200 ? "Informational" : status < 300 ? "Success" : status < 400 ? "Redirection"
                   : status < 500 ? "Client Error" : "Server Error";
    }
}

/* The first field of h called name[0..n) (any case), or NULL. */
static const sl_hdr_t *find_header_n(const sl_head_t *h, const char *name, size_t n)
{
    for (size_t i = 0; i < h->n; i++) {
        const sl_hdr_t *x = &h->hdrs[i];
        if (x->name_len == n && strncasecmp(sl_head_str(h, x->name_off), name, n) == 0) return x;
    }
    return NULL;
}

/* A header's value for the access log (ctx is the head), by name. */
static const char *log_header(const void *ctx, const char *name, size_t n, size_t *len)
{
    const sl_head_t *h = ctx;
    const sl_hdr_t *x = find_header_n(h, name, n);
    if (!x) return NULL;
    *len = x->value_len;
    return sl_head_str(h, x->value_off);
}

/* An incoming request id worth keeping: 1..128 bytes of letters, digits and -._~+/=:@ (UUIDs,
 * hex, base64, trace ids), nothing that could break a header or a log line. */
static int request_id_ok(const char *v, size_t n)
{
    if (n == 0 || n > 128) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (!(isalnum(ch) || strchr("-._~+/=:@", ch))) return 0;
    }
    return 1;
}

/* Sets ex->request_id per the route's request_id, else the gateway's: the client's (first)
 * header when well formed and incoming is keep, else 128 random bits. */
static void request_id_begin(sl_client_t *c)
{
    sl_exchange_t *ex = &c->rq->ex;
    const sl_request_id_cfg_t *rc = ex->route && ex->route->cfg->request_id.set ? &ex->route->cfg->request_id
                                                                                 : &gw(c)->request_id;
    ex->request_id_len = 0;
    ex->request_id_cfg = rc->enabled ? rc : NULL;
    if (!rc->enabled) return;
    if (rc->incoming == SL_REQUEST_ID_KEEP) {
        size_t n = 0;
        const char *v = log_header(&c->rq->head, rc->header, rc->header_len, &n);
        if (v && request_id_ok(v, n)) {
            memcpy(ex->request_id, v, n);
            ex->request_id_len = (uint8_t)n;
            return;
        }
    }
    static const char hex[] = "0123456789abcdef";
    unsigned char r[16];
    sl_random_bytes(r, sizeof(r));
    char *o = ex->request_id;
    if (rc->format == SL_REQUEST_ID_UUID) {
        r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* version 4 (RFC 9562 5.4) */
        r[8] = (unsigned char)((r[8] & 0x3f) | 0x80); /* the RFC's variant */
    }
    for (int i = 0; i < 16; i++) {
        if (rc->format == SL_REQUEST_ID_UUID && (i == 4 || i == 6 || i == 8 || i == 10)) *o++ = '-';
        *o++ = hex[r[i] >> 4];
        *o++ = hex[r[i] & 15];
    }
    ex->request_id_len = (uint8_t)(o - ex->request_id);
}

/* "NAME: id\r\n" for the request id, into b (nothing when there is none). */
static void request_id_emit(const sl_exchange_t *ex, sl_buf_t *b)
{
    if (!ex->request_id_len) return;
    sl_buf_append(b, ex->request_id_cfg->header, ex->request_id_cfg->header_len);
    sl_buf_append(b, ": ", 2);
    sl_buf_append(b, ex->request_id, ex->request_id_len);
    sl_buf_append(b, "\r\n", 2);
}

/* The header carrying the request id, which the gateway writes itself. */
static int is_request_id_header(const sl_exchange_t *ex, const sl_head_t *h, const sl_hdr_t *x)
{
    const sl_request_id_cfg_t *rc = ex->request_id_cfg;
    return rc && x->name_len == rc->header_len && !strncasecmp(sl_head_str(h, x->name_off), rc->header, rc->header_len);
}

static void send_local(sl_client_t *c, int status, const sl_header_kv_t *hdrs, size_t n_hdrs, const char *ctype,
                       const char *body, size_t body_len)
{
    sl_exchange_t *ex = &c->rq->ex;
    int close = c->close_after || !c->keepalive || c->w->stopping;
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_printf(&b, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
    if (ctype) sl_buf_printf(&b, "Content-Type: %s\r\n", ctype);
    for (size_t i = 0; i < n_hdrs; i++) sl_buf_printf(&b, "%s: %s\r\n", hdrs[i].name, hdrs[i].value);
    request_id_emit(ex, &b);
    if (ex->route) sl_policy_state_emit(ex->route, &ex->policy, &b);
    int no_body = ex->method == HTTP_HEAD || status == 204 || status == 304 || status < 200;
    if (status != 204 && status >= 200) sl_buf_printf(&b, "Content-Length: %zu\r\n", body_len);
    if (close) sl_buf_puts(&b, "Connection: close\r\n");
    else if (ex->http_minor == 0) sl_buf_puts(&b, "Connection: keep-alive\r\n");
    sl_buf_puts(&b, "\r\n");
    if (!no_body && body_len) sl_buf_append(&b, body, body_len);
    ex->status = status;
    ex->head_sent = 1;
    ex->resp_complete = 1;
    if (close) c->close_after = 1;
    sl_client_send(c, b.data, b.len);
    sl_buf_free(&b);
}

static void send_error(sl_client_t *c, int status, const char *code)
{
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"error\": \"%s\", \"status\": %d}\n", code, status);
    c->rq->ex.error = code;
    /* RFC 9110 15.5.6: a 405 says which methods are allowed (every one but CONNECT). */
    static const sl_header_kv_t allow = {.name = "Allow", .value = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE"};
    send_local(c, status, status == 405 ? &allow : NULL, status == 405, "application/json", body, (size_t)n);
}

/* ---- exchange lifecycle ----------------------------------------------------------------- */

/* A kept response header's value for the access log, by lower-case name. */
static const char *log_response_header(const void *ctx, const char *name, size_t n, size_t *len)
{
    const sl_buf_t *b = ctx;
    size_t o = 0;
    while (o < b->len) {
        size_t nl, vl;
        memcpy(&nl, b->data + o, sizeof(size_t));
        const char *k = b->data + o + sizeof(size_t);
        memcpy(&vl, k + nl, sizeof(size_t));
        const char *v = k + nl + sizeof(size_t);
        if (nl == n && !memcmp(k, name, n)) {
            *len = vl;
            return v;
        }
        o = (size_t)(v + vl - b->data);
    }
    return NULL;
}

static void exchange_log(sl_client_t *c)
{
    sl_exchange_t *ex = &c->rq->ex;
    sl_generation_count_request(ex->gen, ex->route, ex->status, c->w->index);

    sl_access_log_t *log = ex->gen ? sl_generation_access_log(ex->gen) : NULL;
    if (!log) return;
    const sl_head_t *head = &c->rq->head;
    sl_access_entry_t e = {
        .time_unix_ms = ex->start_unix_ms,
        .client = c->peer_ip,
        .client_port = c->peer_port,
        .method = llhttp_method_name((llhttp_method_t)ex->method),
        .host = ex->host_len ? ex->host : NULL,
        .host_len = ex->host_len,
        .path = head->first_len ? sl_head_str(head, head->first_off) : "",
        .path_len = head->first_len,
        .http_minor = ex->http_minor,
        .status = ex->status,
        .bytes_in = ex->bytes_in,
        .bytes_out = ex->bytes_out,
        .route = ex->route ? ex->route->cfg->name : NULL,
        .service = ex->route ? ex->route->svc->name : NULL,
        .upstream = ex->node_name,
        .upstream_status = ex->upstream_status,
        .duration_ms = (double)(sl_now_ns() - ex->t_start_ns) / 1e6,
        .upstream_ms = ex->upstream_status ? ex->upstream_ms : -1,
        .upstream_connect_ms = ex->connect_tried ? ex->upstream_connect_ms : -1,
        .error = ex->error,
        .retries = ex->retries,
        .retry_stop = ex->retry_stop,
        .tags = ex->route ? ex->route->cfg->tags : NULL,
        .n_tags = ex->route ? ex->route->cfg->n_tags : 0,
        .request_id = ex->request_id_len ? ex->request_id : NULL,
        .request_id_len = ex->request_id_len,
        .header = log_header,
        .header_ctx = head,
        .response_header = log_response_header,
        .response_header_ctx = &c->rq->resp_log,
    };
    sl_access_buf_write(&c->w->alog, log, &ex->gen->cfg->gateway.access_log.fmt, &e, uv_now(&c->w->loop));
}

static void exchange_finish(sl_client_t *c)
{
    exchange_log(c);
    c->rq->ex.active = 0;
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

void sl_client_fail(sl_client_t *c, int status, const char *code)
{
    sl_exchange_t *ex = &c->rq->ex;
    if (ex->uc || ex->backoff) sl_upstream_abort(c);
    if (ex->head_sent) {
        /* Part of the response is out: all that is left is to cut the connection. */
        ex->error = code;
        client_close(c);
        return;
    }
    /* The request body may still be arriving; the connection cannot be reused after this. */
    if (!ex->req_complete) c->close_after = 1;
    send_error(c, status, code);
    ex->req_complete = 1;
    exchange_maybe_done(c);
}

/* ---- response from the upstream side ---------------------------------------------------- */

/* Keeps the response headers the access log asks for (response_header.NAME): the upstream's
 * head is gone by the time the line is made. */
static void capture_response_headers(sl_client_t *c, const sl_head_t *up)
{
    sl_exchange_t *ex = &c->rq->ex;
    sl_buf_t *b = &c->rq->resp_log;
    b->len = 0;
    const sl_access_format_t *fmt = ex->gen ? &ex->gen->cfg->gateway.access_log.fmt : NULL;
    if (!fmt || !fmt->response_headers || !sl_generation_access_log(ex->gen)) return;
    for (size_t i = 0; i < fmt->n_fields; i++) {
        const sl_access_field_t *f = &fmt->fields[i];
        if (f->id != SL_AF_RESPONSE_HEADER) continue;
        size_t vl = 0;
        const char *v = log_header(up, f->header, f->header_len, &vl);
        if (!v) continue;
        sl_buf_append(b, &f->header_len, sizeof(size_t));
        sl_buf_append(b, f->header, f->header_len);
        sl_buf_append(b, &vl, sizeof(size_t));
        sl_buf_append(b, v, vl);
    }
}

void sl_client_send_response_head(sl_client_t *c, const sl_head_t *up, int status, int has_length, int no_body)
{
    sl_exchange_t *ex = &c->rq->ex;
    capture_response_headers(c, up);
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_reserve(&b, up->buf.len + 128);
    sl_buf_printf(&b, "HTTP/1.1 %d ", status);
    sl_buf_append(&b, sl_head_str(up, up->first_off), up->first_len);
    sl_buf_puts(&b, "\r\n");
    for (size_t i = 0; i < up->n; i++) {
        const sl_hdr_t *x = &up->hdrs[i];
        if (sl_hdr_hop_by_hop(up, x) || is_request_id_header(ex, up, x)) continue;
        if (ex->route && sl_policy_response_drop(ex->route, sl_head_str(up, x->name_off), x->name_len)) continue;
        /* RFC 9110 8.6: a 204 has no Content-Length, whatever the upstream wrote. */
        if ((!has_length || status == 204) && sl_hdr_is(up, x, "content-length")) continue;
        sl_buf_append(&b, sl_head_str(up, x->name_off), x->name_len);
        sl_buf_puts(&b, ": ");
        const char *value = sl_head_str(up, x->value_off);
        if (!ex->route ||
            !sl_policy_response_header(ex->route, sl_head_str(up, x->name_off), x->name_len, value, x->value_len, &b))
            sl_buf_append(&b, value, x->value_len);
        sl_buf_puts(&b, "\r\n");
    }
    ex->resp_chunked = 0;
    if (!has_length && !no_body) {
        if (ex->http_minor >= 1) {
            ex->resp_chunked = 1;
            sl_buf_puts(&b, "Transfer-Encoding: chunked\r\n");
        } else {
            c->close_after = 1; /* HTTP/1.0: the body ends when the connection does */
        }
    }
    request_id_emit(ex, &b);
    if (ex->route) {
        sl_policy_response_emit(ex->route, &b);
        sl_policy_state_emit(ex->route, &ex->policy, &b);
    }
    if (ex->issue_cookie && ex->node) {
        const sl_upstream_t *u = ex->route->upstream;
        char value[32];
        if (sl_upstream_cookie_value(u, ex->node, value, sizeof(value)) == 0)
            sl_buf_printf(&b, "Set-Cookie: %s=%s; Path=%s; Max-Age=%llu; HttpOnly\r\n", u->cfg->cookie.name, value,
                          u->cfg->cookie.path ? u->cfg->cookie.path : "/",
                          (unsigned long long)(u->cfg->cookie.ttl_ms / 1000));
    }
    if (c->w->stopping || !c->keepalive) c->close_after = 1;
    if (c->close_after) sl_buf_puts(&b, "Connection: close\r\n");
    else if (ex->http_minor == 0) sl_buf_puts(&b, "Connection: keep-alive\r\n");
    sl_buf_puts(&b, "\r\n");
    ex->status = status;
    ex->head_sent = 1;
    sl_client_send(c, b.data, b.len);
    sl_buf_free(&b);
}

void sl_client_response_body(sl_client_t *c, const char *p, size_t n)
{
    if (!n) return;
    if (!c->rq->ex.resp_chunked) {
        sl_client_send(c, p, n);
        return;
    }
    char line[24];
    int m = snprintf(line, sizeof(line), "%zx\r\n", n);
    uv_buf_t bufs[3] = {uv_buf_init(line, (unsigned)m), uv_buf_init((char *)p, (unsigned)n), uv_buf_init("\r\n", 2)};
    client_write(c, bufs, 3);
}

void sl_client_response_done(sl_client_t *c)
{
    if (c->rq->ex.resp_chunked) sl_client_send(c, "0\r\n\r\n", 5);
    c->rq->ex.resp_complete = 1;
    /* An early answer while the body still arrives: read (and drop) the rest of it. */
    if (c->state == SL_C_BODY) sl_client_upstream_drained(c);
    exchange_maybe_done(c);
}


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
    sl_head_reset(&c->rq->head);
    sl_buf_reserve(&c->rq->head.buf, 512);
    c->rq->head_done = 0;
    c->rq->begin_pending = 0;
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

static const sl_hdr_t *find_header(const sl_head_t *h, const char *name)
{
    return find_header_n(h, name, strlen(name));
}

/* Request policies' view of the request's headers (sl_policy_req_t.header); ctx is the head. */
static int policy_header(const void *ctx, const char *name, const char **value, size_t *len)
{
    const sl_head_t *h = ctx;
    const sl_hdr_t *x = find_header(h, name);
    if (!x) return 0;
    *value = sl_head_str(h, x->value_off);
    *len = x->value_len;
    return 1;
}

/* The client address gateway.proxy_layers hops from the right of X-Forwarded-For (all such
 * headers, in order), or the peer's when there are fewer hops. */
static void client_address(sl_client_t *c, const char **out, size_t *out_len)
{
    const sl_head_t *h = &c->rq->head;
    int layers = gw(c)->proxy_layers;
    *out = c->peer_ip;
    *out_len = strlen(c->peer_ip);
    if (layers <= 0) return;
    /* Walk the entries from the right: the last header first, each from its end. */
    int seen = 0;
    for (size_t i = h->n; i-- > 0;) {
        const sl_hdr_t *x = &h->hdrs[i];
        if (!sl_hdr_is(h, x, "x-forwarded-for")) continue;
        const char *v = sl_head_str(h, x->value_off);
        size_t end = x->value_len;
        while (end > 0) {
            size_t start = end;
            while (start > 0 && v[start - 1] != ',') start--;
            size_t a = start, b = end;
            while (a < b && (v[a] == ' ' || v[a] == '\t')) a++;
            while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
            if (++seen == layers) {
                if (b > a) {
                    *out = v + a;
                    *out_len = b - a;
                }
                return;
            }
            end = start ? start - 1 : 0;
        }
    }
}

/* The value of cookie name in the request's Cookie headers. */
static int find_cookie(const sl_head_t *h, const char *name, const char **out, size_t *out_len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < h->n; i++) {
        const sl_hdr_t *x = &h->hdrs[i];
        if (!sl_hdr_is(h, x, "cookie")) continue;
        const char *v = sl_head_str(h, x->value_off), *end = v + x->value_len;
        while (v < end) {
            while (v < end && (*v == ' ' || *v == ';')) v++;
            const char *semi = memchr(v, ';', (size_t)(end - v));
            const char *pair_end = semi ? semi : end;
            const char *eq = memchr(v, '=', (size_t)(pair_end - v));
            if (eq && (size_t)(eq - v) == nl && memcmp(v, name, nl) == 0) {
                *out = eq + 1;
                *out_len = (size_t)(pair_end - eq - 1);
                return 1;
            }
            v = pair_end;
        }
    }
    return 0;
}

/* The value of query parameter name in the request target, as sent (not decoded). */
static int find_query(const sl_exchange_t *ex, const char *name, const char **out, size_t *out_len)
{
    if (!ex->query) return 0;
    const char *end = ex->query + ex->query_len;
    size_t nl = strlen(name);
    for (const char *p = ex->query + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq ? eq : pe;
        if ((size_t)(ke - p) == nl && memcmp(p, name, nl) == 0) {
            *out = eq ? eq + 1 : pe;
            *out_len = eq ? (size_t)(pe - eq - 1) : 0;
            return 1;
        }
        p = pe + 1;
    }
    return 0;
}

/* The hash or cookie balancer's key for this request, NULL when it has none (the balancer
 * then picks at random). Points into the head buffer or the connection. */
static void balancer_key(sl_client_t *c)
{
    sl_exchange_t *ex = &c->rq->ex;
    const sl_head_t *h = &c->rq->head;
    const sl_upstream_cfg_t *u = ex->route->upstream->cfg;
    const char *k = NULL;
    size_t n = 0;
    if (u->balance == SL_BALANCE_COOKIE) {
        if (!find_cookie(h, u->cookie.name, &k, &n)) k = NULL;
        /* No cookie yet: issue one naming the node chosen, so the client sticks from now on. */
        ex->issue_cookie = !k && u->cookie.ttl_ms > 0;
    } else if (u->balance == SL_BALANCE_HASH) {
        switch (u->hash.on) {
        case SL_HASH_IP: client_address(c, &k, &n); break;
        case SL_HASH_HEADER: {
            const sl_hdr_t *x = find_header(h, u->hash.key);
            if (x) {
                k = sl_head_str(h, x->value_off);
                n = x->value_len;
            }
            break;
        }
        case SL_HASH_QUERY:
            if (!find_query(ex, u->hash.key, &k, &n)) k = NULL;
            break;
        case SL_HASH_COOKIE:
            if (!find_cookie(h, u->hash.key, &k, &n)) k = NULL;
            break;
        }
    }
    ex->pick_key = k;
    ex->pick_key_len = n;
}

static void build_upstream_head(sl_client_t *c)
{
    sl_exchange_t *ex = &c->rq->ex;
    const sl_head_t *h = &c->rq->head;
    const sl_hdr_t *host = NULL;
    sl_buf_t xff = SL_BUF_INIT;
    for (size_t i = 0; i < h->n; i++) {
        const sl_hdr_t *x = &h->hdrs[i];
        if (sl_hdr_is(h, x, "host")) host = x;
        if (sl_hdr_is(h, x, "x-forwarded-for")) {
            if (xff.len) sl_buf_puts(&xff, ", ");
            sl_buf_append(&xff, sl_head_str(h, x->value_off), x->value_len);
        }
    }
    sl_buf_t *b = &ex->prebuf;
    sl_buf_reserve(b, h->buf.len + 256);
    sl_buf_puts(b, llhttp_method_name((llhttp_method_t)ex->method));
    sl_buf_putc(b, ' ');
    const sl_route_rt_t *rt = ex->route;
    /* The normalised path (or path_rewrite's result from it), then the query as sent. */
    sl_buf_t rewritten = SL_BUF_INIT;
    if (rt->n_chain && sl_policy_upstream_path(rt, ex->path, ex->path_len, &rewritten))
        sl_buf_append(b, rewritten.data, rewritten.len);
    else
        sl_buf_append(b, ex->path, ex->path_len);
    if (ex->query) sl_buf_append(b, ex->query, ex->query_len);
    sl_buf_free(&rewritten);
    sl_buf_puts(b, " HTTP/1.1\r\n");
    /* Host: the absolute-form authority, else the client's, else (HTTP/1.0) the node's. */
    const char *hv = ex->authority;
    size_t hn = ex->authority_len;
    if (!hv && host) {
        hv = sl_head_str(h, host->value_off);
        hn = host->value_len;
    }
    /* request_headers may set any of the headers the gateway writes itself: then theirs wins. */
#define OURS(name) (!sl_policy_upstream_drop(rt, name, sizeof(name) - 1))
    if (OURS("Host")) {
        sl_buf_puts(b, "Host: ");
        if (hv) sl_buf_append(b, hv, hn);
        else sl_buf_puts(b, ex->node->name);
        sl_buf_puts(b, "\r\n");
    }
    for (size_t i = 0; i < h->n; i++) {
        const sl_hdr_t *x = &h->hdrs[i];
        if (x == host || sl_hdr_hop_by_hop(h, x) || sl_hdr_is(h, x, "expect") || sl_hdr_is(h, x, "x-forwarded-for") ||
            sl_hdr_is(h, x, "x-forwarded-proto") || sl_hdr_is(h, x, "x-forwarded-host") ||
            sl_hdr_is(h, x, "x-real-ip") || sl_hdr_is(h, x, "content-length") || is_request_id_header(ex, h, x) ||
            sl_policy_upstream_drop(rt, sl_head_str(h, x->name_off), x->name_len))
            continue;
        sl_buf_append(b, sl_head_str(h, x->name_off), x->name_len);
        sl_buf_puts(b, ": ");
        sl_buf_append(b, sl_head_str(h, x->value_off), x->value_len);
        sl_buf_puts(b, "\r\n");
    }
    if (OURS("X-Forwarded-For")) {
        sl_buf_puts(b, "X-Forwarded-For: ");
        if (xff.len) {
            sl_buf_append(b, xff.data, xff.len);
            sl_buf_puts(b, ", ");
        }
        sl_buf_puts(b, c->peer_ip);
        sl_buf_puts(b, "\r\n");
    }
    sl_buf_free(&xff);
    if (OURS("X-Forwarded-Proto")) sl_buf_puts(b, "X-Forwarded-Proto: http\r\n");
    if (hv && OURS("X-Forwarded-Host")) {
        sl_buf_puts(b, "X-Forwarded-Host: ");
        sl_buf_append(b, hv, hn);
        sl_buf_puts(b, "\r\n");
    }
    if (OURS("X-Real-IP")) {
        sl_buf_puts(b, "X-Real-IP: ");
        sl_buf_puts(b, c->peer_ip);
        sl_buf_puts(b, "\r\n");
    }
#undef OURS
    if (ex->request_id_len && !sl_policy_upstream_drop(rt, ex->request_id_cfg->header, ex->request_id_cfg->header_len))
        request_id_emit(ex, b);
    sl_policy_upstream_emit(rt, b);
    if (ex->req_body == SL_BODY_LENGTH)
        sl_buf_printf(b, "Content-Length: %llu\r\n", (unsigned long long)ex->req_length);
    else if (ex->req_body == SL_BODY_CHUNKED)
        sl_buf_puts(b, "Transfer-Encoding: chunked\r\n");
    if (ex->upgrade) sl_buf_puts(b, "Connection: Upgrade\r\nUpgrade: websocket\r\n");
    else if (ex->route->upstream->cfg->keepalive_max_idle == 0) sl_buf_puts(b, "Connection: close\r\n");
    sl_buf_puts(b, "\r\n");
}

/* A request with "Upgrade: websocket" (RFC 6455 4.1): passed on only where the route has the
 * websocket policy, and only as a GET without a body over HTTP/1.1 that asks for the upgrade
 * with "Connection: upgrade". Other upgrades (h2c) are proxied as plain HTTP/1.1. */
static void websocket_check(sl_client_t *c, const llhttp_t *p)
{
    sl_exchange_t *ex = &c->rq->ex;
    if (!sl_head_has_token(&c->rq->head, "upgrade", "websocket")) return;
    if (!sl_policy_websocket_idle_ms(ex->route)) {
        ex->refused_status = 403;
        ex->refused_code = "websocket_not_allowed";
    } else if (ex->method != HTTP_GET || ex->req_body != SL_BODY_NONE || ex->http_minor < 1 || !p->upgrade) {
        ex->refused_status = 400;
        ex->refused_code = "bad_websocket_request";
    } else {
        ex->upgrade = 1;
    }
}

/* Drops the header fields whose name has an underscore (gateway.http.headers_with_underscores:
 * drop): "Transfer_Encoding" must not look like framing to an upstream that folds '_' into '-'.
 * Dropped fields are invisible to routing, policies and the upstream. */
static void drop_underscore_names(sl_head_t *h)
{
    size_t k = 0;
    for (size_t i = 0; i < h->n; i++) {
        const sl_hdr_t *x = &h->hdrs[i];
        if (memchr(sl_head_str(h, x->name_off), '_', x->name_len)) continue;
        h->hdrs[k++] = *x;
    }
    h->n = k;
}

static int has_underscore_name(const sl_head_t *h)
{
    for (size_t i = 0; i < h->n; i++)
        if (memchr(sl_head_str(h, h->hdrs[i].name_off), '_', h->hdrs[i].name_len)) return 1;
    return 0;
}

/* RFC 3986 3.4: a query is pchar / "/" / "?", with well-formed escapes. */
static int query_valid(const char *q, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        unsigned char ch = (unsigned char)q[i];
        if (ch == '%') {
            if (i + 2 >= n || !isxdigit((unsigned char)q[i + 1]) || !isxdigit((unsigned char)q[i + 2])) return 0;
            i += 2;
        } else if (!isalnum(ch) && !strchr("-._~!$&'()*+,;=:@/?", ch)) {
            return 0;
        }
    }
    return 1;
}

/* Normalises and stores the host used for routing (lower case, no trailing dot, no port). */
static int set_host(sl_client_t *c, const char *h, size_t n)
{
    sl_exchange_t *ex = &c->rq->ex;
    sl_buf_t *b = &c->rq->host_store;
    size_t cap = SL_HOST_OUT_CAP(n), len = 0;
    b->len = 0;
    sl_buf_reserve(b, cap);
    if (sl_host_normalize(h, n, b->data, cap, &len, NULL) != 0) return -1;
    b->len = len;
    ex->host = b->data;
    ex->host_len = len;
    return 0;
}

/* Splits the target into path and query, normalises the path (uri.h) and checks the query.
 * Origin-form "/p?q", absolute-form "http://host/p?q" (its authority replaces Host, RFC 9112
 * 3.2.2), or "*" for OPTIONS (asterisk-form, routed as "*"). */
static int parse_target(sl_client_t *c, const sl_hdr_t *host)
{
    sl_exchange_t *ex = &c->rq->ex;
    const sl_head_t *h = &c->rq->head;
    const char *t = sl_head_str(h, h->first_off);
    size_t tn = h->first_len;
    if (tn == 1 && t[0] == '*' && ex->method == HTTP_OPTIONS) {
        ex->path = t;
        ex->path_len = 1;
        return host ? set_host(c, sl_head_str(h, host->value_off), host->value_len) : 0;
    }
    const char *path = t, *end = t + tn;
    size_t skip = tn >= 7 && strncasecmp(t, "http://", 7) == 0 ? 7 : tn >= 8 && strncasecmp(t, "https://", 8) == 0 ? 8 : 0;
    if (skip) {
        const char *auth = t + skip;
        const char *ae = auth;
        while (ae < end && *ae != '/' && *ae != '?') ae++;
        if (ae == auth || set_host(c, auth, (size_t)(ae - auth)) != 0) return -1;
        ex->authority = auth;
        ex->authority_len = (size_t)(ae - auth);
        path = ae;
    } else if (tn == 0 || t[0] != '/') {
        return -1;
    } else if (host && set_host(c, sl_head_str(h, host->value_off), host->value_len) != 0) {
        return -1;
    }
    /* RFC 9110 7.2: an invalid Host is refused even when the target's authority replaces it. */
    if (skip && host) {
        char tmp[SL_HOST_OUT_CAP(256)];
        size_t l;
        if (host->value_len > 256 ||
            sl_host_normalize(sl_head_str(h, host->value_off), host->value_len, tmp, sizeof(tmp), &l, NULL) != 0)
            return -1;
    }
    const char *q = memchr(path, '?', (size_t)(end - path));
    size_t plen = (size_t)((q ? q : end) - path);
    if (q) {
        ex->query = q;
        ex->query_len = (size_t)(end - q);
        if (!query_valid(q, ex->query_len)) return -1;
    }
    const sl_gateway_cfg_t *g = gw(c);
    unsigned flags = (g->http.merge_slashes ? 0 : SL_PATH_KEEP_SLASHES) |
                     (g->http.escaped_slashes == SL_ESCAPED_SLASHES_KEEP ? SL_PATH_KEEP_ESCAPED_SLASHES : 0);
    const char *err = NULL;
    sl_buf_t *ps = &c->rq->path_store;
    ps->len = 0;
    if (sl_path_normalize(path, plen, ps, flags, &err) != 0) {
        sl_log_debug("client %s: %s", c->peer_ip, err ? err : "bad path");
        return -1;
    }
    ex->path = ps->data;
    ex->path_len = ps->len;
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
    ex->method = (uint8_t)p->method;
    ex->http_minor = p->http_major == 1 ? p->http_minor : 0;
    if (p->http_major != 1) return fail_parse(c, 400, "bad_request");
    rq->ex.bytes_in += 2;
    rq->head_done = 1;
    if (rq->scan.phase != SL_SCAN_HEAD_DONE) return fail_parse(c, 400, "bad_request");
    /* A tunnel to anywhere is not a gateway's to open. */
    if (ex->method == HTTP_CONNECT) return fail_parse(c, 405, "method_not_allowed");
    if (!sl_head_names_valid(h)) return fail_parse(c, 400, "bad_request");
    int underscores = gw(c)->http.headers_with_underscores;
    if (underscores != SL_UNDERSCORES_ALLOW && has_underscore_name(h)) {
        if (underscores == SL_UNDERSCORES_REJECT) return fail_parse(c, 400, "header_with_underscore");
        drop_underscore_names(h);
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
    if (n_te && ex->http_minor == 0) return fail_parse(c, 400, "bad_request");
    if (n_host > 1 || (n_host == 0 && ex->http_minor >= 1)) return fail_parse(c, 400, "bad_request");
    if (p->flags & F_CHUNKED) ex->req_body = SL_BODY_CHUNKED;
    else if ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0) ex->req_body = SL_BODY_LENGTH;
    ex->req_length = ex->req_body == SL_BODY_LENGTH ? p->content_length : 0;
    if (parse_target(c, host) != 0) return fail_parse(c, 400, "bad_request");

    /* The body's framing is checked from here on, ahead of llhttp, before any of it is sent. */
    sl_h1_scan_body(&rq->scan, ex->req_body == SL_BODY_CHUNKED ? SL_SCAN_BODY_CHUNKED
                               : ex->req_body == SL_BODY_LENGTH ? SL_SCAN_BODY_LENGTH
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

/* Routes the request, runs the request policies and starts the upstream; called once llhttp
 * has accepted the head (at the first body byte, the end of the message, or the end of the
 * bytes at hand). Returns -1 when the parser must stop (the connection is being answered and
 * closed). */
static int exchange_begin(sl_client_t *c)
{
    sl_creq_t *rq = c->rq;
    if (!rq->begin_pending) return 0;
    rq->begin_pending = 0;
    sl_exchange_t *ex = &rq->ex;
    llhttp_t *p = &rq->parser;
    const char *mname = llhttp_method_name((llhttp_method_t)ex->method);
    ex->route = sl_router_match(ex->gen->router, ex->host ? ex->host : "", ex->host_len, ex->path, ex->path_len,
                                sl_method_bit(mname, strlen(mname)));
    request_id_begin(c);
    if (ex->route && ex->route->n_chain) {
        /* Request policies (ip_access, local_rate_limit) may refuse it before anything goes upstream. */
        sl_policy_req_t pr = {
            .peer = c->peer_ip, .header = policy_header, .ctx = &rq->head, .state = &ex->policy};
        client_address(c, &pr.remote, &pr.remote_len);
        ex->refused_status = sl_policy_on_request(ex->route, &pr, &ex->refused_code);
    }
    if (ex->route && !ex->refused_status) websocket_check(c, p);
    if (!ex->route || !ex->route->upstream || ex->refused_status) {
        /* Answered here, after the body is read and dropped; a client waiting for 100-continue
         * is answered now instead, and the connection closes. */
        if (ex->req_body != SL_BODY_NONE && ex->expect_continue && !ex->req_complete) {
            c->close_after = 1;
            answer_locally(c);
            ex->req_complete = 1;
            exchange_maybe_done(c);
            return -1;
        }
        return 0;
    }
    balancer_key(c);
    ex->node = sl_upstream_pick(ex->route->upstream, ex->pick_key, ex->pick_key_len, NULL);
    if (!ex->node) {
        /* No node healthy and the upstream says on_all_unhealthy: reject. The answer goes out
         * before the message is read, so the connection cannot carry another one. */
        c->close_after = 1;
        sl_client_fail(c, 503, "no_healthy_upstream");
        return -1;
    }
    build_upstream_head(c);
    if (ex->expect_continue && ex->req_body != SL_BODY_NONE && ex->http_minor >= 1 && !ex->req_complete)
        sl_client_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    ex->bytes_out = 0; /* the interim response is not part of the final one */
    sl_upstream_start(c);
    if (c->closing || c->state == SL_C_CLOSING) return -1;
    /* While a body arrives, body_timeout bounds each pause between reads. */
    if (ex->req_body != SL_BODY_NONE && !ex->req_complete) timer_set(c, SL_TQ_BODY, gw(c)->http.body_timeout_ms);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    sl_client_t *c = p->data;
    sl_exchange_t *ex = &c->rq->ex;
    ex->bytes_in += n;
    if (c->state == SL_C_CLOSING || exchange_begin(c) < 0) return -1;
    if (!ex->route || !ex->route->upstream || ex->refused_status || ex->resp_complete || c->closing) return 0;
    if (ex->req_body == SL_BODY_CHUNKED) {
        char line[24];
        int m = snprintf(line, sizeof(line), "%zx\r\n", n);
        sl_upstream_send(c, line, (size_t)m);
        sl_upstream_send(c, at, n);
        sl_upstream_send(c, "\r\n", 2);
    } else {
        sl_upstream_send(c, at, n);
    }
    return 0;
}

static int on_chunk_header(llhttp_t *p)
{
    sl_client_t *c = p->data;
    return c->state == SL_C_CLOSING || exchange_begin(c) < 0 ? -1 : 0;
}

static void answer_locally(sl_client_t *c)
{
    sl_exchange_t *ex = &c->rq->ex;
    const sl_direct_response_cfg_t *d = ex->route ? ex->route->cfg->direct_response : NULL;
    if (ex->refused_status) send_error(c, ex->refused_status, ex->refused_code);
    else if (!ex->route) send_error(c, 404, "no_route");
    else if (d) send_local(c, d->status, d->headers, d->n_headers, NULL, d->body, d->body_len);
    else send_error(c, 502, "no_upstream");
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
    if (!ex->route || !ex->route->upstream || ex->refused_status) {
        answer_locally(c);
    } else if (!ex->resp_complete) {
        if (ex->req_body == SL_BODY_CHUNKED) sl_upstream_send(c, "0\r\n\r\n", 5);
        sl_upstream_request_done(c);
    }
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

void sl_client_upstream_drained(sl_client_t *c)
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

void sl_client_pause_for_upstream(sl_client_t *c)
{
    /* Waiting on the upstream is bounded by its send timeout, not by the client's. */
    client_read_stop(c);
    timer_stop(c);
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
    sl_client_fail(c, status, code);
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
        sl_client_fail(c, 408, "header_timeout");
    } else if (c->state == SL_C_BODY && !c->rq->ex.head_sent) {
        /* A body that stops arriving (body_timeout): 408, and the upstream side is let go. */
        c->close_after = 1;
        client_read_stop(c);
        sl_client_fail(c, 408, "body_timeout");
    } else {
        c->rq->ex.error = c->state == SL_C_BODY ? "body_timeout" : "client_timeout";
        client_close(c);
    }
}

/* ---- accepting -------------------------------------------------------------------------- */

/* Filled once for every worker: a plain "done" flag read and set by two worker threads at
 * their first connection was a data race. */
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
    sl_list_push(&w->clients, &c->link);
    w->n_clients++;
    sl_series_add(sl_metrics.connections_active, w->index, 1);
    /* A new connection must send its request head within the header timeout. */
    timer_set(c, SL_TQ_HEADER, gw(c)->http.header_timeout_ms);
    c->reading = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc, on_client_read);
}

void sl_h1_drain(sl_worker_t *w)
{
    for (sl_list_t *l = w->clients.next, *next; l != &w->clients; l = next) {
        next = l->next;
        sl_client_t *c = sl_container_of(l, sl_client_t, link);
        c->close_after = 1;
        if (c->state == SL_C_HEAD && (!c->rq || !c->rq->ex.active)) client_close(c);
    }
}

void sl_h1_close_all(sl_worker_t *w)
{
    for (sl_list_t *l = w->clients.next, *next; l != &w->clients; l = next) {
        next = l->next;
        client_close(sl_container_of(l, sl_client_t, link));
    }
}
