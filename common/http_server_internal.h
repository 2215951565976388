/* Between the connection engine (http_server.c) and the listening socket
 * (http_listener.c). */
#ifndef KP_HTTP_SERVER_INTERNAL_H
#define KP_HTTP_SERVER_INTERNAL_H

#include "http_server.h"

/* A connection of s with its handles initialised, not yet accepted. */
kp_http_conn_t *kp_http_conn_new(kp_http_server_t *s);
/* The socket is c->tcp's now: start reading its first request (or refuse
 * it at once over the connection limit). */
void kp_http_conn_accepted(kp_http_conn_t *c);
/* Its socket, to accept into. */
uv_tcp_t *kp_http_conn_tcp(kp_http_conn_t *c);
/* A connection whose accept failed: close and free it. */
void kp_http_conn_discard(kp_http_conn_t *c);

#endif
