/*
 * OTLP logs -> Loki push body.
 *
 * Three steps per call, all on scratch arrays kept in the encoder:
 *  1. Walk: one pass over the wire bytes of each request (a ResourceLogs or
 *     ScopeLogs is scanned twice at its own level only, because protobuf lets
 *     `resource` / `scope` come after the records). Each record becomes an
 *     entry descriptor pointing into the input; attributes become descriptors
 *     with their Loki name mapped once. The record's label set is built and
 *     looked up in a hash table of streams (a record that adds nothing of its
 *     own to its resource's labels reuses the resource's stream at once).
 *  2. Order: entries are grouped by stream (counting sort, stable) and each
 *     group is merge-sorted by timestamp only if it is not already in order.
 *  3. Emit: per stream, structured metadata values are gathered (rendered
 *     into an arena when they are not strings of the input), then written;
 *     protobuf lengths come from that gather pass, so nothing is moved.
 *
 * Choices the logs spec leaves open:
 *  - The text of a value (label values, metadata values and the line alike):
 *    strings as they are, ints decimal, doubles shortest round-trip ("NaN",
 *    "Infinity", "-Infinity" when not finite), bools true/false, bytes base64
 *    (the line too: no JSON quotes around it), arrays and kvlists JSON, an
 *    AnyValue without a value (or with string_value_strindex) "".
 *  - Labels whose value text is empty are left out (Loki ignores them); an
 *    attribute with an empty value does not count as a label source.
 *  - Label precedence when names collide, and which labels survive the cap of
 *    LK_LOKI_MAX_LABELS: configured labels in configured order, then resource
 *    hint labels in hint order, then record hint labels; the first one of a
 *    name wins.
 *  - A label set that would be empty gets service_name (Loki refuses a stream
 *    without labels).
 *  - The `level` label takes only normalised names; a severity_text that is
 *    not a known level stays in the `level` metadata.
 *  - Metadata is never given a name that is a label of its stream (this is
 *    how "attributes used as labels" are left out), nor the name of earlier
 *    metadata of the entry. Empty metadata values are kept.
 *  - A singular field repeated on the wire: the last one wins; a repeated
 *    `resource` or `scope` merges as protobuf does (attributes add up, the
 *    last name wins).
 */
#include "exporters/loki_encode.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/err.h"
#include "core/json_escape.h"
#include "core/pbwire.h"
#include "core/severity.h"
#include "pipeline/item.h"
#include "pipeline/loki_entries.h"

/* Nesting of AnyValue arrays and kvlists rendered as JSON. A valid request
 * (at most 64 messages deep) never comes near it. */
#define MAX_JSON_DEPTH 64

#define NO_ATTR SIZE_MAX
#define NO_STREAM UINT32_MAX

static const uint8_t empty_bytes[1] = {0};

struct span {
    const uint8_t *p;
    size_t len;
};

enum av_kind {
    AV_NONE,
    AV_STRING,
    AV_BOOL,
    AV_INT,
    AV_DOUBLE,
    AV_ARRAY,
    AV_KVLIST,
    AV_BYTES
};

/* One decoded AnyValue; arrays and kvlists stay as their wire bytes. */
struct anyv {
    enum av_kind kind;
    uint64_t u;    /* bool, int64 (two's complement), double (IEEE bits) */
    struct span s; /* string, bytes, ArrayValue or KeyValueList body */
};

/* The text of a value: in the input or a literal (p != NULL), or at |off| in
 * the arena it was rendered into. Arenas may move while they grow, so the
 * offset is resolved only when the text is read. */
struct vref {
    const uint8_t *p;
    size_t off;
    size_t len;
};

enum {
    A_RES_HINT = 1, /* key is loki.resource.labels */
    A_REC_HINT = 2, /* key is loki.attribute.labels */
};

struct attr {
    struct span key;
    struct anyv v;
    size_t name_off; /* Loki name in e->names */
    size_t name_len;
    unsigned flags;
    struct vref text; /* the value's text, rendered once before emitting */
};

struct entry {
    uint64_t ts; /* ns since the epoch */
    uint32_t stream;
    int sev;     /* severity_number, 0 when absent or out of 1..24 */
    struct anyv body;
    struct span sevtext, trace, spanid, scope;
    struct span pre; /* LK_FORM_LOKI_ENTRIES: the entry's core, written by the
                        receiver; empty for a walked OTLP record */
    size_t rattr, nrattr; /* the record's attributes in e->attrs */
    size_t sattr, nsattr; /* its resource's */
};

struct stream {
    uint64_t hash;
    size_t lab_off, lab_len;  /* "{a=\"b\"}" in e->slab */
    size_t pair_first, npairs; /* in e->spairs, sorted by name */
    uint64_t name_lens;        /* bit (len % 64) set for each label name */
    uint32_t count;            /* entries */
    uint32_t start, fill;      /* their range in e->order */
};

/* A label of a stream: name and raw (unescaped) value, both in e->slab. */
struct spair {
    size_t name_off, name_len, val_off, val_len;
};

/* A label of the record being walked. */
struct lpair {
    const uint8_t *name;
    size_t nlen;
    struct vref v; /* into the input or e->tmp */
};

/* A configured label name, digested once per call. */
struct cfg_label {
    const uint8_t *name;
    size_t len;
    bool level;      /* the special `level` label */
    const char *def; /* value when no attribute gives one, or NULL */
};

/* A structured metadata pair of the entry being emitted. */
struct piece {
    struct span name;
    struct vref v; /* into the input, a literal or e->arena */
};

struct emeta {
    size_t first, n; /* pieces */
    struct vref line; /* or, for an entry with a core, its resource's metadata */
    size_t size;     /* protobuf EntryAdapter body */
    bool core;       /* written as its core and |line| (else as pieces) */
};

struct lk_loki_encoder {
    struct entry *ents;
    size_t nents, cap_ents;
    struct attr *attrs;
    size_t nattrs, cap_attrs;
    lk_buf names; /* mapped attribute names */

    struct stream *streams;
    size_t nstreams, cap_streams;
    struct spair *spairs;
    size_t nspairs, cap_spairs;
    lk_buf slab;     /* stream label strings, names and values */
    uint32_t *slots; /* hash table: stream index + 1, 0 when free */
    size_t nslots;   /* a power of two, or 0 */

    struct cfg_label *cfg;
    size_t cap_cfg;
    size_t *res_lab; /* per configured label: resource attribute or NO_ATTR */
    size_t cap_res_lab;
    size_t *hints; /* resource attributes named by loki.resource.labels */
    size_t nhints, cap_hints;
    size_t res_first, res_n; /* attributes of the current resource */
    uint32_t res_stream;     /* stream of its records that add no label */

    struct lpair pairs[LK_LOKI_MAX_LABELS];
    size_t npairs;
    lk_buf tmp; /* rendered label values of one record */
    lk_buf lbl; /* rendered label set of one record */

    uint32_t *order, *otmp; /* entries grouped by stream; merge scratch */
    size_t cap_order, cap_otmp;

    struct emeta *em;
    size_t cap_em;
    struct piece *pieces;
    size_t npieces, cap_pieces;
    lk_buf arena; /* rendered values of the stream being emitted */
    lk_buf texts; /* rendered attribute values of the whole call */

    /* LK_FORM_LOKI_ENTRIES */
    struct span last_res; /* resource bytes of the last run walked, or p NULL */
    lk_buf conv;          /* items turned back into OTLP */
    size_t *conv_at;      /* per input: its start and end in conv */
    size_t cap_conv_at;
    size_t rm_sattr[4];   /* resource metadata rendered for the stream being */
    struct vref rm[4];    /* emitted, by resource (first attribute) */
    size_t rm_n[4];       /* its pairs */
    uint64_t rm_bytes[4]; /* and their names' and values' bytes */
    unsigned nrm;

    const struct lk_loki_encode_opts *o; /* of the call running */
    uint64_t cut_entries, cut_size;      /* lk_loki_encoder_cuts */
};

/* --- scratch arrays */

/* Grows |*p| (elements of |size| bytes, |*cap| of them) to hold |need|. */
static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    size_t ncap = *cap ? *cap : 16;
    void *np;

    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / size)
            return LK_ENOMEM;
        ncap *= 2;
    }
    np = realloc(*p, ncap * size);
    if (np == NULL)
        return LK_ENOMEM;
    *p = np;
    *cap = ncap;
    return 0;
}

#define ENSURE(rc, arr, cap, need)                                             \
    do {                                                                       \
        (rc) = 0;                                                              \
        if ((need) > (cap)) {                                                  \
            void *np_ = (arr);                                                 \
            (rc) = grow(&np_, &(cap), (need), sizeof(*(arr)));                 \
            (arr) = np_;                                                       \
        }                                                                      \
    } while (0)

int lk_loki_encoder_create(struct lk_loki_encoder **out)
{
    struct lk_loki_encoder *e = calloc(1, sizeof(*e));

    if (e == NULL)
        return LK_ENOMEM;
    lk_buf_init(&e->names, SIZE_MAX);
    lk_buf_init(&e->slab, SIZE_MAX);
    lk_buf_init(&e->tmp, SIZE_MAX);
    lk_buf_init(&e->lbl, SIZE_MAX);
    lk_buf_init(&e->arena, SIZE_MAX);
    lk_buf_init(&e->texts, SIZE_MAX);
    lk_buf_init(&e->conv, SIZE_MAX);
    *out = e;
    return 0;
}

void lk_loki_encoder_destroy(struct lk_loki_encoder *e)
{
    if (e == NULL)
        return;
    free(e->ents);
    free(e->attrs);
    lk_buf_fini(&e->names);
    free(e->streams);
    free(e->spairs);
    lk_buf_fini(&e->slab);
    free(e->slots);
    free(e->cfg);
    free(e->res_lab);
    free(e->hints);
    lk_buf_fini(&e->tmp);
    lk_buf_fini(&e->lbl);
    free(e->order);
    free(e->otmp);
    free(e->em);
    free(e->pieces);
    lk_buf_fini(&e->arena);
    lk_buf_fini(&e->texts);
    lk_buf_fini(&e->conv);
    free(e->conv_at);
    free(e);
}

/* --- names */

static inline bool name_byte_ok(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_';
}

/* The keys whose Loki name is not what the generic rule gives (service.name
 * and friends map to service_name by the rule itself). */
static const char *special_name(const uint8_t *k, size_t n)
{
    switch (n) {
    case 9:
        return memcmp(k, "host.name", 9) == 0 ? "host" : NULL;
    case 14:
        return memcmp(k, "lookout.source", 14) == 0 ? "source" : NULL;
    case 27:
        return memcmp(k, "deployment.environment.name", 27) == 0
                   ? "deployment_environment"
                   : NULL;
    default:
        return NULL;
    }
}

