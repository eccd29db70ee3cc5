/*
 * OTLP -> Prometheus names: metric family names with unit and type suffixes,
 * label names, and the OpenMetrics UNIT word, as the OpenTelemetry
 * "Prometheus and OpenMetrics Compatibility" spec (OTLP metric points to
 * Prometheus) gives them. Pure functions: they only append to an lk_buf. The
 * choices the spec leaves open are listed in prom_translate.c.
 */
#ifndef LK_EXPORTERS_PROM_TRANSLATE_H
#define LK_EXPORTERS_PROM_TRANSLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/* The Prometheus type a metric becomes: COUNTER is a monotonic sum. */
enum lk_prom_kind {
    LK_PROM_GAUGE,
    LK_PROM_COUNTER,
    LK_PROM_HISTOGRAM,
    LK_PROM_SUMMARY
};

/*
 * Appends the Prometheus metric family name for the OTLP metric |name|
 * (NUL-terminated) with UCUM |unit| (may be "" or NULL) to |out|: the name
 * sanitised to [a-zA-Z_:][a-zA-Z0-9_:]*, then, when |add_suffixes|, the unit
 * word ("_seconds", "_ratio" for a gauge of unit "1") unless the name already
 * ends with it, and "_total" for a COUNTER. HISTOGRAM and SUMMARY get no type
 * suffix (the _bucket/_sum/_count series are named by the caller). The result
 * is never empty. Returns 0, LK_EINVAL (NULL |out| or |name|), or the error of
 * |out| (LK_E2BIG, LK_ENOMEM); on failure |out| may hold part of the name.
 */
int lk_prom_metric_name(lk_buf *out, const char *name, const char *unit,
                        enum lk_prom_kind kind, bool add_suffixes);

/*
 * Appends the label name for the OTLP attribute key of |len| bytes at |key|
 * (not NUL-terminated, any bytes) to |out|: sanitised to
 * [a-zA-Z_][a-zA-Z0-9_]*, "key_" before a leading digit, "key" before a single
 * leading '_'; keys that start with "__" are reserved names and keep every
 * underscore. Never empty. Returns 0, LK_EINVAL (NULL |out|, NULL |key| with
 * |len| > 0), or the error of |out|; on failure |out| may hold part of the
 * name.
 */
int lk_prom_label_name(lk_buf *out, const char *key, size_t len);

/*
 * Appends the OpenMetrics "# UNIT" word for UCUM |unit| (e.g. "seconds",
 * "bytes", "meters_per_second"), the same word lk_prom_metric_name() puts at
 * the end of a name, or nothing when the unit has no Prometheus form (NULL,
 * "", "1", or only {annotations}). Returns 0, LK_EINVAL (NULL |out|), or the
 * error of |out|.
 */
int lk_prom_unit(lk_buf *out, const char *unit);

#endif
