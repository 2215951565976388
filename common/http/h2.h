/* HTTP/2 on a server connection (h2c, RFC 9113): the engine's internals
 * shared by server.c, response.c, h2_session.c and h2_stream.c. A
 * connection in CONN_H2 owns an nghttp2 server session; each stream is a
 * kp_h2_stream_t whose embedded kp_http_conn_t is the req->conn handed to
 * the handler, so every kp_http_conn_* call reaches the stream.
 *
 * Numbers (see README "HTTP/2"): at most KP_H2_MAX_STREAMS streams open per
 * connection; each stream's receive window is KP_H2_STREAM_WINDOW and the
 * connection's KP_H2_CONN_WINDOW, and request bytes are acknowledged
 * (WINDOW_UPDATE) only once the handler took them, so a connection buffers
 * at most KP_H2_CONN_WINDOW of request bodies; response bytes wait per
 * stream, where the proxy's high/low water marks bound them. */
#ifndef KP_HTTP_H2_H
#define KP_HTTP_H2_H

#include <nghttp2/nghttp2.h>

#include "server_internal.h"

#define KP_H2_MAX_STREAMS 100
#define KP_H2_STREAM_WINDOW (256 * 1024)
#define KP_H2_CONN_WINDOW (1024 * 1024)
/* RFC 9113 §6.5.2, advertised; enforced by the head's own limits (431). */
#define KP_H2_MAX_HEADER_LIST KP_HTTP_MAX_HEAD
/* Client resets allowed in a burst and per second (CVE-2023-44487), and
 * SETTINGS/PING frames likewise; past them: GOAWAY ENHANCE_YOUR_CALM. */
#define KP_H2_RESET_BURST 200
#define KP_H2_RESET_RATE 100
#define KP_H2_CONTROL_BURST 100
#define KP_H2_CONTROL_RATE 50
/* Ended streams a session keeps for its next ones (their head and body
 * buffers too, when small): most streams then cost no allocation. */
#define KP_H2_SPARE_STREAMS 16
#define KP_H2_SPARE_BUF_MAX (16 * 1024)
/* The drain's wait between the shutdown notice and the final GOAWAY when
 * no PING answer comes first. */
#define KP_H2_DRAIN_GRACE_MS 1000

typedef struct kp_h2_session kp_h2_session_t;

/* Bytes waiting in one direction of a stream. */
typedef struct kp_h2_bytes {
    char *data;
    size_t off, len, cap; /* the waiting bytes are data[off, off + len) */
} kp_h2_bytes_t;

typedef struct kp_h2_stream {
    kp_http_conn_t conn; /* conn.h2s == this; conn.req is the request */
    kp_h2_session_t *sess;
    int32_t id;
    struct kp_h2_stream *next, *prev; /* the session's open streams, or its dead ones */
    kp_h2_bytes_t in;                 /* request body received, not yet taken by the handler */
    kp_h2_bytes_t out;                /* response body written, not yet framed */
    char *authority;
    char *cookie; /* the cookie crumbs joined with "; " */
    size_t cookie_len;
    char *trailers; /* raw lines to end the response with */
    size_t trailers_len;
    uint64_t headers_since_ns; /* a header block began and has not ended */
    uint64_t stalled_since_ns; /* response bytes wait for a window */
    int header_error;          /* 414 or 431 when the head broke a limit */
    unsigned dispatched : 1;
    unsigned in_eof : 1; /* END_STREAM received */
    unsigned body_wanted : 1;
    unsigned body_paused : 1;
    unsigned delivering : 1;
    unsigned submitted : 1; /* response HEADERS submitted */
    unsigned has_data : 1;  /* with a data provider */
    unsigned out_eof : 1;   /* the handler ended the response */
    unsigned writable_due : 1;
    unsigned closed : 1; /* nghttp2 closed it (or the connection went) */
    unsigned reset : 1;
    unsigned host_mismatch : 1;
    unsigned has_method : 1;
} kp_h2_stream_t;

struct kp_h2_session {
    nghttp2_session *ng;
    kp_http_conn_t *c; /* the TCP connection; NULL once it is gone */
    uv_timer_t soon;   /* next loop turn: frames what streams queued, frees dead ones */
    kp_h2_stream_t *streams, *dead;
    kp_h2_stream_t *spare; /* ended streams kept for reuse, KP_H2_SPARE_STREAMS at most */
    size_t n_streams, n_spare;
    int in_recv;
    unsigned pumping : 1;
    unsigned pump_again : 1;
    unsigned pump_due : 1; /* streams queued frames: the soon timer frames them */
    unsigned notice_sent : 1;
    unsigned goaway_sent : 1;
    unsigned fatal : 1;
    uint64_t drain_at_ns;      /* when the final GOAWAY is due (0: none) */
    uint64_t settings_sent_ns; /* our SETTINGS await their ACK since (0: acked) */
    uint64_t idle_since_ns;    /* no stream open since */
    double reset_tokens, control_tokens;
    uint64_t tokens_at_ns;
};

