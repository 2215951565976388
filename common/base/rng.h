/* Pseudo-random numbers for jitter and load balancing (never for secrets):
 * one small generator per object, seeded per process, so that replicas
 * started together never back off or pick pods in lockstep. */
#ifndef KP_RNG_H
#define KP_RNG_H

#include <stdint.h>

typedef struct kp_rng {
    uint64_t state;
} kp_rng_t;

/* A seed of its own for each process and each call: the kernel's
 * getrandom(), or, when that fails, the monotonic clock mixed with the pid
 * and a stack address. */
uint64_t kp_rng_process_seed(void);
/* Seeds from kp_rng_process_seed(). */
void kp_rng_init(kp_rng_t *r);
/* A given seed (tests, reproducible runs); any value, 0 included. */
void kp_rng_seed(kp_rng_t *r, uint64_t seed);
uint64_t kp_rng_next(kp_rng_t *r);
/* Uniform in [0, 1). */
double kp_rng_unit(kp_rng_t *r);
/* Uniform in [lo, hi], both included; lo when hi <= lo. */
uint64_t kp_rng_between(kp_rng_t *r, uint64_t lo, uint64_t hi);

#endif
