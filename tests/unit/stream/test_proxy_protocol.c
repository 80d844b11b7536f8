/* PROXY protocol v1/v2: parsing (complete, partial, malformed, trailing data), writing, and
 * round trips through both. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "stream/proxy_protocol.h"

#define SIG "\r\n\r\n\0\r\nQUIT\n"

static struct sockaddr_storage ss(const char *ip, uint16_t port)
{
    struct sockaddr_storage s;
    memset(&s, 0, sizeof(s));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&s;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&s;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
    }
    return s;
}

/* Asserts that s is exactly ip:port in the family the text has. */
static void assert_addr(const struct sockaddr_storage *s, const char *ip, uint16_t port)
{
    struct sockaddr_storage want = ss(ip, port);
    assert_int_equal(s->ss_family, want.ss_family);
    size_t n = want.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    assert_memory_equal(s, &want, n);
}

/* Every strict prefix of a header is "need more"; the whole is n, with or without data after. */
static void assert_header(const uint8_t *h, size_t n, sl_pp_info_t *info)
{
    for (size_t k = 0; k < n; k++)
        assert_int_equal(sl_pp_parse(h, k, info), 0);
    static const char tail[] = "GET / HTTP/1.1\r\n" SIG "PROXY TCP4 ";
    uint8_t more[SL_PP_MAX + sizeof(tail)];
    assert_true(n <= SL_PP_MAX);
    memcpy(more, h, n);
    memcpy(more + n, tail, sizeof(tail) - 1);
    for (size_t extra = 0; extra < sizeof(tail); extra++)
        assert_int_equal(sl_pp_parse(more, n + extra, info), (int)n);
    memset(info, 0x5a, sizeof(*info));
    assert_int_equal(sl_pp_parse(h, n, info), (int)n);
}

static void assert_text_header(const char *h, sl_pp_info_t *info)
{
    assert_header((const uint8_t *)h, strlen(h), info);
}

static void test_v1_spec_examples(void **state)
{
    sl_pp_info_t info;
    const char *req = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
    assert_int_equal(sl_pp_parse((const uint8_t *)req, strlen(req), &info), 47);
    assert_int_equal(info.version, 1);
    assert_int_equal(info.local, 0);
    assert_int_equal(info.transport, SL_PP_STREAM);
    assert_addr(&info.src, "192.168.0.1", 56324);
    assert_addr(&info.dst, "192.168.0.11", 443);

    /* The longest lines the spec lists: 56, 104, 15 and 107 bytes. */
    const char *v4max = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
    assert_int_equal(strlen(v4max), 56);
    assert_text_header(v4max, &info);
    assert_addr(&info.src, "255.255.255.255", 65535);

    const char *v6max = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                        "65535 65535\r\n";
    assert_int_equal(strlen(v6max), 104);
    assert_text_header(v6max, &info);
    assert_int_equal(info.local, 0);
    assert_addr(&info.dst, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);

    assert_text_header("PROXY UNKNOWN\r\n", &info);
    assert_int_equal(info.version, 1);
    assert_int_equal(info.local, 1);
    assert_int_equal(info.transport, SL_PP_UNSPEC);
    assert_int_equal(info.src.ss_family, AF_UNSPEC);

    const char *unk = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                      "65535 65535\r\n";
    assert_int_equal(strlen(unk), SL_PP_MAX_V1);
    assert_text_header(unk, &info);
    assert_int_equal(info.local, 1);
    /* Whatever follows "UNKNOWN " is ignored, even if it would be invalid for TCP4. */
    assert_text_header("PROXY UNKNOWN 999.1.1.1 x\r\n", &info);

    /* Compressed IPv6, IPv4-mapped (kept as IPv6), upper case hex, port 0. */
    assert_text_header("PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 8080\r\n", &info);
    assert_addr(&info.src, "2001:db8::1", 0);
    assert_addr(&info.dst, "::ffff:10.0.0.1", 8080);
    assert_text_header("PROXY TCP6 2001:DB8::A ::1 1 2\r\n", &info);
    assert_addr(&info.src, "2001:db8::a", 1);
}

