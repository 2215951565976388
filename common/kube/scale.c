/* The scale subresource of apps/v1 Deployments: read and set spec.replicas
 * (a Role needs deployments/scale with get and patch, nothing more). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct scale_call {
    kp_kube_scale_cb cb;
    void *ctx;
    /* kp_kube_scale_from_zero: the write that follows a read of 0. */
    kp_kube_t *k;
    int raise_to;
    char ns[254], name[254];
} scale_call_t;

void kp_kube_scale_parse(int status, const char *body, size_t len, const char *err, int *replicas,
                         char *rv, size_t rv_len, char *msg, size_t msg_len)
{
    *replicas = -1;
    if (rv_len)
        rv[0] = 0;
    if (status / 100 == 2 && !err) {
        cJSON *root = cJSON_ParseWithLength(body, len);
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(root, "spec");
        const cJSON *rep = cJSON_GetObjectItemCaseSensitive(spec, "replicas");
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
        const cJSON *version = cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion");
        /* spec.replicas is omitted when 0 (omitempty in autoscaling/v1). */
        if (cJSON_IsNumber(rep))
            *replicas = rep->valueint;
        else if (cJSON_IsObject(spec))
            *replicas = 0;
        else
            snprintf(msg, msg_len, "the API answered %d without a Scale object", status);
        if (rv_len && cJSON_IsString(version))
            snprintf(rv, rv_len, "%s", version->valuestring);
        cJSON_Delete(root);
    } else if (status == 0 || (err && status / 100 == 2)) {
        snprintf(msg, msg_len, "%s", err ? err : "no response");
    } else {
        kp_kube_status_message(body, len, msg, msg_len);
    }
}

static void scale_done(void *ctx, int status, const char *body, size_t len, const char *err)
{
    scale_call_t *c = ctx;
    int replicas;
    char msg[512] = "";
    kp_kube_scale_parse(status, body, len, err, &replicas, NULL, 0, msg, sizeof msg);
    c->cb(c->ctx, status, replicas, msg);
}

/* One request on the deployment's scale; c (taken over) carries cb and
 * what on_done needs, and is freed after on_done. */
static int scale_request(kp_kube_t *k, const char *method, const char *verb, const char *ns,
                         const char *name, const char *body, kp_kube_scale_cb cb, void *ctx,
                         kp_kube_done_cb on_done, int raise_to)
{
    if (!kp_kube_name_valid(ns) || !kp_kube_name_valid(name) || !cb)
        return UV_EINVAL;
    scale_call_t *c = calloc(1, sizeof(*c));
    if (!c)
        return UV_ENOMEM;
    c->cb = cb;
    c->ctx = ctx;
    c->k = k;
    c->raise_to = raise_to;
    snprintf(c->ns, sizeof c->ns, "%s", ns);
    snprintf(c->name, sizeof c->name, "%s", name);
    char path[640];
    snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/deployments/%s/scale", ns, name);
    kp_kube_req_opts_t o = {
        .method = method,
        .path = path,
        .content_type = body ? "application/merge-patch+json" : NULL,
        .body = body,
        .timeout_ms = 30000,
        .rbac = {verb, "deployments/scale", "apps", ns},
        .on_done = on_done,
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
    return scale_request(k, "GET", "get", ns, name, NULL, cb, ctx, scale_done, 0);
}

static void read_before_raise_done(void *ctx, int status, const char *body, size_t len,
                                   const char *err)
{
    scale_call_t *c = ctx;
    int replicas;
    char rv[128], msg[512] = "";
    kp_kube_scale_parse(status, body, len, err, &replicas, rv, sizeof rv, msg, sizeof msg);
    if (replicas != 0 || !rv[0]) {
        /* Someone scaled it already (or the read failed): nothing to do. */
        c->cb(c->ctx, replicas > 0 ? status : (status / 100 == 2 ? 500 : status), replicas,
              replicas > 0 ? "already scaled" : (msg[0] ? msg : "no resourceVersion"));
        return;
    }
    /* The resourceVersion makes the write conditional: 409 if anything
     * changed since the read. */
    char patch[256];
    snprintf(patch, sizeof patch, "{\"metadata\":{\"resourceVersion\":\"%s\"},"
             "\"spec\":{\"replicas\":%d}}", rv, c->raise_to);
    if (scale_request(c->k, "PATCH", "patch", c->ns, c->name, patch, c->cb, c->ctx, scale_done,
                      0) != 0)
        c->cb(c->ctx, 0, -1, "cannot start request");
}

int kp_kube_scale_from_zero(kp_kube_t *k, const char *ns, const char *name, int replicas,
                            kp_kube_scale_cb cb, void *ctx)
{
    if (replicas < 1)
        return UV_EINVAL;
    return scale_request(k, "GET", "get", ns, name, NULL, cb, ctx, read_before_raise_done,
                         replicas);
}

int kp_kube_patch_scale(kp_kube_t *k, const char *ns, const char *name, int replicas,
                        kp_kube_scale_cb cb, void *ctx)
{
    if (replicas < 0)
        return UV_EINVAL;
    char body[64];
    snprintf(body, sizeof(body), "{\"spec\":{\"replicas\":%d}}", replicas);
    return scale_request(k, "PATCH", "patch", ns, name, body, cb, ctx, scale_done, 0);
}
