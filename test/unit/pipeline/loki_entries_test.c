/*
 * LK_FORM_LOKI_ENTRIES against the OTLP form: the same lines, encoded by the
 * line receiver's encoder in both forms and then by the Loki encoder with a
 * range of configs, must give byte-identical push bodies. Configs that take
 * entries as they are (protobuf, no `level` label) copy them; the others
 * (JSON, a `level` label) go through lk_loki_entries_to_otlp, so both paths
 * are compared. The protobuf body is also unpacked by protobuf-c and checked
 * for the entries' content. Malformed entries items fail cleanly.
 */
#include "pipeline/loki_entries.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "core/err.h"
#include "exporters/loki_encode.h"
#include "loki/push.pb-c.h"
#include "pipeline/item.h"
#include "receivers/lines.h"

#define RECV_NS 1795600900123456789ull

static const char *const lines_a[] = {
    "{\"level\":\"info\",\"time\":\"2026-11-25T10:00:00.123456789Z\",\"message\":\"served\","
    "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"span_id\":\"00f067aa0ba902b7\"}",
    "{\"level\":\"WARNING\",\"msg\":\"slow\",\"service\":\"billing\"}",
    "{\"level\":30,\"time\":1700000000123,\"msg\":\"pino\"}",
    "level=error ts=2026-11-25T10:00:01Z msg=\"disk full\" trace_id=0af7651916cd43dd8448eb211c80319c",
    "plain text line with no structure",
    "{\"level\":\"verbose\",\"msg\":\"unknown level text\"}",
    "{\"severity\":\"INFO+2\",\"message\":\"slog offset\"}",
    "bad utf-8 \xff\xfe here",
    "{\"level\":\"debug\",\"time\":\"2026-11-25T10:00:00Z\",\"msg\":\"x\",\"span_id\":"
    "\"0000000000000000\",\"trace_id\":\"00000000000000000000000000000000\"}",
};

struct origin_case {
    int pid;
    unsigned uid;
    const char *name;
};

static const struct origin_case origins[] = {
    {4242, 1000, "api-server"},
    {4242, 1000, "api-server"},
    {99, 0, "worker"},
    {-1, (unsigned)-1, ""},
};

/* Every line from every origin, in one request of |form|. */
static void build(const struct lk_lines_receiver_config *cfg, enum lk_item_form form,
                  lk_buf *out, uint32_t *nrecs)
{
    struct lk_lines_encoder e;
    ck_assert_int_eq(lk_lines_encoder_init(&e, cfg, "host-1", "lines/app"), 0);
    e.want_entries = form == LK_FORM_LOKI_ENTRIES;
    for (size_t o = 0; o < sizeof(origins) / sizeof(origins[0]); o++) {
        struct lk_lines_origin org = {.process_name = origins[o].name};
        org.cred.pid = origins[o].pid;
        org.cred.uid = origins[o].uid;
        org.cred.gid = origins[o].uid;
        for (size_t i = 0; i < sizeof(lines_a) / sizeof(lines_a[0]); i++)
            ck_assert_int_eq(lk_lines_encoder_add(&e, &org, (const uint8_t *)lines_a[i],
                                                  strlen(lines_a[i]), RECV_NS + i),
                             0);
    }
    const uint8_t *data;
    size_t len;
    *nrecs = lk_lines_encoder_finish(&e, &data, &len);
    ck_assert_uint_eq(e.form, form);
    ck_assert_int_eq(lk_buf_append(out, data, len), 0);
    lk_lines_encoder_fini(&e);
}

static uint64_t last_cuts[2]; /* of the last encode(): by entries, by size */

static void encode(const struct lk_loki_encode_opts *o, const lk_buf *body, uint8_t form,
                   size_t copies, lk_buf *out, uint64_t *records)
{
    struct lk_loki_encoder *enc;
    struct iovec iov[4];
    uint8_t forms[4];
    uint64_t streams;
    ck_assert_uint_le(copies, 4);
    for (size_t i = 0; i < copies; i++) {
        iov[i].iov_base = body->data;
        iov[i].iov_len = body->len;
        forms[i] = form;
    }
    ck_assert_int_eq(lk_loki_encoder_create(&enc), 0);
    ck_assert_int_eq(lk_loki_encode_forms(enc, o, iov, forms, copies, out, records, &streams),
                     0);
    lk_loki_encoder_cuts(enc, &last_cuts[0], &last_cuts[1]);
    lk_loki_encoder_destroy(enc);
}

/* What a body made with metadata off or limited holds: no metadata at all
 * (and the ids and levels in the lines), or metadata within the limits. */
