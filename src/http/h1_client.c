/* The HTTP/1.1 upstream client (sl_http_client_ops_t): takes a keep-alive connection to the
 * try's node from the worker's pool or connects, writes the upstream request as HTTP/1.1,
 * parses the response with llhttp behind the framing checker (h1_scan.h) and reports it to
 * proxy.c (sl_proxy_on_*). It replays a request whose pooled connection closed before any
 * answer; what to do about every other failure is the proxy's decision. */
#include "http/h1_internal.h"
#include "base/common.h"
#include "base/log.h"
#include "base/time.h"
#include "runtime/server.h"
#include "policy/policy.h"
#include "upstream/balancer.h"
#include "upstream/health.h"

#include <pthread.h>
#include <string.h>

struct sl_upconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    sl_list_t link; /* in its pool's idle list */
    struct pool *pool;
    sl_worker_t *w;
    llhttp_t parser;
    sl_head_t head;
    /* The framing checker ahead of llhttp (h1_scan.h), as on the client side: llhttp 8.1 is as
     * lenient with responses as with requests. scan_at is where it stopped in the read. */
    sl_h1_scan_t scan;
    const char *scan_at, *feed_end;
    sl_exchange_t *ex; /* NULL while idle */
    size_t write_queued;
    uint64_t idle_since_ms;
    uint64_t idle_timeout_ms;
    uint32_t max_idle;
    uint64_t read_timeout_ms, send_timeout_ms;
    int handles_open;
    unsigned connected : 1, reused : 1, closing : 1, got_bytes : 1, head_done : 1, reading : 1, keepalive : 1, idle : 1,
        deadline_timer : 1, /* the armed timer is the route's timeout policy */
        upgraded : 1,       /* answered 101 to a WebSocket handshake: the tunnel's once the head is parsed */
        congested : 1;      /* the stream said stop during this read */
};

/* Idle connections to one address, kept per worker. */
typedef struct pool {
    char key[sizeof(struct sockaddr_in6) + 2];
    size_t key_len;
    sl_list_t idle;
    size_t n_idle;
} pool_t;

/* The client's state in an exchange (its client slot). */
typedef struct h1_try {
    sl_upconn_t *uc;
    sl_buf_t prebuf;   /* upstream bytes waiting for the connection */
    sl_buf_t replay;   /* bytes sent on this connection, to send again (see ex->replayable) */
    size_t replay_limit;
    unsigned head_written : 1; /* the head is in prebuf or sent */
    unsigned pool_replay : 1;  /* a pooled connection that closed before answering may get it again */
    unsigned skip_interim : 1; /* ignoring a 1xx response from the upstream */
    unsigned last : 1;         /* the request body is complete */
} h1_try_t;

_Static_assert(sizeof(h1_try_t) <= SL_HTTP_CLIENT_STATE, "the exchange's client slot is too small");

static h1_try_t *T(sl_exchange_t *ex)
{
    return (h1_try_t *)(void *)ex->client;
}

static llhttp_settings_t up_settings;
static void uc_close(sl_upconn_t *uc);
static void uc_start_read(sl_upconn_t *uc);

/* ---- pool ------------------------------------------------------------------------------- */

static size_t addr_key(const struct sockaddr_storage *a, char *key)
{
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)a;
        key[0] = 4;
        memcpy(key + 1, &s->sin_addr, 4);
        memcpy(key + 5, &s->sin_port, 2);
        return 7;
    }
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
    key[0] = 6;
    memcpy(key + 1, &s->sin6_addr, 16);
    memcpy(key + 17, &s->sin6_port, 2);
    return 19;
}

static pool_t *pool_get(sl_worker_t *w, const struct sockaddr_storage *a)
{
    char key[sizeof(((pool_t *)0)->key)];
    size_t n = addr_key(a, key);
    void **slot = sl_map_slot(&sl_h1w(w)->pools, key, n);
    if (!*slot) {
        pool_t *p = sl_xcalloc(1, sizeof(*p));
        memcpy(p->key, key, n);
        p->key_len = n;
        sl_list_init(&p->idle);
        /* The map borrows its key: point it at the pool's own copy. */
        sl_map_entry_t *e = (sl_map_entry_t *)((char *)slot - offsetof(sl_map_entry_t, value));
        e->key = p->key;
        *slot = p;
    }
    return *slot;
}

