/* The services list and the routes of an http service: names, what a route matches (hosts,
 * paths, methods), direct responses, tags, and the checks that span one service (route names,
 * a service without an upstream), and the table of policies a route takes (each policy reads
 * its own settings, in its file under src/policy/). A service's upstream is read in
 * upstream_schema.c, a stream service's routes in stream_schema.c. */
#include "config/schema.h"
#include "modules.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/map.h"

/* FNV-1a over a node's kind, keys and scalars, its children in order; a map child under
 * skip is left out. Equal hashes: written the same (after ${VAR} substitution). */
static uint64_t node_hash(const sl_config_node_t *n, const char *skip)
{
    uint64_t h = 1469598103934665603ull;
#define MIX(p, len)                                                                                                    \
    for (size_t k_ = 0; k_ < (len); k_++)                                                                              \
    h = (h ^ ((const unsigned char *)(p))[k_]) * 1099511628211ull
    unsigned char kind = (unsigned char)n->kind;
    MIX(&kind, 1);
    if (n->kind == SL_NODE_SCALAR) {
        MIX(n->str ? n->str : "", n->len + 1);
    }
    for (const sl_config_node_t *c = n->first; c; c = c->next) {
        if (c->key && skip && !strcmp(c->key, skip)) continue;
        if (c->key) MIX(c->key, strlen(c->key) + 1);
        uint64_t ch = node_hash(c, NULL);
        MIX(&ch, sizeof(ch));
    }
#undef MIX
    return h;
}

/* ---- http routes ---- */

void sl_schema_route_name(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    const char *s = sl_schema_name(v, n);
    if (s) r->name = s;
}

static void parse_hosts(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    long cnt = sl_schema_list(v, n, 1);
    if (cnt <= 0) return;
    r->hosts = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*r->hosts));
    size_t i = 0;
    for (const sl_config_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        const char *s = sl_schema_string(v, c, 0);
        if (s) {
            char *h = (char *)s;
            for (char *p = h; *p; p++)
                if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
            const char *name = h[0] == '*' && h[1] == '.' ? h + 2 : h;
            if (!sl_schema_hostname_ok(name, strlen(name)))
                sl_schema_err(v, c, "invalid host '%s' (expected a host name like api.example.com or *.example.com)",
                              s);
            else
                r->hosts[r->n_hosts++] = h;
        }
        sl_schema_path_pop(v, old);
    }
}

/* tags: labels of the route for the access log, each 1..64 bytes of printable ASCII, each once. */
static void parse_tags(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    long cnt = sl_schema_list(v, n, 1);
    if (cnt <= 0) return;
    r->tags = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*r->tags));
    size_t i = 0;
    for (const sl_config_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        const char *s = sl_schema_string(v, c, 0);
        int ok = s && strlen(s) <= 64, dup = 0;
        for (const char *p = s; ok && *p; p++)
            ok = *p >= 0x20 && *p < 0x7f;
        for (size_t j = 0; ok && j < r->n_tags && !dup; j++)
            dup = !strcmp(r->tags[j], s);
        if (s && !ok)
            sl_schema_err(v, c, "a tag is 1 to 64 bytes of printable ASCII");
        else if (dup)
            sl_schema_err(v, c, "tag '%s' is listed twice", s);
        else if (s)
            r->tags[r->n_tags++] = s;
        sl_schema_path_pop(v, old);
    }
}

/* A path is exact ("/users") or a prefix ending in slash-star ("/users/" then '*'): it starts with
 * '/', and '*' may only be its last character, right after a '/'. */
static void parse_paths(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    long cnt = sl_schema_list(v, n, 1);
    if (cnt <= 0) return;
    r->paths = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*r->paths));
    size_t i = 0;
    for (const sl_config_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        const char *s = sl_schema_string(v, c, 0);
        if (s) {
            size_t len = strlen(s);
            const char *star = strchr(s, '*');
            const char *bad = NULL;
            for (const char *p = s; *p && !bad; p++)
                if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#') bad = p;
            if (s[0] != '/')
                sl_schema_err(v, c, "must start with '/'");
            else if (bad)
                sl_schema_err(v, c, "must not contain spaces, control characters, '?' or '#'");
            else if (star && !(star == s + len - 1 && len >= 2 && s[len - 2] == '/'))
                sl_schema_err(v, c, "'*' is only allowed as the final \"/*\" of a prefix");
            else
                r->paths[r->n_paths++] = s;
        }
        sl_schema_path_pop(v, old);
    }
}

