/* The activator's admin port. See observe.h. */
#include "observe.h"

#include <stdio.h>
#include <string.h>

#include "base/strbuf.h"
#include "http/path.h"
#include "observe_metrics.h"
#include "observe_status.h"
#include "revision.h"

/* For the other replicas (peers.c): this replica's own share of each
 * revision's demand, "namespace/name held in_flight" per line. */
static void render_load(const act_t *act, kp_strbuf_t *sb)
{
    for (size_t i = 0; i < act->n_revisions; i++) {
        const act_revision_t *rev = act->revisions[i];
        if (rev->n_held > 0 || rev->in_flight > 0)
            kp_strbuf_printf(sb, "%s %d %d\n", rev->key, rev->n_held, rev->in_flight);
    }
}

/* Paths as Knative's Go servers match them (ServeMux: unescaped, then
 * cleaned), so "//status" or "/./metrics" from a probe or a proxy that
 * joins paths naively still reach their page. */
static int path_is(const kp_http_request_t *req, const char *path)
{
    return kp_http_target_is(req->target, req->target_len, path);
}

static void on_admin_request(kp_http_request_t *req, void *ctx)
{
    act_t *act = ctx;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        kp_http_conn_respond(req->conn, 405, "text/plain", "only GET\n", 9);
        return;
    }
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    const char *type = "text/plain; charset=utf-8";
    int status = 200;
    if (path_is(req, "/status")) {
        act_observe_render_status(act, &sb);
        type = "application/json";
    } else if (path_is(req, "/metrics")) {
        act_observe_render_metrics(act, &sb);
        type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (path_is(req, "/load")) {
        render_load(act, &sb);
    } else if (path_is(req, "/healthz")) {
        status = act->draining ? 503 : 200;
        kp_strbuf_puts(&sb, act->draining ? "shutting down\n" : "ok\n");
    } else {
        status = 404;
        kp_strbuf_puts(&sb, "not found (try /status, /metrics, /load, /healthz)\n");
    }
    kp_http_conn_respond(req->conn, status, type, sb.data, sb.len);
    kp_strbuf_free(&sb);
}

int act_observe_init(act_t *act, const char *host, int port)
{
    int rc = kp_http_server_init(&act->admin_server, act->loop, host, port, NULL,
                                 on_admin_request, act);
    if (rc != 0) {
        fprintf(stderr, "activator: cannot listen on %s:%d (--admin): %s\n", host, port,
                uv_strerror(rc));
        return -1;
    }
    return 0;
}

void act_observe_close(act_t *act)
{
    kp_http_server_close(&act->admin_server, NULL);
}
