/* The judgements behind the cors policy, pure functions over request bytes: whether an origin
 * is allowed, whether a configured origin is well formed, whether a header list is one the
 * gateway may grant as asked. Called by the policy (cors.c) and directly by tests. */
#ifndef SL_POLICY_CORS_H
#define SL_POLICY_CORS_H

#include <stddef.h>
#include <stdint.h>

/* One allowed origin, lower-case: exactly "SCHEME://HOST[:PORT]", or for a wildcard
 * "SCHEME://" "*.DOMAIN[:PORT]" the parts before and after the "*" (prefix "https://", suffix
 * ".example.org"). */
typedef struct sl_cors_origin {
    const char *text;
    size_t len;
    size_t prefix_len; /* wildcard: the bytes of text before '*'; 0 for an exact origin */
} sl_cors_origin_t;

typedef struct sl_cors {
    int any_origin;  /* allow_origins: ["*"] */
    int credentials; /* allow_credentials */
    int any_header;  /* allow_headers holds "*": grant what a preflight asks for */
    const sl_cors_origin_t *origins;
    size_t n_origins;
    const char *methods; /* allow_methods joined with ", " */
    const char *headers; /* allow_headers joined with ", ", or NULL (none, or only "*") */
    const char *expose;  /* expose_headers joined with ", ", or NULL */
    const char *max_age; /* whole seconds, or NULL when not set */
} sl_cors_t;

/* Whether s[0..n) is an origin a configuration may allow, "SCHEME://HOST[:PORT]" with an
 * optional "*." before the host's first label: 1, with *wildcard set when it has one; 0 when
 * not (a path, a trailing slash, a '*' anywhere else, an empty host or port). */
int sl_cors_origin_form(const char *s, size_t n, int *wildcard);

/* Whether the request's Origin value o[0..n) is allowed by c. Letters compare in any case. A
 * wildcard entry matches one or more labels before its domain. "null", an empty value and
 * anything that is not one serialised origin (a list, spaces) are never allowed, not even by
 * "*". */
int sl_cors_origin_allowed(const sl_cors_t *c, const char *o, size_t n);

/* Whether v[0..n) is a comma-separated list of header names (RFC 9110 tokens, optional
 * whitespace around the commas): what Access-Control-Request-Headers may hold for the gateway
 * to grant it back unchanged. */
int sl_cors_token_list(const char *v, size_t n);

#endif
