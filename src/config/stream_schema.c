/* The routes of a stream service (see src/stream/): what they match, the PROXY protocol they
 * accept, their plugins, and the checks that need every stream route and the gateway's
 * listeners at once (a port taken twice, routes on one port that disagree on the PROXY
 * protocol). */
#include "config/schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cidr.h"
#include "base/map.h"

/* The names a stream route's plugins map takes. */
static const char *const plugin_names[] = {"ip-restriction", "limit-conn", "prometheus", "syslog"};

/* An IPv4/IPv6 address or CIDR into out; 0, or -1 after an error. */
static int get_cidr(sl_schema_ctx_t *v, const sl_node_t *n, sl_cidr_cfg_t *out)
{
    const char *s = sl_schema_string(v, n, 0);
    if (!s) return -1;
    if (sl_cidr_parse(s, &out->ip, &out->prefix) != 0) {
        sl_schema_err(v, n,
                      "expected an IPv4 or IPv6 address or CIDR (127.0.0.10, 10.0.0.0/8, 2001:db8::/32), got '%s'", s);
        return -1;
    }
    out->text = s;
    return 0;
}

static void parse_server_addr(sl_schema_ctx_t *v, const sl_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    r->stream.has_server_addr = get_cidr(v, n, &r->stream.server_addr) == 0;
}

static void parse_remote_addr(sl_schema_ctx_t *v, const sl_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    r->stream.has_remote_addr = get_cidr(v, n, &r->stream.remote_addr) == 0;
}

static void parse_server_port(sl_schema_ctx_t *v, const sl_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    long long x;
    if (sl_schema_int(v, n, 1, 65535, &x) != 0) return;
    r->stream.server_port = (int)x;
    r->stream.port_line = n->line;
    r->stream.port_col = n->col;
}

static void parse_ip_restriction(sl_schema_ctx_t *v, const sl_node_t *n, sl_stream_plugins_cfg_t *pc)
{
    if (n->kind != SL_NODE_MAP) {
        sl_schema_err(v, n, "expected a map with 'whitelist' or 'blacklist', got %s", sl_node_kind_name(n));
        return;
    }
    const sl_node_t *white = sl_node_get(n, "whitelist"), *black = sl_node_get(n, "blacklist");
    for (const sl_node_t *c = n->first; c; c = c->next)
        if (strcmp(c->key, "whitelist") && strcmp(c->key, "blacklist")) {
            size_t old = sl_schema_path_key(v, c->key);
            sl_schema_err_at(v, c->key_line, c->key_col, "unknown key (expected one of: whitelist, blacklist)");
            sl_schema_path_pop(v, old);
        }
    if (!white == !black) {
        sl_schema_err(v, n, "needs exactly one of 'whitelist' and 'blacklist'");
        return;
    }
    const sl_node_t *list = white ? white : black;
    size_t old = sl_schema_path_key(v, white ? "whitelist" : "blacklist");
    long cnt = sl_schema_list(v, list, 0);
    if (cnt > 0) {
        pc->ip_restriction.cidrs = sl_arena_calloc(v->a, (size_t)cnt * sizeof(*pc->ip_restriction.cidrs));
        size_t i = 0;
        for (const sl_node_t *c = list->first; c; c = c->next, i++) {
            size_t o2 = sl_schema_path_idx(v, i);
            if (get_cidr(v, c, &pc->ip_restriction.cidrs[pc->ip_restriction.n_cidrs]) == 0)
                pc->ip_restriction.n_cidrs++;
            sl_schema_path_pop(v, o2);
        }
    }
    sl_schema_path_pop(v, old);
    pc->ip_restriction.enabled = 1;
    pc->ip_restriction.whitelist = white != NULL;
}

