/* The local_rate_limit policy's buckets. A limiter is a token bucket of capacity requests + burst,
 * refilled by `requests` tokens each `per`, kept as a GCRA "theoretical arrival time": the
 * moment the bucket would be full again. One limiter per route, with either one bucket (one
 * atomic word, updated by compare-and-swap: exact across worker threads without a lock) or one
 * bucket per client key (a hash map and an LRU list of at most max_keys keys, under a mutex).
 *
 * Limiters are kept by service and route (base/keeper.h), shared while the settings that
 * shape the bucket stay the same, reference counted: a reload that keeps them keeps the count. */
#ifndef SL_POLICY_LOCAL_RATE_LIMIT_H
#define SL_POLICY_LOCAL_RATE_LIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

typedef struct sl_rate_limiter sl_rate_limiter_t;

/* The outcome of one request. Durations are nanoseconds from the time of the request. */
typedef struct sl_rate_result {
    int allowed;
    uint64_t limit;     /* the capacity, requests + burst */
    uint64_t remaining; /* whole tokens left after this request */
    uint64_t reset_ns;  /* until the bucket is full again */
    uint64_t retry_ns;  /* refused: until a token is available; 0 when allowed */
} sl_rate_result_t;

/* Returns the limiter of service/route for these settings: the one earlier generations use when
 * requests, per, burst, key and max_keys are the same, with one more reference, else a new one
 * with a full bucket. Main thread. */
sl_rate_limiter_t *sl_rate_limiter_get(const char *service, const char *route, const sl_rate_limit_cfg_t *cfg);

/* Drops a reference; the last one frees the limiter and its buckets. Any thread. */
void sl_rate_limiter_release(sl_rate_limiter_t *l);

/* Counts one request against the bucket of key (key NULL or len 0: the route's own bucket, which
 * keyed limiters use for requests without a key) and fills *out. now returns the monotonic clock
 * in nanoseconds (sl_now_ns); it is read after the bucket is loaded, so that concurrent requests
 * see time move forward along the order in which they are counted. Any thread. */
void sl_rate_limiter_take(sl_rate_limiter_t *l, const char *key, size_t len, uint64_t (*now)(void),
                          sl_rate_result_t *out);

/* Keyed buckets currently kept. */
size_t sl_rate_limiter_keys(sl_rate_limiter_t *l);

#endif
