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
static int init(const sl_route_rt_t *rt, void **data)
{
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
    .name = "retry",
    .enabled = enabled,
    .init = init,
    .destroy = destroy,
};

void sl_retry_count(const sl_route_rt_t *rt, sl_try_result_t r, unsigned worker)
{
    for (size_t i = 0; i < rt->n_chain; i++) {
        if (rt->chain[i] != &sl_policy_retry) continue;
        sl_series_t **series = rt->chain_data[i];
        if (series && series[r]) sl_series_add(series[r], worker, 1);
        return;
    }
}
