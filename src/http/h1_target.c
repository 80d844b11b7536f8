/* The HTTP/1.1 request head's target and fields, judged and normalised for the protocol-neutral
 * request: the target's forms (origin, absolute, asterisk), the routed host, the normalised path
 * and the query, header names with underscores, the method. */
#include "http/h1_internal.h"
#include "base/log.h"
#include "http/uri.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* Drops the header fields whose name has an underscore (gateway.http.headers_with_underscores:
 * drop): "Transfer_Encoding" must not look like framing to an upstream that folds '_' into '-'.
 * Dropped fields are invisible to routing, policies and the upstream. */
void sl_h1_drop_underscore_names(sl_head_t *h)
{
    size_t k = 0;
    for (size_t i = 0; i < h->n; i++) {
        const sl_hdr_t *x = &h->hdrs[i];
        if (memchr(sl_head_str(h, x->name_off), '_', x->name_len)) continue;
        h->hdrs[k++] = *x;
    }
    h->n = k;
}

int sl_h1_has_underscore_name(const sl_head_t *h)
{
    for (size_t i = 0; i < h->n; i++)
        if (memchr(sl_head_str(h, h->hdrs[i].name_off), '_', h->hdrs[i].name_len)) return 1;
    return 0;
}

/* RFC 3986 3.4: a query is pchar / "/" / "?", with well-formed escapes. */
static int query_valid(const char *q, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        unsigned char ch = (unsigned char)q[i];
        if (ch == '%') {
            if (i + 2 >= n || !isxdigit((unsigned char)q[i + 1]) || !isxdigit((unsigned char)q[i + 2])) return 0;
            i += 2;
        } else if (!isalnum(ch) && !strchr("-._~!$&'()*+,;=:@/?", ch)) {
            return 0;
        }
    }
    return 1;
}

/* Normalises and stores the host used for routing (lower case, no trailing dot, no port). */
static int set_host(sl_creq_t *rq, const char *h, size_t n)
{
    sl_exchange_t *ex = &rq->ex;
    sl_buf_t *b = &rq->host_store;
    size_t cap = SL_HOST_OUT_CAP(n), len = 0;
    b->len = 0;
    sl_buf_reserve(b, cap);
    if (sl_host_normalize(h, n, b->data, cap, &len, NULL) != 0) return -1;
    b->len = len;
    ex->host = b->data;
    ex->host_len = len;
    return 0;
}

/* Splits the target into path and query, normalises the path (uri.h) and checks the query.
 * Origin-form "/p?q", absolute-form "http://host/p?q" (its authority replaces Host, RFC 9112
 * 3.2.2), or "*" for OPTIONS (asterisk-form, routed as "*"). */
int sl_h1_parse_target(sl_creq_t *rq, const sl_hdr_t *host, const sl_gateway_cfg_t *g, const char *peer)
{
    sl_exchange_t *ex = &rq->ex;
    const sl_head_t *h = &rq->head;
    const char *t = sl_head_str(h, h->first_off);
    size_t tn = h->first_len;
    if (tn == 1 && t[0] == '*' && ex->req.method_id == SL_HTTP_OPTIONS) {
        ex->req.path = t;
        ex->req.path_len = 1;
        return host ? set_host(rq, sl_head_str(h, host->value_off), host->value_len) : 0;
    }
    const char *path = t, *end = t + tn;
    size_t skip = tn >= 7 && strncasecmp(t, "http://", 7) == 0 ? 7 : tn >= 8 && strncasecmp(t, "https://", 8) == 0 ? 8 : 0;
    if (skip) {
        const char *auth = t + skip;
        const char *ae = auth;
        while (ae < end && *ae != '/' && *ae != '?') ae++;
        if (ae == auth || set_host(rq, auth, (size_t)(ae - auth)) != 0) return -1;
        ex->req.authority = auth;
        ex->req.authority_len = (size_t)(ae - auth);
        path = ae;
    } else if (tn == 0 || t[0] != '/') {
        return -1;
    } else if (host && set_host(rq, sl_head_str(h, host->value_off), host->value_len) != 0) {
        return -1;
    }
    /* RFC 9110 7.2: an invalid Host is refused even when the target's authority replaces it. */
    if (skip && host) {
        char tmp[SL_HOST_OUT_CAP(256)];
        size_t l;
        if (host->value_len > 256 ||
            sl_host_normalize(sl_head_str(h, host->value_off), host->value_len, tmp, sizeof(tmp), &l, NULL) != 0)
            return -1;
    }
    const char *q = memchr(path, '?', (size_t)(end - path));
    size_t plen = (size_t)((q ? q : end) - path);
    if (q) {
        ex->req.query = q;
        ex->req.query_len = (size_t)(end - q);
        if (!query_valid(q, ex->req.query_len)) return -1;
    }
    unsigned flags = (g->http.merge_slashes ? 0 : SL_PATH_KEEP_SLASHES) |
                     (g->http.escaped_slashes == SL_ESCAPED_SLASHES_KEEP ? SL_PATH_KEEP_ESCAPED_SLASHES : 0);
    const char *err = NULL;
    sl_buf_t *ps = &rq->path_store;
    ps->len = 0;
    if (sl_path_normalize(path, plen, ps, flags, &err) != 0) {
        sl_log_debug("client %s: %s", peer, err ? err : "bad path");
        return -1;
    }
    ex->req.path = ps->data;
    ex->req.path_len = ps->len;
    return 0;
}

sl_http_method_t sl_h1_method_id(uint8_t m)
{
    switch (m) {
    case HTTP_GET: return SL_HTTP_GET;
    case HTTP_HEAD: return SL_HTTP_HEAD;
    case HTTP_POST: return SL_HTTP_POST;
    case HTTP_PUT: return SL_HTTP_PUT;
    case HTTP_DELETE: return SL_HTTP_DELETE;
    case HTTP_OPTIONS: return SL_HTTP_OPTIONS;
    case HTTP_TRACE: return SL_HTTP_TRACE;
    case HTTP_CONNECT: return SL_HTTP_CONNECT;
    default: return SL_HTTP_OTHER;
    }
}

