/* lookout: process entry, start-up, signals and shutdown. The only file with
 * globals. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "admin/admin.h"
#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/platform.h"
#include "core/selfmetrics.h"
#include "exporters/loki.h"
#include "exporters/otlp.h"
#include "exporters/otlphttp.h"
#include "exporters/prometheus.h"
#include "exporters/remote_write.h"
#include "pipeline/pipeline.h"
#include "pipeline/queue.h"
#include "receivers/lines.h"
#include "receivers/otlp_grpc.h"
#include "receivers/otlp_http.h"

/* Exit codes, documented in docs/cli.md. */
enum {
    EXIT_OK = 0,
    EXIT_CONFIG = 1,  /* invalid configuration */
    EXIT_USAGE = 2,   /* bad command line */
    EXIT_STARTUP = 3, /* could not start: port in use, out of memory, ... */
};

struct agent {
    uv_loop_t loop;
    lk_config *cfg;
    lk_metrics *metrics;
    lk_admin *admin;
    lk_exporter **exporters; /* parallel to cfg->exporters; NULL if unused */
    lk_queue **queues;
    size_t nqueues;
    lk_pipeline *pipelines[LK_SIGNAL_COUNT];
    lk_otlp_grpc **grpc; /* parallel to cfg->receivers */
    lk_otlp_http **http; /* parallel to cfg->receivers */
    lk_lines **lines;    /* parallel to cfg->receivers */
    uv_signal_t sig_int, sig_term, sig_hup;
    uv_timer_t deadline;
    int pending;   /* receivers, queues or exporters still closing */
    int stage;     /* 0 running, 1 receivers closing, 2 draining, 3 exporters
                      closing, 4 admin closing, 5 last handles closing */
    bool aborted;
};

static struct agent A;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lookout [-c FILE] [--check-config] [--version] [--help]\n"
            "\n"
            "A local telemetry agent: receives OTLP (gRPC and HTTP) from local processes,\n"
            "batches it and forwards it to the configured backends.\n"
            "\n"
            "  -c, --config FILE   configuration file (default: config/lookout.yaml)\n"
            "      --check-config  validate the configuration and exit (0 valid, 1 not)\n"
            "  -v, --version       print the version and exit\n"
            "  -h, --help          print this help and exit\n"
            "\n"
            "Signals: SIGTERM/SIGINT drain queued data (up to shutdown_timeout) and exit.\n"
            "Exit codes: 0 ok, 1 invalid configuration, 2 usage, 3 start-up failure.\n");
}

static void step_shutdown(void);

static void one_closed(void *arg)
{
    if (--A.pending == 0)
        step_shutdown();
}

/* Shutdown runs in stages, each started when the previous one finished:
 * receivers stop accepting, queues drain to the exporters (bounded by
 * shutdown_timeout), exporters close, the admin server closes, then the
 * loop's own handles. */
static void step_shutdown(void)
{
    A.stage++;
    if (A.stage == 2) {
        A.pending = 1;
        for (size_t i = 0; i < A.nqueues; i++) {
            A.pending++;
            lk_queue_drain(A.queues[i], one_closed, NULL);
        }
        one_closed(NULL);
    } else if (A.stage == 3) {
        uv_timer_stop(&A.deadline);
        if (A.admin != NULL) /* a scrape must not render a closed exporter */
            lk_admin_set_renderer(A.admin, NULL, NULL);
        A.pending = 1;
        for (size_t i = 0; i < A.cfg->nexporters; i++) {
            if (A.exporters[i] != NULL) {
                A.pending++;
                A.exporters[i]->ops->close(A.exporters[i], one_closed, NULL);
                A.exporters[i] = NULL;
            }
        }
        one_closed(NULL);
    } else if (A.stage == 4) {
        for (size_t i = 0; i < A.nqueues; i++)
            lk_queue_destroy(A.queues[i]);
        A.nqueues = 0;
        A.pending = 1;
        if (A.admin != NULL) {
            A.pending++;
            lk_admin_close(A.admin, one_closed, NULL);
            A.admin = NULL;
        }
        one_closed(NULL);
    } else if (A.stage == 5) {
        uv_close((uv_handle_t *)&A.deadline, NULL);
        uv_close((uv_handle_t *)&A.sig_int, NULL);
        uv_close((uv_handle_t *)&A.sig_term, NULL);
        uv_close((uv_handle_t *)&A.sig_hup, NULL);
        lk_log(LK_LOG_INFO, "stopped", LK_S("version", LK_VERSION));
    }
}

static void deadline_cb(uv_timer_t *t)
{
    lk_log(LK_LOG_WARN, "shutdown_timeout reached, dropping what is still queued",
           LK_U("shutdown_timeout_ms", A.cfg->shutdown_timeout_ms));
    A.aborted = true;
    for (size_t i = 0; i < A.nqueues; i++)
        lk_queue_abort(A.queues[i]);
    /* Batches still in flight end when their exporter closes. */
    if (A.stage == 2) {
        if (A.admin != NULL)
            lk_admin_set_renderer(A.admin, NULL, NULL);
        for (size_t i = 0; i < A.cfg->nexporters; i++) {
            if (A.exporters[i] != NULL) {
                A.pending++;
                A.exporters[i]->ops->close(A.exporters[i], one_closed, NULL);
                A.exporters[i] = NULL;
            }
        }
    }
}

