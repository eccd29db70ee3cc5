/*
 * The three receivers with storage.durable on, against a stand-in for the
 * disk spool: this file defines every function of pipeline/ack.c, so the
 * linker takes these and leaves the archive's ack.o out (should ack.c gain
 * a function the rest of the library calls, this file fails to link rather
 * than test the wrong thing). Each ack here waits for a commit that the test
 * makes, when it chooses and with the status it chooses (commit_all), which
 * the real spool cannot be made to do on demand: a failed commit, a client
 * that goes away while its commit is pending, a commit that is slow.
 *
 * Everything runs on the test's loop, real sockets included: an HTTP/2
 * client (nghttp2) for the gRPC receiver, a plain HTTP/1.1 client, line
 * writers on stream and datagram sockets. The queues' exporter is a fake
 * that holds every batch. Nothing asserts on elapsed time; waits end on
 * conditions, and a watchdog turns a hang into a failure.
 */
#include <check.h>
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "core/err.h"
#include "core/selfmetrics.h"
#include "loop_watchdog.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "pipeline/ack.h"
#include "pipeline/exporter.h"
#include "pipeline/pipeline.h"
#include "pipeline/queue.h"
#include "receivers/lines.h"
#include "receivers/otlp_grpc.h"
#include "receivers/otlp_http.h"

#define SPANS 3 /* per request */

/* ---- the stand-in for pipeline/ack.c ---- */

struct lk_ack {
    uv_timer_t timer; /* runs |done| on a later loop turn, as ack.c does */
    lk_ack_cb done;
    void *arg;
    unsigned holds; /* until sealed or canceled, the test's commit, lk_ack_hold's */
    int status;
    bool sealed;    /* or canceled before its seal */
    bool canceled;
    bool fired;
    lk_ack *next;   /* in |uncommitted| */
};

static lk_ack *uncommitted;
static int acks_made, acks_sealed, acks_canceled, acks_done, acks_freed;

lk_ack *lk_ack_new(uv_loop_t *l, lk_ack_cb done, void *arg)
{
    lk_ack *a = calloc(1, sizeof(*a));
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(uv_timer_init(l, &a->timer), 0);
    a->timer.data = a;
    a->done = done;
    a->arg = arg;
    a->holds = 2;
    a->next = uncommitted;
    uncommitted = a;
    acks_made++;
    return a;
}

static void ack_closed(uv_handle_t *h)
{
    free(h->data);
    acks_freed++;
}

static void ack_fire(uv_timer_t *t)
{
    lk_ack *a = t->data;
    a->fired = true;
    if (!a->canceled) {
        acks_done++;
        a->done(a->arg, a->status);
    }
    uv_close((uv_handle_t *)&a->timer, ack_closed);
}

static void ack_put(lk_ack *a)
{
    ck_assert_uint_gt(a->holds, 0);
    if (--a->holds == 0)
        uv_timer_start(&a->timer, ack_fire, 0, 0);
}

void lk_ack_seal(lk_ack *a)
{
    ck_assert_msg(!a->sealed, "an ack sealed twice, or sealed after its cancel");
    a->sealed = true;
    acks_sealed++;
    ack_put(a);
}

void lk_ack_cancel(lk_ack *a)
{
    ck_assert_msg(!a->fired && !a->canceled, "an ack canceled after its callback, or twice");
    a->canceled = true;
    acks_canceled++;
    if (!a->sealed) {
        a->sealed = true;
        ack_put(a);
    }
}

void lk_ack_hold(lk_ack *a)
{
    a->holds++;
}

void lk_ack_release(lk_ack *a, int status)
{
    if (status < 0 && a->status == 0)
        a->status = status;
    ack_put(a);
}

/* The spool commits everything offered so far, with |status|. */
static void commit_all(int status)
{
    while (uncommitted != NULL) {
        lk_ack *a = uncommitted;
        uncommitted = a->next;
        lk_ack_release(a, status);
    }
}

static void acks_reset(void)
{
    ck_assert_ptr_null(uncommitted);
    acks_made = acks_sealed = acks_canceled = acks_done = acks_freed = 0;
}

/* ---- queues, pipelines and a fake exporter that holds every batch ---- */

#define MAX_BATCHES 64

struct fake {
    lk_exporter base;
    lk_batch *pending[MAX_BATCHES];
    int calls;
};

