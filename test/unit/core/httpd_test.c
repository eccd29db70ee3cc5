/*
 * The HTTP/1.1 server against real sockets on 127.0.0.1 (port 0): the loop
 * runs on the test's main thread and a blocking client on a second thread
 * records what it sees; assertions run after both are done.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "core/err.h"
#include "core/httpd.h"
#include "core/selfmetrics.h"

/* ---- a blocking client ---- */

struct cli {
    int fd;
    size_t len;
    char buf[256 * 1024];
};

struct resp {
    int status; /* 0: no response (EOF or error before one) */
    char head[8192];
    char body[64 * 1024];
    size_t body_len;
};

static void cli_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static struct cli *cli_connect(int port)
{
    struct cli *c = calloc(1, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cli_timeouts(c->fd);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(c->fd);
        c->fd = -1;
    }
    return c;
}

static struct cli *cli_connect_unix(const char *path)
{
    struct cli *c = calloc(1, sizeof(*c));
    c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    cli_timeouts(c->fd);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(c->fd);
        c->fd = -1;
    }
    return c;
}

static void cli_close(struct cli *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static int cli_send(struct cli *c, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static int cli_sends(struct cli *c, const char *s)
{
    return cli_send(c, s, strlen(s));
}

/* Reads more input; 0 at EOF, -1 on error or timeout. */
static ssize_t cli_fill(struct cli *c)
{
    if (c->len == sizeof(c->buf))
        return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

static void cli_consume(struct cli *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Reads one response. A response to HEAD (|head|), 1xx, 204 and 304 have no
 * body; otherwise Content-Length is required (the server always sends it). */
static int cli_read(struct cli *c, struct resp *r, int head)
{
    memset(r, 0, sizeof(*r));
    char *end;
    for (;;) {
        end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end != NULL)
            break;
        if (cli_fill(c) <= 0)
            return -1;
    }
    size_t hlen = (size_t)(end - c->buf) + 4;
    if (hlen >= sizeof(r->head))
        return -1;
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = '\0';
    cli_consume(c, hlen);
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    size_t clen = 0;
    const char *cl = strcasestr(r->head, "\r\ncontent-length:");
    if (cl != NULL)
        clen = strtoul(cl + 17, NULL, 10);
    if (head || r->status < 200 || r->status == 204 || r->status == 304)
        clen = 0;
    if (clen >= sizeof(r->body))
        return -1;
    while (c->len < clen) {
        if (cli_fill(c) <= 0)
            return -1;
    }
    memcpy(r->body, c->buf, clen);
    r->body[clen] = '\0';
    r->body_len = clen;
    cli_consume(c, clen);
    return 0;
}

/* True when the server closed the connection (EOF or reset) with nothing
 * more to read. */
static int cli_at_eof(struct cli *c)
{
    if (c->len > 0)
        return 0;
    ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static const char *resp_header(struct resp *r, const char *name, char *out,
                               size_t outlen)
{
    char key[128];
    snprintf(key, sizeof(key), "\r\n%s:", name);
    const char *p = strcasestr(r->head, key);
    if (p == NULL)
        return NULL;
    p += strlen(key);
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "\r");
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return out;
}

/* ---- the server side ---- */

static uv_loop_t loop;
static lk_httpd *server;
static int server_port;
static bool server_closed;
static bool closed_by_test;
static uv_async_t client_done;
static pthread_t client_thread;
static void (*client_fn)(void *);
static void *client_arg;
static lk_httpd_req *held;
static int held_respond_rc;
static bool closed_before_held_answer;
static int requests_seen;
static char paths_seen[1024]; /* " /a /b" */
/* /park requests wait here until the client thread sends |release|. */
static lk_httpd_req *parked[8];
static int parked_n; /* read by the client thread: atomic */
static uv_async_t release;
static lk_metrics *metrics;
static lk_counter *closed_ctr[LK_CONN_CLOSE_REASONS];
static lk_counter *refused_ctr;

static void answer_parked(void)
{
    int n = __atomic_load_n(&parked_n, __ATOMIC_SEQ_CST);
    for (int i = 0; i < n; i++)
        lk_httpd_respond(parked[i], 200, "text/plain", NULL, "parked", 6);
    __atomic_store_n(&parked_n, 0, __ATOMIC_SEQ_CST);
}

static void on_release(uv_async_t *a)
{
    answer_parked();
}

struct delayed {
    uv_timer_t t;
    lk_httpd_req *req;
    char body[512];
};

static void on_delayed_close(uv_handle_t *h)
{
    free(h->data);
}

static void on_delayed(uv_timer_t *t)
{
    struct delayed *d = t->data;
    lk_httpd_respond(d->req, 200, "text/plain", NULL, d->body, strlen(d->body));
    uv_close((uv_handle_t *)&d->t, on_delayed_close);
}

/* /defer: answered later, by the test, with an abandon hook. */
static lk_httpd_req *deferred;
static int abandoned;       /* calls of the hook */
static int abandon_rc = 1;  /* what answering from the hook returned */
static int seen_while_deferred;
static uv_idle_t turns;  /* runs once per loop turn while /defer waits */
static int turns_left;   /* 0: /defer waits for the test's close instead */

static void on_abandon(lk_httpd_req *req, void *arg)
{
    ck_assert_ptr_eq(req, deferred);
    abandoned++;
    abandon_rc = lk_httpd_respond(req, 503, NULL, NULL, NULL, 0);
    deferred = NULL;
}

/* Answers /defer after a number of loop turns. */
static void on_turn(uv_idle_t *t)
{
    if (--turns_left > 0)
        return;
    seen_while_deferred = requests_seen;
    ck_assert_int_eq(lk_httpd_respond(deferred, 200, "text/plain", NULL, "deferred", 8), 0);
    deferred = NULL;
    uv_close((uv_handle_t *)t, NULL);
}

/* /async?ms=N answers after N ms; /hold keeps the request; /defer is kept
 * with an abandon hook; anything else is echoed at once as "M=method P=path
 * Q=query X=x-test B=body". */
static void handler(lk_httpd_req *req, void *arg)
{
    requests_seen++;
    const char *path = lk_httpd_req_path(req);
    size_t used = strlen(paths_seen);
    snprintf(paths_seen + used, sizeof(paths_seen) - used, " %s", path);
    if (strcmp(path, "/hold") == 0) {
        held = req;
        return;
    }
    if (strcmp(path, "/defer") == 0) {
        deferred = req;
        lk_httpd_req_on_abandon(req, on_abandon, NULL);
        if (turns_left > 0)
            uv_idle_start(&turns, on_turn);
        return;
    }
    if (strcmp(path, "/park") == 0) {
        int n = __atomic_load_n(&parked_n, __ATOMIC_SEQ_CST);
        ck_assert_int_lt(n, 8);
        parked[n] = req;
        __atomic_store_n(&parked_n, n + 1, __ATOMIC_SEQ_CST);
        return;
    }
    size_t blen;
    const uint8_t *body = lk_httpd_req_body(req, &blen);
    const char *x = lk_httpd_req_header(req, "x-test");
    char text[512];
    snprintf(text, sizeof(text), "M=%s P=%s Q=%s X=%s B=%.*s",
             lk_httpd_req_method(req), path, lk_httpd_req_query(req),
             x != NULL ? x : "-", (int)(blen < 200 ? blen : 200),
             (const char *)body);
    if (strncmp(path, "/async", 6) == 0) {
        struct delayed *d = calloc(1, sizeof(*d));
        d->req = req;
        snprintf(d->body, sizeof(d->body), "%s", text);
        uv_timer_init(&loop, &d->t);
        d->t.data = d;
        uv_timer_start(&d->t, on_delayed,
                       strtoul(lk_httpd_req_query(req) + 3, NULL, 10), 0);
        return;
    }
    char extra[64];
    snprintf(extra, sizeof(extra), "X-Body-Len: %zu\r\n", blen);
    lk_httpd_respond(req, 200, "text/plain", extra, text, strlen(text));
}

static void on_server_closed(void *arg)
{
    server_closed = true;
}

static void on_client_done(uv_async_t *a)
{
    if (!closed_by_test)
        lk_httpd_close(server, on_server_closed, NULL);
    answer_parked(); /* the server waits for these answers (dropped) */
    uv_close((uv_handle_t *)a, NULL);
    uv_close((uv_handle_t *)&release, NULL);
}

static void *client_main(void *arg)
{
    client_fn(client_arg);
    uv_async_send(&client_done);
    return NULL;
}

static void start_server(const struct lk_httpd_opts *o)
{
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    server_closed = false;
    closed_by_test = false;
    held = NULL;
    requests_seen = 0;
    paths_seen[0] = '\0';
    parked_n = 0;
    ck_assert_int_eq(uv_async_init(&loop, &release, on_release), 0);
    ck_assert_int_eq(lk_httpd_create(&server, &loop, o, handler, NULL), 0);
    server_port = lk_httpd_port(server);
}

/* Runs |fn| on the client thread while the loop serves; returns when the
 * server is closed and every handle gone. */
static void run_client(void (*fn)(void *), void *arg)
{
    client_fn = fn;
    client_arg = arg;
    ck_assert_int_eq(uv_async_init(&loop, &client_done, on_client_done), 0);
    ck_assert_int_eq(pthread_create(&client_thread, NULL, client_main, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(client_thread, NULL);
    ck_assert(server_closed);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}

/* Counters of closes and refusals, fresh for each test (freed by
 * metrics_teardown). */
static struct lk_httpd_opts opts(void)
{
    static const char *const reasons[] = {"reason=\"handshake\"", "reason=\"idle\"",
                                          "reason=\"evicted\""};
    metrics = lk_metrics_create();
    struct lk_httpd_opts o = {.endpoint = "127.0.0.1:0", .name = "test"};
    for (int i = 0; i < LK_CONN_CLOSE_REASONS; i++)
        o.closed[i] = closed_ctr[i] =
            lk_metrics_counter(metrics, "closed_total", "", reasons[i]);
    o.connections_refused = refused_ctr = lk_metrics_counter(metrics, "refused_total", "", "");
    return o;
}

static void metrics_teardown(void)
{
    lk_metrics_destroy(metrics);
    metrics = NULL;
}

/* Waits (10 s at most) until the server holds |n| /park requests. */
static int wait_parked(int n)
{
    for (int i = 0; i < 10000; i++) {
        if (__atomic_load_n(&parked_n, __ATOMIC_SEQ_CST) >= n)
            return 0;
        usleep(1000);
    }
    return -1;
}

/* True when |c| is open with nothing to read (does not wait). */
static int cli_is_open_quiet(struct cli *c)
{
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* True when the server closed |c| without sending a byte. */
static int cli_closed_silently(struct cli *c)
{
    return c->len == 0 && cli_fill(c) == 0 && c->len == 0;
}

/* ---- tests ---- */

struct result {
    struct resp r[4];
    int rc[4];
    int eof;
    int eof2;
};

static void c_keep_alive(void *arg)
{
    struct result *res = arg;
    struct cli *c = cli_connect(server_port);
    cli_sends(c, "GET /one?a=1 HTTP/1.1\r\nHost: x\r\nX-Test:  hello  \r\n\r\n");
    res->rc[0] = cli_read(c, &res->r[0], 0);
    cli_sends(c, "POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab");
    usleep(20000);
    cli_sends(c, "cde");
    res->rc[1] = cli_read(c, &res->r[1], 0);
    cli_close(c);
}

START_TEST(keep_alive_two_requests)
{
    struct lk_httpd_opts o = opts();
    start_server(&o);
    ck_assert_int_gt(server_port, 0);
    struct result res;
    memset(&res, 0, sizeof(res));
    run_client(c_keep_alive, &res);
    ck_assert_int_eq(res.rc[0], 0);
    ck_assert_int_eq(res.r[0].status, 200);
    ck_assert_str_eq(res.r[0].body, "M=GET P=/one Q=a=1 X=hello B=");
    ck_assert_ptr_null(strcasestr(res.r[0].head, "connection: close"));
    ck_assert_int_eq(res.rc[1], 0);
    ck_assert_int_eq(res.r[1].status, 200);
    ck_assert_str_eq(res.r[1].body, "M=POST P=/two Q= X=- B=abcde");
    char v[32];
    ck_assert_str_eq(resp_header(&res.r[1], "x-body-len", v, sizeof(v)), "5");
    ck_assert_int_eq(requests_seen, 2);
}
END_TEST

static void c_pipelined(void *arg)
{
    struct result *res = arg;
    struct cli *c = cli_connect(server_port);
    /* The first answer is the slowest: order must still hold. */
    cli_sends(c, "GET /async?ms=80 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /async?ms=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n0\r\n\r\n"
                 "GET /now HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < 3; i++)
        res->rc[i] = cli_read(c, &res->r[i], 0);
    cli_close(c);
}

START_TEST(pipelined_in_order)
{
    struct lk_httpd_opts o = opts();
    start_server(&o);
    struct result res;
    memset(&res, 0, sizeof(res));
    run_client(c_pipelined, &res);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(res.rc[i], 0);
        ck_assert_int_eq(res.r[i].status, 200);
    }
    ck_assert_str_eq(res.r[0].body, "M=GET P=/async Q=ms=80 X=- B=");
    ck_assert_str_eq(res.r[1].body, "M=POST P=/async Q=ms=1 X=- B=abc");
    ck_assert_str_eq(res.r[2].body, "M=GET P=/now Q= X=- B=");
}
END_TEST

static void c_chunked(void *arg)
{
    struct result *res = arg;
    struct cli *c = cli_connect(server_port);
    cli_sends(c, "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n");
    usleep(20000);
    cli_sends(c, "1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\nTrailer-A: 1\r\n\r\n");
    res->rc[0] = cli_read(c, &res->r[0], 0);
    cli_close(c);
}

START_TEST(chunked_body)
{
    struct lk_httpd_opts o = opts();
    start_server(&o);
    struct result res;
    memset(&res, 0, sizeof(res));
    run_client(c_chunked, &res);
    ck_assert_int_eq(res.rc[0], 0);
    ck_assert_int_eq(res.r[0].status, 200);
    ck_assert_str_eq(res.r[0].body, "M=POST P=/c Q= X=- B=hello world!");
}
END_TEST

static void c_too_large(void *arg)
{
    struct result *res = arg;
    char big[5000];
    memset(big, 'z', sizeof(big));
    struct cli *c = cli_connect(server_port);
    cli_sends(c, "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
    cli_send(c, big, sizeof(big));
    res->rc[0] = cli_read(c, &res->r[0], 0);
    res->eof = cli_at_eof(c);
    cli_close(c);

    c = cli_connect(server_port);
    cli_sends(c, "POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 4; i++) {
        cli_sends(c, "258\r\n"); /* 600 bytes */
        cli_send(c, big, 600);
        cli_sends(c, "\r\n");
    }
    cli_sends(c, "0\r\n\r\n");
    res->rc[1] = cli_read(c, &res->r[1], 0);
    res->eof2 = cli_at_eof(c);
    cli_close(c);

    /* Exactly at the limit is fine. */
    c = cli_connect(server_port);
    cli_sends(c, "POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n");
    cli_send(c, big, 1024);
    res->rc[2] = cli_read(c, &res->r[2], 0);
    cli_close(c);
}

START_TEST(body_too_large_413)
{
    struct lk_httpd_opts o = opts();
    o.max_body_bytes = 1024;
    start_server(&o);
    struct result res;
    memset(&res, 0, sizeof(res));
    run_client(c_too_large, &res);
    ck_assert_int_eq(res.rc[0], 0);
    ck_assert_int_eq(res.r[0].status, 413);
    ck_assert_ptr_nonnull(strcasestr(res.r[0].head, "\r\nConnection: close\r\n"));
    ck_assert(res.eof);
    ck_assert_int_eq(res.rc[1], 0);
    ck_assert_int_eq(res.r[1].status, 413);
    ck_assert(res.eof2);
    ck_assert_int_eq(res.rc[2], 0);
    ck_assert_int_eq(res.r[2].status, 200);
}
END_TEST

static void c_headers_too_large(void *arg)
{
    struct result *res = arg;
    char line[4200];
    memset(line, 'h', sizeof(line));
    memcpy(line, "X-Big: ", 7);
    memcpy(line + sizeof(line) - 3, "\r\n", 3);
    struct cli *c = cli_connect(server_port);
    cli_sends(c, "GET / HTTP/1.1\r\nHost: x\r\n");
    cli_sends(c, line);
    cli_sends(c, "\r\n");
    res->rc[0] = cli_read(c, &res->r[0], 0);
    res->eof = cli_at_eof(c);
    cli_close(c);

    /* Many small fields: over the field count limit. */
    c = cli_connect(server_port);
    cli_sends(c, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < LK_HTTPD_MAX_HEADERS + 1; i++)
        cli_sends(c, "A: b\r\n");
    cli_sends(c, "\r\n");
    res->rc[1] = cli_read(c, &res->r[1], 0);
    cli_close(c);

    /* A request target longer than the limit. */
    c = cli_connect(server_port);
    cli_sends(c, "GET /");
    cli_send(c, line + 7, 4000);
    cli_sends(c, " HTTP/1.1\r\n\r\n");
    res->rc[2] = cli_read(c, &res->r[2], 0);
    cli_close(c);
}

START_TEST(headers_too_large_431)
{
    struct lk_httpd_opts o = opts();
    o.max_header_bytes = 2048;
    start_server(&o);
    struct result res;
    memset(&res, 0, sizeof(res));
    run_client(c_headers_too_large, &res);
    ck_assert_int_eq(res.rc[0], 0);
    ck_assert_int_eq(res.r[0].status, 431);
    ck_assert(res.eof);
    ck_assert_int_eq(res.rc[1], 0);
    ck_assert_int_eq(res.r[1].status, 431);
    ck_assert_int_eq(res.rc[2], 0);
    ck_assert_int_eq(res.r[2].status, 414);
    ck_assert_int_eq(requests_seen, 0);
}
END_TEST

static void c_garbage(void *arg)
{
    struct result *res = arg;
    struct cli *c = cli_connect(server_port);
    cli_sends(c, "HELLO THERE\r\n\r\n");
    res->rc[0] = cli_read(c, &res->r[0], 0);
    res->eof = cli_at_eof(c);
    cli_close(c);

    c = cli_connect(server_port);
    cli_sends(c, "GET / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n");
    res->rc[1] = cli_read(c, &res->r[1], 0);
    cli_close(c);

    c = cli_connect(server_port);
    cli_sends(c, "GET / HTTP/2.0\r\nHost: x\r\n\r\n");
    res->rc[2] = cli_read(c, &res->r[2], 0);
    res->eof2 = cli_at_eof(c);
    cli_close(c);
}

START_TEST(malformed_400_and_version_505)
{
    struct lk_httpd_opts o = opts();
    start_server(&o);
    struct result res;
    memset(&res, 0, sizeof(res));
    run_client(c_garbage, &res);
    ck_assert_int_eq(res.rc[0], 0);
    ck_assert_int_eq(res.r[0].status, 400);
    ck_assert(res.eof);
    ck_assert_int_eq(res.rc[1], 0);
    ck_assert_int_eq(res.r[1].status, 400);
    ck_assert_int_eq(res.rc[2], 0);
    ck_assert_int_eq(res.r[2].status, 505);
    ck_assert(res.eof2);
    ck_assert_int_eq(requests_seen, 0);
}
END_TEST

static void c_slow(void *arg)
{
    struct result *res = arg;
    struct cli *c = cli_connect(server_port);
    cli_sends(c, "GET /slow HTTP/1.1\r\nHost: x\r\n");
    /* ...and never finishes the header section. */
    res->rc[0] = cli_read(c, &res->r[0], 0);
    res->eof = cli_at_eof(c);
    cli_close(c);
}

START_TEST(request_timeout_408)
{
    struct lk_httpd_opts o = opts();
    o.request_timeout_ms = 300;
    start_server(&o);
    struct result res;
    memset(&res, 0, sizeof(res));
    run_client(c_slow, &res);
    ck_assert_int_eq(res.rc[0], 0);
    ck_assert_int_eq(res.r[0].status, 408);
    ck_assert(res.eof);
}
END_TEST

static void c_idle(void *arg)
{
    struct result *res = arg;
    struct cli *c = cli_connect(server_port);
    cli_sends(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    res->rc[0] = cli_read(c, &res->r[0], 0);
    /* Nothing more: the server closes without a response. */
    res->eof = cli_at_eof(c);
    cli_close(c);
}

START_TEST(idle_connection_closed)
{
    struct lk_httpd_opts o = opts();
    o.idle_timeout_ms = 200;
    start_server(&o);
    struct result res;
    memset(&res, 0, sizeof(res));
    run_client(c_idle, &res);
    ck_assert_int_eq(res.rc[0], 0);
    ck_assert_int_eq(res.r[0].status, 200);
    ck_assert(res.eof);
}
END_TEST

static void c_max_conns(void *arg)
{
    struct result *res = arg;
    struct cli *a = cli_connect(server_port);
    struct cli *b = cli_connect(server_port);
    cli_sends(a, "GET /park HTTP/1.1\r\n\r\n");
    cli_sends(b, "GET /park HTTP/1.1\r\n\r\n");
    /* Both are open and busy (their requests are with the handler): there
     * is no idle one to make room, so a third is turned away. */
    res->rc[3] = wait_parked(2);
    struct cli *c = cli_connect(server_port);
    res->rc[2] = cli_read(c, &res->r[2], 0);
    res->eof = cli_at_eof(c);
    cli_close(c);
    /* Answered, both are idle keep-alive connections: the next one makes
     * room by closing the one idle longest. */
    uv_async_send(&release);
    res->rc[0] = cli_read(a, &res->r[0], 0);
    res->rc[1] = cli_read(b, &res->r[1], 0);
    struct cli *d = cli_connect(server_port);
    cli_sends(d, "GET /d HTTP/1.1\r\n\r\n");
    if (cli_read(d, &res->r[3], 0) != 0)
        res->rc[3] = -1;
    cli_close(d);
    res->eof2 = cli_at_eof(a);
    cli_close(a);
    cli_close(b);
}

START_TEST(max_connections_503)
{
    struct lk_httpd_opts o = opts();
    o.max_connections = 2;
    start_server(&o);
    struct result res;
    memset(&res, 0, sizeof(res));
    run_client(c_max_conns, &res);
    ck_assert_int_eq(res.rc[0], 0);
    ck_assert_int_eq(res.r[0].status, 200);
    ck_assert_int_eq(res.rc[1], 0);
    ck_assert_int_eq(res.r[1].status, 200);
    ck_assert_int_eq(res.rc[2], 0);
    ck_assert_int_eq(res.r[2].status, 503);
    ck_assert(res.eof);
    ck_assert_int_eq(res.rc[3], 0);
    ck_assert_int_eq(res.r[3].status, 200);
    ck_assert(res.eof2); /* a, idle longest, made room for d */
    ck_assert_uint_eq(lk_counter_value(refused_ctr), 1);
    ck_assert_uint_eq(lk_counter_value(closed_ctr[LK_CONN_CLOSED_EVICTED]), 1);
}
END_TEST

struct evict_result {
    struct resp r[3];
    int rc[3];
    int a_eof, b_open, c_open;     /* after d */
    int b_eof, c_open2;            /* after e */
    int c_silent;                  /* after f */
};

static void c_evict(void *arg)
{
    struct evict_result *res = arg;
    /* a: one request answered, then idle (keep-alive). */
    struct cli *a = cli_connect(server_port);
    cli_sends(a, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    res->rc[0] = cli_read(a, &res->r[0], 0);
    /* b: connected, silent. c: a slowloris, part of a header section. */
    struct cli *b = cli_connect(server_port);
    struct cli *c = cli_connect(server_port);
    cli_sends(c, "GET /c HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    /* The limit is reached: d is served, a (idle longest) is closed. */
    struct cli *d = cli_connect(server_port);
    cli_sends(d, "GET /d HTTP/1.1\r\nHost: x\r\n\r\n");
    res->rc[1] = cli_read(d, &res->r[1], 0);
    res->a_eof = cli_at_eof(a);
    res->b_open = cli_is_open_quiet(b);
    res->c_open = cli_is_open_quiet(c);
    /* e makes b go, then f makes c go (d and e are idle now too, but
     * became so later). */
    struct cli *e = cli_connect(server_port);
    cli_sends(e, "GET /e HTTP/1.1\r\nHost: x\r\n\r\n");
    res->rc[2] = cli_read(e, &res->r[2], 0);
    res->b_eof = cli_closed_silently(b);
    res->c_open2 = cli_is_open_quiet(c);
    struct cli *f = cli_connect(server_port);
    res->c_silent = cli_closed_silently(c);
    cli_close(a);
    cli_close(b);
    cli_close(c);
    cli_close(d);
    cli_close(e);
    cli_close(f);
}

START_TEST(evicts_idle_longest)
{
    struct lk_httpd_opts o = opts();
    o.max_connections = 3;
    start_server(&o);
    struct evict_result res;
    memset(&res, 0, sizeof(res));
    run_client(c_evict, &res);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(res.rc[i], 0);
        ck_assert_int_eq(res.r[i].status, 200);
    }
    ck_assert(res.a_eof);
    ck_assert(res.b_open);
    ck_assert(res.c_open);
    ck_assert(res.b_eof);
    ck_assert(res.c_open2);
    ck_assert(res.c_silent);
    ck_assert_str_eq(paths_seen, " /a /d /e"); /* never /c */
    ck_assert_uint_eq(lk_counter_value(closed_ctr[LK_CONN_CLOSED_EVICTED]), 3);
    ck_assert_uint_eq(lk_counter_value(refused_ctr), 0);
}
END_TEST

static void c_handshake(void *arg)
{
    struct result *res = arg;
    struct cli *a = cli_connect(server_port); /* says nothing */
    struct cli *b = cli_connect(server_port); /* part of a request */
    cli_sends(b, "GET /b HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    struct cli *c = cli_connect(server_port); /* a request at once */
    cli_sends(c, "GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
    res->rc[0] = cli_read(c, &res->r[0], 0);
    res->eof = cli_closed_silently(a) && cli_closed_silently(b);
    /* Past the handshake, the timeout no longer applies to c. */
    usleep(600 * 1000);
    cli_sends(c, "GET /c2 HTTP/1.1\r\nHost: x\r\n\r\n");
    res->rc[1] = cli_read(c, &res->r[1], 0);
    cli_close(a);
    cli_close(b);
    cli_close(c);
}

START_TEST(handshake_timeout_closes_silent)
{
    struct lk_httpd_opts o = opts();
    o.handshake_timeout_ms = 300;
    start_server(&o);
    struct result res;
    memset(&res, 0, sizeof(res));
    run_client(c_handshake, &res);
    ck_assert(res.eof);
    ck_assert_int_eq(res.rc[0], 0);
    ck_assert_int_eq(res.r[0].status, 200);
    ck_assert_int_eq(res.rc[1], 0);
    ck_assert_int_eq(res.r[1].status, 200);
    ck_assert_str_eq(paths_seen, " /c /c2");
    ck_assert_uint_eq(lk_counter_value(closed_ctr[LK_CONN_CLOSED_HANDSHAKE]), 2);
    ck_assert_uint_eq(lk_counter_value(closed_ctr[LK_CONN_CLOSED_IDLE]), 0);
}
END_TEST

static void c_conn_close(void *arg)
{
    struct result *res = arg;
    struct cli *c = cli_connect(server_port);
    cli_sends(c, "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                 "GET /never HTTP/1.1\r\n\r\n");
    res->rc[0] = cli_read(c, &res->r[0], 0);
    res->eof = cli_at_eof(c);
    cli_close(c);

    c = cli_connect(server_port);
    cli_sends(c, "GET /ten HTTP/1.0\r\n\r\n");
    res->rc[1] = cli_read(c, &res->r[1], 0);
    res->eof2 = cli_at_eof(c);
    cli_close(c);

    c = cli_connect(server_port);
    cli_sends(c, "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    res->rc[2] = cli_read(c, &res->r[2], 0);
    cli_sends(c, "GET /ka2 HTTP/1.0\r\n\r\n");
    res->rc[3] = cli_read(c, &res->r[3], 0);
    cli_close(c);
}

START_TEST(connection_close_honoured)
{
    struct lk_httpd_opts o = opts();
    start_server(&o);
    struct result res;
    memset(&res, 0, sizeof(res));
    run_client(c_conn_close, &res);
    ck_assert_int_eq(res.rc[0], 0);
    ck_assert_int_eq(res.r[0].status, 200);
    ck_assert_ptr_nonnull(strcasestr(res.r[0].head, "\r\nConnection: close\r\n"));
    ck_assert(res.eof);
    ck_assert_int_eq(res.rc[1], 0);
    ck_assert_str_eq(res.r[1].body, "M=GET P=/ten Q= X=- B=");
    ck_assert(res.eof2);
    ck_assert_int_eq(res.rc[2], 0);
    ck_assert_ptr_nonnull(strcasestr(res.r[2].head, "\r\nConnection: keep-alive\r\n"));
    ck_assert_int_eq(res.rc[3], 0);
    ck_assert_str_eq(res.r[3].body, "M=GET P=/ka2 Q= X=- B=");
    ck_assert_str_eq(paths_seen, " /x /ten /ka /ka2"); /* never /never */
}
END_TEST

static void c_head(void *arg)
{
    struct result *res = arg;
    struct cli *c = cli_connect(server_port);
    cli_sends(c, "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n");
    res->rc[0] = cli_read(c, &res->r[0], 1);
    res->rc[1] = cli_read(c, &res->r[1], 0);
    cli_close(c);
}

START_TEST(head_has_no_body)
{
    struct lk_httpd_opts o = opts();
    start_server(&o);
    struct result res;
    memset(&res, 0, sizeof(res));
    run_client(c_head, &res);
    ck_assert_int_eq(res.rc[0], 0);
    ck_assert_int_eq(res.r[0].status, 200);
    char v[32];
    ck_assert_str_eq(resp_header(&res.r[0], "content-length", v, sizeof(v)),
                     "21"); /* strlen("M=HEAD P=/h Q= X=- B=") */
    ck_assert_int_eq(res.rc[1], 0);
    ck_assert_str_eq(res.r[1].body, "M=GET P=/g Q= X=- B=");
}
END_TEST

static void c_continue(void *arg)
{
    struct result *res = arg;
    struct cli *c = cli_connect(server_port);
    cli_sends(c, "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                 "Expect: 100-continue\r\n\r\n");
    res->rc[0] = cli_read(c, &res->r[0], 0);
    cli_sends(c, "body");
    res->rc[1] = cli_read(c, &res->r[1], 0);
    cli_close(c);
}

START_TEST(expect_continue)
{
    struct lk_httpd_opts o = opts();
    start_server(&o);
    struct result res;
    memset(&res, 0, sizeof(res));
    run_client(c_continue, &res);
    ck_assert_int_eq(res.rc[0], 0);
    ck_assert_int_eq(res.r[0].status, 100);
    ck_assert_int_eq(res.rc[1], 0);
    ck_assert_int_eq(res.r[1].status, 200);
    ck_assert_str_eq(res.r[1].body, "M=POST P=/e Q= X=- B=body");
}
END_TEST

/* Closing with a request still held by the handler: the connection goes,
 * and the server is done only once the request is answered. */
static void on_answer_held(uv_timer_t *t)
{
    closed_before_held_answer = !server_closed;
    held_respond_rc = lk_httpd_respond(held, 200, NULL, NULL, "late", 4);
    uv_close((uv_handle_t *)t, NULL);
}

static uv_timer_t close_timer, answer_timer;

static void on_close_now(uv_timer_t *t)
{
    if (held == NULL)
        return; /* the request has not arrived yet: poll again */
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    closed_by_test = true;
    lk_httpd_close(server, on_server_closed, NULL);
    uv_timer_init(&loop, &answer_timer);
    uv_timer_start(&answer_timer, on_answer_held, 50, 0);
}

static void c_hold(void *arg)
{
    struct result *res = arg;
    struct cli *c = cli_connect(server_port);
    cli_sends(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    res->rc[0] = cli_read(c, &res->r[0], 0);
    cli_close(c);
}

START_TEST(close_waits_for_held_request)
{
    struct lk_httpd_opts o = opts();
    start_server(&o);
    uv_timer_init(&loop, &close_timer);
    uv_timer_start(&close_timer, on_close_now, 10, 10);
    struct result res;
    memset(&res, 0, sizeof(res));
    held_respond_rc = 1;
    run_client(c_hold, &res);
    ck_assert_int_ne(res.rc[0], 0); /* cut without an answer */
    ck_assert(closed_before_held_answer);
    ck_assert_int_eq(held_respond_rc, LK_ECLOSED);
}
END_TEST

/* A deferred answer: the pipelined request behind it is not even parsed
 * until it is given; the answers keep their order; an answered request's
 * abandon hook is not called when its connection closes later. */
static void c_deferred(void *arg)
{
    struct result *res = arg;
    struct cli *c = cli_connect(server_port);
    cli_sends(c, "GET /defer HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /now HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < 2; i++)
        res->rc[i] = cli_read(c, &res->r[i], 0);
    cli_close(c);
}

START_TEST(deferred_answer_holds_the_next_request)
{
    struct lk_httpd_opts o = opts();
    start_server(&o);
    deferred = NULL;
    abandoned = 0;
    seen_while_deferred = -1;
    turns_left = 20;
    uv_idle_init(&loop, &turns);
    struct result res;
    memset(&res, 0, sizeof(res));
    run_client(c_deferred, &res);
    ck_assert_int_eq(seen_while_deferred, 1);
    ck_assert_int_eq(res.rc[0], 0);
    ck_assert_str_eq(res.r[0].body, "deferred");
    ck_assert_int_eq(res.rc[1], 0);
    ck_assert_str_eq(res.r[1].body, "M=GET P=/now Q= X=- B=");
    ck_assert_int_eq(requests_seen, 2);
    ck_assert_int_eq(abandoned, 0);
}
END_TEST

/* Closing the server with a deferred request: its hook answers it from
 * within the close, and the server is done without waiting for more. */
static uv_timer_t defer_close_timer;

static void on_defer_close(uv_timer_t *t)
{
    if (deferred == NULL)
        return; /* the request has not arrived yet: poll again */
    uv_close((uv_handle_t *)t, NULL);
    closed_by_test = true;
    lk_httpd_close(server, on_server_closed, NULL);
    ck_assert_int_eq(abandoned, 1);
}

static void c_defer_only(void *arg)
{
    struct result *res = arg;
    struct cli *c = cli_connect(server_port);
    cli_sends(c, "GET /defer HTTP/1.1\r\nHost: x\r\n\r\n");
    res->rc[0] = cli_read(c, &res->r[0], 0);
    cli_close(c);
}

START_TEST(abandon_hook_runs_when_the_server_closes)
{
    struct lk_httpd_opts o = opts();
    start_server(&o);
    deferred = NULL;
    abandoned = 0;
    abandon_rc = 1;
    turns_left = 0;
    uv_timer_init(&loop, &defer_close_timer);
    uv_timer_start(&defer_close_timer, on_defer_close, 5, 5);
    struct result res;
    memset(&res, 0, sizeof(res));
    run_client(c_defer_only, &res);
    ck_assert_int_ne(res.rc[0], 0); /* cut without an answer */
    ck_assert_int_eq(abandoned, 1);
    ck_assert_int_eq(abandon_rc, LK_ECLOSED);
}
END_TEST

static char unix_path[108];

static void c_unix(void *arg)
{
    struct result *res = arg;
    struct cli *c = cli_connect_unix(unix_path);
    cli_sends(c, "GET /u HTTP/1.1\r\nHost: x\r\n\r\n");
    res->rc[0] = cli_read(c, &res->r[0], 0);
    cli_close(c);
}

START_TEST(unix_socket_endpoint)
{
    char ep[160];
    snprintf(unix_path, sizeof(unix_path), "/tmp/lk_httpd_test_%d.sock", (int)getpid());
    snprintf(ep, sizeof(ep), "unix://%s", unix_path);
    struct lk_httpd_opts o = opts();
    o.endpoint = ep;
    start_server(&o);
    ck_assert_int_eq(server_port, -1);
    struct result res;
    memset(&res, 0, sizeof(res));
    run_client(c_unix, &res);
    ck_assert_int_eq(res.rc[0], 0);
    ck_assert_str_eq(res.r[0].body, "M=GET P=/u Q= X=- B=");
    ck_assert_int_ne(access(unix_path, F_OK), 0); /* removed on close */
}
END_TEST

static void noop_handler(lk_httpd_req *req, void *arg)
{
    lk_httpd_respond(req, 204, NULL, NULL, NULL, 0);
}

START_TEST(bad_options_rejected)
{
    uv_loop_t l;
    uv_loop_init(&l);
    lk_httpd *h = NULL;
    struct lk_httpd_opts o = {.endpoint = "nonsense"};
    ck_assert_int_eq(lk_httpd_create(&h, &l, &o, noop_handler, NULL), LK_EINVAL);
    o.endpoint = NULL;
    ck_assert_int_eq(lk_httpd_create(&h, &l, &o, noop_handler, NULL), LK_EINVAL);
    o.endpoint = "127.0.0.1:0";
    ck_assert_int_eq(lk_httpd_create(&h, &l, &o, NULL, NULL), LK_EINVAL);
    uv_run(&l, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&l), 0);
    ck_assert_str_eq(lk_httpd_reason(404), "Not Found");
    ck_assert_str_eq(lk_httpd_reason(299), "");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("httpd");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"keep_alive_two_requests", keep_alive_two_requests},
        {"pipelined_in_order", pipelined_in_order},
        {"chunked_body", chunked_body},
        {"body_too_large_413", body_too_large_413},
        {"headers_too_large_431", headers_too_large_431},
        {"malformed_400_and_version_505", malformed_400_and_version_505},
        {"request_timeout_408", request_timeout_408},
        {"idle_connection_closed", idle_connection_closed},
        {"max_connections_503", max_connections_503},
        {"evicts_idle_longest", evicts_idle_longest},
        {"handshake_timeout_closes_silent", handshake_timeout_closes_silent},
        {"connection_close_honoured", connection_close_honoured},
        {"head_has_no_body", head_has_no_body},
        {"expect_continue", expect_continue},
        {"close_waits_for_held_request", close_waits_for_held_request},
        {"deferred_answer_holds_the_next_request", deferred_answer_holds_the_next_request},
        {"abandon_hook_runs_when_the_server_closes", abandon_hook_runs_when_the_server_closes},
        {"unix_socket_endpoint", unix_socket_endpoint},
        {"bad_options_rejected", bad_options_rejected},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 30);
        tcase_add_checked_fixture(tc, NULL, metrics_teardown);
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    /* A client that goes away mid-response must not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
