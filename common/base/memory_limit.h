/* The memory this process may use: its container's limit (cgroup v2
 * memory.max, else cgroup v1 memory.limit_in_bytes), and at most the
 * machine's physical memory. Bounds derived from it answer "at capacity"
 * before the kernel's OOM killer ends the process. */
#ifndef KP_MEMORY_LIMIT_H
#define KP_MEMORY_LIMIT_H

#include <stdint.h>

typedef struct kp_memory_limit {
    uint64_t bytes;
    /* Where bytes came from: "cgroup v2 memory.max", "cgroup v1
     * memory.limit_in_bytes" or "physical memory". */
    const char *source;
} kp_memory_limit_t;

/* Reads the limit under cgroup_root (NULL: /sys/fs/cgroup, where a
 * container sees its own cgroup). An absent, unreadable or "max" limit
 * falls back to the next source. */
kp_memory_limit_t kp_memory_limit_read(const char *cgroup_root);

#endif
