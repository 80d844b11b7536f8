/* UDP sessions on a real loop: the engine, an echo upstream (a uv_udp_t on the same loop) and
 * clients (plain sockets) on loopback. The loop is run until what a test waits for has
 * happened, with a 10 s guard against hanging; no test depends on how fast anything is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/common.h"
#include "stream/udp.h"

#define MAX_RECS 512

typedef struct rec {
    void *session;
    sl_udp_outcome_t outcome;
    uint64_t dgrams_in, bytes_in, dgrams_out, bytes_out, dropped, duration_ms;
    uint64_t at_ms; /* loop time of the call */
    struct sockaddr_storage client, local, upstream;
} rec_t;

static struct {
    uv_loop_t loop;
    uv_timer_t tick; /* wakes uv_run(UV_RUN_ONCE) so the guard is looked at */
    uv_udp_t echo;
    struct sockaddr_in echo_addr;
    char echo_buf[65536];
    int echoed;
    size_t echo_len; /* 0: echo the datagram; else answer with this many bytes */
    /* What open_session() answers. */
    struct sockaddr_storage upstream;
    int refuse;
    uint64_t idle_override;
    int opened;
    struct sockaddr_storage open_local[MAX_RECS];
    rec_t ends[MAX_RECS];
    int n_ends;
    int closed;
    /* Engines started, so that a failed test's teardown can close what it left open. */
    struct slot {
        sl_udp_engine_t *e;
        int closed;
    } engines[8];
    int n_engines;
} T;

/* ---- the loop, the echo upstream, the engine's callbacks ---------------------------------- */

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void on_echo_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h, (void)suggested;
    buf->base = T.echo_buf;
    buf->len = sizeof(T.echo_buf);
}

static void on_echo(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
    (void)flags;
    if (nread < 0 || !addr) return;
    T.echoed++;
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)(T.echo_len ? T.echo_len : (size_t)nread));
    uv_udp_try_send(u, &out, 1, addr);
}

static int cb_open(void *ctx, const struct sockaddr *client, const struct sockaddr *local, sl_udp_open_t *out)
{
    (void)ctx, (void)client;
    if (T.refuse) return -1;
    memcpy(&T.open_local[T.opened % MAX_RECS], local,
           local->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    T.opened++;
    out->upstream = T.upstream;
    out->session = (void *)(intptr_t)T.opened; /* the nth session */
    out->idle_timeout_ms = T.idle_override;
    return 0;
}

static void copy_addr(struct sockaddr_storage *to, const struct sockaddr *from)
{
    memset(to, 0, sizeof(*to));
    memcpy(to, from, from->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
}

static void cb_end(void *ctx, const sl_udp_facts_t *f)
{
    (void)ctx;
    assert_true(T.n_ends < MAX_RECS);
    rec_t *r = &T.ends[T.n_ends++];
    r->session = f->session;
    r->outcome = f->outcome;
    r->dgrams_in = f->dgrams_in;
    r->bytes_in = f->bytes_in;
    r->dgrams_out = f->dgrams_out;
    r->bytes_out = f->bytes_out;
    r->dropped = f->dropped;
    r->duration_ms = f->duration_ms;
    r->at_ms = uv_now(&T.loop);
    copy_addr(&r->client, f->client);
    copy_addr(&r->local, f->local);
    copy_addr(&r->upstream, f->upstream);
}

static void cb_closed(void *ctx)
{
    struct slot *slot = ctx;
    slot->closed = 1;
    T.closed++;
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof(T));
    assert_int_equal(uv_loop_init(&T.loop), 0);
    uv_timer_init(&T.loop, &T.tick);
    uv_timer_start(&T.tick, on_tick, 2, 2);
    uv_udp_init(&T.loop, &T.echo);
    uv_ip4_addr("127.0.0.1", 0, &T.echo_addr);
    assert_int_equal(uv_udp_bind(&T.echo, (struct sockaddr *)&T.echo_addr, 0), 0);
    int len = sizeof(T.echo_addr);
    uv_udp_getsockname(&T.echo, (struct sockaddr *)&T.echo_addr, &len);
    assert_int_equal(uv_udp_recv_start(&T.echo, on_echo_alloc, on_echo), 0);
    memcpy(&T.upstream, &T.echo_addr, sizeof(T.echo_addr));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < T.n_engines; i++)
        if (!T.engines[i].closed) sl_udp_engine_close(T.engines[i].e);
    uv_close((uv_handle_t *)&T.tick, NULL);
    uv_close((uv_handle_t *)&T.echo, NULL);
    uint64_t deadline = uv_hrtime() + 10 * 1000000000ull;
    while (uv_run(&T.loop, UV_RUN_NOWAIT) && uv_hrtime() < deadline)
        usleep(1000);
    /* Busy means a handle of the engine was left open. */
    assert_int_equal(uv_loop_close(&T.loop), 0);
    return 0;
}

