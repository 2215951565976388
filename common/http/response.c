/* The response side of an HTTP/1.1 server connection: status line and
 * head (with the framing and Connection it decides), bodies chunked or
 * sized, tunnels after a 101, and the handler's ways to end early. */
#include <stdio.h>
#include <string.h>

#include "h2.h"
#include "server.h"
#include "server_internal.h"

static size_t status_line(char *out, int status)
{
    return (size_t)sprintf(out, "HTTP/1.1 %d %s\r\n", status, kp_http_reason(status));
}

/* Whether this response ends the connection, decided before its head goes
 * out so the head can say so. */
static int conn_closes_after(kp_http_conn_t *c, int status)
{
    /* An upgrade the handler declined: llhttp cannot parse on after it. */
    if (c->req.upgrade && status != 101)
        c->keep_alive = 0;
    /* Answered without reading the body, whose rest cannot be told apart
     * from a next request. */
    if (c->req.has_body && !c->body_done && !c->body_wanted)
        c->keep_alive = 0;
    return !c->keep_alive || !c->server->accepting;
}

/* Fills bufs[0..3] with the response head; line and framing are the
 * caller's scratch space (96 and 80 bytes). Returns 0, or -1 when no head
 * may be sent now. */
static int head_bufs(kp_http_conn_t *c, int status, const char *extra, size_t extra_len,
                     int64_t content_length, char *line, char *framing, uv_buf_t *bufs)
{
    if (c->state != CONN_IN_REQUEST || c->response_started)
        return -1;
    size_t framing_len = 0;
    c->response_started = status >= 200 || status == 101;
    if (status == 101) {
        framing_len = 0;
    } else if (content_length >= 0) {
        framing_len = (size_t)sprintf(framing, "Content-Length: %lld\r\n", (long long)content_length);
    } else if (content_length == -1) {
        if (c->req.http_minor >= 1) {
            c->response_chunked = 1;
            memcpy(framing, "Transfer-Encoding: chunked\r\n", 28);
            framing_len = 28;
        } else {
            c->keep_alive = 0;
        }
    } else {
        c->response_no_body = 1;
    }
    if (c->req.method_id == HTTP_HEAD || status == 204 || status == 304) {
        c->response_no_body = 1;
        c->response_chunked = 0;
    }
    int closing = conn_closes_after(c, status);
    if (closing && status != 101) {
        memcpy(framing + framing_len, "Connection: close\r\n", 19);
        framing_len += 19;
    }
    bufs[0] = uv_buf_init(line, (unsigned)status_line(line, status));
    bufs[1] = uv_buf_init((char *)extra, (unsigned)extra_len);
    bufs[2] = uv_buf_init(framing, (unsigned)framing_len);
    bufs[3] = uv_buf_init("\r\n", 2);
    return 0;
}

/* Appends one body piece, framed, to bufs; returns how many were added
 * (size is scratch space of 20 bytes). */
static unsigned body_bufs(kp_http_conn_t *c, const char *data, size_t len, char *size,
                          uv_buf_t *bufs)
{
    if (len == 0 || c->response_no_body)
        return 0;
    if (!c->response_chunked) {
        bufs[0] = uv_buf_init((char *)data, (unsigned)len);
        return 1;
    }
    bufs[0] = uv_buf_init(size, (unsigned)sprintf(size, "%zx\r\n", len));
    bufs[1] = uv_buf_init((char *)data, (unsigned)len);
    bufs[2] = uv_buf_init("\r\n", 2);
    return 3;
}

void kp_http_conn_send_head(kp_http_conn_t *c, int status, const char *extra, size_t extra_len,
                            int64_t content_length)
{
    if (c->h2s) {
        kp_h2_stream_send_head(c->h2s, status, extra, extra_len, content_length, NULL, 0);
        return;
    }
    char line[96], framing[80];
    uv_buf_t bufs[4];
    if (head_bufs(c, status, extra, extra_len, content_length, line, framing, bufs) == 0)
        kp_conn_write(c, bufs, 4);
}

void kp_http_conn_send_head_body(kp_http_conn_t *c, int status, const char *extra,
                                 size_t extra_len, int64_t content_length, const char *data,
                                 size_t len)
{
    if (c->h2s) {
        kp_h2_stream_send_head(c->h2s, status, extra, extra_len, content_length, data, len);
        return;
    }
    char line[96], framing[80], size[20];
    uv_buf_t bufs[7];
    if (head_bufs(c, status, extra, extra_len, content_length, line, framing, bufs) != 0)
        return;
    kp_conn_write(c, bufs, 4 + body_bufs(c, data, len, size, bufs + 4));
}

