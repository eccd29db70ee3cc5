/*
 * Salvage of OTLP requests with bad items: a walk over the top three levels
 * of the wire format (request, resource entries, scope entries) that judges
 * each part with lk_otlp_validate and copies the good ones to the output.
 *
 * Why not unpack with protobuf-c and re-pack: protobuf-c recurses once per
 * nested message with no limit, so a request that failed validation for its
 * nesting depth (a few MB of nested AnyValue arrays) overflows the stack; and
 * it mis-merges a KeyValue.value given twice (see otlp_schema.h). Here nothing
 * is parsed below the level of a unit except by the validator, whose depth is
 * bounded, and a rejected unit's bytes are never looked into again.
 */
#include "core/text.h"
#include "receivers/otlp_salvage.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/pbwire.h"
#include "receivers/otlp_schema.h"
#include "receivers/otlp_validate.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* The levels of a request, and of the part being judged. */
enum { LVL_REQUEST, LVL_RESOURCE, LVL_SCOPE, LVL_UNIT };

/* Field numbers of the shape the three requests share: Export<Signal>
 * ServiceRequest.resource_<signal> = 1, Resource<Signal>.scope_<signal> = 2,
 * Scope<Signal>.spans | metrics | log_records = 2. Index: the level that
 * holds the field. */
static const uint32_t child_num[LVL_UNIT] = {1, 2, 2};

/* The wrapper around a unit: three tags and length prefixes of at most 5
 * bytes each. */
#define WRAP_MAX (3 * 6)
/* Room for the validator's reasons: paths are cut to 12 steps. */
#define REASON_LEN 512
/* While an entry is written its length prefix takes 5 bytes; it shrinks to
 * its minimal size when the entry is done. Two entries (a resource and one of
 * its scopes) are open at a time, 4 bytes over their input size at most. */
#define OUT_SLACK 16

enum verdict { GOOD, BAD_VALUE, BROKEN };

struct field {
    uint32_t num;
    unsigned wt;
    const uint8_t *start; /* the tag */
    const uint8_t *val;   /* length-delimited: the payload */
    size_t len;           /* length-delimited: the payload's length */
    const uint8_t *end;   /* one past the field */
};

struct salvage {
    enum lk_signal sig;
    const uint8_t *base;                 /* the request, for offsets */
    const struct lk_pb_msg *msg[4];      /* message of each level */
    const char *name[LVL_UNIT];          /* field holding each level below */
    bool unit_is_item;                   /* spans, log records: yes */
    size_t at[LVL_UNIT];                 /* index of the current resource, scope, unit */
    uint8_t *tmp;                        /* WRAP_MAX + the part being judged */
    uint8_t *out;                        /* the output being written */
    size_t outlen;
    struct lk_otlp_salvage_result *res;
    char *why;
    size_t whylen;
    bool noted;                          /* |why| holds the first rejection */
    char reason[REASON_LEN];             /* the validator's last reason */
};

/* --- wire */

static const uint8_t *get_varint(const uint8_t *p, const uint8_t *end,
                                 unsigned max, uint64_t *v)
{
    uint64_t x = 0;

    for (unsigned i = 0; i < max && i < (size_t)(end - p); i++) {
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (p[i] < 0x80) {
            *v = x;
            return p + i + 1;
        }
    }
    return NULL;
}

/* Reads the field at |*pp|, bounded by |end|, and moves |*pp| past it.
 * Returns 1, 0 at |end|, or -1 when the bytes there are not one whole field
 * (tag and length prefixes of at most 5 bytes, as the validator wants; the
 * rest of its checks are its own). */
static int next_field(const uint8_t **pp, const uint8_t *end, struct field *f)
{
    const uint8_t *p = *pp;
    uint64_t key, v;

    if (p >= end)
        return 0;
    f->start = p;
    p = get_varint(p, end, 5, &key);
    if (p == NULL || (key >> 3) == 0 || (key >> 3) > 0x1fffffffu)
        return -1;
    f->num = (uint32_t)(key >> 3);
    f->wt = (unsigned)(key & 7);
    f->val = p;
    f->len = 0;
    switch (f->wt) {
    case WT_VARINT:
        p = get_varint(p, end, 10, &v);
        break;
    case WT_I64:
        p = end - p >= 8 ? p + 8 : NULL;
        break;
    case WT_I32:
        p = end - p >= 4 ? p + 4 : NULL;
        break;
    case WT_LEN:
        p = get_varint(p, end, 5, &v);
        if (p != NULL && v > (uint64_t)(end - p))
            p = NULL;
        if (p != NULL) {
            f->val = p;
            f->len = (size_t)v;
            p += v;
        }
        break;
    default:
        p = NULL;
        break;
    }
    if (p == NULL)
        return -1;
    f->end = p;
    *pp = p;
    return 1;
}

