/* String-keyed hash map (open addressing, linear probing). Keys are borrowed: they must
 * outlive the map (configuration strings do). Values are opaque pointers. */
#ifndef SL_BASE_MAP_H
#define SL_BASE_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl_map_entry {
    const char *key;
    size_t key_len;
    uint64_t hash;
    void *value;
} sl_map_entry_t;

typedef struct sl_map {
    sl_map_entry_t *slots;
    size_t cap, len;
} sl_map_t;

void sl_map_init(sl_map_t *m);
void sl_map_free(sl_map_t *m);
/* Returns the value for key, or NULL. */
void *sl_map_get(const sl_map_t *m, const char *key, size_t key_len);
/* Returns the address of the value slot for key, inserting NULL first when absent. */
void **sl_map_slot(sl_map_t *m, const char *key, size_t key_len);
uint64_t sl_hash_bytes(const void *p, size_t n);

#endif
