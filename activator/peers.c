/* The load the other activator replicas carry. Each replica holds and
 * proxies its own share of the traffic, and the pods' stats leave proxied
 * requests out (so that nothing counts twice), so no replica sees the
 * whole demand of a revision by itself; Knative's activators report theirs
 * to the autoscaler for the same reason. Here every replica reads each
 * peer's GET /load (held + in-flight per revision, on the admin port)
 * every second, and the autoscaler adds the sum to its own figures. A peer
 * that does not answer within a period counts for nothing until it does. */
#include "peers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/strbuf.h"
#include "revision.h"
#include "router.h"

#define PEER_PERIOD_MS 1000
/* What a peer said is forgotten after this long without a new answer. */
#define PEER_STALE_NS (3ull * 1000 * 1000 * 1000)
#define PEER_BODY_MAX (1 << 20)

typedef struct peer_load {
    act_revision_t *rev; /* NULL once the revision is gone */
    double load;
} peer_load_t;

typedef struct act_peer {
    struct act_peer *next;
    struct act_peers *set;
    char ip[64];
    kp_upstream_pool_t *pool;
    kp_upstream_t *conn; /* the scrape under way, or NULL */
    uint64_t scrape_started_ns;
    int status;
    kp_strbuf_t body;
    peer_load_t *loads; /* from its last answer */
    size_t n_loads;
    uint64_t answered_ns;
} act_peer_t;

struct act_peers {
    act_t *act;
    int admin_port;
    uv_timer_t timer;
    act_peer_t *peers;
};

static void peer_free(act_peer_t *p)
{
    if (p->pool)
        kp_upstream_pool_release(p->pool);
    kp_strbuf_free(&p->body);
    free(p->loads);
    free(p);
}

/* The current config's revision "namespace/name" names, through the
 * router's table: a peer's answer costs O(its lines), not O(lines x
 * revisions). */
static act_revision_t *revision_by_key(act_t *act, const char *key, size_t len)
{
    const char *slash = memchr(key, '/', len);
    kp_route_t route;
    if (!slash || !act->router ||
        kp_router_route(act->router, NULL, 0, slash + 1, len - (size_t)(slash - key) - 1, key,
                        (size_t)(slash - key), 0, &route) != 0)
        return NULL;
    return route.revision ? route.revision->runtime : NULL;
}

/* Lines of "namespace/name held in_flight"; what does not parse, or names
 * a revision we do not have, is skipped. */
static void parse_loads(act_peer_t *p)
{
    free(p->loads);
    p->loads = NULL;
    p->n_loads = 0;
    size_t cap = 0;
    const char *s = p->body.data, *end = s + p->body.len;
    while (s && s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *line_end = nl ? nl : end;
        const char *sp = memchr(s, ' ', (size_t)(line_end - s));
        char nums[64];
        size_t nlen = sp ? (size_t)(line_end - sp - 1) : 0;
        int held, in_flight;
        act_revision_t *rev = sp ? revision_by_key(p->set->act, s, (size_t)(sp - s)) : NULL;
        if (rev && nlen < sizeof nums) {
            memcpy(nums, sp + 1, nlen);
            nums[nlen] = 0;
            if (sscanf(nums, "%d %d", &held, &in_flight) == 2 && held >= 0 && in_flight >= 0) {
                if (p->n_loads == cap) {
                    cap = cap ? cap * 2 : 8;
                    peer_load_t *grown = realloc(p->loads, cap * sizeof *grown);
                    if (!grown)
                        break;
                    p->loads = grown;
                }
                p->loads[p->n_loads++] = (peer_load_t){rev, (double)held + in_flight};
            }
        }
        s = nl ? nl + 1 : NULL;
    }
}

/* Each revision's peer_load from the fresh answers; the autoscaler hears of a
 * rise at once, as of a request held here. */
static void sum_loads(act_peers_t *set)
{
    act_t *act = set->act;
    uint64_t now = kp_now_ns();
    for (size_t i = 0; i < act->n_revisions; i++)
        act->revisions[i]->peer_load = 0;
    for (act_peer_t *p = set->peers; p; p = p->next) {
        if (!p->answered_ns || now - p->answered_ns > PEER_STALE_NS)
            continue;
        for (size_t i = 0; i < p->n_loads; i++)
            if (p->loads[i].rev)
                p->loads[i].rev->peer_load += p->loads[i].load;
    }
    for (size_t i = 0; i < act->n_revisions; i++)
        if (act->revisions[i]->peer_load > 0)
            act_revision_demand_rose(act->revisions[i]);
}

static void scrape_ended(act_peer_t *p, int ok)
{
    p->conn = NULL;
    if (ok && p->status == 200) {
        parse_loads(p);
        p->answered_ns = kp_now_ns();
        sum_loads(p->set);
    }
}

static void on_head(void *ctx, const kp_upstream_response_t *r)
{
    ((act_peer_t *)ctx)->status = r->status;
}

