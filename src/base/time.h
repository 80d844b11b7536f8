/* Clocks and duration parsing. */
#ifndef SL_BASE_TIME_H
#define SL_BASE_TIME_H

#include <stdint.h>

/* Monotonic milliseconds / nanoseconds. */
uint64_t sl_now_ms(void);
uint64_t sl_now_ns(void);
/* Wall-clock milliseconds since the Unix epoch (for logs and status pages, not for timing). */
uint64_t sl_unix_ms(void);
/* Parses "500ms", "10s", "1m", "1h" (also a bare integer of seconds) into milliseconds.
 * Returns 0 on success, -1 when the text is not a duration. */
int sl_parse_duration_ms(const char *s, uint64_t *out_ms);

#endif
