/*
 * lk_grpc_client against a real gRPC server started in this process with gRPC
 * C core's server API. The server runs on its own completion queue and
 * thread, records what it receives under a mutex and answers as configured;
 * the client runs on a uv loop in the test thread. Every case ends by closing
 * the client and checking that uv_run returns with no handle left.
 */
#include "exporters/grpc_client.h"

#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/compression.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "core/err.h"
#include "core/gzip.h"

#include "grpc_test_server.h"
#include "tls_fixtures.h"

/* ---- client side ----------------------------------------------------- */

struct ctx {
    uv_loop_t loop;
    lk_grpc_client *c;
    int ncb;
    int status;
    char message[256];
    int64_t retry_after_ms;
    uint8_t response[64];
    size_t response_len;
    bool close_in_cb;
    int done_calls;
    int ncb_at_done;
    uv_timer_t timer;
    struct srv *srv;
};

static void on_done(void *arg)
{
    struct ctx *x = arg;

    x->done_calls++;
    x->ncb_at_done = x->ncb;
}

static void on_result(void *arg, const struct lk_grpc_result *r)
{
    struct ctx *x = arg;

    x->ncb++;
    x->status = r->status;
    ck_assert_ptr_nonnull(r->message);
    snprintf(x->message, sizeof(x->message), "%s", r->message);
    x->retry_after_ms = r->retry_after_ms;
    x->response_len = r->response_len;
    ck_assert_uint_le(r->response_len, sizeof(x->response));
    if (r->response_len > 0)
        memcpy(x->response, r->response, r->response_len);
    if (x->close_in_cb)
        lk_grpc_client_close(x->c, on_done, x);
}

static void ctx_init(struct ctx *x, struct srv *s)
{
    memset(x, 0, sizeof(*x));
    ck_assert_int_eq(uv_loop_init(&x->loop), 0);
    x->close_in_cb = true;
    x->retry_after_ms = -2;
    x->status = -1;
    x->srv = s;
    alarm(60); /* CK_FORK=no cannot time out a hung test */
}

