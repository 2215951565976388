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
#include "base/strbuf.h"

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

/* Every problem found, so that one run names them all: a pod spec with
 * twelve variables missing is fixed in one edit, not twelve restarts. */
typedef struct cfg_errors {
    const kp_env_src_t *src;
    kp_strbuf_t list; /* "  problem\n" per problem */
    int count;
    char one[512]; /* the message of the reader that just failed */
} cfg_errors_t;

/* Records e->one (or the message given); returns -1 for the caller to pass on. */
static int cfg_fail(cfg_errors_t *e)
{
    kp_strbuf_printf(&e->list, "  %s\n", e->one);
    e->count++;
    return -1;
}

static int cfg_failf(cfg_errors_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cfg_failf(cfg_errors_t *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->one, sizeof e->one, fmt, ap);
    va_end(ap);
    return cfg_fail(e);
}

/* One problem: its message alone, as before; several: a count, then one
 * per line, in the order of --help. */
static void cfg_errors_format(const cfg_errors_t *e, char *err, size_t errlen)
{
    if (e->count == 1)
        kp_errf(err, errlen, "%.*s", (int)(e->list.len - 3), e->list.data + 2);
    else
        kp_errf(err, errlen, "%d environment variables are missing or invalid (see --help):\n%.*s",
                e->count, (int)(e->list.len - 1), e->list.data);
}

/* The readers: each returns 0 with *out set, or records its problem and
 * returns -1 (*out then holds the default, or "" for strings). */

static int cfg_str(cfg_errors_t *e, const char *name, int flags, char **out)
{
    const char *v = "";
    int rc = kp_env_string(e->src, name, flags, "", &v, e->one, sizeof e->one);
    *out = cfg_strdup(rc < 0 ? "" : v);
    return rc < 0 ? cfg_fail(e) : 0;
}

static int cfg_string(cfg_errors_t *e, const char *name, int flags, const char *def,
                      const char **out)
{
    if (kp_env_string(e->src, name, flags, def, out, e->one, sizeof e->one) < 0) {
        *out = def;
        return cfg_fail(e);
    }
    return 0;
}

static int cfg_seconds(cfg_errors_t *e, const char *name, int flags, uint64_t def_ms, double *out)
{
    uint64_t ms = def_ms;
    int rc =
        kp_env_seconds(e->src, name, flags, def_ms, CFG_MAX_SECONDS_MS, &ms, e->one, sizeof e->one);
    *out = (double)(rc < 0 ? def_ms : ms) / 1000.0;
    return rc < 0 ? cfg_fail(e) : 0;
}

static int cfg_int(cfg_errors_t *e, const char *name, int flags, int def, int max, int *out)
{
    long long v = def;
    int rc = kp_env_int(e->src, name, flags, def, 0, max, &v, e->one, sizeof e->one);
    *out = rc < 0 ? def : (int)v;
    return rc < 0 ? cfg_fail(e) : 0;
}

static int cfg_port(cfg_errors_t *e, const char *name, int flags, int def, int *out)
{
    if (kp_env_port(e->src, name, flags, def, out, e->one, sizeof e->one) < 0) {
        *out = def;
        return cfg_fail(e);
    }
    return 0;
}

static int cfg_bool(cfg_errors_t *e, const char *name, int *out)
{
    if (kp_env_bool(e->src, name, 0, 0, out, e->one, sizeof e->one) < 0) {
        *out = 0;
        return cfg_fail(e);
    }
    return 0;
}

/* Knative hands the zap config to its logger and only the level matters to
 * us; it must at least be JSON. */
static void cfg_logging(cfg_errors_t *e, kp_qp_config_t *cfg)
{
    const char *level;
    const char *config_level = NULL;
    cJSON *zap = NULL;
    cfg->log_level = KP_LOG_INFO;
    if (cfg_str(e, "SERVING_LOGGING_CONFIG", KP_ENV_REQUIRED, &cfg->logging_config) == 0 &&
        *cfg->logging_config) {
        const char *end = NULL;
        zap = cJSON_ParseWithOpts(cfg->logging_config, &end, 1);
        if (!zap) {
            cfg_failf(e,
                      "SERVING_LOGGING_CONFIG: invalid JSON near byte %zu (expected a zap "
                      "logging config in JSON, or empty)",
                      end ? (size_t)(end - cfg->logging_config) : 0);
        } else {
            const cJSON *lv = cJSON_GetObjectItemCaseSensitive(zap, "level");
            if (cJSON_IsString(lv))
                config_level = lv->valuestring;
        }
    }
    if (cfg_string(e, "SERVING_LOGGING_LEVEL", KP_ENV_REQUIRED, "", &level) == 0 && *level) {
        if (kp_log_level_parse(level, &cfg->log_level) < 0)
            cfg_failf(e,
                      "SERVING_LOGGING_LEVEL=\"%.40s\": unknown level (expected debug, info, "
                      "warn, error or empty)",
                      level);
    } else if (!config_level || kp_log_level_parse(config_level, &cfg->log_level) < 0) {
        /* Knative's logger falls back to info on a config it cannot use. */
        cfg->log_level = KP_LOG_INFO;
    }
    cJSON_Delete(zap);
    /* Read by the logger itself at start (so that every program honours
     * it); checked here so that a typo stops the pod with the others. */
    const char *format;
    kp_log_format_t parsed;
    if (cfg_string(e, KP_LOG_FORMAT_ENV, 0, "", &format) == 0 && *format &&
        kp_log_format_parse(format, &parsed) < 0)
        cfg_failf(e, KP_LOG_FORMAT_ENV "=\"%.40s\": unknown format (expected json or text)",
                  format);
}

