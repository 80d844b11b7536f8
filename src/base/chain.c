#include "base/chain.h"

const sl_module_t *sl_chain_build(sl_chain_t *c, const sl_module_t *const *mods, const unsigned char *on, size_t n,
                                  const void *route)
{
    c->n = 0;
    for (size_t i = 0; i < n; i++) {
        if (!on[i]) continue;
        void *data = NULL;
        if (c->n == SL_CHAIN_MAX || (mods[i]->init && mods[i]->init(route, &data) != 0)) {
            sl_chain_destroy(c);
            return mods[i];
        }
        c->mods[c->n] = mods[i];
        c->data[c->n++] = data;
    }
    return NULL;
}

void sl_chain_destroy(sl_chain_t *c)
{
    while (c->n > 0) {
        c->n--;
        if (c->mods[c->n]->destroy) c->mods[c->n]->destroy(c->data[c->n]);
        c->data[c->n] = NULL;
    }
}

void *sl_chain_data(const sl_chain_t *c, const sl_module_t *m)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->mods[i] == m) return c->data[i];
    return NULL;
}
