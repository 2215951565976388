/* Templates and traffic with Knative's defaults and checks. See model.h. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kjson.h"
#include "names.h"

void kn_defaults_init(kn_defaults_t *d)
{
    d->container_concurrency = 0;
    d->timeout_s = 300;
    d->max_timeout_s = 600;
}

/* The queue-proxy's own ports: an app may not claim them (Knative's
 * webhook refuses them too). */
static int port_reserved(long long p)
{
    return p == KN_QUEUE_PORT || p == 8013 || p == KN_QUEUE_ADMIN_PORT ||
           p == KN_QUEUE_METRICS_PORT || p == KN_QUEUE_USER_METRICS_PORT || p == KN_QUEUE_TLS_PORT;
}

static int int_field(const cJSON *spec, const char *key, long long lo, long long hi, int def,
                     int *out, char *why, size_t why_len)
{
    const cJSON *v = kn_json_child(spec, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long long)v->valuedouble ||
        v->valuedouble < (double)lo || v->valuedouble > (double)hi) {
        snprintf(why, why_len, "%s: expected an integer from %lld to %lld", key, lo, hi);
        return -1;
    }
    *out = (int)v->valuedouble;
    return 0;
}

int kn_revision_params(const cJSON *spec, const kn_defaults_t *d, kn_revision_params_t *out,
                       char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    const cJSON *containers = kn_json_child(spec, "containers");
    int n = cJSON_IsArray(containers) ? cJSON_GetArraySize(containers) : 0;
    if (n == 0) {
        snprintf(why, why_len, "containers: missing (expected at least one container)");
        return -1;
    }
    int with_ports = -1, i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, containers)
    {
        const char *image = kn_json_str(c, "image", NULL);
        if (!image || !*image) {
            snprintf(why, why_len, "containers[%d].image: missing (expected an image reference)",
                     i);
            return -1;
        }
        const cJSON *ports = kn_json_child(c, "ports");
        if (cJSON_IsArray(ports) && cJSON_GetArraySize(ports) > 0) {
            if (with_ports >= 0) {
                snprintf(why, why_len,
                         "containers[%d].ports: only one container may name ports "
                         "(containers[%d] already does)",
                         i, with_ports);
                return -1;
            }
            if (cJSON_GetArraySize(ports) > 1) {
                snprintf(why, why_len, "containers[%d].ports: expected a single port", i);
                return -1;
            }
            with_ports = i;
        }
        i++;
    }
    if (n > 1 && with_ports < 0) {
        snprintf(why, why_len,
                 "containers: with several containers, one of them must name its port");
        return -1;
    }
    out->container_index = with_ports >= 0 ? with_ports : 0;
    out->container = cJSON_GetArrayItem(containers, out->container_index);
    out->port = KN_DEFAULT_USER_PORT;
    const cJSON *port = cJSON_GetArrayItem(kn_json_child(out->container, "ports"), 0);
    if (port) {
        long long p = kn_json_int(port, "containerPort", 0);
        if (p < 1 || p > 65535 || port_reserved(p)) {
            snprintf(why, why_len,
                     "containers[%d].ports[0].containerPort: %lld (expected 1 to 65535, not "
                     "8012, 8013, 8022, 8112, 9090 or 9091: the queue-proxy's)",
                     out->container_index, p);
            return -1;
        }
        out->port = (int)p;
        out->h2c = strcmp(kn_json_str(port, "name", ""), "h2c") == 0;
    }
    if (int_field(spec, "containerConcurrency", 0, 1000, d->container_concurrency,
                  &out->container_concurrency, why, why_len) != 0 ||
        int_field(spec, "timeoutSeconds", 0, d->max_timeout_s, d->timeout_s, &out->timeout_s, why,
                  why_len) != 0 ||
        int_field(spec, "responseStartTimeoutSeconds", 0, d->max_timeout_s, 0,
                  &out->response_start_timeout_s, why, why_len) != 0 ||
        int_field(spec, "idleTimeoutSeconds", 0, d->max_timeout_s, 0, &out->idle_timeout_s, why,
                  why_len) != 0)
        return -1;
    if (out->timeout_s == 0)
        out->timeout_s = d->timeout_s;
    return 0;
}

