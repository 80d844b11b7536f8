/* HTTP/1.1 as a listener kind (runtime/listen_kind.h): the worker's HTTP state, and the
 * runtime's hooks onto h1_conn.c's clients and h1_client.c's keep-alive pool. */
#include "base/common.h"
#include "http/h1_internal.h"
#include "runtime/listen_kind.h"
#include "runtime/listener.h"

/* How often idle upstream connections past their keep-alive timeout are closed. */
#define POOL_SWEEP_MS 1000

void sl_h1_worker_init(sl_worker_t *w)
{
    sl_h1_worker_t *s = sl_xcalloc(1, sizeof(*s));
    sl_list_init(&s->clients);
    for (int i = 0; i < SL_TQ_COUNT; i++) sl_list_init(&s->tq[i]);
    sl_map_init(&s->pools);
    s->last_sweep_ms = uv_now(&w->loop);
    w->kind_state[SL_LISTEN_HTTP] = s;
}

static int h1_worker_init(sl_worker_t *w)
{
    sl_h1_worker_init(w);
    return 0;
}

static void h1_worker_cleanup(sl_worker_t *w)
{
    if (!sl_h1w(w)) return;
    sl_h1_worker_cleanup(w);
    sl_buf_free(&sl_h1w(w)->batch);
    free(w->kind_state[SL_LISTEN_HTTP]);
    w->kind_state[SL_LISTEN_HTTP] = NULL;
}

static void h1_tick(sl_worker_t *w)
{
    sl_h1_timeouts(w);
    sl_h1_worker_t *s = sl_h1w(w);
    uint64_t now = uv_now(&w->loop);
    if (s && now - s->last_sweep_ms >= POOL_SWEEP_MS) {
        s->last_sweep_ms = now;
        sl_pool_sweep(w);
    }
}

/* Idle upstream connections first: nothing new will take them. */
static void h1_drain(sl_worker_t *w)
{
    sl_pool_close_all(w);
    sl_h1_drain(w);
}

static size_t h1_connections(const sl_worker_t *w)
{
    return sl_h1w(w)->n_clients;
}

static int h1_drained(const sl_worker_t *w)
{
    return sl_h1w(w)->n_clients == 0;
}

const sl_listener_ops_t sl_http_listener_ops = {
    .name = "http",
    .config_path = "gateway.http.listen",
    .note = "",
    .prepare = sl_listener_prepare,
    .accept = sl_h1_accept,
    .drain = h1_drain,
    .close_all = sl_h1_close_all,
    .tick = h1_tick,
    .connections = h1_connections,
    .drained = h1_drained,
    .done = sl_pool_close_all,
    .worker_init = h1_worker_init,
    .worker_cleanup = h1_worker_cleanup,
};
