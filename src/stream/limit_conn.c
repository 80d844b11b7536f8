/* limit-conn: sessions open at once per key (the client address, or the server address it
 * connected to). Up to `conn` pass, the next `burst` pass after `default_conn_delay`, and any
 * beyond are closed (503). A session counts from its access until it ends, delay included.
 *
 * The counts are exact across worker threads: one table per route under a mutex, taken twice
 * per session. They outlive a reload that keeps the route (same service, route and key), since
 * sessions of the old generation still hold their places; the limits are read from the route of
 * each new session. Keys are removed when their count drops to zero, so the table holds the
 * distinct keys of open sessions, bounded by MAX_KEYS. */
#include "base/common.h"
#include "base/log.h"
#include "base/map.h"
#include "stream/stream.h"

#include <pthread.h>
#include <string.h>

#define MAX_KEYS (1u << 20)
#define MIN_SLOTS 64

typedef struct entry {
    struct entry *next;
    sl_ip_t key;
    uint32_t count;
} entry_t;

struct sl_conn_limiter {
    struct sl_conn_limiter *next; /* registry */
    int refs;                     /* under registry_lock */
    char *service, *route;
    int key;
    pthread_mutex_t lock;
    entry_t **slots;
    size_t n_slots, n_keys;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sl_conn_limiter *registry;

static size_t slot_of(const struct sl_conn_limiter *l, const sl_ip_t *ip)
{
    return sl_hash_bytes(ip, sizeof(*ip)) & (l->n_slots - 1);
}

static void grow(struct sl_conn_limiter *l)
{
    size_t n = l->n_slots * 2;
    entry_t **slots = sl_xcalloc(n, sizeof(*slots));
    for (size_t i = 0; i < l->n_slots; i++)
        for (entry_t *e = l->slots[i], *next; e; e = next) {
            next = e->next;
            size_t k = sl_hash_bytes(&e->key, sizeof(e->key)) & (n - 1);
            e->next = slots[k];
            slots[k] = e;
        }
    free(l->slots);
    l->slots = slots;
    l->n_slots = n;
}

/* Adds one session under key; returns the count with it, or 0 when the table is full. */
static uint32_t take(struct sl_conn_limiter *l, const sl_ip_t *key)
{
    pthread_mutex_lock(&l->lock);
    entry_t **pp = &l->slots[slot_of(l, key)];
    while (*pp && memcmp(&(*pp)->key, key, sizeof(*key)))
        pp = &(*pp)->next;
    uint32_t n = 0;
    if (*pp) {
        n = ++(*pp)->count;
    } else if (l->n_keys < MAX_KEYS) {
        entry_t *e = sl_xcalloc(1, sizeof(*e));
        e->key = *key;
        e->count = n = 1;
        e->next = l->slots[slot_of(l, key)];
        l->slots[slot_of(l, key)] = e;
        if (++l->n_keys > l->n_slots) grow(l);
    }
    pthread_mutex_unlock(&l->lock);
    return n;
}

static void give_back(struct sl_conn_limiter *l, const sl_ip_t *key)
{
    pthread_mutex_lock(&l->lock);
    entry_t **pp = &l->slots[slot_of(l, key)];
    while (*pp && memcmp(&(*pp)->key, key, sizeof(*key)))
        pp = &(*pp)->next;
    if (*pp && --(*pp)->count == 0) {
        entry_t *e = *pp;
        *pp = e->next;
        free(e);
        l->n_keys--;
    }
    pthread_mutex_unlock(&l->lock);
}

static int enabled(const sl_stream_plugins_cfg_t *pc)
{
    return pc->limit_conn.enabled;
}

static int init(sl_stream_route_t *r)
{
    int key = r->cfg->stream.plugins.limit_conn.key;
    pthread_mutex_lock(&registry_lock);
    struct sl_conn_limiter *l = registry;
    while (l && (strcmp(l->service, r->svc->name) || strcmp(l->route, r->cfg->name) || l->key != key))
        l = l->next;
    if (!l) {
        l = sl_xcalloc(1, sizeof(*l));
        l->service = sl_xstrdup(r->svc->name);
        l->route = sl_xstrdup(r->cfg->name);
        l->key = key;
        pthread_mutex_init(&l->lock, NULL);
        l->n_slots = MIN_SLOTS;
        l->slots = sl_xcalloc(l->n_slots, sizeof(*l->slots));
        l->next = registry;
        registry = l;
    }
    l->refs++;
    pthread_mutex_unlock(&registry_lock);
    r->limiter = l;
    return 0;
}

static void destroy(sl_stream_route_t *r)
{
    struct sl_conn_limiter *l = r->limiter;
    if (!l) return;
    r->limiter = NULL;
    pthread_mutex_lock(&registry_lock);
    if (--l->refs == 0) {
        struct sl_conn_limiter **pp = &registry;
        while (*pp != l)
            pp = &(*pp)->next;
        *pp = l->next;
        /* No session holds a place any more: every one kept its generation, and with it l. */
        for (size_t i = 0; i < l->n_slots; i++)
            for (entry_t *e = l->slots[i], *next; e; e = next) {
                next = e->next;
                free(e);
            }
        free(l->slots);
        pthread_mutex_destroy(&l->lock);
        free(l->service);
        free(l->route);
        free(l);
    }
    pthread_mutex_unlock(&registry_lock);
}

static int on_access(sl_stream_route_t *r, const sl_stream_peer_t *peer, sl_stream_plugin_state_t *st, unsigned worker,
                     uint64_t *delay_ms)
{
    SL_UNUSED(worker);
    const sl_stream_plugins_cfg_t *pc = &r->cfg->stream.plugins;
    const sl_ip_t *key = pc->limit_conn.key == SL_LIMIT_CONN_SERVER_ADDR ? &peer->server : &peer->client;
    uint32_t n = take(r->limiter, key);
    if (n == 0) {
        sl_log_warn("stream route %s: limit-conn tracks %u keys already, refusing", r->cfg->name, MAX_KEYS);
        return SL_STREAM_UNAVAILABLE;
    }
    if (n > pc->limit_conn.conn + pc->limit_conn.burst) {
        give_back(r->limiter, key);
        return SL_STREAM_UNAVAILABLE;
    }
    st->limit_conn_held = 1;
    st->limit_conn_key = *key;
    if (n > pc->limit_conn.conn) *delay_ms = pc->limit_conn.delay_ms;
    return 0;
}

static void on_log(sl_stream_route_t *r, const sl_stream_facts_t *f)
{
    if (!f->state->limit_conn_held) return;
    f->state->limit_conn_held = 0;
    give_back(r->limiter, &f->state->limit_conn_key);
}

const sl_stream_plugin_ops_t sl_stream_limit_conn = {
    .name = "limit-conn",
    .enabled = enabled,
    .init = init,
    .destroy = destroy,
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
