/* Tests for common/base/log.c: each line is one JSON object with Knative-like
 * keys, extra fields escaped, levels filtered and parsed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>
#include <cmocka.h>

#include "base/log.h"

/* Runs fn with stderr sent to a temp file; returns what was written. */
static char *capture_stderr(void (*fn)(void))
{
    char path[] = "/tmp/kp_test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    /* Lines go out from the logger's own thread: wait for them. */
    assert_int_equal(kp_log_flush(10000), 0);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
    close(fd);
    unlink(path);
    return buf;
}

static cJSON *parse_line(const char *line, size_t len)
{
    char *copy = strndup(line, len);
    cJSON *j = cJSON_Parse(copy);
    if (!j)
        fail_msg("not JSON: %s", copy);
    free(copy);
    return j;
}

static void emit_two(void)
{
    kp_log_init("queue-proxy", KP_LOG_INFO);
    kp_log_add_field("knative.dev/pod", "pod-1");
    kp_log(KP_LOG_DEBUG, "hidden %d", 1);
    kp_log(KP_LOG_WARN, "value \"%s\"\n", "q");
    kp_log_kv(KP_LOG_ERROR, "scaled", "revision", "r\"1", "from", NULL, NULL);
}

static void lines_are_json_with_knative_keys(void **state)
{
    char *out = capture_stderr(emit_two);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    cJSON *a = parse_line(out, (size_t)(nl - out));
    assert_string_equal(cJSON_GetObjectItem(a, "severity")->valuestring, "WARNING");
    assert_string_equal(cJSON_GetObjectItem(a, "logger")->valuestring, "queue-proxy");
    assert_string_equal(cJSON_GetObjectItem(a, "message")->valuestring, "value \"q\"\n");
    assert_string_equal(cJSON_GetObjectItem(a, "knative.dev/pod")->valuestring, "pod-1");
    const char *ts = cJSON_GetObjectItem(a, "timestamp")->valuestring;
    /* 2026-11-25T10:00:00.123Z */
    assert_int_equal(strlen(ts), 24);
    assert_true(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
    cJSON_Delete(a);

    char *second = nl + 1;
    char *nl2 = strchr(second, '\n');
    assert_non_null(nl2);
    assert_string_equal(nl2 + 1, ""); /* the debug line was filtered */
    cJSON *b = parse_line(second, (size_t)(nl2 - second));
    assert_string_equal(cJSON_GetObjectItem(b, "severity")->valuestring, "ERROR");
    assert_string_equal(cJSON_GetObjectItem(b, "message")->valuestring, "scaled");
    assert_string_equal(cJSON_GetObjectItem(b, "revision")->valuestring, "r\"1");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(b, "from")));
    cJSON_Delete(b);
    free(out);
}

static void emit_long(void)
{
    kp_log_init("x", KP_LOG_DEBUG);
    char big[5000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    kp_log(KP_LOG_DEBUG, "%s", big);
}

static void long_messages_are_whole(void **state)
{
    char *out = capture_stderr(emit_long);
    size_t n = strlen(out);
    assert_true(n > 5000 && out[n - 1] == '\n');
    cJSON *j = parse_line(out, n - 1);
    assert_int_equal(strlen(cJSON_GetObjectItem(j, "message")->valuestring), 4999);
    cJSON_Delete(j);
    free(out);
}

static void level_parse(void **state)
{
    kp_log_level_t l;
    assert_int_equal(kp_log_level_parse("", &l), 0);
    assert_int_equal(l, KP_LOG_INFO);
    assert_int_equal(kp_log_level_parse("DEBUG", &l), 0);
    assert_int_equal(l, KP_LOG_DEBUG);
    assert_int_equal(kp_log_level_parse("Warn", &l), 0);
    assert_int_equal(l, KP_LOG_WARN);
    assert_int_equal(kp_log_level_parse("error", &l), 0);
    assert_int_equal(l, KP_LOG_ERROR);
    assert_int_equal(kp_log_level_parse("fatal", &l), 0);
    assert_int_equal(l, KP_LOG_ERROR);
    assert_int_equal(kp_log_level_parse("verbose", &l), -1);
    assert_int_equal(kp_log_level_parse("warning", &l), -1);
    kp_log_init("x", KP_LOG_WARN);
    assert_false(kp_log_enabled(KP_LOG_INFO));
    assert_true(kp_log_enabled(KP_LOG_ERROR));
}

static void emit_typed(void)
{
    kp_log_init("activator", KP_LOG_DEBUG);
    kp_log_fields(KP_LOG_DEBUG, "scale decision", KP_LOG_STR("revision", "default/r1"),
                  KP_LOG_INT("from", 0), KP_LOG_INT("to", 3), KP_LOG_NUM("stable", 12.25),
                  KP_LOG_NUM("big", 1e20), KP_LOG_NUM("nan", 0.0 / 0.0),
                  KP_LOG_BOOL("panic_mode", 1), KP_LOG_STR("pod", NULL));
}

static void typed_fields_are_json_numbers(void **state)
{
    char *out = capture_stderr(emit_typed);
    cJSON *j = parse_line(out, strlen(out) - 1);
    assert_string_equal(cJSON_GetObjectItem(j, "revision")->valuestring, "default/r1");
    cJSON *from = cJSON_GetObjectItem(j, "from"), *to = cJSON_GetObjectItem(j, "to");
    assert_true(cJSON_IsNumber(from) && from->valuedouble == 0);
    assert_true(cJSON_IsNumber(to) && to->valuedouble == 3);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(j, "stable")));
    assert_true(cJSON_GetObjectItem(j, "stable")->valuedouble == 12.25);
    assert_true(cJSON_GetObjectItem(j, "big")->valuedouble == 1e20);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "nan"))); /* JSON has no NaN */
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "panic_mode")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "pod")));
    /* Numbers are spelled short, not 12.2500000000000000. */
    assert_non_null(strstr(out, "\"stable\":12.25,"));
    assert_non_null(strstr(out, "\"to\":3,"));
    cJSON_Delete(j);
    free(out);
}

