/* Readers that turn YAML (libyaml's event API) and JSON (a small reader of our own, because
 * jansson reports positions only for errors) into the sl_config_node_t tree. */
#include "config/node.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "base/buf.h"
#include "base/common.h"

int sl_node_is_null(const sl_config_node_t *n)
{
    if (!n) return 1;
    if (n->kind != SL_NODE_SCALAR || n->quoted) return 0;
    return n->len == 0 || !strcmp(n->str, "~") || !strcmp(n->str, "null") || !strcmp(n->str, "Null") ||
           !strcmp(n->str, "NULL");
}

const char *sl_node_kind_name(const sl_config_node_t *n)
{
    if (sl_node_is_null(n)) return "null";
    switch (n->kind) {
    case SL_NODE_MAP:
        return "a map";
    case SL_NODE_SEQ:
        return "a list";
    default:
        return "a scalar";
    }
}

const sl_config_node_t *sl_node_get(const sl_config_node_t *n, const char *key)
{
    if (!n || n->kind != SL_NODE_MAP) return NULL;
    for (const sl_config_node_t *c = n->first; c; c = c->next)
        if (!strcmp(c->key, key)) return c;
    return NULL;
}

static sl_config_node_t *node_new(sl_arena_t *a, sl_node_kind_t kind, int line, int col)
{
    sl_config_node_t *n = sl_arena_calloc(a, sizeof(*n));
    n->kind = kind;
    n->line = line;
    n->col = col;
    n->str = "";
    return n;
}

static void node_append(sl_config_node_t *parent, sl_config_node_t *child)
{
    if (parent->last)
        parent->last->next = child;
    else
        parent->first = child;
    parent->last = child;
    parent->n++;
}

