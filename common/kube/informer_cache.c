/* An informer's cache: objects by name, and the events a watch event or
 * a new list makes of it (client-go's indexer and DeltaFIFO.Replace, in
 * small): replays are recognised by their resourceVersion, a relist's
 * difference is delivered as ADDED, UPDATED and DELETED. Pure, no I/O:
 * tests/unit/test_kube_informer.c drives it with canned JSON. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct kp_kube_cache_obj {
    cJSON *obj;
    unsigned generation; /* the list that last held it */
} kp_kube_cache_obj_t;

static const char *meta_str(const cJSON *obj, const char *key)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int same_version(const cJSON *a, const cJSON *b)
{
    const char *ra = meta_str(a, "resourceVersion"), *rb = meta_str(b, "resourceVersion");
    return ra && rb && ra[0] && strcmp(ra, rb) == 0;
}

/* managedFields is often half of an object and nothing here reads it. */
static void strip(cJSON *obj)
{
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    if (cJSON_IsObject(meta))
        cJSON_DeleteItemFromObjectCaseSensitive(meta, "managedFields");
}

static void entry_free(kp_kube_cache_obj_t *e)
{
    cJSON_Delete(e->obj);
    free(e);
}

/* Stores obj (taken) under its name; emits what it means. */
static int store(kp_kube_cache_t *c, cJSON *obj, kp_kube_cache_emit emit, void *ctx)
{
    const char *name = meta_str(obj, "name");
    if (!name || !name[0]) {
        cJSON_Delete(obj);
        return -1;
    }
    strip(obj);
    kp_kube_cache_obj_t *e = kp_kube_map_get(&c->objects, name);
    if (e) {
        e->generation = c->generation;
        if (same_version(e->obj, obj)) {
            cJSON_Delete(obj);
            return 0;
        }
        cJSON *old = e->obj;
        e->obj = obj;
        int rc = emit(ctx, KP_INFORMER_UPDATED, obj, old);
        cJSON_Delete(old);
        return rc;
    }
    e = malloc(sizeof(*e));
    if (!e || kp_kube_map_put(&c->objects, name, e) != 0) {
        free(e);
        cJSON_Delete(obj);
        return 0; /* out of memory: the next relist brings it again */
    }
    e->obj = obj;
    e->generation = c->generation;
    return emit(ctx, KP_INFORMER_ADDED, obj, NULL);
}

static int drop(kp_kube_cache_t *c, const char *name, const cJSON *last, kp_kube_cache_emit emit,
                void *ctx)
{
    kp_kube_cache_obj_t *e = kp_kube_map_remove(&c->objects, name);
    if (!e)
        return 0;
    int rc = emit(ctx, KP_INFORMER_DELETED, last ? last : e->obj, e->obj);
    entry_free(e);
    return rc;
}

int kp_kube_cache_apply(kp_kube_cache_t *c, kp_kube_ev_type_t type, cJSON *obj,
                        kp_kube_cache_emit emit, void *ctx)
{
    if (type == KP_KUBE_EV_ADDED || type == KP_KUBE_EV_MODIFIED)
        return store(c, obj, emit, ctx);
    int rc = 0;
    if (type == KP_KUBE_EV_DELETED) {
        const char *name = meta_str(obj, "name");
        if (!name || !name[0]) {
            rc = -1;
        } else {
            strip(obj);
            rc = drop(c, name, obj, emit, ctx);
        }
    }
    cJSON_Delete(obj);
    return rc;
}

int kp_kube_cache_replace(kp_kube_cache_t *c, cJSON *items, kp_kube_cache_emit emit, void *ctx)
{
    c->generation++;
    int rc = 0;
    while (rc <= 0 && cJSON_IsArray(items) && items->child) {
        cJSON *it = cJSON_DetachItemViaPointer(items, items->child);
        rc = store(c, it, emit, ctx);
    }
    cJSON_Delete(items);
    if (rc > 0)
        return rc;
    /* What the list lacks is gone; names first, as removing while
     * walking the table is not allowed. */
    size_t n_gone = 0;
    char **gone = NULL;
    kp_kube_map_iter_t iter = {0};
    const char *key;
    void *value;
    while (kp_kube_map_next(&c->objects, &iter, &key, &value)) {
        kp_kube_cache_obj_t *e = value;
        if (e->generation == c->generation)
            continue;
        /* Out of memory: what is left stays until the next relist. */
        char **g = realloc(gone, (n_gone + 1) * sizeof(*g));
        if (!g)
            break;
        gone = g;
        if (!(gone[n_gone] = strdup(key)))
            break;
        n_gone++;
    }
    rc = 0;
    for (size_t i = 0; i < n_gone; i++) {
        if (rc == 0)
            rc = drop(c, gone[i], NULL, emit, ctx);
        free(gone[i]);
    }
    free(gone);
    return rc > 0 ? rc : 0;
}

const cJSON *kp_kube_cache_get(const kp_kube_cache_t *c, const char *name)
{
    kp_kube_cache_obj_t *e = name ? kp_kube_map_get(&c->objects, name) : NULL;
    return e ? e->obj : NULL;
}

size_t kp_kube_cache_count(const kp_kube_cache_t *c)
{
    return c->objects.n;
}

void kp_kube_cache_each(const kp_kube_cache_t *c, void (*fn)(void *ctx, const cJSON *obj),
                        void *ctx)
{
    kp_kube_map_iter_t iter = {0};
    const char *key;
    void *value;
    while (kp_kube_map_next(&c->objects, &iter, &key, &value))
        fn(ctx, ((kp_kube_cache_obj_t *)value)->obj);
}

void kp_kube_cache_clear(kp_kube_cache_t *c)
{
    kp_kube_map_iter_t iter = {0};
    const char *key;
    void *value;
    while (kp_kube_map_next(&c->objects, &iter, &key, &value))
        entry_free(value);
    kp_kube_map_free(&c->objects);
}
