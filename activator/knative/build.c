/* The objects a Service becomes. See build.h. Field by field the shapes
 * follow Knative Serving's reconcilers (knative-api.md) and our own
 * hand-written revision
 * (config/kubernetes/examples/without-crds/helloworld-go-00001.yaml) for
 * resources and security contexts. */
#include "build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kjson.h"
#include "names.h"

void kn_build_opts_init(kn_build_opts_t *o)
{
    o->queue_image = "kp:dev";
    o->system_namespace = "kp-system";
    o->progress_deadline_s = 600;
    o->logging_level = "info";
}

int kn_set_owner(cJSON *obj, const cJSON *owner, const char *api_version, const char *kind)
{
    cJSON *meta = kn_json_obj(obj, "metadata");
    cJSON *refs = meta ? cJSON_GetObjectItemCaseSensitive(meta, "ownerReferences") : NULL;
    if (!refs && meta)
        refs = cJSON_AddArrayToObject(meta, "ownerReferences");
    cJSON *ref = cJSON_CreateObject();
    if (!refs || !ref) {
        cJSON_Delete(ref);
        return -1;
    }
    cJSON_AddItemToArray(refs, ref);
    return kn_json_set_str(ref, "apiVersion", api_version) | kn_json_set_str(ref, "kind", kind) |
           kn_json_set_str(ref, "name", kn_json_str(owner, "metadata.name", "")) |
           kn_json_set_str(ref, "uid", kn_json_str(owner, "metadata.uid", "")) |
           kn_json_set_bool(ref, "controller", 1) | kn_json_set_bool(ref, "blockOwnerDeletion", 1);
}

int kn_owned_by(const cJSON *obj, const cJSON *owner)
{
    const char *uid = kn_json_str(owner, "metadata.uid", NULL);
    const cJSON *ref;
    cJSON_ArrayForEach(ref, kn_json_at(obj, "metadata.ownerReferences"))
    {
        if (cJSON_IsTrue(kn_json_child(ref, "controller")))
            return uid && strcmp(kn_json_str(ref, "uid", ""), uid) == 0;
    }
    return 0;
}

/* A fresh object {apiVersion, kind, metadata: {name, namespace}}. */
static cJSON *new_object(const char *api_version, const char *kind, const char *name,
                         const char *ns)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *meta = kn_json_obj(o, "metadata");
    if (!meta || kn_json_set_str(o, "apiVersion", api_version) != 0 ||
        kn_json_set_str(o, "kind", kind) != 0 || kn_json_set_str(meta, "name", name) != 0 ||
        kn_json_set_str(meta, "namespace", ns) != 0) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* A copy of a string map less the keys given (NULL-terminated). */
static cJSON *map_without(const cJSON *map, const char *const *drop)
{
    cJSON *out = cJSON_CreateObject();
    const cJSON *kv;
    cJSON_ArrayForEach(kv, map)
    {
        int skip = !cJSON_IsString(kv);
        for (const char *const *d = drop; *d && !skip; d++)
            skip = strcmp(kv->string, *d) == 0;
        if (!skip)
            kn_json_set_str(out, kv->string, kv->valuestring);
    }
    return out;
}

static const char *const service_only_annotations[] = {KN_A_LAST_APPLIED, KN_A_ROLLOUT_DURATION,
                                                       KN_A_ROLLOUT_DURATION_OLD, NULL};

/* labels/annotations of a child of the Service. */
static int service_child_meta(cJSON *obj, const cJSON *service, int with_uid)
{
    static const char *const none[] = {NULL};
    cJSON *meta = kn_json_obj(obj, "metadata");
    cJSON *labels = map_without(kn_json_at(service, "metadata.labels"), none);
    cJSON *ann = map_without(kn_json_at(service, "metadata.annotations"), service_only_annotations);
    const char *name = kn_json_str(service, "metadata.name", "");
    int rc = !labels || !ann;
    rc |= kn_json_set_str(labels, KN_L_SERVICE, name);
    if (with_uid)
        rc |= kn_json_set_str(labels, KN_L_SERVICE_UID, kn_json_str(service, "metadata.uid", ""));
    if (!rc && cJSON_AddItemToObject(meta, "labels", labels))
        labels = NULL;
    else
        rc = 1;
    if (!rc && cJSON_AddItemToObject(meta, "annotations", ann))
        ann = NULL;
    else
        rc = 1;
    cJSON_Delete(labels);
    cJSON_Delete(ann);
    return rc ? -1 : kn_set_owner(obj, service, KN_API_VERSION, "Service");
}

