/* Configuration errors as records ({file, line, col, path, message}): how the loader adds them
 * (sl_config_diag_add: in file order, at most 200 per source), and the two forms they are
 * shown in, one line of text and JSON, made only where they are shown. */
#include "config/node.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/common.h"
#include "base/utf8.h"

#define TEXT_MAX (SL_CONFIG_ERROR_TEXT_MAX - 1)

/* A copy of the first len bytes of s on one line: messages quote user text, and a control
 * character in it must not start a new line in a log or a terminal. NULL stays NULL. */
static char *one_line(const char *s, size_t len)
{
    if (!s) return NULL;
    char *c = sl_xstrndup(s, len);
    for (char *p = c; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return c;
}

static void record_set(sl_config_error_t *r, const char *file, int line, int col, const char *path, const char *fmt,
                       va_list ap)
{
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_vprintf(&b, fmt, ap);
    const char *msg = sl_buf_cstr(&b);
    size_t len = b.len;
    /* No text can be longer than TEXT_MAX, so neither is a message: cut as the text would be. */
    if (len > TEXT_MAX) {
        len = TEXT_MAX;
        memcpy(b.data + len - 3, "...", 3);
    }
    r->file = file ? one_line(file, strlen(file)) : NULL;
    r->line = line;
    r->col = col;
    r->path = path ? one_line(path, strlen(path)) : NULL;
    r->message = one_line(msg, len);
    sl_buf_free(&b);
}

static void record_free(sl_config_error_t *r)
{
    free(r->file);
    free(r->path);
    free(r->message);
}

/* Makes room for one more record at the end of e and returns it. */
static sl_config_error_t *grow(sl_config_errors_t *e)
{
    e->items = sl_xrealloc(e->items, (e->n + 1) * sizeof(*e->items));
    return &e->items[e->n++];
}

void sl_config_errors_free(sl_config_errors_t *e)
{
    if (!e) return;
    for (size_t i = 0; i < e->n; i++)
        record_free(&e->items[i]);
    free(e->items);
    e->items = NULL;
    e->n = 0;
}

void sl_config_errors_add(sl_config_errors_t *e, const char *file, int line, int col, const char *path, const char *fmt,
                          ...)
{
    va_list ap;
    va_start(ap, fmt);
    record_set(grow(e), file, line, col, path, fmt, ap);
    va_end(ap);
}

/* Ends d's errors with "FILE: too many errors, stopping here", once. */
static void too_many(sl_config_diag_t *d)
{
    sl_config_errors_t *e = d->errs;
    if (e->n > d->start + SL_CONFIG_MAX_ERRORS) return;
    sl_config_errors_add(e, d->file, 0, 0, NULL, "too many errors, stopping here");
}

void sl_config_diag_vadd(sl_config_diag_t *d, int line, int col, const char *path, const char *fmt, va_list ap)
{
    sl_config_errors_t *e = d->errs;
    if (d->n_errors++ == 0) d->start = e->n;
    uint64_t pos = line > 0 ? (uint64_t)line << 32 | (uint32_t)(col > 0 ? col : 0) : 0;
    /* Where the error goes among the kept ones: after every one at or before its position. */
    size_t lo = 0, hi = d->n_kept;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (d->pos[mid] <= pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == SL_CONFIG_MAX_ERRORS) { /* later in the file than the first 200 */
        too_many(d);
        return;
    }
    sl_config_error_t r;
    record_set(&r, d->file, line, col, path, fmt, ap);
    if (d->n_kept == SL_CONFIG_MAX_ERRORS) {
        /* Full: the last kept error makes room, and the list ends with the one saying so. */
        too_many(d);
        record_free(&e->items[d->start + SL_CONFIG_MAX_ERRORS - 1]);
        d->n_kept--;
    } else {
        grow(e);
    }
    sl_config_error_t *at = &e->items[d->start + lo];
    /* Shift the kept errors after the new one (the "too many" one, if any, stays last). */
    memmove(at + 1, at, (d->n_kept - lo) * sizeof(*at));
    memmove(&d->pos[lo + 1], &d->pos[lo], (d->n_kept - lo) * sizeof(d->pos[0]));
    *at = r;
    d->pos[lo] = pos;
    d->n_kept++;
}

void sl_config_diag_add(sl_config_diag_t *d, int line, int col, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_config_diag_vadd(d, line, col, path, fmt, ap);
    va_end(ap);
}

const char *sl_config_errors_text(const sl_config_errors_t *e, size_t i, char buf[SL_CONFIG_ERROR_TEXT_MAX])
{
    const sl_config_error_t *r = &e->items[i];
    char at[64] = "";
    if (r->file && r->line > 0) snprintf(at, sizeof(at), ":%d:%d", r->line, r->col);
    int n = snprintf(buf, SL_CONFIG_ERROR_TEXT_MAX, "%s%s%s%s%s%s", r->file ? r->file : "", at, r->file ? ": " : "",
                     r->path ? r->path : "", r->path ? ": " : "", r->message);
    if (n > TEXT_MAX) memcpy(buf + TEXT_MAX - 3, "...", 3);
    return buf;
}

/* A JSON string of s (null for NULL), valid UTF-8 whatever s holds: a file name or a quoted
 * value may not be, and jansson refuses such text. */
static json_t *json_text(const char *s)
{
    if (!s) return json_null();
    size_t n = strlen(s), k = 0;
    char *c = sl_xmalloc(n + 1);
    for (size_t i = 0; i < n;) {
        size_t len = sl_utf8_seq_len((const unsigned char *)s + i, n - i);
        if (len == 0) {
            c[k++] = '?';
            i++;
        } else {
            memcpy(c + k, s + i, len);
            k += len;
            i += len;
        }
    }
    json_t *j = json_stringn(c, k);
    free(c);
    return j;
}

struct json_t *sl_config_errors_json(const sl_config_errors_t *e)
{
    json_t *a = json_array();
    for (size_t i = 0; i < e->n; i++) {
        const sl_config_error_t *r = &e->items[i];
        json_t *o = json_object();
        json_object_set_new(o, "file", json_text(r->file));
        json_object_set_new(o, "line", json_integer(r->line));
        json_object_set_new(o, "col", json_integer(r->col));
        json_object_set_new(o, "path", json_text(r->path));
        json_object_set_new(o, "message", json_text(r->message));
        json_array_append_new(a, o);
    }
    return a;
}
