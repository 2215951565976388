/* The rules of RFC 9110/9112 a request head must meet that llhttp (strict
 * mode) leaves to its user, or reads otherwise than the RFC: version, method
 * and target form, field names and values, Host, transfer codings. */
#include <llhttp.h>
#include <string.h>
#include <strings.h>

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
int kp_http_host_valid(const char *v, size_t len)
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

static int is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* RFC 9112 §6.1 and §7: the transfer codings of a request, every
 * Transfer-Encoding line read as one list (RFC 9110 §5.3), OWS being SP or
 * HTAB (§5.6.3). llhttp 8 only takes SP after "chunked", so "chunked<HTAB>"
 * is an unknown coding to it: this reading is the one the server follows. */
static int transfer_codings_check(const kp_http_head_t *h, const char **reject_msg)
{
    /* Called for a head with at least one Transfer-Encoding line. */
    int codings = 0, chunked = 0, last_chunked = 0, others = 0;
    for (size_t i = 0; i < h->n_headers; i++) {
        const kp_http_header_t *f = &h->headers[i];
        if (!kp_http_name_eq(f->name, f->name_len, "transfer-encoding"))
            continue;
        const char *v = f->value, *end = f->value + f->value_len;
        while (v < end) {
            /* One list member: OWS coding [ OWS ";" parameters ] OWS; an
             * empty member is allowed and means nothing (§5.6.1). */
            while (v < end && (is_ows(*v) || *v == ','))
                v++;
            if (v == end)
                break;
            const char *name = v;
            while (v < end && kp_http_is_tchar((unsigned char)*v))
                v++;
            size_t name_len = (size_t)(v - name);
            const char *member_end = memchr(v, ',', (size_t)(end - v));
            if (!member_end)
                member_end = end;
            const char *rest = v;
            while (rest < member_end && is_ows(*rest))
                rest++;
            if (name_len == 0 || (rest < member_end && *rest != ';')) {
                *reject_msg = "bad request: invalid Transfer-Encoding\n";
                return 400;
            }
            /* chunked has no parameters (§7.1): "chunked;x" is some other coding. */
            last_chunked =
                name_len == 7 && strncasecmp(name, "chunked", 7) == 0 && rest == member_end;
            codings++;
            chunked += last_chunked;
            others += !last_chunked;
            v = member_end;
        }
    }
    if (codings == 0) {
        *reject_msg = "bad request: empty Transfer-Encoding\n";
        return 400;
    }
    /* §6.3 rule 4: a request whose final coding is not chunked has no
     * length the server can know; §7: chunked is applied only once. */
    if (!last_chunked) {
        *reject_msg = "bad request: the final transfer coding is not chunked\n";
        return 400;
    }
    if (chunked > 1) {
        *reject_msg = "bad request: chunked is applied more than once\n";
        return 400;
    }
    /* §6.1: a coding the server does not understand is a 501 (Go's
     * net/http, whose server Knative's queue-proxy runs, does the same). */
    if (others) {
        *reject_msg = "transfer coding not implemented (only chunked is)\n";
        return 501;
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
    size_t hosts = 0, lengths = 0, codings = 0;
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
        if (kp_http_name_eq(f->name, f->name_len, "transfer-encoding")) {
            /* RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing. */
            if (minor == 0) {
                *reject_msg = "bad request: Transfer-Encoding in an HTTP/1.0 request\n";
                return 400;
            }
            codings++;
        }
        lengths += kp_http_name_eq(f->name, f->name_len, "content-length");
    }
    /* RFC 9112 §6.1: both framings in one request ought to be an error (a
     * smuggling shape); llhttp says so too. */
    if (codings && lengths) {
        *reject_msg = "bad request: both Content-Length and Transfer-Encoding\n";
        return 400;
    }
    if (codings && (status = transfer_codings_check(h, reject_msg)) != 0)
        return status;
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
    if (host && !kp_http_host_valid(host->value, host->value_len)) {
        *reject_msg = "bad request: invalid Host header\n";
        return 400;
    }
    return 0;
}

/* RFC 9112 §3.2: origin-form ("/path?q"), asterisk-form ("*", OPTIONS only)
 * or absolute-form ("http://authority/path?q"), which every server must
 * accept (§3.2.2). llhttp has checked the characters; the parts are ours. */
int kp_http_head_read_target(kp_http_head_t *h, int method, const char **reject_msg)
{
    const char *url = h->url;
    size_t len = h->url_len;
    /* CONNECT's authority-form is refused by kp_http_head_check. */
    if (method == HTTP_CONNECT || len == 0 || url[0] == '/' || (len == 1 && url[0] == '*'))
        return 0;
    const char *colon = memchr(url, ':', len);
    size_t scheme_len = colon ? (size_t)(colon - url) : 0;
    if (!colon || !((scheme_len == 4 && strncasecmp(url, "http", 4) == 0) ||
                    (scheme_len == 5 && strncasecmp(url, "https", 5) == 0))) {
        *reject_msg = "bad request: a request target's scheme must be http or https\n";
        return 400;
    }
    const char *end = url + len, *authority = colon + 1;
    if (end - authority < 2 || authority[0] != '/' || authority[1] != '/') {
        *reject_msg = "bad request: invalid request target (expected http://host/path)\n";
        return 400;
    }
    authority += 2;
    const char *rest = authority;
    while (rest < end && *rest != '/' && *rest != '?' && *rest != '#')
        rest++;
    size_t authority_len = (size_t)(rest - authority);
    /* RFC 9110 §4.2.1: an http URI with an empty host is invalid; §4.2.4:
     * userinfo in a target is to be treated as an error. */
    if (authority_len == 0) {
        *reject_msg = "bad request: the request target has no host\n";
        return 400;
    }
    if (memchr(authority, '@', authority_len)) {
        *reject_msg = "bad request: userinfo (user@) in the request target\n";
        return 400;
    }
    if (!kp_http_host_valid(authority, authority_len)) {
        *reject_msg = "bad request: invalid host in the request target\n";
        return 400;
    }
    h->authority_off = (uint32_t)(authority - h->buf);
    h->authority_len = (uint32_t)authority_len;
    uint32_t rest_off = (uint32_t)(rest - h->buf), rest_len = (uint32_t)(end - rest);
    if (rest_len > 0 && *rest == '/') {
        h->origin_off = rest_off;
        h->origin_len = rest_len;
    } else {
        /* §3.2.1: an empty path is sent as "/"; §3.2.4: an OPTIONS for the
         * whole server ("OPTIONS http://h") is forwarded as "*". */
        const char *prefix = method == HTTP_OPTIONS && rest_len == 0 ? "*" : "/";
        if (kp_http_head_set_origin(h, prefix, rest_off, rest_len) != 0) {
            *reject_msg = "request header fields too large\n";
            return 431;
        }
    }
    kp_http_head_finish(h);
    return 0;
}
