/* Scrapes a revision's ready pods once a second and records the round in
 * its autoscaler. A round waits for every pod's answer (or error); a pod
 * slow to answer makes the next round skip rather than pile up. */
#include "collector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stat.pb-c.h"

#define SCRAPE_PERIOD_MS 1000

struct act_collector {
    act_revision_t *rev;
    uv_timer_t timer;
    double pods_concurrency; /* sum over pods answered this round */
    int scrapes_pending;
    int closing;
    int timer_open;
};

typedef struct scrape {
    act_collector_t *c;
    act_pod_t *pod;
    kp_upstream_t *conn;
    int status;
    size_t len;
    uint8_t body[512];
} scrape_t;

static void round_done(act_collector_t *c)
{
    if (c->rev->autoscaler)
        act_autoscaler_record(c->rev->autoscaler, c->pods_concurrency);
}

static void scrape_finished(scrape_t *s)
{
    act_collector_t *c = s->c;
    act_pod_t *pod = s->pod;
    pod->scraping = 0;
    if (s->status == 200 && !c->closing) {
        Metrics__Stat *stat = metrics__stat__unpack(NULL, s->len, s->body);
        if (stat) {
            /* Requests the activator proxied are counted by the activator
             * itself (held and in flight), so they are left out here. */
            double own =
                stat->average_concurrent_requests - stat->average_proxied_concurrent_requests;
            c->pods_concurrency += own > 0 ? own : 0;
            metrics__stat__free_unpacked(stat, NULL);
        }
    }
    free(s);
    act_revision_pod_settled(pod);
    if (--c->scrapes_pending > 0)
        return;
    if (!c->closing)
        round_done(c);
    else if (!c->timer_open)
        free(c); /* the last scrape outlived the timer */
}

static void on_scrape_head(void *ctx, const kp_upstream_response_t *r)
{
    ((scrape_t *)ctx)->status = r->status;
}

static void on_scrape_body(void *ctx, const char *data, size_t len)
{
    scrape_t *s = ctx;
    if (s->len + len > sizeof s->body) {
        s->status = 0; /* not a Stat */
        len = sizeof s->body - s->len;
    }
    memcpy(s->body + s->len, data, len);
    s->len += len;
}

static void on_scrape_end(void *ctx)
{
    scrape_t *s = ctx;
    kp_upstream_done(s->conn);
    scrape_finished(s);
}

static void on_scrape_error(void *ctx, int err, int started)
{
    scrape_t *s = ctx;
    s->status = 0;
    scrape_finished(s);
}

static void send_scrape(scrape_t *s)
{
    char req[200];
    int n = snprintf(req, sizeof req,
                     "GET /metrics HTTP/1.1\r\nHost: %s:%d\r\nAccept: application/protobuf\r\n"
                     "User-Agent: Knative-Autoscaler\r\n\r\n",
                     s->pod->info.ip, s->pod->info.metrics_port);
    uv_buf_t b = uv_buf_init(req, (unsigned)n);
    kp_upstream_write(s->conn, &b, 1);
}

static void on_scrape_connected(void *ctx, int status)
{
    scrape_t *s = ctx;
    if (status < 0) {
        s->status = 0;
        scrape_finished(s);
        return;
    }
    send_scrape(s);
}

static const kp_upstream_ops_t scrape_ops = {
    .on_connected = on_scrape_connected,
    .on_response_head = on_scrape_head,
    .on_body = on_scrape_body,
    .on_response_end = on_scrape_end,
    .on_error = on_scrape_error,
};

static void scrape_pod(act_collector_t *c, act_pod_t *pod)
{
    if (!pod->metrics_pool) {
        pod->metrics_pool =
            kp_upstream_pool_for(c->rev->act->loop, pod->info.ip, pod->info.metrics_port, 1);
        if (!pod->metrics_pool)
            return;
    }
    scrape_t *s = calloc(1, sizeof *s);
    if (!s)
        return;
    s->c = c;
    s->pod = pod;
    pod->scraping = 1;
    c->scrapes_pending++;
    int rc = kp_upstream_get(pod->metrics_pool, &scrape_ops, s, &s->conn);
    if (rc == 1)
        send_scrape(s);
    else if (rc < 0)
        on_scrape_error(s, rc, 0);
}

static void on_tick(uv_timer_t *t)
{
    act_collector_t *c = t->data;
    if (c->scrapes_pending > 0)
        return; /* a pod is slow to answer: skip a round rather than pile up */
    c->pods_concurrency = 0;
    c->scrapes_pending = 1; /* held until every scrape is started */
    for (act_pod_t *pod = c->rev->pods; pod; pod = pod->next)
        if (pod->ready && !pod->removed && !pod->scraping)
            scrape_pod(c, pod);
    if (--c->scrapes_pending == 0)
        round_done(c);
}

act_collector_t *act_collector_new(act_revision_t *rev)
{
    act_collector_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->rev = rev;
    uv_timer_init(rev->act->loop, &c->timer);
    c->timer.data = c;
    c->timer_open = 1;
    uv_timer_start(&c->timer, on_tick, SCRAPE_PERIOD_MS, SCRAPE_PERIOD_MS);
    return c;
}

static void on_timer_closed(uv_handle_t *h)
{
    act_collector_t *c = h->data;
    c->timer_open = 0;
    if (c->scrapes_pending == 0)
        free(c);
}

void act_collector_close(act_collector_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}
