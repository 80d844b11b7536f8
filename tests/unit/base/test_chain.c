#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/chain.h"

/* What the fake modules did, in order: "+a" for an init, "-a" for a destroy. */
static char trace[256];

static void note(const char *what, const char *name)
{
    strcat(trace, what);
    strcat(trace, name);
    strcat(trace, " ");
}

static int ok_init(const void *route, void **data)
{
    (void)route;
    *data = (void *)"state";
    note("+", "ok");
    return 0;
}

static int bad_init(const void *route, void **data)
{
    (void)route;
    (void)data;
    note("+", "bad");
    return -1;
}

static void destroy(void *data)
{
    assert_string_equal(data, "state");
    note("-", "ok");
}

static const sl_module_t a = {"a", ok_init, destroy}, b = {"b", ok_init, destroy}, bad = {"bad", bad_init, destroy},
                         stateless = {"stateless", NULL, NULL};

static void test_built_in_order_with_their_state(void **state)
{
    (void)state;
    trace[0] = 0;
    const sl_module_t *mods[] = {&a, &stateless, &b, &bad};
    const unsigned char on[] = {1, 1, 1, 0}; /* bad is not enabled: never initialised */
    sl_chain_t c;
    assert_null(sl_chain_build(&c, mods, on, 4, NULL));
    assert_int_equal(c.n, 3);
    assert_ptr_equal(c.mods[0], &a);
    assert_ptr_equal(c.mods[1], &stateless);
    assert_ptr_equal(c.mods[2], &b);
    assert_string_equal(sl_chain_data(&c, &b), "state");
    assert_null(sl_chain_data(&c, &stateless));
    assert_null(sl_chain_data(&c, &bad));
    sl_chain_destroy(&c);
    assert_int_equal(c.n, 0);
    assert_string_equal(trace, "+ok +ok -ok -ok ");
}

/* One module that cannot initialise: none is left, and those before it are destroyed. */
static void test_whole_or_nothing(void **state)
{
    (void)state;
    trace[0] = 0;
    const sl_module_t *mods[] = {&a, &b, &bad, &a};
    const unsigned char on[] = {1, 1, 1, 1};
    sl_chain_t c;
    assert_ptr_equal(sl_chain_build(&c, mods, on, 4, NULL), &bad);
    assert_int_equal(c.n, 0);
    assert_string_equal(trace, "+ok +ok +bad -ok -ok ");
}

static void test_more_than_it_holds(void **state)
{
    (void)state;
    const sl_module_t *mods[SL_CHAIN_MAX + 1];
    unsigned char on[SL_CHAIN_MAX + 1];
    for (size_t i = 0; i <= SL_CHAIN_MAX; i++) {
        mods[i] = &stateless;
        on[i] = 1;
    }
    sl_chain_t c;
    assert_ptr_equal(sl_chain_build(&c, mods, on, SL_CHAIN_MAX, NULL), NULL);
    assert_int_equal(c.n, SL_CHAIN_MAX);
    assert_ptr_equal(sl_chain_build(&c, mods, on, SL_CHAIN_MAX + 1, NULL), &stateless);
    assert_int_equal(c.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_built_in_order_with_their_state),
        cmocka_unit_test(test_whole_or_nothing),
        cmocka_unit_test(test_more_than_it_holds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
