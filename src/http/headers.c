/* The header vector of request.h: fields as borrowed (name, value) pairs in a per-exchange
 * arena, so building, editing and forwarding a head copies no bytes. */
#include "http/request.h"
#include "base/common.h"

#include <string.h>
#include <strings.h>

void sl_http_hdrs_grow(sl_http_hdrs_t *h, sl_arena_t *a)
{
    /* The old array stays in the arena until the exchange ends: a few hundred bytes. */
    uint32_t cap = h->cap ? h->cap * 2 : 16;
    sl_http_hdr_t *v = sl_arena_alloc(a, cap * sizeof(*v));
    if (h->n) memcpy(v, h->v, h->n * sizeof(*v));
    h->v = v;
    h->cap = cap;
}

size_t sl_http_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

void sl_http_hdrs_add_u64(sl_http_hdrs_t *h, sl_arena_t *a, const char *name, uint64_t v)
{
    char *s = sl_arena_alloc(a, 24);
    sl_http_hdrs_add(h, a, name, strlen(name), s, sl_http_u64(s, v));
}

int sl_http_hdr_is(const sl_http_hdr_t *x, const char *name, size_t nlen)
{
    return x->name_len == nlen && strncasecmp(x->name, name, nlen) == 0;
}

size_t sl_http_hdrs_remove(sl_http_hdrs_t *h, const char *name, size_t nlen)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < h->n; i++)
        if (!sl_http_hdr_is(&h->v[i], name, nlen)) h->v[k++] = h->v[i];
    size_t removed = h->n - k;
    h->n = k;
    return removed;
}

long sl_http_hdrs_find(const sl_http_hdrs_t *h, const char *name, size_t nlen, size_t from)
{
    for (size_t i = from; i < h->n; i++)
        if (sl_http_hdr_is(&h->v[i], name, nlen)) return (long)i;
    return -1;
}

static int list_contains(const char *list, size_t len, const char *name, size_t name_len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (list[i] == ' ' || list[i] == '\t' || list[i] == ',')) i++;
        size_t start = i;
        while (i < len && list[i] != ',') i++;
        size_t end = i;
        while (end > start && (list[end - 1] == ' ' || list[end - 1] == '\t')) end--;
        if (end - start == name_len && strncasecmp(list + start, name, name_len) == 0) return 1;
    }
    return 0;
}

int sl_http_hdrs_has_token(const sl_http_hdrs_t *h, const char *name, const char *token)
{
    size_t nl = strlen(name), tl = strlen(token);
    for (uint32_t i = 0; i < h->n; i++) {
        const sl_http_hdr_t *x = &h->v[i];
        if (sl_http_hdr_is(x, name, nl) && list_contains(x->value, x->value_len, token, tl)) return 1;
    }
    return 0;
}

int sl_http_hdrs_hop_by_hop(const sl_http_hdrs_t *h, const sl_http_hdr_t *x)
{
    if (SL_HDR_IS(x, "connection") || SL_HDR_IS(x, "keep-alive") || SL_HDR_IS(x, "proxy-connection") ||
        SL_HDR_IS(x, "te") || SL_HDR_IS(x, "trailer") || SL_HDR_IS(x, "transfer-encoding") || SL_HDR_IS(x, "upgrade"))
        return 1;
    /* Framing and Host are the proxy's business: a Connection token cannot remove them. */
    if (SL_HDR_IS(x, "content-length") || SL_HDR_IS(x, "host")) return 0;
    for (uint32_t i = 0; i < h->n; i++) {
        const sl_http_hdr_t *conn = &h->v[i];
        if (SL_HDR_IS(conn, "connection") && list_contains(conn->value, conn->value_len, x->name, x->name_len))
            return 1;
    }
    return 0;
}

const char *sl_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 200 ? "Informational" : status < 300 ? "Success" : status < 400 ? "Redirection"
                   : status < 500 ? "Client Error" : "Server Error";
    }
}
