#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/platform.h"
#include "core/selfmetrics.h"

static lk_metrics *m;
static lk_buf out;

static void setup(void)
{
    m = lk_metrics_create();
    ck_assert_ptr_nonnull(m);
    lk_buf_init(&out, 1 << 20);
}

static void teardown(void)
{
    lk_metrics_destroy(m);
    lk_buf_fini(&out);
}

/* Renders |m| into a NUL-terminated string owned by |out|. */
static const char *render(void)
{
    lk_buf_reset(&out);
    ck_assert_int_eq(lk_metrics_render(m, &out), 0);
    ck_assert_int_eq(lk_buf_append(&out, "", 1), 0);
    return (const char *)out.data;
}

START_TEST(counter_render)
{
    lk_counter *c = lk_metrics_counter(m, "lookout_x_total", "Things.", "");
    lk_counter *l = lk_metrics_counter(m, "lookout_x_total", "Things.",
                                       "exporter=\"otlp/a\",reason=\"full\"");
    lk_counter_add(c, 3);
    lk_counter_add(c, 4);
    lk_counter_add(l, 18446744073709551615u);
    ck_assert_uint_eq(lk_counter_value(c), 7);
    ck_assert_str_eq(render(),
                     "# HELP lookout_x_total Things.\n"
                     "# TYPE lookout_x_total counter\n"
                     "lookout_x_total 7\n"
                     "lookout_x_total{exporter=\"otlp/a\",reason=\"full\"} "
                     "18446744073709551615\n");
}
END_TEST

START_TEST(gauge_render)
{
    lk_gauge_set(lk_metrics_gauge(m, "g", "h", "k=\"int\""), 42);
    lk_gauge_set(lk_metrics_gauge(m, "g", "h", "k=\"frac\""), 0.1);
    lk_gauge_set(lk_metrics_gauge(m, "g", "h", "k=\"sum\""), 0.1 + 0.2);
    lk_gauge_set(lk_metrics_gauge(m, "g", "h", "k=\"neg\""), -2.5);
    lk_gauge_set(lk_metrics_gauge(m, "g", "h", "k=\"big\""), 1e300);
    lk_gauge_set(lk_metrics_gauge(m, "g", "h", "k=\"nan\""), NAN);
    lk_gauge_set(lk_metrics_gauge(m, "g", "h", "k=\"inf\""), INFINITY);
    lk_gauge_set(lk_metrics_gauge(m, "g", "h", "k=\"ninf\""), -INFINITY);
    lk_gauge *a = lk_metrics_gauge(m, "g", "h", "k=\"add\"");
    lk_gauge_add(a, 1.5);
    lk_gauge_add(a, -0.25);
    ck_assert(lk_gauge_value(a) == 1.25);
    ck_assert_str_eq(render(), "# HELP g h\n"
                               "# TYPE g gauge\n"
                               "g{k=\"int\"} 42\n"
                               "g{k=\"frac\"} 0.1\n"
                               "g{k=\"sum\"} 0.30000000000000004\n"
                               "g{k=\"neg\"} -2.5\n"
                               "g{k=\"big\"} 1e+300\n"
                               "g{k=\"nan\"} NaN\n"
                               "g{k=\"inf\"} +Inf\n"
                               "g{k=\"ninf\"} -Inf\n"
                               "g{k=\"add\"} 1.25\n");
}
END_TEST

START_TEST(format_double_round_trips)
{
    const double v[] = {0.1, 1.0 / 3, 123456789.123, 5e-324, 1.7976931348623157e308,
                        -0.005, 2.0};
    char tmp[40];
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        int n = lk_metrics_format_double(tmp, sizeof(tmp), v[i]);
        ck_assert_int_gt(n, 0);
        ck_assert(strtod(tmp, NULL) == v[i]);
    }
    lk_metrics_format_double(tmp, sizeof(tmp), 0.005);
    ck_assert_str_eq(tmp, "0.005");
}
END_TEST

