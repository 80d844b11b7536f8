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

static const sl_access_format_t json_fmt = {.format = SL_ALOG_JSON, .buffer = SL_ACCESS_BUFFER_DEFAULT, .flush_ms = 1000};

/* Writes e to log through a worker buffer of its own, handed over at once. */
static void write1(sl_access_log_t *log, const sl_access_format_t *fmt, const sl_access_entry_t *e)
{
    sl_access_buf_t b = {0};
    sl_access_buf_write(&b, log, fmt, e, 0);
    sl_access_buf_release(&b);
}

/* Lets go of the log and waits until its writer has written everything and closed it. */
static void close_log(sl_access_log_t *log)
{
    sl_access_log_unref(log);
    assert_int_equal(sl_access_log_wait_closed(10000), 0);
}

/* The request headers of sample(), for header(). */
static const char *sample_header(const void *ctx, const char *name, size_t n, size_t *len)
{
    (void)ctx;
    static const char *const h[][2] = {{"user-agent", "curl/7.88.1"}, {"referer", "https://example.com/a?b=\"c\""},
                                       {"x-tenant", "acme"}};
    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++) {
        if (strlen(h[i][0]) == n && !memcmp(h[i][0], name, n)) {
            *len = strlen(h[i][1]);
            return h[i][1];
        }
    }
    return NULL;
}

static sl_access_entry_t sample(void)
{
    sl_access_entry_t e = {
        .time_unix_ms = 1795330800123ull, /* 2026-11-22T07:00:00.123Z */
        .client = "192.0.2.7",
        .client_port = 51234,
        .method = "GET",
        .host = "api.example.com",
        .host_len = 15,
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
        .http_minor = 1,
        .header = sample_header,
    };
    return e;
}

static void test_fields_and_order(void **state)
{
    tmp_t *t = *state;
    sl_access_log_t *log = sl_access_log_open(t->path);
    assert_non_null(log);
    sl_access_entry_t e = sample();
    e.request_id = "9f1c";
    e.request_id_len = 4;
    write1(log, &json_fmt, &e);
    close_log(log);

    size_t len;
    char *text = read_file(t->path, &len);
    assert_string_equal(text,
                        "{\"time\":\"2026-11-22T07:00:00.123Z\",\"client\":\"192.0.2.7\",\"client_port\":51234,"
                        "\"method\":\"GET\",\"host\":\"api.example.com\",\"path\":\"/users/1?x=y\",\"status\":200,"
                        "\"bytes_in\":87,\"bytes_out\":1234,\"route\":\"list-users\",\"service\":\"users\","
                        "\"upstream\":\"127.0.0.1:8081\",\"upstream_status\":200,\"duration_ms\":12.346,"
                        "\"upstream_ms\":10.500,\"error\":null,\"request_id\":\"9f1c\"}\n");
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
    write1(log, &json_fmt, &e);
    close_log(log);

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
    assert_true(json_is_null(json_object_get(j, "request_id")));
    assert_int_equal(json_object_size(j), 17);
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
    e.host_len = strlen(e.host);
    e.method = "G\xe9T";
    write1(log, &json_fmt, &e);
    close_log(log);

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
    /* As a worker does: a buffer of its own, handed over when full (small here: many times). */
    sl_access_format_t fmt = json_fmt;
    fmt.buffer = 4096;
    sl_access_buf_t b = {0};
    for (int i = 0; i < PER_THREAD; i++) {
        int n = snprintf(path, sizeof(path), "/t/%d/%d?q=\"x\"", a->id, i);
        snprintf(route, sizeof(route), "r%d", a->id);
        sl_access_entry_t e = sample();
        e.path = path;
        e.path_len = (size_t)n;
        e.route = route;
        e.status = i;
        sl_access_buf_write(&b, a->log, &fmt, &e, 0);
    }
    sl_access_buf_release(&b);
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
    close_log(log);

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
 * rather than blocking the worker; the last unref then writes what was queued. */
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
    const int total = 24000; /* about 26 MiB: more than the queue plus a batch in flight */
    sl_access_buf_t b = {0};
    for (int i = 0; i < total; i++)
        sl_access_buf_write(&b, log, &json_fmt, &e, 0);
    sl_access_buf_release(&b);
    uint64_t dropped = sl_access_log_dropped(log);
    assert_true(dropped > 0);

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reader_main, &r), 0);
    close_log(log);
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
    write1(log, &json_fmt, &e);
    /* Give the writer the first line before rotating, as a real rotation would. */
    for (int i = 0; i < 200; i++) {
        struct stat st;
        if (stat(t->path, &st) == 0 && st.st_size > 0) break;
        usleep(10000);
    }
    assert_int_equal(rename(t->path, rotated), 0);
    assert_int_equal(sl_access_log_reopen(log), 0);
    e.route = "after";
    write1(log, &json_fmt, &e);
    close_log(log);

    size_t len;
    char *text = read_file(rotated, &len);
    assert_non_null(strstr(text, "\"route\":\"before\""));
    assert_null(strstr(text, "\"route\":\"after\""));
    free(text);
    text = read_file(t->path, &len);
    assert_non_null(strstr(text, "\"route\":\"after\""));
    free(text);
}

