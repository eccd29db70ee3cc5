/*
 * compress_bench: what compressing an export request costs, for choosing a
 * default level (make bench runs it on the requests loadgen --dump writes).
 *
 *   compress_bench FILE...
 *
 * Each FILE is a gRPC-framed Export request (5-byte prefix, then the
 * message). For gzip with zlib (levels 1..9) and with libdeflate (1..12,
 * when the build has it),
 * zstd (levels -5, -1, 1..9, 12, 15, 19) and snappy: the compression ratio
 * and the CPU microseconds per MiB of input (CLOCK_PROCESS_CPUTIME_ID,
 * repeated until at least 0.2 s of CPU). Each compression allocates its
 * own state, as the exporters do per request. One JSON object per file,
 * codec and level on stdout. The payloads are loadgen's, more repetitive
 * than an app's: the ratios are high, the CPU figures are what to compare.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef LK_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t gzip_once(const uint8_t *in, size_t n, uint8_t *out, size_t cap, int level)
{
    z_stream z = {0};
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t len = z.total_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? len : 0;
}

static size_t libdeflate_once(const uint8_t *in, size_t n, uint8_t *out, size_t cap, int level)
{
#ifdef LK_HAVE_LIBDEFLATE
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
    if (c == NULL)
        return 0;
    size_t len = libdeflate_gzip_compress(c, in, n, out, cap);
    libdeflate_free_compressor(c);
    return len;
#else
    return 0;
#endif
}

static size_t zstd_once(const uint8_t *in, size_t n, uint8_t *out, size_t cap, int level)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    if (c == NULL)
        return 0;
    size_t len = ZSTD_compressCCtx(c, out, cap, in, n, level);
    ZSTD_freeCCtx(c);
    return ZSTD_isError(len) ? 0 : len;
}

enum codec { GZIP_ZLIB, GZIP_LIBDEFLATE, ZSTD, SNAPPY };
static const char *const codec_names[] = {"gzip", "gzip-libdeflate", "zstd", "snappy"};

static void measure(const char *file, enum codec codec, int level, const uint8_t *in, size_t n)
{
    size_t cap = n + n / 10 + 1024;
    if (snappy_max_compressed_length(n) > cap)
        cap = snappy_max_compressed_length(n);
    if (ZSTD_compressBound(n) > cap)
        cap = ZSTD_compressBound(n);
    uint8_t *out = malloc(cap);
    size_t len = 0;
    int reps = 0;
    double t0 = cpu_now(), t;
    do {
        switch (codec) {
        case GZIP_ZLIB:
            len = gzip_once(in, n, out, cap, level);
            break;
        case GZIP_LIBDEFLATE:
            len = libdeflate_once(in, n, out, cap, level);
            break;
        case ZSTD:
            len = zstd_once(in, n, out, cap, level);
            break;
        case SNAPPY:
            len = cap;
            if (snappy_compress((const char *)in, n, (char *)out, &len) != SNAPPY_OK)
                len = 0;
            break;
        }
        reps++;
        t = cpu_now() - t0;
    } while (t < 0.2);
    printf("{\"file\": \"%s\", \"codec\": \"%s\", \"level\": %d, \"bytes\": %zu, "
           "\"compressed\": %zu, \"ratio\": %.2f, \"cpu_us_per_mib\": %.0f}\n",
           file, codec_names[codec], level, n, len, len ? (double)n / (double)len : 0.0,
           t / reps / ((double)n / 1048576.0) * 1e6);
    free(out);
}

int main(int argc, char **argv)
{
    static const int zstd_levels[] = {-5, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 19};
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (f == NULL) {
            fprintf(stderr, "compress_bench: cannot open %s\n", argv[i]);
            return 1;
        }
        static uint8_t buf[64 << 20];
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        if (n <= 5) {
            fprintf(stderr, "compress_bench: %s is too short\n", argv[i]);
            return 1;
        }
        const char *name = strrchr(argv[i], '/') ? strrchr(argv[i], '/') + 1 : argv[i];
        for (int l = 1; l <= 9; l++)
            measure(name, GZIP_ZLIB, l, buf + 5, n - 5);
#ifdef LK_HAVE_LIBDEFLATE /* a build without it (make LIBDEFLATE=0) */
        for (int l = 1; l <= 12; l++)
            measure(name, GZIP_LIBDEFLATE, l, buf + 5, n - 5);
#endif
        for (size_t l = 0; l < sizeof(zstd_levels) / sizeof(zstd_levels[0]); l++)
            measure(name, ZSTD, zstd_levels[l], buf + 5, n - 5);
        measure(name, SNAPPY, 0, buf + 5, n - 5);
    }
    return 0;
}
