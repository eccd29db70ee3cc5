/*
 * A gRPC server for the unit tests, started in the test's process with gRPC
 * C core's server API. It runs on its own completion queue and thread,
 * records what it receives under a mutex (the request message as it came,
 * gunzipped with zlib when it came compressed) and answers as configured.
 */
#ifndef LK_TEST_GRPC_TEST_SERVER_H
#define LK_TEST_GRPC_TEST_SERVER_H

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/compression.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <uv.h>

enum srv_mode { SRV_OK, SRV_FAIL, SRV_HOLD };

struct srv {
    grpc_server *server;
    grpc_completion_queue *cq;
    uv_thread_t thread;
    int port;
    int live; /* server thread only: srv_call objects alive */
    bool shutting_down;

    /* Set before the first call; read by the server thread. */
    enum srv_mode mode;
    int fail_first; /* the first N calls fail as SRV_FAIL says, whatever mode */
    grpc_status_code fail_status;
    const char *fail_message;
    const uint8_t *fail_details; /* grpc-status-details-bin value, or NULL */
    size_t fail_details_len;
    const uint8_t *response;
    size_t response_len;

    uv_mutex_t lock; /* guards what follows */
    int ncalls;
    int held;
    char method[128];
    char test_header[128]; /* value of x-lookout-test */
    char user_agent[256];
    char grpc_encoding[64]; /* as seen in the request metadata, if at all */
    int body_compression;   /* grpc_byte_buffer's compression as received */
    uint8_t *body;          /* decompressed request message */
    size_t body_len;
};

struct srv_call {
    int stage;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_byte_buffer *msg;
    int cancelled;
    grpc_metadata trailing;
    grpc_slice status_details;
};

static int shutdown_tag;

/* Check's asserts belong to the test thread; the server thread aborts. */
#define SRV_CHECK(cond)                                                        \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: server: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                           \
        }                                                                      \
    } while (0)

static void srv_request(struct srv *s)
{
    struct srv_call *sc = calloc(1, sizeof(*sc));

    SRV_CHECK(sc != NULL);
    grpc_call_details_init(&sc->details);
    grpc_metadata_array_init(&sc->md);
    sc->status_details = grpc_empty_slice();
    if (grpc_server_request_call(s->server, &sc->call, &sc->details, &sc->md,
                                 s->cq, s->cq, sc) != GRPC_CALL_OK) {
        grpc_call_details_destroy(&sc->details);
        grpc_metadata_array_destroy(&sc->md);
        free(sc);
        return;
    }
    s->live++;
}

static void srv_call_free(struct srv *s, struct srv_call *sc)
{
    if (sc->call != NULL)
        grpc_call_unref(sc->call);
    if (sc->msg != NULL)
        grpc_byte_buffer_destroy(sc->msg);
    grpc_call_details_destroy(&sc->details);
    grpc_metadata_array_destroy(&sc->md);
    grpc_slice_unref(sc->status_details);
    free(sc);
    s->live--;
}

static void copy_slice(char *dst, size_t cap, grpc_slice v)
{
    size_t n = GRPC_SLICE_LENGTH(v);

    if (n >= cap)
        n = cap - 1;
    memcpy(dst, GRPC_SLICE_START_PTR(v), n);
    dst[n] = '\0';
}

static uint8_t *gunzip(const uint8_t *in, size_t len, size_t *out_len)
{
    z_stream z;
    size_t cap = 1 << 20;
    uint8_t *out = malloc(cap);

    SRV_CHECK(out != NULL);
    memset(&z, 0, sizeof(z));
    SRV_CHECK(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    SRV_CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
    *out_len = z.total_out;
    inflateEnd(&z);
    return out;
}

static void srv_record(struct srv *s, struct srv_call *sc)
{
    uv_mutex_lock(&s->lock);
    s->ncalls++;
    copy_slice(s->method, sizeof(s->method), sc->details.method);
    for (size_t i = 0; i < sc->md.count; i++) {
        grpc_slice k = sc->md.metadata[i].key, v = sc->md.metadata[i].value;
        if (grpc_slice_str_cmp(k, "x-lookout-test") == 0)
            copy_slice(s->test_header, sizeof(s->test_header), v);
        else if (grpc_slice_str_cmp(k, "user-agent") == 0)
            copy_slice(s->user_agent, sizeof(s->user_agent), v);
        else if (grpc_slice_str_cmp(k, "grpc-encoding") == 0)
            copy_slice(s->grpc_encoding, sizeof(s->grpc_encoding), v);
    }
    free(s->body);
    s->body = NULL;
    s->body_len = 0;
    if (sc->msg != NULL) {
        grpc_byte_buffer_reader r;
        s->body_compression = (int)sc->msg->data.raw.compression;
        SRV_CHECK(grpc_byte_buffer_reader_init(&r, sc->msg) == 1);
        grpc_slice all = grpc_byte_buffer_reader_readall(&r);
        grpc_byte_buffer_reader_destroy(&r);
        if (s->body_compression == GRPC_COMPRESS_GZIP) {
            /* The reader hands out the bytes as they came; inflate them with
             * zlib, independently of gRPC. */
            s->body = gunzip(GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all),
                             &s->body_len);
        } else {
            s->body_len = GRPC_SLICE_LENGTH(all);
            s->body = malloc(s->body_len + 1);
            SRV_CHECK(s->body != NULL);
            memcpy(s->body, GRPC_SLICE_START_PTR(all), s->body_len);
        }
        grpc_slice_unref(all);
    }
    uv_mutex_unlock(&s->lock);
}

