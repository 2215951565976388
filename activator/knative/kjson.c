/* cJSON helpers for the Knative objects. See kjson.h. */
#define _GNU_SOURCE
#include "kjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const cJSON *kn_json_child(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

const cJSON *kn_json_at(const cJSON *obj, const char *path)
{
    char key[128];
    while (obj && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        obj = kn_json_child(obj, key);
        path += n + (dot ? 1 : 0);
    }
    return obj;
}

const char *kn_json_str(const cJSON *obj, const char *path, const char *def)
{
    const cJSON *v = kn_json_at(obj, path);
    return cJSON_IsString(v) ? v->valuestring : def;
}

long long kn_json_int(const cJSON *obj, const char *path, long long def)
{
    const cJSON *v = kn_json_at(obj, path);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : def;
}

const char *kn_json_label(const cJSON *obj, const char *key)
{
    const cJSON *v = kn_json_child(kn_json_at(obj, "metadata.labels"), key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *kn_json_annotation(const cJSON *obj, const char *key)
{
    const cJSON *v = kn_json_child(kn_json_at(obj, "metadata.annotations"), key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

cJSON *kn_json_obj(cJSON *obj, const char *key)
{
    if (!obj)
        return NULL;
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v)
        return cJSON_IsObject(v) ? v : NULL;
    v = cJSON_CreateObject();
    if (v && !cJSON_AddItemToObject(obj, key, v)) {
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

static int set_item(cJSON *obj, const char *key, cJSON *v)
{
    if (!obj || !v) {
        cJSON_Delete(v);
        return -1;
    }
    if (cJSON_GetObjectItemCaseSensitive(obj, key))
        return cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v) ? 0 : -1;
    if (!cJSON_AddItemToObject(obj, key, v)) {
        cJSON_Delete(v);
        return -1;
    }
    return 0;
}

int kn_json_set_str(cJSON *obj, const char *key, const char *s)
{
    return set_item(obj, key, cJSON_CreateString(s));
}

int kn_json_set_int(cJSON *obj, const char *key, long long v)
{
    return set_item(obj, key, cJSON_CreateNumber((double)v));
}

int kn_json_set_bool(cJSON *obj, const char *key, int v)
{
    return set_item(obj, key, cJSON_CreateBool(v));
}

int kn_json_set_copy(cJSON *obj, const char *key, const cJSON *v)
{
    return set_item(obj, key, cJSON_Duplicate(v, 1));
}

int kn_json_covers(const cJSON *live, const cJSON *want)
{
    if (!want)
        return 1;
    if (!live)
        return 0;
    if (cJSON_IsObject(want)) {
        if (!cJSON_IsObject(live))
            return 0;
        const cJSON *w;
        cJSON_ArrayForEach(w, want)
        {
            if (!kn_json_covers(cJSON_GetObjectItemCaseSensitive(live, w->string), w))
                return 0;
        }
        return 1;
    }
    if (cJSON_IsArray(want)) {
        if (!cJSON_IsArray(live) || cJSON_GetArraySize(live) != cJSON_GetArraySize(want))
            return 0;
        const cJSON *l = live->child, *w = want->child;
        for (; w; w = w->next, l = l->next)
            if (!kn_json_covers(l, w))
                return 0;
        return 1;
    }
    return cJSON_Compare(live, want, 1);
}

void kn_time_format(time_t t, char *out, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int kn_time_parse(const char *s, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!s)
        return -1;
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        return -1;
    if (*rest == '.')
        for (rest++; *rest >= '0' && *rest <= '9'; rest++)
            ;
    long offset = 0;
    if (*rest == '+' || *rest == '-') {
        int hh, mm;
        if (sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2)
            return -1;
        offset = (hh * 3600L + mm * 60L) * (*rest == '+' ? 1 : -1);
    } else if (*rest != 'Z' && *rest != 'z') {
        return -1;
    }
    *out = timegm(&tm) - offset;
    return 0;
}
