/* Tests for common/kube/json.c's Lease side: MicroTime both ways, a Lease
 * read back from the JSON the elector writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(microtime_formats_with_microseconds),
        cmocka_unit_test(microtime_parses_rfc3339_variants),
        cmocka_unit_test(lease_json_reads_back),
        cmocka_unit_test(lease_without_spec_fields_reads_as_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
