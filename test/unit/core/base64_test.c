/* lk_base64_append: RFC 4648 base64, padded (Loki bytes values, basic auth)
 * and unpadded (gRPC binary metadata). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/buf.h"

static void assert_b64(const void *in, size_t n, bool pad, const char *want)
{
    uint8_t *copy = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, in, n);
    lk_buf b;
    lk_buf_init(&b, 1 << 20);
    ck_assert_int_eq(lk_base64_append(&b, copy, n, pad), 0);
    ck_assert_uint_eq(b.len, strlen(want));
    ck_assert_msg(b.len == 0 || memcmp(b.data, want, b.len) == 0, "got %.*s want %s",
                  (int)b.len, b.len ? (const char *)b.data : "", want);
    lk_buf_fini(&b);
    free(copy);
}

START_TEST(rfc4648_vectors)
{
    /* RFC 4648 section 10. */
    assert_b64("", 0, true, "");
    assert_b64("f", 1, true, "Zg==");
    assert_b64("fo", 2, true, "Zm8=");
    assert_b64("foo", 3, true, "Zm9v");
    assert_b64("foob", 4, true, "Zm9vYg==");
    assert_b64("fooba", 5, true, "Zm9vYmE=");
    assert_b64("foobar", 6, true, "Zm9vYmFy");
}
END_TEST

START_TEST(unpadded)
{
    assert_b64("", 0, false, "");
    assert_b64("f", 1, false, "Zg");
    assert_b64("fo", 2, false, "Zm8");
    assert_b64("foo", 3, false, "Zm9v");
    assert_b64("foob", 4, false, "Zm9vYg");
}
END_TEST

START_TEST(binary)
{
    /* The last two letters of the alphabet, and high bytes. */
    assert_b64("\xfb\xff\xbf", 3, true, "+/+/");
    assert_b64("\x00\x00\x00", 3, true, "AAAA");
    assert_b64("\xff", 1, true, "/w==");
    assert_b64("\x00\xff", 2, true, "AP8=");
    /* Basic auth as the Loki exporter builds it. */
    assert_b64("user:pa\xc3\x9f", 9, true, "dXNlcjpwYcOf");
    assert_b64("Aladdin:open sesame", 19, true, "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    /* Every byte value once. */
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    lk_buf b;
    lk_buf_init(&b, 1 << 20);
    ck_assert_int_eq(lk_base64_append(&b, all, sizeof(all), true), 0);
    ck_assert_uint_eq(b.len, 4 * ((sizeof(all) + 2) / 3));
    ck_assert(memcmp(b.data + b.len - 20, "8/T19vf4+fr7/P3+/w==", 20) == 0);
    lk_buf_fini(&b);
}
END_TEST

START_TEST(appends_and_reports_the_cap)
{
    lk_buf b;
    lk_buf_init(&b, 8);
    ck_assert_int_eq(lk_buf_append(&b, "x:", 2), 0);
    ck_assert_int_eq(lk_base64_append(&b, (const uint8_t *)"foo", 3, true), 0);
    ck_assert_uint_eq(b.len, 6);
    ck_assert(memcmp(b.data, "x:Zm9v", 6) == 0);
    ck_assert_int_lt(lk_base64_append(&b, (const uint8_t *)"foo", 3, true), 0);
    lk_buf_fini(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("base64");
    TCase *t = tcase_create("encode");
    tcase_add_test(t, rfc4648_vectors);
    tcase_add_test(t, unpadded);
    tcase_add_test(t, binary);
    tcase_add_test(t, appends_and_reports_the_cap);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
