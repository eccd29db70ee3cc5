/* lk_status_render: the view laid out for a terminal of 40, 80 and 160
 * columns, and without a width for `lookout status`. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/status.h"

static const char METRICS[] =
    "lookout_build_info{version=\"0.1.0\",os=\"linux\"} 1\n"
    "process_cpu_seconds_total 12.5\n"
    "process_resident_memory_bytes 17231872\n"
    "process_start_time_seconds 1000\n"
    "lookout_memory_limit_bytes 268435456\n"
    "lookout_memory_used_bytes{kind=\"queues\"} 52000\n"
    "lookout_config_last_reload_successful 0\n"
    "lookout_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} 1234\n"
    "lookout_receiver_refused_spans_total{receiver=\"otlp\",transport=\"grpc\"} 7\n"
    "lookout_receiver_rejected_spans_total{receiver=\"otlp\",transport=\"grpc\"} 3\n"
    "lookout_receiver_connections{receiver=\"otlp\",transport=\"grpc\"} 2\n"
    "lookout_receiver_accepted_log_records_total{receiver=\"lines/a-very-long-receiver-name-"
    "that-goes-on-and-on\",transport=\"unix\"} 56789012\n"
    "lookout_receiver_accepted_log_records_total{receiver=\"otlp/\xe6\x97\xa5\xe6\x9c\xac"
    "\xe8\xaa\x9e\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\",transport=\"grpc\"} 5\n"
    "lookout_receiver_accepted_log_records_total{receiver=\"evil\\n\x1b[31mred\xc2\x9b\xff\","
    "transport=\"grpc\"} 6\n"
    "lookout_exporter_sent_spans_total{exporter=\"otlp/jaeger\"} 1200\n"
    "lookout_exporter_send_failed_spans_total{exporter=\"otlp/jaeger\"} 34\n"
    "lookout_exporter_retries_total{exporter=\"otlp/jaeger\",signal=\"traces\"} 9\n"
    "lookout_exporter_queue_size{exporter=\"otlp/jaeger\",signal=\"traces\"} 50\n"
    "lookout_exporter_queue_capacity{exporter=\"otlp/jaeger\",signal=\"traces\"} 200\n"
    "lookout_exporter_queue_size{exporter=\"loki/an-exporter-with-a-long-long-name\","
    "signal=\"logs\"} 0\n"
    "lookout_exporter_queue_capacity{exporter=\"loki/an-exporter-with-a-long-long-name\","
    "signal=\"logs\"} 100000\n"
    "lookout_exporter_sent_log_records_total{exporter=\"loki/an-exporter-with-a-long-long-"
    "name\"} 98765\n"
    "lookout_spool_batches{exporter=\"otlp/jaeger\",signal=\"traces\"} 4\n"
    "lookout_dropped_items_total{signal=\"traces\",reason=\"queue_full\",exporter=\"x\"} 77\n"
    "lookout_dropped_items_total{signal=\"logs\",reason=\"retries_exhausted_and_a_long_"
    "reason\",exporter=\"x\"} 5\n";

static struct lk_status st;
static lk_metrics_text *scraped;

static void setup(void)
{
    ck_assert_int_eq(lk_metrics_text_parse(METRICS, strlen(METRICS), NULL, NULL, &scraped), 0);
    ck_assert_int_eq(lk_status_build(&st, NULL, 0, scraped, 1100), 0);
    st.target = "http://127.0.0.1:9464";
    st.state = LK_STATUS_NOT_READY;
}

static void teardown(void)
{
    lk_status_fini(&st);
    lk_metrics_text_destroy(scraped);
}

/* Renders at |width| into a NUL-terminated string (caller frees). */
static char *render(const struct lk_status *s, int width, const char *footer)
{
    lk_buf out;
    lk_buf_init(&out, 1 << 20);
    struct lk_status_render_opts o = {.width = width, .footer = footer};
    ck_assert_int_eq(lk_status_render(s, &o, &out), 0);
    ck_assert_int_eq(lk_buf_append(&out, "", 1), 0);
    size_t n;
    return (char *)lk_buf_detach(&out, &n);
}

/* The line that starts with |prefix|, or NULL. */
static const char *line_of(const char *text, const char *prefix)
{
    for (const char *l = text; *l != '\0';) {
        if (strncmp(l, prefix, strlen(prefix)) == 0)
            return l;
        const char *nl = strchr(l, '\n');
        if (nl == NULL)
            break;
        l = nl + 1;
    }
    return NULL;
}

