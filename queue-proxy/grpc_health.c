/* grpc.health.v1 messages by hand; see grpc_health.h. Protobuf encoding:
 * each field is a varint key (field number << 3 | wire type) and its
 * value; gRPC frames each message with a flag byte and a 4-byte length
 * (grpc/grpc doc/PROTOCOL-HTTP2.md, Length-Prefixed-Message). */
#include "grpc_health.h"

#include <stdint.h>
#include <string.h>

#define WIRE_VARINT 0
#define WIRE_64BIT 1
#define WIRE_LEN 2
#define WIRE_32BIT 5

static size_t put_varint(char *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (char)(0x80 | (v & 0x7f));
        v >>= 7;
    }
    out[n++] = (char)v;
    return n;
}

int kp_grpc_health_request(const char *service, char *out)
{
    size_t slen = service ? strlen(service) : 0;
    if (slen > KP_GRPC_HEALTH_MAX_SERVICE)
        return -1;
    char *msg = out + 5;
    size_t n = 0;
    if (slen) {                               /* proto3: an empty string is not sent */
        msg[n++] = (char)(1 << 3 | WIRE_LEN); /* service = 1 */
        n += put_varint(msg + n, slen);
        memcpy(msg + n, service, slen);
        n += slen;
    }
    out[0] = 0; /* not compressed */
    out[1] = (char)(n >> 24);
    out[2] = (char)(n >> 16);
    out[3] = (char)(n >> 8);
    out[4] = (char)n;
    return (int)(5 + n);
}

/* 0 with *v and *p moved past it, or -1 past end or over 10 bytes. */
static int get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 70 && *p < end; shift += 7) {
        unsigned char b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

int kp_grpc_health_status(const unsigned char *body, size_t len)
{
    if (len < 5 || body[0] != 0)
        return -1;
    size_t mlen = (size_t)body[1] << 24 | (size_t)body[2] << 16 | (size_t)body[3] << 8 | body[4];
    if (mlen > len - 5)
        return -1;
    const unsigned char *p = body + 5, *end = p + mlen;
    int status = 0;
    while (p < end) {
        uint64_t key, v;
        if (get_varint(&p, end, &key) != 0)
            return -1;
        switch (key & 7) {
        case WIRE_VARINT:
            if (get_varint(&p, end, &v) != 0)
                return -1;
            if (key >> 3 == 1) /* status = 1 */
                status = v > 0x7fffffff ? -1 : (int)v;
            break;
        case WIRE_64BIT:
            if ((size_t)(end - p) < 8)
                return -1;
            p += 8;
            break;
        case WIRE_32BIT:
            if ((size_t)(end - p) < 4)
                return -1;
            p += 4;
            break;
        case WIRE_LEN:
            if (get_varint(&p, end, &v) != 0 || v > (uint64_t)(end - p))
                return -1;
            p += v;
            break;
        default:
            return -1;
        }
    }
    return status;
}
