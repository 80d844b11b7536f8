/* Stream (layer 4) routing: the routes of stream services, built once per configuration
 * generation with their plugins' state, the listening addresses they need, and matching a new
 * connection to the first route whose server_addr, server_port and remote_addr all take it.
 *
 * A session's life, whatever carries it (TCP in tcp.c, UDP in udp_proxy.c over the engine of
 * udp.c): matched, then the plugins' access hooks (sl_stream_plugins_access: refused, delayed or
 * passed), then proxied, then its facts go to sl_stream_session_end(), the one place every
 * finished session passes. */
#ifndef SL_STREAM_STREAM_H
#define SL_STREAM_STREAM_H

#include "base/chain.h"
#include <stddef.h>
#include <stdint.h>

#include "base/cidr.h"
#include "config/config.h"
#include "upstream/upstream.h"

typedef struct sl_generation sl_generation_t;
typedef struct sl_stream_plugin_ops sl_stream_plugin_ops_t;

/* Outcomes of a session, with the numbers nginx's stream module uses. */
enum {
    SL_STREAM_OK = 200,          /* closed normally by either end, or idle */
    SL_STREAM_BAD_CLIENT = 400,  /* the client failed: reset, or broke what it had to send first */
    SL_STREAM_FORBIDDEN = 403,   /* refused by an access rule (ip-restriction) */
    SL_STREAM_INTERNAL = 500,    /* the gateway failed */
    SL_STREAM_BAD_GATEWAY = 502, /* no upstream node could be reached, or the upstream reset */
    SL_STREAM_UNAVAILABLE = 503, /* over a connection limit (limit-conn) */
};

#define SL_STREAM_PLUGIN_MAX SL_CHAIN_MAX

typedef struct sl_stream_route {
    const sl_route_cfg_t *cfg;
    const sl_service_cfg_t *svc;
    sl_upstream_t *upstream;
    int udp; /* scheme udp: served by the UDP engine, never matched for a TCP connection */
    sl_chain_t chain; /* the route's plugins in phase order (modules.c), each with its state */
    struct sl_udp_quota *udp_quota;       /* udp: the service's open sessions, for max_sessions */
} sl_stream_route_t;

/* What the plugins of one session record at access time for its end. */
typedef struct sl_stream_plugin_state {
    int limit_conn_held; /* limit-conn counted the session under limit_conn_key */
    sl_ip_t limit_conn_key;
    int prometheus_counted; /* the session is in the route's active gauge */
    int prometheus_seen;    /* the session is in the route's connections total */
} sl_stream_plugin_state_t;

/* A session as the access hooks see it. */
typedef struct sl_stream_peer {
    sl_ip_t client; /* the client (with the PROXY protocol: the one the header names) */
    uint16_t client_port;
    sl_ip_t server; /* the address the client connected to */
    uint16_t server_port;
} sl_stream_peer_t;

/* A finished session: everything its log line and metrics need. */
typedef struct sl_stream_facts {
    sl_stream_route_t *route;
    unsigned worker;
    const sl_stream_peer_t *peer;
    const char *client_ip, *server_ip; /* peer's addresses as text */
    /* The connection's real peer when a PROXY protocol header named another client (the load
     * balancer in front), as text; NULL otherwise. */
    const char *proxy_ip;
    uint16_t proxy_port;
    const char *upstream;              /* the node connected to (or last tried), as configured; NULL when none */
    uint64_t client_rx, client_tx;     /* bytes received from / sent to the client */
    uint64_t upstream_rx, upstream_tx; /* bytes received from / sent to the upstream */
    uint64_t start_unix_ms;
    double duration_s;
    int status;        /* SL_STREAM_* */
    const char *error; /* what ended it when not a clean close ("idle_timeout", "upstream_reset"...) */
    sl_stream_plugin_state_t *state;
} sl_stream_facts_t;

