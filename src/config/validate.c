/* Schema and validation: the node tree (node.h) into sl_config_t. Every section of the file is
 * one table of fields (name, kind, bounds, default, target offset); parse_section() walks a map
 * against its table, so unknown keys, missing required keys, bounds and defaults are handled in
 * one place. Duplicate keys are found once for every map of the tree, before any of this
 * (unique_keys()), so maps read by custom parsers are covered too. Fields that need more than a
 * bound (lists, addresses, routes) have a custom parser. Every error is reported and validation
 * goes on, so one run shows them all. */
#include "config/node.h"
#include "base/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/common.h"
#include "base/cidr.h"
#include "base/map.h"
#include "base/time.h"
#include "policy/regex.h"

#define PATH_MAX_LEN 512
#define DAY_MS (24ull * 3600ull * 1000ull)

typedef struct vctx {
    sl_config_t *cfg;
    sl_arena_t *a; /* cfg->arena: everything the config keeps */
    sl_config_diag_t *d;
    char path[PATH_MAX_LEN];
    size_t plen;
    int errors;
    int stream; /* the service being read is a stream service */
} vctx_t;

/* ---- paths and errors ---- */

static size_t path_append(vctx_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends to the current path and returns the length to restore with path_pop(). A path too long
 * for the buffer is cut, never overrun. */
static size_t path_append(vctx_t *v, const char *fmt, ...)
{
    size_t old = v->plen;
    if (v->plen < sizeof(v->path) - 1) {
        va_list ap;
        va_start(ap, fmt);
        int r = vsnprintf(v->path + v->plen, sizeof(v->path) - v->plen, fmt, ap);
        va_end(ap);
        if (r > 0) v->plen = SL_MIN(v->plen + (size_t)r, sizeof(v->path) - 1);
    }
    return old;
}

static size_t path_key(vctx_t *v, const char *key)
{
    return v->plen ? path_append(v, ".%s", key) : path_append(v, "%s", key);
}

static size_t path_idx(vctx_t *v, size_t i)
{
    return path_append(v, "[%zu]", i);
}

static void path_pop(vctx_t *v, size_t old)
{
    v->plen = old;
    v->path[old] = '\0';
}

static void verr_at(vctx_t *v, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void verr_at(vctx_t *v, int line, int col, const char *fmt, ...)
{
    sl_buf_t b = SL_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    sl_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (v->plen)
        sl_config_diag_add(v->d, line, col, "%s: %s", v->path, sl_buf_cstr(&b));
    else
        sl_config_diag_add(v->d, line, col, "%s", sl_buf_cstr(&b));
    sl_buf_free(&b);
    v->errors++;
}

#define verr(v, node, ...) verr_at((v), (node) ? (node)->line : 0, (node) ? (node)->col : 0, __VA_ARGS__)

/* ---- environment substitution ---- */

static int env_name_char(char c, int first)
{
    return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (!first && c >= '0' && c <= '9');
}

/* Expands ${VAR}, ${VAR:-default} and the escape $${ (a literal "${") in one scalar. */
static void env_scalar(vctx_t *v, sl_arena_t *tree, sl_node_t *n)
{
    if (!memchr(n->str, '$', n->len)) return;
    sl_buf_t b = SL_BUF_INIT;
    const char *s = n->str, *end = n->str + n->len;
    int changed = 0;
    while (s < end) {
        if (s[0] == '$' && end - s >= 3 && s[1] == '$' && s[2] == '{') {
            sl_buf_puts(&b, "${");
            s += 3;
            changed = 1;
            continue;
        }
        if (s[0] != '$' || end - s < 2 || s[1] != '{') {
            sl_buf_putc(&b, *s++);
            continue;
        }
        const char *name = s + 2, *p = name;
        while (p < end && env_name_char(*p, p == name))
            p++;
        const char *close = memchr(p, '}', (size_t)(end - p));
        if (p == name || !close || (p != close && !(end - p >= 2 && p[0] == ':' && p[1] == '-'))) {
            verr(v, n, "invalid ${...} reference (expected ${NAME} or ${NAME:-default})");
            n->bad = 1;
            goto out;
        }
        char *var = sl_xstrndup(name, (size_t)(p - name));
        const char *val = getenv(var);
        if (val) {
            sl_buf_puts(&b, val);
        } else if (p != close) {
            sl_buf_append(&b, p + 2, (size_t)(close - (p + 2)));
        } else {
            verr(v, n, "environment variable '%s' is not set", var);
            n->bad = 1;
        }
        free(var);
        if (n->bad) goto out;
        s = close + 1;
        changed = 1;
    }
    if (changed) {
        n->str = sl_arena_strndup(tree, b.data ? b.data : "", b.len);
        n->len = strlen(n->str); /* a value with a NUL byte is cut there */
        n->quoted = 1;           /* substituted text is a string, never YAML's null */
    }
out:
    sl_buf_free(&b);
}

/* Reports every key of map n written a second (or later) time and drops those entries, so the
 * readers below see each key once, its first value, whatever kind of map it is: a schema
 * section, or a map read by its own parser (policies, plugins, header maps). Small maps are
 * scanned, larger ones go through a hash map, so the check stays linear. */
static void unique_keys(vctx_t *v, sl_node_t *n)
{
    if (n->n < 2) return;
    sl_map_t seen;
    sl_map_init(&seen);
    int use_map = n->n > 8;
    sl_node_t **link = &n->first, *prev = NULL;
    for (sl_node_t *c = n->first, *next; c; c = next) {
        next = c->next;
        const sl_node_t *first = NULL;
        if (use_map) {
            void **slot = sl_map_slot(&seen, c->key, strlen(c->key));
            first = *slot;
            if (!first) *slot = c;
        } else {
            for (const sl_node_t *o = n->first; o != c && !first; o = o->next)
                if (!strcmp(o->key, c->key)) first = o;
        }
        if (!first) {
            prev = c;
            link = &c->next;
            continue;
        }
        size_t old = path_key(v, c->key);
        verr_at(v, c->key_line, c->key_col, "duplicate key (first at line %d)", first->key_line);
        path_pop(v, old);
        *link = next;
        if (n->last == c) n->last = prev;
        n->n--;
    }
    sl_map_free(&seen);
}

/* Walks the whole tree once before validation: duplicate keys out, ${VAR} substituted. */
static void prepare_tree(vctx_t *v, sl_arena_t *tree, sl_node_t *n)
{
    if (n->kind == SL_NODE_SCALAR) {
        env_scalar(v, tree, n);
        return;
    }
    if (n->kind == SL_NODE_MAP) unique_keys(v, n);
    size_t i = 0;
    for (sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = n->kind == SL_NODE_MAP ? path_key(v, c->key) : path_idx(v, i);
        prepare_tree(v, tree, c);
        path_pop(v, old);
    }
}

/* ---- scalars ---- */

/* Returns the scalar's text, or NULL after reporting that n is not what was expected. */
static const char *want_scalar(vctx_t *v, const sl_node_t *n, const char *noun)
{
    if (n->kind == SL_NODE_SCALAR && n->bad) return NULL;
    if (n->kind != SL_NODE_SCALAR || sl_node_is_null(n)) {
        verr(v, n, "expected %s, got %s", noun, sl_node_kind_name(n));
        return NULL;
    }
    return n->str;
}

static int parse_i64(const char *s, long long *out)
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

static int get_int(vctx_t *v, const sl_node_t *n, long long min, long long max, long long *out)
{
    const char *s = want_scalar(v, n, "an integer");
    if (!s) return -1;
    long long x;
    if (parse_i64(s, &x) < 0) {
        verr(v, n, "expected an integer, got '%s'", s);
        return -1;
    }
    if (x < min || x > max) {
        verr(v, n, "must be between %lld and %lld", min, max);
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
static int duration_in(vctx_t *v, const sl_node_t *n, long long min, long long max, uint64_t *out, const char *bad_msg)
{
    const char *s = want_scalar(v, n, "a duration");
    if (!s) return -1;
    uint64_t ms = 0;
    int rc = sl_parse_duration_ms(s, &ms);
    if (bad_msg && (rc != 0 || ms < (uint64_t)min || ms > (uint64_t)max)) {
        verr(v, n, "%s", bad_msg);
        return -1;
    }
    if (rc == -ERANGE && s[0] == '-') {
        verr(v, n, "invalid duration '%s' (must not be negative)", s);
        return -1;
    }
    if (rc == -EDOM) {
        verr(v, n, "invalid duration '%s' (the smallest step is 1ms)", s);
        return -1;
    }
    if (rc != 0 && rc != -ERANGE) {
        verr(v, n, "invalid duration '%s' (" DURATION_EXAMPLES ")", s);
        return -1;
    }
    if (rc == -ERANGE || ms < (uint64_t)min || ms > (uint64_t)max) {
        char lo[32], hi[32];
        fmt_duration(lo, sizeof(lo), (unsigned long long)min);
        fmt_duration(hi, sizeof(hi), (unsigned long long)max);
        verr(v, n, "must be between %s and %s", lo, hi);
        return -1;
    }
    *out = ms;
    return 0;
}

static int get_duration(vctx_t *v, const sl_node_t *n, long long min, long long max, uint64_t *out)
{
    return duration_in(v, n, min, max, out, NULL);
}

/* A byte count: an integer, or one with a binary unit (k/KiB, m/MiB, g/GiB). */
static int get_size(vctx_t *v, const sl_node_t *n, uint64_t max, uint64_t *out)
{
    const char *s = want_scalar(v, n, "a size");
    if (!s) return -1;
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"", 1}, {"k", 1024}, {"KiB", 1024}, {"m", 1 << 20}, {"MiB", 1 << 20}, {"g", 1 << 30}, {"GiB", 1 << 30}};
    const char *p = s;
    uint64_t x = 0;
    while (*p >= '0' && *p <= '9' && x <= max) x = x * 10 + (uint64_t)(*p++ - '0');
    size_t i;
    for (i = 0; i < SL_ARRAY_LEN(units); i++)
        if (p != s && !strcmp(p, units[i].unit)) break;
    if (i == SL_ARRAY_LEN(units)) {
        verr(v, n, "invalid size '%s' (expected bytes, or e.g. 64KiB, 1MiB)", s);
        return -1;
    }
    if (x > max / units[i].mult) {
        verr(v, n, "must be at most %llu bytes", (unsigned long long)max);
        return -1;
    }
    *out = x * units[i].mult;
    return 0;
}

/* 0 and the value when s is a boolean word, else -1. */
static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < SL_ARRAY_LEN(yes); i++) {
        if (!strcasecmp(s, yes[i])) return *out = 1, 0;
        if (!strcasecmp(s, no[i])) return *out = 0, 0;
    }
    return -1;
}

static int get_bool(vctx_t *v, const sl_node_t *n, int *out)
{
    const char *s = want_scalar(v, n, "a boolean");
    if (!s) return -1;
    if (parse_bool(s, out) == 0) return 0;
    verr(v, n, "expected a boolean (true or false), got '%s'", s);
    return -1;
}

/* A string value kept in the config. Empty strings are refused unless allow_empty. */
static const char *get_string(vctx_t *v, const sl_node_t *n, int allow_empty)
{
    const char *s = want_scalar(v, n, "a string");
    if (!s) return NULL;
    if (!*s && !allow_empty) {
        verr(v, n, "must not be empty");
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

/* RFC 1123 host name: dot-separated labels of letters, digits and '-', 1..63 bytes each, not
 * starting or ending with '-', 253 bytes at most. */
static int hostname_ok(const char *s, size_t len)
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

static int all_digits_dots(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) return 0;
    return 1;
}

/* Parses "host:port", "a.b.c.d:port" or "[v6]:port" into out (strings in the config arena).
 * scheme_key names where a scheme belongs ("upstream.scheme"), for the hint when the address is
 * written as a URL; NULL where there is none (listen addresses). */
static int parse_hostport_text(vctx_t *v, const sl_node_t *n, const char *s, sl_hostport_t *out, const char *scheme_key)
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
            verr(v, n, "invalid address '%s': the scheme does not belong in the address (write '%s'%s%s)", s, fix,
                 scheme_key ? " and set " : "", scheme_key ? scheme_key : "");
        else
            verr(v, n, "invalid address '%s': an address has no path (write '%s')", s, fix);
        return -1;
    }
    size_t hlen;
    int is_ip = 0;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') {
            verr(v, n, "invalid address '%s' (expected [IPv6]:port)", s);
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
            verr(v, n, "invalid address '%s' (expected host:port)", s);
            return -1;
        }
        if (memchr(s, ':', (size_t)(colon - s))) {
            verr(v, n, "invalid address '%s' (IPv6 addresses go in brackets, e.g. [::1]:8080)", s);
            return -1;
        }
        host = s;
        hlen = (size_t)(colon - s);
        if (hlen == 0) {
            verr(v, n, "invalid address '%s' (missing host)", s);
            return -1;
        }
        if (all_digits_dots(host, hlen)) {
            char tmp[16];
            unsigned char bin[4];
            if (hlen >= sizeof(tmp)) goto bad_v4;
            memcpy(tmp, host, hlen);
            tmp[hlen] = '\0';
            if (inet_pton(AF_INET, tmp, bin) != 1) goto bad_v4;
            is_ip = 1;
        } else if (!hostname_ok(host, hlen)) {
            verr(v, n, "invalid host name in '%s'", s);
            return -1;
        }
    }
    const char *port = colon + 1;
    size_t plen = strlen(port);
    long long p;
    if (plen == 0 || plen > 5 || port[0] == '+' || port[0] == '-' || parse_i64(port, &p) < 0 || p < 1 || p > 65535) {
        verr(v, n, "invalid port in '%s' (must be between 1 and 65535)", s);
        return -1;
    }
    out->text = sl_arena_strdup(v->a, s);
    out->host = sl_arena_strndup(v->a, host, hlen);
    out->port = (uint16_t)p;
    out->is_ip = is_ip;
    return 0;
bad_v6:
    verr(v, n, "invalid IPv6 address in '%s'", s);
    return -1;
bad_v4:
    verr(v, n, "invalid IPv4 address in '%s'", s);
    return -1;
}

static int get_hostport(vctx_t *v, const sl_node_t *n, sl_hostport_t *out, const char *scheme_key)
{
    const char *s = want_scalar(v, n, "an address (host:port)");
    if (!s) return -1;
    return parse_hostport_text(v, n, s, out, scheme_key);
}

/* A listen address: host:port read as sl_config_listen_addr() reads it at start-up, so
 * validation and the runtime agree; localhost becomes 127.0.0.1 here (text keeps what was
 * written). The socket address goes to *sa when sa is not NULL. 0, or -1 after reporting. */
