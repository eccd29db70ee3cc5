/* A tiny protobuf encoder for unit tests that need precise (mal)formed
 * OTLP bytes. Header-only (static inline), Check assertions on misuse. */
#ifndef LK_TEST_PB_ENC_H
#define LK_TEST_PB_ENC_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_I32 = 5 };

struct enc {
    uint8_t *buf;
    size_t len, cap;
    size_t open[128]; /* offsets of the bodies of unfinished messages */
    int nopen;
};

static inline void e_init(struct enc *e)
{
    memset(e, 0, sizeof(*e));
}

static inline void e_fini(struct enc *e)
{
    free(e->buf);
    memset(e, 0, sizeof(*e));
}

static inline void e_raw(struct enc *e, const void *p, size_t n)
{
    if (e->len + n > e->cap) {
        e->cap = (e->len + n) * 2 + 64;
        e->buf = realloc(e->buf, e->cap);
        ck_assert_ptr_nonnull(e->buf);
    }
    if (n > 0)
        memcpy(e->buf + e->len, p, n);
    e->len += n;
}

static inline size_t varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static inline void e_varint(struct enc *e, uint64_t v)
{
    uint8_t b[10];
    e_raw(e, b, varint_put(b, v));
}

static inline void e_tag(struct enc *e, uint32_t num, unsigned wt)
{
    e_varint(e, ((uint64_t)num << 3) | wt);
}

static inline void e_uint(struct enc *e, uint32_t num, uint64_t v)
{
    e_tag(e, num, WT_VARINT);
    e_varint(e, v);
}

static inline void e_fixed64(struct enc *e, uint32_t num, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    e_tag(e, num, WT_I64);
    e_raw(e, b, 8);
}

static inline void e_fixed32(struct enc *e, uint32_t num, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    e_tag(e, num, WT_I32);
    e_raw(e, b, 4);
}

static inline void e_bytes(struct enc *e, uint32_t num, const void *p, size_t n)
{
    e_tag(e, num, WT_LEN);
    e_varint(e, n);
    e_raw(e, p, n);
}

static inline void e_str(struct enc *e, uint32_t num, const char *s)
{
    e_bytes(e, num, s, strlen(s));
}

/* Starts a sub-message in field |num|; e_end() writes its length. */
static inline void e_begin(struct enc *e, uint32_t num)
{
    e_tag(e, num, WT_LEN);
    ck_assert_int_lt(e->nopen, 128);
    e->open[e->nopen++] = e->len;
}

static inline void e_end(struct enc *e)
{
    uint8_t b[10];
    size_t start, body, k;

    ck_assert_int_gt(e->nopen, 0);
    start = e->open[--e->nopen];
    body = e->len - start;
    k = varint_put(b, body);
    e_raw(e, b, k); /* grow by k, then shift the body right */
    memmove(e->buf + start + k, e->buf + start, body);
    memcpy(e->buf + start, b, k);
}

static inline void e_end_n(struct enc *e, int n)
{
    while (n-- > 0)
        e_end(e);
}

/* KeyValue {key, value: AnyValue {string_value}} in field |num|. */
static inline void e_kv_str(struct enc *e, uint32_t num, const char *k, const char *v)
{
    e_begin(e, num);
    e_str(e, 1, k);
    e_begin(e, 2);
    e_str(e, 1, v);
    e_end(e);
    e_end(e);
}

#endif