/* A resource entry in the request, a scope entry in a resource, a unit in a
 * scope. */
static bool is_child(const struct field *f, int level)
{
    return f->num == child_num[level] && f->wt == WT_LEN;
}

/* Items in the |n| bytes of a message |m| at |p|: the elements of fields
 * marked LK_PBF_COUNT_ITEM, looked for |depth| levels down. Framing that
 * breaks ends the count (the bytes are dropped, not forwarded). */
static uint64_t count_items(const struct lk_pb_msg *m, const uint8_t *p,
                            size_t n, int depth)
{
    const uint8_t *end = p + n;
    struct field f;
    uint64_t c = 0;

    while (next_field(&p, end, &f) > 0) {
        const struct lk_pb_field *fd;
        if (f.wt != WT_LEN || f.num >= m->nfields)
            continue;
        fd = &m->fields[f.num];
        if (fd->kind != LK_PBK_MESSAGE)
            continue;
        if (fd->flags & LK_PBF_COUNT_ITEM)
            c++;
        else if (depth > 0)
            c += count_items(fd->child, f.val, f.len, depth - 1);
    }
    return c;
}

/* Items of the unit in |f|: 1 for a span or log record, the data points of a
 * Metric (in its gauge, sum, histogram, ... one level down). */
static uint64_t unit_items(const struct salvage *s, const struct field *f)
{
    if (s->unit_is_item)
        return 1;
    return count_items(s->msg[LVL_UNIT], f->val, f->len, 1);
}

/* Counts as rejected everything under the entry |f| at |level| (a resource
 * or scope entry). */
static void reject_all(struct salvage *s, int level, const struct field *fe)
{
    const uint8_t *p = fe->val, *end = fe->val + fe->len;
    struct field f;

    s->res->dropped = true;
    while (next_field(&p, end, &f) > 0) {
        if (!is_child(&f, level))
            continue;
        if (level == LVL_SCOPE)
            s->res->rejected += unit_items(s, &f);
        else
            reject_all(s, level + 1, &f);
    }
}

/* --- reasons */

/* The path of the current part at |level|, e.g. "resource_spans[2]
 * .scope_spans[0]", with |idx| (NULL: all zero, as in a wrapper). */
static void put_path(struct lk_text *o, const struct salvage *s, int level,
                     const size_t *idx)
{
    for (int l = 0; l < level; l++)
        lk_text_put(o, "%s%s[%zu]", l > 0 ? "." : "", s->name[l], idx ? idx[l] : 0);
}

/* Writes s->reason, the validator's reason for a part at |level| judged in
 * its wrapper, to |why| with the wrapper's indices (all 0) replaced by the
 * part's own. */
static void write_reason(struct salvage *s, int level)
{
    char wrapped[160];
    struct lk_text w = {wrapped, sizeof(wrapped), 0};
    struct lk_text o = {s->why, s->whylen, 0};
    size_t k;

    if (s->whylen == 0)
        return;
    s->why[0] = '\0';
    put_path(&w, s, level, NULL);
    k = w.len;
    if (k > 0 && strncmp(s->reason, wrapped, k) == 0 &&
        (s->reason[k] == '.' || s->reason[k] == ':')) {
        put_path(&o, s, level, s->at);
        lk_text_put(&o, "%s", s->reason + k);
    } else {
        lk_text_put(&o, "%s", s->reason);
    }
}

/* A problem that belongs to a field value, so to the part that holds it:
 * invalid UTF-8, or an id of the wrong length. The validator has no code of
 * its own for the latter; it reports it as "<path>: length N, want 16 or 0"
 * (or 8), and every other LK_EPROTO as the wire structure. Reading its text
 * can only err towards refusing the whole request, as before. */
static bool is_value_problem(int rc, const char *reason)
{
    static const char *const id_tails[] = {", want 16 or 0", ", want 8 or 0"};
    size_t n = strlen(reason);

    if (rc == LK_EUTF8)
        return true;
    if (rc != LK_EPROTO || strstr(reason, ": length ") == NULL)
        return false;
    for (size_t i = 0; i < sizeof(id_tails) / sizeof(id_tails[0]); i++) {
        size_t t = strlen(id_tails[i]);
        if (n >= t && strcmp(reason + n - t, id_tails[i]) == 0)
            return true;
    }
    return false;
}

/* Records the first rejection's reason. */
static void note_rejected(struct salvage *s, int level)
{
    s->res->dropped = true;
    if (s->noted)
        return;
    s->noted = true;
    write_reason(s, level);
}

/* The request is malformed: the reason replaces any rejection noted. */
static int broken(struct salvage *s, int level)
{
    write_reason(s, level);
    return LK_EPROTO;
}

