#include "core/gzip.h"

#include <zlib.h>

#include "core/compress.h"
#include "core/err.h"

int lk_gzip_inflate(const uint8_t *p, size_t n, size_t max, int raw_zlib,
                    lk_buf *out)
{
    z_stream zs = {0};
    int rc;
    size_t start = out->len;

    /* 16 + MAX_WBITS: gzip wrapper only; zlib wrapper for "deflate". */
    if (inflateInit2(&zs, raw_zlib ? MAX_WBITS : 16 + MAX_WBITS) != Z_OK)
        return LK_ENOMEM;
    zs.next_in = (Bytef *)p;
    zs.avail_in = (uInt)n;
    if ((size_t)zs.avail_in != n) {
        inflateEnd(&zs);
        return LK_E2BIG;
    }
    for (;;) {
        size_t produced = out->len - start;
        if (produced >= max) {
            /* Output is at the cap: one more byte decides between done and bomb. */
            uint8_t probe;
            zs.next_out = &probe;
            zs.avail_out = 1;
            int zr = inflate(&zs, Z_NO_FLUSH);
            if (zs.avail_out == 0)
                rc = LK_E2BIG;
            else if (zr == Z_STREAM_END && zs.avail_in == 0)
                rc = 0;
            else
                rc = LK_EPROTO;
            break;
        }
        size_t room = max - produced;
        size_t chunk = room < 64 * 1024 ? room : 64 * 1024;
        if (out->len + chunk > out->max)
            chunk = out->max > out->len ? out->max - out->len : 0;
        if (chunk == 0) {
            rc = LK_E2BIG;
            break;
        }
        rc = lk_buf_reserve(out, chunk);
        if (rc < 0)
            break;
        zs.next_out = out->data + out->len;
        zs.avail_out = (uInt)chunk;
        int zr = inflate(&zs, Z_NO_FLUSH);
        out->len += chunk - zs.avail_out;
        if (zr == Z_STREAM_END) {
            rc = zs.avail_in == 0 ? 0 : LK_EPROTO;
            break;
        }
        if (zr == Z_BUF_ERROR && zs.avail_in == 0) {
            rc = LK_EPROTO; /* truncated */
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = zr == Z_MEM_ERROR ? LK_ENOMEM : LK_EPROTO;
            break;
        }
    }
    inflateEnd(&zs);
    if (rc < 0)
        out->len = start;
    return rc;
}

int lk_gzip_deflate(const uint8_t *p, size_t n, lk_buf *out)
{
    return lk_gzip_deflate_level(p, n, Z_DEFAULT_COMPRESSION, out);
}

int lk_gzip_deflate_level(const uint8_t *p, size_t n, int level, lk_buf *out)
{
    if (n > LK_COMPRESS_MAX_INPUT)
        return LK_E2BIG;
    size_t bound = lk_compress_bound(LK_CODEC_GZIP, n);
    int rc = lk_buf_reserve(out, bound);
    if (rc < 0)
        return rc;
    struct iovec one = {.iov_base = (void *)p, .iov_len = n};
    size_t len;
    rc = lk_compress_iov(LK_CODEC_GZIP, level, &one, 1, n, out->data + out->len, bound, &len);
    if (rc == 0)
        out->len += len;
    return rc;
}
