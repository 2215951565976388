/* /status as JSON. See observe_status.h. */
#include "observe_status.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "collector.h"
#include "http/upstream.h"
#include "revision.h"

static void json_str(kp_strbuf_t *sb, const char *s)
{
    if (!s) {
        kp_strbuf_puts(sb, "null");
        return;
    }
    kp_strbuf_puts(sb, "\"");
    kp_strbuf_json_escape(sb, s, strlen(s));
    kp_strbuf_puts(sb, "\"");
}

/* Three decimals are all a reader needs; the rest is noise. */
static void json_milli(kp_strbuf_t *sb, double v)
{
    kp_strbuf_json_number(sb, round(v * 1000) / 1000);
}

static double age_seconds(uint64_t since_ns, uint64_t now_ns)
{
    return since_ns && now_ns > since_ns ? (double)(now_ns - since_ns) / 1e9 : 0;
}

static void status_pods(kp_strbuf_t *sb, const act_revision_t *rev, uint64_t now)
{
    kp_strbuf_puts(sb, "\"pods\":[");
    int first = 1;
    for (const act_pod_t *p = rev->pods; p; p = p->next) {
        kp_strbuf_puts(sb, first ? "{\"id\":" : ",{\"id\":");
        first = 0;
        json_str(sb, p->info.id);
        kp_strbuf_puts(sb, ",\"ip\":");
        json_str(sb, p->info.ip);
        kp_strbuf_printf(sb, ",\"port\":%d,\"ready\":%s,\"removed\":%s,\"in_flight\":%d,",
                         p->info.serving_port, p->ready ? "true" : "false",
                         p->removed ? "true" : "false", p->in_flight);
        kp_strbuf_puts(sb, "\"age_seconds\":");
        json_milli(sb, age_seconds(p->added_ns, now));
        kp_strbuf_puts(sb, "}");
    }
    kp_strbuf_puts(sb, "]");
}

/* What the KPA saw at its last decision, and why it wants what it wants. */
static void status_autoscaler(kp_strbuf_t *sb, const act_revision_t *rev, uint64_t now)
{
    static const act_autoscaler_state_t none;
    const act_autoscaler_state_t *st =
        rev->autoscaler ? act_autoscaler_state(rev->autoscaler) : &none;
    const kp_kpa_decision_t *d = &st->decision;
    kp_strbuf_puts(sb, "\"autoscaler\":{\"class\":");
    json_str(sb, st->hpa_class ? KP_HPA_CLASS : KP_KPA_CLASS);
    kp_strbuf_puts(sb, ",\"metric\":");
    json_str(sb, kp_kpa_metric_name(st->metric));
    /* The KPA measures one metric; the other's numbers read 0. */
    static const char *const names[2][3] = {
        {"stable_concurrency", "panic_concurrency", "target_concurrency_per_pod"},
        {"stable_rps", "panic_rps", "target_rps_per_pod"}};
    for (int m = 0; m < 2; m++) {
        int measured = !st->hpa_class && (st->metric == KP_KPA_METRIC_RPS) == m;
        const double values[3] = {d->observed_stable, d->observed_panic, d->target};
        for (int k = 0; k < 3; k++) {
            kp_strbuf_printf(sb, ",\"%s\":", names[m][k]);
            json_milli(sb, measured ? values[k] : 0);
        }
    }
    kp_strbuf_printf(sb, ",\"panic_mode\":%s,\"stable_pods\":%d,\"panic_pods\":%d,",
                     d->panicking ? "true" : "false", d->stable_pods, d->panic_pods);
    kp_strbuf_puts(sb, "\"excess_burst_capacity\":");
    json_milli(sb, d->excess_burst_capacity);
    kp_strbuf_puts(sb, ",\"reason\":");
    json_str(sb, st->reason);
    kp_strbuf_puts(sb, ",\"decided_age_seconds\":");
    if (st->decided_ns)
        json_milli(sb, age_seconds(st->decided_ns, now));
    else
        kp_strbuf_puts(sb, "null");
    kp_strbuf_puts(sb, "},\"last_scale\":");
    if (st->scaled_ns) {
        kp_strbuf_printf(sb, "{\"from\":%d,\"to\":%d,\"reason\":", st->scale_from, st->scale_to);
        json_str(sb, st->scale_reason);
        kp_strbuf_puts(sb, ",\"age_seconds\":");
        json_milli(sb, age_seconds(st->scaled_ns, now));
        kp_strbuf_puts(sb, "}");
    } else {
        kp_strbuf_puts(sb, "null");
    }
}

static void status_failure(kp_strbuf_t *sb, const act_failure_t *f, uint64_t now)
{
    kp_strbuf_puts(sb, "{\"reason\":");
    json_str(sb, f->reason);
    kp_strbuf_printf(sb, ",\"count\":%llu,\"age_seconds\":", (unsigned long long)f->count);
    json_milli(sb, age_seconds(f->at_ns, now));
    kp_strbuf_puts(sb, "}");
}