static sl_upconn_t *pool_take(pool_t *p)
{
    if (sl_list_empty(&p->idle)) return NULL;
    sl_list_t *l = p->idle.next;
    sl_list_remove(l);
    p->n_idle--;
    sl_upconn_t *uc = sl_container_of(l, sl_upconn_t, link);
    uc->idle = 0;
    return uc;
}

void sl_pool_sweep(sl_worker_t *w)
{
    uint64_t now = sl_now_ms();
    for (size_t i = 0; i < sl_h1w(w)->pools.cap; i++) {
        pool_t *p = sl_h1w(w)->pools.slots[i].key ? sl_h1w(w)->pools.slots[i].value : NULL;
        if (!p) continue;
        for (sl_list_t *l = p->idle.next, *next; l != &p->idle; l = next) {
            next = l->next;
            sl_upconn_t *uc = sl_container_of(l, sl_upconn_t, link);
            if (now - uc->idle_since_ms >= uc->idle_timeout_ms) uc_close(uc);
        }
    }
}

void sl_pool_close_all(sl_worker_t *w)
{
    for (size_t i = 0; i < sl_h1w(w)->pools.cap; i++) {
        pool_t *p = sl_h1w(w)->pools.slots[i].key ? sl_h1w(w)->pools.slots[i].value : NULL;
        if (!p) continue;
        while (!sl_list_empty(&p->idle)) uc_close(sl_container_of(p->idle.next, sl_upconn_t, link));
        free(p);
    }
    sl_map_free(&sl_h1w(w)->pools);
}

/* ---- connection lifecycle --------------------------------------------------------------- */

static void on_uc_closed(uv_handle_t *h)
{
    sl_upconn_t *uc = h->data;
    if (--uc->handles_open) return;
    sl_head_free(&uc->head);
    free(uc);
}

static void uc_close(sl_upconn_t *uc)
{
    if (uc->closing) return;
    uc->closing = 1;
    if (uc->idle) {
        sl_list_remove(&uc->link);
        uc->pool->n_idle--;
        uc->idle = 0;
    }
    uc->ex = NULL;
    uv_close((uv_handle_t *)&uc->timer, on_uc_closed);
    uv_close((uv_handle_t *)&uc->tcp, on_uc_closed);
}

static void on_uc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    SL_UNUSED(suggested);
    sl_upconn_t *uc = h->data;
    buf->base = uc->w->read_buf;
    buf->len = sizeof(uc->w->read_buf);
}

static void uc_release(sl_upconn_t *uc)
{
    if (uc->ex) T(uc->ex)->uc = NULL;
    uc->ex = NULL;
    uv_timer_stop(&uc->timer);
    if (!uc->keepalive || uc->write_queued || uc->closing || uc->w->stopping || uc->pool->n_idle >= uc->max_idle) {
        uc_close(uc);
        return;
    }
    /* Idle connections keep reading: data or EOF from an idle upstream closes it (on_uc_read). */
    uc_start_read(uc);
    uc->idle_since_ms = sl_now_ms();
    sl_list_push(&uc->pool->idle, &uc->link);
    uc->pool->n_idle++;
    uc->idle = 1;
}

/* Detaches and closes the try's connection. */
static void uc_abort(sl_exchange_t *ex)
{
    sl_upconn_t *uc = T(ex)->uc;
    if (!uc) return;
    T(ex)->uc = NULL;
    uc->ex = NULL;
    uc->keepalive = 0;
    uc_close(uc);
}

/* ---- writing ---------------------------------------------------------------------------- */

static void on_uc_timer(uv_timer_t *t);

static int is_idempotent(sl_http_method_t method)
{
    switch (method) {
    case SL_HTTP_GET:
    case SL_HTTP_HEAD:
    case SL_HTTP_OPTIONS:
    case SL_HTTP_TRACE:
    case SL_HTTP_PUT:
    case SL_HTTP_DELETE: return 1;
    default: return 0;
    }
}

static void uc_configure(sl_upconn_t *uc, const sl_upstream_cfg_t *cfg)
{
    uc->max_idle = cfg->keepalive_max_idle;
    uc->idle_timeout_ms = cfg->keepalive_idle_timeout_ms;
    uc->read_timeout_ms = cfg->read_timeout_ms;
    uc->send_timeout_ms = cfg->send_timeout_ms;
}


static uint64_t ms_left(uint64_t deadline_ns, uint64_t now)
{
    return deadline_ns > now ? (deadline_ns - now + 999999) / 1000000 : 0;
}

