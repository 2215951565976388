/* Loads the activator's JSON configuration (Knative field names) into
 * kp_activator_config_t and validates it the way Knative's webhook would, so
 * a typo stops the start with a message naming the field instead of routing
 * traffic somewhere unexpected. */
#include "config.h"
#include "autoscaling/kpa.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_DEFAULT_NAMESPACE "default"
#define CFG_DEFAULT_DOMAIN "example.com" /* Knative's config-domain default */
#define CFG_DEFAULT_TIMEOUT_S 300
#define CFG_MAX_TIMEOUT_S 3600
#define CFG_MAX_CC 1000
#define CFG_MAX_FILE_BYTES (16u << 20)
#define CFG_PATH_MAX 160
#define CFG_ERR_MAX 768 /* an unknown key's error lists the accepted ones */

typedef struct cfg_parser {
    char *err;
    size_t err_len;
    const kp_activator_config_t *cfg; /* its "autoscaler" is read before any revision */
} cfg_parser_t;

static int cfg_fail(cfg_parser_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int cfg_fail(cfg_parser_t *p, const char *fmt, ...)
{
    if (p->err && p->err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, p->err_len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Autoscaling settings are checked now, with the autoscaler's own parser
 * and the way Knative's webhook checks them, so that a bad one stops the
 * start (or is a rejected reload) instead of being ignored: every
 * config-autoscaler key and autoscaling.knative.dev/ annotation known,
 * every value in range, then the rules across keys. A revision's
 * annotations go on top of the "autoscaler" settings, as they will when
 * its autoscaler runs. Settings accepted but not acted on pass; the
 * autoscaler logs them. */
static int cfg_check_autoscaling(cfg_parser_t *p, const char *path, const kp_kv_t *annotations,
                                 size_t n_annotations)
{
    kp_kpa_config_t scratch;
    kp_kpa_config_defaults(&scratch);
    char why[CFG_ERR_MAX];
    for (size_t i = 0; i < p->cfg->n_autoscaler; i++) {
        const kp_kv_t *kv = &p->cfg->autoscaler[i];
        if (kp_kpa_config_set(&scratch, kv->key, kv->value, why, sizeof why) < 0)
            return cfg_fail(p, "autoscaler: %s", why);
    }
    for (size_t i = 0; i < n_annotations; i++)
        if (kp_kpa_annotation_set(&scratch, annotations[i].key, annotations[i].value, why,
                                  sizeof why) < 0)
            return cfg_fail(p, "%s: %s", path, why);
    if (kp_kpa_config_check(&scratch, why, sizeof why) != 0)
        return cfg_fail(p, "%s: %s", path, why);
    return 0;
}

/* A field's path for messages ("services[0].revisions[1].env"); paths are
 * short in practice, and a cut one still points at the place. */
static void cfg_path(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cfg_path(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* The JSON text of a value, shortened, for messages: `"ten"`, `true`. */
static const char *cfg_show(const cJSON *v, char *buf, size_t len)
{
    char *s = cJSON_PrintUnformatted(v);
    if (!s) {
        snprintf(buf, len, "(value)");
        return buf;
    }
    if (strlen(s) >= len && len > 4)
        snprintf(buf, len, "%.*s...", (int)(len - 4), s);
    else
        snprintf(buf, len, "%s", s);
    cJSON_free(s);
    return buf;
}

static char *cfg_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int cfg_oom(cfg_parser_t *p)
{
    return cfg_fail(p, "out of memory");
}

/* Rejects keys not in `known` (NULL-terminated) and duplicated keys, which
 * cJSON would otherwise keep silently (the second would be ignored). */
static int cfg_check_keys(cfg_parser_t *p, const cJSON *obj, const char *path,
                          const char *const *known, const char *expected)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        int ok = 0;
        for (size_t i = 0; known[i]; i++)
            if (strcmp(c->string, known[i]) == 0)
                ok = 1;
        if (!ok)
            return cfg_fail(p, "%s%s%s: unknown field (expected %s)", path, *path ? "." : "",
                            c->string, expected);
        for (const cJSON *d = c->next; d; d = d->next)
            if (strcmp(c->string, d->string) == 0)
                return cfg_fail(p, "%s%s%s: given twice", path, *path ? "." : "", c->string);
    }
    return 0;
}

/* DNS-1123 label (namespaces, tags); with `letter_first`, DNS-1035 (names of
 * services and revisions, which become Kubernetes Service names). */
static int cfg_is_dns_label(const char *s, int letter_first)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && i > 0 && i < n - 1))
            return 0;
    }
    if (letter_first && !(s[0] >= 'a' && s[0] <= 'z'))
        return 0;
    return 1;
}

