#include "receivers/otlp_http.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/grpc_status.h"
#include "core/gzip.h"
#include "core/httpd.h"
#include "core/inflate_pool.h"
#include "core/json_escape.h"
#include "core/log.h"
#include "core/membudget.h"
#include "core/pbwire.h"
#include "core/utf8.h"
#include "receivers/otlp_json.h"
#include "receivers/otlp_salvage.h"
#include "receivers/otlp_validate.h"

#define RETRY_AFTER_S 1 /* s, hinted to clients when the pipeline is full */
_Static_assert(RETRY_AFTER_S > 0 && RETRY_AFTER_S < 128, "one varint byte in RetryInfo");
/* Scratch buffers that grew past this are released after the request, so
 * that one large request does not pin its size for the process lifetime. */
#define KEEP_SCRATCH_BYTES (1024 * 1024)
/* Response bodies are small: a Status with a message, or an empty
 * Export<Signal>ServiceResponse. */
#define MAX_RESPONSE_BYTES (64 * 1024)
#define MAX_STATUS_SERIES 16 /* distinct HTTP statuses this receiver answers */

#define CT_PROTOBUF "application/x-protobuf"
#define CT_JSON "application/json"

static const char *const signal_path[LK_SIGNAL_COUNT] = {"/v1/traces", "/v1/metrics",
                                                         "/v1/logs"};
static const char *const item_word[LK_SIGNAL_COUNT] = {"spans", "metric_points",
                                                       "log_records"};

enum media { MEDIA_UNKNOWN, MEDIA_PROTOBUF, MEDIA_JSON };
enum encoding { ENC_IDENTITY, ENC_GZIP, ENC_DEFLATE, ENC_UNKNOWN };

struct status_series {
    int status;
    lk_counter *counter;
};

struct lk_otlp_http {
    uv_loop_t *loop;
    char *name;
    lk_httpd *httpd;
    uint64_t max_body;  /* bytes, max_request_body_size */
    lk_pipeline *pipelines[LK_SIGNAL_COUNT];
    /* One request is handled at a time on the loop (from the handler, or
     * from inflate_done for a body inflated on the thread pool). */
    lk_buf inflated;    /* body decompressed inline */
    lk_buf decoded;     /* protobuf from a JSON body */
    lk_buf salvaged;    /* the valid part of a request with invalid items */
    lk_buf resp;        /* response body */
    lk_inflate_pool inflates; /* large bodies; the server waits for their answers */
    void (*close_done)(void *);
    void *close_arg;

    lk_metrics *metrics;
    lk_counter *accepted[LK_SIGNAL_COUNT];
    lk_counter *refused[LK_SIGNAL_COUNT];
    lk_counter *rejected[LK_SIGNAL_COUNT];
    lk_counter *mem_refused;
    struct status_series by_status[MAX_STATUS_SERIES];
};

/* One request on its way through the handler. */
struct call {
    lk_otlp_http *r;
    lk_httpd_req *req;
    enum media media; /* of the request, and so of the response */
};

/* A request whose items wait for their commit to the disk spool
 * (storage.durable): answered from the ack's callback, or given up when the
 * server closes its connection first. */
struct durable_call {
    struct call c;
    lk_ack *ack;
    enum lk_signal sig;
    uint64_t items;    /* queued; counted accepted once committed */
    uint64_t rejected; /* invalid items left out, reported in the answer */
    char *why;         /* their reason, or NULL */
};

/* A request whose body is being inflated on the thread pool. The body stays
 * with the request, which the server keeps until it is answered. */
struct inflate_call {
    struct lk_inflate_job job; /* first */
    struct call c;
    enum lk_signal sig;
    enum encoding enc;
};

/* ---- metrics ------------------------------------------------------------ */

static lk_counter *status_counter(lk_otlp_http *r, int status)
{
    size_t i;
    for (i = 0; i < MAX_STATUS_SERIES && r->by_status[i].status != 0; i++)
        if (r->by_status[i].status == status)
            return r->by_status[i].counter;
    if (i == MAX_STATUS_SERIES)
        return NULL; /* cannot happen: the handler answers a handful of statuses */
    char labels[256];
    snprintf(labels, sizeof(labels),
             "receiver=\"%s\",transport=\"http\",http_status=\"%d\"", r->name, status);
    lk_counter *c = lk_metrics_counter(r->metrics, "lookout_receiver_requests_total",
                                       "Export requests answered, by status.", labels);
    if (c != NULL) {
        r->by_status[i].status = status;
        r->by_status[i].counter = c;
    }
    return c;
}

