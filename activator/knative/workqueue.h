/* A keyed work queue as client-go's: a key ("Service/default/hello") is
 * queued at most once however many events name it; a key whose work is
 * still under way (writes in flight) is not handed out again until that
 * work ends, and then once more if it was queued meanwhile; a failed key
 * comes back after a delay that doubles per failure (50 ms to 30 s) until
 * it succeeds. Keys are handed out from the loop, a batch per turn. */
#ifndef KP_KN_WORKQUEUE_H
#define KP_KN_WORKQUEUE_H

#include <stddef.h>
#include <uv.h>

typedef struct kn_workqueue kn_workqueue_t;

/* process(ctx, key) runs for each key handed out. */
kn_workqueue_t *kn_wq_new(uv_loop_t *loop, void (*process)(void *ctx, const char *key), void *ctx);
void kn_wq_add(kn_workqueue_t *q, const char *key);
/* After ms, unless it is handed out earlier. */
void kn_wq_add_after(kn_workqueue_t *q, const char *key, uint64_t ms);
/* A failure: again after the key's next backoff. */
void kn_wq_retry(kn_workqueue_t *q, const char *key);
/* A success: the key's backoff starts over. */
void kn_wq_forget(kn_workqueue_t *q, const char *key);
/* Work of key starts (hold) or ends (release); a release of the last
 * hold requeues the key if it was added meanwhile. */
void kn_wq_hold(kn_workqueue_t *q, const char *key);
void kn_wq_release(kn_workqueue_t *q, const char *key);
/* Keys queued (not those only waiting for a delay). */
size_t kn_wq_len(const kn_workqueue_t *q);
/* Stops handing out keys; frees everything once its timers closed. */
void kn_wq_free(kn_workqueue_t *q);

#endif
