/* What a Service's template and traffic say, read from their JSON with
 * Knative's defaults applied (there is no admission webhook: the stored
 * spec stays as the user wrote it and the defaults live here), and
 * checked as Knative's webhook would check them; a spec that fails says
 * why in a sentence that becomes a status message. */
#ifndef KP_KN_MODEL_H
#define KP_KN_MODEL_H

#include <cJSON.h>
#include <stddef.h>

/* config-defaults. */
typedef struct kn_defaults {
    int container_concurrency; /* container-concurrency: 0 (unlimited) */
    int timeout_s;             /* revision-timeout-seconds: 300 */
    int max_timeout_s;         /* max-revision-timeout-seconds: 600 */
} kn_defaults_t;

void kn_defaults_init(kn_defaults_t *d);

/* A revision's settings (RevisionSpec: a template's spec or a Revision's). */
typedef struct kn_revision_params {
    int container_concurrency;
    int timeout_s;
    int response_start_timeout_s; /* 0: off */
    int idle_timeout_s;           /* 0: off */
    int port;                     /* the serving container's port (8080) */
    int h2c;                      /* its port is named h2c: HTTP/2 cleartext */
    /* The container that serves (the one with ports, else the first);
     * points into spec. */
    const cJSON *container;
    int container_index;
} kn_revision_params_t;

/* 0, or -1 with why ("containers[0].image: missing (expected an image
 * reference)"). */
int kn_revision_params(const cJSON *spec, const kn_defaults_t *d, kn_revision_params_t *out,
                       char *why, size_t why_len);

/* A traffic target with Knative's defaults: no revisionName means the
 * latest ready revision of configuration_name. */
typedef struct kn_target {
    char *tag;                /* NULL: untagged */
    char *revision_name;      /* NULL when latest */
    char *configuration_name; /* set when latest */
    int latest;
    int percent;
} kn_target_t;

typedef struct kn_traffic {
    kn_target_t *targets;
    size_t n;
} kn_traffic_t;

/* traffic: a Service's or Route's spec.traffic (NULL or [] means 100 %
 * to the latest revision of config_name). 0, or -1 with why. */
int kn_traffic_parse(const cJSON *traffic, const char *config_name, kn_traffic_t *out, char *why,
                     size_t why_len);
void kn_traffic_free(kn_traffic_t *t);

#endif