cJSON *kn_build_configuration(const cJSON *service)
{
    const char *name = kn_json_str(service, "metadata.name", "");
    cJSON *c = new_object(KN_API_VERSION, "Configuration", name,
                          kn_json_str(service, "metadata.namespace", ""));
    if (!c || service_child_meta(c, service, 1) != 0)
        goto fail;
    /* The Route of the same name sends it traffic (Knative's routes annotation). */
    if (kn_json_set_str(kn_json_obj(kn_json_obj(c, "metadata"), "annotations"), KN_A_ROUTES,
                        name) != 0)
        goto fail;
    cJSON *spec = kn_json_obj(c, "spec");
    const cJSON *tmpl = kn_json_at(service, "spec.template");
    if (!spec || (tmpl ? kn_json_set_copy(spec, "template", tmpl)
                       : !cJSON_AddObjectToObject(spec, "template")))
        goto fail;
    return c;
fail:
    cJSON_Delete(c);
    return NULL;
}

cJSON *kn_build_route(const cJSON *service, const kn_traffic_t *traffic)
{
    cJSON *r = new_object(KN_API_VERSION, "Route", kn_json_str(service, "metadata.name", ""),
                          kn_json_str(service, "metadata.namespace", ""));
    if (!r || service_child_meta(r, service, 0) != 0)
        goto fail;
    cJSON *list = cJSON_AddArrayToObject(kn_json_obj(r, "spec"), "traffic");
    if (!list)
        goto fail;
    for (size_t i = 0; i < traffic->n; i++) {
        const kn_target_t *t = &traffic->targets[i];
        cJSON *e = cJSON_CreateObject();
        if (!e)
            goto fail;
        cJSON_AddItemToArray(list, e);
        int rc = 0;
        if (t->tag)
            rc |= kn_json_set_str(e, "tag", t->tag);
        if (t->revision_name)
            rc |= kn_json_set_str(e, "revisionName", t->revision_name);
        if (t->configuration_name)
            rc |= kn_json_set_str(e, "configurationName", t->configuration_name);
        rc |= kn_json_set_bool(e, "latestRevision", t->latest);
        rc |= kn_json_set_int(e, "percent", t->percent);
        if (rc)
            goto fail;
    }
    return r;
fail:
    cJSON_Delete(r);
    return NULL;
}

void kn_config_revision_name(const cJSON *config, char out[64])
{
    const char *byo = kn_json_str(config, "spec.template.metadata.name", "");
    if (*byo)
        snprintf(out, 64, "%s", byo);
    else
        kn_revision_name(out, kn_json_str(config, "metadata.name", ""),
                         kn_json_int(config, "metadata.generation", 1));
}

