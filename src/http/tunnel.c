/* WebSocket tunnels: after the upstream's 101, the client connection and the upstream connection
 * copy bytes to each other as they come, without looking at them (frames, pings and closes are
 * the endpoints' business).
 *
 * The client connection stays the client's (h1_server.c closes it, which ends the tunnel); the
 * upstream connection is handed over by h1_upstream.c and closed here. Callbacks that may run
 * after the tunnel ended (writes and shutdowns cancelled by the close) look at their handle
 * first and leave as soon as it is closing, so the tunnel itself is freed with its timer. */
#include "http/h1_internal.h"
#include "base/common.h"
#include "policy/policy.h"

#include <string.h>

typedef struct sl_tunnel {
    sl_client_t *c;
    uv_stream_t *up;
    uv_timer_t idle;
    uint64_t idle_ms;
    uint64_t last_ms;        /* loop time of the last bytes read or written either way */
    size_t to_up, to_client; /* bytes queued on each socket, not yet taken */
    /* eof: the side sent FIN; shut: the other side's write half is shut down (after the bytes
     * queued before it); paused: not read while the other side is over the high water mark. */
    unsigned client_eof : 1, up_eof : 1, up_shut : 1, client_shut : 1, client_paused : 1, up_paused : 1;
} sl_tunnel_t;

