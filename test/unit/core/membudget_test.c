/* The memory budget (core/membudget.h) and the buffers and items charged to
 * it: what is charged is released exactly, strict growth stops at the limit,
 * and a spent budget makes the pipeline refuse or drop, counted. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/gzip.h"
#include "core/membudget.h"
#include "pipeline/item.h"

START_TEST(try_stops_at_the_limit_charge_does_not)
{
    size_t base = lk_mem_used();
    lk_mem_set_limit(base + 1000);
    ck_assert(lk_mem_try(LK_MEM_RECEIVERS, 600));
    ck_assert_uint_eq(lk_mem_available(), 400);
    ck_assert(!lk_mem_try(LK_MEM_RECEIVERS, 401));
    ck_assert(lk_mem_try(LK_MEM_QUEUES, 400));
    ck_assert(lk_mem_full());
    ck_assert(!lk_mem_try(LK_MEM_QUEUES, 1));
    lk_mem_charge(LK_MEM_EXPORTERS, 500); /* past the limit */
    ck_assert_uint_eq(lk_mem_used(), base + 1500);
    ck_assert_uint_eq(lk_mem_available(), 0);
    ck_assert_uint_ge(lk_mem_peak(), base + 1500);
    ck_assert_uint_eq(lk_mem_used_by(LK_MEM_EXPORTERS), 500);
    lk_mem_release(LK_MEM_EXPORTERS, 500);
    lk_mem_release(LK_MEM_QUEUES, 400);
    lk_mem_release(LK_MEM_RECEIVERS, 600);
    ck_assert_uint_eq(lk_mem_used(), base);
    ck_assert(!lk_mem_full());
    lk_mem_set_limit(0); /* no limit: try always charges */
    ck_assert(lk_mem_try(LK_MEM_RECEIVERS, (size_t)1 << 40));
    ck_assert_uint_eq(lk_mem_available(), SIZE_MAX);
    lk_mem_release(LK_MEM_RECEIVERS, (size_t)1 << 40);
    ck_assert_str_eq(lk_mem_kind_name(LK_MEM_SERIES), "series");
}
END_TEST

START_TEST(a_strict_buffer_fails_at_the_limit_and_releases_everything)
{
    size_t base = lk_mem_used();
    lk_mem_set_limit(base + 10000);
    lk_buf b;
    lk_buf_init(&b, SIZE_MAX);
    lk_buf_charge(&b, LK_MEM_RECEIVERS, true);
    uint8_t chunk[1000];
    memset(chunk, 'x', sizeof(chunk));
    int rc = 0;
    size_t n = 0;
    while ((rc = lk_buf_append(&b, chunk, sizeof(chunk))) == 0)
        n++;
    ck_assert_int_eq(rc, LK_EMEMLIMIT);
    /* Doubling stops short of the limit, then exactly what is needed fits. */
    ck_assert_uint_eq(n, 10);
    ck_assert_uint_eq(b.len, 10000);
    ck_assert_uint_eq(lk_mem_used(), base + b.cap);
    ck_assert_uint_eq(lk_mem_used_by(LK_MEM_RECEIVERS), b.cap);
    lk_buf_shrink(&b, 0); /* keeps what it holds */
    ck_assert_uint_eq(b.cap, 10000);
    lk_buf_reset(&b);
    lk_buf_shrink(&b, 4096);
    ck_assert_uint_eq(b.cap, 4096);
    ck_assert_uint_eq(lk_mem_used(), base + 4096);
    lk_buf_fini(&b);
    ck_assert_uint_eq(lk_mem_used(), base);
    /* The charge stays with the buffer after fini: it grows charged again. */
    ck_assert_int_eq(lk_buf_append(&b, chunk, 10), 0);
    ck_assert_uint_eq(lk_mem_used(), base + b.cap);
    /* A reload's new cap keeps the charge (and the strictness). */
    lk_buf_fini(&b);
    lk_buf_set_max(&b, 5000);
    ck_assert_int_eq(lk_buf_append(&b, chunk, 10), 0);
    ck_assert_uint_eq(lk_mem_used(), base + b.cap);
    ck_assert_uint_eq(b.max, 5000);
    size_t len;
    uint8_t *p = lk_buf_detach(&b, &len);
    ck_assert_uint_eq(lk_mem_used(), base); /* the caller owns it, uncharged */
    free(p);
}
END_TEST