cJSON *kn_build_revision(const cJSON *config, const char *name, time_t now)
{
    static const char *const none[] = {NULL};
    const cJSON *tmeta = kn_json_at(config, "spec.template.metadata");
    cJSON *r =
        new_object(KN_API_VERSION, "Revision", name, kn_json_str(config, "metadata.namespace", ""));
    if (!r)
        return NULL;
    cJSON *meta = kn_json_obj(r, "metadata");
    cJSON *labels = map_without(kn_json_child(tmeta, "labels"), none);
    cJSON *ann = map_without(kn_json_child(tmeta, "annotations"), none);
    char gen[32], when[32];
    snprintf(gen, sizeof gen, "%lld", kn_json_int(config, "metadata.generation", 1));
    kn_time_format(now, when, sizeof when);
    const char *routes = kn_json_annotation(config, KN_A_ROUTES);
    const char *modifier = kn_json_annotation(config, KN_A_LAST_MODIFIER);
    const char *svc_uid = kn_json_label(config, KN_L_SERVICE_UID);
    int rc = !labels || !ann;
    rc |= kn_json_set_str(labels, KN_L_CONFIGURATION, kn_json_str(config, "metadata.name", ""));
    rc |= kn_json_set_str(labels, KN_L_CONFIGURATION_GENERATION, gen);
    rc |= kn_json_set_str(labels, KN_L_CONFIGURATION_UID, kn_json_str(config, "metadata.uid", ""));
    const char *svc = kn_json_label(config, KN_L_SERVICE);
    rc |= kn_json_set_str(labels, KN_L_SERVICE, svc ? svc : "");
    if (svc_uid)
        rc |= kn_json_set_str(labels, KN_L_SERVICE_UID, svc_uid);
    /* Pending until a Route sends it traffic (the labeler, reconcile_route.c). */
    rc |= kn_json_set_str(labels, KN_L_ROUTING_STATE, KN_ROUTING_PENDING);
    rc |= kn_json_set_str(ann, KN_A_ROUTING_STATE_MODIFIED, when);
    if (routes)
        rc |= kn_json_set_str(ann, KN_A_ROUTES, routes);
    if (modifier)
        rc |= kn_json_set_str(ann, KN_A_CREATOR, modifier);
    if (!rc && cJSON_AddItemToObject(meta, "labels", labels))
        labels = NULL;
    else
        rc = 1;
    if (!rc && cJSON_AddItemToObject(meta, "annotations", ann))
        ann = NULL;
    else
        rc = 1;
    cJSON_Delete(labels);
    cJSON_Delete(ann);
    const cJSON *spec = kn_json_at(config, "spec.template.spec");
    if (rc || kn_set_owner(r, config, KN_API_VERSION, "Configuration") != 0 ||
        (spec ? kn_json_set_copy(r, "spec", spec) : !cJSON_AddObjectToObject(r, "spec"))) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

cJSON *kn_child_labels(const cJSON *rev)
{
    static const char *const drop[] = {KN_L_ROUTING_STATE, NULL};
    cJSON *labels = map_without(kn_json_at(rev, "metadata.labels"), drop);
    const char *name = kn_json_str(rev, "metadata.name", "");
    int rc = !labels;
    rc |= kn_json_set_str(labels, KN_L_REVISION, name);
    rc |= kn_json_set_str(labels, KN_L_REVISION_UID, kn_json_str(rev, "metadata.uid", ""));
    if (!kn_json_child(labels, "app"))
        rc |= kn_json_set_str(labels, "app", name);
    if (rc) {
        cJSON_Delete(labels);
        return NULL;
    }
    return labels;
}

static cJSON *child_annotations(const cJSON *rev)
{
    static const char *const drop[] = {KN_A_ROUTING_STATE_MODIFIED, KN_A_ROUTES, KN_A_LAST_PINNED,
                                       KN_A_LAST_APPLIED, NULL};
    return map_without(kn_json_at(rev, "metadata.annotations"), drop);
}

/* A child of the revision: owner, labels, annotations. */
static cJSON *revision_child(const cJSON *rev, const char *api_version, const char *kind,
                             const char *name)
{
    cJSON *o = new_object(api_version, kind, name, kn_json_str(rev, "metadata.namespace", ""));
    cJSON *meta = o ? kn_json_obj(o, "metadata") : NULL;
    cJSON *labels = kn_child_labels(rev), *ann = child_annotations(rev);
    if (!meta || !labels || !ann || !cJSON_AddItemToObject(meta, "labels", labels)) {
        cJSON_Delete(labels);
        cJSON_Delete(ann);
        cJSON_Delete(o);
        return NULL;
    }
    if (!cJSON_AddItemToObject(meta, "annotations", ann) ||
        kn_set_owner(o, rev, KN_API_VERSION, "Revision") != 0) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *parse_or_null(const char *json)
{
    return cJSON_Parse(json);
}

/* As the hand-written revision of config/kubernetes/examples/without-crds/
 * hardens its containers. */
static const char hardened_container[] =
    "{\"runAsNonRoot\":true,\"readOnlyRootFilesystem\":true,\"allowPrivilegeEscalation\":false,"
    "\"capabilities\":{\"drop\":[\"ALL\"]},\"seccompProfile\":{\"type\":\"RuntimeDefault\"}}";
static const char hardened_pod[] = "{\"runAsNonRoot\":true,\"runAsUser\":65532,\"runAsGroup\":"
                                   "65532,\"seccompProfile\":{\"type\":\"RuntimeDefault\"}}";
static const char user_resources[] = "{\"requests\":{\"cpu\":\"25m\",\"memory\":\"16Mi\"},"
                                     "\"limits\":{\"cpu\":\"1\",\"memory\":\"128Mi\"}}";
static const char queue_resources[] = "{\"requests\":{\"cpu\":\"25m\",\"memory\":\"16Mi\"},"
                                      "\"limits\":{\"cpu\":\"1\",\"memory\":\"64Mi\"}}";

char *kn_readiness_probe_json(const cJSON *container, int port)
{
    const cJSON *user = kn_json_child(container, "readinessProbe");
    cJSON *probe = NULL;
    if (cJSON_IsObject(user) &&
        (kn_json_child(user, "httpGet") || kn_json_child(user, "tcpSocket"))) {
        probe = cJSON_Duplicate(user, 1);
        cJSON *http = (cJSON *)kn_json_child(probe, "httpGet");
        cJSON *tcp = (cJSON *)kn_json_child(probe, "tcpSocket");
        cJSON *action = http ? http : tcp;
        kn_json_set_int(action, "port", port);
        kn_json_set_str(action, "host", "127.0.0.1");
        if (http) {
            if (!kn_json_child(http, "scheme"))
                kn_json_set_str(http, "scheme", "HTTP");
        }
        if (!kn_json_child(probe, "successThreshold"))
            kn_json_set_int(probe, "successThreshold", 1);
    } else {
        probe = cJSON_CreateObject();
        cJSON *tcp = kn_json_obj(probe, "tcpSocket");
        kn_json_set_int(tcp, "port", port);
        kn_json_set_str(tcp, "host", "127.0.0.1");
        kn_json_set_int(probe, "successThreshold", 1);
    }
    char *s = probe ? cJSON_PrintUnformatted(probe) : NULL;
    cJSON_Delete(probe);
    return s;
}

static int add_env(cJSON *env, const char *name, const char *value)
{
    cJSON *e = cJSON_CreateObject();
    if (!e)
        return -1;
    cJSON_AddItemToArray(env, e);
    return kn_json_set_str(e, "name", name) | kn_json_set_str(e, "value", value);
}

static int add_env_int(cJSON *env, const char *name, long long v)
{
    char s[32];
    snprintf(s, sizeof s, "%lld", v);
    return add_env(env, name, s);
}

static int add_env_field(cJSON *env, const char *name, const char *field_path)
{
    cJSON *e = cJSON_CreateObject();
    if (!e)
        return -1;
    cJSON_AddItemToArray(env, e);
    cJSON *ref = kn_json_obj(kn_json_obj(e, "valueFrom"), "fieldRef");
    return kn_json_set_str(e, "name", name) | kn_json_set_str(ref, "fieldPath", field_path);
}

static int env_has(const cJSON *env, const char *name)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, env)
    {
        if (strcmp(kn_json_str(e, "name", ""), name) == 0)
            return 1;
    }
    return 0;
}