size_t lk_loki_name(const char *key, size_t n, char *out, size_t outlen)
{
    const uint8_t *k = (const uint8_t *)key;
    const char *sp = n > 0 ? special_name(k, n) : NULL;
    size_t len = 0, i;

    if (sp != NULL) {
        len = strlen(sp);
        if (outlen > 0) {
            size_t c = len < outlen - 1 ? len : outlen - 1;
            memcpy(out, sp, c);
            out[c] = '\0';
        }
        return len;
    }
    if (n > 0 && k[0] >= '0' && k[0] <= '9') {
        if (outlen > 1)
            out[0] = '_';
        len = 1;
    }
    for (i = 0; i < n; i++, len++)
        if (len + 1 < outlen)
            out[len] = name_byte_ok(k[i]) ? (char)k[i] : '_';
    if (outlen > 0)
        out[len < outlen - 1 ? len : outlen - 1] = '\0';
    return len;
}

/* Appends the Loki name of key |k| to |b|. */
static int append_name(lk_buf *b, const uint8_t *k, size_t n)
{
    const char *sp = special_name(k, n);
    size_t start = b->len;
    int rc;

    if (sp != NULL)
        return lk_buf_append_str(b, sp);
    if (n > 0 && k[0] >= '0' && k[0] <= '9') {
        rc = lk_buf_append(b, "_", 1);
        if (rc < 0)
            return rc;
        start++;
    }
    rc = lk_buf_append(b, k, n);
    if (rc < 0)
        return rc;
    /* The bytes are ours to rewrite in place. */
    for (size_t i = start; i < b->len; i++)
        if (!name_byte_ok(b->data[i]))
            b->data[i] = '_';
    return 0;
}

/* --- wire reading. Every read is checked against the end of its message. */

struct rd {
    const uint8_t *p, *end;
};

struct field {
    uint32_t num;
    unsigned wt;
    uint64_t v;    /* varint, or fixed64 / fixed32 little-endian value */
    struct span s; /* length-delimited bytes */
};

static inline struct rd rd_of(struct span s)
{
    struct rd r = {s.p, s.p + s.len};
    return r;
}

static inline int rd_varint(struct rd *r, uint64_t *v)
{
    size_t avail = (size_t)(r->end - r->p);
    size_t max = avail < 10 ? avail : 10;
    uint64_t x = 0;

    if (avail > 0 && r->p[0] < 0x80) {
        *v = r->p[0];
        r->p++;
        return 0;
    }
    for (size_t i = 0; i < max; i++) {
        uint8_t b = r->p[i];
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (b < 0x80) {
            /* The 10th byte carries bit 63 only. */
            if (i == 9 && b > 1)
                return LK_EPROTO;
            *v = x;
            r->p += i + 1;
            return 0;
        }
    }
    return LK_EPROTO;
}

static inline uint64_t le_read(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Reads the next field of any wire type but groups. */
static inline int rd_field(struct rd *r, struct field *f)
{
    uint64_t key, len;
    size_t avail;

    if (rd_varint(r, &key) < 0)
        return LK_EPROTO;
    if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return LK_EPROTO;
    f->num = (uint32_t)(key >> 3);
    f->wt = (unsigned)(key & 7);
    f->v = 0;
    avail = (size_t)(r->end - r->p);
    switch (f->wt) {
    case LK_PB_VARINT:
        return rd_varint(r, &f->v);
    case LK_PB_I64:
        if (avail < 8)
            return LK_EPROTO;
        f->v = le_read(r->p, 8);
        r->p += 8;
        return 0;
    case LK_PB_I32:
        if (avail < 4)
            return LK_EPROTO;
        f->v = le_read(r->p, 4);
        r->p += 4;
        return 0;
    case LK_PB_LEN:
        if (rd_varint(r, &len) < 0 || len > (uint64_t)(r->end - r->p))
            return LK_EPROTO;
        f->s.p = r->p;
        f->s.len = (size_t)len;
        r->p += len;
        return 0;
    default:
        return LK_EPROTO;
    }
}

/* AnyValue. The oneof keeps its last member. */
static int parse_anyv(struct span s, struct anyv *v)
{
    struct rd r = rd_of(s);
    struct field f;
    int rc;

    v->kind = AV_NONE;
    v->u = 0;
    v->s.p = empty_bytes;
    v->s.len = 0;
    while (r.p < r.end) {
        rc = rd_field(&r, &f);
        if (rc < 0)
            return rc;
        switch (f.num) {
        case 1:
        case 5:
        case 6:
        case 7:
            if (f.wt != LK_PB_LEN)
                return LK_EPROTO;
            v->kind = f.num == 1   ? AV_STRING
                      : f.num == 5 ? AV_ARRAY
                      : f.num == 6 ? AV_KVLIST
                                   : AV_BYTES;
            v->s = f.s;
            break;
        case 2:
        case 3:
            if (f.wt != LK_PB_VARINT)
                return LK_EPROTO;
            v->kind = f.num == 2 ? AV_BOOL : AV_INT;
            v->u = f.num == 2 ? f.v != 0 : f.v;
            break;
        case 4:
            if (f.wt != LK_PB_I64)
                return LK_EPROTO;
            v->kind = AV_DOUBLE;
            v->u = f.v;
            break;
        case 8: /* string_value_strindex: no dictionary in logs */
            if (f.wt != LK_PB_VARINT)
                return LK_EPROTO;
            v->kind = AV_NONE;
            break;
        default:
            break;
        }
    }
    return 0;
}

/* KeyValue: key and value (AV_NONE when absent). */
static int parse_kv(struct span s, struct span *key, struct anyv *v)
{
    struct rd r = rd_of(s);
    struct field f;
    struct span val = {empty_bytes, 0};
    bool has_val = false;
    int rc;

    key->p = empty_bytes;
    key->len = 0;
    while (r.p < r.end) {
        rc = rd_field(&r, &f);
        if (rc < 0)
            return rc;
        if (f.num == 1 || f.num == 2) {
            if (f.wt != LK_PB_LEN)
                return LK_EPROTO;
            if (f.num == 1) {
                *key = f.s;
            } else {
                val = f.s;
                has_val = true;
            }
        }
    }
    if (!has_val) {
        v->kind = AV_NONE;
        v->u = 0;
        v->s = val;
        return 0;
    }
    return parse_anyv(val, v);
}

/* --- value text */

static size_t u64_dec(uint64_t v, char *out)
{
    char t[20];
    size_t n = 0, i;

    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (i = 0; i < n; i++)
        out[i] = t[n - 1 - i];
    return n;
}

static size_t i64_dec(uint64_t bits, char *out)
{
    if (bits >> 63) {
        out[0] = '-';
        return 1 + u64_dec(~bits + 1, out + 1);
    }
    return u64_dec(bits, out);
}

/* Shortest text that reads back as the same double (at most 24 bytes + NUL).
 * Sets *finite. snprintf is used only for doubles, which are rare in logs. */
static size_t fmt_double(uint64_t bits, char out[32], bool *finite)
{
    double d;
    int n = 0;

    memcpy(&d, &bits, sizeof(d));
    *finite = isfinite(d);
    if (isnan(d)) {
        memcpy(out, "NaN", 4);
        return 3;
    }
    if (isinf(d)) {
        memcpy(out, d > 0 ? "Infinity" : "-Infinity", d > 0 ? 9 : 10);
        return d > 0 ? 8 : 9;
    }
    /* Any decimal of at most DBL_DIG (15) digits reads back exactly, so
     * %.15g is the shortest form whenever one of <= 15 digits exists; else
     * the correctly rounded 16 digits, else 17 (always enough). */
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, 32, "%.*g", prec, d);
        if (prec == 17 || strtod(out, NULL) == d)
            break;
    }
    return n > 0 ? (size_t)n : 0;
}

static int append_hex(lk_buf *b, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char chunk[256];
    size_t k = 0;
    int rc;

    for (size_t i = 0; i < n; i++) {
        chunk[k] = hex[p[i] >> 4];
        chunk[k + 1] = hex[p[i] & 15];
        k += 2;
        if (k == sizeof(chunk)) {
            rc = lk_buf_append(b, chunk, k);
            if (rc < 0)
                return rc;
            k = 0;
        }
    }
    return lk_buf_append(b, chunk, k);
}

/* A JSON string; text that needs no escape at all (most ids, names and
 * values) is copied with one reservation. */
static int json_str(lk_buf *b, const uint8_t *p, size_t n)
{
    size_t i;
    int rc;

    for (i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] >= 0x7f || p[i] == '"' || p[i] == '\\')
            break;
    if (i < n)
        return lk_json_escape(b, (const char *)p, n);
    rc = lk_buf_reserve(b, n + 2);
    if (rc < 0)
        return rc;
    lk_buf_append(b, "\"", 1);
    lk_buf_append(b, p, n);
    return lk_buf_append(b, "\"", 1);
}

/* AnyValue as JSON: kvlist -> object, array, int -> 42, double, bool,
 * bytes -> base64 string, no value -> null. */
static int json_any(lk_buf *b, const struct anyv *v, unsigned depth)
{
    char t[32];
    bool finite, first = true;
    struct rd r;
    struct field f;
    struct anyv item;
    struct span key;
    size_t n;
    int rc;

    if (depth > MAX_JSON_DEPTH)
        return LK_EPROTO;
    switch (v->kind) {
    case AV_STRING:
        return json_str(b, v->s.p, v->s.len);
    case AV_BOOL:
        return lk_buf_append_str(b, v->u ? "true" : "false");
    case AV_INT:
        n = i64_dec(v->u, t);
        return lk_buf_append(b, t, n);
    case AV_DOUBLE:
        n = fmt_double(v->u, t, &finite);
        if (!finite)
            return json_str(b, (const uint8_t *)t, n);
        return lk_buf_append(b, t, n);
    case AV_BYTES:
        rc = lk_buf_append(b, "\"", 1);
        if (rc == 0)
            rc = lk_base64_append(b, v->s.p, v->s.len, true);
        return rc < 0 ? rc : lk_buf_append(b, "\"", 1);
    case AV_ARRAY:
    case AV_KVLIST:
        r = rd_of(v->s);
        rc = lk_buf_append(b, v->kind == AV_ARRAY ? "[" : "{", 1);
        while (rc == 0 && r.p < r.end) {
            rc = rd_field(&r, &f);
            if (rc < 0 || f.num != 1)
                continue;
            if (f.wt != LK_PB_LEN)
                return LK_EPROTO;
            if (v->kind == AV_ARRAY)
                rc = parse_anyv(f.s, &item);
            else
                rc = parse_kv(f.s, &key, &item);
            if (rc == 0 && !first)
                rc = lk_buf_append(b, ",", 1);
            first = false;
            if (rc == 0 && v->kind == AV_KVLIST) {
                rc = json_str(b, key.p, key.len);
                if (rc == 0)
                    rc = lk_buf_append(b, ":", 1);
            }
            if (rc == 0)
                rc = json_any(b, &item, depth + 1);
        }
        if (rc < 0)
            return rc;
        return lk_buf_append(b, v->kind == AV_ARRAY ? "]" : "}", 1);
    default:
        return lk_buf_append(b, "null", 4);
    }
}

