/* HTTP/1.1 upstream side: picks a node, takes a keep-alive connection from the worker's pool or
 * connects, sends the request, parses the response with llhttp and streams it to the client. */
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
    sl_client_t *c; /* NULL while idle */
    size_t write_queued;
    uint64_t idle_since_ms;
    uint64_t idle_timeout_ms;
    uint32_t max_idle;
    uint64_t read_timeout_ms, send_timeout_ms;
    int handles_open;
    unsigned connected : 1, reused : 1, closing : 1, got_bytes : 1, head_done : 1, reading : 1, keepalive : 1, idle : 1,
        deadline_timer : 1, /* the armed timer is the route's timeout policy */
        upgraded : 1;       /* answered 101 to a WebSocket handshake: the tunnel's once the head is parsed */
};

/* Idle connections to one address, kept per worker. */
typedef struct pool {
    char key[sizeof(struct sockaddr_in6) + 2];
    size_t key_len;
    sl_list_t idle;
    size_t n_idle;
} pool_t;

static llhttp_settings_t up_settings;
static void uc_close(sl_upconn_t *uc);
static void attempt_end(sl_client_t *c, sl_outcome_t outcome, double latency_ms);
static void uc_start_read(sl_upconn_t *uc);
static void backoff_cancel(sl_client_t *c);

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
    void **slot = sl_map_slot(&w->pools, key, n);
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
    for (size_t i = 0; i < w->pools.cap; i++) {
        pool_t *p = w->pools.slots[i].key ? w->pools.slots[i].value : NULL;
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
    for (size_t i = 0; i < w->pools.cap; i++) {
        pool_t *p = w->pools.slots[i].key ? w->pools.slots[i].value : NULL;
        if (!p) continue;
        while (!sl_list_empty(&p->idle)) uc_close(sl_container_of(p->idle.next, sl_upconn_t, link));
        free(p);
    }
    sl_map_free(&w->pools);
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
    uc->c = NULL;
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
    sl_client_t *c = uc->c;
    if (c) c->rq->ex.uc = NULL;
    uc->c = NULL;
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

void sl_upstream_abort(sl_client_t *c)
{
    attempt_end(c, SL_OUTCOME_ABORTED, -1);
    backoff_cancel(c);
    sl_upconn_t *uc = c->rq->ex.uc;
    if (!uc) return;
    c->rq->ex.uc = NULL;
    uc->c = NULL;
    uc->keepalive = 0;
    uc_close(uc);
}

/* ---- writing ---------------------------------------------------------------------------- */

static void on_uc_timer(uv_timer_t *t);
static void try_next_node(sl_client_t *c, const char *code, sl_outcome_t outcome);

/* Closes the accounting of the current attempt on ex->node (see sl_upstream_end). */
static void attempt_end(sl_client_t *c, sl_outcome_t outcome, double latency_ms)
{
    sl_exchange_t *ex = &c->rq->ex;
    if (!ex->attempt_open) return;
    ex->attempt_open = 0;
    sl_upstream_end(ex->route->upstream, ex->node, outcome, latency_ms);
}

static int is_idempotent(int method)
{
    switch (method) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_OPTIONS:
    case HTTP_TRACE:
    case HTTP_PUT:
    case HTTP_DELETE: return 1;
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
static uint64_t bounded(sl_upconn_t *uc, const sl_client_t *c, uint64_t ms)
{
    const sl_exchange_t *ex = &c->rq->ex;
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
    sl_client_t *c = uc->c;
    if (!c) return;
    uint64_t ms = c->rq->ex.req_complete && !uc->write_queued ? uc->read_timeout_ms : uc->send_timeout_ms;
    uv_timer_start(&uc->timer, on_uc_timer, bounded(uc, c, ms), 0);
}

static void on_uc_written(uv_write_t *req, int status)
{
    sl_wreq_t *wr = sl_container_of(req, sl_wreq_t, req);
    sl_upconn_t *uc = wr->owner;
    uc->write_queued -= wr->len;
    free(wr);
    if (uc->closing || !uc->c) return;
    if (status < 0) {
        /* The response may still arrive (an early answer); a read error will tell. */
        uc->keepalive = 0;
        return;
    }
    arm_timer(uc);
    if (uc->write_queued < SL_LOW_WATER) sl_client_upstream_drained(uc->c);
}

static void uc_write(sl_upconn_t *uc, const void *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    ssize_t queued = sl_stream_write((uv_stream_t *)&uc->tcp, &b, 1, uc, on_uc_written);
    if (queued < 0) uc->keepalive = 0; /* the read side reports the failure */
    else uc->write_queued += (size_t)queued;
}

void sl_upstream_send(sl_client_t *c, const void *p, size_t n)
{
    sl_exchange_t *ex = &c->rq->ex;
    sl_upconn_t *uc = ex->uc;
    if (!uc || !uc->connected) {
        sl_buf_append(&ex->prebuf, p, n);
        if (ex->prebuf.len > SL_HIGH_WATER) sl_client_pause_for_upstream(c);
        return;
    }
    if (ex->replayable) {
        if (ex->replay.len + n <= ex->replay_limit) {
            sl_buf_append(&ex->replay, p, n);
        } else {
            ex->replayable = 0;
            sl_buf_free(&ex->replay);
        }
    }
    ex->req_streamed = 1;
    uc_write(uc, p, n);
    arm_timer(uc); /* progress: the send timeout counts from the last bytes taken */
    if (uc->write_queued > SL_HIGH_WATER) sl_client_pause_for_upstream(c);
}

void sl_upstream_request_done(sl_client_t *c)
{
    sl_upconn_t *uc = c->rq->ex.uc;
    if (!uc || !uc->connected) return; /* armed once connected */
    c->rq->ex.t_sent_ns = sl_now_ns();
    arm_timer(uc);
}

void sl_upstream_client_drained(sl_client_t *c)
{
    /* Writes can complete after the exchange is over, on an idle connection. */
    sl_upconn_t *uc = c->rq ? c->rq->ex.uc : NULL;
    if (uc && uc->connected && !uc->reading && !uc->closing) uc_start_read(uc);
}

/* ---- response parsing ------------------------------------------------------------------- */

static void fail(sl_upconn_t *uc, int status, const char *code)
{
    sl_client_t *c = uc->c;
    uc->keepalive = 0;
    if (!c) {
        uc_close(uc);
        return;
    }
    attempt_end(c, status == 504 ? SL_OUTCOME_TIMEOUT : SL_OUTCOME_RESET, -1);
    sl_client_fail(c, status, code); /* aborts (closes) uc through sl_upstream_abort */
}

/* ---- retries ---------------------------------------------------------------------------- */

/* Waiting out the back-off before a retry. */
typedef struct sl_backoff {
    uv_timer_t timer;
    sl_client_t *c;
} sl_backoff_t;

static void connect_node(sl_client_t *c, int allow_pool);

static void on_backoff_closed(uv_handle_t *h)
{
    free(h->data);
}

static void backoff_cancel(sl_client_t *c)
{
    sl_backoff_t *b = c->rq->ex.backoff;
    if (!b) return;
    c->rq->ex.backoff = NULL;
    uv_close((uv_handle_t *)&b->timer, on_backoff_closed);
}

static void on_backoff(uv_timer_t *t)
{
    sl_backoff_t *b = t->data;
    sl_client_t *c = b->c;
    backoff_cancel(c);
    sl_exchange_t *ex = &c->rq->ex;
    ex->node = sl_upstream_pick(ex->route->upstream, ex->pick_key, ex->pick_key_len, ex->failed_node);
    if (!ex->node) {
        sl_client_fail(c, 503, "no_healthy_upstream");
        return;
    }
    connect_node(c, 1);
}

static sl_outcome_t try_outcome(sl_try_result_t r)
{
    switch (r) {
    case SL_TRY_CONNECT_FAILURE: return SL_OUTCOME_CONNECT_FAILURE;
    case SL_TRY_TIMEOUT: return SL_OUTCOME_TIMEOUT;
    case SL_TRY_STATUS: return SL_OUTCOME_FAILED_STATUS; /* already ended with its real outcome */
    default: return SL_OUTCOME_RESET;
    }
}

/* The try ended with r. When the route's retry policy wants it again and it can be sent again,
 * schedules the retry (another node where one is healthy, after the back-off) and returns 1.
 * Returns 0 when the policy does not cover r, -1 when it does but the retry cannot be made
 * (ex->retry_stop says why). */
static int retry(sl_client_t *c, sl_try_result_t r, int status, int grpc_status)
{
    sl_exchange_t *ex = &c->rq->ex;
    const sl_retry_cfg_t *rc = &ex->route->cfg->policies.retry;
    if (!rc->enabled || !sl_retry_wanted(rc, r, status, grpc_status)) return 0;
    uint64_t delay = sl_retry_backoff_ms(rc, (unsigned)ex->retries, sl_balancer_rand());
    if (ex->retries >= (int)rc->attempts) ex->retry_stop = "attempts_exhausted";
    else if (ex->req_streamed && !ex->replayable) ex->retry_stop = "body_too_large";
    else if (ex->deadline_ns && sl_now_ns() + delay * 1000000u >= ex->deadline_ns) ex->retry_stop = "route_timeout";
    else ex->retry_stop = NULL;
    if (ex->retry_stop) return -1;

    attempt_end(c, try_outcome(r), -1);
    sl_upstream_abort(c); /* closes the connection: a response may still be on its way */
    ex->retries++;
    ex->upstream_status = 0;
    if (ex->route->retries[r]) sl_series_add(ex->route->retries[r], c->w->index, 1);
    sl_log_debug("retry %d of %s %s (%s): %s", ex->retries, ex->route->svc->name, ex->route->cfg->name,
                 ex->node_name, sl_try_result_name(r));
    if (ex->req_streamed) {
        /* Everything sent is in replay; what the client sent since waits in prebuf, after it. */
        sl_buf_append(&ex->replay, ex->prebuf.data, ex->prebuf.len);
        sl_buf_free(&ex->prebuf);
        ex->prebuf = ex->replay;
        memset(&ex->replay, 0, sizeof(ex->replay));
        ex->req_streamed = 0;
    }
    ex->failed_node = ex->node;
    sl_backoff_t *b = sl_xmalloc(sizeof(*b));
    b->c = c;
    b->timer.data = b;
    uv_timer_init(&c->w->loop, &b->timer);
    uv_timer_start(&b->timer, on_backoff, delay, 0);
    ex->backoff = b;
    return 1;
}

/* The try ended with r and nothing for the client: retried, or the client gets status. */
static void try_failed(sl_client_t *c, sl_try_result_t r, int status, const char *code)
{
    if (retry(c, r, 0, -1) == 1) return;
    if (c->rq->ex.uc) fail(c->rq->ex.uc, status, code);
    else sl_client_fail(c, status, code);
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

/* The upstream took the WebSocket handshake: the client gets the 101, and the bytes after it
 * belong to the tunnel (on_uc_read). */
static int switching_protocols(sl_upconn_t *uc)
{
    sl_client_t *c = uc->c;
    sl_exchange_t *ex = &c->rq->ex;
    uc->head_done = 1;
    uc->upgraded = 1;
    ex->upstream_status = 101;
    ex->upstream_ms = (double)(sl_now_ns() - (ex->t_sent_ns ? ex->t_sent_ns : ex->t_start_ns)) / 1e6;
    attempt_end(c, SL_OUTCOME_OK, ex->upstream_ms);
    if (ex->route->upstream->latency)
        sl_series_observe(ex->route->upstream->latency, c->w->index, ex->upstream_ms / 1000.0);
    sl_tunnel_send_head(c, &uc->head);
    return 1; /* a 1xx has no body, whatever its headers say */
}

/* Hands uc's socket over to the client's tunnel: it leaves the exchange and never returns to
 * the pool; the tunnel closes it with sl_upstream_close_detached(). */
static uv_stream_t *uc_detach(sl_upconn_t *uc)
{
    uc->c->rq->ex.uc = NULL;
    uc->c = NULL;
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
    sl_client_t *c = uc->c;
    sl_exchange_t *ex = &c->rq->ex;
    int status = p->status_code;
    /* RFC 9110 15: a status is three digits from 100 to 599; anything else is no response. */
    if (status < 100 || status > 599 || !sl_head_names_valid(&uc->head)) return -1;
    if (sl_head_te_count(&uc->head, (p->flags & F_CHUNKED) != 0) < 0) return -1;
    if (status == 101 && ex->upgrade) return switching_protocols(uc);
    if (status < 200) {
        if (status == 101) return -1; /* no upgrade was asked for */
        ex->skip_interim = 1;         /* 100 Continue and friends: the client got ours */
        if (scan_body(uc, SL_SCAN_BODY_NONE, 0) < 0) return -1;
        return 1; /* a 1xx has no body, whatever its headers say */
    }
    ex->skip_interim = 0;
    uc->head_done = 1;
    ex->upstream_status = status;
    ex->upstream_ms = (double)(sl_now_ns() - (ex->t_sent_ns ? ex->t_sent_ns : ex->t_start_ns)) / 1e6;
    attempt_end(c, sl_health_status_fails(ex->route->upstream, status) ? SL_OUTCOME_FAILED_STATUS : SL_OUTCOME_OK,
                ex->upstream_ms);
    if (ex->route->upstream->latency)
        sl_series_observe(ex->route->upstream->latency, c->w->index, ex->upstream_ms / 1000.0);
    /* A retried response goes nowhere: the connection is dropped with it (uc->c is cleared). */
    if (retry(c, SL_TRY_STATUS, status, grpc_status(&uc->head)) == 1) return -1;
    int no_body = ex->method == HTTP_HEAD || status == 204 || status == 304;
    int has_length = (p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED);
    int kind = no_body ? SL_SCAN_BODY_NONE : (p->flags & F_CHUNKED) ? SL_SCAN_BODY_CHUNKED : SL_SCAN_BODY_LENGTH;
    /* Without a length the body ends with the connection (RFC 9112 6.3). */
    uint64_t length = kind != SL_SCAN_BODY_LENGTH ? 0 : has_length ? p->content_length : UINT64_MAX;
    if (scan_body(uc, kind, length) < 0) return -1;
    sl_client_send_response_head(c, &uc->head, status, has_length, no_body);
    uv_timer_start(&uc->timer, on_uc_timer, bounded(uc, c, uc->read_timeout_ms), 0);
    /* Returning 1 tells llhttp the response has no body whatever its headers say (RFC 9112
     * 6.3: HEAD, 204, 304): bytes after such a head are never body, and the connection that
     * sent them is not reused (on_uc_read). */
    return no_body ? 1 : 0;
}

static int on_resp_body(llhttp_t *p, const char *at, size_t n)
{
    sl_upconn_t *uc = p->data;
    if (!uc->c) return -1;
    sl_client_response_body(uc->c, at, n);
    return 0;
}

static int on_resp_complete(llhttp_t *p)
{
    sl_upconn_t *uc = p->data;
    sl_client_t *c = uc->c;
    if (!c) return -1;
    if (c->rq->ex.skip_interim) {
        c->rq->ex.skip_interim = 0;
        return 0;
    }
    uc->keepalive = llhttp_should_keep_alive(p) && c->rq->ex.req_complete;
    return HPE_PAUSED; /* anything after the response is a protocol error for a pooled connection */
}

static void on_uc_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    sl_upconn_t *uc = s->data;
    sl_client_t *c = uc->c;
    if (nread == 0) return;
    if (!c) {
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
                sl_client_response_done(c);
                return;
            }
            fail(uc, 502, "upstream_reset");
            return;
        }
        sl_exchange_t *ex = &c->rq->ex;
        if (uc->reused && !uc->got_bytes && ex->pool_replay && ex->replayable) {
            /* The pooled connection was closed under us before answering: send again on a fresh one. */
            sl_buf_t replay = ex->replay;
            memset(&ex->replay, 0, sizeof(ex->replay));
            ex->replayable = 0;
            sl_upstream_abort(c);
            sl_buf_free(&ex->prebuf);
            ex->prebuf = replay;
            ex->req_streamed = 0;
            sl_upstream_connect_fresh(c);
            return;
        }
        try_failed(c, SL_TRY_RESET, 502, "upstream_reset");
        return;
    }
    uc->got_bytes = 1;
    sl_client_batch_begin(c);
    llhttp_errno_t err = HPE_USER;
    ssize_t scanned = uc->upgraded ? nread : sl_h1_scan(&uc->scan, buf->base, (size_t)nread);
    if (scanned >= 0) {
        uc->scan_at = buf->base + scanned;
        uc->feed_end = buf->base + nread;
        err = llhttp_execute(&uc->parser, buf->base, (size_t)nread);
    }
    uc->scan_at = uc->feed_end = NULL;
    if (!uc->c) {
        sl_client_batch_end(c);
        return; /* failed or aborted inside a callback */
    }
    if (uc->upgraded && (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)) {
        /* After the 101: the rest of this read is already the tunnel's. */
        size_t used = (size_t)(llhttp_get_error_pos(&uc->parser) - buf->base);
        sl_client_batch_end(c); /* the 101 head goes first */
        if (uc->c) sl_tunnel_start(c, uc_detach(uc), buf->base + used, (size_t)nread - used);
        return;
    }
    if (err == HPE_PAUSED) {
        /* Bytes after the response would be answered to nobody: do not reuse such a connection. */
        if (llhttp_get_error_pos(&uc->parser) != buf->base + nread) uc->keepalive = 0;
        uc_release(uc);
        sl_client_response_done(c);
        sl_client_batch_end(c);
        return;
    }
    sl_client_batch_end(c);
    if (err != HPE_OK) {
        const char *why = scanned < 0 ? "framing" : llhttp_get_error_reason(&uc->parser);
        sl_log_debug("upstream %s: bad response: %s", c->rq->ex.node_name, why ? why : "?");
        if (uc->head_done) fail(uc, 502, "upstream_bad_response");
        else try_failed(c, SL_TRY_BAD_RESPONSE, 502, "upstream_bad_response");
        return;
    }
    if (uc->head_done) uv_timer_start(&uc->timer, on_uc_timer, bounded(uc, c, uc->read_timeout_ms), 0);
    if (c->write_queued > SL_HIGH_WATER) {
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
    if (!uc->c) return;
    if (uc->deadline_timer) fail(uc, 504, "route_timeout"); /* the timeout policy */
    else if (!uc->connected) try_next_node(uc->c, "upstream_connect_failed", SL_OUTCOME_CONNECT_FAILURE);
    else if (!uc->head_done) try_failed(uc->c, SL_TRY_TIMEOUT, 504, "upstream_timeout");
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

/* Attaches uc to c and sends what has been prepared. */
static void uc_attach_ready(sl_client_t *c, sl_upconn_t *uc)
{
    sl_exchange_t *ex = &c->rq->ex;
    /* A pooled connection serves whichever service and generation uses the address next. */
    uc_configure(uc, ex->route->upstream->cfg);
    uc->c = c;
    ex->uc = uc;
    llhttp_init(&uc->parser, HTTP_RESPONSE, &up_settings);
    uc->parser.data = uc;
    scan_restart(uc);
    uc->got_bytes = 0;
    uc->head_done = 0;
    uc->keepalive = 1;
    /* Unasked, only an idempotent request may be sent twice (RFC 9110 9.2.2): the upstream may
     * have acted on it before the pooled connection failed. A retry policy asks for it. */
    ex->pool_replay = uc->reused && is_idempotent(ex->method);
    ex->replayable = ex->pool_replay || ex->route->cfg->policies.retry.enabled;
    sl_buf_free(&ex->replay);
    sl_buf_t pre = ex->prebuf;
    memset(&ex->prebuf, 0, sizeof(ex->prebuf));
    sl_upstream_send(c, pre.data, pre.len);
    sl_buf_free(&pre);
    if (ex->req_complete) ex->t_sent_ns = sl_now_ns();
    uc_start_read(uc);
    arm_timer(uc);
    sl_client_upstream_drained(c);
}

static void on_connected(uv_connect_t *req, int status)
{
    sl_upconn_t *uc = req->data;
    sl_client_t *c = uc->c;
    if (uc->closing || !c) return;
    if (status < 0) {
        sl_log_debug("upstream %s: connect failed: %s", c->rq->ex.node_name, uv_strerror(status));
        try_next_node(c, "upstream_connect_failed", SL_OUTCOME_CONNECT_FAILURE);
        return;
    }
    uc->connected = 1;
    c->rq->ex.upstream_connect_ms = (double)(sl_now_ns() - c->rq->ex.connect_start_ns) / 1e6;
    uv_tcp_nodelay(&uc->tcp, 1);
    uc->c = NULL; /* re-attached below */
    c->rq->ex.uc = NULL;
    uc_attach_ready(c, uc);
}

static void uc_connect(sl_client_t *c, const struct sockaddr_storage *addr, pool_t *pool)
{
    const sl_upstream_cfg_t *cfg = c->rq->ex.route->upstream->cfg;
    sl_upconn_t *uc = sl_xcalloc(1, sizeof(*uc));
    uc->w = c->w;
    uc->pool = pool;
    sl_list_init(&uc->link);
    uc_configure(uc, cfg);
    uv_tcp_init(&c->w->loop, &uc->tcp);
    uv_timer_init(&c->w->loop, &uc->timer);
    uc->tcp.data = uc->timer.data = uc->creq.data = uc;
    uc->handles_open = 2;
    uc->c = c;
    c->rq->ex.uc = uc;
    c->rq->ex.connect_start_ns = sl_now_ns();
    c->rq->ex.connect_tried = 1;
    c->rq->ex.upstream_connect_ms = -1; /* until it connects */
    int rc = uv_tcp_connect(&uc->creq, &uc->tcp, (const struct sockaddr *)addr, on_connected);
    if (rc != 0) {
        sl_log_debug("upstream %s: connect: %s", c->rq->ex.node_name, uv_strerror(rc));
        try_next_node(c, "upstream_connect_failed", SL_OUTCOME_CONNECT_FAILURE);
        return;
    }
    uv_timer_start(&uc->timer, on_uc_timer, bounded(uc, c, cfg->connect_timeout_ms), 0);
}

/* Connects to the exchange's current node, from the pool when a connection is idle there. */
static void connect_node(sl_client_t *c, int allow_pool)
{
    sl_exchange_t *ex = &c->rq->ex;
    struct sockaddr_storage addr;
    const sl_retry_cfg_t *rc = &ex->route->cfg->policies.retry;
    ex->node_name = ex->node->name;
    ex->try_deadline_ns = rc->enabled && rc->per_try_timeout_ms ? sl_now_ns() + rc->per_try_timeout_ms * 1000000u : 0;
    sl_upstream_begin(ex->route->upstream, ex->node);
    ex->attempt_open = 1;
    if (sl_node_addr(ex->node, &addr) != 0) {
        try_next_node(c, "upstream_unresolved", SL_OUTCOME_CONNECT_FAILURE);
        return;
    }
    pool_t *pool = pool_get(c->w, &addr);
    /* A WebSocket handshake gets a connection of its own: it may become a tunnel. */
    sl_upconn_t *uc = allow_pool && !ex->upgrade ? pool_take(pool) : NULL;
    if (uc) {
        uc->reused = 1;
        ex->connect_tried = 1;
        ex->upstream_connect_ms = 0;
        uc_attach_ready(c, uc);
        return;
    }
    uc_connect(c, &addr, pool);
}

static void try_next_node(sl_client_t *c, const char *code, sl_outcome_t outcome)
{
    sl_exchange_t *ex = &c->rq->ex;
    attempt_end(c, outcome, -1);
    /* A retry policy covering connect failures decides; otherwise every node gets one try. */
    int r = retry(c, SL_TRY_CONNECT_FAILURE, 0, -1);
    if (r == 1) return;
    if (ex->uc) sl_upstream_abort(c);
    if (r < 0) {
        sl_client_fail(c, 502, code);
        return;
    }
    sl_upstream_t *up = ex->route->upstream;
    /* Nothing has left the gateway yet (the request waits in prebuf), so another node is safe. */
    if (++ex->tries >= (int)up->n_nodes || ex->req_streamed) {
        sl_client_fail(c, 502, code);
        return;
    }
    ex->failed_node = ex->node;
    ex->node = sl_upstream_pick(up, ex->pick_key, ex->pick_key_len, ex->failed_node);
    if (!ex->node) {
        sl_client_fail(c, 503, "no_healthy_upstream");
        return;
    }
    connect_node(c, 1);
}

void sl_upstream_connect_fresh(sl_client_t *c)
{
    connect_node(c, 0);
}

void sl_upstream_start(sl_client_t *c)
{
    settings_init();
    sl_exchange_t *ex = &c->rq->ex;
    uint64_t limit = sl_policy_deadline_ms(ex->route);
    if (limit) ex->deadline_ns = ex->t_start_ns + limit * 1000000u;
    /* Bytes kept to send again: the head (all of prebuf now) and, for a retry policy, the body up
     * to its body_buffer. */
    const sl_retry_cfg_t *rc = &ex->route->cfg->policies.retry;
    ex->replay_limit = rc->enabled ? ex->prebuf.len + rc->body_buffer : SL_REPLAY_MAX;
    if (!ex->node) ex->node = sl_upstream_pick(ex->route->upstream, ex->pick_key, ex->pick_key_len, NULL);
    if (!ex->node) {
        sl_client_fail(c, 503, "no_healthy_upstream");
        return;
    }
    connect_node(c, 1);
}
