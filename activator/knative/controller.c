/* The Knative controller inside the activator. See controller.h. */
#include "controller.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "kjson.h"
#include "names.h"
#include "reconcile.h"
#include "settings.h"
#include "state.h"
#include "table.h"

/* Events come in bursts (a list, a cascade): the table is rebuilt once
 * per burst, and never more than a third of the time (a rebuild costs what
 * the table holds). */
#define TABLE_DEBOUNCE_MS 10
#define TABLE_PACE 2
#define IMAGE_RETRY_MS 2000

struct kn_controller {
    kn_state_t s;
    kn_controller_opts_t opts;
    kp_activator_config_t *file;
    char *last_sig;
    int applied_once;
    uv_timer_t table_timer;
    uint64_t table_cost_ms; /* the last rebuild and apply */
    /* Services whose Route changed: reconciled once the table has the
     * change, so a Service never says Ready before this replica routes it. */
    char **after_table;
    size_t n_after_table, cap_after_table;
    uint64_t table_done_at; /* uv_now when it ended */
    uv_timer_t image_timer;
    char *queue_image;
    int image_pending; /* a GET of our pod is under way */
    /* Knative's ConfigMaps in the activator's namespace (settings.c),
     * watched once Knative Services are served. */
    kp_kube_informer_t *settings;
    int settings_synced;
    int closes;
    int stopped;
};

static time_t wall_now(void)
{
    return time(NULL);
}

/* --- the routing table --- */

static void table_apply(kn_controller_t *c, int force)
{
    kp_activator_config_t *cfg = calloc(1, sizeof *cfg);
    char *sig = NULL;
    if (!cfg || kn_table_build(&c->s, c->file, cfg, &sig) != 0) {
        free(cfg);
        kp_log(KP_LOG_ERROR, "knative: routing table not rebuilt: out of memory");
        return;
    }
    if (!force && c->applied_once && sig && c->last_sig && strcmp(sig, c->last_sig) == 0) {
        free(sig);
        kp_activator_config_free(cfg);
        free(cfg);
        return;
    }
    size_t n = cfg->n_services;
    if (c->opts.apply(c->opts.ctx, cfg) != 0) {
        free(sig);
        return;
    }
    kp_log_fields(KP_LOG_DEBUG, "knative: routing table applied",
                  KP_LOG_INT("services", (long long)n));
    kn_table_warn_hidden(&c->s, c->file);
    c->applied_once = 1;
    free(c->last_sig);
    c->last_sig = sig;
}

static void on_table_timer(uv_timer_t *t)
{
    kn_controller_t *c = t->data;
    uv_update_time(c->s.loop);
    uint64_t start = uv_now(c->s.loop);
    table_apply(c, 0);
    uv_update_time(c->s.loop);
    c->table_done_at = uv_now(c->s.loop);
    c->table_cost_ms = c->table_done_at - start;
    for (size_t i = 0; i < c->n_after_table; i++) {
        kn_wq_add(c->s.queue, c->after_table[i]);
        free(c->after_table[i]);
    }
    c->n_after_table = 0;
}

/* Queues the Service's key after the next table rebuild (now, when none
 * is due). */
static void enqueue_after_table(kn_controller_t *c, const char *ns, const char *name)
{
    char key[600];
    if (!name || !*name)
        return;
    kn_key(key, sizeof key, KN_SERVICES, ns, name);
    if (!uv_is_active((uv_handle_t *)&c->table_timer)) {
        kn_wq_add(c->s.queue, key);
        return;
    }
    if (c->n_after_table == c->cap_after_table) {
        size_t cap = c->cap_after_table ? c->cap_after_table * 2 : 16;
        char **grown = realloc(c->after_table, cap * sizeof *grown);
        if (!grown) {
            kn_wq_add(c->s.queue, key);
            return;
        }
        c->after_table = grown;
        c->cap_after_table = cap;
    }
    char *copy = strdup(key);
    if (!copy) {
        kn_wq_add(c->s.queue, key);
        return;
    }
    c->after_table[c->n_after_table++] = copy;
}

static void table_changed(kn_controller_t *c)
{
    if (c->stopped || uv_is_active((uv_handle_t *)&c->table_timer))
        return;
    uint64_t delay = TABLE_DEBOUNCE_MS;
    uint64_t next = c->table_done_at + TABLE_PACE * c->table_cost_ms;
    uint64_t now = uv_now(c->s.loop);
    if (next > now + delay)
        delay = next - now;
    uv_timer_start(&c->table_timer, on_table_timer, delay, 0);
}