static void cfg_request_log(cfg_errors_t *e, kp_qp_config_t *cfg)
{
    int template_ok =
        cfg_str(e, "SERVING_REQUEST_LOG_TEMPLATE", 0, &cfg->request_log_template) == 0;
    cfg_bool(e, "SERVING_ENABLE_REQUEST_LOG", &cfg->enable_request_log);
    cfg_bool(e, "SERVING_ENABLE_PROBE_REQUEST_LOG", &cfg->enable_probe_request_log);
    if (!cfg->enable_request_log || !template_ok)
        return;
    char why[512];
    if (kp_reqlog_compile(cfg->request_log_template, &cfg->request_log, why, sizeof why) < 0)
        cfg_failf(e, "SERVING_REQUEST_LOG_TEMPLATE: %s", why);
}

static void cfg_metrics(cfg_errors_t *e, kp_qp_config_t *cfg)
{
    const char *backend;
    cfg->request_metrics_backend = KP_QP_METRICS_NONE;
    if (cfg_string(e, "SERVING_REQUEST_METRICS_BACKEND", 0, "", &backend) < 0 || !*backend) {
        /* none */
    } else if (strcasecmp(backend, "prometheus") == 0) {
        cfg->request_metrics_backend = KP_QP_METRICS_PROMETHEUS;
    } else if (strcasecmp(backend, "opencensus") == 0) {
        cfg->request_metrics_backend = KP_QP_METRICS_OPENCENSUS;
    } else {
        cfg_failf(e,
                  "SERVING_REQUEST_METRICS_BACKEND=\"%.40s\": unknown backend (expected "
                  "prometheus, opencensus or empty)",
                  backend);
    }
    cfg->user_metrics_prometheus = cfg->request_metrics_backend == KP_QP_METRICS_PROMETHEUS;
    cfg_int(e, "SERVING_REQUEST_METRICS_REPORTING_PERIOD_SECONDS", 0, 0, 1000000000,
            &cfg->request_metrics_reporting_period_s);
    cfg_str(e, "METRICS_COLLECTOR_ADDRESS", 0, &cfg->metrics_collector_address);
}

static void cfg_tracing(cfg_errors_t *e, kp_qp_config_t *cfg)
{
    cfg_str(e, "TRACING_CONFIG_BACKEND", 0, &cfg->tracing_backend);
    cfg_bool(e, "TRACING_CONFIG_DEBUG", &cfg->tracing_debug);
    if (kp_env_double(e->src, "TRACING_CONFIG_SAMPLE_RATE", 0, 0.0, 0.0, 1.0,
                      &cfg->tracing_sample_rate, e->one, sizeof e->one) < 0)
        cfg_fail(e);
    cfg_str(e, "TRACING_CONFIG_ZIPKIN_ENDPOINT", 0, &cfg->tracing_zipkin_endpoint);
}

/* An IP address variable (KP_USER_HOST, KP_LISTEN_HOST), copied into *out. */
static void cfg_ip(cfg_errors_t *e, const char *name, const char *def, const char *example,
                   char **out)
{
    const char *host;
    unsigned char addr[16];
    if (cfg_string(e, name, KP_ENV_NONEMPTY, def, &host) < 0) {
        *out = cfg_strdup("");
        return;
    }
    if (strcmp(name, "KP_USER_HOST") == 0 && strcasecmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, addr) != 1 && inet_pton(AF_INET6, host, addr) != 1) {
        cfg_failf(e, "%s=\"%.64s\": not an IP address (expected e.g. %s)", name, host, example);
        *out = cfg_strdup("");
        return;
    }
    *out = cfg_strdup(host);
}

