#include "observe/access_log.h"

#include "base/buf.h"
#include "base/common.h"
#include "base/log.h"
#include "base/utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* What may wait for the writer thread: QUEUE_BUFFERS worker buffers' worth, within bounds;
 * what a worker hands over past it is dropped. */
#define QUEUE_BUFFERS 64
#define QUEUE_MIN ((size_t)256 << 10)
#define QUEUE_MAX ((size_t)256 << 20)

struct sl_access_log {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    sl_buf_t pending;     /* lines handed over by workers (under mu) */
    size_t pending_lines; /* lines in pending (under mu) */
    int stopping;         /* set by the last unref (under mu) */
    int next_fd;          /* fd opened by reopen, not yet taken by the writer (under mu), or -1 */
    int fd;               /* used by the writer thread only once it runs */
    int owns_fd;          /* a file we opened, as opposed to stdout/stderr */
    char *path;
    _Atomic uint64_t dropped;
    atomic_int refs;
};

/* ---- fields ------------------------------------------------------------------------------ */

static const char *const field_names[SL_AF_COUNT] = {
    [SL_AF_TIME] = "time",
    [SL_AF_CLIENT] = "client",
    [SL_AF_CLIENT_PORT] = "client_port",
    [SL_AF_METHOD] = "method",
    [SL_AF_HOST] = "host",
    [SL_AF_PATH] = "path",
    [SL_AF_PROTOCOL] = "protocol",
    [SL_AF_STATUS] = "status",
    [SL_AF_BYTES_IN] = "bytes_in",
    [SL_AF_BYTES_OUT] = "bytes_out",
    [SL_AF_ROUTE] = "route",
    [SL_AF_SERVICE] = "service",
    [SL_AF_UPSTREAM] = "upstream",
    [SL_AF_UPSTREAM_STATUS] = "upstream_status",
    [SL_AF_DURATION_MS] = "duration_ms",
    [SL_AF_UPSTREAM_MS] = "upstream_ms",
    [SL_AF_ERROR] = "error",
    [SL_AF_RETRIES] = "retries",
    [SL_AF_RETRY_STOP] = "retry_stop",
    [SL_AF_USER_AGENT] = "user_agent",
    [SL_AF_REFERER] = "referer",
    [SL_AF_REQUEST_ID] = "request_id",
    [SL_AF_UPSTREAM_CONNECT_MS] = "upstream_connect_ms",
    [SL_AF_TAGS] = "tags",
    [SL_AF_REQUEST_HEADER] = "request_header.NAME",
    [SL_AF_RESPONSE_HEADER] = "response_header.NAME",
};

#define REQUEST_HEADER_PREFIX "request_header."
#define RESPONSE_HEADER_PREFIX "response_header."

int sl_access_field_lookup(const char *name)
{
    size_t rq = sizeof(REQUEST_HEADER_PREFIX) - 1, rs = sizeof(RESPONSE_HEADER_PREFIX) - 1;
    if (!strncmp(name, REQUEST_HEADER_PREFIX, rq)) return name[rq] ? SL_AF_REQUEST_HEADER : -1;
    if (!strncmp(name, RESPONSE_HEADER_PREFIX, rs)) return name[rs] ? SL_AF_RESPONSE_HEADER : -1;
    for (int i = 0; i < SL_AF_COUNT; i++)
        if (i != SL_AF_REQUEST_HEADER && i != SL_AF_RESPONSE_HEADER && !strcmp(name, field_names[i])) return i;
    return -1;
}

const char *sl_access_field_names(void)
{
    static char list[512];
    if (!list[0]) {
        size_t o = 0;
        for (int i = 0; i < SL_AF_COUNT; i++)
            o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", field_names[i]);
    }
    return list;
}

