/* Tests for the pure parts of common/kube's informers: the name-keyed
 * table (map.c), object paths (path.c), and the cache with the events a
 * watch line or a (re)list makes of it (informer_cache.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kube/internal.h"

/* --- map --- */

static void map_holds_thousands_and_finds_each(void **state)
{
    kp_kube_map_t m = {0};
    enum { N = 5000 };
    static int values[N];
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "object-%d", i);
        values[i] = i;
        assert_int_equal(kp_kube_map_put(&m, key, &values[i]), 0);
    }
    assert_int_equal(m.n, N);
    assert_true(m.n_buckets >= N); /* load at most 1: O(1) chains */
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "object-%d", i);
        int *v = kp_kube_map_get(&m, key);
        assert_non_null(v);
        assert_int_equal(*v, i);
    }
    assert_null(kp_kube_map_get(&m, "object-5000"));
    /* Replacing keeps one entry. */
    assert_int_equal(kp_kube_map_put(&m, "object-7", &values[9]), 0);
    assert_int_equal(m.n, N);
    assert_ptr_equal(kp_kube_map_get(&m, "object-7"), &values[9]);
    /* Every entry once in a walk. */
    kp_kube_map_iter_t it = {0};
    const char *k;
    void *v;
    size_t walked = 0;
    long sum = 0;
    while (kp_kube_map_next(&m, &it, &k, &v)) {
        walked++;
        sum += *(int *)v;
    }
    assert_int_equal(walked, N);
    assert_int_equal(sum, (long)N * (N - 1) / 2 - 7 + 9);
    for (int i = 0; i < N; i += 2) {
        snprintf(key, sizeof key, "object-%d", i);
        assert_non_null(kp_kube_map_remove(&m, key));
    }
    assert_null(kp_kube_map_remove(&m, "object-0"));
    assert_int_equal(m.n, N / 2);
    assert_null(kp_kube_map_get(&m, "object-10"));
    assert_non_null(kp_kube_map_get(&m, "object-11"));
    kp_kube_map_free(&m);
    assert_null(kp_kube_map_get(&m, "object-11"));
}

/* --- paths --- */

static void paths_for_core_and_named_groups(void **state)
{
    char p[256];
    kp_kube_resource_t pods = {"", "v1", "pods", "Pod"};
    kp_kube_resource_t ksvc = {"serving.knative.dev", "v1", "services", "Service"};
    assert_int_equal(kp_kube_object_path(&pods, "default", NULL, NULL, p, sizeof p), 0);
    assert_string_equal(p, "/api/v1/namespaces/default/pods");
    assert_int_equal(kp_kube_object_path(&pods, "ns", "web", NULL, p, sizeof p), 0);
    assert_string_equal(p, "/api/v1/namespaces/ns/pods/web");
    assert_int_equal(kp_kube_object_path(&ksvc, "ns", "hello", "status", p, sizeof p), 0);
    assert_string_equal(p, "/apis/serving.knative.dev/v1/namespaces/ns/services/hello/status");
    assert_int_equal(kp_kube_object_path(&ksvc, "ns", "hello", "status", p, 20), -1);
    kp_kube_resource_name(&ksvc, p, sizeof p);
    assert_string_equal(p, "services.serving.knative.dev");
    kp_kube_resource_name(&pods, p, sizeof p);
    assert_string_equal(p, "pods");
}

static void query_values_are_percent_encoded(void **state)
{
    char q[128];
    assert_int_equal(kp_kube_query_escape("kubernetes.io/service-name", q, sizeof q), 0);
    assert_string_equal(q, "kubernetes.io%2Fservice-name");
    assert_int_equal(kp_kube_query_escape("app=web,tier!=db,!x", q, sizeof q), 0);
    assert_string_equal(q, "app%3Dweb%2Ctier%21%3Ddb%2C%21x");
    assert_int_equal(kp_kube_query_escape("a b&c", q, sizeof q), 0);
    assert_string_equal(q, "a%20b%26c");
    assert_int_equal(kp_kube_query_escape("a/b", q, 4), -1);
    assert_int_equal(kp_kube_query_escape("", q, sizeof q), 0);
    assert_string_equal(q, "");
}

/* --- cache --- */

typedef struct seen {
    int n;
    kp_kube_informer_event_t ev[64];
    char name[64][64], rv[64][16], old_rv[64][16];
    int cached_ok[64]; /* the cache already says what the event says */
    int stop_at;       /* 1-based: emit says stop at that event */
    kp_kube_cache_t *cache;
} seen_t;

