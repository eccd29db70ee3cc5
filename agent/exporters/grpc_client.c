/*
 * Unary gRPC client over gRPC C core, bridged into the libuv loop.
 *
 * Every call into gRPC C core in the agent lives in this file. Its C API moves
 * between minor releases (Debian 12 ships 1.51, Homebrew a much newer one) and
 * C core has no version macro of its own, so anything that is not in both is
 * guarded by the presence of the macro that names it.
 *
 * Threads. The loop thread owns the client and every call. Calls are created
 * and started on the loop thread (grpc_channel_create_call and
 * grpc_call_start_batch are thread-safe, and each call gets a single batch).
 * The poller thread blocks in grpc_completion_queue_next(), appends each
 * finished call to |done_head| under |lock| and wakes the loop with
 * uv_async_send; it touches nothing else. The loop reads the results, runs the
 * user's callback and releases the call.
 *
 * Start. Nothing of gRPC runs until the first call: lk_grpc_client_create
 * checks the options and reads the TLS files, and the first
 * lk_grpc_client_call takes this client's grpc_init reference (which starts
 * gRPC's own threads) and creates the channel, the completion queue and the
 * poller. An exporter that never sends costs no thread and no gRPC memory.
 *
 * Compression. With |gzip|, the caller hands over messages it compressed
 * itself (off the loop for large ones, at its own level): they go in a byte
 * buffer marked as gzip'd, which gRPC core sends as it is, with the
 * compressed flag and the channel's grpc-encoding: gzip, instead of
 * deflating it again on the thread that starts the call (the loop).
 *
 * Close. lk_grpc_client_close cancels the calls in flight, destroys the channel
 * and shuts the completion queue down. The queue reports GRPC_QUEUE_SHUTDOWN
 * only after every started batch has completed, so when the poller sees it,
 * every call has been handed over; the poller then flags it and exits. The
 * loop joins it, destroys the queue, closes the async handle, and drops this
 * client's grpc_init reference on the libuv thread pool (the last
 * grpc_shutdown joins gRPC's own threads, which the loop must not wait for)
 * before it runs the user's done callback.
 */
#include "exporters/grpc_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/compression.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/status.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "core/err.h"
#include "core/log.h"

#define MAX_RECV_MSG_BYTES (4 * 1024 * 1024) /* bytes, one response message */
#define KEEPALIVE_TIME_MS 300000 /* Go gRPC servers (Jaeger) refuse pings more often than every 5 min */
#define KEEPALIVE_TIMEOUT_MS 10000
/* ms; a backend that comes back is seen this soon (gRPC's default: 120 s). */
#define MAX_RECONNECT_BACKOFF_MS 5000
#define MAX_PEM_BYTES (1024 * 1024)
#define POLLER_STACK_BYTES (8 * 1024 * 1024)
/* ms; longer timeouts are clamped so deadline arithmetic cannot overflow. */
#define MAX_TIMEOUT_MS (UINT64_C(10) * 365 * 24 * 3600 * 1000)

#define STATUS_DETAILS_KEY "grpc-status-details-bin"

struct call {
    struct call *prev, *next; /* c->calls; loop thread only */
    struct call *done_next;   /* c->done_head; under c->lock */
    lk_grpc_client *c;
    grpc_call *call;
    grpc_byte_buffer *request;
    grpc_byte_buffer *response; /* NULL if the server sent no message */
    grpc_metadata_array initial_md;
    grpc_metadata_array trailing_md;
    grpc_status_code status;
    grpc_slice details;
    const char *error_string; /* gRPC's debug text, gpr_malloc'd; may be NULL */
    bool batch_ok;            /* set by the poller */
    lk_grpc_call_cb cb;
    void *arg;
    char method[]; /* for logs */
};

struct lk_grpc_client {
    uv_loop_t *loop;
    uv_async_t async;
    uv_work_t shutdown_work;
    grpc_channel *channel; /* NULL until started and once close started */
    grpc_completion_queue *cq;
    uv_thread_t poller;
    char *target;      /* for logs, and the channel's */
    char *user_agent;  /* or NULL */
    grpc_metadata *md; /* headers; the slices are ours */
    size_t nmd;
    bool gzip;       /* messages come gzip'd (lk_grpc_client_opts) */
    bool tls;        /* the PEM texts below (each may be NULL) */
    char *ca_pem;    /* kept from create to the start; wiped when freed */
    char *cert_pem;
    char *key_pem;
    struct call *calls; /* in flight; loop thread only */
    bool started;       /* grpc_init, the channel, the queue and the poller */
    bool closing;
    bool drained; /* loop side: the poller is gone */
    void (*done)(void *arg);
    void *done_arg;

