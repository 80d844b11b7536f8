/* Listener kinds: all that runtime/ knows of a protocol. Each kind of listening address
 * (sl_listen_kind_t: HTTP, TCP stream, UDP stream) has one const table of hooks, provided by
 * the protocol's own folder (http/h1_listener.c, stream/listener.c) and listed, indexed by
 * kind, in runtime/listen_kind.c. The main thread prepares sockets through it; a worker
 * accepts, times out, drains and closes through it, so a new protocol (TLS, HTTP/2) is a new
 * table, not new calls in runtime/.
 *
 * Threading: prepare runs on the main thread; every other hook on the worker's thread
 * (worker_init before its loop runs), except worker_cleanup, which runs on the thread joining
 * the worker once its loop has ended. */
#ifndef SL_RUNTIME_LISTEN_KIND_H
#define SL_RUNTIME_LISTEN_KIND_H

#include <stddef.h>
#include <uv.h>

#include "config/config.h"
#include "runtime/generation.h"

typedef struct sl_worker sl_worker_t;

typedef struct sl_listener_ops {
    const char *name;        /* in the reload log: "reload: listening on ADDR (NAME)" */
    const char *config_path; /* what configured the address, in a "cannot listen" error */
    const char *note;        /* after the address in the start-up "listening on" line */
    int datagram;            /* UDP sockets: probed and counted as held as UDP */
    /* Returns a socket on addr for one worker, taking traffic from now on, or a negative
     * error. Main thread, before the generation listing addr is published. */
    int (*prepare)(const sl_hostport_t *addr);
    /* A connection waits on server, one of w's stream listeners of this kind (runtime opens
     * and closes those). NULL for kinds that keep their own sockets (sync). */
    void (*accept)(sl_worker_t *w, uv_stream_t *server);
    /* Makes the kind's own sockets follow g (kinds without accept). Returns 0 or the first
     * error (logged); the other addresses are served. NULL when runtime holds the sockets. */
    int (*sync)(sl_worker_t *w, sl_generation_t *g);
    /* The worker is stopping and its listeners are closed: take no new work, end what is
     * idle, let what is in flight finish. NULL when in-flight work just runs on. */
    void (*drain)(sl_worker_t *w);
    /* Ends every connection or session now (grace period over, second signal, failed start). */
    void (*close_all)(sl_worker_t *w);
    /* Every 100 ms: fires the kind's timeouts that are due. NULL for none. */
    void (*tick)(sl_worker_t *w);
    /* Connections or sessions open, for the grace period's warning. NULL counts none. */
    size_t (*connections)(const sl_worker_t *w);
    /* Whether nothing of this kind is left open on w (a stopping worker finishes when every
     * kind is drained). */
    int (*drained)(const sl_worker_t *w);
    /* The stopping worker has finished: let go of what outlives connections (idle upstream
     * connections). NULL for nothing. */
    void (*done)(sl_worker_t *w);
    /* Fills w->kind_state[kind] (may leave it NULL). Returns 0 or a negative error, which
     * fails the worker's start. NULL for nothing. */
    int (*worker_init)(sl_worker_t *w);
    /* Frees what worker_init and the kind's connections left in w. NULL for nothing. */
    void (*worker_cleanup)(sl_worker_t *w);
} sl_listener_ops_t;

/* The table of kind k (k < SL_LISTEN_KINDS). */
const sl_listener_ops_t *sl_listen_kind(sl_listen_kind_t k);

/* The tables, each defined by its protocol. */
extern const sl_listener_ops_t sl_http_listener_ops;
extern const sl_listener_ops_t sl_stream_tcp_listener_ops;
extern const sl_listener_ops_t sl_stream_udp_listener_ops;

#endif
