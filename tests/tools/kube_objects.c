/* kube_objects: drives common/kube/object.h, informer.h and the shared
 * EndpointSlice watches against an API server (the e2e tests' fake one),
 * printing what the client hands back as JSON lines.
 *   kube_objects --api URL [--token-file F] [--ca-file F] CMD ...
 * RES is PLURAL[.GROUP]/VERSION: "leases.coordination.k8s.io/v1", "pods/v1".
 *   get RES NS NAME | delete RES NS NAME
 *   create RES NS JSON | replace RES NS JSON | replace-status RES NS JSON
 *   patch RES NS NAME JSON          (a JSON merge patch)
 *       one line {"status":N,"object":...,"message":"..."}; exit 0 on 2xx.
 *       --close-at-once (before CMD): the client closes right after the
 *       call starts; the callback must still run once, with status 0.
 *   inform RES NS SELECTOR SECONDS [STOP_ON_NAME]
 *       {"event":"ADDED","name":..,"rv":..,"old_rv":..,"cached":..,"count":N}
 *       per event, {"synced":N} after each (re)list; STOP_ON_NAME: the
 *       informer is stopped from inside the callback of that name's event.
 *   endpoints NS SECONDS SVC...
 *       {"service":..,"endpoints":[{"ip":..,"port":..,"ready":..,"pod":..}]}
 *       per delivery; SIGUSR1 stops every watcher (the client stays open
 *       until SECONDS); SIGUSR2 adds one more watcher of the first SVC
 *       (its lines say "late": true). A SVC written "stop:NAME" watches
 *       NAME and stops itself from inside its first callback.
 * SIGTERM ends a run early (exit 0).
 * Exit 0 on success, 1 on an API error, 2 on a usage error, 3 when a
 * callback broke its contract (ran twice, or from inside its call). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/client.h"
#include "kube/informer.h"
#include "kube/object.h"
#include "base/log.h"

#define MAX_WATCHERS 4096

typedef struct app {
    uv_loop_t *loop;
    kp_kube_t *kube;
    uv_timer_t deadline;
    uv_signal_t term; /* SIGTERM ends the run early, as the deadline does */
    uv_signal_t usr1; /* SIGUSR1 stops the endpoint watchers */
    int exit_code;
    int closed;
    int in_call;  /* inside the call that starts a request */
    int answered; /* object callbacks run */
    kp_kube_informer_t *inf;
    const char *stop_on;
    struct watcher {
        kp_kube_watch_t *w;
        const char *service;
        int stop_self, late;
    } watchers[MAX_WATCHERS];
    int n_watches;
    const char *ns;
    uv_signal_t usr2; /* SIGUSR2 adds a late watcher */
    char group[256], plural[64], version[32];
    kp_kube_resource_t res;
} app_t;

static void usage(void)
{
    fprintf(stderr, "usage: kube_objects --api URL [--token-file F] [--ca-file F] "
                    "[--close-at-once] CMD ...\n"
                    "  get|delete RES NS NAME\n"
                    "  create|replace|replace-status RES NS JSON\n"
                    "  patch RES NS NAME JSON\n"
                    "  inform RES NS SELECTOR SECONDS [STOP_ON_NAME]\n"
                    "  endpoints NS SECONDS SVC...\n"
                    "  RES: PLURAL[.GROUP]/VERSION\n");
    exit(2);
}

static int parse_int(const char *s, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 1000000) {
        fprintf(stderr, "kube_objects: %s=\"%s\": not an integer >= 0\n", what, s);
        exit(2);
    }
    return (int)v;
}

