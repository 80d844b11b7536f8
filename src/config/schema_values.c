/* The value readers of the schemas (schema.h): integers, durations, sizes, booleans, strings,
 * names, host names and addresses, header names and header maps. Each reports what is wrong
 * with the value at the current path and returns -1 (or NULL), so a caller only decides where
 * a good value goes. */
#include "config/schema.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/buf.h"
#include "base/cidr.h"
#include "base/map.h"
#include "base/time.h"
#include "base/token.h"

/* ---- scalars ---- */

/* Returns the scalar's text, or NULL after reporting that n is not what was expected. */
const char *sl_schema_scalar(sl_schema_ctx_t *v, const sl_config_node_t *n, const char *noun)
{
    if (n->kind == SL_NODE_SCALAR && n->bad) return NULL;
    if (n->kind != SL_NODE_SCALAR || sl_node_is_null(n)) {
        sl_schema_err(v, n, "expected %s, got %s", noun, sl_node_kind_name(n));
        return NULL;
    }
    return n->str;
}

int sl_schema_parse_i64(const char *s, long long *out)
{
    const char *p = s;
    int neg = 0;
    if (*p == '-' || *p == '+') neg = *p++ == '-';
    if (!*p) return -1;
    unsigned long long x = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        if (x > (unsigned long long)LLONG_MAX / 10) return -1;
        x = x * 10 + (unsigned long long)(*p - '0');
        if (x > (unsigned long long)LLONG_MAX) return -1;
    }
    *out = neg ? -(long long)x : (long long)x;
    return 0;
}

int sl_schema_int(sl_schema_ctx_t *v, const sl_config_node_t *n, long long min, long long max, long long *out)
{
    const char *s = sl_schema_scalar(v, n, "an integer");
    if (!s) return -1;
    long long x;
    if (sl_schema_parse_i64(s, &x) < 0) {
        sl_schema_err(v, n, "expected an integer, got '%s'", s);
        return -1;
    }
    if (x < min || x > max) {
        sl_schema_err(v, n, "must be between %lld and %lld", min, max);
        return -1;
    }
    *out = x;
    return 0;
}

static void fmt_duration(char *buf, size_t size, unsigned long long ms)
{
    if (ms && ms % 3600000 == 0)
        snprintf(buf, size, "%lluh", ms / 3600000);
    else if (ms && ms % 60000 == 0)
        snprintf(buf, size, "%llum", ms / 60000);
    else if (ms && ms % 1000 == 0)
        snprintf(buf, size, "%llus", ms / 1000);
    else
        snprintf(buf, size, "%llums", ms);
}

#define DURATION_EXAMPLES "expected e.g. 500ms, 10s, 1m30s, 1.5h"

/* Reads a duration (sl_parse_duration_ms: the one grammar) within min..max milliseconds into
 * *out; 0, or -1 after reporting. bad_msg, when set, is the message for every refusal (a field
 * whose documented form is worded differently, such as policies.timeout's whole seconds). */
int sl_schema_duration_in(sl_schema_ctx_t *v, const sl_config_node_t *n, long long min, long long max, uint64_t *out,
                          const char *bad_msg)
{
    const char *s = sl_schema_scalar(v, n, "a duration");
    if (!s) return -1;
    uint64_t ms = 0;
    int rc = sl_parse_duration_ms(s, &ms);
    if (bad_msg && (rc != 0 || ms < (uint64_t)min || ms > (uint64_t)max)) {
        sl_schema_err(v, n, "%s", bad_msg);
        return -1;
    }
    if (rc == -ERANGE && s[0] == '-') {
        sl_schema_err(v, n, "invalid duration '%s' (must not be negative)", s);
        return -1;
    }
    if (rc == -EDOM) {
        sl_schema_err(v, n, "invalid duration '%s' (the smallest step is 1ms)", s);
        return -1;
    }
    if (rc != 0 && rc != -ERANGE) {
        sl_schema_err(v, n, "invalid duration '%s' (" DURATION_EXAMPLES ")", s);
        return -1;
    }
    if (rc == -ERANGE || ms < (uint64_t)min || ms > (uint64_t)max) {
        char lo[32], hi[32];
        fmt_duration(lo, sizeof(lo), (unsigned long long)min);
        fmt_duration(hi, sizeof(hi), (unsigned long long)max);
        sl_schema_err(v, n, "must be between %s and %s", lo, hi);
        return -1;
    }
    *out = ms;
    return 0;
}

