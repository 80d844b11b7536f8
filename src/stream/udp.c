/* UDP proxy sessions (see udp.h).
 *
 * Which socket a reply leaves from. A reply must leave from the address and port the client
 * sent to, or the client (a resolver, say) throws it away. Two ways:
 *
 * - By the listener, with sendmsg() naming the source address (IP_PKTINFO) when the listener
 *   is bound to a wildcard address. One descriptor per session (its upstream socket), every
 *   session lives on the listener's port with no extra kernel state, and the client's
 *   datagrams keep arriving on the listener and are found in the session table. But the
 *   sessions need the listener: closing it (a reload removed the route's port) would cut them,
 *   and keeping it open would keep the port taking new clients, which then sit unread in its
 *   buffer and, if the port comes back, share the kernel's SO_REUSEPORT spreading with the new
 *   listener.
 * - By a socket per session bound to the same local address and port (SO_REUSEADDR) and
 *   connected to the client. Sessions are then independent of the listener, and the kernel
 *   hands the client's datagrams straight to that socket. But every session costs a second
 *   descriptor and a bind and connect, and all these sockets hang on the one kernel lookup
 *   chain of that address and port, which most kernels walk for each arriving datagram (only
 *   recent ones hash connected UDP sockets by the full 4-tuple): with thousands of sessions,
 *   every datagram to the port pays for all of them.
 *
 * sluice does both, at different times: sessions reply through the listener while it is open,
 * which is the fast path and the usual state, and sl_udp_engine_stop() gives each open session
 * its own client socket before closing the listener, so sessions carry on after a reload
 * removed their port while the port itself stops taking new clients (they get ICMP port
 * unreachable, as from a closed port). A socket made that way is unconnected for a moment
 * between bind() and connect() and may catch another client's datagram then; anything such a
 * socket reads from someone other than its client is dispatched as if the listener had read
 * it, so nothing is misdelivered.
 *
 * Session sockets are uv_udp_t. The listener is a uv_poll_t read and written here, because
 * each datagram's destination address (IP_PKTINFO) is needed and uv_udp_t does not give it;
 * its callback reads at most SL_UDP_BATCH datagrams, as libuv does for uv_udp_t, so one busy
 * socket cannot starve the loop. Every datagram lands in the engine's buffer and is sent on,
 * with uv_udp_try_send() or sendmsg(), before the next read: no allocation per datagram. */
#include "stream/udp.h"
#include "base/common.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define SL_UDP_BATCH 32
#define SL_UDP_MIN_BUCKETS 64
/* Datagrams read off the listener when it stops, for the sessions they belong to. */
#define SL_UDP_STOP_DRAIN 4096

typedef union sl_udp_addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
} sl_udp_addr_t;

/* A session's identity: client address and port, and the local address and port it sent to
 * (on a wildcard listener two local addresses may be two routes). Zero-padded, compared
 * whole. */
typedef struct sl_udp_key {
    uint64_t w[5]; /* family, client port, local port; client address; local address */
} sl_udp_key_t;

/* Control buffer for one IPv4 or IPv6 packet-info message. */
typedef union sl_udp_cmsg {
    struct cmsghdr h;
    char b[CMSG_SPACE(sizeof(struct in6_pktinfo))];
} sl_udp_cmsg_t;

typedef struct sl_udp_session {
    struct sl_udp_session *next; /* hash chain */
    sl_udp_engine_t *e;
    sl_udp_key_t key;
    uint64_t hash;
    sl_udp_addr_t client, local, upstream;
    void *user;
    uv_udp_t up;   /* connected to the upstream */
    uv_udp_t down; /* after a stop: bound to local, connected to the client */
    uv_timer_t idle;
    int handles;  /* handles to close before it is freed */
    int detached; /* down is open: replies go by it, not by the listener */
    int ended;
    uint64_t idle_ms, start_ms, last_ms;
    uint64_t dgrams_in, bytes_in, dgrams_out, bytes_out, dropped;
} sl_udp_session_t;

struct sl_udp_engine {
    uv_loop_t *loop;
    sl_udp_config_t cfg;
    uv_poll_t listener;
    int fd;
    int listener_open; /* until its close callback */
    int stopped;       /* no new sessions; the listener is closed or closing */
    int wildcard;      /* bound to 0.0.0.0 or ::: replies name their source address */
    sl_udp_addr_t bound;
    sl_udp_session_t **buckets;
    size_t n_buckets, n_alive; /* n_alive: sessions in the table or still closing */
    uint64_t seed;
    sl_udp_stats_t stats;
    size_t buf_len;
    char buf[]; /* every datagram passes through here, SL_UDP_MAX_DATAGRAM at most */
};