static void emit_text(void)
{
    kp_log_init("activator", KP_LOG_INFO);
    kp_log_set_format(KP_LOG_FORMAT_TEXT);
    kp_log_add_field("knative.dev/pod", "pod-1");
    kp_log_fields(KP_LOG_INFO, "scale", KP_LOG_STR("revision", "default/r1"), KP_LOG_INT("to", 2),
                  KP_LOG_STR("why", "poke: request waiting"), KP_LOG_STR("quote", "a\"b"),
                  KP_LOG_STR("empty", ""), KP_LOG_NUM("ms", 1.5));
    kp_log(KP_LOG_WARN, "two\nlines");
    kp_log_set_format(KP_LOG_FORMAT_JSON);
}

static void text_format_is_one_readable_line_per_entry(void **state)
{
    char *out = capture_stderr(emit_text);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    /* 2026-11-25T10:00:00.123Z INFO    activator: scale  revision=... */
    assert_true(strlen(out) > 25 && out[10] == 'T' && out[23] == 'Z' && out[24] == ' ');
    assert_string_equal(out + 25, "INFO    activator: scale  revision=default/r1 to=2 "
                                  "why=\"poke: request waiting\" quote=\"a\\\"b\" empty=\"\" "
                                  "ms=1.5 knative.dev/pod=pod-1");
    char *second = nl + 1;
    char *nl2 = strchr(second, '\n');
    assert_non_null(nl2);
    *nl2 = '\0';
    assert_string_equal(second + 25, "WARNING activator: two\\nlines  knative.dev/pod=pod-1");
    assert_string_equal(nl2 + 1, "");
    free(out);
}

static void emit_with_bad_format_env(void)
{
    setenv(KP_LOG_FORMAT_ENV, "xml", 1);
    kp_log_init("queue-proxy", KP_LOG_INFO);
    unsetenv(KP_LOG_FORMAT_ENV);
    kp_log(KP_LOG_INFO, "still json");
}

static void unknown_format_in_env_is_named_and_json_kept(void **state)
{
    char *out = capture_stderr(emit_with_bad_format_env);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    cJSON *w = parse_line(out, (size_t)(nl - out));
    assert_string_equal(cJSON_GetObjectItem(w, "severity")->valuestring, "WARNING");
    assert_string_equal(cJSON_GetObjectItem(w, "variable")->valuestring, "KP_LOG_FORMAT");
    assert_string_equal(cJSON_GetObjectItem(w, "value")->valuestring, "xml");
    assert_string_equal(cJSON_GetObjectItem(w, "expected")->valuestring, "json or text");
    cJSON_Delete(w);
    cJSON *j = parse_line(nl + 1, strlen(nl + 1) - 1);
    assert_string_equal(cJSON_GetObjectItem(j, "message")->valuestring, "still json");
    cJSON_Delete(j);
    free(out);
}

static void format_parse(void **state)
{
    kp_log_format_t f;
    assert_int_equal(kp_log_format_parse("", &f), 0);
    assert_int_equal(f, KP_LOG_FORMAT_JSON);
    assert_int_equal(kp_log_format_parse("TEXT", &f), 0);
    assert_int_equal(f, KP_LOG_FORMAT_TEXT);
    assert_int_equal(kp_log_format_parse("json", &f), 0);
    assert_int_equal(f, KP_LOG_FORMAT_JSON);
    assert_int_equal(kp_log_format_parse("console", &f), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lines_are_json_with_knative_keys),
        cmocka_unit_test(long_messages_are_whole),
        cmocka_unit_test(level_parse),
        cmocka_unit_test(typed_fields_are_json_numbers),
        cmocka_unit_test(text_format_is_one_readable_line_per_entry),
        cmocka_unit_test(unknown_format_in_env_is_named_and_json_kept),
        cmocka_unit_test(format_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
