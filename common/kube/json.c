/* The Kubernetes API's JSON as the client needs it: Status messages, the
 * line-per-event watch stream, EndpointSlices merged per service, Leases and
 * MicroTime. Pure functions, no I/O: the unit tests drive them directly. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "base/strbuf.h"

static void copy_str(char *dst, size_t dst_len, const char *src)
{
    if (dst_len == 0)
        return;
    snprintf(dst, dst_len, "%s", src ? src : "");
}

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* --- Status --- */

void kp_kube_status_message(const char *body, size_t len, char *out, size_t out_len)
{
    out[0] = '\0';
    if (!body || len == 0)
        return;
    cJSON *root = cJSON_ParseWithLength(body, len);
    const char *msg = root ? json_str(root, "message") : NULL;
    if (msg) {
        copy_str(out, out_len, msg);
    } else {
        /* Not a Status (a proxy's HTML page, plain text): its first line
         * still tells the operator more than nothing. */
        size_t n = 0;
        while (n < len && body[n] != '\n' && body[n] != '\r' && n + 1 < out_len)
            n++;
        memcpy(out, body, n);
        out[n] = '\0';
    }
    cJSON_Delete(root);
}

void kp_kube_rbac_rule(const kp_kube_rbac_t *r, char *out, size_t out_len)
{
    const char *group = r->group && r->group[0] ? r->group : "\"\" (core)";
    if (r->ns && r->ns[0])
        snprintf(out, out_len, "verbs [%s] on %s in %s, namespace %s", r->verb, r->resource, group,
                 r->ns);
    else
        snprintf(out, out_len, "verbs [%s] on %s in %s, cluster-wide", r->verb, r->resource, group);
}

/* --- watch stream lines --- */

int kp_kube_lines_feed(kp_kube_lines_t *l, const char *data, size_t n,
                       int (*on_line)(void *ctx, const char *line, size_t len), void *ctx)
{
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        const char *line = data;
        size_t line_len = take;
        if (l->len > 0 || !nl) {
            /* A line split across chunks: gather it. */
            if (l->len + take > KP_KUBE_LINE_MAX)
                return -1;
            if (l->len + take + 1 > l->cap) {
                size_t cap = l->cap ? l->cap : 4096;
                while (cap < l->len + take + 1)
                    cap *= 2;
                char *b = realloc(l->buf, cap);
                if (!b)
                    return -1;
                l->buf = b;
                l->cap = cap;
            }
            memcpy(l->buf + l->len, data, take);
            l->len += take;
            line = l->buf;
            line_len = l->len;
        }
        if (!nl)
            return 0;
        data += take + 1;
        n -= take + 1;
        if (line_len > 0 && line[line_len - 1] == '\r')
            line_len--;
        int rc = line_len > 0 ? on_line(ctx, line, line_len) : 0;
        l->len = 0;
        if (rc != 0)
            return rc;
    }
    return 0;
}

void kp_kube_lines_free(kp_kube_lines_t *l)
{
    free(l->buf);
    l->buf = NULL;
    l->len = l->cap = 0;
}

/* --- watch events --- */

static const struct {
    const char *name;
    kp_kube_ev_type_t type;
} ev_types[] = {
    {"ADDED", KP_KUBE_EV_ADDED},     {"MODIFIED", KP_KUBE_EV_MODIFIED},
    {"DELETED", KP_KUBE_EV_DELETED}, {"BOOKMARK", KP_KUBE_EV_BOOKMARK},
    {"ERROR", KP_KUBE_EV_ERROR},
};

int kp_kube_event_parse(const char *line, size_t len, kp_kube_event_t *ev)
{
    memset(ev, 0, sizeof(*ev));
    cJSON *root = cJSON_ParseWithLength(line, len);
    if (!root)
        return -1;
    const char *type = json_str(root, "type");
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, "object");
    size_t i;
    for (i = 0; type && i < sizeof(ev_types) / sizeof(ev_types[0]); i++)
        if (strcmp(type, ev_types[i].name) == 0)
            break;
    if (!type || i == sizeof(ev_types) / sizeof(ev_types[0]) || !cJSON_IsObject(obj)) {
        cJSON_Delete(root);
        return -1;
    }
    ev->type = ev_types[i].type;
    ev->root = root;
    ev->object = obj;
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    copy_str(ev->resource_version, sizeof(ev->resource_version), json_str(meta, "resourceVersion"));
    if (ev->type == KP_KUBE_EV_ERROR) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(obj, "code");
        ev->code = cJSON_IsNumber(code) ? code->valueint : 0;
        copy_str(ev->message, sizeof(ev->message), json_str(obj, "message"));
    }
    return 0;
}

void kp_kube_event_free(kp_kube_event_t *ev)
{
    cJSON_Delete(ev->root);
    ev->root = NULL;
    ev->object = NULL;
}

/* --- EndpointSlices --- */