static int add_port(cJSON *ports, const char *name, int port)
{
    cJSON *p = cJSON_CreateObject();
    if (!p)
        return -1;
    cJSON_AddItemToArray(ports, p);
    return kn_json_set_str(p, "name", name) | kn_json_set_int(p, "containerPort", port) |
           kn_json_set_str(p, "protocol", "TCP");
}

/* The serving container: Knative's port, env, drain hook; the readiness
 * probe moves to the queue-proxy. */
static int shape_user_container(cJSON *c, const cJSON *rev, const kn_revision_params_t *p)
{
    const char *rev_name = kn_json_str(rev, "metadata.name", "");
    const char *config = kn_json_label(rev, KN_L_CONFIGURATION);
    const char *service = kn_json_label(rev, KN_L_SERVICE);
    int rc = 0;
    if (!*kn_json_str(c, "name", ""))
        rc |= kn_json_set_str(c, "name", KN_USER_CONTAINER);
    cJSON *ports = cJSON_CreateArray();
    rc |= !ports || add_port(ports, p->h2c ? "h2c" : "user-port", p->port);
    if (cJSON_GetObjectItemCaseSensitive(c, "ports"))
        cJSON_ReplaceItemInObjectCaseSensitive(c, "ports", ports);
    else
        cJSON_AddItemToObject(c, "ports", ports);
    cJSON *env = cJSON_GetObjectItemCaseSensitive(c, "env");
    if (!cJSON_IsArray(env)) {
        cJSON_DeleteItemFromObjectCaseSensitive(c, "env");
        env = cJSON_AddArrayToObject(c, "env");
    }
    if (!env_has(env, "PORT"))
        rc |= add_env_int(env, "PORT", p->port);
    rc |= add_env(env, "K_REVISION", rev_name);
    rc |= add_env(env, "K_CONFIGURATION", config ? config : "");
    rc |= add_env(env, "K_SERVICE", service ? service : "");
    cJSON_DeleteItemFromObjectCaseSensitive(c, "readinessProbe");
    cJSON *live = cJSON_GetObjectItemCaseSensitive(c, "livenessProbe");
    cJSON *lget = live ? cJSON_GetObjectItemCaseSensitive(live, "httpGet") : NULL;
    if (lget && !kn_json_child(lget, "port"))
        rc |= kn_json_set_int(lget, "port", p->port);
    cJSON *get = kn_json_obj(kn_json_obj(kn_json_obj(c, "lifecycle"), "preStop"), "httpGet");
    rc |= !get || kn_json_set_str(get, "path", "/wait-for-drain") != 0 ||
          kn_json_set_int(get, "port", KN_QUEUE_ADMIN_PORT) != 0;
    if (!*kn_json_str(c, "terminationMessagePolicy", ""))
        rc |= kn_json_set_str(c, "terminationMessagePolicy", "FallbackToLogsOnError");
    const cJSON *res = kn_json_child(c, "resources");
    if (!res || !cJSON_IsObject(res) || !res->child) {
        cJSON_DeleteItemFromObjectCaseSensitive(c, "resources");
        cJSON_AddItemToObject(c, "resources", parse_or_null(user_resources));
    }
    if (!kn_json_child(c, "securityContext"))
        cJSON_AddItemToObject(c, "securityContext", parse_or_null(hardened_container));
    return rc ? -1 : 0;
}

