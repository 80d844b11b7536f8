/* TCP stream sessions (tcp.h).
 *
 * accept -> [PROXY protocol header, on an address and port whose routes accept it] -> match
 * (stream.h) -> plugins' access hooks (refused: closed; delayed: a timer) -> connect to a node
 * the balancer picks, with the connect timeout, on the next untried node after a failure up to
 * `tries` (upstream/connect.h) -> [PROXY protocol header to the upstream] -> a byte pipe between
 * client and upstream until both are done, one resets, or nothing moves for timeouts.idle ->
 * sl_stream_session_end() with its facts.
 *
 * With the PROXY protocol, the client the header names is the session's client for everything
 * after it: remote_addr, the plugins, hash balancing, the facts. Routes still match the address
 * and port the connection really arrived on, as nginx and HAProxy listeners do; the header's
 * destination is only passed on to an upstream that is sent the protocol.
 *
 * A session owns its handles (client, timer, the upstream connection with its attempts, the
 * pipe's idle timer) and is freed when the last of them is closed. It keeps the generation it
 * started with, so a reload changes nothing for it. */
#include "stream/tcp.h"
#include "base/common.h"
#include "base/log.h"
#include "base/time.h"
#include "runtime/pipe.h"
#include "runtime/worker.h"
#include "stream/proxy_protocol.h"
#include "stream/stream.h"
#include "upstream/connect.h"

#include <arpa/inet.h>
#include <string.h>

typedef struct session {
    uv_tcp_t client;
    sl_upstream_connect_t up; /* the connect attempts, then the upstream connection */
    uv_timer_t timer;         /* PROXY protocol header timeout, then the limit-conn delay */
    sl_pipe_t pipe;           /* side 0 the client, side 1 the upstream; once connected */
    sl_list_t link;           /* worker's sessions */
    sl_worker_t *w;
    sl_generation_t *gen;
    sl_stream_route_t *route;
    sl_stream_peer_t peer;
    char client_ip[INET6_ADDRSTRLEN], server_ip[INET6_ADDRSTRLEN];
    /* PROXY protocol accepted: what was read before the pipe (the header, then the client's
     * first bytes from early_off on, sent upstream once connected), and the connection's real
     * peer when the header named another client. */
    sl_buf_t early;
    size_t early_off;
    size_t early_read; /* bytes read before the pipe, kept after early is freed */
    char *proxy_ip;
    uint16_t proxy_port;
    sl_ip_t dst; /* the address the client connected to (the header's destination), for send */
    uint16_t dst_port;
    sl_stream_plugin_state_t plugins;
    uint64_t start_ns, start_unix_ms;
    int handles; /* open handles; the last one closed frees the session */
    unsigned header : 1, delaying : 1, connecting : 1, piping : 1, ended : 1;
} session_t;

static void connect_start(session_t *s);

/* ---- lifetime --------------------------------------------------------------------------- */

static void handle_gone(session_t *s)
{
    if (--s->handles) return;
    sl_worker_t *w = s->w;
    sl_list_remove(&s->link);
    w->n_sessions--;
    sl_generation_release(s->gen);
    sl_buf_free(&s->early);
    free(s->proxy_ip);
    free(s);
    sl_worker_connection_closed(w);
}

static void on_client_closed(uv_handle_t *h)
{
    handle_gone(sl_container_of((uv_tcp_t *)h, session_t, client));
}

static void on_timer_closed(uv_handle_t *h)
{
    handle_gone(sl_container_of((uv_timer_t *)h, session_t, timer));
}

static void on_upstream_closed(sl_upstream_connect_t *uc)
{
    handle_gone(sl_container_of(uc, session_t, up));
}

static void on_pipe_closed(uv_handle_t *h)
{
    handle_gone(sl_container_of((uv_timer_t *)h, session_t, pipe.idle));
}