/* Runs the loop until cond holds; fails the test after 10 s. */
#define RUN_UNTIL(cond)                                                                                                \
    do {                                                                                                               \
        uint64_t deadline_ = uv_hrtime() + 10 * 1000000000ull;                                                         \
        while (!(cond)) {                                                                                              \
            assert_true(uv_hrtime() < deadline_);                                                                      \
            uv_run(&T.loop, UV_RUN_ONCE);                                                                              \
        }                                                                                                              \
    } while (0)

static void run_for_ms(uint64_t ms)
{
    uv_update_time(&T.loop);
    uint64_t until = uv_now(&T.loop) + ms;
    while (uv_now(&T.loop) < until)
        uv_run(&T.loop, UV_RUN_ONCE);
}

static sl_udp_engine_t *engine_on(const char *ip, uint16_t port, const sl_udp_config_t *extra,
                                  struct sockaddr_storage *addr)
{
    memset(addr, 0, sizeof(*addr));
    if (strchr(ip, ':'))
        assert_int_equal(uv_ip6_addr(ip, port, (struct sockaddr_in6 *)addr), 0);
    else
        assert_int_equal(uv_ip4_addr(ip, port, (struct sockaddr_in *)addr), 0);
    int fd = sl_udp_socket_open((struct sockaddr *)addr);
    assert_true(fd >= 0);
    socklen_t len = sizeof(*addr);
    getsockname(fd, (struct sockaddr *)addr, &len);
    sl_udp_config_t cfg = {0};
    if (extra) cfg = *extra;
    cfg.open_session = cb_open;
    cfg.session_end = cb_end;
    cfg.closed = cb_closed;
    assert_true(T.n_engines < (int)SL_ARRAY_LEN(T.engines));
    cfg.ctx = &T.engines[T.n_engines];
    sl_udp_engine_t *e = NULL;
    assert_int_equal(sl_udp_engine_start(&T.loop, fd, &cfg, &e), 0);
    T.engines[T.n_engines++].e = e;
    return e;
}

static sl_udp_stats_t stats(const sl_udp_engine_t *e)
{
    sl_udp_stats_t s;
    sl_udp_engine_stats(e, &s);
    return s;
}

/* ---- clients ----------------------------------------------------------------------------- */

static socklen_t sa_len(const struct sockaddr_storage *a)
{
    return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* A client socket on ip, port chosen by the kernel; connected to `to` when given (so it sees
 * ICMP errors), else it says to whom on each send. */
static int client_open(const char *ip, const struct sockaddr_storage *to)
{
    struct sockaddr_storage a = {0};
    int v6 = strchr(ip, ':') != NULL;
    if (v6)
        uv_ip6_addr(ip, 0, (struct sockaddr_in6 *)&a);
    else
        uv_ip4_addr(ip, 0, (struct sockaddr_in *)&a);
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sa_len(&a)), 0);
    if (to) assert_int_equal(connect(fd, (const struct sockaddr *)to, sa_len(to)), 0);
    return fd;
}

