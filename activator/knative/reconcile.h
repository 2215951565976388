/* The reconcilers, one per kind Knative's controller has: each reads the
 * object and what it depends on from the caches, sends the writes that
 * bring the children in line (only what differs), and writes the status
 * when it changed. key is the work key (retried on failure). */
#ifndef KP_KN_RECONCILE_H
#define KP_KN_RECONCILE_H

#include "state.h"

void kn_reconcile_service(kn_state_t *s, const char *key, const char *ns, const char *name);
void kn_reconcile_configuration(kn_state_t *s, const char *key, const char *ns, const char *name);
void kn_reconcile_revision(kn_state_t *s, const char *key, const char *ns, const char *name);
void kn_reconcile_route(kn_state_t *s, const char *key, const char *ns, const char *name);

#endif
