#include "upstream/health.h"
#include "base/common.h"
#include "base/log.h"
#include "base/time.h"
#include "observe/metrics.h"
#include "runtime/generation.h"
#include "base/keeper.h"
#include "upstream/connect.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* last_error strings: written on failures only, so one lock for all of them is enough. */
static pthread_mutex_t detail_lock = PTHREAD_MUTEX_INITIALIZER;

static struct {
    sl_metric_family_t *healthy, *checks, *transitions;
} fam;

void sl_health_metrics_init(sl_metrics_t *m)
{
    static const char *const node_labels[] = {"service", "node"};
    static const char *const check_labels[] = {"service", "node", "result"};
    static const char *const to_labels[] = {"service", "node", "to"};
    fam.healthy =
        sl_metrics_family(m, "sluice_upstream_node_healthy", "1 while the upstream node is healthy, 0 while it is not.",
                          SL_METRIC_GAUGE, node_labels, 2, NULL, 0);
    fam.checks = sl_metrics_family(m, "sluice_upstream_health_checks_total", "Active health checks, by result.",
                                   SL_METRIC_COUNTER, check_labels, 3, NULL, 0);
    fam.transitions = sl_metrics_family(m, "sluice_upstream_node_transitions_total",
                                        "Upstream node health transitions, by the state entered.", SL_METRIC_COUNTER,
                                        to_labels, 3, NULL, 0);
}

static void attach_metrics(sl_node_state_t *st)
{
    if (!fam.healthy || !fam.checks || !fam.transitions) return;
    const char *node[] = {st->service, st->address};
    const char *ok[] = {st->service, st->address, "success"}, *bad[] = {st->service, st->address, "failure"};
    const char *up[] = {st->service, st->address, "healthy"}, *down[] = {st->service, st->address, "unhealthy"};
    st->m_healthy = sl_metrics_series(fam.healthy, node);
    st->m_check_ok = sl_metrics_series(fam.checks, ok);
    st->m_check_failed = sl_metrics_series(fam.checks, bad);
    st->m_to_healthy = sl_metrics_series(fam.transitions, up);
    st->m_to_unhealthy = sl_metrics_series(fam.transitions, down);
    /* Series outlive states: a node that comes back after a removal continues its series. */
    int64_t now = sl_series_value(st->m_healthy);
    if (now != 1) sl_series_add(st->m_healthy, SL_METRICS_MAIN_THREAD, 1 - now);
}

/* Metric updates may come from any thread: the main-thread shard is updated atomically. */
static void series_add(sl_series_t *s, int64_t delta)
{
    if (s) sl_series_add(s, SL_METRICS_MAIN_THREAD, delta);
}

/* ---- node states, kept by service and address ------------------------------------------ */

typedef struct state_key {
    const char *service, *address;
} state_key_t;

static void *state_create(const void *settings)
{
    const state_key_t *k = settings;
    sl_node_state_t *st = sl_xcalloc(1, sizeof(*st));
    atomic_init(&st->healthy, 1);
    atomic_init(&st->down_by, SL_DOWN_NONE);
    st->service = sl_xstrdup(k->service);
    st->address = sl_xstrdup(k->address);
    attach_metrics(st);
    return st;
}

static void state_destroy(void *state)
{
    sl_node_state_t *st = state;
    /* A node no longer configured is not reported as up. */
    if (st->m_healthy) series_add(st->m_healthy, -sl_series_value(st->m_healthy));
    free(st->service);
    free(st->address);
    free(st);
}

/* Every setting of a node lives in its upstream, none in the state: any state of the key does. */
static const sl_keep_type_t state_type = {.name = "node health", .create = state_create, .destroy = state_destroy};

sl_node_state_t *sl_health_state_get(const char *service, const char *address)
{
    state_key_t k = {service, address};
    return sl_keep_get_names(&state_type, service, address, &k);
}

void sl_health_state_release(sl_node_state_t *st)
{
    sl_keep_release(st);
}

