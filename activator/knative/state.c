/* Shared reconciler state and the writes. See state.h. */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "kjson.h"

const kp_kube_resource_t kn_resources[KN_N_KINDS] = {
    [KN_SERVICES] = {"serving.knative.dev", "v1", "services", "Service"},
    [KN_CONFIGURATIONS] = {"serving.knative.dev", "v1", "configurations", "Configuration"},
    [KN_REVISIONS] = {"serving.knative.dev", "v1", "revisions", "Revision"},
    [KN_ROUTES] = {"serving.knative.dev", "v1", "routes", "Route"},
    [KN_DEPLOYMENTS] = {"apps", "v1", "deployments", "Deployment"},
    [KN_K8S_SERVICES] = {"", "v1", "services", "Service"},
    [KN_HPAS] = {"autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"},
    [KN_PODS] = {"", "v1", "pods", "Pod"},
};

const char *const kn_kind_names[KN_N_KINDS] = {
    [KN_SERVICES] = "Service",
    [KN_CONFIGURATIONS] = "Configuration",
    [KN_REVISIONS] = "Revision",
    [KN_ROUTES] = "Route",
    [KN_DEPLOYMENTS] = "Deployment",
    [KN_K8S_SERVICES] = "K8sService",
    [KN_HPAS] = "HPA",
    [KN_PODS] = "Pod",
};

kn_ns_t *kn_state_ns(kn_state_t *s, const char *ns)
{
    for (size_t i = 0; i < s->n_ns; i++)
        if (strcmp(s->ns[i].name, ns) == 0)
            return &s->ns[i];
    return NULL;
}

const cJSON *kn_get(kn_state_t *s, kn_kind_t kind, const char *ns, const char *name)
{
    kn_ns_t *n = kn_state_ns(s, ns);
    return n && n->inf[kind] ? kp_kube_informer_get(n->inf[kind], name) : NULL;
}

void kn_each(kn_state_t *s, kn_kind_t kind, const char *ns, void (*fn)(void *ctx, const cJSON *obj),
             void *ctx)
{
    kn_ns_t *n = kn_state_ns(s, ns);
    if (n && n->inf[kind])
        kp_kube_informer_each(n->inf[kind], fn, ctx);
}

int kn_state_synced(kn_state_t *s, const char *ns)
{
    kn_ns_t *n = kn_state_ns(s, ns);
    if (!n)
        return 0;
    for (int k = 0; k < KN_N_KINDS; k++)
        if (!n->inf[k] || !kp_kube_informer_synced(n->inf[k]))
            return 0;
    return 1;
}

void kn_key(char *out, size_t len, kn_kind_t kind, const char *ns, const char *name)
{
    snprintf(out, len, "%s/%s/%s", kn_kind_names[kind], ns, name);
}

typedef struct kn_write {
    kn_state_t *s;
    kn_kind_t kind;
    const char *verb;
    char name[256];
    char key[];
} kn_write_t;

static void write_done(void *ctx, int status, const cJSON *obj, const char *message)
{
    kn_write_t *w = ctx;
    kn_state_t *s = w->s;
    s->pending_writes--;
    if (!s->stopping) {
        if (status / 100 == 2) {
            s->writes++;
            kn_wq_forget(s->queue, w->key);
        } else if (status == 404 && strcmp(w->verb, "delete") == 0) {
            /* Already gone: what was wanted. */
        } else {
            /* 409: someone moved first (or it exists): read the cache again. */
            kp_log_fields(status == 409 ? KP_LOG_DEBUG : KP_LOG_WARN, "knative: write failed",
                          KP_LOG_STR("verb", w->verb),
                          KP_LOG_STR("kind", kn_resources[w->kind].kind),
                          KP_LOG_STR("name", w->name), KP_LOG_INT("status", status),
                          KP_LOG_STR("error", message ? message : ""));
            kn_wq_retry(s->queue, w->key);
        }
        kn_wq_release(s->queue, w->key);
    }
    free(w);
    if (s->stopping && s->pending_writes == 0 && s->on_stopped)
        s->on_stopped(s->stopped_ctx);
}

static kn_write_t *write_new(kn_state_t *s, const char *key, kn_kind_t kind, const char *verb,
                             const char *name)
{
    if (s->stopping || !s->leader)
        return NULL;
    size_t len = strlen(key);
    kn_write_t *w = calloc(1, sizeof *w + len + 1);
    if (!w)
        return NULL;
    memcpy(w->key, key, len + 1);
    w->s = s;
    w->kind = kind;
    w->verb = verb;
    snprintf(w->name, sizeof w->name, "%s", name ? name : "");
    return w;
}

static int write_sent(kn_state_t *s, kn_write_t *w, int rc)
{
    if (rc != 0) {
        kn_wq_retry(s->queue, w->key);
        free(w);
        return -1;
    }
    s->pending_writes++;
    kn_wq_hold(s->queue, w->key);
    kp_log_fields(KP_LOG_DEBUG, "knative: write", KP_LOG_STR("verb", w->verb),
                  KP_LOG_STR("kind", kn_resources[w->kind].kind), KP_LOG_STR("name", w->name));
    return 0;
}

