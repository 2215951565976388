/* kp_http_conn_send_trailers against a real kp_http_server on 127.0.0.1:
 * HTTP/1.1 chunked responses carry the trailer fields only to a client that
 * sent "TE: trailers" (RFC 9110 §6.5.1), and drop them otherwise; over
 * HTTP/2 (prior knowledge, an nghttp2 client session here) they arrive as a
 * trailing HEADERS frame with lowercase names, after the body, ending the
 * stream. The handler answers every request the same way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "http/server.h"

static const char trailer_lines[] = "Grpc-Status: 0\r\nConnection: close\r\nX-Sum: 42\r\n";

static void on_request(kp_http_request_t *req, void *ctx)
{
    (void)ctx;
    kp_http_conn_send_head(req->conn, 200, "Content-Type: text/plain\r\n", 26, -1);
    kp_http_conn_send_body(req->conn, "hello", 5);
    kp_http_conn_send_trailers(req->conn, trailer_lines, sizeof trailer_lines - 1);
}

typedef struct fixture {
    uv_loop_t loop;
    kp_http_server_t server;
    int port;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    kp_http_server_opts_t o;
    kp_http_server_opts_default(&o);
    assert_int_equal(kp_http_server_init(&f->server, &f->loop, "127.0.0.1", 0, &o, on_request, f),
                     0);
    struct sockaddr_in a;
    int len = sizeof a;
    uv_tcp_getsockname(&f->server.listener, (struct sockaddr *)&a, &len);
    f->port = ntohs(a.sin_port);
    *state = f;
    return 0;
}

static void on_closed(kp_http_server_t *s)
{
    (void)s;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    kp_http_server_close(&f->server, on_closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_loop_close(&f->loop);
    free(f);
    return 0;
}

static int connect_to(const fixture_t *f)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    a.sin_addr.s_addr = htonl(0x7f000001);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Runs the server's loop while reading what it sends, until done(buf)
 * says the answer is complete (or the server closed). */
static size_t exchange(fixture_t *f, int fd, char *buf, size_t cap,
                       int (*done)(const char *buf, const char *fresh, size_t n, void *arg),
                       void *arg)
{
    size_t len = 0;
    for (int i = 0; i < 20000; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        ssize_t n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
        if (n == 0)
            break;
        if (n > 0) {
            len += (size_t)n;
            buf[len] = '\0';
            if (done(buf, buf + len - (size_t)n, (size_t)n, arg))
                break;
        } else {
            usleep(100);
        }
    }
    return len;
}

static int http1_done(const char *buf, const char *fresh, size_t n, void *arg)
{
    (void)fresh;
    (void)n;
    (void)arg;
    return strstr(buf, "\r\n0\r\n") && strstr(strstr(buf, "\r\n0\r\n") + 5, "\r\n\r\n") != NULL;
}

static void http1_with_te_trailers_gets_them(void **state)
{
    fixture_t *f = *state;
    int fd = connect_to(f);
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof req - 1, 0), (ssize_t)sizeof req - 1);
    char buf[4096];
    exchange(f, fd, buf, sizeof buf, http1_done, NULL);
    assert_non_null(strstr(buf, "Transfer-Encoding: chunked\r\n"));
    /* the fields as given; Connection is the handler's to decide here */
    const char *tail = strstr(buf, "\r\n\r\n") + 4;
    assert_string_equal(tail, "5\r\nhello\r\n0\r\nGrpc-Status: 0\r\nConnection: close\r\n"
                              "X-Sum: 42\r\n\r\n");
    close(fd);
}

static void http1_without_te_gets_no_trailers(void **state)
{
    fixture_t *f = *state;
    int fd = connect_to(f);
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof req - 1, 0), (ssize_t)sizeof req - 1);
    char buf[4096];
    exchange(f, fd, buf, sizeof buf, http1_done, NULL);
    const char *tail = strstr(buf, "\r\n\r\n") + 4;
    assert_string_equal(tail, "5\r\nhello\r\n0\r\n\r\n");
    close(fd);
}

/* --- HTTP/2: an nghttp2 client session over the blocking socket --- */

typedef struct h2_client {
    nghttp2_session *s;
    int fd;
    int status;
    char body[64];
    size_t body_len;
    char trailers[256];
    int closed;
} h2_client_t;

static ssize_t client_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
    (void)s;
    (void)flags;
    h2_client_t *c = ud;
    return send(c->fd, data, len, 0);
}

static int client_header(nghttp2_session *s, const nghttp2_frame *fr, const uint8_t *name,
                         size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                         void *ud)
{
    (void)s;
    (void)flags;
    h2_client_t *c = ud;
    if (fr->headers.cat == NGHTTP2_HCAT_RESPONSE && namelen == 7 && !memcmp(name, ":status", 7))
        c->status = atoi((const char *)value);
    else if (fr->headers.cat == NGHTTP2_HCAT_HEADERS) /* the trailing block */
        snprintf(c->trailers + strlen(c->trailers), sizeof c->trailers - strlen(c->trailers),
                 "%.*s=%.*s;", (int)namelen, name, (int)valuelen, value);
    return 0;
}

static int client_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                       size_t len, void *ud)
{
    (void)s;
    (void)flags;
    (void)id;
    h2_client_t *c = ud;
    if (c->body_len + len < sizeof c->body) {
        memcpy(c->body + c->body_len, data, len);
        c->body_len += len;
    }
    return 0;
}

static int client_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    (void)s;
    (void)id;
    (void)code;
    ((h2_client_t *)ud)->closed = 1;
    return 0;
}

static int h2_done(const char *buf, const char *fresh, size_t n, void *arg)
{
    (void)buf;
    h2_client_t *c = arg;
    nghttp2_session_mem_recv(c->s, (const uint8_t *)fresh, n);
    nghttp2_session_send(c->s);
    return c->closed;
}

static void http2_trailers_are_a_trailing_headers_frame(void **state)
{
    fixture_t *f = *state;
    h2_client_t c = {.fd = connect_to(f)};
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, client_send);
    nghttp2_session_callbacks_set_on_header_callback(cbs, client_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, client_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, client_close);
    nghttp2_session *s;
    assert_int_equal(nghttp2_session_client_new(&s, cbs, &c), 0);
    c.s = s;
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0);
    const nghttp2_nv nva[] = {
        {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":path", (uint8_t *)"/", 5, 1, 0},
        {(uint8_t *)":authority", (uint8_t *)"x", 10, 1, 0},
        {(uint8_t *)"te", (uint8_t *)"trailers", 2, 8, 0},
    };
    assert_true(nghttp2_submit_request(s, NULL, nva, 5, NULL, NULL) == 1);
    assert_int_equal(nghttp2_session_send(s), 0);
    /* Each read is handed to the session by h2_done as it comes. */
    char buf[8192];
    exchange(f, c.fd, buf, sizeof buf, h2_done, &c);
    assert_true(c.closed);
    assert_int_equal(c.status, 200);
    assert_int_equal(c.body_len, 5);
    assert_memory_equal(c.body, "hello", 5);
    /* lowercase, and Connection (connection-specific) left out */
    assert_string_equal(c.trailers, "grpc-status=0;x-sum=42;");
    nghttp2_session_del(s);
    close(c.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(http1_with_te_trailers_gets_them, setup, teardown),
        cmocka_unit_test_setup_teardown(http1_without_te_gets_no_trailers, setup, teardown),
        cmocka_unit_test_setup_teardown(http2_trailers_are_a_trailing_headers_frame, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
