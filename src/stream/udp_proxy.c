/* UDP stream sessions (udp_proxy.h): the engine's callbacks (udp.h) turned into routes, plugins,
 * nodes and session ends, and a worker's UDP listeners following the configuration. */
#include "stream/udp_proxy.h"
#include "base/common.h"
#include "base/log.h"
#include "base/time.h"
#include "base/keeper.h"
#include "runtime/listener.h"
#include "runtime/worker.h"
#include "stream/stream.h"
#include "stream/udp.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* ---- max_sessions: one counter per service, outliving generations ------------------------ */

struct sl_udp_quota {
    atomic_size_t open;
};

static void *quota_create(const void *settings)
{
    SL_UNUSED(settings);
    sl_udp_quota_t *q = sl_xcalloc(1, sizeof(*q));
    atomic_init(&q->open, 0);
    return q;
}

static void quota_destroy(void *state)
{
    free(state);
}

/* max_sessions is read per session: any counter of the service does. */
static const sl_keep_type_t quota_type = {.name = "udp max_sessions", .create = quota_create, .destroy = quota_destroy};

sl_udp_quota_t *sl_stream_udp_quota_get(const char *service)
{
    return sl_keep_get_names(&quota_type, service, NULL, NULL);
}

void sl_stream_udp_quota_release(sl_udp_quota_t *q)
{
    sl_keep_release(q);
}

/* ---- sessions ---------------------------------------------------------------------------- */

typedef struct udp_listener {
    sl_list_t link; /* w->udp_listeners, stopped ones included until their engine is freed */
    sl_worker_t *w;
    sl_udp_engine_t *engine;
    char *addr; /* the generation's listens text, "127.0.0.1:5353" */
    int stopped;
    /* Counted in sl_listener_hold() from start until the engine is freed: a stopped engine's
     * sessions keep sockets bound to its port (see udp.c). */
    struct sockaddr_storage ss;
    int held;
} udp_listener_t;

/* What a session is to sluice: held by the engine from open_session() to session_end(). */
typedef struct udp_session {
    sl_generation_t *gen; /* kept until the end: route, plugins and node belong to it */
    sl_stream_route_t *route;
    sl_node_t *node;
    sl_stream_peer_t peer;
    char client_ip[INET6_ADDRSTRLEN], server_ip[INET6_ADDRSTRLEN];
    sl_stream_plugin_state_t plugins;
    uint64_t start_unix_ms;
} udp_session_t;

static void report(const udp_listener_t *l, udp_session_t *s, const sl_udp_facts_t *uf, int status, const char *error)
{
    /* The engine counts what it forwarded: what came from one side is what went to the other. */
    uint64_t in = uf ? uf->bytes_in : 0, out = uf ? uf->bytes_out : 0;
    sl_stream_facts_t f = {
        .route = s->route,
        .worker = l->w->index,
        .peer = &s->peer,
        .client_ip = s->client_ip,
        .server_ip = s->server_ip,
        .upstream = s->node ? s->node->name : NULL,
        .client_rx = in,
        .upstream_tx = in,
        .upstream_rx = out,
        .client_tx = out,
        .start_unix_ms = s->start_unix_ms,
        .duration_s = uf ? (double)uf->duration_ms / 1e3 : 0,
        .status = status,
        .error = error,
        .state = &s->plugins,
    };
    if (s->route) sl_stream_session_end(&f);
    sl_stream_log(l->w, s->gen, &f, 1);
}

