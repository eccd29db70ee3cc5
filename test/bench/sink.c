/*
 * bench sink: the backend lookout exports to during `make bench`. It receives
 * as fast as it can, counts what arrived and throws it away.
 *
 *   sink --admin ADDR [--grpc ADDR] [--http ADDR] [--loki ADDR]
 *
 * --grpc and --http run lookout's own OTLP receivers (receivers/otlp_grpc,
 * receivers/otlp_http) in front of pipelines without queues, so every valid
 * request is validated, counted in lookout_receiver_accepted_*_total
 * {receiver="sink",transport="grpc"|"http"} and dropped. --loki serves
 * POST /loki/api/v1/push: snappy-compressed protobuf or JSON (gzip allowed)
 * bodies, whose entries are counted in bench_sink_loki_entries_total; on the
 * same listener POST /api/v1/write takes Prometheus remote write (snappy
 * WriteRequest), its samples counted in bench_sink_rw_samples_total. --admin
 * serves every counter on GET /metrics, so the driver polls a single URL.
 *
 * Reusing the agent's modules is deliberate: this is a load generator's
 * counterpart, not an oracle. The agent's correctness is tested against
 * independent peers in test/integration/.
 *
 * SIGTERM or SIGINT closes every listener and exits 0. Exit codes: 0 ok,
 * 2 bad command line, 3 start-up failure (port in use, out of memory).
 */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <snappy-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "admin/admin.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/gzip.h"
#include "core/httpd.h"
#include "core/log.h"
#include "core/platform.h"
#include "core/selfmetrics.h"
#include "pipeline/pipeline.h"
#include "prometheus/prompb/remote.pb-c.h"
#include "receivers/otlp_grpc.h"
#include "receivers/otlp_http.h"

enum {
    EXIT_OK = 0,
    EXIT_USAGE = 2,
    EXIT_STARTUP = 3,
};

#define RECEIVER_NAME "sink"
#define LOKI_PATH "/loki/api/v1/push"
#define RW_PATH "/api/v1/write"

#define MIB (1024u * 1024u)
#define MAX_MSG_BYTES (64 * MIB)     /* gRPC message, HTTP body on the wire */
#define LOKI_MAX_DECODED (256 * MIB) /* a Loki body once uncompressed */
#define MAX_CONNECTIONS 64

struct sink {
    uv_loop_t loop;
    lk_metrics *metrics;
    lk_pipeline *pipelines[LK_SIGNAL_COUNT]; /* no queues: submit drops */
    lk_otlp_grpc *grpc;                      /* NULL when not asked for */
    lk_otlp_http *http;
    lk_httpd *loki;
    lk_admin *admin;
    uv_signal_t sig_int, sig_term;

    lk_counter *loki_entries; /* entries in accepted pushes */
    lk_counter *loki_pushes;  /* pushes answered 204 */
    lk_counter *loki_bytes;   /* body bytes of accepted pushes, as received */
    lk_counter *loki_bad;     /* pushes refused (400, 415, 503) */
    lk_counter *rw_samples;   /* samples in accepted remote write requests */
    lk_buf decoded;           /* a Loki body uncompressed; reused */

    int pending;   /* listeners still closing */
    bool stopping; /* shutdown started */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sink --admin ADDR [--grpc ADDR] [--http ADDR] [--loki ADDR]\n"
            "\n"
            "Benchmark backend for lookout: receives, counts and discards.\n"
            "\n"
            "  --grpc ADDR   OTLP/gRPC (traces, metrics, logs)\n"
            "  --http ADDR   OTLP/HTTP (POST /v1/traces, /v1/metrics, /v1/logs)\n"
            "  --loki ADDR   Loki push API (POST " LOKI_PATH ")\n"
            "  --admin ADDR  GET /metrics with every counter\n"
            "\n"
            "ADDR is host:port, [v6]:port or unix:///path. SIGTERM/SIGINT exit 0.\n");
}

/* --- Loki bodies ---------------------------------------------------------- */

/* Reads a base-128 varint at |*p|. False when it is truncated or longer than
 * ten bytes. */
