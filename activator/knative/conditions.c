/* Condition sets. See conditions.h. */
#include "conditions.h"

#include <stdlib.h>
#include <string.h>

#include "kjson.h"

static const char *const service_deps[] = {"ConfigurationsReady", "RoutesReady", NULL};
static const char *const no_deps[] = {NULL};
static const char *const route_deps[] = {"AllTrafficAssigned", "CertificateProvisioned",
                                         "IngressReady", NULL};
static const char *const revision_deps[] = {"ResourcesAvailable", "ContainerHealthy", NULL};

const kn_condset_t kn_service_conditions = {"Ready", service_deps};
const kn_condset_t kn_config_conditions = {"Ready", no_deps};
const kn_condset_t kn_route_conditions = {"Ready", route_deps};
const kn_condset_t kn_revision_conditions = {"Ready", revision_deps};

static cJSON *find(const cJSON *list, const char *type)
{
    cJSON *c;
    cJSON_ArrayForEach(c, list)
    {
        if (strcmp(kn_json_str(c, "type", ""), type) == 0)
            return c;
    }
    return NULL;
}

static int is_dependent(const kn_condset_t *set, const char *type)
{
    if (strcmp(set->happy, type) == 0)
        return 1;
    for (const char *const *d = set->dependents; *d; d++)
        if (strcmp(*d, type) == 0)
            return 1;
    return 0;
}

int kn_conds_init(kn_conds_t *c, const kn_condset_t *set, const cJSON *old, time_t now)
{
    c->set = set;
    c->now = now;
    c->list = cJSON_IsArray(old) ? cJSON_Duplicate(old, 1) : cJSON_CreateArray();
    if (!c->list)
        return -1;
    if (kn_conds_set(c, set->happy, NULL, NULL, NULL) != 0)
        return -1;
    for (const char *const *d = set->dependents; *d; d++)
        if (kn_conds_set(c, *d, NULL, NULL, NULL) != 0)
            return -1;
    return 0;
}

/* status NULL: only make sure the condition exists (Unknown when new). */
int kn_conds_set(kn_conds_t *c, const char *type, const char *status, const char *reason,
                 const char *message)
{
    cJSON *cond = find(c->list, type);
    if (cond && !status)
        return 0;
    if (!status)
        status = KN_UNKNOWN;
    char when[32];
    const char *was = cond ? kn_json_str(cond, "status", NULL) : NULL;
    const char *old_time = cond ? kn_json_str(cond, "lastTransitionTime", NULL) : NULL;
    if (was && old_time && strcmp(was, status) == 0)
        strncpy(when, old_time, sizeof when - 1), when[sizeof when - 1] = '\0';
    else
        kn_time_format(c->now, when, sizeof when);
    cJSON *fresh = cJSON_CreateObject();
    if (!fresh)
        return -1;
    int rc = kn_json_set_str(fresh, "type", type) | kn_json_set_str(fresh, "status", status);
    if (!is_dependent(c->set, type))
        rc |= kn_json_set_str(fresh, "severity", "Info");
    rc |= kn_json_set_str(fresh, "lastTransitionTime", when);
    if (reason && *reason)
        rc |= kn_json_set_str(fresh, "reason", reason);
    if (message && *message)
        rc |= kn_json_set_str(fresh, "message", message);
    if (rc != 0) {
        cJSON_Delete(fresh);
        return -1;
    }
    if (cond) {
        cJSON_ReplaceItemViaPointer(c->list, cond, fresh);
        return 0;
    }
    cJSON_AddItemToArray(c->list, fresh);
    return 0;
}

const char *kn_conds_status(const kn_conds_t *c, const char *type)
{
    const cJSON *cond = find(c->list, type);
    return cond ? kn_json_str(cond, "status", NULL) : NULL;
}

static int by_type(const void *a, const void *b)
{
    return strcmp(kn_json_str(*(cJSON *const *)a, "type", ""),
                  kn_json_str(*(cJSON *const *)b, "type", ""));
}

static void sort_list(cJSON *list)
{
    int n = cJSON_GetArraySize(list);
    if (n < 2)
        return;
    cJSON **items = malloc((size_t)n * sizeof *items);
    if (!items)
        return;
    for (int i = 0; i < n; i++)
        items[i] = cJSON_DetachItemFromArray(list, 0);
    qsort(items, (size_t)n, sizeof *items, by_type);
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(list, items[i]);
    free(items);
}

cJSON *kn_conds_finish(kn_conds_t *c)
{
    if (c->set->dependents[0]) {
        const cJSON *unknown = NULL, *failed = NULL;
        for (const char *const *d = c->set->dependents; *d; d++) {
            const cJSON *cond = find(c->list, *d);
            const char *st = kn_json_str(cond, "status", KN_UNKNOWN);
            if (strcmp(st, KN_FALSE) == 0 && !failed)
                failed = cond;
            else if (strcmp(st, KN_TRUE) != 0 && !unknown)
                unknown = cond;
        }
        const cJSON *why = failed ? failed : unknown;
        char *reason = why ? strdup(kn_json_str(why, "reason", "")) : NULL;
        char *message = why ? strdup(kn_json_str(why, "message", "")) : NULL;
        kn_conds_set(c, c->set->happy,
                     failed    ? KN_FALSE
                     : unknown ? KN_UNKNOWN
                               : KN_TRUE,
                     reason, message);
        free(reason);
        free(message);
    }
    sort_list(c->list);
    cJSON *list = c->list;
    c->list = NULL;
    return list;
}

void kn_conds_free(kn_conds_t *c)
{
    cJSON_Delete(c->list);
    c->list = NULL;
}

const cJSON *kn_condition(const cJSON *obj, const char *type)
{
    return find(kn_json_at(obj, "status.conditions"), type);
}

const char *kn_condition_status(const cJSON *obj, const char *type)
{
    return kn_json_str(kn_condition(obj, type), "status", KN_UNKNOWN);
}

static int observed(const cJSON *obj)
{
    return kn_json_int(obj, "status.observedGeneration", -1) ==
           kn_json_int(obj, "metadata.generation", -2);
}

int kn_is_ready(const cJSON *obj)
{
    return observed(obj) && strcmp(kn_condition_status(obj, "Ready"), KN_TRUE) == 0;
}

int kn_is_failed(const cJSON *obj)
{
    return observed(obj) && strcmp(kn_condition_status(obj, "Ready"), KN_FALSE) == 0;
}
