/* Tests for activator/config/config.c: the demo config loads as the docs describe;
 * each mistake stops the start with a message naming the path and what is
 * accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "activator/config/config.h"

/* config/local.json from the repository root, or found from this file's
 * path when the test runs elsewhere. */
static const char *local_json_path(void)
{
    static char path[1024];
    if (access("config/local.json", R_OK) == 0)
        return "config/local.json";
    const char *slash = strrchr(__FILE__, '/');
    snprintf(path, sizeof path, "%.*s/../../config/local.json", slash ? (int)(slash - __FILE__) : 1,
             slash ? __FILE__ : ".");
    return path;
}

static const char *kv_get(const kp_kv_t *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0)
            return kv[i].value;
    return NULL;
}

static void expect_error(const char *json, const char *want)
{
    kp_activator_config_t cfg;
    char err[1024];
    int rc = kp_activator_config_parse(json, strlen(json), &cfg, err, sizeof err);
    if (rc != -1 || !strstr(err, want))
        fail_msg("rc %d, error \"%s\"\nwanted it to contain \"%s\"", rc, err, want);
    assert_null(cfg.services); /* freed on failure */
}

static void parse_ok(const char *json, kp_activator_config_t *cfg)
{
    char err[512];
    int rc = kp_activator_config_parse(json, strlen(json), cfg, err, sizeof err);
    if (rc != 0)
        fail_msg("rc %d: %s", rc, err);
}

