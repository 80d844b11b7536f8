/* The HTTP/1.1 server codec's per-request state (sl_creq_t), pooled per worker: idle keep-alive
 * connections hold none, and a state taken again keeps its buffers (head, host, path, the
 * access log's capture, the arena), so a warm worker allocates nothing per request. */
#include "http/h1_internal.h"
#include "base/common.h"

#include <string.h>

sl_creq_t *sl_h1_rq_take(sl_worker_t *w)
{
    sl_creq_t *rq = sl_h1w(w)->free_rq;
    if (!rq) {
        rq = sl_xcalloc(1, sizeof(*rq));
        sl_arena_init(&rq->arena, 4096);
        return rq;
    }
    sl_h1w(w)->free_rq = rq->next_free;
    sl_h1w(w)->n_free_rq--;
    sl_head_t head = rq->head;
    sl_buf_t host = rq->host_store, path = rq->path_store, resp_log = rq->resp_log;
    sl_arena_t arena = rq->arena;
    memset(rq, 0, sizeof(*rq));
    rq->head = head; /* keep the buffers: no allocation per request */
    rq->arena = arena;
    rq->host_store = host;
    rq->path_store = path;
    rq->resp_log = resp_log;
    rq->resp_log.len = 0;
    sl_head_reset(&rq->head);
    return rq;
}

static void rq_free(sl_creq_t *rq)
{
    sl_head_free(&rq->head);
    sl_buf_free(&rq->host_store);
    sl_buf_free(&rq->path_store);
    sl_buf_free(&rq->resp_log);
    sl_arena_reset(&rq->arena);
    free(rq);
}

void sl_h1_rq_give(sl_worker_t *w, sl_creq_t *rq)
{
    /* A state grown by an unusual request goes, rather than stay big in the pool. */
    if (sl_h1w(w)->n_free_rq >= 256 || rq->head.buf.cap > 16384 ||
        rq->host_store.cap + rq->path_store.cap + rq->resp_log.cap > 16384) {
        rq_free(rq);
        return;
    }
    rq->next_free = sl_h1w(w)->free_rq;
    sl_h1w(w)->free_rq = rq;
    sl_h1w(w)->n_free_rq++;
}

void sl_h1_worker_cleanup(sl_worker_t *w)
{
    while (sl_h1w(w)->free_rq) {
        sl_creq_t *rq = sl_h1w(w)->free_rq;
        sl_h1w(w)->free_rq = rq->next_free;
        rq_free(rq);
    }
    sl_h1w(w)->n_free_rq = 0;
}
