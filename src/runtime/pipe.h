/* Byte pipes between two connected streams: what a WebSocket tunnel (http/tunnel.c) and a TCP
 * stream session (stream/tcp.c) have in common. Bytes are copied each way as they come, a side
 * stops being read while the other has more than SL_HIGH_WATER queued (and reads again below
 * SL_LOW_WATER), an EOF is passed on as a shutdown of the other side's write half once what is
 * queued for it has gone, and the pipe ends when both directions are done, on an error, or
 * after idle_ms without a byte either way. */
#ifndef SL_RUNTIME_PIPE_H
#define SL_RUNTIME_PIPE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

/* Above this many queued bytes a side stops reading its peer; below the low mark it reads again. */
#define SL_HIGH_WATER (256 * 1024)
#define SL_LOW_WATER (64 * 1024)

/* A queued write: the bytes the socket did not take at once, copied. */
typedef struct sl_wreq {
    uv_write_t req;
    void *owner;
    size_t len;
    char data[];
} sl_wreq_t;

/* Writes bufs to s: straight into the socket when it takes them (no copy, no callback), else
 * the rest is copied into one sl_wreq_t (owner set) and queued with cb. Order is kept: while
 * anything is queued, everything after it queues too. Returns the number of bytes queued
 * (0 when all went out), or a negative libuv error. */
ssize_t sl_stream_write(uv_stream_t *s, const uv_buf_t *bufs, unsigned n, void *owner, uv_write_cb cb);

typedef enum {
    SL_PIPE_DONE,  /* both sides sent EOF and both write halves were shut down */
    SL_PIPE_IDLE,  /* no byte either way for idle_ms */
    SL_PIPE_ERROR, /* reading, writing or shutting down `side` failed (reset, closed) */
} sl_pipe_end_t;

typedef struct sl_pipe sl_pipe_t;

/* The pipe ended. The owner closes both streams from here (or right after, before the loop
 * turns) and then calls sl_pipe_close(); callbacks that come after find their handle closing
 * and do nothing. Called at most once. */
typedef void (*sl_pipe_end_cb)(sl_pipe_t *p, sl_pipe_end_t why, int side);

typedef struct sl_pipe_side {
    uv_stream_t *s;
    size_t queued;    /* bytes written to s that it has not taken yet */
    uint64_t read;    /* bytes read from s */
    uint64_t written; /* bytes handed to s, queued ones included */
    /* eof: s sent FIN; shut: s's write half is shut down (after the bytes queued before it);
     * paused: s is not read while the other side is over the high water mark. */
    unsigned eof : 1, shut : 1, paused : 1;
} sl_pipe_side_t;

struct sl_pipe {
    sl_pipe_side_t side[2];
    uv_timer_t idle;
    uint64_t idle_ms; /* 0: no idle timeout */
    uint64_t last_ms; /* loop time of the last bytes read or written either way */
    char *buf;        /* where both sides read into: every byte is written or copied before the read
                       * callback returns, so one buffer per loop serves every pipe */
    size_t buf_len;
    sl_pipe_end_cb on_end;
    int ended, started;
};

/* Prepares p between streams a (side 0) and b (side 1), both connected and owned by the caller;
 * their `data` points at p from now on (the owner puts its own back when the pipe is over). The
 * idle timer is initialised on loop: call sl_pipe_close() once, whatever happens. */
void sl_pipe_init(sl_pipe_t *p, uv_loop_t *loop, uv_stream_t *a, uv_stream_t *b, char *buf, size_t buf_len,
                  uint64_t idle_ms, sl_pipe_end_cb on_end);

/* Writes n bytes to side `to`, counted as if read from the other side (bytes that arrived before
 * the pipe started, or a preamble). Returns 0, or -1 when that ended the pipe. */
int sl_pipe_send(sl_pipe_t *p, int to, const char *data, size_t n);

/* Side `from` sent EOF before the pipe started: the other side's write half is shut down. */
void sl_pipe_eof(sl_pipe_t *p, int from);

/* Starts reading both sides and the idle timer. */
void sl_pipe_start(sl_pipe_t *p);

/* Stops reading and closes the idle timer; closed_cb runs once it is closed (the owner may free
 * the pipe there: the timer handle is &p->idle). */
void sl_pipe_close(sl_pipe_t *p, uv_close_cb closed_cb);

#endif