static void status_revision(kp_strbuf_t *sb, const act_revision_t *rev, uint64_t now)
{
    const kp_revision_spec_t *spec = rev->spec;
    const uint64_t *by_class = rev->responses.by_class;
    kp_strbuf_puts(sb, "{\"name\":");
    json_str(sb, spec->name);
    kp_strbuf_printf(sb,
                     ",\"container_concurrency\":%d,\"timeout_seconds\":%d,\"desired_pods\":%d,"
                     "\"ready_pods\":%d,\"held\":%d,\"in_flight\":%d,\"cold_starts\":%llu,"
                     "\"requests\":{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,"
                     "\"5xx\":%llu},",
                     spec->container_concurrency, spec->timeout_s, act_revision_desired(rev),
                     rev->n_ready, rev->n_held, rev->in_flight,
                     (unsigned long long)rev->cold_starts, (unsigned long long)by_class[1],
                     (unsigned long long)by_class[2], (unsigned long long)by_class[3],
                     (unsigned long long)by_class[4], (unsigned long long)by_class[5]);
    status_autoscaler(sb, rev, now);
    /* Why it cannot run, while it cannot: its requests get 503 at once. */
    kp_strbuf_puts(sb, ",\"failure\":");
    json_str(sb, act_revision_failure(rev));
    kp_strbuf_printf(sb, ",\"failed_requests\":%llu", (unsigned long long)rev->failed_fast);
    kp_strbuf_puts(sb, ",\"last_failure\":");
    if (rev->failures[0].at_ns)
        status_failure(sb, &rev->failures[0], now);
    else
        kp_strbuf_puts(sb, "null");
    kp_strbuf_puts(sb, ",\"recent_failures\":[");
    for (size_t i = 0; i < ACT_REVISION_FAILURES && rev->failures[i].at_ns; i++) {
        if (i)
            kp_strbuf_puts(sb, ",");
        status_failure(sb, &rev->failures[i], now);
    }
    kp_strbuf_puts(sb, "],");
    if (rev->collector) {
        /* Rounds that keep coming say no pod stalls the autoscaler. */
        const act_collector_counts_t *counts = act_collector_counts(rev->collector);
        kp_strbuf_printf(sb, "\"stats\":{\"rounds\":%llu,\"scrape_timeouts\":%llu},",
                         (unsigned long long)counts->rounds,
                         (unsigned long long)counts->scrape_timeouts);
    }
    status_pods(sb, rev, now);
    kp_strbuf_puts(sb, "}");
}

static void status_service(kp_strbuf_t *sb, act_t *act, const kp_service_spec_t *svc, uint64_t now)
{
    kp_strbuf_puts(sb, "{\"name\":");
    json_str(sb, svc->name);
    kp_strbuf_puts(sb, ",\"namespace\":");
    json_str(sb, svc->namespace_);
    if (act->cfg->domain) {
        char host[512];
        snprintf(host, sizeof host, "%s.%s.%s", svc->name, svc->namespace_, act->cfg->domain);
        kp_strbuf_puts(sb, ",\"url\":");
        json_str(sb, host);
    }
    kp_strbuf_puts(sb, ",\"traffic\":[");
    for (size_t i = 0; i < svc->n_traffic; i++) {
        const kp_traffic_target_t *t = &svc->traffic[i];
        kp_strbuf_puts(sb, i ? ",{\"revision_name\":" : "{\"revision_name\":");
        json_str(sb, t->revision_name);
        kp_strbuf_printf(sb, ",\"percent\":%d", t->percent);
        if (t->tag) {
            kp_strbuf_puts(sb, ",\"tag\":");
            json_str(sb, t->tag);
        }
        kp_strbuf_puts(sb, "}");
    }
    kp_strbuf_puts(sb, "],\"revisions\":[");
    for (size_t i = 0; i < svc->n_revisions; i++) {
        if (i)
            kp_strbuf_puts(sb, ",");
        const act_revision_t *rev = act_revision_of(&svc->revisions[i]);
        if (rev)
            status_revision(sb, rev, now);
        else
            kp_strbuf_puts(sb, "null");
    }
    kp_strbuf_puts(sb, "]}");
}

void act_observe_render_status(act_t *act, kp_strbuf_t *sb)
{
    uint64_t now = kp_now_ns();
    kp_strbuf_printf(sb, "{\"draining\":%s,\"backend\":", act->draining ? "true" : "false");
    json_str(sb, act->backend ? act->backend->name : "");
    const act_capacity_t *cap = &act->capacity;
    kp_strbuf_printf(sb,
                     ",\"capacity\":{\"max_requests\":%zu,\"active_requests\":%zu,"
                     "\"rejected\":%llu,\"max_connections\":%zu,\"connections\":%zu,"
                     "\"max_requests_from\":",
                     cap->max_requests, cap->active_requests, (unsigned long long)cap->rejected,
                     cap->clients.max_connections, cap->clients.n_conns);
    json_str(sb, cap->max_requests_source);
    kp_strbuf_printf(sb,
                     ",\"open_files_limit\":%llu,\"pods\":%zu,\"pod_connections\":%zu,"
                     "\"memory_limit_bytes\":%llu,\"memory_limit_from\":",
                     (unsigned long long)cap->open_files_limit, cap->pods,
                     kp_upstream_open_connections(), (unsigned long long)cap->memory.bytes);
    json_str(sb, cap->memory.source);
    kp_strbuf_puts(sb, "},\"services\":[");
    for (size_t i = 0; i < act->cfg->n_services; i++) {
        if (i)
            kp_strbuf_puts(sb, ",");
        status_service(sb, act, &act->cfg->services[i], now);
    }
    kp_strbuf_puts(sb, "]}\n");
}
