/* Header fields between the engine's HTTP/1-shaped text and HTTP/2
 * (RFC 9113 §8.2): raw "Name: value\r\n" lines become an nghttp2_nv list
 * with lowercase names and without the connection-specific fields HTTP/2
 * forbids; request fields are read back the other way (cookie crumbs
 * joined, RFC 9113 §8.2.3). */
#ifndef KP_HTTP_H2_FIELDS_H
#define KP_HTTP_H2_FIELDS_H

#include <nghttp2/nghttp2.h>
#include <stddef.h>

/* A list of fields being built; names and values live in its own buffer. */
typedef struct kp_h2_fields {
    nghttp2_nv *nv;
    size_t n, cap;
    char *buf;
    size_t len, buf_cap;
} kp_h2_fields_t;

void kp_h2_fields_init(kp_h2_fields_t *f);
void kp_h2_fields_free(kp_h2_fields_t *f);
/* Appends one field as given (the name must already be lowercase). 0, or
 * -1 when out of memory. */
int kp_h2_fields_add(kp_h2_fields_t *f, const char *name, size_t name_len, const char *value,
                     size_t value_len);
/* Appends the fields of raw header lines, names lowercased, values without
 * surrounding whitespace; connection-specific fields, pseudo-headers and
 * malformed lines are left out. 0, or -1 when out of memory. */
int kp_h2_fields_add_lines(kp_h2_fields_t *f, const char *lines, size_t len);
/* Points f->nv at the stored names and values; call before handing f->nv
 * over and after the last add. */
void kp_h2_fields_finish(kp_h2_fields_t *f);

/* RFC 9113 §8.2.2: a field that must not appear in an HTTP/2 message
 * (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade,
 * and TE with any value but "trailers"). name is compared case-insensitively. */
int kp_h2_field_is_connection_specific(const char *name, size_t name_len, const char *value,
                                       size_t value_len);

#endif
