/* Standard base64 encoding (RFC 4648 §4, with padding), for the
 * WebSocket handshake. */
#ifndef HW_BASE64_H
#define HW_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Bytes written by hw_base64_encode for len input bytes, without the NUL. */
#define HW_BASE64_LEN(len) (4 * (((len) + 2) / 3))

/* Writes HW_BASE64_LEN(len) characters and a NUL to out; returns the
 * number of characters. */
size_t hw_base64_encode(const uint8_t *in, size_t len, char *out);

#endif
