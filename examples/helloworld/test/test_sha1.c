/* Known-answer tests for sha1.c and base64.c (FIPS 180 examples, RFC 4648
 * §10, RFC 6455 §1.3). Not part of the app; build and run by hand:
 *   cc -Wall -Wextra -Werror -o /tmp/test_sha1 examples/helloworld/test/test_sha1.c \
 *      examples/helloworld/sha1.c examples/helloworld/base64.c && /tmp/test_sha1
 * With an argument, prints the SHA-1 of stdin (for cross-checks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base64.h"
#include "../sha1.h"

static void hex(const uint8_t d[HW_SHA1_LEN], char out[41])
{
    for (int i = 0; i < HW_SHA1_LEN; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static int check_sha1(const char *name, const void *data, size_t len, size_t repeat,
                      const char *want)
{
    hw_sha1_t s;
    uint8_t d[HW_SHA1_LEN];
    char got[41];
    hw_sha1_init(&s);
    for (size_t i = 0; i < repeat; i++)
        hw_sha1_update(&s, data, len);
    hw_sha1_final(&s, d);
    hex(d, got);
    if (strcmp(got, want) != 0) {
        printf("FAIL sha1 %s: got %s want %s\n", name, got, want);
        return 1;
    }
    printf("ok   sha1 %s\n", name);
    return 0;
}

static int check_b64(const char *in, const char *want)
{
    char out[64];
    hw_base64_encode((const uint8_t *)in, strlen(in), out);
    if (strcmp(out, want) != 0) {
        printf("FAIL base64 \"%s\": got %s want %s\n", in, out, want);
        return 1;
    }
    printf("ok   base64 \"%s\"\n", in);
    return 0;
}

int main(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        hw_sha1_t s;
        uint8_t d[HW_SHA1_LEN];
        char buf[4096], out[41];
        size_t n;
        hw_sha1_init(&s);
        while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
            hw_sha1_update(&s, buf, n);
        hw_sha1_final(&s, d);
        hex(d, out);
        puts(out);
        return 0;
    }
    int fails = 0;
    fails += check_sha1("empty", "", 0, 1, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    fails += check_sha1("abc", "abc", 3, 1, "a9993e364706816aba3e25717850c26c9cd0d89d");
    fails += check_sha1("448 bits", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
                        1, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    fails += check_sha1("million a", "aaaaaaaaaa", 10, 100000,
                        "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    fails += check_b64("", "");
    fails += check_b64("f", "Zg==");
    fails += check_b64("fo", "Zm8=");
    fails += check_b64("foo", "Zm9v");
    fails += check_b64("foobar", "Zm9vYmFy");

    /* RFC 6455 §1.3: the handshake's worked example. */
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    hw_sha1_t s;
    uint8_t d[HW_SHA1_LEN];
    char accept[HW_BASE64_LEN(HW_SHA1_LEN) + 1];
    hw_sha1_init(&s);
    hw_sha1_update(&s, key, strlen(key));
    hw_sha1_final(&s, d);
    hw_base64_encode(d, sizeof d, accept);
    if (strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != 0) {
        printf("FAIL websocket accept: %s\n", accept);
        fails++;
    } else {
        printf("ok   websocket accept\n");
    }
    return fails ? EXIT_FAILURE : EXIT_SUCCESS;
}
