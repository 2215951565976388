/* Fuzzes the HTTP/2 server (common/http/h2_session.c, h2_stream.c,
 * h2_fields.c over nghttp2) for real: one kp_http_server listens on
 * 127.0.0.1 in this process's libuv loop; each input, after the client
 * preface this target adds, is written by a client connection as HTTP/2
 * frames, which then half-closes and reads until the server closes. The
 * handler answers each stream in the ways the queue-proxy and activator do,
 * picked by its path: whole, streamed with trailers, head+body, paused and
 * resumed body, abort, reset, answered early, bodiless. So frame parsing,
 * the request head, flow control, the stream and connection ends and every
 * free path run on fuzzed frames, and ASan's leak check proves every stream
 * and session is freed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "http/server.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

typedef struct fuzz_req {
    struct fuzz_req *next, *prev; /* the live requests */
    kp_http_conn_t *conn;
    const char *mode;
    size_t body_bytes;
    int paused; /* waiting on the resume timer */
    int paused_once;
} fuzz_req_t;

typedef struct fuzz_h2 {
    uv_loop_t loop;
    kp_http_server_t server;
    struct sockaddr_in addr;
    fuzz_req_t *reqs;
    uv_timer_t resume; /* resumes paused bodies on the next loop turn */
    uv_tcp_t client;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    int client_closed;
    size_t response_bytes;
    unsigned char first_bytes[9];
    char rbuf[64 * 1024];
} fuzz_h2_t;

static fuzz_h2_t *fz;

static void req_free(fuzz_req_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        fz->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    free(r);
}

static void on_resume(uv_timer_t *t)
{
    for (fuzz_req_t *r = fz->reqs, *next; r; r = next) {
        next = r->next;
        if (r->paused) {
            r->paused = 0;
            kp_http_conn_read_body(r->conn); /* may end it: next kept */
        }
    }
}

static void finish(fuzz_req_t *r)
{
    char body[64];
    int n = snprintf(body, sizeof body, "got %zu bytes\n", r->body_bytes);
    kp_http_conn_t *c = r->conn;
    const char *mode = r->mode;
    req_free(r);
    kp_http_conn_bind(c, NULL, NULL);
    if (strcmp(mode, "stream") == 0) {
        kp_http_conn_send_head(c, 200, "X-Mode: stream\r\nConnection: close\r\n", 35, -1);
        kp_http_conn_send_body(c, body, (size_t)n);
        kp_http_conn_send_body(c, "", 0);
        kp_http_conn_send_body(c, "tail\n", 5);
        kp_http_conn_send_trailers(c, "Grpc-Status: 0\r\nX-Trailer: t\r\n", 30);
    } else if (strcmp(mode, "headbody") == 0) {
        kp_http_conn_send_head_body(c, 201, "", 0, n, body, (size_t)n);
        kp_http_conn_send_end(c);
    } else {
        kp_http_conn_respond(c, 200, "text/plain", body, (size_t)n);
    }
}

static void on_body(void *ctx, const char *data, size_t len)
{
    fuzz_req_t *r = ctx;
    for (size_t i = 0; i < len; i++)
        r->body_bytes += (unsigned char)data[i] != 0xff; /* ASan reads each byte */
    if (strcmp(r->mode, "pause") == 0 && !r->paused_once) {
        r->paused_once = r->paused = 1;
        kp_http_conn_pause_body(r->conn);
        uv_timer_start(&fz->resume, on_resume, 0, 0);
    } else if (strcmp(r->mode, "abort") == 0 || strcmp(r->mode, "reset") == 0) {
        kp_http_conn_t *c = r->conn;
        int reset = strcmp(r->mode, "reset") == 0;
        req_free(r);
        if (reset)
            kp_http_conn_reset(c, KP_H2_CANCEL);
        else
            kp_http_conn_abort(c);
    }
}

static void on_body_end(void *ctx)
{
    finish(ctx);
}

static void on_writable(void *ctx)
{
    fuzz_req_t *r = ctx;
    (void)kp_http_conn_write_queue(r->conn);
}

static void on_abort(void *ctx)
{
    req_free(ctx);
}

static const kp_http_request_ops_t fuzz_ops = {
    .on_body = on_body,
    .on_body_end = on_body_end,
    .on_writable = on_writable,
    .on_abort = on_abort,
};

static int url_has(const kp_http_request_t *req, const char *word)
{
    size_t wl = strlen(word);
    for (size_t i = 0; i + wl <= req->url_len; i++)
        if (memcmp(req->url + i, word, wl) == 0)
            return 1;
    return 0;
}

