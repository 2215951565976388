/* Routing table from Knative objects. See table.h. */
#include "table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "conditions.h"
#include "kjson.h"
#include "names.h"

static char *dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void service_free(kp_service_spec_t *svc)
{
    free(svc->name);
    free(svc->namespace_);
    for (size_t i = 0; i < svc->n_revisions; i++)
        kp_revision_spec_free(&svc->revisions[i]);
    free(svc->revisions);
    for (size_t i = 0; i < svc->n_traffic; i++) {
        free(svc->traffic[i].revision_name);
        free(svc->traffic[i].tag);
    }
    free(svc->traffic);
    memset(svc, 0, sizeof *svc);
}

/* Points each target at its revision; -1 when one is not there. */
static int resolve_targets(kp_service_spec_t *svc)
{
    for (size_t i = 0; i < svc->n_traffic; i++) {
        kp_traffic_target_t *t = &svc->traffic[i];
        t->revision = NULL;
        for (size_t j = 0; j < svc->n_revisions; j++)
            if (strcmp(svc->revisions[j].name, t->revision_name) == 0)
                t->revision = &svc->revisions[j];
        if (!t->revision)
            return -1;
    }
    return 0;
}

int kn_service_spec_copy(kp_service_spec_t *dst, const kp_service_spec_t *src)
{
    memset(dst, 0, sizeof *dst);
    dst->name = dup(src->name);
    dst->namespace_ = dup(src->namespace_);
    dst->revisions = calloc(src->n_revisions ? src->n_revisions : 1, sizeof *dst->revisions);
    dst->traffic = calloc(src->n_traffic ? src->n_traffic : 1, sizeof *dst->traffic);
    if (!dst->name || !dst->namespace_ || !dst->revisions || !dst->traffic)
        goto fail;
    for (size_t i = 0; i < src->n_revisions; i++) {
        if (kp_revision_spec_copy(&dst->revisions[i], &src->revisions[i]) != 0)
            goto fail;
        dst->n_revisions++;
    }
    for (size_t i = 0; i < src->n_traffic; i++) {
        kp_traffic_target_t *t = &dst->traffic[dst->n_traffic++];
        t->percent = src->traffic[i].percent;
        t->revision_name = dup(src->traffic[i].revision_name);
        t->tag = dup(src->traffic[i].tag);
        if (!t->revision_name || (src->traffic[i].tag && !t->tag))
            goto fail;
    }
    if (resolve_targets(dst) != 0)
        goto fail;
    return 0;
fail:
    service_free(dst);
    return -1;
}

typedef struct builder {
    kn_state_t *s;
    const char *ns;
    kp_activator_config_t *out;
    const kp_activator_config_t *file;
    size_t cap;
    cJSON *sig; /* the derived services described, in order */
    int oom;
    /* the namespace's revisions by the service (or, without one, the
     * configuration) they belong to: each route finds its own by a
     * binary search instead of a walk of them all */
    struct owned_rev {
        const char *owner;
        const cJSON *rev;
    } * revs;
    size_t n_revs, cap_revs;
    /* the service being built */
    kp_service_spec_t *svc;
    const char *svc_name;
    size_t rev_cap;
} builder_t;

static const char *owner_of(const cJSON *rev)
{
    const char *svc = kn_json_label(rev, KN_L_SERVICE);
    return svc && *svc ? svc : kn_json_label(rev, KN_L_CONFIGURATION);
}

static void index_revision(void *ctx, const cJSON *rev)
{
    builder_t *b = ctx;
    const char *owner = owner_of(rev);
    if (!owner)
        return;
    if (b->n_revs == b->cap_revs) {
        size_t cap = b->cap_revs ? b->cap_revs * 2 : 64;
        struct owned_rev *grown = realloc(b->revs, cap * sizeof *grown);
        if (!grown) {
            b->oom = 1;
            return;
        }
        b->revs = grown;
        b->cap_revs = cap;
    }
    b->revs[b->n_revs].owner = owner;
    b->revs[b->n_revs++].rev = rev;
}

static int by_owner(const void *a, const void *b)
{
    return strcmp(((const struct owned_rev *)a)->owner, ((const struct owned_rev *)b)->owner);
}

