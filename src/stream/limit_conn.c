/* limit-conn: sessions open at once per key (the client address, or the server address it
 * connected to). Up to `conn` pass, the next `burst` pass after `default_conn_delay`, and any
 * beyond are closed (503). A session counts from its access until it ends, delay included.
 *
 * The counts are exact across worker threads: one table per route under a mutex, taken twice
 * per session. Kept by the keeper, they outlive a reload that keeps the route (same service,
 * route and key), since sessions of the old generation still hold their places; the limits are
 * read from the route of each new session. Keys are removed when their count drops to zero, so the table holds the
 * distinct keys of open sessions, bounded by MAX_KEYS. */
#include "base/common.h"
#include "base/log.h"
#include "base/map.h"
#include "base/keeper.h"
#include "stream/stream.h"

#include <pthread.h>
#include <string.h>

#define MAX_KEYS (1u << 20)

struct sl_conn_limiter {
    int key; /* SL_LIMIT_CONN_*: what the counts are by */
    pthread_mutex_t lock;
    sl_map_t counts; /* the key's bytes -> its open sessions, as the value itself */
};

/* Adds one session under key; returns the count with it, or 0 when the table is full. */
static uint32_t take(struct sl_conn_limiter *l, const sl_ip_t *key)
{
    pthread_mutex_lock(&l->lock);
    uint32_t n = 0;
    void **slot = sl_map_find(&l->counts, (const char *)key, sizeof(*key));
    if (!slot && sl_map_len(&l->counts) < MAX_KEYS) slot = sl_map_slot(&l->counts, (const char *)key, sizeof(*key));
    if (slot) {
        n = (uint32_t)(uintptr_t)*slot + 1;
        *slot = (void *)(uintptr_t)n;
    }
    pthread_mutex_unlock(&l->lock);
    return n;
}

static void give_back(struct sl_conn_limiter *l, const sl_ip_t *key)
{
    pthread_mutex_lock(&l->lock);
    void **slot = sl_map_find(&l->counts, (const char *)key, sizeof(*key));
    if (slot) {
        uintptr_t n = (uintptr_t)*slot - 1;
        if (n == 0)
            sl_map_del(&l->counts, (const char *)key, sizeof(*key), NULL);
        else
            *slot = (void *)n;
    }
    pthread_mutex_unlock(&l->lock);
}

static int enabled(const sl_stream_plugins_cfg_t *pc)
{
    return pc->limit_conn.enabled;
}

static void *limiter_create(const void *settings)
{
    struct sl_conn_limiter *l = sl_xcalloc(1, sizeof(*l));
    l->key = *(const int *)settings;
    pthread_mutex_init(&l->lock, NULL);
    sl_map_init_with(&l->counts, SL_MAP_OWNED | SL_MAP_SEEDED, 0);
    return l;
}

/* Counts by another key are another table; the limits are read per session. */
static int same_key(const void *state, const void *settings)
{
    return ((const struct sl_conn_limiter *)state)->key == *(const int *)settings;
}

static void limiter_destroy(void *state)
{
    /* No session holds a place any more: every one kept its generation, and with it l. */
    struct sl_conn_limiter *l = state;
    sl_map_free(&l->counts);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static const sl_keep_type_t limiter_type = {
    .name = "limit-conn",
    .create = limiter_create,
    .compatible = same_key,
    .destroy = limiter_destroy,
};

static int init(const void *route, void **data)
{
    const sl_stream_route_t *r = route;
    int key = r->cfg->stream.plugins.limit_conn.key;
    *data = sl_keep_get_names(&limiter_type, r->svc->name, r->cfg->name, &key);
    return 0;
}

static void destroy(void *data)
{
    sl_keep_release(data);
}

static int on_access(const sl_stream_route_t *r, void *data, const sl_stream_peer_t *peer, sl_stream_plugin_state_t *st,
                     unsigned worker, uint64_t *delay_ms)
{
    SL_UNUSED(worker);
    const sl_stream_plugins_cfg_t *pc = &r->cfg->stream.plugins;
    const sl_ip_t *key = pc->limit_conn.key == SL_LIMIT_CONN_SERVER_ADDR ? &peer->server : &peer->client;
    uint32_t n = take(data, key);
    if (n == 0) {
        sl_log_warn("stream route %s: limit-conn tracks %u keys already, refusing", r->cfg->name, MAX_KEYS);
        return SL_STREAM_UNAVAILABLE;
    }
    if (n > pc->limit_conn.conn + pc->limit_conn.burst) {
        give_back(data, key);
        return SL_STREAM_UNAVAILABLE;
    }
    st->limit_conn_held = 1;
    st->limit_conn_key = *key;
    if (n > pc->limit_conn.conn) *delay_ms = pc->limit_conn.delay_ms;
    return 0;
}

static void on_log(const sl_stream_route_t *r, void *data, const sl_stream_facts_t *f)
{
    if (!f->state->limit_conn_held) return;
    f->state->limit_conn_held = 0;
    SL_UNUSED(r);
    give_back(data, &f->state->limit_conn_key);
}

const sl_stream_plugin_ops_t sl_stream_limit_conn = {
    .m = {.name = "limit-conn", .init = init, .destroy = destroy},
    .enabled = enabled,
    .on_access = on_access,
    .on_log = on_log,
};

/* ---- configuration: plugins.limit-conn, read by the loader (config/schema.h) ---- */

#include "config/schema.h"

#define LC_OFF(m) offsetof(sl_stream_plugins_cfg_t, limit_conn.m)
static const sl_schema_choice_t limit_conn_keys[] = {
    {"remote_addr", SL_LIMIT_CONN_REMOTE_ADDR, NULL},
    {"server_addr", SL_LIMIT_CONN_SERVER_ADDR, NULL},
    {NULL, 0, NULL},
};
static const sl_schema_field_t limit_conn_fields[] = {
    {.name = "conn", .type = SL_FIELD_U32, .off = LC_OFF(conn), .min = 1, .max = 1000000, .required = 1},
    {.name = "burst", .type = SL_FIELD_U32, .off = LC_OFF(burst), .min = 0, .max = 1000000, .required = 1},
    /* A bare number counts seconds, as in APISIX (0.1 = 100ms): the duration grammar's rule. */
    {.name = "default_conn_delay",
     .type = SL_FIELD_DURATION,
     .off = LC_OFF(delay_ms),
     .min = 1,
     .max = 3600000,
     .required = 1},
    {.name = "key",
     .type = SL_FIELD_ENUM,
     .off = LC_OFF(key),
     .choices = limit_conn_keys,
     .def = SL_LIMIT_CONN_REMOTE_ADDR},
};
static const sl_schema_section_t limit_conn_section = SL_SCHEMA_SECTION(limit_conn_fields);

void sl_stream_limit_conn_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_stream_plugins_cfg_t *pc)
{
    sl_schema_defaults(v, &limit_conn_section, pc);
    sl_schema_parse(v, n, &limit_conn_section, pc);
    pc->limit_conn.enabled = 1;
}
