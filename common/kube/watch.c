/* The EndpointSlices of one Service, kept current: list, then watch from the
 * list's resourceVersion (bookmarks keep it fresh), relist when the API says
 * 410 Gone, reconnect with jittered exponential backoff otherwise; the
 * caller sees the merged set of addresses each time it changes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "base/log.h"
#include "base/strbuf.h"

#define BACKOFF_BASE_MS 200
#define BACKOFF_MAX_MS 30000

typedef enum { W_LISTING, W_WATCHING, W_BACKOFF, W_STOPPED } watch_state_t;

/* Owned by the client (tracked); freed in the timer's close callback after
 * kp_kube_watch_stop or kp_kube_close. */
struct kp_kube_watch {
    kp_kube_t *k;
    uv_timer_t timer;
    char ns[254];
    char service[64];
    kp_kube_endpoints_cb cb;
    void *ctx;

    watch_state_t state;
    kp_kube_req_t *req;
    kp_kube_slices_t slices;
    kp_kube_lines_t lines;
    char rv[64];
    unsigned attempt;     /* failures since the last good stream */
    int relist;           /* the stream said 410: the rv is gone */
    unsigned gone_streak; /* 410s with no event in between */
    int events_seen;      /* in the current stream */
    int next_is_relist;

    kp_kube_endpoint_t *last; /* what cb saw last */
    size_t last_n;
    int delivered;
};

static void watch_list(kp_kube_watch_t *w);
static void watch_stream(kp_kube_watch_t *w);

static void deliver_if_changed(kp_kube_watch_t *w)
{
    kp_kube_endpoint_t *eps;
    size_t n;
    if (kp_kube_slices_merge(&w->slices, &eps, &n) != 0)
        return;
    if (w->delivered && n == w->last_n && (n == 0 || memcmp(eps, w->last, n * sizeof(*eps)) == 0)) {
        free(eps);
        return;
    }
    free(w->last);
    w->last = eps;
    w->last_n = n;
    w->delivered = 1;
    w->cb(w->ctx, eps, n);
}

static void on_backoff_timer(uv_timer_t *t)
{
    kp_kube_watch_t *w = t->data;
    if (w->state != W_BACKOFF)
        return;
    if (w->next_is_relist || !w->rv[0])
        watch_list(w);
    else
        watch_stream(w);
}

static void watch_retry(kp_kube_watch_t *w, int relist, uint64_t delay_ms)
{
    w->state = W_BACKOFF;
    w->next_is_relist = relist;
    uv_timer_start(&w->timer, on_backoff_timer, delay_ms, 0);
}

static void watch_fail(kp_kube_watch_t *w, int relist, const char *what, int status,
                       const char *detail)
{
    uint64_t d = kp_kube_backoff_ms(w->k, w->attempt, BACKOFF_BASE_MS, BACKOFF_MAX_MS);
    /* The first failure after a good stream is news; the rest, at debug. */
    kp_log(w->attempt == 0 ? KP_LOG_WARN : KP_LOG_DEBUG,
           "endpointslices of %s/%s: %s failed (HTTP %d: %s); retrying in %llu ms", w->ns,
           w->service, what, status, detail && detail[0] ? detail : "no detail",
           (unsigned long long)d);
    w->attempt++;
    watch_retry(w, relist, d);
}

/* --- list --- */

static void list_done(void *ctx, int status, const char *body, size_t len, const char *err)
{
    kp_kube_watch_t *w = ctx;
    w->req = NULL;
    if (status == 200 && !err &&
        kp_kube_slices_from_list(&w->slices, body, len, w->rv, sizeof(w->rv)) == 0) {
        deliver_if_changed(w);
        if (w->state == W_STOPPED)
            return;
        watch_stream(w);
        return;
    }
    char msg[256];
    if (status == 0 || err)
        snprintf(msg, sizeof(msg), "%s", err ? err : "no response");
    else if (status == 200)
        snprintf(msg, sizeof(msg), "the body is not an EndpointSliceList");
    else
        kp_kube_status_message(body, len, msg, sizeof(msg));
    watch_fail(w, 1, "list", status, msg);
}

static void watch_list(kp_kube_watch_t *w)
{
    char path[512];
    snprintf(path, sizeof(path),
             "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices"
             "?labelSelector=kubernetes.io%%2Fservice-name%%3D%s",
             w->ns, w->service);
    kp_kube_req_opts_t o = {
        .method = "GET",
        .path = path,
        .timeout_ms = 60000,
        .rbac = {"list", "endpointslices", "discovery.k8s.io", w->ns},
        .on_done = list_done,
        .ctx = w,
    };
    w->state = W_LISTING;
    w->relist = 0;
    w->req = kp_kube_request(w->k, &o);
    if (!w->req)
        watch_fail(w, 1, "list", 0, "cannot start the request");
}

/* --- watch --- */

