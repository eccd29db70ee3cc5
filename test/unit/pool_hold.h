/*
 * Holding libuv's thread pool in a unit test: every thread of it blocked on
 * a semaphore until pool_release, so that work queued meanwhile stays
 * queued. main() calls pool_hold_setup() before libuv first uses the pool
 * (it fixes the pool's size). Header-only; one test file includes it.
 */
#ifndef LK_TEST_POOL_HOLD_H
#define LK_TEST_POOL_HOLD_H

#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <uv.h>

#define POOL_THREADS 4 /* UV_THREADPOOL_SIZE while the test runs */

static uv_sem_t pool_sem;
static uv_work_t pool_blockers[POOL_THREADS];
static bool pool_held;
static int pool_blockers_done; /* blockers whose completion ran on the loop */

static void pool_hold_setup(void)
{
    setenv("UV_THREADPOOL_SIZE", "4", 1);
    if (uv_sem_init(&pool_sem, 0) != 0)
        abort();
}

static void pool_block_work(uv_work_t *w)
{
    (void)w;
    uv_sem_wait(&pool_sem);
}

static void pool_block_done(uv_work_t *w, int status)
{
    (void)w;
    (void)status;
    pool_blockers_done++;
}

/* Occupies every thread of the pool of |loop| until pool_release. */
static void pool_hold(uv_loop_t *loop)
{
    pool_blockers_done = 0;
    for (int i = 0; i < POOL_THREADS; i++)
        ck_assert_int_eq(uv_queue_work(loop, &pool_blockers[i], pool_block_work,
                                       pool_block_done), 0);
    pool_held = true;
}

static void pool_release(void)
{
    pool_held = false;
    for (int i = 0; i < POOL_THREADS; i++)
        uv_sem_post(&pool_sem);
}

/* A teardown: after a failed test (CK_FORK=no goes on in the same process),
 * threads still held would stall every later test. */
static void pool_unhold(void)
{
    if (pool_held)
        pool_release();
}

#endif
