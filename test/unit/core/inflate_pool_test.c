/*
 * lk_inflate_pool: bodies inflated on libuv's thread pool, at most
 * LK_INFLATE_MAX_RUNNING at once, the rest waiting in order; withdrawing a
 * waiting job, ending every waiting one, and the idle state a closing owner
 * waits for. libuv's threads are held by "blockers" (work that waits on a
 * semaphore) where a test needs jobs to stay put; nothing asserts on time.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/gzip.h"
#include "core/inflate_pool.h"
#include "pool_hold.h"

#define NJOBS 10

static uv_loop_t loop;
static lk_inflate_pool pool;

struct tjob {
    struct lk_inflate_job job; /* first */
    int index;
    int done_calls;
    int rc;
    size_t out_len;
    bool out_ok;
};

static struct tjob jobs[NJOBS];
static int ndone;
static unsigned max_running_seen;
static const uint8_t *want;
static size_t want_len;

static void on_done(struct lk_inflate_job *j)
{
    struct tjob *t = (struct tjob *)j;
    t->done_calls++;
    t->rc = j->rc;
    t->out_len = j->out.len;
    t->out_ok = j->rc == 0 && j->out.len == want_len && memcmp(j->out.data, want, want_len) == 0;
    lk_buf_fini(&j->out);
    ndone++;
    /* This job no longer counts; the ones started in its place do. */
    if (pool.running > max_running_seen)
        max_running_seen = pool.running;
}

/* ---- fixtures ---- */

static lk_buf plain, gz;

static void setup(void)
{
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    lk_inflate_pool_init(&pool, &loop);
    memset(jobs, 0, sizeof(jobs));
    ndone = 0;
    max_running_seen = 0;
    /* 256 KiB of text that compresses, but not to nothing. */
    lk_buf_init(&plain, SIZE_MAX);
    uint32_t x = 12345;
    while (plain.len < 256 * 1024) {
        x = x * 1103515245u + 12345u;
        char ch = (char)('a' + (x >> 16) % 26);
        ck_assert_int_eq(lk_buf_append(&plain, &ch, 1), 0);
    }
    lk_buf_init(&gz, SIZE_MAX);
    ck_assert_int_eq(lk_gzip_deflate(plain.data, plain.len, &gz), 0);
    want = plain.data;
    want_len = plain.len;
}

static void teardown(void)
{
    uv_run(&loop, UV_RUN_DEFAULT);
    lk_inflate_pool_fini(&pool);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    lk_buf_fini(&plain);
    lk_buf_fini(&gz);
}

static void fill(int i, const uint8_t *in, size_t n, size_t max)
{
    jobs[i].index = i;
    jobs[i].job.in = in;
    jobs[i].job.in_len = n;
    jobs[i].job.max = max;
    jobs[i].job.raw_zlib = false;
    jobs[i].job.done = on_done;
}

static void submit(int i)
{
    ck_assert_int_eq(lk_inflate_pool_submit(&pool, &jobs[i].job), 0);
}

/* Submits jobs[from..to) of the gzip'd text. */
static void submit_range(int from, int to)
{
    for (int i = from; i < to; i++) {
        fill(i, gz.data, gz.len, 1 << 20);
        submit(i);
    }
}

/* ---- tests ---- */

START_TEST(threshold)
{
    ck_assert(!lk_inflate_pool_wants(0));
    ck_assert(!lk_inflate_pool_wants(LK_INFLATE_OFFLOOP_BYTES - 1));
    ck_assert(lk_inflate_pool_wants(LK_INFLATE_OFFLOOP_BYTES));
}
END_TEST