/* One stream plugin, one file each, listed in the registry (src/modules.c) in phase order. */
struct sl_stream_plugin_ops {
    /* Its name (its key in a route's plugins map), and the init (route: the sl_stream_route_t
     * being built) and destroy of its per-route state, the data its hooks get. */
    sl_module_t m;
    /* Whether the route's configuration turns the plugin on. */
    int (*enabled)(const sl_stream_plugins_cfg_t *pc);
    /* A new session on the route: 0 to go on (with *delay_ms set to wait that long first), or the
     * SL_STREAM_* status that refuses it. Any worker thread. */
    int (*on_access)(const sl_stream_route_t *r, void *data, const sl_stream_peer_t *peer, sl_stream_plugin_state_t *st,
                     unsigned worker, uint64_t *delay_ms);
    /* The session ended (refused ones too). Any worker thread. */
    void (*on_log)(const sl_stream_route_t *r, void *data, const sl_stream_facts_t *f);
};

/* Builds g's stream routes (g->stream_routes) from its configuration, in configuration order,
 * their plugins included, and appends the listening addresses the routes need to g->listens
 * (SL_LISTEN_STREAM_TCP or _UDP). Main thread. Returns 0, or -1 when a plugin failed to
 * initialise (the reason appended to errs). */
int sl_stream_routes_build(sl_generation_t *g, sl_config_errors_t *errs);
void sl_stream_routes_destroy(sl_generation_t *g);

/* The first TCP route of g that takes a connection from client to server:server_port, or NULL.
 * client NULL matches any remote_addr. */
sl_stream_route_t *sl_stream_match(const sl_generation_t *g, const sl_ip_t *server, uint16_t server_port,
                                   const sl_ip_t *client);
/* The first UDP route of g that takes a datagram from client to server:server_port, or NULL. */
sl_stream_route_t *sl_stream_match_udp(const sl_generation_t *g, const sl_ip_t *server, uint16_t server_port,
                                       const sl_ip_t *client);

/* The first TCP route of g on server:server_port whatever the client, or NULL: the one that says
 * whether connections there start with a PROXY protocol header (routes that share an address and
 * port agree on it, the loader makes sure) and how long to wait for it. */
sl_stream_route_t *sl_stream_match_listener(const sl_generation_t *g, const sl_ip_t *server, uint16_t server_port);

/* Builds r's plugin chain from its configuration (main thread). Returns 0, or -1 when a plugin
 * could not initialise (the reason appended to errs; r is then left with no plugin at all, and
 * the generation that holds it must not be published). */
int sl_stream_plugins_init(sl_stream_route_t *r, sl_config_errors_t *errs);
void sl_stream_plugins_destroy(sl_stream_route_t *r);

/* Runs the route's access hooks in order; returns 0 (go on after *delay_ms, the longest delay
 * asked) or the status of the first refusal. */
int sl_stream_plugins_access(sl_stream_route_t *r, const sl_stream_peer_t *peer, sl_stream_plugin_state_t *st,
                             unsigned worker, uint64_t *delay_ms);

/* The one place every finished session passes: the route's plugins see its facts (prometheus
 * counts it, syslog sends its message). Any worker thread. */
void sl_stream_session_end(const sl_stream_facts_t *f);

/* The access log line of a finished session (route NULL: no route took it, which is also
 * counted in sluice_stream_unrouted_total). Worker w's thread. */
struct sl_worker;
void sl_stream_log(struct sl_worker *w, const sl_generation_t *g, const sl_stream_facts_t *f, int udp);

/* Registers the stream metric families in m (sl_server_metrics_init). */
struct sl_metrics;
void sl_stream_log_metrics_init(struct sl_metrics *m);
void sl_stream_metrics_init(struct sl_metrics *m);

/* Registers sluice_syslog_messages_total in m (sl_server_metrics_init). */
void sl_stream_syslog_metrics_init(struct sl_metrics *m);
/* Brings sluice_syslog_messages_total up to the senders' own counts; called before each scrape.
 * Any thread. */
void sl_stream_syslog_metrics_update(void);

extern const sl_stream_plugin_ops_t sl_stream_prometheus;
extern const sl_stream_plugin_ops_t sl_stream_ip_restriction;
extern const sl_stream_plugin_ops_t sl_stream_limit_conn;
extern const sl_stream_plugin_ops_t sl_stream_syslog;

#endif
