#include "pipeline/loki_entries.h"

#include <string.h>

#include "core/err.h"
#include "core/pbwire.h"

/* ---- writing */

static size_t ld(size_t n)
{
    return 1 + lk_pb_varint_len(n) + n;
}

static uint8_t *put_ld(uint8_t *p, uint8_t tag, const void *data, size_t n)
{
    *p++ = tag;
    p += lk_pb_put_varint(p, n);
    if (n > 0)
        memcpy(p, data, n);
    return p + n;
}

static size_t pair_size(size_t nlen, size_t vlen)
{
    return ld(ld(nlen) + ld(vlen));
}

static uint8_t *put_pair(uint8_t *p, const char *name, size_t nlen, const char *val,
                         size_t vlen)
{
    *p++ = 3 << 3 | LK_PB_LEN; /* EntryAdapter.structuredMetadata */
    p += lk_pb_put_varint(p, ld(nlen) + ld(vlen));
    p = put_ld(p, 1 << 3 | LK_PB_LEN, name, nlen);
    return put_ld(p, 2 << 3 | LK_PB_LEN, val, vlen);
}

/* A metadata pair whose name and value sizes are fixed (an id as lowercase
 * hex): its header bytes are constant, the hex is written in place. */
static uint8_t *put_id_pair(uint8_t *p, const char *name, uint8_t nlen, const uint8_t *id,
                            uint8_t idlen)
{
    static const char digits[] = "0123456789abcdef";
    *p++ = 3 << 3 | LK_PB_LEN;             /* EntryAdapter.structuredMetadata */
    *p++ = (uint8_t)(4 + nlen + 2 * idlen); /* < 128: one varint byte */
    *p++ = 1 << 3 | LK_PB_LEN;
    *p++ = nlen;
    memcpy(p, name, nlen);
    p += nlen;
    *p++ = 2 << 3 | LK_PB_LEN;
    *p++ = (uint8_t)(2 * idlen);
    for (unsigned i = 0; i < idlen; i++) {
        *p++ = (uint8_t)digits[id[i] >> 4];
        *p++ = (uint8_t)digits[id[i] & 15];
    }
    return p;
}

int lk_loki_entry_append(lk_buf *out, const struct lk_loki_entry_fields *f)
{
    uint64_t sec = f->ts / 1000000000u, ns = f->ts % 1000000000u;
    size_t tsz = (sec ? 1 + lk_pb_varint_len(sec) : 0) + (ns ? 1 + lk_pb_varint_len(ns) : 0);
    size_t core = ld(tsz) + (f->line_len ? ld(f->line_len) : 0);

    if (f->level_len > 0)
        core += pair_size(5, f->level_len);
    if (f->trace_id != NULL)
        core += pair_size(8, 32);
    if (f->span_id != NULL)
        core += pair_size(7, 16);
    int rc = lk_buf_reserve(out, LK_LOKI_ENTRY_HEAD + 10 + core);
    if (rc < 0)
        return rc;
    uint8_t *p = out->data + out->len;
    for (unsigned i = 0; i < 8; i++)
        *p++ = (uint8_t)(f->ts >> (8 * i));
    *p++ = (uint8_t)(f->severity_number >= 1 && f->severity_number <= 24 ? f->severity_number
                                                                           : 0);
    p += lk_pb_put_varint(p, core);
    *p++ = 1 << 3 | LK_PB_LEN; /* EntryAdapter.timestamp */
    p += lk_pb_put_varint(p, tsz);
    if (sec) {
        *p++ = 1 << 3 | LK_PB_VARINT; /* seconds */
        p += lk_pb_put_varint(p, sec);
    }
    if (ns) {
        *p++ = 2 << 3 | LK_PB_VARINT; /* nanos */
        p += lk_pb_put_varint(p, ns);
    }
    if (f->line_len)
        p = put_ld(p, 2 << 3 | LK_PB_LEN, f->line, f->line_len); /* EntryAdapter.line */
    if (f->level_len > 0)
        p = put_pair(p, "level", 5, f->level, f->level_len);
    if (f->trace_id != NULL)
        p = put_id_pair(p, "trace_id", 8, f->trace_id, 16);
    if (f->span_id != NULL)
        p = put_id_pair(p, "span_id", 7, f->span_id, 8);
    out->len = (size_t)(p - out->data);
    return 0;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int lk_loki_run_open(lk_buf *out, const uint8_t *res, size_t res_len, size_t *at)
{
    int rc = lk_buf_reserve(out, 10 + res_len + 8);
    if (rc < 0)
        return rc;
    uint8_t *p = out->data + out->len;
    p += lk_pb_put_varint(p, res_len);
    if (res_len > 0)
        memcpy(p, res, res_len);
    p += res_len;
    *at = (size_t)(p - out->data);
    memset(p, 0, 8); /* an empty run until it is closed */
    out->len = *at + 8;
    return 0;
}

void lk_loki_run_close(lk_buf *out, size_t at, uint32_t nents)
{
    put_u32(out->data + at, nents);
    put_u32(out->data + at + 4, (uint32_t)(out->len - at - 8));
}

/* ---- reading */

static int rd_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned i = 0; i < 10 && *p + i < end; i++) {
        uint8_t b = (*p)[i];
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (b < 0x80) {
            if (i == 9 && b > 1)
                return LK_EPROTO;
            *v = x;
            *p += i + 1;
            return 0;
        }
    }
    return LK_EPROTO;
}

