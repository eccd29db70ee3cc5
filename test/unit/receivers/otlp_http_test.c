/*
 * The OTLP/HTTP receiver against real sockets (127.0.0.1 port 0, and a Unix
 * socket), feeding real pipelines and queues whose exporter is a fake that
 * records each batch and holds it. The loop runs on the test's main thread;
 * a blocking client on a second thread records what it sees, and the
 * assertions run once it is done.
 */
#include "receivers/otlp_http.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <jansson.h>
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
#include <zlib.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/gzip.h"
#include "core/inflate_pool.h"
#include "core/selfmetrics.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "pipeline/pipeline.h"
#include "pipeline/queue.h"
#include "pool_hold.h"

#define MAX_BODY (256 * 1024) /* max_request_body_size of the receiver */
#define MAX_BATCHES 64
#define MAX_REQS 8

/* ---- a fake exporter: keeps a copy of every batch, answers at the end ---- */

struct fake {
    lk_exporter base;
    lk_batch *pending[MAX_BATCHES];
    uint8_t *sent[MAX_BATCHES]; /* concatenated body of each batch */
    size_t sent_len[MAX_BATCHES];
    uint64_t sent_items[MAX_BATCHES];
    int calls;
};

static int fake_send(lk_exporter *e, lk_batch *b)
{
    struct fake *f = (struct fake *)e;
    const struct iovec *iov;
    size_t n, total;
    ck_assert_int_lt(f->calls, MAX_BATCHES);
    lk_batch_iov(b, &iov, &n, &total);
    uint8_t *copy = malloc(total + 1);
    ck_assert_ptr_nonnull(copy);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(copy + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    f->sent[f->calls] = copy;
    f->sent_len[f->calls] = total;
    f->sent_items[f->calls] = lk_batch_items(b);
    f->pending[f->calls] = b;
    f->calls++;
    return 0;
}

static void fake_close(lk_exporter *e, void (*done)(void *), void *arg)
{
    if (done)
        done(arg);
}

static const struct lk_exporter_ops fake_ops = {"fake", fake_send, fake_close};

/* ---- the server side ---- */

static uv_loop_t loop;
static lk_metrics *M;
static struct fake F[LK_SIGNAL_COUNT];
static lk_queue *Q[LK_SIGNAL_COUNT];
static lk_pipeline *P[LK_SIGNAL_COUNT];
static lk_otlp_http *R;
static int port;
static uv_async_t client_done;
static struct lk_queue_config QC;
static struct lk_batch_config BC;
static struct lk_retry_config RC;
static bool receiver_closed;
static bool receiver_closing; /* lk_otlp_http_close called by the test */

static void on_client_done(uv_async_t *a)
{
    uv_stop(a->loop);
}

/*
 * Starts the receiver on |endpoint| with traces and metrics pipelines (logs
 * has none), each exporter queue holding at most |queue_size| items. Every
 * batch is one request: send_batch_size is 1.
 */
static void start(const char *endpoint, uint64_t queue_size)
{
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(uv_async_init(&loop, &client_done, on_client_done), 0);
    M = lk_metrics_create();
    QC = (struct lk_queue_config){.queue_size = queue_size, .max_bytes = 64 << 20,
                                  .overflow = LK_OVERFLOW_REFUSE};
    BC = (struct lk_batch_config){.send_batch_size = 1, .send_batch_max_bytes = 64 << 20,
                                  .timeout_ms = 1};
    RC = (struct lk_retry_config){.enabled = false, .initial_interval_ms = 1,
                                  .max_interval_ms = 1, .multiplier = 1};
    memset(F, 0, sizeof(F));
    memset(P, 0, sizeof(P));
    for (int s = 0; s < LK_SIGNAL_LOGS; s++) {
        F[s].base.ops = &fake_ops;
        F[s].base.name = "fake";
        struct lk_queue_opts o = {.signal = (enum lk_signal)s, .queue = &QC, .batch = &BC,
                                  .retry = &RC, .max_concurrency = MAX_BATCHES};
        ck_assert_int_eq(lk_queue_create(&Q[s], &loop, &o, &F[s].base, M), 0);
        ck_assert_int_eq(lk_pipeline_create(&P[s], (enum lk_signal)s, &Q[s], 1), 0);
    }
    struct lk_http_receiver_config cfg = {
        .enabled = true,
        .endpoint = (char *)endpoint,
        .max_request_body_size = MAX_BODY,
        .max_connections = 16,
        .max_header_bytes = 8 * 1024,
        .idle_timeout_ms = 10000,
        .read_timeout_ms = 10000,
    };
    ck_assert_int_eq(lk_otlp_http_start(&R, &loop, "otlp", &cfg, P, M), 0);
    port = lk_otlp_http_port(R);
}

static void on_receiver_closed(void *arg)
{
    receiver_closed = true;
}

/* Answers every held batch, closes the receiver and frees everything. */
static void stop(void)
{
    if (!receiver_closing) {
        receiver_closed = false;
        lk_otlp_http_close(R, on_receiver_closed, NULL);
    }
    receiver_closing = false;
    for (int s = 0; s < LK_SIGNAL_LOGS; s++) {
        for (int i = 0; i < F[s].calls; i++) {
            lk_batch_done(F[s].pending[i], LK_EXPORT_OK, -1, NULL);
            free(F[s].sent[i]);
        }
        while (lk_queue_held_items(Q[s]) > 0)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    uv_close((uv_handle_t *)&client_done, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert(receiver_closed);
    for (int s = 0; s < LK_SIGNAL_LOGS; s++) {
        lk_pipeline_destroy(P[s]);
        lk_queue_destroy(Q[s]);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    lk_metrics_destroy(M);
}

static uint64_t counter(const char *name, const char *labels)
{
    return lk_counter_value(lk_metrics_counter(M, name, "", labels));
}

static uint64_t requests(int status)
{
    char labels[128];
    snprintf(labels, sizeof(labels),
             "receiver=\"otlp\",transport=\"http\",http_status=\"%d\"", status);
    return counter("lookout_receiver_requests_total", labels);
}

#define HTTP_LABELS "receiver=\"otlp\",transport=\"http\""

/* ---- a blocking client on its own thread ---- */

struct resp {
    int status; /* 0: no response */
    char head[4096];
    uint8_t body[64 * 1024];
    size_t body_len;
};

struct exch {
    const char *unix_path; /* NULL: TCP to |port| */
    int nreq;
    uint8_t *req[MAX_REQS]; /* malloc'd, freed by exch_free */
    size_t req_len[MAX_REQS];
    bool pipelined;         /* every request first, then the answers */
    int nresp;              /* responses read */
    struct resp resp[MAX_REQS];
    bool want_eof;          /* wait for the server to close, into |eof| */
    bool hang_up;           /* close right after sending, reading nothing */
    bool eof;               /* the server closed after the last answer */
    char buf[512 * 1024];
    size_t len;
};

static int cli_connect(struct exch *x)
{
    int fd;
    if (x->unix_path != NULL) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", x->unix_path);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            close(fd);
            return -1;
        }
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            close(fd);
            return -1;
        }
    }
    /* A guard against hanging, not a timing assertion. */
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static void cli_send(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the server may have answered and stopped reading */
        p += w;
        n -= (size_t)w;
    }
}

static bool cli_fill(int fd, struct exch *x)
{
    if (x->len == sizeof(x->buf))
        return false;
    ssize_t n = recv(fd, x->buf + x->len, sizeof(x->buf) - x->len, 0);
    if (n <= 0)
        return false;
    x->len += (size_t)n;
    return true;
}

/* Reads one response (every answer has a Content-Length). */
static bool cli_read(int fd, struct exch *x, struct resp *r)
{
    char *end;
    while ((end = memmem(x->buf, x->len, "\r\n\r\n", 4)) == NULL)
        if (!cli_fill(fd, x))
            return false;
    size_t hlen = (size_t)(end - x->buf) + 4;
    if (hlen >= sizeof(r->head))
        return false;
    memcpy(r->head, x->buf, hlen);
    r->head[hlen] = '\0';
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
        return false;
    const char *cl = strcasestr(r->head, "\r\ncontent-length:");
    size_t clen = cl != NULL ? strtoul(cl + 17, NULL, 10) : 0;
    if (clen > sizeof(r->body))
        return false;
    while (x->len < hlen + clen)
        if (!cli_fill(fd, x))
            return false;
    memcpy(r->body, x->buf + hlen, clen);
    r->body_len = clen;
    memmove(x->buf, x->buf + hlen + clen, x->len - hlen - clen);
    x->len -= hlen + clen;
    return true;
}

static void *client_main(void *arg)
{
    struct exch *x = arg;
    int fd = cli_connect(x);
    if (fd >= 0) {
        if (x->pipelined) {
            size_t total = 0;
            for (int i = 0; i < x->nreq; i++)
                total += x->req_len[i];
            uint8_t *all = malloc(total), *p = all;
            for (int i = 0; i < x->nreq; i++) {
                memcpy(p, x->req[i], x->req_len[i]);
                p += x->req_len[i];
            }
            cli_send(fd, all, total); /* one write: all arrive together */
            free(all);
            while (x->nresp < x->nreq && cli_read(fd, x, &x->resp[x->nresp]))
                x->nresp++;
        } else {
            for (int i = 0; i < x->nreq; i++) {
                cli_send(fd, x->req[i], x->req_len[i]);
                if (x->hang_up)
                    break;
                if (!cli_read(fd, x, &x->resp[x->nresp]))
                    break;
                x->nresp++;
            }
        }
        if (x->want_eof)
            x->eof = x->len == 0 && !cli_fill(fd, x) && x->len == 0;
        close(fd);
    }
    uv_async_send(&client_done);
    return NULL;
}

/* Runs the exchange |x| against the receiver while the loop serves it. */
static void run(struct exch *x)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, client_main, x), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);
}

