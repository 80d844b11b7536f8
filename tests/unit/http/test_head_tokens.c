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
    assert_true(sl_head_has_token(&h, "upgrade", "websocket"));
    assert_true(sl_head_has_token(&h, "connection", "upgrade"));
    assert_true(sl_head_has_token(&h, "Upgrade", "h2c"));
    /* whole tokens only, and only in the named header */
    assert_false(sl_head_has_token(&h, "x-list", "websocket"));
    assert_false(sl_head_has_token(&h, "connection", "websocket"));
    assert_false(sl_head_has_token(&h, "upgrade", "web"));
    sl_head_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_has_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
