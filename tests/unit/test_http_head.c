/* Unit tests for common/http/head.c: limits and lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/head.h"

static void add_header(kp_http_head_t *h, const char *name, const char *value)
{
    assert_int_equal(kp_http_head_add_field(h, name, strlen(name)), 0);
    assert_int_equal(kp_http_head_field_done(h), 0);
    assert_int_equal(kp_http_head_add_value(h, value, strlen(value)), 0);
    assert_int_equal(kp_http_head_value_done(h), 0);
}

static void split_pieces_join_into_one_header(void **state)
{
    kp_http_head_t h;
    kp_http_head_init(&h);
    kp_http_head_add_url(&h, "/a", 2);
    kp_http_head_add_url(&h, "bc", 2);
    kp_http_head_add_field(&h, "Ho", 2);
    kp_http_head_add_field(&h, "st", 2);
    kp_http_head_field_done(&h);
    kp_http_head_add_value(&h, "exa", 3);
    kp_http_head_add_value(&h, "mple", 4);
    kp_http_head_value_done(&h);
    add_header(&h, "X-B3-TraceId", "abc");
    kp_http_head_finish(&h);
    assert_int_equal(h.url_len, 4);
    assert_memory_equal(h.url, "/abc", 4);
    const kp_http_header_t *host = kp_http_header_find(h.headers, h.n_headers, "HOST");
    assert_non_null(host);
    assert_int_equal(host->value_len, 7);
    assert_memory_equal(host->value, "example", 7);
    assert_non_null(kp_http_header_find(h.headers, h.n_headers, "x-b3-traceid"));
    assert_null(kp_http_header_find(h.headers, h.n_headers, "missing"));
    kp_http_head_free(&h);
}

static void reset_forgets_previous_message(void **state)
{
    kp_http_head_t h;
    kp_http_head_init(&h);
    add_header(&h, "A", "1");
    kp_http_head_reset(&h);
    add_header(&h, "B", "2");
    kp_http_head_finish(&h);
    assert_int_equal(h.n_headers, 1);
    assert_memory_equal(h.headers[0].name, "B", 1);
    kp_http_head_free(&h);
}

static void long_url_is_414(void **state)
{
    kp_http_head_t h;
    kp_http_head_init(&h);
    char url[KP_HTTP_MAX_URL + 1];
    memset(url, 'a', sizeof url);
    assert_int_equal(kp_http_head_add_url(&h, url, KP_HTTP_MAX_URL), 0);
    assert_int_equal(kp_http_head_add_url(&h, "b", 1), -1);
    assert_int_equal(h.error, KP_HEAD_URL_TOO_LONG);
    kp_http_head_free(&h);
}

static void too_many_headers_is_431(void **state)
{
    kp_http_head_t h;
    kp_http_head_init(&h);
    for (int i = 0; i < KP_HTTP_MAX_HEADERS; i++)
        add_header(&h, "X", "y");
    assert_int_equal(kp_http_head_add_field(&h, "X", 1), -1);
    assert_int_equal(h.error, KP_HEAD_TOO_MANY);
    kp_http_head_free(&h);
}

static void huge_header_is_431(void **state)
{
    kp_http_head_t h;
    kp_http_head_init(&h);
    static char value[KP_HTTP_MAX_HEAD];
    memset(value, 'v', sizeof value);
    kp_http_head_add_field(&h, "Cookie", 6);
    kp_http_head_field_done(&h);
    assert_int_equal(kp_http_head_add_value(&h, value, sizeof value), -1);
    assert_int_equal(h.error, KP_HEAD_TOO_LARGE);
    kp_http_head_free(&h);
}

static void connection_tokens_are_found_case_insensitively(void **state)
{
    const char v[] = "keep-alive, Upgrade ,x-custom";
    assert_true(kp_http_value_has_token(v, strlen(v), "upgrade"));
    assert_true(kp_http_value_has_token(v, strlen(v), "X-Custom"));
    assert_false(kp_http_value_has_token(v, strlen(v), "close"));
    assert_false(kp_http_value_has_token(v, strlen(v), "keep"));
}

static void http1_any_minor_is_served_other_majors_refused(void **state)
{
    const char *why = NULL;
    assert_int_equal(kp_http_version_check(1, 0, &why), 0);
    assert_int_equal(kp_http_version_check(1, 1, &why), 0);
    assert_int_equal(kp_http_version_check(1, 2, &why), 0);
    assert_int_equal(kp_http_version_check(1, 9, &why), 0);
    assert_int_equal(kp_http_version_check(2, 0, &why), 505);
    assert_non_null(strstr(why, "HTTP/1.1"));
    assert_int_equal(kp_http_version_check(9, 9, &why), 505);
    assert_int_equal(kp_http_version_check(0, 9, &why), 400);
    assert_non_null(strstr(why, "HTTP/0.9"));
    assert_int_equal(kp_http_version_check(0, 8, &why), 400);
    assert_non_null(strstr(why, "invalid HTTP version"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_pieces_join_into_one_header),
        cmocka_unit_test(reset_forgets_previous_message),
        cmocka_unit_test(long_url_is_414),
        cmocka_unit_test(too_many_headers_is_431),
        cmocka_unit_test(huge_header_is_431),
        cmocka_unit_test(connection_tokens_are_found_case_insensitively),
        cmocka_unit_test(http1_any_minor_is_served_other_majors_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
