/* lookout: process entry, command line and signals; the components are
 * service.c's, the tools `lookout top` and `lookout status` cli/'s. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "admin/admin.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/compress.h"
#include "core/err.h"
#include "core/log.h"
#include "core/platform.h"
#include "core/selfmetrics.h"
#include "service.h"

/* Exit codes, documented in docs/cli.md. */
enum {
    EXIT_OK = 0,
    EXIT_CONFIG = 1,  /* invalid configuration */
    EXIT_USAGE = 2,   /* bad command line */
    EXIT_STARTUP = 3, /* could not start: port in use, out of memory, ... */
};

/* How long SIGHUPs are gathered into one reload. */
#define RELOAD_COALESCE_MS 50
/* watch_config: how long the file must stay quiet before it is read. */
#define WATCH_DEBOUNCE_MS 300

struct agent {
    uv_loop_t loop;
    lk_config *cfg; /* until the service takes it */
    lk_metrics *metrics;
    lk_admin *admin;
    uv_signal_t sig_int, sig_term, sig_hup;
    uv_timer_t reload_timer;
    uv_fs_event_t watch; /* watch_config: the config file's directory */
    bool watching;
    char *watch_base;    /* the file's name in it */
    bool stopping;
};

static struct agent A;

static void usage(FILE *f, const char *default_config)
{
    fprintf(f,
            "usage: lookout [-c FILE] [--check-config] [--version] [--help]\n"
            "       lookout top [--admin URL] [-c FILE] [--interval DURATION]\n"
            "       lookout status [--admin URL] [-c FILE] [--interval DURATION]\n"
            "\n"
            "A local telemetry agent: receives OTLP (gRPC and HTTP) from local processes,\n"
            "batches it and forwards it to the configured backends.\n"
            "\n"
            "  -c, --config FILE   configuration file (default: %s)\n"
            "      --check-config  validate the configuration and exit (0 valid, 1 not)\n"
            "  -v, --version       print the version and exit\n"
            "  -h, --help          print this help and exit\n"
            "\n"
            "Signals: SIGHUP reloads the configuration; SIGTERM/SIGINT drain queued data\n"
            "(up to shutdown_timeout) and exit.\n"
            "Exit codes: 0 ok, 1 invalid configuration, 2 usage, 3 start-up failure.\n"
            "\n"
            "Tools (lookout top --help, lookout status --help):\n"
            "  top                 a live view of a running agent, from its admin endpoint\n"
            "  status              the same once, as plain text, for scripts\n",
            default_config);
}

static void reload_timer_cb(uv_timer_t *t);

static void watch_cb(uv_fs_event_t *h, const char *filename, int events, int status)
{
    (void)h;
    (void)events;
    if (status < 0 || A.stopping)
        return;
    /* Editors write aside and rename: the name, not the inode, is what counts.
     * Some systems do not say which file changed. */
    if (filename != NULL && strcmp(filename, A.watch_base) != 0)
        return;
    uv_timer_start(&A.reload_timer, reload_timer_cb, WATCH_DEBOUNCE_MS, 0);
}

/* Starts or stops watching the file as the configuration in force says. */
static void sync_watch(void)
{
    const lk_config *c = lk_service_config();
    bool want = c != NULL && c->watch_config && !A.stopping;
    if (want == A.watching)
        return;
    if (!want) {
        uv_fs_event_stop(&A.watch);
        A.watching = false;
        return;
    }
    const char *slash = strrchr(c->path, '/');
    char dir[4096];
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash == c->path ? 1 : slash - c->path),
                 c->path);
    free(A.watch_base);
    A.watch_base = strdup(slash ? slash + 1 : c->path);
    int rc = A.watch_base ? uv_fs_event_start(&A.watch, watch_cb, dir, 0) : UV_ENOMEM;
    if (rc != 0) {
        lk_log(LK_LOG_ERROR, "watch_config: cannot watch the configuration's directory",
               LK_S("dir", dir) LK_S("error", uv_strerror(rc)));
        return;
    }
    A.watching = true;
    lk_log(LK_LOG_INFO, "watching the configuration file", LK_S("config", c->path));
}

/* The service is down: the admin listener and our handles go last. */
static void service_done(void)
{
    uv_close((uv_handle_t *)&A.sig_int, NULL);
    uv_close((uv_handle_t *)&A.sig_term, NULL);
    uv_close((uv_handle_t *)&A.sig_hup, NULL);
    uv_close((uv_handle_t *)&A.reload_timer, NULL);
    uv_close((uv_handle_t *)&A.watch, NULL);
    if (A.admin != NULL) {
        lk_admin_close(A.admin, NULL, NULL);
        A.admin = NULL;
    }
    lk_log(LK_LOG_INFO, "stopped", LK_S("version", LK_VERSION));
}

static void begin_shutdown(int signum)
{
    if (!A.stopping)
        lk_log(LK_LOG_INFO, "shutting down", LK_S("signal", strsignal(signum))
               LK_U("shutdown_timeout_ms", lk_service_config()->shutdown_timeout_ms));
    A.stopping = true;
    uv_timer_stop(&A.reload_timer);
    sync_watch();
    if (A.admin != NULL)
        lk_admin_set_ready(A.admin, false);
    lk_service_shutdown(service_done);
}

