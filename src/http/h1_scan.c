/* The request framing checker (see h1_scan.h). Every rule cites RFC 9112 or RFC 9110. */
#include "http/h1_scan.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Byte classes, one table lookup per byte: C_TCHAR, the bytes of a method and a field name
 * (tchar, RFC 9110 5.6.2); C_VALUE, what a field value may hold (field-vchar, SP, HTAB and
 * obs-text, RFC 9110 5.5); C_TARGET, visible ASCII, what a request target may hold; C_STATUS,
 * what a status line is let through with (a field value's bytes but HTAB, which RFC 9112 4
 * allows in the reason phrase only and no upstream we know of sends). */
enum { C_TCHAR = 1, C_VALUE = 2, C_TARGET = 4, C_STATUS = 8 };
static const uint8_t byte_class[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    10, 15, 14, 15, 15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15, 14,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 14, 14, 14, 14, 14,
    14, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 14, 14, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 15, 14, 15,  0,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
};

static int is_tchar(unsigned char ch)
{
    return byte_class[ch] & C_TCHAR;
}

static int is_value_byte(unsigned char ch)
{
    return byte_class[ch] & C_VALUE;
}

#ifdef __SSE2__
/* Bytes of the 16 at p that may end a run of class cls, as a bit mask: controls and DEL for a
 * value or a status line, also space and bytes above 0x7e for a target, anything but letters,
 * digits and '-' for a name. A marked byte may still be of the class (a tab in a value, a '_'
 * in a name): the table has the last word on it. */
static inline unsigned maybe_end(const unsigned char *p, uint8_t cls)
{
    const __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
    /* b <= m, unsigned, is min(b, m) == b */
#define AT_MOST(v, m) _mm_cmpeq_epi8(_mm_min_epu8((v), _mm_set1_epi8((char)(m))), (v))
    if (cls == C_TCHAR) {
        __m128i letter = AT_MOST(_mm_sub_epi8(_mm_or_si128(x, _mm_set1_epi8(0x20)), _mm_set1_epi8('a')), 25);
        __m128i digit = AT_MOST(_mm_sub_epi8(x, _mm_set1_epi8('0')), 9);
        __m128i dash = _mm_cmpeq_epi8(x, _mm_set1_epi8('-'));
        return ~(unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(letter, digit), dash)) & 0xffffu;
    }
    __m128i bad = _mm_or_si128(AT_MOST(x, cls == C_TARGET ? 0x20 : 0x1f), _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f)));
    unsigned m = (unsigned)_mm_movemask_epi8(bad);
    if (cls == C_TARGET) m |= (unsigned)_mm_movemask_epi8(x); /* a byte above 0x7f */
    return m;
#undef AT_MOST
}
#endif

/* The length of the run of bytes of class cls at p[0..n): 16 bytes at a time up to the first
 * that may end it, then the table. */
static inline size_t run_of(const unsigned char *p, size_t n, uint8_t cls)
{
    size_t k = 0;
#ifdef __SSE2__
    for (; k + 16 <= n; k += 16) {
        unsigned m = maybe_end(p + k, cls);
        if (m) {
            k += (size_t)__builtin_ctz(m);
            break;
        }
    }
#endif
    while (k < n && (byte_class[p[k]] & cls)) k++;
    return k;
}

static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

void sl_h1_scan_reset(sl_h1_scan_t *s)
{
    memset(s, 0, sizeof(*s));
    s->phase = SL_SCAN_HEAD;
}

static void line_start(sl_h1_scan_t *s)
{
    s->prev = 0;
    s->part = 0;
    s->col = 0;
}

void sl_h1_scan_body(sl_h1_scan_t *s, int kind, uint64_t length)
{
    line_start(s);
    s->left = 0;
    if (kind == SL_SCAN_BODY_CHUNKED) {
        s->phase = SL_SCAN_SIZE;
    } else if (kind == SL_SCAN_BODY_LENGTH && length) {
        s->phase = SL_SCAN_LENGTH;
        s->left = length;
    } else {
        s->phase = SL_SCAN_DONE;
    }
}

/* A byte of the request line (RFC 9112 3): method SP request-target SP HTTP-version, single
 * spaces, a target of visible ASCII only (a tab, a space or a byte above 0x7e is not a URI). */
