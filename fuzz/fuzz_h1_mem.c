/* libFuzzer target: the HTTP/1.1 server codec, the proxy and the response writer in memory, no
 * sockets. The input is one client connection's bytes (in two reads, split at a point the first
 * byte chooses, then EOF); responses go nowhere (writes are taken whole) and the upstream is a
 * fake client (sl_http_client_ops_t) that answers each forwarded request once its body is in,
 * outside the parser, as a real upstream would. Pipelining, bodies, the smuggling checks, the
 * policies and local answers all run; only the sockets are missing.
 *
 * h1_conn.c is compiled into this file so that its writes can be redirected (sl_stream_write)
 * and the proxy handed the fake client (sl_proxy_begin); the library's copy is then not linked. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "base/log.h"
#include "config/config.h"
#include "runtime/generation.h"
#include "runtime/server.h"
#include "runtime/worker.h"

#define sl_stream_write fuzz_stream_write
#define sl_proxy_begin fuzz_proxy_begin
#include "../src/http/h1_conn.c"
#undef sl_stream_write
#undef sl_proxy_begin

int sl_proxy_begin(sl_exchange_t *ex);

ssize_t fuzz_stream_write(uv_stream_t *s, const uv_buf_t *bufs, unsigned n, void *owner, uv_write_cb cb)
{
    (void)s;
    (void)bufs;
    (void)n;
    (void)owner;
    (void)cb;
    return 0; /* all of it went out */
}

/* ---- the fake upstream --------------------------------------------------------------------- */

static sl_exchange_t *pending; /* forwarded, waiting for its answer */
static int pending_last;

static void f_start(sl_exchange_t *ex, int fresh)
{
    (void)fresh;
    pending = ex;
}

static int f_write(sl_exchange_t *ex, const char *p, size_t n, int last)
{
    (void)ex;
    (void)p;
    (void)n;
    if (last) pending_last = 1;
    return 0;
}

static void f_cancel(sl_exchange_t *ex, int again)
{
    (void)again;
    if (pending == ex) {
        pending = NULL;
        pending_last = 0;
    }
}

static void f_resume(sl_exchange_t *ex)
{
    (void)ex;
}

static const sl_http_client_ops_t fake_client = {f_start, f_write, f_cancel, f_resume};

int fuzz_proxy_begin(sl_exchange_t *ex)
{
    ex->cops = &fake_client;
    return sl_proxy_begin(ex);
}

/* Answers the pending exchange: a 200 with fields the response policies act on and a body of
 * unknown length (chunked to the client). Retries are proxy.c's unit tests' business: their
 * back-off would make every input wait. */
static void answer(void)
{
    sl_exchange_t *ex = pending;
    pending = NULL;
    pending_last = 0;
    sl_http_resp_t r = {.status = 200, .content_length = -1};
    sl_http_hdrs_add(&r.hdrs, ex->arena, "Set-Cookie", 10, "s=1; Path=/a", 12);
    sl_http_hdrs_add(&r.hdrs, ex->arena, "X-RateLimit-Limit", 17, "99", 2);
    sl_http_hdrs_add(&r.hdrs, ex->arena, "Server", 6, "up", 2);
    if (sl_proxy_on_head(ex, &r, -1) < 0) return;
    sl_proxy_on_body(ex, "hello", 5);
    sl_proxy_on_trailers(ex, NULL);
}

/* ---- the connection ------------------------------------------------------------------------- */

static sl_worker_t w;

