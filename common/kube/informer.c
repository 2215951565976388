/* An informer (informer.h): list, then watch from the list's
 * resourceVersion with bookmarks; a 410 relists and delivers the
 * difference; anything else reconnects with jittered exponential backoff.
 * The cache and its events are informer_cache.c; this file is the I/O
 * and the state machine (the same one watch.c's streams used). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "base/log.h"

#define BACKOFF_BASE_MS 200
#define BACKOFF_MAX_MS 30000
#define LIST_TIMEOUT_MS 60000
#define SELECTOR_MAX 1024

typedef enum { I_LISTING, I_WATCHING, I_BACKOFF, I_STOPPED } informer_state_t;

/* Owned by the client (tracked); freed in the timer's close callback after
 * kp_kube_informer_stop or kp_kube_close. */
struct kp_kube_informer {
    kp_kube_t *k;
    uv_timer_t timer;
    kp_kube_resource_t res; /* strings by pointer, as the header says */
    char ns[254];
    char selector[3 * SELECTOR_MAX + 1]; /* escaped for the query */
    char what[320];                      /* "services.serving.knative.dev in default" */
    kp_kube_informer_ops_t ops;
    void *ctx;

    informer_state_t state;
    kp_kube_req_t *req;
    kp_kube_lines_t lines;
    kp_kube_cache_t cache;
    char rv[64];
    unsigned attempt;     /* failures since the last good stream */
    int relist;           /* the stream said 410: the rv is gone */
    unsigned gone_streak; /* 410s with no event in between */
    int events_seen;      /* in the current stream */
    int next_is_relist;
    int synced;
    int replacing;
    int said_not_served; /* the 404 is logged once until a list succeeds */
};

static void informer_list(kp_kube_informer_t *inf);
static void informer_stream(kp_kube_informer_t *inf);

static int emit(void *ctx, kp_kube_informer_event_t ev, const cJSON *obj, const cJSON *old)
{
    kp_kube_informer_t *inf = ctx;
    if (inf->state == I_STOPPED)
        return 1;
    inf->ops.on_event(inf->ctx, ev, obj, old);
    return inf->state == I_STOPPED;
}

static void on_backoff_timer(uv_timer_t *t)
{
    kp_kube_informer_t *inf = t->data;
    if (inf->state != I_BACKOFF)
        return;
    if (inf->next_is_relist || !inf->rv[0])
        informer_list(inf);
    else
        informer_stream(inf);
}

static void informer_retry(kp_kube_informer_t *inf, int relist, uint64_t delay_ms)
{
    inf->state = I_BACKOFF;
    inf->next_is_relist = relist;
    uv_timer_start(&inf->timer, on_backoff_timer, delay_ms, 0);
}

static void informer_fail(kp_kube_informer_t *inf, int relist, const char *what, int status,
                          const char *detail, int quiet)
{
    uint64_t d = kp_kube_backoff_ms(inf->k, inf->attempt, BACKOFF_BASE_MS, BACKOFF_MAX_MS);
    /* The first failure after a good stream is news; the rest, at debug. */
    kp_log(inf->attempt == 0 && !quiet ? KP_LOG_WARN : KP_LOG_DEBUG,
           "%s: %s failed (HTTP %d: %s); retrying in %llu ms", inf->what, what, status,
           detail && detail[0] ? detail : "no detail", (unsigned long long)d);
    inf->attempt++;
    informer_retry(inf, relist, d);
}

static void answer_message(int status, const char *body, size_t len, const char *err, char *out,
                           size_t out_len)
{
    if (status == 0 || err)
        snprintf(out, out_len, "%s", err ? err : "no response");
    else
        kp_kube_status_message(body, len, out, out_len);
}

/* --- list --- */

static void list_path(const kp_kube_informer_t *inf, char *out, size_t len)
{
    kp_kube_object_path(&inf->res, inf->ns, NULL, NULL, out, len);
    if (inf->selector[0]) {
        size_t n = strlen(out);
        snprintf(out + n, len - n, "?labelSelector=%s", inf->selector);
    }
}