START_TEST(every_job_ends_once_with_its_output)
{
    for (int i = 0; i < NJOBS; i++) {
        fill(i, gz.data, gz.len, 1 << 20);
        submit(i);
        /* Never from within submit. */
        ck_assert_int_eq(jobs[i].done_calls, 0);
    }
    ck_assert_uint_eq(pool.running, LK_INFLATE_MAX_RUNNING);
    ck_assert(!lk_inflate_pool_is_idle(&pool));
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(ndone, NJOBS);
    for (int i = 0; i < NJOBS; i++) {
        ck_assert_int_eq(jobs[i].done_calls, 1);
        ck_assert_msg(jobs[i].out_ok, "job %d: rc %d, %zu bytes", i, jobs[i].rc,
                      jobs[i].out_len);
    }
    ck_assert_uint_le(max_running_seen, LK_INFLATE_MAX_RUNNING);
    ck_assert(lk_inflate_pool_is_idle(&pool));
}
END_TEST

START_TEST(errors_come_back_as_inflate_returns_them)
{
    static const uint8_t junk[] = "not gzip at all";
    fill(0, gz.data, gz.len, plain.len - 1);   /* over the cap: a bomb */
    fill(1, gz.data, gz.len - 8, 1 << 20);     /* truncated */
    fill(2, junk, sizeof(junk), 1 << 20);      /* corrupt */
    fill(3, gz.data, gz.len, plain.len);       /* exactly at the cap */
    for (int i = 0; i < 4; i++)
        submit(i);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(jobs[0].rc, LK_E2BIG);
    ck_assert_int_eq(jobs[1].rc, LK_EPROTO);
    ck_assert_int_eq(jobs[2].rc, LK_EPROTO);
    ck_assert_int_eq(jobs[3].rc, 0);
    ck_assert(jobs[3].out_ok);
}
END_TEST

START_TEST(waiting_jobs_start_as_threads_free)
{
    pool_hold(&loop);
    submit_range(0, NJOBS);
    uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(ndone, 0); /* the threads are held */
    pool_release();
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(pool_blockers_done, POOL_THREADS);
    ck_assert_int_eq(ndone, NJOBS);
    for (int i = 0; i < NJOBS; i++)
        ck_assert(jobs[i].out_ok);
    ck_assert_uint_le(max_running_seen, LK_INFLATE_MAX_RUNNING);
}
END_TEST

START_TEST(cancel_withdraws_a_waiting_job_only)
{
    pool_hold(&loop);
    submit_range(0, 6);
    /* 0..3 are with libuv, 4 and 5 wait. */
    ck_assert(!lk_inflate_pool_cancel(&pool, &jobs[1].job));
    ck_assert(lk_inflate_pool_cancel(&pool, &jobs[5].job));
    ck_assert(lk_inflate_pool_cancel(&pool, &jobs[4].job));
    ck_assert(!lk_inflate_pool_cancel(&pool, &jobs[4].job)); /* not there any more */
    submit_range(6, 7); /* the list is still well formed */
    pool_release();
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(ndone, 5);
    ck_assert_int_eq(jobs[4].done_calls, 0);
    ck_assert_int_eq(jobs[5].done_calls, 0);
    ck_assert(jobs[6].out_ok);
    ck_assert(lk_inflate_pool_is_idle(&pool));
}
END_TEST

START_TEST(cancel_all_ends_the_waiting_ones_at_once)
{
    pool_hold(&loop);
    submit_range(0, 7);
    lk_inflate_pool_cancel_all(&pool);
    ck_assert_int_eq(ndone, 3);
    for (int i = 4; i < 7; i++) {
        ck_assert_int_eq(jobs[i].done_calls, 1);
        ck_assert_int_eq(jobs[i].rc, LK_ECANCELED);
        ck_assert_uint_eq(jobs[i].out_len, 0);
    }
    ck_assert(!lk_inflate_pool_is_idle(&pool)); /* four still on threads */
    pool_release();
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(ndone, 7);
    for (int i = 0; i < 4; i++)
        ck_assert(jobs[i].out_ok);
    ck_assert(lk_inflate_pool_is_idle(&pool));
}
END_TEST

static uint8_t *kept_data[NJOBS];