/* Turns a byte offset into a 1-based line and column (columns count characters, as libyaml does). */
static void offset_to_pos(const char *data, size_t len, size_t off, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (data[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)data[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* ---- YAML ---- */

typedef struct yaml_frame {
    sl_config_node_t *node;
    int have_key;
    const char *key;
    int key_line, key_col;
} yaml_frame_t;

typedef struct yaml_builder {
    sl_arena_t *a;
    sl_config_diag_t *d;
    yaml_frame_t stack[SL_CONFIG_MAX_DEPTH + 1];
    int depth;
    sl_config_node_t *root;
    int failed;
} yaml_builder_t;

/* Places a finished value: as the document root, a list item, or the value of the pending key. */
static void yb_attach(yaml_builder_t *b, sl_config_node_t *n)
{
    if (b->depth == 0) {
        b->root = n;
        return;
    }
    yaml_frame_t *f = &b->stack[b->depth - 1];
    if (f->node->kind == SL_NODE_MAP) {
        n->key = f->key;
        n->key_line = f->key_line;
        n->key_col = f->key_col;
        f->have_key = 0;
    }
    node_append(f->node, n);
}

/* Returns 1 when the next event is a map key (keys are kept on the frame, not as nodes). */
static int yb_expect_key(const yaml_builder_t *b)
{
    if (b->depth == 0) return 0;
    const yaml_frame_t *f = &b->stack[b->depth - 1];
    return f->node->kind == SL_NODE_MAP && !f->have_key;
}

static void yb_set_key(yaml_builder_t *b, const char *key, int line, int col)
{
    yaml_frame_t *f = &b->stack[b->depth - 1];
    f->key = key;
    f->key_line = line;
    f->key_col = col;
    f->have_key = 1;
}

/* Handles one event; returns -1 when parsing cannot go on. */
static int yb_event(yaml_builder_t *b, const yaml_event_t *ev, int *docs)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++*docs > 1) {
            sl_config_diag_add(b->d, line, col, NULL, "multiple YAML documents are not supported");
            return -1;
        }
        return 0;
    case YAML_ALIAS_EVENT: {
        /* Aliases are refused outright: expanding them is how "billion laughs" inputs blow up. */
        sl_config_diag_add(b->d, line, col, NULL, "YAML aliases are not supported");
        b->failed = 1;
        if (yb_expect_key(b))
            yb_set_key(b, "", line, col);
        else
            yb_attach(b, node_new(b->a, SL_NODE_SCALAR, line, col));
        return 0;
    }
    case YAML_SCALAR_EVENT: {
        const char *v = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;
        if (memchr(v, '\0', len)) {
            sl_config_diag_add(b->d, line, col, NULL, "NUL characters are not allowed");
            b->failed = 1;
        }
        char *s = sl_arena_strndup(b->a, v, len);
        if (yb_expect_key(b)) {
            yb_set_key(b, s, line, col);
            return 0;
        }
        sl_config_node_t *n = node_new(b->a, SL_NODE_SCALAR, line, col);
        n->str = s;
        n->len = strlen(s);
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        yb_attach(b, n);
        return 0;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        if (yb_expect_key(b)) {
            sl_config_diag_add(b->d, line, col, NULL, "map keys must be strings");
            return -1;
        }
        if (b->depth >= SL_CONFIG_MAX_DEPTH) {
            sl_config_diag_add(b->d, line, col, NULL, "nesting deeper than %d levels", SL_CONFIG_MAX_DEPTH);
            return -1;
        }
        sl_node_kind_t kind = ev->type == YAML_MAPPING_START_EVENT ? SL_NODE_MAP : SL_NODE_SEQ;
        sl_config_node_t *n = node_new(b->a, kind, line, col);
        yb_attach(b, n);
        b->stack[b->depth++] = (yaml_frame_t){.node = n};
        return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (b->depth > 0) b->depth--;
        return 0;
    default:
        return 0;
    }
}

static void yaml_report(const yaml_parser_t *p, const char *data, size_t len, sl_config_diag_t *d)
{
    int line, col;
    if (p->error == YAML_READER_ERROR) {
        offset_to_pos(data, len, p->problem_offset, &line, &col);
        sl_config_diag_add(d, line, col, NULL, "YAML syntax error: %s", p->problem ? p->problem : "invalid input");
        return;
    }
    if (p->error == YAML_MEMORY_ERROR) {
        sl_config_diag_add(d, 0, 0, NULL, "YAML parser out of memory");
        return;
    }
    line = (int)p->problem_mark.line + 1;
    col = (int)p->problem_mark.column + 1;
    if (p->context)
        sl_config_diag_add(d, line, col, NULL, "YAML syntax error: %s (%s at line %d, column %d)",
                           p->problem ? p->problem : "invalid input", p->context, (int)p->context_mark.line + 1,
                           (int)p->context_mark.column + 1);
    else
        sl_config_diag_add(d, line, col, NULL, "YAML syntax error: %s", p->problem ? p->problem : "invalid input");
}

int sl_node_parse_yaml(sl_arena_t *a, const char *data, size_t len, sl_config_node_t **root, sl_config_diag_t *d)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        sl_config_diag_add(d, 0, 0, NULL, "cannot initialise the YAML parser");
        return -1;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
    yaml_builder_t b = {.a = a, .d = d};
    int docs = 0, rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            yaml_report(&p, data, len, d);
            rc = -1;
            break;
        }
        int done = ev.type == YAML_STREAM_END_EVENT;
        int r = yb_event(&b, &ev, &docs);
        yaml_event_delete(&ev);
        if (r < 0) {
            rc = -1;
            break;
        }
        if (done) break;
    }
    yaml_parser_delete(&p);
    if (b.failed) rc = -1;
    *root = rc == 0 ? b.root : NULL;
    return rc;
}

/* ---- JSON ---- */

typedef struct json_reader {
    sl_arena_t *a;
    sl_config_diag_t *d;
    const char *p, *end;
    int line, col;
    int depth;
    int failed;
} json_reader_t;

static void jr_error(json_reader_t *r, const char *msg)
{
    if (r->failed) return;
    r->failed = 1;
    sl_config_diag_add(r->d, r->line, r->col, NULL, "JSON syntax error: %s", msg);
}

