/*
 * Loki exporter helpers that need no network: how an HTTP status ends a
 * push, and how a 400 body is read (reason and refused count).
 *
 * The 400 bodies follow the messages Loki's distributor and ingester write
 * (pkg/validation/validate.go, pkg/ingester/stream.go): "entry with
 * timestamp ... ignored, reason: '...',\nuser '...', total ignored: N out of
 * M for stream: {...}" per stream, joined when several streams refuse.
 * Every body is read from an exact-size heap copy so that ASan catches a
 * read past its end.
 */
#include "exporters/loki.h"

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/exporter.h"

/* ---- classify ---- */

START_TEST(classify_statuses)
{
    static const struct {
        int status;
        enum lk_export_result want;
    } cases[] = {
        {200, LK_EXPORT_OK},         {204, LK_EXPORT_OK},
        {0, LK_EXPORT_RETRY},        /* no response: transport error or timeout */
        {400, LK_EXPORT_PERMANENT},  /* partly refused: read, counted, not retried */
        {401, LK_EXPORT_PERMANENT},  {403, LK_EXPORT_PERMANENT},
        {404, LK_EXPORT_PERMANENT},  {413, LK_EXPORT_PERMANENT},
        {429, LK_EXPORT_RETRY},      {500, LK_EXPORT_RETRY},
        {502, LK_EXPORT_RETRY},      {503, LK_EXPORT_RETRY},
        {504, LK_EXPORT_RETRY},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(lk_loki_classify(cases[i].status) == cases[i].want,
                      "status %d: got %d, expected %d", cases[i].status,
                      lk_loki_classify(cases[i].status), cases[i].want);
}
END_TEST

/* ---- refusal bodies ---- */

static const char *refusal(const void *body, size_t len, uint64_t *ignored)
{
    uint8_t *copy = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, body, len);
    *ignored = 12345; /* must be overwritten */
    const char *why = lk__loki_refusal(copy, len, ignored);
    free(copy);
    ck_assert_ptr_nonnull(why);
    return why;
}

static void assert_refusal(const char *body, const char *reason, uint64_t ignored)
{
    uint64_t n;
    const char *why = refusal(body, strlen(body), &n);
    ck_assert_msg(strcmp(why, reason) == 0, "reason '%s', expected '%s' for:\n%s", why,
                  reason, body);
    ck_assert_msg(n == ignored, "ignored %llu, expected %llu for:\n%s",
                  (unsigned long long)n, (unsigned long long)ignored, body);
}

START_TEST(refusal_too_far_behind)
{
    assert_refusal("entry with timestamp 2026-11-25 10:00:00 +0000 UTC ignored, reason: 'entry "
                   "too far behind, entry timestamp is: 2026-11-25T10:00:00Z, oldest acceptable "
                   "timestamp is: 2026-11-25T11:00:00Z',\n"
                   "entry with timestamp 2026-11-25 10:00:01 +0000 UTC ignored, reason: 'entry "
                   "too far behind, entry timestamp is: 2026-11-25T10:00:01Z, oldest acceptable "
                   "timestamp is: 2026-11-25T11:00:00Z',\n"
                   "user 'fake', total ignored: 2 out of 5 for stream: {service_name=\"api\"}",
                   "too_old", 2);
}
END_TEST

START_TEST(refusal_two_streams_sum)
{
    assert_refusal("entry with timestamp 2026-11-25 10:00:00 +0000 UTC ignored, reason: 'entry "
                   "too far behind, entry timestamp is: 2026-11-25T10:00:00Z, oldest acceptable "
                   "timestamp is: 2026-11-25T11:00:00Z',\n"
                   "user 'fake', total ignored: 2 out of 5 for stream: {service_name=\"api\"}\n"
                   "entry with timestamp 2026-11-25 10:00:00 +0000 UTC ignored, reason: 'entry "
                   "too far behind, entry timestamp is: 2026-11-25T10:00:00Z, oldest acceptable "
                   "timestamp is: 2026-11-25T11:00:00Z',\n"
                   "user 'fake', total ignored: 7 out of 7 for stream: "
                   "{host=\"h1\", service_name=\"worker\", source=\"lines\"}\n",
                   "too_old", 9);
    /* Counts with many digits add up too. */
    assert_refusal("user 'fake', total ignored: 123456 out of 200000 for stream: {a=\"1\"}\n"
                   "user 'fake', total ignored: 1000000 out of 1000000 for stream: {a=\"2\"}",
                   "bad_request", 1123456);
}
END_TEST

