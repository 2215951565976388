/* Learns when a new pod can take traffic by asking its queue-proxy the way
 * Knative's activator does (K-Network-Probe: queue, expecting 200 "queue").
 * The queue-proxy holds an aggressive health check until its app is ready,
 * so one long-polling probe answers within milliseconds of the app
 * listening; until the queue-proxy itself listens, connects are retried
 * every few milliseconds. */
#include "pod_probe.h"

#include <stdio.h>
#include <string.h>

#define PROBE_TIMEOUT_MS 15000
#define RETRY_FIRST_MS 2
#define RETRY_MAX_MS 100

static void attempt(act_pod_t *pod);

static void on_retry_timer(uv_timer_t *t)
{
    act_pod_t *pod = t->data;
    if (pod->probe_conn) {
        /* The probe took too long: try again on a fresh connection. */
        kp_upstream_close(pod->probe_conn);
        pod->probe_conn = NULL;
    }
    attempt(pod);
}

static void retry_later(act_pod_t *pod)
{
    pod->probe_conn = NULL;
    if (pod->removed) {
        pod->probing = 0;
        act_revision_pod_settled(pod);
        return;
    }
    uint64_t delay = RETRY_FIRST_MS;
    for (int i = 0; i < pod->probe_failures && delay < RETRY_MAX_MS; i++)
        delay *= 2;
    if (delay > RETRY_MAX_MS)
        delay = RETRY_MAX_MS;
    pod->probe_failures++;
    uv_timer_start(&pod->probe_timer, on_retry_timer, delay, 0);
}

static void send_probe(act_pod_t *pod)
{
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET /healthz HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: Knative-Activator-Probe\r\n"
                     "K-Network-Probe: queue\r\n\r\n",
                     pod->info.ip, pod->info.serving_port);
    uv_buf_t b = uv_buf_init(req, (unsigned)n);
    pod->probe_status = 0;
    pod->probe_body_len = 0;
    kp_upstream_write(pod->probe_conn, &b, 1);
}

static void on_connected(void *ctx, int status)
{
    act_pod_t *pod = ctx;
    if (status < 0) {
        retry_later(pod);
        return;
    }
    send_probe(pod);
}

static void on_head(void *ctx, const kp_upstream_response_t *r)
{
    act_pod_t *pod = ctx;
    pod->probe_status = r->status;
}

static void on_body(void *ctx, const char *data, size_t len)
{
    act_pod_t *pod = ctx;
    size_t room = sizeof pod->probe_body - pod->probe_body_len;
    if (len > room)
        len = room;
    memcpy(pod->probe_body + pod->probe_body_len, data, len);
    pod->probe_body_len += len;
}

static void on_end(void *ctx)
{
    act_pod_t *pod = ctx;
    kp_upstream_done(pod->probe_conn);
    pod->probe_conn = NULL;
    uv_timer_stop(&pod->probe_timer);
    if (pod->probe_status == 200 && pod->probe_body_len == 5 &&
        memcmp(pod->probe_body, "queue", 5) == 0) {
        pod->probing = 0;
        act_revision_pod_ready(pod);
        act_revision_pod_settled(pod);
        return;
    }
    retry_later(pod);
}

static void on_error(void *ctx, int err, int response_started)
{
    act_pod_t *pod = ctx;
    uv_timer_stop(&pod->probe_timer);
    retry_later(pod);
}

static const kp_upstream_ops_t probe_ops = {
    .on_connected = on_connected,
    .on_response_head = on_head,
    .on_body = on_body,
    .on_response_end = on_end,
    .on_error = on_error,
};

static void attempt(act_pod_t *pod)
{
    if (pod->removed) {
        pod->probing = 0;
        act_revision_pod_settled(pod);
        return;
    }
    /* One deadline for the connect and the exchange: an address that
     * drops the SYN, or a queue-proxy that accepts and never answers,
     * costs a fresh attempt after it, never the probe. */
    uv_timer_start(&pod->probe_timer, on_retry_timer, PROBE_TIMEOUT_MS, 0);
    int rc = kp_upstream_get(pod->pool, &probe_ops, pod, &pod->probe_conn);
    if (rc == 1)
        send_probe(pod);
    else if (rc < 0)
        retry_later(pod);
}

void act_pod_probe_start(act_pod_t *pod)
{
    if (pod->probing || pod->removed)
        return;
    pod->probing = 1;
    pod->probe_failures = 0;
    attempt(pod);
}

void act_pod_probe_stop(act_pod_t *pod)
{
    if (!pod->probing)
        return;
    pod->probing = 0;
    uv_timer_stop(&pod->probe_timer);
    if (pod->probe_conn) {
        kp_upstream_close(pod->probe_conn);
        pod->probe_conn = NULL;
    }
}