static void ctx_run_and_fini(struct ctx *x)
{
    ck_assert_int_eq(uv_run(&x->loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(x->done_calls, 1);
    ck_assert_int_eq(uv_loop_close(&x->loop), 0); /* no handle left */
    alarm(0);
}

static const struct lk_header test_headers[] = {
    {.name = "X-Lookout-Test", .value = "tenant-1"},
};

static char target_buf[64];

static const char *target_of(int port)
{
    snprintf(target_buf, sizeof(target_buf), "127.0.0.1:%d", port);
    return target_buf;
}

static void client_create(struct ctx *x, const char *target, bool gzip)
{
    struct lk_grpc_client_opts o = {
        .target = target,
        .headers = test_headers,
        .nheaders = 1,
        .gzip = gzip,
        .user_agent = "lookout/0.1.0",
    };

    ck_assert_int_eq(lk_grpc_client_create(&x->c, &x->loop, &o), 0);
}

/* Three pieces with a compressible body, so that gzip really compresses. */
static uint8_t body_a[1000], body_b[3], body_c[2000];

static void make_body(struct iovec iov[3], uint8_t **joined, size_t *len)
{
    for (size_t i = 0; i < sizeof(body_a); i++)
        body_a[i] = (uint8_t)('a' + i % 7);
    body_b[0] = 0;
    body_b[1] = 0xff;
    body_b[2] = 0x80;
    for (size_t i = 0; i < sizeof(body_c); i++)
        body_c[i] = (uint8_t)(i % 13);
    iov[0] = (struct iovec){body_a, sizeof(body_a)};
    iov[1] = (struct iovec){body_b, sizeof(body_b)};
    iov[2] = (struct iovec){body_c, sizeof(body_c)};
    *len = sizeof(body_a) + sizeof(body_b) + sizeof(body_c);
    *joined = malloc(*len);
    memcpy(*joined, body_a, sizeof(body_a));
    memcpy(*joined + sizeof(body_a), body_b, sizeof(body_b));
    memcpy(*joined + sizeof(body_a) + sizeof(body_b), body_c, sizeof(body_c));
}

static void call_and_check_body(bool gzip)
{
    struct srv s;
    struct ctx x;
    struct iovec iov[3];
    uint8_t *joined;
    size_t len;

    lk_buf gz;

    srv_start(&s);
    ctx_init(&x, &s);
    client_create(&x, target_of(s.port), gzip);
    make_body(iov, &joined, &len);
    /* Nothing of gRPC runs before the first call. */
    ck_assert(!lk__grpc_client_is_started(x.c));
    lk_buf_init(&gz, 1 << 20);
    if (gzip) {
        /* With gzip, the caller compresses: the message goes as it is. */
        ck_assert_int_eq(lk_gzip_deflate_level(joined, len, 9, &gz), 0);
        ck_assert_uint_lt(gz.len, len);
        struct iovec one = {gz.data, gz.len};
        ck_assert_int_eq(lk_grpc_client_call(x.c, "/test.Echo/Say", &one, 1,
                                             10000, on_result, &x),
                         0);
        memset(gz.data, 'X', gz.len); /* copied: this changes nothing */
    } else {
        ck_assert_int_eq(lk_grpc_client_call(x.c, "/test.Echo/Say", iov, 3,
                                             10000, on_result, &x),
                         0);
        /* The bytes were copied: scribbling on them now changes nothing. */
        memset(body_a, 'X', sizeof(body_a));
    }
    ck_assert(lk__grpc_client_is_started(x.c));
    ck_assert_int_eq(x.ncb, 0); /* never from inside the call */
    ctx_run_and_fini(&x);
    lk_buf_fini(&gz);

    ck_assert_int_eq(x.ncb, 1);
    ck_assert_int_eq(x.ncb_at_done, 1);
    ck_assert_int_eq(x.status, 0);
    ck_assert_str_eq(x.message, "");
    ck_assert_int_eq(x.retry_after_ms, -1);
    ck_assert_uint_eq(x.response_len, 8);
    ck_assert_mem_eq(x.response, "pong\0\x01\x02\xff", 8);

    uv_mutex_lock(&s.lock);
    ck_assert_int_eq(s.ncalls, 1);
    ck_assert_str_eq(s.method, "/test.Echo/Say");
    ck_assert_str_eq(s.test_header, "tenant-1");
    ck_assert_msg(strncmp(s.user_agent, "lookout/0.1.0", 13) == 0,
                  "user-agent: %s", s.user_agent);
    ck_assert_uint_eq(s.body_len, len);
    ck_assert_mem_eq(s.body, joined, len);
    if (gzip) {
        /* Sent with the compressed flag and grpc-encoding: gzip (the server
         * knows the algorithm), and compressed once: one gunzip gives the
         * message back. */
        ck_assert_int_eq(s.body_compression, GRPC_COMPRESS_GZIP);
        /* gRPC 1.51 consumes grpc-encoding instead of publishing it; when a
         * version does publish it, it must say gzip. */
        ck_assert(s.grpc_encoding[0] == '\0' ||
                  strcmp(s.grpc_encoding, "gzip") == 0);
    } else {
        ck_assert_int_eq(s.body_compression, GRPC_COMPRESS_NONE);
    }
    uv_mutex_unlock(&s.lock);
    free(joined);
    srv_stop(&s);
}

START_TEST(test_call_ok)
{
    call_and_check_body(false);
}
END_TEST

START_TEST(test_call_gzip)
{
    call_and_check_body(true);
}
END_TEST

/* Appends a protobuf varint. */
static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static size_t put_len(uint8_t *p, uint32_t field, const void *data, size_t len)
{
    size_t n = put_varint(p, (uint64_t)field << 3 | 2);

    n += put_varint(p + n, len);
    memcpy(p + n, data, len);
    return n + len;
}

/* google.rpc.Status{code, message,
 *                   details: [Any{type_url, RetryInfo{Duration{s, ns}}}]} */
static size_t make_status(uint8_t *out, int code, const char *msg,
                          const char *type_url, int64_t seconds, int32_t nanos)
{
    uint8_t dur[32], ri[40], any[160];
    size_t nd = 0, nr, na, n = 0;

    if (seconds != 0) {
        dur[nd++] = 1 << 3 | 0;
        nd += put_varint(dur + nd, (uint64_t)seconds);
    }
    if (nanos != 0) {
        dur[nd++] = 2 << 3 | 0;
        nd += put_varint(dur + nd, (uint64_t)(int64_t)nanos);
    }
    nr = put_len(ri, 1, dur, nd);
    na = put_len(any, 1, type_url, strlen(type_url));
    na += put_len(any + na, 2, ri, nr);
    out[n++] = 1 << 3 | 0;
    n += put_varint(out + n, (uint64_t)code);
    n += put_len(out + n, 2, msg, strlen(msg));
    n += put_len(out + n, 3, any, na);
    return n;
}

START_TEST(test_unavailable_retry_info)
{
    struct srv s;
    struct ctx x;
    uint8_t details[256];
    struct iovec iov = {(void *)"x", 1};

    srv_start(&s);
    s.mode = SRV_FAIL;
    s.fail_status = GRPC_STATUS_UNAVAILABLE;
    s.fail_message = "queue full";
    s.fail_details_len =
        make_status(details, 14, "queue full",
                    "type.googleapis.com/google.rpc.RetryInfo", 2, 500000000);
    s.fail_details = details;
    ctx_init(&x, &s);
    client_create(&x, target_of(s.port), false);
    ck_assert_int_eq(lk_grpc_client_call(x.c, "/test.Echo/Say", &iov, 1, 10000,
                                         on_result, &x),
                     0);
    ctx_run_and_fini(&x);
    ck_assert_int_eq(x.ncb, 1);
    ck_assert_int_eq(x.status, 14);
    ck_assert_str_eq(x.message, "queue full");
    ck_assert_int_eq(x.retry_after_ms, 2500);
    ck_assert_uint_eq(x.response_len, 0);
    srv_stop(&s);
}
END_TEST

START_TEST(test_invalid_argument)
{
    struct srv s;
    struct ctx x;
    struct iovec iov = {(void *)"x", 1};

    srv_start(&s);
    s.mode = SRV_FAIL;
    s.fail_status = GRPC_STATUS_INVALID_ARGUMENT;
    s.fail_message = "span 3: invalid UTF-8 in name \xc3\xa9 100%";
    ctx_init(&x, &s);
    client_create(&x, target_of(s.port), false);
    ck_assert_int_eq(lk_grpc_client_call(x.c, "/test.Echo/Say", &iov, 1, 10000,
                                         on_result, &x),
                     0);
    ctx_run_and_fini(&x);
    ck_assert_int_eq(x.ncb, 1);
    ck_assert_int_eq(x.status, 3);
    /* Percent-encoded on the wire, decoded by gRPC. */
    ck_assert_str_eq(x.message, "span 3: invalid UTF-8 in name \xc3\xa9 100%");
    ck_assert_int_eq(x.retry_after_ms, -1);
    srv_stop(&s);
}
END_TEST

/* A port nothing listens on: bound, then closed. */
static int dead_port(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    return ntohs(a.sin_port);
}

START_TEST(test_nothing_listens)
{
    struct ctx x;
    struct iovec iov = {(void *)"x", 1};

    ctx_init(&x, NULL);
    client_create(&x, target_of(dead_port()), false);
    /* A deadline far away: UNAVAILABLE must come from the refused connect. */
    ck_assert_int_eq(lk_grpc_client_call(x.c, "/test.Echo/Say", &iov, 1, 50000,
                                         on_result, &x),
                     0);
    ctx_run_and_fini(&x);
    ck_assert_int_eq(x.ncb, 1);
    ck_assert_int_eq(x.status, 14);
}
END_TEST

START_TEST(test_deadline)
{
    struct srv s;
    struct ctx x;
    struct iovec iov = {(void *)"x", 1};

    srv_start(&s);
    s.mode = SRV_HOLD;
    ctx_init(&x, &s);
    client_create(&x, target_of(s.port), false);
    ck_assert_int_eq(
        lk_grpc_client_call(x.c, "/test.Echo/Say", &iov, 1, 200, on_result, &x),
        0);
    ctx_run_and_fini(&x);
    ck_assert_int_eq(x.ncb, 1);
    ck_assert_int_eq(x.status, 4);
    srv_stop(&s);
}
END_TEST

static void on_timer_close(uv_handle_t *h)
{
}

/* Polls until the server holds the call, then closes the client. */
static void on_poll_held(uv_timer_t *t)
{
    struct ctx *x = t->data;

    if (srv_held(x->srv) < 1)
        return;
    uv_close((uv_handle_t *)t, on_timer_close);
    ck_assert_int_eq(x->ncb, 0);
    lk_grpc_client_close(x->c, on_done, x);
    ck_assert_int_eq(x->ncb, 0);        /* callbacks run later, */
    ck_assert_int_eq(x->done_calls, 0); /* and so does done */
    /* Closed: no more calls. */
    struct iovec iov = {(void *)"y", 1};
    ck_assert_int_eq(lk_grpc_client_call(x->c, "/test.Echo/Say", &iov, 1, 1000,
                                         on_result, x),
                     LK_ECLOSED);
}

START_TEST(test_close_in_flight)
{
    struct srv s;
    struct ctx x;
    struct iovec iov = {(void *)"x", 1};

    srv_start(&s);
    s.mode = SRV_HOLD;
    ctx_init(&x, &s);
    x.close_in_cb = false;
    client_create(&x, target_of(s.port), false);
    ck_assert_int_eq(lk_grpc_client_call(x.c, "/test.Echo/Say", &iov, 1, 30000,
                                         on_result, &x),
                     0);
    ck_assert_int_eq(uv_timer_init(&x.loop, &x.timer), 0);
    x.timer.data = &x;
    ck_assert_int_eq(uv_timer_start(&x.timer, on_poll_held, 2, 2), 0);
    ctx_run_and_fini(&x);
    ck_assert_int_eq(x.ncb, 1);
    ck_assert_int_eq(x.status, 1);
    ck_assert_int_eq(x.ncb_at_done, 1); /* the callback ran before done */
    srv_stop(&s);
}
END_TEST

/* Close right after starting calls, before the loop ever ran. */
START_TEST(test_close_at_once)
{
    struct srv s;
    struct ctx x;
    struct iovec iov = {(void *)"x", 1};

    srv_start(&s);
    s.mode = SRV_HOLD;
    ctx_init(&x, &s);
    x.close_in_cb = false;
    client_create(&x, target_of(s.port), false);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(lk_grpc_client_call(x.c, "/test.Echo/Say", &iov, 1,
                                             30000, on_result, &x),
                         0);
    lk_grpc_client_close(x.c, on_done, &x);
    ck_assert_int_eq(x.done_calls, 0);
    ctx_run_and_fini(&x);
    ck_assert_int_eq(x.ncb, 3);
    ck_assert_int_eq(x.status, 1);
    ck_assert_int_eq(x.ncb_at_done, 3);
    srv_stop(&s);
}
END_TEST

START_TEST(test_close_idle)
{
    struct ctx x;

    ctx_init(&x, NULL);
    client_create(&x, "127.0.0.1:1", false);
    ck_assert(!lk__grpc_client_is_started(x.c)); /* closed before it ever ran */
    lk_grpc_client_close(x.c, on_done, &x);
    ck_assert_int_eq(x.done_calls, 0);
    ctx_run_and_fini(&x);
    ck_assert_int_eq(x.ncb, 0);
}
END_TEST

/* Many calls in flight on one client, each answered once. */
struct many {
    struct ctx *x;
    int n;
    int ok;
};

static void on_many(void *arg, const struct lk_grpc_result *r)
{
    struct many *m = arg;

    if (r->status == 0 && r->response_len == 8)
        m->ok++;
    if (++m->n == 50)
        lk_grpc_client_close(m->x->c, on_done, m->x);
}

START_TEST(test_many_calls)
{
    struct srv s;
    struct ctx x;
    struct many m = {.x = &x};
    lk_buf gz;

    lk_buf_init(&gz, 1024);
    ck_assert_int_eq(lk_gzip_deflate_level((const uint8_t *)"hello", 5, 1, &gz), 0);
    struct iovec iov = {gz.data, gz.len};
    srv_start(&s);
    ctx_init(&x, &s);
    client_create(&x, target_of(s.port), true);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(lk_grpc_client_call(x.c, "/test.Echo/Say", &iov, 1,
                                             10000, on_many, &m),
                         0);
    ctx_run_and_fini(&x);
    ck_assert_int_eq(m.n, 50);
    ck_assert_int_eq(m.ok, 50);
    uv_mutex_lock(&s.lock);
    ck_assert_int_eq(s.ncalls, 50);
    ck_assert_uint_eq(s.body_len, 5);
    ck_assert_mem_eq(s.body, "hello", 5);
    uv_mutex_unlock(&s.lock);
    srv_stop(&s);
    lk_buf_fini(&gz);
}
END_TEST

/* An empty request is a valid (empty) message, sent uncompressed even with
 * gzip (there is nothing to compress, and no gzip member to hand over). */
START_TEST(test_empty_request)
{
    struct srv s;
    struct ctx x;

    srv_start(&s);
    ctx_init(&x, &s);
    client_create(&x, target_of(s.port), true);
    ck_assert_int_eq(lk_grpc_client_call(x.c, "/test.Echo/Say", NULL, 0, 10000,
                                         on_result, &x),
                     0);
    ctx_run_and_fini(&x);
    ck_assert_int_eq(x.status, 0);
    uv_mutex_lock(&s.lock);
    ck_assert_int_eq(s.ncalls, 1);
    ck_assert_uint_eq(s.body_len, 0);
    ck_assert_int_eq(s.body_compression, GRPC_COMPRESS_NONE);
    uv_mutex_unlock(&s.lock);
    srv_stop(&s);
}
END_TEST

/* A callback may start the next call; its own callback comes later. */
struct chain {
    struct ctx *x;
    int n;
};

static void on_chain(void *arg, const struct lk_grpc_result *r)
{
    struct chain *ch = arg;
    struct iovec iov = {(void *)"again", 5};

    ck_assert_int_eq(r->status, 0);
    if (++ch->n < 3) {
        int before = ch->n;
        ck_assert_int_eq(lk_grpc_client_call(ch->x->c, "/test.Echo/Again", &iov,
                                             1, 10000, on_chain, ch),
                         0);
        /* Its callback did not run from inside the call. */
        ck_assert_int_eq(ch->n, before);
        return;
    }
    lk_grpc_client_close(ch->x->c, on_done, ch->x);
}

START_TEST(test_call_from_callback)
{
    struct srv s;
    struct ctx x;
    struct chain ch = {.x = &x};
    struct iovec iov = {(void *)"first", 5};

    srv_start(&s);
    ctx_init(&x, &s);
    client_create(&x, target_of(s.port), false);
    ck_assert_int_eq(lk_grpc_client_call(x.c, "/test.Echo/Say", &iov, 1, 10000,
                                         on_chain, &ch),
                     0);
    ctx_run_and_fini(&x);
    ck_assert_int_eq(ch.n, 3);
    uv_mutex_lock(&s.lock);
    ck_assert_int_eq(s.ncalls, 3);
    ck_assert_str_eq(s.method, "/test.Echo/Again");
    ck_assert_uint_eq(s.body_len, 5);
    ck_assert_mem_eq(s.body, "again", 5);
    uv_mutex_unlock(&s.lock);
    srv_stop(&s);
}
END_TEST

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/lk_grpc_test_XXXXXX");
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void tls_roundtrip(bool mutual)
{
    struct srv s;
    struct ctx x;
    struct iovec iov = {(void *)"secret", 6};
    grpc_ssl_pem_key_cert_pair pair = {TEST_SERVER_KEY, TEST_SERVER_PEM};
    char *ca = write_temp(TEST_CA_PEM);
    char *cert = write_temp(TEST_CLIENT_PEM);
    char *key = write_temp(TEST_CLIENT_KEY);
    struct lk_tls_config tls = {.enabled = true, .ca_file = ca};
    struct lk_grpc_client_opts o = {.target = NULL, .tls = &tls};

    if (mutual) {
        tls.cert_file = cert;
        tls.key_file = key;
    }
    srv_start_creds(
        &s,
        grpc_ssl_server_credentials_create_ex(
            TEST_CA_PEM, &pair, 1,
            mutual ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                   : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL));
    ctx_init(&x, &s);
    o.target = target_of(s.port);
    ck_assert_int_eq(lk_grpc_client_create(&x.c, &x.loop, &o), 0);
    ck_assert_int_eq(lk_grpc_client_call(x.c, "/test.Echo/Say", &iov, 1, 10000,
                                         on_result, &x),
                     0);
    ctx_run_and_fini(&x);
    ck_assert_int_eq(x.ncb, 1);
    ck_assert_msg(x.status == 0, "status %d: %s", x.status, x.message);
    ck_assert_uint_eq(x.response_len, 8);
    uv_mutex_lock(&s.lock);
    ck_assert_uint_eq(s.body_len, 6);
    ck_assert_mem_eq(s.body, "secret", 6);
    uv_mutex_unlock(&s.lock);
    srv_stop(&s);
    unlink(ca);
    unlink(cert);
    unlink(key);
    free(ca);
    free(cert);
    free(key);
}

START_TEST(test_tls)
{
    tls_roundtrip(false);
}
END_TEST

START_TEST(test_mtls)
{
    tls_roundtrip(true);
}
END_TEST

/* A server that wants a client certificate refuses a client without one. */
START_TEST(test_mtls_refused_without_cert)
{
    struct srv s;
    struct ctx x;
    struct iovec iov = {(void *)"x", 1};
    grpc_ssl_pem_key_cert_pair pair = {TEST_SERVER_KEY, TEST_SERVER_PEM};
    char *ca = write_temp(TEST_CA_PEM);
    struct lk_tls_config tls = {.enabled = true, .ca_file = ca};
    struct lk_grpc_client_opts o = {.tls = &tls};

    srv_start_creds(
        &s,
        grpc_ssl_server_credentials_create_ex(
            TEST_CA_PEM, &pair, 1,
            GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL));
    ctx_init(&x, &s);
    o.target = target_of(s.port);
    ck_assert_int_eq(lk_grpc_client_create(&x.c, &x.loop, &o), 0);
    ck_assert_int_eq(lk_grpc_client_call(x.c, "/test.Echo/Say", &iov, 1, 10000,
                                         on_result, &x),
                     0);
    ctx_run_and_fini(&x);
    ck_assert_int_eq(x.ncb, 1);
    ck_assert_int_eq(x.status, 14);
    srv_stop(&s);
    unlink(ca);
    free(ca);
}
END_TEST

START_TEST(test_create_errors)
{
    uv_loop_t loop;
    lk_grpc_client *c = (lk_grpc_client *)&loop;
    struct lk_tls_config tls = {.enabled = true};
    struct lk_grpc_client_opts o = {.target = "127.0.0.1:1", .tls = &tls};
    struct lk_header bad[] = {{.name = "bad header", .value = "v"}};
    struct lk_header badv[] = {{.name = "x-ok", .value = "line\nbreak"}};
    char *garbage = write_temp("this is not a certificate\n");

    ck_assert_int_eq(uv_loop_init(&loop), 0);
    tls.insecure_skip_verify = true;
    ck_assert_int_eq(lk_grpc_client_create(&c, &loop, &o), LK_EUNSUPPORTED);
    ck_assert_ptr_null(c);
    tls.insecure_skip_verify = false;
    tls.ca_file = "/nonexistent/ca.pem";
    ck_assert_int_eq(lk_grpc_client_create(&c, &loop, &o), LK_EIO);
    tls.ca_file = garbage;
    ck_assert_int_eq(lk_grpc_client_create(&c, &loop, &o), LK_EINVAL);
    tls.ca_file = NULL;
    tls.cert_file = "/nonexistent/cert.pem";
    ck_assert_int_eq(lk_grpc_client_create(&c, &loop, &o), LK_EINVAL);
    tls.key_file = "/nonexistent/key.pem";
    ck_assert_int_eq(lk_grpc_client_create(&c, &loop, &o), LK_EIO);
    tls.enabled = false;
    o.headers = bad;
    o.nheaders = 1;
    ck_assert_int_eq(lk_grpc_client_create(&c, &loop, &o), LK_EINVAL);
    o.headers = badv;
    ck_assert_int_eq(lk_grpc_client_create(&c, &loop, &o), LK_EINVAL);
    o.headers = NULL;
    o.nheaders = 0;
    o.target = "";
    ck_assert_int_eq(lk_grpc_client_create(&c, &loop, &o), LK_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    unlink(garbage);
    free(garbage);
}
END_TEST

START_TEST(test_call_errors)
{
    struct ctx x;
    struct iovec iov = {(void *)"x", 1};

    ctx_init(&x, NULL);
    client_create(&x, "127.0.0.1:1", false);
    ck_assert_int_eq(
        lk_grpc_client_call(x.c, "no-slash", &iov, 1, 1000, on_result, &x),
        LK_EINVAL);
    lk_grpc_client_close(x.c, on_done, &x);
    ck_assert_int_eq(
        lk_grpc_client_call(x.c, "/a.B/C", &iov, 1, 1000, on_result, &x),
        LK_ECLOSED);
    ctx_run_and_fini(&x);
    ck_assert_int_eq(x.ncb, 0);
}
END_TEST

/* ---- grpc-status-details-bin reader ---------------------------------- */

START_TEST(test_retry_info_parse)
{
    uint8_t b[256];
    size_t n;

    n = make_status(b, 14, "m", "type.googleapis.com/google.rpc.RetryInfo", 2,
                    500000000);
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(b, n), 2500);
    /* The bare type name is accepted too. */
    n = make_status(b, 14, "", "google.rpc.RetryInfo", 0, 1);
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(b, n), 1); /* rounded up */
    n = make_status(b, 8, "", "type.googleapis.com/google.rpc.RetryInfo", 7, 0);
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(b, n), 7000);
    /* Negative delays mean "now". */
    n = make_status(b, 8, "", "type.googleapis.com/google.rpc.RetryInfo", -3,
                    0);
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(b, n), 0);
    n = make_status(b, 8, "", "type.googleapis.com/google.rpc.RetryInfo", 0,
                    -5);
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(b, n), 0);
    /* Saturates instead of overflowing. */
    n = make_status(b, 8, "", "type.googleapis.com/google.rpc.RetryInfo",
                    INT64_MAX, 0);
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(b, n), INT64_MAX);
    /* Other detail types are not RetryInfo. */
    n = make_status(b, 8, "", "type.googleapis.com/google.rpc.DebugInfo", 2, 0);
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(b, n), -1);
    n = make_status(b, 8, "", "type.googleapis.com/x.google.rpc.RetryInfo", 2,
                    0);
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(b, n), -1);
    /* No details at all, and no bytes at all. */
    b[0] = 1 << 3;
    b[1] = 14;
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(b, 2), -1);
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(b, 0), -1);
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(NULL, 0), -1);
}
END_TEST

