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


/* The path the upstream gets (NUL-terminated copy in a static buffer). */
static const char *rewrite(const sl_route_rt_t *rt, const char *path)
{
    static sl_buf_t out = SL_BUF_INIT;
    sl_arena_t a;
    sl_arena_init(&a, 0);
    sl_http_req_t up = {.method = "GET", .path = path, .path_len = strlen(path)};
    sl_policy_on_upstream_request(rt, &up, &a);
    out.len = 0;
    sl_buf_append(&out, up.path, up.path_len);
    sl_arena_reset(&a);
    return sl_buf_cstr(&out);
}

static void test_prefix_rewrite(void **state)
{
    (void)state;
    sl_route_rt_t rt;
    sl_config_t *cfg = policy_load("{path_rewrite: {prefix: /users, replace: /v1/users}}", &rt);
    assert_string_equal(rewrite(&rt, "/users"), "/v1/users");
    assert_string_equal(rewrite(&rt, "/users/7"), "/v1/users/7");
    assert_string_equal(rewrite(&rt, "/other"), "/other");
    sl_policy_chain_destroy(&rt);
    sl_config_free(cfg);
    cfg = policy_load("{path_rewrite: {prefix: /api/, replace: /}}", &rt);
    assert_string_equal(rewrite(&rt, "/api/x/y"), "/x/y"); /* no "//" */
    sl_policy_chain_destroy(&rt);
    sl_config_free(cfg);
}

static void test_regex_rewrite(void **state)
{
    (void)state;
    sl_route_rt_t rt;
    sl_config_t *cfg = policy_load("{path_rewrite: {regex: \"^/api/(\\\\w+)/(\\\\d+)$\", replace: \"/v2/$2/$1\"}}", &rt);
    assert_string_equal(rewrite(&rt, "/api/user/42"), "/v2/42/user");
    assert_string_equal(rewrite(&rt, "/api/user/x"), "/api/user/x"); /* no match: unchanged */
    sl_policy_chain_destroy(&rt);
    sl_config_free(cfg);
    /* A result far longer than the path grows its buffer. */
    char pol[2300];
    snprintf(pol, sizeof(pol), "{path_rewrite: {regex: \"^/x$\", replace: \"/%02000d\"}}", 7);
    cfg = policy_load(pol, &rt);
    assert_int_equal(strlen(rewrite(&rt, "/x")), 2001);
    sl_policy_chain_destroy(&rt);
    sl_config_free(cfg);
}

static void test_header_ops_and_chain_order(void **state)
{
    (void)state;
    sl_route_rt_t rt;
    sl_config_t *cfg = policy_load("{response_headers: {set: {X-A: '1'}, remove: [Server]}, timeout: 3, "
                            "request_headers: {set: {Host: in.local}, add: {X-T: b}, remove: [X-Debug]}}",
                            &rt);
    assert_int_equal(rt.chain.n, 3);
    assert_ptr_equal(rt.chain.mods[0], &sl_policy_request_headers.m); /* documented order, not file order */
    assert_ptr_equal(rt.chain.mods[1], &sl_policy_timeout.m);
    assert_ptr_equal(rt.chain.mods[2], &sl_policy_response_headers.m);
    assert_int_equal(sl_policy_deadline_ms(&rt), 3000);
    sl_arena_t a;
    sl_arena_init(&a, 0);
    sl_http_req_t up = {.method = "GET", .path = "/", .path_len = 1};
    static const char *const fields[] = {"HOST", "a.local", "x-debug", "1", "X-T", "a", "Accept", "*/*", NULL};
    policy_hdrs_fill(&up.hdrs, &a, fields);
    sl_policy_on_upstream_request(&rt, &up, &a);
    sl_buf_t b = SL_BUF_INIT;
    /* set and remove drop every field of the name; set and add are appended; add keeps the client's. */
    assert_string_equal(policy_hdrs_text(&up.hdrs, &b), "X-T: a\r\nAccept: */*\r\nHost: in.local\r\nX-T: b\r\n");
    sl_arena_reset(&a);
    static const char *const resp[] = {"server", "nginx", "X-B", "2", NULL};
    assert_string_equal(policy_response(&rt, NULL, 0, resp, &b), "X-B: 2\r\nX-A: 1\r\n");
    /* The gateway's own answers are left alone. */
    assert_string_equal(policy_response(&rt, NULL, 1, resp, &b), "server: nginx\r\nX-B: 2\r\n");
    sl_buf_free(&b);
    sl_policy_chain_destroy(&rt);
    sl_config_free(cfg);
}

