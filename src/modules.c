/* The registry (modules.h). The HTTP order is the chain's: ip_access first, so a denied client
 * is told nothing else; cors before the rate limit, so a preflight takes no token; the proxy
 * policies; then the response policies. */
#include "modules.h"

#include "base/common.h"
#include "runtime/generation.h"

/* A policy that owns its settings' type is declared here, not in a shared header. */
extern const sl_policy_ops_t sl_policy_cors;
const void *sl_policy_cors_read(sl_schema_ctx_t *v, const sl_config_node_t *n);

const sl_policy_module_t sl_policy_modules[] = {
    {&sl_policy_ip_access, sl_policy_ip_access_parse, NULL},
    {&sl_policy_cors, NULL, sl_policy_cors_read},
    {&sl_policy_local_rate_limit, sl_policy_local_rate_limit_parse, NULL},
    {&sl_policy_path_rewrite, sl_policy_path_rewrite_parse, NULL},
    {&sl_policy_request_headers, sl_policy_request_headers_parse, NULL},
    {&sl_policy_timeout, sl_policy_timeout_parse, NULL},
    {&sl_policy_retry, sl_policy_retry_parse, NULL},
    {&sl_policy_websocket, sl_policy_websocket_parse, NULL},
    {&sl_policy_response_headers, sl_policy_response_headers_parse, NULL},
    {&sl_policy_cookie_rewrite, sl_policy_cookie_rewrite_parse, NULL},
};
const size_t sl_n_policy_modules = SL_ARRAY_LEN(sl_policy_modules);

/* prometheus first, so that refused sessions are counted too; syslog last: its on_log sends
 * the session's message. */
const sl_stream_plugin_module_t sl_stream_plugin_modules[] = {
    {&sl_stream_prometheus, sl_stream_prometheus_parse},
    {&sl_stream_ip_restriction, sl_stream_ip_restriction_parse},
    {&sl_stream_limit_conn, sl_stream_limit_conn_parse},
    {&sl_stream_syslog, sl_stream_syslog_parse},
};
const size_t sl_n_stream_plugin_modules = SL_ARRAY_LEN(sl_stream_plugin_modules);

const sl_schema_choice_t sl_balancer_choices[] = {
    {"random", SL_BALANCE_RANDOM, NULL},     {"round_robin", SL_BALANCE_ROUND_ROBIN, NULL},
    {"weighted", SL_BALANCE_WEIGHTED, NULL}, {"cookie", SL_BALANCE_COOKIE, NULL},
    {"hash", SL_BALANCE_HASH, NULL},         {"least_conn", SL_BALANCE_LEAST_CONN, NULL},
    {"ewma", SL_BALANCE_EWMA, NULL},         {NULL, 0, NULL},
};

const sl_balancer_ops_t *sl_balancer_of(int balance)
{
    static const sl_balancer_ops_t *const ops[] = {
        [SL_BALANCE_RANDOM] = &sl_balancer_random,         [SL_BALANCE_ROUND_ROBIN] = &sl_balancer_round_robin,
        [SL_BALANCE_WEIGHTED] = &sl_balancer_weighted,     [SL_BALANCE_COOKIE] = &sl_balancer_hash,
        [SL_BALANCE_HASH] = &sl_balancer_hash,             [SL_BALANCE_LEAST_CONN] = &sl_balancer_least_conn,
        [SL_BALANCE_EWMA] = &sl_balancer_ewma,
    };
    return balance >= 0 && (size_t)balance < SL_ARRAY_LEN(ops) ? ops[balance] : NULL;
}

_Static_assert(SL_ARRAY_LEN(sl_stream_plugin_modules) <= SL_STREAM_PLUGIN_MAX, "a stream route's chain cannot hold them all");
_Static_assert(SL_ARRAY_LEN(sl_policy_modules) <= SL_POLICY_MODULES_MAX, "SL_POLICY_MODULES_MAX is too small");
_Static_assert(SL_ARRAY_LEN(sl_policy_modules) <= SL_POLICY_MAX, "a route's chain (SL_POLICY_MAX) cannot hold them all");
