/*
 * The OTLP/gRPC exporter behind a real lk_queue, against the gRPC C core test
 * server (grpc_test_server.h) on its own thread. The loop runs until the
 * queue holds nothing; a watchdog turns a hang into a failure. What is
 * checked is what the server received: the message, whether it came
 * compressed (the compressed flag with grpc-encoding: gzip) and, gunzipped,
 * that it is the batch.
 */
#include "exporters/otlp.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/err.h"
#include "core/selfmetrics.h"
#include "pipeline/item.h"
#include "pipeline/queue.h"

#include "grpc_test_server.h"
#include "loop_watchdog.h"

#define WATCHDOG_MS 20000

static struct srv srv;
static char target[64];
static lk_metrics *M;
static struct lk_exporter_config EC;
static struct lk_queue_config QC;
static struct lk_batch_config BC;
static lk_exporter *exp_;
static bool exp_closed;

static void on_exp_closed(void *arg)
{
    exp_closed = true;
}

static void setup(void)
{
    loop_start(WATCHDOG_MS);
    exp_ = NULL;
    exp_closed = false;
    srv_start(&srv);
    snprintf(target, sizeof(target), "127.0.0.1:%d", srv.port);
    M = lk_metrics_create();
    memset(&EC, 0, sizeof(EC));
    EC.name = "otlp/t";
    EC.type = LK_EXPORTER_OTLP;
    EC.endpoint = target;
    EC.timeout_ms = 10000;
    EC.compression = LK_COMPRESSION_GZIP;
    EC.compression_level = 1;
    EC.retry = (struct lk_retry_config){.enabled = true, .initial_interval_ms = 1,
                                        .max_interval_ms = 5, .multiplier = 2,
                                        .randomization_factor = 0.5};
    QC = (struct lk_queue_config){.queue_size = 1000, .max_bytes = 1 << 20,
                                  .overflow = LK_OVERFLOW_REFUSE};
    BC = (struct lk_batch_config){.send_batch_size = 100,
                                  .send_batch_max_bytes = 1 << 20, .timeout_ms = 1};
}

static void teardown(void)
{
    if (exp_ != NULL && !exp_closed) {
        exp_->ops->close(exp_, on_exp_closed, NULL);
        RUN_UNTIL(exp_closed);
    }
    loop_finish();
    lk_metrics_destroy(M);
    srv_stop(&srv);
}

static lk_queue *start(void)
{
    lk_queue *q;
    struct lk_queue_opts o = {.signal = LK_SIGNAL_TRACES, .queue = &QC, .batch = &BC,
                              .retry = &EC.retry, .max_concurrency = 1};
    ck_assert_int_eq(lk_otlp_exporter_create(&exp_, &loop, &EC), 0);
    ck_assert_int_eq(lk_queue_create(&q, &loop, &o, exp_, M), 0);
    return q;
}

static void push(lk_queue *q, const char *body, size_t len)
{
    lk_item *it = lk_item_create(LK_SIGNAL_TRACES, 1, uv_now(&loop), (const uint8_t *)body, len);
    ck_assert_ptr_nonnull(it);
    ck_assert_int_eq(lk_queue_push(q, it), 0);
    lk_item_unref(it);
}

static uint64_t sent_spans(void)
{
    return lk_counter_value(lk_metrics_counter(M, "lookout_exporter_sent_spans_total", "",
                                               "exporter=\"otlp/t\""));
}

/* One span of |n| bytes of |c| as an ExportTraceServiceRequest body
 * (resource_spans, field 1, holding |n| bytes). */
static char *span_body(size_t n, char c, size_t *len)
{
    char *b = malloc(n + 8);
    size_t h = 0;
    b[h++] = 0x0a;
    for (size_t v = n;; v >>= 7) {
        b[h++] = (char)(v >= 0x80 ? (v & 0x7f) | 0x80 : v);
        if (v < 0x80)
            break;
    }
    memset(b + h, c, n);
    *len = h + n;
    return b;
}

/* Runs |q| dry and checks what the server got last: |want|, compressed as
 * |compression| says. */
