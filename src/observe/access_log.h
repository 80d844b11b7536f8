/* Access log: one JSON line per finished request, written off the worker threads.
 *
 * Workers format the line into a bounded in-memory queue (a mutex held only for a memcpy);
 * a writer thread drains it to stdout or a file. When the queue is full the line is dropped
 * and counted, so a slow disk never stalls traffic. */
#ifndef SL_OBSERVE_ACCESS_LOG_H
#define SL_OBSERVE_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl_access_log sl_access_log_t;

typedef struct sl_access_entry {
    uint64_t time_unix_ms;   /* when the request started (wall clock) */
    const char *client;      /* client IP as text */
    uint16_t client_port;
    const char *method;
    const char *host;        /* Host header or NULL */
    const char *path;        /* request target as received */
    size_t path_len;
    int status;              /* status sent to the client; 0 if none was sent */
    uint64_t bytes_in;       /* bytes received from the client for this request (head + body) */
    uint64_t bytes_out;      /* bytes sent to the client for this request (head + body) */
    const char *route;       /* NULL when no route matched */
    const char *service;
    const char *upstream;    /* node address "host:port", NULL when none was tried */
    int upstream_status;     /* 0 when there was no upstream response */
    double duration_ms;      /* total, from first byte to last byte sent */
    double upstream_ms;      /* upstream time to response head, < 0 when none */
    const char *error;       /* reason for a gateway-made error (e.g. "upstream_timeout"), or NULL */
    int retries;             /* tries the retry policy sent again */
    const char *retry_stop;  /* why a try it wanted again was not (e.g. "body_too_large"), or NULL */
} sl_access_entry_t;

/* Opens the log: path "stdout", "stderr" or a file (opened for append, created 0644).
 * Returns NULL and logs why when the file cannot be opened. "off" is handled by the caller. */
sl_access_log_t *sl_access_log_open(const char *path);

/* Formats e as one JSON line and queues it; never blocks on I/O. Thread-safe. String fields
 * are copied before returning; bytes that are not well-formed UTF-8 are written as \u00XX so
 * the line is always valid JSON. NULL strings and upstream_status 0 are written as null. */
void sl_access_log_write(sl_access_log_t *log, const sl_access_entry_t *e);

/* Lines dropped because the queue was full. */
uint64_t sl_access_log_dropped(const sl_access_log_t *log);

/* Reopens the file (after log rotation); no-op for stdout/stderr. Thread-safe. */
int sl_access_log_reopen(sl_access_log_t *log);

/* Flushes everything queued, stops the writer thread and frees the log. */
void sl_access_log_close(sl_access_log_t *log);

#endif
