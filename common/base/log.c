/* JSON-lines logger; see log.h. The only process-wide mutable state in the
 * project, by design: one logger per process, set up before the loop runs. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "strbuf.h"

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

/* A single write keeps lines whole: stderr is a pipe under Kubernetes and
 * writes up to PIPE_BUF are atomic; longer ones are at least not split by
 * our own lines. */
static void line_end(kp_strbuf_t *sb)
{
    kp_strbuf_append(sb, g_log.fields, g_log.fields_len);
    kp_strbuf_puts(sb, "}\n");
    size_t off = 0;
    while (off < sb->len) {
        ssize_t n = write(STDERR_FILENO, sb->data + off, sb->len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        off += (size_t)n;
    }
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
