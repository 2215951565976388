/* Tests for activator/knative/gc.c: config-gc's keys and Knative's rules
 * for which revisions go, on a clock the test sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "activator/knative/gc.h"
#include "activator/knative/kjson.h"

#define HOUR 3600

/* A revision created at `created` (seconds), last active at `active`. */
static cJSON *rev(const char *name, const char *state, time_t created, time_t active, int no_gc)
{
    char c[32], a[32], json[1024];
    kn_time_format(created, c, sizeof c);
    kn_time_format(active, a, sizeof a);
    snprintf(json, sizeof json,
             "{\"metadata\":{\"name\":\"%s\",\"creationTimestamp\":\"%s\","
             "\"labels\":{\"serving.knative.dev/routingState\":\"%s\"},"
             "\"annotations\":{\"serving.knative.dev/routingStateModified\":\"%s\"%s}}}",
             name, c, state, a, no_gc ? ",\"serving.knative.dev/no-gc\":\"True\"" : "");
    return cJSON_Parse(json);
}

static void config_keys_parse_and_refuse_nonsense(void **state)
{
    kn_gc_config_t c;
    char why[256];
    kn_gc_config_init(&c);
    assert_int_equal(c.retain_since_create_s, 48 * HOUR);
    assert_int_equal(
        kn_gc_config_set(&c, "retain-since-last-active-time", "1h30m", why, sizeof why), 0);
    assert_int_equal(c.retain_since_last_active_s, 90 * 60);
    assert_int_equal(kn_gc_config_set(&c, "max-non-active-revisions", "disabled", why, sizeof why),
                     0);
    assert_int_equal(c.max_non_active, KN_GC_DISABLED);
    assert_int_equal(kn_gc_config_set(&c, "min-non-active-revisions", "-1", why, sizeof why), -1);
    assert_non_null(strstr(why, "min-non-active-revisions"));
    assert_int_equal(kn_gc_config_set(&c, "retain-since-create-time", "soon", why, sizeof why), -1);
    assert_int_equal(kn_gc_config_set(&c, "_example", "x", why, sizeof why), 1);
    kn_gc_config_set(&c, "max-non-active-revisions", "5", why, sizeof why);
    kn_gc_config_set(&c, "min-non-active-revisions", "6", why, sizeof why);
    assert_int_equal(kn_gc_config_check(&c, why, sizeof why), -1);
}

static void stale_reserve_revisions_go_oldest_first_keeping_min(void **state)
{
    kn_gc_config_t c;
    char why[64];
    kn_gc_config_init(&c);
    kn_gc_config_set(&c, "min-non-active-revisions", "1", why, sizeof why);
    time_t now = 1000 * HOUR;
    cJSON *r[6] = {
        rev("s-00001", "reserve", now - 100 * HOUR, now - 90 * HOUR, 0), /* stale */
        rev("s-00002", "reserve", now - 100 * HOUR, now - 80 * HOUR, 0), /* stale */
        rev("s-00003", "reserve", now - 100 * HOUR, now - 70 * HOUR, 1), /* no-gc */
        rev("s-00004", "active", now - 100 * HOUR, now - 60 * HOUR, 0),  /* routed */
        rev("s-00005", "reserve", now - 100 * HOUR, now - 1 * HOUR, 0),  /* recent */
        rev("s-00006", "pending", now - 1, now - 1, 0),                  /* latest */
    };
    size_t out[6];
    size_t n =
        kn_gc_collect(&c, (const cJSON *const *)r, 6, "s-00006", "s-00006", now, NULL, NULL, out);
    /* Candidates: 1, 2, 5; min 1 kept: 1 and 2 are stale. */
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 1);
    /* With min 2 only the oldest goes. */
    kn_gc_config_set(&c, "min-non-active-revisions", "2", why, sizeof why);
    n = kn_gc_collect(&c, (const cJSON *const *)r, 6, "s-00006", "s-00006", now, NULL, NULL, out);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 0);
    for (int i = 0; i < 6; i++)
        cJSON_Delete(r[i]);
}

static int names_old(void *ctx, const char *name)
{
    return strcmp(name, ctx) == 0;
}

static void max_counts_only_non_active_and_traffic_protects(void **state)
{
    kn_gc_config_t c;
    char why[64];
    kn_gc_config_init(&c);
    kn_gc_config_set(&c, "min-non-active-revisions", "0", why, sizeof why);
    kn_gc_config_set(&c, "max-non-active-revisions", "1", why, sizeof why);
    kn_gc_config_set(&c, "retain-since-create-time", "disabled", why, sizeof why);
    kn_gc_config_set(&c, "retain-since-last-active-time", "disabled", why, sizeof why);
    time_t now = 1000 * HOUR;
    cJSON *r[4] = {
        rev("s-00001", "reserve", now - 10, now - 10, 0),
        rev("s-00002", "reserve", now - 9, now - 9, 0),
        rev("s-00003", "reserve", now - 8, now - 8, 0),
        rev("s-00004", "active", now - 7, now - 7, 0),
    };
    size_t out[4];
    size_t n =
        kn_gc_collect(&c, (const cJSON *const *)r, 4, "s-00004", "s-00004", now, NULL, NULL, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 1);
    /* A tag on s-00001 keeps it even though its label says reserve. */
    n = kn_gc_collect(&c, (const cJSON *const *)r, 4, "s-00004", "s-00004", now, names_old,
                      "s-00001", out);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 1);
    /* Everything disabled: nothing goes. */
    kn_gc_config_set(&c, "max-non-active-revisions", "disabled", why, sizeof why);
    assert_int_equal(
        kn_gc_collect(&c, (const cJSON *const *)r, 4, NULL, NULL, now, NULL, NULL, out), 0);
    for (int i = 0; i < 4; i++)
        cJSON_Delete(r[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_keys_parse_and_refuse_nonsense),
        cmocka_unit_test(stale_reserve_revisions_go_oldest_first_keeping_min),
        cmocka_unit_test(max_counts_only_non_active_and_traffic_protects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
