/* Scrapes a revision's ready pods once a second and records each round in
 * its autoscaler. No pod can hold a round up: a round is recorded when its
 * last scrape ends or at the next tick, whichever comes first, and a scrape
 * gets SCRAPE_TIMEOUT_NS before its connection is dropped. A pod whose
 * scrape is still under way is not asked again meanwhile; its late answer
 * counts in the round it arrives in, and until then the pods that answered
 * stand for it. */
#include "collector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "stat.pb-c.h"

#define SCRAPE_PERIOD_MS 1000
/* Knative's scraper gives a pod 3 s (httpClientTimeout,
 * pkg/autoscaler/metrics/stats_scraper.go). */
#define SCRAPE_TIMEOUT_NS (3 * 1000000000ull)

typedef struct scrape scrape_t;

struct act_collector {
    act_revision_t *rev;
    uv_timer_t timer;
    scrape_t *scrapes; /* under way, whatever their round */
    /* The round under way. */
    uint64_t round;
    int round_open;
    int round_pending;  /* its scrapes not ended yet */
    int round_pods;     /* ready pods when it began */
    int round_answered; /* pods whose Stat came back */
    double round_concurrency;
    double round_rps; /* arrivals per second at the pods, proxied or not */
    act_collector_counts_t counts;
    int closing;
};

struct scrape {
    scrape_t *next, *prev;
    act_collector_t *c;
    act_pod_t *pod;
    kp_upstream_t *conn; /* NULL once the exchange is over */
    uint64_t round;
    uint64_t started_ns;
    int status;
    size_t len;
    uint8_t body[512];
};

static void round_close(act_collector_t *c)
{
    c->round_open = 0;
    double pods_concurrency = c->round_concurrency, pods_rps = c->round_rps;
    /* As Knative's scraper does with a sample: the pods that answered
     * stand for the ready ones that did not. */
    if (c->round_answered > 0 && c->round_answered < c->round_pods) {
        pods_concurrency = pods_concurrency * c->round_pods / c->round_answered;
        pods_rps = pods_rps * c->round_pods / c->round_answered;
    }
    c->counts.rounds++;
    if (c->rev->autoscaler)
        act_autoscaler_record(c->rev->autoscaler, pods_concurrency, pods_rps);
}

static void scrape_unlink(act_collector_t *c, scrape_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->scrapes = s->next;
    if (s->next)
        s->next->prev = s->prev;
}

/* The scrape is over, its connection done with or closed. */
static void scrape_end(scrape_t *s)
{
    act_collector_t *c = s->c;
    act_pod_t *pod = s->pod;
    scrape_unlink(c, s);
    pod->scraping = 0;
    /* A late answer (its round closed at the tick) goes into the round
     * under way, which left the pod out while it was being scraped. */
    int in_round = c->round_open && s->round == c->round;
    if (c->round_open && s->status == 200) {
        Metrics__Stat *stat = metrics__stat__unpack(NULL, s->len, s->body);
        if (stat) {
            /* Requests the activator proxied are counted by the activator
             * itself (held and in flight), so they are left out here. */
            double own =
                stat->average_concurrent_requests - stat->average_proxied_concurrent_requests;
            c->round_concurrency += own > 0 ? own : 0;
            c->round_rps += stat->request_count > 0 ? stat->request_count : 0;
            c->round_answered++;
            metrics__stat__free_unpacked(stat, NULL);
        }
    }
    free(s);
    if (in_round && --c->round_pending == 0)
        round_close(c);
    act_revision_pod_settled(pod);
}

/* Drops the exchange (no callback follows) and ends the scrape. */
static void scrape_abort(scrape_t *s)
{
    if (s->conn)
        kp_upstream_close(s->conn);
    s->conn = NULL;
    s->status = 0;
    scrape_end(s);
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
    s->conn = NULL;
    s->pod->scrape_timeouts = 0;
    scrape_end(s);
}

static void on_scrape_error(void *ctx, int err, int started)
{
    scrape_t *s = ctx;
    s->conn = NULL; /* closed by the upstream already */
    s->status = 0;
    scrape_end(s);
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
        on_scrape_error(s, status, 0);
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
    s->round = c->round;
    s->started_ns = kp_now_ns();
    s->next = c->scrapes;
    if (c->scrapes)
        c->scrapes->prev = s;
    c->scrapes = s;
    pod->scraping = 1;
    c->round_pending++;
    int rc = kp_upstream_get(pod->metrics_pool, &scrape_ops, s, &s->conn);
    if (rc == 1)
        send_scrape(s);
    else if (rc < 0)
        on_scrape_error(s, rc, 0);
}

/* A pod that accepts the connection and never answers (a black hole, a
 * frozen process) loses its scrape here. */
static void time_out_scrapes(act_collector_t *c, uint64_t now)
{
    for (scrape_t *s = c->scrapes, *next; s; s = next) {
        next = s->next;
        if (now - s->started_ns < SCRAPE_TIMEOUT_NS)
            continue;
        act_pod_t *pod = s->pod;
        c->counts.scrape_timeouts++;
        if (pod->scrape_timeouts++ == 0) { /* once until it answers again */
            kp_log_kv(KP_LOG_WARN, "pod stats scrape timed out", "revision", c->rev->key, "pod",
                      pod->info.id, "ip", pod->info.ip, NULL);
            act_revision_note_failure(c->rev, "stats scrape of pod %s timed out after %llu s",
                                      pod->info.id,
                                      (unsigned long long)(SCRAPE_TIMEOUT_NS / 1000000000ull));
        }
        scrape_abort(s);
    }
}

static void on_tick(uv_timer_t *t)
{
    act_collector_t *c = t->data;
    time_out_scrapes(c, kp_now_ns());
    if (c->round_open)
        round_close(c); /* its deadline: a round lasts one period at most */
    c->round++;
    c->round_open = 1;
    c->round_pods = 0;
    c->round_answered = 0;
    c->round_concurrency = 0;
    c->round_rps = 0;
    c->round_pending = 1; /* held until every scrape is started */
    for (act_pod_t *pod = c->rev->pods; pod; pod = pod->next) {
        if (!pod->ready || pod->removed)
            continue;
        c->round_pods++;
        if (!pod->scraping)
            scrape_pod(c, pod);
    }
    if (c->round_open && --c->round_pending == 0)
        round_close(c);
}

act_collector_t *act_collector_new(act_revision_t *rev)
{
    act_collector_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->rev = rev;
    uv_timer_init(rev->act->loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, on_tick, SCRAPE_PERIOD_MS, SCRAPE_PERIOD_MS);
    return c;
}

void act_collector_forget_pod(act_collector_t *c, act_pod_t *pod)
{
    for (scrape_t *s = c->scrapes; s; s = s->next) {
        if (s->pod == pod) {
            scrape_abort(s);
            return;
        }
    }
}

const act_collector_counts_t *act_collector_counts(const act_collector_t *c)
{
    return &c->counts;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void act_collector_close(act_collector_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->round_open = 0;
    while (c->scrapes)
        scrape_abort(c->scrapes);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}
