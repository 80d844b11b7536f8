/* RFC 9110 tokens (5.6.2): header names, methods, list elements. One definition for the
 * request parser, the configuration loader and the policies. */
#ifndef SL_BASE_TOKEN_H
#define SL_BASE_TOKEN_H

#include <stddef.h>

/* tchar: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static inline int sl_is_tchar(unsigned char c)
{
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
    if (c >= '0' && c <= '9') return 1;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return 1;
    default:
        return 0;
    }
}

/* Whether s[0..n) is a token: at least one byte, every byte a tchar. */
static inline int sl_is_token(const char *s, size_t n)
{
    if (!n) return 0;
    for (size_t i = 0; i < n; i++)
        if (!sl_is_tchar((unsigned char)s[i])) return 0;
    return 1;
}

#endif