static int open_session(void *ctx, const struct sockaddr *client, const struct sockaddr *local, sl_udp_open_t *out)
{
    udp_listener_t *l = ctx;
    sl_worker_t *w = l->w;
    udp_session_t t;
    memset(&t, 0, sizeof(t));
    if (sl_ip_from_sockaddr(client, &t.peer.client, &t.peer.client_port) != 0 ||
        sl_ip_from_sockaddr(local, &t.peer.server, &t.peer.server_port) != 0)
        return -1;
    sl_ip_format(&t.peer.client, t.client_ip, sizeof(t.client_ip));
    sl_ip_format(&t.peer.server, t.server_ip, sizeof(t.server_ip));
    t.start_unix_ms = sl_unix_ms();
    t.route = sl_stream_match_udp(w->gen, &t.peer.server, t.peer.server_port, &t.peer.client);
    if (!t.route) {
        sl_log_debug("stream: no udp route for %s:%u -> %s:%u", t.client_ip, t.peer.client_port, t.server_ip,
                     t.peer.server_port);
        t.gen = w->gen;
        report(l, &t, NULL, SL_STREAM_FORBIDDEN, "no_route");
        return -1;
    }
    /* A delay limit-conn asks for (inside the burst) is not applied: see udp_proxy.h. */
    uint64_t delay_ms;
    int status = sl_stream_plugins_access(t.route, &t.peer, &t.plugins, w->index, &delay_ms);
    if (status) {
        report(l, &t, NULL, status, status == SL_STREAM_FORBIDDEN ? "access_denied" : "over_limit");
        return -1;
    }
    sl_upstream_t *u = t.route->upstream;
    if (atomic_fetch_add(&t.route->udp_quota->open, 1) >= u->cfg->max_sessions) {
        atomic_fetch_sub(&t.route->udp_quota->open, 1);
        report(l, &t, NULL, SL_STREAM_UNAVAILABLE, "max_sessions");
        return -1;
    }
    t.node = sl_upstream_pick(u, t.client_ip, strlen(t.client_ip), NULL);
    if (!t.node || sl_node_addr(t.node, &out->upstream) != 0) {
        atomic_fetch_sub(&t.route->udp_quota->open, 1);
        report(l, &t, NULL, SL_STREAM_BAD_GATEWAY, t.node ? "unresolved" : "no_healthy_upstream");
        return -1;
    }
    sl_upstream_begin(u, t.node);
    udp_session_t *s = sl_xmalloc(sizeof(*s));
    *s = t;
    s->gen = w->gen;
    sl_generation_retain(s->gen);
    out->session = s;
    out->idle_timeout_ms = u->cfg->idle_timeout_ms;
    return 0;
}

static void session_end(void *ctx, const sl_udp_facts_t *uf)
{
    udp_listener_t *l = ctx;
    udp_session_t *s = uf->session;
    int status = SL_STREAM_OK;
    const char *error = NULL;
    sl_outcome_t outcome = SL_OUTCOME_ABORTED;
    switch (uf->outcome) {
    case SL_UDP_END_IDLE:
        error = "idle_timeout";
        outcome = SL_OUTCOME_OK;
        break;
    case SL_UDP_END_UPSTREAM_ERROR:
        /* Mostly ICMP port unreachable: nothing serves the node's port. */
        status = SL_STREAM_BAD_GATEWAY;
        error = "upstream_refused";
        outcome = SL_OUTCOME_CONNECT_FAILURE;
        break;
    case SL_UDP_END_CLIENT_ERROR:
        status = SL_STREAM_BAD_CLIENT;
        error = "client_refused";
        break;
    case SL_UDP_END_OVER_LIMIT:
        status = SL_STREAM_UNAVAILABLE;
        error = "max_sessions";
        break;
    case SL_UDP_END_INTERNAL:
        status = SL_STREAM_INTERNAL;
        error = "no_socket";
        break;
    case SL_UDP_END_SHUTDOWN:
        error = "shutdown";
        break;
    }
    sl_upstream_end(s->route->upstream, s->node, outcome, -1);
    atomic_fetch_sub(&s->route->udp_quota->open, 1);
    report(l, s, uf, status, error);
    sl_generation_release(s->gen);
    free(s);
}

/* ---- listeners --------------------------------------------------------------------------- */

static void on_engine_closed(void *ctx)
{
    udp_listener_t *l = ctx;
    sl_worker_t *w = l->w;
    sl_list_remove(&l->link);
    if (l->held) sl_listener_hold(1, &l->ss, -1);
    free(l->addr);
    free(l);
    sl_worker_connection_closed(w);
}