static int get_listen(vctx_t *v, const sl_node_t *n, sl_hostport_t *out, struct sockaddr_storage *sa)
{
    sl_hostport_t hp;
    if (get_hostport(v, n, &hp, NULL) < 0) return -1;
    struct sockaddr_storage ss;
    if (sl_config_listen_addr(&hp, &ss) != 0) {
        verr(v, n,
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

/* ---- the schema engine ---- */

typedef enum {
    F_INT,      /* int, bounds min..max */
    F_U32,      /* uint32_t, bounds min..max */
    F_DURATION, /* uint64_t milliseconds, bounds min..max in ms */
    F_STRING,   /* const char *, non-empty */
    F_BOOL,     /* int 0/1 */
    F_ENUM,     /* an enum, value from choices */
    F_HOSTPORT, /* sl_hostport_t */
    F_LISTEN,   /* sl_hostport_t that a socket listens on (check_listen) */
    F_SECTION,  /* a nested map described by sub, at base + off */
    F_CUSTOM,   /* custom(v, node, base) */
    F_REJECT,   /* a known key that is refused with msg */
} ftype_t;

typedef struct choice {
    const char *name;
    int value;
    const char *unsupported; /* NULL: supported; otherwise the message */
} choice_t;

typedef struct field field_t;
typedef struct section {
    const field_t *fields;
    size_t n;
} section_t;

struct field {
    const char *name;
    ftype_t type;
    size_t off;
    long long min, max, def;
    const char *def_str;
    const section_t *sub;
    const choice_t *choices;
    void (*custom)(vctx_t *v, const sl_node_t *n, void *base);
    const char *msg;
    int required;
};

#define SECTION(tbl)                                                                                                   \
    {                                                                                                                  \
        tbl, SL_ARRAY_LEN(tbl)                                                                                         \
    }
#define MAX_SECTION_FIELDS 32

static unsigned edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned row[65];
    if (la > 64 || lb > 64) return 1000;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned diag = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned up = row[j];
            unsigned best = diag + (a[i - 1] != b[j - 1]);
            best = SL_MIN(best, up + 1);
            best = SL_MIN(best, row[j - 1] + 1);
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Reports an unknown key with the closest valid name, or the list of valid names. */
static void unknown_key(vctx_t *v, const sl_node_t *c, const char *const *names, size_t n)
{
    const char *best = NULL;
    unsigned best_d = 1000;
    for (size_t i = 0; i < n; i++) {
        unsigned dist = edit_distance(c->key, names[i]);
        if (dist < best_d) best_d = dist, best = names[i];
    }
    size_t klen = strlen(c->key);
    if (best && (best_d <= 2 || best_d * 3 <= klen) && best_d < klen + 1 && best_d < strlen(best)) {
        verr_at(v, c->key_line, c->key_col, "unknown key (did you mean '%s'?)", best);
        return;
    }
    sl_buf_t b = SL_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        sl_buf_printf(&b, "%s%s", i ? ", " : "", names[i]);
    verr_at(v, c->key_line, c->key_col, "unknown key (valid keys: %s)", sl_buf_cstr(&b));
    sl_buf_free(&b);
}

/* Returns the name of names closest to key by edit distance when it is close enough to be a
 * typo (at most max_d edits, or a third of the key), else NULL. */
static const char *closest_name(const char *key, const char *const *names, size_t n, unsigned max_d)
{
    const char *best = NULL;
    unsigned best_d = 1000;
    for (size_t i = 0; i < n; i++) {
        unsigned d = edit_distance(key, names[i]);
        if (d < best_d) best_d = d, best = names[i];
    }
    return best && (best_d <= max_d || best_d * 3 <= strlen(key)) && best_d < strlen(best) ? best : NULL;
}

/* Reports the key of c as an unknown what ("policy"), with the closest valid name when one is
 * close, and always the list of valid ones:
 *   unknown policy (did you mean 'retry'?); valid policies: ip_access, ... */
static void unknown_name(vctx_t *v, const sl_node_t *c, const char *what, const char *whats, const char *const *names,
                         size_t n, unsigned max_d)
{
    sl_buf_t b = SL_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        sl_buf_printf(&b, "%s%s", i ? ", " : "", names[i]);
    const char *best = closest_name(c->key, names, n, max_d);
    if (best)
        verr_at(v, c->key_line, c->key_col, "unknown %s (did you mean '%s'?); valid %s: %s", what, best, whats,
                sl_buf_cstr(&b));
    else
        verr_at(v, c->key_line, c->key_col, "unknown %s; valid %s: %s", what, whats, sl_buf_cstr(&b));
    sl_buf_free(&b);
}

/* The names a route's policies map and a stream route's plugins map take. */
static const char *const policy_names[] = {"ip_access",       "local_rate_limit", "path_rewrite",
                                           "request_headers", "timeout",          "retry",
                                           "websocket",       "response_headers", "cookie_rewrite"};
static const char *const plugin_names[] = {"ip-restriction", "limit-conn", "prometheus", "syslog"};

/* Writes every default of sec into base; nested sections included. */
static void apply_defaults(vctx_t *v, const section_t *sec, void *base)
{
    char *p = base;
    for (size_t i = 0; i < sec->n; i++) {
        const field_t *f = &sec->fields[i];
        switch (f->type) {
        case F_INT:
        case F_BOOL:
        case F_ENUM:
            *(int *)(p + f->off) = (int)f->def;
            break;
        case F_U32:
            *(uint32_t *)(p + f->off) = (uint32_t)f->def;
            break;
        case F_DURATION:
            *(uint64_t *)(p + f->off) = (uint64_t)f->def;
            break;
        case F_STRING:
            *(const char **)(p + f->off) = f->def_str;
            break;
        case F_HOSTPORT:
        case F_LISTEN:
            if (f->def_str) {
                /* Defaults are written as text in the table and known to be well formed. */
                sl_hostport_t *hp = (sl_hostport_t *)(p + f->off);
                const char *colon = strrchr(f->def_str, ':');
                hp->text = f->def_str;
                hp->host = sl_arena_strndup(v->a, f->def_str, (size_t)(colon - f->def_str));
                hp->port = (uint16_t)atoi(colon + 1);
                hp->is_ip = 1;
            }
            break;
        case F_SECTION:
            apply_defaults(v, f->sub, p + f->off);
            break;
        default:
            break;
        }
    }
}

static void parse_enum(vctx_t *v, const sl_node_t *n, const field_t *f, int *out)
{
    const char *s = want_scalar(v, n, "a string");
    if (!s) return;
    for (const choice_t *c = f->choices; c->name; c++) {
        if (strcmp(c->name, s) != 0) continue;
        if (c->unsupported)
            verr(v, n, "%s", c->unsupported);
        else
            *out = c->value;
        return;
    }
    sl_buf_t b = SL_BUF_INIT;
    for (const choice_t *c = f->choices; c->name; c++)
        sl_buf_printf(&b, "%s%s", c == f->choices ? "" : ", ", c->name);
    verr(v, n, "unknown value '%s' (expected one of: %s)", s, sl_buf_cstr(&b));
    sl_buf_free(&b);
}

static void parse_section(vctx_t *v, const sl_node_t *n, const section_t *sec, void *base);

static void parse_field(vctx_t *v, const sl_node_t *n, const field_t *f, void *base)
{
    char *p = (char *)base + f->off;
    long long x;
    switch (f->type) {
    case F_INT:
        if (get_int(v, n, f->min, f->max, &x) == 0) *(int *)p = (int)x;
        break;
    case F_U32:
        if (get_int(v, n, f->min, f->max, &x) == 0) *(uint32_t *)p = (uint32_t)x;
        break;
    case F_DURATION:
        get_duration(v, n, f->min, f->max, (uint64_t *)p);
        break;
    case F_STRING: {
        const char *s = get_string(v, n, 0);
        if (s) *(const char **)p = s;
        break;
    }
    case F_BOOL:
        get_bool(v, n, (int *)p);
        break;
    case F_ENUM:
        parse_enum(v, n, f, (int *)p);
        break;
    case F_HOSTPORT:
        /* F_HOSTPORT is an upstream node's address. */
        get_hostport(v, n, (sl_hostport_t *)p, "upstream.scheme");
        break;
    case F_LISTEN:
        get_listen(v, n, (sl_hostport_t *)p, NULL);
        break;
    case F_SECTION:
        parse_section(v, n, f->sub, p);
        break;
    case F_CUSTOM:
        f->custom(v, n, base);
        break;
    case F_REJECT:
        verr_at(v, n->key_line, n->key_col, "%s", f->msg);
        break;
    }
}

/* Walks map n against the table sec, writing into base (defaults must already be there). A null
 * node counts as an empty map, so "http:" with nothing after it keeps the defaults. */
static void parse_section(vctx_t *v, const sl_node_t *n, const section_t *sec, void *base)
{
    const sl_node_t *seen[MAX_SECTION_FIELDS] = {0};
    if (n && !sl_node_is_null(n)) {
        if (n->kind != SL_NODE_MAP) {
            verr(v, n, "expected a map, got %s", sl_node_kind_name(n));
            return;
        }
        for (const sl_node_t *c = n->first; c; c = c->next) {
            size_t i;
            for (i = 0; i < sec->n; i++)
                if (!strcmp(sec->fields[i].name, c->key)) break;
            size_t old = path_key(v, c->key);
            if (i == sec->n) {
                const char *names[MAX_SECTION_FIELDS];
                for (size_t k = 0; k < sec->n; k++)
                    names[k] = sec->fields[k].name;
                unknown_key(v, c, names, sec->n);
            } else { /* keys are unique here: unique_keys() dropped the repeats */
                seen[i] = c;
                parse_field(v, c, &sec->fields[i], base);
            }
            path_pop(v, old);
        }
    }
    for (size_t i = 0; i < sec->n; i++) {
        if (!sec->fields[i].required || seen[i]) continue;
        size_t old = path_key(v, sec->fields[i].name);
        verr(v, n, "is required");
        path_pop(v, old);
    }
}

/* Returns the value of key in map n, or NULL. */
/* FNV-1a over a node's kind, keys and scalars, its children in order; a map child under
 * skip is left out. Equal hashes: written the same (after ${VAR} substitution). */
static uint64_t node_hash(const sl_node_t *n, const char *skip)
{
    uint64_t h = 1469598103934665603ull;
#define MIX(p, len)                                                                                                    \
    for (size_t k_ = 0; k_ < (len); k_++) h = (h ^ ((const unsigned char *)(p))[k_]) * 1099511628211ull
    unsigned char kind = (unsigned char)n->kind;
    MIX(&kind, 1);
    if (n->kind == SL_NODE_SCALAR) {
        MIX(n->str ? n->str : "", n->len + 1);
    }
    for (const sl_node_t *c = n->first; c; c = c->next) {
        if (c->key && skip && !strcmp(c->key, skip)) continue;
        if (c->key) MIX(c->key, strlen(c->key) + 1);
        uint64_t ch = node_hash(c, NULL);
        MIX(&ch, sizeof(ch));
    }
#undef MIX
    return h;
}

static const sl_node_t *map_get(const sl_node_t *n, const char *key)
{
    if (!n || n->kind != SL_NODE_MAP) return NULL;
    for (const sl_node_t *c = n->first; c; c = c->next)
        if (!strcmp(c->key, key)) return c;
    return NULL;
}

/* Checks that n is a list; null counts as empty. Returns its length, or -1 after an error. */
static long want_list(vctx_t *v, const sl_node_t *n, int allow_empty)
{
    if (sl_node_is_null(n)) {
        if (allow_empty) return 0;
        verr(v, n, "must not be empty");
        return -1;
    }
    if (n->kind != SL_NODE_SEQ) {
        verr(v, n, "expected a list, got %s", sl_node_kind_name(n));
        return -1;
    }
    if (!allow_empty && n->n == 0) {
        verr(v, n, "must not be empty");
        return -1;
    }
    return (long)n->n;
}

/* ---- gateway ---- */

static void parse_workers(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_gateway_cfg_t *g = base;
    const char *s = want_scalar(v, n, "an integer or 'auto'");
    if (!s) return;
    if (!strcmp(s, "auto")) {
        g->workers = 0;
        return;
    }
    long long x;
    if (parse_i64(s, &x) < 0 || x < 1 || x > 64) {
        verr(v, n, "must be 'auto' or an integer between 1 and 64");
        return;
    }
    g->workers = (int)x;
}

static void parse_http_listen(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_gateway_cfg_t *g = (sl_gateway_cfg_t *)((char *)base - offsetof(sl_gateway_cfg_t, http));
    if (n->kind == SL_NODE_SCALAR && !sl_node_is_null(n)) {
        sl_hostport_t hp;
        if (get_listen(v, n, &hp, NULL) < 0) return;
        g->http.listen = sl_arena_calloc(v->a, sizeof(*g->http.listen));
        g->http.listen[0] = hp;
        g->http.n_listen = 1;
        return;
    }
    long cnt = want_list(v, n, 0);
    if (cnt <= 0) return;
    sl_hostport_t *list = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*list));
    struct sockaddr_storage *sa = sl_xcalloc((size_t)cnt, sizeof(*sa));
    size_t k = 0, i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = path_idx(v, i);
        if (get_listen(v, c, &list[k], &sa[k]) == 0) {
            /* Compared as socket addresses: localhost:80 is 127.0.0.1:80, [::]:80 is [0::0]:80. */
            for (size_t j = 0; j < k; j++)
                if (same_sockaddr(&sa[j], &sa[k])) {
                    if (!strcmp(list[j].text, list[k].text))
                        verr(v, c, "duplicate listen address '%s'", list[k].text);
                    else
                        verr(v, c, "duplicate listen address '%s' (the same socket as '%s')", list[k].text,
                             list[j].text);
                    break;
                }
            k++;
        }
        path_pop(v, old);
    }
    free(sa);
    g->http.listen = list;
    g->http.n_listen = k;
}

static const choice_t underscore_choices[] = {
    {"drop", SL_UNDERSCORES_DROP, NULL}, {"allow", SL_UNDERSCORES_ALLOW, NULL},
    {"reject", SL_UNDERSCORES_REJECT, NULL}, {NULL, 0, NULL}};
static const choice_t escaped_slash_choices[] = {
    {"reject", SL_ESCAPED_SLASHES_REJECT, NULL}, {"keep", SL_ESCAPED_SLASHES_KEEP, NULL}, {NULL, 0, NULL}};

