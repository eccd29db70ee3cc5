/*
 * The line receiver without sockets: the framer (bytes -> lines) and the
 * encoder (lines -> one OTLP ExportLogsServiceRequest).
 *
 * Framer tests feed each input split every way that matters (whole reads,
 * 1-byte reads, every two-piece split, seeded pseudo-random splits; EOF with
 * the last bytes or as a separate empty commit) and require the same list of
 * (line, truncated) callbacks from each. Every run also checks that space()
 * never offers 0 bytes and that the buffer stays within its documented cap.
 *
 * Encoder tests decode finish()'s bytes with the protobuf-c code generated
 * from proto/ and also pass them through lk_otlp_validate, which checks what
 * a strict downstream decoder would (valid UTF-8 in every string included).
 *
 * The idle test runs the receiver on a real Unix socket with a real queue
 * and pipeline, writers on a second thread, and a fake exporter that keeps
 * every batch; assertions run after both are done. The durable tests do the
 * same with writers on the loop's thread (see their section); the failure
 * paths of durable acknowledgement are in durable_test.c.
 */
#include "receivers/lines.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/utf8.h"
#include "pipeline/exporter.h"
#include "pipeline/queue.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "receivers/otlp_validate.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define FRAMER_MIN_CAP (64u * KIB) /* lines.h: holds max(max_line + 2, 64 KiB) */

/* ---- framer: recording callbacks ---- */

struct line {
    uint8_t *p;
    size_t len;
    bool truncated;
};

struct rec {
    struct line *v;
    size_t n, cap;
};

static void rec_line(void *arg, const uint8_t *line, size_t len, bool truncated)
{
    struct rec *r = arg;
    ck_assert_ptr_nonnull(line);
    ck_assert_uint_gt(len, 0); /* empty lines are never reported */
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 8;
        r->v = realloc(r->v, r->cap * sizeof(*r->v));
        ck_assert_ptr_nonnull(r->v);
    }
    struct line *l = &r->v[r->n++];
    l->p = malloc(len);
    ck_assert_ptr_nonnull(l->p);
    memcpy(l->p, line, len);
    l->len = len;
    l->truncated = truncated;
}

static void rec_free(struct rec *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].p);
    free(r->v);
    memset(r, 0, sizeof(*r));
}

/* How a run hands the input to the framer. */
enum plan { WHOLE, BYTES, SPLIT_AT, RANDOM };
/* How EOF is signalled: not at all, with the last bytes, or by a commit of 0. */
enum end { NO_END, END_WITH_DATA, END_ALONE };

struct run {
    enum plan plan;
    size_t split;  /* SPLIT_AT: the first read takes this many bytes */
    uint32_t seed; /* RANDOM */
    enum end end;
};

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static size_t chunk_size(const struct run *how, uint32_t *rng, size_t pos, size_t max_line)
{
    switch (how->plan) {
    case BYTES:
        return 1;
    case SPLIT_AT:
        return pos < how->split ? how->split - pos : SIZE_MAX;
    case RANDOM:
        /* Mostly short reads, sometimes longer than a line may be. */
        return xorshift(rng) % 4 == 0 ? 1 + xorshift(rng) % (2 * max_line + 2)
                                      : 1 + xorshift(rng) % 17;
    case WHOLE:
    default:
        return SIZE_MAX;
    }
}

/* Frames |len| bytes at |in| as |how| says, recording every line in |r|. */
static void frame_run(struct rec *r, uint64_t max_line, const uint8_t *in, size_t len,
                      const struct run *how)
{
    struct lk_line_framer f;
    size_t limit = max_line + 2 > FRAMER_MIN_CAP ? (size_t)max_line + 2 : FRAMER_MIN_CAP;
    uint32_t rng = how->seed | 1;
    size_t pos = 0;

    lk_line_framer_init(&f, max_line);
    while (pos < len) {
        uint8_t *p = NULL;
        size_t n = 0;
        /* Plain ifs: a ck_assert per byte of a 1 MiB input is slow. */
        if (lk_line_framer_space(&f, &p, &n) != 0 || n == 0 || p == NULL)
            ck_abort_msg("space() offered %zu bytes at %zu/%zu (len %zu, cap %zu)", n, pos,
                         len, f.len, f.cap);
        size_t k = chunk_size(how, &rng, pos, (size_t)max_line);
        if (k > n)
            k = n;
        if (k > len - pos)
            k = len - pos;
        memcpy(p, in + pos, k);
        pos += k;
        lk_line_framer_commit(&f, k, pos == len && how->end == END_WITH_DATA, rec_line, r);
        /* A max_line line plus its "\r" may wait for the "\n". */
        if (f.cap > limit || f.len > max_line + 1)
            ck_abort_msg("buffer cap %zu (limit %zu), %zu bytes held (max_line %u)", f.cap,
                         limit, f.len, (unsigned)max_line);
    }
    if (how->end == END_ALONE || (how->end == END_WITH_DATA && len == 0))
        lk_line_framer_commit(&f, 0, true, rec_line, r);
    lk_line_framer_fini(&f);
}

struct want {
    const char *s;
    size_t len; /* 0: strlen(s) */
    bool truncated;
};
#define L(s) {(s), 0, false} /* a whole line */
#define T(s) {(s), 0, true}  /* a line cut to max_line */

static void describe(char *out, size_t outlen, const struct run *how)
{
    static const char *const plans[] = {"whole", "1-byte", "split", "random"};
    static const char *const ends[] = {"no EOF", "EOF with data", "EOF alone"};
    snprintf(out, outlen, "%s (split %zu, seed %u), %s", plans[how->plan], how->split,
             (unsigned)how->seed, ends[how->end]);
}

static void assert_lines(const struct rec *r, const struct want *w, size_t nw,
                         const struct run *how)
{
    char d[128];
    describe(d, sizeof(d), how);
    ck_assert_msg(r->n == nw, "%s: %zu lines, expected %zu (first: '%.*s')", d, r->n, nw,
                  r->n > 0 ? (int)(r->v[0].len < 40 ? r->v[0].len : 40) : 0,
                  r->n > 0 ? (const char *)r->v[0].p : "");
    for (size_t i = 0; i < nw; i++) {
        size_t len = w[i].len ? w[i].len : strlen(w[i].s);
        ck_assert_msg(r->v[i].len == len && memcmp(r->v[i].p, w[i].s, len) == 0,
                      "%s: line %zu is '%.*s' (%zu bytes), expected '%.*s' (%zu bytes)", d, i,
                      (int)(r->v[i].len < 60 ? r->v[i].len : 60), (const char *)r->v[i].p,
                      r->v[i].len, (int)(len < 60 ? len : 60), w[i].s, len);
        ck_assert_msg(r->v[i].truncated == w[i].truncated,
                      "%s: line %zu ('%.*s') truncated=%d, expected %d", d, i,
                      (int)(len < 60 ? len : 60), w[i].s, r->v[i].truncated, w[i].truncated);
    }
}

static void check_run(uint64_t max_line, const uint8_t *in, size_t len, const struct want *w,
                      size_t nw, const struct run *how)
{
    struct rec r = {0};
    frame_run(&r, max_line, in, len, how);
    assert_lines(&r, w, nw, how);
    rec_free(&r);
}

/*
 * Frames |in| every way and requires |w| each time. |at_end| false: EOF is
 * never signalled; true: it is, both with the last bytes and alone.
 * |thorough|: every two-piece split and 40 random ones; else 4 random ones.
 */