static const char *meta(const cJSON *o, const char *key)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "metadata");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int record(void *ctx, kp_kube_informer_event_t ev, const cJSON *obj, const cJSON *old)
{
    seen_t *s = ctx;
    assert_true(s->n < 64);
    int i = s->n++;
    s->ev[i] = ev;
    snprintf(s->name[i], sizeof s->name[i], "%s", meta(obj, "name"));
    snprintf(s->rv[i], sizeof s->rv[i], "%s", meta(obj, "resourceVersion"));
    snprintf(s->old_rv[i], sizeof s->old_rv[i], "%s", old ? meta(old, "resourceVersion") : "-");
    assert_true((ev == KP_INFORMER_ADDED) == (old == NULL));
    const cJSON *c = kp_kube_cache_get(s->cache, s->name[i]);
    s->cached_ok[i] = ev == KP_INFORMER_DELETED ? c == NULL : c == obj;
    return s->stop_at && s->n == s->stop_at;
}

static cJSON *obj(const char *name, const char *rv)
{
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"metadata\":{\"name\":\"%s\",\"resourceVersion\":\"%s\","
             "\"managedFields\":[{\"manager\":\"kubectl\"}]},\"spec\":{\"x\":1}}",
             name, rv);
    cJSON *o = cJSON_Parse(buf);
    assert_non_null(o);
    return o;
}

/* A watch line as the API sends it, through kp_kube_event_parse, as
 * informer.c feeds the cache. */
static int line(kp_kube_cache_t *c, seen_t *s, const char *text)
{
    kp_kube_event_t ev;
    assert_int_equal(kp_kube_event_parse(text, strlen(text), &ev), 0);
    cJSON *o = cJSON_DetachItemFromObjectCaseSensitive(ev.root, "object");
    int rc = kp_kube_cache_apply(c, ev.type, o, record, s);
    kp_kube_event_free(&ev);
    return rc;
}

static void watch_events_become_added_updated_deleted(void **state)
{
    kp_kube_cache_t c = {0};
    seen_t s = {.cache = &c};
    line(&c, &s,
         "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\","
         "\"resourceVersion\":\"10\",\"managedFields\":[{}]}}}");
    /* The same version again (a watch resumed from an older point): no event. */
    line(&c, &s,
         "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\","
         "\"resourceVersion\":\"10\"}}}");
    line(&c, &s,
         "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\","
         "\"resourceVersion\":\"10\"}}}");
    line(&c, &s,
         "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\","
         "\"resourceVersion\":\"11\"}}}");
    /* MODIFIED of a name never seen is news: ADDED. */
    line(&c, &s,
         "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"b\","
         "\"resourceVersion\":\"12\"}}}");
    line(&c, &s,
         "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\","
         "\"resourceVersion\":\"13\"}}}");
    /* DELETED of a name not cached: nothing to say. */
    line(&c, &s,
         "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"zz\","
         "\"resourceVersion\":\"14\"}}}");
    assert_int_equal(line(&c, &s, "{\"type\":\"ADDED\",\"object\":{\"metadata\":{}}}"), -1);

    assert_int_equal(s.n, 4);
    assert_int_equal(s.ev[0], KP_INFORMER_ADDED);
    assert_string_equal(s.name[0], "a");
    assert_string_equal(s.old_rv[0], "-");
    assert_int_equal(s.ev[1], KP_INFORMER_UPDATED);
    assert_string_equal(s.rv[1], "11");
    assert_string_equal(s.old_rv[1], "10");
    assert_int_equal(s.ev[2], KP_INFORMER_ADDED);
    assert_string_equal(s.name[2], "b");
    assert_int_equal(s.ev[3], KP_INFORMER_DELETED);
    assert_string_equal(s.rv[3], "13");     /* its last state */
    assert_string_equal(s.old_rv[3], "11"); /* what the cache held */
    for (int i = 0; i < s.n; i++)
        assert_true(s.cached_ok[i]);
    assert_int_equal(kp_kube_cache_count(&c), 1);
    const cJSON *b = kp_kube_cache_get(&c, "b");
    assert_non_null(b);
    assert_null(kp_kube_cache_get(&c, "a"));
    kp_kube_cache_clear(&c);
}

static void cached_objects_lose_managed_fields(void **state)
{
    kp_kube_cache_t c = {0};
    seen_t s = {.cache = &c};
    kp_kube_cache_apply(&c, KP_KUBE_EV_ADDED, obj("a", "1"), record, &s);
    const cJSON *a = kp_kube_cache_get(&c, "a");
    assert_non_null(a);
    assert_false(cJSON_HasObjectItem(cJSON_GetObjectItem(a, "metadata"), "managedFields"));
    assert_non_null(cJSON_GetObjectItem(a, "spec"));
    kp_kube_cache_clear(&c);
}

static cJSON *list_of(const char *const *names, const char *const *rvs, int n)
{
    cJSON *items = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(items, obj(names[i], rvs[i]));
    return items;
}

