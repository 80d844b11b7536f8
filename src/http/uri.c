#include "http/uri.h"
#include "base/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

/* ---- path ------------------------------------------------------------------------------- */

/* What a raw byte may be in a path (RFC 3986 3.3): pchar minus pct-encoded (OK), '/' (SL), the
 * start of a pct-encoded triplet (PC), or refused (NO). */
enum { NO = 0, OK, SL, PC };

// clang-format off
#define X NO
#define O OK
#define S SL
#define P PC
static const uint8_t path_class[256] = {
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, /* controls */
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, O, X, X, O, P, O, O, O, O, O, O, O, O, O, S, /*  !"#$%&'()*+,-./ */
    O, O, O, O, O, O, O, O, O, O, O, O, X, O, X, X, /* 0-9 :;<=>? */
    O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, /* @A-O */
    O, O, O, O, O, O, O, O, O, O, O, X, X, X, X, O, /* P-Z [\]^_ */
    X, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, /* `a-o */
    O, O, O, O, O, O, O, O, O, O, O, X, X, X, O, X, /* p-z {|}~ DEL */
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, /* 0x80 and up: not in RFC 3986 */
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
};
#undef X
#undef O
#undef S
#undef P
// clang-format on

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

/* The general case: decodes, resolves dot segments and merges slashes while it writes, into o,
 * which has room for n bytes (the output never grows: an escape stays three bytes or becomes
 * one, a dot segment or an empty one only removes). in[0] is '/'. Returns the output length,
 * or 0 with *why set. */
