/*
 * OTLP request validation: one generic walker over the schema tables of
 * otlp_schema.c.
 *
 * Each message of the schema is a table of fields indexed by field number
 * (holes are fields the schema does not know, skipped like unknown ones);
 * the walker reads only each field's wire kind, flags and child. It keeps
 * an explicit stack of the messages it is inside and never recurses. The
 * error path re-reads the input to name the failing field, so the success
 * path records nothing but the stack it needs anyway.
 */
#include "core/text.h"
#include "receivers/otlp_validate.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/utf8.h"
#include "receivers/otlp_schema.h"

enum {
    WT_VARINT = 0,
    WT_I64 = 1,
    WT_LEN = 2,
    WT_SGROUP = 3,
    WT_EGROUP = 4,
    WT_I32 = 5
};

/* Field numbers above this are invalid (protobuf's limit, 2^29 - 1). */
#define PB_MAX_FIELD 0x1fffffffu

static const struct lk_pb_field unknown_field = {.kind = LK_PBK_NONE};

/* --- wire primitives. Each returns the byte after what it read, or NULL. */

/* A varint of at most 10 bytes whose value fits in 64 bits. */
static inline const uint8_t *skip_varint(const uint8_t *p, const uint8_t *end)
{
    size_t avail = (size_t)(end - p);
    size_t max = avail < 10 ? avail : 10;

    for (size_t i = 0; i < max; i++) {
        if (p[i] < 0x80) {
            /* The 10th byte carries bit 63 only. */
            if (i == 9 && p[i] > 1)
                return NULL;
            return p + i + 1;
        }
    }
    return NULL;
}

/* A varint of at most 5 bytes (tags and length prefixes: protobuf-c reads no
 * more, and no encoder writes more). */
static inline const uint8_t *read_varint5(const uint8_t *p, const uint8_t *end,
                                          uint64_t *v)
{
    size_t avail = (size_t)(end - p);
    size_t max = avail < 5 ? avail : 5;
    uint64_t x = 0;

    for (size_t i = 0; i < max; i++) {
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (p[i] < 0x80) {
            *v = x;
            return p + i + 1;
        }
    }
    return NULL;
}

/* Short ASCII strings (most keys and values) without a call. */
static inline bool is_ascii_short(const uint8_t *p, size_t n)
{
    uint64_t acc = 0, w;
    size_t i = 0;

    if (n > 32)
        return false;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= p[i];
    return (acc & 0x8080808080808080ull) == 0;
}

/* Why a varint of at most |maxlen| bytes at |p| failed to read. */
static const char *varint_problem(const uint8_t *p, const uint8_t *end,
                                  size_t maxlen)
{
    size_t avail = (size_t)(end - p);

    for (size_t i = 0; i < maxlen; i++) {
        if (i == avail)
            return avail == 0 ? "missing" : "truncated";
        if (p[i] < 0x80)
            return maxlen == 10 ? "overflows 64 bits" : "out of range";
    }
    return maxlen == 10 ? "longer than 10 bytes" : "longer than 5 bytes";
}

/* Skips the value of a field with wire type |wt| (0, 1, 2 or 5) whose tag
 * ends at |p|; the error path uses it on bytes already validated. */
static const uint8_t *skip_value(const uint8_t *p, const uint8_t *end,
                                 unsigned wt)
{
    uint64_t len;

    switch (wt) {
    case WT_VARINT:
        return skip_varint(p, end);
    case WT_I64:
        return end - p >= 8 ? p + 8 : NULL;
    case WT_I32:
        return end - p >= 4 ? p + 4 : NULL;
    case WT_LEN:
        p = read_varint5(p, end, &len);
        if (p == NULL || len > (uint64_t)(end - p))
            return NULL;
        return p + len;
    default:
        return NULL;
    }
}

/* --- error reporting (cold) */

struct frame {
    const struct lk_pb_msg *m;
    const uint8_t *start; /* first byte of the message body */
    const uint8_t *end;   /* one past its last byte */
    const uint8_t *tag;   /* tag of the child field being walked */
    uint32_t once;        /* LK_PBF_ONCE fields seen, bit per field number */
};

struct walk {
    struct frame st[LK_OTLP_MAX_DEPTH];
    const uint8_t *base; /* start of the request, for offsets */
    char *why;
    size_t whylen;
};

static const struct lk_pb_field *field_of(const struct lk_pb_msg *m,
                                          uint32_t num)
{
    return num < m->nfields ? &m->fields[num] : &unknown_field;
}

/* Elements of field |num| before the one whose tag is at |tag|, counted by
 * re-reading the message body from |start| (all of it already validated). */
