/* The routes of a stream service (see src/stream/): what they match, the PROXY protocol they
 * accept, the table of their plugins (each plugin reads its own settings, in its file under
 * src/stream/), and the checks that need every stream route and the gateway's listeners at
 * once (a port taken twice, routes on one port that disagree on the PROXY protocol). */
#include "config/schema.h"
#include "modules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/cidr.h"
#include "base/map.h"

static void parse_server_addr(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    r->stream.has_server_addr = sl_schema_cidr(v, n, &r->stream.server_addr) == 0;
}

static void parse_remote_addr(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    r->stream.has_remote_addr = sl_schema_cidr(v, n, &r->stream.remote_addr) == 0;
}

static void parse_server_port(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_route_cfg_t *r = base;
    long long x;
    if (sl_schema_int(v, n, 1, 65535, &x) != 0) return;
    r->stream.server_port = (int)x;
    r->stream.port_line = n->line;
    r->stream.port_col = n->col;
}

/* ---- a stream route's plugins, each read in its own file under src/stream/ ---- */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void parse_stream_plugins(sl_schema_ctx_t *v, const sl_config_node_t *n, void *base)
{
    sl_stream_plugins_cfg_t *pc = &((sl_route_cfg_t *)base)->stream.plugins;
    if (sl_node_is_null(n)) return;
    if (n->kind != SL_NODE_MAP) {
        sl_schema_err(v, n, "expected a map, got %s", sl_node_kind_name(n));
        return;
    }
    /* Named in messages in alphabetical order, not the order their hooks run. */
    const char *names[SL_STREAM_PLUGIN_MAX];
    size_t n_names = sl_n_stream_plugin_modules;
    for (size_t k = 0; k < n_names; k++)
        names[k] = sl_stream_plugin_modules[k].ops->m.name;
    qsort(names, n_names, sizeof(names[0]), by_name);
    for (const sl_config_node_t *c = n->first; c; c = c->next) {
        size_t old = sl_schema_path_key(v, c->key), i = 0;
        while (i < sl_n_stream_plugin_modules && strcmp(c->key, sl_stream_plugin_modules[i].ops->m.name))
            i++;
        if (i < sl_n_stream_plugin_modules) {
            sl_stream_plugin_modules[i].parse(v, c, pc);
        } else if (sl_schema_is_policy(c->key) && !sl_schema_closest_name(c->key, names, n_names, 2)) {
            sl_buf_t b = SL_BUF_INIT;
            for (size_t k = 0; k < n_names; k++)
                sl_buf_printf(&b, "%s%s", k ? ", " : "", names[k]);
            sl_schema_err_at(v, c->key_line, c->key_col, "is an http policy; stream routes take the plugins %s",
                             sl_buf_cstr(&b));
            sl_buf_free(&b);
        } else {
            sl_schema_unknown_name(v, c, "plugin", "plugins", names, n_names, 2);
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

void sl_schema_stream_route(sl_schema_ctx_t *v, const sl_config_node_t *n, sl_route_cfg_t *r)
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
