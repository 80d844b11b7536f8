/* The listener-kind table: every kind has a row, and each row has what runtime/ calls without
 * checking (runtime/listen_kind.h). A kind added to sl_listen_kind_t without its row, or a row
 * missing a required hook, would crash the first worker that reaches it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "runtime/listen_kind.h"

static void test_every_kind_has_its_required_hooks(void **state)
{
    (void)state;
    for (int k = 0; k < SL_LISTEN_KINDS; k++) {
        const sl_listener_ops_t *o = sl_listen_kind(k);
        assert_non_null(o);
        assert_non_null(o->name);
        assert_non_null(o->config_path);
        assert_non_null(o->note);
        assert_non_null(o->prepare);
        assert_non_null(o->close_all);
        assert_non_null(o->drained);
        /* Either runtime/ holds the kind's sockets and hands it connections, or the kind keeps
         * its own sockets in step with the generation: never both, never neither. */
        assert_true(!o->accept != !o->sync);
    }
}

static void test_reload_log_names_stay(void **state)
{
    (void)state;
    /* "reload: listening on ADDR (http)" and the start-up lines are read by operators and tests. */
    assert_string_equal(sl_listen_kind(SL_LISTEN_HTTP)->name, "http");
    assert_string_equal(sl_listen_kind(SL_LISTEN_STREAM_TCP)->name, "tcp");
    assert_string_equal(sl_listen_kind(SL_LISTEN_STREAM_UDP)->name, "udp");
    assert_true(sl_listen_kind(SL_LISTEN_STREAM_UDP)->datagram);
    assert_false(sl_listen_kind(SL_LISTEN_STREAM_TCP)->datagram);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kind_has_its_required_hooks),
        cmocka_unit_test(test_reload_log_names_stay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
