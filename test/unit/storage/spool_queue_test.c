/* A queue on a real disk spool (SQLite in a temporary directory) with a
 * scripted exporter: spilling when the backend is down and sending in order
 * when it returns, parking at shutdown and sending after a restart, durable
 * acknowledgement after the commit, max_bytes. No wall-clock assertions:
 * the loop runs until a condition. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "core/err.h"
#include "core/selfmetrics.h"
#include "pipeline/ack.h"
#include "pipeline/queue.h"
#include "storage/spool.h"

/* An exporter that fails retryably while |down|, else takes the batch and
 * appends its bytes to |got|. Answers from a zero timer. */
struct fake {
    lk_exporter base;
    bool down;
    char got[64 * 1024];
    size_t got_len;
    uint64_t items;
    lk_batch *pending[256];
    int npending;
    uv_timer_t timer;
};

static uv_loop_t loop;
static struct fake F;
static lk_metrics *M;
static struct lk_queue_config QC;
static struct lk_batch_config BC;
static struct lk_retry_config RC;
static struct lk_storage_config SC;
static char dir[] = "/tmp/lookout-spool-test-XXXXXX";
static char path[256];

static void fake_timer(uv_timer_t *t)
{
    struct fake *f = t->data;
    while (f->npending > 0) {
        lk_batch *b = f->pending[--f->npending];
        if (f->down) {
            lk_batch_done(b, LK_EXPORT_RETRY, -1, "unavailable");
            continue;
        }
        const struct iovec *iov;
        size_t n, total;
        lk_batch_iov(b, &iov, &n, &total);
        for (size_t i = 0; i < n; i++) {
            ck_assert_uint_le(f->got_len + iov[i].iov_len, sizeof(f->got));
            memcpy(f->got + f->got_len, iov[i].iov_base, iov[i].iov_len);
            f->got_len += iov[i].iov_len;
        }
        f->items += lk_batch_items(b);
        lk_batch_done(b, LK_EXPORT_OK, -1, NULL);
    }
}

static int fake_send(lk_exporter *e, lk_batch *b)
{
    struct fake *f = (struct fake *)e;
    ck_assert_int_lt(f->npending, 256);
    f->pending[f->npending++] = b;
    uv_timer_start(&f->timer, fake_timer, 0, 0);
    return 0;
}

static void fake_close(lk_exporter *e, void (*done)(void *), void *arg)
{
    (void)e;
    if (done)
        done(arg);
}

static const struct lk_exporter_ops fake_ops = {"fake", fake_send, fake_close};

static void setup(void)
{
    strcpy(dir, "/tmp/lookout-spool-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/spool.db", dir);
    uv_loop_init(&loop);
    memset(&F, 0, sizeof(F));
    F.base.ops = &fake_ops;
    F.base.name = "fake/x";
    uv_timer_init(&loop, &F.timer);
    F.timer.data = &F;
    M = lk_metrics_create();
    QC = (struct lk_queue_config){.queue_size = 4, .max_bytes = 1 << 20,
                                  .overflow = LK_OVERFLOW_REFUSE};
    BC = (struct lk_batch_config){.send_batch_size = 2, .send_batch_max_bytes = 1 << 20,
                                  .timeout_ms = 1};
    RC = (struct lk_retry_config){.enabled = true, .initial_interval_ms = 1,
                                  .max_interval_ms = 2, .max_elapsed_time_ms = 10,
                                  .multiplier = 2, .randomization_factor = 0.5};
    SC = (struct lk_storage_config){.path = path, .max_bytes = 1 << 20};
}

