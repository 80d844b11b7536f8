/* cors: the gateway answers a route's CORS preflights itself and puts the CORS headers on the
 * route's responses for the origins it allows (Fetch standard, "CORS protocol"). The upstream's
 * own Access-Control-* headers never reach the client on such a route: one place decides. */
#include "policy/cors.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/common.h"
#include "base/token.h"

/* ---- judgements ------------------------------------------------------------------------- */

static int alpha(unsigned char c)
{
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static int digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* A host as browsers serialise it in an origin: labels of letters, digits and '-' separated by
 * single dots (IPv4 literals among them), or an IPv6 literal in brackets. */
static int host_form(const char *s, size_t n)
{
    if (!n) return 0;
    if (s[0] == '[') {
        if (n < 3 || s[n - 1] != ']') return 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (!(digit((unsigned char)s[i]) || strchr("abcdefABCDEF:.", s[i]))) return 0;
        return 1;
    }
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (!label || s[i - 1] == '-') return 0;
            label = 0;
        } else if (alpha(c) || digit(c) || (c == '-' && label)) {
            label++;
        } else {
            return 0;
        }
    }
    return label && s[n - 1] != '-';
}

int sl_cors_origin_form(const char *s, size_t n, int *wildcard)
{
    *wildcard = 0;
    size_t i = 0;
    if (!n || !alpha((unsigned char)s[0])) return 0;
    while (i < n && (alpha((unsigned char)s[i]) || digit((unsigned char)s[i]) || strchr("+-.", s[i]))) i++;
    if (n - i < 3 || memcmp(s + i, "://", 3) != 0) return 0;
    i += 3;
    if (n - i >= 2 && s[i] == '*' && s[i + 1] == '.') {
        *wildcard = 1;
        i += 2;
    }
    /* The port, if any, follows the last ':' that is not inside an IPv6 literal. */
    size_t end = n;
    for (size_t j = n; j > i; j--) {
        if (s[j - 1] == ']') break;
        if (s[j - 1] == ':') {
            size_t digits = n - j;
            if (!digits || digits > 5) return 0;
            unsigned port = 0;
            for (size_t k = j; k < n; k++) {
                if (!digit((unsigned char)s[k])) return 0;
                port = port * 10 + (unsigned)(s[k] - '0');
            }
            if (port > 65535) return 0;
            end = j - 1;
            break;
        }
    }
    if (*wildcard && s[i] == '[') return 0;
    return host_form(s + i, end - i);
}

int sl_cors_origin_allowed(const sl_cors_t *c, const char *o, size_t n)
{
    int wildcard;
    /* One serialised origin, never a pattern: what the browser sent must itself be well formed
     * (this refuses "null", lists, spaces and a '*' in the request). */
    if (!sl_cors_origin_form(o, n, &wildcard) || wildcard) return 0;
    if (c->any_origin) return 1;
    for (size_t i = 0; i < c->n_origins; i++) {
        const sl_cors_origin_t *a = &c->origins[i];
        if (!a->prefix_len) {
            if (a->len == n && strncasecmp(a->text, o, n) == 0) return 1;
            continue;
        }
        /* A wildcard: the same scheme, then at least one label, then the rest. */
        size_t suffix = a->len - a->prefix_len - 1; /* ".DOMAIN[:PORT]" */
        if (n <= a->prefix_len + suffix) continue;
        if (strncasecmp(a->text, o, a->prefix_len) != 0) continue;
        if (strncasecmp(a->text + a->prefix_len + 1, o + n - suffix, suffix) != 0) continue;
        /* o is well formed, so what is left between them is one or more whole labels. */
        return 1;
    }
    return 0;
}

int sl_cors_token_list(const char *v, size_t n)
{
    size_t i = 0, items = 0;
    for (;;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t')) i++;
        size_t start = i;
        while (i < n && sl_is_tchar((unsigned char)v[i])) i++;
        if (i == start) return 0;
        items++;
        while (i < n && (v[i] == ' ' || v[i] == '\t')) i++;
        if (i == n) return items > 0;
        if (v[i] != ',') return 0;
        i++;
    }
}

/* ---- the policy --------------------------------------------------------------------------- */

#include "policy/policy.h"

extern const sl_policy_ops_t sl_policy_cors;

#define LIT(s) s, sizeof(s) - 1

static int init(const void *route, void **data)
{
    const sl_route_rt_t *rt = route;
    *data = (void *)sl_policy_settings(rt, &sl_policy_cors);
    return *data ? 0 : -1;
}

/* The request's one Origin value, or NULL: two Origin fields are no origin at all. */
static const sl_http_hdr_t *origin_of(const sl_http_req_t *r)
{
    long i = sl_http_hdrs_find(&r->hdrs, LIT("Origin"), 0);
    if (i < 0 || sl_http_hdrs_find(&r->hdrs, LIT("Origin"), (size_t)i + 1) >= 0) return NULL;
    return &r->hdrs.v[i];
}

