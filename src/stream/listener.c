/* TCP and UDP stream ports as listener kinds (runtime/listen_kind.h): the runtime's hooks onto
 * tcp.c's sessions and udp_proxy.c's engines. */
#include "runtime/listen_kind.h"
#include "runtime/listener.h"
#include "runtime/worker.h"
#include "stream/tcp.h"
#include "stream/udp_proxy.h"

static size_t tcp_connections(const sl_worker_t *w)
{
    return w->n_sessions;
}

static int tcp_drained(const sl_worker_t *w)
{
    return w->n_sessions == 0;
}

const sl_listener_ops_t sl_stream_tcp_listener_ops = {
    .name = "tcp",
    .config_path = "stream route",
    .note = " (tcp stream)",
    .prepare = sl_listener_prepare,
    .accept = sl_stream_tcp_accept,
    /* No drain: sessions run on until they end or the grace period does. */
    .close_all = sl_stream_tcp_close_all,
    .connections = tcp_connections,
    .drained = tcp_drained,
};

/* An engine is freed on a later loop turn once its sessions are gone: the worker is drained
 * of UDP when the list is empty. */
static int udp_drained(const sl_worker_t *w)
{
    return sl_list_empty(&w->udp_listeners);
}

const sl_listener_ops_t sl_stream_udp_listener_ops = {
    .name = "udp",
    .config_path = "stream route",
    .note = " (udp stream)",
    .datagram = 1,
    .prepare = sl_stream_udp_prepare,
    .sync = sl_stream_udp_sync,
    .drain = sl_stream_udp_stop_all,
    .close_all = sl_stream_udp_close_all,
    .drained = udp_drained,
};