/* Today's line, when fields is not set: retries and retry_stop only where a retry policy acted. */
#define DEFAULT_FIELD(id, name) {id, name, ",\"" name "\":", sizeof(",\"" name "\":") - 1, NULL, 0}
static const sl_access_field_t default_fields[] = {
    DEFAULT_FIELD(SL_AF_TIME, "time"),
    DEFAULT_FIELD(SL_AF_CLIENT, "client"),
    DEFAULT_FIELD(SL_AF_CLIENT_PORT, "client_port"),
    DEFAULT_FIELD(SL_AF_METHOD, "method"),
    DEFAULT_FIELD(SL_AF_HOST, "host"),
    DEFAULT_FIELD(SL_AF_PATH, "path"),
    DEFAULT_FIELD(SL_AF_STATUS, "status"),
    DEFAULT_FIELD(SL_AF_BYTES_IN, "bytes_in"),
    DEFAULT_FIELD(SL_AF_BYTES_OUT, "bytes_out"),
    DEFAULT_FIELD(SL_AF_ROUTE, "route"),
    DEFAULT_FIELD(SL_AF_SERVICE, "service"),
    DEFAULT_FIELD(SL_AF_UPSTREAM, "upstream"),
    DEFAULT_FIELD(SL_AF_UPSTREAM_STATUS, "upstream_status"),
    DEFAULT_FIELD(SL_AF_DURATION_MS, "duration_ms"),
    DEFAULT_FIELD(SL_AF_UPSTREAM_MS, "upstream_ms"),
    DEFAULT_FIELD(SL_AF_ERROR, "error"),
    DEFAULT_FIELD(SL_AF_REQUEST_ID, "request_id"),
};

/* ---- formatting: by hand, no printf per field ---------------------------------------------- */

static inline void put(sl_buf_t *b, const char *s, size_t n)
{
    sl_buf_reserve(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

#define PUT_LIT(b, lit) put((b), (lit), sizeof(lit) - 1)

static inline void put_char(sl_buf_t *b, char c)
{
    sl_buf_reserve(b, 1);
    b->data[b->len++] = c;
}

/* Decimal digits, two at a time, written straight into the buffer. */
static void put_u64(sl_buf_t *b, uint64_t v)
{
    static const char pairs[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                   "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                   "8081828384858687888990919293949596979899";
    char tmp[20];
    size_t i = sizeof(tmp);
    while (v >= 100) {
        unsigned d = (unsigned)(v % 100) * 2;
        v /= 100;
        tmp[--i] = pairs[d + 1];
        tmp[--i] = pairs[d];
    }
    if (v >= 10) {
        tmp[--i] = pairs[v * 2 + 1];
        tmp[--i] = pairs[v * 2];
    } else {
        tmp[--i] = (char)('0' + v);
    }
    put(b, tmp + i, sizeof(tmp) - i);
}

static void put_int(sl_buf_t *b, long long v)
{
    if (v < 0) {
        put_char(b, '-');
        put_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(b, (uint64_t)v);
    }
}

/* Milliseconds with three decimals; JSON has no NaN or infinity, so those become null. */
static void put_ms(sl_buf_t *b, double ms)
{
    if (!isfinite(ms)) {
        PUT_LIT(b, "null");
    } else if (ms < 0 || ms >= 1e15) {
        sl_buf_printf(b, "%.3f", ms);
    } else {
        uint64_t us = (uint64_t)(ms * 1000.0 + 0.5);
        put_u64(b, us / 1000);
        char frac[4] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10), (char)('0' + us % 10)};
        put(b, frac, sizeof(frac));
    }
}

/* Printable ASCII but '"' and '\\': what a JSON string holds as it is. */
static const uint8_t json_plain[256] = {
    ['\x20'] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,
};

/* Appends s as a JSON string, or null. Bytes that are not part of well-formed UTF-8 are
 * written as \u00XX (the byte read as Latin-1), so the line is valid JSON whatever a client
 * sent; everything else goes through sl_buf_json_escape. Plain ASCII is copied as it is. */
static void put_json_string(sl_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (!s) {
        PUT_LIT(b, "null");
        return;
    }
    const unsigned char *u = (const unsigned char *)s;
    size_t plain = 0;
    while (plain < n && json_plain[u[plain]]) plain++;
    sl_buf_reserve(b, plain + 2);
    char *o = b->data + b->len;
    *o = '"';
    for (size_t k = 0; k < plain; k++) /* short strings: a call to memcpy costs more */
        o[k + 1] = s[k];
    b->len += plain + 1;
    if (plain == n) {
        b->data[b->len++] = '"';
        return;
    }
    size_t run = plain; /* start of the current run of valid text */
    size_t i = plain;
    while (i < n) {
        size_t len = sl_utf8_seq_len(u + i, n - i);
        if (len) {
            i += len;
            continue;
        }
        sl_buf_json_escape(b, s + run, i - run);
        char e[6] = {'\\', 'u', '0', '0', hex[u[i] >> 4], hex[u[i] & 15]};
        put(b, e, sizeof(e));
        run = ++i;
    }
    sl_buf_json_escape(b, s + run, n - run);
    put_char(b, '"');
}

static void put_cstring(sl_buf_t *b, const char *s)
{
    put_json_string(b, s, s ? strlen(s) : 0);
}

/* A combined-format string: what would break the line or its quoting, and bytes outside
 * printable ASCII, as \xHH (as nginx writes them); "-" for none. */
static void put_ncsa(sl_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!s) {
        put_char(b, '-');
        return;
    }
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') continue;
        put(b, s + run, i - run);
        char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
        put(b, e, sizeof(e));
        run = i + 1;
    }
    put(b, s + run, n - run);
}

