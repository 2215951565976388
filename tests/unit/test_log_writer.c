/* Tests for common/base/log_writer.c: a pipe nobody reads never holds up the
 * caller, lines that find the buffer full are dropped and counted, and what
 * does go out is whole lines, in order, even with two writers on one pipe. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/log_writer.h"

/* A put that waited for the pipe would hang the test: this ends it. */
#define WATCHDOG_S 60

static int make_line(char *buf, size_t size, int writer, int seq, int pad)
{
    char fill[12000];
    memset(fill, 'a' + writer, (size_t)pad);
    fill[pad] = '\0';
    return snprintf(buf, size, "{\"writer\":%d,\"seq\":%d,\"pad\":\"%s\"}\n", writer, seq, fill);
}

static size_t read_available(int rfd, char **out, size_t *cap, size_t n)
{
    for (;;) {
        if (*cap - n < 65536)
            *out = realloc(*out, *cap *= 2);
        ssize_t r = read(rfd, *out + n, *cap - n - 1);
        if (r <= 0) {
            assert_true(r < 0 && errno == EAGAIN);
            return n;
        }
        n += (size_t)r;
    }
}

/* Everything in the pipe, read until the writers have written all they
 * queued (they cannot while the pipe is full). */
static char *drain_pipe(int rfd, kp_log_writer_t **writers, int n_writers, size_t *len)
{
    fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_NONBLOCK);
    size_t cap = 1 << 20, n = 0;
    char *out = malloc(cap);
    for (;;) {
        n = read_available(rfd, &out, &cap, n);
        int settled = 1;
        for (int i = 0; i < n_writers; i++)
            settled &= kp_log_writer_flush(writers[i], 10) == 0;
        if (settled)
            break;
    }
    n = read_available(rfd, &out, &cap, n);
    out[n] = '\0';
    *len = n;
    return out;
}

struct seen {
    int lines;
    int last_seq[2];
};

/* Each line must be one whole line of one writer, its seq above the last. */
static void check_lines(char *out, size_t len, struct seen *seen)
{
    char *p = out, *end = out + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl); /* the output ends with a whole line */
        *nl = '\0';
        int writer, seq, used = 0;
        if (sscanf(p, "{\"writer\":%d,\"seq\":%d,\"pad\":\"%*[a-z]\"}%n", &writer, &seq, &used) !=
                2 ||
            used != (int)(nl - p))
            fail_msg("not a whole line: %.200s", p);
        assert_true(writer == 0 || writer == 1);
        /* The pad is of the writer's own letter: no other line's bytes. */
        char *pad = strstr(p, "\"pad\":\"") + 7;
        for (char *c = pad; *c != '"'; c++)
            assert_int_equal(*c, 'a' + writer);
        assert_true(seq > seen->last_seq[writer]);
        seen->last_seq[writer] = seq;
        seen->lines++;
        p = nl + 1;
    }
}

static void a_pipe_nobody_reads_drops_lines_and_counts_them(void **state)
{
    alarm(WATCHDOG_S);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    kp_log_writer_t *w = kp_log_writer_new(fds[1], 64 * 1024);
    assert_non_null(w);
    const int total = 20000;
    int refused = 0;
    char line[300];
    /* 20 000 lines of ~100 bytes: far more than the pipe (64 KiB) and the
     * buffer (64 KiB) hold together. Every put returns at once. */
    for (int i = 0; i < total; i++) {
        int n = make_line(line, sizeof line, 0, i, 60);
        refused += kp_log_writer_put(w, line, (size_t)n) != 0;
    }
    assert_true(refused > 0);
    assert_int_equal(kp_log_writer_dropped(w), (uint64_t)refused);
    /* Nobody reads: a flush gives up. */
    assert_int_equal(kp_log_writer_flush(w, 100), -1);

    size_t len;
    char *out = drain_pipe(fds[0], &w, 1, &len);
    struct seen seen = {0, {-1, -1}};
    check_lines(out, len, &seen);
    assert_int_equal(seen.lines + refused, total);
    assert_true(seen.lines > 0);
    assert_int_equal(kp_log_writer_flush(w, 100), 0);

    /* Once read, the stream takes lines again (the buffer wraps around),
     * lines longer than PIPE_BUF among them, whole. */
    static char line_or_long[12100];
    for (int i = total; i < total + 3000; i++) {
        int n = make_line(line_or_long, sizeof line_or_long, 0, i, i % 97 == 0 ? 10000 : 60);
        assert_int_equal(kp_log_writer_put(w, line_or_long, (size_t)n), 0);
        if (i % 200 == 0) {
            free(out);
            out = drain_pipe(fds[0], &w, 1, &len);
            check_lines(out, len, &seen);
        }
    }
    free(out);
    out = drain_pipe(fds[0], &w, 1, &len);
    check_lines(out, len, &seen);
    assert_int_equal(seen.last_seq[0], total + 3000 - 1);
    assert_int_equal(kp_log_writer_dropped(w), (uint64_t)refused);
    free(out);
    close(fds[0]);
    alarm(0);
}

