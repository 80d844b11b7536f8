/* The policies of an http route (see src/policy/): one reader per policy into its settings in
 * sl_policies_cfg_t, and the map that names them. */
#include "config/schema.h"

#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/cidr.h"
#include "policy/regex.h"

/* The names a route's policies map takes. */
static const char *const policy_names[] = {"ip_access",       "local_rate_limit", "path_rewrite",
                                           "request_headers", "timeout",          "retry",
                                           "websocket",       "response_headers", "cookie_rewrite"};

static void parse_hdr_set(sl_schema_ctx_t *v, const sl_node_t *n, void *base)
{
    sl_header_ops_cfg_t *h = base;
    sl_schema_header_map(v, n, &h->set, &h->n_set, 1);
}

static void parse_hdr_add(sl_schema_ctx_t *v, const sl_node_t *n, void *base)
{
    sl_header_ops_cfg_t *h = base;
    sl_schema_header_map(v, n, &h->add, &h->n_add, 1);
}

static void parse_hdr_remove(sl_schema_ctx_t *v, const sl_node_t *n, void *base)
{
    sl_header_ops_cfg_t *h = base;
    long cnt = sl_schema_list(v, n, 1);
    if (cnt <= 0) return;
    h->remove = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*h->remove));
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        const char *name = sl_schema_string(v, c, 0);
        int ok = name && sl_schema_is_token(name);
        if (name && !ok)
            sl_schema_err(v, c, "invalid header name");
        else if (name && (sl_schema_is_hop_by_hop(name) || !strcasecmp(name, "content-length")))
            sl_schema_err(v, c, "is managed by the gateway and cannot be removed");
        else if (name && !strcasecmp(name, "host"))
            sl_schema_err(v, c, "HTTP/1.1 requires Host: set it to another value instead");
        else if (name)
            h->remove[h->n_remove++] = name;
        sl_schema_path_pop(v, old);
    }
}

static const sl_schema_field_t header_ops_fields[] = {
    {.name = "set", .type = SL_FIELD_CUSTOM, .custom = parse_hdr_set},
    {.name = "add", .type = SL_FIELD_CUSTOM, .custom = parse_hdr_add},
    {.name = "remove", .type = SL_FIELD_CUSTOM, .custom = parse_hdr_remove},
};
static const sl_schema_section_t header_ops_section = SL_SCHEMA_SECTION(header_ops_fields);

#define PR_OFF(m) offsetof(sl_policies_cfg_t, path_rewrite.m)
static const sl_schema_field_t path_rewrite_fields[] = {
    {.name = "prefix", .type = SL_FIELD_STRING, .off = PR_OFF(prefix)},
    {.name = "regex", .type = SL_FIELD_STRING, .off = PR_OFF(regex)},
    {.name = "replace", .type = SL_FIELD_STRING, .off = PR_OFF(replace), .required = 1},
};
static const sl_schema_section_t path_rewrite_section = SL_SCHEMA_SECTION(path_rewrite_fields);

static void parse_path_rewrite(sl_schema_ctx_t *v, const sl_node_t *n, sl_policies_cfg_t *pc)
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

static void parse_cidr_list(sl_schema_ctx_t *v, const sl_node_t *n, const char ***out, size_t *n_out)
{
    long cnt = sl_schema_list(v, n, 0);
    if (cnt <= 0) return;
    *out = sl_arena_calloc(v->a, (size_t)cnt * sizeof(**out));
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        const char *s = sl_schema_string(v, c, 0);
        sl_ip_t ip;
        int prefix;
        if (s && sl_cidr_parse(s, &ip, &prefix) != 0)
            sl_schema_err(v, c, "expected an IPv4 or IPv6 address or CIDR (10.0.0.0/8, 2001:db8::/32), got '%s'", s);
        else if (s)
            (*out)[(*n_out)++] = s;
        sl_schema_path_pop(v, old);
    }
}

