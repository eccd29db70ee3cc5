/*
 * lk_line_parse, lk_parse_timestamp and the format names.
 *
 * Lines are real output of zerolog, zap, slog, logrus, bunyan, pino and
 * logfmt writers, then the edge cases of each parser. Expected instants were
 * computed with `date -u -d <instant> +%s` when the tests were written
 * (2026-11-25T10:00:00Z is 1795600800 s) and are constants here, not
 * recomputed by the code under test. Every parse reads an exact-size heap
 * copy of the line, so ASan catches a read past its end.
 */
#include "receivers/lineparse.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/severity.h"
#include "core/utf8.h"

#define T0 1795600800ull /* 2026-11-25T10:00:00Z, s */
#define NS 1000000000ull

static struct lk_line_fields f;

static void parse_bytes(enum lk_line_format fmt, const void *line, size_t n)
{
    uint8_t *copy = malloc(n > 0 ? n : 1);

    ck_assert_ptr_nonnull(copy);
    memcpy(copy, line, n);
    /* Garbage first: the parser must overwrite every field. */
    memset(&f, 0xa5, sizeof(f));
    lk_line_parse(fmt, copy, n, &f);
    free(copy);
    ck_assert_uint_lt(f.level_len, LK_LINE_LEVEL_MAX);
    ck_assert_uint_lt(f.service_len, LK_LINE_SERVICE_MAX);
    ck_assert_int_eq(f.level[f.level_len], '\0');
    ck_assert_int_eq(f.service[f.service_len], '\0');
    ck_assert(lk_utf8_is_valid((const uint8_t *)f.service, f.service_len));
    ck_assert(lk_utf8_is_valid((const uint8_t *)f.level, f.level_len));
    ck_assert_int_ge(f.severity_number, 0);
    ck_assert_int_le(f.severity_number, 24);
}

static void parse(enum lk_line_format fmt, const char *line)
{
    parse_bytes(fmt, line, strlen(line));
}

/* Asserts that nothing was extracted and the line counts as |fmt|. */
static void assert_empty(enum lk_line_format fmt)
{
    static const uint8_t zero[16];

    ck_assert_int_eq(f.format, fmt);
    ck_assert_uint_eq(f.time_ns, 0);
    ck_assert_int_eq(f.severity_number, 0);
    ck_assert_uint_eq(f.level_len, 0);
    ck_assert_str_eq(f.level, "");
    ck_assert(!f.has_trace_id);
    ck_assert(!f.has_span_id);
    ck_assert_mem_eq(f.trace_id, zero, 16);
    ck_assert_mem_eq(f.span_id, zero, 8);
    ck_assert_uint_eq(f.service_len, 0);
    ck_assert_str_eq(f.service, "");
}

static void assert_raw(const char *line)
{
    parse(LK_LINE_AUTO, line);
    assert_empty(LK_LINE_RAW);
    parse(LK_LINE_JSON, line);
    assert_empty(LK_LINE_RAW);
}

static void assert_hex(const uint8_t *id, size_t n, const char *hex)
{
    char got[33];

    for (size_t i = 0; i < n; i++)
        snprintf(got + 2 * i, 3, "%02x", id[i]);
    ck_assert_str_eq(got, hex);
}

static void assert_level(const char *text, int sev)
{
    ck_assert_str_eq(f.level, text);
    ck_assert_uint_eq(f.level_len, strlen(text));
    ck_assert_int_eq(f.severity_number, sev);
}

static void assert_service(const char *s)
{
    ck_assert_str_eq(f.service, s);
    ck_assert_uint_eq(f.service_len, strlen(s));
}

static bool ts(const char *s, uint64_t *ns)
{
    size_t n = strlen(s);
    char *copy = malloc(n > 0 ? n : 1);
    bool ok;

    ck_assert_ptr_nonnull(copy);
    memcpy(copy, s, n);
    ok = lk_parse_timestamp(copy, n, ns);
    free(copy);
    return ok;
}

static void ts_ok(const char *s, uint64_t want)
{
    uint64_t ns = 7;

    ck_assert_msg(ts(s, &ns), "refused: %s", s);
    ck_assert_msg(ns == want, "%s: got %llu, want %llu", s, (unsigned long long)ns,
                  (unsigned long long)want);
}

static void ts_bad(const char *s)
{
    uint64_t ns = 7;

    ck_assert_msg(!ts(s, &ns), "accepted: %s", s);
    ck_assert_uint_eq(ns, 7);
}

/* ---- real lines ---- */

START_TEST(test_zerolog)
{
    parse(LK_LINE_AUTO,
          "{\"level\":\"info\",\"service\":\"api\",\"trace_id\":"
          "\"4bf92f3577b34da6a3ce929d0e0e4736\",\"time\":\"2026-11-25T10:00:00."
          "123456789Z\",\"message\":\"hello\"}");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    ck_assert_uint_eq(f.time_ns, T0 * NS + 123456789);
    assert_level("info", LK_SEV_INFO);
    ck_assert(f.has_trace_id);
    assert_hex(f.trace_id, 16, "4bf92f3577b34da6a3ce929d0e0e4736");
    ck_assert(!f.has_span_id);
    assert_service("api");

    /* zerolog with zerolog.TimeFieldFormat = TimeFormatUnixMs. */
    parse(LK_LINE_AUTO, "{\"level\":\"debug\",\"time\":1795600800123,\"message\":\"x\"}");
    ck_assert_uint_eq(f.time_ns, 1795600800123000000ull);
    assert_level("debug", LK_SEV_DEBUG);
}
END_TEST

START_TEST(test_zap)
{
    parse(LK_LINE_AUTO,
          "{\"level\":\"warn\",\"ts\":1795600800.1234567,\"caller\":\"main.go:12\","
          "\"msg\":\"slow\",\"traceID\":\"4BF92F3577B34DA6A3CE929D0E0E4736\","
          "\"spanID\":\"00f067aa0ba902b7\"}");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    ck_assert_uint_eq(f.time_ns, T0 * NS + 123456700);
    assert_level("warn", LK_SEV_WARN);
    ck_assert(f.has_trace_id);
    assert_hex(f.trace_id, 16, "4bf92f3577b34da6a3ce929d0e0e4736");
    ck_assert(f.has_span_id);
    assert_hex(f.span_id, 8, "00f067aa0ba902b7");
    assert_service("");

    /* zap's ISO8601 encoder: offset without a colon. dpanic is an error. */
    parse(LK_LINE_AUTO, "{\"level\":\"dpanic\",\"ts\":\"2026-11-25T11:00:00.000+0100\","
                        "\"msg\":\"m\"}");
    ck_assert_uint_eq(f.time_ns, T0 * NS);
    assert_level("dpanic", LK_SEV_ERROR + 1);
}
END_TEST