static struct exch *exch_new(void)
{
    struct exch *x = calloc(1, sizeof(*x));
    ck_assert_ptr_nonnull(x);
    return x;
}

static void exch_free(struct exch *x)
{
    for (int i = 0; i < x->nreq; i++)
        free(x->req[i]);
    free(x);
}

/* Adds raw bytes as a request. */
static void add_raw(struct exch *x, const void *p, size_t n)
{
    ck_assert_int_lt(x->nreq, MAX_REQS);
    x->req[x->nreq] = malloc(n);
    memcpy(x->req[x->nreq], p, n);
    x->req_len[x->nreq] = n;
    x->nreq++;
}

/* Adds a request with |extra| header lines ("Name: v\r\n..." or NULL) and a
 * Content-Length body. */
static void add_req(struct exch *x, const char *method, const char *path,
                    const char *content_type, const char *extra, const void *body,
                    size_t len)
{
    lk_buf b;
    lk_buf_init(&b, SIZE_MAX);
    ck_assert_int_eq(lk_buf_printf(&b, "%s %s HTTP/1.1\r\nHost: t\r\n%s%s%s%s"
                                       "Content-Length: %zu\r\n\r\n",
                                   method, path, content_type ? "Content-Type: " : "",
                                   content_type ? content_type : "",
                                   content_type ? "\r\n" : "", extra ? extra : "", len),
                     0);
    ck_assert_int_eq(lk_buf_append(&b, body, len), 0);
    add_raw(x, b.data, b.len);
    lk_buf_fini(&b);
}


static const char *header(const struct resp *r, const char *name, char *out, size_t outlen)
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

static void assert_header(const struct resp *r, const char *name, const char *want)
{
    char v[256];
    ck_assert_msg(header(r, name, v, sizeof(v)) != NULL, "no %s in:\n%s", name, r->head);
    ck_assert_str_eq(v, want);
}

/* ---- OTLP payloads ---- */

static const uint8_t trace_id[16] = {0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03,
                                     0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c};
static const uint8_t span_id[8] = {0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74};

/* An ExportTraceServiceRequest of |nspans| spans named |name|. */
static uint8_t *traces(int nspans, const char *name, size_t *len)
{
    Opentelemetry__Proto__Trace__V1__Span spans[8], *sp[8];
    ck_assert_int_le(nspans, 8);
    for (int i = 0; i < nspans; i++) {
        Opentelemetry__Proto__Trace__V1__Span s = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
        s.trace_id.data = (uint8_t *)trace_id;
        s.trace_id.len = sizeof(trace_id);
        s.span_id.data = (uint8_t *)span_id;
        s.span_id.len = sizeof(span_id);
        s.name = (char *)name;
        spans[i] = s;
        sp[i] = &spans[i];
    }
    Opentelemetry__Proto__Trace__V1__ScopeSpans ss =
        OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    ss.n_spans = (size_t)nspans;
    ss.spans = sp;
    Opentelemetry__Proto__Trace__V1__ScopeSpans *ssp = &ss;
    Opentelemetry__Proto__Trace__V1__ResourceSpans rs =
        OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    rs.n_scope_spans = 1;
    rs.scope_spans = &ssp;
    Opentelemetry__Proto__Trace__V1__ResourceSpans *rsp = &rs;
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    req.n_resource_spans = 1;
    req.resource_spans = &rsp;
    *len = opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(&req);
    uint8_t *out = malloc(*len + 1);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(&req, out);
    return out;
}

static const char json_traces[] =
    "{\"resourceSpans\":[{\"resource\":{},\"scopeSpans\":[{\"scope\":{\"name\":\"t\"},"
    "\"spans\":[{\"traceId\":\"5b8efff798038103d269b633813fc60c\","
    "\"spanId\":\"eee19b7ec3c1b174\",\"name\":\"from json\",\"kind\":2,"
    "\"startTimeUnixNano\":\"1544712660000000000\"},"
    "{\"traceId\":\"5B8EFFF798038103D269B633813FC60C\","
    "\"spanId\":\"EEE19B7EC3C1B174\",\"name\":\"second\"}]}]}]}";

/* Reads google.rpc.Status {code = 1, message = 2, details = 3 (Any with
 * type_url = 1)} from protobuf; fails the test on a malformed message. */
struct status {
    int code;
    char message[512];
    char detail_type[128];
};

static uint64_t rd_varint(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    ck_abort_msg("bad varint in Status");
    return 0;
}