static int cfg_get_string(cfg_parser_t *p, const cJSON *v, const char *path, char **out)
{
    char shown[64];
    if (!cJSON_IsString(v))
        return cfg_fail(p, "%s: %s is not a string", path, cfg_show(v, shown, sizeof shown));
    *out = cfg_strdup(v->valuestring);
    return *out ? 0 : cfg_oom(p);
}

static int cfg_get_label(cfg_parser_t *p, const cJSON *v, const char *path, int letter_first,
                         char **out)
{
    char shown[96];
    if (!cJSON_IsString(v) || !cfg_is_dns_label(v->valuestring, letter_first))
        return cfg_fail(p,
                        "%s: %s is not a DNS label (expected 1 to 63 lowercase letters, digits "
                        "and '-', starting with a %s and ending with a letter or digit)",
                        path, cfg_show(v, shown, sizeof shown),
                        letter_first ? "letter" : "letter or digit");
    *out = cfg_strdup(v->valuestring);
    return *out ? 0 : cfg_oom(p);
}

static int cfg_get_int(cfg_parser_t *p, const cJSON *v, const char *path, int lo, int hi, int *out)
{
    char shown[64];
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || floor(v->valuedouble) != v->valuedouble)
        return cfg_fail(p, "%s: %s is not an integer (expected %d..%d)", path,
                        cfg_show(v, shown, sizeof shown), lo, hi);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return cfg_fail(p, "%s: %s is out of range (expected %d..%d)", path,
                        cfg_show(v, shown, sizeof shown), lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

/* A scalar as the string a Kubernetes map or ConfigMap would hold: strings
 * as they are, numbers and booleans in their JSON spelling (60 -> "60"). */
static int cfg_get_scalar(cfg_parser_t *p, const cJSON *v, const char *path, char **out)
{
    char shown[64];
    if (cJSON_IsString(v)) {
        *out = cfg_strdup(v->valuestring);
    } else if (cJSON_IsBool(v)) {
        *out = cfg_strdup(cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsNumber(v)) {
        char num[64];
        double d = v->valuedouble;
        if (isfinite(d) && floor(d) == d && fabs(d) < 1e15)
            snprintf(num, sizeof num, "%.0f", d);
        else
            snprintf(num, sizeof num, "%.17g", d);
        *out = cfg_strdup(num);
    } else {
        return cfg_fail(p, "%s: %s is not a string, number or boolean", path,
                        cfg_show(v, shown, sizeof shown));
    }
    return *out ? 0 : cfg_oom(p);
}

/* {"key": scalar, ...} in file order; with is_env, keys are variable names
 * (no '='). */
static int cfg_get_map(cfg_parser_t *p, const cJSON *v, const char *path, int is_env, kp_kv_t **out,
                       size_t *n_out)
{
    char shown[64], sub[CFG_PATH_MAX + 80];
    if (!cJSON_IsObject(v))
        return cfg_fail(p, "%s: %s is not an object (expected {\"key\": \"value\", ...})", path,
                        cfg_show(v, shown, sizeof shown));
    size_t n = (size_t)cJSON_GetArraySize(v);
    if (n == 0)
        return 0;
    *out = calloc(n, sizeof **out);
    if (!*out)
        return cfg_oom(p);
    for (const cJSON *c = v->child; c; c = c->next) {
        cfg_path(sub, sizeof sub, "%s.\"%.64s\"", path, c->string);
        if (c->string[0] == '\0')
            return cfg_fail(p, "%s: empty key", path);
        if (is_env && strchr(c->string, '='))
            return cfg_fail(p, "%s: variable names cannot contain '='", sub);
        for (const cJSON *d = c->next; d; d = d->next)
            if (strcmp(c->string, d->string) == 0)
                return cfg_fail(p, "%s: given twice", sub);
        kp_kv_t *kv = &(*out)[*n_out];
        (*n_out)++;
        kv->key = cfg_strdup(c->string);
        if (!kv->key)
            return cfg_oom(p);
        if (cfg_get_scalar(p, c, sub, &kv->value) != 0)
            return -1;
    }
    return 0;
}

static int cfg_get_command(cfg_parser_t *p, const cJSON *v, const char *path,
                           kp_revision_spec_t *rev)
{
    char shown[64], sub[CFG_PATH_MAX + 16];
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return cfg_fail(p,
                        "%s: %s is not a non-empty array of strings (expected [\"/path/app\", "
                        "\"arg\", ...])",
                        path, cfg_show(v, shown, sizeof shown));
    size_t n = (size_t)cJSON_GetArraySize(v);
    rev->command = calloc(n, sizeof *rev->command);
    if (!rev->command)
        return cfg_oom(p);
    size_t i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        cfg_path(sub, sizeof sub, "%s[%zu]", path, i);
        if (cfg_get_string(p, c, sub, &rev->command[i]) != 0)
            return -1;
        rev->n_command++;
        if (i == 0 && rev->command[0][0] == '\0')
            return cfg_fail(p, "%s: empty program path", sub);
    }
    return 0;
}

static const char *const revision_keys[] = {"name",
                                            "containerConcurrency",
                                            "timeoutSeconds",
                                            "responseStartTimeoutSeconds",
                                            "idleTimeoutSeconds",
                                            "annotations",
                                            "env",
                                            "command",
                                            "ports",
                                            NULL};
#define REVISION_KEYS_TEXT                                                                         \
    "name, containerConcurrency, timeoutSeconds, responseStartTimeoutSeconds, "                    \
    "idleTimeoutSeconds, annotations, env, command, ports"

/* The app container's ports as Knative writes them ([{"name": "h2c",
 * "containerPort": 8080}]): at most one, named "h2c", "http1" or nothing
 * (Knative's validation). "h2c" makes the revision HTTP/2 to the app
 * (Revision.GetProtocol). Local pods get their port in PORT, so
 * containerPort is only checked. */
static int cfg_get_ports(cfg_parser_t *p, const cJSON *v, const char *path, kp_revision_spec_t *rev)
{
    static const char *const port_keys[] = {"name", "containerPort", NULL};
    char shown[64], sub[CFG_PATH_MAX + 40];
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > 1)
        return cfg_fail(p,
                        "%s: %s is not a list of at most one port (expected [{\"name\": \"h2c\"}])",
                        path, cfg_show(v, shown, sizeof shown));
    const cJSON *port = cJSON_GetArrayItem(v, 0);
    if (!port)
        return 0;
    cfg_path(sub, sizeof sub, "%s[0]", path);
    if (!cJSON_IsObject(port))
        return cfg_fail(p, "%s: %s is not an object (expected {\"name\": \"h2c\"})", sub,
                        cfg_show(port, shown, sizeof shown));
    if (cfg_check_keys(p, port, sub, port_keys, "name, containerPort") != 0)
        return -1;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(port, "containerPort");
    int number;
    char fpath[CFG_PATH_MAX + 60];
    cfg_path(fpath, sizeof fpath, "%s.containerPort", sub);
    if (f && cfg_get_int(p, f, fpath, 1, 65535, &number) != 0)
        return -1;
    if (!(f = cJSON_GetObjectItemCaseSensitive(port, "name")))
        return 0;
    cfg_path(fpath, sizeof fpath, "%s.name", sub);
    if (!cJSON_IsString(f) || (strcmp(f->valuestring, "h2c") != 0 &&
                               strcmp(f->valuestring, "http1") != 0 && *f->valuestring))
        return cfg_fail(p, "%s: %s is not a port name we know (expected \"h2c\" or \"http1\")",
                        fpath, cfg_show(f, shown, sizeof shown));
    rev->h2c = strcmp(f->valuestring, "h2c") == 0;
    return 0;
}

