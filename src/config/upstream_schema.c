/* The upstream section of a service: scheme, balancer and its hash or cookie, nodes, timeouts,
 * keep-alive, active and passive health checks. http and stream services share the table;
 * sl_schema_upstream_kind() refuses, once the whole service is read, the keys that belong to
 * the other type. */
#include "config/schema.h"
#include "modules.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const sl_schema_choice_t scheme_choices[] = {
    {"http", SL_SCHEME_HTTP, NULL},
    {"https", SL_SCHEME_HTTPS, "scheme 'https' is not supported yet"},
    {"grpc", SL_SCHEME_GRPC, "scheme 'grpc' is not supported yet"},
    {"grpcs", SL_SCHEME_GRPCS, "scheme 'grpcs' is not supported yet"},
    {"tcp", SL_SCHEME_TCP, NULL},
    {"udp", SL_SCHEME_UDP, NULL},
    {NULL, 0, NULL},
};

static const sl_schema_choice_t hash_on_choices[] = {
    {"ip", SL_HASH_IP, NULL},
    {"header", SL_HASH_HEADER, NULL},
    {"query", SL_HASH_QUERY, NULL},
    {"cookie", SL_HASH_COOKIE, NULL},
    {NULL, 0, NULL},
};

static const sl_schema_field_t node_fields[] = {
    {.name = "address", .type = SL_FIELD_HOSTPORT, .off = offsetof(sl_node_cfg_t, addr), .required = 1},
    {.name = "weight", .type = SL_FIELD_U32, .off = offsetof(sl_node_cfg_t, weight), .min = 1, .max = 1000, .def = 1},
    {.name = "priority",
     .type = SL_FIELD_INT,
     .off = offsetof(sl_node_cfg_t, priority),
     .min = -1000,
     .max = 1000,
     .def = 0},
};
static const sl_schema_section_t node_section = SL_SCHEMA_SECTION(node_fields);

static void parse_nodes(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_upstream_cfg_t *u = base;
    long cnt = sl_schema_list(v, n, 0);
    if (cnt <= 0) return;
    u->nodes = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*u->nodes));
    size_t i = 0;
    for (const sl_config_node_t *c = n->first; c; c = c->next, i++) {
        sl_node_cfg_t *nc = &u->nodes[i];
        size_t old = sl_schema_path_idx(v, i);
        sl_schema_defaults(v, &node_section, nc);
        nc->line = c->line;
        nc->col = c->col;
        if (c->kind == SL_NODE_SCALAR && !sl_node_is_null(c))
            sl_schema_hostport(v, c, &nc->addr, "upstream.scheme");
        else if (c->kind == SL_NODE_MAP)
            sl_schema_parse(v, c, &node_section, nc);
        else
            sl_schema_err(v, c, "expected an address or a map with 'address', got %s", sl_node_kind_name(c));
        sl_schema_path_pop(v, old);
    }
    u->n_nodes = (size_t)cnt;
}

#define UP_OFF(m) offsetof(sl_upstream_cfg_t, m)
static const sl_schema_field_t timeouts_fields[] = {
    {.name = "connect",
     .type = SL_FIELD_DURATION,
     .off = UP_OFF(connect_timeout_ms),
     .min = 1,
     .max = 3600000,
     .def = 2000},
    {.name = "send",
     .type = SL_FIELD_DURATION,
     .off = UP_OFF(send_timeout_ms),
     .min = 1,
     .max = SL_DAY_MS,
     .def = 30000},
    {.name = "read",
     .type = SL_FIELD_DURATION,
     .off = UP_OFF(read_timeout_ms),
     .min = 1,
     .max = SL_DAY_MS,
     .def = 30000},
    {.name = "idle", .type = SL_FIELD_DURATION, .off = UP_OFF(idle_timeout_ms), .min = 1, .max = SL_DAY_MS},
};
static const sl_schema_section_t timeouts_section = SL_SCHEMA_SECTION(timeouts_fields);

static const sl_schema_field_t keepalive_fields[] = {
    {.name = "max_idle", .type = SL_FIELD_U32, .off = UP_OFF(keepalive_max_idle), .min = 0, .max = 100000, .def = 64},
    {.name = "idle_timeout",
     .type = SL_FIELD_DURATION,
     .off = UP_OFF(keepalive_idle_timeout_ms),
     .min = 1,
     .max = SL_DAY_MS,
     .def = 60000},
};
static const sl_schema_section_t keepalive_section = SL_SCHEMA_SECTION(keepalive_fields);

