/* Parses SERVING_READINESS_PROBE (a Kubernetes Probe as JSON); see
 * probe_spec.h. Knative's reconciler has already rewritten the probe to
 * point at 127.0.0.1 and the user port, so most checks here guard against
 * hand-written environments. */
#include "probe_spec.h"

#include <arpa/inet.h>
#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/env.h"
#include "grpc_health.h"

/* Go's json decoding leaves a field at its zero value for both an absent
 * key and a JSON null; we do the same. */
static const cJSON *ps_field(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(it) ? NULL : it;
}

static int ps_int(const cJSON *obj, const char *key, int *out, char *err, size_t errlen)
{
    const cJSON *it = ps_field(obj, key);
    if (!it) {
        *out = 0;
        return 0;
    }
    double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
    if (!cJSON_IsNumber(it) || d < 0 || d > INT32_MAX || d != floor(d)) {
        kp_errf(err, errlen, "%s: expected a non-negative integer", key);
        return -1;
    }
    *out = (int)d;
    return 0;
}

/* Kubernetes' IntOrString: a number, or a string that is a number or a
 * container port name. Names would need the pod spec, which we don't have. */
static int ps_port(const cJSON *obj, int default_port, int *out, char *err, size_t errlen)
{
    const cJSON *it = ps_field(obj, "port");
    long port = 0;
    if (!it) {
        port = 0;
    } else if (cJSON_IsNumber(it)) {
        double d = it->valuedouble;
        if (d < 0 || d > 65535 || d != floor(d)) {
            kp_errf(err, errlen, "port: %g is not a port number (expected 1 to 65535)", d);
            return -1;
        }
        port = (long)d;
    } else if (cJSON_IsString(it)) {
        const char *s = it->valuestring;
        char *end = NULL;
        if (*s < '0' || *s > '9' || (port = strtol(s, &end, 10), *end)) {
            kp_errf(err, errlen,
                    "port: named port \"%.64s\" is not supported (expected a port number)", s);
            return -1;
        }
        if (port > 65535) {
            kp_errf(err, errlen, "port: \"%.64s\" is not a port number (expected 1 to 65535)", s);
            return -1;
        }
    } else {
        kp_errf(err, errlen, "port: expected a number or a numeric string");
        return -1;
    }
    if (port == 0)
        port = default_port;
    if (port < 1 || port > 65535) {
        kp_errf(err, errlen, "port: not set and no default port");
        return -1;
    }
    *out = (int)port;
    return 0;
}

static int ps_host(const cJSON *obj, char *host, size_t hostlen, char *err, size_t errlen)
{
    const cJSON *it = ps_field(obj, "host");
    const char *h = "";
    if (it) {
        if (!cJSON_IsString(it)) {
            kp_errf(err, errlen, "host: expected a string");
            return -1;
        }
        h = it->valuestring;
    }
    if (!*h || strcasecmp(h, "localhost") == 0)
        h = "127.0.0.1";
    unsigned char addr[16];
    /* No resolver on the probing path: the reconciler always sends an IP. */
    if (inet_pton(AF_INET, h, addr) != 1 && inet_pton(AF_INET6, h, addr) != 1) {
        kp_errf(err, errlen, "host: \"%.64s\" is not an IP address (expected e.g. 127.0.0.1)", h);
        return -1;
    }
    snprintf(host, hostlen, "%s", h);
    return 0;
}

static int ps_has_ctl(const char *s, int allow_space)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == ' ' || c == '\t') {
            if (!allow_space)
                return 1;
        } else if (c < 0x20 || c == 0x7f) {
            return 1;
        }
    }
    return 0;
}

static int ps_is_token(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (!*s)
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              strchr(extra, c)))
            return 0;
    }
    return 1;
}