static void parse_resource(app_t *a, const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash || !slash[1] || (size_t)(slash - s) >= sizeof(a->group)) {
        fprintf(stderr, "kube_objects: RES=\"%s\": expected PLURAL[.GROUP]/VERSION\n", s);
        exit(2);
    }
    char head[256];
    memcpy(head, s, (size_t)(slash - s));
    head[slash - s] = '\0';
    char *dot = strchr(head, '.');
    snprintf(a->group, sizeof(a->group), "%s", dot ? dot + 1 : "");
    if (dot)
        *dot = '\0';
    if (strlen(head) >= sizeof(a->plural) || strlen(slash + 1) >= sizeof(a->version)) {
        fprintf(stderr, "kube_objects: RES=\"%s\": too long\n", s);
        exit(2);
    }
    memcpy(a->plural, head, strlen(head) + 1);
    snprintf(a->version, sizeof(a->version), "%s", slash + 1);
    a->res = (kp_kube_resource_t){a->group, a->version, a->plural, "Object"};
}

static cJSON *parse_json(const char *s)
{
    cJSON *j = cJSON_Parse(s);
    if (!j) {
        fprintf(stderr, "kube_objects: not JSON: %s\n", s);
        exit(2);
    }
    return j;
}

static void on_kube_closed(void *ctx)
{
    ((app_t *)ctx)->closed = 1;
}

static void on_handle_closed(uv_handle_t *h) {}

static void finish(app_t *a, int code)
{
    if (!a->kube)
        return;
    kp_kube_t *k = a->kube;
    a->kube = NULL; /* the close may run an answer's callback, which ends here again */
    a->exit_code = code;
    kp_kube_close(k, on_kube_closed, a);
    uv_close((uv_handle_t *)&a->deadline, on_handle_closed);
    uv_close((uv_handle_t *)&a->term, on_handle_closed);
    uv_close((uv_handle_t *)&a->usr1, on_handle_closed);
    uv_close((uv_handle_t *)&a->usr2, on_handle_closed);
}

static void print_line(cJSON *line)
{
    char *s = cJSON_PrintUnformatted(line);
    printf("%s\n", s ? s : "{}");
    fflush(stdout);
    free(s);
    cJSON_Delete(line);
}

static void on_object(void *ctx, int status, const cJSON *obj, const char *message)
{
    app_t *a = ctx;
    if (a->in_call || a->answered++) {
        fprintf(stderr, "kube_objects: the callback ran %s\n",
                a->in_call ? "from inside the call" : "twice");
        exit(3);
    }
    cJSON *line = cJSON_CreateObject();
    cJSON_AddNumberToObject(line, "status", status);
    cJSON_AddItemToObject(line, "object", obj ? cJSON_Duplicate(obj, 1) : cJSON_CreateNull());
    cJSON_AddStringToObject(line, "message", message ? message : "(null)");
    print_line(line);
    finish(a, status / 100 == 2 ? 0 : 1);
}

static const char *meta_rv(const cJSON *obj)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *rv = cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion");
    return cJSON_IsString(rv) ? rv->valuestring : "";
}

static const char *meta_name(const cJSON *obj)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(meta, "name");
    return cJSON_IsString(n) ? n->valuestring : "";
}

static void on_event(void *ctx, kp_kube_informer_event_t ev, const cJSON *obj, const cJSON *old)
{
    app_t *a = ctx;
    static const char *names[] = {"ADDED", "UPDATED", "DELETED"};
    const char *name = meta_name(obj);
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "event", names[ev]);
    cJSON_AddStringToObject(line, "name", name);
    cJSON_AddStringToObject(line, "rv", meta_rv(obj));
    if (old)
        cJSON_AddStringToObject(line, "old_rv", meta_rv(old));
    /* The cache is updated before the event: the object is there (or,
     * for DELETED, gone) when the callback runs. */
    cJSON_AddBoolToObject(line, "cached", kp_kube_informer_get(a->inf, name) != NULL);
    cJSON_AddNumberToObject(line, "count", (double)kp_kube_informer_count(a->inf));
    cJSON_AddBoolToObject(
        line, "managed_fields",
        cJSON_HasObjectItem(cJSON_GetObjectItem(obj, "metadata"), "managedFields"));
    print_line(line);
    if (a->stop_on && strcmp(a->stop_on, name) == 0) {
        kp_kube_informer_stop(a->inf);
        printf("{\"stopped\":true}\n");
        fflush(stdout);
    }
}

