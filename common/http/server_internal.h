/* The HTTP server engine's internals, shared by server.c (parsing and
 * the connection's life), response.c (writing) and listener.c
 * (the listening socket). */
#ifndef KP_HTTP_SERVER_INTERNAL_H
#define KP_HTTP_SERVER_INTERNAL_H

#include <llhttp.h>

#include "server.h"

#define READ_BUF_SIZE (32 * 1024)
#define LINGER_MS 2000

typedef enum {
    CONN_READING_HEAD, /* waiting for / parsing a request head */
    CONN_IN_REQUEST,   /* head handed to the handler */
    CONN_TUNNEL,       /* upgraded: raw bytes */
    CONN_LINGERING,    /* response sent, write side shut, discarding input */
    CONN_H2,           /* speaking HTTP/2: bytes go to the nghttp2 session */
    CONN_CLOSING,
} conn_state_t;

struct kp_http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    llhttp_t parser;
    kp_http_server_t *server;
    kp_http_conn_t *next, *prev;
    /* HTTP/2 (h2.h): the session of a CONN_H2 connection; on the
     * kp_http_conn_t embedded in a stream, that stream (and nothing else
     * of the struct but the request, the handler's ops and the response
     * flags is used). */
    struct kp_h2_session *h2;
    struct kp_h2_stream *h2s;
    conn_state_t state;
    int pending_closes;
    int pending_writes;
    kp_http_head_t head;
    kp_http_request_t req;
    const kp_http_request_ops_t *ops;
    void *ctx;
    char *rbuf; /* NULL while nothing waits to be parsed (see server.c) */
    size_t rlen, rpos;
    uint64_t bytes_sent;
    unsigned reading : 1;
    unsigned processing : 1;
    unsigned process_again : 1;
    unsigned parser_pending : 1; /* the parser may progress with no new bytes */
    unsigned head_ready : 1;
    unsigned dispatched : 1;
    unsigned body_wanted : 1;
    unsigned body_paused : 1;
    unsigned body_done : 1;
    unsigned body_end_due : 1;
    unsigned response_started : 1;
    unsigned response_done : 1;
    unsigned response_chunked : 1;
    unsigned response_no_body : 1;
    unsigned keep_alive : 1;
    unsigned tunnel_paused : 1;
    unsigned continue_sent : 1;
    unsigned shutting_down : 1;
    unsigned head_started : 1; /* a request head has begun and not ended */
    unsigned http1_seen : 1;   /* a request was parsed: no HTTP/2 preface now */
    /* The bytes parsed before exec_start end in LF and optional SP/HT: a
     * value span at exec_start would continue a folded line. */
    unsigned parsed_ends_in_fold : 1;
    const char *exec_start; /* the data of the llhttp_execute running now */
    /* Set when a complete head breaks an RFC rule llhttp does not check;
     * answered with this status and message, then the connection closes. */
    int reject_status;
    const char *reject_msg;
    char peer_ip[64];
    int peer_port;
};

/* Between the parts of the engine (server.c: parsing and the
 * connection's life; response.c: writing responses). */
void kp_conn_write(kp_http_conn_t *c, const uv_buf_t *bufs, unsigned n);
/* The handler's response is complete: next request, or close. */
void kp_conn_response_ended(kp_http_conn_t *c);
/* Shut the write side down, then close (lingering on unread input). */
void kp_conn_finish_and_close(kp_http_conn_t *c);
void kp_conn_close(kp_http_conn_t *c);
/* Forgets the bytes buffered and frees the connection's read buffer. */
void kp_conn_drop_read_buffer(kp_http_conn_t *c);
/* Starts or stops reading as the connection's state wants. */
void kp_conn_update_reading(kp_http_conn_t *c);

/* A connection of s with its handles initialised, not yet accepted. */
kp_http_conn_t *kp_http_conn_new(kp_http_server_t *s);
/* The socket is c->tcp's now: start reading its first request (or refuse
 * it at once over the connection limit). */
void kp_http_conn_accepted(kp_http_conn_t *c);

#endif
