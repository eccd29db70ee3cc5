/*
 * loadgen: sends pre-serialised load to lookout's receivers for `make bench`.
 *
 * An independent client: it does not link liblookout, and builds on Linux and
 * macOS with POSIX sockets, poll() and nghttp2:
 *
 *   cc -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE -O2 test/bench/loadgen.c \
 *      $(pkg-config --cflags --libs libnghttp2 zlib) -o build/bench/loadgen
 *
 * Usage:
 *   loadgen --mode grpc-traces|grpc-logs|grpc-metrics|http-traces|http-logs|lines
 *           --target ADDR   grpc-*: host:port or unix:///path; http-*: host:port
 *                           (or unix:///path); lines: /path/to/socket
 *           --requests N    requests to get accepted (grpc-*, http-*); default 200
 *           --lines N       lines to write (lines); default 200000
 *           --items K       spans / log records / metric points per request; default 512
 *           --connections C default 2
 *           --streams S     grpc-*: requests in flight per connection; default 4
 *           --rate R        new requests/s (lines: lines/s) overall; 0 (default):
 *                           as fast as possible
 *           --line-bytes B  bytes per line, newline included (lines), and per log
 *                           record body (*-logs); default 150, at least about 130
 *           --gzip 1        grpc-*: send the message gzip-compressed (grpc-encoding:
 *                           gzip), as SDKs with OTEL_EXPORTER_OTLP_COMPRESSION=gzip do
 *           --dump FILE     grpc-*: write the gRPC-framed request (5-byte prefix and
 *                           message) to FILE and exit, e.g. for h2load -d FILE
 *
 * Every payload is built once at start (hand-encoded protobuf, the same bytes
 * for every request); the hot loop only moves bytes. gRPC uses HTTP/2 prior
 * knowledge with nghttp2 over non-blocking sockets, S streams per connection,
 * DATA frames referencing the shared payload (NGHTTP2_DATA_FLAG_NO_COPY) and
 * written with writev(). OTLP/HTTP keeps one request in flight per keep-alive
 * connection. Lines are written in chunks of about 64 KiB of whole lines,
 * chunks going round-robin over the connections, with blocking writes.
 *
 * A refused attempt (gRPC UNAVAILABLE 14 / RESOURCE_EXHAUSTED 8, an HTTP/2
 * REFUSED_STREAM, HTTP 429 / 503) is retried after 20 ms until it is accepted;
 * anything else fails the request (counted, not retried). --rate paces new
 * requests only; retries come on top.
 *
 * Output: one JSON line on stdout, then exit 0:
 *   {"mode":"grpc-traces","requests":200,"items":102400,"bytes":32002400,
 *    "refused":3,"failed":0,"seconds":0.5200,"request_bytes":160012}
 *   requests       requests accepted (lines: lines written)
 *   items          requests x K (lines: lines written)
 *   bytes          requests x request_bytes (lines: bytes written)
 *   refused        attempts refused and retried
 *   failed         requests (lines: lines) that failed; the bench treats > 0
 *                  as an error
 *   seconds        from the first request to the last answer (lines: until
 *                  lookout has read everything and closed the connections)
 *   request_bytes  size of the Export request message (lines: of one line)
 * Setup failures (bad options, cannot connect) print a message on stderr and
 * exit 1 (2 for usage errors) without JSON.
 */
#include <zlib.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

/* nghttp2 1.60 deprecated the ssize_t-based API in favour of *2 variants
 * with the same meaning; Debian 12 has 1.52, Homebrew a newer one. */
#if NGHTTP2_VERSION_NUM >= 0x013c00
typedef nghttp2_ssize h2_ssize;
typedef nghttp2_data_provider2 h2_data_provider;
#define h2_submit_request nghttp2_submit_request2
#define h2_session_mem_recv nghttp2_session_mem_recv2
#define h2_callbacks_set_send nghttp2_session_callbacks_set_send_callback2
#else
typedef ssize_t h2_ssize;
typedef nghttp2_data_provider h2_data_provider;
#define h2_submit_request nghttp2_submit_request
#define h2_session_mem_recv nghttp2_session_mem_recv
#define h2_callbacks_set_send nghttp2_session_callbacks_set_send_callback
#endif

#define RETRY_DELAY_NS 20000000ull    /* wait before re-sending a refused request */
#define MAX_RECONNECTS 16             /* per connection, over the whole run */
#define LINES_CHUNK_BYTES (64u << 10) /* whole lines per write() */
#define LINES_DRAIN_MS 60000          /* wait for lookout to finish reading */
#define OUTQ_BUF_BYTES (64u << 10)    /* copied frame bytes (headers, control) */
#define OUTQ_SEGS 512
#define OUTQ_HIGH_BYTES (1u << 20) /* queued for the socket before pushing back */
#define IOV_BATCH 128

enum mode {
    MODE_GRPC_TRACES,
    MODE_GRPC_LOGS,
    MODE_HTTP_TRACES,
    MODE_HTTP_LOGS,
    MODE_LINES,
    MODE_GRPC_METRICS
};

static const char *const mode_names[] = {"grpc-traces", "grpc-logs", "http-traces", "http-logs",
                                         "lines", "grpc-metrics"};

struct opts {
    enum mode mode;
    const char *target;
    uint64_t requests;
    uint64_t lines;
    uint64_t items; /* spans or log records per request */
    uint64_t connections;
    uint64_t streams; /* grpc: in flight per connection */
    double rate;      /* per second; 0: unpaced */
    uint64_t line_bytes;
    const char *dump; /* write the gRPC-framed request here and exit */
    bool gzip;        /* grpc: compressed messages */
};

/* ---- small helpers ------------------------------------------------------- */

static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("loadgen: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        die("out of memory (%zu bytes)", n);
    return p;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        die("out of memory");
    return p;
}