/* ms, cut to what is left of the try (the retry policy's per_try_timeout, until the response
 * head) and of the route's timeout policy (the whole request, retries included). */
static uint64_t bounded(sl_upconn_t *uc, const sl_exchange_t *ex, uint64_t ms)
{
    int per_try = ex->try_deadline_ns && !uc->head_done;
    uc->deadline_timer = 0;
    if (!ex->deadline_ns && !per_try) return ms;
    uint64_t now = sl_now_ns();
    if (per_try) ms = SL_MIN(ms, ms_left(ex->try_deadline_ns, now));
    if (ex->deadline_ns && ms_left(ex->deadline_ns, now) <= ms) {
        /* This timer ends the route's time, whatever the loop clock says when it fires. */
        uc->deadline_timer = 1;
        ms = ms_left(ex->deadline_ns, now);
    }
    return ms;
}

static void arm_timer(sl_upconn_t *uc)
{
    sl_exchange_t *ex = uc->ex;
    if (!ex) return;
    uint64_t ms = T(ex)->last && !uc->write_queued ? uc->read_timeout_ms : uc->send_timeout_ms;
    uv_timer_start(&uc->timer, on_uc_timer, bounded(uc, ex, ms), 0);
}

static void on_uc_written(uv_write_t *req, int status)
{
    sl_wreq_t *wr = sl_container_of(req, sl_wreq_t, req);
    sl_upconn_t *uc = wr->owner;
    uc->write_queued -= wr->len;
    free(wr);
    if (uc->closing || !uc->ex) return;
    if (status < 0) {
        /* The response may still arrive (an early answer); a read error will tell. */
        uc->keepalive = 0;
        return;
    }
    arm_timer(uc);
    if (uc->write_queued < SL_LOW_WATER) sl_proxy_on_upstream_drained(uc->ex);
}

static void uc_write(sl_upconn_t *uc, const void *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    ssize_t queued = sl_stream_write((uv_stream_t *)&uc->tcp, &b, 1, uc, on_uc_written);
    if (queued < 0) uc->keepalive = 0; /* the read side reports the failure */
    else uc->write_queued += (size_t)queued;
}

/* Sends request bytes (head or body, as framed) to the try's connection, or keeps them until it
 * is up. Returns 1 when over the high water mark. */
static int send_bytes(sl_exchange_t *ex, const void *p, size_t n)
{
    h1_try_t *t = T(ex);
    sl_upconn_t *uc = t->uc;
    if (!uc || !uc->connected) {
        sl_buf_append(&t->prebuf, p, n);
        return t->prebuf.len > SL_HIGH_WATER;
    }
    if (ex->replayable) {
        if (t->replay.len + n <= t->replay_limit) {
            sl_buf_append(&t->replay, p, n);
        } else {
            ex->replayable = 0;
            sl_buf_free(&t->replay);
        }
    }
    ex->req_streamed = 1;
    uc_write(uc, p, n);
    arm_timer(uc); /* progress: the send timeout counts from the last bytes taken */
    return uc->write_queued > SL_HIGH_WATER;
}

/* The upstream request's HTTP/1.1 head (ex->up), into prebuf. */
static void write_head(sl_exchange_t *ex)
{
    const sl_http_req_t *up = &ex->up;
    sl_buf_t *b = &T(ex)->prebuf;
    size_t need = strlen(up->method) + up->path_len + up->query_len + 96;
    for (uint32_t i = 0; i < up->hdrs.n; i++) need += up->hdrs.v[i].name_len + up->hdrs.v[i].value_len + 4;
    sl_buf_reserve(b, need);
    sl_buf_puts(b, up->method);
    sl_buf_putc(b, ' ');
    sl_buf_append(b, up->path, up->path_len);
    if (up->query) sl_buf_append(b, up->query, up->query_len);
    sl_buf_puts(b, " HTTP/1.1\r\n");
    for (uint32_t i = 0; i < up->hdrs.n; i++) {
        const sl_http_hdr_t *x = &up->hdrs.v[i];
        char *o = b->data + b->len;
        memcpy(o, x->name, x->name_len);
        o += x->name_len;
        *o++ = ':';
        *o++ = ' ';
        memcpy(o, x->value, x->value_len);
        o += x->value_len;
        *o++ = '\r';
        *o++ = '\n';
        b->len = (size_t)(o - b->data);
    }
    if (up->body == SL_HTTP_BODY_LENGTH)
    {
        char num[24];
        sl_buf_append(b, "Content-Length: ", 16);
        sl_buf_append(b, num, sl_http_u64(num, up->body_length));
        sl_buf_append(b, "\r\n", 2);
    }
    else if (up->body == SL_HTTP_BODY_STREAM)
        sl_buf_puts(b, "Transfer-Encoding: chunked\r\n");
    if (up->upgrade) sl_buf_puts(b, "Connection: Upgrade\r\nUpgrade: websocket\r\n");
    else if (!up->keepalive) sl_buf_puts(b, "Connection: close\r\n");
    sl_buf_puts(b, "\r\n");
}

