/* WebSocket tunnels: after the upstream's 101, the client connection and the upstream connection
 * copy bytes to each other as they come, without looking at them (frames, pings and closes are
 * the endpoints' business): a byte pipe (runtime/pipe.h) between the two.
 *
 * The client connection stays the client's (h1_conn.c closes it, which ends the tunnel); the
 * upstream connection is handed over by h1_client.c and closed here. The tunnel is freed with
 * the pipe's idle timer. */
#include "http/h1_internal.h"
#include "base/common.h"
#include "policy/policy.h"

#include <string.h>

/* Side 0 of the pipe is the client, side 1 the upstream. */
typedef struct sl_tunnel {
    sl_pipe_t pipe;
    sl_client_t *c;
} sl_tunnel_t;

/* ---- lifetime --------------------------------------------------------------------------- */

static void on_pipe_end(sl_pipe_t *p, sl_pipe_end_t why, int side)
{
    sl_tunnel_t *t = sl_container_of(p, sl_tunnel_t, pipe);
    const char *error = NULL;
    if (why == SL_PIPE_IDLE) error = "idle_timeout";
    else if (why == SL_PIPE_ERROR) error = side == 0 ? "client_closed" : "upstream_reset";
    sl_client_tunnel_done(t->c, error); /* closes the client, which calls sl_tunnel_close */
}

void sl_tunnel_start(void *stream, uv_stream_t *up, const char *early, size_t n)
{
    sl_client_t *c = stream;
    sl_exchange_t *ex = &c->rq->ex;
    sl_tunnel_t *t = sl_xcalloc(1, sizeof(*t));
    t->c = c;
    sl_pipe_init(&t->pipe, &c->w->loop, (uv_stream_t *)&c->tcp, up, c->w->read_buf, sizeof(c->w->read_buf),
                 sl_policy_websocket_idle_ms(ex->route), on_pipe_end);
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
    int rc = sl_pipe_send(&t->pipe, 1, pending.data, pending.len);
    sl_buf_free(&pending);
    if (rc == 0) rc = sl_pipe_send(&t->pipe, 0, early, n);
    if (rc != 0) return;
    if (c->peer_eof) {
        /* The client half-closed while waiting for the 101. */
        sl_pipe_eof(&t->pipe, 0);
        if (c->closing) return;
    }
    sl_pipe_start(&t->pipe);
}

static void on_idle_closed(uv_handle_t *h)
{
    free(sl_container_of((uv_timer_t *)h, sl_tunnel_t, pipe.idle));
}

void sl_tunnel_close(sl_client_t *c)
{
    sl_tunnel_t *t = c->tunnel;
    sl_exchange_t *ex = &c->rq->ex;
    c->tunnel = NULL;
    c->tcp.data = c;
    ex->bytes_in += t->pipe.side[1].written;
    ex->bytes_out += t->pipe.side[0].written;
    /* Cut by the end of the shutdown grace period, rather than by either end. */
    if (!ex->error && !ex->resp_complete && c->w->stopping) ex->error = "shutdown";
    sl_upstream_close_detached(t->pipe.side[1].s);
    sl_pipe_close(&t->pipe, on_idle_closed);
}
