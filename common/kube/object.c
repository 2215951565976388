/* Any object by resource type (object.h): one request per call, the
 * answer parsed for the caller, the RBAC rule a 401/403 needs named in
 * the log as for every other call. The callback runs exactly once: from
 * the request's end, or, when the client closes first, from the
 * request's release (status 0). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define OBJECT_TIMEOUT_MS 30000
#define MERGE_PATCH "application/merge-patch+json"

typedef struct object_call {
    kp_kube_object_cb cb;
    void *ctx;
    int answered;
} object_call_t;

static void call_done(void *ctx, int status, const char *body, size_t len, const char *err)
{
    object_call_t *c = ctx;
    c->answered = 1;
    /* A 2xx cut short (timeout, reset) is no answer either: its effect
     * is unknown, so it reads as "not reached". */
    if (status == 0 || (err && status / 100 == 2)) {
        c->cb(c->ctx, 0, NULL, err ? err : "the API could not be reached");
        return;
    }
    if (status / 100 != 2) {
        char msg[512];
        kp_kube_status_message(body, len, msg, sizeof(msg));
        c->cb(c->ctx, status, NULL, msg[0] ? msg : "no message");
        return;
    }
    cJSON *obj = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        c->cb(c->ctx, status, NULL, "the answer is not a JSON object");
        return;
    }
    c->cb(c->ctx, status, obj, "");
    cJSON_Delete(obj);
}

/* The request is gone: answered, or cancelled by kp_kube_close. */
static void call_free(void *ctx)
{
    object_call_t *c = ctx;
    if (!c->answered)
        c->cb(c->ctx, 0, NULL, "the kubernetes client closed before the answer");
    free(c);
}

static const char *object_name(const cJSON *obj)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(meta, "name");
    return cJSON_IsString(name) ? name->valuestring : NULL;
}

static int resource_valid(const kp_kube_resource_t *res)
{
    return res && res->plural && res->plural[0] && res->version && res->version[0] &&
           strlen(res->plural) < 48 && !strchr(res->plural, '/') && !strchr(res->version, '/') &&
           (!res->group || !strchr(res->group, '/'));
}

static int object_call(kp_kube_t *k, const kp_kube_resource_t *res, const char *ns,
                       const char *name, int with_name, const char *sub, const char *method,
                       const char *verb, const char *content_type, const cJSON *body,
                       const char *raw_body, kp_kube_object_cb cb, void *ctx)
{
    if (!resource_valid(res) || !kp_kube_name_valid(ns) || !cb ||
        (with_name && !kp_kube_name_valid(name)))
        return -1;
    char path[1024];
    if (kp_kube_object_path(res, ns, with_name ? name : NULL, sub, path, sizeof(path)) != 0)
        return -1;
    char *json = body ? cJSON_PrintUnformatted(body) : NULL;
    if (body && !json)
        return -1;
    object_call_t *c = calloc(1, sizeof(*c));
    if (!c) {
        free(json);
        return -1;
    }
    c->cb = cb;
    c->ctx = ctx;
    char rbac_resource[64];
    snprintf(rbac_resource, sizeof(rbac_resource), "%s%s%s", res->plural, sub ? "/" : "",
             sub ? sub : "");
    kp_kube_req_opts_t o = {
        .method = method,
        .path = path,
        .content_type = content_type,
        .body = json ? json : raw_body,
        .timeout_ms = OBJECT_TIMEOUT_MS,
        .rbac = {verb, rbac_resource, res->group ? res->group : "", ns},
        .on_done = call_done,
        .ctx = c,
        .free_ctx = call_free,
    };
    kp_kube_req_t *r = kp_kube_request(k, &o);
    free(json);
    if (!r) {
        free(c); /* cb will not run: the caller hears -1 */
        return -1;
    }
    return 0;
}

int kp_kube_object_get(kp_kube_t *k, const kp_kube_resource_t *res, const char *ns,
                       const char *name, kp_kube_object_cb cb, void *ctx)
{
    return object_call(k, res, ns, name, 1, NULL, "GET", "get", NULL, NULL, NULL, cb, ctx);
}

int kp_kube_object_create(kp_kube_t *k, const kp_kube_resource_t *res, const char *ns,
                          const cJSON *obj, kp_kube_object_cb cb, void *ctx)
{
    const char *name = object_name(obj);
    if (!kp_kube_name_valid(name))
        return -1;
    return object_call(k, res, ns, NULL, 0, NULL, "POST", "create", "application/json", obj, NULL,
                       cb, ctx);
}

int kp_kube_object_replace(kp_kube_t *k, const kp_kube_resource_t *res, const char *ns,
                           const cJSON *obj, kp_kube_object_cb cb, void *ctx)
{
    return object_call(k, res, ns, object_name(obj), 1, NULL, "PUT", "update", "application/json",
                       obj, NULL, cb, ctx);
}

int kp_kube_object_replace_status(kp_kube_t *k, const kp_kube_resource_t *res, const char *ns,
                                  const cJSON *obj, kp_kube_object_cb cb, void *ctx)
{
    return object_call(k, res, ns, object_name(obj), 1, "status", "PUT", "update",
                       "application/json", obj, NULL, cb, ctx);
}

int kp_kube_object_merge_patch(kp_kube_t *k, const kp_kube_resource_t *res, const char *ns,
                               const char *name, const cJSON *patch, kp_kube_object_cb cb,
                               void *ctx)
{
    if (!cJSON_IsObject(patch))
        return -1;
    return object_call(k, res, ns, name, 1, NULL, "PATCH", "patch", MERGE_PATCH, patch, NULL, cb,
                       ctx);
}

int kp_kube_object_delete(kp_kube_t *k, const kp_kube_resource_t *res, const char *ns,
                          const char *name, kp_kube_object_cb cb, void *ctx)
{
    /* Background: the API deletes the object now and its garbage
     * collector the ones it owns, as kubectl delete does. */
    static const char options[] = "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\","
                                  "\"propagationPolicy\":\"Background\"}";
    return object_call(k, res, ns, name, 1, NULL, "DELETE", "delete", "application/json", NULL,
                       options, cb, ctx);
}