static int fake_send(lk_exporter *e, lk_batch *b)
{
    struct fake *f = (struct fake *)e;
    ck_assert_int_lt(f->calls, MAX_BATCHES);
    f->pending[f->calls++] = b;
    return 0;
}

static void fake_close(lk_exporter *e, void (*done)(void *), void *arg)
{
    if (done)
        done(arg);
}

static const struct lk_exporter_ops fake_ops = {"fake", fake_send, fake_close};

static lk_metrics *M;
static struct fake F[LK_SIGNAL_COUNT];
static lk_queue *Q[LK_SIGNAL_COUNT];
static lk_pipeline *P[LK_SIGNAL_COUNT];
static struct lk_queue_config QC;
static struct lk_batch_config BC;
static struct lk_retry_config RC;
static char sock_path[108];
static bool receiver_closed;

static void on_receiver_closed(void *arg)
{
    receiver_closed = true;
}

/* A durable pipeline per signal, one queue each. */
static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    loop_start(30000);
    acks_reset();
    M = lk_metrics_create();
    QC = (struct lk_queue_config){.queue_size = 1000, .max_bytes = 16 << 20,
                                  .overflow = LK_OVERFLOW_REFUSE};
    BC = (struct lk_batch_config){.send_batch_size = 1000, .send_batch_max_bytes = 16 << 20,
                                  .timeout_ms = 1};
    RC = (struct lk_retry_config){.enabled = false, .initial_interval_ms = 1,
                                  .max_interval_ms = 1, .multiplier = 1};
    memset(F, 0, sizeof(F));
    for (int s = 0; s < LK_SIGNAL_COUNT; s++) {
        F[s].base.ops = &fake_ops;
        F[s].base.name = "fake";
        struct lk_queue_opts o = {.signal = (enum lk_signal)s, .queue = &QC, .batch = &BC,
                                  .retry = &RC, .max_concurrency = MAX_BATCHES};
        ck_assert_int_eq(lk_queue_create(&Q[s], &loop, &o, &F[s].base, M), 0);
        ck_assert_int_eq(lk_pipeline_create(&P[s], (enum lk_signal)s, &Q[s], 1), 0);
        lk_pipeline_set_durable(P[s], true);
    }
    snprintf(sock_path, sizeof(sock_path), "/tmp/lk_durable_%d.sock", (int)getpid());
    unlink(sock_path);
    receiver_closed = false;
}

/* Answers every batch sent so far; true once the queues hold nothing. */
static bool batches_answered(void)
{
    bool empty = true;
    for (int s = 0; s < LK_SIGNAL_COUNT; s++) {
        for (int i = 0; i < F[s].calls; i++)
            if (F[s].pending[i] != NULL) {
                lk_batch_done(F[s].pending[i], LK_EXPORT_OK, -1, NULL);
                F[s].pending[i] = NULL;
            }
        if (lk_queue_held_items(Q[s]) > 0)
            empty = false;
    }
    return empty;
}

/* After the receiver is closed: every commit made, every batch answered,
 * everything freed; and every ack ended (its callback ran or it was
 * canceled) and freed itself. */
static void teardown(void)
{
    RUN_UNTIL(receiver_closed);
    commit_all(0);
    RUN_UNTIL(acks_freed == acks_made);
    RUN_UNTIL(batches_answered());
    ck_assert_int_eq(acks_done + acks_canceled, acks_made);
    for (int s = 0; s < LK_SIGNAL_COUNT; s++) {
        lk_pipeline_destroy(P[s]);
        lk_queue_destroy(Q[s]);
    }
    loop_finish();
    lk_metrics_destroy(M);
}

static uint64_t counter(const char *name, const char *labels)
{
    return lk_counter_value(lk_metrics_counter(M, name, "", labels));
}

static double gauge(const char *name, const char *labels)
{
    return lk_gauge_value(lk_metrics_gauge(M, name, "", labels));
}

/* A few turns of the loop with nothing due: what could happen without a
 * commit has happened. */
