/* Connections (conn.h): what every type shares, the connect deadline and the handshake step
 * between the type's connect and the user's callback. */
#include "net/conn.h"
#include "base/common.h"

#include <string.h>

void sl_conn_init(sl_conn_t *c, uv_loop_t *loop, const sl_conn_type_t *type)
{
    void *data = c->data;
    memset(c, 0, sizeof(*c));
    c->data = data; /* the user may have set it before */
    c->type = type;
    c->loop = loop;
    uv_tcp_init(loop, &c->tcp);
    c->handles = 1;
}

int sl_conn_accept(sl_conn_t *c, uv_stream_t *server)
{
    return uv_accept(server, (uv_stream_t *)&c->tcp);
}

static void on_timer_closed(uv_handle_t *h)
{
    sl_conn__handle_closed(sl_container_of((uv_timer_t *)h, sl_conn_t, timer));
}

static void stop_timer(sl_conn_t *c)
{
    if (c->timer_open) uv_timer_stop(&c->timer);
}

/* The connect is over one way or the other: the user hears it once, unless it closed c. */
static void connect_done(sl_conn_t *c, int status)
{
    if (!c->connecting) return;
    c->connecting = 0;
    stop_timer(c);
    if (!c->closing) c->connect_cb(c, status);
}

static void on_deadline(uv_timer_t *t)
{
    connect_done(sl_container_of(t, sl_conn_t, timer), UV_ETIMEDOUT);
}

int sl_conn_connect(sl_conn_t *c, const struct sockaddr *addr, uint64_t timeout_ms, sl_conn_connect_cb cb)
{
    c->connect_cb = cb;
    c->connecting = 1;
    int rc = c->type->connect(c, addr);
    if (rc < 0) {
        c->connecting = 0;
        return rc;
    }
    if (timeout_ms) {
        if (!c->timer_open) {
            uv_timer_init(c->loop, &c->timer);
            c->timer_open = 1;
            c->handles++;
        }
        uv_timer_start(&c->timer, on_deadline, timeout_ms, 0);
    }
    return 0;
}

void sl_conn__connected(sl_conn_t *c, int status)
{
    if (!c->connecting || c->closing) return;
    if (status == 0 && c->type->handshake) {
        int rc = c->type->handshake(c);
        if (rc == 0) return; /* sl_conn__handshaken() follows */
        status = rc;
    }
    connect_done(c, status);
}

void sl_conn__handshaken(sl_conn_t *c, int status)
{
    connect_done(c, status);
}

int sl_conn_read_start(sl_conn_t *c, sl_conn_alloc_cb alloc_cb, sl_conn_read_cb read_cb)
{
    c->alloc_cb = alloc_cb;
    c->read_cb = read_cb;
    return c->type->read_start(c);
}

int sl_conn_read_stop(sl_conn_t *c)
{
    return c->type->read_stop(c);
}

int sl_conn_try_write(sl_conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    return c->type->try_write(c, bufs, n);
}

int sl_conn_write(sl_conn_t *c, sl_conn_write_t *req, const uv_buf_t *bufs, unsigned n, sl_conn_write_cb cb)
{
    req->conn = c;
    req->cb = cb;
    return c->type->write(c, req, bufs, n);
}

int sl_conn_shutdown(sl_conn_t *c, sl_conn_shutdown_t *req, sl_conn_shutdown_cb cb)
{
    req->conn = c;
    req->cb = cb;
    return c->type->shutdown(c, req);
}

void sl_conn_close(sl_conn_t *c, sl_conn_close_cb cb)
{
    c->close_cb = cb;
    c->closing = 1;
    c->connecting = 0;
    if (c->timer_open) uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    c->type->close(c);
}

void sl_conn__handle_closed(sl_conn_t *c)
{
    if (--c->handles) return;
    if (c->close_cb) c->close_cb(c);
}

int sl_conn_nodelay(sl_conn_t *c, int on)
{
    return uv_tcp_nodelay(&c->tcp, on);
}