static int file_has(const kp_activator_config_t *file, const char *ns, const char *name)
{
    for (size_t i = 0; file && i < file->n_services; i++)
        if (strcmp(file->services[i].name, name) == 0 &&
            strcmp(file->services[i].namespace_, ns) == 0)
            return 1;
    return 0;
}

static int add_annotations(kp_revision_spec_t *r, const cJSON *rev)
{
    const cJSON *ann = kn_json_at(rev, "metadata.annotations"), *kv;
    size_t n = 0;
    cJSON_ArrayForEach(kv, ann)
    {
        if (cJSON_IsString(kv) &&
            strncmp(kv->string, KN_AUTOSCALING_PREFIX, strlen(KN_AUTOSCALING_PREFIX)) == 0)
            n++;
    }
    if (n == 0)
        return 0;
    r->annotations = calloc(n, sizeof *r->annotations);
    if (!r->annotations)
        return -1;
    cJSON_ArrayForEach(kv, ann)
    {
        if (!cJSON_IsString(kv) ||
            strncmp(kv->string, KN_AUTOSCALING_PREFIX, strlen(KN_AUTOSCALING_PREFIX)) != 0)
            continue;
        kp_kv_t *a = &r->annotations[r->n_annotations++];
        a->key = strdup(kv->string);
        a->value = strdup(kv->valuestring);
        if (!a->key || !a->value)
            return -1;
    }
    return 0;
}

/* Why a revision cannot run: its Ready condition's "reason: message". */
static char *failure_of(const cJSON *rev)
{
    const cJSON *ready = kn_condition(rev, "Ready");
    if (!ready || strcmp(kn_json_str(ready, "status", ""), KN_FALSE) != 0)
        return NULL;
    const char *reason = kn_json_str(ready, "reason", "RevisionFailed");
    const char *message = kn_json_str(ready, "message", "");
    size_t len = strlen(reason) + strlen(message) + 3;
    char *s = malloc(len);
    if (s)
        snprintf(s, len, *message ? "%s: %s" : "%s%s", reason, message);
    return s;
}

static void add_revision(builder_t *b, const cJSON *rev)
{
    kn_revision_params_t p;
    char why[256];
    if (kn_revision_params(kn_json_child(rev, "spec"), &b->s->defaults, &p, why, sizeof why) != 0)
        return;
    kp_service_spec_t *s = b->svc;
    if (s->n_revisions == b->rev_cap) {
        size_t cap = b->rev_cap ? b->rev_cap * 2 : 4;
        kp_revision_spec_t *grown = realloc(s->revisions, cap * sizeof *grown);
        if (!grown) {
            b->oom = 1;
            return;
        }
        s->revisions = grown;
        b->rev_cap = cap;
    }
    kp_revision_spec_t *r = &s->revisions[s->n_revisions++];
    memset(r, 0, sizeof *r);
    r->name = dup(kn_json_str(rev, "metadata.name", ""));
    r->namespace_ = dup(b->ns);
    r->service = dup(b->svc_name);
    r->container_concurrency = p.container_concurrency;
    r->timeout_s = p.timeout_s;
    r->response_start_timeout_s = p.response_start_timeout_s;
    r->idle_timeout_s = p.idle_timeout_s;
    r->failure = failure_of(rev);
    if (!r->name || !r->namespace_ || !r->service || add_annotations(r, rev) != 0)
        b->oom = 1;
}

static int by_revision_name(const void *a, const void *b)
{
    return strcmp(((const kp_revision_spec_t *)a)->name, ((const kp_revision_spec_t *)b)->name);
}

static int add_target(kp_service_spec_t *s, const char *rev, int percent, const char *tag)
{
    kp_traffic_target_t *grown = realloc(s->traffic, (s->n_traffic + 1) * sizeof *grown);
    if (!grown)
        return -1;
    s->traffic = grown;
    kp_traffic_target_t *t = &s->traffic[s->n_traffic++];
    memset(t, 0, sizeof *t);
    t->percent = percent;
    t->revision_name = strdup(rev);
    t->tag = tag && *tag ? strdup(tag) : NULL;
    return t->revision_name && (!tag || !*tag || t->tag) ? 0 : -1;
}