static void check_md(const struct lk_loki_encode_opts *o, const lk_buf *b, uint64_t records)
{
    Logproto__PushRequest *p = logproto__push_request__unpack(NULL, b->len, b->data);
    ck_assert_ptr_nonnull(p);
    uint64_t entries = 0;
    bool saw_trace = false, saw_added_level = false, saw_logfmt = false;
    for (size_t s = 0; s < p->n_streams; s++) {
        for (size_t k = 0; k < p->streams[s]->n_entries; k++) {
            Logproto__EntryAdapter *en = p->streams[s]->entries[k];
            size_t bytes = 0;
            entries++;
            for (size_t m = 0; m < en->n_structuredmetadata; m++)
                bytes += strlen(en->structuredmetadata[m]->name) +
                         strlen(en->structuredmetadata[m]->value);
            if (o->no_metadata)
                ck_assert_uint_eq(en->n_structuredmetadata, 0);
            if (o->md_max_entries)
                ck_assert_uint_le(en->n_structuredmetadata, o->md_max_entries);
            if (o->md_max_bytes)
                ck_assert_uint_le(bytes, o->md_max_bytes);
            if (strcmp(en->line, lines_a[0]) == 0) /* has all three: unchanged */
                saw_trace = true;
            if (strcmp(en->line, "{\"severity\":\"INFO+2\",\"message\":\"slog offset\","
                                 "\"level\":\"info\"}") == 0)
                saw_added_level = true;
            if (strcmp(en->line, lines_a[3]) == 0)
                saw_logfmt = true;
        }
    }
    ck_assert_uint_eq(entries, records);
    ck_assert(saw_trace);
    ck_assert(saw_logfmt);
    ck_assert(saw_added_level == o->no_metadata);
    logproto__push_request__free_unpacked(p, NULL);
}

