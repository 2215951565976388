#include "capacity.h"

/* Descriptors kept for what is not a client: pods' connections, the
 * Kubernetes API, logs, config. */
#define RESERVED_FILES 256
#define MIN_CONNECTIONS 16

void act_capacity_init(act_capacity_t *c, size_t max_requests_flag, kp_memory_limit_t memory,
                       uint64_t open_files_limit)
{
    *c = (act_capacity_t){.memory = memory};
    uint64_t connections = memory.bytes / 4 * 3 / ACT_COST_PER_CONNECTION;
    if (open_files_limit && open_files_limit > RESERVED_FILES + MIN_CONNECTIONS &&
        connections > open_files_limit - RESERVED_FILES)
        connections = open_files_limit - RESERVED_FILES;
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
