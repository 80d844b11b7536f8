/* Metrics registry: Prometheus counters, gauges and histograms with labels.
 *
 * Series are created once (under a mutex) and then updated lock-free from any worker thread:
 * every series keeps one shard per worker, in memory only that worker writes (each worker's
 * shards are packed into its own cache-line-aligned region), and the scrape sums the shards,
 * so workers never contend on a counter or share a cache line. Callers cache the sl_series_t
 * pointers they get (per route, per node) instead of looking them up per request. */
#ifndef SL_OBSERVE_METRICS_H
#define SL_OBSERVE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* Most worker threads a series keeps shards for; index SL_METRICS_MAX_WORKERS - 1 is used by
 * the main thread (reloads, health checks). Worker indexes past the limit share the last shard
 * through atomics, so they are still counted exactly. */
#define SL_METRICS_MAX_WORKERS 64
#define SL_METRICS_MAIN_THREAD (SL_METRICS_MAX_WORKERS - 1)

typedef enum { SL_METRIC_COUNTER, SL_METRIC_GAUGE, SL_METRIC_HISTOGRAM } sl_metric_type_t;

typedef struct sl_metrics sl_metrics_t;
typedef struct sl_metric_family sl_metric_family_t;
typedef struct sl_series sl_series_t;

/* The process-wide registry; families and series live until sl_metrics_destroy(). */
sl_metrics_t *sl_metrics_create(void);
void sl_metrics_destroy(sl_metrics_t *m);

/* Registers (or returns the already registered) family. label_names has n_labels entries and
 * is copied. buckets (histograms only) are upper bounds in ascending order, copied; NULL picks
 * the default latency buckets 0.005 .. 10 seconds. +Inf is always the last bucket; an explicit
 * trailing +Inf is accepted and ignored. Thread-safe. Returns NULL (and logs why) for an invalid metric or label name,
 * unordered buckets, or a name already registered with another type or other label names. */
sl_metric_family_t *sl_metrics_family(sl_metrics_t *m, const char *name, const char *help, sl_metric_type_t type,
                                      const char *const *label_names, size_t n_labels, const double *buckets,
                                      size_t n_buckets);

/* Returns the series for these label values (n_labels of them, copied), creating it on first
 * use; label_values may be NULL for a family without labels. Thread-safe; the pointer stays
 * valid for the registry's life. */
sl_series_t *sl_metrics_series(sl_metric_family_t *f, const char *const *label_values);

/* Counter/gauge updates from thread `worker` (0-based worker index, or SL_METRICS_MAIN_THREAD). */
void sl_series_add(sl_series_t *s, unsigned worker, int64_t delta);
/* Histogram observation, in the family's unit (seconds for latencies). A value equal to a
 * bucket's bound counts in that bucket (Prometheus `le`). No-op on a counter or gauge. */
void sl_series_observe(sl_series_t *s, unsigned worker, double value);
/* Sum over shards (for tests and status pages). For a histogram: the observation count. */
int64_t sl_series_value(const sl_series_t *s);

/* Appends the Prometheus text exposition format (version 0.0.4) of every family to out. */
void sl_metrics_render(sl_metrics_t *m, sl_buf_t *out);

#endif
