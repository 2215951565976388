/* The activator's traffic port. See handler.h. */
#include "handler.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "http/proxy.h"
#include "http/upstream.h"
#include "pod_probe.h"
#include "revision.h"

/* A pod that cannot be reached: routed around until it answers a probe
 * again, at most this many times per request (then 502). */
#define MAX_UNREACHABLE_PODS 3

/* One request in the activator, from arrival to the end of its response. */
typedef struct act_request {
    act_claim_t claim; /* its place in the revision's throttler */
    act_t *act;
    kp_http_request_t *req;
    int unreachable_pods; /* pods it was sent to that could not be reached */
} act_request_t;

#define request_of(c) ((act_request_t *)((char *)(c)-offsetof(act_request_t, claim)))

/* Removed before the request reaches the pod, as Knative's activator does;
 * K-Original-Host is set anew from the target's host (Host, or the authority
 * of an absolute-form target). */
static const char *const activator_only_headers[] = {
    "Knative-Serving-Revision", "Knative-Serving-Namespace", "K-Original-Host", "K-Proxy-Request"};

/* Counted, with its latency from arrival to the end of the response
 * (held time included, as Knative's activator measures it); at debug
 * level, a log line too. */
static void request_done(const act_request_t *r, act_revision_t *rev, int status)
{
    double ms = (double)(kp_now_ns() - r->claim.start_ns) / 1e6;
    act_response_stats_record(&rev->responses, status, ms);
    if (!kp_log_enabled(KP_LOG_DEBUG))
        return;
    kp_log_fields(KP_LOG_DEBUG, "request done", KP_LOG_STR("revision", rev->key),
                  KP_LOG_STR("pod", r->claim.pod ? r->claim.pod->info.id : NULL),
                  KP_LOG_INT("status", status), KP_LOG_NUM("duration_ms", round(ms * 1000) / 1000));
}

static act_request_t *request_new(act_t *act)
{
    act_request_t *r = calloc(1, sizeof *r);
    if (r) {
        r->act = act;
        act->capacity.active_requests++;
    }
    return r;
}

static void request_free(act_request_t *r)
{
    r->act->capacity.active_requests--;
    free(r);
}

static void respond_and_free(act_request_t *r, int status, const char *body)
{
    kp_http_conn_bind(r->req->conn, NULL, NULL);
    kp_http_conn_respond(r->req->conn, status, "text/plain; charset=utf-8", body, strlen(body));
    if (r->claim.rev)
        request_done(r, r->claim.rev, status);
    request_free(r);
}

static const kp_http_request_ops_t held_ops;

static void on_proxy_done(void *ctx, const kp_proxy_result_t *res)
{
    act_request_t *r = ctx;
    act_pod_t *pod = r->claim.pod;
    int unreachable = res->outcome == KP_PROXY_UNREACHABLE;
    if ((unreachable || (res->outcome == KP_PROXY_UPSTREAM_FAILED && res->status == 502)) && pod &&
        !pod->removed) {
        /* The pod refused or reset before answering: stop sending to it
         * until its queue-proxy answers a probe again. */
        act_revision_pod_unready(pod);
        act_pod_probe_start(pod);
    }
    act_revision_t *rev = r->claim.rev;
    if (unreachable) {
        /* Nothing reached the pod (its queue-proxy may have just exited
         * after a drain the activator has not heard of yet): the request
         * goes to another pod, or waits for one. */
        act_revision_release(&r->claim);
        if (++r->unreachable_pods > MAX_UNREACHABLE_PODS) {
            respond_and_free(r, 502, "error reverse proxying request: upstream unreachable\n");
            return;
        }
        kp_http_conn_bind(r->req->conn, &held_ops, r);
        act_revision_admit(rev, &r->claim);
        return;
    }
    request_done(r, rev, res->status);
    act_revision_release(&r->claim);
    request_free(r);
}

