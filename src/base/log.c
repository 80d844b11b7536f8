#include "base/log.h"

#include <stdarg.h>
#include <string.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

/* Set by the main thread at start and reload, read by every thread. */
static _Atomic int min_level = SL_LOG_INFO;
static _Atomic int log_format = SL_LOG_TEXT;

void sl_log_set_level(sl_log_level_t level)
{
    atomic_store_explicit(&min_level, (int)level, memory_order_relaxed);
}

void sl_log_set_format(sl_log_format_t format)
{
    atomic_store_explicit(&log_format, (int)format, memory_order_relaxed);
}

/* The message m[0..n) as the inside of a JSON string, into out (room for cap bytes); returns
 * the bytes written. Messages are the gateway's own text, but may quote a client's bytes: every
 * control byte, quote and backslash is escaped, and a byte above 0x7e as \u00XX, so the line
 * is valid JSON whatever it holds. */
static size_t json_inside(const char *m, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)m[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c > 0x7e) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            for (int k = 0; k < 6; k++) out[o++] = e[k];
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

void sl_log(sl_log_level_t level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if ((int)level < atomic_load_explicit(&min_level, memory_order_relaxed)) return;
    char msg[2048], line[2048 * 6 + 128];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t mlen = m < 0 ? 0 : (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
    char stamp[96];
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    size_t len;
    if (atomic_load_explicit(&log_format, memory_order_relaxed) == SL_LOG_JSON) {
        len = (size_t)snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"", stamp, names[level]);
        len += json_inside(msg, mlen, line + len, sizeof(line) - len - 4);
        line[len++] = '"';
        line[len++] = '}';
    } else {
        len = (size_t)snprintf(line, sizeof(line), "%s [%s] ", stamp, names[level]);
        memcpy(line + len, msg, mlen);
        len += mlen;
    }
    line[len++] = '\n';
    /* One fwrite per line keeps lines from different threads whole. */
    fwrite(line, 1, len, stderr);
}
