/* Access log: one line per finished request, in JSON or NCSA combined format.
 *
 * Each worker formats its lines into its own buffer (sl_access_buf_t), with no lock and no
 * system call per line. A full buffer (gateway.access_log.buffer, 64 KiB by default), or one
 * whose oldest line is older than gateway.access_log.flush (1 s), is handed to the log's writer
 * thread, which writes it to stdout or a file. A worker never waits for the writer: when more
 * than 64 buffers' worth wait for it (at least 256 KiB, at most 256 MiB: a slow disk, a pipe
 * nobody reads), what is handed over is dropped and counted. Workers hand over what they hold when they stop, and the writer writes
 * everything handed over before the log closes. */
#ifndef SL_OBSERVE_ACCESS_LOG_H
#define SL_OBSERVE_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

typedef struct sl_access_log sl_access_log_t;

enum { SL_ALOG_JSON, SL_ALOG_COMBINED };

/* What a JSON line may hold (gateway.access_log.fields); names in access_log.c. */
enum {
    SL_AF_TIME,
    SL_AF_CLIENT,
    SL_AF_CLIENT_PORT,
    SL_AF_METHOD,
    SL_AF_HOST,
    SL_AF_PATH,
    SL_AF_PROTOCOL,
    SL_AF_STATUS,
    SL_AF_BYTES_IN,
    SL_AF_BYTES_OUT,
    SL_AF_ROUTE,
    SL_AF_SERVICE,
    SL_AF_UPSTREAM,
    SL_AF_UPSTREAM_STATUS,
    SL_AF_DURATION_MS,
    SL_AF_UPSTREAM_MS,
    SL_AF_ERROR,
    SL_AF_RETRIES,
    SL_AF_RETRY_STOP,
    SL_AF_USER_AGENT,
    SL_AF_REFERER,
    SL_AF_REQUEST_ID,
    SL_AF_UPSTREAM_CONNECT_MS,
    SL_AF_TAGS,
    SL_AF_REQUEST_HEADER, /* "request_header.NAME" */
    SL_AF_RESPONSE_HEADER, /* "response_header.NAME": the upstream response's */
    SL_AF_COUNT
};

typedef struct sl_access_field {
    int id;             /* SL_AF_* */
    const char *key;    /* the JSON key, as configured ("request_header.X-Tenant") */
    const char *prefix; /* what goes before the value: ,"KEY": */
    size_t prefix_len;
    const char *header; /* SL_AF_REQUEST_HEADER, SL_AF_RESPONSE_HEADER: the field name, lower case */
    size_t header_len;
} sl_access_field_t;

/* How lines are made and when they leave a worker (gateway.access_log, per generation). */
typedef struct sl_access_format {
    int format;                      /* SL_ALOG_* */
    const sl_access_field_t *fields; /* NULL: the default JSON line (access_log.c) */
    size_t n_fields;
    int response_headers;            /* fields has a response_header.NAME */
    size_t buffer;                   /* bytes a worker gathers before handing them over */
    uint64_t flush_ms;               /* longest a line waits in a worker; 0: not at all */
} sl_access_format_t;

#define SL_ACCESS_BUFFER_DEFAULT (64u << 10)
#define SL_ACCESS_FLUSH_DEFAULT_MS 1000

/* The id of a field name of gateway.access_log.fields ("request_header.NAME" and
 * "response_header.NAME" included), or -1.
 * sl_access_field_names() lists them for error messages. */
int sl_access_field_lookup(const char *name);
const char *sl_access_field_names(void);

typedef struct sl_access_entry {
    uint64_t time_unix_ms;   /* when the request started (wall clock) */
    const char *client;      /* client IP as text */
    uint16_t client_port;
    const char *method;
    const char *host;        /* normalised host, or NULL */
    size_t host_len;
    const char *path;        /* request target as received */
    size_t path_len;
    int http_minor;          /* HTTP/1.x */
    int status;              /* status sent to the client; 0 if none was sent */
    uint64_t bytes_in;       /* bytes received from the client for this request (head + body) */
    uint64_t bytes_out;      /* bytes sent to the client for this request (head + body) */
    const char *route;       /* NULL when no route matched */
    const char *service;
    const char *upstream;    /* node address "host:port", NULL when none was tried */
    int upstream_status;     /* 0 when there was no upstream response */
    double duration_ms;      /* total, from first byte to last byte sent */
    double upstream_ms;      /* upstream time to response head, < 0 when none */
    double upstream_connect_ms; /* the last try's connect (0: a pooled connection), < 0 when none */
    const char *error;       /* reason for a gateway-made error (e.g. "upstream_timeout"), or NULL */
    int retries;             /* tries the retry policy sent again */
    const char *retry_stop;  /* why a try it wanted again was not (e.g. "body_too_large"), or NULL */
    const char *const *tags; /* the matched route's tags */
    size_t n_tags;
    const char *request_id;  /* NULL when request_id is off */
    size_t request_id_len;
    /* A request header's value by lower-case name (NULL when absent), for user_agent, referer
     * and request_header.NAME. */
    const char *(*header)(const void *ctx, const char *name, size_t name_len, size_t *len);
    const void *header_ctx;
    /* The same for the upstream response's headers (response_header.NAME), or NULL. */
    const char *(*response_header)(const void *ctx, const char *name, size_t name_len, size_t *len);
    const void *response_header_ctx;
} sl_access_entry_t;