static void parse_methods(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    long cnt = sl_schema_list(v, n, 1);
    if (cnt <= 0) return;
    size_t i = 0;
    for (const sl_config_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        const char *s = sl_schema_scalar(v, c, "a method name");
        if (s) {
            uint32_t bit = sl_method_bit(s, c->len);
            if (!bit)
                sl_schema_err(
                    v, c,
                    "unknown method '%s' (expected GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, CONNECT or TRACE)", s);
            r->methods |= bit;
        }
        sl_schema_path_pop(v, old);
    }
}

static void parse_dr_headers(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_direct_response_cfg_t *dr = base;
    sl_schema_header_map(v, n, &dr->headers, &dr->n_headers, 0);
}

static void parse_dr_body(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_direct_response_cfg_t *dr = base;
    const char *s = sl_schema_string(v, n, 1);
    if (!s) return;
    dr->body = s;
    dr->body_len = strlen(s);
}

static const sl_schema_field_t dr_fields[] = {
    {.name = "status",
     .type = SL_FIELD_INT,
     .off = offsetof(sl_direct_response_cfg_t, status),
     .min = 200, /* a 1xx cannot be a final response */
     .max = 599,
     .def = 200,
     .required = 1},
    {.name = "headers", .type = SL_FIELD_CUSTOM, .custom = parse_dr_headers},
    {.name = "body", .type = SL_FIELD_CUSTOM, .custom = parse_dr_body},
};
static const sl_schema_section_t dr_section = SL_SCHEMA_SECTION(dr_fields);

static void parse_direct_response(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    if (n->kind != SL_NODE_MAP) {
        sl_schema_err(v, n, "expected a map, got %s", sl_node_kind_name(n));
        return;
    }
    r->direct_response = sl_arena_calloc(v->a, sizeof(*r->direct_response));
    sl_schema_defaults(v, &dr_section, r->direct_response);
    sl_schema_parse(v, n, &dr_section, r->direct_response);
}

/* ---- a route's policies, each read in its own file under src/policy/ ---- */

int sl_schema_is_policy(const char *key)
{
    for (size_t i = 0; i < sl_n_policy_modules; i++)
        if (!strcmp(key, sl_policy_modules[i].ops->m.name)) return 1;
    return 0;
}

static void parse_policies(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_policies_cfg_t *pc = &((sl_route_cfg_t *)base)->policies;
    if (sl_node_is_null(n)) return;
    if (n->kind != SL_NODE_MAP) {
        sl_schema_err(v, n, "expected a map, got %s", sl_node_kind_name(n));
        return;
    }
    for (const sl_config_node_t *c = n->first; c; c = c->next) {
        size_t old = sl_schema_path_key(v, c->key), i = 0;
        while (i < sl_n_policy_modules && strcmp(c->key, sl_policy_modules[i].ops->m.name))
            i++;
        if (i == sl_n_policy_modules) {
            const char *names[SL_POLICY_MODULES_MAX];
            for (size_t k = 0; k < sl_n_policy_modules; k++)
                names[k] = sl_policy_modules[k].ops->m.name;
            sl_schema_unknown_name(v, c, "policy", "policies", names, sl_n_policy_modules, 2);
        } else if (sl_policy_modules[i].read) {
            pc->settings[i] = sl_policy_modules[i].read(v, c);
        } else {
            sl_policy_modules[i].parse(v, c, pc);
        }
        sl_schema_path_pop(v, old);
    }
}

static void parse_route_request_id(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_schema_request_id(v, n, &((sl_route_cfg_t *)base)->request_id);
}