#define LC_OFF(m) offsetof(sl_stream_plugins_cfg_t, limit_conn.m)
static const sl_schema_choice_t limit_conn_keys[] = {
    {"remote_addr", SL_LIMIT_CONN_REMOTE_ADDR, NULL},
    {"server_addr", SL_LIMIT_CONN_SERVER_ADDR, NULL},
    {NULL, 0, NULL},
};
static const sl_schema_field_t limit_conn_fields[] = {
    {.name = "conn", .type = SL_FIELD_U32, .off = LC_OFF(conn), .min = 1, .max = 1000000, .required = 1},
    {.name = "burst", .type = SL_FIELD_U32, .off = LC_OFF(burst), .min = 0, .max = 1000000, .required = 1},
    /* A bare number counts seconds, as in APISIX (0.1 = 100ms): the duration grammar's rule. */
    {.name = "default_conn_delay",
     .type = SL_FIELD_DURATION,
     .off = LC_OFF(delay_ms),
     .min = 1,
     .max = 3600000,
     .required = 1},
    {.name = "key",
     .type = SL_FIELD_ENUM,
     .off = LC_OFF(key),
     .choices = limit_conn_keys,
     .def = SL_LIMIT_CONN_REMOTE_ADDR},
};
static const sl_schema_section_t limit_conn_section = SL_SCHEMA_SECTION(limit_conn_fields);

static void parse_syslog_host(sl_schema_ctx_t *v, const sl_node_t *n, void *base)
{
    sl_syslog_plugin_cfg_t *sc = base;
    const char *s = sl_schema_string(v, n, 0);
    sl_ip_t ip;
    if (!s) return;
    if (sl_ip_parse(s, strlen(s), &ip) != 0 &&
        (sl_schema_all_digits_dots(s, strlen(s)) || !sl_schema_hostname_ok(s, strlen(s))))
        sl_schema_err(v, n, "expected an IP address or a host name, got '%s'", s);
    else
        sc->host = s;
}

#define SY_OFF(m) offsetof(sl_syslog_plugin_cfg_t, m)
static const sl_schema_choice_t syslog_socks[] = {
    {"udp", SL_SYSLOG_SOCK_UDP, NULL},
    {"tcp", SL_SYSLOG_SOCK_TCP, NULL},
    {NULL, 0, NULL},
};
static const sl_schema_field_t syslog_fields[] = {
    {.name = "host", .type = SL_FIELD_CUSTOM, .custom = parse_syslog_host, .required = 1},
    {.name = "port", .type = SL_FIELD_INT, .off = SY_OFF(port), .min = 1, .max = 65535, .required = 1},
    {.name = "sock_type",
     .type = SL_FIELD_ENUM,
     .off = SY_OFF(sock_type),
     .choices = syslog_socks,
     .def = SL_SYSLOG_SOCK_UDP},
    {.name = "timeout", .type = SL_FIELD_DURATION, .off = SY_OFF(timeout_ms), .min = 1, .max = 60000, .def = 3000},
    {.name = "batch_max_size", .type = SL_FIELD_U32, .off = SY_OFF(batch_max_size), .min = 1, .max = 10000, .def = 100},
    {.name = "flush_timeout",
     .type = SL_FIELD_DURATION,
     .off = SY_OFF(flush_timeout_ms),
     .min = 1,
     .max = 3600000,
     .def = 1000},
    {.name = "max_pending", .type = SL_FIELD_U32, .off = SY_OFF(max_pending), .min = 1, .max = 1000000, .def = 10000},
};
static const sl_schema_section_t syslog_section = SL_SCHEMA_SECTION(syslog_fields);

static void parse_syslog(sl_schema_ctx_t *v, const sl_node_t *n, sl_syslog_plugin_cfg_t *sc)
{
    sl_schema_defaults(v, &syslog_section, sc);
    sl_schema_parse(v, n, &syslog_section, sc);
    sc->enabled = 1;
    const sl_node_t *bm = sl_node_get(n, "batch_max_size");
    if (bm && sc->batch_max_size > sc->max_pending) {
        size_t old = sl_schema_path_key(v, "batch_max_size");
        sl_schema_err(v, bm, "must not be larger than max_pending (%u)", sc->max_pending);
        sl_schema_path_pop(v, old);
    }
}

