/* The other activator replicas' load, read from their admin port (the
 * same port as ours: they run the same Deployment) into each revision's
 * peer_load, so each replica's autoscaler sees the whole demand. */
#ifndef KP_ACT_PEERS_H
#define KP_ACT_PEERS_H

#include <stddef.h>

#include "activator.h"

typedef struct act_peers act_peers_t;

void act_peers_start(act_t *act, int admin_port);
/* The peers' addresses now (ours left out). */
void act_peers_set(act_t *act, const char *const *ips, size_t n);
void act_peers_stop(act_t *act);
/* The revision is about to be freed: what peers said of it is dropped. */
void act_peers_forget_revision(act_t *act, const act_revision_t *rev);

#endif
