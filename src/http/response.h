/* The one writer of response heads (response.c). Each call runs the response phase once (the
 * route's on_response_headers hooks, the request id, the sticky cookie, the access log's
 * capture) and hands the head to the exchange's stream ops, which frame it. Internal to http/. */
#ifndef SL_HTTP_RESPONSE_H
#define SL_HTTP_RESPONSE_H

#include "http/proxy.h"

/* An upstream's response (resp->hdrs: its fields without hop-by-hop ones), or a 101. */
void sl_http_respond(sl_exchange_t *ex, sl_http_resp_t *resp);
/* The gateway's own answer: status, extra fields, Content-Type (or NULL) and the whole body. */
void sl_http_respond_local(sl_exchange_t *ex, int status, const sl_header_kv_t *hdrs, size_t n_hdrs,
                           const char *ctype, const char *body, size_t body_len);
/* A JSON error answer {"error": code, "status": status}; code is the log's error too. */
void sl_http_respond_error(sl_exchange_t *ex, int status, const char *code);
/* A field's value in a header vector (the access log's request_header.NAME); ctx is the vector. */
const char *sl_http_log_header(const void *ctx, const char *name, size_t n, size_t *len);

#endif