static const sl_schema_field_t hash_fields[] = {
    {.name = "on", .type = SL_FIELD_ENUM, .off = UP_OFF(hash.on), .choices = hash_on_choices, .def = SL_HASH_IP},
    {.name = "key", .type = SL_FIELD_STRING, .off = UP_OFF(hash.key)},
};
static const sl_schema_section_t hash_section = SL_SCHEMA_SECTION(hash_fields);

static const sl_schema_field_t cookie_fields[] = {
    {.name = "name", .type = SL_FIELD_STRING, .off = UP_OFF(cookie.name)},
    {.name = "ttl",
     .type = SL_FIELD_DURATION,
     .off = UP_OFF(cookie.ttl_ms),
     .min = 0,
     .max = 3650 * SL_DAY_MS,
     .def = 0},
    {.name = "path", .type = SL_FIELD_STRING, .off = UP_OFF(cookie.path), .def_str = "/"},
};
static const sl_schema_section_t cookie_section = SL_SCHEMA_SECTION(cookie_fields);

/* ---- upstream.health_check, upstream.passive_check ---- */

/* A list of statuses: integers (500) or inclusive range strings ("200-399"), 100..599. */
static void parse_status_list(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_status_range_t **out, size_t *n_out)
{
    long cnt = sl_schema_list(v, n, 0);
    if (cnt <= 0) return;
    sl_status_range_t *r = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*r));
    size_t k = 0, i = 0;
    for (const sl_config_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        const char *s = sl_schema_scalar(v, c, "a status (500) or a range (\"200-399\")");
        long long lo, hi;
        const char *dash = s ? strchr(s + (*s == '-'), '-') : NULL;
        if (!s) {
            /* reported */
        } else if (dash) {
            char a[16], b[16];
            size_t la = (size_t)(dash - s), lb = strlen(dash + 1);
            if (la == 0 || la >= sizeof(a) || lb == 0 || lb >= sizeof(b)) {
                sl_schema_err(v, c, "invalid status range '%s' (expected e.g. \"200-399\")", s);
            } else {
                memcpy(a, s, la), a[la] = '\0';
                memcpy(b, dash + 1, lb), b[lb] = '\0';
                if (sl_schema_parse_i64(a, &lo) < 0 || sl_schema_parse_i64(b, &hi) < 0)
                    sl_schema_err(v, c, "invalid status range '%s' (expected e.g. \"200-399\")", s);
                else if (lo < 100 || hi > 599 || lo > hi)
                    sl_schema_err(v, c, "invalid status range '%s' (statuses are 100 to 599, low first)", s);
                else
                    r[k].lo = (int)lo, r[k++].hi = (int)hi;
            }
        } else if (sl_schema_parse_i64(s, &lo) < 0) {
            sl_schema_err(v, c, "expected a status (500) or a range (\"200-399\"), got '%s'", s);
        } else if (lo < 100 || lo > 599) {
            sl_schema_err(v, c, "must be between 100 and 599");
        } else {
            r[k].lo = r[k].hi = (int)lo;
            k++;
        }
        sl_schema_path_pop(v, old);
    }
    *out = r;
    *n_out = k;
}

static void parse_hc_expected(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    parse_status_list(v, n, &h->expected, &h->n_expected);
}

static void parse_pc_statuses(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_passive_cfg_t *p = base;
    parse_status_list(v, n, &p->statuses, &p->n_statuses);
}

static void parse_hc_path(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    const char *s = sl_schema_string(v, n, 0);
    if (!s) return;
    if (*s != '/')
        sl_schema_err(v, n, "must start with '/'");
    else if (strpbrk(s, " \t\r\n"))
        sl_schema_err(v, n, "must not contain spaces or line breaks");
    else
        h->path = s;
}

static void parse_hc_method(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    const char *s = sl_schema_string(v, n, 0);
    if (!s) return;
    if (!sl_schema_is_token(s))
        sl_schema_err(v, n, "invalid method '%s'", s);
    else
        h->method = s;
}

static void parse_hc_host(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    const char *s = sl_schema_string(v, n, 0);
    if (s && strpbrk(s, " \t\r\n/"))
        sl_schema_err(v, n, "invalid host '%s'", s);
    else if (s)
        h->host = s;
}