    uv_mutex_t lock; /* guards the fields below */
    struct call *done_head;
    struct call **done_tail;
    bool cq_shutdown; /* the poller saw GRPC_QUEUE_SHUTDOWN and exits */
};

/* ---- google.rpc.Status reader ----------------------------------------- */

/* A bounded protobuf reader: every read checks |end| first. */
struct pb {
    const uint8_t *p;
    const uint8_t *end;
};

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

static bool pb_varint(struct pb *r, uint64_t *out)
{
    uint64_t v = 0;

    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->p == r->end)
            return false;
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return true;
        }
    }
    return false; /* more than 10 bytes */
}

/*
 * Reads one field. For PB_LEN, |*sub| is set to the payload; for PB_VARINT,
 * |*val| holds the value; fixed-width payloads are skipped. Returns false on
 * truncated or invalid input.
 */
static bool pb_field(struct pb *r, uint32_t *num, unsigned *wt, uint64_t *val,
                     struct pb *sub)
{
    uint64_t key, len;

    if (!pb_varint(r, &key))
        return false;
    *num = (uint32_t)(key >> 3);
    *wt = (unsigned)(key & 7);
    if (*num == 0 || (key >> 3) > UINT32_MAX)
        return false;
    switch (*wt) {
    case PB_VARINT:
        return pb_varint(r, val);
    case PB_I64:
        if (r->end - r->p < 8)
            return false;
        r->p += 8;
        return true;
    case PB_I32:
        if (r->end - r->p < 4)
            return false;
        r->p += 4;
        return true;
    case PB_LEN:
        if (!pb_varint(r, &len) || len > (uint64_t)(r->end - r->p))
            return false;
        sub->p = r->p;
        sub->end = r->p + len;
        r->p += len;
        return true;
    default: /* groups are not used by these messages */
        return false;
    }
}

static bool is_retry_info_type(const struct pb *url)
{
    static const char name[] = "google.rpc.RetryInfo";
    size_t n = sizeof(name) - 1;
    size_t len = (size_t)(url->end - url->p);

    if (len < n || memcmp(url->end - n, name, n) != 0)
        return false;
    /* "type.googleapis.com/google.rpc.RetryInfo", or the bare name. */
    return len == n || url->end[-(ptrdiff_t)n - 1] == '/';
}

/* google.protobuf.Duration { int64 seconds = 1; int32 nanos = 2; } -> ms. */
static bool duration_ms(struct pb r, int64_t *out)
{
    int64_t seconds = 0;
    int32_t nanos = 0;

    while (r.p < r.end) {
        uint32_t num;
        unsigned wt;
        uint64_t v = 0;
        struct pb sub;

        if (!pb_field(&r, &num, &wt, &v, &sub))
            return false;
        if (num == 1 && wt == PB_VARINT)
            seconds = (int64_t)v;
        else if (num == 2 && wt == PB_VARINT)
            nanos = (int32_t)(uint32_t)v; /* protobuf truncates int32 */
        else if (num <= 2)
            return false;
    }
    if (seconds < 0 || (seconds == 0 && nanos <= 0)) {
        *out = 0;
        return true;
    }
    if (seconds > INT64_MAX / 1000 - 1) {
        *out = INT64_MAX;
        return true;
    }
    /* Round up: a server that asks for 1.0001 s should not be hit at 1 s. */
    int64_t ms = seconds * 1000;
    if (nanos > 0)
        ms += ((int64_t)nanos + 999999) / 1000000;
    else
        ms += (int64_t)nanos / 1000000;
    *out = ms < 0 ? 0 : ms;
    return true;
}

/*
 * google.rpc.RetryInfo { google.protobuf.Duration retry_delay = 1; }
 * Returns 1 with |*out| set, 0 if retry_delay is absent, -1 if malformed.
 */
