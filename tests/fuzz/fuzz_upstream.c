/* Fuzzes the HTTP/1.1 client side for real: kp_upstream connections
 * (common/http/upstream.c: llhttp in response mode, the keep-alive pool,
 * sized, chunked and close-delimited bodies, 1xx, 101 tunnels, HEAD) to a
 * listener in this process whose "server" answers each request with the
 * fuzz input, and the reverse proxy on top of them (common/http/proxy.c
 * behind a kp_http_server, with a real client), the way the activator and
 * the queue-proxy use them.
 *
 * Input: flags byte, piece byte, then the upstream's answer to the first
 * request, optionally followed by SEPARATOR and its answer to a second
 * request on the kept-alive connection. The piece byte: the size of the
 * pieces (low six bits), the proxy's client leaving halfway through the
 * answer (P_CLIENT_LEAVES), nothing listening upstream (P_UNREACHABLE). Every exchange ends (the
 * upstream closes when nothing else would end it), the pool is released and the loop runs until
 * every handle is closed, so ASan's leak check proves every connection is freed. Oracles: callbacks
 * come in order and never after the end; bodies match their length; what the proxy sends its client
 * is one well-formed HTTP/1.1 response with the status and body the upstream sent (or a 502), cut
 * short only when it reports the exchange failed. */
#define _GNU_SOURCE /* accept4, memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "base/clock.h"
#include "http/proxy.h"
#include "http/server.h"
#include "http/upstream.h"

#define SEPARATOR "~~next~~"

/* flags, low two bits: who drives the connection */
enum { MODE_DONE, MODE_PAUSE, MODE_CLOSE, MODE_PROXY };
#define F_HEAD 0x04      /* the request is HEAD */
#define F_EOF_AFTER 0x08 /* the upstream closes right after each answer */
#define F_PIECES 0x10    /* each answer arrives in pieces (at most 16 of them) */
/* MODE_DONE: kp_upstream_close at the end instead of kp_upstream_done;
 * MODE_CLOSE: the user gives up in on_body instead of on_response_head;
 * MODE_PROXY: the request is a POST with a chunked body. */
#define F_ALT 0x20
/* MODE_PROXY: the client asks for a websocket upgrade (with tunnel bytes);
 * direct modes: kp_upstream_shutdown_write once a tunnel starts. */
#define F_UPGRADE 0x40
#define F_SECOND 0x80 /* a second exchange, if the connection went back to the pool */

/* piece byte */
#define P_SIZE 0x3f          /* + 1: the size of the pieces with F_PIECES */
#define P_CLIENT_LEAVES 0x40 /* MODE_PROXY: the client resets its connection halfway */
/* Connections are refused; MODE_PROXY with F_ALT hands the request back
 * (as the activator's does, to try another pod) instead of a 502. */
#define P_UNREACHABLE 0x80

#define CLIENT_CAP (256 * 1024)

/* One direct exchange: a kp_upstream_ops_t user like the activator's
 * probes and scrapes (MODE_DONE), a proxy under backpressure (MODE_PAUSE)
 * or a user that gives up midway (MODE_CLOSE). */
typedef enum { EX_OPEN, EX_ENDED, EX_FAILED, EX_GAVE_UP } ex_end_t;

typedef struct exchange {
    kp_upstream_t *u; /* NULL once finished */
    int finished;
    ex_end_t how;
    int connected;
    int heads;
    int status;
    int tunnel;
    int chunked;
    int64_t content_length;
    size_t body_bytes;
    char body[8192]; /* its first bytes */
    int resume_pending;
} exchange_t;

/* What a plain llhttp makes of the bytes the upstream sent, with RFC 9112
 * §6.3's rules for bodiless responses: the final response's status and
 * body, the reference the received one must match. Heads over kp's limits
 * (KP_HTTP_MAX_HEADERS) do not count as complete. */
typedef struct reference {
    int status;
    int complete;
    int head_request;
    size_t fields;
    char body[8192];
    size_t body_len;
    int body_overflow;
} reference_t;