START_TEST(test_slog)
{
    parse(LK_LINE_AUTO, "{\"time\":\"2026-11-25T11:00:00.5+01:00\",\"level\":\"WARN\","
                        "\"msg\":\"x\",\"service.name\":\"api\"}");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    ck_assert_uint_eq(f.time_ns, T0 * NS + 500000000);
    assert_level("WARN", LK_SEV_WARN);
    assert_service("api");

    /* slog's in-between levels. */
    parse(LK_LINE_AUTO, "{\"time\":\"2026-11-25T10:00:00Z\",\"level\":\"INFO+2\","
                        "\"msg\":\"x\"}");
    assert_level("INFO+2", LK_SEV_INFO + 2);
}
END_TEST

START_TEST(test_logrus)
{
    parse(LK_LINE_AUTO,
          "{\"level\":\"error\",\"msg\":\"boom\",\"time\":\"2026-11-25T10:00:00Z\"}");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    ck_assert_uint_eq(f.time_ns, T0 * NS);
    assert_level("error", LK_SEV_ERROR);
    assert_service("");
}
END_TEST

START_TEST(test_bunyan)
{
    parse(LK_LINE_AUTO, "{\"name\":\"myapp\",\"hostname\":\"h\",\"pid\":1,\"level\":30,"
                        "\"msg\":\"hi\",\"time\":\"2026-11-25T10:00:00.000Z\",\"v\":0}");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    ck_assert_uint_eq(f.time_ns, T0 * NS);
    assert_level("30", LK_SEV_INFO);
    assert_service("myapp");

    /* Without "v" a "name" is not bunyan's and says nothing. */
    parse(LK_LINE_AUTO, "{\"name\":\"myapp\",\"level\":50}");
    assert_level("50", LK_SEV_ERROR);
    assert_service("");

    /* A service key wins over bunyan's name, wherever it is. */
    parse(LK_LINE_AUTO, "{\"name\":\"myapp\",\"v\":0,\"service\":\"real\"}");
    assert_service("real");

    /* A non-string name is ignored; the first string name is kept. */
    parse(LK_LINE_AUTO, "{\"name\":1,\"name\":\"n\\u00e9\",\"name\":\"x\",\"v\":0}");
    assert_service("n\xc3\xa9");
}
END_TEST

START_TEST(test_pino)
{
    parse(LK_LINE_AUTO, "{\"level\":35,\"time\":1795600800123,\"pid\":1,"
                        "\"hostname\":\"h\",\"msg\":\"hi\"}");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    ck_assert_uint_eq(f.time_ns, 1795600800123000000ull);
    assert_level("35", LK_SEV_INFO);
}
END_TEST

START_TEST(test_logfmt_lines)
{
    /* go-kit log. */
    parse(LK_LINE_AUTO,
          "ts=2026-11-25T10:00:00.123Z caller=main.go:12 level=info "
          "msg=\"hello world\" service=api trace_id=4bf92f3577b34da6a3ce929d0e0e4736 "
          "span_id=00f067aa0ba902b7");
    ck_assert_int_eq(f.format, LK_LINE_LOGFMT);
    ck_assert_uint_eq(f.time_ns, T0 * NS + 123000000);
    assert_level("info", LK_SEV_INFO);
    assert_service("api");
    ck_assert(f.has_trace_id);
    assert_hex(f.trace_id, 16, "4bf92f3577b34da6a3ce929d0e0e4736");
    ck_assert(f.has_span_id);
    assert_hex(f.span_id, 8, "00f067aa0ba902b7");

    /* logrus TextFormatter: quoted time and values with escapes. */
    parse(LK_LINE_AUTO, "time=\"2026-11-25T10:00:00Z\" level=warning "
                        "msg=\"disk \\\"sda\\\" full\" service=\"billing api\"");
    ck_assert_int_eq(f.format, LK_LINE_LOGFMT);
    ck_assert_uint_eq(f.time_ns, T0 * NS);
    assert_level("warning", LK_SEV_WARN);
    assert_service("billing api");

    /* log15: t, lvl, +hhmm. */
    parse(LK_LINE_AUTO, "t=2026-11-25T10:00:00+0000 lvl=eror msg=boom service.name=w");
    ck_assert_uint_eq(f.time_ns, T0 * NS);
    assert_level("eror", LK_SEV_ERROR);
    assert_service("w");

    /* Unix times in logfmt are text, read by magnitude. */
    parse(LK_LINE_AUTO, "ts=1795600800.25 severity=30 service_name=s");
    ck_assert_uint_eq(f.time_ns, T0 * NS + 250000000);
    assert_level("30", LK_SEV_INFO);
    assert_service("s");
}
END_TEST

/* ---- logfmt details ---- */

START_TEST(test_logfmt_escapes)
{
    parse(LK_LINE_LOGFMT,
          "service=\"a\\\"b\\\\c\\nd\\te\\qf\\u00e9\\ud83d\\ude00\\u12\" level=\"x\\\\\"");
    assert_service("a\"b\\c\nd\te\\qf\xc3\xa9\xf0\x9f\x98\x80\\u12");
    assert_level("x\\", 0);

    /* A backslash ending the line stays as written. */
    parse(LK_LINE_LOGFMT, "service=\"ab\\");
    assert_service("ab\\");
}
END_TEST