static int request_line_byte(sl_h1_scan_t *s, unsigned char ch)
{
    if (s->response) return byte_class[ch] & C_STATUS ? 0 : -1; /* status line (RFC 9112 4) */
    if (ch == ' ') {
        if (s->part == 2 || s->col == 0 || s->prev == ' ') return -1;
        s->part++;
        return 0;
    }
    if (s->part == 0) return is_tchar(ch) ? 0 : -1;
    return byte_class[ch] & C_TARGET ? 0 : -1;
}

/* A byte of a field line (RFC 9112 5): a token name, a colon with no whitespace before it, a
 * value of field bytes. A line that starts with whitespace is obs-fold, refused (5.2). */
static int field_line_byte(sl_h1_scan_t *s, unsigned char ch)
{
    if (s->part == 0) {
        if (ch == ':') {
            if (s->col == 0) return -1;
            s->part = 1;
            return 0;
        }
        return is_tchar(ch) ? 0 : -1;
    }
    return is_value_byte(ch) ? 0 : -1;
}

/* The end of a line in the head or the trailer section; 1 when it was the empty line. */
static int line_end(sl_h1_scan_t *s)
{
    if (s->phase == SL_SCAN_HEAD && s->lines == 0) {
        if (s->col == 0) return 0; /* empty lines before the request line may be ignored (2.2) */
        if (!s->response && (s->part != 2 || s->prev == ' ')) return -1;
        s->lines = 1;
        return 0;
    }
    if (s->col == 0) return 1;
    if (s->part != 1) return -1; /* a field line without a colon */
    if (s->lines < UINT8_MAX) s->lines++;
    return 0;
}

/* The chunk-size line (RFC 9112 7.1): 1*HEXDIG, then optionally BWS ";" chunk-ext. */
static int size_line_byte(sl_h1_scan_t *s, unsigned char ch)
{
    if (s->col >= SL_CHUNK_LINE_MAX) return -1;
    if (s->part == 0) {
        int h = hex_value(ch);
        if (h >= 0) {
            if (s->left >> 59) return -1; /* more than 2^63 bytes */
            s->left = s->left * 16 + (uint64_t)h;
            return 0;
        }
        if (s->col == 0) return -1;
        s->part = 1;
    }
    if (s->part == 1) {
        if (ch == ' ' || ch == '\t') return 0;
        if (ch != ';') return -1;
        s->part = 2;
        return 0;
    }
    return is_value_byte(ch) ? 0 : -1;
}

/* The common case of a line of the head or the trailer section: one that starts at p and is
 * complete and well formed in p[0..n), checked in one go by the rules of the byte-wise way
 * above. Returns the bytes it took, CRLF included, or 0 for anything else (a line cut by the
 * read's end, a bad one), which then goes the byte-wise way from its first byte: that way
 * alone decides refusals, so the verdict does not depend on where a read ends. */
static size_t whole_line(sl_h1_scan_t *s, const unsigned char *p, size_t n)
{
    size_t e; /* where the line's CR should be */
    if (s->phase == SL_SCAN_HEAD && s->lines == 0) {
        if (s->response) {
            e = run_of(p, n, C_STATUS);
        } else {
            size_t m = run_of(p, n, C_TCHAR); /* method SP target SP version */
            if (m == 0 || m == n || p[m] != ' ') return 0;
            size_t t = run_of(p + m + 1, n - m - 1, C_TARGET);
            e = m + 1 + t; /* the second space */
            if (t == 0 || e == n || p[e] != ' ') return 0;
            size_t v = run_of(p + e + 1, n - e - 1, C_TARGET);
            if (v == 0) return 0;
            e += 1 + v;
        }
        if (e == 0) return 0; /* an empty line before the start line */
    } else {
        size_t k = run_of(p, n, C_TCHAR); /* field-name ":" field-value, or the empty line */
        if (k == 0) {
            e = 0;
        } else {
            if (k == n || p[k] != ':') return 0;
            e = k + 1 + run_of(p + k + 1, n - k - 1, C_VALUE);
        }
    }
    if (n - e < 2 || p[e] != '\r' || p[e + 1] != '\n') return 0;
    if (e == 0) {
        s->phase = s->phase == SL_SCAN_HEAD ? SL_SCAN_HEAD_DONE : SL_SCAN_DONE;
    } else if (s->lines < UINT8_MAX) {
        s->lines++;
    }
    return e + 2;
}