/* ns, monotonic */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
    for (;;) {
        uint64_t now = now_ns();
        if (now >= t)
            return;
        struct timespec ts = {.tv_sec = (time_t)((t - now) / 1000000000ull),
                              .tv_nsec = (long)((t - now) % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
}

/* splitmix64: spreads a counter into well-mixed id bytes. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void put_be64(uint8_t *d, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        d[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* Non-zero ids: an all-zero trace or span id is invalid in OTLP. */
static void make_trace_id(uint8_t id[16], uint64_t seq)
{
    put_be64(id, mix64(seq * 2 + 0x7472616365ull));
    put_be64(id + 8, mix64(seq * 2 + 1 + 0x7472616365ull) | 1);
}

static void make_span_id(uint8_t id[8], uint64_t seq, uint64_t salt)
{
    put_be64(id, mix64(seq ^ (salt << 40)) | 1);
}

static unsigned decimal_digits(uint64_t v)
{
    unsigned n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* Writes |v| as exactly |width| decimal digits ending at |end| (exclusive). */
static void put_digits(char *end, unsigned width, uint64_t v)
{
    while (width-- > 0) {
        *--end = (char)('0' + v % 10);
        v /= 10;
    }
}

static void put_hex(char *d, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        d[2 * i] = hex[p[i] >> 4];
        d[2 * i + 1] = hex[p[i] & 15];
    }
}

/* ---- protobuf encoding (setup only) -------------------------------------- */

struct pb {
    uint8_t *p;
    size_t len, cap;
};

static void pb_need(struct pb *b, size_t n)
{
    if (b->cap - b->len >= n)
        return;
    size_t cap = b->cap != 0 ? b->cap : 4096;
    while (cap - b->len < n)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL)
        die("out of memory (%zu bytes)", cap);
    b->p = p;
    b->cap = cap;
}

static size_t varint_put(uint8_t *d, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        d[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    d[n++] = (uint8_t)v;
    return n;
}

static void pb_varint(struct pb *b, uint64_t v)
{
    pb_need(b, 10);
    b->len += varint_put(b->p + b->len, v);
}

static void pb_key(struct pb *b, unsigned field, unsigned wire_type)
{
    pb_varint(b, (uint64_t)field << 3 | wire_type);
}

static void pb_uint(struct pb *b, unsigned field, uint64_t v)
{
    pb_key(b, field, 0);
    pb_varint(b, v);
}

static void pb_fixed64(struct pb *b, unsigned field, uint64_t v)
{
    pb_key(b, field, 1);
    pb_need(b, 8);
    for (int i = 0; i < 8; i++)
        b->p[b->len++] = (uint8_t)(v >> (8 * i));
}

static void pb_bytes(struct pb *b, unsigned field, const void *d, size_t n)
{
    pb_key(b, field, 2);
    pb_varint(b, n);
    pb_need(b, n);
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void pb_str(struct pb *b, unsigned field, const char *s)
{
    pb_bytes(b, field, s, strlen(s));
}

/* Starts an embedded message: reserves the largest length we allow (5 bytes)
 * and returns where it is, for pb_close(). */
static size_t pb_open(struct pb *b, unsigned field)
{
    pb_key(b, field, 2);
    pb_need(b, 5);
    size_t at = b->len;
    b->len += 5;
    return at;
}

/* Writes the real length and moves the contents down over the unused bytes. */
static void pb_close(struct pb *b, size_t at)
{
    size_t n = b->len - at - 5;
    uint8_t v[10];
    size_t k = varint_put(v, n);
    memcpy(b->p + at, v, k);
    memmove(b->p + at + k, b->p + at + 5, n);
    b->len = at + k + n;
}

/* KeyValue{key=1, value=2: AnyValue{...}}: kv_open() leaves the AnyValue open. */
static size_t kv_open(struct pb *b, unsigned field, const char *key, size_t *any)
{
    size_t kv = pb_open(b, field);
    pb_str(b, 1, key);
    *any = pb_open(b, 2);
    return kv;
}

static void kv_close(struct pb *b, size_t kv, size_t any)
{
    pb_close(b, any);
    pb_close(b, kv);
}

static void kv_str(struct pb *b, unsigned field, const char *key, const char *v)
{
    size_t any, kv = kv_open(b, field, key, &any);
    pb_str(b, 1, v); /* AnyValue.string_value */
    kv_close(b, kv, any);
}

static void kv_bool(struct pb *b, unsigned field, const char *key, bool v)
{
    size_t any, kv = kv_open(b, field, key, &any);
    pb_uint(b, 2, v); /* AnyValue.bool_value */
    kv_close(b, kv, any);
}

static void kv_int(struct pb *b, unsigned field, const char *key, int64_t v)
{
    size_t any, kv = kv_open(b, field, key, &any);
    pb_uint(b, 3, (uint64_t)v); /* AnyValue.int_value */
    kv_close(b, kv, any);
}

static void kv_double(struct pb *b, unsigned field, const char *key, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    size_t any, kv = kv_open(b, field, key, &any);
    pb_fixed64(b, 4, bits); /* AnyValue.double_value */
    kv_close(b, kv, any);
}

/* Resource{attributes=1} as field 1 of ResourceSpans / ResourceLogs. */
static void put_resource(struct pb *b)
{
    size_t r = pb_open(b, 1);
    kv_str(b, 1, "service.name", "bench-svc");
    kv_str(b, 1, "host.name", "bench-host");
    pb_close(b, r);
}

/* InstrumentationScope{name=1} as field 1 of ScopeSpans / ScopeLogs. */
static void put_scope(struct pb *b)
{
    size_t s = pb_open(b, 1);
    pb_str(b, 1, "bench");
    pb_close(b, s);
}

/* The fields of Span number |i|: about 310 bytes. */
static void put_span(struct pb *b, uint64_t i, uint64_t t0)
{
    uint8_t trace[16], span[8], parent[8];
    make_trace_id(trace, i);
    make_span_id(span, i, 1);
    make_span_id(parent, i, 2);
    uint64_t start = t0 + i * 1000;

    pb_bytes(b, 1, trace, 16);
    pb_bytes(b, 2, span, 8);
    pb_bytes(b, 4, parent, 8);
    pb_str(b, 5, "GET /api/v1/items/{id}");
    pb_uint(b, 6, 2); /* SPAN_KIND_SERVER */
    pb_fixed64(b, 7, start);
    pb_fixed64(b, 8, start + 1500000);
    kv_str(b, 9, "http.method", "GET");
    kv_str(b, 9, "http.route", "/api/v1/items/{id}");
    kv_int(b, 9, "http.status_code", 200);
    kv_str(b, 9, "net.peer.name", "10.0.0.12");
    kv_str(b, 9, "user_agent.original", "bench/1.0 (linux)");
    kv_int(b, 9, "bench.seqno", (int64_t)i);
    kv_bool(b, 9, "bench.sampled", true);
    kv_double(b, 9, "bench.ratio", 0.25);
    size_t st = pb_open(b, 15);
    pb_uint(b, 3, 1); /* Status.code = STATUS_CODE_OK */
    pb_close(b, st);
}

/* ---- zerolog-like lines -------------------------------------------------- */

/*
 * One line with its variable parts at known offsets: each line is a copy of
 * |text| with line_fill() patching the time's nanoseconds, the trace id and
 * the sequence number, so no line is formatted in the hot loop.
 */
struct line_tpl {
    char *text;
    size_t len;       /* bytes, newline included when asked for */
    size_t off_nanos; /* 9 digits */
    size_t off_trace; /* 32 hex digits */
    size_t off_seq;   /* seq_width digits */
    unsigned seq_width;
};

/* Builds a line of |target| bytes where it can (at least the fixed fields). */
static void line_tpl_init(struct line_tpl *t, uint64_t target, uint64_t max_seq, bool newline)
{
    static const char words[] = "request served path=/api/v1/items/123 status=200 "
                                "user_agent=bench/1.0 duration_ms=1.5 "
                                "lorem ipsum dolor sit amet consectetur adipiscing elit ";
    char date[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);

    t->seq_width = decimal_digits(max_seq);
    if (t->seq_width < 6)
        t->seq_width = 6;
    char head[160];
    int hl = snprintf(head, sizeof(head),
                      "{\"level\":\"info\",\"time\":\"%s.000000000Z\",\"trace_id\":\"", date);
    static const char mid[] = "\",\"message\":\"";
    static const char seq_key[] = "seq=";
    static const char tail[] = "\"}";
    size_t fixed = (size_t)hl + 32 + strlen(mid) + strlen(seq_key) + t->seq_width + strlen(tail) +
                   (newline ? 1 : 0);
    size_t room = target > fixed ? (size_t)(target - fixed) : 0;

    t->len = fixed + room;
    t->text = xmalloc(t->len + 1);
    char *p = t->text;
    memcpy(p, head, (size_t)hl);
    p += hl;
    t->off_trace = (size_t)(p - t->text);
    memset(p, '0', 32);
    p += 32;
    memcpy(p, mid, strlen(mid));
    p += strlen(mid);
    /* The message is the start of a plausible text, cut to fit exactly. */
    for (size_t i = 0; i < room; i++)
        *p++ = (i + 1 == room) ? ' ' : words[i % (sizeof(words) - 1)];
    memcpy(p, seq_key, strlen(seq_key));
    p += strlen(seq_key);
    t->off_seq = (size_t)(p - t->text);
    memset(p, '0', t->seq_width);
    p += t->seq_width;
    memcpy(p, tail, strlen(tail));
    p += strlen(tail);
    if (newline)
        *p++ = '\n';
    *p = '\0';
    /* off_nanos: the 9 digits after "HH:MM:SS." in the head. */
    t->off_nanos = (size_t)(strstr(t->text, ".000000000Z") - t->text) + 1;
}

/* Patches line |seq| into |dst|, which already holds a copy of the template. */
static void line_fill(const struct line_tpl *t, char *dst, uint64_t seq)
{
    uint8_t trace[16];
    make_trace_id(trace, seq);
    put_digits(dst + t->off_nanos + 9, 9, seq % 1000000000ull);
    put_hex(dst + t->off_trace, trace, 16);
    put_digits(dst + t->off_seq + t->seq_width, t->seq_width, seq);
}

/* The fields of LogRecord number |i|; its body is a line as in lines mode. */
static void put_log(struct pb *b, uint64_t i, uint64_t t0, const struct line_tpl *tpl, char *line)
{
    uint8_t trace[16], span[8];
    make_trace_id(trace, i);
    make_span_id(span, i, 1);
    memcpy(line, tpl->text, tpl->len);
    line_fill(tpl, line, i);
    uint64_t t = t0 + i * 1000;

    pb_fixed64(b, 1, t);
    pb_uint(b, 2, 9); /* SEVERITY_NUMBER_INFO */
    pb_str(b, 3, "INFO");
    size_t body = pb_open(b, 5);
    pb_bytes(b, 1, line, tpl->len);
    pb_close(b, body);
    kv_str(b, 6, "http.route", "/api/v1/items/{id}");
    kv_int(b, 6, "bench.seq", (int64_t)i);
    pb_bytes(b, 9, trace, 16);
    pb_bytes(b, 10, span, 8);
    pb_fixed64(b, 11, t + 250000);
}

/*
 * The fields of a Metric "http.server.requests" (a cumulative monotonic Sum)
 * with |k| data points of 8 attributes each, point i in series i: sent again
 * and again, the same k series are updated (a steady state).
 */
static void put_metric(struct pb *b, uint64_t k, uint64_t t0)
{
    pb_str(b, 1, "http.server.requests");
    pb_str(b, 2, "Requests served.");
    pb_str(b, 3, "{request}");
    size_t sum = pb_open(b, 7);
    static const char *const routes[] = {"/api/v1/items/{id}", "/api/v1/cart", "/healthz",
                                         "/api/v1/orders/{id}"};
    char shard[24];
    for (uint64_t i = 0; i < k; i++) {
        size_t dp = pb_open(b, 1); /* data_points */
        kv_str(b, 7, "http.request.method", i % 3 == 0 ? "POST" : "GET");
        kv_str(b, 7, "http.route", routes[i % 4]);
        kv_int(b, 7, "http.response.status_code", i % 5 == 0 ? 500 : 200);
        kv_str(b, 7, "server.address", "api.internal");
        kv_str(b, 7, "network.protocol.version", "1.1");
        kv_str(b, 7, "url.scheme", "http");
        kv_str(b, 7, "deployment.environment", "bench");
        snprintf(shard, sizeof(shard), "s%" PRIu64, i);
        kv_str(b, 7, "shard", shard);
        pb_fixed64(b, 2, t0 - 60000000000ull); /* start_time_unix_nano */
        pb_fixed64(b, 3, t0);                  /* time_unix_nano */
        pb_key(b, 6, 1);                       /* as_int (sfixed64) */
        pb_need(b, 8);
        for (int j = 0; j < 8; j++)
            b->p[b->len++] = (uint8_t)((1000 + i) >> (8 * j));
        pb_close(b, dp);
    }
    pb_uint(b, 2, 2); /* AGGREGATION_TEMPORALITY_CUMULATIVE */
    pb_uint(b, 3, 1); /* is_monotonic */
    pb_close(b, sum);
}

/*
 * Builds the Export request of |k| items into a buffer that starts with the
 * 5-byte gRPC message prefix: the gRPC body is the whole buffer, the HTTP
 * body starts 5 bytes in. The caller frees b->p.
 */
static void build_payload(struct pb *b, enum mode mode, uint64_t k, uint64_t line_bytes)
{
    bool logs = mode == MODE_GRPC_LOGS || mode == MODE_HTTP_LOGS;
    uint64_t t0 = wall_ns();
    pb_need(b, 5);
    b->len = 5;
    size_t r = pb_open(b, 1); /* resource_spans / resource_logs */
    put_resource(b);
    size_t s = pb_open(b, 2); /* scope_spans / scope_logs */
    put_scope(b);
    if (mode == MODE_GRPC_METRICS) {
        size_t mt = pb_open(b, 2); /* metrics */
        put_metric(b, k, t0);
        pb_close(b, mt);
    } else if (logs) {
        struct line_tpl tpl;
        line_tpl_init(&tpl, line_bytes, k - 1, false);
        char *line = xmalloc(tpl.len + 1);
        for (uint64_t i = 0; i < k; i++) {
            size_t rec = pb_open(b, 2); /* log_records */
            put_log(b, i, t0, &tpl, line);
            pb_close(b, rec);
        }
        free(line);
        free(tpl.text);
    } else {
        for (uint64_t i = 0; i < k; i++) {
            size_t sp = pb_open(b, 2); /* spans */
            put_span(b, i, t0);
            pb_close(b, sp);
        }
    }
    pb_close(b, s);
    pb_close(b, r);
    uint64_t n = b->len - 5;
    if (n > UINT32_MAX)
        die("request of %" PRIu64 " bytes is too large for gRPC", n);
    b->p[0] = 0; /* not compressed */
    b->p[1] = (uint8_t)(n >> 24);
    b->p[2] = (uint8_t)(n >> 16);
    b->p[3] = (uint8_t)(n >> 8);
    b->p[4] = (uint8_t)n;
}

/* Compresses the message after the 5-byte prefix (gzip wrapper, zlib's
 * default level, as SDKs send it) and sets the prefix's compressed flag. */
static void gzip_payload(struct pb *b)
{
    z_stream z = {0};
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        die("%s", "deflateInit2 failed");
    uLong bound = deflateBound(&z, (uLong)(b->len - 5));
    uint8_t *out = xmalloc(5 + bound);
    z.next_in = b->p + 5;
    z.avail_in = (uInt)(b->len - 5);
    z.next_out = out + 5;
    z.avail_out = (uInt)bound;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        die("%s", "deflate failed");
    uint64_t n = z.total_out;
    deflateEnd(&z);
    out[0] = 1; /* compressed */
    out[1] = (uint8_t)(n >> 24);
    out[2] = (uint8_t)(n >> 16);
    out[3] = (uint8_t)(n >> 8);
    out[4] = (uint8_t)n;
    free(b->p);
    b->p = out;
    b->len = 5 + n;
}

/* ---- targets ------------------------------------------------------------- */

struct target {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool tcp;
    char authority[256]; /* :authority / Host */
};

static void resolve_target(struct target *t, const char *spec, bool unix_only)
{
    memset(t, 0, sizeof(*t));
    const char *path = NULL;
    if (strncmp(spec, "unix://", 7) == 0)
        path = spec + 7;
    else if (unix_only || spec[0] == '/')
        path = spec;
    if (path != NULL) {
        struct sockaddr_un *un = (struct sockaddr_un *)&t->addr;
        if (path[0] == '\0' || strlen(path) >= sizeof(un->sun_path))
            die("bad unix socket path '%s'", path);
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, strlen(path) + 1);
        t->addrlen = (socklen_t)sizeof(*un);
        snprintf(t->authority, sizeof(t->authority), "localhost");
        return;
    }

    char host[256];
    const char *port;
    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - spec - 1) >= sizeof(host))
            die("bad target '%s' (want host:port, [v6]:port or unix:///path)", spec);
        memcpy(host, spec + 1, (size_t)(end - spec - 1));
        host[end - spec - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
            die("bad target '%s' (want host:port, [v6]:port or unix:///path)", spec);
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
        port = colon + 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        die("cannot resolve '%s': %s", spec, gai_strerror(rc));
    memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
    t->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    t->tcp = true;
    snprintf(t->authority, sizeof(t->authority), "%s", spec);
}

/* A connected socket (blocking connect: the targets are local), or -1 with
 * errno set. |nonblock| leaves it non-blocking. */
static int connect_target(const struct target *t, bool nonblock)
{
    int e, fd = socket(t->addr.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)&t->addr, t->addrlen) < 0)
        goto err_close;
