/* Growable byte buffer for control paths (rendering metrics, building messages). */
#ifndef SL_BASE_BUF_H
#define SL_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct sl_buf {
    char *data;
    size_t len, cap;
} sl_buf_t;

#define SL_BUF_INIT {NULL, 0, 0}

/* Ensures room for n more bytes (and a NUL after them); aborts on out-of-memory. Inline: the
 * room is nearly always there, and formatting code calls it for every piece. */
void sl_buf_grow(sl_buf_t *b, size_t n);
static inline void sl_buf_reserve(sl_buf_t *b, size_t n)
{
    if (b->cap - b->len <= n) sl_buf_grow(b, n);
}
void sl_buf_append(sl_buf_t *b, const void *p, size_t n);
void sl_buf_puts(sl_buf_t *b, const char *s);
void sl_buf_putc(sl_buf_t *b, char c);
void sl_buf_printf(sl_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sl_buf_vprintf(sl_buf_t *b, const char *fmt, va_list ap);
/* Appends s as the inside of a JSON string (quotes not included), escaping as RFC 8259 requires. */
void sl_buf_json_escape(sl_buf_t *b, const char *s, size_t n);
/* Keeps data NUL-terminated past len (data[len] == 0) without counting it. */
const char *sl_buf_cstr(sl_buf_t *b);
void sl_buf_free(sl_buf_t *b);

/* The calling thread's formatting buffer, emptied: reused from call to call, so a hot path
 * neither allocates per message nor formats under a lock; freed when the thread exits. One
 * user at a time: a caller is done with it before anything it calls may take it again. */
sl_buf_t *sl_buf_thread_scratch(void);

#endif
