#include "http/router.h"
#include "base/arena.h"
#include "base/common.h"
#include "base/map.h"

#include <string.h>

typedef struct candidate {
    uint32_t methods;
    void *route;
    struct candidate *next;
    struct candidate *last; /* in a list's first candidate: its last, so adding is O(1) */
} candidate_t;

typedef struct path_table {
    sl_map_t exact;  /* path -> candidate list */
    sl_map_t prefix; /* "/a/" -> candidate list */
} path_table_t;

struct sl_router {
    sl_arena_t arena;
    sl_map_t exact_hosts; /* "api.example.com" -> path_table_t */
    sl_map_t wild_hosts;  /* ".example.org" -> path_table_t */
    path_table_t *any;
    /* Every path table, to free the maps inside them. */
    path_table_t **tables;
    size_t n_tables, cap_tables;
};

sl_router_t *sl_router_create(void)
{
    sl_router_t *r = sl_xcalloc(1, sizeof(*r));
    sl_arena_init(&r->arena, 16384);
    return r;
}

static void free_table(path_table_t *t)
{
    sl_map_free(&t->exact);
    sl_map_free(&t->prefix);
}

void sl_router_destroy(sl_router_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_tables; i++) free_table(r->tables[i]);
    free(r->tables);
    sl_map_free(&r->exact_hosts);
    sl_map_free(&r->wild_hosts);
    sl_arena_reset(&r->arena);
    free(r);
}

static path_table_t *new_table(sl_router_t *r)
{
    path_table_t *t = sl_arena_calloc(&r->arena, sizeof(*t));
    if (r->n_tables == r->cap_tables) {
        r->cap_tables = r->cap_tables ? r->cap_tables * 2 : 16;
        r->tables = sl_xrealloc(r->tables, r->cap_tables * sizeof(*r->tables));
    }
    r->tables[r->n_tables++] = t;
    return t;
}

static path_table_t *table_for(sl_router_t *r, sl_map_t *m, const char *key)
{
    size_t len = strlen(key);
    void **slot = sl_map_slot(m, key, len);
    if (!*slot) {
        /* The map borrows its key: give it the arena's copy. */
        *slot = new_table(r);
        sl_map_entry_t *e = (sl_map_entry_t *)((char *)slot - offsetof(sl_map_entry_t, value));
        e->key = sl_arena_strndup(&r->arena, key, len);
    }
    return *slot;
}

static void append(sl_router_t *r, sl_map_t *m, const char *key, size_t len, uint32_t methods, void *route)
{
    void **slot = sl_map_slot(m, key, len);
    sl_map_entry_t *e = (sl_map_entry_t *)((char *)slot - offsetof(sl_map_entry_t, value));
    if (!*slot) e->key = sl_arena_strndup(&r->arena, key, len);
    candidate_t *c = sl_arena_calloc(&r->arena, sizeof(*c));
    c->methods = methods;
    c->route = route;
    candidate_t *head = *slot;
    if (head) head->last->next = c, head->last = c;
    else *slot = c, c->last = c;
}

void sl_router_add(sl_router_t *r, const char *host, const char *path, uint32_t methods, void *route)
{
    path_table_t *t;
    if (!host || !*host) {
        if (!r->any) r->any = new_table(r);
        t = r->any;
    } else if (host[0] == '*' && host[1] == '.') {
        t = table_for(r, &r->wild_hosts, host + 1);
    } else {
        t = table_for(r, &r->exact_hosts, host);
    }
    size_t len = strlen(path);
    if (len >= 2 && path[len - 1] == '*' && path[len - 2] == '/')
        append(r, &t->prefix, path, len - 1, methods, route);
    else
        append(r, &t->exact, path, len, methods, route);
}

static void *pick(const candidate_t *c, uint32_t method_bit)
{
    for (; c; c = c->next)
        if (!c->methods || (c->methods & method_bit)) return c->route;
    return NULL;
}

static void *match_paths(const path_table_t *t, const char *path, size_t len, uint32_t method_bit)
{
    void *route = pick(sl_map_get(&t->exact, path, len), method_bit);
    if (route || !t->prefix.len) return route;
    for (size_t i = len; i-- > 0;) {
        if (path[i] != '/') continue;
        route = pick(sl_map_get(&t->prefix, path, i + 1), method_bit);
        if (route) return route;
    }
    return NULL;
}

void *sl_router_match(const sl_router_t *r, const char *host, size_t host_len, const char *path, size_t path_len,
                      uint32_t method_bit)
{
    void *route;
    if (host_len) {
        path_table_t *t = sl_map_get(&r->exact_hosts, host, host_len);
        if (t && (route = match_paths(t, path, path_len, method_bit))) return route;
        if (r->wild_hosts.len) {
            /* Longest suffix first: ".b.example.org" before ".example.org". */
            for (size_t i = 0; i < host_len; i++) {
                if (host[i] != '.') continue;
                t = sl_map_get(&r->wild_hosts, host + i, host_len - i);
                if (t && (route = match_paths(t, path, path_len, method_bit))) return route;
            }
        }
    }
    return r->any ? match_paths(r->any, path, path_len, method_bit) : NULL;
}
