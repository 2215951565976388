#include "memory_limit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cgroup v1 writes "no limit" as the largest page-aligned signed 64-bit
 * number; anything at or above this is no limit. */
#define V1_UNLIMITED (UINT64_C(1) << 62)

/* The number in file (one line), or 0 when absent, malformed or "max". */
static uint64_t read_limit_file(const char *root, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[64] = "";
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!ok || strncmp(line, "max", 3) == 0)
        return 0;
    char *end;
    unsigned long long v = strtoull(line, &end, 10);
    if (end == line || (*end != '\n' && *end != '\0'))
        return 0;
    return v >= V1_UNLIMITED ? 0 : (uint64_t)v;
}

kp_memory_limit_t kp_memory_limit_read(const char *cgroup_root)
{
    const char *root = cgroup_root ? cgroup_root : "/sys/fs/cgroup";
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    kp_memory_limit_t physical = {pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0,
                                  "physical memory"};
    kp_memory_limit_t limit = {read_limit_file(root, "memory.max"), "cgroup v2 memory.max"};
    if (!limit.bytes)
        limit = (kp_memory_limit_t){read_limit_file(root, "memory/memory.limit_in_bytes"),
                                    "cgroup v1 memory.limit_in_bytes"};
    if (!limit.bytes || (physical.bytes && physical.bytes < limit.bytes))
        return physical;
    return limit;
}
