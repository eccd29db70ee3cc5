/*
 * The loop of a unit test file that runs it until a condition holds, with a
 * watchdog timer that turns a hang into a failure (nothing asserts on
 * elapsed time). One per test file: |loop| and the watchdog are the file's.
 */
#ifndef LK_TEST_LOOP_WATCHDOG_H
#define LK_TEST_LOOP_WATCHDOG_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

static uv_loop_t loop;
static uv_timer_t watchdog;
static bool watchdog_fired;

static void on_watchdog(uv_timer_t *t)
{
    watchdog_fired = true;
}

/* Inits |loop| and arms the watchdog for |ms|. */
static void loop_start(uint64_t ms)
{
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(uv_timer_init(&loop, &watchdog), 0);
    ck_assert_int_eq(uv_timer_start(&watchdog, on_watchdog, ms, 0), 0);
    watchdog_fired = false;
}

/* Closes the watchdog, runs the loop out and closes it: every other handle
 * must be closed by now. */
static void loop_finish(void)
{
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}

/* Runs the loop until |cond| holds; the watchdog keeps the loop alive and
 * ends a hang. */
#define RUN_UNTIL(cond)                                                        \
    do {                                                                       \
        while (!(cond)) {                                                      \
            ck_assert_msg(!watchdog_fired, "watchdog: " #cond);                \
            uv_run(&loop, UV_RUN_ONCE);                                        \
        }                                                                      \
    } while (0)

#endif