static void decode_status(const struct resp *r, struct status *st)
{
    memset(st, 0, sizeof(*st));
    const uint8_t *p = r->body, *end = r->body + r->body_len;
    while (p < end) {
        uint64_t tag = rd_varint(&p, end);
        if ((tag & 7) == 0) {
            uint64_t v = rd_varint(&p, end);
            if (tag >> 3 == 1)
                st->code = (int)v;
            continue;
        }
        ck_assert_uint_eq(tag & 7, 2);
        uint64_t n = rd_varint(&p, end);
        ck_assert_uint_le(n, (uint64_t)(end - p));
        if (tag >> 3 == 2) {
            ck_assert_uint_lt(n, sizeof(st->message));
            memcpy(st->message, p, n);
        } else if (tag >> 3 == 3) {
            const uint8_t *q = p, *qend = p + n;
            while (q < qend) {
                uint64_t t = rd_varint(&q, qend);
                ck_assert_uint_eq(t & 7, 2);
                uint64_t m = rd_varint(&q, qend);
                if (t >> 3 == 1 && m < sizeof(st->detail_type))
                    memcpy(st->detail_type, q, m);
                q += m;
            }
        }
        p += n;
    }
}

/* The response is a protobuf Status with |code| and a message containing
 * |text|. */
static void assert_proto_status(const struct resp *r, int code, const char *text)
{
    struct status st;
    assert_header(r, "content-type", "application/x-protobuf");
    decode_status(r, &st);
    ck_assert_int_eq(st.code, code);
    ck_assert_msg(strstr(st.message, text) != NULL, "'%s' not in '%s'", text, st.message);
}

static json_t *json_body(const struct resp *r)
{
    json_error_t err;
    json_t *j = json_loadb((const char *)r->body, r->body_len, 0, &err);
    ck_assert_msg(j != NULL, "response is not JSON: %.*s", (int)r->body_len, r->body);
    return j;
}


/* ---- the loop for a while, and large bodies ---- */

static void tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until |cond| holds or |ms| have passed (a guard, not a
 * timing assertion); |cond| NULL: for |ms|. Returns whether |cond| held. */
static bool run_until(bool (*cond)(void), uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, tick, 5, 5);
    uint64_t end = uv_now(&loop) + ms;
    while ((cond == NULL || !cond()) && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return cond != NULL && cond();
}

/* An ExportTraceServiceRequest of one span whose name is 180 KiB of
 * pseudo-random letters, which gzip to well over LK_INFLATE_OFFLOOP_BYTES.
 * |seed| varies the name. */
static uint8_t *big_traces(uint32_t seed, size_t *len)
{
    static const char alphabet[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    size_t n = 180 * 1024;
    char *name = malloc(n + 1);
    ck_assert_ptr_nonnull(name);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        name[i] = alphabet[(x >> 16) & 63];
    }
    name[n] = '\0';
    uint8_t *body = traces(1, name, len);
    free(name);
    ck_assert_uint_le(*len, MAX_BODY);
    return body;
}

static void gzip_of(const uint8_t *p, size_t n, lk_buf *out)
{
    lk_buf_init(out, SIZE_MAX);
    ck_assert_int_eq(lk_gzip_deflate(p, n, out), 0);
    ck_assert(lk_inflate_pool_wants(out->len));
}

/* ---- tests ---- */

