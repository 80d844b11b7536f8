/* libFuzzer target for the HTTP/1 request path: arbitrary bytes are sent over a real loopback
 * connection to a real worker (llhttp parsing, limits, routing, direct responses and proxying
 * to a small in-process upstream), exactly as a client would send them. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "config/config.h"
#include "runtime/generation.h"
#include "runtime/server.h"
#include "runtime/worker.h"

static int gw_port;

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 128) != 0) abort();
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

/* The upstream: reads a little, answers one fixed response, closes. A WebSocket handshake gets
 * a 101 and a frame, so the tunnel runs too (until the close). */
static void *upstream_main(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) continue;
        char buf[4096];
        ssize_t n = 0;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) > 0) n = read(fd, buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = '\0';
        static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Up: 1\r\n\r\nok";
        static const char ws[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                                 "\x81\x02hi";
        if (strstr(buf, "Upgrade: websocket")) (void)!write(fd, ws, sizeof(ws) - 1);
        else (void)!write(fd, resp, sizeof(resp) - 1);
        close(fd);
    }
    return NULL;
}

static void setup(void)
{
    sl_log_set_level(SL_LOG_ERROR);
    int up_port;
    int up_fd = listen_any(&up_port);
    pthread_t t;
    pthread_create(&t, NULL, upstream_main, (void *)(intptr_t)up_fd);
    int probe = listen_any(&gw_port);
    close(probe);
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "gateway: {workers: 1, http: {listen: [\"127.0.0.1:%d\"], max_header_bytes: 4096, max_uri_bytes: 1024,"
             " max_headers: 20, header_timeout: 1s}, access_log: {path: off}}\n"
             "services:\n"
             "  - name: up\n"
             "    upstream: {nodes: [{address: \"127.0.0.1:%d\"}], timeouts: {connect: 1s, read: 1s, send: 1s}}\n"
             "    routes: [{name: p, paths: [\"/p\", \"/p/*\"], hosts: [\"a.example\", \"*.b.example\"]},\n"
             "             {name: w, paths: [\"/w\"], policies: {websocket: {idle_timeout: 1s}}}]\n"
             "  - name: local\n"
             "    routes: [{name: d, paths: [\"/*\"], direct_response: {status: 200, body: \"hi\"}}]\n",
             gw_port, up_port);
    sl_config_t *cfg = NULL;
    sl_config_errors_t errs = {0};
    if (sl_config_load_buffer("fuzz.yaml", yaml, strlen(yaml), &cfg, &errs) != 0) {
        char line[SL_CONFIG_ERROR_TEXT_MAX];
        for (size_t i = 0; i < errs.n; i++) fprintf(stderr, "%s\n", sl_config_errors_text(&errs, i, line));
        abort();
    }
    sl_server_metrics_init();
    sl_generation_t *g = sl_generation_create(cfg, &errs);
    static sl_worker_t w;
    if (sl_worker_start(&w, 0, g) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)gw_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) abort();
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0) break;
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    char buf[65536];
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, 3000) > 0) {
        if (read(fd, buf, sizeof(buf)) <= 0) break;
    }
    close(fd);
    return 0;
}
