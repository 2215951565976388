/* The local backend: each pod is an app process plus a queue-proxy process
 * on this machine, given the environment Kubernetes and Knative would give
 * them, on loopback ports of their own. Pods are started and stopped to
 * follow the desired count, drained on the way out (queue-proxy first, then
 * the app) and replaced, with a crash-loop backoff, when they die.
 *
 * Pods live and die with the activator. Each process runs in a session of
 * its own (setsid), so what a terminal sends its foreground process group
 * (Ctrl-C, Ctrl-\, Ctrl-Z, hang-up) reaches only the activator: on Ctrl-C
 * it drains them. A new session rather than a process group in the
 * terminal's session, because a background group that writes to the
 * terminal is stopped by SIGTTOU under `stty tostop`, and has the terminal
 * to read from. And each is started through pod_exec.c, which sets
 * PR_SET_PDEATHSIG: an activator that dies without stopping its pods
 * (SIGKILL, Ctrl-\) takes them with it, and leaves no orphan holding its
 * ports.
 *
 * The app's stderr comes through a pipe (pod_stderr.c) and goes on to the
 * activator's own, line by line: an app that exits before its pod was
 * ever ready is reported with ExitCode{N} and its last line there, and the
 * activator fails the revision's requests at once with it. A missing
 * program is found before anything is started. Either way the pod is
 * started again after the crash-loop back-off, for as long as the count
 * asks for it. */
#include "local.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "pod_exec.h"
#include "pod_stderr.h"

/* A process that outlives its SIGTERM by this much gets SIGKILL. */
#define LOCAL_STOP_GRACE_MS 10000
/* A pod that dies younger than this counts towards a crash loop. */
#define LOCAL_CRASH_WINDOW_MS 10000
#define LOCAL_BACKOFF_FIRST_MS 100
#define LOCAL_BACKOFF_MAX_MS 5000
/* Queue-proxy requires it; it accepts the port but serves no TLS yet, so
 * nothing binds it and Knative's default is as good as any. */
#define LOCAL_TLS_PORT 8112

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

enum { PORT_APP, PORT_SERVING, PORT_ADMIN, PORT_METRICS, PORT_USER_METRICS, PORT_COUNT };

typedef enum {
    POD_RUNNING,  /* both processes up (or at least not yet seen to exit) */
    POD_DRAINING, /* queue-proxy got SIGTERM; the app waits for it to exit */
    POD_STOPPING, /* queue-proxy gone; the app got SIGTERM */
    POD_CLOSING,  /* both gone; handles closing, freed on the last close */
} local_pod_state_t;

typedef struct local_backend local_backend_t;
typedef struct local_pod local_pod_t;

/* Owned by its revision's list; freed in pod_on_close once the app, the
 * queue-proxy and the kill timer are all closed. */
struct local_pod {
    act_backend_revision_t *rev;
    local_pod_t *prev, *next; /* oldest first */
    local_pod_state_t state;
    char id[64];
    int ports[PORT_COUNT];
    uv_process_t app, qp;
    uv_timer_t kill_timer;
    unsigned app_spawned : 1; /* uv_spawn called: the handle needs uv_close */
    unsigned qp_spawned : 1;
    unsigned app_alive : 1; /* running, exit not yet seen */
    unsigned qp_alive : 1;
    unsigned err_open : 1; /* app_err initialised: the pipe needs uv_close */
    act_pod_stderr_t app_err;
    void *handle; /* pod_added's answer: pod_removed still owed while set */
    int pending_closes;
    uint64_t started_ms;
};

/* Owned by the backend; freed with it, or once removed and its last pod
 * is closed. spec and rev_ctx belong to the activator until
 * remove_revision; after it, spec is gone_spec (a name for the logs of
 * pods still stopping). */
struct act_backend_revision {
    local_backend_t *b;
    act_backend_revision_t *next;
    const kp_revision_spec_t *spec;
    int removed;
    kp_revision_spec_t gone_spec;
    char gone_name[256];
    void *rev_ctx;
    int desired;
    unsigned next_pod_n;
    local_pod_t *head, *tail;
    uv_timer_t restart_timer; /* crash-loop backoff: no start while active */
    uint64_t backoff_ms;
};

struct local_backend {
    act_backend_t base; /* first: the activator holds &base */
    uv_loop_t *loop;
    const act_backend_events_t *events;
    act_local_opts_t opts;
    char qp_path[PATH_MAX];
    char app_path[PATH_MAX];
    char self_path[PATH_MAX]; /* our own binary, pod_exec's argv[0] */
    char self_pid[16];        /* pod_exec's ACTIVATOR_PID */
    act_backend_revision_t *revs;
    int next_port;
    /* close(): what is still alive; on_closed runs when both reach 0. */
    int closing;
    int n_pods;
    int n_handles;
    uv_timer_t anchor; /* never started; closed by close() so on_closed is always async */
    void (*on_closed)(void *ctx);
    void *on_closed_ctx;
};