static void parse_stream_plugins(sl_schema_ctx_t *v, const sl_node_t *n, void *base)
{
    sl_stream_plugins_cfg_t *pc = &((sl_route_cfg_t *)base)->stream.plugins;
    if (sl_node_is_null(n)) return;
    if (n->kind != SL_NODE_MAP) {
        sl_schema_err(v, n, "expected a map, got %s", sl_node_kind_name(n));
        return;
    }
    for (const sl_node_t *c = n->first; c; c = c->next) {
        size_t old = sl_schema_path_key(v, c->key);
        if (!strcmp(c->key, "ip-restriction")) {
            parse_ip_restriction(v, c, pc);
        } else if (!strcmp(c->key, "limit-conn")) {
            sl_schema_defaults(v, &limit_conn_section, pc);
            sl_schema_parse(v, c, &limit_conn_section, pc);
            pc->limit_conn.enabled = 1;
        } else if (!strcmp(c->key, "prometheus")) {
            if (!sl_node_is_null(c) && (c->kind != SL_NODE_MAP || c->n))
                sl_schema_err(v, c, "expected {} (the plugin has no settings)");
            pc->prometheus.enabled = 1;
        } else if (!strcmp(c->key, "syslog")) {
            parse_syslog(v, c, &pc->syslog);
        } else {
            if (sl_schema_is_policy(c->key) &&
                sl_schema_closest_name(c->key, plugin_names, SL_ARRAY_LEN(plugin_names), 2) == NULL)
                sl_schema_err_at(
                    v, c->key_line, c->key_col,
                    "is an http policy; stream routes take the plugins ip-restriction, limit-conn, prometheus, "
                    "syslog");
            else
                sl_schema_unknown_name(v, c, "plugin", "plugins", plugin_names, SL_ARRAY_LEN(plugin_names), 2);
        }
        sl_schema_path_pop(v, old);
    }
}

/* Offsets from proxy_protocol_accept, where the section starts. */
static const sl_schema_field_t route_pp_fields[] = {
    {.name = "accept", .type = SL_FIELD_BOOL},
    {.name = "timeout",
     .type = SL_FIELD_DURATION,
     .off = offsetof(sl_stream_route_cfg_t, proxy_protocol_timeout_ms) -
            offsetof(sl_stream_route_cfg_t, proxy_protocol_accept),
     .min = 1,
     .max = 3600000,
     .def = 10000},
};
static const sl_schema_section_t route_pp_section = SL_SCHEMA_SECTION(route_pp_fields);

#define SR_OFF(m) offsetof(sl_route_cfg_t, stream.m)
#define HTTP_MATCH_ONLY "only valid on http routes (stream routes match server_addr, server_port, remote_addr)"
static const sl_schema_field_t stream_route_fields[] = {
    {.name = "name", .type = SL_FIELD_CUSTOM, .custom = sl_schema_route_name},
    {.name = "server_addr", .type = SL_FIELD_CUSTOM, .custom = parse_server_addr},
    {.name = "server_port", .type = SL_FIELD_CUSTOM, .custom = parse_server_port, .required = 1},
    {.name = "remote_addr", .type = SL_FIELD_CUSTOM, .custom = parse_remote_addr},
    {.name = "proxy_protocol",
     .type = SL_FIELD_SECTION,
     .off = SR_OFF(proxy_protocol_accept),
     .sub = &route_pp_section},
    {.name = "plugins", .type = SL_FIELD_CUSTOM, .custom = parse_stream_plugins},
    {.name = "policies", .type = SL_FIELD_REJECT, .msg = "policies are for http routes; stream routes use 'plugins'"},
    {.name = "hosts", .type = SL_FIELD_REJECT, .msg = HTTP_MATCH_ONLY},
    {.name = "paths", .type = SL_FIELD_REJECT, .msg = HTTP_MATCH_ONLY},
    {.name = "methods", .type = SL_FIELD_REJECT, .msg = HTTP_MATCH_ONLY},
    {.name = "direct_response",
     .type = SL_FIELD_REJECT,
     .msg = "only valid on http routes (a stream route always proxies)"},
    {.name = "request_id", .type = SL_FIELD_REJECT, .msg = "only valid on http routes"},
    {.name = "tags",
     .type = SL_FIELD_REJECT,
     .msg = "only valid on http routes (stream access log lines have fixed keys)"},
};
static const sl_schema_section_t stream_route_section = SL_SCHEMA_SECTION(stream_route_fields);

