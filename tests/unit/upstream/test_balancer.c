#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "upstream/health.h"
#include "upstream/upstream.h"

#define MAXN 16

/* An upstream built by hand: n nodes "10.0.0.i:80" with the given weights and priorities. */
typedef struct fixture {
    sl_upstream_t u;
    sl_upstream_cfg_t cfg;
    sl_service_cfg_t svc;
    sl_node_cfg_t ncfg[MAXN];
    sl_node_t nodes[MAXN];
    char names[MAXN][48];
} fixture_t;

static fixture_t *make(const sl_balancer_ops_t *ops, size_t n, const uint32_t *weights, const int *prio,
                       const char *svc)
{
    static fixture_t f;
    memset(&f, 0, sizeof(f));
    f.svc.name = svc;
    f.u.svc = &f.svc;
    f.u.cfg = &f.cfg;
    for (size_t i = 0; i < n; i++) {
        snprintf(f.names[i], sizeof(f.names[i]), "10.0.0.%zu:80", i + 1);
        f.nodes[i].cfg = &f.ncfg[i];
        f.nodes[i].name = f.names[i];
        f.nodes[i].weight = weights ? weights[i] : 1;
        f.nodes[i].priority = prio ? prio[i] : 0;
        f.nodes[i].state = sl_health_state_get(svc, f.names[i]);
    }
    f.u.nodes = f.nodes;
    f.u.n_nodes = n;
    f.u.balancer = ops;
    f.u.balancer_state = ops->create ? ops->create(&f.u) : NULL;
    return &f;
}

static void done(fixture_t *f)
{
    if (f->u.balancer->destroy) f->u.balancer->destroy(f->u.balancer_state);
    for (size_t i = 0; i < f->u.n_nodes; i++) sl_health_state_release(f->nodes[i].state);
}

static size_t pick(fixture_t *f, const char *key)
{
    sl_node_t *n = sl_upstream_pick(&f->u, key, key ? strlen(key) : 0, NULL);
    assert_non_null(n);
    return (size_t)(n - f->nodes);
}

static void test_weighted_smooth_sequence(void **state)
{
    (void)state;
    const uint32_t w[] = {5, 1, 1};
    fixture_t *f = make(&sl_balancer_weighted, 3, w, NULL, "w");
    const size_t want[] = {0, 0, 1, 0, 2, 0, 0}; /* a a b a c a a: no bursts */
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < 7; i++) assert_int_equal(pick(f, NULL), want[i]);
    done(f);
}

static void test_round_robin_and_exclude(void **state)
{
    (void)state;
    fixture_t *f = make(&sl_balancer_round_robin, 3, NULL, NULL, "rr");
    int counts[3] = {0};
    for (int i = 0; i < 300; i++) counts[pick(f, NULL)]++;
    for (int i = 0; i < 3; i++) assert_int_equal(counts[i], 100);
    for (int i = 0; i < 50; i++) assert_true(sl_upstream_pick(&f->u, NULL, 0, &f->nodes[1]) != &f->nodes[1]);
    done(f);
}

/* A retry pick (with exclude) between first picks: the first picks keep their order. */
static size_t first_then_retry(fixture_t *f)
{
    size_t first = pick(f, NULL);
    sl_node_t *again = sl_upstream_pick(&f->u, NULL, 0, &f->nodes[first]);
    assert_non_null(again);
    assert_true(again != &f->nodes[first]);
    return first;
}

static void test_round_robin_retries_keep_the_turn(void **state)
{
    (void)state;
    fixture_t *f = make(&sl_balancer_round_robin, 2, NULL, NULL, "rr-retry");
    for (size_t i = 0; i < 12; i++) assert_int_equal(first_then_retry(f), i % 2);
    done(f);
    /* Three nodes: first tries go 0 1 2 0 1 2 with two retries after each, and the retries walk
     * on from the failed node, so a request tries every node before it comes back to one. */
    f = make(&sl_balancer_round_robin, 3, NULL, NULL, "rr-retry3");
    for (size_t i = 0; i < 12; i++) {
        size_t first = pick(f, NULL);
        assert_int_equal(first, i % 3);
        sl_node_t *second = sl_upstream_pick(&f->u, NULL, 0, &f->nodes[first]);
        assert_int_equal(second - f->nodes, (first + 1) % 3);
        sl_node_t *third = sl_upstream_pick(&f->u, NULL, 0, second);
        assert_int_equal(third - f->nodes, (first + 2) % 3);
    }
    done(f);
}

static void test_weighted_retries_keep_the_turn(void **state)
{
    (void)state;
    const uint32_t even[] = {1, 1};
    fixture_t *f = make(&sl_balancer_weighted, 2, even, NULL, "w-retry");
    for (size_t i = 0; i < 12; i++) assert_int_equal(first_then_retry(f), i % 2);
    done(f);
    const uint32_t w[] = {5, 1, 1};
    f = make(&sl_balancer_weighted, 3, w, NULL, "w-retry3");
    const size_t want[] = {0, 0, 1, 0, 2, 0, 0}; /* as without retries: a a b a c a a */
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < 7; i++) assert_int_equal(first_then_retry(f), want[i]);
    done(f);
    /* A heavy node excluded still leaves the light one to the retry. */
    const uint32_t heavy[] = {1000, 1};
    f = make(&sl_balancer_weighted, 2, heavy, NULL, "w-heavy");
    for (int i = 0; i < 20; i++) assert_ptr_equal(sl_upstream_pick(&f->u, NULL, 0, &f->nodes[0]), &f->nodes[1]);
    done(f);
}

