#include "capacity.h"

#define MIN_CONNECTIONS 16

/* Connections the descriptors left after the reserve and the pods can
 * carry, one each. A request in flight holds a pod connection too: that
 * one is checked when the request comes (act_capacity_files_short), as a
 * held request holds none. */
static uint64_t connections_for_files(uint64_t open_files, size_t pods)
{
    uint64_t taken = ACT_RESERVED_FILES + (uint64_t)pods * ACT_FILES_PER_POD;
    if (!open_files)
        return UINT64_MAX;
    if (open_files <= taken + MIN_CONNECTIONS)
        return MIN_CONNECTIONS;
    return open_files - taken;
}

void act_capacity_init(act_capacity_t *c, size_t max_requests_flag, kp_memory_limit_t memory,
                       uint64_t open_files_limit)
{
    *c = (act_capacity_t){.memory = memory, .open_files_limit = open_files_limit};
    uint64_t connections = memory.bytes / 4 * 3 / ACT_COST_PER_CONNECTION;
    uint64_t by_files = connections_for_files(open_files_limit, 0);
    if (connections > by_files)
        connections = by_files;
    if (connections < MIN_CONNECTIONS)
        connections = MIN_CONNECTIONS;
    if (max_requests_flag) {
        c->max_requests = max_requests_flag;
        c->max_requests_source = "--max-requests";
        uint64_t wanted = (uint64_t)max_requests_flag + max_requests_flag / 4;
        if (connections < wanted)
            connections = wanted;
    } else {
        c->max_requests = (size_t)(connections / 5 * 4);
        c->max_requests_source = "memory limit";
    }
    c->max_connections = (size_t)connections;
}

size_t act_capacity_connections(const act_capacity_t *c)
{
    uint64_t by_files = connections_for_files(c->open_files_limit, c->pods);
    return by_files < c->max_connections ? (size_t)by_files : c->max_connections;
}

void act_capacity_add_pods(act_capacity_t *c, int delta)
{
    c->pods += (size_t)delta;
    if (c->bounds_server)
        c->clients.max_connections = act_capacity_connections(c);
}

int act_capacity_files_short(const act_capacity_t *c, size_t client_connections,
                             size_t upstream_connections)
{
    return c->open_files_limit &&
           client_connections + upstream_connections + ACT_RESERVED_FILES >= c->open_files_limit;
}