START_TEST(histogram_render)
{
    const double b[] = {0.005, 0.1, 1};
    lk_histogram *h = lk_metrics_histogram(m, "lookout_d_seconds", "Durations.",
                                           "exporter=\"x\"", b, 3);
    lk_histogram *n = lk_metrics_histogram(m, "lookout_d_seconds", "Durations.",
                                           "", b, 3);
    ck_assert_ptr_nonnull(h);
    lk_histogram_observe(h, 0.005); /* on a bound: in that bucket */
    lk_histogram_observe(h, 0.05);
    lk_histogram_observe(h, 0.5);
    lk_histogram_observe(h, 7);
    ck_assert_uint_eq(lk_histogram_count(h), 4);
    ck_assert(lk_histogram_sum(h) == 0.005 + 0.05 + 0.5 + 7);
    lk_histogram_observe(n, 2);
    ck_assert_str_eq(render(),
                     "# HELP lookout_d_seconds Durations.\n"
                     "# TYPE lookout_d_seconds histogram\n"
                     "lookout_d_seconds_bucket{exporter=\"x\",le=\"0.005\"} 1\n"
                     "lookout_d_seconds_bucket{exporter=\"x\",le=\"0.1\"} 2\n"
                     "lookout_d_seconds_bucket{exporter=\"x\",le=\"1\"} 3\n"
                     "lookout_d_seconds_bucket{exporter=\"x\",le=\"+Inf\"} 4\n"
                     "lookout_d_seconds_sum{exporter=\"x\"} 7.555\n"
                     "lookout_d_seconds_count{exporter=\"x\"} 4\n"
                     "lookout_d_seconds_bucket{le=\"0.005\"} 0\n"
                     "lookout_d_seconds_bucket{le=\"0.1\"} 0\n"
                     "lookout_d_seconds_bucket{le=\"1\"} 0\n"
                     "lookout_d_seconds_bucket{le=\"+Inf\"} 1\n"
                     "lookout_d_seconds_sum 2\n"
                     "lookout_d_seconds_count 1\n");
}
END_TEST

START_TEST(histogram_bounds_checked)
{
    const double bad[] = {1, 0.5};
    ck_assert_ptr_null(lk_metrics_histogram(m, "h1", "x", "", bad, 2));
    const double with_inf[] = {1, INFINITY};
    lk_histogram *h = lk_metrics_histogram(m, "h2", "x", "", with_inf, 2);
    ck_assert_ptr_nonnull(h);
    lk_histogram_observe(h, 3);
    ck_assert_str_eq(render(), "# HELP h2 x\n# TYPE h2 histogram\n"
                               "h2_bucket{le=\"1\"} 0\n"
                               "h2_bucket{le=\"+Inf\"} 1\n"
                               "h2_sum 3\nh2_count 1\n");
}
END_TEST

START_TEST(help_escaped)
{
    lk_counter_add(lk_metrics_counter(m, "c_total", "a\\b\nc \"q\"", ""), 1);
    ck_assert_str_eq(render(), "# HELP c_total a\\\\b\\nc \"q\"\n"
                               "# TYPE c_total counter\n"
                               "c_total 1\n");
}
END_TEST

START_TEST(label_escape_helper)
{
    lk_buf b;
    lk_buf_init(&b, 256);
    ck_assert_int_eq(lk_metrics_label_escape(&b, "a\\b\"c\nd"), 0);
    ck_assert_int_eq(lk_metrics_label_escape(&b, ""), 0);
    ck_assert_int_eq(lk_metrics_label_escape(&b, "|plain"), 0);
    ck_assert_uint_eq(b.len, strlen("a\\\\b\\\"c\\nd|plain"));
    ck_assert(memcmp(b.data, "a\\\\b\\\"c\\nd|plain", b.len) == 0);
    lk_buf_fini(&b);

    lk_buf small;
    lk_buf_init(&small, 3);
    ck_assert_int_lt(lk_metrics_label_escape(&small, "\"\"\""), 0);
    lk_buf_fini(&small);

    /* The length form stops at |n|, NUL or not; n == 0 may come with NULL. */
    lk_buf_init(&b, 256);
    ck_assert_int_eq(lk_metrics_label_escape_n(&b, "x\"y\0z", 3), 0);
    ck_assert_int_eq(lk_metrics_label_escape_n(&b, NULL, 0), 0);
    ck_assert_uint_eq(b.len, 4);
    ck_assert(memcmp(b.data, "x\\\"y", 4) == 0);
    lk_buf_reset(&b);
    /* HELP: quotes escaped in OpenMetrics only. */
    ck_assert_int_eq(lk_metrics_help_escape(&b, "a\"b\\c\nd", false), 0);
    ck_assert_int_eq(lk_buf_append(&b, "|", 1), 0);
    ck_assert_int_eq(lk_metrics_help_escape(&b, "a\"b\\c\nd", true), 0);
    ck_assert_uint_eq(b.len, strlen("a\"b\\\\c\\nd|a\\\"b\\\\c\\nd"));
    ck_assert(memcmp(b.data, "a\"b\\\\c\\nd|a\\\"b\\\\c\\nd", b.len) == 0);
    lk_buf_fini(&b);
}
END_TEST