static bool pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 70 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* Reads one field key. Groups (wire types 3, 4) and field number 0 never
 * occur in proto3 messages and are refused. */
static bool pb_key(const uint8_t **p, const uint8_t *end, uint64_t *field,
                   unsigned *wt)
{
    uint64_t k;
    if (!pb_varint(p, end, &k))
        return false;
    *field = k >> 3;
    *wt = (unsigned)(k & 7);
    return *field != 0 && *wt != 3 && *wt != 4 && *wt <= 5;
}

/* Steps over the value of a field of wire type |wt|. For length-delimited
 * values |*sub| and |*sub_end| are set to the payload. */
static bool pb_value(const uint8_t **p, const uint8_t *end, unsigned wt,
                     const uint8_t **sub, const uint8_t **sub_end)
{
    uint64_t v;
    switch (wt) {
    case 0:
        return pb_varint(p, end, &v);
    case 1:
        if (end - *p < 8)
            return false;
        *p += 8;
        return true;
    case 5:
        if (end - *p < 4)
            return false;
        *p += 4;
        return true;
    case 2:
        if (!pb_varint(p, end, &v) || v > (uint64_t)(end - *p))
            return false;
        *sub = *p;
        *sub_end = *p + v;
        *p += v;
        return true;
    default:
        return false;
    }
}

/* Checks the wire structure of one message without nested ones: every key
 * and value is complete. */
static bool pb_is_well_formed(const uint8_t *p, const uint8_t *end)
{
    const uint8_t *s, *e;
    while (p < end) {
        uint64_t f;
        unsigned wt;
        if (!pb_key(&p, end, &f, &wt) || !pb_value(&p, end, wt, &s, &e))
            return false;
    }
    return true;
}

/* Counts the entries (field 2) of one StreamAdapter. */
static int count_stream(const uint8_t *p, const uint8_t *end, uint64_t *entries)
{
    while (p < end) {
        const uint8_t *s = NULL, *e = NULL;
        uint64_t f;
        unsigned wt;
        if (!pb_key(&p, end, &f, &wt) || !pb_value(&p, end, wt, &s, &e))
            return LK_EPROTO;
        if (f == 2) {
            if (wt != 2 || !pb_is_well_formed(s, e))
                return LK_EPROTO;
            (*entries)++;
        }
    }
    return 0;
}

/*
 * Counts the entries of a logproto.PushRequest (|n| bytes at |p|, already
 * uncompressed): streams (1) -> entries (2). A walk by hand is cheaper than
 * unpacking, which would allocate per entry. Returns 0 or LK_EPROTO.
 */
static int count_push_protobuf(const uint8_t *p, size_t n, uint64_t *entries)
{
    const uint8_t *end = p + n;
    *entries = 0;
    while (p < end) {
        const uint8_t *s = NULL, *e = NULL;
        uint64_t f;
        unsigned wt;
        if (!pb_key(&p, end, &f, &wt) || !pb_value(&p, end, wt, &s, &e))
            return LK_EPROTO;
        if (f == 1) {
            if (wt != 2)
                return LK_EPROTO;
            int rc = count_stream(s, e, entries);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* Counts streams[].values of a Loki JSON push. Returns 0 or LK_EPROTO. */
static int count_push_json(const uint8_t *p, size_t n, uint64_t *entries)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)p, n, 0, &jerr);
    int rc = LK_EPROTO;
    *entries = 0;
    if (root == NULL)
        return LK_EPROTO;
    json_t *streams = json_object_get(root, "streams");
    if (!json_is_array(streams))
        goto out_free_root;
    size_t i;
    json_t *st;
    json_array_foreach(streams, i, st) {
        json_t *values = json_object_get(st, "values");
        if (!json_is_array(values))
            goto out_free_root;
        *entries += json_array_size(values);
    }
    rc = 0;
out_free_root:
    json_decref(root);
    return rc;
}

/* True when the media type of Content-Type |ct| (parameters ignored) is
 * |type|, compared without regard to case. */
