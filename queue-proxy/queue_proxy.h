/* The queue-proxy's shared state: one per process, owned by main.c and
 * handed to each of its servers as their context. The modules that act on
 * it have headers of their own (traffic.h, drain.h, stats_http.h). */
#ifndef KP_QUEUE_PROXY_H
#define KP_QUEUE_PROXY_H

#include <stdint.h>
#include <uv.h>

#include "breaker.h"
#include "http/server.h"
#include "http/upstream.h"
#include "http/proxy.h"
#include "qp_config.h"
#include "readiness.h"
#include "req_metrics.h"
#include "request_log.h"
#include "autoscaling/stats.h"

typedef struct qp_drain_waiter qp_drain_waiter_t;

typedef struct qp {
    uv_loop_t *loop;
    kp_qp_config_t cfg;
    uint64_t start_ns;

    kp_http_server_t main_server;  /* QUEUE_SERVING_PORT: probes and traffic */
    kp_http_server_t admin_server; /* /wait-for-drain */
    kp_http_server_t stats_server; /* the autoscaler's stats */
    kp_http_server_t user_metrics_server;
    int user_metrics_enabled;
    int servers_open;

    kp_upstream_pool_t *app_pool;
    char app_host[80]; /* "127.0.0.1:8080": Host for requests that had none */
    kp_breaker_t breaker;
    kp_proxy_opts_t proxy_opts;
    uint64_t queue_timeout_ns; /* how long a request may wait for a slot */
    uv_timer_t queue_timer;    /* expires the oldest waiters */

    kp_stats_t stats;
    kp_stat_report_t last_report;
    uv_timer_t report_timer;
    kp_req_metrics_t *req_metrics;
    kp_reqlog_t *request_log;
    kp_readiness_t *readiness;
    size_t traffic_in_flight;
    /* Requests that found every slot taken and waited in the breaker's
     * queue: what the activators, together, should never cause. */
    uint64_t queued_requests;

    /* Drain: see drain.c. */
    int draining;
    int quiet_reached; /* the quiet period passed once */
    int stopped_accepting;
    uint64_t last_traffic_ns;
    uv_timer_t drain_timer;
    qp_drain_waiter_t *drain_waiters;
    void (*drained)(struct qp *qp); /* nothing left in flight after the port closed */
    uv_signal_t sigterm;
    uv_signal_t sigint;
    int exit_code;
} qp_t;

#endif
