/* lk_status_build: the view of top and status from two scrapes of /metrics
 * written as lookout writes them (docs/metrics.md). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/status.h"

static lk_metrics_text *parse(const char *text)
{
    lk_metrics_text *t = NULL;
    ck_assert_int_eq(lk_metrics_text_parse(text, strlen(text), lk_status_wants_metric, NULL, &t),
                     0);
    return t;
}

#define PROCESS(cpu, start)                                                                \
    "lookout_build_info{version=\"9.8.7\",os=\"linux\"} 1\n"                               \
    "process_cpu_seconds_total " cpu "\n"                                                  \
    "process_resident_memory_bytes 17231872\n"                                             \
    "process_start_time_seconds " start "\n"                                               \
    "lookout_memory_limit_bytes 268435456\n"                                               \
    "lookout_memory_used_bytes{kind=\"receivers\"} 1000\n"                                 \
    "lookout_memory_used_bytes{kind=\"queues\"} 24\n"                                      \
    "lookout_config_last_reload_successful 1\n"

/* Two receivers, an exporter in two pipelines, drops. The |n| values are
 * what changes between the scrapes. */
#define PIPELINE(acc_grpc, acc_http, lines, sent, drops_a, retries)                      \
    "lookout_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} " acc_grpc "\n" \
    "lookout_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"http\"} " acc_http "\n" \
    "lookout_receiver_refused_spans_total{receiver=\"otlp\",transport=\"grpc\"} 4\n"     \
    "lookout_receiver_rejected_spans_total{receiver=\"otlp\",transport=\"grpc\"} 1\n"    \
    "lookout_receiver_accepted_log_records_total{receiver=\"otlp\",transport=\"grpc\"} 0\n" \
    "lookout_receiver_accepted_log_records_total{receiver=\"lines\",transport=\"unix\"} " lines "\n" \
    "lookout_receiver_connections{receiver=\"otlp\",transport=\"grpc\"} 2\n"             \
    "lookout_receiver_connections{receiver=\"otlp\",transport=\"http\"} 1\n"             \
    "lookout_receiver_connections{receiver=\"lines\",transport=\"unix\"} 3\n"            \
    "lookout_dropped_items_total{signal=\"logs\",reason=\"pipeline_full\",receiver=\"lines\"} 0\n" \
    "lookout_dropped_items_total{signal=\"logs\",reason=\"too_large\",receiver=\"lines\"} 1\n" \
    "lookout_exporter_sent_spans_total{exporter=\"otlp/sink\"} " sent "\n"               \
    "lookout_exporter_send_failed_spans_total{exporter=\"otlp/sink\"} 0\n"              \
    "lookout_exporter_retries_total{exporter=\"otlp/sink\",signal=\"traces\"} " retries "\n" \
    "lookout_exporter_retries_total{exporter=\"otlp/sink\",signal=\"logs\"} 0\n"        \
    "lookout_exporter_queue_size{exporter=\"otlp/sink\",signal=\"traces\"} 25\n"        \
    "lookout_exporter_queue_size{exporter=\"otlp/sink\",signal=\"logs\"} 0\n"           \
    "lookout_exporter_queue_capacity{exporter=\"otlp/sink\",signal=\"traces\"} 100\n"   \
    "lookout_exporter_queue_capacity{exporter=\"otlp/sink\",signal=\"logs\"} 200\n"     \
    "lookout_exporter_request_duration_seconds_bucket{exporter=\"otlp/sink\",signal=\"traces\",le=\"+Inf\"} 3\n" \
    "lookout_exporter_sent_log_records_total{exporter=\"otlp/sink\"} 7\n"               \
    "lookout_exporter_send_failed_log_records_total{exporter=\"otlp/sink\"} 0\n"        \
    "lookout_dropped_items_total{signal=\"traces\",reason=\"queue_full\",exporter=\"otlp/sink\"} " drops_a "\n" \
    "lookout_dropped_items_total{signal=\"logs\",reason=\"queue_full\",exporter=\"otlp/sink\"} 5\n" \
    "app_metric_of_a_user{job=\"x\"} 12\n"

