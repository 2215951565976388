/* Tests for activator/knative (names, model, build, conditions): what a
 * Service becomes, with Knative's names, labels, defaults, queue-proxy
 * environment and drain hook, and conditions whose times stay put. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "activator/knative/build.h"
#include "activator/knative/conditions.h"
#include "activator/knative/kjson.h"
#include "activator/knative/model.h"
#include "activator/knative/names.h"

static const char service_json[] =
    "{\"apiVersion\":\"serving.knative.dev/v1\",\"kind\":\"Service\","
    "\"metadata\":{\"name\":\"helloworld-go\",\"namespace\":\"default\",\"uid\":\"svc-uid\","
    " \"generation\":1,\"labels\":{\"team\":\"a\"},"
    " \"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":\"{}\",\"x\":\"y\"}},"
    "\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"autoscaling.knative.dev/"
    "target\":\"10\"}},"
    " \"spec\":{\"containerConcurrency\":10,\"containers\":[{\"image\":\"kp:dev\","
    "  \"env\":[{\"name\":\"TARGET\",\"value\":\"World\"}],"
    "  \"readinessProbe\":{\"httpGet\":{\"path\":\"/healthz\"},\"periodSeconds\":2},"
    "  \"ports\":[{\"containerPort\":8081}]}]}}}}";

static cJSON *find_named(const cJSON *list, const char *name)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        if (strcmp(kn_json_str(e, "name", ""), name) == 0)
            return (cJSON *)e;
    }
    return NULL;
}

static const char *env_value(const cJSON *container, const char *name)
{
    return kn_json_str(find_named(kn_json_child(container, "env"), name), "value", NULL);
}

static void revision_names_pad_generation_and_stay_short(void **state)
{
    char out[KN_NAME_MAX];
    kn_revision_name(out, "helloworld-go", 1);
    assert_string_equal(out, "helloworld-go-00001");
    kn_revision_name(out, "helloworld-go", 123456);
    assert_string_equal(out, "helloworld-go-123456");
    char longname[80];
    memset(longname, 'a', 70);
    longname[70] = '\0';
    kn_child_name(out, longname, "-deployment");
    assert_true(strlen(out) <= 63);
    assert_non_null(strstr(out, "-deployment"));
    char other[KN_NAME_MAX];
    longname[69] = 'b';
    kn_child_name(other, longname, "-deployment");
    assert_string_not_equal(out, other);
    assert_true(kn_dns_label("old"));
    assert_false(kn_dns_label("Old"));
    assert_false(kn_dns_label("-a"));
}

static void traffic_defaults_to_latest_and_checks_sums(void **state)
{
    kn_traffic_t t;
    char why[256];
    assert_int_equal(kn_traffic_parse(NULL, "svc", &t, why, sizeof why), 0);
    assert_int_equal(t.n, 1);
    assert_true(t.targets[0].latest);
    assert_int_equal(t.targets[0].percent, 100);
    assert_string_equal(t.targets[0].configuration_name, "svc");
    kn_traffic_free(&t);

    cJSON *j = cJSON_Parse("[{\"latestRevision\":true,\"percent\":80},"
                           "{\"revisionName\":\"svc-00001\",\"percent\":20,\"tag\":\"old\"}]");
    assert_int_equal(kn_traffic_parse(j, "svc", &t, why, sizeof why), 0);
    assert_int_equal(t.n, 2);
    assert_false(t.targets[1].latest);
    assert_string_equal(t.targets[1].tag, "old");
    assert_string_equal(t.targets[1].revision_name, "svc-00001");
    kn_traffic_free(&t);
    cJSON_Delete(j);

    j = cJSON_Parse("[{\"percent\":80},{\"revisionName\":\"svc-00001\",\"percent\":10}]");
    assert_int_equal(kn_traffic_parse(j, "svc", &t, why, sizeof why), -1);
    assert_non_null(strstr(why, "sum to 90"));
    cJSON_Delete(j);
    j = cJSON_Parse("[{\"latestRevision\":true,\"revisionName\":\"x\",\"percent\":100}]");
    assert_int_equal(kn_traffic_parse(j, "svc", &t, why, sizeof why), -1);
    cJSON_Delete(j);
    j = cJSON_Parse("[{\"percent\":50,\"tag\":\"a\"},{\"revisionName\":\"r\",\"percent\":50,"
                    "\"tag\":\"a\"}]");
    assert_int_equal(kn_traffic_parse(j, "svc", &t, why, sizeof why), -1);
    assert_non_null(strstr(why, "already"));
    cJSON_Delete(j);
}

static void revision_params_apply_defaults_and_refuse_reserved_ports(void **state)
{
    kn_defaults_t d;
    kn_defaults_init(&d);
    kn_revision_params_t p;
    char why[256];
    cJSON *spec = cJSON_Parse("{\"containers\":[{\"image\":\"x\"}]}");
    assert_int_equal(kn_revision_params(spec, &d, &p, why, sizeof why), 0);
    assert_int_equal(p.port, 8080);
    assert_int_equal(p.timeout_s, 300);
    assert_int_equal(p.container_concurrency, 0);
    cJSON_Delete(spec);
    spec = cJSON_Parse("{\"containers\":[{\"image\":\"x\",\"ports\":[{\"containerPort\":8012}]}]}");
    assert_int_equal(kn_revision_params(spec, &d, &p, why, sizeof why), -1);
    assert_non_null(strstr(why, "8012"));
    cJSON_Delete(spec);
    spec = cJSON_Parse("{\"containers\":[{}]}");
    assert_int_equal(kn_revision_params(spec, &d, &p, why, sizeof why), -1);
    assert_non_null(strstr(why, "image"));
    cJSON_Delete(spec);
    spec = cJSON_Parse("{\"containerConcurrency\":-1,\"containers\":[{\"image\":\"x\"}]}");
    assert_int_equal(kn_revision_params(spec, &d, &p, why, sizeof why), -1);
    assert_non_null(strstr(why, "containerConcurrency"));
    cJSON_Delete(spec);
}

static void service_becomes_configuration_route_and_revision(void **state)
{
    cJSON *svc = cJSON_Parse(service_json);
    assert_non_null(svc);
    cJSON *cfg = kn_build_configuration(svc);
    assert_non_null(cfg);
    assert_string_equal(kn_json_str(cfg, "metadata.name", ""), "helloworld-go");
    assert_string_equal(kn_json_label(cfg, KN_L_SERVICE), "helloworld-go");
    assert_string_equal(kn_json_label(cfg, KN_L_SERVICE_UID), "svc-uid");
    assert_string_equal(kn_json_label(cfg, "team"), "a");
    assert_null(kn_json_annotation(cfg, KN_A_LAST_APPLIED));
    assert_string_equal(kn_json_annotation(cfg, "x"), "y");
    assert_true(kn_owned_by(cfg, svc));
    const cJSON *ref = cJSON_GetArrayItem(kn_json_at(cfg, "metadata.ownerReferences"), 0);
    assert_string_equal(kn_json_str(ref, "kind", ""), "Service");
    assert_true(cJSON_IsTrue(kn_json_child(ref, "blockOwnerDeletion")));
    assert_true(kn_json_covers(kn_json_at(svc, "spec.template"), kn_json_at(cfg, "spec.template")));

    kn_traffic_t t;
    char why[128];
    assert_int_equal(kn_traffic_parse(NULL, "helloworld-go", &t, why, sizeof why), 0);
    cJSON *route = kn_build_route(svc, &t);
    kn_traffic_free(&t);
    const cJSON *tr = cJSON_GetArrayItem(kn_json_at(route, "spec.traffic"), 0);
    assert_string_equal(kn_json_str(tr, "configurationName", ""), "helloworld-go");
    assert_int_equal(kn_json_int(tr, "percent", 0), 100);

    /* The API server gives it a uid and a generation. */
    kn_json_set_str(kn_json_obj(cfg, "metadata"), "uid", "cfg-uid");
    kn_json_set_int(kn_json_obj(cfg, "metadata"), "generation", 3);
    char name[64];
    kn_config_revision_name(cfg, name);
    assert_string_equal(name, "helloworld-go-00003");
    cJSON *rev = kn_build_revision(cfg, name, 1000);
    assert_string_equal(kn_json_label(rev, KN_L_CONFIGURATION_GENERATION), "3");
    assert_string_equal(kn_json_label(rev, KN_L_CONFIGURATION_UID), "cfg-uid");
    assert_string_equal(kn_json_label(rev, KN_L_SERVICE), "helloworld-go");
    assert_string_equal(kn_json_label(rev, KN_L_ROUTING_STATE), "pending");
    assert_string_equal(kn_json_annotation(rev, KN_A_TARGET), "10");
    assert_string_equal(kn_json_annotation(rev, KN_A_ROUTING_STATE_MODIFIED),
                        "1970-01-01T00:16:40Z");
    assert_true(kn_owned_by(rev, cfg));
    assert_int_equal(kn_json_int(rev, "spec.containerConcurrency", 0), 10);

    /* BYO name. */
    cJSON *tmeta = kn_json_obj(kn_json_obj(kn_json_obj(cfg, "spec"), "template"), "metadata");
    kn_json_set_str(tmeta, "name", "helloworld-go-blue");
    kn_config_revision_name(cfg, name);
    assert_string_equal(name, "helloworld-go-blue");
    cJSON_Delete(rev);
    cJSON_Delete(route);
    cJSON_Delete(cfg);
    cJSON_Delete(svc);
}