static const sl_schema_field_t route_fields[] = {
    {.name = "name", .type = SL_FIELD_CUSTOM, .custom = sl_schema_route_name},
    {.name = "hosts", .type = SL_FIELD_CUSTOM, .custom = parse_hosts},
    {.name = "paths", .type = SL_FIELD_CUSTOM, .custom = parse_paths},
    {.name = "methods", .type = SL_FIELD_CUSTOM, .custom = parse_methods},
    {.name = "direct_response", .type = SL_FIELD_CUSTOM, .custom = parse_direct_response},
    {.name = "policies", .type = SL_FIELD_CUSTOM, .custom = parse_policies},
    {.name = "request_id", .type = SL_FIELD_CUSTOM, .custom = parse_route_request_id},
    {.name = "tags", .type = SL_FIELD_CUSTOM, .custom = parse_tags},
    {.name = "plugins", .type = SL_FIELD_REJECT, .msg = "plugins are for stream routes; http routes use 'policies'"},
    {.name = "server_addr", .type = SL_FIELD_REJECT, .msg = "only valid on stream routes"},
    {.name = "server_port", .type = SL_FIELD_REJECT, .msg = "only valid on stream routes"},
    {.name = "remote_addr", .type = SL_FIELD_REJECT, .msg = "only valid on stream routes"},
    {.name = "proxy_protocol", .type = SL_FIELD_REJECT, .msg = "only valid on stream routes"},
};
static const sl_schema_section_t route_section = SL_SCHEMA_SECTION(route_fields);

static void parse_routes(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_service_cfg_t *svc = base;
    long cnt = sl_schema_list(v, n, 0);
    if (cnt <= 0) return;
    svc->routes = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*svc->routes));
    svc->n_routes = (size_t)cnt;
    size_t i = 0;
    for (const sl_config_node_t *c = n->first; c; c = c->next, i++) {
        sl_route_cfg_t *r = &svc->routes[i];
        size_t old = sl_schema_path_idx(v, i);
        r->line = c->line;
        r->col = c->col;
        r->hash = node_hash(c, NULL);
        if (c->kind != SL_NODE_MAP) {
            sl_schema_err(v, c, "expected a map, got %s", sl_node_kind_name(c));
        } else if (v->stream) {
            sl_schema_stream_route(v, c, r);
        } else {
            sl_schema_parse(v, c, &route_section, r);
        }
        sl_schema_path_pop(v, old);
    }
}

/* ---- services ---- */

static void parse_service_name(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_service_cfg_t *svc = base;
    const char *s = sl_schema_name(v, n);
    if (s) svc->name = s;
}

static const sl_schema_choice_t service_types[] = {
    {"http", SL_SERVICE_HTTP, NULL},
    {"stream", SL_SERVICE_STREAM, NULL},
    {NULL, 0, NULL},
};

#define SVC_OFF(m) offsetof(sl_service_cfg_t, m)
static const sl_schema_field_t service_fields[] = {
    {.name = "name", .type = SL_FIELD_CUSTOM, .custom = parse_service_name, .required = 1},
    {.name = "type", .type = SL_FIELD_ENUM, .off = SVC_OFF(type), .choices = service_types, .def = SL_SERVICE_HTTP},
    {.name = "upstream", .type = SL_FIELD_CUSTOM, .custom = sl_schema_upstream},
    {.name = "routes", .type = SL_FIELD_CUSTOM, .custom = parse_routes, .required = 1},
};
static const sl_schema_section_t service_section = SL_SCHEMA_SECTION(service_fields);

/* Checks what spans fields of one service: default and unique route names, and that a service
 * without an upstream answers every route itself. */