START_TEST(test_logfmt_garbage)
{
    /* Flags, empty keys and empty values take nothing; later keys can. */
    parse(LK_LINE_LOGFMT, "debug = =x level= \"quoted junk\" lvl=info service= "
                          "\tservice=\"\" service=ok");
    ck_assert_int_eq(f.format, LK_LINE_LOGFMT);
    assert_level("info", LK_SEV_INFO);
    assert_service("ok");

    /* An unterminated quote runs to the end of the line. */
    parse(LK_LINE_LOGFMT, "level=info msg=\"unterminated service=api");
    assert_level("info", LK_SEV_INFO);
    assert_service("");

    /* First match wins; garbage values are not usable for time or ids. */
    parse(LK_LINE_LOGFMT, "level=warn level=error time=yesterday ts=1795600800 "
                          "trace_id=xyz trace_id=4bf92f3577b34da6a3ce929d0e0e4736");
    assert_level("warn", LK_SEV_WARN);
    ck_assert_uint_eq(f.time_ns, T0 * NS);
    ck_assert(f.has_trace_id);

    /* Text that is not logfmt at all still parses as LOGFMT in that mode. */
    parse(LK_LINE_LOGFMT, "just some text");
    assert_empty(LK_LINE_LOGFMT);
    parse(LK_LINE_LOGFMT, "");
    assert_empty(LK_LINE_LOGFMT);
    parse(LK_LINE_LOGFMT, "{\"level\":\"info\"}");
    assert_empty(LK_LINE_LOGFMT);
}
END_TEST

START_TEST(test_logfmt_bytes)
{
    /* NUL and invalid UTF-8 in values: repaired, never a failure. */
    static const char line[] = "level=info\0x service=a\xff"
                               "b\xc3 trace_id=4bf92f3577b34da6a3ce929d0e0e4736";

    parse_bytes(LK_LINE_AUTO, line, sizeof(line) - 1);
    ck_assert_int_eq(f.format, LK_LINE_LOGFMT);
    ck_assert_uint_eq(f.level_len, 6);
    ck_assert_mem_eq(f.level, "info\0x", 7);
    ck_assert_int_eq(f.severity_number, 0);
    assert_service("a\xef\xbf\xbd"
                   "b\xef\xbf\xbd");
    ck_assert(f.has_trace_id);

    /* bunyan's name is a JSON-only rule. */
    parse(LK_LINE_LOGFMT, "name=x v=0");
    assert_service("");
}
END_TEST

/* ---- format choice ---- */

START_TEST(test_auto_detection)
{
    parse(LK_LINE_AUTO, " \t {\"level\":\"info\"}  ");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    assert_level("info", LK_SEV_INFO);

    parse(LK_LINE_AUTO, "\t level=info");
    ck_assert_int_eq(f.format, LK_LINE_LOGFMT);
    parse(LK_LINE_AUTO, "_x.y-z9=1 level=info");
    ck_assert_int_eq(f.format, LK_LINE_LOGFMT);
    assert_level("info", LK_SEV_INFO);

    /* Not an identifier then '=': raw in AUTO, logfmt when told. */
    parse(LK_LINE_AUTO, "msg hello level=info");
    assert_empty(LK_LINE_RAW);
    parse(LK_LINE_LOGFMT, "msg hello level=info");
    assert_level("info", LK_SEV_INFO);
    parse(LK_LINE_AUTO, "9a=b level=info");
    assert_empty(LK_LINE_RAW);
    parse(LK_LINE_AUTO, "@timestamp=2026-11-25T10:00:00Z");
    assert_empty(LK_LINE_RAW);
    parse(LK_LINE_AUTO, "level");
    assert_empty(LK_LINE_RAW);

    /* A broken JSON line is raw, not logfmt. */
    parse(LK_LINE_AUTO, "{level=info}");
    assert_empty(LK_LINE_RAW);

    parse(LK_LINE_AUTO, "2026-11-25 10:00:00 INFO plain text");
    assert_empty(LK_LINE_RAW);
    parse(LK_LINE_AUTO, "");
    assert_empty(LK_LINE_RAW);
    parse(LK_LINE_AUTO, "   ");
    assert_empty(LK_LINE_RAW);
}
END_TEST

START_TEST(test_explicit_modes)
{
    parse(LK_LINE_RAW, "{\"level\":\"info\"}");
    assert_empty(LK_LINE_RAW);
    parse(LK_LINE_RAW, "level=info");
    assert_empty(LK_LINE_RAW);
    parse(LK_LINE_JSON, "level=info");
    assert_empty(LK_LINE_RAW);
    parse(LK_LINE_JSON, "\r\n {\"level\":\"info\"}\r\n");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    assert_level("info", LK_SEV_INFO);
}
END_TEST

START_TEST(test_fields_reset)
{
    /* Everything found before the object turns out broken is dropped. */
    assert_raw("{\"level\":\"info\",\"service\":\"api\",\"time\":1795600800,"
               "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\","
               "\"span_id\":\"00f067aa0ba902b7\" oops}");
    assert_raw("{\"level\":\"info\",\"service\":\"api\"");
}
END_TEST

/* ---- JSON structure ---- */

START_TEST(test_json_not_objects)
{
    assert_raw("{");
    assert_raw("}");
    assert_raw("[]");
    assert_raw("\"level\"");
    assert_raw("{\"a\":1,}");
    assert_raw("{,\"a\":1}");
    assert_raw("{\"a\" 1}");
    assert_raw("{\"a\":}");
    assert_raw("{\"a\":1 \"b\":2}");
    assert_raw("{'a':1}");
    assert_raw("{a:1}");
    assert_raw("{\"a\":[1,]}");
    assert_raw("{\"a\":[1 2]}");
    assert_raw("{\"a\":{\"b\"}}");
    assert_raw("{\"a\":{\"b\":1,}}");
    assert_raw("{\"a\":{]}");
    assert_raw("{\"a\":[}");
    assert_raw("{\"a\":[1}");
    assert_raw("{\"a\":tru}");
    assert_raw("{\"a\":True}");
    assert_raw("{\"a\":nul}");
    assert_raw("{\"a\":undefined}");
    assert_raw("{\"a\":\"x}");
    /* Lines that end inside the object. */
    assert_raw("{\"a\"");
    assert_raw("{\"a\":");
    assert_raw("{\"a\":-");
    assert_raw("{\"a\":1");
    assert_raw("{\"a\":1,");
    assert_raw("{\"a\":[");
    assert_raw("{\"a\":[1");
    assert_raw("{\"a\":[1,");
    assert_raw("{\"a\":{\"b");
    assert_raw("{\"a\":{\"b\"");
    assert_raw("{\"a\":{\"b\":");
    assert_raw("{\"a\":{\"b\":1}");
    /* Trailing garbage after the object. */
    assert_raw("{\"level\":\"info\"} x");
    assert_raw("{\"level\":\"info\"}{}");
    assert_raw("{\"level\":\"info\"}}");

    parse(LK_LINE_JSON, "{}");
    assert_empty(LK_LINE_JSON);
    parse(LK_LINE_JSON, " { } \t");
    assert_empty(LK_LINE_JSON);
}
END_TEST

