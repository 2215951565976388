/* Unit tests for common/http/head.c and head_check.c: limits, lookups, the
 * transfer codings and request-target rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <llhttp.h>

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

/* llhttp may hand over an empty piece (a field split at a read boundary),
 * also as the first bytes of a head that has no buffer yet: found by
 * fuzz_upstream as a null-pointer offset under UBSan. */
static void empty_pieces_on_a_fresh_head(void **state)
{
    kp_http_head_t h;
    kp_http_head_init(&h);
    assert_int_equal(kp_http_head_add_field(&h, "", 0), 0);
    assert_int_equal(kp_http_head_add_field(&h, "Etag", 4), 0);
    assert_int_equal(kp_http_head_field_done(&h), 0);
    assert_int_equal(kp_http_head_add_value(&h, "", 0), 0);
    assert_int_equal(kp_http_head_value_done(&h), 0);
    kp_http_head_finish(&h);
    assert_int_equal(h.n_headers, 1);
    assert_int_equal(h.headers[0].name_len, 4);
    assert_memory_equal(h.headers[0].name, "Etag", 4);
    assert_int_equal(h.headers[0].value_len, 0);
    kp_http_head_free(&h);

    kp_http_head_init(&h);
    assert_int_equal(kp_http_head_add_url(&h, "", 0), 0);
    assert_int_equal(kp_http_head_add_url(&h, "/", 1), 0);
    kp_http_head_finish(&h);
    assert_int_equal(h.url_len, 1);
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

static void value_excludes_trailing_ows(void **state)
{
    kp_http_head_t h;
    kp_http_head_init(&h);
    add_header(&h, "Host", "example \t ");
    add_header(&h, "X-Empty", " \t");
    kp_http_head_finish(&h);
    assert_int_equal(h.headers[0].value_len, 7);
    assert_int_equal(h.headers[1].value_len, 0);
    kp_http_head_free(&h);
}

/* The status kp_http_head_check gives a POST with these header lines
 * (name, value pairs, NULL-terminated). */
static int check_post(const char **why, ...)
{
    kp_http_head_t h;
    kp_http_head_init(&h);
    kp_http_head_add_url(&h, "/", 1);
    add_header(&h, "Host", "example");
    va_list ap;
    va_start(ap, why);
    const char *name;
    while ((name = va_arg(ap, const char *)) != NULL)
        add_header(&h, name, va_arg(ap, const char *));
    va_end(ap);
    kp_http_head_finish(&h);
    *why = NULL;
    int status = kp_http_head_check(&h, 1, 1, HTTP_POST, why);
    kp_http_head_free(&h);
    return status;
}

static void chunked_with_htab_ows_is_chunked(void **state)
{
    const char *why;
    /* llhttp hands over the value without its leading OWS. */
    assert_int_equal(check_post(&why, "Transfer-Encoding", "chunked\t", NULL), 0);
    assert_int_equal(check_post(&why, "Transfer-Encoding", "CHUNKED", NULL), 0);
    assert_int_equal(check_post(&why, "Transfer-Encoding", "chunked ,\t,", NULL), 0);
}

static void chunked_must_be_the_final_coding_once(void **state)
{
    const char *why;
    assert_int_equal(check_post(&why, "Transfer-Encoding", "chunked, gzip", NULL), 400);
    assert_non_null(strstr(why, "final transfer coding is not chunked"));
    assert_int_equal(
        check_post(&why, "Transfer-Encoding", "chunked", "Transfer-Encoding", "identity", NULL),
        400);
    assert_int_equal(check_post(&why, "Transfer-Encoding", "chunked;q=1", NULL), 400);
    assert_int_equal(check_post(&why, "Transfer-Encoding", "xchunked", NULL), 400);
    assert_int_equal(check_post(&why, "Transfer-Encoding", "chunked,\tchunked", NULL), 400);
    assert_non_null(strstr(why, "more than once"));
    assert_int_equal(check_post(&why, "Transfer-Encoding", "", NULL), 400);
    assert_non_null(strstr(why, "empty Transfer-Encoding"));
    assert_int_equal(check_post(&why, "Transfer-Encoding", "chunked x", NULL), 400);
    assert_non_null(strstr(why, "invalid Transfer-Encoding"));
}

static void other_codings_before_chunked_are_not_implemented(void **state)
{
    const char *why;
    assert_int_equal(check_post(&why, "Transfer-Encoding", "gzip,\tchunked", NULL), 501);
    assert_int_equal(
        check_post(&why, "Transfer-Encoding", "gzip", "Transfer-Encoding", "chunked", NULL), 501);
    assert_non_null(strstr(why, "only chunked"));
}

static void both_framings_are_refused(void **state)
{
    const char *why;
    assert_int_equal(
        check_post(&why, "Content-Length", "5", "Transfer-Encoding", "chunked\t", NULL), 400);
    assert_non_null(strstr(why, "both Content-Length and Transfer-Encoding"));
}

/* Reads target as a method's request-target: the status, and the origin
 * and authority it gives (authority "" when none). */
static int read_target(int method, const char *target, char *origin, char *authority)
{
    kp_http_head_t h;
    kp_http_head_init(&h);
    kp_http_head_add_url(&h, target, strlen(target));
    add_header(&h, "Host", "other.example");
    kp_http_head_finish(&h);
    const char *why = NULL;
    int status = kp_http_head_read_target(&h, method, &why);
    if (status == 0) {
        snprintf(origin, 256, "%.*s", (int)h.origin_len, h.origin);
        snprintf(authority, 256, "%.*s", h.authority ? (int)h.authority_len : 0,
                 h.authority ? h.authority : "");
        /* the target as received stays readable */
        assert_int_equal(h.url_len, strlen(target));
        assert_memory_equal(h.url, target, h.url_len);
    } else {
        assert_non_null(why);
    }
    kp_http_head_free(&h);
    return status;
}

static void absolute_form_gives_authority_and_origin_form(void **state)
{
    char origin[256], authority[256];
    assert_int_equal(read_target(HTTP_GET, "http://a.example:8080/p?q=1", origin, authority), 0);
    assert_string_equal(origin, "/p?q=1");
    assert_string_equal(authority, "a.example:8080");
    assert_int_equal(read_target(HTTP_GET, "HTTPS://a.example", origin, authority), 0);
    assert_string_equal(origin, "/");
    assert_string_equal(authority, "a.example");
    assert_int_equal(read_target(HTTP_GET, "http://a.example?q=1", origin, authority), 0);
    assert_string_equal(origin, "/?q=1");
    assert_int_equal(read_target(HTTP_OPTIONS, "http://a.example", origin, authority), 0);
    assert_string_equal(origin, "*");
    assert_int_equal(read_target(HTTP_GET, "/p?q", origin, authority), 0);
    assert_string_equal(origin, "/p?q");
    assert_string_equal(authority, "");
    assert_int_equal(read_target(HTTP_OPTIONS, "*", origin, authority), 0);
    assert_string_equal(origin, "*");
}

static void absolute_form_without_a_usable_host_is_refused(void **state)
{
    char origin[256], authority[256];
    assert_int_equal(read_target(HTTP_GET, "http:///p", origin, authority), 400);
    assert_int_equal(read_target(HTTP_GET, "http://user@a.example/", origin, authority), 400);
    assert_int_equal(read_target(HTTP_GET, "ftp://a.example/", origin, authority), 400);
    assert_int_equal(read_target(HTTP_GET, "http://a b/", origin, authority), 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_pieces_join_into_one_header),
        cmocka_unit_test(empty_pieces_on_a_fresh_head),
        cmocka_unit_test(reset_forgets_previous_message),
        cmocka_unit_test(long_url_is_414),
        cmocka_unit_test(too_many_headers_is_431),
        cmocka_unit_test(huge_header_is_431),
        cmocka_unit_test(connection_tokens_are_found_case_insensitively),
        cmocka_unit_test(http1_any_minor_is_served_other_majors_refused),
        cmocka_unit_test(value_excludes_trailing_ows),
        cmocka_unit_test(chunked_with_htab_ows_is_chunked),
        cmocka_unit_test(chunked_must_be_the_final_coding_once),
        cmocka_unit_test(other_codings_before_chunked_are_not_implemented),
        cmocka_unit_test(both_framings_are_refused),
        cmocka_unit_test(absolute_form_gives_authority_and_origin_form),
        cmocka_unit_test(absolute_form_without_a_usable_host_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
