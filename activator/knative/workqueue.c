/* The keyed work queue. See workqueue.h. */
#include "workqueue.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WQ_BATCH 256
#define WQ_BACKOFF_FIRST_MS 50
#define WQ_BACKOFF_MAX_MS 30000

typedef struct wq_item wq_item_t;
struct wq_item {
    wq_item_t *hash_next;
    wq_item_t *fifo_next;
    kn_workqueue_t *q;
    uv_timer_t timer; /* the delayed add; initialised on first use */
    int timer_init;
    int queued; /* in the FIFO */
    int dirty;  /* added while held: queue at release */
    int holds;  /* work under way */
    unsigned failures;
    char key[];
};

struct kn_workqueue {
    uv_loop_t *loop;
    void (*process)(void *ctx, const char *key);
    void *ctx;
    wq_item_t **buckets;
    size_t n_buckets, n_items;
    wq_item_t *head, *tail;
    size_t len;
    uv_timer_t kick;
    int closing;
    size_t pending_closes;
};

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int grow(kn_workqueue_t *q)
{
    size_t n = q->n_buckets ? q->n_buckets * 2 : 256;
    wq_item_t **b = calloc(n, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < q->n_buckets; i++)
        for (wq_item_t *it = q->buckets[i], *next; it; it = next) {
            next = it->hash_next;
            size_t k = hash(it->key) & (n - 1);
            it->hash_next = b[k];
            b[k] = it;
        }
    free(q->buckets);
    q->buckets = b;
    q->n_buckets = n;
    return 0;
}

static wq_item_t *item(kn_workqueue_t *q, const char *key)
{
    if (q->n_buckets) {
        for (wq_item_t *it = q->buckets[hash(key) & (q->n_buckets - 1)]; it; it = it->hash_next)
            if (strcmp(it->key, key) == 0)
                return it;
    }
    if ((q->n_items + 1 > q->n_buckets) && grow(q) != 0)
        return NULL;
    size_t len = strlen(key);
    wq_item_t *it = calloc(1, sizeof *it + len + 1);
    if (!it)
        return NULL;
    memcpy(it->key, key, len + 1);
    it->q = q;
    size_t k = hash(key) & (q->n_buckets - 1);
    it->hash_next = q->buckets[k];
    q->buckets[k] = it;
    q->n_items++;
    return it;
}

static void on_kick(uv_timer_t *t)
{
    kn_workqueue_t *q = t->data;
    for (int n = 0; n < WQ_BATCH && q->head && !q->closing; n++) {
        wq_item_t *it = q->head;
        q->head = it->fifo_next;
        if (!q->head)
            q->tail = NULL;
        it->fifo_next = NULL;
        it->queued = 0;
        q->len--;
        if (it->holds > 0) {
            it->dirty = 1;
            continue;
        }
        q->process(q->ctx, it->key);
    }
    if (q->head && !q->closing)
        uv_timer_start(&q->kick, on_kick, 0, 0);
}

static void enqueue(wq_item_t *it)
{
    kn_workqueue_t *q = it->q;
    if (q->closing)
        return;
    if (it->holds > 0) {
        it->dirty = 1;
        return;
    }
    if (it->queued)
        return;
    it->queued = 1;
    if (q->tail)
        q->tail->fifo_next = it;
    else
        q->head = it;
    q->tail = it;
    q->len++;
    if (!uv_is_active((uv_handle_t *)&q->kick))
        uv_timer_start(&q->kick, on_kick, 0, 0);
}

kn_workqueue_t *kn_wq_new(uv_loop_t *loop, void (*process)(void *ctx, const char *key), void *ctx)
{
    kn_workqueue_t *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->loop = loop;
    q->process = process;
    q->ctx = ctx;
    uv_timer_init(loop, &q->kick);
    q->kick.data = q;
    return q;
}

void kn_wq_add(kn_workqueue_t *q, const char *key)
{
    wq_item_t *it = item(q, key);
    if (it)
        enqueue(it);
}

static void on_delay(uv_timer_t *t)
{
    enqueue(t->data);
}

void kn_wq_add_after(kn_workqueue_t *q, const char *key, uint64_t ms)
{
    wq_item_t *it = item(q, key);
    if (!it || q->closing)
        return;
    if (!it->timer_init) {
        uv_timer_init(q->loop, &it->timer);
        it->timer.data = it;
        it->timer_init = 1;
    }
    /* An earlier deadline already set stays. */
    if (uv_is_active((uv_handle_t *)&it->timer) && uv_timer_get_due_in(&it->timer) <= ms)
        return;
    uv_timer_start(&it->timer, on_delay, ms, 0);
}

void kn_wq_retry(kn_workqueue_t *q, const char *key)
{
    wq_item_t *it = item(q, key);
    if (!it)
        return;
    uint64_t ms = WQ_BACKOFF_FIRST_MS;
    for (unsigned i = 0; i < it->failures && ms < WQ_BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > WQ_BACKOFF_MAX_MS)
        ms = WQ_BACKOFF_MAX_MS;
    it->failures++;
    kn_wq_add_after(q, key, ms);
}

void kn_wq_forget(kn_workqueue_t *q, const char *key)
{
    wq_item_t *it = item(q, key);
    if (it)
        it->failures = 0;
}

void kn_wq_hold(kn_workqueue_t *q, const char *key)
{
    wq_item_t *it = item(q, key);
    if (it)
        it->holds++;
}

void kn_wq_release(kn_workqueue_t *q, const char *key)
{
    wq_item_t *it = item(q, key);
    if (!it || it->holds == 0)
        return;
    if (--it->holds == 0 && it->dirty) {
        it->dirty = 0;
        enqueue(it);
    }
}

size_t kn_wq_len(const kn_workqueue_t *q)
{
    return q->len;
}

static void wq_maybe_free(kn_workqueue_t *q)
{
    if (q->pending_closes > 0)
        return;
    for (size_t i = 0; i < q->n_buckets; i++)
        for (wq_item_t *it = q->buckets[i], *next; it; it = next) {
            next = it->hash_next;
            free(it);
        }
    free(q->buckets);
    free(q);
}

static void on_item_timer_closed(uv_handle_t *h)
{
    wq_item_t *it = h->data;
    kn_workqueue_t *q = it->q;
    q->pending_closes--;
    wq_maybe_free(q);
}

static void on_kick_closed(uv_handle_t *h)
{
    kn_workqueue_t *q = h->data;
    q->pending_closes--;
    wq_maybe_free(q);
}

void kn_wq_free(kn_workqueue_t *q)
{
    if (!q || q->closing)
        return;
    q->closing = 1;
    q->pending_closes = 1;
    for (size_t i = 0; i < q->n_buckets; i++)
        for (wq_item_t *it = q->buckets[i]; it; it = it->hash_next)
            if (it->timer_init) {
                q->pending_closes++;
                uv_close((uv_handle_t *)&it->timer, on_item_timer_closed);
            }
    uv_close((uv_handle_t *)&q->kick, on_kick_closed);
}
