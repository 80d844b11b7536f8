/* Connecting to an upstream: the one pick / connect / failover path.
 *
 * sl_node_connect() connects a connection (net/conn.h) to one node, resolving its address; a
 * health check probing that node uses it alone. sl_upstream_connect_t adds the failover around
 * it for a request or session: pick a node no try of this request has had yet
 * (sl_upstream_pick_untried over its sl_tried_t), count the try for the balancers and passive
 * health (sl_upstream_begin / _end), connect with the deadline, and on a failure close that
 * socket and go on to the next untried node, up to max_tries. TCP stream sessions connect
 * through it.
 *
 * HTTP, whose connections outlive an exchange in the keep-alive pool, takes the same path in
 * pieces (http/proxy.c): the exchange keeps an sl_tried_t (sl_tried_init at its start,
 * sl_tried_free at its end); its first pick and every retry or failover pick is
 * sl_upstream_pick_untried() followed by sl_tried_add(); the try is counted with
 * sl_upstream_begin / _end with the response head's latency. A caller
 * without a pool whose retry policy decides between tries may also pass its own set to
 * sl_upstream_connect_start() with max_tries 1 per try.
 *
 * Loop thread only. */
#ifndef SL_UPSTREAM_CONNECT_H
#define SL_UPSTREAM_CONNECT_H

#include <stdint.h>

#include "net/conn.h"
#include "upstream/upstream.h"

/* sl_node_connect(): the node's name did not resolve (no connect was started). */
#define SL_NODE_UNRESOLVED (-100001)

/* Connects c (initialised, not yet connected) to n's current address with sl_conn_connect().
 * Returns 0 (cb follows), SL_NODE_UNRESOLVED, or a negative libuv error (cb will not run). */
int sl_node_connect(sl_conn_t *c, const sl_node_t *n, uint64_t timeout_ms, sl_conn_connect_cb cb);

/* How sl_upstream_connect_start() ended, for its callback. */
enum {
    SL_UPSTREAM_CONNECTED = 0, /* uc->conn is connected to uc->node */
    SL_UPSTREAM_NO_NODE = -1,  /* the balancer had no candidate (every node down under reject) */
    SL_UPSTREAM_FAILED = -2,   /* max_tries tries failed; uc->node is the last one tried */
};

typedef struct sl_upstream_connect sl_upstream_connect_t;
typedef void (*sl_upstream_connect_cb)(sl_upstream_connect_t *uc, int status);
typedef void (*sl_upstream_connect_close_cb)(sl_upstream_connect_t *uc);

struct sl_upstream_connect {
    sl_conn_t conn; /* the current try's connection, then the connected one */
    sl_upstream_t *upstream;
    const sl_conn_type_t *type;
    const char *key; /* the balancer key (hash / cookie), kept by the caller; or NULL */
    size_t key_len;
    unsigned max_tries; /* connect attempts at most, a node that does not resolve counted */
    uint64_t timeout_ms;
    sl_tried_t *tried; /* the caller's (shared with its retries) or &own */
    sl_tried_t own;
    sl_node_t *node; /* the current or last try's node, NULL before the first */
    unsigned tries;
    uint64_t connect_ns;
    double connect_ms; /* how long the connect that succeeded took */
    void *data;        /* the caller's */
    sl_upstream_connect_cb cb;
    sl_upstream_connect_close_cb close_cb;
    /* attempt_open: sl_upstream_begin() ran for node and _end() not yet; closing: the caller
     * closed uc; between: a failed try's socket is closing, the next try follows; connected: the
     * callback had SL_UPSTREAM_CONNECTED. */
    unsigned attempt_open : 1, closing : 1, between : 1, connected : 1;
};

/* Starts connecting uc (the caller's memory) on loop to a node of u with connections of type;
 * cb runs once with SL_UPSTREAM_*. tried: the request's set when its tries span more than this
 * connect (a retry policy that waits between tries keeps one set for all of them; the caller
 * then owns and frees it), or NULL for a set of uc's own. max_tries counts this connect's tries.
 * Call sl_upstream_connect_close() once afterwards, whatever happened (and not before the
 * start). */
void sl_upstream_connect_start(sl_upstream_connect_t *uc, uv_loop_t *loop, const sl_conn_type_t *type, sl_upstream_t *u,
                               const char *key, size_t key_len, sl_tried_t *tried, unsigned max_tries,
                               uint64_t timeout_ms, sl_upstream_connect_cb cb);

/* Ends uc: a try still open is reported to the upstream with outcome (the latency is the connect
 * time for SL_OUTCOME_OK), a connect in flight is abandoned without its callback, and every
 * handle closes; cb runs once they have (the caller may free uc there). */
void sl_upstream_connect_close(sl_upstream_connect_t *uc, sl_outcome_t outcome, sl_upstream_connect_close_cb cb);

#endif