static void on_body(void *ctx, const char *data, size_t len)
{
    act_peer_t *p = ctx;
    if (p->body.len + len > PEER_BODY_MAX)
        p->status = 0; /* not ours to trust */
    else
        kp_strbuf_append(&p->body, data, len);
}

static void on_end(void *ctx)
{
    act_peer_t *p = ctx;
    kp_upstream_done(p->conn);
    scrape_ended(p, 1);
}

static void on_error(void *ctx, int err, int started)
{
    scrape_ended(ctx, 0);
}

static void send_request(act_peer_t *p)
{
    char req[160];
    int n = snprintf(req, sizeof req,
                     "GET /load HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: kp-activator\r\n\r\n",
                     p->ip, p->set->admin_port);
    uv_buf_t b = uv_buf_init(req, (unsigned)n);
    kp_upstream_write(p->conn, &b, 1);
}

static void on_connected(void *ctx, int status)
{
    act_peer_t *p = ctx;
    if (status < 0)
        scrape_ended(p, 0);
    else
        send_request(p);
}

static const kp_upstream_ops_t peer_ops = {
    .on_connected = on_connected,
    .on_response_head = on_head,
    .on_body = on_body,
    .on_response_end = on_end,
    .on_error = on_error,
};

static void scrape(act_peer_t *p)
{
    if (!p->pool) {
        p->pool = kp_upstream_pool_for(p->set->act->loop, p->ip, p->set->admin_port, 1);
        if (!p->pool)
            return;
    }
    p->status = 0;
    kp_strbuf_reset(&p->body);
    p->scrape_started_ns = kp_now_ns();
    int rc = kp_upstream_get(p->pool, &peer_ops, p, &p->conn);
    if (rc == 1)
        send_request(p);
    else if (rc < 0)
        scrape_ended(p, 0);
}

static void on_tick(uv_timer_t *t)
{
    act_peers_t *set = t->data;
    uint64_t now = kp_now_ns();
    for (act_peer_t *p = set->peers; p; p = p->next) {
        if (p->conn && now - p->scrape_started_ns >= PEER_STALE_NS) {
            kp_upstream_close(p->conn); /* a peer that hangs: try afresh */
            scrape_ended(p, 0);
        }
        if (!p->conn)
            scrape(p);
    }
    sum_loads(set); /* forgets what went stale */
}

void act_peers_start(act_t *act, int admin_port)
{
    act_peers_t *set = calloc(1, sizeof *set);
    if (!set)
        abort();
    set->act = act;
    set->admin_port = admin_port;
    uv_timer_init(act->loop, &set->timer);
    set->timer.data = set;
    uv_timer_start(&set->timer, on_tick, PEER_PERIOD_MS, PEER_PERIOD_MS);
    act->peers = set;
}

static void drop_peer(act_peer_t *p)
{
    if (p->conn)
        kp_upstream_close(p->conn); /* no callback follows */
    peer_free(p);
}

void act_peers_set(act_t *act, const char *const *ips, size_t n)
{
    act_peers_t *set = act->peers;
    if (!set)
        return;
    /* Keep the peers that stay (their connection and last answer). */
    act_peer_t *kept = NULL, *next;
    for (act_peer_t *p = set->peers; p; p = next) {
        next = p->next;
        size_t i = 0;
        while (i < n && strcmp(ips[i], p->ip) != 0)
            i++;
        if (i < n) {
            p->next = kept;
            kept = p;
        } else {
            kp_log_kv(KP_LOG_INFO, "activator peer gone", "ip", p->ip, NULL);
            drop_peer(p);
        }
    }
    set->peers = kept;
    for (size_t i = 0; i < n; i++) {
        act_peer_t *p = set->peers;
        while (p && strcmp(p->ip, ips[i]) != 0)
            p = p->next;
        if (p || strlen(ips[i]) >= sizeof p->ip)
            continue;
        p = calloc(1, sizeof *p);
        if (!p)
            continue;
        p->set = set;
        snprintf(p->ip, sizeof p->ip, "%s", ips[i]);
        kp_strbuf_init(&p->body);
        p->next = set->peers;
        set->peers = p;
        kp_log_kv(KP_LOG_INFO, "activator peer", "ip", p->ip, NULL);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void act_peers_stop(act_t *act)
{
    act_peers_t *set = act->peers;
    if (!set)
        return;
    act->peers = NULL;
    for (act_peer_t *p = set->peers, *next; p; p = next) {
        next = p->next;
        drop_peer(p);
    }
    uv_close((uv_handle_t *)&set->timer, on_timer_closed);
}

void act_peers_forget_revision(act_t *act, const act_revision_t *rev)
{
    if (!act->peers)
        return;
    for (act_peer_t *p = act->peers->peers; p; p = p->next)
        for (size_t i = 0; i < p->n_loads; i++)
            if (p->loads[i].rev == rev)
                p->loads[i].rev = NULL;
}
