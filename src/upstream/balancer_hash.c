/* hash and cookie: consistent hashing with a Maglev lookup table (Eisenbud et al., NSDI 2016).
 *
 * Every node fills slots of a prime-sized table along its own permutation, in turns weighted
 * by its weight; a key's node is table[hash(key) % size]: one lookup whatever the node count.
 * Removing one of N nodes moves about 1/N of the keys (and few others). When the key's node
 * is not a candidate (unhealthy, or just failed), the next slots of the table decide, which
 * spreads its keys over the other nodes. A request without a key goes to a random node.
 *
 * The cookie balancer uses the same table on the cookie's value. A value of the form
 * "sl-<16 hex>" (what sluice issues, see sl_upstream_cookie_value) names a node by its
 * address hash and sticks to that node while it is a candidate. */
#include "upstream/balancer.h"
#include "base/common.h"
#include "base/map.h"

#include <stdio.h>
#include <string.h>

typedef struct hash_state {
    uint32_t size;
    uint32_t *table;   /* node index per slot */
    uint64_t *node_id; /* per node: hash of its address, the cookie token */
} hash_state_t;

static int is_prime(uint32_t n)
{
    if (n < 2) return 0;
    for (uint32_t d = 2; (uint64_t)d * d <= n; d++)
        if (n % d == 0) return 0;
    return 1;
}

static void *hash_create(const sl_upstream_t *u)
{
    hash_state_t *s = sl_xcalloc(1, sizeof(*s));
    size_t n = u->n_nodes;
    s->node_id = sl_xcalloc(n, sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) s->node_id[i] = sl_hash_bytes(u->nodes[i].name, strlen(u->nodes[i].name));
    /* About 100 slots per node keeps the shares within ~1% of the weights. */
    uint32_t size = (uint32_t)(n * 100 < 65537 ? 65537 : n * 100 + 1);
    while (!is_prime(size)) size++;
    s->size = size;
    s->table = sl_xmalloc(size * sizeof(uint32_t));
    memset(s->table, 0xff, size * sizeof(uint32_t));
    uint64_t *offset = sl_xcalloc(n, sizeof(uint64_t)), *skip = sl_xcalloc(n, sizeof(uint64_t));
    uint64_t *next = sl_xcalloc(n, sizeof(uint64_t)), *credit = sl_xcalloc(n, sizeof(uint64_t));
    uint32_t max_w = 1;
    for (size_t i = 0; i < n; i++) {
        uint64_t h2 = sl_hash_bytes(&s->node_id[i], sizeof(uint64_t));
        offset[i] = s->node_id[i] % size;
        skip[i] = h2 % (size - 1) + 1;
        if (u->nodes[i].weight > max_w) max_w = u->nodes[i].weight;
    }
    uint32_t filled = 0;
    while (filled < size) {
        for (size_t i = 0; i < n && filled < size; i++) {
            credit[i] += u->nodes[i].weight;
            while (credit[i] >= max_w && filled < size) {
                credit[i] -= max_w;
                uint64_t slot;
                do {
                    slot = (offset[i] + next[i] * skip[i]) % size;
                    next[i]++;
                } while (s->table[slot] != UINT32_MAX);
                s->table[slot] = (uint32_t)i;
                filled++;
            }
        }
    }
    free(offset);
    free(skip);
    free(next);
    free(credit);
    return s;
}

static sl_node_t *by_token(sl_upstream_t *u, const hash_state_t *s, const char *key, size_t len)
{
    if (len != 19 || memcmp(key, "sl-", 3) != 0) return NULL;
    char hex[17];
    memcpy(hex, key + 3, 16);
    hex[16] = '\0';
    unsigned long long id;
    if (sscanf(hex, "%16llx", &id) != 1) return NULL;
    for (size_t i = 0; i < u->n_nodes; i++)
        if (s->node_id[i] == id) return &u->nodes[i];
    return NULL;
}

static sl_node_t *hash_pick(sl_upstream_t *u, const sl_pick_ctx_t *ctx)
{
    hash_state_t *s = u->balancer_state;
    if (!ctx->key) return sl_balancer_random_candidate(u, ctx);
    sl_node_t *n = by_token(u, s, ctx->key, ctx->key_len);
    if (n && sl_balancer_ok(n, ctx)) return n;
    uint64_t h = sl_hash_bytes(ctx->key, ctx->key_len);
    sl_node_t *fallback = NULL;
    for (uint32_t i = 0; i < s->size; i++) {
        n = &u->nodes[s->table[(h + i) % s->size]];
        if (sl_balancer_ok(n, ctx)) return n;
        if (!fallback && sl_node_candidate(n, ctx)) {
            fallback = n;
            if (i > 4 * u->n_nodes) break;
        }
    }
    return fallback ? fallback : sl_balancer_random_candidate(u, ctx);
}

static void hash_destroy(void *state)
{
    hash_state_t *s = state;
    free(s->table);
    free(s->node_id);
    free(s);
}

int sl_upstream_cookie_value(const sl_upstream_t *u, const sl_node_t *n, char *out, size_t size)
{
    if (u->balancer != &sl_balancer_hash) return -1;
    const hash_state_t *s = u->balancer_state;
    return snprintf(out, size, "sl-%016llx", (unsigned long long)s->node_id[n - u->nodes]) < (int)size ? 0 : -1;
}

const sl_balancer_ops_t sl_balancer_hash = {
    .name = "hash",
    .create = hash_create,
    .pick = hash_pick,
    .destroy = hash_destroy,
};
