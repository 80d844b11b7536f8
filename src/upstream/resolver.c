#include "upstream/resolver.h"
#include "base/common.h"
#include "base/log.h"

#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>

struct sl_resolved {
    char *host;
    pthread_mutex_t lock;
    struct sockaddr_storage addr; /* port 0; callers set theirs */
    int ok;
    int refreshing;
    uv_getaddrinfo_t req;
    struct sl_resolved *next;
};

static sl_resolved_t *entries;
static uv_timer_t refresh_timer;
static int timer_started;
static int shutting_down;

static const struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};

static void store(sl_resolved_t *r, const struct addrinfo *ai)
{
    /* Prefer IPv4 when a name has both: loopback services commonly listen on 127.0.0.1 only. */
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *a = ai; a; a = a->ai_next)
        if (a->ai_family == AF_INET && (!pick || pick->ai_family != AF_INET)) pick = a;
    if (!pick) pick = ai;
    pthread_mutex_lock(&r->lock);
    memset(&r->addr, 0, sizeof(r->addr));
    memcpy(&r->addr, pick->ai_addr, pick->ai_addrlen);
    r->ok = 1;
    pthread_mutex_unlock(&r->lock);
}

sl_resolved_t *sl_resolver_get(const char *host)
{
    for (sl_resolved_t *r = entries; r; r = r->next)
        if (!strcmp(r->host, host)) return r;
    sl_resolved_t *r = sl_xcalloc(1, sizeof(*r));
    r->host = sl_xstrdup(host);
    pthread_mutex_init(&r->lock, NULL);
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc == 0 && ai) {
        store(r, ai);
    } else {
        sl_log_warn("resolver: %s does not resolve: %s (will retry)", host, gai_strerror(rc));
    }
    if (ai) freeaddrinfo(ai);
    r->next = entries;
    entries = r;
    return r;
}

int sl_resolved_addr(sl_resolved_t *r, uint16_t port, struct sockaddr_storage *out)
{
    pthread_mutex_lock(&r->lock);
    int ok = r->ok;
    if (ok) *out = r->addr;
    pthread_mutex_unlock(&r->lock);
    if (!ok) return -1;
    if (out->ss_family == AF_INET) ((struct sockaddr_in *)out)->sin_port = htons(port);
    else ((struct sockaddr_in6 *)out)->sin6_port = htons(port);
    return 0;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
    sl_resolved_t *r = sl_container_of(req, sl_resolved_t, req);
    r->refreshing = 0;
    if (status == 0 && ai) store(r, ai);
    else if (status != UV_ECANCELED) sl_log_warn("resolver: refreshing %s failed: %s", r->host, uv_strerror(status));
    if (ai) uv_freeaddrinfo(ai);
}

static void on_refresh(uv_timer_t *t)
{
    if (shutting_down) return;
    for (sl_resolved_t *r = entries; r; r = r->next) {
        if (r->refreshing) continue;
        if (uv_getaddrinfo(t->loop, &r->req, on_resolved, r->host, NULL, &hints) == 0) r->refreshing = 1;
    }
}

void sl_resolver_start(uv_loop_t *loop, uint64_t interval_ms)
{
    if (!interval_ms) interval_ms = 30000;
    if (!timer_started) {
        uv_timer_init(loop, &refresh_timer);
        uv_unref((uv_handle_t *)&refresh_timer);
        timer_started = 1;
    }
    uv_timer_start(&refresh_timer, on_refresh, interval_ms, interval_ms);
}

void sl_resolver_shutdown(void)
{
    shutting_down = 1;
    if (timer_started) {
        uv_timer_stop(&refresh_timer);
        uv_close((uv_handle_t *)&refresh_timer, NULL);
        timer_started = 0;
    }
    /* Requests still in flight are cancelled by the caller running the loop once more; entries
     * with one running are leaked on purpose rather than freed under the thread pool. */
    sl_resolved_t **pp = &entries;
    while (*pp) {
        sl_resolved_t *r = *pp;
        if (r->refreshing) {
            uv_cancel((uv_req_t *)&r->req);
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        pthread_mutex_destroy(&r->lock);
        free(r->host);
        free(r);
    }
}
