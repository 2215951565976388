/* Tests for common/kube/json.c's Lease side (MicroTime both ways, a Lease
 * read back from the JSON the elector writes) and lease_expiry.c: expiry by
 * local monotonic time since the record last changed, driven with
 * synthetic clocks and holders whose renewTime is minutes off ours. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kube/internal.h"

static void microtime_formats_with_microseconds(void **state)
{
    char out[40];
    double t;
    assert_int_equal(kp_kube_microtime_parse("2026-11-29T17:00:00.000000Z", &t), 0);
    kp_kube_microtime_format(t, out, sizeof(out));
    assert_string_equal(out, "2026-11-29T17:00:00.000000Z");
    kp_kube_microtime_format(t + 1.25, out, sizeof(out));
    assert_string_equal(out, "2026-11-29T17:00:01.250000Z");
}

static void microtime_parses_rfc3339_variants(void **state)
{
    double base, t;
    assert_int_equal(kp_kube_microtime_parse("2026-11-29T17:00:00Z", &base), 0);
    assert_int_equal(kp_kube_microtime_parse("2026-11-29T17:00:00.5Z", &t), 0);
    assert_true(t - base > 0.499 && t - base < 0.501);
    assert_int_equal(kp_kube_microtime_parse("2026-11-29T18:00:00+01:00", &t), 0);
    assert_true(t == base);
    assert_int_equal(kp_kube_microtime_parse("2026-11-29 17:00:00Z", &t), -1);
    assert_int_equal(kp_kube_microtime_parse("2026-11-29T17:00:00", &t), -1);
    assert_int_equal(kp_kube_microtime_parse("2026-11-29T17:00:00Zjunk", &t), -1);
}

/* RFC 3339's time-numoffset is a sign, two digits, ":" and two digits.
 * A shorter one was read past the end of the string (found by
 * fuzz_kube_objects under ASan: the strings here are heap copies of
 * exactly their length, as cJSON's are). */
static void microtime_short_offsets_are_refused(void **state)
{
    static const char *const bad[] = {
        "2026-11-29T17:00:00+1:2",   "2026-11-29T17:00:00+01:2", "2026-11-29T17:00:00+1:02",
        "2026-11-29T17:00:00-0100",  "2026-11-29T17:00:00+01:",  "2026-11-29T17:00:00+",
        "2026-11-29T17:00:00+01:00x", "2026-11-29T17:00:00+ 1:00",
    };
    double t;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *s = strdup(bad[i]);
        assert_int_equal(kp_kube_microtime_parse(s, &t), -1);
        free(s);
    }
    char *ok = strdup("2026-11-29T18:30:00.25+01:30");
    assert_int_equal(kp_kube_microtime_parse(ok, &t), 0);
    free(ok);
    double base;
    kp_kube_microtime_parse("2026-11-29T17:00:00Z", &base);
    assert_true(t - base > 0.249 && t - base < 0.251);
}

static void lease_json_reads_back(void **state)
{
    double acquire, renew;
    kp_kube_microtime_parse("2026-11-29T17:00:00.000000Z", &acquire);
    renew = acquire + 10.5;
    char *json =
        kp_kube_lease_json("default", "autoscaler", "pod-\"a\"", 15, acquire, renew, 3, "812");
    assert_non_null(json);
    assert_non_null(strstr(json, "\"renewTime\":\"2026-11-29T17:00:10.500000Z\""));
    kp_kube_lease_t l;
    assert_int_equal(kp_kube_lease_parse(json, strlen(json), &l), 0);
    assert_string_equal(l.holder, "pod-\"a\"");
    assert_int_equal(l.duration_s, 15);
    assert_int_equal(l.transitions, 3);
    assert_string_equal(l.resource_version, "812");
    assert_true(l.acquire_time == acquire);
    assert_true(l.renew_time == renew);
    free(json);

    /* A create carries no resourceVersion. */
    json = kp_kube_lease_json("default", "autoscaler", "b", 15, acquire, renew, 0, "");
    assert_null(strstr(json, "resourceVersion"));
    free(json);
}

static void lease_without_spec_fields_reads_as_free(void **state)
{
    const char *body =
        "{\"kind\":\"Lease\",\"metadata\":{\"name\":\"x\",\"resourceVersion\":\"9\"},"
        "\"spec\":{}}";
    kp_kube_lease_t l;
    assert_int_equal(kp_kube_lease_parse(body, strlen(body), &l), 0);
    assert_string_equal(l.holder, "");
    assert_true(l.renew_time == 0);
    assert_string_equal(l.resource_version, "9");
    assert_int_equal(kp_kube_lease_parse("nope", 4, &l), -1);
}

/* --- expiry: client-go's observedTime rule --- */

