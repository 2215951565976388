/* Fuzzes common/http/path.c: each input is a request target. Cleaning must
 * stay within its documented bound and give a clean path (rooted, no empty,
 * "." or ".." segment) that cleans to itself; a target's route match must
 * agree with cleaning its unescaped path by hand. */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/head.h"
#include "http/path.h"

static int contains(const char *s, size_t n, const char *needle)
{
    return memmem(s, n, needle, strlen(needle)) != NULL;
}

static int ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static void check_clean(const char *in, size_t len)
{
    char *out = malloc(len + 1);
    char *again = malloc(len + 1);
    if (!out || !again)
        abort();
    size_t n = kp_http_path_clean(in, len, out);
    if (n < 1 || n > len + 1 || out[0] != '/')
        abort();
    if (contains(out, n, "//") || contains(out, n, "/./") || contains(out, n, "/../") ||
        ends_with(out, n, "/.") || ends_with(out, n, "/.."))
        abort();
    if (kp_http_path_clean(out, n, again) != n || memcmp(out, again, n) != 0)
        abort(); /* cleaning is idempotent */
    free(out);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *target = (const char *)data;
    check_clean(target, size);
    if (size > KP_HTTP_MAX_URL)
        return 0;
    size_t path_len;
    const char *path = kp_http_target_path(target, size, &path_len);
    int matches = kp_http_target_is(target, size, "/wait-for-drain");
    if (!path) {
        if (matches)
            abort();
        return 0;
    }
    char unescaped[KP_HTTP_MAX_URL];
    char cleaned[KP_HTTP_MAX_URL + 1];
    long n = kp_http_path_unescape(path, path_len, unescaped);
    int expected = 0;
    if (n >= 0) {
        size_t c = kp_http_path_clean(unescaped, (size_t)n, cleaned);
        expected = c == 15 && memcmp(cleaned, "/wait-for-drain", 15) == 0;
    }
    if (matches != expected)
        abort();
    return 0;
}
