/* Graceful drain, as Knative's queue-proxy does it: health checks turn 503
 * at once, traffic is still served until a quiet period passes with no new
 * request; then (after SIGTERM) the port closes and the process exits as
 * soon as nothing is in flight. /wait-for-drain answers when drained: the
 * quiet period passed and no request is in flight. */
#include "drain.h"

#include <stdlib.h>

#include "base/log.h"
#include "http/path.h"

struct qp_drain_waiter {
    qp_drain_waiter_t *next, *prev;
    qp_t *qp;
    kp_http_request_t *req;
};

static void waiter_unlink(qp_t *qp, qp_drain_waiter_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        qp->drain_waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
}

static void on_waiter_gone(void *ctx)
{
    qp_drain_waiter_t *w = ctx;
    waiter_unlink(w->qp, w);
    free(w);
}

static const kp_http_request_ops_t waiter_ops = {.on_abort = on_waiter_gone};

static uint64_t quiet_period_ns(const qp_t *qp)
{
    return (uint64_t)(qp->cfg.drain_quiet_period_s * 1e9);
}

/* /wait-for-drain answers once the quiet period has passed and no traffic
 * request is in flight. The kubelet stops the app as soon as the hook
 * returns, so a request still at the app would end in a 502. (Knative
 * answers at the quiet period alone, which is safe only while no request
 * lasts longer than it.) */
static void answer_waiters_if_drained(qp_t *qp)
{
    if (!qp->quiet_reached || qp->traffic_in_flight > 0)
        return;
    while (qp->drain_waiters) {
        qp_drain_waiter_t *w = qp->drain_waiters;
        waiter_unlink(qp, w);
        kp_http_conn_bind(w->req->conn, NULL, NULL);
        kp_http_conn_respond(w->req->conn, 200, "text/plain; charset=utf-8", "", 0);
        free(w);
    }
}

static void on_drained(qp_t *qp)
{
    qp->quiet_reached = 1;
    answer_waiters_if_drained(qp);
    if (qp->exit_code >= 0 && !qp->stopped_accepting) {
        kp_log(KP_LOG_INFO, "drained: no new request for %.3gs; closing the serving port",
               qp->cfg.drain_quiet_period_s);
        qp->stopped_accepting = 1;
        kp_http_server_stop_accepting(&qp->main_server);
        kp_http_server_close_idle(&qp->main_server);
        qp_drain_check(qp);
    }
}

static void on_drain_timer(uv_timer_t *t)
{
    qp_t *qp = t->data;
    uint64_t now = kp_now_ns();
    uint64_t quiet_until = qp->last_traffic_ns + quiet_period_ns(qp);
    if (now >= quiet_until) {
        on_drained(qp);
        return;
    }
    uv_timer_start(&qp->drain_timer, on_drain_timer, (quiet_until - now) / 1000000 + 1, 0);
}

void qp_drain_init(qp_t *qp, void (*drained)(qp_t *qp))
{
    qp->drained = drained;
    uv_timer_init(qp->loop, &qp->drain_timer);
    qp->drain_timer.data = qp;
    qp->exit_code = -1; /* no exit asked for yet */
}

void qp_drain_start(qp_t *qp)
{
    if (qp->draining) {
        if (uv_is_active((uv_handle_t *)&qp->drain_timer))
            return;
        on_drain_timer(&qp->drain_timer); /* already drained once: act now */
        return;
    }
    qp->draining = 1;
    qp->last_traffic_ns = kp_now_ns();
    kp_log(KP_LOG_INFO, "draining: health checks now fail; serving until %.3gs pass without a request",
           qp->cfg.drain_quiet_period_s);
    on_drain_timer(&qp->drain_timer);
}

void qp_drain_note_traffic(qp_t *qp)
{
    qp->last_traffic_ns = kp_now_ns();
}

void qp_drain_check(qp_t *qp)
{
    answer_waiters_if_drained(qp);
    if (qp->stopped_accepting && qp->traffic_in_flight == 0 &&
        kp_http_server_busy(&qp->main_server) == 0)
        qp->drained(qp);
}

void qp_on_admin_request(kp_http_request_t *req, void *ctx)
{
    qp_t *qp = ctx;
    /* Matched as Knative's Go mux matches it: a kubelet before 1.26 joins
     * "http://host:port/" and the hook's path into "//wait-for-drain". */
    if (!kp_http_target_is(req->url, req->url_len, "/wait-for-drain")) {
        kp_http_conn_respond(req->conn, 404, "text/plain; charset=utf-8", "not found\n", 10);
        return;
    }
    qp_drain_waiter_t *w = calloc(1, sizeof *w);
    if (!w) {
        kp_http_conn_respond(req->conn, 503, "text/plain", "out of memory\n", 14);
        return;
    }
    w->qp = qp;
    w->req = req;
    w->next = qp->drain_waiters;
    if (qp->drain_waiters)
        qp->drain_waiters->prev = w;
    qp->drain_waiters = w;
    kp_http_conn_bind(req->conn, &waiter_ops, w);
    qp_drain_start(qp);
}
