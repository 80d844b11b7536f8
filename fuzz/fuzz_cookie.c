/* libFuzzer target: sl_cookie_rewrite() on arbitrary Set-Cookie values. The first byte picks
 * what the rule for cookie "s" does (the rule for "id" does the opposite); the rest is the
 * value. Checked against a separate, simpler reading of the same bytes:
 * - a value left alone appends nothing, and is either not a cookie or names no rule;
 * - a rewritten value keeps the name=value pair, and every attribute the rule does not own,
 *   byte for byte and in order;
 * - it has each configured attribute exactly once, with the configured value, and Secure as
 *   configured;
 * - it carries no CR, LF or NUL the input did not;
 * - rewriting it again gives the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/cookie_rewrite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) abort();                                                                                          \
    } while (0)

static const char *trimmed(const char *p, const char *end, size_t *len)
{
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) end--;
    *len = (size_t)(end - p);
    return p;
}

/* The attribute a segment names, if the rule owns it: 'D', 'P', 'S' (SameSite), 'C' (Secure), or 0. */
static int owned(const sl_cookie_rule_t *r, const char *seg, const char *end)
{
    const char *eq = memchr(seg, '=', (size_t)(end - seg));
    size_t n;
    const char *name = trimmed(seg, eq ? eq : end, &n);
    if (r->domain && n == 6 && !strncasecmp(name, "domain", 6)) return 'D';
    if (r->path && n == 4 && !strncasecmp(name, "path", 4)) return 'P';
    if (r->samesite && n == 8 && !strncasecmp(name, "samesite", 8)) return 'S';
    if (r->secure != -1 && n == 6 && !strncasecmp(name, "secure", 6)) return 'C';
    return 0;
}

/* Walks the ';' segments after the first: appends those the rule does not own to others (each
 * with its ';'), counts the owned ones and checks their values. */
static void walk(const sl_cookie_rule_t *r, const char *v, size_t len, sl_buf_t *others, int counts[4], int check)
{
    const char *end = v + len, *p = memchr(v, ';', len);
    while (p && p < end) {
        const char *seg = p + 1, *next = memchr(seg, ';', (size_t)(end - seg));
        const char *segend = next ? next : end;
        int k = owned(r, seg, segend);
        if (!k) {
            sl_buf_append(others, p, (size_t)(segend - p));
        } else {
            const char *eq = memchr(seg, '=', (size_t)(segend - seg));
            size_t n = 0;
            const char *val = eq ? trimmed(eq + 1, segend, &n) : NULL;
            const char *want = k == 'D' ? r->domain : k == 'P' ? r->path : k == 'S' ? r->samesite : NULL;
            if (check && want) CHECK(val && n == strlen(want) && memcmp(val, want, n) == 0);
            counts[k == 'D' ? 0 : k == 'P' ? 1 : k == 'S' ? 2 : 3]++;
        }
        p = next;
    }
}

static size_t count_breaks(const char *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += p[i] == '\r' || p[i] == '\n' || p[i] == '\0';
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const char *const samesite[] = {NULL, "Strict", "Lax", "None"};
    uint8_t k = data[0];
    sl_cookie_rule_t rules[2] = {
        {.name = "s",
         .domain = k & 1 ? "example.com" : NULL,
         .path = k & 2 ? "/app" : NULL,
         .secure = (k >> 2) % 3 - 1,
         .samesite = samesite[(k >> 4) & 3]},
        {.name = "id",
         .domain = k & 1 ? NULL : ".example.org",
         .path = k & 2 ? NULL : "/",
         .secure = 1 - (k >> 2) % 3,
         .samesite = samesite[3 - ((k >> 4) & 3)]},
    };
    const char *v = (const char *)data + 1;
    size_t len = size - 1;

    sl_buf_t out = SL_BUF_INIT;
    sl_buf_puts(&out, "x"); /* the function appends: what is there stays */
    int rc = sl_cookie_rewrite(rules, 2, v, len, &out);
    CHECK(rc == 0 || rc == 1);
    CHECK(out.len >= 1 && out.data[0] == 'x');

    const char *semi = memchr(v, ';', len);
    size_t pair = semi ? (size_t)(semi - v) : len;
    const char *eq = memchr(v, '=', pair);
    size_t nlen = 0;
    const char *name = eq ? trimmed(v, eq, &nlen) : NULL;
    const sl_cookie_rule_t *r = NULL;
    for (size_t i = 0; name && i < 2; i++)
        if (nlen == strlen(rules[i].name) && !memcmp(name, rules[i].name, nlen)) r = &rules[i];
    CHECK(rc == (r != NULL));
    if (!rc) {
        CHECK(out.len == 1);
        sl_buf_free(&out);
        return 0;
    }

    const char *res = out.data + 1;
    size_t rlen = out.len - 1;
    CHECK(rlen >= pair && memcmp(res, v, pair) == 0);
    CHECK(count_breaks(res, rlen) <= count_breaks(v, len));

    sl_buf_t in_others = SL_BUF_INIT, out_others = SL_BUF_INIT;
    int in_counts[4] = {0}, out_counts[4] = {0};
    walk(r, v, len, &in_others, in_counts, 0);
    walk(r, res, rlen, &out_others, out_counts, 1);
    CHECK(in_others.len == out_others.len && memcmp(in_others.data, out_others.data, in_others.len) == 0);
    CHECK(out_counts[0] == !!r->domain && out_counts[1] == !!r->path && out_counts[2] == !!r->samesite);
    if (r->secure == 0) CHECK(out_counts[3] == 0);
    if (r->secure == 1) CHECK(out_counts[3] >= 1);

    sl_buf_t again = SL_BUF_INIT;
    CHECK(sl_cookie_rewrite(rules, 2, res, rlen, &again) == 1);
    CHECK(again.len == rlen && memcmp(again.data, res, rlen) == 0);

    sl_buf_free(&again);
    sl_buf_free(&in_others);
    sl_buf_free(&out_others);
    sl_buf_free(&out);
    return 0;
}
