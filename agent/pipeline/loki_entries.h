/*
 * LK_FORM_LOKI_ENTRIES: log lines already encoded as Loki entries.
 *
 * The line receiver makes items of this form when every exporter of its logs
 * pipeline is a Loki exporter that can take them (lk_pipeline_accepts), so
 * that a line is turned into a Loki entry once, while it is hot, and a batch
 * becomes a push body by copying rather than by walking OTLP records. What
 * depends on an exporter's config (stream labels, the structured metadata of
 * resource attributes) stays as OTLP resource attributes, resolved when the
 * batch is encoded; the Loki encoder turns an item back into OTLP logs when
 * its config cannot take the entries as they are (JSON bodies, a `level`
 * label), so a reload never strands one.
 *
 * Layout (varints as protobuf's; little-endian fixed-size fields):
 *
 *   item    := run*
 *   run     := varint res_len, res_len bytes of an OTLP Resource message
 *              (its attributes), 4 bytes: n_entries, 4 bytes: entries_len,
 *              entries_len bytes of n_entries entries (the counts are
 *              fixed-size so that entries can be written behind them as
 *              they come and the counts filled in when the run ends)
 *   entry   := 8 bytes: time in ns since the epoch, 1 byte: OTLP
 *              SeverityNumber (0: none), varint core_len, core_len bytes of
 *              a logproto EntryAdapter message: timestamp (1), line (2) when
 *              not empty, then structuredMetadata (3) `level`, `trace_id`,
 *              `span_id` when the line had them, in that order
 *
 * The producer writes exactly this and only valid UTF-8 in the line and
 * metadata; a reader still checks every length against its bounds.
 */
#ifndef LK_PIPELINE_LOKI_ENTRIES_H
#define LK_PIPELINE_LOKI_ENTRIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Bytes of an entry before its core_len. */
#define LK_LOKI_ENTRY_HEAD 9

/* What an entry is made of. */
struct lk_loki_entry_fields {
    uint64_t ts;             /* ns since the epoch */
    int severity_number;     /* 1..24, or 0 */
    const uint8_t *line;     /* valid UTF-8 */
    size_t line_len;
    const char *level;       /* the `level` metadata value (valid UTF-8) */
    size_t level_len;        /* 0: none */
    const uint8_t *trace_id; /* 16 bytes, not all zero, or NULL */
    const uint8_t *span_id;  /* 8 bytes, not all zero, or NULL */
};

/* Appends one entry to |out| (the entries of a run being built). 0 or
 * LK_ENOMEM / LK_E2BIG from |out|. */
int lk_loki_entry_append(lk_buf *out, const struct lk_loki_entry_fields *f);
/* Starts a run of the resource |res| (|res_len| bytes) at the end of |out|;
 * its entries are then appended with lk_loki_entry_append, and
 * lk_loki_run_close(out, *at, n) ends it (until then it reads as empty). */
int lk_loki_run_open(lk_buf *out, const uint8_t *res, size_t res_len, size_t *at);
void lk_loki_run_close(lk_buf *out, size_t at, uint32_t nents);

struct lk_loki_run {
    const uint8_t *res, *ents;
    size_t res_len, ents_len;
    uint64_t nents;
};

struct lk_loki_entry {
    uint64_t ts;
    int severity_number; /* 0 when out of 1..24 */
    const uint8_t *core;
    size_t core_len;
};

/* Read the run / entry at *|p| (before |end|) and move past it: 0, or
 * LK_EPROTO when a length runs past |end| or an entry's core is empty. */
int lk_loki_run_next(const uint8_t **p, const uint8_t *end, struct lk_loki_run *run);
int lk_loki_entry_next(const uint8_t **p, const uint8_t *end, struct lk_loki_entry *en);

/*
 * Appends to |out| the ExportLogsServiceRequest the OTLP form of the same
 * lines has (per run a ResourceLogs of its resource; per entry a LogRecord
 * with time_unix_nano, severity_number, the level as severity_text, the line
 * as a string body, trace_id and span_id), for whatever cannot take entries
 * as they are. |scratch| is overwritten. 0, LK_EPROTO, LK_ENOMEM.
 */
int lk_loki_entries_to_otlp(const uint8_t *data, size_t len, lk_buf *out, lk_buf *scratch);

#endif