static void begin_shutdown(int signum)
{
    if (A.stage != 0) {
        if (!A.aborted) {
            lk_log(LK_LOG_WARN, "second signal, not waiting for the queues");
            deadline_cb(&A.deadline);
        }
        return;
    }
    lk_log(LK_LOG_INFO, "shutting down", LK_S("signal", strsignal(signum))
           LK_U("shutdown_timeout_ms", A.cfg->shutdown_timeout_ms));
    if (A.admin != NULL)
        lk_admin_set_ready(A.admin, false);
    uv_timer_start(&A.deadline, deadline_cb, A.cfg->shutdown_timeout_ms, 0);
    A.stage = 1;
    A.pending = 1;
    for (size_t i = 0; i < A.cfg->nreceivers; i++) {
        if (A.grpc[i] != NULL) {
            A.pending++;
            lk_otlp_grpc_close(A.grpc[i], one_closed, NULL);
            A.grpc[i] = NULL;
        }
        if (A.http[i] != NULL) {
            A.pending++;
            lk_otlp_http_close(A.http[i], one_closed, NULL);
            A.http[i] = NULL;
        }
        if (A.lines[i] != NULL) {
            A.pending++;
            lk_lines_close(A.lines[i], one_closed, NULL);
            A.lines[i] = NULL;
        }
    }
    one_closed(NULL);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    if (signum == SIGHUP) {
        lk_log(LK_LOG_WARN, "SIGHUP: configuration reload is not implemented "
                            "yet; the running configuration stays");
        return;
    }
    begin_shutdown(signum);
}

static struct lk_exporter_config *find_exporter(const lk_config *c,
                                                const char *name, size_t *idx)
{
    for (size_t i = 0; i < c->nexporters; i++) {
        if (strcmp(c->exporters[i].name, name) == 0) {
            *idx = i;
            return &c->exporters[i];
        }
    }
    return NULL;
}

static bool pipeline_has_receiver(const struct lk_pipeline_config *p,
                                  const char *name)
{
    for (size_t i = 0; i < p->nreceivers; i++)
        if (strcmp(p->receivers[i], name) == 0)
            return true;
    return false;
}

