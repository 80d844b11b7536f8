/* The field-table engine (schema.h): paths and errors, the walk that drops repeated keys and
 * substitutes ${VAR} before anything is read, and sl_schema_parse(), which reads one map
 * against one table of fields. The value readers it calls are in schema_values.c. */
#include "config/schema.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/map.h"

/* ---- paths and errors ---- */

size_t sl_schema_path_append(sl_schema_ctx_t *v, const char *fmt, ...)
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

size_t sl_schema_path_key(sl_schema_ctx_t *v, const char *key)
{
    return v->plen ? sl_schema_path_append(v, ".%s", key) : sl_schema_path_append(v, "%s", key);
}

size_t sl_schema_path_idx(sl_schema_ctx_t *v, size_t i)
{
    return sl_schema_path_append(v, "[%zu]", i);
}

void sl_schema_path_pop(sl_schema_ctx_t *v, size_t old)
{
    v->plen = old;
    v->path[old] = '\0';
}

static void verr(sl_schema_ctx_t *v, int line, int col, const char *fmt, va_list ap)
{
    sl_config_diag_vadd(v->d, line, col, v->plen ? v->path : NULL, fmt, ap);
    v->errors++;
}

void sl_schema_err_at(sl_schema_ctx_t *v, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr(v, line, col, fmt, ap);
    va_end(ap);
}

void sl_schema_err(sl_schema_ctx_t *v, const sl_config_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr(v, n ? n->line : 0, n ? n->col : 0, fmt, ap);
    va_end(ap);
}

/* ---- environment substitution ---- */

static int env_name_char(char c, int first)
{
    return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (!first && c >= '0' && c <= '9');
}

/* Expands ${VAR}, ${VAR:-default} and the escape $${ (a literal "${") in one scalar. */
static void env_scalar(sl_schema_ctx_t *v, sl_arena_t *tree, sl_config_node_t *n)
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
            sl_schema_err(v, n, "invalid ${...} reference (expected ${NAME} or ${NAME:-default})");
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
            sl_schema_err(v, n, "environment variable '%s' is not set", var);
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
static void unique_keys(sl_schema_ctx_t *v, sl_config_node_t *n)
{
    if (n->n < 2) return;
    sl_map_t seen;
    sl_map_init(&seen);
    int use_map = n->n > 8;
    sl_config_node_t **link = &n->first, *prev = NULL;
    for (sl_config_node_t *c = n->first, *next; c; c = next) {
        next = c->next;
        const sl_config_node_t *first = NULL;
        if (use_map) {
            void **slot = sl_map_slot(&seen, c->key, strlen(c->key));
            first = *slot;
            if (!first) *slot = c;
        } else {
            for (const sl_config_node_t *o = n->first; o != c && !first; o = o->next)
                if (!strcmp(o->key, c->key)) first = o;
        }
        if (!first) {
            prev = c;
            link = &c->next;
            continue;
        }
        size_t old = sl_schema_path_key(v, c->key);
        sl_schema_err_at(v, c->key_line, c->key_col, "duplicate key (first at line %d)", first->key_line);
        sl_schema_path_pop(v, old);
        *link = next;
        if (n->last == c) n->last = prev;
        n->n--;
    }
    sl_map_free(&seen);
}

void sl_schema_prepare(sl_schema_ctx_t *v, sl_arena_t *tree, sl_config_node_t *n)
{
    if (n->kind == SL_NODE_SCALAR) {
        env_scalar(v, tree, n);
        return;
    }
    if (n->kind == SL_NODE_MAP) unique_keys(v, n);
    size_t i = 0;
    for (sl_config_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = n->kind == SL_NODE_MAP ? sl_schema_path_key(v, c->key) : sl_schema_path_idx(v, i);
        sl_schema_prepare(v, tree, c);
        sl_schema_path_pop(v, old);
    }
}