static int h1_write_body(sl_exchange_t *ex, const char *p, size_t n, int last)
{
    int full = 0;
    if (n && ex->up.body == SL_HTTP_BODY_STREAM) {
        char line[24];
        int m = snprintf(line, sizeof(line), "%zx\r\n", n);
        full |= send_bytes(ex, line, (size_t)m);
        full |= send_bytes(ex, p, n);
        full |= send_bytes(ex, "\r\n", 2);
    } else if (n) {
        full |= send_bytes(ex, p, n);
    }
    if (!last) return full;
    if (ex->up.body == SL_HTTP_BODY_STREAM) full |= send_bytes(ex, "0\r\n\r\n", 5);
    T(ex)->last = 1;
    sl_upconn_t *uc = T(ex)->uc;
    if (uc && uc->connected) {
        ex->t_sent_ns = sl_now_ns();
        arm_timer(uc); /* armed once connected otherwise */
    }
    return full;
}

static void h1_resume(sl_exchange_t *ex)
{
    /* Writes can complete after the exchange is over, on an idle connection. */
    sl_upconn_t *uc = T(ex)->uc;
    if (uc && uc->connected && !uc->reading && !uc->closing) uc_start_read(uc);
}

/* ---- response parsing ------------------------------------------------------------------- */

/* The response broke off or timed out after its head: nothing can be retried. */
static void fail(sl_upconn_t *uc, int status, const char *code)
{
    sl_exchange_t *ex = uc->ex;
    uc->keepalive = 0;
    if (!ex) {
        uc_close(uc);
        return;
    }
    sl_proxy_on_failed(ex, status, code); /* cancels (closes) uc */
}

/* grpc-status of a response head (a gRPC error answered without a body), or -1. */
static int grpc_status(const sl_head_t *h)
{
    for (size_t i = 0; i < h->n; i++) {
        const sl_hdr_t *x = &h->hdrs[i];
        if (!sl_hdr_is(h, x, "grpc-status")) continue;
        const char *v = sl_head_str(h, x->value_off);
        int n = 0;
        for (size_t k = 0; k < x->value_len && k < 3; k++) {
            if (v[k] < '0' || v[k] > '9') return -1;
            n = n * 10 + (v[k] - '0');
        }
        return x->value_len && x->value_len <= 3 ? n : -1;
    }
    return -1;
}

static void scan_restart(sl_upconn_t *uc)
{
    sl_h1_scan_reset(&uc->scan);
    uc->scan.response = 1;
}

/* Checks the rest of the read from where the checker stopped; -1 on a forbidden form. */
static int scan_more(sl_upconn_t *uc)
{
    if (!uc->scan_at || uc->feed_end <= uc->scan_at) return 0;
    ssize_t r = sl_h1_scan(&uc->scan, uc->scan_at, (size_t)(uc->feed_end - uc->scan_at));
    if (r < 0) return -1;
    uc->scan_at += r;
    return 0;
}

/* The head is over: the checker goes on with the body framing llhttp decided (kind and length
 * as in sl_h1_scan_body) over what is left of the read; -1 when either broke the grammar. */
static int scan_body(sl_upconn_t *uc, int kind, uint64_t length)
{
    if (uc->scan.phase != SL_SCAN_HEAD_DONE) return -1;
    sl_h1_scan_body(&uc->scan, kind, length);
    return scan_more(uc);
}

static int on_resp_begin(llhttp_t *p)
{
    sl_upconn_t *uc = p->data;
    /* A response after a 1xx in the same read: its bytes are checked before llhttp reads them. */
    if (uc->scan.phase == SL_SCAN_DONE) {
        scan_restart(uc);
        if (scan_more(uc) < 0) return -1;
    }
    sl_head_reset(&uc->head);
    sl_buf_reserve(&uc->head.buf, 512);
    uc->head_done = 0;
    return 0;
}

