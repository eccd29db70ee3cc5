/*
 * OTLP/JSON to protobuf, driven by the schema tables of otlp_schema.c.
 *
 * jansson parses the whole body into a tree (the caller bounds the body's
 * size; jansson bounds nesting at 2048 levels); one recursive walk over the
 * tree, bounded by LK_OTLP_MAX_DEPTH messages, writes the protobuf encoding
 * straight into the output buffer. Choices, where the mapping leaves room:
 *
 * - Duplicate keys in one object are refused (JSON_REJECT_DUPLICATES), and
 *   so is one field given under both its names ("traceId" and "trace_id"):
 *   which value was meant cannot be known, and protojson refuses both too.
 * - Two members of one oneof in one object are refused for the same reason
 *   (a protobuf decoder would keep whichever came last on the wire).
 * - null is an absent field; a null element of a list is an error.
 * - Integers come as JSON numbers or strings of decimal digits. A number
 *   with a fraction or an exponent is accepted only when its value is an
 *   integer of at most 2^53 in magnitude, where a double is exact; larger
 *   values must come as strings or plain integer literals. jansson refuses
 *   integer literals outside the int64 range, so uint64 values above 2^63-1
 *   must be strings (the mapping writes every 64-bit integer as a string).
 * - Fields are written in field-number order, as protobuf encoders do, and
 *   proto3 defaults (0, false, "", empty bytes, +0.0) are left out unless the
 *   field belongs to a oneof (or is `optional`), where presence matters.
 * - Nested lengths: each length-delimited body gets one placeholder byte,
 *   and when it turns out longer than 127 bytes it is moved up by the extra
 *   bytes its length prefix needs. Lengths are minimal varints, and only
 *   bodies of 128 bytes or more move, once per enclosing level: a few memmove
 *   passes over the output, small next to parsing the JSON.
 *
 * On failure, bytes past the original length of the output buffer are
 * unspecified (a partial encoding); callers discard the buffer.
 *
 * jansson's tree counts in the memory budget (core/membudget.h): its
 * allocations go through charged_malloc, which refuses past the limit, and
 * the decode then fails with LK_EMEMLIMIT.
 */
#include "core/membudget.h"
#include "core/text.h"
#include "receivers/otlp_json.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/json_escape.h"
#include "core/pbwire.h"
#include "core/utf8.h"
#include "receivers/otlp_schema.h"
#include "receivers/otlp_validate.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* No list index in a path step. */
#define NO_INDEX ((size_t)-1)

/* Bytes of a user's value quoted in a reason. */
#define QUOTE_MAX 40

/* One step of the path to the value being decoded: a field and, inside a
 * list, an element. */
struct step {
    const char *name; /* the field's name as the input spelled it */
    size_t index;     /* NO_INDEX outside a list */
};

struct dec {
    lk_buf *out;
    char *why;
    size_t whylen;
    const struct lk_pb_msg *root;
    unsigned nsteps;
    /* A message at depth d (the request is 0) is reached through d steps,
     * and a scalar in it adds one. */
    struct step path[LK_OTLP_MAX_DEPTH + 1];
};

/* --- reasons (cold) */

/* Puts at most |max| bytes of |s| (|n| bytes) in double quotes, printable
 * ASCII as it is and every other byte as \xNN, so that a reason is always
 * one line of ASCII whatever the input held. */
static void put_quoted(struct lk_text *o, const char *s, size_t n, size_t max)
{
    lk_text_put(o, "\"");
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            lk_text_put(o, "%c", c);
        else
            lk_text_put(o, "\\x%02x", c);
    }
    lk_text_put(o, n > max ? "\"..." : "\"");
}

/* Writes "path: " into a fresh reason and returns the writer. */
static struct lk_text start_reason(struct dec *d)
{
    struct lk_text o = {d->why, d->whylen, 0};

    d->why[0] = '\0';
    for (unsigned i = 0; i < d->nsteps; i++) {
        lk_text_put(&o, i > 0 ? ".%s" : "%s", d->path[i].name);
        if (d->path[i].index != NO_INDEX)
            lk_text_put(&o, "[%zu]", d->path[i].index);
    }
    if (d->nsteps == 0)
        lk_text_put(&o, "%s", d->root->name);
    lk_text_put(&o, ": ");
    return o;
}

