/* UTF-8 validation (RFC 3629), shared by the log formats that must stay well-formed. */
#ifndef SL_BASE_UTF8_H
#define SL_BASE_UTF8_H

#include <stddef.h>

/* Length of the well-formed UTF-8 sequence at s (1..4 bytes, n > 0 available), or 0 when it
 * is not one: overlong forms, surrogates and code points above U+10FFFF are rejected. */
size_t sl_utf8_seq_len(const unsigned char *s, size_t n);

#endif