static void on_done_recycle(struct lk_inflate_job *j)
{
    struct tjob *t = (struct tjob *)j;
    t->done_calls++;
    t->out_ok = j->rc == 0 && j->out.len == want_len && memcmp(j->out.data, want, want_len) == 0;
    kept_data[t->index] = j->out.data;
    lk_inflate_pool_recycle(&pool, &j->out);
    ck_assert_ptr_null(j->out.data);
    ndone++;
}

START_TEST(output_buffers_are_reused)
{
    /* One at a time: each job gets the buffer the one before gave back. */
    for (int i = 0; i < 3; i++) {
        fill(i, gz.data, gz.len, 1 << 20);
        jobs[i].job.done = on_done_recycle;
        submit(i);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert(jobs[i].out_ok);
    }
    ck_assert_ptr_eq(kept_data[1], kept_data[0]);
    ck_assert_ptr_eq(kept_data[2], kept_data[0]);
    /* Another cap (a reload changed the limit): a buffer of its own. */
    fill(3, gz.data, gz.len, 2 << 20);
    jobs[3].job.done = on_done_recycle;
    submit(3);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert(jobs[3].out_ok);
    /* No more than LK_INFLATE_MAX_RUNNING are kept; one over
     * LK_INFLATE_KEEP_BYTES is not. */
    lk_buf big;
    lk_buf_init(&big, SIZE_MAX);
    ck_assert_int_eq(lk_buf_reserve(&big, LK_INFLATE_KEEP_BYTES + 1), 0);
    lk_inflate_pool_recycle(&pool, &big);
    ck_assert_ptr_null(big.data);
    ck_assert_uint_le(pool.nspare, LK_INFLATE_MAX_RUNNING);
    for (int i = 0; i < LK_INFLATE_MAX_RUNNING + 2; i++) {
        lk_buf b;
        lk_buf_init(&b, 1 << 20);
        ck_assert_int_eq(lk_buf_reserve(&b, 1000), 0);
        lk_inflate_pool_recycle(&pool, &b);
    }
    ck_assert_uint_eq(pool.nspare, LK_INFLATE_MAX_RUNNING);
}
END_TEST

/* The owner is freed from the last |done|, as a closing receiver is: the
 * pool must not touch itself afterwards (ASan would see it). */
struct owner {
    lk_inflate_pool pool;
    struct lk_inflate_job jobs[6];
    int left;
};

static struct owner *the_owner;

static void owner_done(struct lk_inflate_job *j)
{
    lk_buf_fini(&j->out);
    if (--the_owner->left == 0) {
        ck_assert(lk_inflate_pool_is_idle(&the_owner->pool));
        lk_inflate_pool_fini(&the_owner->pool);
        free(the_owner);
        the_owner = NULL;
    } else {
        ck_assert(!lk_inflate_pool_is_idle(&the_owner->pool));
    }
}

START_TEST(the_last_done_may_free_the_pool)
{
    the_owner = calloc(1, sizeof(*the_owner));
    ck_assert_ptr_nonnull(the_owner);
    lk_inflate_pool_init(&the_owner->pool, &loop);
    the_owner->left = 6;
    for (int i = 0; i < 6; i++) {
        struct lk_inflate_job *j = &the_owner->jobs[i];
        j->in = gz.data;
        j->in_len = gz.len;
        j->max = 1 << 20;
        j->done = owner_done;
        ck_assert_int_eq(lk_inflate_pool_submit(&the_owner->pool, j), 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_ptr_null(the_owner);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("inflate_pool");
    TCase *t = tcase_create("pool");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_checked_fixture(t, NULL, pool_unhold);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, threshold);
    tcase_add_test(t, every_job_ends_once_with_its_output);
    tcase_add_test(t, errors_come_back_as_inflate_returns_them);
    tcase_add_test(t, waiting_jobs_start_as_threads_free);
    tcase_add_test(t, cancel_withdraws_a_waiting_job_only);
    tcase_add_test(t, cancel_all_ends_the_waiting_ones_at_once);
    tcase_add_test(t, output_buffers_are_reused);
    tcase_add_test(t, the_last_done_may_free_the_pool);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    pool_hold_setup();
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