/* A finished TCP connection or UDP session of a stream route (or one no route took). */
typedef struct sl_stream_entry {
    uint64_t time_unix_ms;   /* when it was accepted (wall clock) */
    int udp;
    const char *client;      /* as text */
    uint16_t client_port;
    const char *server;      /* the address the client connected to, as text */
    uint16_t server_port;
    const char *route;       /* NULL when no route took it */
    const char *service;
    const char *upstream;    /* the node connected to (or last tried), NULL when none */
    uint64_t client_rx, client_tx;     /* bytes received from / sent to the client */
    uint64_t upstream_rx, upstream_tx; /* bytes received from / sent to the upstream */
    double duration_ms;
    int status;              /* 200 400 403 500 502 503, as nginx's stream module counts */
    const char *error;       /* why, when not a clean close ("no_route", "idle_timeout"...), or NULL */
} sl_stream_entry_t;

/* Opens the log: path "stdout", "stderr" or a file (opened for append, created 0644), with
 * one reference. Returns NULL and logs why when the file cannot be opened. */
sl_access_log_t *sl_access_log_open(const char *path);
const char *sl_access_log_path(const sl_access_log_t *log);
void sl_access_log_ref(sl_access_log_t *log);
/* Drops a reference. After the last one the log's writer thread writes everything handed over,
 * closes the file and frees the log; the caller does not wait for it. */
void sl_access_log_unref(sl_access_log_t *log);
/* Waits up to timeout_ms for every log let go of to be written and closed (at exit). Returns
 * how many are still being written. */
int sl_access_log_wait_closed(uint64_t timeout_ms);

/* Lines dropped because too much waited for the writer. */
uint64_t sl_access_log_dropped(const sl_access_log_t *log);

/* Reopens the file (after log rotation); no-op for stdout/stderr. Any thread. Lines handed
 * over before it and not yet written go to the new file. */
int sl_access_log_reopen(sl_access_log_t *log);

/* A worker's lines on their way to one log. Zero-initialised; one thread only. */
typedef struct sl_access_buf {
    sl_access_log_t *log; /* the log the lines are for (a reference), or NULL */
    sl_buf_t buf;
    size_t lines;
    uint64_t oldest_ms;   /* monotonic time of the first line in buf */
    uint64_t flush_ms;    /* the format's, as of the last line */
    size_t buffer;
    /* The time text of the last second a line was made in, per format. */
    int64_t time_sec[2];
    char time_text[2][32];
    uint8_t time_len[2];
} sl_access_buf_t;

/* Formats e as one line per fmt and adds it to b, for log (handing over what b holds for
 * another log first); hands b over when it is full or fmt->flush_ms is 0. String fields are
 * copied. JSON lines are valid JSON whatever a client sent (bytes that are not well-formed
 * UTF-8 are written as \u00XX); NULL strings and upstream_status 0 are written as null. */
void sl_access_buf_write(sl_access_buf_t *b, sl_access_log_t *log, const sl_access_format_t *fmt,
                         const sl_access_entry_t *e, uint64_t now_ms);
/* The same for a stream session: a JSON line of fixed keys (fields applies to HTTP lines), or
 * a combined line whose request is "CONNECT server:port TCP" (or UDP). */
void sl_access_buf_write_stream(sl_access_buf_t *b, sl_access_log_t *log, const sl_access_format_t *fmt,
                                const sl_stream_entry_t *e, uint64_t now_ms);
/* Hands b over when its oldest line has waited flush_ms (called from the worker's tick). */
void sl_access_buf_tick(sl_access_buf_t *b, uint64_t now_ms);
/* Hands everything b holds to the writer now. */
void sl_access_buf_flush(sl_access_buf_t *b);
/* Flushes b and drops its reference to the log. */
void sl_access_buf_release(sl_access_buf_t *b);

#endif
