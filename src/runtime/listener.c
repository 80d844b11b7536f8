#include "runtime/listener.h"

#define SL_LISTEN_BACKLOG 4096

#include "base/common.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int sl_listener_addr(const sl_hostport_t *addr, struct sockaddr_storage *out)
{
    /* The loader's reading, so that an address that validates is one that binds. */
    return sl_config_listen_addr(addr, out);
}

static socklen_t addr_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

int sl_listener_probe(const sl_hostport_t *addr, int udp)
{
    struct sockaddr_storage ss;
    int rc = sl_listener_addr(addr, &ss);
    if (rc != 0) return rc;
    int fd = socket(ss.ss_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    /* TCP: SO_REUSEADDR as the real sockets have it, so that connections of an earlier
     * instance in TIME_WAIT, or accepted ones still open, do not count: only a listener does.
     * UDP: none, because two UDP sockets that both set SO_REUSEADDR share the address, and
     * sluice's own UDP listeners set it. Never SO_REUSEPORT: that is what would let the probe
     * join another process's group. IPV6_V6ONLY as the real sockets. */
    if (!udp) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    rc = bind(fd, (struct sockaddr *)&ss, addr_len(&ss)) != 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* ---- addresses this process holds ------------------------------------------------------ */

typedef struct held {
    int udp;
    struct sockaddr_storage ss;
    unsigned count;
} held_t;

static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static held_t *held;
static size_t n_held;

static uint16_t ss_port(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
                                    : ((const struct sockaddr_in6 *)ss)->sin6_port;
}

static int ss_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static int ss_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
                   sizeof(struct in6_addr));
}

void sl_listener_hold(int udp, const struct sockaddr_storage *where, int delta)
{
    struct sockaddr_storage ss = *where;
    pthread_mutex_lock(&held_lock);
    size_t i = 0;
    while (i < n_held && !(held[i].udp == udp && held[i].ss.ss_family == ss.ss_family &&
                           ss_port(&held[i].ss) == ss_port(&ss) && ss_same_ip(&held[i].ss, &ss)))
        i++;
    if (delta > 0) {
        if (i == n_held) {
            held = sl_xrealloc(held, (n_held + 1) * sizeof(*held));
            held[n_held++] = (held_t){.udp = udp, .ss = ss, .count = 0};
        }
        held[i].count++;
    } else if (i < n_held && --held[i].count == 0) {
        held[i] = held[--n_held];
        if (!n_held) {
            free(held);
            held = NULL;
        }
    }
    pthread_mutex_unlock(&held_lock);
}

int sl_listener_held(int udp, const sl_hostport_t *addr)
{
    struct sockaddr_storage ss;
    if (sl_listener_addr(addr, &ss) != 0) return 0;
    int found = 0;
    pthread_mutex_lock(&held_lock);
    /* The kernel's own notion of a clash: the same port and family, and the same address or
     * a wildcard on either side. */
    for (size_t i = 0; i < n_held && !found; i++)
        found = held[i].udp == udp && held[i].ss.ss_family == ss.ss_family && ss_port(&held[i].ss) == ss_port(&ss) &&
                (ss_same_ip(&held[i].ss, &ss) || ss_wildcard(&held[i].ss) || ss_wildcard(&ss));
    pthread_mutex_unlock(&held_lock);
    return found;
}

/* ---- sockets ----------------------------------------------------------------------------- */

/* Returns a bound, not yet listening, socket for addr, or a negative error. */
static int bound_socket(const sl_hostport_t *addr, int reuseport)
{
    struct sockaddr_storage ss;
    int rc = sl_listener_addr(addr, &ss);
    if (rc != 0) return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, addr_len(&ss)) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int sl_listener_prepare(const sl_hostport_t *addr)
{
    int fd = bound_socket(addr, 1);
    if (fd < 0) return fd;
    if (listen(fd, SL_LISTEN_BACKLOG) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int sl_listener_adopt(uv_loop_t *loop, uv_tcp_t *tcp, int fd, uv_connection_cb cb)
{
    uv_tcp_init(loop, tcp);
    int rc = uv_tcp_open(tcp, fd);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    return uv_listen((uv_stream_t *)tcp, SL_LISTEN_BACKLOG, cb);
}

int sl_listener_open(uv_loop_t *loop, uv_tcp_t *tcp, const sl_hostport_t *addr, int reuseport, uv_connection_cb cb)
{
    uv_tcp_init(loop, tcp);
    int fd = bound_socket(addr, reuseport);
    if (fd < 0) return fd;
    int rc;
    if ((rc = uv_tcp_open(tcp, fd)) != 0) {
        close(fd);
        return rc;
    }
    return uv_listen((uv_stream_t *)tcp, SL_LISTEN_BACKLOG, cb);
}