int sl_stream_udp_prepare(const sl_hostport_t *addr)
{
    struct sockaddr_storage ss;
    int rc = sl_listener_addr(addr, &ss);
    return rc != 0 ? rc : sl_udp_socket_open((struct sockaddr *)&ss);
}

/* Serves ls on fd when the main thread prepared one (a reload), else on a new socket. */
static int listen_on(sl_worker_t *w, const sl_listen_t *ls, int fd)
{
    if (fd < 0) fd = sl_stream_udp_prepare(&ls->addr);
    if (fd < 0) {
        sl_log_error("worker %u: cannot listen on %s (udp): %s", w->index, ls->addr.text, uv_strerror(fd));
        return fd;
    }
    udp_listener_t *l = sl_xcalloc(1, sizeof(*l));
    l->w = w;
    l->addr = sl_xstrdup(ls->addr.text);
    /* No cap of the engine's own: max_sessions is the service's, counted in open_session(). */
    sl_udp_config_t cfg = {
        .max_sessions = SIZE_MAX,
        .open_session = open_session,
        .session_end = session_end,
        .closed = on_engine_closed,
        .ctx = l,
    };
    int rc = sl_udp_engine_start(&w->loop, fd, &cfg, &l->engine);
    if (rc != 0) {
        sl_log_error("worker %u: cannot serve %s (udp): %s", w->index, ls->addr.text, uv_strerror(rc));
        free(l->addr);
        free(l);
        return rc;
    }
    if (sl_listener_addr(&ls->addr, &l->ss) == 0) {
        sl_listener_hold(1, &l->ss, 1);
        l->held = 1;
    }
    sl_list_push_tail(&w->udp_listeners, &l->link);
    return 0;
}

static void listener_stop(udp_listener_t *l)
{
    if (l->stopped) return;
    l->stopped = 1;
    sl_udp_engine_stop(l->engine);
}

int sl_stream_udp_sync(sl_worker_t *w, sl_generation_t *g)
{
    for (sl_list_t *n = w->udp_listeners.next; n != &w->udp_listeners; n = n->next) {
        udp_listener_t *l = sl_container_of(n, udp_listener_t, link);
        int keep = 0;
        for (size_t i = 0; i < g->n_listens && !keep && !l->stopped; i++)
            keep = g->listens[i].kind == SL_LISTEN_STREAM_UDP && !strcmp(g->listens[i].addr.text, l->addr);
        if (!keep && !l->stopped) {
            sl_log_info("worker %u: closing udp listener %s (its sessions carry on until idle)", w->index, l->addr);
            listener_stop(l);
        }
    }
    int rc = 0;
    for (size_t i = 0; i < g->n_listens; i++) {
        if (g->listens[i].kind != SL_LISTEN_STREAM_UDP) continue;
        int open = 0;
        for (sl_list_t *n = w->udp_listeners.next; n != &w->udp_listeners && !open; n = n->next) {
            const udp_listener_t *l = sl_container_of(n, udp_listener_t, link);
            open = !l->stopped && !strcmp(l->addr, g->listens[i].addr.text);
        }
        int fd = sl_generation_take_listen_fd(g, i, w->index);
        if (open) {
            if (fd >= 0) close(fd);
        } else {
            int r = listen_on(w, &g->listens[i], fd);
            if (r != 0 && !rc) rc = r;
        }
    }
    return rc;
}

void sl_stream_udp_stop_all(sl_worker_t *w)
{
    for (sl_list_t *n = w->udp_listeners.next; n != &w->udp_listeners; n = n->next)
        listener_stop(sl_container_of(n, udp_listener_t, link));
}

void sl_stream_udp_close_all(sl_worker_t *w)
{
    for (sl_list_t *n = w->udp_listeners.next; n != &w->udp_listeners; n = n->next) {
        udp_listener_t *l = sl_container_of(n, udp_listener_t, link);
        l->stopped = 1;
        sl_udp_engine_close(l->engine);
    }
}