static cJSON *sample_revision(void)
{
    cJSON *svc = cJSON_Parse(service_json);
    cJSON *cfg = kn_build_configuration(svc);
    kn_json_set_str(kn_json_obj(cfg, "metadata"), "uid", "cfg-uid");
    kn_json_set_int(kn_json_obj(cfg, "metadata"), "generation", 1);
    cJSON *rev = kn_build_revision(cfg, "helloworld-go-00001", 0);
    kn_json_set_str(kn_json_obj(rev, "metadata"), "uid", "rev-uid");
    cJSON_Delete(cfg);
    cJSON_Delete(svc);
    return rev;
}

static void deployment_has_queue_proxy_env_probe_and_drain_hook(void **state)
{
    cJSON *rev = sample_revision();
    kn_defaults_t d;
    kn_defaults_init(&d);
    kn_revision_params_t p;
    char why[128];
    assert_int_equal(kn_revision_params(kn_json_child(rev, "spec"), &d, &p, why, sizeof why), 0);
    kn_build_opts_t o;
    kn_build_opts_init(&o);
    o.queue_image = "registry/kp:1";
    cJSON *dep = kn_build_deployment(rev, &p, &o, 1);
    assert_non_null(dep);
    assert_string_equal(kn_json_str(dep, "metadata.name", ""), "helloworld-go-00001-deployment");
    assert_true(kn_owned_by(dep, rev));
    assert_string_equal(kn_json_label(dep, KN_L_REVISION_UID), "rev-uid");
    assert_string_equal(kn_json_label(dep, "app"), "helloworld-go-00001");
    assert_null(kn_json_label(dep, KN_L_ROUTING_STATE));
    assert_null(kn_json_annotation(dep, KN_A_ROUTING_STATE_MODIFIED));
    assert_int_equal(kn_json_int(dep, "spec.replicas", -1), 1);
    assert_string_equal(kn_json_str(dep, "spec.selector.matchLabels.serving\\.knative\\.dev", "-"),
                        "-");
    const cJSON *match = kn_json_at(dep, "spec.selector.matchLabels");
    assert_string_equal(kn_json_str(kn_json_child(match, KN_L_REVISION_UID), "", ""), "rev-uid");
    assert_int_equal(cJSON_GetArraySize(match), 1);
    const cJSON *pod = kn_json_at(dep, "spec.template.spec");
    assert_int_equal(kn_json_int(pod, "terminationGracePeriodSeconds", 0), 300);
    assert_null(kn_json_child(pod, "containerConcurrency"));
    const cJSON *containers = kn_json_child(pod, "containers");
    assert_int_equal(cJSON_GetArraySize(containers), 2);
    const cJSON *user = find_named(containers, "user-container");
    const cJSON *queue = find_named(containers, "queue-proxy");
    assert_non_null(user);
    assert_non_null(queue);
    assert_null(kn_json_child(user, "readinessProbe"));
    assert_string_equal(kn_json_str(user, "lifecycle.preStop.httpGet.path", ""), "/wait-for-drain");
    assert_int_equal(kn_json_int(user, "lifecycle.preStop.httpGet.port", 0), 8022);
    assert_string_equal(env_value(user, "PORT"), "8081");
    assert_string_equal(env_value(user, "TARGET"), "World");
    assert_string_equal(env_value(user, "K_REVISION"), "helloworld-go-00001");
    assert_string_equal(kn_json_str(user, "resources.limits.memory", ""), "128Mi");
    assert_false(cJSON_IsTrue(kn_json_at(user, "securityContext.allowPrivilegeEscalation")));
    assert_string_equal(kn_json_str(queue, "image", ""), "registry/kp:1");
    assert_string_equal(env_value(queue, "SERVING_REVISION"), "helloworld-go-00001");
    assert_string_equal(env_value(queue, "SERVING_CONFIGURATION"), "helloworld-go");
    assert_string_equal(env_value(queue, "SERVING_SERVICE"), "helloworld-go");
    assert_string_equal(env_value(queue, "SERVING_NAMESPACE"), "default");
    assert_string_equal(env_value(queue, "CONTAINER_CONCURRENCY"), "10");
    assert_string_equal(env_value(queue, "REVISION_TIMEOUT_SECONDS"), "300");
    assert_string_equal(env_value(queue, "USER_PORT"), "8081");
    assert_string_equal(env_value(queue, "QUEUE_SERVING_PORT"), "8012");
    assert_string_equal(kn_json_str(find_named(kn_json_child(queue, "env"), "SERVING_POD"),
                                    "valueFrom.fieldRef.fieldPath", ""),
                        "metadata.name");
    cJSON *probe = cJSON_Parse(env_value(queue, "SERVING_READINESS_PROBE"));
    assert_non_null(probe);
    assert_string_equal(kn_json_str(probe, "httpGet.path", ""), "/healthz");
    assert_int_equal(kn_json_int(probe, "httpGet.port", 0), 8081);
    assert_string_equal(kn_json_str(probe, "httpGet.host", ""), "127.0.0.1");
    assert_int_equal(kn_json_int(probe, "periodSeconds", 0), 2);
    cJSON_Delete(probe);
    assert_int_equal(kn_json_int(queue, "readinessProbe.httpGet.port", 0), 8012);
    assert_string_equal(kn_json_str(queue, "resources.limits.memory", ""), "64Mi");

    /* The same build without replicas is covered by the live one. */
    cJSON *want = kn_build_deployment(rev, &p, &o, -1);
    assert_true(kn_json_covers(dep, want));
    kn_json_set_str(kn_json_obj(kn_json_obj(dep, "metadata"), "labels"), "extra", "x");
    assert_true(kn_json_covers(dep, want));
    cJSON *c = cJSON_GetArrayItem(kn_json_at(dep, "spec.template.spec.containers"), 0);
    kn_json_set_str(c, "image", "other");
    assert_false(kn_json_covers(dep, want));
    cJSON_Delete(want);
    cJSON_Delete(dep);
    cJSON_Delete(rev);
}