static int cfg_parse_revision(cfg_parser_t *p, const cJSON *v, const char *path,
                              const kp_service_spec_t *svc, kp_revision_spec_t *rev)
{
    char shown[64], sub[CFG_PATH_MAX + 40];
    if (!cJSON_IsObject(v))
        return cfg_fail(p, "%s: %s is not an object (expected {\"name\": ..., ...})", path,
                        cfg_show(v, shown, sizeof shown));
    if (cfg_check_keys(p, v, path, revision_keys, REVISION_KEYS_TEXT) != 0)
        return -1;
    rev->namespace_ = cfg_strdup(svc->namespace_);
    rev->service = cfg_strdup(svc->name);
    if (!rev->namespace_ || !rev->service)
        return cfg_oom(p);
    rev->timeout_s = CFG_DEFAULT_TIMEOUT_S;

    const cJSON *f = cJSON_GetObjectItemCaseSensitive(v, "name");
    cfg_path(sub, sizeof sub, "%s.name", path);
    if (!f)
        return cfg_fail(p, "%s: missing (expected a revision name such as \"%s-00001\")", sub,
                        svc->name);
    if (cfg_get_label(p, f, sub, 1, &rev->name) != 0)
        return -1;

    static const struct {
        const char *key;
        int lo, hi;
        size_t off;
    } ints[] = {
        {"containerConcurrency", 0, CFG_MAX_CC,
         offsetof(kp_revision_spec_t, container_concurrency)},
        {"timeoutSeconds", 1, CFG_MAX_TIMEOUT_S, offsetof(kp_revision_spec_t, timeout_s)},
        {"responseStartTimeoutSeconds", 0, CFG_MAX_TIMEOUT_S,
         offsetof(kp_revision_spec_t, response_start_timeout_s)},
        {"idleTimeoutSeconds", 0, CFG_MAX_TIMEOUT_S, offsetof(kp_revision_spec_t, idle_timeout_s)},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        f = cJSON_GetObjectItemCaseSensitive(v, ints[i].key);
        if (!f)
            continue;
        cfg_path(sub, sizeof sub, "%s.%s", path, ints[i].key);
        if (cfg_get_int(p, f, sub, ints[i].lo, ints[i].hi, (int *)((char *)rev + ints[i].off)) != 0)
            return -1;
    }
    /* Knative: both per-phase timeouts must fit in the request timeout. */
    if (rev->response_start_timeout_s > rev->timeout_s)
        return cfg_fail(p,
                        "%s.responseStartTimeoutSeconds: %d exceeds timeoutSeconds %d (expected "
                        "0..%d)",
                        path, rev->response_start_timeout_s, rev->timeout_s, rev->timeout_s);
    if (rev->idle_timeout_s > rev->timeout_s)
        return cfg_fail(p, "%s.idleTimeoutSeconds: %d exceeds timeoutSeconds %d (expected 0..%d)",
                        path, rev->idle_timeout_s, rev->timeout_s, rev->timeout_s);

    if ((f = cJSON_GetObjectItemCaseSensitive(v, "annotations"))) {
        cfg_path(sub, sizeof sub, "%s.annotations", path);
        if (cfg_get_map(p, f, sub, 0, &rev->annotations, &rev->n_annotations) != 0 ||
            cfg_check_autoscaling(p, sub, rev->annotations, rev->n_annotations) != 0)
            return -1;
    }
    if ((f = cJSON_GetObjectItemCaseSensitive(v, "env"))) {
        cfg_path(sub, sizeof sub, "%s.env", path);
        if (cfg_get_map(p, f, sub, 1, &rev->env, &rev->n_env) != 0)
            return -1;
    }
    if ((f = cJSON_GetObjectItemCaseSensitive(v, "command"))) {
        cfg_path(sub, sizeof sub, "%s.command", path);
        if (cfg_get_command(p, f, sub, rev) != 0)
            return -1;
    }
    if ((f = cJSON_GetObjectItemCaseSensitive(v, "ports"))) {
        cfg_path(sub, sizeof sub, "%s.ports", path);
        if (cfg_get_ports(p, f, sub, rev) != 0)
            return -1;
    }
    return 0;
}