static const field_t http_fields[] = {
    {.name = "listen", .type = F_CUSTOM, .custom = parse_http_listen},
    {.name = "max_header_bytes",
     .type = F_U32,
     .off = offsetof(sl_gateway_cfg_t, http.max_header_bytes) - offsetof(sl_gateway_cfg_t, http),
     .min = 1024,
     .max = 1048576,
     .def = 32768},
    {.name = "max_headers",
     .type = F_U32,
     .off = offsetof(sl_gateway_cfg_t, http.max_headers) - offsetof(sl_gateway_cfg_t, http),
     .min = 1,
     .max = 1000,
     .def = 100},
    {.name = "max_uri_bytes",
     .type = F_U32,
     .off = offsetof(sl_gateway_cfg_t, http.max_uri_bytes) - offsetof(sl_gateway_cfg_t, http),
     .min = 256,
     .max = 1048576,
     .def = 8192},
    {.name = "header_timeout",
     .type = F_DURATION,
     .off = offsetof(sl_gateway_cfg_t, http.header_timeout_ms) - offsetof(sl_gateway_cfg_t, http),
     .min = 1,
     .max = 3600000,
     .def = 10000},
    {.name = "keepalive_timeout",
     .type = F_DURATION,
     .off = offsetof(sl_gateway_cfg_t, http.keepalive_timeout_ms) - offsetof(sl_gateway_cfg_t, http),
     .min = 1,
     .max = 3600000,
     .def = 60000},
    {.name = "body_timeout",
     .type = F_DURATION,
     .off = offsetof(sl_gateway_cfg_t, http.body_timeout_ms) - offsetof(sl_gateway_cfg_t, http),
     .min = 1,
     .max = 3600000,
     .def = 60000},
    {.name = "headers_with_underscores",
     .type = F_ENUM,
     .off = offsetof(sl_gateway_cfg_t, http.headers_with_underscores) - offsetof(sl_gateway_cfg_t, http),
     .choices = underscore_choices,
     .def = SL_UNDERSCORES_DROP},
    {.name = "merge_slashes",
     .type = F_BOOL,
     .off = offsetof(sl_gateway_cfg_t, http.merge_slashes) - offsetof(sl_gateway_cfg_t, http),
     .def = 1},
    {.name = "path_with_escaped_slashes",
     .type = F_ENUM,
     .off = offsetof(sl_gateway_cfg_t, http.escaped_slashes) - offsetof(sl_gateway_cfg_t, http),
     .choices = escaped_slash_choices,
     .def = SL_ESCAPED_SLASHES_REJECT},
};
static const section_t http_section = SECTION(http_fields);

#define STATUS_OFF(m) (offsetof(sl_gateway_cfg_t, status.m) - offsetof(sl_gateway_cfg_t, status))
static const field_t status_fields[] = {
    {.name = "enabled", .type = F_BOOL, .off = STATUS_OFF(enabled), .def = 1},
    {.name = "listen", .type = F_LISTEN, .off = STATUS_OFF(listen), .def_str = "127.0.0.1:9091"},
};
static const section_t status_section = SECTION(status_fields);

/* "status: false" / "status: off" disable the status listener; a map configures it. */
static void parse_status(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_gateway_cfg_t *g = base;
    if (n->kind == SL_NODE_SCALAR && !sl_node_is_null(n)) {
        get_bool(v, n, &g->status.enabled);
        return;
    }
    parse_section(v, n, &status_section, &g->status);
}

static int token_char(char c);

/* A non-empty token (RFC 9110 5.6.2): a header name, a method. */
static int is_token(const char *s)
{
    if (!*s) return 0;
    while (*s && token_char(*s)) s++;
    return *s == '\0';
}

#define ALOG_OFF(m) (offsetof(sl_gateway_cfg_t, access_log.m) - offsetof(sl_gateway_cfg_t, access_log))
static const choice_t alog_formats[] = {{"json", SL_ALOG_JSON, NULL}, {"combined", SL_ALOG_COMBINED, NULL}, {NULL, 0, NULL}};

/* fields: names from sl_access_field_names(), each once; "request_header.NAME" with NAME a
 * header name (matched without case). */
static void parse_alog_fields(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_access_format_t *fmt = &((sl_gateway_cfg_t *)((char *)base - offsetof(sl_gateway_cfg_t, access_log)))->access_log.fmt;
    long cnt = want_list(v, n, 0);
    if (cnt <= 0) return;
    sl_access_field_t *fs = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*fs));
    size_t k = 0, i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = path_idx(v, i);
        const char *name = want_scalar(v, c, "a field name");
        int id = name ? sl_access_field_lookup(name) : -1;
        if (name && id < 0) {
            verr(v, c, "unknown access log field '%s' (expected one of: %s)", name, sl_access_field_names());
        } else if (name) {
            const char *hdr = id == SL_AF_REQUEST_HEADER || id == SL_AF_RESPONSE_HEADER ? strchr(name, '.') + 1 : NULL;
            if (id == SL_AF_RESPONSE_HEADER) fmt->response_headers = 1;
            int ok = !hdr || is_token(hdr), dup = 0;
            for (size_t j = 0; j < k && !dup; j++)
                dup = !strcasecmp(fs[j].key, name);
            if (!ok) {
                verr(v, c, "'%s' is not a header name", hdr);
            } else if (dup) {
                verr(v, c, "field '%s' is listed twice", name);
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
        path_pop(v, old);
    }
    fmt->fields = fs;
    fmt->n_fields = k;
}

static void parse_alog_buffer(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_access_format_t *fmt = &((sl_gateway_cfg_t *)((char *)base - offsetof(sl_gateway_cfg_t, access_log)))->access_log.fmt;
    uint64_t x;
    if (get_size(v, n, 4u << 20, &x) != 0) return;
    if (x < 4096) {
        verr(v, n, "must be at least 4KiB");
        return;
    }
    fmt->buffer = (size_t)x;
}

static const field_t alog_fields[] = {
    {.name = "path", .type = F_STRING, .off = ALOG_OFF(path), .def_str = "stdout"},
    {.name = "format", .type = F_ENUM, .off = ALOG_OFF(fmt.format), .choices = alog_formats, .def = SL_ALOG_JSON},
    {.name = "fields", .type = F_CUSTOM, .custom = parse_alog_fields},
    {.name = "buffer", .type = F_CUSTOM, .custom = parse_alog_buffer},
    {.name = "flush", .type = F_DURATION, .off = ALOG_OFF(fmt.flush_ms), .min = 0, .max = 60000, .def = SL_ACCESS_FLUSH_DEFAULT_MS},
};
static const section_t alog_section = SECTION(alog_fields);

/* fields choose what a JSON line holds; the combined format is fixed. */
static void check_alog_fields(vctx_t *v, const sl_node_t *root, const sl_access_format_t *fmt)
{
    if (!root || fmt->format != SL_ALOG_COMBINED || !fmt->fields) return;
    const sl_node_t *g = map_get(root, "gateway"), *a = g ? map_get(g, "access_log") : NULL;
    const sl_node_t *fl = a ? map_get(a, "fields") : NULL;
    if (!fl) return;
    size_t o1 = path_key(v, "gateway"), o2 = path_key(v, "access_log"), o3 = path_key(v, "fields");
    verr(v, fl, "applies to format json only (combined has fixed fields)");
    path_pop(v, o3);
    path_pop(v, o2);
    path_pop(v, o1);
}

#define LOG_OFF(m) (offsetof(sl_gateway_cfg_t, log.m) - offsetof(sl_gateway_cfg_t, log))
static const choice_t log_levels[] = {{"debug", SL_LOG_DEBUG, NULL}, {"info", SL_LOG_INFO, NULL},
                                      {"warn", SL_LOG_WARN, NULL},   {"error", SL_LOG_ERROR, NULL},
                                      {NULL, 0, NULL}};
static const choice_t log_formats[] = {{"text", SL_LOG_TEXT, NULL}, {"json", SL_LOG_JSON, NULL}, {NULL, 0, NULL}};
static const field_t log_fields[] = {
    {.name = "level", .type = F_ENUM, .off = LOG_OFF(level), .choices = log_levels, .def = SL_LOG_INFO},
    {.name = "format", .type = F_ENUM, .off = LOG_OFF(format), .choices = log_formats, .def = SL_LOG_TEXT},
};
static const section_t log_section = SECTION(log_fields);

#define RID_OFF(m) offsetof(sl_request_id_cfg_t, m)
static const choice_t rid_formats[] = {{"uuid", SL_REQUEST_ID_UUID, NULL}, {"hex", SL_REQUEST_ID_HEX, NULL}, {NULL, 0, NULL}};
static const choice_t rid_incoming[] = {{"keep", SL_REQUEST_ID_KEEP, NULL}, {"replace", SL_REQUEST_ID_REPLACE, NULL}, {NULL, 0, NULL}};
static const field_t rid_fields[] = {
    {.name = "enabled", .type = F_BOOL, .off = RID_OFF(enabled), .def = 1},
    {.name = "header", .type = F_STRING, .off = RID_OFF(header), .def_str = "X-Request-Id"},
    {.name = "format", .type = F_ENUM, .off = RID_OFF(format), .choices = rid_formats, .def = SL_REQUEST_ID_UUID},
    {.name = "incoming", .type = F_ENUM, .off = RID_OFF(incoming), .choices = rid_incoming, .def = SL_REQUEST_ID_KEEP},
};
static const section_t rid_section = SECTION(rid_fields);

/* request_id: a map of rid_fields, or true / false for the defaults on or off. The header is a
 * token, and not one whose meaning the gateway owns. */
static void parse_request_id_into(vctx_t *v, const sl_node_t *n, sl_request_id_cfg_t *r)
{
    apply_defaults(v, &rid_section, r);
    r->set = 1;
    if (n->kind == SL_NODE_SCALAR && !sl_node_is_null(n)) {
        get_bool(v, n, &r->enabled);
    } else {
        parse_section(v, n, &rid_section, r);
        const sl_node_t *h = n->kind == SL_NODE_MAP ? map_get(n, "header") : NULL;
        int ok = r->header && is_token(r->header);
        static const char *const owned[] = {"host", "connection", "content-length", "transfer-encoding", "upgrade",
                                            "te", "trailer", "keep-alive", "x-forwarded-for"};
        for (size_t i = 0; ok && i < SL_ARRAY_LEN(owned); i++)
            if (!strcasecmp(r->header, owned[i])) ok = 0;
        if (h && !ok) {
            size_t old = path_key(v, "header");
            verr(v, h, "'%s' cannot carry a request id (it must be a header name the gateway does not write itself)", r->header);
            path_pop(v, old);
        }
    }
    r->header_len = r->header ? strlen(r->header) : 0;
}

static void parse_gw_request_id(vctx_t *v, const sl_node_t *n, void *base)
{
    parse_request_id_into(v, n, &((sl_gateway_cfg_t *)base)->request_id);
}

#define GW_OFF(m) offsetof(sl_gateway_cfg_t, m)
static const field_t gateway_fields[] = {
    {.name = "workers", .type = F_CUSTOM, .custom = parse_workers},
    {.name = "proxy_layers", .type = F_INT, .off = GW_OFF(proxy_layers), .min = 0, .max = 16, .def = 0},
    {.name = "shutdown_timeout",
     .type = F_DURATION,
     .off = GW_OFF(shutdown_timeout_ms),
     .min = 0,
     .max = 3600000,
     .def = 30000},
    {.name = "http", .type = F_SECTION, .off = GW_OFF(http), .sub = &http_section},
    {.name = "status", .type = F_CUSTOM, .custom = parse_status},
    {.name = "access_log", .type = F_SECTION, .off = GW_OFF(access_log), .sub = &alog_section},
    {.name = "request_id", .type = F_CUSTOM, .custom = parse_gw_request_id},
    {.name = "log", .type = F_SECTION, .off = GW_OFF(log), .sub = &log_section},
};
static const section_t gateway_section = SECTION(gateway_fields);

/* ---- upstream ---- */

static const choice_t scheme_choices[] = {
    {"http", SL_SCHEME_HTTP, NULL},
    {"https", SL_SCHEME_HTTPS, "scheme 'https' is not supported yet"},
    {"grpc", SL_SCHEME_GRPC, "scheme 'grpc' is not supported yet"},
    {"grpcs", SL_SCHEME_GRPCS, "scheme 'grpcs' is not supported yet"},
    {"tcp", SL_SCHEME_TCP, NULL},
    {"udp", SL_SCHEME_UDP, NULL},
    {NULL, 0, NULL},
};

static const choice_t balance_choices[] = {
    {"random", SL_BALANCE_RANDOM, NULL},
    {"round_robin", SL_BALANCE_ROUND_ROBIN, NULL},
    {"weighted", SL_BALANCE_WEIGHTED, NULL},
    {"cookie", SL_BALANCE_COOKIE, NULL},
    {"hash", SL_BALANCE_HASH, NULL},
    {"least_conn", SL_BALANCE_LEAST_CONN, NULL},
    {"ewma", SL_BALANCE_EWMA, NULL},
    {NULL, 0, NULL},
};

static const choice_t hash_on_choices[] = {
    {"ip", SL_HASH_IP, NULL},
    {"header", SL_HASH_HEADER, NULL},
    {"query", SL_HASH_QUERY, NULL},
    {"cookie", SL_HASH_COOKIE, NULL},
    {NULL, 0, NULL},
};

static const field_t node_fields[] = {
    {.name = "address", .type = F_HOSTPORT, .off = offsetof(sl_node_cfg_t, addr), .required = 1},
    {.name = "weight", .type = F_U32, .off = offsetof(sl_node_cfg_t, weight), .min = 1, .max = 1000, .def = 1},
    {.name = "priority", .type = F_INT, .off = offsetof(sl_node_cfg_t, priority), .min = -1000, .max = 1000, .def = 0},
};
static const section_t node_section = SECTION(node_fields);

static void parse_nodes(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_upstream_cfg_t *u = base;
    long cnt = want_list(v, n, 0);
    if (cnt <= 0) return;
    u->nodes = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*u->nodes));
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        sl_node_cfg_t *nc = &u->nodes[i];
        size_t old = path_idx(v, i);
        apply_defaults(v, &node_section, nc);
        nc->line = c->line;
        nc->col = c->col;
        if (c->kind == SL_NODE_SCALAR && !sl_node_is_null(c))
            get_hostport(v, c, &nc->addr, "upstream.scheme");
        else if (c->kind == SL_NODE_MAP)
            parse_section(v, c, &node_section, nc);
        else
            verr(v, c, "expected an address or a map with 'address', got %s", sl_node_kind_name(c));
        path_pop(v, old);
    }
    u->n_nodes = (size_t)cnt;
}

#define UP_OFF(m) offsetof(sl_upstream_cfg_t, m)
static const field_t timeouts_fields[] = {
    {.name = "connect", .type = F_DURATION, .off = UP_OFF(connect_timeout_ms), .min = 1, .max = 3600000, .def = 2000},
    {.name = "send", .type = F_DURATION, .off = UP_OFF(send_timeout_ms), .min = 1, .max = DAY_MS, .def = 30000},
    {.name = "read", .type = F_DURATION, .off = UP_OFF(read_timeout_ms), .min = 1, .max = DAY_MS, .def = 30000},
    {.name = "idle", .type = F_DURATION, .off = UP_OFF(idle_timeout_ms), .min = 1, .max = DAY_MS},
};
static const section_t timeouts_section = SECTION(timeouts_fields);

static const field_t keepalive_fields[] = {
    {.name = "max_idle", .type = F_U32, .off = UP_OFF(keepalive_max_idle), .min = 0, .max = 100000, .def = 64},
    {.name = "idle_timeout",
     .type = F_DURATION,
     .off = UP_OFF(keepalive_idle_timeout_ms),
     .min = 1,
     .max = DAY_MS,
     .def = 60000},
};
static const section_t keepalive_section = SECTION(keepalive_fields);

