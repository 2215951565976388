/* The EndpointSlices of Services, kept current through ONE informer per
 * (client, namespace) over every slice that has a kubernetes.io/service-name
 * label, shared by reference count: a thousand revisions cost one watch
 * stream, not a thousand. Each slice event goes to the service its label
 * names; that service's slices are merged again (O(its endpoints)) and
 * its watchers see the whole set when it changed (client.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SERVICE_LABEL "kubernetes.io/service-name"
#define SERVICE_NAME_MAX 63

static const kp_kube_resource_t endpointslices = {
    .group = "discovery.k8s.io",
    .version = "v1",
    .plural = "endpointslices",
    .kind = "EndpointSlice",
};

typedef struct ep_hub ep_hub_t;

/* One service of the namespace: its slices (parsed), its watchers. Owned
 * by the hub; dropped when it has neither. */
typedef struct ep_service {
    char name[SERVICE_NAME_MAX + 1];
    kp_kube_slices_t slices;
    kp_kube_watch_t *watchers;
    int dirty;  /* in hub->dirty: to deliver at the next flush */
    int pinned; /* being delivered: not to be dropped under the walk */
    struct ep_service *dirty_next;
} ep_service_t;

/* One per (client, namespace), tracked by the client; freed in its
 * timer's close callback once the last watcher stops (or the client
 * closes), with every watcher still listed. */
struct ep_hub {
    kp_kube_t *k;
    uv_timer_t timer; /* first answers to watchers that join a synced hub */
    char ns[254];
    kp_kube_informer_t *inf;
    kp_kube_map_t services; /* name -> ep_service_t* */
    ep_service_t *dirty;
    unsigned live;        /* watchers not stopped */
    unsigned dispatching; /* inside a watcher's callback */
    unsigned stopped_in_dispatch;
    int stopped;
};

/* Owned by its caller until kp_kube_watch_stop; stopped by the hub when
 * the client closes, and then freed with the hub. */
struct kp_kube_watch {
    ep_hub_t *hub;
    ep_service_t *svc;
    kp_kube_endpoints_cb cb;
    void *ctx;
    kp_kube_endpoint_t *last; /* what cb saw last */
    size_t last_n;
    int delivered;
    int stopped;
    kp_kube_watch_t *prev, *next;
};

static void hub_stop(void *obj);

/* --- services --- */

static void service_free(ep_service_t *svc)
{
    kp_kube_slices_clear(&svc->slices);
    free(svc);
}

static ep_service_t *service_get(ep_hub_t *hub, const char *name, int create)
{
    ep_service_t *svc = kp_kube_map_get(&hub->services, name);
    if (svc || !create)
        return svc;
    svc = calloc(1, sizeof(*svc));
    if (!svc)
        return NULL;
    snprintf(svc->name, sizeof(svc->name), "%s", name);
    if (kp_kube_map_put(&hub->services, name, svc) != 0) {
        free(svc);
        return NULL;
    }
    return svc;
}

/* A service with no slice left and nobody watching is forgotten; not
 * while a callback runs (it may be the one being walked). */
static void service_maybe_drop(ep_hub_t *hub, ep_service_t *svc)
{
    if (svc->dirty || svc->pinned || svc->watchers || svc->slices.n || hub->dispatching ||
        hub->stopped)
        return;
    kp_kube_map_remove(&hub->services, svc->name);
    service_free(svc);
}

static void service_mark(ep_hub_t *hub, ep_service_t *svc)
{
    if (svc->dirty)
        return;
    svc->dirty = 1;
    svc->dirty_next = hub->dirty;
    hub->dirty = svc;
}

static void watch_unlink(kp_kube_watch_t *w)
{
    ep_service_t *svc = w->svc;
    if (w->prev)
        w->prev->next = w->next;
    else
        svc->watchers = w->next;
    if (w->next)
        w->next->prev = w->prev;
}

static void watch_free(kp_kube_watch_t *w)
{
    free(w->last);
    free(w);
}

/* Watchers stopped from inside a callback were only marked: unlink them
 * now that no walk is running. */