int sl_schema_duration(sl_schema_ctx_t *v, const sl_config_node_t *n, long long min, long long max, uint64_t *out)
{
    return sl_schema_duration_in(v, n, min, max, out, NULL);
}

/* A byte count: an integer, or one with a binary unit (k/KiB, m/MiB, g/GiB). */
int sl_schema_size(sl_schema_ctx_t *v, const sl_config_node_t *n, uint64_t max, uint64_t *out)
{
    const char *s = sl_schema_scalar(v, n, "a size");
    if (!s) return -1;
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"", 1},          {"k", 1024},    {"KiB", 1024},   {"m", 1 << 20},
                 {"MiB", 1 << 20}, {"g", 1 << 30}, {"GiB", 1 << 30}};
    const char *p = s;
    uint64_t x = 0;
    while (*p >= '0' && *p <= '9' && x <= max)
        x = x * 10 + (uint64_t)(*p++ - '0');
    size_t i;
    for (i = 0; i < SL_ARRAY_LEN(units); i++)
        if (p != s && !strcmp(p, units[i].unit)) break;
    if (i == SL_ARRAY_LEN(units)) {
        sl_schema_err(v, n, "invalid size '%s' (expected bytes, or e.g. 64KiB, 1MiB)", s);
        return -1;
    }
    if (x > max / units[i].mult) {
        sl_schema_err(v, n, "must be at most %llu bytes", (unsigned long long)max);
        return -1;
    }
    *out = x * units[i].mult;
    return 0;
}

/* 0 and the value when s is a boolean word, else -1. */
int sl_schema_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < SL_ARRAY_LEN(yes); i++) {
        if (!strcasecmp(s, yes[i])) return *out = 1, 0;
        if (!strcasecmp(s, no[i])) return *out = 0, 0;
    }
    return -1;
}

int sl_schema_bool(sl_schema_ctx_t *v, const sl_config_node_t *n, int *out)
{
    const char *s = sl_schema_scalar(v, n, "a boolean");
    if (!s) return -1;
    if (sl_schema_parse_bool(s, out) == 0) return 0;
    sl_schema_err(v, n, "expected a boolean (true or false), got '%s'", s);
    return -1;
}

/* A string value kept in the config. Empty strings are refused unless allow_empty. */
const char *sl_schema_string(sl_schema_ctx_t *v, const sl_config_node_t *n, int allow_empty)
{
    const char *s = sl_schema_scalar(v, n, "a string");
    if (!s) return NULL;
    if (!*s && !allow_empty) {
        sl_schema_err(v, n, "must not be empty");
        return NULL;
    }
    return sl_arena_strndup(v->a, s, n->len);
}

/* ---- names, hosts and addresses ---- */

static int name_ok(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '.' || *s == '-'))
            return 0;
    return 1;
}

const char *sl_schema_name(sl_schema_ctx_t *v, const sl_config_node_t *n)
{
    const char *s = sl_schema_string(v, n, 0);
    if (s && (!name_ok(s) || strlen(s) > 128)) {
        sl_schema_err(v, n, "invalid name '%s' (use 1 to 128 of A-Z a-z 0-9 _ . -)", s);
        return NULL;
    }
    return s;
}

/* RFC 1123 host name: dot-separated labels of letters, digits and '-', 1..63 bytes each, not
 * starting or ending with '-', 253 bytes at most. */
int sl_schema_hostname_ok(const char *s, size_t len)
{
    if (len == 0 || len > 253) return 0;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-') return 0;
            label = 0;
            continue;
        }
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && label > 0)) return 0;
        if (++label > 63) return 0;
    }
    return label > 0 && s[len - 1] != '-';
}

int sl_schema_all_digits_dots(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) return 0;
    return 1;
}

/* Parses "host:port", "a.b.c.d:port" or "[v6]:port" into out (strings in the config arena).
 * scheme_key names where a scheme belongs ("upstream.scheme"), for the hint when the address is
 * written as a URL; NULL where there is none (listen addresses). */
