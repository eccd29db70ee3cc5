/*
 * The admin endpoint over a real socket: the loop runs on the main thread, a
 * blocking client on a second thread sends one request per connection
 * ("Connection: close") and keeps each raw response for the assertions.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "admin/admin.h"
#include "core/exposition.h"
#include "core/gzip.h"
#include "core/pbexpo.h"
#include "core/platform.h"
#include "core/selfmetrics.h"
#include "prometheus/io/prometheus/client/metrics.pb-c.h"

#define NREQ 12

static uv_loop_t loop;
static lk_admin *admin;
static int port;
static bool closed;
static uv_async_t done_async, ready_async;
static uv_sem_t ready_sem;
static char *replies[NREQ];

/* Sends |req| on a new connection and returns everything read until EOF. */
static char *exchange(const char *req)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    size_t cap = 1 << 20, len = 0;
    char *out = calloc(1, cap);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req)) {
        ssize_t n;
        while (len < cap - 1 && (n = recv(fd, out + len, cap - 1 - len, 0)) > 0)
            len += (size_t)n;
    }
    close(fd);
    return out;
}

static void *client(void *arg)
{
    replies[0] = exchange("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    replies[1] = exchange("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
    replies[2] = exchange("GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n");
    uv_async_send(&ready_async);
    uv_sem_wait(&ready_sem);
    replies[3] = exchange("GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n");
    replies[4] = exchange("HEAD /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
    replies[5] = exchange("POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n"
                          "Connection: close\r\n\r\nhi");
    replies[6] = exchange("GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n");
    replies[7] = exchange("GET /healthz?verbose=1 HTTP/1.0\r\n\r\n");
    replies[8] = exchange("DELETE /readyz HTTP/1.1\r\nConnection: close\r\n\r\n");
    /* What Prometheus 2.x sends. */
    replies[9] = exchange("GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;"
                          "version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                          "text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
                          "Accept-Encoding: gzip\r\nConnection: close\r\n\r\n");
    replies[10] = exchange("GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;q=0,"
                           "text/plain\r\nAccept-Encoding: gzip;q=0, identity\r\n"
                           "Connection: close\r\n\r\n");
    /* What Prometheus 2.42 sends with --enable-feature=native-histograms. */
    replies[11] = exchange("GET /metrics HTTP/1.1\r\nAccept: application/vnd.google.protobuf;"
                           "proto=io.prometheus.client.MetricFamily;encoding=delimited,"
                           "application/openmetrics-text;version=1.0.0;q=0.8,"
                           "text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
                           "Connection: close\r\n\r\n");
    uv_async_send(&done_async);
    return NULL;
}

static void on_closed(void *arg)
{
    closed = true;
}

static void on_done(uv_async_t *a)
{
    uv_close((uv_handle_t *)&ready_async, NULL);
    uv_close((uv_handle_t *)a, NULL);
    lk_admin_close(admin, on_closed, NULL);
}

static void on_ready(uv_async_t *a)
{
    lk_admin_set_ready(admin, true);
    uv_sem_post(&ready_sem);
}

static int extra_render(lk_buf *out, enum lk_expo_format fmt, void *arg)
{
    if (fmt == LK_EXPO_PROTOBUF) {
        lk_pbexpo x;
        lk_pbexpo_init(&x);
        int rc = lk_pbexpo_family(&x, "app_depth", 9, "Depth.", LK_PBEXPO_GAUGE, NULL);
        if (rc == 0)
            rc = lk_pbexpo_metric(&x);
        if (rc == 0)
            {
            static const char t[] = "job=\"x\",q=\"a\\\"b\"";
            rc = lk_pbexpo_label_text(&x, t, sizeof(t) - 1);
        }
        if (rc == 0)
            rc = lk_pbexpo_gauge(&x, 2.5);
        if (rc == 0)
            rc = lk_pbexpo_family_end(&x, out);
        lk_pbexpo_fini(&x);
        return rc;
    }
    if (fmt == LK_EXPO_OPENMETRICS)
        return lk_buf_append_str(out, "# TYPE app_requests counter\n"
                                      "app_requests_total{job=\"x\"} 9\n");
    return lk_buf_append_str(out, (const char *)arg);
}

static const char *body_of(const char *reply)
{
    const char *p = strstr(reply, "\r\n\r\n");
    return p != NULL ? p + 4 : "";
}

START_TEST(endpoints)
{
    lk_metrics *m = lk_metrics_create();
    lk_counter_add(lk_metrics_counter(m, "lookout_test_total", "A test counter.", ""), 5);
    lk_platform_register_process_metrics(m);
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(lk_admin_start(&admin, &loop, "127.0.0.1:0", m), 0);
    port = lk_admin_port(admin);
    lk_admin_set_renderer(admin, extra_render,
                          "# HELP app_requests_total Requests.\n"
                          "# TYPE app_requests_total counter\n"
                          "app_requests_total{job=\"x\"} 9\n");
    ck_assert_int_gt(port, 0);
    uv_async_init(&loop, &done_async, on_done);
    uv_async_init(&loop, &ready_async, on_ready);
    uv_sem_init(&ready_sem, 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, client, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);
    ck_assert(closed);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    uv_sem_destroy(&ready_sem);

    ck_assert_msg(strncmp(replies[0], "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", replies[0]);
    ck_assert_ptr_nonnull(strstr(replies[0], "\r\nContent-Type: text/plain; version=0.0.4; "
                                             "charset=utf-8\r\n"));
    const char *exposition = body_of(replies[0]);
    ck_assert_ptr_nonnull(strstr(exposition, "\nlookout_test_total 5\n"));
    ck_assert_ptr_nonnull(strstr(exposition, "\n# TYPE process_open_fds gauge\n"));
    /* The extra exposition comes last. */
    const char *app = strstr(exposition, "# HELP app_requests_total Requests.\n");
    ck_assert_ptr_nonnull(app);
    ck_assert_str_eq(app + strlen(app) - strlen("app_requests_total{job=\"x\"} 9\n"),
                     "app_requests_total{job=\"x\"} 9\n");
    if (access("/usr/bin/promtool", X_OK) == 0) {
        FILE *p = popen("/usr/bin/promtool check metrics >/dev/null 2>&1", "w");
        ck_assert_ptr_nonnull(p);
        fputs(exposition, p);
        ck_assert_int_eq(pclose(p), 0);
    }

    ck_assert_ptr_nonnull(strstr(replies[1], "HTTP/1.1 200 OK\r\n"));
    ck_assert_str_eq(body_of(replies[1]), "ok\n");
    ck_assert_ptr_nonnull(strstr(replies[2], "HTTP/1.1 503 Service Unavailable\r\n"));
    ck_assert_str_eq(body_of(replies[2]), "not ready\n");
    ck_assert_ptr_nonnull(strstr(replies[3], "HTTP/1.1 200 OK\r\n"));
    ck_assert_str_eq(body_of(replies[3]), "ready\n");

    ck_assert_ptr_nonnull(strstr(replies[4], "HTTP/1.1 200 OK\r\n"));
    ck_assert_str_eq(body_of(replies[4]), "");
    const char *cl = strstr(replies[4], "\r\nContent-Length: ");
    ck_assert_ptr_nonnull(cl);
    ck_assert_int_gt(atoi(cl + 18), 100);

    ck_assert_ptr_nonnull(strstr(replies[5], "HTTP/1.1 405 Method Not Allowed\r\n"));
    ck_assert_ptr_nonnull(strstr(replies[5], "\r\nAllow: GET, HEAD\r\n"));
    ck_assert_ptr_nonnull(strstr(replies[6], "HTTP/1.1 404 Not Found\r\n"));
    ck_assert_ptr_nonnull(strstr(replies[7], "HTTP/1.1 200 OK\r\n"));
    ck_assert_str_eq(body_of(replies[7]), "ok\n");
    ck_assert_ptr_nonnull(strstr(replies[8], "HTTP/1.1 405 Method Not Allowed\r\n"));

    /* OpenMetrics, gzipped. */
    ck_assert_ptr_nonnull(strstr(replies[9], "\r\nContent-Type: application/openmetrics-text; "
                                             "version=1.0.0; charset=utf-8\r\n"));
    ck_assert_ptr_nonnull(strstr(replies[9], "\r\nContent-Encoding: gzip\r\n"));
    const char *gz = body_of(replies[9]);
    const char *clen = strstr(replies[9], "\r\nContent-Length: ");
    ck_assert_ptr_nonnull(clen);
    lk_buf plain;
    lk_buf_init(&plain, 1 << 24);
    ck_assert_int_eq(lk_gzip_inflate((const uint8_t *)gz, (size_t)atoi(clen + 18), 1 << 24, 0,
                                     &plain), 0);
    ck_assert_int_eq(lk_buf_append(&plain, "", 1), 0);
    const char *omx = (const char *)plain.data;
    ck_assert_ptr_nonnull(strstr(omx, "# TYPE lookout_test counter\n"));
    ck_assert_ptr_nonnull(strstr(omx, "\nlookout_test_total 5\n"));
    ck_assert_ptr_null(strstr(omx, "# TYPE lookout_test_total"));
    ck_assert_ptr_nonnull(strstr(omx, "app_requests_total{job=\"x\"} 9\n# EOF\n"));
    ck_assert_str_eq(omx + strlen(omx) - 6, "# EOF\n");
    lk_buf_fini(&plain);
    /* Refused with q=0: text 0.0.4, not compressed. */
    ck_assert_ptr_nonnull(strstr(replies[10], "\r\nContent-Type: text/plain; version=0.0.4"));
    ck_assert_ptr_null(strstr(replies[10], "Content-Encoding"));
    ck_assert_ptr_null(strstr(body_of(replies[10]), "# EOF"));
    /* Protobuf: the self-metrics, then the extra renderer's families. */
    ck_assert_ptr_nonnull(strstr(replies[11], "\r\nContent-Type: application/vnd.google.protobuf; "
                                              "proto=io.prometheus.client.MetricFamily; "
                                              "encoding=delimited\r\n"));
    const char *pcl = strstr(replies[11], "\r\nContent-Length: ");
    ck_assert_ptr_nonnull(pcl);
    const uint8_t *pb = (const uint8_t *)body_of(replies[11]);
    size_t plen = (size_t)atoi(pcl + 18), at = 0;
    bool counter = false, depth = false;
    while (at < plen) {
        uint64_t len = 0;
        int shift = 0;
        while (pb[at] & 0x80) {
            len |= (uint64_t)(pb[at++] & 0x7f) << shift;
            shift += 7;
        }
        len |= (uint64_t)pb[at++] << shift;
        ck_assert_uint_le(at + len, plen);
        Io__Prometheus__Client__MetricFamily *f =
            io__prometheus__client__metric_family__unpack(NULL, len, pb + at);
        ck_assert_ptr_nonnull(f);
        if (strcmp(f->name, "lookout_test_total") == 0)
            counter = f->type == IO__PROMETHEUS__CLIENT__METRIC_TYPE__COUNTER &&
                      f->metric[0]->counter->value == 5 &&
                      strcmp(f->help, "A test counter.") == 0;
        if (strcmp(f->name, "app_depth") == 0)
            depth = f->metric[0]->gauge->value == 2.5 && f->metric[0]->n_label == 2 &&
                    strcmp(f->metric[0]->label[1]->value, "a\"b") == 0;
        io__prometheus__client__metric_family__free_unpacked(f, NULL);
        at += len;
    }
    ck_assert(counter);
    ck_assert(depth);

    for (int i = 0; i < NREQ; i++)
        free(replies[i]);
    lk_metrics_destroy(m);
}
END_TEST

START_TEST(accept_headers)
{
    ck_assert(lk_exposition_accepts("application/openmetrics-text;version=1.0.0",
                                "application/openmetrics-text"));
    ck_assert(lk_exposition_accepts("text/plain, Application/OpenMetrics-Text; q=0.5",
                                "application/openmetrics-text"));
    ck_assert(!lk_exposition_accepts("application/openmetrics-text;q=0", "application/openmetrics-text"));
    ck_assert(!lk_exposition_accepts("application/openmetrics-textual", "application/openmetrics-text"));
    ck_assert(!lk_exposition_accepts(NULL, "gzip"));
    ck_assert(lk_exposition_accepts("deflate, gzip", "gzip"));
    ck_assert(!lk_exposition_accepts("gzip;q=0.0", "gzip"));
    ck_assert(!lk_exposition_accepts("xgzip", "gzip"));
    ck_assert(lk_exposition_accepts("application/openmetrics-text;seq=0",
                                    "application/openmetrics-text"));
    ck_assert_int_eq(lk_exposition_negotiate(NULL), LK_EXPO_TEXT);
    ck_assert_int_eq(lk_exposition_negotiate("application/openmetrics-text"), LK_EXPO_OPENMETRICS);
    ck_assert_int_eq(lk_exposition_negotiate("application/vnd.google.protobuf;"
                                             "proto=io.prometheus.client.MetricFamily;"
                                             "encoding=delimited;q=0.7,text/plain"),
                     LK_EXPO_PROTOBUF);
    /* The text or compact-text protobuf encodings are not served. */
    ck_assert_int_eq(lk_exposition_negotiate("application/vnd.google.protobuf;"
                                             "proto=io.prometheus.client.MetricFamily;"
                                             "encoding=text,application/openmetrics-text"),
                     LK_EXPO_OPENMETRICS);
    ck_assert_int_eq(lk_exposition_negotiate("application/vnd.google.protobuf;"
                                             "proto=io.prometheus.client.MetricFamily;"
                                             "encoding=delimited;q=0"),
                     LK_EXPO_TEXT);
}
END_TEST

START_TEST(bad_endpoint)
{
    uv_loop_t l;
    uv_loop_init(&l);
    lk_admin *a = NULL;
    lk_metrics *m = lk_metrics_create();
    ck_assert_int_lt(lk_admin_start(&a, &l, "no-port-here", m), 0);
    lk_admin_close(NULL, NULL, NULL);
    uv_run(&l, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&l), 0);
    lk_metrics_destroy(m);
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("endpoints");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, endpoints);
    suite_add_tcase(s, tc);
    tc = tcase_create("accept");
    tcase_add_test(tc, accept_headers);
    suite_add_tcase(s, tc);
    tc = tcase_create("bad_endpoint");
    tcase_add_test(tc, bad_endpoint);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
