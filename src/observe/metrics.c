#include "observe/metrics.h"

#include "base/common.h"
#include "base/log.h"
#include "base/map.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Storage layout.
 *
 * Values live in slabs. A slab holds SL_METRICS_MAX_WORKERS regions, one per worker, each
 * `stride` 64-bit slots long and starting on its own cache line (the stride is a multiple of
 * eight slots), so two workers never write the same cache line. A series owns the same
 * `n_slots` consecutive slots in every region: worker w updates base + w * stride. Packing
 * many series into one region costs nothing, because only its owning worker writes it, and
 * it keeps a counter at 8 bytes per worker instead of a whole cache line per worker.
 *
 * Slots are `_Atomic uint64_t` updated with relaxed operations: the owning worker is the only
 * writer of its region except for the shared last shard, and the scrape thread reads while
 * workers write. Counters and gauges use one slot holding a two's complement int64. A
 * histogram uses n_buckets + 1 slots of per-bucket (not cumulative) counts, the last one for
 * +Inf, then one slot holding the bit pattern of the double sum of observations. */

#define SLAB_MIN_SLOTS 512 /* per worker: 4 KiB */
#define CACHE_LINE 64
#define SLOTS_PER_LINE (CACHE_LINE / sizeof(uint64_t))

typedef _Atomic uint64_t slot_t;

typedef struct slab {
    struct slab *next;
    slot_t *slots; /* SL_METRICS_MAX_WORKERS * stride slots, cache-line aligned */
    size_t stride; /* slots per worker region */
    size_t used;   /* slots handed out in each region */
} slab_t;

struct sl_series {
    sl_metric_family_t *family;
    char **label_values;
    sl_series_t *order_next; /* creation order, for rendering */
    slot_t *base;            /* worker 0's first slot */
    size_t stride;
};

struct sl_metric_family {
    sl_metrics_t *registry;
    sl_metric_family_t *next; /* registration order */
    char *name;
    char *help;
    sl_metric_type_t type;
    char **label_names;
    size_t n_labels;
    double *buckets; /* histograms: finite upper bounds, ascending */
    size_t n_buckets;
    size_t n_slots; /* slots per worker for one series */
    sl_series_t *first, *last;
    sl_map_t series; /* label values, each with its NUL -> series */
};

struct sl_metrics {
    pthread_mutex_t mu;
    sl_metric_family_t *first, *last;
    slab_t *slabs; /* newest first; new series take slots from the head */
};

static const double default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

sl_metrics_t *sl_metrics_create(void)
{
    sl_metrics_t *m = sl_xcalloc(1, sizeof(*m));
    int rc = pthread_mutex_init(&m->mu, NULL);
    if (rc != 0) {
        sl_log_error("metrics: pthread_mutex_init: %s", strerror(rc));
        free(m);
        return NULL;
    }
    return m;
}

