/* The gateway section of the schema: workers, gateway.http (listen addresses, request limits
 * and timeouts), the status listener, the access log, sluice's own log and the request id,
 * which routes may set too (sl_schema_request_id). */
#include "config/schema.h"

#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/log.h"

/* Whether two socket addresses of listen addresses are the same address and port. */
static int same_sockaddr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
}

static void parse_workers(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_gateway_cfg_t *g = base;
    const char *s = sl_schema_scalar(v, n, "an integer or 'auto'");
    if (!s) return;
    if (!strcmp(s, "auto")) {
        g->workers = 0;
        return;
    }
    long long x;
    if (sl_schema_parse_i64(s, &x) < 0 || x < 1 || x > 64) {
        sl_schema_err(v, n, "must be 'auto' or an integer between 1 and 64");
        return;
    }
    g->workers = (int)x;
}

static void parse_http_listen(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_gateway_cfg_t *g = (sl_gateway_cfg_t *)((char *)base - offsetof(sl_gateway_cfg_t, http));
    if (n->kind == SL_NODE_SCALAR && !sl_node_is_null(n)) {
        sl_hostport_t hp;
        if (sl_schema_listen(v, n, &hp, NULL) < 0) return;
        g->http.listen = sl_arena_calloc(v->a, sizeof(*g->http.listen));
        g->http.listen[0] = hp;
        g->http.n_listen = 1;
        return;
    }
    long cnt = sl_schema_list(v, n, 0);
    if (cnt <= 0) return;
    sl_hostport_t *list = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*list));
    struct sockaddr_storage *sa = sl_xcalloc((size_t)cnt, sizeof(*sa));
    size_t k = 0, i = 0;
    for (const sl_config_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        if (sl_schema_listen(v, c, &list[k], &sa[k]) == 0) {
            /* Compared as socket addresses: localhost:80 is 127.0.0.1:80, [::]:80 is [0::0]:80. */
            for (size_t j = 0; j < k; j++)
                if (same_sockaddr(&sa[j], &sa[k])) {
                    if (!strcmp(list[j].text, list[k].text))
                        sl_schema_err(v, c, "duplicate listen address '%s'", list[k].text);
                    else
                        sl_schema_err(v, c, "duplicate listen address '%s' (the same socket as '%s')", list[k].text,
                                      list[j].text);
                    break;
                }
            k++;
        }
        sl_schema_path_pop(v, old);
    }
    free(sa);
    g->http.listen = list;
    g->http.n_listen = k;
}

static const sl_schema_choice_t underscore_choices[] = {{"drop", SL_UNDERSCORES_DROP, NULL},
                                                        {"allow", SL_UNDERSCORES_ALLOW, NULL},
                                                        {"reject", SL_UNDERSCORES_REJECT, NULL},
                                                        {NULL, 0, NULL}};
static const sl_schema_choice_t escaped_slash_choices[] = {
    {"reject", SL_ESCAPED_SLASHES_REJECT, NULL}, {"keep", SL_ESCAPED_SLASHES_KEEP, NULL}, {NULL, 0, NULL}};

static const sl_schema_field_t http_fields[] = {
    {.name = "listen", .type = SL_FIELD_CUSTOM, .custom = parse_http_listen},
    {.name = "max_header_bytes",
     .type = SL_FIELD_U32,
     .off = offsetof(sl_gateway_cfg_t, http.max_header_bytes) - offsetof(sl_gateway_cfg_t, http),
     .min = 1024,
     .max = 1048576,
     .def = 32768},
    {.name = "max_headers",
     .type = SL_FIELD_U32,
     .off = offsetof(sl_gateway_cfg_t, http.max_headers) - offsetof(sl_gateway_cfg_t, http),
     .min = 1,
     .max = 1000,
     .def = 100},
    {.name = "max_uri_bytes",
     .type = SL_FIELD_U32,
     .off = offsetof(sl_gateway_cfg_t, http.max_uri_bytes) - offsetof(sl_gateway_cfg_t, http),
     .min = 256,
     .max = 1048576,
     .def = 8192},
    {.name = "header_timeout",
     .type = SL_FIELD_DURATION,
     .off = offsetof(sl_gateway_cfg_t, http.header_timeout_ms) - offsetof(sl_gateway_cfg_t, http),
     .min = 1,
     .max = 3600000,
     .def = 10000},
    {.name = "keepalive_timeout",
     .type = SL_FIELD_DURATION,
     .off = offsetof(sl_gateway_cfg_t, http.keepalive_timeout_ms) - offsetof(sl_gateway_cfg_t, http),
     .min = 1,
     .max = 3600000,
     .def = 60000},
    {.name = "body_timeout",
     .type = SL_FIELD_DURATION,
     .off = offsetof(sl_gateway_cfg_t, http.body_timeout_ms) - offsetof(sl_gateway_cfg_t, http),
     .min = 1,
     .max = 3600000,
     .def = 60000},
    {.name = "headers_with_underscores",
     .type = SL_FIELD_ENUM,
     .off = offsetof(sl_gateway_cfg_t, http.headers_with_underscores) - offsetof(sl_gateway_cfg_t, http),
     .choices = underscore_choices,
     .def = SL_UNDERSCORES_DROP},
    {.name = "merge_slashes",
     .type = SL_FIELD_BOOL,
     .off = offsetof(sl_gateway_cfg_t, http.merge_slashes) - offsetof(sl_gateway_cfg_t, http),
     .def = 1},
    {.name = "path_with_escaped_slashes",
     .type = SL_FIELD_ENUM,
     .off = offsetof(sl_gateway_cfg_t, http.escaped_slashes) - offsetof(sl_gateway_cfg_t, http),
     .choices = escaped_slash_choices,
     .def = SL_ESCAPED_SLASHES_REJECT},
};
static const sl_schema_section_t http_section = SL_SCHEMA_SECTION(http_fields);