static void rev_reconcile(act_backend_revision_t *rev);

/* ---- environment ------------------------------------------------------ */

typedef struct env_list {
    char **v; /* NULL-terminated */
    size_t n, cap;
    int failed;
} env_list_t;

static void env_addf(env_list_t *e, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void env_addf(env_list_t *e, const char *key, const char *fmt, ...)
{
    if (e->failed)
        return;
    if (e->n + 2 > e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 32;
        char **v = realloc(e->v, cap * sizeof *v);
        if (!v) {
            e->failed = 1;
            return;
        }
        e->v = v;
        e->cap = cap;
    }
    /* One allocation, "KEY=value": measure, then write. */
    size_t klen = strlen(key);
    va_list ap;
    va_start(ap, fmt);
    int vlen = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *kv = vlen < 0 ? NULL : malloc(klen + 1 + (size_t)vlen + 1);
    if (!kv) {
        e->failed = 1;
        return;
    }
    memcpy(kv, key, klen);
    kv[klen] = '=';
    va_start(ap, fmt);
    vsnprintf(kv + klen + 1, (size_t)vlen + 1, fmt, ap);
    va_end(ap);
    e->v[e->n++] = kv;
    e->v[e->n] = NULL;
}

static void env_passthrough(env_list_t *e, const char *key)
{
    const char *v = getenv(key);
    if (v)
        env_addf(e, key, "%s", v);
}

static void env_free(env_list_t *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
    memset(e, 0, sizeof *e);
}

/* Knative reserves these in the user container; a revision's env may not
 * override what the platform sets. */
static int env_reserved(const char *key)
{
    static const char *const reserved[] = {"PORT", "HOST", "K_REVISION", "K_CONFIGURATION",
                                           "K_SERVICE"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcmp(key, reserved[i]) == 0)
            return 1;
    return 0;
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

static void app_env(const local_backend_t *b, const local_pod_t *pod, env_list_t *e)
{
    const kp_revision_spec_t *spec = pod->rev->spec;
    env_passthrough(e, "PATH");
    env_passthrough(e, "HOME");
    env_addf(e, "PORT", "%d", pod->ports[PORT_APP]);
    env_addf(e, "HOST", "%s", b->opts.pod_ip);
    env_addf(e, "K_REVISION", "%s", str_or_empty(spec->name));
    env_addf(e, "K_CONFIGURATION", "%s", str_or_empty(spec->service));
    env_addf(e, "K_SERVICE", "%s", str_or_empty(spec->service));
    if (b->opts.log_format)
        env_addf(e, KP_LOG_FORMAT_ENV, "%s", b->opts.log_format);
    for (size_t i = 0; i < spec->n_env; i++) {
        const kp_kv_t *kv = &spec->env[i];
        if (!kv->key || !*kv->key)
            continue;
        if (env_reserved(kv->key)) {
            if (pod->rev->next_pod_n == 1) /* once per revision */
                kp_log_kv(KP_LOG_WARN, "revision env variable is reserved; ignored", "revision",
                          spec->name, "variable", kv->key, NULL);
            continue;
        }
        env_addf(e, kv->key, "%s", str_or_empty(kv->value));
    }
}

static void qp_env(const local_backend_t *b, const local_pod_t *pod, env_list_t *e)
{
    const kp_revision_spec_t *spec = pod->rev->spec;
    const char *ip = b->opts.pod_ip;
    env_passthrough(e, "PATH");
    env_passthrough(e, "HOME");
    env_addf(e, "SERVING_NAMESPACE", "%s", str_or_empty(spec->namespace_));
    env_addf(e, "SERVING_CONFIGURATION", "%s", str_or_empty(spec->service));
    env_addf(e, "SERVING_REVISION", "%s", str_or_empty(spec->name));
    env_addf(e, "SERVING_SERVICE", "%s", str_or_empty(spec->service));
    env_addf(e, "SERVING_POD", "%s", pod->id);
    env_addf(e, "SERVING_POD_IP", "%s", ip);
    env_addf(e, "QUEUE_SERVING_PORT", "%d", pod->ports[PORT_SERVING]);
    env_addf(e, "QUEUE_SERVING_TLS_PORT", "%d", LOCAL_TLS_PORT);
    env_addf(e, "USER_PORT", "%d", pod->ports[PORT_APP]);
    env_addf(e, "KP_USER_HOST", "%s", ip);
    env_addf(e, "KP_ADMIN_PORT", "%d", pod->ports[PORT_ADMIN]);
    env_addf(e, "KP_METRICS_PORT", "%d", pod->ports[PORT_METRICS]);
    env_addf(e, "KP_USER_METRICS_PORT", "%d", pod->ports[PORT_USER_METRICS]);
    env_addf(e, "CONTAINER_CONCURRENCY", "%d",
             spec->container_concurrency > 0 ? spec->container_concurrency : 0);
    env_addf(e, "REVISION_TIMEOUT_SECONDS", "%d", spec->timeout_s > 0 ? spec->timeout_s : 0);
    env_addf(e, "REVISION_RESPONSE_START_TIMEOUT_SECONDS", "%d",
             spec->response_start_timeout_s > 0 ? spec->response_start_timeout_s : 0);
    env_addf(e, "REVISION_IDLE_TIMEOUT_SECONDS", "%d",
             spec->idle_timeout_s > 0 ? spec->idle_timeout_s : 0);
    /* No periodSeconds: Knative's aggressive probing, so readiness is
     * known within milliseconds of the app listening. */
    env_addf(e, "SERVING_READINESS_PROBE", "{\"tcpSocket\":{\"port\":%d,\"host\":\"%s\"}}",
             pod->ports[PORT_APP], ip);
    env_addf(e, "SERVING_LOGGING_CONFIG", "%s", "");
    env_addf(e, "SERVING_LOGGING_LEVEL", "%s", str_or_empty(b->opts.log_level));
    if (b->opts.log_format)
        env_addf(e, KP_LOG_FORMAT_ENV, "%s", b->opts.log_format);
    int quiet = b->opts.drain_quiet_period_ms > 0 ? b->opts.drain_quiet_period_ms : 0;
    env_addf(e, "KP_DRAIN_QUIET_PERIOD_SECONDS", "%d.%03d", quiet / 1000, quiet % 1000);
}

/* ---- ports ------------------------------------------------------------ */

static int port_held_by_pod(const local_backend_t *b, int port)
{
    for (const act_backend_revision_t *r = b->revs; r; r = r->next)
        for (const local_pod_t *p = r->head; p; p = p->next)
            for (int i = 0; i < PORT_COUNT; i++)
                if (p->ports[i] == port)
                    return 1;
    return 0;
}

/* The queue-proxy listens on 0.0.0.0 with SO_REUSEADDR (libuv's bind), so
 * test the same way: a port only in TIME_WAIT counts as free. 0, or the
 * errno of the failure. */
static int port_bind_error(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    int err = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : errno;
    close(fd);
    return err;
}

/* Ports come from a counter starting at first_port, below Linux's
 * ephemeral range (32768+), so the kernel does not hand one to an outgoing
 * connection between our check and the child's bind (which a bind-to-0
 * pick from the ephemeral range would risk). The counter never reuses a
 * port soon, and skips ports held by our live pods and, with a warning
 * that names them, ports another process holds. */
static int port_alloc(local_backend_t *b, int *out)
{
    int span = 65536 - b->opts.first_port;
    for (int tries = 0; tries < span; tries++) {
        int port = b->next_port++;
        if (b->next_port > 65535)
            b->next_port = b->opts.first_port;
        if (port_held_by_pod(b, port))
            continue;
        int err = port_bind_error(port);
        if (err == 0) {
            *out = port;
            return 0;
        }
        if (err != EADDRINUSE && err != EACCES)
            return -err; /* out of descriptors or memory: no port would do */
        kp_log_fields(KP_LOG_WARN, "pod port taken by another process; skipping it",
                      KP_LOG_INT("port", port), KP_LOG_STR("error", strerror(err)),
                      KP_LOG_STR("hint", "another activator's pods or another program holds it: "
                                         "stop it, or give each activator a --pod-port-base of "
                                         "its own"));
    }
    return UV_EADDRINUSE;
}

/* ---- pods ------------------------------------------------------------- */

static uint64_t now_ms(const local_backend_t *b)
{
    return uv_now(b->loop);
}

static void backend_maybe_finish(local_backend_t *b)
{
    if (!b->closing || b->n_pods > 0 || b->n_handles > 0)
        return;
    void (*cb)(void *) = b->on_closed;
    void *ctx = b->on_closed_ctx;
    for (act_backend_revision_t *r = b->revs, *next; r; r = next) {
        next = r->next;
        free(r);
    }
    free(b);
    kp_log(KP_LOG_INFO, "local backend closed: every pod stopped");
    if (cb)
        cb(ctx);
}

static void on_removed_rev_closed(uv_handle_t *h)
{
    act_backend_revision_t *rev = h->data;
    local_backend_t *b = rev->b;
    free(rev);
    b->n_handles--;
    backend_maybe_finish(b);
}

/* A removed revision whose last pod is closed. */
static void rev_free(act_backend_revision_t *rev)
{
    rev->restart_timer.data = rev;
    uv_close((uv_handle_t *)&rev->restart_timer, on_removed_rev_closed);
}

static void pod_on_close(uv_handle_t *h)
{
    local_pod_t *pod = h->data;
    if (--pod->pending_closes > 0)
        return;
    act_backend_revision_t *rev = pod->rev;
    local_backend_t *b = rev->b;
    if (pod->prev)
        pod->prev->next = pod->next;
    else
        rev->head = pod->next;
    if (pod->next)
        pod->next->prev = pod->prev;
    else
        rev->tail = pod->prev;
    free(pod);
    b->n_pods--;
    if (rev->removed && !rev->head)
        rev_free(rev);
    backend_maybe_finish(b);
}

static void pod_close(local_pod_t *pod)
{
    kp_log_kv(KP_LOG_INFO, "pod stopped", "revision", pod->rev->spec->name, "pod", pod->id, NULL);
    pod->state = POD_CLOSING;
    pod->pending_closes = 1;
    uv_close((uv_handle_t *)&pod->kill_timer, pod_on_close);
    if (pod->app_spawned) {
        pod->pending_closes++;
        uv_close((uv_handle_t *)&pod->app, pod_on_close);
    }
    if (pod->qp_spawned) {
        pod->pending_closes++;
        uv_close((uv_handle_t *)&pod->qp, pod_on_close);
    }
    if (pod->err_open) {
        pod->pending_closes++;
        uv_close((uv_handle_t *)&pod->app_err.pipe, pod_on_close);
    }
}

static void pod_signal(local_pod_t *pod, uv_process_t *p, int signum)
{
    int rc = uv_process_kill(p, signum);
    if (rc != 0 && rc != UV_ESRCH)
        kp_log(KP_LOG_WARN, "pod %s: cannot send signal %d to pid %d: %s", pod->id, signum, p->pid,
               uv_strerror(rc));
}

static void pod_on_kill_timer(uv_timer_t *t)
{
    local_pod_t *pod = container_of(t, local_pod_t, kill_timer);
    if (pod->state == POD_DRAINING && pod->qp_alive) {
        kp_log_kv(KP_LOG_WARN, "queue-proxy did not exit 10 s after SIGTERM; sending SIGKILL",
                  "revision", pod->rev->spec->name, "pod", pod->id, NULL);
        pod_signal(pod, &pod->qp, SIGKILL);
    } else if (pod->state == POD_STOPPING && pod->app_alive) {
        kp_log_kv(KP_LOG_WARN, "app did not exit 10 s after SIGTERM; sending SIGKILL", "revision",
                  pod->rev->spec->name, "pod", pod->id, NULL);
        pod_signal(pod, &pod->app, SIGKILL);
    }
}

/* Moves a stopping pod on once the process it waits for is gone: the app
 * is only told to stop after the queue-proxy, so in-flight requests finish. */
static void pod_step(local_pod_t *pod)
{
    if (pod->state == POD_DRAINING && !pod->qp_alive) {
        pod->state = POD_STOPPING;
        if (pod->app_alive) {
            pod_signal(pod, &pod->app, SIGTERM);
            uv_timer_start(&pod->kill_timer, pod_on_kill_timer, LOCAL_STOP_GRACE_MS, 0);
        }
    }
    if (pod->state == POD_STOPPING && !pod->app_alive)
        pod_close(pod);
}

/* Starts the stop sequence of a pod the activator may know: it hears
 * pod_removed before any signal is sent, so it routes nothing new there. */
static void pod_stop(local_pod_t *pod)
{
    if (pod->state != POD_RUNNING)
        return;
    local_backend_t *b = pod->rev->b;
    if (pod->handle) {
        void *handle = pod->handle;
        pod->handle = NULL;
        b->events->pod_removed(pod->rev->rev_ctx, handle);
    }
    pod->state = POD_DRAINING;
    if (pod->qp_alive) {
        pod_signal(pod, &pod->qp, SIGTERM);
        uv_timer_start(&pod->kill_timer, pod_on_kill_timer, LOCAL_STOP_GRACE_MS, 0);
    }
    pod_step(pod);
}

static void rev_on_restart_timer(uv_timer_t *t)
{
    rev_reconcile(container_of(t, act_backend_revision_t, restart_timer));
}

/* Tells the activator what went wrong, while the revision is still its. */
static void rev_report_failure(act_backend_revision_t *rev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void rev_report_failure(act_backend_revision_t *rev, const char *fmt, ...)
{
    if (rev->removed || rev->b->closing || !rev->b->events->revision_failed)
        return;
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    rev->b->events->revision_failed(rev->rev_ctx, reason);
}

/* Tells the activator a pod's app (or queue-proxy) could not start or
 * exited, in Knative's words; pod: the pod_added handle, or NULL. */
static void rev_report_pod_failed(act_backend_revision_t *rev, void *pod, const char *reason)
{
    if (rev->removed || rev->b->closing || !rev->b->events->pod_failed)
        return;
    rev->b->events->pod_failed(rev->rev_ctx, pod, reason);
}

/* Knative's reason for a container that exited: ExitCode{N} (128 + the
 * signal when killed, as the kubelet reports it) and the container's last
 * words, here its last line on stderr. */
static void exit_reason(char *out, size_t len, const char *who, int64_t exit_status,
                        int term_signal, const char *last_line)
{
    int code = term_signal ? 128 + term_signal : (int)exit_status;
    if (last_line && *last_line)
        snprintf(out, len, "%sExitCode%d: %s", who, code, last_line);
    else if (term_signal)
        snprintf(out, len, "%sExitCode%d: killed by signal %d (%s)", who, code, term_signal,
                 strsignal(term_signal));
    else
        snprintf(out, len, "%sExitCode%d: exit status %d", who, code, code);
}

/* A pod died or could not start: wait before replacing it when it happens
 * right after start, doubling the wait while it keeps happening. */
static void rev_note_failure(act_backend_revision_t *rev, uint64_t lived_ms)
{
    if (lived_ms >= LOCAL_CRASH_WINDOW_MS) {
        rev->backoff_ms = 0;
        return;
    }
    rev->backoff_ms = rev->backoff_ms ? rev->backoff_ms * 2 : LOCAL_BACKOFF_FIRST_MS;
    if (rev->backoff_ms > LOCAL_BACKOFF_MAX_MS)
        rev->backoff_ms = LOCAL_BACKOFF_MAX_MS;
    if (rev->b->closing)
        return;
    kp_log_fields(KP_LOG_INFO, "pod failed soon after start; delaying its replacement",
                  KP_LOG_STR("revision", rev->spec->name),
                  KP_LOG_INT("backoff_ms", rev->backoff_ms));
    uv_timer_start(&rev->restart_timer, rev_on_restart_timer, rev->backoff_ms, 0);
}

static void pod_on_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    local_pod_t *pod = p->data;
    int is_qp = p == &pod->qp;
    const char *what = is_qp ? "queue-proxy" : "app";
    if (is_qp)
        pod->qp_alive = 0;
    else
        pod->app_alive = 0;

    char status[48];
    if (term_signal)
        snprintf(status, sizeof status, "signal %d (%s)", term_signal, strsignal(term_signal));
    else
        snprintf(status, sizeof status, "exit status %lld", (long long)exit_status);

    if (pod->state == POD_RUNNING) {
        act_backend_revision_t *rev = pod->rev;
        uint64_t lived = now_ms(rev->b) - pod->started_ms;
        char reason[512];
        if (!is_qp && pod->err_open)
            act_pod_stderr_drain(&pod->app_err);
        exit_reason(reason, sizeof reason, is_qp ? "queue-proxy " : "", exit_status, term_signal,
                    is_qp || !pod->err_open ? NULL : pod->app_err.last);
        kp_log_fields(KP_LOG_WARN, "pod died", KP_LOG_STR("revision", rev->spec->name),
                      KP_LOG_STR("pod", pod->id), KP_LOG_STR("process", what),
                      KP_LOG_STR("status", status), KP_LOG_INT("lived_ms", lived));
        if (lived < LOCAL_CRASH_WINDOW_MS)
            rev_report_failure(rev, "pod %s failed to start: %s ended with %s after %llu ms",
                               pod->id, what, status, (unsigned long long)lived);
        else
            rev_report_failure(rev, "pod %s died: %s ended with %s after %llu s", pod->id, what,
                               status, (unsigned long long)(lived / 1000));
        rev_report_pod_failed(rev, pod->handle, reason); /* before pod_removed */
        pod_stop(pod); /* may close (and later free) the pod: no pod access below */
        rev_note_failure(rev, lived);
        rev_reconcile(rev);
        return;
    }
    kp_log_kv(KP_LOG_INFO, "pod process exited", "revision", pod->rev->spec->name, "pod", pod->id,
              "process", what, "status", status, NULL);
    /* The process the kill timer watched is gone; pod_step re-arms it
     * for the app when it tells the app to stop. */
    if ((pod->state == POD_DRAINING && is_qp) || (pod->state == POD_STOPPING && !is_qp))
        uv_timer_stop(&pod->kill_timer);
    pod_step(pod);
}

/* Starts args[0] with args through pod_exec (see pod_exec.h), in a session
 * of its own. */
static int pod_spawn(local_pod_t *pod, uv_process_t *proc, char **args, env_list_t *env,
                     uv_pipe_t *err_pipe)
{
    local_backend_t *b = pod->rev->b;
    size_t argc = 0;
    while (args[argc])
        argc++;
    char **exec_args = calloc(argc + 4, sizeof *exec_args);
    if (!exec_args)
        return UV_ENOMEM;
    exec_args[0] = b->self_path;
    exec_args[1] = ACT_POD_EXEC_FLAG;
    exec_args[2] = b->self_pid;
    memcpy(exec_args + 3, args, argc * sizeof *args);

    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    /* Both processes log to the activator's stderr; the queue-proxy's
     * request log (stdout, off unless SERVING_ENABLE_REQUEST_LOG) too, so
     * the activator's stdout stays its own. */
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = STDERR_FILENO;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = STDERR_FILENO;
    if (err_pipe) {
        stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
        stdio[2].data.stream = (uv_stream_t *)err_pipe;
    }
    uv_process_options_t o;
    memset(&o, 0, sizeof o);
    o.exit_cb = pod_on_exit;
    /* In the child, before exec, this is still our own image, even if the
     * file it came from was replaced since. */
    o.file = "/proc/self/exe";
    o.args = exec_args;
    o.env = env->v;
    o.stdio_count = 3;
    o.stdio = stdio;
    o.flags = UV_PROCESS_DETACHED; /* setsid() */
    proc->data = pod;
    int rc = uv_spawn(b->loop, proc, &o);
    free(exec_args);
    return rc;
}

static void log_spawn_error(const local_pod_t *pod, const char *what, const char *file, int rc)
{
    kp_log_kv(KP_LOG_ERROR, "cannot start pod process", "revision", pod->rev->spec->name, "pod",
              pod->id, "process", what, "path", file, "error", uv_strerror(rc), NULL);
    rev_report_failure(pod->rev, "pod %s failed to start: cannot start %s %s: %s", pod->id, what,
                       file, uv_strerror(rc));
    char reason[512];
    snprintf(reason, sizeof reason, "StartError: cannot start %s \"%s\": %s", what, file,
             uv_strerror(rc));
    rev_report_pod_failed(pod->rev, NULL, reason);
}

/* What execvp would find wrong with file, checked before a pod is made so
 * that a missing or unrunnable program is one clear reason rather than a
 * process that exits 127: 0, or -1 with reason (ExitCode127, the status a
 * failed exec ends with, and the error). PATH: the one pods inherit. */
static int exec_check(const char *file, char *reason, size_t len)
{
    if (!file || !*file) {
        snprintf(reason, len, "ExitCode127: exec \"\": empty command");
        return -1;
    }
    if (strchr(file, '/')) {
        if (access(file, X_OK) == 0)
            return 0;
        snprintf(reason, len, "ExitCode127: exec \"%s\": %s", file, strerror(errno));
        return -1;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *dir = path; dir;) {
        const char *colon = strchr(dir, ':');
        size_t dlen = colon ? (size_t)(colon - dir) : strlen(dir);
        char candidate[PATH_MAX];
        int n = snprintf(candidate, sizeof candidate, "%.*s/%s", (int)dlen, dlen ? dir : ".", file);
        if (dlen == 0)
            n = snprintf(candidate, sizeof candidate, "./%s", file);
        if (n > 0 && (size_t)n < sizeof candidate && access(candidate, X_OK) == 0)
            return 0;
        dir = colon ? colon + 1 : NULL;
    }
    snprintf(reason, len, "ExitCode127: exec \"%s\": executable file not found in $PATH", file);
    return -1;
}

/* Starts one pod and reports it; 0 or a negative error (the pod, if any
 * process started, then stops on its own). */
static int pod_start(act_backend_revision_t *rev)
{
    local_backend_t *b = rev->b;
    const char *app_file = rev->spec->n_command ? rev->spec->command[0] : b->app_path;
    char reason[512];
    if (exec_check(app_file, reason, sizeof reason) != 0 ||
        exec_check(b->qp_path, reason, sizeof reason) != 0) {
        kp_log_kv(KP_LOG_ERROR, "cannot start pod", "revision", rev->spec->name, "reason", reason,
                  NULL);
        rev_report_failure(rev, "pod failed to start: %s", reason);
        rev_report_pod_failed(rev, NULL, reason);
        return UV_ENOENT;
    }
    local_pod_t *pod = calloc(1, sizeof *pod);
    if (!pod)
        return UV_ENOMEM;
    pod->rev = rev;
    pod->state = POD_RUNNING;
    pod->started_ms = now_ms(b);
    snprintf(pod->id, sizeof pod->id, "%s-%u", rev->spec->name, ++rev->next_pod_n);
    for (int i = 0; i < PORT_COUNT; i++) {
        int rc = port_alloc(b, &pod->ports[i]);
        if (rc != 0) {
            kp_log_kv(KP_LOG_ERROR, "no free port for a pod", "revision", rev->spec->name, NULL);
            rev_report_failure(rev, "no free port for a pod from --pod-port-base %d up",
                               b->opts.first_port);
            free(pod);
            return rc;
        }
    }
    uv_timer_init(b->loop, &pod->kill_timer);
    pod->kill_timer.data = pod;
    pod->prev = rev->tail;
    if (rev->tail)
        rev->tail->next = pod;
    else
        rev->head = pod;
    rev->tail = pod;
    b->n_pods++;

    env_list_t env = {0};
    /* Our own NULL-terminated argv: the spec's need not end in NULL. */
    size_t argc = rev->spec->n_command;
    char **app_args = calloc(argc + 1 + (argc == 0), sizeof *app_args);
    if (argc)
        memcpy(app_args, rev->spec->command, argc * sizeof *app_args);
    else if (app_args)
        app_args[0] = b->app_path;
    app_env(b, pod, &env);
    int rc = env.failed || !app_args ? UV_ENOMEM : 0;
    if (rc == 0) {
        rc = act_pod_stderr_init(b->loop, &pod->app_err);
        if (rc == 0) {
            pod->err_open = 1;
            pod->app_err.pipe.data = pod;
        }
    }
    if (rc == 0) {
        pod->app_spawned = 1;
        rc = pod_spawn(pod, &pod->app, app_args, &env, &pod->app_err.pipe);
        if (rc != 0) {
            log_spawn_error(pod, "app", app_args[0], rc);
        } else {
            pod->app_alive = 1;
            if (act_pod_stderr_start(&pod->app_err) != 0)
                kp_log_kv(KP_LOG_WARN, "cannot read the app's stderr", "pod", pod->id, NULL);
        }
    }
    free(app_args);
    env_free(&env);
    if (rc == 0) {
        char *qp_args[] = {b->qp_path, NULL};
        qp_env(b, pod, &env);
        rc = env.failed ? UV_ENOMEM : 0;
        if (rc == 0) {
            pod->qp_spawned = 1;
            rc = pod_spawn(pod, &pod->qp, qp_args, &env, NULL);
            if (rc != 0)
                log_spawn_error(pod, "queue-proxy", qp_args[0], rc);
            else
                pod->qp_alive = 1;
        }
        env_free(&env);
    }
    if (rc != 0) {
        pod_stop(pod); /* not reported: stops the app if it started */
        return rc;
    }

    kp_log_fields(KP_LOG_INFO, "pod started", KP_LOG_STR("revision", rev->spec->name),
                  KP_LOG_STR("pod", pod->id), KP_LOG_STR("ip", b->opts.pod_ip),
                  KP_LOG_INT("app_port", pod->ports[PORT_APP]),
                  KP_LOG_INT("serving_port", pod->ports[PORT_SERVING]),
                  KP_LOG_INT("admin_port", pod->ports[PORT_ADMIN]),
                  KP_LOG_INT("metrics_port", pod->ports[PORT_METRICS]),
                  KP_LOG_INT("user_metrics_port", pod->ports[PORT_USER_METRICS]),
                  KP_LOG_INT("app_pid", pod->app.pid), KP_LOG_INT("qp_pid", pod->qp.pid));

    act_pod_info_t info;
    memset(&info, 0, sizeof info);
    snprintf(info.id, sizeof info.id, "%s", pod->id);
    snprintf(info.ip, sizeof info.ip, "%s", b->opts.pod_ip);
    info.serving_port = pod->ports[PORT_SERVING];
    info.metrics_port = pod->ports[PORT_METRICS];
    info.admin_port = pod->ports[PORT_ADMIN];
    pod->handle = b->events->pod_added(rev->rev_ctx, &info);
    return 0;
}

/* ---- revisions -------------------------------------------------------- */

/* Converges the running pods to the desired count: newest pods go first on
 * the way down; on the way up, nothing starts while a backoff is pending. */
static int rev_running(const act_backend_revision_t *rev)
{
    int n = 0;
    for (const local_pod_t *p = rev->head; p; p = p->next)
        n += p->state == POD_RUNNING;
    return n;
}

static local_pod_t *rev_newest_running(const act_backend_revision_t *rev)
{
    for (local_pod_t *p = rev->tail; p; p = p->prev)
        if (p->state == POD_RUNNING)
            return p;
    return NULL;
}

/* Counts are taken afresh on every turn: pod_added and pod_removed may call
 * set_scale again from inside. Pods are only freed from close callbacks, so
 * none disappears under us. */
static void rev_reconcile(act_backend_revision_t *rev)
{
    local_backend_t *b = rev->b;
    local_pod_t *p;
    while (rev_running(rev) > (b->closing ? 0 : rev->desired) &&
           (p = rev_newest_running(rev)) != NULL) {
        kp_log_kv(KP_LOG_INFO, "stopping pod", "revision", rev->spec->name, "pod", p->id, NULL);
        pod_stop(p);
    }
    while (!b->closing && !uv_is_active((uv_handle_t *)&rev->restart_timer) &&
           rev_running(rev) < rev->desired) {
        if (pod_start(rev) != 0) {
            rev_note_failure(rev, 0);
            return;
        }
    }
}

static act_backend_revision_t *local_add_revision(act_backend_t *base,
                                                  const kp_revision_spec_t *spec, void *rev_ctx)
{
    local_backend_t *b = (local_backend_t *)base;
    if (b->closing)
        return NULL;
    act_backend_revision_t *rev = calloc(1, sizeof *rev);
    if (!rev)
        return NULL;
    rev->b = b;
    rev->spec = spec;
    rev->rev_ctx = rev_ctx;
    uv_timer_init(b->loop, &rev->restart_timer);
    b->n_handles++;
    rev->next = b->revs;
    b->revs = rev;
    return rev;
}

static void local_remove_revision(act_backend_t *base, act_backend_revision_t *rev)
{
    local_backend_t *b = (local_backend_t *)base;
    if (!rev || rev->removed)
        return;
    snprintf(rev->gone_name, sizeof rev->gone_name, "%s", rev->spec->name);
    rev->gone_spec = (kp_revision_spec_t){.name = rev->gone_name};
    rev->spec = &rev->gone_spec;
    rev->removed = 1;
    rev->desired = 0;
    uv_timer_stop(&rev->restart_timer);
    for (act_backend_revision_t **r = &b->revs; *r; r = &(*r)->next)
        if (*r == rev) {
            *r = rev->next;
            break;
        }
    /* Stops what still runs (nothing, as the activator asked for no pod),
     * telling the activator nothing more. */
    for (local_pod_t *p = rev->head; p; p = p->next) {
        p->handle = NULL;
        pod_stop(p);
    }
    if (!rev->head)
        rev_free(rev);
}

static void local_set_scale(act_backend_t *base, act_backend_revision_t *rev, int pods)
{
    local_backend_t *b = (local_backend_t *)base;
    if (!rev || b->closing)
        return;
    rev->desired = pods > 0 ? pods : 0;
    rev_reconcile(rev);
}

static void on_handle_closed(uv_handle_t *h)
{
    local_backend_t *b = h->data;
    b->n_handles--;
    backend_maybe_finish(b);
}

static void local_close(act_backend_t *base, void (*on_closed)(void *ctx), void *ctx)
{
    local_backend_t *b = (local_backend_t *)base;
    if (b->closing)
        return;
    b->closing = 1;
    b->on_closed = on_closed;
    b->on_closed_ctx = ctx;
    for (act_backend_revision_t *r = b->revs; r; r = r->next) {
        rev_reconcile(r); /* desired is 0 while closing: every pod drains at once */
        r->restart_timer.data = b;
        uv_close((uv_handle_t *)&r->restart_timer, on_handle_closed);
    }
    uv_close((uv_handle_t *)&b->anchor, on_handle_closed);
}

/* ---- construction ----------------------------------------------------- */

void act_local_opts_default(act_local_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->log_level = "info";
    opts->pod_ip = "127.0.0.1";
    opts->first_port = 20000;
    opts->drain_quiet_period_ms = 0;
}

/* "<dir of our executable>/name", or name itself when the exe path is unknown. */
static void path_next_to_exe(char *out, size_t outlen, const char *name)
{
    char exe[PATH_MAX];
    size_t len = sizeof exe;
    const char *slash;
    if (uv_exepath(exe, &len) == 0 && (slash = strrchr(exe, '/')) != NULL)
        snprintf(out, outlen, "%.*s/%s", (int)(slash - exe), exe, name);
    else
        snprintf(out, outlen, "%s", name);
}

act_backend_t *act_backend_local_new(uv_loop_t *loop, const act_backend_events_t *events,
                                     const act_local_opts_t *opts)
{
    local_backend_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->base.name = "local";
    b->base.add_revision = local_add_revision;
    b->base.remove_revision = local_remove_revision;
    b->base.set_scale = local_set_scale;
    b->base.close = local_close;
    b->loop = loop;
    b->events = events;
    if (opts)
        b->opts = *opts;
    else
        act_local_opts_default(&b->opts);
    if (!b->opts.pod_ip || !*b->opts.pod_ip)
        b->opts.pod_ip = "127.0.0.1";
    if (!b->opts.log_level)
        b->opts.log_level = "";
    if (b->opts.first_port <= 0 || b->opts.first_port > 65535)
        b->opts.first_port = 20000;
    b->next_port = b->opts.first_port;
    if (b->opts.queue_proxy_path && *b->opts.queue_proxy_path)
        snprintf(b->qp_path, sizeof b->qp_path, "%s", b->opts.queue_proxy_path);
    else
        path_next_to_exe(b->qp_path, sizeof b->qp_path, "queue-proxy");
    if (b->opts.app_path && *b->opts.app_path)
        snprintf(b->app_path, sizeof b->app_path, "%s", b->opts.app_path);
    else
        path_next_to_exe(b->app_path, sizeof b->app_path, "helloworld");
    size_t self_len = sizeof b->self_path;
    if (uv_exepath(b->self_path, &self_len) != 0)
        snprintf(b->self_path, sizeof b->self_path, "activator");
    snprintf(b->self_pid, sizeof b->self_pid, "%d", (int)uv_os_getpid());
    uv_timer_init(loop, &b->anchor);
    b->anchor.data = b;
    b->n_handles = 1;
    return &b->base;
}
