/*
 * lk_otlp_salvage: requests of every signal with bad items among good ones,
 * bad resources and scopes, nothing good at all, and malformations that no
 * dropping can mend. Requests are hand-encoded from a small description so
 * that each case says what it holds; the expected output is the same
 * description encoded without what must be dropped, compared byte for byte
 * and, decoded by protobuf-c, item by item.
 */
#include "receivers/otlp_salvage.h"

#include <check.h>
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "receivers/otlp_validate.h"

#include "receivers/pb_enc.h"

/* --- requests from a description */

/* What is wrong with a resource, scope or unit. */
enum bad { GOOD = 0, BAD_UTF8, BAD_ID };

/* ab 0xc3 0x28 cd: a lead byte followed by no continuation byte. */
static const char bad_utf8[] = "ab\xc3\x28"
                               "cd";

struct unit {
    const char *name; /* span name, metric name, log severity_text */
    enum bad bad;
    int points; /* metrics: data points of its gauge */
};

struct scope {
    enum bad bad; /* BAD_UTF8: in the scope's name */
    struct unit units[4];
    int nunits;
};

struct resource {
    enum bad bad; /* BAD_UTF8: in a resource attribute value */
    struct scope scopes[3];
    int nscopes;
};

struct request {
    struct resource res[3];
    int nres;
    bool unknown; /* fields outside the schema at every level */
};