static void set_error(sl_node_state_t *st, const char *msg)
{
    pthread_mutex_lock(&detail_lock);
    snprintf(st->last_error, sizeof(st->last_error), "%s", msg);
    pthread_mutex_unlock(&detail_lock);
}

/* Moves st to healthy or unhealthy; logs and counts only a real change. Any thread. */
static int transition(sl_node_state_t *st, int healthy, int down_by, const char *reason)
{
    if (!healthy) atomic_store(&st->down_by, down_by);
    int was = atomic_exchange(&st->healthy, healthy);
    if (healthy) atomic_store(&st->down_by, SL_DOWN_NONE);
    if (was == healthy) return 0;
    atomic_fetch_add(&sl_health_epoch, 1); /* upstreams recompute their priority level */
    sl_log_info("upstream %s node %s: %s -> %s (%s)", st->service, st->address, was ? "healthy" : "unhealthy",
                healthy ? "healthy" : "unhealthy", reason);
    series_add(healthy ? st->m_to_healthy : st->m_to_unhealthy, 1);
    series_add(st->m_healthy, healthy ? 1 : -1);
    return 1;
}

/* ---- passive checks ---------------------------------------------------------------------- */

int sl_health_node_up(const sl_upstream_t *u, const sl_node_t *n)
{
    sl_node_state_t *st = n->state;
    if (atomic_load_explicit(&st->healthy, memory_order_relaxed)) return 1;
    const sl_upstream_cfg_t *c = u->cfg;
    if (!c->passive_check.enabled || c->health_check.enabled) return 0;
    if (atomic_load_explicit(&st->down_by, memory_order_relaxed) != SL_DOWN_PASSIVE) return 0;
    uint64_t down = atomic_load(&st->down_ms);
    if (sl_now_ms() - down < c->passive_check.cooldown_ms) return 0;
    /* Cooldown over: the node takes traffic again on trial, and the first result decides. The
     * flag itself flips so that every worker and every balancer sees it as a candidate. */
    int expect = SL_DOWN_PASSIVE;
    if (atomic_compare_exchange_strong(&st->down_by, &expect, SL_DOWN_TRIAL)) {
        sl_log_info("upstream %s node %s: cooldown over, trying it again", st->service, st->address);
        sl_health_set(st, 1);
    }
    return 1;
}

static const char *outcome_name(sl_outcome_t o)
{
    switch (o) {
    case SL_OUTCOME_OK:
        return "ok";
    case SL_OUTCOME_FAILED_STATUS:
        return "failure status";
    case SL_OUTCOME_CONNECT_FAILURE:
        return "connect failure";
    case SL_OUTCOME_TIMEOUT:
        return "timeout";
    case SL_OUTCOME_RESET:
        return "reset";
    case SL_OUTCOME_ABORTED:
        return "aborted";
    }
    return "?";
}

void sl_health_report(const sl_upstream_t *u, sl_node_t *n, sl_outcome_t outcome)
{
    const sl_passive_cfg_t *pc = &u->cfg->passive_check;
    sl_node_state_t *st = n->state;
    if (!pc->enabled || outcome == SL_OUTCOME_ABORTED) return;
    int trial = atomic_load(&st->down_by) == SL_DOWN_TRIAL;
    if (outcome == SL_OUTCOME_OK) {
        atomic_store_explicit(&st->fails, 0, memory_order_relaxed);
        int expect = SL_DOWN_TRIAL;
        if (trial && atomic_compare_exchange_strong(&st->down_by, &expect, SL_DOWN_NONE)) {
            series_add(st->m_to_healthy, 1);
            series_add(st->m_healthy, 1);
            sl_log_info("upstream %s node %s: unhealthy -> healthy (passive: trial request succeeded)", st->service,
                        st->address);
        }
        return;
    }
    char msg[128];
    snprintf(msg, sizeof(msg), "passive: %s", outcome_name(outcome));
    set_error(st, msg);
    if (trial) {
        int expect = SL_DOWN_TRIAL;
        atomic_store(&st->down_ms, sl_now_ms());
        if (atomic_compare_exchange_strong(&st->down_by, &expect, SL_DOWN_PASSIVE)) {
            sl_health_set(st, 0);
            sl_log_info("upstream %s node %s: trial request failed (%s), still unhealthy", st->service, st->address,
                        outcome_name(outcome));
        }
        return;
    }
    if (!atomic_load_explicit(&st->healthy, memory_order_relaxed)) return;
    unsigned fails = atomic_fetch_add(&st->fails, 1) + 1;
    if (fails < pc->failures) return;
    atomic_store(&st->fails, 0);
    atomic_store(&st->down_ms, sl_now_ms());
    snprintf(msg, sizeof(msg), "passive: %u consecutive failures, last %s", fails, outcome_name(outcome));
    transition(st, 0, SL_DOWN_PASSIVE, msg);
}

