#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "policy/cors.h"

static int form(const char *s, int *wild)
{
    return sl_cors_origin_form(s, strlen(s), wild);
}

static void test_origin_form(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int ok, wild;
    } cases[] = {
        {"https://app.example.com", 1, 0},
        {"http://localhost:3000", 1, 0},
        {"https://*.example.org", 1, 1},
        {"https://*.example.org:8443", 1, 1},
        {"http://127.0.0.1:8080", 1, 0},
        {"http://[::1]:8080", 1, 0},
        {"http://[::1]", 1, 0},
        {"app+x-1.y://host", 1, 0},
        {"https://a-b.c", 1, 0},
        {"", 0, 0},
        {"null", 0, 0},
        {"*", 0, 0},
        {"app.example.com", 0, 0},
        {"https://", 0, 0},
        {"https://app.example.com/", 0, 0},
        {"https://app.example.com/x", 0, 0},
        {"https://app.example.com:", 0, 0},
        {"https://app.example.com:65536", 0, 0},
        {"https://app.example.com:123456", 0, 0},
        {"https://app.example.com:8a", 0, 0},
        {"https://a.*.example.com", 0, 0},
        {"https://*example.com", 0, 0},
        {"https://*.", 0, 0},
        {"https://*.[::1]", 0, 0},
        {"https://-a.example.com", 0, 0},
        {"https://a-.example.com", 0, 0},
        {"https://a..example.com", 0, 0},
        {"https://.example.com", 0, 0},
        {"https://example.com.", 0, 0},
        {"https://exa mple.com", 0, 0},
        {"https://app.example.com, https://b.example.com", 0, 0},
        {"https://user@app.example.com", 0, 0},
        {"1https://a", 0, 0},
        {"https:/a", 0, 0},
        {"http://[::1", 0, 0},
        {"http://[zz::1]", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int wild = -1;
        int ok = form(cases[i].s, &wild);
        if (ok != cases[i].ok) fail_msg("%s: form %d, want %d", cases[i].s, ok, cases[i].ok);
        if (ok && wild != cases[i].wild) fail_msg("%s: wildcard %d", cases[i].s, wild);
    }
    /* Every byte value after a good prefix: only host characters keep it an origin. */
    for (int c = 0; c < 256; c++) {
        char s[32] = "https://a";
        s[9] = (char)c;
        int wild;
        int ok = sl_cors_origin_form(s, 10, &wild);
        int want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (ok != want) fail_msg("byte 0x%02x: %d", c, ok);
    }
}

static const sl_cors_origin_t origins[] = {
    {"https://app.example.com", 23, 0},
    {"https://*.example.org", 21, 8},
    {"http://*.local.test:8080", 24, 7},
    {"http://localhost:3000", 21, 0},
};

static int allowed(const sl_cors_t *c, const char *o)
{
    return sl_cors_origin_allowed(c, o, strlen(o));
}

static void test_origin_allowed(void **state)
{
    (void)state;
    sl_cors_t c = {.origins = origins, .n_origins = 4};
    const char *yes[] = {"https://app.example.com", "HTTPS://App.Example.COM", "https://a.example.org",
                         "https://a.b.c.example.org", "http://x.local.test:8080", "http://localhost:3000"};
    const char *no[] = {"https://app.example.com:443", "http://app.example.com", "https://app.example.co",
                        "https://app.example.comm", "https://example.org", "https://.example.org",
                        "https://aexample.org", "https://a.example.org.evil.net", "https://a.example.org:8443",
                        "http://x.local.test", "http://x.local.test:8081", "http://local.test:8080",
                        "https://*.example.org", "null", "", " https://app.example.com",
                        "https://app.example.com ", "https://app.example.com/", "https://evil.com/.example.org",
                        "https://app.example.com, https://app.example.com", "http://localhost:30000"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (!allowed(&c, yes[i])) fail_msg("refused %s", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (allowed(&c, no[i])) fail_msg("allowed %s", no[i]);
    /* "*" allows every origin, but only origins. */
    sl_cors_t any = {.any_origin = 1};
    assert_true(allowed(&any, "https://anyone.test"));
    assert_true(allowed(&any, "http://[::1]:9"));
    assert_false(allowed(&any, "null"));
    assert_false(allowed(&any, ""));
    assert_false(allowed(&any, "https://a, https://b"));
    assert_false(allowed(&any, "https://*.a"));
}

static void test_token_list(void **state)
{
    (void)state;
    const char *yes[] = {"x-a", "X-One,x-two , Content-Type", "a,b", " a ,\tb\t", "a"};
    const char *no[] = {"", " ", ",", "a,", ",a", "a,,b", "a b", "a:b", "a;b", "a,b c", "x\x01", "\"a\""};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (!sl_cors_token_list(yes[i], strlen(yes[i]))) fail_msg("refused %s", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (sl_cors_token_list(no[i], strlen(no[i]))) fail_msg("allowed %s", no[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origin_form),
        cmocka_unit_test(test_origin_allowed),
        cmocka_unit_test(test_token_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
