/* Configuration: YAML file -> validated lk_config. Nothing here touches sockets. */
#ifndef LK_CONFIG_CONFIG_H
#define LK_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"

enum lk_signal { LK_SIGNAL_TRACES, LK_SIGNAL_METRICS, LK_SIGNAL_LOGS, LK_SIGNAL_COUNT };

/* What a full queue does to new data. */
enum lk_overflow { LK_OVERFLOW_REFUSE, LK_OVERFLOW_DROP };

/* auto: none to a loopback or Unix-socket endpoint, gzip otherwise
 * (lk_exporter_compression decides). */
enum lk_compression {
    LK_COMPRESSION_NONE,
    LK_COMPRESSION_GZIP,
    LK_COMPRESSION_AUTO,
    LK_COMPRESSION_ZSTD, /* otlphttp only */
};

/* Body of a Loki push (see exporters/loki_encode.h). */
enum lk_loki_body { LK_LOKI_BODY_PROTOBUF, LK_LOKI_BODY_JSON };

struct lk_header {
    char *name;
    char *value;
};

struct lk_tls_config {
    bool enabled;              /* false: plaintext */
    bool insecure_skip_verify; /* not supported by the gRPC client; rejected there */
    char *ca_file;             /* NULL: system roots */
    char *cert_file;           /* client certificate (mTLS), with key_file */
    char *key_file;
};

/* receivers: otlp: protocols: grpc: */
struct lk_grpc_receiver_config {
    bool enabled;
    char *endpoint;                  /* "host:port" or "unix:///path" */
    uint64_t max_recv_msg_size;      /* bytes, after decompression */
    uint32_t max_concurrent_streams; /* per connection */
    uint32_t max_connections;
    uint64_t idle_timeout_ms;        /* connection with no open stream */
    uint64_t handshake_timeout_ms;   /* accept to the first HEADERS; 0: never */
};

/* receivers: otlp: protocols: http: (OTLP/HTTP, protobuf and JSON) */
struct lk_http_receiver_config {
    bool enabled;
    char *endpoint;                 /* "host:port" or "unix:///path" */
    uint64_t max_request_body_size; /* bytes, on the wire and after decompression */
    uint32_t max_connections;
    uint64_t max_header_bytes;      /* request line plus headers */
    uint64_t idle_timeout_ms;       /* keep-alive connection with no request */
    uint64_t read_timeout_ms;       /* a whole request (headers and body) must arrive within */
    uint64_t handshake_timeout_ms;  /* accept to the first request's headers */
};

/* How a line receiver reads each line (see receivers/lineparse.h). */
enum lk_lines_format { LK_LINES_AUTO, LK_LINES_JSON, LK_LINES_LOGFMT, LK_LINES_RAW };

/* What a line receiver does when the logs pipeline refuses its lines. */
enum lk_lines_overflow {
    LK_LINES_BLOCK, /* stop reading the socket until there is room again */
    LK_LINES_DROP,  /* drop the lines, counted */
};

/* receivers: lines: (log lines on one Unix socket) */
struct lk_lines_receiver_config {
    char *path;          /* socket file */
    bool datagram;       /* SOCK_DGRAM, one line per datagram; else a stream */
    uint32_t mode;       /* permission bits of the socket file */
    char *owner;         /* user name or uid to chown to; NULL: leave */
    char *group;         /* group name or gid; NULL: leave */
    enum lk_lines_format format;
    char *service_name;  /* when a line names none; NULL: the peer's process name */
    struct lk_header *labels; /* static labels of every line (name, value) */
    size_t nlabels;
    uint64_t max_line_bytes; /* longer lines are truncated */
    uint32_t max_connections;
    enum lk_lines_overflow overflow;
    uint64_t idle_timeout_ms; /* stream writer silent while holding a partial line; 0: never */
};

enum lk_receiver_type {
    LK_RECEIVER_OTLP,  /* "otlp" or "otlp/<suffix>" */
    LK_RECEIVER_LINES, /* "lines" or "lines/<suffix>" */
};