static void services_and_hpa_belong_to_the_revision(void **state)
{
    cJSON *rev = sample_revision();
    cJSON *priv = kn_build_k8s_service(rev, 1);
    cJSON *pub = kn_build_k8s_service(rev, 0);
    assert_string_equal(kn_json_str(priv, "metadata.name", ""), "helloworld-go-00001-private");
    assert_string_equal(kn_json_str(pub, "metadata.name", ""), "helloworld-go-00001");
    assert_true(kn_owned_by(priv, rev));
    assert_string_equal(kn_json_label(priv, KN_L_SERVICE_TYPE), "Private");
    const cJSON *port = cJSON_GetArrayItem(kn_json_at(priv, "spec.ports"), 0);
    assert_int_equal(kn_json_int(port, "targetPort", 0), 8012);
    assert_string_equal(
        kn_json_str(kn_json_child(kn_json_at(priv, "spec.selector"), KN_L_REVISION_UID), "", ""),
        "rev-uid");
    kn_json_set_str(kn_json_obj(kn_json_obj(rev, "metadata"), "annotations"), KN_A_CLASS,
                    KN_CLASS_HPA);
    cJSON *hpa = kn_build_hpa(rev);
    assert_string_equal(kn_json_str(hpa, "apiVersion", ""), "autoscaling/v2");
    assert_string_equal(kn_json_str(hpa, "spec.scaleTargetRef.name", ""),
                        "helloworld-go-00001-deployment");
    assert_int_equal(kn_json_int(hpa, "spec.minReplicas", 0), 1);
    const cJSON *m = cJSON_GetArrayItem(kn_json_at(hpa, "spec.metrics"), 0);
    assert_string_equal(kn_json_str(m, "resource.name", ""), "cpu");
    assert_int_equal(kn_json_int(m, "resource.target.averageUtilization", 0), 10);
    cJSON_Delete(hpa);
    cJSON_Delete(priv);
    cJSON_Delete(pub);
    cJSON_Delete(rev);
}

