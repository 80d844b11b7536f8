/* Failover picks with a tried set (sl_upstream_pick_untried): every candidate gets one try
 * before any gets two, whatever the balancer, with weights, with unhealthy nodes, and past the
 * inline size of the set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "upstream/health.h"
#include "upstream/upstream.h"

#define MAXN 200

typedef struct fixture {
    sl_upstream_t u;
    sl_upstream_cfg_t cfg;
    sl_service_cfg_t svc;
    sl_node_cfg_t ncfg[MAXN];
    sl_node_t nodes[MAXN];
    char names[MAXN][48];
} fixture_t;

static fixture_t fx;

static fixture_t *make(const sl_balancer_ops_t *ops, size_t n, const uint32_t *weights, const char *svc)
{
    fixture_t *f = &fx;
    memset(f, 0, sizeof(*f));
    f->svc.name = svc;
    f->u.svc = &f->svc;
    f->u.cfg = &f->cfg;
    for (size_t i = 0; i < n; i++) {
        snprintf(f->names[i], sizeof(f->names[i]), "10.0.%zu.%zu:80", i / 250, i % 250 + 1);
        f->nodes[i].cfg = &f->ncfg[i];
        f->nodes[i].name = f->names[i];
        f->nodes[i].weight = weights ? weights[i] : 1;
        f->nodes[i].state = sl_health_state_get(svc, f->names[i]);
    }
    f->u.nodes = f->nodes;
    f->u.n_nodes = n;
    f->u.balancer = ops;
    f->u.balancer_state = ops->create ? ops->create(&f->u) : NULL;
    return f;
}

static void done(fixture_t *f)
{
    if (f->u.balancer->destroy) f->u.balancer->destroy(f->u.balancer_state);
    for (size_t i = 0; i < f->u.n_nodes; i++)
        sl_health_state_release(f->nodes[i].state);
}

/* One request failing over across the upstream: the first `up` picks are distinct candidates
 * (never a node marked down), the next one repeats a candidate rather than giving up. */
static void fail_over(fixture_t *f, const char *key, size_t up, const int *down)
{
    sl_tried_t t;
    sl_tried_init(&t, f->u.n_nodes);
    for (size_t k = 0; k < up; k++) {
        sl_node_t *n = sl_upstream_pick_untried(&f->u, key, key ? strlen(key) : 0, &t);
        assert_non_null(n);
        size_t i = (size_t)(n - f->nodes);
        assert_false(sl_tried_has(&t, i));
        assert_false(down && down[i]);
        sl_tried_add(&t, &f->u, n);
        assert_ptr_equal(t.last, n);
    }
    assert_int_equal(t.count, up);
    sl_node_t *again = sl_upstream_pick_untried(&f->u, key, key ? strlen(key) : 0, &t);
    assert_non_null(again);
    assert_true(sl_tried_has(&t, (size_t)(again - f->nodes)));
    sl_tried_free(&t);
}

static const sl_balancer_ops_t *const all[] = {
    &sl_balancer_random, &sl_balancer_round_robin, &sl_balancer_weighted,
    &sl_balancer_hash,   &sl_balancer_least_conn,  &sl_balancer_ewma,
};

static void test_every_node_once(void **state)
{
    (void)state;
    for (size_t b = 0; b < sizeof(all) / sizeof(all[0]); b++) {
        fixture_t *f = make(all[b], 5, NULL, "once");
        for (int r = 0; r < 50; r++)
            fail_over(f, NULL, 5, NULL);
        done(f);
    }
}

/* The hash balancer walks its table from the key's slot: a walk that avoided only the last
 * failure would come back to the first node on the third try. */
static void test_every_node_once_hash_keys(void **state)
{
    (void)state;
    fixture_t *f = make(&sl_balancer_hash, 6, NULL, "keys");
    char key[32];
    for (int r = 0; r < 200; r++) {
        snprintf(key, sizeof(key), "client-%d", r);
        fail_over(f, key, 6, NULL);
    }
    done(f);
}

/* A heavy node is tried once like the others, and first tries still follow the weights. */
static void test_every_node_once_weighted(void **state)
{
    (void)state;
    const uint32_t w[] = {20, 1, 1, 3, 1};
    for (size_t b = 0; b < sizeof(all) / sizeof(all[0]); b++) {
        fixture_t *f = make(all[b], 5, w, "weights");
        for (int r = 0; r < 50; r++)
            fail_over(f, "k", 5, NULL);
        done(f);
    }
    fixture_t *f = make(&sl_balancer_weighted, 5, w, "weights");
    sl_tried_t t;
    sl_tried_init(&t, 5);
    int counts[5] = {0};
    for (int r = 0; r < 26 * 4; r++)
        counts[sl_upstream_pick_untried(&f->u, NULL, 0, &t) - f->nodes]++;
    for (int i = 0; i < 5; i++)
        assert_int_equal(counts[i], (int)w[i] * 4);
    done(f);
}

/* Unhealthy nodes are not tried while healthy ones are left untried, nor after. */
static void test_unhealthy_skipped(void **state)
{
    (void)state;
    const int down[] = {0, 1, 0, 1, 0, 0};
    for (size_t b = 0; b < sizeof(all) / sizeof(all[0]); b++) {
        fixture_t *f = make(all[b], 6, NULL, "unhealthy");
        sl_health_set(f->nodes[1].state, 0);
        sl_health_set(f->nodes[3].state, 0);
        for (int r = 0; r < 50; r++)
            fail_over(f, "k", 4, down);
        sl_health_set(f->nodes[1].state, 1);
        sl_health_set(f->nodes[3].state, 1);
        done(f);
    }
}

/* More nodes than the inline bits: the set moves to the heap and stays exact. */
static void test_past_inline_size(void **state)
{
    (void)state;
    /* Empty, before the first add has put its bits on the heap: no node is in it. */
    sl_tried_t t;
    sl_tried_init(&t, MAXN);
    for (size_t i = 0; i < MAXN; i++) assert_false(sl_tried_has(&t, i));
    sl_tried_free(&t);
    const sl_balancer_ops_t *ops[] = {&sl_balancer_random, &sl_balancer_round_robin, &sl_balancer_least_conn};
    for (size_t b = 0; b < 3; b++) {
        fixture_t *f = make(ops[b], MAXN, NULL, "many");
        fail_over(f, NULL, MAXN, NULL);
        done(f);
    }
}

/* The single-exclude pick is what it was: the last failure avoided, nothing else. */
static void test_single_exclude_unchanged(void **state)
{
    (void)state;
    fixture_t *f = make(&sl_balancer_round_robin, 3, NULL, "single");
    assert_ptr_equal(sl_upstream_pick(&f->u, NULL, 0, &f->nodes[0]), &f->nodes[1]);
    assert_ptr_equal(sl_upstream_pick(&f->u, NULL, 0, &f->nodes[1]), &f->nodes[2]);
    assert_ptr_equal(sl_upstream_pick(&f->u, NULL, 0, &f->nodes[2]), &f->nodes[0]);
    done(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_node_once),          cmocka_unit_test(test_every_node_once_hash_keys),
        cmocka_unit_test(test_every_node_once_weighted), cmocka_unit_test(test_unhealthy_skipped),
        cmocka_unit_test(test_past_inline_size),         cmocka_unit_test(test_single_exclude_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
