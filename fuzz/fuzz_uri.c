/* libFuzzer target: sl_path_normalize() and sl_host_normalize() on arbitrary bytes. The first
 * byte picks the path flags (bits 0-1); the rest is both the path and the host.
 *
 * The path result is checked against a separate, literal reading of RFC 3986: decode the
 * unreserved escapes byte by byte, collapse slash runs (unless kept), then run 5.2.4's
 * remove_dot_segments on a string with its five rules as written, and call it "above root" when
 * rule C finds nothing to remove. Both must accept and refuse the same inputs and give the same
 * bytes. The result must hold only bytes a path may carry, and normalise to itself.
 *
 * An accepted host must be lower-case name bytes or a bracketed IPv6 literal, hold no byte the
 * input could smuggle (space, '@', '/', ','), have a port in 0..65535 or none, and normalise to
 * itself. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) abort();                                                                                          \
    } while (0)

static int hexv(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int unreserved(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c && strchr("-._~", c));
}

static int pchar_raw(uint8_t c)
{
    return c && (unreserved(c) || strchr("!$&'()*+,;=:@", c) != NULL);
}

/* The reference. Returns 0 and the path in out (a buffer of at least n + 1 bytes), 1 when the
 * bytes themselves are refused, 2 when only the dot segments are (above the root). */
static int reference(const uint8_t *in, size_t n, unsigned flags, char *out, size_t *out_len)
{
    static const char up[] = "0123456789ABCDEF";
    if (n == 0) {
        out[0] = '/';
        *out_len = 1;
        return 0;
    }
    if (in[0] != '/') return 1;
    char *d = malloc(n + 1), *o = out;
    size_t dn = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = in[i];
        if (c == '/') {
            if (!(flags & SL_PATH_KEEP_SLASHES) && dn && d[dn - 1] == '/') {
                i++;
                continue;
            }
            d[dn++] = '/';
            i++;
        } else if (c == '%') {
            if (i + 2 >= n || hexv(in[i + 1]) < 0 || hexv(in[i + 2]) < 0) goto refused;
            int v = hexv(in[i + 1]) * 16 + hexv(in[i + 2]);
            if (v == 0) goto refused;
            if ((v == '/' || v == '\\') && !(flags & SL_PATH_KEEP_ESCAPED_SLASHES)) goto refused;
            if (unreserved((uint8_t)v)) {
                d[dn++] = (char)v;
            } else {
                d[dn++] = '%';
                d[dn++] = up[v >> 4];
                d[dn++] = up[v & 15];
            }
            i += 3;
        } else if (pchar_raw(c)) {
            d[dn++] = (char)c;
            i++;
        } else {
            goto refused;
        }
    }

    /* RFC 3986 5.2.4, rule by rule, on d[p..dn) into o. */
    size_t p = 0, on = 0;
#define STARTS(s) (dn - p >= strlen(s) && memcmp(d + p, s, strlen(s)) == 0)
#define IS(s) (dn - p == strlen(s) && memcmp(d + p, s, strlen(s)) == 0)
    while (p < dn) {
        if (STARTS("../"))
            p += 3;
        else if (STARTS("./"))
            p += 2;
        else if (STARTS("/./"))
            p += 2;
        else if (IS("/."))
            d[p + 1] = '/', p += 1;
        else if (STARTS("/../") || IS("/..")) {
            if (on == 0) {
                free(d);
                return 2;
            }
            if (IS("/.."))
                p += 2, d[p] = '/';
            else
                p += 3;
            while (on && o[on - 1] != '/')
                on--;
            if (on) on--;
        } else if (IS(".") || IS("..")) {
            p = dn;
        } else { /* E (A and D never apply: the input keeps its leading '/') */
            size_t q = p + 1;
            while (q < dn && d[q] != '/')
                q++;
            memcpy(o + on, d + p, q - p);
            on += q - p;
            p = q;
        }
    }
#undef STARTS
#undef IS
    free(d);
    *out_len = on;
    return 0;
refused:
    free(d);
    return 1;
}