/* ---- addresses --------------------------------------------------------------------------- */

static socklen_t addr_len(const sl_udp_addr_t *a)
{
    return a->sa.sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static int addr_equal(const sl_udp_addr_t *a, const sl_udp_addr_t *b)
{
    if (a->sa.sa_family != b->sa.sa_family) return 0;
    if (a->sa.sa_family == AF_INET)
        return a->in.sin_port == b->in.sin_port && a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
    return a->in6.sin6_port == b->in6.sin6_port && !memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16);
}

static void key_make(sl_udp_key_t *k, const sl_udp_addr_t *client, const sl_udp_addr_t *local)
{
    memset(k, 0, sizeof(*k));
    unsigned char *p = (unsigned char *)k;
    p[0] = (unsigned char)client->sa.sa_family;
    if (client->sa.sa_family == AF_INET) {
        memcpy(p + 2, &client->in.sin_port, 2);
        memcpy(p + 4, &local->in.sin_port, 2);
        memcpy(p + 8, &client->in.sin_addr, 4);
        memcpy(p + 24, &local->in.sin_addr, 4);
    } else {
        memcpy(p + 2, &client->in6.sin6_port, 2);
        memcpy(p + 4, &local->in6.sin6_port, 2);
        memcpy(p + 8, &client->in6.sin6_addr, 16);
        memcpy(p + 24, &local->in6.sin6_addr, 16);
    }
}

/* Seeded per engine: clients choose their ports, so they must not be able to aim at one
 * chain of the table. */
