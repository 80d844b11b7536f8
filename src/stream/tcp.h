/* TCP stream sessions: a connection accepted on a stream listener, matched to a route, checked
 * by its plugins, then piped to an upstream node (runtime/pipe.h) until both ends are done. */
#ifndef SL_STREAM_TCP_H
#define SL_STREAM_TCP_H

#include <uv.h>

typedef struct sl_worker sl_worker_t;

/* Accepts a connection on server (a stream listener of w) and starts its session. A connection
 * no route of the worker's generation takes is closed. */
void sl_stream_tcp_accept(sl_worker_t *w, uv_stream_t *server);

/* Ends every session of w now (the shutdown grace period is over). */
void sl_stream_tcp_close_all(sl_worker_t *w);

#endif
