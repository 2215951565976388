/* Fuzzes the queue-proxy's configuration: kp_qp_config_load_from
 * (queue-proxy/qp_config.c, with env.c's readers, the readiness probe JSON
 * and the request-log template it compiles) on an environment parsed from
 * the input as NAME=VALUE lines, then kp_probe_spec_parse
 * (queue-proxy/probe_spec.c) on SERVING_READINESS_PROBE's value alone, or
 * on the whole input when it has no '=' line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue-proxy/probe_spec.h"
#include "queue-proxy/qp_config.h"

#define MAX_VARS 64

typedef struct fuzz_env {
    char *names[MAX_VARS];
    char *values[MAX_VARS];
    size_t n;
} fuzz_env_t;

static const char *env_get(const char *name, void *ctx)
{
    const fuzz_env_t *e = ctx;
    /* The last definition wins, as with a shell's environment. */
    for (size_t i = e->n; i-- > 0;)
        if (strcmp(e->names[i], name) == 0)
            return e->values[i];
    return NULL;
}

/* Lines "NAME=VALUE"; "\n" inside a value is written "\\n" so a probe's
 * JSON or a template may span lines in a seed. */
static void env_parse(fuzz_env_t *e, char *text)
{
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && e->n < MAX_VARS;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        char *v = eq + 1, *w = v;
        for (char *r = v; *r; r++) {
            if (r[0] == '\\' && r[1] == 'n') {
                *w++ = '\n';
                r++;
            } else {
                *w++ = *r;
            }
        }
        *w = '\0';
        e->names[e->n] = line;
        e->values[e->n] = v;
        e->n++;
    }
}

static void probe_parse(const char *json)
{
    kp_probe_spec_t spec;
    char err[256];
    int rc = kp_probe_spec_parse(json, 8080, &spec, err, sizeof err);
    if (getenv("FUZZ_DEBUG"))
        fprintf(stderr, "probe: %s\n", rc == 0 ? "accepted" : err);
    if (rc == 0) {
        if (spec.kind == KP_PROBE_HTTP && (!spec.path || spec.path[0] != '/'))
            abort(); /* the header promises a path starting with '/' */
        if (spec.kind != KP_PROBE_NONE && (spec.port < 1 || spec.port > 65535))
            abort();
    } else if (spec.kind != KP_PROBE_NONE) {
        abort();
    }
    kp_probe_spec_free(&spec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A NUL-terminated copy: the loader sees C strings, as from environ. */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *raw = strdup(text);
    fuzz_env_t env = {0};
    env_parse(&env, text);

    kp_qp_config_t cfg;
    char err[512];
    memset(&cfg, 0, sizeof cfg);
    int rc = kp_qp_config_load_from(&cfg, env_get, &env, err, sizeof err);
    if (rc != 0 && (err[0] == '\0' || strnlen(err, sizeof err) == sizeof err))
        abort();
    if (getenv("FUZZ_DEBUG")) /* to check what a seed reaches */
        fprintf(stderr, "config: %s\n", rc == 0 ? "accepted" : err);
    kp_qp_config_free(&cfg);

    const char *probe = env_get("SERVING_READINESS_PROBE", &env);
    probe_parse(probe ? probe : (env.n == 0 && raw ? raw : ""));
    free(raw);
    free(text);
    return 0;
}
