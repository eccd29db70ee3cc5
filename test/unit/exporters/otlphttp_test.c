/*
 * The OTLP/HTTP exporter behind a real lk_queue, against an lk_httpd server
 * on 127.0.0.1 (port 0) in the same loop that answers from a script. The
 * loop runs until the queue holds nothing; a watchdog turns a hang into a
 * failure. Nothing asserts on elapsed time.
 */
#include "exporters/otlphttp.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include <zstd.h>

#include "core/err.h"
#include "core/gzip.h"
#include "core/httpd.h"
#include "core/selfmetrics.h"
#include "pipeline/item.h"
#include "pipeline/queue.h"

#include "loop_watchdog.h"

#define MAX_REQS 32
#define WATCHDOG_MS 20000

/* ---- the server ---- */

struct answer {
    int status;
    const char *ctype;
    const char *headers;
    const char *body;
    size_t body_len; /* 0: strlen(body) */
};

struct seen_req {
    char path[256];
    char ctype[128];
    char encoding[64];
    char user_agent[128];
    char tenant[64];
    uint8_t *body;
    size_t body_len;
};

static lk_httpd *server;
static int port;
static bool server_closed;
static struct answer script[MAX_REQS];
static int nscript;
static struct seen_req reqs[MAX_REQS];
static int nreqs;
static bool hold;
static lk_httpd_req *held;

static void copy_header(lk_httpd_req *req, const char *name, char *out, size_t n)
{
    const char *v = lk_httpd_req_header(req, name);
    snprintf(out, n, "%s", v != NULL ? v : "");
}

static void handler(lk_httpd_req *req, void *arg)
{
    ck_assert_int_lt(nreqs, MAX_REQS);
    int i = nreqs++;
    struct seen_req *s = &reqs[i];
    snprintf(s->path, sizeof(s->path), "%s", lk_httpd_req_path(req));
    copy_header(req, "content-type", s->ctype, sizeof(s->ctype));
    copy_header(req, "content-encoding", s->encoding, sizeof(s->encoding));
    copy_header(req, "user-agent", s->user_agent, sizeof(s->user_agent));
    copy_header(req, "x-scope-orgid", s->tenant, sizeof(s->tenant));
    size_t blen;
    const uint8_t *body = lk_httpd_req_body(req, &blen);
    s->body = malloc(blen + 1);
    if (blen > 0)
        memcpy(s->body, body, blen);
    s->body_len = blen;
    if (hold) {
        held = req;
        return;
    }
    struct answer a = i < nscript ? script[i] : (struct answer){.status = 200};
    size_t len = a.body == NULL ? 0 : a.body_len != 0 ? a.body_len : strlen(a.body);
    lk_httpd_respond(req, a.status, a.ctype, a.headers, a.body, len);
}

/* ---- fixture ---- */

static lk_metrics *M;
static struct lk_exporter_config EC;
static struct lk_queue_config QC;
static struct lk_batch_config BC;
static char endpoint[128];
static lk_exporter *exp_;
static bool exp_closed;

static void on_server_closed(void *arg)
{
    server_closed = true;
}

static void on_exp_closed(void *arg)
{
    exp_closed = true;
}

static void setup(void)
{
    loop_start(WATCHDOG_MS);
    memset(script, 0, sizeof(script));
    nscript = 0;
    nreqs = 0;
    hold = false;
    held = NULL;
    server_closed = false;
    exp_ = NULL;
    exp_closed = false;
    struct lk_httpd_opts o = {.endpoint = "127.0.0.1:0", .name = "sink"};
    ck_assert_int_eq(lk_httpd_create(&server, &loop, &o, handler, NULL), 0);
    port = lk_httpd_port(server);
    M = lk_metrics_create();
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", port);
    memset(&EC, 0, sizeof(EC));
    EC.name = "otlphttp/t";
    EC.type = LK_EXPORTER_OTLPHTTP;
    EC.endpoint = endpoint;
    EC.timeout_ms = 10000;
    EC.compression = LK_COMPRESSION_NONE;
    EC.retry = (struct lk_retry_config){.enabled = true, .initial_interval_ms = 1,
                                        .max_interval_ms = 5,
                                        .max_elapsed_time_ms = 0,
                                        .multiplier = 2,
                                        .randomization_factor = 0.5};
    EC.max_concurrency = 2;
    QC = (struct lk_queue_config){.queue_size = 1000, .max_bytes = 1 << 20,
                                  .overflow = LK_OVERFLOW_REFUSE};
    BC = (struct lk_batch_config){.send_batch_size = 100,
                                  .send_batch_max_bytes = 1 << 20,
                                  .timeout_ms = 1};
}