START_TEST(protobuf_request_is_accepted_and_queued)
{
    start("127.0.0.1:0", 1000);
    ck_assert_int_gt(port, 0);
    size_t len;
    uint8_t *body = traces(2, "span", &len);
    struct exch *x = exch_new();
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", NULL, body, len);
    run(x);
    ck_assert_int_eq(x->nresp, 1);
    ck_assert_int_eq(x->resp[0].status, 200);
    assert_header(&x->resp[0], "content-type", "application/x-protobuf");
    /* An ExportTraceServiceResponse without partial_success. */
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *resp =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
            NULL, x->resp[0].body_len, x->resp[0].body);
    ck_assert_ptr_nonnull(resp);
    ck_assert_ptr_null(resp->partial_success);
    opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(
        resp, NULL);
    /* Queued as it came: the same bytes, counted as two spans. */
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 1);
    ck_assert_uint_eq(F[LK_SIGNAL_TRACES].sent_items[0], 2);
    ck_assert_uint_eq(F[LK_SIGNAL_TRACES].sent_len[0], len);
    ck_assert_mem_eq(F[LK_SIGNAL_TRACES].sent[0], body, len);
    ck_assert_uint_eq(counter("lookout_receiver_accepted_spans_total", HTTP_LABELS), 2);
    ck_assert_uint_eq(requests(200), 1);
    free(body);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(content_type_parameters_and_case_are_ignored)
{
    start("127.0.0.1:0", 1000);
    size_t len;
    uint8_t *body = traces(1, "a", &len);
    struct exch *x = exch_new();
    add_req(x, "POST", "/v1/traces", "Application/X-Protobuf; charset=utf-8", NULL, body, len);
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", "Content-Encoding: identity\r\n",
            body, len);
    run(x);
    ck_assert_int_eq(x->nresp, 2);
    ck_assert_int_eq(x->resp[0].status, 200);
    ck_assert_int_eq(x->resp[1].status, 200);
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 2);
    free(body);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(chunked_request_is_accepted)
{
    start("127.0.0.1:0", 1000);
    size_t len;
    uint8_t *body = traces(2, "chunked", &len);
    lk_buf b;
    lk_buf_init(&b, 1 << 20);
    lk_buf_append_str(&b, "POST /v1/traces HTTP/1.1\r\nHost: t\r\nContent-Type: "
                          "application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n");
    size_t half = len / 2;
    lk_buf_printf(&b, "%zx\r\n", half);
    lk_buf_append(&b, body, half);
    lk_buf_printf(&b, "\r\n%zx\r\n", len - half);
    lk_buf_append(&b, body + half, len - half);
    lk_buf_append_str(&b, "\r\n0\r\n\r\n");
    struct exch *x = exch_new();
    add_raw(x, b.data, b.len);
    lk_buf_fini(&b);
    run(x);
    ck_assert_int_eq(x->nresp, 1);
    ck_assert_int_eq(x->resp[0].status, 200);
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 1);
    ck_assert_uint_eq(F[LK_SIGNAL_TRACES].sent_len[0], len);
    ck_assert_mem_eq(F[LK_SIGNAL_TRACES].sent[0], body, len);
    free(body);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(empty_request_succeeds_without_queueing)
{
    start("127.0.0.1:0", 1000);
    struct exch *x = exch_new();
    add_req(x, "POST", "/v1/metrics", "application/x-protobuf", NULL, "", 0);
    run(x);
    ck_assert_int_eq(x->resp[0].status, 200);
    ck_assert_int_eq(F[LK_SIGNAL_METRICS].calls, 0);
    ck_assert_uint_eq(requests(200), 1);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(json_request_is_queued_as_protobuf)
{
    start("127.0.0.1:0", 1000);
    struct exch *x = exch_new();
    add_req(x, "POST", "/v1/traces", "application/json", NULL, json_traces,
            strlen(json_traces));
    run(x);
    ck_assert_int_eq(x->nresp, 1);
    ck_assert_int_eq(x->resp[0].status, 200);
    assert_header(&x->resp[0], "content-type", "application/json");
    json_t *j = json_body(&x->resp[0]);
    ck_assert(json_is_object(j));
    ck_assert_ptr_null(json_object_get(j, "partialSuccess"));
    json_decref(j);
    /* The queued item is the protobuf encoding of the same request. */
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 1);
    ck_assert_uint_eq(F[LK_SIGNAL_TRACES].sent_items[0], 2);
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
            NULL, F[LK_SIGNAL_TRACES].sent_len[0], F[LK_SIGNAL_TRACES].sent[0]);
    ck_assert_ptr_nonnull(req);
    ck_assert_uint_eq(req->n_resource_spans, 1);
    ck_assert_uint_eq(req->resource_spans[0]->n_scope_spans, 1);
    Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = req->resource_spans[0]->scope_spans[0];
    ck_assert_str_eq(ss->scope->name, "t");
    ck_assert_uint_eq(ss->n_spans, 2);
    ck_assert_str_eq(ss->spans[0]->name, "from json");
    ck_assert_int_eq(ss->spans[0]->kind, 2);
    ck_assert_uint_eq(ss->spans[0]->start_time_unix_nano, 1544712660000000000ULL);
    for (int i = 0; i < 2; i++) {
        ck_assert_uint_eq(ss->spans[i]->trace_id.len, 16);
        ck_assert_mem_eq(ss->spans[i]->trace_id.data, trace_id, 16);
        ck_assert_uint_eq(ss->spans[i]->span_id.len, 8);
        ck_assert_mem_eq(ss->spans[i]->span_id.data, span_id, 8);
    }
    ck_assert_str_eq(ss->spans[1]->name, "second");
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
        req, NULL);
    ck_assert_uint_eq(counter("lookout_receiver_accepted_spans_total", HTTP_LABELS), 2);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(gzip_and_deflate_bodies)
{
    start("127.0.0.1:0", 1000);
    size_t len;
    uint8_t *body = traces(3, "zipped", &len);
    lk_buf gz;
    lk_buf_init(&gz, 1 << 20);
    ck_assert_int_eq(lk_gzip_deflate(body, len, &gz), 0);
    uLongf zlen = compressBound(len);
    uint8_t *z = malloc(zlen);
    ck_assert_int_eq(compress(z, &zlen, body, len), Z_OK); /* zlib format */
    struct exch *x = exch_new();
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", "Content-Encoding: gzip\r\n",
            gz.data, gz.len);
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", "Content-Encoding: deflate\r\n",
            z, zlen);
    /* Corrupt: the gzip stream cut short. */
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", "Content-Encoding: gzip\r\n",
            gz.data, gz.len - 4);
    run(x);
    ck_assert_int_eq(x->nresp, 3);
    ck_assert_int_eq(x->resp[0].status, 200);
    ck_assert_int_eq(x->resp[1].status, 200);
    ck_assert_int_eq(x->resp[2].status, 400);
    assert_proto_status(&x->resp[2], 3, "corrupt or truncated gzip body");
    /* Queued decompressed. */
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_uint_eq(F[LK_SIGNAL_TRACES].sent_len[i], len);
        ck_assert_mem_eq(F[LK_SIGNAL_TRACES].sent[i], body, len);
    }
    ck_assert_uint_eq(counter("lookout_receiver_accepted_spans_total", HTTP_LABELS), 6);
    lk_buf_fini(&gz);
    free(z);
    free(body);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(invalid_protobuf_is_400_with_status)
{
    start("127.0.0.1:0", 1000);
    size_t len;
    uint8_t *body = traces(1, "bad\xff", &len); /* invalid UTF-8 in a string */
    struct exch *x = exch_new();
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", NULL, body, len);
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", NULL, "\x0a\x05\x01", 3);
    run(x);
    ck_assert_int_eq(x->nresp, 2);
    ck_assert_int_eq(x->resp[0].status, 400);
    assert_proto_status(&x->resp[0], 3, "invalid traces request: ");
    assert_proto_status(&x->resp[0], 3, "name");
    ck_assert_int_eq(x->resp[1].status, 400);
    assert_proto_status(&x->resp[1], 3, "invalid traces request: ");
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 0);
    ck_assert_uint_eq(counter("lookout_receiver_accepted_spans_total", HTTP_LABELS), 0);
    ck_assert_uint_eq(requests(400), 2);
    free(body);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(invalid_json_is_400_with_json_status)
{
    start("127.0.0.1:0", 1000);
    static const char bad_id[] =
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"xyz\","
        "\"spanId\":\"eee19b7ec3c1b174\",\"name\":\"a\"}]}]}]}";
    struct exch *x = exch_new();
    add_req(x, "POST", "/v1/traces", "application/json", NULL, "{\"resourceSpans\":[", 18);
    add_req(x, "POST", "/v1/traces", "application/json; charset=utf-8", NULL, bad_id,
            strlen(bad_id));
    run(x);
    ck_assert_int_eq(x->nresp, 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(x->resp[i].status, 400);
        assert_header(&x->resp[i], "content-type", "application/json");
        json_t *j = json_body(&x->resp[i]);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "code")), 3);
        const char *msg = json_string_value(json_object_get(j, "message"));
        ck_assert_ptr_nonnull(msg);
        ck_assert_msg(strstr(msg, "invalid JSON traces request: ") == msg, "%s", msg);
        json_decref(j);
    }
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 0);
    ck_assert_uint_eq(requests(400), 2);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(unsupported_media_is_415)
{
    start("127.0.0.1:0", 1000);
    size_t len;
    uint8_t *body = traces(1, "a", &len);
    struct exch *x = exch_new();
    add_req(x, "POST", "/v1/traces", "text/plain", NULL, body, len);
    add_req(x, "POST", "/v1/traces", NULL, NULL, body, len);
    add_req(x, "POST", "/v1/traces", "application/x-protobufs", NULL, body, len);
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", "Content-Encoding: br\r\n",
            body, len);
    add_req(x, "POST", "/v1/traces", "application/json", "Content-Encoding: zstd\r\n",
            "{}", 2);
    run(x);
    ck_assert_int_eq(x->nresp, 5);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(x->resp[i].status, 415);
        assert_proto_status(&x->resp[i], 12, "unsupported Content-Type; use "
                                             "application/x-protobuf or application/json");
    }
    ck_assert_int_eq(x->resp[3].status, 415);
    assert_proto_status(&x->resp[3], 12, "unsupported Content-Encoding");
    ck_assert_int_eq(x->resp[4].status, 415);
    assert_header(&x->resp[4], "content-type", "application/json"); /* as the request */
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 0);
    ck_assert_uint_eq(requests(415), 5);
    free(body);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(unknown_paths_and_unconfigured_signals_are_404)
{
    start("127.0.0.1:0", 1000);
    struct exch *x = exch_new();
    add_req(x, "POST", "/v1/trace", "application/x-protobuf", NULL, "", 0);
    add_req(x, "GET", "/", NULL, NULL, "", 0);
    add_req(x, "POST", "/v1/logs", "application/x-protobuf", NULL, "", 0);
    add_req(x, "POST", "/v1/logs", "application/json", NULL, "{}", 2);
    run(x);
    ck_assert_int_eq(x->nresp, 4);
    ck_assert_int_eq(x->resp[0].status, 404);
    assert_proto_status(&x->resp[0], 5, "unknown path");
    ck_assert_int_eq(x->resp[1].status, 404);
    ck_assert_int_eq(x->resp[2].status, 404);
    assert_proto_status(&x->resp[2], 12, "no logs pipeline is configured");
    ck_assert_int_eq(x->resp[3].status, 404);
    json_t *j = json_body(&x->resp[3]);
    ck_assert_str_eq(json_string_value(json_object_get(j, "message")),
                     "no logs pipeline is configured");
    json_decref(j);
    ck_assert_uint_eq(requests(404), 4);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(other_methods_are_405)
{
    start("127.0.0.1:0", 1000);
    struct exch *x = exch_new();
    add_req(x, "GET", "/v1/traces", NULL, NULL, "", 0);
    add_req(x, "PUT", "/v1/metrics", "application/x-protobuf", NULL, "", 0);
    run(x);
    ck_assert_int_eq(x->nresp, 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(x->resp[i].status, 405);
        assert_header(&x->resp[i], "allow", "POST");
        assert_proto_status(&x->resp[i], 12, "only POST is allowed");
    }
    ck_assert_uint_eq(requests(405), 2);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(bodies_over_the_limit_are_413)
{
    start("127.0.0.1:0", 1000);
    /* Announced by Content-Length: refused before the body is read. */
    struct exch *x = exch_new();
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "POST /v1/traces HTTP/1.1\r\nHost: t\r\nContent-Type: "
                     "application/x-protobuf\r\nContent-Length: %d\r\n\r\n", MAX_BODY + 1);
    add_raw(x, head, (size_t)n);
    x->want_eof = true;
    run(x);
    ck_assert_int_eq(x->nresp, 1);
    ck_assert_int_eq(x->resp[0].status, 413);
    ck_assert(x->eof);
    exch_free(x);

    /* Chunked: refused once the decoded body passes the limit. */
    x = exch_new();
    lk_buf b;
    lk_buf_init(&b, 1 << 22);
    lk_buf_append_str(&b, "POST /v1/traces HTTP/1.1\r\nHost: t\r\nContent-Type: "
                          "application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n");
    static uint8_t chunk[64 * 1024];
    for (int i = 0; i < 5; i++) {
        lk_buf_printf(&b, "%x\r\n", (unsigned)sizeof(chunk));
        lk_buf_append(&b, chunk, sizeof(chunk));
        lk_buf_append(&b, "\r\n", 2);
    }
    lk_buf_append_str(&b, "0\r\n\r\n");
    add_raw(x, b.data, b.len);
    lk_buf_fini(&b);
    run(x);
    ck_assert_int_eq(x->nresp, 1);
    ck_assert_int_eq(x->resp[0].status, 413);
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 0);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(headers_over_the_limit_are_431)
{
    start("127.0.0.1:0", 1000);
    static char big[9000];
    memset(big, 'a', sizeof(big) - 1);
    char *extra = malloc(sizeof(big) + 32);
    snprintf(extra, sizeof(big) + 32, "X-Big: %s\r\n", big);
    struct exch *x = exch_new();
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", extra, "", 0);
    x->want_eof = true;
    run(x);
    ck_assert_int_eq(x->nresp, 1);
    ck_assert_int_eq(x->resp[0].status, 431);
    ck_assert(x->eof);
    free(extra);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(gzip_bomb_is_413_without_inflating_it)
{
    start("127.0.0.1:0", 1000);
    /* 16 MiB of zeros compress to about 16 KiB: small on the wire, 64 times
     * the limit once inflated. */
    size_t big = 16u << 20;
    uint8_t *zeros = calloc(1, big);
    lk_buf gz;
    lk_buf_init(&gz, 2 * big);
    ck_assert_int_eq(lk_gzip_deflate(zeros, big, &gz), 0);
    free(zeros);
    ck_assert_uint_lt(gz.len, MAX_BODY);
    struct exch *x = exch_new();
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", "Content-Encoding: gzip\r\n",
            gz.data, gz.len);
    add_req(x, "POST", "/v1/traces", "application/json", "Content-Encoding: gzip\r\n",
            gz.data, gz.len);
    run(x);
    ck_assert_int_eq(x->nresp, 2);
    ck_assert_int_eq(x->resp[0].status, 413);
    char want[128];
    snprintf(want, sizeof(want),
             "decompressed body exceeds max_request_body_size (%d bytes)", MAX_BODY);
    assert_proto_status(&x->resp[0], 8, want);
    /* The connection stays usable: the body was read whole. */
    ck_assert_int_eq(x->resp[1].status, 413);
    json_t *j = json_body(&x->resp[1]);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "code")), 8);
    json_decref(j);
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 0);
    ck_assert_uint_eq(requests(413), 2);
    lk_buf_fini(&gz);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(full_queue_is_503_with_retry_after)
{
    start("127.0.0.1:0", 3); /* three spans, in flight included */
    size_t len;
    uint8_t *body = traces(2, "s", &len);
    struct exch *x = exch_new();
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", NULL, body, len);
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", NULL, body, len);
    add_req(x, "POST", "/v1/traces", "application/json", NULL, json_traces,
            strlen(json_traces));
    run(x);
    ck_assert_int_eq(x->nresp, 3);
    ck_assert_int_eq(x->resp[0].status, 200);
    ck_assert_int_eq(x->resp[1].status, 503);
    assert_header(&x->resp[1], "retry-after", "1");
    assert_proto_status(&x->resp[1], 14, "lookout's queue is full, retry later");
    struct status st;
    decode_status(&x->resp[1], &st);
    ck_assert_str_eq(st.detail_type, "type.googleapis.com/google.rpc.RetryInfo");
    ck_assert_int_eq(x->resp[2].status, 503);
    assert_header(&x->resp[2], "retry-after", "1");
    json_t *j = json_body(&x->resp[2]);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "code")), 14);
    json_t *d = json_array_get(json_object_get(j, "details"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(d, "@type")),
                     "type.googleapis.com/google.rpc.RetryInfo");
    ck_assert_str_eq(json_string_value(json_object_get(d, "retryDelay")), "1s");
    json_decref(j);
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 1);
    ck_assert_uint_eq(counter("lookout_receiver_accepted_spans_total", HTTP_LABELS), 2);
    ck_assert_uint_eq(counter("lookout_receiver_refused_spans_total", HTTP_LABELS), 4);
    ck_assert_uint_eq(requests(503), 2);
    free(body);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(keep_alive_serves_several_requests)
{
    start("127.0.0.1:0", 1000);
    size_t len;
    uint8_t *body = traces(1, "k", &len);
    struct exch *x = exch_new();
    for (int i = 0; i < 4; i++)
        add_req(x, "POST", i % 2 ? "/v1/metrics" : "/v1/traces", "application/x-protobuf",
                NULL, i % 2 ? (const uint8_t *)"" : body, i % 2 ? 0 : len);
    run(x); /* one request, then its answer, then the next */
    ck_assert_int_eq(x->nresp, 4);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(x->resp[i].status, 200);
        ck_assert_ptr_null(strcasestr(x->resp[i].head, "connection: close"));
    }
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 2);
    free(body);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(pipelined_requests_are_answered_in_order)
{
    start("127.0.0.1:0", 1000);
    size_t len, badlen;
    uint8_t *body = traces(1, "first", &len);
    uint8_t *bad = traces(1, "\xc0", &badlen);
    struct exch *x = exch_new();
    x->pipelined = true;
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", NULL, body, len);
    add_req(x, "POST", "/v1/nope", "application/x-protobuf", NULL, "", 0);
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", NULL, bad, badlen);
    add_req(x, "POST", "/v1/traces", "application/json", NULL, json_traces,
            strlen(json_traces));
    add_req(x, "GET", "/v1/traces", NULL, NULL, "", 0);
    run(x);
    ck_assert_int_eq(x->nresp, 5);
    ck_assert_int_eq(x->resp[0].status, 200);
    ck_assert_int_eq(x->resp[1].status, 404);
    ck_assert_int_eq(x->resp[2].status, 400);
    ck_assert_int_eq(x->resp[3].status, 200);
    assert_header(&x->resp[3], "content-type", "application/json");
    ck_assert_int_eq(x->resp[4].status, 405);
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 2);
    ck_assert_mem_eq(F[LK_SIGNAL_TRACES].sent[0], body, len);
    free(body);
    free(bad);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(unix_socket_endpoint)
{
    char path[64], ep[80];
    snprintf(path, sizeof(path), "/tmp/lk-otlp-http-%d.sock", (int)getpid());
    snprintf(ep, sizeof(ep), "unix://%s", path);
    start(ep, 1000);
    ck_assert_int_eq(port, -1);
    size_t len;
    uint8_t *body = traces(1, "over unix", &len);
    struct exch *x = exch_new();
    x->unix_path = path;
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", NULL, body, len);
    run(x);
    ck_assert_int_eq(x->nresp, 1);
    ck_assert_int_eq(x->resp[0].status, 200);
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 1);
    ck_assert_mem_eq(F[LK_SIGNAL_TRACES].sent[0], body, len);
    free(body);
    exch_free(x);
    stop();
    ck_assert_int_ne(access(path, F_OK), 0); /* removed on close */
}
END_TEST

