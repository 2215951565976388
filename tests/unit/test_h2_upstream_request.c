/* Unit tests for common/http/h2_upstream_request.c: the header list an h2c
 * next hop gets (RFC 9113 §8.3.1 pseudo-headers, §8.2.1 lowercase names,
 * §8.2.2 no connection-specific fields, te only as "trailers") with the
 * proxy's edits applied as on the HTTP/1.1 path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/h2_upstream_request.h"

#define H(n, v)                                                                                    \
    {                                                                                              \
        n, sizeof n - 1, v, sizeof v - 1                                                           \
    }

/* The value of name in the list ("" joined by "|" when it comes more than
 * once), NULL when absent. */
static const char *value_of(const kp_h2c_request_head_t *h, const char *name)
{
    static char out[512];
    out[0] = '\0';
    int found = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (h->nv[i].namelen == strlen(name) &&
            memcmp(h->nv[i].name, name, h->nv[i].namelen) == 0) {
            size_t len = strlen(out);
            snprintf(out + len, sizeof out - len, "%s%.*s", found ? "|" : "",
                     (int)h->nv[i].valuelen, (const char *)h->nv[i].value);
            found = 1;
        }
    }
    return found ? out : NULL;
}

static kp_http_request_t request(const kp_http_header_t *hs, size_t n)
{
    kp_http_request_t r = {
        .method = "POST",
        .url = "/svc.Echo/Say?x=1",
        .url_len = 17,
        .host = "app.example.com",
        .host_len = 15,
        .http_major = 2,
        .headers = hs,
        .n_headers = n,
        .content_length = -1,
        .chunked = 1,
        .has_body = 1,
        .peer_ip = "10.0.0.7",
    };
    return r;
}

static void pseudo_headers_come_first_from_the_request(void **state)
{
    kp_http_header_t hs[] = {H("Content-Type", "application/grpc")};
    kp_http_request_t r = request(hs, 1);
    kp_h2c_request_head_t h;
    kp_h2c_request_head_init(&h);
    assert_int_equal(kp_h2c_request_head_build(&h, &r, NULL), 0);
    assert_true(h.n >= 4);
    const char *want[][2] = {{":method", "POST"},
                             {":scheme", "http"},
                             {":path", "/svc.Echo/Say?x=1"},
                             {":authority", "app.example.com"}};
    for (int i = 0; i < 4; i++) {
        assert_memory_equal(h.nv[i].name, want[i][0], strlen(want[i][0]));
        assert_memory_equal(h.nv[i].value, want[i][1], strlen(want[i][1]));
    }
    assert_string_equal(value_of(&h, "content-type"), "application/grpc");
    /* a body of unknown length: no content-length invented */
    assert_null(value_of(&h, "content-length"));
    kp_h2c_request_head_free(&h);
}

