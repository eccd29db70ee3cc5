#include "receivers/otlp_grpc.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/gzip.h"
#include "core/inflate_pool.h"
#include "core/log.h"
#include "core/membudget.h"
#include "core/net.h"
#include "core/platform.h"
#include "receivers/grpc_wire.h"
#include "receivers/otlp_json.h"
#include "receivers/otlp_salvage.h"
#include "receivers/otlp_validate.h"

#define READ_BUF_SIZE (64 * 1024)
#define MAX_PENDING_OUT (1u << 20) /* bytes queued for a client before we stop reading */
/* A message up to this size (or up to LK_PLATFORM_LARGE_BLOCK) gets its whole
 * buffer when its length prefix arrives; a larger one gets that much and
 * grows with what arrives, so that a client announcing large messages and
 * sending them slowly holds (and is charged) little more than what it sent. */
#define RESERVE_UPFRONT_BYTES (1u << 20)
/* A stream's body starts this far into its buffer: the room an item's
 * header takes, less the message's length prefix. An uncompressed, valid
 * message then becomes an item in place (lk_item_adopt), without a copy. */
#define BODY_AT (LK_ITEM_HEADROOM - LK_GRPC_PREFIX_LEN)
_Static_assert(LK_ITEM_HEADROOM >= LK_GRPC_PREFIX_LEN, "item header room");
/* Inline inflates keep a scratch buffer up to this capacity between requests. */
#define KEEP_SCRATCH_BYTES (1u << 20)
#define RETRY_AFTER_MS 1000        /* hinted to clients when the pipeline is full */
#define DRAIN_MS 1000              /* after GOAWAY, the most a connection is kept */

static const char *const service_path[LK_SIGNAL_COUNT] = {
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
};

static const char *const item_word[LK_SIGNAL_COUNT] = {"spans", "metric_points",
                                                       "log_records"};

enum encoding { ENC_IDENTITY, ENC_GZIP, ENC_DEFLATE, ENC_UNKNOWN };

struct conn;
struct inflate_call;

struct stream {
    struct conn *c;
    struct stream *next;
    struct stream *prev;
    int32_t id;
    int signal;          /* index into service_path, -1 for other paths */
    bool post;
    bool grpc_type;      /* content-type is application/grpc[+proto] */
    bool responded;      /* a response was submitted; ignore further data */
    bool ended;          /* the client's END_STREAM arrived */
    bool rst_after_send; /* reset once the final HEADERS is on the wire */
    enum encoding enc;
    lk_buf body;         /* length-prefixed request message */
    struct inflate_call *inflating; /* its message on the thread pool, or NULL */
    /* The response message with its prefix: |resp_empty| for an empty
     * Export<Signal>ServiceResponse, or |resp_partial| holding one with a
     * partial_success. */
    uint8_t resp_empty[LK_GRPC_PREFIX_LEN];
    lk_buf resp_partial;
    const uint8_t *resp;
    size_t resp_len;
    size_t resp_sent;
    /* storage.durable: the commit its answer waits for (the stream stays
     * open meanwhile, so it holds its slot of max_concurrent_streams and
     * keeps its connection busy), and what the answer will report. */
    lk_ack *ack;
    uint64_t ack_items;    /* queued; counted accepted once committed */
    uint64_t ack_rejected; /* invalid items left out */
    char *ack_why;         /* their reason, or NULL */
};

struct conn {
    lk_otlp_grpc *r;
    struct conn *next;
    struct conn *prev;
    uv_stream_t *sock;
    uv_timer_t idle;
    nghttp2_session *h2;
    struct stream *streams;
    uint32_t nstreams;
    lk_buf out;      /* produced by nghttp2, not yet handed to uv_write */
    lk_buf writing;  /* owned by the write in flight */
    uv_write_t wreq;
    bool write_busy;
    bool reading;
    bool closing;
    bool handshake_done; /* the client's first HEADERS arrived */
    bool draining;       /* told GOAWAY (idle or evicted): closes once it is written */
    int pending_closes; /* handles still closing: sock, idle */
    char rbuf[READ_BUF_SIZE];
};

struct lk_otlp_grpc {
    uv_loop_t *loop;
    char *name;
    struct lk_grpc_receiver_config cfg;
    lk_listener listener;
    lk_pipeline *pipelines[LK_SIGNAL_COUNT];
    nghttp2_session_callbacks *cbs;
    /* Open connections, least recently active first (a connection moves to
     * the end when it reads after its handshake): eviction walks from the
     * head to the first idle one. */
    struct conn *conns;
    struct conn *conns_tail;
    uint32_t nconns;
    uint32_t ndraining; /* of those, told GOAWAY: not counted against max_connections */
    lk_buf scratch; /* messages inflated inline; one request at a time on the loop */
    lk_buf salvaged; /* the valid part of a request with invalid items */
    lk_inflate_pool inflates; /* large messages; the receiver is freed once it is idle */
    bool closing;
    bool listener_closed;
    void (*close_done)(void *);
    void *close_arg;

    lk_counter *accepted[LK_SIGNAL_COUNT];
    lk_counter *refused[LK_SIGNAL_COUNT];
    lk_counter *rejected[LK_SIGNAL_COUNT];
    lk_counter *requests[17]; /* by grpc-status */
    lk_counter *conn_refused;
    lk_counter *mem_refused;
    lk_counter *conn_closed[LK_CONN_CLOSE_REASONS];
    lk_gauge *conn_gauge;
    lk_metrics *metrics;
};

/* A stream's message being inflated on the thread pool. It owns the request
 * body; the stream may go away meanwhile (RST_STREAM, its connection
 * closing): |s| is then NULL and the result is discarded. */
struct inflate_call {
    struct lk_inflate_job job; /* first */
    lk_otlp_grpc *r;
    struct stream *s;
    lk_buf body; /* the stream's request body: job.in points into it */
};

