/* HOST:PORT parsing and resolution; see host_port.h. The splitting follows
 * Go's net.SplitHostPort: an IPv6 address must be bracketed, because its
 * own colons would make the port ambiguous. */
#include "host_port.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "base/env.h"

/* DNS names are at most 253 characters; IPv6 literals far less. */
#define HOST_MAX 253

static int parse_port(const char *s, int *port)
{
    long v = 0;
    if (!*s || strlen(s) > 5 || strspn(s, "0123456789") != strlen(s))
        return -1;
    for (; *s; s++)
        v = v * 10 + (*s - '0');
    if (v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

/* The first IPv4 address of name, else its first IPv6 one. */
static int resolve(const char *name, char *ip, size_t iplen, char *why, size_t whylen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc != 0) {
        kp_errf(why, whylen,
                "cannot resolve host \"%s\": %s (expected an IP address or a host name that "
                "resolves; " KP_HOST_PORT_FORMS ")",
                name, gai_strerror(rc));
        return -1;
    }
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
        if (!pick && a->ai_family == AF_INET6)
            pick = a;
    }
    const void *addr = NULL;
    if (pick && pick->ai_family == AF_INET)
        addr = &((const struct sockaddr_in *)pick->ai_addr)->sin_addr;
    else if (pick)
        addr = &((const struct sockaddr_in6 *)pick->ai_addr)->sin6_addr;
    if (!addr || !inet_ntop(pick->ai_family, addr, ip, (socklen_t)iplen)) {
        kp_errf(why, whylen, "host \"%s\" has no IPv4 or IPv6 address", name);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return 0;
}

/* "[IPv6]:PORT": the address into out->ip, the port's text into *port_text. */
static int split_bracketed(const char *text, kp_host_port_t *out, const char **port_text, char *why,
                           size_t whylen)
{
    unsigned char bin[16];
    char host[HOST_MAX + 1];
    const char *close = strchr(text, ']');
    if (!close) {
        kp_errf(why, whylen, "no \"]\" after the IPv6 address (expected " KP_HOST_PORT_FORMS ")");
        return -1;
    }
    size_t n = (size_t)(close - text - 1);
    if (n < sizeof host) {
        memcpy(host, text + 1, n);
        host[n] = '\0';
    }
    if (n >= sizeof host || inet_pton(AF_INET6, host, bin) != 1) {
        kp_errf(why, whylen,
                "\"%.*s\" in brackets is not an IPv6 address (expected " KP_HOST_PORT_FORMS ")",
                (int)(n > 64 ? 64 : n), text + 1);
        return -1;
    }
    if (close[1] != ':') {
        kp_errf(why, whylen, "no \":PORT\" after \"]\" (expected " KP_HOST_PORT_FORMS ")");
        return -1;
    }
    inet_ntop(AF_INET6, bin, out->ip, sizeof out->ip);
    *port_text = close + 2;
    return 0;
}

/* "HOST:PORT" or ":PORT": the host, resolved, into out->ip. */
static int split_plain(const char *text, kp_host_port_t *out, const char **port_text, char *why,
                       size_t whylen)
{
    unsigned char bin[4];
    char host[HOST_MAX + 1];
    const char *colon = strrchr(text, ':');
    if (!colon) {
        kp_errf(why, whylen, "no port (expected " KP_HOST_PORT_FORMS ")");
        return -1;
    }
    size_t n = (size_t)(colon - text);
    if (memchr(text, ':', n)) {
        kp_errf(why, whylen,
                "too many colons: an IPv6 address goes in brackets (expected " KP_HOST_PORT_FORMS
                ")");
        return -1;
    }
    if (n > HOST_MAX) {
        kp_errf(why, whylen, "host longer than %d characters (expected " KP_HOST_PORT_FORMS ")",
                HOST_MAX);
        return -1;
    }
    memcpy(host, text, n);
    host[n] = '\0';
    *port_text = colon + 1;
    if (n == 0) {
        snprintf(out->ip, sizeof out->ip, "0.0.0.0");
        return 0;
    }
    if (inet_pton(AF_INET, host, bin) == 1) {
        inet_ntop(AF_INET, bin, out->ip, sizeof out->ip);
        return 0;
    }
    if (strspn(host, "0123456789.") == n) {
        /* getaddrinfo would read "10.1" as 10.0.0.1; Go refuses it. */
        kp_errf(why, whylen, "\"%s\" is not an IPv4 address (expected " KP_HOST_PORT_FORMS ")",
                host);
        return -1;
    }
    return resolve(host, out->ip, sizeof out->ip, why, whylen);
}

int kp_host_port_parse(const char *text, kp_host_port_t *out, char *why, size_t whylen)
{
    const char *port_text = NULL;
    memset(out, 0, sizeof *out);
    /* The port first: a typo there needs no DNS lookup to be reported. */
    const char *last_colon = strrchr(text, ':');
    if (last_colon && strchr(last_colon, ']') == NULL &&
        parse_port(last_colon + 1, &out->port) != 0) {
        kp_errf(why, whylen,
                "port \"%.16s\" is not a number from 1 to 65535 (expected " KP_HOST_PORT_FORMS ")",
                last_colon + 1);
        return -1;
    }
    int rc = text[0] == '[' ? split_bracketed(text, out, &port_text, why, whylen)
                            : split_plain(text, out, &port_text, why, whylen);
    if (rc != 0)
        return -1;
    if (parse_port(port_text, &out->port) != 0) {
        kp_errf(why, whylen,
                "port \"%.16s\" is not a number from 1 to 65535 (expected " KP_HOST_PORT_FORMS ")",
                port_text);
        return -1;
    }
    return 0;
}
