#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "policy_test.h"

#include "config/config.h"
#include "policy/policy.h"
#include "runtime/generation.h"

static uint64_t idle_ms(const char *timeouts, const char *policies, size_t *n_chain)
{
    sl_route_rt_t rt;
    char up[128];
    snprintf(up, sizeof(up), "timeouts: %s", timeouts);
    sl_config_t *cfg = policy_load_with(up, policies, &rt);
    uint64_t ms = sl_policy_websocket_idle_ms(&rt);
    *n_chain = rt.chain.n;
    sl_policy_chain_destroy(&rt);
    sl_config_free(cfg);
    return ms;
}

static void test_idle_timeout(void **state)
{
    (void)state;
    size_t n;
    /* true: the upstream's read timeout, default or configured */
    assert_int_equal(idle_ms("{}", "{websocket: true}", &n), 30000);
    assert_int_equal(n, 1);
    assert_int_equal(idle_ms("{read: 7s}", "{websocket: {}}", &n), 7000);
    assert_int_equal(idle_ms("{read: 7s}", "{websocket: {idle_timeout: 10m}}", &n), 600000);
    /* off: upgrades refused */
    assert_int_equal(idle_ms("{}", "{websocket: false}", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(idle_ms("{}", "{timeout: 5s}", &n), 0);
}

static void test_chain_order(void **state)
{
    (void)state;
    sl_route_rt_t rt;
    sl_config_t *cfg = policy_load("{response_headers: {set: {X-A: '1'}}, websocket: true, timeout: 3}", &rt);
    assert_int_equal(rt.chain.n, 3);
    assert_ptr_equal(rt.chain.mods[0], &sl_policy_timeout.m);
    assert_ptr_equal(rt.chain.mods[1], &sl_policy_websocket.m);
    assert_ptr_equal(rt.chain.mods[2], &sl_policy_response_headers.m);
    assert_int_equal(sl_policy_deadline_ms(&rt), 3000);
    assert_int_equal(sl_policy_websocket_idle_ms(&rt), 30000);
    sl_policy_chain_destroy(&rt);
    sl_config_free(cfg);
}

static void test_errors(void **state)
{
    (void)state;
    policy_expect_error("{websocket: 1}",
                 "p.yaml:6:31: services[0].routes[0].policies.websocket: expected true, false or a map");
    policy_expect_error("{websocket: {idle_timeout: 0ms}}",
                 "services[0].routes[0].policies.websocket.idle_timeout: must be between 1ms and 24h");
    policy_expect_error("{websocket: {idle: 5s}}", "services[0].routes[0].policies.websocket.idle: unknown key");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_chain_order),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
