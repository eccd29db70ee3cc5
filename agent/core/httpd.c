#include "core/httpd.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/http_parser_shim.h"
#include "core/log.h"
#include "core/membudget.h"
#include "core/net.h"

#define DEFAULT_MAX_CONNECTIONS 128
#define DEFAULT_MAX_HEADER_BYTES (16 * 1024)
#define DEFAULT_MAX_BODY_BYTES (4 * 1024 * 1024)
#define DEFAULT_IDLE_TIMEOUT_MS 60000
#define DEFAULT_REQUEST_TIMEOUT_MS 30000
#define DEFAULT_HANDSHAKE_TIMEOUT_MS 10000
#define READ_BUF_BYTES (16 * 1024)
/* After the last response of a connection, how long unread input is drained
 * before closing (see begin_linger). */
#define LINGER_MS 2000
/* Per-connection buffers that grew past this are freed between requests
 * rather than kept, so that idle keep-alive connections stay small. */
#define KEEP_BUF_BYTES (256 * 1024)
/* The most body space reserved on a Content-Length before the bytes come. */
#define BODY_PREALLOC_BYTES (64 * 1024)
/* The response buffer's hard cap: bodies come from our own handlers. */
#define MAX_RESPONSE_BYTES ((size_t)1 << 30)

/*
 * A connection moves through these states:
 *   READING  -> (request complete) HANDLING -> (answered) WRITING
 *   WRITING  -> (written, keep-alive) READING, parsing any pipelined bytes
 *   WRITING  -> (written, last response) LINGER -> closed
 * Reading from the socket happens only in READING and LINGER.
 */
enum conn_state { ST_READING, ST_HANDLING, ST_WRITING, ST_LINGER, ST_CLOSED };

/* What the header callbacks saw last: a header name or value piece can come
 * in several callbacks when it straddles two reads. */
enum hdr_last { HL_URL, HL_FIELD, HL_VALUE };

struct hdr {
    size_t name; /* offsets into hbuf, NUL-terminated there */
    size_t value;
};

typedef struct conn conn;

struct lk_httpd_req {
    conn *c;
    lk_buf hbuf; /* URL, then each name and value, NUL-terminated */
    struct hdr hdrs[LK_HTTPD_MAX_HEADERS];
    size_t nhdrs;
    enum hdr_last last;
    const char *method;
    const char *path;
    const char *query;
    lk_buf body;
    bool message_begun;
    bool timer_armed; /* the request deadline runs */
    bool wants_continue;
    bool continue_sent;
    bool headers_done;
    bool head;
    bool keep_alive;
    bool http10;
    int err_status; /* set by a callback that stops the parser */
    lk_httpd_abandon_cb on_abandon; /* set by a handler answering later */
    void *abandon_arg;
};

struct conn {
    conn *prev, *next;
    conn *idle_prev, *idle_next; /* in h's idle list, oldest first */
    bool idle;                   /* on that list */
    bool handshake_done;         /* the first request's headers arrived */
    uint64_t handshake_deadline; /* ms, loop time */
    uint64_t req_begin;          /* ms, loop time of the request's first byte */
    lk_httpd *h;
    uv_stream_t *stream; /* heap, from lk_listener_accept; freed on close */
    uv_timer_t timer;
    uv_write_t wreq;
    uv_write_t continue_req;
    uv_shutdown_t sreq;
    lk_hp parser;
    enum conn_state state;
    int handles_open;  /* of stream and timer, not closed yet */
    bool closing;      /* uv_close called */
    bool req_pending;  /* the handler holds |req| */
    bool reading;      /* uv_read_start in effect */
    bool close_after;  /* the response being written is the last one */
    lk_buf wbuf;       /* response being written */
    struct lk_httpd_req req;
    size_t rstart;     /* unparsed input is rbuf[rstart, rlen) */
    size_t rlen;
    char rbuf[READ_BUF_BYTES];
};

