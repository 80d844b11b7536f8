#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "observe/metrics.h"

#define THREADS 8
#define ADDS 100000

typedef struct {
    sl_series_t *counter;
    sl_series_t *hist;
    unsigned worker;
} worker_arg_t;

static void *add_worker(void *p)
{
    worker_arg_t *a = p;
    for (int i = 0; i < ADDS; i++) {
        sl_series_add(a->counter, a->worker, 1);
        if (i % 100 == 0) sl_series_observe(a->hist, a->worker, 0.5);
    }
    return NULL;
}

static void test_counter_threads_sum_exactly(void **state)
{
    (void)state;
    sl_metrics_t *m = sl_metrics_create();
    sl_metric_family_t *c = sl_metrics_family(m, "reqs_total", "Requests.", SL_METRIC_COUNTER, NULL, 0, NULL, 0);
    sl_metric_family_t *h = sl_metrics_family(m, "lat_seconds", "Latency.", SL_METRIC_HISTOGRAM, NULL, 0, NULL, 0);
    sl_series_t *cs = sl_metrics_series(c, NULL);
    sl_series_t *hs = sl_metrics_series(h, NULL);
    pthread_t t[THREADS];
    worker_arg_t args[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        /* Two threads past the shard limit share the last shard with the main thread. */
        args[i] = (worker_arg_t){cs, hs, i < THREADS - 2 ? i : SL_METRICS_MAX_WORKERS + i};
        assert_int_equal(pthread_create(&t[i], NULL, add_worker, &args[i]), 0);
    }
    /* Scrape while the workers run: must not crash or race. */
    for (int i = 0; i < 20; i++) {
        sl_buf_t out = SL_BUF_INIT;
        sl_metrics_render(m, &out);
        sl_buf_free(&out);
    }
    sl_series_add(cs, SL_METRICS_MAIN_THREAD, 5);
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(sl_series_value(cs), (int64_t)THREADS * ADDS + 5);
    assert_int_equal(sl_series_value(hs), THREADS * (ADDS / 100));
    sl_metrics_destroy(m);
}

static void test_gauge_negative(void **state)
{
    (void)state;
    sl_metrics_t *m = sl_metrics_create();
    sl_metric_family_t *g = sl_metrics_family(m, "conns", "Open connections.", SL_METRIC_GAUGE, NULL, 0, NULL, 0);
    sl_series_t *s = sl_metrics_series(g, NULL);
    sl_series_add(s, 0, 3);
    sl_series_add(s, 1, -10);
    sl_series_add(s, 2, 2);
    assert_int_equal(sl_series_value(s), -5);
    sl_buf_t out = SL_BUF_INIT;
    sl_metrics_render(m, &out);
    assert_string_equal(sl_buf_cstr(&out), "# HELP conns Open connections.\n# TYPE conns gauge\nconns -5\n");
    sl_buf_free(&out);
    sl_metrics_destroy(m);
}

static void test_histogram_buckets(void **state)
{
    (void)state;
    sl_metrics_t *m = sl_metrics_create();
    static const char *const names[] = {"route"};
    static const double bounds[] = {0.125, 1, 2.5};
    sl_metric_family_t *h = sl_metrics_family(m, "dur_seconds", "Duration.", SL_METRIC_HISTOGRAM, names, 1, bounds, 3);
    const char *v[] = {"a"};
    sl_series_t *s = sl_metrics_series(h, v);
    sl_series_observe(s, 0, 0.0625); /* le 0.125 */
    sl_series_observe(s, 1, 0.125);  /* le 0.125: bounds are inclusive */
    sl_series_observe(s, 2, 0.5);    /* le 1 */
    sl_series_observe(s, 3, 3);      /* +Inf */
    sl_series_observe(s, 3, 2.5);    /* le 2.5 */
    assert_int_equal(sl_series_value(s), 5);
    sl_buf_t out = SL_BUF_INIT;
    sl_metrics_render(m, &out);
    assert_string_equal(sl_buf_cstr(&out), "# HELP dur_seconds Duration.\n"
                                           "# TYPE dur_seconds histogram\n"
                                           "dur_seconds_bucket{route=\"a\",le=\"0.125\"} 2\n"
                                           "dur_seconds_bucket{route=\"a\",le=\"1\"} 3\n"
                                           "dur_seconds_bucket{route=\"a\",le=\"2.5\"} 4\n"
                                           "dur_seconds_bucket{route=\"a\",le=\"+Inf\"} 5\n"
                                           "dur_seconds_sum{route=\"a\"} 6.1875\n"
                                           "dur_seconds_count{route=\"a\"} 5\n");
    sl_buf_free(&out);
    sl_metrics_destroy(m);
}

