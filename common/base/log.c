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

/* Written only by kp_log_init, kp_log_set_format and kp_log_add_field, at
 * start (see log.h). */
static struct {
    char logger[64];
    kp_log_level_t min_level;
    kp_log_format_t format;
    /* Process-wide fields, pre-rendered in both formats: `,"k":"v"` and
     * ` k=v`. */
    char fields_json[512];
    size_t fields_json_len;
    char fields_text[512];
    size_t fields_text_len;
} g_log = {"kp", KP_LOG_INFO, KP_LOG_FORMAT_JSON, "", 0, "", 0};

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

int kp_log_format_parse(const char *s, kp_log_format_t *out)
{
    if (!s || !*s || strcasecmp(s, "json") == 0) {
        *out = KP_LOG_FORMAT_JSON;
        return 0;
    }
    if (strcasecmp(s, "text") == 0) {
        *out = KP_LOG_FORMAT_TEXT;
        return 0;
    }
    return -1;
}

void kp_log_set_format(kp_log_format_t format)
{
    g_log.format = format;
}

void kp_log_init(const char *logger, kp_log_level_t min_level)
{
    snprintf(g_log.logger, sizeof g_log.logger, "%s", logger ? logger : "kp");
    g_log.min_level = min_level;
    g_log.fields_json_len = g_log.fields_text_len = 0;
    g_log.fields_json[0] = g_log.fields_text[0] = '\0';
    const char *format = getenv(KP_LOG_FORMAT_ENV);
    if (kp_log_format_parse(format, &g_log.format) != 0) {
        g_log.format = KP_LOG_FORMAT_JSON;
        kp_log_kv(KP_LOG_WARN, "log format not known; writing JSON", "variable", KP_LOG_FORMAT_ENV,
                  "value", format, "expected", "json or text", NULL);
    }
}

/* Text values are bare when they read unambiguously, quoted with Go's
 * escapes otherwise (spaces, quotes, '=', control bytes, empty). */
static void text_value(kp_strbuf_t *sb, const char *s, size_t len)
{
    int bare = len > 0;
    for (size_t i = 0; i < len && bare; i++) {
        unsigned char c = (unsigned char)s[i];
        bare = c > ' ' && c != '"' && c != '=' && c != '\\' && c != 0x7f;
    }
    if (bare) {
        kp_strbuf_append(sb, s, len);
        return;
    }
    kp_strbuf_puts(sb, "\"");
    kp_strbuf_json_escape(sb, s, len);
    kp_strbuf_puts(sb, "\"");
}

/* A message on one line: control bytes escaped, the rest as is. */
static void text_message(kp_strbuf_t *sb, const char *s, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] >= ' ')
            continue;
        kp_strbuf_append(sb, s + run, i - run);
        kp_strbuf_json_escape(sb, s + i, 1);
        run = i + 1;
    }
    kp_strbuf_append(sb, s + run, len - run);
}

static void field_key(kp_strbuf_t *sb, kp_log_format_t format, const char *key)
{
    if (format == KP_LOG_FORMAT_TEXT) {
        kp_strbuf_puts(sb, " ");
        text_message(sb, key, strlen(key));
        kp_strbuf_puts(sb, "=");
    } else {
        kp_strbuf_puts(sb, ",\"");
        kp_strbuf_json_escape(sb, key, strlen(key));
        kp_strbuf_puts(sb, "\":");
    }
}

static void field_str(kp_strbuf_t *sb, kp_log_format_t format, const char *key, const char *value)
{
    field_key(sb, format, key);
    if (!value) {
        kp_strbuf_puts(sb, "null");
    } else if (format == KP_LOG_FORMAT_TEXT) {
        text_value(sb, value, strlen(value));
    } else {
        kp_strbuf_puts(sb, "\"");
        kp_strbuf_json_escape(sb, value, strlen(value));
        kp_strbuf_puts(sb, "\"");
    }
}

