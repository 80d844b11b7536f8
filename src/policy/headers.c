/* request_headers and response_headers: set (replace or add), add (append another value),
 * remove. A header named by set or remove is left out of the message, then set and add are
 * appended (the configuration's own strings: nothing is copied). */
#include "policy/policy.h"
#include "base/common.h"
#include "runtime/generation.h"

#include <string.h>
#include <strings.h>

static int name_is(const char *want, const char *name, size_t len)
{
    return strlen(want) == len && strncasecmp(want, name, len) == 0;
}

void sl_header_ops_apply(const sl_header_ops_cfg_t *ops, sl_http_hdrs_t *h, sl_arena_t *a)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < h->n; i++) {
        const sl_http_hdr_t *x = &h->v[i];
        int drop = 0;
        for (size_t j = 0; j < ops->n_set && !drop; j++) drop = name_is(ops->set[j].name, x->name, x->name_len);
        for (size_t j = 0; j < ops->n_remove && !drop; j++) drop = name_is(ops->remove[j], x->name, x->name_len);
        if (!drop) h->v[k++] = *x;
    }
    h->n = k;
    for (size_t i = 0; i < ops->n_set; i++)
        sl_http_hdrs_add(h, a, ops->set[i].name, strlen(ops->set[i].name), ops->set[i].value, strlen(ops->set[i].value));
    for (size_t i = 0; i < ops->n_add; i++)
        sl_http_hdrs_add(h, a, ops->add[i].name, strlen(ops->add[i].name), ops->add[i].value, strlen(ops->add[i].value));
}

static int request_enabled(const sl_policies_cfg_t *pc)
{
    return pc->request_headers.enabled;
}

static void on_upstream_request(const sl_route_rt_t *rt, void *data, sl_http_req_t *up, sl_arena_t *a)
{
    SL_UNUSED(data);
    sl_header_ops_apply(&rt->cfg->policies.request_headers.ops, &up->hdrs, a);
}

static int response_enabled(const sl_policies_cfg_t *pc)
{
    return pc->response_headers.enabled;
}

/* The upstream's response and the 101; the gateway's own answers are left as they are. */
static void on_response_headers(const sl_route_rt_t *rt, void *data, const sl_policy_state_t *st,
                                sl_http_resp_t *resp, sl_arena_t *a)
{
    SL_UNUSED(data);
    SL_UNUSED(st);
    if (resp->local) return;
    sl_header_ops_apply(&rt->cfg->policies.response_headers.ops, &resp->hdrs, a);
}

const sl_policy_ops_t sl_policy_request_headers = {
    .m = {.name = "request_headers"},
    .enabled = request_enabled,
    .on_upstream_request = on_upstream_request,
};

const sl_policy_ops_t sl_policy_response_headers = {
    .m = {.name = "response_headers"},
    .enabled = response_enabled,
    .on_response_headers = on_response_headers,
};

/* ---- configuration: request_headers and response_headers, read by the loader (config/schema.h) ---- */

#include "config/schema.h"

static void parse_hdr_set(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_header_ops_cfg_t *h = base;
    sl_schema_header_map(v, n, &h->set, &h->n_set, 1);
}

static void parse_hdr_add(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_header_ops_cfg_t *h = base;
    sl_schema_header_map(v, n, &h->add, &h->n_add, 1);
}

static void parse_hdr_remove(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_header_ops_cfg_t *h = base;
    long cnt = sl_schema_list(v, n, 1);
    if (cnt <= 0) return;
    h->remove = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*h->remove));
    size_t i = 0;
    for (const sl_config_node_t *c = n->first; c; c = c->next, i++) {
        size_t old = sl_schema_path_idx(v, i);
        const char *name = sl_schema_string(v, c, 0);
        int ok = name && sl_schema_is_token(name);
        if (name && !ok)
            sl_schema_err(v, c, "invalid header name");
        else if (name && (sl_schema_is_hop_by_hop(name) || !strcasecmp(name, "content-length")))
            sl_schema_err(v, c, "is managed by the gateway and cannot be removed");
        else if (name && !strcasecmp(name, "host"))
            sl_schema_err(v, c, "HTTP/1.1 requires Host: set it to another value instead");
        else if (name)
            h->remove[h->n_remove++] = name;
        sl_schema_path_pop(v, old);
    }
}

static const sl_schema_field_t header_ops_fields[] = {
    {.name = "set", .type = SL_FIELD_CUSTOM, .custom = parse_hdr_set},
    {.name = "add", .type = SL_FIELD_CUSTOM, .custom = parse_hdr_add},
    {.name = "remove", .type = SL_FIELD_CUSTOM, .custom = parse_hdr_remove},
};
static const sl_schema_section_t header_ops_section = SL_SCHEMA_SECTION(header_ops_fields);

void sl_policy_request_headers_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc)
{
    sl_schema_parse(v, n, &header_ops_section, &pc->request_headers.ops);
    pc->request_headers.enabled = 1;
}

void sl_policy_response_headers_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc)
{
    sl_schema_parse(v, n, &header_ops_section, &pc->response_headers.ops);
    pc->response_headers.enabled = 1;
}
