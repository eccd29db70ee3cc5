/*
 * libFuzzer target for the prometheus exporter's core: the input is one
 * ExportMetricsServiceRequest body, applied twice (the second time every
 * series exists: the update paths) to a series store with a small series
 * cap, then rendered as text 0.0.4, as OpenMetrics and as the protobuf
 * exposition, and encoded as a remote write body.
 *
 * Besides "never crash": the wire walk (lk_prom_mapper_apply, with its
 * series cache) and the reference path that unpacks the whole body with
 * protobuf-c give the same store (rendered alike) and the same counts after
 * each of the two applies, whenever the body passes the receivers'
 * validation (lk_otlp_validate, as every body the exporters get does) and
 * protobuf-c unpacks it (otherwise the walk returns 0 or LK_EPROTO, having
 * applied what came before the fault); every rendered line is a comment or a sample of the text
 * format (`name{...} value`), with balanced label quotes; the series count
 * never passes the cap; the protobuf exposition is a sequence of
 * length-delimited MetricFamily messages protobuf-c can unpack, one per
 * family of the text; the remote write body unpacks as a WriteRequest.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "exporters/prom_otlp.h"
#include "exporters/prom_otlp_impl.h" /* the reference: lk__prom_mapper_apply_unpacked */
#include "exporters/prom_rw.h"
#include "receivers/otlp_validate.h"
#include "prometheus/io/prometheus/client/metrics.pb-c.h"
#include "prometheus/prompb/remote.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether two stores render the same text. */
static bool same_store(lk_prom_store *a, lk_prom_store *b)
{
    lk_buf x, y;
    lk_buf_init(&x, 256 << 20);
    lk_buf_init(&y, 256 << 20);
    bool same = lk_prom_store_render(a, &x, true) == 0 && lk_prom_store_render(b, &y, true) == 0 &&
                x.len == y.len && (x.len == 0 || memcmp(x.data, y.data, x.len) == 0);
    if (!same)
        fprintf(stderr, "walk:\n%.*s\nprotobuf-c:\n%.*s\n", (int)x.len, (const char *)x.data,
                (int)y.len, (const char *)y.data);
    lk_buf_fini(&x);
    lk_buf_fini(&y);
    return same;
}

static int collect(void *arg, lk_prom_series *se)
{
    struct {
        lk_prom_series **v;
        size_t n;
    } *c = arg;
    c->v[c->n++] = se;
    return 0;
}

#define MAX_SERIES 64

/* Skips a {label set} at l[i] (quote-aware); returns the index after '}', or 0. */
static size_t skip_labels(const char *l, size_t n, size_t i)
{
    int inq = 0;
    for (i++; i < n; i++) {
        if (inq && l[i] == '\\') {
            i++;
            continue;
        }
        if (l[i] == '"')
            inq = !inq;
        else if (!inq && l[i] == '}')
            return i + 1;
        else if (l[i] == '\n')
            return 0;
    }
    return 0;
}

/* A sample line: name, optional {labels} with every value quoted, a space, a
 * value without spaces; with |om|, optionally ` # {labels} value[ ts]`. */
