#include "observe/syslog.h"

#include "base/common.h"
#include "base/log.h"
#include "base/time.h"
#include "base/utf8.h"
#include "base/keeper.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Field limits of RFC 5424 section 6. */
#define HOSTNAME_MAX 255
#define APP_NAME_MAX 48
#define PROCID_MAX 128
#define MSGID_MAX 32
#define SD_NAME_MAX 32

#define DEFAULT_BATCH 64
#define DEFAULT_FLUSH_MS 1000
#define DEFAULT_MAX_QUEUED 10000
#define DEFAULT_CLOSE_MS 2000
/* Wait before trying again after a failed connect or write. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* A connect, or a write that makes no progress, failing after this long by default. */
#define DEFAULT_IO_MS 5000
/* The sender's working buffer is released rather than kept when a burst made it larger. */
#define WORK_KEEP (256u << 10)

static const char BOM[] = "\xef\xbb\xbf";

/* ---- Formatting ---- */

static int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* HOSTNAME, APP-NAME, PROCID and MSGID are printable US-ASCII of limited length. */
static void put_header_field(sl_buf_t *b, const char *s, size_t max)
{
    size_t n = s ? strnlen(s, max) : 0;
    sl_buf_putc(b, ' ');
    if (n == 0) {
        sl_buf_putc(b, '-');
        return;
    }
    sl_buf_reserve(b, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        b->data[b->len++] = c >= 33 && c <= 126 ? (char)c : '_';
    }
    b->data[b->len] = '\0';
}

static void put_timestamp(sl_buf_t *b, uint64_t ms)
{
    struct tm tm;
    time_t secs = (time_t)(ms / 1000);
    /* FULL-DATE has a four-digit year. */
    if (ms == 0 || !gmtime_r(&secs, &tm) || tm.tm_year + 1900 > 9999) {
        sl_buf_putc(b, '-');
        return;
    }
    sl_buf_printf(b, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                  tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
}

/* Writes " MSG" within room bytes. Well-formed UTF-8 with non-ASCII text is MSG-UTF8 (BOM
 * first, cut on a character boundary); anything else is MSG-ANY, cut anywhere. */
static void put_msg(sl_buf_t *b, const char *msg, size_t room)
{
    const unsigned char *u = (const unsigned char *)msg;
    size_t n = strlen(msg);
    int utf8 = 1, ascii = 1;
    for (size_t i = 0; i < n;) {
        size_t len = sl_utf8_seq_len(u + i, n - i);
        if (!len) {
            utf8 = 0;
            break;
        }
        ascii &= len == 1;
        i += len;
    }
    int bom = utf8 && !ascii && !(n >= 3 && memcmp(msg, BOM, 3) == 0);
    size_t need = 1 + (bom ? 3 : 0);
    if (room <= need) return;
    room -= need;
    if (n > room) {
        n = room;
        if (utf8)
            while (n > 0 && (u[n] & 0xc0) == 0x80)
                n--;
    }
    if (n == 0) return;
    sl_buf_putc(b, ' ');
    if (bom) sl_buf_append(b, BOM, 3);
    sl_buf_append(b, msg, n);
}

size_t sl_syslog_format(sl_buf_t *out, const sl_syslog_msg_t *m)
{
    size_t start = out->len;
    sl_buf_printf(out, "<%d>1 ", clamp(m->facility, 0, 23) * 8 + clamp(m->severity, 0, 7));
    put_timestamp(out, m->time_unix_ms);
    put_header_field(out, m->hostname, HOSTNAME_MAX);
    put_header_field(out, m->app_name, APP_NAME_MAX);
    put_header_field(out, m->procid, PROCID_MAX);
    put_header_field(out, m->msgid, MSGID_MAX);
    sl_buf_putc(out, ' ');
    /* Cutting structured data would break its syntax: too long is none at all. */
    size_t sd_len = m->sd ? strnlen(m->sd, SL_SYSLOG_SD_MAX + 1) : 0;
    if (sd_len == 0 || sd_len > SL_SYSLOG_SD_MAX || m->sd[0] != '[')
        sl_buf_putc(out, '-');
    else
        sl_buf_append(out, m->sd, sd_len);
    if (m->msg && *m->msg) put_msg(out, m->msg, SL_SYSLOG_MAX_LEN - (out->len - start));
    return out->len - start;
}

/* SD-NAME: printable US-ASCII except '=', ']' and '"' (space is not printable here). */
static void put_sd_name(char *p, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        p[i] = c >= 33 && c <= 126 && c != '=' && c != ']' && c != '"' ? (char)c : '_';
    }
}

