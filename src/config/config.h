/* The validated configuration model. A sl_config_t is immutable once loaded: everything it
 * points to lives in its arena and is freed by sl_config_free(). Runtime structures (router,
 * upstream state) are built from it per generation (runtime/generation.h). */
#ifndef SL_CONFIG_CONFIG_H
#define SL_CONFIG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/cidr.h"
#include "observe/access_log.h"

/* A parsed "host:port". host has no brackets (IPv6 "::1"); is_ip tells whether host is a
 * literal address (otherwise a name resolved at run time). */
typedef struct sl_hostport {
    const char *text; /* as written, e.g. "[::1]:8080" */
    const char *host;
    uint16_t port;
    int is_ip;
} sl_hostport_t;

typedef struct sl_header_kv {
    const char *name;
    const char *value;
} sl_header_kv_t;

typedef enum { SL_SERVICE_HTTP, SL_SERVICE_STREAM } sl_service_type_t;
typedef enum { SL_SCHEME_HTTP, SL_SCHEME_HTTPS, SL_SCHEME_GRPC, SL_SCHEME_GRPCS, SL_SCHEME_TCP, SL_SCHEME_UDP } sl_scheme_t;
typedef enum {
    SL_BALANCE_RANDOM,
    SL_BALANCE_ROUND_ROBIN,
    SL_BALANCE_WEIGHTED,
    SL_BALANCE_COOKIE,
    SL_BALANCE_HASH,
    SL_BALANCE_LEAST_CONN,
    SL_BALANCE_EWMA
} sl_balance_t;

typedef struct sl_node_cfg {
    sl_hostport_t addr;
    uint32_t weight; /* 1..1000, default 1 */
    int priority;    /* default 0; nodes of a lower priority are backups, used only while every
                      * node of a higher priority is unhealthy */
    int line, col;
} sl_node_cfg_t;

typedef enum { SL_HASH_IP, SL_HASH_HEADER, SL_HASH_QUERY, SL_HASH_COOKIE } sl_hash_on_t;

/* An inclusive range of HTTP statuses. */
typedef struct sl_status_range {
    int lo, hi;
} sl_status_range_t;

/* upstream.health_check: active checks, one checker per upstream for the whole process. */
typedef struct sl_health_cfg {
    int enabled;
    const char *path;   /* HTTP services: request path, default "/" */
    const char *host;   /* Host header, default the node address */
    const char *method; /* default "GET" */
    sl_header_kv_t *headers;
    size_t n_headers;
    sl_status_range_t *expected; /* default 200-399 */
    size_t n_expected;
    uint64_t interval_ms;         /* default 10000 */
    uint64_t timeout_ms;          /* default 2000 */
    uint32_t healthy_threshold;   /* default 2, >= 1 */
    uint32_t unhealthy_threshold; /* default 3, >= 1 */
    /* Stream services: a payload sent after connect (send or send_hex), and bytes the reply
     * must start with (expect or expect_hex), where expect_any[i] set means any byte ("??"). */
    const unsigned char *send;
    size_t send_len;
    const unsigned char *expect;
    const unsigned char *expect_any;
    size_t expect_len;
} sl_health_cfg_t;

/* The longest expect a check may have: what a probe reads of the reply. */
#define SL_HEALTH_EXPECT_MAX 1024

/* upstream.passive_check: failures in real traffic mark a node down. */
typedef struct sl_passive_cfg {
    int enabled;
    uint32_t failures;           /* consecutive failures that mark a node unhealthy, default 3 */
    sl_status_range_t *statuses; /* statuses that count as failures, default 500, 502, 503, 504 */
    size_t n_statuses;
    uint64_t cooldown_ms;        /* without active checks: retried after this, default 10000 */
} sl_passive_cfg_t;

/* PROXY protocol versions an upstream may be sent (proxy_protocol.send). */
typedef enum { SL_PROXY_PROTOCOL_NONE, SL_PROXY_PROTOCOL_V1, SL_PROXY_PROTOCOL_V2 } sl_proxy_protocol_t;