static void list_done(void *ctx, int status, const char *body, size_t len, const char *err)
{
    kp_kube_informer_t *inf = ctx;
    inf->req = NULL;
    cJSON *root = status == 200 && !err ? cJSON_ParseWithLength(body, len) : NULL;
    cJSON *items = root ? cJSON_DetachItemFromObjectCaseSensitive(root, "items") : NULL;
    const cJSON *meta = root ? cJSON_GetObjectItemCaseSensitive(root, "metadata") : NULL;
    const cJSON *rv = cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion");
    if ((cJSON_IsArray(items) || cJSON_IsNull(items)) && cJSON_IsString(rv)) {
        snprintf(inf->rv, sizeof(inf->rv), "%s", rv->valuestring);
        cJSON_Delete(root);
        if (cJSON_IsNull(items)) { /* an empty list may say null */
            cJSON_Delete(items);
            items = cJSON_CreateArray();
        }
        inf->said_not_served = 0;
        inf->replacing = 1;
        int stopped = kp_kube_cache_replace(&inf->cache, items, emit, inf);
        inf->replacing = 0;
        if (stopped || inf->state == I_STOPPED)
            return;
        inf->synced = 1;
        if (inf->ops.on_synced)
            inf->ops.on_synced(inf->ctx);
        if (inf->state != I_STOPPED)
            informer_stream(inf);
        return;
    }
    cJSON_Delete(items);
    cJSON_Delete(root);
    char msg[256], path[768];
    if (status == 404 && !err) {
        /* The API does not serve this resource: a CRD not installed (yet),
         * or a version it no longer serves. Said once: it may last. */
        list_path(inf, path, sizeof(path));
        kp_log(inf->said_not_served ? KP_LOG_DEBUG : KP_LOG_WARN,
               "%s: the API does not serve %s/%s (404 on GET %s): is its "
               "CustomResourceDefinition installed? Retrying with backoff",
               inf->what, inf->res.group && inf->res.group[0] ? inf->res.group : "core",
               inf->res.version, path);
        inf->said_not_served = 1;
        informer_fail(inf, 1, "list", status, "not served", 1);
        return;
    }
    if (status == 200 && !err)
        snprintf(msg, sizeof(msg), "the body is not a %sList", inf->res.kind);
    else
        answer_message(status, body, len, err, msg, sizeof(msg));
    informer_fail(inf, 1, "list", status, msg, 0);
}

static void informer_list(kp_kube_informer_t *inf)
{
    char path[768];
    list_path(inf, path, sizeof(path));
    kp_kube_req_opts_t o = {
        .method = "GET",
        .path = path,
        .timeout_ms = LIST_TIMEOUT_MS,
        .rbac = {"list", inf->res.plural, inf->res.group, inf->ns},
        .on_done = list_done,
        .ctx = inf,
    };
    inf->state = I_LISTING;
    inf->relist = 0;
    inf->req = kp_kube_request(inf->k, &o);
    if (!inf->req)
        informer_fail(inf, 1, "list", 0, "cannot start the request", 0);
}

/* --- watch --- */

static int watch_line(void *ctx, const char *line, size_t len)
{
    kp_kube_informer_t *inf = ctx;
    kp_kube_event_t ev;
    if (kp_kube_event_parse(line, len, &ev) != 0) {
        kp_log(KP_LOG_WARN, "%s: ignoring a watch line that is not an event", inf->what);
        return 0;
    }
    int rc = 0;
    switch (ev.type) {
    case KP_KUBE_EV_ADDED:
    case KP_KUBE_EV_MODIFIED:
    case KP_KUBE_EV_DELETED: {
        cJSON *obj = cJSON_DetachItemFromObjectCaseSensitive(ev.root, "object");
        if (ev.resource_version[0])
            memcpy(inf->rv, ev.resource_version, sizeof(inf->rv));
        inf->events_seen++;
        if (kp_kube_cache_apply(&inf->cache, ev.type, obj, emit, inf) < 0)
            kp_log(KP_LOG_WARN, "%s: ignoring a watch event whose object has no name", inf->what);
        rc = inf->state == I_STOPPED;
        break;
    }
    case KP_KUBE_EV_BOOKMARK:
        if (ev.resource_version[0])
            memcpy(inf->rv, ev.resource_version, sizeof(inf->rv));
        inf->events_seen++;
        break;
    case KP_KUBE_EV_ERROR:
        /* A too-old resourceVersion is HTTP 200 plus this event (code 410,
         * reason Expired or Gone): the version is gone, only a relist helps. */
        if (ev.code == 410) {
            inf->relist = 1;
            kp_log(KP_LOG_INFO, "%s: %s; relisting", inf->what,
                   ev.message[0] ? ev.message : "resourceVersion expired");
        } else {
            kp_log(KP_LOG_WARN, "%s: watch error %d: %s", inf->what, ev.code, ev.message);
        }
        rc = 1;
        break;
    }
    kp_kube_event_free(&ev);
    return rc;
}

static int watch_data(void *ctx, const char *data, size_t len)
{
    kp_kube_informer_t *inf = ctx;
    return kp_kube_lines_feed(&inf->lines, data, len, watch_line, inf) != 0;
}

static void watch_done(void *ctx, int status, const char *body, size_t len, const char *err)
{
    kp_kube_informer_t *inf = ctx;
    inf->req = NULL;
    inf->lines.len = 0;
    if (inf->state == I_STOPPED)
        return;
    if (inf->relist || status == 410) {
        /* Straight to a relist, unless relisting keeps ending here without
         * a single event: then the API needs a pause. */
        if (inf->events_seen > 0)
            inf->gone_streak = 0;
        if (inf->gone_streak++ == 0)
            informer_list(inf);
        else
            informer_fail(inf, 1, "watch", status, "resourceVersion expired", 0);
        return;
    }
    if (status == 200 && (!err || inf->events_seen > 0)) {
        /* The stream ran (the API ends watches after timeoutSeconds):
         * resume from the last resourceVersion, promptly. */
        inf->attempt = 0;
        informer_retry(inf, 0, kp_kube_backoff_ms(inf->k, 0, BACKOFF_BASE_MS, BACKOFF_MAX_MS));
        return;
    }
    char msg[256];
    answer_message(status, body, len, err, msg, sizeof(msg));
    /* A 404 here: the resource went away under a running watch. */
    informer_fail(inf, status == 404, "watch", status, msg, 0);
}