static int on_resp_status(llhttp_t *p, const char *at, size_t n)
{
    sl_upconn_t *uc = p->data;
    sl_head_first(&uc->head, at, n);
    return uc->head.bytes > SL_MAX_RESPONSE_HEAD ? -1 : 0;
}

static int on_resp_field(llhttp_t *p, const char *at, size_t n)
{
    sl_upconn_t *uc = p->data;
    sl_head_field(&uc->head, at, n);
    return uc->head.bytes > SL_MAX_RESPONSE_HEAD ? -1 : 0;
}

static int on_resp_value(llhttp_t *p, const char *at, size_t n)
{
    sl_upconn_t *uc = p->data;
    if (sl_head_value(&uc->head, at, n) != 0) return -1;
    return uc->head.bytes > SL_MAX_RESPONSE_HEAD ? -1 : 0;
}

static int on_resp_value_done(llhttp_t *p)
{
    sl_upconn_t *uc = p->data;
    sl_head_value_done(&uc->head);
    return 0;
}

/* Hands the upstream's response head to the response writer (response.c): its fields without
 * hop-by-hop ones, pointing into uc's head until the next response is parsed. */
static int respond_upstream(sl_upconn_t *uc, int status, int64_t length, int no_body)
{
    sl_exchange_t *ex = uc->ex;
    const sl_head_t *h = &uc->head;
    sl_http_resp_t r = {.status = status, .content_length = length, .no_body = no_body ? 1 : 0};
    if (h->first_len) {
        r.reason = sl_head_str(h, h->first_off);
        r.reason_len = h->first_len;
    }
    r.upgrade = status == 101;
    sl_head_to_hdrs(h, &r.hdrs, ex->arena);
    /* Hop-by-hop fields are judged against the whole head, then dropped. */
    uint8_t *hop = sl_arena_alloc(ex->arena, r.hdrs.n + 1);
    for (uint32_t i = 0; i < r.hdrs.n; i++) hop[i] = (uint8_t)sl_http_hdrs_hop_by_hop(&r.hdrs, &r.hdrs.v[i]);
    uint32_t k = 0;
    for (uint32_t i = 0; i < r.hdrs.n; i++)
        if (!hop[i]) r.hdrs.v[k++] = r.hdrs.v[i];
    r.hdrs.n = k;
    return sl_proxy_on_head(ex, &r, grpc_status(h));
}

/* The upstream took the WebSocket handshake: the client gets the 101, and the bytes after it
 * belong to the tunnel (on_uc_read). */
static int switching_protocols(sl_upconn_t *uc)
{
    uc->head_done = 1;
    uc->upgraded = 1;
    respond_upstream(uc, 101, -1, 1);
    return 1; /* a 1xx has no body, whatever its headers say */
}

/* Hands uc's socket over to the client's tunnel: it leaves the exchange and never returns to
 * the pool; the tunnel closes it with sl_upstream_close_detached(). */
static uv_stream_t *uc_detach(sl_upconn_t *uc)
{
    T(uc->ex)->uc = NULL;
    uc->ex = NULL;
    uc->keepalive = 0;
    uv_timer_stop(&uc->timer);
    uv_read_stop((uv_stream_t *)&uc->tcp);
    uc->reading = 0;
    return (uv_stream_t *)&uc->tcp;
}

void sl_upstream_close_detached(uv_stream_t *s)
{
    sl_upconn_t *uc = sl_container_of((uv_tcp_t *)s, sl_upconn_t, tcp);
    s->data = uc;
    uc_close(uc);
}