static void local_json_loads_the_demo(void **state)
{
    kp_activator_config_t cfg;
    char err[512];
    const char *path = local_json_path();
    if (kp_activator_config_load_file(path, &cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(cfg.domain, "127.0.0.1.sslip.io");
    assert_int_equal(cfg.n_services, 1);
    const kp_service_spec_t *s = &cfg.services[0];
    assert_string_equal(s->name, "helloworld-go");
    assert_string_equal(s->namespace_, "default");
    assert_int_equal(s->n_revisions, 2);
    const kp_revision_spec_t *r1 = &s->revisions[0], *r2 = &s->revisions[1];
    assert_string_equal(r1->name, "helloworld-go-00001");
    assert_string_equal(r2->name, "helloworld-go-00002");
    for (int i = 0; i < 2; i++) {
        const kp_revision_spec_t *r = &s->revisions[i];
        assert_string_equal(r->namespace_, "default");
        assert_string_equal(r->service, "helloworld-go");
        assert_int_equal(r->container_concurrency, 10);
        assert_int_equal(r->timeout_s, 300);
        assert_int_equal(r->response_start_timeout_s, 0);
        assert_int_equal(r->idle_timeout_s, 0);
        assert_string_equal(
            kv_get(r->annotations, r->n_annotations, "autoscaling.knative.dev/min-scale"), "0");
        assert_int_equal(r->n_command, 0);
        assert_null(r->command);
    }
    assert_string_equal(kv_get(r1->env, r1->n_env, "TARGET"), "World");
    assert_string_equal(kv_get(r2->env, r2->n_env, "TARGET"), "Knative");
    assert_int_equal(s->n_traffic, 2);
    assert_ptr_equal(s->traffic[0].revision, r1);
    assert_int_equal(s->traffic[0].percent, 100);
    assert_null(s->traffic[0].tag);
    assert_ptr_equal(s->traffic[1].revision, r2);
    assert_string_equal(s->traffic[1].revision_name, "helloworld-go-00002");
    assert_int_equal(s->traffic[1].percent, 0);
    assert_string_equal(s->traffic[1].tag, "candidate");
    /* Knative's defaults, as strings for the autoscaler. */
    assert_string_equal(kv_get(cfg.autoscaler, cfg.n_autoscaler, "stable-window"), "60s");
    assert_string_equal(kv_get(cfg.autoscaler, cfg.n_autoscaler, "scale-to-zero-grace-period"),
                        "30s");
    kp_activator_config_free(&cfg);
    assert_null(cfg.services);
}

static void defaults_fill_namespace_timeout_and_traffic(void **state)
{
    kp_activator_config_t cfg;
    parse_ok("{\"services\": [{\"name\": \"web\", \"revisions\": [{\"name\": \"web-1\"}, "
             "{\"name\": \"web-2\", \"command\": [\"/bin/app\", \"--x\"]}]}]}",
             &cfg);
    assert_string_equal(cfg.domain, "example.com");
    assert_int_equal(cfg.n_autoscaler, 0);
    const kp_service_spec_t *s = &cfg.services[0];
    assert_string_equal(s->namespace_, "default");
    assert_int_equal(s->revisions[0].timeout_s, 300);
    assert_int_equal(s->revisions[0].container_concurrency, 0);
    /* No traffic: 100 % to the last revision, as Knative's default route. */
    assert_int_equal(s->n_traffic, 1);
    assert_ptr_equal(s->traffic[0].revision, &s->revisions[1]);
    assert_int_equal(s->traffic[0].percent, 100);
    assert_int_equal(s->revisions[1].n_command, 2);
    assert_string_equal(s->revisions[1].command[0], "/bin/app");
    assert_string_equal(s->revisions[1].command[1], "--x");
    kp_activator_config_free(&cfg);
}

static void autoscaler_numbers_and_booleans_become_strings(void **state)
{
    kp_activator_config_t cfg;
    parse_ok("{\"autoscaler\": {\"stable-window\": \"60s\", \"max-scale-up-rate\": 1000, "
             "\"panic-threshold-percentage\": 200.5, \"enable-scale-to-zero\": false},"
             "\"services\": [{\"name\": \"web\", \"revisions\": [{\"name\": \"web-1\"}]}]}",
             &cfg);
    assert_int_equal(cfg.n_autoscaler, 4);
    assert_string_equal(cfg.autoscaler[0].key, "stable-window"); /* file order */
    assert_string_equal(cfg.autoscaler[0].value, "60s");
    assert_string_equal(cfg.autoscaler[1].value, "1000");
    assert_string_equal(cfg.autoscaler[2].value, "200.5");
    assert_string_equal(cfg.autoscaler[3].value, "false");
    kp_activator_config_free(&cfg);
}

static void latest_revision_targets_the_last_one(void **state)
{
    kp_activator_config_t cfg;
    parse_ok("{\"services\": [{\"name\": \"web\", \"revisions\": [{\"name\": \"web-1\"}, "
             "{\"name\": \"web-2\"}], \"traffic\": [{\"latestRevision\": true, \"percent\": 60}, "
             "{\"revisionName\": \"web-1\", \"percent\": 40, \"tag\": \"old\"}]}]}",
             &cfg);
    const kp_service_spec_t *s = &cfg.services[0];
    assert_ptr_equal(s->traffic[0].revision, &s->revisions[1]);
    assert_string_equal(s->traffic[0].revision_name, "web-2");
    assert_ptr_equal(s->traffic[1].revision, &s->revisions[0]);
    kp_activator_config_free(&cfg);
}

#define SVC_PRE "{\"services\": [{\"name\": \"web\", \"revisions\": [{\"name\": \"web-1\""
#define SVC_POST "}]}]}"

static void bad_json_names_the_line(void **state)
{
    expect_error("{\n  \"services\": [\n    {\"name\": \"web\",,}\n  ]\n}", "line 3: invalid JSON");
    expect_error("{\"services\": [", "invalid JSON");
    expect_error("", "invalid JSON");
    expect_error("[]", "top level: [] is not an object");
}

static void unknown_fields_are_rejected(void **state)
{
    expect_error("{\"service\": []}",
                 "service: unknown field (expected domain, autoscaler, services)");
    expect_error("{\"services\": [{\"name\": \"web\", \"revision\": []}]}",
                 "services[0].revision: unknown field (expected name, namespace, revisions, "
                 "traffic)");
    expect_error(SVC_PRE ", \"containerConcurency\": 10" SVC_POST,
                 "services[0].revisions[0].containerConcurency: unknown field (expected name, "
                 "containerConcurrency,");
    expect_error("{\"services\": [{\"name\": \"web\", \"revisions\": [{\"name\": \"web-1\"}], "
                 "\"traffic\": [{\"revisionName\": \"web-1\", \"percentage\": 100}]}]}",
                 "services[0].traffic[0].percentage: unknown field (expected revisionName, "
                 "latestRevision, percent, tag)");
    expect_error("{\"autoscaler\": {\"stable-windw\": \"60s\"}, \"services\": []}",
                 "autoscaler: stable-windw: unknown config-autoscaler key (expected one of: "
                 "pod-autoscaler-class, container-concurrency-target-default, ");
    expect_error("{\"domain\": \"a.io\", \"domain\": \"b.io\", \"services\": []}",
                 "domain: given twice");
}

/* On Kubernetes the Knative Services alone may make the routing table. */
static void no_services_is_a_valid_config(void **state)
{
    const char *forms[] = {"{}", "{\"services\": []}",
                           "{\"domain\": \"a.io\", \"autoscaler\": {\"stable-window\": \"30s\"}, "
                           "\"services\": []}"};
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        kp_activator_config_t cfg;
        parse_ok(forms[i], &cfg);
        assert_int_equal(cfg.n_services, 0);
        assert_null(cfg.services);
        assert_non_null(cfg.domain);
        kp_activator_config_free(&cfg);
    }
    kp_activator_config_t cfg;
    parse_ok("{\"domain\": \"a.io\", \"autoscaler\": {\"stable-window\": \"30s\"}}", &cfg);
    assert_string_equal(cfg.domain, "a.io");
    assert_string_equal(kv_get(cfg.autoscaler, cfg.n_autoscaler, "stable-window"), "30s");
    kp_activator_config_free(&cfg);
}

static void missing_parts_are_named(void **state)
{
    expect_error("{\"services\": {}}", "services: {} is not an array");
    expect_error("{\"services\": \"web\"}", "services: \"web\" is not an array");
    expect_error("{\"services\": [{\"revisions\": []}]}", "services[0].name: missing");
    expect_error("{\"services\": [{\"name\": \"web\"}]}", "services[0].revisions: missing");
    expect_error("{\"services\": [{\"name\": \"web\", \"revisions\": [{}]}]}",
                 "services[0].revisions[0].name: missing");
    expect_error("{\"services\": [{\"name\": \"web\", \"revisions\": [{\"name\": \"web-1\"}], "
                 "\"traffic\": [{\"percent\": 100}]}]}",
                 "services[0].traffic[0]: no revision (expected \"revisionName\" or "
                 "\"latestRevision\": true)");
}

static void integers_are_checked_with_their_range(void **state)
{
    expect_error("{\"services\": [{\"name\": \"web\", \"revisions\": [{\"name\": \"web-1\"}, "
                 "{\"name\": \"web-2\", \"containerConcurrency\": \"ten\"}]}]}",
                 "services[0].revisions[1].containerConcurrency: \"ten\" is not an integer "
                 "(expected 0..1000)");
    expect_error(SVC_PRE ", \"containerConcurrency\": 1001" SVC_POST,
                 "services[0].revisions[0].containerConcurrency: 1001 is out of range (expected "
                 "0..1000)");
    expect_error(SVC_PRE ", \"containerConcurrency\": 2.5" SVC_POST,
                 "containerConcurrency: 2.5 is not an integer (expected 0..1000)");
    expect_error(SVC_PRE ", \"timeoutSeconds\": 0" SVC_POST,
                 "services[0].revisions[0].timeoutSeconds: 0 is out of range (expected 1..3600)");
    expect_error(SVC_PRE ", \"timeoutSeconds\": 3601" SVC_POST,
                 "timeoutSeconds: 3601 is out of range (expected 1..3600)");
    expect_error(SVC_PRE ", \"idleTimeoutSeconds\": -1" SVC_POST,
                 "idleTimeoutSeconds: -1 is out of range (expected 0..3600)");
    expect_error(SVC_PRE ", \"timeoutSeconds\": 10, \"responseStartTimeoutSeconds\": 20" SVC_POST,
                 "responseStartTimeoutSeconds: 20 exceeds timeoutSeconds 10");
}

static void names_must_be_dns_labels(void **state)
{
    expect_error("{\"services\": [{\"name\": \"Web\", \"revisions\": [{\"name\": \"web-1\"}]}]}",
                 "services[0].name: \"Web\" is not a DNS label (expected 1 to 63 lowercase");
    expect_error("{\"services\": [{\"name\": \"web\", \"namespace\": \"my_ns\", \"revisions\": "
                 "[{\"name\": \"web-1\"}]}]}",
                 "services[0].namespace: \"my_ns\" is not a DNS label");
    expect_error("{\"services\": [{\"name\": \"web\", \"revisions\": [{\"name\": \"web.1\"}]}]}",
                 "services[0].revisions[0].name: \"web.1\" is not a DNS label");
    expect_error("{\"services\": [{\"name\": \"web\", \"revisions\": [{\"name\": \"web-1\"}], "
                 "\"traffic\": [{\"revisionName\": \"web-1\", \"percent\": 100, \"tag\": "
                 "\"-x\"}]}]}",
                 "services[0].traffic[0].tag: \"-x\" is not a DNS label");
}

static void revision_names_are_unique_per_namespace(void **state)
{
    expect_error("{\"services\": [{\"name\": \"web\", \"revisions\": [{\"name\": \"web-1\"}, "
                 "{\"name\": \"web-1\"}]}]}",
                 "services[0].revisions[1].name: \"web-1\" is already services[0].revisions[0] "
                 "in namespace \"default\"");
    expect_error("{\"services\": [{\"name\": \"a\", \"revisions\": [{\"name\": \"x-1\"}]}, "
                 "{\"name\": \"b\", \"revisions\": [{\"name\": \"x-1\"}]}]}",
                 "services[1].revisions[0].name: \"x-1\" is already services[0].revisions[0]");
    expect_error("{\"services\": [{\"name\": \"a\", \"revisions\": [{\"name\": \"a-1\"}]}, "
                 "{\"name\": \"a\", \"revisions\": [{\"name\": \"a-2\"}]}]}",
                 "services[1].name: \"a\" is already services[0]");
    /* The same names in another namespace are another revision. */
    kp_activator_config_t cfg;
    parse_ok("{\"services\": [{\"name\": \"a\", \"revisions\": [{\"name\": \"x-1\"}]}, "
             "{\"name\": \"a\", \"namespace\": \"prod\", \"revisions\": [{\"name\": \"x-1\"}]}]}",
             &cfg);
    kp_activator_config_free(&cfg);
}

static void traffic_must_name_a_revision_of_the_service(void **state)
{
    expect_error("{\"services\": [{\"name\": \"a\", \"revisions\": [{\"name\": \"a-1\"}]}, "
                 "{\"name\": \"b\", \"revisions\": [{\"name\": \"b-1\"}], \"traffic\": "
                 "[{\"revisionName\": \"a-1\", \"percent\": 100}]}]}",
                 "services[1].traffic[0].revisionName: \"a-1\" is not a revision of service "
                 "\"b\"");
    expect_error("{\"services\": [{\"name\": \"a\", \"revisions\": [{\"name\": \"a-1\"}], "
                 "\"traffic\": [{\"revisionName\": \"a-1\", \"latestRevision\": true, "
                 "\"percent\": 100}]}]}",
                 "services[0].traffic[0]: revisionName and \"latestRevision\": true are "
                 "exclusive");
}

static void percents_must_sum_to_100(void **state)
{
    expect_error("{\"services\": [{\"name\": \"a\", \"revisions\": [{\"name\": \"a-1\"}, "
                 "{\"name\": \"a-2\"}], \"traffic\": [{\"revisionName\": \"a-1\", \"percent\": "
                 "80}, {\"revisionName\": \"a-2\", \"percent\": 10}]}]}",
                 "services[0].traffic: percents sum to 90 (expected 100)");
    expect_error("{\"services\": [{\"name\": \"a\", \"revisions\": [{\"name\": \"a-1\"}], "
                 "\"traffic\": [{\"revisionName\": \"a-1\", \"percent\": 101}]}]}",
                 "services[0].traffic[0].percent: 101 is out of range (expected 0..100)");
    expect_error("{\"services\": [{\"name\": \"a\", \"revisions\": [{\"name\": \"a-1\"}], "
                 "\"traffic\": [{\"revisionName\": \"a-1\", \"percent\": \"100\"}]}]}",
                 "services[0].traffic[0].percent: \"100\" is not an integer (expected 0..100)");
    expect_error("{\"services\": [{\"name\": \"a\", \"revisions\": [{\"name\": \"a-1\"}], "
                 "\"traffic\": []}]}",
                 "services[0].traffic: [] is not a non-empty array");
}

static void autoscaling_values_are_checked_at_load(void **state)
{
    expect_error("{\"autoscaler\": {\"scale-to-zero-grace-period\": \"2s\"}, "
                 "\"services\": [{\"name\": \"a\", \"revisions\": [{\"name\": \"a-1\"}]}]}",
                 "autoscaler: scale-to-zero-grace-period");
    expect_error("{\"services\": [{\"name\": \"a\", \"revisions\": [{\"name\": \"a-1\", "
                 "\"annotations\": {\"autoscaling.knative.dev/min-scale\": \"x\"}}]}]}",
                 "services[0].revisions[0].annotations: autoscaling.knative.dev/min-scale");
}

#define ANN_PRE SVC_PRE ", \"annotations\": {"
#define ANN_POST "}" SVC_POST

static void autoscaling_annotations_are_validated_like_knatives_webhook(void **state)
{
    /* An unknown key names itself and every accepted one. */
    expect_error(ANN_PRE "\"autoscaling.knative.dev/min-scael\": \"1\"" ANN_POST,
                 "services[0].revisions[0].annotations: autoscaling.knative.dev/min-scael: unknown "
                 "autoscaling annotation (expected autoscaling.knative.dev/ followed by one of: "
                 "class, metric, target-utilization-percentage, target, window, ");
    expect_error(ANN_PRE "\"autoscaling.knative.dev/min-scael\": \"1\"" ANN_POST,
                 "metric-aggregation-algorithm; or an older camelCase spelling such as minScale)");
    /* A bad value: the key, the value and what is accepted. */
    expect_error(ANN_PRE "\"autoscaling.knative.dev/max-scale\": \"-1\"" ANN_POST,
                 "annotations: autoscaling.knative.dev/max-scale=\"-1\": not an integer "
                 "(expected 0 or more, 0 for no limit)");
    expect_error(ANN_PRE "\"autoscaling.knative.dev/metric\": \"qps\"" ANN_POST,
                 "autoscaling.knative.dev/metric=\"qps\": unknown metric (expected "
                 "concurrency or rps with class kpa.autoscaling.knative.dev, cpu or memory with "
                 "class hpa.autoscaling.knative.dev)");
    expect_error(ANN_PRE
                 "\"autoscaling.knative.dev/class\": \"keda.autoscaling.knative.dev\"" ANN_POST,
                 "unsupported autoscaler class");
    /* Each class its own metrics, whatever the order they come in. */
    expect_error(ANN_PRE
                 "\"autoscaling.knative.dev/metric\": \"rps\", "
                 "\"autoscaling.knative.dev/class\": \"hpa.autoscaling.knative.dev\"" ANN_POST,
                 "services[0].revisions[0].annotations: autoscaling.knative.dev/metric=rps does "
                 "not go with class hpa.autoscaling.knative.dev (expected concurrency or rps with "
                 "class kpa.autoscaling.knative.dev, cpu or memory with class "
                 "hpa.autoscaling.knative.dev)");
    expect_error(ANN_PRE "\"autoscaling.knative.dev/metric\": \"memory\"" ANN_POST,
                 "autoscaling.knative.dev/metric=memory does not go with class "
                 "kpa.autoscaling.knative.dev");
    /* Two spellings of one setting. */
    expect_error(ANN_PRE "\"autoscaling.knative.dev/minScale\": \"1\", "
                         "\"autoscaling.knative.dev/min-scale\": \"2\"" ANN_POST,
                 "autoscaling.knative.dev/min-scale=\"2\": sets min-scale a second time");
    /* Rules across keys, the revision's on top of the autoscaler's. */
    expect_error(ANN_PRE "\"autoscaling.knative.dev/min-scale\": \"3\", "
                         "\"autoscaling.knative.dev/max-scale\": \"2\"" ANN_POST,
                 "services[0].revisions[0].annotations: max-scale=2 is less than min-scale=3");
    expect_error("{\"autoscaler\": {\"max-scale\": \"2\"}, \"services\": [{\"name\": \"web\", "
                 "\"revisions\": [{\"name\": \"web-1\", \"annotations\": "
                 "{\"autoscaling.knative.dev/min-scale\": \"3\"}}]}]}",
                 "services[0].revisions[0].annotations: max-scale=2 is less than min-scale=3");
    expect_error(ANN_PRE "\"autoscaling.knative.dev/initial-scale\": \"0\"" ANN_POST,
                 "initial-scale=0 needs allow-zero-initial-scale: true");
    expect_error("{\"autoscaler\": {\"max-scale-limit\": \"10\"}, \"services\": []}",
                 "autoscaler: max-scale=0 (unlimited) is beyond max-scale-limit=10 (expected 1 "
                 "to 10)");
    expect_error("{\"autoscaler\": {\"max-scale-limit\": \"10\", \"max-scale\": \"5\"}, "
                 "\"services\": [{\"name\": \"web\", \"revisions\": [{\"name\": \"web-1\", "
                 "\"annotations\": {\"autoscaling.knative.dev/max-scale\": \"20\"}}]}]}",
                 "annotations: max-scale=20 is beyond max-scale-limit=10");
}

static void valid_annotations_load_whatever_their_effect(void **state)
{
    kp_activator_config_t cfg;
    parse_ok("{\"autoscaler\": {\"allow-zero-initial-scale\": true, \"target-burst-capacity\": "
             "-1}, \"services\": [{\"name\": \"web\", \"revisions\": [{\"name\": \"web-1\", "
             "\"annotations\": {"
             "\"autoscaling.knative.dev/class\": \"kpa.autoscaling.knative.dev\", "
             "\"autoscaling.knative.dev/metric\": \"concurrency\", "
             "\"autoscaling.knative.dev/target\": \"20\", "
             "\"autoscaling.knative.dev/targetUtilizationPercentage\": \"80\", "
             "\"autoscaling.knative.dev/window\": \"2m\", "
             "\"autoscaling.knative.dev/min-scale\": \"1\", "
             "\"autoscaling.knative.dev/maxScale\": \"5\", "
             "\"autoscaling.knative.dev/initial-scale\": \"0\", "
             "\"autoscaling.knative.dev/activation-scale\": \"2\", "
             "\"autoscaling.knative.dev/scale-down-delay\": \"30s\", "
             "\"autoscaling.knative.dev/target-burst-capacity\": \"200\", "
             "\"autoscaling.knative.dev/metric-aggregation-algorithm\": \"weightedExponential\", "
             "\"serving.knative.dev/creator\": \"someone\", "
             "\"min-scale\": \"not ours to judge\"}}]}]}",
             &cfg);
    assert_int_equal(cfg.services[0].revisions[0].n_annotations, 14);
    kp_activator_config_free(&cfg);
    /* Knative's other metric and the HPA class, with the global rps target. */
    parse_ok("{\"autoscaler\": {\"requests-per-second-target-default\": \"150\"}, "
             "\"services\": [{\"name\": \"web\", \"revisions\": [{\"name\": \"web-1\", "
             "\"annotations\": {\"autoscaling.knative.dev/metric\": \"rps\"}}, "
             "{\"name\": \"web-2\", \"annotations\": {"
             "\"autoscaling.knative.dev/class\": \"hpa.autoscaling.knative.dev\", "
             "\"autoscaling.knative.dev/metric\": \"cpu\", "
             "\"autoscaling.knative.dev/target\": \"80\"}}, "
             "{\"name\": \"web-3\", \"annotations\": {"
             "\"autoscaling.knative.dev/class\": \"hpa.autoscaling.knative.dev\"}}]}]}",
             &cfg);
    assert_int_equal(cfg.services[0].n_revisions, 3);
    kp_activator_config_free(&cfg);
}

static void tags_are_unique_within_a_service(void **state)
{
    expect_error("{\"services\": [{\"name\": \"a\", \"revisions\": [{\"name\": \"a-1\"}, "
                 "{\"name\": \"a-2\"}], \"traffic\": [{\"revisionName\": \"a-1\", \"percent\": "
                 "100, \"tag\": \"x\"}, {\"revisionName\": \"a-2\", \"percent\": 0, \"tag\": "
                 "\"x\"}]}]}",
                 "services[0].traffic[1].tag: \"x\" is already the tag of services[0].traffic[0]");
}

static void maps_and_commands_are_typed(void **state)
{
    expect_error(SVC_PRE ", \"env\": [\"TARGET=x\"]" SVC_POST,
                 "services[0].revisions[0].env: [\"TARGET=x\"] is not an object");
    expect_error(SVC_PRE ", \"env\": {\"A=B\": \"x\"}" SVC_POST,
                 "services[0].revisions[0].env.\"A=B\": variable names cannot contain '='");
    expect_error(SVC_PRE ", \"annotations\": {\"k\": {}}" SVC_POST,
                 "services[0].revisions[0].annotations.\"k\": {} is not a string, number or "
                 "boolean");
    expect_error(SVC_PRE ", \"command\": \"/bin/app\"" SVC_POST,
                 "services[0].revisions[0].command: \"/bin/app\" is not a non-empty array");
    expect_error(SVC_PRE ", \"command\": [\"/bin/app\", 3]" SVC_POST,
                 "services[0].revisions[0].command[1]: 3 is not a string");
}

/* Knative's Revision.GetProtocol: ports[0].name "h2c" makes the revision h2c. */
static void a_port_named_h2c_makes_the_revision_h2c(void **state)
{
    kp_activator_config_t cfg;
    parse_ok(SVC_PRE ", \"ports\": [{\"name\": \"h2c\", \"containerPort\": 8080}]" SVC_POST, &cfg);
    assert_int_equal(cfg.services[0].revisions[0].h2c, 1);
    kp_activator_config_free(&cfg);
    parse_ok(SVC_PRE ", \"ports\": [{\"name\": \"http1\"}]" SVC_POST, &cfg);
    assert_int_equal(cfg.services[0].revisions[0].h2c, 0);
    kp_activator_config_free(&cfg);
    parse_ok(SVC_PRE SVC_POST, &cfg);
    assert_int_equal(cfg.services[0].revisions[0].h2c, 0);
    kp_activator_config_free(&cfg);
    expect_error(SVC_PRE ", \"ports\": [{\"name\": \"grpc\"}]" SVC_POST,
                 "services[0].revisions[0].ports[0].name: \"grpc\" is not a port name we know "
                 "(expected \"h2c\" or \"http1\")");
    expect_error(SVC_PRE ", \"ports\": [{\"name\": \"h2c\"}, {\"name\": \"h2c\"}]" SVC_POST,
                 "services[0].revisions[0].ports: ");
    expect_error(SVC_PRE ", \"ports\": [{\"containerPort\": 70000}]" SVC_POST,
                 "services[0].revisions[0].ports[0].containerPort: 70000 is out of range");
    expect_error(SVC_PRE ", \"ports\": [{\"protocol\": \"TCP\"}]" SVC_POST,
                 "services[0].revisions[0].ports[0].protocol: unknown field");
}

static void load_file_names_the_file(void **state)
{
    kp_activator_config_t cfg;
    char err[512];
    assert_int_equal(
        kp_activator_config_load_file("config/does-not-exist.json", &cfg, err, sizeof err), -1);
    assert_string_equal(err, "config/does-not-exist.json: cannot read: No such file or directory");

    char path[] = "/tmp/kp_act_cfg_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *bad =
        "{\n\"services\": [\n{\"name\": \"a\", \"revisions\": [{\"name\": \"a-1\"}],\n"
        "\"traffic\": [{\"revisionName\": \"a-1\", \"percent\": 90}]}]}\n";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    assert_int_equal(kp_activator_config_load_file(path, &cfg, err, sizeof err), -1);
    char want[600];
    snprintf(want, sizeof want, "%s: services[0].traffic: percents sum to 90 (expected 100)", path);
    assert_string_equal(err, want);

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    const char *syntax = "{\n\"services\": [\n\n  {\"name\" \"a\"}\n]}\n";
    assert_int_equal(write(fd, syntax, strlen(syntax)), (ssize_t)strlen(syntax));
    close(fd);
    assert_int_equal(kp_activator_config_load_file(path, &cfg, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: line 4: invalid JSON", path);
    if (!strstr(err, want))
        fail_msg("error \"%s\", wanted \"%s\"", err, want);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(local_json_loads_the_demo),
        cmocka_unit_test(defaults_fill_namespace_timeout_and_traffic),
        cmocka_unit_test(autoscaler_numbers_and_booleans_become_strings),
        cmocka_unit_test(latest_revision_targets_the_last_one),
        cmocka_unit_test(bad_json_names_the_line),
        cmocka_unit_test(unknown_fields_are_rejected),
        cmocka_unit_test(no_services_is_a_valid_config),
        cmocka_unit_test(missing_parts_are_named),
        cmocka_unit_test(integers_are_checked_with_their_range),
        cmocka_unit_test(names_must_be_dns_labels),
        cmocka_unit_test(revision_names_are_unique_per_namespace),
        cmocka_unit_test(traffic_must_name_a_revision_of_the_service),
        cmocka_unit_test(percents_must_sum_to_100),
        cmocka_unit_test(autoscaling_values_are_checked_at_load),
        cmocka_unit_test(autoscaling_annotations_are_validated_like_knatives_webhook),
        cmocka_unit_test(valid_annotations_load_whatever_their_effect),
        cmocka_unit_test(tags_are_unique_within_a_service),
        cmocka_unit_test(maps_and_commands_are_typed),
        cmocka_unit_test(a_port_named_h2c_makes_the_revision_h2c),
        cmocka_unit_test(load_file_names_the_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
