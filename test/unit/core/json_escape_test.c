/* lk_json_escape: JSON string literals from arbitrary bytes. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json_escape.h"

static void expect(const char *in, size_t n, const char *want)
{
    lk_buf b;
    lk_buf_init(&b, 1 << 20);
    ck_assert_int_eq(lk_json_escape(&b, in, n), 0);
    ck_assert_uint_eq(b.len, strlen(want));
    ck_assert_msg(memcmp(b.data, want, b.len) == 0, "got %.*s want %s", (int)b.len,
                  (const char *)b.data, want);
    lk_buf_fini(&b);
}

START_TEST(plain_and_empty)
{
    expect("", 0, "\"\"");
    expect("hello world", 11, "\"hello world\"");
    expect("a/b", 3, "\"a/b\"");
}
END_TEST

START_TEST(quotes_backslashes_controls)
{
    expect("say \"hi\"", 8, "\"say \\\"hi\\\"\"");
    expect("c:\\dir", 6, "\"c:\\\\dir\"");
    expect("a\nb\rc\td", 7, "\"a\\nb\\rc\\td\"");
    expect("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\"");
    expect("x\0y", 3, "\"x\\u0000y\"");
}
END_TEST

START_TEST(utf8_kept_or_replaced)
{
    expect("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
           "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    /* A lone continuation byte, a cut sequence, an overlong form. */
    expect("a\x80z", 3, "\"a\xef\xbf\xbdz\"");
    expect("a\xe2\x82", 3, "\"a\xef\xbf\xbd\xef\xbf\xbd\"");
    expect("\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"");
}
END_TEST

START_TEST(runs_between_escapes)
{
    /* Long plain runs around escapes come out whole and in order. */
    char in[600], want[700];
    size_t o = 0;
    want[o++] = '"';
    for (int i = 0; i < 600; i++) {
        in[i] = i % 100 == 99 ? '"' : (char)('a' + i % 26);
        if (in[i] == '"')
            want[o++] = '\\';
        want[o++] = in[i];
    }
    want[o++] = '"';
    want[o] = '\0';
    expect(in, sizeof(in), want);
}
END_TEST

START_TEST(cap_is_reported)
{
    lk_buf b;
    lk_buf_init(&b, 8);
    ck_assert_int_lt(lk_json_escape(&b, "0123456789", 10), 0);
    lk_buf_fini(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json_escape");
    TCase *t = tcase_create("escape");
    tcase_add_test(t, plain_and_empty);
    tcase_add_test(t, quotes_backslashes_controls);
    tcase_add_test(t, utf8_kept_or_replaced);
    tcase_add_test(t, runs_between_escapes);
    tcase_add_test(t, cap_is_reported);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