static const char *const traffic_keys[] = {"revisionName", "latestRevision", "percent", "tag",
                                           NULL};

static int cfg_parse_target(cfg_parser_t *p, const cJSON *v, const char *path,
                            kp_service_spec_t *svc, kp_traffic_target_t *t)
{
    char shown[64], sub[CFG_PATH_MAX + 40];
    if (!cJSON_IsObject(v))
        return cfg_fail(p,
                        "%s: %s is not an object (expected {\"revisionName\": ..., \"percent\": "
                        "...})",
                        path, cfg_show(v, shown, sizeof shown));
    if (cfg_check_keys(p, v, path, traffic_keys, "revisionName, latestRevision, percent, tag") != 0)
        return -1;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(v, "revisionName");
    const cJSON *latest = cJSON_GetObjectItemCaseSensitive(v, "latestRevision");
    if (latest && !cJSON_IsBool(latest))
        return cfg_fail(p, "%s.latestRevision: %s is not a boolean (expected true or false)", path,
                        cfg_show(latest, shown, sizeof shown));
    if (cJSON_IsTrue(latest)) {
        if (name)
            return cfg_fail(p,
                            "%s: revisionName and \"latestRevision\": true are exclusive "
                            "(expected one of them)",
                            path);
        t->revision = &svc->revisions[svc->n_revisions - 1];
    } else {
        if (!name)
            return cfg_fail(p,
                            "%s: no revision (expected \"revisionName\" or \"latestRevision\": "
                            "true)",
                            path);
        cfg_path(sub, sizeof sub, "%s.revisionName", path);
        if (!cJSON_IsString(name))
            return cfg_fail(p, "%s: %s is not a string", sub, cfg_show(name, shown, sizeof shown));
        for (size_t i = 0; i < svc->n_revisions; i++)
            if (strcmp(svc->revisions[i].name, name->valuestring) == 0)
                t->revision = &svc->revisions[i];
        if (!t->revision) {
            char names[200] = "";
            size_t used = 0;
            for (size_t i = 0; i < svc->n_revisions && used < sizeof names; i++)
                used += (size_t)snprintf(names + used, sizeof names - used, "%s\"%s\"",
                                         i ? ", " : "", svc->revisions[i].name);
            return cfg_fail(p,
                            "%s: \"%.63s\" is not a revision of service \"%s\" (expected one "
                            "of %s)",
                            sub, name->valuestring, svc->name, names);
        }
    }
    t->revision_name = cfg_strdup(t->revision->name);
    if (!t->revision_name)
        return cfg_oom(p);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(v, "percent");
    if (f) {
        cfg_path(sub, sizeof sub, "%s.percent", path);
        if (cfg_get_int(p, f, sub, 0, 100, &t->percent) != 0)
            return -1;
    }
    if ((f = cJSON_GetObjectItemCaseSensitive(v, "tag"))) {
        cfg_path(sub, sizeof sub, "%s.tag", path);
        if (cfg_get_label(p, f, sub, 0, &t->tag) != 0)
            return -1;
        /* The tag host's first label is "{tag}-{service}": one DNS label. */
        if (strlen(t->tag) + 1 + strlen(svc->name) > 63)
            return cfg_fail(p,
                            "%s: \"%s-%s\" is longer than 63 characters (expected a shorter tag)",
                            sub, t->tag, svc->name);
    }
    return 0;
}