static void conn_flush(struct conn *c);
static void conn_close(struct conn *c);
static void maybe_finish_close(lk_otlp_grpc *r);

/* ---- responses ---------------------------------------------------------- */

#define NV(n, v)                                                               \
    {                                                                          \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),              \
            NGHTTP2_NV_FLAG_NONE                                               \
    }

static lk_counter *status_counter(lk_otlp_grpc *r, int code)
{
    if (r->requests[code] == NULL) {
        char labels[256];
        snprintf(labels, sizeof(labels),
                 "receiver=\"%s\",transport=\"grpc\",grpc_status=\"%d\"", r->name,
                 code);
        r->requests[code] = lk_metrics_counter(
            r->metrics, "lookout_receiver_requests_total",
            "Export requests answered, by status.", labels);
    }
    return r->requests[code];
}

/* Trailers-only response carrying an error status. */
static void respond_error(struct stream *s, int code, const char *msg,
                          int64_t retry_ms)
{
    struct conn *c = s->c;
    lk_buf esc, details;
    char status[8];

    if (s->responded)
        return;
    s->responded = true;
    lk_counter_add(status_counter(c->r, code), 1);
    lk_buf_init(&esc, 8192);
    lk_buf_init(&details, 8192);
    snprintf(status, sizeof(status), "%d", code);
    lk_grpc_message_escape(&esc, msg);
    lk_buf_append(&esc, "", 1);
    nghttp2_nv nva[6] = {
        NV(":status", "200"),
        NV("content-type", "application/grpc"),
        NV("grpc-status", status),
        NV("grpc-message", (const char *)esc.data),
    };
    size_t n = 4;
    if (retry_ms >= 0 && lk_grpc_status_details(&details, code, msg, retry_ms) == 0 &&
        lk_buf_append(&details, "", 1) == 0) {
        nghttp2_nv d = NV("grpc-status-details-bin", (const char *)details.data);
        nva[n++] = d;
    }
    if (code == LK_GRPC_UNIMPLEMENTED && s->enc == ENC_UNKNOWN) {
        nghttp2_nv d = NV("grpc-accept-encoding", "identity,gzip,deflate");
        nva[n++] = d;
    }
    nghttp2_submit_response(c->h2, s->id, nva, n, NULL);
    lk_buf_fini(&esc);
    lk_buf_fini(&details);
    /* If the client is still sending, tell it to stop once the answer is out:
     * a reset queued now could overtake the status and lose it. */
    s->rst_after_send = !s->ended;
    lk_buf_fini(&s->body);
}

