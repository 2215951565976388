/* Fuzzes the Kubernetes object parsers of common/kube (json.c, scale.c,
 * lease_expiry.c) with whole objects as the API server returns them: each
 * input is read as an EndpointSlice (alone, as a List's items and inside a
 * watch event), as a Lease (then observed, judged for expiry, turned into
 * the record the elector would write and read back from the JSON written),
 * as a Scale answer (200, errors, transport failures) and as a Status.
 * Oracles: strings stay terminated within their fields, endpoints come
 * sorted and unique, and what the elector writes reads back the same. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kube/internal.h"

static void check_str(const char *s, size_t size)
{
    if (strnlen(s, size) == size)
        abort(); /* not terminated within its field */
}

static void check_merged(const kp_kube_slices_t *set)
{
    kp_kube_endpoint_t *eps = NULL;
    size_t n = 0;
    if (kp_kube_slices_merge(set, &eps, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            check_str(eps[i].ip, sizeof eps[i].ip);
            check_str(eps[i].pod, sizeof eps[i].pod);
            if (i > 0) {
                int c = strcmp(eps[i - 1].ip, eps[i].ip);
                if (c > 0 || (c == 0 && eps[i - 1].port >= eps[i].port))
                    abort(); /* sorted by ip then port, each once */
            }
        }
    }
    free(eps);
}

/* "prefix" + the input + "infix" + the input + "suffix", or NULL. */
static char *wrap(const char *prefix, const char *obj, size_t len, const char *infix,
                  const char *suffix, size_t *out_len)
{
    size_t pl = strlen(prefix), il = infix ? strlen(infix) : 0, sl = strlen(suffix);
    size_t total = pl + len + (infix ? il + len : 0) + sl;
    char *b = malloc(total + 1);
    if (!b)
        return NULL;
    char *p = b;
    memcpy(p, prefix, pl), p += pl;
    memcpy(p, obj, len), p += len;
    if (infix) {
        memcpy(p, infix, il), p += il;
        memcpy(p, obj, len), p += len;
    }
    memcpy(p, suffix, sl), p += sl;
    *p = '\0';
    *out_len = total;
    return b;
}

static void fuzz_endpoint_slice(const char *data, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(data, len);
    if (root) {
        kp_kube_slice_t s;
        if (kp_kube_slice_parse(root, &s) == 0) {
            const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "endpoints");
            if (s.n > (size_t)(cJSON_IsArray(eps) ? cJSON_GetArraySize(eps) : 0))
                abort(); /* more endpoints than the slice lists */
            check_str(s.name, sizeof s.name);
            for (size_t i = 0; i < s.n; i++) {
                check_str(s.eps[i].ip, sizeof s.eps[i].ip);
                check_str(s.eps[i].pod, sizeof s.eps[i].pod);
            }
            /* Added, modified (the same slice again), merged, deleted. */
            kp_kube_slices_t set = {0};
            kp_kube_slice_t again;
            kp_kube_slices_apply(&set, KP_KUBE_EV_ADDED, &s);
            if (kp_kube_slice_parse(root, &again) == 0)
                kp_kube_slices_apply(&set, KP_KUBE_EV_MODIFIED, &again);
            else
                kp_kube_slice_free(&again);
            if (set.n != 1)
                abort(); /* one name, one slice */
            check_merged(&set);
            if (kp_kube_slice_parse(root, &again) == 0)
                kp_kube_slices_apply(&set, KP_KUBE_EV_DELETED, &again);
            else
                kp_kube_slice_free(&again);
            if (set.n != 0)
                abort();
            kp_kube_slices_clear(&set);
        } else {
            kp_kube_slice_free(&s);
        }
        cJSON_Delete(root);
    }

    /* The same object twice in a List, and as a watch event. */
    size_t n;
    char *list = wrap("{\"kind\":\"EndpointSliceList\",\"apiVersion\":\"discovery.k8s.io/v1\","
                      "\"metadata\":{\"resourceVersion\":\"4711\"},\"items\":[",
                      data, len, ",", "]}", &n);
    if (list) {
        kp_kube_slices_t set = {0};
        char rv[64];
        if (kp_kube_slices_from_list(&set, list, n, rv, sizeof rv) == 0) {
            check_str(rv, sizeof rv);
            check_merged(&set);
        }
        kp_kube_slices_clear(&set);
        free(list);
    }
    char *line = wrap("{\"type\":\"MODIFIED\",\"object\":", data, len, NULL, "}", &n);
    if (line) {
        kp_kube_event_t ev;
        if (kp_kube_event_parse(line, n, &ev) == 0) {
            check_str(ev.resource_version, sizeof ev.resource_version);
            kp_kube_event_free(&ev);
        }
        free(line);
    }
}

