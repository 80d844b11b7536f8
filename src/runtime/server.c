/* Main thread: loads the configuration, starts the workers, serves the status listener
 * (/healthz, /metrics, /status/upstreams), runs the active health checks, reloads on SIGHUP
 * and drains on SIGTERM/SIGINT. */
#include "runtime/server.h"
#include "base/buf.h"
#include "base/common.h"
#include "base/log.h"
#include "observe/access_log.h"
#include "observe/syslog.h"
#include "runtime/generation.h"
#include "runtime/listen_kind.h"
#include "runtime/listener.h"
#include "runtime/runtime.h"
#include "runtime/worker.h"
#include "stream/stream.h"
#include "upstream/health.h"
#include "upstream/resolver.h"

/* How long the access log gets at exit to write what the workers handed over. */
#define ACCESS_LOG_EXIT_WAIT_MS 5000

#include <signal.h>
#include <string.h>
#include <unistd.h>

sl_server_metrics_t sl_metrics;

static struct {
    const char *config_path;
    uv_loop_t *loop;
    sl_worker_t *workers;
    unsigned n_workers;
    uv_signal_t sighup, sigterm, sigint, sigusr1;
    uv_async_t worker_done; /* a worker finished draining */
    atomic_uint workers_done;
    uv_tcp_t status;
    int stopping;
} srv;

sl_series_t *sl_server_upstream_latency_series(const char *service)
{
    const char *labels[] = {service};
    return sl_metrics_series(sl_metrics.upstream_latency, labels);
}

void sl_server_metrics_init(void)
{
    static const char *const req_labels[] = {"service", "route", "status"};
    static const char *const svc_labels[] = {"service"};
    static const char *const result_labels[] = {"result"};
    sl_metrics.registry = sl_metrics_create();
    sl_metrics.requests = sl_metrics_family(sl_metrics.registry, "sluice_http_requests_total",
                                            "HTTP requests answered, by service, route and status.",
                                            SL_METRIC_COUNTER, req_labels, 3, NULL, 0);
    sl_metrics.upstream_latency = sl_metrics_family(
        sl_metrics.registry, "sluice_upstream_latency_seconds",
        "Time from sending a request to an upstream until its response head arrived.", SL_METRIC_HISTOGRAM,
        svc_labels, 1, NULL, 0);
    sl_metrics.connections = sl_metrics_family(sl_metrics.registry, "sluice_http_connections_active",
                                               "Client connections currently open.", SL_METRIC_GAUGE, NULL, 0,
                                               NULL, 0);
    sl_metrics.reloads = sl_metrics_family(sl_metrics.registry, "sluice_config_reloads_total",
                                           "Configuration reloads, by result.", SL_METRIC_COUNTER, result_labels, 1,
                                           NULL, 0);
    sl_metrics.log_dropped = sl_metrics_family(sl_metrics.registry, "sluice_access_log_dropped_total",
                                               "Access log lines dropped because the writer fell behind.",
                                               SL_METRIC_COUNTER, NULL, 0, NULL, 0);
    static const char *const retry_labels[] = {"service", "route", "reason"};
    sl_metrics.retries = sl_metrics_family(sl_metrics.registry, "sluice_http_retries_total",
                                           "Requests sent again by a route's retry policy, by what ended the try.",
                                           SL_METRIC_COUNTER, retry_labels, 3, NULL, 0);
    sl_metrics.connections_active = sl_metrics_series(sl_metrics.connections, NULL);
    sl_metrics.log_dropped_total = sl_metrics_series(sl_metrics.log_dropped, NULL);
    const char *ok[] = {"success"}, *failed[] = {"failure"};
    sl_metrics.reloads_ok = sl_metrics_series(sl_metrics.reloads, ok);
    sl_metrics.reloads_failed = sl_metrics_series(sl_metrics.reloads, failed);
    sl_health_metrics_init(sl_metrics.registry);
    sl_stream_metrics_init(sl_metrics.registry);
    sl_stream_syslog_metrics_init(sl_metrics.registry);
}

