/* Loads kp_qp_config_t from the environment; see qp_config.h and
 * knative-compat.md's Environment table. Everything that can be wrong is
 * found here, before any port is opened. */
#include "qp_config.h"

#include <arpa/inet.h>
#include <cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/env.h"

/* Whole seconds that still fit any timer in ms; ~31 years. */
#define CFG_MAX_SECONDS_MS (1000000000ULL * 1000)
/* The breaker queues 10 x CC requests; keep that far from overflow. */
#define CFG_MAX_CONCURRENCY 1000000

static char *cfg_strdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        abort();
    return d;
}

/* A string variable, copied into *out. */
static int cfg_str(const kp_env_src_t *src, const char *name, int flags, char **out, char *err,
                   size_t errlen)
{
    const char *v;
    if (kp_env_string(src, name, flags, "", &v, err, errlen) < 0)
        return -1;
    *out = cfg_strdup(v);
    return 0;
}

static int cfg_seconds(const kp_env_src_t *src, const char *name, int flags, uint64_t def_ms,
                       double *out, char *err, size_t errlen)
{
    uint64_t ms;
    if (kp_env_seconds(src, name, flags, def_ms, CFG_MAX_SECONDS_MS, &ms, err, errlen) < 0)
        return -1;
    *out = (double)ms / 1000.0;
    return 0;
}