struct lk_httpd {
    uv_loop_t *loop;
    lk_listener listener;
    bool listener_open;
    bool closing;
    char *name;
    uint32_t max_connections;
    size_t max_header_bytes;
    size_t max_body_bytes;
    uint64_t idle_timeout_ms;
    uint64_t request_timeout_ms;
    uint64_t handshake_timeout_ms;
    lk_gauge *connections;
    lk_counter *connections_refused;
    lk_counter *closed[LK_CONN_CLOSE_REASONS];
    void (*on_reject)(int status, void *arg);
    void *reject_arg;
    lk_httpd_handler handler;
    void *arg;
    conn *conns; /* every connection not yet freed */
    uint32_t nconns;
    uint32_t nlive; /* of those, the ones not closing: max_connections counts these */
    /* The idle connections (see httpd.h), in the order they became idle:
     * the head is the one to evict. */
    conn *idle_head, *idle_tail;
    void (*done)(void *arg);
    void *done_arg;
};

static void process_input(conn *c);
static void conn_close(conn *c);
static void fail(conn *c, int status);
static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ---- status lines ---- */

const char *lk_httpd_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    }
    return "";
}

static int append_uint(lk_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return lk_buf_append(b, tmp + i, sizeof(tmp) - i);
}

/* ---- the idle list ---- */

static void idle_remove(conn *c)
{
    if (!c->idle)
        return;
    lk_httpd *h = c->h;
    if (c->idle_prev != NULL)
        c->idle_prev->idle_next = c->idle_next;
    else
        h->idle_head = c->idle_next;
    if (c->idle_next != NULL)
        c->idle_next->idle_prev = c->idle_prev;
    else
        h->idle_tail = c->idle_prev;
    c->idle_prev = c->idle_next = NULL;
    c->idle = false;
}

/* Marks |c| idle from now on: it goes to the end of the line. */
static void idle_push(conn *c)
{
    lk_httpd *h = c->h;
    idle_remove(c);
    c->idle = true;
    c->idle_prev = h->idle_tail;
    if (h->idle_tail != NULL)
        h->idle_tail->idle_next = c;
    else
        h->idle_head = c;
    h->idle_tail = c;
}

/* ---- lifetime ---- */

static void httpd_maybe_done(lk_httpd *h)
{
    if (!h->closing || h->listener_open || h->conns != NULL)
        return;
    void (*done)(void *) = h->done;
    void *arg = h->done_arg;
    free(h->name);
    free(h);
    if (done != NULL)
        done(arg);
}

static void req_fini(struct lk_httpd_req *r)
{
    lk_buf_fini(&r->hbuf);
    lk_buf_fini(&r->body);
}

/* Frees |c| once both handles are closed and the handler gave back the
 * request, whichever comes last. */
static void conn_maybe_free(conn *c)
{
    if (c->handles_open > 0 || c->req_pending)
        return;
    lk_httpd *h = c->h;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    h->nconns--;
    lk_gauge_set(h->connections, h->nconns);
    req_fini(&c->req);
    lk_buf_fini(&c->wbuf);
    lk_mem_release(LK_MEM_RECEIVERS, sizeof(*c));
    free(c);
    httpd_maybe_done(h);
}

static void on_stream_close(uv_handle_t *handle)
{
    conn *c = handle->data;
    free(handle);
    c->stream = NULL;
    c->handles_open--;
    conn_maybe_free(c);
}

static void on_timer_close(uv_handle_t *handle)
{
    conn *c = handle->data;
    c->handles_open--;
    conn_maybe_free(c);
}

/* Closing cancels the pending write and shutdown requests; their callbacks
 * run (with UV_ECANCELED) before the close callbacks. */
static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->state = ST_CLOSED;
    idle_remove(c);
    c->h->nlive--;
    uv_close((uv_handle_t *)c->stream, on_stream_close);
    uv_close((uv_handle_t *)&c->timer, on_timer_close);
    /* The handles close later: |c| outlives an answer given in here. */
    lk_httpd_abandon_cb cb = c->req.on_abandon;
    c->req.on_abandon = NULL;
    if (c->req_pending && cb != NULL)
        cb(&c->req, c->req.abandon_arg);
}

/* ---- timers ---- */

/* Closes |c| on the server's own account, counted by |why|. */
static void close_for(conn *c, enum lk_conn_close_reason why)
{
    lk_log(LK_LOG_DEBUG, "http connection closed", LK_S("server", c->h->name)
           LK_S("reason", lk_conn_close_reason_name(why)));
    lk_counter_add(c->h->closed[why], 1);
    conn_close(c);
}

