/* Maps a request to a revision: Knative's revision headers, or the Host's
 * first two labels ({service}.{namespace} or {tag}-{service}.{namespace},
 * whatever domain follows) through hash tables built once, then the traffic
 * split through a 100-slot table, so a lookup allocates nothing. */
#include "router.h"

#include <stdlib.h>
#include <string.h>

/* One host key "{label}.{namespace}" or revision key "{revision}.{ns}".
 * Both halves are DNS labels (no '.'), so joining them with '.' is
 * unambiguous. */
typedef struct router_entry {
    char *key; /* NULL for an empty slot */
    size_t key_len;
    uint32_t hash;
    const kp_service_spec_t *service;   /* host table */
    const kp_revision_spec_t *revision; /* set for tag hosts and revisions */
    const char *tag;
} router_entry_t;

typedef struct router_table {
    router_entry_t *slots;
    size_t mask; /* capacity - 1, capacity a power of two */
} router_table_t;

/* Each percent point of a service's split names its revision, so a pick is
 * one index: random % 100. */
typedef struct router_split {
    const kp_service_spec_t *service;
    const kp_revision_spec_t *slot[100];
} router_split_t;

struct kp_router {
    router_table_t hosts;     /* service and tag hosts */
    router_table_t revisions; /* header routing */
    router_split_t *splits;   /* one per service, same order as cfg */
    const kp_activator_config_t *cfg;
};

static inline unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* FNV-1a over "a.b", case-folded. */
static uint32_t key_hash(const char *a, size_t alen, const char *b, size_t blen)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < alen; i++)
        h = (h ^ lower((unsigned char)a[i])) * 16777619u;
    h = (h ^ '.') * 16777619u;
    for (size_t i = 0; i < blen; i++)
        h = (h ^ lower((unsigned char)b[i])) * 16777619u;
    return h;
}

/* Stored keys are lower case (DNS labels); the probe may be any case. */
static int key_equal(const router_entry_t *e, const char *a, size_t alen, const char *b,
                     size_t blen)
{
    if (e->key_len != alen + 1 + blen || e->key[alen] != '.')
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (e->key[i] != (char)lower((unsigned char)a[i]))
            return 0;
    for (size_t i = 0; i < blen; i++)
        if (e->key[alen + 1 + i] != (char)lower((unsigned char)b[i]))
            return 0;
    return 1;
}

static int table_init(router_table_t *t, size_t n)
{
    size_t cap = 8;
    while (cap < n * 2)
        cap *= 2;
    t->slots = calloc(cap, sizeof *t->slots);
    t->mask = cap - 1;
    return t->slots ? 0 : -1;
}

static const router_entry_t *table_find(const router_table_t *t, const char *a, size_t alen,
                                        const char *b, size_t blen)
{
    uint32_t h = key_hash(a, alen, b, blen);
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        const router_entry_t *e = &t->slots[i];
        if (!e->key)
            return NULL;
        if (e->hash == h && key_equal(e, a, alen, b, blen))
            return e;
    }
}

/* Adds unless the key is present: the first entry wins, which is how a
 * service host beats a tag host spelling the same name (services are added
 * first). Returns 0, 1 when already present, -1 when out of memory. */
static int table_add(router_table_t *t, const char *a, const char *b, router_entry_t val)
{
    size_t alen = strlen(a), blen = strlen(b);
    if (table_find(t, a, alen, b, blen))
        return 1;
    uint32_t h = key_hash(a, alen, b, blen);
    size_t i = h & t->mask;
    while (t->slots[i].key)
        i = (i + 1) & t->mask;
    char *key = malloc(alen + 1 + blen + 1);
    if (!key)
        return -1;
    for (size_t k = 0; k < alen; k++)
        key[k] = (char)lower((unsigned char)a[k]);
    key[alen] = '.';
    for (size_t k = 0; k < blen; k++)
        key[alen + 1 + k] = (char)lower((unsigned char)b[k]);
    key[alen + 1 + blen] = '\0';
    val.key = key;
    val.key_len = alen + 1 + blen;
    val.hash = h;
    t->slots[i] = val;
    return 0;
}

static void table_free(router_table_t *t)
{
    if (!t->slots)
        return;
    for (size_t i = 0; i <= t->mask; i++)
        free(t->slots[i].key);
    free(t->slots);
}