typedef struct fuzz_up {
    uv_loop_t loop;
    unsigned flags;
    size_t piece;
    unsigned piece_flags;
    unsigned events; /* anything that happened: to tell when all is quiet */
    int debug;       /* FUZZ_UPSTREAM_DEBUG=1: each exchange to stderr, to check seeds */

    /* the upstream's side: a plain listening socket outside libuv */
    int listen_fd;
    struct sockaddr_in up_addr;
    int refusing_fd; /* bound, never listening: connections to it are refused */
    struct sockaddr_in refusing_addr;
    int up_fd;           /* the connection being answered, or -1 */
    int up_eof_sent;     /* shutdown(SHUT_WR) done on up_fd */
    int answered;        /* this exchange's answer was sent (on an earlier connection) */
    int accepts;         /* connections the upstream took in this exchange */
    int up_peer_eof;     /* the client side half-closed */
    size_t up_req_bytes; /* request bytes read in this exchange */
    kp_upstream_pool_t *pool;

    /* direct modes */
    exchange_t ex;
    uv_timer_t resume;

    /* MODE_PROXY: a kp_http_server whose handler proxies to the pool */
    kp_http_server_t server;
    struct sockaddr_in srv_addr;
    int client_fd;
    int client_eof;
    char *client_buf;
    size_t client_len;
    int requests;
    kp_http_conn_t *req_conn; /* the client's request, when handed back */
    int proxy_done;
    kp_proxy_result_t result;
    reference_t ref;

    char scratch[64 * 1024];
} fuzz_up_t;

static fuzz_up_t *fz;

/* --- the sockets this harness holds --- */

static void close_abortive(int fd)
{
    /* A RST rather than a FIN: no TIME_WAIT left behind, so millions of
     * inputs do not run the ephemeral ports out. */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static void drain_up(void)
{
    while (fz->up_fd >= 0 && !fz->up_peer_eof) {
        ssize_t n = recv(fz->up_fd, fz->scratch, sizeof fz->scratch, MSG_DONTWAIT);
        if (n > 0) {
            fz->up_req_bytes += (size_t)n;
            fz->events++;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            fz->up_peer_eof = 1;
            fz->events++;
        } else {
            break;
        }
    }
}

static void accept_up(void)
{
    int fd = accept4(fz->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    fz->events++;
    if (fz->up_fd >= 0) {
        /* A new connection (the proxy retrying, or a second exchange on a
         * fresh one): the old one is done with. */
        drain_up();
        close_abortive(fz->up_fd);
    }
    fz->up_fd = fd;
    fz->accepts++;
    fz->up_peer_eof = 0;
    fz->up_eof_sent = 0;
    if (fz->answered) {
        /* The proxy trying again after the answer failed: this upstream
         * has nothing more to say. */
        shutdown(fd, SHUT_WR);
        fz->up_eof_sent = 1;
    }
}

static void drain_client(void)
{
    while (fz->client_fd >= 0 && !fz->client_eof) {
        char *dst = fz->scratch;
        size_t room = sizeof fz->scratch;
        if (fz->client_len < CLIENT_CAP) {
            dst = fz->client_buf + fz->client_len;
            room = CLIENT_CAP - fz->client_len;
        }
        ssize_t n = recv(fz->client_fd, dst, room, MSG_DONTWAIT);
        if (n > 0) {
            if (dst != fz->scratch)
                fz->client_len += (size_t)n;
            fz->events++;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            fz->client_eof = 1;
            fz->events++;
        } else {
            break;
        }
    }
}

static void pump_once(void)
{
    uv_run(&fz->loop, UV_RUN_NOWAIT);
    accept_up();
    drain_up();
    drain_client();
}

/* Until cond holds, waiting in poll() on the loop and the harness's
 * sockets alike. A hang here is a bug: libFuzzer's -timeout reports it. */
static void pump_until(int (*cond)(void))
{
    while (!cond()) {
        pump_once();
        if (cond())
            break;
        struct pollfd pfd[4];
        nfds_t n = 0;
        pfd[n++] = (struct pollfd){.fd = uv_backend_fd(&fz->loop), .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = fz->listen_fd, .events = POLLIN};
        if (fz->up_fd >= 0 && !fz->up_peer_eof)
            pfd[n++] = (struct pollfd){.fd = fz->up_fd, .events = POLLIN};
        if (fz->client_fd >= 0 && !fz->client_eof)
            pfd[n++] = (struct pollfd){.fd = fz->client_fd, .events = POLLIN};
        poll(pfd, n, uv_backend_timeout(&fz->loop));
    }
}

/* Until cond holds or nothing moves any more: loopback delivers a write
 * before send() returns, so two quiet turns mean every byte sent so far
 * has been dealt with. */
static void pump_quiet(int (*cond)(void))
{
    int quiet = 0;
    while (quiet < 2 && !cond()) {
        unsigned before = fz->events;
        pump_once();
        quiet = fz->events == before && !fz->ex.resume_pending ? quiet + 1 : 0;
    }
}

static int never(void)
{
    return 0;
}

static void send_fd(int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            pump_once(); /* the reader is behind: let it read */
        } else {
            return; /* the peer is gone: what it did not take is lost */
        }
    }
}