static int fail(struct dec *d, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), cold, noinline));
static int fail(struct dec *d, int rc, const char *fmt, ...)
{
    struct lk_text o;
    va_list ap;

    if (d->whylen == 0)
        return rc;
    o = start_reason(d);
    if (o.len + 1 < o.cap) {
        va_start(ap, fmt);
        vsnprintf(o.buf + o.len, o.cap - o.len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

static const char *expected(const struct lk_pb_field *f)
{
    switch (f->type) {
    case LK_PBT_MESSAGE:
        return "an object";
    case LK_PBT_STRING:
        return "a string";
    case LK_PBT_BYTES:
        return (f->flags & (LK_PBF_ID16 | LK_PBF_ID8)) ? "a hex string"
                                                       : "a base64 string";
    case LK_PBT_BOOL:
        return "a boolean";
    case LK_PBT_ENUM:
        return "an enum (integer or name)";
    case LK_PBT_DOUBLE:
        return "a number (or \"NaN\", \"Infinity\", \"-Infinity\")";
    default:
        return "an integer (string or number)";
    }
}

static int fail_type(struct dec *d, const struct lk_pb_field *f,
                     const json_t *v) __attribute__((cold, noinline));
static int fail_type(struct dec *d, const struct lk_pb_field *f,
                     const json_t *v)
{
    return fail(d, LK_EPROTO, "expected %s, got %s", expected(f), json_kind(v));
}

/* "<what> <value>[<tail>]", the value quoted when it is a string. */
static int fail_value(struct dec *d, const char *what, const json_t *v,
                      const char *tail) __attribute__((cold, noinline));
static int fail_value(struct dec *d, const char *what, const json_t *v,
                      const char *tail)
{
    struct lk_text o;

    if (d->whylen == 0)
        return LK_EPROTO;
    o = start_reason(d);
    lk_text_put(&o, "%s ", what);
    if (json_is_string(v))
        put_quoted(&o, json_string_value(v), json_string_length(v), QUOTE_MAX);
    else if (json_is_integer(v))
        lk_text_put(&o, "%lld", (long long)json_integer_value(v));
    else
        lk_text_put(&o, "%.17g", json_real_value(v));
    lk_text_put(&o, "%s", tail);
    return LK_EPROTO;
}

static int fail_char(struct dec *d, const char *what, const char *s, size_t at)
    __attribute__((cold, noinline));
static int fail_char(struct dec *d, const char *what, const char *s, size_t at)
{
    struct lk_text o;

    if (d->whylen == 0)
        return LK_EPROTO;
    o = start_reason(d);
    lk_text_put(&o, "invalid %s character ", what);
    put_quoted(&o, s + at, 1, 1);
    lk_text_put(&o, " at offset %zu", at);
    return LK_EPROTO;
}

/* Names the lk_buf failure |rc|. */
static int fail_out(struct dec *d, int rc) __attribute__((cold, noinline));
static int fail_out(struct dec *d, int rc)
{
    if (d->whylen == 0)
        return rc;
    if (rc == LK_E2BIG)
        snprintf(d->why, d->whylen,
                 "the protobuf encoding exceeds the limit of %zu bytes",
                 d->out->max);
    else
        snprintf(d->why, d->whylen, "%s", lk_strerror(rc));
    return rc;
}

/* --- protobuf output */

static int put_raw(struct dec *d, const void *p, size_t n)
{
    int rc = lk_buf_append(d->out, p, n);
    return rc < 0 ? fail_out(d, rc) : 0;
}

static int put_tag(struct dec *d, uint32_t num, unsigned wt)
{
    uint8_t b[10];
    return put_raw(d, b, lk_pb_put_varint(b, ((uint64_t)num << 3) | wt));
}

/* The value of a scalar field without its tag, as it goes in a packed list
 * too. */
static int put_value(struct dec *d, uint8_t type, uint64_t v)
{
    uint8_t b[10];
    size_t n;

    switch (type) {
    case LK_PBT_FIXED32:
        for (n = 0; n < 4; n++)
            b[n] = (uint8_t)(v >> (8 * n));
        break;
    case LK_PBT_FIXED64:
    case LK_PBT_SFIXED64:
    case LK_PBT_DOUBLE:
        for (n = 0; n < 8; n++)
            b[n] = (uint8_t)(v >> (8 * n));
        break;
    default:
        n = lk_pb_put_varint(b, v);
        break;
    }
    return put_raw(d, b, n);
}

static unsigned wire_type(uint8_t type)
{
    switch (type) {
    case LK_PBT_FIXED32:
        return WT_I32;
    case LK_PBT_FIXED64:
    case LK_PBT_SFIXED64:
    case LK_PBT_DOUBLE:
        return WT_I64;
    case LK_PBT_STRING:
    case LK_PBT_BYTES:
    case LK_PBT_MESSAGE:
        return WT_LEN;
    default:
        return WT_VARINT;
    }
}

/* Starts a length-delimited body: one placeholder byte for its length,
 * whose offset goes to |mark|. */
static int len_open(lk_buf *b, size_t *mark)
{
    *mark = b->len;
    return lk_buf_append(b, "", 1);
}

/* Ends the body started at |mark|: writes its length, first moving the body
 * up when the length takes more than the placeholder byte. */
static int len_close(lk_buf *b, size_t mark)
{
    static const uint8_t zeros[9];
    size_t body = b->len - mark - 1;
    uint8_t v[10];
    size_t k = lk_pb_put_varint(v, body);

    if (k > 1) {
        int rc = lk_buf_append(b, zeros, k - 1);
        if (rc < 0)
            return rc;
        memmove(b->data + mark + k, b->data + mark + 1, body);
    }
    memcpy(b->data + mark, v, k);
    return 0;
}

/* --- scalars: JSON value to the 64 bits that go on the wire */

/* Range of an integer type: its largest value and, for signed types, the
 * magnitude of its smallest. */
struct int_range {
    const char *name;
    bool is_signed;
    uint64_t max; /* largest value */
    uint64_t neg; /* magnitude of the smallest value (signed types) */
};

static const struct int_range *range_of(uint8_t type)
{
    static const struct int_range i32 = {"int32", true, INT32_MAX,
                                         (uint64_t)INT32_MAX + 1};
    static const struct int_range i64 = {"int64", true, INT64_MAX,
                                         (uint64_t)INT64_MAX + 1};
    static const struct int_range u32 = {"uint32", false, UINT32_MAX, 0};
    static const struct int_range u64 = {"uint64", false, UINT64_MAX, 0};

    switch (type) {
    case LK_PBT_INT32:
    case LK_PBT_SINT32:
    case LK_PBT_ENUM:
        return &i32;
    case LK_PBT_INT64:
    case LK_PBT_SINT64:
    case LK_PBT_SFIXED64:
        return &i64;
    case LK_PBT_UINT32:
    case LK_PBT_FIXED32:
        return &u32;
    default:
        return &u64;
    }
}

/* Reads an integer of type |type| from |v| into |out| as its 64-bit two's
 * complement (sign-extended for int32, as protobuf writes negative int32). */
static int get_int(struct dec *d, const struct lk_pb_field *f, uint8_t type,
                   const json_t *v, uint64_t *out)
{
    const struct int_range *r = range_of(type);
    uint64_t mag = 0;
    bool neg = false;

    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        neg = x < 0;
        mag = neg ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
    } else if (json_is_real(v)) {
        double x = json_real_value(v);
        if (x != floor(x))
            return fail_value(d, "not an integer:", v, "");
        /* 2^53: beyond it, the double may not be the number written. */
        if (fabs(x) > 9007199254740992.0)
            return fail_value(d, "integer", v,
                              " is too large for a fraction or exponent; "
                              "write it as a string");
        neg = x < 0;
        mag = (uint64_t)fabs(x);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v), i = 0;
        bool big = false;

        if (n > 0 && s[0] == '-') {
            neg = true;
            i = 1;
        }
        if (i == n)
            return fail_value(d, "not an integer:", v, "");
        for (; i < n; i++) {
            unsigned digit = (unsigned char)s[i] - '0';
            if (digit > 9)
                return fail_value(d, "not an integer:", v, "");
            if (mag > (UINT64_MAX - digit) / 10)
                big = true;
            else
                mag = mag * 10 + digit;
        }
        if (big)
            return fail_value(d, "out of range:", v,
                              r->is_signed ? " (not a 64-bit integer)"
                                           : " (not a uint64)");
    } else {
        return fail_type(d, f, v);
    }
    if (neg && mag != 0) {
        if (!r->is_signed || mag > r->neg) {
            struct lk_text o;
            if (d->whylen == 0)
                return LK_EPROTO;
            o = start_reason(d);
            lk_text_put(&o, "-%llu is out of range for %s", (unsigned long long)mag,
                r->name);
            return LK_EPROTO;
        }
        *out = (uint64_t)0 - mag;
        return 0;
    }
    if (mag > r->max) {
        struct lk_text o;
        if (d->whylen == 0)
            return LK_EPROTO;
        o = start_reason(d);
        lk_text_put(&o, "%llu is out of range for %s", (unsigned long long)mag,
            r->name);
        return LK_EPROTO;
    }
    *out = mag;
    return 0;
}

/* True when |s| (|n| bytes) is a number in JSON's grammar. */
static bool is_json_number(const char *s, size_t n)
{
    size_t i = 0, k;

    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0') {
        i++;
    } else {
        for (k = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            ;
        if (i == k)
            return false;
    }
    if (i < n && s[i] == '.') {
        for (k = ++i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            ;
        if (i == k)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        for (k = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            ;
        if (i == k)
            return false;
    }
    return i == n;
}

static int get_double(struct dec *d, const struct lk_pb_field *f,
                      const json_t *v, uint64_t *out)
{
    double x;

    if (json_is_number(v)) {
        x = json_number_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);

        if (n == 3 && memcmp(s, "NaN", 3) == 0) {
            x = NAN;
        } else if (n == 8 && memcmp(s, "Infinity", 8) == 0) {
            x = INFINITY;
        } else if (n == 9 && memcmp(s, "-Infinity", 9) == 0) {
            x = -INFINITY;
        } else {
            /* The grammar check also rules out the NUL that would end the
             * string early for strtod. */
            if (!is_json_number(s, n))
                return fail_value(d, "not a number:", v, "");
            errno = 0;
            x = strtod(s, NULL);
            if (errno == ERANGE && isinf(x))
                return fail_value(d, "out of range:", v, " (not a double)");
        }
    } else {
        return fail_type(d, f, v);
    }
    memcpy(out, &x, sizeof(x));
    return 0;
}

static int get_enum(struct dec *d, const struct lk_pb_field *f, const json_t *v,
                    uint64_t *out)
{
    const struct lk_pb_enum *e = f->enum_t;

    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);

        for (uint32_t i = 0; i < e->nvalues; i++) {
            if (strlen(e->values[i].name) == n &&
                memcmp(e->values[i].name, s, n) == 0) {
                *out = (uint64_t)(int64_t)e->values[i].number;
                return 0;
            }
        }
        {
            struct lk_text o;
            if (d->whylen == 0)
                return LK_EPROTO;
            o = start_reason(d);
            lk_text_put(&o, "unknown %s value ", e->name);
            put_quoted(&o, s, n, QUOTE_MAX);
            return LK_EPROTO;
        }
    }
    if (!json_is_number(v))
        return fail_type(d, f, v);
    /* Numbers outside the names are kept: proto3 enums are open. */
    return get_int(d, f, LK_PBT_ENUM, v, out);
}

