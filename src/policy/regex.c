#define PCRE2_CODE_UNIT_WIDTH 8
#include "policy/regex.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_regex {
    pcre2_code *code;
};

int sl_regex_check(const char *pattern, char *why, size_t why_size)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
    if (code) {
        pcre2_code_free(code);
        return 0;
    }
    PCRE2_UCHAR msg[120];
    pcre2_get_error_message(err, msg, sizeof(msg));
    snprintf(why, why_size, "invalid regular expression at offset %zu: %s", (size_t)off, (const char *)msg);
    return -1;
}

sl_regex_t *sl_regex_compile(const char *pattern)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
    if (!code) return NULL;
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* a faster match where the JIT is available */
    sl_regex_t *re = malloc(sizeof(*re));
    if (!re) {
        pcre2_code_free(code);
        return NULL;
    }
    re->code = code;
    return re;
}

void sl_regex_free(sl_regex_t *re)
{
    if (!re) return;
    pcre2_code_free(re->code);
    free(re);
}

long sl_regex_replace(const sl_regex_t *re, const char *subject, size_t len, const char *replacement, char *out,
                      size_t out_size)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!md) return -1;
    PCRE2_SIZE n = out_size;
    int rc = pcre2_substitute(re->code, (PCRE2_SPTR)subject, len, 0, 0, md, NULL, (PCRE2_SPTR)replacement,
                              PCRE2_ZERO_TERMINATED, (PCRE2_UCHAR *)out, &n);
    pcre2_match_data_free(md);
    if (rc < 0) return -1;
    return rc == 0 ? 0 : (long)n;
}
