/*
 * Serving a Prometheus exposition over core/httpd: the format the scraper's
 * Accept asks for (the protobuf exposition, OpenMetrics 1.0 or text 0.0.4),
 * gzip when its Accept-Encoding allows and the body is large enough. Shared by the admin
 * listener and the prometheus exporter's own listener. Loop thread only.
 */
#ifndef LK_CORE_EXPOSITION_H
#define LK_CORE_EXPOSITION_H

#include <stdbool.h>

#include "core/buf.h"
#include "core/httpd.h"

enum lk_expo_format {
    LK_EXPO_TEXT,        /* text 0.0.4 */
    LK_EXPO_OPENMETRICS, /* OpenMetrics 1.0 text */
    LK_EXPO_PROTOBUF,    /* delimited io.prometheus.client.MetricFamily (core/pbexpo) */
};

/* Appends the exposition to |out| in |fmt| (OpenMetrics without the final
 * # EOF, which lk_exposition_serve adds). 0 or LK_E*. */
typedef int (*lk_exposition_render)(lk_buf *out, enum lk_expo_format fmt, void *arg);

/* The format an Accept header value (may be NULL) asks for: protobuf when it
 * lists the delimited MetricFamily type (as Prometheus does with native
 * histograms on), else OpenMetrics when listed, else text. */
enum lk_expo_format lk_exposition_negotiate(const char *accept);

/* Reused bodies between scrapes. */
typedef struct lk_exposition {
    lk_buf body;
    lk_buf gz;
} lk_exposition;

void lk_exposition_init(lk_exposition *x);
void lk_exposition_fini(lk_exposition *x);

/* Answers GET/HEAD |req| with what |render| appends (500 when it fails). */
void lk_exposition_serve(lk_exposition *x, lk_httpd_req *req, lk_exposition_render render,
                         void *arg);

/* Whether the Accept or Accept-Encoding value |h| (may be NULL) lists |what|
 * with a q-value above 0. Media type parameters other than q are ignored. */
bool lk_exposition_accepts(const char *h, const char *what);

#endif