static void finish_and_check(lk_queue *q, const char *want, size_t want_len,
                             int compression, int ncalls)
{
    RUN_UNTIL(lk_queue_held_items(q) == 0);
    lk_queue_destroy(q);
    uv_mutex_lock(&srv.lock);
    ck_assert_int_eq(srv.ncalls, ncalls);
    ck_assert_str_eq(srv.method, "/opentelemetry.proto.collector.trace.v1.TraceService/Export");
    ck_assert_int_eq(srv.body_compression, compression);
    ck_assert_uint_eq(srv.body_len, want_len);
    ck_assert_mem_eq(srv.body, want, want_len);
    uv_mutex_unlock(&srv.lock);
}

START_TEST(plain_when_compression_none)
{
    EC.compression = LK_COMPRESSION_NONE;
    lk_queue *q = start();
    push(q, "\x0a\x02" "ab", 4);
    push(q, "\x0a\x01" "c", 3);
    finish_and_check(q, "\x0a\x02" "ab" "\x0a\x01" "c", 7, GRPC_COMPRESS_NONE, 1);
    ck_assert_uint_eq(sent_spans(), 2);
}
END_TEST

/* A small batch, compressed on the loop, at the configured level. */
START_TEST(small_batch_gzipped_once)
{
    EC.compression_level = 9;
    lk_queue *q = start();
    push(q, "\x0a\x02" "ab", 4);
    push(q, "\x0a\x01" "c", 3);
    finish_and_check(q, "\x0a\x02" "ab" "\x0a\x01" "c", 7, GRPC_COMPRESS_GZIP, 1);
}
END_TEST

/* 64 KiB or more: compressed on the thread pool, the call started after. */
START_TEST(large_batch_gzipped_off_the_loop)
{
    size_t la, lb;
    char *a = span_body(70000, 'a', &la), *b = span_body(30000, 'b', &lb);
    char *both = malloc(la + lb);
    memcpy(both, a, la);
    memcpy(both + la, b, lb);
    lk_queue *q = start();
    push(q, a, la);
    push(q, b, lb);
    finish_and_check(q, both, la + lb, GRPC_COMPRESS_GZIP, 1);
    ck_assert_uint_eq(sent_spans(), 2);
    free(a);
    free(b);
    free(both);
}
END_TEST

/* Refused twice (UNAVAILABLE): the third attempt delivers the same message,
 * from the compressed copy the batch keeps. */
START_TEST(retries_send_the_kept_message)
{
    size_t n;
    char *a = span_body(100000, 'r', &n);
    srv.fail_first = 2;
    srv.fail_status = GRPC_STATUS_UNAVAILABLE;
    srv.fail_message = "not now";
    lk_queue *q = start();
    push(q, a, n);
    finish_and_check(q, a, n, GRPC_COMPRESS_GZIP, 3);
    ck_assert_uint_eq(sent_spans(), 1);
    free(a);
}
END_TEST

/* Closed while a batch is being compressed on the pool: the batch ends
 * (dropped, the queue was aborted), nothing is sent, and the exporter is
 * freed only after the work is done (ASan would see a use after free). */
START_TEST(close_while_compressing)
{
    size_t n;
    char *a = span_body(400000, 'z', &n);
    EC.compression_level = 9;
    BC.send_batch_size = 1; /* the push cuts the batch: its send queues the work */
    lk_queue *q = start();
    push(q, a, n);
    lk_queue_abort(q);
    exp_->ops->close(exp_, on_exp_closed, NULL);
    RUN_UNTIL(exp_closed);
    ck_assert_uint_eq(lk_queue_held_items(q), 0);
    lk_queue_destroy(q);
    uv_mutex_lock(&srv.lock);
    ck_assert_int_eq(srv.ncalls, 0);
    uv_mutex_unlock(&srv.lock);
    free(a);
}
END_TEST

/* An exporter that never sent closes without ever setting gRPC up. */
START_TEST(close_before_any_export)
{
    ck_assert_int_eq(lk_otlp_exporter_create(&exp_, &loop, &EC), 0);
    exp_->ops->close(exp_, on_exp_closed, NULL);
    ck_assert(!exp_closed); /* later, on the loop */
    RUN_UNTIL(exp_closed);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("otlp");
    TCase *t = tcase_create("export");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, plain_when_compression_none);
    tcase_add_test(t, small_batch_gzipped_once);
    tcase_add_test(t, large_batch_gzipped_off_the_loop);
    tcase_add_test(t, retries_send_the_kept_message);
    tcase_add_test(t, close_while_compressing);
    tcase_add_test(t, close_before_any_export);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? 0 : 1;
}
