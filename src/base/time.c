#include "base/time.h"

#include <ctype.h>
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

int sl_parse_duration_ms(const char *s, uint64_t *out_ms)
{
    if (!s || !isdigit((unsigned char)*s)) return -1;
    uint64_t v = 0;
    while (isdigit((unsigned char)*s)) {
        if (v > UINT64_MAX / 10 - 10) return -1;
        v = v * 10 + (uint64_t)(*s++ - '0');
    }
    uint64_t mult;
    if (!*s || strcmp(s, "s") == 0) mult = 1000;
    else if (strcmp(s, "ms") == 0) mult = 1;
    else if (strcmp(s, "m") == 0) mult = 60000;
    else if (strcmp(s, "h") == 0) mult = 3600000;
    else return -1;
    if (v > UINT64_MAX / mult) return -1;
    *out_ms = v * mult;
    return 0;
}
