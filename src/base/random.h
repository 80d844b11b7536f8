/* Random bytes from the kernel (getrandom), drawn a page at a time into a per-thread pool, so a
 * caller on a hot path (a request id per request) does not make a system call each time. */
#ifndef SL_BASE_RANDOM_H
#define SL_BASE_RANDOM_H

#include <stddef.h>

/* Fills out with n (at most 256) unpredictable bytes. Aborts if the kernel has none to give. */
void sl_random_bytes(void *out, size_t n);

#endif