static const char *const service_keys[] = {"name", "namespace", "revisions", "traffic", NULL};

static int cfg_parse_service(cfg_parser_t *p, const cJSON *v, const char *path,
                             kp_service_spec_t *svc)
{
    char shown[64], sub[CFG_PATH_MAX];
    if (!cJSON_IsObject(v))
        return cfg_fail(p,
                        "%s: %s is not an object (expected {\"name\": ..., \"revisions\": [...]})",
                        path, cfg_show(v, shown, sizeof shown));
    if (cfg_check_keys(p, v, path, service_keys, "name, namespace, revisions, traffic") != 0)
        return -1;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(v, "name");
    cfg_path(sub, sizeof sub, "%s.name", path);
    if (!f)
        return cfg_fail(p, "%s: missing (expected the service's name, a DNS label)", sub);
    if (cfg_get_label(p, f, sub, 1, &svc->name) != 0)
        return -1;
    if ((f = cJSON_GetObjectItemCaseSensitive(v, "namespace"))) {
        cfg_path(sub, sizeof sub, "%s.namespace", path);
        if (cfg_get_label(p, f, sub, 0, &svc->namespace_) != 0)
            return -1;
    } else if (!(svc->namespace_ = cfg_strdup(CFG_DEFAULT_NAMESPACE))) {
        return cfg_oom(p);
    }

    f = cJSON_GetObjectItemCaseSensitive(v, "revisions");
    cfg_path(sub, sizeof sub, "%s.revisions", path);
    if (!f)
        return cfg_fail(p, "%s: missing (expected a non-empty array of revisions)", sub);
    if (!cJSON_IsArray(f) || cJSON_GetArraySize(f) == 0)
        return cfg_fail(p, "%s: %s is not a non-empty array (expected [{\"name\": ...}, ...])", sub,
                        cfg_show(f, shown, sizeof shown));
    size_t n = (size_t)cJSON_GetArraySize(f);
    svc->revisions = calloc(n, sizeof *svc->revisions);
    if (!svc->revisions)
        return cfg_oom(p);
    size_t i = 0;
    for (const cJSON *c = f->child; c; c = c->next, i++) {
        cfg_path(sub, sizeof sub, "%s.revisions[%zu]", path, i);
        svc->n_revisions++;
        if (cfg_parse_revision(p, c, sub, svc, &svc->revisions[i]) != 0)
            return -1;
    }

    f = cJSON_GetObjectItemCaseSensitive(v, "traffic");
    cfg_path(sub, sizeof sub, "%s.traffic", path);
    if (!f) {
        /* Knative's default route: everything to the latest revision. */
        svc->traffic = calloc(1, sizeof *svc->traffic);
        if (!svc->traffic)
            return cfg_oom(p);
        svc->n_traffic = 1;
        svc->traffic[0].revision = &svc->revisions[svc->n_revisions - 1];
        svc->traffic[0].percent = 100;
        svc->traffic[0].revision_name = cfg_strdup(svc->traffic[0].revision->name);
        return svc->traffic[0].revision_name ? 0 : cfg_oom(p);
    }
    if (!cJSON_IsArray(f) || cJSON_GetArraySize(f) == 0)
        return cfg_fail(p,
                        "%s: %s is not a non-empty array (expected [{\"revisionName\": ..., "
                        "\"percent\": 100}], or no traffic for 100%% to the last revision)",
                        sub, cfg_show(f, shown, sizeof shown));
    n = (size_t)cJSON_GetArraySize(f);
    svc->traffic = calloc(n, sizeof *svc->traffic);
    if (!svc->traffic)
        return cfg_oom(p);
    int sum = 0;
    i = 0;
    for (const cJSON *c = f->child; c; c = c->next, i++) {
        char tsub[CFG_PATH_MAX + 16];
        cfg_path(tsub, sizeof tsub, "%s[%zu]", sub, i);
        svc->n_traffic++;
        kp_traffic_target_t *t = &svc->traffic[i];
        if (cfg_parse_target(p, c, tsub, svc, t) != 0)
            return -1;
        sum += t->percent;
        for (size_t j = 0; t->tag && j < i; j++)
            if (svc->traffic[j].tag && strcmp(svc->traffic[j].tag, t->tag) == 0)
                return cfg_fail(p,
                                "%s.tag: \"%s\" is already the tag of %s[%zu] (expected tags "
                                "unique within a service)",
                                tsub, t->tag, sub, j);
    }
    if (sum != 100)
        return cfg_fail(p, "%s: percents sum to %d (expected 100)", sub, sum);
    return 0;
}

