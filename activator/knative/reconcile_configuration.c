/* Configuration → one Revision per generation of its template (or the
 * name the template gives), latestCreated/latestReady in its status, and
 * config-gc over its older revisions (pkg/reconciler/configuration and
 * pkg/reconciler/gc in Knative Serving). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "conditions.h"
#include "kjson.h"
#include "names.h"
#include "reconcile.h"

typedef struct config_revs {
    const char *config;
    const cJSON **revs;
    size_t n, cap;
} config_revs_t;

static void collect(void *ctx, const cJSON *rev)
{
    config_revs_t *cr = ctx;
    const char *owner = kn_json_label(rev, KN_L_CONFIGURATION);
    if (!owner || strcmp(owner, cr->config) != 0)
        return;
    if (cr->n == cr->cap) {
        size_t cap = cr->cap ? cr->cap * 2 : 8;
        const cJSON **grown = realloc(cr->revs, cap * sizeof *grown);
        if (!grown)
            return;
        cr->revs = grown;
        cr->cap = cap;
    }
    cr->revs[cr->n++] = rev;
}

static long long generation_of(const cJSON *rev)
{
    const char *g = kn_json_label(rev, KN_L_CONFIGURATION_GENERATION);
    return g ? strtoll(g, NULL, 10) : 0;
}

typedef struct traffic_names {
    kn_state_t *s;
    const char *ns;
} traffic_names_t;

typedef struct name_search {
    const char *name;
    int found;
} name_search_t;

/* Whether a Route names the revision in what it says or what it does. */
static void route_names(void *ctx, const cJSON *route)
{
    name_search_t *look = ctx;
    const char *paths[] = {"spec.traffic", "status.traffic"};
    for (int i = 0; i < 2 && !look->found; i++) {
        const cJSON *t;
        cJSON_ArrayForEach(t, kn_json_at(route, paths[i]))
        {
            if (strcmp(kn_json_str(t, "revisionName", ""), look->name) == 0)
                look->found = 1;
        }
    }
}

/* A revision a Route of the namespace sends traffic to or tags is kept,
 * whatever its routingState label says. */
static int in_traffic(void *ctx, const char *name)
{
    traffic_names_t *t = ctx;
    name_search_t look = {name, 0};
    kn_each(t->s, KN_ROUTES, t->ns, route_names, &look);
    return look.found;
}

static void collect_garbage(kn_state_t *s, const char *key, const char *ns, config_revs_t *cr,
                            const char *latest_ready, const char *latest_created)
{
    size_t *out = calloc(cr->n ? cr->n : 1, sizeof *out);
    if (!out)
        return;
    traffic_names_t t = {s, ns};
    size_t n = kn_gc_collect(&s->gc, cr->revs, cr->n, latest_ready, latest_created, s->now(),
                             in_traffic, &t, out);
    for (size_t i = 0; i < n; i++)
        kn_delete(s, key, KN_REVISIONS, ns, kn_json_str(cr->revs[out[i]], "metadata.name", ""));
    free(out);
}

