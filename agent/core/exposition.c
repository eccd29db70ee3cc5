#include "core/exposition.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/gzip.h"
#include "core/log.h"
#include "core/pbexpo.h"

#define MAX_EXPOSITION_BYTES (64 * 1024 * 1024)
#define TEXT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define OPENMETRICS_TYPE "application/openmetrics-text; version=1.0.0; charset=utf-8"
#define GZIP_MIN_BYTES 1024 /* smaller expositions go as they are */
#define KEEP_BYTES (1024 * 1024) /* larger bodies are freed after the scrape */

void lk_exposition_init(lk_exposition *x)
{
    lk_buf_init(&x->body, MAX_EXPOSITION_BYTES);
    lk_buf_init(&x->gz, MAX_EXPOSITION_BYTES);
}

void lk_exposition_fini(lk_exposition *x)
{
    lk_buf_fini(&x->body);
    lk_buf_fini(&x->gz);
}

bool lk_exposition_accepts(const char *h, const char *what)
{
    size_t wl = strlen(what);
    for (const char *p = h; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n >= wl && strncasecmp(p, what, wl) == 0 &&
            (n == wl || p[wl] == ';' || p[wl] == ' ')) {
            bool zero = false;
            for (const char *q = p + wl; q < p + n; q++) {
                /* the parameter q itself, not one whose name ends in q */
                if ((q[0] == 'q' || q[0] == 'Q') && q[1] == '=' &&
                    (q[-1] == ';' || q[-1] == ' ' || q[-1] == '\t')) {
                    zero = strtod(q + 2, NULL) <= 0;
                    break;
                }
            }
            if (!zero)
                return true;
        }
        p = end;
    }
    return false;
}

/* Whether an element of |accept| is the delimited MetricFamily protobuf. */
static bool wants_protobuf(const char *accept)
{
    static const char type[] = "application/vnd.google.protobuf";
    for (const char *p = accept; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char one[256];
        if (n < sizeof(one) && n >= sizeof(type) - 1 &&
            strncasecmp(p, type, sizeof(type) - 1) == 0) {
            memcpy(one, p, n);
            one[n] = '\0';
            if (strstr(one, "proto=io.prometheus.client.MetricFamily") != NULL &&
                strstr(one, "encoding=delimited") != NULL &&
                lk_exposition_accepts(one, type))
                return true;
        }
        p = end;
    }
    return false;
}

enum lk_expo_format lk_exposition_negotiate(const char *accept)
{
    if (wants_protobuf(accept))
        return LK_EXPO_PROTOBUF;
    if (lk_exposition_accepts(accept, "application/openmetrics-text"))
        return LK_EXPO_OPENMETRICS;
    return LK_EXPO_TEXT;
}

void lk_exposition_serve(lk_exposition *x, lk_httpd_req *req, lk_exposition_render render,
                         void *arg)
{
    enum lk_expo_format fmt = lk_exposition_negotiate(lk_httpd_req_header(req, "accept"));
    bool om = fmt == LK_EXPO_OPENMETRICS;
    lk_buf_reset(&x->body);
    int rc = render(&x->body, fmt, arg);
    if (rc == 0 && om)
        rc = lk_buf_append_str(&x->body, "# EOF\n");
    if (rc < 0) {
        lk_log(LK_LOG_ERROR, "cannot render metrics", LK_S("error", lk_strerror(rc)));
        static const char msg[] = "cannot render metrics\n";
        (void)lk_httpd_respond(req, 500, "text/plain; charset=utf-8", NULL, msg,
                               sizeof(msg) - 1);
        return;
    }
    const lk_buf *body = &x->body;
    const char *extra = "Vary: Accept, Accept-Encoding\r\n";
    if (x->body.len >= GZIP_MIN_BYTES &&
        lk_exposition_accepts(lk_httpd_req_header(req, "accept-encoding"), "gzip")) {
        lk_buf_reset(&x->gz);
        if (lk_gzip_deflate(x->body.data, x->body.len, &x->gz) == 0) {
            body = &x->gz;
            extra = "Content-Encoding: gzip\r\nVary: Accept, Accept-Encoding\r\n";
        }
    }
    static const char *const types[] = {
        [LK_EXPO_TEXT] = TEXT_TYPE,
        [LK_EXPO_OPENMETRICS] = OPENMETRICS_TYPE,
        [LK_EXPO_PROTOBUF] = LK_PBEXPO_CONTENT_TYPE,
    };
    (void)lk_httpd_respond(req, 200, types[fmt], extra, body->data, body->len);
    /* An unusually large exposition should not stay allocated. */
    if (x->body.cap > KEEP_BYTES)
        lk_buf_fini(&x->body);
    if (x->gz.cap > KEEP_BYTES)
        lk_buf_fini(&x->gz);
}