static inline ssize_t scan_run(sl_h1_scan_t *s, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if ((s->phase == SL_SCAN_HEAD || s->phase == SL_SCAN_TRAILER) && s->col == 0 && s->prev == 0) {
            size_t k = whole_line(s, (const unsigned char *)p + i, n - i);
            if (k) {
                i += k;
                continue;
            }
        }
        switch (s->phase) {
        case SL_SCAN_HEAD_DONE:
        case SL_SCAN_DONE:
            return (ssize_t)i;
        case SL_SCAN_LENGTH:
        case SL_SCAN_DATA: {
            size_t take = n - i;
            if (take > s->left) take = (size_t)s->left;
            i += take;
            s->left -= take;
            if (!s->left) s->phase = s->phase == SL_SCAN_LENGTH ? SL_SCAN_DONE : SL_SCAN_DATA_CRLF;
            continue;
        }
        case SL_SCAN_DATA_CRLF: {
            /* Exactly CRLF after chunk data, nothing else (7.1). */
            unsigned char ch = (unsigned char)p[i++];
            if (s->col == 0) {
                if (ch != '\r') return -1;
                s->col = 1;
            } else {
                if (ch != '\n') return -1;
                line_start(s);
                s->phase = SL_SCAN_SIZE;
            }
            continue;
        }
        default:
            break;
        }
        /* The common case first: inside a name, a value or a target, a run of bytes that
         * cannot end or break the part is taken at once; what ends it goes the byte-wise way. */
        if (s->col && s->prev != '\r' && (s->phase == SL_SCAN_HEAD || s->phase == SL_SCAN_TRAILER)) {
            uint8_t cls = 0;
            if (s->phase == SL_SCAN_HEAD && s->lines == 0) cls = s->response ? 0 : s->part == 1 ? C_TARGET : 0;
            else cls = s->part == 0 ? C_TCHAR : C_VALUE;
            size_t k = cls ? run_of((const unsigned char *)p + i, n - i, cls) : 0;
            if (k) {
                i += k;
                s->prev = (unsigned char)p[i - 1];
                s->col = s->col + k > UINT32_MAX ? UINT32_MAX : (uint32_t)(s->col + k);
                continue;
            }
        }
        /* Line-oriented phases: a CR is only ever the first half of a line's CRLF (2.2). */
        unsigned char ch = (unsigned char)p[i++];
        if (s->prev == '\r') {
            if (ch != '\n') return -1;
        } else if (ch == '\n') {
            return -1; /* a bare LF */
        }
        if (ch == '\r') {
            s->prev = '\r';
            continue;
        }
        if (ch == '\n') {
            if (s->phase == SL_SCAN_SIZE) {
                if (s->part == 0 && s->col == 0) return -1;
                if (s->left) {
                    s->phase = SL_SCAN_DATA;
                } else {
                    s->phase = SL_SCAN_TRAILER; /* the last chunk */
                    s->lines = 1;
                }
                line_start(s);
                continue;
            }
            int r = line_end(s);
            if (r < 0) return -1;
            if (r == 1) s->phase = s->phase == SL_SCAN_HEAD ? SL_SCAN_HEAD_DONE : SL_SCAN_DONE;
            line_start(s);
            continue;
        }
        int ok;
        if (s->phase == SL_SCAN_SIZE) ok = size_line_byte(s, ch);
        else if (s->phase == SL_SCAN_HEAD && s->lines == 0) ok = request_line_byte(s, ch);
        else if (s->col == 0 && (ch == ' ' || ch == '\t')) ok = -1; /* obs-fold, or whitespace before a name */
        else ok = field_line_byte(s, ch);
        if (ok < 0) return -1;
        s->prev = ch;
        if (s->col < UINT32_MAX) s->col++;
    }
    return (ssize_t)i;
}

ssize_t sl_h1_scan(sl_h1_scan_t *s, const char *p, size_t n)
{
    /* The state is worked on in a local copy, which the compiler keeps in registers: read and
     * written through the caller's pointer, its byte-wide fields cost a store-forwarding
     * stall on nearly every byte. */
    sl_h1_scan_t st = *s;
    ssize_t r = scan_run(&st, p, n);
    *s = st;
    return r;
}