static uint64_t key_hash(const sl_udp_engine_t *e, const sl_udp_key_t *k)
{
    uint64_t h = e->seed;
    for (size_t i = 0; i < SL_ARRAY_LEN(k->w); i++) {
        h = (h ^ k->w[i]) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

/* ---- the session table ------------------------------------------------------------------- */

static sl_udp_session_t *table_find(const sl_udp_engine_t *e, const sl_udp_key_t *k, uint64_t h)
{
    for (sl_udp_session_t *s = e->buckets[h & (e->n_buckets - 1)]; s; s = s->next)
        if (s->hash == h && !memcmp(&s->key, k, sizeof(*k))) return s;
    return NULL;
}

static void table_insert(sl_udp_engine_t *e, sl_udp_session_t *s)
{
    if (e->stats.sessions >= e->n_buckets) {
        size_t n = e->n_buckets * 2;
        sl_udp_session_t **b = sl_xcalloc(n, sizeof(*b));
        for (size_t i = 0; i < e->n_buckets; i++) {
            for (sl_udp_session_t *x = e->buckets[i], *next; x; x = next) {
                next = x->next;
                x->next = b[x->hash & (n - 1)];
                b[x->hash & (n - 1)] = x;
            }
        }
        free(e->buckets);
        e->buckets = b;
        e->n_buckets = n;
    }
    sl_udp_session_t **head = &e->buckets[s->hash & (e->n_buckets - 1)];
    s->next = *head;
    *head = s;
    e->stats.sessions++;
}

static void table_remove(sl_udp_engine_t *e, sl_udp_session_t *s)
{
    sl_udp_session_t **p = &e->buckets[s->hash & (e->n_buckets - 1)];
    while (*p != s)
        p = &(*p)->next;
    *p = s->next;
    e->stats.sessions--;
}

/* ---- lifetime ---------------------------------------------------------------------------- */

static void maybe_free(sl_udp_engine_t *e)
{
    if (!e->stopped || e->listener_open || e->n_alive) return;
    if (e->cfg.closed) e->cfg.closed(e->cfg.ctx);
    free(e->buckets);
    free(e);
}

static void report(sl_udp_engine_t *e, const sl_udp_session_t *s, sl_udp_outcome_t outcome)
{
    sl_udp_facts_t f = {
        .session = s->user,
        .client = &s->client.sa,
        .local = &s->local.sa,
        .upstream = &s->upstream.sa,
        .dgrams_in = s->dgrams_in,
        .bytes_in = s->bytes_in,
        .dgrams_out = s->dgrams_out,
        .bytes_out = s->bytes_out,
        .dropped = s->dropped,
        .duration_ms = uv_now(e->loop) - s->start_ms,
        .outcome = outcome,
    };
    e->cfg.session_end(e->cfg.ctx, &f);
}

static void on_session_handle_closed(uv_handle_t *h)
{
    sl_udp_session_t *s = h->data;
    if (--s->handles) return;
    sl_udp_engine_t *e = s->e;
    free(s);
    e->n_alive--;
    maybe_free(e);
}

/* Ends s: out of the table at once (the client's next datagram opens a new session), its
 * descriptors closed at once, its memory freed with its handles. */
static void session_end(sl_udp_session_t *s, sl_udp_outcome_t outcome)
{
    sl_udp_engine_t *e = s->e;
    if (s->ended) return;
    s->ended = 1;
    table_remove(e, s);
    report(e, s, outcome);
    uv_close((uv_handle_t *)&s->up, on_session_handle_closed);
    if (s->detached) uv_close((uv_handle_t *)&s->down, on_session_handle_closed);
    uv_close((uv_handle_t *)&s->idle, on_session_handle_closed);
}

static void on_idle(uv_timer_t *t)
{
    sl_udp_session_t *s = t->data;
    uint64_t quiet = uv_now(t->loop) - s->last_ms;
    if (quiet >= s->idle_ms) {
        session_end(s, SL_UDP_END_IDLE);
        return;
    }
    /* Datagrams since it was armed: wait for the rest of the period from the last of them. */
    uv_timer_start(t, on_idle, s->idle_ms - quiet, 0);
}

/* ---- forwarding -------------------------------------------------------------------------- */

/* Errors after which the socket still works: this datagram is lost, the next may pass. */
static int send_error_transient(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == ENOMEM || err == EINTR || err == EMSGSIZE;
}

static void to_upstream(sl_udp_session_t *s, size_t n)
{
    sl_udp_engine_t *e = s->e;
    s->last_ms = uv_now(e->loop);
    uv_buf_t b = uv_buf_init(e->buf, (unsigned)n);
    int rc = uv_udp_try_send(&s->up, &b, 1, NULL);
    if (rc >= 0) {
        s->dgrams_in++;
        s->bytes_in += n;
    } else if (send_error_transient(-rc)) {
        s->dropped++;
        e->stats.dropped++;
    } else {
        session_end(s, SL_UDP_END_UPSTREAM_ERROR);
    }
}

/* Sends n bytes of the buffer to the client by the listener, from the address it sent to. */
static int listener_send(sl_udp_engine_t *e, const sl_udp_session_t *s, size_t n)
{
    struct iovec iov = {e->buf, n};
    struct msghdr m = {
        .msg_name = (void *)&s->client, .msg_namelen = addr_len(&s->client), .msg_iov = &iov, .msg_iovlen = 1};
    sl_udp_cmsg_t ctl;
    if (e->wildcard) {
        memset(&ctl, 0, sizeof(ctl));
        m.msg_control = ctl.b;
        struct cmsghdr *c = &ctl.h;
        if (s->local.sa.sa_family == AF_INET) {
            struct in_pktinfo pi = {.ipi_spec_dst = s->local.in.sin_addr};
            m.msg_controllen = CMSG_SPACE(sizeof(pi));
            c->cmsg_level = IPPROTO_IP;
            c->cmsg_type = IP_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof(pi));
            memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        } else {
            struct in6_pktinfo pi = {.ipi6_addr = s->local.in6.sin6_addr, .ipi6_ifindex = s->local.in6.sin6_scope_id};
            m.msg_controllen = CMSG_SPACE(sizeof(pi));
            c->cmsg_level = IPPROTO_IPV6;
            c->cmsg_type = IPV6_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof(pi));
            memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        }
    }
    return sendmsg(e->fd, &m, 0) >= 0 ? 0 : -errno;
}

