#include "runtime/listener.h"

#define SL_LISTEN_BACKLOG 4096

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

int sl_listener_addr(const sl_hostport_t *addr, struct sockaddr_storage *out)
{
    /* The loader's reading, so that an address that validates is one that binds. */
    return sl_config_listen_addr(addr, out);
}

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
    socklen_t len = ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
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
