/* local_rate_limit: a token bucket per route (or per client key, `key: ip` or `key: header NAME`)
 * of capacity requests + burst, refilled by `requests` tokens each `per`. A request that finds
 * no token gets `status` (429) before anything goes upstream. Every response of a counted
 * request carries X-RateLimit-Limit, -Remaining and -Reset (and the configured header with the
 * capacity); a refusal also Retry-After.
 *
 * The bucket is GCRA: tat, the "theoretical arrival time", is when the bucket would be full
 * again. A request at `now` takes a token when max(tat, now) + interval - now <= capacity *
 * interval, and moves tat there. One 64-bit word is the whole state, so the route's bucket is
 * a compare-and-swap, exact across workers without a lock. */
#include "policy/local_rate_limit.h"
#include "base/common.h"
#include "base/map.h"
#include "base/time.h"
#include "policy/policy.h"
#include "runtime/generation.h"
#include "base/keeper.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#define NS_PER_S 1000000000ull
/* Bytes of a key kept with its bucket. Longer keys are also told apart by their length and a
 * hash of the whole value, so memory stays bounded by max_keys whatever clients send. */
#define KEY_KEEP 64

/* A keyed bucket's tat is the map's value itself: no allocation per key. */
_Static_assert(sizeof(void *) >= sizeof(uint64_t), "a tat fits in a pointer");

struct sl_rate_limiter {
    char *key_header;
    sl_rate_limit_cfg_t cfg;
    uint64_t interval; /* ns per token */
    uint64_t tau;      /* capacity * interval: how far past now tat may run */
    uint64_t capacity;
    _Atomic uint64_t tat; /* the route's own bucket */
    /* Keyed buckets: key -> tat, most recently used first, at most max_keys (the least
     * recently used goes), seeded against keys chosen to collide. */
    pthread_mutex_t lock;
    sl_map_t keys;
};

/* ---- the bucket ---- */

/* One request at now against a bucket at tat: fills out and returns the new tat (tat itself when
 * refused, which takes nothing). */
static uint64_t bucket_take(const sl_rate_limiter_t *l, uint64_t tat, uint64_t now, sl_rate_result_t *out)
{
    uint64_t base = tat > now ? tat : now;
    uint64_t next = base + l->interval;
    out->limit = l->capacity;
    if (next - now <= l->tau) {
        out->allowed = 1;
        out->remaining = (l->tau - (next - now)) / l->interval;
        out->reset_ns = next - now;
        out->retry_ns = 0;
        return next;
    }
    out->allowed = 0;
    out->remaining = 0;
    out->reset_ns = base - now;
    out->retry_ns = next - now - l->tau;
    return tat;
}

/* ---- keyed buckets ---- */

/* The bucket of key, made (full: tat 0 is in the past) when new, evicting the least recently
 * used at max_keys; the most recently used from now on. Under l->lock. A key longer than
 * KEY_KEEP is kept as its first KEY_KEEP bytes, its length and the map's (seeded) hash of all
 * of it: a key that long is never as short as one kept whole. */
static void **bucket_of(sl_rate_limiter_t *l, const char *key, size_t len)
{
    if (len <= KEY_KEEP) return sl_map_slot(&l->keys, key, len);
    char kept[KEY_KEEP + sizeof(uint32_t) + sizeof(uint64_t)];
    uint32_t n = (uint32_t)len;
    uint64_t h = sl_map_hash(&l->keys, key, len);
    memcpy(kept, key, KEY_KEEP);
    memcpy(kept + KEY_KEEP, &n, sizeof(n));
    memcpy(kept + KEY_KEEP + sizeof(n), &h, sizeof(h));
    return sl_map_slot(&l->keys, kept, sizeof(kept));
}

void sl_rate_limiter_take(sl_rate_limiter_t *l, const char *key, size_t len, uint64_t (*now)(void),
                          sl_rate_result_t *out)
{
    if (!key || !len) {
        /* The clock is read after each load: whoever last moved tat read it earlier, so time only
         * goes forward along the chain of swaps and a late reading cannot cost a token. */
        uint64_t tat = atomic_load_explicit(&l->tat, memory_order_acquire);
        for (;;) {
            uint64_t next = bucket_take(l, tat, now(), out);
            if (!out->allowed) return;
            if (atomic_compare_exchange_weak_explicit(&l->tat, &tat, next, memory_order_acq_rel, memory_order_acquire))
                return;
        }
    }
    pthread_mutex_lock(&l->lock);
    void **tat = bucket_of(l, key, len);
    *tat = (void *)(uintptr_t)bucket_take(l, (uint64_t)(uintptr_t)*tat, now(), out);
    pthread_mutex_unlock(&l->lock);
}

size_t sl_rate_limiter_keys(sl_rate_limiter_t *l)
{
    pthread_mutex_lock(&l->lock);
    size_t n = sl_map_len(&l->keys);
    pthread_mutex_unlock(&l->lock);
    return n;
}

/* ---- kept by service and route ---- */

