/* A pod app's stderr, read through a pipe: each line goes on to the
 * activator's own stderr without ever blocking the loop (a line that finds
 * the log buffer full is dropped and counted, as our own lines are), and
 * the last non-empty line is kept: when the app exits at once, it is what
 * the failure reason quotes (Knative's termination message, the last log
 * lines of the container). */
#ifndef KP_ACT_BACKEND_POD_STDERR_H
#define KP_ACT_BACKEND_POD_STDERR_H

#include <stddef.h>
#include <uv.h>

#define ACT_POD_STDERR_LINE 1024

/* Embedded in its pod; the pod closes `pipe` (uv_close) with its other
 * handles, and may use pipe.data for that. */
typedef struct act_pod_stderr {
    uv_pipe_t pipe;
    char line[ACT_POD_STDERR_LINE]; /* the line being read, not yet ended */
    size_t len;
    char chunk[4096]; /* what one read brings */
    char last[256];   /* last non-empty line, "" before any */
} act_pod_stderr_t;

/* Before the spawn that passes e->pipe as the child's stderr
 * (UV_CREATE_PIPE | UV_WRITABLE_PIPE). 0 or a libuv error. */
int act_pod_stderr_init(uv_loop_t *loop, act_pod_stderr_t *e);
/* After a successful spawn: lines flow from now on. */
int act_pod_stderr_start(act_pod_stderr_t *e);
/* The app exited: whatever it wrote is in the pipe already; read it now,
 * so that last names its last words before the exit is reported. */
void act_pod_stderr_drain(act_pod_stderr_t *e);

#endif
