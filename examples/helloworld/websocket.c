/* GET /ws: the WebSocket handshake (RFC 6455 §4.2) and an echo that streams
 * each frame back as it arrives, so a frame of any size passes through in
 * bounded memory: the header goes out as soon as it is parsed (unmasked,
 * same FIN/opcode, same length; ping becomes pong), then the payload in
 * pieces as the client's bytes come in, unmasked. A close frame is echoed
 * and the connection ends. The WebSocket counts as in flight until then.
 *
 * Lifetime: hw_ws_t is owned by the connection's tunnel; it is freed when
 * the echo ends (close, protocol error, client EOF) or the engine reports
 * the connection gone. Engine calls can report that synchronously (a write
 * error aborts), so the free waits for the end of our outermost callback
 * (busy/dead). */
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "base64.h"
#include "sha1.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MAX_HEADER 14 /* 2 + 8 (64-bit length) + 4 (mask) */

enum {
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};
#define WS_CLOSE_PROTOCOL_ERROR 1002

typedef enum {
    WS_HEADER,  /* collecting a frame header */
    WS_PAYLOAD, /* echoing a payload */
    WS_DONE,    /* ended; ignore everything */
} ws_state_t;

typedef struct hw_ws {
    hw_app_t *app;
    kp_http_conn_t *conn;
    ws_state_t state;
    uint8_t hdr[WS_MAX_HEADER];
    size_t hdr_len;
    uint8_t mask[4];
    uint64_t remaining; /* payload bytes of the current frame still to come */
    uint64_t offset;    /* payload bytes seen, for the mask position */
    int closing;        /* the current frame is a close */
    int paused;         /* tunnel reading stopped for backpressure */
    int busy;           /* inside one of our callbacks */
    int dead;           /* ended while busy: free on the way out */
} hw_ws_t;

/* --- lifetime --- */

static void ws_end(hw_ws_t *ws, int shutdown)
{
    if (ws->state == WS_DONE)
        return;
    ws->state = WS_DONE;
    hw_counters_leave(&ws->app->counters);
    kp_http_conn_t *conn = ws->conn;
    ws->conn = NULL;
    /* kp_http_conn_shutdown unbinds us: no on_abort follows. */
    if (shutdown && conn)
        kp_http_conn_shutdown(conn);
    ws->dead = 1; /* freed by ws_leave, on the way out of our callback */
}

/* Every entry from the engine is bracketed by busy++ ... ws_leave(). */
static void ws_leave(hw_ws_t *ws)
{
    if (--ws->busy == 0 && ws->dead)
        free(ws);
}

/* --- frames --- */

/* Header length once the first two bytes are known (RFC 6455 §5.2). */
static size_t header_need(const uint8_t *h, size_t have)
{
    if (have < 2)
        return 2;
    size_t len7 = h[1] & 0x7f;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0);
}

static void ws_fail(hw_ws_t *ws, unsigned code)
{
    uint8_t frame[4] = {0x80 | WS_OP_CLOSE, 2, (uint8_t)(code >> 8), (uint8_t)code};
    kp_http_conn_send_raw(ws->conn, (const char *)frame, sizeof frame);
    ws_end(ws, 1);
}

static void ws_frame_done(hw_ws_t *ws)
{
    ws->hdr_len = 0;
    if (ws->closing)
        ws_end(ws, 1); /* RFC 6455 §5.5.1: close echoed, the server ends TCP */
    else
        ws->state = WS_HEADER;
}

static void ws_header_complete(hw_ws_t *ws)
{
    const uint8_t *h = ws->hdr;
    unsigned opcode = h[0] & 0x0f;
    size_t len7 = h[1] & 0x7f;
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    uint64_t len = len7;
    if (ext) {
        len = 0;
        for (size_t i = 0; i < ext; i++)
            len = len << 8 | h[2 + i];
    }
    /* §5.1: client frames are masked; §5.5: control frames are short and
     * whole; §5.2: the 64-bit length has its top bit clear. */
    if (!(h[1] & 0x80) || (opcode >= 0x8 && (len > 125 || !(h[0] & 0x80))) ||
        (ext == 8 && (len >> 63))) {
        ws_fail(ws, WS_CLOSE_PROTOCOL_ERROR);
        return;
    }
    memcpy(ws->mask, h + 2 + ext, 4);
    uint8_t out[10];
    out[0] = opcode == WS_OP_PING ? (uint8_t)((h[0] & 0xf0) | WS_OP_PONG) : h[0];
    out[1] = (uint8_t)len7; /* server frames are not masked */
    memcpy(out + 2, h + 2, ext);
    kp_http_conn_send_raw(ws->conn, (const char *)out, 2 + ext);
    if (ws->state == WS_DONE)
        return;
    ws->closing = opcode == WS_OP_CLOSE;
    ws->remaining = len;
    ws->offset = 0;
    ws->state = WS_PAYLOAD;
    if (len == 0)
        ws_frame_done(ws);
}

