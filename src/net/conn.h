/* Connections: one table of operations per connection type (TCP today; TLS fills the same table
 * later), so the code above (stream sessions, health checks, upstream clients) reads, writes,
 * connects and closes without knowing what carries the bytes.
 *
 * A type sits between the socket and the user. It may transform what is read and written (TLS
 * decrypts into the buffer the user's alloc callback gives and encrypts what the user writes),
 * and it may hold the user's connect callback back until a handshake is over: sl_conn_connect()
 * calls the type's connect, then its handshake when it has one, then the user, with one
 * deadline for both. Users see plain bytes in both directions and never the socket.
 *
 * Lifetime follows libuv: the caller embeds an sl_conn_t in its own struct, calls
 * sl_conn_init() once, and frees the memory only in the callback of sl_conn_close(), which is
 * called once every handle of the connection (socket, connect timer) is closed. A closed
 * connection may be initialised again (a failover to the next node reuses it).
 *
 * Cost on the data path: for TCP a read is libuv's read with one more indirect call, a write is
 * uv_try_write / uv_write on the caller's buffers and request: nothing copied, nothing
 * allocated. All functions run on the loop's thread. */
#ifndef SL_NET_CONN_H
#define SL_NET_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>

typedef struct sl_conn sl_conn_t;
typedef struct sl_conn_write sl_conn_write_t;
typedef struct sl_conn_shutdown sl_conn_shutdown_t;

/* status 0: connected (and, for a type with a handshake, the handshake is done); else a negative
 * libuv error, UV_ETIMEDOUT when the deadline passed first. Not called when the connection was
 * closed before the connect finished. */
typedef void (*sl_conn_connect_cb)(sl_conn_t *c, int status);
/* Where the next read goes (as uv_alloc_cb; buf->len 0 is UV_ENOBUFS for the read). */
typedef void (*sl_conn_alloc_cb)(sl_conn_t *c, uv_buf_t *buf);
/* As uv_read_cb: nread bytes of plain data in buf, UV_EOF at the peer's end, or an error. */
typedef void (*sl_conn_read_cb)(sl_conn_t *c, ssize_t nread, const uv_buf_t *buf);
typedef void (*sl_conn_write_cb)(sl_conn_write_t *req, int status);
typedef void (*sl_conn_shutdown_cb)(sl_conn_shutdown_t *req, int status);
typedef void (*sl_conn_close_cb)(sl_conn_t *c);

/* A write in flight, owned by the caller until its callback (it may be embedded in whatever
 * holds the bytes). The bytes must stay valid until then too. */
struct sl_conn_write {
    uv_write_t uv; /* the type's own: TCP writes with it */
    sl_conn_t *conn;
    sl_conn_write_cb cb;
    void *data; /* the caller's */
};

/* A shutdown of the write half in flight, owned by the caller until its callback. */
struct sl_conn_shutdown {
    uv_shutdown_t uv;
    sl_conn_t *conn;
    sl_conn_shutdown_cb cb;
    void *data;
};

/* One connection type. Every operation but close returns 0 or a negative libuv error. */
typedef struct sl_conn_type {
    const char *name;
    /* Starts connecting c's socket to addr; the type calls sl_conn__connected(c, status) when the
     * socket is connected or failed. The deadline is sl_conn_connect()'s. */
    int (*connect)(sl_conn_t *c, const struct sockaddr *addr);
    /* Optional (NULL for TCP): runs once the socket is connected, before the user hears of it;
     * calls sl_conn__handshaken(c, status) when done. TLS's ClientHello goes here. */
    int (*handshake)(sl_conn_t *c);
    /* Delivers plain bytes to read_cb in buffers from alloc_cb until read_stop. */
    int (*read_start)(sl_conn_t *c);
    int (*read_stop)(sl_conn_t *c);
    /* Writes what the connection takes now without queueing: the number of bytes taken (maybe
     * fewer than given), or UV_EAGAIN, or an error. */
    int (*try_write)(sl_conn_t *c, const uv_buf_t *bufs, unsigned n);
    /* Queues bufs after everything written before; req->cb runs once they are gone. */
    int (*write)(sl_conn_t *c, sl_conn_write_t *req, const uv_buf_t *bufs, unsigned n);
    /* Ends the write half once queued writes are gone (TLS: close_notify first). */
    int (*shutdown)(sl_conn_t *c, sl_conn_shutdown_t *req);
    /* Closes the socket and whatever the type holds; calls sl_conn__handle_closed(c) once per
     * handle it closes (the socket's is counted by sl_conn_init). */
    void (*close)(sl_conn_t *c);
} sl_conn_type_t;