static const uint8_t id16[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t id8[8] = {8, 7, 6, 5, 4, 3, 2, 1};

/* Fields no version of the schema has, which must pass through. */
static void put_unknown(struct enc *e, const struct request *rq)
{
    if (!rq->unknown)
        return;
    e_tag(e, 99, WT_VARINT);
    e_varint(e, 300);
    e_str(e, 100, "opaque");
}

static void put_span(struct enc *e, const struct unit *u)
{
    e_bytes(e, 1, id16, u->bad == BAD_ID ? 15 : 16);
    e_bytes(e, 2, id8, 8);
    if (u->bad == BAD_UTF8) {
        char name[64];
        snprintf(name, sizeof(name), "%s-%s", u->name, bad_utf8);
        e_str(e, 5, name);
    } else {
        e_str(e, 5, u->name);
    }
    e_fixed64(e, 7, 1000);
    e_fixed64(e, 8, 2000);
    e_kv_str(e, 9, "span.attr", "x");
}

/* A gauge of |u->points| points; BAD_UTF8 in the last point's attribute,
 * BAD_ID in an exemplar of the first point. */
static void put_metric(struct enc *e, const struct unit *u)
{
    e_str(e, 1, u->name);
    e_str(e, 3, "1");
    e_begin(e, 5); /* gauge */
    for (int i = 0; i < u->points; i++) {
        e_begin(e, 1); /* data_points */
        e_fixed64(e, 3, 5000 + (uint64_t)i);
        e_fixed64(e, 4, 0x3ff0000000000000ull); /* as_double 1.0 */
        if (u->bad == BAD_ID && i == 0) {
            e_begin(e, 5); /* exemplars */
            e_fixed64(e, 2, 5000);
            e_bytes(e, 4, id8, 7);
            e_end(e);
        }
        e_kv_str(e, 7, "point", u->bad == BAD_UTF8 && i == u->points - 1 ? bad_utf8 : "p");
        e_end(e);
    }
    e_end(e);
}

static void put_log(struct enc *e, const struct unit *u)
{
    e_fixed64(e, 1, 3000);
    e_str(e, 3, u->name);
    e_begin(e, 5); /* body */
    e_str(e, 1, u->bad == BAD_UTF8 ? bad_utf8 : "a log line");
    e_end(e);
    e_bytes(e, 9, id16, 16);
    e_bytes(e, 10, id8, u->bad == BAD_ID ? 7 : 8);
}

static void put_unit(struct enc *e, enum lk_signal sig, const struct unit *u)
{
    e_begin(e, 2);
    if (sig == LK_SIGNAL_TRACES)
        put_span(e, u);
    else if (sig == LK_SIGNAL_METRICS)
        put_metric(e, u);
    else
        put_log(e, u);
    e_end(e);
}

static bool scope_survives(const struct scope *s)
{
    if (s->bad != GOOD)
        return false;
    if (s->nunits == 0)
        return true;
    for (int i = 0; i < s->nunits; i++)
        if (s->units[i].bad == GOOD)
            return true;
    return false;
}

static bool resource_survives(const struct resource *r)
{
    if (r->bad != GOOD)
        return false;
    if (r->nscopes == 0)
        return true;
    for (int i = 0; i < r->nscopes; i++)
        if (scope_survives(&r->scopes[i]))
            return true;
    return false;
}

/* Encodes |rq|; with |salvaged|, as lk_otlp_salvage should leave it: no bad
 * unit, scope or resource, and no scope or resource that only held bad
 * ones. */
static void build(struct enc *e, enum lk_signal sig, const struct request *rq,
                  bool salvaged)
{
    put_unknown(e, rq);
    for (int r = 0; r < rq->nres; r++) {
        const struct resource *res = &rq->res[r];
        if (salvaged && !resource_survives(res))
            continue;
        e_begin(e, 1);
        e_begin(e, 1); /* resource */
        e_kv_str(e, 1, "service.name", res->bad == BAD_UTF8 ? bad_utf8 : "svc");
        e_end(e);
        put_unknown(e, rq);
        for (int s = 0; s < res->nscopes; s++) {
            const struct scope *sc = &res->scopes[s];
            if (salvaged && !scope_survives(sc))
                continue;
            e_begin(e, 2);
            e_begin(e, 1); /* scope */
            e_str(e, 1, sc->bad == BAD_UTF8 ? bad_utf8 : "lib");
            e_str(e, 2, "1.0");
            e_end(e);
            for (int u = 0; u < sc->nunits; u++)
                if (!salvaged || sc->units[u].bad == GOOD)
                    put_unit(e, sig, &sc->units[u]);
            put_unknown(e, rq);
            e_str(e, 3, "https://example.test/schema");
            e_end(e);
        }
        e_str(e, 3, "https://opentelemetry.io/schemas/1.21.0");
        e_end(e);
    }
}

/* --- decoding with protobuf-c, to compare item by item */

static const ProtobufCMessageDescriptor *request_desc(enum lk_signal sig)
{
    switch (sig) {
    case LK_SIGNAL_TRACES:
        return &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor;
    case LK_SIGNAL_METRICS:
        return &opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor;
    default:
        return &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor;
    }
}

/* The names of the units of the encoded request, in order, joined by ",",
 * each as "name/points" for metrics. */
static void unit_names(enum lk_signal sig, const uint8_t *p, size_t n, char *out,
                       size_t outlen)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(request_desc(sig), NULL, n, p);
    size_t o = 0;

    ck_assert_msg(m != NULL, "protobuf-c cannot unpack the output");
    out[0] = '\0';
#define ADD(...) o += (size_t)snprintf(out + o, outlen - o, __VA_ARGS__)
    if (sig == LK_SIGNAL_TRACES) {
        Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *rq = (void *)m;
        for (size_t r = 0; r < rq->n_resource_spans; r++)
            for (size_t s = 0; s < rq->resource_spans[r]->n_scope_spans; s++) {
                Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = rq->resource_spans[r]->scope_spans[s];
                for (size_t u = 0; u < ss->n_spans; u++)
                    ADD("%s%s", o ? "," : "", ss->spans[u]->name);
            }
    } else if (sig == LK_SIGNAL_METRICS) {
        Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest *rq = (void *)m;
        for (size_t r = 0; r < rq->n_resource_metrics; r++)
            for (size_t s = 0; s < rq->resource_metrics[r]->n_scope_metrics; s++) {
                Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm =
                    rq->resource_metrics[r]->scope_metrics[s];
                for (size_t u = 0; u < sm->n_metrics; u++) {
                    Opentelemetry__Proto__Metrics__V1__Metric *mt = sm->metrics[u];
                    ck_assert_ptr_nonnull(mt->gauge);
                    ADD("%s%s/%zu", o ? "," : "", mt->name, mt->gauge->n_data_points);
                }
            }
    } else {
        Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *rq = (void *)m;
        for (size_t r = 0; r < rq->n_resource_logs; r++)
            for (size_t s = 0; s < rq->resource_logs[r]->n_scope_logs; s++) {
                Opentelemetry__Proto__Logs__V1__ScopeLogs *sl = rq->resource_logs[r]->scope_logs[s];
                for (size_t u = 0; u < sl->n_log_records; u++)
                    ADD("%s%s", o ? "," : "", sl->log_records[u]->severity_text);
            }
    }
#undef ADD
    ck_assert_uint_lt(o, outlen);
    protobuf_c_message_free_unpacked(m, NULL);
}