static void to_client(sl_udp_session_t *s, size_t n)
{
    sl_udp_engine_t *e = s->e;
    s->last_ms = uv_now(e->loop);
    int rc;
    if (s->detached) {
        uv_buf_t b = uv_buf_init(e->buf, (unsigned)n);
        rc = SL_MIN(uv_udp_try_send(&s->down, &b, 1, NULL), 0);
        if (rc != 0 && !send_error_transient(-rc)) {
            session_end(s, SL_UDP_END_CLIENT_ERROR);
            return;
        }
    } else {
        /* The listener is not connected: the kernel reports no error for the client, and a
         * failure is this datagram's alone. */
        rc = listener_send(e, s, n);
    }
    if (rc == 0) {
        s->dgrams_out++;
        s->bytes_out += n;
    } else {
        s->dropped++;
        e->stats.dropped++;
    }
}

static void open_session(sl_udp_engine_t *e, const sl_udp_addr_t *client, const sl_udp_addr_t *local,
                         const sl_udp_key_t *k, uint64_t h, size_t n);

/* A datagram of n bytes in the buffer from client to local, read off the listener or off a
 * session's client socket: to its session, or to a new one. */
static void dispatch(sl_udp_engine_t *e, const sl_udp_addr_t *client, const sl_udp_addr_t *local, size_t n)
{
    sl_udp_key_t k;
    key_make(&k, client, local);
    uint64_t h = key_hash(e, &k);
    sl_udp_session_t *s = table_find(e, &k, h);
    if (s)
        to_upstream(s, n);
    else if (e->stopped)
        e->stats.unrouted++;
    else
        open_session(e, client, local, &k, h, n);
}

/* ---- the sockets ------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    sl_udp_session_t *s = h->data;
    buf->base = s->e->buf;
    buf->len = s->e->buf_len;
}

static void on_up(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
    sl_udp_session_t *s = h->data;
    if (nread < 0) {
        /* On a connected UDP socket: the ICMP error the kernel kept for the next read. */
        session_end(s, SL_UDP_END_UPSTREAM_ERROR);
        return;
    }
    if (!addr) return; /* nothing more to read */
    if (flags & UV_UDP_PARTIAL) {
        s->dropped++;
        s->e->stats.too_large++;
        return;
    }
    to_client(s, (size_t)nread);
}

static void on_down(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
    sl_udp_session_t *s = h->data;
    sl_udp_engine_t *e = s->e;
    if (nread < 0) {
        session_end(s, SL_UDP_END_CLIENT_ERROR);
        return;
    }
    if (!addr) return;
    if (flags & UV_UDP_PARTIAL) {
        e->stats.too_large++;
        return;
    }
    sl_udp_addr_t from;
    memcpy(&from, addr, addr->sa_family == AF_INET6 ? sizeof(from.in6) : sizeof(from.in));
    if (addr_equal(&from, &s->client))
        to_upstream(s, (size_t)nread);
    else
        dispatch(e, &from, &s->local, (size_t)nread); /* caught before connect() */
}

/* Reads one datagram off the listener and dispatches it; 0, or -1 when there is none. */
static int listener_read(sl_udp_engine_t *e)
{
    sl_udp_addr_t from, local = e->bound;
    sl_udp_cmsg_t ctl;
    struct iovec iov = {e->buf, e->buf_len};
    struct msghdr m = {.msg_name = &from,
                       .msg_namelen = sizeof(from),
                       .msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = ctl.b,
                       .msg_controllen = sizeof(ctl)};
    ssize_t n = recvmsg(e->fd, &m, 0);
    if (n < 0) return errno == EINTR ? 0 : -1;
    if (m.msg_flags & MSG_TRUNC) {
        e->stats.too_large++;
        return 0;
    }
    if (from.sa.sa_family != local.sa.sa_family) return 0;
    /* The destination address of the datagram: on a wildcard listener, where the reply must
     * come from and what the route's server_addr is matched against. */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && local.sa.sa_family == AF_INET) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            local.in.sin_addr = pi.ipi_addr;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO && local.sa.sa_family == AF_INET6) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            local.in6.sin6_addr = pi.ipi6_addr;
            local.in6.sin6_scope_id = IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr) ? pi.ipi6_ifindex : 0;
        }
    }
    dispatch(e, &from, &local, (size_t)n);
    return 0;
}

static void on_listener(uv_poll_t *p, int status, int events)
{
    sl_udp_engine_t *e = p->data;
    if (status < 0) {
        /* A pending socket error stopped the handle: clear it and carry on. */
        int err;
        socklen_t len = sizeof(err);
        getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        uv_poll_start(p, UV_READABLE, on_listener);
        return;
    }
    for (int i = 0; i < SL_UDP_BATCH && !e->stopped; i++)
        if (listener_read(e) != 0) break;
}