/* ---- request headers ---------------------------------------------------- */

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* True when |v| (up to a ';' parameter list, blanks around it ignored) is
 * |want|, compared case-insensitively. */
static bool token_is(const char *v, const char *want)
{
    while (is_blank(*v))
        v++;
    size_t n = strcspn(v, ";");
    while (n > 0 && is_blank(v[n - 1]))
        n--;
    return n == strlen(want) && strncasecmp(v, want, n) == 0;
}

static enum media media_of(const char *content_type)
{
    if (content_type == NULL)
        return MEDIA_UNKNOWN;
    if (token_is(content_type, CT_PROTOBUF))
        return MEDIA_PROTOBUF;
    if (token_is(content_type, CT_JSON))
        return MEDIA_JSON;
    return MEDIA_UNKNOWN;
}

static enum encoding encoding_of(const char *content_encoding)
{
    if (content_encoding == NULL || content_encoding[0] == '\0' ||
        token_is(content_encoding, "identity"))
        return ENC_IDENTITY;
    if (token_is(content_encoding, "gzip") || token_is(content_encoding, "x-gzip"))
        return ENC_GZIP;
    if (token_is(content_encoding, "deflate"))
        return ENC_DEFLATE;
    return ENC_UNKNOWN;
}

/* ---- responses ---------------------------------------------------------- */

/* google.rpc.Status {code = 1, message = 2, details = 3 (Any)} as protobuf;
 * with |retry_s| >= 0 one detail, a google.rpc.RetryInfo. |msg| must be
 * valid UTF-8 (a proto3 string). */
static int status_proto(lk_buf *b, int code, const char *msg, int retry_s)
{
    static const char retry_type[] = "type.googleapis.com/google.rpc.RetryInfo";
    int rc = 0;
    if (code != 0) {
        rc = lk_pb_append_varint(b, 1 << 3);
        if (rc == 0)
            rc = lk_pb_append_varint(b, (uint64_t)code);
    }
    if (rc == 0)
        rc = lk_pb_append_len_field(b, 2, msg, strlen(msg));
    if (rc == 0 && retry_s >= 0) {
        /* Any {type_url = 1, value = 2: RetryInfo {retry_delay = 1:
         * Duration {seconds = 1}}}, built inside out. */
        uint8_t dur[11], info[13], any[sizeof(retry_type) + 16];
        size_t dn = 0, in = 0, an = 0;
        dur[dn++] = 1 << 3;
        dur[dn++] = (uint8_t)retry_s; /* < 128: one varint byte */
        info[in++] = 1 << 3 | 2;
        info[in++] = (uint8_t)dn;
        memcpy(info + in, dur, dn);
        in += dn;
        any[an++] = 1 << 3 | 2;
        any[an++] = (uint8_t)(sizeof(retry_type) - 1);
        memcpy(any + an, retry_type, sizeof(retry_type) - 1);
        an += sizeof(retry_type) - 1;
        any[an++] = 2 << 3 | 2;
        any[an++] = (uint8_t)in;
        memcpy(any + an, info, in);
        an += in;
        rc = lk_pb_append_len_field(b, 3, any, an);
    }
    return rc;
}

/* The same Status in the protobuf JSON mapping. */
static int status_json(lk_buf *b, int code, const char *msg, int retry_s)
{
    int rc = lk_buf_printf(b, "{\"code\":%d,\"message\":", code);
    if (rc == 0)
        rc = lk_json_escape(b, msg, strlen(msg));
    if (rc == 0 && retry_s >= 0)
        rc = lk_buf_printf(b,
                           ",\"details\":[{\"@type\":\"type.googleapis.com/"
                           "google.rpc.RetryInfo\",\"retryDelay\":\"%ds\"}]",
                           retry_s);
    if (rc == 0)
        rc = lk_buf_append(b, "}", 1);
    return rc;
}

/* Copies |msg| into |out| (|len| bytes) with invalid UTF-8 bytes replaced
 * by '?', so that it can go into a proto3 string. */
