/* The registry: every HTTP policy and every stream plugin sluice has, in the order their hooks
 * run, with how the loader reads their settings. The loader (config/service_schema.c,
 * stream_schema.c) and the chains (policy/policy.c, stream/plugin.c) walk these lists, so a
 * policy or a plugin is added by its own file and one line in modules.c. */
#ifndef SL_MODULES_H
#define SL_MODULES_H

#include <stddef.h>

#include "config/schema.h"
#include "policy/policy.h"
#include "stream/stream.h"
#include "upstream/upstream.h"

typedef struct sl_policy_module {
    const sl_policy_ops_t *ops; /* ops->m.name is its key in a route's policies map */
    /* Reads the policy's value n into its fields of pc (the settings config.h declares). */
    void (*parse)(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc);
    /* Or, for a policy that owns its settings' type: reads them into the config's arena and
     * returns them, or NULL after reporting. Kept in pc->settings; the policy is on when set. */
    const void *(*read)(sl_schema_ctx_t *v, const sl_config_node_t *n);
} sl_policy_module_t;

extern const sl_policy_module_t sl_policy_modules[];
extern const size_t sl_n_policy_modules;

/* Every stream plugin, in the order its hooks run, with the reader of its settings. */
typedef struct sl_stream_plugin_module {
    const sl_stream_plugin_ops_t *ops; /* ops->m.name is its key in a stream route's plugins map */
    void (*parse)(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_stream_plugins_cfg_t *pc);
} sl_stream_plugin_module_t;

extern const sl_stream_plugin_module_t sl_stream_plugin_modules[];
extern const size_t sl_n_stream_plugin_modules;

/* Every balancer, by the name upstream.balance takes: the loader's choices (ends with a NULL
 * name), and the ops of a chosen value (cookie is the hash balancer keyed by a cookie). */
extern const sl_schema_choice_t sl_balancer_choices[];
const sl_balancer_ops_t *sl_balancer_of(int balance);

#endif