/* The one way a session ends: its facts go to the plugins, then every handle closes. */
static void finish(session_t *s, int status, const char *error, sl_outcome_t outcome)
{
    if (s->ended) return;
    s->ended = 1;
    const sl_pipe_side_t *c = &s->pipe.side[0], *u = &s->pipe.side[1];
    sl_stream_facts_t f = {
        .route = s->route,
        .worker = s->w->index,
        .peer = &s->peer,
        .client_ip = s->client_ip,
        .server_ip = s->server_ip,
        .proxy_ip = s->proxy_ip,
        .proxy_port = s->proxy_port,
        .upstream = s->connecting && s->up.node ? s->up.node->name : NULL,
        .client_rx = s->early_read + c->read,
        .client_tx = c->written - c->queued, /* what is still queued never left */
        .upstream_rx = u->read,
        .upstream_tx = u->written - u->queued,
        .start_unix_ms = s->start_unix_ms,
        .duration_s = (double)(sl_now_ns() - s->start_ns) / 1e9,
        .status = status,
        .error = error,
        .state = &s->plugins,
    };
    if (s->route) sl_stream_session_end(&f);
    sl_stream_log(s->w, s->gen, &f, 0);
    uv_close((uv_handle_t *)&s->client, on_client_closed);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    /* The try still open is reported with the session's outcome. */
    if (s->connecting) sl_upstream_connect_close(&s->up, outcome, on_upstream_closed);
    if (s->piping) sl_pipe_close(&s->pipe, on_pipe_closed);
}

/* ---- proxying --------------------------------------------------------------------------- */

static void on_pipe_end(sl_pipe_t *p, sl_pipe_end_t why, int side)
{
    session_t *s = sl_container_of(p, session_t, pipe);
    if (why == SL_PIPE_DONE)
        finish(s, SL_STREAM_OK, NULL, SL_OUTCOME_OK);
    else if (why == SL_PIPE_IDLE)
        finish(s, SL_STREAM_OK, "idle_timeout", SL_OUTCOME_OK);
    else if (side == 0)
        finish(s, SL_STREAM_BAD_CLIENT, "client_reset", SL_OUTCOME_ABORTED);
    else
        finish(s, SL_STREAM_BAD_GATEWAY, "upstream_reset", SL_OUTCOME_RESET);
}

static void to_sockaddr(const sl_ip_t *ip, uint16_t port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (ip->family == 4) {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        memcpy(&in->sin_addr, ip->bytes, 4);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        memcpy(&in6->sin6_addr, ip->bytes, 16);
    }
}

static void connected(session_t *s)
{
    sl_conn_nodelay(&s->up.conn, 1);
    s->handles++;
    s->piping = 1;
    /* The pipe drives the socket itself: TCP only until runtime/pipe.c goes through net/conn.h. */
    sl_pipe_init(&s->pipe, &s->w->loop, (uv_stream_t *)&s->client, (uv_stream_t *)&s->up.conn.tcp, s->w->read_buf,
                 sizeof(s->w->read_buf), s->route->upstream->cfg->idle_timeout_ms, on_pipe_end);
    /* The upstream hears who the client is before any byte of it. */
    int version = s->route->upstream->cfg->proxy_protocol_send;
    if (version != SL_PROXY_PROTOCOL_NONE) {
        struct sockaddr_storage src, dst;
        to_sockaddr(&s->peer.client, s->peer.client_port, &src);
        to_sockaddr(&s->dst, s->dst_port, &dst);
        uint8_t header[SL_PP_MAX_V1];
        size_t n = sl_pp_write(version == SL_PROXY_PROTOCOL_V1 ? 1 : 2, (struct sockaddr *)&src,
                               (struct sockaddr *)&dst, header, sizeof(header));
        if (sl_pipe_send(&s->pipe, 1, (const char *)header, n) != 0) return;
    }
    /* The pipe copies what the socket does not take at once. */
    int rc = s->early.len > s->early_off
                 ? sl_pipe_send(&s->pipe, 1, s->early.data + s->early_off, s->early.len - s->early_off)
                 : 0;
    sl_buf_free(&s->early);
    if (rc == 0) sl_pipe_start(&s->pipe);
}

/* ---- connecting ------------------------------------------------------------------------- */

