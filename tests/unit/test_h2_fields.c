/* Unit tests for common/http/h2_fields.c: raw HTTP/1-style header lines
 * become HTTP/2 fields by RFC 9113 §8.2 (lowercase names, connection-specific
 * fields dropped, TE only as "trailers", values trimmed), with the names and
 * values owned by the list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/h2_fields.h"

static void assert_field(const kp_h2_fields_t *f, size_t i, const char *name, const char *value)
{
    assert_true(i < f->n);
    const nghttp2_nv *nv = &f->nv[i];
    if (nv->namelen != strlen(name) || memcmp(nv->name, name, nv->namelen) != 0 ||
        nv->valuelen != strlen(value) || memcmp(nv->value, value, nv->valuelen) != 0)
        fail_msg("field %zu is \"%.*s: %.*s\", want \"%s: %s\"", i, (int)nv->namelen, nv->name,
                 (int)nv->valuelen, nv->value, name, value);
}

static void from_lines(kp_h2_fields_t *f, const char *lines)
{
    kp_h2_fields_init(f);
    assert_int_equal(kp_h2_fields_add_lines(f, lines, strlen(lines)), 0);
    kp_h2_fields_finish(f);
}

static void names_are_lowercased_and_values_trimmed(void **state)
{
    (void)state;
    kp_h2_fields_t f;
    from_lines(&f, "Content-Type: text/plain\r\nX-Custom-ID:  42 \r\nSet-Cookie:a=b\r\n");
    assert_int_equal(f.n, 3);
    assert_field(&f, 0, "content-type", "text/plain");
    assert_field(&f, 1, "x-custom-id", "42");
    assert_field(&f, 2, "set-cookie", "a=b");
    kp_h2_fields_free(&f);
}

static void connection_specific_fields_are_dropped(void **state)
{
    (void)state;
    kp_h2_fields_t f;
    from_lines(&f, "Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nProxy-Connection: x\r\n"
                   "Transfer-Encoding: chunked\r\nUpgrade: websocket\r\nTE: gzip\r\n"
                   "Server: kp\r\n");
    assert_int_equal(f.n, 1);
    assert_field(&f, 0, "server", "kp");
    kp_h2_fields_free(&f);
}

static void te_trailers_is_kept(void **state)
{
    (void)state;
    kp_h2_fields_t f;
    from_lines(&f, "TE: trailers\r\n");
    assert_int_equal(f.n, 1);
    assert_field(&f, 0, "te", "trailers");
    kp_h2_fields_free(&f);
    assert_false(kp_h2_field_is_connection_specific("te", 2, "trailers", 8));
    assert_true(kp_h2_field_is_connection_specific("TE", 2, "trailers, deflate", 17));
    assert_true(kp_h2_field_is_connection_specific("Connection", 10, "close", 5));
    assert_false(kp_h2_field_is_connection_specific("content-length", 14, "5", 1));
}

static void malformed_lines_and_pseudo_headers_are_skipped(void **state)
{
    (void)state;
    kp_h2_fields_t f;
    from_lines(&f, "no colon here\r\n: empty name\r\n:status: 200\r\nBad Name: x\r\n"
                   "Grpc-Status: 0\n"
                   "Last: one");
    assert_int_equal(f.n, 2);
    assert_field(&f, 0, "grpc-status", "0"); /* LF alone ends a line too */
    assert_field(&f, 1, "last", "one");      /* and so does the end */
    kp_h2_fields_free(&f);
}

static void fields_survive_the_buffer_growing(void **state)
{
    (void)state;
    kp_h2_fields_t f;
    kp_h2_fields_init(&f);
    assert_int_equal(kp_h2_fields_add(&f, ":status", 7, "200", 3), 0);
    char name[32], value[600];
    memset(value, 'v', sizeof value);
    for (int i = 0; i < 100; i++) {
        int n = snprintf(name, sizeof name, "x-field-%d", i);
        assert_int_equal(kp_h2_fields_add(&f, name, (size_t)n, value, sizeof value), 0);
    }
    kp_h2_fields_finish(&f);
    assert_int_equal(f.n, 101);
    assert_field(&f, 0, ":status", "200");
    assert_int_equal(f.nv[100].namelen, strlen("x-field-99"));
    assert_memory_equal(f.nv[100].name, "x-field-99", f.nv[100].namelen);
    assert_int_equal(f.nv[100].valuelen, sizeof value);
    assert_memory_equal(f.nv[100].value, value, sizeof value);
    kp_h2_fields_free(&f);
}

static void nothing_gives_an_empty_list(void **state)
{
    (void)state;
    kp_h2_fields_t f;
    from_lines(&f, "");
    assert_int_equal(f.n, 0);
    kp_h2_fields_free(&f);
    kp_h2_fields_init(&f);
    assert_int_equal(kp_h2_fields_add_lines(&f, NULL, 0), 0);
    kp_h2_fields_finish(&f);
    assert_int_equal(f.n, 0);
    kp_h2_fields_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_are_lowercased_and_values_trimmed),
        cmocka_unit_test(connection_specific_fields_are_dropped),
        cmocka_unit_test(te_trailers_is_kept),
        cmocka_unit_test(malformed_lines_and_pseudo_headers_are_skipped),
        cmocka_unit_test(fields_survive_the_buffer_growing),
        cmocka_unit_test(nothing_gives_an_empty_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
