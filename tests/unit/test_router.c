/* Tests for activator/router.c: hosts of any domain (sslip.io, xip.io, a
 * custom one, none), tag hosts, Knative's revision headers, and the traffic
 * split's weights. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "activator/config/config.h"
#include "activator/router.h"

typedef struct fixture {
    kp_activator_config_t cfg;
    kp_router_t *router;
} fixture_t;

/* helloworld-go as in config/local.json, an 80/20 split "web" in "prod",
 * and a service whose name is also a tag host of another ("a-b" vs tag "a"
 * of "b") to check that the service wins. */
static const char config_json[] =
    "{\"domain\": \"127.0.0.1.sslip.io\", \"services\": ["
    "{\"name\": \"helloworld-go\", \"namespace\": \"default\", \"revisions\": ["
    "  {\"name\": \"helloworld-go-00001\"}, {\"name\": \"helloworld-go-00002\"}],"
    " \"traffic\": [{\"revisionName\": \"helloworld-go-00001\", \"percent\": 100},"
    "  {\"revisionName\": \"helloworld-go-00002\", \"percent\": 0, \"tag\": \"candidate\"}]},"
    "{\"name\": \"web\", \"namespace\": \"prod\", \"revisions\": ["
    "  {\"name\": \"web-1\"}, {\"name\": \"web-2\"}, {\"name\": \"web-3\"}],"
    " \"traffic\": [{\"revisionName\": \"web-1\", \"percent\": 80},"
    "  {\"revisionName\": \"web-2\", \"percent\": 20},"
    "  {\"revisionName\": \"web-3\", \"percent\": 0, \"tag\": \"next\"}]},"
    "{\"name\": \"b\", \"revisions\": [{\"name\": \"b-1\"}, {\"name\": \"b-2\"}],"
    " \"traffic\": [{\"revisionName\": \"b-1\", \"percent\": 100},"
    "  {\"revisionName\": \"b-2\", \"percent\": 0, \"tag\": \"a\"}]},"
    "{\"name\": \"a-b\", \"revisions\": [{\"name\": \"a-b-1\"}]}"
    "]}";

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    char err[512];
    if (kp_activator_config_parse(config_json, strlen(config_json), &f->cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    f->router = kp_router_new(&f->cfg);
    assert_non_null(f->router);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    kp_router_free(f->router);
    kp_activator_config_free(&f->cfg);
    free(f);
    return 0;
}

/* The revision name a host routes to with this random, or NULL. */
static const char *by_host(void **state, const char *host, uint32_t random)
{
    fixture_t *f = *state;
    kp_route_t r;
    if (kp_router_route(f->router, host, strlen(host), NULL, 0, NULL, 0, random, &r) != 0)
        return NULL;
    assert_non_null(r.revision);
    return r.revision->name;
}

static void assert_host(void **state, const char *host, const char *want)
{
    const char *got = by_host(state, host, 7);
    if (!got || strcmp(got, want) != 0)
        fail_msg("host \"%s\" -> %s, expected %s", host, got ? got : "(none)", want);
}

static void assert_no_route(void **state, const char *host)
{
    const char *got = by_host(state, host, 7);
    if (got)
        fail_msg("host \"%s\" -> %s, expected no route", host, got);
}

static void host_with_any_domain_routes_to_service(void **state)
{
    assert_host(state, "helloworld-go.default.127.0.0.1.sslip.io", "helloworld-go-00001");
    assert_host(state, "helloworld-go.default.1.2.3.4.xip.io", "helloworld-go-00001");
    assert_host(state, "helloworld-go.default.example.com", "helloworld-go-00001");
    assert_host(state, "helloworld-go.default.svc.cluster.local", "helloworld-go-00001");
    assert_host(state, "helloworld-go.default", "helloworld-go-00001");
}

static void host_port_case_and_trailing_dot_are_ignored(void **state)
{
    assert_host(state, "helloworld-go.default.127.0.0.1.sslip.io:8080", "helloworld-go-00001");
    assert_host(state, "HelloWorld-Go.DEFAULT.127.0.0.1.SSLIP.IO", "helloworld-go-00001");
    assert_host(state, "helloworld-go.default.example.com.", "helloworld-go-00001");
    assert_host(state, "helloworld-go.default.example.com.:80", "helloworld-go-00001");
    assert_host(state, "helloworld-go.default:8080", "helloworld-go-00001");
}

static void route_reports_service_and_no_tag(void **state)
{
    fixture_t *f = *state;
    kp_route_t r;
    const char *h = "web.prod.example.com";
    assert_int_equal(kp_router_route(f->router, h, strlen(h), NULL, 0, NULL, 0, 0, &r), 0);
    assert_ptr_equal(r.service, &f->cfg.services[1]);
    assert_null(r.tag);
}

static void tag_host_routes_to_tagged_revision_whatever_its_percent(void **state)
{
    fixture_t *f = *state;
    for (uint32_t rnd = 0; rnd < 200; rnd++) {
        assert_string_equal(
            by_host(state, "candidate-helloworld-go.default.127.0.0.1.sslip.io", rnd),
            "helloworld-go-00002");
        assert_string_equal(by_host(state, "next-web.prod.1.2.3.4.xip.io:443", rnd), "web-3");
    }
    kp_route_t r;
    const char *h = "Candidate-HelloWorld-Go.default.example.com";
    assert_int_equal(kp_router_route(f->router, h, strlen(h), NULL, 0, NULL, 0, 0, &r), 0);
    assert_string_equal(r.tag, "candidate");
    assert_ptr_equal(r.service, &f->cfg.services[0]);
}

static void service_name_wins_over_tag_reading(void **state)
{
    /* "a-b.default" is both service a-b and tag "a" of service b. */
    assert_host(state, "a-b.default.example.com", "a-b-1");
    assert_host(state, "b.default.example.com", "b-1");
}

static void unknown_hosts_do_not_route(void **state)
{
    assert_no_route(state, "nosuch.default.example.com");
    assert_no_route(state, "helloworld-go.prod.example.com"); /* wrong namespace */
    assert_no_route(state, "web.default.example.com");
    assert_no_route(state, "helloworld-go");
    assert_no_route(state, "helloworld-go.");
    assert_no_route(state, ".default.example.com");
    assert_no_route(state, "other-helloworld-go.default.example.com"); /* no such tag */
    assert_no_route(state, "127.0.0.1:8080");
    assert_no_route(state, "[::1]:8080");
    assert_no_route(state, "");
    assert_no_route(state, ":80");
    assert_no_route(state, "helloworld-go-00001.default.example.com"); /* a revision */
}

static void revision_headers_name_the_revision(void **state)
{
    fixture_t *f = *state;
    kp_route_t r;
    /* Headers win over the host. */
    const char *h = "helloworld-go.default.example.com";
    assert_int_equal(kp_router_route(f->router, h, strlen(h), "web-3", 5, "prod", 4, 0, &r), 0);
    assert_string_equal(r.revision->name, "web-3");
    assert_null(r.service);
    /* Any service's revision, even one with no traffic. */
    assert_int_equal(
        kp_router_route(f->router, NULL, 0, "helloworld-go-00002", 19, "default", 7, 0, &r), 0);
    assert_ptr_equal(r.revision, &f->cfg.services[0].revisions[1]);
    /* Lengths are honoured: the strings need no terminator. */
    assert_int_equal(kp_router_route(f->router, NULL, 0, "web-1XYZ", 5, "prodXYZ", 4, 0, &r), 0);
    assert_string_equal(r.revision->name, "web-1");
    /* Wrong namespace or unknown revision: nothing, not the host's route. */
    assert_int_equal(kp_router_route(f->router, h, strlen(h), "web-1", 5, "default", 7, 0, &r), -1);
    assert_int_equal(kp_router_route(f->router, h, strlen(h), "web-9", 5, "prod", 4, 0, &r), -1);
    assert_int_equal(kp_router_route(f->router, h, strlen(h), "web", 3, "1.prod", 6, 0, &r), -1);
    /* Only one of the two headers: the host decides. */
    assert_int_equal(kp_router_route(f->router, h, strlen(h), "web-1", 5, NULL, 0, 0, &r), 0);
    assert_string_equal(r.revision->name, "helloworld-go-00001");
}

static void split_80_20_lands_within_two_percent(void **state)
{
    /* A fixed-seed xorshift32: uniform enough, and reproducible. */
    uint32_t x = 2463534242u;
    int n1 = 0, n2 = 0, other = 0;
    const int n = 10000;
    for (int i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        const char *rev = by_host(state, "web.prod.example.com", x);
        if (rev && strcmp(rev, "web-1") == 0)
            n1++;
        else if (rev && strcmp(rev, "web-2") == 0)
            n2++;
        else
            other++;
    }
    assert_int_equal(other, 0);
    assert_in_range(n1, n * 78 / 100, n * 82 / 100);
    assert_in_range(n2, n * 18 / 100, n * 22 / 100);
}

static void zero_percent_revision_is_never_picked_by_host(void **state)
{
    /* Every residue mod 100, and the extremes of the 32-bit range. */
    for (uint32_t rnd = 0; rnd < 1000; rnd++) {
        assert_string_equal(by_host(state, "helloworld-go.default.example.com", rnd),
                            "helloworld-go-00001");
        const char *rev = by_host(state, "web.prod.example.com", rnd);
        assert_true(strcmp(rev, "web-3") != 0);
    }
    assert_string_equal(by_host(state, "helloworld-go.default.example.com", UINT32_MAX),
                        "helloworld-go-00001");
    assert_true(strcmp(by_host(state, "web.prod.example.com", UINT32_MAX), "web-3") != 0);
}

static void local_json_routes_the_demo_hosts(void **state)
{
    kp_activator_config_t cfg;
    char err[512];
    const char *path = "config/local.json";
    char alt[1024];
    FILE *probe = fopen(path, "r");
    if (probe) {
        fclose(probe);
    } else {
        const char *slash = strrchr(__FILE__, '/');
        snprintf(alt, sizeof alt, "%.*s/../../config/local.json",
                 slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
        path = alt;
    }
    if (kp_activator_config_load_file(path, &cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    kp_router_t *r = kp_router_new(&cfg);
    assert_non_null(r);
    kp_route_t out;
    const char *h = "helloworld-go.default.127.0.0.1.sslip.io";
    assert_int_equal(kp_router_route(r, h, strlen(h), NULL, 0, NULL, 0, 42, &out), 0);
    assert_string_equal(out.revision->name, "helloworld-go-00001");
    h = "candidate-helloworld-go.default.127.0.0.1.sslip.io";
    assert_int_equal(kp_router_route(r, h, strlen(h), NULL, 0, NULL, 0, 42, &out), 0);
    assert_string_equal(out.revision->name, "helloworld-go-00002");
    kp_router_free(r);
    kp_activator_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(host_with_any_domain_routes_to_service, setup, teardown),
        cmocka_unit_test_setup_teardown(host_port_case_and_trailing_dot_are_ignored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(route_reports_service_and_no_tag, setup, teardown),
        cmocka_unit_test_setup_teardown(tag_host_routes_to_tagged_revision_whatever_its_percent,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(service_name_wins_over_tag_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_hosts_do_not_route, setup, teardown),
        cmocka_unit_test_setup_teardown(revision_headers_name_the_revision, setup, teardown),
        cmocka_unit_test_setup_teardown(split_80_20_lands_within_two_percent, setup, teardown),
        cmocka_unit_test_setup_teardown(zero_percent_revision_is_never_picked_by_host, setup,
                                        teardown),
        cmocka_unit_test(local_json_routes_the_demo_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
