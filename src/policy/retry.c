/* retry: sends a failed try again, to another node where one is healthy, when the route's
 * conditions (Envoy's meanings) say so. The upstream client (h1_client.c) keeps the request
 * bytes to resend, proxy.c times the tries and waits out the back-off; this file holds the
 * decisions. */
#include "policy/policy.h"
#include "base/common.h"
#include "runtime/generation.h"
#include "runtime/server.h"

static const char *const reason_names[SL_TRY_RESULTS] = {
    [SL_TRY_CONNECT_FAILURE] = "connect-failure",
    [SL_TRY_RESET] = "reset",
    [SL_TRY_TIMEOUT] = "timeout",
    [SL_TRY_BAD_RESPONSE] = "bad-response",
    [SL_TRY_STATUS] = "status",
};

const char *sl_try_result_name(sl_try_result_t r)
{
    return reason_names[r];
}

int sl_retry_wanted(const sl_retry_cfg_t *rc, sl_try_result_t r, int status, int grpc_status)
{
    uint32_t on = rc->on;
    /* No usable response at all: 5xx and gateway-error include it, as in Envoy. */
    uint32_t no_response = SL_RETRY_5XX | SL_RETRY_GATEWAY_ERROR;
    switch (r) {
    case SL_TRY_CONNECT_FAILURE: return (on & (no_response | SL_RETRY_CONNECT_FAILURE)) != 0;
    case SL_TRY_RESET:
    case SL_TRY_TIMEOUT: return (on & (no_response | SL_RETRY_RESET)) != 0;
    case SL_TRY_BAD_RESPONSE: return (on & no_response) != 0;
    case SL_TRY_STATUS: break;
    default: return 0;
    }
    if ((on & SL_RETRY_5XX) && status >= 500 && status <= 599) return 1;
    if ((on & SL_RETRY_GATEWAY_ERROR) && (status == 502 || status == 503 || status == 504)) return 1;
    if (on & SL_RETRY_STATUS_CODES)
        for (size_t i = 0; i < rc->n_status_codes; i++)
            if (rc->status_codes[i] == status) return 1;
    switch (grpc_status) {
    case 1: return (on & SL_RETRY_GRPC_CANCELLED) != 0;
    case 4: return (on & SL_RETRY_GRPC_DEADLINE_EXCEEDED) != 0;
    case 8: return (on & SL_RETRY_GRPC_RESOURCE_EXHAUSTED) != 0;
    case 13: return (on & SL_RETRY_GRPC_INTERNAL) != 0;
    case 14: return (on & SL_RETRY_GRPC_UNAVAILABLE) != 0;
    default: return 0;
    }
}

uint64_t sl_retry_backoff_ms(const sl_retry_cfg_t *rc, unsigned n, uint64_t r)
{
    /* Full jitter: uniform in [0, min(max, base * 2^n)], so retries of many clients spread out. */
    uint64_t cap = rc->backoff_base_ms;
    for (unsigned i = 0; i < n && cap < rc->backoff_max_ms; i++) cap *= 2;
    if (cap > rc->backoff_max_ms) cap = rc->backoff_max_ms;
    return r % (cap + 1);
}

static int enabled(const sl_policies_cfg_t *pc)
{
    return pc->retry.enabled;
}

/* The route's sluice_http_retries_total series, by sl_try_result_t. */
static int init(const void *route, void **data)
{
    const sl_route_rt_t *rt = route;
    if (!sl_metrics.retries) return 0; /* no registry (unit tests) */
    sl_series_t **series = sl_xcalloc(SL_TRY_RESULTS, sizeof(*series));
    for (int r = 0; r < SL_TRY_RESULTS; r++) {
        const char *labels[] = {rt->svc->name, rt->cfg->name, reason_names[r]};
        series[r] = sl_metrics_series(sl_metrics.retries, labels);
    }
    *data = series;
    return 0;
}

static void destroy(void *data)
{
    free(data);
}

const sl_policy_ops_t sl_policy_retry = {
    .m = {.name = "retry", .init = init, .destroy = destroy},
    .enabled = enabled,
};

const sl_retry_cfg_t *sl_retry_settings(const sl_route_rt_t *rt)
{
    return rt->cfg->policies.retry.enabled ? &rt->cfg->policies.retry : NULL;
}

void sl_retry_count(const sl_route_rt_t *rt, sl_try_result_t r, unsigned worker)
{
    sl_series_t **series = sl_chain_data(&rt->chain, &sl_policy_retry.m);
    if (series && series[r]) sl_series_add(series[r], worker, 1);
}

/* ---- configuration: retry, read by the loader (config/schema.h) ---- */

#include "config/schema.h"
#include <string.h>

