/* The activator's routing table from the Knative objects, on every
 * replica: each Route becomes a service of the activator's config whose
 * revisions are the Service's Revisions (containerConcurrency, timeouts,
 * autoscaling annotations, and why it cannot run when its Ready condition
 * is False) and whose traffic is the Route's status.traffic (or its spec
 * resolved, before the first status: latest ready, else latest created,
 * so the first requests wait for the first pod). Services of the file
 * config come first and win a name clash: a Knative Service of the same
 * namespace and name is not routed (kn_table_warn_hidden says so). */
#ifndef KP_KN_TABLE_H
#define KP_KN_TABLE_H

#include "activator/config/config.h"
#include "state.h"

/* out (zeroed by the caller) gets file's services (copies), domain and
 * autoscaler settings, then the derived services. sig (may be NULL) gets
 * a text (malloc'd) that is equal for equal derived parts and equal sets
 * of Services hidden by file ones. 0, or -1 on
 * allocation failure (out freed). */
int kn_table_build(kn_state_t *s, const kp_activator_config_t *file, kp_activator_config_t *out,
                   char **sig);

/* Logs a warning naming each Knative Service (its Route) that a service
 * of file hides. */
void kn_table_warn_hidden(kn_state_t *s, const kp_activator_config_t *file);

/* A deep copy of a service spec whose traffic points into its own
 * revisions. -1 on allocation failure (dst freed). */
int kn_service_spec_copy(kp_service_spec_t *dst, const kp_service_spec_t *src);

#endif