static void sanitize(char *out, size_t len, const char *msg)
{
    size_t n = strlen(msg), o = 0;
    for (size_t i = 0; i < n && o + 1 < len;) {
        size_t sl = lk_utf8_seq_len((const uint8_t *)msg + i, n - i);
        if (sl == 0) {
            out[o++] = '?';
            i++;
        } else if (o + sl < len) {
            memcpy(out + o, msg + i, sl);
            o += sl;
            i += sl;
        } else {
            break;
        }
    }
    out[o] = '\0';
}

static void respond(struct call *c, int status, const char *content_type,
                    const char *extra_headers, const void *body, size_t len)
{
    lk_counter_add(status_counter(c->r, status), 1);
    (void)lk_httpd_respond(c->req, status, content_type, extra_headers, body, len);
}

/*
 * Answers with |status| and a google.rpc.Status {|code|, |msg|} in the
 * request's encoding (protobuf when it is not JSON). |retry| adds
 * Retry-After and a RetryInfo detail.
 */
static void respond_error(struct call *c, int status, int code, const char *msg,
                          bool retry)
{
    lk_otlp_http *r = c->r;
    char text[512], headers[64] = "";
    bool json = c->media == MEDIA_JSON;
    int retry_s = retry ? RETRY_AFTER_S : -1;

    sanitize(text, sizeof(text), msg);
    if (retry)
        snprintf(headers, sizeof(headers), "Retry-After: %d\r\n", RETRY_AFTER_S);
    else if (status == 405)
        snprintf(headers, sizeof(headers), "Allow: POST\r\n");
    lk_buf_reset(&r->resp);
    int rc = json ? status_json(&r->resp, code, text, retry_s)
                  : status_proto(&r->resp, code, text, retry_s);
    if (rc < 0) {
        /* Out of memory for a few hundred bytes: the status line alone. */
        respond(c, status, NULL, headers, NULL, 0);
        return;
    }
    respond(c, status, json ? CT_JSON : CT_PROTOBUF, headers, r->resp.data, r->resp.len);
}

/* 200 with an Export<Signal>ServiceResponse; it carries a partial_success
 * when items were rejected (|rejected| > 0) or |error_message| is given. */
static void respond_ok(struct call *c, enum lk_signal sig, uint64_t rejected,
                       const char *error_message)
{
    lk_otlp_http *r = c->r;
    bool json = c->media == MEDIA_JSON;
    lk_buf_reset(&r->resp);
    int rc = json ? lk_otlp_json_response(sig, rejected, error_message, &r->resp)
                  : lk_otlp_proto_response(sig, rejected, error_message, &r->resp);
    if (rc < 0) {
        /* The data is queued: an empty body still decodes as a full success
         * in protobuf; JSON needs at least "{}". */
        respond(c, 200, json ? CT_JSON : CT_PROTOBUF, NULL, json ? "{}" : "",
                json ? 2 : 0);
        return;
    }
    respond(c, 200, json ? CT_JSON : CT_PROTOBUF, NULL, r->resp.data, r->resp.len);
}

/* ---- request handling --------------------------------------------------- */

static int signal_of(const char *path)
{
    for (int i = 0; i < LK_SIGNAL_COUNT; i++)
        if (strcmp(path, signal_path[i]) == 0)
            return i;
    return -1;
}

/* Refuses the request, retryably, because the memory budget is spent. */
static void refuse_memory(struct call *c)
{
    lk_counter_add(c->r->mem_refused, 1);
    respond_error(c, 503, LK_GRPC_UNAVAILABLE, "lookout's memory_limit is reached, retry later",
                  true);
}

/* Refuses the request, retryably, for want of memory: the budget's
 * (LK_EMEMLIMIT) or the allocator's (LK_ENOMEM). */
static void refuse_no_memory(struct call *c, int rc)
{
    if (rc == LK_EMEMLIMIT)
        refuse_memory(c);
    else
        respond_error(c, 503, LK_GRPC_UNAVAILABLE, "out of memory", true);
}

/* Answers a request whose |items| the pipeline did not take (|rc| from
 * lk_pipeline_submit, LK_ENOMEM, or a failed commit's LK_EFULL / LK_EIO):
 * all but a request larger than the queue may be sent again. */
