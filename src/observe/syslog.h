/* Syslog sender: RFC 5424 messages to a remote collector over UDP (RFC 5426) or TCP with
 * octet-counting framing (RFC 6587), for the stream `syslog` plugin.
 *
 * Format. A message is `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]`:
 * - PRI is facility * 8 + severity (facility 0..23, severity 0..7; values outside are clamped).
 * - TIMESTAMP is RFC 3339 in UTC with milliseconds (`2026-11-22T07:00:00.123Z`).
 * - HOSTNAME, APP-NAME, PROCID, MSGID are cut to 255, 48, 128 and 32 bytes; a byte outside
 *   printable US-ASCII (33..126) becomes `_`. An empty or NULL field is the NILVALUE `-`.
 * - Structured data comes from the sl_syslog_sd_* builder: SD-IDs and PARAM-NAMEs are cut to
 *   32 bytes, with `=`, space, `]`, `"` and bytes outside 33..126 replaced by `_`; in
 *   PARAM-VALUEs `"`, `\` and `]` are escaped with a backslash, and a byte that is not part of
 *   well-formed UTF-8 becomes U+FFFD. It is kept within SL_SYSLOG_SD_MAX bytes by leaving out a
 *   parameter (or element) that would not fit whole. No structured data is the NILVALUE.
 * - MSG is written after a UTF-8 BOM when it is well-formed UTF-8 with non-ASCII bytes, as is
 *   otherwise, and cut (on a character boundary when UTF-8) so that the whole message fits in
 *   SL_SYSLOG_MAX_LEN bytes, the size RFC 5424 says every receiver should accept.
 *
 * Sending. sl_syslog_send formats on the calling thread into a per-thread buffer and copies
 * the message into a bounded queue under a mutex held only for that copy: it never blocks on
 * I/O and never waits for the collector. A sender thread per destination drains the queue:
 * it writes whole batches of batch_size messages as they fill, and any message still waiting
 * at most flush_interval_ms after it was queued; each write carries up to batch_size messages
 * (one sendmmsg of one datagram per message with UDP, one send of consecutive frames with
 * TCP). Messages go out in the order they were queued.
 *
 * Failures. With TCP, a failed connect, a connect or write making no progress for
 * io_timeout_ms (5 s by default), or a connection the collector closed, closes the connection;
 * the sender tries again with back-off (100 ms doubling up to 5 s). Messages not completely
 * written stay queued for the next connection, a partly written frame from its start (a
 * receiver discards an incomplete frame when the connection closes). A message that would take
 * the queue past max_queued (waiting plus being written) is dropped and counted, so a dead
 * collector costs at most about max_queued * SL_SYSLOG_MAX_LEN bytes and never slows traffic.
 * With UDP a datagram the kernel accepts counts as sent (delivery is unknown); one it refuses is
 * dropped and counted.
 *
 * Sharing. Handles opened with the same host, port and transport share one sender (queue,
 * connection, thread and counters; kept by base/keeper.h), so a reload that opens the new configuration's handles
 * before closing the old ones keeps the queue: nothing is lost or sent twice. The queue
 * settings (batch_size, flush_interval_ms, max_queued, close_timeout_ms, io_timeout_ms) of the
 * latest open apply to the shared sender; facility, app_name and hostname belong to each handle.
 *
 * Threads. sl_syslog_send, sl_syslog_dropped, sl_syslog_sent and sl_syslog_close may be called
 * from any thread; sl_syslog_open resolves the host with getaddrinfo and so belongs off the
 * workers (main thread, configuration load). A handle must not be used after its close.
 * Close never blocks: the last close of a sender leaves the final flush (bounded by
 * close_timeout_ms) to its thread, and sl_syslog_shutdown, called once at exit, waits for it. */
#ifndef SL_OBSERVE_SYSLOG_H
#define SL_OBSERVE_SYSLOG_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* Largest message (without the TCP frame's length prefix). */
#define SL_SYSLOG_MAX_LEN 2048
/* Largest structured-data part. */
#define SL_SYSLOG_SD_MAX 1024
/* Most messages in one write (sendmmsg takes at most 1024). */
#define SL_SYSLOG_BATCH_MAX 1024

/* Severities (RFC 5424 section 6.2.1). */
enum {
    SL_SYSLOG_EMERG,
    SL_SYSLOG_ALERT,
    SL_SYSLOG_CRIT,
    SL_SYSLOG_ERR,
    SL_SYSLOG_WARNING,
    SL_SYSLOG_NOTICE,
    SL_SYSLOG_INFO,
    SL_SYSLOG_DEBUG,
};

/* Facility 16, local0 (local1..local7 are 17..23). */
#define SL_SYSLOG_LOCAL0 16

typedef enum { SL_SYSLOG_UDP, SL_SYSLOG_TCP } sl_syslog_transport_t;