#ifdef SO_NOSIGPIPE
    int one_nsp = 1;
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one_nsp, sizeof(one_nsp));
#endif
    if (t->tcp) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (nonblock) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            goto err_close;
    }
    return fd;
err_close:
    e = errno;
    close(fd);
    errno = e;
    return -1;
}

/* ---- request scheduling (grpc and http) ---------------------------------- */

/*
 * Which request to start next. A request is issued once, then attempted
 * until it is accepted or fails; a refused attempt waits RETRY_DELAY_NS in a
 * FIFO (constant delay, so due times are in order). At most |slots| requests
 * are outstanding (in flight or waiting to retry), which bounds the FIFO.
 */
struct sched {
    uint64_t n; /* requests to issue */
    uint64_t issued, accepted, failed;
    uint64_t refused; /* attempts */
    uint64_t slots;
    double rate;   /* new requests per second; 0: unpaced */
    uint64_t t0;   /* ns, monotonic: start of the run */
    uint64_t *due; /* ns, ring of |slots| */
    size_t head, count;
};

static void sched_init(struct sched *s, uint64_t n, uint64_t slots, double rate)
{
    memset(s, 0, sizeof(*s));
    s->n = n;
    s->slots = slots;
    s->rate = rate;
    s->due = xcalloc(slots, sizeof(*s->due));
    s->t0 = now_ns();
}