static void parse_hc_headers(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    if (sl_node_is_null(n)) return;
    if (n->kind != SL_NODE_MAP) {
        sl_schema_err(v, n, "expected a map of header names to values, got %s", sl_node_kind_name(n));
        return;
    }
    h->headers = sl_arena_calloc(v->a, n->n * sizeof(*h->headers));
    for (const sl_config_node_t *c = n->first; c; c = c->next) {
        size_t old = sl_schema_path_key(v, c->key);
        int ok = sl_schema_is_token(c->key);
        if (!ok) {
            sl_schema_err_at(v, c->key_line, c->key_col, "invalid header name");
        } else if (!strcasecmp(c->key, "host") || !strcasecmp(c->key, "connection") ||
                   !strcasecmp(c->key, "content-length") || !strcasecmp(c->key, "transfer-encoding")) {
            sl_schema_err_at(v, c->key_line, c->key_col, "is set by the health checker%s",
                             strcasecmp(c->key, "host") ? "" : " (use health_check.host)");
        } else {
            const char *val = sl_schema_string(v, c, 1);
            if (val && strpbrk(val, "\r\n")) {
                sl_schema_err(v, c, "header values must not contain line breaks");
            } else if (val) {
                h->headers[h->n_headers].name = sl_arena_strdup(v->a, c->key);
                h->headers[h->n_headers++].value = val;
            }
        }
        sl_schema_path_pop(v, old);
    }
}

/* A payload as hex digits, two per byte, spaces between bytes allowed ("00 00 00 08 04d2162f");
 * with any, "??" is a byte that may be anything. Returns the length, or -1 after an error. */
static long parse_hex_bytes(sl_schema_ctx_t *v, const sl_config_node_t *n, unsigned char **out, unsigned char **any)
{
    const char *s = sl_schema_string(v, n, 0);
    if (!s) return -1;
    size_t cap = strlen(s) / 2 + 1, len = 0;
    unsigned char *b = sl_arena_calloc(v->a, cap), *a = any ? sl_arena_calloc(v->a, cap) : NULL;
    for (const char *p = s; *p;) {
        if (*p == ' ' || *p == '\t') {
            p++;
            continue;
        }
        if (any && p[0] == '?' && p[1] == '?') {
            a[len++] = 1;
            p += 2;
            continue;
        }
        if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1])) {
            sl_schema_err(v, n, "expected hex digits, two per byte (spaces between bytes allowed%s), at '%.8s'",
                          any ? ", ?? for any byte" : "", p);
            return -1;
        }
        char d[3] = {p[0], p[1], 0};
        b[len++] = (unsigned char)strtoul(d, NULL, 16);
        p += 2;
    }
    if (!len) {
        sl_schema_err(v, n, "must not be empty");
        return -1;
    }
    *out = b;
    if (any) *any = a;
    return (long)len;
}

/* send and send_hex (expect and expect_hex) say the same thing: one of them. */
static int hc_exclusive(sl_schema_ctx_t *v, const sl_config_node_t *n, int taken, const char *what)
{
    if (!taken) return 0;
    sl_schema_err(v, n, "only one of %s and %s_hex", what, what);
    return -1;
}

static void parse_hc_send(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    const char *s = sl_schema_string(v, n, 0);
    if (!s || hc_exclusive(v, n, h->send_len != 0, "send")) return;
    h->send = (const unsigned char *)s;
    h->send_len = strlen(s);
}

static void parse_hc_expect(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    const char *s = sl_schema_string(v, n, 0);
    if (!s || hc_exclusive(v, n, h->expect_len != 0, "expect")) return;
    if (strlen(s) > SL_HEALTH_EXPECT_MAX) {
        sl_schema_err(v, n, "must be at most %d bytes", SL_HEALTH_EXPECT_MAX);
        return;
    }
    h->expect = (const unsigned char *)s;
    h->expect_any = NULL;
    h->expect_len = strlen(s);
}

static void parse_hc_send_hex(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    unsigned char *b;
    if (hc_exclusive(v, n, h->send_len != 0, "send")) return;
    long len = parse_hex_bytes(v, n, &b, NULL);
    if (len < 0) return;
    h->send = b;
    h->send_len = (size_t)len;
}

