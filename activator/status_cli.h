/* `activator status [--admin HOST:PORT] [-w]`: asks a running activator's
 * admin port for /status and prints it as tables (status_table.h), once
 * or, with -w, every second until interrupted. A blocking client of its
 * own: the activator's loop and libcurl stay out of it. */
#ifndef KP_ACT_STATUS_CLI_H
#define KP_ACT_STATUS_CLI_H

/* argv[0] is "status". Returns the process exit code: 0, 1 when the
 * activator cannot be reached or answers something else than its
 * /status, 2 for bad usage. */
int act_status_cli_main(int argc, char **argv);

#endif
