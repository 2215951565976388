/* The kubernetes backend: a revision is a Deployment (scaled through its
 * scale subresource) and a Service whose EndpointSlices name its pods. */
#ifndef KP_ACT_BACKEND_KUBERNETES_H
#define KP_ACT_BACKEND_KUBERNETES_H

#include "backend.h"
#include "kube/client.h"

typedef struct act_kube_opts {
    kp_kube_config_t kube;     /* API address and credentials */
    const char *identity;      /* this replica's name in the Lease (POD_NAME) */
    const char *lease_namespace; /* where the Lease lives (POD_NAMESPACE, "default") */
    const char *lease_name;    /* default "kp-activator" */
    int lease_duration_s;      /* default 15 */
    /* The activators' own Service: its ready endpoints are the replicas
     * that share each pod's capacity. NULL: this replica is alone. */
    const char *activator_service;
    /* Its endpoints (all its slices), each time they change. */
    void (*activators_changed)(void *ctx, const kp_kube_endpoint_t *eps, size_t n);
    /* This replica became the Lease holder (1) or stopped being it (0).
     * Optional. */
    void (*leader_changed)(void *ctx, int is_leader);
    void *ctx;
} act_kube_opts_t;

void act_kube_opts_default(act_kube_opts_t *opts);
/* Per revision, Knative's names unless its annotations say otherwise:
 * kp.dev/deployment ({revision}-deployment) and kp.dev/service
 * ({revision}-private). NULL on allocation failure. */
act_backend_t *act_backend_kubernetes_new(uv_loop_t *loop, const act_backend_events_t *events,
                                          const act_kube_opts_t *opts);
/* The backend's API client, for others that talk to the same API (valid
 * until the backend is closed). */
kp_kube_t *act_backend_kubernetes_client(act_backend_t *b);

#endif