static void srv_answer(struct srv *s, struct srv_call *sc, bool ok)
{
    grpc_op ops[4];
    size_t n = 0;
    grpc_slice resp;
    grpc_byte_buffer *bb = NULL;

    bool fail = ok && (s->mode == SRV_FAIL || s->fail_first > 0);

    if (fail && s->fail_first > 0)
        s->fail_first--;
    memset(ops, 0, sizeof(ops));
    if (ok && !fail && s->mode == SRV_OK) {
        resp = grpc_slice_from_copied_buffer((const char *)s->response,
                                             s->response_len);
        bb = grpc_raw_byte_buffer_create(&resp, 1);
        grpc_slice_unref(resp);
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = bb;
        n++;
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = GRPC_STATUS_OK;
        n++;
    } else if (fail) {
        /* gRPC 1.51's server sends no trailers before initial metadata; with
         * no message in between, chttp2 still writes them together. */
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
        sc->status_details = grpc_slice_from_copied_string(s->fail_message);
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = s->fail_status;
        ops[n].data.send_status_from_server.status_details =
            &sc->status_details;
        if (s->fail_details != NULL) {
            sc->trailing.key =
                grpc_slice_from_static_string("grpc-status-details-bin");
            sc->trailing.value = grpc_slice_from_static_buffer(
                s->fail_details, s->fail_details_len);
            ops[n].data.send_status_from_server.trailing_metadata_count = 1;
            ops[n].data.send_status_from_server.trailing_metadata =
                &sc->trailing;
        }
        n++;
    } else if (ok) {
        uv_mutex_lock(&s->lock);
        s->held++;
        uv_mutex_unlock(&s->lock);
    }
    /* Completes when the call is over: answered, cancelled or expired. */
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n].data.recv_close_on_server.cancelled = &sc->cancelled;
    n++;
    sc->stage = 2;
    SRV_CHECK(grpc_call_start_batch(sc->call, ops, n, sc, NULL) ==
              GRPC_CALL_OK);
    if (bb != NULL)
        grpc_byte_buffer_destroy(bb);
}

static void srv_main(void *arg)
{
    struct srv *s = arg;

    srv_request(s);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(
            s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.tag == &shutdown_tag) {
            s->shutting_down = true;
        } else {
            struct srv_call *sc = ev.tag;
            grpc_op op;
            switch (sc->stage) {
            case 0: /* a new call, or the server is shutting down */
                if (!ev.success) {
                    srv_call_free(s, sc);
                    break;
                }
                if (!s->shutting_down)
                    srv_request(s);
                memset(&op, 0, sizeof(op));
                op.op = GRPC_OP_RECV_MESSAGE;
                op.data.recv_message.recv_message = &sc->msg;
                sc->stage = 1;
                SRV_CHECK(grpc_call_start_batch(sc->call, &op, 1, sc, NULL) ==
                          GRPC_CALL_OK);
                break;
            case 1:
                srv_record(s, sc);
                srv_answer(s, sc, ev.success && sc->msg != NULL);
                break;
            default:
                srv_call_free(s, sc);
                break;
            }
        }
        /* No batch may start once the queue is shut down. */
        if (s->shutting_down && s->live == 0) {
            grpc_completion_queue_shutdown(s->cq);
            s->shutting_down = false;
            s->live = -1;
        }
    }
}

static void srv_start_creds(struct srv *s, grpc_server_credentials *creds)
{
    grpc_arg a;
    grpc_channel_args args;

    memset(s, 0, sizeof(*s));
    grpc_init();
    memset(&a, 0, sizeof(a));
    /* Keep compressed requests compressed: the test checks how they came. */
    a.type = GRPC_ARG_INTEGER;
    a.key = (char *)GRPC_ARG_ENABLE_PER_MESSAGE_DECOMPRESSION;
    a.value.integer = 0;
    args.num_args = 1;
    args.args = &a;
    s->cq = grpc_completion_queue_create_for_next(NULL);
    s->server = grpc_server_create(&args, NULL);
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    s->port = grpc_server_add_http2_port(s->server, "127.0.0.1:0", creds);
    grpc_server_credentials_release(creds);
    ck_assert_int_gt(s->port, 0);
    grpc_server_start(s->server);
    ck_assert_int_eq(uv_mutex_init(&s->lock), 0);
    s->mode = SRV_OK;
    s->response = (const uint8_t *)"pong\0\x01\x02\xff";
    s->response_len = 8;
    ck_assert_int_eq(uv_thread_create(&s->thread, srv_main, s), 0);
}

static void srv_start(struct srv *s)
{
    srv_start_creds(s, grpc_insecure_server_credentials_create());
}

static void srv_stop(struct srv *s)
{
    grpc_server_shutdown_and_notify(s->server, s->cq, &shutdown_tag);
    grpc_server_cancel_all_calls(s->server);
    uv_thread_join(&s->thread);
    grpc_server_destroy(s->server);
    grpc_completion_queue_destroy(s->cq);
    uv_mutex_destroy(&s->lock);
    free(s->body);
    grpc_shutdown();
}

static inline int srv_held(struct srv *s) /* inline: not every test uses it */
{
    int n;

    uv_mutex_lock(&s->lock);
    n = s->held;
    uv_mutex_unlock(&s->lock);
    return n;
}

#endif
