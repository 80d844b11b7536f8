#include "runtime/listen_kind.h"

/* One row per sl_listen_kind_t, in its order. */
static const sl_listener_ops_t *const kinds[SL_LISTEN_KINDS] = {
    [SL_LISTEN_HTTP] = &sl_http_listener_ops,
    [SL_LISTEN_STREAM_TCP] = &sl_stream_tcp_listener_ops,
    [SL_LISTEN_STREAM_UDP] = &sl_stream_udp_listener_ops,
};

const sl_listener_ops_t *sl_listen_kind(sl_listen_kind_t k)
{
    return kinds[k];
}