#define STATUS_OFF(m) (offsetof(sl_gateway_cfg_t, status.m) - offsetof(sl_gateway_cfg_t, status))
static const sl_schema_field_t status_fields[] = {
    {.name = "enabled", .type = SL_FIELD_BOOL, .off = STATUS_OFF(enabled), .def = 1},
    {.name = "listen", .type = SL_FIELD_LISTEN, .off = STATUS_OFF(listen), .def_str = "127.0.0.1:9091"},
};
static const sl_schema_section_t status_section = SL_SCHEMA_SECTION(status_fields);

/* "status: false" / "status: off" disable the status listener; a map configures it. */
static void parse_status(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_gateway_cfg_t *g = base;
    if (n->kind == SL_NODE_SCALAR && !sl_node_is_null(n)) {
        sl_schema_bool(v, n, &g->status.enabled);
        return;
    }
    sl_schema_parse(v, n, &status_section, &g->status);
}

#define ALOG_OFF(m) (offsetof(sl_gateway_cfg_t, access_log.m) - offsetof(sl_gateway_cfg_t, access_log))
static const sl_schema_choice_t alog_formats[] = {
    {"json", SL_ALOG_JSON, NULL}, {"combined", SL_ALOG_COMBINED, NULL}, {NULL, 0, NULL}};

/* fields: names from sl_access_field_names(), each once; "request_header.NAME" with NAME a
 * header name (matched without case). */
static void parse_alog_fields(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_access_format_t *fmt =
        &((sl_gateway_cfg_t *)((char *)base - offsetof(sl_gateway_cfg_t, access_log)))->access_log.fmt;
    long cnt = sl_schema_list(v, n, 0);
    if (cnt <= 0) return;
    sl_access_field_t *fs = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*fs));
    size_t k = 0, i = 0;
    for (const sl_config_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        const char *name = sl_schema_scalar(v, c, "a field name");
        int id = name ? sl_access_field_lookup(name) : -1;
        if (name && id < 0) {
            sl_schema_err(v, c, "unknown access log field '%s' (expected one of: %s)", name, sl_access_field_names());
        } else if (name) {
            const char *hdr = id == SL_AF_REQUEST_HEADER || id == SL_AF_RESPONSE_HEADER ? strchr(name, '.') + 1 : NULL;
            if (id == SL_AF_RESPONSE_HEADER) fmt->response_headers = 1;
            int ok = !hdr || sl_schema_is_token(hdr), dup = 0;
            for (size_t j = 0; j < k && !dup; j++)
                dup = !strcasecmp(fs[j].key, name);
            if (!ok) {
                sl_schema_err(v, c, "'%s' is not a header name", hdr);
            } else if (dup) {
                sl_schema_err(v, c, "field '%s' is listed twice", name);
            } else {
                /* The key as written; the header name compared in lower case. */
                char *lower = hdr ? sl_arena_strdup(v->a, hdr) : NULL;
                for (char *p = lower; p && *p; p++)
                    *p = (char)tolower((unsigned char)*p);
                fs[k].id = id;
                fs[k].key = sl_arena_strdup(v->a, name);
                size_t pl = strlen(name) + 4;
                char *prefix = sl_arena_alloc(v->a, pl + 1);
                snprintf(prefix, pl + 1, ",\"%s\":", name);
                fs[k].prefix = prefix;
                fs[k].prefix_len = pl;
                fs[k].header = lower;
                fs[k].header_len = hdr ? strlen(hdr) : 0;
                k++;
            }
        }
        sl_schema_path_pop(v, old);
    }
    fmt->fields = fs;
    fmt->n_fields = k;
}