START_TEST(test_json_numbers)
{
    assert_raw("{\"a\":01}");
    assert_raw("{\"a\":-}");
    assert_raw("{\"a\":1.}");
    assert_raw("{\"a\":.5}");
    assert_raw("{\"a\":1e}");
    assert_raw("{\"a\":1e+}");
    assert_raw("{\"a\":+1}");
    assert_raw("{\"a\":0x10}");
    assert_raw("{\"a\":1.5.5}");

    parse(LK_LINE_JSON, "{\"a\":[0,-0,-1.5e+10,2E-3,1e400,123456789012345678901234567890],"
                        "\"level\":\"info\"}");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    assert_level("info", LK_SEV_INFO);
}
END_TEST

START_TEST(test_nested_keys_do_not_match)
{
    parse(LK_LINE_JSON,
          "{\"ctx\":{\"level\":\"error\",\"service\":\"inner\",\"time\":1795600800,"
          "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\"},"
          "\"list\":[{\"level\":\"fatal\"},[\"level\",\"error\"]],"
          "\"msg\":\"level\",\"level\":\"info\"}");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    assert_level("info", LK_SEV_INFO);
    assert_service("");
    ck_assert_uint_eq(f.time_ns, 0);
    ck_assert(!f.has_trace_id);

    /* Only nested: nothing at all. */
    parse(LK_LINE_JSON, "{\"a\":{\"level\":\"error\"}}");
    assert_empty(LK_LINE_JSON);
}
END_TEST

START_TEST(test_strings_with_braces_and_quotes)
{
    parse(LK_LINE_JSON, "{\"msg\":\"}{\\\"level\\\":\\\"error\\\"} [\",\"level\":\"info\","
                        "\"x\":\"\\\\\",\"service\":\"a\\\\\"}");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    assert_level("info", LK_SEV_INFO);
    assert_service("a\\");

    /* A key that only looks like one inside a string value. */
    parse(LK_LINE_JSON, "{\"msg\":\",\\\"level\\\":\\\"error\",\"n\":1}");
    assert_empty(LK_LINE_JSON);
}
END_TEST

START_TEST(test_escapes_in_keys_and_values)
{
    parse(LK_LINE_JSON, "{\"lev\\u0065l\":\"w\\u0061rn\",\"\\u0073ervice\":"
                        "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\",\"trace\\u005fid\":"
                        "\"\\u00344bf92f3577b34da6a3ce929d0e0e473\"}");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    assert_level("warn", LK_SEV_WARN);
    assert_service("a\"b\\c/d\b\f\n\r\t");
    ck_assert(f.has_trace_id);
    assert_hex(f.trace_id, 16, "44bf92f3577b34da6a3ce929d0e0e473");

    /* \u0000 is kept: the length tells. */
    parse(LK_LINE_JSON, "{\"service\":\"a\\u0000b\"}");
    ck_assert_uint_eq(f.service_len, 3);
    ck_assert_mem_eq(f.service, "a\0b", 4);

    /* A key longer than any field name, escaped, matches nothing. */
    parse(LK_LINE_JSON, "{\"\\u006cevel_and_more_text\":\"info\"}");
    assert_empty(LK_LINE_JSON);
    /* An escaped byte in a key makes a different key. */
    parse(LK_LINE_JSON, "{\"level\\n\":\"info\"}");
    assert_empty(LK_LINE_JSON);
}
END_TEST

START_TEST(test_unicode_escapes)
{
    parse(LK_LINE_JSON, "{\"service\":\"caf\\u00e9 \\u20AC \\ud83d\\ude00 \\uD83D\\uDE00\"}");
    assert_service("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf0\x9f\x98\x80");

    /* Lone or reversed surrogates decode to U+FFFD; the line stays JSON. */
    parse(LK_LINE_JSON, "{\"service\":\"a\\ud800b\\udc00c\\ude00\\ud83d\\ud83d\\ude00\"}");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    assert_service("a\xef\xbf\xbd"
                   "b\xef\xbf\xbd"
                   "c\xef\xbf\xbd\xef\xbf\xbd\xf0\x9f\x98\x80");
    parse(LK_LINE_JSON, "{\"service\":\"\\ud83d\"}");
    assert_service("\xef\xbf\xbd");
}
END_TEST

START_TEST(test_invalid_escapes)
{
    assert_raw("{\"level\":\"info\",\"msg\":\"\\x41\"}");
    assert_raw("{\"level\":\"info\",\"msg\":\"\\'\"}");
    assert_raw("{\"level\":\"info\",\"msg\":\"\\U0041\"}");
    assert_raw("{\"level\":\"info\",\"msg\":\"\\u12G4\"}");
    assert_raw("{\"level\":\"info\",\"msg\":\"\\u12\"}");
    assert_raw("{\"level\":\"info\",\"msg\":\"\\u12");
    assert_raw("{\"level\":\"info\",\"msg\":\"\\");
    assert_raw("{\"le\\vel\":\"info\"}");
    assert_raw("{\"level\":\"info\",\"a\":{\"b\":\"\\q\"}}");
}
END_TEST

START_TEST(test_control_bytes)
{
    /* RFC 8259: controls in strings must be escaped. */
    static const char nul[] = "{\"level\":\"info\",\"msg\":\"a\0b\"}";
    static const char del[] = "{\"level\":\"info\",\"msg\":\"a\x7f"
                              "b\"}";

    assert_raw("{\"level\":\"info\",\"msg\":\"a\tb\"}");
    assert_raw("{\"level\":\"info\",\"msg\":\"a\nb\"}");
    assert_raw("{\"level\":\"in\x1f"
               "fo\"}");
    parse_bytes(LK_LINE_AUTO, nul, sizeof(nul) - 1);
    assert_empty(LK_LINE_RAW);
    /* DEL is not a control for JSON. */
    parse_bytes(LK_LINE_AUTO, del, sizeof(del) - 1);
    ck_assert_int_eq(f.format, LK_LINE_JSON);
}
END_TEST

