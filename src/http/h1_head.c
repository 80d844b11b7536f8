/* Message head accumulation and header classification shared by both sides of the proxy. */
#include "http/h1_internal.h"
#include "base/common.h"
#include "base/token.h"

#include <string.h>
#include <strings.h>

void sl_head_reset(sl_head_t *h)
{
    h->buf.len = 0;
    h->n = 0;
    h->first_off = h->first_len = 0;
    h->bytes = 0;
    h->last = SL_HEAD_NONE;
}

void sl_head_free(sl_head_t *h)
{
    sl_buf_free(&h->buf);
    free(h->hdrs);
    memset(h, 0, sizeof(*h));
}

void sl_head_first(sl_head_t *h, const char *p, size_t n)
{
    if (!h->first_len) h->first_off = (uint32_t)h->buf.len;
    sl_buf_append(&h->buf, p, n);
    h->first_len += (uint32_t)n;
    h->bytes += n;
}

int sl_head_field(sl_head_t *h, const char *p, size_t n)
{
    if (h->last != SL_HEAD_FIELD) {
        if (h->n == h->cap) {
            h->cap = h->cap ? h->cap * 2 : 16;
            h->hdrs = sl_xrealloc(h->hdrs, h->cap * sizeof(sl_hdr_t));
        }
        sl_hdr_t *x = &h->hdrs[h->n++];
        memset(x, 0, sizeof(*x));
        x->name_off = (uint32_t)h->buf.len;
        h->bytes += 4; /* ": " and CRLF */
    }
    sl_buf_append(&h->buf, p, n);
    h->hdrs[h->n - 1].name_len += (uint32_t)n;
    h->bytes += n;
    h->last = SL_HEAD_FIELD;
    return 0;
}

int sl_head_value(sl_head_t *h, const char *p, size_t n)
{
    if (h->last == SL_HEAD_VALUE_DONE || h->n == 0) return -1; /* obs-fold */
    sl_hdr_t *x = &h->hdrs[h->n - 1];
    if (h->last != SL_HEAD_VALUE) x->value_off = (uint32_t)h->buf.len;
    sl_buf_append(&h->buf, p, n);
    x->value_len += (uint32_t)n;
    h->bytes += n;
    h->last = SL_HEAD_VALUE;
    return 0;
}

void sl_head_value_done(sl_head_t *h)
{
    if (h->n && h->last != SL_HEAD_VALUE) h->hdrs[h->n - 1].value_off = (uint32_t)h->buf.len;
    h->last = SL_HEAD_VALUE_DONE;
}

int sl_hdr_value_is(const sl_head_t *h, const sl_hdr_t *x, const char *want)
{
    const char *v = sl_head_str(h, x->value_off);
    size_t n = x->value_len;
    while (n && (*v == ' ' || *v == '\t')) v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    return n == strlen(want) && strncasecmp(v, want, n) == 0;
}

int sl_head_te_count(const sl_head_t *h, int chunked)
{
    int n = 0;
    for (size_t i = 0; i < h->n; i++) {
        const sl_hdr_t *x = &h->hdrs[i];
        if (!sl_hdr_is(h, x, "transfer-encoding")) continue;
        if (++n > 1 || !chunked || !sl_hdr_value_is(h, x, "chunked")) return -1;
    }
    return n;
}

void sl_head_to_hdrs(const sl_head_t *h, sl_http_hdrs_t *v, sl_arena_t *a)
{
    for (size_t i = 0; i < h->n; i++) {
        const sl_hdr_t *x = &h->hdrs[i];
        sl_http_hdrs_add(v, a, sl_head_str(h, x->name_off), x->name_len, sl_head_str(h, x->value_off), x->value_len);
    }
}

int sl_head_names_valid(const sl_head_t *h)
{
    for (size_t i = 0; i < h->n; i++) {
        const sl_hdr_t *x = &h->hdrs[i];
        if (!x->name_len) return 0;
        const char *s = sl_head_str(h, x->name_off);
        for (uint32_t j = 0; j < x->name_len; j++)
            if (!sl_is_tchar((unsigned char)s[j])) return 0;
    }
    return 1;
}
