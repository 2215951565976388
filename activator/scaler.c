/* The embedded autoscaler: every second it scrapes each ready pod's
 * queue-proxy stats (Knative's Stat protobuf) and records the revision's
 * total concurrency; every two seconds the KPA decides the pod count and
 * the backend is told. The first request held at zero decides at once. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activator.h"
#include "autoscaling/kpa.h"
#include "base/log.h"
#include "observe.h"
#include "stat.pb-c.h"

#define SCRAPE_PERIOD_MS 1000
#define DECIDE_PERIOD_MS 2000

typedef struct act_scaler {
    act_revision_t *rev;
    kp_kpa_config_t cfg;
    kp_kpa_t kpa;
    uv_timer_t scrape_timer;
    uv_timer_t decide_timer;
    double scraped_concurrency; /* sum over pods answered this round */
    int scrapes_pending;
    int closing;
    int pending_closes;
} act_scaler_t;

typedef struct scrape {
    act_scaler_t *sc;
    act_pod_t *pod;
    kp_upstream_t *conn;
    int status;
    size_t len;
    uint8_t body[512];
} scrape_t;

static void apply_decision(act_scaler_t *sc, int force_log)
{
    act_revision_t *rev = sc->rev;
    kp_kpa_decision_t d;
    if (kp_kpa_decide(&sc->kpa, kp_now_ns(), rev->n_ready, &d) != 0)
        return;
    int want = d.desired_scale;
    /* A request is waiting and nothing runs: one pod at least, whatever
     * the windows still say. */
    if (want == 0 && (rev->n_held > 0 || rev->peer_load > 0))
        want = 1;
    if (want == rev->desired && !force_log)
        return;
    if (want != rev->desired) {
        act_observe_scale(rev, rev->desired, want, d.reason);
        rev->desired = want;
        rev->act->backend->set_scale(rev->act->backend, rev->backend_rev, want);
    }
}

static void record_round(act_scaler_t *sc)
{
    act_revision_t *rev = sc->rev;
    /* Requests the activators hold or have in flight count as load; the
     * pods' proxied share was subtracted so nothing counts twice. */
    double total = sc->scraped_concurrency + rev->n_held + rev->in_flight + rev->peer_load;
    kp_kpa_record(&sc->kpa, kp_now_ns(), total);
}

