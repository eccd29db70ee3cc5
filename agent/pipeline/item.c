#include "pipeline/item.h"

#include <stdlib.h>
#include <string.h>

#include "core/membudget.h"

/* What an item counts in the memory budget: the same for both ways of making
 * one, so that its release matches. */
static size_t charged(const lk_item *it)
{
    return LK_ITEM_HEADROOM + it->len;
}

lk_item *lk_item_create(enum lk_signal sig, uint32_t count, uint64_t now_ms,
                        const uint8_t *data, size_t len)
{
    lk_item *it = malloc(sizeof(*it) + len);
    if (it == NULL)
        return NULL;
    it->refs = 1;
    it->form = LK_FORM_OTLP;
    it->signal = sig;
    it->count = count;
    it->arrived_ms = now_ms;
    it->len = len;
    if (len != 0)
        memcpy(it->data, data, len);
    lk_mem_charge(LK_MEM_QUEUES, charged(it));
    return it;
}

lk_item *lk_item_adopt(lk_buf *b, enum lk_signal sig, uint32_t count, uint64_t now_ms)
{
    size_t total;
    if (b->len < LK_ITEM_HEADROOM)
        return NULL;
    uint8_t *mem = lk_buf_detach(b, &total);
    /* Give back what the buffer grew past its bytes (in place for the
     * allocators we know). */
    uint8_t *fit = realloc(mem, total);
    lk_item *it = (lk_item *)(fit != NULL ? fit : mem);
    it->refs = 1;
    it->form = LK_FORM_OTLP;
    it->signal = sig;
    it->count = count;
    it->arrived_ms = now_ms;
    it->len = total - LK_ITEM_HEADROOM;
    lk_mem_charge(LK_MEM_QUEUES, charged(it));
    return it;
}

void lk_item_empty(lk_item *it)
{
    lk_mem_release(LK_MEM_QUEUES, it->len);
    it->len = 0;
    it->count = 0;
    it->form = LK_FORM_OTLP;
}

lk_item *lk_item_ref(lk_item *it)
{
    it->refs++;
    return it;
}

void lk_item_unref(lk_item *it)
{
    if (it != NULL && --it->refs == 0) {
        lk_mem_release(LK_MEM_QUEUES, charged(it));
        free(it);
    }
}
