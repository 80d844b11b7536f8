#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy_test.h"

#include "config/config.h"
#include "policy/cookie_rewrite.h"
#include "policy/policy.h"
#include "runtime/generation.h"

static sl_buf_t out = SL_BUF_INIT;

/* The rewritten value, or NULL when sl_cookie_rewrite leaves it; checks that rewriting the
 * result again changes nothing. */
static const char *rw(const sl_cookie_rule_t *rules, size_t n, const char *in)
{
    out.len = 0;
    if (!sl_cookie_rewrite(rules, n, in, strlen(in), &out)) {
        assert_int_equal(out.len, 0); /* nothing appended */
        return NULL;
    }
    sl_buf_t again = SL_BUF_INIT;
    assert_int_equal(sl_cookie_rewrite(rules, n, out.data, out.len, &again), 1);
    assert_int_equal(again.len, out.len);
    assert_memory_equal(again.data, out.data, out.len);
    sl_buf_free(&again);
    return sl_buf_cstr(&out);
}

#define RULE(n, d, p, s, ss) {.name = (n), .domain = (d), .path = (p), .secure = (s), .samesite = (ss)}

static void test_domain(void **state)
{
    (void)state;
    const sl_cookie_rule_t r[] = {RULE("session", "example.com", NULL, -1, NULL)};
    assert_string_equal(rw(r, 1, "session=abc; Domain=old.internal; Path=/x"),
                        "session=abc; Domain=example.com; Path=/x");
    assert_string_equal(rw(r, 1, "session=abc; Path=/x"), "session=abc; Path=/x; Domain=example.com");
    assert_string_equal(rw(r, 1, "session=abc"), "session=abc; Domain=example.com");
    /* The first Domain is replaced where it was, later ones are dropped (a browser takes the last). */
    assert_string_equal(rw(r, 1, "session=1; Domain=a; HttpOnly; Domain=b"),
                        "session=1; Domain=example.com; HttpOnly");
}

static void test_path(void **state)
{
    (void)state;
    const sl_cookie_rule_t r[] = {RULE("session", NULL, "/app", -1, NULL)};
    assert_string_equal(rw(r, 1, "session=abc; Path=/; HttpOnly"), "session=abc; Path=/app; HttpOnly");
    assert_string_equal(rw(r, 1, "session=abc; HttpOnly"), "session=abc; HttpOnly; Path=/app");
    assert_string_equal(rw(r, 1, "session=abc; Path"), "session=abc; Path=/app"); /* an empty Path too */
}

static void test_secure(void **state)
{
    (void)state;
    const sl_cookie_rule_t add[] = {RULE("session", NULL, NULL, 1, NULL)};
    assert_string_equal(rw(add, 1, "session=abc; HttpOnly"), "session=abc; HttpOnly; Secure");
    assert_string_equal(rw(add, 1, "session=abc; secure; HttpOnly"), "session=abc; secure; HttpOnly"); /* kept as is */
    const sl_cookie_rule_t del[] = {RULE("session", NULL, NULL, 0, NULL)};
    assert_string_equal(rw(del, 1, "session=abc; Secure; HttpOnly"), "session=abc; HttpOnly");
    assert_string_equal(rw(del, 1, "session=abc; HttpOnly; SECURE ; secure=1"), "session=abc; HttpOnly");
    assert_string_equal(rw(del, 1, "session=abc; HttpOnly"), "session=abc; HttpOnly");
}

static void test_samesite(void **state)
{
    (void)state;
    const sl_cookie_rule_t r[] = {RULE("session", NULL, NULL, -1, "Strict")};
    assert_string_equal(rw(r, 1, "session=abc; SameSite=Lax; Secure"), "session=abc; SameSite=Strict; Secure");
    assert_string_equal(rw(r, 1, "session=abc; Secure"), "session=abc; Secure; SameSite=Strict");
    const sl_cookie_rule_t none[] = {RULE("session", NULL, NULL, 1, "None")};
    assert_string_equal(rw(none, 1, "session=abc; samesite=strict"), "session=abc; SameSite=None; Secure");
}

