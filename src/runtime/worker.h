/* A worker thread: one libuv loop, its own SO_REUSEPORT listeners, client connections and
 * upstream keep-alive pool. Nothing in a worker is touched by another thread except through
 * its uv_async_t. */
#ifndef SL_RUNTIME_WORKER_H
#define SL_RUNTIME_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "base/buf.h"
#include "base/list.h"
#include "base/map.h"
#include "observe/access_log.h"
#include "runtime/generation.h"

#define SL_READ_BUF_SIZE 65536

typedef struct sl_listener {
    uv_tcp_t tcp;
    sl_list_t link;
    struct sl_worker *w;
    sl_listen_kind_t kind;
    char *addr; /* "host:port" as configured */
    struct sockaddr_storage ss; /* counted in sl_listener_hold() while held is set */
    int held;
} sl_listener_t;

typedef struct sl_worker {
    unsigned index;
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t wakeup;          /* a reload or a stop is pending */
    atomic_int want_reload;
    atomic_int want_stop;
    atomic_int want_force;
    int stopping;
    atomic_int finished;        /* read by the main thread before it wakes the worker */
    sl_generation_t *gen;       /* the worker's reference to the newest generation */
    sl_list_t listeners;        /* open sl_listener_t, following the configuration */
    sl_list_t sessions;         /* every TCP stream session (stream/tcp.c) */
    size_t n_sessions;
    sl_list_t udp_listeners;    /* UDP stream listeners (stream/udp_proxy.c), stopped ones too */
    uv_timer_t tick;            /* every listener kind's timeouts (sl_listener_ops_t.tick) */
    uv_timer_t grace;           /* shutdown grace period */
    char read_buf[SL_READ_BUF_SIZE];
    sl_access_buf_t alog;       /* access log lines on their way to the writer */
    /* Each listener kind's own state, filled by its worker_init (runtime/listen_kind.h): HTTP's
     * clients, timeouts and pools are in its slot (http/h1_internal.h). */
    void *kind_state[SL_LISTEN_KINDS];
    int startup_error;          /* set when a listener could not be opened */
    pthread_mutex_t started_lock;
    pthread_cond_t started_cond;
    int started;
} sl_worker_t;

/* Starts worker w (index i) serving g; returns after its listeners are open, 0 or negative. */
int sl_worker_start(sl_worker_t *w, unsigned index, sl_generation_t *g);
/* Tells the worker a new generation was published. Any thread. */
void sl_worker_notify_reload(sl_worker_t *w);
/* Tells the worker to stop accepting and drain. Any thread. */
void sl_worker_notify_stop(sl_worker_t *w);
/* Tells a stopping worker to close every connection now. Any thread. */
void sl_worker_notify_force(sl_worker_t *w);
void sl_worker_join(sl_worker_t *w);

/* Called when a connection closes, so a stopping worker can finish. */
void sl_worker_connection_closed(sl_worker_t *w);

#endif
