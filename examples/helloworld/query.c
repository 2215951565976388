/* Request-target parsing for the test parameters; see query.h. Values are
 * plain decimal (no percent-decoding is needed for digits), checked
 * strictly so that a typo in a test shows up as a 400, not as a silent
 * default. */
#include "query.h"

#include <stdio.h>
#include <string.h>

#include "base/env.h"

void hw_target_split(const char *url, size_t len, const char **path, size_t *path_len,
                     const char **query, size_t *query_len)
{
    const char *end = url + len;
    const char *p = url;
    /* RFC 9112 §3.2.2: absolute form, as sent to proxies. */
    const char *scheme = memchr(url, ':', len);
    if (len > 0 && url[0] != '/' && scheme && end - scheme >= 3 && scheme[1] == '/' &&
        scheme[2] == '/') {
        p = memchr(scheme + 3, '/', (size_t)(end - scheme - 3));
        if (!p)
            p = end;
    }
    const char *q = memchr(p, '?', (size_t)(end - p));
    const char *frag = memchr(p, '#', (size_t)(end - p));
    const char *path_end = q ? q : frag ? frag : end;
    if (p == path_end) {
        *path = "/";
        *path_len = 1;
    } else {
        *path = p;
        *path_len = (size_t)(path_end - p);
    }
    if (q) {
        const char *q_end = frag && frag > q ? frag : end;
        *query = q + 1;
        *query_len = (size_t)(q_end - q - 1);
    } else {
        *query = "";
        *query_len = 0;
    }
}

static int name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(name, want, len) == 0;
}

/* Decimal in [min, max]; value is NUL-terminated. */
static int parse_range(const char *name, const char *value, unsigned long long min,
                       unsigned long long max, uint64_t *out, char *err, size_t errlen)
{
    long long n;
    if (kp_parse_int(value, &n) != 0 || n < 0 || (unsigned long long)n < min ||
        (unsigned long long)n > max) {
        snprintf(err, errlen, "%s=%s: expected an integer from %llu to %llu\n", name, value, min,
                 max);
        return -1;
    }
    *out = (uint64_t)n;
    return 0;
}

static int apply(hw_query_t *out, const char *name, size_t name_len, const char *value, char *err,
                 size_t errlen)
{
    uint64_t v;
    if (name_is(name, name_len, "sleep"))
        return parse_range("sleep", value, 0, HW_MAX_SLEEP_MS, &out->sleep_ms, err, errlen);
    if (name_is(name, name_len, "status")) {
        /* 1xx are interim answers, not a response a handler can end with. */
        if (parse_range("status", value, 200, 599, &v, err, errlen) != 0)
            return -1;
        out->status = (int)v;
        return 0;
    }
    if (name_is(name, name_len, "bytes")) {
        out->has_bytes = 1;
        return parse_range("bytes", value, 0, HW_MAX_BYTES, &out->bytes, err, errlen);
    }
    if (name_is(name, name_len, "drip")) {
        out->has_drip = 1;
        return parse_range("drip", value, 0, HW_MAX_DRIP, &out->drip, err, errlen);
    }
    if (name_is(name, name_len, "hang")) {
        if (kp_parse_bool(value, &out->hang) != 0) {
            snprintf(err, errlen, "hang=%s: expected 1, 0, true or false\n", value);
            return -1;
        }
        return 0;
    }
    return 0;
}

int hw_query_parse(const char *q, size_t len, hw_query_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->status = 200;
    const char *end = q + len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pair_end = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pair_end - q));
        const char *name = q;
        size_t name_len = (size_t)((eq ? eq : pair_end) - q);
        char value[32];
        size_t value_len = eq ? (size_t)(pair_end - eq - 1) : 0;
        if (value_len >= sizeof value)
            value_len = sizeof value - 1; /* too long for any valid number: fails below */
        if (eq)
            memcpy(value, eq + 1, value_len);
        value[value_len] = '\0';
        if (name_len > 0 && apply(out, name, name_len, value, err, errlen) != 0)
            return -1;
        q = pair_end + (amp ? 1 : 0);
    }
    return 0;
}

int hw_query_is_plain(const hw_query_t *q)
{
    return q->sleep_ms == 0 && !q->hang && !q->has_bytes && !q->has_drip;
}
