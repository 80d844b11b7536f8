#include "base/time.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <time.h>

uint64_t sl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t sl_now_ms(void)
{
    return sl_now_ns() / 1000000u;
}

uint64_t sl_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads the number of one component ("12", "1.5": digits, then optionally '.' and digits).
 * Returns the end of the number, or NULL; its value is *whole + *frac / 10^*frac_digits, where
 * *frac_digits > 9 means digits finer than a nanosecond of the unit (never a whole millisecond). */
static const char *duration_number(const char *s, uint64_t *whole, uint64_t *frac, int *frac_digits)
{
    if (!isdigit((unsigned char)*s)) return NULL;
    uint64_t w = 0;
    for (; isdigit((unsigned char)*s); s++) {
        if (w > (UINT64_MAX - 9) / 10)
            w = UINT64_MAX; /* saturate: reported as out of range */
        else
            w = w * 10 + (uint64_t)(*s - '0');
    }
    uint64_t f = 0;
    int fd = 0;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s)) return NULL;
        for (; isdigit((unsigned char)*s); s++) {
            if (fd == 9) {
                if (*s != '0') fd = 10; /* finer than anything a millisecond count can hold */
                continue;
            }
            if (fd < 9) f = f * 10 + (uint64_t)(*s - '0'), fd++;
        }
    }
    *whole = w;
    *frac = f;
    *frac_digits = fd;
    return s;
}

int sl_parse_duration_ms(const char *s, uint64_t *out_ms)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {{"h", 3600000}, {"ms", 1}, {"m", 60000}, {"s", 1000}};
    /* Rank of each unit above, largest first: compound durations go from large to small. */
    static const int rank[] = {0, 3, 1, 2};
    if (!s || !*s) return -EINVAL;
    if (*s == '-' || *s == '+') return *s == '-' && isdigit((unsigned char)s[1]) ? -ERANGE : -EINVAL;
    uint64_t total_us = 0; /* microseconds, so decimals are exact before the millisecond check */
    int last_rank = -1;
    int first = 1;
    while (*s) {
        uint64_t whole, frac;
        int fd;
        const char *p = duration_number(s, &whole, &frac, &fd);
        if (!p) return -EINVAL;
        uint64_t unit_ms;
        int r;
        if (!*p && first) {
            unit_ms = 1000; /* a bare number counts seconds */
            r = 3;
        } else {
            size_t u;
            for (u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
                size_t n = strlen(units[u].name);
                /* "m" must not take the "m" of "ms". */
                if (!strncmp(p, units[u].name, n) && !(n == 1 && p[0] == 'm' && p[1] == 's')) break;
            }
            if (u == sizeof(units) / sizeof(units[0])) return -EINVAL;
            unit_ms = units[u].ms;
            r = rank[u];
            p += strlen(units[u].name);
        }
        if (r <= last_rank) return -EINVAL; /* "1s1m", "1m1m": each unit once, largest first */
        last_rank = r;
        first = 0;
        if (fd > 9) return -EDOM;
        /* whole * unit, in microseconds, with overflow checks. */
        uint64_t unit_us = unit_ms * 1000;
        if (whole > UINT64_MAX / unit_us) return -ERANGE;
        uint64_t us = whole * unit_us;
        /* frac / 10^fd of the unit, exactly, in microseconds: frac < 10^9 and a unit is at
         * most 3.6e6 ms, so frac * unit_ms * 1000 < 3.6e18 fits in 64 bits. */
        uint64_t pow10 = 1;
        for (int i = 0; i < fd; i++)
            pow10 *= 10;
        uint64_t num = frac * unit_ms * 1000;
        if (num % pow10) return -EDOM;
        uint64_t fus = num / pow10;
        if (us > UINT64_MAX - fus) return -ERANGE;
        us += fus;
        if (total_us > UINT64_MAX - us) return -ERANGE;
        total_us += us;
        s = p;
    }
    if (total_us % 1000) return -EDOM;
    *out_ms = total_us / 1000;
    return 0;
}
