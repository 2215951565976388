/* What Knative makes of a Service, as JSON objects ready to create: the
 * Configuration and Route (from the Service), a Revision (from the
 * Configuration), and a Revision's Deployment (the app and our
 * queue-proxy, with Knative's environment, probes and drain hook), its
 * two core Services and, for the hpa class, its HorizontalPodAutoscaler;
 * and a Route's placeholder core Service.
 * Each carries its owner's controller reference, so deleting the Service
 * lets Kubernetes' garbage collector remove the rest. A built object is
 * also the "want" that the live one is compared with (kn_json_covers). */
#ifndef KP_KN_BUILD_H
#define KP_KN_BUILD_H

#include <cJSON.h>
#include <time.h>

#include "model.h"

typedef struct kn_build_opts {
    const char *queue_image;      /* the queue-proxy container's image */
    const char *system_namespace; /* the activator's namespace (SYSTEM_NAMESPACE) */
    int progress_deadline_s;      /* config-deployment progress-deadline: 600 */
    const char *logging_level;    /* SERVING_LOGGING_LEVEL: "info" */
} kn_build_opts_t;

void kn_build_opts_init(kn_build_opts_t *o);

/* {apiVersion, kind, name, uid, controller: true, blockOwnerDeletion: true}
 * appended to obj's metadata.ownerReferences. */
int kn_set_owner(cJSON *obj, const cJSON *owner, const char *api_version, const char *kind);
/* Whether obj's controller reference names owner's uid. */
int kn_owned_by(const cJSON *obj, const cJSON *owner);

/* The Configuration {service}: the Service's template, labels and
 * annotations (less kubectl's last-applied and rollout ones). */
cJSON *kn_build_configuration(const cJSON *service);
/* The Route {service}: the Service's traffic with Knative's defaults. */
cJSON *kn_build_route(const cJSON *service, const kn_traffic_t *traffic);
/* The Revision name of a Configuration's current template: the one the
 * user gave (template.metadata.name) or {config}-{generation:05}. */
void kn_config_revision_name(const cJSON *config, char out[64]);
/* The Revision of config's current generation, named name; routing state
 * pending, stamped now. */
cJSON *kn_build_revision(const cJSON *config, const char *name, time_t now);

/* The labels a Revision's children carry (its own less routingState,
 * plus revision, revisionUID and app). */
cJSON *kn_child_labels(const cJSON *rev);
/* replicas < 0: left out (the live count is the autoscaler's). */
cJSON *kn_build_deployment(const cJSON *rev, const kn_revision_params_t *p,
                           const kn_build_opts_t *o, int replicas);
/* private != 0: {rev}-private, else {rev}; both select the revision's pods. */
cJSON *kn_build_k8s_service(const cJSON *rev, int private_);
/* The autoscaling/v2 HPA {rev} of an hpa-class revision. */
cJSON *kn_build_hpa(const cJSON *rev);
/* The core Service {route} that makes the Route's address.url resolve in
 * the cluster: an ExternalName to target (the activator Service's DNS
 * name), as Knative's MakeK8sPlaceholderService points it at the ingress. */
cJSON *kn_build_route_service(const cJSON *route, const char *target);

/* The user's readiness probe as the queue-proxy takes it
 * (SERVING_READINESS_PROBE): aimed at 127.0.0.1:port; a TCP connect when
 * there is none (or an exec probe, which the kubelet keeps running).
 * Returns a string to free. */
char *kn_readiness_probe_json(const cJSON *container, int port);

#endif
