/* libFuzzer target: sl_pp_parse() on arbitrary bytes, and sl_pp_write() on what it returns.
 * Checked:
 * - the result is -1, 0, or a length within the input and the version's limit;
 * - verdicts only go forward as bytes arrive: over the input's prefixes the results are 0 until
 *   the first nonzero one, and that one (-1 or a header length) holds for every longer prefix;
 * - a proxied header re-written as v1, v2 (stream) and v2 (dgram when it was UDP) parses back to
 *   the same addresses and ports (comparing IPv4 and IPv4-mapped IPv6 as equal), and every
 *   strict prefix of the written header is "need more";
 * - a canonical input (v1 TCP4; v2 with no TLVs and not two mapped IPv6) is re-written byte for
 *   byte;
 * - a local header reports no addresses. */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stream/proxy_protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) abort();                                                                                          \
    } while (0)

/* The address as 16 bytes of IPv6 (IPv4 mapped), and the port. */
static void norm(const struct sockaddr_storage *s, uint8_t ip[16], uint16_t *port, int *mapped)
{
    memset(ip, 0, 16);
    if (s->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)s;
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, &in->sin_addr, 4);
        *port = in->sin_port;
        *mapped = 0;
    } else {
        CHECK(s->ss_family == AF_INET6);
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)s;
        memcpy(ip, &in6->sin6_addr, 16);
        *port = in6->sin6_port;
        *mapped = IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr);
    }
}

static void same_endpoint(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    uint8_t ia[16], ib[16];
    uint16_t pa, pb;
    int ma, mb;
    norm(a, ia, &pa, &ma);
    norm(b, ib, &pb, &mb);
    CHECK(!memcmp(ia, ib, 16) && pa == pb);
}

static void check_written(const uint8_t *w, size_t n, const sl_pp_info_t *orig, int version, int transport)
{
    sl_pp_info_t back;
    CHECK(n > 0 && n <= SL_PP_MAX_V1);
    for (size_t k = 0; k < n; k++)
        CHECK(sl_pp_parse(w, k, &back) == 0);
    CHECK(sl_pp_parse(w, n, &back) == (int)n);
    CHECK(back.version == version && !back.local && back.transport == transport);
    same_endpoint(&orig->src, &back.src);
    same_endpoint(&orig->dst, &back.dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_pp_info_t info;
    int r = sl_pp_parse(data, size, &info);
    CHECK(r >= -1 && (r <= 0 || (size_t)r <= size));

    /* Prefixes are cheap while undecided (at most SL_PP_MAX_V1 bytes scanned, or the fixed v2
     * bytes), so walk them all up to the first verdict, then check the next one and the end. */
    sl_pp_info_t tmp;
    size_t k = 0;
    int first = 0;
    for (; k <= size; k++)
        if ((first = sl_pp_parse(data, k, &tmp)) != 0) break;
    if (k > size) {
        CHECK(r == 0);
    } else {
        CHECK(first == r);
        CHECK(first == -1 || (size_t)first == k); /* a header is decided the moment it completes */
        if (k < size) CHECK(sl_pp_parse(data, k + 1, &tmp) == r);
    }
    if (r <= 0) return 0;

    CHECK(info.version == 1 || info.version == 2);
    CHECK(r <= (info.version == 1 ? SL_PP_MAX_V1 : SL_PP_MAX_V2));
    if (info.local) {
        CHECK(info.transport == SL_PP_UNSPEC && info.src.ss_family == AF_UNSPEC && info.dst.ss_family == AF_UNSPEC);
        return 0;
    }
    CHECK(info.transport == SL_PP_STREAM || info.transport == SL_PP_DGRAM);
    CHECK(info.src.ss_family == info.dst.ss_family);
    if (info.version == 1) CHECK(info.transport == SL_PP_STREAM);

    const struct sockaddr *src = (const struct sockaddr *)&info.src, *dst = (const struct sockaddr *)&info.dst;
    uint8_t w1[SL_PP_MAX_V1], w2[SL_PP_MAX_V1];
    size_t n1 = sl_pp_write(1, src, dst, w1, sizeof(w1));
    check_written(w1, n1, &info, 1, SL_PP_STREAM);
    size_t n2 = sl_pp_write(2, src, dst, w2, sizeof(w2));
    check_written(w2, n2, &info, 2, SL_PP_STREAM);
    if (info.transport == SL_PP_DGRAM) {
        n2 = sl_pp_write_dgram(src, dst, w2, sizeof(w2));
        check_written(w2, n2, &info, 2, SL_PP_DGRAM);
    }

    uint8_t ip[16];
    uint16_t port;
    int smapped, dmapped;
    norm(&info.src, ip, &port, &smapped);
    norm(&info.dst, ip, &port, &dmapped);
    if (info.version == 1 && info.src.ss_family == AF_INET) CHECK(n1 == (size_t)r && !memcmp(w1, data, n1));
    if (info.version == 2 && !(smapped && dmapped) && (size_t)r == 16 + (info.src.ss_family == AF_INET ? 12u : 36u))
        CHECK(n2 == (size_t)r && !memcmp(w2, data, n2));
    return 0;
}