static const char PREV[] = PROCESS("1.0", "1000") PIPELINE("100", "20", "10", "50", "4", "0");
static const char CUR[] = PROCESS("1.5", "1000") PIPELINE("160", "20", "16", "110", "5", "2");

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-9;
}

START_TEST(rates_between_two_scrapes)
{
    lk_metrics_text *prev = parse(PREV), *cur = parse(CUR);
    struct lk_status st;
    ck_assert_int_eq(lk_status_build(&st, prev, 2.0, cur, 1100.0), 0);

    ck_assert_int_eq(st.state, LK_STATUS_READY);
    ck_assert_str_eq(st.version, "9.8.7");
    ck_assert_str_eq(st.os, "linux");
    ck_assert(near(st.uptime, 100));
    ck_assert(near(st.rss, 17231872));
    ck_assert(near(st.cpu, 25)); /* 0.5 s of CPU in 2 s */
    ck_assert(near(st.mem_used, 1024));
    ck_assert(near(st.mem_limit, 268435456));
    ck_assert_int_eq(st.reload_ok, 1);
    ck_assert(near(st.interval, 2.0));
    ck_assert(!st.has_spool);

    /* Receivers grouped by name in the agent's order, signals in theirs. */
    ck_assert_uint_eq(st.nreceivers, 3);
    const struct lk_status_receiver *r = &st.receivers[0];
    ck_assert_str_eq(r->name, "otlp");
    ck_assert_int_eq(r->signal, LK_SIGNAL_TRACES);
    ck_assert(near(r->accepted.total, 180)); /* both transports */
    ck_assert(near(r->accepted.rate, 30));
    ck_assert(near(r->refused.total, 4));
    ck_assert(near(r->refused.rate, 0));
    ck_assert(near(r->rejected.total, 1));
    ck_assert(near(r->connections, 3));
    r = &st.receivers[1];
    ck_assert_str_eq(r->name, "otlp");
    ck_assert_int_eq(r->signal, LK_SIGNAL_LOGS);
    ck_assert(near(r->accepted.total, 0));
    ck_assert(isnan(r->refused.total)); /* no series: shown as "-" */
    ck_assert(isnan(r->refused.rate));
    r = &st.receivers[2];
    ck_assert_str_eq(r->name, "lines");
    ck_assert_int_eq(r->signal, LK_SIGNAL_LOGS);
    ck_assert(near(r->accepted.total, 16));
    ck_assert(near(r->accepted.rate, 3));
    ck_assert(near(r->connections, 3));

    /* One exporter in two pipelines: a row for each signal. */
    ck_assert_uint_eq(st.nexporters, 2);
    const struct lk_status_exporter *x = &st.exporters[0];
    ck_assert_str_eq(x->name, "otlp/sink");
    ck_assert_int_eq(x->signal, LK_SIGNAL_TRACES);
    ck_assert(near(x->sent.total, 110));
    ck_assert(near(x->sent.rate, 30));
    ck_assert(near(x->failed.total, 0));
    ck_assert(near(x->retries.total, 2));
    ck_assert(near(x->retries.rate, 1));
    ck_assert(near(x->queue_size, 25));
    ck_assert(near(x->queue_capacity, 100));
    ck_assert(isnan(x->spool_batches));
    x = &st.exporters[1];
    ck_assert_int_eq(x->signal, LK_SIGNAL_LOGS);
    ck_assert(near(x->sent.total, 7));
    ck_assert(near(x->sent.rate, 0));
    ck_assert(near(x->queue_capacity, 200));

    /* Drops by reason over signals and places, largest first, none at 0. */
    ck_assert_uint_eq(st.ndrops, 2);
    ck_assert_str_eq(st.drops[0].reason, "queue_full");
    ck_assert(near(st.drops[0].count.total, 10));
    ck_assert(near(st.drops[0].count.rate, 0.5));
    ck_assert_str_eq(st.drops[1].reason, "too_large");
    ck_assert(near(st.drops[1].count.total, 1));
    ck_assert(near(st.drops[1].count.rate, 0));

    lk_status_fini(&st);
    lk_metrics_text_destroy(prev);
    lk_metrics_text_destroy(cur);
}
END_TEST