static void count_one(void *ctx, const cJSON *obj)
{
    (*(size_t *)ctx)++;
}

static void on_synced(void *ctx)
{
    app_t *a = ctx;
    size_t walked = 0;
    kp_kube_informer_each(a->inf, count_one, &walked);
    cJSON *line = cJSON_CreateObject();
    cJSON_AddNumberToObject(line, "synced", (double)kp_kube_informer_count(a->inf));
    cJSON_AddNumberToObject(line, "walked", (double)walked);
    cJSON_AddBoolToObject(line, "flag", kp_kube_informer_synced(a->inf));
    print_line(line);
}

static void on_endpoints(void *ctx, const kp_kube_endpoint_t *eps, size_t n)
{
    struct watcher *w = ctx;
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "service", w->service);
    if (w->late)
        cJSON_AddBoolToObject(line, "late", 1);
    if (w->stop_self) {
        kp_kube_watch_stop(w->w);
        w->w = NULL;
        cJSON_AddBoolToObject(line, "stopped_itself", 1);
    }
    cJSON *arr = cJSON_AddArrayToObject(line, "endpoints");
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "ip", eps[i].ip);
        cJSON_AddNumberToObject(e, "port", eps[i].port);
        cJSON_AddBoolToObject(e, "ready", eps[i].ready);
        cJSON_AddStringToObject(e, "pod", eps[i].pod);
        cJSON_AddItemToArray(arr, e);
    }
    print_line(line);
}

static void on_deadline(uv_timer_t *t)
{
    finish(t->data, 0);
}

static void on_late_watcher(uv_signal_t *s, int signum)
{
    app_t *a = s->data;
    if (!a->kube || a->n_watches == MAX_WATCHERS)
        return;
    struct watcher *w = &a->watchers[a->n_watches++];
    w->service = a->watchers[0].service;
    w->late = 1;
    w->w = kp_kube_watch_endpoints(a->kube, a->ns, w->service, on_endpoints, w);
}

static void on_term(uv_signal_t *s, int signum)
{
    finish(s->data, 0);
}

static void on_stop_watchers(uv_signal_t *s, int signum)
{
    app_t *a = s->data;
    for (int i = 0; i < a->n_watches; i++) {
        kp_kube_watch_stop(a->watchers[i].w);
        a->watchers[i].w = NULL;
    }
    printf("{\"watchers_stopped\":true}\n");
    fflush(stdout);
}

static int run_object(app_t *a, const char *cmd, char **args, int nargs)
{
    if (nargs < 3)
        usage();
    parse_resource(a, args[0]);
    const char *ns = args[1];
    int rc;
    a->in_call = 1;
    if (strcmp(cmd, "get") == 0 && nargs == 3) {
        rc = kp_kube_object_get(a->kube, &a->res, ns, args[2], on_object, a);
    } else if (strcmp(cmd, "delete") == 0 && nargs == 3) {
        rc = kp_kube_object_delete(a->kube, &a->res, ns, args[2], on_object, a);
    } else if (nargs == 3 && (strcmp(cmd, "create") == 0 || strcmp(cmd, "replace") == 0 ||
                              strcmp(cmd, "replace-status") == 0)) {
        cJSON *obj = parse_json(args[2]);
        if (strcmp(cmd, "create") == 0)
            rc = kp_kube_object_create(a->kube, &a->res, ns, obj, on_object, a);
        else if (strcmp(cmd, "replace") == 0)
            rc = kp_kube_object_replace(a->kube, &a->res, ns, obj, on_object, a);
        else
            rc = kp_kube_object_replace_status(a->kube, &a->res, ns, obj, on_object, a);
        cJSON_Delete(obj);
    } else if (strcmp(cmd, "patch") == 0 && nargs == 4) {
        cJSON *patch = parse_json(args[3]);
        rc = kp_kube_object_merge_patch(a->kube, &a->res, ns, args[2], patch, on_object, a);
        cJSON_Delete(patch);
    } else {
        usage();
        return -1;
    }
    a->in_call = 0;
    return rc;
}

