#include "base/random.h"

#include "base/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define POOL 4096

static _Thread_local unsigned char pool[POOL];
static _Thread_local size_t left; /* unused bytes at the end of pool */

static void refill(void)
{
    size_t got = 0;
    while (got < POOL) {
        ssize_t r = getrandom(pool + got, POOL - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            sl_log_error("getrandom: %s", strerror(errno));
            abort();
        }
        got += (size_t)r;
    }
    left = POOL;
}

void sl_random_bytes(void *out, size_t n)
{
    if (n > 256) abort();
    if (left < n) refill();
    unsigned char *src = pool + POOL - left;
    memcpy(out, src, n);
    memset(src, 0, n); /* a byte handed out is not handed out again, nor left lying around */
    left -= n;
}