static void on_timer(uv_timer_t *t)
{
    conn *c = t->data;
    switch (c->state) {
    case ST_READING:
        if (!c->handshake_done && uv_now(c->h->loop) >= c->handshake_deadline) {
            /* Nothing or only part of a first request: no answer, the
             * client has not shown it speaks HTTP. */
            close_for(c, LK_CONN_CLOSED_HANDSHAKE);
        } else if (c->req.message_begun) {
            lk_log(LK_LOG_DEBUG, "http request timeout",
                   LK_S("server", c->h->name));
            c->rstart = c->rlen = 0;
            fail(c, 408);
        } else {
            close_for(c, LK_CONN_CLOSED_IDLE); /* idle keep-alive connection */
        }
        break;
    case ST_WRITING: /* the client stopped reading its response */
    case ST_LINGER:
        conn_close(c);
        break;
    case ST_HANDLING:
    case ST_CLOSED:
        break;
    }
}

/* While the first request is awaited, the handshake deadline comes first
 * if it is nearer. */
static void timer_arm(conn *c, uint64_t ms)
{
    if (!c->handshake_done && c->state == ST_READING) {
        uint64_t now = uv_now(c->h->loop);
        uint64_t left = c->handshake_deadline > now ? c->handshake_deadline - now : 0;
        if (left < ms)
            ms = left;
    }
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* uv_read_start fails on a stream that is already reading: track it. */
static int read_on(conn *c)
{
    if (c->reading)
        return 0;
    int rc = uv_read_start(c->stream, on_alloc, on_read);
    if (rc == 0)
        c->reading = true;
    return rc;
}

static void read_off(conn *c)
{
    if (c->reading) {
        uv_read_stop(c->stream);
        c->reading = false;
    }
}

/* ---- writing ---- */

static void begin_linger(conn *c);
static void next_request(conn *c);

static void on_write(uv_write_t *w, int status)
{
    conn *c = w->data;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->wbuf.cap > KEEP_BUF_BYTES)
        lk_buf_fini(&c->wbuf);
    else
        lk_buf_reset(&c->wbuf);
    if (c->close_after)
        begin_linger(c);
    else
        next_request(c);
}

/*
 * Builds the response in |c->wbuf| and starts writing it. |keep_alive_hdr|
 * asks for "Connection: keep-alive" (an HTTP/1.0 client that wants it).
 */
static int write_response(conn *c, int status, const char *content_type,
                          const char *extra_headers, const void *body,
                          size_t len, bool with_body, bool keep_alive_hdr)
{
    lk_buf *b = &c->wbuf;
    bool no_length = status == 204 || status == 304;
    int rc = lk_buf_append(b, "HTTP/1.1 ", 9);
    if (rc == 0)
        rc = append_uint(b, (uint64_t)status);
    if (rc == 0)
        rc = lk_buf_append(b, " ", 1);
    if (rc == 0)
        rc = lk_buf_append_str(b, lk_httpd_reason(status));
    if (rc == 0)
        rc = lk_buf_append(b, "\r\n", 2);
    if (rc == 0 && content_type != NULL) {
        rc = lk_buf_append(b, "Content-Type: ", 14);
        if (rc == 0)
            rc = lk_buf_append_str(b, content_type);
        if (rc == 0)
            rc = lk_buf_append(b, "\r\n", 2);
    }
    if (rc == 0 && !no_length) {
        rc = lk_buf_append(b, "Content-Length: ", 16);
        if (rc == 0)
            rc = append_uint(b, len);
        if (rc == 0)
            rc = lk_buf_append(b, "\r\n", 2);
    }
    if (rc == 0 && extra_headers != NULL)
        rc = lk_buf_append_str(b, extra_headers);
    if (rc == 0 && c->close_after)
        rc = lk_buf_append_str(b, "Connection: close\r\n");
    else if (rc == 0 && keep_alive_hdr)
        rc = lk_buf_append_str(b, "Connection: keep-alive\r\n");
    if (rc == 0)
        rc = lk_buf_append(b, "\r\n", 2);
    if (rc == 0 && with_body && !no_length)
        rc = lk_buf_append(b, body, len);
    if (rc < 0) {
        lk_buf_fini(b);
        return rc == LK_E2BIG ? LK_ENOMEM : rc;
    }
    c->state = ST_WRITING;
    idle_remove(c);
    timer_arm(c, c->h->idle_timeout_ms);
    uv_buf_t ub = uv_buf_init((char *)b->data, (unsigned)b->len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, c->stream, &ub, 1, on_write) != 0)
        return LK_ECLOSED;
    return 0;
}

