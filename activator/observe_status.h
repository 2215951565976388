/* The activator's /status: services, their traffic and revisions, each
 * revision's pods, its autoscaler's view (concurrency over both windows,
 * target, panic mode, why it wants that many pods), its last scale and
 * its recent failures. JSON, keys in snake_case. */
#ifndef KP_ACT_OBSERVE_STATUS_H
#define KP_ACT_OBSERVE_STATUS_H

#include "activator.h"
#include "base/strbuf.h"

void act_observe_render_status(act_t *act, kp_strbuf_t *sb);

#endif
