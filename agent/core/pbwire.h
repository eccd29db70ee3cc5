/* Protobuf wire-format writing shared by every module that encodes protobuf
 * by hand (responses, rewritten requests, lines as OTLP, Loki pushes). Header
 * only: these sit on hot paths. */
#ifndef LK_CORE_PBWIRE_H
#define LK_CORE_PBWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum { LK_PB_VARINT = 0, LK_PB_I64 = 1, LK_PB_LEN = 2, LK_PB_I32 = 5 };

/* Bytes the varint of |v| takes (1..10). */
static inline size_t lk_pb_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Writes the varint of |v| at |p| (room for 10 bytes); returns its length. */
static inline size_t lk_pb_put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Appends the varint of |v| to |b|. 0, LK_E2BIG or LK_ENOMEM. */
static inline int lk_pb_append_varint(lk_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    return lk_buf_append(b, tmp, lk_pb_put_varint(tmp, v));
}

/* Appends field |field| as a length-delimited field holding |n| bytes. */
static inline int lk_pb_append_len_field(lk_buf *b, uint32_t field, const void *data,
                                         size_t n)
{
    uint8_t hdr[20];
    size_t h = lk_pb_put_varint(hdr, (uint64_t)field << 3 | LK_PB_LEN);
    h += lk_pb_put_varint(hdr + h, n);
    int rc = lk_buf_append(b, hdr, h);
    return rc < 0 || n == 0 ? rc : lk_buf_append(b, data, n);
}

#endif
