/* Cost of one balancer decision, per policy, with 3 and with 1,000 nodes (make bench).
 * Builds upstreams by hand (no sockets) and times sl_upstream_pick() in a tight loop; hash and
 * cookie get a different key each time, ewma and least_conn see the load they track. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "upstream/health.h"
#include "upstream/upstream.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double measure(sl_balance_t balance, const sl_balancer_ops_t *ops, size_t n, long iters)
{
    sl_service_cfg_t svc = {.name = "bench"};
    sl_upstream_cfg_t cfg = {.balance = balance};
    sl_node_cfg_t *ncfg = calloc(n, sizeof(*ncfg));
    sl_node_t *nodes = calloc(n, sizeof(*nodes));
    char (*names)[32] = calloc(n, 32);
    char svcname[32];
    snprintf(svcname, sizeof(svcname), "bench-%d-%zu", (int)balance, n);
    svc.name = svcname;
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], 32, "10.%zu.%zu.%zu:80", i >> 16, (i >> 8) & 255, i & 255);
        nodes[i].cfg = &ncfg[i];
        nodes[i].name = names[i];
        nodes[i].weight = 1 + (uint32_t)(i % 5);
        nodes[i].state = sl_health_state_get(svcname, names[i]);
    }
    sl_upstream_t u = {.svc = &svc, .cfg = &cfg, .nodes = nodes, .n_nodes = n, .balancer = ops};
    u.balancer_state = ops->create ? ops->create(&u) : NULL;
    char key[32];
    volatile uintptr_t sink = 0;
    double t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        int len = snprintf(key, sizeof(key), "k%ld", i & 65535);
        sl_node_t *pick = sl_upstream_pick(&u, key, (size_t)len, NULL);
        sl_upstream_begin(&u, pick);
        sl_upstream_end(&u, pick, SL_OUTCOME_ABORTED, 1.0 + (double)(i & 7));
        sink += (uintptr_t)pick;
    }
    double per = (now_ns() - t0) / (double)iters;
    (void)sink;
    if (ops->destroy) ops->destroy(u.balancer_state);
    for (size_t i = 0; i < n; i++) sl_health_state_release(nodes[i].state);
    free(names);
    free(nodes);
    free(ncfg);
    return per;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 2000000;
    static const struct {
        const char *name;
        sl_balance_t balance;
        const sl_balancer_ops_t *ops;
    } policies[] = {
        {"random", SL_BALANCE_RANDOM, &sl_balancer_random},
        {"round_robin", SL_BALANCE_ROUND_ROBIN, &sl_balancer_round_robin},
        {"weighted", SL_BALANCE_WEIGHTED, &sl_balancer_weighted},
        {"hash", SL_BALANCE_HASH, &sl_balancer_hash},
        {"cookie", SL_BALANCE_COOKIE, &sl_balancer_hash},
        {"least_conn", SL_BALANCE_LEAST_CONN, &sl_balancer_least_conn},
        {"ewma", SL_BALANCE_EWMA, &sl_balancer_ewma},
    };
    printf("| policy | ns per decision, 3 nodes | ns per decision, 1000 nodes | 1000 / 3 |\n");
    printf("|---|---:|---:|---:|\n");
    for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
        double a = measure(policies[i].balance, policies[i].ops, 3, iters);
        double b = measure(policies[i].balance, policies[i].ops, 1000, iters);
        printf("| %s | %.1f | %.1f | %.2f |\n", policies[i].name, a, b, b / a);
    }
    return 0;
}