static void client_send(int fd, const struct sockaddr_storage *to, const void *p, size_t n)
{
    ssize_t r = to ? sendto(fd, p, n, 0, (const struct sockaddr *)to, sa_len(to)) : send(fd, p, n, 0);
    assert_int_equal(r, (ssize_t)n);
}

/* Runs the loop until fd has a datagram (returns its length, source in *from) or an error
 * (returns -errno); fails the test after 10 s. */
static ssize_t client_recv(int fd, void *buf, size_t cap, struct sockaddr_storage *from)
{
    uint64_t deadline = uv_hrtime() + 10 * 1000000000ull;
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        ssize_t n = recvfrom(fd, buf, cap, 0, (struct sockaddr *)&ss, &len);
        if (n >= 0) {
            if (from) *from = ss;
            return n;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
        assert_true(uv_hrtime() < deadline);
        uv_run(&T.loop, UV_RUN_ONCE);
    }
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, 16);
}

static struct sockaddr_storage local_of(int fd)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    return a;
}

/* One round trip: payload out, the same payload back from `from`. */
static void round_trip(int fd, const struct sockaddr_storage *to, const char *payload,
                       const struct sockaddr_storage *from)
{
    char buf[256];
    struct sockaddr_storage src;
    client_send(fd, to, payload, strlen(payload));
    ssize_t n = client_recv(fd, buf, sizeof(buf), &src);
    assert_int_equal(n, (ssize_t)strlen(payload));
    assert_memory_equal(buf, payload, (size_t)n);
    assert_true(same_addr(&src, from));
}

static void close_engine(sl_udp_engine_t *e)
{
    int closed = T.closed;
    sl_udp_engine_close(e);
    RUN_UNTIL(T.closed >= closed + 1);
}

/* ---- tests ------------------------------------------------------------------------------- */

/* Several clients at once, their datagrams interleaved: each gets its own replies, and each
 * session's facts count them. */
static void test_many_clients(void **state)
{
    (void)state;
    struct sockaddr_storage ea;
    sl_udp_engine_t *e = engine_on("127.0.0.1", 0, NULL, &ea);
    enum { CLIENTS = 8, EACH = 8 }; /* 64 in flight: well within default socket buffers */
    int fd[CLIENTS];
    for (int c = 0; c < CLIENTS; c++)
        fd[c] = client_open("127.0.0.1", NULL);
    for (int j = 0; j < EACH; j++) {
        for (int c = 0; c < CLIENTS; c++) {
            char p[32];
            int n = snprintf(p, sizeof(p), "c%d-%02d", c, j);
            client_send(fd[c], &ea, p, (size_t)n);
        }
    }
    for (int c = 0; c < CLIENTS; c++) {
        int seen[EACH] = {0};
        for (int j = 0; j < EACH; j++) {
            char buf[64], want[16];
            struct sockaddr_storage src;
            ssize_t n = client_recv(fd[c], buf, sizeof(buf) - 1, &src);
            assert_true(n > 0);
            buf[n] = 0;
            assert_true(same_addr(&src, &ea));
            int k = snprintf(want, sizeof(want), "c%d-", c);
            assert_memory_equal(buf, want, (size_t)k);
            int idx = atoi(buf + k);
            assert_true(idx >= 0 && idx < EACH);
            seen[idx]++;
        }
        for (int j = 0; j < EACH; j++)
            assert_int_equal(seen[j], 1);
    }
    sl_udp_stats_t st = stats(e);
    assert_int_equal(st.sessions, CLIENTS);
    assert_int_equal(st.sessions_total, CLIENTS);
    assert_int_equal(T.opened, CLIENTS);
    close_engine(e);
    assert_int_equal(T.n_ends, CLIENTS);
    for (int i = 0; i < CLIENTS; i++) {
        rec_t *r = &T.ends[i];
        assert_int_equal(r->outcome, SL_UDP_END_SHUTDOWN);
        assert_int_equal(r->dgrams_in, EACH);
        assert_int_equal(r->dgrams_out, EACH);
        assert_int_equal(r->bytes_in, EACH * 5);
        assert_int_equal(r->bytes_out, EACH * 5);
        assert_true(same_addr(&r->local, &ea));
        assert_true(same_addr(&r->upstream, &T.upstream));
        int c = -1;
        for (int k = 0; k < CLIENTS; k++) {
            struct sockaddr_storage a = local_of(fd[k]);
            if (same_addr(&a, &r->client)) c = k;
        }
        assert_true(c >= 0);
    }
    for (int c = 0; c < CLIENTS; c++)
        close(fd[c]);
}