static ssize_t resp_read_cb(nghttp2_session *h2, int32_t id, uint8_t *buf,
                            size_t length, uint32_t *flags,
                            nghttp2_data_source *src, void *user)
{
    struct stream *s = src->ptr;
    size_t left = s->resp_len - s->resp_sent;
    size_t n = left < length ? left : length;
    memcpy(buf, s->resp + s->resp_sent, n);
    s->resp_sent += n;
    if (s->resp_sent == s->resp_len) {
        nghttp2_nv tr[] = {NV("grpc-status", "0")};
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (nghttp2_submit_trailer(h2, id, tr, 1) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
    return (ssize_t)n;
}

/* Headers, the Export<Signal>ServiceResponse, then grpc-status 0. The
 * response is empty unless items were rejected (|rejected| > 0) or
 * |error_message| is given: then it carries a partial_success with both. */
static void respond_ok(struct stream *s, uint64_t rejected,
                       const char *error_message)
{
    nghttp2_nv nva[] = {NV(":status", "200"),
                        NV("content-type", "application/grpc")};
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = resp_read_cb};
    lk_buf *b = &s->resp_partial;

    s->responded = true;
    lk_counter_add(status_counter(s->c->r, LK_GRPC_OK), 1);
    lk_grpc_prefix_write(s->resp_empty, false, 0);
    s->resp = s->resp_empty;
    s->resp_len = sizeof(s->resp_empty);
    if (rejected > 0 || (error_message != NULL && error_message[0] != '\0')) {
        uint8_t prefix[LK_GRPC_PREFIX_LEN] = {0};
        lk_buf_init(b, 64 * 1024);
        /* Out of memory leaves the empty response: the data is queued. */
        if (lk_buf_append(b, prefix, sizeof(prefix)) == 0 &&
            lk_otlp_proto_response((enum lk_signal)s->signal, rejected,
                                   error_message, b) == 0) {
            lk_grpc_prefix_write(b->data, false,
                                 (uint32_t)(b->len - LK_GRPC_PREFIX_LEN));
            s->resp = b->data;
            s->resp_len = b->len;
        }
    }
    s->resp_sent = 0;
    nghttp2_submit_response(s->c->h2, s->id, nva, 2, &prd);
    lk_buf_fini(&s->body);
}

static void respond_http(struct stream *s, const char *status)
{
    nghttp2_nv nva[] = {NV(":status", status), NV("content-type", "text/plain")};
    s->responded = true;
    nghttp2_submit_response(s->c->h2, s->id, nva, 2, NULL);
    lk_buf_fini(&s->body);
}

/* ---- request handling --------------------------------------------------- */

/* The signal's pipeline, or NULL after answering UNIMPLEMENTED. Looked up
 * again after an inflate on the thread pool: a reload may have changed it. */
static lk_pipeline *pipeline_of(struct stream *s)
{
    lk_pipeline *p = s->c->r->pipelines[s->signal];
    if (p == NULL) {
        char text[128];
        snprintf(text, sizeof(text), "no %s pipeline is configured",
                 lk_signal_name((enum lk_signal)s->signal));
        respond_error(s, LK_GRPC_UNIMPLEMENTED, text, -1);
    }
    return p;
}

/* Refuses the stream's request, retryably, because the memory budget is
 * spent; what it holds is freed at once. */
static void refuse_memory(struct stream *s)
{
    lk_counter_add(s->c->r->mem_refused, 1);
    respond_error(s, LK_GRPC_UNAVAILABLE,
                  "lookout's memory_limit is reached, retry later", RETRY_AFTER_MS);
}

/* Answers a request whose |items| the pipeline did not take (|rc| from
 * lk_pipeline_submit, LK_ENOMEM, or a failed commit's LK_EFULL / LK_EIO):
 * all but a request larger than the queue may be sent again. */
static void refuse_items(struct stream *s, uint64_t items, int rc)
{
    char text[160];
    lk_counter_add(s->c->r->refused[s->signal], items);
    if (rc == LK_EMEMLIMIT) {
        refuse_memory(s);
    } else if (rc == LK_E2BIG) {
        respond_error(s, LK_GRPC_RESOURCE_EXHAUSTED,
                      "request larger than lookout's queue (queue_size, max_bytes)", -1);
    } else if (rc == LK_ENOMEM) {
        respond_error(s, LK_GRPC_UNAVAILABLE, "out of memory", RETRY_AFTER_MS);
    } else if (rc == LK_EFULL || rc == LK_EIO) {
        snprintf(text, sizeof(text),
                 "lookout could not store the request on disk (%s), retry later",
                 lk_strerror(rc));
        respond_error(s, LK_GRPC_UNAVAILABLE, text, RETRY_AFTER_MS);
    } else {
        respond_error(s, LK_GRPC_UNAVAILABLE, "lookout's queue is full, retry later",
                      RETRY_AFTER_MS);
    }
}

static void submit_durable(struct stream *s, lk_pipeline *p, lk_item *it,
                           uint64_t rejected, const char *why);

/* Answers a failed inflate (|rc| from lk_gzip_inflate with cap |max|).
 * Returns true when it did. */
static bool inflate_failed(struct stream *s, int rc, size_t max)
{
    char text[128];
    if (rc == 0)
        return false;
    if (rc == LK_E2BIG) {
        snprintf(text, sizeof(text),
                 "decompressed message exceeds max_recv_msg_size (%llu bytes)",
                 (unsigned long long)max);
        respond_error(s, LK_GRPC_RESOURCE_EXHAUSTED, text, -1);
        return true;
    }
    if (rc == LK_EMEMLIMIT) {
        refuse_memory(s);
        return true;
    }
    respond_error(s, rc == LK_ENOMEM ? LK_GRPC_RESOURCE_EXHAUSTED : LK_GRPC_INVALID_ARGUMENT,
                  rc == LK_ENOMEM ? "out of memory" : "corrupt compressed message", -1);
    return true;
}

/* Validates the (inflated) message, offers it to the pipeline and answers. */
static void accept_message(struct stream *s, const uint8_t *msg, size_t msglen)
{
    lk_otlp_grpc *r = s->c->r;
    char why[256];
    char text[400];
    lk_pipeline *p = pipeline_of(s);
    if (p == NULL)
        return;
    enum lk_signal sig = (enum lk_signal)s->signal;
    struct lk_otlp_counts counts;
    struct lk_otlp_salvage_result sv = {0};
    int rc = lk_otlp_validate(sig, msg, msglen, &counts, why, sizeof(why));
    if (rc == LK_EUTF8 || rc == LK_EPROTO) {
        /* The slow path, for invalid requests only: keep the items that are
         * valid on their own (the salvage tells a bad value from a broken
         * structure, which leaves nothing to keep). */
        lk_buf_reset(&r->salvaged);
        int src = lk_otlp_salvage(sig, msg, msglen, &r->salvaged, &sv, why,
                                  sizeof(why));
        if (src == LK_ENOMEM || src == LK_EMEMLIMIT) {
            lk_buf_fini(&r->salvaged);
            if (src == LK_EMEMLIMIT)
                refuse_memory(s);
            else
                respond_error(s, LK_GRPC_UNAVAILABLE, "out of memory", RETRY_AFTER_MS);
            return;
        }
        if (src == 0 && sv.accepted > 0) {
            msg = r->salvaged.data;
            msglen = r->salvaged.len;
            counts.items = sv.accepted;
            rc = 0;
        }
    }
    if (rc < 0) {
        snprintf(text, sizeof(text), "invalid %s request: %s",
                 lk_signal_name(sig), why);
        lk_log(LK_LOG_DEBUG, "rejected request", LK_S("receiver", r->name)
               LK_S("reason", text));
        lk_buf_fini(&r->salvaged);
        lk_counter_add(r->rejected[sig], sv.rejected);
        respond_error(s, LK_GRPC_INVALID_ARGUMENT, text, -1);
        return;
    }
    if (counts.items == 0) {
        respond_ok(s, 0, NULL); /* nothing to forward */
        return;
    }
    lk_item *it;
    if (s->body.len >= LK_ITEM_HEADROOM && msg == s->body.data + LK_ITEM_HEADROOM &&
        msglen == s->body.len - LK_ITEM_HEADROOM)
        it = lk_item_adopt(&s->body, sig, (uint32_t)counts.items, uv_now(r->loop));
    else
        it = lk_item_create(sig, (uint32_t)counts.items, uv_now(r->loop), msg, msglen);
    /* The item holds a copy; one large salvage does not pin its size. */
    lk_buf_fini(&r->salvaged);
    if (it == NULL) {
        refuse_items(s, counts.items, LK_ENOMEM);
        return;
    }
    if (lk_pipeline_durable(p)) {
        submit_durable(s, p, it, sv.dropped ? sv.rejected : 0, sv.dropped ? why : NULL);
        return;
    }
    rc = lk_pipeline_submit(p, it);
    lk_item_unref(it);
    if (rc < 0) {
        refuse_items(s, counts.items, rc);
        return;
    }
    lk_counter_add(r->accepted[s->signal], counts.items);
    if (sv.dropped) {
        lk_counter_add(r->rejected[sig], sv.rejected);
        lk_log(LK_LOG_DEBUG, "rejected invalid items", LK_S("receiver", r->name)
               LK_U("rejected", sv.rejected) LK_U("accepted", sv.accepted)
               LK_S("reason", why));
        respond_ok(s, sv.rejected, why);
        return;
    }
    respond_ok(s, 0, NULL);
}

/* The ack's callback: the answer the stream waited for. */
static void stream_committed(void *arg, int status)
{
    struct stream *s = arg;
    struct conn *c = s->c;
    lk_otlp_grpc *r = c->r;
    s->ack = NULL;
    if (status < 0) {
        refuse_items(s, s->ack_items, status);
    } else {
        lk_counter_add(r->accepted[s->signal], s->ack_items);
        if (s->ack_rejected > 0) {
            lk_counter_add(r->rejected[s->signal], s->ack_rejected);
            lk_log(LK_LOG_DEBUG, "rejected invalid items", LK_S("receiver", r->name)
                   LK_U("rejected", s->ack_rejected) LK_U("accepted", s->ack_items)
                   LK_S("reason", s->ack_why ? s->ack_why : ""));
        }
        respond_ok(s, s->ack_rejected, s->ack_why);
    }
    free(s->ack_why);
    s->ack_why = NULL;
    conn_flush(c); /* may free |s| */
}

/* Queues |it| (the reference is taken) with an ack; the stream is answered
 * once it is committed. |rejected| invalid items were left out, for |why|. */
static void submit_durable(struct stream *s, lk_pipeline *p, lk_item *it,
                           uint64_t rejected, const char *why)
{
    uint64_t items = it->count;
    lk_ack *a = lk_ack_new(s->c->r->loop, stream_committed, s);
    if (a == NULL) {
        lk_item_unref(it);
        refuse_items(s, items, LK_ENOMEM);
        return;
    }
    int rc = lk_pipeline_submit_acked(p, it, a);
    lk_item_unref(it);
    if (rc < 0) {
        lk_ack_cancel(a);
        refuse_items(s, items, rc);
        return;
    }
    s->ack = a;
    s->ack_items = items;
    s->ack_rejected = rejected;
    /* Without memory for the reason the answer still counts the rejected. */
    s->ack_why = why != NULL ? strdup(why) : NULL;
    lk_buf_fini(&s->body); /* the item has its bytes: not held while waiting */
    lk_ack_seal(a);
}

static void inflate_call_free(struct inflate_call *ic)
{
    lk_inflate_pool_recycle(&ic->r->inflates, &ic->job.out);
    lk_buf_fini(&ic->body);
    free(ic);
}

/* On the loop, once the thread is through with |j|. */
static void inflate_done(struct lk_inflate_job *j)
{
    struct inflate_call *ic = (struct inflate_call *)j;
    lk_otlp_grpc *r = ic->r;
    struct stream *s = ic->s;
    if (s != NULL)
        s->inflating = NULL;
    /* A closing receiver has told every client GOAWAY and answers nothing
     * more: queueing the message now would duplicate the client's retry. */
    if (s != NULL && !r->closing) {
        struct conn *c = s->c;
        if (!inflate_failed(s, j->rc, j->max))
            accept_message(s, j->out.data, j->out.len);
        conn_flush(c); /* may free |s| */
    }
    inflate_call_free(ic);
    maybe_finish_close(r);
}

/* Hands the stream's compressed message |msg| (inside s->body, which moves
 * to the job) to the thread pool; inflate_done answers. Returns 0, or
 * LK_ENOMEM / LK_ESYS with nothing changed (inflate it inline then). */
static int inflate_offloop(struct stream *s, const uint8_t *msg, size_t msglen)
{
    lk_otlp_grpc *r = s->c->r;
    struct inflate_call *ic = calloc(1, sizeof(*ic));
    if (ic == NULL)
        return LK_ENOMEM;
    ic->r = r;
    ic->s = s;
    ic->job.in = msg;
    ic->job.in_len = msglen;
    ic->job.max = r->cfg.max_recv_msg_size;
    ic->job.raw_zlib = s->enc == ENC_DEFLATE;
    ic->job.done = inflate_done;
    int rc = lk_inflate_pool_submit(&r->inflates, &ic->job);
    if (rc < 0) {
        free(ic);
        return rc;
    }
    ic->body = s->body;
    lk_buf_init(&s->body, 0);
    s->inflating = ic;
    return 0;
}

static void process_request(struct stream *s)
{
    lk_otlp_grpc *r = s->c->r;
    const uint8_t *msg;
    size_t msglen;
    bool compressed;

    if (!s->post) {
        respond_http(s, "405");
        return;
    }
    if (!s->grpc_type) {
        respond_http(s, "415");
        return;
    }
    if (s->signal < 0) {
        respond_error(s, LK_GRPC_UNIMPLEMENTED, "unknown method", -1);
        return;
    }
    if (pipeline_of(s) == NULL)
        return;
    if (s->enc == ENC_UNKNOWN) {
        respond_error(s, LK_GRPC_UNIMPLEMENTED,
                      "unsupported grpc-encoding (identity, gzip, deflate)", -1);
        return;
    }
    if (s->body.len < BODY_AT ||
        lk_grpc_unary_message(s->body.data + BODY_AT, s->body.len - BODY_AT, &msg, &msglen,
                              &compressed) < 0) {
        respond_error(s, LK_GRPC_INVALID_ARGUMENT,
                      "request body is not exactly one length-prefixed message",
                      -1);
        return;
    }
    if (!compressed) {
        accept_message(s, msg, msglen);
        return;
    }
    if (s->enc == ENC_IDENTITY) {
        respond_error(s, LK_GRPC_INTERNAL, "compressed message without grpc-encoding", -1);
        return;
    }
    /* Large messages are inflated off the loop, which meanwhile serves the
     * other streams and connections. */
    if (lk_inflate_pool_wants(msglen) && inflate_offloop(s, msg, msglen) == 0)
        return;
    lk_buf_reset(&r->scratch);
    int rc = lk_gzip_inflate(msg, msglen, r->cfg.max_recv_msg_size, s->enc == ENC_DEFLATE,
                             &r->scratch);
    if (!inflate_failed(s, rc, r->cfg.max_recv_msg_size))
        accept_message(s, r->scratch.data, r->scratch.len);
    /* A small body may inflate to a large one: its buffer is not kept. */
    lk_buf_reset(&r->scratch);
    lk_buf_shrink(&r->scratch, KEEP_SCRATCH_BYTES);
}

/* ---- nghttp2 callbacks -------------------------------------------------- */

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame,
                            void *user)
{
    struct conn *c = user;
    if (frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    s->c = c;
    s->id = frame->hd.stream_id;
    s->signal = -1;
    /* The prefix and a message of the largest allowed size; compressed
     * messages are never larger than what they inflate to, within reason.
     * Every byte of it counts in the memory budget as it arrives. */
    lk_buf_init(&s->body, BODY_AT + c->r->cfg.max_recv_msg_size + LK_GRPC_PREFIX_LEN);
    lk_buf_charge(&s->body, LK_MEM_RECEIVERS, true);
    s->next = c->streams;
    if (c->streams != NULL)
        c->streams->prev = s;
    c->streams = s;
    c->nstreams++;
    nghttp2_session_set_stream_user_data(h2, s->id, s);
    return 0;
}

static bool header_is(const uint8_t *name, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(name, want, n) == 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user)
{
    if (frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct stream *s = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (s == NULL)
        return 0;
    if (header_is(name, namelen, ":path")) {
        for (int i = 0; i < LK_SIGNAL_COUNT; i++)
            if (header_is(value, valuelen, service_path[i]))
                s->signal = i;
    } else if (header_is(name, namelen, ":method")) {
        s->post = header_is(value, valuelen, "POST");
    } else if (header_is(name, namelen, "content-type")) {
        s->grpc_type = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                       (valuelen == 16 || value[16] == '+' || value[16] == ';');
    } else if (header_is(name, namelen, "grpc-encoding")) {
        if (header_is(value, valuelen, "identity"))
            s->enc = ENC_IDENTITY;
        else if (header_is(value, valuelen, "gzip"))
            s->enc = ENC_GZIP;
        else if (header_is(value, valuelen, "deflate"))
            s->enc = ENC_DEFLATE;
        else
            s->enc = ENC_UNKNOWN;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *user)
{
    struct stream *s = nghttp2_session_get_stream_user_data(h2, id);
    if (s == NULL || s->responded)
        return 0; /* refused: what still arrives is dropped, never buffered */
    static const uint8_t room[BODY_AT];
    int rc = s->body.len == 0 ? lk_buf_append(&s->body, room, BODY_AT) : 0;
    if (rc == 0)
        rc = lk_buf_append(&s->body, data, len);
    if (rc == LK_EMEMLIMIT) {
        refuse_memory(s);
        return 0;
    }
    if (rc == LK_E2BIG && s->body.max < BODY_AT + LK_GRPC_PREFIX_LEN +
                                          s->c->r->cfg.max_recv_msg_size) {
        /* Past the message its prefix announced (the cap was narrowed). */
        respond_error(s, LK_GRPC_INVALID_ARGUMENT,
                      "request body is not exactly one length-prefixed message", -1);
        return 0;
    }
    if (rc == LK_E2BIG) {
        char text[160];
        snprintf(text, sizeof(text),
                 "message exceeds max_recv_msg_size (%llu bytes)",
                 (unsigned long long)s->c->r->cfg.max_recv_msg_size);
        respond_error(s, LK_GRPC_RESOURCE_EXHAUSTED, text, -1);
        return 0;
    }
    if (rc < 0) {
        respond_error(s, LK_GRPC_UNAVAILABLE, "out of memory", RETRY_AFTER_MS);
        return 0;
    }
    /* Refuse an announced oversized message before it is all buffered. */
    if (s->body.len >= LK_ITEM_HEADROOM) {
        bool compressed;
        uint32_t mlen;
        lk_grpc_prefix_read(s->body.data + BODY_AT, &compressed, &mlen);
        size_t whole = LK_ITEM_HEADROOM + (size_t)mlen; /* the buffer, all arrived */
        if (mlen > s->c->r->cfg.max_recv_msg_size) {
            char text[160];
            snprintf(text, sizeof(text),
                     "message of %u bytes exceeds max_recv_msg_size (%llu bytes)",
                     mlen, (unsigned long long)s->c->r->cfg.max_recv_msg_size);
            respond_error(s, LK_GRPC_RESOURCE_EXHAUSTED, text, -1);
        } else if (whole > s->body.len && whole - s->body.len > lk_mem_available()) {
            refuse_memory(s); /* it cannot fit now: refused before it arrives */
        } else if (whole >= s->body.len && whole < s->body.max) {
            /* Grown to the message's size, no further (a doubling would
             * hold, and be charged, up to twice what arrives). */
            s->body.max = whole;
            /* A large one starts at the size the allocator maps from the
             * OS, not on the heap, where growing would leave freed blocks
             * resident. */
            size_t want = mlen <= RESERVE_UPFRONT_BYTES || whole < LK_PLATFORM_LARGE_BLOCK
                              ? whole
                              : LK_PLATFORM_LARGE_BLOCK;
            if (s->body.cap < want)
                lk_buf_reserve(&s->body, want - s->body.len);
        }
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame,
                         void *user)
{
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && lk_mem_full()) {
        /* No room for a body: refused before any of it arrives. */
        struct stream *s = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
        if (s != NULL && !s->responded)
            refuse_memory(s);
        return 0;
    }
    if ((frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct stream *s = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (s == NULL)
        return 0;
    s->ended = true;
    if (!s->responded)
        process_request(s);
    return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *frame,
                         void *user)
{
    if (frame->hd.type != NGHTTP2_HEADERS ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct stream *s = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (s != NULL && s->rst_after_send && !s->ended) {
        s->rst_after_send = false;
        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

/* Frees |s| (unlinked already). A message of its on the thread pool is
 * withdrawn when still waiting for a thread, else left to discard its
 * result in inflate_done; a commit it waits for is no longer waited for. */
static void stream_free(lk_otlp_grpc *r, struct stream *s)
{
    struct inflate_call *ic = s->inflating;
    if (ic != NULL) {
        if (lk_inflate_pool_cancel(&r->inflates, &ic->job))
            inflate_call_free(ic);
        else
            ic->s = NULL;
    }
    if (s->ack != NULL) {
        /* Reset or closed before its commit: nobody to answer. The items
         * are queued all the same. */
        lk_ack_cancel(s->ack);
        lk_counter_add(r->accepted[s->signal], s->ack_items);
    }
    free(s->ack_why);
    lk_buf_fini(&s->body);
    lk_buf_fini(&s->resp_partial);
    free(s);
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t err,
                           void *user)
{
    struct conn *c = user;
    struct stream *s = nghttp2_session_get_stream_user_data(h2, id);
    if (s == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(h2, id, NULL);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    c->nstreams--;
    stream_free(c->r, s);
    return 0;
}

/* ---- connection I/O ----------------------------------------------------- */

static void conn_link(struct conn *c)
{
    lk_otlp_grpc *r = c->r;
    c->next = NULL;
    c->prev = r->conns_tail;
    if (r->conns_tail != NULL)
        r->conns_tail->next = c;
    else
        r->conns = c;
    r->conns_tail = c;
}

static void conn_unlink(struct conn *c)
{
    lk_otlp_grpc *r = c->r;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        r->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        r->conns_tail = c->prev;
    c->prev = c->next = NULL;
}

/* Activity: |c| becomes the most recently active connection, and its idle
 * timeout starts over. */
static void conn_touch(struct conn *c)
{
    if (c->r->conns_tail != c) {
        conn_unlink(c);
        conn_link(c);
    }
    if (!c->draining)
        uv_timer_again(&c->idle);
}

static void handshake_done(struct conn *c);

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    buf->base = c->rbuf;
    buf->len = sizeof(c->rbuf);
}

static void read_cb(uv_stream_t *sock, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = sock->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->handshake_done)
        conn_touch(c);
    ssize_t rc = nghttp2_session_mem_recv(c->h2, (const uint8_t *)buf->base,
                                          (size_t)nread);
    if (rc < 0) {
        lk_log(LK_LOG_DEBUG, "http2 protocol error, closing connection",
               LK_S("receiver", c->r->name) LK_S("error", nghttp2_strerror((int)rc)));
        conn_close(c);
        return;
    }
    if (!c->handshake_done && nghttp2_session_get_last_proc_stream_id(c->h2) > 0)
        handshake_done(c);
    conn_flush(c);
}

static void write_cb(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    c->write_busy = false;
    lk_buf_reset(&c->writing);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    conn_flush(c);
}

static void conn_flush(struct conn *c)
{
    if (c->closing)
        return;
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->h2, &data);
        if (n < 0) {
            conn_close(c);
            return;
        }
        if (n == 0)
            break;
        if (lk_buf_append(&c->out, data, (size_t)n) < 0) {
            conn_close(c);
            return;
        }
    }
    if (!c->write_busy && c->out.len > 0) {
        /* Swap buffers: the filled one goes to the kernel, the empty one
         * collects what nghttp2 produces meanwhile. */
        lk_buf tmp = c->writing;
        c->writing = c->out;
        c->out = tmp;
        uv_buf_t b = uv_buf_init((char *)c->writing.data, (unsigned)c->writing.len);
        c->wreq.data = c;
        if (uv_write(&c->wreq, c->sock, &b, 1, write_cb) < 0) {
            conn_close(c);
            return;
        }
        c->write_busy = true;
    }
    /* A client that does not read its responses stops being read. */
    bool want_read = c->out.len < MAX_PENDING_OUT;
    if (want_read != c->reading) {
        if (want_read)
            uv_read_start(c->sock, alloc_cb, read_cb);
        else
            uv_read_stop(c->sock);
        c->reading = want_read;
    }
    if (!c->write_busy && c->out.len == 0 && !nghttp2_session_want_read(c->h2) &&
        !nghttp2_session_want_write(c->h2))
        conn_close(c);
}

/* Runs when the second of the connection's two handles has closed. */
static void conn_free(struct conn *c)
{
    lk_otlp_grpc *r = c->r;
    lk_buf_fini(&c->writing);
    lk_mem_release(LK_MEM_RECEIVERS, sizeof(*c));
    free(c);
    maybe_finish_close(r);
}

static void sock_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    free(h);
    if (--c->pending_closes == 0)
        conn_free(c);
}

static void timer_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->pending_closes == 0)
        conn_free(c);
}

static void conn_close(struct conn *c)
{
    lk_otlp_grpc *r = c->r;
    if (c->closing)
        return;
    c->closing = true;
    /* nghttp2_session_del does not report closed streams: free them here. */
    while (c->streams != NULL) {
        struct stream *s = c->streams;
        c->streams = s->next;
        stream_free(r, s);
    }
    nghttp2_session_del(c->h2);
    c->h2 = NULL;
    lk_buf_fini(&c->out);
    /* The write in flight, if any, still owns |writing| until the socket
     * closes; uv_close cancels it, and the buffer is freed with it below. */
    conn_unlink(c);
    r->nconns--;
    if (c->draining)
        r->ndraining--;
    lk_gauge_set(r->conn_gauge, r->nconns);
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->idle, timer_closed);
    uv_close((uv_handle_t *)c->sock, sock_closed);
}

static void count_close(struct conn *c, enum lk_conn_close_reason why)
{
    lk_counter_add(c->r->conn_closed[why], 1);
    lk_log(LK_LOG_DEBUG, "closing connection", LK_S("receiver", c->r->name)
           LK_S("reason", lk_conn_close_reason_name(why)));
}

static void conn_timer_cb(uv_timer_t *t);

/* Tells the client GOAWAY (streams it began stay answered, none more
 * accepted); the connection closes once that is written (conn_flush), or
 * after DRAIN_MS if the client does not let it be written. */
static void conn_goaway(struct conn *c)
{
    nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(c->h2),
                          NGHTTP2_NO_ERROR, NULL, 0);
    nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
    c->draining = true;
    c->r->ndraining++;
    uv_timer_start(&c->idle, conn_timer_cb, DRAIN_MS, 0);
    conn_flush(c);
}

