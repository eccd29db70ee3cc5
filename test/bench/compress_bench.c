/*
 * compress_bench: what compressing an export request costs, for choosing a
 * default level (make bench runs it on the requests loadgen --dump writes).
 *
 *   compress_bench FILE...
 *
 * Each FILE is a gRPC-framed Export request (5-byte prefix, then the
 * message). For gzip at zlib levels 1, 3, 6 (zlib's default, what gRPC and
 * the HTTP exporters use today) and 9, and for snappy: the compression ratio
 * and the CPU microseconds per MiB of input (CLOCK_PROCESS_CPUTIME_ID,
 * repeated until at least 0.2 s of CPU). One JSON object per file and codec
 * on stdout. The payloads are loadgen's, more repetitive than an app's: the
 * ratios are high, the CPU figures are what to compare.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <snappy-c.h>
#include <zlib.h>

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

static void measure(const char *file, const char *codec, int level, const uint8_t *in, size_t n)
{
    size_t cap = n + n / 10 + 1024;
    if (snappy_max_compressed_length(n) > cap)
        cap = snappy_max_compressed_length(n);
    uint8_t *out = malloc(cap);
    size_t len = 0;
    int reps = 0;
    double t0 = cpu_now(), t;
    do {
        if (level > 0) {
            len = gzip_once(in, n, out, cap, level);
        } else {
            len = cap;
            if (snappy_compress((const char *)in, n, (char *)out, &len) != SNAPPY_OK)
                len = 0;
        }
        reps++;
        t = cpu_now() - t0;
    } while (t < 0.2);
    printf("{\"file\": \"%s\", \"codec\": \"%s\", \"level\": %d, \"bytes\": %zu, "
           "\"compressed\": %zu, \"ratio\": %.2f, \"cpu_us_per_mib\": %.0f}\n",
           file, codec, level, n, len, len ? (double)n / (double)len : 0.0,
           t / reps / ((double)n / 1048576.0) * 1e6);
    free(out);
}

int main(int argc, char **argv)
{
    static const int levels[] = {1, 3, 6, 9};
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
        for (size_t l = 0; l < sizeof(levels) / sizeof(levels[0]); l++)
            measure(name, "gzip", levels[l], buf + 5, n - 5);
        measure(name, "snappy", 0, buf + 5, n - 5);
    }
    return 0;
}