int kp_kube_slice_parse(const cJSON *obj, kp_kube_slice_t *s)
{
    memset(s, 0, sizeof(*s));
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const char *name = json_str(meta, "name");
    if (!name)
        return -1;
    copy_str(s->name, sizeof(s->name), name);

    /* A Service with several ports has them all on each slice, in no
     * order the API promises: the serving ports are found by name. */
    int port = 0, first = 0, h2c_port = 0;
    const cJSON *ports = cJSON_GetObjectItemCaseSensitive(obj, "ports");
    if (!cJSON_IsArray(ports))
        ports = NULL;
    const cJSON *pe;
    int index = 0;
    cJSON_ArrayForEach(pe, ports)
    {
        const cJSON *pnum = cJSON_GetObjectItemCaseSensitive(pe, "port");
        if (index++ == 0 && cJSON_IsNumber(pnum))
            first = pnum->valueint;
        if (!cJSON_IsNumber(pnum))
            continue;
        const char *pname = json_str(pe, "name");
        if (pname && strcmp(pname, KP_KUBE_PORT_NAME_HTTP) == 0)
            port = pnum->valueint;
        else if (pname && strcmp(pname, KP_KUBE_PORT_NAME_H2C) == 0)
            h2c_port = pnum->valueint;
    }
    if (!port)
        port = first;

    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(obj, "endpoints");
    int count = cJSON_IsArray(eps) ? cJSON_GetArraySize(eps) : 0;
    if (count == 0)
        return 0;
    s->eps = calloc((size_t)count, sizeof(*s->eps));
    if (!s->eps)
        return -1;
    const cJSON *ep;
    cJSON_ArrayForEach(ep, eps)
    {
        const cJSON *addrs = cJSON_GetObjectItemCaseSensitive(ep, "addresses");
        const cJSON *a0 = cJSON_IsArray(addrs) ? cJSON_GetArrayItem(addrs, 0) : NULL;
        if (!cJSON_IsString(a0))
            continue;
        kp_kube_endpoint_t *e = &s->eps[s->n++];
        copy_str(e->ip, sizeof(e->ip), a0->valuestring);
        e->port = port;
        e->h2c_port = h2c_port;
        /* EndpointConditions: "nil should be interpreted as true". */
        const cJSON *cond = cJSON_GetObjectItemCaseSensitive(ep, "conditions");
        const cJSON *ready = cJSON_GetObjectItemCaseSensitive(cond, "ready");
        e->ready = cJSON_IsBool(ready) ? cJSON_IsTrue(ready) : 1;
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(ep, "targetRef");
        copy_str(e->pod, sizeof(e->pod), json_str(ref, "name"));
    }
    return 0;
}

void kp_kube_slice_free(kp_kube_slice_t *s)
{
    free(s->eps);
    s->eps = NULL;
    s->n = 0;
}

void kp_kube_slices_apply(kp_kube_slices_t *set, kp_kube_ev_type_t type, kp_kube_slice_t *s)
{
    size_t i;
    for (i = 0; i < set->n; i++)
        if (strcmp(set->items[i].name, s->name) == 0)
            break;
    if (type == KP_KUBE_EV_DELETED) {
        if (i < set->n) {
            kp_kube_slice_free(&set->items[i]);
            set->items[i] = set->items[--set->n];
        }
        kp_kube_slice_free(s);
        return;
    }
    if (type != KP_KUBE_EV_ADDED && type != KP_KUBE_EV_MODIFIED) {
        kp_kube_slice_free(s);
        return;
    }
    if (i < set->n) {
        kp_kube_slice_free(&set->items[i]);
    } else {
        if (set->n == set->cap) {
            size_t cap = set->cap ? set->cap * 2 : 4;
            kp_kube_slice_t *items = realloc(set->items, cap * sizeof(*items));
            if (!items) {
                kp_kube_slice_free(s);
                return;
            }
            set->items = items;
            set->cap = cap;
        }
        set->n++;
    }
    set->items[i] = *s;
    s->eps = NULL;
    s->n = 0;
}

void kp_kube_slices_clear(kp_kube_slices_t *set)
{
    for (size_t i = 0; i < set->n; i++)
        kp_kube_slice_free(&set->items[i]);
    free(set->items);
    set->items = NULL;
    set->n = set->cap = 0;
}

int kp_kube_slices_from_list(kp_kube_slices_t *set, const char *body, size_t len, char *rv,
                             size_t rv_len)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *items = root ? cJSON_GetObjectItemCaseSensitive(root, "items") : NULL;
    const cJSON *meta = root ? cJSON_GetObjectItemCaseSensitive(root, "metadata") : NULL;
    if (!cJSON_IsArray(items) && !cJSON_IsNull(items)) {
        cJSON_Delete(root);
        return -1;
    }
    kp_kube_slices_clear(set);
    copy_str(rv, rv_len, json_str(meta, "resourceVersion"));
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        kp_kube_slice_t s;
        if (kp_kube_slice_parse(it, &s) == 0)
            kp_kube_slices_apply(set, KP_KUBE_EV_ADDED, &s);
        else
            kp_kube_slice_free(&s);
    }
    cJSON_Delete(root);
    return 0;
}

static int ep_cmp(const void *a, const void *b)
{
    const kp_kube_endpoint_t *x = a, *y = b;
    int c = strcmp(x->ip, y->ip);
    return c ? c : (x->port > y->port) - (x->port < y->port);
}