int sl_health_status_fails(const sl_upstream_t *u, int status)
{
    const sl_passive_cfg_t *pc = &u->cfg->passive_check;
    if (!pc->n_statuses) return status == 500 || status == 502 || status == 503 || status == 504;
    for (size_t i = 0; i < pc->n_statuses; i++)
        if (status >= pc->statuses[i].lo && status <= pc->statuses[i].hi) return 1;
    return 0;
}

/* ---- active checks ----------------------------------------------------------------------- */

/* One checker per (service, node) for the whole process, on the main loop. It follows the
 * generations: u and n point into the generation the health module holds (hc.gen). */
typedef struct checker {
    uv_timer_t timer;
    sl_node_state_t *st;
    const sl_upstream_t *u;
    const sl_node_t *n;
    uint64_t interval_ms; /* the interval the pending timer was armed with */
    uint32_t ok_streak, fail_streak;
    struct probe *probe; /* the check in flight, or NULL */
    int seen;            /* sync: still configured */
    struct checker *next;
} checker_t;

/* One check: a connection (net/conn.h), a timeout for the whole check. Freed once both are
 * closed. */
typedef struct probe {
    sl_conn_t conn;
    uv_timer_t timeout;
    sl_conn_write_t write;
    checker_t *checker; /* NULL once the checker was stopped */
    sl_buf_t out;
    char in[SL_HEALTH_EXPECT_MAX]; /* the reply, as much as an expect may need */
    size_t in_len;
    int open_handles;
    int done;
} probe_t;

static struct {
    uv_loop_t *loop;
    sl_generation_t *gen;
    checker_t *checkers;
    uint64_t rng;
    uv_timer_t sweep; /* passive checks without active checks: ends cooldowns */
    int sweep_init;
} hc;

static uint64_t rng_next(void)
{
    if (!hc.rng) hc.rng = sl_now_ns() | 1;
    hc.rng ^= hc.rng << 13;
    hc.rng ^= hc.rng >> 7;
    hc.rng ^= hc.rng << 17;
    return hc.rng;
}

/* interval +-15%, so checks of many nodes do not fire together. */
static uint64_t jittered(uint64_t interval_ms)
{
    uint64_t span = interval_ms * 3 / 10;
    if (!span) return interval_ms ? interval_ms : 1;
    return interval_ms - span / 2 + rng_next() % (span + 1);
}

static void probe_gone(probe_t *p)
{
    if (--p->open_handles == 0) {
        sl_buf_free(&p->out);
        free(p);
    }
}

static void probe_closed(uv_handle_t *h)
{
    probe_gone(h->data);
}

static void probe_conn_closed(sl_conn_t *c)
{
    probe_gone(c->data);
}

static void probe_close(probe_t *p)
{
    if (!sl_conn_is_closing(&p->conn)) sl_conn_close(&p->conn, probe_conn_closed);
    if (!uv_is_closing((uv_handle_t *)&p->timeout)) uv_close((uv_handle_t *)&p->timeout, probe_closed);
}

static void on_check_timer(uv_timer_t *t);

static void schedule(checker_t *c, uint64_t delay_ms)
{
    c->interval_ms = c->u->cfg->health_check.interval_ms;
    uv_timer_start(&c->timer, on_check_timer, delay_ms, 0);
}

