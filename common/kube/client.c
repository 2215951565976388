/* The client's engine: libcurl's multi-socket API driven by the libuv loop
 * (a uv_poll_t per socket curl asks about, one uv_timer_t for curl's
 * timeout), requests with the bearer token (re-read when its file changes),
 * 401/403 logged once per verb and resource with the missing RBAC rule, and
 * the close that waits for every handle. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "base/log.h"
#include "base/strbuf.h"

#define CONNECT_TIMEOUT_MS 10000L
#define BODY_MAX (64u << 20)
#define DENIED_MAX 64

/* One socket curl wants watched; owned by the client, freed in its close
 * callback. */
typedef struct kube_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    kp_kube_t *k;
    struct kube_sock *prev, *next;
} kube_sock_t;

struct kp_kube_req {
    kp_kube_t *k;
    CURL *easy;
    struct curl_slist *headers;
    kp_strbuf_t resp;
    char method[8];
    char rbac_verb[16], rbac_resource[64], rbac_group[64], rbac_ns[254];
    kp_kube_data_cb on_data;
    kp_kube_done_cb on_done;
    void *ctx;
    void (*free_ctx)(void *ctx);
    long status;   /* known once the body starts */
    int added;     /* in the multi handle */
    int cancelled; /* no callback any more; freed at the next sweep */
    int aborted;   /* on_data asked to stop */
    int failed_add;
    char errbuf[CURL_ERROR_SIZE];
    kp_kube_req_t *prev, *next;
};

typedef struct tracked {
    void *obj;
    void (*stop)(void *obj);
    struct tracked *next;
} tracked_t;

struct kp_kube {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    char *api_url, *token_file, *ca_file;

    char *token;
    struct timespec token_mtime;
    off_t token_size;
    ino_t token_ino;

    kp_kube_req_t *reqs;
    kube_sock_t *socks;
    tracked_t *tracked;
    char *denied[DENIED_MAX];
    size_t n_denied;

    /* >0 while inside curl or dispatching its results: multi calls that are
     * not allowed there (add, remove, cleanup) wait for the sweep. */
    int busy;
    int closing, torn_down;
    unsigned pending; /* uv handles whose close callback has not run */
    kp_rng_t rng;     /* backoff jitter, seeded per process */
    void (*on_closed)(void *ctx);
    void *closed_ctx;
};

static void kube_drive(kp_kube_t *k, curl_socket_t fd, int flags);

/* --- handles and the close --- */

uv_loop_t *kp_kube_loop(kp_kube_t *k)
{
    return k->loop;
}

void kp_kube_hold(kp_kube_t *k)
{
    k->pending++;
}

static void kube_free(kp_kube_t *k)
{
    void (*cb)(void *) = k->on_closed;
    void *ctx = k->closed_ctx;
    for (size_t i = 0; i < k->n_denied; i++)
        free(k->denied[i]);
    free(k->api_url);
    free(k->token_file);
    free(k->ca_file);
    free(k->token);
    free(k);
    curl_global_cleanup();
    if (cb)
        cb(ctx);
}

void kp_kube_release(kp_kube_t *k)
{
    if (--k->pending == 0 && k->torn_down)
        kube_free(k);
}

static void on_handle_closed(uv_handle_t *h)
{
    kp_kube_t *k = h->data;
    kp_kube_release(k);
}

static void on_sock_closed(uv_handle_t *h)
{
    kube_sock_t *ks = h->data;
    kp_kube_t *k = ks->k;
    free(ks);
    kp_kube_release(k);
}

static void sock_close(kube_sock_t *ks)
{
    kp_kube_t *k = ks->k;
    if (ks->prev)
        ks->prev->next = ks->next;
    else
        k->socks = ks->next;
    if (ks->next)
        ks->next->prev = ks->prev;
    kp_kube_hold(k);
    uv_close((uv_handle_t *)&ks->poll, on_sock_closed);
}

int kp_kube_track(kp_kube_t *k, void *obj, void (*stop)(void *obj))
{
    if (k->closing)
        return -1;
    tracked_t *t = malloc(sizeof(*t));
    if (!t)
        return -1;
    t->obj = obj;
    t->stop = stop;
    t->next = k->tracked;
    k->tracked = t;
    return 0;
}

void *kp_kube_tracked_find(kp_kube_t *k, void (*stop)(void *obj),
                           int (*match)(const void *obj, const void *key), const void *key)
{
    for (tracked_t *t = k->tracked; t; t = t->next)
        if (t->stop == stop && match(t->obj, key))
            return t->obj;
    return NULL;
}

