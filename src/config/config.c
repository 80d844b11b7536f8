/* Loading entry points: read the source, pick YAML or JSON, build the tree, validate. */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "base/common.h"
#include "config/node.h"
#include "config/schema.h"

void sl_config_free(sl_config_t *cfg)
{
    if (!cfg) return;
    sl_arena_reset(&cfg->arena);
    free(cfg);
}

uint32_t sl_method_bit(const char *name, size_t len)
{
    static const struct {
        const char *name;
        uint32_t bit;
    } methods[] = {
        {"GET", SL_METHOD_GET},         {"HEAD", SL_METHOD_HEAD},       {"POST", SL_METHOD_POST},
        {"PUT", SL_METHOD_PUT},         {"DELETE", SL_METHOD_DELETE},   {"PATCH", SL_METHOD_PATCH},
        {"OPTIONS", SL_METHOD_OPTIONS}, {"CONNECT", SL_METHOD_CONNECT}, {"TRACE", SL_METHOD_TRACE},
    };
    if (!name) return 0;
    for (size_t i = 0; i < SL_ARRAY_LEN(methods); i++)
        if (strlen(methods[i].name) == len && !memcmp(methods[i].name, name, len)) return methods[i].bit;
    return 0;
}

int sl_config_listen_addr(const sl_hostport_t *hp, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    /* localhost is the one name taken, as nginx takes it, and it means one socket: binding
     * every address a resolver returns would make a listen entry two sockets on some hosts and
     * one on others. */
    const char *host = !strcasecmp(hp->host, "localhost") ? "127.0.0.1" : hp->host;
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(hp->port);
        return 0;
    }
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(hp->port);
        return 0;
    }
    return -EINVAL;
}

/* The document's top level: the gateway section and the services list. */
static const sl_schema_field_t top_fields[] = {
    {.name = "gateway", .type = SL_FIELD_CUSTOM, .custom = sl_schema_gateway},
    {.name = "services", .type = SL_FIELD_CUSTOM, .custom = sl_schema_services},
};
static const sl_schema_section_t top_section = SL_SCHEMA_SECTION(top_fields);

int sl_config_validate(sl_config_t *cfg, sl_arena_t *tree, sl_config_node_t *root, sl_config_diag_t *d)
{
    sl_schema_ctx_t v = {.cfg = cfg, .a = &cfg->arena, .d = d};
    if (root) sl_schema_prepare(&v, tree, root);
    sl_schema_gateway_defaults(&v, &cfg->gateway);
    sl_schema_parse(&v, root, &top_section, cfg);
    sl_schema_gateway_finish(&v, root, &cfg->gateway);
    /* Checks across services, which would only repeat errors already reported. */
    if (!v.errors) sl_schema_stream_listeners(&v, cfg);
    return v.errors ? -1 : 0;
}

/* JSON when the name says so or the first non-blank character opens an object. */
static int looks_like_json(const char *name, const char *data, size_t len)
{
    size_t nl = strlen(name);
    if (nl >= 5 && !strcmp(name + nl - 5, ".json")) return 1;
    size_t i = 0;
    if (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3)) i = 3;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    return i < len && data[i] == '{';
}

int sl_config_load_buffer(const char *name, const char *data, size_t len, sl_config_t **out, sl_config_errors_t *errs)
{
    *out = NULL;
    if (!name) name = "<config>";
    sl_config_diag_t d = {.file = name, .errs = errs};
    if (len > SL_CONFIG_MAX_BYTES) {
        sl_config_diag_add(&d, 0, 0, NULL, "configuration is larger than %u MiB", SL_CONFIG_MAX_BYTES >> 20);
        return -1;
    }
    if (!data) data = "";
    sl_config_t *cfg = sl_xcalloc(1, sizeof(*cfg));
    sl_arena_init(&cfg->arena, 0);
    cfg->source = sl_arena_strdup(&cfg->arena, name);

    /* The tree is only needed while validating; it lives in its own arena, freed below. */
    sl_arena_t tree;
    sl_arena_init(&tree, 16384);
    sl_config_node_t *root = NULL;
    int rc = looks_like_json(name, data, len) ? sl_node_parse_json(&tree, data, len, &root, &d)
                                              : sl_node_parse_yaml(&tree, data, len, &root, &d);
    if (rc == 0) rc = sl_config_validate(cfg, &tree, root, &d);
    sl_arena_reset(&tree);
    if (rc != 0) {
        sl_config_free(cfg);
        return -1;
    }
    *out = cfg;
    return 0;
}

int sl_config_load_file(const char *path, sl_config_t **out, sl_config_errors_t *errs)
{
    *out = NULL;
    sl_config_diag_t d = {.file = path, .errs = errs};
    FILE *f = fopen(path, "rb");
    if (!f) {
        sl_config_diag_add(&d, 0, 0, NULL, "cannot open: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        sl_config_diag_add(&d, 0, 0, NULL, "cannot stat: %s", strerror(errno));
        fclose(f);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        sl_config_diag_add(&d, 0, 0, NULL, "not a regular file");
        fclose(f);
        return -1;
    }
    if ((unsigned long long)st.st_size > SL_CONFIG_MAX_BYTES) {
        sl_config_diag_add(&d, 0, 0, NULL, "configuration is larger than %u MiB", SL_CONFIG_MAX_BYTES >> 20);
        fclose(f);
        return -1;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = sl_xmalloc(cap);
    /* Read until EOF rather than trusting st_size: the file may change while we read it. */
    for (;;) {
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0 || len > SL_CONFIG_MAX_BYTES) break;
        if (len == cap) {
            cap *= 2;
            buf = sl_xrealloc(buf, cap);
        }
    }
    int read_err = ferror(f);
    fclose(f);
    if (read_err) {
        sl_config_diag_add(&d, 0, 0, NULL, "read error");
        free(buf);
        return -1;
    }
    int rc = sl_config_load_buffer(path, buf, len, out, errs);
    free(buf);
    return rc;
}

int sl_config_check_reload(const sl_config_t *old, const sl_config_t *cfg, sl_config_errors_t *errs)
{
    static const char *const types[] = {[SL_SERVICE_HTTP] = "http", [SL_SERVICE_STREAM] = "stream"};
    sl_config_diag_t d = {.file = cfg->source, .errs = errs};
    int rc = 0;
    for (size_t i = 0; i < cfg->n_services; i++) {
        const sl_service_cfg_t *svc = &cfg->services[i];
        for (size_t j = 0; j < old->n_services; j++) {
            const sl_service_cfg_t *was = &old->services[j];
            if (strcmp(was->name, svc->name) || was->type == svc->type) continue;
            char path[64];
            snprintf(path, sizeof(path), "services[%zu].type", i);
            sl_config_diag_add(&d, svc->type_line, svc->type_col, path,
                               "service '%s' is %s in the running configuration and cannot become %s (a service's "
                               "type is fixed: give the new service another name)",
                               svc->name, types[was->type], types[svc->type]);
            rc = -1;
        }
    }
    return rc;
}
