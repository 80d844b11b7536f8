/* Stream routes of a generation, their listening addresses, and matching (stream.h). */
#include "base/common.h"
#include "runtime/generation.h"
#include "stream/stream.h"
#include "stream/udp_proxy.h"

#include <stdio.h>
#include <string.h>

/* The address a route listens on: its server_addr when that is one address; for a CIDR, the
 * wildcard address of its family; without server_addr, the IPv4 wildcard. */
static sl_ip_t listen_ip(const sl_stream_route_cfg_t *sr, int *wildcard)
{
    sl_ip_t ip = {.family = 4};
    *wildcard = 1;
    if (!sr->has_server_addr) return ip;
    ip.family = sr->server_addr.ip.family;
    if (sr->server_addr.prefix < (ip.family == 4 ? 32 : 128)) return ip;
    *wildcard = 0;
    return sr->server_addr.ip;
}

static void add_listen(sl_generation_t *g, sl_listen_kind_t kind, const sl_ip_t *ip, int port)
{
    char host[64], text[80];
    sl_ip_format(ip, host, sizeof(host));
    snprintf(text, sizeof(text), ip->family == 6 ? "[%s]:%d" : "%s:%d", host, port);
    for (size_t i = 0; i < g->n_listens; i++)
        if (g->listens[i].kind == kind && !strcmp(g->listens[i].addr.text, text)) return;
    g->listens = sl_xrealloc(g->listens, (g->n_listens + 1) * sizeof(*g->listens));
    sl_listen_t *l = &g->listens[g->n_listens++];
    l->kind = kind;
    l->addr.text = sl_arena_strdup(&g->cfg->arena, text);
    l->addr.host = sl_arena_strdup(&g->cfg->arena, host);
    l->addr.port = (uint16_t)port;
    l->addr.is_ip = 1;
}

/* Whether some route of the protocol (udp or not) needs the wildcard address of family on port. */
static int wildcard_needed(const sl_generation_t *g, int udp, int family, int port)
{
    for (size_t i = 0; i < g->n_stream_routes; i++) {
        const sl_stream_route_t *r = &g->stream_routes[i];
        int wildcard;
        sl_ip_t ip = listen_ip(&r->cfg->stream, &wildcard);
        if (r->udp == udp && wildcard && ip.family == family && r->cfg->stream.server_port == port) return 1;
    }
    return 0;
}

int sl_stream_routes_build(sl_generation_t *g, sl_config_errors_t *errs)
{
    const sl_config_t *cfg = g->cfg;
    size_t n = 0;
    for (size_t s = 0; s < cfg->n_services; s++)
        if (cfg->services[s].type == SL_SERVICE_STREAM) n += cfg->services[s].n_routes;
    g->stream_routes = sl_xcalloc(n ? n : 1, sizeof(sl_stream_route_t));
    int rc = 0;
    for (size_t s = 0; s < cfg->n_services; s++) {
        const sl_service_cfg_t *svc = &cfg->services[s];
        if (svc->type != SL_SERVICE_STREAM) continue;
        for (size_t i = 0; i < svc->n_routes; i++) {
            sl_stream_route_t *r = &g->stream_routes[g->n_stream_routes++];
            r->cfg = &svc->routes[i];
            r->svc = svc;
            r->upstream = &g->upstreams[s];
            r->udp = svc->upstream.scheme == SL_SCHEME_UDP;
            if (r->udp) r->udp_quota = sl_stream_udp_quota_get(svc->name);
            if (sl_stream_plugins_init(r, errs) != 0) rc = -1; /* the caller refuses the generation */
        }
    }
    /* A port where some route needs the wildcard address is served by that socket alone: the
     * routes for one address of the family then match on the connection's (or datagram's) local
     * address. TCP and UDP ports are counted apart, as the kernel does. */
    for (size_t i = 0; i < g->n_stream_routes; i++) {
        const sl_stream_route_t *r = &g->stream_routes[i];
        int wildcard;
        sl_ip_t ip = listen_ip(&r->cfg->stream, &wildcard);
        if (!wildcard && wildcard_needed(g, r->udp, ip.family, r->cfg->stream.server_port))
            memset(ip.bytes, 0, sizeof(ip.bytes));
        add_listen(g, r->udp ? SL_LISTEN_STREAM_UDP : SL_LISTEN_STREAM_TCP, &ip, r->cfg->stream.server_port);
    }
    return rc;
}

void sl_stream_routes_destroy(sl_generation_t *g)
{
    for (size_t i = 0; i < g->n_stream_routes; i++) {
        sl_stream_plugins_destroy(&g->stream_routes[i]);
        if (g->stream_routes[i].udp_quota) sl_stream_udp_quota_release(g->stream_routes[i].udp_quota);
    }
    free(g->stream_routes);
    g->stream_routes = NULL;
    g->n_stream_routes = 0;
}

static sl_stream_route_t *match(const sl_generation_t *g, int udp, const sl_ip_t *server, uint16_t server_port,
                                const sl_ip_t *client)
{
    for (size_t i = 0; i < g->n_stream_routes; i++) {
        sl_stream_route_t *r = &g->stream_routes[i];
        const sl_stream_route_cfg_t *sr = &r->cfg->stream;
        if (r->udp != udp || sr->server_port != server_port) continue;
        if (sr->has_server_addr && !sl_cidr_match(&sr->server_addr.ip, sr->server_addr.prefix, server)) continue;
        if (client && sr->has_remote_addr && !sl_cidr_match(&sr->remote_addr.ip, sr->remote_addr.prefix, client))
            continue;
        return r;
    }
    return NULL;
}

sl_stream_route_t *sl_stream_match(const sl_generation_t *g, const sl_ip_t *server, uint16_t server_port,
                                   const sl_ip_t *client)
{
    return match(g, 0, server, server_port, client);
}

sl_stream_route_t *sl_stream_match_listener(const sl_generation_t *g, const sl_ip_t *server, uint16_t server_port)
{
    return match(g, 0, server, server_port, NULL);
}

sl_stream_route_t *sl_stream_match_udp(const sl_generation_t *g, const sl_ip_t *server, uint16_t server_port,
                                       const sl_ip_t *client)
{
    return match(g, 1, server, server_port, client);
}