/* A preflight (Fetch, "CORS-preflight request"): OPTIONS with Origin and
 * Access-Control-Request-Method. */
static int is_preflight(const sl_http_req_t *r)
{
    return r->method_id == SL_HTTP_OPTIONS && sl_http_hdrs_find(&r->hdrs, LIT("Origin"), 0) >= 0 &&
           sl_http_hdrs_find(&r->hdrs, LIT("Access-Control-Request-Method"), 0) >= 0;
}

/* Every preflight is the gateway's to answer, granted or not: the upstream never sees one. */
static int on_request(const sl_route_rt_t *rt, void *data, const sl_policy_req_t *req, const char **code)
{
    SL_UNUSED(rt);
    SL_UNUSED(data);
    if (!is_preflight(req->req)) return 0;
    *code = NULL;
    return 204;
}

static void add(sl_http_resp_t *resp, sl_arena_t *a, const char *name, size_t nlen, const char *v)
{
    sl_http_hdrs_add(&resp->hdrs, a, name, nlen, v, strlen(v));
}

static void on_response_headers(const sl_route_rt_t *rt, void *data, const sl_policy_state_t *st,
                                sl_http_resp_t *resp, sl_arena_t *a)
{
    SL_UNUSED(rt);
    const sl_cors_t *c = data;
    /* What anyone else says about CORS (the upstream, a direct response, another policy) is
     * dropped: on this route the policy alone decides. */
    sl_http_hdrs_t *h = &resp->hdrs;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < h->n; i++)
        if (h->v[i].name_len < 15 || strncasecmp(h->v[i].name, "access-control-", 15) != 0) h->v[kept++] = h->v[i];
    h->n = kept;
    const sl_http_req_t *r = st->req;
    if (!r) return;
    const sl_http_hdr_t *o = origin_of(r);
    int preflight = resp->local && resp->status == 204 && is_preflight(r);
    const sl_http_hdr_t *asked = NULL;
    if (preflight && c->any_header) {
        long i = sl_http_hdrs_find(&r->hdrs, LIT("Access-Control-Request-Headers"), 0);
        if (i >= 0) asked = &r->hdrs.v[i];
    }
    if (o && sl_cors_origin_allowed(c, o->value, o->value_len)) {
        if (c->any_origin)
            add(resp, a, LIT("Access-Control-Allow-Origin"), "*");
        else
            sl_http_hdrs_add(h, a, LIT("Access-Control-Allow-Origin"), o->value, o->value_len);
        if (c->credentials) add(resp, a, LIT("Access-Control-Allow-Credentials"), "true");
        if (preflight) {
            if (c->methods) add(resp, a, LIT("Access-Control-Allow-Methods"), c->methods);
            if (asked && sl_cors_token_list(asked->value, asked->value_len))
                sl_http_hdrs_add(h, a, LIT("Access-Control-Allow-Headers"), asked->value, asked->value_len);
            else if (c->headers)
                add(resp, a, LIT("Access-Control-Allow-Headers"), c->headers);
            if (c->max_age) add(resp, a, LIT("Access-Control-Max-Age"), c->max_age);
        } else if (c->expose) {
            add(resp, a, LIT("Access-Control-Expose-Headers"), c->expose);
        }
    }
    /* Caches must not give one origin's answer to another: whenever the grant depends on the
     * Origin (or, granted as asked, on the headers asked for), the response says so. */
    if (!c->any_origin && asked)
        add(resp, a, LIT("Vary"), "Origin, Access-Control-Request-Headers");
    else if (!c->any_origin)
        add(resp, a, LIT("Vary"), "Origin");
    else if (asked)
        add(resp, a, LIT("Vary"), "Access-Control-Request-Headers");
}

const sl_policy_ops_t sl_policy_cors = {
    .m = {.name = "cors", .init = init},
    .on_request = on_request,
    .on_response_headers = on_response_headers,
};

/* ---- configuration: cors, read by the loader (config/schema.h) ---- */

#include "base/buf.h"
#include "config/schema.h"

#define ORIGIN_FORM "an origin is SCHEME://HOST[:PORT] (https://app.example.com, https://*.example.com) or \"*\""

/* What the reader fills; the policy keeps the sl_cors_t. */
typedef struct cors_read {
    sl_cors_t c;
    const sl_config_node_t *credentials_node, *origins_node;
} cors_read_t;

/* A list of strings each passing ok (or "*" where star is allowed), joined with ", " into the
 * config arena; *any set when "*" was listed. NULL for an empty list. */