typedef struct sl_upstream_cfg {
    sl_scheme_t scheme;   /* default http; stream services: tcp or udp (required) */
    sl_balance_t balance; /* default random */
    sl_node_cfg_t *nodes;
    size_t n_nodes;
    uint64_t connect_timeout_ms; /* default 2000 */
    uint64_t send_timeout_ms;    /* default 30000 */
    uint64_t read_timeout_ms;    /* default 30000 */
    uint32_t keepalive_max_idle; /* idle connections kept per node per worker, default 64; 0 disables */
    uint64_t keepalive_idle_timeout_ms; /* default 60000 */
    uint64_t resolve_interval_ms;       /* hostname re-resolution, default 30000 */
    struct {
        sl_hash_on_t on;
        const char *key; /* header, query parameter or cookie name; NULL for ip */
    } hash;              /* balance: hash */
    struct {
        const char *name; /* required for balance: cookie */
        uint64_t ttl_ms;  /* 0: never issue the cookie */
        const char *path; /* default "/" */
    } cookie;             /* balance: cookie */
    sl_health_cfg_t health_check;
    sl_passive_cfg_t passive_check;
    int reject_when_all_unhealthy; /* on_all_unhealthy: reject (503) instead of panic */
    /* Stream services only. */
    uint32_t tries;           /* tcp: connect attempts, each on another node where one is left; default 2 */
    uint64_t idle_timeout_ms; /* timeouts.idle: no byte either way this long ends a session; default
                               * 10m (tcp), 30s (udp) */
    uint32_t max_sessions;    /* udp: the service's sessions open at once, all workers; default 10000 */
    int proxy_protocol_send;  /* tcp: sl_proxy_protocol_t header sent to the upstream first */
} sl_upstream_cfg_t;

typedef struct sl_direct_response_cfg {
    int status;               /* 100..599 */
    sl_header_kv_t *headers;
    size_t n_headers;
    const char *body;         /* may be NULL */
    size_t body_len;
} sl_direct_response_cfg_t;

/* Method bits for sl_route_cfg_t.methods; 0 means any method. */
enum {
    SL_METHOD_GET = 1 << 0,
    SL_METHOD_HEAD = 1 << 1,
    SL_METHOD_POST = 1 << 2,
    SL_METHOD_PUT = 1 << 3,
    SL_METHOD_DELETE = 1 << 4,
    SL_METHOD_PATCH = 1 << 5,
    SL_METHOD_OPTIONS = 1 << 6,
    SL_METHOD_CONNECT = 1 << 7,
    SL_METHOD_TRACE = 1 << 8,
};

/* request_headers / response_headers: set (replace or add), add (append), remove. */
typedef struct sl_header_ops_cfg {
    sl_header_kv_t *set;
    size_t n_set;
    sl_header_kv_t *add;
    size_t n_add;
    const char **remove;
    size_t n_remove;
} sl_header_ops_cfg_t;

/* Conditions of the retry policy (Envoy's names; the gRPC ones read grpc-status). */
enum {
    SL_RETRY_5XX = 1 << 0,             /* any 5xx, or no response at all */
    SL_RETRY_GATEWAY_ERROR = 1 << 1,   /* 502, 503, 504, or no response at all */
    SL_RETRY_RESET = 1 << 2,           /* closed, reset or timed out before the response head */
    SL_RETRY_CONNECT_FAILURE = 1 << 3, /* connect refused, failed or timed out */
    SL_RETRY_REFUSED_STREAM = 1 << 4,  /* HTTP/2 REFUSED_STREAM (HTTP/2 upstreams) */
    SL_RETRY_STATUS_CODES = 1 << 5,    /* retriable-status-codes: one of status_codes */
    SL_RETRY_GRPC_CANCELLED = 1 << 6,  /* grpc-status 1 */
    SL_RETRY_GRPC_DEADLINE_EXCEEDED = 1 << 7,  /* 4 */
    SL_RETRY_GRPC_RESOURCE_EXHAUSTED = 1 << 8, /* 8 */
    SL_RETRY_GRPC_INTERNAL = 1 << 9,           /* 13 */
    SL_RETRY_GRPC_UNAVAILABLE = 1 << 10,       /* 14 */
};

typedef struct sl_retry_cfg {
    int enabled;
    uint32_t attempts;           /* retries after the first try; default 1 */
    uint64_t per_try_timeout_ms; /* each try, until its response head (0: only the upstream timeouts) */
    uint32_t on;                 /* SL_RETRY_* */
    uint16_t *status_codes;      /* for SL_RETRY_STATUS_CODES */
    size_t n_status_codes;
    uint64_t backoff_base_ms;    /* full-jitter exponential back-off; default 25ms */
    uint64_t backoff_max_ms;     /* default 250ms */
    uint64_t body_buffer;        /* request body bytes kept to replay; default 64 KiB */
} sl_retry_cfg_t;
/* cookie_rewrite: the attributes to rewrite in upstream Set-Cookie headers of one cookie. */
typedef struct sl_cookie_rule {
    const char *name;     /* the cookie name, matched exactly */
    const char *domain;   /* replaces or adds Domain; NULL leaves it */
    const char *path;     /* replaces or adds Path (starts with '/'); NULL leaves it */
    int secure;           /* 1 adds Secure, 0 removes it, -1 leaves it */
    const char *samesite; /* "Strict", "Lax" or "None": replaces or adds SameSite; NULL leaves it */
} sl_cookie_rule_t;
/* local_rate_limit: a token bucket of requests + burst tokens, refilled by `requests` each
 * `per`; one for the route, or one per client key. */
