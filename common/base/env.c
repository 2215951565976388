/* Environment readers; see env.h. Values are parsed wholly and strictly:
 * a typo in a Kubernetes manifest must stop the process at start with a
 * message that says which variable and what it accepts. */
#include "env.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void kp_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The bad value as it will be quoted in a message: bounded and printable,
 * so a binary blob in a variable cannot garble the log line. */
static void quote_value(const char *v, char *buf, size_t buflen)
{
    size_t i = 0, max = buflen - 4;
    for (; v[i] && i < max; i++) {
        unsigned char c = (unsigned char)v[i];
        buf[i] = (c < 0x20 || c == 0x7f || c == '"') ? '?' : (char)c;
    }
    if (v[i]) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
}

#define QUOTED(v, buf) (quote_value((v), (buf), sizeof(buf)), (buf))

const char *kp_env_get(const kp_env_src_t *src, const char *name)
{
    if (src && src->get)
        return src->get(name, src->ctx);
    return getenv(name);
}

/* Common start of every reader: 1 = use the default, 0 = parse *val,
 * -1 = error already reported. */
static int fetch(const kp_env_src_t *src, const char *name, int flags, int numeric,
                 const char **val, char *err, size_t errlen)
{
    *val = kp_env_get(src, name);
    if (!*val) {
        if (flags & KP_ENV_REQUIRED) {
            kp_errf(err, errlen, "%s: required but not set", name);
            return -1;
        }
        return 1;
    }
    if (**val == '\0') {
        if (flags & KP_ENV_NONEMPTY) {
            kp_errf(err, errlen, "%s: must not be empty", name);
            return -1;
        }
        if (numeric && !(flags & KP_ENV_REQUIRED))
            return 1;
    }
    return 0;
}

int kp_env_string(const kp_env_src_t *src, const char *name, int flags, const char *def,
                  const char **out, char *err, size_t errlen)
{
    const char *v;
    int rc = fetch(src, name, flags, 0, &v, err, errlen);
    if (rc < 0)
        return -1;
    *out = rc ? def : v;
    return 0;
}

int kp_parse_int(const char *s, long long *out)
{
    int neg = 0;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (!*s)
        return -1;
    unsigned long long acc = 0;
    /* Accumulate as unsigned against the magnitude limit of the sign. */
    unsigned long long limit =
        neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (acc > (limit - d) / 10)
            return -1;
        acc = acc * 10 + d;
    }
    if (neg)
        *out = acc == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)acc;
    else
        *out = (long long)acc;
    return 0;
}

static void describe_range(char *buf, size_t len, long long min, long long max)
{
    if (max == LLONG_MAX)
        snprintf(buf, len, "an integer >= %lld", min);
    else if (min == LLONG_MIN)
        snprintf(buf, len, "an integer <= %lld", max);
    else
        snprintf(buf, len, "an integer from %lld to %lld", min, max);
}

int kp_env_int(const kp_env_src_t *src, const char *name, int flags, long long def, long long min,
               long long max, long long *out, char *err, size_t errlen)
{
    const char *v;
    char q[80], want[80];
    int rc = fetch(src, name, flags, 1, &v, err, errlen);
    if (rc < 0)
        return -1;
    if (rc) {
        *out = def;
        return 0;
    }
    describe_range(want, sizeof want, min, max);
    long long n;
    if (kp_parse_int(v, &n) < 0) {
        /* Distinguish overflow from junk: all digits means too large. */
        const char *d = v + (*v == '+' || *v == '-');
        int digits = *d && strspn(d, "0123456789") == strlen(d);
        kp_errf(err, errlen, "%s=\"%s\": %s (expected %s)", name, QUOTED(v, q),
                 digits ? "out of range" : "not an integer", want);
        return -1;
    }
    if (n < min || n > max) {
        kp_errf(err, errlen, "%s=\"%s\": out of range (expected %s)", name, QUOTED(v, q), want);
        return -1;
    }
    *out = n;
    return 0;
}

int kp_env_port(const kp_env_src_t *src, const char *name, int flags, int def, int *out, char *err,
                size_t errlen)
{
    long long n;
    if (kp_env_int(src, name, flags, def, 1, 65535, &n, err, errlen) < 0)
        return -1;
    *out = (int)n;
    return 0;
}

