/* gzip / zlib decoding with an output cap (bombs are cut off, never inflated
 * whole), and gzip encoding into an lk_buf. */
#ifndef LK_CORE_GZIP_H
#define LK_CORE_GZIP_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/*
 * Inflates |n| bytes of gzip (or, with |raw_zlib|, zlib "deflate") data at |p|,
 * appending the result to |out|. Stops as soon as the output would exceed
 * |max| bytes. Returns 0, LK_E2BIG past |max|, LK_EPROTO for corrupt or
 * truncated input (trailing garbage included), LK_ENOMEM.
 */
int lk_gzip_inflate(const uint8_t *p, size_t n, size_t max, int raw_zlib,
                    lk_buf *out);
/* Compresses |n| bytes at |p| as gzip into |out| (appends), at zlib's
 * default level (6); _level: at |level| (1 fastest .. 9 smallest). Through
 * core/compress.h (libdeflate where built with it): LK_E2BIG (|out|'s max or
 * the input's size), LK_EINVAL (level), LK_ENOMEM, LK_EIO. */
int lk_gzip_deflate(const uint8_t *p, size_t n, lk_buf *out);
int lk_gzip_deflate_level(const uint8_t *p, size_t n, int level, lk_buf *out);

#endif