static void parse_ip_access(sl_schema_ctx_t *v, const sl_node_t *n, sl_policies_cfg_t *pc)
{
    if (n->kind != SL_NODE_MAP) {
        sl_schema_err(v, n, "expected a map with 'allow' or 'deny', got %s", sl_node_kind_name(n));
        return;
    }
    const sl_node_t *allow = sl_node_get(n, "allow"), *deny = sl_node_get(n, "deny"),
                    *source = sl_node_get(n, "source");
    for (const sl_node_t *c = n->first; c; c = c->next)
        if (strcmp(c->key, "allow") && strcmp(c->key, "deny") && strcmp(c->key, "source")) {
            size_t old = sl_schema_path_key(v, c->key);
            sl_schema_err_at(v, c->key_line, c->key_col, "unknown key (expected one of: allow, deny, source)");
            sl_schema_path_pop(v, old);
        }
    if (!allow == !deny) {
        sl_schema_err(v, n, "needs exactly one of 'allow' and 'deny'");
        return;
    }
    pc->ip_access.enabled = 1;
    pc->ip_access.allow = allow != NULL;
    size_t old = sl_schema_path_key(v, allow ? "allow" : "deny");
    parse_cidr_list(v, allow ? allow : deny, &pc->ip_access.cidrs, &pc->ip_access.n_cidrs);
    sl_schema_path_pop(v, old);
    if (source) {
        old = sl_schema_path_key(v, "source");
        const char *s = sl_schema_string(v, source, 0);
        if (s && !strcmp(s, "peer"))
            pc->ip_access.source_peer = 1;
        else if (s && strcmp(s, "remote"))
            sl_schema_err(v, source, "unknown value '%s' (expected one of: remote, peer)", s);
        sl_schema_path_pop(v, old);
    }
}

/* timeout: whole seconds (at least 1), as in the product we answer to, or a duration. */
static void parse_timeout_policy(sl_schema_ctx_t *v, const sl_node_t *n, sl_policies_cfg_t *pc)
{
    uint64_t ms = 0;
    static const char msg[] =
        "expected whole seconds (at least 1) or a duration such as 500ms, 5s, 1m30s (at most 24h)";
    if (sl_schema_duration_in(v, n, 1, SL_DAY_MS, &ms, msg) != 0) return;
    pc->timeout.enabled = 1;
    pc->timeout.ms = ms;
}

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

static void parse_retry_on(sl_schema_ctx_t *v, const sl_node_t *n, void *base)
{
    sl_retry_cfg_t *rc = base;
    if (sl_schema_list(v, n, 1) <= 0) return;
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
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

static void parse_retry_codes(sl_schema_ctx_t *v, const sl_node_t *n, void *base)
{
    sl_retry_cfg_t *rc = base;
    long cnt = sl_schema_list(v, n, 1);
    if (cnt <= 0) return;
    rc->status_codes = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*rc->status_codes));
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        long long x;
        if (sl_schema_int(v, c, 200, 599, &x) == 0) rc->status_codes[rc->n_status_codes++] = (uint16_t)x;
        sl_schema_path_pop(v, old);
    }
}

static void parse_retry_body(sl_schema_ctx_t *v, const sl_node_t *n, void *base)
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

