/* Internals shared by common/kube_*.c, their unit tests and fuzz targets:
 * the request layer, lifetime helpers and the pure JSON parsers. Other
 * modules use client.h. */
#ifndef KP_KUBE_INTERNAL_H
#define KP_KUBE_INTERNAL_H

#include "client.h"
#include "informer.h"
#include "object.h"

#include <cJSON.h>

#include "base/rng.h"

/* --- requests (client.c) --- */

typedef struct kp_kube_req kp_kube_req_t;

/* What a request needs from RBAC, for the log line on a 401/403:
 * verb "patch", resource "deployments/scale", group "apps" ("" = core). */
typedef struct kp_kube_rbac {
    const char *verb;
    const char *resource;
    const char *group;
    const char *ns;
} kp_kube_rbac_t;

/* Streaming: called with each piece of a 2xx body as it arrives; return
 * non-zero to end the transfer (done then runs with status and error
 * KP_KUBE_EABORTED). Not called for other statuses: their body is
 * buffered for done. */
typedef int (*kp_kube_data_cb)(void *ctx, const char *data, size_t len);
/* status: HTTP status, 0 when the API could not be reached (err says why);
 * body: the whole body when not streaming ("" otherwise), NUL-terminated. */
typedef void (*kp_kube_done_cb)(void *ctx, int status, const char *body, size_t len,
                                const char *err);

#define KP_KUBE_EABORTED "aborted by the caller"

typedef struct kp_kube_req_opts {
    const char *method; /* "GET", "PATCH", "PUT", "POST" */
    const char *path;   /* "/apis/...?query", appended to api_url */
    const char *content_type;
    const char *body; /* copied; NULL: none */
    long timeout_ms;  /* whole transfer; 0: none (watches) */
    kp_kube_rbac_t rbac;
    kp_kube_data_cb on_data; /* NULL: buffer the body */
    kp_kube_done_cb on_done;
    void *ctx;
    /* Called once when the request is gone (after on_done, or when it was
     * cancelled, kp_kube_close included): frees a per-request ctx. */
    void (*free_ctx)(void *ctx);
} kp_kube_req_opts_t;

/* Starts a request; NULL on failure (the caller still owns ctx). done runs
 * exactly once unless the request is cancelled first. */
kp_kube_req_t *kp_kube_request(kp_kube_t *k, const kp_kube_req_opts_t *o);
/* No callback runs after this; safe from inside a data callback. */
void kp_kube_request_cancel(kp_kube_req_t *r);

/* Kubernetes object names are DNS-1123 subdomains (or labels): 1 if s is
 * one, so it is safe in a path or a label selector without escaping. */
int kp_kube_name_valid(const char *s);

/* Owned objects (watches, electors) close their uv handles through the
 * client so kp_kube_close can wait for them: hold before uv_close, release
 * in the close callback after freeing. */
void kp_kube_hold(kp_kube_t *k);
void kp_kube_release(kp_kube_t *k);
uv_loop_t *kp_kube_loop(kp_kube_t *k);
/* Jittered exponential backoff: base_ms doubled per attempt up to max_ms,
 * times a random factor in [0.8, 1.2], never above max_ms. */
uint64_t kp_kube_backoff_ms(kp_kube_t *k, unsigned attempt, uint64_t base_ms, uint64_t max_ms);
/* The same from a given generator (the client's is seeded per process). */
uint64_t kp_kube_backoff_jitter(kp_rng_t *r, unsigned attempt, uint64_t base_ms, uint64_t max_ms);
/* Registers a watch / elector so kp_kube_close stops it; -1 when the
 * client is closing (or out of memory). */
int kp_kube_track(kp_kube_t *k, void *obj, void (*stop)(void *obj));
void kp_kube_untrack(kp_kube_t *k, void *obj);
/* The tracked object registered with that stop function for which match
 * says yes, or NULL: how objects shared per client (one EndpointSlice
 * informer per namespace) find each other without a global. */
void *kp_kube_tracked_find(kp_kube_t *k, void (*stop)(void *obj),
                           int (*match)(const void *obj, const void *key), const void *key);

/* --- JSON (json.c): pure, no I/O --- */

/* The Status "message" of an error body; if the body is not a Status, its
 * first line (up to out_len). "" for an empty body. */
void kp_kube_status_message(const char *body, size_t len, char *out, size_t out_len);
/* "verbs [patch] on deployments/scale in apps, namespace default" */
void kp_kube_rbac_rule(const kp_kube_rbac_t *r, char *out, size_t out_len);

/* Splits a chunked watch stream into lines, whatever the chunk boundaries. */
typedef struct kp_kube_lines {
    char *buf;
    size_t len, cap;
} kp_kube_lines_t;
#define KP_KUBE_LINE_MAX (16u << 20)
/* Calls on_line for each complete non-empty line (without "\n" or "\r");
 * stops at the first non-zero return and returns it. -1 when a line passes
 * KP_KUBE_LINE_MAX. */