static void on_client_data(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_up_data(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ---- the 101 ---------------------------------------------------------------------------- */

void sl_tunnel_send_head(sl_client_t *c, const sl_head_t *up)
{
    sl_exchange_t *ex = &c->rq->ex;
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_reserve(&b, up->buf.len + 128);
    sl_buf_puts(&b, "HTTP/1.1 101 ");
    if (up->first_len) sl_buf_append(&b, sl_head_str(up, up->first_off), up->first_len);
    else sl_buf_puts(&b, "Switching Protocols");
    sl_buf_puts(&b, "\r\n");
    for (size_t i = 0; i < up->n; i++) {
        const sl_hdr_t *x = &up->hdrs[i];
        if (sl_hdr_hop_by_hop(up, x) || sl_hdr_is(up, x, "content-length")) continue;
        if (sl_policy_response_drop(ex->route, sl_head_str(up, x->name_off), x->name_len)) continue;
        sl_buf_append(&b, sl_head_str(up, x->name_off), x->name_len);
        sl_buf_puts(&b, ": ");
        sl_buf_append(&b, sl_head_str(up, x->value_off), x->value_len);
        sl_buf_puts(&b, "\r\n");
    }
    sl_policy_response_emit(ex->route, &b);
    /* Upgrade and Connection are hop-by-hop: ours, naming the protocol the client asked for. */
    sl_buf_puts(&b, "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    ex->status = 101;
    ex->head_sent = 1;
    sl_client_send(c, b.data, b.len);
    sl_buf_free(&b);
}

/* ---- copying ---------------------------------------------------------------------------- */

static void tunnel_end(sl_tunnel_t *t, const char *error)
{
    sl_client_tunnel_done(t->c, error); /* closes the client, which calls sl_tunnel_close */
}

/* Both sides read into the worker's buffer: every byte is written or copied before the read
 * callback returns. */
static void on_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    SL_UNUSED(suggested);
    sl_client_t *c = h->data;
    buf->base = c->w->read_buf;
    buf->len = sizeof(c->w->read_buf);
}

static void on_up_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    sl_tunnel_t *t = h->data;
    on_client_alloc((uv_handle_t *)&t->c->tcp, suggested, buf);
}

static void read_client(sl_tunnel_t *t)
{
    if (!t->client_eof && !t->client_paused) uv_read_start((uv_stream_t *)&t->c->tcp, on_client_alloc, on_client_data);
}

static void read_up(sl_tunnel_t *t)
{
    if (!t->up_eof && !t->up_paused) uv_read_start(t->up, on_up_alloc, on_up_data);
}

static void on_up_written(uv_write_t *req, int status)
{
    sl_wreq_t *wr = sl_container_of(req, sl_wreq_t, req);
    sl_tunnel_t *t = wr->owner;
    size_t len = wr->len;
    int closing = uv_is_closing((uv_handle_t *)req->handle);
    free(wr);
    if (closing) return;
    if (status < 0) {
        tunnel_end(t, "upstream_reset");
        return;
    }
    t->to_up -= len;
    t->last_ms = uv_now(t->idle.loop);
    if (t->client_paused && t->to_up < SL_LOW_WATER) {
        t->client_paused = 0;
        read_client(t);
    }
}

static void on_client_written(uv_write_t *req, int status)
{
    sl_wreq_t *wr = sl_container_of(req, sl_wreq_t, req);
    sl_tunnel_t *t = wr->owner;
    size_t len = wr->len;
    int closing = uv_is_closing((uv_handle_t *)req->handle);
    free(wr);
    if (closing) return;
    if (status < 0) {
        tunnel_end(t, "client_closed");
        return;
    }
    t->to_client -= len;
    t->last_ms = uv_now(t->idle.loop);
    if (t->up_paused && t->to_client < SL_LOW_WATER) {
        t->up_paused = 0;
        read_up(t);
    }
}

/* Bytes from the client to the upstream; 0, or -1 when the tunnel ended. */
static int to_up(sl_tunnel_t *t, const char *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    ssize_t queued = sl_stream_write(t->up, &b, 1, t, on_up_written);
    if (queued < 0) {
        tunnel_end(t, "upstream_reset");
        return -1;
    }
    t->c->rq->ex.bytes_in += n;
    t->to_up += (size_t)queued;
    if (t->to_up > SL_HIGH_WATER && !t->client_paused) {
        t->client_paused = 1;
        uv_read_stop((uv_stream_t *)&t->c->tcp);
    }
    return 0;
}

static int to_client(sl_tunnel_t *t, const char *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    ssize_t queued = sl_stream_write((uv_stream_t *)&t->c->tcp, &b, 1, t, on_client_written);
    if (queued < 0) {
        tunnel_end(t, "client_closed");
        return -1;
    }
    t->c->rq->ex.bytes_out += n;
    t->to_client += (size_t)queued;
    if (t->to_client > SL_HIGH_WATER && !t->up_paused) {
        t->up_paused = 1;
        uv_read_stop(t->up);
    }
    return 0;
}

/* ---- half-close ------------------------------------------------------------------------- */

static void maybe_done(sl_tunnel_t *t)
{
    if (t->up_shut && t->client_shut) tunnel_end(t, NULL);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    sl_tunnel_t *t = req->data;
    uv_stream_t *s = req->handle;
    free(req);
    if (uv_is_closing((uv_handle_t *)s)) return;
    int up = s == t->up;
    if (status < 0) {
        tunnel_end(t, up ? "upstream_reset" : "client_closed");
        return;
    }
    if (up) t->up_shut = 1;
    else t->client_shut = 1;
    maybe_done(t);
}

/* One side sent FIN: so does the other's write half, once what is queued for it has gone. */
static void shut(sl_tunnel_t *t, uv_stream_t *s)
{
    uv_shutdown_t *req = sl_xmalloc(sizeof(*req));
    req->data = t;
    if (uv_shutdown(req, s, on_shutdown) != 0) {
        free(req);
        tunnel_end(t, s == t->up ? "upstream_reset" : "client_closed");
    }
}

static void on_client_data(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    sl_client_t *c = s->data;
    sl_tunnel_t *t = c->tunnel;
    if (nread == 0) return;
    if (nread == UV_EOF) {
        t->client_eof = 1;
        uv_read_stop(s);
        shut(t, t->up);
        return;
    }
    if (nread < 0) {
        tunnel_end(t, "client_closed");
        return;
    }
    t->last_ms = uv_now(s->loop);
    to_up(t, buf->base, (size_t)nread);
}

static void on_up_data(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    sl_tunnel_t *t = s->data;
    if (nread == 0) return;
    if (nread == UV_EOF) {
        t->up_eof = 1;
        uv_read_stop(s);
        shut(t, (uv_stream_t *)&t->c->tcp);
        return;
    }
    if (nread < 0) {
        tunnel_end(t, "upstream_reset");
        return;
    }
    t->last_ms = uv_now(s->loop);
    to_client(t, buf->base, (size_t)nread);
}

/* ---- lifetime --------------------------------------------------------------------------- */

static void on_idle(uv_timer_t *timer)
{
    sl_tunnel_t *t = timer->data;
    uint64_t quiet = uv_now(timer->loop) - t->last_ms;
    if (quiet >= t->idle_ms) {
        tunnel_end(t, "idle_timeout");
        return;
    }
    /* Bytes moved since it was armed: wait for the rest of the period from the last of them. */
    uv_timer_start(timer, on_idle, t->idle_ms - quiet, 0);
}

void sl_tunnel_start(sl_client_t *c, uv_stream_t *up, const char *early, size_t n)
{
    sl_exchange_t *ex = &c->rq->ex;
    sl_tunnel_t *t = sl_xcalloc(1, sizeof(*t));
    t->c = c;
    t->up = up;
    up->data = t;
    t->idle_ms = sl_policy_websocket_idle_ms(ex->route);
    uv_timer_init(&c->w->loop, &t->idle);
    t->idle.data = t;
    t->last_ms = uv_now(&c->w->loop);
    uv_timer_start(&t->idle, on_idle, t->idle_ms, 0);
    c->tunnel = t;
    c->state = SL_C_TUNNEL;
    /* From here on only the idle timeout bounds the connection, not the client timeouts. */
    sl_list_remove(&c->tlink);
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    /* Frames the client sent right behind its handshake, kept while the upstream answered. */
    sl_buf_t pending = c->pending;
    memset(&c->pending, 0, sizeof(c->pending));
    int rc = pending.len ? to_up(t, pending.data, pending.len) : 0;
    sl_buf_free(&pending);
    if (rc == 0 && n) rc = to_client(t, early, n);
    if (rc != 0) return;
    if (c->peer_eof) {
        /* The client half-closed while waiting for the 101. */
        t->client_eof = 1;
        shut(t, up);
        if (c->closing) return;
    }
    read_client(t);
    read_up(t);
}

static void on_idle_closed(uv_handle_t *h)
{
    free(h->data);
}

void sl_tunnel_close(sl_client_t *c)
{
    sl_tunnel_t *t = c->tunnel;
    sl_exchange_t *ex = &c->rq->ex;
    c->tunnel = NULL;
    /* Cut by the end of the shutdown grace period, rather than by either end. */
    if (!ex->error && !ex->resp_complete && c->w->stopping) ex->error = "shutdown";
    sl_upstream_close_detached(t->up);
    uv_close((uv_handle_t *)&t->idle, on_idle_closed);
}
