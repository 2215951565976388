/* activator: the proxy in front of revisions that are scaled to zero or
 * short of capacity. Routes by Host or Knative's revision headers, holds
 * requests while pods start, scales revisions with an embedded KPA. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "activator.h"
#include "activator/backend/kubernetes.h"
#include "activator/backend/local.h"
#include "activator/backend/pod_exec.h"
#include "activator/knative/controller.h"
#include "activator/knative/names.h"
#include "base/log.h"
#include "base/mem_trim.h"
#include "config_watch.h"
#include "handler.h"
#include "http/host_port.h"
#include "kp_version.h"
#include "observe.h"
#include "peers.h"
#include "revisions.h"
#include "status_cli.h"

static const char usage[] =
    "usage: activator [options]\n"
    "       activator status [--admin HOST:PORT] [-w]   a running activator's state as tables\n"
    "\n"
    "Scale-from-zero proxy and autoscaler for Knative-style services.\n"
    "\n"
    "  --config FILE        services, revisions and traffic (JSON; see config/README.md)\n"
    "                       env KP_ACTIVATOR_CONFIG; default config/local.json\n"
    "  --listen HOST:PORT   traffic port (env KP_ACTIVATOR_LISTEN; default 0.0.0.0:8080)\n"
    "  --listen-h2c HOST:PORT  a second traffic port, as Knative's activator has for\n"
    "                       HTTP/2 cleartext (8013) (env KP_ACTIVATOR_LISTEN_H2C; default none).\n"
    "                       Both traffic ports serve HTTP/1.1 and HTTP/2 (prior knowledge\n"
    "                       or Upgrade: h2c) alike\n"
    "  --admin HOST:PORT    /status and /metrics (env KP_ACTIVATOR_ADMIN; default 127.0.0.1:9095)\n"
    "                       Each takes :PORT (every IPv4 interface), IPV4:PORT, [IPV6]:PORT\n"
    "                       or NAME:PORT (resolved at start, its IPv4 address first)\n"
    "  --backend NAME       where pods run: local or kubernetes (env KP_ACTIVATOR_BACKEND;\n"
    "                       default local)\n"
    "  --queue-proxy PATH   queue-proxy binary for local pods (default: next to this binary)\n"
    "  --pod-port-base N    local pods' ports are taken from N upwards (default 20000);\n"
    "                       activators on one host need ranges of their own\n"
    "  --reuse-port         share the --listen port with other processes (SO_REUSEPORT),\n"
    "                       so an activator can restart while another serves\n"
    "\n"
    "kubernetes backend (in a pod, the API is found from the service account):\n"
    "  --kube-api URL       API server, e.g. https://1.2.3.4:6443 or http://127.0.0.1:8001\n"
    "                       (kubectl proxy) (env KP_KUBE_API)\n"
    "  --kube-token-file F  bearer token, re-read when it changes (env KP_KUBE_TOKEN_FILE)\n"
    "  --kube-ca-file F     CA bundle of the API server (env KP_KUBE_CA_FILE)\n"
    "  --identity NAME      this replica's name for leader election (env POD_NAME);\n"
    "                       without it, this replica writes scale alone\n"
    "  --lease-namespace NS namespace of the Lease and of the activator Service\n"
    "                       (env POD_NAMESPACE; default default)\n"
    "  --lease-duration S   leader lease, seconds (env KP_LEASE_DURATION; default 15)\n"
    "  --activator-service NAME  Service of the activator replicas, whose ready\n"
    "                       endpoints share each pod's capacity (env KP_ACTIVATOR_SERVICE)\n"
    "  --knative on|off     serve Knative Services (serving.knative.dev/v1): the Lease\n"
    "                       holder turns them into Revisions, Deployments and Services, and\n"
    "                       every replica routes by their Routes (env KP_KNATIVE; default on)\n"
    "  --knative-namespaces NS[,NS...]  where Knative Services are served (env\n"
    "                       KP_KNATIVE_NAMESPACES; default default)\n"
    "  --knative-ingress-service NAME  the activator's Service in --lease-namespace,\n"
    "                       which each Route's core Service {route} points at (ExternalName)\n"
    "                       (env KP_KNATIVE_INGRESS_SERVICE; default kp-activator)\n"
    "  --queue-sidecar-image IMAGE  the queue-proxy container of revisions (env\n"
    "                       KP_QUEUE_SIDECAR_IMAGE; default: the image this activator runs,\n"
    "                       read from its own Pod)\n"
    "                       Knative's ConfigMaps config-domain, config-gc, config-defaults\n"
    "                       and config-deployment are read from --lease-namespace; until\n"
    "                       they say otherwise: KP_KNATIVE_DOMAIN (default example.com),\n"
    "                       KP_KNATIVE_PROGRESS_DEADLINE (seconds; default 600) and\n"
    "                       KP_KNATIVE_GC (config-gc as key=value,...)\n"
    "\n"
    "  --log-level LEVEL    debug, info, warn or error (env KP_LOG_LEVEL; default info);\n"
    "                       debug logs each scale decision's inputs\n"
    "  --log-format F       json (Knative's) or text, for terminals; local pods log the\n"
    "                       same way (env KP_LOG_FORMAT; default json)\n"
    "  --max-held N         held requests per revision before 503 (default 10000)\n"
    "  --max-requests N     held and in-flight requests of all revisions together before\n"
    "                       503 \"activator at capacity\" (env KP_MAX_REQUESTS; default\n"
    "                       derived from the memory limit: see README, Capacity)\n"
    "  --ready-fd N         once both ports listen, write \"ready\\n\" to file descriptor N\n"
    "                       and close it (make run prints its banner then)\n"
    "  --version            the version and the commit it was built from\n"
    "  -h, --help           this text\n"
    "\n"
    "Environment for every HTTP server of the process: KP_HTTP_HEADER_TIMEOUT_MS\n"
    "(30000: a slower request head gets 408), KP_HTTP_MAX_CONNECTIONS (20000; for\n"
    "the --listen and --listen-h2c ports together, derived from the memory limit\n"
    "unless set) and KP_HTTP_STALL_TIMEOUT_MS (60000: an HTTP/2 stream whose\n"
    "client stopped reading is reset after that long). KP_CGROUP_ROOT: where\n"
    "the memory limit is read (default /sys/fs/cgroup: memory.max, cgroup v1's\n"
    "memory/memory.limit_in_bytes).\n"
    "\n"
    "Route a request by Host {service}.{namespace}.{any domain} (tagged:\n"
    "{tag}-{service}.{namespace}.{domain}) or by the headers Knative-Serving-Revision\n"
    "and Knative-Serving-Namespace. SIGTERM or SIGINT: stop accepting, finish what\n"
    "was accepted, stop every pod, exit. Local pods run in sessions of their own\n"
    "(a terminal's Ctrl-C reaches only the activator) and are killed by the kernel\n"
    "if the activator dies without stopping them.\n";

typedef struct act_opts {
    const char *config;
    const char *listen;
    const char *listen_h2c; /* NULL: no second traffic port */
    const char *admin;
    /* Where the addresses came from, for messages: a flag or its env. */
    const char *listen_src, *listen_h2c_src, *admin_src;
    kp_host_port_t listen_addr, listen_h2c_addr, admin_addr;
    int ready_fd; /* -1: none */
    const char *backend;
    const char *queue_proxy;
    const char *log_level;
    const char *log_format;
    int max_held;
    int max_requests; /* 0: derived from the memory limit */
    const char *kube_api, *kube_token_file, *kube_ca_file;
    const char *identity, *lease_namespace, *activator_service;
    int lease_duration_s;
    int pod_port_base;
    int reuse_port;
    int knative;
    const char *knative_namespaces, *queue_sidecar_image, *knative_domain, *knative_gc;
    const char *knative_ingress_service;
    int progress_deadline_s;
} act_opts_t;

