/* The one clock of the project: monotonic nanoseconds, for every timeout,
 * window and age (wall-clock time only ever appears in log lines). */
#ifndef KP_CLOCK_H
#define KP_CLOCK_H

#include <stdint.h>
#include <uv.h>

static inline uint64_t kp_now_ns(void)
{
    return uv_hrtime();
}

#endif
