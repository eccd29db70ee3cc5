/* lk_metrics_text_parse: the Prometheus text format, as lookout and others
 * write it, and what it does with lines it cannot read. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/metrics_text.h"
#include "core/err.h"

static lk_metrics_text *parse(const char *text)
{
    lk_metrics_text *t = NULL;
    ck_assert_int_eq(lk_metrics_text_parse(text, strlen(text), NULL, NULL, &t), 0);
    ck_assert_ptr_nonnull(t);
    return t;
}

static const struct lk_sample *at(const lk_metrics_text *t, size_t i)
{
    ck_assert_uint_lt(i, lk_metrics_text_count(t));
    return lk_metrics_text_sample(t, i);
}

START_TEST(samples_labels_timestamps)
{
    lk_metrics_text *t = parse("# HELP up Whether it is up.\n"
                               "# TYPE up gauge\n"
                               "up 1\n"
                               "http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n"
                               "  spaced_out   {  a = \"x\" , b=\"y\", }   -3.5e2  \n"
                               "neg_ts 7 -12\n"
                               "colon:name:total 2\n");
    ck_assert_uint_eq(lk_metrics_text_count(t), 5);
    ck_assert_uint_eq(lk_metrics_text_invalid_lines(t), 0);
    ck_assert_uint_eq(lk_metrics_text_first_invalid_line(t), 0);

    const struct lk_sample *s = at(t, 0);
    ck_assert_str_eq(s->name, "up");
    ck_assert_uint_eq(s->nlabels, 0);
    ck_assert(s->value == 1);
    ck_assert(!s->has_timestamp);
    ck_assert_int_eq(s->type, LK_METRIC_GAUGE);

    s = at(t, 1);
    ck_assert_str_eq(s->name, "http_requests_total");
    ck_assert_uint_eq(s->nlabels, 2);
    ck_assert_str_eq(s->labels[0].name, "method");
    ck_assert_str_eq(s->labels[0].value, "post");
    ck_assert_str_eq(lk_sample_label(s, "code"), "200");
    ck_assert_ptr_null(lk_sample_label(s, "nope"));
    ck_assert(s->value == 1027);
    ck_assert(s->has_timestamp);
    ck_assert(s->timestamp_ms == 1395066363000LL);
    ck_assert_int_eq(s->type, LK_METRIC_UNTYPED); /* another family than up's */

    s = at(t, 2);
    ck_assert_str_eq(s->name, "spaced_out");
    ck_assert_uint_eq(s->nlabels, 2);
    ck_assert_str_eq(lk_sample_label(s, "a"), "x");
    ck_assert_str_eq(lk_sample_label(s, "b"), "y");
    ck_assert(s->value == -350);

    s = at(t, 3);
    ck_assert(s->has_timestamp && s->timestamp_ms == -12);
    ck_assert_str_eq(at(t, 4)->name, "colon:name:total");
    lk_metrics_text_destroy(t);
}
END_TEST

START_TEST(label_value_escapes)
{
    lk_metrics_text *t = parse("m{a=\"back\\\\slash\",b=\"say \\\"hi\\\"\",c=\"two\\nlines\","
                               "d=\"\\t stays\",e=\"\",f=\"caf\xc3\xa9 \xff raw\",g=\"a,b}c=d\"} 1\n");
    const struct lk_sample *s = at(t, 0);
    ck_assert_uint_eq(s->nlabels, 7);
    ck_assert_str_eq(lk_sample_label(s, "a"), "back\\slash");
    ck_assert_str_eq(lk_sample_label(s, "b"), "say \"hi\"");
    ck_assert_str_eq(lk_sample_label(s, "c"), "two\nlines");
    ck_assert_str_eq(lk_sample_label(s, "d"), "\\t stays");
    ck_assert_str_eq(lk_sample_label(s, "e"), "");
    /* Bytes as they came: sanitizing is for whoever shows them. */
    ck_assert_str_eq(lk_sample_label(s, "f"), "caf\xc3\xa9 \xff raw");
    ck_assert_str_eq(lk_sample_label(s, "g"), "a,b}c=d");
    lk_metrics_text_destroy(t);
}
END_TEST

START_TEST(special_values)
{
    lk_metrics_text *t = parse("a +Inf\nb -Inf\nc NaN\nd Inf\ne 1e400\nf -0\ng 0x10\nh 3.25\n");
    ck_assert_uint_eq(lk_metrics_text_count(t), 8);
    ck_assert(isinf(at(t, 0)->value) && at(t, 0)->value > 0);
    ck_assert(isinf(at(t, 1)->value) && at(t, 1)->value < 0);
    ck_assert(isnan(at(t, 2)->value));
    ck_assert(isinf(at(t, 3)->value));
    ck_assert(isinf(at(t, 4)->value));
    ck_assert(at(t, 5)->value == 0);
    ck_assert(at(t, 6)->value == 16);
    ck_assert(at(t, 7)->value == 3.25);
    lk_metrics_text_destroy(t);
}
END_TEST

