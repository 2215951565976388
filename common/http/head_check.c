/* The rules of RFC 9110/9112 a request head must meet that llhttp (strict
 * mode) leaves to its user: version, method and target form, field names
 * and values, Host. */
#include <llhttp.h>
#include <string.h>

#include "head.h"

/* RFC 9110 §5.6.2: tchar. */
int kp_http_is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return 1;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* RFC 9112 §3.2: Host = uri-host [ ":" port ], where uri-host is an
 * IP-literal in brackets or a reg-name of unreserved, pct-encoded and
 * sub-delims characters. An empty value is allowed. */
static int host_valid(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];
        if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
            continue;
        if (ch == 0 || !strchr("-._~%!$&'()*+,;=:[]", ch))
            return 0;
    }
    return 1;
}

int kp_http_version_check(int major, int minor, const char **reject_msg)
{
    /* llhttp also takes "GET /" with no version as HTTP/0.9, which we do
     * not serve. */
    if (major == 0) {
        *reject_msg = minor == 9 ? "bad request: HTTP/0.9 is not supported\n"
                                 : "bad request: invalid HTTP version\n";
        return 400;
    }
    /* RFC 9110 §15.6.6: a major version we do not speak. A higher minor
     * version of HTTP/1 is fine: §6.2 says to answer it as the highest
     * minor version we support. */
    if (major != 1) {
        *reject_msg = "HTTP version not supported (use HTTP/1.1)\n";
        return 505;
    }
    return 0;
}

int kp_http_head_check(const kp_http_head_t *h, int major, int minor, int method,
                       const char **reject_msg)
{
    int status = kp_http_version_check(major, minor, reject_msg);
    if (status)
        return status;
    /* We are an origin or gateway, never a forward proxy (RFC 9110 §9.3.6). */
    if (method == HTTP_CONNECT) {
        *reject_msg = "CONNECT is not implemented\n";
        return 501;
    }
    /* RFC 9112 §3.2.4: the asterisk-form is only for OPTIONS. */
    if (h->url_len == 1 && h->url[0] == '*' && method != HTTP_OPTIONS) {
        *reject_msg = "bad request: \"*\" is a request target for OPTIONS only\n";
        return 400;
    }
    size_t hosts = 0;
    const kp_http_header_t *host = NULL;
    for (size_t i = 0; i < h->n_headers; i++) {
        const kp_http_header_t *f = &h->headers[i];
        /* RFC 9112 §5.1: field-name = token, no whitespace before the colon. */
        int ok = f->name_len > 0;
        for (size_t j = 0; ok && j < f->name_len; j++)
            ok = kp_http_is_tchar((unsigned char)f->name[j]);
        if (!ok) {
            *reject_msg = "bad request: invalid header field name\n";
            return 400;
        }
        /* RFC 9112 §5.2: obs-fold in a request is refused; RFC 9110 §5.5: no
         * CR, LF, NUL or other control but HTAB in a value. */
        for (size_t j = 0; j < f->value_len; j++) {
            unsigned char ch = (unsigned char)f->value[j];
            if (ch == '\r' || ch == '\n') {
                *reject_msg = "bad request: obsolete line folding is not accepted\n";
                return 400;
            }
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                *reject_msg = "bad request: invalid character in a header value\n";
                return 400;
            }
        }
        if (kp_http_name_eq(f->name, f->name_len, "host")) {
            hosts++;
            host = f;
        }
        /* RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing. */
        if (minor == 0 && kp_http_name_eq(f->name, f->name_len, "transfer-encoding")) {
            *reject_msg = "bad request: Transfer-Encoding in an HTTP/1.0 request\n";
            return 400;
        }
    }
    /* RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, with more
     * than one, or with an invalid one. */
    if (hosts > 1) {
        *reject_msg = "bad request: more than one Host header\n";
        return 400;
    }
    if (hosts == 0 && minor >= 1) {
        *reject_msg = "bad request: missing Host header\n";
        return 400;
    }
    if (host && !host_valid(host->value, host->value_len)) {
        *reject_msg = "bad request: invalid Host header\n";
        return 400;
    }
    return 0;
}