static void test_attribute_names_any_case(void **state)
{
    (void)state;
    const sl_cookie_rule_t r[] = {RULE("s", "example.com", "/", 0, "Lax")};
    assert_string_equal(rw(r, 1, "s=1; DOMAIN=x.org; pAtH = /old ; sEcUrE; SAMESITE=none"),
                        "s=1; Domain=example.com; Path=/; SameSite=Lax");
    /* No space after ';' stays that way; a tab before the name is kept. */
    assert_string_equal(rw(r, 1, "s=1;domain=x;\tpath=/a"), "s=1;Domain=example.com;\tPath=/; SameSite=Lax");
    /* Names that only start like an attribute are other attributes. */
    assert_string_equal(rw(r, 1, "s=1; Domains=x; Path2=/; Securely"),
                        "s=1; Domains=x; Path2=/; Securely; Domain=example.com; Path=/; SameSite=Lax");
}

static void test_other_bytes_kept(void **state)
{
    (void)state;
    const sl_cookie_rule_t r[] = {RULE("id", "example.com", "/", 1, "Strict")};
    /* Expires has a comma and spaces; values keep their quotes, '=' and spacing; order is kept. */
    assert_string_equal(rw(r, 1, "id=\"a=b c\"; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Max-Age=3600;  HttpOnly; "
                                 "Partitioned; Priority=High"),
                        "id=\"a=b c\"; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Max-Age=3600;  HttpOnly; Partitioned; "
                        "Priority=High; Domain=example.com; Path=/; Secure; SameSite=Strict");
    /* Spaces around the name are not part of it; empty attributes stay. */
    assert_string_equal(rw(r, 1, " id =; ;Path=/x;"), " id =; ;Path=/;; Domain=example.com; Secure; SameSite=Strict");
    assert_string_equal(rw(r, 1, "id="), "id=; Domain=example.com; Path=/; Secure; SameSite=Strict");
}

static void test_multiple_rules(void **state)
{
    (void)state;
    const sl_cookie_rule_t r[] = {RULE("a", "a.example", NULL, -1, NULL), RULE("b", NULL, "/b", 1, NULL),
                                  RULE("c", NULL, NULL, 0, "Lax")};
    assert_string_equal(rw(r, 3, "a=1; Path=/"), "a=1; Path=/; Domain=a.example");
    assert_string_equal(rw(r, 3, "b=2; Domain=x"), "b=2; Domain=x; Path=/b; Secure");
    assert_string_equal(rw(r, 3, "c=3; Secure; SameSite=Strict"), "c=3; SameSite=Lax");
    assert_null(rw(r, 3, "d=4; Secure"));
}

static void test_no_match(void **state)
{
    (void)state;
    const sl_cookie_rule_t r[] = {RULE("session", "example.com", NULL, 1, NULL)};
    assert_null(rw(r, 1, "Session=abc")); /* names are case-sensitive */
    assert_null(rw(r, 1, "sessionid=abc"));
    assert_null(rw(r, 1, "sess=session"));
    assert_null(rw(r, 1, "other=1; session=2"));
    assert_null(rw(r, 0, "session=abc"));
}

static void test_malformed(void **state)
{
    (void)state;
    const sl_cookie_rule_t r[] = {RULE("session", "example.com", NULL, 1, NULL)};
    assert_null(rw(r, 1, ""));
    assert_null(rw(r, 1, "session"));
    assert_null(rw(r, 1, "session; Domain=x"));    /* no '=' in the first pair */
    assert_null(rw(r, 1, "session; session=abc")); /* the '=' is past the first ';' */
    assert_null(rw(r, 1, "=abc"));                 /* no name */
    assert_null(rw(r, 1, ";"));
    /* Bytes a header may carry but are not text go through untouched. */
    assert_string_equal(rw(r, 1, "session=\xff\x80; X=\x01"), "session=\xff\x80; X=\x01; Domain=example.com; Secure");
    /* A value is not a C string: a NUL inside is kept and does not end it. */
    out.len = 0;
    static const char nul[] = "session=a\0b; Domain=x";
    assert_int_equal(sl_cookie_rewrite(r, 1, nul, sizeof(nul) - 1, &out), 1);
    static const char want[] = "session=a\0b; Domain=example.com; Secure";
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, sizeof(want) - 1);
}