void kp_kube_untrack(kp_kube_t *k, void *obj)
{
    for (tracked_t **p = &k->tracked; *p; p = &(*p)->next) {
        if ((*p)->obj == obj) {
            tracked_t *t = *p;
            *p = t->next;
            free(t);
            return;
        }
    }
}

static void req_destroy(kp_kube_req_t *r)
{
    kp_kube_t *k = r->k;
    if (r->free_ctx)
        r->free_ctx(r->ctx);
    if (r->added)
        curl_multi_remove_handle(k->multi, r->easy);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    kp_strbuf_free(&r->resp);
    if (r->prev)
        r->prev->next = r->next;
    else
        k->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    free(r);
}

/* Runs when the client is closing and nothing of curl is on the stack. */
static void kube_maybe_teardown(kp_kube_t *k)
{
    if (!k->closing || k->torn_down || k->busy)
        return;
    k->torn_down = 1;
    while (k->reqs)
        req_destroy(k->reqs);
    while (k->socks)
        sock_close(k->socks);
    /* The socket callback ignores curl from now on (torn_down). */
    curl_multi_cleanup(k->multi);
    k->multi = NULL;
    uv_timer_stop(&k->timer);
    kp_kube_hold(k);
    uv_close((uv_handle_t *)&k->timer, on_handle_closed);
}

void kp_kube_close(kp_kube_t *k, void (*on_closed)(void *ctx), void *ctx)
{
    if (k->closing)
        return;
    k->closing = 1;
    k->on_closed = on_closed;
    k->closed_ctx = ctx;
    while (k->tracked) {
        tracked_t *t = k->tracked;
        k->tracked = t->next;
        void *obj = t->obj;
        void (*stop)(void *) = t->stop;
        free(t);
        stop(obj); /* its untrack finds nothing: already unlinked */
    }
    for (kp_kube_req_t *r = k->reqs; r; r = r->next) {
        r->cancelled = 1;
        r->on_data = NULL;
        r->on_done = NULL;
    }
    kube_maybe_teardown(k);
}

/* --- the token --- */

/* kubelet rotates projected tokens by swapping a symlink: stat follows it,
 * so the inode, size or mtime changes. One stat per request is cheap. */
static void token_refresh(kp_kube_t *k)
{
    if (!k->token_file)
        return;
    struct stat st;
    if (stat(k->token_file, &st) != 0) {
        if (!k->token)
            kp_log(KP_LOG_WARN, "kubernetes token file %s: cannot stat: %s", k->token_file,
                   strerror(errno));
        return;
    }
    if (k->token && st.st_ino == k->token_ino && st.st_size == k->token_size &&
        st.st_mtim.tv_sec == k->token_mtime.tv_sec && st.st_mtim.tv_nsec == k->token_mtime.tv_nsec)
        return;
    FILE *f = fopen(k->token_file, "r");
    if (!f) {
        kp_log(KP_LOG_WARN, "kubernetes token file %s: cannot open: %s", k->token_file,
               strerror(errno));
        return;
    }
    char buf[16384];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    char *tok = strdup(buf);
    if (!tok)
        return;
    free(k->token);
    k->token = tok;
    k->token_ino = st.st_ino;
    k->token_size = st.st_size;
    k->token_mtime = st.st_mtim;
}

/* --- 401/403 --- */

static void log_denied(kp_kube_req_t *r, const char *body, size_t len)
{
    kp_kube_t *k = r->k;
    char key[512];
    snprintf(key, sizeof(key), "%s|%s|%s|%s|%ld", r->rbac_verb, r->rbac_resource, r->rbac_group,
             r->rbac_ns, r->status);
    for (size_t i = 0; i < k->n_denied; i++)
        if (strcmp(k->denied[i], key) == 0)
            return;
    if (k->n_denied < DENIED_MAX)
        k->denied[k->n_denied++] = strdup(key);
    char msg[512], rule[512];
    kp_kube_status_message(body, len, msg, sizeof(msg));
    if (r->status == 401) {
        kp_log(KP_LOG_ERROR,
               "kubernetes API rejected the token (401) on %s %s: %s; check the token file %s "
               "(expired, or for another cluster?)",
               r->method, r->rbac_resource, msg, k->token_file ? k->token_file : "(none)");
        return;
    }
    kp_kube_rbac_t rb = {r->rbac_verb, r->rbac_resource, r->rbac_group, r->rbac_ns};
    kp_kube_rbac_rule(&rb, rule, sizeof(rule));
    kp_log(KP_LOG_ERROR, "kubernetes API forbade %s %s (403): %s; missing RBAC: %s%s", r->method,
           r->rbac_resource, msg, rule,
           k->token && k->token[0] ? "" : " (no token was sent: set the token file)");
}

