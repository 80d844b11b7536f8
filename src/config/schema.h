/* The field-table engine that turns the node tree (node.h) into sl_config_t, and the value
 * readers every schema uses. Each section of the file is one table of fields (name, kind,
 * bounds, default, target offset); sl_schema_parse() walks a map against its table, so
 * unknown keys, missing required keys, bounds and defaults are handled in one place. Fields
 * that need more than a bound (lists, addresses, routes) have a custom reader. Every error is
 * reported with the path of the field being read, and reading goes on, so one run shows them
 * all. Internal to config/ (and, for their own sections, to the modules whose settings they
 * read): the rest of sluice sees only sl_config_t. */
#ifndef SL_CONFIG_SCHEMA_H
#define SL_CONFIG_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"
#include "config/config.h"
#include "config/node.h"

#define SL_SCHEMA_PATH_MAX 512
#define SL_DAY_MS (24ull * 3600ull * 1000ull)

/* One validation run: where kept values go, where errors go, and the path of the field being
 * read ("services[0].routes[1].timeout"), which every error names. */
typedef struct sl_schema_ctx {
    sl_config_t *cfg;
    sl_arena_t *a; /* cfg->arena: everything the config keeps */
    sl_config_diag_t *d;
    char path[SL_SCHEMA_PATH_MAX];
    size_t plen;
    int errors;
    int stream; /* the service being read is a stream service */
} sl_schema_ctx_t;

/* ---- paths and errors (schema.c) ---- */

/* Append to the current path (".key" or "[i]"; the first key has no dot) and return the length
 * to restore with sl_schema_path_pop(). A path too long for the buffer is cut, never overrun. */