/* retry: Envoy's conditions; attempts are the retries after the first try. */
static const struct {
    const char *name;
    uint32_t bit;
} retry_conditions[] = {
    {"5xx", SL_RETRY_5XX},
    {"gateway-error", SL_RETRY_GATEWAY_ERROR},
    {"reset", SL_RETRY_RESET},
    {"connect-failure", SL_RETRY_CONNECT_FAILURE},
    {"refused-stream", SL_RETRY_REFUSED_STREAM},
    {"retriable-status-codes", SL_RETRY_STATUS_CODES},
    {"cancelled", SL_RETRY_GRPC_CANCELLED},
    {"deadline-exceeded", SL_RETRY_GRPC_DEADLINE_EXCEEDED},
    {"resource-exhausted", SL_RETRY_GRPC_RESOURCE_EXHAUSTED},
    {"internal", SL_RETRY_GRPC_INTERNAL},
    {"unavailable", SL_RETRY_GRPC_UNAVAILABLE},
};

static void parse_retry_on(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_retry_cfg_t *rc = base;
    if (sl_schema_list(v, n, 1) <= 0) return;
    size_t i = 0;
    for (const sl_config_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        const char *s = sl_schema_string(v, c, 0);
        size_t k = 0;
        while (s && k < SL_ARRAY_LEN(retry_conditions) && strcmp(s, retry_conditions[k].name))
            k++;
        if (s && k == SL_ARRAY_LEN(retry_conditions)) {
            sl_buf_t b = SL_BUF_INIT;
            for (size_t j = 0; j < SL_ARRAY_LEN(retry_conditions); j++)
                sl_buf_printf(&b, "%s%s", j ? ", " : "", retry_conditions[j].name);
            sl_schema_err(v, c, "unknown retry condition '%s' (expected one of: %s)", s, sl_buf_cstr(&b));
            sl_buf_free(&b);
        } else if (s) {
            rc->on |= retry_conditions[k].bit;
        }
        sl_schema_path_pop(v, old);
    }
}

static void parse_retry_codes(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_retry_cfg_t *rc = base;
    long cnt = sl_schema_list(v, n, 1);
    if (cnt <= 0) return;
    rc->status_codes = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*rc->status_codes));
    size_t i = 0;
    for (const sl_config_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        long long x;
        if (sl_schema_int(v, c, 200, 599, &x) == 0) rc->status_codes[rc->n_status_codes++] = (uint16_t)x;
        sl_schema_path_pop(v, old);
    }
}

static void parse_retry_body(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_schema_size(v, n, 64u << 20, &((sl_retry_cfg_t *)base)->body_buffer);
}

#define RT_OFF(m) offsetof(sl_retry_cfg_t, m)
static const sl_schema_field_t retry_backoff_fields[] = {
    {.name = "base", .type = SL_FIELD_DURATION, .off = RT_OFF(backoff_base_ms), .min = 1, .max = 60000, .def = 25},
    {.name = "max", .type = SL_FIELD_DURATION, .off = RT_OFF(backoff_max_ms), .min = 1, .max = 3600000, .def = 250},
};
static const sl_schema_section_t retry_backoff_section = SL_SCHEMA_SECTION(retry_backoff_fields);
static const sl_schema_field_t retry_fields[] = {
    {.name = "attempts", .type = SL_FIELD_U32, .off = RT_OFF(attempts), .min = 1, .max = 10, .def = 1},
    {.name = "per_try_timeout",
     .type = SL_FIELD_DURATION,
     .off = RT_OFF(per_try_timeout_ms),
     .min = 1,
     .max = SL_DAY_MS},
    {.name = "on", .type = SL_FIELD_CUSTOM, .custom = parse_retry_on, .required = 1},
    {.name = "status_codes", .type = SL_FIELD_CUSTOM, .custom = parse_retry_codes},
    {.name = "backoff", .type = SL_FIELD_SECTION, .sub = &retry_backoff_section},
    {.name = "body_buffer", .type = SL_FIELD_CUSTOM, .custom = parse_retry_body},
};
static const sl_schema_section_t retry_section = SL_SCHEMA_SECTION(retry_fields);

void sl_policy_retry_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc)
{
    sl_retry_cfg_t *rc = &pc->retry;
    sl_schema_defaults(v, &retry_section, rc);
    rc->body_buffer = 64 * 1024;
    sl_schema_parse(v, n, &retry_section, rc);
    rc->enabled = 1;
    if (n->kind != SL_NODE_MAP) return; /* reported */
    const sl_config_node_t *codes = sl_node_get(n, "status_codes");
    if ((rc->on & SL_RETRY_STATUS_CODES) && !codes) {
        size_t old = sl_schema_path_key(v, "on");
        sl_schema_err(v, sl_node_get(n, "on"), "'retriable-status-codes' needs 'status_codes', the statuses to retry");
        sl_schema_path_pop(v, old);
    } else if (codes && !(rc->on & SL_RETRY_STATUS_CODES)) {
        size_t old = sl_schema_path_key(v, "status_codes");
        sl_schema_err(v, codes, "has no effect unless 'on' lists 'retriable-status-codes'");
        sl_schema_path_pop(v, old);
    }
    if (rc->backoff_max_ms < rc->backoff_base_ms) {
        size_t old = sl_schema_path_key(v, "backoff");
        sl_schema_err(v, sl_node_get(n, "backoff"), "'max' must not be less than 'base'");
        sl_schema_path_pop(v, old);
    }
}