static void on_granted(act_claim_t *claim)
{
    act_request_t *r = request_of(claim);
    act_pod_t *pod = claim->pod;
    const kp_revision_spec_t *spec = claim->rev->spec;
    /* req->host, as routed: an absolute-form target's authority or Host. */
    size_t original_host_len = r->req->host ? r->req->host_len : 0;
    char add[512];
    int n = snprintf(add, sizeof add, "K-Original-Host: %.*s\r\nK-Proxy-Request: activator\r\n",
                     (int)(original_host_len > 255 ? 255 : original_host_len),
                     r->req->host ? r->req->host : "");
    char host[96];
    int host_len = snprintf(host, sizeof host, "%s:%d", pod->info.ip, pod->info.serving_port);
    kp_proxy_edits_t edits = {
        .host = host,
        .host_len = (size_t)host_len,
        .drop = activator_only_headers,
        .n_drop = sizeof activator_only_headers / sizeof activator_only_headers[0],
        .add = add,
        .add_len = (size_t)n,
        .append_forwarded_for = 1,
    };
    kp_proxy_opts_t opts = {
        .timeout_ms = (uint64_t)(spec->timeout_s * 1000),
        .response_start_timeout_ms = (uint64_t)(spec->response_start_timeout_s * 1000),
        .idle_timeout_ms = (uint64_t)(spec->idle_timeout_s * 1000),
        .hand_back_unreachable = 1,
        /* Knative's activator picks h2c by the request's protocol; a
         * revision whose port is named h2c gets h2c for every request
         * (Knative's ingress speaks HTTP/2 to it). */
        .h2_pool = pod->h2_pool,
        .h2_always = spec->h2c,
    };
    if (kp_proxy_start(r->req, pod->pool, &opts, &edits, claim->start_ns, on_proxy_done, r) != 0) {
        act_revision_release(claim);
        respond_and_free(r, 503, "out of memory\n");
    }
}

static void on_refused(act_claim_t *claim, int status, const char *body)
{
    respond_and_free(request_of(claim), status, body);
}

static const act_claim_ops_t claim_ops = {.granted = on_granted, .refused = on_refused};

static void on_held_client_gone(void *ctx)
{
    act_request_t *r = ctx;
    act_revision_cancel(&r->claim);
    request_free(r);
}

static const kp_http_request_ops_t held_ops = {.on_abort = on_held_client_gone};

static const kp_http_header_t *find(const kp_http_request_t *req, const char *name)
{
    return kp_http_header_find(req->headers, req->n_headers, name);
}

static int is_kube_probe(const kp_http_request_t *req)
{
    const kp_http_header_t *ua = find(req, "user-agent");
    return ua && ua->value_len >= 11 && memcmp(ua->value, "kube-probe/", 11) == 0;
}

void act_on_request(kp_http_request_t *req, void *ctx)
{
    act_t *act = ctx;
    if (is_kube_probe(req)) {
        if (act->draining)
            kp_http_conn_respond(req->conn, 503, "text/plain", "shutting down", 13);
        else
            kp_http_conn_respond(req->conn, 200, "text/plain", "ok", 2);
        return;
    }
    /* req->host: an absolute-form target's authority replaces Host (RFC
     * 9112 §3.2.2), as Go's net/http (Knative's activator) reads it too. */
    const char *host = req->host ? req->host : "";
    size_t host_len = req->host ? req->host_len : 0;
    const kp_http_header_t *rev_name = find(req, "knative-serving-revision");
    const kp_http_header_t *rev_ns = find(req, "knative-serving-namespace");
    kp_route_t route;
    int found = kp_router_route(act->router, host, host_len, rev_name ? rev_name->value : NULL,
                                rev_name ? rev_name->value_len : 0, rev_ns ? rev_ns->value : NULL,
                                rev_ns ? rev_ns->value_len : 0, act_random(act), &route) == 0;
    act_revision_t *rev = found ? act_revision_of(route.revision) : NULL;
    if (!rev) {
        char body[400];
        if (rev_name && rev_ns)
            snprintf(body, sizeof body, "revision %.*s/%.*s not found\n", (int)rev_ns->value_len,
                     rev_ns->value, (int)rev_name->value_len, rev_name->value);
        else
            snprintf(body, sizeof body, "no service for host \"%.*s\"\n",
                     (int)(host_len > 255 ? 255 : host_len), host);
        kp_http_conn_respond(req->conn, 404, "text/plain; charset=utf-8", body, strlen(body));
        return;
    }
    if (act->capacity.active_requests >= act->capacity.max_requests ||
        act_capacity_files_short(&act->capacity, act->capacity.clients.n_conns,
                                 kp_upstream_open_connections())) {
        act->capacity.rejected++;
        kp_http_conn_respond(req->conn, 503, "text/plain; charset=utf-8",
                             "activator at capacity\n", 22);
        return;
    }
    act_request_t *r = request_new(act);
    if (!r) {
        kp_http_conn_respond(req->conn, 503, "text/plain", "out of memory\n", 14);
        return;
    }
    r->claim.ops = &claim_ops;
    r->claim.start_ns = req->start_ns;
    r->req = req;
    kp_http_conn_bind(req->conn, &held_ops, r);
    act_revision_admit(rev, &r->claim);
}
