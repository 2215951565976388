/* Tests for activator/status_table.c: /status JSON drawn as kubectl-style
 * tables, ages as kubectl prints them, and what a document that is not an
 * activator's /status gets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "activator/status_table.h"

static const char status_doc[] =
    "{\"draining\":false,\"backend\":\"local\",\"services\":[{\"name\":\"helloworld-go\","
    "\"namespace\":\"default\",\"url\":\"helloworld-go.default.127.0.0.1.sslip.io\","
    "\"traffic\":[{\"revision_name\":\"helloworld-go-00001\",\"percent\":100},"
    "{\"revision_name\":\"helloworld-go-00002\",\"percent\":0,\"tag\":\"candidate\"}],"
    "\"revisions\":[{\"name\":\"helloworld-go-00001\",\"container_concurrency\":10,"
    "\"timeout_seconds\":300,\"desired_pods\":3,\"ready_pods\":2,\"held\":4,\"in_flight\":20,"
    "\"cold_starts\":1,\"requests\":{\"1xx\":0,\"2xx\":9,\"3xx\":0,\"4xx\":0,\"5xx\":0},"
    "\"autoscaler\":{\"stable_concurrency\":12.25,\"panic_concurrency\":20,"
    "\"target_concurrency_per_pod\":7,\"panic_mode\":true,\"stable_pods\":2,\"panic_pods\":3,"
    "\"excess_burst_capacity\":-211,\"reason\":\"panic\",\"decided_age_seconds\":0.5},"
    "\"last_scale\":{\"from\":1,\"to\":3,\"reason\":\"panic\",\"age_seconds\":130.2},"
    "\"last_failure\":{\"reason\":\"pod helloworld-go-00001-2 failed to start: app ended with "
    "exit status 1 after 12 ms\",\"age_seconds\":4},"
    "\"stats\":{\"rounds\":5,\"scrape_timeouts\":0},"
    "\"pods\":[{\"id\":\"helloworld-go-00001-3\",\"ip\":\"127.0.0.1\",\"port\":20011,"
    "\"ready\":false,\"removed\":false,\"in_flight\":0,\"age_seconds\":1.5},"
    "{\"id\":\"helloworld-go-00001-1\",\"ip\":\"127.0.0.1\",\"port\":20001,\"ready\":true,"
    "\"removed\":false,\"in_flight\":10,\"age_seconds\":745},"
    "{\"id\":\"helloworld-go-00001-0\",\"ip\":\"127.0.0.1\",\"port\":20000,\"ready\":false,"
    "\"removed\":true,\"in_flight\":10,\"age_seconds\":7300}]},"
    "{\"name\":\"helloworld-go-00002\",\"container_concurrency\":10,\"timeout_seconds\":300,"
    "\"desired_pods\":0,\"ready_pods\":0,\"held\":0,\"in_flight\":0,\"cold_starts\":0,"
    "\"requests\":{\"1xx\":0,\"2xx\":0,\"3xx\":0,\"4xx\":0,\"5xx\":0},"
    "\"autoscaler\":{\"stable_concurrency\":0,\"panic_concurrency\":0,"
    "\"target_concurrency_per_pod\":7,\"panic_mode\":false,\"stable_pods\":0,\"panic_pods\":0,"
    "\"excess_burst_capacity\":-211,\"reason\":\"at zero\",\"decided_age_seconds\":0.5},"
    "\"last_scale\":null,\"last_failure\":null,\"pods\":[]}]}]}";

static const char want_tables[] =
    "SERVICE         NAMESPACE   URL                                        TRAFFIC\n"
    "helloworld-go   default     helloworld-go.default.127.0.0.1.sslip.io   "
    "helloworld-go-00001=100% candidate:helloworld-go-00002=0%\n"
    "\n"
    "REVISION              SERVICE         DESIRED   READY   HELD   IN-FLIGHT   STABLE   PANIC   "
    "TARGET   MODE     LAST SCALE       REASON   FAILURE\n"
    "helloworld-go-00001   helloworld-go   3         2       4      20          12.2     20      "
    "7        panic    1->3 2m10s ago   panic    pod helloworld-go-00001-2 failed to start: app "
    "ended with exit status 1 after 12 ms (4s ago)\n"
    "helloworld-go-00002   helloworld-go   0         0       0      0           0        0       "
    "7        stable   -                -        -\n"
    "\n"
    "POD                     REVISION              STATUS        IN-FLIGHT   AGE\n"
    "helloworld-go-00001-3   helloworld-go-00001   NotReady      0           1s\n"
    "helloworld-go-00001-1   helloworld-go-00001   Ready         10          12m\n"
    "helloworld-go-00001-0   helloworld-go-00001   Terminating   10          121m\n";

static void status_is_drawn_as_kubectl_tables(void **state)
{
    kp_strbuf_t out;
    kp_strbuf_init(&out);
    char err[256] = "";
    assert_int_equal(act_status_table_render(status_doc, strlen(status_doc), &out, err, sizeof err),
                     0);
    assert_string_equal(out.data, want_tables);
    kp_strbuf_free(&out);
}

static void no_pod_and_no_service_say_so(void **state)
{
    static const char no_pods[] =
        "{\"services\":[{\"name\":\"s\",\"namespace\":\"n\",\"traffic\":[],\"revisions\":"
        "[{\"name\":\"s-1\",\"pods\":[]},null]}]}";
    kp_strbuf_t out;
    kp_strbuf_init(&out);
    char err[256];
    assert_int_equal(act_status_table_render(no_pods, strlen(no_pods), &out, err, sizeof err), 0);
    /* A revision with no autoscaler state yet: dashes, not zeros. */
    assert_non_null(strstr(out.data, "\ns-1        s         0         0       0      0           -"
                                     "        -       -        -      -            -        -\n"));
    assert_non_null(strstr(out.data, "\n\nNo pods.\n"));
    kp_strbuf_reset(&out);
    static const char none[] = "{\"draining\":true,\"services\":[]}";
    assert_int_equal(act_status_table_render(none, strlen(none), &out, err, sizeof err), 0);
    assert_string_equal(out.data, "The activator is shutting down: it finishes what it "
                                  "accepted.\n\nNo services configured.\n");
    kp_strbuf_free(&out);
}