static void teardown(void)
{
    uv_close((uv_handle_t *)&F.timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    lk_metrics_destroy(M);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static lk_spool *open_spool(void)
{
    lk_spool *s = NULL;
    char *err = NULL;
    ck_assert_int_eq(lk_spool_open(&s, &loop, &SC, M, &err), 0);
    ck_assert_ptr_null(err);
    return s;
}

static lk_queue *make_queue(lk_spool *s)
{
    lk_queue *q;
    struct lk_queue_opts o = {.signal = LK_SIGNAL_TRACES, .queue = &QC, .batch = &BC,
                              .retry = &RC, .max_concurrency = 1,
                              .spool = lk_spool_stream_get(s, "fake/x", LK_SIGNAL_TRACES)};
    ck_assert_int_eq(lk_queue_create(&q, &loop, &o, &F.base, M), 0);
    return q;
}

static int push_n(lk_queue *q, int from, int to)
{
    int taken = 0;
    for (int i = from; i < to; i++) {
        char body[8];
        snprintf(body, sizeof(body), "i%03d", i);
        lk_item *it = lk_item_create(LK_SIGNAL_TRACES, 1, uv_now(&loop),
                                     (const uint8_t *)body, 4);
        taken += lk_queue_push(q, it) == 0;
        lk_item_unref(it);
    }
    return taken;
}

static void expect_in_order(int n)
{
    ck_assert_uint_eq(F.items, (uint64_t)n);
    ck_assert_uint_eq(F.got_len, (size_t)n * 4);
    for (int i = 0; i < n; i++) {
        char want[8];
        snprintf(want, sizeof(want), "i%03d", i);
        ck_assert_msg(memcmp(F.got + 4 * i, want, 4) == 0, "item %d is %.4s", i, F.got + 4 * i);
    }
}

static double gauge(const char *name)
{
    return lk_gauge_value(lk_metrics_gauge(M, name, "", ""));
}

static bool flag;
static void set_flag(void *arg)
{
    (void)arg;
    flag = true;
}

/* Runs the loop until |cond| holds: NOWAIT spins while the spool's thread works. */
#define RUN_UNTIL(cond)                                                        \
    do {                                                                       \
        while (!(cond))                                                        \
            uv_run(&loop, UV_RUN_NOWAIT);                                      \
    } while (0)

/* Drains |q| (or parks it, as at shutdown), frees it and closes |s|. */
static void finish(lk_queue *q, lk_spool *s, bool park)
{
    flag = false;
    if (park)
        lk_queue_park(q, set_flag, NULL);
    else
        lk_queue_drain(q, set_flag, NULL);
    RUN_UNTIL(flag);
    lk_queue_destroy(q);
    lk_spool_close(s);
}

START_TEST(spills_while_down_and_sends_in_order)
{
    lk_spool *s = open_spool();
    lk_queue *q = make_queue(s);
    lk_spool_stream *st = lk_queue_spool(q);
    F.down = true;
    ck_assert_int_eq(push_n(q, 0, 60), 60); /* 4 fit in memory, the rest spill */
    RUN_UNTIL(lk_spool_stream_writing(st) == 0);
    ck_assert_uint_ge(lk_spool_stream_disk_rows(st), 50);
    ck_assert_uint_le(lk_queue_held_items(q), 4);
    /* Retries go on past max_elapsed_time (10 ms) with a spool: nothing dropped. */
    uv_sleep(30);
    for (int i = 0; i < 50; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    F.down = false;
    RUN_UNTIL(F.items == 60);
    expect_in_order(60);
    RUN_UNTIL(gauge("lookout_spool_bytes") == 0 && lk_queue_held_items(q) == 0);
    finish(q, s, false);
}
END_TEST

/* Appends while the queue reads back: a read and an append often share a
 * job, and the read sees the appended row; it must reach the exporter once
 * (a duplicate here was found by test_durability.py). */
START_TEST(appends_during_read_back_are_sent_once_in_order)
{
    SC.commit_interval_ms = 2; /* operations pile up into shared jobs */
    lk_spool *s = open_spool();
    lk_queue *q = make_queue(s);
    F.down = true; /* the first hundred spill */
    for (int i = 0; i < 400; i++) {
        if (i == 100)
            F.down = false;
        ck_assert_int_eq(push_n(q, i, i + 1), 1);
        for (int k = 0; k < 3; k++)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    RUN_UNTIL(F.items >= 400 && gauge("lookout_spool_bytes") == 0 &&
              lk_queue_held_items(q) == 0);
    expect_in_order(400);
    ck_assert_uint_gt(lk_counter_value(lk_metrics_counter(
                          M, "lookout_spool_read_batches_total", "",
                          "exporter=\"fake/x\",signal=\"traces\"")),
                      0); /* it did spill and read back */
    finish(q, s, false);
}
END_TEST

/* The spool's own contract, with a stand-in for the queue: a read and an
 * append in the same job (the read sees the row appended before it in that
 * transaction) give that row to the owner once. */
static int owner_got[8];
static bool owner_takes;

static bool owner_appended(void *owner, lk_item *it, int64_t row, int status)
{
    (void)owner;
    (void)row;
    if (status == 0 && owner_takes)
        owner_got[it->data[0] - '0']++;
    return status == 0 && owner_takes;
}

static void owner_read(void *owner, lk_item **items, const int64_t *rows, size_t n)
{
    (void)owner;
    (void)rows;
    for (size_t i = 0; i < n; i++) {
        owner_got[items[i]->data[0] - '0']++;
        lk_item_unref(items[i]);
    }
}

static const struct lk_spool_owner_ops owner_ops = {owner_appended, owner_read};

START_TEST(a_row_read_in_its_own_job_reaches_the_owner_once)
{
    lk_spool *s = open_spool();
    lk_spool_stream *st = lk_spool_stream_get(s, "fake/x", LK_SIGNAL_TRACES);
    memset(owner_got, 0, sizeof(owner_got));
    owner_takes = false; /* the first row stays on disk */
    lk_spool_stream_set_owner(st, &owner_ops, NULL);
    lk_item *one = lk_item_create(LK_SIGNAL_TRACES, 1, uv_now(&loop), (const uint8_t *)"1", 1);
    lk_spool_stream_append(st, one, NULL);
    RUN_UNTIL(lk_spool_stream_writing(st) == 0);
    ck_assert_uint_eq(lk_spool_stream_disk_rows(st), 1);
    owner_takes = true;
    /* Both go in the next job: the read first, then the append. */
    ck_assert(lk_spool_stream_read(st, 1 << 20));
    lk_item *two = lk_item_create(LK_SIGNAL_TRACES, 1, uv_now(&loop), (const uint8_t *)"2", 1);
    lk_spool_stream_append(st, two, NULL);
    RUN_UNTIL(lk_spool_stream_writing(st) == 0 && owner_got[2] > 0);
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(owner_got[1], 1);
    ck_assert_int_eq(owner_got[2], 1);
    ck_assert_uint_eq(lk_spool_stream_disk_rows(st), 0);
    lk_item_unref(one);
    lk_item_unref(two);
    lk_spool_stream_release_owner(st, NULL);
    lk_spool_stream_put(st);
    lk_spool_close(s);
}
END_TEST

START_TEST(parked_at_shutdown_and_sent_after_restart)
{
    lk_spool *s = open_spool();
    lk_queue *q = make_queue(s);
    F.down = true;
    ck_assert_int_eq(push_n(q, 0, 30), 30);
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT); /* some in flight, some backing off */
    finish(q, s, true); /* the spool writes what was parked */
    ck_assert_uint_eq(F.items, 0);

    F.down = false;
    s = open_spool();
    q = make_queue(s);
    RUN_UNTIL(F.items == 30);
    expect_in_order(30);
    RUN_UNTIL(gauge("lookout_spool_bytes") == 0);
    finish(q, s, false);
}
END_TEST

static int ack_status = 1;
static int acks_done;
static void ack_cb(void *arg, int status)
{
    (void)arg;
    ack_status = status;
    acks_done++;
}

/* Pushes |len| bytes as one item with an ack (answered through ack_cb). */
static void push_acked(lk_queue *q, const uint8_t *data, size_t len)
{
    lk_item *it = lk_item_create(LK_SIGNAL_TRACES, 1, uv_now(&loop), data, len);
    lk_ack *a = lk_ack_new(&loop, ack_cb, NULL);
    ck_assert_int_eq(lk_queue_push_acked(q, it, a), 0);
    lk_ack_seal(a);
    lk_item_unref(it);
}

/* The same, then runs the loop until the ack is answered. */
static void push_acked_wait(lk_queue *q, const uint8_t *data, size_t len)
{
    int before = acks_done;
    push_acked(q, data, len);
    RUN_UNTIL(acks_done > before);
}

START_TEST(durable_acknowledges_after_the_commit)
{
    SC.durable = true;
    lk_spool *s = open_spool();
    lk_queue *q = make_queue(s);
    push_acked(q, (const uint8_t *)"i000", 4);
    ck_assert_int_eq(acks_done, 0); /* not before the commit */
    ck_assert_uint_eq(F.items, 0);  /* nor sent */
    RUN_UNTIL(acks_done == 1);
    ck_assert_int_eq(ack_status, 0);
    ck_assert_uint_ge(lk_counter_value(lk_metrics_counter(M, "lookout_spool_commits_total", "", "")), 1);
    RUN_UNTIL(F.items == 1);
    expect_in_order(1);
    RUN_UNTIL(gauge("lookout_spool_bytes") == 0); /* deleted once sent */
    finish(q, s, false);
}
END_TEST

START_TEST(max_bytes_applies_the_overflow_policy)
{
    SC.max_bytes = 1 << 20;
    QC.queue_size = 1;
    lk_spool *s = open_spool();
    lk_queue *q = make_queue(s);
    F.down = true;
    static uint8_t big[200 * 1024];
    memset(big, 'x', sizeof(big));
    int taken = 0;
    for (int i = 0; i < 10; i++) {
        lk_item *it = lk_item_create(LK_SIGNAL_TRACES, 1, uv_now(&loop), big, sizeof(big));
        if (lk_queue_has_room(q, 1, sizeof(big)))
            taken += lk_queue_push(q, it) == 0;
        lk_item_unref(it);
    }
    /* One in memory, five in 1 MiB of spool, the rest refused. */
    ck_assert_int_eq(taken, 6);
    ck_assert(!lk_queue_has_room(q, 1, sizeof(big)));
    ck_assert_double_le(gauge("lookout_spool_bytes"), 1 << 20);
    finish(q, s, true);
}
END_TEST

/* A file-size limit (as a full disk): durable appends fail and are
 * refused, the spool takes nothing new, and once the limit is lifted it
 * takes appends again by itself (a second later). Check runs each test in
 * a child process, so the limit stays there. */
START_TEST(durable_write_failure_refuses_then_recovers)
{
    signal(SIGXFSZ, SIG_IGN);
    SC.durable = true;
    lk_spool *s = open_spool();
    lk_queue *q = make_queue(s);
    F.down = true; /* nothing is deleted: the file only grows */
    static uint8_t big[64 * 1024];
    memset(big, 'y', sizeof(big));
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = 512 * 1024;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    ack_status = 0;
    int pushed = 0;
    while (ack_status == 0) {
        ck_assert_int_lt(pushed, 100);
        push_acked_wait(q, big, sizeof(big));
        pushed++;
    }
    ck_assert_int_eq(ack_status, LK_EFULL);
    ck_assert_double_eq(gauge("lookout_spool_accepting"), 0);
    ck_assert(!lk_queue_has_room(q, 1, sizeof(big)));
    ck_assert_uint_ge(lk_counter_value(lk_metrics_counter(M, "lookout_spool_write_errors_total",
                                                          "", "reason=\"disk_full\"")),
                      1);
    rl.rlim_cur = rl.rlim_max;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    RUN_UNTIL(lk_queue_has_room(q, 1, sizeof(big))); /* the retry timer */
    push_acked_wait(q, big, sizeof(big));
    ck_assert_int_eq(ack_status, 0);
    ck_assert_double_eq(gauge("lookout_spool_accepting"), 1);
    finish(q, s, true);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("spool_queue");
    TCase *tc = tcase_create("spool_queue");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, spills_while_down_and_sends_in_order);
    tcase_add_test(tc, appends_during_read_back_are_sent_once_in_order);
    tcase_add_test(tc, a_row_read_in_its_own_job_reaches_the_owner_once);
    tcase_add_test(tc, parked_at_shutdown_and_sent_after_restart);
    tcase_add_test(tc, durable_acknowledges_after_the_commit);
    tcase_add_test(tc, max_bytes_applies_the_overflow_policy);
    tcase_add_test(tc, durable_write_failure_refuses_then_recovers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