/* --- running */

static char why[512];
static struct lk_otlp_salvage_result res;
static lk_buf out;

static int salvage(enum lk_signal sig, const struct enc *e)
{
    lk_buf_fini(&out);
    lk_buf_init(&out, SIZE_MAX);
    memset(why, 'x', sizeof(why));
    why[sizeof(why) - 1] = '\0';
    memset(&res, 0xa5, sizeof(res));
    return lk_otlp_salvage(sig, e->buf, e->len, &out, &res, why, sizeof(why));
}

/*
 * Salvages |rq| of |sig|: asserts success, the output equal to the salvaged
 * encoding byte for byte and in its decoded units (|names|), |accepted| and
 * |rejected| items, and a reason that starts with |reason|.
 */
static void check_salvage(enum lk_signal sig, const struct request *rq,
                          const char *names, uint64_t accepted,
                          uint64_t rejected, const char *reason)
{
    struct enc in = {0}, want = {0};
    char got_names[512], want_names[512];
    struct lk_otlp_counts counts;
    char vwhy[256];
    int rc;

    build(&in, sig, rq, false);
    build(&want, sig, rq, true);
    ck_assert_int_ne(lk_otlp_validate(sig, in.buf, in.len, &counts, vwhy, sizeof(vwhy)), 0);
    rc = salvage(sig, &in);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, why);
    ck_assert_uint_eq(res.accepted, accepted);
    ck_assert_uint_eq(res.rejected, rejected);
    ck_assert(res.dropped);
    ck_assert_msg(strncmp(why, reason, strlen(reason)) == 0, "reason \"%s\", want \"%s...\"",
                  why, reason);
    ck_assert_uint_le(out.len, in.len);
    if (accepted > 0) {
        unit_names(sig, out.data, out.len, got_names, sizeof(got_names));
        unit_names(sig, want.buf, want.len, want_names, sizeof(want_names));
        ck_assert_str_eq(got_names, want_names);
        ck_assert_str_eq(got_names, names);
    }
    ck_assert_uint_eq(out.len, want.len);
    if (want.len > 0)
        ck_assert_mem_eq(out.data, want.buf, want.len);
    /* What is left is a request like any other, with the counts it had. */
    ck_assert_int_eq(lk_otlp_validate(sig, out.data, out.len, &counts, vwhy, sizeof(vwhy)), 0);
    ck_assert_uint_eq(counts.items, accepted);
    e_fini(&in);
    e_fini(&want);
}

#define U(n) {.name = (n), .points = 2}
#define UB(n, b) {.name = (n), .bad = (b), .points = 2}

/* --- one bad item among good ones */

START_TEST(test_bad_span_id_length)
{
    struct request rq = {
        .nres = 1,
        .res = {{.nscopes = 2,
                 .scopes = {{.nunits = 3, .units = {U("a"), UB("b", BAD_ID), U("c")}},
                            {.nunits = 1, .units = {U("d")}}}}},
    };
    check_salvage(LK_SIGNAL_TRACES, &rq, "a,c,d", 3, 1,
                  "resource_spans[0].scope_spans[0].spans[1].trace_id: length 15, want 16 or 0");
}
END_TEST

START_TEST(test_bad_span_utf8_empties_scope)
{
    /* The only span of the second scope of the second resource: the scope
     * goes, the resource stays with its first scope. */
    struct request rq = {
        .nres = 2,
        .res = {{.nscopes = 1, .scopes = {{.nunits = 2, .units = {U("a"), U("b")}}}},
                {.nscopes = 2,
                 .scopes = {{.nunits = 1, .units = {U("c")}},
                            {.nunits = 1, .units = {UB("d", BAD_UTF8)}}}}},
    };
    check_salvage(LK_SIGNAL_TRACES, &rq, "a,b,c", 3, 1,
                  "resource_spans[1].scope_spans[1].spans[0].name: invalid UTF-8");
}
END_TEST

