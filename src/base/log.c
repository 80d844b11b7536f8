#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static sl_log_level_t min_level = SL_LOG_INFO;

void sl_log_set_level(sl_log_level_t level)
{
    min_level = level;
}

void sl_log(sl_log_level_t level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < min_level) return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%s] ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : ((size_t)m < sizeof(line) - (size_t)n - 2 ? (size_t)m : sizeof(line) - (size_t)n - 2));
    line[len++] = '\n';
    /* One fwrite per line keeps lines from different threads whole. */
    fwrite(line, 1, len, stderr);
}
