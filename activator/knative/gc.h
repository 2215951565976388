/* config-gc: which of a Configuration's revisions to delete, by Knative's
 * rules (pkg/reconciler/gc): revisions that are routed (routingState not
 * "reserve"), the latest ready or created one, or marked no-gc are never
 * collected; of the rest, keep min-non-active-revisions, delete those
 * older than retain-since-create-time that were last active longer than
 * retain-since-last-active-time ago, then the oldest beyond
 * max-non-active-revisions. The clock is the caller's, so tests pick it. */
#ifndef KP_KN_GC_H
#define KP_KN_GC_H

#include <cJSON.h>
#include <stddef.h>
#include <time.h>

#define KN_GC_DISABLED (-1LL)

typedef struct kn_gc_config {
    long long retain_since_create_s;      /* 48h */
    long long retain_since_last_active_s; /* 15h */
    long long min_non_active;             /* 20 */
    long long max_non_active;             /* 1000 */
} kn_gc_config_t;

void kn_gc_config_init(kn_gc_config_t *c);
/* One config-gc key ("retain-since-create-time": "48h" or "disabled"...).
 * 0, 1 for a key that is not config-gc's (ignored), or -1 with why. */
int kn_gc_config_set(kn_gc_config_t *c, const char *key, const char *value, char *why,
                     size_t why_len);
/* -1 with why when max < min (both enabled). */
int kn_gc_config_check(const kn_gc_config_t *c, char *why, size_t why_len);

/* Go-style durations: "15h", "1h30m", "90s", "0". -1 when malformed. */
int kn_gc_parse_duration(const char *s, long long *seconds);

/* Which of revs (one Configuration's) to delete now: their indices in
 * out (room for n), oldest first; returns how many. in_traffic (may be
 * NULL) says whether a route sends a revision traffic or names it by a
 * tag: such a revision is kept whatever its label says. */
size_t kn_gc_collect(const kn_gc_config_t *c, const cJSON *const *revs, size_t n,
                     const char *latest_ready, const char *latest_created, time_t now,
                     int (*in_traffic)(void *ctx, const char *name), void *ctx, size_t *out);

#endif
