/*
 * Request body compression: gzip (libdeflate where the build has it, zlib
 * otherwise) and zstd, from an iovec, on any thread (no shared state).
 * Decompression of gzip stays in core/gzip.h (zlib, with an output cap).
 */
#ifndef LK_CORE_COMPRESS_H
#define LK_CORE_COMPRESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum lk_codec { LK_CODEC_GZIP, LK_CODEC_ZSTD };

/* Valid levels: gzip 1 (fastest) .. 9 (smallest), whichever library does
 * it; zstd 1 .. 19 (20..22 need a larger window than receivers may allow).
 * Level 1 is the default of both (docs/bench.md). */
#define LK_GZIP_LEVEL_MAX 9
#define LK_ZSTD_LEVEL_MAX 19

/* The largest input lk_compress_iov takes. */
#define LK_COMPRESS_MAX_INPUT ((size_t)UINT32_MAX / 2)

/* An upper bound of the output for |n| bytes of input (no overflow for
 * n <= LK_COMPRESS_MAX_INPUT). */
size_t lk_compress_bound(enum lk_codec codec, size_t n);

/*
 * Compresses the concatenation of the |n| entries of |iov| (|total| bytes
 * in all) as one gzip member or one zstd frame (with its content size)
 * into |out|, which has room for |cap| bytes; sets |*outlen|. |level| as
 * above; gzip also takes -1, zlib's default (6). Returns 0, LK_E2BIG when
 * |total| exceeds LK_COMPRESS_MAX_INPUT or |cap| is too small, LK_EINVAL for
 * a level out of range, LK_ENOMEM, LK_EIO for any other library failure.
 */
int lk_compress_iov(enum lk_codec codec, int level, const struct iovec *iov, size_t n,
                    size_t total, uint8_t *out, size_t cap, size_t *outlen);
/* The same into a new buffer of lk_compress_bound() bytes, which the caller
 * frees (set only on success). */
int lk_compress_iov_alloc(enum lk_codec codec, int level, const struct iovec *iov, size_t n,
                          size_t total, uint8_t **out, size_t *outlen);

/* gzip with zlib whatever the build has, for the tests that compare it with
 * libdeflate; same contract as lk_compress_iov. */
int lk__compress_gzip_zlib(int level, const struct iovec *iov, size_t n, size_t total,
                           uint8_t *out, size_t cap, size_t *outlen);

/* What compresses each codec, e.g. "gzip: libdeflate 1.14 for levels 1-7,
 * zlib 1.2.13; zstd 1.5.4" (static storage, filled on the first call: call
 * it from one thread; for --version and the startup log). */
const char *lk_compress_libraries(void);

#endif