static sl_config_t *load(const char *path)
{
    sl_config_t *cfg = NULL;
    sl_config_errors_t errs = {0};
    if (sl_config_load_file(path, &cfg, &errs) != 0) {
        char line[SL_CONFIG_ERROR_TEXT_MAX];
        for (size_t i = 0; i < errs.n; i++) sl_log_error("%s", sl_config_errors_text(&errs, i, line));
        sl_config_errors_free(&errs);
        return NULL;
    }
    return cfg;
}

static void reload(void)
{
    sl_log_info("reloading %s", srv.config_path);
    sl_config_t *cfg = NULL;
    sl_config_errors_t errs = {0};
    int rc = sl_config_load_file(srv.config_path, &cfg, &errs);
    if (rc == 0) rc = sl_runtime_apply(cfg, &errs);
    char line[SL_CONFIG_ERROR_TEXT_MAX];
    for (size_t i = 0; i < errs.n; i++) sl_log_error("%s", sl_config_errors_text(&errs, i, line));
    sl_config_errors_free(&errs);
    if (rc != 0) {
        sl_log_error("reload failed: keeping the running configuration");
        sl_series_add(sl_metrics.reloads_failed, SL_METRICS_MAIN_THREAD, 1);
        return;
    }
    sl_series_add(sl_metrics.reloads_ok, SL_METRICS_MAIN_THREAD, 1);
    sl_generation_t *g = sl_generation_current();
    sl_log_info("reload done: generation %llu", (unsigned long long)g->id);
    sl_generation_release(g);
}

/* ---- status listener: a tiny HTTP/1.0-style responder, one request per connection ---- */

typedef struct status_conn {
    uv_tcp_t tcp;
    int head; /* a HEAD request: headers only */
    sl_buf_t in;
    uv_write_t wreq;
    sl_buf_t out;
} status_conn_t;

/* A callback of the right type: free() called through uv_close_cb is undefined behaviour. */
static void on_status_closed(uv_handle_t *h)
{
    free(sl_container_of((uv_tcp_t *)h, status_conn_t, tcp));
}

static void status_close(status_conn_t *s)
{
    if (!uv_is_closing((uv_handle_t *)&s->tcp)) uv_close((uv_handle_t *)&s->tcp, on_status_closed);
}

static void on_status_written(uv_write_t *req, int status)
{
    SL_UNUSED(status);
    status_conn_t *s = req->data;
    sl_buf_free(&s->out);
    sl_buf_free(&s->in);
    status_close(s);
}

static void status_respond(status_conn_t *s, int code, const char *ctype, const char *body, size_t len)
{
    const char *reason = code == 200   ? "OK"
                         : code == 404 ? "Not Found"
                         : code == 503 ? "Service Unavailable"
                                       : "Bad Request";
    sl_buf_printf(&s->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                  code, reason, ctype, len);
    if (!s->head) sl_buf_append(&s->out, body, len);
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->wreq.data = s;
    uv_buf_t b = uv_buf_init(s->out.data, (unsigned)s->out.len);
    if (uv_write(&s->wreq, (uv_stream_t *)&s->tcp, &b, 1, on_status_written) != 0) {
        sl_buf_free(&s->out);
        sl_buf_free(&s->in);
        status_close(s);
    }
}

/* The access log counts its own drops; the counter follows it at each scrape. */
static void update_log_dropped(void)
{
    sl_generation_t *g = sl_generation_current();
    sl_access_log_t *log = g ? sl_generation_access_log(g) : NULL;
    if (log) {
        int64_t now = (int64_t)sl_access_log_dropped(log);
        int64_t seen = sl_series_value(sl_metrics.log_dropped_total);
        if (now > seen) sl_series_add(sl_metrics.log_dropped_total, SL_METRICS_MAIN_THREAD, now - seen);
    }
    sl_generation_release(g);
}

static void on_status_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    SL_UNUSED(suggested);
    status_conn_t *s = h->data;
    sl_buf_reserve(&s->in, 4096);
    buf->base = s->in.data + s->in.len;
    buf->len = s->in.cap - s->in.len - 1;
}

