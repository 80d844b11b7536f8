/* sl_runtime_apply(): a configuration is served whole or refused whole, with its reasons, and a
 * refusal leaves the running generation serving. Everything here runs without opening a
 * listener: a running generation is published by hand with the addresses the applied
 * configurations keep, so only an address that cannot be bound is ever tried. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "config/config.h"
#include "observe/metrics.h"
#include "runtime/generation.h"
#include "runtime/runtime.h"
#include "runtime/server.h"
#include "upstream/health.h"
#include "upstream/resolver.h"

#define GATEWAY(listen, log) "gateway: {http: {listen: [\"" listen "\"]}, access_log: {path: \"" log "\"}}\n"
#define SERVICE(type, scheme)                                                                                          \
    "services:\n"                                                                                                      \
    "  - name: web\n"                                                                                                  \
    "    type: " type "\n"                                                                                             \
    "    upstream: {scheme: " scheme ", nodes: [{address: \"127.0.0.1:1\"}]}\n"
#define HTTP_ROUTE                                                                                                     \
    "    routes:\n"                                                                                                    \
    "      - name: r\n"                                                                                                \
    "        paths: [\"/*\"]\n"
#define STREAM_ROUTE                                                                                                   \
    "    routes:\n"                                                                                                    \
    "      - name: r\n"                                                                                                \
    "        server_addr: 127.0.0.1\n"                                                                                 \
    "        server_port: 15433\n"

#define RUNNING GATEWAY("127.0.0.1:18080", "off") SERVICE("http", "http") HTTP_ROUTE

static uv_loop_t loop;

static sl_config_t *load(const char *yaml)
{
    sl_config_t *cfg = NULL;
    sl_config_errors_t errs = {0};
    int rc = sl_config_load_buffer("gw.yaml", yaml, strlen(yaml), &cfg, &errs);
    char line[SL_CONFIG_ERROR_TEXT_MAX];
    for (size_t i = 0; i < errs.n; i++) fprintf(stderr, "  | %s\n", sl_config_errors_text(&errs, i, line));
    sl_config_errors_free(&errs);
    assert_int_equal(rc, 0);
    return cfg;
}

/* Publishes RUNNING as if it were serving; returns its id. */
static uint64_t run_generation(void)
{
    sl_config_errors_t errs = {0};
    sl_generation_t *g = sl_generation_create(load(RUNNING), &errs);
    assert_non_null(g);
    uint64_t id = g->id;
    sl_generation_publish(g);
    return id;
}

static uint64_t current_id(void)
{
    sl_generation_t *g = sl_generation_current();
    uint64_t id = g ? g->id : 0;
    sl_generation_release(g);
    return id;
}

static int teardown(void **state)
{
    (void)state;
    sl_health_sync(&loop, NULL);
    sl_generation_publish(NULL);
    return 0;
}

/* Applies yaml expecting a refusal whose one reason contains want. */
static void assert_refused(const char *yaml, const char *want)
{
    sl_config_errors_t errs = {0};
    assert_int_equal(sl_runtime_apply(load(yaml), &errs), -1); /* the configuration is freed */
    assert_int_equal(errs.n, 1);
    char line[SL_CONFIG_ERROR_TEXT_MAX];
    const char *got = sl_config_errors_text(&errs, 0, line);
    if (!strstr(got, want)) fail_msg("got \"%s\", want \"%s\" in it", got, want);
    sl_config_errors_free(&errs);
}

static void test_start_up_that_cannot_build_publishes_nothing(void **state)
{
    (void)state;
    assert_refused(GATEWAY("127.0.0.1:18080", "/nonexistent-sluice-dir/a.log") SERVICE("http", "http") HTTP_ROUTE,
                   "gateway.access_log.path: cannot open /nonexistent-sluice-dir/a.log");
    assert_int_equal(current_id(), 0);
}

static void test_reload_that_breaks_a_reload_rule_keeps_the_running_generation(void **state)
{
    (void)state;
    uint64_t id = run_generation();
    assert_refused(GATEWAY("127.0.0.1:18080", "off") SERVICE("stream", "tcp") STREAM_ROUTE,
                   "gw.yaml:4:11: services[0].type: service 'web' is http in the running configuration and cannot "
                   "become stream");
    assert_int_equal(current_id(), id);
}

static void test_reload_that_cannot_build_keeps_the_running_generation(void **state)
{
    (void)state;
    uint64_t id = run_generation();
    assert_refused(GATEWAY("127.0.0.1:18080", "/nonexistent-sluice-dir/a.log") SERVICE("http", "http") HTTP_ROUTE,
                   "gateway.access_log.path: cannot open /nonexistent-sluice-dir/a.log");
    assert_int_equal(current_id(), id);
}

/* 192.0.2.0/24 is TEST-NET-1: no interface has it, so the bind fails without any traffic. */
static void test_reload_with_an_address_that_cannot_be_bound_keeps_the_running_generation(void **state)
{
    (void)state;
    uint64_t id = run_generation();
    assert_refused(GATEWAY("192.0.2.1:18080", "off") SERVICE("http", "http") HTTP_ROUTE,
                   "gw.yaml: gateway.http.listen: cannot listen on 192.0.2.1:18080: ");
    assert_int_equal(current_id(), id);
}

static void test_reload_that_builds_is_published(void **state)
{
    (void)state;
    uint64_t id = run_generation();
    sl_config_errors_t errs = {0};
    assert_int_equal(sl_runtime_apply(load(RUNNING "      - name: r2\n        paths: [\"/two\"]\n"), &errs), 0);
    assert_int_equal(errs.n, 0);
    sl_generation_t *g = sl_generation_current();
    assert_true(g->id > id);
    assert_int_equal(g->n_routes, 2);
    assert_int_equal(g->n_workers, 1);
    sl_generation_release(g);
}

int main(void)
{
    sl_server_metrics_init();
    uv_loop_init(&loop);
    sl_runtime_init(&loop, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_start_up_that_cannot_build_publishes_nothing, teardown),
        cmocka_unit_test_teardown(test_reload_that_breaks_a_reload_rule_keeps_the_running_generation, teardown),
        cmocka_unit_test_teardown(test_reload_that_cannot_build_keeps_the_running_generation, teardown),
        cmocka_unit_test_teardown(test_reload_with_an_address_that_cannot_be_bound_keeps_the_running_generation,
                                  teardown),
        cmocka_unit_test_teardown(test_reload_that_builds_is_published, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sl_health_shutdown();
    sl_resolver_shutdown();
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    sl_metrics_destroy(sl_metrics.registry);
    return rc;
}
