#include "base/arena.h"
#include "base/common.h"

#include <string.h>

struct sl_arena_chunk {
    sl_arena_chunk_t *next;
    size_t used, cap;
    _Alignas(max_align_t) unsigned char data[];
};

void sl_arena_init(sl_arena_t *a, size_t chunk_size)
{
    a->head = NULL;
    a->chunk_size = chunk_size ? chunk_size : 4096;
}

void *sl_arena_alloc(sl_arena_t *a, size_t n)
{
    const size_t align = _Alignof(max_align_t);
    n = (n + align - 1) & ~(align - 1);
    if (!n) n = align;
    sl_arena_chunk_t *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > a->chunk_size ? n : a->chunk_size;
        c = sl_xmalloc(sizeof(*c) + cap);
        c->used = 0;
        c->cap = cap;
        /* A chunk made for one large allocation goes behind the head so the head's free space is kept. */
        if (a->head && cap == n) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

void *sl_arena_calloc(sl_arena_t *a, size_t n)
{
    void *p = sl_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *sl_arena_strndup(sl_arena_t *a, const char *s, size_t n)
{
    char *p = sl_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *sl_arena_strdup(sl_arena_t *a, const char *s)
{
    return sl_arena_strndup(a, s, strlen(s));
}

static void free_chunks(sl_arena_chunk_t *c)
{
    while (c) {
        sl_arena_chunk_t *n = c->next;
        free(c);
        c = n;
    }
}

void sl_arena_reset(sl_arena_t *a)
{
    free_chunks(a->head);
    a->head = NULL;
}

void sl_arena_clear(sl_arena_t *a)
{
    sl_arena_chunk_t *keep = a->head;
    if (!keep) return;
    free_chunks(keep->next);
    keep->next = NULL;
    keep->used = 0;
}