static void parse_retry(sl_schema_ctx_t *v, const sl_node_t *n, sl_policies_cfg_t *pc)
{
    sl_retry_cfg_t *rc = &pc->retry;
    sl_schema_defaults(v, &retry_section, rc);
    rc->body_buffer = 64 * 1024;
    sl_schema_parse(v, n, &retry_section, rc);
    rc->enabled = 1;
    if (n->kind != SL_NODE_MAP) return; /* reported */
    const sl_node_t *codes = sl_node_get(n, "status_codes");
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

static void parse_samesite(sl_schema_ctx_t *v, const sl_node_t *n, void *base)
{
    sl_cookie_rule_t *r = base;
    const char *s = sl_schema_scalar(v, n, "a string");
    if (!s) return;
    static const char *const values[] = {"Strict", "Lax", "None"};
    for (size_t i = 0; i < SL_ARRAY_LEN(values); i++)
        if (!strcasecmp(s, values[i])) {
            r->samesite = values[i];
            return;
        }
    sl_schema_err(v, n, "unknown value '%s' (expected one of: Strict, Lax, None)", s);
}

#define CR_OFF(m) offsetof(sl_cookie_rule_t, m)
static const sl_schema_field_t cookie_rule_fields[] = {
    {.name = "name", .type = SL_FIELD_STRING, .off = CR_OFF(name), .required = 1},
    {.name = "domain", .type = SL_FIELD_STRING, .off = CR_OFF(domain)},
    {.name = "path", .type = SL_FIELD_STRING, .off = CR_OFF(path)},
    {.name = "secure", .type = SL_FIELD_BOOL, .off = CR_OFF(secure), .def = -1},
    {.name = "samesite", .type = SL_FIELD_CUSTOM, .custom = parse_samesite},
};
static const sl_schema_section_t cookie_rule_section = SL_SCHEMA_SECTION(cookie_rule_fields);

/* Reports msg at rule field key (present in map c). */
static void cookie_rule_err(sl_schema_ctx_t *v, const sl_node_t *c, const char *key, const char *msg)
{
    size_t old = sl_schema_path_key(v, key);
    sl_schema_err(v, sl_node_get(c, key), "%s", msg);
    sl_schema_path_pop(v, old);
}

/* What sl_schema_parse cannot check of rule r, read from map c of list: the values end up inside
 * a Set-Cookie header, where ';' or a control character would end or split an attribute. */
static void check_cookie_rule(sl_schema_ctx_t *v, const sl_node_t *list, const sl_node_t *c, const sl_cookie_rule_t *r)
{
    int ok = r->name != NULL;
    for (const char *p = r->name; ok && *p; p++)
        ok = sl_schema_token_char(*p);
    if (r->name && !ok)
        cookie_rule_err(v, c, "name", "must be a cookie name token (letters, digits and !#$%&'*+-.^_`|~)");
    for (const sl_node_t *o = list->first; r->name && o != c; o = o->next) {
        const sl_node_t *on = sl_node_get(o, "name");
        if (on && on->kind == SL_NODE_SCALAR && !strcmp(on->str, r->name)) {
            size_t old = sl_schema_path_key(v, "name");
            sl_schema_err(v, sl_node_get(c, "name"), "duplicate cookie name '%s' (first at line %d)", r->name,
                          on->line);
            sl_schema_path_pop(v, old);
            break;
        }
    }
    /* A leading dot is allowed and ignored by browsers (RFC 6265 5.2.3). */
    const char *d = r->domain && r->domain[0] == '.' ? r->domain + 1 : r->domain;
    if (d && !sl_schema_hostname_ok(d, strlen(d)))
        cookie_rule_err(v, c, "domain",
                        "must be a domain name such as example.com (no ';', spaces or control characters)");
    if (r->path && !sl_schema_cookie_path_ok(r->path))
        cookie_rule_err(v, c, "path", "must start with '/' and contain no ';' or control characters");
    if (!sl_node_get(c, "domain") && !sl_node_get(c, "path") && !sl_node_get(c, "secure") &&
        !sl_node_get(c, "samesite"))
        sl_schema_err(v, c, "needs at least one of 'domain', 'path', 'secure', 'samesite'");
    if (r->samesite && !strcmp(r->samesite, "None") && r->secure != 1)
        cookie_rule_err(
            v, c, "samesite",
            "SameSite=None needs 'secure: true' in the same rule (browsers drop such cookies without Secure)");
}

/* cookie_rewrite: a list of rules, one per cookie name. */
static void parse_cookie_rewrite(sl_schema_ctx_t *v, const sl_node_t *n, sl_policies_cfg_t *pc)
{
    long cnt = sl_schema_list(v, n, 0);
    if (cnt <= 0) return;
    pc->cookie_rewrite.enabled = 1;
    pc->cookie_rewrite.rules = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*pc->cookie_rewrite.rules));
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        if (c->kind != SL_NODE_MAP) {
            sl_schema_err(v, c, "expected a map with 'name' and the attributes to rewrite, got %s",
                          sl_node_kind_name(c));
        } else {
            sl_cookie_rule_t *r = &pc->cookie_rewrite.rules[pc->cookie_rewrite.n_rules++];
            sl_schema_defaults(v, &cookie_rule_section, r);
            sl_schema_parse(v, c, &cookie_rule_section, r);
            check_cookie_rule(v, n, c, r);
        }
        sl_schema_path_pop(v, old);
    }
}