/* Enough sessions to grow the table several times; each still finds its own client. */
static void test_many_sessions(void **state)
{
    (void)state;
    struct sockaddr_storage ea;
    sl_udp_engine_t *e = engine_on("127.0.0.1", 0, NULL, &ea);
    enum { CLIENTS = 300 };
    static int fd[CLIENTS];
    /* In rounds of 50: a burst of all of them could overflow the sockets' receive buffers. */
    for (int r = 0; r < CLIENTS; r += 50) {
        for (int c = r; c < r + 50; c++) {
            fd[c] = client_open("127.0.0.1", NULL);
            char p[16];
            int n = snprintf(p, sizeof(p), "s%d", c);
            client_send(fd[c], &ea, p, (size_t)n);
        }
        for (int c = r; c < r + 50; c++) {
            char p[16], buf[16];
            snprintf(p, sizeof(p), "s%d", c);
            ssize_t n = client_recv(fd[c], buf, sizeof(buf), NULL);
            assert_int_equal(n, (ssize_t)strlen(p));
            assert_memory_equal(buf, p, (size_t)n);
        }
    }
    /* A second round goes to the same sessions. */
    for (int c = 0; c < CLIENTS; c++) {
        char p[16];
        snprintf(p, sizeof(p), "again%d", c);
        round_trip(fd[c], &ea, p, &ea);
    }
    assert_int_equal(stats(e).sessions, CLIENTS);
    assert_int_equal(T.opened, CLIENTS);
    close_engine(e);
    assert_int_equal(T.n_ends, CLIENTS);
    for (int i = 0; i < CLIENTS; i++)
        assert_int_equal(T.ends[i].dgrams_out, 2);
    for (int c = 0; c < CLIENTS; c++)
        close(fd[c]);
}

/* An empty datagram is a datagram: forwarded both ways. */
static void test_empty_datagram(void **state)
{
    (void)state;
    struct sockaddr_storage ea;
    sl_udp_engine_t *e = engine_on("127.0.0.1", 0, NULL, &ea);
    int fd = client_open("127.0.0.1", NULL);
    char buf[8];
    client_send(fd, &ea, "", 0);
    assert_int_equal(client_recv(fd, buf, sizeof(buf), NULL), 0);
    close_engine(e);
    assert_int_equal(T.ends[0].dgrams_in, 1);
    assert_int_equal(T.ends[0].dgrams_out, 1);
    assert_int_equal(T.ends[0].bytes_in, 0);
    close(fd);
}

