/* Graceful drain, as Knative's queue-proxy does it (see drain.c), and the
 * admin port's /wait-for-drain. */
#ifndef KP_QP_DRAIN_H
#define KP_QP_DRAIN_H

#include "queue_proxy.h"

/* drained runs once the port has closed and nothing is in flight: the
 * owner closes what is left and the process exits. */
void qp_drain_init(qp_t *qp, void (*drained)(qp_t *qp));
void qp_drain_start(qp_t *qp);
void qp_drain_note_traffic(qp_t *qp);
/* A traffic request ended: /wait-for-drain may answer, the process may be
 * able to exit now. */
void qp_drain_check(qp_t *qp);
/* The admin server's request callback; ctx is the qp_t. GET
 * /wait-for-drain (any spelling Knative's Go mux routes there) starts
 * draining and answers 200 once drained. */
void qp_on_admin_request(kp_http_request_t *req, void *ctx);

#endif