START_TEST(test_bad_metric_counts_its_points)
{
    struct request rq = {
        .nres = 2,
        .res = {{.nscopes = 1, .scopes = {{.nunits = 1, .units = {U("m.a")}}}},
                {.nscopes = 1,
                 .scopes = {{.nunits = 3,
                             .units = {{.name = "m.b", .points = 5, .bad = BAD_UTF8},
                                       {.name = "m.c", .points = 3},
                                       {.name = "m.d", .points = 1}}}}}},
    };
    check_salvage(LK_SIGNAL_METRICS, &rq, "m.a/2,m.c/3,m.d/1", 6, 5,
                  "resource_metrics[1].scope_metrics[0].metrics[0].gauge.data_points[4]"
                  ".attributes[0].value.string_value: invalid UTF-8");
}
END_TEST

START_TEST(test_bad_metric_exemplar_id)
{
    struct request rq = {
        .nres = 1,
        .res = {{.nscopes = 1,
                 .scopes = {{.nunits = 2,
                             .units = {{.name = "m.a", .points = 4},
                                       {.name = "m.b", .points = 3, .bad = BAD_ID}}}}}},
    };
    check_salvage(LK_SIGNAL_METRICS, &rq, "m.a/4", 4, 3,
                  "resource_metrics[0].scope_metrics[0].metrics[1].gauge.data_points[0]"
                  ".exemplars[0].span_id: length 7, want 8 or 0");
}
END_TEST

START_TEST(test_bad_log_record)
{
    struct request rq = {
        .nres = 1,
        .res = {{.nscopes = 2,
                 .scopes = {{.nunits = 1, .units = {U("INFO")}},
                            {.nunits = 3,
                             .units = {U("WARN"), U("ERROR"), UB("DEBUG", BAD_ID)}}}}},
    };
    check_salvage(LK_SIGNAL_LOGS, &rq, "INFO,WARN,ERROR", 3, 1,
                  "resource_logs[0].scope_logs[1].log_records[2].span_id: length 7, want 8 or 0");
}
END_TEST

START_TEST(test_several_bad_first_reason)
{
    struct request rq = {
        .nres = 1,
        .res = {{.nscopes = 1,
                 .scopes = {{.nunits = 4,
                             .units = {UB("r0", BAD_UTF8), U("ok1"), UB("r2", BAD_ID),
                                       U("ok3")}}}}},
    };
    check_salvage(LK_SIGNAL_LOGS, &rq, "ok1,ok3", 2, 2,
                  "resource_logs[0].scope_logs[0].log_records[0].body.string_value: "
                  "invalid UTF-8");
}
END_TEST

/* --- resource and scope problems reject what is under them */

START_TEST(test_bad_resource_rejects_all_under_it)
{
    for (int sig = 0; sig < LK_SIGNAL_COUNT; sig++) {
        struct request rq = {
            .nres = 2,
            .res = {{.bad = BAD_UTF8,
                     .nscopes = 2,
                     .scopes = {{.nunits = 2, .units = {U("x1"), U("x2")}},
                                {.nunits = 1, .units = {U("x3")}}}},
                    {.nscopes = 1, .scopes = {{.nunits = 1, .units = {U("ok")}}}}},
        };
        const char *want[] = {"resource_spans[0].resource.attributes[0].value.string_value: "
                              "invalid UTF-8",
                              "resource_metrics[0].resource.attributes[0].value.string_value: "
                              "invalid UTF-8",
                              "resource_logs[0].resource.attributes[0].value.string_value: "
                              "invalid UTF-8"};
        const char *names = sig == LK_SIGNAL_METRICS ? "ok/2" : "ok";
        /* Metrics count points: 3 metrics of 2 under the bad resource. */
        uint64_t per = sig == LK_SIGNAL_METRICS ? 2 : 1;
        check_salvage((enum lk_signal)sig, &rq, names, per, 3 * per, want[sig]);
    }
}
END_TEST

START_TEST(test_bad_scope_rejects_all_under_it)
{
    struct request rq = {
        .nres = 1,
        .res = {{.nscopes = 3,
                 .scopes = {{.nunits = 1, .units = {U("a")}},
                            {.bad = BAD_UTF8, .nunits = 2, .units = {U("b"), U("c")}},
                            {.nunits = 1, .units = {U("d")}}}}},
    };
    check_salvage(LK_SIGNAL_TRACES, &rq, "a,d", 2, 2,
                  "resource_spans[0].scope_spans[1].scope.name: invalid UTF-8");
}
END_TEST

