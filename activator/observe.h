/* What the activator tells operators: the admin server (/status JSON,
 * /metrics Prometheus text, /healthz), JSON log lines for scale decisions
 * and cold starts, and the cold-start histogram. */
#ifndef KP_ACT_OBSERVE_H
#define KP_ACT_OBSERVE_H

#include "activator.h"

int act_observe_init(act_t *act, const char *host, int port);
void act_observe_close(act_t *act);
/* A held request left the hold because a pod became ready. */
void act_observe_cold_start(act_revision_t *rev, double held_seconds);
void act_observe_scale(act_revision_t *rev, int from, int to, const char *why);

#endif