static void free_strv(char **v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static char **dup_strv(const char *const *v, size_t n)
{
    if (n == 0) return NULL;
    char **out = sl_xcalloc(n, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = sl_xstrdup(v[i] ? v[i] : "");
    return out;
}

static void family_free(sl_metric_family_t *f)
{
    sl_series_t *s = f->first;
    while (s) {
        sl_series_t *next = s->order_next;
        free_strv(s->label_values, f->n_labels);
        free(s);
        s = next;
    }
    sl_map_free(&f->series);
    free(f->name);
    free(f->help);
    free_strv(f->label_names, f->n_labels);
    free(f->buckets);
    free(f);
}

void sl_metrics_destroy(sl_metrics_t *m)
{
    if (!m) return;
    sl_metric_family_t *f = m->first;
    while (f) {
        sl_metric_family_t *next = f->next;
        family_free(f);
        f = next;
    }
    slab_t *sl = m->slabs;
    while (sl) {
        slab_t *next = sl->next;
        free(sl->slots);
        free(sl);
        sl = next;
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names the same without ':'. */
static int valid_name(const char *s, int allow_colon)
{
    if (!s || !*s) return 0;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':') ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok) return 0;
    }
    return 1;
}

static int same_shape(const sl_metric_family_t *f, sl_metric_type_t type, const char *const *label_names,
                      size_t n_labels)
{
    if (f->type != type || f->n_labels != n_labels) return 0;
    for (size_t i = 0; i < n_labels; i++)
        if (strcmp(f->label_names[i], label_names[i]) != 0) return 0;
    return 1;
}

static int check_family_args(const char *name, sl_metric_type_t type, const char *const *label_names, size_t n_labels,
                             const double *buckets, size_t n_buckets)
{
    if (!valid_name(name, 1)) {
        sl_log_error("metrics: invalid metric name \"%s\"", name ? name : "(null)");
        return -1;
    }
    if (type != SL_METRIC_COUNTER && type != SL_METRIC_GAUGE && type != SL_METRIC_HISTOGRAM) {
        sl_log_error("metrics: %s: unknown metric type %d", name, (int)type);
        return -1;
    }
    for (size_t i = 0; i < n_labels; i++) {
        if (!valid_name(label_names[i], 0) || strncmp(label_names[i], "__", 2) == 0 ||
            (type == SL_METRIC_HISTOGRAM && strcmp(label_names[i], "le") == 0)) {
            sl_log_error("metrics: %s: invalid label name \"%s\"", name, label_names[i] ? label_names[i] : "(null)");
            return -1;
        }
    }
    if (type == SL_METRIC_HISTOGRAM && buckets) {
        for (size_t i = 0; i < n_buckets; i++) {
            if (isnan(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1]))) {
                sl_log_error("metrics: %s: bucket bounds must be strictly ascending", name);
                return -1;
            }
        }
    }
    return 0;
}

sl_metric_family_t *sl_metrics_family(sl_metrics_t *m, const char *name, const char *help, sl_metric_type_t type,
                                      const char *const *label_names, size_t n_labels, const double *buckets,
                                      size_t n_buckets)
{
    if (check_family_args(name, type, label_names, n_labels, buckets, n_buckets) != 0) return NULL;

    pthread_mutex_lock(&m->mu);
    for (sl_metric_family_t *f = m->first; f; f = f->next) {
        if (strcmp(f->name, name) != 0) continue;
        if (!same_shape(f, type, label_names, n_labels)) {
            sl_log_error("metrics: %s registered again with another type or other labels", name);
            f = NULL;
        }
        pthread_mutex_unlock(&m->mu);
        return f;
    }

    sl_metric_family_t *f = sl_xcalloc(1, sizeof(*f));
    f->registry = m;
    sl_map_init_with(&f->series, SL_MAP_OWNED, 0);
    f->name = sl_xstrdup(name);
    f->help = sl_xstrdup(help ? help : "");
    f->type = type;
    f->label_names = dup_strv(label_names, n_labels);
    f->n_labels = n_labels;
    if (type == SL_METRIC_HISTOGRAM) {
        if (!buckets) {
            buckets = default_buckets;
            n_buckets = SL_ARRAY_LEN(default_buckets);
        }
        /* +Inf is always the implied last bucket, so a caller's explicit one is dropped. */
        if (n_buckets && isinf(buckets[n_buckets - 1]) && buckets[n_buckets - 1] > 0) n_buckets--;
        f->n_buckets = n_buckets;
        f->buckets = sl_xmalloc((n_buckets ? n_buckets : 1) * sizeof(double));
        if (n_buckets) memcpy(f->buckets, buckets, n_buckets * sizeof(double));
        f->n_slots = n_buckets + 2;
    } else {
        f->n_slots = 1;
    }
    if (m->last)
        m->last->next = f;
    else
        m->first = f;
    m->last = f;
    pthread_mutex_unlock(&m->mu);
    return f;
}

/* The series key: the label values one after the other, each ended by its NUL, so that
 * ("ab","c") and ("a","bc") differ. Returns its length; *key is buf or, when too small, a
 * fresh allocation the caller frees. */
static size_t series_key(const char *const *values, size_t n, char *buf, size_t size, char **key)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += strlen(values[i] ? values[i] : "") + 1;
    *key = len <= size ? buf : sl_xmalloc(len);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *v = values[i] ? values[i] : "";
        size_t vl = strlen(v) + 1;
        memcpy(*key + at, v, vl);
        at += vl;
    }
    return len;
}

