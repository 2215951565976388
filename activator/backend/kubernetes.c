/* The kubernetes backend. The autoscaler's pod count becomes a merge-PATCH
 * of the revision's Deployment scale, written only by the replica holding
 * the Lease (the others decide too, and follow). Pods are learnt from the
 * EndpointSlices of the revision's Service, ready or not yet ready: the
 * activator probes each queue-proxy itself, so a held request goes out as
 * soon as its pod answers, before kubelet readiness propagates. A pod whose
 * endpoint turns from ready to not ready is terminating: it gets nothing
 * new. */
#include "kubernetes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/rng.h"

#define KUBE_RETRY_FIRST_MS 200
#define KUBE_RETRY_MAX_MS 10000
#define KNATIVE_METRICS_PORT 9090
#define KNATIVE_ADMIN_PORT 8022
#define KNATIVE_SERVING_PORT 8012
#define KNATIVE_SERVING_H2C_PORT 8013 /* an h2c revision's queue-proxy */

typedef struct kube_backend kube_backend_t;

/* An address of the revision's Service, as last seen. */
typedef struct kube_pod {
    char id[128];
    char ip[64];
    int slice_port; /* as the slice says it (0: none), the order's second key */
    int port;
    void *handle; /* pod_added's answer: pod_removed still owed while set */
    int was_ready;
} kube_pod_t;

/* Owned by the backend; freed when the client has closed, or once removed
 * and no write of it is under way. After remove_revision, spec is
 * gone_spec (names for the logs of a write still under way). */
struct act_backend_revision {
    kube_backend_t *b;
    act_backend_revision_t *next;
    const kp_revision_spec_t *spec;
    int removed;
    kp_revision_spec_t gone_spec;
    char gone_name[256], gone_namespace[256];
    void *rev_ctx;
    char deployment[256];
    char service[256];
    kp_kube_watch_t *watch;
    kube_pod_t *pods; /* in the watch's order: by address, then port */
    size_t n_pods;
    int desired;     /* what the autoscaler asked for */
    int written;     /* what the API last accepted (-1: nothing yet) */
    int writing;     /* a PATCH is on its way with this value, or -1 */
    int last_error;  /* HTTP status of the last failed write (log once) */
    uv_timer_t retry_timer;
    uint64_t backoff_ms;
    int waking;          /* a follower's raise from zero is under way */
    uint64_t woken_at;   /* uv_now when it was sent */
};

struct kube_backend {
    act_backend_t base;
    uv_loop_t *loop;
    const act_backend_events_t *events;
    act_kube_opts_t opts;
    kp_kube_t *kube;
    kp_kube_elector_t *elector;
    kp_kube_watch_t *activators_watch;
    int is_leader;
    kp_rng_t rng; /* retry jitter, seeded per process */
    act_backend_revision_t *revs;
    int closing;
    int pending_closes;
    void (*on_closed)(void *ctx);
    void *closed_ctx;
};

static void rev_write(act_backend_revision_t *rev);

static const char *annotation(const kp_revision_spec_t *spec, const char *key)
{
    for (size_t i = 0; i < spec->n_annotations; i++)
        if (strcmp(spec->annotations[i].key, key) == 0)
            return spec->annotations[i].value;
    return NULL;
}

/* --- scale --- */

static void on_retry_timer(uv_timer_t *t)
{
    rev_write(t->data);
}

static void on_removed_rev_closed(uv_handle_t *h)
{
    act_backend_revision_t *rev = h->data;
    free(rev->pods);
    free(rev);
}

/* A removed revision stays on the backend's list (so that a close frees
 * it) until no write of it is under way. */
static void rev_maybe_free(act_backend_revision_t *rev)
{
    kube_backend_t *b = rev->b;
    if (!rev->removed || b->closing || rev->writing >= 0 || rev->waking)
        return;
    for (act_backend_revision_t **r = &b->revs; *r; r = &(*r)->next)
        if (*r == rev) {
            *r = rev->next;
            break;
        }
    uv_close((uv_handle_t *)&rev->retry_timer, on_removed_rev_closed);
}