START_TEST(a_lenient_buffer_grows_past_the_limit_charged)
{
    size_t base = lk_mem_used();
    lk_mem_set_limit(base + 100);
    lk_buf b;
    lk_buf_init(&b, SIZE_MAX);
    lk_buf_charge(&b, LK_MEM_EXPORTERS, false);
    uint8_t chunk[1000] = {0};
    ck_assert_int_eq(lk_buf_append(&b, chunk, sizeof(chunk)), 0);
    ck_assert_uint_eq(lk_mem_used_by(LK_MEM_EXPORTERS), b.cap);
    ck_assert(lk_mem_full());
    lk_buf_charge(&b, LK_MEM_NONE, false); /* uncharged from now on */
    ck_assert_uint_eq(lk_mem_used(), base);
    lk_buf_fini(&b);
    ck_assert_uint_eq(lk_mem_used(), base);
}
END_TEST

START_TEST(an_inflate_stops_at_the_budget)
{
    /* 4 MiB of zeros compress to a few KiB: a small bomb. */
    size_t big = 4u << 20;
    uint8_t *zeros = calloc(1, big);
    ck_assert_ptr_nonnull(zeros);
    lk_buf gz;
    lk_buf_init(&gz, SIZE_MAX);
    ck_assert_int_eq(lk_gzip_deflate(zeros, big, &gz), 0);
    free(zeros);
    size_t base = lk_mem_used();
    lk_mem_set_limit(base + (1u << 20));
    lk_buf out;
    lk_buf_init(&out, SIZE_MAX);
    lk_buf_charge(&out, LK_MEM_RECEIVERS, true);
    ck_assert_int_eq(lk_gzip_inflate(gz.data, gz.len, big, 0, &out), LK_EMEMLIMIT);
    ck_assert_uint_le(lk_mem_used(), base + (1u << 20));
    lk_buf_fini(&out);
    ck_assert_uint_eq(lk_mem_used(), base);
    lk_mem_set_limit(0);
    ck_assert_int_eq(lk_gzip_inflate(gz.data, gz.len, big, 0, &out), 0);
    ck_assert_uint_eq(out.len, big);
    lk_buf_fini(&out);
    lk_buf_fini(&gz);
    ck_assert_uint_eq(lk_mem_used(), base);
}
END_TEST

START_TEST(items_are_charged_once_until_their_last_reference)
{
    size_t base = lk_mem_used();
    uint8_t body[300] = {0};
    lk_item *it = lk_item_create(LK_SIGNAL_TRACES, 3, 0, body, sizeof(body));
    ck_assert_ptr_nonnull(it);
    size_t one = lk_mem_used() - base;
    ck_assert_uint_eq(one, LK_ITEM_HEADROOM + sizeof(body));
    ck_assert_uint_eq(lk_mem_used_by(LK_MEM_QUEUES), one);
    lk_item_ref(it); /* a second queue: no second charge */
    ck_assert_uint_eq(lk_mem_used(), base + one);
    lk_item_unref(it);
    ck_assert_uint_eq(lk_mem_used(), base + one);
    lk_item_empty(it);
    ck_assert_uint_eq(lk_mem_used(), base + LK_ITEM_HEADROOM);
    lk_item_unref(it);
    ck_assert_uint_eq(lk_mem_used(), base);

    /* Adopted: the buffer's charge becomes the item's. */
    lk_buf b;
    lk_buf_init(&b, SIZE_MAX);
    lk_buf_charge(&b, LK_MEM_RECEIVERS, true);
    ck_assert_int_eq(lk_buf_reserve(&b, 4000), 0);
    uint8_t room[LK_ITEM_HEADROOM] = {0};
    ck_assert_int_eq(lk_buf_append(&b, room, sizeof(room)), 0);
    ck_assert_int_eq(lk_buf_append(&b, body, sizeof(body)), 0);
    it = lk_item_adopt(&b, LK_SIGNAL_LOGS, 1, 0);
    ck_assert_ptr_nonnull(it);
    ck_assert_uint_eq(lk_mem_used_by(LK_MEM_RECEIVERS), 0);
    ck_assert_uint_eq(lk_mem_used(), base + LK_ITEM_HEADROOM + sizeof(body));
    lk_item_unref(it);
    ck_assert_uint_eq(lk_mem_used(), base);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("membudget");
    TCase *t = tcase_create("budget");
    tcase_add_test(t, try_stops_at_the_limit_charge_does_not);
    tcase_add_test(t, a_strict_buffer_fails_at_the_limit_and_releases_everything);
    tcase_add_test(t, a_lenient_buffer_grows_past_the_limit_charged);
    tcase_add_test(t, an_inflate_stops_at_the_budget);
    tcase_add_test(t, items_are_charged_once_until_their_last_reference);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