/* A quiet session ends by itself; the client's next datagram opens a new one. */
static void test_idle_expiry(void **state)
{
    (void)state;
    struct sockaddr_storage ea;
    sl_udp_config_t cfg = {.idle_timeout_ms = 200};
    sl_udp_engine_t *e = engine_on("127.0.0.1", 0, &cfg, &ea);
    int fd = client_open("127.0.0.1", NULL);
    round_trip(fd, &ea, "hello", &ea);
    RUN_UNTIL(T.n_ends >= 1);
    rec_t *r = &T.ends[0];
    assert_int_equal(r->outcome, SL_UDP_END_IDLE);
    assert_true(r->duration_ms >= 200);
    assert_int_equal(r->dgrams_in, 1);
    assert_int_equal(r->bytes_in, 5);
    assert_int_equal(r->dgrams_out, 1);
    assert_int_equal(r->bytes_out, 5);
    assert_int_equal(r->dropped, 0);
    assert_ptr_equal(r->session, (void *)1);
    struct sockaddr_storage me = local_of(fd);
    assert_true(same_addr(&r->client, &me));
    assert_true(same_addr(&r->local, &ea));
    assert_int_equal(stats(e).sessions, 0);
    round_trip(fd, &ea, "again", &ea);
    assert_int_equal(T.opened, 2);
    /* A route's own idle timeout wins over the engine's. */
    T.idle_override = 50;
    int fd2 = client_open("127.0.0.1", NULL);
    round_trip(fd2, &ea, "short", &ea);
    RUN_UNTIL(T.n_ends >= 2);
    assert_ptr_equal(T.ends[1].session, (void *)3);
    assert_int_equal(T.ends[1].outcome, SL_UDP_END_IDLE);
    close_engine(e);
    close(fd);
    close(fd2);
}

/* Datagrams either way keep a session open: the timer, armed once, looks at the last one. */
static void test_idle_counts_from_last_datagram(void **state)
{
    (void)state;
    struct sockaddr_storage ea;
    sl_udp_config_t cfg = {.idle_timeout_ms = 1000};
    sl_udp_engine_t *e = engine_on("127.0.0.1", 0, &cfg, &ea);
    int fd = client_open("127.0.0.1", NULL);
    round_trip(fd, &ea, "one", &ea);
    run_for_ms(300);
    round_trip(fd, &ea, "two", &ea);
    uint64_t second = uv_now(&T.loop);
    RUN_UNTIL(T.n_ends >= 1);
    assert_int_equal(T.ends[0].outcome, SL_UDP_END_IDLE);
    assert_int_equal(T.ends[0].dgrams_in, 2);
    assert_true(T.ends[0].at_ms >= second + 1000 - 1);
    assert_int_equal(T.opened, 1);
    close_engine(e);
    close(fd);
}

/* Beyond max_sessions a new client is dropped and counted, its session reported at once;
 * once sessions end there is room again. */
static void test_max_sessions(void **state)
{
    (void)state;
    struct sockaddr_storage ea;
    sl_udp_config_t cfg = {.idle_timeout_ms = 300, .max_sessions = 2};
    sl_udp_engine_t *e = engine_on("127.0.0.1", 0, &cfg, &ea);
    int c1 = client_open("127.0.0.1", NULL), c2 = client_open("127.0.0.1", NULL), c3 = client_open("127.0.0.1", NULL);
    round_trip(c1, &ea, "one", &ea);
    round_trip(c2, &ea, "two", &ea);
    client_send(c3, &ea, "three", 5);
    RUN_UNTIL(T.n_ends >= 1);
    assert_int_equal(T.ends[0].outcome, SL_UDP_END_OVER_LIMIT);
    assert_ptr_equal(T.ends[0].session, (void *)3);
    assert_int_equal(T.ends[0].dgrams_in, 0);
    sl_udp_stats_t st = stats(e);
    assert_int_equal(st.over_limit, 1);
    assert_int_equal(st.sessions, 2);
    /* Refused before anything went upstream. */
    assert_int_equal(T.echoed, 2);
    char buf[16];
    assert_int_equal(recv(c3, buf, sizeof(buf), 0), -1);
    assert_int_equal(errno, EAGAIN);
    RUN_UNTIL(T.n_ends >= 3);
    round_trip(c3, &ea, "three", &ea);
    assert_int_equal(stats(e).sessions, 1);
    close_engine(e);
    close(c1);
    close(c2);
    close(c3);
}