kp_router_t *kp_router_new(const kp_activator_config_t *cfg)
{
    kp_router_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->cfg = cfg;
    size_t n_hosts = cfg->n_services, n_revs = 0;
    for (size_t i = 0; i < cfg->n_services; i++) {
        n_hosts += cfg->services[i].n_traffic;
        n_revs += cfg->services[i].n_revisions;
    }
    r->splits = calloc(cfg->n_services ? cfg->n_services : 1, sizeof *r->splits);
    if (!r->splits || table_init(&r->hosts, n_hosts) != 0 || table_init(&r->revisions, n_revs) != 0)
        goto fail;

    for (size_t i = 0; i < cfg->n_services; i++) {
        const kp_service_spec_t *s = &cfg->services[i];
        router_split_t *sp = &r->splits[i];
        sp->service = s;
        size_t slot = 0;
        for (size_t j = 0; j < s->n_traffic; j++)
            for (int k = 0; k < s->traffic[j].percent && slot < 100; k++)
                sp->slot[slot++] = s->traffic[j].revision;
        /* The config guarantees 100; stay safe if handed anything else. */
        for (; slot < 100; slot++)
            sp->slot[slot] = slot ? sp->slot[slot - 1] : NULL;
        if (table_add(&r->hosts, s->name, s->namespace_, (router_entry_t){.service = s}) < 0)
            goto fail;
        for (size_t j = 0; j < s->n_revisions; j++)
            if (table_add(&r->revisions, s->revisions[j].name, s->namespace_,
                          (router_entry_t){.service = s, .revision = &s->revisions[j]}) < 0)
                goto fail;
    }
    for (size_t i = 0; i < cfg->n_services; i++) {
        const kp_service_spec_t *s = &cfg->services[i];
        for (size_t j = 0; j < s->n_traffic; j++) {
            const kp_traffic_target_t *t = &s->traffic[j];
            if (!t->tag)
                continue;
            char label[128];
            size_t tl = strlen(t->tag), sl = strlen(s->name);
            if (tl + 1 + sl >= sizeof label)
                continue; /* not a DNS label: no host can name it */
            memcpy(label, t->tag, tl);
            label[tl] = '-';
            memcpy(label + tl + 1, s->name, sl + 1);
            if (table_add(&r->hosts, label, s->namespace_,
                          (router_entry_t){.service = s, .revision = t->revision, .tag = t->tag}) <
                0)
                goto fail;
        }
    }
    return r;
fail:
    kp_router_free(r);
    return NULL;
}

void kp_router_free(kp_router_t *router)
{
    if (!router)
        return;
    table_free(&router->hosts);
    table_free(&router->revisions);
    free(router->splits);
    free(router);
}

static int route_by_host(const kp_router_t *router, const char *host, size_t len, uint32_t random,
                         kp_route_t *out)
{
    /* Drop ":port" (RFC 9110 §7.2: Host = uri-host [ ":" port ]). Bracketed
     * IPv6 literals never name a service; their colons end the search. */
    for (size_t i = len; i > 0; i--) {
        char c = host[i - 1];
        if (c == ':') {
            len = i - 1;
            break;
        }
        if (c < '0' || c > '9')
            break;
    }
    if (len > 0 && host[len - 1] == '.') /* absolute name: "a.b.example.com." */
        len--;
    const char *dot1 = memchr(host, '.', len);
    if (!dot1 || dot1 == host)
        return -1;
    size_t alen = (size_t)(dot1 - host);
    const char *ns = dot1 + 1;
    const char *dot2 = memchr(ns, '.', len - alen - 1);
    size_t blen = dot2 ? (size_t)(dot2 - ns) : len - alen - 1;
    if (blen == 0)
        return -1;
    const router_entry_t *e = table_find(&router->hosts, host, alen, ns, blen);
    if (!e)
        return -1;
    out->service = e->service;
    out->tag = e->tag;
    if (e->revision) {
        out->revision = e->revision;
    } else {
        const router_split_t *sp = &router->splits[e->service - router->cfg->services];
        out->revision = sp->slot[random % 100];
        if (!out->revision)
            return -1;
    }
    return 0;
}

int kp_router_route(const kp_router_t *router, const char *host, size_t host_len,
                    const char *rev_name, size_t rev_name_len, const char *ns, size_t ns_len,
                    uint32_t random, kp_route_t *out)
{
    memset(out, 0, sizeof *out);
    if (rev_name && ns) {
        /* Knative-Serving-Revision/-Namespace, set by Knative's ingress, name
         * the revision outright and are not second-guessed by the Host. */
        if (memchr(rev_name, '.', rev_name_len) || memchr(ns, '.', ns_len))
            return -1;
        const router_entry_t *e =
            table_find(&router->revisions, rev_name, rev_name_len, ns, ns_len);
        if (!e)
            return -1;
        out->revision = e->revision;
        return 0;
    }
    if (!host)
        return -1;
    return route_by_host(router, host, host_len, random, out);
}