static void check_framing_n(uint64_t max_line, const void *in, size_t len, bool at_end,
                            const struct want *w, size_t nw, bool thorough)
{
    const uint8_t *b = in;
    enum end ends[2] = {NO_END, NO_END};
    size_t nends = 1;
    if (at_end) {
        ends[0] = END_WITH_DATA;
        ends[1] = END_ALONE;
        nends = 2;
    }
    for (size_t e = 0; e < nends; e++) {
        struct run how = {.plan = WHOLE, .end = ends[e]};
        check_run(max_line, b, len, w, nw, &how);
        how.plan = BYTES;
        check_run(max_line, b, len, w, nw, &how);
        if (thorough) {
            how.plan = SPLIT_AT;
            for (size_t i = 1; i < len; i++) {
                how.split = i;
                check_run(max_line, b, len, w, nw, &how);
            }
        }
        how.plan = RANDOM;
        for (uint32_t seed = 1; seed <= (thorough ? 40u : 4u); seed++) {
            how.seed = seed * 2654435761u;
            check_run(max_line, b, len, w, nw, &how);
        }
    }
}

#define NW(w) (sizeof(w) / sizeof((w)[0]))

static void check_framing(uint64_t max_line, const char *in, bool at_end,
                          const struct want *w, size_t nw)
{
    check_framing_n(max_line, in, strlen(in), at_end, w, nw, true);
}

/* ---- framer: separators ---- */

START_TEST(framer_lf)
{
    static const struct want w[] = {L("a"), L("bb"), L("ccc d"), L("{\"k\":1}")};
    check_framing(256, "a\nbb\nccc d\n{\"k\":1}\n", false, w, NW(w));
    check_framing(256, "a\nbb\nccc d\n{\"k\":1}\n", true, w, NW(w));
}
END_TEST

START_TEST(framer_crlf)
{
    static const struct want w[] = {L("a"), L("bb"), L("c")};
    check_framing(256, "a\r\nbb\r\nc\r\n", true, w, NW(w));
    /* Mixed endings in one stream. */
    check_framing(256, "a\r\nbb\nc\r\n", true, w, NW(w));
    /* Only one \r goes with the \n. */
    static const struct want w2[] = {L("x\r")};
    check_framing(256, "x\r\r\n", true, w2, NW(w2));
}
END_TEST

START_TEST(framer_lone_cr_is_kept)
{
    static const struct want w[] = {L("a\rb"), L("\rc"), L("progress 10%\rprogress 20%")};
    check_framing(256, "a\rb\n\rc\nprogress 10%\rprogress 20%\n", true, w, NW(w));
}
END_TEST

START_TEST(framer_empty_lines_skipped)
{
    static const struct want w[] = {L("a"), L("b")};
    check_framing(256, "\n\n\r\na\n\n\r\n\r\nb\n\n", true, w, NW(w));
    check_framing(256, "\n\r\n\n", true, NULL, 0);
    check_framing(256, "", true, NULL, 0);
}
END_TEST

START_TEST(framer_partial_last_line_needs_eof)
{
    static const struct want w[] = {L("first"), L("second"), L("tail")};
    /* Without EOF the tail waits for its newline... */
    check_framing(256, "first\nsecond\ntail", false, w, 2);
    /* ...and EOF flushes it. */
    check_framing(256, "first\nsecond\ntail", true, w, NW(w));
    /* A partial line alone. */
    static const struct want w2[] = {L("only")};
    check_framing(256, "only", false, NULL, 0);
    check_framing(256, "only", true, w2, NW(w2));
}
END_TEST

/* The tail kept without EOF is completed by later bytes. */
START_TEST(framer_partial_line_completed_later)
{
    struct lk_line_framer f;
    struct rec r = {0};
    uint8_t *p;
    size_t n;

    lk_line_framer_init(&f, 256);
    ck_assert_int_eq(lk_line_framer_space(&f, &p, &n), 0);
    memcpy(p, "abc\nde", 6);
    lk_line_framer_commit(&f, 6, false, rec_line, &r);
    ck_assert_uint_eq(r.n, 1);
    ck_assert_uint_eq(f.len, 2);
    ck_assert_int_eq(lk_line_framer_space(&f, &p, &n), 0);
    memcpy(p, "f\n", 2);
    lk_line_framer_commit(&f, 2, false, rec_line, &r);
    ck_assert_uint_eq(r.n, 2);
    ck_assert_uint_eq(r.v[1].len, 3);
    ck_assert_mem_eq(r.v[1].p, "def", 3);
    ck_assert_uint_eq(f.len, 0);
    /* EOF with nothing pending reports nothing. */
    lk_line_framer_commit(&f, 0, true, rec_line, &r);
    ck_assert_uint_eq(r.n, 2);
    lk_line_framer_fini(&f);
    rec_free(&r);
}
END_TEST

/* ---- framer: long lines ---- */

START_TEST(framer_line_of_exactly_max_line)
{
    static const struct want w[] = {L("12345678"), L("next")};
    check_framing(8, "12345678\nnext\n", true, w, NW(w));
    /* At EOF too. */
    check_framing(8, "next\n12345678", true, (const struct want[]){L("next"), L("12345678")},
                  2);
}
END_TEST

START_TEST(framer_line_of_max_line_plus_one)
{
    static const struct want w[] = {T("12345678"), L("next")};
    check_framing(8, "123456789\nnext\n", true, w, NW(w));
    check_framing(8, "123456789\r\nnext\n", true, w, NW(w));
    /* A partial over-long line is reported at once, without waiting for EOF. */
    check_framing(8, "123456789", false, w, 1);
    check_framing(8, "123456789", true, w, 1);
    /* Its tail, however long and however split, is skipped up to the newline. */
    check_framing(8, "123456789abcdefghijklmnopqrstuvwxyz\r\nnext\n", true, w, NW(w));
    static const struct want w2[] = {T("aaaaaaaa"), T("bbbbbbbb"), L("c")};
    check_framing(8, "aaaaaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbbbbb\nc\n", true, w2, NW(w2));
}
END_TEST

/*
 * "\r\n" ends a line, so a line of exactly max_line bytes sent with "\r\n"
 * fits, as it does with "\n" (framer_line_of_exactly_max_line).
 */
START_TEST(framer_line_of_exactly_max_line_crlf)
{
    static const struct want w[] = {L("12345678"), L("next")};
    check_framing(8, "12345678\r\nnext\r\n", true, w, NW(w));
}
END_TEST

START_TEST(framer_one_mib_line)
{
    const size_t big = MIB;
    const size_t max_line = KIB;
    const char next[] = "\nnext line\n";
    size_t len = big + sizeof(next) - 1;
    char *in = malloc(len);
    ck_assert_ptr_nonnull(in);
    for (size_t i = 0; i < big; i++)
        in[i] = (char)('a' + i % 26);
    memcpy(in + big, next, sizeof(next) - 1);

    struct want w[] = {{in, max_line, true}, L("next line")};
    check_framing_n(max_line, in, len, true, w, NW(w), false);
    /* Without the newline, at EOF: one truncated line. */
    check_framing_n(max_line, in, big, true, w, 1, false);
    /* Without the newline and without EOF: reported once as well. */
    check_framing_n(max_line, in, big, false, w, 1, false);
    free(in);
}
END_TEST

/* Lines may be longer than the 64 KiB floor: the buffer grows to
 * max_line + 1 and no further, and a full buffer still offers a byte. */
START_TEST(framer_large_max_line)
{
    const size_t max_line = 100 * KIB;
    size_t len = 2 * max_line + 3;
    char *in = malloc(len);
    ck_assert_ptr_nonnull(in);
    memset(in, 'x', max_line);
    in[max_line] = '\n';
    memset(in + max_line + 1, 'y', max_line + 1);
    in[2 * max_line + 2] = '\n';

    struct want w[] = {{in, max_line, false}, {in + max_line + 1, max_line, true}};
    check_framing_n(max_line, in, len, true, w, NW(w), false);
    free(in);
}
END_TEST