static void refuse_items(struct call *c, enum lk_signal sig, uint64_t items, int rc)
{
    char text[160];
    lk_counter_add(c->r->refused[sig], items);
    if (rc == LK_EMEMLIMIT) {
        refuse_memory(c);
    } else if (rc == LK_E2BIG) {
        respond_error(c, 413, LK_GRPC_RESOURCE_EXHAUSTED,
                      "request larger than lookout's queue (queue_size, max_bytes)", false);
    } else if (rc == LK_ENOMEM) {
        respond_error(c, 503, LK_GRPC_UNAVAILABLE, "out of memory", true);
    } else if (rc == LK_EFULL || rc == LK_EIO) {
        snprintf(text, sizeof(text),
                 "lookout could not store the request on disk (%s), retry later",
                 lk_strerror(rc));
        respond_error(c, 503, LK_GRPC_UNAVAILABLE, text, true);
    } else {
        respond_error(c, 503, LK_GRPC_UNAVAILABLE, "lookout's queue is full, retry later",
                      true);
    }
}

/* Answers a failed inflate of an |enc| body (|rc| from lk_gzip_inflate with
 * cap |max|). Returns true when it did. */
static bool inflate_failed(struct call *c, enum encoding enc, int rc, uint64_t max)
{
    char text[160];
    if (rc == 0)
        return false;
    if (rc == LK_E2BIG) {
        snprintf(text, sizeof(text),
                 "decompressed body exceeds max_request_body_size (%llu bytes)",
                 (unsigned long long)max);
        respond_error(c, 413, LK_GRPC_RESOURCE_EXHAUSTED, text, false);
    } else if (rc == LK_ENOMEM || rc == LK_EMEMLIMIT) {
        refuse_no_memory(c, rc);
    } else {
        respond_error(c, 400, LK_GRPC_INVALID_ARGUMENT,
                      enc == ENC_GZIP ? "corrupt or truncated gzip body"
                                      : "corrupt or truncated deflate (zlib) body",
                      false);
    }
    return true;
}

/* Decompresses |*body| into r->inflated per |enc| and points |*body| at the
 * result. Returns true, or false after answering. */
static bool decompress(struct call *c, enum encoding enc, const uint8_t **body,
                       size_t *len)
{
    lk_otlp_http *r = c->r;
    if (enc == ENC_IDENTITY)
        return true;
    lk_buf_reset(&r->inflated);
    int rc = lk_gzip_inflate(*body, *len, r->max_body, enc == ENC_DEFLATE, &r->inflated);
    if (inflate_failed(c, enc, rc, r->max_body))
        return false;
    *body = r->inflated.data != NULL ? r->inflated.data : (const uint8_t *)"";
    *len = r->inflated.len;
    return true;
}

/* Turns the JSON |*body| into protobuf in r->decoded and points |*body| at
 * it. Returns true, or false after answering. */
static bool json_to_proto(struct call *c, enum lk_signal sig, const uint8_t **body,
                          size_t *len)
{
    lk_otlp_http *r = c->r;
    char why[256], text[400];
    lk_buf_reset(&r->decoded);
    int rc = lk_otlp_json_decode(sig, *body, *len, &r->decoded, why, sizeof(why));
    if (rc == LK_E2BIG) {
        snprintf(text, sizeof(text),
                 "the request exceeds max_request_body_size (%llu bytes) once encoded",
                 (unsigned long long)r->max_body);
        respond_error(c, 413, LK_GRPC_RESOURCE_EXHAUSTED, text, false);
        return false;
    }
    if (rc == LK_ENOMEM || rc == LK_EMEMLIMIT) {
        refuse_no_memory(c, rc);
        return false;
    }
    if (rc < 0) {
        snprintf(text, sizeof(text), "invalid JSON %s request: %s", lk_signal_name(sig),
                 why);
        lk_log(LK_LOG_DEBUG, "rejected request",
               LK_S("receiver", r->name) LK_S("reason", text));
        respond_error(c, 400, LK_GRPC_INVALID_ARGUMENT, text, false);
        return false;
    }
    *body = r->decoded.data != NULL ? r->decoded.data : (const uint8_t *)"";
    *len = r->decoded.len;
    return true;
}

/* The signal's pipeline, or NULL after answering 404. Looked up again after
 * an inflate on the thread pool: a reload may have changed it. */
