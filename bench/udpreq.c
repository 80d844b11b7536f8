/*
 * udpreq: a UDP echo backend and a request/response load generator.
 *
 *   udpreq echo HOST PORT                          echo every datagram back to its sender
 *   udpreq ping HOST PORT                          one request; exit 0 once it is answered
 *   udpreq load HOST PORT CLIENTS SECONDS [SIZE]   closed-loop load
 *
 * load: CLIENTS sockets, each its own source port (so a proxy holds CLIENTS sessions), each
 * with one SIZE-byte request in flight (default 32 bytes) carrying its sequence number. A
 * reply with the current sequence number completes the request and the next one leaves at
 * once; a request unanswered for 200 ms counts as lost and the socket moves on to the next
 * number (a late reply is then ignored). Prints after SECONDS:
 *   OK requests=N lost=L seconds=S rps=R p50_ms=A p99_ms=B
 * The echo server reads and answers in batches (recvmmsg/sendmmsg), so it costs the machine
 * far less than a proxy in front of it does. Used by bench/run.sh; loopback only; every phase
 * is bounded in time.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_DGRAM 65536
#define LOST_NS 200000000ull
#define HIST_US 100000 /* latency histogram: 1 µs buckets up to 100 ms, the rest in the last */

typedef struct {
    int fd;
    uint64_t seq;
    uint64_t sent_ns;
} client_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int parse_addr(const char *host, const char *port, struct sockaddr_in *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(port));
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static int echo(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || bind(fd, (const struct sockaddr *)sa, sizeof *sa) != 0) {
        perror("udpreq: bind");
        return 1;
    }
    static char bufs[BATCH][MAX_DGRAM];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_in from[BATCH];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = sizeof bufs[i]};
            msgs[i].msg_hdr = (struct msghdr){
                .msg_name = &from[i], .msg_namelen = sizeof from[i], .msg_iov = &iov[i], .msg_iovlen = 1};
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("udpreq: recvmmsg");
            return 1;
        }
        for (int i = 0; i < n; i++)
            iov[i].iov_len = msgs[i].msg_len;
        /* Best effort, like any UDP service: what the socket refuses is lost. */
        for (int done = 0; done < n;) {
            int k = sendmmsg(fd, msgs + done, (unsigned)(n - done), 0);
            if (k <= 0) break;
            done += k;
        }
    }
}

static int ping(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct timeval tv = {.tv_usec = 300000};
    if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof *sa) != 0) return 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char out[16] = "udpreq-ping", in[64];
    for (int i = 0; i < 3; i++) {
        /* A refused datagram (ICMP port unreachable) fails the next call: try again. */
        if (send(fd, out, sizeof out, 0) != (ssize_t)sizeof out) continue;
        if (recv(fd, in, sizeof in, 0) == (ssize_t)sizeof out && memcmp(in, out, sizeof out) == 0) return 0;
    }
    return 1;
}

static void send_next(client_t *c, char *buf, size_t size)
{
    c->seq++;
    memcpy(buf, &c->seq, sizeof c->seq);
    c->sent_ns = now_ns();
    /* A failed send (refused by the kernel or the peer) shows up as a lost request. */
    (void)send(c->fd, buf, size, 0);
}

static double percentile(const uint64_t *hist, uint64_t total, double q)
{
    uint64_t want = (uint64_t)(q * (double)total), seen = 0;
    for (int i = 0; i <= HIST_US; i++) {
        seen += hist[i];
        if (seen > want) return i / 1000.0;
    }
    return HIST_US / 1000.0;
}

static int load(const struct sockaddr_in *sa, int nclients, double seconds, size_t size)
{
    if (nclients < 1 || size < sizeof(uint64_t) || size > MAX_DGRAM) {
        fprintf(stderr, "udpreq: bad CLIENTS or SIZE\n");
        return 2;
    }
    client_t *cs = calloc((size_t)nclients, sizeof *cs);
    uint64_t *hist = calloc(HIST_US + 1, sizeof *hist);
    static char out[MAX_DGRAM], in[MAX_DGRAM];
    int ep = epoll_create1(0);
    if (!cs || !hist || ep < 0) return 1;
    memset(out, 'x', sizeof out);
    for (int i = 0; i < nclients; i++) {
        cs[i].fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (cs[i].fd < 0 || connect(cs[i].fd, (const struct sockaddr *)sa, sizeof *sa) != 0) {
            perror("udpreq: socket");
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9), done = 0, lost = 0, t = start;
    uint64_t next_sweep = start + LOST_NS / 4;
    for (int i = 0; i < nclients; i++)
        send_next(&cs[i], out, size);
    struct epoll_event evs[256];
    while (t < end) {
        int k = epoll_wait(ep, evs, 256, 10);
        t = now_ns();
        for (int e = 0; e < k; e++) {
            client_t *c = &cs[evs[e].data.u32];
            for (;;) {
                ssize_t r = recv(c->fd, in, sizeof in, 0);
                if (r < 0) break; /* EAGAIN, or a refusal: the sweep counts it as lost */
                uint64_t seq;
                if ((size_t)r != size) continue;
                memcpy(&seq, in, sizeof seq);
                if (seq != c->seq) continue; /* an answer that came after it was counted lost */
                t = now_ns();
                uint64_t us = (t - c->sent_ns) / 1000;
                hist[us < HIST_US ? us : HIST_US]++;
                done++;
                send_next(c, out, size);
            }
        }
        if (t >= next_sweep) {
            for (int i = 0; i < nclients; i++) {
                if (cs[i].sent_ns + LOST_NS <= t) {
                    lost++;
                    send_next(&cs[i], out, size);
                }
            }
            next_sweep = t + LOST_NS / 4;
        }
    }
    double secs = (double)(t - start) / 1e9;
    printf("OK requests=%llu lost=%llu seconds=%.3f rps=%.0f p50_ms=%.3f p99_ms=%.3f\n", (unsigned long long)done,
           (unsigned long long)lost, secs, (double)done / secs, percentile(hist, done, 0.50),
           percentile(hist, done, 0.99));
    return done ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    if (argc < 4 || parse_addr(argv[2], argv[3], &sa) != 0) {
        fprintf(stderr, "usage: %s echo HOST PORT | ping HOST PORT | load HOST PORT CLIENTS SECONDS [SIZE]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(argv[1], "echo") == 0) return echo(&sa);
    if (strcmp(argv[1], "ping") == 0) return ping(&sa);
    if (strcmp(argv[1], "load") == 0 && argc >= 6)
        return load(&sa, atoi(argv[4]), atof(argv[5]), argc > 6 ? (size_t)atoi(argv[6]) : 32);
    fprintf(stderr, "udpreq: unknown mode or missing arguments\n");
    return 2;
}