/* config-autoscaler's initial-scale (0 only with allow-zero-initial-scale),
 * the replicas a new revision's Deployment starts with. */
static int initial_scale_of(const kp_activator_config_t *cfg)
{
    long scale = 1;
    int allow_zero = 0;
    for (size_t i = 0; cfg && i < cfg->n_autoscaler; i++) {
        const char *k = cfg->autoscaler[i].key, *v = cfg->autoscaler[i].value;
        char *end;
        if (strcmp(k, "initial-scale") == 0) {
            long n = strtol(v, &end, 10);
            if (*v && !*end && n >= 0 && n < 100000)
                scale = n;
        } else if (strcmp(k, "allow-zero-initial-scale") == 0) {
            allow_zero = strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
        }
    }
    return scale == 0 && !allow_zero ? 1 : (int)scale;
}

int kn_controller_set_file_config(kn_controller_t *c, kp_activator_config_t *cfg)
{
    if (c->file) {
        kp_activator_config_free(c->file);
        free(c->file);
    }
    c->file = cfg;
    c->s.initial_scale = initial_scale_of(cfg);
    table_apply(c, 1);
    return c->applied_once ? 0 : -1;
}

/* --- the work queue --- */

static void enqueue(kn_controller_t *c, kn_kind_t kind, const char *ns, const char *name)
{
    char key[600];
    if (!name || !*name)
        return;
    kn_key(key, sizeof key, kind, ns, name);
    kn_wq_add(c->s.queue, key);
}

static void process(void *ctx, const char *key)
{
    kn_controller_t *c = ctx;
    char buf[600];
    snprintf(buf, sizeof buf, "%s", key);
    char *ns = strchr(buf, '/');
    char *name = ns ? strchr(ns + 1, '/') : NULL;
    if (!name)
        return;
    *ns++ = '\0';
    *name++ = '\0';
    /* Followers only read; a leader waits for its caches and settings. */
    if (!c->s.leader || !c->s.ready || !c->settings_synced || c->stopped ||
        !kn_state_synced(&c->s, ns))
        return;
    if (strcmp(buf, "Service") == 0)
        kn_reconcile_service(&c->s, key, ns, name);
    else if (strcmp(buf, "Configuration") == 0)
        kn_reconcile_configuration(&c->s, key, ns, name);
    else if (strcmp(buf, "Revision") == 0)
        kn_reconcile_revision(&c->s, key, ns, name);
    else if (strcmp(buf, "Route") == 0)
        kn_reconcile_route(&c->s, key, ns, name);
}

typedef struct resync_ctx {
    kn_controller_t *c;
    kn_kind_t kind;
    const char *ns;
} resync_ctx_t;

static void resync_one(void *ctx, const cJSON *obj)
{
    resync_ctx_t *r = ctx;
    enqueue(r->c, r->kind, r->ns, kn_json_str(obj, "metadata.name", ""));
}

static void resync_ns(kn_controller_t *c, const char *ns)
{
    static const kn_kind_t owners[] = {KN_SERVICES, KN_CONFIGURATIONS, KN_REVISIONS, KN_ROUTES};
    for (size_t k = 0; k < sizeof owners / sizeof owners[0]; k++) {
        resync_ctx_t r = {c, owners[k], ns};
        kn_each(&c->s, owners[k], ns, resync_one, &r);
    }
}

static void resync(kn_controller_t *c)
{
    if (!c->s.leader || !c->s.ready || !c->settings_synced)
        return;
    for (size_t i = 0; i < c->s.n_ns; i++)
        if (kn_state_synced(&c->s, c->s.ns[i].name))
            resync_ns(c, c->s.ns[i].name);
}

/* The Service, Configuration... that controls obj, by its ownerReference. */
static const char *controller_of(const cJSON *obj, const char *kind)
{
    const cJSON *ref;
    cJSON_ArrayForEach(ref, kn_json_at(obj, "metadata.ownerReferences"))
    {
        if (cJSON_IsTrue(kn_json_child(ref, "controller")) &&
            strcmp(kn_json_str(ref, "kind", ""), kind) == 0 &&
            strcmp(kn_json_str(ref, "apiVersion", ""), KN_API_VERSION) == 0)
            return kn_json_str(ref, "name", NULL);
    }
    return NULL;
}

