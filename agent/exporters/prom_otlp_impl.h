/*
 * Inside the OTLP metrics → series store translation: what prom_otlp.c (the
 * translation of decoded messages: labels, points, resources, scopes) and
 * prom_wire.c (the walk over the request's wire bytes, with its cache of
 * series by raw point attributes) share. Not for other modules.
 */
#ifndef LK_EXPORTERS_PROM_OTLP_IMPL_H
#define LK_EXPORTERS_PROM_OTLP_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "core/buf.h"
#include "exporters/prom_otlp.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"

typedef Opentelemetry__Proto__Common__V1__KeyValue KeyValue;
typedef Opentelemetry__Proto__Common__V1__AnyValue AnyValue;
typedef Opentelemetry__Proto__Metrics__V1__Metric Metric;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint NumberPoint;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint HistPoint;
typedef Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint ExpPoint;
typedef Opentelemetry__Proto__Metrics__V1__SummaryDataPoint SummaryPoint;
typedef Opentelemetry__Proto__Resource__V1__Resource Resource;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope Scope;

#define MAX_POINT_ATTRS 128       /* attributes of one point */
#define MAX_KEY_BYTES (32 * 1024) /* a series' rendered label set */
#define DELTA (OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA)
#define FLAG_NO_RECORDED_VALUE 1u

/* ---- arena for protobuf-c: bump allocation, freed once per request ---- */

struct chunk {
    struct chunk *next;
    size_t size, used;
    unsigned char data[];
};

struct arena {
    struct chunk *head;
};

/* Frees every chunk but the last one allocated, which is emptied. */
void lk__prom_arena_reset(struct arena *a);

/* ---- labels ---- */

struct label {
    size_t name_off, name_len; /* sanitised name, in m->text */
    size_t val_off, val_len;   /* escaped value, in m->text */
    const char *key;           /* original key (ordering of joined values) */
    int prio;                  /* 0: resource/scope (wins), 1: point attribute */
};

/* ---- the cache of prom_wire.c ---- */

/* A resource and scope as the wire has them: the labels they give a point
 * depend on nothing else. */
struct wire_ctx {
    uint64_t hash;
    size_t len;
    uint8_t *bytes; /* Resource message bytes, then InstrumentationScope bytes */
    size_t rlen;    /* of which the resource's */
};

/* A point's raw attribute bytes under one family and context → its series. */
struct wire_entry {
    uint64_t hash;
    lk_prom_family *fam;
    lk_prom_series *se;
    uint32_t ctx;
    uint32_t len;
    uint8_t *bytes;
};

struct lk_prom_mapper {
    struct lk_prom_map_opts o;
    lk_prom_store *store;
    struct arena arena;
    ProtobufCAllocator alloc;
    lk_buf text;   /* label names and values of the current point */
    lk_buf key;    /* the rendered label set */
    lk_buf name;   /* the family name */
    lk_buf tmp;    /* one value before escaping */
    struct label *labels;
    struct label *sorted; /* render_key's copy: labels keeps its order */
    size_t nlabels, caplabels;
    size_t nfixed; /* labels from resource and scope, kept between points */
    uint64_t *counts; /* histogram bucket scratch */
    double *bounds;
    size_t capb;
    /* prom_wire.c */
    struct wire_ctx *ctxs;
    size_t nctxs;
    struct wire_entry *entries; /* open addressing, hash 0: empty */
    size_t nentries, capentries;
    uint64_t epoch; /* the store's removal epoch the cache was filled in */
    lk_buf attrs;   /* a point's attribute fields when not contiguous */
    lk_buf strs;    /* metric name, unit, description as C strings */
};

/* prom_otlp.c, for prom_wire.c. */
int lk__prom_resource_labels(lk_prom_mapper *m, const Resource *r, uint64_t now_ms,
                             struct lk_prom_map_stats *st);
int lk__prom_scope_labels(lk_prom_mapper *m, size_t resource_n, const Scope *sc);
void lk__prom_apply_metric(lk_prom_mapper *m, const Metric *mt, uint64_t now_ms,
                           struct lk_prom_map_stats *st);
/* The family of a metric named |name| (C strings), or NULL with |npoints|
 * points counted as dropped. */
lk_prom_family *lk__prom_family(lk_prom_mapper *m, const char *name, const char *unit,
                                const char *description, enum lk_prom_kind kind,
                                size_t npoints, struct lk_prom_map_stats *st);
/* One number point through the label path; its series or NULL. */
lk_prom_series *lk__prom_number_point(lk_prom_mapper *m, lk_prom_family *f,
                                      const NumberPoint *p, bool delta, bool counter,
                                      uint64_t now_ms, struct lk_prom_map_stats *st);
/* A number point's value into a series found without the label path. */
void lk__prom_number_into(lk_prom_mapper *m, lk_prom_series *se, uint64_t start,
                          uint64_t time, double v, bool delta, uint64_t now_ms,
                          struct lk_prom_map_stats *st);

/* Unpacked with protobuf-c, through the label path alone: a ResourceMetrics
 * or ScopeMetrics the walk does not take apart (a singular field repeated,
 * which protobuf merges), and a whole request (the reference the fuzz target
 * compares the walk with: same store, same drops). */
int lk__prom_resource_metrics_unpacked(
    lk_prom_mapper *m, const Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm,
    uint64_t now_ms, struct lk_prom_map_stats *st);
void lk__prom_scope_metrics_unpacked(lk_prom_mapper *m, size_t rn,
                                     const Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm,
                                     uint64_t now_ms, struct lk_prom_map_stats *st);
int lk__prom_mapper_apply_unpacked(lk_prom_mapper *m, const uint8_t *body, size_t len,
                                   uint64_t now_ms, struct lk_prom_map_stats *st);

/* prom_wire.c, for lk_prom_mapper_destroy. */
void lk__prom_wire_fini(lk_prom_mapper *m);

#endif
