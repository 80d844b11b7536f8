/* path_rewrite: replace a prefix ({prefix, replace}) or a PCRE2 match ({regex, replace} with
 * $1.. groups) in the path sent upstream; the query string is kept by the caller. A path the
 * rule does not match goes unchanged. */
#include "policy/policy.h"
#include "policy/regex.h"
#include "runtime/generation.h"

#include <string.h>

static int enabled(const sl_policies_cfg_t *pc)
{
    return pc->path_rewrite.enabled;
}

/* The compiled regex ({regex, replace}), or NULL for a prefix rule. */
static int init(const void *route, void **data)
{
    const sl_route_rt_t *rt = route;
    const char *re = rt->cfg->policies.path_rewrite.regex;
    if (!re) return 0;
    *data = sl_regex_compile(re);
    return *data ? 0 : -1;
}

static void destroy(void *data)
{
    sl_regex_free(data);
}

static int rewrite(const sl_route_rt_t *rt, void *data, const char *path, size_t len, sl_buf_t *out)
{
    const char *replace = rt->cfg->policies.path_rewrite.replace;
    out->len = 0;
    if (data) return sl_regex_replace(data, path, len, replace, out) > 0;
    const char *prefix = rt->cfg->policies.path_rewrite.prefix;
    size_t pl = strlen(prefix), rl = strlen(replace);
    if (len < pl || memcmp(path, prefix, pl) != 0) return 0;
    const char *rest = path + pl;
    size_t restl = len - pl;
    /* "/users" -> "/v1/users": "/users/1" keeps its "/1"; avoid "//" when both sides have one. */
    if (rl && replace[rl - 1] == '/' && restl && rest[0] == '/') {
        rest++;
        restl--;
    }
    sl_buf_append(out, replace, rl);
    sl_buf_append(out, rest, restl);
    return 1;
}

/* The rewritten path goes into the arena; the thread's scratch buffer holds it meanwhile. */
static void on_upstream_request(const sl_route_rt_t *rt, void *data, sl_http_req_t *up, sl_arena_t *a)
{
    sl_buf_t *out = sl_buf_thread_scratch();
    if (!rewrite(rt, data, up->path, up->path_len, out)) return;
    char *p = sl_arena_alloc(a, out->len + 1);
    memcpy(p, out->data, out->len);
    up->path = p;
    up->path_len = out->len;
}

const sl_policy_ops_t sl_policy_path_rewrite = {
    .m = {.name = "path_rewrite", .init = init, .destroy = destroy},
    .enabled = enabled,
    .on_upstream_request = on_upstream_request,
};

/* ---- configuration: path_rewrite, read by the loader (config/schema.h) ---- */

#include "config/schema.h"

#define PR_OFF(m) offsetof(sl_policies_cfg_t, path_rewrite.m)
static const sl_schema_field_t path_rewrite_fields[] = {
    {.name = "prefix", .type = SL_FIELD_STRING, .off = PR_OFF(prefix)},
    {.name = "regex", .type = SL_FIELD_STRING, .off = PR_OFF(regex)},
    {.name = "replace", .type = SL_FIELD_STRING, .off = PR_OFF(replace), .required = 1},
};
static const sl_schema_section_t path_rewrite_section = SL_SCHEMA_SECTION(path_rewrite_fields);

void sl_policy_path_rewrite_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc)
{
    sl_schema_parse(v, n, &path_rewrite_section, pc);
    pc->path_rewrite.enabled = 1;
    if (!pc->path_rewrite.prefix == !pc->path_rewrite.regex) {
        sl_schema_err(v, n, "needs exactly one of 'prefix' and 'regex'");
        return;
    }
    if (pc->path_rewrite.prefix && pc->path_rewrite.prefix[0] != '/') {
        size_t old = sl_schema_path_key(v, "prefix");
        sl_schema_err(v, sl_node_get(n, "prefix"), "must start with '/'");
        sl_schema_path_pop(v, old);
    }
    if (pc->path_rewrite.replace && pc->path_rewrite.replace[0] != '/') {
        size_t old = sl_schema_path_key(v, "replace");
        sl_schema_err(v, sl_node_get(n, "replace"), "must start with '/': the result is the path sent upstream");
        sl_schema_path_pop(v, old);
    }
    if (pc->path_rewrite.regex) {
        char why[160];
        if (sl_regex_check(pc->path_rewrite.regex, why, sizeof(why)) != 0) {
            size_t old = sl_schema_path_key(v, "regex");
            sl_schema_err(v, sl_node_get(n, "regex"), "%s", why);
            sl_schema_path_pop(v, old);
        }
    }
}