int kn_create(kn_state_t *s, const char *key, kn_kind_t kind, const char *ns, const cJSON *obj)
{
    const char *name = kn_json_str(obj, "metadata.name", "");
    kn_write_t *w = write_new(s, key, kind, "create", name);
    if (!w)
        return -1;
    kp_log_fields(KP_LOG_INFO, "knative: creating", KP_LOG_STR("kind", kn_resources[kind].kind),
                  KP_LOG_STR("namespace", ns), KP_LOG_STR("name", name));
    return write_sent(s, w,
                      kp_kube_object_create(s->kube, &kn_resources[kind], ns, obj, write_done, w));
}

int kn_replace(kn_state_t *s, const char *key, kn_kind_t kind, const char *ns, const cJSON *obj)
{
    kn_write_t *w = write_new(s, key, kind, "replace", kn_json_str(obj, "metadata.name", ""));
    if (!w)
        return -1;
    return write_sent(s, w,
                      kp_kube_object_replace(s->kube, &kn_resources[kind], ns, obj, write_done, w));
}

int kn_replace_status(kn_state_t *s, const char *key, kn_kind_t kind, const char *ns,
                      const cJSON *obj)
{
    kn_write_t *w = write_new(s, key, kind, "status", kn_json_str(obj, "metadata.name", ""));
    if (!w)
        return -1;
    return write_sent(
        s, w, kp_kube_object_replace_status(s->kube, &kn_resources[kind], ns, obj, write_done, w));
}

int kn_patch(kn_state_t *s, const char *key, kn_kind_t kind, const char *ns, const char *name,
             const cJSON *patch)
{
    kn_write_t *w = write_new(s, key, kind, "patch", name);
    if (!w)
        return -1;
    return write_sent(
        s, w,
        kp_kube_object_merge_patch(s->kube, &kn_resources[kind], ns, name, patch, write_done, w));
}

int kn_delete(kn_state_t *s, const char *key, kn_kind_t kind, const char *ns, const char *name)
{
    kn_write_t *w = write_new(s, key, kind, "delete", name);
    if (!w)
        return -1;
    kp_log_fields(KP_LOG_INFO, "knative: deleting", KP_LOG_STR("kind", kn_resources[kind].kind),
                  KP_LOG_STR("namespace", ns), KP_LOG_STR("name", name));
    return write_sent(s, w,
                      kp_kube_object_delete(s->kube, &kn_resources[kind], ns, name, write_done, w));
}

static int overlay_into(cJSON *dst, const cJSON *want)
{
    const cJSON *w;
    cJSON_ArrayForEach(w, want)
    {
        cJSON *d = cJSON_GetObjectItemCaseSensitive(dst, w->string);
        if (d && cJSON_IsObject(d) && cJSON_IsObject(w)) {
            if (overlay_into(d, w) != 0)
                return -1;
            continue;
        }
        if (kn_json_set_copy(dst, w->string, w) != 0)
            return -1;
    }
    return 0;
}

cJSON *kn_overlay(const cJSON *live, const cJSON *want)
{
    cJSON *out = cJSON_Duplicate(live, 1);
    if (!out || overlay_into(out, want) != 0) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

kn_child_result_t kn_ensure_child(kn_state_t *s, const char *key, kn_kind_t kind, const char *ns,
                                  const cJSON *want, const cJSON *owner, const cJSON **live)
{
    const cJSON *have = kn_get(s, kind, ns, kn_json_str(want, "metadata.name", ""));
    if (live)
        *live = have;
    if (!have)
        return kn_create(s, key, kind, ns, want) == 0 ? KN_CHILD_CREATED : KN_CHILD_FAILED;
    if (!kn_owned_by(have, owner))
        return KN_CHILD_NOT_OWNED;
    if (kn_json_covers(have, want))
        return KN_CHILD_OK;
    cJSON *next = kn_overlay(have, want);
    int rc = next ? kn_replace(s, key, kind, ns, next) : -1;
    cJSON_Delete(next);
    return rc == 0 ? KN_CHILD_UPDATED : KN_CHILD_FAILED;
}

int kn_write_status(kn_state_t *s, const char *key, kn_kind_t kind, const cJSON *obj, cJSON *status)
{
    if (!status)
        return -1;
    const cJSON *old = kn_json_child(obj, "status");
    if (old && cJSON_Compare(old, status, 1)) {
        cJSON_Delete(status);
        return 0;
    }
    cJSON *next = cJSON_Duplicate(obj, 1);
    if (!next || kn_json_set_copy(next, "status", status) != 0) {
        cJSON_Delete(next);
        cJSON_Delete(status);
        return -1;
    }
    cJSON_Delete(status);
    int rc = kn_replace_status(s, key, kind, kn_json_str(obj, "metadata.namespace", ""), next);
    cJSON_Delete(next);
    return rc;
}