static int on_resp_headers_complete(llhttp_t *p)
{
    sl_upconn_t *uc = p->data;
    sl_exchange_t *ex = uc->ex;
    int status = p->status_code;
    /* RFC 9110 15: a status is three digits from 100 to 599; anything else is no response. */
    if (status < 100 || status > 599 || !sl_head_names_valid(&uc->head)) return -1;
    if (sl_head_te_count(&uc->head, (p->flags & F_CHUNKED) != 0) < 0) return -1;
    if (status == 101 && ex->upgrade) return switching_protocols(uc);
    if (status < 200) {
        if (status == 101) return -1; /* no upgrade was asked for */
        T(ex)->skip_interim = 1;      /* 100 Continue and friends: the client got ours */
        if (scan_body(uc, SL_SCAN_BODY_NONE, 0) < 0) return -1;
        return 1; /* a 1xx has no body, whatever its headers say */
    }
    T(ex)->skip_interim = 0;
    uc->head_done = 1;
    int no_body = ex->req.method_id == SL_HTTP_HEAD || status == 204 || status == 304;
    int has_length = (p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED);
    int kind = no_body ? SL_SCAN_BODY_NONE : (p->flags & F_CHUNKED) ? SL_SCAN_BODY_CHUNKED : SL_SCAN_BODY_LENGTH;
    /* Without a length the body ends with the connection (RFC 9112 6.3). */
    uint64_t length = kind != SL_SCAN_BODY_LENGTH ? 0 : has_length ? p->content_length : UINT64_MAX;
    if (scan_body(uc, kind, length) < 0) return -1;
    /* A retried response goes nowhere: the connection is dropped with it (uc->ex is cleared). */
    if (respond_upstream(uc, status, has_length ? (int64_t)p->content_length : -1, no_body) < 0 || !uc->ex) return -1;
    uv_timer_start(&uc->timer, on_uc_timer, bounded(uc, ex, uc->read_timeout_ms), 0);
    /* Returning 1 tells llhttp the response has no body whatever its headers say (RFC 9112
     * 6.3: HEAD, 204, 304): bytes after such a head are never body, and the connection that
     * sent them is not reused (on_uc_read). */
    return no_body ? 1 : 0;
}

static int on_resp_body(llhttp_t *p, const char *at, size_t n)
{
    sl_upconn_t *uc = p->data;
    if (!uc->ex) return -1;
    if (sl_proxy_on_body(uc->ex, at, n)) uc->congested = 1;
    return 0;
}

static int on_resp_complete(llhttp_t *p)
{
    sl_upconn_t *uc = p->data;
    sl_exchange_t *ex = uc->ex;
    if (!ex) return -1;
    if (T(ex)->skip_interim) {
        T(ex)->skip_interim = 0;
        return 0;
    }
    uc->keepalive = llhttp_should_keep_alive(p) && T(ex)->last;
    return HPE_PAUSED; /* anything after the response is a protocol error for a pooled connection */
}

static void on_uc_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    sl_upconn_t *uc = s->data;
    sl_exchange_t *ex = uc->ex;
    if (nread == 0) return;
    if (!ex) {
        /* Idle in the pool: an idle upstream has nothing to say, so data or EOF both end it. */
        uc_close(uc);
        return;
    }
    if (nread < 0) {
        if (uc->head_done) {
            /* A close-delimited body ends here; anything else is a truncated response. */
            llhttp_errno_t fin = llhttp_finish(&uc->parser);
            if (fin == HPE_PAUSED || fin == HPE_OK) {
                uc->keepalive = 0;
                uc_release(uc);
                sl_proxy_on_trailers(ex, NULL);
                return;
            }
            fail(uc, 502, "upstream_reset");
            return;
        }
        if (uc->reused && !uc->got_bytes && T(ex)->pool_replay && ex->replayable) {
            /* The pooled connection was closed under us before answering: send again on a fresh one. */
            sl_proxy_on_pool_closed(ex);
            return;
        }
        sl_proxy_on_try_failed(ex, SL_TRY_RESET, 502, "upstream_reset");
        return;
    }
    uc->got_bytes = 1;
    /* The exchange may end inside the parser's callbacks; its stream outlives this read. */
    const sl_http_stream_ops_t *so = ex->sops;
    void *stream = ex->stream;
    so->hold(stream, 1);
    uc->congested = 0;
    llhttp_errno_t err = HPE_USER;
    ssize_t scanned = uc->upgraded ? nread : sl_h1_scan(&uc->scan, buf->base, (size_t)nread);
    if (scanned >= 0) {
        uc->scan_at = buf->base + scanned;
        uc->feed_end = buf->base + nread;
        err = llhttp_execute(&uc->parser, buf->base, (size_t)nread);
    }
    uc->scan_at = uc->feed_end = NULL;
    if (!uc->ex) {
        so->hold(stream, 0);
        return; /* failed or cancelled inside a callback */
    }
    if (uc->upgraded && (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)) {
        /* After the 101: the rest of this read is already the tunnel's. A tunnel joins two
         * HTTP/1.1 connections, so the stream is the HTTP/1.1 server's. */
        size_t used = (size_t)(llhttp_get_error_pos(&uc->parser) - buf->base);
        so->hold(stream, 0); /* the 101 head goes first */
        if (uc->ex) sl_tunnel_start(stream, uc_detach(uc), buf->base + used, (size_t)nread - used);
        return;
    }
    if (err == HPE_PAUSED) {
        /* Bytes after the response would be answered to nobody: do not reuse such a connection. */
        if (llhttp_get_error_pos(&uc->parser) != buf->base + nread) uc->keepalive = 0;
        uc_release(uc);
        sl_proxy_on_trailers(ex, NULL);
        so->hold(stream, 0);
        return;
    }
    so->hold(stream, 0);
    if (err != HPE_OK) {
        const char *why = scanned < 0 ? "framing" : llhttp_get_error_reason(&uc->parser);
        sl_log_debug("upstream %s: bad response: %s", ex->node_name, why ? why : "?");
        if (uc->head_done) fail(uc, 502, "upstream_bad_response");
        else sl_proxy_on_try_failed(ex, SL_TRY_BAD_RESPONSE, 502, "upstream_bad_response");
        return;
    }
    if (uc->head_done) uv_timer_start(&uc->timer, on_uc_timer, bounded(uc, ex, uc->read_timeout_ms), 0);
    if (uc->congested) {
        uc->reading = 0;
        uv_read_stop((uv_stream_t *)&uc->tcp);
    }
}

