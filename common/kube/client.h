/* A Kubernetes API client on the libuv loop, through libcurl's multi-socket
 * API (no blocking call, no thread): bearer token (re-read when the file
 * changes), CA file, in-cluster or explicit configuration; the scale
 * subresource, EndpointSlice list+watch, and Lease-based leader election;
 * any object by resource type (object.h) and informers (informer.h).
 * Every callback runs on the loop thread. */
#ifndef KP_KUBE_CLIENT_H
#define KP_KUBE_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct kp_kube_config {
    char *api_url;    /* "https://10.0.0.1:443", or "http://127.0.0.1:8001" (kubectl proxy) */
    char *token_file; /* bearer token, re-read when it changes; NULL: none */
    char *ca_file;    /* PEM bundle for the API's certificate; NULL: system CAs */
    char *namespace_; /* this pod's namespace (in-cluster), or NULL */
} kp_kube_config_t;

/* In-cluster: KUBERNETES_SERVICE_HOST/PORT, the service-account token, CA
 * and namespace files under /var/run/secrets/kubernetes.io/serviceaccount
 * (KP_KUBE_SA_DIR overrides that directory, for tests). 0, or -1 with err
 * saying what is missing. */
int kp_kube_config_in_cluster(kp_kube_config_t *cfg, char *err, size_t err_len);
void kp_kube_config_free(kp_kube_config_t *cfg);

typedef struct kp_kube kp_kube_t;

/* NULL on allocation failure. cfg's strings are copied. */
kp_kube_t *kp_kube_new(uv_loop_t *loop, const kp_kube_config_t *cfg);
/* Stops every request, watch and elector (callbacks no longer run), then
 * on_closed(ctx) once every handle is closed and memory freed. */
void kp_kube_close(kp_kube_t *k, void (*on_closed)(void *ctx), void *ctx);

/* --- scale subresource (apps/v1 deployments/{name}/scale) --- */

/* status: the HTTP status (0: the API could not be reached); replicas: the
 * scale's spec.replicas (-1 when unknown); message: the API's Status
 * message on an error ("" otherwise). */
typedef void (*kp_kube_scale_cb)(void *ctx, int status, int replicas, const char *message);
/* GET .../namespaces/{ns}/deployments/{name}/scale */
int kp_kube_get_scale(kp_kube_t *k, const char *ns, const char *name, kp_kube_scale_cb cb,
                      void *ctx);
/* PATCH (application/merge-patch+json) {"spec":{"replicas":N}}. One call is
 * one attempt: retrying is the caller's decision. A 401/403 is logged once
 * per verb and resource with the RBAC rule that is missing. */
int kp_kube_patch_scale(kp_kube_t *k, const char *ns, const char *name, int replicas,
                        kp_kube_scale_cb cb, void *ctx);
/* Sets spec.replicas to replicas only if it is 0: a read, then a write
 * conditional on the read's resourceVersion. cb gets the write's answer (a
 * 409 when someone else moved between the two), or the read's replicas
 * with status 200 and nothing written when they are not 0. */
int kp_kube_scale_from_zero(kp_kube_t *k, const char *ns, const char *name, int replicas,
                            kp_kube_scale_cb cb, void *ctx);

/* --- EndpointSlices of one Service --- */

typedef struct kp_kube_endpoint {
    char ip[64];
    int ready;     /* conditions.ready (absent counts as ready, as the API says) */
    char pod[128]; /* targetRef.name, or "" */
    int port;      /* the slice's ports[0].port, or 0 */
} kp_kube_endpoint_t;

/* The whole current set of addresses of the service (all its slices
 * merged), each time it changes: sorted by ip (strcmp), then port, each
 * address once, so two sets compare in one walk. */
typedef void (*kp_kube_endpoints_cb)(void *ctx, const kp_kube_endpoint_t *eps, size_t n);
typedef struct kp_kube_watch kp_kube_watch_t;
/* List, then watch from the list's resourceVersion with bookmarks; relist
 * on a 410 (HTTP or an ERROR event with code 410); reconnect with jittered
 * exponential backoff (200 ms doubling to 30 s) when the stream ends or
 * fails. Every watch of one namespace on one client shares ONE such
 * list+watch (an informer, informer.h) of the EndpointSlices that have a
 * kubernetes.io/service-name label, opened with the first watch and
 * closed with the last; each slice event reaches the watches of the
 * service its label names, at the cost of that service's endpoints.
 * RBAC: list and watch on endpointslices in the namespace. cb first runs
 * once the namespace's list is in (on the loop's next turn if it already
 * is), never from inside this call; a relist's changes are delivered
 * whole, never half-applied. */
kp_kube_watch_t *kp_kube_watch_endpoints(kp_kube_t *k, const char *ns, const char *service,
                                         kp_kube_endpoints_cb cb, void *ctx);
/* No callback runs after this; safe from inside cb (any watch's). */
void kp_kube_watch_stop(kp_kube_watch_t *w);

/* --- leader election (coordination.k8s.io/v1 Lease) --- */

typedef void (*kp_kube_leader_cb)(void *ctx, int is_leader);
typedef struct kp_kube_elector kp_kube_elector_t;
/* Tries to acquire or renew the Lease {ns}/{name} as identity every
 * duration/3 seconds (create on 404, update with the read resourceVersion;
 * 409 means someone else moved first: re-read). Takes the lease over when
 * it has not changed for leaseDurationSeconds of local monotonic time
 * (client-go's rule: the holder's renewTime is its own clock, so a skewed
 * holder is neither taken over early nor waited for forever; a replica
 * that starts while another holds the Lease waits a full duration).
 * Leader until renewals
 * have failed for two thirds of duration: it steps down before anyone else
 * may take over. cb runs on every change. */
kp_kube_elector_t *kp_kube_elect(kp_kube_t *k, const char *ns, const char *name,
                                 const char *identity, int duration_s, kp_kube_leader_cb cb,
                                 void *ctx);
void kp_kube_elector_stop(kp_kube_elector_t *e);
/* Stops the elector as kp_kube_elector_stop does, but a leader first steps
 * down and hands the Lease back (holder "", duration 1 s, as client-go's
 * ReleaseOnCancel does) so that another replica takes over at its next
 * round instead of waiting for the lease to expire. done runs once, when
 * the write has ended or failed (at most duration/3 later), or at once
 * when there is nothing to release; done may run before this returns. */
void kp_kube_elector_release(kp_kube_elector_t *e, void (*done)(void *ctx), void *ctx);

#endif
