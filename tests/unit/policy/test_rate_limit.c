#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <cmocka.h>

#include "policy_test.h"

#include "config/config.h"
#include "policy/local_rate_limit.h"
#include "policy/policy.h"
#include "runtime/generation.h"

#define S 1000000000ull

/* The clock the limiter reads: moved by hand. */
static uint64_t fake_ns = 1000 * S;
static uint64_t fake_now(void)
{
    return fake_ns;
}

static sl_rate_limit_cfg_t cfg(uint32_t requests, int per_s, uint32_t burst)
{
    sl_rate_limit_cfg_t c = {.enabled = 1, .requests = requests, .per_s = per_s, .burst = burst, .status = 429,
                             .max_keys = 10000};
    return c;
}

static sl_rate_result_t take(sl_rate_limiter_t *l, const char *key)
{
    sl_rate_result_t r;
    sl_rate_limiter_take(l, key, key ? strlen(key) : 0, fake_now, &r);
    return r;
}

/* requests: 3, per: minute, burst: 5 -> 8 at once, then one every 20 s. */
static void test_product_example(void **state)
{
    (void)state;
    sl_rate_limit_cfg_t c = cfg(3, 60, 5);
    sl_rate_limiter_t *l = sl_rate_limiter_get("s", "product", &c);
    fake_ns = 1000 * S;
    for (uint64_t k = 1; k <= 8; k++) {
        sl_rate_result_t r = take(l, NULL);
        assert_true(r.allowed);
        assert_int_equal(r.limit, 8);
        assert_int_equal(r.remaining, 8 - k);
        assert_int_equal(r.reset_ns, 20 * S * k); /* until full again */
        assert_int_equal(r.retry_ns, 0);
    }
    sl_rate_result_t r = take(l, NULL);
    assert_false(r.allowed);
    assert_int_equal(r.limit, 8);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.retry_ns, 20 * S);
    assert_int_equal(r.reset_ns, 160 * S);
    /* A refusal takes nothing: one nanosecond before the next token is still too early. */
    fake_ns += 20 * S - 1;
    r = take(l, NULL);
    assert_false(r.allowed);
    assert_int_equal(r.retry_ns, 1);
    fake_ns += 1;
    r = take(l, NULL);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_false(take(l, NULL).allowed);
    sl_rate_limiter_release(l);
}

static void test_refill(void **state)
{
    (void)state;
    sl_rate_limit_cfg_t c = cfg(3, 60, 5);
    sl_rate_limiter_t *l = sl_rate_limiter_get("s", "refill", &c);
    fake_ns = 5000 * S;
    for (int k = 0; k < 8; k++) assert_true(take(l, NULL).allowed);
    /* 50 s later: two whole tokens (and half of a third). */
    fake_ns += 50 * S;
    sl_rate_result_t r = take(l, NULL);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 1);
    assert_int_equal(r.reset_ns, 130 * S);
    assert_true(take(l, NULL).allowed);
    r = take(l, NULL);
    assert_false(r.allowed);
    assert_int_equal(r.retry_ns, 10 * S); /* the half token */
    /* Long idle: full, never more than the capacity. */
    fake_ns += 3600 * S;
    r = take(l, NULL);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 7);
    assert_int_equal(r.reset_ns, 20 * S);
    sl_rate_limiter_release(l);

    /* per: second, no burst: a token every 250 ms. */
    c = cfg(4, 1, 0);
    l = sl_rate_limiter_get("s", "second", &c);
    for (int k = 0; k < 4; k++) assert_true(take(l, NULL).allowed);
    r = take(l, NULL);
    assert_false(r.allowed);
    assert_int_equal(r.retry_ns, S / 4);
    assert_int_equal(r.reset_ns, S);
    fake_ns += S / 4;
    assert_true(take(l, NULL).allowed);
    sl_rate_limiter_release(l);
}

