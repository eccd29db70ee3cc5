/* `lookout top` and `lookout status`: options, the admin endpoint to ask,
 * and status's one-shot report (see cli.h). */
#include "cli/cli.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cli/scrape.h"
#include "cli/status.h"
#include "cli/top.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"

/* Where the admin listener is when no configuration says. */
#define DEFAULT_ADMIN LK_CONFIG_ADMIN_DEFAULT
/* Each request to the admin endpoint, in all: a local agent answers in
 * milliseconds; one that does not within this is as good as down. */
#define REQUEST_TIMEOUT_MS 3000L
#define DEFAULT_INTERVAL 1.0

bool lk_cli_is_command(const char *arg)
{
    return strcmp(arg, "top") == 0 || strcmp(arg, "status") == 0;
}

void lk_cli_default_config(char *buf, size_t len)
{
    char exe[4096];
    size_t n = sizeof(exe);
    if (uv_exepath(exe, &n) == 0) {
        char *slash = strrchr(exe, '/');
        char cand[sizeof(exe) + 32];
        if (slash != NULL) {
            *slash = '\0';
            snprintf(cand, sizeof(cand), "%s/../etc/lookout/lookout.yaml", exe);
            /* realpath also says whether it exists; the path it gives reads
             * better in logs than one with "bin/..". */
            char *real = realpath(cand, NULL);
            if (real != NULL && strlen(real) < len) {
                snprintf(buf, len, "%s", real);
                free(real);
                return;
            }
            free(real);
        }
    }
    snprintf(buf, len, "config/lookout.yaml");
}

/* host:port (or [v6]:port) with a wildcard address made loopback. */
static void host_port(char *out, size_t len, const char *hp)
{
    if (strncmp(hp, "0.0.0.0:", 8) == 0)
        snprintf(out, len, "127.0.0.1:%s", hp + 8);
    else if (strncmp(hp, "[::]:", 5) == 0)
        snprintf(out, len, "[::1]:%s", hp + 5);
    else
        snprintf(out, len, "%s", hp);
}

int lk_cli_target_parse(const char *spec, struct lk_cli_target *t, char *err, size_t errlen)
{
    char hp[512];
    memset(t, 0, sizeof(*t));
    if (strncmp(spec, "unix:", 5) == 0) {
        if (strncmp(spec, "unix://", 7) != 0 || spec[7] != '/') {
            snprintf(err, errlen, "write a Unix socket as unix:///absolute/path");
            return LK_EINVAL;
        }
        if (strlen(spec + 7) >= sizeof(t->unix_path)) {
            snprintf(err, errlen, "the socket path is too long");
            return LK_EINVAL;
        }
        snprintf(t->unix_path, sizeof(t->unix_path), "%s", spec + 7);
        snprintf(t->url, sizeof(t->url), "http://localhost");
        snprintf(t->shown, sizeof(t->shown), "%s", spec);
        return 0;
    }
    const char *scheme = strstr(spec, "://");
    if (scheme != NULL && strncmp(spec, "http://", 7) != 0 &&
        strncmp(spec, "https://", 8) != 0) {
        snprintf(err, errlen, "the admin URL must be http://, https:// or unix://");
        return LK_EINVAL;
    }
    const char *rest = scheme != NULL ? scheme + 3 : spec;
    size_t n = strlen(rest);
    while (n > 0 && rest[n - 1] == '/')
        n--;
    if (n == 0 || n >= sizeof(hp) || memchr(rest, ' ', n) != NULL) {
        snprintf(err, errlen, "'%s' is not an admin URL (http://host:port)", spec);
        return LK_EINVAL;
    }
    memcpy(hp, rest, n);
    hp[n] = '\0';
    char fixed[520];
    host_port(fixed, sizeof(fixed), hp);
    if (scheme != NULL)
        snprintf(t->url, sizeof(t->url), "%.*s%s", (int)(rest - spec), spec, fixed);
    else
        snprintf(t->url, sizeof(t->url), "http://%s", fixed);
    snprintf(t->shown, sizeof(t->shown), "%s", t->url);
    return 0;
}

int lk_cli_parse_interval(const char *s, double *seconds)
{
    char *end;
    double v = strtod(s, &end);
    double mult = 1;
    if (end == s || !isfinite(v) || v < 0)
        return LK_EINVAL;
    if (strcmp(end, "ms") == 0)
        mult = 0.001;
    else if (strcmp(end, "m") == 0)
        mult = 60;
    else if (strcmp(end, "h") == 0)
        mult = 3600;
    else if (strcmp(end, "s") != 0 && *end != '\0')
        return LK_EINVAL;
    v *= mult;
    if (v > 3600)
        return LK_EINVAL;
    *seconds = v;
    return 0;
}

