/*
 * connhold: open N keep-alive HTTP/1.1 client connections to HOST:PORT, send one GET on
 * each, read the whole response, then keep every connection open and idle.
 *
 *   connhold HOST PORT N [MAX_INFLIGHT] [SETUP_TIMEOUT_S] [HOLD_TIMEOUT_S]
 *
 * Prints "READY ok=<n> fail=<n>" on stdout once all requests are answered (or failed), then
 * idles until SIGTERM/SIGINT (or HOLD_TIMEOUT_S), reporting on exit how many connections the
 * peer closed while idle. Connections are closed with SO_LINGER 0 (RST) so repeated runs do
 * not pile up TIME_WAIT sockets on the loopback port range. Used by bench/run.sh to measure
 * the proxy-side memory of idle keep-alive connections. Loopback only; every phase is
 * bounded in time.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_IDLE = 0, ST_CONNECTING, ST_READING, ST_DONE, ST_FAILED, ST_CLOSED };

typedef struct {
    int fd;
    int state;
    size_t got;       /* bytes of the response read so far */
    long need;        /* total response length once headers are parsed, else -1 */
    char hdr[2048];
} conn_t;

static volatile sig_atomic_t stop;
static void on_sig(int s) { (void)s; stop = 1; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char REQ[] = "GET / HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: connhold\r\n\r\n";

static void fail(conn_t *c, int ep, int *failed) {
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    c->state = ST_FAILED;
    (*failed)++;
}

/* Parse headers once complete; returns 1 when the full response has been read. */
static int response_complete(conn_t *c) {
    if (c->need < 0) {
        c->hdr[c->got < sizeof c->hdr ? c->got : sizeof c->hdr - 1] = 0;
        char *end = strstr(c->hdr, "\r\n\r\n");
        if (!end) return 0;
        long hlen = (end - c->hdr) + 4;
        long clen = 0;
        for (char *p = c->hdr; p && p < end; p = strstr(p, "\r\n")) {
            if (*p == '\r') p += 2;
            if (strncasecmp(p, "content-length:", 15) == 0) clen = strtol(p + 15, NULL, 10);
        }
        c->need = hlen + clen;
    }
    return (long)c->got >= c->need;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s HOST PORT N [MAX_INFLIGHT] [SETUP_TIMEOUT_S] [HOLD_TIMEOUT_S]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    int n = atoi(argv[3]);
    int max_inflight = argc > 4 ? atoi(argv[4]) : 200;
    double setup_timeout = argc > 5 ? atof(argv[5]) : 60;
    double hold_timeout = argc > 6 ? atof(argv[6]) : 300;

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)n + 16 > rl.rlim_cur) {
        fprintf(stderr, "connhold: RLIMIT_NOFILE %lu too low for %d connections\n",
                (unsigned long)rl.rlim_cur, n);
        return 2;
    }
    signal(SIGTERM, on_sig);
    signal(SIGINT, on_sig);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "connhold: bad IPv4 address %s\n", host);
        return 2;
    }
    conn_t *cs = calloc(n, sizeof *cs);
    int ep = epoll_create1(0);
    struct epoll_event evs[256];
    int next = 0, inflight = 0, ok = 0, failed = 0;
    double deadline = now_s() + setup_timeout;

    while ((ok + failed) < n && !stop && now_s() < deadline) {
        while (next < n && inflight < max_inflight) {
            conn_t *c = &cs[next];
            c->need = -1;
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c->fd < 0) { perror("socket"); fail(c, ep, &failed); next++; continue; }
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)next};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
                fail(c, ep, &failed);
            } else {
                c->state = ST_CONNECTING;
                inflight++;
            }
            next++;
        }
        int k = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < k; i++) {
            conn_t *c = &cs[evs[i].data.u32];
            if (c->state == ST_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err || write(c->fd, REQ, sizeof REQ - 1) != (ssize_t)(sizeof REQ - 1)) {
                    fail(c, ep, &failed);
                    inflight--;
                    continue;
                }
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[i].data.u32};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                c->state = ST_READING;
            } else if (c->state == ST_READING) {
                char buf[4096];
                ssize_t r = read(c->fd, buf, sizeof buf);
                if (r <= 0) {
                    if (r < 0 && errno == EAGAIN) continue;
                    fail(c, ep, &failed);
                    inflight--;
                    continue;
                }
                if (c->got < sizeof c->hdr - 1) {
                    size_t cp = sizeof c->hdr - 1 - c->got;
                    if (cp > (size_t)r) cp = (size_t)r;
                    memcpy(c->hdr + c->got, buf, cp);
                }
                c->got += (size_t)r;
                if (response_complete(c)) {
                    if (strncmp(c->hdr, "HTTP/1.1 200", 12) != 0) {
                        fail(c, ep, &failed);
                    } else {
                        c->state = ST_DONE;
                        ok++;
                    }
                    inflight--;
                }
            } else if (c->state == ST_DONE) {
                /* An answered connection became readable while others are still being set
                 * up: the peer closed it (or sent something unexpected). Stop watching it. */
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                c->state = ST_CLOSED;
                ok--;
                failed++;
            }
        }
    }
    printf("READY ok=%d fail=%d\n", ok, failed);
    fflush(stdout);

    /* Idle: only watch for peer closes. */
    int closed = 0;
    double hold_deadline = now_s() + hold_timeout;
    while (!stop && now_s() < hold_deadline) {
        int k = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < k; i++) {
            conn_t *c = &cs[evs[i].data.u32];
            char buf[512];
            ssize_t r = read(c->fd, buf, sizeof buf);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                if (c->state == ST_DONE) closed++;
                c->state = ST_CLOSED;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (cs[i].fd >= 0) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(cs[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(cs[i].fd);
        }
    }
    printf("DONE closed_by_peer_while_idle=%d\n", closed);
    return 0;
}