void kn_traffic_free(kn_traffic_t *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->targets[i].tag);
        free(t->targets[i].revision_name);
        free(t->targets[i].configuration_name);
    }
    free(t->targets);
    memset(t, 0, sizeof *t);
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

static int parse_target(const cJSON *v, size_t i, const char *config_name, kn_target_t *t,
                        char *why, size_t why_len)
{
    if (!cJSON_IsObject(v)) {
        snprintf(why, why_len, "traffic[%zu]: expected an object", i);
        return -1;
    }
    const cJSON *latest = kn_json_child(v, "latestRevision");
    const char *rev = kn_json_str(v, "revisionName", "");
    const char *cfg = kn_json_str(v, "configurationName", "");
    const char *tag = kn_json_str(v, "tag", "");
    const cJSON *percent = kn_json_child(v, "percent");
    if (latest && !cJSON_IsBool(latest)) {
        snprintf(why, why_len, "traffic[%zu].latestRevision: expected true or false", i);
        return -1;
    }
    if (*rev && *cfg) {
        snprintf(why, why_len,
                 "traffic[%zu]: expected exactly one of revisionName and configurationName", i);
        return -1;
    }
    /* Knative's defaults: latestRevision follows whether a revision is named. */
    t->latest = latest ? cJSON_IsTrue(latest) : !*rev;
    if (t->latest && *rev) {
        snprintf(why, why_len,
                 "traffic[%zu]: latestRevision may not be true when revisionName is given", i);
        return -1;
    }
    if (!t->latest && !*rev) {
        snprintf(why, why_len, "traffic[%zu]: latestRevision false needs a revisionName", i);
        return -1;
    }
    if (percent && !cJSON_IsNull(percent)) {
        if (!cJSON_IsNumber(percent) || percent->valuedouble < 0 || percent->valuedouble > 100 ||
            percent->valuedouble != (double)(int)percent->valuedouble) {
            snprintf(why, why_len, "traffic[%zu].percent: expected an integer from 0 to 100", i);
            return -1;
        }
        t->percent = (int)percent->valuedouble;
    }
    if (*tag && !kn_dns_label(tag)) {
        snprintf(why, why_len,
                 "traffic[%zu].tag: \"%.63s\" is not a DNS label (lower-case letters, digits "
                 "and '-')",
                 i, tag);
        return -1;
    }
    t->tag = dup_or_null(tag);
    t->revision_name = dup_or_null(rev);
    t->configuration_name = t->latest ? dup_or_null(*cfg ? cfg : config_name) : NULL;
    if ((*tag && !t->tag) || (*rev && !t->revision_name) || (t->latest && !t->configuration_name)) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    return 0;
}

int kn_traffic_parse(const cJSON *traffic, const char *config_name, kn_traffic_t *out, char *why,
                     size_t why_len)
{
    memset(out, 0, sizeof *out);
    int n = cJSON_IsArray(traffic) ? cJSON_GetArraySize(traffic) : 0;
    if (traffic && !cJSON_IsNull(traffic) && !cJSON_IsArray(traffic)) {
        snprintf(why, why_len, "traffic: expected a list of targets");
        return -1;
    }
    out->targets = calloc(n ? (size_t)n : 1, sizeof *out->targets);
    if (!out->targets) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    if (n == 0) {
        out->n = 1;
        out->targets[0].latest = 1;
        out->targets[0].percent = 100;
        out->targets[0].configuration_name = strdup(config_name);
        if (!out->targets[0].configuration_name) {
            snprintf(why, why_len, "out of memory");
            kn_traffic_free(out);
            return -1;
        }
        return 0;
    }
    int sum = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, traffic)
    {
        kn_target_t *t = &out->targets[out->n++];
        if (parse_target(v, out->n - 1, config_name, t, why, why_len) != 0)
            goto fail;
        sum += t->percent;
        for (size_t j = 0; t->tag && j + 1 < out->n; j++)
            if (out->targets[j].tag && strcmp(out->targets[j].tag, t->tag) == 0) {
                snprintf(why, why_len, "traffic[%zu].tag: \"%s\" is already traffic[%zu]'s",
                         out->n - 1, t->tag, j);
                goto fail;
            }
    }
    if (sum != 100) {
        snprintf(why, why_len, "traffic: percents sum to %d (expected 100)", sum);
        goto fail;
    }
    return 0;
fail:
    kn_traffic_free(out);
    return -1;
}
