/*
 * OTLP logs -> Loki push body (the pure encoder of the Loki exporter).
 *
 * The input is a batch of ExportLogsServiceRequest bodies as the receivers
 * queue them (validated protobuf bytes); they are walked by hand, never
 * decoded into structs. The output is one logproto.PushRequest (protobuf,
 * uncompressed: the caller snappy-compresses it) or one Loki JSON push body.
 * The mapping from records to streams, entries and structured metadata is
 * the one of the logs spec ("OTLP log record -> Loki entry"); choices it
 * leaves open are listed in loki_encode.c.
 */
#ifndef LK_EXPORTERS_LOKI_ENCODE_H
#define LK_EXPORTERS_LOKI_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/buf.h"

/* Loki's default limit of labels per stream; labels past it are left out. */
#define LK_LOKI_MAX_LABELS 15

enum lk_loki_format { LK_LOKI_PROTOBUF, LK_LOKI_JSON };

struct lk_loki_encode_opts {
    enum lk_loki_format format;
    const char *const *labels; /* Loki label names to index, e.g. "service_name";
                                  "level" means the normalised level */
    size_t nlabels;
    const char *host;          /* default for the host label; NULL: omit */
    uint64_t now_ns;           /* ns since the epoch, for records with neither
                                  time_unix_nano nor observed_time_unix_nano */
    /* Structured metadata (all zero: sent, no limits). */
    bool no_metadata;          /* none sent: level, trace_id and span_id go into
                                  the line instead (lk_loki_line_with_fields) */
    uint32_t md_max_entries;   /* pairs per entry at most; 0: no limit */
    uint64_t md_max_bytes;     /* name + value bytes per entry at most (as
                                  Loki measures them); 0: no limit */
};

/* Loki's defaults of max_structured_metadata_entries_count and
 * max_structured_metadata_size (64 KB as Loki reads "64KB": 65536). */
#define LK_LOKI_MD_MAX_ENTRIES 128
#define LK_LOKI_MD_MAX_BYTES 65536

/* Reusable scratch (hash table, arrays) so that a steady stream of batches
 * allocates nothing new. One encoder serves one call at a time. */
struct lk_loki_encoder;

/* Returns 0 or LK_ENOMEM. */
int lk_loki_encoder_create(struct lk_loki_encoder **out);
/* NULL-safe. */
void lk_loki_encoder_destroy(struct lk_loki_encoder *e);

/*
 * Encodes every log record of the |n| ExportLogsServiceRequest bodies at
 * |iov| into one uncompressed push body appended to |out| (all records of all
 * bodies share one set of streams). Sets *records (entries written) and
 * *streams. String fields of the input are taken to be valid UTF-8 (the
 * receivers validate them): they are copied as they are into protobuf output;
 * JSON output repairs invalid bytes to U+FFFD.
 *
 * Returns 0, LK_EPROTO (malformed input: bad varint, length past the end of
 * its message, wrong wire type for a field the encoder reads, groups, AnyValue
 * arrays / kvlists nested more than 64 deep), LK_ENOMEM, LK_E2BIG (|out|'s
 * cap, or 2^32 - 1 records or streams), LK_EINVAL (NULL |o->labels| with
 * |o->nlabels| > 0, NULL iov_base with a length). On failure |out| may hold
 * part of a body, which the caller discards. The input is only read and not
 * referenced after the call.
 */
int lk_loki_encode(struct lk_loki_encoder *e,
                   const struct lk_loki_encode_opts *o,
                   const struct iovec *iov, size_t n, lk_buf *out,
                   uint64_t *records, uint64_t *streams);

/*
 * As lk_loki_encode, with |forms| (NULL: every body is LK_FORM_OTLP) giving
 * each body's enum lk_item_form: LK_FORM_LOKI_ENTRIES bodies
 * (pipeline/loki_entries.h) are copied in as they are when
 * lk_loki_takes_entries(|o|), and otherwise first turned back into the OTLP
 * logs they stand for; either way the push body is the one the OTLP form of
 * the same lines gives.
 */
int lk_loki_encode_forms(struct lk_loki_encoder *e,
                         const struct lk_loki_encode_opts *o,
                         const struct iovec *iov, const uint8_t *forms, size_t n,
                         lk_buf *out, uint64_t *records, uint64_t *streams);

/*
 * Structured metadata pairs the last encode call left out to keep each entry
 * within |o->md_max_entries| (*by_entries) and |o->md_max_bytes| (*by_size).
 * A pair is kept, in order, when both limits leave room for it; one that
 * does not fit is cut (later, smaller ones may still fit). The size of a
 * pair is its name's bytes plus its value's (Loki's
 * util.StructuredMetadataSize; lookout counts `level` too, as Loki before
 * 3.x did, so what it sends passes either way).
 */
void lk_loki_encoder_cuts(const struct lk_loki_encoder *e, uint64_t *by_entries,
                          uint64_t *by_size);

/*
 * The line an entry carries when it is sent without structured metadata:
 * |line| (|len| bytes) with the |n| pairs |names|[i] = |values|[i] (lengths
 * in |vlens|) that it lacks put into it. A JSON object line (first and last
 * non-blank bytes `{` `}`, top level well-formed) gets each key it does not
 * have at its top level added before its closing brace, as a JSON string;
 * any other line gets ` name=value` appended for each key it has no
 * `name=` token of (logfmt; the value in double quotes, `\` and `"`
 * escaped, when it is empty or holds a blank, `=` or `"`). Appends the
 * result to |out| and returns 0, or LK_ENOMEM / LK_E2BIG from |out|; sets
 * *changed to whether anything was added (when not, nothing is appended).
 */
int lk_loki_line_with_fields(lk_buf *out, const uint8_t *line, size_t len,
                             const char *const *names, const uint8_t *const *values,
                             const size_t *vlens, size_t n, bool *changed);

/* Whether entries items go into a push body made with |o| as they are:
 * protobuf bodies, no `level` label. */
bool lk_loki_takes_entries(const struct lk_loki_encode_opts *o);

/*
 * OTLP attribute key (|n| bytes at |key|) -> Loki label / structured metadata
 * name: service.name -> service_name, service.namespace -> service_namespace,
 * deployment.environment and deployment.environment.name ->
 * deployment_environment, host.name -> host, lookout.source -> source; any
 * other key has every byte outside [A-Za-z0-9_] replaced by '_' and a '_'
 * put before a leading digit. Writes at most |outlen| - 1 bytes and a NUL
 * (nothing when |outlen| is 0). Returns the length of the whole name, which
 * is >= |outlen| when it was cut short (as snprintf does).
 */
size_t lk_loki_name(const char *key, size_t n, char *out, size_t outlen);

#endif