typedef enum { SL_RL_KEY_NONE, SL_RL_KEY_IP, SL_RL_KEY_HEADER } sl_rl_key_t;
typedef struct sl_rate_limit_cfg {
    int enabled;
    uint32_t requests;      /* 1..1000000 */
    int per_s;              /* 1 (second), 60 (minute) or 3600 (hour) */
    uint32_t burst;         /* 0..1000000, default 0 */
    int status;             /* refusals, 400..599, default 429 */
    const char *header;     /* optional: a header carrying the capacity on every response */
    int key;                /* sl_rl_key_t, default none: one bucket for the route */
    const char *key_header; /* key: header NAME */
    uint32_t max_keys;      /* keyed buckets kept, least recently used evicted; default 10000 */
} sl_rate_limit_cfg_t;

#define SL_POLICY_MODULES_MAX 16 /* policies the registry may list */

/* A route's policies (see src/policy/). A policy is on when its `enabled` is set, or, for one
 * that owns its settings' type, when it has settings. */
typedef struct sl_policies_cfg {
    struct {
        int enabled;
        const char *prefix;  /* {prefix, replace} */
        const char *regex;   /* or {regex, replace}: PCRE2, $1.. in replace */
        const char *replace; /* starts with '/' */
    } path_rewrite;
    struct {
        int enabled;
        uint64_t ms; /* the whole request, retries included; exceeded -> 504 */
    } timeout;
    sl_retry_cfg_t retry;
    struct {
        int enabled;
        sl_header_ops_cfg_t ops;
    } request_headers, response_headers;
    struct {
        int enabled;
        int allow;           /* 1: only these clients pass; 0: these clients are refused */
        const char **cidrs;  /* IPv4/IPv6 addresses and CIDRs, validated */
        size_t n_cidrs;
        int source_peer;     /* source: peer (the TCP peer) instead of remote (X-Forwarded-For) */
    } ip_access;
    struct {
        int enabled;
        sl_cookie_rule_t *rules; /* names unique; each changes at least one attribute */
        size_t n_rules;
    } cookie_rewrite;
    sl_rate_limit_cfg_t local_rate_limit;
    struct {
        int enabled;              /* websocket: true, or a map */
        uint64_t idle_timeout_ms; /* a tunnel with no bytes either way this long closes; 0: the upstream's
                                   * read timeout */
    } websocket;
    /* Settings of the policies that own their type (src/modules.h: a module with `read`), by
     * the policy's place in the registry; NULL where the route does not enable it. Read back
     * with sl_policy_settings(). */
    const void *settings[SL_POLICY_MODULES_MAX];
} sl_policies_cfg_t;

/* An IPv4/IPv6 address or CIDR as written ("127.0.0.10", "10.0.0.0/8"); a bare address has the
 * full prefix length (32 or 128). */
typedef struct sl_cidr_cfg {
    const char *text;
    sl_ip_t ip;
    int prefix;
} sl_cidr_cfg_t;

typedef enum { SL_LIMIT_CONN_REMOTE_ADDR, SL_LIMIT_CONN_SERVER_ADDR } sl_limit_conn_key_t;
typedef enum { SL_SYSLOG_SOCK_UDP, SL_SYSLOG_SOCK_TCP } sl_syslog_sock_t;

/* syslog plugin: one RFC 5424 message per finished session, sent in batches. */
typedef struct sl_syslog_plugin_cfg {
    int enabled;
    const char *host;          /* an IP address or a host name */
    int port;                  /* 1..65535 */
    int sock_type;             /* sl_syslog_sock_t, default udp */
    uint64_t timeout_ms;       /* tcp: connect and write timeout, default 3s */
    uint32_t batch_max_size;   /* messages sent together at most, default 100 */
    uint64_t flush_timeout_ms; /* a batch that is not full leaves after this, default 1s */
    uint32_t max_pending;      /* messages waiting; past this they are dropped and counted, default 10000 */
} sl_syslog_plugin_cfg_t;