static int retry_info_ms(struct pb r, int64_t *out)
{
    int found = 0;

    while (r.p < r.end) {
        uint32_t num;
        unsigned wt;
        uint64_t v;
        struct pb sub;

        if (!pb_field(&r, &num, &wt, &v, &sub))
            return -1;
        if (num != 1)
            continue;
        if (wt != PB_LEN || !duration_ms(sub, out))
            return -1;
        found = 1;
    }
    return found;
}

int64_t lk__grpc_status_retry_after_ms(const uint8_t *p, size_t len)
{
    struct pb r;
    int64_t result = -1;

    if (p == NULL)
        return -1;
    r.p = p;
    r.end = p + len;
    /* google.rpc.Status { int32 code = 1; string message = 2;
     *                     repeated google.protobuf.Any details = 3; } */
    while (r.p < r.end) {
        uint32_t num;
        unsigned wt;
        uint64_t v;
        struct pb any;

        if (!pb_field(&r, &num, &wt, &v, &any))
            return -1;
        if (num != 3)
            continue;
        if (wt != PB_LEN)
            return -1;
        /* google.protobuf.Any { string type_url = 1; bytes value = 2; } */
        struct pb url = {NULL, NULL}, value = {NULL, NULL};
        bool have_url = false, have_value = false;
        while (any.p < any.end) {
            struct pb sub;
            if (!pb_field(&any, &num, &wt, &v, &sub))
                return -1;
            if (num == 1 || num == 2) {
                if (wt != PB_LEN)
                    return -1;
                if (num == 1) {
                    url = sub;
                    have_url = true;
                } else {
                    value = sub;
                    have_value = true;
                }
            }
        }
        if (result >= 0 || !have_url || !is_retry_info_type(&url))
            continue;
        if (!have_value) {
            value.p = url.end; /* empty RetryInfo */
            value.end = url.end;
        }
        int64_t ms;
        int found = retry_info_ms(value, &ms);
        if (found < 0)
            return -1;
        if (found > 0)
            result = ms;
    }
    return result;
}

/* ---- helpers ---------------------------------------------------------- */

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;

    while (n-- > 0)
        *v++ = 0;
}

static void free_secret(char *s)
{
    if (s != NULL) {
        wipe(s, strlen(s));
        free(s);
    }
}

/* Reads |path| whole into a NUL-terminated string (what gRPC wants for PEM). */
static int read_pem(const char *path, const char *what, char **out)
{
    FILE *f;
    char *data = NULL;
    size_t len = 0, cap = 0;
    int rc = LK_EIO;

    f = fopen(path, "rb");
    if (f == NULL) {
        lk_log(LK_LOG_ERROR, "grpc client: cannot read TLS file",
               LK_S("file", path) LK_S("what", what)
                   LK_S("error", strerror(errno)));
        return LK_EIO;
    }
    for (;;) {
        if (cap - len < 4096 + 1) {
            if (cap >= MAX_PEM_BYTES) {
                lk_log(LK_LOG_ERROR, "grpc client: TLS file too large",
                       LK_S("file", path) LK_S("what", what)
                           LK_U("max_bytes", MAX_PEM_BYTES));
                goto err;
            }
            size_t ncap = cap == 0 ? 16384 : cap * 2;
            char *n = malloc(ncap);
            if (n == NULL) {
                rc = LK_ENOMEM;
                goto err;
            }
            if (data != NULL) {
                memcpy(n, data, len);
                wipe(data, len);
                free(data);
            }
            data = n;
            cap = ncap;
        }
        size_t got = fread(data + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                lk_log(LK_LOG_ERROR, "grpc client: cannot read TLS file",
                       LK_S("file", path) LK_S("what", what)
                           LK_S("error", strerror(errno)));
                goto err;
            }
            break;
        }
    }
    fclose(f);
    data[len] = '\0';
    /* gRPC takes any text and fails only later, in each connection attempt,
     * as UNAVAILABLE ("empty address list") that looks retryable forever. */
    if (strlen(data) != len || strstr(data, "-----BEGIN ") == NULL) {
        lk_log(LK_LOG_ERROR, "grpc client: TLS file holds no PEM block",
               LK_S("file", path) LK_S("what", what));
        free_secret(data);
        return LK_EINVAL;
    }
    *out = data;
    return 0;
err:
    fclose(f);
    if (data != NULL) {
        wipe(data, len);
        free(data);
    }
    return rc;
}