/* The wire value of a numeric or bool field. */
static int get_scalar(struct dec *d, const struct lk_pb_field *f,
                      const json_t *v, uint64_t *out)
{
    int rc;

    switch (f->type) {
    case LK_PBT_BOOL:
        if (!json_is_boolean(v))
            return fail_type(d, f, v);
        *out = json_is_true(v);
        return 0;
    case LK_PBT_DOUBLE:
        return get_double(d, f, v, out);
    case LK_PBT_ENUM:
        return get_enum(d, f, v, out);
    case LK_PBT_SINT32:
        rc = get_int(d, f, f->type, v, out);
        if (rc == 0) {
            uint32_t x = (uint32_t)*out;
            *out = (uint32_t)((x << 1) ^ (0u - (x >> 31)));
        }
        return rc;
    case LK_PBT_SINT64:
        rc = get_int(d, f, f->type, v, out);
        if (rc == 0)
            *out = (*out << 1) ^ (0u - (*out >> 63));
        return rc;
    default:
        return get_int(d, f, f->type, v, out);
    }
}

/* --- bytes */

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* A trace or span id: hex digits of either case, 16 or 8 bytes, or empty. */
static int put_id(struct dec *d, const struct lk_pb_field *f, uint32_t num,
                  bool force, const json_t *v)
{
    size_t want = (f->flags & LK_PBF_ID16) ? 16 : 8;
    uint8_t id[16];
    const char *s;
    size_t n;
    int rc;

    if (!json_is_string(v))
        return fail_type(d, f, v);
    s = json_string_value(v);
    n = json_string_length(v);
    for (size_t i = 0; i < n; i++)
        if (hex_digit((unsigned char)s[i]) < 0)
            return fail_char(d, "hex", s, i);
    if (n % 2 != 0)
        return fail(d, LK_EPROTO, "odd number of hex digits (%zu)", n);
    if (n == 0 && !force)
        return 0;
    if (n != 0 && n / 2 != want)
        return fail(d, LK_EPROTO, "%zu bytes, want %zu", n / 2, want);
    for (size_t i = 0; i < n / 2; i++)
        id[i] = (uint8_t)(hex_digit((unsigned char)s[2 * i]) << 4 |
                          hex_digit((unsigned char)s[2 * i + 1]));
    rc = put_tag(d, num, WT_LEN);
    if (rc == 0)
        rc = put_raw(d, (uint8_t[]){(uint8_t)(n / 2)}, 1);
    if (rc == 0)
        rc = put_raw(d, id, n / 2);
    return rc;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Base64, standard or URL-safe alphabet, padded or not. */
static int put_base64(struct dec *d, const struct lk_pb_field *f, uint32_t num,
                      bool force, const json_t *v)
{
    uint8_t chunk[768], lenb[10];
    const char *s;
    size_t n, m, pad = 0, out_len, k = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    int rc;

    if (!json_is_string(v))
        return fail_type(d, f, v);
    s = json_string_value(v);
    n = json_string_length(v);
    while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
        pad++;
    m = n - pad;
    for (size_t i = 0; i < m; i++)
        if (b64_value((unsigned char)s[i]) < 0)
            return fail_char(d, "base64", s, i);
    if (m % 4 == 1 || (pad > 0 && n % 4 != 0))
        return fail(d, LK_EPROTO, "invalid base64 length %zu", n);
    out_len = m / 4 * 3 + (m % 4 == 0 ? 0 : m % 4 - 1);
    if (out_len == 0 && !force)
        return 0;
    rc = put_tag(d, num, WT_LEN);
    if (rc == 0)
        rc = put_raw(d, lenb, lk_pb_put_varint(lenb, out_len));
    for (size_t i = 0; rc == 0 && i < m; i++) {
        acc = acc << 6 | (uint32_t)b64_value((unsigned char)s[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            chunk[k++] = (uint8_t)(acc >> bits);
            if (k == sizeof(chunk)) {
                rc = put_raw(d, chunk, k);
                k = 0;
            }
        }
    }
    /* The bits left over (fewer than 8) are padding: not checked, as most
     * base64 decoders do not. */
    if (rc == 0)
        rc = put_raw(d, chunk, k);
    return rc;
}

/* --- messages */

static int put_object(struct dec *d, const struct lk_pb_msg *m,
                      const json_t *obj, unsigned depth);

static void push(struct dec *d, const char *name)
{
    d->path[d->nsteps].name = name;
    d->path[d->nsteps].index = NO_INDEX;
    d->nsteps++;
}

/* One value of field |num| with its tag. |force| writes it even when it is
 * the proto3 default (a oneof member, a list element). */
static int put_single(struct dec *d, const struct lk_pb_field *f, uint32_t num,
                      bool force, const json_t *v, unsigned depth)
{
    uint8_t lenb[10];
    uint64_t x;
    size_t mark;
    int rc;

    switch (f->type) {
    case LK_PBT_MESSAGE:
        if (!json_is_object(v))
            return fail_type(d, f, v);
        if (depth + 1 >= LK_OTLP_MAX_DEPTH)
            return fail(d, LK_EPROTO, "messages nested deeper than %d",
                        LK_OTLP_MAX_DEPTH);
        rc = put_tag(d, num, WT_LEN);
        if (rc < 0)
            return rc;
        rc = len_open(d->out, &mark);
        if (rc < 0)
            return fail_out(d, rc);
        rc = put_object(d, f->child, v, depth + 1);
        if (rc < 0)
            return rc;
        rc = len_close(d->out, mark);
        return rc < 0 ? fail_out(d, rc) : 0;
    case LK_PBT_STRING: {
        size_t n;
        if (!json_is_string(v))
            return fail_type(d, f, v);
        n = json_string_length(v);
        if (n == 0 && !force)
            return 0;
        rc = put_tag(d, num, WT_LEN);
        if (rc == 0)
            rc = put_raw(d, lenb, lk_pb_put_varint(lenb, n));
        if (rc == 0)
            rc = put_raw(d, json_string_value(v), n);
        return rc;
    }
    case LK_PBT_BYTES:
        if (f->flags & (LK_PBF_ID16 | LK_PBF_ID8))
            return put_id(d, f, num, force, v);
        return put_base64(d, f, num, force, v);
    default:
        rc = get_scalar(d, f, v, &x);
        if (rc < 0)
            return rc;
        if (x == 0 && !force)
            return 0;
        rc = put_tag(d, num, wire_type(f->type));
        if (rc == 0)
            rc = put_value(d, f->type, x);
        return rc;
    }
}

/* A repeated field: a JSON array, numeric elements packed. */
static int put_list(struct dec *d, const struct lk_pb_field *f, uint32_t num,
                    const json_t *v, unsigned depth)
{
    size_t n, mark = 0;
    bool packed =
        f->kind == LK_PBK_PACKED_VARINT || f->kind == LK_PBK_PACKED_FIXED64;
    int rc;

    if (!json_is_array(v))
        return fail(d, LK_EPROTO, "expected an array, got %s", json_kind(v));
    n = json_array_size(v);
    if (n == 0)
        return 0;
    if (packed) {
        rc = put_tag(d, num, WT_LEN);
        if (rc < 0)
            return rc;
        rc = len_open(d->out, &mark);
        if (rc < 0)
            return fail_out(d, rc);
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        uint64_t x;

        d->path[d->nsteps - 1].index = i;
        if (json_is_null(e))
            return fail(d, LK_EPROTO, "null is not allowed in a list");
        if (packed) {
            rc = get_scalar(d, f, e, &x);
            if (rc == 0)
                rc = put_value(d, f->type, x);
        } else {
            rc = put_single(d, f, num, true, e, depth);
        }
        if (rc < 0)
            return rc;
    }
    d->path[d->nsteps - 1].index = NO_INDEX;
    if (packed) {
        rc = len_close(d->out, mark);
        if (rc < 0)
            return fail_out(d, rc);
    }
    return 0;
}

/* Number of the field of |m| named |key| (|n| bytes) by its JSON or its
 * proto name, with the spelling used in |name|; 0 when there is none. */
static uint32_t find_field(const struct lk_pb_msg *m, const char *key, size_t n,
                           const char **name)
{
    for (uint32_t i = 1; i < m->nfields; i++) {
        const struct lk_pb_field *f = &m->fields[i];
        if (f->kind == LK_PBK_NONE)
            continue;
        if (strlen(f->json_name) == n && memcmp(f->json_name, key, n) == 0) {
            *name = f->json_name;
            return i;
        }
        if (strlen(f->name) == n && memcmp(f->name, key, n) == 0) {
            *name = f->name;
            return i;
        }
    }
    return 0;
}

/* The fields of the JSON object |obj| as message |m| at depth |depth|,
 * in field-number order. */
static int put_object(struct dec *d, const struct lk_pb_msg *m,
                      const json_t *obj, unsigned depth)
{
    const json_t *vals[LK_PB_MAX_FIELDS] = {NULL};
    const char *names[LK_PB_MAX_FIELDS];
    uint32_t oneof_set[LK_PB_MAX_FIELDS] = {0}; /* field number, by oneof */
    int rc;

    for (void *it = json_object_iter((json_t *)obj); it != NULL;
         it = json_object_iter_next((json_t *)obj, it)) {
        const json_t *v = json_object_iter_value(it);
        const char *name = NULL;
        uint32_t num = find_field(m, json_object_iter_key(it),
                                  json_object_iter_key_len(it), &name);

        /* Unknown fields are ignored; null is an absent field. */
        if (num == 0 || json_is_null(v))
            continue;
        if (vals[num] != NULL)
            return fail(d, LK_EPROTO, "%s given twice, as %s and %s",
                        m->fields[num].json_name, names[num], name);
        vals[num] = v;
        names[num] = name;
        if (m->fields[num].oneof != 0) {
            uint32_t *set = &oneof_set[m->fields[num].oneof - 1];
            if (*set != 0)
                return fail(
                    d, LK_EPROTO, "%s and %s both set, but they share oneof %s",
                    names[*set], name, m->oneofs[m->fields[num].oneof - 1]);
            *set = num;
        }
    }
    for (uint32_t num = 1; num < m->nfields; num++) {
        const struct lk_pb_field *f = &m->fields[num];

        if (vals[num] == NULL)
            continue;
        push(d, names[num]);
        if (f->flags & LK_PBF_REPEATED)
            rc = put_list(d, f, num, vals[num], depth);
        else
            rc = put_single(d, f, num, f->oneof != 0, vals[num], depth);
        if (rc < 0)
            return rc;
        d->nsteps--;
    }
    return 0;
}

/* Copies jansson's message, whose "near '...'" part quotes the input, as
 * one line of ASCII. */
static int fail_json(struct dec *d, const json_error_t *e)
    __attribute__((cold, noinline));
static int fail_json(struct dec *d, const json_error_t *e)
{
    struct lk_text o = {d->why, d->whylen, 0};
    size_t n = strnlen(e->text, sizeof(e->text));

    if (d->whylen == 0)
        return LK_EPROTO;
    lk_text_put(&o, "malformed JSON at line %d, column %d: ", e->line, e->column);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)e->text[i];
        if (c >= 0x20 && c < 0x7f)
            lk_text_put(&o, "%c", c);
        else
            lk_text_put(&o, "\\x%02x", c);
    }
    return LK_EPROTO;
}

