#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "observe/access_log.h"

typedef struct {
    char dir[64];
    char path[128];
} tmp_t;

static int setup(void **state)
{
    tmp_t *t = calloc(1, sizeof(*t));
    strcpy(t->dir, "/tmp/sl-access-log-XXXXXX");
    if (!mkdtemp(t->dir)) return -1;
    snprintf(t->path, sizeof(t->path), "%s/access.log", t->dir);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tmp_t *t = *state;
    char p[160];
    snprintf(p, sizeof(p), "%s.1", t->path);
    unlink(p);
    unlink(t->path);
    snprintf(p, sizeof(p), "%s/fifo", t->dir);
    unlink(p);
    rmdir(t->dir);
    free(t);
    return 0;
}

static char *read_all_fd(int fd, size_t *len)
{
    sl_buf_t b = SL_BUF_INIT;
    char chunk[65536];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        sl_buf_append(&b, chunk, (size_t)n);
    *len = b.len;
    sl_buf_cstr(&b);
    return b.data;
}

static char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    char *s = read_all_fd(fd, len);
    close(fd);
    return s;
}

/* Splits text into lines (in place); every line must end with '\n'. */
static size_t split_lines(char *text, size_t len, char **lines, size_t max)
{
    size_t n = 0;
    char *p = text, *end = text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl);
        *nl = '\0';
        if (n < max) lines[n] = p;
        n++;
        p = nl + 1;
    }
    return n;
}

static json_t *parse(const char *line)
{
    json_error_t err;
    json_t *j = json_loads(line, JSON_ALLOW_NUL, &err);
    if (!j) fail_msg("invalid JSON (%s): %s", err.text, line);
    return j;
}

static sl_access_entry_t sample(void)
{
    sl_access_entry_t e = {
        .time_unix_ms = 1795330800123ull, /* 2026-11-22T07:00:00.123Z */
        .client = "192.0.2.7",
        .client_port = 51234,
        .method = "GET",
        .host = "api.example.com",
        .path = "/users/1?x=y",
        .path_len = 12,
        .status = 200,
        .bytes_in = 87,
        .bytes_out = 1234,
        .route = "list-users",
        .service = "users",
        .upstream = "127.0.0.1:8081",
        .upstream_status = 200,
        .duration_ms = 12.3456,
        .upstream_ms = 10.5,
        .error = NULL,
    };
    return e;
}

static void test_fields_and_order(void **state)
{
    tmp_t *t = *state;
    sl_access_log_t *log = sl_access_log_open(t->path);
    assert_non_null(log);
    sl_access_entry_t e = sample();
    sl_access_log_write(log, &e);
    sl_access_log_close(log);

    size_t len;
    char *text = read_file(t->path, &len);
    assert_string_equal(text,
                        "{\"time\":\"2026-11-22T07:00:00.123Z\",\"client\":\"192.0.2.7\",\"client_port\":51234,"
                        "\"method\":\"GET\",\"host\":\"api.example.com\",\"path\":\"/users/1?x=y\",\"status\":200,"
                        "\"bytes_in\":87,\"bytes_out\":1234,\"route\":\"list-users\",\"service\":\"users\","
                        "\"upstream\":\"127.0.0.1:8081\",\"upstream_status\":200,\"duration_ms\":12.346,"
                        "\"upstream_ms\":10.500,\"error\":null}\n");
    free(text);
}

