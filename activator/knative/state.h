/* What the reconcilers share: the cached objects of every watched kind in
 * every served namespace (one informer per kind and namespace), the
 * settings (config-defaults, -gc, -domain, -deployment), the work queue,
 * whether this replica writes (the Lease holder), and the writes
 * themselves, each holding its key in the queue until the API answered
 * (a 409 or a failure retries the key with backoff). */
#ifndef KP_KN_STATE_H
#define KP_KN_STATE_H

#include <cJSON.h>
#include <time.h>
#include <uv.h>

#include "build.h"
#include "gc.h"
#include "kube/informer.h"
#include "kube/object.h"
#include "model.h"
#include "workqueue.h"

typedef enum {
    KN_SERVICES,
    KN_CONFIGURATIONS,
    KN_REVISIONS,
    KN_ROUTES,
    KN_DEPLOYMENTS,
    KN_K8S_SERVICES,
    KN_HPAS,
    KN_PODS,
    KN_N_KINDS,
} kn_kind_t;

extern const kp_kube_resource_t kn_resources[KN_N_KINDS];
/* "Service", "Configuration"...: the kind part of a work key. */
extern const char *const kn_kind_names[KN_N_KINDS];

typedef struct kn_state kn_state_t;

typedef struct kn_ns {
    kn_state_t *s;
    char *name;
    /* One per kind; informer ctx is the kn_ns_event_ctx below. */
    kp_kube_informer_t *inf[KN_N_KINDS];
    struct kn_ns_event_ctx {
        struct kn_ns *ns;
        kn_kind_t kind;
    } ev[KN_N_KINDS];
} kn_ns_t;

struct kn_state {
    uv_loop_t *loop;
    kp_kube_t *kube;
    kn_ns_t *ns;
    size_t n_ns;
    kn_workqueue_t *queue;
    kn_defaults_t defaults;
    kn_build_opts_t build;
    kn_gc_config_t gc;
    char domain[256];
    /* "{service}.{ns}.svc.cluster.local" of the activator's Service: where
     * each Route's placeholder Service points. */
    char route_target[320];
    int initial_scale; /* replicas of a new Deployment */
    int leader;        /* this replica writes */
    int ready;         /* settings known (queue image...): reconciling may start */
    int stopping;
    size_t pending_writes;
    unsigned long long writes; /* accepted by the API, for logs and tests */
    time_t (*now)(void);
    void (*on_stopped)(void *ctx); /* once stopping and no write is left */
    void *stopped_ctx;
};

kn_ns_t *kn_state_ns(kn_state_t *s, const char *ns);
const cJSON *kn_get(kn_state_t *s, kn_kind_t kind, const char *ns, const char *name);
void kn_each(kn_state_t *s, kn_kind_t kind, const char *ns, void (*fn)(void *ctx, const cJSON *obj),
             void *ctx);
/* Whether every informer of the namespace has its first list. */
int kn_state_synced(kn_state_t *s, const char *ns);

/* "Kind/ns/name". */
void kn_key(char *out, size_t len, kn_kind_t kind, const char *ns, const char *name);

/* The writes. key: the work key to retry on failure (held until the
 * answer). obj is the caller's (copied by the call). 0 when sent. */
int kn_create(kn_state_t *s, const char *key, kn_kind_t kind, const char *ns, const cJSON *obj);
int kn_replace(kn_state_t *s, const char *key, kn_kind_t kind, const char *ns, const cJSON *obj);
int kn_replace_status(kn_state_t *s, const char *key, kn_kind_t kind, const char *ns,
                      const cJSON *obj);
int kn_patch(kn_state_t *s, const char *key, kn_kind_t kind, const char *ns, const char *name,
             const cJSON *patch);
int kn_delete(kn_state_t *s, const char *key, kn_kind_t kind, const char *ns, const char *name);

/* live with want laid over it (objects merged key by key, anything else
 * replaced): what to PUT so that live covers want. NULL on failure. */
cJSON *kn_overlay(const cJSON *live, const cJSON *want);

/* A child as wanted: created when missing, rewritten (live with want laid
 * over it) when live does not cover want. *live gets the cached one (or
 * NULL). Returns what happened. */
typedef enum {
    KN_CHILD_OK,        /* live covers want */
    KN_CHILD_CREATED,   /* create sent */
    KN_CHILD_UPDATED,   /* replace sent */
    KN_CHILD_NOT_OWNED, /* someone else's: left alone */
    KN_CHILD_FAILED,    /* could not send (retried) */
} kn_child_result_t;

kn_child_result_t kn_ensure_child(kn_state_t *s, const char *key, kn_kind_t kind, const char *ns,
                                  const cJSON *want, const cJSON *owner, const cJSON **live);
/* Writes status (taken over) unless it equals obj's; 0 unless a write
 * could not be sent. */
int kn_write_status(kn_state_t *s, const char *key, kn_kind_t kind, const cJSON *obj,
                    cJSON *status);

#endif