/* Builds exporters, queues and pipelines from the config. */
static int build_pipelines(void)
{
    lk_config *c = A.cfg;
    size_t total = 0;

    A.exporters = calloc(c->nexporters ? c->nexporters : 1, sizeof(*A.exporters));
    for (size_t i = 0; i < c->npipelines; i++)
        total += c->pipelines[i].nexporters;
    A.queues = calloc(total ? total : 1, sizeof(*A.queues));
    if (A.exporters == NULL || A.queues == NULL)
        return LK_ENOMEM;
    for (size_t i = 0; i < c->npipelines; i++) {
        const struct lk_pipeline_config *pc = &c->pipelines[i];
        lk_queue **qs = A.queues + A.nqueues;
        for (size_t j = 0; j < pc->nexporters; j++) {
            size_t idx = 0;
            struct lk_exporter_config *ec = find_exporter(c, pc->exporters[j], &idx);
            if (ec == NULL)
                return LK_ECONFIG; /* the loader checked references */
            if (A.exporters[idx] == NULL) {
                int rc = ec->type == LK_EXPORTER_OTLPHTTP
                             ? lk_otlphttp_exporter_create(&A.exporters[idx], &A.loop, ec)
                         : ec->type == LK_EXPORTER_LOKI
                             ? lk_loki_exporter_create(&A.exporters[idx], &A.loop, ec)
                         : ec->type == LK_EXPORTER_PROMETHEUS
                             ? lk_prometheus_exporter_create(&A.exporters[idx], &A.loop, ec,
                                                             A.metrics)
                         : ec->type == LK_EXPORTER_PROMETHEUSREMOTEWRITE
                             ? lk_remote_write_exporter_create(&A.exporters[idx], &A.loop, ec,
                                                               A.metrics)
                             : lk_otlp_exporter_create(&A.exporters[idx], &A.loop, ec);
                if (rc == 0 && ec->type == LK_EXPORTER_PROMETHEUS && ec->endpoint == NULL)
                    lk_admin_set_renderer(A.admin, lk_prometheus_exporter_render,
                                          A.exporters[idx]);
                if (rc < 0) {
                    lk_log(LK_LOG_ERROR, "cannot create exporter",
                           LK_S("exporter", ec->name) LK_S("error", lk_strerror(rc)));
                    return rc;
                }
            }
            struct lk_queue_opts qo = {
                .signal = pc->signal,
                .queue = &ec->queue,
                .batch = &ec->batch,
                .retry = &ec->retry,
                .max_concurrency = ec->max_concurrency,
            };
            int rc = lk_queue_create(&A.queues[A.nqueues], &A.loop, &qo,
                                     A.exporters[idx], A.metrics);
            if (rc < 0)
                return rc;
            A.nqueues++;
        }
        int rc = lk_pipeline_create(&A.pipelines[pc->signal], pc->signal, qs,
                                    pc->nexporters);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int start_receivers(void)
{
    lk_config *c = A.cfg;
    A.grpc = calloc(c->nreceivers ? c->nreceivers : 1, sizeof(*A.grpc));
    A.http = calloc(c->nreceivers ? c->nreceivers : 1, sizeof(*A.http));
    A.lines = calloc(c->nreceivers ? c->nreceivers : 1, sizeof(*A.lines));
    if (A.grpc == NULL || A.http == NULL || A.lines == NULL)
        return LK_ENOMEM;
    for (size_t i = 0; i < c->nreceivers; i++) {
        const struct lk_receiver_config *rc = &c->receivers[i];
        lk_pipeline *mine[LK_SIGNAL_COUNT] = {0};
        bool used = false;
        for (size_t j = 0; j < c->npipelines; j++) {
            if (pipeline_has_receiver(&c->pipelines[j], rc->name)) {
                mine[c->pipelines[j].signal] = A.pipelines[c->pipelines[j].signal];
                used = true;
            }
        }
        if (!used) {
            lk_log(LK_LOG_WARN, "receiver is in no pipeline, not started",
                   LK_S("receiver", rc->name));
            continue;
        }
        if (rc->type == LK_RECEIVER_LINES) {
            /* The loader allows lines receivers in the logs pipeline only. */
            int err = lk_lines_start(&A.lines[i], &A.loop, rc->name, &rc->lines,
                                     mine[LK_SIGNAL_LOGS], A.metrics);
            if (err < 0)
                return err;
            continue;
        }
        if (rc->grpc.enabled) {
            int err = lk_otlp_grpc_start(&A.grpc[i], &A.loop, rc->name, &rc->grpc,
                                         mine, A.metrics);
            if (err < 0)
                return err;
        }
        if (rc->http.enabled) {
            int err = lk_otlp_http_start(&A.http[i], &A.loop, rc->name, &rc->http,
                                         mine, A.metrics);
            if (err < 0)
                return err;
        }
    }
    return 0;
}

static void register_agent_metrics(void)
{
    lk_platform_register_build_info(A.metrics, LK_VERSION);
    lk_gauge_set(lk_metrics_gauge(A.metrics, "lookout_config_last_reload_successful",
                                  "1 when the last configuration load succeeded.",
                                  ""),
                 1);
    lk_gauge_set(lk_metrics_gauge(A.metrics,
                                  "lookout_config_last_reload_success_timestamp_seconds",
                                  "Unix time of the last successful configuration load.",
                                  ""),
                 (double)time(NULL));
    lk_platform_register_process_metrics(A.metrics);
}

static int run(void)
{
    int rc;

    signal(SIGPIPE, SIG_IGN);
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
    uv_timer_init(&A.loop, &A.deadline);
    uv_signal_init(&A.loop, &A.sig_int);
    uv_signal_init(&A.loop, &A.sig_term);
    uv_signal_init(&A.loop, &A.sig_hup);
    uv_signal_start(&A.sig_int, signal_cb, SIGINT);
    uv_signal_start(&A.sig_term, signal_cb, SIGTERM);
    uv_signal_start(&A.sig_hup, signal_cb, SIGHUP);

    rc = lk_admin_start(&A.admin, &A.loop, A.cfg->admin.endpoint, A.metrics);
    if (rc == 0)
        rc = build_pipelines();
    if (rc == 0)
        rc = start_receivers();
    if (rc < 0) {
        lk_log(LK_LOG_ERROR, "start-up failed", LK_S("error", lk_strerror(rc)));
        return EXIT_STARTUP;
    }
    lk_admin_set_ready(A.admin, true);
    lk_log(LK_LOG_INFO, "started", LK_S("version", LK_VERSION)
           LK_S("config", A.cfg->path));
    uv_run(&A.loop, UV_RUN_DEFAULT);

    for (int i = 0; i < LK_SIGNAL_COUNT; i++)
        lk_pipeline_destroy(A.pipelines[i]);
    /* Let close callbacks run, then release the loop. */
    uv_run(&A.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&A.loop) != 0)
        lk_log(LK_LOG_WARN, "loop closed with handles still open");
    lk_metrics_destroy(A.metrics);
    free(A.queues);
    free(A.exporters);
    free(A.grpc);
    free(A.http);
    free(A.lines);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = "config/lookout.yaml";
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
            printf("lookout %s\n", LK_VERSION);
            return EXIT_OK;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        usage(stderr);
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
    lk_config_destroy(A.cfg);
    return code;
}
