#include "runtime/worker.h"
#include "base/common.h"
#include "base/log.h"
#include "runtime/listen_kind.h"
#include "runtime/listener.h"
#include "runtime/server.h"

#include <string.h>
#include <unistd.h>

static void on_connection(uv_stream_t *server, int status)
{
    sl_listener_t *l = server->data;
    if (status < 0) {
        sl_log_warn("worker %u: accept: %s", l->w->index, uv_strerror(status));
        return;
    }
    sl_listen_kind(l->kind)->accept(l->w, server);
}

static void on_listener_closed(uv_handle_t *h)
{
    sl_listener_t *l = h->data;
    if (l->held) sl_listener_hold(0, &l->ss, -1);
    free(l->addr);
    free(l);
}

static void listener_close(sl_listener_t *l)
{
    sl_list_remove(&l->link);
    uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
}

/* Closes the listeners the runtime holds, then lets every kind drain: no new work, in-flight
 * work goes on. */
static void stop_accepting(sl_worker_t *w)
{
    while (!sl_list_empty(&w->listeners)) listener_close(sl_container_of(w->listeners.next, sl_listener_t, link));
    for (int k = 0; k < SL_LISTEN_KINDS; k++)
        if (sl_listen_kind(k)->drain) sl_listen_kind(k)->drain(w);
}

/* Serves ls: on fd when the main thread prepared one (a reload), else on a new socket. */
static int listener_open(sl_worker_t *w, const sl_listen_t *ls, int fd)
{
    const sl_hostport_t *addr = &ls->addr;
    sl_listener_t *l = sl_xcalloc(1, sizeof(*l));
    l->w = w;
    l->kind = ls->kind;
    l->addr = sl_xstrdup(addr->text);
    sl_list_init(&l->link);
    int rc = fd >= 0 ? sl_listener_adopt(&w->loop, &l->tcp, fd, on_connection)
                     : sl_listener_open(&w->loop, &l->tcp, addr, 1, on_connection);
    l->tcp.data = l;
    if (rc != 0) {
        sl_log_error("worker %u: cannot listen on %s: %s", w->index, addr->text, uv_strerror(rc));
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
        return rc;
    }
    if (sl_listener_addr(addr, &l->ss) == 0) {
        sl_listener_hold(0, &l->ss, 1);
        l->held = 1;
    }
    sl_list_push_tail(&w->listeners, &l->link);
    return 0;
}

static int listener_is(const sl_listener_t *l, const sl_listen_t *ls)
{
    return l->kind == ls->kind && !strcmp(l->addr, ls->addr.text);
}

/* Opens the addresses g lists that are not open yet and closes those it no longer lists;
 * connections accepted on a closed listener carry on, and so do UDP sessions. */
static int sync_listeners(sl_worker_t *w, sl_generation_t *g)
{
    int rc = 0;
    for (sl_list_t *n = w->listeners.next, *next; n != &w->listeners; n = next) {
        next = n->next;
        sl_listener_t *l = sl_container_of(n, sl_listener_t, link);
        int keep = 0;
        for (size_t i = 0; i < g->n_listens && !keep; i++) keep = listener_is(l, &g->listens[i]);
        if (!keep) {
            sl_log_info("worker %u: closing listener %s", w->index, l->addr);
            listener_close(l);
        }
    }
    for (size_t i = 0; i < g->n_listens; i++) {
        if (!sl_listen_kind(g->listens[i].kind)->accept) continue; /* the kind's own sockets: below */
        int open = 0;
        for (sl_list_t *n = w->listeners.next; n != &w->listeners && !open; n = n->next)
            open = listener_is(sl_container_of(n, sl_listener_t, link), &g->listens[i]);
        int fd = sl_generation_take_listen_fd(g, i, w->index);
        if (open) {
            if (fd >= 0) close(fd);
        } else {
            int r = listener_open(w, &g->listens[i], fd);
            if (r != 0 && !rc) rc = r;
        }
    }
    for (int k = 0; k < SL_LISTEN_KINDS; k++) {
        const sl_listener_ops_t *o = sl_listen_kind(k);
        int r = o->sync ? o->sync(w, g) : 0;
        if (r != 0 && !rc) rc = r;
    }
    return rc;
}

static void finish(sl_worker_t *w)
{
    /* Nothing left to serve: closing the remaining handles lets uv_run return. */
    if (atomic_exchange(&w->finished, 1)) return;
    sl_access_buf_release(&w->alog); /* every line this worker made, to the writer */
    sl_server_worker_done();
    for (int k = 0; k < SL_LISTEN_KINDS; k++)
        if (sl_listen_kind(k)->done) sl_listen_kind(k)->done(w);
    if (!uv_is_closing((uv_handle_t *)&w->tick)) uv_close((uv_handle_t *)&w->tick, NULL);
    if (!uv_is_closing((uv_handle_t *)&w->grace)) uv_close((uv_handle_t *)&w->grace, NULL);
    if (!uv_is_closing((uv_handle_t *)&w->wakeup)) uv_close((uv_handle_t *)&w->wakeup, NULL);
}

