/* See log_writer.h. The caller (the event loop) only copies a line into a
 * ring under a mutex; the writer thread does the write(2)s, which may block
 * for as long as the reader of the pipe pleases. */
#include "log_writer.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The thread runs one small loop; the default 8 MiB of address space
 * would only make the process look bigger. */
#define WRITER_STACK_BYTES (64 * 1024)
#define WRITER_STACK_MAX (8 * 1024 * 1024)

enum { THREAD_NONE, THREAD_RUNNING, THREAD_FAILED };

struct kp_log_writer {
    int fd;
    size_t capacity;
    char *ring;
    pthread_mutex_t lock;
    pthread_cond_t has_lines;  /* to the thread: the ring is not empty */
    pthread_cond_t progressed; /* to flush: bytes were taken off the ring */
    size_t head;               /* first byte not yet written */
    size_t used;               /* bytes queued from head on, wrapping */
    uint64_t queued_bytes;     /* ever queued */
    uint64_t settled_bytes;    /* ever written or given up on */
    uint64_t dropped;          /* lines; read without the lock */
    int thread_state;
};

kp_log_writer_t *kp_log_writer_new(int fd, size_t capacity)
{
    kp_log_writer_t *w = calloc(1, sizeof *w);
    /* Pages of the ring are touched only as deep as a backlog ever goes:
     * an empty ring starts over at its front. */
    char *ring = malloc(capacity);
    if (!w || !ring) {
        free(w);
        free(ring);
        return NULL;
    }
    w->fd = fd;
    w->capacity = capacity;
    w->ring = ring;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->has_lines, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->progressed, &attr);
    pthread_condattr_destroy(&attr);
    return w;
}

static uint64_t count_lines(const struct iovec *iov, int n)
{
    uint64_t lines = 0;
    for (int i = 0; i < n; i++)
        for (const char *p = iov[i].iov_base, *end = p + iov[i].iov_len;
             (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
            lines++;
    return lines;
}

static const char *last_newline(const char *p, size_t len)
{
    while (len > 0)
        if (p[--len] == '\n')
            return p + len;
    return NULL;
}

/* The next write: whole lines, at most PIPE_BUF bytes of them, since a
 * pipe takes a write that small in one piece and so never mixes it with
 * what other processes on the same pipe write (the local backend's pods
 * share the activator's stderr). A longer first line goes alone. */
static size_t next_chunk(const kp_log_writer_t *w, size_t head, size_t used, struct iovec iov[2],
                         int *n_iov)
{
    const char *seg1 = w->ring + head;
    size_t len1 = used < w->capacity - head ? used : w->capacity - head;
    const char *seg2 = w->ring;
    size_t len2 = used - len1;
    size_t limit = used < PIPE_BUF ? used : PIPE_BUF;
    size_t n = 0;
    const char *nl;
    if (limit > len1 && (nl = last_newline(seg2, limit - len1)) != NULL)
        n = len1 + (size_t)(nl - seg2) + 1;
    else if ((nl = last_newline(seg1, limit < len1 ? limit : len1)) != NULL)
        n = (size_t)(nl - seg1) + 1;
    else if ((nl = memchr(seg1, '\n', len1)) != NULL)
        n = (size_t)(nl - seg1) + 1;
    else if ((nl = memchr(seg2, '\n', len2)) != NULL)
        n = len1 + (size_t)(nl - seg2) + 1;
    else
        n = used; /* a caller's line without its newline */
    iov[0].iov_base = (void *)seg1;
    iov[0].iov_len = n < len1 ? n : len1;
    iov[1].iov_base = (void *)seg2;
    iov[1].iov_len = n - iov[0].iov_len;
    *n_iov = iov[1].iov_len ? 2 : 1;
    return n;
}

/* 0 once every byte is written, -1 on an error that will not pass (the
 * reader closed the pipe, a full disk). */
static int write_fully(int fd, struct iovec *iov, int n_iov)
{
    while (n_iov > 0) {
        ssize_t done = writev(fd, iov, n_iov);
        if (done < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* Someone made the shared file non-blocking: wait, not spin. */
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                poll(&p, 1, -1);
                continue;
            }
            return -1;
        }
        while (n_iov > 0 && (size_t)done >= iov[0].iov_len) {
            done -= (ssize_t)iov[0].iov_len;
            iov++;
            n_iov--;
        }
        if (n_iov > 0) {
            iov[0].iov_base = (char *)iov[0].iov_base + done;
            iov[0].iov_len -= (size_t)done;
        }
    }
    return 0;
}

static void *writer_main(void *arg)
{
    kp_log_writer_t *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->used == 0)
            pthread_cond_wait(&w->has_lines, &w->lock);
        size_t head = w->head, used = w->used;
        pthread_mutex_unlock(&w->lock);

        /* [head, head + used) stays as it is: callers only append past it. */
        struct iovec iov[2];
        int n_iov;
        size_t n = next_chunk(w, head, used, iov, &n_iov);
        uint64_t lost = 0;
        struct iovec left[2] = {iov[0], iov[1]};
        if (write_fully(w->fd, left, n_iov) != 0)
            lost = count_lines(iov, n_iov);

        pthread_mutex_lock(&w->lock);
        if (lost)
            __atomic_add_fetch(&w->dropped, lost, __ATOMIC_RELAXED);
        w->used -= n;
        w->head = w->used ? (head + n) % w->capacity : 0;
        w->settled_bytes += n;
        pthread_cond_broadcast(&w->progressed);
    }
    return NULL;
}