START_TEST(start_fails_on_a_taken_port)
{
    start("127.0.0.1:0", 1000);
    char ep[32];
    snprintf(ep, sizeof(ep), "127.0.0.1:%d", port);
    struct lk_http_receiver_config cfg = {.enabled = true, .endpoint = ep,
                                          .max_request_body_size = MAX_BODY,
                                          .max_connections = 1, .max_header_bytes = 1024,
                                          .idle_timeout_ms = 1000, .read_timeout_ms = 1000};
    lk_otlp_http *r2 = NULL;
    ck_assert_int_eq(lk_otlp_http_start(&r2, &loop, "otlp/2", &cfg, P, M), LK_ESYS);
    ck_assert_ptr_null(r2);
    cfg.endpoint = "nohost";
    ck_assert_int_eq(lk_otlp_http_start(&r2, &loop, "otlp/2", &cfg, P, M), LK_EINVAL);
    stop();
}
END_TEST


START_TEST(large_bodies_are_inflated_off_the_loop_in_order)
{
    start("127.0.0.1:0", 1000);
    size_t blen, slen;
    uint8_t *big = big_traces(1, &blen);
    uint8_t *small = traces(2, "small", &slen);
    lk_buf gz, bomb;
    gzip_of(big, blen, &gz);
    uLongf zlen = compressBound(blen);
    uint8_t *z = malloc(zlen);
    ck_assert_int_eq(compress(z, &zlen, big, blen), Z_OK); /* zlib format */
    ck_assert(lk_inflate_pool_wants(zlen));
    /* A bomb large enough to go to the pool: the big body, then 1 MiB of
     * zeros, four times the limit once inflated. */
    size_t blen2 = blen + (1u << 20);
    uint8_t *padded = calloc(1, blen2);
    memcpy(padded, big, blen);
    gzip_of(padded, blen2, &bomb);
    free(padded);
    ck_assert_uint_le(bomb.len, MAX_BODY);

    struct exch *x = exch_new();
    x->pipelined = true;
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", "Content-Encoding: gzip\r\n",
            gz.data, gz.len);
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", NULL, small, slen);
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", "Content-Encoding: deflate\r\n",
            z, zlen);
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", "Content-Encoding: gzip\r\n",
            bomb.data, bomb.len);
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", "Content-Encoding: gzip\r\n",
            gz.data, gz.len - 4); /* truncated */
    add_req(x, "POST", "/v1/traces", "application/json", "Content-Encoding: gzip\r\n",
            gz.data, gz.len); /* protobuf bytes announced as JSON */
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", NULL, small, slen);
    run(x);
    ck_assert_int_eq(x->nresp, 7);
    int want_status[] = {200, 200, 200, 413, 400, 400, 200};
    for (int i = 0; i < 7; i++)
        ck_assert_msg(x->resp[i].status == want_status[i], "answer %d: %d, want %d", i,
                      x->resp[i].status, want_status[i]);
    char want[128];
    snprintf(want, sizeof(want),
             "decompressed body exceeds max_request_body_size (%d bytes)", MAX_BODY);
    assert_proto_status(&x->resp[3], 8, want);
    assert_proto_status(&x->resp[4], 3, "corrupt or truncated gzip body");
    json_t *j = json_body(&x->resp[5]);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "code")), 3);
    json_decref(j);
    /* Queued in the order they came, decompressed. */
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 4);
    const uint8_t *want_body[] = {big, small, big, small};
    size_t want_len[] = {blen, slen, blen, slen};
    for (int i = 0; i < 4; i++) {
        ck_assert_uint_eq(F[LK_SIGNAL_TRACES].sent_len[i], want_len[i]);
        ck_assert_mem_eq(F[LK_SIGNAL_TRACES].sent[i], want_body[i], want_len[i]);
    }
    ck_assert_uint_eq(counter("lookout_receiver_accepted_spans_total", HTTP_LABELS), 6);
    ck_assert_uint_eq(requests(200), 4);
    ck_assert_uint_eq(requests(413), 1);
    ck_assert_uint_eq(requests(400), 2);
    lk_buf_fini(&gz);
    lk_buf_fini(&bomb);
    free(z);
    free(big);
    free(small);
    exch_free(x);
    stop();
}
END_TEST