static uint64_t sched_outstanding(const struct sched *s)
{
    return s->issued - s->accepted - s->failed;
}

static bool sched_is_done(const struct sched *s)
{
    return s->accepted + s->failed >= s->n;
}

static uint64_t sched_next_new(const struct sched *s)
{
    return s->t0 + (uint64_t)((double)s->issued * 1e9 / s->rate);
}

/* True when an attempt may start at |now| (a due retry first, else a new
 * request); the caller then owns that attempt. */
static bool sched_take(struct sched *s, uint64_t now)
{
    if (s->count > 0 && s->due[s->head] <= now) {
        s->head = (s->head + 1) % s->slots;
        s->count--;
        return true;
    }
    if (s->issued >= s->n || sched_outstanding(s) >= s->slots)
        return false;
    if (s->rate > 0 && now < sched_next_new(s))
        return false;
    s->issued++;
    return true;
}

/* Puts an attempt that did not happen back, to start again after the delay. */
static void sched_retry_later(struct sched *s)
{
    s->due[(s->head + s->count) % s->slots] = now_ns() + RETRY_DELAY_NS;
    s->count++;
}

static void sched_refused(struct sched *s)
{
    s->refused++;
    sched_retry_later(s);
}

/* Every request not accepted yet, when no connection is left. */
static void sched_fail_rest(struct sched *s)
{
    s->failed = s->n - s->accepted;
    s->issued = s->n;
    s->count = 0;
}

/* poll() timeout in ms until sched_take() can succeed; -1: only I/O can help.
 * |can_start|: some connection has room for another request. */
static int sched_timeout(const struct sched *s, uint64_t now, bool can_start)
{
    if (!can_start)
        return -1;
    uint64_t next = UINT64_MAX;
    if (s->count > 0)
        next = s->due[s->head];
    if (s->rate > 0 && s->issued < s->n && sched_outstanding(s) < s->slots) {
        uint64_t t = sched_next_new(s);
        if (t < next)
            next = t;
    }
    if (next == UINT64_MAX)
        return -1;
    if (next <= now)
        return 0;
    uint64_t ms = (next - now + 999999) / 1000000;
    return ms > 1000 ? 1000 : (int)ms;
}

/* ---- gRPC over nghttp2 --------------------------------------------------- */

/*
 * Bytes waiting for the socket, in order: copies of nghttp2's frames (in a
 * fixed buffer, so segments may point into it) and references into the
 * shared payload. Reset whenever it drains completely.
 */
struct outq {
    uint8_t buf[OUTQ_BUF_BYTES];
    size_t buflen;
    struct iovec seg[OUTQ_SEGS];
    size_t head, nseg;
    size_t bytes; /* not yet written */
    bool blocked; /* nghttp2 was told to wait: call session_send again */
};

static bool outq_has_room(const struct outq *q, size_t copy, size_t segs)
{
    return q->buflen + copy <= sizeof(q->buf) && q->nseg + segs <= OUTQ_SEGS &&
           q->bytes < OUTQ_HIGH_BYTES;
}

static void outq_copy(struct outq *q, const uint8_t *d, size_t n)
{
    uint8_t *dst = q->buf + q->buflen;
    memcpy(dst, d, n);
    q->buflen += n;
    q->bytes += n;
    struct iovec *last = q->nseg > q->head ? &q->seg[q->nseg - 1] : NULL;
    if (last != NULL && (uint8_t *)last->iov_base + last->iov_len == dst) {
        last->iov_len += n;
        return;
    }
    q->seg[q->nseg++] = (struct iovec){.iov_base = dst, .iov_len = n};
}

static void outq_ref(struct outq *q, const uint8_t *d, size_t n)
{
    q->seg[q->nseg++] = (struct iovec){.iov_base = (void *)(uintptr_t)d, .iov_len = n};
    q->bytes += n;
}

/* 0: all written; 1: the socket is full; -1: error (errno). */
static int outq_flush(struct outq *q, int fd)
{
    while (q->head < q->nseg) {
        size_t n = q->nseg - q->head;
        ssize_t w = writev(fd, &q->seg[q->head], (int)(n > IOV_BATCH ? IOV_BATCH : n));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 1;
            return -1;
        }
        size_t left = (size_t)w;
        q->bytes -= left;
        while (left > 0) {
            struct iovec *s = &q->seg[q->head];
            if (left >= s->iov_len) {
                left -= s->iov_len;
                q->head++;
            } else {
                s->iov_base = (uint8_t *)s->iov_base + left;
                s->iov_len -= left;
                left = 0;
            }
        }
    }
    q->head = q->nseg = q->buflen = q->bytes = 0;
    return 0;
}

struct gen;

struct gslot {
    bool used;
    size_t read;     /* body bytes handed to nghttp2 */
    size_t sent;     /* body bytes queued for the socket */
    int grpc_status; /* -1: none seen */
};

struct gconn {
    struct gen *g;
    int fd; /* -1: gone for good */
    nghttp2_session *h2;
    struct gslot *slots;
    uint64_t inflight;
    bool goaway; /* the server will take no new streams */
    unsigned reconnects;
    struct outq q;
};

struct gen {
    struct opts o;
    struct target t;
    const uint8_t *body; /* gRPC body: prefix + message */
    size_t body_len;
    size_t msg_len; /* request_bytes */
    struct sched s;
    nghttp2_session_callbacks *cbs;
    nghttp2_nv nva[8];
    size_t nnv;
    /* http */
    char *head; /* request line and headers */
    size_t head_len;
    double seconds; /* from the first request to the last answer */
};