static void check_path_bytes(const char *p, size_t n, unsigned flags)
{
    CHECK(n >= 1 && p[0] == '/');
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)p[i];
        if (c == '%') {
            CHECK(i + 2 < n);
            int hi = hexv((uint8_t)p[i + 1]), lo = hexv((uint8_t)p[i + 2]);
            CHECK(hi >= 0 && lo >= 0);
            CHECK(!(p[i + 1] >= 'a' && p[i + 1] <= 'f') && !(p[i + 2] >= 'a' && p[i + 2] <= 'f'));
            int v = hi * 16 + lo;
            CHECK(v != 0 && !unreserved((uint8_t)v));
            if (!(flags & SL_PATH_KEEP_ESCAPED_SLASHES)) CHECK(v != '/' && v != '\\');
            i += 2;
        } else {
            CHECK(c == '/' || pchar_raw(c));
        }
        if (c == '/' && !(flags & SL_PATH_KEEP_SLASHES)) CHECK(i + 1 == n || p[i + 1] != '/');
    }
    /* no dot segment is left */
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '/') continue;
        size_t j = i + 1;
        while (j < n && p[j] != '/')
            j++;
        size_t len = j - i - 1;
        CHECK(!(len == 1 && p[i + 1] == '.'));
        CHECK(!(len == 2 && p[i + 1] == '.' && p[i + 2] == '.'));
    }
}

static void fuzz_path(const uint8_t *in, size_t n, unsigned flags)
{
    sl_buf_t out = SL_BUF_INIT;
    sl_buf_puts(&out, "x"); /* the function appends: what is there stays */
    const char *why = NULL;
    int rc = sl_path_normalize((const char *)in, n, &out, flags, &why);

    char *ref = malloc(n + 1);
    size_t ref_len = 0;
    int want = reference(in, n, flags, ref, &ref_len);
    if (want == 0) {
        CHECK(rc == 0);
        CHECK(out.len - 1 == ref_len && memcmp(out.data + 1, ref, ref_len) == 0);
    } else {
        CHECK(rc == -EINVAL && why != NULL);
        CHECK(out.len == 1);
        if (want == 2) CHECK(strcmp(why, "path_above_root") == 0);
    }
    free(ref);
    CHECK(out.data[0] == 'x');

    if (rc == 0) {
        const char *p = out.data + 1;
        size_t pn = out.len - 1;
        CHECK(p[pn] == '\0');
        CHECK(pn <= (n ? n : 1));
        check_path_bytes(p, pn, flags);
        sl_buf_t again = SL_BUF_INIT;
        CHECK(sl_path_normalize(p, pn, &again, flags, NULL) == 0);
        CHECK(again.len == pn && memcmp(again.data, p, pn) == 0);
        sl_buf_free(&again);
    }
    sl_buf_free(&out);
}

static void fuzz_host(const uint8_t *in, size_t n)
{
    size_t cap = SL_HOST_OUT_CAP(n);
    char *out = malloc(cap);
    size_t len = 0;
    int port = -2;
    int rc = sl_host_normalize((const char *)in, n, out, cap, &len, &port);
    CHECK(rc == 0 || rc == -EINVAL);
    if (rc == 0) {
        CHECK(len >= 1 && len < cap && out[len] == '\0');
        CHECK(port >= -1 && port <= 65535);
        for (size_t i = 0; i < n; i++)
            CHECK(in[i] != ' ' && in[i] != '\t' && in[i] != '@' && in[i] != '/' && in[i] != ',');
        if (out[0] == '[') {
            CHECK(len >= 4 && out[len - 1] == ']');
            for (size_t i = 1; i + 1 < len; i++)
                CHECK((out[i] >= '0' && out[i] <= '9') || (out[i] >= 'a' && out[i] <= 'f') || out[i] == ':' ||
                      out[i] == '.');
        } else {
            CHECK(out[0] != '.' && out[len - 1] != '.');
            for (size_t i = 0; i < len; i++) {
                char c = out[i];
                CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.');
                if (c == '.') CHECK(out[i + 1] != '.');
            }
        }
        char *again = malloc(SL_HOST_OUT_CAP(len));
        size_t alen = 0;
        int aport = -2;
        CHECK(sl_host_normalize(out, len, again, SL_HOST_OUT_CAP(len), &alen, &aport) == 0);
        CHECK(alen == len && memcmp(again, out, len) == 0 && aport == -1);
        /* one byte short of room is -ENOSPC, never an overrun */
        CHECK(sl_host_normalize((const char *)in, n, again, len - 1, &alen, NULL) == -ENOSPC);
        free(again);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned flags = data[0] & 3;
    fuzz_path(data + 1, size - 1, flags);
    fuzz_host(data + 1, size - 1);
    return 0;
}
