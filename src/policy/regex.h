/* PCRE2 for path_rewrite: compile once per generation, substitute with $1.. groups. */
#ifndef SL_POLICY_REGEX_H
#define SL_POLICY_REGEX_H

#include <stddef.h>

#include "base/buf.h"

typedef struct sl_regex sl_regex_t;

/* Returns 0 when pattern compiles, else -1 with the reason and offset in why. */
int sl_regex_check(const char *pattern, char *why, size_t why_size);

/* Compiles pattern (already checked); NULL on failure. */
sl_regex_t *sl_regex_compile(const char *pattern);
void sl_regex_free(sl_regex_t *re);

/* Replaces the first match of re in subject[0..len) by replacement ($1.. are groups), into out
 * (grown as needed). Returns 1, 0 when nothing matched, -1 when the substitution failed.
 * Thread-safe (match data per call). */
int sl_regex_replace(const sl_regex_t *re, const char *subject, size_t len, const char *replacement, sl_buf_t *out);

#endif
