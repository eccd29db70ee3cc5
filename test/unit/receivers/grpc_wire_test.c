/* gRPC framing, grpc-message escaping, status details, grpc-timeout. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/gzip.h"
#include "receivers/grpc_wire.h"

START_TEST(prefix_round_trip)
{
    uint8_t p[5];
    bool c;
    uint32_t len;
    lk_grpc_prefix_write(p, true, 0x01020304);
    ck_assert_mem_eq(p, "\x01\x01\x02\x03\x04", 5);
    lk_grpc_prefix_read(p, &c, &len);
    ck_assert(c);
    ck_assert_uint_eq(len, 0x01020304);
}
END_TEST

START_TEST(unary_exact_message)
{
    const uint8_t body[] = {0, 0, 0, 0, 3, 'a', 'b', 'c'};
    const uint8_t *msg;
    size_t n;
    bool c;
    ck_assert_int_eq(lk_grpc_unary_message(body, sizeof(body), &msg, &n, &c), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_mem_eq(msg, "abc", 3);
    ck_assert(!c);
}
END_TEST

START_TEST(unary_empty_message_ok)
{
    const uint8_t body[] = {0, 0, 0, 0, 0};
    const uint8_t *msg;
    size_t n;
    bool c;
    ck_assert_int_eq(lk_grpc_unary_message(body, sizeof(body), &msg, &n, &c), 0);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(unary_rejects_bad_framing)
{
    const uint8_t *msg;
    size_t n;
    bool c;
    const uint8_t truncated[] = {0, 0, 0, 0, 4, 'a', 'b'};
    const uint8_t trailing[] = {0, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 0};
    const uint8_t badflag[] = {2, 0, 0, 0, 1, 'a'};
    const uint8_t short_prefix[] = {0, 0, 0};
    ck_assert_int_eq(lk_grpc_unary_message(truncated, sizeof(truncated), &msg, &n, &c),
                     LK_EPROTO);
    ck_assert_int_eq(lk_grpc_unary_message(trailing, sizeof(trailing), &msg, &n, &c),
                     LK_EPROTO);
    ck_assert_int_eq(lk_grpc_unary_message(badflag, sizeof(badflag), &msg, &n, &c),
                     LK_EPROTO);
    ck_assert_int_eq(lk_grpc_unary_message(short_prefix, sizeof(short_prefix), &msg,
                                           &n, &c),
                     LK_EPROTO);
    ck_assert_int_eq(lk_grpc_unary_message(NULL, 0, &msg, &n, &c), LK_EPROTO);
}
END_TEST

START_TEST(message_percent_encoding)
{
    lk_buf b;
    lk_buf_init(&b, 1024);
    ck_assert_int_eq(lk_grpc_message_escape(&b, "ok 100%\n\xc3\xa9"), 0);
    lk_buf_append(&b, "", 1);
    ck_assert_str_eq((char *)b.data, "ok 100%25%0A%C3%A9");
    lk_buf_fini(&b);
}
END_TEST

/* Decodes unpadded base64 for the check below. */
static size_t unbase64(const char *s, uint8_t *out)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (; *s; s++) {
        acc = acc << 6 | (uint32_t)(strchr(tbl, *s) - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return n;
}

START_TEST(status_details_with_retry_info)
{
    lk_buf b;
    uint8_t raw[256];
    lk_buf_init(&b, 4096);
    ck_assert_int_eq(lk_grpc_status_details(&b, 14, "full", 2500), 0);
    lk_buf_append(&b, "", 1);
    ck_assert_ptr_null(strchr((char *)b.data, '='));
    size_t n = unbase64((char *)b.data, raw);
    /* Status.code = 14, Status.message = "full". */
    ck_assert_mem_eq(raw, "\x08\x0e\x12\x04" "full", 8);
    /* details[0] = Any{type_url, value=RetryInfo{retry_delay{2s, 500000000ns}}} */
    ck_assert_uint_eq(raw[8], 0x1a);
    const char *url = "type.googleapis.com/google.rpc.RetryInfo";
    ck_assert_ptr_nonnull(memmem(raw, n, url, strlen(url)));
    const uint8_t dur[] = {0x08, 0x02, 0x10, 0x80, 0xca, 0xb5, 0xee, 0x01};
    ck_assert_ptr_nonnull(memmem(raw, n, dur, sizeof(dur)));
    lk_buf_fini(&b);
}
END_TEST

START_TEST(status_details_without_retry)
{
    lk_buf b;
    uint8_t raw[64];
    lk_buf_init(&b, 4096);
    ck_assert_int_eq(lk_grpc_status_details(&b, 3, "", -1), 0);
    lk_buf_append(&b, "", 1);
    size_t n = unbase64((char *)b.data, raw);
    ck_assert_uint_eq(n, 2);
    ck_assert_mem_eq(raw, "\x08\x03", 2);
    lk_buf_fini(&b);
}
END_TEST

START_TEST(timeout_units)
{
    uint64_t ms;
    ck_assert_int_eq(lk_grpc_timeout_parse("5S", 2, &ms), 0);
    ck_assert_uint_eq(ms, 5000);
    ck_assert_int_eq(lk_grpc_timeout_parse("100m", 4, &ms), 0);
    ck_assert_uint_eq(ms, 100);
    ck_assert_int_eq(lk_grpc_timeout_parse("1500u", 5, &ms), 0);
    ck_assert_uint_eq(ms, 2);
    ck_assert_int_eq(lk_grpc_timeout_parse("2H", 2, &ms), 0);
    ck_assert_uint_eq(ms, 7200000);
    ck_assert_int_eq(lk_grpc_timeout_parse("S", 1, &ms), LK_EINVAL);
    ck_assert_int_eq(lk_grpc_timeout_parse("12x", 3, &ms), LK_EINVAL);
    ck_assert_int_eq(lk_grpc_timeout_parse("123456789S", 10, &ms), LK_EINVAL);
}
END_TEST

START_TEST(gzip_round_trip)
{
    lk_buf z, out;
    char text[5000];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (char)('a' + i % 23);
    lk_buf_init(&z, 1 << 20);
    lk_buf_init(&out, 1 << 20);
    ck_assert_int_eq(lk_gzip_deflate((uint8_t *)text, sizeof(text), &z), 0);
    ck_assert_int_eq(lk_gzip_inflate(z.data, z.len, sizeof(text), 0, &out), 0);
    ck_assert_uint_eq(out.len, sizeof(text));
    ck_assert_mem_eq(out.data, text, sizeof(text));
    lk_buf_fini(&z);
    lk_buf_fini(&out);
}
END_TEST

START_TEST(gzip_bomb_cut_at_limit)
{
    lk_buf z, out;
    size_t big = 50u << 20; /* 50 MiB of zeros compresses to ~50 KB */
    uint8_t *zeros = calloc(1, big);
    ck_assert_ptr_nonnull(zeros);
    lk_buf_init(&z, 64u << 20); /* deflateBound() asks for about the input size */
    lk_buf_init(&out, 1 << 20);
    ck_assert_int_eq(lk_gzip_deflate(zeros, big, &z), 0);
    free(zeros);
    ck_assert_uint_lt(z.len, 1 << 20);
    /* Limit 1 MiB: refused, and the output never grew past the limit. */
    ck_assert_int_eq(lk_gzip_inflate(z.data, z.len, 1 << 20, 0, &out), LK_E2BIG);
    ck_assert_uint_le(out.cap, 1 << 20);
    ck_assert_uint_eq(out.len, 0);
    lk_buf_fini(&z);
    lk_buf_fini(&out);
}
END_TEST

START_TEST(gzip_exact_limit_and_corrupt)
{
    lk_buf z, out;
    uint8_t data[1000];
    memset(data, 'x', sizeof(data));
    lk_buf_init(&z, 1 << 20);
    lk_buf_init(&out, 1 << 20);
    ck_assert_int_eq(lk_gzip_deflate(data, sizeof(data), &z), 0);
    ck_assert_int_eq(lk_gzip_inflate(z.data, z.len, 1000, 0, &out), 0);
    ck_assert_uint_eq(out.len, 1000);
    lk_buf_reset(&out);
    ck_assert_int_eq(lk_gzip_inflate(z.data, z.len, 999, 0, &out), LK_E2BIG);
    ck_assert_int_eq(lk_gzip_inflate(z.data, z.len - 4, 2000, 0, &out), LK_EPROTO);
    ck_assert_int_eq(lk_gzip_inflate((const uint8_t *)"not gzip", 8, 2000, 0, &out),
                     LK_EPROTO);
    ck_assert_uint_eq(out.len, 0);
    lk_buf_fini(&z);
    lk_buf_fini(&out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("grpc_wire");
    TCase *t = tcase_create("framing");
    tcase_add_test(t, prefix_round_trip);
    tcase_add_test(t, unary_exact_message);
    tcase_add_test(t, unary_empty_message_ok);
    tcase_add_test(t, unary_rejects_bad_framing);
    suite_add_tcase(s, t);
    t = tcase_create("status");
    tcase_add_test(t, message_percent_encoding);
    tcase_add_test(t, status_details_with_retry_info);
    tcase_add_test(t, status_details_without_retry);
    tcase_add_test(t, timeout_units);
    suite_add_tcase(s, t);
    t = tcase_create("compression");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, gzip_round_trip);
    tcase_add_test(t, gzip_bomb_cut_at_limit);
    tcase_add_test(t, gzip_exact_limit_and_corrupt);
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
