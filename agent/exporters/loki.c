/*
 * Loki exporter. Each batch (ExportLogsServiceRequest bodies) is turned into
 * one push body by loki_encode, compressed (snappy for protobuf, optionally
 * gzip for JSON) and POSTed over the shared libuv-driven curl client.
 *
 * Loki's answers: 2xx taken; 429, 5xx and transport failures retried
 * (honouring Retry-After); 400 means Loki kept what it could and refused the
 * rest (too old, out of order, line too long, rate limited): the refused
 * count is read from the body, dropped and counted by reason, never retried.
 * Any other status drops the batch.
 *
 * Structured metadata: with `structured_metadata: auto`, a 400 saying that
 * Loki does not accept it (lk__loki_md_refused) turns it off for the rest of
 * the exporter's life and the same batch is sent again at once without it
 * (level, trace_id and span_id then travel in the line). Loki stored the
 * entries of the refused push that had no metadata; sent again unchanged
 * (same timestamp, same line, same stream) they are dropped by Loki as
 * duplicates.
 */
#include "exporters/loki.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <snappy-c.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/gzip.h"
#include "core/http_client.h"
#include "core/log.h"
#include "exporters/http_exporter.h"
#include "exporters/loki_encode.h"

#define MAX_BODY_BYTES (1024u * 1024 * 1024) /* of one uncompressed push */

struct loki_exporter;

/* One POST of one batch, alive until its callback. */
struct attempt {
    struct loki_exporter *x;
    lk_batch *b;
    uint8_t *body; /* compressed push body, owned */
    size_t len;
    bool no_md;    /* the body holds no structured metadata */
    uint64_t cut_entries, cut_size; /* metadata pairs cut to Loki's limits */
};

struct loki_exporter {
    struct lk_http_exporter h; /* first */
    char *url;
    bool json;
    bool gzip;
    int level; /* zlib level of |gzip| */
    uint64_t timeout_ms;
    struct lk_loki_encoder *enc;
    lk_buf scratch; /* the uncompressed body, reused */
    uint8_t *forms; /* of the batch's items, reused */
    size_t cap_forms;
    char **labels;
    size_t nlabels;
    char host[256];
    enum lk_loki_md md_mode;
    bool md_off;      /* no structured metadata sent: `off`, or after the refusal */
    uint32_t md_max_entries;
    uint64_t md_max_bytes;
    lk_gauge *md_enabled;  /* 1 while structured metadata is sent */
    lk_counter *md_cut[2]; /* pairs cut: by entries, by size */
    lk_counter *md_resent; /* batches sent again without it */
};

enum lk_export_result lk_loki_classify(int http_status)
{
    if (http_status >= 200 && http_status <= 299)
        return LK_EXPORT_OK;
    if (http_status == 0 || http_status == 429 || http_status >= 500)
        return LK_EXPORT_RETRY;
    return LK_EXPORT_PERMANENT;
}

bool lk_loki_takes_entries_config(const struct lk_exporter_config *cfg)
{
    struct lk_loki_encode_opts o = {
        .format = cfg->loki.format == LK_LOKI_BODY_JSON ? LK_LOKI_JSON : LK_LOKI_PROTOBUF,
        .labels = (const char *const *)cfg->loki.labels,
        .nlabels = cfg->loki.nlabels,
    };
    return cfg->type == LK_EXPORTER_LOKI && lk_loki_takes_entries(&o);
}

/* Case-insensitive search for |needle| in |n| bytes at |p|. */
static const uint8_t *find_ci(const uint8_t *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i <= n - k; i++)
        if (strncasecmp((const char *)p + i, needle, k) == 0)
            return p + i;
    return NULL;
}

const char *lk__loki_refusal(const uint8_t *body, size_t len, uint64_t *ignored)
{
    static const struct {
        const char *text;
        const char *reason;
    } kinds[] = {
        {"out of order", "out_of_order"},
        {"too far behind", "too_old"},
        {"too old", "too_old"},
        {"too new", "too_new"},
        {"too far in the future", "too_new"},
        {"line too long", "line_too_long"},
        {"max line size", "line_too_long"},
        {"max entry size", "line_too_long"},
        {"rate limit", "rate_limited"},
    };
    static const char total[] = "total ignored: ";
    *ignored = 0;
    const uint8_t *p = body, *end = body + len;
    const uint8_t *hit;
    while ((hit = find_ci(p, (size_t)(end - p), total)) != NULL) {
        const uint8_t *q = hit + sizeof(total) - 1;
        uint64_t v = 0;
        while (q < end && *q >= '0' && *q <= '9' && v < UINT64_MAX / 10)
            v = v * 10 + (uint64_t)(*q++ - '0');
        *ignored += v;
        p = q;
    }
    const char *reason = "bad_request";
    const uint8_t *first = NULL;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        hit = find_ci(body, len, kinds[i].text);
        if (hit != NULL && (first == NULL || hit < first)) {
            first = hit;
            reason = kinds[i].reason;
        }
    }
    return reason;
}

