/* HTTP/1.1 and HTTP/2 (h2c) server side: accepts connections, parses
 * requests with llhttp, hands each request head to a handler, streams the
 * request body to it on demand and writes the response it produces (framed
 * with Content-Length or chunked), with keep-alive, pipelining (one request
 * at a time) and upgrade tunnels. Malformed requests get 400/414/431 and the
 * connection closes.
 *
 * The same listener takes HTTP/2 over cleartext with prior knowledge (the
 * connection starts with the client preface) and HTTP/1.1's Upgrade: h2c.
 * Each HTTP/2 stream is handed over as a request of its own, with
 * http_major 2 and a req->conn of its own: every kp_http_conn_* call below
 * works on that stream alone (an abort resets the stream, not the
 * connection; write_queue and on_writable are the stream's). */
#ifndef KP_HTTP_SERVER_H
#define KP_HTTP_SERVER_H

#include <stdint.h>
#include <uv.h>

#include "base/clock.h"
#include "head.h"

typedef struct kp_http_server kp_http_server_t;
typedef struct kp_http_conn kp_http_conn_t;

typedef struct kp_http_request {
    kp_http_conn_t *conn;
    const char *method; /* e.g. "GET" (static string) */
    int method_id;      /* llhttp_method_t */
    /* The request-target as an origin server reads it: origin-form ("/a?b")
     * or "*", also when it came in absolute-form (RFC 9112 §3.2.2). */
    const char *url;
    size_t url_len;
    const char *target; /* the request-target as received */
    size_t target_len;
    /* The target's host: an absolute-form target's authority, which
     * replaces Host (RFC 9112 §3.2.2), else the Host value; NULL when
     * neither (HTTP/1.0 may have no Host). */
    const char *host;
    size_t host_len;
    uint8_t http_major, http_minor;
    const kp_http_header_t *headers;
    size_t n_headers;
    int64_t content_length; /* -1 when chunked or absent */
    int has_body;
    /* The body's length is not known ahead: HTTP/1.1 chunked, or an
     * HTTP/2 request with a body and no content-length. */
    int chunked;
    int upgrade; /* the client asked for a protocol upgrade (HTTP/1 only) */
    uint64_t start_ns;
    const char *peer_ip; /* client address, text */
    int peer_port;
} kp_http_request_t;

/* The handler's callbacks for one request; none is called after the
 * response ended or after on_abort. */
typedef struct kp_http_request_ops {
    void (*on_body)(void *ctx, const char *data, size_t len);
    void (*on_body_end)(void *ctx);
    /* The connection's write queue fell below the low-water mark. */
    void (*on_writable)(void *ctx);
    /* The connection is gone (client left, write error, server closing);
     * for an HTTP/2 stream also: the client reset the stream (RST_STREAM),
     * or the connection ended (GOAWAY on an error, EOF). */
    void (*on_abort)(void *ctx);
    /* Tunnel data from the client after an upgrade (data NULL, len 0: EOF). */
    void (*on_tunnel_data)(void *ctx, const char *data, size_t len);
} kp_http_request_ops_t;

typedef void (*kp_http_request_cb)(kp_http_request_t *req, void *server_ctx);

/* One bound on the connections of several listeners together (a program
 * with two traffic ports has one descriptor and memory budget for both).
 * Owned by the caller, outliving every server that points at it. */
typedef struct kp_http_conn_budget {
    size_t max_connections; /* over it: refuse, whichever listener took it */
    size_t n_conns;         /* open on every server sharing the budget */
} kp_http_conn_budget_t;

typedef struct kp_http_server_opts {
    uint64_t header_timeout_ms;    /* time to receive a whole request head */
    uint64_t keepalive_timeout_ms; /* idle time between requests */
    size_t max_connections;        /* over it: refuse (close at once) */
    /* HTTP/2: a stream whose response waits this long for the client's
     * flow-control window is reset (CANCEL), so a client that stops
     * reading holds nothing for ever. */
    uint64_t stall_timeout_ms;
    /* SO_REUSEPORT: several processes share the port (a restart with no
     * gap). Stopping to accept then first takes in every connection the
     * kernel already queued on this listener: closing a listener resets
     * them, they are not handed to the others. */
    int reuse_port;
    /* NULL: max_connections bounds this server alone. Otherwise the
     * budget's bound holds for every server given the same budget, and
     * max_connections is unused. */
    kp_http_conn_budget_t *budget;
} kp_http_server_opts_t;

struct kp_http_server {
    uv_tcp_t listener;
    uv_loop_t *loop;
    kp_http_request_cb on_request;
    void *ctx;
    kp_http_server_opts_t opts;
    size_t n_conns;
    size_t peak_conns; /* since memory was last handed back */
    kp_http_conn_t *conns; /* every open connection, for shutdown */
    int accepting;
    void (*on_closed)(kp_http_server_t *s); /* after kp_http_server_close */
};

/* Binds host:port (port 0 is an error here) and starts accepting. */
int kp_http_server_init(kp_http_server_t *s, uv_loop_t *loop, const char *host, int port,
                        const kp_http_server_opts_t *opts, kp_http_request_cb on_request,
                        void *ctx);