static void close_exporter(void)
{
    if (exp_ == NULL || exp_closed)
        return;
    exp_->ops->close(exp_, on_exp_closed, NULL);
    RUN_UNTIL(exp_closed);
}

static void teardown(void)
{
    close_exporter();
    if (held != NULL)
        lk_httpd_respond(held, 200, NULL, NULL, NULL, 0);
    lk_httpd_close(server, on_server_closed, NULL);
    RUN_UNTIL(server_closed);
    loop_finish();
    lk_metrics_destroy(M);
    for (int i = 0; i < nreqs; i++)
        free(reqs[i].body);
}

static void make_exporter(void)
{
    ck_assert_int_eq(lk_otlphttp_exporter_create(&exp_, &loop, &EC), 0);
    ck_assert_str_eq(exp_->name, "otlphttp/t");
    ck_assert_ptr_eq(exp_->ops, &lk_otlphttp_exporter_ops);
}

static lk_queue *make_queue(enum lk_signal sig)
{
    lk_queue *q;
    struct lk_queue_opts o = {.signal = sig, .queue = &QC, .batch = &BC,
                              .retry = &EC.retry, .max_concurrency = 1};
    ck_assert_int_eq(lk_queue_create(&q, &loop, &o, exp_, M), 0);
    return q;
}

static void push(lk_queue *q, enum lk_signal sig, const char *body, uint32_t count)
{
    lk_item *it = lk_item_create(sig, count, uv_now(&loop), (const uint8_t *)body,
                                 strlen(body));
    ck_assert_ptr_nonnull(it);
    ck_assert_int_eq(lk_queue_push(q, it), 0);
    lk_item_unref(it);
}

static void finish(lk_queue *q)
{
    RUN_UNTIL(lk_queue_held_items(q) == 0);
    lk_queue_destroy(q);
}

static uint64_t counter(const char *name, const char *labels)
{
    return lk_counter_value(lk_metrics_counter(M, name, "", labels));
}

static uint64_t sent_spans(void)
{
    return counter("lookout_exporter_sent_spans_total", "exporter=\"otlphttp/t\"");
}

static uint64_t dropped(const char *signal, const char *reason)
{
    char labels[256];
    snprintf(labels, sizeof(labels),
             "signal=\"%s\",reason=\"%s\",exporter=\"otlphttp/t\"", signal, reason);
    return counter("lookout_dropped_items_total", labels);
}

static uint64_t retries(void)
{
    return counter("lookout_exporter_retries_total",
                   "exporter=\"otlphttp/t\",signal=\"traces\"");
}

/* Two ExportTraceServiceRequest bodies, each one resource_spans (field 1),
 * whose concatenation is one request with both. */
static const char ITEM_A[] = "\x0a\x05" "aaaaa";
static const char ITEM_B[] = "\x0a\x03" "bbb";

/* ---- tests through the queue ---- */

START_TEST(ok_counts_sent_and_shapes_request)
{
    struct lk_header h[] = {{"X-Scope-OrgID", "tenant-7"}};
    EC.headers = h;
    EC.nheaders = 1;
    make_exporter();
    lk_queue *q = make_queue(LK_SIGNAL_TRACES);
    push(q, LK_SIGNAL_TRACES, ITEM_A, 3);
    push(q, LK_SIGNAL_TRACES, ITEM_B, 2);
    finish(q);
    ck_assert_uint_eq(sent_spans(), 5);
    ck_assert_int_eq(nreqs, 1);
    ck_assert_str_eq(reqs[0].path, "/v1/traces");
    ck_assert_str_eq(reqs[0].ctype, "application/x-protobuf");
    ck_assert_str_eq(reqs[0].encoding, "");
    ck_assert_str_eq(reqs[0].user_agent, "lookout/" LK_VERSION);
    ck_assert_str_eq(reqs[0].tenant, "tenant-7");
    ck_assert_uint_eq(reqs[0].body_len, 12);
    ck_assert_mem_eq(reqs[0].body, "\x0a\x05" "aaaaa" "\x0a\x03" "bbb", 12);
}
END_TEST