static void on_upstream(sl_upstream_connect_t *uc, int status)
{
    session_t *s = sl_container_of(uc, session_t, up);
    if (s->ended) return;
    if (status == SL_UPSTREAM_CONNECTED)
        connected(s);
    else if (status == SL_UPSTREAM_NO_NODE)
        finish(s, SL_STREAM_BAD_GATEWAY, "no_healthy_upstream", SL_OUTCOME_ABORTED);
    else
        finish(s, SL_STREAM_BAD_GATEWAY, "connect_failed", SL_OUTCOME_CONNECT_FAILURE);
}

static void on_timer(uv_timer_t *t)
{
    session_t *s = t->data;
    if (s->header) {
        finish(s, SL_STREAM_BAD_CLIENT, "proxy_protocol_timeout", SL_OUTCOME_ABORTED);
        return;
    }
    if (s->delaying) {
        s->delaying = 0;
        connect_start(s);
    }
}

/* Every node once at most, the first `tries`; hash balancing keys on the client's address. */
static void connect_start(session_t *s)
{
    sl_upstream_t *u = s->route->upstream;
    s->connecting = 1;
    s->handles++;
    sl_upstream_connect_start(&s->up, &s->w->loop, &sl_conn_tcp, u, s->client_ip, strlen(s->client_ip), NULL,
                              (unsigned)SL_MIN(u->cfg->tries, u->n_nodes), u->cfg->connect_timeout_ms, on_upstream);
}

/* ---- accepting -------------------------------------------------------------------------- */

static void session_access(session_t *s)
{
    uint64_t delay_ms = 0;
    int status = sl_stream_plugins_access(s->route, &s->peer, &s->plugins, s->w->index, &delay_ms);
    if (status) {
        finish(s, status, status == SL_STREAM_FORBIDDEN ? "access_denied" : "over_limit", SL_OUTCOME_ABORTED);
        return;
    }
    if (delay_ms) {
        s->delaying = 1;
        uv_timer_start(&s->timer, on_timer, delay_ms, 0);
        return;
    }
    connect_start(s);
}

/* Matches the connection to a route with the client it has now; no route closes it. */
static void route_and_access(session_t *s)
{
    s->route = sl_stream_match(s->gen, &s->peer.server, s->peer.server_port, &s->peer.client);
    if (!s->route) {
        sl_log_debug("stream: no route for %s:%u -> %s:%u", s->client_ip, s->peer.client_port, s->server_ip,
                     s->peer.server_port);
        finish(s, SL_STREAM_FORBIDDEN, "no_route", SL_OUTCOME_ABORTED);
        return;
    }
    session_access(s);
}

/* ---- PROXY protocol header ---------------------------------------------------------------- */

static void on_header_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    SL_UNUSED(suggested);
    session_t *s = h->data;
    buf->base = s->w->read_buf;
    buf->len = sizeof(s->w->read_buf);
}

/* The header named the client: it is the session's client from now on, and the real peer (the
 * load balancer) is kept for the facts. */
static void learn_client(session_t *s, const sl_pp_info_t *pp)
{
    sl_ip_t client, dst;
    uint16_t client_port, dst_port;
    if (sl_ip_from_sockaddr((const struct sockaddr *)&pp->src, &client, &client_port) != 0 ||
        sl_ip_from_sockaddr((const struct sockaddr *)&pp->dst, &dst, &dst_port) != 0)
        return;
    s->proxy_ip = sl_xstrdup(s->client_ip);
    s->proxy_port = s->peer.client_port;
    s->peer.client = client;
    s->peer.client_port = client_port;
    s->dst = dst;
    s->dst_port = dst_port;
    sl_ip_format(&client, s->client_ip, sizeof(s->client_ip));
}