static bool two_batches(void)
{
    return F[LK_SIGNAL_TRACES].calls == 2;
}

START_TEST(other_connections_are_served_while_a_body_inflates)
{
    start("127.0.0.1:0", 1000);
    size_t blen, slen;
    uint8_t *big = big_traces(2, &blen);
    uint8_t *small = traces(1, "meanwhile", &slen);
    lk_buf gz;
    gzip_of(big, blen, &gz);
    pool_hold(&loop);
    /* A client sends a large gzip body and hangs up at once. */
    struct exch *a = exch_new();
    add_req(a, "POST", "/v1/traces", "application/x-protobuf", "Content-Encoding: gzip\r\n",
            gz.data, gz.len);
    a->hang_up = true;
    run(a);
    run_until(NULL, 100); /* the loop reads it and hands it to the pool */
    /* Its body is stuck on the pool, yet another connection is answered. */
    struct exch *b = exch_new();
    add_req(b, "POST", "/v1/traces", "application/x-protobuf", NULL, small, slen);
    run(b);
    ck_assert_int_eq(b->nresp, 1);
    ck_assert_int_eq(b->resp[0].status, 200);
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 1);
    ck_assert_mem_eq(F[LK_SIGNAL_TRACES].sent[0], small, slen);
    /* Once the pool is free the first body ends as well. The server does not
     * read a connection whose request it is handling, so the hang-up is
     * noticed only when the answer cannot be written: the request counts as
     * any other. */
    pool_release();
    ck_assert(run_until(two_batches, 10000));
    ck_assert_mem_eq(F[LK_SIGNAL_TRACES].sent[1], big, blen);
    ck_assert_uint_eq(counter("lookout_receiver_accepted_spans_total", HTTP_LABELS), 2);
    lk_buf_fini(&gz);
    free(big);
    free(small);
    exch_free(a);
    exch_free(b);
    stop();
}
END_TEST

