#include "base/map.h"
#include "base/common.h"
#include "base/random.h"

#include <string.h>

#define MIN_CAP 16

uint64_t sl_hash_bytes(const void *p, size_t n)
{
    /* FNV-1a with a final avalanche; keys here are short hostnames and paths. */
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

uint64_t sl_map_hash(const sl_map_t *m, const void *key, size_t key_len)
{
    uint64_t h = sl_hash_bytes(key, key_len);
    if (!(m->flags & SL_MAP_SEEDED)) return h;
    /* Mixed after the seed, so the low bits that pick a slot depend on all of it. */
    h ^= m->seed;
    h ^= h >> 31;
    h *= 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    return h;
}

void sl_map_init_with(sl_map_t *m, unsigned flags, uint32_t capacity)
{
    memset(m, 0, sizeof(*m));
    m->flags = flags;
    m->capacity = flags & SL_MAP_LRU ? capacity : 0;
    m->newest = m->oldest = SL_MAP_NONE;
    if (flags & SL_MAP_SEEDED) sl_random_bytes(&m->seed, sizeof(m->seed));
}

void sl_map_init(sl_map_t *m)
{
    sl_map_init_with(m, 0, 0);
}

void sl_map_free(sl_map_t *m)
{
    if (m->flags & SL_MAP_OWNED)
        for (uint32_t i = 0; i < m->cap; i++)
            free((char *)m->slots[i].key);
    free(m->slots);
    m->slots = NULL;
    m->cap = m->len = 0;
    m->newest = m->oldest = SL_MAP_NONE;
}

/* The slot holding key, or the empty slot where it would go. m->cap > 0. */
static uint32_t find(const sl_map_t *m, const char *key, size_t len, uint64_t h)
{
    uint32_t mask = m->cap - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        const sl_map_entry_t *e = &m->slots[i];
        if (!e->key) return i;
        if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0) return i;
    }
}

/* ---- LRU order: a doubly linked list through slot indices ---- */

static void lru_unlink(sl_map_t *m, uint32_t i)
{
    sl_map_entry_t *e = &m->slots[i];
    if (e->newer != SL_MAP_NONE)
        m->slots[e->newer].older = e->older;
    else
        m->newest = e->older;
    if (e->older != SL_MAP_NONE)
        m->slots[e->older].newer = e->newer;
    else
        m->oldest = e->newer;
    e->newer = e->older = SL_MAP_NONE;
}

static void lru_push(sl_map_t *m, uint32_t i)
{
    sl_map_entry_t *e = &m->slots[i];
    e->newer = SL_MAP_NONE;
    e->older = m->newest;
    if (m->newest != SL_MAP_NONE)
        m->slots[m->newest].newer = i;
    else
        m->oldest = i;
    m->newest = i;
}

/* Moves the entry in slot from to the empty slot to, keeping its place in the order. */
static void move_entry(sl_map_t *m, uint32_t from, uint32_t to)
{
    sl_map_entry_t *e = &m->slots[to];
    *e = m->slots[from];
    m->slots[from].key = NULL;
    if (!(m->flags & SL_MAP_LRU)) return;
    if (e->newer != SL_MAP_NONE)
        m->slots[e->newer].older = to;
    else
        m->newest = to;
    if (e->older != SL_MAP_NONE)
        m->slots[e->older].newer = to;
    else
        m->oldest = to;
}

static void grow(sl_map_t *m)
{
    sl_map_t n = *m;
    n.cap = m->cap ? m->cap * 2 : MIN_CAP;
    n.slots = sl_xcalloc(n.cap, sizeof(sl_map_entry_t));
    n.newest = n.oldest = SL_MAP_NONE;
    if (m->flags & SL_MAP_LRU) {
        /* Oldest first, each pushed in front of the ones before: the order comes out the same. */
        for (uint32_t i = m->oldest; i != SL_MAP_NONE; i = m->slots[i].newer) {
            uint32_t j = find(&n, m->slots[i].key, m->slots[i].key_len, m->slots[i].hash);
            n.slots[j] = m->slots[i];
            lru_push(&n, j);
        }
    } else {
        for (uint32_t i = 0; i < m->cap; i++)
            if (m->slots[i].key)
                n.slots[find(&n, m->slots[i].key, m->slots[i].key_len, m->slots[i].hash)] = m->slots[i];
    }
    free(m->slots);
    *m = n;
}

