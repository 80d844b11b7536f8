/* The process: main thread (signals, reloads, status listener) and its worker threads. */
#ifndef SL_RUNTIME_SERVER_H
#define SL_RUNTIME_SERVER_H

#include <stdint.h>

#include "observe/metrics.h"

/* Metric families every part of the gateway reports into; created by sl_server_run(). */
typedef struct sl_server_metrics {
    sl_metrics_t *registry;
    sl_metric_family_t *requests;         /* sluice_http_requests_total{service,route,status} */
    sl_metric_family_t *upstream_latency; /* sluice_upstream_latency_seconds{service} */
    sl_metric_family_t *connections;      /* sluice_http_connections_active */
    sl_metric_family_t *reloads;          /* sluice_config_reloads_total{result} */
    sl_metric_family_t *log_dropped;      /* sluice_access_log_dropped_total */
    sl_metric_family_t *retries;          /* sluice_http_retries_total{service,route,reason} */
    sl_series_t *connections_active;
    sl_series_t *reloads_ok, *reloads_failed;
    sl_series_t *log_dropped_total;
} sl_server_metrics_t;

extern sl_server_metrics_t sl_metrics;

/* Creates the registry and the families above (sl_server_run does this; tests and fuzzers too). */
void sl_server_metrics_init(void);

/* Series for the upstream latency histogram of a service (created on first use). */
sl_series_t *sl_server_upstream_latency_series(const char *service);

/* A worker finished (drained or failed to start). Worker thread. */
void sl_server_worker_done(void);

/* Loads config_path, starts the workers and serves until SIGTERM/SIGINT. Returns the process
 * exit status: 0 after a clean shutdown, 1 when the configuration or a listener fails. */
int sl_server_run(const char *config_path);

#endif
