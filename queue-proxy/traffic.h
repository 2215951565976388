/* The main port (QUEUE_SERVING_PORT): Knative's probes answered here, every
 * other request through the breaker to the app. */
#ifndef KP_QP_TRAFFIC_H
#define KP_QP_TRAFFIC_H

#include "queue_proxy.h"

/* The main server's request callback; ctx is the qp_t. */
void qp_on_main_request(kp_http_request_t *req, void *ctx);
/* The timer that expires requests queued for a breaker slot too long. */
void qp_queue_timer_init(qp_t *qp);

#endif
