/* The registry: every HTTP policy sluice has, in chain order, with how the loader reads its
 * settings. The loader (config/service_schema.c) and the chain (policy/policy.c) both walk this
 * one list, so a policy is added by its own file and one line in modules.c. */
#ifndef SL_MODULES_H
#define SL_MODULES_H

#include <stddef.h>

#include "config/schema.h"
#include "policy/policy.h"

typedef struct sl_policy_module {
    const sl_policy_ops_t *ops; /* ops->name is its key in a route's policies map */
    /* Reads the policy's value n into its fields of pc (the settings config.h declares). */
    void (*parse)(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc);
    /* Or, for a policy that owns its settings' type: reads them into the config's arena and
     * returns them, or NULL after reporting. Kept in pc->settings; the policy is on when set. */
    const void *(*read)(sl_schema_ctx_t *v, const sl_config_node_t *n);
} sl_policy_module_t;

extern const sl_policy_module_t sl_policy_modules[];
extern const size_t sl_n_policy_modules;

#endif