static void on_patched(void *ctx, int status, int replicas, const char *message)
{
    act_backend_revision_t *rev = ctx;
    int sent = rev->writing;
    rev->writing = -1;
    if (rev->removed) {
        rev_maybe_free(rev);
        return;
    }
    if (status >= 200 && status < 300) {
        rev->written = sent;
        rev->backoff_ms = 0;
        if (rev->last_error)
            kp_log_kv(KP_LOG_INFO, "scale written again", "revision", rev->spec->name, NULL);
        rev->last_error = 0;
        rev_write(rev); /* the autoscaler may have moved on meanwhile */
        return;
    }
    if (status != rev->last_error) {
        const char *why = status == 0 ? "API server unreachable" : message;
        kp_log_fields(KP_LOG_ERROR, "cannot scale deployment",
                      KP_LOG_STR("revision", rev->spec->name),
                      KP_LOG_STR("deployment", rev->deployment), KP_LOG_INT("status", status),
                      KP_LOG_STR("error", why));
        rev->last_error = status;
        if (!rev->b->closing && rev->b->events->revision_failed) {
            char reason[256];
            if (status == 0)
                snprintf(reason, sizeof reason, "cannot scale deployment %.100s to %d: %s",
                         rev->deployment, sent, why);
            else
                snprintf(reason, sizeof reason, "cannot scale deployment %.100s to %d: %d %.100s",
                         rev->deployment, sent, status, why ? why : "");
            rev->b->events->revision_failed(rev->rev_ctx, reason);
        }
    }
    rev->backoff_ms = rev->backoff_ms ? rev->backoff_ms * 2 : KUBE_RETRY_FIRST_MS;
    if (rev->backoff_ms > KUBE_RETRY_MAX_MS)
        rev->backoff_ms = KUBE_RETRY_MAX_MS;
    /* Jitter keeps replicas and revisions from retrying in step: the
     * generator is seeded per process, so two replicas draw apart. */
    uint64_t delay = kp_rng_between(&rev->b->rng, rev->backoff_ms / 2, rev->backoff_ms);
    uv_timer_start(&rev->retry_timer, on_retry_timer, delay, 0);
}

static void rev_write(act_backend_revision_t *rev)
{
    kube_backend_t *b = rev->b;
    if (b->closing || rev->removed || !b->is_leader || rev->writing >= 0 ||
        rev->desired == rev->written || uv_is_active((uv_handle_t *)&rev->retry_timer))
        return;
    rev->writing = rev->desired;
    if (kp_kube_patch_scale(b->kube, rev->spec->namespace_, rev->deployment, rev->desired,
                            on_patched, rev) != 0)
        on_patched(rev, 0, -1, "cannot start request");
}

/* A follower raises a revision from zero itself, once a second at most,
 * and only from zero (the write is conditional on a read of 0): every
 * other number is the leader's, which learns of the held request from
 * this replica's /load within a second and takes it from there. */
#define WAKE_INTERVAL_MS 1000

static void on_woken(void *ctx, int status, int replicas, const char *message)
{
    act_backend_revision_t *rev = ctx;
    rev->waking = 0;
    if (rev->removed) {
        rev_maybe_free(rev);
        return;
    }
    if (status / 100 == 2)
        kp_log_fields(KP_LOG_INFO,
                      replicas > 1 || strcmp(message, "already scaled") == 0
                          ? "scale from zero: already under way"
                          : "scale from zero: raised by this follower",
                      KP_LOG_STR("revision", rev->spec->name), KP_LOG_INT("replicas", replicas));
    else
        kp_log_fields(KP_LOG_INFO, "scale from zero: left to the leader",
                      KP_LOG_STR("revision", rev->spec->name), KP_LOG_INT("status", status),
                      KP_LOG_STR("why", message));
}

