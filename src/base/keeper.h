/* The keeper: state that outlives a configuration generation, such as a route's rate-limit
 * buckets, a node's health, a route's open connection counts, a service's UDP sessions, a
 * syslog destination's queue, an access log file.
 *
 * A state is found by (type, key). A generation being built asks for it with the settings it
 * has; when a live state of that type and key is compatible with those settings it gets that
 * one, with one more reference, so a reload that keeps the route keeps the buckets, the
 * health, the counts and the queue. Otherwise the type makes a new one (the old generation
 * keeps its own until it goes). The last release destroys a state.
 *
 * Threads. Generations are built on the main thread and released from any thread (a worker
 * dropping the last request of an old generation), so sl_keep_get and sl_keep_find are
 * meant for the main thread and sl_keep_release may be called from any; all three are safe
 * from any thread, under one process-wide lock. A type's create, compatible and destroy run
 * under that lock, one at a time, so they are serialised with each other for every type:
 * they must not block for long (resolve a name before sl_keep_get, as the syslog sink does
 * with sl_keep_find first) and may use the keeper for other types (a syslog destination
 * record holds a handle of a kept sink), never for their own. */
#ifndef SL_BASE_KEEPER_H
#define SL_BASE_KEEPER_H

#include <stddef.h>

typedef struct sl_keep_type {
    const char *name; /* for the process log and tests */
    /* A new state for settings, or NULL when it cannot be made (create logs why). */
    void *(*create)(const void *settings);
    /* Whether state can serve a generation with settings; NULL: any state of the key can. */
    int (*compatible)(const void *state, const void *settings);
    /* Frees state; called once, after its last release. */
    void (*destroy)(void *state);
} sl_keep_type_t;

/* Returns the state of type and key (any bytes) compatible with settings, with one more
 * reference, making one with type->create when none is; NULL when create fails. settings is
 * only read during the call. */
void *sl_keep_get(const sl_keep_type_t *type, const char *key, size_t key_len, const void *settings);

/* sl_keep_get with a key of two names (service and route, service and node address): a, its
 * NUL, then b, so that no two pairs make the same key. b may be NULL (a alone). */
void *sl_keep_get_names(const sl_keep_type_t *type, const char *a, const char *b, const void *settings);

/* As sl_keep_get, but returns NULL instead of making a state. */
void *sl_keep_find(const sl_keep_type_t *type, const char *key, size_t key_len, const void *settings);

/* Drops a reference taken by sl_keep_get or sl_keep_find; the last one destroys the state.
 * NULL is a no-op. Any thread. */
void sl_keep_release(void *state);

/* Calls fn for every live state of type, under the keeper's lock (fn must not get or release
 * states of type). */
void sl_keep_each(const sl_keep_type_t *type, void (*fn)(void *state, void *ctx), void *ctx);

/* References held on state (0 when it is not kept); live states of type. For tests and
 * assertions. */
size_t sl_keep_refs(const void *state);
size_t sl_keep_count(const sl_keep_type_t *type);

#endif