START_TEST(same_key_same_series)
{
    lk_counter *a = lk_metrics_counter(m, "r_total", "x", "a=\"1\"");
    lk_counter *b = lk_metrics_counter(m, "r_total", "other help", "a=\"1\"");
    lk_counter *c = lk_metrics_counter(m, "r_total", "x", "a=\"2\"");
    ck_assert_ptr_eq(a, b);
    ck_assert_ptr_ne(a, c);
    lk_counter_add(a, 2);
    lk_counter_add(b, 3);
    ck_assert_uint_eq(lk_counter_value(a), 5);
    ck_assert_uint_eq(lk_counter_value(c), 0);
    lk_gauge *g1 = lk_metrics_gauge(m, "q", "x", "");
    ck_assert_ptr_eq(g1, lk_metrics_gauge(m, "q", "x", ""));
    const double bd[] = {1};
    lk_histogram *h1 = lk_metrics_histogram(m, "hh", "x", "", bd, 1);
    ck_assert_ptr_eq(h1, lk_metrics_histogram(m, "hh", "x", "", bd, 1));
}
END_TEST

START_TEST(registration_order)
{
    lk_gauge_set(lk_metrics_gauge(m, "zeta", "z", ""), 1);
    lk_counter_add(lk_metrics_counter(m, "alpha_total", "a", "x=\"2\""), 1);
    lk_counter_add(lk_metrics_counter(m, "alpha_total", "a", "x=\"1\""), 1);
    lk_gauge_set(lk_metrics_gauge(m, "zeta", "z", "y=\"0\""), 2);
    ck_assert_str_eq(render(), "# HELP zeta z\n# TYPE zeta gauge\n"
                               "zeta 1\nzeta{y=\"0\"} 2\n"
                               "# HELP alpha_total a\n# TYPE alpha_total counter\n"
                               "alpha_total{x=\"2\"} 1\nalpha_total{x=\"1\"} 1\n");
}
END_TEST

START_TEST(misuse_rejected)
{
    ck_assert_ptr_nonnull(lk_metrics_counter(m, "dup", "x", ""));
    ck_assert_ptr_null(lk_metrics_gauge(m, "dup", "x", ""));
    ck_assert_ptr_null(lk_metrics_float_counter(m, "dup", "x", ""));
    ck_assert_ptr_null(lk_metrics_counter(m, "bad-name", "x", ""));
    ck_assert_ptr_null(lk_metrics_counter(m, "1abc", "x", ""));
    ck_assert_ptr_null(lk_metrics_counter(m, "", "x", ""));
    /* Updates accept NULL, as the header promises. */
    lk_counter_add(NULL, 1);
    lk_gauge_set(NULL, 1);
    lk_gauge_add(NULL, 1);
    lk_histogram_observe(NULL, 1);
    ck_assert_uint_eq(lk_counter_value(NULL), 0);
    lk_metrics_destroy(NULL);
}
END_TEST

START_TEST(float_counter)
{
    lk_gauge *g = lk_metrics_float_counter(m, "cpu_seconds_total", "CPU.", "");
    ck_assert_ptr_nonnull(g);
    lk_gauge_add(g, 1.25);
    lk_gauge_add(g, 0.5);
    ck_assert_str_eq(render(), "# HELP cpu_seconds_total CPU.\n"
                               "# TYPE cpu_seconds_total counter\n"
                               "cpu_seconds_total 1.75\n");
}
END_TEST