void kn_reconcile_configuration(kn_state_t *s, const char *key, const char *ns, const char *name)
{
    const cJSON *cfg = kn_get(s, KN_CONFIGURATIONS, ns, name);
    if (!cfg)
        return;
    kn_conds_t c;
    if (kn_conds_init(&c, &kn_config_conditions, kn_json_at(cfg, "status.conditions"), s->now()) !=
        0)
        return;
    cJSON *status = cJSON_CreateObject();
    char rev_name[64], why[512], msg[800];
    long long gen = kn_json_int(cfg, "metadata.generation", 1);
    kn_config_revision_name(cfg, rev_name);
    const char *latest_created = NULL;
    kn_revision_params_t p;
    if (kn_revision_params(kn_json_at(cfg, "spec.template.spec"), &s->defaults, &p, why,
                           sizeof why) != 0) {
        snprintf(msg, sizeof msg, "spec.template: %s", why);
        kn_conds_set(&c, "Ready", KN_FALSE, "InvalidSpec", msg);
    } else {
        const cJSON *rev = kn_get(s, KN_REVISIONS, ns, rev_name);
        int byo = *kn_json_str(cfg, "spec.template.metadata.name", "") != 0;
        if (!rev) {
            cJSON *want = kn_build_revision(cfg, rev_name, s->now());
            if (want)
                kn_create(s, key, KN_REVISIONS, ns, want);
            cJSON_Delete(want);
            latest_created = rev_name;
            kn_conds_set(&c, "Ready", KN_UNKNOWN, NULL, NULL);
        } else if (!kn_owned_by(rev, cfg) ||
                   (byo && generation_of(rev) != gen &&
                    !kn_json_covers(kn_json_child(rev, "spec"),
                                    kn_json_at(cfg, "spec.template.spec")))) {
            snprintf(msg, sizeof msg,
                     "Revision creation failed with message: revisions.serving.knative.dev "
                     "\"%s\" already exists.",
                     rev_name);
            kn_conds_set(&c, "Ready", KN_FALSE, "RevisionFailed", msg);
        } else {
            latest_created = rev_name;
        }
    }
    if (latest_created)
        kn_json_set_str(status, "latestCreatedRevisionName", latest_created);
    else if (kn_json_str(cfg, "status.latestCreatedRevisionName", NULL))
        kn_json_set_str(status, "latestCreatedRevisionName",
                        kn_json_str(cfg, "status.latestCreatedRevisionName", ""));

    /* Latest ready: the ready revision of the highest generation. */
    config_revs_t cr = {name, NULL, 0, 0};
    kn_each(s, KN_REVISIONS, ns, collect, &cr);
    const cJSON *best = NULL;
    for (size_t i = 0; i < cr.n; i++) {
        if (!kn_owned_by(cr.revs[i], cfg) || !kn_is_ready(cr.revs[i]) ||
            generation_of(cr.revs[i]) > gen)
            continue;
        if (!best || generation_of(cr.revs[i]) > generation_of(best) ||
            (latest_created &&
             strcmp(kn_json_str(cr.revs[i], "metadata.name", ""), latest_created) == 0))
            best = cr.revs[i];
    }
    const char *old_ready = kn_json_str(cfg, "status.latestReadyRevisionName", NULL);
    const char *latest_ready = best ? kn_json_str(best, "metadata.name", NULL) : NULL;
    if (!latest_ready && old_ready) {
        if (kn_get(s, KN_REVISIONS, ns, old_ready)) {
            latest_ready = old_ready;
        } else {
            snprintf(msg, sizeof msg, "Revision \"%s\" was deleted.", old_ready);
            kn_conds_set(&c, "Ready", KN_FALSE, "RevisionDeleted", msg);
        }
    }
    if (latest_ready)
        kn_json_set_str(status, "latestReadyRevisionName", latest_ready);
    const cJSON *created = latest_created ? kn_get(s, KN_REVISIONS, ns, latest_created) : NULL;
    if (created && kn_is_failed(created)) {
        const cJSON *r = kn_condition(created, "Ready");
        snprintf(msg, sizeof msg, "Revision \"%s\" failed with message: %s.", latest_created,
                 kn_json_str(r, "message", kn_json_str(r, "reason", "")));
        kn_conds_set(&c, "Ready", KN_FALSE, "RevisionFailed", msg);
    } else if (latest_created && latest_ready && strcmp(latest_created, latest_ready) == 0) {
        kn_conds_set(&c, "Ready", KN_TRUE, NULL, NULL);
    } else if (latest_created) {
        kn_conds_set(&c, "Ready", KN_UNKNOWN, NULL, NULL);
    }
    if (s->leader)
        collect_garbage(s, key, ns, &cr, latest_ready, latest_created);
    free(cr.revs);
    cJSON *conds = kn_conds_finish(&c);
    if (conds)
        cJSON_AddItemToObject(status, "conditions", conds);
    kn_json_set_int(status, "observedGeneration", gen);
    kn_write_status(s, key, KN_CONFIGURATIONS, cfg, status);
}
