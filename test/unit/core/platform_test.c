#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/platform.h"

static const char *self_name = ""; /* basename of argv[0] */

START_TEST(process_stats_plausible)
{
    struct lk_process_stats st;
    ck_assert_int_eq(lk_platform_process_stats(&st), 0);
    ck_assert_double_ge(st.cpu_seconds, 0);
    ck_assert_uint_gt(st.resident_bytes, 0);
    ck_assert_uint_ge(st.virtual_bytes, st.resident_bytes);
    ck_assert_uint_ge(st.open_fds, 3);
    ck_assert_uint_ge(st.max_fds, st.open_fds);
    /* Started before now, and after the year 2020. */
    ck_assert_double_le(st.start_time_seconds, (double)time(NULL) + 1);
    ck_assert_double_gt(st.start_time_seconds, 1577836800.0);
}
END_TEST

START_TEST(open_fds_counts_new_descriptors)
{
    struct lk_process_stats before, after;
    ck_assert_int_eq(lk_platform_process_stats(&before), 0);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(lk_platform_process_stats(&after), 0);
    close(sv[0]);
    close(sv[1]);
    ck_assert_uint_eq(after.open_fds, before.open_fds + 2);
}
END_TEST

START_TEST(peer_cred_of_socketpair)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct lk_peer_cred pc;
    ck_assert_int_eq(lk_platform_peer_cred(sv[0], &pc), 0);
    ck_assert_int_eq(pc.pid, (int)getpid());
    ck_assert_uint_eq(pc.uid, (unsigned)getuid());
    ck_assert_uint_eq(pc.gid, (unsigned)getgid());
    close(sv[0]);
    close(sv[1]);
    ck_assert_int_lt(lk_platform_peer_cred(-1, &pc), 0);
}
END_TEST

START_TEST(process_name_of_self)
{
    char name[64];
    ck_assert_int_eq(lk_platform_process_name((int)getpid(), name, sizeof(name)), 0);
    /* The kernel keeps at most 15 bytes of the executable's name. */
    ck_assert_int_gt((int)strlen(name), 0);
    /* A prefix of the executable's own name (the kernel may truncate). */
    ck_assert_msg(strncmp(name, self_name, strlen(name)) == 0, "name %s, argv[0] %s",
                  name, self_name);
    char tiny[4];
    ck_assert_int_eq(lk_platform_process_name((int)getpid(), tiny, sizeof(tiny)), 0);
    ck_assert_uint_eq(strlen(tiny), strlen(name) < 3 ? strlen(name) : 3);
    ck_assert(strncmp(tiny, name, strlen(tiny)) == 0);
    ck_assert_int_eq(lk_platform_process_name(0x7ffffff0, name, sizeof(name)),
                     LK_ENOENT);
    ck_assert_int_eq(lk_platform_process_name((int)getpid(), name, 0), LK_EINVAL);
}
END_TEST

START_TEST(os_name)
{
    const char *os = lk_platform_os();
#if defined(__linux__)
    ck_assert_str_eq(os, "linux");
#elif defined(__APPLE__)
    ck_assert_str_eq(os, "darwin");
#else
    ck_assert_str_eq(os, "unknown");
#endif
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("platform");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"process_stats_plausible", process_stats_plausible},
        {"open_fds_counts_new_descriptors", open_fds_counts_new_descriptors},
        {"peer_cred_of_socketpair", peer_cred_of_socketpair},
        {"process_name_of_self", process_name_of_self},
        {"os_name", os_name},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(int argc, char **argv)
{
    if (argc > 0) {
        const char *slash = strrchr(argv[0], '/');
        self_name = slash != NULL ? slash + 1 : argv[0];
    }
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