/* From a connection whose first bytes are the client preface (still in
 * its read buffer, passed on to the session): 0, or -1 (closed). */
int kp_h2_start(kp_http_conn_t *c);
/* HTTP/1.1 Upgrade: h2c (RFC 7540 §3.2) of a request without a body: the
 * 101 goes out and the request becomes stream 1. 0, or -1 when the
 * upgrade cannot be made (the request is then served as HTTP/1.1). */
int kp_h2_upgrade(kp_http_conn_t *c, const char *settings, size_t settings_len);
/* Whether req asks for an h2c upgrade we take (see kp_h2_upgrade); the
 * HTTP2-Settings value is returned through settings. */
int kp_h2_upgrade_wanted(const kp_http_request_t *req, const char **settings, size_t *settings_len);
void kp_h2_recv(kp_h2_session_t *s, const char *data, size_t len);
/* Frames what is due into the connection's writes, now. */
void kp_h2_pump(kp_h2_session_t *s);
/* Frames what is due on the next loop turn (or at the end of the read
 * being handled): what many streams answer in one turn, for instance on
 * one read from an upstream, leaves in one write instead of one each. */
void kp_h2_pump_soon(kp_h2_session_t *s);
/* The connection's writes went out: more may be framed. */
void kp_h2_on_written(kp_h2_session_t *s);
/* The connection is closing: every stream is aborted, the session ends. */
void kp_h2_close(kp_h2_session_t *s);
/* Graceful drain (server.h, kp_http_server_close_idle). */
void kp_h2_drain(kp_h2_session_t *s);
/* Streams whose response has not ended yet (kp_http_server_busy). */
size_t kp_h2_busy_streams(const kp_h2_session_t *s);
/* Dead streams are freed on the next loop turn, once every caller that
 * may still read their request has returned. */
void kp_h2_reap_soon(kp_h2_session_t *s);
/* The connection timer of a CONN_H2 connection. */
void kp_h2_on_timer(kp_h2_session_t *s);

/* h2_stream.c: the stream's side of kp_http_conn_* (see server.h). */
kp_h2_stream_t *kp_h2_stream_new(kp_h2_session_t *s, int32_t id);
void kp_h2_stream_free(kp_h2_stream_t *st);
/* A dead stream goes: onto the session's spares when there is room. */
void kp_h2_stream_retire(kp_h2_stream_t *st);
/* Request body bytes arrived / the request ended. */
void kp_h2_stream_on_data(kp_h2_stream_t *st, const char *data, size_t len);
void kp_h2_stream_on_end(kp_h2_stream_t *st);
/* nghttp2 closed the stream; error_code != 0, or a handler still bound,
 * means the handler hears on_abort. */
void kp_h2_stream_on_close(kp_h2_stream_t *st, uint32_t error_code);
/* One field of the request head (pseudo-headers included). */
void kp_h2_stream_add_field(kp_h2_stream_t *st, const char *name, size_t name_len,
                            const char *value, size_t value_len);
/* Stream 1 of an h2c upgrade: the HTTP/1.1 request becomes its head and
 * is handed to the handler (RFC 7540 §3.2: it is half-closed already). */
void kp_h2_stream_from_http1(kp_h2_stream_t *st, const kp_http_request_t *req);
/* The connection went: the handler hears on_abort, nothing more is sent. */
void kp_h2_stream_on_conn_gone(kp_h2_stream_t *st);
/* Hands the finished request head to the server's handler. */
void kp_h2_stream_dispatch(kp_h2_stream_t *st, int end_stream);

void kp_h2_stream_read_body(kp_h2_stream_t *st);
void kp_h2_stream_pause_body(kp_h2_stream_t *st);
void kp_h2_stream_send_head(kp_h2_stream_t *st, int status, const char *extra, size_t extra_len,
                            int64_t content_length, const char *data, size_t len);
void kp_h2_stream_send_body(kp_h2_stream_t *st, const char *data, size_t len);
void kp_h2_stream_send_end(kp_h2_stream_t *st, const char *trailers, size_t trailers_len);
void kp_h2_stream_respond(kp_h2_stream_t *st, int status, const char *content_type,
                          const char *body, size_t body_len);
void kp_h2_stream_reset(kp_h2_stream_t *st, uint32_t code);
/* The server gives up on a stream by itself (a client that stopped
 * reading): reset, and the handler hears of it through on_abort as of a
 * client's reset, so the work behind it (an upstream stream) stops too. */
void kp_h2_stream_cut(kp_h2_stream_t *st, uint32_t code);
size_t kp_h2_stream_write_queue(const kp_h2_stream_t *st);

#endif