static void kube_wake(act_backend_t *base, act_backend_revision_t *rev)
{
    kube_backend_t *b = (kube_backend_t *)base;
    if (b->closing || b->is_leader || rev->n_pods > 0 || rev->waking)
        return;
    uint64_t now = uv_now(b->loop);
    if (rev->woken_at && now - rev->woken_at < WAKE_INTERVAL_MS)
        return;
    rev->woken_at = now;
    if (kp_kube_scale_from_zero(b->kube, rev->spec->namespace_, rev->deployment, 1, on_woken,
                                rev) == 0)
        rev->waking = 1;
}

/* --- pods from EndpointSlices --- */

static void pod_report_removed(act_backend_revision_t *rev, kube_pod_t *p)
{
    if (!p->handle)
        return;
    void *handle = p->handle;
    p->handle = NULL;
    rev->b->events->pod_removed(rev->rev_ctx, handle);
}

static void pod_report_added(act_backend_revision_t *rev, kube_pod_t *p)
{
    act_pod_info_t info;
    memset(&info, 0, sizeof info);
    snprintf(info.id, sizeof info.id, "%s", p->id);
    snprintf(info.ip, sizeof info.ip, "%s", p->ip);
    info.serving_port = p->port;
    info.metrics_port = KNATIVE_METRICS_PORT;
    info.admin_port = KNATIVE_ADMIN_PORT;
    p->handle = rev->b->events->pod_added(rev->rev_ctx, &info);
}

/* The queue-proxy port as Knative's activator picks it: the endpoint port
 * named for the revision's protocol ("http2" for an h2c revision, whose
 * queue-proxy serves on 8013; "http" otherwise), knative/serving
 * pkg/activator/net/throttler.go and helpers.go endpointsToDests. */
static int serving_port(const kp_revision_spec_t *spec, const kp_kube_endpoint_t *ep)
{
    if (spec->h2c && ep->h2c_port > 0)
        return ep->h2c_port;
    if (ep->port > 0)
        return ep->port;
    return spec->h2c ? KNATIVE_SERVING_H2C_PORT : KNATIVE_SERVING_PORT;
}

/* The same order as the watch's set (kp_kube_watch_endpoints). */
static int pod_vs_endpoint(const kube_pod_t *p, const kp_kube_endpoint_t *ep)
{
    int c = strcmp(p->ip, ep->ip);
    return c ? c : (p->slice_port > ep->port) - (p->slice_port < ep->port);
}

/* The new set against the last, both sorted: one walk of the two, so an
 * event costs what the revision's addresses do, not their square. */
static void on_endpoints(void *ctx, const kp_kube_endpoint_t *eps, size_t n)
{
    act_backend_revision_t *rev = ctx;
    /* Closing: the revisions are gone, and the watch lives on only until
     * the lease is handed back. */
    if (rev->b->closing)
        return;
    kube_pod_t *now = n ? malloc(n * sizeof *now) : NULL;
    if (n && !now)
        return; /* the next event brings the whole set again */
    size_t old = 0, kept = 0;
    for (size_t i = 0; i < n; i++) {
        const kp_kube_endpoint_t *ep = &eps[i];
        while (old < rev->n_pods && pod_vs_endpoint(&rev->pods[old], ep) < 0)
            pod_report_removed(rev, &rev->pods[old++]); /* gone from every slice */
        kube_pod_t *was = NULL;
        if (old < rev->n_pods && pod_vs_endpoint(&rev->pods[old], ep) == 0)
            was = &rev->pods[old++];
        kube_pod_t *p = &now[kept++];
        memset(p, 0, sizeof *p);
        int port = serving_port(rev->spec, ep);
        if (ep->pod[0])
            snprintf(p->id, sizeof p->id, "%s", ep->pod);
        else
            snprintf(p->id, sizeof p->id, "%s:%d", ep->ip, port);
        /* The same address for another pod: the old one went. */
        if (was && strcmp(was->id, p->id) != 0) {
            pod_report_removed(rev, was);
            was = NULL;
        }
        if (!was) {
            snprintf(p->ip, sizeof p->ip, "%s", ep->ip);
            p->slice_port = ep->port;
            p->port = port;
            p->was_ready = ep->ready;
            pod_report_added(rev, p);
            continue;
        }
        *p = *was;
        if (p->was_ready && !ep->ready)
            pod_report_removed(rev, p); /* terminating */
        else if (!p->handle && ep->ready)
            pod_report_added(rev, p); /* back again */
        p->was_ready = ep->ready;
    }
    while (old < rev->n_pods)
        pod_report_removed(rev, &rev->pods[old++]);
    free(rev->pods);
    rev->pods = now;
    rev->n_pods = kept;
}

