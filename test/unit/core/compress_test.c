/* core/compress: gzip (libdeflate or zlib) and zstd from an iovec, each
 * decoded by the other side's own code: zlib's inflate for gzip, libzstd's
 * one-shot decompressor for zstd. */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>

#include "core/buf.h"
#include "core/compress.h"
#include "core/err.h"
#include "core/gzip.h"

/* |n| bytes that look like a telemetry payload: runs of repeated text (keys,
 * names) between pseudo-random bytes (ids, timestamps). */
static uint8_t *payload(size_t n)
{
    static const char words[] = "service.name\x12\x08" "checkout http.route /api/v1/cart ";
    uint8_t *p = malloc(n ? n : 1);
    uint32_t x = 2463534242u;
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (i / 16) % 3 == 0 ? (uint8_t)x : (uint8_t)words[i % (sizeof(words) - 1)];
    }
    return p;
}

/* Inflates a gzip member with zlib alone; returns its length or -1. */
static long zlib_gunzip(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    z_stream zs = {0};
    ck_assert_int_eq(inflateInit2(&zs, 16 + MAX_WBITS), Z_OK);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int zr = inflate(&zs, Z_FINISH);
    long len = zr == Z_STREAM_END && zs.avail_in == 0 ? (long)zs.total_out : -1;
    inflateEnd(&zs);
    return len;
}

/* |p| cut into 5 iovecs of uneven sizes, one of them empty. */
static size_t split(const uint8_t *p, size_t n, struct iovec *iov)
{
    size_t cuts[] = {0, n / 7, n / 7, n / 2, n - n / 5, n};
    for (int i = 0; i < 5; i++) {
        iov[i].iov_base = (void *)(p + cuts[i]);
        iov[i].iov_len = cuts[i + 1] - cuts[i];
    }
    return 5;
}

/* Decodes |z| with the codec's reference decoder, checking the framing on
 * the way: a gzip member ends with ISIZE, a zstd frame states its content
 * size. Returns the decoded length, or -1. */
static long decode(enum lk_codec codec, const uint8_t *z, size_t zlen, uint8_t *out, size_t cap)
{
    if (codec == LK_CODEC_ZSTD) {
        ck_assert_uint_eq(ZSTD_findFrameCompressedSize(z, zlen), zlen);
        size_t got = ZSTD_decompress(out, cap, z, zlen);
        ck_assert_msg(!ZSTD_isError(got), "%s", ZSTD_getErrorName(got));
        ck_assert_uint_eq(ZSTD_getFrameContentSize(z, zlen), got);
        return (long)got;
    }
    ck_assert_uint_ge(zlen, 18);
    ck_assert(z[0] == 0x1f && z[1] == 0x8b && z[2] == 8);
    long got = zlib_gunzip(z, zlen, out, cap);
    ck_assert_uint_eq((uint32_t)z[zlen - 4] | (uint32_t)z[zlen - 3] << 8 |
                          (uint32_t)z[zlen - 2] << 16 | (uint32_t)z[zlen - 1] << 24,
                      (uint32_t)got);
    return got;
}

/* |in| as 5 iovecs through lk_compress_iov (or, with |zlib_only|, zlib's
 * gzip), then back through the reference decoder. */
static void round_trip(enum lk_codec codec, int level, const uint8_t *in, size_t n,
                       bool zlib_only)
{
    struct iovec iov[5];
    size_t niov = split(in, n, iov);
    size_t cap = lk_compress_bound(codec, n);
    uint8_t *z = malloc(cap), *back = malloc(n + 1);
    size_t zlen = 0;
    int rc = zlib_only ? lk__compress_gzip_zlib(level, iov, niov, n, z, cap, &zlen)
                       : lk_compress_iov(codec, level, iov, niov, n, z, cap, &zlen);
    ck_assert_msg(rc == 0, "codec %d level %d: %s", codec, level, lk_strerror(rc));
    ck_assert_uint_le(zlen, cap);
    ck_assert_int_eq(decode(codec, z, zlen, back, n + 1), (long)n);
    ck_assert(n == 0 || memcmp(back, in, n) == 0);
    if (n > 4096)
        ck_assert_uint_lt(zlen, n / 2);
    free(z);
    free(back);
}

START_TEST(gzip_every_level_inflates_with_zlib)
{
    size_t n = 200 * 1024;
    uint8_t *in = payload(n);
    for (int level = 1; level <= LK_GZIP_LEVEL_MAX; level++) {
        round_trip(LK_CODEC_GZIP, level, in, n, false);
        round_trip(LK_CODEC_GZIP, level, in, n, true); /* the build without libdeflate */
    }
    round_trip(LK_CODEC_GZIP, -1, in, n, false); /* zlib's default */
    round_trip(LK_CODEC_GZIP, 1, in, 0, false);
    round_trip(LK_CODEC_GZIP, 1, in, 1, false);
    round_trip(LK_CODEC_GZIP, 1, in, 0, true);
    free(in);
}
END_TEST

