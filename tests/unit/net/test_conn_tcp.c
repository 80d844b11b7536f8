/* The TCP connection type against a loopback socket: connect, write both ways, read, shutdown
 * and EOF, accept, a refused connect, a close while connecting; and, with types made from it, the
 * handshake step and the connect deadline of conn.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "net/conn.h"

/* An echo server on 127.0.0.1: echoes what it reads, ends its write half at the client's EOF. */
typedef struct server {
    uv_tcp_t listener;
    uv_tcp_t peer;
    uv_shutdown_t sh;
    char buf[256];
    int accepted, port;
} server_t;

static void srv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    server_t *s = h->data;
    *buf = uv_buf_init(s->buf, sizeof(s->buf));
}

static void srv_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void srv_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    server_t *s = st->data;
    if (nread == UV_EOF) {
        uv_shutdown(&s->sh, st, NULL);
        return;
    }
    if (nread <= 0) return;
    /* A request per read: the client's two writes may arrive as two reads. */
    uv_write_t *w = malloc(sizeof(*w) + (size_t)nread);
    memcpy(w + 1, buf->base, (size_t)nread);
    uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)nread);
    uv_write(w, st, &b, 1, srv_written);
}

static void srv_conn(uv_stream_t *l, int status)
{
    server_t *s = l->data;
    assert_int_equal(status, 0);
    uv_tcp_init(l->loop, &s->peer);
    s->peer.data = s;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&s->peer), 0);
    s->accepted = 1;
    uv_read_start((uv_stream_t *)&s->peer, srv_alloc, srv_read);
}

static void server_start(uv_loop_t *loop, server_t *s)
{
    memset(s, 0, sizeof(*s));
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    assert_int_equal(uv_tcp_bind(&s->listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 8, srv_conn), 0);
    struct sockaddr_in got;
    int len = sizeof(got);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &len);
    s->port = ntohs(got.sin_port);
}

static void server_stop(server_t *s)
{
    uv_close((uv_handle_t *)&s->listener, NULL);
    if (s->accepted) uv_close((uv_handle_t *)&s->peer, NULL);
}

/* The client's side of a test. */
typedef struct client {
    sl_conn_t conn;
    sl_conn_write_t w;
    sl_conn_shutdown_t sh;
    char buf[256], got[256];
    size_t got_len;
    int connected, status, eof, written, shut, closed;
} client_t;

static void cl_alloc(sl_conn_t *c, uv_buf_t *buf)
{
    client_t *cl = c->data;
    *buf = uv_buf_init(cl->buf, sizeof(cl->buf));
}

static void cl_shut(sl_conn_shutdown_t *req, int status)
{
    client_t *cl = req->data;
    assert_int_equal(status, 0);
    cl->shut = 1;
}

static void cl_read(sl_conn_t *c, ssize_t nread, const uv_buf_t *buf)
{
    client_t *cl = c->data;
    if (nread == UV_EOF) {
        cl->eof = 1;
        sl_conn_read_stop(c);
        return;
    }
    assert_true(nread >= 0);
    memcpy(cl->got + cl->got_len, buf->base, (size_t)nread);
    cl->got_len += (size_t)nread;
    if (cl->got_len == 10) { /* "ping" then "pong-ok": both echoed, end our half */
        cl->sh.data = cl;
        assert_int_equal(sl_conn_shutdown(c, &cl->sh, cl_shut), 0);
    }
}

static void cl_written(sl_conn_write_t *req, int status)
{
    client_t *cl = req->data;
    assert_int_equal(status, 0);
    assert_ptr_equal(req->conn, &cl->conn);
    cl->written = 1;
}

/* A fresh client on loop connecting to a with type t (its callback cb, deadline timeout_ms). */
static void client_connect(client_t *cl, uv_loop_t *loop, const sl_conn_type_t *t, const struct sockaddr_in *a,
                           uint64_t timeout_ms, sl_conn_connect_cb cb)
{
    memset(cl, 0, sizeof(*cl));
    sl_conn_init(&cl->conn, loop, t);
    cl->conn.data = cl;
    assert_int_equal(sl_conn_connect(&cl->conn, (const struct sockaddr *)a, timeout_ms, cb), 0);
}

static void cl_connected(sl_conn_t *c, int status)
{
    client_t *cl = c->data;
    cl->connected++;
    cl->status = status;
    if (status) return;
    sl_conn_nodelay(c, 1);
    assert_int_equal(sl_conn_read_start(c, cl_alloc, cl_read), 0);
    /* One write taken at once, one through a request: both reach the peer in order. */
    uv_buf_t b = uv_buf_init("ping", 4);
    assert_int_equal(sl_conn_try_write(c, &b, 1), 4);
    uv_buf_t b2[] = {uv_buf_init("pong", 4), uv_buf_init("-ok", 2)};
    cl->w.data = cl;
    assert_int_equal(sl_conn_write(c, &cl->w, b2, 2, cl_written), 0);
}