static void record(checker_t *c, int ok, const char *err)
{
    sl_node_state_t *st = c->st;
    const sl_health_cfg_t *hcfg = &c->u->cfg->health_check;
    atomic_store(&st->last_check_ms, sl_unix_ms());
    atomic_fetch_add(ok ? &st->checks_ok : &st->checks_failed, 1);
    series_add(ok ? st->m_check_ok : st->m_check_failed, 1);
    if (!ok) set_error(st, err);
    /* Streaks count from the current verdict: a node passive checks just marked down needs
     * healthy_threshold fresh successes, whatever came before. */
    if (atomic_load(&st->healthy) && atomic_load(&st->down_by) != SL_DOWN_TRIAL) {
        c->ok_streak = 0;
        c->fail_streak = ok ? 0 : c->fail_streak + 1;
        if (c->fail_streak >= hcfg->unhealthy_threshold) {
            char msg[192];
            snprintf(msg, sizeof(msg), "%u consecutive failed checks, last: %s", c->fail_streak, err);
            transition(st, 0, SL_DOWN_ACTIVE, msg);
            c->fail_streak = 0;
        }
    } else {
        c->fail_streak = 0;
        c->ok_streak = ok ? c->ok_streak + 1 : 0;
        if (c->ok_streak >= hcfg->healthy_threshold) {
            char msg[64];
            snprintf(msg, sizeof(msg), "%u consecutive successful checks", c->ok_streak);
            transition(st, 1, SL_DOWN_NONE, msg);
            c->ok_streak = 0;
        }
    }
}

static void probe_finish(probe_t *p, int ok, const char *err)
{
    if (p->done) return;
    p->done = 1;
    checker_t *c = p->checker;
    if (c) {
        c->probe = NULL;
        record(c, ok, err);
        schedule(c, jittered(c->u->cfg->health_check.interval_ms));
    }
    probe_close(p);
}

static int is_http(const sl_upstream_t *u)
{
    return u->svc->type == SL_SERVICE_HTTP;
}

/* Decides as soon as the bytes read are enough; returns 1 when it did. */
static int probe_evaluate(probe_t *p, int eof)
{
    const sl_upstream_t *u = p->checker->u;
    const sl_health_cfg_t *h = &u->cfg->health_check;
    char err[96];
    if (is_http(u)) {
        char *eol = memchr(p->in, '\n', p->in_len);
        if (!eol && !eof && p->in_len < sizeof(p->in)) return 0;
        int status = 0;
        if (!eol || sscanf(p->in, "HTTP/1.%*1[01] %3d", &status) != 1 || status < 100 || status > 599) {
            probe_finish(p, 0, eol || p->in_len ? "malformed response" : "closed before a response");
            return 1;
        }
        int good = 0;
        if (!h->n_expected) good = status >= 200 && status <= 399;
        for (size_t i = 0; i < h->n_expected && !good; i++)
            good = status >= h->expected[i].lo && status <= h->expected[i].hi;
        snprintf(err, sizeof(err), "status %d", status);
        probe_finish(p, good, err);
        return 1;
    }
    size_t want = h->expect_len;
    if (p->in_len < want && !eof && p->in_len < sizeof(p->in)) return 0;
    int good = p->in_len >= want;
    for (size_t i = 0; i < want && good; i++)
        good = (h->expect_any && h->expect_any[i]) || (unsigned char)p->in[i] == h->expect[i];
    if (!good)
        probe_finish(p, 0, "reply does not start with the expected bytes");
    else
        probe_finish(p, 1, NULL);
    return 1;
}

static void on_probe_alloc(sl_conn_t *c, uv_buf_t *buf)
{
    probe_t *p = c->data;
    buf->base = p->in + p->in_len;
    buf->len = sizeof(p->in) - p->in_len;
}