static const char *header(const sl_access_entry_t *e, const char *name, size_t name_len, size_t *len)
{
    *len = 0;
    return e->header ? e->header(e->header_ctx, name, name_len, len) : NULL;
}

/* The time text of the second t falls in, made once per second: "2026-12-03T07:23:50" for
 * JSON, "03/Dec/2026:07:23:50 +0000" for combined. */
static void put_time(sl_access_buf_t *ab, int which, uint64_t unix_ms)
{
    int64_t sec = (int64_t)(unix_ms / 1000);
    if (ab->time_sec[which] != sec || !ab->time_len[which]) {
        static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        struct tm tm;
        time_t t = (time_t)sec;
        if (!gmtime_r(&t, &tm)) memset(&tm, 0, sizeof(tm));
        int n;
        if (which == SL_ALOG_JSON)
            n = snprintf(ab->time_text[which], sizeof(ab->time_text[which]), "%04d-%02d-%02dT%02d:%02d:%02d",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        else
            n = snprintf(ab->time_text[which], sizeof(ab->time_text[which]), "%02d/%s/%04d:%02d:%02d:%02d +0000",
                         tm.tm_mday, mon[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        ab->time_len[which] = (uint8_t)(n > 0 && (size_t)n < sizeof(ab->time_text[which]) ? n : 0);
        ab->time_sec[which] = sec;
    }
    put(&ab->buf, ab->time_text[which], ab->time_len[which]);
}

/* "2026-12-03T07:23:50.123Z", quotes included. */
static void put_json_time(sl_access_buf_t *ab, uint64_t unix_ms)
{
    put_char(&ab->buf, '"');
    put_time(ab, SL_ALOG_JSON, unix_ms);
    unsigned ms = (unsigned)(unix_ms % 1000);
    char frac[6] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', '"'};
    put(&ab->buf, frac, sizeof(frac));
}

/* What a combined line starts with, up to the request's opening quote:
 * client - - [03/Dec/2026:07:23:50 +0000] " */
static void put_combined_start(sl_access_buf_t *ab, const char *client, uint64_t unix_ms)
{
    sl_buf_t *b = &ab->buf;
    if (client) put_ncsa(b, client, strlen(client));
    else put_char(b, '-');
    PUT_LIT(b, " - - [");
    put_time(ab, SL_ALOG_COMBINED, unix_ms);
    PUT_LIT(b, "] \"");
}

static void put_field(sl_access_buf_t *ab, const sl_access_field_t *f, const sl_access_entry_t *e)
{
    sl_buf_t *b = &ab->buf;
    size_t len;
    const char *v;
    switch (f->id) {
    case SL_AF_TIME: put_json_time(ab, e->time_unix_ms); break;
    case SL_AF_CLIENT: put_cstring(b, e->client); break;
    case SL_AF_CLIENT_PORT: put_u64(b, e->client_port); break;
    case SL_AF_METHOD: put_cstring(b, e->method); break;
    case SL_AF_HOST: put_json_string(b, e->host, e->host_len); break;
    case SL_AF_PATH: put_json_string(b, e->path, e->path ? e->path_len : 0); break;
    case SL_AF_PROTOCOL: {
        char p[10] = {'"', 'H', 'T', 'T', 'P', '/', '1', '.', (char)('0' + (e->http_minor == 0 ? 0 : 1)), '"'};
        put(b, p, sizeof(p));
        break;
    }
    case SL_AF_STATUS: put_int(b, e->status); break;
    case SL_AF_BYTES_IN: put_u64(b, e->bytes_in); break;
    case SL_AF_BYTES_OUT: put_u64(b, e->bytes_out); break;
    case SL_AF_ROUTE: put_cstring(b, e->route); break;
    case SL_AF_SERVICE: put_cstring(b, e->service); break;
    case SL_AF_UPSTREAM: put_cstring(b, e->upstream); break;
    case SL_AF_UPSTREAM_STATUS:
        if (e->upstream_status) put_int(b, e->upstream_status);
        else PUT_LIT(b, "null");
        break;
    case SL_AF_DURATION_MS: put_ms(b, e->duration_ms); break;
    case SL_AF_UPSTREAM_MS:
        if (e->upstream_ms < 0) PUT_LIT(b, "null");
        else put_ms(b, e->upstream_ms);
        break;
    case SL_AF_ERROR: put_cstring(b, e->error); break;
    case SL_AF_RETRIES: put_int(b, e->retries); break;
    case SL_AF_RETRY_STOP: put_cstring(b, e->retry_stop); break;
    case SL_AF_USER_AGENT:
        v = header(e, "user-agent", 10, &len);
        put_json_string(b, v, len);
        break;
    case SL_AF_REFERER:
        v = header(e, "referer", 7, &len);
        put_json_string(b, v, len);
        break;
    case SL_AF_REQUEST_ID: put_json_string(b, e->request_id, e->request_id_len); break;
    case SL_AF_TAGS:
        if (!e->route) {
            PUT_LIT(b, "null");
            break;
        }
        put_char(b, '[');
        for (size_t i = 0; i < e->n_tags; i++) {
            if (i) put_char(b, ',');
            put_cstring(b, e->tags[i]);
        }
        put_char(b, ']');
        break;
    case SL_AF_UPSTREAM_CONNECT_MS:
        if (e->upstream_connect_ms < 0) PUT_LIT(b, "null");
        else put_ms(b, e->upstream_connect_ms);
        break;
    case SL_AF_REQUEST_HEADER:
        v = header(e, f->header, f->header_len, &len);
        put_json_string(b, v, len);
        break;
    case SL_AF_RESPONSE_HEADER:
        len = 0;
        v = e->response_header ? e->response_header(e->response_header_ctx, f->header, f->header_len, &len) : NULL;
        put_json_string(b, v, len);
        break;
    default: PUT_LIT(b, "null"); break;
    }
}

static void format_json(sl_access_buf_t *ab, const sl_access_format_t *fmt, const sl_access_entry_t *e)
{
    sl_buf_t *b = &ab->buf;
    const sl_access_field_t *fields = fmt->fields ? fmt->fields : default_fields;
    size_t n = fmt->fields ? fmt->n_fields : SL_ARRAY_LEN(default_fields);
    put_char(b, '{');
    for (size_t i = 0; i < n; i++) {
        /* ,"KEY": made once (no escaping needed: field names, or "request_header." and a
         * token); the first key goes without its comma. */
        put(b, fields[i].prefix + !i, fields[i].prefix_len - !i);
        put_field(ab, &fields[i], e);
    }
    if (!fmt->fields && (e->retries || e->retry_stop)) {
        /* Only where a retry policy acted: most lines stay as they were. */
        PUT_LIT(b, ",\"retries\":");
        put_int(b, e->retries);
        PUT_LIT(b, ",\"retry_stop\":");
        put_cstring(b, e->retry_stop);
    }
    PUT_LIT(b, "}\n");
}

/* NCSA combined: client - - [time] "request line" status bytes "referer" "user agent". The
 * bytes are all the response's bytes, head included (Apache's %O). */
static void format_combined(sl_access_buf_t *ab, const sl_access_entry_t *e)
{
    sl_buf_t *b = &ab->buf;
    size_t len;
    const char *v;
    put_combined_start(ab, e->client, e->time_unix_ms);
    if (e->method) put_ncsa(b, e->method, strlen(e->method));
    put_char(b, ' ');
    put_ncsa(b, e->path ? e->path : "", e->path ? e->path_len : 0);
    char proto[9] = {' ', 'H', 'T', 'T', 'P', '/', '1', '.', (char)('0' + (e->http_minor == 0 ? 0 : 1))};
    put(b, proto, sizeof(proto));
    PUT_LIT(b, "\" ");
    put_int(b, e->status);
    put_char(b, ' ');
    put_u64(b, e->bytes_out);
    PUT_LIT(b, " \"");
    v = header(e, "referer", 7, &len);
    put_ncsa(b, v, len);
    PUT_LIT(b, "\" \"");
    v = header(e, "user-agent", 10, &len);
    put_ncsa(b, v, len);
    PUT_LIT(b, "\"\n");
}

/* ---- handing over ------------------------------------------------------------------------ */

/* Gives the writer the lines in buf (emptied), or drops and counts them when too much waits. */
static void hand_over(sl_access_log_t *log, sl_buf_t *buf, size_t lines, size_t limit)
{
    int dropped = 0;
    pthread_mutex_lock(&log->mu);
    if (log->pending.len + buf->len > limit) {
        dropped = 1;
    } else if (log->pending.len == 0) {
        /* The writer sleeps only on an empty queue: one wake-up per hand-over, and the buffers
         * trade places instead of copying. */
        sl_buf_t t = log->pending;
        log->pending = *buf;
        *buf = t;
        log->pending_lines = lines;
        pthread_cond_signal(&log->cond);
    } else {
        sl_buf_append(&log->pending, buf->data, buf->len);
        log->pending_lines += lines;
    }
    pthread_mutex_unlock(&log->mu);
    if (dropped) atomic_fetch_add_explicit(&log->dropped, lines, memory_order_relaxed);
    buf->len = 0;
}

void sl_access_buf_flush(sl_access_buf_t *b)
{
    if (!b->log || !b->lines) return;
    size_t limit = b->buffer * QUEUE_BUFFERS;
    hand_over(b->log, &b->buf, b->lines, limit < QUEUE_MIN ? QUEUE_MIN : limit > QUEUE_MAX ? QUEUE_MAX : limit);
    b->lines = 0;
}

void sl_access_buf_release(sl_access_buf_t *b)
{
    sl_access_buf_flush(b);
    if (b->log) sl_access_log_unref(b->log);
    b->log = NULL;
    sl_buf_free(&b->buf);
}

void sl_access_buf_tick(sl_access_buf_t *b, uint64_t now_ms)
{
    if (b->lines && now_ms - b->oldest_ms >= b->flush_ms) sl_access_buf_flush(b);
}

/* Before a line: b is for log, ready for at least a buffer's worth. */
static size_t line_begin(sl_access_buf_t *b, sl_access_log_t *log, const sl_access_format_t *fmt, uint64_t now_ms)
{
    if (b->log != log) {
        sl_access_buf_release(b);
        sl_access_log_ref(log);
        b->log = log;
    }
    size_t limit = fmt->buffer ? fmt->buffer : SL_ACCESS_BUFFER_DEFAULT;
    if (b->buf.cap < limit) sl_buf_reserve(&b->buf, limit + 1024);
    if (!b->lines) b->oldest_ms = now_ms;
    b->flush_ms = fmt->flush_ms;
    b->buffer = limit;
    return limit;
}

static void line_end(sl_access_buf_t *b, const sl_access_format_t *fmt, size_t limit)
{
    b->lines++;
    if (b->buf.len >= limit || fmt->flush_ms == 0) sl_access_buf_flush(b);
}

void sl_access_buf_write(sl_access_buf_t *b, sl_access_log_t *log, const sl_access_format_t *fmt,
                         const sl_access_entry_t *e, uint64_t now_ms)
{
    size_t limit = line_begin(b, log, fmt, now_ms);
    if (fmt->format == SL_ALOG_COMBINED) format_combined(b, e);
    else format_json(b, fmt, e);
    line_end(b, fmt, limit);
}

static void put_stream_json(sl_access_buf_t *ab, const sl_stream_entry_t *e)
{
    sl_buf_t *b = &ab->buf;
    PUT_LIT(b, "{\"time\":");
    put_json_time(ab, e->time_unix_ms);
    PUT_LIT(b, ",\"protocol\":");
    if (e->udp) PUT_LIT(b, "\"udp\"");
    else PUT_LIT(b, "\"tcp\"");
    PUT_LIT(b, ",\"client\":");
    put_cstring(b, e->client);
    PUT_LIT(b, ",\"client_port\":");
    put_u64(b, e->client_port);
    PUT_LIT(b, ",\"server\":");
    put_cstring(b, e->server);
    PUT_LIT(b, ",\"server_port\":");
    put_u64(b, e->server_port);
    PUT_LIT(b, ",\"route\":");
    put_cstring(b, e->route);
    PUT_LIT(b, ",\"service\":");
    put_cstring(b, e->service);
    PUT_LIT(b, ",\"upstream\":");
    put_cstring(b, e->upstream);
    PUT_LIT(b, ",\"status\":");
    put_int(b, e->status);
    PUT_LIT(b, ",\"bytes_in\":");
    put_u64(b, e->client_rx);
    PUT_LIT(b, ",\"bytes_out\":");
    put_u64(b, e->client_tx);
    PUT_LIT(b, ",\"upstream_bytes_in\":");
    put_u64(b, e->upstream_rx);
    PUT_LIT(b, ",\"upstream_bytes_out\":");
    put_u64(b, e->upstream_tx);
    PUT_LIT(b, ",\"duration_ms\":");
    put_ms(b, e->duration_ms);
    PUT_LIT(b, ",\"error\":");
    put_cstring(b, e->error);
    PUT_LIT(b, "}\n");
}

static void put_stream_combined(sl_access_buf_t *ab, const sl_stream_entry_t *e)
{
    sl_buf_t *b = &ab->buf;
    put_combined_start(ab, e->client, e->time_unix_ms);
    PUT_LIT(b, "CONNECT ");
    int v6 = e->server && strchr(e->server, ':');
    if (v6) put_char(b, '[');
    if (e->server) put_ncsa(b, e->server, strlen(e->server));
    if (v6) put_char(b, ']');
    put_char(b, ':');
    put_u64(b, e->server_port);
    if (e->udp) PUT_LIT(b, " UDP\" ");
    else PUT_LIT(b, " TCP\" ");
    put_int(b, e->status);
    put_char(b, ' ');
    put_u64(b, e->client_tx);
    PUT_LIT(b, " \"-\" \"-\"\n");
}

void sl_access_buf_write_stream(sl_access_buf_t *b, sl_access_log_t *log, const sl_access_format_t *fmt,
                                const sl_stream_entry_t *e, uint64_t now_ms)
{
    size_t limit = line_begin(b, log, fmt, now_ms);
    if (fmt->format == SL_ALOG_COMBINED) put_stream_combined(b, e);
    else put_stream_json(b, e);
    line_end(b, fmt, limit);
}

/* Writes all of p, retrying after EINTR and short writes, and waiting when the descriptor is
 * non-blocking (stdout may be shared with a libuv loop that made it so). */
static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w >= 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            if (poll(&pfd, 1, -1) < 0 && errno != EINTR) return -errno;
            continue;
        }
        return -errno;
    }
    return 0;
}