static void usage(FILE *f, const char *cmd)
{
    char def[4096];
    lk_cli_default_config(def, sizeof(def));
    if (strcmp(cmd, "top") == 0)
        fprintf(f, "usage: lookout top [--admin URL] [-c FILE] [--interval DURATION]\n"
                   "\n"
                   "A live view of a running agent, from its admin endpoint's /metrics and\n"
                   "/readyz, redrawn every interval. q or Ctrl-C quits.\n");
    else
        fprintf(f, "usage: lookout status [--admin URL] [-c FILE] [--interval DURATION]\n"
                   "\n"
                   "A running agent's state, once, as plain text: two scrapes of its /metrics\n"
                   "an interval apart (rates), and /readyz.\n"
                   "Exit codes: 0 ready, 1 not ready, 2 usage, 3 unreachable (or not lookout),\n"
                   "4 the configuration could not be read, 5 other failure.\n");
    fprintf(f,
            "\n"
            "  -a, --admin URL          the admin endpoint: http://host:port, host:port or\n"
            "                           unix:///path (default: admin.endpoint of the\n"
            "                           configuration, else http://" DEFAULT_ADMIN ")\n"
            "  -c, --config FILE        configuration to take admin.endpoint from\n"
            "                           (default: %s, when it exists)\n"
            "  -i, --interval DURATION  %s (default 1s; e.g. 500ms, 2s)\n"
            "%s"
            "  -h, --help               print this help and exit\n",
            def, strcmp(cmd, "top") == 0 ? "refresh interval" : "time between the two scrapes",
            strcmp(cmd, "top") == 0 ? "" : "                           0: one scrape, totals only\n");
}

/* The admin endpoint: --admin, else the configuration's. An exit code. */
static int resolve(const char *cmd, const char *admin, const char *config,
                   struct lk_cli_target *t)
{
    char err[256], path[4096];
    char *errors = NULL;