/* The 16-byte v2 header for the given command/family byte pair and address-block length. */
static size_t v2_fixed(uint8_t *h, uint8_t ver_cmd, uint8_t fam, uint16_t len)
{
    memcpy(h, SIG, 12);
    h[12] = ver_cmd;
    h[13] = fam;
    h[14] = (uint8_t)(len >> 8);
    h[15] = (uint8_t)len;
    return 16;
}

static void test_v2_examples(void **state)
{
    sl_pp_info_t info;
    uint8_t h[600];

    /* TCP over IPv4 (\x11), 12 address bytes. */
    size_t n = v2_fixed(h, 0x21, 0x11, 12);
    memcpy(h + n, "\xc0\x00\x02\x01\xc6\x33\x64\x02\xdc\x04\x01\xbb", 12);
    assert_header(h, 28, &info);
    assert_int_equal(info.version, 2);
    assert_int_equal(info.local, 0);
    assert_int_equal(info.transport, SL_PP_STREAM);
    assert_addr(&info.src, "192.0.2.1", 56324);
    assert_addr(&info.dst, "198.51.100.2", 443);

    /* UDP over IPv6 (\x22), 36 address bytes. */
    n = v2_fixed(h, 0x21, 0x22, 36);
    struct in6_addr a6, b6;
    inet_pton(AF_INET6, "2001:db8::1", &a6);
    inet_pton(AF_INET6, "2001:db8::2:3", &b6);
    memcpy(h + n, &a6, 16);
    memcpy(h + n + 16, &b6, 16);
    memcpy(h + n + 32, "\x00\x35\xff\xff", 4);
    assert_header(h, 52, &info);
    assert_int_equal(info.transport, SL_PP_DGRAM);
    assert_addr(&info.src, "2001:db8::1", 53);
    assert_addr(&info.dst, "2001:db8::2:3", 65535);

    /* LOCAL, as a health check sends it: no addresses. */
    n = v2_fixed(h, 0x20, 0x00, 0);
    assert_header(h, 16, &info);
    assert_int_equal(info.local, 1);
    assert_int_equal(info.transport, SL_PP_UNSPEC);
    assert_int_equal(info.src.ss_family, AF_UNSPEC);

    /* LOCAL with a family and a block: the block is skipped unread, even if too short for the
     * family or not TLVs. */
    n = v2_fixed(h, 0x20, 0x11, 5);
    memcpy(h + n, "\xff\xff\xff\xff\xff", 5);
    assert_header(h, 21, &info);
    assert_int_equal(info.local, 1);

    /* PROXY with an UNSPEC family or transport: addresses ignored, block skipped. */
    n = v2_fixed(h, 0x21, 0x00, 3);
    memcpy(h + n, "abc", 3);
    assert_header(h, 19, &info);
    assert_int_equal(info.local, 1);
    n = v2_fixed(h, 0x21, 0x10, 12);
    memset(h + n, 7, 12);
    assert_header(h, 28, &info);
    assert_int_equal(info.local, 1);

    /* UNIX stream and datagram: 216 bytes of paths skipped, then TLVs. */
    for (uint8_t fam = 0x31; fam <= 0x32; fam++) {
        n = v2_fixed(h, 0x21, fam, 216 + 5);
        memset(h + n, 0, 216);
        memcpy(h + n, "/run/a.sock", 11);
        memcpy(h + n + 216, "\x04\x00\x02zz", 5);
        assert_header(h, 16 + 221, &info);
        assert_int_equal(info.local, 1);
    }
}