static void up_eof(void)
{
    if (fz->up_fd >= 0 && !fz->up_eof_sent) {
        shutdown(fz->up_fd, SHUT_WR);
        fz->up_eof_sent = 1;
    }
}

/* The upstream's answer, in one write or in pieces with the loop run
 * (until quiet) after each; then EOF if the flags say so. */
static void answer_part(const uint8_t *data, size_t len)
{
    fz->answered = 1;
    size_t piece = len;
    if (fz->flags & F_PIECES) {
        piece = fz->piece;
        if (piece < len / 16 + 1)
            piece = len / 16 + 1;
    }
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        if (fz->up_fd < 0 || fz->up_eof_sent)
            break;
        send_fd(fz->up_fd, data + off, n);
        if (fz->flags & F_PIECES)
            pump_quiet(never);
    }
}

static void answer(const uint8_t *data, size_t len, int (*done)(void))
{
    answer_part(data, len);
    if (fz->flags & F_EOF_AFTER)
        up_eof();
    pump_quiet(done);
    if (!done()) {
        /* Still waiting (a close-delimited body, a tunnel, a short
         * answer): the upstream closes, which ends every exchange. */
        up_eof();
        pump_until(done);
    }
}

static void walk_count(uv_handle_t *h, void *arg)
{
    if (h != (uv_handle_t *)&fz->resume && h != (uv_handle_t *)&fz->server.listener)
        ++*(size_t *)arg;
}

static int all_closed(void)
{
    size_t n = 0;
    uv_walk(&fz->loop, walk_count, &n);
    return n == 0;
}

/* --- the reference --- */

static int ref_on_message_begin(llhttp_t *p)
{
    ((reference_t *)p->data)->fields = 0;
    return 0;
}

static int ref_on_header_field_complete(llhttp_t *p)
{
    ((reference_t *)p->data)->fields++;
    return 0;
}

static int ref_on_headers_complete(llhttp_t *p)
{
    reference_t *r = p->data;
    int status = llhttp_get_status_code(p);
    if (status < 100)
        return -1; /* not a status code (RFC 9110 §15) */
    if (status >= 100 && status < 200 && status != 101)
        return 1; /* interim: no body, the next response follows */
    r->status = status;
    r->body_len = 0;
    if (status == 101)
        return 2;
    /* RFC 9112 §6.3, rule 1: these end at their head, whatever it says. */
    return r->head_request || status == 204 || status == 304 ? 1 : 0;
}