/* Each block of jansson's carries its size in front, for its release. */
#define JHDR sizeof(max_align_t)
static bool json_over_budget; /* an allocation was refused: loop thread only */

static void *charged_malloc(size_t n)
{
    if (n > SIZE_MAX - JHDR)
        return NULL;
    if (!lk_mem_try(LK_MEM_RECEIVERS, n + JHDR)) {
        json_over_budget = true;
        return NULL;
    }
    unsigned char *b = malloc(n + JHDR);
    if (b == NULL) {
        lk_mem_release(LK_MEM_RECEIVERS, n + JHDR);
        return NULL;
    }
    memcpy(b, &n, sizeof(n));
    return b + JHDR;
}

static void charged_free(void *p)
{
    if (p == NULL)
        return;
    unsigned char *b = (unsigned char *)p - JHDR;
    size_t n;
    memcpy(&n, b, sizeof(n));
    lk_mem_release(LK_MEM_RECEIVERS, n + JHDR);
    free(b);
}

int lk_otlp_json_decode(enum lk_signal sig, const uint8_t *p, size_t n,
                        lk_buf *out, char *why, size_t whylen)
{
    static bool alloc_set;
    struct dec d;
    json_error_t err;
    json_t *root;
    int rc;

    if (!alloc_set) {
        json_set_alloc_funcs(charged_malloc, charged_free);
        alloc_set = true;
    }
    json_over_budget = false;

    if (why == NULL)
        whylen = 0;
    if (whylen > 0)
        why[0] = '\0';
    d.root = lk_otlp_schema_request(sig);
    if (d.root == NULL || (p == NULL && n > 0) || out == NULL) {
        if (whylen > 0)
            snprintf(why, whylen, "invalid argument");
        return LK_EINVAL;
    }
    d.out = out;
    d.why = why;
    d.whylen = whylen;
    d.nsteps = 0;

    root = json_loadb(n > 0 ? (const char *)p : "", n,
                      JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (root == NULL) {
        /* jansson names most allocation failures, but one at the start of
         * parsing returns without setting any error text. */
        if (json_error_code(&err) == json_error_out_of_memory ||
            err.text[0] == '\0' || json_over_budget) {
            int e = json_over_budget ? LK_EMEMLIMIT : LK_ENOMEM;
            if (whylen > 0)
                snprintf(why, whylen, "%s", lk_strerror(e));
            return e;
        }
        return fail_json(&d, &err);
    }
    if (!json_is_object(root))
        rc = fail(&d, LK_EPROTO, "expected an object, got %s", json_kind(root));
    else
        rc = put_object(&d, d.root, root, 0);
    json_decref(root);
    return rc;
}

/* --- responses */

static const char *rejected_name(enum lk_signal sig, bool json)
{
    switch (sig) {
    case LK_SIGNAL_TRACES:
        return json ? "rejectedSpans" : "rejected_spans";
    case LK_SIGNAL_METRICS:
        return json ? "rejectedDataPoints" : "rejected_data_points";
    case LK_SIGNAL_LOGS:
        return json ? "rejectedLogRecords" : "rejected_log_records";
    default:
        return NULL;
    }
}

int lk_otlp_json_response(enum lk_signal sig, uint64_t rejected,
                          const char *error_message, lk_buf *out)
{
    const char *key = rejected_name(sig, true);
    bool has_msg = error_message != NULL && error_message[0] != '\0';
    int rc;

    if (key == NULL || out == NULL)
        return LK_EINVAL;
    if (rejected == 0 && !has_msg)
        return lk_buf_append(out, "{}", 2);
    /* The field is an int64. */
    if (rejected > INT64_MAX)
        rejected = INT64_MAX;
    rc = lk_buf_append_str(out, "{\"partialSuccess\":{");
    if (rc == 0 && rejected > 0)
        rc = lk_buf_printf(out, "\"%s\":\"%llu\"%s", key,
                           (unsigned long long)rejected, has_msg ? "," : "");
    if (rc == 0 && has_msg) {
        rc = lk_buf_append_str(out, "\"errorMessage\":");
        if (rc == 0)
            rc = lk_json_escape(out, error_message, strlen(error_message));
    }
    if (rc == 0)
        rc = lk_buf_append(out, "}}", 2);
    return rc;
}

/* Appends |s| with every invalid UTF-8 byte replaced by U+FFFD, as a
 * protobuf `string` must be valid UTF-8. */
static int append_utf8(lk_buf *b, const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, run = 0;
    int rc = 0;

    while (rc == 0 && i < n) {
        size_t k = p[i] < 0x80 ? 1 : lk_utf8_seq_len(p + i, n - i);
        if (k > 0) {
            i += k;
            continue;
        }
        rc = lk_buf_append(b, p + run, i - run);
        if (rc == 0)
            rc = lk_buf_append(b, "\xef\xbf\xbd", 3);
        run = ++i;
    }
    if (rc == 0)
        rc = lk_buf_append(b, p + run, i - run);
    return rc;
}

int lk_otlp_proto_response(enum lk_signal sig, uint64_t rejected,
                           const char *error_message, lk_buf *out)
{
    bool has_msg = error_message != NULL && error_message[0] != '\0';
    uint8_t b[12];
    size_t mark = 0, mark_msg = 0;
    int rc;

    if (rejected_name(sig, false) == NULL || out == NULL)
        return LK_EINVAL;
    if (rejected == 0 && !has_msg)
        return 0;
    if (rejected > INT64_MAX)
        rejected = INT64_MAX;
    /* partial_success = 1 { rejected_<items> = 1; error_message = 2; } */
    b[0] = (1 << 3) | WT_LEN;
    rc = lk_buf_append(out, b, 1);
    if (rc == 0)
        rc = len_open(out, &mark);
    if (rc == 0 && rejected > 0) {
        b[0] = (1 << 3) | WT_VARINT;
        rc = lk_buf_append(out, b, 1 + lk_pb_put_varint(b + 1, rejected));
    }
    if (rc == 0 && has_msg) {
        b[0] = (2 << 3) | WT_LEN;
        rc = lk_buf_append(out, b, 1);
        if (rc == 0)
            rc = len_open(out, &mark_msg);
        if (rc == 0)
            rc = append_utf8(out, error_message, strlen(error_message));
        if (rc == 0)
            rc = len_close(out, mark_msg);
    }
    if (rc == 0)
        rc = len_close(out, mark);
    return rc;
}
