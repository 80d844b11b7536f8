/* Connecting to an upstream (connect.h). A failed try's socket is closed before the next try
 * reuses uc->conn, so a try never overlaps the one before it. */
#include "upstream/connect.h"
#include "base/common.h"
#include "base/log.h"
#include "base/time.h"

#include <string.h>

int sl_node_connect(sl_conn_t *c, const sl_node_t *n, uint64_t timeout_ms, sl_conn_connect_cb cb)
{
    struct sockaddr_storage addr;
    if (sl_node_addr(n, &addr) != 0) return SL_NODE_UNRESOLVED;
    return sl_conn_connect(c, (struct sockaddr *)&addr, timeout_ms, cb);
}

static void next_try(sl_upstream_connect_t *uc);

static void on_conn_closed(sl_conn_t *c)
{
    sl_upstream_connect_t *uc = sl_container_of(c, sl_upstream_connect_t, conn);
    uc->between = 0;
    if (uc->closing) {
        sl_tried_free(&uc->own);
        uc->close_cb(uc);
        return;
    }
    sl_conn_init(&uc->conn, uc->conn.loop, uc->type);
    next_try(uc);
}

static void try_failed(sl_upstream_connect_t *uc, const char *why)
{
    sl_log_debug("upstream %s: %s: %s", uc->upstream->svc->name, uc->node->name, why);
    uc->attempt_open = 0;
    sl_upstream_end(uc->upstream, uc->node, SL_OUTCOME_CONNECT_FAILURE, -1);
    /* The next try starts once this socket is closed (on_conn_closed). */
    uc->between = 1;
    sl_conn_close(&uc->conn, on_conn_closed);
}

static void on_connect(sl_conn_t *c, int status)
{
    sl_upstream_connect_t *uc = sl_container_of(c, sl_upstream_connect_t, conn);
    if (status < 0) {
        try_failed(uc, status == UV_ETIMEDOUT ? "connect timeout" : uv_strerror(status));
        return;
    }
    uc->connect_ms = (double)(sl_now_ns() - uc->connect_ns) / 1e6;
    uc->connected = 1;
    uc->cb(uc, SL_UPSTREAM_CONNECTED);
}

static void next_try(sl_upstream_connect_t *uc)
{
    sl_upstream_t *u = uc->upstream;
    for (;;) {
        if (uc->tries >= uc->max_tries) {
            uc->cb(uc, SL_UPSTREAM_FAILED);
            return;
        }
        sl_node_t *n = sl_upstream_pick_untried(u, uc->key, uc->key_len, uc->tried);
        if (!n) {
            uc->cb(uc, SL_UPSTREAM_NO_NODE);
            return;
        }
        uc->node = n;
        uc->tries++;
        sl_tried_add(uc->tried, u, n);
        struct sockaddr_storage addr;
        if (sl_node_addr(n, &addr) != 0) {
            sl_log_debug("upstream %s: node %s does not resolve", u->svc->name, n->name);
            continue;
        }
        sl_upstream_begin(u, n);
        uc->attempt_open = 1;
        uc->connect_ns = sl_now_ns();
        int rc = sl_conn_connect(&uc->conn, (struct sockaddr *)&addr, uc->timeout_ms, on_connect);
        if (rc < 0) try_failed(uc, uv_strerror(rc));
        return;
    }
}

void sl_upstream_connect_start(sl_upstream_connect_t *uc, uv_loop_t *loop, const sl_conn_type_t *type, sl_upstream_t *u,
                               const char *key, size_t key_len, sl_tried_t *tried, unsigned max_tries,
                               uint64_t timeout_ms, sl_upstream_connect_cb cb)
{
    void *data = uc->data;
    memset(uc, 0, sizeof(*uc));
    uc->data = data;
    uc->upstream = u;
    uc->type = type;
    uc->key = key;
    uc->key_len = key_len;
    uc->max_tries = max_tries;
    uc->timeout_ms = timeout_ms;
    uc->cb = cb;
    sl_tried_init(&uc->own, u->n_nodes);
    uc->tried = tried ? tried : &uc->own;
    sl_conn_init(&uc->conn, loop, type);
    next_try(uc);
}

void sl_upstream_connect_close(sl_upstream_connect_t *uc, sl_outcome_t outcome, sl_upstream_connect_close_cb cb)
{
    if (uc->closing) return;
    uc->closing = 1;
    uc->close_cb = cb;
    if (uc->attempt_open) {
        uc->attempt_open = 0;
        sl_upstream_end(uc->upstream, uc->node, outcome,
                        outcome == SL_OUTCOME_OK && uc->connected ? uc->connect_ms : -1);
    }
    /* Between tries the socket is closing already: its callback ends uc. */
    if (!uc->between) sl_conn_close(&uc->conn, on_conn_closed);
}