static void field_typed(kp_strbuf_t *sb, kp_log_format_t format, const kp_log_field_t *f)
{
    switch (f->type) {
    case KP_LOG_FIELD_STR:
        field_str(sb, format, f->key, f->v.s);
        return;
    case KP_LOG_FIELD_INT:
        field_key(sb, format, f->key);
        kp_strbuf_printf(sb, "%lld", f->v.i);
        return;
    case KP_LOG_FIELD_NUM:
        field_key(sb, format, f->key);
        kp_strbuf_json_number(sb, f->v.d);
        return;
    case KP_LOG_FIELD_BOOL:
        field_key(sb, format, f->key);
        kp_strbuf_puts(sb, f->v.b ? "true" : "false");
        return;
    }
}

void kp_log_add_field(const char *key, const char *value)
{
    kp_strbuf_t json, text;
    kp_strbuf_init(&json);
    kp_strbuf_init(&text);
    field_str(&json, KP_LOG_FORMAT_JSON, key, value ? value : "");
    field_str(&text, KP_LOG_FORMAT_TEXT, key, value ? value : "");
    if (g_log.fields_json_len + json.len < sizeof g_log.fields_json &&
        g_log.fields_text_len + text.len < sizeof g_log.fields_text) {
        memcpy(g_log.fields_json + g_log.fields_json_len, json.data, json.len + 1);
        g_log.fields_json_len += json.len;
        memcpy(g_log.fields_text + g_log.fields_text_len, text.data, text.len + 1);
        g_log.fields_text_len += text.len;
    }
    kp_strbuf_free(&json);
    kp_strbuf_free(&text);
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

/* Everything up to the message text, which the caller appends (escaped
 * for the format by line_message). */
static void line_begin(kp_strbuf_t *sb, kp_log_level_t level)
{
    struct timespec ts;
    struct tm tm;
    char stamp[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", ts.tv_nsec / 1000000);

    if (g_log.format == KP_LOG_FORMAT_TEXT) {
        kp_strbuf_printf(sb, "%s %-7s ", stamp, kp_log_level_name(level));
        text_message(sb, g_log.logger, strlen(g_log.logger));
        kp_strbuf_puts(sb, ": ");
        return;
    }
    kp_strbuf_puts(sb, "{\"severity\":\"");
    kp_strbuf_puts(sb, kp_log_level_name(level));
    kp_strbuf_puts(sb, "\",\"timestamp\":\"");
    kp_strbuf_puts(sb, stamp);
    kp_strbuf_puts(sb, "\",\"logger\":\"");
    kp_strbuf_json_escape(sb, g_log.logger, strlen(g_log.logger));
    kp_strbuf_puts(sb, "\",\"message\":\"");
}

static void line_message(kp_strbuf_t *sb, const char *msg, size_t len)
{
    if (g_log.format == KP_LOG_FORMAT_TEXT) {
        text_message(sb, msg, len);
        /* Two spaces: the message's own words end here, the fields begin. */
        kp_strbuf_puts(sb, " ");
        return;
    }
    kp_strbuf_json_escape(sb, msg, len);
    kp_strbuf_puts(sb, "\"");
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
    if (g_log.format == KP_LOG_FORMAT_TEXT) {
        kp_strbuf_append(sb, g_log.fields_text, g_log.fields_text_len);
        while (sb->len > 0 && sb->data[sb->len - 1] == ' ')
            sb->len--; /* a message with no field */
        kp_strbuf_puts(sb, "\n");
    } else {
        kp_strbuf_append(sb, g_log.fields_json, g_log.fields_json_len);
        kp_strbuf_puts(sb, "}\n");
    }
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
    line_message(&sb, msg, (size_t)n);
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
    line_message(&sb, message, strlen(message));
    va_list ap;
    va_start(ap, message);
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL)
        field_str(&sb, g_log.format, key, va_arg(ap, const char *));
    va_end(ap);
    line_end(&sb);
}

void kp_log_field_array(kp_log_level_t level, const char *message, const kp_log_field_t *fields,
                        size_t n)
{
    if (!kp_log_enabled(level))
        return;
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    line_begin(&sb, level);
    line_message(&sb, message, strlen(message));
    for (size_t i = 0; i < n; i++)
        field_typed(&sb, g_log.format, &fields[i]);
    line_end(&sb);
}