START_TEST(test_unknown_fields_kept)
{
    /* Fields outside the schema at every level travel on untouched. */
    struct request rq = {
        .unknown = true,
        .nres = 2,
        .res = {{.nscopes = 1, .scopes = {{.nunits = 2, .units = {U("a"), UB("b", BAD_ID)}}}},
                {.nscopes = 1, .scopes = {{.nunits = 1, .units = {U("c")}}}}},
    };
    check_salvage(LK_SIGNAL_TRACES, &rq, "a,c", 2, 1,
                  "resource_spans[0].scope_spans[0].spans[1].trace_id: length 15");
}
END_TEST

START_TEST(test_metric_without_points)
{
    /* A bad metric without data points: dropped, though no item is counted. */
    struct request rq = {
        .nres = 1,
        .res = {{.nscopes = 1,
                 .scopes = {{.nunits = 2,
                             .units = {{.name = "m.a", .points = 2},
                                       {.name = "m.b", .points = 0, .bad = BAD_ID}}}}}},
    };
    struct enc in = {0};

    /* BAD_ID sits in the first point's exemplar: use a bad name instead. */
    rq.res[0].scopes[0].units[1].bad = BAD_UTF8;
    rq.res[0].scopes[0].units[1].name = bad_utf8;
    build(&in, LK_SIGNAL_METRICS, &rq, false);
    ck_assert_int_eq(salvage(LK_SIGNAL_METRICS, &in), 0);
    ck_assert_uint_eq(res.accepted, 2);
    ck_assert_uint_eq(res.rejected, 0);
    ck_assert(res.dropped);
    ck_assert_msg(strstr(why, "metrics[1].name: invalid UTF-8") != NULL, "%s", why);
    e_fini(&in);
}
END_TEST

/* --- nothing good */

START_TEST(test_all_bad)
{
    for (int sig = 0; sig < LK_SIGNAL_COUNT; sig++) {
        struct request rq = {
            .nres = 2,
            .res = {{.nscopes = 1,
                     .scopes = {{.nunits = 2, .units = {UB("a", BAD_ID), UB("b", BAD_UTF8)}}}},
                    {.bad = BAD_UTF8,
                     .nscopes = 1,
                     .scopes = {{.nunits = 1, .units = {U("c")}}}}},
        };
        uint64_t per = sig == LK_SIGNAL_METRICS ? 2 : 1;
        struct enc in = {0};

        build(&in, (enum lk_signal)sig, &rq, false);
        ck_assert_int_eq(salvage((enum lk_signal)sig, &in), 0);
        ck_assert_uint_eq(res.accepted, 0);
        ck_assert_uint_eq(res.rejected, 3 * per);
        ck_assert(res.dropped);
        ck_assert_uint_eq(out.len, 0);
        ck_assert_msg(strstr(why, "[0].") != NULL && why[0] == 'r', "%s", why);
        e_fini(&in);
    }
}
END_TEST

START_TEST(test_valid_passes_through)
{
    struct request rq = {
        .unknown = true,
        .nres = 1,
        .res = {{.nscopes = 1, .scopes = {{.nunits = 2, .units = {U("a"), U("b")}}}}},
    };
    struct enc in = {0};

    build(&in, LK_SIGNAL_METRICS, &rq, false);
    ck_assert_int_eq(salvage(LK_SIGNAL_METRICS, &in), 0);
    ck_assert_uint_eq(res.accepted, 4);
    ck_assert_uint_eq(res.rejected, 0);
    ck_assert(!res.dropped);
    ck_assert_str_eq(why, "");
    ck_assert_uint_eq(out.len, in.len);
    ck_assert_mem_eq(out.data, in.buf, in.len);
    e_fini(&in);
    /* And the empty request. */
    ck_assert_int_eq(lk_otlp_salvage(LK_SIGNAL_LOGS, NULL, 0, &out, &res, why, sizeof(why)), 0);
    ck_assert_uint_eq(res.accepted, 0);
    ck_assert(!res.dropped);
}
END_TEST

/* --- malformed beyond items: nothing salvaged */

static void assert_broken(enum lk_signal sig, const struct enc *e, const char *needle)
{
    int rc = salvage(sig, e);
    ck_assert_msg(rc == LK_EPROTO, "rc %d: %s", rc, why);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_uint_eq(res.accepted, 0);
    ck_assert_uint_eq(res.rejected, 0);
    ck_assert_msg(strstr(why, needle) != NULL, "reason \"%s\" lacks \"%s\"", why, needle);
}

