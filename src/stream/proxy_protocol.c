#include "stream/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

enum { CMD_LOCAL = 0, CMD_PROXY = 1 };
enum { FAM_UNSPEC = 0, FAM_INET = 1, FAM_INET6 = 2, FAM_UNIX = 3 };
enum { TLV_CRC32C = 0x03 };

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void set_addr(struct sockaddr_storage *ss, int af, const uint8_t *addr, uint16_t port)
{
    memset(ss, 0, sizeof(*ss));
    if (af == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, addr, 4);
        in->sin_port = htons(port);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, addr, 16);
        in6->sin6_port = htons(port);
    }
}

/* --- version 1 ------------------------------------------------------------------------------ */

enum { F_IP4, F_IP6, F_PORT };

static int field_char(int kind, uint8_t c)
{
    int digit = c >= '0' && c <= '9';
    if (kind == F_IP4) return digit || c == '.';
    if (kind == F_IP6) return digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
    return digit;
}

/* Whether b[pos..n) matches the start of s: 1 all of s, 0 a prefix of it (data ended), -1 no. */
static int literal(const uint8_t *b, size_t n, size_t pos, const char *s)
{
    size_t sl = strlen(s);
    size_t k = n - pos < sl ? n - pos : sl;
    if (memcmp(b + pos, s, k) != 0) return -1;
    return k == sl;
}

static int v1_parse(const uint8_t *b, size_t len, sl_pp_info_t *out)
{
    /* Only the first SL_PP_MAX_V1 bytes can belong to the line: running out of them without a
     * CRLF means "too long" once that many have arrived, "need more" before. */
    size_t n = len < SL_PP_MAX_V1 ? len : SL_PP_MAX_V1;
    int more = len >= SL_PP_MAX_V1 ? -1 : 0;

    int r = literal(b, n, 0, "PROXY ");
    if (r <= 0) return r < 0 ? -1 : more;
    size_t pos = 6;

    int r4 = literal(b, n, pos, "TCP4 "), r6 = literal(b, n, pos, "TCP6 "), ru = literal(b, n, pos, "UNKNOWN");
    if (ru == 1) {
        pos += 7;
        if (pos == n) return more;
        if (b[pos] == '\r') {
            if (pos + 1 == n) return more;
            if (b[pos + 1] != '\n') return -1;
            pos += 2;
        } else if (b[pos] == ' ') {
            /* The spec has the receiver ignore whatever UNKNOWN is followed by, up to the CRLF. */
            const uint8_t *end = NULL;
            for (size_t i = pos + 1; i + 1 < n && !end; i++)
                if (b[i] == '\r' && b[i + 1] == '\n') end = b + i;
            if (!end) return more;
            pos = (size_t)(end - b) + 2;
        } else {
            return -1;
        }
        memset(out, 0, sizeof(*out));
        out->version = 1;
        out->local = 1;
        return (int)pos;
    }
    if (r4 != 1 && r6 != 1) return r4 == 0 || r6 == 0 || ru == 0 ? more : -1;
    pos += 5;

    int af = r4 == 1 ? AF_INET : AF_INET6;
    uint8_t addr[2][16];
    uint16_t port[2];
    for (int f = 0; f < 4; f++) {
        int kind = f < 2 ? (af == AF_INET ? F_IP4 : F_IP6) : F_PORT;
        size_t max = kind == F_IP4 ? 15 : kind == F_IP6 ? 45 : 5;
        size_t start = pos;
        while (pos < n && pos - start < max && field_char(kind, b[pos]))
            pos++;
        if (kind == F_PORT && pos - start >= 2 && b[start] == '0') return -1;
        if (pos == n) return more;
        /* The byte after the field must be its separator: this also rejects a field too long. */
        if (pos == start || b[pos] != (f < 3 ? ' ' : '\r')) return -1;
        char tok[46];
        memcpy(tok, b + start, pos - start);
        tok[pos - start] = '\0';
        if (kind == F_PORT) {
            unsigned long v = 0;
            for (const char *c = tok; *c; c++)
                v = v * 10 + (unsigned long)(*c - '0');
            if (v > 65535) return -1;
            port[f - 2] = (uint16_t)v;
        } else if (inet_pton(af, tok, addr[f]) != 1) {
            return -1;
        }
        pos++;
    }
    if (pos == n) return more;
    if (b[pos] != '\n') return -1;
    pos++;

    memset(out, 0, sizeof(*out));
    out->version = 1;
    out->transport = SL_PP_STREAM;
    set_addr(&out->src, af, addr[0], port[0]);
    set_addr(&out->dst, af, addr[1], port[1]);
    return (int)pos;
}