static int cfg_int(const kp_env_src_t *src, const char *name, int flags, int def, int max, int *out,
                   char *err, size_t errlen)
{
    long long v;
    if (kp_env_int(src, name, flags, def, 0, max, &v, err, errlen) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

/* Knative hands the zap config to its logger and only the level matters to
 * us; it must at least be JSON. */
static int cfg_logging(const kp_env_src_t *src, kp_qp_config_t *cfg, char *err, size_t errlen)
{
    const char *level;
    if (cfg_str(src, "SERVING_LOGGING_CONFIG", KP_ENV_REQUIRED, &cfg->logging_config, err, errlen) <
            0 ||
        kp_env_string(src, "SERVING_LOGGING_LEVEL", KP_ENV_REQUIRED, "", &level, err, errlen) < 0)
        return -1;
    const char *config_level = NULL;
    cJSON *zap = NULL;
    if (*cfg->logging_config) {
        const char *end = NULL;
        zap = cJSON_ParseWithOpts(cfg->logging_config, &end, 1);
        if (!zap) {
            kp_errf(err, errlen,
                     "SERVING_LOGGING_CONFIG: invalid JSON near byte %zu (expected a zap "
                     "logging config in JSON, or empty)",
                     end ? (size_t)(end - cfg->logging_config) : 0);
            return -1;
        }
        const cJSON *lv = cJSON_GetObjectItemCaseSensitive(zap, "level");
        if (cJSON_IsString(lv))
            config_level = lv->valuestring;
    }
    int rc = 0;
    if (*level) {
        if (kp_log_level_parse(level, &cfg->log_level) < 0) {
            kp_errf(err, errlen,
                     "SERVING_LOGGING_LEVEL=\"%.40s\": unknown level (expected debug, info, warn, "
                     "error or empty)",
                     level);
            rc = -1;
        }
    } else if (!config_level || kp_log_level_parse(config_level, &cfg->log_level) < 0) {
        /* Knative's logger falls back to info on a config it cannot use. */
        cfg->log_level = KP_LOG_INFO;
    }
    cJSON_Delete(zap);
    return rc;
}

static int cfg_request_log(const kp_env_src_t *src, kp_qp_config_t *cfg, char *err, size_t errlen)
{
    if (kp_env_bool(src, "SERVING_ENABLE_REQUEST_LOG", 0, 0, &cfg->enable_request_log, err,
                    errlen) < 0 ||
        kp_env_bool(src, "SERVING_ENABLE_PROBE_REQUEST_LOG", 0, 0, &cfg->enable_probe_request_log,
                    err, errlen) < 0 ||
        cfg_str(src, "SERVING_REQUEST_LOG_TEMPLATE", 0, &cfg->request_log_template, err, errlen) <
            0)
        return -1;
    if (!cfg->enable_request_log)
        return 0;
    char why[512];
    if (kp_reqlog_compile(cfg->request_log_template, &cfg->request_log, why, sizeof why) < 0) {
        kp_errf(err, errlen, "SERVING_REQUEST_LOG_TEMPLATE: %s", why);
        return -1;
    }
    return 0;
}

static int cfg_metrics(const kp_env_src_t *src, kp_qp_config_t *cfg, char *err, size_t errlen)
{
    const char *backend;
    if (kp_env_string(src, "SERVING_REQUEST_METRICS_BACKEND", 0, "", &backend, err, errlen) < 0)
        return -1;
    if (!*backend) {
        cfg->request_metrics_backend = KP_QP_METRICS_NONE;
    } else if (strcasecmp(backend, "prometheus") == 0) {
        cfg->request_metrics_backend = KP_QP_METRICS_PROMETHEUS;
    } else if (strcasecmp(backend, "opencensus") == 0) {
        cfg->request_metrics_backend = KP_QP_METRICS_OPENCENSUS;
    } else {
        kp_errf(err, errlen,
                 "SERVING_REQUEST_METRICS_BACKEND=\"%.40s\": unknown backend (expected "
                 "prometheus, opencensus or empty)",
                 backend);
        return -1;
    }
    cfg->user_metrics_prometheus = cfg->request_metrics_backend == KP_QP_METRICS_PROMETHEUS;
    if (cfg_int(src, "SERVING_REQUEST_METRICS_REPORTING_PERIOD_SECONDS", 0, 0, 1000000000,
                &cfg->request_metrics_reporting_period_s, err, errlen) < 0 ||
        cfg_str(src, "METRICS_COLLECTOR_ADDRESS", 0, &cfg->metrics_collector_address, err, errlen) <
            0)
        return -1;
    return 0;
}

static int cfg_tracing(const kp_env_src_t *src, kp_qp_config_t *cfg, char *err, size_t errlen)
{
    if (cfg_str(src, "TRACING_CONFIG_BACKEND", 0, &cfg->tracing_backend, err, errlen) < 0 ||
        kp_env_bool(src, "TRACING_CONFIG_DEBUG", 0, 0, &cfg->tracing_debug, err, errlen) < 0 ||
        kp_env_double(src, "TRACING_CONFIG_SAMPLE_RATE", 0, 0.0, 0.0, 1.0,
                      &cfg->tracing_sample_rate, err, errlen) < 0 ||
        cfg_str(src, "TRACING_CONFIG_ZIPKIN_ENDPOINT", 0, &cfg->tracing_zipkin_endpoint, err,
                errlen) < 0)
        return -1;
    return 0;
}

static int cfg_ports(const kp_env_src_t *src, kp_qp_config_t *cfg, char *err, size_t errlen)
{
    const char *host;
    if (kp_env_port(src, "QUEUE_SERVING_PORT", KP_ENV_REQUIRED, 0, &cfg->serving_port, err,
                    errlen) < 0 ||
        kp_env_port(src, "QUEUE_SERVING_TLS_PORT", KP_ENV_REQUIRED, 0, &cfg->serving_tls_port, err,
                    errlen) < 0 ||
        kp_env_port(src, "USER_PORT", KP_ENV_REQUIRED, 0, &cfg->user_port, err, errlen) < 0 ||
        kp_env_port(src, "KP_ADMIN_PORT", 0, 8022, &cfg->admin_port, err, errlen) < 0 ||
        kp_env_port(src, "KP_METRICS_PORT", 0, 9090, &cfg->metrics_port, err, errlen) < 0 ||
        kp_env_port(src, "KP_USER_METRICS_PORT", 0, 9091, &cfg->user_metrics_port, err, errlen) <
            0 ||
        kp_env_string(src, "KP_USER_HOST", KP_ENV_NONEMPTY, "127.0.0.1", &host, err, errlen) < 0)
        return -1;
    if (strcasecmp(host, "localhost") == 0)
        host = "127.0.0.1";
    unsigned char addr[16];
    if (inet_pton(AF_INET, host, addr) != 1 && inet_pton(AF_INET6, host, addr) != 1) {
        kp_errf(err, errlen, "KP_USER_HOST=\"%.64s\": not an IP address (expected e.g. 127.0.0.1)",
                 host);
        return -1;
    }
    cfg->user_host = cfg_strdup(host);

    const char *listen_host;
    if (kp_env_string(src, "KP_LISTEN_HOST", KP_ENV_NONEMPTY, "0.0.0.0", &listen_host, err,
                      errlen) < 0)
        return -1;
    if (inet_pton(AF_INET, listen_host, addr) != 1 && inet_pton(AF_INET6, listen_host, addr) != 1) {
        kp_errf(err, errlen,
                "KP_LISTEN_HOST=\"%.64s\": not an IP address (expected e.g. 0.0.0.0 or 127.0.0.2)",
                listen_host);
        return -1;
    }
    cfg->listen_host = cfg_strdup(listen_host);

    return 0;
}

/* Two of our listeners on one port would only fail later with a bare
 * EADDRINUSE, and an app on our serving port would loop requests back. */
static int cfg_port_clashes(const kp_qp_config_t *cfg, char *err, size_t errlen)
{
    int loopback_app = strcmp(cfg->user_host, "127.0.0.1") == 0 ||
                       strcmp(cfg->user_host, "::1") == 0 || strcmp(cfg->user_host, "0.0.0.0") == 0;
    const struct {
        const char *name;
        int port;
        int used;
    } ports[] = {
        {"QUEUE_SERVING_PORT", cfg->serving_port, 1},
        {"KP_ADMIN_PORT", cfg->admin_port, 1},
        {"KP_METRICS_PORT", cfg->metrics_port, 1},
        {"KP_USER_METRICS_PORT", cfg->user_metrics_port, cfg->user_metrics_prometheus},
        {"USER_PORT", cfg->user_port, loopback_app},
    };
    size_t n = sizeof ports / sizeof ports[0];
    for (size_t i = 0; i < n; i++) {
        for (size_t k = i + 1; k < n; k++) {
            if (ports[i].used && ports[k].used && ports[i].port == ports[k].port) {
                kp_errf(err, errlen, "%s=%d: same port as %s (expected distinct ports)",
                         ports[k].name, ports[k].port, ports[i].name);
                return -1;
            }
        }
    }
    return 0;
}

int kp_qp_config_load_from(kp_qp_config_t *cfg, const char *(*get)(const char *name, void *ctx),
                           void *ctx, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    kp_env_src_t env = {get, ctx};
    const kp_env_src_t *src = &env;
    const int req = KP_ENV_REQUIRED, req_nonempty = KP_ENV_REQUIRED | KP_ENV_NONEMPTY;
    const char *probe;
    char why[512];

    if (cfg_str(src, "SERVING_NAMESPACE", req_nonempty, &cfg->namespace_, err, errlen) < 0 ||
        cfg_str(src, "SERVING_CONFIGURATION", req, &cfg->configuration, err, errlen) < 0 ||
        cfg_str(src, "SERVING_REVISION", req_nonempty, &cfg->revision, err, errlen) < 0 ||
        cfg_str(src, "SERVING_POD", req_nonempty, &cfg->pod, err, errlen) < 0 ||
        cfg_str(src, "SERVING_POD_IP", req_nonempty, &cfg->pod_ip, err, errlen) < 0 ||
        cfg_str(src, "SERVING_SERVICE", 0, &cfg->service, err, errlen) < 0)
        goto fail;
    if (cfg_ports(src, cfg, err, errlen) < 0)
        goto fail;
    if (cfg_int(src, "CONTAINER_CONCURRENCY", req, 0, CFG_MAX_CONCURRENCY,
                &cfg->container_concurrency, err, errlen) < 0 ||
        cfg_seconds(src, "REVISION_TIMEOUT_SECONDS", req, 0, &cfg->revision_timeout_s, err,
                    errlen) < 0 ||
        cfg_seconds(src, "REVISION_RESPONSE_START_TIMEOUT_SECONDS", 0, 0,
                    &cfg->response_start_timeout_s, err, errlen) < 0 ||
        cfg_seconds(src, "REVISION_IDLE_TIMEOUT_SECONDS", 0, 0, &cfg->idle_timeout_s, err, errlen) <
            0 ||
        cfg_seconds(src, "KP_DRAIN_QUIET_PERIOD_SECONDS", 0, 30000, &cfg->drain_quiet_period_s, err,
                    errlen) < 0)
        goto fail;

    if (kp_env_string(src, "SERVING_READINESS_PROBE", 0, "", &probe, err, errlen) < 0)
        goto fail;
    if (kp_probe_spec_parse(probe, cfg->user_port, &cfg->readiness_probe, why, sizeof why) < 0) {
        kp_errf(err, errlen, "SERVING_READINESS_PROBE: %s", why);
        goto fail;
    }
    cfg->has_readiness_probe = cfg->readiness_probe.kind != KP_PROBE_NONE;

    if (cfg_logging(src, cfg, err, errlen) < 0 || cfg_request_log(src, cfg, err, errlen) < 0 ||
        cfg_metrics(src, cfg, err, errlen) < 0 || cfg_tracing(src, cfg, err, errlen) < 0 ||
        kp_env_bool(src, "ENABLE_PROFILING", 0, 0, &cfg->enable_profiling, err, errlen) < 0 ||
        kp_env_bool(src, "ENABLE_HTTP2_AUTO_DETECTION", 0, 0, &cfg->enable_http2_auto_detection,
                    err, errlen) < 0)
        goto fail;
    if (cfg_port_clashes(cfg, err, errlen) < 0)
        goto fail;
    return 0;

fail:
    kp_qp_config_free(cfg);
    return -1;
}

static const char *cfg_getenv(const char *name, void *ctx)
{
    (void)ctx;
    return getenv(name);
}

int kp_qp_config_load(kp_qp_config_t *cfg, char *err, size_t errlen)
{
    return kp_qp_config_load_from(cfg, cfg_getenv, NULL, err, errlen);
}

void kp_qp_config_free(kp_qp_config_t *cfg)
{
    char **strings[] = {
        &cfg->namespace_,
        &cfg->configuration,
        &cfg->revision,
        &cfg->pod,
        &cfg->pod_ip,
        &cfg->service,
        &cfg->user_host,
        &cfg->listen_host,
        &cfg->logging_config,
        &cfg->request_log_template,
        &cfg->metrics_collector_address,
        &cfg->tracing_backend,
        &cfg->tracing_zipkin_endpoint,
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        free(*strings[i]);
        *strings[i] = NULL;
    }
    kp_probe_spec_free(&cfg->readiness_probe);
    cfg->has_readiness_probe = 0;
    kp_reqlog_free(cfg->request_log);
    cfg->request_log = NULL;
}
