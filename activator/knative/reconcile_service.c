/* Service → Configuration and Route of the same name, and the Service's
 * status from theirs (pkg/reconciler/service in Knative Serving). */
#include <stdio.h>
#include <string.h>

#include "conditions.h"
#include "kjson.h"
#include "names.h"
#include "reconcile.h"

/* Knative's checkRoutesNotReady: the Route says Ready, but its traffic is
 * not yet what the spec says once the latest ready revision is put in. */
static int traffic_migrated(const cJSON *route, const cJSON *config)
{
    const char *latest = kn_json_str(config, "status.latestReadyRevisionName", "");
    const cJSON *spec = kn_json_at(route, "spec.traffic");
    const cJSON *got = kn_json_at(route, "status.traffic");
    if (cJSON_GetArraySize(spec) != cJSON_GetArraySize(got))
        return 0;
    const cJSON *w = spec ? spec->child : NULL, *g = got ? got->child : NULL;
    for (; w && g; w = w->next, g = g->next) {
        const char *rev = kn_json_str(w, "revisionName", "");
        if (!*rev)
            rev = latest;
        if (strcmp(rev, kn_json_str(g, "revisionName", "")) != 0 ||
            kn_json_int(w, "percent", 0) != kn_json_int(g, "percent", 0) ||
            strcmp(kn_json_str(w, "tag", ""), kn_json_str(g, "tag", "")) != 0)
            return 0;
    }
    return 1;
}

static void propagate(kn_conds_t *c, const char *type, const cJSON *from)
{
    const cJSON *ready = kn_condition(from, "Ready");
    kn_conds_set(c, type, kn_json_str(ready, "status", KN_UNKNOWN),
                 kn_json_str(ready, "reason", NULL), kn_json_str(ready, "message", NULL));
}

void kn_reconcile_service(kn_state_t *s, const char *key, const char *ns, const char *name)
{
    const cJSON *svc = kn_get(s, KN_SERVICES, ns, name);
    if (!svc)
        return; /* deleted: Kubernetes collects what it owned */
    kn_conds_t c;
    if (kn_conds_init(&c, &kn_service_conditions, kn_json_at(svc, "status.conditions"), s->now()) !=
        0)
        return;
    cJSON *status = cJSON_CreateObject();
    char why[512], msg[700];
    const cJSON *config = NULL, *route = NULL;

    /* The template, checked as Knative's webhook would. */
    kn_revision_params_t p;
    const char *byo = kn_json_str(svc, "spec.template.metadata.name", "");
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s-", name);
    int template_ok = kn_revision_params(kn_json_at(svc, "spec.template.spec"), &s->defaults, &p,
                                         why, sizeof why) == 0;
    if (template_ok && *byo && (strncmp(byo, prefix, strlen(prefix)) != 0 || !kn_dns_label(byo))) {
        snprintf(why, sizeof why,
                 "spec.template.metadata.name: \"%.100s\" must start with \"%.100s\" and be a DNS "
                 "label",
                 byo, prefix);
        template_ok = 0;
    }
    if (!template_ok) {
        snprintf(msg, sizeof msg, "spec.template: %s", why);
        kn_conds_set(&c, "ConfigurationsReady", KN_FALSE, "InvalidSpec", msg);
    } else {
        cJSON *want = kn_build_configuration(svc);
        kn_child_result_t r =
            want ? kn_ensure_child(s, key, KN_CONFIGURATIONS, ns, want, svc, &config)
                 : KN_CHILD_FAILED;
        cJSON_Delete(want);
        if (r == KN_CHILD_NOT_OWNED) {
            snprintf(msg, sizeof msg,
                     "There is an existing Configuration \"%s\" that we do not own.", name);
            kn_conds_set(&c, "ConfigurationsReady", KN_FALSE, "NotOwned", msg);
            config = NULL;
        } else if (r != KN_CHILD_OK || kn_json_int(config, "metadata.generation", 0) !=
                                           kn_json_int(config, "status.observedGeneration", -1)) {
            kn_conds_set(&c, "ConfigurationsReady", KN_UNKNOWN, "OutOfDate",
                         "The Configuration is still working to reflect the latest desired "
                         "specification.");
            if (r != KN_CHILD_OK)
                config = NULL;
        } else {
            propagate(&c, "ConfigurationsReady", config);
        }
    }
    if (config) {
        const char *lc = kn_json_str(config, "status.latestCreatedRevisionName", NULL);
        const char *lr = kn_json_str(config, "status.latestReadyRevisionName", NULL);
        if (lc)
            kn_json_set_str(status, "latestCreatedRevisionName", lc);
        if (lr)
            kn_json_set_str(status, "latestReadyRevisionName", lr);
    }

    kn_traffic_t traffic;
    if (kn_traffic_parse(kn_json_at(svc, "spec.traffic"), name, &traffic, why, sizeof why) != 0) {
        snprintf(msg, sizeof msg, "spec.%s", why);
        kn_conds_set(&c, "RoutesReady", KN_FALSE, "InvalidSpec", msg);
    } else {
        cJSON *want = kn_build_route(svc, &traffic);
        kn_traffic_free(&traffic);
        kn_child_result_t r =
            want ? kn_ensure_child(s, key, KN_ROUTES, ns, want, svc, &route) : KN_CHILD_FAILED;
        cJSON_Delete(want);
        if (r == KN_CHILD_NOT_OWNED) {
            snprintf(msg, sizeof msg, "There is an existing Route \"%s\" that we do not own.",
                     name);
            kn_conds_set(&c, "RoutesReady", KN_FALSE, "NotOwned", msg);
        } else if (r != KN_CHILD_OK || kn_json_int(route, "metadata.generation", 0) !=
                                           kn_json_int(route, "status.observedGeneration", -1)) {
            kn_conds_set(&c, "RoutesReady", KN_UNKNOWN, "OutOfDate",
                         "The Route is still working to reflect the latest desired specification.");
        } else {
            propagate(&c, "RoutesReady", route);
            if (config && strcmp(kn_conds_status(&c, "RoutesReady"), KN_TRUE) == 0 &&
                !traffic_migrated(route, config))
                kn_conds_set(&c, "RoutesReady", KN_UNKNOWN, "TrafficNotMigrated",
                             "Traffic is not yet migrated to the latest revision.");
            const char *keys[] = {"url", "address", "traffic"};
            for (size_t i = 0; i < 3; i++) {
                const cJSON *v = kn_json_child(kn_json_child(route, "status"), keys[i]);
                if (v)
                    kn_json_set_copy(status, keys[i], v);
            }
        }
    }
    /* What could not be read this time stays as it was. */
    const char *kept[] = {"url", "address", "traffic", "latestCreatedRevisionName",
                          "latestReadyRevisionName"};
    for (size_t i = 0; i < 5; i++) {
        const cJSON *v = kn_json_child(kn_json_child(svc, "status"), kept[i]);
        if (v && !kn_json_child(status, kept[i]))
            kn_json_set_copy(status, kept[i], v);
    }
    cJSON *conds = kn_conds_finish(&c);
    if (conds)
        cJSON_AddItemToObject(status, "conditions", conds);
    kn_json_set_int(status, "observedGeneration", kn_json_int(svc, "metadata.generation", 0));
    kn_write_status(s, key, KN_SERVICES, svc, status);
}
