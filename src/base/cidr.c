#include "base/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int sl_ip_parse(const char *s, size_t n, sl_ip_t *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof(buf)) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->bytes) == 1) {
        out->family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, out->bytes) == 1) {
        /* An IPv4-mapped IPv6 address is that IPv4 address. */
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(out->bytes, mapped, 12)) {
            memmove(out->bytes, out->bytes + 12, 4);
            memset(out->bytes + 4, 0, 12);
            out->family = 4;
        } else {
            out->family = 6;
        }
        return 0;
    }
    return -1;
}

int sl_cidr_parse(const char *s, sl_ip_t *addr, int *prefix)
{
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (sl_ip_parse(s, n, addr) != 0) return -1;
    int max = addr->family == 4 ? 32 : 128;
    if (!slash) {
        *prefix = max;
        return 0;
    }
    char *end;
    long p = strtol(slash + 1, &end, 10);
    if (!slash[1] || *end || p < 0 || p > max) return -1;
    *prefix = (int)p;
    return 0;
}

static void mask(const sl_ip_t *ip, int prefix, uint8_t *out)
{
    size_t len = ip->family == 4 ? 4 : 16;
    memset(out, 0, 16);
    for (size_t i = 0; i < len; i++) {
        int bits = prefix - (int)i * 8;
        if (bits >= 8) out[i] = ip->bytes[i];
        else if (bits > 0) out[i] = ip->bytes[i] & (uint8_t)(0xff << (8 - bits));
    }
}

int sl_cidr_match(const sl_ip_t *net, int prefix, const sl_ip_t *ip)
{
    if (net->family != ip->family) return 0;
    uint8_t a[16], b[16];
    mask(net, prefix, a);
    mask(ip, prefix, b);
    return !memcmp(a, b, sizeof(a));
}

int sl_ip_from_sockaddr(const struct sockaddr *sa, sl_ip_t *out, uint16_t *port)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        out->family = 4;
        memcpy(out->bytes, &in->sin_addr, 4);
        if (port) *port = ntohs(in->sin_port);
        return 0;
    }
    if (sa->sa_family != AF_INET6) return -1;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    if (!memcmp(&in6->sin6_addr, mapped, 12)) {
        out->family = 4;
        memcpy(out->bytes, (const uint8_t *)&in6->sin6_addr + 12, 4);
    } else {
        out->family = 6;
        memcpy(out->bytes, &in6->sin6_addr, 16);
    }
    if (port) *port = ntohs(in6->sin6_port);
    return 0;
}

void sl_ip_format(const sl_ip_t *ip, char *out, size_t size)
{
    if (!inet_ntop(ip->family == 4 ? AF_INET : AF_INET6, ip->bytes, out, (socklen_t)size) && size) out[0] = '\0';
}

void sl_cidr_set_init(sl_cidr_set_t *s)
{
    memset(s, 0, sizeof(*s));
    sl_arena_init(&s->arena, 16384);
}

void sl_cidr_set_add(sl_cidr_set_t *s, const sl_ip_t *addr, int prefix)
{
    int f = addr->family == 4 ? 0 : 1;
    size_t len = f ? 16 : 4;
    uint8_t *key = sl_arena_alloc(&s->arena, 16);
    mask(addr, prefix, key);
    *sl_map_slot(&s->by_len[f][prefix], (const char *)key, len) = (void *)1;
    s->used[f][prefix] = 1;
    s->n++;
}

int sl_cidr_set_contains(const sl_cidr_set_t *s, const sl_ip_t *ip)
{
    int f = ip->family == 4 ? 0 : 1;
    size_t len = f ? 16 : 4;
    int max = f ? 128 : 32;
    uint8_t key[16];
    for (int p = max; p >= 0; p--) {
        if (!s->used[f][p]) continue;
        mask(ip, p, key);
        if (sl_map_get(&s->by_len[f][p], (const char *)key, len)) return 1;
    }
    return 0;
}

void sl_cidr_set_free(sl_cidr_set_t *s)
{
    for (int f = 0; f < 2; f++)
        for (int p = 0; p <= 128; p++) sl_map_free(&s->by_len[f][p]);
    sl_arena_reset(&s->arena);
}