    if (admin != NULL) {
        if (lk_cli_target_parse(admin, t, err, sizeof(err)) == 0)
            return LK_CLI_EXIT_OK;
        fprintf(stderr, "lookout %s: --admin: %s\n", cmd, err);
        return LK_CLI_EXIT_USAGE;
    }
    if (config == NULL) {
        lk_cli_default_config(path, sizeof(path));
        if (access(path, F_OK) != 0)
            return lk_cli_target_parse(DEFAULT_ADMIN, t, err, sizeof(err)) == 0
                       ? LK_CLI_EXIT_OK
                       : LK_CLI_EXIT_FAILURE;
        config = path;
    }
    /* Only admin.endpoint is read: the running agent may well run an older
     * version of a file that no longer validates, or one whose other ${VAR}s
     * only the service's environment sets. A file whose admin.endpoint cannot
     * be read names no endpoint we could trust: guessing the default might
     * show another agent. */
    char *endpoint = NULL;
    int rc = lk_config_load_admin_endpoint(config, &endpoint, &errors);
    if (rc < 0) {
        fprintf(stderr, "lookout %s: cannot take the admin endpoint from %s:\n%s", cmd, config,
                errors != NULL ? errors : lk_strerror(rc));
        if (errors == NULL || errors[0] == '\0' || errors[strlen(errors) - 1] != '\n')
            fputc('\n', stderr);
        fprintf(stderr, "lookout %s: give it with --admin URL\n", cmd);
        free(errors);
        return LK_CLI_EXIT_CONFIG;
    }
    rc = lk_cli_target_parse(endpoint, t, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "lookout %s: admin.endpoint of %s: %s\n", cmd, config, err);
    free(endpoint);
    return rc < 0 ? LK_CLI_EXIT_CONFIG : LK_CLI_EXIT_OK;
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double when)
{
    double left;
    while ((left = when - now_mono()) > 0) {
        struct timespec ts = {(time_t)left, (long)((left - floor(left)) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static int unreachable(const struct lk_cli_target *t, const char *why)
{
    fprintf(stderr, "lookout status: no lookout at %s: %s\n", t->shown, why);
    return LK_CLI_EXIT_UNREACHABLE;
}

/* Two scrapes |interval| apart (one when 0), /readyz, the report. */
static int run_status(const struct lk_cli_target *t, double interval)
{
    lk_scrape *s = NULL;
    lk_metrics_text *first = NULL, *second = NULL;
    struct lk_status st;
    lk_buf out;
    char err[512];
    bool ready = false;
    int code = LK_CLI_EXIT_FAILURE;

    lk_buf_init(&out, SIZE_MAX);
    if (lk_scrape_create(&s, t->url, t->unix_path[0] ? t->unix_path : NULL,
                         REQUEST_TIMEOUT_MS) < 0) {
        fprintf(stderr, "lookout status: libcurl failed to start\n");
        return code;
    }
    double t0 = now_mono();
    int rc = lk_scrape_metrics(s, lk_status_wants_metric, &first, err, sizeof(err));
    double t1 = t0;
    if (rc == 0 && interval > 0) {
        sleep_until(t0 + interval);
        t1 = now_mono();
        rc = lk_scrape_metrics(s, lk_status_wants_metric, &second, err, sizeof(err));
    }
    if (rc == 0)
        rc = lk_scrape_ready(s, &ready, err, sizeof(err));
    if (rc == LK_EIO || rc == LK_EPROTO) {
        code = unreachable(t, err);
        goto out;
    }
    if (rc < 0) {
        fprintf(stderr, "lookout status: %s\n", err);
        goto out;
    }
    rc = second != NULL ? lk_status_build(&st, first, t1 - t0, second, now_wall())
                        : lk_status_build(&st, NULL, 0, first, now_wall());
    if (rc < 0) {
        fprintf(stderr, "lookout status: %s\n", lk_strerror(rc));
        goto out;
    }
    st.target = t->shown;
    st.state = ready ? LK_STATUS_READY : LK_STATUS_NOT_READY;
    rc = lk_status_render(&st, &(struct lk_status_render_opts){0}, &out);
    lk_status_fini(&st);
    if (rc < 0) {
        fprintf(stderr, "lookout status: %s\n", lk_strerror(rc));
        goto out;
    }
    fwrite(out.data, 1, out.len, stdout);
    code = fflush(stdout) == 0 ? ready ? LK_CLI_EXIT_OK : LK_CLI_EXIT_NOT_READY
                               : LK_CLI_EXIT_FAILURE;
out:
    lk_metrics_text_destroy(first);
    lk_metrics_text_destroy(second);
    lk_scrape_destroy(s);
    lk_buf_fini(&out);
    return code;
}

int lk_cli_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"admin", required_argument, NULL, 'a'},
        {"config", required_argument, NULL, 'c'},
        {"interval", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = argv[0], *admin = NULL, *config = NULL;
    bool top = strcmp(cmd, "top") == 0;
    double interval = DEFAULT_INTERVAL;
    struct lk_cli_target t;
    int ch;

    optind = 1;
    opterr = 0; /* getopt would name the tool "top", not "lookout top" */
    while ((ch = getopt_long(argc, argv, ":a:c:i:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'a':
            admin = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'i':
            if (lk_cli_parse_interval(optarg, &interval) < 0 || (top && interval < 0.1)) {
                fprintf(stderr, "lookout %s: --interval: '%s' is not a duration%s\n", cmd,
                        optarg, top ? " from 100ms to 1h" : " up to 1h");
                return LK_CLI_EXIT_USAGE;
            }
            break;
        case 'h':
            usage(stdout, cmd);
            return LK_CLI_EXIT_OK;
        case ':':
            fprintf(stderr, "lookout %s: %s needs a value\n", cmd, argv[optind - 1]);
            return LK_CLI_EXIT_USAGE;
        default:
            /* optopt names a short option (also one inside "-zq"); a long one
             * leaves it 0 and is the argument just read. */
            if (optopt != 0)
                fprintf(stderr, "lookout %s: unknown option -%c\n", cmd, optopt);
            else
                fprintf(stderr, "lookout %s: unknown option %s\n", cmd, argv[optind - 1]);
            usage(stderr, cmd);
            return LK_CLI_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "lookout %s: unexpected argument '%s'\n", cmd, argv[optind]);
        usage(stderr, cmd);
        return LK_CLI_EXIT_USAGE;
    }
    /* Before anything else: a top that cannot draw should say so first. */
    if (top && !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "lookout top: stdout is not a terminal; for scripts and pipes use "
                        "`lookout status`\n");
        return LK_CLI_EXIT_USAGE;
    }
    int code = resolve(cmd, admin, config, &t);
    if (code != LK_CLI_EXIT_OK)
        return code;
    return top ? lk_top_run(&t, interval) : run_status(&t, interval);
}
