/* queue-proxy: the sidecar in front of every app container. Configured only
 * by Knative's environment variables so it can replace Knative's own. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "kp_version.h"
#include "base/mem_trim.h"
#include "drain.h"
#include "queue_proxy.h"
#include "stats_http.h"
#include "traffic.h"

static const char usage[] =
    "usage: queue-proxy [--help | --version]\n"
    "\n"
    "Knative-compatible queue-proxy sidecar, configured by Knative's environment\n"
    "variables (it takes no other flags), as a Knative revision pod sets them:\n"
    "  SERVING_NAMESPACE, SERVING_CONFIGURATION, SERVING_REVISION, SERVING_POD,\n"
    "  SERVING_POD_IP, QUEUE_SERVING_PORT, QUEUE_SERVING_TLS_PORT, USER_PORT,\n"
    "  CONTAINER_CONCURRENCY (0 = no limit), REVISION_TIMEOUT_SECONDS,\n"
    "  SERVING_LOGGING_CONFIG, SERVING_LOGGING_LEVEL                      (required)\n"
    "  SERVING_SERVICE, REVISION_RESPONSE_START_TIMEOUT_SECONDS,\n"
    "  REVISION_IDLE_TIMEOUT_SECONDS, SERVING_READINESS_PROBE,\n"
    "  SERVING_ENABLE_REQUEST_LOG, SERVING_REQUEST_LOG_TEMPLATE,\n"
    "  SERVING_ENABLE_PROBE_REQUEST_LOG, SERVING_REQUEST_METRICS_BACKEND  (optional)\n"
    "  SERVING_REQUEST_METRICS_REPORTING_PERIOD_SECONDS, METRICS_COLLECTOR_ADDRESS,\n"
    "  TRACING_CONFIG_BACKEND, TRACING_CONFIG_DEBUG, TRACING_CONFIG_SAMPLE_RATE,\n"
    "  TRACING_CONFIG_ZIPKIN_ENDPOINT, ENABLE_PROFILING, ENABLE_HTTP2_AUTO_DETECTION\n"
    "                                            (optional; checked, then unused)\n"
    "Extra, for running many pods on one host (defaults are Knative's ports):\n"
    "  KP_ADMIN_PORT (8022), KP_METRICS_PORT (9090), KP_USER_METRICS_PORT (9091),\n"
    "  KP_DRAIN_QUIET_PERIOD_SECONDS (30), KP_USER_HOST (127.0.0.1),\n"
    "  KP_LISTEN_HOST (0.0.0.0: the address our ports listen on),\n"
    "  KP_HTTP_HEADER_TIMEOUT_MS (30000), KP_HTTP_MAX_CONNECTIONS (20000),\n"
    "  KP_LOG_FORMAT (json, or text: one plain line per entry)\n"
    "\n"
    "Ports: QUEUE_SERVING_PORT proxies to the app and answers probes; admin\n"
    "GET /wait-for-drain; metrics port GET /metrics (Knative Stat protobuf with\n"
    "Accept: application/protobuf, Prometheus text otherwise); user metrics port\n"
    "GET /metrics when SERVING_REQUEST_METRICS_BACKEND=prometheus.\n"
    "SIGTERM drains: health checks fail, traffic is served until the quiet period\n"
    "passes with no request, then the process exits.\n"
    "\n"
    "Missing or invalid variables are all named in one message; exit code 1.\n"
    "--version prints the version and the commit it was built from.\n";

static void on_closed_handle(uv_handle_t *h)
{
    (void)h;
}

static void on_server_closed(kp_http_server_t *s)
{
    (void)s;
}

/* Drained: closes every handle, so the loop ends and the process exits. */
static void qp_shutdown(qp_t *qp)
{
    if (qp->servers_open == 0)
        return;
    qp->servers_open = 0;
    if (qp->exit_code < 0)
        qp->exit_code = 0;
    kp_log(KP_LOG_INFO, "exiting");
    kp_http_server_close(&qp->main_server, on_server_closed);
    kp_http_server_close(&qp->admin_server, on_server_closed);
    kp_http_server_close(&qp->stats_server, on_server_closed);
    if (qp->user_metrics_enabled)
        kp_http_server_close(&qp->user_metrics_server, on_server_closed);
    uv_close((uv_handle_t *)&qp->report_timer, on_closed_handle);
    kp_mem_trim_stop();
    uv_close((uv_handle_t *)&qp->queue_timer, on_closed_handle);
    uv_close((uv_handle_t *)&qp->drain_timer, on_closed_handle);
    uv_close((uv_handle_t *)&qp->sigterm, on_closed_handle);
    uv_close((uv_handle_t *)&qp->sigint, on_closed_handle);
    kp_readiness_close(qp->readiness);
    kp_upstream_pool_release(qp->app_pool);
    kp_h2c_pool_release(qp->proxy_opts.h2_pool);
}

