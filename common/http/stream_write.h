/* Writing to a libuv stream without a copy when the kernel takes the bytes
 * at once, and with one copy into a single block when it does not (libuv
 * needs the bytes alive until the write callback). */
#ifndef KP_STREAM_WRITE_H
#define KP_STREAM_WRITE_H

#include <uv.h>

typedef void (*kp_write_done_cb)(void *ctx, int status);

/* Returns 0 or a negative libuv error (the stream is then unusable).
 * done runs only for bytes that had to be queued; pending counts them. */
int kp_stream_write(uv_stream_t *stream, const uv_buf_t *bufs, unsigned n, kp_write_done_cb done,
                    void *ctx, int *pending);

#endif