static void other_documents_are_refused_saying_why(void **state)
{
    kp_strbuf_t out;
    kp_strbuf_init(&out);
    char err[256];
    assert_int_equal(act_status_table_render("ok\n", 3, &out, err, sizeof err), -1);
    assert_string_equal(err, "not an activator's /status: not JSON");
    assert_int_equal(act_status_table_render("{\"a\":1}", 7, &out, err, sizeof err), -1);
    assert_string_equal(err, "not an activator's /status: no \"services\" list");
    assert_int_equal(out.len, 0);
    kp_strbuf_free(&out);
}

static void ages_read_as_kubectl_prints_them(void **state)
{
    static const struct {
        double seconds;
        const char *want;
    } cases[] = {
        {0, "0s"},       {59.9, "59s"},   {119, "119s"},   {120, "2m0s"},    {599, "9m59s"},
        {600, "10m"},    {10799, "179m"}, {10800, "3h0m"}, {28799, "7h59m"}, {28800, "8h"},
        {172799, "47h"}, {172800, "2d"},  {-1, "-"},       {0.0 / 0.0, "-"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        act_status_format_age(cases[i].seconds, buf, sizeof buf);
        assert_string_equal(buf, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_is_drawn_as_kubectl_tables),
        cmocka_unit_test(no_pod_and_no_service_say_so),
        cmocka_unit_test(other_documents_are_refused_saying_why),
        cmocka_unit_test(ages_read_as_kubectl_prints_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