bool lk__loki_md_refused(int http_status, const uint8_t *body, size_t len)
{
    static const char words[] = "includes structured metadata, but this feature is disallowed";
    size_t k = sizeof(words) - 1;
    if (http_status != 400 || body == NULL)
        return false;
    for (size_t i = 0; k <= len && i <= len - k; i++)
        if (body[i] == 'i' && memcmp(body + i, words, k) == 0)
            return true;
    return false;
}

static void attempt_free(struct attempt *a)
{
    free(a->body);
    free(a);
}

static void log_refusal(struct loki_exporter *x, int status, const char *reason,
                        uint64_t refused, uint64_t items, const struct lk_http_result *r)
{
    uint64_t unlogged;
    if (!lk_http_exporter_refusal_log_due(&x->h, &unlogged))
        return;
    char msg[320];
    lk_http_body_excerpt(r, msg, sizeof(msg));
    lk_log(LK_LOG_WARN, "loki refused entries", LK_S("exporter", x->h.base.name)
           LK_I("http_status", status) LK_S("reason", reason) LK_U("refused", refused)
           LK_U("entries", items) LK_U("refusals_not_logged", unlogged)
           LK_S("message", msg));
}

static int start_attempt(struct loki_exporter *x, lk_batch *b);

/* Loki does not take structured metadata: none is sent from now on. */
static void md_fall_back(struct loki_exporter *x, const struct lk_http_result *r)
{
    if (x->md_off)
        return;
    x->md_off = true;
    lk_gauge_set(x->md_enabled, 0);
    char msg[320];
    lk_http_body_excerpt(r, msg, sizeof(msg));
    lk_log(LK_LOG_WARN,
           "loki does not accept structured metadata; sending entries without it from "
           "now on (level, trace_id and span_id go into the line)",
           LK_S("exporter", x->h.base.name) LK_S("message", msg)
           LK_S("hint", "set structured_metadata: off to skip the refused push, or allow "
                        "structured metadata in Loki (allow_structured_metadata, schema v13)"));
}

/* Pairs cut from a body Loki took. */
static void count_cuts(struct loki_exporter *x, uint64_t by_entries, uint64_t by_size)
{
    if (by_entries > 0)
        lk_counter_add(x->md_cut[0], by_entries);
    if (by_size > 0)
        lk_counter_add(x->md_cut[1], by_size);
}