/* Gives s a socket of its own toward the client, for when the listener is gone. Not in the
 * listener's SO_REUSEPORT group (no SO_REUSEPORT): the group keeps spreading only new
 * clients over the listeners. Returns 0 or a negative error. */
static int session_detach(sl_udp_session_t *s)
{
    int rc = uv_udp_init_ex(s->e->loop, &s->down, s->local.sa.sa_family);
    if (rc != 0) return rc;
    s->down.data = s;
    s->detached = 1;
    s->handles++;
    uv_os_fd_t fd;
    int one = 1;
    /* Set here rather than by a bind flag: libuv versions differ on what UV_UDP_REUSEADDR sets. */
    if ((rc = uv_fileno((uv_handle_t *)&s->down, &fd)) != 0) return rc;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) return -errno;
    unsigned flags = s->local.sa.sa_family == AF_INET6 ? UV_UDP_IPV6ONLY : 0;
    if ((rc = uv_udp_bind(&s->down, &s->local.sa, flags)) != 0) return rc;
    if ((rc = uv_udp_connect(&s->down, &s->client.sa)) != 0) return rc;
    return uv_udp_recv_start(&s->down, on_alloc, on_down);
}

/* ---- sessions ---------------------------------------------------------------------------- */

static void open_session(sl_udp_engine_t *e, const sl_udp_addr_t *client, const sl_udp_addr_t *local,
                         const sl_udp_key_t *k, uint64_t h, size_t n)
{
    sl_udp_open_t o;
    memset(&o, 0, sizeof(o));
    if (e->cfg.open_session(e->cfg.ctx, &client->sa, &local->sa, &o) != 0) {
        e->stats.unrouted++;
        return;
    }
    /* Filled on the stack: a refusal costs no allocation. */
    sl_udp_session_t t;
    memset(&t, 0, sizeof(t));
    t.e = e;
    t.key = *k;
    t.hash = h;
    t.client = *client;
    t.local = *local;
    memcpy(&t.upstream, &o.upstream, o.upstream.ss_family == AF_INET6 ? sizeof(t.upstream.in6) : sizeof(t.upstream.in));
    t.user = o.session;
    t.idle_ms = o.idle_timeout_ms ? o.idle_timeout_ms : e->cfg.idle_timeout_ms;
    t.start_ms = t.last_ms = uv_now(e->loop);
    if (e->stats.sessions >= e->cfg.max_sessions) {
        e->stats.over_limit++;
        report(e, &t, SL_UDP_END_OVER_LIMIT);
        return;
    }
    if (t.upstream.sa.sa_family != AF_INET && t.upstream.sa.sa_family != AF_INET6) {
        report(e, &t, SL_UDP_END_UPSTREAM_ERROR);
        return;
    }
    sl_udp_session_t *s = sl_xmalloc(sizeof(*s));
    *s = t;
    if (uv_udp_init_ex(e->loop, &s->up, t.upstream.sa.sa_family) != 0) {
        report(e, s, SL_UDP_END_INTERNAL);
        free(s);
        return;
    }
    s->up.data = s;
    /* connect() on UDP sends nothing: it fixes the peer, so the kernel passes only the node's
     * datagrams and reports its ICMP errors on this socket. */
    if (uv_udp_connect(&s->up, &s->upstream.sa) != 0 || uv_udp_recv_start(&s->up, on_alloc, on_up) != 0) {
        report(e, s, SL_UDP_END_UPSTREAM_ERROR);
        s->handles = 1;
        uv_close((uv_handle_t *)&s->up, on_session_handle_closed);
        e->n_alive++;
        return;
    }
    uv_timer_init(e->loop, &s->idle);
    s->idle.data = s;
    uv_timer_start(&s->idle, on_idle, s->idle_ms, 0);
    s->handles = 2;
    table_insert(e, s);
    e->n_alive++;
    e->stats.sessions_total++;
    to_upstream(s, n);
}

/* ---- engine ------------------------------------------------------------------------------ */

