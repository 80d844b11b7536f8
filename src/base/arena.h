/* Arena allocator: many small allocations freed together (configuration trees, requests). */
#ifndef SL_BASE_ARENA_H
#define SL_BASE_ARENA_H

#include <stddef.h>

typedef struct sl_arena_chunk sl_arena_chunk_t;

typedef struct sl_arena {
    sl_arena_chunk_t *head;
    size_t chunk_size;
} sl_arena_t;

/* Initialises an empty arena; chunk_size 0 picks a default (4 KiB). */
void sl_arena_init(sl_arena_t *a, size_t chunk_size);
/* Returns n bytes aligned for any type, owned by the arena; aborts on out-of-memory. */
void *sl_arena_alloc(sl_arena_t *a, size_t n);
/* Like sl_arena_alloc, zero-filled. */
void *sl_arena_calloc(sl_arena_t *a, size_t n);
/* Copies a string (or n bytes plus a NUL) into the arena. */
char *sl_arena_strdup(sl_arena_t *a, const char *s);
char *sl_arena_strndup(sl_arena_t *a, const char *s, size_t n);
/* Frees every allocation; the arena can be used again afterwards. */
void sl_arena_reset(sl_arena_t *a);
/* Frees every allocation but keeps the newest chunk for the next use: an arena cleared after
 * each request stops allocating once warm. */
void sl_arena_clear(sl_arena_t *a);

#endif