START_TEST(histograms_and_summaries)
{
    lk_metrics_text *t = parse(
        "# HELP lookout_exporter_request_duration_seconds Duration.\n"
        "# TYPE lookout_exporter_request_duration_seconds histogram\n"
        "lookout_exporter_request_duration_seconds_bucket{exporter=\"x\",le=\"0.005\"} 1\n"
        "lookout_exporter_request_duration_seconds_bucket{exporter=\"x\",le=\"+Inf\"} 4\n"
        "lookout_exporter_request_duration_seconds_sum{exporter=\"x\"} 0.75\n"
        "lookout_exporter_request_duration_seconds_count{exporter=\"x\"} 4\n"
        "# TYPE rpc summary\n"
        "rpc{quantile=\"0.99\"} NaN\n"
        "rpc_sum 9\n"
        "rpc_count 3\n"
        "rpc_bucket 1\n"
        "# TYPE c counter\n"
        "c_total 5\n"
        "c 5\n");
    ck_assert_uint_eq(lk_metrics_text_count(t), 10);
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(at(t, i)->type, LK_METRIC_HISTOGRAM);
    ck_assert_str_eq(lk_sample_label(at(t, 1), "le"), "+Inf");
    ck_assert(at(t, 1)->value == 4);
    ck_assert(at(t, 2)->value == 0.75);
    ck_assert_int_eq(at(t, 4)->type, LK_METRIC_SUMMARY);
    ck_assert(isnan(at(t, 4)->value));
    ck_assert_int_eq(at(t, 5)->type, LK_METRIC_SUMMARY);
    ck_assert_int_eq(at(t, 6)->type, LK_METRIC_SUMMARY);
    ck_assert_int_eq(at(t, 7)->type, LK_METRIC_UNTYPED); /* a summary has no buckets */
    ck_assert_int_eq(at(t, 8)->type, LK_METRIC_UNTYPED); /* not the family "c" */
    ck_assert_int_eq(at(t, 9)->type, LK_METRIC_COUNTER);
    lk_metrics_text_destroy(t);
}
END_TEST

START_TEST(garbage_lines_skipped)
{
    static const char *const bad[] = {
        "not a metric",       "x{a=1} 2",         "x{a=\"1\" 2",       "x 1 2 3",
        "x",                  "{a=\"b\"} 1",      "x abc",             "x 1 notts",
        "9x 1",               "x{9a=\"b\"} 1",    "x{a=\"b\"}1",       "x{a=\"unterminated} 1",
        "x{a=\"b\"",          "x{a \"b\"} 1",     "x 1 99999999999999999999", "x{a=\"\\",
        "x 1e",               "x -",              "x{a=\"b\",,} 1",    "x\x01 1",
    };
    char text[2048] = "good_one 1\n";
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        strcat(text, bad[i]);
        strcat(text, "\n");
    }
    strcat(text, "good_two{a=\"b\"} 2\n\n   \n# just a comment\n#\n# TYPE\n# TYPE x\n"
                 "good_three 3");
    lk_metrics_text *t = parse(text);
    ck_assert_uint_eq(lk_metrics_text_count(t), 3);
    ck_assert_str_eq(at(t, 0)->name, "good_one");
    ck_assert_str_eq(at(t, 1)->name, "good_two");
    ck_assert_str_eq(at(t, 2)->name, "good_three"); /* no final newline */
    ck_assert_uint_eq(lk_metrics_text_invalid_lines(t), sizeof(bad) / sizeof(bad[0]));
    ck_assert_uint_eq(lk_metrics_text_first_invalid_line(t), 2);
    lk_metrics_text_destroy(t);
}
END_TEST

START_TEST(crlf_and_nul)
{
    static const char text[] = "a 1\r\nb{l=\"v\"} 2\r\n\r\nc{l=\"x\0y\"} 3\nd 4\0\ne 5\n";
    lk_metrics_text *t = NULL;
    ck_assert_int_eq(lk_metrics_text_parse(text, sizeof(text) - 1, NULL, NULL, &t), 0);
    ck_assert_uint_eq(lk_metrics_text_count(t), 3);
    ck_assert_str_eq(at(t, 0)->name, "a");
    ck_assert_str_eq(lk_sample_label(at(t, 1), "l"), "v");
    ck_assert_str_eq(at(t, 2)->name, "e");
    ck_assert_uint_eq(lk_metrics_text_invalid_lines(t), 2);
    lk_metrics_text_destroy(t);
}
END_TEST

static bool keep_lookout(const char *name, size_t len, void *arg)
{
    (*(int *)arg)++;
    return len >= 8 && memcmp(name, "lookout_", 8) == 0;
}