static h2_ssize h2_send_cb(nghttp2_session *h2, const uint8_t *data, size_t len, int flags,
                           void *user)
{
    struct gconn *c = user;
    /* An empty queue always takes a frame, which keeps nghttp2 moving. */
    if (c->q.nseg > 0 && !outq_has_room(&c->q, len, 1)) {
        c->q.blocked = true;
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    if (len > sizeof(c->q.buf) - c->q.buflen)
        len = sizeof(c->q.buf) - c->q.buflen; /* nghttp2 sends the rest later */
    outq_copy(&c->q, data, len);
    return (h2_ssize)len;
}

static int h2_send_data_cb(nghttp2_session *h2, nghttp2_frame *frame, const uint8_t *framehd,
                           size_t length, nghttp2_data_source *source, void *user)
{
    struct gconn *c = user;
    struct gslot *sl = source->ptr;
    if (!outq_has_room(&c->q, 9, 2)) {
        c->q.blocked = true;
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    /* Frames of a stream go out in the order they were read, so |sent|
     * is where this one starts. No padding: nothing selects any. */
    outq_copy(&c->q, framehd, 9);
    if (length > 0)
        outq_ref(&c->q, c->g->body + sl->sent, length);
    sl->sent += length;
    return 0;
}

static h2_ssize h2_read_cb(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t length,
                           uint32_t *flags, nghttp2_data_source *source, void *user)
{
    struct gconn *c = user;
    struct gslot *sl = source->ptr;
    size_t left = c->g->body_len - sl->read;
    size_t n = left < length ? left : length;
    sl->read += n;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (sl->read == c->g->body_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (h2_ssize)n;
}

static int parse_status(const uint8_t *v, size_t n)
{
    if (n == 0 || n > 3)
        return 999;
    int x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 999;
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

static int h2_header_cb(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *user)
{
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct gslot *sl = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (sl != NULL && namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
        sl->grpc_status = parse_status(value, valuelen);
    return 0;
}

static int h2_frame_recv_cb(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
    struct gconn *c = user;
    if (frame->hd.type == NGHTTP2_GOAWAY)
        c->goaway = true;
    return 0;
}

static int h2_stream_close_cb(nghttp2_session *h2, int32_t id, uint32_t error_code, void *user)
{
    struct gconn *c = user;
    struct gslot *sl = nghttp2_session_get_stream_user_data(h2, id);
    if (sl == NULL || !sl->used)
        return 0;
    struct sched *s = &c->g->s;
    int st = sl->grpc_status;
    if (st == 0)
        s->accepted++;
    else if (st == 14 || st == 8 || (st < 0 && error_code == NGHTTP2_REFUSED_STREAM))
        sched_refused(s);
    else
        s->failed++;
    sl->used = false;
    c->inflight--;
    return 0;
}

static void gen_init_h2(struct gen *g)
{
    if (nghttp2_session_callbacks_new(&g->cbs) != 0)
        die("out of memory");
    h2_callbacks_set_send(g->cbs, h2_send_cb);
    nghttp2_session_callbacks_set_send_data_callback(g->cbs, h2_send_data_cb);
    nghttp2_session_callbacks_set_on_header_callback(g->cbs, h2_header_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(g->cbs, h2_frame_recv_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(g->cbs, h2_stream_close_cb);

    const char *path =
        g->o.mode == MODE_GRPC_LOGS ? "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
        : g->o.mode == MODE_GRPC_METRICS
            ? "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
            : "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const char *nv[][2] = {
        {":method", "POST"},
        {":scheme", "http"},
        {":path", path},
        {":authority", g->t.authority},
        {"content-type", "application/grpc"},
        {"te", "trailers"},
        {"user-agent", "lookout-loadgen"},
        {"grpc-encoding", "gzip"}, /* only with --gzip: the last one */
    };
    g->nnv = sizeof(nv) / sizeof(nv[0]) - (g->o.gzip ? 0 : 1);
    for (size_t i = 0; i < g->nnv; i++)
        g->nva[i] = (nghttp2_nv){
            .name = (uint8_t *)(uintptr_t)nv[i][0],
            .value = (uint8_t *)(uintptr_t)nv[i][1],
            .namelen = strlen(nv[i][0]),
            .valuelen = strlen(nv[i][1]),
            .flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE,
        };
}

/* Connects and starts an HTTP/2 session; -1 with errno on failure. */
static int gconn_open(struct gconn *c)
{
    c->fd = connect_target(&c->g->t, true);
    if (c->fd < 0)
        return -1;
    if (nghttp2_session_client_new(&c->h2, c->g->cbs, c) != 0)
        die("out of memory");
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
    };
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    c->goaway = false;
    c->inflight = 0;
    c->q.head = c->q.nseg = c->q.buflen = c->q.bytes = 0;
    c->q.blocked = false;
    return 0;
}

static void gconn_close(struct gconn *c)
{
    nghttp2_session_del(c->h2);
    c->h2 = NULL;
    close(c->fd);
    c->fd = -1;
}

/* The connection is gone: its requests in flight fail (the server may or
 * may not have taken them); reconnect while there is work left. */
static void gconn_lost(struct gconn *c, const char *why)
{
    struct gen *g = c->g;
    if (c->inflight > 0)
        fprintf(stderr, "loadgen: connection lost (%s), %" PRIu64 " requests in flight failed\n",
                why, c->inflight);
    for (uint64_t i = 0; i < g->o.streams; i++) {
        if (c->slots[i].used) {
            c->slots[i].used = false;
            g->s.failed++;
        }
    }
    gconn_close(c);
    if (sched_is_done(&g->s) || c->reconnects >= MAX_RECONNECTS)
        return;
    c->reconnects++;
    if (gconn_open(c) < 0) {
        fprintf(stderr, "loadgen: reconnect failed: %s\n", strerror(errno));
        c->fd = -1;
    }
}

/* Starts the attempts the scheduler allows, up to S in flight. */
static void gconn_fill(struct gconn *c, uint64_t now)
{
    struct gen *g = c->g;
    while (!c->goaway && c->inflight < g->o.streams && sched_take(&g->s, now)) {
        struct gslot *sl = NULL;
        for (uint64_t i = 0; i < g->o.streams; i++)
            if (!c->slots[i].used) {
                sl = &c->slots[i];
                break;
            }
        *sl = (struct gslot){.used = true, .grpc_status = -1};
        h2_data_provider dp = {.source.ptr = sl, .read_callback = h2_read_cb};
        int32_t id = h2_submit_request(c->h2, NULL, g->nva, g->nnv, &dp, sl);
        if (id < 0) {
            /* Stream ids ran out or the session is ending: this attempt
             * goes back to wait, and the connection is replaced once idle. */
            sl->used = false;
            sched_retry_later(&g->s);
            c->goaway = true;
            return;
        }
        c->inflight++;
    }
}

/* Hands nghttp2's output to the socket until one of them has to wait. */
static int gconn_pump(struct gconn *c)
{
    for (;;) {
        c->q.blocked = false;
        int rv = nghttp2_session_send(c->h2);
        if (rv != 0) {
            errno = EPROTO;
            return -1;
        }
        int fr = outq_flush(&c->q, c->fd);
        if (fr != 0)
            return fr < 0 ? -1 : 0;
        if (!c->q.blocked)
            return 0;
    }
}

static int gconn_read(struct gconn *c)
{
    static uint8_t buf[64 << 10];
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n > 0) {
            h2_ssize r = h2_session_mem_recv(c->h2, buf, (size_t)n);
            if (r < 0) {
                errno = EPROTO;
                return -1;
            }
            continue;
        }
        if (n == 0) {
            errno = ECONNRESET;
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -1;
    }
    return 0;
}

static void run_grpc(struct gen *g)
{
    uint64_t nc = g->o.connections;
    struct gconn *conns = xcalloc(nc, sizeof(*conns));
    struct pollfd *pfd = xcalloc(nc, sizeof(*pfd));
    size_t *pidx = xcalloc(nc, sizeof(*pidx));
    gen_init_h2(g);
    for (uint64_t i = 0; i < nc; i++) {
        conns[i].g = g;
        conns[i].slots = xcalloc(g->o.streams, sizeof(struct gslot));
        if (gconn_open(&conns[i]) < 0)
            die("cannot connect to %s: %s", g->o.target, strerror(errno));
    }
    sched_init(&g->s, g->o.requests, nc * g->o.streams, g->o.rate);

    while (!sched_is_done(&g->s)) {
        uint64_t now = now_ns();
        size_t np = 0;
        bool can_start = false;
        for (uint64_t i = 0; i < nc; i++) {
            struct gconn *c = &conns[i];
            if (c->fd < 0)
                continue;
            if (c->goaway && c->inflight == 0) {
                gconn_lost(c, "server sent GOAWAY");
                if (c->fd < 0)
                    continue;
            }
            gconn_fill(c, now);
            if (gconn_pump(c) < 0) {
                gconn_lost(c, strerror(errno));
                if (c->fd < 0)
                    continue;
            }
            if (!c->goaway && c->inflight < g->o.streams)
                can_start = true;
            short ev = POLLIN;
            if (c->q.nseg > c->q.head)
                ev |= POLLOUT;
            pfd[np] = (struct pollfd){.fd = c->fd, .events = ev};
            pidx[np++] = i;
        }
        if (sched_is_done(&g->s))
            break;
        if (np == 0) {
            fprintf(stderr, "loadgen: no connection left\n");
            sched_fail_rest(&g->s);
            break;
        }
        int rc = poll(pfd, (nfds_t)np, sched_timeout(&g->s, now_ns(), can_start));
        if (rc < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        for (size_t k = 0; rc > 0 && k < np; k++) {
            struct gconn *c = &conns[pidx[k]];
            if ((pfd[k].revents & (POLLIN | POLLERR | POLLHUP)) && gconn_read(c) < 0) {
                gconn_lost(c, strerror(errno));
                continue;
            }
            if (c->fd >= 0 && !nghttp2_session_want_read(c->h2) &&
                !nghttp2_session_want_write(c->h2))
                gconn_lost(c, "session ended");
        }
    }
    g->seconds = (double)(now_ns() - g->s.t0) / 1e9;

    for (uint64_t i = 0; i < nc; i++) {
        struct gconn *c = &conns[i];
        if (c->fd >= 0) {
            nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
            (void)gconn_pump(c);
            gconn_close(c);
        }
        free(c->slots);
    }
    nghttp2_session_callbacks_del(g->cbs);
    free(pidx);
    free(pfd);
    free(conns);
}

/* ---- OTLP/HTTP ----------------------------------------------------------- */

enum hphase { PH_HEAD, PH_BODY, PH_CHUNK_SIZE, PH_CHUNK_DATA, PH_CHUNK_END, PH_TRAILER, PH_EOF };

struct hconn {
    int fd; /* -1: gone for good */
    unsigned reconnects;
    bool busy;   /* a request is out */
    size_t sent; /* of head + body */
    /* response */
    enum hphase phase;
    int status;
    bool close;    /* Connection: close */
    uint64_t left; /* body or chunk bytes to skip */
    char rbuf[16384];
    size_t rpos, rlen;
};

static size_t http_total(const struct gen *g)
{
    return g->head_len + g->msg_len;
}

static int hconn_write(struct hconn *c, const struct gen *g)
{
    const uint8_t *msg = g->body + 5;
    while (c->sent < http_total(g)) {
        struct iovec iov[2];
        int n = 0;
        if (c->sent < g->head_len) {
            iov[n++] =
                (struct iovec){.iov_base = g->head + c->sent, .iov_len = g->head_len - c->sent};
            iov[n++] = (struct iovec){.iov_base = (void *)(uintptr_t)msg, .iov_len = g->msg_len};
        } else {
            size_t off = c->sent - g->head_len;
            iov[n++] = (struct iovec){.iov_base = (void *)(uintptr_t)(msg + off),
                                      .iov_len = g->msg_len - off};
        }
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        c->sent += (size_t)w;
    }
    return 0;
}

/* A line in the read buffer ("\n"-terminated), or NULL when incomplete. */
static char *take_line(struct hconn *c, size_t *len)
{
    char *p = c->rbuf + c->rpos;
    char *nl = memchr(p, '\n', c->rlen - c->rpos);
    if (nl == NULL)
        return NULL;
    *len = (size_t)(nl - p);
    if (*len > 0 && p[*len - 1] == '\r')
        (*len)--;
    c->rpos = (size_t)(nl - c->rbuf) + 1;
    return p;
}

static bool header_is(const char *line, size_t len, const char *name, const char **val,
                      size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
        return false;
    const char *v = line + n + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *val = v;
    *vlen = (size_t)(end - v);
    return true;
}

static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= n; i++)
        if (strncasecmp(v + i, tok, tl) == 0)
            return true;
    return false;
}

/* Parses the status line and headers once they are all in; 1: done, 2: an
 * interim (1xx) answer was skipped, 0: need more, -1: malformed. */
static int parse_head(struct hconn *c)
{
    const char *p = c->rbuf + c->rpos;
    size_t avail = c->rlen - c->rpos;
    bool complete = false;
    for (size_t i = 0; i + 1 < avail && !complete; i++)
        complete = p[i] == '\n' &&
                   (p[i + 1] == '\n' || (p[i + 1] == '\r' && i + 2 < avail && p[i + 2] == '\n'));
    if (!complete)
        return 0;
    size_t len;
    char *line = take_line(c, &len);
    if (len < 12 || strncmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ')
        return -1;
    c->status = parse_status((const uint8_t *)line + 9, 3);
    if (c->status == 999)
        return -1;
    bool chunked = false, has_len = false;
    uint64_t clen = 0;
    c->close = line[7] == '0';
    while ((line = take_line(c, &len)) != NULL && len > 0) {
        const char *v;
        size_t vl;
        if (header_is(line, len, "content-length", &v, &vl)) {
            clen = 0;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return -1;
                clen = clen * 10 + (uint64_t)(v[i] - '0');
            }
            has_len = true;
        } else if (header_is(line, len, "transfer-encoding", &v, &vl)) {
            chunked = has_token(v, vl, "chunked");
        } else if (header_is(line, len, "connection", &v, &vl)) {
            if (has_token(v, vl, "close"))
                c->close = true;
            else if (has_token(v, vl, "keep-alive"))
                c->close = false;
        }
    }
    if (c->status >= 100 && c->status < 200)
        return 2; /* the real answer follows */
    if (chunked) {
        c->phase = PH_CHUNK_SIZE;
    } else if (has_len || c->status == 204 || c->status == 304) {
        c->left = clen;
        c->phase = PH_BODY;
    } else {
        c->phase = PH_EOF;
        c->close = true;
    }
    return 1;
}

/* Consumes what the read buffer holds; 1: the response is complete, 0: need
 * more, -1: malformed. */
static int hconn_parse(struct hconn *c)
{
    for (;;) {
        size_t avail = c->rlen - c->rpos, len;
        char *line;
        switch (c->phase) {
        case PH_HEAD: {
            int rc = parse_head(c);
            if (rc == 2)
                continue;
            if (rc <= 0)
                return rc;
            break;
        }
        case PH_BODY:
        case PH_CHUNK_DATA: {
            size_t n = avail < c->left ? avail : (size_t)c->left;
            c->rpos += n;
            c->left -= n;
            if (c->left > 0)
                return 0;
            if (c->phase == PH_BODY)
                return 1;
            c->phase = PH_CHUNK_END;
            break;
        }
        case PH_CHUNK_SIZE: {
            if ((line = take_line(c, &len)) == NULL)
                return 0;
            uint64_t n = 0;
            size_t i = 0;
            for (; i < len; i++) {
                char ch = line[i];
                int d = ch >= '0' && ch <= '9'   ? ch - '0'
                        : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                        : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                                 : -1;
                if (d < 0)
                    break;
                n = n * 16 + (uint64_t)d;
            }
            if (i == 0)
                return -1;
            c->left = n;
            c->phase = n == 0 ? PH_TRAILER : PH_CHUNK_DATA;
            break;
        }
        case PH_CHUNK_END:
            if ((line = take_line(c, &len)) == NULL)
                return 0;
            c->phase = PH_CHUNK_SIZE;
            break;
        case PH_TRAILER:
            if ((line = take_line(c, &len)) == NULL)
                return 0;
            if (len == 0)
                return 1;
            break;
        case PH_EOF:
            c->rpos = c->rlen;
            return 0;
        }
    }
}

static void hconn_outcome(struct sched *s, int status)
{
    if (status == 200)
        s->accepted++;
    else if (status == 429 || status == 503)
        sched_refused(s);
    else
        s->failed++;
}

static int hconn_open(struct hconn *c, const struct gen *g)
{
    c->fd = connect_target(&g->t, true);
    c->busy = false;
    c->rpos = c->rlen = 0;
    return c->fd < 0 ? -1 : 0;
}

/* Closes the connection; |answered|: its request (if any) got an answer
 * already. Reconnects while there is work left. */
static void hconn_reset(struct hconn *c, struct gen *g, bool answered, const char *why)
{
    if (c->busy && !answered) {
        fprintf(stderr, "loadgen: connection lost (%s), the request in flight failed\n", why);
        g->s.failed++;
    }
    close(c->fd);
    c->fd = -1;
    c->busy = false;
    if (sched_is_done(&g->s) || c->reconnects >= MAX_RECONNECTS)
        return;
    c->reconnects++;
    if (hconn_open(c, g) < 0)
        fprintf(stderr, "loadgen: reconnect failed: %s\n", strerror(errno));
}

/* Reads and parses; on a complete answer records it and frees the
 * connection for the next request. */
static void hconn_read(struct hconn *c, struct gen *g)
{
    for (;;) {
        if (c->rpos == c->rlen) {
            c->rpos = c->rlen = 0;
        } else if (c->rlen == sizeof(c->rbuf) && c->rpos > 0) {
            memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
            c->rlen -= c->rpos;
            c->rpos = 0;
        }
        if (c->rlen == sizeof(c->rbuf)) {
            hconn_reset(c, g, false, "response header too large");
            return;
        }
        ssize_t n = read(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            hconn_reset(c, g, false, strerror(errno));
            return;
        }
        if (n == 0) {
            bool ended = c->busy && c->phase == PH_EOF;
            if (ended)
                hconn_outcome(&g->s, c->status);
            hconn_reset(c, g, ended, "closed by the server");
            return;
        }
        c->rlen += (size_t)n;
        if (!c->busy) {
            hconn_reset(c, g, true, "unexpected bytes");
            return;
        }
        int rc = hconn_parse(c);
        if (rc < 0) {
            hconn_reset(c, g, false, "malformed response");
            return;
        }
        if (rc == 1) {
            hconn_outcome(&g->s, c->status);
            /* An answer before the whole request was sent leaves the
             * connection in an unknown state: start afresh. */
            if (c->close || c->sent < http_total(g) || c->rpos < c->rlen) {
                hconn_reset(c, g, true, "");
                return;
            }
            c->busy = false;
            c->rpos = c->rlen = 0;
            return;
        }
    }
}

static void run_http(struct gen *g)
{
    uint64_t nc = g->o.connections;
    struct hconn *conns = xcalloc(nc, sizeof(*conns));
    struct pollfd *pfd = xcalloc(nc, sizeof(*pfd));
    size_t *pidx = xcalloc(nc, sizeof(*pidx));
    const char *path = g->o.mode == MODE_HTTP_LOGS ? "/v1/logs" : "/v1/traces";
    char head[512];
    int hl = snprintf(head, sizeof(head),
                      "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: lookout-loadgen\r\n"
                      "Content-Type: application/x-protobuf\r\nContent-Length: %zu\r\n\r\n",
                      path, g->t.authority, g->msg_len);
    if (hl < 0 || (size_t)hl >= sizeof(head))
        die("request head too long");
    g->head = head;
    g->head_len = (size_t)hl;
    for (uint64_t i = 0; i < nc; i++)
        if (hconn_open(&conns[i], g) < 0)
            die("cannot connect to %s: %s", g->o.target, strerror(errno));
    sched_init(&g->s, g->o.requests, nc, g->o.rate);

    while (!sched_is_done(&g->s)) {
        uint64_t now = now_ns();
        size_t np = 0;
        bool can_start = false;
        for (uint64_t i = 0; i < nc; i++) {
            struct hconn *c = &conns[i];
            if (c->fd < 0)
                continue;
            if (!c->busy && sched_take(&g->s, now)) {
                c->busy = true;
                c->sent = 0;
                c->phase = PH_HEAD;
                c->status = 0;
                c->close = false;
            }
            if (c->busy && c->sent < http_total(g) && hconn_write(c, g) < 0) {
                hconn_reset(c, g, false, strerror(errno));
                if (c->fd < 0)
                    continue;
            }
            if (!c->busy)
                can_start = true;
            short ev = POLLIN;
            if (c->busy && c->sent < http_total(g))
                ev |= POLLOUT;
            pfd[np] = (struct pollfd){.fd = c->fd, .events = ev};
            pidx[np++] = i;
        }
        if (sched_is_done(&g->s))
            break;
        if (np == 0) {
            fprintf(stderr, "loadgen: no connection left\n");
            sched_fail_rest(&g->s);
            break;
        }
        int rc = poll(pfd, (nfds_t)np, sched_timeout(&g->s, now_ns(), can_start));
        if (rc < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        for (size_t k = 0; rc > 0 && k < np; k++)
            if (pfd[k].revents & (POLLIN | POLLERR | POLLHUP))
                hconn_read(&conns[pidx[k]], g);
    }
    g->seconds = (double)(now_ns() - g->s.t0) / 1e9;
    for (uint64_t i = 0; i < nc; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    free(pidx);
    free(pfd);
    free(conns);
}

/* ---- lines on a Unix stream socket ---------------------------------------- */

struct lines_result {
    uint64_t written, failed, bytes;
    size_t line_len;
    double seconds;
};

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void run_lines(const struct opts *o, const struct target *t, struct lines_result *r)
{
    uint64_t nc = o->connections, live = nc;
    int *fds = xcalloc(nc, sizeof(*fds));
    struct line_tpl tpl;
    line_tpl_init(&tpl, o->line_bytes, o->lines > 0 ? o->lines - 1 : 0, true);
    size_t per_chunk = LINES_CHUNK_BYTES / tpl.len;
    if (per_chunk == 0)
        per_chunk = 1;
    if (o->rate > 0) {
        /* About 100 writes a second keep the pace smooth. */
        double want = o->rate / 100;
        if (want < (double)per_chunk)
            per_chunk = want < 1 ? 1 : (size_t)want;
    }
    char *chunk = xmalloc(per_chunk * tpl.len);
    for (size_t i = 0; i < per_chunk; i++)
        memcpy(chunk + i * tpl.len, tpl.text, tpl.len);
    for (uint64_t i = 0; i < nc; i++) {
        fds[i] = connect_target(t, false);
        if (fds[i] < 0)
            die("cannot connect to %s: %s", o->target, strerror(errno));
    }
    memset(r, 0, sizeof(*r));
    r->line_len = tpl.len;

    uint64_t t0 = now_ns(), seq = 0, next = 0;
    while (seq < o->lines && live > 0) {
        size_t k = per_chunk;
        if (o->lines - seq < k)
            k = (size_t)(o->lines - seq);
        for (size_t i = 0; i < k; i++)
            line_fill(&tpl, chunk + i * tpl.len, seq + i);
        if (o->rate > 0)
            sleep_until(t0 + (uint64_t)((double)seq * 1e9 / o->rate));
        while (fds[next] < 0)
            next = (next + 1) % nc;
        if (write_all(fds[next], chunk, k * tpl.len) < 0) {
            fprintf(stderr, "loadgen: write: %s; %zu lines failed\n", strerror(errno), k);
            close(fds[next]);
            fds[next] = -1;
            live--;
            r->failed += k;
        } else {
            r->written += k;
            r->bytes += k * tpl.len;
        }
        seq += k;
        next = (next + 1) % nc;
    }
    r->failed += o->lines - seq;

    /* lookout closes a connection once it has read and queued everything
     * up to our end of stream: that is when the lines are in. */
    struct pollfd *pfd = xcalloc(nc, sizeof(*pfd));
    for (uint64_t i = 0; i < nc; i++) {
        pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        if (fds[i] >= 0)
            shutdown(fds[i], SHUT_WR);
    }
    uint64_t deadline = now_ns() + (uint64_t)LINES_DRAIN_MS * 1000000;
    while (live > 0) {
        uint64_t now = now_ns();
        if (now >= deadline) {
            fprintf(stderr, "loadgen: lookout did not close %" PRIu64 " connections\n", live);
            break;
        }
        int rc = poll(pfd, (nfds_t)nc, (int)((deadline - now) / 1000000 + 1));
        if (rc < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        for (uint64_t i = 0; rc > 0 && i < nc; i++) {
            if (pfd[i].fd < 0 || pfd[i].revents == 0)
                continue;
            char buf[512];
            ssize_t n = read(pfd[i].fd, buf, sizeof(buf));
            if (n > 0 || (n < 0 && errno == EINTR))
                continue;
            close(pfd[i].fd);
            pfd[i].fd = -1;
            fds[i] = -1;
            live--;
        }
    }
    r->seconds = (double)(now_ns() - t0) / 1e9;
    for (uint64_t i = 0; i < nc; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(pfd);
    free(chunk);
    free(tpl.text);
    free(fds);
}

/* ---- options and main ----------------------------------------------------- */

static void usage(FILE *f)
{
    fputs("usage: loadgen --mode grpc-traces|grpc-logs|grpc-metrics|http-traces|http-logs|lines\n"
          "               --target ADDR [--requests N] [--lines N] [--items K]\n"
          "               [--connections C] [--streams S] [--rate R] [--line-bytes B]\n"
          "  grpc-*: ADDR is host:port or unix:///path; http-*: host:port;\n"
          "  lines: /path/to/socket. Prints one JSON line of results.\n",
          f);
}

static void bad_usage(const char *fmt, const char *arg)
{
    fputs("loadgen: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    usage(stderr);
    exit(2);
}

static uint64_t parse_u64(const char *name, const char *s, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < min || v > max) {
        fprintf(stderr, "loadgen: %s must be an integer in %" PRIu64 "..%" PRIu64 "\n", name, min,
                max);
        exit(2);
    }
    return v;
}

static void parse_opts(struct opts *o, int argc, char **argv)
{
    bool has_mode = false;
    *o = (struct opts){.mode = MODE_LINES,
                       .requests = 200,
                       .lines = 200000,
                       .items = 512,
                       .connections = 2,
                       .streams = 4,
                       .line_bytes = 150};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0)
            bad_usage("unexpected argument '%s'", a);
        char name[32];
        const char *eq = strchr(a, '=');
        size_t nl = eq != NULL ? (size_t)(eq - a) : strlen(a);
        if (nl >= sizeof(name))
            bad_usage("unknown option '%s'", a);
        memcpy(name, a, nl);
        name[nl] = '\0';
        if (eq != NULL)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        else
            bad_usage("%s needs a value", a);

        if (strcmp(name, "--mode") == 0) {
            size_t m = 0;
            while (m < sizeof(mode_names) / sizeof(mode_names[0]) && strcmp(v, mode_names[m]) != 0)
                m++;
            if (m == sizeof(mode_names) / sizeof(mode_names[0]))
                bad_usage("unknown mode '%s'", v);
            o->mode = (enum mode)m;
            has_mode = true;
        } else if (strcmp(name, "--target") == 0) {
            o->target = v;
        } else if (strcmp(name, "--requests") == 0) {
            o->requests = parse_u64(name, v, 1, UINT64_C(1) << 40);
        } else if (strcmp(name, "--lines") == 0) {
            o->lines = parse_u64(name, v, 1, UINT64_C(1) << 40);
        } else if (strcmp(name, "--items") == 0) {
            o->items = parse_u64(name, v, 1, 200000);
        } else if (strcmp(name, "--connections") == 0) {
            o->connections = parse_u64(name, v, 1, 1000);
        } else if (strcmp(name, "--streams") == 0) {
            o->streams = parse_u64(name, v, 1, 100);
        } else if (strcmp(name, "--line-bytes") == 0) {
            o->line_bytes = parse_u64(name, v, 1, 1 << 20);
        } else if (strcmp(name, "--gzip") == 0) {
            o->gzip = strcmp(v, "0") != 0;
        } else if (strcmp(name, "--dump") == 0) {
            o->dump = v;
        } else if (strcmp(name, "--rate") == 0) {
            char *end;
            o->rate = strtod(v, &end);
            if (*end != '\0' || end == v || !(o->rate >= 0) || o->rate > 1e9)
                bad_usage("--rate must be a number >= 0, not '%s'", v);
        } else {
            bad_usage("unknown option '%s'", a);
        }
    }
    if (!has_mode)
        bad_usage("%s", "--mode is required");
    if (o->target == NULL && o->dump == NULL)
        bad_usage("%s", "--target is required");
}

int main(int argc, char **argv)
{
    struct opts o;
    parse_opts(&o, argc, argv);
    /* A peer that closes while we write must be an error code, not a signal. */
    signal(SIGPIPE, SIG_IGN);

    if (o.mode == MODE_LINES) {
        struct target t;
        struct lines_result r;
        resolve_target(&t, o.target, true);
        run_lines(&o, &t, &r);
        printf("{\"mode\":\"lines\",\"requests\":%" PRIu64 ",\"items\":%" PRIu64
               ",\"bytes\":%" PRIu64 ",\"refused\":0,\"failed\":%" PRIu64
               ",\"seconds\":%.4f,\"request_bytes\":%zu}\n",
               r.written, r.written, r.bytes, r.failed, r.seconds, r.line_len);
        return 0;
    }

    static struct gen g;
    g.o = o;
    struct pb payload = {0};
    build_payload(&payload, o.mode, o.items, o.line_bytes);
    if (o.gzip)
        gzip_payload(&payload);
    g.body = payload.p;
    g.body_len = payload.len;
    g.msg_len = payload.len - 5;
    if (o.dump != NULL) {
        FILE *f = fopen(o.dump, "wb");
        if (f == NULL || fwrite(payload.p, 1, payload.len, f) != payload.len ||
            fclose(f) != 0) {
            fprintf(stderr, "loadgen: cannot write %s\n", o.dump);
            return 1;
        }
        free(payload.p);
        return 0;
    }
    resolve_target(&g.t, o.target, false);

    if (o.mode == MODE_GRPC_TRACES || o.mode == MODE_GRPC_LOGS || o.mode == MODE_GRPC_METRICS)
        run_grpc(&g);
    else
        run_http(&g);

    const struct sched *s = &g.s;
    printf("{\"mode\":\"%s\",\"requests\":%" PRIu64 ",\"items\":%" PRIu64 ",\"bytes\":%" PRIu64
           ",\"refused\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"seconds\":%.4f"
           ",\"request_bytes\":%zu}\n",
           mode_names[o.mode], s->accepted, s->accepted * o.items,
           s->accepted * (uint64_t)g.msg_len, s->refused, s->failed, g.seconds, g.msg_len);
    free(s->due);
    free(payload.p);
    return 0;
}
