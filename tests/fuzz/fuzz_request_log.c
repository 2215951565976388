/* Fuzzes the request-log template compiler and renderer
 * (queue-proxy/request_log_compile.c and request_log_render.c). Input: the template, optionally followed by
 * a NUL byte and request bytes: a request-target line, then "Name: value"
 * header lines. Each compiled template renders a fixed realistic request
 * and the one from the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue-proxy/request_log.h"

#define MAX_HEADERS 16

static void render_check(const kp_reqlog_t *t, const kp_reqlog_entry_t *e,
                         const kp_reqlog_revision_t *rev)
{
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_reqlog_render(t, e, rev, &sb);
    if (getenv("FUZZ_DEBUG"))
        fprintf(stderr, "%s", sb.data);
    /* Always exactly one line, newline-terminated. */
    if (sb.len == 0 || sb.data[sb.len - 1] != '\n')
        abort();
    kp_strbuf_free(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t tmpl_len = nul ? (size_t)(nul - data) : size;
    char *tmpl = malloc(tmpl_len + 1);
    if (!tmpl)
        return 0;
    memcpy(tmpl, data, tmpl_len);
    tmpl[tmpl_len] = '\0';

    kp_reqlog_t *t = NULL;
    char err[256];
    int rc = kp_reqlog_compile(tmpl, &t, err, sizeof err);
    if (getenv("FUZZ_DEBUG")) /* to check what a seed reaches */
        fprintf(stderr, "template: %s\n", rc == 0 ? "compiled" : err);
    if (rc != 0) {
        if (t || err[0] == '\0' || strnlen(err, sizeof err) == sizeof err)
            abort();
        free(tmpl);
        return 0;
    }

    static const kp_reqlog_header_t fixed_headers[] = {
        {"Host", 4, "hello.default.example.com", 25},
        {"User-Agent", 10, "curl/7.88.1", 11},
        {"traceparent", 11, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 55},
        {"X-B3-TraceId", 12, "463ac35c9f6413ad", 16},
        {"Referer", 7, "http://example.com/\"quoted\"\n", 28},
    };
    const kp_reqlog_revision_t rev = {"hello-00001", "default",         "hello",
                                      "hello",       "hello-00001-pod", "10.0.0.7"};
    kp_reqlog_entry_t e = {
        .method = "POST",
        .uri = "/path/x?q=1&r=%20",
        .uri_len = 17,
        .remote_addr = "10.0.0.1:5555",
        .headers = fixed_headers,
        .n_headers = sizeof fixed_headers / sizeof fixed_headers[0],
        .content_length = 42,
        .status = 200,
        .response_size = 12,
        .latency_s = 0.0012345,
    };
    render_check(t, &e, &rev);

    if (nul) {
        /* The request from the input: its bytes need not be valid text. */
        const char *p = (const char *)nul + 1, *end = (const char *)data + size;
        kp_reqlog_header_t hs[MAX_HEADERS];
        size_t n = 0;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        kp_reqlog_entry_t in = {
            .method = "GET",
            .uri = p,
            .uri_len = nl ? (size_t)(nl - p) : (size_t)(end - p),
            .proto = "HTTP/1.0",
            .content_length = -1,
            .status = 503,
            .response_size = -1,
            .latency_s = 1e300,
        };
        p = nl ? nl + 1 : end;
        while (p < end && n < MAX_HEADERS) {
            nl = memchr(p, '\n', (size_t)(end - p));
            const char *le = nl ? nl : end;
            const char *colon = memchr(p, ':', (size_t)(le - p));
            if (colon) {
                const char *v = colon + 1;
                while (v < le && *v == ' ')
                    v++;
                hs[n++] = (kp_reqlog_header_t){p, (size_t)(colon - p), v, (size_t)(le - v)};
            }
            p = nl ? nl + 1 : end;
        }
        in.headers = hs;
        in.n_headers = n;
        const kp_reqlog_revision_t empty_rev = {0};
        render_check(t, &in, &empty_rev);
    }
    kp_reqlog_free(t);
    free(tmpl);
    return 0;
}
