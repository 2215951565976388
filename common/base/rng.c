/* xorshift64* seeded through splitmix64 (Vigna), see rng.h. Fast, small
 * state, good enough statistics for jitter and power-of-two-choices. */
#include "rng.h"

#include <sys/random.h>
#include <unistd.h>
#include <uv.h>

/* splitmix64's finaliser: neighbouring inputs (two pids, two clock
 * readings) give unrelated outputs. */
static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t kp_rng_process_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed)
        return seed;
    /* No entropy yet (early boot) or no syscall: still distinct per process
     * (pid), per call (clock) and per address-space layout (stack). */
    int on_stack;
    return mix64(uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&on_stack);
}

void kp_rng_seed(kp_rng_t *r, uint64_t seed)
{
    r->state = mix64(seed);
    if (r->state == 0) /* xorshift's one fixed point */
        r->state = 0x9e3779b97f4a7c15ull;
}

void kp_rng_init(kp_rng_t *r)
{
    kp_rng_seed(r, kp_rng_process_seed());
}

uint64_t kp_rng_next(kp_rng_t *r)
{
    uint64_t x = r->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->state = x;
    return x * 0x2545f4914f6cdd1dull;
}

double kp_rng_unit(kp_rng_t *r)
{
    return (double)(kp_rng_next(r) >> 11) / (double)(1ull << 53);
}

uint64_t kp_rng_between(kp_rng_t *r, uint64_t lo, uint64_t hi)
{
    if (hi <= lo)
        return lo;
    uint64_t span = hi - lo + 1;
    if (span == 0) /* the whole 64-bit range */
        return kp_rng_next(r);
    /* Rejection keeps it uniform: drop the top partial copy of span. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % span;
    uint64_t v;
    do
        v = kp_rng_next(r);
    while (v >= limit);
    return lo + v % span;
}
