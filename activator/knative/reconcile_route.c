/* Route → its traffic resolved to revisions (latestRevision targets to
 * their Configuration's latest ready revision), its URLs, and the routing
 * state of the revisions it concerns (active when routed, reserve when
 * not, stamped with the time, which config-gc reads): pkg/reconciler/route
 * and pkg/reconciler/labeler in Knative Serving. The activator's routing
 * table follows the status written here (table.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build.h"
#include "conditions.h"
#include "kjson.h"
#include "names.h"
#include "reconcile.h"

/* "" and 0 when resolved; else the condition to report. */
static const char *resolve(kn_state_t *s, const char *ns, const kn_target_t *t, const char **rev,
                           const char **status, char *msg, size_t len)
{
    *rev = NULL;
    if (t->latest) {
        const cJSON *cfg = kn_get(s, KN_CONFIGURATIONS, ns, t->configuration_name);
        if (!cfg) {
            snprintf(msg, len, "Configuration \"%s\" referenced in traffic not found.",
                     t->configuration_name);
            *status = KN_FALSE;
            return "ConfigurationMissing";
        }
        const char *ready = kn_json_str(cfg, "status.latestReadyRevisionName", "");
        if (!*ready) {
            int failed = kn_is_failed(cfg);
            snprintf(msg, len,
                     failed ? "Configuration \"%s\" does not have any ready Revision."
                            : "Configuration \"%s\" is waiting for a Revision to become ready.",
                     t->configuration_name);
            *status = failed ? KN_FALSE : KN_UNKNOWN;
            return "RevisionMissing";
        }
        *rev = ready;
        return "";
    }
    const cJSON *r = kn_get(s, KN_REVISIONS, ns, t->revision_name);
    if (!r) {
        snprintf(msg, len, "Revision \"%s\" referenced in traffic not found.", t->revision_name);
        *status = KN_FALSE;
        return "RevisionMissing";
    }
    if (!kn_is_ready(r)) {
        int failed = kn_is_failed(r);
        snprintf(msg, len,
                 failed ? "Revision \"%s\" failed to become ready."
                        : "Revision \"%s\" is not yet ready.",
                 t->revision_name);
        *status = failed ? KN_FALSE : KN_UNKNOWN;
        return "RevisionMissing";
    }
    *rev = t->revision_name;
    return "";
}

/* status.traffic: one entry per target, same (tag, revision, latest) merged. */
static cJSON *traffic_status(const kn_traffic_t *tr, const char *const *revs, const char *name,
                             const char *ns, const char *domain)
{
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; list && i < tr->n; i++) {
        const kn_target_t *t = &tr->targets[i];
        cJSON *same = NULL, *e;
        cJSON_ArrayForEach(e, list)
        {
            if (strcmp(kn_json_str(e, "revisionName", ""), revs[i]) == 0 &&
                strcmp(kn_json_str(e, "tag", ""), t->tag ? t->tag : "") == 0 &&
                cJSON_IsTrue(kn_json_child(e, "latestRevision")) == t->latest)
                same = e;
        }
        if (same) {
            kn_json_set_int(same, "percent", kn_json_int(same, "percent", 0) + t->percent);
            continue;
        }
        e = cJSON_CreateObject();
        if (!e)
            break;
        cJSON_AddItemToArray(list, e);
        if (t->tag) {
            char url[600];
            kn_json_set_str(e, "tag", t->tag);
            kn_route_url(url, sizeof url, t->tag, name, ns, domain);
            kn_json_set_str(e, "url", url);
        }
        kn_json_set_str(e, "revisionName", revs[i]);
        kn_json_set_bool(e, "latestRevision", t->latest);
        kn_json_set_int(e, "percent", t->percent);
    }
    return list;
}

typedef struct labeler {
    kn_state_t *s;
    const char *key;
    const char *ns;
    const char *route;
    const kn_traffic_t *traffic;
    const char *const *revs;
    int complete; /* every target resolved: a revision not named is reserve */
} labeler_t;

static int configured(const labeler_t *l, const char *config)
{
    for (size_t i = 0; i < l->traffic->n; i++)
        if (l->traffic->targets[i].configuration_name &&
            strcmp(l->traffic->targets[i].configuration_name, config) == 0)
            return 1;
    return 0;
}