#define CLOSE_CLIENTS 6 /* more than LK_INFLATE_MAX_RUNNING: some wait */

static bool closed(void)
{
    return receiver_closed;
}

START_TEST(close_while_inflating_drops_the_requests)
{
    start("127.0.0.1:0", 1000);
    size_t blen;
    uint8_t *big = big_traces(3, &blen);
    lk_buf gz;
    gzip_of(big, blen, &gz);
    pool_hold(&loop);
    struct exch *x[CLOSE_CLIENTS];
    pthread_t t[CLOSE_CLIENTS];
    for (int i = 0; i < CLOSE_CLIENTS; i++) {
        x[i] = exch_new();
        add_req(x[i], "POST", "/v1/traces", "application/x-protobuf",
                "Content-Encoding: gzip\r\n", gz.data, gz.len);
        ck_assert_int_eq(pthread_create(&t[i], NULL, client_main, x[i]), 0);
    }
    /* Every body is read and handed over: four with libuv's held threads,
     * two waiting behind them. */
    run_until(NULL, 300);
    receiver_closed = false;
    receiver_closing = true;
    lk_otlp_http_close(R, on_receiver_closed, NULL);
    /* The receiver is not freed while its bodies are on the pool. */
    run_until(closed, 100);
    ck_assert(!receiver_closed);
    pool_release();
    ck_assert(run_until(closed, 10000));
    for (int i = 0; i < CLOSE_CLIENTS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(x[i]->nresp, 0); /* no answer: the client retries */
        exch_free(x[i]);
    }
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 0);
    ck_assert_uint_eq(counter("lookout_receiver_accepted_spans_total", HTTP_LABELS), 0);
    ck_assert_uint_eq(requests(200), 0);
    ck_assert_uint_eq(requests(503), 0);
    lk_buf_fini(&gz);
    free(big);
    stop();
}
END_TEST

/* A reload's lk_otlp_http_update with |max_body|, the rest as start() has it. */
static void update_body_limit(uint64_t max_body)
{
    struct lk_http_receiver_config cfg = {
        .enabled = true,
        .endpoint = "127.0.0.1:0",
        .max_request_body_size = max_body,
        .max_connections = 16,
        .max_header_bytes = 8 * 1024,
        .idle_timeout_ms = 10000,
        .read_timeout_ms = 10000,
    };
    lk_otlp_http_update(R, &cfg, P);
}

/* One POST of |body| (gzip-encoded when |gz|) on a new connection: its status. */
static int post_once(const uint8_t *body, size_t len, bool gz, char *text, size_t textlen)
{
    struct exch *x = exch_new();
    add_req(x, "POST", "/v1/traces", "application/x-protobuf",
            gz ? "Content-Encoding: gzip\r\n" : NULL, body, len);
    run(x);
    ck_assert_int_eq(x->nresp, 1);
    int status = x->resp[0].status;
    if (text != NULL) {
        struct status st;
        decode_status(&x->resp[0], &st);
        snprintf(text, textlen, "%.200s", st.message);
    }
    exch_free(x);
    return status;
}

/* ---- storage.durable: answers wait for the commit ---- */

/*
 * A check handle runs at the end of each loop turn, after that turn's I/O:
 * when the traces queue grew during the turn, it notes how many requests
 * had been answered 200 by then. Without durable acknowledgement a request
 * is answered in the turn its items are queued; with it, the answer comes
 * from the ack's callback, on a later turn (no spool holds a commit here).
 */
#define MAX_GROWTHS 8
static uv_check_t observer;
static uint64_t observed_held;
static int growths;
static uint64_t answered_at[MAX_GROWTHS];
static bool close_on_growth; /* close the receiver at the first growth */

static void on_check(uv_check_t *h)
{
    uint64_t held = lk_queue_held_items(Q[LK_SIGNAL_TRACES]);
    if (held <= observed_held)
        return;
    observed_held = held;
    ck_assert_int_lt(growths, MAX_GROWTHS);
    answered_at[growths++] = requests(200);
    if (close_on_growth) {
        close_on_growth = false;
        receiver_closed = false;
        receiver_closing = true;
        lk_otlp_http_close(R, on_receiver_closed, NULL);
    }
}

static void observe(void)
{
    observed_held = 0;
    growths = 0;
    close_on_growth = false;
    ck_assert_int_eq(uv_check_init(&loop, &observer), 0);
    ck_assert_int_eq(uv_check_start(&observer, on_check), 0);
}

static void observe_end(void)
{
    uv_close((uv_handle_t *)&observer, NULL);
}

static uint64_t spans_accepted(void)
{
    return counter("lookout_receiver_accepted_spans_total", HTTP_LABELS);
}

START_TEST(durable_answer_comes_after_the_commit)
{
    start("127.0.0.1:0", 1000);
    observe();
    size_t len;
    uint8_t *body = traces(2, "durable", &len);
    /* Without it, first: answered in the turn the items were queued. */
    ck_assert_int_eq(post_once(body, len, false, NULL, 0), 200);
    ck_assert_int_eq(growths, 1);
    ck_assert_uint_eq(answered_at[0], 1);
    lk_pipeline_set_durable(P[LK_SIGNAL_TRACES], true);
    ck_assert_int_eq(post_once(body, len, false, NULL, 0), 200);
    ck_assert_int_eq(growths, 2);
    ck_assert_uint_eq(answered_at[1], 1); /* only the first, then */
    ck_assert_uint_eq(requests(200), 2);
    ck_assert_uint_eq(spans_accepted(), 4);
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 2);
    ck_assert_mem_eq(F[LK_SIGNAL_TRACES].sent[1], body, len);
    free(body);
    observe_end();
    stop();
}
END_TEST

