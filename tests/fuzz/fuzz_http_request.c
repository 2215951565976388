/* Fuzzes the HTTP/1.1 server (common/http/server.c with llhttp and
 * common/http/head.c) for real: one kp_http_server listens on 127.0.0.1
 * (an ephemeral port) in this process's libuv loop; each input is written
 * by a client connection, which then half-closes and reads every response
 * until the server closes. The server's handler answers in the ways the
 * queue-proxy and activator do, picked by the request's path: buffered,
 * chunked, head+body in one write, early answer without reading the body,
 * paused and resumed body, abort, 101 upgrade to a tunnel that echoes.
 * So parsing, limits (400/414/431), keep-alive, pipelining, body framing,
 * lingering close and the close/free path all run on fuzzed bytes, and
 * ASan's leak check proves every connection is freed. */
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

typedef struct fuzz_req {
    kp_http_conn_t *conn; /* NULL once the response ended or was aborted */
    const char *mode;
    size_t body_bytes;
    int paused_once;
    uv_timer_t resume; /* resumes a paused body on the next loop turn */
} fuzz_req_t;

typedef struct fuzz_http {
    uv_loop_t loop;
    kp_http_server_t server;
    struct sockaddr_in addr;
    fuzz_req_t req; /* one request at a time: one connection per input */
    /* the client side of the current input */
    uv_tcp_t client;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    int client_closed;
    int debug; /* FUZZ_HTTP_DEBUG=1: responses to stderr, to check seeds */
    size_t response_bytes;
    char first_bytes[9];
    char rbuf[64 * 1024];
} fuzz_http_t;

static fuzz_http_t *fz;

static void req_done(fuzz_req_t *r)
{
    r->conn = NULL;
    uv_timer_stop(&r->resume);
}

static void on_resume(uv_timer_t *t)
{
    fuzz_req_t *r = t->data;
    if (r->conn)
        kp_http_conn_read_body(r->conn);
}

static void on_body(void *ctx, const char *data, size_t len)
{
    fuzz_req_t *r = ctx;
    for (size_t i = 0; i < len; i++)
        r->body_bytes += (unsigned char)data[i] != 0xff; /* ASan reads each byte */
    if (strcmp(r->mode, "pause") == 0 && !r->paused_once) {
        r->paused_once = 1;
        kp_http_conn_pause_body(r->conn);
        uv_timer_start(&r->resume, on_resume, 0, 0);
    } else if (strcmp(r->mode, "abort") == 0) {
        kp_http_conn_t *c = r->conn;
        req_done(r);
        kp_http_conn_abort(c);
    }
}

static void on_body_end(void *ctx)
{
    fuzz_req_t *r = ctx;
    char body[64];
    int n = snprintf(body, sizeof body, "got %zu bytes\n", r->body_bytes);
    kp_http_conn_t *c = r->conn;
    req_done(r);
    if (strcmp(r->mode, "stream") == 0) {
        kp_http_conn_send_head(c, 200, "X-Mode: stream\r\n", 16, -1);
        kp_http_conn_send_body(c, body, (size_t)n);
        kp_http_conn_send_body(c, "", 0);
        kp_http_conn_send_body(c, "tail\n", 5);
        kp_http_conn_send_end(c);
    } else if (strcmp(r->mode, "headbody") == 0) {
        kp_http_conn_send_head_body(c, 201, "", 0, n, body, (size_t)n);
        kp_http_conn_send_end(c);
    } else {
        kp_http_conn_respond(c, 200, "text/plain", body, (size_t)n);
    }
}

static void on_abort(void *ctx)
{
    req_done(ctx);
}

static void on_tunnel_data(void *ctx, const char *data, size_t len)
{
    fuzz_req_t *r = ctx;
    if (!r->conn)
        return;
    if (data == NULL) {
        kp_http_conn_t *c = r->conn;
        req_done(r);
        kp_http_conn_shutdown(c);
        return;
    }
    kp_http_conn_send_raw(r->conn, data, len); /* echo */
}