/* |len| bytes of a length-delimited piece at *p, whose varint length was
 * just read. */
static int rd_bytes(const uint8_t **p, const uint8_t *end, uint64_t len, const uint8_t **out)
{
    if (len > (uint64_t)(end - *p))
        return LK_EPROTO;
    *out = *p;
    *p += len;
    return 0;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int lk_loki_run_next(const uint8_t **p, const uint8_t *end, struct lk_loki_run *run)
{
    uint64_t len;

    if (rd_varint(p, end, &len) < 0 || rd_bytes(p, end, len, &run->res) < 0)
        return LK_EPROTO;
    run->res_len = (size_t)len;
    if (end - *p < 8)
        return LK_EPROTO;
    run->nents = get_u32(*p);
    len = get_u32(*p + 4);
    *p += 8;
    if (rd_bytes(p, end, len, &run->ents) < 0)
        return LK_EPROTO;
    run->ents_len = (size_t)len;
    return 0;
}

int lk_loki_entry_next(const uint8_t **p, const uint8_t *end, struct lk_loki_entry *en)
{
    uint64_t len;

    if (end - *p < LK_LOKI_ENTRY_HEAD)
        return LK_EPROTO;
    en->ts = 0;
    for (unsigned i = 0; i < 8; i++)
        en->ts |= (uint64_t)(*p)[i] << (8 * i);
    en->severity_number = (*p)[8] <= 24 ? (*p)[8] : 0;
    *p += LK_LOKI_ENTRY_HEAD;
    /* A core always holds its timestamp field: an empty one is not ours
     * (and the Loki encoder tells entries from OTLP records by it). */
    if (rd_varint(p, end, &len) < 0 || len == 0 || rd_bytes(p, end, len, &en->core) < 0)
        return LK_EPROTO;
    en->core_len = (size_t)len;
    return 0;
}

/* The next field of an EntryAdapter or LabelPairAdapter: all of theirs
 * that the writer makes are length-delimited, so any other wire type is
 * LK_EPROTO. */
static int rd_ld(const uint8_t **p, const uint8_t *end, uint64_t *num, const uint8_t **v,
                 size_t *n)
{
    uint64_t key, len;
    if (rd_varint(p, end, &key) < 0 || (key & 7) != LK_PB_LEN ||
        rd_varint(p, end, &len) < 0 || rd_bytes(p, end, len, v) < 0)
        return LK_EPROTO;
    *num = key >> 3;
    *n = (size_t)len;
    return 0;
}

static int hex_val(uint8_t c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool unhex(const uint8_t *h, size_t hn, uint8_t *out, size_t n)
{
    if (hn != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_val(h[2 * i]), lo = hex_val(h[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool named(const uint8_t *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

/* One entry as the LogRecord the OTLP form has (log_records field and all). */
static int record_append(lk_buf *out, const struct lk_loki_entry *en)
{
    const uint8_t *q = en->core, *end = en->core + en->core_len, *v;
    const uint8_t *line = NULL, *level = NULL;
    size_t n, line_len = 0, level_len = 0;
    uint8_t trace[16], span[8], hdr[24];
    bool has_trace = false, has_span = false;
    uint64_t num;

    while (q < end) {
        if (rd_ld(&q, end, &num, &v, &n) < 0)
            return LK_EPROTO;
        if (num == 2) {
            line = v;
            line_len = n;
        } else if (num == 3) {
            const uint8_t *r = v, *rend = v + n, *name = NULL, *val = NULL, *w;
            size_t name_len = 0, val_len = 0, k;
            while (r < rend) {
                if (rd_ld(&r, rend, &num, &w, &k) < 0)
                    return LK_EPROTO;
                if (num == 1) {
                    name = w;
                    name_len = k;
                } else if (num == 2) {
                    val = w;
                    val_len = k;
                }
            }
            if (named(name, name_len, "level")) {
                level = val;
                level_len = val_len;
            } else if (named(name, name_len, "trace_id")) {
                has_trace = unhex(val, val_len, trace, 16);
            } else if (named(name, name_len, "span_id")) {
                has_span = unhex(val, val_len, span, 8);
            }
        }
    }
    /* time_unix_nano = 1, severity_number = 2, severity_text = 3,
     * body = 5 { string_value = 1 }, trace_id = 9, span_id = 10 */
    size_t any = ld(line_len);
    size_t rec = 9 + (en->severity_number ? 2 : 0) + (level_len ? ld(level_len) : 0) + ld(any) +
                 (has_trace ? ld(16) : 0) + (has_span ? ld(8) : 0);
    int rc = lk_buf_reserve(out, 12 + rec);
    if (rc < 0)
        return rc;
    uint8_t *p = out->data + out->len;
    *p++ = 2 << 3 | LK_PB_LEN; /* ScopeLogs.log_records */
    p += lk_pb_put_varint(p, rec);
    *p++ = 1 << 3 | LK_PB_I64;
    for (unsigned i = 0; i < 8; i++)
        *p++ = (uint8_t)(en->ts >> (8 * i));
    if (en->severity_number) {
        *p++ = 2 << 3 | LK_PB_VARINT;
        *p++ = (uint8_t)en->severity_number;
    }
    if (level_len)
        p = put_ld(p, 3 << 3 | LK_PB_LEN, level, level_len);
    hdr[0] = 5 << 3 | LK_PB_LEN;
    size_t h = 1 + lk_pb_put_varint(hdr + 1, any);
    memcpy(p, hdr, h);
    p = put_ld(p + h, 1 << 3 | LK_PB_LEN, line, line_len);
    if (has_trace)
        p = put_ld(p, 9 << 3 | LK_PB_LEN, trace, 16);
    if (has_span)
        p = put_ld(p, 10 << 3 | LK_PB_LEN, span, 8);
    out->len = (size_t)(p - out->data);
    return 0;
}

int lk_loki_entries_to_otlp(const uint8_t *data, size_t len, lk_buf *out, lk_buf *scratch)
{
    const uint8_t *p = data, *end = data + len;
    struct lk_loki_run run;
    struct lk_loki_entry en;

    while (p < end) {
        int rc = lk_loki_run_next(&p, end, &run);
        if (rc < 0)
            return rc;
        lk_buf_reset(scratch);
        for (const uint8_t *q = run.ents, *qend = run.ents + run.ents_len; q < qend;) {
            rc = lk_loki_entry_next(&q, qend, &en);
            if (rc == 0)
                rc = record_append(scratch, &en);
            if (rc < 0)
                return rc;
        }
        /* ResourceLogs { resource = 1, scope_logs = 2 { log_records } } */
        size_t rl = ld(run.res_len) + ld(scratch->len);
        rc = lk_buf_reserve(out, 11 + rl);
        if (rc < 0)
            return rc;
        uint8_t *w = out->data + out->len;
        *w++ = 1 << 3 | LK_PB_LEN; /* ExportLogsServiceRequest.resource_logs */
        w += lk_pb_put_varint(w, rl);
        w = put_ld(w, 1 << 3 | LK_PB_LEN, run.res, run.res_len);
        w = put_ld(w, 2 << 3 | LK_PB_LEN, scratch->data, scratch->len);
        out->len = (size_t)(w - out->data);
    }
    return 0;
}
