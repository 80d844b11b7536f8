#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "http/h1_internal.h"

static void add(sl_head_t *h, const char *name, const char *value)
{
    sl_head_field(h, name, strlen(name));
    sl_head_value(h, value, strlen(value));
    sl_head_value_done(h);
}

static void test_has_token(void **state)
{
    (void)state;
    sl_head_t h = {0};
    add(&h, "Connection", "keep-alive, Upgrade");
    add(&h, "UPGRADE", " h2c ,WebSocket ");
    add(&h, "X-List", "websocketx, xwebsocket");
    /* The frozen head as the proxy sees it: a header vector. */
    sl_arena_t a = {0};
    sl_http_hdrs_t v = {0};
    sl_head_to_hdrs(&h, &v, &a);
    assert_true(sl_http_hdrs_has_token(&v, "upgrade", "websocket"));
    assert_true(sl_http_hdrs_has_token(&v, "connection", "upgrade"));
    assert_true(sl_http_hdrs_has_token(&v, "Upgrade", "h2c"));
    /* whole tokens only, and only in the named header */
    assert_false(sl_http_hdrs_has_token(&v, "x-list", "websocket"));
    assert_false(sl_http_hdrs_has_token(&v, "connection", "websocket"));
    assert_false(sl_http_hdrs_has_token(&v, "upgrade", "web"));
    sl_arena_reset(&a);
    sl_head_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_has_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