size_t sl_schema_path_append(sl_schema_ctx_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t sl_schema_path_key(sl_schema_ctx_t *v, const char *key);
size_t sl_schema_path_idx(sl_schema_ctx_t *v, size_t i);
void sl_schema_path_pop(sl_schema_ctx_t *v, size_t old);

/* Report an error at the current path: at line:col, or at node n (n may be NULL: no position). */
void sl_schema_err_at(sl_schema_ctx_t *v, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void sl_schema_err(sl_schema_ctx_t *v, const sl_config_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Walk the whole tree once before validation: every repeated key of every map reported and
 * dropped (so every reader sees each key once, its first value), ${VAR} / ${VAR:-default}
 * substituted in every scalar value (substituted text is allocated in tree). */
void sl_schema_prepare(sl_schema_ctx_t *v, sl_arena_t *tree, sl_config_node_t *n);

/* ---- field tables (schema.c) ---- */

typedef enum {
    SL_FIELD_INT,      /* int, bounds min..max */
    SL_FIELD_U32,      /* uint32_t, bounds min..max */
    SL_FIELD_DURATION, /* uint64_t milliseconds, bounds min..max in ms */
    SL_FIELD_STRING,   /* const char *, non-empty */
    SL_FIELD_BOOL,     /* int 0/1 */
    SL_FIELD_ENUM,     /* an enum, value from choices */
    SL_FIELD_HOSTPORT, /* sl_hostport_t of an upstream node */
    SL_FIELD_LISTEN,   /* sl_hostport_t that a socket listens on (sl_schema_listen) */
    SL_FIELD_SECTION,  /* a nested map described by sub, at base + off */
    SL_FIELD_CUSTOM,   /* custom(v, node, base) */
    SL_FIELD_REJECT,   /* a known key that is refused with msg */
} sl_schema_kind_t;

typedef struct sl_schema_choice {
    const char *name;
    int value;
    const char *unsupported; /* NULL: supported; otherwise the message */
} sl_schema_choice_t;

typedef struct sl_schema_field sl_schema_field_t;
typedef struct sl_schema_section {
    const sl_schema_field_t *fields;
    size_t n;
} sl_schema_section_t;

struct sl_schema_field {
    const char *name;
    sl_schema_kind_t type;
    size_t off;
    long long min, max, def;
    const char *def_str;
    const sl_schema_section_t *sub;
    const sl_schema_choice_t *choices; /* ends with a {NULL} entry */
    void (*custom)(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base);
    const char *msg;
    int required;
};

#define SL_SCHEMA_SECTION(tbl)                                                                                         \
    {                                                                                                                  \
        tbl, SL_ARRAY_LEN(tbl)                                                                                         \
    }
/* The most fields a section may have. */
#define SL_SCHEMA_MAX_FIELDS 32

/* Write every default of sec into base, nested sections included. */
void sl_schema_defaults(sl_schema_ctx_t *v, const sl_schema_section_t *sec, void *base);

/* Walk map n against sec, writing into base (defaults must already be there): unknown keys
 * (with the closest valid name), required keys, every field's kind and bounds. A null node
 * counts as an empty map, so "http:" with nothing after it keeps the defaults. */
void sl_schema_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, const sl_schema_section_t *sec, void *base);

/* Return the name of names closest to key by edit distance when it is close enough to be a
 * typo (at most max_d edits, or a third of the key), else NULL. */
const char *sl_schema_closest_name(const char *key, const char *const *names, size_t n, unsigned max_d);

/* Report the key of c as an unknown what ("policy"), with the closest valid name when one is
 * close, and always the list of valid ones:
 *   unknown policy (did you mean 'retry'?); valid policies: ip_access, ... */
void sl_schema_unknown_name(sl_schema_ctx_t *v, const sl_config_node_t *c, const char *what, const char *whats,
                            const char *const *names, size_t n, unsigned max_d);

/* Check that n is a list; null counts as empty. Return its length, or -1 after an error. */
long sl_schema_list(sl_schema_ctx_t *v, const sl_config_node_t *n, int allow_empty);

/* ---- values (schema_values.c): each returns 0 (or the value), or -1 (NULL) after reporting ---- */

/* The scalar's text, or NULL after reporting that n is not noun ("an integer"). */
const char *sl_schema_scalar(sl_schema_ctx_t *v, const sl_config_node_t *n, const char *noun);
int sl_schema_int(sl_schema_ctx_t *v, const sl_config_node_t *n, long long min, long long max, long long *out);
/* A duration (sl_parse_duration_ms: the one grammar) within min..max milliseconds. bad_msg,
 * when set, is the message for every refusal (a field whose documented form is worded
 * differently, such as policies.timeout's whole seconds). */
int sl_schema_duration_in(sl_schema_ctx_t *v, const sl_config_node_t *n, long long min, long long max, uint64_t *out,
                          const char *bad_msg);
int sl_schema_duration(sl_schema_ctx_t *v, const sl_config_node_t *n, long long min, long long max, uint64_t *out);
/* A byte count: an integer, or one with a binary unit (k/KiB, m/MiB, g/GiB), at most max. */
int sl_schema_size(sl_schema_ctx_t *v, const sl_config_node_t *n, uint64_t max, uint64_t *out);
int sl_schema_bool(sl_schema_ctx_t *v, const sl_config_node_t *n, int *out);
/* A string kept in the config arena. Empty strings are refused unless allow_empty. */
const char *sl_schema_string(sl_schema_ctx_t *v, const sl_config_node_t *n, int allow_empty);
/* A service's or a route's name: 1 to 128 of A-Z a-z 0-9 _ . - */
const char *sl_schema_name(sl_schema_ctx_t *v, const sl_config_node_t *n);
/* "host:port", "a.b.c.d:port" or "[v6]:port". scheme_key names where a scheme belongs
 * ("upstream.scheme"), for the hint when the address is written as a URL; NULL for none. */
int sl_schema_hostport(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_hostport_t *out, const char *scheme_key);
/* A listen address, read as sl_config_listen_addr() reads it at start-up; the socket address
 * goes to *sa when sa is not NULL. */
int sl_schema_listen(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_hostport_t *out, struct sockaddr_storage *sa);
/* An IPv4/IPv6 address or CIDR, kept in the config arena. */
int sl_schema_cidr(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_cidr_cfg_t *out);
/* A map of header names to values into out / n_out. Names are tokens, unique; framing headers
 * (and, for policies, hop-by-hop ones) belong to the gateway. */
void sl_schema_header_map(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_header_kv_t **out, size_t *n_out,
                          int policy);

/* Predicates on text, without reporting. */
int sl_schema_parse_i64(const char *s, long long *out); /* 0, or -1: not a decimal integer */
int sl_schema_parse_bool(const char *s, int *out);      /* 0, or -1: not a boolean word */
int sl_schema_hostname_ok(const char *s, size_t len);   /* RFC 1123 host name */
int sl_schema_all_digits_dots(const char *s, size_t len);
int sl_schema_is_token(const char *s); /* a non-empty token (RFC 9110 5.6.2) */
int sl_schema_is_hop_by_hop(const char *name);
int sl_schema_cookie_path_ok(const char *path); /* a cookie Path value (RFC 6265) */

/* ---- the sections, one file each ---- */

/* gateway_schema.c: the gateway section. Defaults first, then the section (a custom field of
 * the top level, base the sl_config_t), then what needs the whole document (root). */
void sl_schema_gateway_defaults(sl_schema_ctx_t *v, sl_gateway_cfg_t *g);
void sl_schema_gateway(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base);
void sl_schema_gateway_finish(sl_schema_ctx_t *v, const sl_config_node_t *root, sl_gateway_cfg_t *g);
/* request_id, the gateway's or a route's: true / false, or a map. */
void sl_schema_request_id(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_request_id_cfg_t *r);

/* service_schema.c: the services list (base the sl_config_t), a route's name (base the
 * sl_route_cfg_t), which http and stream routes share, and whether key names an http policy. */
void sl_schema_services(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base);
void sl_schema_route_name(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base);
int sl_schema_is_policy(const char *key);

/* upstream_schema.c: a service's upstream (base the sl_service_cfg_t), its defaults, and the
 * keys that belong to one type of service, checked once the whole service is read. */
void sl_schema_upstream_defaults(sl_schema_ctx_t *v, sl_upstream_cfg_t *u);
void sl_schema_upstream(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base);
void sl_schema_upstream_kind(sl_schema_ctx_t *v, const sl_config_node_t *svc_node, sl_service_cfg_t *svc);

/* stream_schema.c: a stream route (map n) into r, and the checks across stream routes and the
 * gateway's listeners, run once everything else is valid. */
void sl_schema_stream_route(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_route_cfg_t *r);
void sl_schema_stream_listeners(sl_schema_ctx_t *v, const sl_config_t *cfg);

/* ---- the sections that live with their module ---- */

/* src/policy/<name>.c: one policy's settings, from its value n in a route's policies map into
 * pc, its `enabled` among them; listed in service_schema.c. */
void sl_policy_ip_access_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc);
void sl_policy_local_rate_limit_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc);
void sl_policy_path_rewrite_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc);
void sl_policy_request_headers_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc);
void sl_policy_timeout_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc);
void sl_policy_retry_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc);
void sl_policy_websocket_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc);
void sl_policy_response_headers_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc);
void sl_policy_cookie_rewrite_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_policies_cfg_t *pc);

/* src/stream/<name>.c: one plugin's settings, from its value n in a stream route's plugins map
 * into pc, its `enabled` among them; listed in stream_schema.c. */
void sl_stream_ip_restriction_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_stream_plugins_cfg_t *pc);
void sl_stream_limit_conn_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_stream_plugins_cfg_t *pc);
void sl_stream_prometheus_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_stream_plugins_cfg_t *pc);
void sl_stream_syslog_parse(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_stream_plugins_cfg_t *pc);

#endif
