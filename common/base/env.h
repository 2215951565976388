/* Reading configuration from environment variables, with errors that name
 * the variable, quote the bad value and say what is accepted:
 *   CONTAINER_CONCURRENCY="ten": not an integer (expected an integer >= 0) */
#ifndef KP_ENV_H
#define KP_ENV_H

#include <stddef.h>
#include <stdint.h>

/* Where values come from: getenv by default, a table in tests. get returns
 * NULL for an unset variable. */
typedef const char *(*kp_env_get_fn)(const char *name, void *ctx);
typedef struct kp_env_src {
    kp_env_get_fn get;
    void *ctx;
} kp_env_src_t;

/* flags */
#define KP_ENV_REQUIRED 1 /* unset -> "NAME: required but not set" */
#define KP_ENV_NONEMPTY 2 /* set to "" -> "NAME: must not be empty" */

/* Every reader: src NULL means getenv. Returns 0 with *out set, or -1 with
 * a message in err. *out is def when the variable is unset; the non-string
 * readers also use def for an optional variable set to "", while a
 * required one set to "" is malformed. */

/* The raw value, or NULL when unset (no error then, even if required). */
const char *kp_env_get(const kp_env_src_t *src, const char *name);

/* *out points into the environment (or the table), or is def. */
int kp_env_string(const kp_env_src_t *src, const char *name, int flags, const char *def,
                  const char **out, char *err, size_t errlen);

/* Decimal integer, optional sign, nothing else: no spaces, no trailing
 * junk, no overflow; must lie in [min, max]. */
int kp_env_int(const kp_env_src_t *src, const char *name, int flags, long long def, long long min,
               long long max, long long *out, char *err, size_t errlen);

/* A TCP port: integer 1..65535. */
int kp_env_port(const kp_env_src_t *src, const char *name, int flags, int def, int *out, char *err,
                size_t errlen);

/* true/false (any case) or 1/0. */
int kp_env_bool(const kp_env_src_t *src, const char *name, int flags, int def, int *out, char *err,
                size_t errlen);

/* Non-negative integer or decimal number of seconds ("30", "0.5", "2.25"),
 * returned in milliseconds, rounded up so that a tiny positive value never
 * becomes 0 (which callers read as "off"); must be <= max_ms. */
int kp_env_seconds(const kp_env_src_t *src, const char *name, int flags, uint64_t def_ms,
                   uint64_t max_ms, uint64_t *out_ms, char *err, size_t errlen);

/* Finite decimal number (sign, fraction, exponent allowed) in [min, max]. */
int kp_env_double(const kp_env_src_t *src, const char *name, int flags, double def, double min,
                  double max, double *out, char *err, size_t errlen);

/* Parsers on a raw string, for values that do not come from the
 * environment (0 or -1; no message). */
int kp_parse_int(const char *s, long long *out);
int kp_parse_bool(const char *s, int *out);
int kp_parse_seconds_ms(const char *s, uint64_t *out_ms);

/* Formats an error message into err (ignored when err is NULL or empty). */
void kp_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
