/* Tests for queue-proxy/grpc_health.c: grpc.health.v1 messages encoded and
 * decoded by hand, byte for byte as protobuf and gRPC's framing have them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "queue-proxy/grpc_health.h"

static void request_without_a_service_is_an_empty_message(void **state)
{
    char out[KP_GRPC_HEALTH_MAX_SERVICE + 8];
    assert_int_equal(kp_grpc_health_request("", out), 5);
    assert_memory_equal(out, "\0\0\0\0\0", 5);
    assert_int_equal(kp_grpc_health_request(NULL, out), 5);
}

static void request_carries_the_service_as_field_one(void **state)
{
    char out[KP_GRPC_HEALTH_MAX_SERVICE + 8];
    assert_int_equal(kp_grpc_health_request("kp.Echo", out), 5 + 2 + 7);
    assert_memory_equal(out, "\0\0\0\0\x09\x0a\x07kp.Echo", 14);
    /* a name of 200 bytes: a two-byte length varint (200 = 0xc8 0x01) */
    char name[201];
    memset(name, 'a', 200);
    name[200] = '\0';
    assert_int_equal(kp_grpc_health_request(name, out), 5 + 3 + 200);
    assert_memory_equal(out, "\0\0\0\0\xcb\x0a\xc8\x01", 8);
    char big[KP_GRPC_HEALTH_MAX_SERVICE + 2];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(kp_grpc_health_request(big, out), -1);
}

static void response_status_is_read(void **state)
{
    assert_int_equal(kp_grpc_health_status((const unsigned char *)"\0\0\0\0\x02\x08\x01", 7),
                     KP_GRPC_HEALTH_SERVING);
    assert_int_equal(kp_grpc_health_status((const unsigned char *)"\0\0\0\0\x02\x08\x02", 7), 2);
    /* absent: protobuf's default, UNKNOWN */
    assert_int_equal(kp_grpc_health_status((const unsigned char *)"\0\0\0\0\0", 5), 0);
    /* unknown fields of every wire type are skipped */
    unsigned char msg[] = {0, 0, 0,    0, 22, 0x10, 0x05, 0x1a, 0x02, 'h', 'i', 0x25, 1,   2,
                           3, 4, 0x29, 1, 2,  3,    4,    5,    6,    7,   8,   0x08, 0x01};
    assert_int_equal(kp_grpc_health_status(msg, sizeof msg), 1);
    msg[4] = 19; /* a length that cuts the 64-bit field */
    assert_int_equal(kp_grpc_health_status(msg, sizeof msg), -1);
}

static void malformed_responses_are_refused(void **state)
{
    /* compressed, short, truncated message, a cut varint, wire type 3 */
    assert_int_equal(kp_grpc_health_status((const unsigned char *)"\1\0\0\0\x02\x08\x01", 7), -1);
    assert_int_equal(kp_grpc_health_status((const unsigned char *)"\0\0\0", 3), -1);
    assert_int_equal(kp_grpc_health_status((const unsigned char *)"\0\0\0\0\x03\x08\x01", 7), -1);
    assert_int_equal(kp_grpc_health_status((const unsigned char *)"\0\0\0\0\x02\x08\x81", 7), -1);
    assert_int_equal(kp_grpc_health_status((const unsigned char *)"\0\0\0\0\x02\x0b\x01", 7), -1);
    assert_int_equal(kp_grpc_health_status((const unsigned char *)"\0\0\0\0\x03\x1a\x05h", 8), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_without_a_service_is_an_empty_message),
        cmocka_unit_test(request_carries_the_service_as_field_one),
        cmocka_unit_test(response_status_is_read),
        cmocka_unit_test(malformed_responses_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
