/* TCP health checks (stream services): connect, send a payload, expect a reply prefix.
 * The upstream is built by hand and the checker runs on a real loop against a real TCP server
 * in a thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/generation.h"
#include "runtime/server.h"
#include "upstream/health.h"

static atomic_int reply_ok = 1; /* what the server answers: "+PONG" or "-ERR" */
static atomic_int server_stop;
static atomic_int pings;

static void *server_main(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    while (!atomic_load(&server_stop)) {
        struct pollfd p = {lfd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) continue;
        char buf[64];
        struct pollfd q = {fd, POLLIN, 0};
        if (poll(&q, 1, 500) > 0) {
            ssize_t n = read(fd, buf, sizeof(buf) - 1);
            if (n > 0 && (buf[n] = 0, strstr(buf, "PING"))) {
                atomic_fetch_add(&pings, 1);
                const char *r = atomic_load(&reply_ok) ? "+PONG\r\n" : "-ERR\r\n";
                (void)!write(fd, r, strlen(r));
            }
        }
        close(fd);
    }
    return NULL;
}

static int listen_any(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Runs the loop until cond(st) holds or about 5 s pass; returns whether it held. */
static int run_until(uv_loop_t *loop, sl_node_state_t *st, int healthy)
{
    for (int i = 0; i < 500; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (atomic_load(&st->healthy) == healthy && atomic_load(&st->last_check_ms)) return 1;
        usleep(10000);
    }
    return 0;
}

static void test_tcp_send_expect(void **state)
{
    (void)state;
    uint16_t port, dead_port;
    int lfd = listen_any(&port);
    int dfd = listen_any(&dead_port);
    close(dfd); /* nothing listens there any more: connect is refused */
    pthread_t t;
    pthread_create(&t, NULL, server_main, (void *)(intptr_t)lfd);

    sl_config_t *cfg = calloc(1, sizeof(*cfg));
    sl_arena_init(&cfg->arena, 0);
    cfg->gateway.access_log.path = "off";
    cfg->n_services = 1;
    cfg->services = sl_arena_calloc(&cfg->arena, sizeof(sl_service_cfg_t));
    sl_service_cfg_t *svc = &cfg->services[0];
    svc->name = "db";
    svc->type = SL_SERVICE_STREAM;
    svc->has_upstream = 1;
    sl_upstream_cfg_t *u = &svc->upstream;
    u->scheme = SL_SCHEME_TCP;
    u->n_nodes = 2;
    u->nodes = sl_arena_calloc(&cfg->arena, 2 * sizeof(sl_node_cfg_t));
    char *text[2] = {sl_arena_alloc(&cfg->arena, 32), sl_arena_alloc(&cfg->arena, 32)};
    snprintf(text[0], 32, "127.0.0.1:%u", port);
    snprintf(text[1], 32, "127.0.0.1:%u", dead_port);
    for (int i = 0; i < 2; i++) {
        u->nodes[i].addr = (sl_hostport_t){.text = text[i], .host = "127.0.0.1", .port = i ? dead_port : port, .is_ip = 1};
        u->nodes[i].weight = 1;
    }
    u->health_check = (sl_health_cfg_t){.enabled = 1,
                                        .interval_ms = 30,
                                        .timeout_ms = 25,
                                        .healthy_threshold = 1,
                                        .unhealthy_threshold = 2,
                                        .send = (const unsigned char *)"PING\r\n",
                                        .send_len = 6,
                                        .expect = (const unsigned char *)"+PONG",
                                        .expect_len = 5};

    sl_server_metrics_init();
    sl_health_metrics_init(sl_metrics.registry);
    sl_config_errors_t errs = {0};
    sl_generation_t *g = sl_generation_create(cfg, &errs);
    assert_int_equal(errs.n, 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_health_sync(&loop, g);
    sl_node_state_t *live = g->upstreams[0].nodes[0].state, *dead = g->upstreams[0].nodes[1].state;

    assert_true(run_until(&loop, live, 1)); /* +PONG: stays healthy */
    assert_true(atomic_load(&pings) > 0);
    assert_true(run_until(&loop, dead, 0)); /* refused: marked down */
    atomic_store(&reply_ok, 0);
    assert_true(run_until(&loop, live, 0)); /* -ERR does not start with +PONG */
    atomic_store(&reply_ok, 1);
    assert_true(run_until(&loop, live, 1)); /* and back */

    sl_health_shutdown();
    uv_run(&loop, UV_RUN_DEFAULT); /* the checkers' handles close */
    assert_int_equal(uv_loop_close(&loop), 0);
    sl_generation_release(g);
    sl_metrics_destroy(sl_metrics.registry);
    atomic_store(&server_stop, 1);
    pthread_join(t, NULL);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_tcp_send_expect)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
