/* A generation is built whole or not at all (issue 9): a route whose policy does not initialise,
 * a stream plugin that does not, an access log that cannot be opened, each makes
 * sl_generation_create() refuse the whole generation instead of publishing it with a hole.
 * Validation normally keeps such configurations out, so the tests break a loaded one by hand:
 * that is the runtime's last line, which must not fail open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <unistd.h>

#include "config/config.h"
#include "observe/access_log.h"
#include "observe/metrics.h"
#include "policy/policy.h"
#include "runtime/generation.h"
#include "runtime/server.h"

#define HTTP_SVC                                                                                                       \
    "gateway: {http: {listen: [\"127.0.0.1:8080\"]}, access_log: {path: \"off\"}}\n"                                   \
    "services:\n"                                                                                                      \
    "  - name: web\n"                                                                                                  \
    "    upstream: {nodes: [{address: \"127.0.0.1:1\"}]}\n"                                                            \
    "    routes:\n"                                                                                                    \
    "      - name: admin\n"                                                                                            \
    "        paths: [\"/admin/*\"]\n"                                                                                  \
    "        policies:\n"                                                                                              \
    "          ip_access: {deny: [\"10.0.0.0/8\", \"192.0.2.1\"]}\n"                                                   \
    "      - name: rewrite\n"                                                                                          \
    "        paths: [\"/old/*\"]\n"                                                                                    \
    "        policies:\n"                                                                                              \
    "          path_rewrite: {regex: \"^/old/(.*)\", replace: \"/new/$1\"}\n"

static sl_config_t *load(const char *yaml)
{
    sl_config_t *cfg = NULL;
    sl_config_errors_t errs = {0};
    int rc = sl_config_load_buffer("gw.yaml", yaml, strlen(yaml), &cfg, &errs);
    char line[SL_CONFIG_ERROR_TEXT_MAX];
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "  | %s\n", sl_config_errors_text(&errs, i, line));
    sl_config_errors_free(&errs);
    assert_int_equal(rc, 0);
    return cfg;
}

/* Builds cfg expecting a refusal whose one reason is want. */
static void assert_refused(sl_config_t *cfg, const char *want)
{
    sl_config_errors_t errs = {0};
    assert_null(sl_generation_create(cfg, &errs)); /* cfg is freed */
    assert_int_equal(errs.n, 1);
    char line[SL_CONFIG_ERROR_TEXT_MAX];
    assert_string_equal(sl_config_errors_text(&errs, 0, line), want);
    sl_config_errors_free(&errs);
}

static void test_whole_configuration_builds(void **state)
{
    (void)state;
    sl_config_errors_t errs = {0};
    sl_generation_t *g = sl_generation_create(load(HTTP_SVC), &errs);
    assert_non_null(g);
    assert_int_equal(errs.n, 0);
    assert_int_equal(g->n_routes, 2);
    assert_int_equal(g->routes[0].chain.n, 1);
    assert_int_equal(g->routes[1].chain.n, 1);
    sl_generation_release(g);
}

static void test_policy_that_does_not_initialise_refuses_the_generation(void **state)
{
    (void)state;
    sl_config_t *cfg = load(HTTP_SVC);
    cfg->services[0].routes[1].policies.path_rewrite.regex = "(unclosed";
    assert_refused(cfg, "service web, route rewrite: policy path_rewrite failed to initialise");
}

static void test_deny_entry_that_does_not_parse_refuses_the_generation(void **state)
{
    (void)state;
    sl_config_t *cfg = load(HTTP_SVC);
    /* Skipping it would leave a deny list that admits the address it names. */
    cfg->services[0].routes[0].policies.ip_access.cidrs[1] = "not-an-address";
    assert_refused(cfg, "service web, route admin: policy ip_access failed to initialise");
}

static void test_access_log_that_cannot_open_refuses_the_generation(void **state)
{
    (void)state;
    sl_config_t *cfg = load(HTTP_SVC);
    cfg->gateway.access_log.path = "/nonexistent-sluice-dir/access.log";
    assert_refused(cfg, "gateway.access_log.path: cannot open /nonexistent-sluice-dir/access.log");
}