static size_t path_slow(const char *in, size_t n, char *o, unsigned flags, const char **why)
{
    static const char hexdig[] = "0123456789ABCDEF";
    size_t w = 1, seg = 1; /* o[seg..w) is the segment being written */
    o[0] = '/';
    for (size_t i = 1;;) {
        if (i == n || in[i] == '/') {
            size_t len = w - seg;
            if (len == 1 && o[seg] == '.') {
                /* "." goes, the '/' before it stays: "/a/." -> "/a/", "/a/./b" -> "/a/b". */
                w = seg;
            } else if (len == 2 && o[seg] == '.' && o[seg + 1] == '.') {
                /* ".." goes with the segment before it, keeping that one's leading '/'. */
                if (seg == 1) {
                    *why = "path_above_root";
                    return 0;
                }
                w = seg - 1;
                while (o[w - 1] != '/')
                    w--;
                seg = w;
            } else if (i < n && (len > 0 || (flags & SL_PATH_KEEP_SLASHES))) {
                o[w++] = '/';
                seg = w;
            }
            if (i == n) return w;
            i++;
            continue;
        }
        unsigned char c = (unsigned char)in[i];
        switch (path_class[c]) {
        case OK:
            o[w++] = (char)c;
            i++;
            break;
        case PC: {
            int hi = i + 2 < n ? hex_value((unsigned char)in[i + 1]) : -1;
            int lo = i + 2 < n ? hex_value((unsigned char)in[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                *why = "path_bad_escape";
                return 0;
            }
            unsigned char v = (unsigned char)(hi << 4 | lo);
            if (is_unreserved(v)) {
                o[w++] = (char)v;
            } else if (v == 0) {
                *why = "path_encoded_nul";
                return 0;
            } else if ((v == '/' || v == '\\') && !(flags & SL_PATH_KEEP_ESCAPED_SLASHES)) {
                /* The upstream may decode it into a segment boundary the router never saw. */
                *why = "path_encoded_slash";
                return 0;
            } else {
                o[w++] = '%';
                o[w++] = hexdig[hi];
                o[w++] = hexdig[lo];
            }
            i += 3;
            break;
        }
        default:
            *why = "path_bad_char";
            return 0;
        }
    }
}

int sl_path_normalize(const char *in, size_t n, sl_buf_t *out, unsigned flags, const char **err_code)
{
    const char *why = NULL;
    if (n == 0) {
        sl_buf_append(out, "/", 1);
        return 0;
    }
    if (in[0] != '/') {
        why = "path_not_absolute";
        goto fail;
    }
    sl_buf_reserve(out, n + 1);
    char *o = out->data + out->len;

    /* Fast path, what nearly every request is: only plain pchar bytes and single slashes not
     * followed by a dot. Such a path is already its own normal form. Anything else (an escape, a
     * "//", a "/." that may start a dot segment, a byte to refuse) takes the general pass from
     * the start. */
    for (size_t i = 0; i < n; i++) {
        uint8_t k = path_class[(unsigned char)in[i]];
        if (SL_LIKELY(k == OK)) continue;
        if (k == SL && (i + 1 == n || (in[i + 1] != '/' && in[i + 1] != '.'))) continue;
        size_t w = path_slow(in, n, o, flags, &why);
        if (!w) goto fail;
        out->len += w;
        out->data[out->len] = '\0';
        return 0;
    }
    memcpy(o, in, n);
    out->len += n;
    out->data[out->len] = '\0';
    return 0;

fail:
    if (err_code) *err_code = why;
    return -EINVAL;
}

/* ---- host ------------------------------------------------------------------------------- */

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* A label resolvers would read as a number: decimal digits, or "0x" and hex digits. */
static int label_is_numeric(const char *p, size_t n)
{
    size_t i = 0;
    if (n >= 2 && p[0] == '0' && (p[1] | 0x20) == 'x') {
        for (i = 2; i < n; i++)
            if (hex_value((unsigned char)p[i]) < 0) return 0;
        return 1;
    }
    for (; i < n; i++)
        if (!is_digit((unsigned char)p[i])) return 0;
    return n > 0;
}

/* RFC 3986 IPv4address: four dec-octets 0..255, no leading zeros. */
static int is_dotted_quad(const char *p, size_t n)
{
    int parts = 0;
    size_t i = 0;
    while (parts < 4) {
        size_t start = i;
        unsigned v = 0;
        while (i < n && is_digit((unsigned char)p[i]) && i - start < 3)
            v = v * 10 + (unsigned)(p[i++] - '0');
        size_t len = i - start;
        if (len == 0 || v > 255 || (len > 1 && p[start] == '0')) return 0;
        parts++;
        if (parts < 4) {
            if (i == n || p[i] != '.') return 0;
            i++;
        }
    }
    return i == n;
}

/* A name: [A-Za-z0-9_-] labels joined by single dots, one trailing dot allowed (and dropped).
 * Writes it lower-cased as it checks it; returns its length, -1 when it is no name, -2 when it
 * is one but longer than cap. */
static long host_name(const char *in, size_t n, char *out, size_t cap)
{
    size_t m = n;
    if (m && in[m - 1] == '.') m--; /* "example.com." is the same name, fully qualified */
    if (m == 0 || in[0] == '.' || in[m - 1] == '.') return -1;
    size_t last = 0; /* start of the last label */
    for (size_t i = 0; i < m; i++) {
        unsigned char c = (unsigned char)in[i], lower = c | 0x20;
        if (c == '.') {
            if (in[i + 1] == '.') return -1; /* empty label; in[i + 1] exists, in[m - 1] != '.' */
            last = i + 1;
        } else if (lower >= 'a' && lower <= 'z') {
            c = lower;
        } else if (!(is_digit(c) || c == '-' || c == '_')) {
            return -1;
        }
        if (i < cap) out[i] = (char)c;
    }
    /* A trailing dot that came after a dot ("a..") fails above: in[m - 1] is then '.'. */
    if (label_is_numeric(in + last, m - last) && !is_dotted_quad(in, m)) return -1;
    return m > cap ? -2 : (long)m;
}

/* "[v6]": the inside must be an address inet_pton takes; written as inet_ntop spells it. */
static long host_ipv6(const char *in, size_t n, char *out, size_t cap)
{
    char text[INET6_ADDRSTRLEN + 1], canon[INET6_ADDRSTRLEN];
    struct in6_addr a;
    if (n < 2 || n - 2 >= sizeof(text)) return -1;
    /* inet_pton reads a C string: a NUL inside would hide whatever follows it. */
    for (size_t i = 1; i + 1 < n; i++)
        if (!(hex_value((unsigned char)in[i]) >= 0 || in[i] == ':' || in[i] == '.')) return -1;
    memcpy(text, in + 1, n - 2);
    text[n - 2] = '\0';
    if (inet_pton(AF_INET6, text, &a) != 1) return -1;
    if (!inet_ntop(AF_INET6, &a, canon, sizeof(canon))) return -1;
    size_t len = strlen(canon);
    if (len + 2 > cap) return -2;
    out[0] = '[';
    memcpy(out + 1, canon, len);
    out[len + 1] = ']';
    return (long)len + 2;
}

int sl_host_normalize(const char *in, size_t n, char *out, size_t out_cap, size_t *out_len, int *port)
{
    if (port) *port = -1;
    if (n == 0) return -EINVAL;
    size_t hend;
    long len;
    if (in[0] == '[') {
        const char *rb = memchr(in, ']', n);
        if (!rb) return -EINVAL;
        hend = (size_t)(rb - in) + 1;
        len = host_ipv6(in, hend, out, out_cap);
    } else {
        const char *colon = memchr(in, ':', n);
        hend = colon ? (size_t)(colon - in) : n;
        len = host_name(in, hend, out, out_cap);
    }
    if (len == -2) return -ENOSPC;
    if (len < 0) return -EINVAL;

    if (hend < n) {
        if (in[hend] != ':') return -EINVAL; /* "[::1]x" */
        long v = -1;                         /* "host:" has no port */
        for (size_t i = hend + 1; i < n; i++) {
            if (!is_digit((unsigned char)in[i])) return -EINVAL;
            v = (v < 0 ? 0 : v * 10) + (in[i] - '0');
            if (v > 65535) return -EINVAL;
        }
        if (port) *port = (int)v;
    }
    if ((size_t)len < out_cap) out[len] = '\0';
    *out_len = (size_t)len;
    return 0;
}