static void test_registry(void **state)
{
    (void)state;
    sl_rate_limit_cfg_t c = cfg(3, 60, 5);
    sl_rate_limiter_t *a = sl_rate_limiter_get("s", "r", &c);
    for (int k = 0; k < 8; k++) assert_true(take(a, NULL).allowed);
    /* The next generation, same settings: the same buckets, still empty. */
    sl_rate_limit_cfg_t same = c;
    same.status = 503;
    same.header = "ratelimit"; /* only shape responses */
    sl_rate_limiter_t *b = sl_rate_limiter_get("s", "r", &same);
    assert_ptr_equal(a, b);
    sl_rate_limiter_release(a);
    assert_false(take(b, NULL).allowed);
    /* A changed setting, another route or another service: a fresh bucket. */
    sl_rate_limit_cfg_t more = cfg(4, 60, 5);
    sl_rate_limiter_t *d = sl_rate_limiter_get("s", "r", &more);
    sl_rate_limiter_t *e = sl_rate_limiter_get("s", "r2", &c);
    sl_rate_limiter_t *f = sl_rate_limiter_get("s2", "r", &c);
    sl_rate_limit_cfg_t keyed = c;
    keyed.key = SL_RL_KEY_IP;
    sl_rate_limiter_t *g = sl_rate_limiter_get("s", "r", &keyed);
    assert_true(d != b && e != b && f != b && g != b && d != e && e != f);
    assert_true(take(d, NULL).allowed);
    assert_true(take(e, NULL).allowed);
    assert_true(take(f, NULL).allowed);
    /* key: header X-Api-Key and x-api-key are one setting; another header is not. */
    sl_rate_limit_cfg_t h1 = c, h2 = c, h3 = c;
    h1.key = h2.key = h3.key = SL_RL_KEY_HEADER;
    h1.key_header = "X-Api-Key";
    h2.key_header = "x-api-key";
    h3.key_header = "X-Other";
    sl_rate_limiter_t *k1 = sl_rate_limiter_get("s", "r", &h1), *k2 = sl_rate_limiter_get("s", "r", &h2),
                      *k3 = sl_rate_limiter_get("s", "r", &h3);
    assert_ptr_equal(k1, k2);
    assert_true(k3 != k1);
    sl_rate_limiter_t *all[] = {b, d, e, f, g, k1, k2, k3};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) sl_rate_limiter_release(all[i]);
    /* Released for good: the same settings start over. */
    a = sl_rate_limiter_get("s", "r", &c);
    assert_int_equal(take(a, NULL).remaining, 7);
    sl_rate_limiter_release(a);
}

static void test_keyed_lru(void **state)
{
    (void)state;
    sl_rate_limit_cfg_t c = cfg(1, 3600, 0);
    c.key = SL_RL_KEY_IP;
    c.max_keys = 2;
    sl_rate_limiter_t *l = sl_rate_limiter_get("s", "lru", &c);
    assert_true(take(l, "a").allowed);
    assert_false(take(l, "a").allowed);
    assert_true(take(l, "b").allowed); /* each key its own bucket */
    assert_false(take(l, "a").allowed); /* a is now the most recently used */
    assert_true(take(l, "c").allowed);  /* evicts b, the least recently used */
    assert_int_equal(sl_rate_limiter_keys(l), 2);
    assert_false(take(l, "a").allowed); /* kept */
    assert_false(take(l, "c").allowed);
    assert_true(take(l, "b").allowed); /* forgotten: a full bucket again; evicts a */
    assert_true(take(l, "a").allowed);  /* evicts c */
    assert_true(take(l, "c").allowed);
    assert_int_equal(sl_rate_limiter_keys(l), 2);
    /* No key (a request without the header): the route's own bucket, shared. */
    assert_true(take(l, NULL).allowed);
    assert_false(take(l, NULL).allowed);
    assert_int_equal(sl_rate_limiter_keys(l), 2);
    sl_rate_limiter_release(l);

    /* Many keys: the map grows, stays bounded, and finds every kept key. */
    c.max_keys = 1000;
    l = sl_rate_limiter_get("s", "many", &c);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "10.0.%d.%d", i / 256, i % 256);
        assert_true(take(l, key).allowed);
    }
    assert_int_equal(sl_rate_limiter_keys(l), 1000);
    for (int i = 4000; i < 5000; i++) {
        snprintf(key, sizeof(key), "10.0.%d.%d", i / 256, i % 256);
        assert_false(take(l, key).allowed);
    }
    sl_rate_limiter_release(l);
}

static void test_long_keys(void **state)
{
    (void)state;
    sl_rate_limit_cfg_t c = cfg(1, 3600, 0);
    c.key = SL_RL_KEY_HEADER;
    c.key_header = "Authorization";
    sl_rate_limiter_t *l = sl_rate_limiter_get("s", "long", &c);
    /* Same first bytes, different ends (tokens with a common prefix): different clients. */
    char a[300], b[300];
    memset(a, 'x', sizeof(a) - 1);
    a[sizeof(a) - 1] = '\0';
    memcpy(b, a, sizeof(b));
    b[sizeof(b) - 2] = 'y';
    assert_true(take(l, a).allowed);
    assert_true(take(l, b).allowed);
    assert_false(take(l, a).allowed);
    assert_false(take(l, b).allowed);
    b[100] = '\0'; /* a prefix of a: yet another */
    assert_true(take(l, b).allowed);
    assert_int_equal(sl_rate_limiter_keys(l), 3);
    sl_rate_limiter_release(l);
}

/* Threads racing on one bucket (and on keyed buckets): exactly the capacity is admitted. The
 * clock stands still, so the count cannot depend on how fast the threads run. */