/* Whether the line at |l| has |word| as a whole, blank-separated word. */
static bool has_word(const char *l, const char *word)
{
    size_t n = strcspn(l, "\n"), wl = strlen(word);
    for (size_t i = 0; i + wl <= n; i++)
        if ((i == 0 || l[i - 1] == ' ') && memcmp(l + i, word, wl) == 0 &&
            (i + wl == n || l[i + wl] == ' '))
            return true;
    return false;
}

/* No line wider than |width|, no control character but the newlines, and
 * every line ends in one. */
static void check_fits(const char *out, int width)
{
    const char *l = out;
    ck_assert_msg(*l != '\0', "nothing rendered");
    while (*l != '\0') {
        const char *nl = strchr(l, '\n');
        ck_assert_msg(nl != NULL, "last line without a newline");
        size_t w = lk_status_text_width(l, (size_t)(nl - l));
        ck_assert_msg(w <= (size_t)width, "line of %zu columns at width %d: %.*s", w, width,
                      (int)(nl - l), l);
        for (const char *p = l; p < nl; p++)
            ck_assert_msg((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte 0x%02x",
                          (unsigned char)*p);
        l = nl + 1;
    }
}

static void check_key_columns(const char *out)
{
    const char *rh = line_of(out, "RECEIVER");
    ck_assert_ptr_nonnull(rh);
    ck_assert(has_word(rh, "SIGNAL") && has_word(rh, "ACCEPTED/s") && has_word(rh, "ACCEPTED"));
    const char *otlp = line_of(out, "otlp ");
    ck_assert_ptr_nonnull(otlp);
    ck_assert(has_word(otlp, "traces") && has_word(otlp, "1234"));
    const char *xh = line_of(out, "EXPORTER");
    ck_assert_ptr_nonnull(xh);
    ck_assert(has_word(xh, "SENT/s") && has_word(xh, "SENT"));
    const char *jaeger = line_of(out, "otlp/jaeger");
    ck_assert_ptr_nonnull(jaeger);
    ck_assert(has_word(jaeger, "1200"));
    ck_assert_ptr_nonnull(line_of(out, "DROP REASON"));
    const char *qf = line_of(out, "queue_full");
    ck_assert_ptr_nonnull(qf);
    ck_assert(has_word(qf, "77"));
    ck_assert_ptr_nonnull(strstr(out, "NOT READY"));
    ck_assert_ptr_nonnull(strstr(out, "reload FAILED"));
}

START_TEST(width_40)
{
    char *out = render(&st, 40, "q: quit");
    check_fits(out, 40);
    check_key_columns(out);
    /* Long names cut with an ellipsis; optional columns gone. */
    const char *l = line_of(out, "lines/a");
    ck_assert_ptr_nonnull(l);
    const char *dots = strstr(l, "\xe2\x80\xa6");
    ck_assert(dots != NULL && dots < strchr(l, '\n'));
    ck_assert_ptr_null(strstr(out, "CONNS"));
    ck_assert_ptr_null(strstr(out, "REJECTED/s"));
    ck_assert_ptr_nonnull(strstr(out, "q: quit"));
    free(out);
}
END_TEST

START_TEST(width_80)
{
    char *out = render(&st, 80, "q: quit");
    check_fits(out, 80);
    check_key_columns(out);
    const char *rh = line_of(out, "RECEIVER");
    ck_assert(has_word(rh, "REFUSED/s") && has_word(rh, "CONNS"));
    ck_assert(has_word(line_of(out, "EXPORTER"), "QUEUE"));
    ck_assert(has_word(line_of(out, "otlp/jaeger"), "25%"));
    /* The header takes two lines at most at this width. */
    ck_assert(strncmp(strchr(strchr(out, '\n') + 1, '\n') + 1, "\n", 1) == 0);
    free(out);
}
END_TEST

START_TEST(width_160)
{
    char *out = render(&st, 160, NULL);
    check_fits(out, 160);
    check_key_columns(out);
    const char *rh = line_of(out, "RECEIVER");
    ck_assert(has_word(rh, "REFUSED") && has_word(rh, "REJECTED") && has_word(rh, "CONNS"));
    const char *xh = line_of(out, "EXPORTER");
    ck_assert(has_word(xh, "RETRIES") && has_word(xh, "QUEUED") && has_word(xh, "SPOOL"));
    ck_assert(has_word(line_of(out, "otlp/jaeger"), "50/200"));
    /* Names shown whole when there is room; wide characters count as two. */
    ck_assert_ptr_nonnull(strstr(out, "loki/an-exporter-with-a-long-long-name "));
    ck_assert_ptr_nonnull(strstr(out, "otlp/\xe6\x97\xa5\xe6\x9c\xac"));
    free(out);
}
END_TEST

START_TEST(no_width_cuts_nothing)
{
    char *out = render(&st, 0, NULL);
    check_fits(out, 1000);
    check_key_columns(out);
    ck_assert_ptr_nonnull(strstr(out, "lines/a-very-long-receiver-name-that-goes-on-and-on "));
    ck_assert_ptr_nonnull(strstr(out, "retries_exhausted_and_a_long_reason "));
    ck_assert_ptr_null(strstr(out, "\xe2\x80\xa6"));
    ck_assert(has_word(line_of(out, "lines/a-very"), "56789012"));
    free(out);
}
END_TEST

START_TEST(names_are_sanitized)
{
    char *out = render(&st, 0, NULL);
    /* The newline, ESC, C1 CSI (U+009B) and an invalid byte: '?' each. */
    ck_assert_ptr_nonnull(strstr(out, "evil??[31mred?? "));
    ck_assert_ptr_null(strchr(out, 0x1b));
    free(out);
}
END_TEST

START_TEST(tiny_width_still_fits)
{
    for (int w = 1; w <= 40; w++) {
        char *out = render(&st, w, "q: quit");
        check_fits(out, w);
        free(out);
    }
}
END_TEST

START_TEST(unreachable_fits)
{
    struct lk_status u;
    lk_status_unreachable(&u, "http://127.0.0.1:9464",
                          "Failed to connect to 127.0.0.1 port 9464 after 0 ms: "
                          "Couldn't connect to server");
    int widths[] = {40, 80, 160};
    for (size_t i = 0; i < 3; i++) {
        char *out = render(&u, widths[i], "retrying every 1s  q: quit");
        check_fits(out, widths[i]);
        ck_assert_ptr_nonnull(strstr(out, "UNREACHABLE: "));
        ck_assert_ptr_nonnull(strstr(out, "q: quit"));
        ck_assert_ptr_null(strstr(out, "RECEIVER"));
        free(out);
    }
    lk_status_fini(&u);
}
END_TEST

START_TEST(rates_and_numbers)
{
    /* Rates shown once there are two scrapes; big numbers shortened. */
    static const char later[] =
        "lookout_build_info{version=\"0.1.0\",os=\"linux\"} 1\n"
        "process_start_time_seconds 1000\n"
        "process_cpu_seconds_total 13\n"
        "lookout_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} 2501234\n"
        "lookout_exporter_sent_spans_total{exporter=\"otlp/jaeger\"} 1230\n"
        "lookout_exporter_queue_capacity{exporter=\"otlp/jaeger\",signal=\"traces\"} 200\n";
    lk_metrics_text *cur = NULL;
    struct lk_status s2;
    ck_assert_int_eq(lk_metrics_text_parse(later, strlen(later), NULL, NULL, &cur), 0);
    ck_assert_int_eq(lk_status_build(&s2, scraped, 2.0, cur, 1100), 0);
    char *out = render(&s2, 80, NULL);
    check_fits(out, 80);
    const char *otlp = line_of(out, "otlp ");
    ck_assert(has_word(otlp, "1.25M")); /* (2501234 - 1234) / 2 per second */
    ck_assert(has_word(otlp, "2.50M"));
    ck_assert(has_word(line_of(out, "otlp/jaeger"), "15.0"));
    ck_assert_ptr_nonnull(strstr(out, "cpu 25.0%"));
    ck_assert_ptr_nonnull(strstr(out, "rates over 2s"));
    ck_assert_ptr_nonnull(strstr(out, "no items dropped"));
    free(out);
    lk_status_fini(&s2);
    lk_metrics_text_destroy(cur);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("status_render");
    TCase *c = tcase_create("layout");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, width_40);
    tcase_add_test(c, width_80);
    tcase_add_test(c, width_160);
    tcase_add_test(c, no_width_cuts_nothing);
    tcase_add_test(c, names_are_sanitized);
    tcase_add_test(c, tiny_width_still_fits);
    tcase_add_test(c, unreachable_fits);
    tcase_add_test(c, rates_and_numbers);
    suite_add_tcase(s, c);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