int kp_kube_lines_feed(kp_kube_lines_t *l, const char *data, size_t n,
                       int (*on_line)(void *ctx, const char *line, size_t len), void *ctx);
void kp_kube_lines_free(kp_kube_lines_t *l);

typedef enum {
    KP_KUBE_EV_ADDED,
    KP_KUBE_EV_MODIFIED,
    KP_KUBE_EV_DELETED,
    KP_KUBE_EV_BOOKMARK,
    KP_KUBE_EV_ERROR,
} kp_kube_ev_type_t;

typedef struct kp_kube_event {
    kp_kube_ev_type_t type;
    char resource_version[64]; /* object's metadata.resourceVersion, or "" */
    int code;                  /* ERROR: the Status code (410: Expired) */
    char message[256];         /* ERROR: the Status message */
    cJSON *root;               /* owned: cJSON_Delete via kp_kube_event_free */
    const cJSON *object;       /* inside root */
} kp_kube_event_t;

/* 0, or -1 if the line is not a watch event. */
int kp_kube_event_parse(const char *line, size_t len, kp_kube_event_t *ev);
void kp_kube_event_free(kp_kube_event_t *ev);

/* One EndpointSlice: its name and endpoints. */
typedef struct kp_kube_slice {
    char name[256];
    kp_kube_endpoint_t *eps;
    size_t n;
} kp_kube_slice_t;

/* The service's slices, tracked by name. */
typedef struct kp_kube_slices {
    kp_kube_slice_t *items;
    size_t n, cap;
} kp_kube_slices_t;

/* Parses an EndpointSlice object into s (fresh; free with _slice_free). */
int kp_kube_slice_parse(const cJSON *obj, kp_kube_slice_t *s);
void kp_kube_slice_free(kp_kube_slice_t *s);
/* ADDED/MODIFIED replace the slice of that name (taking s's endpoints, s is
 * left empty); DELETED removes it. */
void kp_kube_slices_apply(kp_kube_slices_t *set, kp_kube_ev_type_t type, kp_kube_slice_t *s);
/* Replaces the set with a List's items; copies its metadata.resourceVersion
 * into rv. -1 when the body is not a List. */
int kp_kube_slices_from_list(kp_kube_slices_t *set, const char *body, size_t len, char *rv,
                             size_t rv_len);
/* All endpoints of all slices, one per ip:port (ready if any copy is),
 * sorted by ip then port. *out is malloc'ed (NULL when n is 0). */
int kp_kube_slices_merge(const kp_kube_slices_t *set, kp_kube_endpoint_t **out, size_t *n);
void kp_kube_slices_clear(kp_kube_slices_t *set);

/* Lease fields the elector reads. */
typedef struct kp_kube_lease {
    char holder[256];
    int duration_s;
    double renew_time;   /* seconds since the epoch, 0 if absent */
    double acquire_time; /* idem */
    int transitions;
    char resource_version[64];
} kp_kube_lease_t;

int kp_kube_lease_parse(const char *body, size_t len, kp_kube_lease_t *l);

/* What a candidate knows of a Lease (lease_expiry.c): the record as last
 * read and the local monotonic time when it last changed (client-go's
 * observedRecord and observedTime). Start zeroed. */
typedef struct kp_kube_lease_seen {
    kp_kube_lease_t record;
    uint64_t changed_ms;
    int have;
} kp_kube_lease_seen_t;

/* Notes a read (or our own successful write) at local time now_ms: a
 * record whose spec differs from the last one restarts the clock, whatever
 * its renewTime says. */
void kp_kube_lease_observe(kp_kube_lease_seen_t *s, const kp_kube_lease_t *l, uint64_t now_ms);
/* How long the holder's claim stays valid from now_ms: leaseDurationSeconds
 * (default_duration_s when the record has none) after the last change.
 * 0 when it has run out or no one holds the Lease. */
uint64_t kp_kube_lease_valid_ms(const kp_kube_lease_seen_t *s, int default_duration_s,
                                uint64_t now_ms);
/* What the elector writes over a Lease it read (lease.c): the record's
 * leaseTransitions, one more for a takeover, and its acquireTime, now for
 * a takeover or when the record has none. */
void kp_kube_lease_next(const kp_kube_lease_t *read, int takeover, double now, int *transitions,
                        double *acquire_time);
/* A Lease object as JSON (malloc'ed); resource_version "" for a create. */
char *kp_kube_lease_json(const char *ns, const char *name, const char *holder, int duration_s,
                         double acquire_time, double renew_time, int transitions,
                         const char *resource_version);
/* MicroTime "2026-11-29T17:00:00.000000Z" <-> seconds since the epoch. */
void kp_kube_microtime_format(double t, char *out, size_t out_len);
int kp_kube_microtime_parse(const char *s, double *t);

/* --- Scale (scale.c) --- */