/* One timer per connection: the handshake deadline until the first HEADERS,
 * then the idle timeout (repeating), then the drain deadline. */
static void conn_timer_cb(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->draining) {
        conn_close(c);
        return;
    }
    if (!c->handshake_done) {
        /* No preface, or no request after it: a port scanner, a
         * half-open client. Nothing to tell it. */
        count_close(c, LK_CONN_CLOSED_HANDSHAKE);
        conn_close(c);
        return;
    }
    if (c->nstreams > 0)
        return; /* a request is being received or waits for its commit: not idle */
    count_close(c, LK_CONN_CLOSED_IDLE);
    conn_goaway(c);
}

static void handshake_done(struct conn *c)
{
    lk_otlp_grpc *r = c->r;
    c->handshake_done = true;
    conn_touch(c);
    if (r->cfg.idle_timeout_ms > 0)
        uv_timer_start(&c->idle, conn_timer_cb, r->cfg.idle_timeout_ms,
                       r->cfg.idle_timeout_ms);
    else
        uv_timer_stop(&c->idle);
}

/* The connection idle longest (no stream open, not draining already), or
 * NULL when every connection is busy. A stream waiting for its commit is
 * open. */
static struct conn *oldest_idle(lk_otlp_grpc *r)
{
    for (struct conn *c = r->conns; c != NULL; c = c->next)
        if (c->nstreams == 0 && !c->draining && !c->closing)
            return c;
    return NULL;
}