/* Revision names are Kubernetes object names (Deployment, Service), so they
 * are unique per namespace across services; so are service names. */
static int cfg_check_unique(cfg_parser_t *p, const kp_activator_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_services; i++) {
        const kp_service_spec_t *a = &cfg->services[i];
        for (size_t k = 0; k < i; k++) {
            const kp_service_spec_t *b = &cfg->services[k];
            if (strcmp(a->namespace_, b->namespace_) == 0 && strcmp(a->name, b->name) == 0)
                return cfg_fail(p,
                                "services[%zu].name: \"%s\" is already services[%zu] in namespace "
                                "\"%s\" (expected unique service names per namespace)",
                                i, a->name, k, a->namespace_);
        }
        for (size_t j = 0; j < a->n_revisions; j++) {
            const kp_revision_spec_t *r = &a->revisions[j];
            for (size_t k = 0; k <= i; k++) {
                const kp_service_spec_t *b = &cfg->services[k];
                if (strcmp(a->namespace_, b->namespace_) != 0)
                    continue;
                size_t end = k == i ? j : b->n_revisions;
                for (size_t m = 0; m < end; m++)
                    if (strcmp(b->revisions[m].name, r->name) == 0)
                        return cfg_fail(p,
                                        "services[%zu].revisions[%zu].name: \"%s\" is already "
                                        "services[%zu].revisions[%zu] in namespace \"%s\" "
                                        "(expected unique revision names per namespace)",
                                        i, j, r->name, k, m, a->namespace_);
            }
        }
    }
    return 0;
}