static void on_status_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    SL_UNUSED(buf);
    status_conn_t *s = st->data;
    if (nread < 0) {
        sl_buf_free(&s->in);
        status_close(s);
        return;
    }
    s->in.len += (size_t)nread;
    s->in.data[s->in.len] = '\0';
    if (!strstr(s->in.data, "\r\n\r\n") && !strstr(s->in.data, "\n\n")) {
        if (s->in.len > 16384) status_respond(s, 400, "text/plain", "bad request\n", 12);
        return;
    }
    int head = !strncmp(s->in.data, "HEAD ", 5);
    s->head = head;
    if (strncmp(s->in.data, "GET ", 4) && !head) {
        status_respond(s, 400, "text/plain", "bad request\n", 12);
        return;
    }
    const char *path = s->in.data + (head ? 5 : 4);
    size_t plen = strcspn(path, " ?\r\n");
    if (plen == 8 && !strncmp(path, "/healthz", 8)) {
        /* From the first stop signal on, a load balancer in front takes the instance out while
         * the requests in flight finish; the listeners are closed already. */
        if (srv.stopping)
            status_respond(s, 503, "text/plain", "draining\n", 9);
        else
            status_respond(s, 200, "text/plain", "ok\n", 3);
    } else if (plen == 17 && !strncmp(path, "/status/upstreams", 17)) {
        sl_generation_t *g = sl_generation_current();
        sl_buf_t j = SL_BUF_INIT;
        sl_health_status_json(g, &j);
        sl_generation_release(g);
        status_respond(s, 200, "application/json", j.data ? j.data : "", j.len);
        sl_buf_free(&j);
    } else if (plen == 8 && !strncmp(path, "/metrics", 8)) {
        update_log_dropped();
        sl_stream_syslog_metrics_update();
        sl_buf_t m = SL_BUF_INIT;
        sl_metrics_render(sl_metrics.registry, &m);
        status_respond(s, 200, "text/plain; version=0.0.4; charset=utf-8", m.data ? m.data : "", m.len);
        sl_buf_free(&m);
    } else {
        status_respond(s, 404, "text/plain", "not found\n", 10);
    }
}

static void on_status_connection(uv_stream_t *server, int status)
{
    if (status < 0) return;
    status_conn_t *s = sl_xcalloc(1, sizeof(*s));
    uv_tcp_init(server->loop, &s->tcp);
    s->tcp.data = s;
    if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0) {
        status_close(s);
        return;
    }
    uv_read_start((uv_stream_t *)&s->tcp, on_status_alloc, on_status_read);
}

/* ---- signals and lifecycle -------------------------------------------------------------- */

/* The main loop keeps running while the workers drain (status answers, a second signal is
 * heard); it stops once every worker is done. */
static void stop(void)
{
    if (srv.stopping) {
        sl_log_warn("second stop signal: closing every connection now");
        for (unsigned i = 0; i < srv.n_workers; i++) sl_worker_notify_force(&srv.workers[i]);
        return;
    }
    srv.stopping = 1;
    sl_log_info("shutting down: draining connections");
    for (unsigned i = 0; i < srv.n_workers; i++) sl_worker_notify_stop(&srv.workers[i]);
}

void sl_server_worker_done(void)
{
    atomic_fetch_add(&srv.workers_done, 1);
    uv_async_send(&srv.worker_done);
}

