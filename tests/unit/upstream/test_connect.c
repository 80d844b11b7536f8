/* The connect / failover path (upstream/connect.h) against loopback sockets: refused nodes are
 * passed over, each once, until one takes the connection; every try is counted and ended. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "upstream/connect.h"
#include "upstream/health.h"

#define N 4

typedef struct fixture {
    sl_upstream_t u;
    sl_upstream_cfg_t cfg;
    sl_service_cfg_t svc;
    sl_node_cfg_t ncfg[N];
    sl_node_t nodes[N];
    char names[N][48];
    uv_tcp_t listener;
    int listening;
} fixture_t;

static fixture_t fx;

static void on_conn(uv_stream_t *l, int status)
{
    (void)l;
    (void)status; /* left in the backlog: the connect is what is tested */
}

/* Node i listens when live[i], else its port was bound and closed (refused). */
static fixture_t *make(uv_loop_t *loop, const int *live)
{
    fixture_t *f = &fx;
    memset(f, 0, sizeof(*f));
    f->svc.name = "connect";
    f->u.svc = &f->svc;
    f->u.cfg = &f->cfg;
    /* Refused ports first: closing them runs the loop, which must not have a listener yet. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < N; i++) {
            if (!live[i] != !pass) continue;
            struct sockaddr_in a;
            uv_ip4_addr("127.0.0.1", 0, &a);
            uv_tcp_t t, *h = live[i] ? &f->listener : &t;
            uv_tcp_init(loop, h);
            assert_int_equal(uv_tcp_bind(h, (struct sockaddr *)&a, 0), 0);
            int len = sizeof(f->nodes[i].addr);
            uv_tcp_getsockname(h, (struct sockaddr *)&f->nodes[i].addr, &len);
            if (live[i]) {
                assert_false(f->listening); /* one live node at most */
                assert_int_equal(uv_listen((uv_stream_t *)h, 8, on_conn), 0);
                f->listening = 1;
            } else {
                uv_close((uv_handle_t *)h, NULL);
                uv_run(loop, UV_RUN_DEFAULT);
            }
        }
    }
    for (size_t i = 0; i < N; i++) {
        snprintf(f->names[i], sizeof(f->names[i]), "node-%zu", i);
        f->nodes[i].cfg = &f->ncfg[i];
        f->nodes[i].name = f->names[i];
        f->nodes[i].weight = 1;
        f->nodes[i].state = sl_health_state_get(f->svc.name, f->names[i]);
    }
    f->u.nodes = f->nodes;
    f->u.n_nodes = N;
    f->u.balancer = &sl_balancer_random;
    return f;
}

static void done(uv_loop_t *loop, fixture_t *f)
{
    if (f->listening) uv_close((uv_handle_t *)&f->listener, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&f->nodes[i].state->active), 0); /* every try ended */
        sl_health_state_release(f->nodes[i].state);
    }
    assert_int_equal(uv_loop_close(loop), 0);
}

typedef struct run {
    sl_upstream_connect_t uc;
    int status, calls, closed;
} run_t;

static void on_up(sl_upstream_connect_t *uc, int status)
{
    run_t *r = uc->data;
    r->status = status;
    r->calls++;
}

static void on_closed(sl_upstream_connect_t *uc)
{
    run_t *r = uc->data;
    r->closed++;
}

static void go(uv_loop_t *loop, fixture_t *f, run_t *r, unsigned max_tries)
{
    memset(r, 0, sizeof(*r));
    r->uc.data = r;
    sl_upstream_connect_start(&r->uc, loop, &sl_conn_tcp, &f->u, NULL, 0, NULL, max_tries, 5000, on_up);
    while (!r->calls && uv_run(loop, UV_RUN_ONCE)) {
    }
    assert_int_equal(r->calls, 1);
}

static void test_fails_over_to_the_live_node(void **state)
{
    (void)state;
    const int live[N] = {0, 0, 1, 0};
    for (int round = 0; round < 20; round++) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        fixture_t *f = make(&loop, live);
        run_t r;
        go(&loop, f, &r, N);
        assert_int_equal(r.status, SL_UPSTREAM_CONNECTED);
        assert_ptr_equal(r.uc.node, &f->nodes[2]);
        /* Refused nodes were each tried once at most before the live one. */
        assert_true(r.uc.tries >= 1 && r.uc.tries <= N);
        size_t distinct = 0;
        for (size_t i = 0; i < N; i++)
            distinct += (size_t)sl_tried_has(r.uc.tried, i);
        assert_int_equal(distinct, r.uc.tries);
        assert_int_equal(atomic_load(&f->nodes[2].state->active), 1); /* open until closed */
        sl_upstream_connect_close(&r.uc, SL_OUTCOME_OK, on_closed);
        while (!r.closed && uv_run(&loop, UV_RUN_ONCE)) {
        }
        assert_int_equal(r.closed, 1);
        done(&loop, f);
    }
}

static void test_every_node_refuses(void **state)
{
    (void)state;
    const int live[N] = {0, 0, 0, 0};
    uv_loop_t loop;
    uv_loop_init(&loop);
    fixture_t *f = make(&loop, live);
    run_t r;
    go(&loop, f, &r, 3);
    assert_int_equal(r.status, SL_UPSTREAM_FAILED);
    assert_int_equal(r.uc.tries, 3);
    size_t distinct = 0;
    for (size_t i = 0; i < N; i++)
        distinct += (size_t)sl_tried_has(r.uc.tried, i);
    assert_int_equal(distinct, 3); /* three different nodes, not one three times */
    sl_upstream_connect_close(&r.uc, SL_OUTCOME_CONNECT_FAILURE, on_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.closed, 1);
    done(&loop, f);
}

/* Closed while a try is in flight: no callback, the try ended, one close callback. */
static void test_close_while_connecting(void **state)
{
    (void)state;
    const int live[N] = {1, 0, 0, 0};
    uv_loop_t loop;
    uv_loop_init(&loop);
    fixture_t *f = make(&loop, live);
    run_t r;
    memset(&r, 0, sizeof(r));
    r.uc.data = &r;
    sl_upstream_connect_start(&r.uc, &loop, &sl_conn_tcp, &f->u, NULL, 0, NULL, N, 5000, on_up);
    sl_upstream_connect_close(&r.uc, SL_OUTCOME_ABORTED, on_closed);
    while (!r.closed && uv_run(&loop, UV_RUN_ONCE)) {
    }
    assert_int_equal(r.calls, 0);
    assert_int_equal(r.closed, 1);
    done(&loop, f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fails_over_to_the_live_node),
        cmocka_unit_test(test_every_node_refuses),
        cmocka_unit_test(test_close_while_connecting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