/* A connection. Fields are the types' and conn.c's; users go through the functions below and
 * may use `data` (and read `type`, `loop`). */
struct sl_conn {
    const sl_conn_type_t *type;
    uv_loop_t *loop;
    void *data;        /* the user's */
    uv_tcp_t tcp;      /* the socket, for every type built on TCP */
    uv_connect_t creq; /* TCP connect request */
    uv_timer_t timer;  /* the connect (and handshake) deadline */
    sl_conn_connect_cb connect_cb;
    sl_conn_alloc_cb alloc_cb;
    sl_conn_read_cb read_cb;
    sl_conn_close_cb close_cb;
    void *type_state; /* TLS: its session and buffers */
    int handles;      /* open handles; the last closed calls close_cb */
    /* connecting: a connect is pending (callback not yet called); closing: sl_conn_close() ran. */
    unsigned connecting : 1, timer_open : 1, closing : 1;
};

/* TCP: the socket as it is. */
extern const sl_conn_type_t sl_conn_tcp;

/* Prepares c on loop with type (a new socket, not yet connected); c->data is kept. Always
 * succeeds; call sl_conn_close() once whatever happens next. */
void sl_conn_init(sl_conn_t *c, uv_loop_t *loop, const sl_conn_type_t *type);

/* Accepts a pending connection of server into c (after sl_conn_init, TCP types only). Returns 0
 * or a negative libuv error. */
int sl_conn_accept(sl_conn_t *c, uv_stream_t *server);

/* Connects c to addr; cb runs once (connected, failed, or timeout_ms passed: 0 means no
 * deadline). Returns 0, or a negative libuv error (cb will not run). */
int sl_conn_connect(sl_conn_t *c, const struct sockaddr *addr, uint64_t timeout_ms, sl_conn_connect_cb cb);

int sl_conn_read_start(sl_conn_t *c, sl_conn_alloc_cb alloc_cb, sl_conn_read_cb read_cb);
int sl_conn_read_stop(sl_conn_t *c);

/* See the type's try_write and write. cb is stored in req. */
int sl_conn_try_write(sl_conn_t *c, const uv_buf_t *bufs, unsigned n);
int sl_conn_write(sl_conn_t *c, sl_conn_write_t *req, const uv_buf_t *bufs, unsigned n, sl_conn_write_cb cb);
int sl_conn_shutdown(sl_conn_t *c, sl_conn_shutdown_t *req, sl_conn_shutdown_cb cb);

/* Closes c (a pending connect's callback will not run); cb runs once everything is closed, and
 * the caller may free c's memory there. Called at most once per sl_conn_init(). */
void sl_conn_close(sl_conn_t *c, sl_conn_close_cb cb);

/* True between sl_conn_close() and its callback. */
static inline int sl_conn_is_closing(const sl_conn_t *c)
{
    return c->closing;
}

/* TCP_NODELAY on the socket (types on TCP). */
int sl_conn_nodelay(sl_conn_t *c, int on);

/* For the types (the other files of net/), not their users. */
void sl_conn__connected(sl_conn_t *c, int status);
void sl_conn__handshaken(sl_conn_t *c, int status);
void sl_conn__handle_closed(sl_conn_t *c);

#endif
