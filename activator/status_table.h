/* `activator status`'s view: the admin port's /status JSON drawn as
 * tables the way `kubectl get` draws them (upper-case headers, columns
 * three spaces apart): services with their traffic, revisions with their
 * pods desired and ready, requests held and in flight, the autoscaler's
 * concurrency and mode, the last scale and why, the last failure; then
 * pods. Pure: text in, text out. */
#ifndef KP_ACT_STATUS_TABLE_H
#define KP_ACT_STATUS_TABLE_H

#include <stddef.h>

#include "base/strbuf.h"

/* Appends the tables for the /status document json. 0, or -1 with err
 * saying what is wrong with the document (not JSON, not an activator's
 * /status). */
int act_status_table_render(const char *json, size_t len, kp_strbuf_t *out, char *err,
                            size_t err_len);

/* An age as kubectl prints one: 42s, 3m4s, 12m, 2h5m, 7h, 3d. Negative or
 * unknown (NaN) ages are "-". */
void act_status_format_age(double seconds, char *buf, size_t len);

#endif