START_TEST(refusal_out_of_order)
{
    /* Older ingesters: the stream per entry, then one total. */
    assert_refusal("entry with timestamp 2026-11-25 10:00:00 +0000 UTC ignored, reason: 'entry "
                   "out of order' for stream: {service_name=\"api\"},\n"
                   "entry with timestamp 2026-11-25 10:00:01 +0000 UTC ignored, reason: 'entry "
                   "out of order' for stream: {service_name=\"api\"},\n"
                   "total ignored: 2 out of 3",
                   "out_of_order", 2);
}
END_TEST

START_TEST(refusal_too_old_and_too_new)
{
    /* The distributor's checks come without a count: the caller then
     * counts the whole batch. */
    assert_refusal("entry for stream '{service_name=\"api\"}' has timestamp too old: "
                   "2026-11-18T10:00:00Z, oldest acceptable timestamp is: 2026-11-18T11:00:00Z",
                   "too_old", 0);
    assert_refusal("entry for stream '{service_name=\"api\"}' has timestamp too new: "
                   "2026-11-26T10:00:00Z",
                   "too_new", 0);
}
END_TEST

START_TEST(refusal_line_too_long)
{
    /* Loki's own wording (validation.LineTooLongErrorMsg). */
    assert_refusal("Max entry size '262144' bytes exceeded for stream '{service_name=\"api\"}' "
                   "while adding an entry with length '300000' bytes",
                   "line_too_long", 0);
    assert_refusal("entry with timestamp 2026-11-25 10:00:00 +0000 UTC ignored, reason: 'line "
                   "too long',\nuser 'fake', total ignored: 1 out of 4 for stream: {a=\"b\"}",
                   "line_too_long", 1);
}
END_TEST

START_TEST(refusal_rate_limited)
{
    assert_refusal("entry with timestamp 2026-11-25 10:00:00 +0000 UTC ignored, reason: 'Per "
                   "stream rate limit exceeded (limit: 3MB/sec) while attempting to ingest for "
                   "stream '{service_name=\"api\"}' totaling 1.2kB, consider splitting a stream "
                   "via additional labels or contact your Loki administrator to see if the "
                   "limit can be increased',\n"
                   "user 'fake', total ignored: 4 out of 4 for stream: {service_name=\"api\"}",
                   "rate_limited", 4);
    assert_refusal("Ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec) while "
                   "attempting to ingest '1000' lines totaling '5000000' bytes, reduce log "
                   "volume or contact your Loki administrator to see if the limit can be "
                   "increased",
                   "rate_limited", 0);
}
END_TEST

START_TEST(refusal_without_a_known_reason)
{
    assert_refusal("error at least one valid stream is required for ingestion", "bad_request",
                   0);
    assert_refusal("Error parsing labels '{service_name=}' with error: 1:15: parse error: "
                   "unexpected \"}\" in label matcher",
                   "bad_request", 0);
    assert_refusal("", "bad_request", 0);
    /* The phrase without a number, or cut at the end of the body. */
    assert_refusal("user 'fake', total ignored:  out of 3", "bad_request", 0);
    assert_refusal("total ignored: ", "bad_request", 0);
    assert_refusal("total ignored", "bad_request", 0);
    assert_refusal("total ignored: 5", "bad_request", 5);
    /* Case does not matter. */
    assert_refusal("Entry Out Of Order, TOTAL IGNORED: 3 out of 3", "out_of_order", 3);
}
END_TEST

START_TEST(refusal_binary_junk)
{
    uint8_t junk[4096];
    uint32_t x = 0x9e3779b9u;
    for (size_t i = 0; i < sizeof(junk); i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        junk[i] = (uint8_t)x;
    }
    /* Random bytes at every length: no reason, no count, no overread. */
    for (size_t len = 0; len <= 300; len++) {
        uint64_t n;
        const char *why = refusal(junk, len, &n);
        ck_assert_str_eq(why, "bad_request");
        ck_assert_uint_eq(n, 0);
    }
    uint64_t n;
    ck_assert_str_eq(refusal(junk, sizeof(junk), &n), "bad_request");
    ck_assert_uint_eq(n, 0);

    /* NUL bytes do not end the body: text after them is still read. */
    static const char nul[] = "\0\0\xff\xfe entry out of order\0total ignored: 6 out of 9\0";
    ck_assert_str_eq(refusal(nul, sizeof(nul) - 1, &n), "out_of_order");
    ck_assert_uint_eq(n, 6);

    /* Every prefix of a real body, cut anywhere. */
    static const char body[] = "entry with timestamp 2026-11-25 10:00:00 +0000 UTC ignored, "
                               "reason: 'entry out of order',\nuser 'fake', total ignored: "
                               "42 out of 50 for stream: {a=\"b\"}";
    for (size_t len = 0; len <= sizeof(body) - 1; len++) {
        const char *why = refusal(body, len, &n);
        ck_assert(strcmp(why, "out_of_order") == 0 || strcmp(why, "bad_request") == 0);
        ck_assert_uint_le(n, 42);
    }
    ck_assert_str_eq(refusal(body, sizeof(body) - 1, &n), "out_of_order");
    ck_assert_uint_eq(n, 42);

    /* A count too large for 64 bits does not wrap to a small one. */
    const char *huge = "total ignored: 99999999999999999999999999 out of 3";
    refusal(huge, strlen(huge), &n);
    ck_assert_uint_ge(n, 1000000000000000000ull);
}
END_TEST