static void jr_advance(json_reader_t *r)
{
    if (r->p >= r->end) return;
    if (*r->p == '\n') {
        r->line++;
        r->col = 1;
    } else if (((unsigned char)*r->p & 0xC0) != 0x80) {
        r->col++;
    }
    r->p++;
}

static void jr_skip_ws(json_reader_t *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        jr_advance(r);
}

static int jr_hex4(json_reader_t *r, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        if (r->p >= r->end) return -1;
        char c = *r->p;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
        jr_advance(r);
    }
    *out = v;
    return 0;
}

static void utf8_put(sl_buf_t *b, unsigned cp)
{
    if (cp < 0x80) {
        sl_buf_putc(b, (char)cp);
    } else if (cp < 0x800) {
        sl_buf_putc(b, (char)(0xC0 | (cp >> 6)));
        sl_buf_putc(b, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        sl_buf_putc(b, (char)(0xE0 | (cp >> 12)));
        sl_buf_putc(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        sl_buf_putc(b, (char)(0x80 | (cp & 0x3F)));
    } else {
        sl_buf_putc(b, (char)(0xF0 | (cp >> 18)));
        sl_buf_putc(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
        sl_buf_putc(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        sl_buf_putc(b, (char)(0x80 | (cp & 0x3F)));
    }
}

/* Reads a string starting at '"' into the arena; returns NULL after an error. */
static char *jr_string(json_reader_t *r, size_t *len_out)
{
    sl_buf_t b = SL_BUF_INIT;
    jr_advance(r); /* opening quote */
    for (;;) {
        if (r->p >= r->end) {
            jr_error(r, "unterminated string");
            goto fail;
        }
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            jr_advance(r);
            break;
        }
        if (c < 0x20) {
            jr_error(r, "control character in string");
            goto fail;
        }
        if (c != '\\') {
            sl_buf_putc(&b, (char)c);
            jr_advance(r);
            continue;
        }
        jr_advance(r);
        if (r->p >= r->end) {
            jr_error(r, "unterminated string");
            goto fail;
        }
        char e = *r->p;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char out[] = "\"\\/\b\f\n\r\t";
            sl_buf_putc(&b, out[simple - "\"\\/bfnrt"]);
            jr_advance(r);
            continue;
        }
        if (e != 'u') {
            jr_error(r, "invalid escape in string");
            goto fail;
        }
        jr_advance(r);
        unsigned cp;
        if (jr_hex4(r, &cp) < 0) {
            jr_error(r, "invalid \\u escape");
            goto fail;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u') {
                jr_error(r, "unpaired UTF-16 surrogate in \\u escape");
                goto fail;
            }
            jr_advance(r);
            jr_advance(r);
            if (jr_hex4(r, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF) {
                jr_error(r, "unpaired UTF-16 surrogate in \\u escape");
                goto fail;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            jr_error(r, "unpaired UTF-16 surrogate in \\u escape");
            goto fail;
        } else if (cp == 0) {
            jr_error(r, "NUL characters are not allowed");
            goto fail;
        }
        utf8_put(&b, cp);
    }
    char *s = sl_arena_strndup(r->a, b.data ? b.data : "", b.len);
    *len_out = b.len;
    sl_buf_free(&b);
    return s;
fail:
    sl_buf_free(&b);
    return NULL;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static sl_config_node_t *jr_value(json_reader_t *r);

static sl_config_node_t *jr_container(json_reader_t *r, int is_map)
{
    sl_config_node_t *n = node_new(r->a, is_map ? SL_NODE_MAP : SL_NODE_SEQ, r->line, r->col);
    if (++r->depth > SL_CONFIG_MAX_DEPTH) {
        sl_config_diag_add(r->d, r->line, r->col, NULL, "nesting deeper than %d levels", SL_CONFIG_MAX_DEPTH);
        r->failed = 1;
        return NULL;
    }
    char close = is_map ? '}' : ']';
    jr_advance(r);
    jr_skip_ws(r);
    if (r->p < r->end && *r->p == close) {
        jr_advance(r);
        r->depth--;
        return n;
    }
    for (;;) {
        const char *key = NULL;
        int key_line = 0, key_col = 0;
        if (is_map) {
            if (r->p >= r->end || *r->p != '"') {
                jr_error(r, "expected a string key");
                return NULL;
            }
            key_line = r->line;
            key_col = r->col;
            size_t klen;
            key = jr_string(r, &klen);
            if (!key) return NULL;
            jr_skip_ws(r);
            if (r->p >= r->end || *r->p != ':') {
                jr_error(r, "expected ':'");
                return NULL;
            }
            jr_advance(r);
            jr_skip_ws(r);
        }
        sl_config_node_t *v = jr_value(r);
        if (!v) return NULL;
        v->key = key;
        v->key_line = key_line;
        v->key_col = key_col;
        node_append(n, v);
        jr_skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            jr_advance(r);
            jr_skip_ws(r);
            continue;
        }
        if (r->p < r->end && *r->p == close) {
            jr_advance(r);
            break;
        }
        jr_error(r, is_map ? "expected ',' or '}'" : "expected ',' or ']'");
        return NULL;
    }
    r->depth--;
    return n;
}

static sl_config_node_t *jr_value(json_reader_t *r)
{
    if (r->p >= r->end) {
        jr_error(r, "unexpected end of input");
        return NULL;
    }
    char c = *r->p;
    if (c == '{' || c == '[') return jr_container(r, c == '{');
    sl_config_node_t *n = node_new(r->a, SL_NODE_SCALAR, r->line, r->col);
    if (c == '"') {
        size_t len;
        char *s = jr_string(r, &len);
        if (!s) return NULL;
        n->str = s;
        n->len = len;
        n->quoted = 1;
        return n;
    }
    const char *start = r->p;
    if (c == '-' || is_digit(c)) {
        if (*r->p == '-') jr_advance(r);
        if (r->p < r->end && *r->p == '0') {
            jr_advance(r);
        } else if (r->p < r->end && is_digit(*r->p)) {
            while (r->p < r->end && is_digit(*r->p))
                jr_advance(r);
        } else {
            jr_error(r, "invalid number");
            return NULL;
        }
        if (r->p < r->end && *r->p == '.') {
            jr_advance(r);
            if (r->p >= r->end || !is_digit(*r->p)) {
                jr_error(r, "invalid number");
                return NULL;
            }
            while (r->p < r->end && is_digit(*r->p))
                jr_advance(r);
        }
        if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
            jr_advance(r);
            if (r->p < r->end && (*r->p == '+' || *r->p == '-')) jr_advance(r);
            if (r->p >= r->end || !is_digit(*r->p)) {
                jr_error(r, "invalid number");
                return NULL;
            }
            while (r->p < r->end && is_digit(*r->p))
                jr_advance(r);
        }
    } else {
        static const char *const words[] = {"true", "false", "null"};
        size_t i;
        for (i = 0; i < SL_ARRAY_LEN(words); i++) {
            size_t wl = strlen(words[i]);
            if ((size_t)(r->end - r->p) >= wl && !memcmp(r->p, words[i], wl)) break;
        }
        if (i == SL_ARRAY_LEN(words)) {
            jr_error(r, "unexpected character");
            return NULL;
        }
        for (size_t k = strlen(words[i]); k > 0; k--)
            jr_advance(r);
    }
    n->len = (size_t)(r->p - start);
    n->str = sl_arena_strndup(r->a, start, n->len);
    return n;
}

int sl_node_parse_json(sl_arena_t *a, const char *data, size_t len, sl_config_node_t **root, sl_config_diag_t *d)
{
    json_reader_t r = {.a = a, .d = d, .p = data, .end = data + len, .line = 1, .col = 1};
    *root = NULL;
    if (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3)) r.p += 3;
    jr_skip_ws(&r);
    if (r.p >= r.end) return 0; /* an empty file is an empty configuration, as in YAML */
    sl_config_node_t *n = jr_value(&r);
    if (!n) return -1;
    jr_skip_ws(&r);
    if (r.p < r.end) {
        jr_error(&r, "unexpected data after the top-level value");
        return -1;
    }
    *root = n;
    return 0;
}