static void on_request(kp_http_request_t *req, void *ctx)
{
    kp_http_conn_t *c = req->conn;
    /* What handlers read: every header byte (ASan), the host, lookups. */
    size_t sum = req->url_len + req->target_len + strlen(req->method) + strlen(req->peer_ip);
    for (size_t i = 0; i < req->n_headers; i++) {
        const kp_http_header_t *h = &req->headers[i];
        for (size_t k = 0; k < h->name_len; k++)
            sum += (unsigned char)h->name[k];
        for (size_t k = 0; k < h->value_len; k++)
            sum += (unsigned char)h->value[k];
    }
    for (size_t k = 0; k < req->host_len; k++)
        sum += (unsigned char)req->host[k];
    if (!kp_http_conn_is_h2(c) || req->http_major != 2 || req->upgrade ||
        req->url_len > KP_HTTP_MAX_URL || req->n_headers > KP_HTTP_MAX_HEADERS || sum == (size_t)-1)
        abort();
    if (url_has(req, "/early")) {
        kp_http_conn_respond(c, 503, "text/plain", "overloaded\n", 11);
        return;
    }
    if (url_has(req, "/204")) {
        kp_http_conn_send_head(c, 204, NULL, 0, -2);
        kp_http_conn_send_end(c);
        return;
    }
    fuzz_req_t *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->conn = c;
    r->mode = url_has(req, "/stream")     ? "stream"
              : url_has(req, "/headbody") ? "headbody"
              : url_has(req, "/pause")    ? "pause"
              : url_has(req, "/abort")    ? "abort"
              : url_has(req, "/reset")    ? "reset"
                                          : "plain";
    r->next = fz->reqs;
    if (fz->reqs)
        fz->reqs->prev = r;
    fz->reqs = r;
    kp_http_conn_bind(c, &fuzz_ops, r);
    if (req->has_body) {
        kp_http_conn_read_body(c);
        return;
    }
    finish(r);
}

/* --- the client --- */

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = fz->rbuf;
    buf->len = sizeof fz->rbuf;
}

static void client_closed(uv_handle_t *h)
{
    fz->client_closed = 1;
}

static void client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0) {
        uv_close((uv_handle_t *)s, client_closed);
        return;
    }
    size_t have = fz->response_bytes < 9 ? fz->response_bytes : 9;
    size_t take = (size_t)nread < 9 - have ? (size_t)nread : 9 - have;
    memcpy(fz->first_bytes + have, buf->base, take);
    fz->response_bytes += (size_t)nread;
}

static void client_write_done(uv_write_t *w, int status) {}

static void client_shutdown_done(uv_shutdown_t *s, int status) {}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz = calloc(1, sizeof *fz);
    uv_loop_init(&fz->loop);
    kp_http_server_opts_t opts;
    kp_http_server_opts_default(&opts);
    opts.header_timeout_ms = 2000; /* only a stuck server waits this long */
    opts.keepalive_timeout_ms = 2000;
    if (kp_http_server_init(&fz->server, &fz->loop, "127.0.0.1", 0, &opts, on_request, fz) != 0) {
        fprintf(stderr, "fuzz_h2_server: cannot listen on 127.0.0.1\n");
        exit(1);
    }
    int len = sizeof fz->addr;
    uv_tcp_getsockname(&fz->server.listener, (struct sockaddr *)&fz->addr, &len);
    uv_timer_init(&fz->loop, &fz->resume);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = -1;
    for (int attempt = 0; fd < 0; attempt++) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&fz->addr, sizeof fz->addr) == 0)
            break;
        perror("fuzz_h2_server: connect");
        close(fd);
        fd = -1;
        if (attempt == 50)
            abort(); /* out of ephemeral ports, most likely */
        usleep(100 * 1000);
    }
    fz->client_closed = 0;
    fz->response_bytes = 0;
    memset(fz->first_bytes, 0, sizeof fz->first_bytes);
    uv_tcp_init(&fz->loop, &fz->client);
    uv_tcp_open(&fz->client, fd);
    uv_buf_t b[2] = {uv_buf_init((char *)preface, sizeof preface - 1),
                     uv_buf_init((char *)data, (unsigned)size)};
    uv_write(&fz->write_req, (uv_stream_t *)&fz->client, b, size ? 2 : 1, client_write_done);
    uv_shutdown(&fz->shutdown_req, (uv_stream_t *)&fz->client, client_shutdown_done);
    uv_read_start((uv_stream_t *)&fz->client, client_alloc, client_read);
    while (!fz->client_closed || fz->server.n_conns > 0)
        uv_run(&fz->loop, UV_RUN_ONCE);
    /* The session's own handle closes a turn after the connection's. */
    uv_run(&fz->loop, UV_RUN_NOWAIT);
    uv_run(&fz->loop, UV_RUN_NOWAIT);
    if (fz->reqs)
        abort(); /* a request the engine neither ended nor aborted */
    /* The server speaks first, and with its SETTINGS (RFC 9113 §3.4). */
    if (fz->response_bytes >= 9 && fz->first_bytes[3] != 0x4)
        abort();
    return 0;
}