/* Answers with |status| on the server's own account and closes afterwards. */
static void fail(conn *c, int status)
{
    if (c->h->on_reject != NULL)
        c->h->on_reject(status, c->h->reject_arg);
    read_off(c);
    c->close_after = true;
    const char *reason = lk_httpd_reason(status);
    char body[64];
    size_t n = strlen(reason);
    if (n > sizeof(body) - 2)
        n = sizeof(body) - 2;
    memcpy(body, reason, n);
    body[n++] = '\n';
    /* 503: the memory budget is spent; the client may come back. */
    if (write_response(c, status, "text/plain; charset=utf-8",
                       status == 503 ? "Retry-After: 1\r\n" : NULL, body, n, true,
                       false) < 0)
        conn_close(c);
}

/*
 * After the last response: send FIN, then read and discard what the client
 * still sends for a while before closing. Closing a socket with unread input
 * makes the kernel send a reset, which can destroy the response (a 413 or
 * 431, typically) before the client has read it.
 */
static void on_shutdown(uv_shutdown_t *s, int status)
{
    conn *c = s->data;
    if (!c->closing && status < 0)
        conn_close(c);
}

static void begin_linger(conn *c)
{
    c->state = ST_LINGER;
    idle_push(c); /* all said: the first to make room */
    c->rstart = c->rlen = 0;
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, c->stream, on_shutdown) != 0 || read_on(c) != 0) {
        conn_close(c);
        return;
    }
    uint64_t ms = c->h->idle_timeout_ms < LINGER_MS ? c->h->idle_timeout_ms
                                                    : LINGER_MS;
    timer_arm(c, ms);
}

/* ---- requests ---- */

static void req_reset(struct lk_httpd_req *r)
{
    lk_buf_reset(&r->hbuf);
    if (r->body.cap > KEEP_BUF_BYTES)
        lk_buf_fini(&r->body);
    else
        lk_buf_reset(&r->body);
    r->nhdrs = 0;
    r->last = HL_URL;
    r->method = NULL;
    r->path = NULL;
    r->query = NULL;
    r->message_begun = false;
    r->timer_armed = false;
    r->wants_continue = false;
    r->continue_sent = false;
    r->headers_done = false;
    r->head = false;
    r->keep_alive = false;
    r->http10 = false;
    r->err_status = 0;
    r->on_abandon = NULL;
    r->abandon_arg = NULL;
}

static void send_continue(conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    c->req.continue_sent = true;
    uv_buf_t ub = uv_buf_init((char *)cont, sizeof(cont) - 1);
    /* Ordered before any response: libuv writes a stream's requests in
     * order. A failure shows up again on the response write. */
    (void)uv_write(&c->continue_req, c->stream, &ub, 1, NULL);
}

static void dispatch(conn *c)
{
    c->state = ST_HANDLING;
    idle_remove(c);
    read_off(c);
    uv_timer_stop(&c->timer);
    c->req_pending = true;
    c->h->handler(&c->req, c->h->arg);
}

/* Waits for the next request, parsing any that is already buffered. */
static void next_request(conn *c)
{
    lk_httpd *h = c->h;
    /* Limits changed by a reload apply from this request on. */
    if (c->req.hbuf.max != h->max_header_bytes) {
        lk_buf_fini(&c->req.hbuf);
        lk_buf_set_max(&c->req.hbuf, h->max_header_bytes);
    }
    if (c->req.body.max != h->max_body_bytes) {
        lk_buf_fini(&c->req.body);
        lk_buf_set_max(&c->req.body, h->max_body_bytes);
    }
    req_reset(&c->req);
    idle_push(c);
    c->close_after = false;
    c->state = ST_READING;
    lk_hp_resume(&c->parser);
    /* Armed once per wait, not per read: bare CRLFs do not keep an idle
     * connection alive. A request's first byte re-arms it (process_input). */
    timer_arm(c, c->h->idle_timeout_ms);
    process_input(c);
}

/*
 * Parses what is buffered. Stops at a complete request (handed to the
 * handler), at an error (answered), or when the buffer is used up, in which
 * case it reads on.
 */
