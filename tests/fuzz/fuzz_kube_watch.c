/* Fuzzes the Kubernetes watch-stream parsing (common/kube/json.c) the way
 * common/kube/watch.c drives it: the line splitter fed in chunks, each line
 * parsed as an event, EndpointSlice events applied to a set and the set
 * merged into endpoints; also a List body and a Status error body.
 * Input: the first byte picks the chunk size, the rest is the stream. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kube/internal.h"

typedef struct watch_state {
    kp_kube_slices_t slices;
    char rv[64];
    unsigned lines;
} watch_state_t;

static void merge_check(const kp_kube_slices_t *set)
{
    kp_kube_endpoint_t *eps = NULL;
    size_t n = 0;
    if (kp_kube_slices_merge(set, &eps, &n) == 0) {
        /* Sorted and unique by ip then port, as the header promises. */
        for (size_t i = 1; i < n; i++) {
            int c = strcmp(eps[i - 1].ip, eps[i].ip);
            if (c > 0 || (c == 0 && eps[i - 1].port >= eps[i].port))
                abort();
        }
    }
    free(eps);
}

static int on_line(void *ctx, const char *line, size_t len)
{
    watch_state_t *w = ctx;
    kp_kube_event_t ev;
    w->lines++;
    if (len == 0 || line[len - 1] == '\n')
        abort(); /* lines come without their newline, never empty */
    if (kp_kube_event_parse(line, len, &ev) != 0)
        return 0;
    switch (ev.type) {
    case KP_KUBE_EV_ADDED:
    case KP_KUBE_EV_MODIFIED:
    case KP_KUBE_EV_DELETED: {
        kp_kube_slice_t s;
        if (kp_kube_slice_parse(ev.object, &s) == 0)
            kp_kube_slices_apply(&w->slices, ev.type, &s);
        else
            kp_kube_slice_free(&s);
        if (ev.resource_version[0])
            memcpy(w->rv, ev.resource_version, sizeof w->rv);
        merge_check(&w->slices);
        break;
    }
    case KP_KUBE_EV_BOOKMARK:
        if (ev.resource_version[0])
            memcpy(w->rv, ev.resource_version, sizeof w->rv);
        break;
    case KP_KUBE_EV_ERROR:
        if (strnlen(ev.message, sizeof ev.message) == sizeof ev.message)
            abort();
        break;
    }
    kp_kube_event_free(&ev);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = (size_t)data[0] % 64 + 1;
    const char *stream = (const char *)data + 1;
    size_t len = size - 1;

    watch_state_t w;
    memset(&w, 0, sizeof w);
    kp_kube_lines_t lines = {0};
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        if (kp_kube_lines_feed(&lines, stream + off, n, on_line, &w) != 0)
            break;
    }
    kp_kube_lines_free(&lines);
    kp_kube_slices_clear(&w.slices);

    /* The same bytes as a List response and as an error body. */
    kp_kube_slices_t set = {0};
    char rv[64];
    if (kp_kube_slices_from_list(&set, stream, len, rv, sizeof rv) == 0)
        merge_check(&set);
    kp_kube_slices_clear(&set);

    char msg[128];
    kp_kube_status_message(stream, len, msg, sizeof msg);
    if (strnlen(msg, sizeof msg) == sizeof msg)
        abort();
    kp_kube_status_message(stream, len, msg, 1);

    kp_kube_lease_t lease;
    kp_kube_lease_parse(stream, len, &lease);
    return 0;
}