START_TEST(test_truncated)
{
    struct request rq = {
        .nres = 1,
        .res = {{.nscopes = 1, .scopes = {{.nunits = 2, .units = {U("a"), U("b")}}}}},
    };
    struct enc in = {0};

    build(&in, LK_SIGNAL_TRACES, &rq, false);
    in.len -= 3;
    assert_broken(LK_SIGNAL_TRACES, &in, "exceeds");
    e_fini(&in);
}
END_TEST

START_TEST(test_structure_after_bad_value)
{
    /* The first problem is a bad value, a later span is cut short inside
     * (its attribute's length runs past the span): the request is malformed. */
    struct request rq = {
        .nres = 1,
        .res = {{.nscopes = 1,
                 .scopes = {{.nunits = 1, .units = {UB("a", BAD_UTF8)}}}}},
    };
    struct enc in = {0};

    build(&in, LK_SIGNAL_TRACES, &rq, false);
    /* A second resource: one span whose attribute length overshoots. */
    e_begin(&in, 1);
    e_begin(&in, 2);
    e_begin(&in, 2);
    e_str(&in, 5, "b");
    e_tag(&in, 9, WT_LEN);
    e_varint(&in, 40);
    e_raw(&in, "\x0a\x01k", 3);
    e_end(&in);
    e_end(&in);
    e_end(&in);
    assert_broken(LK_SIGNAL_TRACES, &in, "resource_spans[1].scope_spans[0].spans[0].attributes");
    e_fini(&in);
}
END_TEST

START_TEST(test_singular_twice_after_bad_value)
{
    /* A KeyValue with two values (protobuf-c 1.4 mis-merges them): never
     * decoded, the request refused. */
    struct request rq = {
        .nres = 1,
        .res = {{.nscopes = 1, .scopes = {{.nunits = 1, .units = {UB("a", BAD_ID)}}}}},
    };
    struct enc in = {0};

    build(&in, LK_SIGNAL_LOGS, &rq, false);
    e_begin(&in, 1);
    e_begin(&in, 2);
    e_begin(&in, 2);
    e_begin(&in, 6); /* attributes */
    e_str(&in, 1, "k");
    e_begin(&in, 2);
    e_end(&in);
    e_begin(&in, 2);
    e_end(&in);
    e_end(&in);
    e_end(&in);
    e_end(&in);
    e_end(&in);
    assert_broken(LK_SIGNAL_LOGS, &in, "singular field given twice");
    e_fini(&in);
}
END_TEST

START_TEST(test_deep_nesting_after_bad_value)
{
    /* 200000 levels of AnyValue arrays in the second span, after a bad first
     * span: refused by depth, without recursing into it. */
    enum { LEVELS = 200000 };
    struct request rq = {
        .nres = 1,
        .res = {{.nscopes = 1, .scopes = {{.nunits = 1, .units = {UB("a", BAD_ID)}}}}},
    };
    struct enc in = {0}, deep = {0};
    uint8_t *buf;
    size_t cap = LEVELS * 12 + 16, start = cap;

    /* AnyValue { array_value = 5: ArrayValue { values = 1: AnyValue ... } },
     * built from the inside out. */
    buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    for (int i = 0; i < LEVELS; i++) {
        uint8_t h[6];
        size_t k;
        h[0] = 1 << 3 | WT_LEN;
        k = 1 + varint_put(h + 1, cap - start);
        start -= k;
        memcpy(buf + start, h, k);
        h[0] = 5 << 3 | WT_LEN;
        k = 1 + varint_put(h + 1, cap - start);
        start -= k;
        memcpy(buf + start, h, k);
    }
    build(&in, LK_SIGNAL_TRACES, &rq, false);
    e_begin(&deep, 9); /* attributes */
    e_str(&deep, 1, "deep");
    e_bytes(&deep, 2, buf + start, cap - start);
    e_end(&deep);
    e_begin(&in, 1);
    e_begin(&in, 2);
    e_begin(&in, 2);
    e_raw(&in, deep.buf, deep.len);
    e_end(&in);
    e_end(&in);
    e_end(&in);
    assert_broken(LK_SIGNAL_TRACES, &in, "nested deeper than");
    free(buf);
    e_fini(&deep);
    e_fini(&in);
}
END_TEST

