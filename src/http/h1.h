/* The HTTP/1.1 listener's entry points, for runtime/: everything else of the codec is internal
 * to http/ (h1_internal.h). */
#ifndef SL_HTTP_H1_H
#define SL_HTTP_H1_H

#include <uv.h>

#include "runtime/worker.h"

/* Accepts one connection from server (an HTTP listener of w). */
void sl_h1_accept(sl_worker_t *w, uv_stream_t *server);
/* Closes idle clients and marks busy ones to close after their response (worker stopping). */
void sl_h1_drain(sl_worker_t *w);
/* Closes every client now (grace period over). */
void sl_h1_close_all(sl_worker_t *w);
/* Fires the client timeouts that are due (the worker's tick). */
void sl_h1_timeouts(sl_worker_t *w);
/* Frees the worker's cached request states. */
void sl_h1_worker_cleanup(sl_worker_t *w);
/* The worker's upstream keep-alive pools: close every idle connection, or those idle too long. */
void sl_pool_close_all(sl_worker_t *w);
void sl_pool_sweep(sl_worker_t *w);

#endif