static void test_retry_decisions(void **state)
{
    (void)state;
    sl_route_rt_t rt;
    sl_config_t *cfg = policy_load("{retry: {on: [gateway-error]}}", &rt);
    const sl_retry_cfg_t *rc = &rt.cfg->policies.retry;
    assert_int_equal(rc->attempts, 1); /* Envoy's default: one retry */
    assert_int_equal(rc->backoff_base_ms, 25);
    assert_int_equal(rc->backoff_max_ms, 250);
    assert_int_equal(rc->body_buffer, 64 * 1024);
    for (int r = SL_TRY_CONNECT_FAILURE; r < SL_TRY_STATUS; r++) assert_true(sl_retry_wanted(rc, r, 0, -1));
    assert_true(sl_retry_wanted(rc, SL_TRY_STATUS, 502, -1));
    assert_true(sl_retry_wanted(rc, SL_TRY_STATUS, 503, -1));
    assert_true(sl_retry_wanted(rc, SL_TRY_STATUS, 504, -1));
    assert_false(sl_retry_wanted(rc, SL_TRY_STATUS, 500, -1));
    assert_false(sl_retry_wanted(rc, SL_TRY_STATUS, 200, 14));
    sl_policy_chain_destroy(&rt);
    sl_config_free(cfg);

    cfg = policy_load("{retry: {on: [5xx], attempts: 3}}", &rt);
    rc = &rt.cfg->policies.retry;
    assert_int_equal(rc->attempts, 3);
    assert_true(sl_retry_wanted(rc, SL_TRY_STATUS, 500, -1));
    assert_true(sl_retry_wanted(rc, SL_TRY_STATUS, 599, -1));
    assert_false(sl_retry_wanted(rc, SL_TRY_STATUS, 404, -1));
    assert_true(sl_retry_wanted(rc, SL_TRY_RESET, 0, -1));
    sl_policy_chain_destroy(&rt);
    sl_config_free(cfg);

    cfg = policy_load("{retry: {on: [reset]}}", &rt);
    rc = &rt.cfg->policies.retry;
    assert_false(sl_retry_wanted(rc, SL_TRY_CONNECT_FAILURE, 0, -1));
    assert_true(sl_retry_wanted(rc, SL_TRY_RESET, 0, -1));
    assert_true(sl_retry_wanted(rc, SL_TRY_TIMEOUT, 0, -1));
    assert_false(sl_retry_wanted(rc, SL_TRY_BAD_RESPONSE, 0, -1));
    assert_false(sl_retry_wanted(rc, SL_TRY_STATUS, 503, -1));
    sl_policy_chain_destroy(&rt);
    sl_config_free(cfg);

    cfg = policy_load("{retry: {on: [connect-failure, refused-stream]}}", &rt);
    rc = &rt.cfg->policies.retry;
    assert_true(sl_retry_wanted(rc, SL_TRY_CONNECT_FAILURE, 0, -1));
    assert_false(sl_retry_wanted(rc, SL_TRY_RESET, 0, -1));
    assert_false(sl_retry_wanted(rc, SL_TRY_STATUS, 503, -1));
    sl_policy_chain_destroy(&rt);
    sl_config_free(cfg);

    cfg = policy_load("{retry: {on: [retriable-status-codes, unavailable, internal], status_codes: [409, 429]}}", &rt);
    rc = &rt.cfg->policies.retry;
    assert_true(sl_retry_wanted(rc, SL_TRY_STATUS, 409, -1));
    assert_true(sl_retry_wanted(rc, SL_TRY_STATUS, 429, -1));
    assert_false(sl_retry_wanted(rc, SL_TRY_STATUS, 410, -1));
    assert_false(sl_retry_wanted(rc, SL_TRY_STATUS, 503, -1));
    assert_false(sl_retry_wanted(rc, SL_TRY_CONNECT_FAILURE, 0, -1));
    assert_true(sl_retry_wanted(rc, SL_TRY_STATUS, 200, 14));
    assert_true(sl_retry_wanted(rc, SL_TRY_STATUS, 200, 13));
    assert_false(sl_retry_wanted(rc, SL_TRY_STATUS, 200, 4));
    assert_false(sl_retry_wanted(rc, SL_TRY_STATUS, 200, 0));
    sl_policy_chain_destroy(&rt);
    sl_config_free(cfg);

    cfg = policy_load("{retry: {on: [cancelled, deadline-exceeded, resource-exhausted]}}", &rt);
    rc = &rt.cfg->policies.retry;
    assert_true(sl_retry_wanted(rc, SL_TRY_STATUS, 200, 1));
    assert_true(sl_retry_wanted(rc, SL_TRY_STATUS, 200, 4));
    assert_true(sl_retry_wanted(rc, SL_TRY_STATUS, 200, 8));
    assert_false(sl_retry_wanted(rc, SL_TRY_STATUS, 200, 14));
    sl_policy_chain_destroy(&rt);
    sl_config_free(cfg);
}