static void conditions_keep_times_until_status_changes(void **state)
{
    kn_conds_t c;
    assert_int_equal(kn_conds_init(&c, &kn_revision_conditions, NULL, 100), 0);
    kn_conds_set(&c, "ResourcesAvailable", KN_TRUE, NULL, NULL);
    kn_conds_set(&c, "ContainerHealthy", KN_UNKNOWN, "Deploying", NULL);
    kn_conds_set(&c, "Active", KN_FALSE, "NoTraffic", "The target is not receiving traffic.");
    cJSON *first = kn_conds_finish(&c);
    assert_string_equal(kn_json_str(cJSON_GetArrayItem(first, 0), "type", ""), "Active");
    assert_string_equal(kn_json_str(cJSON_GetArrayItem(first, 0), "severity", ""), "Info");
    const cJSON *ready = cJSON_GetArrayItem(first, 2);
    assert_string_equal(kn_json_str(ready, "type", ""), "Ready");
    assert_string_equal(kn_json_str(ready, "status", ""), "Unknown");
    assert_string_equal(kn_json_str(ready, "reason", ""), "Deploying");

    /* Same inputs later: equal, times included. */
    assert_int_equal(kn_conds_init(&c, &kn_revision_conditions, first, 200), 0);
    kn_conds_set(&c, "ResourcesAvailable", KN_TRUE, NULL, NULL);
    kn_conds_set(&c, "ContainerHealthy", KN_UNKNOWN, "Deploying", NULL);
    kn_conds_set(&c, "Active", KN_FALSE, "NoTraffic", "The target is not receiving traffic.");
    cJSON *again = kn_conds_finish(&c);
    assert_true(cJSON_Compare(first, again, 1));

    /* A failed dependent makes Ready False with its reason; its time moves. */
    assert_int_equal(kn_conds_init(&c, &kn_revision_conditions, again, 300), 0);
    kn_conds_set(&c, "ContainerHealthy", KN_FALSE, "ExitCode1", "Container failed with: boom");
    cJSON *failed = kn_conds_finish(&c);
    const cJSON *r = NULL, *ra = NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, failed)
    {
        if (strcmp(kn_json_str(e, "type", ""), "Ready") == 0)
            r = e;
        if (strcmp(kn_json_str(e, "type", ""), "ResourcesAvailable") == 0)
            ra = e;
    }
    assert_string_equal(kn_json_str(r, "status", ""), "False");
    assert_string_equal(kn_json_str(r, "reason", ""), "ExitCode1");
    assert_string_equal(kn_json_str(r, "lastTransitionTime", ""), "1970-01-01T00:05:00Z");
    assert_string_equal(kn_json_str(ra, "lastTransitionTime", ""), "1970-01-01T00:01:40Z");
    cJSON_Delete(first);
    cJSON_Delete(again);
    cJSON_Delete(failed);
}

static void times_round_trip(void **state)
{
    time_t t;
    char s[32];
    kn_time_format(1796281200, s, sizeof s);
    assert_int_equal(kn_time_parse(s, &t), 0);
    assert_int_equal(t, 1796281200);
    assert_int_equal(kn_time_parse("2026-12-03T07:00:00.123+01:00", &t), 0);
    assert_int_equal(kn_time_parse("2026-12-03T06:00:00Z", &t) == 0 ? 0 : 1, 0);
    assert_int_equal(kn_time_parse("yesterday", &t), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(revision_names_pad_generation_and_stay_short),
        cmocka_unit_test(traffic_defaults_to_latest_and_checks_sums),
        cmocka_unit_test(revision_params_apply_defaults_and_refuse_reserved_ports),
        cmocka_unit_test(service_becomes_configuration_route_and_revision),
        cmocka_unit_test(deployment_has_queue_proxy_env_probe_and_drain_hook),
        cmocka_unit_test(services_and_hpa_belong_to_the_revision),
        cmocka_unit_test(conditions_keep_times_until_status_changes),
        cmocka_unit_test(times_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