#define DURATION_S 3
#define SKEW_S 300.0 /* the holder's clock, five minutes off ours */
#define WALL_NOW 1.7e9

static kp_kube_lease_t holder_record(const char *holder, double renew_time, int rv)
{
    kp_kube_lease_t l;
    memset(&l, 0, sizeof l);
    snprintf(l.holder, sizeof l.holder, "%s", holder);
    l.duration_s = DURATION_S;
    l.acquire_time = WALL_NOW - 3600;
    l.renew_time = renew_time;
    snprintf(l.resource_version, sizeof l.resource_version, "%d", rv);
    return l;
}

static void unchanged_record_expires_after_its_duration(void **state)
{
    kp_kube_lease_seen_t seen = {0};
    /* Local monotonic ms start anywhere; renewTime says "just now". */
    kp_kube_lease_t l = holder_record("other", WALL_NOW, 1);
    kp_kube_lease_observe(&seen, &l, 50000);
    assert_int_equal(kp_kube_lease_valid_ms(&seen, 15, 50000), DURATION_S * 1000);
    /* Read again and again, unchanged: the clock is not restarted. */
    for (uint64_t t = 50000; t < 50000 + DURATION_S * 1000; t += 500) {
        kp_kube_lease_observe(&seen, &l, t);
        assert_true(kp_kube_lease_valid_ms(&seen, 15, t) > 0);
    }
    assert_int_equal(kp_kube_lease_valid_ms(&seen, 15, 50000 + DURATION_S * 1000 - 1), 1);
    kp_kube_lease_observe(&seen, &l, 50000 + DURATION_S * 1000);
    assert_int_equal(kp_kube_lease_valid_ms(&seen, 15, 50000 + DURATION_S * 1000), 0);
}

/* A holder renewing every second, its renewTime `skew` seconds off ours:
 * never expired however far off, since only its changes count. */
static void renewing_holder_with_skew_never_expires(double skew)
{
    kp_kube_lease_seen_t seen = {0};
    for (int i = 0; i < 120; i++) {
        uint64_t now_ms = 1000 + (uint64_t)i * 1000;
        kp_kube_lease_t l = holder_record("other", WALL_NOW + skew + i, 10 + i);
        kp_kube_lease_observe(&seen, &l, now_ms);
        assert_true(kp_kube_lease_valid_ms(&seen, 15, now_ms) > 0);
        /* Just before the next renewal lands. */
        assert_true(kp_kube_lease_valid_ms(&seen, 15, now_ms + 999) > 0);
    }
}

static void renewing_holder_minutes_behind_is_never_taken_over(void **state)
{
    renewing_holder_with_skew_never_expires(-SKEW_S);
}

static void renewing_holder_minutes_ahead_is_never_taken_over(void **state)
{
    renewing_holder_with_skew_never_expires(+SKEW_S);
}

static void holder_ahead_that_stops_expires_after_duration_of_local_time(void **state)
{
    kp_kube_lease_seen_t seen = {0};
    uint64_t now_ms = 0;
    int i;
    for (i = 0; i < 10; i++) {
        now_ms = (uint64_t)i * 1000;
        kp_kube_lease_t l = holder_record("other", WALL_NOW + SKEW_S + i, 10 + i);
        kp_kube_lease_observe(&seen, &l, now_ms);
    }
    uint64_t last_change = now_ms;
    /* It stopped: its last renewTime stays five minutes in our future. */
    kp_kube_lease_t last = holder_record("other", WALL_NOW + SKEW_S + i - 1, 10 + i - 1);
    for (uint64_t t = last_change; t < last_change + DURATION_S * 1000; t += 250) {
        kp_kube_lease_observe(&seen, &last, t);
        assert_true(kp_kube_lease_valid_ms(&seen, 15, t) > 0);
    }
    kp_kube_lease_observe(&seen, &last, last_change + DURATION_S * 1000);
    assert_int_equal(kp_kube_lease_valid_ms(&seen, 15, last_change + DURATION_S * 1000), 0);
}

static void holder_behind_is_not_taken_over_at_first_sight(void **state)
{
    /* A record first read with a renewTime an hour old still gets a whole
     * duration from the moment we first saw it (client-go: a new set of
     * candidates waits a full LeaseDuration). */
    kp_kube_lease_seen_t seen = {0};
    kp_kube_lease_t l = holder_record("other", WALL_NOW - 3600, 7);
    kp_kube_lease_observe(&seen, &l, 123456);
    assert_int_equal(kp_kube_lease_valid_ms(&seen, 15, 123456), DURATION_S * 1000);
}

