/* JSON-lines logger; see log.h. The only process-wide mutable state in the
 * project, by design: one logger per process, set up before the loop runs,
 * and its two output streams. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log_writer.h"

/* Room for lines not yet written, per stream: enough for a burst while the
 * writer thread waits for the CPU; a reader that stalls for longer loses
 * lines rather than holding up the loop. */
#define STREAM_BUFFER_BYTES (256 * 1024)
#define EXIT_FLUSH_MS 2000

/* Written only by kp_log_init/kp_log_add_field at start (see log.h). */
static struct {
    char logger[64];
    kp_log_level_t min_level;
    char fields[512]; /* pre-rendered `,"k":"v"` pairs */
    size_t fields_len;
} g_log = {"kp", KP_LOG_INFO, "", 0};

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

void kp_log_init(const char *logger, kp_log_level_t min_level)
{
    snprintf(g_log.logger, sizeof g_log.logger, "%s", logger ? logger : "kp");
    g_log.min_level = min_level;
    g_log.fields_len = 0;
    g_log.fields[0] = '\0';
}

void kp_log_add_field(const char *key, const char *value)
{
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_strbuf_puts(&sb, ",\"");
    kp_strbuf_json_escape(&sb, key, strlen(key));
    kp_strbuf_puts(&sb, "\":\"");
    kp_strbuf_json_escape(&sb, value ? value : "", value ? strlen(value) : 0);
    kp_strbuf_puts(&sb, "\"");
    if (g_log.fields_len + sb.len < sizeof g_log.fields) {
        memcpy(g_log.fields + g_log.fields_len, sb.data, sb.len + 1);
        g_log.fields_len += sb.len;
    }
    kp_strbuf_free(&sb);
}

int kp_log_level_parse(const char *s, kp_log_level_t *out)
{
    static const struct {
        const char *name;
        kp_log_level_t level;
    } names[] = {
        {"", KP_LOG_INFO},       {"debug", KP_LOG_DEBUG}, {"info", KP_LOG_INFO},
        {"warn", KP_LOG_WARN},   {"error", KP_LOG_ERROR}, {"dpanic", KP_LOG_ERROR},
        {"panic", KP_LOG_ERROR}, {"fatal", KP_LOG_ERROR},
    };
    if (!s)
        s = "";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -1;
}

const char *kp_log_level_name(kp_log_level_t level)
{
    if ((unsigned)level > KP_LOG_ERROR)
        return "ERROR";
    return level_names[level];
}

int kp_log_enabled(kp_log_level_t level)
{
    return level >= g_log.min_level;
}

