/* The listening socket of an HTTP server: bind (optionally SO_REUSEPORT),
 * accept, and on stop take in what the kernel had queued; the connections
 * themselves are server.c's. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"
#include "server_internal.h"

static void on_connection(uv_stream_t *listener, int status)
{
    kp_http_server_t *s = listener->data;
    if (status < 0)
        return;
    kp_http_conn_t *c = kp_http_conn_new(s);
    if (!c)
        return;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        kp_conn_close(c);
        return;
    }
    kp_http_conn_accepted(c);
}

/* Takes in what the kernel queued on the listener. Linux does not move a
 * closing SO_REUSEPORT listener's queue to the others (unless
 * net.ipv4.tcp_migrate_req is on): every connection left there is reset. */
static void accept_backlog(kp_http_server_t *s)
{
    uv_os_fd_t lfd;
    if (uv_fileno((uv_handle_t *)&s->listener, &lfd) != 0)
        return;
    for (;;) {
        /* Single-threaded: no spawn can run before FD_CLOEXEC is set;
         * uv_tcp_open makes it non-blocking. */
        int fd = accept(lfd, NULL, NULL);
        if (fd >= 0)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN: the queue is empty */
        }
        kp_http_conn_t *c = kp_http_conn_new(s);
        if (!c) {
            close(fd);
            continue;
        }
        if (uv_tcp_open(&c->tcp, fd) != 0) {
            close(fd);
            kp_conn_close(c);
            continue;
        }
        kp_http_conn_accepted(c);
    }
}

/* libuv 1.44 has no UV_TCP_REUSEPORT: make the socket, then hand it over. */
static int bind_reuse_port(uv_tcp_t *listener, const struct sockaddr *addr)
{
    socklen_t len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                : sizeof(struct sockaddr_in);
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, addr, len) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    int err = uv_tcp_open(listener, fd);
    if (err)
        close(fd);
    return err;
}

int kp_http_server_init(kp_http_server_t *s, uv_loop_t *loop, const char *host, int port,
                        const kp_http_server_opts_t *opts, kp_http_request_cb on_request,
                        void *ctx)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->on_request = on_request;
    s->ctx = ctx;
    if (opts)
        s->opts = *opts;
    else
        kp_http_server_opts_default(&s->opts);
    struct sockaddr_storage addr;
    int err = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (err)
        err = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    if (err)
        return err;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    if (s->opts.reuse_port)
        err = bind_reuse_port(&s->listener, (struct sockaddr *)&addr);
    else
        err = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
    if (!err)
        err = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
    if (err) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        return err;
    }
    s->accepting = 1;
    return 0;
}

void kp_http_server_stop_accepting(kp_http_server_t *s)
{
    if (!s->accepting)
        return;
    s->accepting = 0;
    if (s->opts.reuse_port)
        accept_backlog(s);
    uv_close((uv_handle_t *)&s->listener, NULL);
}

