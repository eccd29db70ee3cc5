/*
 * The tools of the lookout binary beside the agent itself: `lookout top`
 * and `lookout status`, which read a running agent's admin endpoint, and
 * what they share with the agent's command line (the default configuration
 * path). docs/cli.md describes them.
 */
#ifndef LK_CLI_CLI_H
#define LK_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>

/* Exit codes of top and status (docs/cli.md). */
enum lk_cli_exit {
    LK_CLI_EXIT_OK = 0,          /* status: ready; top: quit */
    LK_CLI_EXIT_NOT_READY = 1,   /* status: reachable, /readyz not 200 */
    LK_CLI_EXIT_USAGE = 2,       /* bad command line; top: stdout is not a terminal */
    LK_CLI_EXIT_UNREACHABLE = 3, /* status: no lookout /metrics at the admin URL */
    LK_CLI_EXIT_CONFIG = 4,      /* the configuration to take the admin URL from failed */
    LK_CLI_EXIT_FAILURE = 5,     /* out of memory, libcurl or the terminal failed */
};

/* Where the tools reach the agent's admin listener. */
struct lk_cli_target {
    char url[600];       /* base URL, "http://host:port", no trailing slash */
    char unix_path[128]; /* the Unix socket carrying it; "" for TCP */
    char shown[600];     /* as shown to the user: the URL, or unix:///path */
};

/* Whether |arg| (argv[1]) names a tool rather than an agent option. */
bool lk_cli_is_command(const char *arg);

/* Runs the tool argv[0] ("top" or "status") with its options; returns the
 * process exit code (enum lk_cli_exit). */
int lk_cli_main(int argc, char **argv);

/*
 * Writes the configuration path used when -c is absent into |buf|:
 * PREFIX/etc/lookout/lookout.yaml, resolved, when the executable is
 * PREFIX/bin/lookout (any directory: ../etc/lookout/lookout.yaml beside
 * the executable's) and that file exists; else "config/lookout.yaml"
 * (relative to the working directory).
 */
void lk_cli_default_config(char *buf, size_t len);

/*
 * Reads an admin endpoint into |t|: a URL ("http://host:port", https too; a
 * trailing slash is dropped), "host:port" or "[v6]:port" as admin.endpoint
 * spells it (a wildcard address becomes loopback: 0.0.0.0 -> 127.0.0.1,
 * [::] -> [::1]), or "unix:///path". 0, or LK_EINVAL with |err| saying why.
 */
int lk_cli_target_parse(const char *spec, struct lk_cli_target *t, char *err, size_t errlen);

/* A refresh interval: a number of seconds ("1", "0.5") or a duration with
 * a unit ("500ms", "2s", "1m"). 0 or LK_EINVAL; at most an hour. */
int lk_cli_parse_interval(const char *s, double *seconds);

#endif