int kp_parse_bool(const char *s, int *out)
{
    if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0)
        *out = 1;
    else if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0)
        *out = 0;
    else
        return -1;
    return 0;
}

int kp_env_bool(const kp_env_src_t *src, const char *name, int flags, int def, int *out, char *err,
                size_t errlen)
{
    const char *v;
    char q[80];
    int rc = fetch(src, name, flags, 1, &v, err, errlen);
    if (rc < 0)
        return -1;
    if (rc) {
        *out = def;
        return 0;
    }
    if (kp_parse_bool(v, out) < 0) {
        kp_errf(err, errlen, "%s=\"%s\": not a boolean (expected true, false, 1 or 0)", name,
                 QUOTED(v, q));
        return -1;
    }
    return 0;
}

int kp_parse_seconds_ms(const char *s, uint64_t *out_ms)
{
    /* Whole seconds are bounded so that the ms value cannot overflow. */
    const uint64_t max_s = UINT64_MAX / 1000 - 1;
    uint64_t secs = 0, frac_ms = 0;
    int digits = 0, round_up = 0;
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        if (secs > (max_s - (uint64_t)(*s - '0')) / 10)
            return -1;
        secs = secs * 10 + (uint64_t)(*s - '0');
    }
    if (*s == '.') {
        int n = 0;
        for (s++; *s >= '0' && *s <= '9'; s++, digits++) {
            if (n < 3) {
                frac_ms = frac_ms * 10 + (uint64_t)(*s - '0');
                n++;
            } else if (*s != '0') {
                round_up = 1;
            }
        }
        for (; n < 3; n++)
            frac_ms *= 10;
    }
    if (*s || !digits)
        return -1;
    *out_ms = secs * 1000 + frac_ms + (uint64_t)round_up;
    return 0;
}

int kp_env_seconds(const kp_env_src_t *src, const char *name, int flags, uint64_t def_ms,
                   uint64_t max_ms, uint64_t *out_ms, char *err, size_t errlen)
{
    const char *v;
    char q[80];
    int rc = fetch(src, name, flags, 1, &v, err, errlen);
    if (rc < 0)
        return -1;
    if (rc) {
        *out_ms = def_ms;
        return 0;
    }
    uint64_t ms;
    if (kp_parse_seconds_ms(v, &ms) < 0) {
        kp_errf(err, errlen,
                 "%s=\"%s\": not a number of seconds (expected a non-negative integer or "
                 "decimal, e.g. 30 or 0.5)",
                 name, QUOTED(v, q));
        return -1;
    }
    if (ms > max_ms) {
        kp_errf(err, errlen, "%s=\"%s\": out of range (expected at most %llu.%03llu seconds)",
                 name, QUOTED(v, q), (unsigned long long)(max_ms / 1000),
                 (unsigned long long)(max_ms % 1000));
        return -1;
    }
    *out_ms = ms;
    return 0;
}

int kp_env_double(const kp_env_src_t *src, const char *name, int flags, double def, double min,
                  double max, double *out, char *err, size_t errlen)
{
    const char *v;
    char q[80];
    int rc = fetch(src, name, flags, 1, &v, err, errlen);
    if (rc < 0)
        return -1;
    if (rc) {
        *out = def;
        return 0;
    }
    /* strtod also takes hex, "inf", "nan" and leading spaces: refuse them. */
    char *end = NULL;
    errno = 0;
    double d = strtod(v, &end);
    if (strspn(v, "0123456789+-.eE") != strlen(v) || end == v || *end || errno == ERANGE ||
        !isfinite(d)) {
        kp_errf(err, errlen, "%s=\"%s\": not a number (expected a decimal number from %g to %g)",
                 name, QUOTED(v, q), min, max);
        return -1;
    }
    if (d < min || d > max) {
        kp_errf(err, errlen, "%s=\"%s\": out of range (expected a decimal number from %g to %g)",
                 name, QUOTED(v, q), min, max);
        return -1;
    }
    *out = d;
    return 0;
}
