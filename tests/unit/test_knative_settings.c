/* Tests for activator/knative/settings.c: Knative's ConfigMaps change the
 * reconciler's settings, and a value that is not accepted leaves the
 * setting as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "activator/knative/settings.h"
#include "base/log.h"

static void init_state(kn_state_t *s)
{
    memset(s, 0, sizeof *s);
    kn_defaults_init(&s->defaults);
    kn_build_opts_init(&s->build);
    kn_gc_config_init(&s->gc);
    snprintf(s->domain, sizeof s->domain, "example.com");
}

static int apply(kn_state_t *s, const char *json, char *image)
{
    cJSON *cm = cJSON_Parse(json);
    assert_non_null(cm);
    int changed = kn_settings_apply(s, cm, image, 128);
    cJSON_Delete(cm);
    return changed;
}

static void config_domain_takes_the_default_key(void **state)
{
    kn_state_t s;
    char image[128];
    init_state(&s);
    assert_int_equal(apply(&s,
                           "{\"metadata\":{\"name\":\"config-domain\"},\"data\":{"
                           "\"_example\":\"...\",\"prod.test\":\"selector:\\n  app: prod\","
                           "\"kp.test\":\"\"}}",
                           image),
                     1);
    assert_string_equal(s.domain, "kp.test");
    assert_int_equal(apply(&s,
                           "{\"metadata\":{\"name\":\"config-domain\"},\"data\":{"
                           "\"kp.test\":\"\"}}",
                           image),
                     0);
}

static void config_defaults_and_deployment(void **state)
{
    kn_state_t s;
    char image[128];
    init_state(&s);
    assert_int_equal(apply(&s,
                           "{\"metadata\":{\"name\":\"config-defaults\"},\"data\":{"
                           "\"revision-timeout-seconds\":\"120\",\"container-concurrency\":\"4\"}}",
                           image),
                     2);
    assert_int_equal(s.defaults.timeout_s, 120);
    assert_int_equal(s.defaults.container_concurrency, 4);
    /* Refused: the earlier value stays. */
    assert_int_equal(apply(&s,
                           "{\"metadata\":{\"name\":\"config-defaults\"},\"data\":{"
                           "\"container-concurrency\":\"lots\"}}",
                           image),
                     0);
    assert_int_equal(s.defaults.container_concurrency, 4);
    assert_int_equal(apply(&s,
                           "{\"metadata\":{\"name\":\"config-deployment\"},\"data\":{"
                           "\"queue-sidecar-image\":\"r/q:1\",\"progress-deadline\":\"10m\"}}",
                           image),
                     0); /* 10m is the default; the image goes to the caller */
    assert_string_equal(image, "r/q:1");
    assert_int_equal(s.build.progress_deadline_s, 600);
    apply(&s,
          "{\"metadata\":{\"name\":\"config-deployment\"},\"data\":{"
          "\"progress-deadline\":\"90s\"}}",
          image);
    assert_int_equal(s.build.progress_deadline_s, 90);
    assert_string_equal(image, "");
}

static void config_gc_refuses_max_below_min(void **state)
{
    kn_state_t s;
    char image[128];
    init_state(&s);
    assert_int_equal(apply(&s,
                           "{\"metadata\":{\"name\":\"config-gc\"},\"data\":{"
                           "\"min-non-active-revisions\":\"3\",\"max-non-active-revisions\":"
                           "\"disabled\"}}",
                           image),
                     1);
    assert_int_equal(s.gc.min_non_active, 3);
    assert_int_equal(apply(&s,
                           "{\"metadata\":{\"name\":\"config-gc\"},\"data\":{"
                           "\"min-non-active-revisions\":\"5\",\"max-non-active-revisions\":"
                           "\"2\"}}",
                           image),
                     0);
    assert_int_equal(s.gc.min_non_active, 3);
    assert_false(kn_settings_is_configmap("kp-config"));
    assert_true(kn_settings_is_configmap("config-gc"));
}

int main(void)
{
    kp_log_init("test", KP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_domain_takes_the_default_key),
        cmocka_unit_test(config_defaults_and_deployment),
        cmocka_unit_test(config_gc_refuses_max_below_min),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