START_TEST(test_framing_of_scope_broken)
{
    /* A bad span first, then a scope entry whose own fields do not frame:
     * the reason names the entry. */
    struct request rq = {
        .nres = 1,
        .res = {{.nscopes = 1, .scopes = {{.nunits = 1, .units = {UB("a", BAD_ID)}}}}},
    };
    struct enc in = {0};

    build(&in, LK_SIGNAL_TRACES, &rq, false);
    e_begin(&in, 1);
    e_begin(&in, 2);
    e_raw(&in, "\x1a\x05" "ab", 4); /* schema_url: 5 bytes announced, 2 there */
    e_end(&in);
    e_end(&in);
    assert_broken(LK_SIGNAL_TRACES, &in, "resource_spans[1].scope_spans[0]");
    e_fini(&in);
}
END_TEST

START_TEST(test_structural_first)
{
    uint8_t garbage[] = {0xff, 0xff, 0xff};
    struct enc in = {0};

    e_raw(&in, garbage, sizeof(garbage));
    assert_broken(LK_SIGNAL_METRICS, &in, "tag varint");
    e_fini(&in);
}
END_TEST

/* --- limits and arguments */

START_TEST(test_out_limit_and_args)
{
    struct request rq = {
        .nres = 1,
        .res = {{.nscopes = 1, .scopes = {{.nunits = 2, .units = {U("a"), UB("b", BAD_ID)}}}}},
    };
    struct enc in = {0};
    lk_buf small;

    build(&in, LK_SIGNAL_TRACES, &rq, false);
    lk_buf_init(&small, 8);
    ck_assert_int_eq(lk_otlp_salvage(LK_SIGNAL_TRACES, in.buf, in.len, &small, &res, why,
                                     sizeof(why)),
                     LK_E2BIG);
    ck_assert_uint_eq(small.len, 0);
    ck_assert_uint_eq(res.accepted, 0);
    lk_buf_fini(&small);
    ck_assert_int_eq(lk_otlp_salvage(LK_SIGNAL_TRACES, NULL, 4, &out, &res, why, sizeof(why)),
                     LK_EINVAL);
    ck_assert_int_eq(lk_otlp_salvage((enum lk_signal)7, in.buf, in.len, &out, &res, why,
                                     sizeof(why)),
                     LK_EINVAL);
    /* No room for a reason is fine. */
    ck_assert_int_eq(lk_otlp_salvage(LK_SIGNAL_TRACES, in.buf, in.len, &out, &res, NULL, 0), 0);
    ck_assert_uint_eq(res.accepted, 1);
    ck_assert_uint_eq(res.rejected, 1);
    /* A short |why| is cut, still terminated. */
    lk_buf_reset(&out);
    ck_assert_int_eq(lk_otlp_salvage(LK_SIGNAL_TRACES, in.buf, in.len, &out, &res, why, 10), 0);
    ck_assert_str_eq(why, "resource_");
    e_fini(&in);
}
END_TEST

static Suite *otlp_salvage_suite(void)
{
    Suite *s = suite_create("otlp_salvage");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"bad_span_id_length", test_bad_span_id_length},
        {"bad_span_utf8_empties_scope", test_bad_span_utf8_empties_scope},
        {"bad_metric_counts_its_points", test_bad_metric_counts_its_points},
        {"bad_metric_exemplar_id", test_bad_metric_exemplar_id},
        {"bad_log_record", test_bad_log_record},
        {"several_bad_first_reason", test_several_bad_first_reason},
        {"bad_resource_rejects_all_under_it", test_bad_resource_rejects_all_under_it},
        {"bad_scope_rejects_all_under_it", test_bad_scope_rejects_all_under_it},
        {"unknown_fields_kept", test_unknown_fields_kept},
        {"metric_without_points", test_metric_without_points},
        {"all_bad", test_all_bad},
        {"valid_passes_through", test_valid_passes_through},
        {"truncated", test_truncated},
        {"structure_after_bad_value", test_structure_after_bad_value},
        {"singular_twice_after_bad_value", test_singular_twice_after_bad_value},
        {"deep_nesting_after_bad_value", test_deep_nesting_after_bad_value},
        {"framing_of_scope_broken", test_framing_of_scope_broken},
        {"structural_first", test_structural_first},
        {"out_limit_and_args", test_out_limit_and_args},
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
    SRunner *sr = srunner_create(otlp_salvage_suite());
    int failed;

    lk_buf_init(&out, SIZE_MAX);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    lk_buf_fini(&out);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