static int parse_hostport_text(sl_schema_ctx_t *v, const sl_config_node_t *n, const char *s, sl_hostport_t *out,
                               const char *scheme_key)
{
    const char *host, *colon;
    /* A URL where an address goes: "http://127.0.0.1:8080/" is 127.0.0.1:8080 plus a scheme. */
    const char *sep = strstr(s, "://");
    const char *rest = sep ? sep + 3 : s;
    size_t rest_len = strcspn(rest, "/?#");
    if (sep || rest[rest_len]) {
        char fix[300];
        snprintf(fix, sizeof(fix), "%.*s", (int)SL_MIN(rest_len, 256), rest);
        if (sep)
            sl_schema_err(v, n, "invalid address '%s': the scheme does not belong in the address (write '%s'%s%s)", s,
                          fix, scheme_key ? " and set " : "", scheme_key ? scheme_key : "");
        else
            sl_schema_err(v, n, "invalid address '%s': an address has no path (write '%s')", s, fix);
        return -1;
    }
    size_t hlen;
    int is_ip = 0;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') {
            sl_schema_err(v, n, "invalid address '%s' (expected [IPv6]:port)", s);
            return -1;
        }
        host = s + 1;
        hlen = (size_t)(rb - host);
        colon = rb + 1;
        char tmp[64];
        unsigned char bin[16];
        if (hlen == 0 || hlen >= sizeof(tmp)) goto bad_v6;
        memcpy(tmp, host, hlen);
        tmp[hlen] = '\0';
        if (inet_pton(AF_INET6, tmp, bin) != 1) goto bad_v6;
        is_ip = 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            sl_schema_err(v, n, "invalid address '%s' (expected host:port)", s);
            return -1;
        }
        if (memchr(s, ':', (size_t)(colon - s))) {
            sl_schema_err(v, n, "invalid address '%s' (IPv6 addresses go in brackets, e.g. [::1]:8080)", s);
            return -1;
        }
        host = s;
        hlen = (size_t)(colon - s);
        if (hlen == 0) {
            sl_schema_err(v, n, "invalid address '%s' (missing host)", s);
            return -1;
        }
        if (sl_schema_all_digits_dots(host, hlen)) {
            char tmp[16];
            unsigned char bin[4];
            if (hlen >= sizeof(tmp)) goto bad_v4;
            memcpy(tmp, host, hlen);
            tmp[hlen] = '\0';
            if (inet_pton(AF_INET, tmp, bin) != 1) goto bad_v4;
            is_ip = 1;
        } else if (!sl_schema_hostname_ok(host, hlen)) {
            sl_schema_err(v, n, "invalid host name in '%s'", s);
            return -1;
        }
    }
    const char *port = colon + 1;
    size_t plen = strlen(port);
    long long p;
    if (plen == 0 || plen > 5 || port[0] == '+' || port[0] == '-' || sl_schema_parse_i64(port, &p) < 0 || p < 1 ||
        p > 65535) {
        sl_schema_err(v, n, "invalid port in '%s' (must be between 1 and 65535)", s);
        return -1;
    }
    out->text = sl_arena_strdup(v->a, s);
    out->host = sl_arena_strndup(v->a, host, hlen);
    out->port = (uint16_t)p;
    out->is_ip = is_ip;
    return 0;
bad_v6:
    sl_schema_err(v, n, "invalid IPv6 address in '%s'", s);
    return -1;
bad_v4:
    sl_schema_err(v, n, "invalid IPv4 address in '%s'", s);
    return -1;
}

int sl_schema_hostport(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_hostport_t *out, const char *scheme_key)
{
    const char *s = sl_schema_scalar(v, n, "an address (host:port)");
    if (!s) return -1;
    return parse_hostport_text(v, n, s, out, scheme_key);
}

/* A listen address: host:port read as sl_config_listen_addr() reads it at start-up, so
 * validation and the runtime agree; localhost becomes 127.0.0.1 here (text keeps what was
 * written). The socket address goes to *sa when sa is not NULL. 0, or -1 after reporting. */