static void test_retry_backoff(void **state)
{
    (void)state;
    sl_route_rt_t rt;
    sl_config_t *cfg = policy_load("{retry: {on: [5xx], backoff: {base: 25ms, max: 250ms}, body_buffer: 1MiB}}", &rt);
    const sl_retry_cfg_t *rc = &rt.cfg->policies.retry;
    assert_int_equal(rc->body_buffer, 1 << 20);
    /* Full jitter over [0, min(max, base * 2^n)]. */
    assert_int_equal(sl_retry_backoff_ms(rc, 0, 25), 25);
    assert_int_equal(sl_retry_backoff_ms(rc, 0, 26), 0);
    assert_int_equal(sl_retry_backoff_ms(rc, 1, 50), 50);
    assert_int_equal(sl_retry_backoff_ms(rc, 3, 200), 200);
    assert_int_equal(sl_retry_backoff_ms(rc, 3, 201), 0);
    assert_int_equal(sl_retry_backoff_ms(rc, 4, 250), 250); /* 400 capped */
    assert_int_equal(sl_retry_backoff_ms(rc, 4, 251), 0);
    assert_int_equal(sl_retry_backoff_ms(rc, 1000, 250), 250);
    for (uint64_t r = 0; r < 100000; r += 7) assert_true(sl_retry_backoff_ms(rc, 9, r * 2654435761u) <= 250);
    sl_policy_chain_destroy(&rt);
    sl_config_free(cfg);
}

static void test_policy_errors(void **state)
{
    (void)state;
    policy_expect_error("{path_rewrite: {replace: /x}}", "policies.path_rewrite: needs exactly one of 'prefix' and 'regex'");
    policy_expect_error("{path_rewrite: {prefix: /a, replace: x}}", "policies.path_rewrite.replace: must start with '/'");
    policy_expect_error("{path_rewrite: {regex: \"(a\", replace: /x}}",
                 "policies.path_rewrite.regex: invalid regular expression at offset 2");
    policy_expect_error("{timeout: 0}", "policies.timeout: expected whole seconds");
    policy_expect_error("{timeout: abc}", "policies.timeout: expected whole seconds");
    policy_expect_error("{request_headers: {set: {Connection: close}}}",
                 "policies.request_headers.set.Connection: is a hop-by-hop header");
    policy_expect_error("{response_headers: {remove: [Transfer-Encoding]}}",
                 "policies.response_headers.remove[0]: is managed by the gateway");
    policy_expect_error("{request_headers: {set: {\"bad name\": x}}}", "invalid header name");
    policy_expect_error("{path_rewrit: {prefix: /a, replace: /b}}", "unknown policy (did you mean 'path_rewrite'?)");
    policy_expect_error("{retry: {attempts: 2}}", "policies.retry.on: is required");
    policy_expect_error("{retry: {on: [5xx, boom]}}", "policies.retry.on[1]: unknown retry condition 'boom' (expected one of: "
                                               "5xx, gateway-error, reset, connect-failure, refused-stream");
    policy_expect_error("{retry: {on: [5xx], attempts: 0}}", "policies.retry.attempts: must be between 1 and 10");
    policy_expect_error("{retry: {on: [retriable-status-codes]}}", "policies.retry.on: 'retriable-status-codes' needs");
    policy_expect_error("{retry: {on: [5xx], status_codes: [409]}}", "policies.retry.status_codes: has no effect unless");
    policy_expect_error("{retry: {on: [retriable-status-codes], status_codes: [99]}}",
                 "policies.retry.status_codes[0]: must be between 200 and 599");
    policy_expect_error("{retry: {on: [5xx], backoff: {base: 1s, max: 100ms}}}",
                 "policies.retry.backoff: 'max' must not be less than 'base'");
    policy_expect_error("{retry: {on: [5xx], body_buffer: 12q}}", "policies.retry.body_buffer: invalid size '12q'");
    policy_expect_error("{retry: {on: [5xx], body_buffer: 65MiB}}", "policies.retry.body_buffer: must be at most");
    policy_expect_error("{retry: {on: [5xx], per_try_timeout: 0s}}", "policies.retry.per_try_timeout: must be between");
    policy_expect_error("{request_headers: {remove: [Host]}}", "policies.request_headers.remove[0]: HTTP/1.1 requires Host");
    policy_expect_error("{ip_access: {allow: [10.0.0.0/8], deny: [1.2.3.4]}}",
                 "policies.ip_access: needs exactly one of 'allow' and 'deny'");
    policy_expect_error("{ip_access: {allow: [10.0.0.0/33]}}", "policies.ip_access.allow[0]: expected an IPv4 or IPv6");
    policy_expect_error("{ip_access: {deny: [1.2.3.4], source: client}}",
                 "policies.ip_access.source: unknown value 'client' (expected one of: remote, peer)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix_rewrite),
        cmocka_unit_test(test_regex_rewrite),
        cmocka_unit_test(test_header_ops_and_chain_order),
        cmocka_unit_test(test_retry_decisions),
        cmocka_unit_test(test_retry_backoff),
        cmocka_unit_test(test_policy_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
