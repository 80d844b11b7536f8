/* Byte pipes (pipe.h). Callbacks that may run after the pipe ended (writes and shutdowns
 * cancelled by the owner's close) look at their handle first and leave as soon as it is closing,
 * so they never touch a pipe its owner is about to free. */
#include "runtime/pipe.h"
#include "base/common.h"

#include <string.h>

ssize_t sl_stream_write(uv_stream_t *s, const uv_buf_t *bufs, unsigned n, void *owner, uv_write_cb cb)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    size_t done = 0;
    int rc = uv_try_write(s, bufs, n);
    if (rc > 0)
        done = (size_t)rc;
    else if (rc != UV_EAGAIN && rc != 0)
        return rc;
    if (done == total) return 0;
    sl_wreq_t *wr = sl_xmalloc(sizeof(*wr) + (total - done));
    wr->owner = owner;
    wr->len = total - done;
    size_t skip = done, off = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t len = bufs[i].len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(wr->data + off, bufs[i].base + skip, len - skip);
        off += len - skip;
        skip = 0;
    }
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)wr->len);
    rc = uv_write(&wr->req, s, &b, 1, cb);
    if (rc != 0) {
        free(wr);
        return rc;
    }
    return (ssize_t)(total - done);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void end(sl_pipe_t *p, sl_pipe_end_t why, int side)
{
    if (p->ended) return;
    p->ended = 1;
    uv_timer_stop(&p->idle);
    p->on_end(p, why, side);
}

static int side_of(const sl_pipe_t *p, const uv_stream_t *s)
{
    return s == p->side[1].s;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    SL_UNUSED(suggested);
    sl_pipe_t *p = h->data;
    buf->base = p->buf;
    buf->len = p->buf_len;
}

static void read_side(sl_pipe_t *p, int i)
{
    sl_pipe_side_t *sd = &p->side[i];
    if (p->started && !p->ended && !sd->eof && !sd->paused) uv_read_start(sd->s, on_alloc, on_read);
}

static void on_written(uv_write_t *req, int status)
{
    sl_wreq_t *wr = sl_container_of(req, sl_wreq_t, req);
    sl_pipe_t *p = wr->owner;
    size_t len = wr->len;
    int closing = uv_is_closing((uv_handle_t *)req->handle);
    uv_stream_t *s = req->handle;
    free(wr);
    if (closing || p->ended) return;
    int i = side_of(p, s);
    if (status < 0) {
        end(p, SL_PIPE_ERROR, i);
        return;
    }
    p->side[i].queued -= len;
    p->last_ms = uv_now(p->idle.loop);
    /* The side feeding this one was paused while it was full. */
    if (p->side[!i].paused && p->side[i].queued < SL_LOW_WATER) {
        p->side[!i].paused = 0;
        read_side(p, !i);
    }
}

int sl_pipe_send(sl_pipe_t *p, int to, const char *data, size_t n)
{
    if (p->ended) return -1;
    if (!n) return 0;
    sl_pipe_side_t *sd = &p->side[to];
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)n);
    ssize_t queued = sl_stream_write(sd->s, &b, 1, p, on_written);
    if (queued < 0) {
        end(p, SL_PIPE_ERROR, to);
        return -1;
    }
    sd->written += n;
    sd->queued += (size_t)queued;
    sl_pipe_side_t *from = &p->side[!to];
    if (sd->queued > SL_HIGH_WATER && !from->paused) {
        from->paused = 1;
        uv_read_stop(from->s);
    }
    return 0;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    sl_pipe_t *p = req->data;
    uv_stream_t *s = req->handle;
    free(req);
    if (uv_is_closing((uv_handle_t *)s) || p->ended) return;
    int i = side_of(p, s);
    if (status < 0) {
        end(p, SL_PIPE_ERROR, i);
        return;
    }
    p->side[i].shut = 1;
    if (p->side[0].shut && p->side[1].shut) end(p, SL_PIPE_DONE, 0);
}

/* Shuts down side i's write half, once what is queued for it has gone. */
static void shut(sl_pipe_t *p, int i)
{
    uv_shutdown_t *req = sl_xmalloc(sizeof(*req));
    req->data = p;
    if (uv_shutdown(req, p->side[i].s, on_shutdown) != 0) {
        free(req);
        end(p, SL_PIPE_ERROR, i);
    }
}

void sl_pipe_eof(sl_pipe_t *p, int from)
{
    if (p->ended || p->side[from].eof) return;
    p->side[from].eof = 1;
    uv_read_stop(p->side[from].s);
    shut(p, !from);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    sl_pipe_t *p = s->data;
    if (nread == 0 || p->ended) return;
    int i = side_of(p, s);
    if (nread == UV_EOF) {
        sl_pipe_eof(p, i);
        return;
    }
    if (nread < 0) {
        end(p, SL_PIPE_ERROR, i);
        return;
    }
    p->side[i].read += (uint64_t)nread;
    p->last_ms = uv_now(s->loop);
    sl_pipe_send(p, !i, buf->base, (size_t)nread);
}

static void on_idle(uv_timer_t *timer)
{
    sl_pipe_t *p = timer->data;
    uint64_t quiet = uv_now(timer->loop) - p->last_ms;
    if (quiet >= p->idle_ms) {
        end(p, SL_PIPE_IDLE, 0);
        return;
    }
    /* Bytes moved since it was armed: wait for the rest of the period from the last of them. */
    uv_timer_start(timer, on_idle, p->idle_ms - quiet, 0);
}

void sl_pipe_init(sl_pipe_t *p, uv_loop_t *loop, uv_stream_t *a, uv_stream_t *b, char *buf, size_t buf_len,
                  uint64_t idle_ms, sl_pipe_end_cb on_end)
{
    memset(p, 0, sizeof(*p));
    p->side[0].s = a;
    p->side[1].s = b;
    a->data = b->data = p;
    p->buf = buf;
    p->buf_len = buf_len;
    p->idle_ms = idle_ms;
    p->on_end = on_end;
    uv_timer_init(loop, &p->idle);
    p->idle.data = p;
    p->last_ms = uv_now(loop);
}

void sl_pipe_start(sl_pipe_t *p)
{
    if (p->ended) return;
    p->started = 1;
    if (p->idle_ms) uv_timer_start(&p->idle, on_idle, p->idle_ms, 0);
    read_side(p, 0);
    read_side(p, 1);
}

void sl_pipe_close(sl_pipe_t *p, uv_close_cb closed_cb)
{
    p->ended = 1;
    uv_close((uv_handle_t *)&p->idle, closed_cb);
}
