/* proxy.c without sockets: a fake server stream (records what it was sent), a fake upstream
 * client (records its tries; the test plays the upstream's answers through the sl_proxy_on_*
 * callbacks) and an injected clock. Covers connect failover, retries on a status, the retry
 * policy's limits (attempts, route deadline), back-off on the worker's loop, local answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "base/arena.h"
#include "base/log.h"
#include "base/time.h"
#include "config/config.h"
#include "http/proxy.h"
#include "http/response.h"
#include "runtime/generation.h"
#include "runtime/server.h"

/* ---- fakes --------------------------------------------------------------------------------- */

typedef struct rec {
    int heads, status, bodies, ends, resets;
    size_t body_bytes;
} rec_t;

static void s_head(void *stream, const sl_http_resp_t *r)
{
    rec_t *x = stream;
    x->heads++;
    x->status = r->status;
}
static int s_body(void *stream, const char *p, size_t n)
{
    (void)p;
    rec_t *x = stream;
    x->bodies++;
    x->body_bytes += n;
    return 0;
}
static void s_end(void *stream)
{
    ((rec_t *)stream)->ends++;
}
static void s_reset(void *stream, const char *error)
{
    (void)error;
    ((rec_t *)stream)->resets++;
}
static void s_hold(void *stream, int on)
{
    (void)stream;
    (void)on;
}
static void s_resume(void *stream)
{
    (void)stream;
}
static const sl_http_stream_ops_t fake_stream = {s_head, s_body, s_end, s_reset, s_hold, s_resume};

/* The fake client's tries: the node each went to, whether fresh; cancels seen. */
static const char *tried[8];
static int n_tries, cancels, cancels_again;

static void c_start(sl_exchange_t *ex, int fresh)
{
    (void)fresh;
    tried[n_tries++] = ex->node->name;
}
static int c_write(sl_exchange_t *ex, const char *p, size_t n, int last)
{
    (void)ex;
    (void)p;
    (void)n;
    (void)last;
    return 0;
}
static void c_cancel(sl_exchange_t *ex, int again)
{
    (void)ex;
    cancels++;
    cancels_again += again;
}
static void c_resume(sl_exchange_t *ex)
{
    (void)ex;
}
static const sl_http_client_ops_t fake_client = {c_start, c_write, c_cancel, c_resume};

static uint64_t now_ns = 1000000000ull;
static uint64_t fake_clock(void)
{
    return now_ns;
}

/* ---- an exchange over a generation --------------------------------------------------------- */

static sl_generation_t *load(const char *route_policies)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "gateway: {access_log: {path: off}}\n"
             "services:\n"
             "  - name: s\n"
             "    upstream: {nodes: [{address: \"127.0.0.1:1\"}, {address: \"127.0.0.1:2\"}]}\n"
             "    routes: [{name: r, paths: [\"/r\"]%s%s}]\n",
             *route_policies ? ", policies: " : "", route_policies);
    sl_config_t *cfg = NULL;
    sl_config_errors_t errs = {0};
    if (sl_config_load_buffer("p.yaml", yaml, strlen(yaml), &cfg, &errs) != 0) {
        char line[SL_CONFIG_ERROR_TEXT_MAX];
        for (size_t i = 0; i < errs.n; i++) fprintf(stderr, "%s\n", sl_config_errors_text(&errs, i, line));
        fail();
    }
    sl_generation_t *g = sl_generation_create(cfg, &errs);
    assert_non_null(g);
    return g;
}

typedef struct fixture {
    sl_worker_t w;
    sl_generation_t *gen;
    sl_arena_t arena;
    sl_buf_t resp_log;
    sl_exchange_t ex;
    rec_t rec;
} fixture_t;

static void begin(fixture_t *f, const char *policies, const char *path)
{
    memset(f, 0, sizeof(*f));
    n_tries = cancels = cancels_again = 0;
    uv_loop_init(&f->w.loop);
    f->gen = load(policies);
    sl_arena_init(&f->arena, 4096);
    sl_exchange_t *ex = &f->ex;
    ex->active = 1;
    ex->w = &f->w;
    ex->gen = f->gen;
    ex->peer = "127.0.0.1";
    ex->sops = &fake_stream;
    ex->stream = &f->rec;
    ex->cops = &fake_client;
    ex->arena = &f->arena;
    ex->resp_log = &f->resp_log;
    ex->t_start_ns = now_ns;
    ex->req = (sl_http_req_t){.method_id = SL_HTTP_GET, .method = "GET", .scheme = "http", .path = path,
                              .path_len = strlen(path), .http_minor = 1};
    ex->req_complete = 1;
}

static void end(fixture_t *f)
{
    sl_proxy_release(&f->ex);
    uv_run(&f->w.loop, UV_RUN_DEFAULT); /* closes a back-off timer */
    uv_loop_close(&f->w.loop);
    sl_arena_reset(&f->arena);
    sl_buf_free(&f->resp_log);
    sl_generation_release(f->gen);
}

