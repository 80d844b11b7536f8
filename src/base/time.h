/* Clocks and duration parsing. */
#ifndef SL_BASE_TIME_H
#define SL_BASE_TIME_H

#include <stdint.h>

/* Monotonic milliseconds / nanoseconds. */
uint64_t sl_now_ms(void);
uint64_t sl_now_ns(void);
/* Wall-clock milliseconds since the Unix epoch (for logs and status pages, not for timing). */
uint64_t sl_unix_ms(void);
/* The one duration grammar of the configuration (docs/configuration.md, "Durations"):
 *   duration  = number | component+          component = number unit
 *   number    = digits [ "." digits ]         unit      = "h" | "m" | "s" | "ms"
 * Components go from the largest unit to the smallest, each unit at most once ("1h30m",
 * "1m30s", "1.5s", "250ms"); a bare number counts seconds ("30", "0.1"). The result must be a
 * whole number of milliseconds. Writes *out_ms and returns 0; -EINVAL when s is not a duration,
 * -ERANGE when it is negative or too large for 64 bits of milliseconds, -EDOM when it is finer
 * than a millisecond ("0.5ms"). */
int sl_parse_duration_ms(const char *s, uint64_t *out_ms);

#endif