static void idle_turns(void)
{
    for (int i = 0; i < 8; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
}

static int connect_unix(int type)
{
    int fd = socket(AF_UNIX, type, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    ck_assert_int_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* ---- an ExportTraceServiceRequest ---- */

static uint8_t *traces(size_t *len)
{
    static const uint8_t trace_id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    static const uint8_t span_id[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    Opentelemetry__Proto__Trace__V1__Span spans[SPANS], *sp[SPANS];
    for (int i = 0; i < SPANS; i++) {
        Opentelemetry__Proto__Trace__V1__Span s = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
        s.trace_id.data = (uint8_t *)trace_id;
        s.trace_id.len = sizeof(trace_id);
        s.span_id.data = (uint8_t *)span_id;
        s.span_id.len = sizeof(span_id);
        s.name = "durable";
        spans[i] = s;
        sp[i] = &spans[i];
    }
    Opentelemetry__Proto__Trace__V1__ScopeSpans ss =
        OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    ss.n_spans = SPANS;
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
    uint8_t *out = malloc(*len);
    ck_assert_ptr_nonnull(out);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(&req, out);
    return out;
}

/* ---- gRPC: an HTTP/2 client on the loop ---- */

#define GRPC_LABELS "receiver=\"otlp\",transport=\"grpc\""
#define MAX_CALLS 4

struct call {
    int32_t id;
    const uint8_t *body; /* the length-prefixed message */
    size_t len, sent;
    bool headers;        /* response HEADERS arrived */
    bool closed;
    uint32_t error;      /* RST_STREAM code it closed with */
    int grpc_status;     /* -1 until seen */
    bool details;        /* grpc-status-details-bin was present */
    char message[256];
};

struct h2 {
    int fd;
    uv_poll_t poll;
    nghttp2_session *s;
    bool settings; /* the server's SETTINGS arrived */
    bool goaway;
    bool eof;
    bool poll_open;
    struct call calls[MAX_CALLS];
    int ncalls;
};

static uint8_t *grpc_body; /* prefix and message, SPANS spans */
static size_t grpc_body_len;

static void h2_flush(struct h2 *c)
{
    for (;;) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(c->s, &d);
        ck_assert_int_ge(n, 0);
        if (n == 0)
            return;
        if (c->fd >= 0)
            send_all(c->fd, d, (size_t)n);
    }
}

static void h2_readable(uv_poll_t *p, int status, int events)
{
    struct h2 *c = p->data;
    uint8_t buf[64 * 1024];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            ck_assert_int_eq(nghttp2_session_mem_recv(c->s, buf, (size_t)n), n);
            continue;
        }
        if (n == 0 || errno != EAGAIN) {
            c->eof = true;
            uv_poll_stop(p);
        }
        break;
    }
    h2_flush(c);
}

static struct call *call_of(struct h2 *c, int32_t id)
{
    for (int i = 0; i < c->ncalls; i++)
        if (c->calls[i].id == id)
            return &c->calls[i];
    return NULL;
}

static int h2_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *user)
{
    struct call *k = call_of(user, f->hd.stream_id);
    if (k == NULL)
        return 0;
    if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
        k->grpc_status = atoi((const char *)value);
    else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0)
        snprintf(k->message, sizeof(k->message), "%.*s", (int)valuelen, value);
    else if (namelen == 23 && memcmp(name, "grpc-status-details-bin", 23) == 0)
        k->details = true;
    return 0;
}

static int h2_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    struct h2 *c = user;
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK))
        c->settings = true;
    if (f->hd.type == NGHTTP2_GOAWAY)
        c->goaway = true;
    struct call *k = call_of(c, f->hd.stream_id);
    if (k != NULL && f->hd.type == NGHTTP2_HEADERS)
        k->headers = true;
    return 0;
}

static int h2_on_close(nghttp2_session *s, int32_t id, uint32_t error, void *user)
{
    struct call *k = call_of(user, id);
    if (k != NULL) {
        k->closed = true;
        k->error = error;
    }
    return 0;
}