START_TEST(test_invalid_utf8)
{
    /* Bad bytes in strings keep the line JSON; the service is repaired. */
    parse(LK_LINE_JSON, "{\"msg\":\"\xff\xfe\xc0\xaf\",\"service\":\"a\xff"
                        "b\xed\xa0\x80"
                        "c\xe2\x82\",\"level\":\"inf\xc3\"}");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    assert_service("a\xef\xbf\xbd"
                   "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                   "c\xef\xbf\xbd\xef\xbf\xbd");
    assert_level("inf\xef\xbf\xbd", 0);

    /* Bytes >= 0x80 next to quotes and backslashes (0xa2, 0xdc). */
    parse(LK_LINE_JSON, "{\"m\":\"\xa2\xa2\xa2\xa2\xdc\xdc\xdc\xdc\xa2\xdc\xa0\x80\","
                        "\"level\":\"info\"}");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    assert_level("info", LK_SEV_INFO);
}
END_TEST

/* A stop byte at every offset within and across 8-byte blocks. */
START_TEST(test_string_stops_at_every_offset)
{
    char line[128], body[40];

    for (int k = 0; k < 30; k++) {
        memset(body, 'x', (size_t)k);
        body[k] = '\0';
        snprintf(line, sizeof(line), "{\"m\":\"%s\\\"%s\",\"level\":\"info\"}", body, body);
        parse(LK_LINE_JSON, line);
        ck_assert_msg(f.format == LK_LINE_JSON, "quote at %d", k);
        assert_level("info", LK_SEV_INFO);

        snprintf(line, sizeof(line), "{\"m\":\"%s\",\"level\":\"info\"}", body);
        parse(LK_LINE_JSON, line);
        ck_assert_msg(f.format == LK_LINE_JSON, "end at %d", k);
        assert_level("info", LK_SEV_INFO);

        snprintf(line, sizeof(line), "{\"m\":\"%s\x01%s\",\"level\":\"info\"}", body, body);
        parse(LK_LINE_JSON, line);
        ck_assert_msg(f.format == LK_LINE_RAW, "control 01 at %d", k);
        snprintf(line, sizeof(line), "{\"m\":\"%s\x1f%s\",\"level\":\"info\"}", body, body);
        parse(LK_LINE_JSON, line);
        ck_assert_msg(f.format == LK_LINE_RAW, "control 1f at %d", k);
        /* Bytes just past the stops: space, '#', ']', DEL, 0xa2, 0xdc. */
        snprintf(line, sizeof(line), "{\"m\":\"%s \x23\x5d\x7f\xa2\xdc%s\",\"level\":\"info\"}",
                 body, body);
        parse(LK_LINE_JSON, line);
        ck_assert_msg(f.format == LK_LINE_JSON, "near-stops at %d", k);

        /* No closing quote: the scan must stop at the end of the line. */
        snprintf(line, sizeof(line), "{\"level\":\"info\",\"m\":\"%s", body);
        parse(LK_LINE_JSON, line);
        ck_assert_msg(f.format == LK_LINE_RAW, "open at %d", k);
    }
}
END_TEST

START_TEST(test_long_line)
{
    /* A 256 KiB message before the fields. */
    size_t n = 256 * 1024;
    char *line = malloc(n + 200);
    size_t o;

    ck_assert_ptr_nonnull(line);
    o = (size_t)sprintf(line, "{\"msg\":\"");
    for (size_t i = 0; i < n; i++)
        line[o++] = i % 7 == 0 ? '\xc3' : i % 7 == 1 ? '\xa9' : (char)('a' + i % 26);
    o += (size_t)sprintf(line + o, "\",\"level\":\"error\",\"service\":\"big\"}");
    parse_bytes(LK_LINE_AUTO, line, o);
    free(line);
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    assert_level("error", LK_SEV_ERROR);
    assert_service("big");
}
END_TEST

START_TEST(test_depth_limit)
{
    char line[400];
    size_t o;

    /* The line's object and 63 arrays: 64 levels, accepted. */
    o = (size_t)sprintf(line, "{\"a\":");
    for (int i = 0; i < 63; i++)
        line[o++] = '[';
    for (int i = 0; i < 63; i++)
        line[o++] = ']';
    o += (size_t)sprintf(line + o, ",\"level\":\"info\"}");
    parse_bytes(LK_LINE_JSON, line, o);
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    assert_level("info", LK_SEV_INFO);

    /* 65 levels: not JSON. */
    o = (size_t)sprintf(line, "{\"a\":");
    for (int i = 0; i < 64; i++)
        line[o++] = '[';
    for (int i = 0; i < 64; i++)
        line[o++] = ']';
    o += (size_t)sprintf(line + o, ",\"level\":\"info\"}");
    parse_bytes(LK_LINE_JSON, line, o);
    assert_empty(LK_LINE_RAW);

    /* Objects count the same, mixed with arrays. */
    o = (size_t)sprintf(line, "{\"a\":");
    for (int i = 0; i < 63; i++)
        o += (size_t)sprintf(line + o, i % 2 ? "[" : "{\"k\":");
    o += (size_t)sprintf(line + o, "1");
    for (int i = 62; i >= 0; i--)
        line[o++] = i % 2 ? ']' : '}';
    o += (size_t)sprintf(line + o, ",\"level\":\"info\"}");
    parse_bytes(LK_LINE_JSON, line, o);
    ck_assert_int_eq(f.format, LK_LINE_JSON);

    /* Deep and never closed. */
    memset(line, '[', 300);
    memcpy(line, "{\"a\":", 5);
    parse_bytes(LK_LINE_JSON, line, 300);
    assert_empty(LK_LINE_RAW);
}
END_TEST

/* ---- field rules ---- */

START_TEST(test_first_usable_wins)
{
    /* Duplicate keys: the first. */
    parse(LK_LINE_JSON, "{\"level\":\"info\",\"level\":\"error\",\"service\":\"a\","
                        "\"service\":\"b\",\"time\":1795600800,\"time\":1}");
    assert_level("info", LK_SEV_INFO);
    assert_service("a");
    ck_assert_uint_eq(f.time_ns, T0 * NS);

    /* Aliases in line order, not in the order of the list. */
    parse(LK_LINE_JSON, "{\"severity\":\"ERROR\",\"level\":\"info\",\"service\":\"s\","
                        "\"service.name\":\"sn\",\"t\":\"2026-11-25T10:00:00Z\","
                        "\"time\":1}");
    assert_level("ERROR", LK_SEV_ERROR);
    assert_service("s");
    ck_assert_uint_eq(f.time_ns, T0 * NS);

    /* Wrong types, empty strings and unparseable values are not usable. */
    parse(LK_LINE_JSON, "{\"level\":{\"x\":1},\"level\":null,\"lvl\":true,\"lvl\":\"\","
                        "\"log.level\":\"debug\",\"service\":[\"x\"],\"service\":1,"
                        "\"service\":\"\",\"service_name\":\"svc\","
                        "\"time\":\"yesterday\",\"timestamp\":false,\"ts\":1e9,"
                        "\"@timestamp\":\"2026-11-25T10:00:00Z\"}");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    assert_level("debug", LK_SEV_DEBUG);
    assert_service("svc");
    ck_assert_uint_eq(f.time_ns, T0 * NS);

    /* An unknown level word is still the level. */
    parse(LK_LINE_JSON, "{\"level\":\"loud\",\"lvl\":\"info\"}");
    assert_level("loud", 0);
}
END_TEST

START_TEST(test_numeric_levels)
{
    static const struct {
        const char *json, *text;
        int sev;
    } cases[] = {
        {"10", "10", LK_SEV_TRACE},  {"20", "20", LK_SEV_DEBUG},
        {"30", "30", LK_SEV_INFO},   {"40", "40", LK_SEV_WARN},
        {"50", "50", LK_SEV_ERROR},  {"60", "60", LK_SEV_FATAL},
        {"69", "69", LK_SEV_FATAL},  {"70", "70", 0},
        {"9", "9", 0},               {"0", "0", 0},
        {"-30", "-30", 0},           {"30.5", "30.5", 0},
        {"3e1", "3e1", 0},           {"\"30\"", "30", LK_SEV_INFO},
        {"99999999999999999999999", "99999999999999999999999", 0},
        {"300000000000000000000000000000000000000000",
         "3000000000000000000000000000000", 0},
    };
    char line[128];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(line, sizeof(line), "{\"level\":%s}", cases[i].json);
        parse(LK_LINE_JSON, line);
        ck_assert_int_eq(f.format, LK_LINE_JSON);
        assert_level(cases[i].text, cases[i].sev);
    }
}
END_TEST