/* local_rate_limit.header: a token, and not one the gateway writes itself. */
static void parse_rl_header(sl_schema_ctx_t *v, const sl_node_t *n, void *base)
{
    sl_policies_cfg_t *pc = base;
    const char *s = sl_schema_string(v, n, 0);
    if (!s) return;
    static const char *const ours[] = {"content-length",    "transfer-encoding",     "content-type",     "retry-after",
                                       "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"};
    int ok = 1;
    for (const char *p = s; *p && ok; p++)
        ok = sl_schema_token_char(*p);
    int taken = sl_schema_is_hop_by_hop(s);
    for (size_t i = 0; i < SL_ARRAY_LEN(ours); i++)
        taken |= !strcasecmp(s, ours[i]);
    if (!ok)
        sl_schema_err(v, n, "invalid header name '%s'", s);
    else if (taken)
        sl_schema_err(v, n, "'%s' is written by the gateway: pick another name (e.g. ratelimit)", s);
    else
        pc->local_rate_limit.header = s;
}

/* local_rate_limit.key: "ip" (the client address) or "header NAME" (that header's value). */
static void parse_rl_key(sl_schema_ctx_t *v, const sl_node_t *n, void *base)
{
    sl_rate_limit_cfg_t *rl = &((sl_policies_cfg_t *)base)->local_rate_limit;
    const char *s = sl_schema_string(v, n, 0);
    if (!s) return;
    if (!strcmp(s, "ip")) {
        rl->key = SL_RL_KEY_IP;
        return;
    }
    const char *name = !strncmp(s, "header", 6) && (s[6] == ' ' || s[6] == '\t') ? s + 7 : NULL;
    while (name && (*name == ' ' || *name == '\t'))
        name++;
    if (!name || !*name) {
        sl_schema_err(v, n, "expected 'ip' or 'header NAME' (e.g. \"header X-Api-Key\"), got '%s'", s);
        return;
    }
    for (const char *p = name; *p; p++)
        if (!sl_schema_token_char(*p)) {
            sl_schema_err(v, n, "invalid header name '%s'", name);
            return;
        }
    rl->key = SL_RL_KEY_HEADER;
    rl->key_header = name;
}

#define RL_OFF(m) offsetof(sl_policies_cfg_t, local_rate_limit.m)
static const sl_schema_choice_t rl_per_choices[] = {
    {"second", 1, NULL},
    {"minute", 60, NULL},
    {"hour", 3600, NULL},
    {NULL, 0, NULL},
};
/* Bounds keep the bucket arithmetic (nanoseconds, capacity times interval) within 64 bits. */
static const sl_schema_field_t rate_limit_fields[] = {
    {.name = "requests", .type = SL_FIELD_U32, .off = RL_OFF(requests), .min = 1, .max = 1000000, .required = 1},
    {.name = "per", .type = SL_FIELD_ENUM, .off = RL_OFF(per_s), .choices = rl_per_choices, .required = 1},
    {.name = "burst", .type = SL_FIELD_U32, .off = RL_OFF(burst), .min = 0, .max = 1000000, .def = 0},
    {.name = "status", .type = SL_FIELD_INT, .off = RL_OFF(status), .min = 400, .max = 599, .def = 429},
    {.name = "header", .type = SL_FIELD_CUSTOM, .custom = parse_rl_header},
    {.name = "key", .type = SL_FIELD_CUSTOM, .custom = parse_rl_key},
    {.name = "max_keys", .type = SL_FIELD_U32, .off = RL_OFF(max_keys), .min = 1, .max = 1000000, .def = 10000},
};
static const sl_schema_section_t rate_limit_section = SL_SCHEMA_SECTION(rate_limit_fields);

