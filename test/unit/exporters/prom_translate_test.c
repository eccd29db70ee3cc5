/* lk_prom_metric_name, lk_prom_label_name, lk_prom_unit: the OTLP ->
 * Prometheus naming rules (metric names with unit and type suffixes, label
 * names, OpenMetrics UNIT words). Every result is appended after a prefix
 * already in the buffer, to check that nothing before it is touched. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "exporters/prom_translate.h"

#define PREFIX "x{"

static lk_buf b;

static void setup(void)
{
    lk_buf_init(&b, 1 << 16);
    ck_assert_int_eq(lk_buf_append_str(&b, PREFIX), 0);
}

static void teardown(void)
{
    lk_buf_fini(&b);
}

/* Checks that |b| holds PREFIX then |want|, then resets it to PREFIX. */
static void expect(const char *what, const char *want)
{
    size_t pl = strlen(PREFIX);
    ck_assert_msg(b.len >= pl && memcmp(b.data, PREFIX, pl) == 0,
                  "%s: prefix changed", what);
    ck_assert_msg(b.len - pl == strlen(want) &&
                      memcmp(b.data + pl, want, b.len - pl) == 0,
                  "%s: got \"%.*s\" want \"%s\"", what, (int)(b.len - pl),
                  (const char *)b.data + pl, want);
    lk_buf_reset(&b);
    ck_assert_int_eq(lk_buf_append_str(&b, PREFIX), 0);
}

static void name_is(const char *name, const char *unit, enum lk_prom_kind kind,
                    bool suffixes, const char *want)
{
    ck_assert_int_eq(lk_prom_metric_name(&b, name, unit, kind, suffixes), 0);
    expect(name, want);
}

static void label_is(const char *key, const char *want)
{
    ck_assert_int_eq(lk_prom_label_name(&b, key, strlen(key)), 0);
    expect(key, want);
}

static void unit_is(const char *unit, const char *want)
{
    ck_assert_int_eq(lk_prom_unit(&b, unit), 0);
    expect(unit != NULL ? unit : "(null)", want);
}

START_TEST(unit_suffixes)
{
    name_is("http.server.request.duration", "s", LK_PROM_HISTOGRAM, true,
            "http_server_request_duration_seconds");
    name_is("system.memory.usage", "By", LK_PROM_GAUGE, true,
            "system_memory_usage_bytes");
    name_is("db.client.operation.duration", "ms", LK_PROM_SUMMARY, true,
            "db_client_operation_duration_milliseconds");
    name_is("speed", "m/s", LK_PROM_GAUGE, true, "speed_meters_per_second");
    name_is("net.io.rate", "By/s", LK_PROM_GAUGE, true,
            "net_io_rate_bytes_per_second");
    name_is("disk.fill", "%", LK_PROM_GAUGE, true, "disk_fill_percent");
    name_is("temp", "Cel", LK_PROM_GAUGE, true, "temp_celsius");
    name_is("heap", "MiBy", LK_PROM_GAUGE, true, "heap_mebibytes");
    name_is("jobs.rate", "{job}/min", LK_PROM_GAUGE, true,
            "jobs_rate_per_minute");
    name_is("jobs.rate", "{job}/h", LK_PROM_GAUGE, true, "jobs_rate_per_hour");
    /* Annotations go, the rest of the unit stays. */
    name_is("rx", "By{received}", LK_PROM_GAUGE, true, "rx_bytes");
    /* An unknown unit is sanitised and used as it is. */
    name_is("distance", "km", LK_PROM_GAUGE, true, "distance_km");
    name_is("load", "req.per-node", LK_PROM_GAUGE, true, "load_req_per_node");
    /* Unit words are UCUM, so case counts: "S" is not seconds. */
    name_is("x", "S", LK_PROM_GAUGE, true, "x_S");
}
END_TEST

