/* The TCP connection type: each operation is the libuv call on the socket. Callbacks find the
 * connection from the handle by its place in sl_conn_t, never through handle->data, so code that
 * still drives the socket directly (runtime/pipe.c sets data) does not break it. */
#include "base/common.h"
#include "net/conn.h"

static sl_conn_t *of(uv_handle_t *h)
{
    return sl_container_of((uv_tcp_t *)h, sl_conn_t, tcp);
}

static void on_connect(uv_connect_t *req, int status)
{
    sl_conn_t *c = sl_container_of(req, sl_conn_t, creq);
    if (status == UV_ECANCELED) return; /* closed while connecting */
    sl_conn__connected(c, status);
}

static int tcp_connect(sl_conn_t *c, const struct sockaddr *addr)
{
    return uv_tcp_connect(&c->creq, &c->tcp, addr, on_connect);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    SL_UNUSED(suggested);
    sl_conn_t *c = of(h);
    c->alloc_cb(c, buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    sl_conn_t *c = of((uv_handle_t *)s);
    c->read_cb(c, nread, buf);
}

static int tcp_read_start(sl_conn_t *c)
{
    return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static int tcp_read_stop(sl_conn_t *c)
{
    return uv_read_stop((uv_stream_t *)&c->tcp);
}

static int tcp_try_write(sl_conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    return uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
}

static void on_written(uv_write_t *w, int status)
{
    sl_conn_write_t *req = sl_container_of(w, sl_conn_write_t, uv);
    req->cb(req, status);
}

static int tcp_write(sl_conn_t *c, sl_conn_write_t *req, const uv_buf_t *bufs, unsigned n)
{
    return uv_write(&req->uv, (uv_stream_t *)&c->tcp, bufs, n, on_written);
}

static void on_shutdown(uv_shutdown_t *s, int status)
{
    sl_conn_shutdown_t *req = sl_container_of(s, sl_conn_shutdown_t, uv);
    req->cb(req, status);
}

static int tcp_shutdown(sl_conn_t *c, sl_conn_shutdown_t *req)
{
    return uv_shutdown(&req->uv, (uv_stream_t *)&c->tcp, on_shutdown);
}

static void on_closed(uv_handle_t *h)
{
    sl_conn__handle_closed(of(h));
}

static void tcp_close(sl_conn_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_closed);
}

const sl_conn_type_t sl_conn_tcp = {
    .name = "tcp",
    .connect = tcp_connect,
    .handshake = NULL, /* TLS's slot */
    .read_start = tcp_read_start,
    .read_stop = tcp_read_stop,
    .try_write = tcp_try_write,
    .write = tcp_write,
    .shutdown = tcp_shutdown,
    .close = tcp_close,
};