static void on_signal(uv_signal_t *s, int signum)
{
    qp_t *qp = s->data;
    kp_log(KP_LOG_INFO, "received %s: draining", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    if (qp->exit_code < 0)
        qp->exit_code = 0;
    qp_drain_start(qp);
}

static int listen_on(qp_t *qp, kp_http_server_t *s, int port, const char *var,
                     kp_http_request_cb cb)
{
    int err = kp_http_server_init(s, qp->loop, qp->cfg.listen_host, port, NULL, cb, qp);
    if (err) {
        fprintf(stderr, "queue-proxy: cannot listen on port %d (%s): %s\n", port, var,
                uv_strerror(err));
        return -1;
    }
    qp->servers_open++;
    return 0;
}

static int start(qp_t *qp)
{
    const kp_qp_config_t *cfg = &qp->cfg;
    qp->start_ns = kp_now_ns();
    int cc = cfg->container_concurrency;
    kp_breaker_init(&qp->breaker, cc, cc > 0 ? 10 * cc : 0);
    qp->proxy_opts.timeout_ms = (uint64_t)(cfg->revision_timeout_s * 1000);
    qp->proxy_opts.response_start_timeout_ms = (uint64_t)(cfg->response_start_timeout_s * 1000);
    qp->proxy_opts.idle_timeout_ms = (uint64_t)(cfg->idle_timeout_s * 1000);
    qp->queue_timeout_ns = (uint64_t)(cfg->revision_timeout_s * 1e9);

    struct sockaddr_storage app;
    if (uv_ip4_addr(cfg->user_host, cfg->user_port, (struct sockaddr_in *)&app) != 0 &&
        uv_ip6_addr(cfg->user_host, cfg->user_port, (struct sockaddr_in6 *)&app) != 0) {
        fprintf(stderr, "queue-proxy: KP_USER_HOST=\"%s\": not an IP address\n", cfg->user_host);
        return -1;
    }
    snprintf(qp->app_host, sizeof qp->app_host, strchr(cfg->user_host, ':') ? "[%s]:%d" : "%s:%d",
             cfg->user_host, cfg->user_port);
    /* Knative keeps as many idle app connections as requests may run at once. */
    qp->app_pool = kp_upstream_pool_new(qp->loop, (struct sockaddr *)&app, cc > 0 ? cc : 1000);
    /* Knative's queue-proxy (pkgnet.NewProxyAutoTransport) sends an HTTP/2
     * request to the app as h2c and an HTTP/1 one as HTTP/1.1, whatever
     * the port's name: the same here. */
    qp->proxy_opts.h2_pool = kp_h2c_pool_new(qp->loop, (struct sockaddr *)&app, cc > 0 ? cc : 1000);
    if (!qp->proxy_opts.h2_pool) {
        fprintf(stderr, "queue-proxy: out of memory\n");
        return -1;
    }

    kp_req_metrics_labels_t labels = {
        .service = cfg->service,
        .configuration = cfg->configuration,
        .revision = cfg->revision,
        .namespace_ = cfg->namespace_,
        .pod = cfg->pod,
    };
    qp->req_metrics = kp_req_metrics_new(&labels);
    qp->readiness = kp_readiness_new(qp->loop, cfg->has_readiness_probe ? &cfg->readiness_probe : NULL);
    if (cfg->enable_http2_auto_detection && cfg->has_readiness_probe &&
        kp_readiness_detect_http2(qp->readiness, &cfg->readiness_probe) != 0) {
        fprintf(stderr, "queue-proxy: out of memory\n");
        return -1;
    }
    qp_stats_init(qp);
    qp_queue_timer_init(qp);
    qp_drain_init(qp, qp_shutdown);

    if (listen_on(qp, &qp->main_server, cfg->serving_port, "QUEUE_SERVING_PORT", qp_on_main_request) ||
        listen_on(qp, &qp->admin_server, cfg->admin_port, "KP_ADMIN_PORT", qp_on_admin_request) ||
        listen_on(qp, &qp->stats_server, cfg->metrics_port, "KP_METRICS_PORT", qp_on_stats_request))
        return -1;
    qp->user_metrics_enabled = cfg->user_metrics_prometheus;
    if (qp->user_metrics_enabled &&
        listen_on(qp, &qp->user_metrics_server, cfg->user_metrics_port, "KP_USER_METRICS_PORT",
                  qp_on_user_metrics_request))
        return -1;

    uv_signal_init(qp->loop, &qp->sigterm);
    uv_signal_init(qp->loop, &qp->sigint);
    qp->sigterm.data = qp->sigint.data = qp;
    uv_signal_start(&qp->sigterm, on_signal, SIGTERM);
    uv_signal_start(&qp->sigint, on_signal, SIGINT);
    kp_readiness_start(qp->readiness);
    kp_log(KP_LOG_INFO,
           "serving on :%d for revision %s/%s, app at %s:%d, containerConcurrency %d",
           cfg->serving_port, cfg->namespace_, cfg->revision, cfg->user_host, cfg->user_port, cc);
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("queue-proxy %s\n", KP_VERSION);
            return 0;
        }
        fprintf(stderr, "queue-proxy: unknown argument \"%s\" (it is configured by environment "
                        "variables; see --help)\n", argv[i]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    static qp_t qp; /* large; lives for the whole process */
    char err[8192]; /* room for every variable's problem */
    if (kp_qp_config_load(&qp.cfg, err, sizeof err) != 0) {
        fprintf(stderr, "queue-proxy: %s\n", err);
        return 1;
    }
    kp_log_init("queue-proxy", qp.cfg.log_level);
    qp.loop = uv_default_loop();
    qp.request_log = qp.cfg.request_log;
    if (start(&qp) != 0)
        return 1;
    kp_mem_trim_start(qp.loop);
    uv_run(qp.loop, UV_RUN_DEFAULT);
    uv_loop_close(qp.loop);
    kp_req_metrics_free(qp.req_metrics);
    kp_qp_config_free(&qp.cfg);
    return qp.exit_code < 0 ? 0 : qp.exit_code;
}
