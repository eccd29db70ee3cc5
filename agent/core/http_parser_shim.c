#include "core/http_parser_shim.h"

#include <stddef.h>

/* The native parser is the first member of lk_hp: native callbacks get back
 * to the shim object from the pointer they are given. */
#define SHIM_OF(native) ((lk_hp *)(void *)((char *)(native) - offsetof(lk_hp, impl)))

static int call_notify(lk_hp *p, lk_hp_cb cb)
{
    if (cb == NULL || cb(p) == LK_HP_CB_OK)
        return 0;
    p->callback_failed = true;
    return -1;
}

static int call_data(lk_hp *p, lk_hp_data_cb cb, const char *at, size_t len)
{
    if (cb == NULL || cb(p, at, len) == LK_HP_CB_OK)
        return 0;
    p->callback_failed = true;
    return -1;
}

#ifdef LK_HAVE_LLHTTP

/* ---- llhttp (https://github.com/nodejs/llhttp, API of llhttp.h) ---- */

static int t_message_begin(llhttp_t *n)
{
    lk_hp *p = SHIM_OF(n);
    return call_notify(p, p->settings->on_message_begin);
}

static int t_url(llhttp_t *n, const char *at, size_t len)
{
    lk_hp *p = SHIM_OF(n);
    return call_data(p, p->settings->on_url, at, len);
}

static int t_header_field(llhttp_t *n, const char *at, size_t len)
{
    lk_hp *p = SHIM_OF(n);
    return call_data(p, p->settings->on_header_field, at, len);
}

static int t_header_value(llhttp_t *n, const char *at, size_t len)
{
    lk_hp *p = SHIM_OF(n);
    return call_data(p, p->settings->on_header_value, at, len);
}

static int t_headers_complete(llhttp_t *n)
{
    lk_hp *p = SHIM_OF(n);
    return call_notify(p, p->settings->on_headers_complete);
}

static int t_body(llhttp_t *n, const char *at, size_t len)
{
    lk_hp *p = SHIM_OF(n);
    return call_data(p, p->settings->on_body, at, len);
}

/* llhttp pauses when a callback returns HPE_PAUSED (llhttp_pause() must not
 * be called from inside a callback). */
static int t_message_complete(llhttp_t *n)
{
    lk_hp *p = SHIM_OF(n);
    if (p->settings->on_message_complete == NULL)
        return 0;
    int r = p->settings->on_message_complete(p);
    if (r == LK_HP_CB_PAUSE) {
        p->pause = true;
        return HPE_PAUSED;
    }
    if (r != LK_HP_CB_OK) {
        p->callback_failed = true;
        return -1;
    }
    return 0;
}

/* Members this initializer does not name (newer llhttp versions add some)
 * are zero, which llhttp reads as "no callback". */
static const llhttp_settings_t native_settings = {
    .on_message_begin = t_message_begin,
    .on_url = t_url,
    .on_header_field = t_header_field,
    .on_header_value = t_header_value,
    .on_headers_complete = t_headers_complete,
    .on_body = t_body,
    .on_message_complete = t_message_complete,
};

void lk_hp_init(lk_hp *p, const struct lk_hp_settings *settings, void *data)
{
    llhttp_init(&p->impl, HTTP_REQUEST, &native_settings);
    p->settings = settings;
    p->data = data;
    p->pause = false;
    p->callback_failed = false;
}

enum lk_hp_status lk_hp_execute(lk_hp *p, const char *data, size_t len,
                                size_t *consumed)
{
    *consumed = 0;
    if (len == 0)
        return LK_HP_OK;
    llhttp_errno_t e = llhttp_execute(&p->impl, data, len);
    if (e == HPE_OK) {
        *consumed = len;
        return LK_HP_OK;
    }
    /* On any stop llhttp records where it stopped. */
    const char *pos = llhttp_get_error_pos(&p->impl);
    if (pos != NULL && pos >= data && pos <= data + len)
        *consumed = (size_t)(pos - data);
    if (e == HPE_PAUSED && p->pause)
        return LK_HP_PAUSED;
    if (e == HPE_PAUSED_UPGRADE)
        return LK_HP_UPGRADE;
    return LK_HP_ERROR;
}

void lk_hp_resume(lk_hp *p)
{
    if (p->pause) {
        p->pause = false;
        llhttp_resume(&p->impl);
    }
}

bool lk_hp_error_is_callback(const lk_hp *p)
{
    return p->callback_failed;
}

/* llhttp has no header size limit of its own; httpd.c enforces one. */
bool lk_hp_error_is_header_overflow(const lk_hp *p)
{
    return false;
}

const char *lk_hp_error_name(const lk_hp *p)
{
    return llhttp_errno_name(llhttp_get_errno(&p->impl));
}

const char *lk_hp_method(const lk_hp *p)
{
    return llhttp_method_name((llhttp_method_t)p->impl.method);
}

bool lk_hp_method_is_head(const lk_hp *p)
{
    return p->impl.method == HTTP_HEAD;
}

int lk_hp_http_major(const lk_hp *p)
{
    return p->impl.http_major;
}

int lk_hp_http_minor(const lk_hp *p)
{
    return p->impl.http_minor;
}