static void test_default_buckets(void **state)
{
    (void)state;
    sl_metrics_t *m = sl_metrics_create();
    sl_metric_family_t *h = sl_metrics_family(m, "x_seconds", "X.", SL_METRIC_HISTOGRAM, NULL, 0, NULL, 0);
    sl_series_observe(sl_metrics_series(h, NULL), 0, 0.003);
    sl_buf_t out = SL_BUF_INIT;
    sl_metrics_render(m, &out);
    const char *text = sl_buf_cstr(&out);
    assert_non_null(strstr(text, "x_seconds_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(text, "x_seconds_bucket{le=\"10\"} 1\n"));
    assert_non_null(strstr(text, "x_seconds_bucket{le=\"+Inf\"} 1\n"));
    assert_non_null(strstr(text, "x_seconds_sum 0.003\n"));
    assert_non_null(strstr(text, "x_seconds_count 1\n"));
    sl_buf_free(&out);
    sl_metrics_destroy(m);
}

static void test_label_escaping(void **state)
{
    (void)state;
    sl_metrics_t *m = sl_metrics_create();
    static const char *const names[] = {"path", "host"};
    sl_metric_family_t *c = sl_metrics_family(m, "hits_total", "Hits with \\ and\nnewline \"quoted\".",
                                              SL_METRIC_COUNTER, names, 2, NULL, 0);
    const char *v[] = {"a\\b\"c\nd", ""};
    sl_series_add(sl_metrics_series(c, v), 0, 1);
    sl_buf_t out = SL_BUF_INIT;
    sl_metrics_render(m, &out);
    assert_string_equal(sl_buf_cstr(&out), "# HELP hits_total Hits with \\\\ and\\nnewline \"quoted\".\n"
                                           "# TYPE hits_total counter\n"
                                           "hits_total{path=\"a\\\\b\\\"c\\nd\",host=\"\"} 1\n");
    sl_buf_free(&out);
    sl_metrics_destroy(m);
}

static void test_same_labels_same_series(void **state)
{
    (void)state;
    sl_metrics_t *m = sl_metrics_create();
    static const char *const names[] = {"a", "b"};
    sl_metric_family_t *c = sl_metrics_family(m, "t_total", "T.", SL_METRIC_COUNTER, names, 2, NULL, 0);
    assert_ptr_equal(sl_metrics_family(m, "t_total", "T.", SL_METRIC_COUNTER, names, 2, NULL, 0), c);
    /* Same name with another shape is a programming error. */
    assert_null(sl_metrics_family(m, "t_total", "T.", SL_METRIC_GAUGE, names, 2, NULL, 0));
    assert_null(sl_metrics_family(m, "t_total", "T.", SL_METRIC_COUNTER, names, 1, NULL, 0));
    assert_null(sl_metrics_family(m, "bad-name", "T.", SL_METRIC_COUNTER, NULL, 0, NULL, 0));

    char key[32];
    sl_series_t *first[300];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "v%d", i);
        const char *v[] = {key, "x"};
        first[i] = sl_metrics_series(c, v);
        sl_series_add(first[i], 0, i);
    }
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "v%d", i);
        const char *v[] = {key, "x"};
        assert_ptr_equal(sl_metrics_series(c, v), first[i]);
        assert_int_equal(sl_series_value(first[i]), i);
    }
    /* Label boundaries matter: ("ab", "c") and ("a", "bc") are different series. */
    const char *v1[] = {"ab", "c"}, *v2[] = {"a", "bc"};
    assert_ptr_not_equal(sl_metrics_series(c, v1), sl_metrics_series(c, v2));
    sl_metrics_destroy(m);
}

