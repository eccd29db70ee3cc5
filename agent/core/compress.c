#include "core/compress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>
#ifdef LK_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include "core/err.h"

/* libdeflate measured faster than zlib at levels 1..7 and slower at 8 and 9
 * for the same ratio (docs/bench.md): those two stay zlib's. */
#define LIBDEFLATE_MAX_LEVEL 7

size_t lk_compress_bound(enum lk_codec codec, size_t n)
{
    if (codec == LK_CODEC_ZSTD)
        return ZSTD_COMPRESSBOUND(n);
    /* zlib's bound with the gzip wrapper (18 bytes) instead of zlib's (6). */
    size_t b = n + (n >> 12) + (n >> 14) + (n >> 25) + 13 + 12;
#ifdef LK_HAVE_LIBDEFLATE
    size_t ld = libdeflate_gzip_compress_bound(NULL, n);
    if (ld > b)
        b = ld;
#endif
    return b;
}

int lk__compress_gzip_zlib(int level, const struct iovec *iov, size_t n, size_t total,
                           uint8_t *out, size_t cap, size_t *outlen)
{
    z_stream zs = {0};
    int rc = 0;

    if (total > LK_COMPRESS_MAX_INPUT || cap > UINT32_MAX)
        return LK_E2BIG;
    int zr = deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    if (zr != Z_OK)
        return zr == Z_MEM_ERROR ? LK_ENOMEM : LK_EINVAL;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    for (size_t i = 0; i < n; i++) {
        zs.next_in = iov[i].iov_base;
        zs.avail_in = (uInt)iov[i].iov_len;
        zr = deflate(&zs, Z_NO_FLUSH);
        /* Z_BUF_ERROR only says there was nothing to do (an empty iovec);
         * input left over means the output did not fit. */
        if ((zr != Z_OK && zr != Z_BUF_ERROR) || zs.avail_in > 0) {
            rc = zs.avail_out == 0 ? LK_E2BIG : LK_EIO;
            goto out_end;
        }
    }
    zs.avail_in = 0;
    zr = deflate(&zs, Z_FINISH);
    if (zr != Z_STREAM_END)
        rc = zr == Z_OK || zr == Z_BUF_ERROR ? LK_E2BIG : LK_EIO;
    else
        *outlen = cap - zs.avail_out;
out_end:
    deflateEnd(&zs);
    return rc;
}

#ifdef LK_HAVE_LIBDEFLATE
/* libdeflate compresses one whole buffer: several iovecs are gathered into
 * a copy first (memcpy costs a few percent of level 1's time). */
static int gzip_libdeflate(int level, const struct iovec *iov, size_t n, size_t total,
                           uint8_t *out, size_t cap, size_t *outlen)
{
    const void *in = n == 1 ? iov[0].iov_base : NULL;
    uint8_t *copy = NULL;
    int rc = 0;

    if (n > 1) {
        copy = malloc(total ? total : 1);
        if (copy == NULL)
            return LK_ENOMEM;
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(copy + off, iov[i].iov_base, iov[i].iov_len);
            off += iov[i].iov_len;
        }
        in = copy;
    }
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
    if (c == NULL) {
        rc = LK_ENOMEM;
        goto out_copy;
    }
    size_t len = libdeflate_gzip_compress(c, in, total, out, cap);
    if (len == 0)
        rc = LK_E2BIG; /* the only failure: the output did not fit */
    else
        *outlen = len;
    libdeflate_free_compressor(c);
out_copy:
    free(copy);
    return rc;
}
#endif

static int zstd_iov(int level, const struct iovec *iov, size_t n, size_t total,
                    uint8_t *out, size_t cap, size_t *outlen)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    int rc = 0;

    if (c == NULL)
        return LK_ENOMEM;
    /* The content size goes into the frame header: decoders size their
     * buffers from it. */
    if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(c, total))) {
        rc = LK_EIO;
        goto out_free;
    }
    ZSTD_outBuffer ob = {.dst = out, .size = cap, .pos = 0};
    for (size_t i = 0; i < n; i++) {
        ZSTD_inBuffer ib = {.src = iov[i].iov_base, .size = iov[i].iov_len, .pos = 0};
        while (ib.pos < ib.size) {
            size_t r = ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_continue);
            if (ZSTD_isError(r)) {
                rc = LK_EIO;
                goto out_free;
            }
            if (ob.pos == ob.size && ib.pos < ib.size) {
                rc = LK_E2BIG;
                goto out_free;
            }
        }
    }
    ZSTD_inBuffer none = {.src = NULL, .size = 0, .pos = 0};
    for (;;) {
        size_t left = ZSTD_compressStream2(c, &ob, &none, ZSTD_e_end);
        if (ZSTD_isError(left)) {
            rc = LK_EIO;
            break;
        }
        if (left == 0) {
            *outlen = ob.pos;
            break;
        }
        if (ob.pos == ob.size) {
            rc = LK_E2BIG;
            break;
        }
    }
out_free:
    ZSTD_freeCCtx(c);
    return rc;
}

int lk_compress_iov(enum lk_codec codec, int level, const struct iovec *iov, size_t n,
                    size_t total, uint8_t *out, size_t cap, size_t *outlen)
{
    if (total > LK_COMPRESS_MAX_INPUT)
        return LK_E2BIG;
    if (codec == LK_CODEC_ZSTD) {
        if (level < 1 || level > LK_ZSTD_LEVEL_MAX)
            return LK_EINVAL;
        return zstd_iov(level, iov, n, total, out, cap, outlen);
    }
    if (level == -1)
        level = 6; /* zlib's Z_DEFAULT_COMPRESSION */
    if (level < 1 || level > LK_GZIP_LEVEL_MAX)
        return LK_EINVAL;
#ifdef LK_HAVE_LIBDEFLATE
    if (level <= LIBDEFLATE_MAX_LEVEL)
        return gzip_libdeflate(level, iov, n, total, out, cap, outlen);
#endif
    return lk__compress_gzip_zlib(level, iov, n, total, out, cap, outlen);
}

int lk_compress_iov_alloc(enum lk_codec codec, int level, const struct iovec *iov, size_t n,
                          size_t total, uint8_t **out, size_t *outlen)
{
    if (total > LK_COMPRESS_MAX_INPUT)
        return LK_E2BIG;
    size_t cap = lk_compress_bound(codec, total);
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        return LK_ENOMEM;
    int rc = lk_compress_iov(codec, level, iov, n, total, buf, cap, outlen);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    return 0;
}

const char *lk_compress_libraries(void)
{
    static char text[96];
    if (text[0] == '\0') {
#ifdef LK_HAVE_LIBDEFLATE
        snprintf(text, sizeof(text), "gzip: libdeflate %s for levels 1-%d, zlib %s; zstd %s",
                 LIBDEFLATE_VERSION_STRING, LIBDEFLATE_MAX_LEVEL, zlibVersion(),
                 ZSTD_versionString());
#else
        snprintf(text, sizeof(text), "gzip: zlib %s; zstd %s", zlibVersion(),
                 ZSTD_versionString());
#endif
    }
    return text;
}