static int conn_start(lk_otlp_grpc *r, uv_stream_t *sock)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return LK_ENOMEM;
    c->r = r;
    c->sock = sock;
    sock->data = c;
    lk_buf_init(&c->out, SIZE_MAX);
    lk_buf_init(&c->writing, SIZE_MAX);
    lk_buf_charge(&c->out, LK_MEM_RECEIVERS, false);
    lk_buf_charge(&c->writing, LK_MEM_RECEIVERS, false);
    lk_mem_charge(LK_MEM_RECEIVERS, sizeof(*c)); /* its read buffer */
    if (nghttp2_session_server_new(&c->h2, r->cbs, c) != 0) {
        free(c);
        return LK_ENOMEM;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, r->cfg.max_concurrent_streams},
        /* Large windows: a 512-span request is ~160 KB, and the default
         * 64 KiB window would cost round trips on every one. */
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 4 << 20},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64 << 10},
    };
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    uv_timer_init(r->loop, &c->idle);
    c->idle.data = c;
    conn_link(c);
    r->nconns++;
    lk_gauge_set(r->conn_gauge, r->nconns);
    if (r->cfg.handshake_timeout_ms > 0)
        uv_timer_start(&c->idle, conn_timer_cb, r->cfg.handshake_timeout_ms, 0);
    else
        handshake_done(c); /* no deadline: idle timeout from the start */
    c->reading = true;
    uv_read_start(sock, alloc_cb, read_cb);
    conn_flush(c);
    return 0;
}