/* ---- field tables ---- */

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
static void unknown_key(sl_schema_ctx_t *v, const sl_config_node_t *c, const char *const *names, size_t n)
{
    const char *best = NULL;
    unsigned best_d = 1000;
    for (size_t i = 0; i < n; i++) {
        unsigned dist = edit_distance(c->key, names[i]);
        if (dist < best_d) best_d = dist, best = names[i];
    }
    size_t klen = strlen(c->key);
    if (best && (best_d <= 2 || best_d * 3 <= klen) && best_d < klen + 1 && best_d < strlen(best)) {
        sl_schema_err_at(v, c->key_line, c->key_col, "unknown key (did you mean '%s'?)", best);
        return;
    }
    sl_buf_t b = SL_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        sl_buf_printf(&b, "%s%s", i ? ", " : "", names[i]);
    sl_schema_err_at(v, c->key_line, c->key_col, "unknown key (valid keys: %s)", sl_buf_cstr(&b));
    sl_buf_free(&b);
}

const char *sl_schema_closest_name(const char *key, const char *const *names, size_t n, unsigned max_d)
{
    const char *best = NULL;
    unsigned best_d = 1000;
    for (size_t i = 0; i < n; i++) {
        unsigned d = edit_distance(key, names[i]);
        if (d < best_d) best_d = d, best = names[i];
    }
    return best && (best_d <= max_d || best_d * 3 <= strlen(key)) && best_d < strlen(best) ? best : NULL;
}

void sl_schema_unknown_name(sl_schema_ctx_t *v, const sl_config_node_t *c, const char *what, const char *whats,
                            const char *const *names, size_t n, unsigned max_d)
{
    sl_buf_t b = SL_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        sl_buf_printf(&b, "%s%s", i ? ", " : "", names[i]);
    const char *best = sl_schema_closest_name(c->key, names, n, max_d);
    if (best)
        sl_schema_err_at(v, c->key_line, c->key_col, "unknown %s (did you mean '%s'?); valid %s: %s", what, best, whats,
                         sl_buf_cstr(&b));
    else
        sl_schema_err_at(v, c->key_line, c->key_col, "unknown %s; valid %s: %s", what, whats, sl_buf_cstr(&b));
    sl_buf_free(&b);
}

void sl_schema_defaults(sl_schema_ctx_t *v, const sl_schema_section_t *sec, void *base)
{
    char *p = base;
    for (size_t i = 0; i < sec->n; i++) {
        const sl_schema_field_t *f = &sec->fields[i];
        switch (f->type) {
        case SL_FIELD_INT:
        case SL_FIELD_BOOL:
        case SL_FIELD_ENUM:
            *(int *)(p + f->off) = (int)f->def;
            break;
        case SL_FIELD_U32:
            *(uint32_t *)(p + f->off) = (uint32_t)f->def;
            break;
        case SL_FIELD_DURATION:
            *(uint64_t *)(p + f->off) = (uint64_t)f->def;
            break;
        case SL_FIELD_STRING:
            *(const char **)(p + f->off) = f->def_str;
            break;
        case SL_FIELD_HOSTPORT:
        case SL_FIELD_LISTEN:
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
        case SL_FIELD_SECTION:
            sl_schema_defaults(v, f->sub, p + f->off);
            break;
        default:
            break;
        }
    }
}

static void parse_enum(sl_schema_ctx_t *v, const sl_config_node_t *n, const sl_schema_field_t *f, int *out)
{
    const char *s = sl_schema_scalar(v, n, "a string");
    if (!s) return;
    for (const sl_schema_choice_t *c = f->choices; c->name; c++) {
        if (strcmp(c->name, s) != 0) continue;
        if (c->unsupported)
            sl_schema_err(v, n, "%s", c->unsupported);
        else
            *out = c->value;
        return;
    }
    sl_buf_t b = SL_BUF_INIT;
    for (const sl_schema_choice_t *c = f->choices; c->name; c++)
        sl_buf_printf(&b, "%s%s", c == f->choices ? "" : ", ", c->name);
    sl_schema_err(v, n, "unknown value '%s' (expected one of: %s)", s, sl_buf_cstr(&b));
    sl_buf_free(&b);
}

