#include "runtime/runtime.h"
#include "base/common.h"
#include "base/log.h"
#include "runtime/generation.h"
#include "runtime/listen_kind.h"
#include "runtime/listener.h"
#include "runtime/worker.h"
#include "upstream/health.h"
#include "upstream/resolver.h"

#include <string.h>

static struct {
    uv_loop_t *loop;
    unsigned n_workers;
    sl_worker_t *workers;
} rt;

void sl_runtime_init(uv_loop_t *loop, unsigned n_workers)
{
    rt.loop = loop;
    rt.n_workers = n_workers;
}

void sl_runtime_set_workers(sl_worker_t *workers)
{
    rt.workers = workers;
}

static uint64_t min_resolve_interval(const sl_config_t *cfg)
{
    uint64_t ms = 0;
    for (size_t i = 0; i < cfg->n_services; i++) {
        uint64_t v = cfg->services[i].upstream.resolve_interval_ms;
        if (cfg->services[i].has_upstream && v && (!ms || v < ms)) ms = v;
    }
    return ms ? ms : 30000;
}

/* Whether g listens on l's address, of the same kind. */
static int has_listen(const sl_generation_t *g, const sl_listen_t *l)
{
    for (size_t i = 0; i < g->n_listens; i++)
        if (g->listens[i].kind == l->kind && !strcmp(g->listens[i].addr.text, l->addr.text)) return 1;
    return 0;
}

/* The listen addresses g adds to old (every one at start-up, old NULL) open here, in the main
 * thread, before g is published, one socket per worker: connections queue in their backlogs
 * (datagrams in their buffers) from this moment, so a port accepts as soon as the start or the
 * reload is done, and a port someone else serves fails the whole start or reload. "Someone
 * else" includes another sluice: SO_REUSEPORT would let it share the port, so an address the
 * process does not hold yet is probed without SO_REUSEPORT first (runtime/listener.h). */
static int prepare_new_listeners(const sl_generation_t *old, sl_generation_t *g, sl_config_errors_t *errs)
{
    g->n_workers = rt.n_workers;
    g->listen_fds = sl_xcalloc(g->n_listens * rt.n_workers, sizeof(atomic_int));
    for (size_t i = 0; i < g->n_listens * rt.n_workers; i++) atomic_init(&g->listen_fds[i], -1);
    for (size_t i = 0; i < g->n_listens; i++) {
        const sl_listen_t *l = &g->listens[i];
        if (old && has_listen(old, l)) continue;
        const sl_listener_ops_t *kind = sl_listen_kind(l->kind);
        int udp = kind->datagram;
        int rc = sl_listener_held(udp, &l->addr) ? 0 : sl_listener_probe(&l->addr, udp);
        for (unsigned w = 0; w < rt.n_workers && rc == 0; w++) {
            int fd = kind->prepare(&l->addr);
            if (fd < 0)
                rc = fd;
            else
                atomic_store(&g->listen_fds[i * rt.n_workers + w], fd);
        }
        if (rc != 0) {
            sl_config_errors_add(errs, g->cfg->source, 0, 0, kind->config_path, "cannot listen on %s%s: %s%s",
                                 l->addr.text, udp ? " (udp)" : "", uv_strerror(rc),
                                 rc == UV_EADDRINUSE ? " (another process serves it)" : "");
            return -1; /* the generation's release closes what was opened */
        }
    }
    return 0;
}

/* gateway.log: sluice's own messages from now on. */
static void apply_log_settings(const sl_config_t *cfg)
{
    sl_log_set_level((sl_log_level_t)cfg->gateway.log.level);
    sl_log_set_format((sl_log_format_t)cfg->gateway.log.format);
}

static const sl_service_cfg_t *find_service(const sl_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_services; i++)
        if (!strcmp(cfg->services[i].name, name)) return &cfg->services[i];
    return NULL;
}

static const sl_route_cfg_t *find_route(const sl_service_cfg_t *svc, const char *name)
{
    for (size_t i = 0; svc && i < svc->n_routes; i++)
        if (!strcmp(svc->routes[i].name, name)) return &svc->routes[i];
    return NULL;
}

/* What a reload changes, one line each: listeners opened and closed, services and routes
 * added, removed and changed (anything written in them, by the hash the loader took). */
static void log_changes(const sl_generation_t *old, const sl_generation_t *g)
{
    int n = 0;
    for (size_t i = 0; i < g->n_listens; i++)
        if (!has_listen(old, &g->listens[i]))
            n++, sl_log_info("reload: listening on %s (%s)", g->listens[i].addr.text,
                             sl_listen_kind(g->listens[i].kind)->name);
    for (size_t i = 0; i < old->n_listens; i++)
        if (!has_listen(g, &old->listens[i]))
            n++, sl_log_info("reload: no longer listening on %s (%s)", old->listens[i].addr.text,
                             sl_listen_kind(old->listens[i].kind)->name);
    const sl_config_t *a = old->cfg, *b = g->cfg;
    for (size_t i = 0; i < b->n_services; i++) {
        const sl_service_cfg_t *ns = &b->services[i], *os = find_service(a, ns->name);
        if (!os) {
            n++, sl_log_info("reload: service %s added (%zu route%s)", ns->name, ns->n_routes, ns->n_routes == 1 ? "" : "s");
            continue;
        }
        if (os->hash != ns->hash) n++, sl_log_info("reload: service %s changed", ns->name);
        for (size_t r = 0; r < ns->n_routes; r++) {
            const sl_route_cfg_t *nr = &ns->routes[r], *orr = find_route(os, nr->name);
            if (!orr)
                n++, sl_log_info("reload: route %s/%s added", ns->name, nr->name);
            else if (orr->hash != nr->hash)
                n++, sl_log_info("reload: route %s/%s changed", ns->name, nr->name);
        }
        for (size_t r = 0; r < os->n_routes; r++)
            if (!find_route(ns, os->routes[r].name))
                n++, sl_log_info("reload: route %s/%s removed", ns->name, os->routes[r].name);
    }
    for (size_t i = 0; i < a->n_services; i++)
        if (!find_service(b, a->services[i].name)) n++, sl_log_info("reload: service %s removed", a->services[i].name);
    if (!n) sl_log_info("reload: no listener, service or route changed");
}

int sl_runtime_apply(sl_config_t *cfg, sl_config_errors_t *errs)
{
    sl_generation_t *old = sl_generation_current();
    if (!old) apply_log_settings(cfg);
    if (old && sl_config_check_reload(old->cfg, cfg, errs) != 0) {
        sl_generation_release(old);
        sl_config_free(cfg);
        return -1;
    }
    sl_generation_t *g = sl_generation_create(cfg, errs); /* frees cfg when it fails */
    if (!g || prepare_new_listeners(old, g, errs) != 0) {
        sl_generation_release(g);
        sl_generation_release(old);
        return -1;
    }
    if (old) log_changes(old, g);
    sl_generation_release(old);
    sl_resolver_start(rt.loop, min_resolve_interval(cfg));
    sl_generation_publish(g);
    apply_log_settings(cfg);
    sl_health_sync(rt.loop, g); /* g stays current: only this thread publishes */
    for (unsigned i = 0; rt.workers && i < rt.n_workers; i++) sl_worker_notify_reload(&rt.workers[i]);
    return 0;
}