static void parse_local_rate_limit(sl_schema_ctx_t *v, const sl_node_t *n, sl_policies_cfg_t *pc)
{
    sl_schema_defaults(v, &rate_limit_section, pc);
    sl_schema_parse(v, n, &rate_limit_section, pc);
    pc->local_rate_limit.enabled = 1;
    const sl_node_t *mk = sl_node_get(n, "max_keys");
    if (mk && pc->local_rate_limit.key == SL_RL_KEY_NONE) {
        size_t old = sl_schema_path_key(v, "max_keys");
        sl_schema_err_at(v, mk->key_line, mk->key_col,
                         "only applies with 'key' (ip or header NAME): without it the route has one bucket");
        sl_schema_path_pop(v, old);
    }
}

#define WS_OFF(m) offsetof(sl_policies_cfg_t, websocket.m)
static const sl_schema_field_t websocket_fields[] = {
    {.name = "idle_timeout", .type = SL_FIELD_DURATION, .off = WS_OFF(idle_timeout_ms), .min = 1, .max = SL_DAY_MS},
};
static const sl_schema_section_t websocket_section = SL_SCHEMA_SECTION(websocket_fields);

/* websocket: true | false | {idle_timeout: DURATION}. */
static void parse_websocket(sl_schema_ctx_t *v, const sl_node_t *n, sl_policies_cfg_t *pc)
{
    if (n->kind == SL_NODE_MAP) {
        sl_schema_parse(v, n, &websocket_section, pc);
        pc->websocket.enabled = 1;
        return;
    }
    if (n->kind == SL_NODE_SCALAR && n->bad) return;
    const char *s = n->kind == SL_NODE_SCALAR && !sl_node_is_null(n) ? n->str : "";
    if (sl_schema_parse_bool(s, &pc->websocket.enabled) != 0)
        sl_schema_err(v, n, "expected true, false or a map such as {idle_timeout: 10m}");
}

void sl_schema_policies(sl_schema_ctx_t *v, const sl_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    sl_policies_cfg_t *pc = &r->policies;
    if (sl_node_is_null(n)) return;
    if (n->kind != SL_NODE_MAP) {
        sl_schema_err(v, n, "expected a map, got %s", sl_node_kind_name(n));
        return;
    }
    for (const sl_node_t *c = n->first; c; c = c->next) {
        size_t old = sl_schema_path_key(v, c->key);
        if (!strcmp(c->key, "path_rewrite")) {
            parse_path_rewrite(v, c, pc);
        } else if (!strcmp(c->key, "timeout")) {
            parse_timeout_policy(v, c, pc);
        } else if (!strcmp(c->key, "retry")) {
            parse_retry(v, c, pc);
        } else if (!strcmp(c->key, "ip_access")) {
            parse_ip_access(v, c, pc);
        } else if (!strcmp(c->key, "cookie_rewrite")) {
            parse_cookie_rewrite(v, c, pc);
        } else if (!strcmp(c->key, "local_rate_limit")) {
            parse_local_rate_limit(v, c, pc);
        } else if (!strcmp(c->key, "websocket")) {
            parse_websocket(v, c, pc);
        } else if (!strcmp(c->key, "request_headers")) {
            sl_schema_parse(v, c, &header_ops_section, &pc->request_headers.ops);
            pc->request_headers.enabled = 1;
        } else if (!strcmp(c->key, "response_headers")) {
            sl_schema_parse(v, c, &header_ops_section, &pc->response_headers.ops);
            pc->response_headers.enabled = 1;
        } else {
            sl_schema_unknown_name(v, c, "policy", "policies", policy_names, SL_ARRAY_LEN(policy_names), 2);
        }
        sl_schema_path_pop(v, old);
    }
}

int sl_schema_is_policy(const char *key)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(policy_names); i++)
        if (!strcmp(key, policy_names[i])) return 1;
    return 0;
}