/* Loki's answer when limits_config.allow_structured_metadata is false
 * (validation.DisallowedStructuredMetadataErrorMsg, grouped by the
 * distributor, written by http.Error with a newline). */
#define MD_REFUSED                                                                         \
    "stream '{service_name=\"api\"}' includes structured metadata, but this feature is "   \
    "disallowed. Please see `limits_config.allow_structured_metadata` or contact your "    \
    "Loki administrator to enable it.\n"

static bool md_refused(int status, const char *body)
{
    return lk__loki_md_refused(status, (const uint8_t *)body, strlen(body));
}

START_TEST(md_refusal_recognised)
{
    ck_assert(md_refused(400, MD_REFUSED));
    /* Grouped: several entries, several streams, mixed with other errors. */
    ck_assert(md_refused(400, "3 errors like: " MD_REFUSED));
    ck_assert(md_refused(400, "2 errors like: stream '{a=\"b\"}' has structured metadata too "
                              "large: '70000' bytes, limit: '65536' bytes.; 5 errors like: "
                              MD_REFUSED));
    ck_assert(md_refused(400, "includes structured metadata, but this feature is disallowed"));
}
END_TEST

START_TEST(md_refusal_near_misses)
{
    /* Another status with the same words: not the refusal (5xx is retried). */
    ck_assert(!md_refused(500, MD_REFUSED));
    ck_assert(!md_refused(429, MD_REFUSED));
    ck_assert(!md_refused(200, MD_REFUSED));
    ck_assert(!md_refused(0, MD_REFUSED));
    /* Loki's other structured-metadata answers are limits, not a refusal. */
    ck_assert(!md_refused(400, "stream '{a=\"b\"}' has structured metadata too large: "
                               "'70000' bytes, limit: '65536' bytes. Please see "
                               "`limits_config.max_structured_metadata_size` or contact "
                               "your Loki administrator to increase it.\n"));
    ck_assert(!md_refused(400, "stream '{a=\"b\"}' has too many structured metadata labels: "
                               "'130', limit: '128'. Please see "
                               "`limits_config.max_structured_metadata_entries_count` or "
                               "contact your Loki administrator to increase it.\n"));
    /* Cut short, other words, other case. */
    ck_assert(!md_refused(400, "stream '{a=\"b\"}' includes structured metadata, but this "
                               "feature is disall"));
    ck_assert(!md_refused(400, "structured metadata is disallowed"));
    ck_assert(!md_refused(400, "INCLUDES STRUCTURED METADATA, BUT THIS FEATURE IS DISALLOWED"));
    ck_assert(!md_refused(400, ""));
    ck_assert(!lk__loki_md_refused(400, NULL, 0));
    /* The refusal is not one of the counted 400 reasons either. */
    uint64_t ignored;
    ck_assert_str_eq(lk__loki_refusal((const uint8_t *)MD_REFUSED, strlen(MD_REFUSED),
                                      &ignored),
                     "bad_request");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("loki");
    struct {
        const char *name;
        const TTest *tests[4];
    } cases[] = {
        {"classify", {classify_statuses}},
        {"refusal_too_old", {refusal_too_far_behind, refusal_too_old_and_too_new}},
        {"refusal_sum", {refusal_two_streams_sum}},
        {"refusal_out_of_order", {refusal_out_of_order}},
        {"refusal_line_too_long", {refusal_line_too_long}},
        {"refusal_rate_limited", {refusal_rate_limited}},
        {"refusal_unknown", {refusal_without_a_known_reason}},
        {"refusal_junk", {refusal_binary_junk}},
        {"md_refusal", {md_refusal_recognised, md_refusal_near_misses}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *t = tcase_create(cases[i].name);
        for (size_t j = 0; j < 4 && cases[i].tests[j] != NULL; j++)
            tcase_add_test(t, cases[i].tests[j]);
        suite_add_tcase(s, t);
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
