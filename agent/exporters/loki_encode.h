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
};

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