static void test_v2_tlvs(void **state)
{
    sl_pp_info_t info;
    uint8_t h[SL_PP_MAX_V2 + 8];
    size_t n = 16;
    memcpy(h + n, "\x0a\x00\x00\x01\x0a\x00\x00\x02\x30\x39\x00\x50", 12);
    n += 12;
    /* ALPN, AUTHORITY, an empty NOOP, SSL with sub-TLVs, a custom type, UNIQUE_ID. */
    memcpy(h + n, "\x01\x00\x02h2", 5);
    n += 5;
    memcpy(h + n, "\x02\x00\013example.com", 14);
    n += 14;
    memcpy(h + n, "\x04\x00\x00", 3);
    n += 3;
    memcpy(h + n, "\x20\x00\x0e\x01\x00\x00\x00\x00\x21\x00\x06TLSv13", 17);
    n += 17;
    memcpy(h + n, "\xe0\x00\x01\x99", 4);
    n += 4;
    memcpy(h + n, "\x05\x00\x80", 3);
    memset(h + n + 3, 0xab, 128);
    n += 131;
    v2_fixed(h, 0x21, 0x11, (uint16_t)(n - 16));
    assert_header(h, n, &info);
    assert_addr(&info.src, "10.0.0.1", 12345);
    assert_addr(&info.dst, "10.0.0.2", 80);

    /* Exactly the cap, padded with a NOOP TLV, is accepted; one byte more is refused as soon as
     * the length field is seen. */
    n = v2_fixed(h, 0x21, 0x11, SL_PP_MAX_V2 - 16);
    memcpy(h + n, "\x0a\x00\x00\x01\x0a\x00\x00\x02\x30\x39\x00\x50", 12);
    size_t pad = SL_PP_MAX_V2 - 16 - 12 - 3;
    h[28] = 0x04;
    h[29] = (uint8_t)(pad >> 8);
    h[30] = (uint8_t)pad;
    memset(h + 31, 0, pad);
    assert_header(h, SL_PP_MAX_V2, &info);
    v2_fixed(h, 0x21, 0x11, SL_PP_MAX_V2 - 16 + 1);
    assert_int_equal(sl_pp_parse(h, 16, &info), -1);
    v2_fixed(h, 0x21, 0x11, 0xffff);
    assert_int_equal(sl_pp_parse(h, 16, &info), -1);
}

/* A header with a CRC32c TLV; the checksum was computed independently (a separate bitwise
 * CRC-32C, checked against the standard "123456789" -> 0xE3069283). */
static const uint8_t crc_hdr[49] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21,
                                    0x11, 0x00, 0x21, 192,  0,    2,    1,    198,  51,   100,  2,    0xdc, 0x04,
                                    0x01, 0xbb, 0x03, 0x00, 0x04, 0x20, 0xa9, 0xdc, 0x84, 0x02, 0x00, 0x0b, 'e',
                                    'x',  'a',  'm',  'p',  'l',  'e',  '.',  'c',  'o',  'm'};

static void test_v2_crc32c(void **state)
{
    sl_pp_info_t info;
    uint8_t h[sizeof(crc_hdr) + 7];
    assert_header(crc_hdr, sizeof(crc_hdr), &info);
    assert_addr(&info.src, "192.0.2.1", 56324);

    /* Any flipped bit, in the checksum or elsewhere in the header, is refused. */
    for (size_t i = 12; i < sizeof(crc_hdr); i++) {
        if (i == 14 || i == 15 || i == 28 || i == 29 || i == 30) continue; /* lengths, TLV type */
        memcpy(h, crc_hdr, sizeof(crc_hdr));
        h[i] ^= 0x01;
        if (i == 12 || i == 13) {
            /* 0x20/0x10 (LOCAL, UNSPEC transport) skip the block; the rest are invalid values. */
            int r = sl_pp_parse(h, sizeof(crc_hdr), &info);
            assert_true(r == -1 || (r == (int)sizeof(crc_hdr) && info.local));
            continue;
        }
        assert_int_equal(sl_pp_parse(h, sizeof(crc_hdr), &info), -1);
    }

    /* A CRC32c TLV that is not 4 bytes, or a second one, is malformed. */
    memcpy(h, crc_hdr, 28);
    memcpy(h + 28, "\x03\x00\x03\x00\x00\x00", 6);
    h[15] = 6 + 12;
    assert_int_equal(sl_pp_parse(h, 34, &info), -1);
    /* The second one here is right for the header as it stands (computed with it zeroed), so
     * only the duplicate makes it malformed. */
    memcpy(h, crc_hdr, sizeof(crc_hdr));
    memcpy(h + sizeof(crc_hdr), "\x03\x00\x04\xec\x2f\x67\xbb", 7);
    h[15] = (uint8_t)(sizeof(h) - 16);
    assert_int_equal(sl_pp_parse(h, sizeof(h), &info), -1);
}