static grpc_arg int_arg(const char *key, int value)
{
    grpc_arg a;

    memset(&a, 0, sizeof(a));
    a.type = GRPC_ARG_INTEGER;
    a.key = (char *)key;
    a.value.integer = value;
    return a;
}

static grpc_arg str_arg(const char *key, const char *value)
{
    grpc_arg a;

    memset(&a, 0, sizeof(a));
    a.type = GRPC_ARG_STRING;
    a.key = (char *)key;
    a.value.string = (char *)value;
    return a;
}

static void free_metadata(grpc_metadata *md, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        grpc_slice_unref(md[i].key);
        grpc_slice_unref(md[i].value);
    }
    free(md);
}

/* HTTP/2 wants lower-case field names; gRPC refuses anything else. */
static int build_metadata(const struct lk_header *h, size_t n,
                          grpc_metadata **out)
{
    grpc_metadata *md;
    size_t i;

    *out = NULL;
    if (n == 0)
        return 0;
    md = calloc(n, sizeof(*md));
    if (md == NULL)
        return LK_ENOMEM;
    for (i = 0; i < n; i++) {
        size_t len = h[i].name != NULL ? strlen(h[i].name) : 0;
        char *name = malloc(len + 1);
        if (name == NULL)
            goto err_nomem;
        for (size_t j = 0; j < len; j++) {
            char ch = h[i].name[j];
            name[j] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
        }
        name[len] = '\0';
        md[i].key = grpc_slice_from_copied_buffer(name, len);
        free(name);
        md[i].value =
            grpc_slice_from_copied_string(h[i].value ? h[i].value : "");
        if (len == 0 || !grpc_header_key_is_legal(md[i].key) ||
            (!grpc_is_binary_header(md[i].key) &&
             !grpc_header_nonbin_value_is_legal(md[i].value))) {
            lk_log(LK_LOG_ERROR,
                   "grpc client: header not allowed in gRPC metadata",
                   LK_S("header", h[i].name));
            free_metadata(md, i + 1);
            return LK_EINVAL;
        }
    }
    *out = md;
    return 0;
err_nomem:
    free_metadata(md, i);
    return LK_ENOMEM;
}

static void free_pems(lk_grpc_client *c)
{
    free(c->ca_pem);
    free(c->cert_pem);
    free_secret(c->key_pem);
    c->ca_pem = c->cert_pem = c->key_pem = NULL;
}

/* Reads the TLS files of |tls| into |c| (the channel is created later). */
static int read_tls_files(const struct lk_tls_config *tls, lk_grpc_client *c)
{
    int rc = 0;

    if (tls == NULL || !tls->enabled)
        return 0;
    c->tls = true;
    if (tls->ca_file != NULL)
        rc = read_pem(tls->ca_file, "ca_file", &c->ca_pem);
    if (rc == 0 && tls->cert_file != NULL)
        rc = read_pem(tls->cert_file, "cert_file", &c->cert_pem);
    if (rc == 0 && tls->key_file != NULL)
        rc = read_pem(tls->key_file, "key_file", &c->key_pem);
    if (rc < 0)
        free_pems(c);
    return rc;
}

static grpc_channel_credentials *make_credentials(const lk_grpc_client *c,
                                                  int *rc)
{
    grpc_channel_credentials *creds;

    if (!c->tls) {
        creds = grpc_insecure_credentials_create();
        *rc = creds != NULL ? 0 : LK_ENOMEM;
        return creds;
    }
    grpc_ssl_pem_key_cert_pair pair = {.private_key = c->key_pem,
                                       .cert_chain = c->cert_pem};
    /* NULL roots: gRPC's defaults (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, or the
     * roots.pem installed with gRPC). The PEM texts are copied. */
    creds = grpc_ssl_credentials_create(
        c->ca_pem, c->key_pem != NULL ? &pair : NULL, NULL, NULL);
    *rc = 0;
    if (creds == NULL) {
        lk_log(LK_LOG_ERROR, "grpc client: TLS credentials rejected by gRPC",
               LK_S("target", c->target));
        *rc = LK_EINVAL;
    }
    return creds;
}