int main(int argc, char **argv)
{
    kp_kube_config_t cfg = {0};
    int close_at_once = 0;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--close-at-once") == 0) {
            close_at_once = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--api") == 0)
            cfg.api_url = argv[++i];
        else if (strcmp(argv[i], "--token-file") == 0)
            cfg.token_file = argv[++i];
        else if (strcmp(argv[i], "--ca-file") == 0)
            cfg.ca_file = argv[++i];
        else
            usage();
    }
    if (i >= argc || !cfg.api_url)
        usage();
    const char *cmd = argv[i];
    char **args = argv + i + 1;
    int nargs = argc - i - 1;

    kp_log_init("kube_objects", getenv("KP_LOG_DEBUG") ? KP_LOG_DEBUG : KP_LOG_INFO);
    static app_t a;
    a.loop = uv_default_loop();
    a.exit_code = 1;
    a.kube = kp_kube_new(a.loop, &cfg);
    if (!a.kube) {
        fprintf(stderr, "kube_objects: cannot create the client\n");
        return 1;
    }
    uv_timer_init(a.loop, &a.deadline);
    a.deadline.data = &a;
    uv_signal_init(a.loop, &a.term);
    a.term.data = &a;
    uv_signal_start(&a.term, on_term, SIGTERM);
    uv_signal_init(a.loop, &a.usr1);
    a.usr1.data = &a;
    uv_signal_start(&a.usr1, on_stop_watchers, SIGUSR1);
    uv_signal_init(a.loop, &a.usr2);
    a.usr2.data = &a;
    uv_signal_start(&a.usr2, on_late_watcher, SIGUSR2);

    int rc = 0;
    if (strcmp(cmd, "inform") == 0 && (nargs == 4 || nargs == 5)) {
        parse_resource(&a, args[0]);
        int secs = parse_int(args[3], "SECONDS");
        a.stop_on = nargs == 5 ? args[4] : NULL;
        static const kp_kube_informer_ops_t ops = {.on_event = on_event, .on_synced = on_synced};
        a.inf = kp_kube_informer_start(a.kube, &a.res, args[1], args[2], &ops, &a);
        rc = a.inf ? 0 : -1;
        uv_timer_start(&a.deadline, on_deadline, (uint64_t)secs * 1000, 0);
    } else if (strcmp(cmd, "endpoints") == 0 && nargs >= 3) {
        int secs = parse_int(args[1], "SECONDS");
        a.ns = args[0];
        for (int s = 2; s < nargs && rc == 0; s++) {
            if (a.n_watches == MAX_WATCHERS)
                usage();
            struct watcher *w = &a.watchers[a.n_watches++];
            w->stop_self = strncmp(args[s], "stop:", 5) == 0;
            w->service = w->stop_self ? args[s] + 5 : args[s];
            w->w = kp_kube_watch_endpoints(a.kube, args[0], w->service, on_endpoints, w);
            rc = w->w ? 0 : -1;
        }
        uv_timer_start(&a.deadline, on_deadline, (uint64_t)secs * 1000, 0);
    } else {
        rc = run_object(&a, cmd, args, nargs);
        if (rc == 0 && close_at_once)
            finish(&a, 1);
    }
    if (rc != 0) {
        fprintf(stderr, "kube_objects: %s: the call did not start (invalid arguments?)\n", cmd);
        finish(&a, 2);
    }
    uv_run(a.loop, UV_RUN_DEFAULT);
    if (!a.closed) {
        fprintf(stderr, "kube_objects: the client did not close\n");
        return 1;
    }
    if (close_at_once && a.answered != 1) {
        fprintf(stderr, "kube_objects: the callback ran %d times after the close\n", a.answered);
        return 3;
    }
    uv_loop_close(a.loop);
    return a.exit_code;
}
