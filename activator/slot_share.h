/* How activator replicas split a revision's pod slots so that together
 * they never send a pod more than its containerConcurrency. */
#ifndef KP_ACT_SLOT_SHARE_H
#define KP_ACT_SLOT_SHARE_H

#include <stddef.h>

/* The slots of one pod that belong to replica `self` (0-based) of
 * `replicas`, for a pod of `cc` slots at `ordinal` in the revision's pods
 * sorted by name. The revision's slots are numbered pod after pod and
 * dealt to the replicas in turn (slot g goes to replica g mod replicas),
 * so the replicas' shares of every pod add up to exactly cc and each
 * replica's total differs from another's by at most one, CC < replicas
 * included. Every replica sees the same pods and replicas in the same
 * order (EndpointSlices), so each computes its own share alone. */
int act_slot_share(int cc, int replicas, int self, size_t ordinal);

#endif