static void line_begin(kp_strbuf_t *sb, kp_log_level_t level)
{
    struct timespec ts;
    struct tm tm;
    char stamp[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", ts.tv_nsec / 1000000);

    kp_strbuf_puts(sb, "{\"severity\":\"");
    kp_strbuf_puts(sb, kp_log_level_name(level));
    kp_strbuf_puts(sb, "\",\"timestamp\":\"");
    kp_strbuf_puts(sb, stamp);
    kp_strbuf_puts(sb, "\",\"logger\":\"");
    kp_strbuf_json_escape(sb, g_log.logger, strlen(g_log.logger));
    kp_strbuf_puts(sb, "\",\"message\":\"");
}

/* The streams' writers, made with the first line. NULL when out of memory:
 * lines are then written in place. */
static kp_log_writer_t *g_streams[2];
static pthread_once_t g_streams_once = PTHREAD_ONCE_INIT;

static void flush_at_exit(void)
{
    kp_log_flush(EXIT_FLUSH_MS);
}

static void streams_open(void)
{
    g_streams[KP_LOG_STDERR] = kp_log_writer_new(STDERR_FILENO, STREAM_BUFFER_BYTES);
    g_streams[KP_LOG_STDOUT] = kp_log_writer_new(STDOUT_FILENO, STREAM_BUFFER_BYTES);
    atexit(flush_at_exit);
}

void kp_log_line(kp_log_stream_t stream, const char *line, size_t len)
{
    pthread_once(&g_streams_once, streams_open);
    kp_log_writer_t *w = g_streams[stream == KP_LOG_STDOUT];
    if (w) {
        kp_log_writer_put(w, line, len);
        return;
    }
    int fd = stream == KP_LOG_STDOUT ? STDOUT_FILENO : STDERR_FILENO;
    if (write(fd, line, len) < 0) {
        /* nowhere left to say so */
    }
}

uint64_t kp_log_dropped_lines(kp_log_stream_t stream)
{
    pthread_once(&g_streams_once, streams_open);
    kp_log_writer_t *w = g_streams[stream == KP_LOG_STDOUT];
    return w ? kp_log_writer_dropped(w) : 0;
}

void kp_log_render_metrics(kp_strbuf_t *out)
{
    kp_strbuf_printf(out,
                     "# HELP kp_log_lines_dropped_total Log lines dropped because their stream "
                     "had not taken the lines before them.\n"
                     "# TYPE kp_log_lines_dropped_total counter\n"
                     "kp_log_lines_dropped_total{stream=\"stderr\"} %llu\n"
                     "kp_log_lines_dropped_total{stream=\"stdout\"} %llu\n",
                     (unsigned long long)kp_log_dropped_lines(KP_LOG_STDERR),
                     (unsigned long long)kp_log_dropped_lines(KP_LOG_STDOUT));
}

int kp_log_flush(int timeout_ms)
{
    pthread_once(&g_streams_once, streams_open);
    /* One deadline for both streams. */
    uint64_t deadline = kp_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        uint64_t now = kp_now_ns();
        int left = now < deadline ? (int)((deadline - now) / 1000000u) : 0;
        if (g_streams[i] && kp_log_writer_flush(g_streams[i], left) != 0)
            rc = -1;
    }
    return rc;
}

/* The line goes out as one piece: the writer keeps lines whole. */
static void line_end(kp_strbuf_t *sb)
{
    kp_strbuf_append(sb, g_log.fields, g_log.fields_len);
    kp_strbuf_puts(sb, "}\n");
    if (sb->data)
        kp_log_line(KP_LOG_STDERR, sb->data, sb->len);
    kp_strbuf_free(sb);
}

void kp_log(kp_log_level_t level, const char *fmt, ...)
{
    if (!kp_log_enabled(level))
        return;
    char stackmsg[512];
    char *msg = stackmsg;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(stackmsg, sizeof stackmsg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof stackmsg) {
        char *heap = malloc((size_t)n + 1);
        if (heap) {
            va_start(ap, fmt);
            vsnprintf(heap, (size_t)n + 1, fmt, ap);
            va_end(ap);
            msg = heap;
        } else {
            n = (int)sizeof stackmsg - 1;
        }
    }
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    line_begin(&sb, level);
    kp_strbuf_json_escape(&sb, msg, (size_t)n);
    kp_strbuf_puts(&sb, "\"");
    if (msg != stackmsg)
        free(msg);
    line_end(&sb);
}

void kp_log_kv(kp_log_level_t level, const char *message, ...)
{
    if (!kp_log_enabled(level))
        return;
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    line_begin(&sb, level);
    kp_strbuf_json_escape(&sb, message, strlen(message));
    kp_strbuf_puts(&sb, "\"");
    va_list ap;
    va_start(ap, message);
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        kp_strbuf_puts(&sb, ",\"");
        kp_strbuf_json_escape(&sb, key, strlen(key));
        if (value) {
            kp_strbuf_puts(&sb, "\":\"");
            kp_strbuf_json_escape(&sb, value, strlen(value));
            kp_strbuf_puts(&sb, "\"");
        } else {
            kp_strbuf_puts(&sb, "\":null");
        }
    }
    va_end(ap);
    line_end(&sb);
}
