/*
 * A small HTTP/1.1 server on the loop, for the admin endpoint and the
 * OTLP/HTTP receiver. It parses requests (Content-Length or chunked bodies,
 * decoded), enforces size and time limits, keeps connections alive and
 * answers pipelined requests in order. It does not decompress bodies, serve
 * TLS or upgrade connections.
 *
 * One request per connection is with the handler at a time: while it is
 * unanswered the connection reads nothing more (pipelined requests wait,
 * unparsed, and are answered in order), so a slow answer pushes back on that
 * client through TCP. The handler may answer during its call or later.
 *
 * Errors the server answers by itself, each followed by closing the
 * connection: 400 malformed request, 408 request not complete within
 * request_timeout_ms, 413 body over max_body_bytes, 414 request target or
 * 431 header section over max_header_bytes (or more than LK_HTTPD_MAX_HEADERS
 * fields), 500 out of memory, 505 HTTP version other than 1.x. After the
 * last response of a connection the server sends FIN and drains unread input
 * for up to 2 s (capped by idle_timeout_ms) before closing, so that the
 * client reads the answer instead of a reset.
 *
 * A connection that has not sent the request line and headers of its first
 * request within handshake_timeout_ms of being accepted is closed without an
 * answer (a port scanner, a slowloris, a client that connected and forgot).
 *
 * Connections are idle when nothing of theirs is in progress: waiting for a
 * request (none begun, or only part of its request line and headers
 * received, so slowloris headers do not make a connection busy) or draining
 * after their last response. Busy connections have a request whose headers
 * are complete and that is not fully answered yet. When a connection arrives
 * at max_connections, the connection that has been idle the longest is
 * closed to make room (idle since it was accepted, or since its last
 * response was written; bytes of an unfinished header section do not count
 * as activity). Only when every connection is busy does the new one get one
 * best-effort 503 (a single non-blocking write) and get closed at once.
 *
 * libuv writes with writev(): the process must ignore SIGPIPE, or a client
 * that resets its connection mid-response kills it.
 */
#ifndef LK_CORE_HTTPD_H
#define LK_CORE_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/net.h"
#include "core/selfmetrics.h"

typedef struct lk_httpd lk_httpd;
typedef struct lk_httpd_req lk_httpd_req;

#define LK_HTTPD_MAX_HEADERS 100 /* header fields per request */


/* Zero in any limit selects the default given in its comment. */
struct lk_httpd_opts {
    const char *endpoint;        /* "host:port", "[v6]:port" or "unix:///path" */
    const char *name;            /* in logs, e.g. "admin"; NULL: "httpd" */
    uint32_t max_connections;    /* open at once; default 128 */
    size_t max_header_bytes;     /* request line and headers; default 16 KiB */
    size_t max_body_bytes;       /* decoded body; default 4 MiB */
    uint64_t idle_timeout_ms;    /* keep-alive wait for the next request, and
                                    the longest a response may take to be
                                    written; default 60000 */
    uint64_t request_timeout_ms; /* from a request's first byte to its last
                                    (slowloris defence); default 30000 */
    uint64_t handshake_timeout_ms; /* from accept to the end of the first
                                      request's headers; default 10000 */
    lk_gauge *connections;           /* NULL, or kept at the open connection count */
    lk_counter *connections_refused; /* NULL, or counts those refused with 503
                                        (max_connections, every one busy) */
    /* Each NULL, or counts the connections closed for that reason. */
    lk_counter *closed[LK_CONN_CLOSE_REASONS];
    /* NULL, or called with each error status the server answers by itself,
     * before any handler sees the request (400, 408, 413, 414, 431, 500). */
    void (*on_reject)(int status, void *arg);
    void *reject_arg;
};

/*
 * Called on the loop thread for every complete request. The handler must
 * answer it exactly once with lk_httpd_respond(), during the call or later
 * (even after lk_httpd_close: the answer is then dropped). Everything the
 * request accessors return stays valid until that answer.
 */
typedef void (*lk_httpd_handler)(lk_httpd_req *req, void *arg);