START_TEST(keep_filter_and_find)
{
    static const char text[] = "app_requests_total{x=\"y\"} 5\n"
                               "lookout_build_info{version=\"1\"} 1\n"
                               "lookout_up 1\n"
                               "lookout_up{extra=\"l\"} 2\n"
                               "lookout_up 3\n"
                               "app_broken{ 1\n";
    lk_metrics_text *t = NULL;
    int asked = 0;
    ck_assert_int_eq(lk_metrics_text_parse(text, strlen(text), keep_lookout, &asked, &t), 0);
    ck_assert_int_eq(asked, 6);
    ck_assert_uint_eq(lk_metrics_text_count(t), 4);
    /* Lines of metrics not kept are not read further, so not counted. */
    ck_assert_uint_eq(lk_metrics_text_invalid_lines(t), 0);
    const struct lk_sample *s = lk_metrics_text_find(t, "lookout_up");
    ck_assert_ptr_nonnull(s);
    ck_assert(s->value == 1);
    ck_assert_ptr_null(lk_metrics_text_find(t, "lookout_build_info")); /* has labels */
    ck_assert_ptr_null(lk_metrics_text_find(t, "app_requests_total"));
    lk_metrics_text_destroy(t);
}
END_TEST

START_TEST(huge_inputs)
{
    /* 200,000 series: kept in order. */
    size_t n = 200000, cap = n * 48 + 1, len = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "lookout_s{i=\"%zu\"} %zu\n", i, i);
    lk_metrics_text *t = NULL;
    ck_assert_int_eq(lk_metrics_text_parse(text, len, NULL, NULL, &t), 0);
    ck_assert_uint_eq(lk_metrics_text_count(t), n);
    ck_assert_str_eq(lk_sample_label(at(t, n - 1), "i"), "199999");
    ck_assert(at(t, n - 1)->value == 199999);
    lk_metrics_text_destroy(t);
    free(text);

    /* One label value of 8 MiB, then a garbage line as long. */
    size_t big = 8u << 20;
    text = malloc(2 * big + 64);
    ck_assert_ptr_nonnull(text);
    len = (size_t)sprintf(text, "m{v=\"");
    memset(text + len, 'x', big);
    len += big;
    len += (size_t)sprintf(text + len, "\"} 1\n");
    memset(text + len, '{', big);
    len += big;
    len += (size_t)sprintf(text + len, "\nafter 2\n");
    ck_assert_int_eq(lk_metrics_text_parse(text, len, NULL, NULL, &t), 0);
    ck_assert_uint_eq(lk_metrics_text_count(t), 2);
    ck_assert_uint_eq(strlen(lk_sample_label(at(t, 0), "v")), big);
    ck_assert_uint_eq(lk_metrics_text_invalid_lines(t), 1);
    ck_assert_str_eq(at(t, 1)->name, "after");
    lk_metrics_text_destroy(t);
    free(text);
}
END_TEST

START_TEST(too_many_samples)
{
    size_t n = LK_METRICS_TEXT_MAX_SAMPLES + 1;
    char *text = malloc(n * 4);
    ck_assert_ptr_nonnull(text);
    for (size_t i = 0; i < n; i++)
        memcpy(text + 4 * i, "a 1\n", 4);
    lk_metrics_text *t = NULL;
    ck_assert_int_eq(lk_metrics_text_parse(text, n * 4, NULL, NULL, &t), LK_E2BIG);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(lk_metrics_text_parse(text, (n - 1) * 4, NULL, NULL, &t), 0);
    ck_assert_uint_eq(lk_metrics_text_count(t), n - 1);
    lk_metrics_text_destroy(t);
    free(text);
}
END_TEST

START_TEST(empty_and_label_limit)
{
    lk_metrics_text *t = NULL;
    ck_assert_int_eq(lk_metrics_text_parse("", 0, NULL, NULL, &t), 0);
    ck_assert_uint_eq(lk_metrics_text_count(t), 0);
    lk_metrics_text_destroy(t);

    char line[4096] = "m{";
    for (int i = 0; i <= LK_METRICS_TEXT_MAX_LABELS; i++)
        sprintf(line + strlen(line), "l%d=\"v\",", i);
    strcat(line, "} 1\n");
    t = parse(line);
    ck_assert_uint_eq(lk_metrics_text_count(t), 0);
    ck_assert_uint_eq(lk_metrics_text_invalid_lines(t), 1);
    lk_metrics_text_destroy(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics_text");
    TCase *c = tcase_create("format");
    tcase_add_test(c, samples_labels_timestamps);
    tcase_add_test(c, label_value_escapes);
    tcase_add_test(c, special_values);
    tcase_add_test(c, histograms_and_summaries);
    suite_add_tcase(s, c);
    c = tcase_create("bad_input");
    tcase_add_test(c, garbage_lines_skipped);
    tcase_add_test(c, crlf_and_nul);
    tcase_add_test(c, empty_and_label_limit);
    suite_add_tcase(s, c);
    c = tcase_create("filter");
    tcase_add_test(c, keep_filter_and_find);
    suite_add_tcase(s, c);
    c = tcase_create("size");
    tcase_set_timeout(c, 120);
    tcase_add_test(c, huge_inputs);
    tcase_add_test(c, too_many_samples);
    suite_add_tcase(s, c);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
