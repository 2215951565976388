/* The activator's traffic port: finds the revision a request is for (by
 * Knative's revision headers or by Host), claims a pod slot from the
 * revision's throttler, and proxies the request to the pod it is granted. */
#ifndef KP_ACT_HANDLER_H
#define KP_ACT_HANDLER_H

#include "activator.h"

/* The traffic server's request callback; ctx is the act_t. */
void act_on_request(kp_http_request_t *req, void *ctx);

#endif