static const char *const top_keys[] = {"domain", "autoscaler", "services", NULL};

static int cfg_parse_root(cfg_parser_t *p, const cJSON *root, kp_activator_config_t *cfg)
{
    char shown[64], sub[CFG_PATH_MAX];
    if (!cJSON_IsObject(root))
        return cfg_fail(p, "top level: %s is not an object (expected {\"services\": [...]})",
                        cfg_show(root, shown, sizeof shown));
    if (cfg_check_keys(p, root, "", top_keys, "domain, autoscaler, services") != 0)
        return -1;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "domain");
    if (f) {
        if (!cJSON_IsString(f) || f->valuestring[0] == '\0')
            return cfg_fail(p,
                            "domain: %s is not a domain name (expected e.g. "
                            "\"127.0.0.1.sslip.io\")",
                            cfg_show(f, shown, sizeof shown));
        cfg->domain = cfg_strdup(f->valuestring);
    } else {
        cfg->domain = cfg_strdup(CFG_DEFAULT_DOMAIN);
    }
    if (!cfg->domain)
        return cfg_oom(p);
    if ((f = cJSON_GetObjectItemCaseSensitive(root, "autoscaler"))) {
        if (cfg_get_map(p, f, "autoscaler", 0, &cfg->autoscaler, &cfg->n_autoscaler) != 0 ||
            cfg_check_autoscaling(p, "autoscaler", NULL, 0) != 0)
            return -1;
    }

    /* No services is valid: on Kubernetes the Knative Services make the
     * routing table; elsewhere the file may list some later (reload). */
    f = cJSON_GetObjectItemCaseSensitive(root, "services");
    if (!f)
        return 0;
    if (!cJSON_IsArray(f))
        return cfg_fail(p,
                        "services: %s is not an array (expected [{\"name\": ..., "
                        "\"revisions\": [...]}], or [] for none)",
                        cfg_show(f, shown, sizeof shown));
    if (cJSON_GetArraySize(f) == 0)
        return 0;
    size_t n = (size_t)cJSON_GetArraySize(f);
    cfg->services = calloc(n, sizeof *cfg->services);
    if (!cfg->services)
        return cfg_oom(p);
    size_t i = 0;
    for (const cJSON *c = f->child; c; c = c->next, i++) {
        cfg_path(sub, sizeof sub, "services[%zu]", i);
        cfg->n_services++;
        if (cfg_parse_service(p, c, sub, &cfg->services[i]) != 0)
            return -1;
    }
    return cfg_check_unique(p, cfg);
}