static void hub_sweep(ep_hub_t *hub)
{
    if (hub->dispatching || hub->stopped || !hub->stopped_in_dispatch)
        return;
    hub->stopped_in_dispatch = 0;
    ep_service_t **empty = NULL;
    size_t n_empty = 0;
    kp_kube_map_iter_t it = {0};
    const char *key;
    void *value;
    while (kp_kube_map_next(&hub->services, &it, &key, &value)) {
        ep_service_t *svc = value;
        for (kp_kube_watch_t *w = svc->watchers, *next; w; w = next) {
            next = w->next;
            if (w->stopped) {
                watch_unlink(w);
                watch_free(w);
            }
        }
        if (!svc->watchers && !svc->slices.n && !svc->dirty) {
            ep_service_t **e = realloc(empty, (n_empty + 1) * sizeof(*e));
            if (e) {
                empty = e;
                empty[n_empty++] = svc;
            }
        }
    }
    for (size_t i = 0; i < n_empty; i++)
        service_maybe_drop(hub, empty[i]);
    free(empty);
}

/* Every watcher of svc that has not seen its current set gets it. */
static void service_deliver(ep_hub_t *hub, ep_service_t *svc)
{
    if (!svc->watchers)
        return;
    kp_kube_endpoint_t *eps;
    size_t n;
    if (kp_kube_slices_merge(&svc->slices, &eps, &n) != 0)
        return; /* out of memory: the next change brings the whole set */
    hub->dispatching++;
    /* Watchers that join meanwhile go to the head: this walk skips them,
     * the next flush serves them. */
    for (kp_kube_watch_t *w = svc->watchers; w && !hub->stopped; w = w->next) {
        if (w->stopped)
            continue;
        if (w->delivered && n == w->last_n &&
            (n == 0 || memcmp(eps, w->last, n * sizeof(*eps)) == 0))
            continue;
        kp_kube_endpoint_t *copy = NULL;
        if (n) {
            copy = malloc(n * sizeof(*copy));
            if (!copy)
                continue;
            memcpy(copy, eps, n * sizeof(*copy));
        }
        free(w->last);
        w->last = copy;
        w->last_n = n;
        w->delivered = 1;
        w->cb(w->ctx, w->last, w->last_n);
    }
    hub->dispatching--;
    free(eps);
    hub_sweep(hub);
}

static void hub_flush(ep_hub_t *hub)
{
    while (hub->dirty && !hub->stopped) {
        ep_service_t *svc = hub->dirty;
        hub->dirty = svc->dirty_next;
        svc->dirty = 0;
        svc->pinned = 1;
        service_deliver(hub, svc);
        svc->pinned = 0;
        if (!hub->stopped)
            service_maybe_drop(hub, svc);
    }
}

static void on_flush_timer(uv_timer_t *t)
{
    hub_flush(t->data);
}

/* --- slice events --- */

static const char *service_of(const cJSON *slice)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(slice, "metadata");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(labels, SERVICE_LABEL);
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > SERVICE_NAME_MAX)
        return NULL;
    return v->valuestring;
}

static void slice_event(ep_hub_t *hub, ep_service_t *svc, kp_kube_ev_type_t type, const cJSON *obj)
{
    kp_kube_slice_t s;
    if (kp_kube_slice_parse(obj, &s) != 0) {
        kp_kube_slice_free(&s);
        return;
    }
    kp_kube_slices_apply(&svc->slices, type, &s);
    service_mark(hub, svc);
}

static void on_slice(void *ctx, kp_kube_informer_event_t ev, const cJSON *obj, const cJSON *old)
{
    ep_hub_t *hub = ctx;
    const char *now = service_of(obj);
    const char *was = old ? service_of(old) : NULL;
    /* A slice relabelled to another service leaves the first one. */
    if (was && (ev == KP_INFORMER_DELETED || !now || strcmp(was, now) != 0)) {
        ep_service_t *svc = service_get(hub, was, 0);
        if (svc)
            slice_event(hub, svc, KP_KUBE_EV_DELETED, old);
    }
    if (now && ev != KP_INFORMER_DELETED) {
        ep_service_t *svc = service_get(hub, now, 1);
        if (svc)
            slice_event(hub, svc, KP_KUBE_EV_MODIFIED, obj);
    }
    /* Half of a relist is not a state the service was ever in: its
     * difference is delivered whole, at on_synced. */
    if (kp_kube_informer_synced(hub->inf) && !kp_kube_informer_replacing(hub->inf))
        hub_flush(hub);
}

static void on_synced(void *ctx)
{
    hub_flush(ctx);
}