static void parse_alog_buffer(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_access_format_t *fmt =
        &((sl_gateway_cfg_t *)((char *)base - offsetof(sl_gateway_cfg_t, access_log)))->access_log.fmt;
    uint64_t x;
    if (sl_schema_size(v, n, 4u << 20, &x) != 0) return;
    if (x < 4096) {
        sl_schema_err(v, n, "must be at least 4KiB");
        return;
    }
    fmt->buffer = (size_t)x;
}

static const sl_schema_field_t alog_fields[] = {
    {.name = "path", .type = SL_FIELD_STRING, .off = ALOG_OFF(path), .def_str = "stdout"},
    {.name = "format",
     .type = SL_FIELD_ENUM,
     .off = ALOG_OFF(fmt.format),
     .choices = alog_formats,
     .def = SL_ALOG_JSON},
    {.name = "fields", .type = SL_FIELD_CUSTOM, .custom = parse_alog_fields},
    {.name = "buffer", .type = SL_FIELD_CUSTOM, .custom = parse_alog_buffer},
    {.name = "flush",
     .type = SL_FIELD_DURATION,
     .off = ALOG_OFF(fmt.flush_ms),
     .min = 0,
     .max = 60000,
     .def = SL_ACCESS_FLUSH_DEFAULT_MS},
};
static const sl_schema_section_t alog_section = SL_SCHEMA_SECTION(alog_fields);

/* fields choose what a JSON line holds; the combined format is fixed. */
static void check_alog_fields(sl_schema_ctx_t *v, const sl_config_node_t *root, const sl_access_format_t *fmt)
{
    if (!root || fmt->format != SL_ALOG_COMBINED || !fmt->fields) return;
    const sl_config_node_t *g = sl_node_get(root, "gateway"), *a = g ? sl_node_get(g, "access_log") : NULL;
    const sl_config_node_t *fl = a ? sl_node_get(a, "fields") : NULL;
    if (!fl) return;
    size_t o1 = sl_schema_path_key(v, "gateway"), o2 = sl_schema_path_key(v, "access_log"),
           o3 = sl_schema_path_key(v, "fields");
    sl_schema_err(v, fl, "applies to format json only (combined has fixed fields)");
    sl_schema_path_pop(v, o3);
    sl_schema_path_pop(v, o2);
    sl_schema_path_pop(v, o1);
}

#define LOG_OFF(m) (offsetof(sl_gateway_cfg_t, log.m) - offsetof(sl_gateway_cfg_t, log))
static const sl_schema_choice_t log_levels[] = {{"debug", SL_LOG_DEBUG, NULL},
                                                {"info", SL_LOG_INFO, NULL},
                                                {"warn", SL_LOG_WARN, NULL},
                                                {"error", SL_LOG_ERROR, NULL},
                                                {NULL, 0, NULL}};
static const sl_schema_choice_t log_formats[] = {
    {"text", SL_LOG_TEXT, NULL}, {"json", SL_LOG_JSON, NULL}, {NULL, 0, NULL}};
static const sl_schema_field_t log_fields[] = {
    {.name = "level", .type = SL_FIELD_ENUM, .off = LOG_OFF(level), .choices = log_levels, .def = SL_LOG_INFO},
    {.name = "format", .type = SL_FIELD_ENUM, .off = LOG_OFF(format), .choices = log_formats, .def = SL_LOG_TEXT},
};
static const sl_schema_section_t log_section = SL_SCHEMA_SECTION(log_fields);

#define RID_OFF(m) offsetof(sl_request_id_cfg_t, m)
static const sl_schema_choice_t rid_formats[] = {
    {"uuid", SL_REQUEST_ID_UUID, NULL}, {"hex", SL_REQUEST_ID_HEX, NULL}, {NULL, 0, NULL}};
static const sl_schema_choice_t rid_incoming[] = {
    {"keep", SL_REQUEST_ID_KEEP, NULL}, {"replace", SL_REQUEST_ID_REPLACE, NULL}, {NULL, 0, NULL}};