static void drain_cq(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (
        grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
            .type != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

/* ---- poller thread ---------------------------------------------------- */

static void poller_main(void *arg)
{
    lk_grpc_client *c = arg;

    for (;;) {
        grpc_event ev = grpc_completion_queue_next(
            c->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        bool last = false;

        if (ev.type == GRPC_QUEUE_TIMEOUT)
            continue;
        uv_mutex_lock(&c->lock);
        if (ev.type == GRPC_OP_COMPLETE) {
            struct call *k = ev.tag;
            k->batch_ok = ev.success != 0;
            k->done_next = NULL;
            *c->done_tail = k;
            c->done_tail = &k->done_next;
        } else {
            c->cq_shutdown = true;
            last = true;
        }
        uv_mutex_unlock(&c->lock);
        /* The loop joins this thread before it closes the handle, so the
         * handle is alive for this last send too. */
        uv_async_send(&c->async);
        if (last)
            return;
    }
}

/* ---- loop thread ------------------------------------------------------ */

static void call_free(struct call *k)
{
    grpc_metadata_array_destroy(&k->initial_md);
    grpc_metadata_array_destroy(&k->trailing_md);
    if (k->request != NULL)
        grpc_byte_buffer_destroy(k->request);
    if (k->response != NULL)
        grpc_byte_buffer_destroy(k->response);
    grpc_slice_unref(k->details);
    if (k->error_string != NULL)
        gpr_free((void *)k->error_string);
    if (k->call != NULL)
        grpc_call_unref(k->call);
    free(k);
}

static void finish_call(lk_grpc_client *c, struct call *k)
{
    struct lk_grpc_result r = {
        .status = (int)k->status, .message = "", .retry_after_ms = -1};
    grpc_slice resp = grpc_empty_slice();
    char *msg = NULL;

    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        c->calls = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;

    if (!k->batch_ok) {
        /* A client batch that holds RECV_STATUS_ON_CLIENT should always
         * succeed, the failure being in the status; be safe anyway. */
        r.status = GRPC_STATUS_INTERNAL;
        r.message = "gRPC batch failed";
    } else {
        size_t n = GRPC_SLICE_LENGTH(k->details);
        if (n > 0 && (msg = malloc(n + 1)) != NULL) {
            memcpy(msg, GRPC_SLICE_START_PTR(k->details), n);
            msg[n] = '\0';
            r.message = msg;
        }
        /* gRPC has already base64-decoded the -bin value. */
        for (size_t i = 0; i < k->trailing_md.count; i++) {
            const grpc_metadata *m = &k->trailing_md.metadata[i];
            if (grpc_slice_str_cmp(m->key, STATUS_DETAILS_KEY) == 0) {
                r.retry_after_ms = lk__grpc_status_retry_after_ms(
                    GRPC_SLICE_START_PTR(m->value),
                    GRPC_SLICE_LENGTH(m->value));
                break;
            }
        }
        if (r.status == GRPC_STATUS_OK) {
            grpc_byte_buffer_reader reader;
            if (k->response == NULL) {
                r.status = GRPC_STATUS_INTERNAL;
                r.message = "no response message";
            } else if (!grpc_byte_buffer_reader_init(&reader, k->response)) {
                r.status = GRPC_STATUS_INTERNAL;
                r.message = "cannot read the response message";
            } else {
                resp = grpc_byte_buffer_reader_readall(&reader);
                grpc_byte_buffer_reader_destroy(&reader);
                r.response = GRPC_SLICE_START_PTR(resp);
                r.response_len = GRPC_SLICE_LENGTH(resp);
            }
        }
    }
    if (r.status != GRPC_STATUS_OK)
        lk_log(LK_LOG_DEBUG, "grpc call failed",
               LK_S("target", c->target) LK_S("method", k->method)
                   LK_I("status", r.status) LK_S("message", r.message)
                       LK_S("error", k->error_string)
                           LK_I("retry_after_ms", r.retry_after_ms));
    k->cb(k->arg, &r);
    grpc_slice_unref(resp);
    free(msg);
    call_free(k);
}

static void after_grpc_shutdown(uv_work_t *w, int status)
{
    lk_grpc_client *c = w->data;
    void (*done)(void *) = c->done;
    void *arg = c->done_arg;

    free(c);
    if (done != NULL)
        done(arg);
}

static void do_grpc_shutdown(uv_work_t *w)
{
    grpc_shutdown();
}

static void on_async_closed(uv_handle_t *h)
{
    lk_grpc_client *c = h->data;

    free_metadata(c->md, c->nmd);
    c->md = NULL;
    free(c->target);
    c->target = NULL;
    free(c->user_agent);
    c->user_agent = NULL;
    free_pems(c);
    uv_mutex_destroy(&c->lock);
    c->shutdown_work.data = c;
    if (!c->started) {
        /* No gRPC reference to drop: this client never called. */
        after_grpc_shutdown(&c->shutdown_work, 0);
        return;
    }
    if (uv_queue_work(c->loop, &c->shutdown_work, do_grpc_shutdown,
                      after_grpc_shutdown) != 0) {
        grpc_shutdown();
        after_grpc_shutdown(&c->shutdown_work, 0);
    }
}

static void on_async(uv_async_t *h)
{
    lk_grpc_client *c = h->data;
    struct call *list;
    bool shutdown;

    if (c->drained)
        return;
    uv_mutex_lock(&c->lock);
    list = c->done_head;
    c->done_head = NULL;
    c->done_tail = &c->done_head;
    shutdown = c->cq_shutdown;
    uv_mutex_unlock(&c->lock);

    while (list != NULL) {
        struct call *k = list;
        list = k->done_next;
        finish_call(c, k); /* may call lk_grpc_client_call or _close */
    }
    /* The shutdown event comes after every completion, so nothing is left. */
    if (shutdown) {
        c->drained = true;
        uv_thread_join(&c->poller);
        grpc_completion_queue_destroy(c->cq);
        c->cq = NULL;
        uv_close((uv_handle_t *)&c->async, on_async_closed);
    }
}

/*
 * The first call's part of the set-up: this client's grpc_init reference,
 * the channel, the completion queue and the poller thread. On failure,
 * everything it did is undone and the next call tries again.
 */
static int client_start(lk_grpc_client *c)
{
    grpc_channel_credentials *creds;
    grpc_arg args[12];
    grpc_channel_args chargs;
    size_t nargs = 0;
    int rc;

    grpc_init();
    creds = make_credentials(c, &rc);
    if (creds == NULL)
        goto err_grpc;

    args[nargs++] = int_arg(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, -1);
    args[nargs++] =
        int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, MAX_RECV_MSG_BYTES);
    args[nargs++] = int_arg(GRPC_ARG_KEEPALIVE_TIME_MS, KEEPALIVE_TIME_MS);
    args[nargs++] =
        int_arg(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, KEEPALIVE_TIMEOUT_MS);
    args[nargs++] = int_arg(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
    args[nargs++] =
        int_arg(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, MAX_RECONNECT_BACKOFF_MS);
#ifdef GRPC_ARG_ENABLE_RETRIES
    /* The exporter retries with its own backoff and RetryInfo. */
    args[nargs++] = int_arg(GRPC_ARG_ENABLE_RETRIES, 0);
#endif
    if (c->user_agent != NULL)
        args[nargs++] =
            str_arg(GRPC_ARG_PRIMARY_USER_AGENT_STRING, c->user_agent);
    /* What puts grpc-encoding: gzip on every call. The messages themselves
     * come compressed (lk_grpc_client_call), so the compression filter
     * passes them through. */
    if (c->gzip)
        args[nargs++] = int_arg(GRPC_COMPRESSION_CHANNEL_DEFAULT_ALGORITHM,
                                GRPC_COMPRESS_GZIP);
    chargs.num_args = nargs;
    chargs.args = args;

    c->channel = grpc_channel_create(c->target, creds, &chargs);
    grpc_channel_credentials_release(creds); /* the channel holds its own ref */
    if (c->channel == NULL) {
        rc = LK_ENOMEM;
        goto err_grpc;
    }
    c->cq = grpc_completion_queue_create_for_next(NULL);
    if (c->cq == NULL) {
        rc = LK_ENOMEM;
        goto err_channel;
    }
    /* gRPC runs its own work (I/O, TLS handshakes) on the thread that waits in
     * grpc_completion_queue_next, so give it a main-thread-sized stack rather
     * than a platform default that can be 512 KiB (macOS). */
    uv_thread_options_t topts = {.flags = UV_THREAD_HAS_STACK_SIZE,
                                 .stack_size = POLLER_STACK_BYTES};
    rc = uv_thread_create_ex(&c->poller, &topts, poller_main, c);
    if (rc != 0) {
        lk_log(LK_LOG_ERROR, "grpc client: cannot start the poller thread",
               LK_S("target", c->target) LK_S("error", uv_strerror(rc)));
        rc = LK_ESYS;
        goto err_cq;
    }
    c->started = true;
    free_pems(c); /* the credentials hold their own copies */
    lk_log(LK_LOG_DEBUG, "grpc client: channel created",
           LK_S("target", c->target));
    return 0;

err_cq:
    drain_cq(c->cq);
    c->cq = NULL;
err_channel:
    grpc_channel_destroy(c->channel);
    c->channel = NULL;
err_grpc:
    grpc_shutdown();
    return rc;
}

int lk_grpc_client_create(lk_grpc_client **out, uv_loop_t *loop,
                          const struct lk_grpc_client_opts *o)
{
    lk_grpc_client *c;
    int rc;

    *out = NULL;
    if (o->target == NULL || o->target[0] == '\0') {
        lk_log(LK_LOG_ERROR, "grpc client: no target");
        return LK_EINVAL;
    }
    if (o->tls != NULL && o->tls->enabled) {
        if (o->tls->insecure_skip_verify) {
            /* gRPC 1.51 can skip verification only through its experimental
             * grpc_tls_credentials_options API, which is not stable across
             * the releases we build against. */
            lk_log(LK_LOG_ERROR,
                   "grpc client: tls.insecure_skip_verify is not supported; "
                   "set tls.ca_file to the server's CA instead",
                   LK_S("target", o->target));
            return LK_EUNSUPPORTED;
        }
        if ((o->tls->cert_file == NULL) != (o->tls->key_file == NULL)) {
            lk_log(LK_LOG_ERROR,
                   "grpc client: tls.cert_file and tls.key_file go together",
                   LK_S("target", o->target));
            return LK_EINVAL;
        }
    }

    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return LK_ENOMEM;
    c->loop = loop;
    c->done_tail = &c->done_head;
    c->gzip = o->gzip;
    c->target = strdup(o->target);
    if (c->target == NULL) {
        rc = LK_ENOMEM;
        goto err_free;
    }
    if (o->user_agent != NULL &&
        (c->user_agent = strdup(o->user_agent)) == NULL) {
        rc = LK_ENOMEM;
        goto err_free;
    }
    /* Slices and these checks need no grpc_init. */
    rc = build_metadata(o->headers, o->nheaders, &c->md);
    if (rc < 0)
        goto err_free;
    c->nmd = o->nheaders;
    rc = read_tls_files(o->tls, c);
    if (rc < 0)
        goto err_md;
    if (uv_mutex_init(&c->lock) != 0) {
        rc = LK_ESYS;
        goto err_pems;
    }
    rc = uv_async_init(loop, &c->async, on_async);
    if (rc != 0) {
        lk_log(LK_LOG_ERROR, "grpc client: uv_async_init failed",
               LK_S("error", uv_strerror(rc)));
        rc = LK_ESYS;
        goto err_mutex;
    }
    c->async.data = c;
    *out = c;
    return 0;

err_mutex:
    uv_mutex_destroy(&c->lock);
err_pems:
    free_pems(c);
err_md:
    free_metadata(c->md, c->nmd);
err_free:
    free(c->user_agent);
    free(c->target);
    free(c);
    return rc;
}

int lk_grpc_client_call(lk_grpc_client *c, const char *method,
                        const struct iovec *iov, size_t iovcnt,
                        uint64_t timeout_ms, lk_grpc_call_cb cb, void *arg)
{
    struct call *k;
    size_t mlen, total = 0;
    grpc_slice slice;
    gpr_timespec deadline;
    grpc_op ops[6];
    grpc_call_error err;

    if (c->closing)
        return LK_ECLOSED;
    if (method == NULL || method[0] != '/')
        return LK_EINVAL;
    for (size_t i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > SIZE_MAX - total)
            return LK_EINVAL;
        total += iov[i].iov_len;
    }
    if (!c->started) {
        int rc = client_start(c);
        if (rc < 0)
            return rc;
    }
    mlen = strlen(method);
    k = calloc(1, sizeof(*k) + mlen + 1);
    if (k == NULL)
        return LK_ENOMEM;
    memcpy(k->method, method, mlen + 1);
    k->c = c;
    k->cb = cb;
    k->arg = arg;
    k->details = grpc_empty_slice();
    grpc_metadata_array_init(&k->initial_md);
    grpc_metadata_array_init(&k->trailing_md);

    if (total == 0) {
        slice = grpc_empty_slice();
    } else {
        /* Our own malloc, so that a large request that does not fit fails
         * with LK_ENOMEM instead of gpr_malloc's abort(). */
        uint8_t *body = malloc(total), *p = body;
        if (body == NULL) {
            call_free(k);
            return LK_ENOMEM;
        }
        for (size_t i = 0; i < iovcnt; i++) {
            if (iov[i].iov_len > 0)
                memcpy(p, iov[i].iov_base, iov[i].iov_len);
            p += iov[i].iov_len;
        }
        slice = grpc_slice_new(body, total, free);
    }
    /* A buffer marked as compressed is sent as it is, with the compressed
     * flag set (GRPC_WRITE_INTERNAL_COMPRESS in call.cc). An empty message
     * is no gzip member: it goes uncompressed, which is always allowed. */
    k->request = c->gzip && total > 0 ? grpc_raw_compressed_byte_buffer_create(
                               &slice, 1, GRPC_COMPRESS_GZIP)
                         : grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);

    if (timeout_ms == 0) {
        deadline = gpr_inf_future(GPR_CLOCK_MONOTONIC);
    } else {
        if (timeout_ms > MAX_TIMEOUT_MS)
            timeout_ms = MAX_TIMEOUT_MS;
        deadline = gpr_time_add(
            gpr_now(GPR_CLOCK_MONOTONIC),
            gpr_time_from_millis((int64_t)timeout_ms, GPR_TIMESPAN));
    }
    slice = grpc_slice_from_copied_buffer(method, mlen);
    k->call =
        grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS,
                                 c->cq, slice, NULL, deadline, NULL);
    grpc_slice_unref(slice);
    if (k->call == NULL) {
        call_free(k);
        return LK_ENOMEM;
    }

    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    /* The array is shared by every call: gRPC copies it while starting the
     * batch, and it outlives every call anyway. */
    ops[0].data.send_initial_metadata.count = c->nmd;
    ops[0].data.send_initial_metadata.metadata = c->md;
#ifdef GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET
    /* wait_for_ready false, whatever a service config says: a backend that is
     * down fails the call with UNAVAILABLE and the exporter backs off. */
    ops[0].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET;
#endif
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = k->request;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &k->initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &k->response;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &k->trailing_md;
    ops[5].data.recv_status_on_client.status = &k->status;
    ops[5].data.recv_status_on_client.status_details = &k->details;
    ops[5].data.recv_status_on_client.error_string = &k->error_string;

    err = grpc_call_start_batch(k->call, ops, sizeof(ops) / sizeof(ops[0]), k,
                                NULL);
    if (err != GRPC_CALL_OK) {
        lk_log(LK_LOG_DEBUG, "grpc call not started",
               LK_S("target", c->target) LK_S("method", method)
                   LK_S("error", grpc_call_error_to_string(err)));
        call_free(k);
        return LK_EINVAL;
    }
    k->next = c->calls;
    if (c->calls != NULL)
        c->calls->prev = k;
    c->calls = k;
    return 0;
}

void lk_grpc_client_close(lk_grpc_client *c, void (*done)(void *arg), void *arg)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    c->done = done;
    c->done_arg = arg;
    if (!c->started) {
        /* No poller to wait for: free on the loop, after the handle. */
        c->drained = true;
        uv_close((uv_handle_t *)&c->async, on_async_closed);
        return;
    }
    for (struct call *k = c->calls; k != NULL; k = k->next)
        grpc_call_cancel(k->call, NULL);
    /* Calls hold their own references to the channel's stack. */
    grpc_channel_destroy(c->channel);
    c->channel = NULL;
    /* GRPC_QUEUE_SHUTDOWN follows the completions of the cancelled calls. */
    grpc_completion_queue_shutdown(c->cq);
}

bool lk__grpc_client_is_started(const lk_grpc_client *c)
{
    return c->started;
}