void sl_syslog_sd_init(sl_syslog_sd_t *sd)
{
    sd->len = 0;
    sd->open = 0;
    sd->text[0] = '\0';
}

void sl_syslog_sd_begin(sl_syslog_sd_t *sd, const char *id)
{
    size_t n = id ? strnlen(id, SD_NAME_MAX) : 0;
    sd->open = 0;
    if (n == 0 || sd->len + n + 2 > SL_SYSLOG_SD_MAX) return;
    char *p = sd->text + sd->len;
    p[0] = '[';
    put_sd_name(p + 1, id, n);
    p[n + 1] = ']';
    sd->len += n + 2;
    sd->text[sd->len] = '\0';
    sd->open = 1;
}

/* The element is kept closed at all times: a parameter overwrites its ']' and writes a new
 * one after itself, or puts the old one back when it does not fit. */
void sl_syslog_sd_param(sl_syslog_sd_t *sd, const char *name, const char *value)
{
    static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
    size_t name_len = name ? strnlen(name, SD_NAME_MAX) : 0;
    if (!sd->open || name_len == 0) return;
    char *t = sd->text;
    size_t close = sd->len - 1;
    size_t pos = close;
    /* ' ' name '="' ... '"]' */
    if (pos + name_len + 5 > SL_SYSLOG_SD_MAX) return;
    t[pos++] = ' ';
    put_sd_name(t + pos, name, name_len);
    pos += name_len;
    t[pos++] = '=';
    t[pos++] = '"';
    const unsigned char *u = (const unsigned char *)(value ? value : "");
    size_t n = strlen((const char *)u);
    for (size_t i = 0; i < n;) {
        size_t len = sl_utf8_seq_len(u + i, n - i);
        const char *src = (const char *)u + i;
        size_t w = len;
        int esc = 0;
        if (len == 0) {
            src = replacement;
            w = 3;
            len = 1;
        } else if (u[i] == '"' || u[i] == '\\' || u[i] == ']') {
            esc = 1;
        }
        if (pos + (size_t)esc + w + 2 > SL_SYSLOG_SD_MAX) {
            t[close] = ']';
            t[close + 1] = '\0';
            return;
        }
        if (esc) t[pos++] = '\\';
        memcpy(t + pos, src, w);
        pos += w;
        i += len;
    }
    t[pos++] = '"';
    t[pos++] = ']';
    t[pos] = '\0';
    sd->len = pos;
}

void sl_syslog_sd_paramf(sl_syslog_sd_t *sd, const char *name, const char *fmt, ...)
{
    char value[512];
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(value, sizeof(value), fmt, ap) < 0) value[0] = '\0';
    va_end(ap);
    sl_syslog_sd_param(sd, name, value);
}

const char *sl_syslog_sd_str(const sl_syslog_sd_t *sd)
{
    return sd->text;
}

int sl_syslog_facility(const char *name)
{
    static const char *const names[] = {"kern",   "user",   "mail",   "daemon", "auth",     "syslog",
                                        "lpr",    "news",   "uucp",   "cron",   "authpriv", "ftp",
                                        "ntp",    "audit",  "alert",  "clock",  "local0",   "local1",
                                        "local2", "local3", "local4", "local5", "local6",   "local7"};
    for (size_t i = 0; name && i < SL_ARRAY_LEN(names); i++)
        if (strcmp(name, names[i]) == 0) return (int)i;
    return -1;
}

