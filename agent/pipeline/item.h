/* An item: one validated request of one signal, immutable and refcounted so a
 * fan-out to several exporters copies nothing. Loop thread only. */
#ifndef LK_PIPELINE_ITEM_H
#define LK_PIPELINE_ITEM_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"

/* How an item's bytes are laid out. Every consumer takes LK_FORM_OTLP; a
 * pipeline says which others all of its exporters take
 * (lk_pipeline_accepts), and only then may a receiver make them. */
enum lk_item_form {
    LK_FORM_OTLP = 0,         /* protobuf Export<Signal>ServiceRequest body */
    LK_FORM_LOKI_ENTRIES = 1, /* log lines as Loki entries: pipeline/loki_entries.h */
};

typedef struct lk_item {
    uint32_t refs;
    uint8_t form;        /* enum lk_item_form; LK_FORM_OTLP unless set after creation */
    enum lk_signal signal;
    uint32_t count;      /* spans, data points or log records */
    uint64_t arrived_ms; /* loop time when received */
    size_t len;
    uint8_t data[];      /* per |form| */
} lk_item;

/* Bytes a buffer leaves free at its start for lk_item_adopt. */
#define LK_ITEM_HEADROOM offsetof(lk_item, data)

/* Copies |len| bytes at |data| into a new item with one reference. NULL on
 * allocation failure. Items count in the memory budget (LK_MEM_QUEUES) from
 * creation to their last reference; lk_pipeline_submit refuses them while the
 * budget is spent. */
lk_item *lk_item_create(enum lk_signal sig, uint32_t count, uint64_t now_ms,
                        const uint8_t *data, size_t len);
/* Makes the bytes of |b| past its first LK_ITEM_HEADROOM (which the item's
 * header overwrites) a new item with one reference, taking |b|'s memory
 * without a copy: |b| is left empty. NULL (and |b| unchanged) when |b| holds
 * less than the headroom. */
lk_item *lk_item_adopt(lk_buf *b, enum lk_signal sig, uint32_t count, uint64_t now_ms);
/* Makes |it| an empty OTLP item (a valid, empty body), for its only holder. */
void lk_item_empty(lk_item *it);
lk_item *lk_item_ref(lk_item *it);
/* NULL-safe; frees on the last reference. */
void lk_item_unref(lk_item *it);

#endif
