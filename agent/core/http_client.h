/*
 * Outbound HTTP/1.1 requests over libcurl's multi_socket API, driven by the
 * libuv loop (one uv_poll_t per socket curl opens, one uv_timer_t for curl's
 * timeout). Used by the OTLP/HTTP exporter, and meant for the Loki and
 * remote_write exporters too.
 *
 * Threads: everything here, callbacks included, runs on the loop thread.
 * Connections are kept alive and reused between requests to the same host;
 * proxies are taken from the usual environment variables (http_proxy,
 * https_proxy, no_proxy), as curl does. Redirects are not followed.
 */
#ifndef LK_CORE_HTTP_CLIENT_H
#define LK_CORE_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include <uv.h>

#include "config/config.h"

typedef struct lk_http_client lk_http_client;

/* Zero selects the default given in each comment. */
struct lk_http_client_opts {
    uint32_t max_connections;        /* per host, open at once; default 4.
                                        Requests beyond wait inside curl. */
    const char *user_agent;          /* copied; NULL: no User-Agent header */
    const struct lk_tls_config *tls; /* applies to https:// URLs (the scheme
                                        decides, not tls->enabled); NULL:
                                        system roots, peer verified */
    uint64_t connect_timeout_ms;     /* TCP and TLS handshake; default 10000 */
    size_t max_response_bytes;       /* response body kept for the callback;
                                        the rest is read and discarded;
                                        default 64 KiB */
};

/* What the callback gets. Pointers are valid during the callback only. */
struct lk_http_result {
    int http_status;          /* 0 when the exchange did not complete */
    int err;                  /* 0; LK_ECANCELED (client closed) or LK_EIO
                                 (transport error, timeout) */
    int curl_code;            /* CURLcode; 0 with a complete response */
    const char *error;        /* what went wrong, "" when nothing did */
    int64_t retry_after_ms;   /* ms, from Retry-After (delta-seconds or
                                 HTTP-date); -1 when absent or invalid */
    const char *content_type; /* response Content-Type, "" when absent */
    const uint8_t *body;      /* response body, up to max_response_bytes;
                                 never NULL */
    size_t body_len;
    bool body_truncated;      /* the body was longer than what |body| holds */
};

typedef void (*lk_http_cb)(void *arg, const struct lk_http_result *r);

/*
 * Creates a client on |loop|. |o| is not kept (strings are copied). TLS
 * files in |o->tls| must be readable now (curl reads them again at each
 * new connection). The first client initialises libcurl globally; the last
 * one closed cleans it up.
 * Returns 0 and sets |*out| (release with lk_http_client_close), or
 * LK_EINVAL (only one of cert_file / key_file), LK_EIO (a TLS file
 * unreadable, logged with its path), LK_ENOMEM, LK_ESYS (libcurl failed to
 * initialise).
 */
int lk_http_client_create(lk_http_client **out, uv_loop_t *loop,
                          const struct lk_http_client_opts *o);

/*
 * Starts a POST of the concatenation of |body| (|n| iovecs) to |url|, with
 * the |nheaders| |headers| added (copied; a header curl would send by
 * itself, such as User-Agent or Content-Type, is replaced). The iovec array
 * is copied, but the bytes it points to are referenced, not copied: they
 * must stay valid and unchanged until |cb| runs. The whole request, from
 * now to the last byte of the response, must finish within |timeout_ms|
 * (0: no limit, only the connect timeout).
 * On success returns 0 and |cb(arg, result)| runs exactly once, later, on
 * the loop thread (never from inside this call). Errors (|cb| never runs):
 * LK_ECLOSED after lk_http_client_close, LK_EINVAL (|url| not http(s), a
 * header name that is not an HTTP token or a value with CR, LF or NUL),
 * LK_ENOMEM, LK_EIO (curl refused the transfer; logged).
 */
int lk_http_client_post(lk_http_client *c, const char *url,
                        const struct lk_header *headers, size_t nheaders,
                        const struct iovec *body, size_t n,
                        uint64_t timeout_ms, lk_http_cb cb, void *arg);

/*
 * Ends every transfer, each callback running before this returns: one that
 * already finished reports its real outcome, the others are cancelled (err
 * LK_ECANCELED, curl_code CURLE_ABORTED_BY_CALLBACK, http_status 0). These
 * callbacks see a closing client: lk_http_client_post returns LK_ECLOSED.
 * Then closes the connections and the loop handles; |c| is freed and
 * |done(arg)| (may be NULL) runs on the loop once the last handle is closed.
 * Call once (a second call is logged and ignored until |c| is freed); may be
 * called from inside a callback. |c| must not be used after |done|.
 */
void lk_http_client_close(lk_http_client *c, void (*done)(void *arg),
                          void *arg);

/* Whether |url| is an absolute http:// or https:// URL with a host. */
bool lk_http_url_is_valid(const char *url);

/* Whether |name: value| can be sent as a header: |name| a non-empty HTTP
 * token, |value| without CR, LF or NUL. */
bool lk_http_header_is_valid(const char *name, const char *value);

/*
 * Internal, exposed for tests: the delay a Retry-After header value asks
 * for, in ms, with |now| the current time for the HTTP-date form (a date in
 * the past gives 0). -1 when |value| is neither a delta-seconds nor a date.
 * Saturates at one year.
 */
int64_t lk__http_retry_after_ms(const char *value, time_t now);

#endif