static void informer_stream(kp_kube_informer_t *inf)
{
    /* As client-go: let the API end the watch after 5-10 minutes, so a
     * silently dead connection cannot hold us forever. */
    unsigned timeout_s = 300 + (unsigned)(kp_kube_backoff_ms(inf->k, 0, 1000, 1000) % 300);
    char path[4096];
    kp_kube_object_path(&inf->res, inf->ns, NULL, NULL, path, sizeof(path));
    size_t n = strlen(path);
    snprintf(path + n, sizeof(path) - n,
             "?%s%s%swatch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%u",
             inf->selector[0] ? "labelSelector=" : "", inf->selector, inf->selector[0] ? "&" : "",
             inf->rv, timeout_s);
    kp_kube_req_opts_t o = {
        .method = "GET",
        .path = path,
        .timeout_ms = (long)(timeout_s + 30) * 1000,
        .rbac = {"watch", inf->res.plural, inf->res.group, inf->ns},
        .on_data = watch_data,
        .on_done = watch_done,
        .ctx = inf,
    };
    inf->state = I_WATCHING;
    inf->events_seen = 0;
    inf->relist = 0;
    inf->lines.len = 0;
    inf->req = kp_kube_request(inf->k, &o);
    if (!inf->req)
        informer_fail(inf, 0, "watch", 0, "cannot start the request", 0);
}

/* --- lifetime and reads --- */

static void on_timer_closed(uv_handle_t *h)
{
    kp_kube_informer_t *inf = h->data;
    kp_kube_t *k = inf->k;
    kp_kube_cache_clear(&inf->cache);
    kp_kube_lines_free(&inf->lines);
    free(inf);
    kp_kube_release(k);
}

static void informer_stop(void *obj)
{
    kp_kube_informer_t *inf = obj;
    if (inf->state == I_STOPPED)
        return;
    inf->state = I_STOPPED;
    kp_kube_untrack(inf->k, inf);
    kp_kube_request_cancel(inf->req);
    inf->req = NULL;
    uv_timer_stop(&inf->timer);
    kp_kube_hold(inf->k);
    uv_close((uv_handle_t *)&inf->timer, on_timer_closed);
}

void kp_kube_informer_stop(kp_kube_informer_t *inf)
{
    if (inf)
        informer_stop(inf);
}

static int plural_valid(const char *s)
{
    if (!s || !s[0] || strlen(s) > 63)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
            return 0;
    return 1;
}

kp_kube_informer_t *kp_kube_informer_start(kp_kube_t *k, const kp_kube_resource_t *res,
                                           const char *ns, const char *label_selector,
                                           const kp_kube_informer_ops_t *ops, void *ctx)
{
    if (!res || !plural_valid(res->plural) || !res->version || !kp_kube_name_valid(res->version) ||
        (res->group && res->group[0] && !kp_kube_name_valid(res->group)) ||
        !kp_kube_name_valid(ns) || !ops || !ops->on_event)
        return NULL;
    if (label_selector && strlen(label_selector) > SELECTOR_MAX)
        return NULL;
    kp_kube_informer_t *inf = calloc(1, sizeof(*inf));
    if (!inf)
        return NULL;
    if (label_selector &&
        kp_kube_query_escape(label_selector, inf->selector, sizeof(inf->selector)) != 0) {
        free(inf);
        return NULL;
    }
    if (kp_kube_track(k, inf, informer_stop) != 0) {
        free(inf);
        return NULL;
    }
    inf->k = k;
    inf->res = *res;
    if (!inf->res.group)
        inf->res.group = "";
    if (!inf->res.kind)
        inf->res.kind = "";
    snprintf(inf->ns, sizeof(inf->ns), "%s", ns);
    char rname[256];
    kp_kube_resource_name(&inf->res, rname, sizeof(rname));
    snprintf(inf->what, sizeof(inf->what), "%s in %s", rname, ns);
    inf->ops = *ops;
    inf->ctx = ctx;
    uv_timer_init(kp_kube_loop(k), &inf->timer);
    inf->timer.data = inf;
    informer_list(inf);
    return inf;
}

int kp_kube_informer_synced(const kp_kube_informer_t *inf)
{
    return inf->synced;
}

int kp_kube_informer_replacing(const kp_kube_informer_t *inf)
{
    return inf->replacing;
}

const cJSON *kp_kube_informer_get(const kp_kube_informer_t *inf, const char *name)
{
    return kp_kube_cache_get(&inf->cache, name);
}

size_t kp_kube_informer_count(const kp_kube_informer_t *inf)
{
    return kp_kube_cache_count(&inf->cache);
}

void kp_kube_informer_each(const kp_kube_informer_t *inf, void (*fn)(void *ctx, const cJSON *obj),
                           void *ctx)
{
    kp_kube_cache_each(&inf->cache, fn, ctx);
}