static const field_t hash_fields[] = {
    {.name = "on", .type = F_ENUM, .off = UP_OFF(hash.on), .choices = hash_on_choices, .def = SL_HASH_IP},
    {.name = "key", .type = F_STRING, .off = UP_OFF(hash.key)},
};
static const section_t hash_section = SECTION(hash_fields);

static const field_t cookie_fields[] = {
    {.name = "name", .type = F_STRING, .off = UP_OFF(cookie.name)},
    {.name = "ttl", .type = F_DURATION, .off = UP_OFF(cookie.ttl_ms), .min = 0, .max = 3650 * DAY_MS, .def = 0},
    {.name = "path", .type = F_STRING, .off = UP_OFF(cookie.path), .def_str = "/"},
};
static const section_t cookie_section = SECTION(cookie_fields);

/* ---- upstream.health_check, upstream.passive_check ---- */

static int token_char(char c);

/* A list of statuses: integers (500) or inclusive range strings ("200-399"), 100..599. */
static void parse_status_list(vctx_t *v, const sl_node_t *n, sl_status_range_t **out, size_t *n_out)
{
    long cnt = want_list(v, n, 0);
    if (cnt <= 0) return;
    sl_status_range_t *r = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*r));
    size_t k = 0, i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = path_idx(v, i);
        const char *s = want_scalar(v, c, "a status (500) or a range (\"200-399\")");
        long long lo, hi;
        const char *dash = s ? strchr(s + (*s == '-'), '-') : NULL;
        if (!s) {
            /* reported */
        } else if (dash) {
            char a[16], b[16];
            size_t la = (size_t)(dash - s), lb = strlen(dash + 1);
            if (la == 0 || la >= sizeof(a) || lb == 0 || lb >= sizeof(b)) {
                verr(v, c, "invalid status range '%s' (expected e.g. \"200-399\")", s);
            } else {
                memcpy(a, s, la), a[la] = '\0';
                memcpy(b, dash + 1, lb), b[lb] = '\0';
                if (parse_i64(a, &lo) < 0 || parse_i64(b, &hi) < 0)
                    verr(v, c, "invalid status range '%s' (expected e.g. \"200-399\")", s);
                else if (lo < 100 || hi > 599 || lo > hi)
                    verr(v, c, "invalid status range '%s' (statuses are 100 to 599, low first)", s);
                else
                    r[k].lo = (int)lo, r[k++].hi = (int)hi;
            }
        } else if (parse_i64(s, &lo) < 0) {
            verr(v, c, "expected a status (500) or a range (\"200-399\"), got '%s'", s);
        } else if (lo < 100 || lo > 599) {
            verr(v, c, "must be between 100 and 599");
        } else {
            r[k].lo = r[k].hi = (int)lo;
            k++;
        }
        path_pop(v, old);
    }
    *out = r;
    *n_out = k;
}

static void parse_hc_expected(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    parse_status_list(v, n, &h->expected, &h->n_expected);
}

static void parse_pc_statuses(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_passive_cfg_t *p = base;
    parse_status_list(v, n, &p->statuses, &p->n_statuses);
}

static void parse_hc_path(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    const char *s = get_string(v, n, 0);
    if (!s) return;
    if (*s != '/')
        verr(v, n, "must start with '/'");
    else if (strpbrk(s, " \t\r\n"))
        verr(v, n, "must not contain spaces or line breaks");
    else
        h->path = s;
}

static void parse_hc_method(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    const char *s = get_string(v, n, 0);
    if (!s) return;
    for (const char *p = s; *p; p++)
        if (!token_char(*p)) {
            verr(v, n, "invalid method '%s'", s);
            return;
        }
    h->method = s;
}

static void parse_hc_host(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    const char *s = get_string(v, n, 0);
    if (s && strpbrk(s, " \t\r\n/"))
        verr(v, n, "invalid host '%s'", s);
    else if (s)
        h->host = s;
}

static void parse_hc_headers(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    if (sl_node_is_null(n)) return;
    if (n->kind != SL_NODE_MAP) {
        verr(v, n, "expected a map of header names to values, got %s", sl_node_kind_name(n));
        return;
    }
    h->headers = sl_arena_calloc(v->a, n->n * sizeof(*h->headers));
    for (const sl_node_t *c = n->first; c; c = c->next) {
        size_t old = path_key(v, c->key);
        int ok = is_token(c->key);
        if (!ok) {
            verr_at(v, c->key_line, c->key_col, "invalid header name");
        } else if (!strcasecmp(c->key, "host") || !strcasecmp(c->key, "connection") ||
                   !strcasecmp(c->key, "content-length") || !strcasecmp(c->key, "transfer-encoding")) {
            verr_at(v, c->key_line, c->key_col, "is set by the health checker%s",
                    strcasecmp(c->key, "host") ? "" : " (use health_check.host)");
        } else {
            const char *val = get_string(v, c, 1);
            if (val && strpbrk(val, "\r\n")) {
                verr(v, c, "header values must not contain line breaks");
            } else if (val) {
                h->headers[h->n_headers].name = sl_arena_strdup(v->a, c->key);
                h->headers[h->n_headers++].value = val;
            }
        }
        path_pop(v, old);
    }
}

/* A payload as hex digits, two per byte, spaces between bytes allowed ("00 00 00 08 04d2162f");
 * with any, "??" is a byte that may be anything. Returns the length, or -1 after an error. */
static long parse_hex_bytes(vctx_t *v, const sl_node_t *n, unsigned char **out, unsigned char **any)
{
    const char *s = get_string(v, n, 0);
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
            verr(v, n, "expected hex digits, two per byte (spaces between bytes allowed%s), at '%.8s'",
                 any ? ", ?? for any byte" : "", p);
            return -1;
        }
        char d[3] = {p[0], p[1], 0};
        b[len++] = (unsigned char)strtoul(d, NULL, 16);
        p += 2;
    }
    if (!len) {
        verr(v, n, "must not be empty");
        return -1;
    }
    *out = b;
    if (any) *any = a;
    return (long)len;
}

/* send and send_hex (expect and expect_hex) say the same thing: one of them. */
static int hc_exclusive(vctx_t *v, const sl_node_t *n, int taken, const char *what)
{
    if (!taken) return 0;
    verr(v, n, "only one of %s and %s_hex", what, what);
    return -1;
}

static void parse_hc_send(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    const char *s = get_string(v, n, 0);
    if (!s || hc_exclusive(v, n, h->send_len != 0, "send")) return;
    h->send = (const unsigned char *)s;
    h->send_len = strlen(s);
}

static void parse_hc_expect(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    const char *s = get_string(v, n, 0);
    if (!s || hc_exclusive(v, n, h->expect_len != 0, "expect")) return;
    if (strlen(s) > SL_HEALTH_EXPECT_MAX) {
        verr(v, n, "must be at most %d bytes", SL_HEALTH_EXPECT_MAX);
        return;
    }
    h->expect = (const unsigned char *)s;
    h->expect_any = NULL;
    h->expect_len = strlen(s);
}

static void parse_hc_send_hex(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    unsigned char *b;
    if (hc_exclusive(v, n, h->send_len != 0, "send")) return;
    long len = parse_hex_bytes(v, n, &b, NULL);
    if (len < 0) return;
    h->send = b;
    h->send_len = (size_t)len;
}

static void parse_hc_expect_hex(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_health_cfg_t *h = base;
    unsigned char *b, *a;
    if (hc_exclusive(v, n, h->expect_len != 0, "expect")) return;
    long len = parse_hex_bytes(v, n, &b, &a);
    if (len < 0) return;
    if (len > SL_HEALTH_EXPECT_MAX) {
        verr(v, n, "must be at most %d bytes", SL_HEALTH_EXPECT_MAX);
        return;
    }
    h->expect = b;
    h->expect_any = a;
    h->expect_len = (size_t)len;
}

#define HC_OFF(m) offsetof(sl_health_cfg_t, m)
static const field_t health_fields[] = {
    {.name = "path", .type = F_CUSTOM, .custom = parse_hc_path},
    {.name = "host", .type = F_CUSTOM, .custom = parse_hc_host},
    {.name = "method", .type = F_CUSTOM, .custom = parse_hc_method},
    {.name = "headers", .type = F_CUSTOM, .custom = parse_hc_headers},
    {.name = "expected_statuses", .type = F_CUSTOM, .custom = parse_hc_expected},
    {.name = "interval", .type = F_DURATION, .off = HC_OFF(interval_ms), .min = 10, .max = DAY_MS, .def = 10000},
    {.name = "timeout", .type = F_DURATION, .off = HC_OFF(timeout_ms), .min = 1, .max = 3600000, .def = 2000},
    {.name = "healthy_threshold", .type = F_U32, .off = HC_OFF(healthy_threshold), .min = 1, .max = 1000, .def = 2},
    {.name = "unhealthy_threshold",
     .type = F_U32,
     .off = HC_OFF(unhealthy_threshold),
     .min = 1,
     .max = 1000,
     .def = 3},
    {.name = "send", .type = F_CUSTOM, .custom = parse_hc_send},
    {.name = "expect", .type = F_CUSTOM, .custom = parse_hc_expect},
    {.name = "send_hex", .type = F_CUSTOM, .custom = parse_hc_send_hex},
    {.name = "expect_hex", .type = F_CUSTOM, .custom = parse_hc_expect_hex},
};
static const section_t health_section = SECTION(health_fields);

static void parse_health_check(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_health_cfg_t *h = &((sl_upstream_cfg_t *)base)->health_check;
    apply_defaults(v, &health_section, h);
    h->path = "/";
    h->method = "GET";
    h->enabled = 1;
    parse_section(v, n, &health_section, h);
    const sl_node_t *t = map_get(n, "timeout");
    if (!t) {
        /* Unset, the timeout never outlasts the interval. */
        if (h->timeout_ms > h->interval_ms) h->timeout_ms = h->interval_ms;
    } else if (h->timeout_ms > h->interval_ms) {
        size_t old = path_key(v, "timeout");
        verr(v, t, "must not be longer than interval");
        path_pop(v, old);
    }
}

#define PC_OFF(m) offsetof(sl_passive_cfg_t, m)
static const field_t passive_fields[] = {
    {.name = "failures", .type = F_U32, .off = PC_OFF(failures), .min = 1, .max = 1000, .def = 3},
    {.name = "statuses", .type = F_CUSTOM, .custom = parse_pc_statuses},
    {.name = "cooldown", .type = F_DURATION, .off = PC_OFF(cooldown_ms), .min = 1, .max = DAY_MS, .def = 10000},
};
static const section_t passive_section = SECTION(passive_fields);

static void parse_passive_check(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_passive_cfg_t *p = &((sl_upstream_cfg_t *)base)->passive_check;
    apply_defaults(v, &passive_section, p);
    p->enabled = 1;
    parse_section(v, n, &passive_section, p);
}

static const choice_t unhealthy_choices[] = {{"panic", 0, NULL}, {"reject", 1, NULL}, {NULL, 0, NULL}};

static const choice_t pp_send_choices[] = {
    {"v1", SL_PROXY_PROTOCOL_V1, NULL},
    {"v2", SL_PROXY_PROTOCOL_V2, NULL},
    {NULL, 0, NULL},
};
static const field_t pp_send_fields[] = {
    {.name = "send", .type = F_ENUM, .choices = pp_send_choices, .def = SL_PROXY_PROTOCOL_NONE, .required = 1},
};
static const section_t pp_send_section = SECTION(pp_send_fields);

static const field_t upstream_fields[] = {
    {.name = "scheme", .type = F_ENUM, .off = UP_OFF(scheme), .choices = scheme_choices, .def = SL_SCHEME_HTTP},
    {.name = "balance",
     .type = F_ENUM,
     .off = UP_OFF(balance),
     .choices = balance_choices,
     .def = SL_BALANCE_RANDOM},
    {.name = "nodes", .type = F_CUSTOM, .custom = parse_nodes, .required = 1},
    {.name = "timeouts", .type = F_SECTION, .off = 0, .sub = &timeouts_section},
    {.name = "keepalive", .type = F_SECTION, .off = 0, .sub = &keepalive_section},
    {.name = "resolve_interval",
     .type = F_DURATION,
     .off = UP_OFF(resolve_interval_ms),
     .min = 1000,
     .max = DAY_MS,
     .def = 30000},
    {.name = "hash", .type = F_SECTION, .off = 0, .sub = &hash_section},
    {.name = "cookie", .type = F_SECTION, .off = 0, .sub = &cookie_section},
    {.name = "health_check", .type = F_CUSTOM, .custom = parse_health_check},
    {.name = "passive_check", .type = F_CUSTOM, .custom = parse_passive_check},
    {.name = "on_all_unhealthy",
     .type = F_ENUM,
     .off = UP_OFF(reject_when_all_unhealthy),
     .choices = unhealthy_choices,
     .def = 0},
    {.name = "tries", .type = F_U32, .off = UP_OFF(tries), .min = 1, .max = 100, .def = 2},
    {.name = "max_sessions", .type = F_U32, .off = UP_OFF(max_sessions), .min = 1, .max = 10000000, .def = 10000},
    {.name = "proxy_protocol", .type = F_SECTION, .off = UP_OFF(proxy_protocol_send), .sub = &pp_send_section},
};
static const section_t upstream_section = SECTION(upstream_fields);

/* Upstream keys that belong to one type of service, checked once the whole service is read
 * (its type may come after its upstream). */
