/* Knative's request log: SERVING_REQUEST_LOG_TEMPLATE, a Go text/template,
 * compiled once at start into a small program and rendered into one line
 * per request without allocating (beyond the caller's reused buffer). */
#ifndef KP_REQUEST_LOG_H
#define KP_REQUEST_LOG_H

#include <stddef.h>

#include "http/head.h"
#include "base/strbuf.h"

/* config-observability's default logging.request-log-template (Knative
 * Serving); used when request logging is on but no template is given. */
#define KP_REQLOG_DEFAULT_TEMPLATE                                                                 \
    "{\"httpRequest\": {\"requestMethod\": \"{{.Request.Method}}\", \"requestUrl\": "              \
    "\"{{js .Request.RequestURI}}\", \"requestSize\": \"{{.Request.ContentLength}}\", "            \
    "\"status\": {{.Response.Code}}, \"responseSize\": \"{{.Response.Size}}\", \"userAgent\": "    \
    "\"{{js .Request.UserAgent}}\", \"remoteIp\": \"{{js .Request.RemoteAddr}}\", \"serverIp\": "  \
    "\"{{.Revision.PodIP}}\", \"referer\": \"{{js .Request.Referer}}\", \"latency\": "             \
    "\"{{.Response.Latency}}s\", \"protocol\": \"{{.Request.Proto}}\"}, \"traceId\": \"{{index "   \
    ".Request.Header \"X-B3-Traceid\"}}\"}"

typedef struct kp_reqlog kp_reqlog_t;

/* Same layout as the HTTP server's parsed headers, so they pass straight
 * through. */
typedef kp_http_header_t kp_reqlog_header_t;

/* What one request looked like; every pointer only needs to live for the
 * kp_reqlog_render call. */
typedef struct kp_reqlog_entry {
    const char *method; /* NUL-terminated, e.g. "GET" */
    const char *uri;    /* request-target as received; not NUL-terminated */
    size_t uri_len;
    const char *host;        /* Go's r.Host: an absolute-form target's authority, else */
    size_t host_len;         /* the Host value; not NUL-terminated. NULL: the Host header */
    const char *proto;       /* NULL: "HTTP/1.1" */
    const char *remote_addr; /* "ip:port", as Go's RemoteAddr; NULL: "" */
    const kp_reqlog_header_t *headers;
    size_t n_headers;
    long long content_length; /* as Go: 0 without a body, -1 when unknown (chunked) */
    int status;
    long long response_size; /* body bytes written */
    double latency_s;
} kp_reqlog_entry_t;

/* Static for the process: from SERVING_REVISION and friends. NULL fields
 * render as "". */
typedef struct kp_reqlog_revision {
    const char *name, *namespace_, *service, *configuration, *pod_name, *pod_ip;
} kp_reqlog_revision_t;

/* Supported (Go text/template syntax, with {{- -}} trimming, comments,
 * "strings", `raw strings`, pipelines with | and parentheses):
 *   .Request.Method .Request.RequestURI .Request.URL .Request.URL.Path
 *   .Request.URL.RawQuery .Request.Host .Request.ContentLength
 *   .Request.UserAgent .Request.Referer .Request.RemoteAddr .Request.Proto
 *   .Request.ProtoMajor .Request.ProtoMinor
 *   .Response.Code .Response.Size .Response.Latency
 *   .Revision.Name .Revision.Namespace .Revision.Service
 *   .Revision.Configuration .Revision.PodName .Revision.PodIP
 *   .TraceID (W3C traceparent's trace id, else X-B3-TraceId)
 *   js X;  index .Request.Header "Name" [N];  .Request.Header.Get "Name"
 * Anything else (if, range, variables, other functions, unknown fields) is
 * refused here, at start, rather than at the first request as Go would.
 * An empty tmpl compiles KP_REQLOG_DEFAULT_TEMPLATE. Returns 0, or -1 with
 * a message (naming the bad action) in err. */
int kp_reqlog_compile(const char *tmpl, kp_reqlog_t **out, char *err, size_t errlen);

/* Appends the line for one request to out, always newline-terminated. */
void kp_reqlog_render(const kp_reqlog_t *t, const kp_reqlog_entry_t *e,
                      const kp_reqlog_revision_t *rev, kp_strbuf_t *out);

void kp_reqlog_free(kp_reqlog_t *t);

#endif
