#include "base/keeper.h"
#include "base/common.h"
#include "base/list.h"
#include "base/map.h"

#include <pthread.h>
#include <string.h>

/* One kept state. States of one (type, key) with settings that did not agree form a chain,
 * newest first. */
typedef struct kept {
    const sl_keep_type_t *type;
    void *state;
    size_t refs;       /* under lock */
    struct kept *next; /* same type and key */
    sl_list_t link;    /* all */
    size_t key_len;
    char key[]; /* the type's address, then the key */
} kept_t;

/* Recursive: a type's create or destroy may get or release a state of another type. Entries
 * are allocated apart from the maps, so a nested call moving map slots leaves them be. */
static pthread_mutex_t lock;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static sl_map_t by_key;   /* type + key -> newest kept_t of the chain */
static sl_map_t by_state; /* the state's address -> kept_t */
static sl_list_t all = {&all, &all};

static void init_once(void)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&lock, &a);
    pthread_mutexattr_destroy(&a);
    sl_map_init_with(&by_key, SL_MAP_OWNED, 0);
    sl_map_init_with(&by_state, SL_MAP_OWNED, 0);
}

static void lock_keeper(void)
{
    pthread_once(&once, init_once);
    pthread_mutex_lock(&lock);
}

/* The map key of (type, key): the type's address makes equal keys of two types differ. */
static char *full_key(const sl_keep_type_t *type, const char *key, size_t key_len, char *buf, size_t size, size_t *len)
{
    *len = sizeof(type) + key_len;
    char *k = *len <= size ? buf : sl_xmalloc(*len);
    memcpy(k, &type, sizeof(type));
    if (key_len) memcpy(k + sizeof(type), key, key_len);
    return k;
}

static void *lookup(const sl_keep_type_t *type, const char *key, size_t key_len, const void *settings, int make)
{
    char buf[256];
    size_t len;
    char *k = full_key(type, key, key_len, buf, sizeof(buf), &len);
    lock_keeper();
    kept_t *e = sl_map_get(&by_key, k, len);
    while (e && type->compatible && !type->compatible(e->state, settings))
        e = e->next;
    void *state = NULL;
    if (e) {
        e->refs++;
        state = e->state;
    } else if (make && (state = type->create(settings))) {
        e = sl_xmalloc(sizeof(*e) + len);
        e->type = type;
        e->state = state;
        e->refs = 1;
        e->key_len = len;
        memcpy(e->key, k, len);
        /* Looked up again: create may have used the keeper and moved the slots. */
        void **head = sl_map_slot(&by_key, k, len);
        e->next = *head;
        *head = e;
        *sl_map_slot(&by_state, (const char *)&state, sizeof(state)) = e;
        sl_list_push(&all, &e->link);
    }
    pthread_mutex_unlock(&lock);
    if (k != buf) free(k);
    return state;
}

void *sl_keep_get(const sl_keep_type_t *type, const char *key, size_t key_len, const void *settings)
{
    return lookup(type, key, key_len, settings, 1);
}

void *sl_keep_get_names(const sl_keep_type_t *type, const char *a, const char *b, const void *settings)
{
    size_t al = strlen(a) + (b != NULL), bl = b ? strlen(b) : 0;
    char buf[256], *key = al + bl <= sizeof(buf) ? buf : sl_xmalloc(al + bl);
    memcpy(key, a, al);
    if (bl) memcpy(key + al, b, bl);
    void *state = lookup(type, key, al + bl, settings, 1);
    if (key != buf) free(key);
    return state;
}

void *sl_keep_find(const sl_keep_type_t *type, const char *key, size_t key_len, const void *settings)
{
    return lookup(type, key, key_len, settings, 0);
}

void sl_keep_release(void *state)
{
    if (!state) return;
    lock_keeper();
    kept_t *e = sl_map_get(&by_state, (const char *)&state, sizeof(state));
    if (!e || --e->refs > 0) {
        pthread_mutex_unlock(&lock);
        return;
    }
    sl_map_del(&by_state, (const char *)&state, sizeof(state), NULL);
    void **head = sl_map_find(&by_key, e->key, e->key_len);
    kept_t **pp = (kept_t **)head;
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    if (!*head) sl_map_del(&by_key, e->key, e->key_len, NULL);
    sl_list_remove(&e->link);
    const sl_keep_type_t *type = e->type;
    free(e);
    /* Under the lock, so that a new state of the same key is never made while this one is
     * still being taken apart (a node's health series, say, is shared by both). */
    type->destroy(state);
    pthread_mutex_unlock(&lock);
}

void sl_keep_each(const sl_keep_type_t *type, void (*fn)(void *state, void *ctx), void *ctx)
{
    lock_keeper();
    for (sl_list_t *n = all.next; n != &all; n = n->next) {
        kept_t *e = sl_container_of(n, kept_t, link);
        if (e->type == type) fn(e->state, ctx);
    }
    pthread_mutex_unlock(&lock);
}

size_t sl_keep_refs(const void *state)
{
    lock_keeper();
    kept_t *e = sl_map_get(&by_state, (const char *)&state, sizeof(state));
    size_t n = e ? e->refs : 0;
    pthread_mutex_unlock(&lock);
    return n;
}

size_t sl_keep_count(const sl_keep_type_t *type)
{
    lock_keeper();
    size_t n = 0;
    for (sl_list_t *p = all.next; p != &all; p = p->next)
        n += sl_container_of(p, kept_t, link)->type == type;
    pthread_mutex_unlock(&lock);
    return n;
}