static const struct {
    const char *section; /* NULL: upstream itself */
    const char *key;
    int stream;          /* 1: stream services only; 0: http services only */
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
static void upstream_key_err(vctx_t *v, const sl_node_t *k, const char *section, const char *key, const char *msg)
{
    size_t o1 = path_key(v, "upstream");
    size_t o2 = section ? path_key(v, section) : v->plen;
    size_t o3 = path_key(v, key);
    verr_at(v, k->key_line, k->key_col, "%s", msg);
    path_pop(v, o3);
    path_pop(v, o2);
    path_pop(v, o1);
}

/* What the upstream of an http or a stream service may hold, and the scheme that goes with it. */
static void check_upstream_kind(vctx_t *v, const sl_node_t *svc_node, sl_service_cfg_t *svc)
{
    if (!svc->has_upstream) return;
    int stream = svc->type == SL_SERVICE_STREAM;
    const sl_node_t *un = map_get(svc_node, "upstream");
    char msg[192];
    for (size_t i = 0; i < SL_ARRAY_LEN(kind_keys); i++) {
        const sl_node_t *sec = kind_keys[i].section ? map_get(un, kind_keys[i].section) : un;
        const sl_node_t *k = map_get(sec, kind_keys[i].key);
        if (!k || kind_keys[i].stream == stream) continue;
        snprintf(msg, sizeof(msg), "only for %s services%s%s%s", kind_keys[i].stream ? "stream" : "http",
                 kind_keys[i].why ? " (" : "", kind_keys[i].why ? kind_keys[i].why : "", kind_keys[i].why ? ")" : "");
        upstream_key_err(v, k, kind_keys[i].section, kind_keys[i].key, msg);
    }
    sl_upstream_cfg_t *u = &svc->upstream;
    const sl_node_t *scheme = map_get(un, "scheme");
    int l4 = u->scheme == SL_SCHEME_TCP || u->scheme == SL_SCHEME_UDP;
    /* A scheme that did not parse was reported already; u->scheme then holds the default
     * (scheme_choices lists the schemes in enum order). */
    int parsed = scheme && scheme->kind == SL_NODE_SCALAR && !scheme->bad &&
                 !strcmp(scheme->str, scheme_choices[u->scheme].name);
    size_t old = path_key(v, "upstream.scheme");
    if (stream && !scheme)
        verr(v, un, "is required for stream services (tcp or udp)");
    else if (parsed && stream && !l4)
        verr(v, scheme, "stream services use tcp or udp");
    else if (parsed && !stream && l4)
        verr(v, scheme, "'%s' is for stream services (type: stream)", scheme->str);
    path_pop(v, old);
    if (!stream) return;
    if (u->balance == SL_BALANCE_COOKIE) {
        old = path_key(v, "upstream.balance");
        verr(v, map_get(un, "balance"), "cookie balancing needs HTTP (stream services can use hash: {on: ip})");
        path_pop(v, old);
    }
    const sl_node_t *on = map_get(map_get(un, "hash"), "on");
    if (on && u->hash.on != SL_HASH_IP) {
        old = path_key(v, "upstream.hash.on");
        verr(v, on, "stream services hash on ip (the client address) only");
        path_pop(v, old);
    }
    const sl_node_t *k = map_get(un, "max_sessions");
    if (k && u->scheme == SL_SCHEME_TCP) upstream_key_err(v, k, NULL, "max_sessions", "only for udp upstreams");
    k = map_get(un, "proxy_protocol");
    if (k && u->scheme == SL_SCHEME_UDP) upstream_key_err(v, k, NULL, "proxy_protocol", "only for tcp upstreams");
    k = map_get(un, "tries");
    if (k && u->scheme == SL_SCHEME_UDP)
        upstream_key_err(v, k, NULL, "tries", "only for tcp upstreams (a UDP session has no connect to try again)");
    k = map_get(un, "health_check");
    if (k && u->scheme == SL_SCHEME_UDP)
        upstream_key_err(v, k, NULL, "health_check",
                         "only for tcp upstreams: use passive_check, where a datagram the node refuses (ICMP "
                         "port unreachable) counts as a failure");
    if (!u->idle_timeout_ms) u->idle_timeout_ms = u->scheme == SL_SCHEME_UDP ? 30000 : 600000;
}

/* ---- routes ---- */

static void parse_route_name(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    const char *s = get_string(v, n, 0);
    if (!s) return;
    if (!name_ok(s) || strlen(s) > 128) {
        verr(v, n, "invalid name '%s' (use 1 to 128 of A-Z a-z 0-9 _ . -)", s);
        return;
    }
    r->name = s;
}

static void parse_hosts(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    long cnt = want_list(v, n, 1);
    if (cnt <= 0) return;
    r->hosts = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*r->hosts));
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = path_idx(v, i);
        const char *s = get_string(v, c, 0);
        if (s) {
            char *h = (char *)s;
            for (char *p = h; *p; p++)
                if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
            const char *name = h[0] == '*' && h[1] == '.' ? h + 2 : h;
            if (!hostname_ok(name, strlen(name)))
                verr(v, c, "invalid host '%s' (expected a host name like api.example.com or *.example.com)", s);
            else
                r->hosts[r->n_hosts++] = h;
        }
        path_pop(v, old);
    }
}

/* tags: labels of the route for the access log, each 1..64 bytes of printable ASCII, each once. */
static void parse_tags(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    long cnt = want_list(v, n, 1);
    if (cnt <= 0) return;
    r->tags = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*r->tags));
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = path_idx(v, i);
        const char *s = get_string(v, c, 0);
        int ok = s && strlen(s) <= 64, dup = 0;
        for (const char *p = s; ok && *p; p++)
            ok = *p >= 0x20 && *p < 0x7f;
        for (size_t j = 0; ok && j < r->n_tags && !dup; j++)
            dup = !strcmp(r->tags[j], s);
        if (s && !ok)
            verr(v, c, "a tag is 1 to 64 bytes of printable ASCII");
        else if (dup)
            verr(v, c, "tag '%s' is listed twice", s);
        else if (s)
            r->tags[r->n_tags++] = s;
        path_pop(v, old);
    }
}

/* A path is exact ("/users") or a prefix ending in slash-star ("/users/" then '*'): it starts with
 * '/', and '*' may only be its last character, right after a '/'. */
static void parse_paths(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    long cnt = want_list(v, n, 1);
    if (cnt <= 0) return;
    r->paths = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*r->paths));
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = path_idx(v, i);
        const char *s = get_string(v, c, 0);
        if (s) {
            size_t len = strlen(s);
            const char *star = strchr(s, '*');
            const char *bad = NULL;
            for (const char *p = s; *p && !bad; p++)
                if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#') bad = p;
            if (s[0] != '/')
                verr(v, c, "must start with '/'");
            else if (bad)
                verr(v, c, "must not contain spaces, control characters, '?' or '#'");
            else if (star && !(star == s + len - 1 && len >= 2 && s[len - 2] == '/'))
                verr(v, c, "'*' is only allowed as the final \"/*\" of a prefix");
            else
                r->paths[r->n_paths++] = s;
        }
        path_pop(v, old);
    }
}

static void parse_methods(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    long cnt = want_list(v, n, 1);
    if (cnt <= 0) return;
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = path_idx(v, i);
        const char *s = want_scalar(v, c, "a method name");
        if (s) {
            uint32_t bit = sl_method_bit(s, c->len);
            if (!bit)
                verr(v, c,
                     "unknown method '%s' (expected GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, CONNECT or TRACE)",
                     s);
            r->methods |= bit;
        }
        path_pop(v, old);
    }
}

static int token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_hop_by_hop(const char *name)
{
    static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "te",
                                      "trailer", "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < SL_ARRAY_LEN(hop); i++)
        if (!strcasecmp(name, hop[i])) return 1;
    return 0;
}

/* A map of header names to values into out/n_out. Names are tokens, unique; framing headers
 * (and, for policies, hop-by-hop ones) belong to the gateway. */
static void parse_header_map(vctx_t *v, const sl_node_t *n, sl_header_kv_t **out, size_t *n_out, int policy)
{
    if (sl_node_is_null(n)) return;
    if (n->kind != SL_NODE_MAP) {
        verr(v, n, "expected a map of header names to values, got %s", sl_node_kind_name(n));
        return;
    }
    *out = sl_arena_calloc(v->a, n->n * sizeof(**out));
    sl_map_t seen; /* lower-cased name -> its first node */
    sl_map_init(&seen);
    for (const sl_node_t *c = n->first; c; c = c->next) {
        size_t old = path_key(v, c->key);
        int ok = is_token(c->key);
        if (!ok) {
            verr_at(v, c->key_line, c->key_col, "invalid header name");
        } else if (!strcasecmp(c->key, "content-length") || !strcasecmp(c->key, "transfer-encoding")) {
            verr_at(v, c->key_line, c->key_col, "is set by the gateway from the body");
        } else if (policy && is_hop_by_hop(c->key)) {
            verr_at(v, c->key_line, c->key_col, "is a hop-by-hop header: the gateway manages it per connection");
        } else {
            size_t klen = strlen(c->key);
            char *lower = sl_arena_strndup(v->a, c->key, klen);
            for (char *p = lower; *p; p++)
                if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
            void **slot = sl_map_slot(&seen, lower, klen);
            if (*slot) {
                verr_at(v, c->key_line, c->key_col, "duplicate header (first at line %d)",
                        ((const sl_node_t *)*slot)->key_line);
                ok = 0;
            } else {
                *slot = (void *)c;
            }
            const char *val = ok ? get_string(v, c, 1) : NULL;
            if (val && strpbrk(val, "\r\n")) {
                verr(v, c, "header values must not contain line breaks");
            } else if (val) {
                (*out)[*n_out].name = sl_arena_strdup(v->a, c->key);
                (*out)[(*n_out)++].value = val;
            }
        }
        path_pop(v, old);
    }
    sl_map_free(&seen);
}

static void parse_dr_headers(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_direct_response_cfg_t *dr = base;
    parse_header_map(v, n, &dr->headers, &dr->n_headers, 0);
}

static void parse_dr_body(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_direct_response_cfg_t *dr = base;
    const char *s = get_string(v, n, 1);
    if (!s) return;
    dr->body = s;
    dr->body_len = strlen(s);
}

static const field_t dr_fields[] = {
    {.name = "status",
     .type = F_INT,
     .off = offsetof(sl_direct_response_cfg_t, status),
     .min = 200, /* a 1xx cannot be a final response */
     .max = 599,
     .def = 200,
     .required = 1},
    {.name = "headers", .type = F_CUSTOM, .custom = parse_dr_headers},
    {.name = "body", .type = F_CUSTOM, .custom = parse_dr_body},
};
static const section_t dr_section = SECTION(dr_fields);

static void parse_direct_response(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    if (n->kind != SL_NODE_MAP) {
        verr(v, n, "expected a map, got %s", sl_node_kind_name(n));
        return;
    }
    r->direct_response = sl_arena_calloc(v->a, sizeof(*r->direct_response));
    apply_defaults(v, &dr_section, r->direct_response);
    parse_section(v, n, &dr_section, r->direct_response);
}

/* ---- policies (src/policy/) ---- */

static void parse_hdr_set(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_header_ops_cfg_t *h = base;
    parse_header_map(v, n, &h->set, &h->n_set, 1);
}

static void parse_hdr_add(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_header_ops_cfg_t *h = base;
    parse_header_map(v, n, &h->add, &h->n_add, 1);
}

static void parse_hdr_remove(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_header_ops_cfg_t *h = base;
    long cnt = want_list(v, n, 1);
    if (cnt <= 0) return;
    h->remove = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*h->remove));
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = path_idx(v, i);
        const char *name = get_string(v, c, 0);
        int ok = name && is_token(name);
        if (name && !ok) verr(v, c, "invalid header name");
        else if (name && (is_hop_by_hop(name) || !strcasecmp(name, "content-length")))
            verr(v, c, "is managed by the gateway and cannot be removed");
        else if (name && !strcasecmp(name, "host"))
            verr(v, c, "HTTP/1.1 requires Host: set it to another value instead");
        else if (name) h->remove[h->n_remove++] = name;
        path_pop(v, old);
    }
}

static const field_t header_ops_fields[] = {
    {.name = "set", .type = F_CUSTOM, .custom = parse_hdr_set},
    {.name = "add", .type = F_CUSTOM, .custom = parse_hdr_add},
    {.name = "remove", .type = F_CUSTOM, .custom = parse_hdr_remove},
};
static const section_t header_ops_section = SECTION(header_ops_fields);

#define PR_OFF(m) offsetof(sl_policies_cfg_t, path_rewrite.m)
static const field_t path_rewrite_fields[] = {
    {.name = "prefix", .type = F_STRING, .off = PR_OFF(prefix)},
    {.name = "regex", .type = F_STRING, .off = PR_OFF(regex)},
    {.name = "replace", .type = F_STRING, .off = PR_OFF(replace), .required = 1},
};
static const section_t path_rewrite_section = SECTION(path_rewrite_fields);

static void parse_path_rewrite(vctx_t *v, const sl_node_t *n, sl_policies_cfg_t *pc)
{
    parse_section(v, n, &path_rewrite_section, pc);
    pc->path_rewrite.enabled = 1;
    if (!pc->path_rewrite.prefix == !pc->path_rewrite.regex) {
        verr(v, n, "needs exactly one of 'prefix' and 'regex'");
        return;
    }
    if (pc->path_rewrite.prefix && pc->path_rewrite.prefix[0] != '/') {
        size_t old = path_key(v, "prefix");
        verr(v, map_get(n, "prefix"), "must start with '/'");
        path_pop(v, old);
    }
    if (pc->path_rewrite.replace && pc->path_rewrite.replace[0] != '/') {
        size_t old = path_key(v, "replace");
        verr(v, map_get(n, "replace"), "must start with '/': the result is the path sent upstream");
        path_pop(v, old);
    }
    if (pc->path_rewrite.regex) {
        char why[160];
        if (sl_regex_check(pc->path_rewrite.regex, why, sizeof(why)) != 0) {
            size_t old = path_key(v, "regex");
            verr(v, map_get(n, "regex"), "%s", why);
            path_pop(v, old);
        }
    }
}

static void parse_cidr_list(vctx_t *v, const sl_node_t *n, const char ***out, size_t *n_out)
{
    long cnt = want_list(v, n, 0);
    if (cnt <= 0) return;
    *out = sl_arena_calloc(v->a, (size_t)cnt * sizeof(**out));
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = path_idx(v, i);
        const char *s = get_string(v, c, 0);
        sl_ip_t ip;
        int prefix;
        if (s && sl_cidr_parse(s, &ip, &prefix) != 0)
            verr(v, c, "expected an IPv4 or IPv6 address or CIDR (10.0.0.0/8, 2001:db8::/32), got '%s'", s);
        else if (s)
            (*out)[(*n_out)++] = s;
        path_pop(v, old);
    }
}

static void parse_ip_access(vctx_t *v, const sl_node_t *n, sl_policies_cfg_t *pc)
{
    if (n->kind != SL_NODE_MAP) {
        verr(v, n, "expected a map with 'allow' or 'deny', got %s", sl_node_kind_name(n));
        return;
    }
    const sl_node_t *allow = map_get(n, "allow"), *deny = map_get(n, "deny"), *source = map_get(n, "source");
    for (const sl_node_t *c = n->first; c; c = c->next)
        if (strcmp(c->key, "allow") && strcmp(c->key, "deny") && strcmp(c->key, "source")) {
            size_t old = path_key(v, c->key);
            verr_at(v, c->key_line, c->key_col, "unknown key (expected one of: allow, deny, source)");
            path_pop(v, old);
        }
    if (!allow == !deny) {
        verr(v, n, "needs exactly one of 'allow' and 'deny'");
        return;
    }
    pc->ip_access.enabled = 1;
    pc->ip_access.allow = allow != NULL;
    size_t old = path_key(v, allow ? "allow" : "deny");
    parse_cidr_list(v, allow ? allow : deny, &pc->ip_access.cidrs, &pc->ip_access.n_cidrs);
    path_pop(v, old);
    if (source) {
        old = path_key(v, "source");
        const char *s = get_string(v, source, 0);
        if (s && !strcmp(s, "peer")) pc->ip_access.source_peer = 1;
        else if (s && strcmp(s, "remote")) verr(v, source, "unknown value '%s' (expected one of: remote, peer)", s);
        path_pop(v, old);
    }
}