static void setup(void)
{
    sl_log_set_level(SL_LOG_ERROR);
    const char *yaml =
        "gateway: {workers: 1, http: {listen: [\"127.0.0.1:1\"], max_header_bytes: 4096, max_uri_bytes: 1024,"
        " max_headers: 20}, access_log: {path: off}}\n"
        "services:\n"
        "  - name: up\n"
        "    upstream: {nodes: [{address: \"127.0.0.1:1\"}, {address: \"127.0.0.1:2\"}], balance: cookie, cookie: {name: sid, ttl: 1h}}\n"
        "    routes:\n"
        "      - name: p\n"
        "        paths: [\"/p\", \"/p/*\"]\n"
        "        hosts: [\"a.example\", \"*.b.example\"]\n"
        "        policies:\n"
        "          path_rewrite: {prefix: /p, replace: /q}\n"
        "          request_headers: {set: {X-Env: f}, remove: [X-Debug]}\n"
        "          response_headers: {set: {X-Frame-Options: DENY}, remove: [Server]}\n"
        "          local_rate_limit: {requests: 1000000, per: second, header: ratelimit}\n"
        "          retry: {attempts: 1, on: [5xx], backoff: {base: 1ms, max: 1ms}}\n"
        "          cookie_rewrite: [{name: s, path: /, secure: true}]\n"
        "      - {name: w, paths: [\"/w\"], policies: {websocket: {idle_timeout: 1s}}}\n"
        "      - {name: deny, paths: [\"/deny\"], policies: {ip_access: {deny: [127.0.0.0/8], source: peer}}}\n"
        "  - name: local\n"
        "    routes: [{name: d, paths: [\"/*\"], direct_response: {status: 200, body: \"hi\"}}]\n";
    sl_config_t *cfg = NULL;
    sl_config_errors_t errs = {0};
    if (sl_config_load_buffer("fuzz.yaml", yaml, strlen(yaml), &cfg, &errs) != 0) {
        char line[SL_CONFIG_ERROR_TEXT_MAX];
        for (size_t i = 0; i < errs.n; i++) fprintf(stderr, "%s\n", sl_config_errors_text(&errs, i, line));
        abort();
    }
    sl_server_metrics_init();
    w.gen = sl_generation_create(cfg, &errs);
    if (!w.gen) abort();
    uv_loop_init(&w.loop);
    sl_h1_worker_init(&w);
    settings_init();
}

/* A connection as sl_h1_accept makes one, without the socket. */
static sl_client_t *connection(void)
{
    sl_client_t *c = sl_xcalloc(1, sizeof(*c));
    c->w = &w;
    uv_tcp_init(&w.loop, &c->tcp);
    c->tcp.data = c;
    sl_list_init(&c->tlink);
    snprintf(c->peer_ip, sizeof(c->peer_ip), "127.0.0.1");
    c->peer_port = 40000;
    c->keepalive = 1;
    c->state = SL_C_HEAD;
    sl_list_push(&sl_h1w(&w)->clients, &c->link);
    sl_h1w(&w)->n_clients++;
    sl_series_add(sl_metrics.connections_active, w.index, 1);
    timer_set(c, SL_TQ_HEADER, gw(c)->http.header_timeout_ms);
    return c;
}

/* Answers what the connection forwarded, and whatever that lets it parse next. */
static void drain(void)
{
    while (pending && pending_last) answer();
}

/* The one connection is open (client_close counts it out before its memory goes). */
static int open_conn(void)
{
    return sl_h1w(&w)->n_clients > 0;
}

static void feed(sl_client_t *c, const uint8_t *p, size_t n)
{
    if (!open_conn() || !n) return;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    on_client_read((uv_stream_t *)&c->tcp, (ssize_t)n, &b);
    drain();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    sl_client_t *c = connection();
    size_t split = size ? (size_t)data[0] % (size + 1) : 0;
    feed(c, data, split);
    feed(c, data + split, size - split);
    if (open_conn()) {
        uv_buf_t b = uv_buf_init(NULL, 0);
        on_client_read((uv_stream_t *)&c->tcp, UV_EOF, &b);
        drain();
    }
    if (open_conn()) client_close(c);
    pending = NULL;
    pending_last = 0;
    /* The connection's close callback frees it. */
    while (uv_run(&w.loop, UV_RUN_NOWAIT)) {
    }
    return 0;
}
