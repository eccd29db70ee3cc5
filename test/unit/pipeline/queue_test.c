/* Queue, batcher and retry behaviour against a scripted exporter on a real
 * libuv loop. No wall-clock assertions: the loop runs until a condition. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/err.h"
#include "core/membudget.h"
#include "core/selfmetrics.h"
#include "pipeline/pipeline.h"
#include "pipeline/queue.h"

#define MAX_CALLS 64

/* A fake exporter: records each attempt and answers from a script, from a
 * zero-delay timer so that lk_batch_done never runs inside send(). */
struct fake {
    lk_exporter base;
    uv_loop_t *loop;
    enum lk_export_result script[MAX_CALLS];
    int nscript;
    int calls;
    int inflight;
    int max_inflight;
    bool hold; /* keep batches pending until released */
    lk_batch *pending[MAX_CALLS];
    int npending;
    char sent[MAX_CALLS][256]; /* concatenated body of each attempt */
    size_t sent_len[MAX_CALLS];
    uint64_t sent_items[MAX_CALLS];
    uv_timer_t timer;
};

static void fake_answer(struct fake *f)
{
    while (f->npending > 0) {
        lk_batch *b = f->pending[0];
        memmove(f->pending, f->pending + 1, (size_t)--f->npending * sizeof(b));
        int idx = f->calls - f->npending - 1;
        enum lk_export_result r = idx < f->nscript ? f->script[idx] : LK_EXPORT_OK;
        f->inflight--;
        lk_batch_done(b, r, -1, r == LK_EXPORT_PERMANENT ? "invalid_argument" : "unavailable");
    }
}

static void fake_timer(uv_timer_t *t)
{
    fake_answer(t->data);
}