static void uc_start_read(sl_upconn_t *uc)
{
    if (uc->reading) return;
    uc->reading = 1;
    uv_read_start((uv_stream_t *)&uc->tcp, on_uc_alloc, on_uc_read);
}

static void on_uc_timer(uv_timer_t *t)
{
    sl_upconn_t *uc = t->data;
    sl_exchange_t *ex = uc->ex;
    if (!ex) return;
    if (uc->deadline_timer) fail(uc, 504, "route_timeout"); /* the timeout policy */
    else if (!uc->connected) sl_proxy_on_connect_failed(ex, "upstream_connect_failed");
    else if (!uc->head_done) sl_proxy_on_try_failed(ex, SL_TRY_TIMEOUT, 504, "upstream_timeout");
    else fail(uc, 504, "upstream_timeout");
}

/* ---- connecting ------------------------------------------------------------------------- */

/* Filled once for every worker: a plain "done" flag read and set by two worker threads at
 * their first connection was a data race. */
static void settings_fill(void)
{
    llhttp_settings_init(&up_settings);
    up_settings.on_message_begin = on_resp_begin;
    up_settings.on_status = on_resp_status;
    up_settings.on_header_field = on_resp_field;
    up_settings.on_header_value = on_resp_value;
    up_settings.on_header_value_complete = on_resp_value_done;
    up_settings.on_headers_complete = on_resp_headers_complete;
    up_settings.on_body = on_resp_body;
    up_settings.on_message_complete = on_resp_complete;
}

static void settings_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, settings_fill);
}

/* Attaches uc to ex and sends what has been prepared. */
static void uc_attach_ready(sl_exchange_t *ex, sl_upconn_t *uc)
{
    h1_try_t *t = T(ex);
    /* A pooled connection serves whichever service and generation uses the address next. */
    uc_configure(uc, ex->route->upstream->cfg);
    uc->ex = ex;
    t->uc = uc;
    llhttp_init(&uc->parser, HTTP_RESPONSE, &up_settings);
    uc->parser.data = uc;
    scan_restart(uc);
    uc->got_bytes = 0;
    uc->head_done = 0;
    uc->keepalive = 1;
    /* Unasked, only an idempotent request may be sent twice (RFC 9110 9.2.2): the upstream may
     * have acted on it before the pooled connection failed. A retry policy asks for it. */
    t->pool_replay = uc->reused && is_idempotent(ex->req.method_id);
    ex->replayable = t->pool_replay || sl_retry_settings(ex->route);
    sl_buf_free(&t->replay);
    sl_buf_t pre = t->prebuf;
    memset(&t->prebuf, 0, sizeof(t->prebuf));
    send_bytes(ex, pre.data, pre.len);
    sl_buf_free(&pre);
    if (t->last) ex->t_sent_ns = sl_now_ns();
    uc_start_read(uc);
    arm_timer(uc);
    sl_proxy_on_upstream_drained(ex);
}