static void cl_closed(sl_conn_t *c)
{
    client_t *cl = c->data;
    cl->closed++;
}

static void addr_of(int port, struct sockaddr_in *a)
{
    uv_ip4_addr("127.0.0.1", port, a);
}

static void test_tcp_round_trip(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    server_t srv;
    server_start(&loop, &srv);
    client_t cl;
    memset(&cl, 0, sizeof(cl));
    cl.conn.data = &cl;
    sl_conn_init(&cl.conn, &loop, &sl_conn_tcp);
    assert_ptr_equal(cl.conn.data, &cl);
    struct sockaddr_in a;
    addr_of(srv.port, &a);
    assert_int_equal(sl_conn_connect(&cl.conn, (struct sockaddr *)&a, 5000, cl_connected), 0);
    while (!cl.eof && uv_run(&loop, UV_RUN_ONCE)) {
    }
    assert_int_equal(cl.connected, 1);
    assert_int_equal(cl.status, 0);
    assert_true(cl.written && cl.shut && cl.eof);
    assert_int_equal(cl.got_len, 10);
    assert_memory_equal(cl.got, "pingpong-o", 10);
    sl_conn_close(&cl.conn, cl_closed);
    assert_true(sl_conn_is_closing(&cl.conn));
    server_stop(&srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(cl.closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A port nothing listens on (bound, then closed): the connect callback says so, once. */
static int closed_port(uv_loop_t *loop)
{
    server_t s;
    server_start(loop, &s);
    int port = s.port;
    server_stop(&s);
    uv_run(loop, UV_RUN_DEFAULT);
    return port;
}

static void test_tcp_refused(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sockaddr_in a;
    addr_of(closed_port(&loop), &a);
    client_t cl;
    client_connect(&cl, &loop, &sl_conn_tcp, &a, 5000, cl_connected);
    while (!cl.connected && uv_run(&loop, UV_RUN_ONCE)) {
    }
    assert_int_equal(cl.connected, 1);
    assert_int_equal(cl.status, UV_ECONNREFUSED);
    /* A closed connection may be used again: the next attempt of a failover. */
    sl_conn_close(&cl.conn, cl_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(cl.closed, 1);
    server_t srv;
    server_start(&loop, &srv);
    addr_of(srv.port, &a);
    sl_conn_init(&cl.conn, &loop, &sl_conn_tcp);
    cl.connected = 0;
    assert_int_equal(sl_conn_connect(&cl.conn, (struct sockaddr *)&a, 0, cl_connected), 0);
    while (!cl.connected && uv_run(&loop, UV_RUN_ONCE)) {
    }
    assert_int_equal(cl.status, 0);
    sl_conn_close(&cl.conn, cl_closed);
    server_stop(&srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(cl.closed, 2);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Closed before the connect finished: no connect callback, one close callback. */
static void test_tcp_close_while_connecting(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    server_t srv;
    server_start(&loop, &srv);
    struct sockaddr_in a;
    addr_of(srv.port, &a);
    client_t cl;
    client_connect(&cl, &loop, &sl_conn_tcp, &a, 5000, cl_connected);
    sl_conn_close(&cl.conn, cl_closed);
    server_stop(&srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(cl.connected, 0);
    assert_int_equal(cl.closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The accepting side: a connection taken from a listener reads through the same table. */
typedef struct acceptor {
    uv_tcp_t listener;
    sl_conn_t conn;
    char buf[64], got[64];
    size_t got_len;
    int accepted, eof, closed;
} acceptor_t;

static void acc_alloc(sl_conn_t *c, uv_buf_t *buf)
{
    acceptor_t *a = c->data;
    *buf = uv_buf_init(a->buf, sizeof(a->buf));
}

static void acc_read(sl_conn_t *c, ssize_t nread, const uv_buf_t *buf)
{
    acceptor_t *a = c->data;
    if (nread == UV_EOF) {
        a->eof = 1;
        return;
    }
    assert_true(nread >= 0);
    memcpy(a->got + a->got_len, buf->base, (size_t)nread);
    a->got_len += (size_t)nread;
}

static void acc_conn(uv_stream_t *l, int status)
{
    acceptor_t *a = l->data;
    assert_int_equal(status, 0);
    sl_conn_init(&a->conn, l->loop, &sl_conn_tcp);
    a->conn.data = a;
    assert_int_equal(sl_conn_accept(&a->conn, l), 0);
    a->accepted = 1;
    assert_int_equal(sl_conn_read_start(&a->conn, acc_alloc, acc_read), 0);
}

static void acc_closed(sl_conn_t *c)
{
    acceptor_t *a = c->data;
    a->closed++;
}

static void sender_connected(sl_conn_t *c, int status)
{
    client_t *cl = c->data;
    assert_int_equal(status, 0);
    cl->connected = 1;
    uv_buf_t b = uv_buf_init("hello", 5);
    assert_int_equal(sl_conn_try_write(c, &b, 1), 5);
    cl->sh.data = cl;
    assert_int_equal(sl_conn_shutdown(c, &cl->sh, cl_shut), 0);
}

static void test_tcp_accept(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    acceptor_t acc;
    memset(&acc, 0, sizeof(acc));
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&loop, &acc.listener);
    acc.listener.data = &acc;
    assert_int_equal(uv_tcp_bind(&acc.listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&acc.listener, 8, acc_conn), 0);
    int len = sizeof(a);
    uv_tcp_getsockname(&acc.listener, (struct sockaddr *)&a, &len);
    client_t cl;
    client_connect(&cl, &loop, &sl_conn_tcp, &a, 5000, sender_connected);
    while (!acc.eof && uv_run(&loop, UV_RUN_ONCE)) {
    }
    assert_true(acc.accepted && cl.shut);
    assert_int_equal(acc.got_len, 5);
    assert_memory_equal(acc.got, "hello", 5);
    sl_conn_close(&acc.conn, acc_closed);
    sl_conn_close(&cl.conn, cl_closed);
    uv_close((uv_handle_t *)&acc.listener, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(acc.closed, 1);
    assert_int_equal(cl.closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A type over TCP with a handshake of its own (as TLS will have): the user hears of the connect
 * only once the handshake is done. */
static int handshakes;
static uv_idle_t hs_idle;

static void hs_done(uv_idle_t *i)
{
    uv_idle_stop(i);
    uv_close((uv_handle_t *)i, NULL);
    handshakes++;
    sl_conn__handshaken(i->data, 0);
}

static int hs_start(sl_conn_t *c)
{
    uv_idle_init(c->loop, &hs_idle);
    hs_idle.data = c;
    return uv_idle_start(&hs_idle, hs_done);
}

static void hs_connected(sl_conn_t *c, int status)
{
    client_t *cl = c->data;
    assert_int_equal(handshakes, 1); /* not before */
    cl->connected++;
    cl->status = status;
}

static void test_handshake_before_connect_cb(void **state)
{
    (void)state;
    sl_conn_type_t t = sl_conn_tcp;
    t.name = "tcp+handshake";
    t.handshake = hs_start;
    uv_loop_t loop;
    uv_loop_init(&loop);
    server_t srv;
    server_start(&loop, &srv);
    struct sockaddr_in a;
    addr_of(srv.port, &a);
    client_t cl;
    memset(&cl, 0, sizeof(cl));
    sl_conn_init(&cl.conn, &loop, &t);
    cl.conn.data = &cl;
    handshakes = 0;
    assert_int_equal(sl_conn_connect(&cl.conn, (struct sockaddr *)&a, 5000, hs_connected), 0);
    while (!cl.connected && uv_run(&loop, UV_RUN_ONCE)) {
    }
    assert_int_equal(cl.connected, 1);
    assert_int_equal(cl.status, 0);
    sl_conn_close(&cl.conn, cl_closed);
    server_stop(&srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(cl.closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A type whose socket never answers: the deadline ends the connect with UV_ETIMEDOUT. */
static int never_connect(sl_conn_t *c, const struct sockaddr *addr)
{
    (void)c;
    (void)addr;
    return 0;
}

static void test_deadline(void **state)
{
    (void)state;
    sl_conn_type_t t = sl_conn_tcp;
    t.connect = never_connect;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sockaddr_in a;
    addr_of(9, &a);
    client_t cl;
    client_connect(&cl, &loop, &t, &a, 1, cl_connected);
    while (!cl.connected && uv_run(&loop, UV_RUN_ONCE)) {
    }
    assert_int_equal(cl.connected, 1);
    assert_int_equal(cl.status, UV_ETIMEDOUT);
    sl_conn_close(&cl.conn, cl_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(cl.closed, 1); /* socket and timer both closed, one callback */
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_round_trip),
        cmocka_unit_test(test_tcp_refused),
        cmocka_unit_test(test_tcp_close_while_connecting),
        cmocka_unit_test(test_tcp_accept),
        cmocka_unit_test(test_handshake_before_connect_cb),
        cmocka_unit_test(test_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