int sl_udp_socket_open(const struct sockaddr *addr)
{
    socklen_t len;
    if (addr->sa_family == AF_INET)
        len = sizeof(struct sockaddr_in);
    else if (addr->sa_family == AF_INET6)
        len = sizeof(struct sockaddr_in6);
    else
        return -EAFNOSUPPORT;
    int fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    /* SO_REUSEADDR too: sessions carried on after a stop bind their own sockets beside it. */
    int one = 1, rc;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        (addr->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(fd, addr, len) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int sl_udp_engine_start(uv_loop_t *loop, int fd, const sl_udp_config_t *cfg, sl_udp_engine_t **out)
{
    sl_udp_addr_t bound;
    socklen_t len = sizeof(bound);
    int one = 1, rc;
    if (getsockname(fd, &bound.sa, &len) != 0) {
        rc = -errno;
        goto fail_fd;
    }
    if (bound.sa.sa_family != AF_INET && bound.sa.sa_family != AF_INET6) {
        rc = -EAFNOSUPPORT;
        goto fail_fd;
    }
    /* Each datagram's destination address comes with it (see listener_read). */
    if (bound.sa.sa_family == AF_INET ? setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one))
                                      : setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one))) {
        rc = -errno;
        goto fail_fd;
    }
    size_t buf_len =
        cfg->max_datagram && cfg->max_datagram < SL_UDP_MAX_DATAGRAM ? cfg->max_datagram : SL_UDP_MAX_DATAGRAM;
    sl_udp_engine_t *e = sl_xcalloc(1, sizeof(*e) + buf_len);
    e->loop = loop;
    e->cfg = *cfg;
    if (!e->cfg.idle_timeout_ms) e->cfg.idle_timeout_ms = SL_UDP_DEFAULT_IDLE_MS;
    if (!e->cfg.max_sessions) e->cfg.max_sessions = SL_UDP_DEFAULT_MAX_SESSIONS;
    e->cfg.max_datagram = e->buf_len = buf_len;
    e->fd = fd;
    e->bound = bound;
    e->wildcard = bound.sa.sa_family == AF_INET ? bound.in.sin_addr.s_addr == htonl(INADDR_ANY)
                                                : IN6_IS_ADDR_UNSPECIFIED(&bound.in6.sin6_addr);
    if (getrandom(&e->seed, sizeof(e->seed), GRND_NONBLOCK) != sizeof(e->seed)) e->seed = uv_hrtime();
    e->n_buckets = SL_UDP_MIN_BUCKETS;
    e->buckets = sl_xcalloc(e->n_buckets, sizeof(*e->buckets));
    if ((rc = uv_poll_init_socket(loop, &e->listener, fd)) != 0) goto fail_engine;
    e->listener.data = e;
    e->listener_open = 1;
    if ((rc = uv_poll_start(&e->listener, UV_READABLE, on_listener)) != 0) {
        /* Closed like a stopped engine with no sessions: freed in the close callback. */
        e->cfg.closed = NULL;
        sl_udp_engine_close(e);
        return rc;
    }
    *out = e;
    return 0;

fail_engine:
    free(e->buckets);
    free(e);
fail_fd:
    close(fd);
    return rc;
}

static void on_listener_closed(uv_handle_t *h)
{
    sl_udp_engine_t *e = h->data;
    e->listener_open = 0;
    maybe_free(e);
}

static void close_listener(sl_udp_engine_t *e)
{
    e->stopped = 1;
    uv_close((uv_handle_t *)&e->listener, on_listener_closed);
    close(e->fd);
    e->fd = -1;
}

void sl_udp_engine_stop(sl_udp_engine_t *e)
{
    if (e->stopped) return;
    e->stopped = 1;
    /* What the listener already holds belongs to open sessions or to clients it now refuses. */
    for (int i = 0; i < SL_UDP_STOP_DRAIN; i++)
        if (listener_read(e) != 0) break;
    for (size_t b = 0; b < e->n_buckets; b++) {
        for (sl_udp_session_t *s = e->buckets[b], *next; s; s = next) {
            next = s->next;
            if (session_detach(s) != 0) session_end(s, SL_UDP_END_SHUTDOWN);
        }
    }
    close_listener(e);
}

void sl_udp_engine_close(sl_udp_engine_t *e)
{
    if (!e->stopped) close_listener(e);
    for (size_t b = 0; b < e->n_buckets; b++)
        while (e->buckets[b])
            session_end(e->buckets[b], SL_UDP_END_SHUTDOWN);
}

void sl_udp_engine_stats(const sl_udp_engine_t *e, sl_udp_stats_t *out)
{
    *out = e->stats;
}
