/* Listening sockets. Each worker opens its own socket per address with SO_REUSEPORT, so the
 * kernel spreads new connections across workers without a shared accept lock.
 *
 * One process per address. SO_REUSEPORT would as well let a second process (of the same user)
 * bind an address this one serves and silently take part of its traffic. So before the sockets
 * of an address this process does not hold yet are opened, sl_listener_probe() binds it once
 * without SO_REUSEPORT: that fails with EADDRINUSE when anyone serves it, another sluice
 * included, and the start or reload fails naming the address. The probe is closed before the
 * SO_REUSEPORT sockets are bound, so two processes that probe the same free address within the
 * same few microseconds may both pass; nothing in the kernel closes that window without giving
 * up SO_REUSEPORT. Addresses the process already holds (sl_listener_held(): listeners still
 * open, UDP sessions still bound to a port a reload removed) are not probed, since the probe
 * would meet the process's own sockets. */
#ifndef SL_RUNTIME_LISTENER_H
#define SL_RUNTIME_LISTENER_H

#include <uv.h>

#include "config/config.h"

/* addr as a socket address, read by sl_config_listen_addr() (an IP literal or localhost).
 * Returns 0 or -EINVAL (UV_EINVAL). */
int sl_listener_addr(const sl_hostport_t *addr, struct sockaddr_storage *out);

/* Binds a socket to addr without SO_REUSEPORT (udp: a datagram socket) and closes it at once.
 * Returns 0 when nobody serves addr, else a negative errno (-EADDRINUSE when somebody does). */
int sl_listener_probe(const sl_hostport_t *addr, int udp);

/* Counts sockets of this process on an address (as sl_listener_addr() gives it): delta +1 when
 * one is bound there, -1 when it is closed. Any thread. */
void sl_listener_hold(int udp, const struct sockaddr_storage *addr, int delta);

/* Whether this process holds a socket that a bind to addr would clash with: the same protocol,
 * family and port, and the same address or a wildcard on either side. Any thread. */
int sl_listener_held(int udp, const sl_hostport_t *addr);

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