static void scrape_finished(scrape_t *s)
{
    act_scaler_t *sc = s->sc;
    act_pod_t *pod = s->pod;
    pod->scraping = 0;
    if (s->status == 200 && !sc->closing) {
        Metrics__Stat *stat = metrics__stat__unpack(NULL, s->len, s->body);
        if (stat) {
            double own = stat->average_concurrent_requests - stat->average_proxied_concurrent_requests;
            sc->scraped_concurrency += own > 0 ? own : 0;
            metrics__stat__free_unpacked(stat, NULL);
        }
    }
    free(s);
    act_revision_pod_settled(pod);
    if (--sc->scrapes_pending > 0)
        return;
    if (!sc->closing)
        record_round(sc);
    else if (sc->pending_closes == 0)
        free(sc); /* the last scrape outlived the timers */
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

static void scrape_pod(act_scaler_t *sc, act_pod_t *pod)
{
    if (!pod->metrics_pool) {
        pod->metrics_pool =
            kp_upstream_pool_for(sc->rev->act->loop, pod->info.ip, pod->info.metrics_port, 1);
        if (!pod->metrics_pool)
            return;
    }
    scrape_t *s = calloc(1, sizeof *s);
    if (!s)
        return;
    s->sc = sc;
    s->pod = pod;
    pod->scraping = 1;
    sc->scrapes_pending++;
    int rc = kp_upstream_get(pod->metrics_pool, &scrape_ops, s, &s->conn);
    if (rc == 1)
        send_scrape(s);
    else if (rc < 0)
        on_scrape_error(s, rc, 0);
}

static void on_scrape_tick(uv_timer_t *t)
{
    act_scaler_t *sc = t->data;
    if (sc->scrapes_pending > 0)
        return; /* a pod is slow to answer: skip a round rather than pile up */
    sc->scraped_concurrency = 0;
    sc->scrapes_pending = 1; /* held until every scrape is started */
    for (act_pod_t *pod = sc->rev->pods; pod; pod = pod->next)
        if (pod->ready && !pod->removed && !pod->scraping)
            scrape_pod(sc, pod);
    if (--sc->scrapes_pending == 0)
        record_round(sc);
}

static void on_decide_tick(uv_timer_t *t)
{
    apply_decision(t->data, 0);
}

/* Knative's defaults, then the global settings, then the revision's
 * annotations (values were checked when the config was loaded). */
static void scaler_config(const act_revision_t *rev, kp_kpa_config_t *cfg)
{
    const kp_activator_config_t *global = rev->act->cfg;
    kp_kpa_config_defaults(cfg);
    char err[256];
    for (size_t i = 0; i < global->n_autoscaler; i++)
        if (kp_kpa_config_set(cfg, global->autoscaler[i].key, global->autoscaler[i].value, err,
                              sizeof err) != 0)
            kp_log(KP_LOG_WARN, "autoscaler: %s", err);
    for (size_t i = 0; i < rev->spec->n_annotations; i++)
        if (kp_kpa_config_set(cfg, rev->spec->annotations[i].key, rev->spec->annotations[i].value,
                              err, sizeof err) != 0)
            kp_log(KP_LOG_WARN, "revision %s: %s", rev->key, err);
    cfg->container_concurrency = rev->spec->container_concurrency;
}

void act_scaler_init(act_revision_t *rev)
{
    act_scaler_t *sc = calloc(1, sizeof *sc);
    if (!sc)
        abort();
    sc->rev = rev;
    rev->scaler = sc;
    act_t *act = rev->act;
    scaler_config(rev, &sc->cfg);
    kp_kpa_init(&sc->kpa, &sc->cfg, kp_now_ns());
    uv_timer_init(act->loop, &sc->scrape_timer);
    uv_timer_init(act->loop, &sc->decide_timer);
    sc->scrape_timer.data = sc->decide_timer.data = sc;
    uv_timer_start(&sc->scrape_timer, on_scrape_tick, SCRAPE_PERIOD_MS, SCRAPE_PERIOD_MS);
    uv_timer_start(&sc->decide_timer, on_decide_tick, 0, DECIDE_PERIOD_MS);
}

void act_scaler_reconfigure(act_revision_t *rev)
{
    act_scaler_t *sc = rev->scaler;
    if (!sc || sc->closing)
        return;
    /* The windows keep their history; only the settings change. */
    scaler_config(rev, &sc->cfg);
    sc->kpa.cfg = sc->cfg;
}

void act_scaler_poke(act_revision_t *rev)
{
    act_scaler_t *sc = rev->scaler;
    if (!sc || sc->closing)
        return;
    kp_kpa_poke(&sc->kpa, kp_now_ns());
    apply_decision(sc, 0);
}

void act_scaler_note_held(act_revision_t *rev)
{
    act_scaler_t *sc = rev->scaler;
    if (!sc || sc->closing)
        return;
    double load = rev->n_held + rev->in_flight + rev->peer_load;
    int needed = (int)ceil(load / kp_kpa_config_target(&sc->cfg));
    if (needed <= rev->desired)
        return;
    kp_kpa_burst(&sc->kpa, kp_now_ns(), load);
    apply_decision(sc, 0);
}

void act_scaler_adopt(act_revision_t *rev)
{
    act_scaler_t *sc = rev->scaler;
    if (!sc || sc->closing)
        return;
    /* One request's worth of demand, kept for a stable window: then the
     * windows decide, and a scale to zero is written like any other. */
    kp_kpa_burst(&sc->kpa, kp_now_ns(), 1);
    apply_decision(sc, 0);
}

static void on_scaler_handle_closed(uv_handle_t *h)
{
    act_scaler_t *sc = h->data;
    if (--sc->pending_closes == 0 && sc->scrapes_pending == 0)
        free(sc);
}

void act_scaler_close(act_revision_t *rev)
{
    act_scaler_t *sc = rev->scaler;
    if (!sc || sc->closing)
        return;
    sc->closing = 1;
    rev->scaler = NULL;
    sc->pending_closes = 2;
    uv_close((uv_handle_t *)&sc->scrape_timer, on_scaler_handle_closed);
    uv_close((uv_handle_t *)&sc->decide_timer, on_scaler_handle_closed);
}