static void on_connection(uv_stream_t *server, int status)
{
    lk_otlp_grpc *r = server->data;
    if (status < 0 || r->closing)
        return;
    uv_stream_t *sock = lk_listener_accept(&r->listener, r->loop);
    if (sock == NULL)
        return;
    if (r->nconns - r->ndraining >= r->cfg.max_connections) {
        /* Room is made by the connection idle longest. Connections told
         * GOAWAY close within DRAIN_MS; a flood may not pile up more of them
         * than max_connections. */
        struct conn *old = r->ndraining < r->cfg.max_connections ? oldest_idle(r) : NULL;
        if (old == NULL) {
            lk_counter_add(r->conn_refused, 1);
            lk_log(LK_LOG_WARN, "connection limit reached, closing new connection",
                   LK_S("receiver", r->name)
                   LK_U("max_connections", r->cfg.max_connections));
            uv_close((uv_handle_t *)sock, (uv_close_cb)free);
            return;
        }
        count_close(old, LK_CONN_CLOSED_EVICTED);
        conn_goaway(old);
    }
    if (conn_start(r, sock) < 0)
        uv_close((uv_handle_t *)sock, (uv_close_cb)free);
}

/* ---- lifecycle ---------------------------------------------------------- */

static void free_failed_receiver(uv_handle_t *h)
{
    lk_otlp_grpc *r = h->data;
    lk_buf_fini(&r->scratch);
    lk_buf_fini(&r->salvaged);
    free(r->cfg.endpoint);
    free(r->name);
    free(r);
}

