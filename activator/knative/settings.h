/* Knative's ConfigMaps, read from the activator's namespace (where
 * Knative keeps them in knative-serving): config-domain (the domain of
 * route URLs), config-gc (gc.h), config-defaults (revision timeouts and
 * containerConcurrency) and config-deployment (queue-sidecar-image,
 * progress-deadline). A value that is not accepted is logged with what is
 * and leaves the setting as it was. */
#ifndef KP_KN_SETTINGS_H
#define KP_KN_SETTINGS_H

#include <cJSON.h>
#include <stddef.h>

#include "state.h"

/* Whether name is one of the ConfigMaps above. */
int kn_settings_is_configmap(const char *name);
/* Applies a ConfigMap (its data) to s; queue_image gets the image asked
 * for ("" when the ConfigMap names none). Returns the number of settings
 * that changed; each refusal is logged. */
int kn_settings_apply(kn_state_t *s, const cJSON *configmap, char *queue_image,
                      size_t queue_image_len);
/* A Go duration ("600s", "10m") in whole seconds, or -1. */
long long kn_settings_seconds(const char *s);

#endif