static lk_pipeline *pipeline_of(struct call *c, enum lk_signal sig)
{
    lk_pipeline *p = c->r->pipelines[sig];
    if (p == NULL) {
        char text[128];
        snprintf(text, sizeof(text), "no %s pipeline is configured", lk_signal_name(sig));
        respond_error(c, 404, LK_GRPC_UNIMPLEMENTED, text, false);
    }
    return p;
}

static void handle_body(struct call *c, enum lk_signal sig, const uint8_t *body, size_t len);
static void submit_durable(struct call *c, lk_pipeline *p, lk_item *it, uint64_t rejected,
                           const char *why);
static int inflate_offloop(struct call *c, enum lk_signal sig, enum encoding enc,
                           const uint8_t *body, size_t len);

static void handle(struct call *c)
{
    lk_httpd_req *req = c->req;

    c->media = media_of(lk_httpd_req_header(req, "content-type"));
    int s = signal_of(lk_httpd_req_path(req));
    if (s < 0) {
        respond_error(c, 404, LK_GRPC_NOT_FOUND,
                      "unknown path; OTLP/HTTP takes POST /v1/traces, /v1/metrics, /v1/logs",
                      false);
        return;
    }
    enum lk_signal sig = (enum lk_signal)s;
    if (strcmp(lk_httpd_req_method(req), "POST") != 0) {
        respond_error(c, 405, LK_GRPC_UNIMPLEMENTED, "only POST is allowed", false);
        return;
    }
    if (pipeline_of(c, sig) == NULL)
        return;
    if (c->media == MEDIA_UNKNOWN) {
        respond_error(c, 415, LK_GRPC_UNIMPLEMENTED,
                      "unsupported Content-Type; use application/x-protobuf or "
                      "application/json",
                      false);
        return;
    }
    enum encoding enc = encoding_of(lk_httpd_req_header(req, "content-encoding"));
    if (enc == ENC_UNKNOWN) {
        respond_error(c, 415, LK_GRPC_UNIMPLEMENTED,
                      "unsupported Content-Encoding; use gzip, deflate or identity", false);
        return;
    }

    size_t len;
    const uint8_t *body = lk_httpd_req_body(req, &len);
    /* Large bodies are inflated off the loop, which meanwhile serves the
     * other connections. */
    if (enc != ENC_IDENTITY && lk_inflate_pool_wants(len) &&
        inflate_offloop(c, sig, enc, body, len) == 0)
        return;
    if (!decompress(c, enc, &body, &len))
        return;
    handle_body(c, sig, body, len);
}

/* The rest of a request once its body is decompressed: JSON to protobuf,
 * validation, the pipeline, the answer. */
static void handle_body(struct call *c, enum lk_signal sig, const uint8_t *body, size_t len)
{
    lk_otlp_http *r = c->r;
    char why[256], text[400];
    lk_pipeline *p = pipeline_of(c, sig);
    if (p == NULL)
        return;
    if (c->media == MEDIA_JSON && !json_to_proto(c, sig, &body, &len))
        return;

    struct lk_otlp_counts counts;
    struct lk_otlp_salvage_result sv = {0};
    int rc = lk_otlp_validate(sig, body, len, &counts, why, sizeof(why));
    if (rc == LK_EUTF8 || rc == LK_EPROTO) {
        /* The slow path, for invalid requests only: keep the items that are
         * valid on their own (the salvage tells a bad value from a broken
         * structure, which leaves nothing to keep). */
        lk_buf_reset(&r->salvaged);
        int src = lk_otlp_salvage(sig, body, len, &r->salvaged, &sv, why, sizeof(why));
        if (src == LK_ENOMEM || src == LK_EMEMLIMIT) {
            refuse_no_memory(c, src);
            return;
        }
        if (src == 0 && sv.accepted > 0) {
            body = r->salvaged.data;
            len = r->salvaged.len;
            counts.items = sv.accepted;
            rc = 0;
        }
    }
    if (rc < 0) {
        snprintf(text, sizeof(text), "invalid %s request: %s", lk_signal_name(sig), why);
        lk_log(LK_LOG_DEBUG, "rejected request",
               LK_S("receiver", r->name) LK_S("reason", text));
        lk_counter_add(r->rejected[sig], sv.rejected);
        respond_error(c, 400, LK_GRPC_INVALID_ARGUMENT, text, false);
        return;
    }
    if (counts.items == 0) {
        respond_ok(c, sig, 0, NULL); /* nothing to forward */
        return;
    }
    if (counts.items > UINT32_MAX) {
        respond_error(c, 413, LK_GRPC_RESOURCE_EXHAUSTED,
                      "too many items in one request", false);
        return;
    }
    lk_item *it = lk_item_create(sig, (uint32_t)counts.items, uv_now(r->loop), body, len);
    if (it == NULL) {
        refuse_items(c, sig, counts.items, LK_ENOMEM);
        return;
    }
    if (lk_pipeline_durable(p)) {
        submit_durable(c, p, it, sv.dropped ? sv.rejected : 0, sv.dropped ? why : NULL);
        return;
    }
    rc = lk_pipeline_submit(p, it);
    lk_item_unref(it);
    if (rc < 0) {
        refuse_items(c, sig, counts.items, rc);
        return;
    }
    lk_counter_add(r->accepted[sig], counts.items);
    if (sv.dropped) {
        lk_counter_add(r->rejected[sig], sv.rejected);
        lk_log(LK_LOG_DEBUG, "rejected invalid items",
               LK_S("receiver", r->name) LK_U("rejected", sv.rejected)
               LK_U("accepted", sv.accepted) LK_S("reason", why));
        respond_ok(c, sig, sv.rejected, why);
        return;
    }
    respond_ok(c, sig, 0, NULL);
}