static int watch_line(void *ctx, const char *line, size_t len)
{
    kp_kube_watch_t *w = ctx;
    kp_kube_event_t ev;
    if (kp_kube_event_parse(line, len, &ev) != 0) {
        kp_log(KP_LOG_WARN, "endpointslices of %s/%s: ignoring a watch line that is not an event",
               w->ns, w->service);
        return 0;
    }
    int rc = 0;
    switch (ev.type) {
    case KP_KUBE_EV_ADDED:
    case KP_KUBE_EV_MODIFIED:
    case KP_KUBE_EV_DELETED: {
        kp_kube_slice_t s;
        if (kp_kube_slice_parse(ev.object, &s) == 0)
            kp_kube_slices_apply(&w->slices, ev.type, &s);
        else
            kp_kube_slice_free(&s);
        if (ev.resource_version[0])
            memcpy(w->rv, ev.resource_version, sizeof(w->rv));
        w->events_seen++;
        deliver_if_changed(w);
        if (w->state == W_STOPPED)
            rc = 1;
        break;
    }
    case KP_KUBE_EV_BOOKMARK:
        if (ev.resource_version[0])
            memcpy(w->rv, ev.resource_version, sizeof(w->rv));
        w->events_seen++;
        break;
    case KP_KUBE_EV_ERROR:
        /* A too-old resourceVersion is HTTP 200 plus this event (code 410,
         * reason Expired): the version is gone, only a relist helps. */
        if (ev.code == 410) {
            w->relist = 1;
            kp_log(KP_LOG_INFO, "endpointslices of %s/%s: %s; relisting", w->ns, w->service,
                   ev.message[0] ? ev.message : "resourceVersion expired");
        } else {
            kp_log(KP_LOG_WARN, "endpointslices of %s/%s: watch error %d: %s", w->ns, w->service,
                   ev.code, ev.message);
        }
        rc = 1;
        break;
    }
    kp_kube_event_free(&ev);
    return rc;
}

static int watch_data(void *ctx, const char *data, size_t len)
{
    kp_kube_watch_t *w = ctx;
    return kp_kube_lines_feed(&w->lines, data, len, watch_line, w) != 0;
}

static void watch_done(void *ctx, int status, const char *body, size_t len, const char *err)
{
    kp_kube_watch_t *w = ctx;
    w->req = NULL;
    w->lines.len = 0;
    if (w->relist || status == 410) {
        /* Straight to a relist, unless relisting keeps ending here without
         * a single event: then the API needs a pause. */
        if (w->events_seen > 0)
            w->gone_streak = 0;
        if (w->gone_streak++ == 0) {
            watch_list(w);
        } else {
            watch_fail(w, 1, "watch", status, "resourceVersion expired");
        }
        return;
    }
    if (status == 200 && (!err || w->events_seen > 0)) {
        /* The stream ran (the API ends watches after timeoutSeconds):
         * resume from the last resourceVersion, promptly. */
        w->attempt = 0;
        watch_retry(w, 0, kp_kube_backoff_ms(w->k, 0, BACKOFF_BASE_MS, BACKOFF_MAX_MS));
        return;
    }
    char msg[256];
    if (status == 0 || err)
        snprintf(msg, sizeof(msg), "%s", err ? err : "no response");
    else
        kp_kube_status_message(body, len, msg, sizeof(msg));
    watch_fail(w, 0, "watch", status, msg);
}

static void watch_stream(kp_kube_watch_t *w)
{
    /* As client-go: let the API end the watch after 5-10 minutes, so a
     * silently dead connection cannot hold us forever. */
    unsigned timeout_s = 300 + (unsigned)(kp_kube_backoff_ms(w->k, 0, 1000, 1000) % 300);
    char path[768];
    snprintf(path, sizeof(path),
             "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices"
             "?labelSelector=kubernetes.io%%2Fservice-name%%3D%s&watch=1&resourceVersion=%s"
             "&allowWatchBookmarks=true&timeoutSeconds=%u",
             w->ns, w->service, w->rv, timeout_s);
    kp_kube_req_opts_t o = {
        .method = "GET",
        .path = path,
        .timeout_ms = (long)(timeout_s + 30) * 1000,
        .rbac = {"watch", "endpointslices", "discovery.k8s.io", w->ns},
        .on_data = watch_data,
        .on_done = watch_done,
        .ctx = w,
    };
    w->state = W_WATCHING;
    w->events_seen = 0;
    w->relist = 0;
    w->lines.len = 0;
    w->req = kp_kube_request(w->k, &o);
    if (!w->req)
        watch_fail(w, 0, "watch", 0, "cannot start the request");
}

/* --- lifetime --- */

static void on_timer_closed(uv_handle_t *h)
{
    kp_kube_watch_t *w = h->data;
    kp_kube_t *k = w->k;
    kp_kube_slices_clear(&w->slices);
    kp_kube_lines_free(&w->lines);
    free(w->last);
    free(w);
    kp_kube_release(k);
}

static void watch_stop(void *obj)
{
    kp_kube_watch_t *w = obj;
    if (w->state == W_STOPPED)
        return;
    w->state = W_STOPPED;
    kp_kube_untrack(w->k, w);
    kp_kube_request_cancel(w->req);
    w->req = NULL;
    uv_timer_stop(&w->timer);
    kp_kube_hold(w->k);
    uv_close((uv_handle_t *)&w->timer, on_timer_closed);
}

void kp_kube_watch_stop(kp_kube_watch_t *w)
{
    if (w)
        watch_stop(w);
}

kp_kube_watch_t *kp_kube_watch_endpoints(kp_kube_t *k, const char *ns, const char *service,
                                         kp_kube_endpoints_cb cb, void *ctx)
{
    if (!kp_kube_name_valid(ns) || !kp_kube_name_valid(service) || strlen(service) > 63 || !cb)
        return NULL;
    kp_kube_watch_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    if (kp_kube_track(k, w, watch_stop) != 0) {
        free(w);
        return NULL;
    }
    w->k = k;
    snprintf(w->ns, sizeof(w->ns), "%s", ns);
    snprintf(w->service, sizeof(w->service), "%s", service);
    w->cb = cb;
    w->ctx = ctx;
    uv_timer_init(kp_kube_loop(k), &w->timer);
    w->timer.data = w;
    watch_list(w);
    return w;
}