static const kp_http_request_ops_t fuzz_ops = {
    .on_body = on_body,
    .on_body_end = on_body_end,
    .on_abort = on_abort,
    .on_tunnel_data = on_tunnel_data,
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
    fuzz_http_t *f = ctx;
    fuzz_req_t *r = &f->req;
    kp_http_conn_t *c = req->conn;
    /* What handlers read: every header byte (ASan), lookups, tokens. */
    size_t sum = req->url_len + strlen(req->method) + strlen(req->peer_ip);
    for (size_t i = 0; i < req->n_headers; i++) {
        const kp_http_header_t *h = &req->headers[i];
        /* An empty name or value may point just past the parsed bytes:
         * only the bytes a length covers are readable. */
        if (h->name_len == 0 && h->value_len == 0)
            sum++;
        if (h->name_len)
            sum += (unsigned char)h->name[h->name_len - 1];
        if (h->value_len)
            sum += (unsigned char)h->value[h->value_len - 1];
    }
    const kp_http_header_t *conn_h =
        kp_http_header_find(req->headers, req->n_headers, "connection");
    if (conn_h)
        sum += (size_t)kp_http_value_has_token(conn_h->value, conn_h->value_len, "upgrade");
    if (req->url_len > KP_HTTP_MAX_URL || req->n_headers > KP_HTTP_MAX_HEADERS || sum == (size_t)-1)
        abort();

    memset(r, 0, offsetof(fuzz_req_t, resume));
    r->conn = c;
    r->mode = url_has(req, "/stream")     ? "stream"
              : url_has(req, "/headbody") ? "headbody"
              : url_has(req, "/pause")    ? "pause"
              : url_has(req, "/abort")    ? "abort"
                                          : "plain";
    kp_http_conn_bind(c, &fuzz_ops, r);
    if (req->upgrade && url_has(req, "/ws")) {
        kp_http_conn_send_head(c, 101, "Upgrade: websocket\r\nConnection: Upgrade\r\n", 41, 0);
        kp_http_conn_start_tunnel(c);
        return;
    }
    if (url_has(req, "/early")) {
        /* Answered before (or without) reading the body, as a 413 or a
         * breaker's 503 is. */
        req_done(r);
        kp_http_conn_respond(c, 503, "text/plain", "overloaded\n", 11);
        return;
    }
    if (url_has(req, "/204") || url_has(req, "/304")) {
        req_done(r);
        kp_http_conn_respond(c, url_has(req, "/204") ? 204 : 304, "text/plain", "", 0);
        return;
    }
    if (req->has_body) {
        kp_http_conn_read_body(c);
        return;
    }
    on_body_end(r);
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
    size_t have = fz->response_bytes < 8 ? fz->response_bytes : 8;
    size_t take = (size_t)nread < 8 - have ? (size_t)nread : 8 - have;
    memcpy(fz->first_bytes + have, buf->base, take);
    fz->response_bytes += (size_t)nread;
    if (fz->debug)
        fwrite(buf->base, 1, (size_t)nread, stderr);
}

static void client_write_done(uv_write_t *w, int status) {}

static void client_shutdown_done(uv_shutdown_t *s, int status) {}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz = calloc(1, sizeof *fz);
    fz->debug = getenv("FUZZ_HTTP_DEBUG") != NULL;
    uv_loop_init(&fz->loop);
    kp_http_server_opts_t opts;
    kp_http_server_opts_default(&opts);
    opts.header_timeout_ms = 2000; /* only a stuck server waits this long */
    opts.keepalive_timeout_ms = 2000;
    if (kp_http_server_init(&fz->server, &fz->loop, "127.0.0.1", 0, &opts, on_request, fz) != 0) {
        fprintf(stderr, "fuzz_http_request: cannot listen on 127.0.0.1\n");
        exit(1);
    }
    int len = sizeof fz->addr;
    uv_tcp_getsockname(&fz->server.listener, (struct sockaddr *)&fz->addr, &len);
    uv_timer_init(&fz->loop, &fz->req.resume);
    fz->req.resume.data = &fz->req;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = -1;
    for (int attempt = 0; fd < 0; attempt++) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&fz->addr, sizeof fz->addr) == 0)
            break;
        perror("fuzz_http_request: connect");
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
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)size);
    if (size > 0)
        uv_write(&fz->write_req, (uv_stream_t *)&fz->client, &b, 1, client_write_done);
    uv_shutdown(&fz->shutdown_req, (uv_stream_t *)&fz->client, client_shutdown_done);
    uv_read_start((uv_stream_t *)&fz->client, client_alloc, client_read);
    /* Until the server has closed (and freed) its side and the client has
     * read everything up to that close. */
    while (!fz->client_closed || fz->server.n_conns > 0)
        uv_run(&fz->loop, UV_RUN_ONCE);
    /* Whatever the server sends starts with a status line (an error, a
     * 100 Continue, a 101 before a tunnel). */
    if (fz->response_bytes >= 8 && memcmp(fz->first_bytes, "HTTP/1.1", 8) != 0)
        abort();
    return 0;
}