/* Framing of the part at |level| broke at |p|. */
static int broken_framing(struct salvage *s, int level, const uint8_t *p)
{
    struct lk_text o = {s->why, s->whylen, 0};

    if (s->whylen == 0)
        return LK_EPROTO;
    s->why[0] = '\0';
    if (level == LVL_REQUEST)
        lk_text_put(&o, "%s", s->msg[0]->name);
    put_path(&o, s, level, s->at);
    lk_text_put(&o, ": malformed field at byte %zu", (size_t)(p - s->base));
    return LK_EPROTO;
}

/* --- judging */

/* Validates the |plen| bytes at s->tmp + WRAP_MAX as a part at |level| of
 * a request: wrapped in a minimal request (one resource entry, one scope
 * entry) as far as the level needs. */
static enum verdict judge(struct salvage *s, int level, size_t plen)
{
    uint8_t *h = s->tmp + WRAP_MAX;
    size_t len = plen;
    struct lk_otlp_counts counts;
    int rc;

    for (int l = level - 1; l >= 0; l--) {
        uint8_t v[10];
        size_t k = lk_pb_put_varint(v, len);
        h -= k;
        memcpy(h, v, k);
        *--h = (uint8_t)(child_num[l] << 3 | WT_LEN);
        len += 1 + k;
    }
    rc = lk_otlp_validate(s->sig, h, len, &counts, s->reason,
                          sizeof(s->reason));
    if (rc == 0)
        return GOOD;
    return is_value_problem(rc, s->reason) ? BAD_VALUE : BROKEN;
}

static void emit(struct salvage *s, const uint8_t *p, size_t n)
{
    memcpy(s->out + s->outlen, p, n);
    s->outlen += n;
}

/* Judges the unit in |f|; copies it as it is when good. Returns 1 when kept,
 * 0 when rejected, LK_EPROTO. */
static int salvage_unit(struct salvage *s, const struct field *f)
{
    memcpy(s->tmp + WRAP_MAX, f->val, f->len);
    switch (judge(s, LVL_UNIT, f->len)) {
    case GOOD:
        emit(s, f->start, (size_t)(f->end - f->start));
        return 1;
    case BAD_VALUE:
        note_rejected(s, LVL_UNIT);
        s->res->rejected += unit_items(s, f);
        return 0;
    default:
        return broken(s, LVL_UNIT);
    }
}

/*
 * The resource or scope entry in |fe| at |level|: judges its own fields (all
 * but its children) and writes it with the children that are kept. An entry
 * whose children were all rejected is left out, as is one whose own fields
 * are bad, with everything under it. Returns 1 when written, 0 when left
 * out, LK_EPROTO.
 */
static int salvage_entry(struct salvage *s, int level, const struct field *fe)
{
    const uint8_t *p = fe->val, *end = fe->val + fe->len;
    size_t mark = s->outlen, lenpos, body, plen = 0, k;
    uint64_t children = 0, kept = 0;
    struct field f;
    uint8_t v[10];
    int r;

    /* The entry without its children, judged on its own. */
    while ((r = next_field(&p, end, &f)) > 0) {
        if (is_child(&f, level))
            continue;
        memcpy(s->tmp + WRAP_MAX + plen, f.start, (size_t)(f.end - f.start));
        plen += (size_t)(f.end - f.start);
    }
    if (r < 0)
        return broken_framing(s, level, p);
    switch (judge(s, level, plen)) {
    case GOOD:
        break;
    case BAD_VALUE:
        note_rejected(s, level);
        reject_all(s, level, fe);
        return 0;
    default:
        return broken(s, level);
    }

    s->out[s->outlen++] = (uint8_t)(child_num[level - 1] << 3 | WT_LEN);
    lenpos = s->outlen;
    s->outlen += 5;
    s->at[level] = 0;
    for (p = fe->val; next_field(&p, end, &f) > 0;) {
        if (!is_child(&f, level)) {
            emit(s, f.start, (size_t)(f.end - f.start));
            continue;
        }
        children++;
        r = level == LVL_SCOPE ? salvage_unit(s, &f)
                               : salvage_entry(s, level + 1, &f);
        if (r < 0)
            return r;
        kept += (uint64_t)r;
        s->at[level]++;
    }
    if (children > 0 && kept == 0) {
        s->outlen = mark;
        return 0;
    }
    body = s->outlen - (lenpos + 5);
    k = lk_pb_put_varint(v, body);
    memcpy(s->out + lenpos, v, k);
    memmove(s->out + lenpos + k, s->out + lenpos + 5, body);
    s->outlen = lenpos + k + body;
    return 1;
}

