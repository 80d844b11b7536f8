/* request_headers and response_headers: set (replace or add), add (append another value),
 * remove. A header named by set or remove is left out of the message, then set and add are
 * appended. */
#include "policy/policy.h"
#include "runtime/generation.h"

#include <string.h>
#include <strings.h>

static int name_is(const char *want, const char *name, size_t len)
{
    return strlen(want) == len && strncasecmp(want, name, len) == 0;
}

int sl_header_ops_drop(const sl_header_ops_cfg_t *ops, const char *name, size_t len)
{
    for (size_t i = 0; i < ops->n_set; i++)
        if (name_is(ops->set[i].name, name, len)) return 1;
    for (size_t i = 0; i < ops->n_remove; i++)
        if (name_is(ops->remove[i], name, len)) return 1;
    return 0;
}

void sl_header_ops_emit(const sl_header_ops_cfg_t *ops, sl_buf_t *head)
{
    for (size_t i = 0; i < ops->n_set; i++) sl_buf_printf(head, "%s: %s\r\n", ops->set[i].name, ops->set[i].value);
    for (size_t i = 0; i < ops->n_add; i++) sl_buf_printf(head, "%s: %s\r\n", ops->add[i].name, ops->add[i].value);
}

static int request_enabled(const sl_policies_cfg_t *pc)
{
    return pc->request_headers.enabled;
}

static int request_drop(const sl_route_rt_t *rt, const char *name, size_t len)
{
    return sl_header_ops_drop(&rt->cfg->policies.request_headers.ops, name, len);
}

static void request_emit(const sl_route_rt_t *rt, sl_buf_t *head)
{
    sl_header_ops_emit(&rt->cfg->policies.request_headers.ops, head);
}

static int response_enabled(const sl_policies_cfg_t *pc)
{
    return pc->response_headers.enabled;
}

static int response_drop(const sl_route_rt_t *rt, const char *name, size_t len)
{
    return sl_header_ops_drop(&rt->cfg->policies.response_headers.ops, name, len);
}

static void response_emit(const sl_route_rt_t *rt, sl_buf_t *head)
{
    sl_header_ops_emit(&rt->cfg->policies.response_headers.ops, head);
}

const sl_policy_ops_t sl_policy_request_headers = {
    .name = "request_headers",
    .enabled = request_enabled,
    .upstream_drop = request_drop,
    .upstream_emit = request_emit,
};

const sl_policy_ops_t sl_policy_response_headers = {
    .name = "response_headers",
    .enabled = response_enabled,
    .response_drop = response_drop,
    .response_emit = response_emit,
};
