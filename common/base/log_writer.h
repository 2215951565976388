/* Log lines out to a file descriptor without ever blocking the caller: a
 * bounded buffer the caller fills, emptied by a thread of its own that
 * writes whatever the fd accepts. A line that does not fit is dropped and
 * counted; lines are never split nor interleaved with each other. */
#ifndef KP_LOG_WRITER_H
#define KP_LOG_WRITER_H

#include <stddef.h>
#include <stdint.h>

typedef struct kp_log_writer kp_log_writer_t;

/* A writer to fd holding at most `capacity` bytes of lines not yet
 * written. Its thread starts with the first line. NULL when out of memory.
 * Meant to live as long as the process: there is no free. */
kp_log_writer_t *kp_log_writer_new(int fd, size_t capacity);

/* Queues one whole line (ending in '\n'). Returns 0, or -1 when the line
 * was dropped (the buffer is full: the fd has not taken what came
 * before). Never waits for the fd. Any thread may call it. */
int kp_log_writer_put(kp_log_writer_t *w, const char *line, size_t len);

/* Lines dropped so far: not queued for lack of room, or lost to a write
 * error (the reader closed its end). */
uint64_t kp_log_writer_dropped(const kp_log_writer_t *w);

/* Waits at most timeout_ms for the lines queued so far to be written.
 * 0 when they were, -1 when the time ran out (the fd does not take them). */
int kp_log_writer_flush(kp_log_writer_t *w, int timeout_ms);

#endif