static ssize_t h2_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                       uint32_t *flags, nghttp2_data_source *src, void *user)
{
    struct call *k = src->ptr;
    size_t n = k->len - k->sent < length ? k->len - k->sent : length;
    memcpy(buf, k->body + k->sent, n);
    k->sent += n;
    if (k->sent == k->len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Connects and waits for the server's SETTINGS, so that the client keeps
 * to the server's limits from its first request. */
static void h2_connect(struct h2 *c)
{
    nghttp2_session_callbacks *cbs;
    memset(c, 0, sizeof(*c));
    c->fd = connect_unix(SOCK_STREAM);
    ck_assert_int_eq(nghttp2_session_callbacks_new(&cbs), 0);
    nghttp2_session_callbacks_set_on_header_callback(cbs, h2_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, h2_on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2_on_close);
    ck_assert_int_eq(nghttp2_session_client_new(&c->s, cbs, c), 0);
    nghttp2_session_callbacks_del(cbs);
    ck_assert_int_eq(nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, NULL, 0), 0);
    ck_assert_int_eq(uv_poll_init(&loop, &c->poll, c->fd), 0);
    c->poll.data = c;
    c->poll_open = true;
    ck_assert_int_eq(uv_poll_start(&c->poll, UV_READABLE, h2_readable), 0);
    h2_flush(c);
    RUN_UNTIL(c->settings);
}

#define NV(n, v)                                                               \
    {                                                                          \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1,          \
            NGHTTP2_NV_FLAG_NONE                                               \
    }

/* Starts an Export of SPANS spans; the client sends it as soon as the
 * server's limits let it. */
static struct call *h2_export(struct h2 *c)
{
    ck_assert_int_lt(c->ncalls, MAX_CALLS);
    struct call *k = &c->calls[c->ncalls++];
    memset(k, 0, sizeof(*k));
    k->grpc_status = -1;
    k->body = grpc_body;
    k->len = grpc_body_len;
    nghttp2_nv h[] = {
        NV(":method", "POST"),
        NV(":scheme", "http"),
        NV(":authority", "lookout"),
        NV(":path", "/opentelemetry.proto.collector.trace.v1.TraceService/Export"),
        NV("content-type", "application/grpc"),
        NV("te", "trailers"),
    };
    nghttp2_data_provider dp = {.source.ptr = k, .read_callback = h2_body};
    k->id = nghttp2_submit_request(c->s, NULL, h, sizeof(h) / sizeof(h[0]), &dp, k);
    ck_assert_int_gt(k->id, 0);
    h2_flush(c);
    return k;
}

static void h2_hang_up(struct h2 *c)
{
    if (c->poll_open) {
        c->poll_open = false;
        uv_close((uv_handle_t *)&c->poll, NULL);
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static void h2_free(struct h2 *c)
{
    h2_hang_up(c);
    nghttp2_session_del(c->s);
}

/* The idle timeout starts with the first request (handshake_timeout set):
 * the connection is never idle before its request is in. */
static lk_otlp_grpc *grpc_start(uint32_t max_streams, uint32_t max_conns, uint64_t idle_ms)
{
    char ep[160];
    snprintf(ep, sizeof(ep), "unix://%s", sock_path);
    struct lk_grpc_receiver_config cfg = {
        .enabled = true,
        .endpoint = ep,
        .max_recv_msg_size = 1 << 20,
        .max_concurrent_streams = max_streams,
        .max_connections = max_conns,
        .idle_timeout_ms = idle_ms,
        .handshake_timeout_ms = 20000,
    };
    lk_otlp_grpc *r;
    lk_pipeline *p[LK_SIGNAL_COUNT] = {P[0], P[1], P[2]};
    ck_assert_int_eq(lk_otlp_grpc_start(&r, &loop, "otlp", &cfg, p, M), 0);
    size_t mlen;
    uint8_t *msg = traces(&mlen);
    grpc_body_len = 5 + mlen;
    grpc_body = malloc(grpc_body_len);
    grpc_body[0] = 0;
    grpc_body[1] = (uint8_t)(mlen >> 24);
    grpc_body[2] = (uint8_t)(mlen >> 16);
    grpc_body[3] = (uint8_t)(mlen >> 8);
    grpc_body[4] = (uint8_t)mlen;
    memcpy(grpc_body + 5, msg, mlen);
    free(msg);
    return r;
}

static void grpc_stop(lk_otlp_grpc *r)
{
    lk_otlp_grpc_close(r, on_receiver_closed, NULL);
    teardown();
    free(grpc_body);
}

static uint64_t grpc_requests(int code)
{
    char labels[160];
    snprintf(labels, sizeof(labels), GRPC_LABELS ",grpc_status=\"%d\"", code);
    return counter("lookout_receiver_requests_total", labels);
}

START_TEST(grpc_answer_waits_for_the_commit)
{
    setup();
    lk_otlp_grpc *r = grpc_start(100, 16, 0);
    struct h2 c;
    h2_connect(&c);
    struct call *k = h2_export(&c);
    RUN_UNTIL(acks_sealed == 1);
    idle_turns();
    /* Queued, not answered, not yet counted as accepted. */
    ck_assert_uint_eq(lk_queue_held_items(Q[LK_SIGNAL_TRACES]), SPANS);
    ck_assert(!k->headers);
    ck_assert(!k->closed);
    ck_assert_uint_eq(counter("lookout_receiver_accepted_spans_total", GRPC_LABELS), 0);
    commit_all(0);
    RUN_UNTIL(k->closed);
    ck_assert_int_eq(k->error, NGHTTP2_NO_ERROR);
    ck_assert_int_eq(k->grpc_status, 0);
    ck_assert_uint_eq(counter("lookout_receiver_accepted_spans_total", GRPC_LABELS), SPANS);
    ck_assert_uint_eq(grpc_requests(0), 1);
    h2_free(&c);
    grpc_stop(r);
}
END_TEST

START_TEST(grpc_failed_commit_is_unavailable_with_retry_info)
{
    setup();
    lk_otlp_grpc *r = grpc_start(100, 16, 0);
    struct h2 c;
    h2_connect(&c);
    struct call *k = h2_export(&c);
    RUN_UNTIL(acks_sealed == 1);
    commit_all(LK_EFULL);
    RUN_UNTIL(k->closed);
    ck_assert_int_eq(k->grpc_status, 14); /* UNAVAILABLE: the client sends again */
    ck_assert(k->details);                /* with RetryInfo */
    ck_assert_msg(strstr(k->message, "could not store the request on disk") != NULL, "%s",
                  k->message);
    ck_assert_uint_eq(counter("lookout_receiver_refused_spans_total", GRPC_LABELS), SPANS);
    ck_assert_uint_eq(counter("lookout_receiver_accepted_spans_total", GRPC_LABELS), 0);
    ck_assert_uint_eq(grpc_requests(14), 1);
    /* The connection serves on. */
    k = h2_export(&c);
    RUN_UNTIL(acks_sealed == 2);
    commit_all(0);
    RUN_UNTIL(k->closed);
    ck_assert_int_eq(k->grpc_status, 0);
    h2_free(&c);
    grpc_stop(r);
}
END_TEST

START_TEST(grpc_reset_while_waiting_gives_up_the_wait)
{
    setup();
    lk_otlp_grpc *r = grpc_start(100, 16, 0);
    struct h2 c;
    h2_connect(&c);
    struct call *k = h2_export(&c);
    RUN_UNTIL(acks_sealed == 1);
    ck_assert_int_eq(nghttp2_submit_rst_stream(c.s, NGHTTP2_FLAG_NONE, k->id, NGHTTP2_CANCEL),
                     0);
    h2_flush(&c);
    RUN_UNTIL(acks_canceled == 1);
    /* The commit comes after the stream is gone: nothing is written to it. */
    commit_all(0);
    RUN_UNTIL(acks_freed == 1);
    struct call *k2 = h2_export(&c);
    RUN_UNTIL(acks_sealed == 2);
    commit_all(0);
    RUN_UNTIL(k2->closed);
    ck_assert_int_eq(k2->grpc_status, 0);
    ck_assert(!k->headers);
    ck_assert_int_eq(acks_done, 1);
    /* The reset request's spans were queued: they count as accepted. */
    ck_assert_uint_eq(counter("lookout_receiver_accepted_spans_total", GRPC_LABELS), 2 * SPANS);
    ck_assert_uint_eq(lk_queue_held_items(Q[LK_SIGNAL_TRACES]), 2 * SPANS);
    h2_free(&c);
    grpc_stop(r);
}
END_TEST

START_TEST(grpc_connection_closed_while_waiting)
{
    setup();
    lk_otlp_grpc *r = grpc_start(100, 16, 0);
    struct h2 c;
    h2_connect(&c);
    h2_export(&c);
    RUN_UNTIL(acks_sealed == 1);
    h2_hang_up(&c);
    RUN_UNTIL(acks_canceled == 1);
    RUN_UNTIL(gauge("lookout_receiver_connections", GRPC_LABELS) == 0);
    commit_all(0);
    RUN_UNTIL(acks_freed == 1);
    ck_assert_int_eq(acks_done, 0);
    h2_free(&c);
    grpc_stop(r);
}
END_TEST

START_TEST(grpc_waiting_stream_holds_its_slot)
{
    setup();
    lk_otlp_grpc *r = grpc_start(1, 16, 0); /* max_concurrent_streams: 1 */
    struct h2 c;
    h2_connect(&c);
    struct call *k1 = h2_export(&c);
    struct call *k2 = h2_export(&c);
    RUN_UNTIL(acks_sealed == 1);
    idle_turns();
    /* The stream waiting for its commit is open: the second waits. */
    ck_assert_int_eq(acks_made, 1);
    ck_assert(!k2->closed && !k2->headers);
    commit_all(0);
    RUN_UNTIL(k1->closed && acks_sealed == 2);
    ck_assert_int_eq(k1->grpc_status, 0);
    commit_all(0);
    RUN_UNTIL(k2->closed);
    ck_assert_int_eq(k2->grpc_status, 0);
    h2_free(&c);
    grpc_stop(r);
}
END_TEST

static bool tick_done;

static void on_tick(uv_timer_t *t)
{
    tick_done = true;
    uv_close((uv_handle_t *)t, NULL);
}

START_TEST(grpc_waiting_connection_is_neither_idle_nor_evicted)
{
    setup();
    lk_otlp_grpc *r = grpc_start(100, 1, 5); /* max_connections: 1, idle_timeout: 5 ms */
    struct h2 c;
    h2_connect(&c);
    struct call *k = h2_export(&c);
    RUN_UNTIL(acks_sealed == 1);
    /* Past several idle timeouts (timers fire in the order they are due:
     * the idle timer's turns come before this one's). */
    uv_timer_t t;
    tick_done = false;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_tick, 50, 0);
    RUN_UNTIL(tick_done);
    ck_assert(!c.goaway);
    /* A second connection finds no idle one to make room. */
    int fd2 = connect_unix(SOCK_STREAM);
    RUN_UNTIL(counter("lookout_receiver_connections_refused_total", GRPC_LABELS) == 1);
    close(fd2);
    ck_assert(!c.goaway);
    commit_all(0);
    RUN_UNTIL(k->closed);
    ck_assert_int_eq(k->grpc_status, 0);
    /* Answered, the connection is idle again and goes in its time. */
    RUN_UNTIL(c.goaway);
    h2_free(&c);
    grpc_stop(r);
}
END_TEST

/* ---- OTLP/HTTP: a client on the loop ---- */

#define HTTP_LABELS "receiver=\"otlp\",transport=\"http\""

struct h1 {
    int fd;
    uv_poll_t poll;
    char buf[16 * 1024];
    size_t len;
    bool eof;
};

static void h1_readable(uv_poll_t *p, int status, int events)
{
    struct h1 *c = p->data;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, MSG_DONTWAIT);
    if (n > 0) {
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
    } else if (n == 0 || errno != EAGAIN) {
        c->eof = true;
        uv_poll_stop(p);
    }
}

/* A whole response is in: headers and Content-Length bytes of body. */
static bool h1_answered(const struct h1 *c)
{
    const char *end = strstr(c->buf, "\r\n\r\n");
    const char *cl = strcasestr(c->buf, "\r\ncontent-length:");
    return end != NULL && cl != NULL &&
           c->len >= (size_t)(end + 4 - c->buf) + strtoul(cl + 17, NULL, 10);
}

static void h1_post(struct h1 *c)
{
    size_t mlen;
    uint8_t *msg = traces(&mlen);
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "POST /v1/traces HTTP/1.1\r\nHost: t\r\n"
                     "Content-Type: application/x-protobuf\r\nContent-Length: %zu\r\n\r\n",
                     mlen);
    memset(c, 0, sizeof(*c));
    c->fd = connect_unix(SOCK_STREAM);
    ck_assert_int_eq(uv_poll_init(&loop, &c->poll, c->fd), 0);
    c->poll.data = c;
    ck_assert_int_eq(uv_poll_start(&c->poll, UV_READABLE, h1_readable), 0);
    send_all(c->fd, head, (size_t)n);
    send_all(c->fd, msg, mlen);
    free(msg);
}