typedef struct {
    sl_rate_limiter_t *l;
    int keyed;
    int allowed;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    char key[8];
    for (int i = 0; i < 4000; i++) {
        snprintf(key, sizeof(key), "k%d", i % 10);
        sl_rate_result_t res;
        sl_rate_limiter_take(r->l, r->keyed ? key : NULL, r->keyed ? strlen(key) : 0, fake_now, &res);
        r->allowed += res.allowed;
    }
    return NULL;
}

static void test_threads_exact(void **state)
{
    (void)state;
    for (int keyed = 0; keyed < 2; keyed++) {
        sl_rate_limit_cfg_t c = cfg(100, 3600, 900);
        c.key = keyed ? SL_RL_KEY_IP : SL_RL_KEY_NONE;
        sl_rate_limiter_t *l = sl_rate_limiter_get("s", keyed ? "race-keyed" : "race", &c);
        racer_t r[4];
        pthread_t t[4];
        for (int i = 0; i < 4; i++) {
            r[i] = (racer_t){.l = l, .keyed = keyed};
            assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
        }
        int total = 0;
        for (int i = 0; i < 4; i++) {
            pthread_join(t[i], NULL);
            total += r[i].allowed;
        }
        assert_int_equal(total, keyed ? 10 * 1000 : 1000);
        sl_rate_limiter_release(l);
    }
}


/* A request with the key in x-api-key (none when key is NULL), as the proxy hands it over. */
static int request(const sl_route_rt_t *rt, const char *key, sl_policy_state_t *st, const char **code)
{
    sl_http_hdr_t field = {.name = "x-api-key", .value = key, .name_len = 9, .value_len = key ? (uint32_t)strlen(key) : 0};
    sl_http_req_t req = {.method = "GET", .hdrs = {.v = &field, .n = key ? 1 : 0, .cap = 1}};
    memset(st, 0, sizeof(*st));
    sl_policy_req_t pr = {.peer = "127.0.0.1", .remote = "127.0.0.1", .remote_len = 9, .req = &req, .state = st};
    *code = NULL;
    return sl_policy_on_request(rt, &pr, code);
}

static void test_chain(void **state)
{
    (void)state;
    sl_route_rt_t rt;
    sl_config_t *c = policy_load("{path_rewrite: {prefix: /a, replace: /b}, local_rate_limit: {requests: 3, per: minute, "
                          "burst: 5, header: ratelimit, key: \"header X-Api-Key\", status: 503}, "
                          "ip_access: {deny: [10.0.0.0/8]}}",
                          &rt);
    assert_int_equal(rt.chain.n, 3);
    assert_ptr_equal(rt.chain.mods[0], &sl_policy_ip_access.m);
    assert_ptr_equal(rt.chain.mods[1], &sl_policy_local_rate_limit.m);
    assert_ptr_equal(rt.chain.mods[2], &sl_policy_path_rewrite.m);

    sl_policy_state_t st;
    const char *code;
    assert_int_equal(request(&rt, "alice", &st, &code), 0);
    sl_buf_t b = SL_BUF_INIT;
    policy_response(&rt, &st, 1, NULL, &b);
    assert_string_equal(sl_buf_cstr(&b), "ratelimit: 8\r\nX-RateLimit-Limit: 8\r\nX-RateLimit-Remaining: 7\r\n"
                                         "X-RateLimit-Reset: 20\r\n");
    for (int k = 0; k < 7; k++) assert_int_equal(request(&rt, "alice", &st, &code), 0);
    assert_int_equal(request(&rt, "alice", &st, &code), 503);
    assert_string_equal(code, "rate_limited");
    policy_response(&rt, &st, 1, NULL, &b);
    /* Reset and Retry-After are whole seconds rounded up: 160 and 20 unless a second went by. */
    unsigned long long reset = 0, retry = 0;
    assert_int_equal(sscanf(sl_buf_cstr(&b),
                            "ratelimit: 8\r\nX-RateLimit-Limit: 8\r\nX-RateLimit-Remaining: 0\r\n"
                            "X-RateLimit-Reset: %llu\r\nRetry-After: %llu\r\n",
                            &reset, &retry),
                     2);
    assert_true(reset >= 159 && reset <= 160);
    assert_true(retry >= 19 && retry <= 20);
    /* Another key has its own bucket; no key shares one. */
    assert_int_equal(request(&rt, "bob", &st, &code), 0);
    assert_int_equal(st.rate_limit.remaining, 7);
    assert_int_equal(request(&rt, NULL, &st, &code), 0);
    assert_int_equal(request(&rt, NULL, &st, &code), 0);
    assert_int_equal(st.rate_limit.remaining, 6);
    /* The upstream's own counters and the configured header are replaced by the gateway's. */
    memset(&st, 0, sizeof(st));
    static const char *const up[] = {"X-RATELIMIT-REMAINING", "99", "RateLimit", "1", "Retry-After", "5", NULL};
    assert_string_equal(policy_response(&rt, &st, 0, up, &b), "Retry-After: 5\r\n");
    /* A request ip_access refuses is not counted: no rate-limit headers. */
    sl_http_req_t plain = {.method = "GET"};
    sl_policy_req_t denied = {.peer = "10.1.1.1", .remote = "10.1.1.1", .remote_len = 8, .req = &plain, .state = &st};
    assert_int_equal(sl_policy_on_request(&rt, &denied, &code), 403);
    assert_false(st.rate_limit.counted);
    policy_response(&rt, &st, 1, NULL, &b);
    assert_int_equal(b.len, 0);
    sl_buf_free(&b);
    sl_policy_chain_destroy(&rt);
    sl_config_free(c);
}