static void label_one(void *ctx, const cJSON *rev)
{
    labeler_t *l = ctx;
    const char *name = kn_json_str(rev, "metadata.name", "");
    const char *config = kn_json_label(rev, KN_L_CONFIGURATION);
    int routed = 0;
    for (size_t i = 0; i < l->traffic->n; i++)
        if (l->revs[i] && strcmp(l->revs[i], name) == 0)
            routed = 1;
    if (!routed && (!l->complete || !config || !configured(l, config)))
        return; /* not this route's to judge */
    const char *want = routed ? KN_ROUTING_ACTIVE : KN_ROUTING_RESERVE;
    const char *have = kn_json_label(rev, KN_L_ROUTING_STATE);
    const char *routes = kn_json_annotation(rev, KN_A_ROUTES);
    int routes_ok = routed ? routes && strcmp(routes, l->route) == 0 : !routes;
    if (have && strcmp(have, want) == 0 && routes_ok)
        return;
    /* A new revision stays pending until the route can send it traffic. */
    if (!routed && have && strcmp(have, KN_ROUTING_PENDING) == 0 && !kn_is_ready(rev) &&
        !kn_is_failed(rev))
        return;
    cJSON *patch = cJSON_CreateObject();
    cJSON *meta = kn_json_obj(patch, "metadata");
    cJSON *ann = kn_json_obj(meta, "annotations");
    kn_json_set_str(kn_json_obj(meta, "labels"), KN_L_ROUTING_STATE, want);
    if (!have || strcmp(have, want) != 0) {
        char when[32];
        kn_time_format(l->s->now(), when, sizeof when);
        kn_json_set_str(ann, KN_A_ROUTING_STATE_MODIFIED, when);
    }
    if (routed)
        kn_json_set_str(ann, KN_A_ROUTES, l->route);
    else if (ann)
        cJSON_AddNullToObject(ann, KN_A_ROUTES);
    kn_patch(l->s, l->key, KN_REVISIONS, l->ns, name, patch);
    cJSON_Delete(patch);
}

/* The core Service {route} behind status.address.url: without it the
 * cluster-local name does not resolve. The activator routes that Host by
 * its first two labels, as any of the route's hosts. */
static void ensure_placeholder(kn_state_t *s, const char *key, const char *ns, const cJSON *route)
{
    cJSON *want = kn_build_route_service(route, s->route_target);
    if (want)
        kn_ensure_child(s, key, KN_K8S_SERVICES, ns, want, route, NULL);
    cJSON_Delete(want);
}

void kn_reconcile_route(kn_state_t *s, const char *key, const char *ns, const char *name)
{
    const cJSON *route = kn_get(s, KN_ROUTES, ns, name);
    if (!route)
        return;
    ensure_placeholder(s, key, ns, route);
    kn_conds_t c;
    if (kn_conds_init(&c, &kn_route_conditions, kn_json_at(route, "status.conditions"), s->now()) !=
        0)
        return;
    cJSON *status = cJSON_CreateObject();
    char why[512], msg[600], url[600];
    kn_traffic_t tr;
    if (kn_traffic_parse(kn_json_at(route, "spec.traffic"), name, &tr, why, sizeof why) != 0) {
        snprintf(msg, sizeof msg, "spec.%s", why);
        kn_conds_set(&c, "AllTrafficAssigned", KN_FALSE, "InvalidSpec", msg);
        memset(&tr, 0, sizeof tr);
    }
    const char **revs = calloc(tr.n ? tr.n : 1, sizeof *revs);
    int complete = tr.n > 0 && revs;
    for (size_t i = 0; revs && i < tr.n; i++) {
        const char *st = KN_UNKNOWN;
        const char *reason = resolve(s, ns, &tr.targets[i], &revs[i], &st, msg, sizeof msg);
        if (*reason) {
            /* The first problem is the one reported. */
            if (complete)
                kn_conds_set(&c, "AllTrafficAssigned", st, reason, msg);
            complete = 0;
        }
    }
    kn_route_url(url, sizeof url, NULL, name, ns, s->domain);
    kn_json_set_str(status, "url", url);
    snprintf(url, sizeof url, "http://%s.%s.svc.cluster.local", name, ns);
    kn_json_set_str(kn_json_obj(status, "address"), "url", url);
    if (complete) {
        kn_conds_set(&c, "AllTrafficAssigned", KN_TRUE, NULL, NULL);
        /* The activator's routing table follows this status at once on
         * every replica: there is no separate ingress to wait for. */
        kn_conds_set(&c, "IngressReady", KN_TRUE, NULL, NULL);
        cJSON *t = traffic_status(&tr, revs, name, ns, s->domain);
        if (t)
            cJSON_AddItemToObject(status, "traffic", t);
    } else {
        const cJSON *old = kn_json_at(route, "status.traffic");
        if (old)
            kn_json_set_copy(status, "traffic", old);
        if (!old)
            kn_conds_set(&c, "IngressReady", KN_UNKNOWN, "IngressNotConfigured",
                         "Ingress has not yet been reconciled.");
    }
    kn_conds_set(&c, "CertificateProvisioned", KN_TRUE, "TLSNotEnabled",
                 "external-domain-tls is not enabled");
    if (s->leader && revs && tr.n) {
        labeler_t l = {s, key, ns, name, &tr, revs, complete};
        kn_each(s, KN_REVISIONS, ns, label_one, &l);
    }
    free(revs);
    kn_traffic_free(&tr);
    cJSON *conds = kn_conds_finish(&c);
    if (conds)
        cJSON_AddItemToObject(status, "conditions", conds);
    kn_json_set_int(status, "observedGeneration", kn_json_int(route, "metadata.generation", 0));
    kn_write_status(s, key, KN_ROUTES, route, status);
}