/* Two writers on one pipe stand for two processes sharing stderr (the
 * local backend's pods and the activator): lines up to PIPE_BUF are never
 * mixed. (A longer line cannot be: the kernel may split a write that big
 * to let another process's write in.) */
static void lines_stay_whole_with_two_writers_on_one_pipe(void **state)
{
    alarm(WATCHDOG_S);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    kp_log_writer_t *w[2] = {kp_log_writer_new(fds[1], 256 * 1024),
                             kp_log_writer_new(fds[1], 256 * 1024)};
    static char line[12100];
    int written[2] = {0, 0};
    size_t len;
    char *out = NULL;
    struct seen seen = {0, {-1, -1}};
    for (int i = 0; i < 4000; i++) {
        for (int k = 0; k < 2; k++) {
            int pad = i % 97 == 0 ? 4000 : 50 + (i * 7 + k * 13) % 300;
            int n = make_line(line, sizeof line, k, i, pad);
            if (kp_log_writer_put(w[k], line, (size_t)n) == 0)
                written[k]++;
        }
        if (i % 200 == 199) {
            out = drain_pipe(fds[0], w, 2, &len);
            check_lines(out, len, &seen);
            free(out);
        }
    }
    assert_int_equal(seen.lines, written[0] + written[1]);
    assert_int_equal(kp_log_writer_dropped(w[0]) + kp_log_writer_dropped(w[1]),
                     (uint64_t)(8000 - seen.lines));
    close(fds[0]);
    alarm(0);
}

static void a_line_larger_than_the_buffer_is_dropped(void **state)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    kp_log_writer_t *w = kp_log_writer_new(fds[1], 1024);
    static char line[2100];
    int n = make_line(line, sizeof line, 0, 0, 2000);
    assert_int_equal(kp_log_writer_put(w, line, (size_t)n), -1);
    assert_int_equal(kp_log_writer_dropped(w), 1);
    n = make_line(line, sizeof line, 0, 1, 10);
    assert_int_equal(kp_log_writer_put(w, line, (size_t)n), 0);
    size_t len;
    char *out = drain_pipe(fds[0], &w, 1, &len);
    assert_string_equal(out, "{\"writer\":0,\"seq\":1,\"pad\":\"aaaaaaaaaa\"}\n");
    free(out);
    close(fds[0]);
}

/* The reader went away: lines are lost and counted, and neither the
 * caller nor the process dies of SIGPIPE. */
static void a_closed_reader_costs_lines_not_the_process(void **state)
{
    alarm(WATCHDOG_S);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    close(fds[0]);
    kp_log_writer_t *w = kp_log_writer_new(fds[1], 64 * 1024);
    char line[300];
    for (int i = 0; i < 100; i++) {
        int n = make_line(line, sizeof line, 0, i, 20);
        kp_log_writer_put(w, line, (size_t)n);
    }
    assert_int_equal(kp_log_writer_flush(w, 10000), 0);
    assert_int_equal(kp_log_writer_dropped(w), 100);
    alarm(0);
}

/* More static thread-local storage than the writer's default stack: glibc
 * takes a thread's TLS out of its stack, so the writer must still get its
 * thread (the HTTP engine keeps 64 KiB and more thread-local). */
static _Thread_local char big_tls[256 * 1024];

static void a_writer_thread_starts_beside_large_thread_local_storage(void **state)
{
    alarm(WATCHDOG_S);
    big_tls[sizeof big_tls - 1] = 1;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    kp_log_writer_t *w = kp_log_writer_new(fds[1], 64 * 1024);
    assert_non_null(w);
    /* Without the thread each put would write in place and block on the
     * full pipe until the watchdog fires; with it, puts past the buffer
     * are refused at once. */
    char line[300];
    int refused = 0;
    for (int i = 0; i < 5000; i++) {
        int n = make_line(line, sizeof line, 0, i, 60);
        refused += kp_log_writer_put(w, line, (size_t)n) != 0;
    }
    assert_true(refused > 0);
    assert_int_equal(big_tls[sizeof big_tls - 1], 1);
    size_t len;
    free(drain_pipe(fds[0], &w, 1, &len));
    close(fds[0]);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_pipe_nobody_reads_drops_lines_and_counts_them),
        cmocka_unit_test(lines_stay_whole_with_two_writers_on_one_pipe),
        cmocka_unit_test(a_line_larger_than_the_buffer_is_dropped),
        cmocka_unit_test(a_closed_reader_costs_lines_not_the_process),
        cmocka_unit_test(a_writer_thread_starts_beside_large_thread_local_storage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
