/* Any Kubernetes object, by resource type: read, create, replace, patch
 * and delete, and the status subresource. The reconciler's write side.
 * Bodies and answers are cJSON; nothing is cached here (informer.h). */
#ifndef KP_KUBE_OBJECT_H
#define KP_KUBE_OBJECT_H

#include <cJSON.h>

#include "client.h"

/* A resource type: group "" is the core API (/api/v1), any other is
 * /apis/{group}/{version}. plural names the collection ("services").
 * kind is the object's kind ("Service"), for logs and created objects. */
typedef struct kp_kube_resource {
    const char *group;
    const char *version;
    const char *plural;
    const char *kind;
} kp_kube_resource_t;

/* The answer to one call. status: the HTTP status (200, 201, 404, 409...),
 * 0 when the API could not be reached or the client closed first (message
 * says which). obj: the object the API returned on 2xx (NULL otherwise),
 * valid only during the call. message: the Status message of an error
 * ("" on success). Runs exactly once per accepted call, never from inside
 * the call that started it. 409 means: read again and retry (Conflict on a
 * stale resourceVersion, or AlreadyExists on create). */
typedef void (*kp_kube_object_cb)(void *ctx, int status, const cJSON *obj, const char *message);
/* Also: a 2xx whose body is not a JSON object gives obj NULL and a
 * message saying so; a DELETE's obj is the API's answer (a Status, or the
 * object while finalizers hold it). When kp_kube_close stops a call in
 * flight, cb runs from inside kp_kube_close (status 0). A 401/403 is also
 * logged once per verb and resource with the RBAC rule it needs ("update"
 * on "{plural}/status" for replace_status). */

/* Each returns 0 when the request is on its way (cb will run), -1 when it
 * could not start (bad name, out of memory, client closing: cb will not
 * run). ns and name must be valid Kubernetes names. */
int kp_kube_object_get(kp_kube_t *k, const kp_kube_resource_t *res, const char *ns,
                       const char *name, kp_kube_object_cb cb, void *ctx);
/* POST to the collection; obj carries metadata.name. */
int kp_kube_object_create(kp_kube_t *k, const kp_kube_resource_t *res, const char *ns,
                          const cJSON *obj, kp_kube_object_cb cb, void *ctx);
/* PUT of the whole object; its metadata.resourceVersion is the
 * precondition (409 when stale). The status subresource is ignored by the
 * API here for kinds that have one. */
int kp_kube_object_replace(kp_kube_t *k, const kp_kube_resource_t *res, const char *ns,
                           const cJSON *obj, kp_kube_object_cb cb, void *ctx);
/* PUT .../{name}/status: only the status is written (same precondition). */
int kp_kube_object_replace_status(kp_kube_t *k, const kp_kube_resource_t *res, const char *ns,
                                  const cJSON *obj, kp_kube_object_cb cb, void *ctx);
/* PATCH with a JSON merge patch (RFC 7386, application/merge-patch+json). */
int kp_kube_object_merge_patch(kp_kube_t *k, const kp_kube_resource_t *res, const char *ns,
                               const char *name, const cJSON *patch, kp_kube_object_cb cb,
                               void *ctx);
/* DELETE with propagationPolicy Background: owned objects are collected
 * by the API's garbage collector. */
int kp_kube_object_delete(kp_kube_t *k, const kp_kube_resource_t *res, const char *ns,
                          const char *name, kp_kube_object_cb cb, void *ctx);

#endif
