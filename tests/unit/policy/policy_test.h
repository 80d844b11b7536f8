/* Shared by the policy unit tests: a one-route configuration with the given policies, its
 * chain built, and the configuration errors of a policies map. The policies map is written on
 * line 6, from column 19 (see the template). Include after cmocka.h. */
#ifndef SL_TEST_POLICY_TEST_H
#define SL_TEST_POLICY_TEST_H

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "policy/policy.h"
#include "runtime/generation.h"

static inline int policy_yaml(char *out, size_t size, const char *upstream_extra, const char *policies)
{
    return snprintf(out, size,
                    "services:\n  - name: s\n    upstream: {nodes: [\"127.0.0.1:1\"]%s%s}\n"
                    "    routes:\n      - paths: [\"/*\"]\n        policies: %s\n",
                    *upstream_extra ? ", " : "", upstream_extra, policies);
}

/* Loads the configuration (upstream_extra: more keys of the upstream map, or "") and builds
 * the route's chain into rt; fails the test when it does not load. */
static inline sl_config_t *policy_load_with(const char *upstream_extra, const char *policies, sl_route_rt_t *rt)
{
    char yaml[4096];
    policy_yaml(yaml, sizeof(yaml), upstream_extra, policies);
    sl_config_t *cfg = NULL;
    sl_config_errors_t errs = {0};
    if (sl_config_load_buffer("p.yaml", yaml, strlen(yaml), &cfg, &errs) != 0) {
        char line[SL_CONFIG_ERROR_TEXT_MAX];
        for (size_t i = 0; i < errs.n; i++) fprintf(stderr, "%s\n", sl_config_errors_text(&errs, i, line));
        sl_config_errors_free(&errs);
        fail();
    }
    memset(rt, 0, sizeof(*rt));
    rt->cfg = &cfg->services[0].routes[0];
    rt->svc = &cfg->services[0];
    assert_int_equal(sl_policy_chain_init(rt, &errs), 0);
    return cfg;
}

static inline sl_config_t *policy_load(const char *policies, sl_route_rt_t *rt)
{
    return policy_load_with("", policies, rt);
}

/* The configuration must be refused with an error line containing want. */
static inline void policy_expect_error(const char *policies, const char *want)
{
    char yaml[4096];
    policy_yaml(yaml, sizeof(yaml), "", policies);
    sl_config_t *cfg = NULL;
    sl_config_errors_t errs = {0};
    assert_int_equal(sl_config_load_buffer("p.yaml", yaml, strlen(yaml), &cfg, &errs), -1);
    int found = 0;
    char line[SL_CONFIG_ERROR_TEXT_MAX];
    for (size_t i = 0; i < errs.n; i++) found |= strstr(sl_config_errors_text(&errs, i, line), want) != NULL;
    if (!found) {
        fprintf(stderr, "want: %s\n", want);
        for (size_t i = 0; i < errs.n; i++) fprintf(stderr, "got: %s\n", sl_config_errors_text(&errs, i, line));
    }
    sl_config_errors_free(&errs);
    assert_true(found);
}

#endif