static void test_nulls(void **state)
{
    tmp_t *t = *state;
    sl_access_log_t *log = sl_access_log_open(t->path);
    assert_non_null(log);
    sl_access_entry_t e = {
        .time_unix_ms = 0,
        .client = "::1",
        .method = "POST",
        .path = "/",
        .path_len = 1,
        .status = 404,
        .upstream_ms = -1,
        .error = "no_route",
    };
    sl_access_log_write(log, &e);
    sl_access_log_close(log);

    size_t len;
    char *text = read_file(t->path, &len);
    json_t *j = parse(text);
    assert_string_equal(json_string_value(json_object_get(j, "time")), "1970-01-01T00:00:00.000Z");
    assert_true(json_is_null(json_object_get(j, "host")));
    assert_true(json_is_null(json_object_get(j, "route")));
    assert_true(json_is_null(json_object_get(j, "service")));
    assert_true(json_is_null(json_object_get(j, "upstream")));
    assert_true(json_is_null(json_object_get(j, "upstream_status")));
    assert_true(json_is_null(json_object_get(j, "upstream_ms")));
    assert_string_equal(json_string_value(json_object_get(j, "error")), "no_route");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 404);
    assert_int_equal(json_integer_value(json_object_get(j, "client_port")), 0);
    assert_int_equal(json_object_size(j), 16);
    json_decref(j);
    free(text);
}

static void test_escaping(void **state)
{
    tmp_t *t = *state;
    sl_access_log_t *log = sl_access_log_open(t->path);
    assert_non_null(log);
    /* Quotes, backslash, control bytes, a NUL, valid UTF-8 (é, 😀), then bytes that are not
     * UTF-8: a lone continuation byte, 0xff, a truncated sequence, an overlong '/', a surrogate. */
    static const char path[] =
        "/a\"b\\c\n\r\t\x01\x7f\0z/\xc3\xa9\xf0\x9f\x98\x80/\x80\xff\xe2\x82/\xc0\xaf\xed\xa0\x80";
    sl_access_entry_t e = sample();
    e.path = path;
    e.path_len = sizeof(path) - 1;
    e.host = "evil\"host\x1b";
    e.method = "G\xe9T";
    sl_access_log_write(log, &e);
    sl_access_log_close(log);

    size_t len;
    char *text = read_file(t->path, &len);
    char *lines[2];
    assert_int_equal(split_lines(text, len, lines, 2), 1);
    json_t *j = parse(lines[0]);
    json_t *p = json_object_get(j, "path");
    /* Invalid bytes read back as the Latin-1 code points of the same values. */
    static const char want[] = "/a\"b\\c\n\r\t\x01\x7f\0z/\xc3\xa9\xf0\x9f\x98\x80/\xc2\x80\xc3\xbf\xc3\xa2\xc2\x82/"
                               "\xc3\x80\xc2\xaf\xc3\xad\xc2\xa0\xc2\x80";
    assert_int_equal(json_string_length(p), sizeof(want) - 1);
    assert_memory_equal(json_string_value(p), want, sizeof(want) - 1);
    assert_string_equal(json_string_value(json_object_get(j, "host")), "evil\"host\x1b");
    assert_string_equal(json_string_value(json_object_get(j, "method")), "G\xc3\xa9T");
    json_decref(j);
    free(text);
}

#define THREADS 8
#define PER_THREAD 3000

typedef struct {
    sl_access_log_t *log;
    int id;
} writer_arg_t;

static void *writer(void *p)
{
    writer_arg_t *a = p;
    char path[64], route[32];
    for (int i = 0; i < PER_THREAD; i++) {
        int n = snprintf(path, sizeof(path), "/t/%d/%d?q=\"x\"", a->id, i);
        snprintf(route, sizeof(route), "r%d", a->id);
        sl_access_entry_t e = sample();
        e.path = path;
        e.path_len = (size_t)n;
        e.route = route;
        e.status = i;
        sl_access_log_write(a->log, &e);
    }
    return NULL;
}