static void post_done(void *arg, const struct lk_http_result *r)
{
    struct attempt *a = arg;
    struct loki_exporter *x = a->x;
    lk_batch *b = a->b;
    uint64_t items = lk_batch_items(b);
    uint64_t cut_entries = a->cut_entries, cut_size = a->cut_size;
    bool no_md = a->no_md;
    char reason[32];
    attempt_free(a);

    if (!no_md && x->md_mode == LK_LOKI_MD_AUTO &&
        lk__loki_md_refused(r->http_status, r->body, r->body_len)) {
        md_fall_back(x, r);
        if (!x->h.closing && start_attempt(x, b) == 0) {
            lk_counter_add(x->md_resent, 1);
            return;
        }
        /* Not sent again now: the queue's next attempt goes without it. */
        lk_batch_done(b, LK_EXPORT_RETRY, -1, "structured_metadata");
        return;
    }
    enum lk_export_result res = lk_loki_classify(r->http_status);
    if (res == LK_EXPORT_OK) {
        count_cuts(x, cut_entries, cut_size);
        lk_batch_done(b, LK_EXPORT_OK, -1, NULL);
        return;
    }
    if (res == LK_EXPORT_RETRY) {
        if (r->http_status == 0)
            snprintf(reason, sizeof(reason), "%s", lk_http_transport_reason(r));
        else
            snprintf(reason, sizeof(reason), "http_%d", r->http_status);
        lk_log(LK_LOG_DEBUG, "loki push attempt failed", LK_S("exporter", x->h.base.name)
               LK_I("http_status", r->http_status) LK_S("reason", reason)
               LK_S("error", r->error) LK_I("retry_after_ms", r->retry_after_ms));
        lk_batch_done(b, LK_EXPORT_RETRY, r->retry_after_ms, reason);
        return;
    }
    if (r->http_status == 400) {
        uint64_t ignored;
        const char *why = lk__loki_refusal(r->body, r->body_len, &ignored);
        if (ignored == 0 || ignored > items)
            ignored = items;
        log_refusal(x, r->http_status, why, ignored, items, r);
        /* Loki stored the entries it did not list; they count as sent. */
        if (ignored < items)
            count_cuts(x, cut_entries, cut_size);
        lk_batch_count_rejected(b, ignored, why);
        lk_batch_done(b, LK_EXPORT_OK, -1, NULL);
        return;
    }
    snprintf(reason, sizeof(reason), "http_%d", r->http_status);
    log_refusal(x, r->http_status, reason, items, items, r);
    lk_batch_done(b, LK_EXPORT_PERMANENT, -1, reason);
}

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Encodes and compresses the batch into |a->body|. */
static int build_body(struct loki_exporter *x, lk_batch *b, struct attempt *a)
{
    const struct iovec *iov;
    size_t n, total;
    uint64_t records, streams;
    lk_batch_iov(b, &iov, &n, &total);
    struct lk_loki_encode_opts o = {
        .format = x->json ? LK_LOKI_JSON : LK_LOKI_PROTOBUF,
        .labels = (const char *const *)x->labels,
        .nlabels = x->nlabels,
        .host = x->host,
        .now_ns = wall_ns(),
        .no_metadata = x->md_off,
        .md_max_entries = x->md_max_entries,
        .md_max_bytes = x->md_max_bytes,
    };
    a->no_md = x->md_off;
    if (n > x->cap_forms) {
        uint8_t *f = realloc(x->forms, n);
        if (f == NULL)
            return LK_ENOMEM;
        x->forms = f;
        x->cap_forms = n;
    }
    for (size_t i = 0; i < n; i++)
        x->forms[i] = lk_batch_item_form(b, i);
    lk_buf_reset(&x->scratch);
    int rc = lk_loki_encode_forms(x->enc, &o, iov, x->forms, n, &x->scratch, &records,
                                  &streams);
    if (rc < 0)
        return rc;
    lk_loki_encoder_cuts(x->enc, &a->cut_entries, &a->cut_size);
    if (x->json && !x->gzip) {
        a->body = lk_buf_detach(&x->scratch, &a->len);
        return 0;
    }
    if (x->json) {
        lk_buf gz;
        lk_buf_init(&gz, MAX_BODY_BYTES);
        rc = lk_gzip_deflate_level(x->scratch.data, x->scratch.len, x->level, &gz);
        if (rc < 0) {
            lk_buf_fini(&gz);
            return rc;
        }
        a->body = lk_buf_detach(&gz, &a->len);
        return 0;
    }
    size_t max = snappy_max_compressed_length(x->scratch.len);
    a->body = malloc(max ? max : 1);
    if (a->body == NULL)
        return LK_ENOMEM;
    a->len = max;
    if (snappy_compress((const char *)x->scratch.data, x->scratch.len, (char *)a->body,
                        &a->len) != SNAPPY_OK)
        return LK_EIO;
    return 0;
}

static int loki_send(lk_exporter *e, lk_batch *b)
{
    struct loki_exporter *x = (struct loki_exporter *)e;
    if (x->h.closing)
        return LK_ECLOSED;
    return start_attempt(x, b);
}

/* Encodes |b| as the exporter sends now and posts it: 0 when it is on its
 * way or dropped (as malformed, outside this call); else an error, |b|
 * untouched. */
static int start_attempt(struct loki_exporter *x, lk_batch *b)
{
    struct attempt *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return LK_ENOMEM;
    a->x = x;
    a->b = b;
    int rc = build_body(x, b, a);
    if (rc == LK_EPROTO || rc == LK_E2BIG || rc == LK_EINVAL) {
        /* Not retryable: the same bytes would fail the same way. */
        lk_log(LK_LOG_ERROR, "cannot encode a batch for loki, dropping it",
               LK_S("exporter", x->h.base.name) LK_S("error", lk_strerror(rc)));
        attempt_free(a);
        return lk_http_exporter_fail(&x->h, b, rc == LK_E2BIG ? "too_large" : "malformed");
    }
    if (rc < 0)
        goto err_attempt;
    struct iovec one = {.iov_base = a->body, .iov_len = a->len};
    rc = lk_http_client_post(x->h.client, x->url, x->h.headers, x->h.nheaders, &one, 1,
                             x->timeout_ms, post_done, a);
    if (rc < 0)
        goto err_attempt;
    return 0;
err_attempt:
    attempt_free(a);
    return rc;
}

static void exporter_free(struct lk_http_exporter *h)
{
    struct loki_exporter *x = (struct loki_exporter *)h;
    for (size_t i = 0; i < x->nlabels; i++)
        free(x->labels[i]);
    free(x->labels);
    lk_loki_encoder_destroy(x->enc);
    free(x->forms);
    lk_buf_fini(&x->scratch);
    free(x->url);
    lk_http_exporter_fini(&x->h);
    free(x);
}

const struct lk_exporter_ops lk_loki_exporter_ops = {
    .type = "loki",
    .send = loki_send,
    .close = lk_http_exporter_close,
};