static void test_malformed(void **state)
{
    sl_pp_info_t info;
    static const char *const v1[] = {
        "GET / HTTP/1.1\r\n",
        "proxy TCP4 1.2.3.4 5.6.7.8 80 80\r\n",
        "PROXY\r\n",
        "PROXY  TCP4 1.2.3.4 5.6.7.8 80 80\r\n",
        "PROXY TCP5 1.2.3.4 5.6.7.8 80 80\r\n",
        "PROXY tcp4 1.2.3.4 5.6.7.8 80 80\r\n",
        "PROXY UDP4 1.2.3.4 5.6.7.8 80 80\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 80 80\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 80 80\r\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 80 80\rX",
        "PROXY TCP4 1.2.3.4 5.6.7.8 80 80 \r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 80 80 80\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 80  80\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8  80\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 80 \r\n",
        "PROXY TCP4 1.2.3.4  5.6.7.8 80 80\r\n",
        "PROXY TCP4 1.2.3.256 5.6.7.8 80 80\r\n",
        "PROXY TCP4 01.2.3.4 5.6.7.8 80 80\r\n",
        "PROXY TCP4 1.2.3 5.6.7.8 80 80\r\n",
        "PROXY TCP4 1.2.3.4.5 5.6.7.8 80 80\r\n",
        "PROXY TCP4 1111111111111111 5.6.7.8 80 80\r\n",
        "PROXY TCP4 ::1 ::1 80 80\r\n",
        "PROXY TCP6 1.2.3.4 5.6.7.8 80 80\r\n",
        "PROXY TCP6 2001:db8::1::2 ::1 80 80\r\n",
        "PROXY TCP6 2001:db8:g::1 ::1 80 80\r\n",
        "PROXY TCP6 [::1] ::1 80 80\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 80 99999\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 00 80\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 123456 80\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 80\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 +1 80\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 80 8a\r\n",
        "PROXY TCP4\r\n",
        "PROXY UNKNOWNX\r\n",
        "PROXY UNKNOWN\rX",
        "PROXY UNKNOWN\n",
        "PROXY UNKNOWN\t\r\n",
    };
    for (size_t i = 0; i < sizeof(v1) / sizeof(v1[0]); i++) {
        if (sl_pp_parse((const uint8_t *)v1[i], strlen(v1[i]), &info) != -1) fail_msg("accepted: %s", v1[i]);
    }

    /* No CRLF within 107 bytes: too long, even if a CRLF comes at byte 108. */
    char line[200];
    memset(line, 'x', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    assert_int_equal(sl_pp_parse((const uint8_t *)line, SL_PP_MAX_V1 - 1, &info), 0);
    assert_int_equal(sl_pp_parse((const uint8_t *)line, SL_PP_MAX_V1, &info), -1);
    memcpy(line + SL_PP_MAX_V1 - 1, "\r\n", 2);
    assert_int_equal(sl_pp_parse((const uint8_t *)line, sizeof(line), &info), -1);
    memcpy(line + SL_PP_MAX_V1 - 2, "\r\n", 2);
    assert_int_equal(sl_pp_parse((const uint8_t *)line, sizeof(line), &info), SL_PP_MAX_V1);

    /* IPv6 in its longest text form (45 characters) is accepted, but not twice with full ports:
     * that line is longer than SL_PP_MAX_V1. */
    const char *long6 = "PROXY TCP6 0000:0000:0000:0000:0000:ffff:255.255.255.255 ::1 1 2\r\n";
    assert_int_equal(sl_pp_parse((const uint8_t *)long6, strlen(long6), &info), (int)strlen(long6));
    assert_addr(&info.src, "::ffff:255.255.255.255", 1);
    char big6[160];
    snprintf(big6, sizeof(big6), "PROXY TCP6 %s %s 65535 65535\r\n", "0000:0000:0000:0000:0000:ffff:255.255.255.255",
             "0000:0000:0000:0000:0000:ffff:255.255.255.255");
    assert_true(strlen(big6) > SL_PP_MAX_V1);
    assert_int_equal(sl_pp_parse((const uint8_t *)big6, strlen(big6), &info), -1);

    /* v2: each fixed byte with a value the spec does not define. */
    uint8_t h[300];
    size_t n = v2_fixed(h, 0x21, 0x11, 12);
    memset(h + n, 1, 12);
    assert_int_equal(sl_pp_parse(h, 28, &info), 28);
    for (size_t i = 0; i < 12; i++) {
        uint8_t bad[28];
        memcpy(bad, h, 28);
        bad[i] ^= 0x40;
        assert_int_equal(sl_pp_parse(bad, 28, &info), -1);
    }
    static const uint8_t bad_ver_cmd[] = {0x11, 0x31, 0x01, 0xf1, 0x22, 0x2f, 0x12};
    for (size_t i = 0; i < sizeof(bad_ver_cmd); i++) {
        h[12] = bad_ver_cmd[i];
        assert_int_equal(sl_pp_parse(h, 28, &info), -1);
        assert_int_equal(sl_pp_parse(h, 13, &info), -1); /* known as soon as the byte arrives */
    }
    h[12] = 0x21;
    static const uint8_t bad_fam[] = {0x13, 0x41, 0xf1, 0x1f, 0x03};
    for (size_t i = 0; i < sizeof(bad_fam); i++) {
        h[13] = bad_fam[i];
        assert_int_equal(sl_pp_parse(h, 28, &info), -1);
        assert_int_equal(sl_pp_parse(h, 14, &info), -1);
    }

    /* Lengths too short for the address block, with PROXY. */
    static const struct {
        uint8_t fam;
        uint16_t len;
    } shorts[] = {{0x11, 11}, {0x12, 0}, {0x21, 35}, {0x22, 12}, {0x31, 215}, {0x32, 0}};
    for (size_t i = 0; i < sizeof(shorts) / sizeof(shorts[0]); i++) {
        v2_fixed(h, 0x21, shorts[i].fam, shorts[i].len);
        memset(h + 16, 0, sizeof(h) - 16);
        assert_int_equal(sl_pp_parse(h, 16, &info), -1);
        assert_int_equal(sl_pp_parse(h, 16 + shorts[i].len, &info), -1);
    }

    /* Broken TLV chains after INET addresses: 1 or 2 stray bytes, a value running past the end. */
    static const struct {
        const char *tlvs;
        uint16_t n;
    } bad_tlvs[] = {{"\x04", 1},
                    {"\x04\x00", 2},
                    {"\x04\x00\x01", 3},
                    {"\x02\x00\005abcd", 7},
                    {"\x04\x00\x00\x01", 4},
                    {"\x01\x00\x01x\x02\x00", 6}};
    for (size_t i = 0; i < sizeof(bad_tlvs) / sizeof(bad_tlvs[0]); i++) {
        v2_fixed(h, 0x21, 0x11, (uint16_t)(12 + bad_tlvs[i].n));
        memset(h + 16, 9, 12);
        memcpy(h + 28, bad_tlvs[i].tlvs, bad_tlvs[i].n);
        assert_int_equal(sl_pp_parse(h, 28 + bad_tlvs[i].n, &info), -1);
        assert_int_equal(sl_pp_parse(h, 27 + bad_tlvs[i].n, &info), 0); /* undecided until complete */
    }

    /* Not a PROXY header at all: refused at the first byte that differs. */
    assert_int_equal(sl_pp_parse((const uint8_t *)"\x16\x03\x01", 3, &info), -1);
    assert_int_equal(sl_pp_parse((const uint8_t *)"G", 1, &info), -1);
    assert_int_equal(sl_pp_parse((const uint8_t *)"PROXX", 5, &info), -1);
    assert_int_equal(sl_pp_parse((const uint8_t *)"PROXY X", 7, &info), -1);
    assert_int_equal(sl_pp_parse((const uint8_t *)"PROXY TCP4 1.2.3.4x", 19, &info), -1);
    assert_int_equal(sl_pp_parse((const uint8_t *)"PROXY TCP4 1.2.3.4 5.6.7.8 012", 30, &info), -1);
    assert_int_equal(sl_pp_parse((const uint8_t *)"\r\nGET", 5, &info), -1);
    assert_int_equal(sl_pp_parse((const uint8_t *)"\r\n\r\n\0\r\nQUIX", 11, &info), -1);
    /* ... and undecided while it is still a prefix. */
    assert_int_equal(sl_pp_parse((const uint8_t *)"", 0, &info), 0);
    assert_int_equal(sl_pp_parse((const uint8_t *)"PROX", 4, &info), 0);
    assert_int_equal(sl_pp_parse((const uint8_t *)"PROXY TCP", 9, &info), 0);
    assert_int_equal(sl_pp_parse((const uint8_t *)"PROXY UNK", 9, &info), 0);
    assert_int_equal(sl_pp_parse((const uint8_t *)"PROXY TCP4 1.2.3.4 5.6.7.8 0", 28, &info), 0);
    assert_int_equal(sl_pp_parse((const uint8_t *)"\r\n\r\n\0", 5, &info), 0);
}

/* Write with both versions (stream) and v2 dgram, then parse back. */
static void round_trip(const char *sip, uint16_t sport, const char *dip, uint16_t dport, const char *want_v1,
                       const char *want_sip, const char *want_dip)
{
    struct sockaddr_storage s = ss(sip, sport), d = ss(dip, dport);
    uint8_t out[SL_PP_MAX_V1];
    sl_pp_info_t info;

    size_t n = sl_pp_write(1, (struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof(out));
    assert_int_equal(n, strlen(want_v1));
    assert_memory_equal(out, want_v1, n);
    assert_header(out, n, &info);
    assert_int_equal(info.version, 1);
    assert_int_equal(info.transport, SL_PP_STREAM);
    assert_addr(&info.src, want_sip, sport);
    assert_addr(&info.dst, want_dip, dport);

    int v4 = strchr(want_sip, ':') == NULL;
    for (int dgram = 0; dgram <= 1; dgram++) {
        n = dgram ? sl_pp_write_dgram((struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof(out))
                  : sl_pp_write(2, (struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof(out));
        assert_int_equal(n, v4 ? 28 : 52);
        assert_memory_equal(out, SIG, 12);
        assert_int_equal(out[12], 0x21);
        assert_int_equal(out[13], (v4 ? 0x10 : 0x20) | (dgram ? 2 : 1));
        assert_header(out, n, &info);
        assert_int_equal(info.version, 2);
        assert_int_equal(info.local, 0);
        assert_int_equal(info.transport, dgram ? SL_PP_DGRAM : SL_PP_STREAM);
        assert_addr(&info.src, want_sip, sport);
        assert_addr(&info.dst, want_dip, dport);
    }
}

static void test_round_trips(void **state)
{
    round_trip("192.168.0.1", 56324, "192.168.0.11", 443, "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
               "192.168.0.1", "192.168.0.11");
    round_trip("0.0.0.0", 0, "255.255.255.255", 65535, "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", "0.0.0.0",
               "255.255.255.255");
    round_trip("2001:db8::1", 40000, "2001:db8:0:0:0:1:0:2", 5432,
               "PROXY TCP6 2001:db8::1 2001:db8::1:0:2 40000 5432\r\n", "2001:db8::1", "2001:db8::1:0:2");
    round_trip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, "::1", 1,
               "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ::1 65535 1\r\n",
               "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::1");
    /* IPv4-mapped on both sides (a dual-stack listener): announced as the IPv4 it is. */
    round_trip("::ffff:10.1.2.3", 1234, "::ffff:127.0.0.10", 9101, "PROXY TCP4 10.1.2.3 127.0.0.10 1234 9101\r\n",
               "10.1.2.3", "127.0.0.10");
    round_trip("::ffff:10.1.2.3", 1234, "127.0.0.10", 9101, "PROXY TCP4 10.1.2.3 127.0.0.10 1234 9101\r\n", "10.1.2.3",
               "127.0.0.10");
    /* Mixed: the IPv4 side is written mapped so both fit one family. */
    round_trip("10.1.2.3", 1234, "2001:db8::10", 9101, "PROXY TCP6 ::ffff:10.1.2.3 2001:db8::10 1234 9101\r\n",
               "::ffff:10.1.2.3", "2001:db8::10");
    round_trip("2001:db8::7", 1, "::ffff:127.0.0.1", 2, "PROXY TCP6 2001:db8::7 ::ffff:127.0.0.1 1 2\r\n",
               "2001:db8::7", "::ffff:127.0.0.1");
}

static void test_write_unknown_and_limits(void **state)
{
    struct sockaddr_storage s = ss("10.0.0.1", 1), d = ss("10.0.0.2", 2);
    struct sockaddr_un un = {.sun_family = AF_UNIX, .sun_path = "/run/x.sock"};
    uint8_t out[SL_PP_MAX_V1];
    sl_pp_info_t info;

    /* An address that is not IP: UNKNOWN (v1) and LOCAL with UNSPEC (v2), both accepted back. */
    const struct sockaddr *cases[][2] = {{(struct sockaddr *)&un, (struct sockaddr *)&d},
                                         {(struct sockaddr *)&s, (struct sockaddr *)&un},
                                         {NULL, (struct sockaddr *)&d},
                                         {(struct sockaddr *)&s, NULL}};
    for (size_t i = 0; i < 4; i++) {
        size_t n = sl_pp_write(1, cases[i][0], cases[i][1], out, sizeof(out));
        assert_int_equal(n, 15);
        assert_memory_equal(out, "PROXY UNKNOWN\r\n", 15);
        assert_header(out, n, &info);
        assert_int_equal(info.local, 1);
        for (int dgram = 0; dgram <= 1; dgram++) {
            n = dgram ? sl_pp_write_dgram(cases[i][0], cases[i][1], out, sizeof(out))
                      : sl_pp_write(2, cases[i][0], cases[i][1], out, sizeof(out));
            assert_int_equal(n, 16);
            assert_memory_equal(out, SIG "\x20\x00\x00\x00", 16);
            assert_header(out, n, &info);
            assert_int_equal(info.local, 1);
        }
    }

    /* cap: too small by one byte gives 0 and leaves out alone; an unknown version gives 0. */
    for (int version = 1; version <= 2; version++) {
        size_t n = sl_pp_write(version, (struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof(out));
        assert_true(n > 0);
        for (size_t cap = 0; cap < n; cap++) {
            memset(out, 0x77, sizeof(out));
            assert_int_equal(sl_pp_write(version, (struct sockaddr *)&s, (struct sockaddr *)&d, out, cap), 0);
            assert_int_equal(out[0], 0x77);
        }
        assert_int_equal(sl_pp_write(version, (struct sockaddr *)&s, (struct sockaddr *)&d, out, n), n);
    }
    assert_int_equal(sl_pp_write_dgram((struct sockaddr *)&s, (struct sockaddr *)&d, out, 27), 0);
    assert_int_equal(sl_pp_write(0, (struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof(out)), 0);
    assert_int_equal(sl_pp_write(3, (struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof(out)), 0);
    assert_int_equal(sl_pp_write(1, NULL, NULL, out, 14), 0);

    /* The longest v1 line sl_pp_write can produce still fits SL_PP_MAX_V1. */
    struct sockaddr_storage a = ss("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535), b = a;
    assert_int_equal(sl_pp_write(1, (struct sockaddr *)&a, (struct sockaddr *)&b, out, sizeof(out)), 104);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_spec_examples),
        cmocka_unit_test(test_v2_examples),
        cmocka_unit_test(test_v2_tlvs),
        cmocka_unit_test(test_v2_crc32c),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_write_unknown_and_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