static void on_worker_done(uv_async_t *a)
{
    SL_UNUSED(a);
    if (atomic_load(&srv.workers_done) >= srv.n_workers) uv_stop(srv.loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
    SL_UNUSED(s);
    if (signum == SIGHUP) {
        reload();
    } else if (signum == SIGUSR1) {
        /* Log rotation: the file was renamed away; start a new one at the configured path. */
        sl_generation_t *g = sl_generation_current();
        sl_access_log_t *log = g ? sl_generation_access_log(g) : NULL;
        if (log && sl_access_log_reopen(log) == 0) sl_log_info("access log reopened");
        sl_generation_release(g);
    } else {
        stop();
    }
}

static void close_walk(uv_handle_t *h, void *arg)
{
    SL_UNUSED(arg);
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

int sl_server_run(const char *config_path)
{
    srv.config_path = config_path;
    signal(SIGPIPE, SIG_IGN);
    sl_config_t *cfg = load(config_path);
    if (!cfg) return 1;
    sl_server_metrics_init();
    srv.loop = uv_default_loop();
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    srv.n_workers = cfg->gateway.workers > 0 ? (unsigned)cfg->gateway.workers : (unsigned)(cpus > 0 ? cpus : 1);
    if (srv.n_workers > SL_METRICS_MAX_WORKERS - 1) srv.n_workers = SL_METRICS_MAX_WORKERS - 1;
    sl_runtime_init(srv.loop, srv.n_workers);

    int rc = 0;
    unsigned started = 0;
    sl_config_errors_t errs = {0};
    rc = sl_runtime_apply(cfg, &errs); /* frees cfg when it fails */
    char line[SL_CONFIG_ERROR_TEXT_MAX];
    for (size_t i = 0; i < errs.n; i++) sl_log_error("%s", sl_config_errors_text(&errs, i, line));
    sl_config_errors_free(&errs);
    if (rc != 0) {
        sl_log_error("%s: not starting", config_path);
        goto out;
    }
    const sl_gateway_cfg_t *gw = &cfg->gateway; /* startup values for workers and the status listener */

    if (gw->status.enabled) {
        rc = sl_listener_open(srv.loop, &srv.status, &gw->status.listen, 0, on_status_connection);
        if (rc != 0) {
            sl_log_error("cannot listen on %s (status): %s", gw->status.listen.text, uv_strerror(rc));
            goto out;
        }
    }
    uv_async_init(srv.loop, &srv.worker_done, on_worker_done);
    srv.workers = sl_xcalloc(srv.n_workers, sizeof(sl_worker_t));
    sl_runtime_set_workers(srv.workers);
    for (; started < srv.n_workers; started++) {
        rc = sl_worker_start(&srv.workers[started], started, sl_generation_current());
        if (rc != 0) {
            started++; /* it ran and stopped itself; still to be joined */
            break;
        }
    }
    if (rc != 0) {
        for (unsigned i = 0; i + 1 < started; i++) sl_worker_notify_stop(&srv.workers[i]);
        goto out;
    }
    uv_signal_init(srv.loop, &srv.sighup);
    uv_signal_init(srv.loop, &srv.sigterm);
    uv_signal_init(srv.loop, &srv.sigint);
    uv_signal_start(&srv.sighup, on_signal, SIGHUP);
    uv_signal_start(&srv.sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv.sigint, on_signal, SIGINT);
    uv_signal_init(srv.loop, &srv.sigusr1);
    uv_signal_start(&srv.sigusr1, on_signal, SIGUSR1);
    {
        sl_generation_t *g0 = sl_generation_current();
        for (size_t i = 0; i < g0->n_listens; i++)
            sl_log_info("listening on %s%s", g0->listens[i].addr.text, sl_listen_kind(g0->listens[i].kind)->note);
        sl_generation_release(g0);
    }
    if (gw->status.enabled)
        sl_log_info("status on %s (/healthz, /metrics, /status/upstreams)", gw->status.listen.text);
    sl_log_info("sluice %s started with %u workers", SL_VERSION, srv.n_workers);

    uv_run(srv.loop, UV_RUN_DEFAULT);

out:
    for (unsigned i = 0; i < started; i++) sl_worker_join(&srv.workers[i]);
    sl_runtime_set_workers(NULL);
    free(srv.workers);
    sl_health_shutdown();
    sl_resolver_shutdown();
    uv_walk(srv.loop, close_walk, NULL);
    uv_run(srv.loop, UV_RUN_DEFAULT);
    uv_loop_close(srv.loop);
    sl_generation_publish(NULL); /* frees the last generation: its access log is written out */
    /* A bounded wait: stdout may be a pipe nobody reads, and exiting beats hanging on it. */
    int unwritten = sl_access_log_wait_closed(ACCESS_LOG_EXIT_WAIT_MS);
    if (unwritten)
        sl_log_warn("access log: not written out within %d s (is anything reading it?); its last lines are lost",
                    ACCESS_LOG_EXIT_WAIT_MS / 1000);
    sl_syslog_shutdown();        /* the syslog senders' last messages leave (each within its close bound) */
    sl_metrics_destroy(sl_metrics.registry);
    if (rc == 0) sl_log_info("stopped");
    return rc == 0 ? 0 : 1;
}