static void test_render_small_registry(void **state)
{
    (void)state;
    sl_metrics_t *m = sl_metrics_create();
    static const char *const svc[] = {"service", "code"};
    sl_metric_family_t *req =
        sl_metrics_family(m, "sluice_requests_total", "Requests handled.", SL_METRIC_COUNTER, svc, 2, NULL, 0);
    sl_metric_family_t *up = sl_metrics_family(m, "sluice_up", "Always 1.", SL_METRIC_GAUGE, NULL, 0, NULL, 0);
    static const double b[] = {0.25, 1};
    sl_metric_family_t *lat =
        sl_metrics_family(m, "sluice_latency_seconds", "Latency.", SL_METRIC_HISTOGRAM, svc, 1, b, 2);
    sl_metric_family_t *empty =
        sl_metrics_family(m, "sluice_empty_total", "No series.", SL_METRIC_COUNTER, NULL, 0, NULL, 0);
    assert_non_null(empty);

    const char *users200[] = {"users", "200"}, *orders500[] = {"orders", "500"}, *users[] = {"users"};
    /* Creation order, not name order, decides the series order. */
    sl_series_add(sl_metrics_series(req, users200), 0, 7);
    sl_series_add(sl_metrics_series(req, orders500), 3, 2);
    sl_series_add(sl_metrics_series(req, users200), 1, 1);
    sl_series_add(sl_metrics_series(up, NULL), SL_METRICS_MAIN_THREAD, 1);
    sl_series_observe(sl_metrics_series(lat, users), 0, 0.125);
    sl_series_observe(sl_metrics_series(lat, users), 1, 4);

    sl_buf_t out = SL_BUF_INIT;
    sl_metrics_render(m, &out);
    assert_string_equal(sl_buf_cstr(&out), "# HELP sluice_requests_total Requests handled.\n"
                                           "# TYPE sluice_requests_total counter\n"
                                           "sluice_requests_total{service=\"users\",code=\"200\"} 8\n"
                                           "sluice_requests_total{service=\"orders\",code=\"500\"} 2\n"
                                           "# HELP sluice_up Always 1.\n"
                                           "# TYPE sluice_up gauge\n"
                                           "sluice_up 1\n"
                                           "# HELP sluice_latency_seconds Latency.\n"
                                           "# TYPE sluice_latency_seconds histogram\n"
                                           "sluice_latency_seconds_bucket{service=\"users\",le=\"0.25\"} 1\n"
                                           "sluice_latency_seconds_bucket{service=\"users\",le=\"1\"} 1\n"
                                           "sluice_latency_seconds_bucket{service=\"users\",le=\"+Inf\"} 2\n"
                                           "sluice_latency_seconds_sum{service=\"users\"} 4.125\n"
                                           "sluice_latency_seconds_count{service=\"users\"} 2\n"
                                           "# HELP sluice_empty_total No series.\n"
                                           "# TYPE sluice_empty_total counter\n");
    sl_buf_free(&out);
    sl_metrics_destroy(m);
}

static void test_many_series_span_slabs(void **state)
{
    (void)state;
    sl_metrics_t *m = sl_metrics_create();
    static const char *const names[] = {"n"};
    static const double b[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    sl_metric_family_t *h = sl_metrics_family(m, "big_seconds", "Big.", SL_METRIC_HISTOGRAM, names, 1, b, 20);
    sl_metric_family_t *c = sl_metrics_family(m, "big_total", "Big.", SL_METRIC_COUNTER, names, 1, NULL, 0);
    sl_series_t *hs[100], *cs[100];
    char key[16];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "%d", i);
        const char *v[] = {key};
        hs[i] = sl_metrics_series(h, v);
        cs[i] = sl_metrics_series(c, v);
        for (unsigned w = 0; w < SL_METRICS_MAX_WORKERS; w++) {
            sl_series_observe(hs[i], w, i % 25);
            sl_series_add(cs[i], w, i);
        }
    }
    for (int i = 0; i < 100; i++) {
        assert_int_equal(sl_series_value(hs[i]), SL_METRICS_MAX_WORKERS);
        assert_int_equal(sl_series_value(cs[i]), (int64_t)i * SL_METRICS_MAX_WORKERS);
    }
    sl_metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_threads_sum_exactly),
        cmocka_unit_test(test_gauge_negative),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_default_buckets),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_same_labels_same_series),
        cmocka_unit_test(test_render_small_registry),
        cmocka_unit_test(test_many_series_span_slabs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