static int fake_send(lk_exporter *e, lk_batch *b)
{
    struct fake *f = (struct fake *)e;
    const struct iovec *iov;
    size_t n, total;
    ck_assert_int_lt(f->calls, MAX_CALLS);
    lk_batch_iov(b, &iov, &n, &total);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_le(off + iov[i].iov_len, sizeof(f->sent[0]));
        memcpy(f->sent[f->calls] + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    ck_assert_uint_eq(off, total);
    f->sent_len[f->calls] = off;
    f->sent_items[f->calls] = lk_batch_items(b);
    f->calls++;
    f->inflight++;
    if (f->inflight > f->max_inflight)
        f->max_inflight = f->inflight;
    f->pending[f->npending++] = b;
    if (!f->hold)
        uv_timer_start(&f->timer, fake_timer, 0, 0);
    return 0;
}

static void fake_close(lk_exporter *e, void (*done)(void *), void *arg)
{
    if (done)
        done(arg);
}

static const struct lk_exporter_ops fake_ops = {"fake", fake_send, fake_close};

static uv_loop_t loop;
static struct fake F;
static lk_metrics *M;
static struct lk_queue_config QC;
static struct lk_batch_config BC;
static struct lk_retry_config RC;

static void setup(void)
{
    uv_loop_init(&loop);
    memset(&F, 0, sizeof(F));
    F.base.ops = &fake_ops;
    F.base.name = "fake/x";
    F.loop = &loop;
    uv_timer_init(&loop, &F.timer);
    F.timer.data = &F;
    M = lk_metrics_create();
    QC = (struct lk_queue_config){.queue_size = 1000, .max_bytes = 1 << 20,
                                  .overflow = LK_OVERFLOW_REFUSE};
    BC = (struct lk_batch_config){.send_batch_size = 10,
                                  .send_batch_max_bytes = 1 << 20,
                                  .timeout_ms = 20};
    RC = (struct lk_retry_config){.enabled = true, .initial_interval_ms = 1,
                                  .max_interval_ms = 5, .max_elapsed_time_ms = 0,
                                  .multiplier = 2, .randomization_factor = 0.5};
}

static void teardown(void)
{
    uv_close((uv_handle_t *)&F.timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    lk_metrics_destroy(M);
}

static lk_queue *make_queue(uint32_t concurrency)
{
    lk_queue *q;
    struct lk_queue_opts o = {.signal = LK_SIGNAL_TRACES, .queue = &QC,
                              .batch = &BC, .retry = &RC,
                              .max_concurrency = concurrency};
    ck_assert_int_eq(lk_queue_create(&q, &loop, &o, &F.base, M), 0);
    return q;
}

static lk_item *item(const char *body, uint32_t count)
{
    return lk_item_create(LK_SIGNAL_TRACES, count, uv_now(&loop),
                          (const uint8_t *)body, strlen(body));
}

static void push(lk_queue *q, const char *body, uint32_t count)
{
    lk_item *it = item(body, count);
    ck_assert_int_eq(lk_queue_push(q, it), 0);
    lk_item_unref(it);
}

static uint64_t counter(const char *name, const char *labels)
{
    return lk_counter_value(lk_metrics_counter(M, name, "", labels));
}

/* Runs the loop until the queue holds nothing. NOWAIT, because ONCE would
 * block in poll until the next timer even after the awaited event. */
static void run_until_empty(lk_queue *q)
{
    while (lk_queue_held_items(q) > 0)
        uv_run(&loop, UV_RUN_NOWAIT);
}

static void finish(lk_queue *q)
{
    run_until_empty(q);
    lk_queue_destroy(q);
}

START_TEST(batches_cut_by_size_in_order)
{
    lk_queue *q = make_queue(4);
    push(q, "aaaa", 4);
    push(q, "bbbb", 4);
    ck_assert_int_eq(F.calls, 0); /* 8 < 10, waiting for more or the timeout */
    push(q, "cc", 4);             /* 12 >= 10: a batch of 8 goes now */
    ck_assert_int_eq(F.calls, 1);
    ck_assert_uint_eq(F.sent_items[0], 8);
    ck_assert_uint_eq(F.sent_len[0], 8);
    ck_assert_mem_eq(F.sent[0], "aaaabbbb", 8);
    run_until_empty(q); /* the rest leaves on the timeout */
    ck_assert_int_eq(F.calls, 2);
    ck_assert_mem_eq(F.sent[1], "cc", 2);
    ck_assert_uint_eq(counter("lookout_exporter_sent_spans_total", "exporter=\"fake/x\""), 12);
    lk_queue_destroy(q);
}
END_TEST

START_TEST(batch_cut_by_bytes)
{
    BC.send_batch_max_bytes = 6;
    lk_queue *q = make_queue(4);
    push(q, "abc", 1);
    push(q, "def", 1);
    ck_assert_int_eq(F.calls, 1);
    ck_assert_uint_eq(F.sent_len[0], 6);
    push(q, "ghij", 1);
    push(q, "klm", 1); /* 7 bytes queued >= 6: "ghij" alone (adding klm exceeds) */
    ck_assert_int_eq(F.calls, 2);
    ck_assert_uint_eq(F.sent_len[1], 4);
    finish(q);
    ck_assert_int_eq(F.calls, 3);
    ck_assert_mem_eq(F.sent[2], "klm", 3);
}
END_TEST

START_TEST(single_item_leaves_on_timeout)
{
    lk_queue *q = make_queue(4);
    push(q, "x", 1);
    ck_assert_int_eq(F.calls, 0);
    finish(q);
    ck_assert_int_eq(F.calls, 1);
    ck_assert_uint_eq(F.sent_items[0], 1);
}
END_TEST

START_TEST(retry_then_success_sends_once)
{
    F.script[0] = LK_EXPORT_RETRY;
    F.script[1] = LK_EXPORT_RETRY;
    F.script[2] = LK_EXPORT_OK;
    F.nscript = 3;
    lk_queue *q = make_queue(1);
    push(q, "0123456789", 10);
    finish(q);
    ck_assert_int_eq(F.calls, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_mem_eq(F.sent[i], "0123456789", 10);
    ck_assert_uint_eq(counter("lookout_exporter_retries_total",
                              "exporter=\"fake/x\",signal=\"traces\""), 2);
    ck_assert_uint_eq(counter("lookout_exporter_sent_spans_total", "exporter=\"fake/x\""), 10);
    ck_assert_uint_eq(counter("lookout_exporter_send_failed_spans_total",
                              "exporter=\"fake/x\""), 0);
}
END_TEST

START_TEST(permanent_error_drops_and_counts)
{
    F.script[0] = LK_EXPORT_PERMANENT;
    F.nscript = 1;
    lk_queue *q = make_queue(1);
    push(q, "0123456789", 10);
    finish(q);
    ck_assert_int_eq(F.calls, 1);
    ck_assert_uint_eq(counter("lookout_exporter_send_failed_spans_total",
                              "exporter=\"fake/x\""), 10);
    ck_assert_uint_eq(counter("lookout_dropped_items_total",
                              "signal=\"traces\",reason=\"invalid_argument\","
                              "exporter=\"fake/x\""), 10);
}
END_TEST

START_TEST(retries_exhausted_drop)
{
    RC.max_elapsed_time_ms = 3;
    RC.initial_interval_ms = 2;
    for (int i = 0; i < MAX_CALLS; i++)
        F.script[i] = LK_EXPORT_RETRY;
    F.nscript = MAX_CALLS;
    lk_queue *q = make_queue(1);
    push(q, "0123456789", 10);
    finish(q);
    ck_assert_int_ge(F.calls, 1);
    ck_assert_uint_eq(counter("lookout_dropped_items_total",
                              "signal=\"traces\",reason=\"retries_exhausted\","
                              "exporter=\"fake/x\""), 10);
}
END_TEST

START_TEST(concurrency_bound_holds)
{
    lk_queue *q = make_queue(2);
    for (int i = 0; i < 8; i++)
        push(q, "0123456789", 10); /* each fills a batch */
    ck_assert_int_eq(F.calls, 2);  /* two in flight, six waiting */
    finish(q);
    ck_assert_int_eq(F.calls, 8);
    ck_assert_int_eq(F.max_inflight, 2);
}
END_TEST

START_TEST(full_queue_refuses_and_counts)
{
    QC.queue_size = 25;
    F.hold = true;
    lk_queue *q = make_queue(1);
    push(q, "0123456789", 10);
    push(q, "0123456789", 10);
    ck_assert(lk_queue_has_room(q, 5, 10));
    ck_assert(!lk_queue_has_room(q, 6, 10));
    lk_item *it = item("0123456789", 10);
    ck_assert_int_eq(lk_queue_push(q, it), LK_EAGAIN);
    lk_item_unref(it);
    ck_assert_uint_eq(lk_queue_held_items(q), 20);
    ck_assert_uint_eq(counter("lookout_dropped_items_total",
                              "signal=\"traces\",reason=\"queue_full\","
                              "exporter=\"fake/x\""), 10);
    F.hold = false;
    uv_timer_start(&F.timer, fake_timer, 0, 0);
    finish(q);
}
END_TEST

START_TEST(pipeline_refuses_without_partial_fanout)
{
    QC.queue_size = 10;
    F.hold = true;
    lk_queue *a = make_queue(1), *b = make_queue(1);
    lk_queue *qs[] = {a, b};
    lk_pipeline *p;
    ck_assert_int_eq(lk_pipeline_create(&p, LK_SIGNAL_TRACES, qs, 2), 0);
    lk_item *it = item("0123456789", 10);
    ck_assert_int_eq(lk_pipeline_submit(p, it), 0);
    ck_assert_uint_eq(lk_queue_held_items(a), 10);
    ck_assert_uint_eq(lk_queue_held_items(b), 10);
    ck_assert_uint_eq(it->refs, 3); /* shared, not copied */
    ck_assert_int_eq(lk_pipeline_submit(p, it), LK_EAGAIN);
    ck_assert_uint_eq(lk_queue_held_items(a), 10);
    ck_assert_uint_eq(lk_queue_held_items(b), 10);
    lk_item_unref(it);
    F.hold = false;
    uv_timer_start(&F.timer, fake_timer, 0, 0);
    run_until_empty(a);
    run_until_empty(b);
    lk_queue_destroy(a);
    lk_queue_destroy(b);
    lk_pipeline_destroy(p);
}
END_TEST

START_TEST(pipeline_refuses_or_drops_while_the_memory_budget_is_spent)
{
    F.hold = true;
    lk_queue *a = make_queue(1);
    QC.overflow = LK_OVERFLOW_DROP;
    lk_queue *b = make_queue(1);
    lk_queue *qs[] = {a, b};
    lk_pipeline *p;
    ck_assert_int_eq(lk_pipeline_create(&p, LK_SIGNAL_TRACES, qs, 2), 0);
    lk_item *it = item("0123456789", 10);
    /* The item itself spends the budget: nothing is queued anywhere. */
    lk_mem_set_limit(lk_mem_used() - 1);
    ck_assert_int_eq(lk_pipeline_submit(p, it), LK_EMEMLIMIT);
    ck_assert_uint_eq(lk_queue_held_items(a) + lk_queue_held_items(b), 0);
    /* Only dropping queues: each drops its copy, counted by reason. */
    lk_pipeline *pd;
    ck_assert_int_eq(lk_pipeline_create(&pd, LK_SIGNAL_TRACES, &qs[1], 1), 0);
    ck_assert_int_eq(lk_pipeline_submit(pd, it), 0);
    ck_assert_uint_eq(lk_queue_held_items(b), 0);
    ck_assert_uint_eq(counter("lookout_dropped_items_total",
                              "signal=\"traces\",reason=\"memory_limit\","
                              "exporter=\"fake/x\""), 10);
    /* Room again: queued as usual. */
    lk_mem_set_limit(lk_mem_used());
    ck_assert_int_eq(lk_pipeline_submit(p, it), 0);
    ck_assert_uint_eq(lk_queue_held_items(a), 10);
    ck_assert_uint_eq(lk_queue_held_items(b), 10);
    lk_mem_set_limit(0);
    lk_item_unref(it);
    F.hold = false;
    uv_timer_start(&F.timer, fake_timer, 0, 0);
    run_until_empty(a);
    run_until_empty(b);
    lk_queue_destroy(a);
    lk_queue_destroy(b);
    lk_pipeline_destroy(p);
    lk_pipeline_destroy(pd);
}
END_TEST

static int drained;
static void on_drained(void *arg)
{
    drained++;
}

START_TEST(drain_flushes_without_waiting_for_timeout)
{
    BC.timeout_ms = 3600 * 1000;
    lk_queue *q = make_queue(1);
    push(q, "abc", 1);
    ck_assert_int_eq(F.calls, 0);
    drained = 0;
    lk_queue_drain(q, on_drained, NULL);
    ck_assert_int_eq(F.calls, 1);
    while (drained == 0)
        uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_uint_eq(lk_queue_held_items(q), 0);
    lk_queue_destroy(q);
}
END_TEST

START_TEST(abort_drops_backing_off_batches)
{
    RC.initial_interval_ms = 3600 * 1000; /* the retry would wait an hour */
    RC.max_interval_ms = 3600 * 1000;
    F.script[0] = LK_EXPORT_RETRY;
    F.nscript = 1;
    lk_queue *q = make_queue(1);
    push(q, "0123456789", 10);
    while (F.calls == 0 || F.npending > 0)
        uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_uint_eq(lk_queue_held_items(q), 10); /* backing off */
    push(q, "abc", 1);                              /* waiting behind it */
    drained = 0;
    lk_queue_drain(q, on_drained, NULL); /* resends at once: OK this time */
    while (drained == 0)
        uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_uint_eq(counter("lookout_exporter_sent_spans_total", "exporter=\"fake/x\""), 11);

    /* Now a batch that backs off and is aborted. */
    F.script[F.calls] = LK_EXPORT_RETRY;
    F.nscript = F.calls + 1;
    RC.enabled = true;
    lk_queue *q2 = make_queue(1);
    lk_queue_drain(q2, on_drained, NULL); /* drained at once: empty */
    lk_queue_destroy(q);
    push(q2, "zz", 2);
    while (F.npending > 0 || F.calls < F.nscript)
        uv_run(&loop, UV_RUN_NOWAIT);
    lk_queue_abort(q2);
    ck_assert_uint_eq(lk_queue_held_items(q2), 0);
    ck_assert_uint_eq(counter("lookout_dropped_items_total",
                              "signal=\"traces\",reason=\"shutdown\","
                              "exporter=\"fake/x\""), 2);
    lk_queue_destroy(q2);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("queue");
    TCase *t = tcase_create("batching");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, batches_cut_by_size_in_order);
    tcase_add_test(t, batch_cut_by_bytes);
    tcase_add_test(t, single_item_leaves_on_timeout);
    tcase_add_test(t, concurrency_bound_holds);
    suite_add_tcase(s, t);
    t = tcase_create("retry");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, retry_then_success_sends_once);
    tcase_add_test(t, permanent_error_drops_and_counts);
    tcase_add_test(t, retries_exhausted_drop);
    suite_add_tcase(s, t);
    t = tcase_create("limits");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, full_queue_refuses_and_counts);
    tcase_add_test(t, pipeline_refuses_without_partial_fanout);
    tcase_add_test(t, pipeline_refuses_or_drops_while_the_memory_budget_is_spent);
    suite_add_tcase(s, t);
    t = tcase_create("shutdown");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, drain_flushes_without_waiting_for_timeout);
    tcase_add_test(t, abort_drops_backing_off_batches);
    suite_add_tcase(s, t);
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