static void process_input(conn *c)
{
    while (c->state == ST_READING && c->rstart < c->rlen) {
        size_t n;
        enum lk_hp_status st = lk_hp_execute(
            &c->parser, c->rbuf + c->rstart, c->rlen - c->rstart, &n);
        c->rstart += n;
        /* The parser callbacks only record; the loop work happens here. */
        if (c->req.message_begun && !c->req.timer_armed) {
            c->req.timer_armed = true;
            c->req_begin = uv_now(c->h->loop);
            timer_arm(c, c->h->request_timeout_ms);
        }
        if (c->req.headers_done && c->idle) {
            /* A request is in progress: the connection is busy now. */
            idle_remove(c);
            if (!c->handshake_done) {
                /* The body has what is left of the request timeout. */
                c->handshake_done = true;
                uint64_t used = uv_now(c->h->loop) - c->req_begin;
                uint64_t rt = c->h->request_timeout_ms;
                timer_arm(c, used < rt ? rt - used : 0);
            }
        }
        if (st == LK_HP_OK) {
            if (c->req.wants_continue && !c->req.continue_sent)
                send_continue(c);
            break;
        }
        if (st == LK_HP_PAUSED) {
            dispatch(c);
            break;
        }
        int status = c->req.err_status;
        if (status == 0)
            status = lk_hp_error_is_header_overflow(&c->parser) ? 431 : 400;
        lk_log(LK_LOG_DEBUG, "http request rejected",
               LK_S("server", c->h->name) LK_I("status", status)
                   LK_S("parser", lk_hp_error_name(&c->parser)));
        c->rstart = c->rlen = 0;
        fail(c, status);
        return;
    }
    if (c->rstart == c->rlen)
        c->rstart = c->rlen = 0;
    if (c->state == ST_READING && read_on(c) != 0)
        conn_close(c);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    conn *c = handle->data;
    /* Input is parsed as it arrives and reading stops while a request is
     * with the handler, so in READING the buffer is empty here. */
    buf->base = c->rbuf + c->rlen;
    buf->len = sizeof(c->rbuf) - c->rlen;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = s->data;
    if (c->closing)
        return;
    if (nread < 0) {
        /* EOF or error. A half-read request cannot be answered usefully. */
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->state == ST_LINGER)
        return; /* drained and dropped */
    if (c->state != ST_READING)
        return;
    c->rlen += (size_t)nread;
    process_input(c);
}

/* ---- parser callbacks ---- */

/* Appends to the header storage; past its cap the request fails with
 * |status| (414 or 431). */
static int hbuf_add(struct lk_httpd_req *r, const char *at, size_t len,
                    int status)
{
    int rc = lk_buf_append(&r->hbuf, at, len);
    if (rc == 0)
        return LK_HP_CB_OK;
    r->err_status = rc == LK_E2BIG ? status : 500;
    return LK_HP_CB_ERROR;
}

static int hbuf_nul(struct lk_httpd_req *r, int status)
{
    return hbuf_add(r, "", 1, status);
}

static int on_message_begin(lk_hp *p)
{
    conn *c = p->data;
    c->req.message_begun = true;
    return LK_HP_CB_OK;
}

static int on_url(lk_hp *p, const char *at, size_t len)
{
    conn *c = p->data;
    return hbuf_add(&c->req, at, len, 414);
}

static int on_header_field(lk_hp *p, const char *at, size_t len)
{
    conn *c = p->data;
    struct lk_httpd_req *r = &c->req;
    if (r->headers_done)
        return LK_HP_CB_OK; /* a trailer: ignored */
    if (r->last != HL_FIELD) {
        /* Ends the URL or the previous value. */
        if (hbuf_nul(r, r->last == HL_URL ? 414 : 431) != 0)
            return LK_HP_CB_ERROR;
        if (r->nhdrs == LK_HTTPD_MAX_HEADERS) {
            r->err_status = 431;
            return LK_HP_CB_ERROR;
        }
        r->hdrs[r->nhdrs].name = r->hbuf.len;
        r->hdrs[r->nhdrs].value = 0;
        r->nhdrs++;
        r->last = HL_FIELD;
    }
    return hbuf_add(r, at, len, 431);
}

