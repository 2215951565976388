/* Unit tests for common/http/path.c against Go's documented rules: the
 * cleaning table of Go's path package tests (path_test.go, cleantests),
 * rooted and with the trailing slash net/http's cleanPath keeps, and the
 * spellings Go 1.21's ServeMux sends to a "/wait-for-drain" handler. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/path.h"

static void assert_clean(const char *in, const char *want)
{
    char out[256];
    size_t n = kp_http_path_clean(in, strlen(in), out);
    assert_true(n <= strlen(in) + 1);
    out[n] = '\0';
    if (strcmp(out, want) != 0)
        fail_msg("clean(\"%s\") = \"%s\", want \"%s\"", in, out, want);
}

/* path.Clean's table, each input rooted as cleanPath roots it: what
 * path.Clean makes "." or ".." is "/" here, and ".." never climbs above
 * the root. */
static void clean_follows_go_path_clean(void **state)
{
    /* already clean */
    assert_clean("", "/");
    assert_clean("abc", "/abc");
    assert_clean("abc/def", "/abc/def");
    assert_clean("a/b/c", "/a/b/c");
    assert_clean(".", "/");
    assert_clean("..", "/");
    assert_clean("../..", "/");
    assert_clean("../../abc", "/abc");
    assert_clean("/abc", "/abc");
    assert_clean("/", "/");
    /* doubled slashes */
    assert_clean("abc//def//ghi", "/abc/def/ghi");
    assert_clean("//abc", "/abc");
    assert_clean("///abc", "/abc");
    /* "." elements */
    assert_clean("abc/./def", "/abc/def");
    assert_clean("/./abc/def", "/abc/def");
    assert_clean("abc/.", "/abc");
    /* ".." elements */
    assert_clean("abc/def/ghi/../jkl", "/abc/def/jkl");
    assert_clean("abc/def/../ghi/../jkl", "/abc/jkl");
    assert_clean("abc/def/..", "/abc");
    assert_clean("abc/def/../..", "/");
    assert_clean("/abc/def/../..", "/");
    assert_clean("abc/def/../../..", "/");
    assert_clean("/abc/def/../../..", "/");
    assert_clean("abc/def/../../../ghi/jkl/../../../mno", "/mno");
    /* combinations */
    assert_clean("abc/./../def", "/def");
    assert_clean("abc//./../def", "/def");
    assert_clean("abc/../../././../def", "/def");
}

/* net/http's cleanPath: "path.Clean removes trailing slash except for
 * root; put the trailing slash back if necessary". */
static void clean_keeps_a_trailing_slash(void **state)
{
    assert_clean("abc/", "/abc/");
    assert_clean("abc/def/", "/abc/def/");
    assert_clean("/abc/", "/abc/");
    assert_clean("//abc//", "/abc/");
    assert_clean("abc//", "/abc/");
    assert_clean("/abc/def/../", "/abc/");
    /* a path that cleans to the root gets no second slash */
    assert_clean("./", "/");
    assert_clean("../", "/");
    assert_clean("../../", "/");
    assert_clean("/abc/../", "/");
    assert_clean("//", "/");
    /* a trailing "." or ".." is not a trailing slash */
    assert_clean("/abc/.", "/abc");
    assert_clean("/abc/def/..", "/abc");
}

static void target_path_of_each_request_target_form(void **state)
{
    size_t n = 99;
    const char *t = "/a/b?c=d";
    assert_ptr_equal(kp_http_target_path(t, strlen(t), &n), t);
    assert_int_equal(n, 4);
    t = "http://10.0.0.5:8022//wait-for-drain?x";
    const char *p = kp_http_target_path(t, strlen(t), &n);
    assert_non_null(p);
    assert_int_equal(n, strlen("//wait-for-drain"));
    assert_memory_equal(p, "//wait-for-drain", n);
    t = "http://h:1";
    assert_non_null(kp_http_target_path(t, strlen(t), &n));
    assert_int_equal(n, 0);
    t = "http://h:1?q=/x";
    assert_non_null(kp_http_target_path(t, strlen(t), &n));
    assert_int_equal(n, 0);
    /* asterisk-form, authority-form and a bare word name no path */
    assert_null(kp_http_target_path("*", 1, &n));
    assert_null(kp_http_target_path("h:8022", 6, &n));
    assert_null(kp_http_target_path("wait-for-drain", 14, &n));
    assert_null(kp_http_target_path("", 0, &n));
}

static void unescape_decodes_percent_and_refuses_malformed(void **state)
{
    char out[32];
    assert_int_equal(kp_http_path_unescape("/%41%2f+b", 9, out), 5);
    assert_memory_equal(out, "/A/+b", 5);
    assert_int_equal(kp_http_path_unescape("/a%", 3, out), -1);
    assert_int_equal(kp_http_path_unescape("/a%4", 4, out), -1);
    assert_int_equal(kp_http_path_unescape("/a%g1", 5, out), -1);
    assert_int_equal(kp_http_path_unescape("/a%1g", 5, out), -1);
}

static int is_drain(const char *target)
{
    return kp_http_target_is(target, strlen(target), "/wait-for-drain");
}

/* Each of these reaches the handler of "/wait-for-drain" on Go 1.21's
 * ServeMux: directly when the unescaped path is clean, through the 301 to
 * the cleaned path otherwise. */
static void route_matches_what_go_serve_mux_routes_to_it(void **state)
{
    assert_true(is_drain("/wait-for-drain"));
    assert_true(is_drain("//wait-for-drain")); /* kubelet < 1.26: "http://h:p/" + path */
    assert_true(is_drain("///wait-for-drain"));
    assert_true(is_drain("/./wait-for-drain"));
    assert_true(is_drain("/x/../wait-for-drain"));
    assert_true(is_drain("/../wait-for-drain"));
    assert_true(is_drain("/wait-for-drain/."));
    assert_true(is_drain("/wait-for-drain?a=b"));
    assert_true(is_drain("//wait-for-drain?"));
    assert_true(is_drain("/wait%2Dfor%2ddrain")); /* the mux matches the unescaped path */
    assert_true(is_drain("/%2E/wait-for-drain")); /* Go 1.21 unescapes the whole path */
    assert_true(is_drain("http://10.0.0.5:8022//wait-for-drain"));
    assert_true(kp_http_target_is("http://h", 8, "/"));
    assert_true(kp_http_target_is("//", 2, "/"));
}

static void route_refuses_what_go_serve_mux_does_not_route_to_it(void **state)
{
    assert_false(is_drain("/wait-for-drain/")); /* cleanPath keeps the slash: 404 */
    assert_false(is_drain("/WAIT-FOR-DRAIN"));  /* patterns are case-sensitive */
    assert_false(is_drain("/wait-for-drainx"));
    assert_false(is_drain("/wait-for"));
    assert_false(is_drain("/wait-for-drain/x/../.."));
    assert_false(is_drain("/wait-for-drain%"));
    assert_false(is_drain("/wait-for-drain%2"));
    assert_false(is_drain("/%zzwait-for-drain"));
    assert_false(is_drain("*"));
    assert_false(is_drain("wait-for-drain"));
    assert_false(is_drain(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clean_follows_go_path_clean),
        cmocka_unit_test(clean_keeps_a_trailing_slash),
        cmocka_unit_test(target_path_of_each_request_target_form),
        cmocka_unit_test(unescape_decodes_percent_and_refuses_malformed),
        cmocka_unit_test(route_matches_what_go_serve_mux_routes_to_it),
        cmocka_unit_test(route_refuses_what_go_serve_mux_does_not_route_to_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
