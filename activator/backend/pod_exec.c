/* The exec hook of the local backend. A pod's process must die with its
 * activator, even a SIGKILLed one, which can clean nothing up: the kernel
 * does it when the child asked with PR_SET_PDEATHSIG. That must be set in
 * the child, between fork and exec, and uv_spawn runs none of our code
 * there; so the child first runs this (our own binary, already in memory
 * as /proc/self/exe), which sets it and execs the real program. The
 * setting survives execve (not for set-user-ID programs, which pods are
 * not). Apps need no change, unlike a pipe they would have to watch. */
#include "pod_exec.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "base/log.h"

int act_pod_exec_main(int argc, char **argv)
{
    kp_log_init("activator", KP_LOG_INFO);
    char *end = NULL;
    long parent = argc >= 4 ? strtol(argv[2], &end, 10) : 0;
    if (argc < 4 || !end || *end || parent < 1) {
        fprintf(stderr,
                "activator: " ACT_POD_EXEC_FLAG " ACTIVATOR_PID FILE [ARG...]: how the local "
                "backend starts a pod's process (not for use by hand)\n");
        return 2;
    }
    /* SIGKILL: with the activator gone, no request can reach the pod any
     * more and the clients of those in flight were the activator's own
     * connections, so there is nothing to drain; and no app can ignore it.
     * The signal comes when the thread that forked us ends: the activator's
     * loop thread, which is its main thread, so at the activator's exit. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        kp_log_kv(KP_LOG_ERROR, "cannot start pod process: PR_SET_PDEATHSIG failed", "path",
                  argv[3], "error", strerror(errno), NULL);
        return 127;
    }
    /* The activator may have died before prctl: we were re-parented then,
     * and no signal will ever come. */
    if (getppid() != (pid_t)parent)
        return 1;
    execvp(argv[3], argv + 3);
    kp_log_kv(KP_LOG_ERROR, "cannot start pod process", "path", argv[3], "error", strerror(errno),
              NULL);
    return 127;
}