START_TEST(retry_after_then_ok_delivers_once)
{
    script[0] = (struct answer){.status = 503, .ctype = "text/plain",
                                .headers = "Retry-After: 1\r\n", .body = "later"};
    nscript = 1;
    make_exporter();
    lk_queue *q = make_queue(LK_SIGNAL_TRACES);
    push(q, LK_SIGNAL_TRACES, ITEM_A, 4);
    finish(q);
    ck_assert_int_eq(nreqs, 2);
    ck_assert_uint_eq(retries(), 1);
    ck_assert_uint_eq(sent_spans(), 4);
    ck_assert_uint_eq(reqs[1].body_len, reqs[0].body_len);
    ck_assert_mem_eq(reqs[1].body, reqs[0].body, reqs[0].body_len);
}
END_TEST

START_TEST(throttling_statuses_retry)
{
    script[0] = (struct answer){.status = 429, .headers = "Retry-After: 0\r\n"};
    script[1] = (struct answer){.status = 502};
    script[2] = (struct answer){.status = 504};
    nscript = 3;
    make_exporter();
    lk_queue *q = make_queue(LK_SIGNAL_TRACES);
    push(q, LK_SIGNAL_TRACES, ITEM_A, 1);
    finish(q);
    ck_assert_int_eq(nreqs, 4);
    ck_assert_uint_eq(retries(), 3);
    ck_assert_uint_eq(sent_spans(), 1);
}
END_TEST

/* google.rpc.Status { code: 3, message: "span 2 has no trace id" } */
static const char STATUS_PB[] = "\x08\x03\x12\x16" "span 2 has no trace id";

START_TEST(bad_request_dropped_with_reason)
{
    script[0] = (struct answer){.status = 400, .ctype = "application/x-protobuf",
                                .body = STATUS_PB, .body_len = sizeof(STATUS_PB) - 1};
    nscript = 1;
    make_exporter();
    lk_queue *q = make_queue(LK_SIGNAL_TRACES);
    push(q, LK_SIGNAL_TRACES, ITEM_A, 6);
    finish(q);
    ck_assert_int_eq(nreqs, 1);
    ck_assert_uint_eq(sent_spans(), 0);
    ck_assert_uint_eq(retries(), 0);
    ck_assert_uint_eq(dropped("traces", "http_400"), 6);
    ck_assert_uint_eq(counter("lookout_exporter_send_failed_spans_total",
                              "exporter=\"otlphttp/t\""), 6);
}
END_TEST

START_TEST(server_error_500_is_permanent)
{
    script[0] = (struct answer){.status = 500, .ctype = "text/plain", .body = "boom"};
    nscript = 1;
    make_exporter();
    lk_queue *q = make_queue(LK_SIGNAL_TRACES);
    push(q, LK_SIGNAL_TRACES, ITEM_A, 2);
    finish(q);
    ck_assert_int_eq(nreqs, 1);
    ck_assert_uint_eq(dropped("traces", "http_500"), 2);
}
END_TEST

START_TEST(partial_success_counts_as_sent)
{
    /* ExportTraceServiceResponse { partial_success { rejected_spans: 1,
     * error_message: "dup" } } */
    static const char resp[] = "\x0a\x07\x08\x01\x12\x03" "dup";
    script[0] = (struct answer){.status = 200, .ctype = "application/x-protobuf",
                                .body = resp, .body_len = sizeof(resp) - 1};
    nscript = 1;
    make_exporter();
    lk_queue *q = make_queue(LK_SIGNAL_TRACES);
    push(q, LK_SIGNAL_TRACES, ITEM_A, 3);
    finish(q);
    ck_assert_uint_eq(sent_spans(), 3);
}
END_TEST

/* Sends ITEM_A and ITEM_B with |comp|: one request whose Content-Encoding
 * is |encoding|, two spans counted as sent. */
static void send_two_items(enum lk_compression comp, const char *encoding)
{
    EC.compression = comp;
    make_exporter();
    lk_queue *q = make_queue(LK_SIGNAL_TRACES);
    push(q, LK_SIGNAL_TRACES, ITEM_A, 1);
    push(q, LK_SIGNAL_TRACES, ITEM_B, 1);
    finish(q);
    ck_assert_int_eq(nreqs, 1);
    ck_assert_str_eq(reqs[0].encoding, encoding);
    ck_assert_str_eq(reqs[0].ctype, "application/x-protobuf");
    ck_assert_uint_eq(sent_spans(), 2);
}