/* The text of |v| (see the top of the file): strings point into the input,
 * the rest is rendered at the end of |a|. */
static int value_text(lk_buf *a, const struct anyv *v, struct vref *out)
{
    char t[32];
    bool finite;
    size_t n;
    int rc;

    out->p = NULL;
    out->off = a->len;
    out->len = 0;
    switch (v->kind) {
    case AV_STRING:
        out->p = v->s.p;
        out->len = v->s.len;
        return 0;
    case AV_BOOL:
        out->p = (const uint8_t *)(v->u ? "true" : "false");
        out->len = v->u ? 4 : 5;
        return 0;
    case AV_INT:
        n = i64_dec(v->u, t);
        rc = lk_buf_append(a, t, n);
        break;
    case AV_DOUBLE:
        n = fmt_double(v->u, t, &finite);
        rc = lk_buf_append(a, t, n);
        break;
    case AV_BYTES:
        rc = lk_base64_append(a, v->s.p, v->s.len, true);
        break;
    case AV_ARRAY:
    case AV_KVLIST:
        rc = json_any(a, v, 0);
        break;
    default:
        out->p = empty_bytes;
        return 0;
    }
    out->len = a->len - out->off;
    return rc;
}

static inline const uint8_t *vref_ptr(const struct vref *r, const lk_buf *a)
{
    if (r->p != NULL)
        return r->p;
    return r->len == 0 ? empty_bytes : a->data + r->off;
}

static inline struct vref vref_lit(const char *s)
{
    struct vref r = {(const uint8_t *)s, 0, strlen(s)};
    return r;
}

static inline bool anyv_is_empty(const struct anyv *v)
{
    return v->kind == AV_NONE ||
           ((v->kind == AV_STRING || v->kind == AV_BYTES) && v->s.len == 0);
}

/* Normalised level of a record, or NULL. */
static const char *level_norm(const struct entry *en)
{
    return lk_severity_level_norm(en->sev, (const char *)en->sevtext.p, en->sevtext.len);
}

/* --- attributes */

static inline const uint8_t *attr_name(const struct lk_loki_encoder *e,
                                       const struct attr *a)
{
    return a->name_len == 0 ? empty_bytes : e->names.data + a->name_off;
}

static bool key_is(struct span k, const char *s, size_t n)
{
    return k.len == n && memcmp(k.p, s, n) == 0;
}

/* Appends the KeyValue at |s| to e->attrs; its index goes to *idx. */
static int add_attr(struct lk_loki_encoder *e, struct span s, size_t *idx)
{
    struct attr *a;
    int rc;

    ENSURE(rc, e->attrs, e->cap_attrs, e->nattrs + 1);
    if (rc < 0)
        return rc;
    a = &e->attrs[e->nattrs];
    rc = parse_kv(s, &a->key, &a->v);
    if (rc < 0)
        return rc;
    a->flags = 0;
    if (key_is(a->key, "loki.resource.labels", 20))
        a->flags = A_RES_HINT;
    else if (key_is(a->key, "loki.attribute.labels", 21))
        a->flags = A_REC_HINT;
    a->name_off = e->names.len;
    rc = append_name(&e->names, a->key.p, a->key.len);
    if (rc < 0)
        return rc;
    a->name_len = e->names.len - a->name_off;
    *idx = e->nattrs++;
    return 0;
}

/* First attribute of [first, first + n) whose Loki name is |name| and whose
 * value is not empty (hints excluded). */
static size_t find_by_name(const struct lk_loki_encoder *e, size_t first,
                           size_t n, const uint8_t *name, size_t nlen)
{
    for (size_t i = first; i < first + n; i++) {
        const struct attr *a = &e->attrs[i];
        if (a->name_len == nlen && a->flags == 0 &&
            memcmp(attr_name(e, a), name, nlen) == 0 && !anyv_is_empty(&a->v))
            return i;
    }
    return NO_ATTR;
}

/* First attribute of [first, first + n) with original key |k|. */
static size_t find_by_key(const struct lk_loki_encoder *e, size_t first,
                          size_t n, const uint8_t *k, size_t klen)
{
    for (size_t i = first; i < first + n; i++) {
        const struct attr *a = &e->attrs[i];
        if (a->key.len == klen && a->flags == 0 &&
            memcmp(a->key.p, k, klen) == 0)
            return i;
    }
    return NO_ATTR;
}

/* Calls fn(e, i) for each attribute i of [first, first + n) named by the
 * comma-separated hint list in attribute |h| (blanks around keys ignored;
 * keys no attribute has are skipped). */
typedef int (*hint_fn)(struct lk_loki_encoder *e, size_t attr);

static int for_each_hint(struct lk_loki_encoder *e, size_t h, size_t first,
                         size_t n, hint_fn fn)
{
    const struct attr *ha = &e->attrs[h];
    const uint8_t *p, *end;

    if (ha->v.kind != AV_STRING)
        return 0;
    p = ha->v.s.p;
    end = p + ha->v.s.len;
    while (p < end) {
        const uint8_t *q = memchr(p, ',', (size_t)(end - p));
        const uint8_t *te = q != NULL ? q : end;
        const uint8_t *ts = p;
        size_t i;
        int rc;

        while (ts < te && (*ts == ' ' || *ts == '\t'))
            ts++;
        while (te > ts && (te[-1] == ' ' || te[-1] == '\t'))
            te--;
        if (te > ts) {
            i = find_by_key(e, first, n, ts, (size_t)(te - ts));
            if (i != NO_ATTR) {
                rc = fn(e, i);
                if (rc < 0)
                    return rc;
            }
        }
        if (q == NULL)
            break;
        p = q + 1;
    }
    return 0;
}

/* --- labels and streams */

static bool label_free(const struct lk_loki_encoder *e, const uint8_t *name,
                       size_t nlen)
{
    if (nlen == 0 || e->npairs >= LK_LOKI_MAX_LABELS)
        return false;
    for (size_t i = 0; i < e->npairs; i++)
        if (e->pairs[i].nlen == nlen && memcmp(e->pairs[i].name, name, nlen) == 0)
            return false;
    return true;
}

static void label_put(struct lk_loki_encoder *e, const uint8_t *name,
                      size_t nlen, const struct vref *v)
{
    if (v->len == 0)
        return;
    e->pairs[e->npairs].name = name;
    e->pairs[e->npairs].nlen = nlen;
    e->pairs[e->npairs].v = *v;
    e->npairs++;
}

/* Adds attribute |i| as a label under its Loki name, if that is free. */
static int label_from_attr(struct lk_loki_encoder *e, size_t i)
{
    const struct attr *a = &e->attrs[i];
    const uint8_t *name = attr_name(e, a);
    struct vref v;
    int rc;

    if (!label_free(e, name, a->name_len))
        return 0;
    rc = value_text(&e->tmp, &a->v, &v);
    if (rc < 0)
        return rc;
    label_put(e, name, a->name_len, &v);
    return 0;
}

static int push_hint(struct lk_loki_encoder *e, size_t i)
{
    int rc;

    ENSURE(rc, e->hints, e->cap_hints, e->nhints + 1);
    if (rc < 0)
        return rc;
    e->hints[e->nhints++] = i;
    return 0;
}

/* Digests the attributes of a resource: where each configured label takes
 * its value from, and which attributes its hint names. */
static int prepare_resource(struct lk_loki_encoder *e,
                            const struct lk_loki_encode_opts *o, size_t first,
                            size_t n)
{
    e->res_first = first;
    e->res_n = n;
    e->res_stream = NO_STREAM;
    e->nhints = 0;
    for (size_t i = 0; i < o->nlabels; i++)
        e->res_lab[i] = e->cfg[i].level ? NO_ATTR
                                        : find_by_name(e, first, n,
                                                       e->cfg[i].name,
                                                       e->cfg[i].len);
    for (size_t i = first; i < first + n; i++)
        if (e->attrs[i].flags & A_RES_HINT)
            return for_each_hint(e, i, first, n, push_hint);
    return 0;
}

/* Appends unless an earlier append failed (*rc holds the first error). */
static inline void append_ok(lk_buf *b, const uint8_t *p, size_t n, int *rc)
{
    if (*rc == 0 && n > 0)
        *rc = lk_buf_append(b, p, n);
}

