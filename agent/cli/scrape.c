/* Blocking GETs to the admin endpoint (see scrape.h). */
#include "cli/scrape.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"

struct lk_scrape {
    CURL *easy;
    char *base_url;
    lk_buf body;
    bool too_big; /* the write callback stopped the transfer */
    char errbuf[CURL_ERROR_SIZE];
};

static size_t write_cb(char *p, size_t size, size_t n, void *arg)
{
    lk_scrape *s = arg;
    if (lk_buf_append(&s->body, p, n) < 0) {
        s->too_big = true;
        return 0; /* aborts the transfer */
    }
    (void)size; /* always 1 */
    return n;
}

#define ESET(e, opt, val) (curl_easy_setopt((e), (opt), (val)) == CURLE_OK)

static bool set_options(lk_scrape *s, const char *unix_path, long timeout_ms)
{
    CURL *e = s->easy;
    return ESET(e, CURLOPT_NOSIGNAL, 1L) && ESET(e, CURLOPT_ERRORBUFFER, s->errbuf) &&
#if LIBCURL_VERSION_NUM >= 0x075500
           ESET(e, CURLOPT_PROTOCOLS_STR, "http,https") &&
#else
           ESET(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) &&
#endif
           ESET(e, CURLOPT_NOPROXY, "*") && ESET(e, CURLOPT_TIMEOUT_MS, timeout_ms) &&
           ESET(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms) &&
           ESET(e, CURLOPT_USERAGENT, "lookout-cli/" LK_VERSION) &&
           ESET(e, CURLOPT_WRITEFUNCTION, write_cb) && ESET(e, CURLOPT_WRITEDATA, s) &&
           (unix_path == NULL || ESET(e, CURLOPT_UNIX_SOCKET_PATH, unix_path));
}

int lk_scrape_create(lk_scrape **out, const char *base_url, const char *unix_path,
                     long timeout_ms)
{
    int rc = LK_ENOMEM;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return LK_ESYS;
    lk_scrape *s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto err_global;
    lk_buf_init(&s->body, LK_SCRAPE_MAX_BODY);
    s->base_url = strdup(base_url);
    if (s->base_url == NULL)
        goto err_free;
    s->easy = curl_easy_init();
    if (s->easy == NULL)
        goto err_url;
    if (!set_options(s, unix_path, timeout_ms)) {
        rc = LK_ESYS;
        goto err_easy;
    }
    *out = s;
    return 0;
err_easy:
    curl_easy_cleanup(s->easy);
err_url:
    free(s->base_url);
err_free:
    free(s);
err_global:
    curl_global_cleanup();
    return rc;
}

void lk_scrape_destroy(lk_scrape *s)
{
    if (s == NULL)
        return;
    curl_easy_cleanup(s->easy);
    lk_buf_fini(&s->body);
    free(s->base_url);
    free(s);
    curl_global_cleanup();
}

int lk_scrape_get(lk_scrape *s, const char *path, long *status, const char **body,
                  size_t *len, char *err, size_t errlen)
{
    size_t n = strlen(s->base_url) + strlen(path) + 1;
    char *url = malloc(n);
    if (url == NULL) {
        snprintf(err, errlen, "out of memory");
        return LK_ENOMEM;
    }
    snprintf(url, n, "%s%s", s->base_url, path);
    lk_buf_reset(&s->body);
    s->too_big = false;
    s->errbuf[0] = '\0';
    CURLcode cc = curl_easy_setopt(s->easy, CURLOPT_URL, url);
    if (cc == CURLE_OK)
        cc = curl_easy_perform(s->easy);
    free(url);
    if (s->too_big) {
        snprintf(err, errlen, "the answer is larger than %zu MiB, or memory ran out",
                 LK_SCRAPE_MAX_BODY >> 20);
        return LK_E2BIG;
    }
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s", s->errbuf[0] ? s->errbuf : curl_easy_strerror(cc));
        return LK_EIO;
    }
    /* A NUL after the body, for readers that want a C string. */
    if (lk_buf_append(&s->body, "", 1) < 0) {
        snprintf(err, errlen, "out of memory");
        return LK_ENOMEM;
    }
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, status);
    *body = (const char *)s->body.data;
    *len = s->body.len - 1;
    return 0;
}

static bool is_lookout(const lk_metrics_text *t)
{
    for (size_t i = 0; i < lk_metrics_text_count(t); i++)
        if (strcmp(lk_metrics_text_sample(t, i)->name, "lookout_build_info") == 0)
            return true;
    return false;
}

int lk_scrape_metrics(lk_scrape *s, lk_metrics_text_keep_fn keep, lk_metrics_text **out,
                      char *err, size_t errlen)
{
    const char *body;
    size_t len;
    long status = 0;
    int rc = lk_scrape_get(s, "/metrics", &status, &body, &len, err, errlen);
    if (rc < 0)
        return rc;
    if (status != 200) {
        snprintf(err, errlen, "/metrics answered HTTP %ld", status);
        return LK_EIO;
    }
    rc = lk_metrics_text_parse(body, len, keep, NULL, out);
    if (rc < 0) {
        snprintf(err, errlen, "reading /metrics: %s", lk_strerror(rc));
        return rc;
    }
    if (!is_lookout(*out)) {
        lk_metrics_text_destroy(*out);
        *out = NULL;
        snprintf(err, errlen, "/metrics has no lookout_build_info: not a lookout admin endpoint");
        return LK_EPROTO;
    }
    return 0;
}

int lk_scrape_ready(lk_scrape *s, bool *ready, char *err, size_t errlen)
{
    const char *body;
    size_t len;
    long status = 0;
    int rc = lk_scrape_get(s, "/readyz", &status, &body, &len, err, errlen);
    if (rc == 0)
        *ready = status == 200;
    return rc;
}