static int ps_http(const cJSON *h, kp_probe_spec_t *spec, char *err, size_t errlen)
{
    const cJSON *scheme = ps_field(h, "scheme");
    if (scheme) {
        const char *s = cJSON_IsString(scheme) ? scheme->valuestring : NULL;
        if (!s) {
            kp_errf(err, errlen, "httpGet.scheme: expected a string");
            return -1;
        }
        if (strcasecmp(s, "HTTPS") == 0) {
            kp_errf(err, errlen,
                    "httpGet.scheme: HTTPS probes are not supported by this queue-proxy "
                    "(expected HTTP)");
            return -1;
        }
        if (*s && strcasecmp(s, "HTTP") != 0) {
            kp_errf(err, errlen, "httpGet.scheme: unknown scheme \"%.32s\" (expected HTTP)", s);
            return -1;
        }
    }

    const cJSON *path = ps_field(h, "path");
    const char *p = "";
    if (path) {
        if (!cJSON_IsString(path)) {
            kp_errf(err, errlen, "httpGet.path: expected a string");
            return -1;
        }
        p = path->valuestring;
    }
    /* The path goes verbatim into a request line. */
    if (ps_has_ctl(p, 0)) {
        kp_errf(err, errlen, "httpGet.path: contains spaces or control characters");
        return -1;
    }
    size_t plen = strlen(p);
    spec->path = malloc(plen + 2);
    if (!spec->path)
        abort();
    snprintf(spec->path, plen + 2, "%s%s", p[0] == '/' ? "" : "/", p);

    const cJSON *hdrs = ps_field(h, "httpHeaders");
    if (hdrs) {
        if (!cJSON_IsArray(hdrs)) {
            kp_errf(err, errlen, "httpGet.httpHeaders: expected a list of {name, value}");
            return -1;
        }
        int n = cJSON_GetArraySize(hdrs);
        spec->headers = calloc((size_t)n + 1, sizeof *spec->headers);
        if (!spec->headers)
            abort();
        const cJSON *e;
        cJSON_ArrayForEach(e, hdrs)
        {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
            const cJSON *value = ps_field(e, "value");
            if (!cJSON_IsString(name) || !ps_is_token(name->valuestring)) {
                kp_errf(err, errlen, "httpGet.httpHeaders[%zu].name: expected a header name",
                        spec->n_headers);
                return -1;
            }
            if (value && (!cJSON_IsString(value) || ps_has_ctl(value->valuestring, 1))) {
                kp_errf(err, errlen,
                        "httpGet.httpHeaders[%zu].value: expected a string without control "
                        "characters",
                        spec->n_headers);
                return -1;
            }
            kp_probe_header_t *ph = &spec->headers[spec->n_headers++];
            ph->name = strdup(name->valuestring);
            ph->value = strdup(value ? value->valuestring : "");
            if (!ph->name || !ph->value)
                abort();
        }
    }
    return 0;
}

static int ps_timing(const cJSON *root, kp_probe_spec_t *spec, char *err, size_t errlen)
{
    if (ps_int(root, "periodSeconds", &spec->period_seconds, err, errlen) < 0 ||
        ps_int(root, "timeoutSeconds", &spec->timeout_seconds, err, errlen) < 0 ||
        ps_int(root, "successThreshold", &spec->success_threshold, err, errlen) < 0 ||
        ps_int(root, "failureThreshold", &spec->failure_threshold, err, errlen) < 0)
        return -1;
    /* Kubernetes' API defaults, which the JSON may omit. */
    if (spec->timeout_seconds == 0)
        spec->timeout_seconds = 1;
    if (spec->success_threshold == 0)
        spec->success_threshold = 1;
    if (spec->failure_threshold == 0)
        spec->failure_threshold = 3;
    return 0;
}

/* core/v1 GRPCAction: port (a number), service (optional). Knative's
 * prober dials 127.0.0.1 (the probe has no host). */
static int ps_grpc(const cJSON *g, int default_port, kp_probe_spec_t *spec, char *err,
                   size_t errlen)
{
    if (!cJSON_IsObject(g)) {
        kp_errf(err, errlen, "grpc: expected an object");
        return -1;
    }
    spec->kind = KP_PROBE_GRPC;
    snprintf(spec->host, sizeof spec->host, "127.0.0.1");
    if (ps_port(g, default_port, &spec->port, err, errlen) < 0)
        return -1;
    const cJSON *svc = ps_field(g, "service");
    const char *name = "";
    if (svc && !cJSON_IsNull(svc)) {
        if (!cJSON_IsString(svc)) {
            kp_errf(err, errlen, "grpc.service: expected a string");
            return -1;
        }
        name = svc->valuestring;
    }
    if (strlen(name) > KP_GRPC_HEALTH_MAX_SERVICE || ps_has_ctl(name, 1)) {
        kp_errf(err, errlen,
                "grpc.service: expected a service name of at most %d printable characters",
                KP_GRPC_HEALTH_MAX_SERVICE);
        return -1;
    }
    spec->grpc_service = strdup(name);
    if (!spec->grpc_service)
        abort();
    return 0;
}