static int on_header_value(lk_hp *p, const char *at, size_t len)
{
    conn *c = p->data;
    struct lk_httpd_req *r = &c->req;
    if (r->headers_done)
        return LK_HP_CB_OK;
    if (r->last == HL_FIELD) {
        if (hbuf_nul(r, 431) != 0)
            return LK_HP_CB_ERROR;
        r->hdrs[r->nhdrs - 1].value = r->hbuf.len;
        r->last = HL_VALUE;
    }
    return hbuf_add(r, at, len, 431);
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Splits the request target into path and query, in place. */
static void split_target(struct lk_httpd_req *r)
{
    char *url = (char *)r->hbuf.data;
    /* Absolute form ("http://host/path"), which proxies send: skip to the
     * path. */
    char *scheme = strstr(url, "://");
    if (scheme != NULL && url[0] != '/') {
        char *slash = strchr(scheme + 3, '/');
        url = slash != NULL ? slash : scheme + strlen(scheme);
    }
    char *q = strchr(url, '?');
    if (q != NULL) {
        *q = '\0';
        r->query = q + 1;
    } else {
        r->query = "";
    }
    char *hash = strchr(url, '#');
    if (hash != NULL)
        *hash = '\0';
    r->path = url[0] != '\0' ? url : "/";
}

static int on_headers_complete(lk_hp *p)
{
    conn *c = p->data;
    struct lk_httpd_req *r = &c->req;
    lk_httpd *h = c->h;
    int rc;

    if (r->last == HL_FIELD) { /* a name without a value: cannot happen */
        if (hbuf_nul(r, 431) != 0)
            return LK_HP_CB_ERROR;
        r->hdrs[r->nhdrs - 1].value = r->hbuf.len;
    }
    if (hbuf_nul(r, r->last == HL_URL ? 414 : 431) != 0)
        return LK_HP_CB_ERROR;
    r->headers_done = true;

    /* The buffer does not move from here on: strings can be handed out. */
    char *base = (char *)r->hbuf.data;
    for (size_t i = 0; i < r->nhdrs; i++) {
        char *v = base + r->hdrs[i].value;
        size_t n = strlen(v);
        while (n > 0 && is_blank(v[n - 1]))
            v[--n] = '\0';
        size_t lead = 0;
        while (is_blank(v[lead]))
            lead++;
        r->hdrs[i].value += lead;
    }
    split_target(r);

    if (lk_hp_http_major(p) != 1) {
        r->err_status = 505;
        return LK_HP_CB_ERROR;
    }
    r->method = lk_hp_method(p);
    r->head = lk_hp_method_is_head(p);
    r->http10 = lk_hp_http_minor(p) == 0;
    r->keep_alive = lk_hp_should_keep_alive(p) && !lk_hp_is_upgrade(p);

    uint64_t clen = 0;
    bool has_len = lk_hp_content_length(p, &clen);
    if (has_len && clen > h->max_body_bytes) {
        r->err_status = 413;
        return LK_HP_CB_ERROR;
    }
    /* A body that cannot fit in the memory budget now is refused before
     * it is sent (503 with Retry-After). */
    if (has_len && clen > lk_mem_available()) {
        r->err_status = 503;
        return LK_HP_CB_ERROR;
    }
    /* Room for the announced body, up to a point: a client's claim alone
     * must not make every connection hold max_body_bytes. */
    size_t want = has_len && clen < BODY_PREALLOC_BYTES ? (size_t)clen
                                                        : BODY_PREALLOC_BYTES;
    if (has_len && clen > 0 && (rc = lk_buf_reserve(&r->body, want)) < 0) {
        r->err_status = rc == LK_EMEMLIMIT ? 503 : 500; /* out of memory */
        return LK_HP_CB_ERROR;
    }

    /* A client that waits for "100 Continue" before sending its body
     * (curl does for bodies over 1 KiB) is told to go on, by process_input
     * once the parser returns. */
    const char *expect = lk_httpd_req_header(r, "expect");
    r->wants_continue = expect != NULL &&
                        strcasecmp(expect, "100-continue") == 0 &&
                        !r->http10 &&
                        ((has_len && clen > 0) || lk_hp_is_chunked(p));
    return LK_HP_CB_OK;
}

static int on_body(lk_hp *p, const char *at, size_t len)
{
    conn *c = p->data;
    int rc = lk_buf_append(&c->req.body, at, len);
    if (rc == 0)
        return LK_HP_CB_OK;
    c->req.err_status = rc == LK_E2BIG ? 413 : rc == LK_EMEMLIMIT ? 503 : 500;
    return LK_HP_CB_ERROR;
}

static int on_message_complete(lk_hp *p)
{
    return LK_HP_CB_PAUSE;
}

static const struct lk_hp_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- accepting ---- */

/* Best effort: one non-blocking write, then close, whatever happened. */
static void reject_busy(uv_stream_t *s)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n"
                               "Content-Length: 20\r\n"
                               "Connection: close\r\n"
                               "\r\n"
                               "too many connections";
    uv_buf_t ub = uv_buf_init((char *)busy, sizeof(busy) - 1);
    (void)uv_try_write(s, &ub, 1);
    uv_close((uv_handle_t *)s, (uv_close_cb)free);
}

