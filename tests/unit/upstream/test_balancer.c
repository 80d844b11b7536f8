#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "upstream/upstream.h"

static sl_upstream_t *make(const uint32_t *weights, size_t n)
{
    static sl_upstream_t u;
    static sl_node_t nodes[8];
    memset(&u, 0, sizeof(u));
    memset(nodes, 0, sizeof(nodes));
    for (size_t i = 0; i < n; i++) nodes[i].weight = weights[i];
    u.nodes = nodes;
    u.n_nodes = n;
    u.balancer = &sl_balancer_round_robin;
    u.balancer_state = u.balancer->create(&u);
    return &u;
}

static void test_smooth_sequence(void **state)
{
    (void)state;
    const uint32_t w[] = {5, 1, 1};
    sl_upstream_t *u = make(w, 3);
    /* Smooth weighted round robin interleaves the heavy node: a a b a c a a. */
    const int want[] = {0, 0, 1, 0, 2, 0, 0};
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < 7; i++) assert_int_equal(sl_upstream_pick(u, NULL) - u->nodes, want[i]);
    u->balancer->destroy(u->balancer_state);
}

static void test_equal_weights_and_exclude(void **state)
{
    (void)state;
    const uint32_t w[] = {1, 1, 1};
    sl_upstream_t *u = make(w, 3);
    int counts[3] = {0};
    for (int i = 0; i < 300; i++) counts[sl_upstream_pick(u, NULL) - u->nodes]++;
    assert_int_equal(counts[0], 100);
    assert_int_equal(counts[1], 100);
    assert_int_equal(counts[2], 100);
    for (int i = 0; i < 50; i++) assert_true(sl_upstream_pick(u, &u->nodes[1]) != &u->nodes[1]);
    u->balancer->destroy(u->balancer_state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smooth_sequence),
        cmocka_unit_test(test_equal_weights_and_exclude),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
