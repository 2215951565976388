/* Revision → its Deployment (the app and our queue-proxy), its Services
 * {rev}-private and {rev}, an HPA for the hpa class; and its status from
 * the Deployment and, while no pod is up, from the pods themselves: a
 * container that exits, an image that cannot be pulled, a pod that cannot
 * be scheduled or a Deployment past its progress deadline make it Ready
 * False with that reason (pkg/reconciler/revision in Knative Serving). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conditions.h"
#include "kjson.h"
#include "names.h"
#include "reconcile.h"

typedef struct pod_search {
    const char *revision;
    const cJSON *pod;
} pod_search_t;

static void find_pod(void *ctx, const cJSON *pod)
{
    pod_search_t *ps = ctx;
    const char *rev = kn_json_label(pod, KN_L_REVISION);
    if (!rev || strcmp(rev, ps->revision) != 0)
        return;
    /* Prefer a pod that tells why it is not running. */
    if (!ps->pod || kn_json_at(pod, "status.containerStatuses"))
        ps->pod = pod;
}

static const cJSON *container_status(const cJSON *pod, const char *name)
{
    const cJSON *cs;
    cJSON_ArrayForEach(cs, kn_json_at(pod, "status.containerStatuses"))
    {
        if (strcmp(kn_json_str(cs, "name", ""), name) == 0)
            return cs;
    }
    return NULL;
}

static int waiting_is_failure(const char *reason)
{
    static const char *const bad[] = {"ImagePullBackOff",
                                      "ErrImagePull",
                                      "InvalidImageName",
                                      "CrashLoopBackOff",
                                      "CreateContainerConfigError",
                                      "CreateContainerError",
                                      NULL};
    for (const char *const *b = bad; *b; b++)
        if (strcmp(reason, *b) == 0)
            return 1;
    return 0;
}

/* Why the revision's pods do not run, from the first pod: 1 when a
 * condition was set. */
static int pod_failure(kn_state_t *s, kn_conds_t *c, const char *ns, const char *rev_name,
                       const char *user_container)
{
    pod_search_t ps = {rev_name, NULL};
    char msg[1200], reason[64];
    kn_each(s, KN_PODS, ns, find_pod, &ps);
    if (!ps.pod)
        return 0;
    const cJSON *cond;
    cJSON_ArrayForEach(cond, kn_json_at(ps.pod, "status.conditions"))
    {
        if (strcmp(kn_json_str(cond, "type", ""), "PodScheduled") == 0 &&
            strcmp(kn_json_str(cond, "status", ""), KN_FALSE) == 0) {
            kn_conds_set(c, "ResourcesAvailable", KN_FALSE,
                         kn_json_str(cond, "reason", "Unschedulable"),
                         kn_json_str(cond, "message", NULL));
            return 1;
        }
    }
    const cJSON *cs = container_status(ps.pod, user_container);
    if (!cs)
        return 0;
    const cJSON *term = kn_json_at(cs, "lastState.terminated");
    if (!term)
        term = kn_json_at(cs, "state.terminated");
    if (term && kn_json_int(term, "exitCode", 0) != 0) {
        snprintf(reason, sizeof reason, "ExitCode%lld", kn_json_int(term, "exitCode", 0));
        snprintf(msg, sizeof msg, "Container failed with: %.1100s",
                 kn_json_str(term, "message", ""));
        kn_conds_set(c, "ContainerHealthy", KN_FALSE, reason, msg);
        return 1;
    }
    const cJSON *waiting = kn_json_at(cs, "state.waiting");
    const char *why = kn_json_str(waiting, "reason", "");
    if (waiting && waiting_is_failure(why)) {
        kn_conds_set(c, "ResourcesAvailable", KN_FALSE, why, kn_json_str(waiting, "message", NULL));
        return 1;
    }
    return 0;
}

static const cJSON *deployment_condition(const cJSON *dep, const char *type)
{
    const cJSON *cond;
    cJSON_ArrayForEach(cond, kn_json_at(dep, "status.conditions"))
    {
        if (strcmp(kn_json_str(cond, "type", ""), type) == 0)
            return cond;
    }
    return NULL;
}

/* Replicas of a new Deployment: the revision's initial-scale annotation,
 * else the autoscaler's setting. */
static int initial_scale(kn_state_t *s, const cJSON *rev)
{
    const char *v = kn_json_annotation(rev, KN_A_INITIAL_SCALE);
    char *end;
    if (v && *v) {
        long n = strtol(v, &end, 10);
        if (!*end && n >= 0 && n < 100000)
            return (int)n;
    }
    return s->initial_scale;
}

static void ensure_hpa(kn_state_t *s, const char *key, const char *ns, const cJSON *rev, int hpa)
{
    const char *name = kn_json_str(rev, "metadata.name", "");
    if (hpa) {
        cJSON *want = kn_build_hpa(rev);
        if (want)
            kn_ensure_child(s, key, KN_HPAS, ns, want, rev, NULL);
        cJSON_Delete(want);
        return;
    }
    const cJSON *have = kn_get(s, KN_HPAS, ns, name);
    if (have && kn_owned_by(have, rev))
        kn_delete(s, key, KN_HPAS, ns, name);
}

