/* What the activator tells operators, on its admin port: /status (JSON,
 * observe_status.h), /metrics (Prometheus text, observe_metrics.h), /load
 * (held and in-flight counts, for the other replicas) and /healthz. It
 * only reads the state; the modules that own it keep the records
 * (counters, histograms, the autoscaler's last decision). */
#ifndef KP_ACT_OBSERVE_H
#define KP_ACT_OBSERVE_H

#include "activator.h"

int act_observe_init(act_t *act, const char *host, int port);
void act_observe_close(act_t *act);

#endif
