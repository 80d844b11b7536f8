/* Shared by the policy unit tests: a one-route configuration with the given policies, its
 * chain built, and the configuration errors of a policies map. The policies map is written on
 * line 6, from column 19 (see the template). Include after cmocka.h. */
#ifndef SL_TEST_POLICY_TEST_H
#define SL_TEST_POLICY_TEST_H

#include <stdio.h>
#include <string.h>

#include "base/arena.h"
#include "base/buf.h"
#include "config/config.h"
#include "http/request.h"
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

/* Renders h as "Name: value\r\n" lines into out (emptied first); returns out's text. */
static inline const char *policy_hdrs_text(const sl_http_hdrs_t *h, sl_buf_t *out)
{
    out->len = 0;
    for (uint32_t i = 0; i < h->n; i++) {
        sl_buf_append(out, h->v[i].name, h->v[i].name_len);
        sl_buf_puts(out, ": ");
        sl_buf_append(out, h->v[i].value, h->v[i].value_len);
        sl_buf_puts(out, "\r\n");
    }
    return sl_buf_cstr(out);
}

/* Fills h from NULL-terminated name, value pairs (borrowed). */
static inline void policy_hdrs_fill(sl_http_hdrs_t *h, sl_arena_t *a, const char *const *pairs)
{
    memset(h, 0, sizeof(*h));
    for (size_t i = 0; pairs && pairs[i]; i += 2)
        sl_http_hdrs_add(h, a, pairs[i], strlen(pairs[i]), pairs[i + 1], strlen(pairs[i + 1]));
}

/* The response phase over a response with the fields in pairs (local: the gateway's own
 * answer): the fields the client gets, as text in out. */
static inline const char *policy_response(const sl_route_rt_t *rt, const sl_policy_state_t *st, int local,
                                          const char *const *pairs, sl_buf_t *out)
{
    sl_arena_t a;
    sl_arena_init(&a, 0);
    sl_http_resp_t r = {.status = 200, .local = local ? 1 : 0};
    policy_hdrs_fill(&r.hdrs, &a, pairs);
    sl_policy_on_response_headers(rt, st, &r, &a);
    policy_hdrs_text(&r.hdrs, out);
    sl_arena_reset(&a);
    return sl_buf_cstr(out);
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
