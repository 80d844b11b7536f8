/* cors: the gateway answers a route's CORS preflights itself and puts the CORS headers on the
 * route's responses for the origins it allows (Fetch standard, "CORS protocol"). The upstream's
 * own Access-Control-* headers never reach the client on such a route: one place decides. */
#include "policy/cors.h"

#include <string.h>
#include <strings.h>

#include "base/token.h"

/* ---- judgements ------------------------------------------------------------------------- */

static int alpha(unsigned char c)
{
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static int digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* A host as browsers serialise it in an origin: labels of letters, digits and '-' separated by
 * single dots (IPv4 literals among them), or an IPv6 literal in brackets. */
static int host_form(const char *s, size_t n)
{
    if (!n) return 0;
    if (s[0] == '[') {
        if (n < 3 || s[n - 1] != ']') return 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (!(digit((unsigned char)s[i]) || strchr("abcdefABCDEF:.", s[i]))) return 0;
        return 1;
    }
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (!label || s[i - 1] == '-') return 0;
            label = 0;
        } else if (alpha(c) || digit(c) || (c == '-' && label)) {
            label++;
        } else {
            return 0;
        }
    }
    return label && s[n - 1] != '-';
}

int sl_cors_origin_form(const char *s, size_t n, int *wildcard)
{
    *wildcard = 0;
    size_t i = 0;
    if (!n || !alpha((unsigned char)s[0])) return 0;
    while (i < n && (alpha((unsigned char)s[i]) || digit((unsigned char)s[i]) || strchr("+-.", s[i]))) i++;
    if (n - i < 3 || memcmp(s + i, "://", 3) != 0) return 0;
    i += 3;
    if (n - i >= 2 && s[i] == '*' && s[i + 1] == '.') {
        *wildcard = 1;
        i += 2;
    }
    /* The port, if any, follows the last ':' that is not inside an IPv6 literal. */
    size_t end = n;
    for (size_t j = n; j > i; j--) {
        if (s[j - 1] == ']') break;
        if (s[j - 1] == ':') {
            size_t digits = n - j;
            if (!digits || digits > 5) return 0;
            unsigned port = 0;
            for (size_t k = j; k < n; k++) {
                if (!digit((unsigned char)s[k])) return 0;
                port = port * 10 + (unsigned)(s[k] - '0');
            }
            if (port > 65535) return 0;
            end = j - 1;
            break;
        }
    }
    if (*wildcard && s[i] == '[') return 0;
    return host_form(s + i, end - i);
}

int sl_cors_origin_allowed(const sl_cors_t *c, const char *o, size_t n)
{
    int wildcard;
    /* One serialised origin, never a pattern: what the browser sent must itself be well formed
     * (this refuses "null", lists, spaces and a '*' in the request). */
    if (!sl_cors_origin_form(o, n, &wildcard) || wildcard) return 0;
    if (c->any_origin) return 1;
    for (size_t i = 0; i < c->n_origins; i++) {
        const sl_cors_origin_t *a = &c->origins[i];
        if (!a->prefix_len) {
            if (a->len == n && strncasecmp(a->text, o, n) == 0) return 1;
            continue;
        }
        /* A wildcard: the same scheme, then at least one label, then the rest. */
        size_t suffix = a->len - a->prefix_len - 1; /* ".DOMAIN[:PORT]" */
        if (n <= a->prefix_len + suffix) continue;
        if (strncasecmp(a->text, o, a->prefix_len) != 0) continue;
        if (strncasecmp(a->text + a->prefix_len + 1, o + n - suffix, suffix) != 0) continue;
        /* o is well formed, so what is left between them is one or more whole labels. */
        return 1;
    }
    return 0;
}

int sl_cors_token_list(const char *v, size_t n)
{
    size_t i = 0, items = 0;
    for (;;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t')) i++;
        size_t start = i;
        while (i < n && sl_is_tchar((unsigned char)v[i])) i++;
        if (i == start) return 0;
        items++;
        while (i < n && (v[i] == ' ' || v[i] == '\t')) i++;
        if (i == n) return items > 0;
        if (v[i] != ',') return 0;
        i++;
    }
}
