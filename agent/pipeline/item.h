/* An item: one validated request of one signal, immutable and refcounted so a
 * fan-out to several exporters copies nothing. Loop thread only. */
#ifndef LK_PIPELINE_ITEM_H
#define LK_PIPELINE_ITEM_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

typedef struct lk_item {
    uint32_t refs;
    enum lk_signal signal;
    uint32_t count;      /* spans, data points or log records */
    uint64_t arrived_ms; /* loop time when received */
    size_t len;
    uint8_t data[];      /* protobuf Export<Signal>ServiceRequest body */
} lk_item;

/* Copies |len| bytes at |data| into a new item with one reference. NULL on
 * allocation failure. */
lk_item *lk_item_create(enum lk_signal sig, uint32_t count, uint64_t now_ms,
                        const uint8_t *data, size_t len);
lk_item *lk_item_ref(lk_item *it);
/* NULL-safe; frees on the last reference. */
void lk_item_unref(lk_item *it);

#endif
