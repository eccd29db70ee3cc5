#include "pipeline/ack.h"

#include <stdbool.h>
#include <stdlib.h>

struct lk_ack {
    uv_timer_t timer; /* runs |done| outside the seal */
    lk_ack_cb done;
    void *arg;
    unsigned holds;   /* commits waited for, plus one until sealed or canceled */
    int status;
    bool sealed;
    bool canceled;
};

lk_ack *lk_ack_new(uv_loop_t *loop, lk_ack_cb done, void *arg)
{
    lk_ack *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    uv_timer_init(loop, &a->timer);
    a->timer.data = a;
    a->done = done;
    a->arg = arg;
    a->holds = 1;
    return a;
}

static void ack_free(uv_handle_t *h)
{
    free(h->data);
}

static void ack_fire(uv_timer_t *t)
{
    lk_ack *a = t->data;
    if (!a->canceled)
        a->done(a->arg, a->status);
    uv_close((uv_handle_t *)&a->timer, ack_free);
}

static void ack_put(lk_ack *a)
{
    if (--a->holds == 0)
        uv_timer_start(&a->timer, ack_fire, 0, 0);
}

void lk_ack_seal(lk_ack *a)
{
    a->sealed = true;
    ack_put(a);
}

void lk_ack_cancel(lk_ack *a)
{
    a->canceled = true; /* a |done| already armed will not run */
    if (!a->sealed) {
        a->sealed = true;
        ack_put(a);
    }
}

void lk_ack_hold(lk_ack *a)
{
    a->holds++;
}

void lk_ack_release(lk_ack *a, int status)
{
    if (status < 0 && a->status == 0)
        a->status = status;
    ack_put(a);
}