/* ---- Sender ---- */

/* One destination: the queue, the connection and the thread that drains the one into the
 * other. Shared by every handle with the same host, port and transport. */
typedef struct sink {
    char *host;
    uint16_t port;
    sl_syslog_transport_t transport;
    char *name; /* "host:port/tcp", for the process log */
    struct sockaddr_storage addr;
    socklen_t addr_len;

    pthread_mutex_t mu;
    pthread_cond_t cond; /* wakes the thread: messages, new settings, stop */
    sl_buf_t pending;    /* frames "LEN SP MSG" waiting for the thread (under mu) */
    size_t pending_n;    /* frames in pending (under mu) */
    size_t queued;       /* pending_n plus the frames the thread holds (under mu) */
    uint64_t first_ms;   /* when the oldest pending frame was queued, monotonic (under mu) */
    size_t batch_size, max_queued;
    uint64_t flush_ms, close_ms;
    _Atomic uint64_t io_ms;   /* read by the thread outside mu */
    _Atomic uint64_t stop_at; /* monotonic deadline set by the last close; 0 while open */
    int stop_fd;              /* eventfd the last close writes: wakes the thread from poll */
    _Atomic uint64_t sent, dropped;
} sink_t;

struct sl_syslog {
    sink_t *sink;
    int facility;
    char *app_name;
    char *hostname;
    char procid[24];
};

/* Sinks are kept by host, port and transport (base/keeper.h); stopping counts those whose
 * last handle was closed and whose thread is still flushing, for sl_syslog_shutdown. */
static pthread_mutex_t finished_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t finished_cond = PTHREAD_COND_INITIALIZER;
static size_t stopping; /* under finished_lock */

/* State of the sender thread, on its stack. */
typedef struct sender {
    sink_t *k;
    int fd;          /* socket, -1 when none */
    int stopping;    /* the loop has seen the stop */
    int stop_polled; /* stop_fd fired: it stays readable, so poll it no more */
    int failing;     /* an error was logged; the recovery is logged once */
    sl_buf_t work;   /* frames taken from the queue, oldest first */
    size_t work_n;
    uint64_t backoff_ms, retry_at;
    struct mmsghdr *mm; /* UDP: one per datagram of a write */
    struct iovec *iov;
} sender_t;

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Size of the frame at p and offset of its message. Frames are made by sl_syslog_send. */
static size_t frame_size(const char *p, size_t *msg_off)
{
    size_t n = 0, i = 0;
    while (p[i] != ' ')
        n = n * 10 + (size_t)(p[i++] - '0');
    *msg_off = i + 1;
    return i + 1 + n;
}

/* Bytes of the first count frames at p. */
static size_t frames_bytes(const char *p, size_t count)
{
    size_t bytes = 0, off;
    while (count--)
        bytes += frame_size(p + bytes, &off);
    return bytes;
}

static void report(sender_t *t, const char *what, int err)
{
    if (!t->failing) sl_log_warn("syslog %s: %s: %s", t->k->name, what, strerror(err));
    t->failing = 1;
}

static void recovered(sender_t *t)
{
    if (t->failing) sl_log_info("syslog %s: sending again", t->k->name);
    t->failing = 0;
}

/* Waits up to timeout_ms, and never past the stop deadline, for events on fd. Returns 1 when
 * fd is ready (or has an error to report), 0 when the time is up. */
