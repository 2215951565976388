/* Tests for common/base/rng.c and the backoff jitter built on it: a seed
 * gives one sequence, two processes get two seeds, so replicas started
 * together never retry in lockstep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/rng.h"
#include "kube/internal.h"

#define N_DRAWS 16
#define N_PROCS 8

static void same_seed_gives_the_same_sequence(void **state)
{
    kp_rng_t a, b;
    kp_rng_seed(&a, 42);
    kp_rng_seed(&b, 42);
    for (int i = 0; i < N_DRAWS; i++)
        assert_true(kp_rng_next(&a) == kp_rng_next(&b));
}

static void neighbouring_seeds_give_unrelated_sequences(void **state)
{
    /* 0 and 1 (two pids, two clock readings a tick apart) must not share
     * a single draw; 0 is a valid seed too. */
    kp_rng_t a, b;
    kp_rng_seed(&a, 0);
    kp_rng_seed(&b, 1);
    int same = 0;
    for (int i = 0; i < N_DRAWS; i++)
        same += kp_rng_next(&a) == kp_rng_next(&b);
    assert_int_equal(same, 0);
}

static void between_covers_both_ends_and_nothing_else(void **state)
{
    kp_rng_t r;
    kp_rng_seed(&r, 7);
    int seen[5] = {0};
    for (int i = 0; i < 2000; i++) {
        uint64_t v = kp_rng_between(&r, 100, 104);
        assert_true(v >= 100 && v <= 104);
        seen[v - 100]++;
    }
    for (int i = 0; i < 5; i++)
        assert_true(seen[i] > 300); /* ~400 each when uniform */
    assert_int_equal(kp_rng_between(&r, 9, 9), 9);
    assert_int_equal(kp_rng_between(&r, 9, 3), 9);
    for (int i = 0; i < 1000; i++) {
        double u = kp_rng_unit(&r);
        assert_true(u >= 0 && u < 1);
    }
}

/* The backoff sequence (attempts 0..N_DRAWS-1, 200 ms doubling to 10 s)
 * of a client seeded the way kp_kube_new seeds it. */
static void backoff_sequence(uint64_t out[N_DRAWS])
{
    kp_rng_t r;
    kp_rng_init(&r);
    for (unsigned i = 0; i < N_DRAWS; i++)
        out[i] = kp_kube_backoff_jitter(&r, i, 200, 10000);
}

static void backoff_stays_within_its_jitter(void **state)
{
    uint64_t seq[N_DRAWS];
    backoff_sequence(seq);
    for (unsigned i = 0; i < N_DRAWS; i++) {
        uint64_t d = 200ull << i;
        if (d > 10000)
            d = 10000;
        assert_true(seq[i] >= d * 8 / 10 && seq[i] <= d * 12 / 10 + 1 && seq[i] <= 10000);
    }
}

/* Eight processes forked at once, each seeding as a replica does at start:
 * no two draw the same backoff sequence (with rand() never seeded, or a
 * seed from the clock alone, they could). */
static void processes_started_together_back_off_apart(void **state)
{
    uint64_t seqs[N_PROCS][N_DRAWS];
    int fds[N_PROCS][2];
    pid_t pids[N_PROCS];
    for (int p = 0; p < N_PROCS; p++) {
        assert_int_equal(pipe(fds[p]), 0);
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            uint64_t seq[N_DRAWS];
            backoff_sequence(seq);
            ssize_t w = write(fds[p][1], seq, sizeof seq);
            _exit(w == (ssize_t)sizeof seq ? 0 : 1);
        }
        close(fds[p][1]);
    }
    for (int p = 0; p < N_PROCS; p++) {
        size_t got = 0;
        while (got < sizeof seqs[p]) {
            ssize_t n = read(fds[p][0], (char *)seqs[p] + got, sizeof seqs[p] - got);
            assert_true(n > 0);
            got += (size_t)n;
        }
        close(fds[p][0]);
        int status;
        assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    for (int a = 0; a < N_PROCS; a++)
        for (int b = a + 1; b < N_PROCS; b++)
            assert_memory_not_equal(seqs[a], seqs[b], sizeof seqs[a]);
    /* And the seeds behind them differ within one process too. */
    assert_true(kp_rng_process_seed() != kp_rng_process_seed());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_seed_gives_the_same_sequence),
        cmocka_unit_test(neighbouring_seeds_give_unrelated_sequences),
        cmocka_unit_test(between_covers_both_ends_and_nothing_else),
        cmocka_unit_test(backoff_stays_within_its_jitter),
        cmocka_unit_test(processes_started_together_back_off_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
