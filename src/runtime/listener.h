/* Listening sockets. Each worker opens its own socket per address with SO_REUSEPORT, so the
 * kernel spreads new connections across workers without a shared accept lock. */
#ifndef SL_RUNTIME_LISTENER_H
#define SL_RUNTIME_LISTENER_H

#include <uv.h>

#include "config/config.h"

/* addr as a socket address, read by sl_config_listen_addr() (an IP literal or localhost).
 * Returns 0 or -EINVAL (UV_EINVAL). */
int sl_listener_addr(const sl_hostport_t *addr, struct sockaddr_storage *out);

/* Opens, binds and listens on addr into tcp (initialised on loop). reuseport is set for the
 * per-worker sockets. Returns 0 or a negative libuv error; on error tcp is closed by the caller. */
int sl_listener_open(uv_loop_t *loop, uv_tcp_t *tcp, const sl_hostport_t *addr, int reuseport, uv_connection_cb cb);

/* Returns a listening SO_REUSEPORT socket on addr (connections queue in its backlog from now
 * on), or a negative error. For a worker to take over with sl_listener_adopt(). */
int sl_listener_prepare(const sl_hostport_t *addr);

/* Serves the listening socket fd on loop (tcp initialised here; fd closed on failure).
 * Returns 0 or a negative libuv error. */
int sl_listener_adopt(uv_loop_t *loop, uv_tcp_t *tcp, int fd, uv_connection_cb cb);

#endif