static cJSON *queue_container(const cJSON *rev, const kn_revision_params_t *p,
                              const kn_build_opts_t *o)
{
    const char *ns = kn_json_str(rev, "metadata.namespace", "");
    const char *config = kn_json_label(rev, KN_L_CONFIGURATION);
    const char *service = kn_json_label(rev, KN_L_SERVICE);
    cJSON *c = cJSON_CreateObject();
    cJSON *env = c ? cJSON_AddArrayToObject(c, "env") : NULL;
    cJSON *ports = c ? cJSON_AddArrayToObject(c, "ports") : NULL;
    char *probe = kn_readiness_probe_json(p->container, p->port);
    int rc = !env || !ports || !probe;
    rc |= kn_json_set_str(c, "name", KN_QUEUE_CONTAINER);
    rc |= kn_json_set_str(c, "image", o->queue_image);
    rc |= add_port(ports, "http-queueadm", KN_QUEUE_ADMIN_PORT);
    rc |= add_port(ports, "http-autometric", KN_QUEUE_METRICS_PORT);
    rc |= add_port(ports, "http-usermetric", KN_QUEUE_USER_METRICS_PORT);
    rc |= add_port(ports, "queue-port", p->h2c ? 8013 : KN_QUEUE_PORT);
    /* In the order Knative's queue sidecar gets them (knative-compat.md). */
    rc |= add_env(env, "SERVING_NAMESPACE", ns);
    rc |= add_env(env, "SERVING_SERVICE", service ? service : "");
    rc |= add_env(env, "SERVING_CONFIGURATION", config ? config : "");
    rc |= add_env(env, "SERVING_REVISION", kn_json_str(rev, "metadata.name", ""));
    rc |= add_env_int(env, "QUEUE_SERVING_PORT", KN_QUEUE_PORT);
    rc |= add_env_int(env, "QUEUE_SERVING_TLS_PORT", KN_QUEUE_TLS_PORT);
    rc |= add_env_int(env, "CONTAINER_CONCURRENCY", p->container_concurrency);
    rc |= add_env_int(env, "REVISION_TIMEOUT_SECONDS", p->timeout_s);
    rc |= add_env_int(env, "REVISION_RESPONSE_START_TIMEOUT_SECONDS", p->response_start_timeout_s);
    rc |= add_env_int(env, "REVISION_IDLE_TIMEOUT_SECONDS", p->idle_timeout_s);
    rc |= add_env_field(env, "SERVING_POD", "metadata.name");
    rc |= add_env_field(env, "SERVING_POD_IP", "status.podIP");
    rc |= add_env(env, "SERVING_LOGGING_CONFIG", "");
    rc |= add_env(env, "SERVING_LOGGING_LEVEL", o->logging_level);
    rc |= add_env(env, "SERVING_REQUEST_LOG_TEMPLATE", "");
    rc |= add_env(env, "SERVING_ENABLE_REQUEST_LOG", "false");
    rc |= add_env(env, "SERVING_REQUEST_METRICS_BACKEND", "prometheus");
    rc |= add_env(env, "SERVING_REQUEST_METRICS_REPORTING_PERIOD_SECONDS", "5");
    rc |= add_env(env, "TRACING_CONFIG_BACKEND", "none");
    rc |= add_env(env, "TRACING_CONFIG_ZIPKIN_ENDPOINT", "");
    rc |= add_env(env, "TRACING_CONFIG_DEBUG", "false");
    rc |= add_env(env, "TRACING_CONFIG_SAMPLE_RATE", "0.1");
    rc |= add_env_int(env, "USER_PORT", p->port);
    rc |= add_env(env, "SYSTEM_NAMESPACE", o->system_namespace);
    rc |= add_env(env, "METRICS_DOMAIN", "knative.dev/internal/serving");
    rc |= add_env(env, "SERVING_READINESS_PROBE", probe ? probe : "");
    rc |= add_env(env, "ENABLE_PROFILING", "false");
    rc |= add_env(env, "SERVING_ENABLE_PROBE_REQUEST_LOG", "false");
    rc |= add_env(env, "METRICS_COLLECTOR_ADDRESS", "");
    rc |= add_env(env, "ENABLE_HTTP2_AUTO_DETECTION", "false");
    free(probe);
    /* The kubelet asks the queue-proxy, which probes the app. */
    cJSON *rp = kn_json_obj(c, "readinessProbe");
    cJSON *get = kn_json_obj(rp, "httpGet");
    cJSON *hdrs = get ? cJSON_AddArrayToObject(get, "httpHeaders") : NULL;
    cJSON *h = cJSON_CreateObject();
    rc |= !hdrs || !h;
    if (hdrs && h) {
        cJSON_AddItemToArray(hdrs, h);
        h = NULL;
    }
    cJSON_Delete(h);
    rc |= kn_json_set_int(get, "port", p->h2c ? 8013 : KN_QUEUE_PORT);
    if (hdrs && hdrs->child)
        rc |= kn_json_set_str(hdrs->child, "name", "K-Network-Probe") |
              kn_json_set_str(hdrs->child, "value", "queue");
    rc |= kn_json_set_int(rp, "periodSeconds", 1) | kn_json_set_int(rp, "timeoutSeconds", 1) |
          kn_json_set_int(rp, "failureThreshold", 3);
    if (c) {
        cJSON_AddItemToObject(c, "resources", parse_or_null(queue_resources));
        cJSON_AddItemToObject(c, "securityContext", parse_or_null(hardened_container));
    }
    if (rc) {
        cJSON_Delete(c);
        return NULL;
    }
    return c;
}