static void on_probe_read(sl_conn_t *c, ssize_t nread, const uv_buf_t *buf)
{
    SL_UNUSED(buf);
    probe_t *p = c->data;
    if (p->done || !p->checker) return;
    if (nread > 0) p->in_len += (size_t)nread;
    if (nread == UV_EOF || p->in_len == sizeof(p->in)) {
        probe_evaluate(p, 1);
    } else if (nread < 0) {
        char err[96];
        snprintf(err, sizeof(err), "read: %s", uv_strerror((int)nread));
        probe_finish(p, 0, err);
    } else if (nread > 0) {
        probe_evaluate(p, 0);
    }
}

static void on_probe_written(sl_conn_write_t *w, int status)
{
    probe_t *p = w->data;
    if (p->done || !p->checker) return;
    if (status < 0) {
        char err[96];
        snprintf(err, sizeof(err), "write: %s", uv_strerror(status));
        probe_finish(p, 0, err);
        return;
    }
    /* A TCP check with send but no expect passes once the payload is written. */
    if (!is_http(p->checker->u) && !p->checker->u->cfg->health_check.expect_len) probe_finish(p, 1, NULL);
}

static void build_request(probe_t *p, const sl_upstream_t *u, const sl_node_t *n)
{
    const sl_health_cfg_t *h = &u->cfg->health_check;
    if (!is_http(u)) {
        if (h->send_len) sl_buf_append(&p->out, h->send, h->send_len);
        return;
    }
    sl_buf_printf(&p->out, "%s %s HTTP/1.1\r\nHost: %s\r\n", h->method ? h->method : "GET", h->path ? h->path : "/",
                  h->host ? h->host : n->name);
    for (size_t i = 0; i < h->n_headers; i++)
        sl_buf_printf(&p->out, "%s: %s\r\n", h->headers[i].name, h->headers[i].value);
    sl_buf_puts(&p->out, "User-Agent: sluice-health-check\r\nConnection: close\r\n\r\n");
}

static void on_probe_connect(sl_conn_t *c, int status)
{
    probe_t *p = c->data;
    if (p->done || !p->checker) return;
    if (status < 0) {
        char err[96];
        snprintf(err, sizeof(err), "connect: %s", uv_strerror(status));
        probe_finish(p, 0, err);
        return;
    }
    const sl_upstream_t *u = p->checker->u;
    const sl_health_cfg_t *h = &u->cfg->health_check;
    build_request(p, u, p->checker->n);
    if (!is_http(u) && !p->out.len && !h->expect_len) {
        probe_finish(p, 1, NULL); /* plain TCP check: the connect is the check */
        return;
    }
    if (is_http(u) || h->expect_len) sl_conn_read_start(&p->conn, on_probe_alloc, on_probe_read);
    if (p->out.len) {
        p->write.data = p;
        uv_buf_t b = uv_buf_init(p->out.data, (unsigned)p->out.len);
        int rc = sl_conn_write(&p->conn, &p->write, &b, 1, on_probe_written);
        if (rc < 0) {
            char err[96];
            snprintf(err, sizeof(err), "write: %s", uv_strerror(rc));
            probe_finish(p, 0, err);
        }
    }
}

static void on_probe_timeout(uv_timer_t *t)
{
    probe_t *p = t->data;
    char err[64];
    snprintf(err, sizeof(err), "timeout after %llums",
             p->checker ? (unsigned long long)p->checker->u->cfg->health_check.timeout_ms : 0ull);
    probe_finish(p, 0, err);
}

static void on_check_timer(uv_timer_t *t)
{
    checker_t *c = t->data;
    if (c->probe) return; /* still running: the next one is scheduled when it ends */
    probe_t *p = sl_xcalloc(1, sizeof(*p));
    p->checker = c;
    sl_conn_init(&p->conn, hc.loop, &sl_conn_tcp);
    uv_timer_init(hc.loop, &p->timeout);
    p->conn.data = p->timeout.data = p;
    p->open_handles = 2;
    c->probe = p;
    uv_timer_start(&p->timeout, on_probe_timeout, c->u->cfg->health_check.timeout_ms, 0);
    /* The timeout covers the whole check, the connect included: no deadline of the connect's. */
    int rc = sl_node_connect(&p->conn, c->n, 0, on_probe_connect);
    if (rc == SL_NODE_UNRESOLVED) {
        probe_finish(p, 0, "address does not resolve");
    } else if (rc < 0) {
        char err[96];
        snprintf(err, sizeof(err), "connect: %s", uv_strerror(rc));
        probe_finish(p, 0, err);
    }
}

