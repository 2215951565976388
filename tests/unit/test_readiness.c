/* Tests for queue-proxy/readiness.c on a real libuv loop against small
 * servers run by the test itself: readiness flips within milliseconds of
 * the app listening, HTTP status handling, timeouts, thresholds, shared
 * runs, cancel and close. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/log.h"
#include "queue-proxy/probe_spec.h"
#include "queue-proxy/readiness.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ------------------------------------------------------------------ */
/* A tiny app: accepts, and per mode closes at once, answers HTTP with the
 * next status from a script, or stays silent. */

typedef enum { APP_ACCEPT, APP_HTTP, APP_SILENT } app_mode_t;

typedef struct app app_t;
typedef struct app_conn {
    uv_tcp_t tcp;
    app_t *app;
    char buf[2048];
    size_t len;
    int answered;
    struct app_conn *next;
} app_conn_t;

struct app {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int listening;
    int port;
    app_mode_t mode;
    const int *statuses; /* script; the last one repeats */
    int n_statuses;
    int requests;
    char last_request[2048];
    app_conn_t *conns;
};

static void conn_closed(uv_handle_t *h)
{
    app_conn_t *c = h->data;
    app_t *app = c->app;
    for (app_conn_t **pp = &app->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    free(c);
}

static void conn_close(app_conn_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void conn_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    app_conn_t *c = h->data;
    (void)sz;
    *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - 1 - c->len));
}

typedef struct {
    uv_write_t req;
    char data[128];
    app_conn_t *conn;
} app_write_t;

static void written(uv_write_t *w, int status)
{
    app_write_t *aw = container_of(w, app_write_t, req);
    (void)status;
    conn_close(aw->conn);
    free(aw);
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    app_conn_t *c = s->data;
    app_t *app = c->app;
    (void)b;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    if (c->answered || !strstr(c->buf, "\r\n\r\n"))
        return;
    c->answered = 1;
    snprintf(app->last_request, sizeof app->last_request, "%s", c->buf);
    int i = app->requests < app->n_statuses ? app->requests : app->n_statuses - 1;
    app->requests++;
    app_write_t *aw = calloc(1, sizeof *aw);
    aw->conn = c;
    int len = snprintf(aw->data, sizeof aw->data,
                       "HTTP/1.1 %d Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                       app->statuses[i]);
    uv_buf_t buf = uv_buf_init(aw->data, (unsigned)len);
    uv_write(&aw->req, s, &buf, 1, written);
}

static void on_accept(uv_stream_t *l, int status)
{
    app_t *app = l->data;
    if (status < 0)
        return;
    app_conn_t *c = calloc(1, sizeof *c);
    c->app = app;
    uv_tcp_init(app->loop, &c->tcp);
    c->tcp.data = c;
    c->next = app->conns;
    app->conns = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (app->mode == APP_ACCEPT) {
        app->requests++;
        conn_close(c);
    } else if (app->mode == APP_HTTP) {
        uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
    } else {
        app->requests++; /* silent: hold the connection open */
    }
}

/* A port nothing listens on (for now): bind to 0, note it, close. */
static int free_port(uv_loop_t *loop)
{
    uv_tcp_t t;
    struct sockaddr_in a;
    uv_tcp_init(loop, &t);
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&t, (struct sockaddr *)&a, 0), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return port;
}

static void app_listen(app_t *app)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", app->port, &a);
    uv_tcp_init(app->loop, &app->listener);
    app->listener.data = app;
    assert_int_equal(uv_tcp_bind(&app->listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&app->listener, 128, on_accept), 0);
    app->listening = 1;
}

static void app_init(app_t *app, uv_loop_t *loop, app_mode_t mode, const int *statuses, int n)
{
    memset(app, 0, sizeof *app);
    app->loop = loop;
    app->mode = mode;
    app->statuses = statuses;
    app->n_statuses = n;
    app->port = free_port(loop);
}

static void app_close(app_t *app)
{
    for (app_conn_t *c = app->conns; c; c = c->next)
        conn_close(c);
    if (app->listening) {
        uv_close((uv_handle_t *)&app->listener, NULL);
        app->listening = 0;
    }
}

/* ------------------------------------------------------------------ */
/* Loop helpers */

typedef struct check {
    kp_readiness_waiter_t w;
    int done;
    int ready;
    uint64_t at; /* loop time of the answer */
    uv_loop_t *loop;
} check_t;

static void on_answer(kp_readiness_waiter_t *w, int ready)
{
    check_t *c = container_of(w, check_t, w);
    assert_int_equal(c->done, 0);
    c->done = 1;
    c->ready = ready;
    c->at = uv_now(c->loop);
}

