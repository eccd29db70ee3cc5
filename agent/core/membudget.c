#include "core/membudget.h"

#include <stdatomic.h>
#include <stdint.h>

static atomic_size_t limit;
static atomic_size_t used;
static atomic_size_t peak;
static atomic_size_t by_kind[LK_MEM_KINDS];

static const char *const kind_names[LK_MEM_KINDS] = {
    "none", "receivers", "queues", "exporters", "series",
};

void lk_mem_set_limit(size_t bytes)
{
    atomic_store_explicit(&limit, bytes, memory_order_relaxed);
}

size_t lk_mem_limit(void)
{
    return atomic_load_explicit(&limit, memory_order_relaxed);
}

size_t lk_mem_used(void)
{
    return atomic_load_explicit(&used, memory_order_relaxed);
}

size_t lk_mem_used_by(enum lk_mem_kind k)
{
    return k < LK_MEM_KINDS ? atomic_load_explicit(&by_kind[k], memory_order_relaxed) : 0;
}

size_t lk_mem_available(void)
{
    size_t l = lk_mem_limit(), u = lk_mem_used();
    if (l == 0)
        return SIZE_MAX;
    return u < l ? l - u : 0;
}

bool lk_mem_full(void)
{
    size_t l = lk_mem_limit();
    return l != 0 && lk_mem_used() >= l;
}

static void note_peak(size_t now)
{
    size_t p = atomic_load_explicit(&peak, memory_order_relaxed);
    while (now > p &&
           !atomic_compare_exchange_weak_explicit(&peak, &p, now, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

bool lk_mem_try(enum lk_mem_kind k, size_t n)
{
    size_t l = lk_mem_limit();
    size_t u = atomic_load_explicit(&used, memory_order_relaxed);
    do {
        if (l != 0 && (n > l || u > l - n))
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&used, &u, u + n, memory_order_relaxed,
                                                    memory_order_relaxed));
    atomic_fetch_add_explicit(&by_kind[k], n, memory_order_relaxed);
    note_peak(u + n);
    return true;
}

void lk_mem_charge(enum lk_mem_kind k, size_t n)
{
    size_t u = atomic_fetch_add_explicit(&used, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&by_kind[k], n, memory_order_relaxed);
    note_peak(u + n);
}

void lk_mem_release(enum lk_mem_kind k, size_t n)
{
    atomic_fetch_sub_explicit(&used, n, memory_order_relaxed);
    atomic_fetch_sub_explicit(&by_kind[k], n, memory_order_relaxed);
}

size_t lk_mem_peak(void)
{
    return atomic_load_explicit(&peak, memory_order_relaxed);
}

void lk_mem_reset_peak(void)
{
    atomic_store_explicit(&peak, lk_mem_used(), memory_order_relaxed);
}

const char *lk_mem_kind_name(enum lk_mem_kind k)
{
    return k < LK_MEM_KINDS ? kind_names[k] : "none";
}
