/* Tests for common/base/env.c: whole, strict parsing of environment values and
 * error messages that name the variable and what it accepts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/env.h"

/* NULL-terminated name/value pairs; a NULL value is "unset". */
static const char *table_get(const char *name, void *ctx)
{
    const char *const *kv = ctx;
    for (; kv[0]; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

#define SRC(...) (&(kp_env_src_t){table_get, (void *)(const char *const[]){__VA_ARGS__, NULL}})

static void int_parses_wholly(void **state)
{
    long long v = -5;
    char err[256] = "";
    assert_int_equal(
        kp_env_int(SRC("N", "42"), "N", KP_ENV_REQUIRED, 0, 0, 100, &v, err, sizeof err), 0);
    assert_int_equal(v, 42);
    assert_int_equal(kp_env_int(SRC("N", "+7"), "N", 0, 0, 0, 100, &v, err, sizeof err), 0);
    assert_int_equal(v, 7);
    assert_int_equal(kp_env_int(SRC("N", "-3"), "N", 0, 0, -10, 100, &v, err, sizeof err), 0);
    assert_int_equal(v, -3);
    assert_int_equal(
        kp_env_int(SRC("N", "9223372036854775807"), "N", 0, 0, 0, INT64_MAX, &v, err, sizeof err),
        0);
    assert_true(v == INT64_MAX);

    const char *bad[] = {"ten", "1x", " 1", "1 ", "", "+", "-", "1.5", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(kp_env_int(SRC("CONTAINER_CONCURRENCY", bad[i]), "CONTAINER_CONCURRENCY",
                                    KP_ENV_REQUIRED, 0, 0, INT64_MAX, &v, err, sizeof err),
                         -1);
        assert_non_null(strstr(err, "CONTAINER_CONCURRENCY"));
        assert_non_null(strstr(err, "not an integer (expected an integer >= 0)"));
    }
}

static void int_error_messages(void **state)
{
    long long v;
    char err[256];
    kp_env_int(SRC("CONTAINER_CONCURRENCY", "ten"), "CONTAINER_CONCURRENCY", KP_ENV_REQUIRED, 0, 0,
               INT64_MAX, &v, err, sizeof err);
    assert_string_equal(err,
                        "CONTAINER_CONCURRENCY=\"ten\": not an integer (expected an integer >= 0)");
    kp_env_int(SRC("X", "99999999999999999999"), "X", 0, 0, 0, INT64_MAX, &v, err, sizeof err);
    assert_string_equal(err, "X=\"99999999999999999999\": out of range (expected an integer >= 0)");
    kp_env_int(SRC("X", "-1"), "X", 0, 0, 0, 10, &v, err, sizeof err);
    assert_string_equal(err, "X=\"-1\": out of range (expected an integer from 0 to 10)");
    kp_env_int(SRC("X", NULL), "USER_PORT", KP_ENV_REQUIRED, 0, 0, 10, &v, err, sizeof err);
    assert_string_equal(err, "USER_PORT: required but not set");
}

static void optional_unset_or_empty_gives_default(void **state)
{
    long long v = 0;
    int b = 0, port = 0;
    uint64_t ms = 0;
    double d = 0;
    char err[256];
    assert_int_equal(kp_env_int(SRC("A", "1"), "N", 0, 17, 0, 100, &v, err, sizeof err), 0);
    assert_int_equal(v, 17);
    assert_int_equal(kp_env_int(SRC("N", ""), "N", 0, 18, 0, 100, &v, err, sizeof err), 0);
    assert_int_equal(v, 18);
    assert_int_equal(kp_env_bool(SRC("B", ""), "B", 0, 1, &b, err, sizeof err), 0);
    assert_int_equal(b, 1);
    assert_int_equal(kp_env_port(SRC("A", "1"), "P", 0, 8022, &port, err, sizeof err), 0);
    assert_int_equal(port, 8022);
    assert_int_equal(kp_env_seconds(SRC("A", "1"), "S", 0, 30000, UINT64_MAX, &ms, err, sizeof err),
                     0);
    assert_int_equal(ms, 30000);
    assert_int_equal(kp_env_double(SRC("D", ""), "D", 0, 0.5, 0, 1, &d, err, sizeof err), 0);
    assert_true(d == 0.5);
    /* Required and empty is malformed for numbers. */
    assert_int_equal(kp_env_int(SRC("N", ""), "N", KP_ENV_REQUIRED, 0, 0, 100, &v, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "N=\"\": not an integer"));
}

static void strings_required_and_nonempty(void **state)
{
    const char *s = NULL;
    char err[256];
    assert_int_equal(kp_env_string(SRC("S", ""), "S", KP_ENV_REQUIRED, "d", &s, err, sizeof err),
                     0);
    assert_string_equal(s, "");
    assert_int_equal(kp_env_string(SRC("X", "1"), "S", 0, "d", &s, err, sizeof err), 0);
    assert_string_equal(s, "d");
    assert_int_equal(kp_env_string(SRC("SERVING_POD", ""), "SERVING_POD",
                                   KP_ENV_REQUIRED | KP_ENV_NONEMPTY, NULL, &s, err, sizeof err),
                     -1);
    assert_string_equal(err, "SERVING_POD: must not be empty");
    assert_int_equal(
        kp_env_string(SRC("X", "1"), "SERVING_POD", KP_ENV_REQUIRED, NULL, &s, err, sizeof err),
        -1);
    assert_string_equal(err, "SERVING_POD: required but not set");
}

static void ports_are_1_to_65535(void **state)
{
    int p;
    char err[256];
    assert_int_equal(kp_env_port(SRC("P", "8012"), "P", KP_ENV_REQUIRED, 0, &p, err, sizeof err),
                     0);
    assert_int_equal(p, 8012);
    assert_int_equal(kp_env_port(SRC("P", "65535"), "P", 0, 0, &p, err, sizeof err), 0);
    assert_int_equal(kp_env_port(SRC("USER_PORT", "0"), "USER_PORT", 0, 0, &p, err, sizeof err),
                     -1);
    assert_string_equal(err, "USER_PORT=\"0\": out of range (expected an integer from 1 to 65535)");
    assert_int_equal(kp_env_port(SRC("P", "65536"), "P", 0, 0, &p, err, sizeof err), -1);
    assert_int_equal(kp_env_port(SRC("P", "http"), "P", 0, 0, &p, err, sizeof err), -1);
}

static void booleans(void **state)
{
    static const struct {
        const char *in;
        int want;
    } ok[] = {{"true", 1},  {"TRUE", 1},  {"True", 1},  {"1", 1},
              {"false", 0}, {"FALSE", 0}, {"fAlSe", 0}, {"0", 0}};
    char err[256];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int b = -1;
        assert_int_equal(
            kp_env_bool(SRC("B", ok[i].in), "B", KP_ENV_REQUIRED, 0, &b, err, sizeof err), 0);
        assert_int_equal(b, ok[i].want);
    }
    const char *bad[] = {"yes", "t", "2", "on", "true "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int b;
        assert_int_equal(kp_env_bool(SRC("ENABLE_PROFILING", bad[i]), "ENABLE_PROFILING", 0, 0, &b,
                                     err, sizeof err),
                         -1);
        assert_non_null(strstr(err, "ENABLE_PROFILING=\""));
        assert_non_null(strstr(err, "not a boolean (expected true, false, 1 or 0)"));
    }
}

static void seconds_accept_integers_and_decimals(void **state)
{
    static const struct {
        const char *in;
        uint64_t ms;
    } ok[] = {{"30", 30000}, {"0", 0},      {"0.5", 500},     {"2.25", 2250},  {".5", 500},
              {"5.", 5000},  {"0.0001", 1}, {"1.0000", 1000}, {"0.1239", 124}, {"007", 7000}};
    char err[256];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t ms = 12345;
        assert_int_equal(
            kp_env_seconds(SRC("S", ok[i].in), "S", 0, 0, UINT64_MAX, &ms, err, sizeof err), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    const char *bad[] = {"-1", "1s", "abc", ".", "1e3", "1.2.3", " 1", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t ms;
        assert_int_equal(kp_env_seconds(SRC("KP_DRAIN_QUIET_PERIOD_SECONDS", bad[i]),
                                        "KP_DRAIN_QUIET_PERIOD_SECONDS", 0, 0, UINT64_MAX, &ms, err,
                                        sizeof err),
                         -1);
        assert_non_null(strstr(err, "KP_DRAIN_QUIET_PERIOD_SECONDS=\""));
        assert_non_null(strstr(err, "expected a non-negative integer or decimal"));
    }
    uint64_t ms;
    assert_int_equal(kp_env_seconds(SRC("S", "11"), "S", 0, 0, 10000, &ms, err, sizeof err), -1);
    assert_string_equal(err, "S=\"11\": out of range (expected at most 10.000 seconds)");
}

static void doubles(void **state)
{
    double d;
    char err[256];
    assert_int_equal(kp_env_double(SRC("R", "0.100000"), "R", 0, 0, 0, 1, &d, err, sizeof err), 0);
    assert_true(d == 0.1);
    assert_int_equal(kp_env_double(SRC("R", "1e-1"), "R", 0, 0, 0, 1, &d, err, sizeof err), 0);
    const char *bad[] = {"nan", "inf", "0x1p-3", " 0.1", "0.1x", "", "1.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(
            kp_env_double(SRC("R", bad[i]), "R", KP_ENV_REQUIRED, 0, 0, 1, &d, err, sizeof err),
            -1);
}

static void bad_values_are_quoted_safely(void **state)
{
    long long v;
    char err[512];
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    kp_env_int(SRC("N", "a\"b\nc"), "N", 0, 0, 0, 10, &v, err, sizeof err);
    assert_string_equal(err, "N=\"a?b?c\": not an integer (expected an integer from 0 to 10)");
    kp_env_int(SRC("N", big), "N", 0, 0, 0, 10, &v, err, sizeof err);
    assert_non_null(strstr(err, "...\": not an integer"));
    assert_true(strlen(err) < 200);
}

static void reads_process_environment_by_default(void **state)
{
    setenv("KP_TEST_ENV_INT", "12", 1);
    long long v;
    char err[128];
    assert_int_equal(
        kp_env_int(NULL, "KP_TEST_ENV_INT", KP_ENV_REQUIRED, 0, 0, 100, &v, err, sizeof err), 0);
    assert_int_equal(v, 12);
    unsetenv("KP_TEST_ENV_INT");
    assert_int_equal(
        kp_env_int(NULL, "KP_TEST_ENV_INT", KP_ENV_REQUIRED, 0, 0, 100, &v, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(int_parses_wholly),
        cmocka_unit_test(int_error_messages),
        cmocka_unit_test(optional_unset_or_empty_gives_default),
        cmocka_unit_test(strings_required_and_nonempty),
        cmocka_unit_test(ports_are_1_to_65535),
        cmocka_unit_test(booleans),
        cmocka_unit_test(seconds_accept_integers_and_decimals),
        cmocka_unit_test(doubles),
        cmocka_unit_test(bad_values_are_quoted_safely),
        cmocka_unit_test(reads_process_environment_by_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