static void parse_field(sl_schema_ctx_t *v, const sl_config_node_t *n, const sl_schema_field_t *f, void *base)
{
    char *p = (char *)base + f->off;
    long long x;
    switch (f->type) {
    case SL_FIELD_INT:
        if (sl_schema_int(v, n, f->min, f->max, &x) == 0) *(int *)p = (int)x;
        break;
    case SL_FIELD_U32:
        if (sl_schema_int(v, n, f->min, f->max, &x) == 0) *(uint32_t *)p = (uint32_t)x;
        break;
    case SL_FIELD_DURATION:
        sl_schema_duration(v, n, f->min, f->max, (uint64_t *)p);
        break;
    case SL_FIELD_STRING: {
        const char *s = sl_schema_string(v, n, 0);
        if (s) *(const char **)p = s;
        break;
    }
    case SL_FIELD_BOOL:
        sl_schema_bool(v, n, (int *)p);
        break;
    case SL_FIELD_ENUM:
        parse_enum(v, n, f, (int *)p);
        break;
    case SL_FIELD_HOSTPORT:
        /* SL_FIELD_HOSTPORT is an upstream node's address. */
        sl_schema_hostport(v, n, (sl_hostport_t *)p, "upstream.scheme");
        break;
    case SL_FIELD_LISTEN:
        sl_schema_listen(v, n, (sl_hostport_t *)p, NULL);
        break;
    case SL_FIELD_SECTION:
        sl_schema_parse(v, n, f->sub, p);
        break;
    case SL_FIELD_CUSTOM:
        f->custom(v, n, base);
        break;
    case SL_FIELD_REJECT:
        sl_schema_err_at(v, n->key_line, n->key_col, "%s", f->msg);
        break;
    }
}

void sl_schema_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, const sl_schema_section_t *sec, void *base)
{
    const sl_config_node_t *seen[SL_SCHEMA_MAX_FIELDS] = {0};
    if (n && !sl_node_is_null(n)) {
        if (n->kind != SL_NODE_MAP) {
            sl_schema_err(v, n, "expected a map, got %s", sl_node_kind_name(n));
            return;
        }
        for (const sl_config_node_t *c = n->first; c; c = c->next) {
            size_t i;
            for (i = 0; i < sec->n; i++)
                if (!strcmp(sec->fields[i].name, c->key)) break;
            size_t old = sl_schema_path_key(v, c->key);
            if (i == sec->n) {
                const char *names[SL_SCHEMA_MAX_FIELDS];
                for (size_t k = 0; k < sec->n; k++)
                    names[k] = sec->fields[k].name;
                unknown_key(v, c, names, sec->n);
            } else { /* keys are unique here: sl_schema_prepare() dropped the repeats */
                seen[i] = c;
                parse_field(v, c, &sec->fields[i], base);
            }
            sl_schema_path_pop(v, old);
        }
    }
    for (size_t i = 0; i < sec->n; i++) {
        if (!sec->fields[i].required || seen[i]) continue;
        size_t old = sl_schema_path_key(v, sec->fields[i].name);
        sl_schema_err(v, n, "is required");
        sl_schema_path_pop(v, old);
    }
}

long sl_schema_list(sl_schema_ctx_t *v, const sl_config_node_t *n, int allow_empty)
{
    if (sl_node_is_null(n)) {
        if (allow_empty) return 0;
        sl_schema_err(v, n, "must not be empty");
        return -1;
    }
    if (n->kind != SL_NODE_SEQ) {
        sl_schema_err(v, n, "expected a list, got %s", sl_node_kind_name(n));
        return -1;
    }
    if (!allow_empty && n->n == 0) {
        sl_schema_err(v, n, "must not be empty");
        return -1;
    }
    return (long)n->n;
}