static void test_appends_to_out(void **state)
{
    (void)state;
    const sl_cookie_rule_t r[] = {RULE("s", NULL, NULL, 1, NULL)};
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_puts(&b, "Set-Cookie: ");
    assert_int_equal(sl_cookie_rewrite(r, 1, "x=1", 3, &b), 0);
    assert_int_equal(sl_cookie_rewrite(r, 1, "s=1", 3, &b), 1);
    assert_string_equal(sl_buf_cstr(&b), "Set-Cookie: s=1; Secure");
    sl_buf_free(&b);
}

static void test_long_values(void **state)
{
    (void)state;
    const sl_cookie_rule_t r[] = {RULE("big", "example.com", "/", 1, "Lax")};
    size_t vlen = 200000;
    char *in = malloc(vlen + 64);
    memcpy(in, "big=", 4);
    memset(in + 4, 'v', vlen);
    strcpy(in + 4 + vlen, "; Path=/old");
    const char *res = rw(r, 1, in);
    assert_non_null(res);
    assert_int_equal(strlen(res), 4 + vlen + strlen("; Path=/; Domain=example.com; Secure; SameSite=Lax"));
    assert_memory_equal(res, in, 4 + vlen);
    assert_string_equal(res + 4 + vlen, "; Path=/; Domain=example.com; Secure; SameSite=Lax");
    free(in);

    /* Thousands of attributes, every Domain among them: one is left, in the first one's place. */
    sl_buf_t many = SL_BUF_INIT;
    sl_buf_puts(&many, "big=1");
    for (int i = 0; i < 5000; i++) sl_buf_printf(&many, "; X%d=%d; Domain=d%d.example", i, i, i);
    res = rw(r, 1, sl_buf_cstr(&many));
    assert_non_null(res);
    assert_true(strncmp(res, "big=1; X0=0; Domain=example.com; X1=1; X2=2", 42) == 0);
    assert_null(strstr(res, "Domain=d"));
    assert_non_null(strstr(res, "; X4999=4999; Path=/; Secure; SameSite=Lax"));
    sl_buf_free(&many);
}


static void test_policy_chain(void **state)
{
    (void)state;
    sl_route_rt_t rt;
    sl_config_t *cfg = policy_load("{cookie_rewrite: [{name: session, domain: example.com, path: /, secure: true, "
                            "samesite: strict}, {name: pref, secure: false}], "
                            "response_headers: {remove: [Server]}}",
                            &rt);
    assert_int_equal(rt.chain.n, 2);
    assert_ptr_equal(rt.chain.mods[0], &sl_policy_response_headers.m);
    assert_ptr_equal(rt.chain.mods[1], &sl_policy_cookie_rewrite.m); /* last in the documented order */
    const sl_cookie_rule_t *r = rt.cfg->policies.cookie_rewrite.rules;
    assert_int_equal(rt.cfg->policies.cookie_rewrite.n_rules, 2);
    assert_string_equal(r[0].samesite, "Strict"); /* written as the browsers' spelling */
    assert_int_equal(r[0].secure, 1);
    assert_int_equal(r[1].secure, 0);
    assert_null(r[1].domain);
    assert_null(r[1].samesite);

    sl_buf_t b = SL_BUF_INIT;
    static const char *const one[] = {"set-COOKIE", "session=1; Path=/x", NULL};
    assert_string_equal(policy_response(&rt, NULL, 0, one, &b),
                        "set-COOKIE: session=1; Path=/; Domain=example.com; Secure; SameSite=Strict\r\n");
    /* Only Set-Cookie headers are touched. */
    static const char *const others[] = {"X-Set-Cookie", "session=1", "Set-Cookie2", "session=1", "Cookie",
                                         "session=1", NULL};
    assert_string_equal(policy_response(&rt, NULL, 0, others, &b),
                        "X-Set-Cookie: session=1\r\nSet-Cookie2: session=1\r\nCookie: session=1\r\n");
    static const char *const pref[] = {"Set-Cookie", "pref=dark; Secure", NULL};
    assert_string_equal(policy_response(&rt, NULL, 0, pref, &b), "Set-Cookie: pref=dark\r\n");
    /* The gateway's own answers are not the upstream's cookies. */
    assert_string_equal(policy_response(&rt, NULL, 1, pref, &b), "Set-Cookie: pref=dark; Secure\r\n");
    sl_policy_chain_destroy(&rt);
    sl_config_free(cfg);

    /* A route without the policy rewrites nothing. */
    cfg = policy_load("{timeout: 5}", &rt);
    static const char *const plain[] = {"Set-Cookie", "session=1", NULL};
    assert_string_equal(policy_response(&rt, NULL, 0, plain, &b), "Set-Cookie: session=1\r\n");
    sl_buf_free(&b);
    sl_policy_chain_destroy(&rt);
    sl_config_free(cfg);
}