/* timeout: whole seconds (at least 1), as in the product we answer to, or a duration. */
static void parse_timeout_policy(vctx_t *v, const sl_node_t *n, sl_policies_cfg_t *pc)
{
    uint64_t ms = 0;
    static const char msg[] = "expected whole seconds (at least 1) or a duration such as 500ms, 5s, 1m30s (at most 24h)";
    if (duration_in(v, n, 1, DAY_MS, &ms, msg) != 0) return;
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

static void parse_retry_on(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_retry_cfg_t *rc = base;
    if (want_list(v, n, 1) <= 0) return;
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = path_idx(v, i);
        const char *s = get_string(v, c, 0);
        size_t k = 0;
        while (s && k < SL_ARRAY_LEN(retry_conditions) && strcmp(s, retry_conditions[k].name)) k++;
        if (s && k == SL_ARRAY_LEN(retry_conditions)) {
            sl_buf_t b = SL_BUF_INIT;
            for (size_t j = 0; j < SL_ARRAY_LEN(retry_conditions); j++)
                sl_buf_printf(&b, "%s%s", j ? ", " : "", retry_conditions[j].name);
            verr(v, c, "unknown retry condition '%s' (expected one of: %s)", s, sl_buf_cstr(&b));
            sl_buf_free(&b);
        } else if (s) {
            rc->on |= retry_conditions[k].bit;
        }
        path_pop(v, old);
    }
}

static void parse_retry_codes(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_retry_cfg_t *rc = base;
    long cnt = want_list(v, n, 1);
    if (cnt <= 0) return;
    rc->status_codes = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*rc->status_codes));
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = path_idx(v, i);
        long long x;
        if (get_int(v, c, 200, 599, &x) == 0) rc->status_codes[rc->n_status_codes++] = (uint16_t)x;
        path_pop(v, old);
    }
}

static void parse_retry_body(vctx_t *v, const sl_node_t *n, void *base)
{
    get_size(v, n, 64u << 20, &((sl_retry_cfg_t *)base)->body_buffer);
}

#define RT_OFF(m) offsetof(sl_retry_cfg_t, m)
static const field_t retry_backoff_fields[] = {
    {.name = "base", .type = F_DURATION, .off = RT_OFF(backoff_base_ms), .min = 1, .max = 60000, .def = 25},
    {.name = "max", .type = F_DURATION, .off = RT_OFF(backoff_max_ms), .min = 1, .max = 3600000, .def = 250},
};
static const section_t retry_backoff_section = SECTION(retry_backoff_fields);
static const field_t retry_fields[] = {
    {.name = "attempts", .type = F_U32, .off = RT_OFF(attempts), .min = 1, .max = 10, .def = 1},
    {.name = "per_try_timeout", .type = F_DURATION, .off = RT_OFF(per_try_timeout_ms), .min = 1, .max = DAY_MS},
    {.name = "on", .type = F_CUSTOM, .custom = parse_retry_on, .required = 1},
    {.name = "status_codes", .type = F_CUSTOM, .custom = parse_retry_codes},
    {.name = "backoff", .type = F_SECTION, .sub = &retry_backoff_section},
    {.name = "body_buffer", .type = F_CUSTOM, .custom = parse_retry_body},
};
static const section_t retry_section = SECTION(retry_fields);

static void parse_retry(vctx_t *v, const sl_node_t *n, sl_policies_cfg_t *pc)
{
    sl_retry_cfg_t *rc = &pc->retry;
    apply_defaults(v, &retry_section, rc);
    rc->body_buffer = 64 * 1024;
    parse_section(v, n, &retry_section, rc);
    rc->enabled = 1;
    if (n->kind != SL_NODE_MAP) return; /* reported */
    const sl_node_t *codes = map_get(n, "status_codes");
    if ((rc->on & SL_RETRY_STATUS_CODES) && !codes) {
        size_t old = path_key(v, "on");
        verr(v, map_get(n, "on"), "'retriable-status-codes' needs 'status_codes', the statuses to retry");
        path_pop(v, old);
    } else if (codes && !(rc->on & SL_RETRY_STATUS_CODES)) {
        size_t old = path_key(v, "status_codes");
        verr(v, codes, "has no effect unless 'on' lists 'retriable-status-codes'");
        path_pop(v, old);
    }
    if (rc->backoff_max_ms < rc->backoff_base_ms) {
        size_t old = path_key(v, "backoff");
        verr(v, map_get(n, "backoff"), "'max' must not be less than 'base'");
        path_pop(v, old);
    }
}

/* A cookie Path value (RFC 6265): starts with '/', no ';' or control characters. */
static int cookie_path_ok(const char *path)
{
    if (path[0] != '/') return 0;
    for (const char *p = path; *p; p++)
        if (*p == ';' || (unsigned char)*p < 0x20 || *p == 0x7f) return 0;
    return 1;
}

static void parse_samesite(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_cookie_rule_t *r = base;
    const char *s = want_scalar(v, n, "a string");
    if (!s) return;
    static const char *const values[] = {"Strict", "Lax", "None"};
    for (size_t i = 0; i < SL_ARRAY_LEN(values); i++)
        if (!strcasecmp(s, values[i])) {
            r->samesite = values[i];
            return;
        }
    verr(v, n, "unknown value '%s' (expected one of: Strict, Lax, None)", s);
}

#define CR_OFF(m) offsetof(sl_cookie_rule_t, m)
static const field_t cookie_rule_fields[] = {
    {.name = "name", .type = F_STRING, .off = CR_OFF(name), .required = 1},
    {.name = "domain", .type = F_STRING, .off = CR_OFF(domain)},
    {.name = "path", .type = F_STRING, .off = CR_OFF(path)},
    {.name = "secure", .type = F_BOOL, .off = CR_OFF(secure), .def = -1},
    {.name = "samesite", .type = F_CUSTOM, .custom = parse_samesite},
};
static const section_t cookie_rule_section = SECTION(cookie_rule_fields);

/* Reports msg at rule field key (present in map c). */
static void cookie_rule_err(vctx_t *v, const sl_node_t *c, const char *key, const char *msg)
{
    size_t old = path_key(v, key);
    verr(v, map_get(c, key), "%s", msg);
    path_pop(v, old);
}

/* What parse_section cannot check of rule r, read from map c of list: the values end up inside
 * a Set-Cookie header, where ';' or a control character would end or split an attribute. */
static void check_cookie_rule(vctx_t *v, const sl_node_t *list, const sl_node_t *c, const sl_cookie_rule_t *r)
{
    int ok = r->name != NULL;
    for (const char *p = r->name; ok && *p; p++) ok = token_char(*p);
    if (r->name && !ok)
        cookie_rule_err(v, c, "name", "must be a cookie name token (letters, digits and !#$%&'*+-.^_`|~)");
    for (const sl_node_t *o = list->first; r->name && o != c; o = o->next) {
        const sl_node_t *on = map_get(o, "name");
        if (on && on->kind == SL_NODE_SCALAR && !strcmp(on->str, r->name)) {
            size_t old = path_key(v, "name");
            verr(v, map_get(c, "name"), "duplicate cookie name '%s' (first at line %d)", r->name, on->line);
            path_pop(v, old);
            break;
        }
    }
    /* A leading dot is allowed and ignored by browsers (RFC 6265 5.2.3). */
    const char *d = r->domain && r->domain[0] == '.' ? r->domain + 1 : r->domain;
    if (d && !hostname_ok(d, strlen(d)))
        cookie_rule_err(v, c, "domain",
                        "must be a domain name such as example.com (no ';', spaces or control characters)");
    if (r->path && !cookie_path_ok(r->path))
        cookie_rule_err(v, c, "path", "must start with '/' and contain no ';' or control characters");
    if (!map_get(c, "domain") && !map_get(c, "path") && !map_get(c, "secure") && !map_get(c, "samesite"))
        verr(v, c, "needs at least one of 'domain', 'path', 'secure', 'samesite'");
    if (r->samesite && !strcmp(r->samesite, "None") && r->secure != 1)
        cookie_rule_err(v, c, "samesite",
                        "SameSite=None needs 'secure: true' in the same rule (browsers drop such cookies without Secure)");
}

/* cookie_rewrite: a list of rules, one per cookie name. */
static void parse_cookie_rewrite(vctx_t *v, const sl_node_t *n, sl_policies_cfg_t *pc)
{
    long cnt = want_list(v, n, 0);
    if (cnt <= 0) return;
    pc->cookie_rewrite.enabled = 1;
    pc->cookie_rewrite.rules = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*pc->cookie_rewrite.rules));
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = path_idx(v, i);
        if (c->kind != SL_NODE_MAP) {
            verr(v, c, "expected a map with 'name' and the attributes to rewrite, got %s", sl_node_kind_name(c));
        } else {
            sl_cookie_rule_t *r = &pc->cookie_rewrite.rules[pc->cookie_rewrite.n_rules++];
            apply_defaults(v, &cookie_rule_section, r);
            parse_section(v, c, &cookie_rule_section, r);
            check_cookie_rule(v, n, c, r);
        }
        path_pop(v, old);
    }
}

/* local_rate_limit.header: a token, and not one the gateway writes itself. */
static void parse_rl_header(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_policies_cfg_t *pc = base;
    const char *s = get_string(v, n, 0);
    if (!s) return;
    static const char *const ours[] = {"content-length", "transfer-encoding", "content-type", "retry-after",
                                       "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"};
    int ok = 1;
    for (const char *p = s; *p && ok; p++) ok = token_char(*p);
    int taken = is_hop_by_hop(s);
    for (size_t i = 0; i < SL_ARRAY_LEN(ours); i++) taken |= !strcasecmp(s, ours[i]);
    if (!ok) verr(v, n, "invalid header name '%s'", s);
    else if (taken) verr(v, n, "'%s' is written by the gateway: pick another name (e.g. ratelimit)", s);
    else pc->local_rate_limit.header = s;
}

/* local_rate_limit.key: "ip" (the client address) or "header NAME" (that header's value). */
static void parse_rl_key(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_rate_limit_cfg_t *rl = &((sl_policies_cfg_t *)base)->local_rate_limit;
    const char *s = get_string(v, n, 0);
    if (!s) return;
    if (!strcmp(s, "ip")) {
        rl->key = SL_RL_KEY_IP;
        return;
    }
    const char *name = !strncmp(s, "header", 6) && (s[6] == ' ' || s[6] == '\t') ? s + 7 : NULL;
    while (name && (*name == ' ' || *name == '\t')) name++;
    if (!name || !*name) {
        verr(v, n, "expected 'ip' or 'header NAME' (e.g. \"header X-Api-Key\"), got '%s'", s);
        return;
    }
    for (const char *p = name; *p; p++)
        if (!token_char(*p)) {
            verr(v, n, "invalid header name '%s'", name);
            return;
        }
    rl->key = SL_RL_KEY_HEADER;
    rl->key_header = name;
}

#define RL_OFF(m) offsetof(sl_policies_cfg_t, local_rate_limit.m)
static const choice_t rl_per_choices[] = {
    {"second", 1, NULL},
    {"minute", 60, NULL},
    {"hour", 3600, NULL},
    {NULL, 0, NULL},
};
/* Bounds keep the bucket arithmetic (nanoseconds, capacity times interval) within 64 bits. */
static const field_t rate_limit_fields[] = {
    {.name = "requests", .type = F_U32, .off = RL_OFF(requests), .min = 1, .max = 1000000, .required = 1},
    {.name = "per", .type = F_ENUM, .off = RL_OFF(per_s), .choices = rl_per_choices, .required = 1},
    {.name = "burst", .type = F_U32, .off = RL_OFF(burst), .min = 0, .max = 1000000, .def = 0},
    {.name = "status", .type = F_INT, .off = RL_OFF(status), .min = 400, .max = 599, .def = 429},
    {.name = "header", .type = F_CUSTOM, .custom = parse_rl_header},
    {.name = "key", .type = F_CUSTOM, .custom = parse_rl_key},
    {.name = "max_keys", .type = F_U32, .off = RL_OFF(max_keys), .min = 1, .max = 1000000, .def = 10000},
};
static const section_t rate_limit_section = SECTION(rate_limit_fields);

static void parse_local_rate_limit(vctx_t *v, const sl_node_t *n, sl_policies_cfg_t *pc)
{
    apply_defaults(v, &rate_limit_section, pc);
    parse_section(v, n, &rate_limit_section, pc);
    pc->local_rate_limit.enabled = 1;
    const sl_node_t *mk = map_get(n, "max_keys");
    if (mk && pc->local_rate_limit.key == SL_RL_KEY_NONE) {
        size_t old = path_key(v, "max_keys");
        verr_at(v, mk->key_line, mk->key_col,
                "only applies with 'key' (ip or header NAME): without it the route has one bucket");
        path_pop(v, old);
    }
}

#define WS_OFF(m) offsetof(sl_policies_cfg_t, websocket.m)
static const field_t websocket_fields[] = {
    {.name = "idle_timeout", .type = F_DURATION, .off = WS_OFF(idle_timeout_ms), .min = 1, .max = DAY_MS},
};
static const section_t websocket_section = SECTION(websocket_fields);

/* websocket: true | false | {idle_timeout: DURATION}. */
static void parse_websocket(vctx_t *v, const sl_node_t *n, sl_policies_cfg_t *pc)
{
    if (n->kind == SL_NODE_MAP) {
        parse_section(v, n, &websocket_section, pc);
        pc->websocket.enabled = 1;
        return;
    }
    if (n->kind == SL_NODE_SCALAR && n->bad) return;
    const char *s = n->kind == SL_NODE_SCALAR && !sl_node_is_null(n) ? n->str : "";
    if (parse_bool(s, &pc->websocket.enabled) != 0)
        verr(v, n, "expected true, false or a map such as {idle_timeout: 10m}");
}

static void parse_policies(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    sl_policies_cfg_t *pc = &r->policies;
    if (sl_node_is_null(n)) return;
    if (n->kind != SL_NODE_MAP) {
        verr(v, n, "expected a map, got %s", sl_node_kind_name(n));
        return;
    }
    for (const sl_node_t *c = n->first; c; c = c->next) {
        size_t old = path_key(v, c->key);
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
            parse_section(v, c, &header_ops_section, &pc->request_headers.ops);
            pc->request_headers.enabled = 1;
        } else if (!strcmp(c->key, "response_headers")) {
            parse_section(v, c, &header_ops_section, &pc->response_headers.ops);
            pc->response_headers.enabled = 1;
        } else {
            unknown_name(v, c, "policy", "policies", policy_names, SL_ARRAY_LEN(policy_names), 2);
        }
        path_pop(v, old);
    }
}

static void parse_route_request_id(vctx_t *v, const sl_node_t *n, void *base)
{
    parse_request_id_into(v, n, &((sl_route_cfg_t *)base)->request_id);
}

