#include "runtime/generation.h"
#include "modules.h"
#include "base/common.h"
#include "base/log.h"
#include "observe/access_log.h"
#include "policy/policy.h"
#include "base/keeper.h"
#include "runtime/server.h"
#include "stream/stream.h"

#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static sl_generation_t *current;
static atomic_uint_fast64_t next_id = 1;

/* Access logs are kept by path: a generation asking for the path a live one writes to shares
 * that log (its file, buffers and writer thread) instead of opening the file again. */
static void *log_adopt(const void *settings)
{
    return (void *)settings; /* opened by access_log_for, outside the keeper's lock */
}

static void log_destroy(void *state)
{
    sl_access_log_unref(state);
}

static const sl_keep_type_t log_type = {.name = "access log", .create = log_adopt, .destroy = log_destroy};

/* Sets *out to the access log cfg asks for (NULL when it is off), kept by path. Returns 0, or
 * -1 when the log cannot be opened (the reason in errs): a configuration that asks for a log it
 * cannot have is not served without one. */
static int access_log_for(const sl_config_t *cfg, sl_access_log_t **out, sl_config_errors_t *errs)
{
    const char *path = cfg->gateway.access_log.path ? cfg->gateway.access_log.path : "stdout";
    *out = NULL;
    if (!strcmp(path, "off")) return 0;
    sl_access_log_t *log = sl_keep_find(&log_type, path, strlen(path), NULL);
    if (!log) {
        /* Opened before the keeper's lock is taken: a file (a FIFO, a slow disk) may take long. */
        sl_access_log_t *opened = sl_access_log_open(path);
        if (!opened) {
            sl_config_errors_add(errs, NULL, 0, 0, "gateway.access_log.path", "cannot open %s", path);
            return -1;
        }
        log = sl_keep_get(&log_type, path, strlen(path), opened);
        if (log != opened) sl_access_log_unref(opened);
    }
    *out = log;
    return 0;
}

sl_generation_t *sl_generation_create(sl_config_t *cfg, sl_config_errors_t *errs)
{
    sl_generation_t *g = sl_xcalloc(1, sizeof(*g));
    atomic_init(&g->refs, 1);
    g->id = atomic_fetch_add(&next_id, 1);
    g->cfg = cfg;
    g->router = sl_router_create();
    g->upstreams = sl_xcalloc(cfg->n_services, sizeof(sl_upstream_t));
    for (size_t s = 0; s < cfg->n_services; s++)
        if (cfg->services[s].type == SL_SERVICE_HTTP) g->n_routes += cfg->services[s].n_routes;
    g->routes = sl_xcalloc(g->n_routes ? g->n_routes : 1, sizeof(sl_route_rt_t));
    g->listens = sl_xcalloc(cfg->gateway.http.n_listen, sizeof(sl_listen_t));
    for (size_t i = 0; i < cfg->gateway.http.n_listen; i++)
        g->listens[g->n_listens++] = (sl_listen_t){.kind = SL_LISTEN_HTTP, .addr = cfg->gateway.http.listen[i]};
    int failed = 0;
    size_t ri = 0;
    for (size_t s = 0; s < cfg->n_services; s++) {
        const sl_service_cfg_t *svc = &cfg->services[s];
        if (svc->has_upstream) {
            sl_upstream_init(&g->upstreams[s], svc, sl_balancer_of(svc->upstream.balance));
            /* Stream sessions have no response head to time. */
            if (svc->type == SL_SERVICE_HTTP) g->upstreams[s].latency = sl_server_upstream_latency_series(svc->name);
        }
        if (svc->type != SL_SERVICE_HTTP) continue;
        for (size_t r = 0; r < svc->n_routes; r++, ri++) {
            const sl_route_cfg_t *rc = &svc->routes[r];
            sl_route_rt_t *rt = &g->routes[ri];
            rt->cfg = rc;
            rt->svc = svc;
            rt->upstream = rc->direct_response || !svc->has_upstream ? NULL : &g->upstreams[s];
            /* A route without the policy that failed (an ip_access, a rate limit) would serve what
             * the configuration refuses: the whole generation is refused instead. */
            if (sl_policy_chain_init(rt, errs) != 0) failed = 1;
            size_t nh = rc->n_hosts ? rc->n_hosts : 1, np = rc->n_paths ? rc->n_paths : 1;
            for (size_t h = 0; h < nh; h++)
                for (size_t p = 0; p < np; p++)
                    sl_router_add(g->router, rc->n_hosts ? rc->hosts[h] : NULL, rc->n_paths ? rc->paths[p] : "/*",
                                  rc->methods, rt);
        }
    }
    if (sl_stream_routes_build(g, errs) != 0) failed = 1;
    if (access_log_for(cfg, &g->access_log, errs) != 0) failed = 1;
    if (failed) {
        /* Nothing of g was published or handed out: releasing it undoes every step, the
         * routes that did initialise included. */
        sl_generation_release(g);
        return NULL;
    }
    return g;
}