/* ---- configuration errors ---- */


#define P "services[0].routes[0].policies.cookie_rewrite"

static void test_config_errors(void **state)
{
    (void)state;
    policy_expect_error("{cookie_rewrite: [{name: s, samesite: None}]}",
                 "p.yaml:6:57: " P "[0].samesite: SameSite=None needs 'secure: true' in the same rule");
    policy_expect_error("{cookie_rewrite: [{name: s, samesite: none, secure: false}]}",
                 P "[0].samesite: SameSite=None needs 'secure: true'");
    policy_expect_error("{cookie_rewrite: [{name: s, samesite: Loose}]}",
                 "p.yaml:6:57: " P "[0].samesite: unknown value 'Loose' (expected one of: Strict, Lax, None)");
    policy_expect_error("{cookie_rewrite: [{domain: example.com}]}", "p.yaml:6:37: " P "[0].name: is required");
    policy_expect_error("{cookie_rewrite: [{name: a, secure: true}, {name: a, path: /}]}",
                 "p.yaml:6:69: " P "[1].name: duplicate cookie name 'a' (first at line 6)");
    policy_expect_error("{cookie_rewrite: [{name: s, path: x}]}",
                 "p.yaml:6:53: " P "[0].path: must start with '/' and contain no ';' or control characters");
    policy_expect_error("{cookie_rewrite: [{name: s, path: \"/a;b\"}]}", P "[0].path: must start with '/'");
    policy_expect_error("{cookie_rewrite: [{name: s, path: \"/a\\x01\"}]}", P "[0].path: must start with '/'");
    policy_expect_error("{cookie_rewrite: [{name: s, domain: \"a.com; Secure\"}]}", P "[0].domain: must be a domain name");
    policy_expect_error("{cookie_rewrite: [{name: s, domain: \"a\\tb.com\"}]}", P "[0].domain: must be a domain name");
    policy_expect_error("{cookie_rewrite: [{name: s, secure: maybe}]}", P "[0].secure: expected a boolean");
    policy_expect_error("{cookie_rewrite: [{name: s}]}",
                 "p.yaml:6:37: " P "[0]: needs at least one of 'domain', 'path', 'secure', 'samesite'");
    policy_expect_error("{cookie_rewrite: [{name: \"a;b\", secure: true}]}", P "[0].name: must be a cookie name token");
    policy_expect_error("{cookie_rewrite: [{name: s, secure: true, domian: x}]}",
                 P "[0].domian: unknown key (did you mean 'domain'?)");
    policy_expect_error("{cookie_rewrite: []}", P ": must not be empty");
    policy_expect_error("{cookie_rewrite: {name: s, secure: true}}", P ": expected a list, got a map");
    policy_expect_error("{cookie_rewrite: [session]}", P "[0]: expected a map with 'name'");
}

static int teardown(void **state)
{
    (void)state;
    sl_buf_free(&out);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_domain),
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_secure),
        cmocka_unit_test(test_samesite),
        cmocka_unit_test(test_attribute_names_any_case),
        cmocka_unit_test(test_other_bytes_kept),
        cmocka_unit_test(test_multiple_rules),
        cmocka_unit_test(test_no_match),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_appends_to_out),
        cmocka_unit_test(test_long_values),
        cmocka_unit_test(test_policy_chain),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