/* Renders the sorted label pairs as {a="b", c="d"} into e->lbl. */
static int render_labels(struct lk_loki_encoder *e)
{
    lk_buf *b = &e->lbl;
    int rc;

    lk_buf_reset(b);
    rc = lk_buf_append(b, "{", 1);
    for (size_t i = 0; i < e->npairs && rc == 0; i++) {
        const struct lpair *lp = &e->pairs[i];
        const uint8_t *v = vref_ptr(&lp->v, &e->tmp);
        size_t run = 0;

        if (i > 0)
            rc = lk_buf_append(b, ", ", 2);
        append_ok(b, lp->name, lp->nlen, &rc);
        append_ok(b, (const uint8_t *)"=\"", 2, &rc);
        for (size_t k = 0; k < lp->v.len && rc == 0; k++) {
            const char *esc = v[k] == '\\'   ? "\\\\"
                              : v[k] == '"'  ? "\\\""
                              : v[k] == '\n' ? "\\n"
                                             : NULL;
            if (esc == NULL)
                continue;
            append_ok(b, v + run, k - run, &rc);
            append_ok(b, (const uint8_t *)esc, 2, &rc);
            run = k + 1;
        }
        append_ok(b, v + run, lp->v.len - run, &rc);
        append_ok(b, (const uint8_t *)"\"", 1, &rc);
    }
    if (rc == 0)
        rc = lk_buf_append(b, "}", 1);
    return rc;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int table_grow(struct lk_loki_encoder *e)
{
    size_t ns = e->nslots ? e->nslots * 2 : 64;
    uint32_t *slots;

    if (ns > SIZE_MAX / sizeof(*slots))
        return LK_ENOMEM;
    slots = realloc(e->slots, ns * sizeof(*slots));
    if (slots == NULL)
        return LK_ENOMEM;
    memset(slots, 0, ns * sizeof(*slots));
    for (size_t s = 0; s < e->nstreams; s++) {
        size_t i = (size_t)e->streams[s].hash & (ns - 1);
        while (slots[i] != 0)
            i = (i + 1) & (ns - 1);
        slots[i] = (uint32_t)s + 1;
    }
    e->slots = slots;
    e->nslots = ns;
    return 0;
}

/* Copies the record's label pairs into a new stream's storage. */
static int stream_add(struct lk_loki_encoder *e, uint64_t h, size_t slot,
                      uint32_t *out)
{
    struct stream *st;
    int rc;

    if (e->nstreams >= UINT32_MAX - 1)
        return LK_E2BIG;
    ENSURE(rc, e->streams, e->cap_streams, e->nstreams + 1);
    if (rc == 0)
        ENSURE(rc, e->spairs, e->cap_spairs, e->nspairs + e->npairs);
    if (rc < 0)
        return rc;
    st = &e->streams[e->nstreams];
    st->hash = h;
    st->lab_off = e->slab.len;
    st->lab_len = e->lbl.len;
    st->pair_first = e->nspairs;
    st->npairs = e->npairs;
    st->name_lens = 0;
    st->count = 0;
    rc = lk_buf_append(&e->slab, e->lbl.data, e->lbl.len);
    for (size_t i = 0; i < e->npairs && rc == 0; i++) {
        const struct lpair *lp = &e->pairs[i];
        struct spair *sp = &e->spairs[e->nspairs + i];
        sp->name_off = e->slab.len;
        sp->name_len = lp->nlen;
        st->name_lens |= 1ull << (lp->nlen % 64);
        rc = lk_buf_append(&e->slab, lp->name, lp->nlen);
        sp->val_off = e->slab.len;
        sp->val_len = lp->v.len;
        if (rc == 0)
            rc = lk_buf_append(&e->slab, vref_ptr(&lp->v, &e->tmp), lp->v.len);
    }
    if (rc < 0)
        return rc;
    e->nspairs += e->npairs;
    e->slots[slot] = (uint32_t)e->nstreams + 1;
    *out = (uint32_t)e->nstreams++;
    return 0;
}

/* Stream of the label set in e->lbl / e->pairs, created when new. */
static int stream_of(struct lk_loki_encoder *e, uint32_t *out)
{
    const uint8_t *lab = e->lbl.data;
    size_t len = e->lbl.len, i, mask;
    uint64_t h = hash_bytes(lab, len);
    int rc;

    if ((e->nstreams + 1) * 2 > e->nslots) {
        rc = table_grow(e);
        if (rc < 0)
            return rc;
    }
    mask = e->nslots - 1;
    for (i = (size_t)h & mask; e->slots[i] != 0; i = (i + 1) & mask) {
        const struct stream *st = &e->streams[e->slots[i] - 1];
        if (st->hash == h && st->lab_len == len &&
            memcmp(e->slab.data + st->lab_off, lab, len) == 0) {
            *out = e->slots[i] - 1;
            return 0;
        }
    }
    return stream_add(e, h, i, out);
}

static int pair_cmp(const struct lpair *a, const struct lpair *b)
{
    size_t n = a->nlen < b->nlen ? a->nlen : b->nlen;
    int c = memcmp(a->name, b->name, n);

    if (c != 0)
        return c;
    return a->nlen < b->nlen ? -1 : a->nlen > b->nlen;
}

/* True when entry |en| may carry labels its resource does not give: a level
 * label, a record hint, or a configured label only the record has. */
static bool labels_own(const struct lk_loki_encoder *e,
                       const struct lk_loki_encode_opts *o,
                       const struct entry *en, size_t rec_hint)
{
    if (rec_hint != NO_ATTR)
        return true;
    for (size_t i = 0; i < o->nlabels; i++) {
        const struct cfg_label *c = &e->cfg[i];
        if (c->level)
            return true;
        if (e->res_lab[i] == NO_ATTR && en->nrattr > 0 &&
            find_by_name(e, en->rattr, en->nrattr, c->name, c->len) != NO_ATTR)
            return true;
    }
    return false;
}

/* Builds the label set of entry |en| (its record hint attribute at |rec_hint|
 * or NO_ATTR) and sets en->stream. */
static int assign_stream(struct lk_loki_encoder *e,
                         const struct lk_loki_encode_opts *o, struct entry *en,
                         size_t rec_hint)
{
    bool own = labels_own(e, o, en, rec_hint), cacheable = !own;
    struct vref v;
    uint32_t s = 0;
    int rc;

    if (!own && e->res_stream != NO_STREAM) {
        en->stream = e->res_stream;
        e->streams[en->stream].count++;
        return 0;
    }
    e->npairs = 0;
    lk_buf_reset(&e->tmp);
    for (size_t i = 0; i < o->nlabels; i++) {
        const struct cfg_label *c = &e->cfg[i];
        size_t a;

        if (!label_free(e, c->name, c->len))
            continue;
        if (c->level) {
            const char *lvl = level_norm(en);
            if (lvl != NULL) {
                v = vref_lit(lvl);
                label_put(e, c->name, c->len, &v);
            }
            continue;
        }
        a = e->res_lab[i];
        if (a == NO_ATTR && en->nrattr > 0)
            a = find_by_name(e, en->rattr, en->nrattr, c->name, c->len);
        if (a != NO_ATTR) {
            rc = value_text(&e->tmp, &e->attrs[a].v, &v);
            if (rc < 0)
                return rc;
        } else if (c->def != NULL) {
            v = vref_lit(c->def);
        } else {
            continue;
        }
        label_put(e, c->name, c->len, &v);
    }
    for (size_t i = 0; i < e->nhints; i++) {
        rc = label_from_attr(e, e->hints[i]);
        if (rc < 0)
            return rc;
    }
    if (rec_hint != NO_ATTR) {
        rc = for_each_hint(e, rec_hint, en->rattr, en->nrattr, label_from_attr);
        if (rc < 0)
            return rc;
    }
    if (e->npairs == 0) {
        /* Loki refuses a stream without labels. The fallback may come from
         * the record, so its result is not the resource's to share. */
        static const uint8_t sn[] = "service_name";
        size_t a = find_by_name(e, en->sattr, en->nsattr, sn, 12);
        if (a == NO_ATTR && en->nrattr > 0)
            a = find_by_name(e, en->rattr, en->nrattr, sn, 12);
        if (a != NO_ATTR) {
            rc = value_text(&e->tmp, &e->attrs[a].v, &v);
            if (rc < 0)
                return rc;
        } else {
            v = vref_lit("unknown_service");
        }
        label_put(e, sn, 12, &v);
        cacheable = false;
    }
    /* Insertion sort: at most LK_LOKI_MAX_LABELS pairs. */
    for (size_t i = 1; i < e->npairs; i++) {
        struct lpair t = e->pairs[i];
        size_t j = i;
        while (j > 0 && pair_cmp(&e->pairs[j - 1], &t) > 0) {
            e->pairs[j] = e->pairs[j - 1];
            j--;
        }
        e->pairs[j] = t;
    }
    rc = render_labels(e);
    if (rc == 0)
        rc = stream_of(e, &s);
    if (rc < 0)
        return rc;
    en->stream = s;
    if (cacheable)
        e->res_stream = s;
    e->streams[s].count++;
    return 0;
}

/* --- walk */

static int walk_record(struct lk_loki_encoder *e,
                       const struct lk_loki_encode_opts *o, struct span rec,
                       struct span scope)
{
    struct rd r = rd_of(rec);
    struct field f;
    struct entry *en;
    uint64_t t = 0, obs = 0;
    size_t rec_hint = NO_ATTR, idx;
    int rc;

    if (e->nents >= UINT32_MAX)
        return LK_E2BIG;
    ENSURE(rc, e->ents, e->cap_ents, e->nents + 1);
    if (rc < 0)
        return rc;
    en = &e->ents[e->nents];
    en->sev = 0;
    en->body.kind = AV_NONE;
    en->sevtext.p = en->trace.p = en->spanid.p = empty_bytes;
    en->sevtext.len = en->trace.len = en->spanid.len = 0;
    en->pre.p = empty_bytes;
    en->pre.len = 0;
    en->rattr = e->nattrs;
    while (r.p < r.end) {
        rc = rd_field(&r, &f);
        if (rc < 0)
            return rc;
        switch (f.num) {
        case 1:
        case 11:
            if (f.wt != LK_PB_I64)
                return LK_EPROTO;
            if (f.num == 1)
                t = f.v;
            else
                obs = f.v;
            break;
        case 2:
            if (f.wt != LK_PB_VARINT)
                return LK_EPROTO;
            en->sev = f.v >= 1 && f.v <= 24 ? (int)f.v : 0;
            break;
        case 3:
        case 5:
        case 6:
        case 9:
        case 10:
            if (f.wt != LK_PB_LEN)
                return LK_EPROTO;
            if (f.num == 3) {
                en->sevtext = f.s;
            } else if (f.num == 5) {
                rc = parse_anyv(f.s, &en->body);
            } else if (f.num == 6) {
                rc = add_attr(e, f.s, &idx);
                if (rc == 0 && rec_hint == NO_ATTR &&
                    (e->attrs[idx].flags & A_REC_HINT))
                    rec_hint = idx;
            } else if (f.num == 9) {
                en->trace = f.s;
            } else {
                en->spanid = f.s;
            }
            if (rc < 0)
                return rc;
            break;
        default:
            break;
        }
    }
    en->nrattr = e->nattrs - en->rattr;
    en->sattr = e->res_first;
    en->nsattr = e->res_n;
    en->scope = scope;
    en->ts = t != 0 ? t : obs != 0 ? obs : o->now_ns;
    rc = assign_stream(e, o, en, rec_hint);
    if (rc < 0)
        return rc;
    e->nents++;
    return 0;
}

static int walk_scope_logs(struct lk_loki_encoder *e,
                           const struct lk_loki_encode_opts *o, struct span s)
{
    struct span name = {empty_bytes, 0};
    struct rd r = rd_of(s), q;
    struct field f, g;
    int rc;

    /* The scope may follow the records on the wire: find it first. */
    while (r.p < r.end) {
        rc = rd_field(&r, &f);
        if (rc < 0)
            return rc;
        if (f.num != 1)
            continue;
        if (f.wt != LK_PB_LEN)
            return LK_EPROTO;
        q = rd_of(f.s);
        while (q.p < q.end) {
            rc = rd_field(&q, &g);
            if (rc < 0)
                return rc;
            if (g.num != 1)
                continue;
            if (g.wt != LK_PB_LEN)
                return LK_EPROTO;
            name = g.s;
        }
    }
    r = rd_of(s);
    while (r.p < r.end) {
        rc = rd_field(&r, &f);
        if (rc < 0)
            return rc;
        if (f.num != 2)
            continue;
        if (f.wt != LK_PB_LEN)
            return LK_EPROTO;
        rc = walk_record(e, o, f.s, name);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The attributes of one Resource message (|res|, its body) into e->attrs. */
static int add_resource_attrs(struct lk_loki_encoder *e, struct span res)
{
    struct rd r = rd_of(res);
    struct field f;
    size_t idx;
    int rc;

    while (r.p < r.end) {
        rc = rd_field(&r, &f);
        if (rc < 0)
            return rc;
        if (f.num != 1)
            continue;
        if (f.wt != LK_PB_LEN)
            return LK_EPROTO;
        rc = add_attr(e, f.s, &idx);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int walk_resource_logs(struct lk_loki_encoder *e,
                              const struct lk_loki_encode_opts *o,
                              struct span s)
{
    size_t first = e->nattrs;
    struct rd r = rd_of(s);
    struct field f;
    int rc;

    e->last_res.p = NULL;
    /* The resource may follow its scope_logs on the wire: read it first. */
    while (r.p < r.end) {
        rc = rd_field(&r, &f);
        if (rc < 0)
            return rc;
        if (f.num != 1)
            continue;
        if (f.wt != LK_PB_LEN)
            return LK_EPROTO;
        rc = add_resource_attrs(e, f.s);
        if (rc < 0)
            return rc;
    }
    rc = prepare_resource(e, o, first, e->nattrs - first);
    if (rc < 0)
        return rc;
    r = rd_of(s);
    while (r.p < r.end) {
        rc = rd_field(&r, &f);
        if (rc < 0)
            return rc;
        if (f.num != 2)
            continue;
        if (f.wt != LK_PB_LEN)
            return LK_EPROTO;
        rc = walk_scope_logs(e, o, f.s);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int walk_request(struct lk_loki_encoder *e,
                        const struct lk_loki_encode_opts *o, struct span s)
{
    struct rd r = rd_of(s);
    struct field f;
    int rc;

    while (r.p < r.end) {
        rc = rd_field(&r, &f);
        if (rc < 0)
            return rc;
        if (f.num != 1)
            continue;
        if (f.wt != LK_PB_LEN)
            return LK_EPROTO;
        rc = walk_resource_logs(e, o, f.s);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* A length-delimited field with a one-byte tag and a body of |n| bytes. */
static inline size_t ld_size(size_t n)
{
    return 1 + lk_pb_varint_len(n) + n;
}

/* --- LK_FORM_LOKI_ENTRIES (pipeline/loki_entries.h) */

/* Entries of an item go into the body as the receiver wrote them, their
 * resource's labels and metadata resolved here; a run whose resource is the
 * bytes of the last one shares its attributes and stream. */
static int walk_entries(struct lk_loki_encoder *e,
                        const struct lk_loki_encode_opts *o, struct span s)
{
    const uint8_t *p = s.p, *end = s.p + s.len;
    struct lk_loki_run run;
    struct lk_loki_entry le;
    int rc;

    while (p < end) {
        rc = lk_loki_run_next(&p, end, &run);
        if (rc < 0)
            return rc;
        if (e->last_res.p == NULL || e->last_res.len != run.res_len ||
            memcmp(e->last_res.p, run.res, run.res_len) != 0) {
            size_t first = e->nattrs;
            struct span res = {run.res, run.res_len};
            rc = add_resource_attrs(e, res);
            if (rc == 0)
                rc = prepare_resource(e, o, first, e->nattrs - first);
            if (rc < 0)
                return rc;
            e->last_res.p = run.res;
            e->last_res.len = run.res_len;
        }
        const uint8_t *q = run.ents, *qend = run.ents + run.ents_len;
        uint64_t left = run.nents;
        for (; q < qend; left--) {
            struct entry *en;
            if (left == 0)
                return LK_EPROTO;
            /* Only each entry's head is read here, a few hundred bytes
             * apart: fetch ahead (cold by now; a hint, never a fault). */
            __builtin_prefetch(q + 1024);
            if (e->nents >= UINT32_MAX)
                return LK_E2BIG;
            ENSURE(rc, e->ents, e->cap_ents, e->nents + 1);
            if (rc < 0)
                return rc;
            rc = lk_loki_entry_next(&q, qend, &le);
            if (rc < 0)
                return rc;
            en = &e->ents[e->nents];
            en->ts = le.ts;
            en->sev = le.severity_number;
            en->pre.p = le.core;
            en->pre.len = le.core_len;
            en->sattr = e->res_first;
            en->nsattr = e->res_n;
            e->nents++;
            /* An entry adds no label of its own (lk_loki_takes_entries):
             * once its resource has a stream, that is the entry's. */
            if (e->res_stream != NO_STREAM) {
                en->stream = e->res_stream;
                e->streams[en->stream].count++;
                continue;
            }
            en->body.kind = AV_NONE;
            en->sevtext.p = en->trace.p = en->spanid.p = en->scope.p = empty_bytes;
            en->sevtext.len = en->trace.len = en->spanid.len = en->scope.len = 0;
            en->rattr = e->nattrs;
            en->nrattr = 0;
            rc = assign_stream(e, o, en, NO_ATTR);
            if (rc < 0)
                return rc;
        }
        if (left != 0)
            return LK_EPROTO;
    }
    return 0;
}

bool lk_loki_takes_entries(const struct lk_loki_encode_opts *o)
{
    if (o->format != LK_LOKI_PROTOBUF)
        return false;
    for (size_t i = 0; i < o->nlabels; i++)
        if (o->labels[i] != NULL && strcmp(o->labels[i], "level") == 0)
            return false;
    return true;
}

/* --- order */

/* Stable bottom-up merge sort of entry indices by timestamp. */
static void sort_by_ts(const struct entry *ents, uint32_t *a, uint32_t *tmp,
                       size_t n)
{
    uint32_t *src = a, *dst = tmp, *t;

    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n;
            size_t hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                dst[k++] = ents[src[j]].ts < ents[src[i]].ts ? src[j++]
                                                              : src[i++];
            while (i < mid)
                dst[k++] = src[i++];
            while (j < hi)
                dst[k++] = src[j++];
        }
        t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof(*a));
}

static int order_entries(struct lk_loki_encoder *e)
{
    uint32_t pos = 0;
    int rc;

    ENSURE(rc, e->order, e->cap_order, e->nents);
    if (rc == 0)
        ENSURE(rc, e->otmp, e->cap_otmp, e->nents);
    if (rc < 0)
        return rc;
    for (size_t s = 0; s < e->nstreams; s++) {
        e->streams[s].start = e->streams[s].fill = pos;
        pos += e->streams[s].count;
    }
    for (size_t i = 0; i < e->nents; i++)
        e->order[e->streams[e->ents[i].stream].fill++] = (uint32_t)i;
    for (size_t s = 0; s < e->nstreams; s++) {
        uint32_t *seg = e->order + e->streams[s].start;
        size_t n = e->streams[s].count;
        for (size_t k = 1; k < n; k++) {
            if (e->ents[seg[k]].ts < e->ents[seg[k - 1]].ts) {
                sort_by_ts(e->ents, seg, e->otmp, n);
                break;
            }
        }
    }
    return 0;
}

/* --- emit */

static bool meta_free(const struct lk_loki_encoder *e, const struct stream *st,
                      size_t first, const uint8_t *name, size_t nlen)
{
    /* Hot (every metadata name of every entry): most names have a length no
     * label of the stream has. */
    for (size_t i = 0; (st->name_lens >> (nlen % 64) & 1) && i < st->npairs; i++) {
        const struct spair *sp = &e->spairs[st->pair_first + i];
        if (sp->name_len == nlen &&
            memcmp(e->slab.data + sp->name_off, name, nlen) == 0)
            return false;
    }
    for (size_t i = first; i < e->npieces; i++)
        if (e->pieces[i].name.len == nlen &&
            memcmp(e->pieces[i].name.p, name, nlen) == 0)
            return false;
    return true;
}

/* Room was made by gather(). */
static inline void piece_put(struct lk_loki_encoder *e, const uint8_t *name,
                             size_t nlen, const struct vref *v)
{
    e->pieces[e->npieces].name.p = name;
    e->pieces[e->npieces].name.len = nlen;
    e->pieces[e->npieces].v = *v;
    e->npieces++;
}

static bool all_zero(struct span s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.p[i] != 0)
            return false;
    return true;
}

static int meta_id(struct lk_loki_encoder *e, const struct stream *st,
                   size_t first, const char *name, size_t nlen, struct span id)
{
    struct vref v;
    int rc;

    if (id.len == 0 || all_zero(id) ||
        !meta_free(e, st, first, (const uint8_t *)name, nlen))
        return 0;
    v.p = NULL;
    v.off = e->arena.len;
    rc = append_hex(&e->arena, id.p, id.len);
    if (rc < 0)
        return rc;
    v.len = e->arena.len - v.off;
    piece_put(e, (const uint8_t *)name, nlen, &v);
    return 0;
}

static int meta_attrs(struct lk_loki_encoder *e, const struct stream *st,
                      size_t first, size_t from, size_t n)
{
    for (size_t i = from; i < from + n; i++) {
        const struct attr *a = &e->attrs[i];
        const uint8_t *name = attr_name(e, a);
        if (a->flags != 0 || a->name_len == 0 ||
            !meta_free(e, st, first, name, a->name_len))
            continue;
        piece_put(e, name, a->name_len, &a->text);
    }
    return 0;
}

void lk_loki_encoder_cuts(const struct lk_loki_encoder *e, uint64_t *by_entries,
                          uint64_t *by_size)
{
    *by_entries = e->cut_entries;
    *by_size = e->cut_size;
}

static inline uint64_t piece_bytes(const struct piece *p)
{
    return (uint64_t)p->name.len + p->v.len;
}

/* Keeps the pieces of |m| (the last ones of e->pieces) within the limits of
 * e->o, in order; see lk_loki_encoder_cuts. Under the limits nothing moves. */
static void cut_pieces(struct lk_loki_encoder *e, struct emeta *m)
{
    const struct lk_loki_encode_opts *o = e->o;
    size_t maxn = o->md_max_entries ? o->md_max_entries : SIZE_MAX;
    uint64_t maxb = o->md_max_bytes ? o->md_max_bytes : UINT64_MAX;
    uint64_t used = 0;
    size_t keep = m->first;

    if (o->md_max_entries == 0 && o->md_max_bytes == 0)
        return;
    if (m->n <= maxn) {
        for (size_t i = m->first; i < m->first + m->n; i++)
            used += piece_bytes(&e->pieces[i]);
        if (used <= maxb)
            return;
        used = 0;
    }
    for (size_t i = m->first; i < m->first + m->n; i++) {
        const struct piece *p = &e->pieces[i];
        if (keep - m->first >= maxn) {
            e->cut_entries++;
            continue;
        }
        if (piece_bytes(p) > maxb - used) {
            e->cut_size++;
            continue;
        }
        used += piece_bytes(p);
        e->pieces[keep++] = *p;
    }
    m->n = keep - m->first;
    e->npieces = keep;
}

/* Reads an entry's core (a logproto EntryAdapter): its line into *|line|
 * and its metadata pairs appended to e->pieces (pointing into the core). */
static int core_read(struct lk_loki_encoder *e, struct span core, struct span *line)
{
    struct rd r = rd_of(core), q;
    struct field f, g;
    int rc;

    line->p = empty_bytes;
    line->len = 0;
    while (r.p < r.end) {
        rc = rd_field(&r, &f);
        if (rc < 0)
            return rc;
        if (f.num != 2 && f.num != 3)
            continue;
        if (f.wt != LK_PB_LEN)
            return LK_EPROTO;
        if (f.num == 2) {
            *line = f.s;
            continue;
        }
        struct span name = {empty_bytes, 0};
        struct vref v = {empty_bytes, 0, 0};
        q = rd_of(f.s);
        while (q.p < q.end) {
            rc = rd_field(&q, &g);
            if (rc < 0)
                return rc;
            if ((g.num != 1 && g.num != 2) || g.wt != LK_PB_LEN)
                continue;
            if (g.num == 1) {
                name = g.s;
            } else {
                v.p = g.s.len ? g.s.p : empty_bytes;
                v.len = g.s.len;
            }
        }
        ENSURE(rc, e->pieces, e->cap_pieces, e->npieces + 1);
        if (rc < 0)
            return rc;
        piece_put(e, name.p, name.len, &v);
    }
    return 0;
}

/* Collects the line and structured metadata of |en| into e->pieces (values
 * rendered into e->arena). */
static int gather(struct lk_loki_encoder *e, const struct stream *st,
                  const struct entry *en, struct emeta *m)
{
    static const uint8_t lv[] = "level", sc[] = "scope_name";
    const char *lvl;
    struct vref v;
    int rc;

    /* level, trace_id, span_id, scope_name and the attributes at most. */
    ENSURE(rc, e->pieces, e->cap_pieces,
           e->npieces + 4 + en->nrattr + en->nsattr);
    if (rc < 0)
        return rc;
    m->first = e->npieces;
    if (meta_free(e, st, m->first, lv, 5)) {
        lvl = level_norm(en);
        v.len = 0;
        if (lvl != NULL) {
            v = vref_lit(lvl);
        } else if (en->sevtext.len > 0) {
            v.p = en->sevtext.p;
            v.len = en->sevtext.len;
        }
        if (v.len > 0)
            piece_put(e, lv, 5, &v);
    }
    rc = meta_id(e, st, m->first, "trace_id", 8, en->trace);
    if (rc == 0)
        rc = meta_id(e, st, m->first, "span_id", 7, en->spanid);
    if (rc == 0)
        rc = meta_attrs(e, st, m->first, en->rattr, en->nrattr);
    if (rc == 0)
        rc = meta_attrs(e, st, m->first, en->sattr, en->nsattr);
    if (rc == 0 && en->scope.len > 0 && meta_free(e, st, m->first, sc, 10)) {
        v.p = en->scope.p;
        v.len = en->scope.len;
        piece_put(e, sc, 10, &v);
    }
    if (rc == 0)
        rc = value_text(&e->arena, &en->body, &m->line);
    m->n = e->npieces - m->first;
    m->core = false;
    if (rc == 0)
        cut_pieces(e, m);
    return rc;
}


static inline size_t ts_size(uint64_t ts)
{
    uint64_t sec = ts / 1000000000u, ns = ts % 1000000000u;
    return (sec ? 1 + lk_pb_varint_len(sec) : 0) + (ns ? 1 + lk_pb_varint_len(ns) : 0);
}

static inline size_t piece_size(const struct piece *p)
{
    return ld_size(p->name.len) + (p->v.len ? ld_size(p->v.len) : 0);
}

static size_t entry_size(const struct lk_loki_encoder *e,
                         const struct entry *en, const struct emeta *m)
{
    size_t n = ld_size(ts_size(en->ts));

    if (m->line.len > 0)
        n += ld_size(m->line.len);
    for (size_t i = m->first; i < m->first + m->n; i++)
        n += ld_size(piece_size(&e->pieces[i]));
    return n;
}

/* Protobuf writer straight into |out|'s memory: emit_proto reserves each
 * stream's exact size first (its sizes come from the gather pass), so the
 * writes need no bounds checks and nothing is staged or copied twice. */
struct pbw {
    uint8_t *p;
};

static inline void w_varint(struct pbw *w, uint64_t v)
{
    w->p += lk_pb_put_varint(w->p, v);
}

static inline void w_bytes(struct pbw *w, const uint8_t *p, size_t n)
{
    if (n > 0)
        memcpy(w->p, p, n);
    w->p += n;
}

/* Field |tag| (one byte), length-delimited, |n| bytes at |p|. */
static inline void w_ld(struct pbw *w, uint8_t tag, const uint8_t *p, size_t n)
{
    *w->p++ = tag;
    w_varint(w, n);
    w_bytes(w, p, n);
}

static void write_entry(struct lk_loki_encoder *e, struct pbw *w,
                        const struct entry *en, const struct emeta *m)
{
    uint64_t sec = en->ts / 1000000000u, ns = en->ts % 1000000000u;

    w_varint(w, 0x12); /* StreamAdapter.entries = 2 */
    w_varint(w, m->size);
    w_varint(w, 0x0a); /* EntryAdapter.timestamp = 1 */
    w_varint(w, ts_size(en->ts));
    if (sec) {
        w_varint(w, 0x08); /* Timestamp.seconds = 1 */
        w_varint(w, sec);
    }
    if (ns) {
        w_varint(w, 0x10); /* Timestamp.nanos = 2 */
        w_varint(w, ns);
    }
    if (m->line.len > 0) /* EntryAdapter.line = 2 */
        w_ld(w, 0x12, vref_ptr(&m->line, &e->arena), m->line.len);
    for (size_t i = m->first; i < m->first + m->n; i++) {
        const struct piece *p = &e->pieces[i];
        w_varint(w, 0x1a); /* EntryAdapter.structuredMetadata = 3 */
        w_varint(w, piece_size(p));
        w_ld(w, 0x0a, p->name.p, p->name.len); /* LabelPairAdapter.name */
        if (p->v.len > 0)                       /* LabelPairAdapter.value */
            w_ld(w, 0x12, vref_ptr(&p->v, &e->arena), p->v.len);
    }
}

/* The metadata of an entry with a core that its resource adds: pieces
 * appended to e->pieces. The core's own names (level, trace_id, span_id)
 * are never taken from the resource. Room was made by the caller. */
static void pre_resource_pieces(struct lk_loki_encoder *e, const struct stream *st,
                                const struct entry *en, size_t first)
{
    static const struct {
        const char *name;
        size_t len;
    } core_names[] = {{"level", 5}, {"trace_id", 8}, {"span_id", 7}};

    for (size_t i = en->sattr; i < en->sattr + en->nsattr; i++) {
        const struct attr *a = &e->attrs[i];
        struct span name = {attr_name(e, a), a->name_len};
        bool core = false;
        for (size_t k = 0; k < sizeof(core_names) / sizeof(core_names[0]); k++)
            core = core || key_is(name, core_names[k].name, core_names[k].len);
        if (a->flags != 0 || a->name_len == 0 || core ||
            !meta_free(e, st, first, name.p, name.len))
            continue;
        piece_put(e, name.p, name.len, &a->text);
    }
}

/* An entry with a core, exploded into its line and pieces (its core's
 * metadata, then its resource's) to be cut to the limits and written
 * like a walked record: the same bytes as the core when nothing is cut. */
static int gather_core(struct lk_loki_encoder *e, const struct stream *st,
                       const struct entry *en, struct emeta *m)
{
    struct span line;
    int rc;

    m->first = e->npieces;
    m->core = false;
    rc = core_read(e, en->pre, &line);
    if (rc == 0)
        ENSURE(rc, e->pieces, e->cap_pieces, e->npieces + en->nsattr);
    if (rc < 0)
        return rc;
    pre_resource_pieces(e, st, en, m->first);
    m->n = e->npieces - m->first;
    m->line.p = line.len ? line.p : empty_bytes;
    m->line.off = 0;
    m->line.len = line.len;
    cut_pieces(e, m);
    m->size = entry_size(e, en, m);
    return 0;
}

/* Whether an entry with a core whose resource adds |n| pairs of |bytes| may
 * go as it is: its core holds at most 3 pairs (level, trace_id, span_id),
 * of fewer bytes than the core itself, so no limit can be reached. */
static inline bool pre_fits(const struct lk_loki_encoder *e, const struct entry *en,
                            size_t n, uint64_t bytes)
{
    const struct lk_loki_encode_opts *o = e->o;
    return (o->md_max_entries == 0 || n + 3 <= o->md_max_entries) &&
           (o->md_max_bytes == 0 || bytes + en->pre.len <= o->md_max_bytes);
}

/* An entry with a core: only its resource's metadata is gathered, rendered
 * once per resource and stream as protobuf pairs into e->arena. An entry
 * that might pass a limit is exploded (gather_core). */
static int gather_pre(struct lk_loki_encoder *e, const struct stream *st,
                      const struct entry *en, struct emeta *m)
{
    unsigned cached = e->nrm < 4 ? e->nrm : 4;
    size_t first = e->npieces, n = 0;
    uint64_t bytes = 0;
    struct vref v;
    int rc;

    m->first = first;
    m->n = 0;
    m->core = true;
    for (unsigned i = 0; i < cached; i++) {
        if (e->rm_sattr[i] == en->sattr) {
            if (!pre_fits(e, en, e->rm_n[i], e->rm_bytes[i]))
                return gather_core(e, st, en, m);
            m->line = e->rm[i];
            m->size = en->pre.len + m->line.len;
            return 0;
        }
    }
    ENSURE(rc, e->pieces, e->cap_pieces, first + en->nsattr);
    if (rc < 0)
        return rc;
    pre_resource_pieces(e, st, en, first);
    v.p = NULL;
    v.off = e->arena.len;
    for (size_t i = first; i < e->npieces && rc == 0; i++) {
        const struct piece *p = &e->pieces[i];
        size_t ps = piece_size(p);
        n++;
        bytes += piece_bytes(p);
        rc = lk_buf_reserve(&e->arena, ld_size(ps));
        if (rc == 0) {
            struct pbw w = {e->arena.data + e->arena.len};
            w_varint(&w, 0x1a); /* EntryAdapter.structuredMetadata = 3 */
            w_varint(&w, ps);
            w_ld(&w, 0x0a, p->name.p, p->name.len);
            if (p->v.len > 0)
                w_ld(&w, 0x12, vref_ptr(&p->v, &e->arena), p->v.len);
            e->arena.len = (size_t)(w.p - e->arena.data);
        }
    }
    e->npieces = first;
    if (rc < 0)
        return rc;
    v.len = e->arena.len - v.off;
    e->rm_sattr[e->nrm % 4] = en->sattr;
    e->rm[e->nrm % 4] = v;
    e->rm_n[e->nrm % 4] = n;
    e->rm_bytes[e->nrm % 4] = bytes;
    e->nrm++;
    if (!pre_fits(e, en, n, bytes))
        return gather_core(e, st, en, m);
    m->line = v;
    m->size = en->pre.len + v.len;
    return 0;
}

/* An entry sent without structured metadata: its line, with level, trace_id
 * and span_id (those it has, and that are not labels of its stream) put into
 * it by lk_loki_line_with_fields. Both forms give the same line. */
static int gather_bare(struct lk_loki_encoder *e, const struct stream *st,
                       const struct entry *en, struct emeta *m)
{
    static const char *const names[3] = {"level", "trace_id", "span_id"};
    static const size_t nlens[3] = {5, 8, 7};
    struct vref vals[3], line;
    bool have[3] = {false, false, false};
    const char *un[3];
    const uint8_t *uv[3];
    size_t ul[3], nu = 0, need;
    bool changed;
    int rc = 0;

    m->first = e->npieces;
    m->n = 0;
    m->core = false;
    if (en->pre.len > 0) {
        struct span l;
        rc = core_read(e, en->pre, &l);
        if (rc < 0)
            return rc;
        for (size_t i = m->first; i < e->npieces; i++)
            for (size_t k = 0; k < 3; k++)
                if (!have[k] && key_is(e->pieces[i].name, names[k], nlens[k])) {
                    vals[k] = e->pieces[i].v;
                    have[k] = vals[k].len > 0;
                }
        e->npieces = m->first;
        line.p = l.len ? l.p : empty_bytes;
        line.off = 0;
        line.len = l.len;
    } else {
        const char *lvl = level_norm(en);
        rc = value_text(&e->arena, &en->body, &line);
        if (lvl != NULL) {
            vals[0] = vref_lit(lvl);
        } else {
            vals[0].p = en->sevtext.len ? en->sevtext.p : empty_bytes;
            vals[0].len = en->sevtext.len;
        }
        have[0] = vals[0].len > 0;
        for (size_t k = 1; k < 3 && rc == 0; k++) {
            struct span id = k == 1 ? en->trace : en->spanid;
            if (id.len == 0 || all_zero(id))
                continue;
            vals[k].p = NULL;
            vals[k].off = e->arena.len;
            rc = append_hex(&e->arena, id.p, id.len);
            vals[k].len = e->arena.len - vals[k].off;
            have[k] = true;
        }
        if (rc < 0)
            return rc;
    }
    need = line.len + 2;
    for (size_t k = 0; k < 3; k++) {
        if (!have[k] || !meta_free(e, st, m->first, (const uint8_t *)names[k], nlens[k]))
            continue;
        un[nu] = names[k];
        ul[nu] = vals[k].len;
        need += 6 * (nlens[k] + vals[k].len) + 8;
        vals[nu++] = vals[k];
    }
    m->line = line;
    if (nu == 0)
        return 0;
    /* Room first: the line and the values may be in the arena, which must
     * not move while they are read. */
    rc = lk_buf_reserve(&e->arena, need);
    if (rc < 0)
        return rc;
    for (size_t k = 0; k < nu; k++)
        uv[k] = vref_ptr(&vals[k], &e->arena);
    size_t off = e->arena.len;
    rc = lk_loki_line_with_fields(&e->arena, vref_ptr(&line, &e->arena), line.len, un,
                                  uv, ul, nu, &changed);
    if (rc < 0)
        return rc;
    if (changed) {
        m->line.p = NULL;
        m->line.off = off;
        m->line.len = e->arena.len - off;
    }
    return 0;
}

static void write_pre_entry(struct lk_loki_encoder *e, struct pbw *w,
                            const struct entry *en, const struct emeta *m)
{
    w_varint(w, 0x12); /* StreamAdapter.entries = 2 */
    w_varint(w, m->size);
    w_bytes(w, en->pre.p, en->pre.len);
    w_bytes(w, vref_ptr(&m->line, &e->arena), m->line.len);
}

static int emit_proto(struct lk_loki_encoder *e, lk_buf *out)
{
    struct pbw w;
    int rc;

    for (size_t s = 0; s < e->nstreams; s++) {
        const struct stream *st = &e->streams[s];
        const uint32_t *seg = e->order + st->start;
        size_t body = ld_size(st->lab_len);

        lk_buf_reset(&e->arena);
        e->npieces = 0;
        e->nrm = 0;
        ENSURE(rc, e->em, e->cap_em, st->count);
        if (rc < 0)
            return rc;
        for (size_t k = 0; k < st->count; k++) {
            const struct entry *en = &e->ents[seg[k]];
            if (e->o->no_metadata) {
                rc = gather_bare(e, st, en, &e->em[k]);
                e->em[k].size = entry_size(e, en, &e->em[k]);
            } else if (en->pre.len > 0) {
                rc = gather_pre(e, st, en, &e->em[k]);
            } else {
                rc = gather(e, st, en, &e->em[k]);
                e->em[k].size = entry_size(e, en, &e->em[k]);
            }
            if (rc < 0)
                return rc;
            body += ld_size(e->em[k].size);
        }
        /* One reservation per stream: no reallocation while writing, and
         * the cap is hit before anything of the stream is written. */
        rc = lk_buf_reserve(out, ld_size(body));
        if (rc < 0)
            return rc;
        w.p = out->data + out->len;
        w_varint(&w, 0x0a); /* PushRequest.streams = 1 */
        w_varint(&w, body);
        w_ld(&w, 0x0a, e->slab.data + st->lab_off, st->lab_len); /* labels */
        for (size_t k = 0; k < st->count; k++) {
            const struct entry *en = &e->ents[seg[k]];
            if (e->em[k].core)
                write_pre_entry(e, &w, en, &e->em[k]);
            else
                write_entry(e, &w, en, &e->em[k]);
        }
        /* The sizes were computed from the same pieces: a mismatch is a bug. */
        if ((size_t)(w.p - (out->data + out->len)) != ld_size(body))
            return LK_EPROTO;
        out->len = (size_t)(w.p - out->data);
    }
    return 0;
}

static int emit_json(struct lk_loki_encoder *e, lk_buf *out)
{
    char t[24];
    int rc = lk_buf_append_str(out, "{\"streams\":[");

    for (size_t s = 0; s < e->nstreams && rc == 0; s++) {
        const struct stream *st = &e->streams[s];
        const uint32_t *seg = e->order + st->start;
        struct emeta m;

        rc = lk_buf_append_str(out, s > 0 ? ",{\"stream\":{" : "{\"stream\":{");
        for (size_t i = 0; i < st->npairs && rc == 0; i++) {
            const struct spair *sp = &e->spairs[st->pair_first + i];
            if (i > 0)
                rc = lk_buf_append(out, ",", 1);
            if (rc == 0)
                rc = json_str(out, e->slab.data + sp->name_off, sp->name_len);
            if (rc == 0)
                rc = lk_buf_append(out, ":", 1);
            if (rc == 0)
                rc = json_str(out, e->slab.data + sp->val_off, sp->val_len);
        }
        if (rc == 0)
            rc = lk_buf_append_str(out, "},\"values\":[");
        for (size_t k = 0; k < st->count && rc == 0; k++) {
            const struct entry *en = &e->ents[seg[k]];
            lk_buf_reset(&e->arena);
            e->npieces = 0;
            rc = e->o->no_metadata ? gather_bare(e, st, en, &m) : gather(e, st, en, &m);
            if (rc == 0)
                rc = lk_buf_append(out, k > 0 ? ",[\"" : "[\"", k > 0 ? 3 : 2);
            if (rc == 0)
                rc = lk_buf_append(out, t, u64_dec(en->ts, t));
            if (rc == 0)
                rc = lk_buf_append(out, "\",", 2);
            if (rc == 0)
                rc = json_str(out, vref_ptr(&m.line, &e->arena), m.line.len);
            for (size_t i = 0; i < m.n && rc == 0; i++) {
                const struct piece *p = &e->pieces[m.first + i];
                rc = lk_buf_append(out, i > 0 ? "," : ",{", i > 0 ? 1 : 2);
                if (rc == 0)
                    rc = json_str(out, p->name.p, p->name.len);
                if (rc == 0)
                    rc = lk_buf_append(out, ":", 1);
                if (rc == 0)
                    rc = json_str(out, vref_ptr(&p->v, &e->arena), p->v.len);
            }
            if (rc == 0)
                rc = lk_buf_append(out, m.n > 0 ? "}]" : "]", m.n > 0 ? 2 : 1);
        }
        if (rc == 0)
            rc = lk_buf_append(out, "]}", 2);
    }
    if (rc == 0)
        rc = lk_buf_append(out, "]}", 2);
    return rc;
}

/* --- lines without structured metadata */

static inline bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Moves *|i| past a JSON string whose opening quote is at *|i|; false when
 * it does not end before |n|. */
static bool skip_json_string(const uint8_t *p, size_t n, size_t *i)
{
    for (size_t k = *i + 1; k < n; k++) {
        if (p[k] == '\\')
            k++;
        else if (p[k] == '"') {
            *i = k + 1;
            return true;
        }
    }
    return false;
}

/* Moves *|i| past one JSON value (not validated beyond its nesting and
 * strings); false when it runs past |n|. */
static bool skip_json_value(const uint8_t *p, size_t n, size_t *i)
{
    size_t k = *i;
    unsigned depth = 0;

    if (k >= n)
        return false;
    if (p[k] == '"')
        return skip_json_string(p, n, i);
    if (p[k] != '{' && p[k] != '[') {
        while (k < n && p[k] != ',' && p[k] != '}' && p[k] != ']' && !is_blank(p[k]))
            k++;
        if (k == *i)
            return false;
        *i = k;
        return true;
    }
    while (k < n) {
        if (p[k] == '"') {
            if (!skip_json_string(p, n, &k))
                return false;
            continue;
        }
        if (p[k] == '{' || p[k] == '[')
            depth++;
        else if ((p[k] == '}' || p[k] == ']') && --depth == 0) {
            *i = k + 1;
            return true;
        }
        k++;
    }
    return false;
}

/*
 * If |p| is a JSON object (blanks around it allowed), sets *close to the
 * offset of its closing brace and *nkeys, and marks in *has (bit i) each of
 * |names| that is a key of its top level. False for anything else.
 */
static bool json_object_keys(const uint8_t *p, size_t n, const char *const *names,
                             size_t nnames, size_t *close, size_t *nkeys, unsigned *has)
{
    size_t i = 0, end = n;

    while (i < end && is_blank(p[i]))
        i++;
    while (end > i && is_blank(p[end - 1]))
        end--;
    if (end - i < 2 || p[i] != '{' || p[end - 1] != '}')
        return false;
    *close = end - 1;
    *nkeys = 0;
    *has = 0;
    i++;
    for (;;) {
        while (i < *close && is_blank(p[i]))
            i++;
        if (i == *close)
            return *nkeys == 0; /* "{}", or a trailing comma */
        size_t ks = i;
        if (p[i] != '"' || !skip_json_string(p, *close, &i))
            return false;
        for (size_t k = 0; k < nnames; k++) {
            size_t kl = strlen(names[k]);
            if (i - ks - 2 == kl && memcmp(p + ks + 1, names[k], kl) == 0)
                *has |= 1u << k;
        }
        (*nkeys)++;
        while (i < *close && is_blank(p[i]))
            i++;
        if (i >= *close || p[i] != ':')
            return false;
        i++;
        while (i < *close && is_blank(p[i]))
            i++;
        if (!skip_json_value(p, *close, &i))
            return false;
        while (i < *close && is_blank(p[i]))
            i++;
        if (i == *close)
            return true;
        if (p[i] != ',')
            return false;
        i++;
    }
}

/* Marks in *has (bit i) each of |names| that the line has as a `name=`
 * token (logfmt: tokens split by blanks, double-quoted values skipped). */
static void logfmt_keys(const uint8_t *p, size_t n, const char *const *names,
                        size_t nnames, unsigned *has)
{
    size_t i = 0;

    *has = 0;
    while (i < n) {
        while (i < n && is_blank(p[i]))
            i++;
        size_t ks = i;
        while (i < n && !is_blank(p[i]) && p[i] != '=' && p[i] != '"')
            i++;
        if (i < n && p[i] == '=' && i > ks) {
            for (size_t k = 0; k < nnames; k++) {
                size_t kl = strlen(names[k]);
                if (i - ks == kl && memcmp(p + ks, names[k], kl) == 0)
                    *has |= 1u << k;
            }
            i++;
        }
        /* The rest of the token, a quoted part as one piece. */
        while (i < n && !is_blank(p[i])) {
            if (p[i] == '"') {
                size_t q = i;
                if (!skip_json_string(p, n, &q))
                    return;
                i = q;
            } else {
                i++;
            }
        }
    }
}

static bool logfmt_needs_quotes(const uint8_t *v, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (v[i] <= ' ' || v[i] == '=' || v[i] == '"' || v[i] == 0x7f)
            return true;
    return false;
}

static int logfmt_value(lk_buf *b, const uint8_t *v, size_t n)
{
    size_t run = 0;
    int rc;

    if (!logfmt_needs_quotes(v, n))
        return lk_buf_append(b, v, n);
    rc = lk_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *esc = v[i] == '"' ? "\\\"" : v[i] == '\\' ? "\\\\"
                          : v[i] == '\n' ? "\\n" : NULL;
        if (esc == NULL)
            continue;
        append_ok(b, v + run, i - run, &rc);
        append_ok(b, (const uint8_t *)esc, 2, &rc);
        run = i + 1;
    }
    append_ok(b, v + run, n - run, &rc);
    return rc < 0 ? rc : lk_buf_append(b, "\"", 1);
}

int lk_loki_line_with_fields(lk_buf *out, const uint8_t *line, size_t len,
                             const char *const *names, const uint8_t *const *values,
                             const size_t *vlens, size_t n, bool *changed)
{
    size_t close = 0, nkeys = 0, start;
    unsigned has = 0;
    bool json;
    int rc = 0;

    *changed = false;
    if (n == 0 || n > 8)
        return n == 0 ? 0 : LK_EINVAL;
    if (len == 0)
        line = empty_bytes;
    json = json_object_keys(line, len, names, n, &close, &nkeys, &has);
    if (!json)
        logfmt_keys(line, len, names, n, &has);
    if (has == (1u << n) - 1)
        return 0;
    *changed = true;
    start = out->len;
    append_ok(out, line, json ? close : len, &rc);
    for (size_t k = 0; k < n && rc == 0; k++) {
        if (has & (1u << k))
            continue;
        if (json) {
            if (nkeys++ > 0)
                rc = lk_buf_append(out, ",", 1);
            if (rc == 0)
                rc = json_str(out, (const uint8_t *)names[k], strlen(names[k]));
            if (rc == 0)
                rc = lk_buf_append(out, ":", 1);
            if (rc == 0)
                rc = json_str(out, vlens[k] ? values[k] : empty_bytes, vlens[k]);
        } else {
            if (out->len > start)
                rc = lk_buf_append(out, " ", 1);
            append_ok(out, (const uint8_t *)names[k], strlen(names[k]), &rc);
            append_ok(out, (const uint8_t *)"=", 1, &rc);
            if (rc == 0)
                rc = logfmt_value(out, vlens[k] ? values[k] : empty_bytes, vlens[k]);
        }
    }
    if (json)
        append_ok(out, line + close, len - close, &rc);
    return rc;
}

/* --- entry point */

/* Digests the configured label names into e->cfg. */
static int prepare_labels(struct lk_loki_encoder *e,
                          const struct lk_loki_encode_opts *o)
{
    int rc;

    ENSURE(rc, e->cfg, e->cap_cfg, o->nlabels);
    if (rc == 0)
        ENSURE(rc, e->res_lab, e->cap_res_lab, o->nlabels);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < o->nlabels; i++) {
        struct cfg_label *c = &e->cfg[i];
        const char *n = o->labels[i] != NULL ? o->labels[i] : "";
        c->name = (const uint8_t *)n;
        c->len = strlen(n);
        c->level = strcmp(n, "level") == 0;
        c->def = strcmp(n, "service_name") == 0 ? "unknown_service"
                 : strcmp(n, "host") == 0       ? o->host
                 : strcmp(n, "source") == 0     ? "otlp"
                                                : NULL;
        if (c->def != NULL && c->def[0] == '\0')
            c->def = NULL;
    }
    return 0;
}

/* Renders the text of every attribute value once (a resource's attributes
 * are metadata of each of its records), then pins each text to a pointer:
 * e->texts does not move again during this call. */
static int render_attr_texts(struct lk_loki_encoder *e)
{
    lk_buf_reset(&e->texts);
    for (size_t i = 0; i < e->nattrs; i++) {
        struct attr *a = &e->attrs[i];
        if (a->flags != 0 || a->name_len == 0) {
            a->text.p = empty_bytes;
            a->text.len = 0;
            continue;
        }
        int rc = value_text(&e->texts, &a->v, &a->text);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < e->nattrs; i++) {
        struct vref *t = &e->attrs[i].text;
        if (t->p == NULL)
            t->p = t->len == 0 ? empty_bytes : e->texts.data + t->off;
    }
    return 0;
}

int lk_loki_encode(struct lk_loki_encoder *e,
                   const struct lk_loki_encode_opts *o,
                   const struct iovec *iov, size_t n, lk_buf *out,
                   uint64_t *records, uint64_t *streams)
{
    return lk_loki_encode_forms(e, o, iov, NULL, n, out, records, streams);
}

int lk_loki_encode_forms(struct lk_loki_encoder *e,
                         const struct lk_loki_encode_opts *o,
                         const struct iovec *iov, const uint8_t *forms, size_t n,
                         lk_buf *out, uint64_t *records, uint64_t *streams)
{
    bool as_is;
    int rc;

    *records = 0;
    *streams = 0;
    e->o = o;
    e->cut_entries = 0;
    e->cut_size = 0;
    e->nents = 0;
    e->nattrs = 0;
    e->nstreams = 0;
    e->nspairs = 0;
    lk_buf_reset(&e->names);
    lk_buf_reset(&e->slab);
    if (e->nslots > 0)
        memset(e->slots, 0, e->nslots * sizeof(*e->slots));
    if (o->nlabels > 0 && o->labels == NULL)
        return LK_EINVAL;
    rc = prepare_labels(e, o);
    if (rc < 0)
        return rc;
    e->last_res.p = NULL;
    as_is = lk_loki_takes_entries(o);
    lk_buf_reset(&e->conv);
    if (forms != NULL && !as_is) {
        /* Converted first, all of them: e->conv must not move under the
         * spans the walk keeps. */
        ENSURE(rc, e->conv_at, e->cap_conv_at, 2 * n);
        for (size_t i = 0; i < n && rc == 0; i++) {
            e->conv_at[2 * i] = e->conv.len;
            if (forms[i] == LK_FORM_LOKI_ENTRIES && iov[i].iov_len > 0) {
                struct span s = {iov[i].iov_base, iov[i].iov_len};
                rc = s.p == NULL ? LK_EINVAL
                                 : lk_loki_entries_to_otlp(s.p, s.len, &e->conv, &e->tmp);
            }
            e->conv_at[2 * i + 1] = e->conv.len;
        }
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < n; i++) {
        struct span s = {iov[i].iov_base, iov[i].iov_len};
        bool entries = forms != NULL && forms[i] == LK_FORM_LOKI_ENTRIES;
        if (s.len == 0)
            continue;
        if (s.p == NULL)
            return LK_EINVAL;
        if (entries && !as_is) {
            s.p = e->conv.data + e->conv_at[2 * i];
            s.len = e->conv_at[2 * i + 1] - e->conv_at[2 * i];
        }
        rc = entries && as_is ? walk_entries(e, o, s) : walk_request(e, o, s);
        if (rc < 0)
            return rc;
    }
    rc = order_entries(e);
    if (rc == 0)
        rc = render_attr_texts(e);
    if (rc < 0)
        return rc;
    rc = o->format == LK_LOKI_JSON ? emit_json(e, out) : emit_proto(e, out);
    if (rc < 0)
        return rc;
    *records = e->nents;
    *streams = e->nstreams;
    return 0;
}