/* Consumes up to len bytes; returns how many. */
static size_t ws_consume(hw_ws_t *ws, const uint8_t *p, size_t len)
{
    if (ws->state == WS_HEADER) {
        size_t need = header_need(ws->hdr, ws->hdr_len);
        size_t n = need - ws->hdr_len < len ? need - ws->hdr_len : len;
        memcpy(ws->hdr + ws->hdr_len, p, n);
        ws->hdr_len += n;
        if (ws->hdr_len == header_need(ws->hdr, ws->hdr_len))
            ws_header_complete(ws);
        return n;
    }
    size_t n = len;
    if (n > ws->remaining)
        n = (size_t)ws->remaining;
    if (n > sizeof ws->app->scratch)
        n = sizeof ws->app->scratch;
    char *out = ws->app->scratch;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(p[i] ^ ws->mask[(ws->offset + i) & 3]);
    ws->offset += n;
    ws->remaining -= n;
    kp_http_conn_send_raw(ws->conn, out, n);
    if (ws->state == WS_PAYLOAD && ws->remaining == 0)
        ws_frame_done(ws);
    return n;
}

/* --- engine callbacks --- */

static void on_tunnel_data(void *ctx, const char *data, size_t len)
{
    hw_ws_t *ws = ctx;
    ws->busy++;
    if (!data) {
        ws_end(ws, 1); /* client EOF without a close frame */
    } else {
        const uint8_t *p = (const uint8_t *)data;
        while (len > 0 && ws->state != WS_DONE) {
            size_t n = ws_consume(ws, p, len);
            p += n;
            len -= n;
        }
        if (ws->state != WS_DONE && !ws->paused &&
            kp_http_conn_write_queue(ws->conn) >= KP_HTTP_HIGH_WATER) {
            ws->paused = 1;
            kp_http_conn_pause_tunnel(ws->conn);
        }
    }
    ws_leave(ws);
}

static void on_writable(void *ctx)
{
    hw_ws_t *ws = ctx;
    if (ws->state != WS_DONE && ws->paused) {
        ws->paused = 0;
        ws->busy++;
        kp_http_conn_resume_tunnel(ws->conn);
        ws_leave(ws);
    }
}

static void on_abort(void *ctx)
{
    hw_ws_t *ws = ctx;
    ws->busy++;
    ws->conn = NULL; /* gone: nothing more to send */
    ws_end(ws, 0);
    ws_leave(ws);
}

static const kp_http_request_ops_t ws_ops = {
    .on_writable = on_writable,
    .on_abort = on_abort,
    .on_tunnel_data = on_tunnel_data,
};

/* --- handshake --- */

static void refuse(kp_http_conn_t *conn, int status, const char *extra, const char *msg)
{
    size_t len = strlen(msg);
    kp_http_conn_send_head(conn, status, extra, strlen(extra), (int64_t)len);
    kp_http_conn_send_body(conn, msg, len);
    kp_http_conn_send_end(conn);
}

void hw_ws_handle(hw_app_t *app, kp_http_request_t *http)
{
    kp_http_conn_t *conn = http->conn;
    const kp_http_header_t *hs = http->headers;
    size_t n = http->n_headers;
    const kp_http_header_t *upgrade = kp_http_header_find(hs, n, "upgrade");
    const kp_http_header_t *key = kp_http_header_find(hs, n, "sec-websocket-key");
    const kp_http_header_t *version = kp_http_header_find(hs, n, "sec-websocket-version");

    hw_counters_enter(&app->counters);
    if (http->method_id != HTTP_GET || !http->upgrade || !upgrade ||
        !kp_http_value_has_token(upgrade->value, upgrade->value_len, "websocket")) {
        refuse(conn, 426,
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n",
               "/ws speaks WebSocket only: send GET with Connection: Upgrade and "
               "Upgrade: websocket\n");
        hw_counters_leave(&app->counters);
        return;
    }
    if (!version || !kp_http_name_eq(version->value, version->value_len, "13")) {
        /* RFC 6455 §4.4: say which version we speak. */
        refuse(conn, 426,
               "Sec-WebSocket-Version: 13\r\nContent-Type: text/plain; charset=utf-8\r\n",
               "unsupported Sec-WebSocket-Version (expected 13)\n");
        hw_counters_leave(&app->counters);
        return;
    }
    if (!key || key->value_len == 0 || key->value_len > 64) {
        refuse(conn, 400, "Content-Type: text/plain; charset=utf-8\r\n",
               "missing or malformed Sec-WebSocket-Key\n");
        hw_counters_leave(&app->counters);
        return;
    }
    hw_ws_t *ws = calloc(1, sizeof *ws);
    if (!ws) {
        refuse(conn, 503, "Content-Type: text/plain; charset=utf-8\r\n", "out of memory\n");
        hw_counters_leave(&app->counters);
        return;
    }

    /* §4.2.2: Sec-WebSocket-Accept = base64(SHA-1(key + GUID)). */
    hw_sha1_t sha;
    uint8_t digest[HW_SHA1_LEN];
    hw_sha1_init(&sha);
    hw_sha1_update(&sha, key->value, key->value_len);
    hw_sha1_update(&sha, WS_GUID, sizeof WS_GUID - 1);
    hw_sha1_final(&sha, digest);
    char head[128] = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ";
    size_t head_len = strlen(head);
    head_len += hw_base64_encode(digest, sizeof digest, head + head_len);
    memcpy(head + head_len, "\r\n", 2);
    head_len += 2;

    ws->app = app;
    ws->conn = conn;
    ws->state = WS_HEADER;
    ws->busy = 1;
    kp_http_conn_bind(conn, &ws_ops, ws);
    kp_http_conn_send_head(conn, 101, head, head_len, 0);
    if (ws->state != WS_DONE)
        kp_http_conn_start_tunnel(conn); /* may deliver bytes that came early */
    ws_leave(ws);
}