int kp_activator_config_parse(const char *json, size_t len, kp_activator_config_t *cfg, char *err,
                              size_t err_len)
{
    cfg_parser_t p = {err, err_len, cfg};
    memset(cfg, 0, sizeof *cfg);
    if (err && err_len)
        err[0] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        /* cJSON stops at (or just after) the offending byte. */
        size_t pos = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        int line = 1;
        for (size_t i = 0; i < pos; i++)
            line += json[i] == '\n';
        size_t show = len - pos < 20 ? len - pos : 20;
        const char *nl = memchr(json + pos, '\n', show);
        if (nl)
            show = (size_t)(nl - (json + pos));
        if (pos >= len)
            return cfg_fail(&p, "line %d: invalid JSON: unexpected end of input", line);
        return cfg_fail(&p, "line %d: invalid JSON near \"%.*s\"", line, (int)show, json + pos);
    }
    int rc = cfg_parse_root(&p, root, cfg);
    cJSON_Delete(root);
    if (rc != 0)
        kp_activator_config_free(cfg);
    return rc;
}

int kp_activator_config_load_file(const char *path, kp_activator_config_t *cfg, char *err,
                                  size_t err_len)
{
    memset(cfg, 0, sizeof *cfg);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int read_err = 0;
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap || n > CFG_MAX_FILE_BYTES)
            break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    if (ferror(f))
        read_err = errno ? errno : EIO;
    fclose(f);
    if (!buf) {
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    if (read_err) {
        free(buf);
        snprintf(err, err_len, "%s: cannot read: %s", path, strerror(read_err));
        return -1;
    }
    if (n > CFG_MAX_FILE_BYTES) {
        free(buf);
        snprintf(err, err_len, "%s: larger than %u bytes (expected a configuration file)", path,
                 CFG_MAX_FILE_BYTES);
        return -1;
    }
    char msg[CFG_ERR_MAX + CFG_PATH_MAX];
    int rc = kp_activator_config_parse(buf, n, cfg, msg, sizeof msg);
    free(buf);
    if (rc != 0)
        snprintf(err, err_len, "%s: %s", path, msg);
    return rc;
}

void kp_activator_config_free(kp_activator_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_services; i++) {
        kp_service_spec_t *s = &cfg->services[i];
        for (size_t j = 0; j < s->n_revisions; j++) {
            kp_revision_spec_free(&s->revisions[j]);
        }
        free(s->revisions);
        for (size_t j = 0; j < s->n_traffic; j++) {
            free(s->traffic[j].revision_name);
            free(s->traffic[j].tag);
        }
        free(s->traffic);
        free(s->name);
        free(s->namespace_);
    }
    free(cfg->services);
    kp_kv_free(cfg->autoscaler, cfg->n_autoscaler);
    free(cfg->domain);
    memset(cfg, 0, sizeof *cfg);
}
