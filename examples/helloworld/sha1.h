/* SHA-1 (FIPS 180-4), only for the WebSocket handshake's
 * Sec-WebSocket-Accept (RFC 6455 §4.2.2), where it is a fixed protocol
 * step, not a security measure. */
#ifndef HW_SHA1_H
#define HW_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define HW_SHA1_LEN 20

typedef struct hw_sha1 {
    uint32_t h[5];
    uint64_t total; /* bytes hashed so far */
    uint8_t block[64];
    size_t block_len;
} hw_sha1_t;

void hw_sha1_init(hw_sha1_t *s);
void hw_sha1_update(hw_sha1_t *s, const void *data, size_t len);
void hw_sha1_final(hw_sha1_t *s, uint8_t out[HW_SHA1_LEN]);

#endif
