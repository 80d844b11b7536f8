/* IPv4/IPv6 addresses and CIDR sets. A set answers "does any prefix contain this address"
 * with one hash lookup per prefix length in use, so it stays fast with 10,000 entries. */
#ifndef SL_BASE_CIDR_H
#define SL_BASE_CIDR_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/map.h"

typedef struct sl_ip {
    int family;        /* 4 or 6 */
    uint8_t bytes[16]; /* network order; IPv4 in the first 4 */
} sl_ip_t;

/* Parses "10.1.2.3" or "2001:db8::1" (n bytes, not NUL-terminated); 0 or -1. */
int sl_ip_parse(const char *s, size_t n, sl_ip_t *out);

/* Parses "10.0.0.0/8", "2001:db8::/32" or a bare address; 0 or -1 (bad address or length). */
int sl_cidr_parse(const char *s, sl_ip_t *addr, int *prefix);

/* True when ip is inside net/prefix (same family). */
int sl_cidr_match(const sl_ip_t *net, int prefix, const sl_ip_t *ip);

struct sockaddr;
/* The address (an IPv4-mapped IPv6 one as IPv4) and port of an AF_INET/AF_INET6 socket address;
 * 0, or -1 for another family. */
int sl_ip_from_sockaddr(const struct sockaddr *sa, sl_ip_t *out, uint16_t *port);

/* Writes ip as text ("10.1.2.3", "2001:db8::1") into out (at least 46 bytes). */
void sl_ip_format(const sl_ip_t *ip, char *out, size_t size);

typedef struct sl_cidr_set {
    sl_arena_t arena;
    sl_map_t by_len[2][129]; /* [v4, v6][prefix length] -> masked address */
    uint8_t used[2][129];
    size_t n;
} sl_cidr_set_t;

void sl_cidr_set_init(sl_cidr_set_t *s);
void sl_cidr_set_add(sl_cidr_set_t *s, const sl_ip_t *addr, int prefix);
int sl_cidr_set_contains(const sl_cidr_set_t *s, const sl_ip_t *ip);
void sl_cidr_set_free(sl_cidr_set_t *s);

#endif