static void on_header_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    session_t *s = st->data;
    if (nread == 0 || s->ended) return;
    if (nread < 0) {
        finish(s, SL_STREAM_BAD_CLIENT, nread == UV_EOF ? "proxy_protocol_incomplete" : "client_reset",
               SL_OUTCOME_ABORTED);
        return;
    }
    /* Everything read is kept: what follows the header is the client's stream. The parser gives
     * its verdict within SL_PP_MAX bytes, so this holds less than that plus one read. */
    sl_buf_append(&s->early, buf->base, (size_t)nread);
    s->early_read += (size_t)nread;
    sl_pp_info_t pp;
    int n = sl_pp_parse((const uint8_t *)s->early.data, s->early.len, &pp);
    if (n == 0) return;
    uv_read_stop(st);
    uv_timer_stop(&s->timer);
    s->header = 0;
    if (n < 0) {
        finish(s, SL_STREAM_BAD_CLIENT, "proxy_protocol_invalid", SL_OUTCOME_ABORTED);
        return;
    }
    s->early_off = (size_t)n;
    if (!pp.local) learn_client(s, &pp);
    route_and_access(s);
}

/* Reads the header before anything else. Until it is there the session belongs to the first
 * route of its address and port, which counts and logs it if the header never comes right. */
static void read_header(session_t *s, sl_stream_route_t *listener)
{
    s->route = listener;
    s->header = 1;
    s->client.data = s;
    uv_timer_start(&s->timer, on_timer, listener->cfg->stream.proxy_protocol_timeout_ms, 0);
    int rc = uv_read_start((uv_stream_t *)&s->client, on_header_alloc, on_header_read);
    if (rc != 0) finish(s, SL_STREAM_BAD_CLIENT, "client_reset", SL_OUTCOME_ABORTED);
}

/* ---- accepting (continued) ---------------------------------------------------------------- */

static int addresses(session_t *s)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&s->client, (struct sockaddr *)&ss, &len) != 0 ||
        sl_ip_from_sockaddr((struct sockaddr *)&ss, &s->peer.client, &s->peer.client_port) != 0)
        return -1;
    len = sizeof(ss);
    if (uv_tcp_getsockname(&s->client, (struct sockaddr *)&ss, &len) != 0 ||
        sl_ip_from_sockaddr((struct sockaddr *)&ss, &s->peer.server, &s->peer.server_port) != 0)
        return -1;
    sl_ip_format(&s->peer.client, s->client_ip, sizeof(s->client_ip));
    sl_ip_format(&s->peer.server, s->server_ip, sizeof(s->server_ip));
    s->dst = s->peer.server;
    s->dst_port = s->peer.server_port;
    return 0;
}

void sl_stream_tcp_accept(sl_worker_t *w, uv_stream_t *server)
{
    session_t *s = sl_xcalloc(1, sizeof(*s));
    s->w = w;
    s->start_ns = sl_now_ns();
    s->start_unix_ms = sl_unix_ms();
    s->gen = w->gen;
    sl_generation_retain(s->gen);
    sl_list_init(&s->link);
    sl_list_push(&w->sessions, &s->link);
    w->n_sessions++;
    uv_tcp_init(&w->loop, &s->client);
    uv_timer_init(&w->loop, &s->timer);
    s->timer.data = s;
    s->handles = 2;
    if (uv_accept(server, (uv_stream_t *)&s->client) != 0) {
        finish(s, SL_STREAM_INTERNAL, "accept", SL_OUTCOME_ABORTED);
        return;
    }
    if (addresses(s) != 0) {
        finish(s, SL_STREAM_INTERNAL, "addresses", SL_OUTCOME_ABORTED);
        return;
    }
    sl_stream_route_t *listener = sl_stream_match_listener(s->gen, &s->peer.server, s->peer.server_port);
    if (!listener) {
        route_and_access(s); /* closes it */
        return;
    }
    uv_tcp_nodelay(&s->client, 1);
    if (listener->cfg->stream.proxy_protocol_accept)
        read_header(s, listener);
    else
        route_and_access(s);
}

void sl_stream_tcp_close_all(sl_worker_t *w)
{
    for (sl_list_t *l = w->sessions.next, *next; l != &w->sessions; l = next) {
        next = l->next;
        session_t *s = sl_container_of(l, session_t, link);
        finish(s, SL_STREAM_OK, "shutdown", SL_OUTCOME_ABORTED);
    }
}