static int sample_ok(const char *l, size_t n, int om)
{
    size_t i = 0;
    while (i < n && (l[i] == '_' || l[i] == ':' || (l[i] >= 'a' && l[i] <= 'z') ||
                     (l[i] >= 'A' && l[i] <= 'Z') || (l[i] >= '0' && l[i] <= '9')))
        i++;
    if (i == 0)
        return 0;
    if (i < n && l[i] == '{' && (i = skip_labels(l, n, i)) == 0)
        return 0;
    if (i >= n || l[i] != ' ')
        return 0;
    for (i++; i < n && l[i] != ' '; i++)
        ;
    if (i == n)
        return 1;
    if (!om || n - i < 4 || memcmp(l + i, " # {", 4) != 0)
        return 0;
    if ((i = skip_labels(l, n, i + 3)) == 0 || i >= n || l[i] != ' ')
        return 0;
    int spaces = 0;
    for (i++; i < n; i++)
        spaces += l[i] == ' ';
    return spaces <= 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lk_prom_store_opts so = {.expiration_ms = 0, .max_series = MAX_SERIES};
    static char *promote[] = {"deployment.environment"};
    struct lk_prom_map_opts mo = {.add_suffixes = (size & 1) == 0, .promote = promote,
                                  .npromote = 1};
    lk_prom_store *s = lk_prom_store_create(&so);
    lk_prom_mapper *m = lk_prom_mapper_create(&mo, s);
    struct lk_prom_map_stats st = {0};
    if (m == NULL)
        abort();
    /* The reference: the same body unpacked whole by protobuf-c. */
    lk_prom_store *rs_ = lk_prom_store_create(&so);
    lk_prom_mapper *rm_ = lk_prom_mapper_create(&mo, rs_);
    struct lk_prom_map_stats rst = {0};
    if (rm_ == NULL)
        abort();
    int rc = 0, ref = 0;
    /* What reaches the exporter passed the receivers' validation. */
    struct lk_otlp_counts counts;
    bool valid = lk_otlp_validate(LK_SIGNAL_METRICS, data, size, &counts, NULL, 0) == 0;
    for (uint64_t now = 1000; now <= 2000 && rc == 0; now += 1000) {
        rc = lk_prom_mapper_apply(m, data, size, now, &st);
        ref = lk__prom_mapper_apply_unpacked(rm_, data, size, now, &rst);
        if (rc != 0 && rc != LK_EPROTO)
            abort();
        if (ref == 0 && valid && (rc != 0 || !same_store(s, rs_) ||
                         memcmp(&st, &rst, sizeof(st)) != 0)) {
            fprintf(stderr, "the wire walk and protobuf-c disagree (rc %d)\n", rc);
            abort();
        }
        if (ref != 0)
            break;
    }
    lk_prom_mapper_destroy(rm_);
    lk_prom_store_destroy(rs_);
    if (lk_prom_store_series_count(s) > MAX_SERIES)
        abort();
    lk_buf out;
    lk_buf_init(&out, 256 << 20);
    for (int om = 0; om <= 1; om++) {
        lk_buf_reset(&out);
        if (lk_prom_store_render(s, &out, om) != 0)
            abort();
        const char *p = (const char *)out.data, *end = p == NULL ? NULL : p + out.len;
        while (p != NULL && p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (nl == NULL) {
                fprintf(stderr, "exposition does not end with a newline\n");
                abort();
            }
            size_t n = (size_t)(nl - p);
            if (*p != '#' && !sample_ok(p, n, om)) {
                fprintf(stderr, "bad line: %.*s\n", (int)n, p);
                abort();
            }
            p = nl + 1;
        }
    }
    lk_buf_reset(&out);
    if (lk_prom_store_render_proto(s, &out) != 0)
        abort();
    for (size_t at = 0; at < out.len;) {
        uint64_t len = 0;
        for (int shift = 0; at < out.len; shift += 7) {
            uint8_t b = out.data[at++];
            len |= (uint64_t)(b & 0x7f) << shift;
            if (!(b & 0x80))
                break;
        }
        if (len > out.len - at)
            abort();
        Io__Prometheus__Client__MetricFamily *f =
            io__prometheus__client__metric_family__unpack(NULL, len, out.data + at);
        if (f == NULL || f->n_metric == 0)
            abort();
        io__prometheus__client__metric_family__free_unpacked(f, NULL);
        at += len;
    }
    /* Remote write: every series, as after an expiry-free batch. */
    lk_prom_series *all[MAX_SERIES + 8];
    struct {
        lk_prom_series **v;
        size_t n;
    } col = {all, 0};
    (void)lk_prom_store_each(s, collect, &col);
    lk_prom_rw *w = lk_prom_rw_create();
    struct lk_prom_rw_stats rs = {0};
    lk_buf_reset(&out);
    if (w == NULL || lk_prom_rw_encode(w, s, all, col.n, 1, &out, &rs) != 0)
        abort();
    Prometheus__WriteRequest *wr = prometheus__write_request__unpack(NULL, out.len, out.data);
    if (wr == NULL || wr->n_timeseries != rs.timeseries)
        abort();
    prometheus__write_request__free_unpacked(wr, NULL);
    lk_prom_rw_destroy(w);
    lk_buf_fini(&out);
    lk_prom_mapper_destroy(m);
    lk_prom_store_destroy(s);
    return 0;
}
