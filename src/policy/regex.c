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

int sl_regex_replace(const sl_regex_t *re, const char *subject, size_t len, const char *replacement, sl_buf_t *out)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!md) return -1;
    int rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        sl_buf_reserve(out, len + strlen(replacement) + 64);
        PCRE2_SIZE n = out->cap - out->len;
        /* On overflow pcre2 reports the length it needs: grow once and go again. */
        rc = pcre2_substitute(re->code, (PCRE2_SPTR)subject, len, 0, PCRE2_SUBSTITUTE_OVERFLOW_LENGTH, md, NULL,
                              (PCRE2_SPTR)replacement, PCRE2_ZERO_TERMINATED, (PCRE2_UCHAR *)out->data + out->len, &n);
        if (rc == PCRE2_ERROR_NOMEMORY) {
            sl_buf_reserve(out, n + 1);
            continue;
        }
        if (rc > 0) out->len += n;
        break;
    }
    pcre2_match_data_free(md);
    return rc < 0 ? -1 : rc > 0;
}