START_TEST(gzip_body_inflates_to_the_batch)
{
    send_two_items(LK_COMPRESSION_GZIP, "gzip");
    lk_buf out;
    lk_buf_init(&out, 1 << 20);
    ck_assert_int_eq(lk_gzip_inflate(reqs[0].body, reqs[0].body_len, 1 << 20, 0, &out), 0);
    ck_assert_uint_eq(out.len, 12);
    ck_assert_mem_eq(out.data, "\x0a\x05" "aaaaa" "\x0a\x03" "bbb", 12);
    lk_buf_fini(&out);
}
END_TEST

/* A span of |n| 'a's: large enough to be compressed on the thread pool. */
static char *big_span(size_t n)
{
    char *b = malloc(n + 8);
    size_t h = 0;
    b[h++] = 0x0a;
    for (size_t v = n; v >= 0x80; v >>= 7)
        b[h++] = (char)(v | 0x80);
    for (size_t v = n; ; v >>= 7)
        if (v < 0x80) {
            b[h++] = (char)v;
            break;
        }
    memset(b + h, 'a', n);
    b[h + n] = '\0';
    return b;
}

/* A 100000-byte span, then ITEM_B, with |comp| at |level|: one request
 * (compressed on the thread pool) whose Content-Encoding is |encoding|, and
 * small. Returns the body expected after decompression (free it), its
 * length in |*n|. */
static char *send_large_batch(enum lk_compression comp, uint32_t level, const char *encoding,
                              size_t *n)
{
    EC.compression = comp;
    EC.compression_level = level;
    make_exporter();
    lk_queue *q = make_queue(LK_SIGNAL_TRACES);
    char *span = big_span(100000);
    size_t len = strlen(span);
    push(q, LK_SIGNAL_TRACES, span, 1);
    push(q, LK_SIGNAL_TRACES, ITEM_B, 1);
    finish(q);
    ck_assert_int_eq(nreqs, 1);
    ck_assert_str_eq(reqs[0].encoding, encoding);
    ck_assert_uint_lt(reqs[0].body_len, 10000);
    ck_assert_uint_eq(sent_spans(), 2);
    char *want = malloc(len + sizeof(ITEM_B));
    memcpy(want, span, len);
    memcpy(want + len, ITEM_B, sizeof(ITEM_B) - 1);
    *n = len + sizeof(ITEM_B) - 1;
    free(span);
    return want;
}

START_TEST(large_gzip_body_off_the_loop)
{
    size_t n;
    char *want = send_large_batch(LK_COMPRESSION_GZIP, 1, "gzip", &n);
    lk_buf out;
    lk_buf_init(&out, 1 << 20);
    ck_assert_int_eq(lk_gzip_inflate(reqs[0].body, reqs[0].body_len, 1 << 20, 0, &out), 0);
    ck_assert_uint_eq(out.len, n);
    ck_assert_mem_eq(out.data, want, n);
    lk_buf_fini(&out);
    free(want);
}
END_TEST

/* Decompresses a zstd frame with libzstd's own one-shot decoder; the frame
 * states its content size. */
static void assert_zstd_body(const uint8_t *z, size_t zlen, const void *want, size_t n)
{
    ck_assert_uint_eq(ZSTD_getFrameContentSize(z, zlen), n);
    uint8_t *out = malloc(n + 1);
    size_t got = ZSTD_decompress(out, n + 1, z, zlen);
    ck_assert_msg(!ZSTD_isError(got), "%s", ZSTD_getErrorName(got));
    ck_assert_uint_eq(got, n);
    ck_assert_mem_eq(out, want, n);
    free(out);
}

START_TEST(zstd_body_decompresses_to_the_batch)
{
    send_two_items(LK_COMPRESSION_ZSTD, "zstd");
    assert_zstd_body(reqs[0].body, reqs[0].body_len, "\x0a\x05" "aaaaa" "\x0a\x03" "bbb", 12);
}
END_TEST

