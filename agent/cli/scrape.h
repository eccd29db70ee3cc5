/*
 * Fetching an agent's admin pages (/metrics, /readyz) for the command-line
 * tools, with libcurl's easy API: blocking, one connection kept alive
 * between requests.
 */
#ifndef LK_CLI_SCRAPE_H
#define LK_CLI_SCRAPE_H

#include <stdbool.h>
#include <stddef.h>

#include "cli/metrics_text.h"

typedef struct lk_scrape lk_scrape;

/* The largest body read; a longer one fails with LK_E2BIG. */
#define LK_SCRAPE_MAX_BODY ((size_t)256 << 20)

/*
 * |base_url|: "http://host:port" without a trailing slash, the prefix of
 * every path asked for. |unix_path|: NULL, or the admin's Unix socket, which
 * then carries the requests (base_url's host is sent as Host). Each request
 * gets |timeout_ms| in all. Proxies from the environment are not used: the
 * admin endpoint is the machine's own. LK_ENOMEM, LK_ESYS (libcurl would not
 * start).
 */
int lk_scrape_create(lk_scrape **out, const char *base_url, const char *unix_path,
                     long timeout_ms);
void lk_scrape_destroy(lk_scrape *s); /* NULL-safe */

/*
 * GET |path| ("/metrics"). Returns 0 when an answer came, with |*status| its
 * HTTP status and |*body| (|*len| bytes, NUL-terminated, owned by |s| and
 * valid until the next call) its body. Returns LK_EIO when none came
 * (connection refused, timeout, ...), LK_E2BIG past LK_SCRAPE_MAX_BODY, or
 * LK_ENOMEM; |err| (|errlen| bytes) then says why, in libcurl's words.
 */
int lk_scrape_get(lk_scrape *s, const char *path, long *status, const char **body,
                  size_t *len, char *err, size_t errlen);

/*
 * GET /metrics and read it, keeping the metrics |keep| says (NULL: all).
 * 0 with |*out| (lk_metrics_text_destroy). LK_EIO when no answer came or it
 * was not a 200, LK_EPROTO when it has no lookout_build_info (not a
 * lookout), LK_E2BIG, LK_ENOMEM; |err| says why.
 */
int lk_scrape_metrics(lk_scrape *s, lk_metrics_text_keep_fn keep, lk_metrics_text **out,
                      char *err, size_t errlen);
/* GET /readyz: 0 with |*ready| true when it answered 200; LK_EIO when no
 * answer came, with |err| saying why. */
int lk_scrape_ready(lk_scrape *s, bool *ready, char *err, size_t errlen);

#endif
