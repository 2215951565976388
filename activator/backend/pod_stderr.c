/* A pod app's stderr, forwarded line by line and its last line kept. See
 * pod_stderr.h. */
#include "pod_stderr.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* The line in e->line is whole (or as long as it may get): out it goes,
 * and it becomes the last one unless it is blank. */
static void line_end(act_pod_stderr_t *e)
{
    size_t len = e->len;
    e->line[len] = '\n';
    kp_log_line(KP_LOG_STDERR, e->line, len + 1);
    while (len > 0 &&
           (e->line[len - 1] == '\r' || e->line[len - 1] == ' ' || e->line[len - 1] == '\t'))
        len--;
    if (len > 0) {
        size_t keep = len < sizeof e->last - 1 ? len : sizeof e->last - 1;
        memcpy(e->last, e->line, keep);
        e->last[keep] = '\0';
    }
    e->len = 0;
}

static void feed(act_pod_stderr_t *e, const char *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n') {
            line_end(e);
            continue;
        }
        e->line[e->len++] = data[i];
        /* One byte stays free for the '\n' line_end adds. */
        if (e->len == sizeof e->line - 1)
            line_end(e);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    act_pod_stderr_t *e = container_of((uv_pipe_t *)h, act_pod_stderr_t, pipe);
    *buf = uv_buf_init(e->chunk, sizeof e->chunk);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    act_pod_stderr_t *e = container_of((uv_pipe_t *)s, act_pod_stderr_t, pipe);
    if (n > 0) {
        feed(e, buf->base, (size_t)n);
        return;
    }
    if (n < 0) {
        /* EOF: every writer is gone; an unended last line still counts. */
        if (e->len > 0)
            line_end(e);
        uv_read_stop(s);
    }
}

int act_pod_stderr_init(uv_loop_t *loop, act_pod_stderr_t *e)
{
    e->len = 0;
    e->last[0] = '\0';
    return uv_pipe_init(loop, &e->pipe, 0);
}

int act_pod_stderr_start(act_pod_stderr_t *e)
{
    return uv_read_start((uv_stream_t *)&e->pipe, on_alloc, on_read);
}

void act_pod_stderr_drain(act_pod_stderr_t *e)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&e->pipe, &fd) != 0)
        return;
    /* The pipe is non-blocking (libuv's): this stops at what is there. A
     * child the app left behind may hold the pipe open, even keep writing:
     * no wait, and a bound. */
    for (size_t total = 0; total < 16 * sizeof e->chunk;) {
        ssize_t n = read(fd, e->chunk, sizeof e->chunk);
        if (n > 0) {
            feed(e, e->chunk, (size_t)n);
            total += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
    if (e->len > 0)
        line_end(e);
}
