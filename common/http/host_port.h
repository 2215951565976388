/* Addresses given on a command line, in the forms Go's net.Listen takes
 * (what Knative's operators are used to): HOST:PORT, :PORT for every
 * interface, [IPv6]:PORT, and host names, resolved once, here. */
#ifndef KP_HTTP_HOST_PORT_H
#define KP_HTTP_HOST_PORT_H

#include <stddef.h>

/* The accepted forms, for messages that say what would have been right. */
#define KP_HOST_PORT_FORMS                                                                         \
    "HOST:PORT, :PORT or [IPv6]:PORT with PORT from 1 to 65535, e.g. :8080, 127.0.0.1:8080, "      \
    "localhost:8080 or [::1]:8080"

typedef struct kp_host_port {
    /* Numeric IPv4 or IPv6 address (no brackets), as kp_http_server_init
     * takes it. ":PORT" gives 0.0.0.0: every IPv4 interface. */
    char ip[46];
    int port;
} kp_host_port_t;

/* Parses text. A host name is resolved (getaddrinfo, so /etc/hosts and
 * DNS) to its first IPv4 address, else its first IPv6 one: one address,
 * as Go's Listen picks one for a name. Returns 0, or -1 with why set to
 * what is wrong and what is accepted (the caller says which flag). */
int kp_host_port_parse(const char *text, kp_host_port_t *out, char *why, size_t whylen);

#endif