static void test_concurrent_writers(void **state)
{
    tmp_t *t = *state;
    sl_access_log_t *log = sl_access_log_open(t->path);
    assert_non_null(log);
    pthread_t th[THREADS];
    writer_arg_t args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (writer_arg_t){log, i};
        assert_int_equal(pthread_create(&th[i], NULL, writer, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    uint64_t dropped = sl_access_log_dropped(log);
    sl_access_log_close(log);

    size_t len;
    char *text = read_file(t->path, &len);
    static char *lines[THREADS * PER_THREAD];
    size_t n = split_lines(text, len, lines, THREADS * PER_THREAD);
    assert_int_equal(n + dropped, THREADS * PER_THREAD);
    static int next[THREADS];
    memset(next, 0, sizeof(next));
    for (size_t i = 0; i < n; i++) {
        json_t *j = parse(lines[i]);
        int id, seq;
        assert_int_equal(sscanf(json_string_value(json_object_get(j, "path")), "/t/%d/%d", &id, &seq), 2);
        assert_true(id >= 0 && id < THREADS);
        /* Each thread's lines stay in its own order. */
        assert_true(seq >= next[id]);
        next[id] = seq + 1;
        assert_int_equal(json_integer_value(json_object_get(j, "status")), seq);
        json_decref(j);
    }
    free(text);
}

typedef struct {
    int fd;
    char *text;
    size_t len;
} reader_t;

static void *reader_main(void *p)
{
    reader_t *r = p;
    r->text = read_all_fd(r->fd, &r->len);
    return NULL;
}

/* A FIFO nobody reads stalls the writer thread, so the queue fills and lines are dropped
 * rather than blocking the caller; close then flushes what was queued. */
static void test_full_queue_drops(void **state)
{
    tmp_t *t = *state;
    char fifo[160];
    snprintf(fifo, sizeof(fifo), "%s/fifo", t->dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    reader_t r = {.fd = open(fifo, O_RDONLY | O_NONBLOCK)};
    assert_true(r.fd >= 0);
    sl_access_log_t *log = sl_access_log_open(fifo);
    assert_non_null(log);
    assert_int_equal(fcntl(r.fd, F_SETFL, 0), 0);

    static char path[1000];
    memset(path, 'p', sizeof(path));
    path[0] = '/';
    sl_access_entry_t e = sample();
    e.path = path;
    e.path_len = sizeof(path);
    const int total = 12000; /* about 13 MiB: more than the queue plus a batch in flight */
    for (int i = 0; i < total; i++)
        sl_access_log_write(log, &e);
    uint64_t dropped = sl_access_log_dropped(log);
    assert_true(dropped > 0);

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reader_main, &r), 0);
    sl_access_log_close(log);
    pthread_join(th, NULL);
    close(r.fd);

    char **lines = calloc((size_t)total, sizeof(*lines));
    size_t n = split_lines(r.text, r.len, lines, (size_t)total);
    assert_int_equal(n + dropped, (size_t)total);
    for (size_t i = 0; i < n; i += 97)
        json_decref(parse(lines[i]));
    json_decref(parse(lines[n - 1]));
    free(lines);
    free(r.text);
}

static void test_reopen(void **state)
{
    tmp_t *t = *state;
    char rotated[160];
    snprintf(rotated, sizeof(rotated), "%s.1", t->path);
    sl_access_log_t *log = sl_access_log_open(t->path);
    assert_non_null(log);
    sl_access_entry_t e = sample();
    e.route = "before";
    sl_access_log_write(log, &e);
    /* Give the writer the first line before rotating, as a real rotation would. */
    for (int i = 0; i < 200; i++) {
        struct stat st;
        if (stat(t->path, &st) == 0 && st.st_size > 0) break;
        usleep(10000);
    }
    assert_int_equal(rename(t->path, rotated), 0);
    assert_int_equal(sl_access_log_reopen(log), 0);
    e.route = "after";
    sl_access_log_write(log, &e);
    sl_access_log_close(log);

    size_t len;
    char *text = read_file(rotated, &len);
    assert_non_null(strstr(text, "\"route\":\"before\""));
    assert_null(strstr(text, "\"route\":\"after\""));
    free(text);
    text = read_file(t->path, &len);
    assert_non_null(strstr(text, "\"route\":\"after\""));
    free(text);
}

static void test_open_fails(void **state)
{
    (void)state;
    assert_null(sl_access_log_open("/nonexistent-dir/sub/access.log"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fields_and_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nulls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_queue_drops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test(test_open_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