START_TEST(test_level_truncated)
{
    /* 40 bytes: 31 kept. */
    parse(LK_LINE_JSON, "{\"level\":\"0123456789abcdefghijklmnopqrstuvwxyzABCD\"}");
    assert_level("0123456789abcdefghijklmnopqrstu", 0);
    /* Cut at a code point boundary: 30 ASCII, then a 2-byte char. */
    parse(LK_LINE_JSON, "{\"level\":\"0123456789abcdefghijklmnopqrst\xc3\xa9\"}");
    assert_level("0123456789abcdefghijklmnopqrst", 0);
}
END_TEST

START_TEST(test_service_truncated)
{
    char line[1200], want[300];
    size_t o = (size_t)sprintf(line, "{\"service\":\"");

    /* 300 two-byte characters: 127 of them (254 bytes) fit in 255. */
    for (int i = 0; i < 300; i++)
        o += (size_t)sprintf(line + o, "\xc3\xa9");
    o += (size_t)sprintf(line + o, "\"}");
    parse_bytes(LK_LINE_JSON, line, o);
    ck_assert_uint_eq(f.service_len, 254);
    ck_assert(lk_utf8_is_valid((const uint8_t *)f.service, f.service_len));

    /* 255 ASCII bytes fit exactly. */
    memset(want, 's', 255);
    want[255] = '\0';
    snprintf(line, sizeof(line), "{\"service\":\"%s\"}", want);
    parse(LK_LINE_JSON, line);
    assert_service(want);

    /* 254 ASCII then an escaped 4-byte char: the char is left out. */
    want[254] = '\0';
    snprintf(line, sizeof(line), "{\"service\":\"%s\\ud83d\\ude00\"}", want);
    parse(LK_LINE_JSON, line);
    assert_service(want);

    /* 253 ASCII then an invalid byte: U+FFFD needs 3, only 2 left. */
    want[253] = '\0';
    snprintf(line, sizeof(line), "{\"service\":\"%s\xff\"}", want);
    parse(LK_LINE_JSON, line);
    assert_service(want);
}
END_TEST

START_TEST(test_trace_and_span_ids)
{
    static const char *const trace_keys[] = {"trace_id", "traceId", "traceID", "trace.id"};
    static const char *const span_keys[] = {"span_id", "spanId", "spanID", "span.id"};
    char line[200];

    for (int i = 0; i < 4; i++) {
        snprintf(line, sizeof(line), "{\"%s\":\"0AF7651916CD43DD8448EB211C80319C\","
                 "\"%s\":\"B7AD6B7169203331\"}", trace_keys[i], span_keys[i]);
        parse(LK_LINE_JSON, line);
        ck_assert(f.has_trace_id);
        assert_hex(f.trace_id, 16, "0af7651916cd43dd8448eb211c80319c");
        ck_assert(f.has_span_id);
        assert_hex(f.span_id, 8, "b7ad6b7169203331");
    }

    /* Datadog's decimal id is not read; bad values leave room for later keys. */
    parse(LK_LINE_JSON, "{\"dd.trace_id\":\"1234567890123456789\","
                        "\"trace_id\":\"0af7651916cd43dd8448eb211c80319\","  /* 31 */
                        "\"trace_id\":\"0af7651916cd43dd8448eb211c80319cc\"," /* 33 */
                        "\"trace_id\":\"0af7651916cd43dd8448eb211c80319g\","
                        "\"trace_id\":\"00000000000000000000000000000000\","
                        "\"trace_id\":12345,"
                        "\"span_id\":\"0000000000000000\",\"span_id\":\"b7ad6b71692033\","
                        "\"span_id\":{\"id\":1}}");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    ck_assert(!f.has_trace_id);
    ck_assert(!f.has_span_id);

    parse(LK_LINE_JSON, "{\"trace_id\":\"x\",\"traceId\":\"0af7651916cd43dd8448eb211c80319c\","
                        "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\"}");
    assert_hex(f.trace_id, 16, "0af7651916cd43dd8448eb211c80319c");
}
END_TEST

