/* Fuzzes an informer's cache (common/kube/informer_cache.c) the way
 * informer.c drives it: a watch stream split into lines in chunks, each
 * event applied to the cache, then the same bytes as a List replacing
 * it. Oracles: every event agrees with the cache at the time it is
 * delivered (ADDED and UPDATED find the object cached, DELETED no longer
 * does; old is given exactly when the name was cached), the count
 * follows the events, and a second replace with the same list is silent.
 * Input: the first byte picks the chunk size, the rest is the stream. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kube/internal.h"

typedef struct fuzz_state {
    kp_kube_cache_t cache;
    long count; /* what the events say the cache holds */
    unsigned events;
} fuzz_state_t;

static const char *name_of(const cJSON *obj)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(meta, "name");
    return cJSON_IsString(n) ? n->valuestring : NULL;
}

static int check_event(void *ctx, kp_kube_informer_event_t ev, const cJSON *obj, const cJSON *old)
{
    fuzz_state_t *s = ctx;
    const char *name = name_of(obj);
    if (!name || !name[0])
        abort();
    const cJSON *cached = kp_kube_cache_get(&s->cache, name);
    switch (ev) {
    case KP_INFORMER_ADDED:
        if (old || cached != obj)
            abort();
        s->count++;
        break;
    case KP_INFORMER_UPDATED:
        if (!old || cached != obj)
            abort();
        break;
    case KP_INFORMER_DELETED:
        if (!old || cached)
            abort();
        s->count--;
        break;
    }
    if ((size_t)s->count != kp_kube_cache_count(&s->cache))
        abort();
    s->events++;
    return 0;
}

static int never(void *ctx, kp_kube_informer_event_t ev, const cJSON *obj, const cJSON *old)
{
    abort();
}

static int on_line(void *ctx, const char *line, size_t len)
{
    fuzz_state_t *s = ctx;
    kp_kube_event_t ev;
    if (kp_kube_event_parse(line, len, &ev) != 0)
        return 0;
    if (ev.type == KP_KUBE_EV_ADDED || ev.type == KP_KUBE_EV_MODIFIED ||
        ev.type == KP_KUBE_EV_DELETED) {
        cJSON *obj = cJSON_DetachItemFromObjectCaseSensitive(ev.root, "object");
        kp_kube_cache_apply(&s->cache, ev.type, obj, check_event, s);
    }
    kp_kube_event_free(&ev);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = (size_t)data[0] % 64 + 1;
    const char *stream = (const char *)data + 1;
    size_t len = size - 1;

    fuzz_state_t s;
    memset(&s, 0, sizeof s);
    kp_kube_lines_t lines = {0};
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        if (kp_kube_lines_feed(&lines, stream + off, n, on_line, &s) != 0)
            break;
    }
    kp_kube_lines_free(&lines);

    /* The same bytes as a List: the difference against what the stream
     * left, then the same list again, which changes nothing. Names that
     * repeat in a list, or objects without one, must not break that. */
    cJSON *root = cJSON_ParseWithLength(stream, len);
    cJSON *items = root ? cJSON_GetObjectItemCaseSensitive(root, "items") : NULL;
    if (cJSON_IsArray(items)) {
        kp_kube_cache_replace(&s.cache, cJSON_Duplicate(items, 1), check_event, &s);
        /* Silent only when every object can be told unchanged: each name
         * once, each with a resourceVersion to compare. */
        int unique = 1;
        cJSON *a, *b;
        cJSON_ArrayForEach(a, items)
        {
            const char *na = name_of(a);
            if (!na || !na[0])
                continue;
            const cJSON *meta = cJSON_GetObjectItemCaseSensitive(a, "metadata");
            const cJSON *rv = cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion");
            if (!cJSON_IsString(rv) || !rv->valuestring[0])
                unique = 0;
            for (b = a->next; b && unique; b = b->next) {
                const char *nb = name_of(b);
                if (nb && strcmp(na, nb) == 0)
                    unique = 0;
            }
        }
        if (unique)
            kp_kube_cache_replace(&s.cache, cJSON_Duplicate(items, 1), never, NULL);
    }
    cJSON_Delete(root);
    kp_kube_cache_clear(&s.cache);
    return 0;
}
