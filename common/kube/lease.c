/* Leader election on a coordination.k8s.io/v1 Lease, as client-go's
 * leaderelection does it: read, then create (404) or update with the read
 * resourceVersion (the API's optimistic lock: 409 when someone moved
 * first); take over a lease that has not changed for leaseDurationSeconds
 * of our own monotonic time (lease_expiry.c: renewTime is another
 * machine's clock, so only its changes count); step down before anyone
 * else may take over. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "base/log.h"

#define CONFLICT_RETRIES 3

typedef enum { E_IDLE, E_GETTING, E_WRITING, E_RELEASING, E_STOPPED } elector_state_t;

/* Owned by the client (tracked); freed in the timer's close callback after
 * kp_kube_elector_stop or kp_kube_close. */
struct kp_kube_elector {
    kp_kube_t *k;
    uv_timer_t timer;
    char ns[254];
    char name[254];
    char identity[256];
    int duration_s;
    uint64_t period_ms;
    kp_kube_leader_cb cb;
    void *ctx;

    elector_state_t state;
    kp_kube_req_t *req;
    int leader;
    uint64_t renewed_at;   /* uv_now when the last successful write was sent */
    uint64_t write_sent;   /* uv_now when the write in flight was sent */
    kp_kube_lease_t lease; /* as last read or written */
    int have_lease;
    kp_kube_lease_seen_t seen; /* the record and when it last changed, local time */
    int conflicts;             /* 409s in this round */
    void (*released)(void *ctx);
    void *released_ctx;
};

static void lease_get(kp_kube_elector_t *e);
static void on_tick(uv_timer_t *t);

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set_leader(kp_kube_elector_t *e, int leader)
{
    if (e->leader == leader)
        return;
    e->leader = leader;
    kp_log(KP_LOG_INFO, "lease %s/%s: %s", e->ns, e->name,
           leader ? "acquired leadership" : "lost leadership");
    e->cb(e->ctx, leader);
}

static void lease_path(kp_kube_elector_t *e, int with_name, char *out, size_t len)
{
    if (with_name)
        snprintf(out, len, "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", e->ns, e->name);
    else
        snprintf(out, len, "/apis/coordination.k8s.io/v1/namespaces/%s/leases", e->ns);
}

static void log_failure(kp_kube_elector_t *e, const char *what, int status, const char *body,
                        size_t len, const char *err)
{
    char msg[256];
    if (status == 0 || err)
        snprintf(msg, sizeof(msg), "%s", err ? err : "no response");
    else
        kp_kube_status_message(body, len, msg, sizeof(msg));
    kp_log(KP_LOG_WARN, "lease %s/%s: %s failed (HTTP %d: %s)", e->ns, e->name, what, status, msg);
}

static void write_done(void *ctx, int status, const char *body, size_t len, const char *err)
{
    kp_kube_elector_t *e = ctx;
    e->req = NULL;
    e->state = E_IDLE;
    if ((status == 200 || status == 201) && !err) {
        kp_kube_lease_t l;
        if (kp_kube_lease_parse(body, len, &l) == 0) {
            e->lease = l;
            e->have_lease = 1;
            kp_kube_lease_observe(&e->seen, &l, uv_now(kp_kube_loop(e->k)));
        }
        e->renewed_at = e->write_sent;
        e->conflicts = 0;
        set_leader(e, 1);
        return;
    }
    e->have_lease = 0;
    if (status == 409 && ++e->conflicts <= CONFLICT_RETRIES) {
        /* Someone else wrote first: see what they wrote. */
        lease_get(e);
        return;
    }
    if (status != 409)
        log_failure(e, "write", status, body, len, err);
}

static void lease_write(kp_kube_elector_t *e, int create, int takeover)
{
    double now = wall_now();
    double acquire = now;
    int transitions = 0;
    const char *rv = "";
    if (!create) {
        rv = e->lease.resource_version;
        kp_kube_lease_next(&e->lease, takeover, now, &transitions, &acquire);
    }
    char *json = kp_kube_lease_json(e->ns, e->name, e->identity, e->duration_s, acquire, now,
                                    transitions, rv);
    if (!json)
        return;
    char path[640];
    lease_path(e, !create, path, sizeof(path));
    kp_kube_req_opts_t o = {
        .method = create ? "POST" : "PUT",
        .path = path,
        .content_type = "application/json",
        .body = json,
        .timeout_ms = (long)e->period_ms,
        .rbac = {create ? "create" : "update", "leases", "coordination.k8s.io", e->ns},
        .on_done = write_done,
        .ctx = e,
    };
    e->write_sent = uv_now(kp_kube_loop(e->k));
    e->state = E_WRITING;
    e->req = kp_kube_request(e->k, &o);
    if (!e->req)
        e->state = E_IDLE;
    free(json);
}

static void get_done(void *ctx, int status, const char *body, size_t len, const char *err)
{
    kp_kube_elector_t *e = ctx;
    e->req = NULL;
    e->state = E_IDLE;
    if (status == 404 && !err) {
        lease_write(e, 1, 0);
        return;
    }
    kp_kube_lease_t l;
    if (status != 200 || err || kp_kube_lease_parse(body, len, &l) != 0) {
        log_failure(e, "read", status, body, len, err);
        return;
    }
    e->lease = l;
    e->have_lease = 1;
    uint64_t now = uv_now(kp_kube_loop(e->k));
    kp_kube_lease_observe(&e->seen, &l, now);
    if (strcmp(l.holder, e->identity) == 0) {
        lease_write(e, 0, 0);
        return;
    }
    uint64_t valid_ms = kp_kube_lease_valid_ms(&e->seen, e->duration_s, now);
    if (valid_ms == 0) {
        lease_write(e, 0, 1);
        return;
    }
    /* Held by someone else, and still valid. */
    set_leader(e, 0);
    /* Look again the moment it would run out rather than up to a period
     * later: a takeover then comes one leaseDuration after the holder's
     * last change reached us. */
    if (e->state == E_IDLE && valid_ms < e->period_ms)
        uv_timer_start(&e->timer, on_tick, valid_ms, e->period_ms);
}