/* Fields of a RevisionSpec that are not a PodSpec's. */
static const char *const revision_only[] = {"containerConcurrency", "timeoutSeconds",
                                            "responseStartTimeoutSeconds", "idleTimeoutSeconds",
                                            NULL};

cJSON *kn_build_deployment(const cJSON *rev, const kn_revision_params_t *p,
                           const kn_build_opts_t *o, int replicas)
{
    char name[KN_NAME_MAX];
    kn_child_name(name, kn_json_str(rev, "metadata.name", ""), "-deployment");
    cJSON *d = revision_child(rev, "apps/v1", "Deployment", name);
    if (!d)
        return NULL;
    cJSON *spec = kn_json_obj(d, "spec");
    int rc = !spec;
    if (replicas >= 0)
        rc |= kn_json_set_int(spec, "replicas", replicas);
    cJSON *match = kn_json_obj(kn_json_obj(spec, "selector"), "matchLabels");
    rc |= kn_json_set_str(match, KN_L_REVISION_UID, kn_json_str(rev, "metadata.uid", ""));
    rc |= kn_json_set_int(spec, "progressDeadlineSeconds", o->progress_deadline_s);
    cJSON *tmpl = kn_json_obj(spec, "template");
    cJSON *tmeta = kn_json_obj(tmpl, "metadata");
    rc |= kn_json_set_copy(tmeta, "labels", kn_json_at(d, "metadata.labels"));
    rc |= kn_json_set_copy(tmeta, "annotations", kn_json_at(d, "metadata.annotations"));
    cJSON *pod = cJSON_Duplicate(kn_json_child(rev, "spec"), 1);
    if (!pod || !cJSON_IsObject(pod) || !tmpl) {
        cJSON_Delete(pod);
        cJSON_Delete(d);
        return NULL;
    }
    cJSON_AddItemToObject(tmpl, "spec", pod);
    for (const char *const *k = revision_only; *k; k++)
        cJSON_DeleteItemFromObjectCaseSensitive(pod, *k);
    cJSON *containers = cJSON_GetObjectItemCaseSensitive(pod, "containers");
    cJSON *user = cJSON_GetArrayItem(containers, p->container_index);
    rc |= !user || shape_user_container(user, rev, p) != 0;
    cJSON *queue = queue_container(rev, p, o);
    if (queue && containers)
        cJSON_AddItemToArray(containers, queue);
    else {
        cJSON_Delete(queue);
        rc = 1;
    }
    if (!kn_json_child(pod, "enableServiceLinks"))
        rc |= kn_json_set_bool(pod, "enableServiceLinks", 0);
    /* As Knative: a draining pod may finish its longest request. */
    rc |= kn_json_set_int(pod, "terminationGracePeriodSeconds", p->timeout_s);
    if (!kn_json_child(pod, "securityContext"))
        cJSON_AddItemToObject(pod, "securityContext", parse_or_null(hardened_pod));
    if (rc) {
        cJSON_Delete(d);
        return NULL;
    }
    return d;
}