/*
 * Starts listening on |o->endpoint|. |o| is not kept (the strings are not
 * referenced after return). Returns 0 and sets |*out|, or LK_EINVAL
 * (malformed endpoint or options), LK_ENOMEM, LK_ESYS (bind/listen failed;
 * logged by the listener).
 */
int lk_httpd_create(lk_httpd **out, uv_loop_t *loop,
                    const struct lk_httpd_opts *o, lk_httpd_handler handler,
                    void *arg);

/* The bound TCP port (useful with port 0), or -1 for a Unix socket. */
int lk_httpd_port(const lk_httpd *h);

/* New limits (the non-zero ones of |o|; the endpoint, callbacks and
 * counters are ignored): for connections accepted and requests begun from
 * now on (a kept-alive connection's next request gets the new header and
 * body caps); max_connections at once. */
void lk_httpd_set_limits(lk_httpd *h, const struct lk_httpd_opts *o);

/*
 * Closes the listener and every connection (responses in flight are cut).
 * |done| (may be NULL) runs once every handle is closed and every request
 * given to the handler has been answered; |h| is freed just before. Call
 * once; |h| must not be used afterwards except through pending requests.
 */
void lk_httpd_close(lk_httpd *h, void (*done)(void *arg), void *arg);

/* Request accessors. Strings are NUL-terminated. */
const char *lk_httpd_req_method(const lk_httpd_req *r); /* "GET", "POST", ... */
bool lk_httpd_req_is_head(const lk_httpd_req *r);
/* The request target up to '?', e.g. "/v1/traces" (never NULL). */
const char *lk_httpd_req_path(const lk_httpd_req *r);
/* The part after '?', without it; "" when there is none. */
const char *lk_httpd_req_query(const lk_httpd_req *r);
/* The first header named |name| (case-insensitive), value without leading
 * or trailing blanks; NULL when absent. */
const char *lk_httpd_req_header(const lk_httpd_req *r, const char *name);
size_t lk_httpd_req_header_count(const lk_httpd_req *r);
/* Header |i| in arrival order; false when |i| is out of range. */
bool lk_httpd_req_header_at(const lk_httpd_req *r, size_t i,
                            const char **name, const char **value);
/* The decoded body (chunked framing removed; not decompressed). */
const uint8_t *lk_httpd_req_body(const lk_httpd_req *r, size_t *len);
/* True once the connection is gone: an answer will be dropped. */
bool lk_httpd_req_is_abandoned(const lk_httpd_req *r);

/*
 * For a handler that answers later, from work it can give up: asks for
 * |cb|(|r|, |arg|) if the connection closes while |r| is unanswered. Only
 * the server closes such a connection (lk_httpd_close): it reads nothing
 * from a connection whose request is with the handler, so a client that
 * went away shows only when the answer is written. |cb| runs once, inside
 * the close; it should answer |r| there (the answer is dropped), since the
 * server is freed only once every request is answered. The answer clears
 * the request's |cb|; a NULL |cb| clears it too.
 */
typedef void (*lk_httpd_abandon_cb)(lk_httpd_req *r, void *arg);
void lk_httpd_req_on_abandon(lk_httpd_req *r, lk_httpd_abandon_cb cb, void *arg);

/*
 * Answers |r| and releases it. |content_type| may be NULL (no header);
 * |extra_headers| is NULL or complete "Name: value\r\n" lines, trusted;
 * |body| (|len| bytes) is copied, and left out for HEAD requests and for
 * 204/304 (Content-Length still tells the length for HEAD).
 * Returns 0; LK_ECLOSED when the connection is gone (|r| is released all
 * the same); LK_EINVAL for a status outside 200..599 or a request already
 * answered (nothing sent); LK_ENOMEM (the connection is closed, |r| released).
 */
int lk_httpd_respond(lk_httpd_req *r, int status, const char *content_type,
                     const char *extra_headers, const void *body, size_t len);

/* "OK", "Not Found", ...: the reason phrase for |status| ("" if unknown). */
const char *lk_httpd_reason(int status);

#endif