static void on_connection(uv_stream_t *server, int status)
{
    lk_httpd *h = server->data;
    if (status < 0) {
        lk_log(LK_LOG_WARN, "http accept failed",
               LK_S("server", h->name) LK_S("error", uv_strerror(status)));
        return;
    }
    uv_stream_t *s = lk_listener_accept(&h->listener, h->loop);
    if (s == NULL)
        return;
    if (h->closing) {
        uv_close((uv_handle_t *)s, (uv_close_cb)free);
        return;
    }
    if (h->nlive >= h->max_connections) {
        if (h->idle_head == NULL) {
            lk_log(LK_LOG_DEBUG, "http connection refused: all busy",
                   LK_S("server", h->name) LK_U("max", h->max_connections));
            lk_counter_add(h->connections_refused, 1);
            reject_busy(s);
            return;
        }
        close_for(h->idle_head, LK_CONN_CLOSED_EVICTED);
    }
    conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        uv_close((uv_handle_t *)s, (uv_close_cb)free);
        return;
    }
    c->h = h;
    c->stream = s;
    s->data = c;
    uv_timer_init(h->loop, &c->timer);
    c->timer.data = c;
    c->continue_req.data = c;
    c->handles_open = 2;
    lk_buf_init(&c->wbuf, MAX_RESPONSE_BYTES);
    lk_buf_init(&c->req.hbuf, h->max_header_bytes);
    lk_buf_init(&c->req.body, h->max_body_bytes);
    /* Bodies count in the memory budget as they arrive; the rest is
     * bounded per connection and charged whatever the limit. */
    lk_buf_charge(&c->wbuf, LK_MEM_RECEIVERS, false);
    lk_buf_charge(&c->req.hbuf, LK_MEM_RECEIVERS, false);
    lk_buf_charge(&c->req.body, LK_MEM_RECEIVERS, true);
    lk_mem_charge(LK_MEM_RECEIVERS, sizeof(*c));
    c->req.c = c;
    c->handshake_deadline = uv_now(h->loop) + h->handshake_timeout_ms;
    lk_hp_init(&c->parser, &parser_settings, c);
    c->next = h->conns;
    if (h->conns != NULL)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    h->nlive++;
    lk_gauge_set(h->connections, h->nconns);
    next_request(c);
}

/* ---- public ---- */

static void free_failed_httpd(uv_handle_t *handle)
{
    lk_httpd *h = handle->data;
    free(h->name);
    free(h);
}

int lk_httpd_create(lk_httpd **out, uv_loop_t *loop,
                    const struct lk_httpd_opts *o, lk_httpd_handler handler,
                    void *arg)
{
    if (o == NULL || o->endpoint == NULL || handler == NULL)
        return LK_EINVAL;
    lk_httpd *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return LK_ENOMEM;
    h->loop = loop;
    h->handler = handler;
    h->arg = arg;
    h->name = strdup(o->name != NULL ? o->name : "httpd");
    if (h->name == NULL) {
        free(h);
        return LK_ENOMEM;
    }
    h->max_connections =
        o->max_connections ? o->max_connections : DEFAULT_MAX_CONNECTIONS;
    h->max_header_bytes =
        o->max_header_bytes ? o->max_header_bytes : DEFAULT_MAX_HEADER_BYTES;
    h->max_body_bytes =
        o->max_body_bytes ? o->max_body_bytes : DEFAULT_MAX_BODY_BYTES;
    h->idle_timeout_ms =
        o->idle_timeout_ms ? o->idle_timeout_ms : DEFAULT_IDLE_TIMEOUT_MS;
    h->request_timeout_ms = o->request_timeout_ms ? o->request_timeout_ms
                                                  : DEFAULT_REQUEST_TIMEOUT_MS;
    h->handshake_timeout_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms
                                                      : DEFAULT_HANDSHAKE_TIMEOUT_MS;
    h->connections = o->connections;
    h->connections_refused = o->connections_refused;
    memcpy(h->closed, o->closed, sizeof(h->closed));
    h->on_reject = o->on_reject;
    h->reject_arg = o->reject_arg;
    int rc = lk_listener_start(&h->listener, loop, o->endpoint, LK_LISTEN_BACKLOG,
                               on_connection, h);
    if (rc < 0) {
        if (lk_listener_is_open(&h->listener)) {
            /* The handle lives inside |h|: free it in the close callback. */
            lk_listener_close(&h->listener, free_failed_httpd);
        } else {
            free(h->name); /* the handle was never initialised */
            free(h);
        }
        return rc;
    }
    h->listener_open = true;
    *out = h;
    return 0;
}