/* Cutting never leaves part of a multi-byte sequence at the end. */
START_TEST(framer_cut_keeps_utf8_whole)
{
    static const struct {
        uint64_t max_line;
        const char *in;
        const char *out;
        bool truncated;
    } cases[] = {
        /* 2-byte é cut after its first byte. */
        {5, "abcd\xc3\xa9\n", "abcd", true},
        /* 3-byte € cut after one or two bytes. */
        {5, "abc\xe2\x82\xac\n", "abc", true},
        {5, "abcd\xe2\x82\xac\n", "abcd", true},
        {5, "ab\xe2\x82\xac\n", "ab\xe2\x82\xac", false},
        {5, "ab\xe2\x82\xac!\n", "ab\xe2\x82\xac", true},
        /* 4-byte U+1F600 cut after one, two or three bytes, or not at all. */
        {5, "abcd\xf0\x9f\x98\x80\n", "abcd", true},
        {5, "abc\xf0\x9f\x98\x80\n", "abc", true},
        {5, "ab\xf0\x9f\x98\x80\n", "ab", true},
        {5, "a\xf0\x9f\x98\x80!\n", "a\xf0\x9f\x98\x80", true},
        {4, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\n", "\xf0\x9f\x98\x80", true},
        {7, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\n", "\xf0\x9f\x98\x80", true},
        /* ASCII right before the cut is not touched. */
        {5, "abcdef\xc3\xa9\n", "abcde", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char in[64];
        snprintf(in, sizeof(in), "%snext\n", cases[i].in);
        struct want w[] = {{cases[i].out, 0, cases[i].truncated}, L("next")};
        check_framing(cases[i].max_line, in, true, w, NW(w));
        ck_assert(lk_utf8_is_valid((const uint8_t *)cases[i].out, strlen(cases[i].out)));
    }
    /* A long line of 2-, 3- and 4-byte characters cut at every length. */
    char line[256];
    size_t n = 0;
    while (n + 9 < sizeof(line) - 2) {
        memcpy(line + n, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
        n += 9;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    for (uint64_t max = 4; max < n; max++) {
        struct rec r = {0};
        struct run how = {.plan = WHOLE, .end = END_WITH_DATA};
        frame_run(&r, max, (const uint8_t *)line, n + 1, &how);
        ck_assert_uint_eq(r.n, 1);
        ck_assert(r.v[0].truncated);
        ck_assert_uint_le(r.v[0].len, max);
        ck_assert_uint_ge(r.v[0].len + 3, max); /* at most 3 bytes given up */
        ck_assert_msg(lk_utf8_is_valid(r.v[0].p, r.v[0].len), "max_line %u",
                      (unsigned)max);
        ck_assert_mem_eq(r.v[0].p, line, r.v[0].len);
        rec_free(&r);
    }
}
END_TEST

/* space() hands out room at every fill level, even with the smallest
 * max_line and a buffer holding a whole line's worth of a partial line. */
START_TEST(framer_space_never_zero)
{
    static const uint64_t maxes[] = {1, 2, 255, 256, 4096, FRAMER_MIN_CAP - 1, FRAMER_MIN_CAP,
                                     FRAMER_MIN_CAP + 1};
    for (size_t m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++) {
        struct lk_line_framer f;
        struct rec r = {0};
        size_t limit = maxes[m] + 2 > FRAMER_MIN_CAP ? maxes[m] + 2 : FRAMER_MIN_CAP;
        lk_line_framer_init(&f, maxes[m]);
        /* Fill without newlines, each time as much as is offered. */
        for (int i = 0; i < 64; i++) {
            uint8_t *p;
            size_t n;
            ck_assert_int_eq(lk_line_framer_space(&f, &p, &n), 0);
            ck_assert_msg(n > 0, "max_line %u: 0 bytes offered", (unsigned)maxes[m]);
            ck_assert_uint_le(f.len + n, limit);
            memset(p, 'z', n);
            lk_line_framer_commit(&f, n, false, rec_line, &r);
        }
        lk_line_framer_fini(&f);
        /* One truncated line reported, the rest skipped. */
        ck_assert_uint_eq(r.n, 1);
        ck_assert(r.v[0].truncated);
        ck_assert_uint_eq(r.v[0].len, maxes[m]);
        rec_free(&r);
    }
}
END_TEST

/* ---- encoder ---- */

typedef Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest Req;
typedef Opentelemetry__Proto__Logs__V1__ResourceLogs RLogs;
typedef Opentelemetry__Proto__Logs__V1__LogRecord Rec;
typedef Opentelemetry__Proto__Common__V1__KeyValue KV;

#define NS 1000000000ull
#define T0 1795600800ull /* 2026-11-25T10:00:00Z, s (date -u -d ... +%s) */
#define RECV_NS 1795600900123456789ull

static struct lk_lines_receiver_config cfg_plain(void)
{
    struct lk_lines_receiver_config c;
    memset(&c, 0, sizeof(c));
    c.path = "/tmp/x.sock";
    c.mode = 0600;
    c.format = LK_LINES_AUTO;
    c.max_line_bytes = 256 * KIB;
    c.max_connections = 256;
    return c;
}

static struct lk_lines_origin origin(int pid, unsigned uid, const char *name)
{
    struct lk_lines_origin o;
    memset(&o, 0, sizeof(o));
    o.cred.pid = pid;
    o.cred.uid = uid;
    o.cred.gid = uid;
    o.process_name = name;
    return o;
}

static void add(struct lk_lines_encoder *e, const struct lk_lines_origin *o, const char *line)
{
    /* An exact-size copy: ASan catches a read past the line. */
    size_t n = strlen(line);
    uint8_t *copy = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, line, n);
    ck_assert_int_eq(lk_lines_encoder_add(e, o, copy, n, RECV_NS), 0);
    free(copy);
}

/* finish() -> |nrecs| records, validated and decoded. */
static Req *finish(struct lk_lines_encoder *e, uint32_t nrecs)
{
    const uint8_t *data = NULL;
    size_t len = 0;
    ck_assert_uint_eq(lk_lines_encoder_finish(e, &data, &len), nrecs);
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_gt(len, 0);
    struct lk_otlp_counts counts;
    char why[256] = "";
    int rc = lk_otlp_validate(LK_SIGNAL_LOGS, data, len, &counts, why, sizeof(why));
    ck_assert_msg(rc == 0, "lk_otlp_validate: %d %s", rc, why);
    ck_assert_uint_eq(counts.items, nrecs);
    Req *r = opentelemetry__proto__collector__logs__v1__export_logs_service_request__unpack(
        NULL, len, data);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(counts.resources, r->n_resource_logs);
    return r;
}

static void req_free(Req *r)
{
    opentelemetry__proto__collector__logs__v1__export_logs_service_request__free_unpacked(r,
                                                                                     NULL);
}

/* The one attribute |key| of |rl|'s resource (NULL when absent). */
static const KV *attr(const RLogs *rl, const char *key)
{
    const KV *found = NULL;
    ck_assert_ptr_nonnull(rl->resource);
    for (size_t i = 0; i < rl->resource->n_attributes; i++) {
        const KV *kv = rl->resource->attributes[i];
        if (strcmp(kv->key, key) != 0)
            continue;
        ck_assert_msg(found == NULL, "attribute %s twice", key);
        found = kv;
    }
    return found;
}

static void assert_str_attr(const RLogs *rl, const char *key, const char *want)
{
    const KV *kv = attr(rl, key);
    ck_assert_msg(kv != NULL, "no attribute %s", key);
    ck_assert_ptr_nonnull(kv->value);
    ck_assert_int_eq(kv->value->value_case,
                     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
    ck_assert_str_eq(kv->value->string_value, want);
}

static void assert_int_attr(const RLogs *rl, const char *key, int64_t want)
{
    const KV *kv = attr(rl, key);
    ck_assert_msg(kv != NULL, "no attribute %s", key);
    ck_assert_ptr_nonnull(kv->value);
    ck_assert_int_eq(kv->value->value_case,
                     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE);
    ck_assert_int_eq(kv->value->int_value, want);
}

static const char *service_of(const RLogs *rl)
{
    const KV *kv = attr(rl, "service.name");
    ck_assert_ptr_nonnull(kv);
    ck_assert_int_eq(kv->value->value_case,
                     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
    return kv->value->string_value;
}

/* The records of |rl|: one ScopeLogs without a scope. */
static Rec **records(const RLogs *rl, size_t n)
{
    ck_assert_uint_eq(rl->n_scope_logs, 1);
    ck_assert_ptr_null(rl->scope_logs[0]->scope);
    ck_assert_uint_eq(rl->scope_logs[0]->n_log_records, n);
    return rl->scope_logs[0]->log_records;
}

static void assert_body(const Rec *r, const char *want)
{
    ck_assert_ptr_nonnull(r->body);
    ck_assert_int_eq(r->body->value_case,
                     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
    ck_assert_str_eq(r->body->string_value, want);
}

START_TEST(encoder_record_fields)
{
    struct lk_lines_receiver_config cfg = cfg_plain();
    struct lk_lines_encoder e;
    struct lk_lines_origin o = origin(4242, 1000, "api-server");
    ck_assert_int_eq(lk_lines_encoder_init(&e, &cfg, "host-1", "lines"), 0);

    const char *logfmt = "time=2026-11-25T10:00:00.5Z level=WARN service=api "
                         "trace_id=0af7651916cd43dd8448eb211c80319c span_id=b7ad6b7169203331 "
                         "msg=\"disk almost full\"";
    const char *json = "{\"level\":\"error\",\"time\":\"2026-11-25T10:00:01Z\","
                       "\"service\":\"api\",\"msg\":\"boom\"}";
    const char *raw = "plain text, no fields";
    add(&e, &o, logfmt);
    add(&e, &o, json);
    add(&e, &o, raw);

    Req *r = finish(&e, 3);
    ck_assert_uint_eq(r->n_resource_logs, 2); /* raw has no service field */
    Rec **recs = records(r->resource_logs[0], 2);

    /* logfmt: every field. */
    ck_assert_uint_eq(recs[0]->time_unix_nano, T0 * NS + 500000000ull);
    ck_assert_uint_eq(recs[0]->observed_time_unix_nano, RECV_NS);
    ck_assert_int_eq(recs[0]->severity_number, 13);
    ck_assert_str_eq(recs[0]->severity_text, "WARN"); /* as written */
    assert_body(recs[0], logfmt);
    ck_assert_uint_eq(recs[0]->trace_id.len, 16);
    ck_assert_mem_eq(recs[0]->trace_id.data,
                     "\x0a\xf7\x65\x19\x16\xcd\x43\xdd\x84\x48\xeb\x21\x1c\x80\x31\x9c", 16);
    ck_assert_uint_eq(recs[0]->span_id.len, 8);
    ck_assert_mem_eq(recs[0]->span_id.data, "\xb7\xad\x6b\x71\x69\x20\x33\x31", 8);
    ck_assert_uint_eq(recs[0]->n_attributes, 0);

    /* JSON: the whole line is the body; no ids. */
    ck_assert_uint_eq(recs[1]->time_unix_nano, (T0 + 1) * NS);
    ck_assert_uint_eq(recs[1]->observed_time_unix_nano, RECV_NS);
    ck_assert_int_eq(recs[1]->severity_number, 17);
    ck_assert_str_eq(recs[1]->severity_text, "error");
    assert_body(recs[1], json);
    ck_assert_uint_eq(recs[1]->trace_id.len, 0);
    ck_assert_uint_eq(recs[1]->span_id.len, 0);

    /* Raw: nothing but the body and the receive time. */
    recs = records(r->resource_logs[1], 1);
    ck_assert_uint_eq(recs[0]->time_unix_nano, 0);
    ck_assert_uint_eq(recs[0]->observed_time_unix_nano, RECV_NS);
    ck_assert_int_eq(recs[0]->severity_number, 0);
    ck_assert_str_eq(recs[0]->severity_text, "");
    assert_body(recs[0], raw);
    ck_assert_uint_eq(recs[0]->trace_id.len, 0);
    ck_assert_uint_eq(recs[0]->span_id.len, 0);
    ck_assert_str_eq(service_of(r->resource_logs[1]), "api-server");
    req_free(r);
    lk_lines_encoder_fini(&e);
}
END_TEST

START_TEST(encoder_numeric_level_and_epoch_time)
{
    struct lk_lines_receiver_config cfg = cfg_plain();
    struct lk_lines_encoder e;
    struct lk_lines_origin o = origin(7, 0, "node");
    ck_assert_int_eq(lk_lines_encoder_init(&e, &cfg, "h", "lines"), 0);
    add(&e, &o, "{\"level\":30,\"time\":1795600802000,\"name\":\"x\",\"msg\":\"hi\"}");
    Req *r = finish(&e, 1);
    ck_assert_uint_eq(r->n_resource_logs, 1);
    Rec **recs = records(r->resource_logs[0], 1);
    ck_assert_uint_eq(recs[0]->time_unix_nano, (T0 + 2) * NS);
    ck_assert_int_eq(recs[0]->severity_number, 9);
    ck_assert_str_eq(recs[0]->severity_text, "30");
    /* No "v" key: bunyan's "name" is not a service; the process name is. */
    ck_assert_str_eq(service_of(r->resource_logs[0]), "node");
    /* uid 0 (root) is a real uid. */
    assert_int_attr(r->resource_logs[0], "process.user.id", 0);
    req_free(r);
    lk_lines_encoder_fini(&e);
}
END_TEST

START_TEST(encoder_resource_attributes)
{
    struct lk_lines_receiver_config cfg = cfg_plain();
    struct lk_header labels[] = {{"team", "payments"}, {"env", "prod"}};
    cfg.labels = labels;
    cfg.nlabels = 2;
    struct lk_lines_encoder e;
    struct lk_lines_origin o = origin(4242, 1000, "api-server");
    ck_assert_int_eq(lk_lines_encoder_init(&e, &cfg, "host-1", "lines/app"), 0);
    add(&e, &o, "service=checkout msg=ok");

    Req *r = finish(&e, 1);
    ck_assert_uint_eq(r->n_resource_logs, 1);
    const RLogs *rl = r->resource_logs[0];
    assert_str_attr(rl, "service.name", "checkout");
    assert_str_attr(rl, "host.name", "host-1");
    assert_str_attr(rl, "lookout.source", "lines/app");
    assert_int_attr(rl, "process.pid", 4242);
    assert_int_attr(rl, "process.user.id", 1000);
    assert_str_attr(rl, "process.executable.name", "api-server");
    assert_str_attr(rl, "team", "payments");
    assert_str_attr(rl, "env", "prod");
    assert_str_attr(rl, "loki.resource.labels", "team,env");
    ck_assert_uint_eq(rl->resource->n_attributes, 9);
    ck_assert_str_eq(rl->schema_url, "");
    req_free(r);
    lk_lines_encoder_fini(&e);

    /* No static labels: no hint attribute; unknown pid, uid and name: none
     * of the process attributes. */
    cfg = cfg_plain();
    o = origin(-1, (unsigned)-1, "");
    ck_assert_int_eq(lk_lines_encoder_init(&e, &cfg, "host-2", "lines"), 0);
    add(&e, &o, "hello");
    r = finish(&e, 1);
    rl = r->resource_logs[0];
    assert_str_attr(rl, "host.name", "host-2");
    assert_str_attr(rl, "lookout.source", "lines");
    assert_str_attr(rl, "service.name", "unknown_service");
    ck_assert_ptr_null(attr(rl, "loki.resource.labels"));
    ck_assert_ptr_null(attr(rl, "process.pid"));
    ck_assert_ptr_null(attr(rl, "process.user.id"));
    ck_assert_ptr_null(attr(rl, "process.executable.name"));
    ck_assert_uint_eq(rl->resource->n_attributes, 3);
    req_free(r);
    lk_lines_encoder_fini(&e);
}
END_TEST

START_TEST(encoder_groups_runs_of_one_service)
{
    struct lk_lines_receiver_config cfg = cfg_plain();
    struct lk_lines_encoder e;
    struct lk_lines_origin o = origin(10, 1, "p");
    ck_assert_int_eq(lk_lines_encoder_init(&e, &cfg, "h", "lines"), 0);
    add(&e, &o, "service=a msg=1");
    add(&e, &o, "{\"service\":\"a\",\"msg\":\"2\"}");
    add(&e, &o, "service=b msg=3");
    Req *r = finish(&e, 3);
    ck_assert_uint_eq(r->n_resource_logs, 2);
    ck_assert_str_eq(service_of(r->resource_logs[0]), "a");
    Rec **recs = records(r->resource_logs[0], 2);
    assert_body(recs[0], "service=a msg=1");
    assert_body(recs[1], "{\"service\":\"a\",\"msg\":\"2\"}");
    ck_assert_str_eq(service_of(r->resource_logs[1]), "b");
    recs = records(r->resource_logs[1], 1);
    assert_body(recs[0], "service=b msg=3");
    req_free(r);
    lk_lines_encoder_reset(&e);

    /* Runs, not groups: a, b, a makes three. */
    add(&e, &o, "service=a x=1");
    add(&e, &o, "service=b x=2");
    add(&e, &o, "service=a x=3");
    r = finish(&e, 3);
    ck_assert_uint_eq(r->n_resource_logs, 3);
    ck_assert_str_eq(service_of(r->resource_logs[0]), "a");
    ck_assert_str_eq(service_of(r->resource_logs[1]), "b");
    ck_assert_str_eq(service_of(r->resource_logs[2]), "a");
    for (size_t i = 0; i < 3; i++)
        records(r->resource_logs[i], 1);
    req_free(r);
    lk_lines_encoder_fini(&e);
}
END_TEST

START_TEST(encoder_origin_change_starts_a_resource)
{
    struct lk_lines_receiver_config cfg = cfg_plain();
    cfg.service_name = "svc";
    struct lk_lines_encoder e;
    struct lk_lines_origin o1 = origin(10, 1, "p");
    struct lk_lines_origin o2 = origin(11, 1, "p");  /* other pid */
    struct lk_lines_origin o3 = origin(11, 2, "p");  /* other uid */
    struct lk_lines_origin o4 = origin(11, 2, "q");  /* other name */
    ck_assert_int_eq(lk_lines_encoder_init(&e, &cfg, "h", "lines"), 0);
    add(&e, &o1, "one");
    add(&e, &o1, "two");
    add(&e, &o2, "three");
    add(&e, &o3, "four");
    add(&e, &o4, "five");
    add(&e, &o4, "six");
    Req *r = finish(&e, 6);
    ck_assert_uint_eq(r->n_resource_logs, 4);
    static const size_t counts[] = {2, 1, 1, 2};
    static const int pids[] = {10, 11, 11, 11};
    static const int uids[] = {1, 1, 2, 2};
    static const char *const names[] = {"p", "p", "p", "q"};
    for (size_t i = 0; i < 4; i++) {
        const RLogs *rl = r->resource_logs[i];
        ck_assert_str_eq(service_of(rl), "svc");
        assert_int_attr(rl, "process.pid", pids[i]);
        assert_int_attr(rl, "process.user.id", uids[i]);
        assert_str_attr(rl, "process.executable.name", names[i]);
        records(rl, counts[i]);
    }
    assert_body(records(r->resource_logs[3], 2)[1], "six");
    req_free(r);
    lk_lines_encoder_fini(&e);
}
END_TEST

/* service.name: the line's, else service_name, else the process name, else
 * "unknown_service". */
START_TEST(encoder_service_fallback_order)
{
    static const struct {
        const char *line;
        const char *cfg_service; /* NULL: not configured */
        const char *process;
        const char *want;
    } cases[] = {
        {"service=from-line msg=x", "from-cfg", "from-proc", "from-line"},
        {"{\"service.name\":\"json-svc\"}", "from-cfg", "from-proc", "json-svc"},
        {"msg=x", "from-cfg", "from-proc", "from-cfg"},
        {"plain", "from-cfg", "", "from-cfg"},
        {"msg=x", NULL, "from-proc", "from-proc"},
        {"msg=x", "", "from-proc", "from-proc"}, /* empty is not configured */
        {"msg=x", NULL, "", "unknown_service"},
        {"service= msg=x", NULL, "", "unknown_service"}, /* empty values do not count */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct lk_lines_receiver_config cfg = cfg_plain();
        char svc[64];
        if (cases[i].cfg_service != NULL) {
            snprintf(svc, sizeof(svc), "%s", cases[i].cfg_service);
            cfg.service_name = svc;
        }
        struct lk_lines_encoder e;
        struct lk_lines_origin o = origin(5, 5, cases[i].process);
        ck_assert_int_eq(lk_lines_encoder_init(&e, &cfg, "h", "lines"), 0);
        add(&e, &o, cases[i].line);
        Req *r = finish(&e, 1);
        ck_assert_uint_eq(r->n_resource_logs, 1);
        ck_assert_msg(strcmp(service_of(r->resource_logs[0]), cases[i].want) == 0,
                      "case %zu: service.name '%s', expected '%s'", i,
                      service_of(r->resource_logs[0]), cases[i].want);
        req_free(r);
        lk_lines_encoder_fini(&e);
    }
}
END_TEST

/* lines.h: "nothing of |cfg| is kept" after init (the receiver's config may
 * be freed while the encoder lives on). */
START_TEST(encoder_keeps_nothing_of_cfg)
{
    struct lk_lines_receiver_config cfg = cfg_plain();
    char svc[] = "from-cfg";
    char lname[] = "team", lval[] = "core";
    struct lk_header labels[] = {{lname, lval}};
    cfg.service_name = svc;
    cfg.labels = labels;
    cfg.nlabels = 1;
    struct lk_lines_encoder e;
    struct lk_lines_origin o = origin(5, 5, "proc");
    ck_assert_int_eq(lk_lines_encoder_init(&e, &cfg, "h", "lines"), 0);
    memset(svc, 'X', sizeof(svc) - 1);
    memset(lname, 'Y', sizeof(lname) - 1);
    memset(lval, 'Z', sizeof(lval) - 1);
    add(&e, &o, "msg=no-service");
    Req *r = finish(&e, 1);
    const RLogs *rl = r->resource_logs[0];
    assert_str_attr(rl, "team", "core");
    assert_str_attr(rl, "loki.resource.labels", "team");
    ck_assert_str_eq(service_of(rl), "from-cfg");
    req_free(r);
    lk_lines_encoder_fini(&e);
}
END_TEST

/* format: raw takes nothing from the line, not even its service. */
START_TEST(encoder_honours_format)
{
    struct lk_lines_receiver_config cfg = cfg_plain();
    cfg.format = LK_LINES_RAW;
    struct lk_lines_encoder e;
    struct lk_lines_origin o = origin(5, 5, "proc");
    ck_assert_int_eq(lk_lines_encoder_init(&e, &cfg, "h", "lines"), 0);
    add(&e, &o, "service=a level=error time=2026-11-25T10:00:00Z");
    Req *r = finish(&e, 1);
    ck_assert_str_eq(service_of(r->resource_logs[0]), "proc");
    Rec **recs = records(r->resource_logs[0], 1);
    ck_assert_uint_eq(recs[0]->time_unix_nano, 0);
    ck_assert_int_eq(recs[0]->severity_number, 0);
    assert_body(recs[0], "service=a level=error time=2026-11-25T10:00:00Z");
    req_free(r);
    lk_lines_encoder_fini(&e);
}
END_TEST

START_TEST(encoder_repairs_invalid_utf8)
{
    struct lk_lines_receiver_config cfg = cfg_plain();
    struct lk_lines_encoder e;
    struct lk_lines_origin o = origin(5, 5, "proc");
    ck_assert_int_eq(lk_lines_encoder_init(&e, &cfg, "h", "lines"), 0);
    add(&e, &o, "caf\xc3\xa9 ok");                  /* valid: kept */
    add(&e, &o, "bad \xff\xfe end");                /* two stray bytes */
    add(&e, &o, "overlong \xc0\xaf surrogate \xed\xa0\x80."); /* 2 + 3 bad bytes */
    add(&e, &o, "level=info msg=\"x\xff\"");       /* parsed fields still read */
    add(&e, &o, "cut \xe2\x82");                    /* truncated sequence at the end */
    ck_assert_uint_eq(e.invalid_utf8, 4);
    Req *r = finish(&e, 5);
    Rec **recs = records(r->resource_logs[0], 5);
    assert_body(recs[0], "caf\xc3\xa9 ok");
    assert_body(recs[1], "bad \xef\xbf\xbd\xef\xbf\xbd end");
    assert_body(recs[2], "overlong \xef\xbf\xbd\xef\xbf\xbd surrogate "
                         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd.");
    assert_body(recs[3], "level=info msg=\"x\xef\xbf\xbd\"");
    ck_assert_int_eq(recs[3]->severity_number, 9);
    const char *b = recs[4]->body->string_value;
    ck_assert(lk_utf8_is_valid((const uint8_t *)b, strlen(b)));
    ck_assert_msg(strncmp(b, "cut \xef\xbf\xbd", 7) == 0, "got '%s'", b);
    req_free(r);
    lk_lines_encoder_fini(&e);
}
END_TEST

/* Every string the encoder writes must be valid UTF-8, or a strict decoder
 * downstream refuses the whole request. Process names come from the kernel,
 * which cuts them at 15 bytes whatever the encoding. */
START_TEST(encoder_process_name_stays_valid_utf8)
{
    struct lk_lines_receiver_config cfg = cfg_plain();
    struct lk_lines_encoder e;
    /* "платежи" cut by the kernel to 15 bytes: 7 letters and half of one. */
    struct lk_lines_origin o = origin(5, 5, "\xd0\xbf\xd0\xbb\xd0\xb0\xd1\x82\xd0\xb5\xd0\xb6"
                                            "\xd0\xb8\xd0");
    ck_assert_int_eq(lk_lines_encoder_init(&e, &cfg, "h", "lines"), 0);
    add(&e, &o, "no service here");
    const uint8_t *data;
    size_t len;
    ck_assert_uint_eq(lk_lines_encoder_finish(&e, &data, &len), 1);
    char why[256] = "";
    struct lk_otlp_counts counts;
    int rc = lk_otlp_validate(LK_SIGNAL_LOGS, data, len, &counts, why, sizeof(why));
    ck_assert_msg(rc == 0, "invalid process name passed through: %d %s", rc, why);
    lk_lines_encoder_fini(&e);
}
END_TEST

/* A configured service_name (valid UTF-8, any length) longer than the
 * encoder keeps is cut at a character boundary. */
START_TEST(encoder_long_service_name_stays_valid_utf8)
{
    struct lk_lines_receiver_config cfg = cfg_plain();
    struct lk_lines_encoder e;
    struct lk_lines_origin o = origin(5, 5, "proc");
    const uint8_t *data;
    size_t len;
    char why[256] = "";
    struct lk_otlp_counts counts;
    /* 300 bytes of 2-byte letters. */
    char svc[301];
    for (size_t i = 0; i < 300; i += 2)
        memcpy(svc + i, "\xc3\xa9", 2);
    svc[300] = '\0';
    cfg.service_name = svc;
    ck_assert_int_eq(lk_lines_encoder_init(&e, &cfg, "h", "lines"), 0);
    add(&e, &o, "no service here");
    ck_assert_uint_eq(lk_lines_encoder_finish(&e, &data, &len), 1);
    int rc = lk_otlp_validate(LK_SIGNAL_LOGS, data, len, &counts, why, sizeof(why));
    ck_assert_msg(rc == 0, "long service_name cut inside a character: %d %s", rc, why);
    lk_lines_encoder_fini(&e);
}
END_TEST

START_TEST(encoder_empty_finish_returns_zero)
{
    struct lk_lines_receiver_config cfg = cfg_plain();
    struct lk_lines_encoder e;
    ck_assert_int_eq(lk_lines_encoder_init(&e, &cfg, "h", "lines"), 0);
    const uint8_t *data = (const uint8_t *)"x";
    size_t len = 99;
    ck_assert_uint_eq(lk_lines_encoder_finish(&e, &data, &len), 0);
    ck_assert_uint_eq(len, 0);
    /* After a reset too. */
    lk_lines_encoder_reset(&e);
    ck_assert_uint_eq(lk_lines_encoder_finish(&e, &data, &len), 0);
    ck_assert_uint_eq(len, 0);
    lk_lines_encoder_fini(&e);
}
END_TEST

START_TEST(encoder_reset_and_reuse)
{
    struct lk_lines_receiver_config cfg = cfg_plain();
    struct lk_header labels[] = {{"team", "core"}};
    cfg.labels = labels;
    cfg.nlabels = 1;
    struct lk_lines_encoder e;
    struct lk_lines_origin o = origin(5, 5, "proc");
    ck_assert_int_eq(lk_lines_encoder_init(&e, &cfg, "h", "lines"), 0);
    for (int round = 0; round < 5; round++) {
        char line[64];
        for (int i = 0; i <= round; i++) {
            snprintf(line, sizeof(line), "service=s%d round=%d i=%d", round % 2, round, i);
            add(&e, &o, line);
        }
        Req *r = finish(&e, (uint32_t)round + 1);
        /* Only this round's lines, under one resource with the same
         * static attributes each time. */
        ck_assert_uint_eq(r->n_resource_logs, 1);
        const RLogs *rl = r->resource_logs[0];
        ck_assert_str_eq(service_of(rl), round % 2 ? "s1" : "s0");
        assert_str_attr(rl, "team", "core");
        assert_str_attr(rl, "loki.resource.labels", "team");
        Rec **recs = records(rl, (size_t)round + 1);
        snprintf(line, sizeof(line), "service=s%d round=%d i=0", round % 2, round);
        assert_body(recs[0], line);
        req_free(r);
        lk_lines_encoder_reset(&e);
    }
    /* A different origin after the resets starts clean as well. */
    o = origin(6, 6, "other");
    add(&e, &o, "after");
    Req *r = finish(&e, 1);
    ck_assert_uint_eq(r->n_resource_logs, 1);
    ck_assert_str_eq(service_of(r->resource_logs[0]), "other");
    assert_body(records(r->resource_logs[0], 1)[0], "after");
    req_free(r);
    lk_lines_encoder_fini(&e);
}
END_TEST

/* ---- the receiver on a socket: writers silent inside a line ---- */

#define MAX_BATCHES 64

struct fake {
    lk_exporter base;
    lk_batch *pending[MAX_BATCHES];
    char bodies[1024]; /* " body body ..." of every record sent */
    int calls;
};

static int fake_send(lk_exporter *e, lk_batch *b)
{
    struct fake *f = (struct fake *)e;
    const struct iovec *iov;
    size_t n, total;
    ck_assert_int_lt(f->calls, MAX_BATCHES);
    lk_batch_iov(b, &iov, &n, &total);
    uint8_t *all = malloc(total + 1);
    ck_assert_ptr_nonnull(all);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(all + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    /* Concatenated requests are one request (repeated fields merge). */
    Req *r = opentelemetry__proto__collector__logs__v1__export_logs_service_request__unpack(
        NULL, total, all);
    ck_assert_ptr_nonnull(r);
    for (size_t i = 0; i < r->n_resource_logs; i++)
        for (size_t j = 0; j < r->resource_logs[i]->n_scope_logs; j++) {
            const Opentelemetry__Proto__Logs__V1__ScopeLogs *sl =
                r->resource_logs[i]->scope_logs[j];
            for (size_t k = 0; k < sl->n_log_records; k++) {
                size_t used = strlen(f->bodies);
                snprintf(f->bodies + used, sizeof(f->bodies) - used, " %s",
                         sl->log_records[k]->body->string_value);
            }
        }
    req_free(r);
    free(all);
    f->pending[f->calls++] = b;
    return 0;
}

static void fake_close(lk_exporter *e, void (*done)(void *), void *arg)
{
    if (done)
        done(arg);
}

static const struct lk_exporter_ops fake_ops = {"fake", fake_send, fake_close};

static uv_loop_t sloop;
static uv_async_t writers_done;
static char sock_path[108];

struct idle_result {
    int a_eof;     /* the writer silent inside a line was closed */
    int b_open;    /* the writer silent between lines was not */
    int b_more_ok; /* and could still write */
};

static int writer_connect(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 10}; /* a guard against hanging */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int write_all(int fd, const char *s)
{
    return send(fd, s, strlen(s), MSG_NOSIGNAL) == (ssize_t)strlen(s) ? 0 : -1;
}

static void *writers_main(void *arg)
{
    struct idle_result *res = arg;
    /* b first: were it (wrongly) timed out, that would happen before a. */
    int b = writer_connect();
    int a = writer_connect();
    if (a >= 0 && b >= 0 && write_all(b, "b-line\n") == 0 &&
        write_all(a, "a-full\na-part") == 0) {
        char c;
        res->a_eof = recv(a, &c, 1, 0) == 0;
        ssize_t n = recv(b, &c, 1, MSG_DONTWAIT);
        res->b_open = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        res->b_more_ok = write_all(b, "b-more\n") == 0;
    }
    if (a >= 0)
        close(a);
    if (b >= 0)
        close(b);
    uv_async_send(&writers_done);
    return NULL;
}

static void on_writers_done(uv_async_t *h)
{
    uv_stop(h->loop);
}

static void on_lines_closed(void *arg)
{
    *(bool *)arg = true;
}

START_TEST(idle_writer_inside_a_line_is_closed)
{
    snprintf(sock_path, sizeof(sock_path), "/tmp/lk_lines_idle_%d.sock", (int)getpid());
    ck_assert_int_eq(uv_loop_init(&sloop), 0);
    ck_assert_int_eq(uv_async_init(&sloop, &writers_done, on_writers_done), 0);
    lk_metrics *m = lk_metrics_create();
    struct lk_queue_config qc = {.queue_size = 1000, .max_bytes = 1 << 20,
                                 .overflow = LK_OVERFLOW_REFUSE};
    struct lk_batch_config bc = {.send_batch_size = 1, .send_batch_max_bytes = 1 << 20,
                                 .timeout_ms = 1};
    struct lk_retry_config rc = {.enabled = false, .initial_interval_ms = 1,
                                 .max_interval_ms = 1, .multiplier = 1};
    struct fake f;
    memset(&f, 0, sizeof(f));
    f.base.ops = &fake_ops;
    f.base.name = "fake";
    lk_queue *q;
    lk_pipeline *p;
    struct lk_queue_opts qo = {.signal = LK_SIGNAL_LOGS, .queue = &qc, .batch = &bc,
                               .retry = &rc, .max_concurrency = MAX_BATCHES};
    ck_assert_int_eq(lk_queue_create(&q, &sloop, &qo, &f.base, m), 0);
    ck_assert_int_eq(lk_pipeline_create(&p, LK_SIGNAL_LOGS, &q, 1), 0);
    struct lk_lines_receiver_config cfg = {
        .path = sock_path,
        .mode = 0600,
        .format = LK_LINES_RAW,
        .max_line_bytes = 1024,
        .max_connections = 4,
        .overflow = LK_LINES_BLOCK,
        .idle_timeout_ms = 200,
    };
    lk_lines *r;
    ck_assert_int_eq(lk_lines_start(&r, &sloop, "lines", &cfg, p, m), 0);

    struct idle_result res = {0};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, writers_main, &res), 0);
    uv_run(&sloop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);

    bool closed = false;
    lk_lines_close(r, on_lines_closed, &closed);
    while (lk_queue_held_items(q) > 0 || !closed) {
        for (int i = 0; i < f.calls; i++)
            if (f.pending[i] != NULL) {
                lk_batch_done(f.pending[i], LK_EXPORT_OK, -1, NULL);
                f.pending[i] = NULL;
            }
        uv_run(&sloop, UV_RUN_ONCE);
    }
    uint64_t idle_closed = lk_counter_value(lk_metrics_counter(
        m, "lookout_receiver_connections_closed_total", "",
        "receiver=\"lines\",transport=\"unix\",reason=\"idle_timeout\""));
    uint64_t accepted = lk_counter_value(lk_metrics_counter(
        m, "lookout_receiver_accepted_log_records_total", "",
        "receiver=\"lines\",transport=\"unix\""));
    uv_close((uv_handle_t *)&writers_done, NULL);
    uv_run(&sloop, UV_RUN_DEFAULT);
    lk_pipeline_destroy(p);
    lk_queue_destroy(q);
    uv_run(&sloop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&sloop), 0);
    lk_metrics_destroy(m);

    ck_assert(res.a_eof);
    ck_assert(res.b_open);
    ck_assert(res.b_more_ok);
    ck_assert_uint_eq(idle_closed, 1);
    ck_assert_uint_eq(accepted, 4);
    /* Each writer's lines in order; the partial one taken as a line. */
    ck_assert_msg(strstr(f.bodies, " a-full") != NULL && strstr(f.bodies, " a-part") != NULL &&
                      strstr(f.bodies, " a-full") < strstr(f.bodies, " a-part"),
                  "bodies:%s", f.bodies);
    ck_assert_msg(strstr(f.bodies, " b-line") != NULL && strstr(f.bodies, " b-more") != NULL &&
                      strstr(f.bodies, " b-line") < strstr(f.bodies, " b-more"),
                  "bodies:%s", f.bodies);
}
END_TEST

/* ---- storage.durable: a feed is read again once its items are committed ---- */

/*
 * Writers on the test's own thread, the receiver on the loop. A check handle
 * runs at the end of each loop turn, after that turn's I/O: when the logs
 * queue grew during the turn, it notes whether the receiver was still
 * reading its sockets then (a stream connection's handle, the datagram
 * socket's poll handle, is active while it reads). Without durable
 * acknowledgement it reads on at once; with it, reading resumes from the
 * ack's callback on a later turn (no spool holds a commit here).
 */
#define MAX_GROWTHS 8

static lk_queue *dq;
static lk_pipeline *dp;
static struct fake df;
static lk_metrics *dm;
static lk_lines *dr;
static uv_check_t dobserver;
static uint64_t dheld;
static int dgrowths;
/* At each growth: the socket handles active then (a stream receiver's
 * listener is one of them). */
static int reading_at[MAX_GROWTHS];

static void count_reading(uv_handle_t *h, void *arg)
{
    bool sock = h->type == UV_NAMED_PIPE || h->type == UV_POLL;
    if (sock && uv_is_active(h) && !uv_is_closing(h))
        (*(int *)arg)++;
}

static void on_dcheck(uv_check_t *h)
{
    uint64_t held = lk_queue_held_items(dq);
    if (held <= dheld)
        return;
    dheld = held;
    int n = 0;
    uv_walk(&sloop, count_reading, &n);
    ck_assert_int_lt(dgrowths, MAX_GROWTHS);
    reading_at[dgrowths++] = n;
}

static uint64_t dcounter(const char *name, const char *labels)
{
    return lk_counter_value(lk_metrics_counter(dm, name, "", labels));
}

static void durable_start(bool datagram, bool durable)
{
    snprintf(sock_path, sizeof(sock_path), "/tmp/lk_lines_durable_%d.sock", (int)getpid());
    ck_assert_int_eq(uv_loop_init(&sloop), 0);
    dm = lk_metrics_create();
    static struct lk_queue_config qc = {.queue_size = 1000, .max_bytes = 1 << 20,
                                        .overflow = LK_OVERFLOW_REFUSE};
    static struct lk_batch_config bc = {.send_batch_size = 1, .send_batch_max_bytes = 1 << 20,
                                        .timeout_ms = 1};
    static struct lk_retry_config rc = {.enabled = false, .initial_interval_ms = 1,
                                        .max_interval_ms = 1, .multiplier = 1};
    memset(&df, 0, sizeof(df));
    df.base.ops = &fake_ops;
    df.base.name = "fake";
    struct lk_queue_opts qo = {.signal = LK_SIGNAL_LOGS, .queue = &qc, .batch = &bc,
                               .retry = &rc, .max_concurrency = MAX_BATCHES};
    ck_assert_int_eq(lk_queue_create(&dq, &sloop, &qo, &df.base, dm), 0);
    ck_assert_int_eq(lk_pipeline_create(&dp, LK_SIGNAL_LOGS, &dq, 1), 0);
    lk_pipeline_set_durable(dp, durable);
    struct lk_lines_receiver_config cfg = {
        .path = sock_path,
        .datagram = datagram,
        .mode = 0600,
        .format = LK_LINES_RAW,
        .max_line_bytes = 1024,
        .max_connections = 4,
        .overflow = LK_LINES_BLOCK,
    };
    ck_assert_int_eq(lk_lines_start(&dr, &sloop, "lines", &cfg, dp, dm), 0);
    dheld = 0;
    dgrowths = 0;
    ck_assert_int_eq(uv_check_init(&sloop, &dobserver), 0);
    ck_assert_int_eq(uv_check_start(&dobserver, on_dcheck), 0);
}

static void durable_stop(void)
{
    bool closed = false;
    uv_close((uv_handle_t *)&dobserver, NULL);
    lk_lines_close(dr, on_lines_closed, &closed);
    while (lk_queue_held_items(dq) > 0 || !closed) {
        for (int i = 0; i < df.calls; i++)
            if (df.pending[i] != NULL) {
                lk_batch_done(df.pending[i], LK_EXPORT_OK, -1, NULL);
                df.pending[i] = NULL;
            }
        uv_run(&sloop, UV_RUN_ONCE);
    }
    lk_pipeline_destroy(dp);
    lk_queue_destroy(dq);
    uv_run(&sloop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&sloop), 0);
    lk_metrics_destroy(dm);
    dr = NULL;
}

/* Runs the loop until the logs queue holds |n| records. The writers wrote
 * before: the loop has I/O to wake it until then. */
static void run_until_held(uint64_t n)
{
    while (lk_queue_held_items(dq) < n)
        uv_run(&sloop, UV_RUN_ONCE);
}

static int writer_socket(int type)
{
    int fd = socket(AF_UNIX, type, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

#define UNIX_LABELS "receiver=\"lines\",transport=\"unix\""

START_TEST(durable_stream_is_read_again_after_the_commit)
{
    for (int durable = 0; durable <= 1; durable++) {
        durable_start(false, durable);
        int fd = writer_socket(SOCK_STREAM);
        ck_assert_int_eq(write_all(fd, "one\n"), 0);
        run_until_held(1);
        ck_assert_int_eq(write_all(fd, "two\n"), 0);
        run_until_held(2);
        ck_assert_int_eq(dgrowths, 2);
        for (int i = 0; i < 2; i++)
            /* The listener, and the connection unless it waits for a commit. */
            ck_assert_int_eq(reading_at[i], durable ? 1 : 2);
        /* Accepted once committed. */
        while (dcounter("lookout_receiver_accepted_log_records_total", UNIX_LABELS) < 2)
            uv_run(&sloop, UV_RUN_ONCE);
        close(fd);
        durable_stop();
        ck_assert_str_eq(df.bodies, " one two");
    }
}
END_TEST

START_TEST(durable_datagrams_are_received_again_after_the_commit)
{
    durable_start(true, true);
    int fd = writer_socket(SOCK_DGRAM);
    ck_assert_int_eq(write_all(fd, "d1"), 0);
    run_until_held(1);
    ck_assert_int_eq(write_all(fd, "d2"), 0);
    run_until_held(2);
    ck_assert_int_eq(dgrowths, 2);
    ck_assert_int_eq(reading_at[0], 0); /* the socket's poll stopped */
    ck_assert_int_eq(reading_at[1], 0);
    close(fd);
    durable_stop();
    ck_assert_str_eq(df.bodies, " d1 d2");
}
END_TEST

static double dconns(void)
{
    return lk_gauge_value(lk_metrics_gauge(dm, "lookout_receiver_connections", "", UNIX_LABELS));
}

START_TEST(durable_writer_gone_while_waiting)
{
    durable_start(false, true);
    int fd = writer_socket(SOCK_STREAM);
    ck_assert_int_eq(write_all(fd, "last words\n"), 0);
    close(fd);
    /* Its EOF is read once the commit lets the connection be read again. */
    run_until_held(1);
    while (dconns() > 0)
        uv_run(&sloop, UV_RUN_ONCE);
    ck_assert_uint_eq(dcounter("lookout_receiver_accepted_log_records_total", UNIX_LABELS), 1);
    durable_stop();
    ck_assert_str_eq(df.bodies, " last words");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("lines");
    struct {
        const char *name;
        const TTest *tests[6];
    } cases[] = {
        {"framer_separators", {framer_lf, framer_crlf, framer_lone_cr_is_kept}},
        {"framer_empty_lines", {framer_empty_lines_skipped}},
        {"framer_partial_lines", {framer_partial_last_line_needs_eof,
                                  framer_partial_line_completed_later}},
        {"framer_max_line", {framer_line_of_exactly_max_line, framer_line_of_max_line_plus_one,
                             framer_line_of_exactly_max_line_crlf}},
        {"framer_long_lines", {framer_one_mib_line, framer_large_max_line}},
        {"framer_utf8_cut", {framer_cut_keeps_utf8_whole}},
        {"framer_space", {framer_space_never_zero}},
        {"encoder_fields", {encoder_record_fields, encoder_numeric_level_and_epoch_time,
                            encoder_honours_format}},
        {"encoder_resource", {encoder_resource_attributes}},
        {"encoder_grouping", {encoder_groups_runs_of_one_service,
                              encoder_origin_change_starts_a_resource}},
        {"encoder_service", {encoder_service_fallback_order}},
        {"encoder_cfg_not_kept", {encoder_keeps_nothing_of_cfg}},
        {"encoder_utf8", {encoder_repairs_invalid_utf8, encoder_process_name_stays_valid_utf8,
                          encoder_long_service_name_stays_valid_utf8}},
        {"encoder_reuse", {encoder_empty_finish_returns_zero, encoder_reset_and_reuse}},
        {"idle_writer", {idle_writer_inside_a_line_is_closed}},
        {"durable", {durable_stream_is_read_again_after_the_commit,
                     durable_datagrams_are_received_again_after_the_commit,
                     durable_writer_gone_while_waiting}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *t = tcase_create(cases[i].name);
        tcase_set_timeout(t, 120);
        for (size_t j = 0; j < 6 && cases[i].tests[j] != NULL; j++)
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