int kp_kube_slices_merge(const kp_kube_slices_t *set, kp_kube_endpoint_t **out, size_t *n)
{
    size_t total = 0;
    for (size_t i = 0; i < set->n; i++)
        total += set->items[i].n;
    *out = NULL;
    *n = 0;
    if (total == 0)
        return 0;
    kp_kube_endpoint_t *all = malloc(total * sizeof(*all));
    if (!all)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < set->n; i++) {
        /* An empty slice (a service scaled to zero) has eps NULL, and
         * memcpy from NULL is undefined even for 0 bytes (C11 7.24.1). */
        if (set->items[i].n == 0)
            continue;
        memcpy(all + k, set->items[i].eps, set->items[i].n * sizeof(*all));
        k += set->items[i].n;
    }
    qsort(all, total, sizeof(*all), ep_cmp);
    /* An address may sit in two slices while the controller moves it. */
    size_t m = 0;
    for (size_t i = 0; i < total; i++) {
        if (m > 0 && ep_cmp(&all[m - 1], &all[i]) == 0) {
            all[m - 1].ready |= all[i].ready;
            if (!all[m - 1].pod[0])
                memcpy(all[m - 1].pod, all[i].pod, sizeof(all[i].pod));
            continue;
        }
        all[m++] = all[i];
    }
    *out = all;
    *n = m;
    return 0;
}

/* --- Leases --- */

int kp_kube_microtime_parse(const char *s, double *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int consumed = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const char *p = s + consumed;
    double frac = 0, scale = 0.1;
    if (*p == '.') {
        for (p++; isdigit((unsigned char)*p); p++, scale /= 10)
            frac += (*p - '0') * scale;
    }
    double offset = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        /* RFC 3339 time-numoffset: exactly "hh:mm" (checked char by char,
         * so a short one cannot move p past the end). */
        if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]) || p[3] != ':' ||
            !isdigit((unsigned char)p[4]) || !isdigit((unsigned char)p[5]))
            return -1;
        int hh = (p[1] - '0') * 10 + (p[2] - '0'), mm = (p[4] - '0') * 10 + (p[5] - '0');
        offset = (*p == '+' ? 1 : -1) * (hh * 3600.0 + mm * 60.0);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    *t = (double)timegm(&tm) + frac - offset;
    return 0;
}

void kp_kube_microtime_format(double t, char *out, size_t out_len)
{
    time_t secs = (time_t)t;
    long usec = (long)((t - (double)secs) * 1e6);
    if (usec < 0)
        usec = 0;
    if (usec > 999999)
        usec = 999999;
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, out_len, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
}

int kp_kube_lease_parse(const char *body, size_t len, kp_kube_lease_t *l)
{
    memset(l, 0, sizeof(*l));
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root)
        return -1;
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(root, "spec");
    copy_str(l->resource_version, sizeof(l->resource_version), json_str(meta, "resourceVersion"));
    copy_str(l->holder, sizeof(l->holder), json_str(spec, "holderIdentity"));
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(spec, "leaseDurationSeconds");
    l->duration_s = cJSON_IsNumber(d) ? d->valueint : 0;
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(spec, "leaseTransitions");
    l->transitions = cJSON_IsNumber(tr) ? tr->valueint : 0;
    const char *rt = json_str(spec, "renewTime");
    if (rt && kp_kube_microtime_parse(rt, &l->renew_time) != 0)
        l->renew_time = 0;
    const char *at = json_str(spec, "acquireTime");
    if (at && kp_kube_microtime_parse(at, &l->acquire_time) != 0)
        l->acquire_time = 0;
    cJSON_Delete(root);
    return 0;
}

char *kp_kube_lease_json(const char *ns, const char *name, const char *holder, int duration_s,
                         double acquire_time, double renew_time, int transitions,
                         const char *resource_version)
{
    char at[40], rt[40];
    kp_kube_microtime_format(acquire_time, at, sizeof(at));
    kp_kube_microtime_format(renew_time, rt, sizeof(rt));
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_strbuf_puts(&sb, "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
                        "\"metadata\":{\"name\":\"");
    kp_strbuf_json_escape(&sb, name, strlen(name));
    kp_strbuf_puts(&sb, "\",\"namespace\":\"");
    kp_strbuf_json_escape(&sb, ns, strlen(ns));
    kp_strbuf_puts(&sb, "\"");
    if (resource_version && resource_version[0]) {
        kp_strbuf_puts(&sb, ",\"resourceVersion\":\"");
        kp_strbuf_json_escape(&sb, resource_version, strlen(resource_version));
        kp_strbuf_puts(&sb, "\"");
    }
    kp_strbuf_puts(&sb, "},\"spec\":{\"holderIdentity\":\"");
    kp_strbuf_json_escape(&sb, holder, strlen(holder));
    kp_strbuf_printf(&sb,
                     "\",\"leaseDurationSeconds\":%d,\"acquireTime\":\"%s\","
                     "\"renewTime\":\"%s\",\"leaseTransitions\":%d}}",
                     duration_s, at, rt, transitions);
    return kp_strbuf_detach(&sb, NULL);
}