/* ---- durable acknowledgement ------------------------------------------- */

static void durable_free(struct durable_call *d)
{
    free(d->why);
    free(d);
}

static void trim_scratches(lk_otlp_http *r);

/* The ack's callback: the answer the request waited for. */
static void durable_done(void *arg, int status)
{
    struct durable_call *d = arg;
    lk_otlp_http *r = d->c.r;
    if (status < 0) {
        refuse_items(&d->c, d->sig, d->items, status);
    } else {
        lk_counter_add(r->accepted[d->sig], d->items);
        if (d->rejected > 0) {
            lk_counter_add(r->rejected[d->sig], d->rejected);
            lk_log(LK_LOG_DEBUG, "rejected invalid items",
                   LK_S("receiver", r->name) LK_U("rejected", d->rejected)
                   LK_U("accepted", d->items) LK_S("reason", d->why ? d->why : ""));
        }
        respond_ok(&d->c, d->sig, d->rejected, d->why);
    }
    durable_free(d);
    trim_scratches(r);
}

/* The server closes the connection (the receiver is closing) before the
 * commit: nobody is left to answer. The items are queued all the same. */
static void durable_abandoned(lk_httpd_req *req, void *arg)
{
    struct durable_call *d = arg;
    lk_ack_cancel(d->ack);
    lk_counter_add(d->c.r->accepted[d->sig], d->items);
    durable_free(d);
    (void)lk_httpd_respond(req, 503, NULL, NULL, NULL, 0); /* releases it; dropped */
}

/* Queues |it| (the reference is taken) with an ack; the answer waits for its
 * commit. |rejected| invalid items were left out of it, for |why|. */
static void submit_durable(struct call *c, lk_pipeline *p, lk_item *it, uint64_t rejected,
                           const char *why)
{
    enum lk_signal sig = (enum lk_signal)it->signal;
    uint64_t items = it->count;
    struct durable_call *d = calloc(1, sizeof(*d));
    lk_ack *a = d != NULL ? lk_ack_new(c->r->loop, durable_done, d) : NULL;
    if (a == NULL) {
        free(d);
        lk_item_unref(it);
        refuse_items(c, sig, items, LK_ENOMEM);
        return;
    }
    int rc = lk_pipeline_submit_acked(p, it, a);
    lk_item_unref(it);
    if (rc < 0) {
        lk_ack_cancel(a);
        free(d);
        refuse_items(c, sig, items, rc);
        return;
    }
    d->c = *c;
    d->ack = a;
    d->sig = sig;
    d->items = items;
    d->rejected = rejected;
    /* Without memory for the reason the answer still counts the rejected. */
    d->why = why != NULL ? strdup(why) : NULL;
    lk_httpd_req_on_abandon(c->req, durable_abandoned, d);
    lk_ack_seal(a);
}

static void trim_scratch(lk_buf *b)
{
    if (b->cap > KEEP_SCRATCH_BYTES)
        lk_buf_fini(b);
    else
        lk_buf_reset(b);
}