int lk_otlp_grpc_start(lk_otlp_grpc **out, uv_loop_t *loop, const char *name,
                       const struct lk_grpc_receiver_config *cfg,
                       lk_pipeline *const pipelines[LK_SIGNAL_COUNT],
                       lk_metrics *m)
{
    char labels[256], mname[128], help[128];
    int rc = LK_ENOMEM;
    lk_otlp_grpc *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return LK_ENOMEM;
    r->loop = loop;
    r->cfg = *cfg;
    r->metrics = m;
    r->name = strdup(name);
    r->cfg.endpoint = strdup(cfg->endpoint);
    if (r->name == NULL || r->cfg.endpoint == NULL)
        goto err_free;
    memcpy(r->pipelines, pipelines, sizeof(r->pipelines));
    lk_buf_init(&r->scratch, cfg->max_recv_msg_size);
    lk_buf_init(&r->salvaged, cfg->max_recv_msg_size);
    lk_buf_charge(&r->scratch, LK_MEM_RECEIVERS, true);
    lk_buf_charge(&r->salvaged, LK_MEM_RECEIVERS, true);
    lk_inflate_pool_init(&r->inflates, loop);
    if (nghttp2_session_callbacks_new(&r->cbs) != 0)
        goto err_free;
    nghttp2_session_callbacks_set_on_begin_headers_callback(r->cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(r->cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(r->cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(r->cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(r->cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(r->cbs, on_frame_send);

    for (int i = 0; i < LK_SIGNAL_COUNT; i++) {
        snprintf(labels, sizeof(labels), "receiver=\"%s\",transport=\"grpc\"", name);
        snprintf(mname, sizeof(mname), "lookout_receiver_accepted_%s_total", item_word[i]);
        snprintf(help, sizeof(help), "%s accepted and queued.", item_word[i]);
        r->accepted[i] = lk_metrics_counter(m, mname, help, labels);
        snprintf(mname, sizeof(mname), "lookout_receiver_refused_%s_total", item_word[i]);
        snprintf(help, sizeof(help), "%s refused because the pipeline was full.",
                 item_word[i]);
        r->refused[i] = lk_metrics_counter(m, mname, help, labels);
        snprintf(mname, sizeof(mname), "lookout_receiver_rejected_%s_total", item_word[i]);
        snprintf(help, sizeof(help), "%s rejected as invalid, one by one.", item_word[i]);
        r->rejected[i] = lk_metrics_counter(m, mname, help, labels);
    }
    snprintf(labels, sizeof(labels), "receiver=\"%s\",transport=\"grpc\"", name);
    r->conn_gauge = lk_metrics_gauge(m, "lookout_receiver_connections",
                                     "Open client connections.", labels);
    r->conn_refused = lk_metrics_counter(
        m, "lookout_receiver_connections_refused_total",
        "Connections closed at once because max_connections was reached.", labels);
    r->mem_refused = lk_metrics_counter(
        m, "lookout_receiver_memory_refusals_total",
        "Requests refused (retryably) because memory_limit was reached.", labels);
    lk_conn_close_counters(m, "lookout_receiver_connections_closed_total",
                           "Connections the receiver closed on its own, by reason.", labels,
                           r->conn_closed);

    rc = lk_listener_start(&r->listener, loop, cfg->endpoint, LK_LISTEN_BACKLOG, on_connection, r);
    if (rc < 0)
        goto err_cbs;
    lk_log(LK_LOG_INFO, "otlp grpc receiver listening", LK_S("receiver", name)
           LK_S("endpoint", cfg->endpoint));
    *out = r;
    return 0;
err_cbs:
    nghttp2_session_callbacks_del(r->cbs);
    if (lk_listener_is_open(&r->listener)) {
        /* The handle lives inside |r|: free it once the handle has closed. */
        lk_listener_close(&r->listener, free_failed_receiver);
        return rc;
    }
err_free:
    free(r->cfg.endpoint);
    free(r->name);
    free(r);
    return rc;
}

static void listener_closed(uv_handle_t *h)
{
    lk_otlp_grpc *r = h->data;
    r->listener_closed = true;
    maybe_finish_close(r);
}

static void maybe_finish_close(lk_otlp_grpc *r)
{
    if (!r->closing || !r->listener_closed || r->conns != NULL ||
        r->nconns != 0 || !lk_inflate_pool_is_idle(&r->inflates))
        return;
    void (*done)(void *) = r->close_done;
    void *arg = r->close_arg;
    nghttp2_session_callbacks_del(r->cbs);
    lk_buf_fini(&r->scratch);
    lk_buf_fini(&r->salvaged);
    lk_inflate_pool_fini(&r->inflates);
    free(r->cfg.endpoint);
    free(r->name);
    free(r);
    if (done != NULL)
        done(arg);
}

void lk_otlp_grpc_update(lk_otlp_grpc *r, const struct lk_grpc_receiver_config *cfg,
                         lk_pipeline *const pipelines[LK_SIGNAL_COUNT])
{
    char *endpoint = r->cfg.endpoint; /* unchanged: the caller checked */
    r->cfg = *cfg;
    r->cfg.endpoint = endpoint;
    memcpy(r->pipelines, pipelines, sizeof(r->pipelines));
}

void lk_otlp_grpc_close(lk_otlp_grpc *r, void (*done)(void *arg), void *arg)
{
    r->closing = true;
    r->close_done = done;
    r->close_arg = arg;
    lk_listener_close(&r->listener, listener_closed);
    for (struct conn *c = r->conns; c != NULL;) {
        struct conn *next = c->next;
        nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->h2),
                              NGHTTP2_NO_ERROR, NULL, 0);
        nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
        conn_flush(c); /* closes once the GOAWAY is written */
        c = next;
    }
}