/* 65,507 bytes each way; above max_datagram, dropped and counted in either direction. */
static void test_large_datagrams(void **state)
{
    (void)state;
    struct sockaddr_storage ea;
    sl_udp_engine_t *e = engine_on("127.0.0.1", 0, NULL, &ea);
    int fd = client_open("127.0.0.1", NULL);
    /* Room for the largest datagram on both sockets, whatever the system's defaults. */
    int big = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    size_t n = SL_UDP_MAX_DATAGRAM;
    char *out = malloc(n), *in = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(i * 7 + i / 251);
    client_send(fd, &ea, out, n);
    assert_int_equal(client_recv(fd, in, n + 1, NULL), (ssize_t)n);
    assert_memory_equal(in, out, n);
    close_engine(e);
    assert_int_equal(T.ends[0].bytes_in, n);
    assert_int_equal(T.ends[0].bytes_out, n);

    sl_udp_config_t cfg = {.max_datagram = 1000};
    e = engine_on("127.0.0.1", 0, &cfg, &ea);
    client_send(fd, &ea, out, 1001);
    client_send(fd, &ea, out, 1000);
    assert_int_equal(client_recv(fd, in, n, NULL), 1000);
    assert_memory_equal(in, out, 1000);
    assert_int_equal(stats(e).too_large, 1);
    /* The upstream answers 1001 bytes: dropped on the way back. */
    T.echo_len = 1001;
    client_send(fd, &ea, out, 10);
    RUN_UNTIL(stats(e).too_large == 2);
    assert_int_equal(recv(fd, in, n, 0), -1);
    assert_int_equal(errno, EAGAIN);
    close_engine(e);
    assert_int_equal(T.ends[1].outcome, SL_UDP_END_SHUTDOWN);
    assert_int_equal(T.ends[1].dgrams_in, 2);
    assert_int_equal(T.ends[1].dgrams_out, 1);
    assert_int_equal(T.ends[1].dropped, 1);
    free(out);
    free(in);
    close(fd);
}

/* The upstream's port is closed: the ICMP port unreachable ends the session. */
static void test_upstream_refused(void **state)
{
    (void)state;
    int dead = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in da;
    uv_ip4_addr("127.0.0.1", 0, &da);
    assert_int_equal(bind(dead, (struct sockaddr *)&da, sizeof(da)), 0);
    socklen_t len = sizeof(da);
    getsockname(dead, (struct sockaddr *)&da, &len);
    close(dead);
    memcpy(&T.upstream, &da, sizeof(da));
    struct sockaddr_storage ea;
    sl_udp_engine_t *e = engine_on("127.0.0.1", 0, NULL, &ea);
    int fd = client_open("127.0.0.1", NULL);
    client_send(fd, &ea, "ping", 4);
    RUN_UNTIL(T.n_ends >= 1);
    assert_int_equal(T.ends[0].outcome, SL_UDP_END_UPSTREAM_ERROR);
    assert_int_equal(T.ends[0].dgrams_in, 1);
    assert_int_equal(T.ends[0].dgrams_out, 0);
    assert_true(same_addr(&T.ends[0].upstream, &T.upstream));
    assert_int_equal(stats(e).sessions, 0);
    /* The next datagram asks again (the caller may pick another node by then). */
    memcpy(&T.upstream, &T.echo_addr, sizeof(T.echo_addr));
    round_trip(fd, &ea, "pong", &ea);
    assert_int_equal(T.opened, 2);
    close_engine(e);
    close(fd);
}

/* open_session() says no: the datagram is dropped and counted, nothing is reported. */
static void test_refused_by_caller(void **state)
{
    (void)state;
    struct sockaddr_storage ea;
    sl_udp_engine_t *e = engine_on("127.0.0.1", 0, NULL, &ea);
    T.refuse = 1;
    int fd = client_open("127.0.0.1", NULL);
    client_send(fd, &ea, "no", 2);
    RUN_UNTIL(stats(e).unrouted == 1);
    assert_int_equal(stats(e).sessions, 0);
    assert_int_equal(T.n_ends, 0);
    assert_int_equal(T.echoed, 0);
    T.refuse = 0;
    round_trip(fd, &ea, "yes", &ea);
    close_engine(e);
    close(fd);
}

