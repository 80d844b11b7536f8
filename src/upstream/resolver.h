/* Hostname resolution for upstream nodes, off the workers' hot path.
 *
 * Each distinct hostname gets one process-wide entry. The first lookup resolves it on the
 * calling (main) thread; afterwards the main loop refreshes every entry in the background with
 * uv_getaddrinfo, and workers copy the current address under a short lock when they connect.
 * Entries live until sl_resolver_shutdown(). */
#ifndef SL_UPSTREAM_RESOLVER_H
#define SL_UPSTREAM_RESOLVER_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

typedef struct sl_resolved sl_resolved_t;

/* Main thread only. Returns the entry for host, creating and resolving it when new. */
sl_resolved_t *sl_resolver_get(const char *host);

/* Any thread. Copies the current address with port into out; returns 0, or -1 while the name
 * does not resolve. */
int sl_resolved_addr(sl_resolved_t *r, uint16_t port, struct sockaddr_storage *out);

/* Starts (or re-times) background refresh on the main loop every interval_ms. */
void sl_resolver_start(uv_loop_t *loop, uint64_t interval_ms);

/* Stops refreshing and frees every entry (after the workers are gone). */
void sl_resolver_shutdown(void);

#endif
