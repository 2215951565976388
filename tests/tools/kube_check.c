/* kube_check: drives common/kube/client.h against an API server (the e2e
 * tests' fake one, or kubectl proxy) from the command line.
 *   kube_check --api URL [--token-file F] [--ca-file F] CMD ...
 *   kube_check CMD ...    (no --api: the in-cluster configuration, as a pod;
 *                          KP_KUBE_SA_DIR points at the service-account files)
 *     get-scale NS NAME                 prints replicas=N
 *     patch-scale NS NAME N             prints replicas=N
 *     watch NS SVC SECONDS              one line per change of the endpoints
 *     elect NS NAME ID DURATION SECONDS leader=1 / leader=0 on each change
 * Exit 0 on success, 1 on an API error, 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/client.h"
#include "base/log.h"

typedef struct app {
    uv_loop_t *loop;
    kp_kube_t *kube;
    uv_timer_t deadline;
    int exit_code;
    int closed;
} app_t;

static void usage(void)
{
    fprintf(stderr, "usage: kube_check [--api URL [--token-file F] [--ca-file F]] CMD ...\n"
                    "  (without --api: in-cluster configuration)\n"
                    "  get-scale NS NAME\n"
                    "  patch-scale NS NAME N\n"
                    "  watch NS SVC SECONDS\n"
                    "  elect NS NAME ID DURATION SECONDS\n");
    exit(2);
}

static int parse_int(const char *s, const char *what, int min)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < min || v > 1000000) {
        fprintf(stderr, "kube_check: %s=\"%s\": not an integer >= %d\n", what, s, min);
        exit(2);
    }
    return (int)v;
}

static void on_kube_closed(void *ctx)
{
    app_t *a = ctx;
    a->closed = 1;
}

static void on_deadline_closed(uv_handle_t *h) {}

static void finish(app_t *a, int code)
{
    if (a->kube) {
        a->exit_code = code;
        kp_kube_close(a->kube, on_kube_closed, a);
        a->kube = NULL;
        if (!uv_is_closing((uv_handle_t *)&a->deadline))
            uv_close((uv_handle_t *)&a->deadline, on_deadline_closed);
    }
}

static void on_scale(void *ctx, int status, int replicas, const char *message)
{
    app_t *a = ctx;
    if (status / 100 == 2 && replicas >= 0) {
        printf("replicas=%d\n", replicas);
        finish(a, 0);
    } else if (status == 0) {
        fprintf(stderr, "kube_check: cannot reach the API: %s\n", message);
        finish(a, 1);
    } else {
        fprintf(stderr, "kube_check: HTTP %d: %s\n", status, message);
        finish(a, 1);
    }
    fflush(stdout);
}

static void on_endpoints(void *ctx, const kp_kube_endpoint_t *eps, size_t n)
{
    printf("endpoints n=%zu", n);
    for (size_t i = 0; i < n; i++) {
        printf(" %s:%d ready=%d", eps[i].ip, eps[i].port, eps[i].ready);
        if (eps[i].pod[0])
            printf(" pod=%s", eps[i].pod);
    }
    printf("\n");
    fflush(stdout);
}

static void on_leader(void *ctx, int is_leader)
{
    printf("leader=%d\n", is_leader);
    fflush(stdout);
}

static void on_deadline(uv_timer_t *t)
{
    finish(t->data, 0);
}

int main(int argc, char **argv)
{
    kp_kube_config_t cfg = {0};
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--api") == 0)
            cfg.api_url = argv[i + 1];
        else if (strcmp(argv[i], "--token-file") == 0)
            cfg.token_file = argv[i + 1];
        else if (strcmp(argv[i], "--ca-file") == 0)
            cfg.ca_file = argv[i + 1];
        else
            usage();
    }
    if (i >= argc)
        usage();
    kp_kube_config_t in_cluster = {0};
    if (!cfg.api_url) {
        char err[512];
        if (kp_kube_config_in_cluster(&in_cluster, err, sizeof(err)) != 0) {
            fprintf(stderr, "kube_check: no --api and no in-cluster configuration: %s\n", err);
            return 2;
        }
        cfg = in_cluster;
    }
    const char *cmd = argv[i];
    char **args = argv + i + 1;
    int nargs = argc - i - 1;

    kp_log_init("kube_check", getenv("KP_LOG_DEBUG") ? KP_LOG_DEBUG : KP_LOG_INFO);
    app_t a = {.loop = uv_default_loop(), .exit_code = 1};
    a.kube = kp_kube_new(a.loop, &cfg);
    kp_kube_config_free(&in_cluster);
    if (!a.kube) {
        fprintf(stderr, "kube_check: cannot create the client\n");
        return 1;
    }
    uv_timer_init(a.loop, &a.deadline);
    a.deadline.data = &a;

    int rc = 0;
    if (strcmp(cmd, "get-scale") == 0 && nargs == 2) {
        rc = kp_kube_get_scale(a.kube, args[0], args[1], on_scale, &a);
    } else if (strcmp(cmd, "patch-scale") == 0 && nargs == 3) {
        rc =
            kp_kube_patch_scale(a.kube, args[0], args[1], parse_int(args[2], "N", 0), on_scale, &a);
    } else if (strcmp(cmd, "watch") == 0 && nargs == 3) {
        int secs = parse_int(args[2], "SECONDS", 0);
        rc = kp_kube_watch_endpoints(a.kube, args[0], args[1], on_endpoints, &a) ? 0 : -1;
        uv_timer_start(&a.deadline, on_deadline, (uint64_t)secs * 1000, 0);
    } else if (strcmp(cmd, "elect") == 0 && nargs == 5) {
        int dur = parse_int(args[3], "DURATION", 1);
        int secs = parse_int(args[4], "SECONDS", 0);
        rc = kp_kube_elect(a.kube, args[0], args[1], args[2], dur, on_leader, &a) ? 0 : -1;
        uv_timer_start(&a.deadline, on_deadline, (uint64_t)secs * 1000, 0);
    } else {
        usage();
    }
    if (rc != 0) {
        fprintf(stderr, "kube_check: %s: invalid arguments (names must be DNS-1123)\n", cmd);
        finish(&a, 2);
    }
    uv_run(a.loop, UV_RUN_DEFAULT);
    if (!a.closed) {
        fprintf(stderr, "kube_check: the client did not close\n");
        return 1;
    }
    uv_loop_close(a.loop);
    return a.exit_code;
}