static void cfg_ports(cfg_errors_t *e, kp_qp_config_t *cfg)
{
    cfg_port(e, "QUEUE_SERVING_PORT", KP_ENV_REQUIRED, 0, &cfg->serving_port);
    cfg_port(e, "QUEUE_SERVING_TLS_PORT", KP_ENV_REQUIRED, 0, &cfg->serving_tls_port);
    cfg_port(e, "USER_PORT", KP_ENV_REQUIRED, 0, &cfg->user_port);
    cfg_port(e, "KP_ADMIN_PORT", 0, 8022, &cfg->admin_port);
    cfg_port(e, "KP_METRICS_PORT", 0, 9090, &cfg->metrics_port);
    cfg_port(e, "KP_USER_METRICS_PORT", 0, 9091, &cfg->user_metrics_port);
    cfg_ip(e, "KP_USER_HOST", "127.0.0.1", "127.0.0.1", &cfg->user_host);
    cfg_ip(e, "KP_LISTEN_HOST", "0.0.0.0", "0.0.0.0 or 127.0.0.2", &cfg->listen_host);
}

/* Two of our listeners on one port would only fail later with a bare
 * EADDRINUSE, and an app on our serving port would loop requests back. */
static void cfg_port_clashes(cfg_errors_t *e, const kp_qp_config_t *cfg)
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
                cfg_failf(e, "%s=%d: same port as %s (expected distinct ports)", ports[k].name,
                          ports[k].port, ports[i].name);
                return;
            }
        }
    }
}

int kp_qp_config_load_from(kp_qp_config_t *cfg, const char *(*get)(const char *name, void *ctx),
                           void *ctx, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    kp_env_src_t env = {get, ctx};
    cfg_errors_t e = {.src = &env};
    kp_strbuf_init(&e.list);
    const int req = KP_ENV_REQUIRED, req_nonempty = KP_ENV_REQUIRED | KP_ENV_NONEMPTY;
    const char *probe;
    char why[512];

    /* In --help's order, so the list reads like it. */
    cfg_str(&e, "SERVING_NAMESPACE", req_nonempty, &cfg->namespace_);
    cfg_str(&e, "SERVING_CONFIGURATION", req, &cfg->configuration);
    cfg_str(&e, "SERVING_REVISION", req_nonempty, &cfg->revision);
    cfg_str(&e, "SERVING_POD", req_nonempty, &cfg->pod);
    cfg_str(&e, "SERVING_POD_IP", req_nonempty, &cfg->pod_ip);
    cfg_str(&e, "SERVING_SERVICE", 0, &cfg->service);
    cfg_ports(&e, cfg);
    cfg_int(&e, "CONTAINER_CONCURRENCY", req, 0, CFG_MAX_CONCURRENCY, &cfg->container_concurrency);
    cfg_seconds(&e, "REVISION_TIMEOUT_SECONDS", req, 0, &cfg->revision_timeout_s);
    cfg_logging(&e, cfg);
    cfg_seconds(&e, "REVISION_RESPONSE_START_TIMEOUT_SECONDS", 0, 0,
                &cfg->response_start_timeout_s);
    cfg_seconds(&e, "REVISION_IDLE_TIMEOUT_SECONDS", 0, 0, &cfg->idle_timeout_s);
    cfg_seconds(&e, "KP_DRAIN_QUIET_PERIOD_SECONDS", 0, 30000, &cfg->drain_quiet_period_s);

    /* A probe without a port takes USER_PORT's (0 when that is missing or
     * bad: already reported); any valid stand-in lets the probe's own
     * problems be found too. */
    if (cfg_string(&e, "SERVING_READINESS_PROBE", 0, "", &probe) == 0 &&
        kp_probe_spec_parse(probe, cfg->user_port ? cfg->user_port : 8080, &cfg->readiness_probe,
                            why, sizeof why) < 0)
        cfg_failf(&e, "SERVING_READINESS_PROBE: %s", why);
    cfg->has_readiness_probe = cfg->readiness_probe.kind != KP_PROBE_NONE;

    cfg_request_log(&e, cfg);
    cfg_metrics(&e, cfg);
    cfg_tracing(&e, cfg);
    cfg_bool(&e, "ENABLE_PROFILING", &cfg->enable_profiling);
    cfg_bool(&e, "ENABLE_HTTP2_AUTO_DETECTION", &cfg->enable_http2_auto_detection);
    /* Clashes mean something only between ports that were all read. */
    if (e.count == 0)
        cfg_port_clashes(&e, cfg);
    if (e.count == 0) {
        kp_strbuf_free(&e.list);
        return 0;
    }
    cfg_errors_format(&e, err, errlen);
    kp_strbuf_free(&e.list);
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