static void relist_delivers_only_the_difference(void **state)
{
    kp_kube_cache_t c = {0};
    seen_t s = {.cache = &c};
    const char *n1[] = {"keep", "change", "drop"}, *r1[] = {"1", "2", "3"};
    assert_int_equal(kp_kube_cache_replace(&c, list_of(n1, r1, 3), record, &s), 0);
    assert_int_equal(s.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s.ev[i], KP_INFORMER_ADDED);
        assert_string_equal(s.name[i], n1[i]); /* in the list's order */
    }
    memset(&s, 0, sizeof s);
    s.cache = &c;
    const char *n2[] = {"new", "change", "keep"}, *r2[] = {"9", "8", "1"};
    assert_int_equal(kp_kube_cache_replace(&c, list_of(n2, r2, 3), record, &s), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.ev[0], KP_INFORMER_ADDED);
    assert_string_equal(s.name[0], "new");
    assert_int_equal(s.ev[1], KP_INFORMER_UPDATED);
    assert_string_equal(s.name[1], "change");
    assert_string_equal(s.old_rv[1], "2");
    assert_string_equal(s.rv[1], "8");
    assert_int_equal(s.ev[2], KP_INFORMER_DELETED);
    assert_string_equal(s.name[2], "drop");
    assert_string_equal(s.rv[2], "3");
    for (int i = 0; i < s.n; i++)
        assert_true(s.cached_ok[i]);
    assert_int_equal(kp_kube_cache_count(&c), 3);
    /* The same list again: nothing happened. */
    memset(&s, 0, sizeof s);
    s.cache = &c;
    assert_int_equal(kp_kube_cache_replace(&c, list_of(n2, r2, 3), record, &s), 0);
    assert_int_equal(s.n, 0);
    /* An empty list: everything went. */
    assert_int_equal(kp_kube_cache_replace(&c, cJSON_CreateArray(), record, &s), 0);
    assert_int_equal(s.n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s.ev[i], KP_INFORMER_DELETED);
    assert_int_equal(kp_kube_cache_count(&c), 0);
    kp_kube_cache_clear(&c);
}

static void a_stop_during_a_relist_delivers_nothing_more(void **state)
{
    kp_kube_cache_t c = {0};
    seen_t s = {.cache = &c, .stop_at = 2};
    const char *n1[] = {"a", "b", "c", "d"}, *r1[] = {"1", "1", "1", "1"};
    assert_int_equal(kp_kube_cache_replace(&c, list_of(n1, r1, 4), record, &s), 1);
    assert_int_equal(s.n, 2);
    kp_kube_cache_clear(&c);

    /* Stopped while the gone ones are told. */
    kp_kube_cache_t d = {0};
    seen_t t = {.cache = &d};
    kp_kube_cache_replace(&d, list_of(n1, r1, 4), record, &t);
    memset(&t, 0, sizeof t);
    t.cache = &d;
    t.stop_at = 1;
    assert_int_equal(kp_kube_cache_replace(&d, cJSON_CreateArray(), record, &t), 1);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.ev[0], KP_INFORMER_DELETED);
    kp_kube_cache_clear(&d); /* ASan: nothing leaks either way */
}

static void count_obj(void *ctx, const cJSON *o)
{
    (*(int *)ctx)++;
}

static int ignore(void *ctx, kp_kube_informer_event_t ev, const cJSON *o, const cJSON *old)
{
    return 0;
}

static void thousands_of_objects_are_found_by_name(void **state)
{
    kp_kube_cache_t c = {0};
    enum { N = 3000 };
    cJSON *items = cJSON_CreateArray();
    char name[32], rv[16];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "rev-%05d", i);
        snprintf(rv, sizeof rv, "%d", i + 1);
        cJSON_AddItemToArray(items, obj(name, rv));
    }
    assert_int_equal(kp_kube_cache_replace(&c, items, ignore, NULL), 0);
    assert_int_equal(kp_kube_cache_count(&c), N);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "rev-%05d", i);
        const cJSON *o = kp_kube_cache_get(&c, name);
        assert_non_null(o);
        assert_string_equal(meta(o, "name"), name);
    }
    int walked = 0;
    kp_kube_cache_each(&c, count_obj, &walked);
    assert_int_equal(walked, N);
    kp_kube_cache_clear(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(map_holds_thousands_and_finds_each),
        cmocka_unit_test(paths_for_core_and_named_groups),
        cmocka_unit_test(query_values_are_percent_encoded),
        cmocka_unit_test(watch_events_become_added_updated_deleted),
        cmocka_unit_test(cached_objects_lose_managed_fields),
        cmocka_unit_test(relist_delivers_only_the_difference),
        cmocka_unit_test(a_stop_during_a_relist_delivers_nothing_more),
        cmocka_unit_test(thousands_of_objects_are_found_by_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