static int wait_fd(sender_t *t, int fd, short events, uint64_t timeout_ms)
{
    uint64_t deadline = add_sat(sl_now_ms(), timeout_ms);
    for (;;) {
        uint64_t stop_at = atomic_load(&t->k->stop_at);
        uint64_t end = stop_at && stop_at < deadline ? stop_at : deadline;
        uint64_t now = sl_now_ms();
        if (now >= end) return 0;
        struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = t->k->stop_fd, .events = POLLIN}};
        int r = poll(p, t->stop_polled ? 1 : 2, (int)SL_MIN(end - now, (uint64_t)INT_MAX));
        if (r < 0 && errno != EINTR) return 0;
        if (r <= 0) continue;
        if (p[0].revents) return 1;
        t->stop_polled = 1;
    }
}

static void close_socket(sender_t *t)
{
    if (t->fd >= 0) close(t->fd);
    t->fd = -1;
}

static int open_socket(sender_t *t)
{
    sink_t *k = t->k;
    int tcp = k->transport == SL_SYSLOG_TCP;
    int fd = socket(k->addr.ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        report(t, "socket", errno);
        return -1;
    }
    if (tcp && connect(fd, (struct sockaddr *)&k->addr, k->addr_len) < 0) {
        int err = errno;
        if (err == EINPROGRESS || err == EINTR) {
            socklen_t len = sizeof(err);
            if (!wait_fd(t, fd, POLLOUT, atomic_load(&k->io_ms)))
                err = ETIMEDOUT;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
        }
        if (err) {
            report(t, "connect", err);
            close(fd);
            return -1;
        }
    }
    t->fd = fd;
    return 0;
}

/* A collector never sends: a readable connection was closed (or reset) by it, and frames
 * written now would be lost without an error. */
static int peer_gone(int fd)
{
    char buf[256];
    ssize_t r;
    do {
        r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    if (r == 0) return 1;
    return r < 0 && errno != EAGAIN && errno != EWOULDBLOCK;
}

/* Writes p[0..n) on the connection; *done says how much went out, also on failure. Returns 0
 * or an errno value. */
static int write_all(sender_t *t, const char *p, size_t n, size_t *done)
{
    *done = 0;
    while (*done < n) {
        ssize_t w = send(t->fd, p + *done, n - *done, MSG_NOSIGNAL);
        if (w >= 0) {
            *done += (size_t)w;
            continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return errno;
        if (!wait_fd(t, t->fd, POLLOUT, atomic_load(&t->k->io_ms))) return ETIMEDOUT;
    }
    return 0;
}

/* Writes work's frames, batch per write, connecting as needed. Returns the bytes of whole
 * frames written and counts them in *n; stops at the first failure, closing the connection. */
static size_t deliver_tcp(sender_t *t, size_t batch, size_t *n)
{
    const char *d = t->work.data;
    size_t pos = 0, off;
    while (pos < t->work.len) {
        if (t->fd >= 0 && peer_gone(t->fd)) close_socket(t);
        if (t->fd < 0 && open_socket(t) < 0) break;
        size_t end = pos;
        for (size_t i = 0; i < batch && end < t->work.len; i++)
            end += frame_size(d + end, &off);
        size_t done;
        int err = write_all(t, d + pos, end - pos, &done);
        /* Whole frames are sent; a partial one goes again from its start on the next connection,
         * the receiver having discarded it when this one closed (RFC 6587 section 3.4.1). */
        size_t whole = 0;
        while (pos < end) {
            size_t f = frame_size(d + pos, &off);
            if (f > done) break;
            done -= f;
            pos += f;
            whole++;
        }
        atomic_fetch_add_explicit(&t->k->sent, whole, memory_order_relaxed);
        *n += whole;
        if (err) {
            report(t, "write", err);
            close_socket(t);
            break;
        }
        recovered(t);
    }
    return pos;
}

/* Sends work's frames as datagrams, batch per sendmmsg. A datagram the kernel refuses (no
 * route, a firewall) is dropped; one it cannot take yet is waited for. Returns the bytes of the
 * frames done with (sent or dropped) and counts them in *n. */
static size_t deliver_udp(sender_t *t, size_t batch, size_t *n)
{
    sink_t *k = t->k;
    const char *d = t->work.data;
    size_t pos = 0, off;
    if (t->fd < 0 && open_socket(t) < 0) return 0;
    while (pos < t->work.len) {
        unsigned count = 0;
        for (size_t end = pos; count < batch && end < t->work.len; count++) {
            size_t f = frame_size(d + end, &off);
            t->iov[count] = (struct iovec){.iov_base = (char *)d + end + off, .iov_len = f - off};
            t->mm[count].msg_hdr = (struct msghdr){
                .msg_name = &k->addr, .msg_namelen = k->addr_len, .msg_iov = &t->iov[count], .msg_iovlen = 1};
            end += f;
        }
        int r = sendmmsg(t->fd, t->mm, count, 0);
        if (r > 0) {
            for (int i = 0; i < r; i++)
                pos += frame_size(d + pos, &off);
            atomic_fetch_add_explicit(&k->sent, (uint64_t)r, memory_order_relaxed);
            *n += (size_t)r;
            recovered(t);
            continue;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(t, t->fd, POLLOUT, atomic_load(&k->io_ms))) continue;
            break;
        }
        report(t, "send", errno);
        pos += frame_size(d + pos, &off);
        atomic_fetch_add_explicit(&k->dropped, 1, memory_order_relaxed);
        (*n)++;
    }
    return pos;
}

/* Delivers what it can of work and removes it; returns how many frames were removed. */
static size_t deliver(sender_t *t, size_t batch)
{
    size_t n = 0;
    size_t pos = t->k->transport == SL_SYSLOG_TCP ? deliver_tcp(t, batch, &n) : deliver_udp(t, batch, &n);
    memmove(t->work.data, t->work.data + pos, t->work.len - pos);
    t->work.len -= pos;
    t->work_n -= n;
    if (t->work.len == 0 && t->work.cap > WORK_KEEP) sl_buf_free(&t->work);
    return n;
}

static void wait_until(sink_t *k, uint64_t when_ms)
{
    if (when_ms == UINT64_MAX) {
        pthread_cond_wait(&k->cond, &k->mu);
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)(when_ms / 1000), .tv_nsec = (long)(when_ms % 1000) * 1000000};
    pthread_cond_timedwait(&k->cond, &k->mu, &ts);
}

