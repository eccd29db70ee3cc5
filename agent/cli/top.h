/* `lookout top`: the status view, redrawn in the terminal every interval. */
#ifndef LK_CLI_TOP_H
#define LK_CLI_TOP_H

#include "cli/cli.h"

/*
 * Runs until q, Ctrl-C, or SIGINT/SIGTERM/SIGHUP/SIGQUIT, on the terminal
 * of stdout (keys from stdin when it is one), refreshing every |interval|
 * seconds; an unreachable agent is shown and retried. The terminal is
 * restored on every way out. Returns an exit code: LK_CLI_EXIT_OK,
 * LK_CLI_EXIT_USAGE when stdout is not a terminal, LK_CLI_EXIT_FAILURE.
 */
int lk_top_run(const struct lk_cli_target *t, double interval);

#endif