static int same_time(double a, double b)
{
    /* MicroTime keeps microseconds; a double near 2e9 s about 0.3 µs. */
    return fabs(a - b) < 2e-6;
}

/* Times the elector would write back as they were read: positive (it
 * takes "now" for the rest) and before year 10000 (RFC 3339). */
static int writable_time(double t)
{
    return t > 0 && t < 253402300800.0;
}

static void fuzz_lease(const char *data, size_t len)
{
    kp_kube_lease_t l;
    if (kp_kube_lease_parse(data, len, &l) != 0)
        return;
    check_str(l.holder, sizeof l.holder);
    check_str(l.resource_version, sizeof l.resource_version);

    /* Seen, seen unchanged, judged. */
    kp_kube_lease_seen_t seen;
    memset(&seen, 0, sizeof seen);
    kp_kube_lease_observe(&seen, &l, 1000);
    kp_kube_lease_observe(&seen, &l, 5000);
    if (seen.changed_ms != 1000)
        abort(); /* the same record again is no change */
    uint64_t valid = kp_kube_lease_valid_ms(&seen, 15, 5000);
    if (!l.holder[0] && valid != 0)
        abort(); /* no holder, nothing to wait for */
    if (l.holder[0] && l.duration_s > 0 && valid != (uint64_t)l.duration_s * 1000 - 4000 &&
        !((uint64_t)l.duration_s * 1000 <= 4000 && valid == 0))
        abort();

    /* What the elector writes over it (a renewal and a takeover), read
     * back from the JSON it would send. */
    double now = 1764684000.25; /* 2025-12-02T14:00:00.25Z */
    for (int takeover = 0; takeover < 2; takeover++) {
        int transitions;
        double acquire;
        kp_kube_lease_next(&l, takeover, now, &transitions, &acquire);
        char *json =
            kp_kube_lease_json("knative-serving", "activator-lease", l.holder, l.duration_s,
                               acquire, now, transitions, l.resource_version);
        if (!json)
            continue;
        kp_kube_lease_t back;
        if (kp_kube_lease_parse(json, strlen(json), &back) != 0 ||
            strcmp(back.holder, l.holder) != 0 || back.duration_s != l.duration_s ||
            back.transitions != transitions ||
            strcmp(back.resource_version, l.resource_version) != 0 ||
            !same_time(back.renew_time, now) ||
            (writable_time(acquire) && !same_time(back.acquire_time, acquire)))
            abort(); /* the JSON written does not say what was meant */
        free(json);
    }
}

static void fuzz_scale(const char *data, size_t len)
{
    static const int statuses[] = {200, 201, 403, 404, 409, 500};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        int replicas;
        char rv[128], msg[512] = "";
        kp_kube_scale_parse(statuses[i], data, len, NULL, &replicas, rv, sizeof rv, msg,
                            sizeof msg);
        check_str(rv, sizeof rv);
        check_str(msg, sizeof msg);
        if (statuses[i] >= 400 && replicas != -1)
            abort(); /* an error answer has no replica count */
        if (statuses[i] < 300 && replicas == -1 && !msg[0] && !rv[0])
            abort(); /* unknown, and no word why */
        kp_kube_scale_parse(statuses[i], data, len, NULL, &replicas, NULL, 0, msg, 1);
    }
    int replicas;
    char msg[64];
    kp_kube_scale_parse(200, data, len, "Operation timed out", &replicas, NULL, 0, msg, sizeof msg);
    if (replicas != -1 || strcmp(msg, "Operation timed out") != 0)
        abort();
}

static void fuzz_status(const char *data, size_t len)
{
    static const size_t sizes[] = {1, 2, 16, 256};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char msg[256];
        kp_kube_status_message(data, len, msg, sizes[i]);
        check_str(msg, sizes[i]);
    }
    size_t n;
    char *line = wrap("{\"type\":\"ERROR\",\"object\":", data, len, NULL, "}", &n);
    if (line) {
        kp_kube_event_t ev;
        if (kp_kube_event_parse(line, n, &ev) == 0) {
            check_str(ev.message, sizeof ev.message);
            kp_kube_event_free(&ev);
        }
        free(line);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    fuzz_endpoint_slice(json, size);
    fuzz_lease(json, size);
    fuzz_scale(json, size);
    fuzz_status(json, size);
    return 0;
}
