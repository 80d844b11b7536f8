/* The one reading of a request's path and host that routing, policies and the upstream share.
 *
 * A route or a policy judges a resource by its path and host; the upstream serves the resource
 * it decodes from the same bytes. When the two readings differ ("/%61dmin" is "/admin" to the
 * upstream but not to a "/admin/" prefix route), a policy can be walked around. So the gateway
 * normalises once, before routing, routes on the result and forwards the result, and refuses
 * what it cannot normalise without guessing. Both functions are pure: no allocation beyond the
 * output buffer, no global state, safe from any thread. */
#ifndef SL_HTTP_URI_H
#define SL_HTTP_URI_H

#include <stddef.h>

#include "base/buf.h"

/* sl_path_normalize flags. */
/* Keep empty segments ("//"): by default consecutive slashes are merged into one. */
#define SL_PATH_KEEP_SLASHES 0x1u
/* Keep %2F and %5C (any case) as the escapes %2F and %5C rather than refusing the path. They are
 * never decoded, so they never split or join segments: "/a/..%2Fb" has the segment "..%2Fb",
 * which is not a dot segment. %00 is refused whatever the flags. */
#define SL_PATH_KEEP_ESCAPED_SLASHES 0x2u

/* Normalises an origin-form path (RFC 9112 3.2.1) per RFC 3986 6.2.2, without its query: the
 * caller splits the request target at its first '?' and leaves the query alone.
 *
 * In order, in one pass:
 * - percent-escapes of unreserved characters (ALPHA DIGIT "-" "." "_" "~") are decoded
 *   ("%61" -> "a", "%2e" -> "."); every other escape stays encoded with its hex digits in upper
 *   case ("%c0%ae" -> "%C0%AE"), so one resource has one spelling;
 * - dot segments ("." and "..", also when spelled "%2e", ".%2E" ...) are resolved after that
 *   decoding, as RFC 3986 5.2.4 remove_dot_segments does: "/a/./b" -> "/a/b", "/a/b/.." -> "/a/",
 *   "/a/b/." -> "/a/b/". A ".." that would climb above the root is refused ("above_root"), as
 *   nginx does, rather than clamped at the root;
 * - consecutive slashes are merged ("//admin" -> "/admin") unless SL_PATH_KEEP_SLASHES.
 * Case outside escapes is never changed, and ';' parameters are ordinary segment bytes.
 * An empty input gives "/" (RFC 9112 3.2.1: an empty path is sent as "/").
 *
 * Refused, with *err_code (when err_code is not NULL) set to a static string naming why:
 * - "path_not_absolute": the path does not start with '/';
 * - "path_bad_escape": a '%' not followed by two hex digits;
 * - "path_bad_char": a raw byte that is neither pchar nor '/' (RFC 3986 3.3): controls, space,
 *   DEL, bytes >= 0x80, '"', '#', '<', '>', '?', '[', '\', ']', '^', '`', '{', '|', '}';
 * - "path_encoded_nul": %00, whatever the flags;
 * - "path_encoded_slash": %2F or %5C (any case), unless SL_PATH_KEEP_ESCAPED_SLASHES;
 * - "path_above_root": a ".." segment with nothing left to remove.
 *
 * The result is appended to out (at out->len), is never longer than max(n, 1), and has a NUL
 * after it that out->len does not count. It contains only '/', unreserved, sub-delims, ':', '@'
 * and '%' followed by two upper-case hex digits, so it can be forwarded upstream as it is.
 * Normalising the result again, with the same flags, gives the same bytes. No allocation when out
 * has room for n + 2 more bytes (sl_buf_reserve aborts on out-of-memory otherwise; the caller
 * bounds n, e.g. by max_uri_bytes). Returns 0, or -EINVAL with out->len as it was. */
int sl_path_normalize(const char *in, size_t n, sl_buf_t *out, unsigned flags, const char **err_code);

/* Room that sl_host_normalize always has enough of for an input of n bytes. An IPv6 literal may
 * come out longer than it went in ("[::ffff:0:1]" -> "[::ffff:0.0.0.1]"); a name never does. */
#define SL_HOST_OUT_CAP(n) ((n) + 64)

/* Validates a Host header value or an absolute-form authority (RFC 9110 7.2, RFC 3986 3.2.2):
 * uri-host [ ":" [ port ] ], and writes the host that routes match against.
 *
 * Accepted hosts, stricter than RFC 3986 where real names never go:
 * - a name: letters, digits, '-', '_' and '.', in non-empty labels; no percent-escapes and no
 *   sub-delims. Written lower-cased, without a single trailing dot ("Admin.Internal." ->
 *   "admin.internal"); "a..", ".", ".a" and "a..b" are refused;
 * - an IPv4 address: a name whose last label is a number (digits, or "0x" and hex digits) must
 *   be a dotted quad of decimal octets 0..255 without leading zeros, so "127.1", "0177.0.0.1"
 *   and "0x7f.0.0.1", which resolvers read as 127.0.0.1, are refused rather than routed as
 *   names;
 * - an IPv6 literal "[...]" that inet_pton accepts; written in brackets as inet_ntop spells it
 *   (lower case, zeros compressed), so "[0:0::1]" and "[::1]" are one host. IPvFuture and zone
 *   identifiers are refused.
 * The port, when there is one, is one or more digits with a value of 0..65535 (leading zeros
 * allowed, as RFC 3986 allows them). An empty port ("host:", which RFC 3986 allows) is no port.
 * Everything else is refused: empty host, whitespace anywhere, userinfo ('@'), '/', ',', '%',
 * other sub-delims, a second ':' outside brackets, bytes >= 0x80.
 *
 * On success writes the host to out (not NUL-terminated when out_cap is exactly the length; NUL-
 * terminated otherwise), its length to *out_len, and the port to *port (-1 when there is none;
 * port may be NULL) and returns 0. Returns -EINVAL for an invalid value and -ENOSPC when out_cap
 * is too small (SL_HOST_OUT_CAP(n) is always enough); the outputs are then unspecified. */
int sl_host_normalize(const char *in, size_t n, char *out, size_t out_cap, size_t *out_len, int *port);

#endif