/* Whether l counts what cfg describes: status and header only shape responses. */
static int same_bucket(const void *state, const void *settings)
{
    const sl_rate_limiter_t *l = state;
    const sl_rate_limit_cfg_t *a = &l->cfg, *cfg = settings;
    return a->requests == cfg->requests && a->per_s == cfg->per_s && a->burst == cfg->burst && a->key == cfg->key &&
           a->max_keys == cfg->max_keys &&
           (cfg->key != SL_RL_KEY_HEADER || !strcasecmp(l->key_header, cfg->key_header));
}

static void *limiter_create(const void *settings)
{
    const sl_rate_limit_cfg_t *cfg = settings;
    sl_rate_limiter_t *l = sl_xcalloc(1, sizeof(*l));
    l->cfg = *cfg;
    l->cfg.header = NULL; /* the configuration's strings go with its generation */
    l->cfg.key_header = NULL;
    if (cfg->key == SL_RL_KEY_HEADER) l->key_header = sl_xstrdup(cfg->key_header);
    l->capacity = (uint64_t)cfg->requests + cfg->burst;
    l->interval = (uint64_t)cfg->per_s * NS_PER_S / cfg->requests;
    l->tau = l->capacity * l->interval;
    atomic_init(&l->tat, 0); /* in the past: a full bucket */
    pthread_mutex_init(&l->lock, NULL);
    sl_map_init_with(&l->keys, SL_MAP_OWNED | SL_MAP_LRU | SL_MAP_SEEDED, cfg->max_keys);
    return l;
}

static void limiter_destroy(void *state)
{
    sl_rate_limiter_t *l = state;
    sl_map_free(&l->keys);
    pthread_mutex_destroy(&l->lock);
    free(l->key_header);
    free(l);
}

static const sl_keep_type_t limiter_type = {
    .name = "local_rate_limit",
    .create = limiter_create,
    .compatible = same_bucket,
    .destroy = limiter_destroy,
};

sl_rate_limiter_t *sl_rate_limiter_get(const char *service, const char *route, const sl_rate_limit_cfg_t *cfg)
{
    return sl_keep_get_names(&limiter_type, service, route, cfg);
}

void sl_rate_limiter_release(sl_rate_limiter_t *l)
{
    sl_keep_release(l);
}

/* ---- the policy ---- */

static uint64_t ceil_s(uint64_t ns)
{
    return (ns + NS_PER_S - 1) / NS_PER_S;
}

static int enabled(const sl_policies_cfg_t *pc)
{
    return pc->local_rate_limit.enabled;
}

/* The route's buckets (shared with the previous generation's route when compatible). */
static int init(const void *route, void **data)
{
    const sl_route_rt_t *rt = route;
    *data = sl_rate_limiter_get(rt->svc->name, rt->cfg->name, &rt->cfg->policies.local_rate_limit);
    return 0;
}

static void destroy(void *data)
{
    sl_rate_limiter_release(data);
}

static int on_request(const sl_route_rt_t *rt, void *data, const sl_policy_req_t *req, const char **code)
{
    const sl_rate_limit_cfg_t *rl = &rt->cfg->policies.local_rate_limit;
    const char *key = NULL;
    size_t len = 0;
    if (rl->key == SL_RL_KEY_IP) {
        key = req->remote;
        len = req->remote_len;
    } else if (rl->key == SL_RL_KEY_HEADER) {
        /* Requests without the header share the route's bucket (key NULL). */
        long i = sl_http_hdrs_find(&req->req->hdrs, rl->key_header, strlen(rl->key_header), 0);
        if (i >= 0) {
            key = req->req->hdrs.v[i].value;
            len = req->req->hdrs.v[i].value_len;
        }
    }
    sl_rate_result_t r;
    sl_rate_limiter_take(data, key, len, sl_now_ns, &r);
    req->state->rate_limit.counted = 1;
    req->state->rate_limit.refused = !r.allowed;
    req->state->rate_limit.limit = r.limit;
    req->state->rate_limit.remaining = r.remaining;
    req->state->rate_limit.reset_s = ceil_s(r.reset_ns);
    req->state->rate_limit.retry_after_s = SL_MAX(ceil_s(r.retry_ns), 1);
    if (r.allowed) return 0;
    *code = "rate_limited";
    return rl->status;
}

/* Every response of a counted request carries the bucket's state; the upstream's own counters
 * would contradict the gateway's, so they are replaced. */
static void on_response_headers(const sl_route_rt_t *rt, void *data, const sl_policy_state_t *st,
                                sl_http_resp_t *resp, sl_arena_t *a)
{
    SL_UNUSED(data);
    const char *h = rt->cfg->policies.local_rate_limit.header;
    if (!resp->local) {
        sl_http_hdrs_remove(&resp->hdrs, "x-ratelimit-limit", 17);
        sl_http_hdrs_remove(&resp->hdrs, "x-ratelimit-remaining", 21);
        sl_http_hdrs_remove(&resp->hdrs, "x-ratelimit-reset", 17);
        if (h) sl_http_hdrs_remove(&resp->hdrs, h, strlen(h));
    }
    if (!st->rate_limit.counted) return;
    if (h) sl_http_hdrs_add_u64(&resp->hdrs, a, h, st->rate_limit.limit);
    sl_http_hdrs_add_u64(&resp->hdrs, a, "X-RateLimit-Limit", st->rate_limit.limit);
    sl_http_hdrs_add_u64(&resp->hdrs, a, "X-RateLimit-Remaining", st->rate_limit.remaining);
    sl_http_hdrs_add_u64(&resp->hdrs, a, "X-RateLimit-Reset", st->rate_limit.reset_s);
    if (st->rate_limit.refused) sl_http_hdrs_add_u64(&resp->hdrs, a, "Retry-After", st->rate_limit.retry_after_s);
}