static int parse_int_flag(const char *name, const char *s, long lo, long hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) {
        fprintf(stderr, "activator: %s \"%s\": expected an integer from %ld to %ld\n", name, s, lo,
                hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_address(const char *src, const char *text, kp_host_port_t *out)
{
    char why[512];
    if (kp_host_port_parse(text, out, why, sizeof why) != 0) {
        /* As the user wrote it: --listen "x" or KP_ACTIVATOR_LISTEN="x". */
        fprintf(stderr, "activator: %s%s\"%s\": %s\n", src, src[0] == '-' ? " " : "=", text, why);
        return -1;
    }
    return 0;
}

/* --ready-fd: a descriptor the caller opened for us (e.g. a pipe). Pods
 * must not inherit it: a pod still holding it would hide our exit. */
static int parse_ready_fd(const char *text, int *fd)
{
    if (parse_int_flag("--ready-fd", text, 3, 1023, fd) != 0)
        return -1;
    if (fcntl(*fd, F_SETFD, FD_CLOEXEC) != 0) {
        fprintf(stderr, "activator: --ready-fd %d: %s (expected a descriptor open for writing)\n",
                *fd, strerror(errno));
        return -1;
    }
    return 0;
}

/* Tells whoever waits on --ready-fd that both ports listen. */
static void signal_ready(int fd)
{
    if (fd < 0)
        return;
    if (write(fd, "ready\n", 6) != 6)
        kp_log(KP_LOG_WARN, "--ready-fd %d: nobody read \"ready\" (%s)", fd, strerror(errno));
    close(fd);
}

static int parse_args(int argc, char **argv, act_opts_t *o)
{
    const char *env;
    o->config = (env = getenv("KP_ACTIVATOR_CONFIG")) && *env ? env : "config/local.json";
    o->listen = (env = getenv("KP_ACTIVATOR_LISTEN")) && *env ? env : "0.0.0.0:8080";
    o->listen_src = env && *env ? "KP_ACTIVATOR_LISTEN" : "--listen";
    o->listen_h2c = (env = getenv("KP_ACTIVATOR_LISTEN_H2C")) && *env ? env : NULL;
    o->listen_h2c_src = "KP_ACTIVATOR_LISTEN_H2C";
    o->admin = (env = getenv("KP_ACTIVATOR_ADMIN")) && *env ? env : "127.0.0.1:9095";
    o->admin_src = env && *env ? "KP_ACTIVATOR_ADMIN" : "--admin";
    o->ready_fd = -1;
    o->backend = (env = getenv("KP_ACTIVATOR_BACKEND")) && *env ? env : "local";
    o->log_level = (env = getenv("KP_LOG_LEVEL")) && *env ? env : "info";
    o->log_format = (env = getenv(KP_LOG_FORMAT_ENV)) && *env ? env : "json";
    o->queue_proxy = NULL;
    o->max_held = 10000;
    o->max_requests = 0;
    if ((env = getenv("KP_MAX_REQUESTS")) && *env &&
        parse_int_flag("KP_MAX_REQUESTS", env, 1, 100000000, &o->max_requests) != 0)
        return -1;
    o->kube_api = getenv("KP_KUBE_API");
    o->kube_token_file = getenv("KP_KUBE_TOKEN_FILE");
    o->kube_ca_file = getenv("KP_KUBE_CA_FILE");
    o->identity = getenv("POD_NAME");
    o->lease_namespace = (env = getenv("POD_NAMESPACE")) && *env ? env : "default";
    o->activator_service = getenv("KP_ACTIVATOR_SERVICE");
    o->lease_duration_s = 15;
    o->pod_port_base = 0;
    o->reuse_port = 0;
    if ((env = getenv("KP_LEASE_DURATION")) && *env &&
        parse_int_flag("KP_LEASE_DURATION", env, 1, 3600, &o->lease_duration_s) != 0)
        return -1;
    const char *knative = (env = getenv("KP_KNATIVE")) && *env ? env : "on";
    const char *knative_src = env && *env ? "KP_KNATIVE=" : "--knative ";
    o->knative_namespaces = (env = getenv("KP_KNATIVE_NAMESPACES")) && *env ? env : "default";
    o->queue_sidecar_image = getenv("KP_QUEUE_SIDECAR_IMAGE");
    o->knative_domain = (env = getenv("KP_KNATIVE_DOMAIN")) && *env ? env : "example.com";
    o->knative_gc = getenv("KP_KNATIVE_GC");
    o->knative_ingress_service =
        (env = getenv("KP_KNATIVE_INGRESS_SERVICE")) && *env ? env : "kp-activator";
    o->progress_deadline_s = 600;
    if ((env = getenv("KP_KNATIVE_PROGRESS_DEADLINE")) && *env &&
        parse_int_flag("KP_KNATIVE_PROGRESS_DEADLINE", env, 1, 86400, &o->progress_deadline_s) != 0)
        return -1;
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},      {"listen", required_argument, NULL, 'l'},
        {"admin", required_argument, NULL, 'a'},       {"backend", required_argument, NULL, 'b'},
        {"queue-proxy", required_argument, NULL, 'q'}, {"log-level", required_argument, NULL, 'v'},
        {"max-held", required_argument, NULL, 'm'},    {"help", no_argument, NULL, 'h'},
        {"kube-api", required_argument, NULL, 'A'},    {"kube-token-file", required_argument, NULL, 'T'},
        {"kube-ca-file", required_argument, NULL, 'C'}, {"identity", required_argument, NULL, 'I'},
        {"lease-namespace", required_argument, NULL, 'N'},
        {"activator-service", required_argument, NULL, 'S'},
        {"lease-duration", required_argument, NULL, 'L'},
        {"pod-port-base", required_argument, NULL, 'P'}, {"reuse-port", no_argument, NULL, 'R'},
        {"ready-fd", required_argument, NULL, 'F'},    {"version", no_argument, NULL, 'V'},
        {"log-format", required_argument, NULL, 'f'},
        {"listen-h2c", required_argument, NULL, 'H'},
        {"max-requests", required_argument, NULL, 'M'},
        {"knative", required_argument, NULL, 'K'},
        {"knative-namespaces", required_argument, NULL, 'n'},
        {"knative-ingress-service", required_argument, NULL, 'E'},
        {"queue-sidecar-image", required_argument, NULL, 'Q'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->config = optarg; break;
        case 'l': o->listen = optarg; o->listen_src = "--listen"; break;
        case 'a': o->admin = optarg; o->admin_src = "--admin"; break;
        case 'H': o->listen_h2c = optarg; o->listen_h2c_src = "--listen-h2c"; break;
        case 'b': o->backend = optarg; break;
        case 'q': o->queue_proxy = optarg; break;
        case 'v': o->log_level = optarg; break;
        case 'f': o->log_format = optarg; break;
        case 'A': o->kube_api = optarg; break;
        case 'T': o->kube_token_file = optarg; break;
        case 'C': o->kube_ca_file = optarg; break;
        case 'I': o->identity = optarg; break;
        case 'N': o->lease_namespace = optarg; break;
        case 'S': o->activator_service = optarg; break;
        case 'L':
            if (parse_int_flag("--lease-duration", optarg, 1, 3600, &o->lease_duration_s) != 0)
                return -1;
            break;
        case 'R': o->reuse_port = 1; break;
        case 'K': knative = optarg; knative_src = "--knative "; break;
        case 'n': o->knative_namespaces = optarg; break;
        case 'E': o->knative_ingress_service = optarg; break;
        case 'Q': o->queue_sidecar_image = optarg; break;
        case 'P':
            if (parse_int_flag("--pod-port-base", optarg, 1024, 65000, &o->pod_port_base) != 0)
                return -1;
            break;
        case 'm':
            if (parse_int_flag("--max-held", optarg, 1, 10000000, &o->max_held) != 0)
                return -1;
            break;
        case 'M':
            if (parse_int_flag("--max-requests", optarg, 1, 100000000, &o->max_requests) != 0)
                return -1;
            break;
        case 'F':
            if (parse_ready_fd(optarg, &o->ready_fd) != 0)
                return -1;
            break;
        case 'h': fputs(usage, stdout); exit(0);
        case 'V': printf("activator %s\n", KP_VERSION); exit(0);
        default: fprintf(stderr, "activator: see --help\n"); return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "activator: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return -1;
    }
    if (strcmp(o->backend, "local") != 0 && strcmp(o->backend, "kubernetes") != 0) {
        fprintf(stderr, "activator: --backend \"%s\": expected local or kubernetes\n", o->backend);
        return -1;
    }
    if (strcmp(knative, "on") != 0 && strcmp(knative, "off") != 0) {
        fprintf(stderr, "activator: %s\"%s\": expected on or off\n", knative_src, knative);
        return -1;
    }
    o->knative = strcmp(knative, "on") == 0 && strcmp(o->backend, "kubernetes") == 0;
    if (parse_address(o->listen_src, o->listen, &o->listen_addr) != 0 ||
        parse_address(o->admin_src, o->admin, &o->admin_addr) != 0 ||
        (o->listen_h2c && parse_address(o->listen_h2c_src, o->listen_h2c, &o->listen_h2c_addr) != 0))
        return -1;
    return 0;
}

static act_t act;
static uv_signal_t sigterm_handle, sigint_handle;
/* --listen-h2c: the same handler as act.server's (Knative's activator
 * serves 8012 and 8013 alike). Open while h2c_listening. */
static kp_http_server_t h2c_server;
static int h2c_listening;

static void on_backend_closed(void *ctx)
{
    (void)ctx;
    kp_log(KP_LOG_INFO, "every pod stopped; exiting");
    uv_close((uv_handle_t *)&sigterm_handle, NULL);
    uv_close((uv_handle_t *)&sigint_handle, NULL);
    kp_mem_trim_stop();
    act_observe_close(&act);
}

static void on_server_closed(kp_http_server_t *s)
{
    (void)s;
}

static kn_controller_t *knative;

static void finish_shutdown(void)
{
    act_config_watch_stop(&act);
    act.apply_file_config = NULL;
    kn_controller_stop(knative);
    knative = NULL;
    act_peers_stop(&act);
    act_revisions_close(&act);
    kp_http_server_close(&act.server, on_server_closed);
    if (h2c_listening)
        kp_http_server_close(&h2c_server, on_server_closed);
    act.backend->close(act.backend, on_backend_closed, NULL);
}

static uv_timer_t drain_timer;
/* Connections taken from the listener's queue as it closed have not been
 * read yet, so they look idle; give their requests this long to arrive
 * before idle connections are closed and the drain is judged complete. */
#define DRAIN_FIRST_READ_MS 250

static void on_drain_tick(uv_timer_t *t)
{
    if (t->data) {
        t->data = NULL;
        kp_http_server_close_idle(&act.server);
        if (h2c_listening)
            kp_http_server_close_idle(&h2c_server);
    }
    if (kp_http_server_busy(&act.server) > 0 ||
        (h2c_listening && kp_http_server_busy(&h2c_server) > 0))
        return;
    uv_close((uv_handle_t *)t, NULL);
    finish_shutdown();
}

static void on_signal(uv_signal_t *s, int signum)
{
    if (act.draining)
        return;
    act.draining = 1;
    kp_log(KP_LOG_INFO, "received %s: finishing accepted requests, then stopping pods",
           signum == SIGTERM ? "SIGTERM" : "SIGINT");
    kp_http_server_stop_accepting(&act.server);
    if (h2c_listening)
        kp_http_server_stop_accepting(&h2c_server);
    uv_timer_init(act.loop, &drain_timer);
    drain_timer.data = &drain_timer; /* close_idle still due */
    uv_timer_start(&drain_timer, on_drain_tick, act.server.opts.reuse_port ? DRAIN_FIRST_READ_MS : 0,
                   20);
}

static kp_kube_config_t kube_cfg;

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The activator Service's endpoints: the ready ones share each pod's
 * concurrency (each replica finds its place among them by pod name, as
 * every replica sees the same list), and the others than us are the peers
 * whose load counts. */
static void on_activators_changed(void *ctx, const kp_kube_endpoint_t *eps, size_t n)
{
    act_t *a = ctx;
    const char **peers = calloc(n ? n : 1, sizeof *peers);
    const char **names = calloc(n ? n : 1, sizeof *names);
    size_t n_peers = 0, n_names = 0;
    int ready = 0;
    for (size_t i = 0; i < n; i++) {
        if (!eps[i].ready)
            continue;
        ready++;
        if (names)
            names[n_names++] = eps[i].pod;
        /* An address with no pod name cannot be told apart from ours. */
        if (peers && eps[i].pod[0] && strcmp(eps[i].pod, a->identity) != 0)
            peers[n_peers++] = eps[i].ip;
    }
    int self = -1;
    if (names && a->identity[0]) {
        qsort(names, n_names, sizeof *names, by_name);
        for (size_t i = 0; i < n_names; i++)
            if (strcmp(names[i], a->identity) == 0)
                self = (int)i;
    }
    act_revisions_set_activators(a, ready > 0 ? ready : 1, self);
    if (peers)
        act_peers_set(a, peers, n_peers);
    free(peers);
    free(names);
}

static void on_leader_changed(void *ctx, int is_leader)
{
    kn_controller_set_leader(knative, is_leader);
}

static int apply_merged(void *ctx, kp_activator_config_t *cfg)
{
    return act_revisions_apply(ctx, cfg);
}

static int apply_file_config(void *ctx, kp_activator_config_t *cfg)
{
    return kn_controller_set_file_config(ctx, cfg);
}

/* Splits "a,b,c" in place into parts (at most max). */
static size_t split_list(char *s, char sep, const char **parts, size_t max)
{
    size_t n = 0;
    for (char *p = s; p && *p && n < max;) {
        char *next = strchr(p, sep);
        if (next)
            *next++ = '\0';
        if (*p)
            parts[n++] = p;
        p = next;
    }
    return n;
}

#define KNATIVE_MAX_NAMESPACES 64
#define KNATIVE_MAX_GC 8

/* The Knative controller on the kubernetes backend's client; exits on a
 * setting it cannot take. */
static kn_controller_t *start_knative(const act_opts_t *o)
{
    static char ns_buf[4096], gc_buf[1024];
    static const char *namespaces[KNATIVE_MAX_NAMESPACES], *gc_parts[KNATIVE_MAX_GC];
    static const char *gc_keys[KNATIVE_MAX_GC], *gc_values[KNATIVE_MAX_GC];
    snprintf(ns_buf, sizeof ns_buf, "%s", o->knative_namespaces);
    kn_controller_opts_t ko;
    memset(&ko, 0, sizeof ko);
    ko.kube = act_backend_kubernetes_client(act.backend);
    ko.namespaces = namespaces;
    ko.n_namespaces = split_list(ns_buf, ',', namespaces, KNATIVE_MAX_NAMESPACES);
    ko.queue_image = o->queue_sidecar_image;
    ko.pod_name = o->identity;
    ko.pod_namespace = o->lease_namespace;
    ko.domain = o->knative_domain;
    ko.ingress_service = o->knative_ingress_service;
    ko.progress_deadline_s = o->progress_deadline_s;
    ko.apply = apply_merged;
    ko.ctx = &act;
    if (o->knative_gc && *o->knative_gc) {
        snprintf(gc_buf, sizeof gc_buf, "%s", o->knative_gc);
        size_t n = split_list(gc_buf, ',', gc_parts, KNATIVE_MAX_GC);
        for (size_t i = 0; i < n; i++) {
            char *eq = strchr(gc_parts[i], '=');
            if (!eq) {
                fprintf(stderr,
                        "activator: KP_KNATIVE_GC \"%s\": expected key=value pairs of config-gc "
                        "(e.g. min-non-active-revisions=0,retain-since-create-time=disabled)\n",
                        o->knative_gc);
                exit(2);
            }
            *eq = '\0';
            gc_keys[ko.n_gc] = gc_parts[i];
            gc_values[ko.n_gc++] = eq + 1;
        }
        ko.gc_keys = gc_keys;
        ko.gc_values = gc_values;
    }
    char why[512];
    if (kn_controller_check_gc(&ko, why, sizeof why) != 0) {
        fprintf(stderr, "activator: KP_KNATIVE_GC: %s\n", why);
        exit(2);
    }
    for (size_t i = 0; i < ko.n_namespaces; i++)
        if (strlen(namespaces[i]) > 63) {
            fprintf(stderr, "activator: --knative-namespaces: \"%s\" is not a namespace name\n",
                    namespaces[i]);
            exit(2);
        }
    if (!kn_dns_label(ko.ingress_service)) {
        fprintf(stderr,
                "activator: --knative-ingress-service \"%s\": not a Service name (expected a DNS "
                "label: lower-case letters, digits and '-', at most 63)\n",
                ko.ingress_service);
        exit(2);
    }
    return kn_controller_start(act.loop, &ko);
}

static act_backend_t *make_backend(const act_opts_t *o, const act_backend_events_t *events)
{
    if (strcmp(o->backend, "local") == 0) {
        act_local_opts_t lopts;
        act_local_opts_default(&lopts);
        if (o->queue_proxy)
            lopts.queue_proxy_path = o->queue_proxy;
        lopts.log_level = o->log_level;
        lopts.log_format = o->log_format;
        if (o->pod_port_base)
            lopts.first_port = o->pod_port_base;
        return act_backend_local_new(act.loop, events, &lopts);
    }
    char err[512];
    if (o->kube_api && *o->kube_api) {
        kube_cfg.api_url = strdup(o->kube_api);
        kube_cfg.token_file = o->kube_token_file && *o->kube_token_file ? strdup(o->kube_token_file) : NULL;
        kube_cfg.ca_file = o->kube_ca_file && *o->kube_ca_file ? strdup(o->kube_ca_file) : NULL;
    } else if (kp_kube_config_in_cluster(&kube_cfg, err, sizeof err) != 0) {
        fprintf(stderr, "activator: --backend kubernetes: %s (outside a cluster, give --kube-api)\n", err);
        exit(2);
    }
    act_kube_opts_t kopts;
    act_kube_opts_default(&kopts);
    kopts.kube = kube_cfg;
    kopts.identity = o->identity;
    kopts.lease_namespace = o->lease_namespace;
    kopts.activator_service = o->activator_service;
    kopts.lease_duration_s = o->lease_duration_s;
    kopts.activators_changed = on_activators_changed;
    kopts.leader_changed = on_leader_changed;
    kopts.ctx = &act;
    return act_backend_kubernetes_new(act.loop, events, &kopts);
}

int main(int argc, char **argv)
{
    /* A local pod's process on its way to exec (before anything else). */
    if (argc > 1 && strcmp(argv[1], ACT_POD_EXEC_FLAG) == 0)
        return act_pod_exec_main(argc, argv);
    if (argc > 1 && strcmp(argv[1], "status") == 0)
        return act_status_cli_main(argc - 1, argv + 1);
    act_opts_t o;
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    kp_log_level_t level;
    if (kp_log_level_parse(o.log_level, &level) != 0) {
        fprintf(stderr, "activator: log level \"%s\": expected debug, info, warn or error\n", o.log_level);
        return 2;
    }
    kp_log_format_t format;
    if (kp_log_format_parse(o.log_format, &format) != 0) {
        fprintf(stderr, "activator: --log-format \"%s\" (or KP_LOG_FORMAT): expected json or text\n",
                o.log_format);
        return 2;
    }
    kp_log_init("activator", level);
    kp_log_set_format(format);
    signal(SIGPIPE, SIG_IGN);
    char err[1024];
    kp_activator_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg || kp_activator_config_load_file(o.config, cfg, err, sizeof err) != 0) {
        fprintf(stderr, "activator: %s\n", cfg ? err : "out of memory");
        free(cfg);
        return 1;
    }
    act.loop = uv_default_loop();
    act.max_held = o.max_held;
    struct rlimit files;
    const char *cgroup_root = getenv("KP_CGROUP_ROOT");
    act_capacity_init(&act.capacity, (size_t)o.max_requests,
                      kp_memory_limit_read(cgroup_root && *cgroup_root ? cgroup_root : NULL),
                      getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
                          ? (uint64_t)files.rlim_cur
                          : 0);
    act.n_activators = 1;
    act.activator_index = -1;
    kp_rng_init(&act.rng);
    act.identity = o.identity && *o.identity ? o.identity : "";
    act.backend = make_backend(&o, &act_revisions_backend_events);
    act.config_path = o.config;
    if (act.backend && o.knative) {
        knative = start_knative(&o);
        if (!knative) {
            fprintf(stderr, "activator: out of memory\n");
            return 1;
        }
        act.apply_file_config = apply_file_config;
        act.apply_file_config_ctx = knative;
        kn_controller_set_leader(knative, act.backend->writes_scale(act.backend));
    }
    if (!act.backend || (knative ? kn_controller_set_file_config(knative, cfg)
                                 : act_revisions_apply(&act, cfg)) != 0) {
        fprintf(stderr, "activator: out of memory\n");
        return 1;
    }
    if (cfg->n_services == 0 && !knative)
        kp_log_kv(KP_LOG_WARN,
                  "the config lists no services: every request gets 404 until the file lists "
                  "one (it is re-read when it changes)",
                  "file", o.config, NULL);
    act_config_watch_start(&act, o.config);

    kp_http_server_opts_t sopts;
    kp_http_server_opts_default(&sopts);
    sopts.reuse_port = o.reuse_port;
    const char *max_conns_env = getenv("KP_HTTP_MAX_CONNECTIONS");
    if (!max_conns_env || !*max_conns_env) {
        sopts.max_connections = act_capacity_connections(&act.capacity);
        act.capacity.bounds_server = 1;
    }
    /* Both traffic listeners draw on the one budget (capacity.h). */
    act.capacity.clients.max_connections = sopts.max_connections;
    sopts.budget = &act.capacity.clients;
    kp_log_fields(KP_LOG_INFO, "capacity", KP_LOG_INT("max_requests", (long long)act.capacity.max_requests),
                  KP_LOG_STR("max_requests_from", act.capacity.max_requests_source),
                  KP_LOG_INT("max_connections", (long long)sopts.max_connections),
                  KP_LOG_INT("memory_limit_bytes", (long long)act.capacity.memory.bytes),
                  KP_LOG_STR("memory_limit_from", act.capacity.memory.source));
    int rc = kp_http_server_init(&act.server, act.loop, o.listen_addr.ip, o.listen_addr.port,
                                 &sopts, act_on_request, &act);
    if (rc != 0) {
        fprintf(stderr, "activator: cannot listen on %s (--listen): %s\n", o.listen, uv_strerror(rc));
        return 1;
    }
    if (o.listen_h2c) {
        rc = kp_http_server_init(&h2c_server, act.loop, o.listen_h2c_addr.ip, o.listen_h2c_addr.port,
                                 &sopts, act_on_request, &act);
        if (rc != 0) {
            fprintf(stderr, "activator: cannot listen on %s (%s): %s\n", o.listen_h2c,
                    o.listen_h2c_src, uv_strerror(rc));
            return 1;
        }
        h2c_listening = 1;
    }
    if (act_observe_init(&act, o.admin_addr.ip, o.admin_addr.port) != 0)
        return 1;
    if (strcmp(o.backend, "kubernetes") == 0 && act.identity[0] && o.activator_service &&
        *o.activator_service)
        act_peers_start(&act, o.admin_addr.port);
    uv_signal_init(act.loop, &sigterm_handle);
    uv_signal_init(act.loop, &sigint_handle);
    uv_signal_start(&sigterm_handle, on_signal, SIGTERM);
    uv_signal_start(&sigint_handle, on_signal, SIGINT);
    kp_log(KP_LOG_INFO, "activator %s listening on %s%s%s (admin %s), %zu revision(s), backend %s",
           KP_VERSION, o.listen, o.listen_h2c ? " and " : "", o.listen_h2c ? o.listen_h2c : "",
           o.admin, act.n_revisions, o.backend);
    signal_ready(o.ready_fd);
    kp_mem_trim_start(act.loop);
    uv_run(act.loop, UV_RUN_DEFAULT);
    uv_loop_close(act.loop);
    act_revisions_free(&act);
    kp_kube_config_free(&kube_cfg);
    return 0;
}