bool lk_hp_should_keep_alive(const lk_hp *p)
{
    return llhttp_should_keep_alive(&p->impl) != 0;
}

bool lk_hp_content_length(const lk_hp *p, uint64_t *len)
{
    if ((p->impl.flags & F_CONTENT_LENGTH) == 0)
        return false;
    *len = p->impl.content_length;
    return true;
}

bool lk_hp_is_chunked(const lk_hp *p)
{
    return (p->impl.flags & F_CHUNKED) != 0;
}

bool lk_hp_is_upgrade(const lk_hp *p)
{
    return p->impl.upgrade != 0;
}

#else

/* ---- http-parser 2.9 (https://github.com/nodejs/http-parser) ---- */

static int t_message_begin(http_parser *n)
{
    lk_hp *p = SHIM_OF(n);
    return call_notify(p, p->settings->on_message_begin);
}

static int t_url(http_parser *n, const char *at, size_t len)
{
    lk_hp *p = SHIM_OF(n);
    return call_data(p, p->settings->on_url, at, len);
}

static int t_header_field(http_parser *n, const char *at, size_t len)
{
    lk_hp *p = SHIM_OF(n);
    return call_data(p, p->settings->on_header_field, at, len);
}

static int t_header_value(http_parser *n, const char *at, size_t len)
{
    lk_hp *p = SHIM_OF(n);
    return call_data(p, p->settings->on_header_value, at, len);
}

static int t_headers_complete(http_parser *n)
{
    lk_hp *p = SHIM_OF(n);
    return call_notify(p, p->settings->on_headers_complete);
}

static int t_body(http_parser *n, const char *at, size_t len)
{
    lk_hp *p = SHIM_OF(n);
    return call_data(p, p->settings->on_body, at, len);
}

/* http-parser pauses through http_parser_pause(), which may be called from a
 * callback; execute then stops right after the current message. */
static int t_message_complete(http_parser *n)
{
    lk_hp *p = SHIM_OF(n);
    if (p->settings->on_message_complete == NULL)
        return 0;
    int r = p->settings->on_message_complete(p);
    if (r == LK_HP_CB_PAUSE) {
        p->pause = true;
        http_parser_pause(n, 1);
        return 0;
    }
    if (r != LK_HP_CB_OK) {
        p->callback_failed = true;
        return -1;
    }
    return 0;
}

static const http_parser_settings native_settings = {
    .on_message_begin = t_message_begin,
    .on_url = t_url,
    .on_header_field = t_header_field,
    .on_header_value = t_header_value,
    .on_headers_complete = t_headers_complete,
    .on_body = t_body,
    .on_message_complete = t_message_complete,
};

void lk_hp_init(lk_hp *p, const struct lk_hp_settings *settings, void *data)
{
    http_parser_init(&p->impl, HTTP_REQUEST);
    p->settings = settings;
    p->data = data;
    p->pause = false;
    p->callback_failed = false;
}

enum lk_hp_status lk_hp_execute(lk_hp *p, const char *data, size_t len,
                                size_t *consumed)
{
    *consumed = 0;
    /* A zero length means end of stream to http-parser; never pass one. */
    if (len == 0)
        return LK_HP_OK;
    size_t n = http_parser_execute(&p->impl, &native_settings, data, len);
    *consumed = n;
    enum http_errno e = HTTP_PARSER_ERRNO(&p->impl);
    if (e == HPE_PAUSED && p->pause)
        return LK_HP_PAUSED;
    if (e != HPE_OK)
        return LK_HP_ERROR;
    if (p->impl.upgrade)
        return LK_HP_UPGRADE;
    return n == len ? LK_HP_OK : LK_HP_ERROR;
}

void lk_hp_resume(lk_hp *p)
{
    if (p->pause) {
        p->pause = false;
        http_parser_pause(&p->impl, 0);
    }
}

bool lk_hp_error_is_callback(const lk_hp *p)
{
    return p->callback_failed;
}

bool lk_hp_error_is_header_overflow(const lk_hp *p)
{
    return HTTP_PARSER_ERRNO(&p->impl) == HPE_HEADER_OVERFLOW;
}

const char *lk_hp_error_name(const lk_hp *p)
{
    return http_errno_name(HTTP_PARSER_ERRNO(&p->impl));
}

const char *lk_hp_method(const lk_hp *p)
{
    return http_method_str((enum http_method)p->impl.method);
}

bool lk_hp_method_is_head(const lk_hp *p)
{
    return p->impl.method == HTTP_HEAD;
}

int lk_hp_http_major(const lk_hp *p)
{
    return p->impl.http_major;
}

int lk_hp_http_minor(const lk_hp *p)
{
    return p->impl.http_minor;
}

bool lk_hp_should_keep_alive(const lk_hp *p)
{
    return http_should_keep_alive(&p->impl) != 0;
}

bool lk_hp_content_length(const lk_hp *p, uint64_t *len)
{
    if ((p->impl.flags & F_CONTENTLENGTH) == 0)
        return false;
    *len = p->impl.content_length;
    return true;
}

bool lk_hp_is_chunked(const lk_hp *p)
{
    return (p->impl.flags & F_CHUNKED) != 0;
}

bool lk_hp_is_upgrade(const lk_hp *p)
{
    return p->impl.upgrade != 0;
}

#endif