START_TEST(no_doubled_suffixes)
{
    name_is("request.duration_seconds", "s", LK_PROM_HISTOGRAM, true,
            "request_duration_seconds");
    name_is("request.duration.seconds", "s", LK_PROM_HISTOGRAM, true,
            "request_duration_seconds");
    name_is("requests_total", "", LK_PROM_COUNTER, true, "requests_total");
    name_is("requests.total", NULL, LK_PROM_COUNTER, true, "requests_total");
    name_is("cpu.time_seconds_total", "s", LK_PROM_COUNTER, true,
            "cpu_time_seconds_total");
    /* The unit goes before _total even when the name already had it. */
    name_is("cpu.time_total", "s", LK_PROM_COUNTER, true,
            "cpu_time_seconds_total");
    name_is("used_ratio", "1", LK_PROM_GAUGE, true, "used_ratio");
    /* Only a whole "_<unit>" ending counts. */
    name_is("httpseconds", "s", LK_PROM_GAUGE, true, "httpseconds_seconds");
    name_is("seconds", "s", LK_PROM_GAUGE, true, "seconds_seconds");
    /* Only counters get _total, and a counter's _total is not doubled. */
    name_is("x_total_total", NULL, LK_PROM_COUNTER, true, "x_total_total");
    name_is("total", NULL, LK_PROM_COUNTER, true, "total_total");
    name_is("errors_total", "{error}", LK_PROM_GAUGE, true, "errors_total");
}
END_TEST

START_TEST(type_suffixes)
{
    name_is("requests", "{request}", LK_PROM_COUNTER, true, "requests_total");
    name_is("bytes_sent", "By", LK_PROM_COUNTER, true,
            "bytes_sent_bytes_total");
    name_is("process.cpu.time", "s", LK_PROM_COUNTER, true,
            "process_cpu_time_seconds_total");
    name_is("queue.latency", "s", LK_PROM_HISTOGRAM, true,
            "queue_latency_seconds");
    name_is("rpc.latency", "ms", LK_PROM_SUMMARY, true,
            "rpc_latency_milliseconds");
    /* "1" is no unit, except that a gauge gets _ratio. */
    name_is("cpu.utilization", "1", LK_PROM_GAUGE, true,
            "cpu_utilization_ratio");
    name_is("cpu.utilization", "1{core}", LK_PROM_GAUGE, true,
            "cpu_utilization_ratio");
    name_is("items", "1", LK_PROM_COUNTER, true, "items_total");
    name_is("spread", "1", LK_PROM_HISTOGRAM, true, "spread");
}
END_TEST

START_TEST(without_suffixes)
{
    name_is("http.server.request.duration", "s", LK_PROM_HISTOGRAM, false,
            "http_server_request_duration");
    name_is("requests", "{request}", LK_PROM_COUNTER, false, "requests");
    name_is("cpu.utilization", "1", LK_PROM_GAUGE, false, "cpu_utilization");
    name_is("requests_total", "", LK_PROM_COUNTER, false, "requests_total");
    name_is("2xx.count", "By", LK_PROM_COUNTER, false, "_2xx_count");
}
END_TEST

START_TEST(sanitising)
{
    name_is("2xx.responses", "", LK_PROM_GAUGE, true, "_2xx_responses");
    name_is("_2xx", "", LK_PROM_GAUGE, true, "_2xx");
    name_is(".2xx", "", LK_PROM_GAUGE, true, "_2xx");
    name_is("a..b__c-.d", "", LK_PROM_GAUGE, true, "a_b_c_d");
    name_is("ns:rule.rate", "", LK_PROM_GAUGE, true, "ns:rule_rate");
    /* UTF-8: each byte of a character is replaced, then the run collapses. */
    name_is("caf\xc3\xa9.latte", "", LK_PROM_GAUGE, true, "caf_latte");
    name_is("\xe6\xb8\xa9\xe5\xba\xa6.temp", "Cel", LK_PROM_GAUGE, true,
            "_temp_celsius");
    /* A trailing '_' from sanitising goes; a literal one stays. */
    name_is("queue.depth.", "", LK_PROM_GAUGE, true, "queue_depth");
    name_is("queue.depth_", "", LK_PROM_GAUGE, true, "queue_depth_");
    name_is("queue.depth_", "s", LK_PROM_GAUGE, true, "queue_depth_seconds");
    /* Nothing left: "_". */
    name_is("", "", LK_PROM_GAUGE, true, "_");
    name_is("...", NULL, LK_PROM_GAUGE, false, "_");
    name_is("\xe6\xb8\xa9", "s", LK_PROM_GAUGE, true, "_seconds");
    name_is("", NULL, LK_PROM_COUNTER, true, "_total");
    name_is("_", NULL, LK_PROM_GAUGE, true, "_");
}
END_TEST