static const char *read_list(sl_schema_ctx_t *v, const sl_config_node_t *n, int star, int *any, const char *msg)
{
    long cnt = sl_schema_list(v, n, 1);
    if (cnt <= 0) return NULL;
    sl_buf_t b = SL_BUF_INIT;
    size_t i = 0;
    for (const sl_config_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        const char *s = sl_schema_scalar(v, c, "a string");
        if (s && star && !strcmp(s, "*")) {
            *any = 1;
        } else if (s && !sl_is_token(s, strlen(s))) {
            sl_schema_err(v, c, "%s", msg);
        } else if (s) {
            sl_buf_printf(&b, "%s%s", b.len ? ", " : "", s);
        }
        sl_schema_path_pop(v, old);
    }
    const char *out = b.len ? sl_arena_strndup(v->a, b.data, b.len) : NULL;
    sl_buf_free(&b);
    return out;
}

static void read_origins(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    cors_read_t *r = base;
    r->origins_node = n;
    long cnt = sl_schema_list(v, n, 0);
    if (cnt <= 0) return;
    sl_cors_origin_t *o = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*o));
    r->c.origins = o;
    size_t i = 0;
    for (const sl_config_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        const char *s = sl_schema_scalar(v, c, "a string");
        int wild = 0;
        if (!s) {
        } else if (!strcmp(s, "*")) {
            if (cnt > 1) sl_schema_err(v, c, "\"*\" allows every origin: list nothing else with it");
            r->c.any_origin = 1;
        } else if (!strcasecmp(s, "null")) {
            sl_schema_err(v, c, "the \"null\" origin cannot be allowed: every sandboxed document and local file sends it");
        } else if (!sl_cors_origin_form(s, strlen(s), &wild)) {
            sl_schema_err(v, c, ORIGIN_FORM);
        } else {
            size_t len = strlen(s);
            char *low = sl_arena_strndup(v->a, s, len);
            for (size_t k = 0; k < len; k++)
                if (low[k] >= 'A' && low[k] <= 'Z') low[k] = (char)(low[k] + 32);
            o[r->c.n_origins++] = (sl_cors_origin_t){low, len, wild ? (size_t)(strchr(low, '*') - low) : 0};
        }
        sl_schema_path_pop(v, old);
    }
}

static void read_methods(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    int any = 0;
    ((cors_read_t *)base)->c.methods = read_list(v, n, 0, &any, "must be a token");
}

static void read_headers(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    cors_read_t *r = base;
    r->c.headers = read_list(v, n, 1, &r->c.any_header, "must be a token or \"*\"");
}

static void read_expose(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    int any = 0;
    ((cors_read_t *)base)->c.expose = read_list(v, n, 0, &any, "must be a token");
}

static void read_credentials(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    cors_read_t *r = base;
    r->credentials_node = n;
    sl_schema_bool(v, n, &r->c.credentials);
}

static void read_max_age(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    uint64_t ms;
    if (sl_schema_duration(v, n, 0, SL_DAY_MS, &ms) != 0) return;
    char s[24];
    snprintf(s, sizeof(s), "%llu", (unsigned long long)(ms / 1000));
    ((cors_read_t *)base)->c.max_age = sl_arena_strndup(v->a, s, strlen(s));
}

static const sl_schema_field_t cors_fields[] = {
    {.name = "allow_origins", .type = SL_FIELD_CUSTOM, .custom = read_origins, .required = 1},
    {.name = "allow_methods", .type = SL_FIELD_CUSTOM, .custom = read_methods},
    {.name = "allow_headers", .type = SL_FIELD_CUSTOM, .custom = read_headers},
    {.name = "expose_headers", .type = SL_FIELD_CUSTOM, .custom = read_expose},
    {.name = "allow_credentials", .type = SL_FIELD_CUSTOM, .custom = read_credentials},
    {.name = "max_age", .type = SL_FIELD_CUSTOM, .custom = read_max_age},
};
static const sl_schema_section_t cors_section = SL_SCHEMA_SECTION(cors_fields);

/* cors: a map; the settings in the config arena, or NULL after reporting. */
const sl_cors_t *sl_policy_cors_read(sl_schema_ctx_t *v, const sl_config_node_t *n)
{
    if (n->kind != SL_NODE_MAP) {
        sl_schema_err(v, n, "expected a map with allow_origins, got %s", sl_node_kind_name(n));
        return NULL;
    }
    int before = v->errors;
    cors_read_t r = {0};
    sl_schema_parse(v, n, &cors_section, &r);
    if (r.c.credentials && r.c.any_origin) {
        size_t old = sl_schema_path_key(v, "allow_credentials");
        sl_schema_err(v, r.credentials_node,
                      "cannot be true with allow_origins \"*\": browsers refuse credentials with a wildcard "
                      "origin, and granting them to every origin would let any site act as the user");
        sl_schema_path_pop(v, old);
    }
    if (v->errors != before) return NULL;
    if (!sl_node_get(n, "allow_methods")) r.c.methods = "GET, HEAD, POST";
    sl_cors_t *c = sl_arena_calloc(v->a, sizeof(*c));
    *c = r.c;
    return c;
}
