/* How much the activator takes in at once. Past max_requests (held and in
 * flight, every revision together) a request is answered 503 "activator
 * at capacity" at once; past max_connections a new connection is closed
 * at accept. Both are derived by default from the memory the process may
 * use (its container's limit), so that a burst is refused in words before
 * the kernel's OOM killer ends the process and every request with it. */
#ifndef KP_ACTIVATOR_CAPACITY_H
#define KP_ACTIVATOR_CAPACITY_H

#include <stddef.h>
#include <stdint.h>

#include "base/memory_limit.h"
#include "http/server.h"

/* What one request and its connection may cost, all told: measured 1.5 KiB
 * in the process for a held request (tests/e2e/test_memory_at_scale.py),
 * and the kernel's socket, file and epoll structures (about 4 KiB, charged
 * to the container's cgroup too), with room to spare. */
#define ACT_COST_PER_CONNECTION (8 * 1024)
/* Descriptors kept for what is neither a client nor a pod: the Kubernetes
 * API, logs, config, probes, peers. */
#define ACT_RESERVED_FILES 256
/* A pod's own: its stats scrape's connection and one kept alive. */
#define ACT_FILES_PER_POD 2

typedef struct act_capacity {
    size_t max_requests;
    size_t max_connections;
    const char *max_requests_source; /* "--max-requests" or "memory limit" */
    kp_memory_limit_t memory;
    uint64_t open_files_limit; /* RLIMIT_NOFILE, 0: none */
    size_t pods;               /* known pods, every revision */
    int bounds_server;         /* clients.max_connections is ours to set */
    /* Every traffic listener's connections (--listen and --listen-h2c)
     * against one bound: the descriptors and memory are the process's,
     * whichever port a client came in by. */
    kp_http_conn_budget_t clients;
    size_t active_requests; /* held or in flight now */
    uint64_t rejected;      /* answered "activator at capacity" */
} act_capacity_t;

/* max_requests_flag: 0 derives it from memory. open_files_limit (0: none)
 * also bounds the connections. Three quarters of the memory go to
 * connections at ACT_COST_PER_CONNECTION each (the rest is the process,
 * its pools and buffers); requests may fill four fifths of them, so that
 * the requests past the bound still find a connection to be told on. */
void act_capacity_init(act_capacity_t *c, size_t max_requests_flag, kp_memory_limit_t memory,
                       uint64_t open_files_limit);
/* max_connections, less what the pods' own descriptors leave no room for. */
size_t act_capacity_connections(const act_capacity_t *c);
/* Pods came (delta > 0) or went: the clients' bound follows the
 * descriptors they leave, unless the bound was set by hand. */
void act_capacity_add_pods(act_capacity_t *c, int delta);
/* 1 when a request could find no descriptor for its pod's connection:
 * it is refused in words rather than failed by a connect (or an accept)
 * that gets EMFILE. */
int act_capacity_files_short(const act_capacity_t *c, size_t client_connections,
                             size_t upstream_connections);

#endif
