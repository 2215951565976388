/* The local backend: each pod is a queue-proxy + app process pair on this
 * machine, on loopback ports of its own. */
#ifndef KP_ACT_BACKEND_LOCAL_H
#define KP_ACT_BACKEND_LOCAL_H

#include "backend.h"

typedef struct act_local_opts {
    const char *queue_proxy_path; /* default: queue-proxy next to our own binary */
    const char *app_path;         /* default app: helloworld next to our own binary */
    const char *log_level;        /* passed to the queue-proxy (SERVING_LOGGING_LEVEL) */
    const char *log_format;       /* passed to both processes (KP_LOG_FORMAT); NULL: not set */
    const char *pod_ip;           /* address pods listen on, default 127.0.0.1 */
    int first_port;               /* ports are taken from here upwards (default 20000) */
    int drain_quiet_period_ms;    /* queue-proxy's quiet period on scale-down (default 0) */
} act_local_opts_t;

void act_local_opts_default(act_local_opts_t *opts);
/* NULL on allocation failure. events and opts' strings must outlive it. */
act_backend_t *act_backend_local_new(uv_loop_t *loop, const act_backend_events_t *events,
                                     const act_local_opts_t *opts);

#endif
