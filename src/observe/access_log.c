#include "observe/access_log.h"

#include "base/buf.h"
#include "base/common.h"
#include "base/log.h"
#include "base/utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Text waiting for the writer thread; a line that would push the queue past this is dropped. */
#define QUEUE_LIMIT (4u << 20)
/* Per-thread scratch buffers bigger than this after a line are released rather than kept. */
#define SCRATCH_KEEP (64u << 10)

struct sl_access_log {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    sl_buf_t pending;     /* lines queued by workers (under mu) */
    size_t pending_lines; /* lines in pending (under mu) */
    int stopping;         /* set by close (under mu) */
    int next_fd;          /* fd opened by reopen, not yet taken by the writer (under mu), or -1 */
    int fd;               /* used by the writer thread only once it runs */
    int owns_fd;          /* a file we opened, as opposed to stdout/stderr */
    char *path;
    _Atomic uint64_t dropped;
};

/* Appends s as a JSON string, or null. Bytes that are not part of well-formed UTF-8 are
 * written as \u00XX (the byte read as Latin-1), so the line is valid JSON whatever a client
 * sent; everything else goes through sl_buf_json_escape. */
static void put_json_string(sl_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (!s) {
        sl_buf_puts(b, "null");
        return;
    }
    const unsigned char *u = (const unsigned char *)s;
    sl_buf_putc(b, '"');
    size_t run = 0; /* start of the current run of valid text */
    size_t i = 0;
    while (i < n) {
        size_t len = sl_utf8_seq_len(u + i, n - i);
        if (len) {
            i += len;
            continue;
        }
        sl_buf_json_escape(b, s + run, i - run);
        char e[6] = {'\\', 'u', '0', '0', hex[u[i] >> 4], hex[u[i] & 15]};
        sl_buf_append(b, e, sizeof(e));
        run = ++i;
    }
    sl_buf_json_escape(b, s + run, n - run);
    sl_buf_putc(b, '"');
}

static void put_cstring(sl_buf_t *b, const char *s)
{
    put_json_string(b, s, s ? strlen(s) : 0);
}

/* Milliseconds with three decimals; JSON has no NaN or infinity, so those become null. */
static void put_ms(sl_buf_t *b, double ms)
{
    if (!isfinite(ms))
        sl_buf_puts(b, "null");
    else
        sl_buf_printf(b, "%.3f", ms);
}

static void format_entry(sl_buf_t *b, const sl_access_entry_t *e)
{
    struct tm tm;
    time_t secs = (time_t)(e->time_unix_ms / 1000);
    if (!gmtime_r(&secs, &tm)) memset(&tm, 0, sizeof(tm));
    sl_buf_printf(b, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03uZ\",\"client\":", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(e->time_unix_ms % 1000));
    put_cstring(b, e->client);
    sl_buf_printf(b, ",\"client_port\":%u,\"method\":", (unsigned)e->client_port);
    put_cstring(b, e->method);
    sl_buf_puts(b, ",\"host\":");
    put_cstring(b, e->host);
    sl_buf_puts(b, ",\"path\":");
    put_json_string(b, e->path, e->path ? e->path_len : 0);
    sl_buf_printf(b, ",\"status\":%d,\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"route\":", e->status,
                  e->bytes_in, e->bytes_out);
    put_cstring(b, e->route);
    sl_buf_puts(b, ",\"service\":");
    put_cstring(b, e->service);
    sl_buf_puts(b, ",\"upstream\":");
    put_cstring(b, e->upstream);
    if (e->upstream_status)
        sl_buf_printf(b, ",\"upstream_status\":%d", e->upstream_status);
    else
        sl_buf_puts(b, ",\"upstream_status\":null");
    sl_buf_puts(b, ",\"duration_ms\":");
    put_ms(b, e->duration_ms);
    sl_buf_puts(b, ",\"upstream_ms\":");
    if (e->upstream_ms < 0)
        sl_buf_puts(b, "null");
    else
        put_ms(b, e->upstream_ms);
    sl_buf_puts(b, ",\"error\":");
    put_cstring(b, e->error);
    if (e->retries || e->retry_stop) {
        /* Only where a retry policy acted: most lines stay as they were. */
        sl_buf_printf(b, ",\"retries\":%d,\"retry_stop\":", e->retries);
        put_cstring(b, e->retry_stop);
    }
    sl_buf_puts(b, "}\n");
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
    rc = pthread_create(&log->thread, NULL, writer_main, log);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) goto fail_cond;
    pthread_setname_np(log->thread, "sl-access-log");
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

void sl_access_log_write(sl_access_log_t *log, const sl_access_entry_t *e)
{
    sl_buf_t *line = sl_buf_thread_scratch();
    format_entry(line, e);

    int queued = 0;
    pthread_mutex_lock(&log->mu);
    if (log->pending.len + line->len <= QUEUE_LIMIT) {
        /* The writer only sleeps on an empty queue, so only the first line needs to wake it. */
        if (log->pending.len == 0) pthread_cond_signal(&log->cond);
        sl_buf_append(&log->pending, line->data, line->len);
        log->pending_lines++;
        queued = 1;
    }
    pthread_mutex_unlock(&log->mu);
    if (!queued) atomic_fetch_add_explicit(&log->dropped, 1, memory_order_relaxed);

    if (line->cap > SCRATCH_KEEP) sl_buf_free(line);
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

void sl_access_log_close(sl_access_log_t *log)
{
    if (!log) return;
    pthread_mutex_lock(&log->mu);
    log->stopping = 1;
    pthread_cond_signal(&log->cond);
    pthread_mutex_unlock(&log->mu);
    pthread_join(log->thread, NULL);

    if (log->next_fd >= 0) close(log->next_fd);
    if (log->owns_fd) close(log->fd);
    pthread_cond_destroy(&log->cond);
    pthread_mutex_destroy(&log->mu);
    sl_buf_free(&log->pending);
    free(log->path);
    free(log);
}