void kn_reconcile_revision(kn_state_t *s, const char *key, const char *ns, const char *name)
{
    const cJSON *rev = kn_get(s, KN_REVISIONS, ns, name);
    if (!rev)
        return;
    kn_conds_t c;
    if (kn_conds_init(&c, &kn_revision_conditions, kn_json_at(rev, "status.conditions"),
                      s->now()) != 0)
        return;
    cJSON *status = cJSON_CreateObject();
    char why[512], msg[800], dep_name[KN_NAME_MAX];
    kn_revision_params_t p;
    long long desired = 0, ready = 0;
    if (kn_revision_params(kn_json_child(rev, "spec"), &s->defaults, &p, why, sizeof why) != 0) {
        kn_conds_set(&c, "ContainerHealthy", KN_FALSE, "InvalidSpec", why);
        goto done;
    }
    kn_child_name(dep_name, name, "-deployment");
    const cJSON *dep = kn_get(s, KN_DEPLOYMENTS, ns, dep_name);
    int was_available = strcmp(kn_condition_status(rev, "ResourcesAvailable"), KN_TRUE) == 0;
    if (!dep) {
        int replicas = initial_scale(s, rev);
        cJSON *want = kn_build_deployment(rev, &p, &s->build, replicas);
        if (want)
            kn_create(s, key, KN_DEPLOYMENTS, ns, want);
        cJSON_Delete(want);
        desired = replicas;
        if (!was_available) {
            kn_conds_set(&c, "ResourcesAvailable", KN_UNKNOWN, "Deploying", NULL);
            kn_conds_set(&c, "ContainerHealthy", KN_UNKNOWN, "Deploying", NULL);
        }
    } else if (!kn_owned_by(dep, rev)) {
        snprintf(msg, sizeof msg, "There is an existing Deployment \"%s\" that we do not own.",
                 dep_name);
        kn_conds_set(&c, "ResourcesAvailable", KN_FALSE, "NotOwned", msg);
        goto children;
    } else {
        /* The replica count is the autoscaler's: never compared, never written. */
        cJSON *want = kn_build_deployment(rev, &p, &s->build, -1);
        if (want)
            kn_ensure_child(s, key, KN_DEPLOYMENTS, ns, want, rev, NULL);
        cJSON_Delete(want);
        desired = kn_json_int(dep, "spec.replicas", 0);
        ready = kn_json_int(dep, "status.readyReplicas", 0);
        const char *user = kn_json_str(p.container, "name", "");
        int failed = 0;
        int was_failed = strcmp(kn_condition_status(rev, "ResourcesAvailable"), KN_FALSE) == 0 ||
                         strcmp(kn_condition_status(rev, "ContainerHealthy"), KN_FALSE) == 0;
        if (desired > 0 && ready == 0) {
            const cJSON *progressing = deployment_condition(dep, "Progressing");
            if (progressing && strcmp(kn_json_str(progressing, "status", ""), KN_FALSE) == 0) {
                kn_conds_set(&c, "ResourcesAvailable", KN_FALSE,
                             kn_json_str(progressing, "reason", "ProgressDeadlineExceeded"),
                             kn_json_str(progressing, "message", NULL));
                failed = 1;
            }
            if (pod_failure(s, &c, ns, name, *user ? user : KN_USER_CONTAINER))
                failed = 1;
            const cJSON *rf = deployment_condition(dep, "ReplicaFailure");
            if (!failed && rf && strcmp(kn_json_str(rf, "status", ""), KN_TRUE) == 0) {
                kn_conds_set(&c, "ResourcesAvailable", KN_FALSE,
                             kn_json_str(rf, "reason", "FailedCreate"),
                             kn_json_str(rf, "message", NULL));
                failed = 1;
            }
        }
        if (ready > 0 || (!failed && !was_failed && (desired == 0 || was_available))) {
            /* Serving, scaled to zero (or created at zero), or on its way
             * back from zero after having served. */
            kn_conds_set(&c, "ResourcesAvailable", KN_TRUE, NULL, NULL);
            kn_conds_set(&c, "ContainerHealthy", KN_TRUE, NULL, NULL);
        } else if (!failed && !was_failed) {
            kn_conds_set(&c, "ResourcesAvailable", KN_UNKNOWN, "Deploying", NULL);
            kn_conds_set(&c, "ContainerHealthy", KN_UNKNOWN, "Deploying", NULL);
        }
        /* A failure stays until a pod is ready again. */
    }
    if (desired == 0)
        kn_conds_set(&c, "Active", KN_FALSE, "NoTraffic", "The target is not receiving traffic.");
    else if (ready > 0)
        kn_conds_set(&c, "Active", KN_TRUE, NULL, NULL);
    else
        kn_conds_set(&c, "Active", KN_UNKNOWN, "Activating", "Pods are starting.");
children:;
    cJSON *priv = kn_build_k8s_service(rev, 1), *pub = kn_build_k8s_service(rev, 0);
    if (priv)
        kn_ensure_child(s, key, KN_K8S_SERVICES, ns, priv, rev, NULL);
    if (pub)
        kn_ensure_child(s, key, KN_K8S_SERVICES, ns, pub, rev, NULL);
    cJSON_Delete(priv);
    cJSON_Delete(pub);
    const char *cls = kn_json_annotation(rev, KN_A_CLASS);
    ensure_hpa(s, key, ns, rev, cls && strcmp(cls, KN_CLASS_HPA) == 0);
done:
    kn_json_set_int(status, "actualReplicas", ready);
    kn_json_set_int(status, "desiredReplicas", desired);
    cJSON *conds = kn_conds_finish(&c);
    if (conds)
        cJSON_AddItemToObject(status, "conditions", conds);
    kn_json_set_int(status, "observedGeneration", kn_json_int(rev, "metadata.generation", 0));
    kn_write_status(s, key, KN_REVISIONS, rev, status);
}
