/* A route's chain of modules: the HTTP policies of an HTTP route, the plugins of a stream route.
 * One implementation and one failure rule for both: the chain holds the modules the route's
 * configuration enables, in the registry's order (src/modules.c), each with the state its init
 * made, and it is built whole or not at all. A route without one of its modules (an access rule,
 * a rate limit) would admit whom the configuration refuses, so a module that does not
 * initialise leaves the chain empty, and the generation holding the route is not published. */
#ifndef SL_BASE_CHAIN_H
#define SL_BASE_CHAIN_H

#include <stddef.h>

/* What every module's ops table starts with (its first member, so a chain's entry converts back
 * to the module's own table). */
typedef struct sl_module {
    const char *name;
    /* Builds the module's per-generation state for route (the sl_route_rt_t or sl_stream_route_t
     * being built) into *data; 0, or -1 when it cannot (then nothing is left to destroy). Main
     * thread. NULL: no state. */
    int (*init)(const void *route, void **data);
    void (*destroy)(void *data);
} sl_module_t;

#define SL_CHAIN_MAX 12 /* modules one route can chain */

typedef struct sl_chain {
    const sl_module_t *mods[SL_CHAIN_MAX];
    void *data[SL_CHAIN_MAX]; /* each one's state, opaque but to it */
    size_t n;
} sl_chain_t;

/* Builds c for route from the n modules of mods for which on[i] is set, in that order. Returns
 * NULL, or the module that failed to initialise, with c left empty (the ones before it destroyed). */
const sl_module_t *sl_chain_build(sl_chain_t *c, const sl_module_t *const *mods, const unsigned char *on, size_t n,
                                  const void *route);
/* Destroys every module's state, last first, and empties c. */
void sl_chain_destroy(sl_chain_t *c);
/* The state of module m in c, or NULL when c does not hold m. */
void *sl_chain_data(const sl_chain_t *c, const sl_module_t *m);

#endif
