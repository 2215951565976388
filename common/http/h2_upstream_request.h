/* The header list an h2c upstream gets for a proxied request (RFC 9113
 * §8.3.1): pseudo-headers from the request line and Host, then the fields,
 * lowercase (§8.2.1), without the connection-specific ones (§8.2.2), with
 * the proxy's edits applied as for HTTP/1.1. */
#ifndef KP_HTTP_H2_UPSTREAM_REQUEST_H
#define KP_HTTP_H2_UPSTREAM_REQUEST_H

#include <nghttp2/nghttp2.h>

#include "base/strbuf.h"
#include "proxy.h"

typedef struct kp_h2c_field_span kp_h2c_field_span_t;

typedef struct kp_h2c_request_head {
    nghttp2_nv *nv; /* n entries, pointing into text */
    size_t n;
    kp_strbuf_t text;
    kp_h2c_field_span_t *spans; /* where each entry lies in text while building */
    size_t cap;
} kp_h2c_request_head_t;

void kp_h2c_request_head_init(kp_h2c_request_head_t *h);
void kp_h2c_request_head_free(kp_h2c_request_head_t *h);
/* Builds h->nv for req with edits e (e may be NULL); replaces what h held.
 * 0, or -1 when out of memory. */
int kp_h2c_request_head_build(kp_h2c_request_head_t *h, const kp_http_request_t *req,
                              const kp_proxy_edits_t *e);

#endif
