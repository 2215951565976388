/* Knative's ConfigMaps. See settings.h. */
#include "settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "kjson.h"

int kn_settings_is_configmap(const char *name)
{
    return strcmp(name, "config-domain") == 0 || strcmp(name, "config-gc") == 0 ||
           strcmp(name, "config-defaults") == 0 || strcmp(name, "config-deployment") == 0;
}

long long kn_settings_seconds(const char *s)
{
    long long v;
    return kn_gc_parse_duration(s, &v) == 0 ? v : -1;
}

static void refuse(const char *cm, const char *key, const char *value, const char *expected)
{
    kp_log_fields(KP_LOG_ERROR, "knative: setting refused; the previous value stays",
                  KP_LOG_STR("configmap", cm), KP_LOG_STR("key", key), KP_LOG_STR("value", value),
                  KP_LOG_STR("expected", expected));
}

static int set_int(int *dst, const char *cm, const char *key, const char *value, long lo, long hi)
{
    char *end, expected[64];
    long v = strtol(value, &end, 10);
    if (!*value || *end || v < lo || v > hi) {
        snprintf(expected, sizeof expected, "an integer from %ld to %ld", lo, hi);
        refuse(cm, key, value, expected);
        return 0;
    }
    if (*dst == (int)v)
        return 0;
    *dst = (int)v;
    return 1;
}

static int apply_domain(kn_state_t *s, const cJSON *data)
{
    /* Knative: the key whose value is empty is the default domain. */
    const cJSON *kv;
    const char *chosen = NULL;
    cJSON_ArrayForEach(kv, data)
    {
        if (kv->string[0] == '_' || !cJSON_IsString(kv))
            continue;
        if (!*kv->valuestring || !chosen)
            chosen = kv->string;
        if (!*kv->valuestring)
            break;
    }
    if (!chosen || strcmp(chosen, s->domain) == 0)
        return 0;
    snprintf(s->domain, sizeof s->domain, "%s", chosen);
    return 1;
}

static int apply_gc(kn_state_t *s, const cJSON *data)
{
    kn_gc_config_t gc = s->gc;
    char why[256];
    const cJSON *kv;
    cJSON_ArrayForEach(kv, data)
    {
        if (!cJSON_IsString(kv))
            continue;
        if (kn_gc_config_set(&gc, kv->string, kv->valuestring, why, sizeof why) < 0)
            refuse("config-gc", kv->string, kv->valuestring, why);
    }
    if (kn_gc_config_check(&gc, why, sizeof why) != 0) {
        refuse("config-gc", "max-non-active-revisions", "", why);
        return 0;
    }
    int changed = memcmp(&gc, &s->gc, sizeof gc) != 0;
    s->gc = gc;
    return changed;
}

static int apply_defaults(kn_state_t *s, const cJSON *data)
{
    int changed = 0;
    const char *v;
    if ((v = kn_json_str(data, "revision-timeout-seconds", NULL)))
        changed += set_int(&s->defaults.timeout_s, "config-defaults", "revision-timeout-seconds", v,
                           1, 86400);
    if ((v = kn_json_str(data, "max-revision-timeout-seconds", NULL)))
        changed += set_int(&s->defaults.max_timeout_s, "config-defaults",
                           "max-revision-timeout-seconds", v, 1, 86400);
    if ((v = kn_json_str(data, "container-concurrency", NULL)))
        changed += set_int(&s->defaults.container_concurrency, "config-defaults",
                           "container-concurrency", v, 0, 1000);
    return changed;
}

static int apply_deployment(kn_state_t *s, const cJSON *data, char *queue_image, size_t len)
{
    int changed = 0;
    const char *v = kn_json_str(data, "queue-sidecar-image", NULL);
    if (v && *v)
        snprintf(queue_image, len, "%s", v);
    if ((v = kn_json_str(data, "progress-deadline", NULL))) {
        long long secs = kn_settings_seconds(v);
        if (secs <= 0 || secs > 86400)
            refuse("config-deployment", "progress-deadline", v, "a duration such as 600s");
        else if (secs != s->build.progress_deadline_s) {
            s->build.progress_deadline_s = (int)secs;
            changed = 1;
        }
    }
    return changed;
}

int kn_settings_apply(kn_state_t *s, const cJSON *configmap, char *queue_image,
                      size_t queue_image_len)
{
    const char *name = kn_json_str(configmap, "metadata.name", "");
    const cJSON *data = kn_json_child(configmap, "data");
    queue_image[0] = '\0';
    if (strcmp(name, "config-domain") == 0)
        return apply_domain(s, data);
    if (strcmp(name, "config-gc") == 0)
        return apply_gc(s, data);
    if (strcmp(name, "config-defaults") == 0)
        return apply_defaults(s, data);
    if (strcmp(name, "config-deployment") == 0)
        return apply_deployment(s, data, queue_image, queue_image_len);
    return 0;
}