START_TEST(test_time_fields)
{
    static const char *const keys[] = {"time", "ts", "timestamp", "@timestamp", "t"};
    char line[200];

    for (int i = 0; i < 5; i++) {
        snprintf(line, sizeof(line), "{\"%s\":\"2026-11-25T10:00:00Z\"}", keys[i]);
        parse(LK_LINE_JSON, line);
        ck_assert_uint_eq(f.time_ns, T0 * NS);
        snprintf(line, sizeof(line), "%s=1795600800123456", keys[i]);
        parse(LK_LINE_AUTO, line);
        ck_assert_int_eq(f.format, i == 3 ? LK_LINE_RAW : LK_LINE_LOGFMT);
        ck_assert_uint_eq(f.time_ns, i == 3 ? 0 : 1795600800123456000ull);
    }

    /* JSON numbers of each magnitude, and strings holding numbers. */
    parse(LK_LINE_JSON, "{\"time\":1795600800}");
    ck_assert_uint_eq(f.time_ns, T0 * NS);
    parse(LK_LINE_JSON, "{\"time\":1795600800123}");
    ck_assert_uint_eq(f.time_ns, 1795600800123000000ull);
    parse(LK_LINE_JSON, "{\"time\":1795600800123456}");
    ck_assert_uint_eq(f.time_ns, 1795600800123456000ull);
    parse(LK_LINE_JSON, "{\"time\":1795600800123456789}");
    ck_assert_uint_eq(f.time_ns, 1795600800123456789ull);
    parse(LK_LINE_JSON, "{\"time\":\"1795600800.000001\"}");
    ck_assert_uint_eq(f.time_ns, T0 * NS + 1000);
    parse(LK_LINE_JSON, "{\"time\":\"2026-11-25T10:00:00\\u002e5Z\"}");
    ck_assert_uint_eq(f.time_ns, T0 * NS + 500000000);

    /* Negative, exponent, huge: ignored, the line stays JSON. */
    parse(LK_LINE_JSON, "{\"time\":-1795600800,\"ts\":1.7956008e9,"
                        "\"t\":99999999999999999999,\"level\":\"info\"}");
    ck_assert_int_eq(f.format, LK_LINE_JSON);
    ck_assert_uint_eq(f.time_ns, 0);
    assert_level("info", LK_SEV_INFO);
}
END_TEST

/* ---- timestamps ---- */

START_TEST(test_ts_rfc3339)
{
    ts_ok("2026-11-25T10:00:00Z", T0 * NS);
    ts_ok("2026-11-25t10:00:00z", T0 * NS);
    ts_ok("2026-11-25 10:00:00Z", T0 * NS);
    ts_ok("2026-11-25T10:00:00+00:00", T0 * NS);
    ts_ok("2026-11-25T10:00:00-00:00", T0 * NS);
    ts_ok("2026-11-25T10:00:00+05:30", 1795581000ull * NS);
    ts_ok("2026-11-25T10:00:00+0530", 1795581000ull * NS);
    ts_ok("2026-11-25T11:00:00.5+01:00", T0 * NS + 500000000);
    ts_ok("1970-01-01T00:00:00Z", 0);
    ts_ok("1970-01-02T00:00:00Z", 86400 * NS);
    ts_ok("1970-01-01T00:00:00.000000001Z", 1);
    /* Leap second: the next minute's first second. */
    ts_ok("2026-06-30T23:59:60Z", 1782864000ull * NS);
}
END_TEST

START_TEST(test_ts_calendar)
{
    /* Leap days. */
    ts_ok("2028-02-29T12:00:00Z", 1835438400ull * NS);
    ts_ok("2000-02-29T00:00:00Z", 951782400ull * NS);
    ts_ok("2024-02-29T23:59:59Z", 1709251199ull * NS);
    ts_bad("2026-02-29T00:00:00Z");
    ts_bad("2100-02-29T00:00:00Z");
    ts_ok("2100-03-01T00:00:00Z", 4107542400ull * NS);
    /* Ends of months. */
    ts_ok("2026-04-30T23:59:59Z", 1777593599ull * NS);
    ts_bad("2026-04-31T00:00:00Z");
    ts_ok("2026-12-31T23:59:59.999999999Z", 1798761599ull * NS + 999999999);
    ts_bad("2026-12-32T00:00:00Z");
    ts_ok("2026-03-01T00:00:00Z", 1772323200ull * NS);
    /* Offsets crossing midnight and the year. */
    ts_ok("2026-01-01T00:30:00+01:00", 1767223800ull * NS);
    ts_ok("2025-12-31T23:30:00-01:00", 1767227400ull * NS);
    ts_ok("2026-11-25T23:45:00-00:30", 1795652100ull * NS);
}
END_TEST

START_TEST(test_ts_fractions)
{
    static const uint64_t want[13] = {
        0,         100000000, 120000000, 123000000, 123400000,
        123450000, 123456000, 123456700, 123456780, 123456789,
        123456789, 123456789, 123456789,
    };
    char s[64];

    for (int k = 0; k <= 12; k++) {
        if (k == 0)
            snprintf(s, sizeof(s), "2026-11-25T10:00:00Z");
        else
            snprintf(s, sizeof(s), "2026-11-25T10:00:00.%.*sZ", k, "123456789123");
        ts_ok(s, T0 * NS + want[k]);
    }
    ts_bad("2026-11-25T10:00:00.Z");
    ts_bad("2026-11-25T10:00:00,5Z");
}
END_TEST

START_TEST(test_ts_range)
{
    ts_bad("1969-12-31T23:59:59Z");
    ts_bad("1970-01-01T00:30:00+01:00");
    ts_ok("1970-01-01T00:30:00-01:00", 5400 * NS);
    ts_ok("2262-04-11T00:00:00Z", 9223286400ull * NS);
    ts_ok("2262-04-11T23:47:16.854775807Z", (uint64_t)INT64_MAX);
    ts_bad("2262-04-11T23:47:16.854775808Z");
    ts_bad("2262-12-31T00:00:00Z");
    ts_bad("2263-01-01T00:00:00Z");
    ts_bad("9999-12-31T23:59:59Z");
    ts_bad("0000-01-01T00:00:00Z");
}
END_TEST