static void only_the_spec_counts_as_a_change(void **state)
{
    kp_kube_lease_seen_t seen = {0};
    kp_kube_lease_t l = holder_record("other", WALL_NOW, 1);
    kp_kube_lease_observe(&seen, &l, 0);
    /* A new resourceVersion alone (a label written) is no renewal... */
    kp_kube_lease_t relabelled = l;
    snprintf(relabelled.resource_version, sizeof relabelled.resource_version, "2");
    kp_kube_lease_observe(&seen, &relabelled, 2000);
    assert_int_equal(kp_kube_lease_valid_ms(&seen, 15, 2000), 1000);
    /* ...but the write must name it. */
    assert_string_equal(seen.record.resource_version, "2");
    /* Any field of the spec is: a new holder, a new duration. */
    kp_kube_lease_t taken = relabelled;
    snprintf(taken.holder, sizeof taken.holder, "third");
    kp_kube_lease_observe(&seen, &taken, 2500);
    assert_int_equal(kp_kube_lease_valid_ms(&seen, 15, 2500), DURATION_S * 1000);
    kp_kube_lease_t longer = taken;
    longer.duration_s = 10;
    kp_kube_lease_observe(&seen, &longer, 2600);
    assert_int_equal(kp_kube_lease_valid_ms(&seen, 15, 2600), 10000);
}

static void free_or_durationless_records(void **state)
{
    kp_kube_lease_seen_t seen = {0};
    assert_int_equal(kp_kube_lease_valid_ms(&seen, 15, 0), 0); /* nothing read */
    /* Handed back (holder "", as a release writes it): free at once. */
    kp_kube_lease_t released = holder_record("", WALL_NOW, 3);
    released.duration_s = 1;
    kp_kube_lease_observe(&seen, &released, 100);
    assert_int_equal(kp_kube_lease_valid_ms(&seen, 15, 100), 0);
    /* A record with no leaseDurationSeconds gets ours, not zero. */
    kp_kube_lease_t bare = holder_record("other", WALL_NOW, 4);
    bare.duration_s = 0;
    kp_kube_lease_observe(&seen, &bare, 200);
    assert_int_equal(kp_kube_lease_valid_ms(&seen, 15, 200), 15000);
}

static void next_record_carries_over_or_takes_over(void **state)
{
    kp_kube_lease_t read = {.transitions = 4, .acquire_time = 1000.5};
    int transitions;
    double acquire;
    /* Our own renewal: the count and acquireTime stay. */
    kp_kube_lease_next(&read, 0, 2000.25, &transitions, &acquire);
    assert_int_equal(transitions, 4);
    assert_true(acquire == 1000.5);
    /* A takeover: one more transition, acquired now. */
    kp_kube_lease_next(&read, 1, 2000.25, &transitions, &acquire);
    assert_int_equal(transitions, 5);
    assert_true(acquire == 2000.25);
    /* A record with no acquireTime gets now. */
    read.acquire_time = 0;
    kp_kube_lease_next(&read, 0, 2000.25, &transitions, &acquire);
    assert_true(acquire == 2000.25);
}

/* leaseTransitions is an int32 the API keeps >= 0 (ValidateLeaseSpec):
 * a takeover of a lease at the top stays there instead of overflowing
 * (undefined in C; Go's wrap to a negative the API would refuse). Found by
 * fuzz_kube_objects under UBSan. */
static void takeover_at_the_top_of_int32_stays_there(void **state)
{
    kp_kube_lease_t read = {.transitions = INT32_MAX};
    int transitions;
    double acquire;
    kp_kube_lease_next(&read, 1, 2000.25, &transitions, &acquire);
    assert_int_equal(transitions, INT32_MAX);
    read.transitions = INT32_MAX - 1;
    kp_kube_lease_next(&read, 1, 2000.25, &transitions, &acquire);
    assert_int_equal(transitions, INT32_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(microtime_formats_with_microseconds),
        cmocka_unit_test(microtime_parses_rfc3339_variants),
        cmocka_unit_test(microtime_short_offsets_are_refused),
        cmocka_unit_test(lease_json_reads_back),
        cmocka_unit_test(lease_without_spec_fields_reads_as_free),
        cmocka_unit_test(unchanged_record_expires_after_its_duration),
        cmocka_unit_test(renewing_holder_minutes_behind_is_never_taken_over),
        cmocka_unit_test(renewing_holder_minutes_ahead_is_never_taken_over),
        cmocka_unit_test(holder_ahead_that_stops_expires_after_duration_of_local_time),
        cmocka_unit_test(holder_behind_is_not_taken_over_at_first_sight),
        cmocka_unit_test(only_the_spec_counts_as_a_change),
        cmocka_unit_test(free_or_durationless_records),
        cmocka_unit_test(next_record_carries_over_or_takes_over),
        cmocka_unit_test(takeover_at_the_top_of_int32_stays_there),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
