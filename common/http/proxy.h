/* Reverse proxy for one request: joins a server-side request to an
 * upstream connection, streams both bodies with backpressure, tunnels
 * upgrades, and ends the exchange the way Knative does on timeouts (504
 * before the first response byte, a cut connection after). */
#ifndef KP_PROXY_H
#define KP_PROXY_H

#include <stdint.h>

#include "h2_upstream.h"
#include "server.h"
#include "upstream.h"

typedef struct kp_proxy kp_proxy_t;

typedef struct kp_proxy_opts {
    uint64_t timeout_ms;                /* whole request; 0 = none */
    uint64_t response_start_timeout_ms; /* until the first response byte; 0 = none */
    uint64_t idle_timeout_ms;           /* between response writes; 0 = none */
    /* When the upstream cannot be reached at all (its connect refused or
     * failed, so not a byte of the request left), end with
     * KP_PROXY_UNREACHABLE and hand the client's request back unanswered,
     * its body unread, for the caller to send elsewhere. Otherwise 502. */
    int hand_back_unreachable;
    /* h2c to the same upstream; NULL: HTTP/1.1 only. An HTTP/2 request
     * goes over it, an HTTP/1 one over the HTTP/1.1 pool: Knative's
     * transports pick the next hop's protocol by the request's. */
    kp_h2c_pool_t *h2_pool;
    /* HTTP/1 requests go over h2_pool too (upgrades excepted): the next
     * hop speaks only h2c, as Knative's ingress treats a revision whose
     * port is named h2c. */
    int h2_always;
} kp_proxy_opts_t;

/* How the request head changes on its way upstream. */
typedef struct kp_proxy_edits {
    const char *host; /* Host sent upstream; NULL keeps the client's */
    size_t host_len;
    const char *const *drop; /* header names removed */
    size_t n_drop;
    const char *add; /* raw "Name: value\r\n" lines added */
    size_t add_len;
    int append_forwarded_for; /* X-Forwarded-For += client address */
} kp_proxy_edits_t;

typedef enum {
    KP_PROXY_OK = 0,
    KP_PROXY_UPSTREAM_FAILED, /* 502, or cut after the response started */
    KP_PROXY_TIMEOUT,         /* 504, or cut after the response started */
    KP_PROXY_CLIENT_GONE,
    KP_PROXY_UNREACHABLE, /* hand_back_unreachable: nothing sent, nothing answered */
} kp_proxy_outcome_t;

typedef struct kp_proxy_result {
    int status; /* status sent to the client (0 when none) */
    kp_proxy_outcome_t outcome;
    uint64_t bytes_sent; /* response bytes written to the client */
    int upgraded;
} kp_proxy_result_t;

typedef void (*kp_proxy_done_cb)(void *ctx, const kp_proxy_result_t *r);

/* Starts proxying req (whose body is still unread) to pool (or to
 * opts->h2_pool, see there). Timeouts count
 * from start_ns (the request's arrival, so time spent queued counts).
 * done runs exactly once, after the client side is finished with. */
int kp_proxy_start(kp_http_request_t *req, kp_upstream_pool_t *pool, const kp_proxy_opts_t *opts,
                   const kp_proxy_edits_t *edits, uint64_t start_ns, kp_proxy_done_cb done,
                   void *ctx);

#endif