void kp_http_server_opts_default(kp_http_server_opts_t *o);
/* Stops accepting new connections; existing ones go on (with reuse_port,
 * connections already queued on the listener are taken in first). */
void kp_http_server_stop_accepting(kp_http_server_t *s);
/* Closes idle keep-alive connections now and every other one when its
 * current response ends. HTTP/2 connections drain gracefully: a GOAWAY
 * shutdown notice, then (after a PING round trip, or 1 s) the GOAWAY
 * naming the last stream taken; the streams taken finish, and the
 * connection closes when none is left. */
void kp_http_server_close_idle(kp_http_server_t *s);
/* Number of connections with a request in progress (an HTTP/2 connection
 * counts while it has a stream open). */
size_t kp_http_server_busy(const kp_http_server_t *s);
/* Closes the listener and every connection; on_closed runs when all are. */
void kp_http_server_close(kp_http_server_t *s, void (*on_closed)(kp_http_server_t *s));

/* --- the handler's side of one request --- */
void kp_http_conn_bind(kp_http_conn_t *c, const kp_http_request_ops_t *ops, void *ctx);
/* Starts (or resumes) delivering the request body to ops->on_body. */
void kp_http_conn_read_body(kp_http_conn_t *c);
void kp_http_conn_pause_body(kp_http_conn_t *c);
/* Response: head, then body pieces, then end. content_length -1 means
 * chunked (HTTP/1.1) or close-delimited (HTTP/1.0). extra is raw header
 * lines ("Name: value\r\n"...), already valid. */
void kp_http_conn_send_head(kp_http_conn_t *c, int status, const char *extra, size_t extra_len,
                            int64_t content_length);
/* Head and first body piece in one write (one syscall for small responses). */
void kp_http_conn_send_head_body(kp_http_conn_t *c, int status, const char *extra,
                                 size_t extra_len, int64_t content_length, const char *data,
                                 size_t len);
void kp_http_conn_send_body(kp_http_conn_t *c, const char *data, size_t len);
void kp_http_conn_send_end(kp_http_conn_t *c);
/* Ends the response with trailer fields (raw "Name: value\r\n" lines),
 * in place of kp_http_conn_send_end. HTTP/2: a trailing HEADERS frame
 * (names lowercased, connection-specific fields dropped). HTTP/1.1: the
 * fields follow the last chunk of a chunked response only when the client
 * sent "TE: trailers"; otherwise (or when the response is not chunked)
 * they are dropped and the response just ends. */
void kp_http_conn_send_trailers(kp_http_conn_t *c, const char *lines, size_t len);
/* A whole small response in one write. */
void kp_http_conn_respond(kp_http_conn_t *c, int status, const char *content_type, const char *body,
                          size_t body_len);
/* After sending a 101 head: raw bytes both ways from now on. */
void kp_http_conn_start_tunnel(kp_http_conn_t *c);
void kp_http_conn_send_raw(kp_http_conn_t *c, const char *data, size_t len);
/* Tunnel: no more bytes to the client (half close). */
void kp_http_conn_shutdown(kp_http_conn_t *c);
void kp_http_conn_pause_tunnel(kp_http_conn_t *c);
void kp_http_conn_resume_tunnel(kp_http_conn_t *c);
/* Ends the connection now (a response cut midway); on an HTTP/2 stream,
 * resets that stream alone (RST_STREAM INTERNAL_ERROR). */
void kp_http_conn_abort(kp_http_conn_t *c);
/* HTTP/2 error codes (RFC 9113 §7) for kp_http_conn_reset. */
#define KP_H2_NO_ERROR 0x0
#define KP_H2_PROTOCOL_ERROR 0x1
#define KP_H2_INTERNAL_ERROR 0x2
#define KP_H2_REFUSED_STREAM 0x7
#define KP_H2_CANCEL 0x8
#define KP_H2_ENHANCE_YOUR_CALM 0xb
/* Like kp_http_conn_abort, with the RST_STREAM code an HTTP/2 stream is
 * reset with (CANCEL for a timeout cut, REFUSED_STREAM when nothing was
 * processed); on HTTP/1 the connection ends as with abort. */
void kp_http_conn_reset(kp_http_conn_t *c, uint32_t h2_error);
/* Whether c is an HTTP/2 stream (req->http_major == 2 says the same). */
int kp_http_conn_is_h2(const kp_http_conn_t *c);
size_t kp_http_conn_write_queue(const kp_http_conn_t *c);
int kp_http_conn_response_started(const kp_http_conn_t *c);
uint64_t kp_http_conn_bytes_sent(const kp_http_conn_t *c);
uv_loop_t *kp_http_conn_loop(const kp_http_conn_t *c);

/* Write-queue marks for backpressure between the two sides of a proxy. */
#define KP_HTTP_HIGH_WATER (256 * 1024)
#define KP_HTTP_LOW_WATER (64 * 1024)

#endif