static void connection_specific_fields_are_dropped_and_names_lowercased(void **state)
{
    kp_http_header_t hs[] = {
        H("Connection", "keep-alive, X-Hop"),
        H("Keep-Alive", "timeout=5"),
        H("Proxy-Connection", "keep-alive"),
        H("Transfer-Encoding", "chunked"),
        H("Upgrade", "websocket"),
        H("X-Hop", "named in Connection"),
        H("Host", "other.example.com"),
        H("TE", "gzip, trailers"),
        H("X-Custom-Thing", "kept"),
        H("Cookie", "a=1"),
        H("cookie", "b=2"),
    };
    kp_http_request_t r = request(hs, sizeof hs / sizeof hs[0]);
    kp_h2c_request_head_t h;
    kp_h2c_request_head_init(&h);
    assert_int_equal(kp_h2c_request_head_build(&h, &r, NULL), 0);
    const char *gone[] = {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
        "x-hop",      "host"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        if (value_of(&h, gone[i]))
            fail_msg("%s was sent", gone[i]);
    assert_string_equal(value_of(&h, "te"), "trailers");
    assert_string_equal(value_of(&h, "x-custom-thing"), "kept");
    assert_string_equal(value_of(&h, "cookie"), "a=1|b=2");
    for (size_t i = 0; i < h.n; i++)
        for (size_t k = 0; k < h.nv[i].namelen; k++)
            if (h.nv[i].name[k] >= 'A' && h.nv[i].name[k] <= 'Z')
                fail_msg("name %.*s not lowercase", (int)h.nv[i].namelen,
                         (const char *)h.nv[i].name);
    kp_h2c_request_head_free(&h);
}

static void te_without_trailers_is_not_sent(void **state)
{
    kp_http_header_t hs[] = {H("TE", "gzip")};
    kp_http_request_t r = request(hs, 1);
    kp_h2c_request_head_t h;
    kp_h2c_request_head_init(&h);
    assert_int_equal(kp_h2c_request_head_build(&h, &r, NULL), 0);
    assert_null(value_of(&h, "te"));
    kp_h2c_request_head_free(&h);
}

static void edits_apply_as_for_http1(void **state)
{
    static const char *const drop[] = {"Knative-Serving-Revision", "K-Original-Host"};
    kp_http_header_t hs[] = {H("Knative-Serving-Revision", "r1"), H("K-Original-Host", "h"),
                             H("X-Forwarded-For", "1.2.3.4"), H("Forwarded", "for=1.2.3.4"),
                             H("Content-Length", "999")};
    kp_http_request_t r = request(hs, sizeof hs / sizeof hs[0]);
    r.chunked = 0;
    r.content_length = 12;
    kp_proxy_edits_t e = {
        .host = "10.1.2.3:8013",
        .host_len = 13,
        .drop = drop,
        .n_drop = 2,
        .add = "K-Original-Host: app.example.com\r\nK-Proxy-Request:  activator \r\n",
        .add_len = 64,
        .append_forwarded_for = 1,
    };
    kp_h2c_request_head_t h;
    kp_h2c_request_head_init(&h);
    assert_int_equal(kp_h2c_request_head_build(&h, &r, &e), 0);
    assert_string_equal(value_of(&h, ":authority"), "10.1.2.3:8013");
    assert_null(value_of(&h, "knative-serving-revision"));
    assert_string_equal(value_of(&h, "k-original-host"), "app.example.com");
    assert_string_equal(value_of(&h, "k-proxy-request"), "activator");
    assert_string_equal(value_of(&h, "x-forwarded-for"), "1.2.3.4, 10.0.0.7");
    assert_string_equal(value_of(&h, "forwarded"), "for=1.2.3.4, for=10.0.0.7");
    /* from what the request's framing says, not the field as received */
    assert_string_equal(value_of(&h, "content-length"), "12");
    /* built again from scratch: nothing left over */
    assert_int_equal(kp_h2c_request_head_build(&h, &r, NULL), 0);
    assert_null(value_of(&h, "k-proxy-request"));
    assert_string_equal(value_of(&h, ":authority"), "app.example.com");
    kp_h2c_request_head_free(&h);
}

static void no_host_means_no_authority_and_an_empty_target_is_slash(void **state)
{
    kp_http_request_t r = request(NULL, 0);
    r.host = NULL;
    r.host_len = 0;
    r.url = "";
    r.url_len = 0;
    kp_h2c_request_head_t h;
    kp_h2c_request_head_init(&h);
    assert_int_equal(kp_h2c_request_head_build(&h, &r, NULL), 0);
    assert_null(value_of(&h, ":authority"));
    assert_string_equal(value_of(&h, ":path"), "/");
    kp_h2c_request_head_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pseudo_headers_come_first_from_the_request),
        cmocka_unit_test(connection_specific_fields_are_dropped_and_names_lowercased),
        cmocka_unit_test(te_without_trailers_is_not_sent),
        cmocka_unit_test(edits_apply_as_for_http1),
        cmocka_unit_test(no_host_means_no_authority_and_an_empty_target_is_slash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
