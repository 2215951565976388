/* Knative's condition sets: a "living" set has a happy condition (Ready)
 * that is True when every dependent is True, False with the first False
 * dependent's reason and message, Unknown otherwise. A condition's
 * lastTransitionTime moves only when its status changes; the list is kept
 * sorted by type (knative.dev/pkg's ConditionManager does both), so a
 * status rebuilt from unchanged inputs equals the one stored. */
#ifndef KP_KN_CONDITIONS_H
#define KP_KN_CONDITIONS_H

#include <cJSON.h>
#include <time.h>

typedef struct kn_condset {
    const char *happy;
    const char *const *dependents; /* NULL-terminated */
} kn_condset_t;

extern const kn_condset_t kn_service_conditions; /* ConfigurationsReady, RoutesReady */
extern const kn_condset_t kn_config_conditions;  /* Ready only */
extern const kn_condset_t
    kn_route_conditions; /* AllTrafficAssigned, IngressReady, CertificateProvisioned */
extern const kn_condset_t
    kn_revision_conditions; /* ResourcesAvailable, ContainerHealthy (+ Active) */

typedef struct kn_conds {
    const kn_condset_t *set;
    cJSON *list; /* the conditions array being built; owned until taken */
    time_t now;
} kn_conds_t;

#define KN_TRUE "True"
#define KN_FALSE "False"
#define KN_UNKNOWN "Unknown"

/* Starts from old (a status.conditions array, or NULL) so times carry over;
 * every condition of the set is present (Unknown when new). -1 on
 * allocation failure. */
int kn_conds_init(kn_conds_t *c, const kn_condset_t *set, const cJSON *old, time_t now);
/* reason and message may be NULL (omitted). */
int kn_conds_set(kn_conds_t *c, const char *type, const char *status, const char *reason,
                 const char *message);
/* The condition's status ("True"...), or NULL. */
const char *kn_conds_status(const kn_conds_t *c, const char *type);
/* Derives the happy condition from the dependents (sets with dependents
 * only), sorts, and hands the array over (the caller frees it). */
cJSON *kn_conds_finish(kn_conds_t *c);
void kn_conds_free(kn_conds_t *c);

/* The condition of that type in an object's status.conditions, or NULL. */
const cJSON *kn_condition(const cJSON *obj, const char *type);
/* Its status, or "Unknown" when absent. */
const char *kn_condition_status(const cJSON *obj, const char *type);
/* Ready True and status.observedGeneration == metadata.generation. */
int kn_is_ready(const cJSON *obj);
/* Ready False and status.observedGeneration == metadata.generation. */
int kn_is_failed(const cJSON *obj);

#endif