static void sink_free(sink_t *k)
{
    pthread_cond_destroy(&k->cond);
    pthread_mutex_destroy(&k->mu);
    close(k->stop_fd);
    sl_buf_free(&k->pending);
    free(k->name);
    free(k->host);
    free(k);
}

static void *sender_main(void *arg)
{
    sender_t t = {.k = arg, .fd = -1, .backoff_ms = BACKOFF_MIN_MS};
    sink_t *k = t.k;
    if (k->transport == SL_SYSLOG_UDP) {
        t.mm = sl_xcalloc(SL_SYSLOG_BATCH_MAX, sizeof(*t.mm));
        t.iov = sl_xcalloc(SL_SYSLOG_BATCH_MAX, sizeof(*t.iov));
    }

    pthread_mutex_lock(&k->mu);
    for (;;) {
        uint64_t now = sl_now_ms();
        uint64_t stop_at = atomic_load(&k->stop_at);
        if (stop_at && !t.stopping) {
            /* The collector may be back: the stop is worth one more try before its deadline. */
            t.stopping = 1;
            t.retry_at = now;
        }
        if (stop_at && (now >= stop_at || (k->pending_n == 0 && t.work_n == 0))) break;

        uint64_t wake;
        if (t.work_n > 0)
            wake = t.retry_at;
        else if (k->pending_n == 0)
            wake = UINT64_MAX;
        else if (stop_at || k->pending_n >= k->batch_size)
            wake = now;
        else
            wake = add_sat(k->first_ms, k->flush_ms);
        if (stop_at && wake > stop_at) wake = stop_at;
        if (wake > now) {
            wait_until(k, wake);
            continue;
        }

        /* Woken by a full batch, the thread takes whole batches only; the rest waits for its
         * own batch or the interval. A retry, the interval or the stop takes everything. */
        size_t take = k->pending_n;
        if (!stop_at && t.work_n == 0 && now < add_sat(k->first_ms, k->flush_ms)) take -= take % k->batch_size;
        if (take < k->pending_n) {
            size_t bytes = frames_bytes(k->pending.data, take);
            sl_buf_append(&t.work, k->pending.data, bytes);
            memmove(k->pending.data, k->pending.data + bytes, k->pending.len - bytes);
            k->pending.len -= bytes;
        } else if (t.work.len == 0) {
            sl_buf_t tmp = t.work;
            t.work = k->pending;
            k->pending = tmp;
        } else {
            sl_buf_append(&t.work, k->pending.data, k->pending.len);
            k->pending.len = 0;
        }
        t.work_n += take;
        k->pending_n -= take;
        size_t batch = k->batch_size;
        pthread_mutex_unlock(&k->mu);

        size_t done = deliver(&t, batch);

        pthread_mutex_lock(&k->mu);
        k->queued -= done;
        if (t.work_n > 0) {
            t.retry_at = add_sat(sl_now_ms(), t.backoff_ms);
            t.backoff_ms = SL_MIN(t.backoff_ms * 2, BACKOFF_MAX_MS);
        } else {
            t.backoff_ms = BACKOFF_MIN_MS;
        }
    }
    size_t lost = k->queued;
    pthread_mutex_unlock(&k->mu);

    if (lost) {
        atomic_fetch_add_explicit(&k->dropped, lost, memory_order_relaxed);
        sl_log_warn("syslog %s: %zu messages not sent before close", k->name, lost);
    }
    close_socket(&t);
    sl_buf_free(&t.work);
    free(t.mm);
    free(t.iov);
    sink_free(k);

    pthread_mutex_lock(&finished_lock);
    stopping--;
    pthread_cond_broadcast(&finished_cond);
    pthread_mutex_unlock(&finished_lock);
    return NULL;
}

