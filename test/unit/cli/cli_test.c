/* The command line of top and status: admin endpoints, intervals, and the
 * default configuration path beside an installed binary. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "cli/cli.h"
#include "core/err.h"

static void expect_target(const char *spec, const char *url, const char *unix_path,
                          const char *shown)
{
    struct lk_cli_target t;
    char err[128] = "";
    ck_assert_msg(lk_cli_target_parse(spec, &t, err, sizeof(err)) == 0, "%s: %s", spec, err);
    ck_assert_str_eq(t.url, url);
    ck_assert_str_eq(t.unix_path, unix_path);
    ck_assert_str_eq(t.shown, shown);
}

static void expect_bad_target(const char *spec)
{
    struct lk_cli_target t;
    char err[128] = "";
    ck_assert_int_eq(lk_cli_target_parse(spec, &t, err, sizeof(err)), LK_EINVAL);
    ck_assert_msg(err[0] != '\0', "no reason for %s", spec);
}

START_TEST(admin_targets)
{
    expect_target("127.0.0.1:9464", "http://127.0.0.1:9464", "", "http://127.0.0.1:9464");
    expect_target("http://127.0.0.1:9464/", "http://127.0.0.1:9464", "",
                  "http://127.0.0.1:9464");
    expect_target("https://agent.example:443", "https://agent.example:443", "",
                  "https://agent.example:443");
    expect_target("localhost:19464", "http://localhost:19464", "", "http://localhost:19464");
    /* A wildcard listener is reached on loopback. */
    expect_target("0.0.0.0:9464", "http://127.0.0.1:9464", "", "http://127.0.0.1:9464");
    expect_target("[::]:9464", "http://[::1]:9464", "", "http://[::1]:9464");
    expect_target("http://0.0.0.0:1", "http://127.0.0.1:1", "", "http://127.0.0.1:1");
    expect_target("[::1]:9464", "http://[::1]:9464", "", "http://[::1]:9464");
    expect_target("unix:///run/lookout/admin.sock", "http://localhost", "/run/lookout/admin.sock",
                  "unix:///run/lookout/admin.sock");
    expect_bad_target("unix:relative.sock");
    expect_bad_target("ftp://127.0.0.1:21");
    expect_bad_target("http://");
    expect_bad_target("");
    expect_bad_target("host with spaces:1");
}
END_TEST

START_TEST(intervals)
{
    double v;
    ck_assert_int_eq(lk_cli_parse_interval("1", &v), 0);
    ck_assert(v == 1);
    ck_assert_int_eq(lk_cli_parse_interval("0.5", &v), 0);
    ck_assert(v == 0.5);
    ck_assert_int_eq(lk_cli_parse_interval("250ms", &v), 0);
    ck_assert(v == 0.25);
    ck_assert_int_eq(lk_cli_parse_interval("2s", &v), 0);
    ck_assert(v == 2);
    ck_assert_int_eq(lk_cli_parse_interval("1m", &v), 0);
    ck_assert(v == 60);
    ck_assert_int_eq(lk_cli_parse_interval("0", &v), 0);
    ck_assert(v == 0);
    ck_assert_int_eq(lk_cli_parse_interval("", &v), LK_EINVAL);
    ck_assert_int_eq(lk_cli_parse_interval("-1s", &v), LK_EINVAL);
    ck_assert_int_eq(lk_cli_parse_interval("1h", &v), 0); /* the bound itself */
    ck_assert(v == 3600);
    ck_assert_int_eq(lk_cli_parse_interval("2h", &v), LK_EINVAL);
    ck_assert_int_eq(lk_cli_parse_interval("1d", &v), LK_EINVAL);
    ck_assert_int_eq(lk_cli_parse_interval("2 s", &v), LK_EINVAL);
    ck_assert_int_eq(lk_cli_parse_interval("61m", &v), LK_EINVAL);
    ck_assert_int_eq(lk_cli_parse_interval("nan", &v), LK_EINVAL);
    ck_assert_int_eq(lk_cli_parse_interval("inf", &v), LK_EINVAL);
}
END_TEST

START_TEST(commands)
{
    ck_assert(lk_cli_is_command("top"));
    ck_assert(lk_cli_is_command("status"));
    ck_assert(!lk_cli_is_command("-c"));
    ck_assert(!lk_cli_is_command("--check-config"));
    ck_assert(!lk_cli_is_command("topp"));
}
END_TEST

/* This test binary is PREFIX/cli/cli_test: PREFIX/cli/../etc/lookout/
 * lookout.yaml is where an installed lookout would look. */
START_TEST(default_config_beside_the_binary)
{
    char exe[2048], dir[2048], path[4096], want[4096], got[4096];
    size_t n = sizeof(exe);
    ck_assert_int_eq(uv_exepath(exe, &n), 0);
    snprintf(dir, sizeof(dir), "%s", exe);
    *strrchr(dir, '/') = '\0';

    snprintf(path, sizeof(path), "%s/../etc/lookout/lookout.yaml", dir);
    unlink(path);
    lk_cli_default_config(got, sizeof(got));
    ck_assert_str_eq(got, "config/lookout.yaml");

    snprintf(path, sizeof(path), "%s/../etc", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/../etc/lookout", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/../etc/lookout/lookout.yaml", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_ptr_nonnull(realpath(path, want));
    lk_cli_default_config(got, sizeof(got));
    ck_assert_str_eq(got, want);
    ck_assert_ptr_null(strstr(got, "/../"));

    unlink(path);
    snprintf(path, sizeof(path), "%s/../etc/lookout", dir);
    rmdir(path);
    snprintf(path, sizeof(path), "%s/../etc", dir);
    rmdir(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli");
    TCase *c = tcase_create("options");
    tcase_add_test(c, admin_targets);
    tcase_add_test(c, intervals);
    tcase_add_test(c, commands);
    tcase_add_test(c, default_config_beside_the_binary);
    suite_add_tcase(s, c);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
