/* The app's readiness probe as Knative hands it to the queue-proxy in
 * SERVING_READINESS_PROBE: the JSON of a Kubernetes core/v1 Probe, parsed
 * once at start into the few fields the prober needs. */
#ifndef KP_PROBE_SPEC_H
#define KP_PROBE_SPEC_H

#include <stddef.h>

typedef enum { KP_PROBE_NONE, KP_PROBE_TCP, KP_PROBE_HTTP, KP_PROBE_GRPC } kp_probe_kind_t;

typedef struct kp_probe_header {
    char *name;
    char *value;
} kp_probe_header_t;

/* Embedded in its owner (the queue-proxy config); its strings are freed
 * with kp_probe_spec_free. kind NONE: no probe, the app counts as ready. */
typedef struct kp_probe_spec {
    kp_probe_kind_t kind;
    char host[64]; /* IP literal; "127.0.0.1" when the probe names none */
    int port;      /* 1..65535 */
    /* httpGet only */
    char *path; /* always starts with '/' */
    kp_probe_header_t *headers;
    size_t n_headers;
    /* grpc only: the service asked about (grpc.health.v1), "" for the
     * server as a whole; the host is always 127.0.0.1, as Knative's. */
    char *grpc_service;
    /* 0 = Knative's "aggressive" mode (see readiness.h). */
    int period_seconds;
    /* Per-attempt timeout when period_seconds > 0; Kubernetes' default 1
     * when absent or 0. */
    int timeout_seconds;
    int success_threshold; /* >= 1 (absent/0 -> 1) */
    int failure_threshold; /* >= 1 (absent/0 -> 3, Kubernetes' default) */
} kp_probe_spec_t;

/* Parses SERVING_READINESS_PROBE into *out (overwritten). Empty or NULL
 * json: kind NONE. A port absent or 0 becomes default_port (the user port,
 * as Knative's reconciler sets it). Returns 0, or -1 with a message in err
 * (not prefixed with the variable's name) for: invalid JSON, exec and
 * HTTPS probes, no or several handlers, bad numbers, named ports, a host
 * that is neither an IP address nor "localhost". *out is then kind NONE. */
int kp_probe_spec_parse(const char *json, int default_port, kp_probe_spec_t *out, char *err,
                        size_t errlen);
/* Frees the strings; leaves kind NONE. Safe on a zeroed or freed spec. */
void kp_probe_spec_free(kp_probe_spec_t *spec);

#endif