static size_t index_of(const uint8_t *start, const uint8_t *tag, uint32_t num)
{
    const uint8_t *p = start;
    size_t n = 0;
    uint64_t key;

    while (p < tag) {
        p = read_varint5(p, tag, &key);
        if (p == NULL)
            break;
        if ((key >> 3) == num)
            n++;
        p = skip_value(p, tag, (unsigned)(key & 7));
        if (p == NULL)
            break;
    }
    return n;
}

static void put_step(struct lk_text *o, const struct frame *f, const uint8_t *tag,
                     uint32_t num)
{
    const struct lk_pb_field *fd = field_of(f->m, num);

    if (o->len > 0)
        lk_text_put(o, ".");
    if (fd->kind == LK_PBK_NONE)
        lk_text_put(o, "(field %u)", (unsigned)num);
    else if (fd->flags & LK_PBF_REPEATED)
        lk_text_put(o, "%s[%zu]", fd->name, index_of(f->start, tag, num));
    else
        lk_text_put(o, "%s", fd->name);
}

/* Steps of a path shown before and after an elision. */
#define PATH_HEAD 8
#define PATH_TAIL 4

/* Writes "path: detail" for a failure in the message at depth |d|, in the
 * field with number |num| whose tag is at |tag| (NULL: in the message itself,
 * outside any one field). Returns |rc|. */
static int fail(struct walk *w, int rc, unsigned d, const uint8_t *tag,
                uint32_t num, const char *fmt, ...)
    __attribute__((format(printf, 6, 7), cold, noinline));