/* zstd goes the same way as gzip: large bodies on the thread pool. */
START_TEST(large_zstd_body_off_the_loop)
{
    size_t n;
    char *want = send_large_batch(LK_COMPRESSION_ZSTD, 19, "zstd", &n);
    assert_zstd_body(reqs[0].body, reqs[0].body_len, want, n);
    free(want);
}
END_TEST

/* Closed while a body is being compressed: the batch ends (dropped, as the
 * queue was aborted) and the exporter is freed only after the work is done. */
START_TEST(close_while_compressing)
{
    EC.compression = LK_COMPRESSION_GZIP;
    EC.compression_level = 9;
    make_exporter();
    lk_queue *q = make_queue(LK_SIGNAL_TRACES);
    char *span = big_span(200000); /* the work is queued by the push, still pending at close */
    push(q, LK_SIGNAL_TRACES, span, 1);
    lk_queue_abort(q);
    exp_->ops->close(exp_, on_exp_closed, NULL);
    RUN_UNTIL(exp_closed);
    ck_assert_uint_eq(lk_queue_held_items(q), 0);
    ck_assert_uint_eq(nreqs, 0);
    lk_queue_destroy(q);
    free(span);
}
END_TEST

START_TEST(url_path_per_signal)
{
    char base[160], logs_url[160];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/otlp/", port);
    snprintf(logs_url, sizeof(logs_url), "http://127.0.0.1:%d/custom/logs", port);
    EC.endpoint = base;
    EC.signal_endpoints[LK_SIGNAL_LOGS] = logs_url;
    make_exporter();
    lk_queue *qt = make_queue(LK_SIGNAL_TRACES);
    push(qt, LK_SIGNAL_TRACES, ITEM_A, 1);
    finish(qt);
    lk_queue *qm = make_queue(LK_SIGNAL_METRICS);
    push(qm, LK_SIGNAL_METRICS, ITEM_A, 1);
    finish(qm);
    lk_queue *ql = make_queue(LK_SIGNAL_LOGS);
    push(ql, LK_SIGNAL_LOGS, ITEM_A, 1);
    finish(ql);
    ck_assert_int_eq(nreqs, 3);
    ck_assert_str_eq(reqs[0].path, "/otlp/v1/traces");
    ck_assert_str_eq(reqs[1].path, "/otlp/v1/metrics");
    ck_assert_str_eq(reqs[2].path, "/custom/logs");
    ck_assert_uint_eq(counter("lookout_exporter_sent_metric_points_total",
                              "exporter=\"otlphttp/t\""), 1);
    ck_assert_uint_eq(counter("lookout_exporter_sent_log_records_total",
                              "exporter=\"otlphttp/t\""), 1);
}
END_TEST

START_TEST(signal_without_endpoint_dropped)
{
    char traces_url[160];
    snprintf(traces_url, sizeof(traces_url), "http://127.0.0.1:%d/t", port);
    EC.endpoint = NULL;
    EC.signal_endpoints[LK_SIGNAL_TRACES] = traces_url;
    make_exporter();
    lk_queue *q = make_queue(LK_SIGNAL_LOGS);
    push(q, LK_SIGNAL_LOGS, ITEM_A, 5);
    finish(q);
    ck_assert_int_eq(nreqs, 0);
    ck_assert_uint_eq(dropped("logs", "no_endpoint"), 5);
}
END_TEST

/* A port nobody listens on: bound, never listened, closed. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

START_TEST(connection_refused_retries_until_exhausted)
{
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", closed_port());
    EC.retry.max_elapsed_time_ms = 20;
    make_exporter();
    lk_queue *q = make_queue(LK_SIGNAL_TRACES);
    push(q, LK_SIGNAL_TRACES, ITEM_A, 3);
    finish(q);
    ck_assert_uint_ge(retries(), 1);
    ck_assert_uint_eq(sent_spans(), 0);
    ck_assert_uint_eq(dropped("traces", "retries_exhausted"), 3);
}
END_TEST

START_TEST(close_with_batch_in_flight)
{
    hold = true;
    make_exporter();
    lk_queue *q = make_queue(LK_SIGNAL_TRACES);
    push(q, LK_SIGNAL_TRACES, ITEM_A, 3);
    RUN_UNTIL(held != NULL);
    /* Shutdown order: the queue gives up on retries, then the exporter
     * closes and ends the attempt in flight. */
    lk_queue_abort(q);
    ck_assert_uint_eq(lk_queue_held_items(q), 3);
    exp_->ops->close(exp_, on_exp_closed, NULL);
    ck_assert_uint_eq(lk_queue_held_items(q), 0);
    ck_assert_uint_eq(dropped("traces", "shutdown"), 3);
    RUN_UNTIL(exp_closed);
    lk_queue_destroy(q);
}
END_TEST