static void parse_hc_expect_hex(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    unsigned char *b, *a;
    if (hc_exclusive(v, n, h->expect_len != 0, "expect")) return;
    long len = parse_hex_bytes(v, n, &b, &a);
    if (len < 0) return;
    if (len > SL_HEALTH_EXPECT_MAX) {
        sl_schema_err(v, n, "must be at most %d bytes", SL_HEALTH_EXPECT_MAX);
        return;
    }
    h->expect = b;
    h->expect_any = a;
    h->expect_len = (size_t)len;
}

#define HC_OFF(m) offsetof(sl_health_cfg_t, m)
static const sl_schema_field_t health_fields[] = {
    {.name = "path", .type = SL_FIELD_CUSTOM, .custom = parse_hc_path},
    {.name = "host", .type = SL_FIELD_CUSTOM, .custom = parse_hc_host},
    {.name = "method", .type = SL_FIELD_CUSTOM, .custom = parse_hc_method},
    {.name = "headers", .type = SL_FIELD_CUSTOM, .custom = parse_hc_headers},
    {.name = "expected_statuses", .type = SL_FIELD_CUSTOM, .custom = parse_hc_expected},
    {.name = "interval",
     .type = SL_FIELD_DURATION,
     .off = HC_OFF(interval_ms),
     .min = 10,
     .max = SL_DAY_MS,
     .def = 10000},
    {.name = "timeout", .type = SL_FIELD_DURATION, .off = HC_OFF(timeout_ms), .min = 1, .max = 3600000, .def = 2000},
    {.name = "healthy_threshold",
     .type = SL_FIELD_U32,
     .off = HC_OFF(healthy_threshold),
     .min = 1,
     .max = 1000,
     .def = 2},
    {.name = "unhealthy_threshold",
     .type = SL_FIELD_U32,
     .off = HC_OFF(unhealthy_threshold),
     .min = 1,
     .max = 1000,
     .def = 3},
    {.name = "send", .type = SL_FIELD_CUSTOM, .custom = parse_hc_send},
    {.name = "expect", .type = SL_FIELD_CUSTOM, .custom = parse_hc_expect},
    {.name = "send_hex", .type = SL_FIELD_CUSTOM, .custom = parse_hc_send_hex},
    {.name = "expect_hex", .type = SL_FIELD_CUSTOM, .custom = parse_hc_expect_hex},
};
static const sl_schema_section_t health_section = SL_SCHEMA_SECTION(health_fields);

static void parse_health_check(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_health_cfg_t *h = &((sl_upstream_cfg_t *)base)->health_check;
    sl_schema_defaults(v, &health_section, h);
    h->path = "/";
    h->method = "GET";
    h->enabled = 1;
    sl_schema_parse(v, n, &health_section, h);
    const sl_config_node_t *t = sl_node_get(n, "timeout");
    if (!t) {
        /* Unset, the timeout never outlasts the interval. */
        if (h->timeout_ms > h->interval_ms) h->timeout_ms = h->interval_ms;
    } else if (h->timeout_ms > h->interval_ms) {
        size_t old = sl_schema_path_key(v, "timeout");
        sl_schema_err(v, t, "must not be longer than interval");
        sl_schema_path_pop(v, old);
    }
}

#define PC_OFF(m) offsetof(sl_passive_cfg_t, m)
static const sl_schema_field_t passive_fields[] = {
    {.name = "failures", .type = SL_FIELD_U32, .off = PC_OFF(failures), .min = 1, .max = 1000, .def = 3},
    {.name = "statuses", .type = SL_FIELD_CUSTOM, .custom = parse_pc_statuses},
    {.name = "cooldown",
     .type = SL_FIELD_DURATION,
     .off = PC_OFF(cooldown_ms),
     .min = 1,
     .max = SL_DAY_MS,
     .def = 10000},
};
static const sl_schema_section_t passive_section = SL_SCHEMA_SECTION(passive_fields);

static void parse_passive_check(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_passive_cfg_t *p = &((sl_upstream_cfg_t *)base)->passive_check;
    sl_schema_defaults(v, &passive_section, p);
    p->enabled = 1;
    sl_schema_parse(v, n, &passive_section, p);
}

static const sl_schema_choice_t unhealthy_choices[] = {{"panic", 0, NULL}, {"reject", 1, NULL}, {NULL, 0, NULL}};