/* A stream route's plugins (see src/stream/). A plugin is on when its `enabled` is set. */
typedef struct sl_stream_plugins_cfg {
    struct {
        int enabled;
        int whitelist;      /* 1: only these clients pass; 0: these clients are refused */
        sl_cidr_cfg_t *cidrs;
        size_t n_cidrs;
    } ip_restriction;
    struct {
        int enabled;
        uint32_t conn;     /* sessions per key that pass at once */
        uint32_t burst;    /* sessions past conn that pass after delay_ms */
        uint64_t delay_ms; /* default_conn_delay */
        int key;           /* sl_limit_conn_key_t, default remote_addr */
    } limit_conn;
    struct {
        int enabled;
    } prometheus;
    sl_syslog_plugin_cfg_t syslog;
} sl_stream_plugins_cfg_t;

/* What a stream route matches and does. server_addr / remote_addr are optional (any). */
typedef struct sl_stream_route_cfg {
    int has_server_addr, has_remote_addr;
    sl_cidr_cfg_t server_addr;
    sl_cidr_cfg_t remote_addr;
    int server_port;                    /* 1..65535, required */
    int port_line, port_col;            /* where server_port was written */
    int proxy_protocol_accept;          /* the client speaks the PROXY protocol first */
    uint64_t proxy_protocol_timeout_ms; /* for its header to arrive; default 10s */
    sl_stream_plugins_cfg_t plugins;
} sl_stream_route_cfg_t;

/* request_id (gateway-wide, or a route's own): an id for every request, kept from the client
 * or made here, passed upstream, returned to the client and logged. */
enum { SL_REQUEST_ID_UUID, SL_REQUEST_ID_HEX };
enum { SL_REQUEST_ID_KEEP, SL_REQUEST_ID_REPLACE };
typedef struct sl_request_id_cfg {
    int set;            /* a route's: written on the route (else the gateway's applies) */
    int enabled;        /* default 1 */
    const char *header; /* default "X-Request-Id" */
    size_t header_len;
    int format;         /* SL_REQUEST_ID_*: default uuid (a version 4 UUID); hex is 32 digits */
    int incoming;       /* keep a client's well-formed id (default) or replace every one */
} sl_request_id_cfg_t;

typedef struct sl_route_cfg {
    const char *name;   /* unique within its service; default "<service>-<index>" */
    const char **hosts; /* "api.example.com" or "*.example.org"; lower-cased; none = any host */
    size_t n_hosts;
    const char **paths; /* exact ("/users") or a prefix ending in slash-star ("/users/" then '*');
                         * none = any path */
    size_t n_paths;
    uint32_t methods;   /* SL_METHOD_* bits, 0 = any */
    sl_direct_response_cfg_t *direct_response; /* NULL: proxy to the service's upstream */
    sl_policies_cfg_t policies;
    sl_stream_route_cfg_t stream; /* routes of a stream service */
    sl_request_id_cfg_t request_id;
    const char **tags; /* labels for the access log (its tags field); none by default */
    size_t n_tags;
    uint64_t hash; /* of what was written, for a reload's account of what changed */
    int line, col;
} sl_route_cfg_t;

typedef struct sl_service_cfg {
    const char *name;
    sl_service_type_t type;
    int has_upstream;
    sl_upstream_cfg_t upstream;
    sl_route_cfg_t *routes;
    size_t n_routes;
    uint64_t hash; /* of what was written but the routes, for a reload's account of changes */
    int line, col;
    int type_line, type_col; /* where type was written, else the service's position */
} sl_service_cfg_t;

enum { SL_UNDERSCORES_DROP, SL_UNDERSCORES_ALLOW, SL_UNDERSCORES_REJECT };
enum { SL_ESCAPED_SLASHES_REJECT, SL_ESCAPED_SLASHES_KEEP };

typedef struct sl_gateway_cfg {
    int workers;                  /* 0 = auto (number of CPUs) */
    int proxy_layers;             /* 0..16 */
    uint64_t shutdown_timeout_ms; /* default 30000 */
    struct {
        sl_hostport_t *listen;    /* default ["0.0.0.0:9080"] */
        size_t n_listen;
        uint32_t max_header_bytes;  /* request line + headers; default 32768, 1024..1048576 */
        uint32_t max_headers;       /* header count; default 100, 1..1000 */
        uint32_t max_uri_bytes;     /* request target; default 8192, 256..1048576 -> 414 beyond */
        uint64_t header_timeout_ms; /* default 10000 */
        uint64_t keepalive_timeout_ms; /* default 60000 */
        uint64_t body_timeout_ms;   /* longest pause between request body reads; default 60000 -> 408 */
        int headers_with_underscores; /* SL_UNDERSCORES_*; default drop */
        int merge_slashes;            /* default 1: "//a" routes and is forwarded as "/a" */
        int escaped_slashes;          /* SL_ESCAPED_SLASHES_*: %2F %5C in a path; default reject (400) */
    } http;
    struct {
        int enabled;
        sl_hostport_t listen; /* default 127.0.0.1:9091 */
    } status;
    sl_request_id_cfg_t request_id;
    struct {
        int level;  /* sl_log_level_t: default info */
        int format; /* sl_log_format_t: default text */
    } log;      /* sluice's own messages (stderr) */
    struct {
        const char *path;       /* "stdout" (default), "stderr", "off", or a file path */
        sl_access_format_t fmt; /* format, fields, buffer, flush */
    } access_log;
} sl_gateway_cfg_t;

