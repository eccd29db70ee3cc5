/*
 * lk_http_client against an lk_httpd server on 127.0.0.1 (port 0) in the
 * same loop: real sockets, the loop run until a condition holds. A watchdog
 * timer turns a hang into a failure; nothing asserts on elapsed time.
 */
#include "core/http_client.h"

#include <arpa/inet.h>
#include <check.h>
#include <ctype.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "core/err.h"
#include "core/httpd.h"

#include "loop_watchdog.h"

#define MAX_REQS 64
#define MAX_PEERS 64
#define WATCHDOG_MS 20000

/* ---- the server ---- */

struct seen_req {
    char method[16];
    char path[256];
    char headers[4096]; /* "name: value\n" each, names lower-cased by us */
    uint8_t *body;
    size_t body_len;
};

static lk_httpd *server;
static int port;
static bool server_closed;

static struct seen_req reqs[MAX_REQS];
static int nreqs;
static int peers[MAX_PEERS]; /* client ports of the connections seen */
static int npeers;

/* What the server answers. */
static int answer_status;
static const char *answer_ctype;
static const char *answer_headers;
static const char *answer_body;
static bool answer_echo; /* answer with the request body */
static bool hold;        /* keep requests unanswered in |held| */
static lk_httpd_req *held[MAX_REQS];
static int nheld;

static void note_peer(uv_handle_t *h, void *arg)
{
    if (h->type != UV_TCP || uv_is_closing(h))
        return;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getsockname((uv_tcp_t *)h, (struct sockaddr *)&ss, &len) != 0 ||
        ntohs(((struct sockaddr_in *)&ss)->sin_port) != port)
        return;
    len = sizeof(ss);
    if (uv_tcp_getpeername((uv_tcp_t *)h, (struct sockaddr *)&ss, &len) != 0)
        return; /* the listener */
    int p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    for (int i = 0; i < npeers; i++)
        if (peers[i] == p)
            return;
    if (npeers < MAX_PEERS)
        peers[npeers++] = p;
}

static void handler(lk_httpd_req *req, void *arg)
{
    /* Every server-side connection open now, by its client port. */
    uv_walk(&loop, note_peer, NULL);
    ck_assert_int_lt(nreqs, MAX_REQS);
    struct seen_req *s = &reqs[nreqs++];
    snprintf(s->method, sizeof(s->method), "%s", lk_httpd_req_method(req));
    snprintf(s->path, sizeof(s->path), "%s", lk_httpd_req_path(req));
    size_t used = 0;
    for (size_t i = 0; i < lk_httpd_req_header_count(req); i++) {
        const char *name, *value;
        ck_assert(lk_httpd_req_header_at(req, i, &name, &value));
        int n = snprintf(s->headers + used, sizeof(s->headers) - used, "%s: %s\n",
                         name, value);
        ck_assert(n > 0 && (size_t)n < sizeof(s->headers) - used);
        for (int k = 0; name[k] != '\0'; k++)
            s->headers[used + (size_t)k] = (char)tolower((unsigned char)name[k]);
        used += (size_t)n;
    }
    size_t blen;
    const uint8_t *body = lk_httpd_req_body(req, &blen);
    s->body = malloc(blen + 1);
    if (blen > 0)
        memcpy(s->body, body, blen);
    s->body_len = blen;
    if (hold) {
        held[nheld++] = req;
        return;
    }
    if (answer_echo)
        lk_httpd_respond(req, answer_status, answer_ctype, answer_headers, body, blen);
    else
        lk_httpd_respond(req, answer_status, answer_ctype, answer_headers,
                         answer_body, answer_body != NULL ? strlen(answer_body) : 0);
}