static void on_event(void *ctx, kp_kube_informer_event_t ev, const cJSON *obj, const cJSON *old)
{
    struct kn_ns_event_ctx *e = ctx;
    kn_ns_t *n = e->ns;
    kn_controller_t *c = (kn_controller_t *)n->s;
    const char *ns = n->name;
    const char *name = kn_json_str(obj, "metadata.name", "");
    const char *svc = kn_json_label(obj, KN_L_SERVICE);
    switch (e->kind) {
    case KN_SERVICES:
        enqueue(c, KN_SERVICES, ns, name);
        return;
    case KN_CONFIGURATIONS:
        enqueue(c, KN_CONFIGURATIONS, ns, name);
        enqueue(c, KN_SERVICES, ns, controller_of(obj, "Service"));
        /* Our Routes are named after the Service, whose Configuration this is. */
        enqueue(c, KN_ROUTES, ns, svc);
        table_changed(c);
        return;
    case KN_REVISIONS:
        enqueue(c, KN_REVISIONS, ns, name);
        enqueue(c, KN_CONFIGURATIONS, ns, kn_json_label(obj, KN_L_CONFIGURATION));
        enqueue(c, KN_ROUTES, ns, svc);
        table_changed(c);
        return;
    case KN_ROUTES:
        enqueue(c, KN_ROUTES, ns, name);
        /* Its traffic moved: the Configuration of the same name may now
         * collect a revision the route let go of (config-gc). */
        enqueue(c, KN_CONFIGURATIONS, ns, name);
        table_changed(c);
        enqueue_after_table(c, ns, controller_of(obj, "Service"));
        return;
    default:
        /* Deployments, Services, HPAs and Pods tell their revision. */
        enqueue(c, KN_REVISIONS, ns, kn_json_label(obj, KN_L_REVISION));
        if (e->kind == KN_DEPLOYMENTS || e->kind == KN_K8S_SERVICES || e->kind == KN_HPAS)
            enqueue(c, KN_REVISIONS, ns, controller_of(obj, "Revision"));
        if (e->kind == KN_K8S_SERVICES)
            enqueue(c, KN_ROUTES, ns, controller_of(obj, "Route"));
        return;
    }
    (void)ev;
    (void)old;
}

static const kp_kube_informer_ops_t informer_ops;
static void start_settings(kn_controller_t *c);

/* The other kinds are watched once Knative Services are served here: on a
 * cluster without the CRDs the one informer of Services logs the 404 and
 * retries, and nothing else is asked of the API. */
static void start_other_informers(kn_ns_t *n)
{
    for (int k = 0; k < KN_N_KINDS; k++) {
        if (n->inf[k])
            continue;
        n->ev[k].ns = n;
        n->ev[k].kind = (kn_kind_t)k;
        n->inf[k] =
            kp_kube_informer_start(n->s->kube, &kn_resources[k], n->name,
                                   k == KN_PODS ? KN_L_REVISION : NULL, &informer_ops, &n->ev[k]);
    }
}

static void on_synced(void *ctx)
{
    struct kn_ns_event_ctx *e = ctx;
    kn_controller_t *c = (kn_controller_t *)e->ns->s;
    if (c->stopped)
        return;
    if (e->kind == KN_SERVICES) {
        start_other_informers(e->ns);
        start_settings(c);
    }
    if (!kn_state_synced(&c->s, e->ns->name))
        return;
    kp_log_kv(KP_LOG_INFO, "knative: caches synced", "namespace", e->ns->name, NULL);
    if (c->s.leader && c->s.ready && c->settings_synced)
        resync_ns(c, e->ns->name);
    table_changed(c);
}

static const kp_kube_informer_ops_t informer_ops = {on_event, on_synced};

/* --- settings: Knative's ConfigMaps --- */

static void start_reconciling(kn_controller_t *c, const char *image);
static void read_own_image(kn_controller_t *c);

/* A ConfigMap's settings; the image it names counts unless one was given
 * at start. */
static int apply_settings(kn_controller_t *c, const cJSON *cm)
{
    char image[512];
    int changed = kn_settings_apply(&c->s, cm, image, sizeof image);
    if (*image && !(c->opts.queue_image && *c->opts.queue_image) &&
        (!c->queue_image || strcmp(image, c->queue_image) != 0)) {
        start_reconciling(c, image);
        changed++;
    }
    return changed;
}

static void on_setting_event(void *ctx, kp_kube_informer_event_t ev, const cJSON *obj,
                             const cJSON *old)
{
    kn_controller_t *c = ctx;
    if (!kn_settings_is_configmap(kn_json_str(obj, "metadata.name", "")) || !c->settings_synced)
        return;
    if (apply_settings(c, obj) > 0) {
        kp_log_kv(KP_LOG_INFO, "knative: settings changed", "configmap",
                  kn_json_str(obj, "metadata.name", ""), NULL);
        resync(c);
        table_changed(c);
    }
    (void)ev;
    (void)old;
}