/* --- version 2 ------------------------------------------------------------------------------ */

/* CRC32c (Castagnoli, reflected polynomial 0x82F63B78, as in RFC 4960 appendix B), bit by bit:
 * it runs at most once per connection, over at most SL_PP_MAX_V2 bytes. */
static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
    }
    return crc;
}

/* The header's CRC32c computed with the 4 checksum bytes at `at` taken as zeros. */
static uint32_t header_crc(const uint8_t *b, size_t total, size_t at)
{
    static const uint8_t zero[4];
    uint32_t crc = crc32c(0xffffffffu, b, at);
    crc = crc32c(crc, zero, 4);
    crc = crc32c(crc, b + at + 4, total - at - 4);
    return ~crc;
}

/* Checks the TLV chain in b[pos..total), and the CRC32c TLV if there is one: 0 or -1. */
static int v2_tlvs(const uint8_t *b, size_t pos, size_t total)
{
    size_t crc_at = 0;
    while (pos < total) {
        if (total - pos < 3) return -1;
        size_t vlen = be16(b + pos + 1);
        if (total - pos - 3 < vlen) return -1;
        if (b[pos] == TLV_CRC32C) {
            if (vlen != 4 || crc_at) return -1;
            crc_at = pos + 3;
        }
        pos += 3 + vlen;
    }
    if (crc_at) {
        const uint8_t *c = b + crc_at;
        uint32_t sent = (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];
        if (header_crc(b, total, crc_at) != sent) return -1;
    }
    return 0;
}

static int v2_parse(const uint8_t *b, size_t len, sl_pp_info_t *out)
{
    /* Check each fixed byte as soon as it is there, so garbage fails before 16 bytes arrive. */
    if (memcmp(b, v2_sig, len < 12 ? len : 12) != 0) return -1;
    if (len > 12 && (b[12] >> 4 != 2 || (b[12] & 0x0f) > CMD_PROXY)) return -1;
    if (len > 13 && (b[13] >> 4 > FAM_UNIX || (b[13] & 0x0f) > SL_PP_DGRAM)) return -1;
    if (len < SL_PP_V2_FIXED) return 0;

    int cmd = b[12] & 0x0f, fam = b[13] >> 4, transport = b[13] & 0x0f;
    size_t total = SL_PP_V2_FIXED + (size_t)be16(b + 14);
    if (total > SL_PP_MAX_V2) return -1;
    /* Addresses are read only for a proxied connection of a known shape; otherwise the spec has
     * the receiver ignore the block, whatever its length. */
    int known = cmd == CMD_PROXY && fam != FAM_UNSPEC && transport != SL_PP_UNSPEC;
    size_t alen = !known ? 0 : fam == FAM_INET ? 12 : fam == FAM_INET6 ? 36 : 216;
    if (total - SL_PP_V2_FIXED < alen) return -1;
    if (len < total) return 0;
    if (known && v2_tlvs(b, SL_PP_V2_FIXED + alen, total) != 0) return -1;

    memset(out, 0, sizeof(*out));
    out->version = 2;
    const uint8_t *a = b + SL_PP_V2_FIXED;
    if (known && fam == FAM_INET) {
        out->transport = transport;
        set_addr(&out->src, AF_INET, a, be16(a + 8));
        set_addr(&out->dst, AF_INET, a + 4, be16(a + 10));
    } else if (known && fam == FAM_INET6) {
        out->transport = transport;
        set_addr(&out->src, AF_INET6, a, be16(a + 32));
        set_addr(&out->dst, AF_INET6, a + 16, be16(a + 34));
    } else {
        out->local = 1; /* LOCAL, UNSPEC, or UNIX: no IP client to report */
    }
    return (int)total;
}

int sl_pp_parse(const uint8_t *buf, size_t len, sl_pp_info_t *out)
{
    if (len == 0) return 0;
    if (buf[0] == 'P') return v1_parse(buf, len, out);
    if (buf[0] == v2_sig[0]) return v2_parse(buf, len, out);
    return -1;
}