START_TEST(durable_pipelined_requests_wait_for_each_commit)
{
    start("127.0.0.1:0", 1000);
    lk_pipeline_set_durable(P[LK_SIGNAL_TRACES], true);
    observe();
    size_t alen, blen;
    uint8_t *a = traces(1, "a", &alen);
    uint8_t *b = traces(1, "b", &blen);
    struct exch *x = exch_new();
    x->pipelined = true;
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", NULL, a, alen);
    add_req(x, "POST", "/v1/nope", "application/x-protobuf", NULL, "", 0);
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", NULL, b, blen);
    run(x);
    ck_assert_int_eq(x->nresp, 3);
    ck_assert_int_eq(x->resp[0].status, 200);
    ck_assert_int_eq(x->resp[1].status, 404);
    ck_assert_int_eq(x->resp[2].status, 200);
    /* "b" was parsed only once "a" was answered, and answered later still. */
    ck_assert_int_eq(growths, 2);
    ck_assert_uint_eq(answered_at[0], 0);
    ck_assert_uint_eq(answered_at[1], 1);
    ck_assert_mem_eq(F[LK_SIGNAL_TRACES].sent[0], a, alen);
    ck_assert_mem_eq(F[LK_SIGNAL_TRACES].sent[1], b, blen);
    free(a);
    free(b);
    exch_free(x);
    observe_end();
    stop();
}
END_TEST

static bool one_accepted(void)
{
    return spans_accepted() == 1;
}

START_TEST(durable_client_gone_while_waiting)
{
    start("127.0.0.1:0", 1000);
    lk_pipeline_set_durable(P[LK_SIGNAL_TRACES], true);
    size_t len;
    uint8_t *body = traces(1, "gone", &len);
    struct exch *x = exch_new();
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", NULL, body, len);
    x->hang_up = true;
    run(x);
    /* The answer, once committed, goes to a closed socket: nothing breaks,
     * and the items stay queued. */
    ck_assert(run_until(one_accepted, 10000));
    ck_assert_int_eq(x->nresp, 0);
    ck_assert_mem_eq(F[LK_SIGNAL_TRACES].sent[0], body, len);
    free(body);
    exch_free(x);
    stop();
}
END_TEST

START_TEST(durable_close_before_the_commit)
{
    start("127.0.0.1:0", 1000);
    lk_pipeline_set_durable(P[LK_SIGNAL_TRACES], true);
    observe();
    close_on_growth = true;
    size_t len;
    uint8_t *body = traces(1, "closing", &len);
    struct exch *x = exch_new();
    add_req(x, "POST", "/v1/traces", "application/x-protobuf", NULL, body, len);
    run(x);
    /* Closed in the turn the items were queued: no answer, none counted;
     * the items are queued (the shutdown drain sends them). */
    ck_assert(run_until(closed, 10000));
    ck_assert_int_eq(x->nresp, 0);
    ck_assert_uint_eq(requests(200), 0);
    ck_assert_uint_eq(spans_accepted(), 1);
    ck_assert_uint_eq(lk_queue_held_items(Q[LK_SIGNAL_TRACES]), 1);
    free(body);
    exch_free(x);
    observe_end();
    stop();
}
END_TEST

START_TEST(reload_changes_the_body_limits)
{
    start("127.0.0.1:0", 1000);
    /* Spans named with 20 KiB, then 400 KiB, of one letter: their gzip is
     * small on the wire (inflated inline), their size is the name's. */
    char *name = malloc(400 * 1024 + 1);
    memset(name, 'a', 400 * 1024);
    name[20 * 1024] = '\0';
    size_t small_len, big_len;
    uint8_t *small = traces(1, name, &small_len);
    name[20 * 1024] = 'a';
    name[400 * 1024] = '\0';
    uint8_t *big = traces(1, name, &big_len);
    free(name);
    lk_buf small_gz, big_gz;
    lk_buf_init(&small_gz, SIZE_MAX);
    lk_buf_init(&big_gz, SIZE_MAX);
    ck_assert_int_eq(lk_gzip_deflate(small, small_len, &small_gz), 0);
    ck_assert_int_eq(lk_gzip_deflate(big, big_len, &big_gz), 0);
    ck_assert_uint_lt(big_gz.len, 8 * 1024);
    char text[256];

    ck_assert_int_eq(post_once(small_gz.data, small_gz.len, true, NULL, 0), 200);
    /* Lowered: the cap after decompression follows, not only the one on the wire. */
    update_body_limit(8 * 1024);
    ck_assert_int_eq(post_once(small_gz.data, small_gz.len, true, text, sizeof(text)), 413);
    ck_assert_str_eq(text, "decompressed body exceeds max_request_body_size (8192 bytes)");
    ck_assert_int_eq(post_once(small, small_len, false, NULL, 0), 413);
    /* Raised past the size the receiver started with: both caps follow. */
    update_body_limit(1024 * 1024);
    ck_assert_uint_gt(big_len, MAX_BODY);
    ck_assert_int_eq(post_once(big_gz.data, big_gz.len, true, NULL, 0), 200);
    ck_assert_int_eq(post_once(big, big_len, false, NULL, 0), 200);
    ck_assert_int_eq(F[LK_SIGNAL_TRACES].calls, 3);
    lk_buf_fini(&small_gz);
    lk_buf_fini(&big_gz);
    free(small);
    free(big);
    stop();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("otlp_http");
    struct {
        const char *name;
        const TTest *tests[4];
    } cases[] = {
        {"protobuf", {protobuf_request_is_accepted_and_queued,
                      content_type_parameters_and_case_are_ignored,
                      empty_request_succeeds_without_queueing, chunked_request_is_accepted}},
        {"json", {json_request_is_queued_as_protobuf}},
        {"compression", {gzip_and_deflate_bodies}},
        {"bad_data", {invalid_protobuf_is_400_with_status, invalid_json_is_400_with_json_status}},
        {"media", {unsupported_media_is_415}},
        {"routing", {unknown_paths_and_unconfigured_signals_are_404, other_methods_are_405}},
        {"limits", {bodies_over_the_limit_are_413, gzip_bomb_is_413_without_inflating_it,
                    headers_over_the_limit_are_431}},
        {"reload", {reload_changes_the_body_limits}},
        {"durable", {durable_answer_comes_after_the_commit,
                     durable_pipelined_requests_wait_for_each_commit,
                     durable_client_gone_while_waiting, durable_close_before_the_commit}},
        {"backpressure", {full_queue_is_503_with_retry_after}},
        {"connections", {keep_alive_serves_several_requests,
                         pipelined_requests_are_answered_in_order}},
        {"endpoints", {unix_socket_endpoint, start_fails_on_a_taken_port}},
        {"offloop", {large_bodies_are_inflated_off_the_loop_in_order,
                     other_connections_are_served_while_a_body_inflates,
                     close_while_inflating_drops_the_requests}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *t = tcase_create(cases[i].name);
        tcase_set_timeout(t, 60);
        tcase_add_checked_fixture(t, NULL, pool_unhold);
        for (size_t j = 0; j < 4 && cases[i].tests[j] != NULL; j++)
            tcase_add_test(t, cases[i].tests[j]);
        suite_add_tcase(s, t);
    }
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    pool_hold_setup();
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