void sl_schema_stream_route(sl_schema_ctx_t *v, const sl_node_t *n, sl_route_cfg_t *r)
{
    sl_schema_defaults(v, &stream_route_section, r);
    sl_schema_parse(v, n, &stream_route_section, r);
}

/* ---- checks across routes and listeners ---- */

static int ip_is_any(const sl_ip_t *ip)
{
    static const uint8_t zero[16];
    return !memcmp(ip->bytes, zero, ip->family == 4 ? 4 : 16);
}

/* Whether listening sockets on a and b (same port) would take each other's connections. */
static int listen_overlap(const sl_ip_t *a, const sl_ip_t *b)
{
    if (a->family != b->family) return 0;
    return ip_is_any(a) || ip_is_any(b) || !memcmp(a->bytes, b->bytes, 16);
}

/* A TCP stream route listens on its server_addr when that is one address, else on the wildcard
 * address of its family (runtime/generation.c); that socket must not be an HTTP or status one. */
static void check_stream_ports(sl_schema_ctx_t *v, const sl_config_t *cfg)
{
    const sl_gateway_cfg_t *gw = &cfg->gateway;
    for (size_t s = 0; s < cfg->n_services; s++) {
        const sl_service_cfg_t *svc = &cfg->services[s];
        if (svc->type != SL_SERVICE_STREAM || svc->upstream.scheme != SL_SCHEME_TCP) continue;
        for (size_t r = 0; r < svc->n_routes; r++) {
            const sl_stream_route_cfg_t *sr = &svc->routes[r].stream;
            if (!sr->server_port) continue;
            sl_ip_t at = {.family = 4};
            if (sr->has_server_addr) {
                at = sr->server_addr.ip;
                if (sr->server_addr.prefix < (at.family == 4 ? 32 : 128)) memset(at.bytes, 0, sizeof(at.bytes));
            }
            const sl_hostport_t *clash = NULL;
            const char *what = "gateway.http.listen";
            for (size_t i = 0; i < gw->http.n_listen && !clash; i++) {
                sl_ip_t ip;
                const sl_hostport_t *hp = &gw->http.listen[i];
                if (hp->port == sr->server_port && hp->is_ip && sl_ip_parse(hp->host, strlen(hp->host), &ip) == 0 &&
                    listen_overlap(&ip, &at))
                    clash = hp;
            }
            sl_ip_t ip;
            if (!clash && gw->status.enabled && gw->status.listen.port == sr->server_port && gw->status.listen.is_ip &&
                sl_ip_parse(gw->status.listen.host, strlen(gw->status.listen.host), &ip) == 0 &&
                listen_overlap(&ip, &at)) {
                clash = &gw->status.listen;
                what = "gateway.status.listen";
            }
            if (!clash) continue;
            size_t old = sl_schema_path_append(v, "services[%zu].routes[%zu].server_port", s, r);
            sl_schema_err_at(v, sr->port_line, sr->port_col, "port %d is already %s '%s'", sr->server_port, what,
                             clash->text);
            sl_schema_path_pop(v, old);
        }
    }
}

/* Whether some connection could be taken by both routes by its address (both on one port). */
static int server_addr_overlap(const sl_stream_route_cfg_t *a, const sl_stream_route_cfg_t *b)
{
    if (!a->has_server_addr || !b->has_server_addr) return 1;
    if (a->server_addr.ip.family != b->server_addr.ip.family) return 0;
    int prefix = SL_MIN(a->server_addr.prefix, b->server_addr.prefix);
    return sl_cidr_match(&a->server_addr.ip, prefix, &b->server_addr.ip);
}

/* The TCP stream routes seen so far on one port, by whether they accept the PROXY protocol:
 * the first without server_addr (it overlaps every route), and those with one, in file order. */
typedef struct pp_side {
    int has_wild;
    size_t wild; /* index into the flat route list */
    size_t *addr, n_addr, cap_addr;
} pp_side_t;
typedef struct pp_port {
    char key[8]; /* the port as text: the map's key lives here */
    pp_side_t side[2];
} pp_port_t;

