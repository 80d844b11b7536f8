/* The one writer of response heads: proxied responses, 101s and the gateway's own answers
 * (refusals, errors, direct responses) all pass through respond(), which runs the response
 * phase exactly once (the route's on_response_headers hooks, the request id, the sticky
 * cookie) and hands the head to the server codec's stream ops, which frame it. */
#include "http/response.h"
#include "base/common.h"
#include "observe/access_log.h"
#include "policy/policy.h"

#include <stdio.h>
#include <string.h>

const char *sl_http_log_header(const void *ctx, const char *name, size_t n, size_t *len)
{
    const sl_http_hdrs_t *h = ctx;
    long i = sl_http_hdrs_find(h, name, n, 0);
    if (i < 0) return NULL;
    *len = h->v[i].value_len;
    return h->v[i].value;
}

/* Keeps the response fields the access log asks for (response_header.NAME), as records of name
 * length, name, value length, value: the upstream's head is gone by the time the line is made. */
static void capture(sl_exchange_t *ex, const sl_http_hdrs_t *h)
{
    sl_buf_t *b = ex->resp_log;
    b->len = 0;
    const sl_access_format_t *fmt = ex->gen ? &ex->gen->cfg->gateway.access_log.fmt : NULL;
    if (!fmt || !fmt->response_headers || !sl_generation_access_log(ex->gen)) return;
    for (size_t i = 0; i < fmt->n_fields; i++) {
        const sl_access_field_t *f = &fmt->fields[i];
        if (f->id != SL_AF_RESPONSE_HEADER) continue;
        size_t vl = 0;
        const char *v = sl_http_log_header(h, f->header, f->header_len, &vl);
        if (!v) continue;
        sl_buf_append(b, &f->header_len, sizeof(size_t));
        sl_buf_append(b, f->header, f->header_len);
        sl_buf_append(b, &vl, sizeof(size_t));
        sl_buf_append(b, v, vl);
    }
}

/* The sticky cookie of the cookie balancer, for a client that had none. */
static void sticky_cookie(sl_exchange_t *ex, sl_http_resp_t *resp)
{
    const sl_upstream_t *u = ex->route->upstream;
    char value[32];
    if (sl_upstream_cookie_value(u, ex->node, value, sizeof(value)) != 0) return;
    char *s = sl_arena_alloc(ex->arena, 256 + strlen(u->cfg->cookie.name) + (u->cfg->cookie.path ? strlen(u->cfg->cookie.path) : 0));
    int n = sprintf(s, "%s=%s; Path=%s; Max-Age=%llu; HttpOnly", u->cfg->cookie.name, value,
                    u->cfg->cookie.path ? u->cfg->cookie.path : "/", (unsigned long long)(u->cfg->cookie.ttl_ms / 1000));
    sl_http_hdrs_add(&resp->hdrs, ex->arena, "Set-Cookie", 10, s, (size_t)n);
}

/* The response phase, then the head goes out. */
static void respond(sl_exchange_t *ex, sl_http_resp_t *resp)
{
    const sl_request_id_cfg_t *rc = ex->request_id_cfg;
    if (!resp->local) {
        capture(ex, &resp->hdrs);
        /* The gateway writes the request id itself. */
        if (rc) sl_http_hdrs_remove(&resp->hdrs, rc->header, rc->header_len);
    }
    if (ex->route) sl_policy_on_response_headers(ex->route, &ex->policy, resp, ex->arena);
    if (ex->request_id_len)
        sl_http_hdrs_add(&resp->hdrs, ex->arena, rc->header, rc->header_len, ex->request_id, ex->request_id_len);
    if (!resp->local && ex->issue_cookie && ex->node) sticky_cookie(ex, resp);
    ex->status = resp->status;
    ex->head_sent = 1;
    /* Counted before the head can reach the client: whoever reads the metrics after a response
     * finds it there. */
    sl_proxy_count(ex);
    ex->sops->send_head(ex->stream, resp);
}

void sl_http_respond(sl_exchange_t *ex, sl_http_resp_t *resp)
{
    resp->local = 0;
    respond(ex, resp);
}

void sl_http_respond_local(sl_exchange_t *ex, int status, const sl_header_kv_t *hdrs, size_t n_hdrs,
                           const char *ctype, const char *body, size_t body_len)
{
    sl_http_resp_t r = {
        .status = status,
        .content_length = (int64_t)body_len,
        .no_body = ex->req.method_id == SL_HTTP_HEAD || status == 204 || status == 304 || status < 200,
        .local = 1,
        .body = body,
        .body_len = body_len,
    };
    if (ctype) sl_http_hdrs_add(&r.hdrs, ex->arena, "Content-Type", 12, ctype, strlen(ctype));
    for (size_t i = 0; i < n_hdrs; i++)
        sl_http_hdrs_add(&r.hdrs, ex->arena, hdrs[i].name, strlen(hdrs[i].name), hdrs[i].value, strlen(hdrs[i].value));
    ex->resp_complete = 1;
    respond(ex, &r);
}

void sl_http_respond_error(sl_exchange_t *ex, int status, const char *code)
{
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"error\": \"%s\", \"status\": %d}\n", code, status);
    ex->error = code;
    /* RFC 9110 15.5.6: a 405 says which methods are allowed (every one but CONNECT). */
    static const sl_header_kv_t allow = {.name = "Allow", .value = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE"};
    sl_http_respond_local(ex, status, status == 405 ? &allow : NULL, status == 405, "application/json", body,
                          (size_t)n);
}