static void test_config(void **state)
{
    (void)state;
    sl_route_rt_t rt;
    sl_config_t *c = policy_load("{local_rate_limit: {requests: 3, per: hour}}", &rt);
    const sl_rate_limit_cfg_t *rl = &rt.cfg->policies.local_rate_limit;
    assert_true(rl->enabled);
    assert_int_equal(rl->requests, 3);
    assert_int_equal(rl->per_s, 3600);
    assert_int_equal(rl->burst, 0);
    assert_int_equal(rl->status, 429);
    assert_null(rl->header);
    assert_int_equal(rl->key, SL_RL_KEY_NONE);
    assert_int_equal(rl->max_keys, 10000);
    sl_policy_chain_destroy(&rt);
    sl_config_free(c);
    c = policy_load("{local_rate_limit: {requests: 1, per: second, key: \"header  X-Api-Key\", max_keys: 5}}", &rt);
    rl = &rt.cfg->policies.local_rate_limit;
    assert_int_equal(rl->key, SL_RL_KEY_HEADER);
    assert_string_equal(rl->key_header, "X-Api-Key");
    assert_int_equal(rl->max_keys, 5);
    sl_policy_chain_destroy(&rt);
    sl_config_free(c);

    policy_expect_error("{local_rate_limit: {per: minute}}", "policies.local_rate_limit.requests: is required");
    policy_expect_error("{local_rate_limit: {requests: 3}}", "policies.local_rate_limit.per: is required");
    policy_expect_error("{local_rate_limit: {requests: 0, per: minute}}",
                 "policies.local_rate_limit.requests: must be between 1 and 1000000");
    policy_expect_error("{local_rate_limit: {requests: 3, per: day}}",
                 "policies.local_rate_limit.per: unknown value 'day' (expected one of: second, minute, hour)");
    policy_expect_error("{local_rate_limit: {requests: 3, per: minute, burst: -1}}",
                 "policies.local_rate_limit.burst: must be between 0 and 1000000");
    policy_expect_error("{local_rate_limit: {requests: 3, per: minute, status: 200}}",
                 "policies.local_rate_limit.status: must be between 400 and 599");
    policy_expect_error("{local_rate_limit: {requests: 3, per: minute, header: \"rate limit\"}}",
                 "policies.local_rate_limit.header: invalid header name 'rate limit'");
    policy_expect_error("{local_rate_limit: {requests: 3, per: minute, header: Retry-After}}",
                 "policies.local_rate_limit.header: 'Retry-After' is written by the gateway");
    policy_expect_error("{local_rate_limit: {requests: 3, per: minute, key: cookie}}",
                 "policies.local_rate_limit.key: expected 'ip' or 'header NAME'");
    policy_expect_error("{local_rate_limit: {requests: 3, per: minute, key: \"header X(y)\"}}",
                 "policies.local_rate_limit.key: invalid header name 'X(y)'");
    policy_expect_error("{local_rate_limit: {requests: 3, per: minute, max_keys: 10}}",
                 "policies.local_rate_limit.max_keys: only applies with 'key'");
    policy_expect_error("{local_rate_limit: {requests: 3, per: minute, key: ip, max_keys: 0}}",
                 "policies.local_rate_limit.max_keys: must be between 1 and 1000000");
    policy_expect_error("{local_rate_limit: {requests: 3, per: minute, brust: 5}}",
                 "policies.local_rate_limit.brust: unknown key (did you mean 'burst'?)");
    policy_expect_error("{local_rate_limit: 5}", "policies.local_rate_limit: expected a map, got");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_product_example), cmocka_unit_test(test_refill),
        cmocka_unit_test(test_registry),        cmocka_unit_test(test_keyed_lru),
        cmocka_unit_test(test_long_keys),       cmocka_unit_test(test_threads_exact),
        cmocka_unit_test(test_chain),           cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