static int salvage_request(struct salvage *s, const uint8_t *p, size_t n)
{
    const uint8_t *q = p, *end = p + n;
    size_t plen = 0;
    struct field f;
    int r;

    /* Fields of the request itself: no schema field but the resources, so
     * anything wrong here is structure. */
    while ((r = next_field(&q, end, &f)) > 0) {
        if (is_child(&f, LVL_REQUEST))
            continue;
        memcpy(s->tmp + WRAP_MAX + plen, f.start, (size_t)(f.end - f.start));
        plen += (size_t)(f.end - f.start);
    }
    if (r < 0)
        return broken_framing(s, LVL_REQUEST, q);
    if (plen > 0 && judge(s, LVL_REQUEST, plen) != GOOD)
        return broken(s, LVL_REQUEST);

    s->at[LVL_REQUEST] = 0;
    for (q = p; next_field(&q, end, &f) > 0;) {
        if (!is_child(&f, LVL_REQUEST)) {
            emit(s, f.start, (size_t)(f.end - f.start));
            continue;
        }
        r = salvage_entry(s, LVL_RESOURCE, &f);
        if (r < 0)
            return r;
        s->at[LVL_REQUEST]++;
    }
    return 0;
}

/* Fills the levels of |s| from the schema of |sig|; false if the schema
 * does not have the shape this file relies on. */
static bool shape_of(struct salvage *s, enum lk_signal sig)
{
    const struct lk_pb_msg *m = lk_otlp_schema_request(sig);

    if (m == NULL)
        return false;
    s->msg[LVL_REQUEST] = m;
    for (int l = LVL_REQUEST; l < LVL_UNIT; l++) {
        const struct lk_pb_field *f;
        if (child_num[l] >= s->msg[l]->nfields)
            return false;
        f = &s->msg[l]->fields[child_num[l]];
        if (f->kind != LK_PBK_MESSAGE || !(f->flags & LK_PBF_REPEATED) ||
            f->child == NULL)
            return false;
        s->msg[l + 1] = f->child;
        s->name[l] = f->name;
        if (l == LVL_SCOPE)
            s->unit_is_item = (f->flags & LK_PBF_COUNT_ITEM) != 0;
    }
    return true;
}

int lk_otlp_salvage(enum lk_signal sig, const uint8_t *p, size_t n, lk_buf *out,
                    struct lk_otlp_salvage_result *res, char *why,
                    size_t whylen)
{
    struct salvage *s;
    struct lk_otlp_counts counts;
    int rc;

    if (why == NULL)
        whylen = 0;
    if (whylen > 0)
        why[0] = '\0';
    memset(res, 0, sizeof(*res));
    if (out == NULL || (p == NULL && n > 0) ||
        lk_otlp_schema_request(sig) == NULL)
        return LK_EINVAL;

    /* Held off the stack: the reason buffer and the validator's own frames
     * would make one deep frame. */
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return LK_ENOMEM;
    s->sig = sig;
    s->base = p;
    s->res = res;
    s->why = why;
    s->whylen = whylen;
    if (!shape_of(s, sig)) {
        rc = LK_EINVAL;
        goto out_free_state;
    }

    /* Cheap exits: a valid request, or one whose first problem is not a
     * field value, which no dropping can mend. */
    rc = lk_otlp_validate(sig, p, n, &counts, s->reason, sizeof(s->reason));
    if (rc == 0) {
        rc = lk_buf_append(out, p, n);
        if (rc == 0)
            res->accepted = counts.items;
        goto out_free_state;
    }
    if (!is_value_problem(rc, s->reason)) {
        if (whylen > 0)
            snprintf(why, whylen, "%s", s->reason);
        goto out_free_state; /* LK_EPROTO */
    }

    s->tmp = malloc(WRAP_MAX + n);
    if (s->tmp == NULL) {
        rc = LK_ENOMEM;
        goto out_free_state;
    }
    s->out = malloc(n + OUT_SLACK);
    if (s->out == NULL) {
        rc = LK_ENOMEM;
        goto out_free_tmp;
    }
    rc = salvage_request(s, p, n);
    if (rc < 0)
        goto out_failed;

    /* Every part was judged in place, so the whole must pass too: this only
     * fails on a bug here, and then nothing half-checked goes out. */
    rc = lk_otlp_validate(sig, s->out, s->outlen, &counts, s->reason,
                          sizeof(s->reason));
    if (rc < 0) {
        if (whylen > 0)
            snprintf(why, whylen, "salvaged request does not validate: %s",
                     s->reason);
        rc = LK_EPROTO;
        goto out_failed;
    }
    rc = lk_buf_append(out, s->out, s->outlen);
    if (rc < 0)
        goto out_failed;
    res->accepted = counts.items;
    goto out_free_out;

out_failed:
    res->accepted = 0;
    res->rejected = 0;
    res->dropped = false;
out_free_out:
    free(s->out);
out_free_tmp:
    free(s->tmp);
out_free_state:
    free(s);
    return rc;
}