static void respond(sl_exchange_t *ex, int status, int expect)
{
    sl_http_resp_t r = {.status = status, .content_length = 0};
    assert_int_equal(sl_proxy_on_head(ex, &r, -1), expect);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_no_route_is_answered_locally(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "", "/elsewhere");
    assert_int_equal(sl_proxy_begin(&f.ex), 1);
    sl_proxy_answer_local(&f.ex);
    assert_int_equal(f.rec.status, 404);
    assert_int_equal(f.rec.ends, 1);
    assert_string_equal(f.ex.error, "no_route");
    assert_int_equal(n_tries, 0);
    end(&f);
}

static void test_connect_failover_tries_the_other_node_then_502(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "", "/r");
    assert_int_equal(sl_proxy_begin(&f.ex), 0);
    sl_proxy_start(&f.ex);
    assert_int_equal(n_tries, 1);
    sl_proxy_on_connect_failed(&f.ex, "upstream_connect_failed");
    /* The other node, the one place that picks avoiding the node that failed. */
    assert_int_equal(n_tries, 2);
    assert_string_not_equal(tried[0], tried[1]);
    assert_int_equal(f.rec.heads, 0);
    sl_proxy_on_connect_failed(&f.ex, "upstream_connect_failed");
    assert_int_equal(n_tries, 2); /* every node had its try */
    assert_int_equal(f.rec.status, 502);
    assert_string_equal(f.ex.error, "upstream_connect_failed");
    assert_int_equal(f.rec.ends, 1);
    end(&f);
}

static void test_retry_on_status_after_backoff(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "{retry: {attempts: 2, on: [5xx], backoff: {base: 1ms, max: 2ms}}}", "/r");
    assert_int_equal(sl_proxy_begin(&f.ex), 0);
    sl_proxy_start(&f.ex);
    respond(&f.ex, 503, -1); /* retried: nothing for the client */
    assert_int_equal(f.rec.heads, 0);
    assert_int_equal(cancels_again, 1);
    assert_non_null(f.ex.backoff);
    assert_int_equal(n_tries, 1); /* waits out the back-off */
    uv_run(&f.w.loop, UV_RUN_DEFAULT);
    assert_int_equal(n_tries, 2);
    assert_string_not_equal(tried[0], tried[1]);
    respond(&f.ex, 200, 0);
    assert_int_equal(f.rec.status, 200);
    sl_proxy_on_trailers(&f.ex, NULL);
    assert_int_equal(f.rec.ends, 1);
    assert_int_equal(f.ex.retries, 1);
    assert_null(f.ex.retry_stop);
    end(&f);
}

static void test_retry_stops_when_attempts_are_spent(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "{retry: {attempts: 1, on: [5xx], backoff: {base: 1ms, max: 1ms}}}", "/r");
    assert_int_equal(sl_proxy_begin(&f.ex), 0);
    sl_proxy_start(&f.ex);
    respond(&f.ex, 502, -1);
    uv_run(&f.w.loop, UV_RUN_DEFAULT);
    respond(&f.ex, 502, 0); /* the last answer goes to the client as it is */
    assert_int_equal(f.rec.status, 502);
    assert_int_equal(f.ex.retries, 1);
    assert_string_equal(f.ex.retry_stop, "attempts_exhausted");
    end(&f);
}

static void test_route_deadline_stops_a_retry(void **state)
{
    (void)state;
    sl_proxy_clock = fake_clock;
    fixture_t f;
    begin(&f, "{timeout: 1s, retry: {attempts: 3, on: [reset], backoff: {base: 100ms, max: 100ms}}}", "/r");
    assert_int_equal(sl_proxy_begin(&f.ex), 0);
    sl_proxy_start(&f.ex);
    /* The route's second is over: whatever the back-off's jitter draws, the retry would end
     * past the deadline. */
    now_ns += 1000000000ull;
    sl_proxy_on_try_failed(&f.ex, SL_TRY_RESET, 502, "upstream_reset");
    assert_int_equal(n_tries, 1);
    assert_string_equal(f.ex.retry_stop, "route_timeout");
    assert_int_equal(f.rec.status, 502);
    assert_string_equal(f.ex.error, "upstream_reset");
    end(&f);
    sl_proxy_clock = sl_now_ns;
}

static void test_failure_after_the_head_resets_the_stream(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "{retry: {attempts: 3, on: [reset]}}", "/r");
    assert_int_equal(sl_proxy_begin(&f.ex), 0);
    sl_proxy_start(&f.ex);
    respond(&f.ex, 200, 0);
    char body[10] = {0};
    assert_int_equal(sl_proxy_on_body(&f.ex, body, sizeof(body)), 0);
    assert_int_equal(f.rec.body_bytes, 10);
    /* Part of the response is out: no retry can help, the stream is cut. */
    sl_proxy_on_failed(&f.ex, 502, "upstream_reset");
    assert_int_equal(f.rec.resets, 1);
    assert_int_equal(f.rec.heads, 1);
    assert_int_equal(n_tries, 1);
    end(&f);
}

int main(void)
{
    sl_log_set_level(SL_LOG_ERROR);
    sl_server_metrics_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_route_is_answered_locally),
        cmocka_unit_test(test_connect_failover_tries_the_other_node_then_502),
        cmocka_unit_test(test_retry_on_status_after_backoff),
        cmocka_unit_test(test_retry_stops_when_attempts_are_spent),
        cmocka_unit_test(test_route_deadline_stops_a_retry),
        cmocka_unit_test(test_failure_after_the_head_resets_the_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