static void h1_free(struct h1 *c)
{
    uv_close((uv_handle_t *)&c->poll, NULL);
    close(c->fd);
}

static lk_otlp_http *http_start(void)
{
    char ep[160];
    snprintf(ep, sizeof(ep), "unix://%s", sock_path);
    struct lk_http_receiver_config cfg = {
        .enabled = true,
        .endpoint = ep,
        .max_request_body_size = 1 << 20,
        .max_connections = 16,
        .max_header_bytes = 8 * 1024,
        .idle_timeout_ms = 10000,
        .read_timeout_ms = 10000,
    };
    lk_otlp_http *r;
    lk_pipeline *p[LK_SIGNAL_COUNT] = {P[0], P[1], P[2]};
    ck_assert_int_eq(lk_otlp_http_start(&r, &loop, "otlp", &cfg, p, M), 0);
    return r;
}

START_TEST(http_failed_commit_is_503_with_retry_after)
{
    setup();
    lk_otlp_http *r = http_start();
    struct h1 c;
    h1_post(&c);
    RUN_UNTIL(acks_sealed == 1);
    idle_turns();
    ck_assert_uint_eq(c.len, 0);
    commit_all(LK_EIO);
    RUN_UNTIL(h1_answered(&c));
    ck_assert_msg(strncmp(c.buf, "HTTP/1.1 503 ", 13) == 0, "%s", c.buf);
    ck_assert_ptr_nonnull(strcasestr(c.buf, "\r\nretry-after: 1\r\n"));
    ck_assert_ptr_nonnull(memmem(c.buf, c.len, "could not store the request on disk", 35));
    ck_assert_uint_eq(counter("lookout_receiver_refused_spans_total", HTTP_LABELS), SPANS);
    ck_assert_uint_eq(counter("lookout_receiver_accepted_spans_total", HTTP_LABELS), 0);
    h1_free(&c);
    lk_otlp_http_close(r, on_receiver_closed, NULL);
    teardown();
}
END_TEST

