/* The Set-Cookie rewriting behind the cookie_rewrite policy: a pure function over upstream
 * bytes, called by the policy for each Set-Cookie header, and directly by tests and the fuzzer. */
#ifndef SL_POLICY_COOKIE_REWRITE_H
#define SL_POLICY_COOKIE_REWRITE_H

#include <stddef.h>

#include "base/buf.h"
#include "config/config.h"

/* Rewrites one Set-Cookie value (what follows "Set-Cookie:") by the rule among rules[0..n) that
 * names its cookie (exact, case-sensitive). Domain, Path and SameSite are replaced where present
 * (the first one in place, any later ones dropped, so one value is left) or appended; Secure is
 * appended when absent (secure 1) or every Secure is dropped (secure 0). Attribute names match
 * regardless of case; every other byte, the name=value pair and the other attributes in their
 * order, is kept as it was.
 *
 * Appends the new value to out and returns 1; returns 0 and appends nothing when no rule names
 * the cookie or the value is not a cookie (no '=' before the first ';'). The result is a fixed
 * point: rewriting it again gives the same bytes. */
int sl_cookie_rewrite(const sl_cookie_rule_t *rules, size_t n, const char *value, size_t len, sl_buf_t *out);

#endif
