/* h2c_proxy: a reverse proxy that sends every request it takes (HTTP/1.1,
 * or HTTP/2 when the server speaks it) to one upstream over h2c, through
 * common/http/proxy.c and h2_upstream.c: the next-hop path of the
 * queue-proxy and activator on its own, for the end-to-end tests.
 *   h2c_proxy LISTEN_PORT UPSTREAM_IP UPSTREAM_PORT [MAX_CONNS [TIMEOUT_S [IDLE_MS]]]
 * (IDLE_MS: how long an h2c connection without streams stays open)
 * Prints "listening" once it accepts, and for every request a line
 * "done status=S outcome=O bytes=B". SIGTERM ends it; exit 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h2_upstream.h"
#include "http/proxy.h"
#include "http/server.h"

typedef struct tool {
    uv_loop_t *loop;
    kp_http_server_t server;
    uv_signal_t sigterm;
    kp_upstream_pool_t *pool;
    kp_proxy_opts_t opts;
} tool_t;

static int parse_int(const char *s, const char *what, int min, int max)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < min || v > max) {
        fprintf(stderr, "h2c_proxy: %s=\"%s\": not an integer in %d..%d\n", what, s, min, max);
        exit(2);
    }
    return (int)v;
}

static void on_done(void *ctx, const kp_proxy_result_t *r)
{
    (void)ctx;
    printf("done status=%d outcome=%d bytes=%llu\n", r->status, (int)r->outcome,
           (unsigned long long)r->bytes_sent);
    fflush(stdout);
}

static void on_request(kp_http_request_t *req, void *ctx)
{
    tool_t *t = ctx;
    kp_proxy_edits_t edits = {.append_forwarded_for = 1};
    if (kp_proxy_start(req, t->pool, &t->opts, &edits, req->start_ns, on_done, t) != 0)
        kp_http_conn_respond(req->conn, 503, "text/plain", "out of memory\n", 14);
}

static void on_server_closed(kp_http_server_t *s)
{
    (void)s;
}

static void on_signal_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_sigterm(uv_signal_t *sig, int signum)
{
    tool_t *t = sig->data;
    (void)signum;
    kp_http_server_close(&t->server, on_server_closed);
    kp_upstream_pool_release(t->pool);
    kp_h2c_pool_release(t->opts.h2_pool);
    uv_close((uv_handle_t *)&t->sigterm, on_signal_closed);
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 7) {
        fprintf(stderr, "usage: h2c_proxy LISTEN_PORT UPSTREAM_IP UPSTREAM_PORT [MAX_CONNS "
                        "[TIMEOUT_S [IDLE_MS]]]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    tool_t t = {.loop = uv_default_loop()};
    int port = parse_int(argv[1], "LISTEN_PORT", 1, 65535);
    int up_port = parse_int(argv[3], "UPSTREAM_PORT", 1, 65535);
    int max_conns = argc > 4 ? parse_int(argv[4], "MAX_CONNS", 1, 10000) : 100;
    int timeout_s = argc > 5 ? parse_int(argv[5], "TIMEOUT_S", 0, 3600) : 30;
    t.pool = kp_upstream_pool_for(t.loop, argv[2], up_port, 10);
    t.opts.h2_pool = kp_h2c_pool_for(t.loop, argv[2], up_port, max_conns);
    if (!t.pool || !t.opts.h2_pool) {
        fprintf(stderr, "h2c_proxy: UPSTREAM_IP=\"%s\": not an IP address\n", argv[2]);
        return 2;
    }
    if (argc > 6)
        kp_h2c_pool_set_idle_timeout(t.opts.h2_pool,
                                     (uint64_t)parse_int(argv[6], "IDLE_MS", 1, 3600000));
    t.opts.h2_always = 1;
    t.opts.timeout_ms = (uint64_t)timeout_s * 1000;
    int err = kp_http_server_init(&t.server, t.loop, "127.0.0.1", port, NULL, on_request, &t);
    if (err) {
        fprintf(stderr, "h2c_proxy: cannot listen on port %d: %s\n", port, uv_strerror(err));
        return 1;
    }
    uv_signal_init(t.loop, &t.sigterm);
    t.sigterm.data = &t;
    uv_signal_start(&t.sigterm, on_sigterm, SIGTERM);
    printf("listening\n");
    fflush(stdout);
    uv_run(t.loop, UV_RUN_DEFAULT);
    uv_loop_close(t.loop);
    return 0;
}