/* ---- creation ---- */

START_TEST(create_refuses_bad_config)
{
    lk_exporter *e;
    EC.endpoint = NULL;
    ck_assert_int_eq(lk_otlphttp_exporter_create(&e, &loop, &EC), LK_EINVAL);
    EC.endpoint = "127.0.0.1:4318";
    ck_assert_int_eq(lk_otlphttp_exporter_create(&e, &loop, &EC), LK_EINVAL);
    EC.endpoint = endpoint;
    struct lk_header bad[] = {{"X-A", "a\r\nb"}};
    EC.headers = bad;
    EC.nheaders = 1;
    ck_assert_int_eq(lk_otlphttp_exporter_create(&e, &loop, &EC), LK_EINVAL);
    EC.headers = NULL;
    EC.nheaders = 0;
    EC.tls.enabled = true;
    EC.tls.ca_file = "/nonexistent/ca.pem";
    ck_assert_int_eq(lk_otlphttp_exporter_create(&e, &loop, &EC), LK_EIO);
}
END_TEST

/* ---- pure functions ---- */

START_TEST(classify_follows_the_spec)
{
    ck_assert_int_eq(lk_otlphttp_classify(200), LK_EXPORT_OK);
    ck_assert_int_eq(lk_otlphttp_classify(202), LK_EXPORT_OK);
    ck_assert_int_eq(lk_otlphttp_classify(0), LK_EXPORT_RETRY);
    ck_assert_int_eq(lk_otlphttp_classify(429), LK_EXPORT_RETRY);
    ck_assert_int_eq(lk_otlphttp_classify(502), LK_EXPORT_RETRY);
    ck_assert_int_eq(lk_otlphttp_classify(503), LK_EXPORT_RETRY);
    ck_assert_int_eq(lk_otlphttp_classify(504), LK_EXPORT_RETRY);
    ck_assert_int_eq(lk_otlphttp_classify(400), LK_EXPORT_PERMANENT);
    ck_assert_int_eq(lk_otlphttp_classify(401), LK_EXPORT_PERMANENT);
    ck_assert_int_eq(lk_otlphttp_classify(404), LK_EXPORT_PERMANENT);
    ck_assert_int_eq(lk_otlphttp_classify(413), LK_EXPORT_PERMANENT);
    ck_assert_int_eq(lk_otlphttp_classify(500), LK_EXPORT_PERMANENT);
    ck_assert_int_eq(lk_otlphttp_classify(301), LK_EXPORT_PERMANENT);
}
END_TEST

START_TEST(error_message_from_status_or_text)
{
    char out[64];
    ck_assert(lk__otlphttp_error_message((const uint8_t *)STATUS_PB,
                                         sizeof(STATUS_PB) - 1,
                                         "application/x-protobuf", out, sizeof(out)));
    ck_assert_str_eq(out, "span 2 has no trace id");
    /* Truncated to the output size. */
    char small[5];
    ck_assert(lk__otlphttp_error_message((const uint8_t *)STATUS_PB,
                                         sizeof(STATUS_PB) - 1,
                                         "application/protobuf", small, sizeof(small)));
    ck_assert_str_eq(small, "span");
    /* Malformed protobuf: nothing. */
    ck_assert(!lk__otlphttp_error_message((const uint8_t *)"\x12\x50" "ab", 4,
                                          "application/x-protobuf", out, sizeof(out)));
    ck_assert_str_eq(out, "");
    /* Text: the first 200 bytes. */
    char text[300], big[512];
    memset(text, 'e', sizeof(text));
    ck_assert(lk__otlphttp_error_message((const uint8_t *)text, sizeof(text),
                                         "text/plain", big, sizeof(big)));
    ck_assert_uint_eq(strlen(big), 200);
    ck_assert(lk__otlphttp_error_message((const uint8_t *)"nope", 4, "", out,
                                         sizeof(out)));
    ck_assert_str_eq(out, "nope");
    ck_assert(!lk__otlphttp_error_message(NULL, 0, "text/plain", out, sizeof(out)));
}
END_TEST