static void test_stream_plugin_that_does_not_initialise_refuses_the_generation(void **state)
{
    (void)state;
    sl_config_t *cfg = load("gateway: {http: {listen: [\"127.0.0.1:8080\"]}, access_log: {path: \"off\"}}\n"
                            "services:\n"
                            "  - name: db\n"
                            "    type: stream\n"
                            "    upstream: {scheme: tcp, nodes: [\"127.0.0.1:1\"]}\n"
                            "    routes:\n"
                            "      - name: db\n"
                            "        server_addr: 127.0.0.1\n"
                            "        server_port: 15432\n"
                            "        plugins:\n"
                            "          ip-restriction: {whitelist: [\"127.0.0.1\"]}\n"
                            "          syslog: {host: no-such-host.invalid, port: 514}\n");
    assert_refused(cfg, "stream route db: plugin syslog failed to initialise");
}

/* What a reload keeps (base/keeper.h): a generation built while another lives shares its
 * access log when the path is the same and its rate-limit buckets when the settings are. */
static sl_config_t *kept_cfg(const char *log_path, int requests)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "gateway: {http: {listen: [\"127.0.0.1:8080\"]}, access_log: {path: \"%s\"}}\n"
             "services:\n"
             "  - name: web\n"
             "    upstream: {nodes: [{address: \"127.0.0.1:1\"}]}\n"
             "    routes:\n"
             "      - name: limited\n"
             "        paths: [\"/*\"]\n"
             "        policies:\n"
             "          local_rate_limit: {requests: %d, per: minute}\n",
             log_path, requests);
    return load(yaml);
}

/* The first route's local_rate_limit state (its chain's, opaque to all but the policy). */
static void *limiter(const sl_generation_t *g)
{
    const sl_route_rt_t *rt = &g->routes[0];
    return sl_chain_data(&rt->chain, &sl_policy_local_rate_limit.m);
}

static void test_state_kept_across_generations(void **state)
{
    (void)state;
    char a[64], b[64];
    snprintf(a, sizeof(a), "/tmp/sluice-gen-a-%d.log", (int)getpid());
    snprintf(b, sizeof(b), "/tmp/sluice-gen-b-%d.log", (int)getpid());
    sl_config_errors_t errs = {0};
    sl_generation_t *g1 = sl_generation_create(kept_cfg(a, 5), &errs);
    sl_generation_t *g2 = sl_generation_create(kept_cfg(a, 5), &errs);
    assert_non_null(g1);
    assert_non_null(g2);
    assert_ptr_equal(g1->access_log, g2->access_log);
    assert_non_null(limiter(g1));
    assert_ptr_equal(limiter(g1), limiter(g2));
    sl_generation_t *g3 = sl_generation_create(kept_cfg(b, 6), &errs);
    assert_non_null(g3);
    assert_ptr_not_equal(g3->access_log, g2->access_log);
    assert_ptr_not_equal(limiter(g3), limiter(g2));
    /* The first generation goes: the second keeps what it shared. */
    sl_generation_release(g1);
    sl_generation_t *g4 = sl_generation_create(kept_cfg(a, 5), &errs);
    assert_ptr_equal(g4->access_log, g2->access_log);
    assert_ptr_equal(limiter(g4), limiter(g2));
    sl_generation_release(g2);
    sl_generation_release(g3);
    sl_generation_release(g4);
    assert_int_equal(sl_access_log_wait_closed(5000), 0);
    unlink(a);
    unlink(b);
}

int main(void)
{
    sl_server_metrics_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_configuration_builds),
        cmocka_unit_test(test_policy_that_does_not_initialise_refuses_the_generation),
        cmocka_unit_test(test_deny_entry_that_does_not_parse_refuses_the_generation),
        cmocka_unit_test(test_access_log_that_cannot_open_refuses_the_generation),
        cmocka_unit_test(test_stream_plugin_that_does_not_initialise_refuses_the_generation),
        cmocka_unit_test(test_state_kept_across_generations),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sl_metrics_destroy(sl_metrics.registry);
    return rc;
}