START_TEST(one_scrape_has_totals_only)
{
    lk_metrics_text *cur = parse(CUR);
    struct lk_status st;
    ck_assert_int_eq(lk_status_build(&st, NULL, 0, cur, 1100.0), 0);
    ck_assert(near(st.interval, 0));
    ck_assert(isnan(st.cpu));
    ck_assert(near(st.receivers[0].accepted.total, 180));
    ck_assert(isnan(st.receivers[0].accepted.rate));
    ck_assert(isnan(st.exporters[0].sent.rate));
    ck_assert(isnan(st.drops[0].count.rate));
    lk_status_fini(&st);
    lk_metrics_text_destroy(cur);
}
END_TEST

START_TEST(another_process_gives_no_rates)
{
    static const char other[] = PROCESS("0.1", "1090") PIPELINE("3", "0", "0", "0", "0", "0");
    lk_metrics_text *prev = parse(PREV), *cur = parse(other);
    struct lk_status st;
    ck_assert_int_eq(lk_status_build(&st, prev, 1.0, cur, 1100.0), 0);
    ck_assert(near(st.interval, 0));
    ck_assert(isnan(st.receivers[0].accepted.rate));
    ck_assert(near(st.receivers[0].accepted.total, 3));
    ck_assert(near(st.uptime, 10));
    lk_status_fini(&st);
    lk_metrics_text_destroy(prev);
    lk_metrics_text_destroy(cur);
}
END_TEST

START_TEST(reset_and_new_series_count_from_zero)
{
    /* sent went down (a reload made the exporter anew): counted from 0;
     * the http transport's series is new: counted from 0 too. */
    static const char before[] =
        PROCESS("1", "1000")
        "lookout_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} 10\n"
        "lookout_exporter_sent_spans_total{exporter=\"e\"} 500\n"
        "lookout_exporter_queue_capacity{exporter=\"e\",signal=\"traces\"} 10\n";
    static const char after[] =
        PROCESS("1", "1000")
        "lookout_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} 14\n"
        "lookout_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"http\"} 6\n"
        "lookout_exporter_sent_spans_total{exporter=\"e\"} 40\n"
        "lookout_exporter_queue_capacity{exporter=\"e\",signal=\"traces\"} 10\n"
        "lookout_exporter_sent_log_records_total{exporter=\"f\"} 8\n"
        "lookout_spool_batches{exporter=\"e\",signal=\"traces\"} 3\n";
    lk_metrics_text *prev = parse(before), *cur = parse(after);
    struct lk_status st;
    ck_assert_int_eq(lk_status_build(&st, prev, 4.0, cur, 1001.0), 0);
    ck_assert(near(st.receivers[0].accepted.total, 20));
    ck_assert(near(st.receivers[0].accepted.rate, 10.0 / 4));
    ck_assert(near(st.exporters[0].sent.rate, 40.0 / 4));
    ck_assert(near(st.exporters[0].spool_batches, 3));
    ck_assert(st.has_spool);
    /* An exporter known only by its sent counter still has its row. */
    ck_assert_uint_eq(st.nexporters, 2);
    ck_assert_str_eq(st.exporters[1].name, "f");
    ck_assert_int_eq(st.exporters[1].signal, LK_SIGNAL_LOGS);
    ck_assert(near(st.exporters[1].sent.rate, 2));
    ck_assert(isnan(st.exporters[1].queue_capacity));
    ck_assert_uint_eq(st.ndrops, 0);
    lk_status_fini(&st);
    lk_metrics_text_destroy(prev);
    lk_metrics_text_destroy(cur);
}
END_TEST