cJSON *kn_build_k8s_service(const cJSON *rev, int private_)
{
    const char *rev_name = kn_json_str(rev, "metadata.name", "");
    char name[KN_NAME_MAX];
    if (private_)
        kn_child_name(name, rev_name, "-private");
    else
        snprintf(name, sizeof name, "%s", rev_name);
    cJSON *s = revision_child(rev, "v1", "Service", name);
    if (!s)
        return NULL;
    cJSON *labels = kn_json_obj(kn_json_obj(s, "metadata"), "labels");
    int rc = kn_json_set_str(labels, KN_L_SKS, rev_name);
    rc |= kn_json_set_str(labels, KN_L_SERVICE_TYPE, private_ ? "Private" : "Public");
    cJSON *spec = kn_json_obj(s, "spec");
    cJSON *sel = kn_json_obj(spec, "selector");
    rc |= kn_json_set_str(sel, KN_L_REVISION_UID, kn_json_str(rev, "metadata.uid", ""));
    cJSON *ports = spec ? cJSON_AddArrayToObject(spec, "ports") : NULL;
    cJSON *port = cJSON_CreateObject();
    rc |= !ports || !port;
    if (ports && port) {
        cJSON_AddItemToArray(ports, port);
        int h2c = 0;
        kn_revision_params_t p;
        kn_defaults_t d;
        char why[64];
        kn_defaults_init(&d);
        if (kn_revision_params(kn_json_child(rev, "spec"), &d, &p, why, sizeof why) == 0)
            h2c = p.h2c;
        rc |= kn_json_set_str(port, "name", h2c ? "http2" : "http");
        rc |= kn_json_set_int(port, "port", 80);
        rc |= kn_json_set_int(port, "targetPort", h2c ? 8013 : KN_QUEUE_PORT);
        rc |= kn_json_set_str(port, "protocol", "TCP");
    } else {
        cJSON_Delete(port);
    }
    if (rc) {
        cJSON_Delete(s);
        return NULL;
    }
    return s;
}

static long long annotation_int(const cJSON *rev, const char *key, long long def)
{
    const char *v = kn_json_annotation(rev, key);
    char *end;
    if (!v || !*v)
        return def;
    double x = strtod(v, &end);
    return *end ? def : (long long)(x + 0.999999);
}

