/* Listening sockets. Each worker opens its own socket per address with SO_REUSEPORT, so the
 * kernel spreads new connections across workers without a shared accept lock. */
#ifndef SL_RUNTIME_LISTENER_H
#define SL_RUNTIME_LISTENER_H

#include <uv.h>

#include "config/config.h"

/* Opens, binds and listens on addr into tcp (initialised on loop). reuseport is set for the
 * per-worker sockets. Returns 0 or a negative libuv error; on error tcp is closed by the caller. */
int sl_listener_open(uv_loop_t *loop, uv_tcp_t *tcp, const sl_hostport_t *addr, int reuseport, uv_connection_cb cb);

/* Checks that addr can be bound with SO_REUSEPORT (by this process's listeners, or because it
 * is free) without accepting anything. Returns 0 or a negative error. */
int sl_listener_probe(const sl_hostport_t *addr);

#endif