static void on_deadline(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Runs the loop until *flag or ms pass; returns *flag. */
static int run_until(uv_loop_t *loop, const int *flag, uint64_t ms)
{
    uv_timer_t t;
    int expired = 0;
    uv_timer_init(loop, &t);
    t.data = &expired;
    uv_timer_start(&t, on_deadline, ms, 0);
    while (!*flag && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag;
}

static void run_for(uv_loop_t *loop, uint64_t ms)
{
    int never = 0;
    run_until(loop, &never, ms);
}

static void finish(uv_loop_t *loop, kp_readiness_t *r, app_t *app)
{
    if (r)
        kp_readiness_close(r);
    if (app)
        app_close(app);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static kp_probe_spec_t spec_of(const char *json, int port)
{
    kp_probe_spec_t s;
    char err[256];
    char buf[1024];
    snprintf(buf, sizeof buf, json, port);
    if (kp_probe_spec_parse(buf, port, &s, err, sizeof err) != 0)
        fail_msg("%s", err);
    return s;
}

/* ------------------------------------------------------------------ */

static void no_probe_is_always_ready(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    kp_readiness_t *r = kp_readiness_new(&loop, NULL);
    assert_int_equal(kp_readiness_is_ready(r), 1);
    check_t c = {.loop = &loop};
    kp_readiness_check(r, &c.w, on_answer);
    assert_int_equal(c.done, 1); /* at once */
    assert_int_equal(c.ready, 1);
    kp_readiness_cancel(r, &c.w); /* harmless */
    finish(&loop, r, NULL);
}

static void background_probe_sees_late_listener_within_ms(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    app_t app;
    app_init(&app, &loop, APP_ACCEPT, NULL, 0);
    kp_probe_spec_t spec = spec_of("{\"tcpSocket\":{\"port\":%d}}", app.port);
    kp_readiness_t *r = kp_readiness_new(&loop, &spec);
    kp_probe_spec_free(&spec); /* copied */
    kp_readiness_start(r);
    run_for(&loop, 150);
    assert_int_equal(kp_readiness_is_ready(r), 0);

    app_listen(&app);
    uv_update_time(&loop);
    uint64_t listening_at = uv_now(&loop);
    int ready = 0;
    while (!ready && uv_now(&loop) - listening_at < 1000) {
        uv_run(&loop, UV_RUN_ONCE);
        ready = kp_readiness_is_ready(r);
    }
    assert_int_equal(ready, 1);
    assert_true(uv_now(&loop) - listening_at < 80); /* 25 ms ticks */

    /* Background probing stops at the first success. */
    int seen = app.requests;
    run_for(&loop, 100);
    assert_int_equal(app.requests, seen);
    finish(&loop, r, &app);
}

static void aggressive_check_waits_for_listener(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    app_t app;
    app_init(&app, &loop, APP_ACCEPT, NULL, 0);
    kp_probe_spec_t spec = spec_of("{\"tcpSocket\":{\"port\":%d},\"periodSeconds\":0}", app.port);
    kp_readiness_t *r = kp_readiness_new(&loop, &spec);
    kp_probe_spec_free(&spec);
    check_t c = {.loop = &loop};
    kp_readiness_check(r, &c.w, on_answer);
    assert_int_equal(c.done, 0);
    run_for(&loop, 120);
    assert_int_equal(c.done, 0);
    app_listen(&app);
    uv_update_time(&loop);
    uint64_t listening_at = uv_now(&loop);
    assert_true(run_until(&loop, &c.done, 1000));
    assert_int_equal(c.ready, 1);
    assert_true(c.at - listening_at < 100); /* 50 ms ticks */
    finish(&loop, r, &app);
}

static void http_500_then_200(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    static const int script[] = {500, 503, 200};
    app_t app;
    app_init(&app, &loop, APP_HTTP, script, 3);
    app_listen(&app);
    kp_probe_spec_t spec =
        spec_of("{\"httpGet\":{\"port\":%d,\"path\":\"/healthz\",\"httpHeaders\":"
                "[{\"name\":\"X-Custom\",\"value\":\"yes\"}]}}",
                app.port);
    kp_readiness_t *r = kp_readiness_new(&loop, &spec);
    kp_probe_spec_free(&spec);
    check_t c = {.loop = &loop};
    kp_readiness_check(r, &c.w, on_answer);
    assert_true(run_until(&loop, &c.done, 2000));
    assert_int_equal(c.ready, 1);
    assert_int_equal(app.requests, 3);
    assert_int_equal(kp_readiness_is_ready(r), 1);

    const char *req = app.last_request;
    char host[64];
    snprintf(host, sizeof host, "\r\nHost: 127.0.0.1:%d\r\n", app.port);
    assert_true(strncmp(req, "GET /healthz HTTP/1.1\r\n", 23) == 0);
    assert_non_null(strstr(req, host));
    assert_non_null(strstr(req, "\r\nUser-Agent: Knative-Queue-Proxy-Probe\r\n"));
    assert_non_null(strstr(req, "\r\nK-Network-Probe: queue\r\n"));
    assert_non_null(strstr(req, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(req, "\r\nX-Custom: yes\r\n"));

    /* Like Knative, a later check probes again rather than trusting the
     * last answer. */
    check_t c2 = {.loop = &loop};
    kp_readiness_check(r, &c2.w, on_answer);
    assert_true(run_until(&loop, &c2.done, 1000));
    assert_int_equal(c2.ready, 1);
    assert_int_equal(app.requests, 4);
    finish(&loop, r, &app);
}

static void http_3xx_is_ready_4xx_is_not(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    static const int script[] = {302, 404};
    app_t app;
    app_init(&app, &loop, APP_HTTP, script, 2);
    app_listen(&app);
    kp_probe_spec_t spec =
        spec_of("{\"httpGet\":{\"port\":%d},\"periodSeconds\":1,\"failureThreshold\":1}", app.port);
    kp_readiness_t *r = kp_readiness_new(&loop, &spec);
    kp_probe_spec_free(&spec);
    check_t c = {.loop = &loop}, c2 = {.loop = &loop};
    kp_readiness_check(r, &c.w, on_answer);
    assert_true(run_until(&loop, &c.done, 2000));
    assert_int_equal(c.ready, 1);
    kp_readiness_check(r, &c2.w, on_answer);
    assert_true(run_until(&loop, &c2.done, 2000));
    assert_int_equal(c2.ready, 0);
    finish(&loop, r, &app);
}

static void periodic_thresholds_count_across_checks(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    static const int script[] = {200, 200, 500, 500, 200};
    app_t app;
    app_init(&app, &loop, APP_HTTP, script, 5);
    app_listen(&app);
    kp_probe_spec_t spec = spec_of("{\"httpGet\":{\"port\":%d},\"periodSeconds\":10,"
                                   "\"successThreshold\":2,\"failureThreshold\":2}",
                                   app.port);
    kp_readiness_t *r = kp_readiness_new(&loop, &spec);
    kp_probe_spec_free(&spec);
    const int want[] = {0, 1, 1, 0, 0};
    for (int i = 0; i < 5; i++) {
        check_t c = {.loop = &loop};
        kp_readiness_check(r, &c.w, on_answer);
        assert_true(run_until(&loop, &c.done, 2000));
        assert_int_equal(app.requests, i + 1); /* one probe per check */
        if (c.ready != want[i])
            fail_msg("check %d: got %d, want %d", i, c.ready, want[i]);
    }
    finish(&loop, r, &app);
}

static void periodic_timeout_on_silent_app(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    app_t app;
    app_init(&app, &loop, APP_SILENT, NULL, 0);
    app_listen(&app);
    kp_probe_spec_t spec =
        spec_of("{\"httpGet\":{\"port\":%d},\"periodSeconds\":5,\"timeoutSeconds\":1}", app.port);
    kp_readiness_t *r = kp_readiness_new(&loop, &spec);
    kp_probe_spec_free(&spec);
    check_t c = {.loop = &loop};
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    kp_readiness_check(r, &c.w, on_answer);
    assert_true(run_until(&loop, &c.done, 3000));
    assert_int_equal(c.ready, 0);
    assert_true(c.at - t0 >= 990 && c.at - t0 < 1500);
    assert_int_equal(app.requests, 1);
    finish(&loop, r, &app);
}

static void aggressive_run_gives_up_after_poll_timeout(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    app_t app;
    app_init(&app, &loop, APP_SILENT, NULL, 0);
    app_listen(&app);
    kp_probe_spec_t spec = spec_of("{\"httpGet\":{\"port\":%d}}", app.port);
    kp_readiness_t *r = kp_readiness_new(&loop, &spec);
    kp_probe_spec_free(&spec);
    kp_readiness_set_poll_timeout(r, 350);
    check_t c = {.loop = &loop};
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    kp_readiness_check(r, &c.w, on_answer);
    assert_true(run_until(&loop, &c.done, 3000));
    assert_int_equal(c.ready, 0);
    /* Attempts time out after 100 ms each, so the run ends 350..450 ms in. */
    assert_true(c.at - t0 >= 350 && c.at - t0 < 550);
    assert_true(app.requests >= 3 && app.requests <= 5);
    finish(&loop, r, &app);
}

static void concurrent_checks_share_one_run(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    static const int script[] = {200};
    app_t app;
    app_init(&app, &loop, APP_HTTP, script, 1);
    app_listen(&app);
    kp_probe_spec_t spec = spec_of("{\"httpGet\":{\"port\":%d}}", app.port);
    kp_readiness_t *r = kp_readiness_new(&loop, &spec);
    kp_probe_spec_free(&spec);
    check_t c[3] = {{.loop = &loop}, {.loop = &loop}, {.loop = &loop}};
    for (int i = 0; i < 3; i++)
        kp_readiness_check(r, &c[i].w, on_answer);
    assert_true(run_until(&loop, &c[2].done, 1000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c[i].done, 1);
        assert_int_equal(c[i].ready, 1);
    }
    assert_int_equal(app.requests, 1);
    finish(&loop, r, &app);
}

static void cancelled_waiter_is_not_called(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    app_t app;
    app_init(&app, &loop, APP_ACCEPT, NULL, 0); /* never listens */
    kp_probe_spec_t spec = spec_of("{\"tcpSocket\":{\"port\":%d}}", app.port);
    kp_readiness_t *r = kp_readiness_new(&loop, &spec);
    kp_probe_spec_free(&spec);
    kp_readiness_set_poll_timeout(r, 200);
    check_t a = {.loop = &loop}, b = {.loop = &loop};
    kp_readiness_check(r, &a.w, on_answer);
    kp_readiness_check(r, &b.w, on_answer);
    kp_readiness_cancel(r, &a.w);
    kp_readiness_cancel(r, &a.w); /* twice is fine */
    assert_true(run_until(&loop, &b.done, 1000));
    assert_int_equal(b.ready, 0);
    run_for(&loop, 100);
    assert_int_equal(a.done, 0);

    /* With every waiter gone the run stops probing. */
    check_t d = {.loop = &loop};
    kp_readiness_check(r, &d.w, on_answer);
    run_for(&loop, 30);
    kp_readiness_cancel(r, &d.w);
    app_listen(&app);
    run_for(&loop, 150);
    assert_int_equal(d.done, 0);
    assert_int_equal(app.requests, 0);
    finish(&loop, r, &app);
}

/* A waiter whose callback checks again gets a fresh answer, and one that
 * closes the prober stops the others cleanly. */
static check_t *recheck_target;
static kp_readiness_t *recheck_r;
static void on_answer_then_recheck(kp_readiness_waiter_t *w, int ready)
{
    on_answer(w, ready);
    kp_readiness_check(recheck_r, &recheck_target->w, on_answer);
}

static void callback_may_check_again(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    static const int script[] = {200};
    app_t app;
    app_init(&app, &loop, APP_HTTP, script, 1);
    app_listen(&app);
    kp_probe_spec_t spec = spec_of("{\"httpGet\":{\"port\":%d}}", app.port);
    kp_readiness_t *r = kp_readiness_new(&loop, &spec);
    kp_probe_spec_free(&spec);
    check_t first = {.loop = &loop}, second = {.loop = &loop};
    recheck_target = &second;
    recheck_r = r;
    kp_readiness_check(r, &first.w, on_answer_then_recheck);
    assert_true(run_until(&loop, &second.done, 1000));
    assert_int_equal(first.ready, 1);
    assert_int_equal(second.ready, 1);
    assert_int_equal(app.requests, 2);
    finish(&loop, r, &app);
}

static void close_with_waiters_and_attempt_in_flight(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    app_t app;
    app_init(&app, &loop, APP_SILENT, NULL, 0);
    app_listen(&app);
    kp_probe_spec_t spec = spec_of("{\"httpGet\":{\"port\":%d}}", app.port);
    kp_readiness_t *r = kp_readiness_new(&loop, &spec);
    kp_probe_spec_free(&spec);
    kp_readiness_start(r);
    check_t c = {.loop = &loop};
    kp_readiness_check(r, &c.w, on_answer);
    run_for(&loop, 30);     /* connected, waiting for a status line */
    finish(&loop, r, &app); /* ASan: nothing leaks; the loop closes */
    assert_int_equal(c.done, 0);
}

int main(void)
{
    kp_log_init("test", KP_LOG_ERROR); /* keep readiness transitions quiet */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_probe_is_always_ready),
        cmocka_unit_test(background_probe_sees_late_listener_within_ms),
        cmocka_unit_test(aggressive_check_waits_for_listener),
        cmocka_unit_test(http_500_then_200),
        cmocka_unit_test(http_3xx_is_ready_4xx_is_not),
        cmocka_unit_test(periodic_thresholds_count_across_checks),
        cmocka_unit_test(periodic_timeout_on_silent_app),
        cmocka_unit_test(aggressive_run_gives_up_after_poll_timeout),
        cmocka_unit_test(concurrent_checks_share_one_run),
        cmocka_unit_test(cancelled_waiter_is_not_called),
        cmocka_unit_test(callback_may_check_again),
        cmocka_unit_test(close_with_waiters_and_attempt_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
