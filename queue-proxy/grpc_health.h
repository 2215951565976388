/* The gRPC health checking protocol's one call the readiness probe makes
 * (grpc.health.v1.Health/Check, grpc/grpc doc/health-checking.md), as the
 * kubelet and Knative's queue-proxy make it for a "grpc" probe: the request
 * and response are two tiny protobuf messages, encoded here by hand. */
#ifndef KP_GRPC_HEALTH_H
#define KP_GRPC_HEALTH_H

#include <stddef.h>

#define KP_GRPC_HEALTH_PATH "/grpc.health.v1.Health/Check"
/* HealthCheckResponse.ServingStatus SERVING */
#define KP_GRPC_HEALTH_SERVING 1
/* The longest service name a probe may ask about (ours: one framed
 * message of a known small size). */
#define KP_GRPC_HEALTH_MAX_SERVICE 1024

/* The request body: one length-prefixed gRPC message (not compressed)
 * holding HealthCheckRequest{service}. out must hold
 * KP_GRPC_HEALTH_MAX_SERVICE + 8 bytes; returns the length, or -1 when
 * service is longer than KP_GRPC_HEALTH_MAX_SERVICE. */
int kp_grpc_health_request(const char *service, char *out);

/* The status a response body (length-prefixed messages) carries: its
 * first message's HealthCheckResponse.status (0, UNKNOWN, when the field
 * is absent, as protobuf's default), or -1 when the body is not one whole
 * uncompressed message that parses. */
int kp_grpc_health_status(const unsigned char *body, size_t len);

#endif