START_TEST(test_ts_malformed)
{
    static const char *const bad[] = {
        "",
        "2026-11-25",
        "2026-11-25T10:00:00",
        "2026-11-25T10:00:00.123",
        "2026-11-25T10:00Z",
        "2026-11-25T10:00:00+01",
        "2026-11-25T10:00:00+1:00",
        "2026-11-25T10:00:00+01:0",
        "2026-11-25T10:00:00+01:000",
        "2026-11-25T10:00:00+24:00",
        "2026-11-25T10:00:00+01:60",
        "2026-11-25T10:00:00+01-00",
        "2026-11-25T10:00:00ZZ",
        "2026-11-25T10:00:00Z ",
        " 2026-11-25T10:00:00Z",
        "2026-11-25X10:00:00Z",
        "2026-11-25T24:00:00Z",
        "2026-11-25T10:60:00Z",
        "2026-11-25T10:00:61Z",
        "2026-13-25T10:00:00Z",
        "2026-00-25T10:00:00Z",
        "2026-11-00T10:00:00Z",
        "2026-1-25T10:00:00Z",
        "2026/11/25T10:00:00Z",
        "2026-11-25T10:00:0aZ",
        "+2026-11-25T10:00:00Z",
        "yesterday",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1.",
        ".5",
        "1e9",
        "1.2.3",
        "0x10",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ts_bad(bad[i]);
}
END_TEST

START_TEST(test_ts_numbers)
{
    /* Seconds below 1e11. */
    ts_ok("0", 0);
    ts_ok("1", NS);
    ts_ok("1795600800", T0 * NS);
    ts_ok("1795600800.123456789999", T0 * NS + 123456789);
    ts_ok("0001795600800", T0 * NS);
    ts_ok("9223372036", 9223372036ull * NS);
    ts_ok("9223372036.854775807", (uint64_t)INT64_MAX);
    ts_bad("9223372036.854775808");
    ts_bad("9223372037");
    ts_bad("99999999999");
    /* Milliseconds below 1e14. */
    ts_ok("100000000000", 100000000000ull * 1000000);
    ts_ok("1795600800123", 1795600800123000000ull);
    ts_ok("1795600800123.456789", 1795600800123456789ull);
    ts_ok("9223372036854", 9223372036854000000ull);
    ts_bad("99999999999999");
    /* Microseconds below 1e17. */
    ts_ok("100000000000000", 100000000000000000ull);
    ts_ok("1795600800123456", 1795600800123456000ull);
    ts_ok("1795600800123456.789", 1795600800123456789ull);
    ts_ok("9223372036854775", 9223372036854775000ull);
    ts_bad("99999999999999999");
    /* Nanoseconds from 1e17; a fraction is dropped. */
    ts_ok("100000000000000000", 100000000000000000ull);
    ts_ok("1795600800123456789", 1795600800123456789ull);
    ts_ok("1795600800123456789.9", 1795600800123456789ull);
    ts_ok("9223372036854775807", (uint64_t)INT64_MAX);
    ts_bad("9223372036854775808");
    ts_bad("18446744073709551615");
    ts_bad("18446744073709551616");
    ts_bad("123456789012345678901234567890");
}
END_TEST

/* ---- names and levels ---- */

START_TEST(test_format_names)
{
    static const char *const names[] = {"auto", "json", "logfmt", "raw"};
    enum lk_line_format fmt;

    for (int i = 0; i < 4; i++) {
        fmt = (enum lk_line_format)99;
        ck_assert(lk_line_format_parse(names[i], &fmt));
        ck_assert_int_eq(fmt, i);
        ck_assert_str_eq(lk_line_format_name(fmt), names[i]);
    }
    fmt = LK_LINE_RAW;
    ck_assert(!lk_line_format_parse("JSON", &fmt));
    ck_assert(!lk_line_format_parse("", &fmt));
    ck_assert(!lk_line_format_parse("logfmt ", &fmt));
    ck_assert_int_eq(fmt, LK_LINE_RAW);
    ck_assert_ptr_null(lk_line_format_name((enum lk_line_format)4));
}
END_TEST

START_TEST(test_level_words)
{
    static const struct {
        const char *text;
        int sev;
    } cases[] = {
        {"trace", 1},  {"DEBUG", 5},    {"Info", 9},   {"notice", 10},
        {"WARNING", 13}, {"eror", 17},  {"dpanic", 18}, {"fatal", 21},
        {"panic", 22}, {"emerg", 24},   {"DEBUG-4", 1}, {"INFO-4", 5},
        {"WARN+4", 17}, {"ERROR+8", 24}, {"INFO+", 0},  {"loud", 0},
        {" info ", 9},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(lk_level_to_severity(cases[i].text, strlen(cases[i].text)) ==
                          cases[i].sev,
                      "%s", cases[i].text);
}
END_TEST

static Suite *lineparse_suite(void)
{
    const struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"zerolog", test_zerolog},
        {"zap", test_zap},
        {"slog", test_slog},
        {"logrus", test_logrus},
        {"bunyan", test_bunyan},
        {"pino", test_pino},
        {"logfmt_lines", test_logfmt_lines},
        {"logfmt_escapes", test_logfmt_escapes},
        {"logfmt_garbage", test_logfmt_garbage},
        {"logfmt_bytes", test_logfmt_bytes},
        {"auto_detection", test_auto_detection},
        {"explicit_modes", test_explicit_modes},
        {"fields_reset", test_fields_reset},
        {"json_not_objects", test_json_not_objects},
        {"json_numbers", test_json_numbers},
        {"nested_keys_do_not_match", test_nested_keys_do_not_match},
        {"strings_with_braces_and_quotes", test_strings_with_braces_and_quotes},
        {"escapes_in_keys_and_values", test_escapes_in_keys_and_values},
        {"unicode_escapes", test_unicode_escapes},
        {"invalid_escapes", test_invalid_escapes},
        {"control_bytes", test_control_bytes},
        {"invalid_utf8", test_invalid_utf8},
        {"string_stops_at_every_offset", test_string_stops_at_every_offset},
        {"long_line", test_long_line},
        {"depth_limit", test_depth_limit},
        {"first_usable_wins", test_first_usable_wins},
        {"numeric_levels", test_numeric_levels},
        {"level_truncated", test_level_truncated},
        {"service_truncated", test_service_truncated},
        {"trace_and_span_ids", test_trace_and_span_ids},
        {"time_fields", test_time_fields},
        {"ts_rfc3339", test_ts_rfc3339},
        {"ts_calendar", test_ts_calendar},
        {"ts_fractions", test_ts_fractions},
        {"ts_range", test_ts_range},
        {"ts_malformed", test_ts_malformed},
        {"ts_numbers", test_ts_numbers},
        {"format_names", test_format_names},
        {"level_words", test_level_words},
    };
    Suite *s = suite_create("lineparse");

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lineparse_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