static int add_header(struct loki_exporter *x, const char *name, const char *value)
{
    return lk_http_exporter_add_header(&x->h, name, value);
}

/* Content-Type (and Content-Encoding), tenant and auth, then the configured
 * headers (the loader rejected any that would contradict these). */
static int build_headers(struct loki_exporter *x, const struct lk_exporter_config *cfg)
{
    int rc = add_header(x, "Content-Type", x->json ? "application/json"
                                                   : "application/x-protobuf");
    /* A protobuf push is snappy-compressed by definition, without a
     * Content-Encoding header (as Loki's own clients send it). */
    if (rc == 0 && x->json && x->gzip)
        rc = add_header(x, "Content-Encoding", "gzip");
    if (rc == 0)
        rc = lk_http_exporter_add_auth_headers(&x->h, &cfg->auth);
    if (rc == 0)
        rc = lk_http_exporter_add_config_headers(&x->h, cfg, NULL);
    return rc;
}

/* The structured-metadata self-metrics of exporter |name|. */
static void register_metrics(struct loki_exporter *x, lk_metrics *m, const char *name)
{
    char labels[512];
    if (m == NULL)
        return;
    snprintf(labels, sizeof(labels), "exporter=\"%s\"", name);
    x->md_enabled = lk_metrics_gauge(m, "lookout_exporter_structured_metadata_enabled",
                                     "1 while a loki exporter sends structured metadata; 0 "
                                     "with structured_metadata: off or after Loki refused it.",
                                     labels);
    lk_gauge_set(x->md_enabled, x->md_off ? 0 : 1);
    x->md_resent = lk_metrics_counter(m, "lookout_exporter_structured_metadata_resent_batches_total",
                                      "Batches a loki exporter sent again without structured "
                                      "metadata after Loki refused it.",
                                      labels);
    static const char *const why[2] = {"entries", "size"};
    for (int i = 0; i < 2; i++) {
        snprintf(labels, sizeof(labels), "exporter=\"%s\",reason=\"%s\"", name, why[i]);
        x->md_cut[i] = lk_metrics_counter(m, "lookout_exporter_structured_metadata_cut_total",
                                          "Structured metadata pairs a loki exporter left out "
                                          "to stay within Loki's limits per entry.",
                                          labels);
    }
}

int lk_loki_exporter_create(lk_exporter **out, uv_loop_t *loop,
                            const struct lk_exporter_config *cfg, lk_metrics *m)
{
    struct loki_exporter *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return LK_ENOMEM;
    x->json = cfg->loki.format == LK_LOKI_BODY_JSON;
    x->gzip = x->json && lk_exporter_gzip(cfg);
    x->level = cfg->compression_level ? (int)cfg->compression_level : 1;
    x->timeout_ms = cfg->timeout_ms;
    x->md_mode = cfg->loki.structured_metadata;
    x->md_off = x->md_mode == LK_LOKI_MD_OFF;
    x->md_max_entries = cfg->loki.md_max_entries;
    x->md_max_bytes = cfg->loki.md_max_bytes;
    lk_buf_init(&x->scratch, MAX_BODY_BYTES);
    size_t hlen = sizeof(x->host);
    if (uv_os_gethostname(x->host, &hlen) != 0)
        snprintf(x->host, sizeof(x->host), "localhost");
    int rc = LK_ENOMEM;
    x->url = strdup(cfg->endpoint != NULL ? cfg->endpoint : "");
    x->labels = calloc(cfg->loki.nlabels + 1, sizeof(*x->labels));
    if (x->url == NULL || x->labels == NULL)
        goto fail;
    for (size_t i = 0; i < cfg->loki.nlabels; i++) {
        if ((x->labels[i] = strdup(cfg->loki.labels[i])) == NULL)
            goto fail;
        x->nlabels++;
    }
    if (!lk_http_url_is_valid(x->url)) {
        lk_log(LK_LOG_ERROR, "loki exporter: not an http(s) URL",
               LK_S("exporter", cfg->name) LK_S("url", x->url));
        rc = LK_EINVAL;
        goto fail;
    }
    rc = lk_loki_encoder_create(&x->enc);
    if (rc == 0)
        rc = lk_http_exporter_init(&x->h, loop, cfg, 4, &lk_loki_exporter_ops,
                                   exporter_free);
    if (rc == 0)
        rc = build_headers(x, cfg);
    if (rc < 0)
        goto fail;
    register_metrics(x, m, cfg->name);
    *out = &x->h.base;
    return 0;
fail:
    if (x->h.client != NULL) {
        /* Started: the loop owns handles now, close the normal way. */
        lk_http_exporter_close(&x->h.base, NULL, NULL);
        return rc;
    }
    exporter_free(&x->h);
    return rc;
}
