/* Hash map from byte strings to opaque pointers: open addressing with linear probing, and
 * deletion by backward shift (no tombstones), so probes stay short however many keys come and
 * go. A key is any bytes, NUL and every other value included. Not thread-safe: the caller
 * locks.
 *
 * Keys are borrowed (sl_map_init) or owned (SL_MAP_OWNED):
 * - a borrowed key is the caller's pointer, which must outlive its entry (configuration
 *   strings, an arena's copy);
 * - an owned key is copied on insert, NUL-terminated so that entry->key is also a C string,
 *   and freed when the entry is deleted or the map freed.
 * SL_MAP_LRU keeps the entries in order of use, most recent first: finding a key with
 * sl_map_slot makes it the most recent. With a capacity, inserting a new key into a full map
 * first evicts the least recently used entry, dropping its value (for values that own
 * nothing, such as numbers; otherwise call sl_map_evict, which hands the value back, before
 * inserting).
 * SL_MAP_SEEDED mixes a random per-map seed into the hash, for keys a peer chooses (client
 * addresses, header values), so that nobody can pick keys that pile up in one run of slots.
 *
 * Entries move when the map grows and when a key is deleted: a slot pointer from sl_map_slot
 * is good until the next insert or delete. */
#ifndef SL_BASE_MAP_H
#define SL_BASE_MAP_H

#include <stddef.h>
#include <stdint.h>

#define SL_MAP_OWNED 1u
#define SL_MAP_LRU 2u
#define SL_MAP_SEEDED 4u

#define SL_MAP_NONE UINT32_MAX

typedef struct sl_map_entry {
    const char *key; /* NULL: the slot is empty */
    size_t key_len;
    uint64_t hash;
    void *value;
    uint32_t newer, older; /* LRU maps: the neighbours' slot indices, SL_MAP_NONE at the ends */
} sl_map_entry_t;

/* Small, since some structures embed many (a CIDR set has one per prefix length); all zero is
 * a valid empty map with borrowed keys, like sl_map_init's. */
typedef struct sl_map {
    sl_map_entry_t *slots;
    uint32_t cap, len;
    uint32_t flags;
    uint32_t capacity;       /* LRU maps: most entries kept; 0 keeps any number */
    uint32_t newest, oldest; /* LRU maps: slot indices, SL_MAP_NONE when empty */
    uint64_t seed;
} sl_map_t;

/* An empty map with borrowed keys, no order, no seed. */
void sl_map_init(sl_map_t *m);
/* An empty map with SL_MAP_* flags; capacity bounds an LRU map (0: no bound; ignored
 * without SL_MAP_LRU). At most 2^31 entries. */
void sl_map_init_with(sl_map_t *m, unsigned flags, uint32_t capacity);
/* Frees the slots and owned keys (never the values); the map is empty and reusable after. */
void sl_map_free(sl_map_t *m);

/* Returns the value for key, or NULL. Leaves the LRU order alone. */
void *sl_map_get(const sl_map_t *m, const char *key, size_t key_len);
/* Returns the address of key's value slot, or NULL when absent; inserts nothing and leaves
 * the LRU order alone. */
void **sl_map_find(const sl_map_t *m, const char *key, size_t key_len);
/* Returns the address of the value slot for key, inserting NULL first when absent (copying an
 * owned key; in a full LRU map, after evicting the least recently used entry). In an LRU map
 * the key becomes the most recently used. */
void **sl_map_slot(sl_map_t *m, const char *key, size_t key_len);
/* Removes key: returns 1 and sets *value (when value is not NULL) to what it held, or 0 when
 * the key is absent. */
int sl_map_del(sl_map_t *m, const char *key, size_t key_len, void **value);
/* LRU maps: removes the least recently used entry; returns 1 and sets *value, or 0 when the
 * map is empty. */
int sl_map_evict(sl_map_t *m, void **value);

static inline size_t sl_map_len(const sl_map_t *m)
{
    return m->len;
}

/* Iteration in slot order: start with *i = 0; returns each entry once, then NULL. The map
 * must not change meanwhile. */
sl_map_entry_t *sl_map_next(const sl_map_t *m, size_t *i);
/* LRU maps: the most recently used entry and the next older one (NULL past the oldest). */
sl_map_entry_t *sl_map_newest(const sl_map_t *m);
sl_map_entry_t *sl_map_older(const sl_map_t *m, const sl_map_entry_t *e);

/* The hash m gives key (with its seed). */
uint64_t sl_map_hash(const sl_map_t *m, const void *key, size_t key_len);
/* FNV-1a with a final avalanche, unseeded: the same bytes hash the same in every process. */
uint64_t sl_hash_bytes(const void *p, size_t n);

#endif
