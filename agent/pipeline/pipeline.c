#include "pipeline/pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/membudget.h"

struct lk_pipeline {
    enum lk_signal signal;
    size_t n;
    lk_queue **queues;
    uint32_t forms; /* bit per enum lk_item_form every exporter takes */
    bool durable;
};

int lk_pipeline_set_queues(lk_pipeline *p, lk_queue **queues, size_t n)
{
    lk_queue **q = malloc((n ? n : 1) * sizeof(*q));
    if (q == NULL)
        return LK_ENOMEM;
    if (n > 0)
        memcpy(q, queues, n * sizeof(*q));
    free(p->queues);
    p->queues = q;
    p->n = n;
    return 0;
}

int lk_pipeline_create(lk_pipeline **out, enum lk_signal sig, lk_queue **queues,
                       size_t n)
{
    lk_pipeline *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return LK_ENOMEM;
    p->signal = sig;
    if (lk_pipeline_set_queues(p, queues, n) < 0) {
        free(p);
        return LK_ENOMEM;
    }
    *out = p;
    return 0;
}

void lk_pipeline_destroy(lk_pipeline *p)
{
    if (p != NULL)
        free(p->queues);
    free(p);
}

enum lk_signal lk_pipeline_signal(const lk_pipeline *p)
{
    return p->signal;
}

void lk_pipeline_set_forms(lk_pipeline *p, uint32_t forms)
{
    p->forms = forms;
}

bool lk_pipeline_accepts(const lk_pipeline *p, enum lk_item_form form)
{
    return form == LK_FORM_OTLP || (p->forms >> form & 1u) != 0;
}

bool lk_pipeline_durable(const lk_pipeline *p)
{
    return p->durable;
}

void lk_pipeline_set_durable(lk_pipeline *p, bool durable)
{
    p->durable = durable;
}

int lk_pipeline_submit(lk_pipeline *p, lk_item *it)
{
    return lk_pipeline_submit_acked(p, it, NULL);
}

int lk_pipeline_submit_acked(lk_pipeline *p, lk_item *it, lk_ack *ack)
{
    if (lk_mem_limit() != 0 && lk_mem_used() > lk_mem_limit()) {
        /* The budget is spent (this item included): refuse where a queue
         * refuses, else every queue drops its copy, counted. */
        for (size_t i = 0; i < p->n; i++)
            if (lk_queue_overflow(p->queues[i]) == LK_OVERFLOW_REFUSE)
                return LK_EMEMLIMIT;
        for (size_t i = 0; i < p->n; i++)
            lk_queue_count_dropped(p->queues[i], it->count, "memory_limit");
        return 0;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (lk_queue_overflow(p->queues[i]) != LK_OVERFLOW_REFUSE ||
            lk_queue_has_room(p->queues[i], it->count, it->len))
            continue;
        uint64_t items;
        size_t bytes;
        lk_queue_limits(p->queues[i], &items, &bytes);
        return it->count > items || it->len > bytes ? LK_E2BIG : LK_EAGAIN;
    }
    for (size_t i = 0; i < p->n; i++)
        (void)lk_queue_push_acked(p->queues[i], it, ack); /* a drop is counted inside */
    return 0;
}

void lk_pipeline_item_limits(const lk_pipeline *p, uint64_t *items, size_t *bytes)
{
    *items = UINT64_MAX;
    *bytes = SIZE_MAX;
    for (size_t i = 0; i < p->n; i++) {
        uint64_t qi;
        size_t qb;
        lk_queue_limits(p->queues[i], &qi, &qb);
        if (qi / 4 < *items)
            *items = qi / 4;
        if (qb / 4 < *bytes)
            *bytes = qb / 4;
    }
    if (*items < 1)
        *items = 1;
    /* Small queues still get items of a useful size, never past the queue. */
    size_t floor = 4096;
    for (size_t i = 0; i < p->n; i++) {
        uint64_t qi;
        size_t qb;
        lk_queue_limits(p->queues[i], &qi, &qb);
        if (qb < floor)
            floor = qb;
    }
    if (*bytes < floor)
        *bytes = floor;
}

void lk_pipeline_submit_over(lk_pipeline *p, lk_item *it)
{
    for (size_t i = 0; i < p->n; i++)
        (void)lk_queue_push_over(p->queues[i], it); /* a drop is counted inside */
}