/* Tells the thread to flush for up to close_ms and finish; it frees k. */
static void sink_stop(sink_t *k)
{
    pthread_mutex_lock(&finished_lock);
    stopping++;
    pthread_mutex_unlock(&finished_lock);
    /* Under mu: the thread cannot see the stop, finish and free k before this returns. */
    pthread_mutex_lock(&k->mu);
    atomic_store(&k->stop_at, SL_MAX(add_sat(sl_now_ms(), k->close_ms), 1));
    eventfd_write(k->stop_fd, 1);
    pthread_cond_signal(&k->cond);
    pthread_mutex_unlock(&k->mu);
}

/* Applies the queue settings of cfg, the latest open's. */
static void sink_configure(sink_t *k, const sl_syslog_cfg_t *cfg)
{
    pthread_mutex_lock(&k->mu);
    k->batch_size = cfg->batch_size ? SL_MIN(cfg->batch_size, SL_SYSLOG_BATCH_MAX) : DEFAULT_BATCH;
    k->flush_ms = cfg->flush_interval_ms ? cfg->flush_interval_ms : DEFAULT_FLUSH_MS;
    k->max_queued = cfg->max_queued ? cfg->max_queued : DEFAULT_MAX_QUEUED;
    k->close_ms = cfg->close_timeout_ms ? cfg->close_timeout_ms : DEFAULT_CLOSE_MS;
    atomic_store(&k->io_ms, cfg->io_timeout_ms ? cfg->io_timeout_ms : DEFAULT_IO_MS);
    /* A smaller batch or interval may make what is waiting due now. */
    pthread_cond_signal(&k->cond);
    pthread_mutex_unlock(&k->mu);
}

