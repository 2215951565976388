/* Known answers for the sample app's SHA-1 and base64 (FIPS 180 examples,
 * RFC 4648 §10, RFC 6455 §1.3), which its WebSocket handshake relies on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "examples/helloworld/base64.h"
#include "examples/helloworld/sha1.h"

static void sha1_hex(const void *data, size_t len, size_t repeat, char out[41])
{
    hw_sha1_t s;
    uint8_t d[HW_SHA1_LEN];
    hw_sha1_init(&s);
    for (size_t i = 0; i < repeat; i++)
        hw_sha1_update(&s, data, len);
    hw_sha1_final(&s, d);
    for (int i = 0; i < HW_SHA1_LEN; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void sha1_matches_fips_examples(void **state)
{
    char got[41];
    sha1_hex("", 0, 1, got);
    assert_string_equal(got, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    sha1_hex("abc", 3, 1, got);
    assert_string_equal(got, "a9993e364706816aba3e25717850c26c9cd0d89d");
    sha1_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, 1, got);
    assert_string_equal(got, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    sha1_hex("aaaaaaaaaa", 10, 100000, got);
    assert_string_equal(got, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

static void base64_matches_rfc4648(void **state)
{
    static const char *const cases[][2] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        hw_base64_encode((const uint8_t *)cases[i][0], strlen(cases[i][0]), out);
        assert_string_equal(out, cases[i][1]);
    }
}

static void websocket_accept_matches_rfc6455_example(void **state)
{
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    hw_sha1_t s;
    uint8_t d[HW_SHA1_LEN];
    char accept[HW_BASE64_LEN(HW_SHA1_LEN) + 1];
    hw_sha1_init(&s);
    hw_sha1_update(&s, key, strlen(key));
    hw_sha1_final(&s, d);
    hw_base64_encode(d, sizeof d, accept);
    assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sha1_matches_fips_examples),
        cmocka_unit_test(base64_matches_rfc4648),
        cmocka_unit_test(websocket_accept_matches_rfc6455_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
