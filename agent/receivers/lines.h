/* Line receiver: log lines written by local processes to a Unix socket
 * (stream: newline-framed; datagram: one line each), turned into OTLP logs
 * items for the logs pipeline. A stream writer that stops inside a line for
 * cfg->idle_timeout_ms (0: never) is closed and its partial line taken as a
 * line; writers silent between lines stay connected. With storage.durable
 * (lk_pipeline_durable) a connection, or the datagram socket, is read again
 * only once what it gave is committed (pipeline/ack.h); lines whose commit
 * failed are dropped, counted (reason "spool_write_failed"). */
#ifndef LK_RECEIVERS_LINES_H
#define LK_RECEIVERS_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/platform.h"
#include "core/selfmetrics.h"
#include "pipeline/pipeline.h"
#include "receivers/lineparse.h"

typedef struct lk_lines lk_lines;

/*
 * Creates the socket file |cfg->path| (replacing a stale one) with
 * |cfg->mode|, owner and group, and starts reading. Every chunk of lines read
 * becomes one ExportLogsServiceRequest item offered to |logs| (borrowed, must
 * outlive the receiver). |name| and |cfg| are copied. Returns 0, LK_ENOMEM,
 * LK_EINVAL (unknown owner or group) or LK_ESYS (socket, bind, chown or
 * listen failed; logged).
 */
int lk_lines_start(lk_lines **out, uv_loop_t *loop, const char *name,
                   const struct lk_lines_receiver_config *cfg, lk_pipeline *logs,
                   lk_metrics *m);

/*
 * Stops accepting and removes the socket file. What each open connection
 * holds goes into the pipeline, past the queues' caps (the shutdown drain
 * sends it): items it had refused, what the writer already wrote into the
 * socket buffer (read without blocking, up to 16 MiB per connection) and a
 * partial last line. Then the connections are closed. |done| runs on the
 * loop once every handle is closed.
 */
/* The logs pipeline from now on, or the same one with other queues (a
 * reload): the size of the items made follows its queues. */
void lk_lines_set_pipeline(lk_lines *r, lk_pipeline *logs);
void lk_lines_close(lk_lines *r, void (*done)(void *arg), void *arg);

/* ---- exposed for tests: framing a byte stream into lines ---- */

/*
 * Splits a stream at "\n" (a "\r" before it is dropped too). A line longer
 * than |max_line| bytes is cut to at most that many (never inside a UTF-8
 * sequence) and the rest of it, up to its newline, is skipped. Empty lines
 * are skipped. Holds at most |max_line| + 1 bytes of an unfinished line (a
 * |max_line| line and its "\r" may wait for the "\n"), in a buffer of at
 * most max(|max_line| + 2, 64 KiB) bytes.
 */
struct lk_line_framer {
    uint8_t *buf; /* bytes after the last complete line */
    size_t len, cap, limit;
    uint64_t max_line;
    bool discarding; /* inside the cut-off tail of an over-long line */
};

/* |line| is valid during the call only; |truncated| when it was cut. */
typedef void (*lk_line_cb)(void *arg, const uint8_t *line, size_t len, bool truncated);

void lk_line_framer_init(struct lk_line_framer *f, uint64_t max_line);
void lk_line_framer_fini(struct lk_line_framer *f);
/* Where the next read may write: |*n| > 0 bytes at |*p|. LK_ENOMEM. */
int lk_line_framer_space(struct lk_line_framer *f, uint8_t **p, size_t *n);
/* Takes |n| bytes just written at the space and calls |cb| for each line
 * they complete; |at_end| (EOF) flushes a partial last line too. */
void lk_line_framer_commit(struct lk_line_framer *f, size_t n, bool at_end,
                           lk_line_cb cb, void *arg);

/* ---- exposed for tests: the encoding of lines into an OTLP request ---- */

/* Where a run of lines came from: becomes the Resource of their ResourceLogs. */
struct lk_lines_origin {
    struct lk_peer_cred cred; /* pid -1: unknown */
    const char *process_name; /* "" when unknown */
};

/* Builds one ExportLogsServiceRequest (or, when asked, one
 * LK_FORM_LOKI_ENTRIES item: pipeline/loki_entries.h) from lines. Reused
 * between requests. */
struct lk_lines_encoder {
    lk_buf req;  /* the request being built */
    lk_buf recs; /* LogRecords of the open ResourceLogs */
    lk_buf tmp;  /* one record, or a repaired line */
    uint32_t nrecs;    /* records in |req| and |recs| */
    uint32_t open_recs; /* records in |recs| */
    char service[LK_LINE_SERVICE_MAX];
    size_t service_len;
    struct lk_lines_origin origin;
    char origin_name[64];    /* cleaned copy of the open run's process name */
    const char *origin_raw;  /* the name as given, to recognise the next line's */
    /* Attributes every resource of this receiver carries, encoded once:
     * host.name, lookout.source, static labels, loki.resource.labels. */
    lk_buf static_attrs;
    char *fallback_service; /* copy of the config's service_name, or NULL */
    enum lk_line_format format;
    uint64_t invalid_utf8; /* lines repaired so far */
    /* The form of the request being built (enum lk_item_form), chosen when
     * it starts: LK_FORM_LOKI_ENTRIES when |want_entries| and no static
     * label would be named like an entry's own metadata (|entries_ok|). */
    uint8_t form;
    bool want_entries;
    bool entries_ok;
    size_t run_at;   /* Loki entries: where the open run's counts go, or 0 */
    size_t req_hint; /* bytes to reserve for the next request */
};

/* |host| and |source| (the receiver name) and |cfg|'s labels and
 * service_name are encoded now; nothing of |cfg| is kept. */
int lk_lines_encoder_init(struct lk_lines_encoder *e,
                          const struct lk_lines_receiver_config *cfg,
                          const char *host, const char *source);
void lk_lines_encoder_fini(struct lk_lines_encoder *e);
/* Appends one line (no newline) received at |now_ns| from |o|. */
int lk_lines_encoder_add(struct lk_lines_encoder *e, const struct lk_lines_origin *o,
                         const uint8_t *line, size_t len, uint64_t now_ns);
/* Closes the request: |*data|/|*len| point into the encoder until the next
 * lk_lines_encoder_reset; its form is e->form. Returns the number of records
 * (0: nothing). */
uint32_t lk_lines_encoder_finish(struct lk_lines_encoder *e, const uint8_t **data,
                                 size_t *len);
void lk_lines_encoder_reset(struct lk_lines_encoder *e);

#endif
