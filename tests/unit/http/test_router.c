#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "config/config.h"
#include "http/router.h"

static int R[32];

static void *match(sl_router_t *r, const char *host, const char *path, const char *method)
{
    return sl_router_match(r, host, strlen(host), path, strlen(path), sl_method_bit(method, strlen(method)));
}

static void test_precedence(void **state)
{
    (void)state;
    sl_router_t *r = sl_router_create();
    sl_router_add(r, NULL, "/", 0, &R[0]);
    sl_router_add(r, NULL, "/*", 0, &R[1]);
    sl_router_add(r, NULL, "/api/*", 0, &R[2]);
    sl_router_add(r, NULL, "/api/v1/*", 0, &R[3]);
    sl_router_add(r, NULL, "/api/v1/users", 0, &R[4]);
    sl_router_add(r, "*.example.org", "/api/*", 0, &R[5]);
    sl_router_add(r, "*.eu.example.org", "/api/*", 0, &R[6]);
    sl_router_add(r, "api.example.org", "/api/*", 0, &R[7]);

    assert_ptr_equal(match(r, "", "/", "GET"), &R[0]);
    assert_ptr_equal(match(r, "", "/x", "GET"), &R[1]);
    assert_ptr_equal(match(r, "", "/api", "GET"), &R[1]); /* the prefix route needs the slash after "/api" */
    assert_ptr_equal(match(r, "", "/api/", "GET"), &R[2]);
    assert_ptr_equal(match(r, "", "/api/v1/x/y", "GET"), &R[3]);
    assert_ptr_equal(match(r, "", "/api/v1/users", "GET"), &R[4]);
    assert_ptr_equal(match(r, "", "/api/v1/users/1", "GET"), &R[3]);
    /* exact host beats the wildcard; the longest wildcard suffix beats a shorter one */
    assert_ptr_equal(match(r, "api.example.org", "/api/x", "GET"), &R[7]);
    assert_ptr_equal(match(r, "a.eu.example.org", "/api/x", "GET"), &R[6]);
    assert_ptr_equal(match(r, "x.y.example.org", "/api/x", "GET"), &R[5]);
    assert_ptr_equal(match(r, "example.org", "/api/x", "GET"), &R[2]); /* the wildcard needs a label */
    /* a host whose paths do not match falls back to routes without hosts */
    assert_ptr_equal(match(r, "api.example.org", "/other", "GET"), &R[1]);
    sl_router_destroy(r);
}

static void test_methods(void **state)
{
    (void)state;
    sl_router_t *r = sl_router_create();
    sl_router_add(r, NULL, "/m", SL_METHOD_GET | SL_METHOD_HEAD, &R[0]);
    sl_router_add(r, NULL, "/m", SL_METHOD_POST, &R[1]);
    sl_router_add(r, NULL, "/*", SL_METHOD_DELETE, &R[2]);
    assert_ptr_equal(match(r, "", "/m", "GET"), &R[0]);
    assert_ptr_equal(match(r, "", "/m", "POST"), &R[1]);
    assert_ptr_equal(match(r, "", "/m", "DELETE"), &R[2]); /* falls through to the less specific path */
    assert_null(match(r, "", "/m", "PUT"));
    assert_null(match(r, "", "/m", "PURGE")); /* unknown methods only match routes without a list */
    sl_router_destroy(r);
}

static void test_many_routes(void **state)
{
    (void)state;
    sl_router_t *r = sl_router_create();
    static char names[20000][32];
    for (int i = 0; i < 10000; i++) {
        snprintf(names[i], sizeof(names[i]), "/svc%d/items", i);
        snprintf(names[10000 + i], sizeof(names[10000 + i]), "h%d.example.com", i);
        sl_router_add(r, names[10000 + i], names[i], 0, &R[i % 32]);
    }
    for (int i = 0; i < 10000; i += 997) {
        assert_ptr_equal(match(r, names[10000 + i], names[i], "GET"), &R[i % 32]);
        assert_null(match(r, names[10000 + ((i + 1) % 10000)], names[i], "GET"));
    }
    sl_router_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_many_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
