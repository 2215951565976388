/* Time-weighted concurrency and arrival rates per reporting window, as
 * Knative's queue-proxy feeds its autoscaler (networking pkg/http/stats).
 * See stats.h. */
#include "stats.h"

#include <string.h>

void kp_stats_init(kp_stats_t *s, uint64_t now_ns)
{
    memset(s, 0, sizeof *s);
    s->last_change_ns = now_ns;
    s->window_start_ns = now_ns;
}

/* Adds the time since the last change at the concurrency that held during
 * it. A timestamp older than the last change adds nothing (Knative ignores
 * such negative spans too); the event still counts. */
static void integrate(kp_stats_t *s, uint64_t now_ns)
{
    if (now_ns <= s->last_change_ns)
        return;
    int64_t dt = (int64_t)(now_ns - s->last_change_ns);
    s->concurrency_ns += s->concurrency * dt;
    s->proxied_concurrency_ns += s->proxied_concurrency * dt;
    s->last_change_ns = now_ns;
}

void kp_stats_request_in(kp_stats_t *s, uint64_t now_ns, int proxied)
{
    integrate(s, now_ns);
    s->concurrency++;
    s->requests++;
    if (proxied) {
        s->proxied_concurrency++;
        s->proxied_requests++;
    }
}

void kp_stats_request_out(kp_stats_t *s, uint64_t now_ns, int proxied)
{
    integrate(s, now_ns);
    s->concurrency--;
    if (proxied)
        s->proxied_concurrency--;
}

void kp_stats_report(kp_stats_t *s, uint64_t now_ns, kp_stat_report_t *out)
{
    integrate(s, now_ns);
    /* last_change_ns never moves backwards, so the window is measured up to
     * it rather than to a possibly stale now_ns. */
    uint64_t window_ns = s->last_change_ns - s->window_start_ns;
    if (window_ns == 0) {
        memset(out, 0, sizeof *out);
        return;
    }
    /* One division each, so results are correctly rounded (and exact for
     * round numbers like 2 in flight for half of 1 s). */
    double window = (double)window_ns;
    out->average_concurrency = (double)s->concurrency_ns / window;
    out->average_proxied_concurrency = (double)s->proxied_concurrency_ns / window;
    out->request_count = (double)s->requests * 1e9 / window;
    out->proxied_request_count = (double)s->proxied_requests * 1e9 / window;

    s->window_start_ns = s->last_change_ns;
    s->concurrency_ns = 0;
    s->proxied_concurrency_ns = 0;
    s->requests = 0;
    s->proxied_requests = 0;
}