/* With the lock held. Signals go to the loop's thread, never to this one.
 * glibc carves each thread's copy of the static thread-local storage out
 * of the stack it is given, so a stack smaller than that TLS fails with
 * EINVAL: the size doubles until the thread starts. Without the thread
 * every line would be written in place and a stalled reader would stop
 * the loop. */
static void start_thread(kp_log_writer_t *w)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    w->thread_state = THREAD_FAILED;
    for (size_t stack = WRITER_STACK_BYTES; stack <= WRITER_STACK_MAX; stack *= 2) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_attr_setstacksize(&attr, stack);
        pthread_t t;
        if (rc == 0)
            rc = pthread_create(&t, &attr, writer_main, w);
        pthread_attr_destroy(&attr);
        if (rc == 0) {
            w->thread_state = THREAD_RUNNING;
            break;
        }
        if (rc != EINVAL)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int kp_log_writer_put(kp_log_writer_t *w, const char *line, size_t len)
{
    pthread_mutex_lock(&w->lock);
    if (w->thread_state == THREAD_NONE)
        start_thread(w);
    if (w->thread_state == THREAD_FAILED) {
        /* No thread to be had: write in place, as a plain logger would. */
        pthread_mutex_unlock(&w->lock);
        struct iovec iov = {.iov_base = (void *)line, .iov_len = len};
        if (write_fully(w->fd, &iov, 1) != 0) {
            __atomic_add_fetch(&w->dropped, 1, __ATOMIC_RELAXED);
            return -1;
        }
        return 0;
    }
    if (len > w->capacity - w->used) {
        pthread_mutex_unlock(&w->lock);
        __atomic_add_fetch(&w->dropped, 1, __ATOMIC_RELAXED);
        return -1;
    }
    size_t tail = (w->head + w->used) % w->capacity;
    size_t first = len < w->capacity - tail ? len : w->capacity - tail;
    memcpy(w->ring + tail, line, first);
    memcpy(w->ring, line + first, len - first);
    int was_empty = w->used == 0;
    w->used += len;
    w->queued_bytes += len;
    if (was_empty) /* the thread sleeps only on an empty ring */
        pthread_cond_signal(&w->has_lines);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

uint64_t kp_log_writer_dropped(const kp_log_writer_t *w)
{
    return __atomic_load_n(&w->dropped, __ATOMIC_RELAXED);
}

int kp_log_writer_flush(kp_log_writer_t *w, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    uint64_t target = w->queued_bytes;
    while (w->settled_bytes < target &&
           pthread_cond_timedwait(&w->progressed, &w->lock, &deadline) != ETIMEDOUT) {
    }
    int rc = w->settled_bytes < target ? -1 : 0;
    pthread_mutex_unlock(&w->lock);
    return rc;
}
