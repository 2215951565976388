/* Knative's names: the label and annotation keys its objects carry, the
 * names of what a Service becomes ({service}-00001, {rev}-deployment,
 * {rev}-private), and the hosts and URLs of a route. */
#ifndef KP_KN_NAMES_H
#define KP_KN_NAMES_H

#include <stddef.h>

#define KN_GROUP "serving.knative.dev"
#define KN_API_VERSION "serving.knative.dev/v1"

#define KN_L_SERVICE "serving.knative.dev/service"
#define KN_L_SERVICE_UID "serving.knative.dev/serviceUID"
#define KN_L_CONFIGURATION "serving.knative.dev/configuration"
#define KN_L_CONFIGURATION_UID "serving.knative.dev/configurationUID"
#define KN_L_CONFIGURATION_GENERATION "serving.knative.dev/configurationGeneration"
#define KN_L_REVISION "serving.knative.dev/revision"
#define KN_L_REVISION_UID "serving.knative.dev/revisionUID"
#define KN_L_ROUTING_STATE "serving.knative.dev/routingState"
#define KN_L_ROUTE "serving.knative.dev/route"
#define KN_L_VISIBILITY "networking.knative.dev/visibility"
#define KN_L_SKS "networking.internal.knative.dev/serverlessservice"
#define KN_L_SERVICE_TYPE "networking.internal.knative.dev/serviceType"

#define KN_A_ROUTING_STATE_MODIFIED "serving.knative.dev/routingStateModified"
#define KN_A_ROUTES "serving.knative.dev/routes"
#define KN_A_CREATOR "serving.knative.dev/creator"
#define KN_A_LAST_MODIFIER "serving.knative.dev/lastModifier"
#define KN_A_NO_GC "serving.knative.dev/no-gc"
#define KN_A_LAST_PINNED "serving.knative.dev/lastPinned"
#define KN_A_ROLLOUT_DURATION "serving.knative.dev/rollout-duration"
#define KN_A_ROLLOUT_DURATION_OLD "serving.knative.dev/rolloutDuration"
#define KN_A_LAST_APPLIED "kubectl.kubernetes.io/last-applied-configuration"
#define KN_A_CLASS "autoscaling.knative.dev/class"
#define KN_A_METRIC "autoscaling.knative.dev/metric"
#define KN_A_TARGET "autoscaling.knative.dev/target"
#define KN_A_MIN_SCALE "autoscaling.knative.dev/min-scale"
#define KN_A_MAX_SCALE "autoscaling.knative.dev/max-scale"
#define KN_A_INITIAL_SCALE "autoscaling.knative.dev/initial-scale"
#define KN_AUTOSCALING_PREFIX "autoscaling.knative.dev/"

#define KN_CLASS_KPA "kpa.autoscaling.knative.dev"
#define KN_CLASS_HPA "hpa.autoscaling.knative.dev"

#define KN_ROUTING_PENDING "pending"
#define KN_ROUTING_ACTIVE "active"
#define KN_ROUTING_RESERVE "reserve"

#define KN_USER_CONTAINER "user-container"
#define KN_QUEUE_CONTAINER "queue-proxy"
#define KN_QUEUE_PORT 8012
#define KN_QUEUE_TLS_PORT 8112
#define KN_QUEUE_ADMIN_PORT 8022
#define KN_QUEUE_METRICS_PORT 9090
#define KN_QUEUE_USER_METRICS_PORT 9091
#define KN_DEFAULT_USER_PORT 8080

/* Kubernetes names are at most 63 characters (DNS labels). */
#define KN_NAME_MAX 64

/* parent + suffix, kept within 63 characters as Knative's ChildName does:
 * a name that would be longer keeps a prefix of parent, then a hash of
 * the whole, then suffix, so two long parents still differ. */
void kn_child_name(char out[KN_NAME_MAX], const char *parent, const char *suffix);
/* {config}-{generation as 5 digits}: "helloworld-go-00001". */
void kn_revision_name(char out[KN_NAME_MAX], const char *config, long long generation);
/* Whether s is a DNS-1123 label (lower-case letters, digits, '-', not at
 * either end, at most 63). */
int kn_dns_label(const char *s);

/* Hosts and URLs of a route: "{name}.{ns}.{domain}", tagged
 * "{tag}-{name}.{ns}.{domain}" (tag NULL: untagged). */
void kn_route_host(char *out, size_t len, const char *tag, const char *name, const char *ns,
                   const char *domain);
void kn_route_url(char *out, size_t len, const char *tag, const char *name, const char *ns,
                  const char *domain);

#endif