static int resolve(const sl_syslog_cfg_t *cfg, struct sockaddr_storage *out, socklen_t *out_len)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = cfg->transport == SL_SYSLOG_TCP ? SOCK_STREAM : SOCK_DGRAM,
        .ai_flags = AI_NUMERICSERV,
    };
    char service[8];
    snprintf(service, sizeof(service), "%u", (unsigned)cfg->port);
    struct addrinfo *res;
    int rc = getaddrinfo(cfg->host, service, &hints, &res);
    if (rc != 0) {
        sl_log_error("syslog %s: %s", cfg->host, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *out_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* What a new sink is made from: the settings and the address resolved from them. */
typedef struct sink_settings {
    const sl_syslog_cfg_t *cfg;
    struct sockaddr_storage addr;
    socklen_t addr_len;
} sink_settings_t;

static void *sink_new(const void *settings)
{
    const sink_settings_t *ss = settings;
    const sl_syslog_cfg_t *cfg = ss->cfg;
    sink_t *k = sl_xcalloc(1, sizeof(*k));
    k->host = sl_xstrdup(cfg->host);
    k->port = cfg->port;
    k->transport = cfg->transport;
    k->addr = ss->addr;
    k->addr_len = ss->addr_len;
    const char *tr = cfg->transport == SL_SYSLOG_TCP ? "tcp" : "udp";
    size_t name_len = strlen(cfg->host) + 16;
    k->name = sl_xmalloc(name_len);
    snprintf(k->name, name_len, strchr(cfg->host, ':') ? "[%s]:%u/%s" : "%s:%u/%s", cfg->host, (unsigned)cfg->port, tr);
    atomic_init(&k->stop_at, 0);
    atomic_init(&k->sent, 0);
    atomic_init(&k->dropped, 0);
    atomic_init(&k->io_ms, DEFAULT_IO_MS);

    int rc;
    k->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (k->stop_fd < 0) {
        rc = errno;
        goto fail_name;
    }
    rc = pthread_mutex_init(&k->mu, NULL);
    if (rc != 0) goto fail_fd;
    /* Deadlines are monotonic (sl_now_ms), so is the condition's clock. */
    pthread_condattr_t ca;
    rc = pthread_condattr_init(&ca);
    if (rc != 0) goto fail_mutex;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&k->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) goto fail_mutex;
    sink_configure(k, cfg);

    /* Detached: after the last close the thread flushes and frees the sink on its own, so no
     * caller (a worker dropping an old configuration) waits for it. It takes no signals. */
    pthread_attr_t attr;
    rc = pthread_attr_init(&attr);
    if (rc != 0) goto fail_cond;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t thread;
    rc = pthread_create(&thread, &attr, sender_main, k);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) goto fail_cond;
    pthread_setname_np(thread, "sl-syslog");
    return k;

fail_cond:
    pthread_cond_destroy(&k->cond);
fail_mutex:
    pthread_mutex_destroy(&k->mu);
fail_fd:
    close(k->stop_fd);
fail_name:
    sl_log_error("syslog %s: %s", k->name, strerror(rc));
    free(k->name);
    free(k->host);
    free(k);
    return NULL;
}

/* The last handle is closed: the thread flushes, then frees the sink. */
static void sink_destroy(void *state)
{
    sink_stop(state);
}

/* Made and stopped under the keeper's lock, which neither does long: the name is resolved
 * before (see sl_syslog_open) and the final flush is the thread's. */
static const sl_keep_type_t sink_type = {.name = "syslog sender", .create = sink_new, .destroy = sink_destroy};