START_TEST(http_close_while_waiting_gives_up_the_wait)
{
    setup();
    lk_otlp_http *r = http_start();
    struct h1 c;
    h1_post(&c);
    RUN_UNTIL(acks_sealed == 1);
    /* The server closes with the request unanswered: no commit needed for
     * the receiver to be done, and no answer after it. */
    lk_otlp_http_close(r, on_receiver_closed, NULL);
    ck_assert_int_eq(acks_canceled, 1);
    RUN_UNTIL(receiver_closed && c.eof);
    ck_assert_uint_eq(c.len, 0);
    ck_assert_uint_eq(counter("lookout_receiver_accepted_spans_total", HTTP_LABELS), SPANS);
    h1_free(&c);
    teardown();
    ck_assert_int_eq(acks_done, 0);
}
END_TEST

/* ---- lines ---- */

#define LINES_LABELS "receiver=\"lines\",transport=\"unix\""
#define DGRAM_LABELS "receiver=\"lines\",transport=\"unixgram\""

static lk_lines *lines_start(bool datagram, uint64_t idle_ms)
{
    struct lk_lines_receiver_config cfg = {
        .path = sock_path,
        .datagram = datagram,
        .mode = 0600,
        .format = LK_LINES_RAW,
        .max_line_bytes = 1024,
        .max_connections = 4,
        .overflow = LK_LINES_BLOCK,
        .idle_timeout_ms = idle_ms,
    };
    lk_lines *r;
    ck_assert_int_eq(lk_lines_start(&r, &loop, "lines", &cfg, P[LK_SIGNAL_LOGS], M), 0);
    return r;
}