int lk_httpd_port(const lk_httpd *h)
{
    if (h->listener.is_unix)
        return -1;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getsockname(&h->listener.h.tcp, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

static void on_listener_close(uv_handle_t *handle)
{
    lk_httpd *h = handle->data;
    h->listener_open = false;
    httpd_maybe_done(h);
}

void lk_httpd_set_limits(lk_httpd *h, const struct lk_httpd_opts *o)
{
    if (o->max_connections)
        h->max_connections = o->max_connections;
    if (o->max_header_bytes)
        h->max_header_bytes = o->max_header_bytes;
    if (o->max_body_bytes)
        h->max_body_bytes = o->max_body_bytes;
    if (o->idle_timeout_ms)
        h->idle_timeout_ms = o->idle_timeout_ms;
    if (o->request_timeout_ms)
        h->request_timeout_ms = o->request_timeout_ms;
    if (o->handshake_timeout_ms)
        h->handshake_timeout_ms = o->handshake_timeout_ms;
}

void lk_httpd_close(lk_httpd *h, void (*done)(void *arg), void *arg)
{
    if (h == NULL || h->closing)
        return;
    h->closing = true;
    h->done = done;
    h->done_arg = arg;
    for (conn *c = h->conns; c != NULL; c = c->next)
        conn_close(c);
    lk_listener_close(&h->listener, on_listener_close);
}

const char *lk_httpd_req_method(const lk_httpd_req *r)
{
    return r->method;
}

bool lk_httpd_req_is_head(const lk_httpd_req *r)
{
    return r->head;
}

const char *lk_httpd_req_path(const lk_httpd_req *r)
{
    return r->path;
}

const char *lk_httpd_req_query(const lk_httpd_req *r)
{
    return r->query;
}

const char *lk_httpd_req_header(const lk_httpd_req *r, const char *name)
{
    const char *base = (const char *)r->hbuf.data;
    for (size_t i = 0; i < r->nhdrs; i++) {
        if (strcasecmp(base + r->hdrs[i].name, name) == 0)
            return base + r->hdrs[i].value;
    }
    return NULL;
}

size_t lk_httpd_req_header_count(const lk_httpd_req *r)
{
    return r->nhdrs;
}

bool lk_httpd_req_header_at(const lk_httpd_req *r, size_t i,
                            const char **name, const char **value)
{
    if (i >= r->nhdrs)
        return false;
    const char *base = (const char *)r->hbuf.data;
    *name = base + r->hdrs[i].name;
    *value = base + r->hdrs[i].value;
    return true;
}

const uint8_t *lk_httpd_req_body(const lk_httpd_req *r, size_t *len)
{
    *len = r->body.len;
    return r->body.len > 0 ? r->body.data : (const uint8_t *)"";
}

bool lk_httpd_req_is_abandoned(const lk_httpd_req *r)
{
    return r->c->closing;
}

void lk_httpd_req_on_abandon(lk_httpd_req *r, lk_httpd_abandon_cb cb, void *arg)
{
    r->on_abandon = cb;
    r->abandon_arg = arg;
}

int lk_httpd_respond(lk_httpd_req *r, int status, const char *content_type,
                     const char *extra_headers, const void *body, size_t len)
{
    conn *c = r->c;
    if (!c->req_pending || status < 200 || status > 599)
        return LK_EINVAL;
    c->req_pending = false;
    r->on_abandon = NULL;
    if (c->closing) {
        conn_maybe_free(c);
        return LK_ECLOSED;
    }
    c->close_after = !r->keep_alive || c->h->closing;
    bool keep_alive_hdr = r->keep_alive && r->http10;
    int rc = write_response(c, status, content_type, extra_headers, body, len,
                            !r->head, keep_alive_hdr);
    if (rc < 0)
        conn_close(c);
    return rc;
}