static const sl_schema_choice_t pp_send_choices[] = {
    {"v1", SL_PROXY_PROTOCOL_V1, NULL},
    {"v2", SL_PROXY_PROTOCOL_V2, NULL},
    {NULL, 0, NULL},
};
static const sl_schema_field_t pp_send_fields[] = {
    {.name = "send", .type = SL_FIELD_ENUM, .choices = pp_send_choices, .def = SL_PROXY_PROTOCOL_NONE, .required = 1},
};
static const sl_schema_section_t pp_send_section = SL_SCHEMA_SECTION(pp_send_fields);

static const sl_schema_field_t upstream_fields[] = {
    {.name = "scheme", .type = SL_FIELD_ENUM, .off = UP_OFF(scheme), .choices = scheme_choices, .def = SL_SCHEME_HTTP},
    {.name = "balance",
     .type = SL_FIELD_ENUM,
     .off = UP_OFF(balance),
     .choices = sl_balancer_choices,
     .def = SL_BALANCE_RANDOM},
    {.name = "nodes", .type = SL_FIELD_CUSTOM, .custom = parse_nodes, .required = 1},
    {.name = "timeouts", .type = SL_FIELD_SECTION, .off = 0, .sub = &timeouts_section},
    {.name = "keepalive", .type = SL_FIELD_SECTION, .off = 0, .sub = &keepalive_section},
    {.name = "resolve_interval",
     .type = SL_FIELD_DURATION,
     .off = UP_OFF(resolve_interval_ms),
     .min = 1000,
     .max = SL_DAY_MS,
     .def = 30000},
    {.name = "hash", .type = SL_FIELD_SECTION, .off = 0, .sub = &hash_section},
    {.name = "cookie", .type = SL_FIELD_SECTION, .off = 0, .sub = &cookie_section},
    {.name = "health_check", .type = SL_FIELD_CUSTOM, .custom = parse_health_check},
    {.name = "passive_check", .type = SL_FIELD_CUSTOM, .custom = parse_passive_check},
    {.name = "on_all_unhealthy",
     .type = SL_FIELD_ENUM,
     .off = UP_OFF(reject_when_all_unhealthy),
     .choices = unhealthy_choices,
     .def = 0},
    {.name = "tries", .type = SL_FIELD_U32, .off = UP_OFF(tries), .min = 1, .max = 100, .def = 2},
    {.name = "max_sessions",
     .type = SL_FIELD_U32,
     .off = UP_OFF(max_sessions),
     .min = 1,
     .max = 10000000,
     .def = 10000},
    {.name = "proxy_protocol", .type = SL_FIELD_SECTION, .off = UP_OFF(proxy_protocol_send), .sub = &pp_send_section},
};
static const sl_schema_section_t upstream_section = SL_SCHEMA_SECTION(upstream_fields);

/* Upstream keys that belong to one type of service, checked once the whole service is read
 * (its type may come after its upstream). */
static const struct {
    const char *section; /* NULL: upstream itself */
    const char *key;
    int stream; /* 1: stream services only; 0: http services only */
    const char *why;
} kind_keys[] = {
    {NULL, "tries", 1, NULL},
    {NULL, "max_sessions", 1, NULL},
    {NULL, "proxy_protocol", 1, NULL},
    {NULL, "keepalive", 0, "a stream session has its own upstream connection"},
    {NULL, "cookie", 0, "stream services balance with hash: {on: ip}"},
    {"timeouts", "idle", 1, NULL},
    {"timeouts", "send", 0, "a stream session ends after timeouts.idle without bytes"},
    {"timeouts", "read", 0, "a stream session ends after timeouts.idle without bytes"},
    {"health_check", "send", 1, "an HTTP service's check is an HTTP request"},
    {"health_check", "expect", 1, "an HTTP service's check is an HTTP request"},
    {"health_check", "send_hex", 1, "an HTTP service's check is an HTTP request"},
    {"health_check", "expect_hex", 1, "an HTTP service's check is an HTTP request"},
    {"health_check", "path", 0, "a stream service's check is a TCP connect, with optional send and expect"},
    {"health_check", "host", 0, "a stream service's check is a TCP connect, with optional send and expect"},
    {"health_check", "method", 0, "a stream service's check is a TCP connect, with optional send and expect"},
    {"health_check", "headers", 0, "a stream service's check is a TCP connect, with optional send and expect"},
    {"health_check", "expected_statuses", 0,
     "a stream service's check is a TCP connect, with optional send and expect"},
    {"passive_check", "statuses", 0, "stream sessions have no status: connect failures and resets count"},
};