int sl_schema_listen(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_hostport_t *out, struct sockaddr_storage *sa)
{
    sl_hostport_t hp;
    if (sl_schema_hostport(v, n, &hp, NULL) < 0) return -1;
    struct sockaddr_storage ss;
    if (sl_config_listen_addr(&hp, &ss) != 0) {
        sl_schema_err(v, n,
                      "cannot listen on '%s': a listen address takes an IP address or localhost, not a host name "
                      "(e.g. 0.0.0.0:%u, [::]:%u, 127.0.0.1:%u)",
                      hp.text, hp.port, hp.port, hp.port);
        return -1;
    }
    if (!hp.is_ip) {
        hp.host = "127.0.0.1";
        hp.is_ip = 1;
    }
    *out = hp;
    if (sa) *sa = ss;
    return 0;
}

int sl_schema_cidr(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_cidr_cfg_t *out)
{
    const char *s = sl_schema_string(v, n, 0);
    if (!s) return -1;
    if (sl_cidr_parse(s, &out->ip, &out->prefix) != 0) {
        sl_schema_err(v, n,
                      "expected an IPv4 or IPv6 address or CIDR (127.0.0.10, 10.0.0.0/8, 2001:db8::/32), got '%s'", s);
        return -1;
    }
    out->text = s;
    return 0;
}

/* ---- header names and values ---- */

/* A non-empty token (RFC 9110 5.6.2): a header name, a method. */
int sl_schema_is_token(const char *s)
{
    return sl_is_token(s, strlen(s));
}

int sl_schema_is_hop_by_hop(const char *name)
{
    static const char *const hop[] = {"connection", "keep-alive",        "proxy-connection", "te",
                                      "trailer",    "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < SL_ARRAY_LEN(hop); i++)
        if (!strcasecmp(name, hop[i])) return 1;
    return 0;
}

/* A map of header names to values into out/n_out. Names are tokens, unique; framing headers
 * (and, for policies, hop-by-hop ones) belong to the gateway. */
void sl_schema_header_map(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_header_kv_t **out, size_t *n_out,
                          int policy)
{
    if (sl_node_is_null(n)) return;
    if (n->kind != SL_NODE_MAP) {
        sl_schema_err(v, n, "expected a map of header names to values, got %s", sl_node_kind_name(n));
        return;
    }
    *out = sl_arena_calloc(v->a, n->n * sizeof(**out));
    sl_map_t seen; /* lower-cased name -> its first node */
    sl_map_init(&seen);
    for (const sl_config_node_t *c = n->first; c; c = c->next) {
        size_t old = sl_schema_path_key(v, c->key);
        int ok = sl_schema_is_token(c->key);
        if (!ok) {
            sl_schema_err_at(v, c->key_line, c->key_col, "invalid header name");
        } else if (!strcasecmp(c->key, "content-length") || !strcasecmp(c->key, "transfer-encoding")) {
            sl_schema_err_at(v, c->key_line, c->key_col, "is set by the gateway from the body");
        } else if (policy && sl_schema_is_hop_by_hop(c->key)) {
            sl_schema_err_at(v, c->key_line, c->key_col,
                             "is a hop-by-hop header: the gateway manages it per connection");
        } else {
            size_t klen = strlen(c->key);
            char *lower = sl_arena_strndup(v->a, c->key, klen);
            for (char *p = lower; *p; p++)
                if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
            void **slot = sl_map_slot(&seen, lower, klen);
            if (*slot) {
                sl_schema_err_at(v, c->key_line, c->key_col, "duplicate header (first at line %d)",
                                 ((const sl_config_node_t *)*slot)->key_line);
                ok = 0;
            } else {
                *slot = (void *)c;
            }
            const char *val = ok ? sl_schema_string(v, c, 1) : NULL;
            if (val && strpbrk(val, "\r\n")) {
                sl_schema_err(v, c, "header values must not contain line breaks");
            } else if (val) {
                (*out)[*n_out].name = sl_arena_strdup(v->a, c->key);
                (*out)[(*n_out)++].value = val;
            }
        }
        sl_schema_path_pop(v, old);
    }
    sl_map_free(&seen);
}

/* A cookie Path value (RFC 6265): starts with '/', no ';' or control characters. */
int sl_schema_cookie_path_ok(const char *path)
{
    if (path[0] != '/') return 0;
    for (const char *p = path; *p; p++)
        if (*p == ';' || (unsigned char)*p < 0x20 || *p == 0x7f) return 0;
    return 1;
}