struct collect_log {
    int calls[2];
    int order[4];
    int n;
};

static void collect_a(lk_metrics *mm, void *arg)
{
    struct collect_log *l = arg;
    l->calls[0]++;
    l->order[l->n++ % 4] = 0;
    lk_gauge_set(lk_metrics_gauge(mm, "fresh", "set by a collector", ""),
                 l->calls[0]);
}

static void collect_b(lk_metrics *mm, void *arg)
{
    struct collect_log *l = arg;
    l->calls[1]++;
    l->order[l->n++ % 4] = 1;
}

START_TEST(collect_callbacks_run)
{
    struct collect_log l = {{0, 0}, {0}, 0};
    lk_metrics_on_collect(m, collect_a, &l);
    lk_metrics_on_collect(m, collect_b, &l);
    ck_assert_str_eq(render(), "# HELP fresh set by a collector\n"
                               "# TYPE fresh gauge\nfresh 1\n");
    ck_assert_str_eq(render(), "# HELP fresh set by a collector\n"
                               "# TYPE fresh gauge\nfresh 2\n");
    ck_assert_int_eq(l.calls[0], 2);
    ck_assert_int_eq(l.calls[1], 2);
    ck_assert_int_eq(l.order[0], 0);
    ck_assert_int_eq(l.order[1], 1);
}
END_TEST

START_TEST(render_cap_reported)
{
    lk_counter_add(lk_metrics_counter(m, "c_total", "x", ""), 1);
    lk_buf small;
    lk_buf_init(&small, 10);
    ck_assert_int_lt(lk_metrics_render(m, &small), 0);
    lk_buf_fini(&small);
}
END_TEST

START_TEST(process_metrics_registered)
{
    lk_platform_register_process_metrics(m);
    const char *text = render();
    const char *names[] = {
        "# TYPE process_cpu_seconds_total counter\n",
        "# TYPE process_resident_memory_bytes gauge\n",
        "# TYPE process_virtual_memory_bytes gauge\n",
        "# TYPE process_open_fds gauge\n",
        "# TYPE process_max_fds gauge\n",
        "# TYPE process_start_time_seconds gauge\n",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        ck_assert_msg(strstr(text, names[i]) != NULL, "missing %s", names[i]);
    const char *rss = strstr(text, "\nprocess_resident_memory_bytes ");
    ck_assert_ptr_nonnull(rss);
    ck_assert_double_gt(strtod(rss + strlen("\nprocess_resident_memory_bytes "), NULL), 0);
}
END_TEST

static bool reserved(const char *name)
{
    return lk_metrics_name_is_reserved(m, name, strlen(name));
}

/* The names an exposition after the registry's must not use: the families
 * registered (the process_* ones here), in every form the text format and
 * OpenMetrics give them, and all of lookout_, registered or not. */
START_TEST(reserved_names)
{
    ck_assert(reserved("lookout_anything"));
    ck_assert(reserved("lookout_"));
    ck_assert(!reserved("lookout"));
    ck_assert(!reserved("process_cpu_seconds_total")); /* nothing registered yet */
    lk_platform_register_process_metrics(m);
    lk_gauge_set(lk_metrics_gauge(m, "queue_count", "", ""), 1);
    lk_histogram_observe(lk_metrics_histogram(m, "wait_seconds", "", "", NULL, 0), 1);
    /* The same names. */
    ck_assert(reserved("process_cpu_seconds_total"));
    ck_assert(reserved("process_open_fds"));
    ck_assert(reserved("process_max_fds"));
    ck_assert(reserved("process_start_time_seconds"));
    ck_assert(reserved("process_resident_memory_bytes"));
    ck_assert(reserved("process_virtual_memory_bytes"));
    /* process_cpu_seconds is that counter's OpenMetrics family; a counter
     * process_open_fds_total would be OpenMetrics' family process_open_fds. */
    ck_assert(reserved("process_cpu_seconds"));
    ck_assert(reserved("process_open_fds_total"));
    /* Sample names: a histogram queue has the sample queue_count; a gauge
     * wait_seconds_sum is a sample of the histogram wait_seconds. */
    ck_assert(reserved("queue"));
    ck_assert(reserved("wait_seconds_sum"));
    ck_assert(reserved("wait_seconds_bucket"));
    /* A counter queue_count_total is OpenMetrics' family queue_count. */
    ck_assert(reserved("queue_count_total"));
    /* Names merely alike are not. */
    ck_assert(!reserved("process_open"));
    ck_assert(!reserved("process_open_fds_max"));
    ck_assert(!reserved("process_cpu"));
    ck_assert(!reserved("xprocess_open_fds"));
    ck_assert(!reserved("wait"));
    ck_assert(!reserved("target_info"));
    ck_assert(!reserved("_total"));
    /* |len| bounds the name: no NUL needed. */
    ck_assert(lk_metrics_name_is_reserved(m, "process_open_fds_xyz", 16));
    ck_assert(!lk_metrics_name_is_reserved(m, "process_open_fds", 15));
    ck_assert(lk_metrics_name_is_reserved(NULL, "lookout_x", 9));
    ck_assert(!lk_metrics_name_is_reserved(NULL, "process_open_fds", 16));
}
END_TEST

/* Runs promtool on |text|; returns its exit status and output in |msg|. */
static int promtool_check(const char *text, char *msg, size_t msglen)
{
    char in[] = "/tmp/lk_sm_in_XXXXXX";
    int fd = mkstemp(in);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(text);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "/usr/bin/promtool check metrics < %s 2>&1", in);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(msg, 1, msglen - 1, p);
    msg[n] = '\0';
    int st = pclose(p);
    unlink(in);
    return st;
}