/* Writer threads not yet done, for sl_access_log_wait_closed(). */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cv = PTHREAD_COND_INITIALIZER;
static int live_writers;

static void log_free(sl_access_log_t *log)
{
    if (log->next_fd >= 0) close(log->next_fd);
    if (log->owns_fd) close(log->fd);
    pthread_cond_destroy(&log->cond);
    pthread_mutex_destroy(&log->mu);
    sl_buf_free(&log->pending);
    free(log->path);
    free(log);
}

static void *writer_main(void *arg)
{
    sl_access_log_t *log = arg;
    sl_buf_t batch = SL_BUF_INIT;
    int failing = 0;

    pthread_mutex_lock(&log->mu);
    for (;;) {
        while (log->pending.len == 0 && log->next_fd < 0 && !log->stopping)
            pthread_cond_wait(&log->cond, &log->mu);
        if (log->next_fd >= 0) {
            /* Lines queued before the reopen go to the new file: that is what rotation wants. */
            if (log->owns_fd) close(log->fd);
            log->fd = log->next_fd;
            log->next_fd = -1;
        }
        if (log->pending.len == 0) {
            if (log->stopping) break;
            continue;
        }
        /* Swap buffers so workers keep appending while this thread writes. */
        sl_buf_t tmp = log->pending;
        log->pending = batch;
        batch = tmp;
        size_t lines = log->pending_lines;
        log->pending_lines = 0;
        int fd = log->fd;
        pthread_mutex_unlock(&log->mu);

        int rc = write_all(fd, batch.data, batch.len);
        if (rc < 0) {
            atomic_fetch_add_explicit(&log->dropped, lines, memory_order_relaxed);
            if (!failing) sl_log_error("access log %s: write: %s", log->path, strerror(-rc));
            failing = 1;
        } else {
            failing = 0;
        }
        batch.len = 0;
        pthread_mutex_lock(&log->mu);
    }
    pthread_mutex_unlock(&log->mu);
    sl_buf_free(&batch);
    log_free(log); /* the last reference is gone: nobody else touches it now */
    pthread_mutex_lock(&live_mu);
    live_writers--;
    pthread_cond_broadcast(&live_cv);
    pthread_mutex_unlock(&live_mu);
    return NULL;
}