const sl_policy_ops_t sl_policy_local_rate_limit = {
    .m = {.name = "local_rate_limit", .init = init, .destroy = destroy},
    .enabled = enabled,
    .on_request = on_request,
    .on_response_headers = on_response_headers,
};

/* ---- configuration: local_rate_limit, read by the loader (config/schema.h) ---- */

#include "config/schema.h"

/* local_rate_limit.header: a token, and not one the gateway writes itself. */
static void parse_rl_header(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_policies_cfg_t *pc = base;
    const char *s = sl_schema_string(v, n, 0);
    if (!s) return;
    static const char *const ours[] = {"content-length",    "transfer-encoding",     "content-type",     "retry-after",
                                       "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"};
    int ok = sl_schema_is_token(s);
    int taken = sl_schema_is_hop_by_hop(s);
    for (size_t i = 0; i < SL_ARRAY_LEN(ours); i++)
        taken |= !strcasecmp(s, ours[i]);
    if (!ok)
        sl_schema_err(v, n, "invalid header name '%s'", s);
    else if (taken)
        sl_schema_err(v, n, "'%s' is written by the gateway: pick another name (e.g. ratelimit)", s);
    else
        pc->local_rate_limit.header = s;
}

/* local_rate_limit.key: "ip" (the client address) or "header NAME" (that header's value). */
static void parse_rl_key(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_rate_limit_cfg_t *rl = &((sl_policies_cfg_t *)base)->local_rate_limit;
    const char *s = sl_schema_string(v, n, 0);
    if (!s) return;
    if (!strcmp(s, "ip")) {
        rl->key = SL_RL_KEY_IP;
        return;
    }
    const char *name = !strncmp(s, "header", 6) && (s[6] == ' ' || s[6] == '\t') ? s + 7 : NULL;
    while (name && (*name == ' ' || *name == '\t'))
        name++;
    if (!name || !*name) {
        sl_schema_err(v, n, "expected 'ip' or 'header NAME' (e.g. \"header X-Api-Key\"), got '%s'", s);
        return;
    }
    if (!sl_schema_is_token(name)) {
        sl_schema_err(v, n, "invalid header name '%s'", name);
        return;
    }
    rl->key = SL_RL_KEY_HEADER;
    rl->key_header = name;
}

#define RL_OFF(m) offsetof(sl_policies_cfg_t, local_rate_limit.m)
static const sl_schema_choice_t rl_per_choices[] = {
    {"second", 1, NULL},
    {"minute", 60, NULL},
    {"hour", 3600, NULL},
    {NULL, 0, NULL},
};
/* Bounds keep the bucket arithmetic (nanoseconds, capacity times interval) within 64 bits. */
static const sl_schema_field_t rate_limit_fields[] = {
    {.name = "requests", .type = SL_FIELD_U32, .off = RL_OFF(requests), .min = 1, .max = 1000000, .required = 1},
    {.name = "per", .type = SL_FIELD_ENUM, .off = RL_OFF(per_s), .choices = rl_per_choices, .required = 1},
    {.name = "burst", .type = SL_FIELD_U32, .off = RL_OFF(burst), .min = 0, .max = 1000000, .def = 0},
    {.name = "status", .type = SL_FIELD_INT, .off = RL_OFF(status), .min = 400, .max = 599, .def = 429},
    {.name = "header", .type = SL_FIELD_CUSTOM, .custom = parse_rl_header},
    {.name = "key", .type = SL_FIELD_CUSTOM, .custom = parse_rl_key},
    {.name = "max_keys", .type = SL_FIELD_U32, .off = RL_OFF(max_keys), .min = 1, .max = 1000000, .def = 10000},
};
static const sl_schema_section_t rate_limit_section = SL_SCHEMA_SECTION(rate_limit_fields);

void sl_policy_local_rate_limit_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc)
{
    sl_schema_defaults(v, &rate_limit_section, pc);
    sl_schema_parse(v, n, &rate_limit_section, pc);
    pc->local_rate_limit.enabled = 1;
    const sl_config_node_t *mk = sl_node_get(n, "max_keys");
    if (mk && pc->local_rate_limit.key == SL_RL_KEY_NONE) {
        size_t old = sl_schema_path_key(v, "max_keys");
        sl_schema_err_at(v, mk->key_line, mk->key_col,
                         "only applies with 'key' (ip or header NAME): without it the route has one bucket");
        sl_schema_path_pop(v, old);
    }
}