static int ref_on_body(llhttp_t *p, const char *at, size_t len)
{
    reference_t *r = p->data;
    if (r->body_len + len > sizeof r->body) {
        r->body_overflow = 1;
        return 0;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int ref_on_message_complete(llhttp_t *p)
{
    reference_t *r = p->data;
    if (r->status == 0)
        return 0; /* an interim response */
    r->complete = r->fields <= KP_HTTP_MAX_HEADERS;
    return HPE_PAUSED;
}

static void reference_parse(reference_t *r, const uint8_t *data, size_t len, int head_request)
{
    static const llhttp_settings_t settings = {
        .on_message_begin = ref_on_message_begin,
        .on_header_field_complete = ref_on_header_field_complete,
        .on_headers_complete = ref_on_headers_complete,
        .on_body = ref_on_body,
        .on_message_complete = ref_on_message_complete,
    };
    memset(r, 0, sizeof *r);
    r->head_request = head_request;
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &settings);
    p.data = r;
    llhttp_errno_t err = llhttp_execute(&p, (const char *)data, len);
    if (err == HPE_OK && !r->complete)
        llhttp_finish(&p); /* the upstream closes after a close-delimited body */
    if (r->status == 101)
        r->complete = 0; /* a tunnel: nothing to compare */
}

/* --- direct use of kp_upstream --- */

static void ex_check(const exchange_t *ex)
{
    if (ex->finished || !ex->connected)
        abort(); /* a callback after the end, or before the connection */
}

static void ex_finish(exchange_t *ex, ex_end_t how)
{
    ex->finished = 1;
    ex->how = how;
    ex->u = NULL;
    ex->resume_pending = 0;
    uv_timer_stop(&fz->resume);
}

static void ex_give_up(exchange_t *ex)
{
    kp_upstream_t *u = ex->u;
    ex_finish(ex, EX_GAVE_UP);
    kp_upstream_close(u);
}

static void send_request(exchange_t *ex)
{
    static const char get[] =
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8012\r\n"
        "User-Agent: Knative-Activator-Probe\r\nK-Network-Probe: queue\r\n\r\n";
    static const char head[] = "HEAD / HTTP/1.1\r\nHost: 127.0.0.1:8012\r\n\r\n";
    int is_head = (fz->flags & F_HEAD) != 0;
    uv_buf_t b = is_head ? uv_buf_init((char *)head, sizeof head - 1)
                         : uv_buf_init((char *)get, sizeof get - 1);
    if (is_head)
        kp_upstream_set_head_request(ex->u);
    kp_upstream_write(ex->u, &b, 1);
}

static void d_connected(void *ctx, int status)
{
    exchange_t *ex = ctx;
    fz->events++;
    if (ex->finished || ex->connected)
        abort();
    if (status < 0) {
        ex_finish(ex, EX_FAILED); /* closed by kp_upstream already */
        return;
    }
    ex->connected = 1;
    send_request(ex);
}

static void d_head(void *ctx, const kp_upstream_response_t *r)
{
    exchange_t *ex = ctx;
    fz->events++;
    ex_check(ex);
    if (ex->heads++ || (r->status >= 100 && r->status < 200 && r->status != 101))
        abort(); /* one head per exchange, interim ones are not passed on */
    if (r->n_headers > KP_HTTP_MAX_HEADERS || (r->chunked && r->content_length >= 0))
        abort();
    size_t sum = 0;
    for (size_t i = 0; i < r->n_headers; i++) {
        const kp_http_header_t *h = &r->headers[i];
        for (size_t k = 0; k < h->name_len; k++)
            sum += (unsigned char)h->name[k];
        for (size_t k = 0; k < h->value_len; k++)
            sum += (unsigned char)h->value[k];
    }
    fz->events += (unsigned)(sum & 1); /* every byte read (ASan), not optimised out */
    ex->status = r->status;
    ex->chunked = r->chunked;
    ex->content_length = r->content_length;
    if (r->status == 101) {
        ex->tunnel = 1;
        if (fz->flags & F_UPGRADE)
            kp_upstream_shutdown_write(ex->u);
    }
    if ((fz->flags & 3) == MODE_CLOSE && !(fz->flags & F_ALT))
        ex_give_up(ex);
}

static void on_resume(uv_timer_t *t)
{
    exchange_t *ex = &fz->ex;
    ex->resume_pending = 0;
    fz->events++;
    if (ex->u)
        kp_upstream_resume(ex->u);
}

static void d_body(void *ctx, const char *data, size_t len)
{
    exchange_t *ex = ctx;
    fz->events++;
    ex_check(ex);
    if (ex->heads != 1 || ex->tunnel || (fz->flags & F_HEAD) || len == 0)
        abort(); /* a body only after a head, never for HEAD or a tunnel */
    if (ex->body_bytes < sizeof ex->body) {
        size_t n = sizeof ex->body - ex->body_bytes < len ? sizeof ex->body - ex->body_bytes : len;
        memcpy(ex->body + ex->body_bytes, data, n);
    }
    ex->body_bytes += len;
    if ((fz->flags & 3) == MODE_PAUSE) {
        /* As the proxy does when its client reads slowly. */
        kp_upstream_pause(ex->u);
        ex->resume_pending = 1;
        uv_timer_start(&fz->resume, on_resume, 0, 0);
    } else if ((fz->flags & 3) == MODE_CLOSE) {
        ex_give_up(ex);
    }
}

static void d_end(void *ctx)
{
    exchange_t *ex = ctx;
    fz->events++;
    ex_check(ex);
    if (ex->heads != 1 || ex->tunnel)
        abort();
    int bodiless = (fz->flags & F_HEAD) || ex->status == 204 || ex->status == 304;
    if (!bodiless && !ex->chunked && ex->content_length >= 0 &&
        ex->body_bytes != (size_t)ex->content_length)
        abort(); /* a sized body ends when, and only when, all of it came */
    kp_upstream_t *u = ex->u;
    ex_finish(ex, EX_ENDED);
    if ((fz->flags & 3) == MODE_DONE && (fz->flags & F_ALT))
        kp_upstream_close(u);
    else
        kp_upstream_done(u);
}

static void d_error(void *ctx, int err, int response_started)
{
    exchange_t *ex = ctx;
    fz->events++;
    if (ex->finished || err >= 0 || response_started != (ex->heads > 0))
        abort();
    ex_finish(ex, EX_FAILED);
}

static void d_writable(void *ctx)
{
    fz->events++;
    ex_check(ctx);
}

static void d_tunnel(void *ctx, const char *data, size_t len)
{
    exchange_t *ex = ctx;
    fz->events++;
    ex_check(ex);
    if (!ex->tunnel)
        abort();
    if (!data) {
        ex_give_up(ex);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    kp_upstream_write(ex->u, &b, 1); /* echo, as a websocket peer might */
}

static void d_read_done(void *ctx)
{
    fz->events++;
    ex_check(ctx);
}

static const kp_upstream_ops_t direct_ops = {
    .on_connected = d_connected,
    .on_response_head = d_head,
    .on_body = d_body,
    .on_response_end = d_end,
    .on_error = d_error,
    .on_writable = d_writable,
    .on_tunnel_data = d_tunnel,
    .on_read_done = d_read_done,
};

static int ex_finished(void)
{
    return fz->ex.finished;
}

static int ex_ready(void)
{
    return fz->ex.finished || (fz->ex.connected && fz->up_fd >= 0 && fz->up_req_bytes > 0);
}

/* A response llhttp reads as complete is delivered whole, unless the user
 * gave up on it. */
static void check_direct(const exchange_t *ex)
{
    const reference_t *r = &fz->ref;
    if (!r->complete || ex->how == EX_GAVE_UP)
        return;
    if (ex->how != EX_ENDED || ex->status != r->status || ex->body_bytes != r->body_len ||
        (!r->body_overflow && memcmp(ex->body, r->body, r->body_len) != 0))
        abort();
}

static void direct_exchange(const uint8_t *data, size_t len, int second)
{
    exchange_t *ex = &fz->ex;
    memset(ex, 0, sizeof *ex);
    fz->answered = 0;
    reference_parse(&fz->ref, data, len, (fz->flags & F_HEAD) != 0);
    if (fz->piece_flags & P_UNREACHABLE)
        fz->ref.complete = 0; /* nothing will answer */
    fz->up_req_bytes = 0;
    int rc = kp_upstream_get(fz->pool, &direct_ops, ex, &ex->u);
    if (rc < 0)
        abort(); /* out of memory, or no socket left */
    if (second && (rc != 1 || !kp_upstream_reused(ex->u)))
        abort(); /* the pool had it idle: it must be the one handed out */
    if (rc == 1) {
        ex->connected = 1;
        send_request(ex);
    }
    pump_until(ex_ready);
    if (!ex->finished)
        answer(data, len, ex_finished);
    if (fz->debug)
        fprintf(stderr,
                "direct exchange %d: reused %d, status %d, body %zu bytes, tunnel %d, end %d\n",
                second + 1, rc, ex->status, ex->body_bytes, ex->tunnel, ex->how);
    check_direct(ex);
}

/* --- through the reverse proxy --- */

/* What the proxy's client received, parsed as a client would. */
typedef struct downstream {
    int status;
    int heads;
    int complete;
    int head_request;
    char body[8192];
    size_t body_len;
    int body_overflow;
} downstream_t;

static int ds_on_headers_complete(llhttp_t *p)
{
    downstream_t *d = p->data;
    d->heads++;
    d->status = llhttp_get_status_code(p);
    if (d->status == 101)
        return 2;
    /* RFC 9112 §6.3, rule 1, which llhttp 8 leaves to its user. */
    return d->head_request || d->status == 204 || d->status == 304 ? 1 : 0;
}

static int ds_on_body(llhttp_t *p, const char *at, size_t len)
{
    downstream_t *d = p->data;
    if (d->body_len + len > sizeof d->body) {
        d->body_overflow = 1;
        return 0;
    }
    memcpy(d->body + d->body_len, at, len);
    d->body_len += len;
    return 0;
}

static int ds_on_message_complete(llhttp_t *p)
{
    downstream_t *d = p->data;
    d->complete = 1;
    return d->status == 101 ? 0 : HPE_PAUSED; /* llhttp stops at the upgrade itself */
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static void check_downstream(int head_request)
{
    static const llhttp_settings_t settings = {
        .on_headers_complete = ds_on_headers_complete,
        .on_body = ds_on_body,
        .on_message_complete = ds_on_message_complete,
    };
    const char *b = fz->client_buf;
    size_t len = fz->client_len;
    const kp_proxy_result_t *res = &fz->result;
    if (len >= CLIENT_CAP)
        return; /* too much to judge */
    /* Every proxied exchange answers its client: the upstream's response
     * or a 502, whose status line is HTTP/1.1 and three digits. */
    if (len < 13 || memcmp(b, "HTTP/1.1 ", 9) != 0 || !is_digit(b[9]) || b[9] == '0' ||
        !is_digit(b[10]) || !is_digit(b[11]) || b[12] != ' ')
        abort();
    /* A response a plain llhttp reads as complete is never failed. */
    if (fz->ref.complete && res->outcome != KP_PROXY_OK)
        abort();
    downstream_t d;
    memset(&d, 0, sizeof d);
    d.head_request = head_request;
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &settings);
    p.data = &d;
    llhttp_errno_t err = llhttp_execute(&p, b, len);
    if (err == HPE_PAUSED) {
        /* One response per request: nothing may follow it (the client
         * would take it for the answer to its next request). */
        if (llhttp_get_error_pos(&p) != b + len)
            abort();
    } else if (err == HPE_PAUSED_UPGRADE) {
        /* RFC 9110 §15.2.2: a switch only to what the client asked for. */
        if (d.status != 101 || !res->upgraded || !(fz->flags & F_UPGRADE))
            abort();
        return; /* tunnel bytes follow */
    } else if (err == HPE_OK) {
        if (llhttp_finish(&p) != HPE_OK || !d.complete) {
            /* Cut short: only when the proxy says the exchange failed. */
            if (res->outcome == KP_PROXY_OK)
                abort();
            return;
        }
    } else {
        abort(); /* malformed */
    }
    if (d.heads != 1 || d.status != res->status)
        abort();
    /* The upstream's complete response, passed on: same status, same body. */
    const reference_t *r = &fz->ref;
    if (!r->complete || r->body_overflow || d.body_overflow)
        return;
    if (d.status != r->status || d.body_len != r->body_len ||
        memcmp(d.body, r->body, r->body_len) != 0)
        abort();
}

static void on_proxy_done(void *ctx, const kp_proxy_result_t *r)
{
    fz->events++;
    if (fz->proxy_done++)
        abort(); /* done runs exactly once */
    fz->result = *r;
    if (r->outcome == KP_PROXY_UNREACHABLE) {
        /* Handed back unanswered, its body unread: the caller's to answer,
         * as the activator's does when no other pod is left. */
        if (!(fz->piece_flags & P_UNREACHABLE) || r->status != 0 || r->bytes_sent != 0)
            abort();
        fz->result.status = 503;
        kp_http_conn_respond(fz->req_conn, 503, "text/plain", "no pod\n", 7);
    }
}

static void on_request(kp_http_request_t *req, void *ctx)
{
    static const char *const drop[] = {"k-proxy-request", "x-fuzz-drop"};
    fz->events++;
    if (fz->requests++)
        abort();                /* one request per client connection here */
    kp_proxy_opts_t opts = {0}; /* no timers: the upstream closes instead */
    opts.hand_back_unreachable = (fz->flags & F_ALT) != 0;
    fz->req_conn = req->conn;
    kp_proxy_edits_t edits = {
        .host = "app.default.svc",
        .host_len = 15,
        .drop = drop,
        .n_drop = 2,
        .add = "K-Proxy-Request: activator\r\n",
        .add_len = 28,
        .append_forwarded_for = 1,
    };
    if (kp_proxy_start(req, fz->pool, &opts, &edits, kp_now_ns(), on_proxy_done, fz) != 0)
        abort();
}

static int proxy_finished(void)
{
    return fz->proxy_done;
}

static int proxy_ready(void)
{
    return fz->proxy_done || (fz->up_fd >= 0 && fz->up_req_bytes > 0);
}

static int client_done(void)
{
    return fz->client_eof;
}

static int server_idle(void)
{
    return fz->server.n_conns == 0;
}

static void proxy_exchange(const uint8_t *data, size_t len, int second)
{
    static const char get[] = "GET /s?q=1 HTTP/1.1\r\nHost: hello.default.example.com\r\n"
                              "X-Forwarded-For: 10.0.0.1\r\nConnection: close\r\n\r\n";
    static const char head[] = "HEAD / HTTP/1.1\r\nHost: hello\r\nConnection: close\r\n\r\n";
    static const char post[] = "POST /up HTTP/1.1\r\nHost: hello\r\nTransfer-Encoding: chunked\r\n"
                               "Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    static const char ws[] = "GET /ws HTTP/1.1\r\nHost: hello\r\nConnection: Upgrade\r\n"
                             "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nping";
    int head_request = (fz->flags & F_HEAD) != 0;
    const char *req = head_request            ? head
                      : fz->flags & F_UPGRADE ? ws
                      : fz->flags & F_ALT     ? post
                                              : get;
    fz->requests = 0;
    fz->proxy_done = 0;
    fz->client_len = 0;
    fz->client_eof = 0;
    fz->up_req_bytes = 0;
    fz->answered = 0;
    fz->accepts = 0;
    reference_parse(&fz->ref, data, len, head_request);
    if (fz->piece_flags & P_UNREACHABLE)
        fz->ref.complete = 0; /* nothing will answer */

    /* Non-blocking: libFuzzer's SIGALRM (-timeout) would interrupt a
     * blocking connect halfway. Loopback connects before the accept. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || (connect(fd, (struct sockaddr *)&fz->srv_addr, sizeof fz->srv_addr) != 0 &&
                   errno != EINPROGRESS && errno != EINTR)) {
        perror("fuzz_upstream: connect");
        abort();
    }
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t elen = sizeof err;
        if (poll(&pfd, 1, 1000) == 1) {
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
                fprintf(stderr, "fuzz_upstream: connect: %s\n", strerror(err));
                abort();
            }
            break;
        }
    }
    fz->client_fd = fd;
    send_fd(fd, (const uint8_t *)req, strlen(req));

    pump_until(proxy_ready);
    int client_left = 0;
    if (!fz->proxy_done && (fz->piece_flags & P_CLIENT_LEAVES)) {
        /* Half the answer, then the client resets its connection: the
         * proxy lets go of both sides, whatever the upstream sends next. */
        answer_part(data, len / 2);
        pump_quiet(proxy_finished);
        close_abortive(fz->client_fd);
        fz->client_fd = -1;
        client_left = 1;
        data += len / 2;
        len -= len / 2;
    }
    if (!fz->proxy_done)
        answer(data, len, proxy_finished);
    /* A request goes again only where Go's Transport would send it again
     * (shouldRetryRequest): after a kept-alive connection failed before
     * any response, and never after a fresh one did (the app may have
     * acted on it). These requests are replayable GETs and HEADs, or a
     * POST with a body, which never goes twice. */
    int fresh = second == 0;
    if (fz->accepts > (fresh ? 1 : req == post ? 0 : 1))
        abort();
    if (client_left) {
        if (fz->debug)
            fprintf(stderr, "proxied, the client left: outcome %d, status %d\n", fz->result.outcome,
                    fz->result.status);
        if (fz->result.outcome == KP_PROXY_UNREACHABLE)
            abort();
        pump_until(server_idle);
        return;
    }
    /* The server closes the client's connection after the response (the
     * request said close, or it was cut, or a tunnel ended). */
    pump_until(client_done);
    if (fz->debug)
        fprintf(stderr, "proxied: outcome %d, status %d, upgraded %d; the client got:\n%.*s\n--\n",
                fz->result.outcome, fz->result.status, fz->result.upgraded, (int)fz->client_len,
                fz->client_buf);
    if (fz->debug)
        fprintf(stderr, "reference: complete %d, status %d, body %zu bytes\n", fz->ref.complete,
                fz->ref.status, fz->ref.body_len);
    check_downstream(head_request);
    close_abortive(fz->client_fd);
    fz->client_fd = -1;
    pump_until(server_idle);
}

/* --- one input --- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    signal(SIGPIPE, SIG_IGN);
    fz = calloc(1, sizeof *fz);
    fz->client_buf = malloc(CLIENT_CAP);
    fz->debug = getenv("FUZZ_UPSTREAM_DEBUG") != NULL;
    fz->up_fd = fz->client_fd = -1;
    uv_loop_init(&fz->loop);
    uv_timer_init(&fz->loop, &fz->resume);

    fz->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    fz->up_addr.sin_family = AF_INET;
    fz->up_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof fz->up_addr;
    if (bind(fz->listen_fd, (struct sockaddr *)&fz->up_addr, sizeof fz->up_addr) != 0 ||
        listen(fz->listen_fd, 64) != 0 ||
        getsockname(fz->listen_fd, (struct sockaddr *)&fz->up_addr, &alen) != 0) {
        perror("fuzz_upstream: upstream listener");
        exit(1);
    }

    fz->refusing_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    fz->refusing_addr.sin_family = AF_INET;
    fz->refusing_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    alen = sizeof fz->refusing_addr;
    if (bind(fz->refusing_fd, (struct sockaddr *)&fz->refusing_addr, sizeof fz->refusing_addr) ||
        getsockname(fz->refusing_fd, (struct sockaddr *)&fz->refusing_addr, &alen) != 0) {
        perror("fuzz_upstream: a port to refuse");
        exit(1);
    }

    kp_http_server_opts_t opts;
    kp_http_server_opts_default(&opts);
    opts.header_timeout_ms = 5000; /* only a stuck exchange waits this long */
    opts.keepalive_timeout_ms = 5000;
    if (kp_http_server_init(&fz->server, &fz->loop, "127.0.0.1", 0, &opts, on_request, fz) != 0) {
        fprintf(stderr, "fuzz_upstream: cannot listen on 127.0.0.1\n");
        exit(1);
    }
    int len = sizeof fz->srv_addr;
    uv_tcp_getsockname(&fz->server.listener, (struct sockaddr *)&fz->srv_addr, &len);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    fz->flags = data[0];
    fz->piece = (size_t)(data[1] & P_SIZE) + 1;
    fz->piece_flags = data[1] & ~P_SIZE;
    const uint8_t *first = data + 2;
    size_t first_len = size - 2;
    const uint8_t *second = NULL;
    size_t second_len = 0;
    const uint8_t *sep = memmem(first, first_len, SEPARATOR, sizeof SEPARATOR - 1);
    if (sep) {
        second = sep + sizeof SEPARATOR - 1;
        second_len = (size_t)(first + first_len - second);
        first_len = (size_t)(sep - first);
    }
    int proxy = (fz->flags & 3) == MODE_PROXY;
    memset(&fz->ex, 0, sizeof fz->ex);
    struct sockaddr_in *up = fz->piece_flags & P_UNREACHABLE ? &fz->refusing_addr : &fz->up_addr;
    fz->pool = kp_upstream_pool_new(&fz->loop, (struct sockaddr *)up, proxy ? 4 : 1);

    if (proxy)
        proxy_exchange(first, first_len, 0);
    else
        direct_exchange(first, first_len, 0);
    /* Only while the upstream has not closed: an idle connection that saw
     * the EOF leaves the pool, but maybe not yet. */
    if (second && (fz->flags & F_SECOND) && !fz->up_eof_sent &&
        kp_upstream_pool_idle(fz->pool) == 1) {
        if (proxy)
            proxy_exchange(second, second_len, 1);
        else
            direct_exchange(second, second_len, 1);
    }

    kp_upstream_pool_release(fz->pool);
    fz->pool = NULL;
    up_eof();
    pump_until(all_closed);
    if (fz->up_fd >= 0) {
        drain_up();
        close_abortive(fz->up_fd);
        fz->up_fd = -1;
    }
    return 0;
}
