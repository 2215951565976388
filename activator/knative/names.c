/* Knative's names. See names.h. */
#include "names.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

void kn_child_name(char out[KN_NAME_MAX], const char *parent, const char *suffix)
{
    size_t np = strlen(parent), ns = strlen(suffix);
    if (np + ns < KN_NAME_MAX) {
        memcpy(out, parent, np);
        memcpy(out + np, suffix, ns + 1);
        return;
    }
    /* FNV-1a of parent + suffix: stable across processes and replicas. */
    uint32_t h = 2166136261u;
    for (const char *p = parent; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (const char *p = suffix; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    char hash[9];
    snprintf(hash, sizeof hash, "%08x", h);
    size_t keep = KN_NAME_MAX - 1 - 8 - (ns < KN_NAME_MAX - 10 ? ns : 0);
    if (keep > np)
        keep = np;
    while (keep > 0 && parent[keep - 1] == '-')
        keep--; /* a label may not hold "--" before the hash's letters at an end */
    memcpy(out, parent, keep);
    memcpy(out + keep, hash, 8);
    size_t tail = ns < KN_NAME_MAX - 10 ? ns : 0;
    memcpy(out + keep + 8, suffix, tail);
    out[keep + 8 + tail] = '\0';
}

void kn_revision_name(char out[KN_NAME_MAX], const char *config, long long generation)
{
    char suffix[32];
    snprintf(suffix, sizeof suffix, "-%05lld", generation);
    kn_child_name(out, config, suffix);
}

int kn_dns_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

void kn_route_host(char *out, size_t len, const char *tag, const char *name, const char *ns,
                   const char *domain)
{
    if (tag)
        snprintf(out, len, "%s-%s.%s.%s", tag, name, ns, domain);
    else
        snprintf(out, len, "%s.%s.%s", name, ns, domain);
}

void kn_route_url(char *out, size_t len, const char *tag, const char *name, const char *ns,
                  const char *domain)
{
    char host[512];
    kn_route_host(host, sizeof host, tag, name, ns, domain);
    snprintf(out, len, "http://%s", host);
}
