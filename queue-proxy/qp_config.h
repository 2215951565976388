/* The queue-proxy's whole configuration, read once at start from the
 * environment Knative's revision reconciler sets (plus a few KP_* overrides
 * of ours for running many pods on one host). Bad values stop the start
 * with one message that names every such variable and what it accepts. */
#ifndef KP_QP_CONFIG_H
#define KP_QP_CONFIG_H

#include <stddef.h>

#include "base/log.h"
#include "probe_spec.h"
#include "request_log.h"

typedef enum {
    KP_QP_METRICS_NONE,       /* SERVING_REQUEST_METRICS_BACKEND "" */
    KP_QP_METRICS_PROMETHEUS, /* "prometheus": serve them on user_metrics_port */
    KP_QP_METRICS_OPENCENSUS, /* "opencensus": accepted, nothing is pushed */
} kp_qp_metrics_backend_t;

/* Plain data owned by the caller (main's qp_t); every string is a private
 * copy, never NULL ("" when unset), freed by kp_qp_config_free. */
typedef struct kp_qp_config {
    /* Who we are: SERVING_NAMESPACE, _CONFIGURATION (may be ""), _REVISION,
     * _POD, _POD_IP (all others non-empty), SERVING_SERVICE (optional). */
    char *namespace_;
    char *configuration;
    char *revision;
    char *pod;
    char *pod_ip;
    char *service;

    /* Ports, each 1..65535. */
    int serving_port;      /* QUEUE_SERVING_PORT: proxy and probes (8012) */
    int serving_tls_port;  /* QUEUE_SERVING_TLS_PORT: accepted, not served yet */
    int user_port;         /* USER_PORT: the app */
    char *user_host;       /* KP_USER_HOST: IP the app listens on (127.0.0.1) */
    char *listen_host;     /* KP_LISTEN_HOST: where our ports listen (0.0.0.0) */
    int admin_port;        /* KP_ADMIN_PORT: /wait-for-drain (8022) */
    int metrics_port;      /* KP_METRICS_PORT: autoscaler stats (9090) */
    int user_metrics_port; /* KP_USER_METRICS_PORT: request metrics (9091) */

    /* Requests. */
    int container_concurrency;       /* CONTAINER_CONCURRENCY: 0 = no limit */
    double revision_timeout_s;       /* REVISION_TIMEOUT_SECONDS (decimals accepted) */
    double response_start_timeout_s; /* REVISION_RESPONSE_START_TIMEOUT_SECONDS: 0 = off */
    double idle_timeout_s;           /* REVISION_IDLE_TIMEOUT_SECONDS: 0 = off */

    /* SERVING_READINESS_PROBE; without it the app counts as ready. A port
     * missing from the probe defaults to USER_PORT. */
    int has_readiness_probe;
    kp_probe_spec_t readiness_probe;

    /* Logging: SERVING_LOGGING_LEVEL, else the "level" of
     * SERVING_LOGGING_CONFIG (a zap config, otherwise unused), else info. */
    kp_log_level_t log_level;
    char *logging_config;

    /* Request log (to stdout): SERVING_ENABLE_REQUEST_LOG,
     * SERVING_ENABLE_PROBE_REQUEST_LOG, SERVING_REQUEST_LOG_TEMPLATE.
     * request_log is the compiled template (Knative's default template when
     * none is given) when enabled, else NULL and the template is not even
     * parsed, as in Knative. Owned here. */
    int enable_request_log;
    int enable_probe_request_log;
    char *request_log_template;
    kp_reqlog_t *request_log;

    /* User-facing request metrics. */
    kp_qp_metrics_backend_t request_metrics_backend;
    int user_metrics_prometheus; /* backend is prometheus: serve :user_metrics_port */
    int request_metrics_reporting_period_s;
    char *metrics_collector_address;

    /* Tracing (TRACING_CONFIG_*): accepted; trace headers pass through. */
    char *tracing_backend; /* any value accepted, as Knative's envconfig does */
    int tracing_debug;
    double tracing_sample_rate; /* 0..1 */
    char *tracing_zipkin_endpoint;

    int enable_profiling;            /* ENABLE_PROFILING: accepted */
    int enable_http2_auto_detection; /* ENABLE_HTTP2_AUTO_DETECTION: accepted */

    /* KP_DRAIN_QUIET_PERIOD_SECONDS (30): no-traffic time that ends a drain. */
    double drain_quiet_period_s;
} kp_qp_config_t;

/* Reads the process environment. Returns 0, or -1 with a message in err
 * (cfg then holds nothing to free; kp_qp_config_free is harmless) naming
 * every variable that is missing or invalid: one problem's message alone,
 * or "N environment variables are missing or invalid (see --help):"
 * followed by one indented line per problem. */
int kp_qp_config_load(kp_qp_config_t *cfg, char *err, size_t errlen);

/* The same from any source: get returns a variable's value or NULL when it
 * is unset. */
int kp_qp_config_load_from(kp_qp_config_t *cfg, const char *(*get)(const char *name, void *ctx),
                           void *ctx, char *err, size_t errlen);

void kp_qp_config_free(kp_qp_config_t *cfg);

#endif
