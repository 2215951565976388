/* Hands freed heap memory back to the kernel. glibc returns only the top of
 * the heap by itself: after a wave of load has come and gone, pages freed
 * in the middle stay resident, pinned by a few live objects, and a
 * long-running process creeps up wave after wave. */
#ifndef KP_MEM_TRIM_H
#define KP_MEM_TRIM_H

#include <uv.h>

/* Every few seconds, when at least a mebibyte is free inside the heap,
 * malloc_trim. The timer does not keep the loop alive. */
void kp_mem_trim_start(uv_loop_t *loop);
void kp_mem_trim_stop(void);

#endif