static void compare(const struct lk_lines_receiver_config *cfg,
                    const struct lk_loki_encode_opts *o, size_t copies)
{
    lk_buf otlp, ent, a, b;
    uint32_t n1, n2;
    uint64_t r1, r2;
    lk_buf_init(&otlp, SIZE_MAX);
    lk_buf_init(&ent, SIZE_MAX);
    lk_buf_init(&a, SIZE_MAX);
    lk_buf_init(&b, SIZE_MAX);
    build(cfg, LK_FORM_OTLP, &otlp, &n1);
    build(cfg, LK_FORM_LOKI_ENTRIES, &ent, &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_uint_eq(n1, 4 * (sizeof(lines_a) / sizeof(lines_a[0])));
    uint64_t cuts[2];
    encode(o, &otlp, LK_FORM_OTLP, copies, &a, &r1);
    memcpy(cuts, last_cuts, sizeof(cuts));
    encode(o, &ent, LK_FORM_LOKI_ENTRIES, copies, &b, &r2);
    ck_assert_uint_eq(last_cuts[0], cuts[0]);
    ck_assert_uint_eq(last_cuts[1], cuts[1]);
    ck_assert_uint_eq(r1, copies * n1);
    ck_assert_uint_eq(r2, r1);
    ck_assert_uint_eq(a.len, b.len);
    ck_assert_msg(memcmp(a.data, b.data, a.len) == 0, "push bodies differ");
    if (o->format == LK_LOKI_PROTOBUF && !o->no_metadata && o->md_max_entries == 0 &&
        o->md_max_bytes == 0) {
        Logproto__PushRequest *p = logproto__push_request__unpack(NULL, b.len, b.data);
        ck_assert_ptr_nonnull(p);
        uint64_t entries = 0;
        bool saw_trace = false, saw_pid = false;
        for (size_t s = 0; s < p->n_streams; s++) {
            ck_assert_ptr_nonnull(strstr(p->streams[s]->labels, "service_name=\""));
            for (size_t k = 0; k < p->streams[s]->n_entries; k++) {
                Logproto__EntryAdapter *en = p->streams[s]->entries[k];
                entries++;
                for (size_t m = 0; m < en->n_structuredmetadata; m++) {
                    const Logproto__LabelPairAdapter *lp = en->structuredmetadata[m];
                    if (strcmp(lp->name, "trace_id") == 0 &&
                        strcmp(lp->value, "4bf92f3577b34da6a3ce929d0e0e4736") == 0)
                        saw_trace = true;
                    if (strcmp(lp->name, "process_pid") == 0 && strcmp(lp->value, "4242") == 0)
                        saw_pid = true;
                }
            }
        }
        ck_assert_uint_eq(entries, r2);
        ck_assert(saw_trace);
        ck_assert(saw_pid);
        logproto__push_request__free_unpacked(p, NULL);
    }
    if (o->format == LK_LOKI_PROTOBUF && (o->no_metadata || o->md_max_entries != 0 ||
                                          o->md_max_bytes != 0))
        check_md(o, &b, r2);
    lk_buf_fini(&otlp);
    lk_buf_fini(&ent);
    lk_buf_fini(&a);
    lk_buf_fini(&b);
}

static struct lk_lines_receiver_config cfg_plain(void)
{
    struct lk_lines_receiver_config c;
    memset(&c, 0, sizeof(c));
    c.path = "/tmp/x.sock";
    c.mode = 0600;
    c.format = LK_LINES_AUTO;
    c.max_line_bytes = 256 * 1024;
    c.max_connections = 256;
    return c;
}

static const char *const default_labels[] = {"service_name", "service_namespace",
                                             "deployment_environment", "host", "source"};

START_TEST(same_body_default_labels)
{
    struct lk_lines_receiver_config c = cfg_plain();
    struct lk_loki_encode_opts o = {.format = LK_LOKI_PROTOBUF,
                                    .labels = default_labels,
                                    .nlabels = 5,
                                    .host = "host-1",
                                    .now_ns = RECV_NS};
    ck_assert(lk_loki_takes_entries(&o));
    compare(&c, &o, 1);
    compare(&c, &o, 3); /* items of one batch share streams */
}
END_TEST

START_TEST(same_body_static_labels)
{
    struct lk_lines_receiver_config c = cfg_plain();
    struct lk_header labels[] = {{"team", "payments"}, {"env", "dev"}, {"process.owner", "x"}};
    c.labels = labels;
    c.nlabels = 3;
    static const char *const lab[] = {"service_name", "team", "env", "host"};
    struct lk_loki_encode_opts o = {
        .format = LK_LOKI_PROTOBUF, .labels = lab, .nlabels = 4, .now_ns = RECV_NS};
    compare(&c, &o, 2);
}
END_TEST

START_TEST(same_body_converted)
{
    struct lk_lines_receiver_config c = cfg_plain();
    static const char *const with_level[] = {"service_name", "level", "source"};
    struct lk_loki_encode_opts o = {
        .format = LK_LOKI_PROTOBUF, .labels = with_level, .nlabels = 3, .now_ns = RECV_NS};
    ck_assert(!lk_loki_takes_entries(&o));
    compare(&c, &o, 2);
    struct lk_loki_encode_opts j = {.format = LK_LOKI_JSON,
                                    .labels = default_labels,
                                    .nlabels = 5,
                                    .host = "h",
                                    .now_ns = RECV_NS};
    ck_assert(!lk_loki_takes_entries(&j));
    compare(&c, &j, 2);
}
END_TEST

START_TEST(same_body_no_metadata)
{
    struct lk_lines_receiver_config c = cfg_plain();
    struct lk_loki_encode_opts o = {.format = LK_LOKI_PROTOBUF,
                                    .labels = default_labels,
                                    .nlabels = 5,
                                    .host = "host-1",
                                    .now_ns = RECV_NS,
                                    .no_metadata = true,
                                    .md_max_entries = LK_LOKI_MD_MAX_ENTRIES,
                                    .md_max_bytes = LK_LOKI_MD_MAX_BYTES};
    compare(&c, &o, 1);
    compare(&c, &o, 3);
    o.format = LK_LOKI_JSON;
    compare(&c, &o, 2);
}
END_TEST

START_TEST(same_body_limits)
{
    struct lk_lines_receiver_config c = cfg_plain();
    struct lk_loki_encode_opts o = {.format = LK_LOKI_PROTOBUF,
                                    .labels = default_labels,
                                    .nlabels = 5,
                                    .host = "host-1",
                                    .now_ns = RECV_NS};
    lk_buf plain, ent;
    uint32_t n;
    uint64_t r;
    /* Loki's defaults cut nothing here: the same bytes as no limits. */
    lk_buf_init(&plain, SIZE_MAX);
    lk_buf_init(&ent, SIZE_MAX);
    build(&c, LK_FORM_LOKI_ENTRIES, &ent, &n);
    encode(&o, &ent, LK_FORM_LOKI_ENTRIES, 2, &plain, &r);
    o.md_max_entries = LK_LOKI_MD_MAX_ENTRIES;
    o.md_max_bytes = LK_LOKI_MD_MAX_BYTES;
    lk_buf limited;
    lk_buf_init(&limited, SIZE_MAX);
    encode(&o, &ent, LK_FORM_LOKI_ENTRIES, 2, &limited, &r);
    ck_assert_uint_eq(last_cuts[0] + last_cuts[1], 0);
    ck_assert_uint_eq(limited.len, plain.len);
    ck_assert(memcmp(limited.data, plain.data, plain.len) == 0);
    compare(&c, &o, 2);
    /* Small limits cut in both forms alike: by count, by size, both. */
    o.md_max_entries = 4;
    o.md_max_bytes = 0;
    compare(&c, &o, 2);
    ck_assert_uint_gt(last_cuts[0], 0);
    o.md_max_entries = 0;
    o.md_max_bytes = 60;
    compare(&c, &o, 2);
    ck_assert_uint_gt(last_cuts[1], 0);
    o.md_max_entries = 3;
    o.md_max_bytes = 45;
    compare(&c, &o, 1);
    ck_assert_uint_gt(last_cuts[0] + last_cuts[1], 0);
    o.format = LK_LOKI_JSON;
    compare(&c, &o, 2);
    lk_buf_fini(&plain);
    lk_buf_fini(&ent);
    lk_buf_fini(&limited);
}
END_TEST

START_TEST(static_label_named_like_metadata_keeps_otlp)
{
    struct lk_lines_receiver_config c = cfg_plain();
    struct lk_header labels[] = {{"trace.id", "x"}};
    c.labels = labels;
    c.nlabels = 1;
    struct lk_lines_encoder e;
    ck_assert_int_eq(lk_lines_encoder_init(&e, &c, "h", "lines"), 0);
    e.want_entries = true;
    struct lk_lines_origin org = {.process_name = "p"};
    org.cred.pid = 1;
    ck_assert_int_eq(lk_lines_encoder_add(&e, &org, (const uint8_t *)"x", 1, RECV_NS), 0);
    ck_assert_uint_eq(e.form, LK_FORM_OTLP);
    lk_lines_encoder_fini(&e);
}
END_TEST

START_TEST(malformed_entries_fail_cleanly)
{
    struct lk_lines_receiver_config c = cfg_plain();
    lk_buf ent, out;
    uint32_t n;
    lk_buf_init(&ent, SIZE_MAX);
    lk_buf_init(&out, SIZE_MAX);
    build(&c, LK_FORM_LOKI_ENTRIES, &ent, &n);
    struct lk_loki_encoder *enc;
    ck_assert_int_eq(lk_loki_encoder_create(&enc), 0);
    struct lk_loki_encode_opts o = {.format = LK_LOKI_PROTOBUF,
                                    .labels = default_labels,
                                    .nlabels = 5,
                                    .now_ns = RECV_NS};
    struct lk_loki_encode_opts j = o;
    j.format = LK_LOKI_JSON;
    uint8_t form = LK_FORM_LOKI_ENTRIES;
    uint64_t r, s;
    /* Every truncation: an error or (cut at a run's end) fewer records. */
    for (size_t cut = 1; cut < ent.len; cut += 7) {
        uint8_t *copy = malloc(cut);
        memcpy(copy, ent.data, cut);
        struct iovec iov = {copy, cut};
        for (int k = 0; k < 2; k++) {
            lk_buf_reset(&out);
            int rc = lk_loki_encode_forms(enc, k ? &j : &o, &iov, &form, 1, &out, &r, &s);
            ck_assert_msg(rc == LK_EPROTO || (rc == 0 && r < n), "cut %zu: rc %d", cut, rc);
        }
        free(copy);
    }
    /* A run that declares more entries than it holds. */
    lk_buf bad;
    lk_buf_init(&bad, SIZE_MAX);
    size_t at;
    ck_assert_int_eq(lk_loki_run_open(&bad, NULL, 0, &at), 0);
    lk_loki_run_close(&bad, at, 2);
    struct iovec iov = {bad.data, bad.len};
    ck_assert_int_eq(lk_loki_encode_forms(enc, &o, &iov, &form, 1, &out, &r, &s), LK_EPROTO);
    /* Entries with an empty core (a producer always writes the timestamp),
     * taken as they are and converted. */
    static const uint8_t head[LK_LOKI_ENTRY_HEAD + 1] = {0, 2, 0, 0, 0, 0x75, 0, 0, 16, 0};
    lk_buf_reset(&bad);
    ck_assert_int_eq(lk_loki_run_open(&bad, NULL, 0, &at), 0);
    ck_assert_int_eq(lk_buf_append(&bad, head, sizeof(head)), 0);
    ck_assert_int_eq(lk_buf_append(&bad, head, sizeof(head)), 0);
    lk_loki_run_close(&bad, at, 2);
    iov.iov_base = bad.data;
    iov.iov_len = bad.len;
    ck_assert_int_eq(lk_loki_encode_forms(enc, &o, &iov, &form, 1, &out, &r, &s), LK_EPROTO);
    ck_assert_int_eq(lk_loki_encode_forms(enc, &j, &iov, &form, 1, &out, &r, &s), LK_EPROTO);
    lk_buf_fini(&bad);
    lk_loki_encoder_destroy(enc);
    lk_buf_fini(&ent);
    lk_buf_fini(&out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loki_entries");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, same_body_default_labels);
    tcase_add_test(tc, same_body_static_labels);
    tcase_add_test(tc, same_body_converted);
    tcase_add_test(tc, same_body_no_metadata);
    tcase_add_test(tc, same_body_limits);
    tcase_add_test(tc, static_label_named_like_metadata_keeps_otlp);
    tcase_add_test(tc, malformed_entries_fail_cleanly);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
