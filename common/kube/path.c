/* Where an object lives in the API (its path) and how a query value is
 * written (percent-encoded): pure, shared by object.c and informer.c. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

int kp_kube_object_path(const kp_kube_resource_t *res, const char *ns, const char *name,
                        const char *sub, char *out, size_t out_len)
{
    int n;
    if (res->group && res->group[0])
        n = snprintf(out, out_len, "/apis/%s/%s/namespaces/%s/%s", res->group, res->version, ns,
                     res->plural);
    else
        n = snprintf(out, out_len, "/api/%s/namespaces/%s/%s", res->version, ns, res->plural);
    if (n < 0 || (size_t)n >= out_len)
        return -1;
    if (name) {
        int m = snprintf(out + n, out_len - (size_t)n, "/%s", name);
        if (m < 0 || (size_t)m >= out_len - (size_t)n)
            return -1;
        n += m;
    }
    if (name && sub) {
        int m = snprintf(out + n, out_len - (size_t)n, "/%s", sub);
        if (m < 0 || (size_t)m >= out_len - (size_t)n)
            return -1;
    }
    return 0;
}

int kp_kube_query_escape(const char *s, char *out, size_t out_len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~';
        if (o + (plain ? 1 : 3) >= out_len)
            return -1;
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (o >= out_len)
        return -1;
    out[o] = '\0';
    return 0;
}

void kp_kube_resource_name(const kp_kube_resource_t *res, char *out, size_t out_len)
{
    if (res->group && res->group[0])
        snprintf(out, out_len, "%s.%s", res->plural, res->group);
    else
        snprintf(out, out_len, "%s", res->plural);
}
