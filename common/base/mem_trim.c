#include "mem_trim.h"

#include <malloc.h>

#define TRIM_PERIOD_MS 5000
/* Below this, a trim would give back little and cost a heap walk; above
 * it, free heap pages are handed back so RSS follows what is in use. */
#define TRIM_MIN_FREE_BYTES (64u << 10)

static uv_timer_t trim_timer;
static int trim_running;

static void on_trim_tick(uv_timer_t *t)
{
    (void)t;
    struct mallinfo2 mi = mallinfo2();
    if (mi.fordblks >= TRIM_MIN_FREE_BYTES)
        malloc_trim(0);
}

void kp_mem_trim_start(uv_loop_t *loop)
{
    if (trim_running)
        return;
    trim_running = 1;
    uv_timer_init(loop, &trim_timer);
    uv_timer_start(&trim_timer, on_trim_tick, TRIM_PERIOD_MS, TRIM_PERIOD_MS);
    uv_unref((uv_handle_t *)&trim_timer);
}

void kp_mem_trim_stop(void)
{
    if (!trim_running)
        return;
    trim_running = 0;
    uv_close((uv_handle_t *)&trim_timer, NULL);
}