/* status.traffic, or the spec resolved: -1 when a target has no revision yet. */
static int route_traffic(builder_t *b, const cJSON *route)
{
    const cJSON *st = kn_json_at(route, "status.traffic"), *t;
    if (cJSON_GetArraySize(st) > 0) {
        cJSON_ArrayForEach(t, st)
        {
            const char *rev = kn_json_str(t, "revisionName", "");
            if (!*rev || add_target(b->svc, rev, (int)kn_json_int(t, "percent", 0),
                                    kn_json_str(t, "tag", NULL)) != 0)
                return -1;
        }
        return 0;
    }
    kn_traffic_t tr;
    char why[256];
    if (kn_traffic_parse(kn_json_at(route, "spec.traffic"), b->svc_name, &tr, why, sizeof why) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < tr.n && rc == 0; i++) {
        const kn_target_t *k = &tr.targets[i];
        const char *rev = k->revision_name;
        if (k->latest) {
            const cJSON *cfg = kn_get(b->s, KN_CONFIGURATIONS, b->ns, k->configuration_name);
            rev = kn_json_str(cfg, "status.latestReadyRevisionName", NULL);
            if (!rev)
                rev = kn_json_str(cfg, "status.latestCreatedRevisionName", NULL);
        }
        rc = rev ? add_target(b->svc, rev, k->percent, k->tag) : -1;
    }
    kn_traffic_free(&tr);
    return rc;
}

