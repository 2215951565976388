/* Tests for common/base/process_metrics.c: the standard process_* metrics
 * read from /proc/self, checked by promtool and against what this test
 * process itself does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/process_metrics.h"
#include "base/strbuf.h"
#include "promtool_check.h"

/* The value of a sample line "name value", or -1 when absent. */
static double sample(const char *text, const char *name)
{
    size_t len = strlen(name);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, name, len) == 0 && line[len] == ' ')
            return strtod(line + len + 1, NULL);
    return -1;
}

static double render_sample(const char *name)
{
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_process_render_metrics(&sb);
    double v = sample(sb.data, name);
    kp_strbuf_free(&sb);
    return v;
}

static void every_metric_passes_promtool(void **state)
{
    (void)state;
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_process_render_metrics(&sb);
    assert_true(promtool_accepts(&sb, NULL, 0));
    const char *names[] = {"process_cpu_seconds_total",     "process_resident_memory_bytes",
                           "process_virtual_memory_bytes",  "process_start_time_seconds",
                           "process_open_fds",              "process_max_fds"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (sample(sb.data, names[i]) < 0)
            fail_msg("%s missing:\n%s", names[i], sb.data);
    kp_strbuf_free(&sb);
}

static void open_fds_follow_the_descriptors_opened(void **state)
{
    (void)state;
    double before = render_sample("process_open_fds");
    int fds[6];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pipe(fds + 2 * i), 0);
    assert_true(render_sample("process_open_fds") == before + 6);
    for (int i = 0; i < 6; i++)
        close(fds[i]);
    assert_true(render_sample("process_open_fds") == before);
}

static void resident_memory_grows_with_touched_memory(void **state)
{
    (void)state;
    double before = render_sample("process_resident_memory_bytes");
    assert_true(before > 0);
    size_t size = 64u << 20;
    char *block = malloc(size);
    assert_non_null(block);
    memset(block, 1, size);
    double after = render_sample("process_resident_memory_bytes");
    assert_true(after - before >= (double)size * 0.9);
    free(block);
}

static void start_time_is_now_and_cpu_time_counts(void **state)
{
    (void)state;
    double start = render_sample("process_start_time_seconds");
    double now = (double)time(NULL);
    /* This test binary started moments ago; btime has one-second grain. */
    assert_true(start > now - 120 && start <= now + 2);
    double cpu_before = render_sample("process_cpu_seconds_total");
    volatile unsigned long spin = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    do {
        for (int i = 0; i < 100000; i++)
            spin += (unsigned long)i;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    } while ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 < 0.3);
    assert_true(render_sample("process_cpu_seconds_total") >= cpu_before + 0.2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_metric_passes_promtool),
        cmocka_unit_test(open_fds_follow_the_descriptors_opened),
        cmocka_unit_test(resident_memory_grows_with_touched_memory),
        cmocka_unit_test(start_time_is_now_and_cpu_time_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