static void lease_get(kp_kube_elector_t *e)
{
    char path[640];
    lease_path(e, 1, path, sizeof(path));
    kp_kube_req_opts_t o = {
        .method = "GET",
        .path = path,
        .timeout_ms = (long)e->period_ms,
        .rbac = {"get", "leases", "coordination.k8s.io", e->ns},
        .on_done = get_done,
        .ctx = e,
    };
    e->state = E_GETTING;
    e->req = kp_kube_request(e->k, &o);
    if (!e->req)
        e->state = E_IDLE;
}

static void on_tick(uv_timer_t *t)
{
    kp_kube_elector_t *e = t->data;
    if (e->state == E_STOPPED)
        return;
    /* Renewals at duration/3: after two missed ones, step down, a third of
     * the duration before another candidate may take the lease over. */
    uint64_t now = uv_now(kp_kube_loop(e->k));
    if (e->leader && now - e->renewed_at >= (uint64_t)e->duration_s * 2000 / 3) {
        set_leader(e, 0);
        if (e->state == E_STOPPED)
            return;
    }
    if (e->state != E_IDLE)
        return; /* the last round is still in flight (bounded by its timeout) */
    e->conflicts = 0;
    if (e->leader && e->have_lease)
        lease_write(e, 0, 0); /* our own lease: skip the read; 409 re-reads */
    else
        lease_get(e);
}

static void on_timer_closed(uv_handle_t *h)
{
    kp_kube_elector_t *e = h->data;
    kp_kube_t *k = e->k;
    free(e);
    kp_kube_release(k);
}

static void elector_stop(void *obj)
{
    kp_kube_elector_t *e = obj;
    if (e->state == E_STOPPED)
        return;
    /* A release cut short (the client closing) still reports its end. */
    void (*released)(void *) = e->released;
    void *released_ctx = e->released_ctx;
    e->released = NULL;
    e->state = E_STOPPED;
    kp_kube_untrack(e->k, e);
    kp_kube_request_cancel(e->req);
    e->req = NULL;
    uv_timer_stop(&e->timer);
    kp_kube_hold(e->k);
    uv_close((uv_handle_t *)&e->timer, on_timer_closed);
    if (released)
        released(released_ctx);
}

void kp_kube_elector_stop(kp_kube_elector_t *e)
{
    if (e)
        elector_stop(e);
}

static void release_done(void *ctx, int status, const char *body, size_t len, const char *err)
{
    kp_kube_elector_t *e = ctx;
    e->req = NULL;
    if (status == 200 && !err)
        kp_log(KP_LOG_INFO, "lease %s/%s: released", e->ns, e->name);
    else
        log_failure(e, "release", status, body, len, err);
    elector_stop(e); /* runs e->released */
}

void kp_kube_elector_release(kp_kube_elector_t *e, void (*done)(void *ctx), void *ctx)
{
    if (!e || e->state == E_STOPPED || e->state == E_RELEASING) {
        done(ctx);
        return;
    }
    /* A renewal in flight may land or not: release what we last knew; a 409
     * then only means the lease runs out as it would have. */
    kp_kube_request_cancel(e->req);
    e->req = NULL;
    uv_timer_stop(&e->timer);
    int was_leader = e->leader && e->have_lease;
    e->state = E_RELEASING;
    set_leader(e, 0);
    if (e->state == E_STOPPED) { /* the callback stopped us */
        done(ctx);
        return;
    }
    char *json = NULL;
    if (was_leader) {
        double now = wall_now();
        json = kp_kube_lease_json(e->ns, e->name, "", 1, now, now, e->lease.transitions,
                                  e->lease.resource_version);
    }
    if (json) {
        char path[640];
        lease_path(e, 1, path, sizeof(path));
        kp_kube_req_opts_t o = {
            .method = "PUT",
            .path = path,
            .content_type = "application/json",
            .body = json,
            .timeout_ms = (long)e->period_ms,
            .rbac = {"update", "leases", "coordination.k8s.io", e->ns},
            .on_done = release_done,
            .ctx = e,
        };
        e->req = kp_kube_request(e->k, &o);
        free(json);
    }
    e->released = done;
    e->released_ctx = ctx;
    if (!e->req)
        elector_stop(e);
}

kp_kube_elector_t *kp_kube_elect(kp_kube_t *k, const char *ns, const char *name,
                                 const char *identity, int duration_s, kp_kube_leader_cb cb,
                                 void *ctx)
{
    if (!kp_kube_name_valid(ns) || !kp_kube_name_valid(name) || !identity || !identity[0] ||
        strlen(identity) >= 256 || duration_s < 1 || !cb)
        return NULL;
    kp_kube_elector_t *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    if (kp_kube_track(k, e, elector_stop) != 0) {
        free(e);
        return NULL;
    }
    e->k = k;
    snprintf(e->ns, sizeof(e->ns), "%s", ns);
    snprintf(e->name, sizeof(e->name), "%s", name);
    snprintf(e->identity, sizeof(e->identity), "%s", identity);
    e->duration_s = duration_s;
    e->period_ms = (uint64_t)duration_s * 1000 / 3;
    if (e->period_ms < 200)
        e->period_ms = 200;
    e->cb = cb;
    e->ctx = ctx;
    uv_timer_init(kp_kube_loop(k), &e->timer);
    e->timer.data = e;
    uv_timer_start(&e->timer, on_tick, 0, e->period_ms);
    return e;
}