static void test_random_shares(void **state)
{
    (void)state;
    fixture_t *f = make(&sl_balancer_random, 4, NULL, NULL, "rnd");
    int counts[4] = {0};
    for (int i = 0; i < 40000; i++) counts[pick(f, NULL)]++;
    for (int i = 0; i < 4; i++) assert_true(counts[i] > 9000 && counts[i] < 11000);
    done(f);
}

static void test_unhealthy_backup_panic_reject(void **state)
{
    (void)state;
    const int prio[] = {0, 0, -1};
    fixture_t *f = make(&sl_balancer_round_robin, 3, NULL, prio, "hp");
    for (int i = 0; i < 30; i++) assert_true(pick(f, NULL) != 2); /* the backup waits */
    sl_health_set(f->nodes[0].state, 0);
    for (int i = 0; i < 30; i++) assert_int_equal(pick(f, NULL), 1);
    sl_health_set(f->nodes[1].state, 0);
    for (int i = 0; i < 30; i++) assert_int_equal(pick(f, NULL), 2); /* every primary down */
    sl_health_set(f->nodes[2].state, 0);
    int seen[3] = {0};
    for (int i = 0; i < 30; i++) seen[pick(f, NULL)]++; /* panic: the highest priority, health ignored */
    assert_true(seen[0] > 0 && seen[1] > 0 && seen[2] == 0);
    f->cfg.reject_when_all_unhealthy = 1;
    atomic_fetch_add(&sl_health_epoch, 1); /* the setting is read when the level is recomputed */
    assert_null(sl_upstream_pick(&f->u, NULL, 0, NULL));
    for (int i = 0; i < 3; i++) sl_health_set(f->nodes[i].state, 1);
    done(f);
}

static void test_hash_sticky_and_consistent(void **state)
{
    (void)state;
    enum { N = 10, KEYS = 20000 };
    static size_t before[KEYS];
    char key[32];
    fixture_t *f = make(&sl_balancer_hash, N, NULL, NULL, "h10");
    int counts[N] = {0};
    for (int k = 0; k < KEYS; k++) {
        snprintf(key, sizeof(key), "client-%d", k);
        before[k] = pick(f, key);
        counts[before[k]]++;
        assert_int_equal(pick(f, key), before[k]); /* sticky */
    }
    for (int i = 0; i < N; i++) assert_true(counts[i] > KEYS / N * 8 / 10 && counts[i] < KEYS / N * 12 / 10);
    done(f);
    /* Remove the last node: its keys move, and almost no other key does. */
    f = make(&sl_balancer_hash, N - 1, NULL, NULL, "h9");
    int moved_other = 0;
    for (int k = 0; k < KEYS; k++) {
        snprintf(key, sizeof(key), "client-%d", k);
        size_t now = pick(f, key);
        if (before[k] != N - 1 && now != before[k]) moved_other++;
    }
    assert_true(moved_other < KEYS / 50); /* < 2% of the keys, where a modulo hash would move ~90% */
    done(f);
}

static void test_hash_unhealthy_node_and_cookie_token(void **state)
{
    (void)state;
    fixture_t *f = make(&sl_balancer_hash, 4, NULL, NULL, "hc");
    size_t home = pick(f, "user-42");
    sl_health_set(f->nodes[home].state, 0);
    size_t other = pick(f, "user-42");
    assert_true(other != home);
    assert_int_equal(pick(f, "user-42"), other); /* still sticky while its node is down */
    sl_health_set(f->nodes[home].state, 1);
    assert_int_equal(pick(f, "user-42"), home);
    char value[32];
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(sl_upstream_cookie_value(&f->u, &f->nodes[i], value, sizeof(value)), 0);
        assert_int_equal(pick(f, value), i); /* an issued cookie names its node */
    }
    done(f);
}

static void test_least_conn(void **state)
{
    (void)state;
    const uint32_t w[] = {1, 1, 2};
    fixture_t *f = make(&sl_balancer_least_conn, 3, w, NULL, "lc");
    atomic_store(&f->nodes[0].state->active, 3);
    atomic_store(&f->nodes[1].state->active, 1);
    atomic_store(&f->nodes[2].state->active, 4); /* 4 / weight 2 = 2 */
    for (int i = 0; i < 20; i++) assert_int_equal(pick(f, NULL), 1);
    atomic_store(&f->nodes[1].state->active, 5);
    for (int i = 0; i < 20; i++) assert_int_equal(pick(f, NULL), 2);
    for (int i = 0; i < 3; i++) atomic_store(&f->nodes[i].state->active, 0);
    done(f);
}

static void test_ewma_prefers_fast_node(void **state)
{
    (void)state;
    fixture_t *f = make(&sl_balancer_ewma, 2, NULL, NULL, "ew");
    for (int i = 0; i < 20; i++) {
        f->u.balancer->observe(&f->u, &f->nodes[0], 200.0);
        f->u.balancer->observe(&f->u, &f->nodes[1], 5.0);
    }
    int counts[2] = {0};
    for (int i = 0; i < 100000; i++) counts[pick(f, NULL)]++;
    /* Two choices out of two nodes: both are in every contest, so the slow one never wins (it
     * did, 1 time in 512, while the second draw could come back equal to the first). */
    assert_int_equal(counts[0], 0);
    assert_int_equal(counts[1], 100000);
    done(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weighted_smooth_sequence),
        cmocka_unit_test(test_round_robin_and_exclude),
        cmocka_unit_test(test_round_robin_retries_keep_the_turn),
        cmocka_unit_test(test_weighted_retries_keep_the_turn),
        cmocka_unit_test(test_random_shares),
        cmocka_unit_test(test_unhealthy_backup_panic_reject),
        cmocka_unit_test(test_hash_sticky_and_consistent),
        cmocka_unit_test(test_hash_unhealthy_node_and_cookie_token),
        cmocka_unit_test(test_least_conn),
        cmocka_unit_test(test_ewma_prefers_fast_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