static void check_service(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_service_cfg_t *svc)
{
    const sl_config_node_t *routes = sl_node_get(n, "routes");
    const sl_config_node_t *rn = routes && routes->kind == SL_NODE_SEQ ? routes->first : NULL;
    size_t base = sl_schema_path_key(v, "routes");
    /* Route name -> 1 + its index: a hash map, so a service with 100,000 routes stays linear. */
    sl_map_t names;
    sl_map_init(&names);
    for (size_t i = 0; i < svc->n_routes; i++, rn = rn ? rn->next : NULL) {
        sl_route_cfg_t *r = &svc->routes[i];
        size_t old = sl_schema_path_idx(v, i);
        const sl_config_node_t *name_node = sl_node_get(rn, "name");
        if (!r->name && !name_node && svc->name) {
            char buf[160];
            snprintf(buf, sizeof(buf), "%s-%zu", svc->name, i);
            r->name = sl_arena_strdup(v->a, buf);
        }
        void **slot = r->name ? sl_map_slot(&names, r->name, strlen(r->name)) : NULL;
        if (slot && *slot) {
            size_t j = (size_t)(uintptr_t)*slot - 1;
            size_t o2 = sl_schema_path_key(v, "name");
            if (name_node)
                sl_schema_err(v, name_node, "duplicate route name '%s' (also routes[%zu])", r->name, j);
            else
                sl_schema_err_at(v, r->line, r->col, "duplicate route name '%s' (also routes[%zu])", r->name, j);
            sl_schema_path_pop(v, o2);
        } else if (slot) {
            *slot = (void *)(uintptr_t)(i + 1);
        }
        if (r->policies.websocket.enabled && r->direct_response) {
            size_t o2 = sl_schema_path_key(v, "policies.websocket");
            sl_schema_err(v, sl_node_get(sl_node_get(rn, "policies"), "websocket"),
                          "a route that answers with direct_response has no upstream to open a tunnel to");
            sl_schema_path_pop(v, o2);
        }
        if (svc->type == SL_SERVICE_STREAM && svc->has_upstream && svc->upstream.scheme == SL_SCHEME_UDP &&
            sl_node_get(rn, "proxy_protocol")) {
            size_t o2 = sl_schema_path_key(v, "proxy_protocol");
            const sl_config_node_t *pp = sl_node_get(rn, "proxy_protocol");
            sl_schema_err_at(v, pp->key_line, pp->key_col, "only for tcp services");
            sl_schema_path_pop(v, o2);
        }
        if (svc->type == SL_SERVICE_HTTP && !svc->has_upstream && !r->direct_response && rn &&
            rn->kind == SL_NODE_MAP && !sl_node_get(rn, "direct_response"))
            sl_schema_err_at(v, r->line, r->col, "route '%s' has no direct_response and service has no upstream",
                             r->name ? r->name : "?");
        sl_schema_path_pop(v, old);
    }
    sl_map_free(&names);
    sl_schema_path_pop(v, base);
    if (svc->type == SL_SERVICE_STREAM && !svc->has_upstream && !sl_node_get(n, "upstream")) {
        size_t old = sl_schema_path_key(v, "upstream");
        sl_schema_err(v, n, "is required for stream services");
        sl_schema_path_pop(v, old);
    }
}

void sl_schema_services(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_config_t *cfg = base;
    long cnt = sl_schema_list(v, n, 1);
    if (cnt <= 0) return;
    cfg->services = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*cfg->services));
    cfg->n_services = (size_t)cnt;
    sl_map_t names; /* service name -> 1 + its index */
    sl_map_init(&names);
    size_t i = 0;
    for (const sl_config_node_t *c = n->first; c; c = c->next, i++) {
        sl_service_cfg_t *svc = &cfg->services[i];
        size_t old = sl_schema_path_idx(v, i);
        svc->line = c->line;
        svc->col = c->col;
        sl_schema_defaults(v, &service_section, svc);
        sl_schema_upstream_defaults(v, &svc->upstream);
        if (c->kind != SL_NODE_MAP) {
            sl_schema_err(v, c, "expected a map, got %s", sl_node_kind_name(c));
            sl_schema_path_pop(v, old);
            continue;
        }
        /* Routes are read according to the service's type, wherever it is written. */
        const sl_config_node_t *type = sl_node_get(c, "type");
        v->stream = type && type->kind == SL_NODE_SCALAR && !strcmp(type->str, "stream");
        svc->type_line = type ? type->line : c->line;
        svc->type_col = type ? type->col : c->col;
        sl_schema_parse(v, c, &service_section, svc);
        svc->hash = node_hash(c, "routes");
        sl_schema_upstream_kind(v, c, svc);
        check_service(v, c, svc);
        void **slot = svc->name ? sl_map_slot(&names, svc->name, strlen(svc->name)) : NULL;
        if (slot && *slot) {
            size_t o2 = sl_schema_path_key(v, "name");
            sl_schema_err(v, sl_node_get(c, "name"), "duplicate service name '%s' (also services[%zu])", svc->name,
                          (size_t)(uintptr_t)*slot - 1);
            sl_schema_path_pop(v, o2);
        } else if (slot) {
            *slot = (void *)(uintptr_t)(i + 1);
        }
        sl_schema_path_pop(v, old);
    }
    sl_map_free(&names);
}