/* Reports msg at the key k, written at upstream[.section].key of the service being read. */
static void upstream_key_err(sl_schema_ctx_t *v, const sl_config_node_t *k, const char *section, const char *key,
                             const char *msg)
{
    size_t o1 = sl_schema_path_key(v, "upstream");
    size_t o2 = section ? sl_schema_path_key(v, section) : v->plen;
    size_t o3 = sl_schema_path_key(v, key);
    sl_schema_err_at(v, k->key_line, k->key_col, "%s", msg);
    sl_schema_path_pop(v, o3);
    sl_schema_path_pop(v, o2);
    sl_schema_path_pop(v, o1);
}

/* What the upstream of an http or a stream service may hold, and the scheme that goes with it. */
void sl_schema_upstream_kind(sl_schema_ctx_t *v, const sl_config_node_t *svc_node, sl_service_cfg_t *svc)
{
    if (!svc->has_upstream) return;
    int stream = svc->type == SL_SERVICE_STREAM;
    const sl_config_node_t *un = sl_node_get(svc_node, "upstream");
    char msg[192];
    for (size_t i = 0; i < SL_ARRAY_LEN(kind_keys); i++) {
        const sl_config_node_t *sec = kind_keys[i].section ? sl_node_get(un, kind_keys[i].section) : un;
        const sl_config_node_t *k = sl_node_get(sec, kind_keys[i].key);
        if (!k || kind_keys[i].stream == stream) continue;
        snprintf(msg, sizeof(msg), "only for %s services%s%s%s", kind_keys[i].stream ? "stream" : "http",
                 kind_keys[i].why ? " (" : "", kind_keys[i].why ? kind_keys[i].why : "", kind_keys[i].why ? ")" : "");
        upstream_key_err(v, k, kind_keys[i].section, kind_keys[i].key, msg);
    }
    sl_upstream_cfg_t *u = &svc->upstream;
    const sl_config_node_t *scheme = sl_node_get(un, "scheme");
    int l4 = u->scheme == SL_SCHEME_TCP || u->scheme == SL_SCHEME_UDP;
    /* A scheme that did not parse was reported already; u->scheme then holds the default
     * (scheme_choices lists the schemes in enum order). */
    int parsed = scheme && scheme->kind == SL_NODE_SCALAR && !scheme->bad &&
                 !strcmp(scheme->str, scheme_choices[u->scheme].name);
    size_t old = sl_schema_path_key(v, "upstream.scheme");
    if (stream && !scheme)
        sl_schema_err(v, un, "is required for stream services (tcp or udp)");
    else if (parsed && stream && !l4)
        sl_schema_err(v, scheme, "stream services use tcp or udp");
    else if (parsed && !stream && l4)
        sl_schema_err(v, scheme, "'%s' is for stream services (type: stream)", scheme->str);
    sl_schema_path_pop(v, old);
    if (!stream) return;
    if (u->balance == SL_BALANCE_COOKIE) {
        old = sl_schema_path_key(v, "upstream.balance");
        sl_schema_err(v, sl_node_get(un, "balance"),
                      "cookie balancing needs HTTP (stream services can use hash: {on: ip})");
        sl_schema_path_pop(v, old);
    }
    const sl_config_node_t *on = sl_node_get(sl_node_get(un, "hash"), "on");
    if (on && u->hash.on != SL_HASH_IP) {
        old = sl_schema_path_key(v, "upstream.hash.on");
        sl_schema_err(v, on, "stream services hash on ip (the client address) only");
        sl_schema_path_pop(v, old);
    }
    const sl_config_node_t *k = sl_node_get(un, "max_sessions");
    if (k && u->scheme == SL_SCHEME_TCP) upstream_key_err(v, k, NULL, "max_sessions", "only for udp upstreams");
    k = sl_node_get(un, "proxy_protocol");
    if (k && u->scheme == SL_SCHEME_UDP) upstream_key_err(v, k, NULL, "proxy_protocol", "only for tcp upstreams");
    k = sl_node_get(un, "tries");
    if (k && u->scheme == SL_SCHEME_UDP)
        upstream_key_err(v, k, NULL, "tries", "only for tcp upstreams (a UDP session has no connect to try again)");
    k = sl_node_get(un, "health_check");
    if (k && u->scheme == SL_SCHEME_UDP)
        upstream_key_err(v, k, NULL, "health_check",
                         "only for tcp upstreams: use passive_check, where a datagram the node refuses (ICMP "
                         "port unreachable) counts as a failure");
    if (!u->idle_timeout_ms) u->idle_timeout_ms = u->scheme == SL_SCHEME_UDP ? 30000 : 600000;
}

