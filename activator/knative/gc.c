/* config-gc. See gc.h. */
#include "gc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kjson.h"
#include "names.h"

void kn_gc_config_init(kn_gc_config_t *c)
{
    c->retain_since_create_s = 48 * 3600;
    c->retain_since_last_active_s = 15 * 3600;
    c->min_non_active = 20;
    c->max_non_active = 1000;
}

int kn_gc_parse_duration(const char *s, long long *seconds)
{
    double total = 0;
    if (!s || !*s)
        return -1;
    if (strcmp(s, "0") == 0) {
        *seconds = 0;
        return 0;
    }
    while (*s) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || v < 0)
            return -1;
        s = end;
        double unit;
        if (strncmp(s, "ms", 2) == 0)
            unit = 0.001, s += 2;
        else if (*s == 'h')
            unit = 3600, s++;
        else if (*s == 'm')
            unit = 60, s++;
        else if (*s == 's')
            unit = 1, s++;
        else
            return -1;
        total += v * unit;
    }
    *seconds = (long long)total;
    return 0;
}

static int set_duration(long long *out, const char *key, const char *value, char *why,
                        size_t why_len)
{
    if (strcasecmp(value, "disabled") == 0) {
        *out = KN_GC_DISABLED;
        return 0;
    }
    if (kn_gc_parse_duration(value, out) != 0) {
        snprintf(why, why_len, "%s \"%.40s\": expected a duration such as 15h or 30m, or disabled",
                 key, value);
        return -1;
    }
    return 0;
}

static int set_count(long long *out, const char *key, const char *value, int may_disable, char *why,
                     size_t why_len)
{
    char *end;
    if (may_disable && strcasecmp(value, "disabled") == 0) {
        *out = KN_GC_DISABLED;
        return 0;
    }
    long long v = strtoll(value, &end, 10);
    if (!*value || *end || v < 0) {
        snprintf(why, why_len, "%s \"%.40s\": expected an integer of 0 or more%s", key, value,
                 may_disable ? ", or disabled" : "");
        return -1;
    }
    *out = v;
    return 0;
}

int kn_gc_config_set(kn_gc_config_t *c, const char *key, const char *value, char *why,
                     size_t why_len)
{
    if (strcmp(key, "retain-since-create-time") == 0)
        return set_duration(&c->retain_since_create_s, key, value, why, why_len);
    if (strcmp(key, "retain-since-last-active-time") == 0)
        return set_duration(&c->retain_since_last_active_s, key, value, why, why_len);
    if (strcmp(key, "min-non-active-revisions") == 0)
        return set_count(&c->min_non_active, key, value, 0, why, why_len);
    if (strcmp(key, "max-non-active-revisions") == 0)
        return set_count(&c->max_non_active, key, value, 1, why, why_len);
    return 1;
}

int kn_gc_config_check(const kn_gc_config_t *c, char *why, size_t why_len)
{
    if (c->max_non_active != KN_GC_DISABLED && c->max_non_active < c->min_non_active) {
        snprintf(why, why_len,
                 "max-non-active-revisions %lld is below min-non-active-revisions %lld",
                 c->max_non_active, c->min_non_active);
        return -1;
    }
    return 0;
}

typedef struct candidate {
    size_t index;
    time_t created;
    time_t last_active;
} candidate_t;

static int by_last_active(const void *a, const void *b)
{
    const candidate_t *x = a, *y = b;
    if (x->last_active != y->last_active)
        return x->last_active < y->last_active ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int kept_whatever(const cJSON *rev, const char *latest_ready, const char *latest_created,
                         int (*in_traffic)(void *, const char *), void *ctx)
{
    const char *name = kn_json_str(rev, "metadata.name", "");
    const char *no_gc = kn_json_annotation(rev, KN_A_NO_GC);
    const char *state = kn_json_label(rev, KN_L_ROUTING_STATE);
    return (latest_ready && strcmp(name, latest_ready) == 0) ||
           (latest_created && strcmp(name, latest_created) == 0) ||
           (no_gc && strcasecmp(no_gc, "true") == 0) || !state ||
           strcmp(state, KN_ROUTING_RESERVE) != 0 || (in_traffic && in_traffic(ctx, name));
}

size_t kn_gc_collect(const kn_gc_config_t *c, const cJSON *const *revs, size_t n,
                     const char *latest_ready, const char *latest_created, time_t now,
                     int (*in_traffic)(void *ctx, const char *name), void *ctx, size_t *out)
{
    if ((c->max_non_active == KN_GC_DISABLED && c->retain_since_create_s == KN_GC_DISABLED &&
         c->retain_since_last_active_s == KN_GC_DISABLED) ||
        (long long)n <= c->min_non_active)
        return 0;
    candidate_t *cands = calloc(n ? n : 1, sizeof *cands);
    if (!cands)
        return 0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (kept_whatever(revs[i], latest_ready, latest_created, in_traffic, ctx))
            continue;
        candidate_t *k = &cands[m++];
        k->index = i;
        if (kn_time_parse(kn_json_str(revs[i], "metadata.creationTimestamp", NULL), &k->created))
            k->created = now;
        if (kn_time_parse(kn_json_annotation(revs[i], KN_A_ROUTING_STATE_MODIFIED),
                          &k->last_active))
            k->last_active = k->created;
    }
    size_t found = 0;
    if ((long long)m <= c->min_non_active) {
        free(cands);
        return 0;
    }
    qsort(cands, m, sizeof *cands, by_last_active);
    /* Pass 1: stale ones, oldest first, leaving min of them. */
    long long may_delete = (long long)m - c->min_non_active;
    unsigned char *gone = calloc(m, 1);
    if (!gone) {
        free(cands);
        return 0;
    }
    for (size_t i = 0; i < m && (long long)found < may_delete; i++) {
        int young = c->retain_since_create_s != KN_GC_DISABLED &&
                    now - cands[i].created < c->retain_since_create_s;
        int recent = c->retain_since_last_active_s != KN_GC_DISABLED &&
                     now - cands[i].last_active < c->retain_since_last_active_s;
        int any_rule = c->retain_since_create_s != KN_GC_DISABLED ||
                       c->retain_since_last_active_s != KN_GC_DISABLED;
        if (any_rule && !young && !recent) {
            out[found++] = cands[i].index;
            gone[i] = 1;
        }
    }
    /* Pass 2: beyond max, the oldest of the rest. */
    if (c->max_non_active != KN_GC_DISABLED) {
        long long rest = (long long)(m - found);
        for (size_t i = 0; i < m && rest > c->max_non_active; i++) {
            if (gone[i])
                continue;
            out[found++] = cands[i].index;
            rest--;
        }
    }
    free(gone);
    free(cands);
    return found;
}