cJSON *kn_build_hpa(const cJSON *rev)
{
    const char *rev_name = kn_json_str(rev, "metadata.name", "");
    cJSON *h = revision_child(rev, "autoscaling/v2", "HorizontalPodAutoscaler", rev_name);
    if (!h)
        return NULL;
    char target[KN_NAME_MAX];
    kn_child_name(target, rev_name, "-deployment");
    cJSON *spec = kn_json_obj(h, "spec");
    cJSON *ref = kn_json_obj(spec, "scaleTargetRef");
    int rc = kn_json_set_str(ref, "apiVersion", "apps/v1") |
             kn_json_set_str(ref, "kind", "Deployment") | kn_json_set_str(ref, "name", target);
    long long min = annotation_int(rev, KN_A_MIN_SCALE, 0);
    long long max = annotation_int(rev, KN_A_MAX_SCALE, 0);
    /* An HPA cannot scale to zero; 0 means unbounded for max-scale. */
    rc |= kn_json_set_int(spec, "minReplicas", min > 1 ? min : 1);
    rc |= kn_json_set_int(spec, "maxReplicas", max > 0 ? max : 2147483647LL);
    const char *metric = kn_json_annotation(rev, KN_A_METRIC);
    int memory = metric && strcmp(metric, "memory") == 0;
    cJSON *metrics = spec ? cJSON_AddArrayToObject(spec, "metrics") : NULL;
    cJSON *m = cJSON_CreateObject();
    rc |= !metrics || !m;
    if (metrics && m) {
        cJSON_AddItemToArray(metrics, m);
        rc |= kn_json_set_str(m, "type", "Resource");
        cJSON *res = kn_json_obj(m, "resource");
        rc |= kn_json_set_str(res, "name", memory ? "memory" : "cpu");
        cJSON *t = kn_json_obj(res, "target");
        if (memory) {
            char v[32];
            snprintf(v, sizeof v, "%lldMi", annotation_int(rev, KN_A_TARGET, 200));
            rc |=
                kn_json_set_str(t, "type", "AverageValue") | kn_json_set_str(t, "averageValue", v);
        } else {
            rc |= kn_json_set_str(t, "type", "Utilization") |
                  kn_json_set_int(t, "averageUtilization", annotation_int(rev, KN_A_TARGET, 80));
        }
    } else {
        cJSON_Delete(m);
    }
    if (rc) {
        cJSON_Delete(h);
        return NULL;
    }
    return h;
}

cJSON *kn_build_route_service(const cJSON *route, const char *target)
{
    static const char *const visibility[] = {KN_L_VISIBILITY, NULL};
    static const char *const none[] = {NULL};
    const char *name = kn_json_str(route, "metadata.name", "");
    cJSON *s = new_object("v1", "Service", name, kn_json_str(route, "metadata.namespace", ""));
    cJSON *meta = s ? kn_json_obj(s, "metadata") : NULL;
    if (!meta)
        return NULL;
    /* The visibility label stays the Route's: a user may set it on this
     * Service alone. */
    cJSON *labels = map_without(kn_json_at(route, "metadata.labels"), visibility);
    cJSON *ann = map_without(kn_json_at(route, "metadata.annotations"), none);
    int rc = !cJSON_AddItemToObject(meta, "labels", labels);
    rc |= !cJSON_AddItemToObject(meta, "annotations", ann);
    rc |= kn_json_set_str(labels, KN_L_ROUTE, name);
    rc |= kn_set_owner(s, route, KN_API_VERSION, "Route");
    cJSON *spec = kn_json_obj(s, "spec");
    rc |= kn_json_set_str(spec, "type", "ExternalName");
    rc |= kn_json_set_str(spec, "externalName", target);
    rc |= kn_json_set_str(spec, "sessionAffinity", "None");
    cJSON *ports = spec ? cJSON_AddArrayToObject(spec, "ports") : NULL;
    cJSON *port = cJSON_CreateObject();
    rc |= !ports || !port;
    if (ports && port) {
        cJSON_AddItemToArray(ports, port);
        rc |= kn_json_set_str(port, "name", "http2");
        rc |= kn_json_set_int(port, "port", 80);
        rc |= kn_json_set_int(port, "targetPort", 80);
        rc |= kn_json_set_str(port, "protocol", "TCP");
    } else {
        cJSON_Delete(port);
    }
    if (rc) {
        cJSON_Delete(s);
        return NULL;
    }
    return s;
}
