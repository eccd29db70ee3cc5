/* Config loader: YAML text -> lk_config, and every error with its exact
 * file:line:column. Runs from the repository root (loads config/lookout.yaml). */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/err.h"

#define NAME "t.yaml"

/* A receiver and a pipeline that make an exporter fragment a whole config. */
#define TAIL                                                                   \
    "receivers: {otlp: {protocols: {grpc: }}}\n"                               \
    "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}\n"
#define EP "    endpoint: h:1\n"

static char *errors_of(const char *yaml)
{
    lk_config *c = NULL;
    char *e = NULL;
    int rc = lk_config_parse(NAME, yaml, strlen(yaml), &c, &e);
    ck_assert_msg(rc == LK_ECONFIG, "rc %d for:\n%s", rc, yaml);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(e);
    return e;
}

static lk_config *config_of(const char *yaml)
{
    lk_config *c = NULL;
    char *e = NULL;
    int rc = lk_config_parse(NAME, yaml, strlen(yaml), &c, &e);
    ck_assert_msg(rc == 0, "rc %d, errors:\n%s", rc, e ? e : "(none)");
    ck_assert_ptr_null(e);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* "exporters: otlp:" with |frag| (lines indented by 4) from line 3, then TAIL. */
static char *exporter_yaml(const char *frag)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "exporters:\n  otlp:\n%s" TAIL, frag);
    return buf;
}

static lk_config *exporter_ok(const char *frag)
{
    return config_of(exporter_yaml(frag));
}