static int open_file(const char *path)
{
    int fd;
    do {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

sl_access_log_t *sl_access_log_open(const char *path)
{
    sl_access_log_t *log = sl_xcalloc(1, sizeof(*log));
    log->path = sl_xstrdup(path);
    log->next_fd = -1;
    atomic_init(&log->dropped, 0);
    atomic_init(&log->refs, 1);
    if (strcmp(path, "stdout") == 0) {
        log->fd = STDOUT_FILENO;
    } else if (strcmp(path, "stderr") == 0) {
        log->fd = STDERR_FILENO;
    } else {
        int fd = open_file(path);
        if (fd < 0) {
            sl_log_error("access log %s: open: %s", path, strerror(-fd));
            goto fail_path;
        }
        log->fd = fd;
        log->owns_fd = 1;
    }

    int rc = pthread_mutex_init(&log->mu, NULL);
    if (rc != 0) goto fail_fd;
    rc = pthread_cond_init(&log->cond, NULL);
    if (rc != 0) goto fail_mutex;

    /* The writer thread takes no signals: they belong to the main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_mutex_lock(&live_mu);
    rc = pthread_create(&log->thread, NULL, writer_main, log);
    if (rc == 0) live_writers++;
    pthread_mutex_unlock(&live_mu);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) goto fail_cond;
    pthread_setname_np(log->thread, "sl-access-log");
    pthread_detach(log->thread);
    return log;

fail_cond:
    pthread_cond_destroy(&log->cond);
fail_mutex:
    pthread_mutex_destroy(&log->mu);
fail_fd:
    sl_log_error("access log %s: %s", path, strerror(rc));
    if (log->owns_fd) close(log->fd);
fail_path:
    free(log->path);
    free(log);
    return NULL;
}

uint64_t sl_access_log_dropped(const sl_access_log_t *log)
{
    return atomic_load_explicit(&((sl_access_log_t *)log)->dropped, memory_order_relaxed);
}

int sl_access_log_reopen(sl_access_log_t *log)
{
    if (!log->owns_fd) return 0;
    int fd = open_file(log->path);
    if (fd < 0) {
        sl_log_error("access log %s: reopen: %s", log->path, strerror(-fd));
        return fd;
    }
    pthread_mutex_lock(&log->mu);
    /* Two reopens before the writer wakes: the later file wins. */
    if (log->next_fd >= 0) close(log->next_fd);
    log->next_fd = fd;
    pthread_cond_signal(&log->cond);
    pthread_mutex_unlock(&log->mu);
    return 0;
}

const char *sl_access_log_path(const sl_access_log_t *log)
{
    return log->path;
}

void sl_access_log_ref(sl_access_log_t *log)
{
    atomic_fetch_add_explicit(&log->refs, 1, memory_order_relaxed);
}

void sl_access_log_unref(sl_access_log_t *log)
{
    if (!log || atomic_fetch_sub_explicit(&log->refs, 1, memory_order_acq_rel) != 1) return;
    pthread_mutex_lock(&log->mu);
    log->stopping = 1;
    pthread_cond_signal(&log->cond);
    pthread_mutex_unlock(&log->mu);
    /* The writer writes what is left and frees the log: whoever let go of it last (a worker
     * releasing an old generation) does not wait for a slow disk. */
}

int sl_access_log_wait_closed(uint64_t timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(timeout_ms / 1000);
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&live_mu);
    while (live_writers > 0)
        if (pthread_cond_timedwait(&live_cv, &live_mu, &until) == ETIMEDOUT) break;
    int left = live_writers;
    pthread_mutex_unlock(&live_mu);
    return left;
}
