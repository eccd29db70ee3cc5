/*
 * One face for the two HTTP/1.x request parsers lookout builds with: llhttp
 * where present (Homebrew; the Makefile defines LK_HAVE_LLHTTP) and Node's
 * http-parser otherwise (Debian's libhttp-parser-dev 2.9). Both are
 * callback-driven and zero-copy; this shim only evens out how they report
 * progress, pausing and errors, so that httpd.c is written once.
 *
 * The parser is embedded by value and needs no cleanup.
 */
#ifndef LK_CORE_HTTP_PARSER_SHIM_H
#define LK_CORE_HTTP_PARSER_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef LK_HAVE_LLHTTP
#include <llhttp.h>
#else
#include <http_parser.h>
#endif

typedef struct lk_hp lk_hp;

/*
 * Data callbacks may be called several times for one item (a URL, a header
 * name or value, the body), each time with the next piece; |at| points into
 * the buffer given to lk_hp_execute and is valid only during the call.
 * Every callback returns 0 to continue or LK_HP_CB_ERROR to stop with an
 * error; on_message_complete may also return LK_HP_CB_PAUSE to stop right
 * after the message (lk_hp_execute then returns LK_HP_PAUSED).
 */
typedef int (*lk_hp_data_cb)(lk_hp *p, const char *at, size_t len);
typedef int (*lk_hp_cb)(lk_hp *p);

enum { LK_HP_CB_OK = 0, LK_HP_CB_ERROR = -1, LK_HP_CB_PAUSE = 1 };

struct lk_hp_settings {
    lk_hp_cb on_message_begin;
    lk_hp_data_cb on_url;
    lk_hp_data_cb on_header_field; /* trailers of a chunked body come here too */
    lk_hp_data_cb on_header_value;
    lk_hp_cb on_headers_complete;
    lk_hp_data_cb on_body; /* decoded: chunk framing removed */
    lk_hp_cb on_message_complete;
};

struct lk_hp {
#ifdef LK_HAVE_LLHTTP
    llhttp_t impl;
#else
    http_parser impl;
#endif
    const struct lk_hp_settings *settings; /* not owned */
    void *data;                            /* the caller's */
    bool pause;      /* set by the trampoline when on_message_complete pauses */
    bool callback_failed;
};

/* Results of lk_hp_execute. */
enum lk_hp_status {
    LK_HP_OK,      /* every byte consumed; feed more when it arrives */
    LK_HP_PAUSED,  /* stopped after a complete message; resume, then feed the rest */
    LK_HP_UPGRADE, /* an Upgrade/CONNECT request ended; what follows is not HTTP/1 */
    LK_HP_ERROR,   /* malformed input or a callback error; the parser is dead */
};

/* Prepares |p| to parse requests, calling |settings| (kept, not copied). */
void lk_hp_init(lk_hp *p, const struct lk_hp_settings *settings, void *data);
/*
 * Parses |len| bytes at |data|. |*consumed| gets the bytes used: all of them
 * for LK_HP_OK; up to the end of the paused or upgraded message for
 * LK_HP_PAUSED / LK_HP_UPGRADE; up to the error for LK_HP_ERROR.
 */
enum lk_hp_status lk_hp_execute(lk_hp *p, const char *data, size_t len,
                                size_t *consumed);
/* Clears a pause so that the next lk_hp_execute continues. */
void lk_hp_resume(lk_hp *p);

/* After LK_HP_ERROR: whether a callback stopped the parser (the caller
 * knows why) rather than the input being malformed. */
bool lk_hp_error_is_callback(const lk_hp *p);
/* After LK_HP_ERROR: whether the parser's own header size limit was hit. */
bool lk_hp_error_is_header_overflow(const lk_hp *p);
/* A static name for the last error, e.g. "HPE_INVALID_METHOD". */
const char *lk_hp_error_name(const lk_hp *p);

/* Valid from on_headers_complete on. */
const char *lk_hp_method(const lk_hp *p); /* "GET", "POST", ... */
bool lk_hp_method_is_head(const lk_hp *p);
int lk_hp_http_major(const lk_hp *p);
int lk_hp_http_minor(const lk_hp *p);
/* Whether the connection may stay open after this message (HTTP/1.1 unless
 * "Connection: close"; HTTP/1.0 only with "Connection: keep-alive"). */
bool lk_hp_should_keep_alive(const lk_hp *p);
/* Whether a Content-Length header was given, and its value in |*len|. */
bool lk_hp_content_length(const lk_hp *p, uint64_t *len);
bool lk_hp_is_chunked(const lk_hp *p);
bool lk_hp_is_upgrade(const lk_hp *p);

#endif