static void checker_closed(uv_handle_t *h)
{
    free(h->data);
}

static void checker_stop(checker_t *c)
{
    if (c->probe) {
        c->probe->checker = NULL;
        probe_close(c->probe);
        c->probe = NULL;
    }
    sl_health_state_release(c->st);
    c->st = NULL;
    uv_close((uv_handle_t *)&c->timer, checker_closed);
}

/* A node down by passive checks gets its trial when the cooldown ends even if no balancer asks
 * about it (pickers skip lower priorities without looking): the main loop looks regularly. */
static void on_sweep(uv_timer_t *t)
{
    SL_UNUSED(t);
    for (size_t s = 0; hc.gen && s < hc.gen->cfg->n_services; s++) {
        if (!hc.gen->cfg->services[s].has_upstream) continue;
        const sl_upstream_t *u = &hc.gen->upstreams[s];
        for (size_t i = 0; i < u->n_nodes; i++)
            sl_health_node_up(u, &u->nodes[i]);
    }
}

static void sweep_sync(uv_loop_t *loop, const sl_generation_t *g)
{
    uint64_t every = 0;
    for (size_t s = 0; g && s < g->cfg->n_services; s++) {
        const sl_upstream_cfg_t *c = &g->cfg->services[s].upstream;
        if (!g->cfg->services[s].has_upstream || !c->passive_check.enabled || c->health_check.enabled) continue;
        uint64_t v = c->passive_check.cooldown_ms / 4;
        if (!every || v < every) every = v;
    }
    if (!hc.sweep_init) {
        uv_timer_init(loop, &hc.sweep);
        uv_unref((uv_handle_t *)&hc.sweep);
        hc.sweep_init = 1;
    }
    if (!every) {
        uv_timer_stop(&hc.sweep);
        return;
    }
    every = every < 50 ? 50 : every > 1000 ? 1000 : every;
    uv_timer_start(&hc.sweep, on_sweep, every, every);
}

void sl_health_sync(uv_loop_t *loop, sl_generation_t *g)
{
    hc.loop = loop;
    sweep_sync(loop, g);
    for (checker_t *c = hc.checkers; c; c = c->next)
        c->seen = 0;
    for (size_t s = 0; g && s < g->cfg->n_services; s++) {
        const sl_service_cfg_t *svc = &g->cfg->services[s];
        if (!svc->has_upstream || !svc->upstream.health_check.enabled) continue;
        const sl_upstream_t *u = &g->upstreams[s];
        for (size_t i = 0; i < u->n_nodes; i++) {
            const sl_node_t *n = &u->nodes[i];
            checker_t *c = hc.checkers;
            while (c && c->st != n->state)
                c = c->next;
            if (c && c->seen) continue; /* the same address listed twice: one checker */
            if (!c) {
                c = sl_xcalloc(1, sizeof(*c));
                c->st = sl_health_state_get(svc->name, n->name);
                uv_timer_init(loop, &c->timer);
                c->timer.data = c;
                c->next = hc.checkers;
                hc.checkers = c;
                c->u = u;
                c->n = n;
                /* The first check comes soon, at a random point of the first interval. */
                schedule(c, rng_next() % (svc->upstream.health_check.interval_ms / 2 + 1));
            } else {
                c->u = u;
                c->n = n;
                if (!c->probe && c->interval_ms != svc->upstream.health_check.interval_ms)
                    schedule(c, jittered(svc->upstream.health_check.interval_ms));
            }
            c->seen = 1;
        }
    }
    for (checker_t **pp = &hc.checkers; *pp;) {
        checker_t *c = *pp;
        if (c->seen) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        /* A node active checks held down, and that is no longer checked, would stay down for
         * good: it goes back to healthy (passive checks may still take it out). */
        if (atomic_load(&c->st->down_by) == SL_DOWN_ACTIVE) transition(c->st, 1, SL_DOWN_NONE, "no longer checked");
        checker_stop(c);
    }
    if (g) sl_generation_retain(g);
    if (hc.gen) sl_generation_release(hc.gen);
    hc.gen = g;
}

