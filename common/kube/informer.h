/* Every object of one resource type in one namespace, kept current by a
 * list then a watch from its resourceVersion (client-go's informer): one
 * request stream per resource type, whatever the number of objects.
 * Bookmarks requested; a 410 (HTTP or an ERROR event) relists, and the
 * difference between the cache and the new list is delivered as events;
 * a failed or ended stream reconnects with jittered exponential backoff
 * (200 ms doubling to 30 s). A resource the API does not serve (404: a
 * CRD not installed) is logged once, naming it, and retried the same way. */
#ifndef KP_KUBE_INFORMER_H
#define KP_KUBE_INFORMER_H

#include <cJSON.h>

#include "client.h"
#include "object.h"

typedef struct kp_kube_informer kp_kube_informer_t;

typedef enum {
    KP_INFORMER_ADDED,
    KP_INFORMER_UPDATED,
    KP_INFORMER_DELETED,
} kp_kube_informer_event_t;

typedef struct kp_kube_informer_ops {
    /* obj: the object now (for DELETED: its last state); old: the cached
     * one it replaces (UPDATED, DELETED), NULL for ADDED. Both are the
     * informer's, valid during the call only. An UPDATED whose
     * resourceVersion did not change is not delivered. */
    void (*on_event)(void *ctx, kp_kube_informer_event_t ev, const cJSON *obj, const cJSON *old);
    /* After the first complete list has been delivered (and after each
     * relist): the cache is now as complete as the API's. May be NULL. */
    void (*on_synced)(void *ctx);
} kp_kube_informer_ops_t;

/* label_selector: NULL or "" for every object. The informer keeps res's
 * strings by pointer (use static resource descriptions). NULL on failure. */
kp_kube_informer_t *kp_kube_informer_start(kp_kube_t *k, const kp_kube_resource_t *res,
                                           const char *ns, const char *label_selector,
                                           const kp_kube_informer_ops_t *ops, void *ctx);
/* No callback runs after this; safe from inside on_event and on_synced.
 * kp_kube_close also stops it: the pointer is then freed once the loop
 * runs on, so do not stop it after the client closed. */
void kp_kube_informer_stop(kp_kube_informer_t *inf);

/* What the callbacks can rely on:
 * - The cache is updated before on_event: during ADDED and UPDATED,
 *   kp_kube_informer_get(name) is obj; during DELETED it is NULL.
 * - Events come in the API's order; the first list's objects come as
 *   ADDED (in the list's order) before the first on_synced.
 * - After a relist (410, or an ended stream whose resourceVersion is
 *   gone) only the difference comes: ADDED for new names, UPDATED for a
 *   changed resourceVersion, then DELETED (obj == old, the last cached
 *   state) for names the new list lacks; then on_synced again. An object
 *   deleted and re-created under the same name between two lists reads
 *   as UPDATED (compare metadata.uid to tell).
 * - Cached objects have no metadata.managedFields (a PUT without it
 *   keeps the API's). They are the informer's: copy (cJSON_Duplicate)
 *   what must outlive the callback or the current loop turn.
 * - Nothing runs from inside kp_kube_informer_start. */

/* 1 once the first list is in. */
int kp_kube_informer_synced(const kp_kube_informer_t *inf);
/* The cached object of that name, or NULL; valid until the loop runs on. */
const cJSON *kp_kube_informer_get(const kp_kube_informer_t *inf, const char *name);
size_t kp_kube_informer_count(const kp_kube_informer_t *inf);
/* Calls fn on every cached object, in no particular order; fn must not
 * stop the informer. */
void kp_kube_informer_each(const kp_kube_informer_t *inf,
                           void (*fn)(void *ctx, const cJSON *obj), void *ctx);

#endif