static void apply_one_setting(void *ctx, const cJSON *cm)
{
    if (kn_settings_is_configmap(kn_json_str(cm, "metadata.name", "")))
        apply_settings(ctx, cm);
}

static void on_settings_synced(void *ctx)
{
    kn_controller_t *c = ctx;
    if (c->settings_synced || c->stopped)
        return;
    kp_kube_informer_each(c->settings, apply_one_setting, c);
    c->settings_synced = 1;
    if (!c->s.ready) {
        /* The image: given at start, or config-deployment's, or ours. */
        if (c->opts.queue_image && *c->opts.queue_image)
            start_reconciling(c, c->opts.queue_image);
        else if (c->opts.pod_name && *c->opts.pod_name)
            read_own_image(c);
        else
            start_reconciling(c, "kp:dev");
    } else {
        resync(c);
    }
    table_changed(c);
}

static const kp_kube_informer_ops_t settings_ops = {on_setting_event, on_settings_synced};

static void start_settings(kn_controller_t *c)
{
    static const kp_kube_resource_t configmaps = {"", "v1", "configmaps", "ConfigMap"};
    if (c->settings || c->stopped)
        return;
    c->settings = kp_kube_informer_start(c->opts.kube, &configmaps,
                                         c->opts.pod_namespace ? c->opts.pod_namespace : "default",
                                         NULL, &settings_ops, c);
}

/* --- the queue-proxy image: ours --- */

static void start_reconciling(kn_controller_t *c, const char *image)
{
    char *copy = strdup(image);
    if (!copy)
        return;
    free(c->queue_image);
    c->queue_image = copy;
    c->s.build.queue_image = c->queue_image;
    c->s.ready = 1;
    kp_log_kv(KP_LOG_INFO, "knative: queue-proxy image", "image", image, NULL);
    resync(c);
}

static void maybe_free(kn_controller_t *c);

static void on_image_timer(uv_timer_t *t)
{
    read_own_image(t->data);
}

static void on_own_pod(void *ctx, int status, const cJSON *pod, const char *message)
{
    kn_controller_t *c = ctx;
    c->image_pending = 0;
    if (c->stopped) {
        maybe_free(c);
        return;
    }
    const cJSON *ct, *first = NULL;
    const char *image = NULL;
    cJSON_ArrayForEach(ct, kn_json_at(pod, "spec.containers"))
    {
        if (!first)
            first = ct;
        if (strcmp(kn_json_str(ct, "name", ""), "activator") == 0)
            image = kn_json_str(ct, "image", NULL);
    }
    if (!image && first)
        image = kn_json_str(first, "image", NULL);
    if (status / 100 == 2 && image) {
        start_reconciling(c, image);
        return;
    }
    if (status == 404 || status == 403) {
        kp_log_fields(KP_LOG_WARN,
                      "knative: cannot read this activator's own Pod for the queue-proxy image; "
                      "using kp:dev (set KP_QUEUE_SIDECAR_IMAGE to choose)",
                      KP_LOG_STR("pod", c->opts.pod_name), KP_LOG_INT("status", status),
                      KP_LOG_STR("error", message ? message : ""));
        start_reconciling(c, "kp:dev");
        return;
    }
    uv_timer_start(&c->image_timer, on_image_timer, IMAGE_RETRY_MS, 0);
}

static void read_own_image(kn_controller_t *c)
{
    static const kp_kube_resource_t pods = {"", "v1", "pods", "Pod"};
    if (kp_kube_object_get(c->opts.kube, &pods, c->opts.pod_namespace, c->opts.pod_name, on_own_pod,
                           c) == 0)
        c->image_pending = 1;
    else
        uv_timer_start(&c->image_timer, on_image_timer, IMAGE_RETRY_MS, 0);
}

/* --- life --- */

int kn_controller_check_gc(const kn_controller_opts_t *o, char *why, size_t why_len)
{
    kn_gc_config_t gc;
    kn_gc_config_init(&gc);
    for (size_t i = 0; i < o->n_gc; i++)
        if (kn_gc_config_set(&gc, o->gc_keys[i], o->gc_values[i], why, why_len) < 0)
            return -1;
    return kn_gc_config_check(&gc, why, why_len);
}

