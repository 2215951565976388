/* Process-wide logging to stderr, one line per entry. By default JSON with
 * Knative-like keys:
 * {"severity":"INFO","timestamp":"2026-11-25T10:00:00.123Z","logger":"queue-proxy",
 *  "message":"...", ...fixed fields..., ...extra fields}
 * or, for a terminal, plain text with the same content:
 * 2026-11-25T10:00:00.123Z INFO    queue-proxy: ...  key=value key="two words"
 * Logging never waits for stderr: lines go through a bounded buffer
 * (log_writer.h), and those that find it full are dropped and counted. */
#ifndef KP_LOG_H
#define KP_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

typedef enum { KP_LOG_DEBUG, KP_LOG_INFO, KP_LOG_WARN, KP_LOG_ERROR } kp_log_level_t;

typedef enum { KP_LOG_FORMAT_JSON, KP_LOG_FORMAT_TEXT } kp_log_format_t;

/* The variable every program of the project reads for its log format:
 * json (the default, what Knative's tooling reads) or text. */
#define KP_LOG_FORMAT_ENV "KP_LOG_FORMAT"

/* One logger per process: call once at start, before any other thread
 * exists. Before it, lines go out as logger "kp" at level info. The format
 * comes from KP_LOG_FORMAT (a value it does not know is reported in a
 * warning line, and JSON is used). */
void kp_log_init(const char *logger, kp_log_level_t min_level);
/* "json" or "text" (any case); "" -> json. Anything else -> -1. */
int kp_log_format_parse(const char *s, kp_log_format_t *out);
/* Same rule as init: at start only. */
void kp_log_set_format(kp_log_format_t format);

/* Adds a string field to every later line (e.g. the revision and pod, as
 * Knative's "knative.dev/key" and "knative.dev/pod"). Same rule as init:
 * at start only. Silently ignored past a small fixed budget. */
void kp_log_add_field(const char *key, const char *value);

/* "debug", "info", "warn", "error" (any case); "" -> info. zap's higher
 * levels "dpanic", "panic" and "fatal", which a Knative config-logging may
 * name, map to error. Anything else -> -1. */
int kp_log_level_parse(const char *s, kp_log_level_t *out);
const char *kp_log_level_name(kp_log_level_t level);

int kp_log_enabled(kp_log_level_t level);

void kp_log(kp_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Message plus extra string fields as NULL-terminated key/value pairs:
 * kp_log_kv(KP_LOG_INFO, "pod ready", "revision", "r1", "pod", "p1", NULL).
 * A NULL value is written as JSON null. */
void kp_log_kv(kp_log_level_t level, const char *message, ...) __attribute__((sentinel));

/* A typed extra field: numbers go out as JSON numbers, not strings. */
typedef enum {
    KP_LOG_FIELD_STR, /* NULL is written as null */
    KP_LOG_FIELD_INT,
    KP_LOG_FIELD_NUM, /* NaN and infinities are written as null */
    KP_LOG_FIELD_BOOL,
} kp_log_field_type_t;

typedef struct kp_log_field {
    const char *key;
    kp_log_field_type_t type;
    union {
        const char *s;
        long long i;
        double d;
        int b;
    } v;
} kp_log_field_t;

#define KP_LOG_STR(key, value) ((kp_log_field_t){(key), KP_LOG_FIELD_STR, {.s = (value)}})
#define KP_LOG_INT(key, value)                                                                     \
    ((kp_log_field_t){(key), KP_LOG_FIELD_INT, {.i = (long long)(value)}})
#define KP_LOG_NUM(key, value) ((kp_log_field_t){(key), KP_LOG_FIELD_NUM, {.d = (double)(value)}})
#define KP_LOG_BOOL(key, value) ((kp_log_field_t){(key), KP_LOG_FIELD_BOOL, {.b = !!(value)}})

void kp_log_field_array(kp_log_level_t level, const char *message, const kp_log_field_t *fields,
                        size_t n);
/* kp_log_fields(KP_LOG_INFO, "scale", KP_LOG_STR("revision", key),
 *               KP_LOG_INT("from", 0), KP_LOG_INT("to", 1)) */
#define kp_log_fields(level, message, ...)                                                         \
    kp_log_field_array((level), (message), (const kp_log_field_t[]){__VA_ARGS__},                  \
                       sizeof((const kp_log_field_t[]){__VA_ARGS__}) / sizeof(kp_log_field_t))

typedef enum { KP_LOG_STDERR, KP_LOG_STDOUT } kp_log_stream_t;

/* A line the caller rendered itself (the queue-proxy's request log goes to
 * stdout, as Knative's does), ending in '\n': same buffering and dropping
 * as the log lines. */
void kp_log_line(kp_log_stream_t stream, const char *line, size_t len);

/* Lines dropped on a stream so far because it did not take them (a pipe
 * nobody reads, or reads too slowly). */
uint64_t kp_log_dropped_lines(kp_log_stream_t stream);

/* Appends the dropped-lines counter of both streams as Prometheus text
 * (kp_log_lines_dropped_total{stream="stderr"|"stdout"}). */
void kp_log_render_metrics(kp_strbuf_t *out);

/* Waits at most timeout_ms for the lines logged so far to be written: 0
 * when they were, -1 if not. At exit this runs by itself, for at most
 * two seconds, so that an exit never hangs on a stuck pipe. */
int kp_log_flush(int timeout_ms);

#endif
