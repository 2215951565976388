/* How the local backend starts a pod's process so that it dies with the
 * activator: through our own binary, run as
 *   activator --pod-exec ACTIVATOR_PID FILE [ARG...]
 * which sets PR_SET_PDEATHSIG and then becomes FILE. */
#ifndef KP_ACT_BACKEND_POD_EXEC_H
#define KP_ACT_BACKEND_POD_EXEC_H

#define ACT_POD_EXEC_FLAG "--pod-exec"

/* The whole program when argv[1] is ACT_POD_EXEC_FLAG: execs FILE with the
 * environment it was given, or returns the exit status (2 for a malformed
 * command line, 127 when FILE cannot be run, 1 when the activator is
 * already gone). */
int act_pod_exec_main(int argc, char **argv);

#endif
