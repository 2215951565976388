/* The sample app ("helloworld") that tests, benchmarks and the demo run
 * behind the queue-proxy: its configuration and its one state object, owned
 * by main() for the life of the process. */
#ifndef HW_APP_H
#define HW_APP_H

#include <stdint.h>
#include <uv.h>

#include "counters.h"
#include "http/head.h"
#include "http/server.h"

/* 'x' bytes that bytes= and drip= bodies are cut from. */
#define HW_FILL_SIZE (64 * 1024)
/* Room for a /headers answer ("Name: value\n" per header; a head holds at
 * most KP_HTTP_MAX_HEAD bytes of names and values) and for unmasking
 * WebSocket payload before echoing it. */
#define HW_SCRATCH_SIZE (KP_HTTP_MAX_HEAD + 4 * KP_HTTP_MAX_HEADERS)

typedef struct hw_config {
    int port;
    const char *host;
    const char *target;
    uint64_t startup_delay_ms;
} hw_config_t;

typedef struct hw_req hw_req_t;

typedef struct hw_app {
    uv_loop_t *loop;
    hw_config_t cfg;
    kp_http_server_t server;
    int listening;
    int stopping;
    int exit_code;
    uv_timer_t startup_timer;
    uv_signal_t sigterm, sigint;
    hw_counters_t counters;
    char *hello; /* "Hello $TARGET!\n" */
    size_t hello_len;
    hw_req_t *free_reqs; /* request states whose timer is closed, for reuse */
    /* The engine copies whatever the kernel does not take at once, so
     * these may be reused as soon as a send call returns. */
    char fill[HW_FILL_SIZE];
    char scratch[HW_SCRATCH_SIZE];
} hw_app_t;

/* config.c */
extern const char hw_usage[];
/* Reads PORT, HOST, TARGET, STARTUP_DELAY_MS. 0, or -1 with a message. */
int hw_config_load(hw_config_t *cfg, char *err, size_t errlen);

/* handlers.c: the server's request callback (ctx is the app). */
void hw_on_request(kp_http_request_t *req, void *ctx);
/* Frees the request states kept for reuse; at exit, once the loop ended. */
void hw_handlers_free(hw_app_t *app);

/* websocket.c: GET /ws; answers or takes over the connection. */
void hw_ws_handle(hw_app_t *app, kp_http_request_t *req);

#endif