/* The value of header |name| (lower case) in |s|, copied to a static. */
static const char *seen_header(const struct seen_req *s, const char *name)
{
    static char v[1024];
    char key[128];
    snprintf(key, sizeof(key), "%s: ", name);
    const char *p = s->headers;
    while (p != NULL && *p != '\0') {
        if (strncmp(p, key, strlen(key)) == 0) {
            p += strlen(key);
            size_t n = strcspn(p, "\n");
            snprintf(v, sizeof(v), "%.*s", (int)n, p);
            return v;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return NULL;
}

static void on_server_closed(void *arg)
{
    server_closed = true;
}

static void setup(void)
{
    loop_start(WATCHDOG_MS);
    nreqs = 0;
    npeers = 0;
    nheld = 0;
    hold = false;
    answer_status = 200;
    answer_ctype = "text/plain";
    answer_headers = NULL;
    answer_body = "ok";
    answer_echo = false;
    server_closed = false;
    struct lk_httpd_opts o = {.endpoint = "127.0.0.1:0", .name = "test"};
    ck_assert_int_eq(lk_httpd_create(&server, &loop, &o, handler, NULL), 0);
    port = lk_httpd_port(server);
    ck_assert_int_gt(port, 0);
}

static void teardown(void)
{
    for (int i = 0; i < nheld; i++)
        lk_httpd_respond(held[i], 200, NULL, NULL, NULL, 0);
    nheld = 0;
    lk_httpd_close(server, on_server_closed, NULL);
    RUN_UNTIL(server_closed);
    loop_finish();
    for (int i = 0; i < nreqs; i++)
        free(reqs[i].body);
}

/* ---- the client side ---- */

struct got {
    int calls;
    int http_status;
    int err;
    int curl_code;
    char error[CURL_ERROR_SIZE];
    int64_t retry_after_ms;
    char content_type[128];
    char body[4096];
    size_t body_len;
    bool truncated;
};

static void on_result(void *arg, const struct lk_http_result *r)
{
    struct got *g = arg;
    g->calls++;
    g->http_status = r->http_status;
    g->err = r->err;
    g->curl_code = r->curl_code;
    snprintf(g->error, sizeof(g->error), "%s", r->error);
    g->retry_after_ms = r->retry_after_ms;
    snprintf(g->content_type, sizeof(g->content_type), "%s", r->content_type);
    ck_assert_uint_lt(r->body_len, sizeof(g->body));
    memcpy(g->body, r->body, r->body_len);
    g->body[r->body_len] = '\0';
    g->body_len = r->body_len;
    g->truncated = r->body_truncated;
}

static bool client_closed;

static void on_client_closed(void *arg)
{
    client_closed = true;
}

static lk_http_client *make_client(const struct lk_http_client_opts *o)
{
    lk_http_client *c;
    struct lk_http_client_opts def = {.user_agent = "lookout-test/1"};
    ck_assert_int_eq(lk_http_client_create(&c, &loop, o != NULL ? o : &def), 0);
    client_closed = false;
    return c;
}

static void close_client(lk_http_client *c)
{
    lk_http_client_close(c, on_client_closed, NULL);
    RUN_UNTIL(client_closed);
}

static char url_buf[256];

static const char *url(const char *path)
{
    snprintf(url_buf, sizeof(url_buf), "http://127.0.0.1:%d%s", port, path);
    return url_buf;
}

static struct iovec iov_str(const char *s)
{
    struct iovec v = {.iov_base = (void *)s, .iov_len = strlen(s)};
    return v;
}

/* ---- tests ---- */

START_TEST(body_from_three_iovecs_arrives_exactly)
{
    /* Large enough that curl would ask for 100-continue if it were allowed. */
    size_t big_len = 1536 * 1024;
    uint8_t *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (uint8_t)(i * 7 + 3);
    struct iovec iov[3] = {iov_str("head-"), {.iov_base = big, .iov_len = big_len},
                           iov_str("-tail")};
    struct got g = {0};
    lk_http_client *c = make_client(NULL);
    ck_assert_int_eq(lk_http_client_post(c, url("/in"), NULL, 0, iov, 3, 10000,
                                         on_result, &g),
                     0);
    RUN_UNTIL(g.calls == 1);
    ck_assert_int_eq(g.http_status, 200);
    ck_assert_int_eq(g.err, 0);
    ck_assert_int_eq(nreqs, 1);
    ck_assert_str_eq(reqs[0].method, "POST");
    ck_assert_str_eq(reqs[0].path, "/in");
    ck_assert_uint_eq(reqs[0].body_len, 5 + big_len + 5);
    ck_assert_int_eq(memcmp(reqs[0].body, "head-", 5), 0);
    ck_assert_int_eq(memcmp(reqs[0].body + 5, big, big_len), 0);
    ck_assert_int_eq(memcmp(reqs[0].body + 5 + big_len, "-tail", 5), 0);
    ck_assert_ptr_null(seen_header(&reqs[0], "expect"));
    ck_assert_ptr_null(seen_header(&reqs[0], "content-type"));
    ck_assert_ptr_null(seen_header(&reqs[0], "transfer-encoding"));
    close_client(c);
    free(big);
}
END_TEST

START_TEST(empty_body_posts)
{
    struct got g = {0};
    lk_http_client *c = make_client(NULL);
    ck_assert_int_eq(lk_http_client_post(c, url("/e"), NULL, 0, NULL, 0, 10000,
                                         on_result, &g),
                     0);
    RUN_UNTIL(g.calls == 1);
    ck_assert_int_eq(g.http_status, 200);
    ck_assert_uint_eq(reqs[0].body_len, 0);
    ck_assert_str_eq(seen_header(&reqs[0], "content-length"), "0");
    close_client(c);
}
END_TEST

START_TEST(custom_headers_arrive)
{
    struct lk_header h[] = {
        {"Content-Type", "application/x-protobuf"},
        {"X-Scope-OrgID", "tenant-1"},
        {"Authorization", "Bearer abc def"},
        {"X-Empty", ""},
    };
    struct iovec b = iov_str("x");
    struct got g = {0};
    lk_http_client *c = make_client(NULL);
    ck_assert_int_eq(lk_http_client_post(c, url("/h"), h, 4, &b, 1, 10000,
                                         on_result, &g),
                     0);
    RUN_UNTIL(g.calls == 1);
    ck_assert_int_eq(g.http_status, 200);
    ck_assert_str_eq(seen_header(&reqs[0], "content-type"), "application/x-protobuf");
    ck_assert_str_eq(seen_header(&reqs[0], "x-scope-orgid"), "tenant-1");
    ck_assert_str_eq(seen_header(&reqs[0], "authorization"), "Bearer abc def");
    ck_assert_str_eq(seen_header(&reqs[0], "x-empty"), "");
    ck_assert_str_eq(seen_header(&reqs[0], "user-agent"), "lookout-test/1");
    close_client(c);
}
END_TEST

START_TEST(invalid_arguments_refused)
{
    struct lk_header crlf[] = {{"X-A", "v\r\nX-Injected: 1"}};
    struct lk_header badname[] = {{"X A", "v"}};
    struct got g = {0};
    lk_http_client *c = make_client(NULL);
    ck_assert_int_eq(lk_http_client_post(c, url("/"), crlf, 1, NULL, 0, 1000,
                                         on_result, &g),
                     LK_EINVAL);
    ck_assert_int_eq(lk_http_client_post(c, url("/"), badname, 1, NULL, 0, 1000,
                                         on_result, &g),
                     LK_EINVAL);
    ck_assert_int_eq(lk_http_client_post(c, "ftp://127.0.0.1/", NULL, 0, NULL, 0,
                                         1000, on_result, &g),
                     LK_EINVAL);
    close_client(c);
    ck_assert_int_eq(g.calls, 0);
    ck_assert_int_eq(nreqs, 0);

    ck_assert(lk_http_url_is_valid("http://127.0.0.1:4318/v1/traces"));
    ck_assert(lk_http_url_is_valid("https://collector.example:443"));
    ck_assert(lk_http_url_is_valid("HTTP://[::1]:4318/"));
    ck_assert(!lk_http_url_is_valid("127.0.0.1:4318"));
    ck_assert(!lk_http_url_is_valid("http://"));
    ck_assert(!lk_http_url_is_valid("unix:///tmp/x"));
    ck_assert(!lk_http_url_is_valid(NULL));
    ck_assert(lk_http_header_is_valid("X-Ok", ""));
    ck_assert(!lk_http_header_is_valid("", "v"));
    ck_assert(!lk_http_header_is_valid("X:Y", "v"));
    ck_assert(!lk_http_header_is_valid("X", "a\nb"));
}
END_TEST

START_TEST(response_reaches_callback)
{
    answer_status = 503;
    answer_ctype = "text/plain; charset=utf-8";
    answer_headers = "Retry-After: 7\r\n";
    answer_body = "busy, come back later";
    struct iovec b = iov_str("x");
    struct got g = {0};
    lk_http_client *c = make_client(NULL);
    ck_assert_int_eq(lk_http_client_post(c, url("/r"), NULL, 0, &b, 1, 10000,
                                         on_result, &g),
                     0);
    RUN_UNTIL(g.calls == 1);
    ck_assert_int_eq(g.http_status, 503);
    ck_assert_int_eq(g.err, 0);
    ck_assert_int_eq(g.curl_code, 0);
    ck_assert_str_eq(g.error, "");
    ck_assert_int_eq(g.retry_after_ms, 7000);
    ck_assert_str_eq(g.content_type, "text/plain; charset=utf-8");
    ck_assert_str_eq(g.body, "busy, come back later");
    ck_assert(!g.truncated);
    close_client(c);
}
END_TEST

START_TEST(retry_after_http_date_reaches_callback)
{
    static char hdr[128];
    char date[64];
    time_t later = time(NULL) + 3600;
    struct tm tm;
    gmtime_r(&later, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(hdr, sizeof(hdr), "Retry-After: %s\r\n", date);
    answer_status = 429;
    answer_headers = hdr;
    struct iovec b = iov_str("x");
    struct got g = {0};
    lk_http_client *c = make_client(NULL);
    ck_assert_int_eq(lk_http_client_post(c, url("/d"), NULL, 0, &b, 1, 10000,
                                         on_result, &g),
                     0);
    RUN_UNTIL(g.calls == 1);
    ck_assert_int_eq(g.http_status, 429);
    /* The date is an hour ahead: whatever the clock did meanwhile, the delay
     * is near an hour and never more. */
    ck_assert_int_le(g.retry_after_ms, 3600 * 1000);
    ck_assert_int_gt(g.retry_after_ms, 3000 * 1000);
    close_client(c);
}
END_TEST

START_TEST(no_retry_after_is_minus_one)
{
    struct got g = {0};
    lk_http_client *c = make_client(NULL);
    ck_assert_int_eq(lk_http_client_post(c, url("/n"), NULL, 0, NULL, 0, 10000,
                                         on_result, &g),
                     0);
    RUN_UNTIL(g.calls == 1);
    ck_assert_int_eq(g.retry_after_ms, -1);
    ck_assert_str_eq(g.body, "ok");
    close_client(c);
}
END_TEST

START_TEST(retry_after_parsing)
{
    /* Sun, 06 Nov 1994 08:49:37 GMT is 784111777. */
    const time_t t0 = 784111777;
    ck_assert_int_eq(lk__http_retry_after_ms("120", 0), 120000);
    ck_assert_int_eq(lk__http_retry_after_ms(" 0 ", 0), 0);
    ck_assert_int_eq(lk__http_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", t0 - 30), 30000);
    ck_assert_int_eq(lk__http_retry_after_ms("Sunday, 06-Nov-94 08:49:37 GMT", t0 - 2), 2000);
    ck_assert_int_eq(lk__http_retry_after_ms("Sun Nov  6 08:49:37 1994", t0 - 1), 1000);
    ck_assert_int_eq(lk__http_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", t0 + 60), 0);
    ck_assert_int_eq(lk__http_retry_after_ms("99999999999999999999999", 0),
                     INT64_C(365) * 24 * 3600 * 1000);
    ck_assert_int_eq(lk__http_retry_after_ms("", 0), -1);
    ck_assert_int_eq(lk__http_retry_after_ms("soon", 0), -1);
    ck_assert_int_eq(lk__http_retry_after_ms("-5", 0), -1);
}
END_TEST

static lk_http_client *chain_client;
static struct got chain_got[3];
static int chain_next;

static void on_chain(void *arg, const struct lk_http_result *r)
{
    on_result(arg, r);
    if (chain_next < 3) {
        struct got *g = &chain_got[chain_next++];
        ck_assert_int_eq(lk_http_client_post(chain_client, url("/k"), NULL, 0,
                                             NULL, 0, 10000, on_chain, g),
                         0);
    }
}

START_TEST(keep_alive_reuses_one_connection)
{
    memset(chain_got, 0, sizeof(chain_got));
    chain_next = 1;
    chain_client = make_client(NULL);
    ck_assert_int_eq(lk_http_client_post(chain_client, url("/k"), NULL, 0, NULL,
                                         0, 10000, on_chain, &chain_got[0]),
                     0);
    RUN_UNTIL(chain_got[2].calls == 1);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(chain_got[i].http_status, 200);
    ck_assert_int_eq(nreqs, 3);
    ck_assert_int_eq(npeers, 1);
    close_client(chain_client);
}
END_TEST

/* A port nobody listens on: bound, never listened, closed. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

START_TEST(connection_refused_is_transport_error)
{
    char u[64];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/x", closed_port());
    struct iovec b = iov_str("x");
    struct got g = {0};
    lk_http_client *c = make_client(NULL);
    ck_assert_int_eq(lk_http_client_post(c, u, NULL, 0, &b, 1, 10000, on_result, &g), 0);
    RUN_UNTIL(g.calls == 1);
    ck_assert_int_eq(g.http_status, 0);
    ck_assert_int_eq(g.err, LK_EIO);
    ck_assert_int_eq(g.curl_code, CURLE_COULDNT_CONNECT);
    ck_assert_str_ne(g.error, "");
    ck_assert_int_eq(g.retry_after_ms, -1);
    close_client(c);
}
END_TEST

START_TEST(host_name_resolves)
{
    char u[64];
    snprintf(u, sizeof(u), "http://localhost:%d/name", port);
    struct got g = {0};
    lk_http_client *c = make_client(NULL);
    ck_assert_int_eq(lk_http_client_post(c, u, NULL, 0, NULL, 0, 10000, on_result, &g), 0);
    RUN_UNTIL(g.calls == 1);
    /* localhost may resolve to ::1 first, where nobody listens: curl then
     * tries 127.0.0.1. */
    ck_assert_int_eq(g.http_status, 200);
    ck_assert_str_eq(reqs[0].path, "/name");
    close_client(c);
}
END_TEST

START_TEST(held_request_times_out)
{
    hold = true;
    struct iovec b = iov_str("x");
    struct got g = {0};
    lk_http_client *c = make_client(NULL);
    ck_assert_int_eq(lk_http_client_post(c, url("/slow"), NULL, 0, &b, 1, 100,
                                         on_result, &g),
                     0);
    RUN_UNTIL(g.calls == 1);
    ck_assert_int_eq(nheld, 1);
    ck_assert_int_eq(g.http_status, 0);
    ck_assert_int_eq(g.err, LK_EIO);
    ck_assert_int_eq(g.curl_code, CURLE_OPERATION_TIMEDOUT);
    ck_assert_str_ne(g.error, "");
    close_client(c);
}
END_TEST

START_TEST(https_to_plain_server_fails_cleanly)
{
    char u[64];
    snprintf(u, sizeof(u), "https://127.0.0.1:%d/x", port);
    struct got g = {0};
    lk_http_client *c = make_client(NULL);
    ck_assert_int_eq(lk_http_client_post(c, u, NULL, 0, NULL, 0, 10000, on_result, &g), 0);
    RUN_UNTIL(g.calls == 1);
    ck_assert_int_eq(g.http_status, 0);
    ck_assert_int_eq(g.err, LK_EIO);
    ck_assert_int_ne(g.curl_code, 0);
    close_client(c);
}
END_TEST

START_TEST(tls_files_checked_at_create)
{
    lk_http_client *c;
    struct lk_tls_config tls = {.enabled = true, .ca_file = "/nonexistent/ca.pem"};
    struct lk_http_client_opts o = {.tls = &tls};
    ck_assert_int_eq(lk_http_client_create(&c, &loop, &o), LK_EIO);
    tls.ca_file = NULL;
    tls.cert_file = "/nonexistent/cert.pem";
    ck_assert_int_eq(lk_http_client_create(&c, &loop, &o), LK_EINVAL);
}
END_TEST

START_TEST(large_response_truncated)
{
    static char big[1000];
    memset(big, 'z', sizeof(big) - 1);
    answer_body = big;
    struct lk_http_client_opts o = {.max_response_bytes = 16};
    struct got g = {0};
    lk_http_client *c = make_client(&o);
    ck_assert_int_eq(lk_http_client_post(c, url("/big"), NULL, 0, NULL, 0, 10000,
                                         on_result, &g),
                     0);
    RUN_UNTIL(g.calls == 1);
    ck_assert_int_eq(g.http_status, 200);
    ck_assert_uint_eq(g.body_len, 16);
    ck_assert(g.truncated);
    ck_assert_str_eq(g.body, "zzzzzzzzzzzzzzzz");
    close_client(c);
}
END_TEST

START_TEST(close_cancels_transfer_in_flight)
{
    hold = true;
    struct iovec b = iov_str("x");
    struct got g = {0};
    lk_http_client *c = make_client(NULL);
    ck_assert_int_eq(lk_http_client_post(c, url("/held"), NULL, 0, &b, 1, 0,
                                         on_result, &g),
                     0);
    RUN_UNTIL(nheld == 1);
    ck_assert_int_eq(g.calls, 0);
    lk_http_client_close(c, on_client_closed, NULL);
    ck_assert_int_eq(g.calls, 1);
    ck_assert_int_eq(g.err, LK_ECANCELED);
    ck_assert_int_eq(g.http_status, 0);
    ck_assert(!client_closed);
    RUN_UNTIL(client_closed);
    ck_assert_int_eq(g.calls, 1);
}
END_TEST

static lk_http_client *inner_client;
static struct got inner_got[2];
static int inner_post_rc;

static void on_first_closes(void *arg, const struct lk_http_result *r)
{
    on_result(arg, r);
    lk_http_client_close(inner_client, on_client_closed, NULL);
    /* The client is closing: a new post is refused. (It is not freed
     * before the loop runs again.) */
    inner_post_rc = lk_http_client_post(inner_client, url("/late"), NULL, 0,
                                        NULL, 0, 1000, on_result, &inner_got[1]);
}

START_TEST(close_from_inside_a_callback)
{
    memset(inner_got, 0, sizeof(inner_got));
    inner_client = make_client(NULL);
    answer_status = 202;
    ck_assert_int_eq(lk_http_client_post(inner_client, url("/first"), NULL, 0,
                                         NULL, 0, 10000, on_first_closes,
                                         &inner_got[0]),
                     0);
    RUN_UNTIL(client_closed);
    ck_assert_int_eq(inner_got[0].calls, 1);
    ck_assert_int_eq(inner_got[0].http_status, 202);
    ck_assert_int_eq(inner_post_rc, LK_ECLOSED);
    ck_assert_int_eq(inner_got[1].calls, 0);
}
END_TEST

START_TEST(fifty_concurrent_posts_complete)
{
    enum { N = 50 };
    static struct got g[N];
    static char bodies[N][32];
    struct iovec iov[N];
    memset(g, 0, sizeof(g));
    answer_echo = true;
    lk_http_client *c = make_client(NULL);
    for (int i = 0; i < N; i++) {
        snprintf(bodies[i], sizeof(bodies[i]), "request number %d", i);
        iov[i] = iov_str(bodies[i]);
        ck_assert_int_eq(lk_http_client_post(c, url("/many"), NULL, 0, &iov[i], 1,
                                             10000, on_result, &g[i]),
                         0);
    }
    int done = 0;
    while (done < N) {
        ck_assert_msg(!watchdog_fired, "watchdog");
        uv_run(&loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < N; i++)
            done += g[i].calls;
    }
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(g[i].calls, 1);
        ck_assert_int_eq(g[i].http_status, 200);
        ck_assert_str_eq(g[i].body, bodies[i]);
    }
    ck_assert_int_eq(nreqs, N);
    /* At most the default 4 connections per host were opened. */
    ck_assert_int_le(npeers, 4);
    close_client(c);
}
END_TEST

/* ---- TLS, against a small blocking OpenSSL server on a thread ---- */

#if defined(__has_include)
#if __has_include(<openssl/ssl.h>)
#define HAVE_OPENSSL 1
#endif
#endif

#ifdef HAVE_OPENSSL
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <sys/time.h>

/* The test PKI: a CA, a localhost server certificate and a client one. */
#include "tls_fixtures.h"

/* Serves one connection: handshake, one request, one response. */
struct tls_srv {
    int lfd;
    int port;
    SSL_CTX *ctx;
    pthread_t thread;
    /* Written by the server thread, read after the join. */
    bool handshake_ok;
    bool answered;
    char client_cn[128];
    char request_line[128];
    size_t body_len;
};

static void *tls_srv_main(void *arg)
{
    struct tls_srv *t = arg;
    struct pollfd p = {.fd = t->lfd, .events = POLLIN};
    if (poll(&p, 1, WATCHDOG_MS) != 1)
        return NULL;
    int fd = accept(t->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    SSL *s = SSL_new(t->ctx);
    SSL_set_fd(s, fd);
    if (SSL_accept(s) == 1) {
        t->handshake_ok = true;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
        X509 *peer = SSL_get1_peer_certificate(s);
#else
        X509 *peer = SSL_get_peer_certificate(s);
#endif
        if (peer != NULL) {
            X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName,
                                      t->client_cn, sizeof(t->client_cn));
            X509_free(peer);
        }
        char buf[8192];
        size_t len = 0;
        char *end = NULL;
        size_t want = 0;
        for (;;) {
            if (end == NULL && (end = memmem(buf, len, "\r\n\r\n", 4)) != NULL) {
                const char *cl = strcasestr(buf, "\r\ncontent-length:");
                want = (size_t)(end - buf) + 4 +
                       (cl != NULL && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
            }
            if (end != NULL && len >= want)
                break;
            if (len == sizeof(buf) - 1)
                break;
            int n = SSL_read(s, buf + len, (int)(sizeof(buf) - 1 - len));
            if (n <= 0)
                break;
            len += (size_t)n;
            buf[len] = '\0';
        }
        if (end != NULL && len >= want) {
            snprintf(t->request_line, sizeof(t->request_line), "%.*s",
                     (int)strcspn(buf, "\r"), buf);
            t->body_len = len - (size_t)(end - buf) - 4;
            static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                       "Content-Length: 3\r\nConnection: close\r\n\r\ntls";
            t->answered = SSL_write(s, resp, (int)sizeof(resp) - 1) > 0;
        }
        SSL_shutdown(s);
    }
    SSL_free(s);
    close(fd);
    return NULL;
}

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/lk_http_client_test_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void tls_srv_start(struct tls_srv *t, const char *ca_path)
{
    memset(t, 0, sizeof(*t));
    char *cert = write_temp(TEST_SERVER_PEM);
    char *key = write_temp(TEST_SERVER_KEY);
    t->ctx = SSL_CTX_new(TLS_server_method());
    ck_assert_ptr_nonnull(t->ctx);
    ck_assert_int_eq(SSL_CTX_use_certificate_file(t->ctx, cert, SSL_FILETYPE_PEM), 1);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM), 1);
    unlink(cert);
    unlink(key);
    free(cert);
    free(key);
    if (ca_path != NULL) { /* mutual TLS: a client certificate is required */
        ck_assert_int_eq(SSL_CTX_load_verify_locations(t->ctx, ca_path, NULL), 1);
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                           NULL);
    }
    t->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(t->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(t->lfd, 4), 0);
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(getsockname(t->lfd, (struct sockaddr *)&sa, &len), 0);
    t->port = ntohs(sa.sin_port);
    ck_assert_int_eq(pthread_create(&t->thread, NULL, tls_srv_main, t), 0);
}

static void tls_srv_stop(struct tls_srv *t)
{
    pthread_join(t->thread, NULL);
    close(t->lfd);
    SSL_CTX_free(t->ctx);
}

/* POSTs "secret" to the TLS server with |tls| and waits for the result. */
static void tls_post(struct tls_srv *t, const struct lk_tls_config *tls, struct got *g)
{
    char u[64];
    snprintf(u, sizeof(u), "https://127.0.0.1:%d/v1/logs", t->port);
    struct lk_http_client_opts o = {.tls = tls};
    struct iovec b = iov_str("secret");
    lk_http_client *c = make_client(&o);
    ck_assert_int_eq(lk_http_client_post(c, u, NULL, 0, &b, 1, 10000, on_result, g), 0);
    RUN_UNTIL(g->calls == 1);
    close_client(c);
    tls_srv_stop(t);
}

START_TEST(tls_verified_with_ca_file)
{
    struct tls_srv t;
    char *ca = write_temp(TEST_CA_PEM);
    struct lk_tls_config tls = {.enabled = true, .ca_file = ca};
    struct got g = {0};
    tls_srv_start(&t, NULL);
    tls_post(&t, &tls, &g);
    ck_assert_int_eq(g.http_status, 200);
    ck_assert_str_eq(g.body, "tls");
    ck_assert(t.answered);
    ck_assert_str_eq(t.request_line, "POST /v1/logs HTTP/1.1");
    ck_assert_uint_eq(t.body_len, 6);
    unlink(ca);
    free(ca);
}
END_TEST

START_TEST(tls_unknown_ca_refused)
{
    struct tls_srv t;
    struct got g = {0};
    tls_srv_start(&t, NULL);
    tls_post(&t, NULL, &g); /* system roots do not know the test CA */
    ck_assert_int_eq(g.http_status, 0);
    ck_assert_int_eq(g.err, LK_EIO);
    ck_assert_int_eq(g.curl_code, CURLE_PEER_FAILED_VERIFICATION);
    ck_assert(!t.answered);
}
END_TEST

START_TEST(tls_insecure_skip_verify_connects)
{
    struct tls_srv t;
    struct lk_tls_config tls = {.enabled = true, .insecure_skip_verify = true};
    struct got g = {0};
    tls_srv_start(&t, NULL);
    tls_post(&t, &tls, &g);
    ck_assert_int_eq(g.http_status, 200);
    ck_assert(t.answered);
}
END_TEST

START_TEST(mutual_tls_presents_client_certificate)
{
    struct tls_srv t;
    char *ca = write_temp(TEST_CA_PEM);
    char *cert = write_temp(TEST_CLIENT_PEM);
    char *key = write_temp(TEST_CLIENT_KEY);
    struct lk_tls_config tls = {.enabled = true, .ca_file = ca, .cert_file = cert,
                                .key_file = key};
    struct got g = {0};
    tls_srv_start(&t, ca);
    tls_post(&t, &tls, &g);
    ck_assert_int_eq(g.http_status, 200);
    ck_assert_str_eq(t.client_cn, "lookout test client");

    /* Without the client certificate the server refuses. */
    struct lk_tls_config anon = {.enabled = true, .ca_file = ca};
    struct got g2 = {0};
    tls_srv_start(&t, ca);
    tls_post(&t, &anon, &g2);
    ck_assert_int_eq(g2.http_status, 0);
    ck_assert_int_eq(g2.err, LK_EIO);
    ck_assert(!t.answered);
    unlink(ca);
    unlink(cert);
    unlink(key);
    free(ca);
    free(cert);
    free(key);
}
END_TEST
#endif /* HAVE_OPENSSL */

static Suite *suite(void)
{
    Suite *s = suite_create("http_client");
    struct {
        const char *name;
        const TTest *t;
    } cases[] = {
        {"body", body_from_three_iovecs_arrives_exactly},
        {"empty_body", empty_body_posts},
        {"headers", custom_headers_arrive},
        {"invalid", invalid_arguments_refused},
        {"response", response_reaches_callback},
        {"retry_after_date", retry_after_http_date_reaches_callback},
        {"retry_after_absent", no_retry_after_is_minus_one},
        {"retry_after_parse", retry_after_parsing},
        {"keep_alive", keep_alive_reuses_one_connection},
        {"refused", connection_refused_is_transport_error},
        {"host_name", host_name_resolves},
        {"timeout", held_request_times_out},
        {"https_plain", https_to_plain_server_fails_cleanly},
        {"tls_files", tls_files_checked_at_create},
        {"truncated", large_response_truncated},
        {"close_in_flight", close_cancels_transfer_in_flight},
        {"close_in_callback", close_from_inside_a_callback},
        {"concurrent", fifty_concurrent_posts_complete},
#ifdef HAVE_OPENSSL
        {"tls_ca_file", tls_verified_with_ca_file},
        {"tls_unknown_ca", tls_unknown_ca_refused},
        {"tls_insecure", tls_insecure_skip_verify_connects},
        {"mtls", mutual_tls_presents_client_certificate},
#endif
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *t = tcase_create(cases[i].name);
        tcase_add_checked_fixture(t, setup, teardown);
        tcase_add_test(t, cases[i].t);
        suite_add_tcase(s, t);
    }
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* A proxy from the environment must not take our loopback requests. */
    setenv("no_proxy", "*", 1);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