START_TEST(gzip_into_buf_appends)
{
    size_t n = 70000;
    uint8_t *in = payload(n), *back = malloc(n);
    lk_buf b;
    lk_buf_init(&b, 1 << 20);
    ck_assert_int_eq(lk_buf_append(&b, "head", 4), 0);
    ck_assert_int_eq(lk_gzip_deflate_level(in, n, 1, &b), 0);
    ck_assert(memcmp(b.data, "head", 4) == 0);
    ck_assert_int_eq(zlib_gunzip(b.data + 4, b.len - 4, back, n), (long)n);
    ck_assert(memcmp(back, in, n) == 0);
    /* lk_gzip_inflate reads it back too (zlib, with its cap). */
    lk_buf out;
    lk_buf_init(&out, 1 << 20);
    ck_assert_int_eq(lk_gzip_inflate(b.data + 4, b.len - 4, n, 0, &out), 0);
    ck_assert_uint_eq(out.len, n);
    lk_buf_reset(&out);
    ck_assert_int_eq(lk_gzip_inflate(b.data + 4, b.len - 4, n - 1, 0, &out), LK_E2BIG);
    lk_buf_fini(&out);
    lk_buf_reset(&b);
    ck_assert_int_eq(lk_gzip_deflate(in, n, &b), 0); /* level 6 */
    ck_assert_int_eq(zlib_gunzip(b.data, b.len, back, n), (long)n);
    lk_buf_fini(&b);
    /* The buffer's cap holds. */
    lk_buf_init(&b, 100);
    ck_assert_int_eq(lk_gzip_deflate_level(in, n, 1, &b), LK_E2BIG);
    lk_buf_fini(&b);
    free(in);
    free(back);
}
END_TEST

START_TEST(zstd_every_level_decompresses_with_libzstd)
{
    size_t n = 100 * 1024;
    uint8_t *in = payload(n);
    for (int level = 1; level <= LK_ZSTD_LEVEL_MAX; level++)
        round_trip(LK_CODEC_ZSTD, level, in, level > 12 ? 20000 : n, false); /* 15+: slow */
    round_trip(LK_CODEC_ZSTD, 1, in, 0, false);
    round_trip(LK_CODEC_ZSTD, 1, in, 1, false);
    round_trip(LK_CODEC_ZSTD, 3, in, 1024, false);
    free(in);
    /* Larger than a zstd block (128 KiB) and than level 1's window. */
    n = 3 << 20;
    in = payload(n);
    round_trip(LK_CODEC_ZSTD, 1, in, n, false);
    free(in);
}
END_TEST

START_TEST(refusals)
{
    uint8_t in[4096], out[64];
    memset(in, 'x', sizeof(in));
    for (int i = 0; i < 4096; i += 7)
        in[i] = (uint8_t)i;
    struct iovec one = {.iov_base = in, .iov_len = sizeof(in)};
    size_t len = 0;
    /* Output that cannot fit. */
    ck_assert_int_eq(lk_compress_iov(LK_CODEC_GZIP, 1, &one, 1, sizeof(in), out, sizeof(out),
                                     &len),
                     LK_E2BIG);
    ck_assert_int_eq(lk__compress_gzip_zlib(1, &one, 1, sizeof(in), out, sizeof(out), &len),
                     LK_E2BIG);
    ck_assert_int_eq(lk__compress_gzip_zlib(9, &one, 1, sizeof(in), out, sizeof(out), &len),
                     LK_E2BIG);
    ck_assert_int_eq(lk_compress_iov(LK_CODEC_ZSTD, 1, &one, 1, sizeof(in), out, sizeof(out),
                                     &len),
                     LK_E2BIG);
    ck_assert_uint_eq(len, 0);
    /* Levels out of range. */
    uint8_t *z = NULL;
    ck_assert_int_eq(lk_compress_iov_alloc(LK_CODEC_GZIP, 0, &one, 1, sizeof(in), &z, &len),
                     LK_EINVAL);
    ck_assert_int_eq(lk_compress_iov_alloc(LK_CODEC_GZIP, 10, &one, 1, sizeof(in), &z, &len),
                     LK_EINVAL);
    ck_assert_int_eq(lk_compress_iov_alloc(LK_CODEC_ZSTD, 0, &one, 1, sizeof(in), &z, &len),
                     LK_EINVAL);
    ck_assert_int_eq(lk_compress_iov_alloc(LK_CODEC_ZSTD, 20, &one, 1, sizeof(in), &z, &len),
                     LK_EINVAL);
    ck_assert_ptr_null(z);
    /* Input past the limit, refused before it is read. */
    ck_assert_int_eq(lk_compress_iov_alloc(LK_CODEC_ZSTD, 1, &one, 1,
                                           LK_COMPRESS_MAX_INPUT + 1, &z, &len),
                     LK_E2BIG);
    ck_assert_int_eq(lk_compress_iov_alloc(LK_CODEC_GZIP, 1, &one, 1,
                                           LK_COMPRESS_MAX_INPUT + 1, &z, &len),
                     LK_E2BIG);
}
END_TEST

START_TEST(names_its_libraries)
{
    const char *s = lk_compress_libraries();
    ck_assert_ptr_nonnull(strstr(s, "gzip: "));
    ck_assert_ptr_nonnull(strstr(s, zlibVersion()));
    ck_assert_ptr_nonnull(strstr(s, ZSTD_versionString()));
#ifdef LK_HAVE_LIBDEFLATE
    ck_assert_ptr_nonnull(strstr(s, "libdeflate "));
#else
    ck_assert_ptr_null(strstr(s, "libdeflate"));
#endif
}
END_TEST

int main(void)
{
    Suite *s = suite_create("compress");
    TCase *t = tcase_create("codecs");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, gzip_every_level_inflates_with_zlib);
    tcase_add_test(t, gzip_into_buf_appends);
    tcase_add_test(t, zstd_every_level_decompresses_with_libzstd);
    tcase_add_test(t, refusals);
    tcase_add_test(t, names_its_libraries);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
