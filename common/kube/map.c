/* A string-keyed hash table (FNV-1a, chained, doubled at load 1): the
 * informer's cache by name and the endpoint watches' services by name,
 * so lookups stay O(1) with thousands of objects. Pure, no I/O. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAP_MIN_BUCKETS 16

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static kp_kube_map_entry_t *find(const kp_kube_map_t *m, const char *key, uint32_t h)
{
    if (!m->n_buckets)
        return NULL;
    for (kp_kube_map_entry_t *e = m->buckets[h & (m->n_buckets - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

void *kp_kube_map_get(const kp_kube_map_t *m, const char *key)
{
    kp_kube_map_entry_t *e = find(m, key, hash_str(key));
    return e ? e->value : NULL;
}

static int grow(kp_kube_map_t *m)
{
    size_t nb = m->n_buckets ? m->n_buckets * 2 : MAP_MIN_BUCKETS;
    kp_kube_map_entry_t **b = calloc(nb, sizeof(*b));
    if (!b)
        return -1;
    for (size_t i = 0; i < m->n_buckets; i++) {
        for (kp_kube_map_entry_t *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = nb;
    return 0;
}

int kp_kube_map_put(kp_kube_map_t *m, const char *key, void *value)
{
    uint32_t h = hash_str(key);
    kp_kube_map_entry_t *e = find(m, key, h);
    if (e) {
        e->value = value;
        return 0;
    }
    /* A failed grow only makes the chains longer. */
    if (m->n >= m->n_buckets && grow(m) != 0 && !m->n_buckets)
        return -1;
    e = malloc(sizeof(*e));
    if (!e)
        return -1;
    e->key = strdup(key);
    if (!e->key) {
        free(e);
        return -1;
    }
    e->value = value;
    e->hash = h;
    size_t i = h & (m->n_buckets - 1);
    e->next = m->buckets[i];
    m->buckets[i] = e;
    m->n++;
    return 0;
}

void *kp_kube_map_remove(kp_kube_map_t *m, const char *key)
{
    if (!m->n_buckets)
        return NULL;
    uint32_t h = hash_str(key);
    for (kp_kube_map_entry_t **p = &m->buckets[h & (m->n_buckets - 1)]; *p; p = &(*p)->next) {
        kp_kube_map_entry_t *e = *p;
        if (e->hash == h && strcmp(e->key, key) == 0) {
            void *v = e->value;
            *p = e->next;
            free(e->key);
            free(e);
            m->n--;
            return v;
        }
    }
    return NULL;
}

int kp_kube_map_next(const kp_kube_map_t *m, kp_kube_map_iter_t *it, const char **key, void **value)
{
    kp_kube_map_entry_t *e = it->entry ? it->entry->next : NULL;
    size_t b = it->entry ? it->bucket + 1 : it->bucket;
    while (!e && b < m->n_buckets)
        e = m->buckets[b++];
    if (!e)
        return 0;
    it->entry = e;
    it->bucket = b - 1;
    *key = e->key;
    *value = e->value;
    return 1;
}

void kp_kube_map_free(kp_kube_map_t *m)
{
    for (size_t i = 0; i < m->n_buckets; i++) {
        for (kp_kube_map_entry_t *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e->key);
            free(e);
        }
    }
    free(m->buckets);
    m->buckets = NULL;
    m->n_buckets = m->n = 0;
}