struct lk_receiver_config {
    char *name;
    enum lk_receiver_type type;
    struct lk_grpc_receiver_config grpc;   /* otlp */
    struct lk_http_receiver_config http;   /* otlp */
    struct lk_lines_receiver_config lines; /* lines */
};

struct lk_retry_config {
    bool enabled;
    uint64_t initial_interval_ms;
    uint64_t max_interval_ms;
    uint64_t max_elapsed_time_ms; /* 0: retry forever */
    double multiplier;
    double randomization_factor;  /* 0..1 */
};

struct lk_queue_config {
    uint64_t queue_size;      /* items (spans, points, records) held, in flight included */
    uint64_t max_bytes;       /* bytes held, in flight included */
    enum lk_overflow overflow;
};

struct lk_batch_config {
    uint32_t send_batch_size;     /* items */
    uint64_t send_batch_max_bytes;
    uint64_t timeout_ms;
};

enum lk_exporter_type {
    LK_EXPORTER_OTLP,     /* OTLP over gRPC: "otlp" or "otlp/<suffix>" */
    LK_EXPORTER_OTLPHTTP, /* OTLP over HTTP (protobuf): "otlphttp" or "otlphttp/<suffix>" */
    LK_EXPORTER_LOKI,     /* Loki push API: "loki" or "loki/<suffix>" */
    LK_EXPORTER_PROMETHEUS, /* series on the admin /metrics: "prometheus[/<suffix>]" */
    LK_EXPORTER_PROMETHEUSREMOTEWRITE, /* remote write 1.0: "prometheusremotewrite[/<suffix>]" */
};

/* Who an HTTP exporter says it is (loki, prometheusremotewrite). */
struct lk_http_auth_config {
    char *tenant_id;    /* X-Scope-OrgID; NULL: none */
    char *username;     /* basic auth, with password; NULL: none */
    char *password;
    char *bearer_token; /* NULL: none */
};

/* prometheus and prometheusremotewrite (the translation of OTLP metrics) */
struct lk_prometheus_config {
    bool add_metric_suffixes;            /* unit suffixes and _total */
    char **promote_resource_attributes;  /* resource attribute keys put on every series */
    size_t npromote;
    uint64_t metric_expiration_ms;       /* series not updated for this long go; 0: never */
    uint64_t max_series;                 /* new series beyond are dropped; 0: no limit */
};

/* Whether a Loki exporter sends structured metadata: auto sends it and stops
 * (for the exporter's life) when Loki answers that it does not accept it. */
enum lk_loki_md { LK_LOKI_MD_AUTO, LK_LOKI_MD_ON, LK_LOKI_MD_OFF };

/* loki only */
struct lk_loki_config {
    enum lk_loki_body format;
    char **labels;      /* label names indexed as stream labels */
    size_t nlabels;
    enum lk_loki_md structured_metadata;
    uint32_t md_max_entries; /* pairs per entry; 0: no limit */
    uint64_t md_max_bytes;   /* bytes of names and values per entry; 0: no limit */
};

struct lk_exporter_config {
    char *name;     /* "<type>" or "<type>/<suffix>", unique */
    enum lk_exporter_type type;
    char *endpoint; /* otlp: "host:port"; otlphttp: base URL "http[s]://host:port[/prefix]";
                       loki: the full push URL; prometheusremotewrite: the write URL;
                       prometheus: its own listener "host:port" or NULL */
    /* otlphttp only: full URLs per signal; NULL means endpoint + "/v1/traces" etc. */
    char *signal_endpoints[LK_SIGNAL_COUNT];
    uint64_t timeout_ms;
    struct lk_header *headers;
    size_t nheaders;
    enum lk_compression compression;
    uint32_t compression_level; /* of the compression lookout does itself: gzip 1..9,
                                   zstd 1..19 (core/compress.h) */
    struct lk_tls_config tls;
    struct lk_retry_config retry;
    struct lk_queue_config queue;
    struct lk_batch_config batch;
    uint32_t max_concurrency; /* requests in flight */
    struct lk_http_auth_config auth; /* loki, prometheusremotewrite */
    struct lk_loki_config loki;
    struct lk_prometheus_config prometheus;
};