START_TEST(signals_without_a_pipeline_left_out)
{
    /* The otlp receiver counts metrics too, but no exporter has a metrics
     * queue: its all-zero metrics row is noise. Not so once it counted. */
    static const char idle[] =
        "lookout_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} 0\n"
        "lookout_receiver_accepted_metric_points_total{receiver=\"otlp\",transport=\"grpc\"} 0\n"
        "lookout_receiver_refused_metric_points_total{receiver=\"otlp\",transport=\"grpc\"} 0\n"
        "lookout_exporter_queue_capacity{exporter=\"e\",signal=\"traces\"} 10\n";
    static const char busy[] =
        "lookout_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} 0\n"
        "lookout_receiver_accepted_metric_points_total{receiver=\"otlp\",transport=\"grpc\"} 0\n"
        "lookout_receiver_refused_metric_points_total{receiver=\"otlp\",transport=\"grpc\"} 2\n"
        "lookout_exporter_queue_capacity{exporter=\"e\",signal=\"traces\"} 10\n";
    struct lk_status st;
    lk_metrics_text *t = parse(idle);
    ck_assert_int_eq(lk_status_build(&st, NULL, 0, t, 1), 0);
    ck_assert_uint_eq(st.nreceivers, 1);
    ck_assert_int_eq(st.receivers[0].signal, LK_SIGNAL_TRACES);
    lk_status_fini(&st);
    lk_metrics_text_destroy(t);
    t = parse(busy);
    ck_assert_int_eq(lk_status_build(&st, NULL, 0, t, 1), 0);
    ck_assert_uint_eq(st.nreceivers, 2);
    ck_assert_int_eq(st.receivers[1].signal, LK_SIGNAL_METRICS);
    ck_assert(near(st.receivers[1].refused.total, 2));
    lk_status_fini(&st);
    lk_metrics_text_destroy(t);
}
END_TEST

START_TEST(only_lookout_and_process_metrics_kept)
{
    ck_assert(lk_status_wants_metric("lookout_x", 9, NULL));
    ck_assert(lk_status_wants_metric("process_open_fds", 16, NULL));
    ck_assert(!lk_status_wants_metric("app_metric_of_a_user", 20, NULL));
    ck_assert(!lk_status_wants_metric("lookout_", 8, NULL));
    ck_assert(!lk_status_wants_metric("target_info", 11, NULL));
}
END_TEST

START_TEST(unreachable_and_empty)
{
    struct lk_status st;
    lk_status_unreachable(&st, "http://127.0.0.1:1", "Connection refused");
    ck_assert_int_eq(st.state, LK_STATUS_UNREACHABLE);
    ck_assert_str_eq(st.error, "Connection refused");
    ck_assert_uint_eq(st.nreceivers, 0);
    lk_status_fini(&st);

    lk_metrics_text *cur = parse("lookout_build_info{version=\"1\"} 1\n");
    ck_assert_int_eq(lk_status_build(&st, NULL, 0, cur, 5), 0);
    ck_assert_uint_eq(st.nreceivers + st.nexporters + st.ndrops, 0);
    ck_assert(isnan(st.uptime) && isnan(st.rss) && isnan(st.mem_used));
    ck_assert_int_eq(st.reload_ok, -1);
    ck_assert_ptr_null(st.os);
    lk_status_fini(&st);
    lk_metrics_text_destroy(cur);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("status");
    TCase *c = tcase_create("view");
    tcase_add_test(c, rates_between_two_scrapes);
    tcase_add_test(c, one_scrape_has_totals_only);
    tcase_add_test(c, another_process_gives_no_rates);
    tcase_add_test(c, reset_and_new_series_count_from_zero);
    tcase_add_test(c, signals_without_a_pipeline_left_out);
    tcase_add_test(c, only_lookout_and_process_metrics_kept);
    tcase_add_test(c, unreachable_and_empty);
    suite_add_tcase(s, c);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