static const field_t route_fields[] = {
    {.name = "name", .type = F_CUSTOM, .custom = parse_route_name},
    {.name = "hosts", .type = F_CUSTOM, .custom = parse_hosts},
    {.name = "paths", .type = F_CUSTOM, .custom = parse_paths},
    {.name = "methods", .type = F_CUSTOM, .custom = parse_methods},
    {.name = "direct_response", .type = F_CUSTOM, .custom = parse_direct_response},
    {.name = "policies", .type = F_CUSTOM, .custom = parse_policies},
    {.name = "request_id", .type = F_CUSTOM, .custom = parse_route_request_id},
    {.name = "tags", .type = F_CUSTOM, .custom = parse_tags},
    {.name = "plugins", .type = F_REJECT, .msg = "plugins are for stream routes; http routes use 'policies'"},
    {.name = "server_addr", .type = F_REJECT, .msg = "only valid on stream routes"},
    {.name = "server_port", .type = F_REJECT, .msg = "only valid on stream routes"},
    {.name = "remote_addr", .type = F_REJECT, .msg = "only valid on stream routes"},
    {.name = "proxy_protocol", .type = F_REJECT, .msg = "only valid on stream routes"},
};
static const section_t route_section = SECTION(route_fields);

/* ---- stream routes and their plugins (src/stream/) ---- */

/* An IPv4/IPv6 address or CIDR into out; 0, or -1 after an error. */
static int get_cidr(vctx_t *v, const sl_node_t *n, sl_cidr_cfg_t *out)
{
    const char *s = get_string(v, n, 0);
    if (!s) return -1;
    if (sl_cidr_parse(s, &out->ip, &out->prefix) != 0) {
        verr(v, n, "expected an IPv4 or IPv6 address or CIDR (127.0.0.10, 10.0.0.0/8, 2001:db8::/32), got '%s'", s);
        return -1;
    }
    out->text = s;
    return 0;
}

static void parse_server_addr(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    r->stream.has_server_addr = get_cidr(v, n, &r->stream.server_addr) == 0;
}

static void parse_remote_addr(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    r->stream.has_remote_addr = get_cidr(v, n, &r->stream.remote_addr) == 0;
}

static void parse_server_port(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    long long x;
    if (get_int(v, n, 1, 65535, &x) != 0) return;
    r->stream.server_port = (int)x;
    r->stream.port_line = n->line;
    r->stream.port_col = n->col;
}

static void parse_ip_restriction(vctx_t *v, const sl_node_t *n, sl_stream_plugins_cfg_t *pc)
{
    if (n->kind != SL_NODE_MAP) {
        verr(v, n, "expected a map with 'whitelist' or 'blacklist', got %s", sl_node_kind_name(n));
        return;
    }
    const sl_node_t *white = map_get(n, "whitelist"), *black = map_get(n, "blacklist");
    for (const sl_node_t *c = n->first; c; c = c->next)
        if (strcmp(c->key, "whitelist") && strcmp(c->key, "blacklist")) {
            size_t old = path_key(v, c->key);
            verr_at(v, c->key_line, c->key_col, "unknown key (expected one of: whitelist, blacklist)");
            path_pop(v, old);
        }
    if (!white == !black) {
        verr(v, n, "needs exactly one of 'whitelist' and 'blacklist'");
        return;
    }
    const sl_node_t *list = white ? white : black;
    size_t old = path_key(v, white ? "whitelist" : "blacklist");
    long cnt = want_list(v, list, 0);
    if (cnt > 0) {
        pc->ip_restriction.cidrs = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*pc->ip_restriction.cidrs));
        size_t i = 0;
        for (const sl_node_t *c = list->first; c; c = c->next, i++) {
            size_t o2 = path_idx(v, i);
            if (get_cidr(v, c, &pc->ip_restriction.cidrs[pc->ip_restriction.n_cidrs]) == 0)
                pc->ip_restriction.n_cidrs++;
            path_pop(v, o2);
        }
    }
    path_pop(v, old);
    pc->ip_restriction.enabled = 1;
    pc->ip_restriction.whitelist = white != NULL;
}

#define LC_OFF(m) offsetof(sl_stream_plugins_cfg_t, limit_conn.m)
static const choice_t limit_conn_keys[] = {
    {"remote_addr", SL_LIMIT_CONN_REMOTE_ADDR, NULL},
    {"server_addr", SL_LIMIT_CONN_SERVER_ADDR, NULL},
    {NULL, 0, NULL},
};
static const field_t limit_conn_fields[] = {
    {.name = "conn", .type = F_U32, .off = LC_OFF(conn), .min = 1, .max = 1000000, .required = 1},
    {.name = "burst", .type = F_U32, .off = LC_OFF(burst), .min = 0, .max = 1000000, .required = 1},
    /* A bare number counts seconds, as in APISIX (0.1 = 100ms): the duration grammar's rule. */
    {.name = "default_conn_delay", .type = F_DURATION, .off = LC_OFF(delay_ms), .min = 1, .max = 3600000,
     .required = 1},
    {.name = "key", .type = F_ENUM, .off = LC_OFF(key), .choices = limit_conn_keys, .def = SL_LIMIT_CONN_REMOTE_ADDR},
};
static const section_t limit_conn_section = SECTION(limit_conn_fields);

static void parse_syslog_host(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_syslog_plugin_cfg_t *sc = base;
    const char *s = get_string(v, n, 0);
    sl_ip_t ip;
    if (!s) return;
    if (sl_ip_parse(s, strlen(s), &ip) != 0 && (all_digits_dots(s, strlen(s)) || !hostname_ok(s, strlen(s))))
        verr(v, n, "expected an IP address or a host name, got '%s'", s);
    else
        sc->host = s;
}

#define SY_OFF(m) offsetof(sl_syslog_plugin_cfg_t, m)
static const choice_t syslog_socks[] = {
    {"udp", SL_SYSLOG_SOCK_UDP, NULL},
    {"tcp", SL_SYSLOG_SOCK_TCP, NULL},
    {NULL, 0, NULL},
};
static const field_t syslog_fields[] = {
    {.name = "host", .type = F_CUSTOM, .custom = parse_syslog_host, .required = 1},
    {.name = "port", .type = F_INT, .off = SY_OFF(port), .min = 1, .max = 65535, .required = 1},
    {.name = "sock_type",
     .type = F_ENUM,
     .off = SY_OFF(sock_type),
     .choices = syslog_socks,
     .def = SL_SYSLOG_SOCK_UDP},
    {.name = "timeout", .type = F_DURATION, .off = SY_OFF(timeout_ms), .min = 1, .max = 60000, .def = 3000},
    {.name = "batch_max_size", .type = F_U32, .off = SY_OFF(batch_max_size), .min = 1, .max = 10000, .def = 100},
    {.name = "flush_timeout",
     .type = F_DURATION,
     .off = SY_OFF(flush_timeout_ms),
     .min = 1,
     .max = 3600000,
     .def = 1000},
    {.name = "max_pending", .type = F_U32, .off = SY_OFF(max_pending), .min = 1, .max = 1000000, .def = 10000},
};
static const section_t syslog_section = SECTION(syslog_fields);

static void parse_syslog(vctx_t *v, const sl_node_t *n, sl_syslog_plugin_cfg_t *sc)
{
    apply_defaults(v, &syslog_section, sc);
    parse_section(v, n, &syslog_section, sc);
    sc->enabled = 1;
    const sl_node_t *bm = map_get(n, "batch_max_size");
    if (bm && sc->batch_max_size > sc->max_pending) {
        size_t old = path_key(v, "batch_max_size");
        verr(v, bm, "must not be larger than max_pending (%u)", sc->max_pending);
        path_pop(v, old);
    }
}

static void parse_stream_plugins(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_stream_plugins_cfg_t *pc = &((sl_route_cfg_t *)base)->stream.plugins;
    if (sl_node_is_null(n)) return;
    if (n->kind != SL_NODE_MAP) {
        verr(v, n, "expected a map, got %s", sl_node_kind_name(n));
        return;
    }
    for (const sl_node_t *c = n->first; c; c = c->next) {
        size_t old = path_key(v, c->key);
        if (!strcmp(c->key, "ip-restriction")) {
            parse_ip_restriction(v, c, pc);
        } else if (!strcmp(c->key, "limit-conn")) {
            apply_defaults(v, &limit_conn_section, pc);
            parse_section(v, c, &limit_conn_section, pc);
            pc->limit_conn.enabled = 1;
        } else if (!strcmp(c->key, "prometheus")) {
            if (!sl_node_is_null(c) && (c->kind != SL_NODE_MAP || c->n))
                verr(v, c, "expected {} (the plugin has no settings)");
            pc->prometheus.enabled = 1;
        } else if (!strcmp(c->key, "syslog")) {
            parse_syslog(v, c, &pc->syslog);
        } else {
            int policy = 0;
            for (size_t i = 0; i < SL_ARRAY_LEN(policy_names); i++) policy |= !strcmp(c->key, policy_names[i]);
            if (policy && closest_name(c->key, plugin_names, SL_ARRAY_LEN(plugin_names), 2) == NULL)
                verr_at(v, c->key_line, c->key_col,
                        "is an http policy; stream routes take the plugins ip-restriction, limit-conn, prometheus, "
                        "syslog");
            else
                unknown_name(v, c, "plugin", "plugins", plugin_names, SL_ARRAY_LEN(plugin_names), 2);
        }
        path_pop(v, old);
    }
}

/* Offsets from proxy_protocol_accept, where the section starts. */
static const field_t route_pp_fields[] = {
    {.name = "accept", .type = F_BOOL},
    {.name = "timeout",
     .type = F_DURATION,
     .off = offsetof(sl_stream_route_cfg_t, proxy_protocol_timeout_ms) -
            offsetof(sl_stream_route_cfg_t, proxy_protocol_accept),
     .min = 1,
     .max = 3600000,
     .def = 10000},
};
static const section_t route_pp_section = SECTION(route_pp_fields);

#define SR_OFF(m) offsetof(sl_route_cfg_t, stream.m)
#define HTTP_MATCH_ONLY "only valid on http routes (stream routes match server_addr, server_port, remote_addr)"
static const field_t stream_route_fields[] = {
    {.name = "name", .type = F_CUSTOM, .custom = parse_route_name},
    {.name = "server_addr", .type = F_CUSTOM, .custom = parse_server_addr},
    {.name = "server_port", .type = F_CUSTOM, .custom = parse_server_port, .required = 1},
    {.name = "remote_addr", .type = F_CUSTOM, .custom = parse_remote_addr},
    {.name = "proxy_protocol", .type = F_SECTION, .off = SR_OFF(proxy_protocol_accept), .sub = &route_pp_section},
    {.name = "plugins", .type = F_CUSTOM, .custom = parse_stream_plugins},
    {.name = "policies", .type = F_REJECT, .msg = "policies are for http routes; stream routes use 'plugins'"},
    {.name = "hosts", .type = F_REJECT, .msg = HTTP_MATCH_ONLY},
    {.name = "paths", .type = F_REJECT, .msg = HTTP_MATCH_ONLY},
    {.name = "methods", .type = F_REJECT, .msg = HTTP_MATCH_ONLY},
    {.name = "direct_response", .type = F_REJECT, .msg = "only valid on http routes (a stream route always proxies)"},
    {.name = "request_id", .type = F_REJECT, .msg = "only valid on http routes"},
    {.name = "tags", .type = F_REJECT, .msg = "only valid on http routes (stream access log lines have fixed keys)"},
};
static const section_t stream_route_section = SECTION(stream_route_fields);

static void parse_routes(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_service_cfg_t *svc = base;
    long cnt = want_list(v, n, 0);
    if (cnt <= 0) return;
    svc->routes = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*svc->routes));
    svc->n_routes = (size_t)cnt;
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        sl_route_cfg_t *r = &svc->routes[i];
        size_t old = path_idx(v, i);
        r->line = c->line;
        r->col = c->col;
        r->hash = node_hash(c, NULL);
        if (c->kind != SL_NODE_MAP) {
            verr(v, c, "expected a map, got %s", sl_node_kind_name(c));
        } else if (v->stream) {
            apply_defaults(v, &stream_route_section, r);
            parse_section(v, c, &stream_route_section, r);
        } else {
            parse_section(v, c, &route_section, r);
        }
        path_pop(v, old);
    }
}

/* ---- services ---- */

static void parse_service_name(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_service_cfg_t *svc = base;
    const char *s = get_string(v, n, 0);
    if (!s) return;
    if (!name_ok(s) || strlen(s) > 128) {
        verr(v, n, "invalid name '%s' (use 1 to 128 of A-Z a-z 0-9 _ . -)", s);
        return;
    }
    svc->name = s;
}

/* The issued cookie must be well formed (RFC 6265): a token name, a path without ';' or
 * control characters, and a ttl of at least a second (Max-Age counts whole seconds). */
static void check_cookie(vctx_t *v, const sl_node_t *cookie, const sl_upstream_cfg_t *u)
{
    const char *name = u->cookie.name;
    int ok = name != NULL;
    for (const char *p = name; ok && *p; p++) ok = token_char(*p);
    if (name && !ok) {
        size_t old = path_key(v, "cookie.name");
        verr(v, map_get(cookie, "name"), "must be a cookie name token (letters, digits and !#$%%&'*+-.^_`|~)");
        path_pop(v, old);
    }
    if (u->cookie.path && !cookie_path_ok(u->cookie.path)) {
        size_t old = path_key(v, "cookie.path");
        verr(v, map_get(cookie, "path"), "must start with '/' and contain no ';' or control characters");
        path_pop(v, old);
    }
    if (u->cookie.ttl_ms > 0 && u->cookie.ttl_ms < 1000) {
        size_t old = path_key(v, "cookie.ttl");
        verr(v, map_get(cookie, "ttl"), "must be at least 1s (Max-Age counts seconds), or 0 to issue no cookie");
        path_pop(v, old);
    }
}

static void parse_upstream(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_service_cfg_t *svc = base;
    if (n->kind != SL_NODE_MAP) {
        verr(v, n, "expected a map, got %s", sl_node_kind_name(n));
        return;
    }
    svc->has_upstream = 1;
    sl_upstream_cfg_t *u = &svc->upstream;
    parse_section(v, n, &upstream_section, u);
    /* Keys that only make sense together. */
    const sl_node_t *hash = map_get(n, "hash"), *cookie = map_get(n, "cookie");
    if (hash && u->balance != SL_BALANCE_HASH) {
        size_t old = path_key(v, "hash");
        verr(v, hash, "only used with balance: hash");
        path_pop(v, old);
    }
    if (cookie && u->balance != SL_BALANCE_COOKIE) {
        size_t old = path_key(v, "cookie");
        verr(v, cookie, "only used with balance: cookie");
        path_pop(v, old);
    }
    if (u->balance == SL_BALANCE_HASH && u->hash.on != SL_HASH_IP && !u->hash.key) {
        size_t old = path_key(v, "hash");
        verr(v, hash, "'key' is required when hashing on a header, query parameter or cookie");
        path_pop(v, old);
    }
    if (u->balance == SL_BALANCE_HASH && u->hash.on == SL_HASH_IP && u->hash.key) {
        size_t old = path_key(v, "hash.key");
        verr(v, map_get(hash, "key"), "not used when hashing on ip");
        path_pop(v, old);
    }
    if (u->balance == SL_BALANCE_COOKIE && !u->cookie.name && !map_get(cookie, "name")) {
        size_t old = path_key(v, "cookie");
        verr(v, cookie ? cookie : map_get(n, "balance"), "'name' is required for balance: cookie");
        path_pop(v, old);
    }
    if (cookie) check_cookie(v, cookie, u);
}

