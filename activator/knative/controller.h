/* Knative's Service API served by the activator: informers on Services,
 * Configurations, Revisions, Routes, Deployments, core Services, HPAs and
 * the revisions' Pods in each served namespace (one list+watch per kind
 * and namespace, on every replica); the reconcilers run on the Lease
 * holder only, fed by a de-duplicating work queue (a child's event queues
 * its owner), and everything is reconciled again when this replica
 * becomes the holder. Every replica derives the activator's routing table
 * from the same caches and applies it, merged with the file config,
 * whenever it changes. */
#ifndef KP_KN_CONTROLLER_H
#define KP_KN_CONTROLLER_H

#include <uv.h>

#include "activator/config/config.h"
#include "kube/client.h"

typedef struct kn_controller kn_controller_t;

typedef struct kn_controller_opts {
    kp_kube_t *kube;
    const char *const *namespaces; /* served namespaces */
    size_t n_namespaces;
    /* The queue-proxy image; NULL: the image this activator runs, read
     * from its own Pod (pod_name in pod_namespace). */
    const char *queue_image;
    const char *pod_name;
    const char *pod_namespace; /* also SYSTEM_NAMESPACE of the queue-proxies */
    const char *domain;        /* config-domain: "example.com" */
    /* The activator's Service in pod_namespace, which every Route's
     * placeholder Service names: "kp-activator". */
    const char *ingress_service;
    int progress_deadline_s; /* config-deployment progress-deadline: 600 */
    /* config-gc keys and values ("min-non-active-revisions"...), checked
     * at start by kn_controller_check_gc. */
    const char *const *gc_keys;
    const char *const *gc_values;
    size_t n_gc;
    /* Takes a merged config over (the activator's act_revisions_apply);
     * nonzero: it could not (the next change tries again). */
    int (*apply)(void *ctx, kp_activator_config_t *cfg);
    void *ctx;
} kn_controller_opts_t;

/* -1 with why when a config-gc key or value is not accepted. */
int kn_controller_check_gc(const kn_controller_opts_t *o, char *why, size_t why_len);

/* NULL on allocation failure. Writes nothing until set_leader(1). */
kn_controller_t *kn_controller_start(uv_loop_t *loop, const kn_controller_opts_t *o);
void kn_controller_set_leader(kn_controller_t *c, int leader);
/* The file config now (taken over): merged with the derived services and
 * applied at once. -1 (cfg freed) when the apply failed. */
int kn_controller_set_file_config(kn_controller_t *c, kp_activator_config_t *cfg);
/* Stops the informers and the queue; the memory goes once the writes
 * under way have been answered (or the client closed). */
void kn_controller_stop(kn_controller_t *c);

#endif
