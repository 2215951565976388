/* When a Lease held by someone else has run out, judged as client-go's
 * leaderelection does: by our own monotonic clock since the record last
 * changed, never by comparing its renewTime (another machine's wall clock)
 * with ours; and the record the elector writes over one it read. Pure:
 * the elector passes in uv_now and the wall clock. */
#include <stdint.h>
#include <string.h>

#include "internal.h"

/* client-go compares the whole LeaderElectionRecord (the Lease's spec);
 * metadata such as resourceVersion is not part of it. */
static int same_record(const kp_kube_lease_t *a, const kp_kube_lease_t *b)
{
    return strcmp(a->holder, b->holder) == 0 && a->duration_s == b->duration_s &&
           a->renew_time == b->renew_time && a->acquire_time == b->acquire_time &&
           a->transitions == b->transitions;
}

void kp_kube_lease_observe(kp_kube_lease_seen_t *s, const kp_kube_lease_t *l, uint64_t now_ms)
{
    if (s->have && same_record(&s->record, l)) {
        /* Unchanged: keep changed_ms, but the newest resourceVersion is the
         * one a write must name. */
        memcpy(s->record.resource_version, l->resource_version, sizeof l->resource_version);
        return;
    }
    s->record = *l;
    s->changed_ms = now_ms;
    s->have = 1;
}

uint64_t kp_kube_lease_valid_ms(const kp_kube_lease_seen_t *s, int default_duration_s,
                                uint64_t now_ms)
{
    if (!s->have || !s->record.holder[0])
        return 0;
    /* client-go reads the duration from the record; one without it (not
     * written by a client-go elector) gets ours rather than none. */
    int dur_s = s->record.duration_s > 0 ? s->record.duration_s : default_duration_s;
    uint64_t until = s->changed_ms + (uint64_t)dur_s * 1000;
    return until > now_ms ? until - now_ms : 0;
}

void kp_kube_lease_next(const kp_kube_lease_t *read, int takeover, double now, int *transitions,
                        double *acquire_time)
{
    *transitions = read->transitions;
    *acquire_time = now;
    if (takeover && *transitions < INT32_MAX)
        ++*transitions; /* an int32 the API keeps >= 0: stays at the top */
    else if (read->acquire_time > 0)
        *acquire_time = read->acquire_time;
}