typedef struct sl_config {
    sl_arena_t arena;
    const char *source; /* file name the configuration came from */
    sl_gateway_cfg_t gateway;
    sl_service_cfg_t *services;
    size_t n_services;
} sl_config_t;

/* One error found while loading or applying a configuration. Formatted only where it is shown:
 * sl_config_errors_text() for a log or a terminal, sl_config_errors_json() for an API. */
typedef struct sl_config_error {
    char *file;    /* the source it is about; NULL for none */
    int line, col; /* 1-based; line 0 for no position */
    char *path;    /* the field, e.g. "services[0].routes[1].timeout"; NULL for none */
    char *message; /* e.g. "must be between 1ms and 24h" */
} sl_config_error_t;

/* Errors collected while loading: the loader's in file order (file-level ones first), at most
 * 200 per source followed by one "too many errors, stopping here" error. Every text is kept on
 * one line (control characters become '?'), and no error's text is longer than
 * SL_CONFIG_ERROR_TEXT_MAX - 1 bytes. Zero-initialise; free with sl_config_errors_free(). */
typedef struct sl_config_errors {
    sl_config_error_t *items;
    size_t n;
} sl_config_errors_t;

#define SL_CONFIG_ERROR_TEXT_MAX 513 /* one error's text, its NUL included */

void sl_config_errors_free(sl_config_errors_t *e);
/* Appends one error found outside the loader (building or applying a configuration): file NULL
 * for none, line 0 for no position, path NULL for none. */
void sl_config_errors_add(sl_config_errors_t *e, const char *file, int line, int col, const char *path,
                          const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Writes error i of e as one line of text into buf and returns buf: "FILE:LINE:COL: path:
 * message", without "LINE:COL" when it has no position, "FILE: " or "path: " left out when it
 * has none. A longer text is cut to SL_CONFIG_ERROR_TEXT_MAX - 1 bytes ending in "...". */
const char *sl_config_errors_text(const sl_config_errors_t *e, size_t i, char buf[SL_CONFIG_ERROR_TEXT_MAX]);

struct json_t;
/* Returns a new jansson array with one object per error, in order: {"file", "line", "col",
 * "path", "message"} (file and path null when there are none, line and col 0 without a
 * position; text made valid UTF-8, a bad byte becoming '?'). The caller owns the reference. */
struct json_t *sl_config_errors_json(const sl_config_errors_t *e);

/* Loads a YAML or JSON file (JSON when the name ends in ".json" or the text starts with '{'),
 * substitutes ${ENV_VAR}, validates everything and fills defaults. Returns 0 and a new config
 * in *out, or -1 with every problem found appended to errs (*out left NULL). */
int sl_config_load_file(const char *path, sl_config_t **out, sl_config_errors_t *errs);

/* Same, from memory; name is used in error messages. */
int sl_config_load_buffer(const char *name, const char *data, size_t len, sl_config_t **out, sl_config_errors_t *errs);

void sl_config_free(sl_config_t *cfg);

/* Checks what a reload may not change between the running configuration old and its
 * replacement cfg: a service keeps its type (http or stream) under the same name. Returns 0, or
 * -1 with one error per problem appended to errs (positions in cfg's file). */
int sl_config_check_reload(const sl_config_t *old, const sl_config_t *cfg, sl_config_errors_t *errs);

struct sockaddr_storage;
/* The one reading of a listen address (gateway.http.listen, gateway.status.listen), used by the
 * loader to validate and by the runtime to bind, so that what validates is what starts: hp's
 * host is an IPv4 literal, an IPv6 literal (written in brackets), or "localhost" in any case,
 * which is the IPv4 loopback 127.0.0.1 (write [::1] for the IPv6 one). Host names are not
 * resolved for listening. Writes the address with hp's port into out and returns 0, or
 * returns -EINVAL for any other host. */
int sl_config_listen_addr(const sl_hostport_t *hp, struct sockaddr_storage *out);

/* Returns the SL_METHOD_* bit for a method name, or 0 if it is not one sluice routes on. */
uint32_t sl_method_bit(const char *name, size_t len);

#endif