/* Hands out n consecutive slots in every worker region; called with the registry lock held. */
static slot_t *slots_alloc(sl_metrics_t *m, size_t n, size_t *stride)
{
    slab_t *sl = m->slabs;
    if (!sl || sl->stride - sl->used < n) {
        size_t want = SL_MAX(n, (size_t)SLAB_MIN_SLOTS);
        want = (want + SLOTS_PER_LINE - 1) / SLOTS_PER_LINE * SLOTS_PER_LINE;
        size_t bytes = want * sizeof(slot_t) * SL_METRICS_MAX_WORKERS;
        slot_t *slots = aligned_alloc(CACHE_LINE, bytes);
        if (!slots) {
            fprintf(stderr, "sluice: out of memory allocating %zu bytes\n", bytes);
            abort();
        }
        for (size_t i = 0; i < want * SL_METRICS_MAX_WORKERS; i++)
            atomic_init(&slots[i], 0);
        sl = sl_xcalloc(1, sizeof(*sl));
        sl->slots = slots;
        sl->stride = want;
        sl->next = m->slabs;
        m->slabs = sl;
    }
    slot_t *base = sl->slots + sl->used;
    sl->used += n;
    *stride = sl->stride;
    return base;
}

sl_series_t *sl_metrics_series(sl_metric_family_t *f, const char *const *label_values)
{
    static const char *const no_labels[1] = {""};
    if (f->n_labels == 0)
        label_values = no_labels;
    else if (!label_values)
        return NULL;

    char buf[256], *key;
    size_t key_len = series_key(label_values, f->n_labels, buf, sizeof(buf), &key);
    sl_metrics_t *m = f->registry;
    pthread_mutex_lock(&m->mu);
    void **slot = sl_map_slot(&f->series, key, key_len);
    if (key != buf) free(key);
    sl_series_t *s = *slot;
    if (s) {
        pthread_mutex_unlock(&m->mu);
        return s;
    }

    s = sl_xcalloc(1, sizeof(*s));
    s->family = f;
    s->label_values = dup_strv(label_values, f->n_labels);
    s->base = slots_alloc(m, f->n_slots, &s->stride);
    if (f->last)
        f->last->order_next = s;
    else
        f->first = s;
    f->last = s;
    *slot = s;
    pthread_mutex_unlock(&m->mu);
    return s;
}

static inline slot_t *shard(const sl_series_t *s, unsigned worker)
{
    if (worker >= SL_METRICS_MAX_WORKERS) worker = SL_METRICS_MAX_WORKERS - 1;
    return s->base + (size_t)worker * s->stride;
}

void sl_series_add(sl_series_t *s, unsigned worker, int64_t delta)
{
    /* Unsigned wrap-around is the two's complement sum, so negative deltas just work. */
    atomic_fetch_add_explicit(shard(s, worker), (uint64_t)delta, memory_order_relaxed);
}

static double bits_to_double(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    return bits;
}

