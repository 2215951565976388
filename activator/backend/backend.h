/* The small interface between the activator and whatever runs pods: the
 * activator says how many pods a revision should have; the backend reports
 * pods as they appear and disappear. Implementations: local.c (processes
 * on this machine) and kubernetes.c (Deployments and EndpointSlices). */
#ifndef KP_ACT_BACKEND_H
#define KP_ACT_BACKEND_H

#include <uv.h>

#include "activator/config/config.h"

/* Where a pod's queue-proxy can be reached. */
typedef struct act_pod_info {
    char id[128];     /* unique within the revision, e.g. "helloworld-go-00001-1" */
    char ip[64];      /* IP literal */
    int serving_port; /* queue-proxy main port (Knative: 8012) */
    int metrics_port; /* autoscaler stats (Knative: 9090) */
    int admin_port;   /* drain (Knative: 8022) */
} act_pod_info_t;

typedef struct act_backend act_backend_t;

/* Events from the backend, on the loop thread. rev_ctx is what the
 * activator passed to add_revision. */
typedef struct act_backend_events {
    /* Returns the activator's handle for the pod, or NULL: it was left
     * out (no memory), and pod_removed is not owed. */
    void *(*pod_added)(void *rev_ctx, const act_pod_info_t *pod);
    /* The pod is going away (scale down, death): send it nothing new.
     * pod: pod_added's handle, so nothing is searched. */
    void (*pod_removed)(void *rev_ctx, void *pod);
    /* Something went wrong with the revision's pods that the activator
     * cannot see by itself (a pod that did not start or died, a scale
     * not written): reason says what, to what, for operators. Optional. */
    void (*revision_failed)(void *rev_ctx, const char *reason);
    /* A pod's app could not start or exited (pod: pod_added's handle, or
     * NULL when no pod was made): reason in Knative's words,
     * "ExitCode1: <its last line on stderr>". The activator decides
     * whether the revision cannot run (the pod was never ready). Called
     * before pod_removed. Optional. */
    void (*pod_failed)(void *rev_ctx, void *pod, const char *reason);
} act_backend_events_t;

typedef struct act_backend_revision act_backend_revision_t;

struct act_backend {
    const char *name; /* "local", "kubernetes" */
    /* Registers a revision; the backend reports its pods through events.
     * spec stays valid (its contents may change) until remove_revision. */
    act_backend_revision_t *(*add_revision)(act_backend_t *b, const kp_revision_spec_t *spec,
                                            void *rev_ctx);
    /* The revision is gone from the activator (no pod left, none asked
     * for): no event about it follows; the backend frees its state once
     * its own work for it has ended (pods still stopping, a write under
     * way). */
    void (*remove_revision)(act_backend_t *b, act_backend_revision_t *r);
    /* Desired pod count; the backend converges to it and keeps it (a pod
     * that dies is replaced while the count says so). */
    void (*set_scale)(act_backend_t *b, act_backend_revision_t *r, int pods);
    /* A request waits and the revision has no ready pod. Where another
     * replica decides the scale, this one may start a pod at once rather
     * than wait for that replica to learn of the request. Optional. */
    void (*wake)(act_backend_t *b, act_backend_revision_t *r);
    /* Whether this replica's set_scale reaches the pods now (the Lease
     * holder does; the others' decisions are only observed). Optional:
     * absent means always. */
    int (*writes_scale)(const act_backend_t *b);
    /* Stops every pod (drain first) and frees the backend; on_closed runs
     * when no process or handle is left. */
    void (*close)(act_backend_t *b, void (*on_closed)(void *ctx), void *ctx);
};

#endif
