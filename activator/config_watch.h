/* Reloads the configuration when its file changes (polled, so a
 * ConfigMap's symlink swap is seen too) or on SIGHUP; an invalid file is
 * logged and the running config stays. */
#ifndef KP_ACT_CONFIG_WATCH_H
#define KP_ACT_CONFIG_WATCH_H

#include "activator.h"

void act_config_watch_start(act_t *act, const char *path);
void act_config_watch_stop(act_t *act);

#endif