void sl_series_observe(sl_series_t *s, unsigned worker, double value)
{
    const sl_metric_family_t *f = s->family;
    if (f->type != SL_METRIC_HISTOGRAM) return;
    /* First bucket whose upper bound is >= value; index n_buckets is +Inf, where NaN lands too. */
    size_t lo = 0, hi = f->n_buckets;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (value <= f->buckets[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    slot_t *slots = shard(s, worker);
    atomic_fetch_add_explicit(&slots[lo], 1, memory_order_relaxed);

    /* No atomic floating add in C11: a CAS loop, uncontended except on the shared last shard. */
    slot_t *sum = &slots[f->n_buckets + 1];
    uint64_t old = atomic_load_explicit(sum, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(sum, &old, double_to_bits(bits_to_double(old) + value),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

static uint64_t sum_slot(const sl_series_t *s, size_t i)
{
    uint64_t total = 0;
    for (unsigned w = 0; w < SL_METRICS_MAX_WORKERS; w++)
        total += atomic_load_explicit(shard(s, w) + i, memory_order_relaxed);
    return total;
}

static double sum_double_slot(const sl_series_t *s, size_t i)
{
    double total = 0;
    for (unsigned w = 0; w < SL_METRICS_MAX_WORKERS; w++)
        total += bits_to_double(atomic_load_explicit(shard(s, w) + i, memory_order_relaxed));
    return total;
}

int64_t sl_series_value(const sl_series_t *s)
{
    const sl_metric_family_t *f = s->family;
    if (f->type != SL_METRIC_HISTOGRAM) return (int64_t)sum_slot(s, 0);
    uint64_t count = 0;
    for (size_t b = 0; b <= f->n_buckets; b++)
        count += sum_slot(s, b);
    return (int64_t)count;
}

/* Shortest of %.15g / %.17g that reads back as the same double; Prometheus spellings for
 * the non-finite values. */
static void put_double(sl_buf_t *out, double d)
{
    if (isnan(d)) {
        sl_buf_puts(out, "NaN");
        return;
    }
    if (isinf(d)) {
        sl_buf_puts(out, d > 0 ? "+Inf" : "-Inf");
        return;
    }
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "%.15g", d);
    if (strtod(tmp, NULL) != d) snprintf(tmp, sizeof(tmp), "%.17g", d);
    sl_buf_puts(out, tmp);
}

/* Label values escape backslash, double quote and newline; HELP text only the first and last. */
static void put_escaped(sl_buf_t *out, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            sl_buf_append(out, "\\\\", 2);
        else if (*s == '\n')
            sl_buf_append(out, "\\n", 2);
        else if (quote && *s == '"')
            sl_buf_append(out, "\\\"", 2);
        else
            sl_buf_putc(out, *s);
    }
}

/* Writes `{a="x",b="y"` plus an optional le label, then `}`; nothing when there are no labels. */
static void put_labels(sl_buf_t *out, const sl_metric_family_t *f, const sl_series_t *s, const double *le)
{
    if (f->n_labels == 0 && !le) return;
    sl_buf_putc(out, '{');
    for (size_t i = 0; i < f->n_labels; i++) {
        if (i) sl_buf_putc(out, ',');
        sl_buf_puts(out, f->label_names[i]);
        sl_buf_append(out, "=\"", 2);
        put_escaped(out, s->label_values[i], 1);
        sl_buf_putc(out, '"');
    }
    if (le) {
        if (f->n_labels) sl_buf_putc(out, ',');
        sl_buf_append(out, "le=\"", 4);
        put_double(out, *le);
        sl_buf_putc(out, '"');
    }
    sl_buf_putc(out, '}');
}

static void render_histogram(sl_buf_t *out, const sl_metric_family_t *f, const sl_series_t *s)
{
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= f->n_buckets; b++) {
        double le = b < f->n_buckets ? f->buckets[b] : INFINITY;
        cumulative += sum_slot(s, b);
        sl_buf_puts(out, f->name);
        sl_buf_puts(out, "_bucket");
        put_labels(out, f, s, &le);
        sl_buf_printf(out, " %" PRIu64 "\n", cumulative);
    }
    sl_buf_puts(out, f->name);
    sl_buf_puts(out, "_sum");
    put_labels(out, f, s, NULL);
    sl_buf_putc(out, ' ');
    put_double(out, sum_double_slot(s, f->n_buckets + 1));
    sl_buf_putc(out, '\n');
    /* _count is the +Inf bucket, so the two always agree within one scrape. */
    sl_buf_puts(out, f->name);
    sl_buf_puts(out, "_count");
    put_labels(out, f, s, NULL);
    sl_buf_printf(out, " %" PRIu64 "\n", cumulative);
}

void sl_metrics_render(sl_metrics_t *m, sl_buf_t *out)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&m->mu);
    for (const sl_metric_family_t *f = m->first; f; f = f->next) {
        sl_buf_printf(out, "# HELP %s ", f->name);
        put_escaped(out, f->help, 0);
        sl_buf_printf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
        for (const sl_series_t *s = f->first; s; s = s->order_next) {
            if (f->type == SL_METRIC_HISTOGRAM) {
                render_histogram(out, f, s);
                continue;
            }
            sl_buf_puts(out, f->name);
            put_labels(out, f, s, NULL);
            sl_buf_printf(out, " %" PRId64 "\n", (int64_t)sum_slot(s, 0));
        }
    }
    pthread_mutex_unlock(&m->mu);
}