static const sl_schema_field_t rid_fields[] = {
    {.name = "enabled", .type = SL_FIELD_BOOL, .off = RID_OFF(enabled), .def = 1},
    {.name = "header", .type = SL_FIELD_STRING, .off = RID_OFF(header), .def_str = "X-Request-Id"},
    {.name = "format",
     .type = SL_FIELD_ENUM,
     .off = RID_OFF(format),
     .choices = rid_formats,
     .def = SL_REQUEST_ID_UUID},
    {.name = "incoming",
     .type = SL_FIELD_ENUM,
     .off = RID_OFF(incoming),
     .choices = rid_incoming,
     .def = SL_REQUEST_ID_KEEP},
};
static const sl_schema_section_t rid_section = SL_SCHEMA_SECTION(rid_fields);

/* request_id: a map of rid_fields, or true / false for the defaults on or off. The header is a
 * token, and not one whose meaning the gateway owns. */
void sl_schema_request_id(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_request_id_cfg_t *r)
{
    sl_schema_defaults(v, &rid_section, r);
    r->set = 1;
    if (n->kind == SL_NODE_SCALAR && !sl_node_is_null(n)) {
        sl_schema_bool(v, n, &r->enabled);
    } else {
        sl_schema_parse(v, n, &rid_section, r);
        const sl_config_node_t *h = n->kind == SL_NODE_MAP ? sl_node_get(n, "header") : NULL;
        int ok = r->header && sl_schema_is_token(r->header);
        static const char *const owned[] = {"host", "connection", "content-length", "transfer-encoding", "upgrade",
                                            "te",   "trailer",    "keep-alive",     "x-forwarded-for"};
        for (size_t i = 0; ok && i < SL_ARRAY_LEN(owned); i++)
            if (!strcasecmp(r->header, owned[i])) ok = 0;
        if (h && !ok) {
            size_t old = sl_schema_path_key(v, "header");
            sl_schema_err(v, h,
                          "'%s' cannot carry a request id (it must be a header name the gateway does not write itself)",
                          r->header);
            sl_schema_path_pop(v, old);
        }
    }
    r->header_len = r->header ? strlen(r->header) : 0;
}

static void parse_gw_request_id(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_schema_request_id(v, n, &((sl_gateway_cfg_t *)base)->request_id);
}

#define GW_OFF(m) offsetof(sl_gateway_cfg_t, m)
static const sl_schema_field_t gateway_fields[] = {
    {.name = "workers", .type = SL_FIELD_CUSTOM, .custom = parse_workers},
    {.name = "proxy_layers", .type = SL_FIELD_INT, .off = GW_OFF(proxy_layers), .min = 0, .max = 16, .def = 0},
    {.name = "shutdown_timeout",
     .type = SL_FIELD_DURATION,
     .off = GW_OFF(shutdown_timeout_ms),
     .min = 0,
     .max = 3600000,
     .def = 30000},
    {.name = "http", .type = SL_FIELD_SECTION, .off = GW_OFF(http), .sub = &http_section},
    {.name = "status", .type = SL_FIELD_CUSTOM, .custom = parse_status},
    {.name = "access_log", .type = SL_FIELD_SECTION, .off = GW_OFF(access_log), .sub = &alog_section},
    {.name = "request_id", .type = SL_FIELD_CUSTOM, .custom = parse_gw_request_id},
    {.name = "log", .type = SL_FIELD_SECTION, .off = GW_OFF(log), .sub = &log_section},
};
static const sl_schema_section_t gateway_section = SL_SCHEMA_SECTION(gateway_fields);

static const sl_hostport_t default_http_listen = {"0.0.0.0:9080", "0.0.0.0", 9080, 1};

void sl_schema_gateway_defaults(sl_schema_ctx_t *v, sl_gateway_cfg_t *g)
{
    sl_schema_defaults(v, &gateway_section, g);
    sl_schema_defaults(v, &status_section, &g->status);
    g->access_log.fmt.buffer = SL_ACCESS_BUFFER_DEFAULT;
    sl_schema_defaults(v, &rid_section, &g->request_id);
    g->request_id.header_len = strlen(g->request_id.header);
}

void sl_schema_gateway(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_schema_parse(v, n, &gateway_section, &((sl_config_t *)base)->gateway);
}

void sl_schema_gateway_finish(sl_schema_ctx_t *v, const sl_config_node_t *root, sl_gateway_cfg_t *g)
{
    if (!g->http.n_listen) {
        g->http.listen = sl_arena_alloc(v->a, sizeof(sl_hostport_t));
        g->http.listen[0] = default_http_listen;
        g->http.n_listen = 1;
    }
    check_alog_fields(v, root, &g->access_log.fmt);
}
