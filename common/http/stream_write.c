/* See stream_write.h. */
#include "stream_write.h"

#include <stdlib.h>
#include <string.h>

typedef struct queued_write {
    uv_write_t req;
    kp_write_done_cb done;
    void *ctx;
    int *pending;
    char data[];
} queued_write_t;

static void on_written(uv_write_t *req, int status)
{
    queued_write_t *w = (queued_write_t *)req;
    kp_write_done_cb done = w->done;
    void *ctx = w->ctx;
    (*w->pending)--;
    free(w);
    if (done)
        done(ctx, status);
}

int kp_stream_write(uv_stream_t *stream, const uv_buf_t *bufs, unsigned n, kp_write_done_cb done,
                    void *ctx, int *pending)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    if (total == 0)
        return 0;
    size_t skip = 0;
    if (*pending == 0) {
        int written = uv_try_write(stream, bufs, n);
        if (written == (int)total)
            return 0;
        if (written < 0 && written != UV_EAGAIN)
            return written;
        if (written > 0)
            skip = (size_t)written;
    }
    queued_write_t *w = malloc(sizeof *w + (total - skip));
    if (!w)
        return UV_ENOMEM;
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        const char *p = bufs[i].base;
        size_t len = bufs[i].len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        p += skip;
        len -= skip;
        skip = 0;
        memcpy(w->data + off, p, len);
        off += len;
    }
    w->done = done;
    w->ctx = ctx;
    w->pending = pending;
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)off);
    int err = uv_write(&w->req, stream, &buf, 1, on_written);
    if (err) {
        free(w);
        return err;
    }
    (*pending)++;
    return 0;
}