static int fail(struct walk *w, int rc, unsigned d, const uint8_t *tag,
                uint32_t num, const char *fmt, ...)
{
    struct lk_text o = {w->why, w->whylen, 0};
    va_list ap;

    if (w->whylen == 0)
        return rc;
    w->why[0] = '\0';
    for (unsigned i = 0; i < d; i++) {
        uint64_t key = 0;
        /* Deep paths keep their first and last steps. */
        if (i == PATH_HEAD && d > PATH_HEAD + PATH_TAIL + 1) {
            lk_text_put(&o, ".(%u more)", d - PATH_HEAD - PATH_TAIL);
            i = d - PATH_TAIL - 1;
            continue;
        }
        read_varint5(w->st[i].tag, w->st[i].end, &key);
        put_step(&o, &w->st[i], w->st[i].tag, (uint32_t)(key >> 3));
    }
    if (tag != NULL)
        put_step(&o, &w->st[d], tag, num);
    if (o.len == 0)
        lk_text_put(&o, "%s", w->st[0].m->name);
    lk_text_put(&o, ": ");
    if (o.len + 1 < o.cap) {
        va_start(ap, fmt);
        vsnprintf(o.buf + o.len, o.cap - o.len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static const char *wire_type_name(unsigned wt)
{
    static const char *const names[8] = {
        "varint",    "64-bit", "length-delimited", "start group",
        "end group", "32-bit", "invalid",          "invalid",
    };
    return names[wt & 7];
}

static int fail_wire_type(struct walk *w, unsigned d, const uint8_t *tag,
                          uint32_t num, const struct lk_pb_field *f,
                          unsigned wt) __attribute__((cold, noinline));
static int fail_wire_type(struct walk *w, unsigned d, const uint8_t *tag,
                          uint32_t num, const struct lk_pb_field *f,
                          unsigned wt)
{
    size_t off = (size_t)(tag - w->base);
    unsigned want;

    if (wt == WT_SGROUP || wt == WT_EGROUP)
        return fail(w, LK_EPROTO, d, tag, num,
                    "wire type %u (%s) is not supported, at byte %zu", wt,
                    wire_type_name(wt), off);
    if (wt > WT_I32)
        return fail(w, LK_EPROTO, d, tag, num,
                    "invalid wire type %u at byte %zu", wt, off);
    switch (f->kind) {
    case LK_PBK_VARINT:
        want = WT_VARINT;
        break;
    case LK_PBK_FIXED32:
        want = WT_I32;
        break;
    case LK_PBK_FIXED64:
        want = WT_I64;
        break;
    case LK_PBK_PACKED_VARINT:
        return fail(w, LK_EPROTO, d, tag, num,
                    "wire type %u (%s), want 0 (varint) or 2 (packed), at "
                    "byte %zu",
                    wt, wire_type_name(wt), off);
    case LK_PBK_PACKED_FIXED64:
        return fail(w, LK_EPROTO, d, tag, num,
                    "wire type %u (%s), want 1 (64-bit) or 2 (packed), at "
                    "byte %zu",
                    wt, wire_type_name(wt), off);
    default:
        want = WT_LEN;
        break;
    }
    return fail(w, LK_EPROTO, d, tag, num,
                "wire type %u (%s), want %u (%s), at byte %zu", wt,
                wire_type_name(wt), want, wire_type_name(want), off);
}

static int fail_utf8(struct walk *w, unsigned d, const uint8_t *tag,
                     uint32_t num, const uint8_t *s, size_t len)
    __attribute__((cold, noinline));
static int fail_utf8(struct walk *w, unsigned d, const uint8_t *tag,
                     uint32_t num, const uint8_t *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        size_t k = lk_utf8_seq_len(s + i, len - i);
        if (k == 0)
            break;
        i += k;
    }
    return fail(w, LK_EUTF8, d, tag, num, "invalid UTF-8 at byte %zu of %zu", i,
                len);
}

/* --- the walker */

/* Reads a length prefix at |p| into |len| and checks it against |end|;
 * jumps to the failure labels of walk(). */
#define READ_LEN()                                                             \
    do {                                                                       \
        if (p < end && *p < 0x80) {                                            \
            len = *p++;                                                        \
        } else {                                                               \
            uint64_t v_;                                                       \
            q = read_varint5(p, end, &v_);                                     \
            if (q == NULL)                                                     \
                goto bad_length;                                               \
            p = q;                                                             \
            if (v_ > (uint64_t)(end - p)) {                                    \
                len = v_;                                                      \
                goto length_past_end;                                          \
            }                                                                  \
            len = (size_t)v_;                                                  \
        }                                                                      \
        if (len > (size_t)(end - p))                                           \
            goto length_past_end;                                              \
    } while (0)

#define SKIP_VARINT()                                                          \
    do {                                                                       \
        if (p < end && *p < 0x80) {                                            \
            p++;                                                               \
        } else {                                                               \
            q = skip_varint(p, end);                                           \
            if (q == NULL)                                                     \
                goto bad_varint;                                               \
            p = q;                                                             \
        }                                                                      \
    } while (0)

#define SKIP_FIXED(k)                                                          \
    do {                                                                       \
        if ((size_t)(end - p) < (k))                                           \
            goto truncated_fixed;                                              \
        p += (k);                                                              \
    } while (0)

static int walk(struct walk *w, const struct lk_pb_msg *root, const uint8_t *p,
                size_t n, struct lk_otlp_counts *counts)
{
    const uint8_t *end = p + n;
    const struct lk_pb_msg *m = root;
    const struct lk_pb_field *f = &unknown_field;
    const uint8_t *tag = NULL, *q;
    uint64_t items = 0, resources = 0, key = 0;
    uint32_t num = 0, once = 0;
    unsigned d = 0, wt = 0;
    size_t len = 0;

    w->st[0].m = root;
    w->st[0].start = p;
    w->st[0].end = end;
    w->st[0].tag = NULL;

    for (;;) {
        while (p < end) {
            tag = p;
            if (*p < 0x80) {
                key = *p++;
            } else {
                q = read_varint5(p, end, &key);
                if (q == NULL)
                    goto bad_tag;
                p = q;
                if ((key >> 3) > PB_MAX_FIELD)
                    goto bad_field_number;
            }
            num = (uint32_t)(key >> 3);
            wt = (unsigned)(key & 7);
            if (num == 0)
                goto bad_field_number;
            f = num < m->nfields ? &m->fields[num] : &unknown_field;

            switch (f->kind) {
            case LK_PBK_VARINT:
                if (wt != WT_VARINT)
                    goto bad_wire_type;
                SKIP_VARINT();
                break;
            case LK_PBK_FIXED64:
                if (wt != WT_I64)
                    goto bad_wire_type;
                SKIP_FIXED(8);
                break;
            case LK_PBK_FIXED32:
                if (wt != WT_I32)
                    goto bad_wire_type;
                SKIP_FIXED(4);
                break;
            case LK_PBK_STRING:
                if (wt != WT_LEN)
                    goto bad_wire_type;
                READ_LEN();
                if (!is_ascii_short(p, len) && !lk_utf8_is_valid(p, len))
                    return fail_utf8(w, d, tag, num, p, len);
                p += len;
                break;
            case LK_PBK_BYTES:
                if (wt != WT_LEN)
                    goto bad_wire_type;
                READ_LEN();
                if (len != 0 && (f->flags & (LK_PBF_ID16 | LK_PBF_ID8))) {
                    if ((f->flags & LK_PBF_ID16) && len != 16)
                        return fail(w, LK_EPROTO, d, tag, num,
                                    "length %zu, want 16 or 0", len);
                    if ((f->flags & LK_PBF_ID8) && len != 8)
                        return fail(w, LK_EPROTO, d, tag, num,
                                    "length %zu, want 8 or 0", len);
                }
                p += len;
                break;
            case LK_PBK_MESSAGE:
                if (wt != WT_LEN)
                    goto bad_wire_type;
                READ_LEN();
                if (f->flags & LK_PBF_ONCE) {
                    if (once & (1u << num))
                        return fail(w, LK_EPROTO, d, tag, num,
                                    "singular field given twice, at byte %zu",
                                    (size_t)(tag - w->base));
                    once |= 1u << num;
                }
                if (d + 1 >= LK_OTLP_MAX_DEPTH)
                    return fail(w, LK_EPROTO, d, tag, num,
                                "messages nested deeper than %d, at byte %zu",
                                LK_OTLP_MAX_DEPTH, (size_t)(tag - w->base));
                items += (f->flags & LK_PBF_COUNT_ITEM) != 0;
                resources += (f->flags & LK_PBF_COUNT_RESOURCE) != 0;
                w->st[d].tag = tag;
                w->st[d].once = once;
                once = 0;
                d++;
                m = f->child;
                end = p + len;
                w->st[d].m = m;
                w->st[d].start = p;
                w->st[d].end = end;
                break;
            case LK_PBK_PACKED_FIXED64:
                if (wt == WT_I64) {
                    SKIP_FIXED(8);
                    break;
                }
                if (wt != WT_LEN)
                    goto bad_wire_type;
                READ_LEN();
                if (len % 8 != 0)
                    return fail(w, LK_EPROTO, d, tag, num,
                                "packed length %zu is not a multiple of 8",
                                len);
                p += len;
                break;
            case LK_PBK_PACKED_VARINT:
                if (wt == WT_VARINT) {
                    SKIP_VARINT();
                    break;
                }
                if (wt != WT_LEN)
                    goto bad_wire_type;
                READ_LEN();
                for (const uint8_t *pe = p + len; p < pe; p = q) {
                    q = skip_varint(p, pe);
                    if (q == NULL)
                        return fail(w, LK_EPROTO, d, tag, num,
                                    "packed varint %s, at byte %zu",
                                    varint_problem(p, pe, 10),
                                    (size_t)(p - w->base));
                }
                break;
            default: /* LK_PBK_NONE: not in the schema */
                switch (wt) {
                case WT_VARINT:
                    SKIP_VARINT();
                    break;
                case WT_I64:
                    SKIP_FIXED(8);
                    break;
                case WT_I32:
                    SKIP_FIXED(4);
                    break;
                case WT_LEN:
                    READ_LEN();
                    p += len;
                    break;
                default:
                    goto bad_wire_type;
                }
                break;
            }
        }
        /* Every read above is bounded by |end|, so here p == end. */
        if (d == 0)
            break;
        d--;
        m = w->st[d].m;
        end = w->st[d].end;
        once = w->st[d].once;
    }
    counts->items = items;
    counts->resources = resources;
    return 0;

bad_tag:
    return fail(w, LK_EPROTO, d, NULL, 0, "tag varint %s, at byte %zu",
                varint_problem(tag, end, 5), (size_t)(tag - w->base));
bad_field_number:
    return fail(w, LK_EPROTO, d, NULL, 0,
                "invalid field number %llu, at byte %zu",
                (unsigned long long)(key >> 3), (size_t)(tag - w->base));
bad_wire_type:
    return fail_wire_type(w, d, tag, num, f, wt);
bad_varint:
    return fail(w, LK_EPROTO, d, tag, num, "varint %s, at byte %zu",
                varint_problem(p, end, 10), (size_t)(p - w->base));
truncated_fixed:
    return fail(w, LK_EPROTO, d, tag, num,
                "%u-byte value truncated: %zu bytes left, at byte %zu",
                wt == WT_I64 ? 8u : 4u, (size_t)(end - p),
                (size_t)(p - w->base));
bad_length:
    return fail(w, LK_EPROTO, d, tag, num, "length prefix %s, at byte %zu",
                varint_problem(p, end, 5), (size_t)(p - w->base));
length_past_end:
    return fail(w, LK_EPROTO, d, tag, num,
                "length %zu exceeds the %zu bytes left in the enclosing "
                "message, at byte %zu",
                len, (size_t)(end - p), (size_t)(tag - w->base));
}

int lk_otlp_validate(enum lk_signal sig, const uint8_t *p, size_t n,
                     struct lk_otlp_counts *counts, char *why, size_t whylen)
{
    const struct lk_pb_msg *root = lk_otlp_schema_request(sig);
    struct walk w;

    if (why == NULL)
        whylen = 0;
    if (whylen > 0)
        why[0] = '\0';
    if (root == NULL || (p == NULL && n > 0)) {
        if (whylen > 0)
            snprintf(why, whylen, "invalid argument");
        return LK_EINVAL;
    }
    counts->items = 0;
    counts->resources = 0;
    if (n == 0)
        return 0;
    w.base = p;
    w.why = why;
    w.whylen = whylen;
    return walk(&w, root, p, n, counts);
}