static void on_activators(void *ctx, const kp_kube_endpoint_t *eps, size_t n)
{
    kube_backend_t *b = ctx;
    if (!b->closing && b->opts.activators_changed)
        b->opts.activators_changed(b->opts.ctx, eps, n);
}

static void on_leader(void *ctx, int is_leader)
{
    kube_backend_t *b = ctx;
    if (b->is_leader == is_leader)
        return;
    b->is_leader = is_leader;
    kp_log_kv(KP_LOG_INFO, is_leader ? "leader: this replica writes scale"
                                     : "follower: another replica writes scale",
              "identity", b->opts.identity, NULL);
    for (act_backend_revision_t *rev = b->revs; rev; rev = rev->next) {
        if (rev->removed)
            continue;
        /* A new leader does not trust what an earlier term wrote. */
        rev->written = -1;
        rev_write(rev);
    }
    if (b->opts.leader_changed)
        b->opts.leader_changed(b->opts.ctx, is_leader);
}

/* --- the backend interface --- */

static act_backend_revision_t *kube_add_revision(act_backend_t *base, const kp_revision_spec_t *spec,
                                                 void *rev_ctx)
{
    kube_backend_t *b = (kube_backend_t *)base;
    if (b->closing)
        return NULL;
    act_backend_revision_t *rev = calloc(1, sizeof *rev);
    if (!rev)
        return NULL;
    rev->b = b;
    rev->spec = spec;
    rev->rev_ctx = rev_ctx;
    rev->written = -1;
    rev->writing = -1;
    const char *dep = annotation(spec, "kp.dev/deployment");
    const char *svc = annotation(spec, "kp.dev/service");
    if (dep)
        snprintf(rev->deployment, sizeof rev->deployment, "%s", dep);
    else
        snprintf(rev->deployment, sizeof rev->deployment, "%s-deployment", spec->name);
    if (svc)
        snprintf(rev->service, sizeof rev->service, "%s", svc);
    else
        snprintf(rev->service, sizeof rev->service, "%s-private", spec->name);
    uv_timer_init(b->loop, &rev->retry_timer);
    rev->retry_timer.data = rev;
    rev->watch = kp_kube_watch_endpoints(b->kube, spec->namespace_, rev->service, on_endpoints, rev);
    rev->next = b->revs;
    b->revs = rev;
    kp_log_kv(KP_LOG_INFO, "revision on kubernetes", "revision", spec->name, "deployment",
              rev->deployment, "service", rev->service, NULL);
    return rev;
}

static void kube_remove_revision(act_backend_t *base, act_backend_revision_t *rev)
{
    if (!rev || rev->removed)
        return;
    snprintf(rev->gone_name, sizeof rev->gone_name, "%s", rev->spec->name);
    snprintf(rev->gone_namespace, sizeof rev->gone_namespace, "%s", rev->spec->namespace_);
    rev->gone_spec = (kp_revision_spec_t){.name = rev->gone_name, .namespace_ = rev->gone_namespace};
    rev->spec = &rev->gone_spec;
    rev->removed = 1;
    kp_kube_watch_stop(rev->watch);
    rev->watch = NULL;
    uv_timer_stop(&rev->retry_timer);
    for (size_t i = 0; i < rev->n_pods; i++)
        rev->pods[i].handle = NULL; /* the activator hears nothing more of it */
    rev_maybe_free(rev);
}