/* --- the hub --- */

static void on_hub_closed(uv_handle_t *h)
{
    ep_hub_t *hub = h->data;
    kp_kube_t *k = hub->k;
    kp_kube_map_iter_t it = {0};
    const char *key;
    void *value;
    while (kp_kube_map_next(&hub->services, &it, &key, &value)) {
        ep_service_t *svc = value;
        for (kp_kube_watch_t *w = svc->watchers, *next; w; w = next) {
            next = w->next;
            watch_free(w);
        }
        service_free(svc);
    }
    kp_kube_map_free(&hub->services);
    free(hub);
    kp_kube_release(k);
}

/* The last watcher went, or the client closes: every watcher still
 * listed stops too (callbacks no longer run). */
static void hub_stop(void *obj)
{
    ep_hub_t *hub = obj;
    if (hub->stopped)
        return;
    hub->stopped = 1;
    kp_kube_untrack(hub->k, hub);
    kp_kube_informer_stop(hub->inf);
    hub->inf = NULL;
    kp_kube_map_iter_t it = {0};
    const char *key;
    void *value;
    while (kp_kube_map_next(&hub->services, &it, &key, &value))
        for (kp_kube_watch_t *w = ((ep_service_t *)value)->watchers; w; w = w->next)
            w->stopped = 1;
    uv_timer_stop(&hub->timer);
    kp_kube_hold(hub->k);
    uv_close((uv_handle_t *)&hub->timer, on_hub_closed);
}

static int hub_is_for(const void *obj, const void *ns)
{
    return strcmp(((const ep_hub_t *)obj)->ns, ns) == 0;
}

static ep_hub_t *hub_get(kp_kube_t *k, const char *ns)
{
    ep_hub_t *hub = kp_kube_tracked_find(k, hub_stop, hub_is_for, ns);
    if (hub)
        return hub;
    hub = calloc(1, sizeof(*hub));
    if (!hub)
        return NULL;
    if (kp_kube_track(k, hub, hub_stop) != 0) {
        free(hub);
        return NULL;
    }
    hub->k = k;
    snprintf(hub->ns, sizeof(hub->ns), "%s", ns);
    static const kp_kube_informer_ops_t ops = {.on_event = on_slice, .on_synced = on_synced};
    hub->inf = kp_kube_informer_start(k, &endpointslices, ns, SERVICE_LABEL, &ops, hub);
    if (!hub->inf) {
        kp_kube_untrack(k, hub);
        free(hub);
        return NULL;
    }
    uv_timer_init(kp_kube_loop(k), &hub->timer);
    hub->timer.data = hub;
    return hub;
}

/* --- watchers --- */

kp_kube_watch_t *kp_kube_watch_endpoints(kp_kube_t *k, const char *ns, const char *service,
                                         kp_kube_endpoints_cb cb, void *ctx)
{
    if (!kp_kube_name_valid(ns) || !kp_kube_name_valid(service) ||
        strlen(service) > SERVICE_NAME_MAX || !cb)
        return NULL;
    kp_kube_watch_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    ep_hub_t *hub = hub_get(k, ns);
    ep_service_t *svc = hub ? service_get(hub, service, 1) : NULL;
    if (!svc) {
        if (hub && !hub->live)
            hub_stop(hub);
        free(w);
        return NULL;
    }
    w->hub = hub;
    w->svc = svc;
    w->cb = cb;
    w->ctx = ctx;
    w->next = svc->watchers;
    if (w->next)
        w->next->prev = w;
    svc->watchers = w;
    hub->live++;
    service_mark(hub, svc);
    /* Never from inside this call: a synced hub answers on the loop's
     * next turn, one still listing when its list is in. */
    if (kp_kube_informer_synced(hub->inf))
        uv_timer_start(&hub->timer, on_flush_timer, 0, 0);
    return w;
}

void kp_kube_watch_stop(kp_kube_watch_t *w)
{
    if (!w || w->stopped)
        return;
    ep_hub_t *hub = w->hub;
    ep_service_t *svc = w->svc;
    w->stopped = 1;
    hub->live--;
    if (hub->dispatching) {
        hub->stopped_in_dispatch++;
    } else {
        watch_unlink(w);
        watch_free(w);
        service_maybe_drop(hub, svc);
    }
    if (hub->live == 0)
        hub_stop(hub);
}
