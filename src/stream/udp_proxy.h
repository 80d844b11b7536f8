/* UDP stream sessions: a worker's UDP stream listeners, one session engine (udp.h) per listening
 * address of the generation, and what each session is to the rest of sluice.
 *
 * A session. The first datagram from a client address and port to one local address and port
 * is matched against the worker's generation (the first UDP route whose server_addr,
 * server_port and remote_addr take it; none: the datagram is dropped), then the route's plugins
 * run (ip-restriction refuses with 403; limit-conn counts the session under its key and refuses
 * beyond conn + burst with 503, with no delay: see below), then the service's max_sessions
 * (503 beyond it), then the balancer picks a node (hash keys on the client address; 502 when no
 * node may be picked). A refused client gets nothing: its datagram is dropped, the refusal goes
 * to sl_stream_session_end() like a finished session, and its next datagram asks again. An
 * admitted session lives in the engine until timeouts.idle without a datagram either way (200),
 * until the node refuses a datagram (ICMP port unreachable: 502, and a failure for the node's
 * passive checks), or until the shutdown grace period ends (200), and then goes to
 * sl_stream_session_end() with the bytes forwarded each way.
 *
 * limit-conn on UDP. Datagrams are forwarded as they come and never held, so a session inside
 * the burst is admitted at once: conn + burst is the limit, default_conn_delay is not applied.
 *
 * Reloads. An engine belongs to a listening address, not to a generation. A reload that keeps
 * an address keeps its engine, its socket and its sessions; each new client is matched against
 * the worker's newest generation (w->gen) when its first datagram arrives, and the session
 * keeps that generation (route, plugins, node, timeouts) until it ends, as TCP sessions do. An
 * address the generation no longer lists has its engine stopped: the port stops taking new
 * clients while its sessions carry on until idle. A new address gets the socket the main thread
 * prepared at publish time (sl_stream_udp_prepare), so it takes datagrams as soon as the reload
 * is done.
 *
 * max_sessions counts the open sessions of a service across workers and reloads (one counter
 * per service name, shared by every generation that has the service), so it is exact.
 *
 * Threading: everything but the quota functions runs on the worker's loop thread. */
#ifndef SL_STREAM_UDP_PROXY_H
#define SL_STREAM_UDP_PROXY_H

#include "config/config.h"

typedef struct sl_worker sl_worker_t;
typedef struct sl_generation sl_generation_t;
typedef struct sl_udp_quota sl_udp_quota_t;

/* Returns a UDP socket bound to addr (a literal address and port, as in the generation's
 * listens) for a worker's engine, or a negative error. Any thread: the main thread prepares
 * the sockets of new addresses at publish time. */
int sl_stream_udp_prepare(const sl_hostport_t *addr);

/* Makes w's UDP listeners follow g: starts an engine for every SL_LISTEN_STREAM_UDP address of g
 * that has none (on g's prepared socket for w when there is one), stops the engines of addresses
 * g no longer lists. Returns 0, or the first error (logged); the other addresses are served.
 * Worker thread. */
int sl_stream_udp_sync(sl_worker_t *w, sl_generation_t *g);

/* Stops every listener of w (shutdown): no new clients; open sessions carry on until idle. */
void sl_stream_udp_stop_all(sl_worker_t *w);

/* Ends every UDP session of w now (the shutdown grace period is over, or startup failed). The
 * engines free themselves on later loop turns; w->udp_listeners is empty once they have. */
void sl_stream_udp_close_all(sl_worker_t *w);

/* The open-session counter of the UDP service named service, with a new reference (created at
 * zero). Main thread, while building a generation. */
sl_udp_quota_t *sl_stream_udp_quota_get(const char *service);
/* Drops a reference; the last one frees it. Any thread. */
void sl_stream_udp_quota_release(sl_udp_quota_t *q);

#endif