START_TEST(label_names)
{
    label_is("http.method", "http_method");
    label_is("service_name", "service_name");
    label_is("1abc", "key_1abc");
    label_is("_x", "key_x");
    label_is(".x", "key_x");
    label_is("__name__", "__name__");
    label_is("__a.b", "__a_b");
    label_is("net..peer-name", "net_peer_name");
    label_is("a__b", "a_b");
    label_is("trailing.", "trailing_");
    label_is("caf\xc3\xa9", "caf_");
    label_is("\xc3\xa9t\xc3\xa9", "key_t_");
    label_is("Tenant:ID", "Tenant_ID");
    label_is("_", "key_");
    label_is("", "key_");
    /* Not NUL-terminated: only |len| bytes are read, NULs included. */
    ck_assert_int_eq(lk_prom_label_name(&b, "host.name.extra", 9), 0);
    expect("host.name", "host_name");
    ck_assert_int_eq(lk_prom_label_name(&b, "a\0b", 3), 0);
    expect("a\\0b", "a_b");
}
END_TEST

START_TEST(unit_words)
{
    unit_is("s", "seconds");
    unit_is("By", "bytes");
    unit_is("m/s", "meters_per_second");
    unit_is("By/s", "bytes_per_second");
    unit_is("m/m", "meters_per_minute");
    unit_is("{packet}/s", "per_second");
    unit_is("1/s", "per_second");
    unit_is("By/", "bytes");
    unit_is("By/{x}", "bytes");
    unit_is("KiBy/ms", "kibibytes_per_milliseconds");
    unit_is("{req/s}", "");
    unit_is("%", "percent");
    unit_is("d", "days");
    unit_is("us", "microseconds");
    unit_is("Hz", "hertz");
    unit_is("By{x}", "bytes");
    unit_is("{requests}", "");
    unit_is("1", "");
    unit_is("", "");
    unit_is(NULL, "");
    unit_is("km", "km");
    unit_is("_weird unit!_", "weird_unit");
    unit_is("{open", "");
    unit_is("req/{x", "req");
}
END_TEST

START_TEST(errors)
{
    ck_assert_int_eq(lk_prom_metric_name(NULL, "a", "s", LK_PROM_GAUGE, true),
                     LK_EINVAL);
    ck_assert_int_eq(lk_prom_metric_name(&b, NULL, "s", LK_PROM_GAUGE, true),
                     LK_EINVAL);
    ck_assert_int_eq(lk_prom_label_name(NULL, "a", 1), LK_EINVAL);
    ck_assert_int_eq(lk_prom_label_name(&b, NULL, 1), LK_EINVAL);
    ck_assert_int_eq(lk_prom_unit(NULL, "s"), LK_EINVAL);
    expect("after EINVAL", "");

    /* The buffer's cap comes back as its error. */
    lk_buf small;
    lk_buf_init(&small, 8);
    ck_assert_int_eq(
        lk_prom_metric_name(&small, "requests", "By", LK_PROM_COUNTER, true),
        LK_E2BIG);
    lk_buf_reset(&small);
    ck_assert_int_eq(
        lk_prom_metric_name(&small, "abcdefghij", NULL, LK_PROM_GAUGE, true),
        LK_E2BIG);
    lk_buf_reset(&small);
    ck_assert_int_eq(lk_prom_label_name(&small, "0123456789", 10), LK_E2BIG);
    lk_buf_reset(&small);
    ck_assert_int_eq(lk_prom_unit(&small, "By/s"), LK_E2BIG);
    lk_buf_reset(&small);
    ck_assert_int_eq(
        lk_prom_metric_name(&small, "a.b", "s", LK_PROM_GAUGE, false), 0);
    ck_assert_uint_eq(small.len, 3);
    ck_assert(memcmp(small.data, "a_b", 3) == 0);
    lk_buf_fini(&small);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("prom_translate");
    TCase *t = tcase_create("metric_name");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, unit_suffixes);
    tcase_add_test(t, no_doubled_suffixes);
    tcase_add_test(t, type_suffixes);
    tcase_add_test(t, without_suffixes);
    tcase_add_test(t, sanitising);
    suite_add_tcase(s, t);
    t = tcase_create("label_name");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, label_names);
    suite_add_tcase(s, t);
    t = tcase_create("unit");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, unit_words);
    suite_add_tcase(s, t);
    t = tcase_create("errors");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, errors);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