/* After a stop the port refuses new clients, while open sessions carry on, on their own
 * sockets, until they idle out; then the engine is gone. */
static void test_stop_keeps_sessions(void **state)
{
    (void)state;
    struct sockaddr_storage ea;
    sl_udp_config_t cfg = {.idle_timeout_ms = 2000};
    sl_udp_engine_t *e = engine_on("127.0.0.1", 0, &cfg, &ea);
    int c1 = client_open("127.0.0.1", &ea), c2 = client_open("127.0.0.1", &ea);
    round_trip(c1, NULL, "before", &ea);
    sl_udp_engine_stop(e);
    assert_int_equal(T.n_ends, 0);
    round_trip(c1, NULL, "after", &ea);
    /* No socket takes a new client: ICMP port unreachable. */
    char buf[16];
    client_send(c2, NULL, "new", 3);
    assert_int_equal(client_recv(c2, buf, sizeof(buf), NULL), -ECONNREFUSED);
    assert_int_equal(T.opened, 1);
    RUN_UNTIL(T.closed >= 1);
    assert_int_equal(T.n_ends, 1);
    assert_int_equal(T.ends[0].outcome, SL_UDP_END_IDLE);
    assert_int_equal(T.ends[0].dgrams_in, 2);
    assert_int_equal(T.ends[0].dgrams_out, 2);
    close(c1);
    close(c2);
}

/* A reload that brings the port back: a new listener opens beside the stopped engine's
 * session sockets; new and old clients both get answers. */
static void test_stop_then_port_reopened(void **state)
{
    (void)state;
    struct sockaddr_storage ea, ea2;
    sl_udp_config_t cfg = {.idle_timeout_ms = 5000};
    sl_udp_engine_t *e = engine_on("127.0.0.1", 0, &cfg, &ea);
    int c1 = client_open("127.0.0.1", &ea), c2 = client_open("127.0.0.1", &ea);
    round_trip(c1, NULL, "old", &ea);
    sl_udp_engine_stop(e);
    uint16_t port = ntohs(((struct sockaddr_in *)&ea)->sin_port);
    sl_udp_engine_t *e2 = engine_on("127.0.0.1", port, &cfg, &ea2);
    assert_true(same_addr(&ea, &ea2));
    round_trip(c2, NULL, "new", &ea);
    round_trip(c1, NULL, "old again", &ea);
    assert_int_equal(stats(e2).sessions_total >= 1, 1);
    assert_int_equal(T.engines[0].closed, 0); /* c1's session is still open */
    sl_udp_engine_close(e);
    RUN_UNTIL(T.closed >= 1);
    close_engine(e2);
    close(c1);
    close(c2);
}

/* Closing now ends every session with the shutdown outcome and closes every socket. */
static void test_close_now(void **state)
{
    (void)state;
    struct sockaddr_storage ea;
    sl_udp_engine_t *e = engine_on("127.0.0.1", 0, NULL, &ea);
    int c1 = client_open("127.0.0.1", &ea), c2 = client_open("127.0.0.1", &ea);
    round_trip(c1, NULL, "a", &ea);
    round_trip(c2, NULL, "b", &ea);
    sl_udp_engine_close(e);
    assert_int_equal(T.n_ends, 2);
    assert_int_equal(T.ends[0].outcome, SL_UDP_END_SHUTDOWN);
    assert_int_equal(T.ends[1].outcome, SL_UDP_END_SHUTDOWN);
    sl_udp_engine_close(e); /* idempotent until closed() */
    RUN_UNTIL(T.closed >= 1);
    char buf[8];
    client_send(c1, NULL, "c", 1);
    assert_int_equal(client_recv(c1, buf, sizeof(buf), NULL), -ECONNREFUSED);
    close(c1);
    close(c2);
}

