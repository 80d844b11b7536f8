/* The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): a header a load balancer
 * puts in front of a connection's first byte to say who the client really is. Pure functions on
 * caller buffers: no allocation, no state, nothing beyond libc.
 *
 * Reading (sl_pp_parse) takes whatever bytes have arrived so far and answers one of:
 *   > 0  a complete, valid header of that many bytes starts the buffer; bytes after it are the
 *        client's data and are not consumed;
 *     0  the bytes are a strict prefix of a header that may still turn out valid: read more and
 *        call again with the longer buffer (it is re-parsed from the start);
 *    -1  not a valid header: close the connection. Anything that is not a PROXY header at all is
 *        -1 as soon as its first differing byte is seen, so an unexpected client fails fast.
 * The verdict never goes back: once a prefix is -1 every longer buffer is -1, and once a prefix
 * gives n > 0 every longer buffer gives the same n.
 *
 * Version 1 is one US-ASCII line, at most SL_PP_MAX_V1 bytes with its CRLF:
 *   "PROXY TCP4 <src> <dst> <sport> <dport>\r\n", "PROXY TCP6 ..." or "PROXY UNKNOWN[ ...]\r\n".
 * Fields are separated by exactly one space; addresses are what inet_pton() accepts for the
 * announced family (IPv4 without leading zeros); ports are 0-65535 without leading zeros; a lone
 * CR or LF is an error. After "UNKNOWN " the rest of the line is ignored, as the spec says.
 * A buffer of SL_PP_MAX_V1 bytes that holds no CRLF is -1.
 *
 * Version 2 is the 16-byte binary header (signature, version 2, command LOCAL or PROXY, family
 * UNSPEC/INET/INET6/UNIX, transport UNSPEC/STREAM/DGRAM, length) and `length` more bytes:
 * addresses then TLVs. Any other version, command, family or transport is -1, and so is a whole
 * header longer than SL_PP_MAX_V2 bytes (the spec allows 16 + 65535; real senders stay far
 * below, and the cap bounds what the caller must buffer before the verdict). For a PROXY
 * command with an INET, INET6 or UNIX family and a STREAM or DGRAM transport, the length must
 * cover the address block (12, 36 or 216 bytes) and what follows must be a well-formed chain
 * of TLVs (type, 16-bit length, value) ending exactly at the header's end; a PP2_TYPE_CRC32C
 * TLV, if present, must be 4 bytes, appear once and match the header's CRC32c. Other TLVs are
 * skipped. For a LOCAL command, or an UNSPEC family or transport, the address block and TLVs
 * are skipped unread, as the spec asks the receiver to ignore them.
 *
 * Addresses are reported as the header gives them: a TCP6 or INET6 header carrying
 * ::ffff:a.b.c.d stays AF_INET6 (mapping it to IPv4 is the caller's choice, as for an accepted
 * socket's peer on a dual-stack listener).
 *
 * Writing (sl_pp_write, sl_pp_write_dgram) always produces a header sl_pp_parse accepts, of at
 * most SL_PP_MAX_V1 bytes for either version (v2: 16 + 12 or 16 + 36 bytes, no TLVs). Families:
 *   - both addresses IPv4, or IPv4-mapped IPv6 (::ffff:a.b.c.d): TCP4 / INET, unmapped, so a
 *     dual-stack listener's IPv4 client is announced as the IPv4 client it is;
 *   - at least one real IPv6 address: TCP6 / INET6, with an IPv4 one written mapped
 *     (::ffff:a.b.c.d), as v1 and v2 need both addresses in one family;
 *   - an address that is NULL or neither AF_INET nor AF_INET6: v1 "PROXY UNKNOWN\r\n", v2 the
 *     LOCAL command with UNSPEC family and no address block, which every receiver must accept
 *     and answer by using the connection's real endpoints.
 * IPv6 scope ids are not carried (the protocol has no field for them). */
#ifndef SL_STREAM_PROXY_PROTOCOL_H
#define SL_STREAM_PROXY_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SL_PP_MAX_V1 107       /* longest v1 line, CRLF included ("PROXY UNKNOWN" + two IPv6 + ports) */
#define SL_PP_V2_FIXED 16      /* v2 signature, version/command, family/transport, length */
#define SL_PP_MAX_V2 4096      /* longest v2 header accepted, fixed part included */
#define SL_PP_MAX SL_PP_MAX_V2 /* a buffer this long can hold any header sl_pp_parse accepts */

/* v2 transport nibble values, also reported for v1 TCP4/TCP6 (STREAM). */
enum { SL_PP_UNSPEC = 0, SL_PP_STREAM = 1, SL_PP_DGRAM = 2 };

typedef struct sl_pp_info {
    int version;   /* 1 or 2 */
    int transport; /* SL_PP_STREAM or SL_PP_DGRAM when !local, SL_PP_UNSPEC when local */
    /* 1 when the header carries no client address (v1 UNKNOWN; v2 LOCAL, or PROXY with an UNSPEC
     * or UNIX family or an UNSPEC transport): use the connection's real endpoints instead. */
    int local;
    /* When !local: the client (src) and the address it connected to (dst), both AF_INET or both
     * AF_INET6, with ports. All zero (AF_UNSPEC) when local. */
    struct sockaddr_storage src, dst;
} sl_pp_info_t;

/* Parses a header at the start of buf[0..len): bytes consumed (> 0), 0 for "need more", -1 for
 * invalid (see above). out is written only when the result is > 0. */
int sl_pp_parse(const uint8_t *buf, size_t len, sl_pp_info_t *out);

/* Writes a version 1 or 2 header for a TCP connection from src to dst into out[0..cap).
 * Returns its length, or 0 if cap is too small or version is neither 1 nor 2. */
size_t sl_pp_write(int version, const struct sockaddr *src, const struct sockaddr *dst, uint8_t *out, size_t cap);

/* Writes a version 2 header with the DGRAM transport (UDP; version 1 cannot express UDP).
 * Returns its length, or 0 if cap is too small. */
size_t sl_pp_write_dgram(const struct sockaddr *src, const struct sockaddr *dst, uint8_t *out, size_t cap);

#endif