static uint64_t logs_held(void)
{
    return lk_queue_held_items(Q[LK_SIGNAL_LOGS]);
}

START_TEST(lines_failed_commit_drops_counted_and_reads_on)
{
    setup();
    lk_lines *r = lines_start(false, 0);
    int fd = connect_unix(SOCK_STREAM);
    send_all(fd, "a\nb\n", 4);
    RUN_UNTIL(acks_sealed == 1);
    /* Not read until the commit. */
    send_all(fd, "c\n", 2);
    idle_turns();
    ck_assert_int_eq(acks_made, 1);
    ck_assert_uint_eq(logs_held(), 2);
    commit_all(LK_EFULL);
    RUN_UNTIL(acks_sealed == 2);
    ck_assert_uint_eq(counter("lookout_dropped_items_total",
                              "signal=\"logs\",reason=\"spool_write_failed\",receiver=\"lines\""),
                      2);
    ck_assert_uint_eq(counter("lookout_receiver_refused_log_records_total", LINES_LABELS), 2);
    ck_assert_uint_eq(counter("lookout_receiver_accepted_log_records_total", LINES_LABELS), 0);
    commit_all(0);
    RUN_UNTIL(acks_done == 2);
    ck_assert_uint_eq(counter("lookout_receiver_accepted_log_records_total", LINES_LABELS), 1);
    /* The writer leaves: the connection closes once its reads are through. */
    close(fd);
    RUN_UNTIL(gauge("lookout_receiver_connections", LINES_LABELS) == 0);
    lk_lines_close(r, on_receiver_closed, NULL);
    teardown();
}
END_TEST