void kp_http_conn_send_body(kp_http_conn_t *c, const char *data, size_t len)
{
    if (c->h2s) {
        kp_h2_stream_send_body(c->h2s, data, len);
        return;
    }
    if (c->state != CONN_IN_REQUEST)
        return;
    char size[20];
    uv_buf_t bufs[3];
    unsigned n = body_bufs(c, data, len, size, bufs);
    if (n)
        kp_conn_write(c, bufs, n);
}

void kp_http_conn_send_end(kp_http_conn_t *c)
{
    if (c->h2s) {
        kp_h2_stream_send_end(c->h2s, NULL, 0);
        return;
    }
    if (c->state != CONN_IN_REQUEST || c->response_done)
        return;
    if (c->response_chunked) {
        uv_buf_t b = uv_buf_init("0\r\n\r\n", 5);
        kp_conn_write(c, &b, 1);
    }
    kp_conn_response_ended(c);
}

void kp_http_conn_send_trailers(kp_http_conn_t *c, const char *lines, size_t len)
{
    if (c->h2s) {
        kp_h2_stream_send_end(c->h2s, lines, len);
        return;
    }
    if (c->state != CONN_IN_REQUEST || c->response_done)
        return;
    /* RFC 9110 §6.5.1: trailer fields only to a client that said it
     * takes them (TE: trailers); without, they may be dropped. */
    if (c->response_chunked && len &&
        kp_http_head_has_token(c->req.headers, c->req.n_headers, "te", "trailers")) {
        uv_buf_t bufs[3] = {uv_buf_init("0\r\n", 3), uv_buf_init((char *)lines, (unsigned)len),
                            uv_buf_init("\r\n", 2)};
        kp_conn_write(c, bufs, 3);
        c->response_chunked = 0; /* the last chunk went out */
    }
    kp_http_conn_send_end(c);
}

void kp_http_conn_respond(kp_http_conn_t *c, int status, const char *content_type,
                          const char *body, size_t body_len)
{
    if (c->h2s) {
        kp_h2_stream_respond(c->h2s, status, content_type, body, body_len);
        return;
    }
    if (c->state != CONN_IN_REQUEST || c->response_started)
        return;
    char head[256];
    int closing = conn_closes_after(c, status);
    /* RFC 9110 §6.4.1: 204 and 304 carry no body and no length. */
    int bodiless_status = status == 204 || status == 304;
    char length[40] = "";
    if (!bodiless_status)
        snprintf(length, sizeof length, "Content-Length: %zu\r\n", body_len);
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%s\r\n",
                     status, kp_http_reason(status), content_type, length,
                     closing ? "Connection: close\r\n" : "");
    c->response_started = 1;
    int no_body = c->req.method_id == HTTP_HEAD || bodiless_status;
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)n), uv_buf_init((char *)body, no_body ? 0 : (unsigned)body_len)};
    kp_conn_write(c, bufs, 2);
    kp_conn_response_ended(c);
}

void kp_http_conn_start_tunnel(kp_http_conn_t *c)
{
    if (c->state != CONN_IN_REQUEST || c->h2s) /* no tunnel over a stream */
        return;
    c->state = CONN_TUNNEL;
    c->keep_alive = 0;
    size_t residue = c->rlen - c->rpos;
    if (residue && c->ops && c->ops->on_tunnel_data)
        c->ops->on_tunnel_data(c->ctx, c->rbuf + c->rpos, residue);
    kp_conn_drop_read_buffer(c);
    kp_conn_update_reading(c);
}

void kp_http_conn_send_raw(kp_http_conn_t *c, const char *data, size_t len)
{
    if (c->h2s)
        return;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    kp_conn_write(c, &b, 1);
}

void kp_http_conn_shutdown(kp_http_conn_t *c)
{
    if (c->state != CONN_TUNNEL || c->h2s)
        return;
    c->ops = NULL;
    kp_conn_finish_and_close(c);
}

void kp_http_conn_pause_tunnel(kp_http_conn_t *c)
{
    if (c->h2s)
        return;
    c->tunnel_paused = 1;
    kp_conn_update_reading(c);
}

void kp_http_conn_resume_tunnel(kp_http_conn_t *c)
{
    if (c->h2s)
        return;
    c->tunnel_paused = 0;
    kp_conn_update_reading(c);
}

void kp_http_conn_abort(kp_http_conn_t *c)
{
    if (c->h2s) {
        kp_h2_stream_reset(c->h2s, KP_H2_INTERNAL_ERROR);
        return;
    }
    c->ops = NULL;
    kp_conn_close(c);
}

void kp_http_conn_reset(kp_http_conn_t *c, uint32_t h2_error)
{
    if (c->h2s)
        kp_h2_stream_reset(c->h2s, h2_error);
    else
        kp_http_conn_abort(c);
}

int kp_http_conn_is_h2(const kp_http_conn_t *c)
{
    return c->h2s != NULL;
}

