/* UDP proxy sessions: one engine per listening UDP socket per worker.
 *
 * What it does. The engine reads datagrams from its listener. The first datagram from a client
 * address and port, sent to one local address, opens a session: the caller's open_session()
 * matches a route and picks an upstream node, and the engine opens a UDP socket connected to
 * that node. From then on the client's datagrams go out on that socket, and every datagram the
 * node sends back goes to the client, from the address and port the client sent to. A session
 * ends after idle_timeout without a datagram either way, when the node refuses (ICMP port
 * unreachable), or when the engine is closed; session_end() then gets its facts. Datagrams
 * are never queued: one that cannot be sent at once (socket buffer full) is dropped and
 * counted, as a router would.
 *
 * Resources. A session holds one descriptor (its upstream socket) and under 1 KiB; after
 * a stop, two descriptors (see udp.c for why). max_sessions bounds both.
 *
 * Threading. An engine belongs to the thread running its loop: every function here and every
 * callback runs on that thread. Engines on other workers' loops share nothing with it (each
 * has its own SO_REUSEPORT listener; the kernel keeps a client on one of them).
 *
 * Lifetimes.
 * - sl_udp_engine_start() takes the listener fd; the engine closes it.
 * - open_session() returns an opaque pointer the caller owns (typically holding its route,
 *   generation reference and node). For every open_session() that returned 0, session_end()
 *   is called exactly once, with that pointer, including when the session is refused at
 *   once (over max_sessions, or no socket could be opened); the caller releases it there.
 * - The callbacks must not call sl_udp_engine_stop() or sl_udp_engine_close().
 * - After sl_udp_engine_stop() or sl_udp_engine_close() the engine frees itself once its last
 *   session has ended and its sockets are closed, on a later loop turn, and calls closed()
 *   right before; the caller must not use the engine pointer after that. Until then both
 *   functions may be called again (stop then close is how a grace period ends).
 * - The loop must keep running until closed() was called. */
#ifndef SL_STREAM_UDP_H
#define SL_STREAM_UDP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* The largest UDP payload over IPv4 (65,535 - 20 - 8), the limit in both directions. */
#define SL_UDP_MAX_DATAGRAM 65507
#define SL_UDP_DEFAULT_IDLE_MS 30000
#define SL_UDP_DEFAULT_MAX_SESSIONS 10000

typedef struct sl_udp_engine sl_udp_engine_t;

typedef enum sl_udp_outcome {
    SL_UDP_END_IDLE,           /* no datagram either way for the idle timeout: the normal end */
    SL_UDP_END_UPSTREAM_ERROR, /* the node refused (ICMP port unreachable) or cannot be reached */
    SL_UDP_END_CLIENT_ERROR,   /* the client's port refused a reply (only seen after a stop) */
    SL_UDP_END_OVER_LIMIT,     /* refused at once: max_sessions were open */
    SL_UDP_END_INTERNAL,       /* refused at once: no socket for it (descriptors exhausted, ...) */
    SL_UDP_END_SHUTDOWN,       /* cut by sl_udp_engine_close(), or by a stop that had no socket for it */
} sl_udp_outcome_t;

/* Filled by open_session(). */
typedef struct sl_udp_open {
    struct sockaddr_storage upstream; /* the node: AF_INET or AF_INET6 with its port */
    void *session;                    /* the caller's, handed back in sl_udp_facts_t */
    uint64_t idle_timeout_ms;         /* 0: the engine's */
} sl_udp_open_t;

/* A finished session, for session_end(). The addresses are valid during the call only. */
typedef struct sl_udp_facts {
    void *session;
    const struct sockaddr *client;   /* the client's address and port */
    const struct sockaddr *local;    /* the address and port the client sent to */
    const struct sockaddr *upstream; /* the node */
    uint64_t dgrams_in, bytes_in;    /* client to upstream, forwarded */
    uint64_t dgrams_out, bytes_out;  /* upstream to client, forwarded */
    uint64_t dropped;                /* datagrams of the session not forwarded: a socket buffer was
                                        full, or the upstream's was over max_datagram */
    uint64_t duration_ms;            /* loop time from the first datagram to the end */
    sl_udp_outcome_t outcome;
} sl_udp_facts_t;

/* Returns 0 with out filled to open a session, or -1 to drop the datagram (no route, refused
 * by a plugin, no healthy node); a dropped client's next datagram asks again. */
typedef int (*sl_udp_open_cb)(void *ctx, const struct sockaddr *client, const struct sockaddr *local,
                              sl_udp_open_t *out);
typedef void (*sl_udp_end_cb)(void *ctx, const sl_udp_facts_t *facts);
typedef void (*sl_udp_closed_cb)(void *ctx);

typedef struct sl_udp_config {
    uint64_t idle_timeout_ms; /* 0: SL_UDP_DEFAULT_IDLE_MS */
    size_t max_sessions;      /* 0: SL_UDP_DEFAULT_MAX_SESSIONS */
    size_t max_datagram;      /* 0 or more than SL_UDP_MAX_DATAGRAM: SL_UDP_MAX_DATAGRAM */
    sl_udp_open_cb open_session;
    sl_udp_end_cb session_end;
    sl_udp_closed_cb closed; /* may be NULL */
    void *ctx;               /* passed to the three callbacks */
} sl_udp_config_t;

/* Engine counters since start (sessions: open now). */
typedef struct sl_udp_stats {
    size_t sessions;
    uint64_t sessions_total; /* sessions opened */
    uint64_t over_limit;     /* new clients refused at max_sessions */
    uint64_t unrouted;       /* datagrams of new clients dropped: open_session() said no, or stopped */
    uint64_t too_large;      /* datagrams over max_datagram, dropped (either direction) */
    uint64_t dropped;        /* datagrams that could not be sent at once, dropped (either direction) */
} sl_udp_stats_t;

/* Returns a UDP socket bound to addr (AF_INET or AF_INET6 with its port; IPv6 only for an
 * IPv6 address), non-blocking, with SO_REUSEADDR and SO_REUSEPORT so each worker opens its
 * own, or a negative errno. For sl_udp_engine_start(). */
int sl_udp_socket_open(const struct sockaddr *addr);

/* Starts an engine on loop serving the bound UDP socket fd (from sl_udp_socket_open(); the
 * engine owns it from here and closes it, also on failure). A socket opened otherwise needs
 * SO_REUSEADDR, or sl_udp_engine_stop() cannot carry sessions on and ends them. cfg is
 * copied; open_session and session_end are required. Returns 0 with *out set, or a negative
 * error. */
int sl_udp_engine_start(uv_loop_t *loop, int fd, const sl_udp_config_t *cfg, sl_udp_engine_t **out);

/* Stops taking new clients: the listener is closed (its port refuses new clients unless
 * another socket serves it), while open sessions carry on until they end, each on a socket of
 * its own. Idempotent. */
void sl_udp_engine_stop(sl_udp_engine_t *e);

/* Stops, and ends every session now (SL_UDP_END_SHUTDOWN). Idempotent. */
void sl_udp_engine_close(sl_udp_engine_t *e);

void sl_udp_engine_stats(const sl_udp_engine_t *e, sl_udp_stats_t *out);

#endif