START_TEST(promtool_accepts)
{
    lk_platform_register_build_info(m, "0.1.0-\"test\"\\");
    lk_platform_register_process_metrics(m);
    lk_buf lv;
    lk_buf_init(&lv, 256);
    ck_assert_int_eq(lk_buf_append_str(&lv, "exporter=\""), 0);
    ck_assert_int_eq(lk_metrics_label_escape(&lv, "weird \"name\"\\\nx"), 0);
    ck_assert_int_eq(lk_buf_append(&lv, "\"", 2), 0);
    lk_counter_add(lk_metrics_counter(m, "lookout_exporter_sent_spans_total",
                                      "Spans sent.\nSecond \\ line.",
                                      (const char *)lv.data),
                   5);
    lk_buf_fini(&lv);
    lk_gauge_set(lk_metrics_gauge(m, "lookout_exporter_queue_size",
                                  "Items queued.", "exporter=\"a\""),
                 NAN);
    const double b[] = {0.005, 0.01, 0.1, 1, 10};
    lk_histogram *h = lk_metrics_histogram(
        m, "lookout_exporter_request_duration_seconds", "Request durations.",
        "exporter=\"a\"", b, 5);
    lk_histogram_observe(h, 0.02);
    lk_histogram_observe(h, 20);
    const char *text = render();
    if (access("/usr/bin/promtool", X_OK) != 0)
        return; /* prometheus not installed: nothing to check against */
    char msg[4096];
    int st = promtool_check(text, msg, sizeof(msg));
    ck_assert_msg(st == 0, "promtool: %s\n--- input:\n%s", msg, text);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("selfmetrics");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"counter_render", counter_render},
        {"gauge_render", gauge_render},
        {"format_double_round_trips", format_double_round_trips},
        {"histogram_render", histogram_render},
        {"histogram_bounds_checked", histogram_bounds_checked},
        {"help_escaped", help_escaped},
        {"label_escape_helper", label_escape_helper},
        {"same_key_same_series", same_key_same_series},
        {"registration_order", registration_order},
        {"misuse_rejected", misuse_rejected},
        {"float_counter", float_counter},
        {"collect_callbacks_run", collect_callbacks_run},
        {"render_cap_reported", render_cap_reported},
        {"process_metrics_registered", process_metrics_registered},
        {"promtool_accepts", promtool_accepts},
        {"reserved_names", reserved_names},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