static int ps_probe(const cJSON *root, int default_port, kp_probe_spec_t *spec, char *err,
                    size_t errlen)
{
    if (!cJSON_IsObject(root)) {
        kp_errf(err, errlen, "expected a JSON object (a Kubernetes Probe)");
        return -1;
    }
    const cJSON *http = ps_field(root, "httpGet");
    const cJSON *tcp = ps_field(root, "tcpSocket");
    /* Knative's reconciler rewrites exec probes to tcpSocket before they get
     * here; its queue-proxy, handed one anyway, logs "exec probe not
     * supported" and stays unready forever. Saying so at start is kinder. */
    if (ps_field(root, "exec")) {
        kp_errf(err, errlen,
                "exec probes are not run by the queue-proxy (Knative's reconciler turns them "
                "into a tcpSocket probe on the user port); expected httpGet or tcpSocket");
        return -1;
    }
    const cJSON *grpc = ps_field(root, "grpc");
    if (grpc && (http || tcp)) {
        kp_errf(err, errlen, "grpc and %s are both set; expected exactly one",
                http ? "httpGet" : "tcpSocket");
        return -1;
    }
    if (grpc) {
        if (ps_grpc(grpc, default_port, spec, err, errlen) < 0)
            return -1;
        return ps_timing(root, spec, err, errlen);
    }
    if (http && tcp) {
        kp_errf(err, errlen, "both httpGet and tcpSocket are set; expected exactly one");
        return -1;
    }
    if (!http && !tcp) {
        kp_errf(err, errlen, "no handler; expected httpGet, tcpSocket or grpc");
        return -1;
    }
    const cJSON *h = http ? http : tcp;
    if (!cJSON_IsObject(h)) {
        kp_errf(err, errlen, "%s: expected an object", http ? "httpGet" : "tcpSocket");
        return -1;
    }
    spec->kind = http ? KP_PROBE_HTTP : KP_PROBE_TCP;
    if (ps_port(h, default_port, &spec->port, err, errlen) < 0 ||
        ps_host(h, spec->host, sizeof spec->host, err, errlen) < 0)
        return -1;
    if (http && ps_http(h, spec, err, errlen) < 0)
        return -1;

    return ps_timing(root, spec, err, errlen);
}

int kp_probe_spec_parse(const char *json, int default_port, kp_probe_spec_t *out, char *err,
                        size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!json || !*json)
        return 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    if (!root) {
        size_t at = end ? (size_t)(end - json) : 0;
        kp_errf(err, errlen, "invalid JSON near byte %zu", at);
        return -1;
    }
    /* Newer Knative can send a list (one probe per container); one entry
     * is the single-container case. */
    const cJSON *probe = root;
    if (cJSON_IsArray(root)) {
        if (cJSON_GetArraySize(root) != 1) {
            kp_errf(err, errlen, "a list of %d probes is not supported (expected one probe)",
                    cJSON_GetArraySize(root));
            cJSON_Delete(root);
            return -1;
        }
        probe = cJSON_GetArrayItem(root, 0);
    }
    int rc = ps_probe(probe, default_port, out, err, errlen);
    cJSON_Delete(root);
    if (rc < 0) {
        kp_probe_spec_free(out);
        return -1;
    }
    return 0;
}

void kp_probe_spec_free(kp_probe_spec_t *spec)
{
    for (size_t i = 0; i < spec->n_headers; i++) {
        free(spec->headers[i].name);
        free(spec->headers[i].value);
    }
    free(spec->headers);
    free(spec->path);
    free(spec->grpc_service);
    memset(spec, 0, sizeof *spec);
}
