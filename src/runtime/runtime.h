/* Applying a configuration to the running process. sl_runtime_apply() is the one way a
 * configuration becomes the one served: start-up and SIGHUP call it (runtime/server.c), and so
 * will the admin API and the etcd watcher. Main thread only: it is also the only publisher of
 * generations, so "the current generation" cannot change under it. */
#ifndef SL_RUNTIME_RUNTIME_H
#define SL_RUNTIME_RUNTIME_H

#include <uv.h>

#include "config/config.h"

typedef struct sl_worker sl_worker_t;

/* Sets what applying works with: the main loop (DNS refresh, health checks) and the number of
 * workers, fixed for the life of the process (each new listening address gets one socket per
 * worker). Call once before the first sl_runtime_apply(). */
void sl_runtime_init(uv_loop_t *loop, unsigned n_workers);

/* The n_workers workers to tell of every publish from now on (NULL: none, as before they
 * start). The array stays the caller's and must outlive its use here. */
void sl_runtime_set_workers(sl_worker_t *workers);

/* Makes cfg the configuration served, or refuses it whole. Takes ownership of cfg.
 *
 * In order: the reload rules against the running configuration (sl_config_check_reload(), when
 * one runs); the whole generation (routers, policies, stream plugins, access log); a socket per
 * worker for every listening address the running generation does not have (the address probed
 * first, so that one another process serves fails here). Any of these failing appends its
 * reasons to errs (one line each, as the loader's errors) and returns -1: cfg is freed, nothing
 * was published, and the running generation, if any, serves on unchanged. Reasons that parts of
 * the build log themselves (a policy's own detail) are in the log only.
 *
 * Then it logs what changed (reloads only: "reload: ..." lines), publishes, applies
 * gateway.log, syncs the active health checks and tells the workers, and returns 0. At
 * start-up (nothing published yet), gateway.log applies before the build, so that the build's
 * errors are written as the file asks. */
int sl_runtime_apply(sl_config_t *cfg, sl_config_errors_t *errs);

#endif
