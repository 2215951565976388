/* Which revision a request goes to: by Knative's revision headers, or by
 * Host ({service}.{namespace}.{any domain}, {tag}-{service}.{namespace}...)
 * with the weighted traffic split. Read-only after kp_router_new. */
#ifndef KP_ACT_ROUTER_H
#define KP_ACT_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "activator/config/config.h"

typedef struct kp_router kp_router_t;

typedef struct kp_route {
    const kp_service_spec_t *service;   /* NULL when routed by headers */
    const kp_revision_spec_t *revision; /* points into the config */
    const char *tag;                    /* the tag the host named, or NULL */
} kp_route_t;

/* The router keeps pointers into cfg, which must outlive it. */
kp_router_t *kp_router_new(const kp_activator_config_t *cfg);
void kp_router_free(kp_router_t *router);

/* host may carry ":port" and any letter case. When rev_name and ns are both
 * given (non-NULL), they alone decide. random picks within the split (any
 * uniformly distributed value). Returns 0 with *out set, -1 when nothing
 * matches. */
int kp_router_route(const kp_router_t *router, const char *host, size_t host_len,
                    const char *rev_name, size_t rev_name_len, const char *ns, size_t ns_len,
                    uint32_t random, kp_route_t *out);

#endif