/* The issued cookie must be well formed (RFC 6265): a token name, a path without ';' or
 * control characters, and a ttl of at least a second (Max-Age counts whole seconds). */
static void check_cookie(sl_schema_ctx_t *v, const sl_config_node_t *cookie, const sl_upstream_cfg_t *u)
{
    if (u->cookie.name && !sl_schema_is_token(u->cookie.name)) {
        size_t old = sl_schema_path_key(v, "cookie.name");
        sl_schema_err(v, sl_node_get(cookie, "name"),
                      "must be a cookie name token (letters, digits and !#$%%&'*+-.^_`|~)");
        sl_schema_path_pop(v, old);
    }
    if (u->cookie.path && !sl_schema_cookie_path_ok(u->cookie.path)) {
        size_t old = sl_schema_path_key(v, "cookie.path");
        sl_schema_err(v, sl_node_get(cookie, "path"), "must start with '/' and contain no ';' or control characters");
        sl_schema_path_pop(v, old);
    }
    if (u->cookie.ttl_ms > 0 && u->cookie.ttl_ms < 1000) {
        size_t old = sl_schema_path_key(v, "cookie.ttl");
        sl_schema_err(v, sl_node_get(cookie, "ttl"),
                      "must be at least 1s (Max-Age counts seconds), or 0 to issue no cookie");
        sl_schema_path_pop(v, old);
    }
}

void sl_schema_upstream(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_service_cfg_t *svc = base;
    if (n->kind != SL_NODE_MAP) {
        sl_schema_err(v, n, "expected a map, got %s", sl_node_kind_name(n));
        return;
    }
    svc->has_upstream = 1;
    sl_upstream_cfg_t *u = &svc->upstream;
    sl_schema_parse(v, n, &upstream_section, u);
    /* Keys that only make sense together. */
    const sl_config_node_t *hash = sl_node_get(n, "hash"), *cookie = sl_node_get(n, "cookie");
    if (hash && u->balance != SL_BALANCE_HASH) {
        size_t old = sl_schema_path_key(v, "hash");
        sl_schema_err(v, hash, "only used with balance: hash");
        sl_schema_path_pop(v, old);
    }
    if (cookie && u->balance != SL_BALANCE_COOKIE) {
        size_t old = sl_schema_path_key(v, "cookie");
        sl_schema_err(v, cookie, "only used with balance: cookie");
        sl_schema_path_pop(v, old);
    }
    if (u->balance == SL_BALANCE_HASH && u->hash.on != SL_HASH_IP && !u->hash.key) {
        size_t old = sl_schema_path_key(v, "hash");
        sl_schema_err(v, hash, "'key' is required when hashing on a header, query parameter or cookie");
        sl_schema_path_pop(v, old);
    }
    if (u->balance == SL_BALANCE_HASH && u->hash.on == SL_HASH_IP && u->hash.key) {
        size_t old = sl_schema_path_key(v, "hash.key");
        sl_schema_err(v, sl_node_get(hash, "key"), "not used when hashing on ip");
        sl_schema_path_pop(v, old);
    }
    if (u->balance == SL_BALANCE_COOKIE && !u->cookie.name && !sl_node_get(cookie, "name")) {
        size_t old = sl_schema_path_key(v, "cookie");
        sl_schema_err(v, cookie ? cookie : sl_node_get(n, "balance"), "'name' is required for balance: cookie");
        sl_schema_path_pop(v, old);
    }
    if (cookie) check_cookie(v, cookie, u);
}

void sl_schema_upstream_defaults(sl_schema_ctx_t *v, sl_upstream_cfg_t *u)
{
    sl_schema_defaults(v, &upstream_section, u);
}