static int admin_reload(void *arg, char **errors)
{
    (void)arg;
    int rc = lk_service_reload(errors);
    sync_watch();
    return rc;
}

static void reload_timer_cb(uv_timer_t *t)
{
    char *errors = NULL;
    int rc = lk_service_reload(&errors); /* logged and counted there */
    free(errors);
    if (rc == LK_EAGAIN) /* the last one is not done: a little later */
        uv_timer_start(t, reload_timer_cb, RELOAD_COALESCE_MS, 0);
    sync_watch();
}

static void signal_cb(uv_signal_t *h, int signum)
{
    (void)h;
    if (signum == SIGHUP) {
        /* Several in quick succession make one reload. */
        if (!A.stopping)
            uv_timer_start(&A.reload_timer, reload_timer_cb, RELOAD_COALESCE_MS, 0);
        return;
    }
    begin_shutdown(signum);
}

static void register_agent_metrics(void)
{
    lk_platform_register_build_info(A.metrics, LK_VERSION);
    lk_platform_register_process_metrics(A.metrics);
}

static int run(void)
{
    int rc;

    signal(SIGPIPE, SIG_IGN);
    /* A file-size limit (ulimit -f) makes the spool's writes fail with
     * EFBIG, handled as a full disk, instead of killing the process. */
    signal(SIGXFSZ, SIG_IGN);
    lk_platform_tune_allocator();
    /* gRPC C core prints plain-text lines on stderr, which would break the
     * one-JSON-object-per-line log; failures reach our log as call statuses.
     * Users can still set GRPC_VERBOSITY=ERROR to see gRPC's own words. */
    setenv("GRPC_VERBOSITY", "NONE", 0);
    lk_log_level_set(A.cfg->log_level);
    if (uv_loop_init(&A.loop) != 0)
        return EXIT_STARTUP;
    A.metrics = lk_metrics_create();
    if (A.metrics == NULL)
        return EXIT_STARTUP;
    register_agent_metrics();
    uv_timer_init(&A.loop, &A.reload_timer);
    uv_fs_event_init(&A.loop, &A.watch);
    uv_signal_init(&A.loop, &A.sig_int);
    uv_signal_init(&A.loop, &A.sig_term);
    uv_signal_init(&A.loop, &A.sig_hup);
    uv_signal_start(&A.sig_int, signal_cb, SIGINT);
    uv_signal_start(&A.sig_term, signal_cb, SIGTERM);
    uv_signal_start(&A.sig_hup, signal_cb, SIGHUP);

    const char *path = A.cfg->path;
    rc = lk_admin_start(&A.admin, &A.loop, A.cfg->admin.endpoint, A.metrics);
    if (rc == 0) {
        lk_config *cfg = A.cfg;
        A.cfg = NULL; /* the service's now */
        rc = lk_service_start(&A.loop, cfg, A.metrics, A.admin);
        path = lk_service_config()->path;
    }
    int code = EXIT_OK;
    if (rc < 0) {
        lk_log(LK_LOG_ERROR, "start-up failed", LK_S("error", lk_strerror(rc)));
        code = EXIT_STARTUP;
        if (A.cfg == NULL) { /* the service started in part: stop what it has */
            A.stopping = true;
            lk_service_shutdown(service_done);
        } else {
            service_done();
        }
    } else {
        lk_admin_set_reload(A.admin, admin_reload, NULL);
        lk_admin_set_ready(A.admin, true);
        sync_watch();
        lk_log(LK_LOG_INFO, "started", LK_S("version", LK_VERSION) LK_S("config", path)
                                           LK_S("compression", lk_compress_libraries()));
    }
    uv_run(&A.loop, UV_RUN_DEFAULT);
    /* Let close callbacks run, then release the loop. */
    uv_run(&A.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&A.loop) != 0)
        lk_log(LK_LOG_WARN, "loop closed with handles still open");
    lk_service_fini();
    lk_metrics_destroy(A.metrics);
    free(A.watch_base);
    return code;
}

int main(int argc, char **argv)
{
    if (argc > 1 && lk_cli_is_command(argv[1]))
        return lk_cli_main(argc - 1, argv + 1);

    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char default_path[4096];
    lk_cli_default_config(default_path, sizeof(default_path));
    const char *path = default_path;
    bool check_only = false;
    int ch;

    while ((ch = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 'C':
            check_only = true;
            break;
        case 'v':
            printf("lookout %s (%s)\n", LK_VERSION, lk_compress_libraries());
            return EXIT_OK;
        case 'h':
            usage(stdout, default_path);
            return EXIT_OK;
        default:
            usage(stderr, default_path);
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        usage(stderr, default_path);
        return EXIT_USAGE;
    }

    char *errors = NULL;
    int rc = lk_config_load(path, &A.cfg, &errors);
    if (rc < 0) {
        fprintf(stderr, "%s", errors != NULL ? errors : lk_strerror(rc));
        if (errors == NULL || errors[0] == '\0' ||
            errors[strlen(errors) - 1] != '\n')
            fputc('\n', stderr);
        free(errors);
        return EXIT_CONFIG;
    }
    free(errors);
    if (check_only) {
        printf("%s: configuration is valid\n", path);
        lk_config_destroy(A.cfg);
        return EXIT_OK;
    }
    int code = run();
    lk_config_destroy(A.cfg); /* when the service never took it */
    return code;
}