START_TEST(partial_success_parsing)
{
    uint64_t rejected;
    char msg[64];
    static const char one[] = "\x0a\x07\x08\x01\x12\x03" "dup";
    ck_assert_int_eq(lk__otlphttp_partial_success((const uint8_t *)one,
                                                  sizeof(one) - 1, &rejected,
                                                  msg, sizeof(msg)),
                     1);
    ck_assert_uint_eq(rejected, 1);
    ck_assert_str_eq(msg, "dup");

    /* A multi-byte length, a large varint and an unknown field before it. */
    uint8_t buf[400];
    size_t n = 0;
    buf[n++] = 0x10; /* field 2 varint: unknown, skipped */
    buf[n++] = 0x05;
    buf[n++] = 0x0a; /* field 1, length 3 + 5 + 3 + 200 = 211 */
    buf[n++] = 0xd3;
    buf[n++] = 0x01;
    buf[n++] = 0x08;
    buf[n++] = 0xac; /* 300 */
    buf[n++] = 0x02;
    buf[n++] = 0x1d; /* field 3 fixed32: skipped */
    memset(buf + n, 0, 4);
    n += 4;
    buf[n++] = 0x12;
    buf[n++] = 0xc8; /* 200 */
    buf[n++] = 0x01;
    memset(buf + n, 'm', 200);
    n += 200;
    ck_assert_uint_eq(n, 5 + 211);
    ck_assert_int_eq(lk__otlphttp_partial_success(buf, n, &rejected, msg, sizeof(msg)), 1);
    ck_assert_uint_eq(rejected, 300);
    ck_assert_uint_eq(strlen(msg), sizeof(msg) - 1);

    /* Absent, empty, malformed. */
    ck_assert_int_eq(lk__otlphttp_partial_success((const uint8_t *)"", 0, &rejected,
                                                  msg, sizeof(msg)),
                     0);
    ck_assert_int_eq(lk__otlphttp_partial_success((const uint8_t *)"\x10\x01", 2,
                                                  &rejected, msg, sizeof(msg)),
                     0);
    ck_assert_int_eq(lk__otlphttp_partial_success((const uint8_t *)"\x0a\x09\x08", 3,
                                                  &rejected, msg, sizeof(msg)),
                     -1);
    ck_assert_int_eq(lk__otlphttp_partial_success((const uint8_t *)"\x0a\x02\x08\x80", 4,
                                                  &rejected, msg, sizeof(msg)),
                     -1);
    ck_assert_int_eq(lk__otlphttp_partial_success((const uint8_t *)"\x0f", 1,
                                                  &rejected, msg, sizeof(msg)),
                     -1);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("otlp_http");
    struct {
        const char *name;
        const TTest *t;
    } cases[] = {
        {"ok", ok_counts_sent_and_shapes_request},
        {"retry_after", retry_after_then_ok_delivers_once},
        {"throttling", throttling_statuses_retry},
        {"bad_request", bad_request_dropped_with_reason},
        {"server_error", server_error_500_is_permanent},
        {"partial_success", partial_success_counts_as_sent},
        {"gzip", gzip_body_inflates_to_the_batch},
        {"gzip_off_loop", large_gzip_body_off_the_loop},
        {"zstd", zstd_body_decompresses_to_the_batch},
        {"zstd_off_loop", large_zstd_body_off_the_loop},
        {"close_compressing", close_while_compressing},
        {"url_paths", url_path_per_signal},
        {"no_endpoint", signal_without_endpoint_dropped},
        {"refused", connection_refused_retries_until_exhausted},
        {"close_in_flight", close_with_batch_in_flight},
        {"create", create_refuses_bad_config},
        {"classify", classify_follows_the_spec},
        {"error_message", error_message_from_status_or_text},
        {"partial_success_parse", partial_success_parsing},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *t = tcase_create(cases[i].name);
        tcase_add_checked_fixture(t, setup, teardown);
        tcase_add_test(t, cases[i].t);
        suite_add_tcase(s, t);
    }
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* A proxy from the environment must not take our loopback requests. */
    setenv("no_proxy", "*", 1);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