/* Empties slot i and closes the gap: each later entry of the run moves back into the hole
 * when the hole lies between its home slot and where it is, so every key stays reachable
 * from its home without tombstones. */
static void remove_at(sl_map_t *m, uint32_t i)
{
    if (m->flags & SL_MAP_LRU) lru_unlink(m, i);
    if (m->flags & SL_MAP_OWNED) free((char *)m->slots[i].key);
    m->slots[i].key = NULL;
    m->len--;
    uint32_t mask = m->cap - 1, hole = i;
    for (uint32_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        uint32_t home = (uint32_t)m->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            move_entry(m, j, hole);
            hole = j;
        }
    }
}

void **sl_map_find(const sl_map_t *m, const char *key, size_t key_len)
{
    if (!m->len) return NULL;
    sl_map_entry_t *e = &m->slots[find(m, key, key_len, sl_map_hash(m, key, key_len))];
    return e->key ? &e->value : NULL;
}

void *sl_map_get(const sl_map_t *m, const char *key, size_t key_len)
{
    void **slot = sl_map_find(m, key, key_len);
    return slot ? *slot : NULL;
}

void **sl_map_slot(sl_map_t *m, const char *key, size_t key_len)
{
    uint64_t h = sl_map_hash(m, key, key_len);
    if (m->len) {
        uint32_t i = find(m, key, key_len, h);
        if (m->slots[i].key) {
            if (m->flags & SL_MAP_LRU) {
                lru_unlink(m, i);
                lru_push(m, i);
            }
            return &m->slots[i].value;
        }
    }
    if (m->capacity && m->len >= m->capacity) sl_map_evict(m, NULL);
    if ((uint64_t)(m->len + 1) * 4 > (uint64_t)m->cap * 3) grow(m);
    uint32_t i = find(m, key, key_len, h);
    sl_map_entry_t *e = &m->slots[i];
    if (m->flags & SL_MAP_OWNED) {
        char *copy = sl_xmalloc(key_len + 1);
        memcpy(copy, key, key_len);
        copy[key_len] = '\0';
        e->key = copy;
    } else {
        e->key = key;
    }
    e->key_len = key_len;
    e->hash = h;
    e->value = NULL;
    m->len++;
    if (m->flags & SL_MAP_LRU) lru_push(m, i);
    return &e->value;
}

int sl_map_del(sl_map_t *m, const char *key, size_t key_len, void **value)
{
    if (!m->len) return 0;
    uint32_t i = find(m, key, key_len, sl_map_hash(m, key, key_len));
    if (!m->slots[i].key) return 0;
    if (value) *value = m->slots[i].value;
    remove_at(m, i);
    return 1;
}

int sl_map_evict(sl_map_t *m, void **value)
{
    if (!(m->flags & SL_MAP_LRU) || m->oldest == SL_MAP_NONE) return 0;
    uint32_t i = m->oldest;
    if (value) *value = m->slots[i].value;
    remove_at(m, i);
    return 1;
}

sl_map_entry_t *sl_map_next(const sl_map_t *m, size_t *i)
{
    for (; *i < m->cap; (*i)++)
        if (m->slots[*i].key) return &m->slots[(*i)++];
    return NULL;
}

sl_map_entry_t *sl_map_newest(const sl_map_t *m)
{
    return (m->flags & SL_MAP_LRU) && m->newest != SL_MAP_NONE ? &m->slots[m->newest] : NULL;
}

sl_map_entry_t *sl_map_older(const sl_map_t *m, const sl_map_entry_t *e)
{
    return e->older != SL_MAP_NONE ? &m->slots[e->older] : NULL;
}
