/* cookie_rewrite: rewrites Domain, Path, Secure and SameSite of the upstream's Set-Cookie
 * headers, by cookie name, and keeps every other byte. Runs on the response head only; the
 * sticky cookie the gateway issues itself (balance: cookie) is written after the upstream's
 * headers and never passes through here. */
#include "policy/cookie_rewrite.h"
#include "policy/policy.h"
#include "base/common.h"
#include "runtime/generation.h"

#include <string.h>
#include <strings.h>

/* RFC 6265 5.2: the name=value pair and the attributes are split on ';' and trimmed of WSP. */
static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

static size_t skip_wsp(const char *p, size_t len)
{
    size_t i = 0;
    while (i < len && is_wsp(p[i])) i++;
    return i;
}

static size_t trim_end(const char *p, size_t len)
{
    while (len && is_wsp(p[len - 1])) len--;
    return len;
}

enum { A_DOMAIN, A_PATH, A_SAMESITE, A_SECURE, A_OTHER };

static const char *const attr_names[] = {"Domain", "Path", "SameSite", "Secure"};

/* Which attribute a segment (the bytes between two ';') is: its name is the text before any
 * '=', trimmed, in any case. */
static int attr_kind(const char *seg, size_t len)
{
    size_t start = skip_wsp(seg, len);
    const char *eq = memchr(seg + start, '=', len - start);
    size_t nlen = trim_end(seg + start, eq ? (size_t)(eq - seg) - start : len - start);
    for (int k = 0; k < A_OTHER; k++)
        if (strlen(attr_names[k]) == nlen && strncasecmp(attr_names[k], seg + start, nlen) == 0) return k;
    return A_OTHER;
}

static const sl_cookie_rule_t *find_rule(const sl_cookie_rule_t *rules, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(rules[i].name) == len && memcmp(rules[i].name, name, len) == 0) return &rules[i];
    return NULL;
}

int sl_cookie_rewrite(const sl_cookie_rule_t *rules, size_t n, const char *value, size_t len, sl_buf_t *out)
{
    const char *semi = memchr(value, ';', len);
    size_t pair = semi ? (size_t)(semi - value) : len;
    const char *eq = memchr(value, '=', pair);
    if (!eq) return 0; /* not a cookie: a browser ignores it, so it is passed on as it came */
    size_t start = skip_wsp(value, (size_t)(eq - value));
    const sl_cookie_rule_t *r =
        find_rule(rules, n, value + start, trim_end(value + start, (size_t)(eq - value) - start));
    if (!r) return 0;

    /* The configured values by attribute; NULL leaves an attribute alone. */
    const char *want[A_SECURE] = {r->domain, r->path, r->samesite};
    int seen[A_OTHER] = {0};
    sl_buf_append(out, value, pair);
    for (size_t pos = pair; pos < len;) {
        size_t seg = pos + 1; /* value[pos] is the ';' */
        const char *next = memchr(value + seg, ';', len - seg);
        size_t end = next ? (size_t)(next - value) : len;
        int k = attr_kind(value + seg, end - seg);
        if (k < A_SECURE && want[k]) {
            /* One value left: the first in place (its leading space kept), later ones dropped. */
            if (!seen[k]) {
                sl_buf_append(out, value + pos, 1 + skip_wsp(value + seg, end - seg));
                sl_buf_printf(out, "%s=%s", attr_names[k], want[k]);
            }
        } else if (!(k == A_SECURE && r->secure == 0)) {
            sl_buf_append(out, value + pos, end - pos);
        }
        if (k != A_OTHER) seen[k] = 1;
        pos = end;
    }
    /* Missing ones are appended in the configuration's order. */
    for (int k = A_DOMAIN; k <= A_PATH; k++)
        if (want[k] && !seen[k]) sl_buf_printf(out, "; %s=%s", attr_names[k], want[k]);
    if (r->secure == 1 && !seen[A_SECURE]) sl_buf_puts(out, "; Secure");
    if (want[A_SAMESITE] && !seen[A_SAMESITE]) sl_buf_printf(out, "; SameSite=%s", want[A_SAMESITE]);
    return 1;
}

static int enabled(const sl_policies_cfg_t *pc)
{
    return pc->cookie_rewrite.enabled;
}

/* The upstream's Set-Cookie fields (and a 101's); a rewritten value goes into the arena, built
 * in the thread's scratch buffer. */
static void on_response_headers(const sl_route_rt_t *rt, void *data, const sl_policy_state_t *st,
                                sl_http_resp_t *resp, sl_arena_t *a)
{
    SL_UNUSED(data);
    SL_UNUSED(st);
    if (resp->local) return;
    const sl_policies_cfg_t *pc = &rt->cfg->policies;
    for (uint32_t i = 0; i < resp->hdrs.n; i++) {
        sl_http_hdr_t *x = &resp->hdrs.v[i];
        if (!SL_HDR_IS(x, "set-cookie")) continue;
        sl_buf_t *out = sl_buf_thread_scratch();
        if (!sl_cookie_rewrite(pc->cookie_rewrite.rules, pc->cookie_rewrite.n_rules, x->value, x->value_len, out))
            continue;
        char *v = sl_arena_alloc(a, out->len + 1);
        memcpy(v, out->data, out->len);
        x->value = v;
        x->value_len = (uint32_t)out->len;
    }
}

const sl_policy_ops_t sl_policy_cookie_rewrite = {
    .name = "cookie_rewrite",
    .enabled = enabled,
    .on_response_headers = on_response_headers,
};