static bool media_type_is(const char *ct, const char *type)
{
    size_t n = strlen(type);
    if (ct == NULL || strncasecmp(ct, type, n) != 0)
        return false;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

static void respond_text(lk_httpd_req *req, int status, const char *extra,
                         const char *text)
{
    (void)lk_httpd_respond(req, status, "text/plain; charset=utf-8", extra,
                           text, strlen(text));
}

static void refuse(struct sink *s, lk_httpd_req *req, int status,
                   const char *text)
{
    lk_counter_add(s->loki_bad, 1);
    respond_text(req, status, NULL, text);
}

/* Uncompresses a snappy block into |s->decoded| and counts its entries. */
static int decode_snappy_protobuf(struct sink *s, const uint8_t *body,
                                  size_t len, uint64_t *entries)
{
    size_t n;
    if (snappy_uncompressed_length((const char *)body, len, &n) != SNAPPY_OK)
        return LK_EPROTO;
    if (n > LOKI_MAX_DECODED)
        return LK_E2BIG;
    lk_buf_reset(&s->decoded);
    int rc = lk_buf_reserve(&s->decoded, n);
    if (rc < 0)
        return rc;
    /* snappy writes into the reserved tail; |decoded.len| stays 0 because
     * only this function reads the bytes, as |n| of them. */
    if (snappy_uncompress((const char *)body, len, (char *)s->decoded.data,
                          &n) != SNAPPY_OK)
        return LK_EPROTO;
    return count_push_protobuf(s->decoded.data, n, entries);
}

static int decode_json(struct sink *s, lk_httpd_req *req, const uint8_t *body,
                       size_t len, uint64_t *entries)
{
    const char *enc = lk_httpd_req_header(req, "content-encoding");
    if (enc == NULL || strcasecmp(enc, "identity") == 0)
        return count_push_json(body, len, entries);
    if (strcasecmp(enc, "gzip") != 0)
        return LK_EUNSUPPORTED;
    lk_buf_reset(&s->decoded);
    int rc = lk_gzip_inflate(body, len, LOKI_MAX_DECODED, 0, &s->decoded);
    if (rc < 0)
        return rc;
    return count_push_json(s->decoded.data, s->decoded.len, entries);
}

/* Remote write: a snappy WriteRequest, its samples counted. */
static void on_remote_write(struct sink *s, lk_httpd_req *req)
{
    size_t len, n;
    const uint8_t *body = lk_httpd_req_body(req, &len);
    if (snappy_uncompressed_length((const char *)body, len, &n) != SNAPPY_OK ||
        n > LOKI_MAX_DECODED) {
        respond_text(req, 400, NULL, "not a snappy block\n");
        return;
    }
    lk_buf_reset(&s->decoded);
    if (lk_buf_reserve(&s->decoded, n) < 0 ||
        snappy_uncompress((const char *)body, len, (char *)s->decoded.data, &n) != SNAPPY_OK) {
        respond_text(req, 400, NULL, "not a snappy block\n");
        return;
    }
    Prometheus__WriteRequest *wr = prometheus__write_request__unpack(NULL, n, s->decoded.data);
    if (wr == NULL) {
        respond_text(req, 400, NULL, "not a WriteRequest\n");
        return;
    }
    uint64_t samples = 0;
    for (size_t i = 0; i < wr->n_timeseries; i++)
        samples += wr->timeseries[i]->n_samples;
    prometheus__write_request__free_unpacked(wr, NULL);
    lk_counter_add(s->rw_samples, samples);
    (void)lk_httpd_respond(req, 204, NULL, NULL, NULL, 0);
}

static void on_loki(lk_httpd_req *req, void *arg)
{
    struct sink *s = arg;
    if (strcmp(lk_httpd_req_path(req), RW_PATH) == 0 &&
        strcmp(lk_httpd_req_method(req), "POST") == 0) {
        on_remote_write(s, req);
        return;
    }
    if (strcmp(lk_httpd_req_path(req), LOKI_PATH) != 0) {
        respond_text(req, 404, NULL, "not found\n");
        return;
    }
    if (strcmp(lk_httpd_req_method(req), "POST") != 0) {
        respond_text(req, 405, "Allow: POST\r\n", "method not allowed\n");
        return;
    }

    size_t len;
    const uint8_t *body = lk_httpd_req_body(req, &len);
    const char *ct = lk_httpd_req_header(req, "content-type");
    uint64_t entries = 0;
    int rc;
    if (media_type_is(ct, "application/x-protobuf"))
        rc = decode_snappy_protobuf(s, body, len, &entries);
    else if (media_type_is(ct, "application/json"))
        rc = decode_json(s, req, body, len, &entries);
    else
        rc = LK_EUNSUPPORTED;
    /* One large body should not keep its buffer for the rest of the run. */
    if (s->decoded.cap > 16 * MIB)
        lk_buf_fini(&s->decoded);

    if (rc == LK_EUNSUPPORTED) {
        refuse(s, req, 415, "content type or encoding not supported\n");
        return;
    }
    if (rc == LK_ENOMEM) {
        refuse(s, req, 503, "out of memory\n");
        return;
    }
    if (rc < 0) {
        refuse(s, req, 400, "body does not decode\n");
        return;
    }
    lk_counter_add(s->loki_entries, entries);
    lk_counter_add(s->loki_pushes, 1);
    lk_counter_add(s->loki_bytes, len);
    (void)lk_httpd_respond(req, 204, NULL, NULL, NULL, 0);
}

/* --- start and stop -------------------------------------------------------- */

static void one_closed(void *arg)
{
    struct sink *s = arg;
    if (--s->pending > 0)
        return;
    /* Every listener is gone: the signal handles are the last ones. */
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
}

/* Closes whatever was started; the loop then runs out of handles. */
static void stop(struct sink *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    s->pending = 1; /* held until every close below is under way */
    if (s->grpc != NULL) {
        s->pending++;
        lk_otlp_grpc_close(s->grpc, one_closed, s);
        s->grpc = NULL;
    }
    if (s->http != NULL) {
        s->pending++;
        lk_otlp_http_close(s->http, one_closed, s);
        s->http = NULL;
    }
    if (s->loki != NULL) {
        s->pending++;
        lk_httpd_close(s->loki, one_closed, s);
        s->loki = NULL;
    }
    if (s->admin != NULL) {
        s->pending++;
        lk_admin_close(s->admin, one_closed, s);
        s->admin = NULL;
    }
    one_closed(s);
}

static void on_signal(uv_signal_t *h, int signum)
{
    stop(h->data);
}

static void register_loki_metrics(struct sink *s)
{
    s->loki_entries = lk_metrics_counter(
        s->metrics, "bench_sink_loki_entries_total",
        "Log entries in Loki pushes answered 204.", "");
    s->loki_pushes = lk_metrics_counter(s->metrics, "bench_sink_loki_pushes_total",
                                        "Loki pushes answered 204.", "");
    s->loki_bytes = lk_metrics_counter(
        s->metrics, "bench_sink_loki_bytes_total",
        "Body bytes of Loki pushes answered 204, as sent (compressed).", "");
    s->loki_bad = lk_metrics_counter(
        s->metrics, "bench_sink_loki_bad_total",
        "Loki pushes refused: body does not decode (400), unsupported content "
        "type or encoding (415), or out of memory (503).",
        "");
    s->rw_samples = lk_metrics_counter(s->metrics, "bench_sink_rw_samples_total",
                                       "Samples in remote write requests answered 204.", "");
}

struct endpoints {
    const char *grpc, *http, *loki, *admin; /* NULL: not served */
};

static int start(struct sink *s, const struct endpoints *ep)
{
    int rc;
    /* lk_pipeline_create copies |n| queue pointers: with n = 0 nothing is
     * read, but the pointer handed to memcpy must still be valid. */
    lk_queue *none[1] = {NULL};

    s->metrics = lk_metrics_create();
    if (s->metrics == NULL)
        return LK_ENOMEM;
    lk_platform_register_process_metrics(s->metrics);
    register_loki_metrics(s);
    lk_buf_init(&s->decoded, LOKI_MAX_DECODED);
    for (int i = 0; i < LK_SIGNAL_COUNT; i++) {
        rc = lk_pipeline_create(&s->pipelines[i], (enum lk_signal)i, none, 0);
        if (rc < 0)
            return rc;
    }

    s->sig_int.data = s;
    s->sig_term.data = s;
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);

    rc = lk_admin_start(&s->admin, &s->loop, ep->admin, s->metrics);
    if (rc < 0)
        return rc;
    if (ep->grpc != NULL) {
        struct lk_grpc_receiver_config g = {
            .enabled = true,
            .endpoint = (char *)ep->grpc,
            .max_recv_msg_size = MAX_MSG_BYTES,
            .max_concurrent_streams = 100,
            .max_connections = MAX_CONNECTIONS,
            .idle_timeout_ms = 0, /* never close an idle exporter connection */
        };
        rc = lk_otlp_grpc_start(&s->grpc, &s->loop, RECEIVER_NAME, &g,
                                s->pipelines, s->metrics);
        if (rc < 0)
            return rc;
    }
    if (ep->http != NULL) {
        struct lk_http_receiver_config h = {
            .enabled = true,
            .endpoint = (char *)ep->http,
            .max_request_body_size = MAX_MSG_BYTES,
            .max_connections = MAX_CONNECTIONS,
            .max_header_bytes = 64 * 1024,
            .idle_timeout_ms = 600000, /* longer than any bench run's pause */
            .read_timeout_ms = 60000,
        };
        rc = lk_otlp_http_start(&s->http, &s->loop, RECEIVER_NAME, &h,
                                s->pipelines, s->metrics);
        if (rc < 0)
            return rc;
    }
    if (ep->loki != NULL) {
        struct lk_httpd_opts o = {
            .endpoint = ep->loki,
            .name = "loki",
            .max_connections = MAX_CONNECTIONS,
            .max_body_bytes = MAX_MSG_BYTES,
            .idle_timeout_ms = 600000,
            .request_timeout_ms = 60000,
        };
        rc = lk_httpd_create(&s->loki, &s->loop, &o, on_loki, s);
        if (rc < 0)
            return rc;
    }
    lk_admin_set_ready(s->admin, true);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"grpc", required_argument, NULL, 'g'},
        {"http", required_argument, NULL, 't'},
        {"loki", required_argument, NULL, 'l'},
        {"admin", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct endpoints ep = {0};
    int ch;

    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'g':
            ep.grpc = optarg;
            break;
        case 't':
            ep.http = optarg;
            break;
        case 'l':
            ep.loki = optarg;
            break;
        case 'a':
            ep.admin = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc || ep.admin == NULL) {
        usage(stderr);
        return EXIT_USAGE;
    }

    /* libuv writes with writev(): a client that resets its connection
     * mid-response must not kill the sink. */
    signal(SIGPIPE, SIG_IGN);
    lk_log_level_set(LK_LOG_WARN);

    struct sink s = {0};
    int code = EXIT_OK;
    if (uv_loop_init(&s.loop) != 0)
        return EXIT_STARTUP;
    /* Initialised first, so that stop() always has them to close. */
    uv_signal_init(&s.loop, &s.sig_int);
    uv_signal_init(&s.loop, &s.sig_term);
    int rc = start(&s, &ep);
    if (rc < 0) {
        lk_log(LK_LOG_ERROR, "bench sink: start-up failed",
               LK_S("error", lk_strerror(rc)));
        code = EXIT_STARTUP;
        stop(&s);
    }
    uv_run(&s.loop, UV_RUN_DEFAULT);

    for (int i = 0; i < LK_SIGNAL_COUNT; i++)
        lk_pipeline_destroy(s.pipelines[i]);
    lk_buf_fini(&s.decoded);
    lk_metrics_destroy(s.metrics);
    if (uv_loop_close(&s.loop) != 0)
        lk_log(LK_LOG_WARN, "bench sink: loop closed with handles still open");
    return code;
}