/* Nothing left open but the worker's own handles. */
static int drained(const sl_worker_t *w)
{
    for (int k = 0; k < SL_LISTEN_KINDS; k++)
        if (!sl_listen_kind(k)->drained(w)) return 0;
    return 1;
}

static size_t connections(const sl_worker_t *w)
{
    size_t n = 0;
    for (int k = 0; k < SL_LISTEN_KINDS; k++)
        if (sl_listen_kind(k)->connections) n += sl_listen_kind(k)->connections(w);
    return n;
}

void sl_worker_connection_closed(sl_worker_t *w)
{
    if (w->stopping && drained(w)) finish(w);
}

static void close_all(sl_worker_t *w)
{
    for (int k = 0; k < SL_LISTEN_KINDS; k++) sl_listen_kind(k)->close_all(w);
}

static void on_grace(uv_timer_t *t)
{
    sl_worker_t *w = t->data;
    size_t n = connections(w);
    if (n) sl_log_warn("worker %u: shutdown grace period over, closing %zu connections", w->index, n);
    close_all(w);
}

static void on_tick(uv_timer_t *t)
{
    sl_worker_t *w = t->data;
    for (int k = 0; k < SL_LISTEN_KINDS; k++)
        if (sl_listen_kind(k)->tick) sl_listen_kind(k)->tick(w);
    sl_access_buf_tick(&w->alog, uv_now(&w->loop));
}

static void on_wakeup(uv_async_t *a)
{
    sl_worker_t *w = a->data;
    if (atomic_exchange(&w->want_reload, 0) && !w->stopping) {
        sl_generation_t *g = sl_generation_current();
        if (g) {
            sl_generation_release(w->gen);
            w->gen = g;
            sync_listeners(w, g);
        }
    }
    if (atomic_exchange(&w->want_force, 0) && w->stopping) {
        close_all(w);
        return;
    }
    if (atomic_exchange(&w->want_stop, 0) && !w->stopping) {
        w->stopping = 1;
        stop_accepting(w);
        if (drained(w)) {
            finish(w);
            return;
        }
        uv_timer_start(&w->grace, on_grace, w->gen->cfg->gateway.shutdown_timeout_ms, 0);
    }
}

static void *worker_main(void *arg)
{
    sl_worker_t *w = arg;
    int rc = 0;
    for (int k = 0; k < SL_LISTEN_KINDS && rc == 0; k++)
        if (sl_listen_kind(k)->worker_init) rc = sl_listen_kind(k)->worker_init(w);
    if (rc == 0) rc = sync_listeners(w, w->gen);
    pthread_mutex_lock(&w->started_lock);
    w->startup_error = rc;
    w->started = 1;
    pthread_cond_signal(&w->started_cond);
    pthread_mutex_unlock(&w->started_lock);
    if (rc != 0) {
        w->stopping = 1;
        stop_accepting(w);
        close_all(w);
        finish(w);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

int sl_worker_start(sl_worker_t *w, unsigned index, sl_generation_t *g)
{
    memset(w, 0, sizeof(*w));
    w->index = index;
    w->gen = g;
    sl_list_init(&w->sessions);
    sl_list_init(&w->listeners);
    sl_list_init(&w->udp_listeners);
    atomic_init(&w->want_reload, 0);
    atomic_init(&w->want_stop, 0);
    atomic_init(&w->want_force, 0);
    atomic_init(&w->finished, 0);
    pthread_mutex_init(&w->started_lock, NULL);
    pthread_cond_init(&w->started_cond, NULL);
    uv_loop_init(&w->loop);
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_timer_init(&w->loop, &w->grace);
    w->grace.data = w;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, 100, 100);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) return UV_EAGAIN;
    pthread_mutex_lock(&w->started_lock);
    while (!w->started) pthread_cond_wait(&w->started_cond, &w->started_lock);
    pthread_mutex_unlock(&w->started_lock);
    return w->startup_error;
}

void sl_worker_notify_reload(sl_worker_t *w)
{
    atomic_store(&w->want_reload, 1);
    uv_async_send(&w->wakeup);
}

void sl_worker_notify_stop(sl_worker_t *w)
{
    atomic_store(&w->want_stop, 1);
    uv_async_send(&w->wakeup);
}

void sl_worker_notify_force(sl_worker_t *w)
{
    if (atomic_load(&w->finished)) return;
    atomic_store(&w->want_force, 1);
    uv_async_send(&w->wakeup);
}

void sl_worker_join(sl_worker_t *w)
{
    pthread_join(w->thread, NULL);
    uv_loop_close(&w->loop);
    for (int k = 0; k < SL_LISTEN_KINDS; k++)
        if (sl_listen_kind(k)->worker_cleanup) sl_listen_kind(k)->worker_cleanup(w);
    sl_generation_release(w->gen);
    w->gen = NULL;
    pthread_mutex_destroy(&w->started_lock);
    pthread_cond_destroy(&w->started_cond);
}