static void on_connected(uv_connect_t *req, int status)
{
    sl_upconn_t *uc = req->data;
    sl_exchange_t *ex = uc->ex;
    if (uc->closing || !ex) return;
    if (status < 0) {
        sl_log_debug("upstream %s: connect failed: %s", ex->node_name, uv_strerror(status));
        sl_proxy_on_connect_failed(ex, "upstream_connect_failed");
        return;
    }
    uc->connected = 1;
    sl_proxy_on_connected(ex, (double)(sl_now_ns() - ex->connect_start_ns) / 1e6);
    uv_tcp_nodelay(&uc->tcp, 1);
    uc->ex = NULL; /* re-attached below */
    T(ex)->uc = NULL;
    uc_attach_ready(ex, uc);
}

static void uc_connect(sl_exchange_t *ex, const struct sockaddr_storage *addr, pool_t *pool)
{
    const sl_upstream_cfg_t *cfg = ex->route->upstream->cfg;
    sl_upconn_t *uc = sl_xcalloc(1, sizeof(*uc));
    uc->w = ex->w;
    uc->pool = pool;
    sl_list_init(&uc->link);
    uc_configure(uc, cfg);
    uv_tcp_init(&ex->w->loop, &uc->tcp);
    uv_timer_init(&ex->w->loop, &uc->timer);
    uc->tcp.data = uc->timer.data = uc->creq.data = uc;
    uc->handles_open = 2;
    uc->ex = ex;
    T(ex)->uc = uc;
    ex->connect_start_ns = sl_now_ns();
    sl_proxy_on_connected(ex, -1); /* tried; the time is known once it connects */
    int rc = uv_tcp_connect(&uc->creq, &uc->tcp, (const struct sockaddr *)addr, on_connected);
    if (rc != 0) {
        sl_log_debug("upstream %s: connect: %s", ex->node_name, uv_strerror(rc));
        sl_proxy_on_connect_failed(ex, "upstream_connect_failed");
        return;
    }
    uv_timer_start(&uc->timer, on_uc_timer, bounded(uc, ex, cfg->connect_timeout_ms), 0);
}

/* Starts a try on ex->node, from the pool when a connection is idle there (unless fresh). */
static void h1_start(sl_exchange_t *ex, int fresh)
{
    settings_init();
    h1_try_t *t = T(ex);
    if (!t->head_written) {
        write_head(ex);
        /* Bytes kept to send again: the head (all of prebuf now) and, for a retry policy, the
         * body up to its body_buffer. */
        const sl_retry_cfg_t *rc = sl_retry_settings(ex->route);
        t->replay_limit = rc ? t->prebuf.len + rc->body_buffer : SL_REPLAY_MAX;
        t->head_written = 1;
    }
    struct sockaddr_storage addr;
    if (sl_node_addr(ex->node, &addr) != 0) {
        sl_proxy_on_connect_failed(ex, "upstream_unresolved");
        return;
    }
    pool_t *pool = pool_get(ex->w, &addr);
    /* A WebSocket handshake gets a connection of its own: it may become a tunnel. */
    sl_upconn_t *uc = !fresh && !ex->upgrade ? pool_take(pool) : NULL;
    if (uc) {
        uc->reused = 1;
        sl_proxy_on_connected(ex, 0);
        uc_attach_ready(ex, uc);
        return;
    }
    uc_connect(ex, &addr, pool);
}

static void h1_cancel(sl_exchange_t *ex, int again)
{
    h1_try_t *t = T(ex);
    uc_abort(ex);
    if (!again) {
        sl_buf_free(&t->prebuf);
        sl_buf_free(&t->replay);
        memset(t, 0, sizeof(*t));
        return;
    }
    if (ex->req_streamed) {
        /* Everything sent is in replay; what the client sent since waits in prebuf, after it. */
        sl_buf_append(&t->replay, t->prebuf.data, t->prebuf.len);
        sl_buf_free(&t->prebuf);
        t->prebuf = t->replay;
        memset(&t->replay, 0, sizeof(t->replay));
        ex->req_streamed = 0;
    }
}

const sl_http_client_ops_t sl_h1_client_ops = {
    .start = h1_start,
    .write_body = h1_write_body,
    .cancel = h1_cancel,
    .resume = h1_resume,
};
