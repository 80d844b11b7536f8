/* The one exchange state machine, whatever codec read the request or forwards it: route, the
 * request phase (request id, request policies, the WebSocket check), the node pick, the tries
 * (connect failover, the retry policy, its back-off, the route's deadline and per-try timeout)
 * over an upstream client (sl_http_client_ops_t), the response phase (response.c) and the log.
 * Nothing here knows a wire format. */
#include "http/proxy.h"
#include "base/common.h"
#include "base/log.h"
#include "base/random.h"
#include "base/time.h"
#include "http/response.h"
#include "observe/access_log.h"
#include "policy/policy.h"
#include "upstream/balancer.h"
#include "observe/metrics.h"
#include "upstream/health.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

uint64_t (*sl_proxy_clock)(void) = sl_now_ns;

static const sl_gateway_cfg_t *gw(const sl_exchange_t *ex)
{
    return &ex->gen->cfg->gateway;
}

/* ---- the request phase ------------------------------------------------------------------ */

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
static void request_id_begin(sl_exchange_t *ex)
{
    const sl_request_id_cfg_t *rc = ex->route && ex->route->cfg->request_id.set ? &ex->route->cfg->request_id
                                                                                 : &gw(ex)->request_id;
    ex->request_id_len = 0;
    ex->request_id_cfg = rc->enabled ? rc : NULL;
    if (!rc->enabled) return;
    if (rc->incoming == SL_REQUEST_ID_KEEP) {
        size_t n = 0;
        const char *v = sl_http_log_header(&ex->req.hdrs, rc->header, rc->header_len, &n);
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

void sl_proxy_count(sl_exchange_t *ex)
{
    if (ex->counted) return;
    ex->counted = 1;
    sl_generation_count_request(ex->gen, ex->route, ex->status, ex->w->index);
}

void sl_proxy_log(sl_exchange_t *ex)
{
    sl_proxy_count(ex); /* an exchange that ended without a response head */

    sl_access_log_t *log = ex->gen ? sl_generation_access_log(ex->gen) : NULL;
    if (!log) return;
    sl_access_entry_t e = {
        .time_unix_ms = ex->start_unix_ms,
        .client = ex->peer,
        .client_port = ex->peer_port,
        .method = ex->req.method,
        .host = ex->host_len ? ex->host : NULL,
        .host_len = ex->host_len,
        .path = ex->req.target ? ex->req.target : "",
        .path_len = ex->req.target_len,
        .http_minor = ex->req.http_minor,
        .status = ex->status,
        .bytes_in = ex->bytes_in,
        .bytes_out = ex->bytes_out,
        .route = ex->route ? ex->route->cfg->name : NULL,
        .service = ex->route ? ex->route->svc->name : NULL,
        .upstream = ex->node_name,
        .upstream_status = ex->upstream_status,
        .duration_ms = (double)(sl_proxy_clock() - ex->t_start_ns) / 1e6,
        .upstream_ms = ex->upstream_status ? ex->upstream_ms : -1,
        .upstream_connect_ms = ex->connect_tried ? ex->upstream_connect_ms : -1,
        .error = ex->error,
        .retries = ex->retries,
        .retry_stop = ex->retry_stop,
        .tags = ex->route ? ex->route->cfg->tags : NULL,
        .n_tags = ex->route ? ex->route->cfg->n_tags : 0,
        .request_id = ex->request_id_len ? ex->request_id : NULL,
        .request_id_len = ex->request_id_len,
        .header = sl_http_log_header,
        .header_ctx = &ex->req.hdrs,
        .response_header = log_response_header,
        .response_header_ctx = ex->resp_log,
    };
    if (ex->route) sl_policy_on_log(ex->route, &ex->policy, &e);
    sl_access_buf_write(&ex->w->alog, log, &ex->gen->cfg->gateway.access_log.fmt, &e, uv_now(&ex->w->loop));
}

/* The client address gateway.proxy_layers hops from the right of X-Forwarded-For (all such
 * headers, in order), or the peer's when there are fewer hops. */
static void client_address(const sl_exchange_t *ex, const char **out, size_t *out_len)
{
    const sl_http_hdrs_t *h = &ex->req.hdrs;
    int layers = gw(ex)->proxy_layers;
    *out = ex->peer;
    *out_len = strlen(ex->peer);
    if (layers <= 0) return;
    /* Walk the entries from the right: the last header first, each from its end. */
    int seen = 0;
    for (size_t i = h->n; i-- > 0;) {
        const sl_http_hdr_t *x = &h->v[i];
        if (!SL_HDR_IS(x, "x-forwarded-for")) continue;
        const char *v = x->value;
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
static int find_cookie(const sl_http_hdrs_t *h, const char *name, const char **out, size_t *out_len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < h->n; i++) {
        const sl_http_hdr_t *x = &h->v[i];
        if (!SL_HDR_IS(x, "cookie")) continue;
        const char *v = x->value, *end = v + x->value_len;
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
    if (!ex->req.query) return 0;
    const char *end = ex->req.query + ex->req.query_len;
    size_t nl = strlen(name);
    for (const char *p = ex->req.query + 1; p < end;) {
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
static void balancer_key(sl_exchange_t *ex)
{
    const sl_http_hdrs_t *h = &ex->req.hdrs;
    const sl_upstream_cfg_t *u = ex->route->upstream->cfg;
    const char *k = NULL;
    size_t n = 0;
    if (u->balance == SL_BALANCE_COOKIE) {
        if (!find_cookie(h, u->cookie.name, &k, &n)) k = NULL;
        /* No cookie yet: issue one naming the node chosen, so the client sticks from now on. */
        ex->issue_cookie = !k && u->cookie.ttl_ms > 0;
    } else if (u->balance == SL_BALANCE_HASH) {
        switch (u->hash.on) {
        case SL_HASH_IP: client_address(ex, &k, &n); break;
        case SL_HASH_HEADER: {
            long i = sl_http_hdrs_find(h, u->hash.key, strlen(u->hash.key), 0);
            if (i >= 0) {
                k = h->v[i].value;
                n = h->v[i].value_len;
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

/* The request for the upstream, as a header vector in the exchange's arena: the client's
 * fields without hop-by-hop, framing and forwarding ones, then the gateway's (Host,
 * X-Forwarded-*, X-Real-IP, the request id), then what the route's policies change. */
static void build_upstream_request(sl_exchange_t *ex, sl_http_req_t *up)
{
    sl_arena_t *a = ex->arena;
    const sl_http_hdrs_t *h = &ex->req.hdrs;
    const sl_http_hdr_t *host = NULL;
    size_t xff_len = 0, n_xff = 0;
    for (uint32_t i = 0; i < h->n; i++) {
        const sl_http_hdr_t *x = &h->v[i];
        if (SL_HDR_IS(x, "host")) host = x;
        if (SL_HDR_IS(x, "x-forwarded-for")) {
            xff_len += x->value_len + 2;
            n_xff++;
        }
    }
    *up = ex->req;
    memset(&up->hdrs, 0, sizeof(up->hdrs));
    up->upgrade = ex->upgrade;
    up->keepalive = ex->route->upstream->cfg->keepalive_max_idle != 0;
    /* Host: the absolute-form authority, else the client's, else (HTTP/1.0) the node's. */
    const char *hv = ex->req.authority;
    size_t hn = ex->req.authority_len;
    if (!hv && host) {
        hv = host->value;
        hn = host->value_len;
    }
    if (hv) sl_http_hdrs_add(&up->hdrs, a, "Host", 4, hv, hn);
    else sl_http_hdrs_add(&up->hdrs, a, "Host", 4, ex->node->name, strlen(ex->node->name));
    const sl_request_id_cfg_t *rc = ex->request_id_cfg;
    for (uint32_t i = 0; i < h->n; i++) {
        const sl_http_hdr_t *x = &h->v[i];
        if (x == host || sl_http_hdrs_hop_by_hop(h, x) || SL_HDR_IS(x, "expect") || SL_HDR_IS(x, "x-forwarded-for") ||
            SL_HDR_IS(x, "x-forwarded-proto") || SL_HDR_IS(x, "x-forwarded-host") || SL_HDR_IS(x, "x-real-ip") ||
            SL_HDR_IS(x, "content-length") || (rc && sl_http_hdr_is(x, rc->header, rc->header_len)))
            continue;
        sl_http_hdrs_add(&up->hdrs, a, x->name, x->name_len, x->value, x->value_len);
    }
    /* The client's X-Forwarded-For entries, in order, then the peer. */
    size_t pl = strlen(ex->peer);
    char *xff = sl_arena_alloc(a, xff_len + pl + 1), *o = xff;
    for (uint32_t i = 0; n_xff && i < h->n; i++) {
        const sl_http_hdr_t *x = &h->v[i];
        if (!SL_HDR_IS(x, "x-forwarded-for")) continue;
        memcpy(o, x->value, x->value_len);
        o += x->value_len;
        *o++ = ',';
        *o++ = ' ';
    }
    memcpy(o, ex->peer, pl);
    o += pl;
    sl_http_hdrs_add(&up->hdrs, a, "X-Forwarded-For", 15, xff, (size_t)(o - xff));
    sl_http_hdrs_add(&up->hdrs, a, "X-Forwarded-Proto", 17, "http", 4);
    if (hv) sl_http_hdrs_add(&up->hdrs, a, "X-Forwarded-Host", 16, hv, hn);
    sl_http_hdrs_add(&up->hdrs, a, "X-Real-IP", 9, ex->peer, pl);
    if (ex->request_id_len) sl_http_hdrs_add(&up->hdrs, a, rc->header, rc->header_len, ex->request_id, ex->request_id_len);
    /* request_headers may set any of the fields the gateway writes itself: then theirs wins. */
    if (ex->route->chain.n) sl_policy_on_upstream_request(ex->route, up, a);
}

/* A request with "Upgrade: websocket" (RFC 6455 4.1): passed on only where the route has the
 * websocket policy, and only as a GET without a body over HTTP/1.1 that asks for the upgrade
 * with "Connection: upgrade". Other upgrades (h2c) are proxied as plain HTTP/1.1. */
static void websocket_check(sl_exchange_t *ex)
{
    if (!sl_http_hdrs_has_token(&ex->req.hdrs, "upgrade", "websocket")) return;
    if (!sl_policy_websocket_idle_ms(ex->route)) {
        ex->refused_status = 403;
        ex->refused_code = "websocket_not_allowed";
    } else if (ex->req.method_id != SL_HTTP_GET || ex->req.body != SL_HTTP_BODY_NONE || ex->req.http_minor < 1 || !ex->req.upgrade) {
        ex->refused_status = 400;
        ex->refused_code = "bad_websocket_request";
    } else {
        ex->upgrade = 1;
    }
}

/* The node for the next try: the balancer's pick, avoiding every node this request tried while
 * another candidate is left (upstream.h). The one place a node is chosen. */
static sl_node_t *pick(sl_exchange_t *ex)
{
    sl_upstream_t *up = ex->route->upstream;
    sl_node_t *n = sl_upstream_pick_untried(up, ex->pick_key, ex->pick_key_len, &ex->tried);
    if (n) sl_tried_add(&ex->tried, up, n);
    return n;
}

int sl_proxy_begin(sl_exchange_t *ex)
{
    ex->route = sl_router_match(ex->gen->router, ex->host ? ex->host : "", ex->host_len, ex->req.path, ex->req.path_len,
                                sl_method_bit(ex->req.method, strlen(ex->req.method)));
    request_id_begin(ex);
    ex->policy.req = &ex->req;
    if (ex->route && ex->route->chain.n) {
        /* Request policies (ip_access, local_rate_limit) may refuse it before anything goes upstream. */
        sl_policy_req_t pr = {.peer = ex->peer, .req = &ex->req, .state = &ex->policy};
        client_address(ex, &pr.remote, &pr.remote_len);
        ex->refused_status = sl_policy_on_request(ex->route, &pr, &ex->refused_code);
    }
    if (ex->route && !ex->refused_status) websocket_check(ex);
    if (!ex->route || !ex->route->upstream || ex->refused_status) return 1;
    balancer_key(ex);
    sl_tried_init(&ex->tried, ex->route->upstream->n_nodes);
    ex->node = pick(ex);
    if (!ex->node) {
        /* No node healthy and the upstream says on_all_unhealthy: reject, before the body is read. */
        sl_proxy_fail(ex, 503, "no_healthy_upstream");
        return -1;
    }
    build_upstream_request(ex, &ex->up);
    uint64_t limit = sl_policy_deadline_ms(ex->route);
    if (limit) ex->deadline_ns = ex->t_start_ns + limit * 1000000u;
    /* The upstream's codec: HTTP/1.1 for every scheme served today (one chosen already, by a
     * test, is kept). */
    if (!ex->cops) ex->cops = &sl_h1_client_ops;
    return 0;
}

void sl_proxy_answer_local(sl_exchange_t *ex)
{
    const sl_direct_response_cfg_t *d = ex->route ? ex->route->cfg->direct_response : NULL;
    if (ex->refused_status && !ex->refused_code) sl_http_respond_local(ex, ex->refused_status, NULL, 0, NULL, NULL, 0);
    else if (ex->refused_status) sl_http_respond_error(ex, ex->refused_status, ex->refused_code);
    else if (!ex->route) sl_http_respond_error(ex, 404, "no_route");
    else if (d) sl_http_respond_local(ex, d->status, d->headers, d->n_headers, NULL, d->body, d->body_len);
    else sl_http_respond_error(ex, 502, "no_upstream");
    ex->sops->end(ex->stream);
}

/* ---- tries ------------------------------------------------------------------------------- */

/* Starts a try on ex->node: its accounting, its per-try deadline, the client. */
static void try_start(sl_exchange_t *ex, int fresh)
{
    const sl_retry_cfg_t *rc = sl_retry_settings(ex->route);
    ex->node_name = ex->node->name;
    ex->try_deadline_ns = rc && rc->per_try_timeout_ms ? sl_proxy_clock() + rc->per_try_timeout_ms * 1000000u : 0;
    sl_upstream_begin(ex->route->upstream, ex->node);
    ex->attempt_open = 1;
    ex->cops->start(ex, fresh);
}

void sl_proxy_start(sl_exchange_t *ex)
{
    try_start(ex, 0);
}

void sl_proxy_attempt_end(sl_exchange_t *ex, sl_outcome_t outcome, double latency_ms)
{
    if (!ex->attempt_open) return;
    ex->attempt_open = 0;
    sl_upstream_end(ex->route->upstream, ex->node, outcome, latency_ms);
}

/* Waiting out the back-off before a retry. */
typedef struct sl_backoff {
    uv_timer_t timer;
    sl_exchange_t *ex;
} sl_backoff_t;

static void on_backoff_closed(uv_handle_t *h)
{
    free(h->data);
}

static void backoff_cancel(sl_exchange_t *ex)
{
    sl_backoff_t *b = ex->backoff;
    if (!b) return;
    ex->backoff = NULL;
    uv_close((uv_handle_t *)&b->timer, on_backoff_closed);
}

static void on_backoff(uv_timer_t *t)
{
    sl_backoff_t *b = t->data;
    sl_exchange_t *ex = b->ex;
    backoff_cancel(ex);
    ex->node = pick(ex);
    if (!ex->node) {
        sl_proxy_fail(ex, 503, "no_healthy_upstream");
        return;
    }
    try_start(ex, 0);
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
static int retry(sl_exchange_t *ex, sl_try_result_t r, int status, int grpc_status)
{
    const sl_retry_cfg_t *rc = sl_retry_settings(ex->route);
    if (!rc || !sl_retry_wanted(rc, r, status, grpc_status)) return 0;
    uint64_t delay = sl_retry_backoff_ms(rc, (unsigned)ex->retries, sl_balancer_rand());
    if (ex->retries >= (int)rc->attempts) ex->retry_stop = "attempts_exhausted";
    else if (ex->req_streamed && !ex->replayable) ex->retry_stop = "body_too_large";
    else if (ex->deadline_ns && sl_proxy_clock() + delay * 1000000u >= ex->deadline_ns) ex->retry_stop = "route_timeout";
    else ex->retry_stop = NULL;
    if (ex->retry_stop) return -1;

    sl_proxy_attempt_end(ex, try_outcome(r), -1);
    /* Closes the connection (a response may still be on its way), keeping what was sent. */
    ex->cops->cancel(ex, 1);
    ex->retries++;
    ex->upstream_status = 0;
    sl_retry_count(ex->route, r, ex->w->index);
    sl_log_debug("retry %d of %s %s (%s): %s", ex->retries, ex->route->svc->name, ex->route->cfg->name,
                 ex->node_name, sl_try_result_name(r));
    sl_backoff_t *b = sl_xmalloc(sizeof(*b));
    b->ex = ex;
    b->timer.data = b;
    uv_timer_init(&ex->w->loop, &b->timer);
    uv_timer_start(&b->timer, on_backoff, delay, 0);
    ex->backoff = b;
    return 1;
}

void sl_proxy_on_connected(sl_exchange_t *ex, double connect_ms)
{
    ex->connect_tried = 1;
    ex->upstream_connect_ms = connect_ms;
}

void sl_proxy_on_connect_failed(sl_exchange_t *ex, const char *code)
{
    sl_proxy_attempt_end(ex, SL_OUTCOME_CONNECT_FAILURE, -1);
    /* A retry policy covering connect failures decides; otherwise every node gets one try. */
    int r = retry(ex, SL_TRY_CONNECT_FAILURE, 0, -1);
    if (r == 1) return;
    if (r < 0) {
        sl_proxy_fail(ex, 502, code);
        return;
    }
    sl_upstream_t *up = ex->route->upstream;
    /* Nothing has left the gateway yet (the client holds the request), so another node is safe. */
    if (++ex->tries >= (int)up->n_nodes || ex->req_streamed) {
        sl_proxy_fail(ex, 502, code);
        return;
    }
    ex->cops->cancel(ex, 1);
    ex->node = pick(ex);
    if (!ex->node) {
        sl_proxy_fail(ex, 503, "no_healthy_upstream");
        return;
    }
    try_start(ex, 0);
}

void sl_proxy_on_try_failed(sl_exchange_t *ex, sl_try_result_t r, int status, const char *code)
{
    if (retry(ex, r, 0, -1) == 1) return;
    sl_proxy_on_failed(ex, status, code);
}

void sl_proxy_on_failed(sl_exchange_t *ex, int status, const char *code)
{
    sl_proxy_attempt_end(ex, status == 504 ? SL_OUTCOME_TIMEOUT : SL_OUTCOME_RESET, -1);
    sl_proxy_fail(ex, status, code);
}

void sl_proxy_on_pool_closed(sl_exchange_t *ex)
{
    sl_proxy_attempt_end(ex, SL_OUTCOME_ABORTED, -1);
    ex->cops->cancel(ex, 1);
    try_start(ex, 1);
}

/* ---- the response ------------------------------------------------------------------------ */

int sl_proxy_on_head(sl_exchange_t *ex, sl_http_resp_t *resp, int grpc_status)
{
    ex->upstream_status = resp->status;
    ex->upstream_ms = (double)(sl_proxy_clock() - (ex->t_sent_ns ? ex->t_sent_ns : ex->t_start_ns)) / 1e6;
    sl_outcome_t outcome = resp->status != 101 && sl_health_status_fails(ex->route->upstream, resp->status)
                               ? SL_OUTCOME_FAILED_STATUS
                               : SL_OUTCOME_OK;
    sl_proxy_attempt_end(ex, outcome, ex->upstream_ms);
    if (ex->route->upstream->latency)
        sl_series_observe(ex->route->upstream->latency, ex->w->index, ex->upstream_ms / 1000.0);
    /* A retried response goes nowhere: the connection is dropped with it. */
    if (resp->status != 101 && retry(ex, SL_TRY_STATUS, resp->status, grpc_status) == 1) return -1;
    sl_http_respond(ex, resp);
    return 0;
}

int sl_proxy_on_body(sl_exchange_t *ex, const char *p, size_t n)
{
    return n ? ex->sops->send_body(ex->stream, p, n) : 0;
}

void sl_proxy_on_trailers(sl_exchange_t *ex, const sl_http_hdrs_t *trailers)
{
    SL_UNUSED(trailers);
    ex->sops->end(ex->stream);
}

void sl_proxy_on_upstream_drained(sl_exchange_t *ex)
{
    ex->sops->resume(ex->stream);
}

/* ---- for the server codec ----------------------------------------------------------------- */

int sl_proxy_body(sl_exchange_t *ex, const char *p, size_t n, int last)
{
    if (!ex->cops || ex->resp_complete) return 0;
    return ex->cops->write_body(ex, p, n, last);
}

void sl_proxy_stream_drained(sl_exchange_t *ex)
{
    if (ex->cops) ex->cops->resume(ex);
}

void sl_proxy_release(sl_exchange_t *ex)
{
    sl_proxy_attempt_end(ex, SL_OUTCOME_ABORTED, -1);
    backoff_cancel(ex);
    if (ex->cops) ex->cops->cancel(ex, 0);
    sl_tried_free(&ex->tried);
}

void sl_proxy_fail(sl_exchange_t *ex, int status, const char *code)
{
    sl_proxy_attempt_end(ex, SL_OUTCOME_ABORTED, -1);
    backoff_cancel(ex);
    if (ex->cops) ex->cops->cancel(ex, 1);
    if (ex->head_sent) {
        /* Part of the response is out: all that is left is to cut the stream. */
        ex->sops->reset(ex->stream, code);
        return;
    }
    sl_http_respond_error(ex, status, code);
    ex->sops->end(ex->stream);
}