/* Stopped first, then closed (the end of a grace period): the carried-on sessions end now. */
static void test_stop_then_close(void **state)
{
    (void)state;
    struct sockaddr_storage ea;
    sl_udp_engine_t *e = engine_on("127.0.0.1", 0, NULL, &ea);
    int c1 = client_open("127.0.0.1", &ea);
    round_trip(c1, NULL, "a", &ea);
    sl_udp_engine_stop(e);
    sl_udp_engine_stop(e);
    round_trip(c1, NULL, "b", &ea);
    close_engine(e);
    assert_int_equal(T.n_ends, 1);
    assert_int_equal(T.ends[0].outcome, SL_UDP_END_SHUTDOWN);
    assert_int_equal(T.ends[0].dgrams_in, 2);
    char buf[8];
    client_send(c1, NULL, "c", 1);
    assert_int_equal(client_recv(c1, buf, sizeof(buf), NULL), -ECONNREFUSED);
    close(c1);
}

/* On a wildcard listener each reply leaves from the address its client sent to, before and
 * after a stop, and each local address is a session of its own. */
static void test_wildcard_reply_source(void **state)
{
    (void)state;
    struct sockaddr_storage ea, to5, to6;
    sl_udp_config_t cfg = {.idle_timeout_ms = 5000};
    sl_udp_engine_t *e = engine_on("0.0.0.0", 0, &cfg, &ea);
    uint16_t port = ntohs(((struct sockaddr_in *)&ea)->sin_port);
    uv_ip4_addr("127.0.0.5", port, (struct sockaddr_in *)&to5);
    uv_ip4_addr("127.0.0.6", port, (struct sockaddr_in *)&to6);
    int c1 = client_open("127.0.0.1", NULL), c2 = client_open("127.0.0.1", NULL);
    round_trip(c1, &to5, "to five", &to5);
    round_trip(c2, &to6, "to six", &to6);
    round_trip(c1, &to6, "one to six", &to6);
    assert_int_equal(T.opened, 3);
    assert_true(same_addr(&T.open_local[0], &to5));
    assert_true(same_addr(&T.open_local[1], &to6));
    assert_true(same_addr(&T.open_local[2], &to6));
    sl_udp_engine_stop(e);
    round_trip(c1, &to5, "still five", &to5);
    round_trip(c1, &to6, "still six", &to6);
    round_trip(c2, &to6, "six too", &to6);
    assert_int_equal(T.opened, 3);
    close_engine(e);
    assert_int_equal(T.n_ends, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(T.ends[i].dgrams_out, 2);
    close(c1);
    close(c2);
}

/* Clients and listener over IPv6 (the suite needs ::1: a machine without it fails here). */
static void test_ipv6(void **state)
{
    (void)state;
    struct sockaddr_storage ea;
    sl_udp_engine_t *e = engine_on("::1", 0, NULL, &ea);
    int c1 = client_open("::1", NULL), c2 = client_open("::1", NULL);
    round_trip(c1, &ea, "six one", &ea);
    round_trip(c2, &ea, "six two", &ea);
    round_trip(c1, &ea, "six one again", &ea);
    assert_int_equal(T.opened, 2);
    sl_udp_engine_stop(e);
    round_trip(c2, &ea, "six two after", &ea);
    close_engine(e);
    assert_int_equal(T.n_ends, 2);
    struct sockaddr_storage me = local_of(c1);
    int found = 0;
    for (int i = 0; i < 2; i++)
        found += same_addr(&T.ends[i].client, &me) && T.ends[i].dgrams_in == 2;
    assert_int_equal(found, 1);
    close(c1);
    close(c2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_many_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_datagram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_counts_from_last_datagram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_datagrams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_by_caller, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_keeps_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_then_port_reopened, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_then_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wildcard_reply_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