static void trim_scratches(lk_otlp_http *r)
{
    trim_scratch(&r->inflated);
    trim_scratch(&r->decoded);
    trim_scratch(&r->salvaged);
    trim_scratch(&r->resp);
}

static void on_request(lk_httpd_req *req, void *arg)
{
    lk_otlp_http *r = arg;
    struct call c = {.r = r, .req = req, .media = MEDIA_UNKNOWN};
    handle(&c);
    trim_scratches(r);
}

/* On the loop, once the thread is through with |j|. */
static void inflate_done(struct lk_inflate_job *j)
{
    struct inflate_call *ic = (struct inflate_call *)j;
    struct call c = ic->c;
    enum lk_signal sig = ic->sig;
    enum encoding enc = ic->enc;
    if (j->rc == LK_ECANCELED || lk_httpd_req_is_abandoned(c.req)) {
        /* The connection is gone (the receiver is closing): the result is
         * dropped, and so is the answer, which only releases the request
         * (not counted: nobody was answered). It may free the receiver. */
        lk_inflate_pool_recycle(&c.r->inflates, &j->out);
        free(ic);
        (void)lk_httpd_respond(c.req, 503, NULL, NULL, NULL, 0);
        return;
    }
    if (!inflate_failed(&c, enc, j->rc, j->max))
        handle_body(&c, sig, j->out.data != NULL ? j->out.data : (const uint8_t *)"",
                    j->out.len);
    lk_inflate_pool_recycle(&c.r->inflates, &j->out);
    free(ic);
    trim_scratches(c.r);
}

/* Hands the compressed |body| of |c| to the thread pool; inflate_done
 * answers. Returns 0, or LK_ENOMEM / LK_ESYS (inflate it inline then). */
static int inflate_offloop(struct call *c, enum lk_signal sig, enum encoding enc,
                           const uint8_t *body, size_t len)
{
    struct inflate_call *ic = calloc(1, sizeof(*ic));
    if (ic == NULL)
        return LK_ENOMEM;
    ic->c = *c;
    ic->sig = sig;
    ic->enc = enc;
    ic->job.in = body;
    ic->job.in_len = len;
    ic->job.max = c->r->max_body;
    ic->job.raw_zlib = enc == ENC_DEFLATE;
    ic->job.done = inflate_done;
    int rc = lk_inflate_pool_submit(&c->r->inflates, &ic->job);
    if (rc < 0)
        free(ic);
    return rc;
}

/* ---- lifecycle ---------------------------------------------------------- */

static void receiver_free(lk_otlp_http *r)
{
    lk_buf_fini(&r->inflated);
    lk_buf_fini(&r->decoded);
    lk_buf_fini(&r->salvaged);
    lk_buf_fini(&r->resp);
    lk_inflate_pool_fini(&r->inflates);
    free(r->name);
    free(r);
}

/* lookout_receiver_connections_closed_total{|labels|,reason=|reason|} */
/* Errors the HTTP server answers before routing count like the others. */
static void count_reject(int status, void *arg)
{
    lk_otlp_http *r = arg;
    lk_counter_add(status_counter(r, status), 1);
    if (status == 503) /* the server's own 503: a body the budget cannot hold */
        lk_counter_add(r->mem_refused, 1);
}

