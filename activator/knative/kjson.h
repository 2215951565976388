/* Small cJSON helpers the Knative objects need: reading a nested field
 * with a default, building maps, the "does the live object already hold
 * what we want" test that keeps unchanged objects unwritten, and RFC 3339
 * times. */
#ifndef KP_KN_KJSON_H
#define KP_KN_KJSON_H

#include <cJSON.h>
#include <stddef.h>
#include <time.h>

/* obj.a.b.c for path "a.b.c" (no escaping: keys with dots are reached
 * with kn_json_child). NULL when any step is missing. */
const cJSON *kn_json_at(const cJSON *obj, const char *path);
const cJSON *kn_json_child(const cJSON *obj, const char *key);
/* The string at path, or def when absent or not a string. */
const char *kn_json_str(const cJSON *obj, const char *path, const char *def);
/* The integer at path, or def when absent or not a number. */
long long kn_json_int(const cJSON *obj, const char *path, long long def);
/* metadata.labels[key] / metadata.annotations[key], or NULL. */
const char *kn_json_label(const cJSON *obj, const char *key);
const char *kn_json_annotation(const cJSON *obj, const char *key);

/* The object at obj[key], created when missing (NULL on allocation
 * failure or when obj[key] is not an object). */
cJSON *kn_json_obj(cJSON *obj, const char *key);
/* obj[key] = s (replaced when present). -1 on allocation failure. */
int kn_json_set_str(cJSON *obj, const char *key, const char *s);
int kn_json_set_int(cJSON *obj, const char *key, long long v);
int kn_json_set_bool(cJSON *obj, const char *key, int v);
/* obj[key] = a copy of v (replaced when present). */
int kn_json_set_copy(cJSON *obj, const char *key, const cJSON *v);

/* Whether live holds everything want says: every key of an object in want
 * is in live with a value it covers, arrays have the same length and
 * cover element by element, scalars are equal. Fields the API server
 * fills in (defaults, uid, resourceVersion) so do not count as changes. */
int kn_json_covers(const cJSON *live, const cJSON *want);

/* "2026-12-03T07:00:00Z" (UTC, seconds) into out (>= 21 bytes). */
void kn_time_format(time_t t, char *out, size_t len);
/* -1 when s is not such a time (fractions and offsets accepted). */
int kn_time_parse(const char *s, time_t *out);

#endif
