#include "base/map.h"
#include "base/common.h"

#include <string.h>

uint64_t sl_hash_bytes(const void *p, size_t n)
{
    /* FNV-1a with a final avalanche; keys here are short hostnames and paths. */
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

void sl_map_init(sl_map_t *m)
{
    m->slots = NULL;
    m->cap = m->len = 0;
}

void sl_map_free(sl_map_t *m)
{
    free(m->slots);
    sl_map_init(m);
}

static sl_map_entry_t *find(const sl_map_t *m, const char *key, size_t len, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        sl_map_entry_t *e = &m->slots[i];
        if (!e->key) return e;
        if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0) return e;
    }
}

void *sl_map_get(const sl_map_t *m, const char *key, size_t key_len)
{
    if (!m->len) return NULL;
    sl_map_entry_t *e = find(m, key, key_len, sl_hash_bytes(key, key_len));
    return e->key ? e->value : NULL;
}

static void grow(sl_map_t *m)
{
    sl_map_t n = {sl_xcalloc(m->cap ? m->cap * 2 : 16, sizeof(sl_map_entry_t)), m->cap ? m->cap * 2 : 16, m->len};
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) *find(&n, m->slots[i].key, m->slots[i].key_len, m->slots[i].hash) = m->slots[i];
    free(m->slots);
    *m = n;
}

void **sl_map_slot(sl_map_t *m, const char *key, size_t key_len)
{
    if ((m->len + 1) * 4 > m->cap * 3) grow(m);
    uint64_t h = sl_hash_bytes(key, key_len);
    sl_map_entry_t *e = find(m, key, key_len, h);
    if (!e->key) {
        e->key = key;
        e->key_len = key_len;
        e->hash = h;
        e->value = NULL;
        m->len++;
    }
    return &e->value;
}