static char *exporter_err(const char *frag)
{
    return errors_of(exporter_yaml(frag));
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

static bool has_line(const char *errs, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = errs; (p = strstr(p, line)) != NULL; p++)
        if ((p == errs || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

#define ASSERT_LINE(errs, line)                                                \
    ck_assert_msg(has_line((errs), (line)), "missing line\n  %s\nin:\n%s", (line), \
                  (errs))

/* The text holds exactly one error, |line|. */
static void assert_only(char *errs, const char *line)
{
    ASSERT_LINE(errs, line);
    ck_assert_msg(count_lines(errs) == 1, "expected one error, got:\n%s", errs);
    free(errs);
}

static void assert_prefix(char *errs, const char *prefix)
{
    ck_assert_msg(strncmp(errs, prefix, strlen(prefix)) == 0,
                  "expected a line starting with\n  %s\ngot:\n%s", prefix, errs);
    ck_assert_msg(count_lines(errs) == 1, "expected one error, got:\n%s", errs);
    free(errs);
}

/* ---- the default file ---- */

START_TEST(default_file_parses)
{
    lk_config *c = NULL;
    char *e = NULL;
    int rc = lk_config_load("config/lookout.yaml", &c, &e);
    ck_assert_msg(rc == 0, "rc %d:\n%s", rc, e ? e : "");
    ck_assert_str_eq(c->path, "config/lookout.yaml");
    ck_assert_int_eq(c->log_level, LK_LOG_INFO);
    ck_assert_uint_eq(c->shutdown_timeout_ms, 5000);
    ck_assert_str_eq(c->admin.endpoint, "127.0.0.1:9464");

    ck_assert_uint_eq(c->nreceivers, 2);
    ck_assert_str_eq(c->receivers[1].name, "lines");
    ck_assert_int_eq(c->receivers[1].type, LK_RECEIVER_LINES);
    ck_assert_str_eq(c->receivers[1].lines.path, "/tmp/lookout.sock");
    ck_assert_str_eq(c->receivers[0].name, "otlp");
    ck_assert(c->receivers[0].grpc.enabled);
    ck_assert_str_eq(c->receivers[0].grpc.endpoint, "127.0.0.1:4317");
    ck_assert(c->receivers[0].http.enabled);
    ck_assert_str_eq(c->receivers[0].http.endpoint, "127.0.0.1:4318");

    ck_assert_uint_eq(c->nexporters, 3);
    ck_assert_str_eq(c->exporters[2].name, "prometheus");
    ck_assert_int_eq(c->exporters[2].type, LK_EXPORTER_PROMETHEUS);
    ck_assert(c->exporters[2].prometheus.add_metric_suffixes);
    ck_assert_uint_eq(c->exporters[2].prometheus.metric_expiration_ms, 300000);
    ck_assert_uint_eq(c->exporters[2].prometheus.max_series, 100000);
    ck_assert_uint_eq(c->exporters[2].prometheus.npromote, 0);
    ck_assert_str_eq(c->exporters[1].name, "loki");
    ck_assert_int_eq(c->exporters[1].type, LK_EXPORTER_LOKI);
    ck_assert_str_eq(c->exporters[1].endpoint, "http://127.0.0.1:3100/loki/api/v1/push");
    const struct lk_exporter_config *x = &c->exporters[0];
    ck_assert_str_eq(x->name, "otlp/jaeger");
    ck_assert_int_eq(x->type, LK_EXPORTER_OTLP);
    ck_assert_str_eq(x->endpoint, "127.0.0.1:14317");
    ck_assert_int_eq(x->compression, LK_COMPRESSION_AUTO);
    ck_assert(!lk_exporter_gzip(x)); /* Jaeger on this machine: not compressed */
    ck_assert(!x->tls.enabled);
    ck_assert_uint_eq(x->nheaders, 0);

    ck_assert_uint_eq(c->npipelines, 3);
    ck_assert_int_eq(c->pipelines[1].signal, LK_SIGNAL_METRICS);
    ck_assert_str_eq(c->pipelines[1].receivers[0], "otlp");
    ck_assert_str_eq(c->pipelines[1].exporters[0], "prometheus");
    ck_assert_int_eq(c->pipelines[2].signal, LK_SIGNAL_LOGS);
    ck_assert_uint_eq(c->pipelines[2].nreceivers, 2);
    ck_assert_str_eq(c->pipelines[2].receivers[1], "lines");
    ck_assert_str_eq(c->pipelines[2].exporters[0], "loki");
    ck_assert_int_eq(c->pipelines[0].signal, LK_SIGNAL_TRACES);
    ck_assert_uint_eq(c->pipelines[0].nreceivers, 1);
    ck_assert_str_eq(c->pipelines[0].receivers[0], "otlp");
    ck_assert_uint_eq(c->pipelines[0].nexporters, 1);
    ck_assert_str_eq(c->pipelines[0].exporters[0], "otlp/jaeger");
    lk_config_destroy(c);
}
END_TEST

/* The default file spells out every default: a config that sets nothing
 * but names must come out identical. */
START_TEST(default_file_states_the_builtin_defaults)
{
    lk_config *f = NULL;
    ck_assert_int_eq(lk_config_load("config/lookout.yaml", &f, NULL), 0);
    lk_config *d = config_of("receivers: {otlp: {protocols: {grpc: , http: }}}\n"
                             "exporters: {otlp/jaeger: {endpoint: \"127.0.0.1:14317\"}}\n"
                             "pipelines: {traces: {receivers: [otlp], exporters: [otlp/jaeger]}}\n");
    ck_assert_int_eq(f->log_level, d->log_level);
    ck_assert_uint_eq(f->shutdown_timeout_ms, d->shutdown_timeout_ms);
    ck_assert_uint_eq(f->memory_limit, d->memory_limit);
    ck_assert_str_eq(f->admin.endpoint, d->admin.endpoint);
    const struct lk_grpc_receiver_config *fg = &f->receivers[0].grpc,
                                         *dg = &d->receivers[0].grpc;
    ck_assert_str_eq(fg->endpoint, dg->endpoint);
    ck_assert_uint_eq(fg->max_recv_msg_size, dg->max_recv_msg_size);
    ck_assert_uint_eq(fg->max_concurrent_streams, dg->max_concurrent_streams);
    ck_assert_uint_eq(fg->max_connections, dg->max_connections);
    ck_assert_uint_eq(fg->idle_timeout_ms, dg->idle_timeout_ms);
    ck_assert_uint_eq(fg->handshake_timeout_ms, dg->handshake_timeout_ms);
    const struct lk_http_receiver_config *fh = &f->receivers[0].http,
                                         *dh = &d->receivers[0].http;
    ck_assert_int_eq(fh->enabled, dh->enabled);
    ck_assert_str_eq(fh->endpoint, dh->endpoint);
    ck_assert_uint_eq(fh->max_request_body_size, dh->max_request_body_size);
    ck_assert_uint_eq(fh->max_connections, dh->max_connections);
    ck_assert_uint_eq(fh->max_header_bytes, dh->max_header_bytes);
    ck_assert_uint_eq(fh->idle_timeout_ms, dh->idle_timeout_ms);
    ck_assert_uint_eq(fh->read_timeout_ms, dh->read_timeout_ms);
    ck_assert_uint_eq(fh->handshake_timeout_ms, dh->handshake_timeout_ms);
    const struct lk_exporter_config *fx = &f->exporters[0], *dx = &d->exporters[0];
    ck_assert_uint_eq(fx->timeout_ms, dx->timeout_ms);
    ck_assert_int_eq(fx->compression, dx->compression);
    ck_assert_int_eq(fx->tls.enabled, dx->tls.enabled);
    ck_assert_int_eq(fx->tls.insecure_skip_verify, dx->tls.insecure_skip_verify);
    ck_assert_int_eq(fx->retry.enabled, dx->retry.enabled);
    ck_assert_uint_eq(fx->retry.initial_interval_ms, dx->retry.initial_interval_ms);
    ck_assert_uint_eq(fx->retry.max_interval_ms, dx->retry.max_interval_ms);
    ck_assert_uint_eq(fx->retry.max_elapsed_time_ms, dx->retry.max_elapsed_time_ms);
    ck_assert_double_eq(fx->retry.multiplier, dx->retry.multiplier);
    ck_assert_double_eq(fx->retry.randomization_factor, dx->retry.randomization_factor);
    ck_assert_uint_eq(fx->queue.queue_size, dx->queue.queue_size);
    ck_assert_uint_eq(fx->queue.max_bytes, dx->queue.max_bytes);
    ck_assert_int_eq(fx->queue.overflow, dx->queue.overflow);
    ck_assert_uint_eq(fx->batch.send_batch_size, dx->batch.send_batch_size);
    ck_assert_uint_eq(fx->batch.send_batch_max_bytes, dx->batch.send_batch_max_bytes);
    ck_assert_uint_eq(fx->batch.timeout_ms, dx->batch.timeout_ms);
    ck_assert_uint_eq(fx->max_concurrency, dx->max_concurrency);
    lk_config_destroy(f);
    lk_config_destroy(d);
}
END_TEST

/* ---- defaults and values ---- */

START_TEST(defaults_are_applied)
{
    lk_config *c = exporter_ok(EP);
    ck_assert_str_eq(c->path, NAME);
    ck_assert_int_eq(c->log_level, LK_LOG_INFO);
    ck_assert_uint_eq(c->shutdown_timeout_ms, 5000);
    ck_assert_str_eq(c->admin.endpoint, "127.0.0.1:9464");
    const struct lk_grpc_receiver_config *g = &c->receivers[0].grpc;
    ck_assert(g->enabled);
    ck_assert_str_eq(g->endpoint, "127.0.0.1:4317");
    ck_assert_uint_eq(g->max_recv_msg_size, 64 * 1024 * 1024);
    ck_assert_uint_eq(g->max_concurrent_streams, 100);
    ck_assert_uint_eq(g->max_connections, 256);
    ck_assert_uint_eq(g->idle_timeout_ms, 5 * 60 * 1000);
    ck_assert_uint_eq(g->handshake_timeout_ms, 10 * 1000);
    ck_assert(!c->receivers[0].http.enabled); /* only what is listed */
    const struct lk_exporter_config *x = &c->exporters[0];
    ck_assert_str_eq(x->name, "otlp");
    ck_assert_int_eq(x->type, LK_EXPORTER_OTLP);
    ck_assert_str_eq(x->endpoint, "h:1");
    for (int i = 0; i < LK_SIGNAL_COUNT; i++)
        ck_assert_ptr_null(x->signal_endpoints[i]);
    ck_assert_uint_eq(x->timeout_ms, 10000);
    ck_assert_int_eq(x->compression, LK_COMPRESSION_AUTO);
    ck_assert(lk_exporter_gzip(x)); /* "h:1" is not on this machine */
    ck_assert_uint_eq(x->nheaders, 0);
    ck_assert_ptr_null(x->headers);
    ck_assert(!x->tls.enabled);
    ck_assert(!x->tls.insecure_skip_verify);
    ck_assert_ptr_null(x->tls.ca_file);
    ck_assert_ptr_null(x->tls.cert_file);
    ck_assert_ptr_null(x->tls.key_file);
    ck_assert(x->retry.enabled);
    ck_assert_uint_eq(x->retry.initial_interval_ms, 1000);
    ck_assert_uint_eq(x->retry.max_interval_ms, 30000);
    ck_assert_uint_eq(x->retry.max_elapsed_time_ms, 300000);
    ck_assert_double_eq(x->retry.multiplier, 1.5);
    ck_assert_double_eq(x->retry.randomization_factor, 0.5);
    ck_assert_uint_eq(x->queue.queue_size, 100000);
    ck_assert_uint_eq(x->queue.max_bytes, 32 * 1024 * 1024);
    ck_assert_int_eq(x->queue.overflow, LK_OVERFLOW_REFUSE);
    ck_assert_uint_eq(x->batch.send_batch_size, 8192);
    ck_assert_uint_eq(x->batch.send_batch_max_bytes, 4 * 1024 * 1024);
    ck_assert_uint_eq(x->batch.timeout_ms, 200);
    ck_assert_uint_eq(x->max_concurrency, 4);
    lk_config_destroy(c);
}
END_TEST

START_TEST(memory_limit_default_range_and_errors)
{
    lk_config *c = config_of("exporters: {otlp: {endpoint: h:1}}\n" TAIL);
    ck_assert_uint_eq(c->memory_limit, 256u << 20);
    lk_config_destroy(c);
    c = config_of("memory_limit: 1GiB\nexporters: {otlp: {endpoint: h:1}}\n" TAIL);
    ck_assert_uint_eq(c->memory_limit, 1u << 30);
    lk_config_destroy(c);
    assert_only(errors_of("memory_limit: 1MiB\nexporters: {otlp: {endpoint: h:1}}\n" TAIL),
                NAME ":1:15: memory_limit: must be between 16MiB and 1024GiB, got 1MiB");
    assert_prefix(errors_of("memory_limit: lots\nexporters: {otlp: {endpoint: h:1}}\n" TAIL),
                  NAME ":1:15: memory_limit: expected a size");
}
END_TEST

START_TEST(storage_section)
{
    lk_config *c = config_of("exporters: {otlp: {endpoint: h:1}}\n" TAIL);
    ck_assert_ptr_null(c->storage.path); /* memory only */
    lk_config_destroy(c);
    c = config_of("storage: {path: /var/spool/x.db}\nexporters: {otlp: {endpoint: h:1}}\n" TAIL);
    ck_assert_str_eq(c->storage.path, "/var/spool/x.db");
    ck_assert_uint_eq(c->storage.max_bytes, 1u << 30);
    ck_assert(!c->storage.durable);
    ck_assert_uint_eq(c->storage.commit_interval_ms, 0);
    lk_config_destroy(c);
    c = config_of("storage: {path: s.db, max_bytes: 64MiB, durable: true, commit_interval: 5ms}\n"
                  "exporters: {otlp: {endpoint: h:1}}\n" TAIL);
    ck_assert_uint_eq(c->storage.max_bytes, 64u << 20);
    ck_assert(c->storage.durable);
    ck_assert_uint_eq(c->storage.commit_interval_ms, 5);
    struct lk_storage_config same = c->storage;
    ck_assert(lk_storage_config_equal(&c->storage, &same));
    same.durable = false;
    ck_assert(!lk_storage_config_equal(&c->storage, &same));
    lk_config_destroy(c);
    assert_only(errors_of("storage: {max_bytes: 64MiB}\nexporters: {otlp: {endpoint: h:1}}\n" TAIL),
                NAME ":1:1: storage needs a path (the spool's SQLite file)");
    assert_only(errors_of("storage: {path: s.db, max_bytes: 1KiB}\n"
                          "exporters: {otlp: {endpoint: h:1}}\n" TAIL),
                NAME ":1:34: storage.max_bytes: must be between 1MiB and 1024GiB, got 1KiB");
    assert_prefix(errors_of("storage: {path: s.db, durible: true}\n"
                            "exporters: {otlp: {endpoint: h:1}}\n" TAIL),
                  NAME ":1:23: unknown key 'durible' in storage");
}
END_TEST

START_TEST(every_key_is_read)
{
    lk_config *c = config_of(
        "log_level: debug\n"
        "shutdown_timeout: 30s\n"
        "admin: {endpoint: \"0.0.0.0:19464\"}\n"
        "receivers:\n"
        "  otlp/a:\n"
        "    protocols:\n"
        "      grpc:\n"
        "        endpoint: unix:///tmp/lk.sock\n"
        "        max_recv_msg_size: 8MiB\n"
        "        max_concurrent_streams: 7\n"
        "        max_connections: 9\n"
        "        idle_timeout: 0s\n"
        "        handshake_timeout: 0s\n"
        "exporters:\n"
        "  otlp/b:\n"
        "    endpoint: https://gw.example:443\n"
        "    timeout: 3s\n"
        "    compression: none\n"
        "    headers: {x-scope-orgid: tenant1, authorization: Bearer t}\n"
        "    tls: {insecure_skip_verify: true, ca_file: ca.pem, cert_file: c.pem, key_file: k.pem}\n"
        "    retry: {enabled: false, initial_interval: 2s, max_interval: 1m,\n"
        "            max_elapsed_time: 0s, multiplier: 2, randomization_factor: 0}\n"
        "    queue: {queue_size: 50, max_bytes: 1MiB, overflow: drop}\n"
        "    batch: {send_batch_size: 10, send_batch_max_bytes: 64KiB, timeout: 1s}\n"
        "    max_concurrency: 16\n"
        "pipelines:\n"
        "  logs: {receivers: [otlp/a], exporters: [otlp/b]}\n"
        "  metrics: {receivers: [otlp/a], exporters: [otlp/b]}\n");
    ck_assert_int_eq(c->log_level, LK_LOG_DEBUG);
    ck_assert_uint_eq(c->shutdown_timeout_ms, 30000);
    ck_assert_str_eq(c->admin.endpoint, "0.0.0.0:19464");
    const struct lk_receiver_config *r = &c->receivers[0];
    ck_assert_str_eq(r->name, "otlp/a");
    ck_assert_str_eq(r->grpc.endpoint, "unix:///tmp/lk.sock");
    ck_assert_uint_eq(r->grpc.max_recv_msg_size, 8 * 1024 * 1024);
    ck_assert_uint_eq(r->grpc.max_concurrent_streams, 7);
    ck_assert_uint_eq(r->grpc.max_connections, 9);
    ck_assert_uint_eq(r->grpc.idle_timeout_ms, 0);
    ck_assert_uint_eq(r->grpc.handshake_timeout_ms, 0);
    const struct lk_exporter_config *x = &c->exporters[0];
    ck_assert_str_eq(x->name, "otlp/b");
    ck_assert_str_eq(x->endpoint, "gw.example:443");
    ck_assert(x->tls.enabled); /* from https:// */
    ck_assert(x->tls.insecure_skip_verify);
    ck_assert_str_eq(x->tls.ca_file, "ca.pem");
    ck_assert_str_eq(x->tls.cert_file, "c.pem");
    ck_assert_str_eq(x->tls.key_file, "k.pem");
    ck_assert_uint_eq(x->timeout_ms, 3000);
    ck_assert_int_eq(x->compression, LK_COMPRESSION_NONE);
    ck_assert_uint_eq(x->nheaders, 2);
    ck_assert_str_eq(x->headers[0].name, "x-scope-orgid");
    ck_assert_str_eq(x->headers[0].value, "tenant1");
    ck_assert_str_eq(x->headers[1].name, "authorization");
    ck_assert_str_eq(x->headers[1].value, "Bearer t");
    ck_assert(!x->retry.enabled);
    ck_assert_uint_eq(x->retry.initial_interval_ms, 2000);
    ck_assert_uint_eq(x->retry.max_interval_ms, 60000);
    ck_assert_uint_eq(x->retry.max_elapsed_time_ms, 0);
    ck_assert_double_eq(x->retry.multiplier, 2);
    ck_assert_double_eq(x->retry.randomization_factor, 0);
    ck_assert_uint_eq(x->queue.queue_size, 50);
    ck_assert_uint_eq(x->queue.max_bytes, 1024 * 1024);
    ck_assert_int_eq(x->queue.overflow, LK_OVERFLOW_DROP);
    ck_assert_uint_eq(x->batch.send_batch_size, 10);
    ck_assert_uint_eq(x->batch.send_batch_max_bytes, 64 * 1024);
    ck_assert_uint_eq(x->batch.timeout_ms, 1000);
    ck_assert_uint_eq(x->max_concurrency, 16);
    /* File order is kept. */
    ck_assert_uint_eq(c->npipelines, 2);
    ck_assert_int_eq(c->pipelines[0].signal, LK_SIGNAL_LOGS);
    ck_assert_int_eq(c->pipelines[1].signal, LK_SIGNAL_METRICS);
    lk_config_destroy(c);
}
END_TEST

START_TEST(null_sections_take_defaults)
{
    /* "grpc:" with nothing under it enables gRPC; "tls:" and "retry:" empty
     * leave the defaults. */
    lk_config *c = config_of("receivers:\n"
                             "  otlp:\n"
                             "    protocols:\n"
                             "      grpc:\n"
                             "exporters:\n"
                             "  otlp:\n"
                             "    endpoint: h:1\n"
                             "    tls:\n"
                             "    retry: {}\n"
                             "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}\n");
    ck_assert(c->receivers[0].grpc.enabled);
    ck_assert(!c->exporters[0].tls.enabled);
    ck_assert(c->exporters[0].retry.enabled);
    lk_config_destroy(c);
}
END_TEST

/* ---- YAML syntax and structure ---- */

START_TEST(syntax_errors_give_libyaml_position)
{
    assert_prefix(errors_of("a: [1, 2\nb: 3\n"), NAME ":2:2: YAML syntax error: ");
    assert_prefix(errors_of("log_level: info\na: b: c\n"),
                  NAME ":2:5: YAML syntax error: mapping values are not allowed");
    assert_prefix(errors_of("a:\tb\n\tc: 1\n"), NAME ":2:1: YAML syntax error: ");
    assert_prefix(errors_of("log_level: \"info\n"), NAME ":2:1: YAML syntax error: ");
    /* Reader errors carry a byte offset, turned into line and column too. */
    assert_prefix(errors_of("log_level: info\nx: \xff\n"),
                  NAME ":2:4: YAML syntax error: invalid leading UTF-8 octet");
}
END_TEST

START_TEST(structure_errors)
{
    assert_only(errors_of("- a\n"),
                NAME ":1:1: the configuration must be a mapping of keys to values, got a list");
    assert_only(errors_of(""),
                NAME ":1:1: no pipelines defined; at least one is required, e.g. "
                     "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}");
    assert_only(errors_of("# only a comment\n"),
                NAME ":1:1: no pipelines defined; at least one is required, e.g. "
                     "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}");
    /* A complex key. */
    char yaml[8192];
    snprintf(yaml, sizeof(yaml), "? [a]\n: 1\n%s", exporter_yaml(EP));
    assert_only(errors_of(yaml), NAME ":1:3: keys must be strings, not a list");
    /* A second document. */
    snprintf(yaml, sizeof(yaml), "%s---\nlog_level: warn\n", exporter_yaml(EP));
    assert_only(errors_of(yaml), NAME ":6:1: only one YAML document is allowed in a config file");
    /* Nesting is bounded: 64 levels pass the parser, 65 do not. */
    char deep[256];
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    deep[130] = '\0';
    assert_only(errors_of(deep), NAME ":1:65: nesting deeper than 64 levels");
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    deep[128] = '\0';
    assert_only(errors_of(deep),
                NAME ":1:1: the configuration must be a mapping of keys to values, got a list");
    /* A NUL character from a "\0" escape. */
    assert_only(exporter_err(EP "    compression: \"gz\\0ip\"\n"),
                NAME ":4:18: value contains a NUL character");
}
END_TEST

START_TEST(aliases_are_rejected)
{
    char *e = errors_of("exporters:\n"
                        "  otlp: &e {endpoint: \"h:1\"}\n"
                        "  otlp/2: *e\n" TAIL);
    assert_only(e, NAME ":3:11: YAML aliases ('*e') are not supported; repeat the value instead");
}
END_TEST

START_TEST(duplicate_keys)
{
    assert_only(exporter_err(EP "    timeout: 1s\n    timeout: 2s\n"),
                NAME ":5:5: duplicate key 'timeout' (first at line 4, column 5)");
    char *e = errors_of("log_level: info\n"
                        "exporters:\n  otlp: {endpoint: \"h:1\"}\n"
                        "log_level: warn\n"
                        "exporters:\n  otlp: {endpoint: \"h:2\"}\n" TAIL
                        "pipelines: {}\n");
    ASSERT_LINE(e, NAME ":4:1: duplicate key 'log_level' (first at line 1, column 1)");
    ASSERT_LINE(e, NAME ":5:1: duplicate key 'exporters' (first at line 2, column 1)");
    ASSERT_LINE(e, NAME ":9:1: duplicate key 'pipelines' (first at line 8, column 1)");
    ck_assert_uint_eq(count_lines(e), 3);
    free(e);
    /* Two exporters of one name, in flow style. */
    assert_only(errors_of("exporters: {otlp: {endpoint: \"h:1\"}, otlp: {endpoint: \"h:2\"}}\n" TAIL),
                NAME ":1:38: duplicate key 'otlp' (first at line 1, column 13)");
}
END_TEST

/* ---- unknown keys ---- */

START_TEST(unknown_keys_with_suggestions)
{
    char yaml[8192];
    snprintf(yaml, sizeof(yaml), "foo: 1\n%s", exporter_yaml(EP));
    assert_only(errors_of(yaml), NAME ":1:1: unknown key 'foo' at the top level");
    snprintf(yaml, sizeof(yaml), "log_levl: warn\n%s", exporter_yaml(EP));
    assert_only(errors_of(yaml),
                NAME ":1:1: unknown key 'log_levl' at the top level; did you mean 'log_level'?");
}
END_TEST

START_TEST(unknown_keys_in_nested_sections)
{
    char *e = errors_of("exporters:\n"
                        "  otlp/jaeger:\n"
                        "    endpoint: h:1\n"
                        "    retry:\n"
                        "      max_intervl: 10s\n"
                        "      foo: 1\n"
                        "    tsl: {enabled: true}\n"
                        "receivers: {otlp: {protocols: {grpc: {endpont: \"h:2\"}}}}\n"
                        "pipelines: {traces: {receivers: [otlp], exporters: [otlp/jaeger]}}\n");
    ASSERT_LINE(e, NAME ":5:7: unknown key 'max_intervl' in exporters.otlp/jaeger.retry; "
                       "did you mean 'max_interval'?");
    ASSERT_LINE(e, NAME ":6:7: unknown key 'foo' in exporters.otlp/jaeger.retry");
    ASSERT_LINE(e, NAME ":7:5: unknown key 'tsl' in exporters.otlp/jaeger; did you mean 'tls'?");
    ASSERT_LINE(e, NAME ":8:39: unknown key 'endpont' in receivers.otlp.protocols.grpc; "
                       "did you mean 'endpoint'?");
    ck_assert_uint_eq(count_lines(e), 4);
    free(e);
}
END_TEST

START_TEST(unknown_component_types)
{
    assert_only(errors_of("exporters:\n  otlp: {endpoint: \"h:1\"}\n  zipkin: {}\n" TAIL),
                NAME ":3:3: unknown exporter type 'zipkin' (known: otlp, otlphttp, loki, prometheus, prometheusremotewrite)");
    assert_only(errors_of("exporters:\n  otlp: {endpoint: \"h:1\"}\n  otpl/x: {}\n" TAIL),
                NAME ":3:3: unknown exporter type 'otpl' (known: otlp, otlphttp, loki, prometheus, prometheusremotewrite); did you mean 'otlp'?");
    assert_only(errors_of("receivers: {loki: {}}\n"
                          "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                          "pipelines: {traces: {receivers: [loki], exporters: [otlp]}}\n"),
                NAME ":1:13: unknown receiver type 'loki' (known: otlp, lines)");
    assert_only(errors_of("exporters:\n  otlp: {endpoint: \"h:1\"}\n  otlp/: {}\n" TAIL),
                NAME ":3:3: exporter name 'otlp/' needs a name after the '/'");
    assert_only(errors_of("exporters:\n  otlp: {endpoint: \"h:1\"}\n  otlp/a b: {}\n" TAIL),
                NAME ":3:3: exporter name 'otlp/a b' may only use letters, digits, '_', "
                     "'-' and '.' after the '/'");
}
END_TEST

/* ---- types ---- */

START_TEST(type_errors_have_exact_positions)
{
    assert_only(exporter_err(EP "    timeout: abc\n"),
                NAME ":4:14: exporters.otlp.timeout: expected a duration like 200ms or 5s, got 'abc'");
    assert_only(exporter_err(EP "    tls: {enabled: yes}\n"),
                NAME ":4:20: exporters.otlp.tls.enabled: expected true or false, got 'yes'");
    assert_only(exporter_err(EP "    max_concurrency: many\n"),
                NAME ":4:22: exporters.otlp.max_concurrency: expected a whole number, got 'many'");
    assert_only(exporter_err(EP "    compression: zip\n"),
                NAME ":4:18: exporters.otlp.compression: expected one of none, gzip, auto, zstd, got 'zip'; "
                     "did you mean 'gzip'?");
    assert_only(exporter_err(EP "    retry: 5\n"),
                NAME ":4:12: exporters.otlp.retry: expected a mapping, got a string");
    assert_only(exporter_err(EP "    timeout: {a: 1}\n"),
                NAME ":4:14: exporters.otlp.timeout: expected a duration like 200ms or 5s, got a mapping");
    assert_only(exporter_err(EP "    timeout: [1s]\n"),
                NAME ":4:14: exporters.otlp.timeout: expected a duration like 200ms or 5s, got a list");
    assert_only(exporter_err(EP "    retry: {multiplier: x1}\n"),
                NAME ":4:25: exporters.otlp.retry.multiplier: expected a number, got 'x1'");
    assert_only(exporter_err(EP "    queue: {max_bytes: lots}\n"),
                NAME ":4:24: exporters.otlp.queue.max_bytes: expected a size like 64MiB or 1048576, got 'lots'");
    assert_only(exporter_err(EP "    tls: {ca_file: \"\"}\n"),
                NAME ":4:20: exporters.otlp.tls.ca_file: must not be empty");
    /* An empty value is not "use the default". */
    assert_only(exporter_err(EP "    timeout:\n"),
                NAME ":4:13: exporters.otlp.timeout: expected a duration like 200ms or 5s, "
                     "got an empty value");
    assert_only(exporter_err(EP "    tls: {enabled: ~}\n"),
                NAME ":4:20: exporters.otlp.tls.enabled: expected true or false, got an empty value");
    char yaml[8192];
    snprintf(yaml, sizeof(yaml), "log_level: loud\n%s", exporter_yaml(EP));
    assert_only(errors_of(yaml),
                NAME ":1:12: log_level: expected one of debug, info, warn, error, got 'loud'");
}
END_TEST

START_TEST(quoted_scalars_convert_like_plain_ones)
{
    lk_config *c = exporter_ok(EP "    max_concurrency: \"8\"\n    timeout: '2s'\n"
                                  "    tls: {enabled: \"false\"}\n");
    ck_assert_uint_eq(c->exporters[0].max_concurrency, 8);
    ck_assert_uint_eq(c->exporters[0].timeout_ms, 2000);
    lk_config_destroy(c);
    /* Quoted "null" is a string, not an empty value. */
    assert_only(exporter_err(EP "    timeout: \"null\"\n"),
                NAME ":4:14: exporters.otlp.timeout: expected a duration like 200ms or 5s, got 'null'");
}
END_TEST

START_TEST(multiple_errors_in_one_pass)
{
    char *e = errors_of("log_level: verbose\n"                 /* 1 */
                        "shutdown_timeout: 5\n"                /* 2 */
                        "receivers:\n"                         /* 3 */
                        "  otlp:\n"                            /* 4 */
                        "    protocols:\n"                     /* 5 */
                        "      grpc:\n"                        /* 6 */
                        "        max_recv_msg_size: 2GiB\n"    /* 7 */
                        "exporters:\n"                         /* 8 */
                        "  otlp/jaeger:\n"                     /* 9 */
                        "    timeout: abc\n"                   /* 10 */
                        "    bogus: 1\n"                       /* 11 */
                        "pipelines:\n"                         /* 12 */
                        "  traces:\n"                          /* 13 */
                        "    receivers: [otlp]\n"              /* 14 */
                        "    exporters: [otlp/jager]\n");      /* 15 */
    const char *want[] = {
        NAME ":1:12: log_level: expected one of debug, info, warn, error, got 'verbose'",
        NAME ":2:19: shutdown_timeout: duration '5' needs a unit, e.g. 5s or 500ms "
             "(units: ms, s, m, h)",
        NAME ":7:28: receivers.otlp.protocols.grpc.max_recv_msg_size: must be between "
             "1KiB and 1GiB, got 2GiB",
        NAME ":9:3: exporters.otlp/jaeger: missing required key 'endpoint'",
        NAME ":10:14: exporters.otlp/jaeger.timeout: expected a duration like 200ms or 5s, "
             "got 'abc'",
        NAME ":11:5: unknown key 'bogus' in exporters.otlp/jaeger",
        NAME ":15:17: pipelines.traces.exporters: unknown exporter 'otlp/jager'; did you "
             "mean 'otlp/jaeger'?",
    };
    size_t n = sizeof(want) / sizeof(want[0]);
    for (size_t i = 0; i < n; i++)
        ASSERT_LINE(e, want[i]);
    ck_assert_uint_eq(count_lines(e), n);
    /* Sorted by position. */
    const char *prev = e;
    for (size_t i = 1; i < n; i++) {
        const char *p = strstr(e, want[i]);
        ck_assert(p > prev);
        prev = p;
    }
    free(e);
}
END_TEST

/* ---- environment ---- */

START_TEST(env_expansion)
{
    setenv("LK_TEST_EP", "h:9", 1);
    setenv("LK_TEST_EMPTY", "", 1);
    setenv("LK_TEST_T", "250ms", 1);
    setenv("LK_TEST_REF", "${LK_TEST_UNSET}", 1);
    unsetenv("LK_TEST_UNSET");

    lk_config *c = exporter_ok("    endpoint: ${LK_TEST_EP}\n");
    ck_assert_str_eq(c->exporters[0].endpoint, "h:9");
    lk_config_destroy(c);

    c = exporter_ok("    endpoint: \"${LK_TEST_UNSET:-h:7}\"\n"
                    "    timeout: ${LK_TEST_T}\n"
                    "    headers:\n"
                    "      a: x${LK_TEST_EMPTY}y\n"
                    "      b: ${LK_TEST_EMPTY:-dflt}\n"
                    "      c: \"$${LK_TEST_EP} costs $$5 and $ 1\"\n"
                    "      d: ${LK_TEST_REF}\n"
                    "      e: ${LK_TEST_EP}${LK_TEST_EP}\n");
    const struct lk_exporter_config *x = &c->exporters[0];
    ck_assert_str_eq(x->endpoint, "h:7");
    ck_assert_uint_eq(x->timeout_ms, 250);
    ck_assert_uint_eq(x->nheaders, 5);
    ck_assert_str_eq(x->headers[0].value, "xy");      /* set but empty: empty */
    ck_assert_str_eq(x->headers[1].value, "dflt");    /* :- also covers empty */
    ck_assert_str_eq(x->headers[2].value, "${LK_TEST_EP} costs $5 and $ 1");
    ck_assert_str_eq(x->headers[3].value, "${LK_TEST_UNSET}"); /* not re-expanded */
    ck_assert_str_eq(x->headers[4].value, "h:9h:9");
    lk_config_destroy(c);
}
END_TEST

START_TEST(env_errors)
{
    unsetenv("LK_TEST_UNSET");
    unsetenv("LK_TEST_UNSET2");
    assert_only(exporter_err("    endpoint: ${LK_TEST_UNSET}\n"),
                NAME ":3:15: exporters.otlp.endpoint: environment variable 'LK_TEST_UNSET' "
                     "is not set (set it, or write ${LK_TEST_UNSET:-default})");
    /* Every undefined variable of one value is named. */
    char *e = exporter_err(EP "    headers: {a: \"${LK_TEST_UNSET}/${LK_TEST_UNSET2}\"}\n");
    ASSERT_LINE(e, NAME ":4:18: exporters.otlp.headers.a: environment variable 'LK_TEST_UNSET' "
                       "is not set (set it, or write ${LK_TEST_UNSET:-default})");
    ASSERT_LINE(e, NAME ":4:18: exporters.otlp.headers.a: environment variable 'LK_TEST_UNSET2' "
                       "is not set (set it, or write ${LK_TEST_UNSET2:-default})");
    ck_assert_uint_eq(count_lines(e), 2);
    free(e);
    assert_only(exporter_err("    endpoint: ${LK_TEST_EP\n"),
                NAME ":3:15: exporters.otlp.endpoint: unterminated '${' in '${LK_TEST_EP'");
    assert_only(exporter_err("    endpoint: ${1X}\n"),
                NAME ":3:15: exporters.otlp.endpoint: invalid environment variable reference "
                     "'${1X}' (use ${NAME} or ${NAME:-default})");
    assert_only(exporter_err("    endpoint: ${A:=b}\n"),
                NAME ":3:15: exporters.otlp.endpoint: invalid environment variable reference "
                     "'${A:=b}' (use ${NAME} or ${NAME:-default})");
    /* Expansion comes before conversion: the expanded text is what is checked. */
    setenv("LK_TEST_T", "5", 1);
    assert_only(exporter_err(EP "    timeout: ${LK_TEST_T}\n"),
                NAME ":4:14: exporters.otlp.timeout: duration '5' needs a unit, e.g. 5s or "
                     "500ms (units: ms, s, m, h)");
    /* Keys are not expanded. */
    assert_only(exporter_err(EP "    ${LK_TEST_T}: 1\n"),
                NAME ":4:5: unknown key '${LK_TEST_T}' in exporters.otlp");
}
END_TEST

/* ---- durations and sizes ---- */

START_TEST(durations)
{
    static const struct {
        const char *text;
        uint64_t ms;
    } ok[] = {{"250ms", 250},   {"5s", 5000},         {"1m", 60000},
              {"1h", 3600000},  {"1m30s", 90000},     {"1h2m3s4ms", 3723004},
              {"1.5s", 1500},   {".5s", 500},         {"0.25m", 15000},
              {"1.500000000000s", 1500}, {"30s1m", 90000}, {"8760h", 8760ULL * 3600000},
              {"1ms", 1}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char frag[128];
        snprintf(frag, sizeof(frag), EP "    timeout: %s\n", ok[i].text);
        lk_config *c = exporter_ok(frag);
        ck_assert_msg(c->exporters[0].timeout_ms == ok[i].ms, "%s -> %llu", ok[i].text,
                      (unsigned long long)c->exporters[0].timeout_ms);
        lk_config_destroy(c);
    }
    /* 0s is accepted where the field allows it. */
    lk_config *c = exporter_ok(EP "    retry: {max_elapsed_time: 0s}\n");
    ck_assert_uint_eq(c->exporters[0].retry.max_elapsed_time_ms, 0);
    lk_config_destroy(c);

    static const struct {
        const char *text;
        const char *msg;
    } bad[] = {
        {"5", "duration '5' needs a unit, e.g. 5s or 500ms (units: ms, s, m, h)"},
        {"1.5", "duration '1.5' needs a unit, e.g. 5s or 500ms (units: ms, s, m, h)"},
        {"1m30", "duration '1m30' needs a unit, e.g. 5s or 500ms (units: ms, s, m, h)"},
        {"5sec", "unknown duration unit 'sec' in '5sec' (units: ms, s, m, h)"},
        {"10us", "unknown duration unit 'us' in '10us' (units: ms, s, m, h)"},
        {"1d", "unknown duration unit 'd' in '1d' (units: ms, s, m, h)"},
        {"-5s", "expected a duration like 200ms or 5s, got '-5s'"},
        {"5 s", "expected a duration like 200ms or 5s, got '5 s'"},
        {"s", "expected a duration like 200ms or 5s, got 's'"},
        {"1.0005s", "duration '1.0005s' is finer than a millisecond"},
        {"0.1ms", "duration '0.1ms' is finer than a millisecond"},
        {"0s", "must be between 1ms and 8760h, got 0s"},
        {"8761h", "must be between 1ms and 8760h, got 8761h"},
        {"99999999999999999999ms", "duration '99999999999999999999ms' is too large"},
        {"9999999999999999h", "duration '9999999999999999h' is too large"},
        {"18446744073709551615ms1ms", "duration '18446744073709551615ms1ms' is too large"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char frag[128], line[256];
        snprintf(frag, sizeof(frag), EP "    timeout: '%s'\n", bad[i].text);
        snprintf(line, sizeof(line), NAME ":4:14: exporters.otlp.timeout: %s", bad[i].msg);
        assert_only(exporter_err(frag), line);
    }
}
END_TEST

START_TEST(sizes)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } ok[] = {{"1048576", 1048576},     {"1024B", 1024},        {"2KB", 2000},
              {"5 MB", 5000000},        {"1GB", 1000000000},    {"1KiB", 1024},
              {"64MiB", 64ULL << 20},   {"1GiB", 1ULL << 30},   {"1024 GiB", 1ULL << 40}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char frag[128];
        snprintf(frag, sizeof(frag), EP "    queue: {max_bytes: %s}\n    batch: "
                                        "{send_batch_max_bytes: 1KiB}\n", ok[i].text);
        lk_config *c = exporter_ok(frag);
        ck_assert_msg(c->exporters[0].queue.max_bytes == ok[i].bytes, "%s -> %llu",
                      ok[i].text, (unsigned long long)c->exporters[0].queue.max_bytes);
        lk_config_destroy(c);
    }
    static const struct {
        const char *text;
        const char *msg;
    } bad[] = {
        {"64mb", "unknown size unit 'mb' (use B, KB, MB, GB, KiB, MiB or GiB)"},
        {"1TiB", "unknown size unit 'TiB' (use B, KB, MB, GB, KiB, MiB or GiB)"},
        {"1.5MiB", "unknown size unit '.5MiB' (use B, KB, MB, GB, KiB, MiB or GiB)"},
        {"MiB", "expected a size like 64MiB or 1048576, got 'MiB'"},
        {"-1", "expected a size like 64MiB or 1048576, got '-1'"},
        {"18446744073709551616", "size '18446744073709551616' is too large"},
        {"17179869184GiB", "size '17179869184GiB' is too large"},
        {"1023", "must be between 1KiB and 1024GiB, got 1023"},
        {"1025GiB", "must be between 1KiB and 1024GiB, got 1025GiB"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char frag[128], line[256];
        snprintf(frag, sizeof(frag), EP "    queue: {max_bytes: '%s'}\n", bad[i].text);
        snprintf(line, sizeof(line), NAME ":4:24: exporters.otlp.queue.max_bytes: %s",
                 bad[i].msg);
        assert_only(exporter_err(frag), line);
    }
    /* The receiver's message size is bounded to 1KiB..1GiB. */
    assert_only(errors_of("receivers: {otlp: {protocols: {grpc: {max_recv_msg_size: 512}}}}\n"
                          "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                          "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}\n"),
                NAME ":1:58: receivers.otlp.protocols.grpc.max_recv_msg_size: must be between "
                     "1KiB and 1GiB, got 512");
}
END_TEST

START_TEST(integers_booleans_numbers)
{
    static const struct {
        const char *frag;
        const char *line;
    } bad[] = {
        {"    max_concurrency: 0\n",
         ":4:22: exporters.otlp.max_concurrency: must be between 1 and 1024, got 0"},
        {"    max_concurrency: 1025\n",
         ":4:22: exporters.otlp.max_concurrency: must be between 1 and 1024, got 1025"},
        {"    max_concurrency: -1\n",
         ":4:22: exporters.otlp.max_concurrency: must be between 1 and 1024, got -1"},
        {"    max_concurrency: 1.5\n",
         ":4:22: exporters.otlp.max_concurrency: expected a whole number, got '1.5'"},
        {"    batch: {send_batch_size: 4294967296}\n",
         ":4:30: exporters.otlp.batch.send_batch_size: must be between 1 and 1000000000, "
         "got 4294967296"},
        {"    queue: {queue_size: 99999999999999999999999}\n",
         ":4:25: exporters.otlp.queue.queue_size: must be between 1 and 1000000000, "
         "got 99999999999999999999999"},
        {"    tls: {enabled: True}\n",
         ":4:20: exporters.otlp.tls.enabled: expected true or false, got 'True'"},
        {"    retry: {enabled: 1}\n",
         ":4:22: exporters.otlp.retry.enabled: expected true or false, got '1'"},
        {"    retry: {multiplier: 0.5}\n",
         ":4:25: exporters.otlp.retry.multiplier: must be between 1 and 100, got 0.5"},
        {"    retry: {multiplier: nan}\n",
         ":4:25: exporters.otlp.retry.multiplier: expected a number, got 'nan'"},
        {"    retry: {multiplier: 1e999}\n",
         ":4:25: exporters.otlp.retry.multiplier: expected a number, got '1e999'"},
        {"    retry: {randomization_factor: 1.01}\n",
         ":4:35: exporters.otlp.retry.randomization_factor: must be between 0 and 1, got 1.01"},
        {"    queue: {overflow: block}\n",
         ":4:23: exporters.otlp.queue.overflow: expected one of refuse, drop, got 'block'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char frag[256], line[256];
        snprintf(frag, sizeof(frag), EP "%s", bad[i].frag);
        snprintf(line, sizeof(line), NAME "%s", bad[i].line);
        assert_only(exporter_err(frag), line);
    }
    lk_config *c = exporter_ok(EP "    batch: {send_batch_size: 1000000000}\n"
                                  "    queue: {queue_size: 1000000000}\n"
                                  "    retry: {multiplier: 1.25e1, randomization_factor: 1}\n");
    ck_assert_uint_eq(c->exporters[0].batch.send_batch_size, 1000000000);
    ck_assert_uint_eq(c->exporters[0].queue.queue_size, 1000000000);
    ck_assert_double_eq(c->exporters[0].retry.multiplier, 12.5);
    ck_assert_double_eq(c->exporters[0].retry.randomization_factor, 1);
    lk_config_destroy(c);
}
END_TEST

/* ---- endpoints ---- */

START_TEST(endpoints)
{
    static const char *const good[] = {
        "127.0.0.1:4317", "localhost:1", "my-host.example_1:65535",
        "[::1]:4317",     "[fe80::1%eth0]:80", "unix:///tmp/lookout.sock",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char yaml[8192];
        snprintf(yaml, sizeof(yaml),
                 "receivers: {otlp: {protocols: {grpc: {endpoint: \"%s\"}}}}\n"
                 "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                 "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}\n",
                 good[i]);
        lk_config *c = config_of(yaml);
        ck_assert_str_eq(c->receivers[0].grpc.endpoint, good[i]);
        lk_config_destroy(c);
    }
    char longpath[160];
    snprintf(longpath, sizeof(longpath), "unix:///%0100d", 0);
    static const struct {
        const char *ep;
        const char *why;
    } bad[] = {
        {"localhost", "missing ':port'"},
        {"h:", "missing port after ':'"},
        {"h:0", "the port must be between 1 and 65535"},
        {"h:65536", "the port must be between 1 and 65535"},
        {"h:http", "the port is not a number"},
        {":4317", "missing host before ':' (use 127.0.0.1, or 0.0.0.0 for every interface)"},
        {"::1:4317", "put IPv6 addresses in brackets, e.g. [::1]:4317"},
        {"[::1]", "missing ':port' after the IPv6 address"},
        {"[::1:4317", "missing ']' after the IPv6 address"},
        {"[nope]:1", "invalid IPv6 address"},
        {"h st:1", "invalid character in the host name"},
        {"unix:/tmp/x", "write a Unix socket as unix:///absolute/path"},
        {"unix://tmp/x", "write a Unix socket as unix:///absolute/path"},
        {"tcp://h:1", "expected host:port without a scheme"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]) + 1; i++) {
        const char *ep = i < sizeof(bad) / sizeof(bad[0]) ? bad[i].ep : longpath;
        const char *why = i < sizeof(bad) / sizeof(bad[0])
                              ? bad[i].why
                              : "the socket path must be shorter than 100 bytes";
        char yaml[8192], line[512];
        snprintf(yaml, sizeof(yaml),
                 "receivers: {otlp: {protocols: {grpc: {endpoint: \"%s\"}}}}\n"
                 "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                 "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}\n",
                 ep);
        /* Messages show at most 80 bytes of a value. */
        snprintf(line, sizeof(line),
                 NAME ":1:49: receivers.otlp.protocols.grpc.endpoint: invalid endpoint "
                      "'%.80s%s': %s",
                 ep, strlen(ep) > 80 ? "..." : "", why);
        assert_only(errors_of(yaml), line);
    }
    /* Admin is TCP only. */
    char yaml[8192];
    snprintf(yaml, sizeof(yaml), "admin: {endpoint: \"unix:///tmp/a.sock\"}\n%s",
             exporter_yaml(EP));
    assert_only(errors_of(yaml),
                NAME ":1:19: admin.endpoint: invalid endpoint 'unix:///tmp/a.sock': Unix "
                     "sockets are not supported here; use host:port");
}
END_TEST

START_TEST(exporter_endpoint_schemes)
{
    lk_config *c = exporter_ok("    endpoint: http://h:4317/\n");
    ck_assert_str_eq(c->exporters[0].endpoint, "h:4317");
    ck_assert(!c->exporters[0].tls.enabled);
    lk_config_destroy(c);
    c = exporter_ok("    endpoint: https://[::1]:4317\n");
    ck_assert_str_eq(c->exporters[0].endpoint, "[::1]:4317");
    ck_assert(c->exporters[0].tls.enabled);
    lk_config_destroy(c);
    c = exporter_ok("    endpoint: h:443\n    tls: {enabled: true}\n");
    ck_assert(c->exporters[0].tls.enabled);
    lk_config_destroy(c);

    assert_only(exporter_err("    endpoint: https://h:443\n    tls: {enabled: false}\n"),
                NAME ":4:20: exporters.otlp.tls.enabled: is false but the endpoint uses https://");
    assert_only(exporter_err("    endpoint: http://h:80\n    tls: {enabled: true}\n"),
                NAME ":4:20: exporters.otlp.tls.enabled: is true but the endpoint uses http://");
    assert_only(exporter_err("    endpoint: http://h:80/v1/traces\n"),
                NAME ":3:15: exporters.otlp.endpoint: invalid endpoint 'http://h:80/v1/traces': "
                     "an OTLP/gRPC endpoint has no path");
    assert_only(exporter_err("    endpoint: unix:///tmp/x\n"),
                NAME ":3:15: exporters.otlp.endpoint: invalid endpoint 'unix:///tmp/x': Unix "
                     "sockets are not supported here; use host:port");
    assert_only(exporter_err("    timeout: 1s\n"),
                NAME ":2:3: exporters.otlp: missing required key 'endpoint'");
    assert_only(errors_of("exporters: {otlp: }\n" TAIL),
                NAME ":1:13: exporters.otlp: missing required key 'endpoint'");
}
END_TEST

/* ---- exporter cross-checks ---- */

START_TEST(headers)
{
    lk_config *c = exporter_ok(EP "    headers: {x-a.b_c: \"v 1~\", k-bin: \"\\x01\"}\n");
    ck_assert_uint_eq(c->exporters[0].nheaders, 2);
    ck_assert_str_eq(c->exporters[0].headers[0].name, "x-a.b_c");
    ck_assert_str_eq(c->exporters[0].headers[0].value, "v 1~");
    ck_assert_str_eq(c->exporters[0].headers[1].value, "\x01");
    lk_config_destroy(c);

    char *e = exporter_err(EP "    headers:\n"
                              "      X-Scope-OrgID: t\n"
                              "      a b: 1\n"
                              "      grpc-timeout: 1\n"
                              "      ok: \"caf\xc3\xa9\"\n"
                              "      list: [1]\n"
                              "      nul:\n");
    ASSERT_LINE(e, NAME ":5:7: exporters.otlp.headers: header name 'X-Scope-OrgID' must be "
                       "lowercase (gRPC metadata keys are lowercase)");
    ASSERT_LINE(e, NAME ":6:7: exporters.otlp.headers: header name 'a b' may only use a-z, "
                       "0-9, '-', '_' and '.'");
    ASSERT_LINE(e, NAME ":7:7: exporters.otlp.headers: header name 'grpc-timeout' names "
                       "starting with 'grpc-' are reserved by gRPC");
    /* The value itself is never quoted: it may be a secret. */
    ASSERT_LINE(e, NAME ":8:11: exporters.otlp.headers.ok: the value must be printable ASCII "
                       "(or name the header '...-bin')");
    ASSERT_LINE(e, NAME ":9:13: exporters.otlp.headers.list: expected a string, got a list");
    ASSERT_LINE(e, NAME ":10:11: exporters.otlp.headers.nul: expected a string, got an empty value");
    ck_assert_uint_eq(count_lines(e), 6);
    ck_assert_ptr_null(strstr(e, "caf"));
    free(e);
    assert_only(exporter_err(EP "    headers: [a]\n"),
                NAME ":4:14: exporters.otlp.headers: expected a mapping of header names to "
                     "values, got a list");
}
END_TEST

START_TEST(tls_checks)
{
    assert_only(exporter_err(EP "    tls: {enabled: true, cert_file: c.pem}\n"),
                NAME ":4:26: exporters.otlp.tls: cert_file and key_file go together; key_file "
                     "is missing");
    assert_only(exporter_err(EP "    tls: {enabled: true, key_file: k.pem}\n"),
                NAME ":4:26: exporters.otlp.tls: cert_file and key_file go together; cert_file "
                     "is missing");
    assert_only(exporter_err(EP "    tls:\n      ca_file: ca.pem\n"),
                NAME ":5:7: exporters.otlp.tls.ca_file: has no effect while TLS is off; set "
                     "tls.enabled: true or use an https:// endpoint");
    assert_only(exporter_err(EP "    tls: {insecure_skip_verify: true}\n"),
                NAME ":4:11: exporters.otlp.tls.insecure_skip_verify: has no effect while TLS "
                     "is off; set tls.enabled: true or use an https:// endpoint");
    /* False is what "off" means anyway: no complaint. */
    lk_config *c = exporter_ok(EP "    tls: {insecure_skip_verify: false}\n");
    lk_config_destroy(c);
}
END_TEST

START_TEST(retry_and_batch_checks)
{
    assert_only(exporter_err(EP "    retry: {initial_interval: 5s, max_interval: 1s}\n"),
                NAME ":4:49: exporters.otlp.retry: max_interval (1s) must be at least "
                     "initial_interval (5s)");
    assert_only(exporter_err(EP "    retry: {initial_interval: 1m}\n"),
                NAME ":4:31: exporters.otlp.retry: max_interval (30s) must be at least "
                     "initial_interval (1m)");
    assert_only(exporter_err(EP "    queue: {max_bytes: 1MiB}\n"),
                NAME ":4:24: exporters.otlp: batch.send_batch_max_bytes (4MiB) must not "
                     "exceed queue.max_bytes (1MiB)");
    assert_only(exporter_err(EP "    batch: {send_batch_max_bytes: 64MiB}\n"),
                NAME ":4:35: exporters.otlp: batch.send_batch_max_bytes (64MiB) must not "
                     "exceed queue.max_bytes (32MiB)");
    assert_only(exporter_err(EP "    queue: {queue_size: 100}\n"),
                NAME ":4:25: exporters.otlp: batch.send_batch_size (8192) must not exceed "
                     "queue.queue_size (100)");
    /* A value that is itself wrong does not also fail the cross-check. */
    assert_only(exporter_err(EP "    queue: {max_bytes: x}\n    batch: {send_batch_max_bytes: 64MiB}\n"),
                NAME ":4:24: exporters.otlp.queue.max_bytes: expected a size like 64MiB or "
                     "1048576, got 'x'");
    lk_config *c = exporter_ok(EP "    queue: {max_bytes: 4MiB}\n");
    lk_config_destroy(c);
}
END_TEST

/* ---- receivers ---- */

START_TEST(receiver_checks)
{
    assert_only(errors_of("receivers:\n  otlp:\n"
                          "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                          "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}\n"),
                NAME ":2:3: receivers.otlp: no protocol enabled; add 'protocols: grpc:' or "
                     "'protocols: http:'");
    /* An unknown protocol is not a protocol. */
    char *e = errors_of("receivers:\n  otlp: {protocols: {thrift: {}}}\n"
                        "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                        "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}\n");
    ASSERT_LINE(e, NAME ":2:3: receivers.otlp: no protocol enabled; add 'protocols: grpc:' or "
                       "'protocols: http:'");
    ASSERT_LINE(e, NAME ":2:22: unknown key 'thrift' in receivers.otlp.protocols");
    ck_assert_uint_eq(count_lines(e), 2);
    free(e);
}
END_TEST

START_TEST(listener_clashes)
{
    char *e = errors_of("receivers:\n"
                        "  otlp: {protocols: {grpc: }}\n"
                        "  otlp/b: {protocols: {grpc: {endpoint: \"127.0.0.1:9464\"}}}\n"
                        "  otlp/c: {protocols: {grpc: }}\n"
                        "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                        "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}\n");
    ASSERT_LINE(e, NAME ":3:41: receivers.otlp/b.protocols.grpc: endpoint '127.0.0.1:9464' "
                       "is already used by admin");
    ASSERT_LINE(e, NAME ":4:24: receivers.otlp/c.protocols.grpc: endpoint '127.0.0.1:4317' "
                       "is already used by receivers.otlp.protocols.grpc");
    ck_assert_uint_eq(count_lines(e), 2);
    free(e);
    /* The admin endpoint is checked even where it is written after them. */
    char yaml[8192];
    snprintf(yaml, sizeof(yaml), "%sadmin: {endpoint: \"127.0.0.1:4317\"}\n",
             exporter_yaml(EP));
    assert_only(errors_of(yaml),
                NAME ":6:19: admin: endpoint '127.0.0.1:4317' is already used by "
                     "receivers.otlp.protocols.grpc");
}
END_TEST

/* ---- pipelines ---- */

START_TEST(pipeline_references)
{
    const char *head = "receivers:\n"                                /* 1 */
                       "  otlp: {protocols: {grpc: }}\n"             /* 2 */
                       "  otlp/unused: {protocols: {grpc: {endpoint: \"h:2\"}}}\n" /* 3 */
                       "exporters:\n"                                /* 4 */
                       "  otlp/jaeger: {endpoint: \"h:1\"}\n"        /* 5 */
                       "  otlp/spare: {endpoint: \"h:1\"}\n"         /* 6 */
                       "pipelines:\n";                               /* 7 */
    char yaml[8192];
    /* Defined but unused components are fine. */
    snprintf(yaml, sizeof(yaml), "%s  traces:\n    receivers: [otlp]\n"
                                 "    exporters: [otlp/jaeger]\n", head);
    lk_config *c = config_of(yaml);
    ck_assert_uint_eq(c->nreceivers, 2);
    ck_assert_uint_eq(c->nexporters, 2);
    lk_config_destroy(c);

    snprintf(yaml, sizeof(yaml), "%s  traces:\n"                     /* 8 */
                                 "    receivers: [otlp, otlp/x]\n"   /* 9 */
                                 "    exporters: [otlp/jaeger, otlp/jaeger, jaeger]\n" /* 10 */
                                 "  metrics:\n"                      /* 11 */
                                 "    receivers: []\n"               /* 12 */
                                 "  logs:\n"                         /* 13 */
                                 "    receivers: otlp\n"             /* 14 */
                                 "    exporters: [[otlp]]\n"         /* 15 */
                                 "  spans: {}\n"                     /* 16 */
                                 "  traces: {}\n",                   /* 17 */
             head);
    char *e = errors_of(yaml);
    const char *want[] = {
        NAME ":9:23: pipelines.traces.receivers: unknown receiver 'otlp/x'; did you mean "
             "'otlp'?",
        NAME ":10:30: pipelines.traces.exporters: 'otlp/jaeger' is listed twice",
        NAME ":10:43: pipelines.traces.exporters: unknown exporter 'jaeger'",
        NAME ":11:3: pipelines.metrics: missing required key 'exporters'",
        NAME ":12:16: pipelines.metrics.receivers: must name at least one receiver",
        NAME ":14:16: pipelines.logs.receivers: expected a list of receiver names like "
             "[otlp], got a string",
        NAME ":15:17: pipelines.logs.exporters: expected a name, got a list",
        NAME ":16:3: unknown pipeline 'spans' (known: traces, metrics, logs)",
        NAME ":17:3: duplicate key 'traces' (first at line 8, column 3)",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ASSERT_LINE(e, want[i]);
    ck_assert_uint_eq(count_lines(e), sizeof(want) / sizeof(want[0]));
    free(e);
}
END_TEST

/* A typo gets a suggestion; a reference to a component that has errors of
 * its own is not reported a second time. */
START_TEST(pipeline_suggestions)
{
    char *e = errors_of("receivers: {otlp: {protocols: {grpc: }}}\n"
                        "exporters: {otlp/jaeger: {endpoint: \"h:1\"}, zipkin: {}}\n"
                        "pipelines:\n"
                        "  trace: {receivers: [otlp], exporters: [otlp/jaeger]}\n"
                        "  logs: {receivers: [otpl], exporters: [zipkin]}\n");
    ASSERT_LINE(e, NAME ":2:45: unknown exporter type 'zipkin' (known: otlp, otlphttp, loki, prometheus, prometheusremotewrite)");
    ASSERT_LINE(e, NAME ":4:3: unknown pipeline 'trace' (known: traces, metrics, logs); "
                       "did you mean 'traces'?");
    ASSERT_LINE(e, NAME ":5:22: pipelines.logs.receivers: unknown receiver 'otpl'; did you "
                       "mean 'otlp'?");
    ck_assert_uint_eq(count_lines(e), 3);
    free(e);
    assert_only(errors_of("exporters: {otlp: {endpoint: \"h:1\"}}\n"
                          "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}\n"),
                NAME ":2:34: pipelines.traces.receivers: unknown receiver 'otlp'; no "
                     "receivers are defined");
}
END_TEST

START_TEST(pipelines_required)
{
    assert_only(errors_of("receivers: {otlp: {protocols: {grpc: }}}\n"
                          "exporters: {otlp: {endpoint: \"h:1\"}}\n"),
                NAME ":1:1: no pipelines defined; at least one is required, e.g. "
                     "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}");
    assert_only(errors_of("receivers: {otlp: {protocols: {grpc: }}}\n"
                          "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                          "pipelines:\n"),
                NAME ":3:1: no pipelines defined; at least one is required, e.g. "
                     "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}");
    assert_only(errors_of("receivers: {otlp: {protocols: {grpc: }}}\n"
                          "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                          "pipelines: [traces]\n"),
                NAME ":3:12: pipelines: expected a mapping of signals (traces, metrics, logs) "
                     "to pipelines, got a list");
    /* Too many names in one list. */
    char yaml[2048];
    size_t o = (size_t)snprintf(yaml, sizeof(yaml),
                                "receivers: {otlp: {protocols: {grpc: }}}\n"
                                "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                                "pipelines: {traces: {exporters: [otlp], receivers: [");
    for (int i = 0; i < 65; i++)
        o += (size_t)snprintf(yaml + o, sizeof(yaml) - o, "%sotlp", i ? "," : "");
    snprintf(yaml + o, sizeof(yaml) - o, "]}}\n");
    assert_only(errors_of(yaml),
                NAME ":3:52: pipelines.traces.receivers: at most 64 receivers can be listed");
}
END_TEST

/* ---- messages and loading ---- */

START_TEST(messages_stay_on_one_line)
{
    /* A control character in a value is escaped; a long value is cut. */
    assert_only(exporter_err(EP "    compression: \"g\\nz\\tip\"\n"),
                NAME ":4:18: exporters.otlp.compression: expected one of none, gzip, auto, zstd, got "
                     "'g\\x0az\\x09ip'; did you mean 'gzip'?");
    char frag[512], want[512];
    char big[201];
    memset(big, 'a', 200);
    big[200] = '\0';
    snprintf(frag, sizeof(frag), EP "    compression: %s\n", big);
    snprintf(want, sizeof(want),
             NAME ":4:18: exporters.otlp.compression: expected one of none, gzip, auto, zstd, got '%.80s...'",
             big);
    assert_only(exporter_err(frag), want);
}
END_TEST

START_TEST(error_count_is_capped)
{
    char yaml[8192];
    size_t o = 0;
    for (int i = 0; i < 150; i++)
        o += (size_t)snprintf(yaml + o, sizeof(yaml) - o, "k%d: 1\n", i);
    snprintf(yaml + o, sizeof(yaml) - o, "%s", exporter_yaml(EP));
    char *e = errors_of(yaml);
    ck_assert_uint_eq(count_lines(e), 101);
    ASSERT_LINE(e, NAME ":1:1: unknown key 'k0' at the top level");
    ASSERT_LINE(e, NAME ":100:1: unknown key 'k99' at the top level");
    ASSERT_LINE(e, NAME ":101:1: too many errors; 50 more not shown");
    free(e);
}
END_TEST

START_TEST(load_errors)
{
    lk_config *c = (lk_config *)1;
    char *e = NULL;
    ck_assert_int_eq(lk_config_load("test/unit/config/no-such-file.yaml", &c, &e), LK_EIO);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(e, "test/unit/config/no-such-file.yaml: No such file or directory\n");
    free(e);
    /* Errors may be ignored. */
    ck_assert_int_eq(lk_config_load("test/unit/config", &c, NULL), LK_EIO);
    ck_assert_int_eq(lk_config_parse(NAME, "a: [", 4, &c, NULL), LK_ECONFIG);
    ck_assert_ptr_null(c);
    /* The text need not be NUL-terminated: only |len| bytes are read. */
    const char *yaml = exporter_yaml(EP);
    char *copy = malloc(strlen(yaml) + 5);
    memcpy(copy, yaml, strlen(yaml));
    memcpy(copy + strlen(yaml), "@@@@", 4);
    ck_assert_int_eq(lk_config_parse(NAME, copy, strlen(yaml), &c, &e), 0);
    ck_assert_ptr_null(e);
    lk_config_destroy(c);
    free(copy);
    lk_config_destroy(NULL);
}
END_TEST

START_TEST(signal_names)
{
    ck_assert_str_eq(lk_signal_name(LK_SIGNAL_TRACES), "traces");
    ck_assert_str_eq(lk_signal_name(LK_SIGNAL_METRICS), "metrics");
    ck_assert_str_eq(lk_signal_name(LK_SIGNAL_LOGS), "logs");
}
END_TEST


/* ---- OTLP/HTTP receiver ---- */

START_TEST(http_receiver_defaults)
{
    lk_config *c = config_of("receivers: {otlp: {protocols: {http: }}}\n"
                             "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                             "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}\n");
    const struct lk_receiver_config *r = &c->receivers[0];
    ck_assert(!r->grpc.enabled);
    ck_assert(r->http.enabled);
    ck_assert_str_eq(r->http.endpoint, "127.0.0.1:4318");
    ck_assert_uint_eq(r->http.max_request_body_size, 64 * 1024 * 1024);
    ck_assert_uint_eq(r->http.max_connections, 256);
    ck_assert_uint_eq(r->http.max_header_bytes, 64 * 1024);
    ck_assert_uint_eq(r->http.idle_timeout_ms, 60000);
    ck_assert_uint_eq(r->http.read_timeout_ms, 30000);
    ck_assert_uint_eq(r->http.handshake_timeout_ms, 10000);
    lk_config_destroy(c);
    /* Both protocols side by side on their default ports. */
    c = config_of("receivers: {otlp: {protocols: {grpc: {}, http: {}}}}\n"
                  "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                  "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}\n");
    ck_assert(c->receivers[0].grpc.enabled);
    ck_assert(c->receivers[0].http.enabled);
    lk_config_destroy(c);
}
END_TEST

START_TEST(http_receiver_every_key)
{
    lk_config *c = config_of("receivers:\n"
                             "  otlp/h:\n"
                             "    protocols:\n"
                             "      http:\n"
                             "        endpoint: unix:///tmp/lk-http.sock\n"
                             "        max_request_body_size: 8MiB\n"
                             "        max_connections: 9\n"
                             "        max_header_bytes: 16KiB\n"
                             "        idle_timeout: 5s\n"
                             "        read_timeout: 1500ms\n"
                             "        handshake_timeout: 2s\n"
                             "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                             "pipelines: {logs: {receivers: [otlp/h], exporters: [otlp]}}\n");
    const struct lk_http_receiver_config *h = &c->receivers[0].http;
    ck_assert(h->enabled);
    ck_assert_str_eq(h->endpoint, "unix:///tmp/lk-http.sock");
    ck_assert_uint_eq(h->max_request_body_size, 8 * 1024 * 1024);
    ck_assert_uint_eq(h->max_connections, 9);
    ck_assert_uint_eq(h->max_header_bytes, 16 * 1024);
    ck_assert_uint_eq(h->idle_timeout_ms, 5000);
    ck_assert_uint_eq(h->read_timeout_ms, 1500);
    ck_assert_uint_eq(h->handshake_timeout_ms, 2000);
    lk_config_destroy(c);
}
END_TEST

/* "receivers:" + |frag| at line 2 under otlp.protocols.http (indent 8). */
static char *http_receiver_err(const char *frag)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf),
             "receivers:\n"                                 /* 1 */
             "  otlp:\n"                                    /* 2 */
             "    protocols:\n"                             /* 3 */
             "      http:\n"                                /* 4 */
             "%s"                                           /* 5 */
             "exporters: {otlp: {endpoint: \"h:1\"}}\n"
             "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}\n",
             frag);
    return errors_of(buf);
}

START_TEST(http_receiver_errors)
{
    assert_only(http_receiver_err("        endpont: h:1\n"),
                NAME ":5:9: unknown key 'endpont' in receivers.otlp.protocols.http; "
                     "did you mean 'endpoint'?");
    assert_only(http_receiver_err("        endpoint: h:0\n"),
                NAME ":5:19: receivers.otlp.protocols.http.endpoint: invalid endpoint 'h:0': "
                     "the port must be between 1 and 65535");
    assert_only(http_receiver_err("        endpoint: http://h:1\n"),
                NAME ":5:19: receivers.otlp.protocols.http.endpoint: invalid endpoint "
                     "'http://h:1': expected host:port without a scheme");
    assert_only(http_receiver_err("        max_request_body_size: 512\n"),
                NAME ":5:32: receivers.otlp.protocols.http.max_request_body_size: must be "
                     "between 1KiB and 1GiB, got 512");
    assert_only(http_receiver_err("        max_request_body_size: lots\n"),
                NAME ":5:32: receivers.otlp.protocols.http.max_request_body_size: expected a "
                     "size like 64MiB or 1048576, got 'lots'");
    assert_only(http_receiver_err("        max_header_bytes: 2MiB\n"),
                NAME ":5:27: receivers.otlp.protocols.http.max_header_bytes: must be between "
                     "1KiB and 1MiB, got 2MiB");
    assert_only(http_receiver_err("        max_connections: 0\n"),
                NAME ":5:26: receivers.otlp.protocols.http.max_connections: must be between 1 "
                     "and 1000000, got 0");
    /* There is no "never" for these two. */
    assert_only(http_receiver_err("        idle_timeout: 0s\n"),
                NAME ":5:23: receivers.otlp.protocols.http.idle_timeout: must be between 1ms "
                     "and 8760h, got 0s");
    assert_only(http_receiver_err("        handshake_timeout: 0s\n"),
                NAME ":5:28: receivers.otlp.protocols.http.handshake_timeout: must be between "
                     "1ms and 8760h, got 0s");
    assert_only(http_receiver_err("        handshake_timout: 1s\n"),
                NAME ":5:9: unknown key 'handshake_timout' in receivers.otlp.protocols.http; "
                     "did you mean 'handshake_timeout'?");
    assert_only(http_receiver_err("        read_timeout: 30\n"),
                NAME ":5:23: receivers.otlp.protocols.http.read_timeout: duration '30' needs a "
                     "unit, e.g. 5s or 500ms (units: ms, s, m, h)");
    assert_only(errors_of("receivers: {otlp: {protocols: {http: [a]}}}\n"
                          "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                          "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}\n"),
                NAME ":1:38: receivers.otlp.protocols.http: expected a mapping, got a list");
    /* Several at once, each at its own value. */
    char *e = http_receiver_err("        max_connections: x\n"
                                "        read_timeout: 1d\n");
    ASSERT_LINE(e, NAME ":5:26: receivers.otlp.protocols.http.max_connections: expected a "
                       "whole number, got 'x'");
    ASSERT_LINE(e, NAME ":6:23: receivers.otlp.protocols.http.read_timeout: unknown duration "
                       "unit 'd' in '1d' (units: ms, s, m, h)");
    ck_assert_uint_eq(count_lines(e), 2);
    free(e);
}
END_TEST

START_TEST(http_listener_clashes)
{
    /* grpc and http of one receiver on one endpoint. */
    assert_only(errors_of("receivers:\n"
                          "  otlp:\n"
                          "    protocols:\n"
                          "      grpc: {endpoint: \"127.0.0.1:4318\"}\n"
                          "      http:\n"
                          "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                          "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}\n"),
                NAME ":5:7: receivers.otlp.protocols.http: endpoint '127.0.0.1:4318' is "
                     "already used by receivers.otlp.protocols.grpc");
    /* Two receivers with http on its default endpoint; the admin too. */
    char *e = errors_of("receivers:\n"
                        "  otlp: {protocols: {http: }}\n"
                        "  otlp/b: {protocols: {http: }}\n"
                        "  otlp/c: {protocols: {http: {endpoint: \"unix:///tmp/x.sock\"},\n"
                        "                       grpc: {endpoint: \"unix:///tmp/x.sock\"}}}\n"
                        "admin: {endpoint: \"127.0.0.1:4318\"}\n"
                        "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                        "pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}\n");
    ASSERT_LINE(e, NAME ":3:24: receivers.otlp/b.protocols.http: endpoint '127.0.0.1:4318' is "
                       "already used by receivers.otlp.protocols.http");
    ASSERT_LINE(e, NAME ":5:41: receivers.otlp/c.protocols.grpc: endpoint 'unix:///tmp/x.sock' "
                       "is already used by receivers.otlp/c.protocols.http");
    ASSERT_LINE(e, NAME ":6:19: admin: endpoint '127.0.0.1:4318' is already used by "
                       "receivers.otlp.protocols.http");
    ASSERT_LINE(e, NAME ":6:19: admin: endpoint '127.0.0.1:4318' is already used by "
                       "receivers.otlp/b.protocols.http");
    ck_assert_uint_eq(count_lines(e), 4);
    free(e);
}
END_TEST

/* ---- otlphttp exporter ---- */

#define HTTP_TAIL                                                              \
    "receivers: {otlp: {protocols: {grpc: }}}\n"                               \
    "pipelines: {traces: {receivers: [otlp], exporters: [otlphttp]}}\n"

/* "exporters: otlphttp:" with |frag| (lines indented by 4) from line 3. */
static char *otlphttp_yaml(const char *frag)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "exporters:\n  otlphttp:\n%s" HTTP_TAIL, frag);
    return buf;
}

static lk_config *otlphttp_ok(const char *frag)
{
    return config_of(otlphttp_yaml(frag));
}

static char *otlphttp_err(const char *frag)
{
    return errors_of(otlphttp_yaml(frag));
}

START_TEST(otlphttp_exporter_values)
{
    lk_config *c = otlphttp_ok("    endpoint: http://127.0.0.1:4318\n");
    const struct lk_exporter_config *x = &c->exporters[0];
    ck_assert_str_eq(x->name, "otlphttp");
    ck_assert_int_eq(x->type, LK_EXPORTER_OTLPHTTP);
    ck_assert_str_eq(x->endpoint, "http://127.0.0.1:4318");
    for (int i = 0; i < LK_SIGNAL_COUNT; i++)
        ck_assert_ptr_null(x->signal_endpoints[i]);
    ck_assert(!x->tls.enabled);
    /* The other keys default as for otlp. */
    ck_assert_uint_eq(x->timeout_ms, 10000);
    ck_assert_int_eq(x->compression, LK_COMPRESSION_AUTO);
    ck_assert(!lk_exporter_gzip(x)); /* 127.0.0.1 */
    ck_assert_uint_eq(x->queue.queue_size, 100000);
    ck_assert_uint_eq(x->max_concurrency, 4);
    lk_config_destroy(c);

    /* A path prefix is kept, trailing slashes are not; https turns TLS on;
     * the port may be left to the scheme. */
    c = otlphttp_ok("    endpoint: https://gw.example/otlp/\n");
    ck_assert_str_eq(c->exporters[0].endpoint, "https://gw.example/otlp");
    ck_assert(c->exporters[0].tls.enabled);
    lk_config_destroy(c);
    c = otlphttp_ok("    endpoint: \"http://[::1]:4318/\"\n    tls: {enabled: false}\n");
    ck_assert_str_eq(c->exporters[0].endpoint, "http://[::1]:4318");
    ck_assert(!c->exporters[0].tls.enabled);
    lk_config_destroy(c);

    /* Per-signal URLs are used as written, with or without a base URL. */
    c = otlphttp_ok("    endpoint: http://h:4318\n"
                    "    logs_endpoint: http://loki:3100/otlp/v1/logs\n");
    ck_assert_str_eq(c->exporters[0].endpoint, "http://h:4318");
    ck_assert_ptr_null(c->exporters[0].signal_endpoints[LK_SIGNAL_TRACES]);
    ck_assert_ptr_null(c->exporters[0].signal_endpoints[LK_SIGNAL_METRICS]);
    ck_assert_str_eq(c->exporters[0].signal_endpoints[LK_SIGNAL_LOGS],
                     "http://loki:3100/otlp/v1/logs");
    lk_config_destroy(c);
    c = otlphttp_ok("    traces_endpoint: https://a/t/\n"
                    "    metrics_endpoint: https://b:1/m\n"
                    "    logs_endpoint: https://c\n");
    x = &c->exporters[0];
    ck_assert_ptr_null(x->endpoint);
    ck_assert_str_eq(x->signal_endpoints[LK_SIGNAL_TRACES], "https://a/t/");
    ck_assert_str_eq(x->signal_endpoints[LK_SIGNAL_METRICS], "https://b:1/m");
    ck_assert_str_eq(x->signal_endpoints[LK_SIGNAL_LOGS], "https://c");
    ck_assert(x->tls.enabled);
    lk_config_destroy(c);

    /* Named otlphttp/<suffix>, next to an otlp exporter, in one pipeline. */
    c = config_of("exporters:\n"
                  "  otlp/jaeger: {endpoint: \"h:1\"}\n"
                  "  otlphttp/gw: {endpoint: \"http://h:2\", compression: none,\n"
                  "                headers: {X-Scope-OrgID: t1, authorization: \"Bearer x\"}}\n"
                  "receivers: {otlp: {protocols: {http: }}}\n"
                  "pipelines: {logs: {receivers: [otlp], exporters: [otlp/jaeger, otlphttp/gw]}}\n");
    ck_assert_int_eq(c->exporters[0].type, LK_EXPORTER_OTLP);
    x = &c->exporters[1];
    ck_assert_str_eq(x->name, "otlphttp/gw");
    ck_assert_int_eq(x->type, LK_EXPORTER_OTLPHTTP);
    ck_assert_int_eq(x->compression, LK_COMPRESSION_NONE);
    ck_assert_uint_eq(x->nheaders, 2);
    ck_assert_str_eq(x->headers[0].name, "X-Scope-OrgID"); /* as written */
    ck_assert_str_eq(x->headers[0].value, "t1");
    ck_assert_str_eq(x->headers[1].name, "authorization");
    ck_assert_str_eq(c->pipelines[0].exporters[1], "otlphttp/gw");
    lk_config_destroy(c);
}
END_TEST

START_TEST(otlphttp_exporter_url_errors)
{
    static const struct {
        const char *url;
        const char *why;
    } bad[] = {
        {"h:4318", "expected a URL starting with http:// or https://"},
        {"grpc://h:4318", "the scheme must be http:// or https://"},
        {"HTTP://h:4318", "the scheme must be http:// or https://"},
        {"http:///v1", "missing host after the scheme"},
        {"http://u:p@h:4318", "user info in the URL is not supported; put credentials in headers"},
        {"http://h:0", "the port must be between 1 and 65535"},
        {"http://h:", "missing port after ':'"},
        {"http://:4318", "missing host before ':' (use 127.0.0.1, or 0.0.0.0 for every interface)"},
        {"http://::1:4318", "put IPv6 addresses in brackets, e.g. [::1]:4317"},
        {"http://[::1", "missing ']' after the IPv6 address"},
        {"http://h:4318/a?b=1", "a query or fragment is not supported"},
        {"http://h:4318#x", "a query or fragment is not supported"},
        {"http://h:4318/a b", "the URL must not contain spaces or control characters"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char frag[512], line[512];
        snprintf(frag, sizeof(frag), "    endpoint: \"%s\"\n", bad[i].url);
        snprintf(line, sizeof(line),
                 NAME ":3:15: exporters.otlphttp.endpoint: invalid URL '%s': %s", bad[i].url,
                 bad[i].why);
        assert_only(otlphttp_err(frag), line);
        /* The same checks for a per-signal URL. */
        snprintf(frag, sizeof(frag), "    endpoint: http://h:1\n    metrics_endpoint: \"%s\"\n",
                 bad[i].url);
        snprintf(line, sizeof(line),
                 NAME ":4:23: exporters.otlphttp.metrics_endpoint: invalid URL '%s': %s",
                 bad[i].url, bad[i].why);
        assert_only(otlphttp_err(frag), line);
    }
    /* A signal URL given as the base. */
    assert_only(otlphttp_err("    endpoint: http://h:4318/v1/traces\n"),
                NAME ":3:15: exporters.otlphttp.endpoint: 'http://h:4318/v1/traces' already ends "
                     "in /v1/traces, which is appended to the base URL; remove it, or give the "
                     "full URL as traces_endpoint");
    assert_only(otlphttp_err("    endpoint: http://h/x/v1/logs/\n"),
                NAME ":3:15: exporters.otlphttp.endpoint: 'http://h/x/v1/logs' already ends in "
                     "/v1/logs, which is appended to the base URL; remove it, or give the full "
                     "URL as logs_endpoint");
    /* ...but a host that happens to look like one is fine. */
    lk_config *c = otlphttp_ok("    endpoint: http://v1/logs\n");
    ck_assert_str_eq(c->exporters[0].endpoint, "http://v1/logs");
    lk_config_destroy(c);
    assert_only(otlphttp_err("    endpoint: [a]\n"),
                NAME ":3:15: exporters.otlphttp.endpoint: expected a URL like "
                     "http://127.0.0.1:4318, got a list");
}
END_TEST

START_TEST(otlphttp_exporter_checks)
{
    /* endpoint is required unless every signal has its own URL. */
    assert_only(otlphttp_err("    timeout: 1s\n"),
                NAME ":2:3: exporters.otlphttp: missing required key 'endpoint' (a base URL like "
                     "http://127.0.0.1:4318), unless traces_endpoint, metrics_endpoint and "
                     "logs_endpoint are all set");
    assert_only(otlphttp_err("    traces_endpoint: http://h/t\n    logs_endpoint: http://h/l\n"),
                NAME ":2:3: exporters.otlphttp: missing required key 'endpoint' (a base URL like "
                     "http://127.0.0.1:4318), unless traces_endpoint, metrics_endpoint and "
                     "logs_endpoint are all set");
    /* One scheme for all URLs of an exporter, and TLS must agree with it. */
    assert_only(otlphttp_err("    endpoint: https://h\n    traces_endpoint: http://h/t\n"),
                NAME ":4:22: exporters.otlphttp.traces_endpoint: uses http:// but endpoint uses "
                     "https://; TLS is on or off for all of an exporter's URLs");
    assert_only(otlphttp_err("    endpoint: https://h:443\n    tls: {enabled: false}\n"),
                NAME ":4:20: exporters.otlphttp.tls.enabled: is false but the endpoint uses "
                     "https://");
    assert_only(otlphttp_err("    endpoint: http://h\n    tls: {enabled: true}\n"),
                NAME ":4:20: exporters.otlphttp.tls.enabled: is true but the endpoint uses "
                     "http://");
    assert_only(otlphttp_err("    endpoint: http://h\n    tls: {ca_file: ca.pem}\n"),
                NAME ":4:11: exporters.otlphttp.tls.ca_file: has no effect while TLS is off; set "
                     "tls.enabled: true or use an https:// endpoint");
    /* Per-signal URLs belong to otlphttp only. */
    assert_only(exporter_err(EP "    traces_endpoint: http://h/t\n"),
                NAME ":4:5: unknown key 'traces_endpoint' in exporters.otlp (only otlphttp exporters have it)");
    /* HTTP header names: tokens of any case, not the ones lookout sets, once each. */
    char *e = otlphttp_err("    endpoint: http://h\n"
                           "    headers:\n"
                           "      Content-Type: text/plain\n"
                           "      a b: 1\n"
                           "      Authorization: x\n"
                           "      authorization: y\n"
                           "      X-Tab: \"a\\tb\"\n"
                           "      grpc-timeout: ok-here\n"
                           "      x-bin: \"\\x01\"\n"
                           "      Transfer-Encoding: chunked\n"
                           "      Host: gw.internal\n");
    ASSERT_LINE(e, NAME ":5:7: exporters.otlphttp.headers: header name 'Content-Type' is set by "
                       "lookout itself");
    ASSERT_LINE(e, NAME ":6:7: exporters.otlphttp.headers: header name 'a b' may only use "
                       "letters, digits and !#$%&'*+-.^_`|~");
    ASSERT_LINE(e, NAME ":8:7: exporters.otlphttp.headers: header 'authorization' is set twice "
                       "(names are case-insensitive)");
    ASSERT_LINE(e, NAME ":9:14: exporters.otlphttp.headers.X-Tab: the value must be printable "
                       "ASCII");
    ASSERT_LINE(e, NAME ":11:14: exporters.otlphttp.headers.x-bin: the value must be printable "
                       "ASCII");
    ASSERT_LINE(e, NAME ":12:7: exporters.otlphttp.headers: header name 'Transfer-Encoding' is "
                       "set by lookout itself");
    ck_assert_uint_eq(count_lines(e), 6);
    free(e);
    /* Type names: otlphttp/<suffix> follows the same rules. */
    assert_only(errors_of("exporters:\n  otlp: {endpoint: \"h:1\"}\n  otlphtp/x: {}\n" TAIL),
                NAME ":3:3: unknown exporter type 'otlphtp' (known: otlp, otlphttp, loki, prometheus, prometheusremotewrite); did you mean "
                     "'otlphttp'?");
    assert_only(errors_of("exporters:\n  otlp: {endpoint: \"h:1\"}\n  otlphttp/: {}\n" TAIL),
                NAME ":3:3: exporter name 'otlphttp/' needs a name after the '/'");
    /* Receivers have no otlphttp type. */
    assert_only(errors_of("receivers: {otlphttp: {}}\n"
                          "exporters: {otlp: {endpoint: \"h:1\"}}\n"
                          "pipelines: {traces: {receivers: [otlphttp], exporters: [otlp]}}\n"),
                NAME ":1:13: unknown receiver type 'otlphttp' (known: otlp, lines)");
}
END_TEST

/* ---- logs: lines receivers and loki exporters ---- */

#define KIB_ 1024u
#define LINES_TAIL                                                             \
    "exporters: {loki: }\n"                                                    \
    "pipelines: {logs: {receivers: [lines], exporters: [loki]}}\n"
#define LOKI_TAIL                                                              \
    "receivers: {lines: }\n"                                                   \
    "pipelines: {logs: {receivers: [lines], exporters: [loki]}}\n"

/* "receivers: lines:" with |frag| (lines indented by 4) from line 3. */
static char *lines_yaml(const char *frag)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "receivers:\n  lines:\n%s" LINES_TAIL, frag);
    return buf;
}

/* "exporters: loki:" with |frag| (lines indented by 4) from line 3. */
static char *loki_yaml(const char *frag)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "exporters:\n  loki:\n%s" LOKI_TAIL, frag);
    return buf;
}

static const struct lk_receiver_config *receiver_named(const lk_config *c, const char *name)
{
    for (size_t i = 0; i < c->nreceivers; i++)
        if (strcmp(c->receivers[i].name, name) == 0)
            return &c->receivers[i];
    ck_abort_msg("no receiver %s", name);
    return NULL;
}

static const struct lk_exporter_config *exporter_named(const lk_config *c, const char *name)
{
    for (size_t i = 0; i < c->nexporters; i++)
        if (strcmp(c->exporters[i].name, name) == 0)
            return &c->exporters[i];
    ck_abort_msg("no exporter %s", name);
    return NULL;
}

static void assert_lines_defaults(const struct lk_receiver_config *r)
{
    const struct lk_lines_receiver_config *l = &r->lines;
    ck_assert_int_eq(r->type, LK_RECEIVER_LINES);
    ck_assert_str_eq(l->path, "/tmp/lookout.sock");
    ck_assert(!l->datagram);
    ck_assert_uint_eq(l->mode, 0600);
    ck_assert_ptr_null(l->owner);
    ck_assert_ptr_null(l->group);
    ck_assert_int_eq(l->format, LK_LINES_AUTO);
    ck_assert_ptr_null(l->service_name);
    ck_assert_uint_eq(l->nlabels, 0);
    ck_assert_uint_eq(l->max_line_bytes, 256 * KIB_);
    ck_assert_uint_eq(l->max_connections, 256);
    ck_assert_int_eq(l->overflow, LK_LINES_BLOCK);
    ck_assert_uint_eq(l->idle_timeout_ms, 60 * 1000);
}

static void assert_loki_defaults(const struct lk_exporter_config *x)
{
    static const char *const labels[] = {"service_name", "service_namespace",
                                         "deployment_environment", "host", "source"};
    ck_assert_int_eq(x->type, LK_EXPORTER_LOKI);
    ck_assert_str_eq(x->endpoint, "http://127.0.0.1:3100/loki/api/v1/push");
    ck_assert(!x->tls.enabled);
    ck_assert_int_eq(x->loki.format, LK_LOKI_BODY_PROTOBUF);
    ck_assert_int_eq(x->compression, LK_COMPRESSION_NONE);
    ck_assert_uint_eq(x->max_concurrency, 1);
    ck_assert_uint_eq(x->batch.send_batch_max_bytes, 1024 * KIB_);
    ck_assert_uint_eq(x->timeout_ms, 10000);
    ck_assert(x->retry.enabled);
    ck_assert_uint_eq(x->queue.queue_size, 100000);
    ck_assert_uint_eq(x->queue.max_bytes, 32 * 1024 * KIB_);
    ck_assert_ptr_null(x->auth.tenant_id);
    ck_assert_ptr_null(x->auth.username);
    ck_assert_ptr_null(x->auth.password);
    ck_assert_ptr_null(x->auth.bearer_token);
    ck_assert_uint_eq(x->nheaders, 0);
    ck_assert_uint_eq(x->loki.nlabels, 5);
    for (size_t i = 0; i < 5; i++)
        ck_assert_str_eq(x->loki.labels[i], labels[i]);
    ck_assert_int_eq(x->loki.structured_metadata, LK_LOKI_MD_AUTO);
    ck_assert_uint_eq(x->loki.md_max_entries, 128);
    ck_assert_uint_eq(x->loki.md_max_bytes, 64 * KIB_);
}

START_TEST(lines_receiver_defaults)
{
    lk_config *c = config_of(lines_yaml(""));
    ck_assert_uint_eq(c->nreceivers, 1);
    ck_assert_str_eq(c->receivers[0].name, "lines");
    assert_lines_defaults(&c->receivers[0]);
    lk_config_destroy(c);
    /* An empty mapping is the same. */
    c = config_of(lines_yaml("    {}\n"));
    assert_lines_defaults(&c->receivers[0]);
    lk_config_destroy(c);
    /* The default file spells out the same values. */
    c = NULL;
    ck_assert_int_eq(lk_config_load("config/lookout.yaml", &c, NULL), 0);
    assert_lines_defaults(receiver_named(c, "lines"));
    lk_config_destroy(c);
}
END_TEST

START_TEST(lines_receiver_every_key)
{
    lk_config *c = config_of("receivers:\n"
                             "  lines:\n"
                             "    path: /run/app/log.sock\n"
                             "    socket_type: datagram\n"
                             "    mode: \"0660\"\n"
                             "    owner: www-data\n"
                             "    group: \"1000\"\n"
                             "    format: logfmt\n"
                             "    service_name: checkout\n"
                             "    labels: {team: payments, env: prod, _x9: \"caf\xc3\xa9\"}\n"
                             "    max_line_bytes: 1MiB\n"
                             "    max_connections: 10\n"
                             "    overflow: drop\n"
                             "    idle_timeout: 0s\n"
                             "  lines/app:\n"
                             "    path: /tmp/app.sock\n"
                             "    socket_type: stream\n"
                             "    mode: 640\n"
                             "    format: raw\n"
                             "    max_line_bytes: 256\n"
                             "    idle_timeout: 1500ms\n"
                             "  lines/j: {path: /tmp/j.sock, format: json, mode: \"0600\"}\n"
                             LINES_TAIL);
    ck_assert_uint_eq(c->nreceivers, 3);
    const struct lk_lines_receiver_config *l = &receiver_named(c, "lines")->lines;
    ck_assert_str_eq(l->path, "/run/app/log.sock");
    ck_assert(l->datagram);
    ck_assert_uint_eq(l->mode, 0660);
    ck_assert_str_eq(l->owner, "www-data");
    ck_assert_str_eq(l->group, "1000");
    ck_assert_int_eq(l->format, LK_LINES_LOGFMT);
    ck_assert_str_eq(l->service_name, "checkout");
    ck_assert_uint_eq(l->nlabels, 3);
    ck_assert_str_eq(l->labels[0].name, "team");
    ck_assert_str_eq(l->labels[0].value, "payments");
    ck_assert_str_eq(l->labels[1].name, "env");
    ck_assert_str_eq(l->labels[1].value, "prod");
    ck_assert_str_eq(l->labels[2].name, "_x9");
    ck_assert_str_eq(l->labels[2].value, "caf\xc3\xa9");
    ck_assert_uint_eq(l->max_line_bytes, 1024 * KIB_);
    ck_assert_uint_eq(l->max_connections, 10);
    ck_assert_int_eq(l->overflow, LK_LINES_DROP);
    ck_assert_uint_eq(l->idle_timeout_ms, 0);

    const struct lk_receiver_config *r = receiver_named(c, "lines/app");
    ck_assert_int_eq(r->type, LK_RECEIVER_LINES);
    ck_assert_str_eq(r->lines.path, "/tmp/app.sock");
    ck_assert(!r->lines.datagram);
    ck_assert_uint_eq(r->lines.mode, 0640); /* octal even without the leading 0 */
    ck_assert_int_eq(r->lines.format, LK_LINES_RAW);
    ck_assert_uint_eq(r->lines.max_line_bytes, 256);
    ck_assert_uint_eq(r->lines.max_connections, 256);
    ck_assert_uint_eq(r->lines.idle_timeout_ms, 1500);
    ck_assert_int_eq(receiver_named(c, "lines/j")->lines.format, LK_LINES_JSON);
    ck_assert_uint_eq(receiver_named(c, "lines/j")->lines.mode, 0600);
    lk_config_destroy(c);

    /* A path of 99 bytes is the longest accepted. */
    char frag[256], path[128];
    memset(path, 'a', sizeof(path));
    memcpy(path, "/tmp/", 5);
    path[99] = '\0';
    snprintf(frag, sizeof(frag), "    path: %s\n", path);
    c = config_of(lines_yaml(frag));
    ck_assert_str_eq(c->receivers[0].lines.path, path);
    lk_config_destroy(c);
}
END_TEST

START_TEST(lines_receiver_errors)
{
    assert_only(errors_of(lines_yaml("    path: tmp/x.sock\n")),
                NAME ":3:11: receivers.lines.path: must be an absolute path, got 'tmp/x.sock'");
    char frag[256], path[128];
    memset(path, 'a', sizeof(path));
    memcpy(path, "/tmp/", 5);
    path[100] = '\0';
    snprintf(frag, sizeof(frag), "    path: %s\n", path);
    assert_only(errors_of(lines_yaml(frag)),
                NAME ":3:11: receivers.lines.path: must be shorter than 100 bytes (a Unix "
                     "socket limit)");
    assert_only(errors_of(lines_yaml("    mode: \"0999\"\n")),
                NAME ":3:11: receivers.lines.mode: expected octal permission bits like \"0600\" "
                     "or \"0660\", got '0999'");
    assert_only(errors_of(lines_yaml("    mode: \"01777\"\n")),
                NAME ":3:11: receivers.lines.mode: expected octal permission bits like \"0600\" "
                     "or \"0660\", got '01777'");
    assert_only(errors_of(lines_yaml("    mode: \"0066\"\n")),
                NAME ":3:11: receivers.lines.mode: the owner must keep read and write (0600), "
                     "got '0066'");
    assert_only(errors_of(lines_yaml("    mode: \"0400\"\n")),
                NAME ":3:11: receivers.lines.mode: the owner must keep read and write (0600), "
                     "got '0400'");
    assert_only(errors_of(lines_yaml("    format: jsn\n")),
                NAME ":3:13: receivers.lines.format: expected one of auto, json, logfmt, raw, "
                     "got 'jsn'; did you mean 'json'?");
    assert_only(errors_of(lines_yaml("    socket_type: dgram\n")),
                NAME ":3:18: receivers.lines.socket_type: expected one of stream, datagram, got "
                     "'dgram'");
    assert_only(errors_of(lines_yaml("    overflow: blok\n")),
                NAME ":3:15: receivers.lines.overflow: expected one of block, drop, got 'blok'; "
                     "did you mean 'block'?");
    assert_only(errors_of(lines_yaml("    max_line_bytes: 100\n")),
                NAME ":3:21: receivers.lines.max_line_bytes: must be between 256 and 16MiB, got "
                     "100");
    assert_only(errors_of(lines_yaml("    idle_timeout: 1\n")),
                NAME ":3:19: receivers.lines.idle_timeout: duration '1' needs a unit, e.g. 5s "
                     "or 500ms (units: ms, s, m, h)");
    assert_only(errors_of(lines_yaml("    paht: /x\n")),
                NAME ":3:5: unknown key 'paht' in receivers.lines; did you mean 'path'?");

    char *e = errors_of(lines_yaml("    labels: {team.name: x, 1a: y, __x: z, ok: [1]}\n"));
    ASSERT_LINE(e, NAME ":3:14: receivers.lines.labels: label name 'team.name' may only use "
                       "letters, digits and '_'");
    ASSERT_LINE(e, NAME ":3:28: receivers.lines.labels: label name '1a' must not start with a "
                       "digit");
    ASSERT_LINE(e, NAME ":3:35: receivers.lines.labels: label name '__x' must not start with "
                       "'__' (reserved)");
    ASSERT_LINE(e, NAME ":3:47: receivers.lines.labels.ok: expected a string, got a list");
    ck_assert_uint_eq(count_lines(e), 4);
    free(e);
    assert_only(errors_of(lines_yaml("    labels: {a1: 1, a2: 2, a3: 3, a4: 4, a5: 5, a6: 6, "
                                     "a7: 7, a8: 8, a9: 9, a10: 10, a11: 11, a12: 12, a13: 13, "
                                     "a14: 14, a15: 15, a16: 16}\n")),
                NAME ":3:13: receivers.lines.labels: at most 15 labels (Loki's default limit "
                     "per stream)");
    /* Several problems of one receiver are all reported. */
    e = errors_of(lines_yaml("    path: rel\n    mode: \"0066\"\n    format: xml\n"));
    ck_assert_uint_eq(count_lines(e), 3);
    free(e);
    /* Names: lines/<suffix> as for any component. */
    assert_only(errors_of("receivers:\n  lines:\n  lines/: {}\n" LINES_TAIL),
                NAME ":3:3: receiver name 'lines/' needs a name after the '/'");
    assert_only(errors_of("receivers:\n  lines:\n  line: {}\n" LINES_TAIL),
                NAME ":3:3: unknown receiver type 'line' (known: otlp, lines); did you mean "
                     "'lines'?");
}
END_TEST

START_TEST(loki_exporter_defaults)
{
    lk_config *c = config_of(loki_yaml(""));
    ck_assert_uint_eq(c->nexporters, 1);
    ck_assert_str_eq(c->exporters[0].name, "loki");
    assert_loki_defaults(&c->exporters[0]);
    lk_config_destroy(c);
    /* loki/<suffix> gets the same defaults. */
    c = config_of("exporters: {loki/a: {}}\n"
                  "receivers: {lines: }\n"
                  "pipelines: {logs: {receivers: [lines], exporters: [loki/a]}}\n");
    assert_loki_defaults(exporter_named(c, "loki/a"));
    lk_config_destroy(c);
    /* The default file spells out the same values. */
    c = NULL;
    ck_assert_int_eq(lk_config_load("config/lookout.yaml", &c, NULL), 0);
    assert_loki_defaults(exporter_named(c, "loki"));
    lk_config_destroy(c);
}
END_TEST

START_TEST(loki_exporter_keys)
{
    lk_config *c = config_of(loki_yaml("    endpoint: https://logs.example/loki/api/v1/push\n"
                                       "    format: json\n"
                                       "    compression: gzip\n"
                                       "    tenant_id: team-a\n"
                                       "    auth: {username: u, password: \"p@ss word\"}\n"
                                       "    labels: [service_name, level, k8s_namespace]\n"
                                       "    headers: {X-Extra: \"1\"}\n"
                                       "    max_concurrency: 2\n"
                                       "    batch: {send_batch_max_bytes: 512KiB}\n"));
    const struct lk_exporter_config *x = &c->exporters[0];
    ck_assert_str_eq(x->endpoint, "https://logs.example/loki/api/v1/push");
    ck_assert(x->tls.enabled);
    ck_assert_int_eq(x->loki.format, LK_LOKI_BODY_JSON);
    ck_assert_int_eq(x->compression, LK_COMPRESSION_GZIP);
    ck_assert_str_eq(x->auth.tenant_id, "team-a");
    ck_assert_str_eq(x->auth.username, "u");
    ck_assert_str_eq(x->auth.password, "p@ss word");
    ck_assert_ptr_null(x->auth.bearer_token);
    ck_assert_uint_eq(x->loki.nlabels, 3);
    ck_assert_str_eq(x->loki.labels[0], "service_name");
    ck_assert_str_eq(x->loki.labels[1], "level");
    ck_assert_str_eq(x->loki.labels[2], "k8s_namespace");
    ck_assert_uint_eq(x->nheaders, 1);
    ck_assert_str_eq(x->headers[0].name, "X-Extra");
    ck_assert_uint_eq(x->max_concurrency, 2);
    ck_assert_uint_eq(x->batch.send_batch_max_bytes, 512 * KIB_);
    lk_config_destroy(c);

    /* bearer_token; json without compression; no labels at all. */
    c = config_of(loki_yaml("    endpoint: http://loki:3100/loki/api/v1/push\n"
                            "    format: json\n"
                            "    bearer_token: tok.en-1\n"
                            "    labels: []\n"));
    x = &c->exporters[0];
    ck_assert_str_eq(x->endpoint, "http://loki:3100/loki/api/v1/push");
    ck_assert(!x->tls.enabled);
    ck_assert_int_eq(x->compression, LK_COMPRESSION_NONE);
    ck_assert_str_eq(x->auth.bearer_token, "tok.en-1");
    ck_assert_ptr_null(x->auth.username);
    ck_assert_uint_eq(x->loki.nlabels, 0);
    lk_config_destroy(c);

    /* Structured metadata: the mode and Loki's two limits (0: none). */
    c = config_of(loki_yaml("    structured_metadata: off\n"
                            "    structured_metadata_max_entries: 0\n"
                            "    structured_metadata_max_bytes: 8KiB\n"));
    x = &c->exporters[0];
    ck_assert_int_eq(x->loki.structured_metadata, LK_LOKI_MD_OFF);
    ck_assert_uint_eq(x->loki.md_max_entries, 0);
    ck_assert_uint_eq(x->loki.md_max_bytes, 8 * KIB_);
    lk_config_destroy(c);
    c = config_of(loki_yaml("    structured_metadata: on\n"
                            "    structured_metadata_max_entries: 1000\n"
                            "    structured_metadata_max_bytes: 0\n"));
    x = &c->exporters[0];
    ck_assert_int_eq(x->loki.structured_metadata, LK_LOKI_MD_ON);
    ck_assert_uint_eq(x->loki.md_max_entries, 1000);
    ck_assert_uint_eq(x->loki.md_max_bytes, 0);
    lk_config_destroy(c);

    /* protobuf with compression: none is fine (snappy is implied). */
    c = config_of(loki_yaml("    format: protobuf\n    compression: none\n"));
    ck_assert_int_eq(c->exporters[0].loki.format, LK_LOKI_BODY_PROTOBUF);
    lk_config_destroy(c);
}
END_TEST

START_TEST(loki_exporter_errors)
{
    assert_only(errors_of(loki_yaml("    compression: gzip\n")),
                NAME ":3:18: exporters.loki.compression: protobuf bodies are always "
                     "snappy-compressed; compression applies to format: json");
    assert_only(errors_of(loki_yaml("    format: protobuf\n    compression: gzip\n")),
                NAME ":4:18: exporters.loki.compression: protobuf bodies are always "
                     "snappy-compressed; compression applies to format: json");
    assert_only(errors_of(loki_yaml("    format: xml\n")),
                NAME ":3:13: exporters.loki.format: expected one of protobuf, json, got 'xml'");
    assert_only(errors_of(loki_yaml("    structured_metadata: yes\n")),
                NAME ":3:26: exporters.loki.structured_metadata: expected one of auto, on, off, "
                     "got 'yes'");
    assert_only(errors_of(loki_yaml("    auth: {username: u}\n")),
                NAME ":3:5: exporters.loki.auth: username and password go together; password "
                     "is missing");
    assert_only(errors_of(loki_yaml("    auth: {password: p}\n")),
                NAME ":3:5: exporters.loki.auth: username and password go together; username "
                     "is missing");
    assert_only(errors_of(loki_yaml("    auth: {username: \"a:b\", password: p}\n")),
                NAME ":3:22: exporters.loki.auth.username: must not contain ':'");
    assert_only(errors_of(loki_yaml("    auth: {username: u, password: p}\n"
                                    "    bearer_token: t\n")),
                NAME ":4:5: exporters.loki: set auth (basic) or bearer_token, not both");
    assert_only(errors_of(loki_yaml("    auth: {username: u, password: p}\n"
                                    "    headers: {Authorization: \"Basic eA==\"}\n")),
                NAME ":2:3: exporters.loki: an Authorization header and auth/bearer_token both "
                     "set it");
    assert_only(errors_of(loki_yaml("    bearer_token: t\n"
                                    "    headers: {authorization: \"Bearer u\"}\n")),
                NAME ":2:3: exporters.loki: an Authorization header and auth/bearer_token both "
                     "set it");
    assert_only(errors_of(loki_yaml("    tenant_id: a\n"
                                    "    headers: {X-Scope-OrgID: b}\n")),
                NAME ":2:3: exporters.loki: an X-Scope-OrgID header and tenant_id both set it");
    char *e = errors_of(loki_yaml("    tenant_id: \"a\\tb\"\n    bearer_token: \"\xc3\xa9\"\n"));
    ASSERT_LINE(e, NAME ":3:16: exporters.loki.tenant_id: must be printable ASCII");
    ASSERT_LINE(e, NAME ":4:19: exporters.loki.bearer_token: must be printable ASCII");
    ck_assert_uint_eq(count_lines(e), 2);
    free(e);

    /* Labels: names, duplicates, at most 15. */
    e = errors_of(loki_yaml("    labels: [service_name, service.name, service_name, 1x]\n"));
    ASSERT_LINE(e, NAME ":3:28: exporters.loki.labels: label name 'service.name' may only use "
                       "letters, digits and '_' (attribute keys map to names with '_' for '.', "
                       "e.g. service_name)");
    ASSERT_LINE(e, NAME ":3:42: exporters.loki.labels: 'service_name' is listed twice");
    ASSERT_LINE(e, NAME ":3:56: exporters.loki.labels: label name '1x' must not start with a "
                       "digit (attribute keys map to names with '_' for '.', e.g. service_name)");
    ck_assert_uint_eq(count_lines(e), 3);
    free(e);
    assert_only(errors_of(loki_yaml("    labels: [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, "
                                    "a12, a13, a14, a15, a16]\n")),
                NAME ":3:13: exporters.loki.labels: at most 15 labels (Loki's default limit per "
                     "stream)");
    lk_config *c = config_of(loki_yaml("    labels: [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, "
                                       "a11, a12, a13, a14, a15]\n"));
    ck_assert_uint_eq(c->exporters[0].loki.nlabels, 15);
    lk_config_destroy(c);
    assert_only(errors_of(loki_yaml("    labels: service_name\n")),
                NAME ":3:13: exporters.loki.labels: expected a list of label names like "
                     "[service_name, host], got a string");

    /* The endpoint is a full http(s) URL. */
    assert_only(errors_of(loki_yaml("    endpoint: \"127.0.0.1:3100\"\n")),
                NAME ":3:15: exporters.loki.endpoint: invalid URL '127.0.0.1:3100': expected a "
                     "URL starting with http:// or https://");
    assert_only(errors_of(loki_yaml("    endpoint: \"grpc://h:3100\"\n")),
                NAME ":3:15: exporters.loki.endpoint: invalid URL 'grpc://h:3100': the scheme "
                     "must be http:// or https://");
    assert_only(errors_of(loki_yaml("    endpoint: \"http://h:3100/push?x=1\"\n")),
                NAME ":3:15: exporters.loki.endpoint: invalid URL 'http://h:3100/push?x=1': a "
                     "query or fragment is not supported");

    /* Keys of other exporter types, both ways. */
    assert_only(errors_of(loki_yaml("    traces_endpoint: http://h/t\n")),
                NAME ":3:5: unknown key 'traces_endpoint' in exporters.loki (only otlphttp "
                     "exporters have it)");
    assert_only(exporter_err(EP "    tenant_id: t\n"),
                NAME ":4:5: unknown key 'tenant_id' in exporters.otlp (only loki and "
                     "prometheusremotewrite exporters have it)");
    e = exporter_err(EP "    format: json\n    auth: {username: u, password: p}\n"
                        "    bearer_token: x\n    labels: [a]\n");
    ASSERT_LINE(e, NAME ":4:5: unknown key 'format' in exporters.otlp (only loki exporters have "
                       "it)");
    ASSERT_LINE(e, NAME ":5:5: unknown key 'auth' in exporters.otlp (only loki and "
                       "prometheusremotewrite exporters have it)");
    ASSERT_LINE(e, NAME ":6:5: unknown key 'bearer_token' in exporters.otlp (only loki and "
                       "prometheusremotewrite exporters have it)");
    ASSERT_LINE(e, NAME ":7:5: unknown key 'labels' in exporters.otlp (only loki exporters "
                       "have it)");
    ck_assert_uint_eq(count_lines(e), 4);
    free(e);
    assert_only(otlphttp_err("    endpoint: http://h\n    tenant_id: t\n"),
                NAME ":4:5: unknown key 'tenant_id' in exporters.otlphttp (only loki and "
                     "prometheusremotewrite exporters have it)");
}
END_TEST

START_TEST(logs_only_components)
{
    char *e = errors_of("receivers:\n"
                        "  otlp: {protocols: {grpc: }}\n"
                        "  lines: {path: /tmp/a.sock}\n"
                        "  lines/b: {path: /tmp/b.sock}\n"
                        "exporters:\n"
                        "  otlp: {endpoint: \"h:1\"}\n"
                        "  loki:\n"
                        "pipelines:\n"
                        "  traces: {receivers: [otlp, lines], exporters: [otlp, loki]}\n"
                        "  metrics: {receivers: [lines/b], exporters: [loki]}\n"
                        "  logs: {receivers: [otlp, lines, lines/b], exporters: [otlp, loki]}\n");
    ASSERT_LINE(e, NAME ":9:23: pipelines.traces.receivers: 'lines' receives log lines; list it "
                       "in the logs pipeline");
    ASSERT_LINE(e, NAME ":9:49: pipelines.traces.exporters: 'loki' sends to Loki, which takes "
                       "logs only");
    ASSERT_LINE(e, NAME ":10:24: pipelines.metrics.receivers: 'lines/b' receives log lines; "
                       "list it in the logs pipeline");
    ASSERT_LINE(e, NAME ":10:46: pipelines.metrics.exporters: 'loki' sends to Loki, which takes "
                       "logs only");
    /* The logs pipeline takes them, next to OTLP ones. */
    ck_assert_uint_eq(count_lines(e), 4);
    free(e);
}
END_TEST

START_TEST(lines_socket_clashes)
{
    /* A lines socket on the file of a unix:// gRPC endpoint, written before or after it. */
    assert_only(errors_of("receivers:\n"
                          "  otlp: {protocols: {grpc: {endpoint: \"unix:///tmp/lk.sock\"}}}\n"
                          "  lines: {path: /tmp/lk.sock}\n" LINES_TAIL),
                NAME ":3:17: receivers.lines: endpoint 'unix:///tmp/lk.sock' is already used by "
                     "receivers.otlp.protocols.grpc");
    assert_only(errors_of("receivers:\n"
                          "  lines: {path: /tmp/lk.sock}\n"
                          "  otlp: {protocols: {http: {endpoint: \"unix:///tmp/lk.sock\"}}}\n"
                          LINES_TAIL),
                NAME ":3:39: receivers.otlp.protocols.http: endpoint 'unix:///tmp/lk.sock' is "
                     "already used by receivers.lines");
    /* Two lines receivers on the default path. */
    assert_only(errors_of("receivers:\n  lines:\n  lines/b: {}\n" LINES_TAIL),
                NAME ":3:3: receivers.lines/b: endpoint 'unix:///tmp/lookout.sock' is already "
                     "used by receivers.lines");
    /* Different files do not clash, nor does a TCP endpoint. */
    lk_config *c = config_of("receivers:\n"
                             "  otlp: {protocols: {grpc: {endpoint: \"unix:///tmp/g.sock\"}, "
                             "http: }}\n"
                             "  lines: {path: /tmp/lk.sock}\n"
                             "  lines/b: {path: /tmp/lk2.sock}\n" LINES_TAIL);
    ck_assert_uint_eq(c->nreceivers, 3);
    lk_config_destroy(c);
}
END_TEST

/* Labels lookout sets itself cannot be static labels; "" unsets optional
 * strings (as the documented defaults show them). */
START_TEST(lines_and_loki_unset_and_reserved)
{
    char *e = errors_of(lines_yaml("    labels: {host: a, source: b, service_name: c, ok_1: d}\n"));
    ASSERT_LINE(e, NAME ":3:14: receivers.lines.labels: label 'host' is set by lookout");
    ASSERT_LINE(e, NAME ":3:23: receivers.lines.labels: label 'source' is set by lookout");
    ASSERT_LINE(e, NAME ":3:34: receivers.lines.labels: label 'service_name' is set by "
                       "lookout; use the receiver's service_name key for lines that name "
                       "no service");
    ck_assert_uint_eq(count_lines(e), 3);
    free(e);

    lk_config *c = config_of(lines_yaml("    owner: \"\"\n    group: \"\"\n"
                                        "    service_name: \"\"\n"));
    const struct lk_lines_receiver_config *l = &receiver_named(c, "lines")->lines;
    ck_assert_ptr_null(l->owner);
    ck_assert_ptr_null(l->group);
    ck_assert_ptr_null(l->service_name);
    lk_config_destroy(c);

    c = config_of(loki_yaml("    tenant_id: \"\"\n    bearer_token: \"\"\n"));
    const struct lk_exporter_config *x = exporter_named(c, "loki");
    ck_assert_ptr_null(x->auth.tenant_id);
    ck_assert_ptr_null(x->auth.bearer_token);
    lk_config_destroy(c);
}
END_TEST

/* prometheus exporter: defaults, its own keys, and what it refuses. */
START_TEST(prometheus_exporter_keys)
{
    lk_config *c = config_of("receivers: {otlp: {protocols: {grpc: }}}\n"
                             "exporters: {prometheus: {}}\n"
                             "pipelines: {metrics: {receivers: [otlp], exporters: [prometheus]}}\n");
    const struct lk_prometheus_config *p = &c->exporters[0].prometheus;
    ck_assert_int_eq(c->exporters[0].type, LK_EXPORTER_PROMETHEUS);
    ck_assert(p->add_metric_suffixes);
    ck_assert_uint_eq(p->metric_expiration_ms, 300000);
    ck_assert_uint_eq(p->max_series, 100000);
    ck_assert_uint_eq(p->npromote, 0);
    lk_config_destroy(c);

    c = config_of("receivers: {otlp: {protocols: {grpc: }}}\n"
                  "exporters:\n"
                  "  prometheus/app:\n"
                  "    add_metric_suffixes: false\n"
                  "    promote_resource_attributes: [deployment.environment, k8s.pod.name]\n"
                  "    metric_expiration: 0s\n"
                  "    max_series: 10\n"
                  "pipelines: {metrics: {receivers: [otlp], exporters: [prometheus/app]}}\n");
    p = &c->exporters[0].prometheus;
    ck_assert(!p->add_metric_suffixes);
    ck_assert_uint_eq(p->npromote, 2);
    ck_assert_str_eq(p->promote_resource_attributes[1], "k8s.pod.name");
    ck_assert_uint_eq(p->metric_expiration_ms, 0);
    ck_assert_uint_eq(p->max_series, 10);
    ck_assert_ptr_null(c->exporters[0].endpoint); /* served on the admin listener */
    lk_config_destroy(c);

    /* With endpoints of their own, several may exist. */
    c = config_of("receivers: {otlp: {protocols: {grpc: }}}\n"
                  "exporters:\n"
                  "  prometheus/a: {endpoint: \"127.0.0.1:9100\"}\n"
                  "  prometheus/b: {endpoint: \"unix:///tmp/b.sock\"}\n"
                  "  prometheus: {}\n"
                  "pipelines: {metrics: {receivers: [otlp], exporters: [prometheus/a, "
                  "prometheus/b, prometheus]}}\n");
    ck_assert_str_eq(c->exporters[0].endpoint, "127.0.0.1:9100");
    ck_assert_str_eq(c->exporters[1].endpoint, "unix:///tmp/b.sock");
    ck_assert_ptr_null(c->exporters[2].endpoint);
    lk_config_destroy(c);
}
END_TEST

START_TEST(prometheus_exporter_errors)
{
    char *e = errors_of("receivers: {otlp: {protocols: {grpc: }}}\n"
                        "exporters:\n"
                        "  prometheus: {tls: {enabled: true}, labels: [a], promote_resource_attributes: x}\n"
                        "  prometheus/2: {}\n"
                        "  otlp: {endpoint: \"h:1\", max_series: 3}\n"
                        "pipelines:\n"
                        "  metrics: {receivers: [otlp], exporters: [prometheus]}\n"
                        "  traces: {receivers: [otlp], exporters: [prometheus/2, otlp]}\n");
    ASSERT_LINE(e, NAME ":3:16: unknown key 'tls' in exporters.prometheus (a prometheus exporter "
                   "is scraped on the admin listener; it sends nothing)");
    ASSERT_LINE(e, NAME ":3:38: unknown key 'labels' in exporters.prometheus (only loki "
                   "exporters have it)");
    ASSERT_LINE(e, NAME ":3:80: exporters.prometheus.promote_resource_attributes: expected a "
                   "list of resource attribute keys like [deployment.environment], got a string");
    ASSERT_LINE(e, NAME ":3:3: exporters: 'prometheus' and 'prometheus/2': one prometheus "
                   "exporter without an endpoint at most (both would be served on the admin "
                   "listener's /metrics)");
    ASSERT_LINE(e, NAME ":5:27: unknown key 'max_series' in exporters.otlp (only prometheus "
                   "and prometheusremotewrite exporters have it)");
    ASSERT_LINE(e, NAME ":8:42: pipelines.traces.exporters: 'prometheus/2' exposes metrics for "
                   "Prometheus; list it in the metrics pipeline");
    free(e);

    e = errors_of("admin: {endpoint: \"127.0.0.1:9464\"}\n"
                  "receivers: {otlp: {protocols: {grpc: }}}\n"
                  "exporters:\n"
                  "  prometheus: {endpoint: \"127.0.0.1:9464\"}\n"
                  "  prometheus/x: {endpoint: \"nope\"}\n"
                  "pipelines: {metrics: {receivers: [otlp], exporters: [prometheus]}}\n");
    ASSERT_LINE(e, NAME ":4:26: prometheus: endpoint '127.0.0.1:9464' is already used by admin");
    ASSERT_LINE(e, NAME ":5:28: exporters.prometheus/x.endpoint: invalid endpoint 'nope': "
                   "missing ':port'");
    free(e);
}
END_TEST

/* prometheusremotewrite: the URL, auth and tenant, the translation keys,
 * and what it refuses. */
START_TEST(remote_write_exporter_keys)
{
    lk_config *c = config_of("receivers: {otlp: {protocols: {grpc: }}}\n"
                             "exporters:\n"
                             "  prometheusremotewrite/mimir:\n"
                             "    endpoint: https://mimir.example:9009/api/v1/push\n"
                             "    tenant_id: team-a\n"
                             "    auth: {username: u, password: p}\n"
                             "    headers: {X-Extra: \"1\"}\n"
                             "    add_metric_suffixes: false\n"
                             "    max_series: 7\n"
                             "pipelines: {metrics: {receivers: [otlp], exporters: "
                             "[prometheusremotewrite/mimir]}}\n");
    const struct lk_exporter_config *x = &c->exporters[0];
    ck_assert_int_eq(x->type, LK_EXPORTER_PROMETHEUSREMOTEWRITE);
    ck_assert_str_eq(x->endpoint, "https://mimir.example:9009/api/v1/push");
    ck_assert(x->tls.enabled); /* from the scheme */
    ck_assert_str_eq(x->auth.tenant_id, "team-a");
    ck_assert_str_eq(x->auth.username, "u");
    ck_assert(!x->prometheus.add_metric_suffixes);
    ck_assert_uint_eq(x->prometheus.max_series, 7);
    ck_assert_uint_eq(x->prometheus.metric_expiration_ms, 300000);
    ck_assert_uint_eq(x->max_concurrency, 1); /* in order */
    lk_config_destroy(c);
}
END_TEST

START_TEST(remote_write_exporter_errors)
{
    char *e = errors_of("receivers: {otlp: {protocols: {grpc: }}}\n"
                        "exporters:\n"
                        "  prometheusremotewrite: {compression: gzip, labels: [a]}\n"
                        "  prometheusremotewrite/b: {endpoint: \"ftp://x\", bearer_token: t,\n"
                        "                            auth: {username: u, password: p}}\n"
                        "pipelines:\n"
                        "  metrics: {receivers: [otlp], exporters: [prometheusremotewrite]}\n"
                        "  logs: {receivers: [otlp], exporters: [prometheusremotewrite/b]}\n");
    ASSERT_LINE(e, NAME ":3:3: exporters.prometheusremotewrite: missing required key "
                   "'endpoint' (the remote write URL, e.g. http://127.0.0.1:9090/api/v1/write)");
    ASSERT_LINE(e, NAME ":3:40: exporters.prometheusremotewrite.compression: remote write "
                   "bodies are always snappy-compressed");
    ASSERT_LINE(e, NAME ":3:46: unknown key 'labels' in exporters.prometheusremotewrite (only "
                   "loki exporters have it)");
    ASSERT_LINE(e, NAME ":4:39: exporters.prometheusremotewrite/b.endpoint: invalid URL "
                   "'ftp://x': the scheme must be http:// or https://");
    ASSERT_LINE(e, NAME ":4:50: exporters.prometheusremotewrite/b: set auth (basic) or "
                   "bearer_token, not both");
    ASSERT_LINE(e, NAME ":8:40: pipelines.logs.exporters: 'prometheusremotewrite/b' sends "
                   "Prometheus remote write, which takes metrics only");
    free(e);
}
END_TEST

/* compression: auto, by the spelling of the endpoint. */
START_TEST(compression_auto)
{
    static const char *const local[] = {"127.0.0.1:4317", "localhost:14317",
                                        "http://localhost:3100/loki/api/v1/push",
                                        "https://127.0.0.2:4318/x", "[::1]:4317",
                                        "http://[::1]:9090/api/v1/write", "unix:///tmp/x.sock",
                                        "LOCALHOST:1"};
    static const char *const remote[] = {"jaeger:4317", "10.0.0.1:4317",
                                         "https://otlp.example.com:4318",
                                         "http://[2001:db8::1]:4318", "localhost.example:1",
                                         "http://127.example.com/"};
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
        ck_assert_msg(lk_endpoint_is_local(local[i]), "%s", local[i]);
    for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++)
        ck_assert_msg(!lk_endpoint_is_local(remote[i]), "%s", remote[i]);
    /* The level of the gzip lookout does itself: 1 unless said, 1..9, for
     * otlphttp, loki and (since lookout compresses its messages itself) otlp;
     * not for an exporter that never gzips. */
    lk_config *c = config_of("receivers: {otlp: {protocols: {grpc: }}}\n"
                             "exporters:\n"
                             "  otlphttp: {endpoint: \"http://h:1\"}\n"
                             "  otlphttp/9: {endpoint: \"http://h:1\", compression_level: 9}\n"
                             "  otlp: {endpoint: \"h:1\", compression_level: 6}\n"
                             "pipelines: {traces: {receivers: [otlp], exporters: [otlphttp, "
                             "otlphttp/9, otlp]}}\n");
    ck_assert_uint_eq(c->exporters[0].compression_level, 1);
    ck_assert_uint_eq(c->exporters[1].compression_level, 9);
    ck_assert_uint_eq(c->exporters[2].compression_level, 6);
    lk_config_destroy(c);
    char *err = errors_of("receivers: {otlp: {protocols: {grpc: }}}\n"
                          "exporters:\n"
                          "  otlphttp: {endpoint: \"http://h:1\", compression_level: 10}\n"
                          "  otlp: {endpoint: \"h:1\", compression_level: 0}\n"
                          "  prometheusremotewrite: {endpoint: \"http://h:1\", "
                          "compression_level: 1}\n"
                          "pipelines: {traces: {receivers: [otlp], exporters: [otlphttp, "
                          "otlp]}, metrics: {receivers: [otlp], exporters: "
                          "[prometheusremotewrite]}}\n");
    ck_assert_ptr_nonnull(strstr(err, "exporters.otlphttp.compression_level: must be between "
                                      "1 and 9 for gzip, got 10 (zstd's are 1 to 19)"));
    ck_assert_ptr_nonnull(strstr(err, "exporters.otlp.compression_level: must be between "
                                      "1 and 19, got 0"));
    ck_assert_ptr_nonnull(strstr(err, "unknown key 'compression_level' in "
                                      "exporters.prometheusremotewrite (only otlp and otlphttp "
                                      "and loki exporters have it)"));
    free(err);

    struct lk_exporter_config e = {.name = "otlp", .endpoint = "127.0.0.1:1",
                                   .compression = LK_COMPRESSION_GZIP};
    ck_assert(lk_exporter_gzip(&e)); /* said explicitly: kept */
    e.compression = LK_COMPRESSION_NONE;
    e.endpoint = "far:1";
    ck_assert(!lk_exporter_gzip(&e));
    e.compression = LK_COMPRESSION_AUTO;
    ck_assert(lk_exporter_gzip(&e));
}
END_TEST

/* compression: zstd, for otlphttp only, with zstd's levels. */
START_TEST(compression_zstd)
{
    lk_config *c = config_of("receivers: {otlp: {protocols: {grpc: }}}\n"
                             "exporters:\n"
                             "  otlphttp: {endpoint: \"https://far:4318\", compression: zstd}\n"
                             "  otlphttp/19: {endpoint: \"http://h:1\", compression: zstd,\n"
                             "                compression_level: 19}\n"
                             "pipelines: {traces: {receivers: [otlp], exporters: [otlphttp, "
                             "otlphttp/19]}}\n");
    ck_assert_int_eq(c->exporters[0].compression, LK_COMPRESSION_ZSTD);
    ck_assert_uint_eq(c->exporters[0].compression_level, 1);
    ck_assert_int_eq(lk_exporter_compression(&c->exporters[0]), LK_COMPRESSION_ZSTD);
    ck_assert(!lk_exporter_gzip(&c->exporters[0]));
    ck_assert_uint_eq(c->exporters[1].compression_level, 19);
    /* Said explicitly: kept, even to this machine. */
    ck_assert_int_eq(lk_exporter_compression(&c->exporters[1]), LK_COMPRESSION_ZSTD);
    lk_config_destroy(c);

    char *e = errors_of("receivers: {otlp: {protocols: {grpc: }}}\n"
                        "exporters:\n"
                        "  otlp: {endpoint: \"h:1\", compression: zstd}\n"
                        "  loki: {format: json, compression: zstd}\n"
                        "  prometheusremotewrite: {endpoint: \"http://h:1/w\", compression: zstd}\n"
                        "  otlphttp: {endpoint: \"http://h:1\", compression: zstd,\n"
                        "             compression_level: 20}\n"
                        "  otlphttp/g: {endpoint: \"http://h:1\", compression: gzip,\n"
                        "               compression_level: 12}\n"
                        "  loki/l: {format: json, compression: gzip, compression_level: 10}\n"
                        "pipelines:\n"
                        "  traces: {receivers: [otlp], exporters: [otlp, otlphttp, otlphttp/g]}\n"
                        "  logs: {receivers: [otlp], exporters: [loki, loki/l]}\n"
                        "  metrics: {receivers: [otlp], exporters: [prometheusremotewrite]}\n");
    ASSERT_LINE(e, NAME ":3:40: exporters.otlp.compression: zstd is for otlphttp exporters "
                   "only; use gzip or none (OTLP/gRPC receivers take gzip)");
    ASSERT_LINE(e, NAME ":4:37: exporters.loki.compression: zstd is for otlphttp exporters "
                   "only; use gzip or none (Loki takes gzip JSON or snappy protobuf)");
    ASSERT_LINE(e, NAME ":5:66: exporters.prometheusremotewrite.compression: zstd is for "
                   "otlphttp exporters only; remote write bodies are always snappy-compressed");
    ASSERT_LINE(e, NAME ":7:33: exporters.otlphttp.compression_level: must be between 1 and "
                   "19, got 20");
    ASSERT_LINE(e, NAME ":9:35: exporters.otlphttp/g.compression_level: must be between 1 and "
                   "9 for gzip, got 12 (zstd's are 1 to 19)");
    ASSERT_LINE(e, NAME ":10:64: exporters.loki/l.compression_level: must be between 1 and 9 "
                   "for gzip, got 10");
    ck_assert_uint_eq(count_lines(e), 6);
    free(e);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("config");
    struct {
        const char *name;
        const TTest *tests[8];
    } cases[] = {
        {"default_file", {default_file_parses, default_file_states_the_builtin_defaults}},
        {"defaults", {defaults_are_applied, null_sections_take_defaults}},
        {"values", {every_key_is_read, quoted_scalars_convert_like_plain_ones,
                    memory_limit_default_range_and_errors, storage_section}},
        {"yaml", {syntax_errors_give_libyaml_position, structure_errors, aliases_are_rejected,
                  duplicate_keys}},
        {"unknown_keys", {unknown_keys_with_suggestions, unknown_keys_in_nested_sections,
                          unknown_component_types}},
        {"types", {type_errors_have_exact_positions, integers_booleans_numbers}},
        {"multiple_errors", {multiple_errors_in_one_pass, error_count_is_capped}},
        {"env", {env_expansion, env_errors}},
        {"durations", {durations}},
        {"compression_auto", {compression_auto}},
        {"compression_zstd", {compression_zstd}},
        {"sizes", {sizes}},
        {"endpoints", {endpoints, exporter_endpoint_schemes, listener_clashes}},
        {"exporter_checks", {headers, tls_checks, retry_and_batch_checks}},
        {"receivers", {receiver_checks}},
        {"pipelines", {pipeline_references, pipeline_suggestions, pipelines_required}},
        {"messages", {messages_stay_on_one_line, load_errors, signal_names}},
        {"http_receiver", {http_receiver_defaults, http_receiver_every_key, http_receiver_errors,
                           http_listener_clashes}},
        {"otlphttp_exporter", {otlphttp_exporter_values, otlphttp_exporter_url_errors,
                               otlphttp_exporter_checks}},
        {"logs_components", {lines_receiver_defaults, lines_receiver_every_key,
                             lines_receiver_errors, loki_exporter_defaults, loki_exporter_keys,
                             loki_exporter_errors, logs_only_components, lines_socket_clashes}},
        {"logs_unset_reserved", {lines_and_loki_unset_and_reserved}},
        {"prometheus_exporter", {prometheus_exporter_keys, prometheus_exporter_errors,
                                 remote_write_exporter_keys, remote_write_exporter_errors}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *t = tcase_create(cases[i].name);
        for (size_t j = 0; j < 8 && cases[i].tests[j] != NULL; j++)
            tcase_add_test(t, cases[i].tests[j]);
        suite_add_tcase(s, t);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
