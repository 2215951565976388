/* Readiness of a pod as the activator learns it: its queue-proxy answers
 * Knative's network probe, then the pod is marked ready in its revision. */
#ifndef KP_ACT_POD_PROBE_H
#define KP_ACT_POD_PROBE_H

#include "revision.h"

/* Probes until the queue-proxy answers (retries with backoff); no-op if a
 * probe is under way or the pod was removed. */
void act_pod_probe_start(act_pod_t *pod);
/* Before the pod is removed: the exchange under way is dropped. */
void act_pod_probe_stop(act_pod_t *pod);

#endif