/* A Scale answer (status, body, and the request error if any):
 * *replicas, -1 when unknown; its metadata.resourceVersion into rv (when
 * rv_len); else msg says what went wrong. */
void kp_kube_scale_parse(int status, const char *body, size_t len, const char *err, int *replicas,
                         char *rv, size_t rv_len, char *msg, size_t msg_len);

/* --- paths (path.c): pure --- */

/* "/api/v1/namespaces/{ns}/{plural}[/{name}[/{sub}]]" for the core group,
 * "/apis/{group}/{version}/namespaces/..." otherwise; name and sub may be
 * NULL. -1 when it does not fit in out. */
int kp_kube_object_path(const kp_kube_resource_t *res, const char *ns, const char *name,
                        const char *sub, char *out, size_t out_len);
/* Percent-encodes s for a query value (RFC 3986: all but unreserved).
 * -1 when it does not fit. */
int kp_kube_query_escape(const char *s, char *out, size_t out_len);
/* "services.serving.knative.dev", "pods" (core): the name RBAC and the
 * API's messages use. */
void kp_kube_resource_name(const kp_kube_resource_t *res, char *out, size_t out_len);

/* --- string-keyed hash table (map.c): pure --- */

typedef struct kp_kube_map_entry {
    char *key;
    void *value;
    uint32_t hash;
    struct kp_kube_map_entry *next;
} kp_kube_map_entry_t;

/* Chained, power-of-two buckets grown at load 1: O(1) expected per
 * operation whatever the number of keys. Start zeroed. */
typedef struct kp_kube_map {
    kp_kube_map_entry_t **buckets;
    size_t n_buckets, n;
} kp_kube_map_t;

typedef struct kp_kube_map_iter {
    size_t bucket;
    kp_kube_map_entry_t *entry;
} kp_kube_map_iter_t;

void *kp_kube_map_get(const kp_kube_map_t *m, const char *key);
/* Sets key (copied) to value, replacing any; 0, or -1 out of memory. */
int kp_kube_map_put(kp_kube_map_t *m, const char *key, void *value);
/* The value removed, or NULL. */
void *kp_kube_map_remove(kp_kube_map_t *m, const char *key);
/* Iteration: start with a zeroed iterator; 1 and *key, *value per entry,
 * 0 at the end. The map must not change meanwhile. */
int kp_kube_map_next(const kp_kube_map_t *m, kp_kube_map_iter_t *it, const char **key,
                     void **value);
/* Frees the table and keys (not the values). */
void kp_kube_map_free(kp_kube_map_t *m);

/* --- an informer's cache and its events (informer_cache.c): pure --- */

/* Objects by metadata.name; each the informer's own (managedFields
 * dropped: the client never reads them, and a PUT without them keeps
 * the API's). Start zeroed. */
typedef struct kp_kube_cache {
    kp_kube_map_t objects; /* name -> kp_kube_cache_obj_t* */
    unsigned generation;   /* marks what the last list held */
} kp_kube_cache_t;

/* Delivers one informer event (old NULL for ADDED); 1 stops the walk
 * (the informer was stopped), 0 goes on. */
typedef int (*kp_kube_cache_emit)(void *ctx, kp_kube_informer_event_t ev, const cJSON *obj,
                                  const cJSON *old);

/* A watch event: ADDED and MODIFIED store obj (taken), emitting ADDED
 * when the name was not cached, UPDATED when its resourceVersion
 * changed, nothing when it did not (a replay); DELETED removes it,
 * emitting DELETED with the cached object as old, nothing when it was
 * not cached. The cache is updated before the event is emitted. Returns
 * 1 when emit said stop, 0, or -1 when obj has no metadata.name. */
int kp_kube_cache_apply(kp_kube_cache_t *c, kp_kube_ev_type_t type, cJSON *obj,
                        kp_kube_cache_emit emit, void *ctx);
/* A List's items (an array, taken) become the cache; the difference is
 * emitted: ADDED for new names, UPDATED for changed resourceVersions (in
 * the list's order), then DELETED for cached names the list lacks.
 * Returns 1 when emit said stop (the rest is then dropped), else 0. */
int kp_kube_cache_replace(kp_kube_cache_t *c, cJSON *items, kp_kube_cache_emit emit, void *ctx);
const cJSON *kp_kube_cache_get(const kp_kube_cache_t *c, const char *name);
size_t kp_kube_cache_count(const kp_kube_cache_t *c);
void kp_kube_cache_each(const kp_kube_cache_t *c, void (*fn)(void *ctx, const cJSON *obj),
                        void *ctx);
void kp_kube_cache_clear(kp_kube_cache_t *c);

/* --- informer internals (informer.c) --- */

/* 1 while the informer is delivering the difference of a list (its first
 * or a relist): on_synced follows once it is all delivered. A consumer
 * that must not show half of a list (the endpoints of a service whose
 * slices were replaced) waits for it. */
int kp_kube_informer_replacing(const kp_kube_informer_t *inf);

#endif