static const choice_t service_types[] = {
    {"http", SL_SERVICE_HTTP, NULL},
    {"stream", SL_SERVICE_STREAM, NULL},
    {NULL, 0, NULL},
};

#define SVC_OFF(m) offsetof(sl_service_cfg_t, m)
static const field_t service_fields[] = {
    {.name = "name", .type = F_CUSTOM, .custom = parse_service_name, .required = 1},
    {.name = "type", .type = F_ENUM, .off = SVC_OFF(type), .choices = service_types, .def = SL_SERVICE_HTTP},
    {.name = "upstream", .type = F_CUSTOM, .custom = parse_upstream},
    {.name = "routes", .type = F_CUSTOM, .custom = parse_routes, .required = 1},
};
static const section_t service_section = SECTION(service_fields);

/* Checks what spans fields of one service: default and unique route names, and that a service
 * without an upstream answers every route itself. */
static void check_service(vctx_t *v, const sl_node_t *n, sl_service_cfg_t *svc)
{
    const sl_node_t *routes = map_get(n, "routes");
    const sl_node_t *rn = routes && routes->kind == SL_NODE_SEQ ? routes->first : NULL;
    size_t base = path_key(v, "routes");
    /* Route name -> 1 + its index: a hash map, so a service with 100,000 routes stays linear. */
    sl_map_t names;
    sl_map_init(&names);
    for (size_t i = 0; i < svc->n_routes; i++, rn = rn ? rn->next : NULL) {
        sl_route_cfg_t *r = &svc->routes[i];
        size_t old = path_idx(v, i);
        const sl_node_t *name_node = map_get(rn, "name");
        if (!r->name && !name_node && svc->name) {
            char buf[160];
            snprintf(buf, sizeof(buf), "%s-%zu", svc->name, i);
            r->name = sl_arena_strdup(v->a, buf);
        }
        void **slot = r->name ? sl_map_slot(&names, r->name, strlen(r->name)) : NULL;
        if (slot && *slot) {
            size_t j = (size_t)(uintptr_t)*slot - 1;
            size_t o2 = path_key(v, "name");
            if (name_node)
                verr(v, name_node, "duplicate route name '%s' (also routes[%zu])", r->name, j);
            else
                verr_at(v, r->line, r->col, "duplicate route name '%s' (also routes[%zu])", r->name, j);
            path_pop(v, o2);
        } else if (slot) {
            *slot = (void *)(uintptr_t)(i + 1);
        }
        if (r->policies.websocket.enabled && r->direct_response) {
            size_t o2 = path_key(v, "policies.websocket");
            verr(v, map_get(map_get(rn, "policies"), "websocket"),
                 "a route that answers with direct_response has no upstream to open a tunnel to");
            path_pop(v, o2);
        }
        if (svc->type == SL_SERVICE_STREAM && svc->has_upstream && svc->upstream.scheme == SL_SCHEME_UDP &&
            map_get(rn, "proxy_protocol")) {
            size_t o2 = path_key(v, "proxy_protocol");
            const sl_node_t *pp = map_get(rn, "proxy_protocol");
            verr_at(v, pp->key_line, pp->key_col, "only for tcp services");
            path_pop(v, o2);
        }
        if (svc->type == SL_SERVICE_HTTP && !svc->has_upstream && !r->direct_response && rn &&
            rn->kind == SL_NODE_MAP && !map_get(rn, "direct_response"))
            verr_at(v, r->line, r->col, "route '%s' has no direct_response and service has no upstream",
                    r->name ? r->name : "?");
        path_pop(v, old);
    }
    sl_map_free(&names);
    path_pop(v, base);
    if (svc->type == SL_SERVICE_STREAM && !svc->has_upstream && !map_get(n, "upstream")) {
        size_t old = path_key(v, "upstream");
        verr(v, n, "is required for stream services");
        path_pop(v, old);
    }
}

static void parse_services(vctx_t *v, const sl_node_t *n, void *base)
{
    sl_config_t *cfg = base;
    long cnt = want_list(v, n, 1);
    if (cnt <= 0) return;
    cfg->services = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*cfg->services));
    cfg->n_services = (size_t)cnt;
    sl_map_t names; /* service name -> 1 + its index */
    sl_map_init(&names);
    size_t i = 0;
    for (const sl_node_t *c = n->first; c; c = c->next, i++) {
        sl_service_cfg_t *svc = &cfg->services[i];
        size_t old = path_idx(v, i);
        svc->line = c->line;
        svc->col = c->col;
        apply_defaults(v, &service_section, svc);
        apply_defaults(v, &upstream_section, &svc->upstream);
        if (c->kind != SL_NODE_MAP) {
            verr(v, c, "expected a map, got %s", sl_node_kind_name(c));
            path_pop(v, old);
            continue;
        }
        /* Routes are read according to the service's type, wherever it is written. */
        const sl_node_t *type = map_get(c, "type");
        v->stream = type && type->kind == SL_NODE_SCALAR && !strcmp(type->str, "stream");
        svc->type_line = type ? type->line : c->line;
        svc->type_col = type ? type->col : c->col;
        parse_section(v, c, &service_section, svc);
        svc->hash = node_hash(c, "routes");
        check_upstream_kind(v, c, svc);
        check_service(v, c, svc);
        void **slot = svc->name ? sl_map_slot(&names, svc->name, strlen(svc->name)) : NULL;
        if (slot && *slot) {
            size_t o2 = path_key(v, "name");
            verr(v, map_get(c, "name"), "duplicate service name '%s' (also services[%zu])", svc->name,
                 (size_t)(uintptr_t)*slot - 1);
            path_pop(v, o2);
        } else if (slot) {
            *slot = (void *)(uintptr_t)(i + 1);
        }
        path_pop(v, old);
    }
    sl_map_free(&names);
}

static const field_t top_fields[] = {
    {.name = "gateway", .type = F_SECTION, .off = offsetof(sl_config_t, gateway), .sub = &gateway_section},
    {.name = "services", .type = F_CUSTOM, .custom = parse_services},
};
static const section_t top_section = SECTION(top_fields);

static const sl_hostport_t default_http_listen = {"0.0.0.0:9080", "0.0.0.0", 9080, 1};

static int ip_is_any(const sl_ip_t *ip)
{
    static const uint8_t zero[16];
    return !memcmp(ip->bytes, zero, ip->family == 4 ? 4 : 16);
}

/* Whether listening sockets on a and b (same port) would take each other's connections. */
static int listen_overlap(const sl_ip_t *a, const sl_ip_t *b)
{
    if (a->family != b->family) return 0;
    return ip_is_any(a) || ip_is_any(b) || !memcmp(a->bytes, b->bytes, 16);
}

/* A TCP stream route listens on its server_addr when that is one address, else on the wildcard
 * address of its family (runtime/generation.c); that socket must not be an HTTP or status one. */
static void check_stream_ports(vctx_t *v, const sl_config_t *cfg)
{
    const sl_gateway_cfg_t *gw = &cfg->gateway;
    for (size_t s = 0; s < cfg->n_services; s++) {
        const sl_service_cfg_t *svc = &cfg->services[s];
        if (svc->type != SL_SERVICE_STREAM || svc->upstream.scheme != SL_SCHEME_TCP) continue;
        for (size_t r = 0; r < svc->n_routes; r++) {
            const sl_stream_route_cfg_t *sr = &svc->routes[r].stream;
            if (!sr->server_port) continue;
            sl_ip_t at = {.family = 4};
            if (sr->has_server_addr) {
                at = sr->server_addr.ip;
                if (sr->server_addr.prefix < (at.family == 4 ? 32 : 128)) memset(at.bytes, 0, sizeof(at.bytes));
            }
            const sl_hostport_t *clash = NULL;
            const char *what = "gateway.http.listen";
            for (size_t i = 0; i < gw->http.n_listen && !clash; i++) {
                sl_ip_t ip;
                const sl_hostport_t *hp = &gw->http.listen[i];
                if (hp->port == sr->server_port && hp->is_ip && sl_ip_parse(hp->host, strlen(hp->host), &ip) == 0 &&
                    listen_overlap(&ip, &at))
                    clash = hp;
            }
            sl_ip_t ip;
            if (!clash && gw->status.enabled && gw->status.listen.port == sr->server_port &&
                gw->status.listen.is_ip &&
                sl_ip_parse(gw->status.listen.host, strlen(gw->status.listen.host), &ip) == 0 &&
                listen_overlap(&ip, &at)) {
                clash = &gw->status.listen;
                what = "gateway.status.listen";
            }
            if (!clash) continue;
            size_t old = path_append(v, "services[%zu].routes[%zu].server_port", s, r);
            verr_at(v, sr->port_line, sr->port_col, "port %d is already %s '%s'", sr->server_port, what, clash->text);
            path_pop(v, old);
        }
    }
}

/* Whether some connection could be taken by both routes by its address (both on one port). */
static int server_addr_overlap(const sl_stream_route_cfg_t *a, const sl_stream_route_cfg_t *b)
{
    if (!a->has_server_addr || !b->has_server_addr) return 1;
    if (a->server_addr.ip.family != b->server_addr.ip.family) return 0;
    int prefix = SL_MIN(a->server_addr.prefix, b->server_addr.prefix);
    return sl_cidr_match(&a->server_addr.ip, prefix, &b->server_addr.ip);
}

/* The TCP stream routes seen so far on one port, by whether they accept the PROXY protocol:
 * the first without server_addr (it overlaps every route), and those with one, in file order. */
typedef struct pp_side {
    int has_wild;
    size_t wild; /* index into the flat route list */
    size_t *addr, n_addr, cap_addr;
} pp_side_t;
typedef struct pp_port {
    char key[8]; /* the port as text: the map's key lives here */
    pp_side_t side[2];
} pp_port_t;

/* Whether a connection starts with a PROXY protocol header is known before its client is: it is
 * a property of the address and port it arrived on, as nginx's and HAProxy's listeners have it.
 * So TCP routes that may take connections on the same address and port must agree on it. Each
 * route is compared only with earlier routes on its port that decided the other way, so a port
 * shared by many routes that agree costs nothing more. */
static void check_proxy_protocol_listeners(vctx_t *v, const sl_config_t *cfg)
{
    typedef struct {
        size_t s, r;
        const sl_stream_route_cfg_t *sr;
    } flat_t;
    size_t n = 0;
    for (size_t s = 0; s < cfg->n_services; s++)
        if (cfg->services[s].type == SL_SERVICE_STREAM && cfg->services[s].upstream.scheme == SL_SCHEME_TCP)
            n += cfg->services[s].n_routes;
    if (!n) return;
    flat_t *all = sl_xcalloc(n, sizeof(*all));
    sl_map_t ports;
    sl_map_init(&ports);
    size_t k = 0;
    for (size_t s = 0; s < cfg->n_services; s++) {
        const sl_service_cfg_t *svc = &cfg->services[s];
        if (svc->type != SL_SERVICE_STREAM || svc->upstream.scheme != SL_SCHEME_TCP) continue;
        for (size_t r = 0; r < svc->n_routes; r++, k++) {
            const sl_stream_route_cfg_t *sr = &svc->routes[r].stream;
            all[k] = (flat_t){s, r, sr};
            char key[8];
            int klen = snprintf(key, sizeof(key), "%d", sr->server_port);
            void **slot = sl_map_slot(&ports, key, (size_t)klen);
            if (!*slot) {
                pp_port_t *pp = sl_xcalloc(1, sizeof(*pp));
                memcpy(pp->key, key, (size_t)klen + 1);
                /* The map borrowed the stack key: point it at the copy that lives on. */
                sl_map_entry_t *e = (sl_map_entry_t *)((char *)slot - offsetof(sl_map_entry_t, value));
                e->key = pp->key;
                *slot = pp;
            }
            pp_port_t *pp = *slot;
            int flag = sr->proxy_protocol_accept != 0;
            /* The first earlier route on this port that decided the other way and overlaps. */
            const pp_side_t *o = &pp->side[!flag];
            size_t found = SIZE_MAX;
            if (o->has_wild) found = o->wild;
            for (size_t i = 0; i < o->n_addr && o->addr[i] < found; i++)
                if (server_addr_overlap(all[o->addr[i]].sr, sr)) found = o->addr[i];
            if (found != SIZE_MAX) {
                const flat_t *f = &all[found];
                size_t old = path_append(v, "services[%zu].routes[%zu].proxy_protocol", s, r);
                verr_at(v, sr->port_line, sr->port_col,
                        "routes on one address and port must agree on accepting the PROXY protocol: "
                        "services[%zu].routes[%zu] on port %d %s it, this route %s",
                        f->s, f->r, sr->server_port, f->sr->proxy_protocol_accept ? "accepts" : "does not accept",
                        sr->proxy_protocol_accept ? "does" : "does not");
                path_pop(v, old);
            }
            pp_side_t *mine = &pp->side[flag];
            if (!sr->has_server_addr) {
                if (!mine->has_wild) mine->has_wild = 1, mine->wild = k;
            } else {
                if (mine->n_addr == mine->cap_addr) {
                    mine->cap_addr = mine->cap_addr ? mine->cap_addr * 2 : 8;
                    mine->addr = sl_xrealloc(mine->addr, mine->cap_addr * sizeof(*mine->addr));
                }
                mine->addr[mine->n_addr++] = k;
            }
        }
    }
    for (size_t i = 0; i < ports.cap; i++) {
        pp_port_t *pp = ports.slots[i].key ? ports.slots[i].value : NULL;
        if (!pp) continue;
        free(pp->side[0].addr);
        free(pp->side[1].addr);
        free(pp);
    }
    sl_map_free(&ports);
    free(all);
}

int sl_config_validate(sl_config_t *cfg, sl_arena_t *tree, sl_node_t *root, sl_config_diag_t *d)
{
    vctx_t v = {.cfg = cfg, .a = &cfg->arena, .d = d};
    if (root) prepare_tree(&v, tree, root);
    apply_defaults(&v, &top_section, cfg);
    apply_defaults(&v, &status_section, &cfg->gateway.status);
    cfg->gateway.access_log.fmt.buffer = SL_ACCESS_BUFFER_DEFAULT;
    apply_defaults(&v, &rid_section, &cfg->gateway.request_id);
    cfg->gateway.request_id.header_len = strlen(cfg->gateway.request_id.header);
    parse_section(&v, root, &top_section, cfg);
    if (!cfg->gateway.http.n_listen) {
        cfg->gateway.http.listen = sl_arena_alloc(v.a, sizeof(sl_hostport_t));
        cfg->gateway.http.listen[0] = default_http_listen;
        cfg->gateway.http.n_listen = 1;
    }
    check_alog_fields(&v, root, &cfg->gateway.access_log.fmt);
    if (!v.errors) {
        check_stream_ports(&v, cfg);
        check_proxy_protocol_listeners(&v, cfg);
    }
    return v.errors ? -1 : 0;
}
