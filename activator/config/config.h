/* The activator's configuration file (JSON, Knative's field names): the
 * services it routes for, their revisions and traffic split, and the
 * autoscaler settings. Loaded once at start; every string is owned by the
 * config and freed by kp_activator_config_free. */
#ifndef KP_ACT_CONFIG_H
#define KP_ACT_CONFIG_H

#include <stddef.h>

typedef struct kp_kv {
    char *key;
    char *value;
} kp_kv_t;

typedef struct kp_revision_spec {
    char *name;       /* "helloworld-go-00001" */
    char *namespace_; /* "default" */
    char *service;    /* owning service's name */
    int container_concurrency;    /* containerConcurrency; 0 = unlimited */
    int timeout_s;                /* timeoutSeconds, default 300 */
    int response_start_timeout_s; /* responseStartTimeoutSeconds, 0 = off */
    int idle_timeout_s;           /* idleTimeoutSeconds, 0 = off */
    /* metadata.annotations, e.g. autoscaling.knative.dev/min-scale; the
     * autoscaling.knative.dev/ ones are checked at load as Knative's
     * webhook would (kp_kpa_annotation_set), the others kept as given. */
    kp_kv_t *annotations;
    size_t n_annotations;
    /* The app container's environment (TARGET=World...), in file order. */
    kp_kv_t *env;
    size_t n_env;
    /* The app's argv for the local backend; NULL (n_command 0) means the
     * helloworld binary next to the activator's own. */
    char **command;
    size_t n_command;
    /* ports[0].name is "h2c" (Knative's Revision.GetProtocol): the
     * activator speaks h2c to its pods for every request. */
    int h2c;
    /* Why the revision cannot run ("ExitCode1: panic: no PORT", from the
     * Revision's Ready condition on Kubernetes), NULL while it can: its
     * held and new requests end at once with a 503 naming it. */
    char *failure;
    /* The activator's revision that serves this spec, set when the config
     * is applied: a request's route finds it without a search. */
    void *runtime;
} kp_revision_spec_t;

typedef struct kp_traffic_target {
    const kp_revision_spec_t *revision; /* resolved from revisionName */
    char *revision_name;
    int percent; /* 0..100 */
    char *tag;   /* NULL when untagged */
} kp_traffic_target_t;

typedef struct kp_service_spec {
    char *name;
    char *namespace_;
    kp_revision_spec_t *revisions;
    size_t n_revisions;
    kp_traffic_target_t *traffic;
    size_t n_traffic;
} kp_service_spec_t;

typedef struct kp_activator_config {
    /* Informational (printed curl lines): routing accepts any suffix. */
    char *domain;
    kp_service_spec_t *services;
    size_t n_services;
    /* "autoscaler": {config-autoscaler key: value}, applied to every
     * revision before its own annotations. Values kept as strings. */
    kp_kv_t *autoscaler;
    size_t n_autoscaler;
} kp_activator_config_t;

/* 0, or -1 with a message in err naming the field and what is accepted
 * (e.g. `services[0].traffic: percents sum to 90, expected 100`). */
int kp_activator_config_parse(const char *json, size_t len, kp_activator_config_t *cfg,
                              char *err, size_t err_len);
int kp_activator_config_load_file(const char *path, kp_activator_config_t *cfg, char *err,
                                  size_t err_len);
void kp_activator_config_free(kp_activator_config_t *cfg);

/* spec.c: a deep copy that owns its strings (runtime is not copied), or
 * -1 on allocation failure with nothing held; and the free of a spec's
 * strings (the struct itself is the caller's). */
int kp_revision_spec_copy(kp_revision_spec_t *dst, const kp_revision_spec_t *src);
void kp_revision_spec_free(kp_revision_spec_t *spec);
void kp_kv_free(kp_kv_t *kv, size_t n);

#endif