static int kube_writes_scale(const act_backend_t *base)
{
    return ((const kube_backend_t *)base)->is_leader;
}

static void kube_set_scale(act_backend_t *base, act_backend_revision_t *rev, int pods)
{
    if (!rev)
        return;
    rev->desired = pods;
    rev_write(rev);
}

static void backend_free(kube_backend_t *b)
{
    for (act_backend_revision_t *rev = b->revs, *next; rev; rev = next) {
        next = rev->next;
        free(rev->pods);
        free(rev);
    }
    void (*cb)(void *) = b->on_closed;
    void *ctx = b->closed_ctx;
    free(b);
    if (cb)
        cb(ctx);
}

static void on_part_closed(kube_backend_t *b)
{
    if (--b->pending_closes == 0)
        backend_free(b);
}

static void on_timer_closed(uv_handle_t *h)
{
    act_backend_revision_t *rev = h->data;
    on_part_closed(rev->b);
}

static void on_kube_closed(void *ctx)
{
    on_part_closed(ctx);
}

static void on_lease_released(void *ctx)
{
    kube_backend_t *b = ctx;
    b->elector = NULL; /* stopped */
    kp_kube_close(b->kube, on_kube_closed, b);
}

static void kube_close(act_backend_t *base, void (*on_closed)(void *ctx), void *ctx)
{
    kube_backend_t *b = (kube_backend_t *)base;
    if (b->closing)
        return;
    b->closing = 1;
    b->on_closed = on_closed;
    b->closed_ctx = ctx;
    /* Pods are not ours to stop: the Deployments keep what they have. */
    b->pending_closes = 1;
    for (act_backend_revision_t *rev = b->revs; rev; rev = rev->next) {
        for (size_t i = 0; i < rev->n_pods; i++)
            pod_report_removed(rev, &rev->pods[i]);
        b->pending_closes++;
        uv_close((uv_handle_t *)&rev->retry_timer, on_timer_closed);
    }
    /* The lease goes back first, so the next leader need not wait for it
     * to expire; the client closes when that write has ended. */
    kp_kube_elector_release(b->elector, on_lease_released, b);
}

void act_kube_opts_default(act_kube_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->lease_namespace = "default";
    opts->lease_name = "kp-activator";
    opts->lease_duration_s = 15;
}

act_backend_t *act_backend_kubernetes_new(uv_loop_t *loop, const act_backend_events_t *events,
                                          const act_kube_opts_t *opts)
{
    kube_backend_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->base.name = "kubernetes";
    b->base.add_revision = kube_add_revision;
    b->base.remove_revision = kube_remove_revision;
    b->base.writes_scale = kube_writes_scale;
    b->base.set_scale = kube_set_scale;
    b->base.close = kube_close;
    b->base.wake = kube_wake;
    b->loop = loop;
    kp_rng_init(&b->rng);
    b->events = events;
    b->opts = *opts;
    b->kube = kp_kube_new(loop, &opts->kube);
    if (!b->kube) {
        free(b);
        return NULL;
    }
    if (opts->identity && *opts->identity) {
        b->elector = kp_kube_elect(b->kube, opts->lease_namespace, opts->lease_name,
                                   opts->identity, opts->lease_duration_s, on_leader, b);
    } else {
        b->is_leader = 1; /* alone: nobody to agree with */
    }
    if (opts->activator_service && *opts->activator_service)
        b->activators_watch = kp_kube_watch_endpoints(b->kube, opts->lease_namespace,
                                                      opts->activator_service, on_activators, b);
    return &b->base;
}

kp_kube_t *act_backend_kubernetes_client(act_backend_t *base)
{
    return ((kube_backend_t *)base)->kube;
}