/* A worker's lines stay in its buffer until it is full, or until its oldest line has waited
 * flush_ms (the worker's tick), or until the worker lets go of it. */
static void test_buffered_until_full_or_old(void **state)
{
    tmp_t *t = *state;
    sl_access_log_t *log = sl_access_log_open(t->path);
    assert_non_null(log);
    sl_access_format_t fmt = json_fmt;
    fmt.buffer = 4096;
    sl_access_buf_t b = {0};
    sl_access_entry_t e = sample();
    sl_access_buf_write(&b, log, &fmt, &e, 5000);
    assert_int_equal(b.lines, 1);
    size_t line = b.buf.len;
    sl_access_buf_write(&b, log, &fmt, &e, 5600);
    sl_access_buf_tick(&b, 5999); /* the oldest line has waited 999 ms */
    assert_int_equal(b.lines, 2);
    sl_access_buf_tick(&b, 6000);
    assert_int_equal(b.lines, 0);
    /* Full: the line that brings it to 4096 bytes goes with the rest. */
    int n = 0;
    do {
        sl_access_buf_write(&b, log, &fmt, &e, 7000);
        n++;
    } while (b.lines && n < 1000);
    assert_int_equal(b.lines, 0);
    assert_int_equal(n, (4096 + line - 1) / line);
    sl_access_buf_write(&b, log, &fmt, &e, 7000);
    sl_access_buf_release(&b);
    close_log(log);

    size_t len;
    char *text = read_file(t->path, &len);
    char *lines[64];
    assert_int_equal(split_lines(text, len, lines, 64), (size_t)(2 + n + 1));
    free(text);
}

/* flush 0: every line is handed over as it is made. */
static void test_flush_zero(void **state)
{
    tmp_t *t = *state;
    sl_access_log_t *log = sl_access_log_open(t->path);
    assert_non_null(log);
    sl_access_format_t fmt = json_fmt;
    fmt.flush_ms = 0;
    sl_access_buf_t b = {0};
    sl_access_entry_t e = sample();
    sl_access_buf_write(&b, log, &fmt, &e, 0);
    assert_int_equal(b.lines, 0);
    sl_access_buf_release(&b);
    close_log(log);
}

/* A buffer holding lines for one log hands them over before it takes a line for another. */
static void test_switching_logs(void **state)
{
    tmp_t *t = *state;
    char other[160];
    snprintf(other, sizeof(other), "%s.1", t->path);
    sl_access_log_t *a = sl_access_log_open(t->path), *c = sl_access_log_open(other);
    assert_non_null(a);
    assert_non_null(c);
    sl_access_buf_t b = {0};
    sl_access_entry_t e = sample();
    e.route = "to-a";
    sl_access_buf_write(&b, a, &json_fmt, &e, 0);
    sl_access_log_unref(a); /* the buffer's reference keeps it open */
    e.route = "to-c";
    sl_access_buf_write(&b, c, &json_fmt, &e, 0);
    sl_access_buf_release(&b);
    close_log(c);

    size_t len;
    char *text = read_file(t->path, &len);
    assert_non_null(strstr(text, "\"route\":\"to-a\""));
    assert_null(strstr(text, "to-c"));
    free(text);
    text = read_file(other, &len);
    assert_non_null(strstr(text, "\"route\":\"to-c\""));
    assert_null(strstr(text, "to-a"));
    free(text);
}

static void test_combined(void **state)
{
    tmp_t *t = *state;
    sl_access_log_t *log = sl_access_log_open(t->path);
    assert_non_null(log);
    sl_access_format_t fmt = json_fmt;
    fmt.format = SL_ALOG_COMBINED;
    sl_access_entry_t e = sample();
    write1(log, &fmt, &e);
    /* What would break the quoting or the line is escaped; absent headers are "-". */
    e.path = "/a b\"c\\d\x01\xff";
    e.path_len = strlen(e.path);
    e.http_minor = 0;
    e.header = NULL;
    e.status = 0;
    write1(log, &fmt, &e);
    close_log(log);

    size_t len;
    char *text = read_file(t->path, &len);
    assert_string_equal(text,
                        "192.0.2.7 - - [22/Nov/2026:07:00:00 +0000] \"GET /users/1?x=y HTTP/1.1\" 200 1234 "
                        "\"https://example.com/a?b=\\x22c\\x22\" \"curl/7.88.1\"\n"
                        "192.0.2.7 - - [22/Nov/2026:07:00:00 +0000] \"GET /a b\\x22c\\x5Cd\\x01\\xFF HTTP/1.0\" 0 1234 "
                        "\"-\" \"-\"\n");
    free(text);
}