int lk_otlp_http_start(lk_otlp_http **out, uv_loop_t *loop, const char *name,
                       const struct lk_http_receiver_config *cfg,
                       lk_pipeline *const pipelines[LK_SIGNAL_COUNT],
                       lk_metrics *m)
{
    char labels[256], mname[128], help[128];
    int rc;
    lk_otlp_http *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return LK_ENOMEM;
    r->loop = loop;
    r->metrics = m;
    r->max_body = cfg->max_request_body_size;
    r->name = strdup(name);
    if (r->name == NULL) {
        rc = LK_ENOMEM;
        goto err_free;
    }
    memcpy(r->pipelines, pipelines, sizeof(r->pipelines));
    lk_buf_init(&r->inflated, cfg->max_request_body_size);
    lk_buf_init(&r->decoded, cfg->max_request_body_size);
    lk_buf_init(&r->salvaged, cfg->max_request_body_size);
    lk_buf_init(&r->resp, MAX_RESPONSE_BYTES);
    lk_buf_charge(&r->inflated, LK_MEM_RECEIVERS, true);
    lk_buf_charge(&r->decoded, LK_MEM_RECEIVERS, true);
    lk_buf_charge(&r->salvaged, LK_MEM_RECEIVERS, true);
    lk_inflate_pool_init(&r->inflates, loop);

    snprintf(labels, sizeof(labels), "receiver=\"%s\",transport=\"http\"", name);
    for (int i = 0; i < LK_SIGNAL_COUNT; i++) {
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
    r->mem_refused = lk_metrics_counter(
        m, "lookout_receiver_memory_refusals_total",
        "Requests refused (retryably) because memory_limit was reached.", labels);

    lk_gauge *conns = lk_metrics_gauge(m, "lookout_receiver_connections",
                                       "Open client connections.", labels);
    lk_counter *conns_refused = lk_metrics_counter(
        m, "lookout_receiver_connections_refused_total",
        "Connections closed at once because max_connections was reached.", labels);
    struct lk_httpd_opts o = {
        .handshake_timeout_ms = cfg->handshake_timeout_ms,
        .endpoint = cfg->endpoint,
        .name = name,
        .max_connections = cfg->max_connections,
        .max_header_bytes = (size_t)cfg->max_header_bytes,
        .max_body_bytes = (size_t)cfg->max_request_body_size,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .request_timeout_ms = cfg->read_timeout_ms,
        .connections = conns,
        .connections_refused = conns_refused,
        .on_reject = count_reject,
        .reject_arg = r,
    };
    lk_conn_close_counters(m, "lookout_receiver_connections_closed_total",
                           "Connections the receiver closed on its own, by reason.", labels,
                           o.closed);
    rc = lk_httpd_create(&r->httpd, loop, &o, on_request, r);
    if (rc < 0)
        goto err_free;
    lk_log(LK_LOG_INFO, "otlp http receiver listening",
           LK_S("receiver", name) LK_S("endpoint", cfg->endpoint));
    *out = r;
    return 0;
err_free:
    receiver_free(r);
    return rc;
}

int lk_otlp_http_port(const lk_otlp_http *r)
{
    return lk_httpd_port(r->httpd);
}

static void httpd_closed(void *arg)
{
    lk_otlp_http *r = arg;
    void (*done)(void *) = r->close_done;
    void *done_arg = r->close_arg;
    receiver_free(r);
    if (done != NULL)
        done(done_arg);
}

void lk_otlp_http_update(lk_otlp_http *r, const struct lk_http_receiver_config *cfg,
                         lk_pipeline *const pipelines[LK_SIGNAL_COUNT])
{
    memcpy(r->pipelines, pipelines, sizeof(r->pipelines));
    /* The caps after decompression and JSON decoding follow the body limit.
     * The scratch buffers hold nothing between requests (a body on the
     * thread pool has its own); a request being inflated there keeps the
     * cap it started with. */
    if (r->max_body != cfg->max_request_body_size) {
        r->max_body = cfg->max_request_body_size;
        lk_buf *scratch[] = {&r->inflated, &r->decoded, &r->salvaged};
        for (size_t i = 0; i < sizeof(scratch) / sizeof(scratch[0]); i++) {
            lk_buf_fini(scratch[i]);
            lk_buf_set_max(scratch[i], cfg->max_request_body_size);
        }
    }
    struct lk_httpd_opts o = {
        .handshake_timeout_ms = cfg->handshake_timeout_ms,
        .max_connections = cfg->max_connections,
        .max_header_bytes = (size_t)cfg->max_header_bytes,
        .max_body_bytes = (size_t)cfg->max_request_body_size,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .request_timeout_ms = cfg->read_timeout_ms,
    };
    lk_httpd_set_limits(r->httpd, &o);
}

void lk_otlp_http_close(lk_otlp_http *r, void (*done)(void *arg), void *arg)
{
    r->close_done = done;
    r->close_arg = arg;
    /* The server closes every connection now, and frees nothing (nor calls
     * httpd_closed) before each request it handed out is answered: bodies
     * still waiting for a thread are released at once (their answers are
     * dropped); those on a thread end in inflate_done. */
    lk_httpd_close(r->httpd, httpd_closed, r);
    lk_inflate_pool_cancel_all(&r->inflates);
}
