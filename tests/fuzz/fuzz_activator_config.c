/* Fuzzes the activator's config file parser (activator/config/config.c) and the
 * router built from what it accepts (activator/router.c). Input: the JSON
 * file, optionally followed by a NUL byte and newline-separated Host values
 * to route; the hosts every accepted service and tag answer to are routed
 * too, so the router's lookups run on real tables. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activator/config/config.h"
#include "activator/router.h"

static void route_host(const kp_router_t *r, const char *host, size_t len, uint32_t random)
{
    kp_route_t out;
    if (kp_router_route(r, host, len, NULL, 0, NULL, 0, random, &out) == 0) {
        /* An answer points into the config: touch it so ASan checks it. */
        if (out.revision && strlen(out.revision->name) == 0)
            abort();
    }
}

static void route_config_hosts(const kp_router_t *r, const kp_activator_config_t *cfg)
{
    char host[1024];
    for (size_t i = 0; i < cfg->n_services; i++) {
        const kp_service_spec_t *s = &cfg->services[i];
        int n = snprintf(host, sizeof host, "%s.%s.example.com:80", s->name, s->namespace_);
        for (uint32_t rnd = 0; rnd < 4; rnd++)
            route_host(r, host, (size_t)n, rnd * 0x40000000u + 7);
        n = snprintf(host, sizeof host, "%s.%s", s->name, s->namespace_);
        route_host(r, host, (size_t)n, 0xffffffffu);
        for (size_t j = 0; j < s->n_traffic; j++) {
            const kp_traffic_target_t *t = &s->traffic[j];
            if (t->tag) {
                n = snprintf(host, sizeof host, "%s-%s.%s.svc.cluster.local", t->tag, s->name,
                             s->namespace_);
                route_host(r, host, (size_t)n, 1);
            }
        }
        for (size_t j = 0; j < s->n_revisions; j++) {
            const kp_revision_spec_t *rev = &s->revisions[j];
            kp_route_t out;
            kp_router_route(r, "x", 1, rev->name, strlen(rev->name), rev->namespace_,
                            strlen(rev->namespace_), 0, &out);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t json_len = nul ? (size_t)(nul - data) : size;
    kp_activator_config_t cfg;
    char err[512];
    memset(&cfg, 0, sizeof cfg);
    int rc = kp_activator_config_parse(json, json_len, &cfg, err, sizeof err);
    if (getenv("FUZZ_DEBUG")) /* to check what a seed reaches */
        fprintf(stderr, "config: %s\n", rc == 0 ? "accepted" : err);
    if (rc != 0) {
        /* The message is NUL-terminated and non-empty. */
        if (strnlen(err, sizeof err) == sizeof err || err[0] == '\0')
            abort();
        return 0;
    }
    kp_router_t *r = kp_router_new(&cfg);
    if (r) {
        route_config_hosts(r, &cfg);
        if (nul) {
            const char *p = (const char *)nul + 1, *end = (const char *)data + size;
            while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
                route_host(r, p, len, (uint32_t)len * 2654435761u);
                /* The same bytes as revision and namespace headers. */
                kp_route_t out;
                kp_router_route(r, "", 0, p, len / 2, p + len / 2, len - len / 2, 0, &out);
                p += len + 1;
            }
        }
        kp_router_free(r);
    }
    kp_activator_config_free(&cfg);
    return 0;
}