/* --- writing -------------------------------------------------------------------------------- */

/* An endpoint as 16 bytes of IPv6 (IPv4 mapped) and a port; 0, or -1 for anything else. */
typedef struct {
    uint8_t ip[16];
    uint16_t port; /* network order */
    int v4;        /* IPv4, or IPv4-mapped IPv6 */
} endpoint_t;

static int endpoint(const struct sockaddr *sa, endpoint_t *e)
{
    memset(e, 0, sizeof(*e));
    if (!sa) return -1;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        e->ip[10] = e->ip[11] = 0xff;
        memcpy(e->ip + 12, &in->sin_addr, 4);
        e->port = in->sin_port;
        e->v4 = 1;
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(e->ip, &in6->sin6_addr, 16);
        e->port = in6->sin6_port;
        e->v4 = IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr);
        return 0;
    }
    return -1;
}

static size_t put(const void *hdr, size_t n, uint8_t *out, size_t cap)
{
    if (n > cap) return 0;
    memcpy(out, hdr, n);
    return n;
}

static size_t write_v1(const endpoint_t *s, const endpoint_t *d, int known, uint8_t *out, size_t cap)
{
    static const char unknown[] = "PROXY UNKNOWN\r\n";
    if (!known) return put(unknown, sizeof(unknown) - 1, out, cap);
    int v4 = s->v4 && d->v4;
    int af = v4 ? AF_INET : AF_INET6;
    char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
    inet_ntop(af, v4 ? s->ip + 12 : s->ip, sa, sizeof(sa));
    inet_ntop(af, v4 ? d->ip + 12 : d->ip, da, sizeof(da));
    char line[128];
    int n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n", v4 ? "TCP4" : "TCP6", sa, da,
                     (unsigned)ntohs(s->port), (unsigned)ntohs(d->port));
    /* Two IPv6 addresses as inet_ntop writes them (at most 39 characters each) always fit. */
    if (n < 0 || n > SL_PP_MAX_V1) return 0;
    return put(line, (size_t)n, out, cap);
}

static size_t write_v2(int transport, const endpoint_t *s, const endpoint_t *d, int known, uint8_t *out, size_t cap)
{
    uint8_t h[SL_PP_V2_FIXED + 36];
    memcpy(h, v2_sig, 12);
    if (!known) {
        h[12] = 0x20 | CMD_LOCAL;
        h[13] = FAM_UNSPEC << 4 | SL_PP_UNSPEC;
        h[14] = h[15] = 0;
        return put(h, SL_PP_V2_FIXED, out, cap);
    }
    int v4 = s->v4 && d->v4;
    size_t alen = v4 ? 12 : 36, ipn = v4 ? 4 : 16, skip = v4 ? 12 : 0;
    h[12] = 0x20 | CMD_PROXY;
    h[13] = (uint8_t)((v4 ? FAM_INET : FAM_INET6) << 4 | transport);
    h[14] = 0;
    h[15] = (uint8_t)alen;
    uint8_t *a = h + SL_PP_V2_FIXED;
    memcpy(a, s->ip + skip, ipn);
    memcpy(a + ipn, d->ip + skip, ipn);
    memcpy(a + 2 * ipn, &s->port, 2);
    memcpy(a + 2 * ipn + 2, &d->port, 2);
    return put(h, SL_PP_V2_FIXED + alen, out, cap);
}

size_t sl_pp_write(int version, const struct sockaddr *src, const struct sockaddr *dst, uint8_t *out, size_t cap)
{
    endpoint_t s, d;
    int known = endpoint(src, &s) == 0 && endpoint(dst, &d) == 0;
    if (version == 1) return write_v1(&s, &d, known, out, cap);
    if (version == 2) return write_v2(SL_PP_STREAM, &s, &d, known, out, cap);
    return 0;
}

size_t sl_pp_write_dgram(const struct sockaddr *src, const struct sockaddr *dst, uint8_t *out, size_t cap)
{
    endpoint_t s, d;
    int known = endpoint(src, &s) == 0 && endpoint(dst, &d) == 0;
    return write_v2(SL_PP_DGRAM, &s, &d, known, out, cap);
}
