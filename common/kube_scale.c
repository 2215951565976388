/* The scale subresource of apps/v1 Deployments: read and set spec.replicas
 * (a Role needs deployments/scale with get and patch, nothing more). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube_internal.h"

typedef struct scale_call {
    kp_kube_scale_cb cb;
    void *ctx;
} scale_call_t;

static void scale_done(void *ctx, int status, const char *body, size_t len, const char *err)
{
    scale_call_t *c = ctx;
    int replicas = -1;
    char msg[512] = "";
    if (status / 100 == 2 && !err) {
        cJSON *root = cJSON_ParseWithLength(body, len);
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(root, "spec");
        const cJSON *rep = cJSON_GetObjectItemCaseSensitive(spec, "replicas");
        /* spec.replicas is omitted when 0 (omitempty in autoscaling/v1). */
        if (cJSON_IsNumber(rep))
            replicas = rep->valueint;
        else if (cJSON_IsObject(spec))
            replicas = 0;
        else
            snprintf(msg, sizeof(msg), "the API answered %d without a Scale object", status);
        cJSON_Delete(root);
    } else if (status == 0 || (err && status / 100 == 2)) {
        snprintf(msg, sizeof(msg), "%s", err ? err : "no response");
    } else {
        kp_kube_status_message(body, len, msg, sizeof(msg));
    }
    c->cb(c->ctx, status, replicas, msg);
}

static int scale_request(kp_kube_t *k, const char *method, const char *verb, const char *ns,
                         const char *name, const char *body, kp_kube_scale_cb cb, void *ctx)
{
    if (!kp_kube_name_valid(ns) || !kp_kube_name_valid(name) || !cb)
        return UV_EINVAL;
    scale_call_t *c = malloc(sizeof(*c));
    if (!c)
        return UV_ENOMEM;
    c->cb = cb;
    c->ctx = ctx;
    char path[640];
    snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/deployments/%s/scale", ns, name);
    kp_kube_req_opts_t o = {
        .method = method,
        .path = path,
        .content_type = body ? "application/merge-patch+json" : NULL,
        .body = body,
        .timeout_ms = 30000,
        .rbac = {verb, "deployments/scale", "apps", ns},
        .on_done = scale_done,
        .ctx = c,
        .free_ctx = free,
    };
    if (!kp_kube_request(k, &o)) {
        free(c);
        return UV_ENOMEM;
    }
    return 0;
}

int kp_kube_get_scale(kp_kube_t *k, const char *ns, const char *name, kp_kube_scale_cb cb,
                      void *ctx)
{
    return scale_request(k, "GET", "get", ns, name, NULL, cb, ctx);
}

int kp_kube_patch_scale(kp_kube_t *k, const char *ns, const char *name, int replicas,
                        kp_kube_scale_cb cb, void *ctx)
{
    if (replicas < 0)
        return UV_EINVAL;
    char body[64];
    snprintf(body, sizeof(body), "{\"spec\":{\"replicas\":%d}}", replicas);
    return scale_request(k, "PATCH", "patch", ns, name, body, cb, ctx);
}
