/* Process-wide JSON-lines logging to stderr with Knative-like keys:
 * {"severity":"INFO","timestamp":"2026-11-25T10:00:00.123Z","logger":"queue-proxy",
 *  "message":"...", ...fixed fields..., ...extra fields}. One write(2) per line. */
#ifndef KP_LOG_H
#define KP_LOG_H

typedef enum { KP_LOG_DEBUG, KP_LOG_INFO, KP_LOG_WARN, KP_LOG_ERROR } kp_log_level_t;

/* One logger per process: call once at start, before any other thread
 * exists. Before it, lines go out as logger "kp" at level info. */
void kp_log_init(const char *logger, kp_log_level_t min_level);

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
 * kp_log_kv(KP_LOG_INFO, "scaled", "revision", "r1", "from", "0", NULL).
 * A NULL value is written as JSON null. */
void kp_log_kv(kp_log_level_t level, const char *message, ...) __attribute__((sentinel));

#endif
