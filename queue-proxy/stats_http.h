/* The autoscaler's stats port (:9090) and the user metrics port (:9091). */
#ifndef KP_QP_STATS_HTTP_H
#define KP_QP_STATS_HTTP_H

#include "queue_proxy.h"

/* Starts the reporting window (one per second). */
void qp_stats_init(qp_t *qp);
void qp_on_stats_request(kp_http_request_t *req, void *ctx);
void qp_on_user_metrics_request(kp_http_request_t *req, void *ctx);

#endif