struct lk_pipeline_config {
    enum lk_signal signal;
    char **receivers; /* names, each defined under receivers: */
    size_t nreceivers;
    char **exporters; /* names, each defined under exporters: */
    size_t nexporters;
};

struct lk_admin_config {
    char *endpoint; /* "host:port" */
};

/* storage: the disk spool (storage/spool.h); path NULL: memory only. */
struct lk_storage_config {
    char *path;                  /* the SQLite file */
    uint64_t max_bytes;          /* payload bytes held on disk */
    bool durable;                /* acknowledge only after the commit */
    uint64_t commit_interval_ms; /* 0: the next commit as soon as the last one ended */
};

typedef struct lk_config {
    char *path;
    enum lk_log_level log_level;
    uint64_t shutdown_timeout_ms;
    bool watch_config; /* reload when the file changes */
    uint64_t memory_limit; /* bytes; core/membudget.h */
    struct lk_admin_config admin;
    struct lk_storage_config storage;
    struct lk_receiver_config *receivers;
    size_t nreceivers;
    struct lk_exporter_config *exporters;
    size_t nexporters;
    struct lk_pipeline_config *pipelines; /* at most one per signal */
    size_t npipelines;
} lk_config;

/*
 * Loads and validates |path|. On success returns 0 and sets |*out| (free with
 * lk_config_destroy). On failure returns LK_ECONFIG (or LK_ENOMEM / LK_EIO) and,
 * when |errors| is non-NULL, sets it to a malloc'd text with one line per
 * problem, each "file:line:column: message" (caller frees).
 */
int lk_config_load(const char *path, lk_config **out, char **errors);
/* Same, from a buffer; |name| is used as the file name in messages. */
int lk_config_parse(const char *name, const char *text, size_t len,
                    lk_config **out, char **errors);
void lk_config_destroy(lk_config *c);

/*
 * Reads only `admin.endpoint` of |path| (with ${VAR} expanded; the default
 * when absent), for tools that ask a running agent: the rest of the file is
 * not validated, so a file the agent would refuse, or that names secrets only
 * the service's environment has, still says where its admin listener is.
 * Returns 0 and a malloc'd |*endpoint|, or LK_ECONFIG / LK_EIO / LK_ENOMEM
 * with |*errors| as for lk_config_load.
 */
int lk_config_load_admin_endpoint(const char *path, char **endpoint, char **errors);
/* admin.endpoint when the file does not say. */
#define LK_CONFIG_ADMIN_DEFAULT "127.0.0.1:9464"

const char *lk_signal_name(enum lk_signal s); /* "traces", "metrics", "logs" */

/* How an exporter compresses its requests (NONE, GZIP or ZSTD): its
 * compression, with auto resolved by its endpoint (a loopback address,
 * "localhost" or a Unix socket: none; anything else: gzip, which every
 * OTLP receiver takes). Logs what auto chose. */
enum lk_compression lk_exporter_compression(const struct lk_exporter_config *e);
/* Whether that is gzip. */
bool lk_exporter_gzip(const struct lk_exporter_config *e);
/* Whether |endpoint| ("host:port", a URL or "unix:...") is on this machine
 * by its spelling: loopback addresses, "localhost", Unix sockets. */
bool lk_endpoint_is_local(const char *endpoint);

/* Whether two sections say the same (config/compare.c), for a reload. */
bool lk_exporter_config_equal(const struct lk_exporter_config *a,
                              const struct lk_exporter_config *b);
bool lk_storage_config_equal(const struct lk_storage_config *a,
                             const struct lk_storage_config *b);
bool lk_lines_receiver_config_equal(const struct lk_lines_receiver_config *a,
                                    const struct lk_lines_receiver_config *b);

#endif