void sl_generation_count_request(sl_generation_t *g, sl_route_rt_t *route, int status, unsigned worker)
{
    sl_status_cache_t *cache = route ? &route->requests : &g->no_route;
    size_t slot = (size_t)status % SL_STATUS_CACHE;
    for (size_t i = 0; i < SL_STATUS_CACHE; i++) {
        size_t k = (slot + i) % SL_STATUS_CACHE;
        int have = atomic_load_explicit(&cache->status[k], memory_order_acquire);
        if (have == status) {
            sl_series_t *s = atomic_load_explicit(&cache->series[k], memory_order_acquire);
            if (s) {
                sl_series_add(s, worker, 1);
                return;
            }
            break; /* being filled by another thread: take the slow path */
        }
        if (have == 0) {
            /* Claim the slot, then publish the series; readers wait for both. */
            int expected = 0;
            char text[8];
            snprintf(text, sizeof(text), "%d", status);
            const char *labels[] = {route ? route->svc->name : "", route ? route->cfg->name : "", text};
            sl_series_t *s = sl_metrics_series(sl_metrics.requests, labels);
            if (atomic_compare_exchange_strong(&cache->status[k], &expected, status))
                atomic_store_explicit(&cache->series[k], s, memory_order_release);
            sl_series_add(s, worker, 1);
            return;
        }
    }
    char text[8];
    snprintf(text, sizeof(text), "%d", status);
    const char *labels[] = {route ? route->svc->name : "", route ? route->cfg->name : "", text};
    sl_series_add(sl_metrics_series(sl_metrics.requests, labels), worker, 1);
}

int sl_generation_take_listen_fd(sl_generation_t *g, size_t i, unsigned worker)
{
    if (!g->listen_fds || worker >= g->n_workers || i >= g->n_listens) return -1;
    return atomic_exchange(&g->listen_fds[i * g->n_workers + worker], -1);
}

sl_access_log_t *sl_generation_access_log(const sl_generation_t *g)
{
    return g->access_log;
}

void sl_generation_retain(sl_generation_t *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

void sl_generation_release(sl_generation_t *g)
{
    if (!g || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1) return;
    for (size_t s = 0; s < g->cfg->n_services; s++)
        if (g->cfg->services[s].has_upstream) sl_upstream_destroy(&g->upstreams[s]);
    if (g->listen_fds) {
        for (size_t i = 0; i < g->n_listens * g->n_workers; i++) {
            int fd = atomic_load(&g->listen_fds[i]);
            if (fd >= 0) close(fd);
        }
        free(g->listen_fds);
    }
    for (size_t i = 0; i < g->n_routes; i++) sl_policy_chain_destroy(&g->routes[i]);
    sl_stream_routes_destroy(g);
    free(g->listens);
    free(g->upstreams);
    free(g->routes);
    sl_router_destroy(g->router);
    sl_keep_release(g->access_log);
    sl_config_free(g->cfg);
    free(g);
}

sl_generation_t *sl_generation_current(void)
{
    /* A lock rather than a bare atomic load: loading the pointer and taking the reference must
     * be one step, or a concurrent publish could free the generation in between. Workers call
     * this only when told of a reload, never per request. */
    pthread_mutex_lock(&current_lock);
    sl_generation_t *g = current;
    if (g) sl_generation_retain(g);
    pthread_mutex_unlock(&current_lock);
    return g;
}

void sl_generation_publish(sl_generation_t *g)
{
    pthread_mutex_lock(&current_lock);
    sl_generation_t *old = current;
    current = g;
    pthread_mutex_unlock(&current_lock);
    sl_generation_release(old);
}