/* --- requests --- */

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    kp_kube_req_t *r = ud;
    size_t n = size * nmemb;
    if (r->cancelled)
        return 0;
    if (r->status == 0)
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->on_data && r->status / 100 == 2) {
        if (r->on_data(r->ctx, data, n) != 0) {
            r->aborted = 1;
            return 0;
        }
        return n;
    }
    if (r->resp.len + n > BODY_MAX)
        return 0;
    kp_strbuf_append(&r->resp, data, n);
    return n;
}

static void req_finish(kp_kube_req_t *r, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    r->status = status;
    const char *body = r->resp.data ? r->resp.data : "";
    size_t len = r->resp.len;
    const char *err = NULL;
    if (r->failed_add)
        err = "cannot start the transfer";
    else if (r->aborted)
        err = KP_KUBE_EABORTED;
    else if (rc != CURLE_OK)
        err = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
    if (status == 401 || status == 403)
        log_denied(r, body, len);
    kp_kube_done_cb done = r->on_done;
    void *ctx = r->ctx;
    r->cancelled = 1; /* done, once */
    if (done)
        done(ctx, (int)status, body, len, err);
}

static void check_multi_info(kp_kube_t *k)
{
    CURLMsg *msg;
    int left;
    while (!k->torn_down && (msg = curl_multi_info_read(k->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        kp_kube_req_t *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode rc = msg->data.result;
        curl_multi_remove_handle(k->multi, r->easy);
        r->added = 0;
        if (!r->cancelled)
            req_finish(r, rc);
        req_destroy(r);
    }
}

/* After curl has returned: add the requests started meanwhile, free the
 * ones cancelled meanwhile. */
static void kube_sweep(kp_kube_t *k)
{
    int again = 1;
    while (again && !k->closing) {
        again = 0;
        for (kp_kube_req_t *r = k->reqs, *next; r; r = next) {
            next = r->next;
            if (r->cancelled) {
                req_destroy(r);
            } else if (!r->added) {
                if (curl_multi_add_handle(k->multi, r->easy) == CURLM_OK) {
                    r->added = 1;
                } else {
                    r->failed_add = 1;
                    k->busy++;
                    req_finish(r, CURLE_OK);
                    k->busy--;
                    req_destroy(r);
                    again = 1; /* the callback may have changed the list */
                    break;
                }
            }
        }
    }
}

static void kube_drive(kp_kube_t *k, curl_socket_t fd, int flags)
{
    int running;
    k->busy++;
    curl_multi_socket_action(k->multi, fd, flags, &running);
    check_multi_info(k);
    k->busy--;
    if (k->busy == 0) {
        kube_sweep(k);
        kube_maybe_teardown(k);
    }
}

kp_kube_req_t *kp_kube_request(kp_kube_t *k, const kp_kube_req_opts_t *o)
{
    if (k->closing)
        return NULL;
    kp_kube_req_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->k = k;
    r->on_data = o->on_data;
    r->on_done = o->on_done;
    r->ctx = o->ctx;
    r->free_ctx = o->free_ctx;
    kp_strbuf_init(&r->resp);
    snprintf(r->method, sizeof(r->method), "%s", o->method);
    snprintf(r->rbac_verb, sizeof(r->rbac_verb), "%s", o->rbac.verb ? o->rbac.verb : "");
    snprintf(r->rbac_resource, sizeof(r->rbac_resource), "%s",
             o->rbac.resource ? o->rbac.resource : "");
    snprintf(r->rbac_group, sizeof(r->rbac_group), "%s", o->rbac.group ? o->rbac.group : "");
    snprintf(r->rbac_ns, sizeof(r->rbac_ns), "%s", o->rbac.ns ? o->rbac.ns : "");

    r->easy = curl_easy_init();
    if (!r->easy)
        goto fail;
    token_refresh(k);
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_strbuf_puts(&sb, k->api_url);
    kp_strbuf_puts(&sb, o->path);
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, sb.data);
    kp_strbuf_free(&sb);
    if (k->token && k->token[0]) {
        kp_strbuf_init(&sb);
        kp_strbuf_printf(&sb, "Authorization: Bearer %s", k->token);
        r->headers = curl_slist_append(r->headers, sb.data);
        kp_strbuf_free(&sb);
    }
    r->headers = curl_slist_append(r->headers, "Accept: application/json");
    if (o->content_type) {
        char ct[128];
        snprintf(ct, sizeof(ct), "Content-Type: %s", o->content_type);
        r->headers = curl_slist_append(r->headers, ct);
    }
    r->headers = curl_slist_append(r->headers, "Expect:");
    if (!r->headers)
        goto fail;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    if (o->timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "kp-kube/1");
    if (k->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, k->ca_file);
    if (strcmp(o->method, "GET") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method);
    if (o->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(o->body));
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, o->body);
    }

    r->next = k->reqs;
    if (k->reqs)
        k->reqs->prev = r;
    k->reqs = r;
    if (k->busy == 0) {
        if (curl_multi_add_handle(k->multi, e) != CURLM_OK) {
            r->free_ctx = NULL; /* NULL return: the caller still owns ctx */
            req_destroy(r);
            return NULL;
        }
        r->added = 1;
    }
    return r;