void sl_health_shutdown(void)
{
    if (hc.sweep_init) {
        uv_close((uv_handle_t *)&hc.sweep, NULL);
        hc.sweep_init = 0;
    }
    while (hc.checkers) {
        checker_t *c = hc.checkers;
        hc.checkers = c->next;
        checker_stop(c);
    }
    if (hc.gen) sl_generation_release(hc.gen);
    hc.gen = NULL;
}

/* ---- status page ------------------------------------------------------------------------- */

static const char *const balance_names[] = {
    [SL_BALANCE_RANDOM] = "random",     [SL_BALANCE_ROUND_ROBIN] = "round_robin",
    [SL_BALANCE_WEIGHTED] = "weighted", [SL_BALANCE_COOKIE] = "cookie",
    [SL_BALANCE_HASH] = "hash",         [SL_BALANCE_LEAST_CONN] = "least_conn",
    [SL_BALANCE_EWMA] = "ewma",
};

static void json_str(sl_buf_t *b, const char *s)
{
    if (!s) {
        sl_buf_puts(b, "null");
        return;
    }
    sl_buf_putc(b, '"');
    sl_buf_json_escape(b, s, strlen(s));
    sl_buf_putc(b, '"');
}

void sl_health_status_json(const sl_generation_t *g, sl_buf_t *out)
{
    sl_buf_puts(out, "{\"upstreams\":[");
    int first = 1;
    for (size_t s = 0; g && s < g->cfg->n_services; s++) {
        const sl_service_cfg_t *svc = &g->cfg->services[s];
        if (!svc->has_upstream) continue;
        const sl_upstream_t *u = &g->upstreams[s];
        sl_buf_puts(out, first ? "{\"service\":" : ",{\"service\":");
        first = 0;
        json_str(out, svc->name);
        sl_buf_puts(out, ",\"balance\":");
        json_str(out, (size_t)svc->upstream.balance < SL_ARRAY_LEN(balance_names) ? balance_names[svc->upstream.balance]
                                                                                  : "?");
        sl_buf_puts(out, ",\"nodes\":[");
        for (size_t i = 0; i < u->n_nodes; i++) {
            const sl_node_t *n = &u->nodes[i];
            sl_node_state_t *st = n->state;
            int healthy = atomic_load(&st->healthy) && atomic_load(&st->down_by) != SL_DOWN_TRIAL;
            sl_buf_puts(out, i ? ",{\"address\":" : "{\"address\":");
            json_str(out, n->name);
            sl_buf_printf(out, ",\"weight\":%u,\"priority\":%d,\"healthy\":%s,\"active_requests\":%d,\"last_check\":",
                          n->weight, n->priority, healthy ? "true" : "false", atomic_load(&st->active));
            uint64_t lc = atomic_load(&st->last_check_ms);
            if (lc) {
                time_t secs = (time_t)(lc / 1000);
                struct tm tm;
                gmtime_r(&secs, &tm);
                char ts[64];
                strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
                sl_buf_printf(out, "\"%s.%03uZ\"", ts, (unsigned)(lc % 1000));
            } else {
                sl_buf_puts(out, "null");
            }
            sl_buf_puts(out, ",\"last_error\":");
            char err[sizeof(st->last_error)];
            pthread_mutex_lock(&detail_lock);
            memcpy(err, st->last_error, sizeof(err));
            pthread_mutex_unlock(&detail_lock);
            json_str(out, err[0] ? err : NULL);
            sl_buf_printf(out, ",\"checks\":{\"success\":%llu,\"failure\":%llu}}",
                          (unsigned long long)atomic_load(&st->checks_ok),
                          (unsigned long long)atomic_load(&st->checks_failed));
        }
        sl_buf_puts(out, "]}");
    }
    sl_buf_puts(out, "]}");
}
