/*
 * bulk: a TCP bulk-transfer backend and client, cheap enough on both ends that a proxy
 * between them is what limits the rate.
 *
 *   bulk serve HOST PORT            backend: one child process per connection
 *   bulk up HOST PORT BYTES         client: send BYTES to the backend, wait for its count
 *   bulk down HOST PORT BYTES       client: have the backend send BYTES, read them all
 *
 * A client starts with a 9-byte request: 'U' or 'D' and the byte count (64 bits, big-endian).
 * 'U': the client sends the count of bytes; the backend reads them and answers with the count
 * it received (8 bytes). 'D': the backend sends the count of bytes. Either way the client then
 * closes, and the backend closes after it: no step depends on a proxy passing a half-close on
 * (nginx's stream module closes both sides on the first EOF unless proxy_half_close is on).
 * Bytes leave with sendfile(2) from a memfd (no copy through user space on the sender) and are
 * read with recv(MSG_TRUNC), which on TCP discards them in the kernel (no copy on the receiver).
 * A client prints "OK bytes=N seconds=S" (connect to last byte) and exits 0 when the count is
 * exact, else prints why and exits 1. Every socket has 30 s send and receive timeouts, so
 * nothing hangs. Used by bench/run.sh; loopback only.
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
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1 << 20)

static int src_fd = -1; /* memfd of CHUNK bytes, the source of every byte sent */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int make_source(void)
{
    src_fd = memfd_create("bulk", 0);
    if (src_fd < 0) return -1;
    char *buf = malloc(CHUNK);
    if (!buf) return -1;
    for (size_t i = 0; i < CHUNK; i++)
        buf[i] = (char)(i * 7 + (i >> 10));
    ssize_t w = write(src_fd, buf, CHUNK);
    free(buf);
    return w == CHUNK ? 0 : -1;
}

static void set_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int recv_all(int fd, void *p, size_t n)
{
    char *c = p;
    while (n) {
        ssize_t r = recv(fd, c, n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Sends n bytes from the memfd; 0 once all are sent. */
static int send_bytes(int fd, uint64_t n)
{
    while (n) {
        off_t off = 0;
        size_t len = n < CHUNK ? (size_t)n : CHUNK;
        ssize_t w = sendfile(fd, src_fd, &off, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        n -= (uint64_t)w;
    }
    return 0;
}

/* Reads and discards up to n bytes, stopping early at EOF; returns the byte count, or -1 on
 * an error or timeout. */
static int64_t drain(int fd, uint64_t n)
{
    static char scratch[CHUNK]; /* only written to if the kernel ignores MSG_TRUNC */
    uint64_t got = 0;
    while (got < n) {
        size_t len = n - got < CHUNK ? (size_t)(n - got) : CHUNK;
        ssize_t r = recv(fd, scratch, len, MSG_TRUNC);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        got += (uint64_t)r;
    }
    return (int64_t)got;
}

static void put64(unsigned char *b, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (unsigned char)v;
}

static uint64_t get64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

static void serve_one(int fd)
{
    unsigned char req[9], ans[8];
    set_timeouts(fd);
    if (recv_all(fd, req, sizeof req) != 0) return; /* a port probe: connected and left */
    uint64_t n = get64(req + 1);
    if (req[0] == 'D') {
        if (send_bytes(fd, n) != 0) return;
    } else if (req[0] == 'U') {
        int64_t got = drain(fd, n);
        if (got < 0) return;
        put64(ans, (uint64_t)got);
        if (send_all(fd, ans, sizeof ans) != 0) return;
    }
    drain(fd, UINT64_MAX); /* until the client closes */
}

static int parse_addr(const char *host, const char *port, struct sockaddr_in *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(port));
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static int serve(const struct sockaddr_in *sa)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (ls >= 0) setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ls < 0 || bind(ls, (const struct sockaddr *)sa, sizeof *sa) != 0 || listen(ls, 128) != 0) {
        perror("bulk: listen");
        return 1;
    }
    signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            perror("bulk: accept");
            return 1;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(ls);
            serve_one(fd);
            close(fd);
            _exit(0);
        }
        close(fd);
    }
}

static int client(const struct sockaddr_in *sa, int up, uint64_t n)
{
    unsigned char req[9], ans[8];
    double t0 = now_s();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        perror("bulk: socket");
        return 1;
    }
    set_timeouts(fd);
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) != 0) {
        perror("bulk: connect");
        return 1;
    }
    req[0] = up ? 'U' : 'D';
    put64(req + 1, n);
    if (send_all(fd, req, sizeof req) != 0) {
        perror("bulk: request");
        return 1;
    }
    uint64_t got;
    if (up) {
        if (send_bytes(fd, n) != 0) {
            perror("bulk: send");
            return 1;
        }
        if (recv_all(fd, ans, sizeof ans) != 0) {
            fprintf(stderr, "bulk: no count from the backend\n");
            return 1;
        }
        got = get64(ans);
    } else {
        int64_t r = drain(fd, n);
        if (r < 0) {
            perror("bulk: receive");
            return 1;
        }
        got = (uint64_t)r;
    }
    double secs = now_s() - t0;
    close(fd);
    if (got != n) {
        fprintf(stderr, "bulk: %llu bytes arrived of %llu\n", (unsigned long long)got, (unsigned long long)n);
        return 1;
    }
    printf("OK bytes=%llu seconds=%.6f\n", (unsigned long long)n, secs);
    return 0;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    if (argc < 4 || parse_addr(argv[2], argv[3], &sa) != 0 || (strcmp(argv[1], "serve") != 0 && argc < 5)) {
        fprintf(stderr, "usage: %s serve HOST PORT | up HOST PORT BYTES | down HOST PORT BYTES\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (make_source() != 0) {
        perror("bulk: memfd");
        return 1;
    }
    if (strcmp(argv[1], "serve") == 0) return serve(&sa);
    uint64_t n = strtoull(argv[4], NULL, 10);
    if (strcmp(argv[1], "up") == 0) return client(&sa, 1, n);
    if (strcmp(argv[1], "down") == 0) return client(&sa, 0, n);
    fprintf(stderr, "bulk: unknown mode %s\n", argv[1]);
    return 2;
}