static cJSON *describe(const kp_service_spec_t *s)
{
    cJSON *d = cJSON_CreateObject();
    kn_json_set_str(d, "n", s->name);
    kn_json_set_str(d, "ns", s->namespace_);
    cJSON *revs = cJSON_AddArrayToObject(d, "r");
    for (size_t i = 0; revs && i < s->n_revisions; i++) {
        const kp_revision_spec_t *r = &s->revisions[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(revs, e);
        kn_json_set_str(e, "n", r->name);
        kn_json_set_int(e, "cc", r->container_concurrency);
        kn_json_set_int(e, "t", r->timeout_s);
        kn_json_set_int(e, "rt", r->response_start_timeout_s);
        kn_json_set_int(e, "it", r->idle_timeout_s);
        if (r->failure)
            kn_json_set_str(e, "f", r->failure);
        cJSON *a = kn_json_obj(e, "a");
        for (size_t k = 0; k < r->n_annotations; k++)
            kn_json_set_str(a, r->annotations[k].key, r->annotations[k].value);
    }
    cJSON *tr = cJSON_AddArrayToObject(d, "t");
    for (size_t i = 0; tr && i < s->n_traffic; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(tr, e);
        kn_json_set_str(e, "r", s->traffic[i].revision_name);
        kn_json_set_int(e, "p", s->traffic[i].percent);
        if (s->traffic[i].tag)
            kn_json_set_str(e, "g", s->traffic[i].tag);
    }
    return d;
}

static void add_route(void *ctx, const cJSON *route)
{
    builder_t *b = ctx;
    const char *name = kn_json_str(route, "metadata.name", "");
    if (b->oom)
        return;
    if (file_has(b->file, b->ns, name)) {
        /* Named in the signature so that a newly hidden Service applies
         * the table again, and gets its warning. */
        char hidden[600];
        snprintf(hidden, sizeof hidden, "hidden %s/%s", b->ns, name);
        cJSON_AddItemToArray(b->sig, cJSON_CreateString(hidden));
        return;
    }
    if (b->out->n_services == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        kp_service_spec_t *grown = realloc(b->out->services, cap * sizeof *grown);
        if (!grown) {
            b->oom = 1;
            return;
        }
        b->out->services = grown;
        b->cap = cap;
    }
    kp_service_spec_t *s = &b->out->services[b->out->n_services];
    memset(s, 0, sizeof *s);
    s->name = dup(name);
    s->namespace_ = dup(b->ns);
    b->svc = s;
    b->svc_name = name;
    b->rev_cap = 0;
    if (!s->name || !s->namespace_) {
        b->oom = 1;
        service_free(s);
        return;
    }
    /* The first of the route's revisions in the index, then the rest. */
    size_t lo = 0, hi = b->n_revs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(b->revs[mid].owner, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < b->n_revs && strcmp(b->revs[i].owner, name) == 0 && !b->oom; i++)
        add_revision(b, b->revs[i].rev);
    if (b->oom) {
        service_free(s);
        return;
    }
    if (s->n_revisions > 1)
        qsort(s->revisions, s->n_revisions, sizeof *s->revisions, by_revision_name);
    /* Until its traffic names revisions that exist, the route is not served. */
    if (s->n_revisions == 0 || route_traffic(b, route) != 0 || resolve_targets(s) != 0) {
        service_free(s);
        return;
    }
    b->out->n_services++;
}

static int by_service(const void *a, const void *b)
{
    const kp_service_spec_t *x = a, *y = b;
    int c = strcmp(x->namespace_, y->namespace_);
    return c ? c : strcmp(x->name, y->name);
}

struct hidden_walk {
    const kp_activator_config_t *file;
    const char *ns;
};

static void warn_if_hidden(void *ctx, const cJSON *route)
{
    const struct hidden_walk *w = ctx;
    const char *name = kn_json_str(route, "metadata.name", "");
    if (!file_has(w->file, w->ns, name))
        return;
    kp_log_fields(KP_LOG_WARN,
                  "knative: Service not routed: the config file lists a service of the same "
                  "name, and file services win a name clash (remove it from config.json to "
                  "route the Knative Service)",
                  KP_LOG_STR("namespace", w->ns), KP_LOG_STR("service", name));
}

void kn_table_warn_hidden(kn_state_t *s, const kp_activator_config_t *file)
{
    struct hidden_walk w = {.file = file};
    for (size_t i = 0; file && file->n_services && i < s->n_ns; i++) {
        w.ns = s->ns[i].name;
        kn_each(s, KN_ROUTES, w.ns, warn_if_hidden, &w);
    }
}

int kn_table_build(kn_state_t *s, const kp_activator_config_t *file, kp_activator_config_t *out,
                   char **sig)
{
    builder_t b = {.s = s, .out = out, .file = file};
    b.sig = cJSON_CreateArray();
    if (!b.sig)
        return -1;
    if (file) {
        out->domain = dup(file->domain);
        if (file->n_autoscaler) {
            out->autoscaler = calloc(file->n_autoscaler, sizeof *out->autoscaler);
            for (size_t i = 0; out->autoscaler && i < file->n_autoscaler; i++) {
                out->autoscaler[i].key = dup(file->autoscaler[i].key);
                out->autoscaler[i].value = dup(file->autoscaler[i].value);
                out->n_autoscaler++;
                if (!out->autoscaler[i].key || !out->autoscaler[i].value)
                    b.oom = 1;
            }
            if (!out->autoscaler)
                b.oom = 1;
        }
        b.cap = file->n_services + 8;
        out->services = calloc(b.cap, sizeof *out->services);
        if (!out->services)
            b.oom = 1;
        for (size_t i = 0; !b.oom && i < file->n_services; i++) {
            if (kn_service_spec_copy(&out->services[out->n_services], &file->services[i]) != 0)
                b.oom = 1;
            else
                out->n_services++;
        }
    }
    size_t first_derived = out->n_services;
    for (size_t i = 0; !b.oom && i < s->n_ns; i++) {
        b.ns = s->ns[i].name;
        b.n_revs = 0;
        kn_each(s, KN_REVISIONS, b.ns, index_revision, &b);
        if (b.n_revs > 1)
            qsort(b.revs, b.n_revs, sizeof *b.revs, by_owner);
        kn_each(s, KN_ROUTES, b.ns, add_route, &b);
    }
    free(b.revs);
    if (b.oom) {
        cJSON_Delete(b.sig);
        kp_activator_config_free(out);
        return -1;
    }
    if (out->n_services > first_derived + 1)
        qsort(out->services + first_derived, out->n_services - first_derived, sizeof *out->services,
              by_service);
    /* The sort moved the services: targets point into each one's own
     * revisions array, which did not move, so they stay right. */
    if (sig) {
        for (size_t i = first_derived; i < out->n_services; i++)
            cJSON_AddItemToArray(b.sig, describe(&out->services[i]));
        *sig = cJSON_PrintUnformatted(b.sig);
    }
    cJSON_Delete(b.sig);
    return 0;
}
