/* Common macros and abort-on-OOM allocation for control objects. */
#ifndef SL_BASE_COMMON_H
#define SL_BASE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define SL_UNUSED(x) (void)(x)
#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define sl_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define SL_LIKELY(x) __builtin_expect(!!(x), 1)
#define SL_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Allocation for control objects: aborts the process on out-of-memory, never returns NULL. */
void *sl_xmalloc(size_t n);
void *sl_xcalloc(size_t count, size_t n);
void *sl_xrealloc(void *p, size_t n);
char *sl_xstrdup(const char *s);
char *sl_xstrndup(const char *s, size_t n);

#endif