fail:
    kp_log(KP_LOG_ERROR, "kubernetes client: cannot set up %s %s (out of memory?)", o->method,
           o->path);
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r);
    return NULL;
}

int kp_kube_name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

void kp_kube_request_cancel(kp_kube_req_t *r)
{
    if (!r || r->cancelled)
        return;
    r->cancelled = 1;
    r->on_data = NULL;
    r->on_done = NULL;
    if (r->k->busy == 0)
        req_destroy(r);
}

/* --- curl <-> libuv --- */

static void on_poll(uv_poll_t *h, int status, int events)
{
    kube_sock_t *ks = h->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    kube_drive(ks->k, ks->fd, flags);
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    kp_kube_t *k = userp;
    kube_sock_t *ks = socketp;
    if (k->torn_down)
        return 0;
    if (what == CURL_POLL_REMOVE) {
        if (ks) {
            curl_multi_assign(k->multi, fd, NULL);
            sock_close(ks);
        }
        return 0;
    }
    if (!ks) {
        ks = calloc(1, sizeof(*ks));
        if (!ks)
            return -1;
        if (uv_poll_init_socket(k->loop, &ks->poll, fd) != 0) {
            free(ks);
            return -1;
        }
        ks->fd = fd;
        ks->k = k;
        ks->poll.data = ks;
        ks->next = k->socks;
        if (k->socks)
            k->socks->prev = ks;
        k->socks = ks;
        curl_multi_assign(k->multi, fd, ks);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&ks->poll, events, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    kp_kube_t *k = t->data;
    kube_drive(k, CURL_SOCKET_TIMEOUT, 0);
}

/* curl asks for a timeout; 0 means "soon", which must not re-enter curl from
 * inside this callback: the loop's next turn serves. */
static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    kp_kube_t *k = userp;
    if (k->torn_down)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&k->timer);
    else
        uv_timer_start(&k->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

uint64_t kp_kube_backoff_jitter(kp_rng_t *r, unsigned attempt, uint64_t base_ms, uint64_t max_ms)
{
    uint64_t d = base_ms;
    for (unsigned i = 0; i < attempt && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    double f = 0.8 + 0.4 * kp_rng_unit(r);
    uint64_t j = (uint64_t)((double)d * f);
    return j > max_ms ? max_ms : j;
}

uint64_t kp_kube_backoff_ms(kp_kube_t *k, unsigned attempt, uint64_t base_ms, uint64_t max_ms)
{
    return kp_kube_backoff_jitter(&k->rng, attempt, base_ms, max_ms);
}

static char *dup_or_null(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

kp_kube_t *kp_kube_new(uv_loop_t *loop, const kp_kube_config_t *cfg)
{
    /* Reference-counted by curl; the matching cleanup is in kube_free. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    kp_kube_t *k = calloc(1, sizeof(*k));
    if (!k) {
        curl_global_cleanup();
        return NULL;
    }
    k->loop = loop;
    k->api_url = strdup(cfg->api_url ? cfg->api_url : "");
    k->token_file = dup_or_null(cfg->token_file);
    k->ca_file = dup_or_null(cfg->ca_file);
    if (!k->api_url || (cfg->token_file && cfg->token_file[0] && !k->token_file) ||
        (cfg->ca_file && cfg->ca_file[0] && !k->ca_file))
        goto fail;
    /* "https://host:443/" + "/apis/..." would give a double slash. */
    size_t n = strlen(k->api_url);
    while (n > 0 && k->api_url[n - 1] == '/')
        k->api_url[--n] = '\0';
    k->multi = curl_multi_init();
    if (!k->multi)
        goto fail;
    curl_multi_setopt(k->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(k->multi, CURLMOPT_SOCKETDATA, k);
    curl_multi_setopt(k->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(k->multi, CURLMOPT_TIMERDATA, k);
    uv_timer_init(loop, &k->timer);
    k->timer.data = k;
    kp_rng_init(&k->rng);
    token_refresh(k);
    return k;
fail:
    free(k->api_url);
    free(k->token_file);
    free(k->ca_file);
    free(k);
    curl_global_cleanup();
    return NULL;
}