kn_controller_t *kn_controller_start(uv_loop_t *loop, const kn_controller_opts_t *o)
{
    kn_controller_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->opts = *o;
    kn_state_t *s = &c->s;
    s->loop = loop;
    s->kube = o->kube;
    s->now = wall_now;
    kn_defaults_init(&s->defaults);
    kn_build_opts_init(&s->build);
    s->build.system_namespace = o->pod_namespace ? o->pod_namespace : "kp-system";
    if (o->progress_deadline_s > 0)
        s->build.progress_deadline_s = o->progress_deadline_s;
    kn_gc_config_init(&s->gc);
    char why[256];
    for (size_t i = 0; i < o->n_gc; i++)
        kn_gc_config_set(&s->gc, o->gc_keys[i], o->gc_values[i], why, sizeof why);
    snprintf(s->domain, sizeof s->domain, "%s",
             o->domain && *o->domain ? o->domain : "example.com");
    snprintf(s->route_target, sizeof s->route_target, "%s.%s.svc.cluster.local",
             o->ingress_service && *o->ingress_service ? o->ingress_service : "kp-activator",
             s->build.system_namespace);
    s->initial_scale = 1;
    s->queue = kn_wq_new(loop, process, c);
    s->ns = calloc(o->n_namespaces ? o->n_namespaces : 1, sizeof *s->ns);
    if (!s->queue || !s->ns)
        goto fail;
    uv_timer_init(loop, &c->table_timer);
    c->table_timer.data = c;
    uv_timer_init(loop, &c->image_timer);
    c->image_timer.data = c;
    for (size_t i = 0; i < o->n_namespaces; i++) {
        kn_ns_t *n = &s->ns[s->n_ns++];
        n->s = s;
        n->name = strdup(o->namespaces[i]);
        if (!n->name)
            goto fail;
        n->ev[KN_SERVICES].ns = n;
        n->ev[KN_SERVICES].kind = KN_SERVICES;
        n->inf[KN_SERVICES] = kp_kube_informer_start(o->kube, &kn_resources[KN_SERVICES], n->name,
                                                     NULL, &informer_ops, &n->ev[KN_SERVICES]);
    }
    kp_log_fields(KP_LOG_INFO, "knative: serving Services",
                  KP_LOG_INT("namespaces", (long long)s->n_ns),
                  KP_LOG_STR("first_namespace", s->n_ns ? s->ns[0].name : ""),
                  KP_LOG_STR("domain", s->domain));
    return c;
fail:
    kn_controller_stop(c);
    return NULL;
}

void kn_controller_set_leader(kn_controller_t *c, int leader)
{
    if (!c || c->s.leader == leader)
        return;
    c->s.leader = leader;
    kp_log(KP_LOG_INFO, leader ? "knative: this replica reconciles Knative Services"
                               : "knative: another replica reconciles Knative Services");
    /* A new leader trusts no earlier term: everything is looked at again. */
    resync(c);
}

static void controller_free(void *ctx)
{
    kn_controller_t *c = ctx;
    for (size_t i = 0; i < c->s.n_ns; i++)
        free(c->s.ns[i].name);
    free(c->s.ns);
    if (c->file) {
        kp_activator_config_free(c->file);
        free(c->file);
    }
    free(c->last_sig);
    free(c->queue_image);
    for (size_t i = 0; i < c->n_after_table; i++)
        free(c->after_table[i]);
    free(c->after_table);
    free(c);
}

static void maybe_free(kn_controller_t *c)
{
    if (c->closes == 0 && c->s.pending_writes == 0 && !c->image_pending)
        controller_free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    kn_controller_t *c = h->data;
    c->closes--;
    maybe_free(c);
}

static void on_writes_done(void *ctx)
{
    maybe_free(ctx);
}

void kn_controller_stop(kn_controller_t *c)
{
    if (!c || c->stopped)
        return;
    c->stopped = 1;
    c->s.stopping = 1;
    c->s.on_stopped = on_writes_done;
    c->s.stopped_ctx = c;
    for (size_t i = 0; i < c->s.n_ns; i++)
        for (int k = 0; k < KN_N_KINDS; k++)
            if (c->s.ns[i].inf[k]) {
                kp_kube_informer_stop(c->s.ns[i].inf[k]);
                c->s.ns[i].inf[k] = NULL;
            }
    if (c->settings)
        kp_kube_informer_stop(c->settings);
    c->settings = NULL;
    if (c->s.queue)
        kn_wq_free(c->s.queue);
    c->s.queue = NULL;
    if (c->table_timer.data) {
        c->closes += 2;
        uv_close((uv_handle_t *)&c->table_timer, on_handle_closed);
        uv_close((uv_handle_t *)&c->image_timer, on_handle_closed);
    } else {
        maybe_free(c);
    }
}