static void test_chosen_fields(void **state)
{
    tmp_t *t = *state;
    sl_access_log_t *log = sl_access_log_open(t->path);
    assert_non_null(log);
#define FIELD(i, k, h) {.id = i, .key = k, .prefix = ",\"" k "\":", .prefix_len = sizeof(",\"" k "\":") - 1, .header = h, .header_len = sizeof(h) - 1}
    static const sl_access_field_t fields[] = {
        FIELD(SL_AF_STATUS, "status", ""),
        FIELD(SL_AF_PROTOCOL, "protocol", ""),
        FIELD(SL_AF_USER_AGENT, "user_agent", ""),
        FIELD(SL_AF_REFERER, "referer", ""),
        FIELD(SL_AF_REQUEST_HEADER, "request_header.X-Tenant", "x-tenant"),
        FIELD(SL_AF_REQUEST_HEADER, "request_header.x-missing", "x-missing"),
        FIELD(SL_AF_RETRIES, "retries", ""),
        FIELD(SL_AF_RETRY_STOP, "retry_stop", ""),
    };
    sl_access_format_t fmt = json_fmt;
    fmt.fields = fields;
    fmt.n_fields = sizeof(fields) / sizeof(fields[0]);
    sl_access_entry_t e = sample();
    write1(log, &fmt, &e);
    close_log(log);

    size_t len;
    char *text = read_file(t->path, &len);
    assert_string_equal(text, "{\"status\":200,\"protocol\":\"HTTP/1.1\",\"user_agent\":\"curl/7.88.1\","
                              "\"referer\":\"https://example.com/a?b=\\\"c\\\"\",\"request_header.X-Tenant\":\"acme\","
                              "\"request_header.x-missing\":null,\"retries\":0,\"retry_stop\":null}\n");
    free(text);
}

static void test_stream_lines(void **state)
{
    tmp_t *t = *state;
    sl_access_log_t *log = sl_access_log_open(t->path);
    assert_non_null(log);
    sl_stream_entry_t e = {
        .time_unix_ms = 1795330800123ull,
        .client = "192.0.2.7",
        .client_port = 40000,
        .server = "10.0.0.5",
        .server_port = 5432,
        .route = "pg",
        .service = "postgres",
        .upstream = "10.0.1.7:5432",
        .client_rx = 10,
        .client_tx = 20,
        .upstream_rx = 21,
        .upstream_tx = 11,
        .duration_ms = 1.5,
        .status = 200,
    };
    sl_access_buf_t b = {0};
    sl_access_buf_write_stream(&b, log, &json_fmt, &e, 0);
    sl_access_format_t comb = json_fmt;
    comb.format = SL_ALOG_COMBINED;
    e.udp = 1;
    e.server = "2001:db8::1";
    e.route = e.service = e.upstream = NULL;
    e.status = 403;
    e.error = "no_route";
    sl_access_buf_write_stream(&b, log, &comb, &e, 0);
    sl_access_buf_write_stream(&b, log, &json_fmt, &e, 0);
    sl_access_buf_release(&b);
    close_log(log);

    size_t len;
    char *text = read_file(t->path, &len);
    assert_string_equal(text,
                        "{\"time\":\"2026-11-22T07:00:00.123Z\",\"protocol\":\"tcp\",\"client\":\"192.0.2.7\","
                        "\"client_port\":40000,\"server\":\"10.0.0.5\",\"server_port\":5432,\"route\":\"pg\","
                        "\"service\":\"postgres\",\"upstream\":\"10.0.1.7:5432\",\"status\":200,\"bytes_in\":10,"
                        "\"bytes_out\":20,\"upstream_bytes_in\":21,\"upstream_bytes_out\":11,\"duration_ms\":1.500,"
                        "\"error\":null}\n"
                        "192.0.2.7 - - [22/Nov/2026:07:00:00 +0000] \"CONNECT [2001:db8::1]:5432 UDP\" 403 20 \"-\" \"-\"\n"
                        "{\"time\":\"2026-11-22T07:00:00.123Z\",\"protocol\":\"udp\",\"client\":\"192.0.2.7\","
                        "\"client_port\":40000,\"server\":\"2001:db8::1\",\"server_port\":5432,\"route\":null,"
                        "\"service\":null,\"upstream\":null,\"status\":403,\"bytes_in\":10,\"bytes_out\":20,"
                        "\"upstream_bytes_in\":21,\"upstream_bytes_out\":11,\"duration_ms\":1.500,\"error\":\"no_route\"}\n");
    free(text);
}

static void test_field_names(void **state)
{
    (void)state;
    assert_int_equal(sl_access_field_lookup("user_agent"), SL_AF_USER_AGENT);
    assert_int_equal(sl_access_field_lookup("request_header.x-a"), SL_AF_REQUEST_HEADER);
    assert_int_equal(sl_access_field_lookup("request_header."), -1);
    assert_int_equal(sl_access_field_lookup("request_header.NAME"), SL_AF_REQUEST_HEADER);
    assert_int_equal(sl_access_field_lookup("response_header.etag"), SL_AF_RESPONSE_HEADER);
    assert_int_equal(sl_access_field_lookup("response_header."), -1);
    assert_int_equal(sl_access_field_lookup("nope"), -1);
    assert_non_null(strstr(sl_access_field_names(), "duration_ms"));
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
        cmocka_unit_test_setup_teardown(test_buffered_until_full_or_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_switching_logs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_combined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chosen_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_lines, setup, teardown),
        cmocka_unit_test(test_field_names),
        cmocka_unit_test(test_open_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