START_TEST(lines_idle_flush_goes_through_an_ack)
{
    setup();
    lk_lines *r = lines_start(false, 5);
    int fd = connect_unix(SOCK_STREAM);
    send_all(fd, "whole\npartial", 13);
    RUN_UNTIL(acks_sealed == 1);
    commit_all(0);
    /* The partial line, flushed by the idle timer, waits for its own
     * commit before the connection is closed. */
    RUN_UNTIL(acks_sealed == 2);
    idle_turns();
    ck_assert_uint_eq(logs_held(), 2);
    ck_assert_double_eq(gauge("lookout_receiver_connections", LINES_LABELS), 1);
    commit_all(0);
    RUN_UNTIL(gauge("lookout_receiver_connections", LINES_LABELS) == 0);
    ck_assert_uint_eq(counter("lookout_receiver_accepted_log_records_total", LINES_LABELS), 2);
    char ch;
    ck_assert_int_eq(recv(fd, &ch, 1, 0), 0); /* closed by the receiver */
    close(fd);
    lk_lines_close(r, on_receiver_closed, NULL);
    teardown();
}
END_TEST

START_TEST(lines_close_while_waiting_gives_up_the_wait)
{
    setup();
    lk_lines *r = lines_start(false, 0);
    int fd = connect_unix(SOCK_STREAM);
    send_all(fd, "one\n", 4);
    RUN_UNTIL(acks_sealed == 1);
    send_all(fd, "two\n", 4);
    /* Closing takes what the writer already wrote, past the caps. */
    lk_lines_close(r, on_receiver_closed, NULL);
    ck_assert_int_eq(acks_canceled, 1);
    RUN_UNTIL(receiver_closed);
    ck_assert_uint_eq(logs_held(), 2);
    ck_assert_uint_eq(counter("lookout_receiver_accepted_log_records_total", LINES_LABELS), 2);
    close(fd);
    teardown();
    ck_assert_int_eq(acks_done, 0);
}
END_TEST

START_TEST(datagrams_wait_for_the_commit)
{
    setup();
    lk_lines *r = lines_start(true, 0);
    int fd = connect_unix(SOCK_DGRAM);
    send_all(fd, "d1", 2);
    RUN_UNTIL(acks_sealed == 1);
    send_all(fd, "d2", 2);
    idle_turns();
    ck_assert_int_eq(acks_made, 1);
    ck_assert_uint_eq(logs_held(), 1);
    commit_all(LK_EIO);
    RUN_UNTIL(acks_sealed == 2);
    ck_assert_uint_eq(counter("lookout_dropped_items_total",
                              "signal=\"logs\",reason=\"spool_write_failed\",receiver=\"lines\""),
                      1);
    commit_all(0);
    RUN_UNTIL(acks_done == 2);
    ck_assert_uint_eq(counter("lookout_receiver_accepted_log_records_total", DGRAM_LABELS), 1);
    close(fd);
    lk_lines_close(r, on_receiver_closed, NULL);
    teardown();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("durable");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"grpc_answer_waits_for_the_commit", grpc_answer_waits_for_the_commit},
        {"grpc_failed_commit", grpc_failed_commit_is_unavailable_with_retry_info},
        {"grpc_reset_while_waiting", grpc_reset_while_waiting_gives_up_the_wait},
        {"grpc_connection_closed_while_waiting", grpc_connection_closed_while_waiting},
        {"grpc_waiting_stream_holds_its_slot", grpc_waiting_stream_holds_its_slot},
        {"grpc_waiting_connection_is_busy", grpc_waiting_connection_is_neither_idle_nor_evicted},
        {"http_failed_commit", http_failed_commit_is_503_with_retry_after},
        {"http_close_while_waiting", http_close_while_waiting_gives_up_the_wait},
        {"lines_failed_commit", lines_failed_commit_drops_counted_and_reads_on},
        {"lines_idle_flush", lines_idle_flush_goes_through_an_ack},
        {"lines_close_while_waiting", lines_close_while_waiting_gives_up_the_wait},
        {"datagrams", datagrams_wait_for_the_commit},
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
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