/* Whether a connection starts with a PROXY protocol header is known before its client is: it is
 * a property of the address and port it arrived on, as nginx's and HAProxy's listeners have it.
 * So TCP routes that may take connections on the same address and port must agree on it. Each
 * route is compared only with earlier routes on its port that decided the other way, so a port
 * shared by many routes that agree costs nothing more. */
static void check_proxy_protocol_listeners(sl_schema_ctx_t *v, const sl_config_t *cfg)
{
    typedef struct {
        size_t s, r;
        const sl_stream_route_cfg_t *sr;
    } flat_t;
    size_t n = 0;
    for (size_t s = 0; s < cfg->n_services; s++)
        if (cfg->services[s].type == SL_SERVICE_STREAM && cfg->services[s].upstream.scheme == SL_SCHEME_TCP)
            n += cfg->services[s].n_routes;
    if (!n) return;
    flat_t *all = sl_xcalloc(n, sizeof(*all));
    sl_map_t ports;
    sl_map_init(&ports);
    size_t k = 0;
    for (size_t s = 0; s < cfg->n_services; s++) {
        const sl_service_cfg_t *svc = &cfg->services[s];
        if (svc->type != SL_SERVICE_STREAM || svc->upstream.scheme != SL_SCHEME_TCP) continue;
        for (size_t r = 0; r < svc->n_routes; r++, k++) {
            const sl_stream_route_cfg_t *sr = &svc->routes[r].stream;
            all[k] = (flat_t){s, r, sr};
            char key[8];
            int klen = snprintf(key, sizeof(key), "%d", sr->server_port);
            void **slot = sl_map_slot(&ports, key, (size_t)klen);
            if (!*slot) {
                pp_port_t *pp = sl_xcalloc(1, sizeof(*pp));
                memcpy(pp->key, key, (size_t)klen + 1);
                /* The map borrowed the stack key: point it at the copy that lives on. */
                sl_map_entry_t *e = (sl_map_entry_t *)((char *)slot - offsetof(sl_map_entry_t, value));
                e->key = pp->key;
                *slot = pp;
            }
            pp_port_t *pp = *slot;
            int flag = sr->proxy_protocol_accept != 0;
            /* The first earlier route on this port that decided the other way and overlaps. */
            const pp_side_t *o = &pp->side[!flag];
            size_t found = SIZE_MAX;
            if (o->has_wild) found = o->wild;
            for (size_t i = 0; i < o->n_addr && o->addr[i] < found; i++)
                if (server_addr_overlap(all[o->addr[i]].sr, sr)) found = o->addr[i];
            if (found != SIZE_MAX) {
                const flat_t *f = &all[found];
                size_t old = sl_schema_path_append(v, "services[%zu].routes[%zu].proxy_protocol", s, r);
                sl_schema_err_at(v, sr->port_line, sr->port_col,
                                 "routes on one address and port must agree on accepting the PROXY protocol: "
                                 "services[%zu].routes[%zu] on port %d %s it, this route %s",
                                 f->s, f->r, sr->server_port,
                                 f->sr->proxy_protocol_accept ? "accepts" : "does not accept",
                                 sr->proxy_protocol_accept ? "does" : "does not");
                sl_schema_path_pop(v, old);
            }
            pp_side_t *mine = &pp->side[flag];
            if (!sr->has_server_addr) {
                if (!mine->has_wild) mine->has_wild = 1, mine->wild = k;
            } else {
                if (mine->n_addr == mine->cap_addr) {
                    mine->cap_addr = mine->cap_addr ? mine->cap_addr * 2 : 8;
                    mine->addr = sl_xrealloc(mine->addr, mine->cap_addr * sizeof(*mine->addr));
                }
                mine->addr[mine->n_addr++] = k;
            }
        }
    }
    for (size_t i = 0; i < ports.cap; i++) {
        pp_port_t *pp = ports.slots[i].key ? ports.slots[i].value : NULL;
        if (!pp) continue;
        free(pp->side[0].addr);
        free(pp->side[1].addr);
        free(pp);
    }
    sl_map_free(&ports);
    free(all);
}

void sl_schema_stream_listeners(sl_schema_ctx_t *v, const sl_config_t *cfg)
{
    check_stream_ports(v, cfg);
    check_proxy_protocol_listeners(v, cfg);
}