sl_syslog_t *sl_syslog_open(const sl_syslog_cfg_t *cfg)
{
    if (!cfg->host || !*cfg->host || cfg->port == 0) {
        sl_log_error("syslog: a host and a port are required");
        return NULL;
    }
    if (cfg->facility < 0 || cfg->facility > 23 ||
        (cfg->transport != SL_SYSLOG_UDP && cfg->transport != SL_SYSLOG_TCP)) {
        sl_log_error("syslog %s: facility must be 0..23 and the transport udp or tcp", cfg->host);
        return NULL;
    }

    /* The host, its NUL, then port and transport. */
    size_t host_len = strlen(cfg->host) + 1, key_size = host_len + 16;
    char *key = sl_xmalloc(key_size);
    memcpy(key, cfg->host, host_len);
    size_t key_len = host_len + (size_t)snprintf(key + host_len, key_size - host_len, "%u/%d", (unsigned)cfg->port,
                                                 (int)cfg->transport);
    sink_t *k = sl_keep_find(&sink_type, key, key_len, NULL);
    if (!k) {
        /* Resolved outside the keeper's lock: a close on a worker must not wait for DNS. */
        sink_settings_t ss = {.cfg = cfg};
        if (resolve(cfg, &ss.addr, &ss.addr_len) == 0) k = sl_keep_get(&sink_type, key, key_len, &ss);
    }
    free(key);
    if (!k) return NULL;
    /* The latest open's queue settings apply (a fresh sink has them already). */
    sink_configure(k, cfg);

    sl_syslog_t *s = sl_xcalloc(1, sizeof(*s));
    s->sink = k;
    s->facility = cfg->facility;
    s->app_name = sl_xstrdup(cfg->app_name ? cfg->app_name : "sluice");
    if (cfg->hostname) {
        s->hostname = sl_xstrdup(cfg->hostname);
    } else {
        char host[HOSTNAME_MAX + 1];
        if (gethostname(host, sizeof(host)) != 0) host[0] = '\0';
        host[HOSTNAME_MAX] = '\0';
        s->hostname = sl_xstrdup(host);
    }
    snprintf(s->procid, sizeof(s->procid), "%ld", (long)getpid());
    return s;
}

void sl_syslog_send(sl_syslog_t *s, int severity, const char *msgid, const char *sd, const char *msg)
{
    sl_syslog_msg_t m = {
        .facility = s->facility,
        .severity = severity,
        .time_unix_ms = sl_unix_ms(),
        .hostname = s->hostname,
        .app_name = s->app_name,
        .procid = s->procid,
        .msgid = msgid,
        .sd = sd,
        .msg = msg,
    };
    sl_buf_t *b = sl_buf_thread_scratch();
    size_t n = sl_syslog_format(b, &m);
    /* Queued as the TCP frame (RFC 6587 octet counting); UDP skips the length. */
    char len[16];
    int len_n = snprintf(len, sizeof(len), "%zu ", n);
    uint64_t now = sl_now_ms();

    sink_t *k = s->sink;
    int queued = 0;
    pthread_mutex_lock(&k->mu);
    if (k->queued < k->max_queued) {
        sl_buf_append(&k->pending, len, (size_t)len_n);
        sl_buf_append(&k->pending, b->data, n);
        k->queued++;
        /* The thread sleeps untimed on an empty queue, and timed while a batch fills. */
        if (++k->pending_n == 1) {
            k->first_ms = now;
            pthread_cond_signal(&k->cond);
        } else if (k->pending_n == k->batch_size) {
            pthread_cond_signal(&k->cond);
        }
        queued = 1;
    }
    pthread_mutex_unlock(&k->mu);
    if (!queued) atomic_fetch_add_explicit(&k->dropped, 1, memory_order_relaxed);
}

uint64_t sl_syslog_dropped(const sl_syslog_t *s)
{
    return atomic_load_explicit(&s->sink->dropped, memory_order_relaxed);
}

uint64_t sl_syslog_sent(const sl_syslog_t *s)
{
    return atomic_load_explicit(&s->sink->sent, memory_order_relaxed);
}

void sl_syslog_close(sl_syslog_t *s)
{
    if (!s) return;
    sl_keep_release(s->sink);
    free(s->app_name);
    free(s->hostname);
    free(s);
}

void sl_syslog_shutdown(void)
{
    pthread_mutex_lock(&finished_lock);
    while (stopping > 0)
        pthread_cond_wait(&finished_cond, &finished_lock);
    pthread_mutex_unlock(&finished_lock);
}