/* One message for sl_syslog_format. Strings may be NULL. */
typedef struct sl_syslog_msg {
    int facility;
    int severity;
    uint64_t time_unix_ms; /* wall clock; 0 writes the NILVALUE */
    const char *hostname;
    const char *app_name;
    const char *procid;
    const char *msgid;
    const char *sd;  /* from sl_syslog_sd_str, or NULL */
    const char *msg; /* NULL or "": no MSG part */
} sl_syslog_msg_t;

/* Appends m to out as one RFC 5424 message (no framing, no trailing newline) of at most
 * SL_SYSLOG_MAX_LEN bytes, and returns its length. An sd longer than SL_SYSLOG_SD_MAX or not
 * starting with `[` is written as the NILVALUE rather than cut. Pure: no clock, no I/O. */
size_t sl_syslog_format(sl_buf_t *out, const sl_syslog_msg_t *m);

/* Structured-data builder: a fixed buffer, no allocation, so a worker can keep it on its
 * stack. Usage: init, then begin an element and add its parameters, repeat for more
 * elements, then pass sl_syslog_sd_str to send or format. */
typedef struct sl_syslog_sd {
    size_t len;
    int open; /* an element was begun and kept: parameters go into it */
    char text[SL_SYSLOG_SD_MAX + 1];
} sl_syslog_sd_t;

void sl_syslog_sd_init(sl_syslog_sd_t *sd);
/* Starts an element with SD-ID id (e.g. "session@32473"). The element and its parameters are
 * left out when id is empty or the element does not fit. */
void sl_syslog_sd_begin(sl_syslog_sd_t *sd, const char *id);
/* Adds name="value" to the current element; left out when there is none, when name is empty,
 * or when it does not fit whole. value NULL is written as an empty value. */
void sl_syslog_sd_param(sl_syslog_sd_t *sd, const char *name, const char *value);
/* Same with a printf-formatted value of at most 511 bytes. */
void sl_syslog_sd_paramf(sl_syslog_sd_t *sd, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The structured data so far; "" when empty (sent as the NILVALUE). */
const char *sl_syslog_sd_str(const sl_syslog_sd_t *sd);

/* Facility number for a name, the RFC 5424 table in order: kern user mail daemon auth syslog
 * lpr news uucp cron authpriv ftp ntp audit alert clock (0..15), local0..local7 (16..23);
 * -1 for anything else. */
int sl_syslog_facility(const char *name);

typedef struct sl_syslog_cfg {
    const char *host; /* IP literal or name, resolved once when the sender is made */
    uint16_t port;    /* required */
    sl_syslog_transport_t transport;
    int facility;               /* 0..23 */
    const char *app_name;       /* NULL: "sluice" */
    const char *hostname;       /* NULL: gethostname() */
    unsigned batch_size;        /* 0: 64; at most SL_SYSLOG_BATCH_MAX */
    uint64_t flush_interval_ms; /* 0: 1000 */
    unsigned max_queued;        /* 0: 10000 */
    uint64_t close_timeout_ms;  /* 0: 2000; how long the last close may flush */
    uint64_t io_timeout_ms;     /* 0: 5000; a connect or a write making no progress fails after this */
} sl_syslog_cfg_t;

typedef struct sl_syslog sl_syslog_t;

/* Returns a new handle, sharing the sender of an open handle with the same host, port and
 * transport or making one (resolving host and starting its thread). Returns NULL and logs why
 * when cfg is invalid (no host or port, facility out of range), host does not resolve, or the
 * thread cannot start. */
sl_syslog_t *sl_syslog_open(const sl_syslog_cfg_t *cfg);

/* Queues one message with the handle's facility, app-name, hostname and the process id, time
 * stamped now; severity 0..7, msgid, sd (from sl_syslog_sd_str) and msg may be NULL. Copies
 * everything before returning; never blocks on I/O. Any thread. */
void sl_syslog_send(sl_syslog_t *s, int severity, const char *msgid, const char *sd, const char *msg);

/* Messages of s's sender dropped (queue full, refused by the kernel, or left at close) and
 * sent (datagrams accepted by the kernel / frames completely written to the connection).
 * Shared by every handle of the sender. Any thread. */
uint64_t sl_syslog_dropped(const sl_syslog_t *s);
uint64_t sl_syslog_sent(const sl_syslog_t *s);

/* Frees the handle; never blocks. When it was the sender's last handle, the sender stops
 * taking messages and its thread writes what is queued for up to close_timeout_ms, counts the
 * rest as dropped, then frees the sender; sl_syslog_shutdown waits for that. NULL is a no-op. */
void sl_syslog_close(sl_syslog_t *s);

/* Waits until every sender whose last handle was closed has finished (each within its
 * close_timeout_ms). Call at exit after closing the handles, so
 * queued messages go out before the process ends. */
void sl_syslog_shutdown(void);

#endif