START_TEST(test_retry_info_malformed)
{
    uint8_t b[256];
    size_t n = make_status(b, 14, "message",
                           "type.googleapis.com/google.rpc.RetryInfo",
                           123456789, 999999999);

    ck_assert_int_eq(lk__grpc_status_retry_after_ms(b, n), 123456790000);
    /* Every truncation is read safely (ASan checks the bounds) and fails or
     * yields nothing; each copy is exactly as long as the prefix. */
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = malloc(i + 1);
        memcpy(p, b, i);
        int64_t v = lk__grpc_status_retry_after_ms(p, i);
        ck_assert_int_eq(v, -1);
        free(p);
    }
    /* Lengths that point past the end, a varint that never ends, groups. */
    static const uint8_t past[] = {3 << 3 | 2, 0x7f, 0x0a};
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(past, sizeof(past)), -1);
    static const uint8_t huge[] = {3 << 3 | 2, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff,       0xff, 0xff, 0xff, 0x01};
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(huge, sizeof(huge)), -1);
    static const uint8_t endless[] = {0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                      0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(endless, sizeof(endless)),
                     -1);
    static const uint8_t group[] = {3 << 3 | 3, 0x00};
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(group, sizeof(group)), -1);
    static const uint8_t field0[] = {0x00, 0x00};
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(field0, sizeof(field0)),
                     -1);
    /* details with the wrong wire type. */
    static const uint8_t wrongwt[] = {3 << 3 | 0, 0x01};
    ck_assert_int_eq(lk__grpc_status_retry_after_ms(wrongwt, sizeof(wrongwt)),
                     -1);
    /* Flipping each byte of a valid message never reads out of bounds. */
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t *p = malloc(n);
            memcpy(p, b, n);
            p[i] ^= (uint8_t)(1u << bit);
            (void)lk__grpc_status_retry_after_ms(p, n);
            free(p);
        }
    }
}
END_TEST

static Suite *grpc_client_suite(void)
{
    Suite *s = suite_create("grpc_client");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"call_ok", test_call_ok},
        {"call_gzip", test_call_gzip},
        {"unavailable_retry_info", test_unavailable_retry_info},
        {"invalid_argument", test_invalid_argument},
        {"nothing_listens", test_nothing_listens},
        {"deadline", test_deadline},
        {"close_in_flight", test_close_in_flight},
        {"close_at_once", test_close_at_once},
        {"close_idle", test_close_idle},
        {"many_calls", test_many_calls},
        {"empty_request", test_empty_request},
        {"call_from_callback", test_call_from_callback},
        {"tls", test_tls},
        {"mtls", test_mtls},
        {"mtls_refused_without_cert", test_mtls_refused_without_cert},
        {"create_errors", test_create_errors},
        {"call_errors", test_call_errors},
        {"retry_info_parse", test_retry_info_parse},
        {"retry_info_malformed", test_retry_info_malformed},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(grpc_client_suite());
    int failed;

    srunner_run_all(r, CK_NORMAL);
    failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
