/* HTTP router: host (exact, "*.suffix", any), path (exact, "/prefix/" + "*"), method.
 *
 * Matching cost depends on the request (number of labels in the host, '/' in the path), not on
 * the number of routes: every level is a hash lookup. Precedence: exact host, then the longest
 * wildcard suffix, then routes without hosts; within a host, the exact path, then the longest
 * prefix; among routes with the same host and path, the first in configuration order whose
 * methods match. A level with no method match falls through to the next less specific one. */
#ifndef SL_HTTP_ROUTER_H
#define SL_HTTP_ROUTER_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl_router sl_router_t;

sl_router_t *sl_router_create(void);
void sl_router_destroy(sl_router_t *r);

/* Adds one (host, path) pair for route. host NULL = any host; host "*.x.y" = wildcard;
 * a path ending in slash-star is the prefix up to the slash, otherwise exact. methods = SL_METHOD_* bits, 0 = any.
 * Strings are copied. */
void sl_router_add(sl_router_t *r, const char *host, const char *path, uint32_t methods, void *route);

/* Returns the matching route or NULL. host must be lower-case without port (may be empty);
 * path is the request path without the query; method_bit is 0 for methods sl_method_bit
 * does not know (they match only routes without a method list). */
void *sl_router_match(const sl_router_t *r, const char *host, size_t host_len, const char *path, size_t path_len,
                      uint32_t method_bit);

#endif
