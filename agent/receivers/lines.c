/*
 * Line receiver. Each read callback frames what arrived into lines, encodes
 * them straight into one OTLP ExportLogsServiceRequest (a ResourceLogs per
 * run of lines with the same service and sender) and offers that item to the
 * logs pipeline. When the pipeline refuses and the policy is block, the item
 * is kept and the socket is no longer read until a timer gets it accepted:
 * the kernel buffer fills and writers block, so nothing is lost. With
 * storage.durable the socket is not read either until what was offered is
 * committed (struct feed).
 */
#include "receivers/lines.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/membudget.h"
#include "core/net.h"
#include "core/pbwire.h"
#include "core/severity.h"
#include "core/utf8.h"
#include "pipeline/item.h"
#include "pipeline/loki_entries.h"

/* The config's enum is cast to the parser's. */
_Static_assert((int)LK_LINES_AUTO == (int)LK_LINE_AUTO && (int)LK_LINES_JSON == (int)LK_LINE_JSON &&
                   (int)LK_LINES_LOGFMT == (int)LK_LINE_LOGFMT &&
                   (int)LK_LINES_RAW == (int)LK_LINE_RAW,
               "enum lk_lines_format and enum lk_line_format must match");

#define REQ_MAX (256u * 1024 * 1024) /* bytes of one request being built */
#define MIN_READ_BUF (64u * 1024)    /* a connection's buffer may grow to this
                                        even when lines are limited to less */
#define FIRST_READ_BUF (16u * 1024)
#define DGRAMS_PER_WAKEUP 512        /* then yield to the rest of the loop */
#define RETRY_MS 10                  /* re-offer a refused item this often */
#define CLOSE_READ_MAX (16u * 1024 * 1024) /* per connection, when closing */
#define CLOSE_READ_ROUNDS 64         /* of DGRAMS_PER_WAKEUP, when closing */

/* ---- protobuf writing ---- */

/* Pointer-advancing forms of core/pbwire for records written in place. */
static uint8_t *put_tag(uint8_t *p, uint32_t field, uint32_t wt)
{
    return p + lk_pb_put_varint(p, (uint64_t)field << 3 | wt);
}

static uint8_t *put_len_field(uint8_t *p, uint32_t field, const void *data, size_t n)
{
    p = put_tag(p, field, LK_PB_LEN);
    p += lk_pb_put_varint(p, n);
    memcpy(p, data, n);
    return p + n;
}

static uint8_t *put_fixed64(uint8_t *p, uint32_t field, uint64_t v)
{
    p = put_tag(p, field, LK_PB_I64);
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

/* Size of a length-delimited field with a one-byte tag (field < 16). */
static size_t len_field_size(size_t n)
{
    return 1 + lk_pb_varint_len(n) + n;
}

/* Appends a Resource attribute (field 1, KeyValue) with a string value. */
static int put_kv_string(lk_buf *b, const char *key, const char *val, size_t vlen)
{
    size_t klen = strlen(key);
    size_t any = len_field_size(vlen);                    /* string_value = 1 */
    size_t kv = len_field_size(klen) + len_field_size(any); /* key = 1, value = 2 */
    int rc = lk_buf_reserve(b, len_field_size(kv));
    if (rc < 0)
        return rc;
    uint8_t *p = b->data + b->len;
    p = put_tag(p, 1, LK_PB_LEN);
    p += lk_pb_put_varint(p, kv);
    p = put_len_field(p, 1, key, klen);
    p = put_tag(p, 2, LK_PB_LEN);
    p += lk_pb_put_varint(p, any);
    p = put_len_field(p, 1, val, vlen);
    b->len = (size_t)(p - b->data);
    return 0;
}

/* Appends a Resource attribute with an int value (int_value = 3). */
static int put_kv_int(lk_buf *b, const char *key, int64_t v)
{
    size_t klen = strlen(key);
    size_t any = 1 + lk_pb_varint_len((uint64_t)v);
    size_t kv = len_field_size(klen) + len_field_size(any);
    int rc = lk_buf_reserve(b, len_field_size(kv));
    if (rc < 0)
        return rc;
    uint8_t *p = b->data + b->len;
    p = put_tag(p, 1, LK_PB_LEN);
    p += lk_pb_put_varint(p, kv);
    p = put_len_field(p, 1, key, klen);
    p = put_tag(p, 2, LK_PB_LEN);
    p += lk_pb_put_varint(p, any);
    p = put_tag(p, 3, LK_PB_VARINT);
    p += lk_pb_put_varint(p, (uint64_t)v);
    b->len = (size_t)(p - b->data);
    return 0;
}

/* ---- the encoder ---- */

/* Makes a process name valid UTF-8 in place: the kernel cuts names at a
 * byte count, possibly inside a character. Bad bytes become '?'. */
static void sanitize_name(char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t k = lk_utf8_seq_len((const uint8_t *)s + i, n - i);
        if (k == 0) {
            s[i++] = '?';
            continue;
        }
        i += k;
    }
}


/* |n| shortened, when the bytes end inside a UTF-8 sequence (because the
 * line was cut), to end before that sequence. */
static size_t trim_partial_utf8(const uint8_t *p, size_t n)
{
    size_t k = n, back = 0;
    while (k > 0 && back < 3 && (p[k - 1] & 0xc0) == 0x80) {
        k--;
        back++;
    }
    if (k == 0)
        return n;
    uint8_t lead = p[k - 1];
    size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    return need > 1 && back + 1 < need ? k - 1 : n;
}


static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Whether label |name| is named like |target| once it is a Loki name
 * (bytes outside [A-Za-z0-9_] become '_'). */
static bool loki_named(const char *name, const char *target)
{
    size_t n = strlen(target);
    if (strlen(name) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (target[i] == '_' ? word : c != target[i])
            return false;
    }
    return true;
}

int lk_lines_encoder_init(struct lk_lines_encoder *e,
                          const struct lk_lines_receiver_config *cfg,
                          const char *host, const char *source)
{
    memset(e, 0, sizeof(*e));
    lk_buf_init(&e->req, REQ_MAX);
    lk_buf_init(&e->recs, REQ_MAX);
    lk_buf_init(&e->tmp, REQ_MAX);
    lk_buf_init(&e->static_attrs, 1024 * 1024);
    /* Bounded by the item size (item_bytes): charged whatever the limit. */
    lk_buf_charge(&e->req, LK_MEM_RECEIVERS, false);
    lk_buf_charge(&e->recs, LK_MEM_RECEIVERS, false);
    lk_buf_charge(&e->tmp, LK_MEM_RECEIVERS, false);
    e->format = (enum lk_line_format)cfg->format;
    e->entries_ok = true;
    for (size_t i = 0; i < cfg->nlabels; i++)
        if (loki_named(cfg->labels[i].name, "level") ||
            loki_named(cfg->labels[i].name, "trace_id") ||
            loki_named(cfg->labels[i].name, "span_id"))
            e->entries_ok = false;
    if (cfg->service_name != NULL && cfg->service_name[0] != '\0') {
        size_t n = strlen(cfg->service_name);
        if (n >= LK_LINE_SERVICE_MAX)
            n = trim_partial_utf8((const uint8_t *)cfg->service_name, LK_LINE_SERVICE_MAX - 1);
        e->fallback_service = strndup(cfg->service_name, n);
        if (e->fallback_service == NULL)
            return LK_ENOMEM;
    }

    int rc = put_kv_string(&e->static_attrs, "host.name", host, strlen(host));
    if (rc == 0)
        rc = put_kv_string(&e->static_attrs, "lookout.source", source, strlen(source));
    lk_buf hint;
    lk_buf_init(&hint, 64 * 1024);
    for (size_t i = 0; rc == 0 && i < cfg->nlabels; i++) {
        const struct lk_header *l = &cfg->labels[i];
        rc = put_kv_string(&e->static_attrs, l->name, l->value, strlen(l->value));
        if (rc == 0 && i > 0)
            rc = lk_buf_append(&hint, ",", 1);
        if (rc == 0)
            rc = lk_buf_append_str(&hint, l->name);
    }
    /* The exporter makes labels of the keys this attribute names. */
    if (rc == 0 && hint.len > 0)
        rc = put_kv_string(&e->static_attrs, "loki.resource.labels",
                           (const char *)hint.data, hint.len);
    lk_buf_fini(&hint);
    if (rc < 0)
        lk_lines_encoder_fini(e);
    return rc;
}

void lk_lines_encoder_fini(struct lk_lines_encoder *e)
{
    lk_buf_fini(&e->req);
    lk_buf_fini(&e->recs);
    lk_buf_fini(&e->tmp);
    lk_buf_fini(&e->static_attrs);
    free(e->fallback_service);
    e->fallback_service = NULL;
}

void lk_lines_encoder_reset(struct lk_lines_encoder *e)
{
    lk_buf_reset(&e->req);
    lk_buf_reset(&e->recs);
    e->nrecs = 0;
    e->open_recs = 0;
    e->run_at = 0;
}

/* Starts a request: room for the item header (lk_item_adopt) and, so that
 * the request does not grow by copies, for as much as the last one took. */
static int start_request(struct lk_lines_encoder *e)
{
    static const uint8_t zero[LK_ITEM_HEADROOM];
    lk_buf_reset(&e->req);
    int rc = lk_buf_reserve(&e->req, e->req_hint);
    return rc < 0 ? rc : lk_buf_append(&e->req, zero, sizeof(zero));
}

/* The open run's Resource (attributes) into e->tmp. */
static int build_resource(struct lk_lines_encoder *e)
{
    lk_buf *res = &e->tmp;
    lk_buf_reset(res);
    int rc = lk_buf_append(res, e->static_attrs.data, e->static_attrs.len);
    if (rc == 0)
        rc = put_kv_string(res, "service.name", e->service, e->service_len);
    if (rc == 0 && e->origin.cred.pid > 0)
        rc = put_kv_int(res, "process.pid", e->origin.cred.pid);
    if (rc == 0 && e->origin.cred.uid != (unsigned)-1)
        rc = put_kv_int(res, "process.user.id", (int64_t)e->origin.cred.uid);
    if (rc == 0 && e->origin_name[0] != '\0')
        rc = put_kv_string(res, "process.executable.name", e->origin_name,
                           strlen(e->origin_name));
    return rc;
}

/* Writes the open run of records as one ResourceLogs into the request, or
 * (Loki entries, written into the request as they came) ends the run. */
static int close_resource(struct lk_lines_encoder *e)
{
    if (e->form == LK_FORM_LOKI_ENTRIES) {
        if (e->run_at != 0)
            lk_loki_run_close(&e->req, e->run_at, e->open_recs);
        e->run_at = 0;
        e->open_recs = 0;
        return 0;
    }
    if (e->open_recs == 0)
        return 0;
    lk_buf *res = &e->tmp;
    int rc = build_resource(e);
    if (rc < 0)
        return rc;
    /* ResourceLogs { resource = 1 { attributes }, scope_logs = 2 { log_records } } */
    size_t rl = len_field_size(res->len) + len_field_size(e->recs.len);
    rc = lk_buf_reserve(&e->req, len_field_size(rl));
    if (rc < 0)
        return rc;
    uint8_t *p = e->req.data + e->req.len;
    p = put_tag(p, 1, LK_PB_LEN); /* ExportLogsServiceRequest.resource_logs */
    p += lk_pb_put_varint(p, rl);
    p = put_len_field(p, 1, res->data, res->len);
    p = put_len_field(p, 2, e->recs.data, e->recs.len);
    e->req.len = (size_t)(p - e->req.data);
    lk_buf_reset(&e->recs);
    e->open_recs = 0;
    return 0;
}

static bool same_origin(const struct lk_lines_encoder *e, const struct lk_lines_origin *o)
{
    return e->origin.cred.pid == o->cred.pid && e->origin.cred.uid == o->cred.uid &&
           strcmp(e->origin_name, o->process_name) == 0;
}

/* Copies |p| into |out| with every invalid UTF-8 sequence replaced by
 * U+FFFD. */
static int repair_utf8(lk_buf *out, const uint8_t *p, size_t n)
{
    static const uint8_t fffd[3] = {0xef, 0xbf, 0xbd};
    lk_buf_reset(out);
    int rc = lk_buf_reserve(out, n + n / 2 + 3);
    size_t i = 0;
    while (rc == 0 && i < n) {
        size_t run = i;
        while (run < n && p[run] < 0x80)
            run++;
        size_t k = run > i ? 0 : lk_utf8_seq_len(p + i, n - i);
        if (run > i) {
            rc = lk_buf_append(out, p + i, run - i);
            i = run;
        } else if (k > 0) {
            rc = lk_buf_append(out, p + i, k);
            i += k;
        } else {
            rc = lk_buf_append(out, fffd, sizeof(fffd));
            i++;
        }
    }
    return rc;
}

/* The line as a Loki entry of the open run, with what the Loki exporter
 * would make of its OTLP record: the time (the line's, else when it was
 * received), the line, and level, trace_id and span_id metadata. */
static int add_entry(struct lk_lines_encoder *e, const struct lk_line_fields *f,
                     const uint8_t *body, size_t blen, uint64_t received_ns)
{
    const char *lvl = lk_severity_level_norm(f->severity_number, f->level, f->level_len);
    struct lk_loki_entry_fields en = {
        .ts = f->time_ns != 0 ? f->time_ns : received_ns,
        .severity_number = f->severity_number,
        .line = body,
        .line_len = blen,
        .level = lvl != NULL ? lvl : f->level,
        .level_len = lvl != NULL ? strlen(lvl) : f->level_len,
        .trace_id = f->has_trace_id ? f->trace_id : NULL,
        .span_id = f->has_span_id ? f->span_id : NULL,
    };
    int rc = lk_loki_entry_append(&e->req, &en);
    if (rc < 0)
        return rc;
    e->open_recs++;
    e->nrecs++;
    return 0;
}

int lk_lines_encoder_add(struct lk_lines_encoder *e, const struct lk_lines_origin *given,
                         const uint8_t *line, size_t len, uint64_t received_ns)
{
    struct lk_line_fields f;
    lk_line_parse(e->format, line, len, &f);
    int rc;
    if (e->nrecs == 0 && e->run_at == 0) {
        e->form = e->want_entries && e->entries_ok ? LK_FORM_LOKI_ENTRIES : LK_FORM_OTLP;
        rc = start_request(e);
        if (rc < 0)
            return rc;
    }

    /* The name goes into string attributes: it must be valid UTF-8. The
     * lines of one read share their origin: its name is cleaned once. */
    char pname[sizeof(e->origin_name)];
    struct lk_lines_origin origin = {.cred = given->cred, .process_name = pname};
    if (e->open_recs > 0 && given->process_name == e->origin_raw &&
        given->cred.pid == e->origin.cred.pid && given->cred.uid == e->origin.cred.uid) {
        origin.process_name = e->origin_name;
    } else {
        size_t plen = strnlen(given->process_name, sizeof(pname) - 1);
        memcpy(pname, given->process_name, plen);
        pname[plen] = '\0';
        sanitize_name(pname);
    }
    const struct lk_lines_origin *o = &origin;

    const char *svc = f.service;
    size_t svc_len = f.service_len;
    if (svc_len == 0 && e->fallback_service != NULL) {
        svc = e->fallback_service;
        svc_len = strlen(svc);
    }
    if (svc_len == 0 && o->process_name[0] != '\0') {
        svc = o->process_name;
        svc_len = strlen(svc);
    }
    if (svc_len == 0) {
        svc = "unknown_service";
        svc_len = strlen(svc);
    }
    if (svc_len >= sizeof(e->service))
        svc_len = trim_partial_utf8((const uint8_t *)svc, sizeof(e->service) - 1);

    if ((e->open_recs > 0 || e->run_at != 0) &&
        (svc_len != e->service_len || memcmp(svc, e->service, svc_len) != 0 ||
         !same_origin(e, o))) {
        rc = close_resource(e);
        if (rc < 0)
            return rc;
    }
    if (e->open_recs == 0 && e->run_at == 0) {
        memcpy(e->service, svc, svc_len);
        e->service[svc_len] = '\0';
        e->service_len = svc_len;
        e->origin = *o;
        if (o->process_name != e->origin_name)
            snprintf(e->origin_name, sizeof(e->origin_name), "%s", o->process_name);
        e->origin.process_name = e->origin_name;
        e->origin_raw = given->process_name;
        if (e->form == LK_FORM_LOKI_ENTRIES) {
            /* Entries go straight into the request behind their run's head. */
            rc = build_resource(e);
            if (rc == 0)
                rc = lk_loki_run_open(&e->req, e->tmp.data, e->tmp.len, &e->run_at);
            if (rc < 0)
                return rc;
        }
    }

    const uint8_t *body = line;
    size_t blen = len;
    if (!lk_utf8_is_valid(line, len)) {
        rc = repair_utf8(&e->tmp, line, len);
        if (rc < 0)
            return rc;
        body = e->tmp.data;
        blen = e->tmp.len;
        e->invalid_utf8++;
    }

    if (e->form == LK_FORM_LOKI_ENTRIES)
        return add_entry(e, &f, body, blen, received_ns);

    /* LogRecord: time_unix_nano = 1, severity_number = 2, severity_text = 3,
     * body = 5 { string_value = 1 }, trace_id = 9, span_id = 10,
     * observed_time_unix_nano = 11. */
    size_t any = len_field_size(blen);
    size_t rec = 9 /* observed */ + len_field_size(any);
    if (f.time_ns != 0)
        rec += 9;
    if (f.severity_number != 0)
        rec += 1 + lk_pb_varint_len((uint64_t)f.severity_number);
    if (f.level_len != 0)
        rec += len_field_size(f.level_len);
    if (f.has_trace_id)
        rec += len_field_size(16);
    if (f.has_span_id)
        rec += len_field_size(8);
    rc = lk_buf_reserve(&e->recs, len_field_size(rec));
    if (rc < 0)
        return rc;
    uint8_t *p = e->recs.data + e->recs.len;
    p = put_tag(p, 2, LK_PB_LEN); /* ScopeLogs.log_records */
    p += lk_pb_put_varint(p, rec);
    if (f.time_ns != 0)
        p = put_fixed64(p, 1, f.time_ns);
    if (f.severity_number != 0) {
        p = put_tag(p, 2, LK_PB_VARINT);
        p += lk_pb_put_varint(p, (uint64_t)f.severity_number);
    }
    if (f.level_len != 0)
        p = put_len_field(p, 3, f.level, f.level_len);
    p = put_tag(p, 5, LK_PB_LEN);
    p += lk_pb_put_varint(p, any);
    p = put_len_field(p, 1, body, blen);
    if (f.has_trace_id)
        p = put_len_field(p, 9, f.trace_id, 16);
    if (f.has_span_id)
        p = put_len_field(p, 10, f.span_id, 8);
    p = put_fixed64(p, 11, received_ns);
    e->recs.len = (size_t)(p - e->recs.data);
    e->open_recs++;
    e->nrecs++;
    return 0;
}

uint32_t lk_lines_encoder_finish(struct lk_lines_encoder *e, const uint8_t **data,
                                 size_t *len)
{
    if (close_resource(e) < 0) {
        /* Out of memory for the last run: what is complete still goes. */
        e->nrecs -= e->open_recs;
        lk_buf_reset(&e->recs);
        e->open_recs = 0;
    }
    /* The request follows the room left for the item header. */
    *data = e->req.len > LK_ITEM_HEADROOM ? e->req.data + LK_ITEM_HEADROOM : e->req.data;
    *len = e->req.len > LK_ITEM_HEADROOM ? e->req.len - LK_ITEM_HEADROOM : 0;
    return e->nrecs;
}

/* ---- the receiver ---- */

/* Items refused by the pipeline, oldest first, until it takes them. */
struct held {
    lk_item **v;
    size_t head, n, cap;
};

static int held_push(struct held *q, lk_item *it)
{
    if (q->n == q->cap) {
        size_t ncap = q->cap ? 2 * q->cap : 4;
        lk_item **v = malloc(ncap * sizeof(*v));
        if (v == NULL)
            return LK_ENOMEM;
        for (size_t i = 0; i < q->n; i++)
            v[i] = q->v[(q->head + i) % q->cap];
        free(q->v);
        q->v = v;
        q->cap = ncap;
        q->head = 0;
    }
    q->v[(q->head + q->n) % q->cap] = it;
    q->n++;
    return 0;
}

static void held_pop(struct held *q)
{
    q->head = (q->head + 1) % q->cap;
    q->n--;
}

static void held_fini(struct held *q)
{
    for (size_t i = 0; i < q->n; i++)
        lk_item_unref(q->v[(q->head + i) % q->cap]);
    free(q->v);
    memset(q, 0, sizeof(*q));
}

/*
 * Where items come from: a stream connection, or the datagram socket. With
 * storage.durable, what one read (one timer flush, one retry) of a feed
 * offers shares an ack, and the feed is not read again until it is
 * committed: the writer's next lines wait in the socket buffer, as for a
 * full pipeline. A feed has at most one ack at a time.
 */
struct feed {
    struct held held;  /* refused, waiting for room (block policy), in order */
    lk_ack *ack;       /* the ack of what is being offered, or waited for */
    uint64_t acked;    /* records offered under |ack|: accepted once committed */
    bool waiting;      /* |ack| is sealed: reading waits for its callback */
    lk_lines *r;
    struct conn *c;    /* NULL: the datagram socket */
};

struct conn {
    uv_pipe_t h;
    uv_timer_t idle; /* runs while a partial line waits for the writer */
    int pending;     /* handles still closing */
    lk_lines *r;
    struct conn *prev, *next;
    struct lk_lines_origin origin;
    char pname[64];
    struct lk_line_framer framer;
    bool ended;      /* EOF or error seen: close once |feed| is through */
    bool closing;
    struct feed feed;
};

struct lk_lines {
    uv_loop_t *loop;
    char *name;
    char *path;
    dev_t dev; /* of the socket file we made: unlinked at close only if still ours */
    ino_t ino;
    bool datagram;
    uint64_t max_line;
    uint32_t max_conns;
    uint64_t idle_timeout_ms; /* 0: writers are never closed for silence */
    enum lk_lines_overflow overflow;
    lk_pipeline *logs;
    struct lk_lines_encoder enc;

    uv_pipe_t listener; /* stream */
    uv_poll_t poll;     /* datagram */
    int dgram_fd;
    bool handle_open;
    uint8_t *dgram_buf;   /* max_line + 2: a full line with its CRLF fits */
    struct feed dgram;
    uint64_t item_recs;   /* largest item to make: see lk_pipeline_item_limits */
    size_t item_bytes;
    int dgram_pid; /* whose name dgram_pname holds */
    uint64_t dgram_errors;
    char dgram_pname[64];

    struct conn *conns;
    uint32_t nconns;
    uv_timer_t retry;
    bool closing;
    int open; /* handles not yet closed */
    void (*done)(void *);
    void *done_arg;

    lk_counter *accepted;
    lk_counter *refused;
    lk_counter *dropped;
    lk_counter *dropped_mem; /* overflow: drop while memory_limit is reached */
    lk_counter *dropped_spool; /* storage.durable: the commit failed */
    uint64_t spool_failures;   /* commits that failed, for the log's pacing */
    lk_counter *too_large;
    lk_counter *truncated;
    lk_counter *invalid_utf8;
    lk_counter *paused;
    lk_counter *conn_refused;
    lk_counter *conn_closed_idle;
    lk_gauge *conn_gauge;
    uint64_t invalid_seen; /* enc.invalid_utf8 already counted */
};

static void part_closed(lk_lines *r);
static void retry_cb(uv_timer_t *t);
static void feed_committed(void *arg, int status);

static void count_invalid(lk_lines *r)
{
    lk_counter_add(r->invalid_utf8, r->enc.invalid_utf8 - r->invalid_seen);
    r->invalid_seen = r->enc.invalid_utf8;
}

/* lk_pipeline_submit under |f|'s ack (made on first use). */
static int submit_acked(lk_lines *r, struct feed *f, lk_item *it)
{
    if (f->ack == NULL && (f->ack = lk_ack_new(r->loop, feed_committed, f)) == NULL)
        return LK_EAGAIN; /* no memory for it: as a full pipeline */
    int rc = lk_pipeline_submit_acked(r->logs, it, f->ack);
    if (rc == 0)
        f->acked += it->count;
    return rc;
}

/*
 * Offers |it| from |f|. Returns true when the item is gone (accepted, or
 * dropped and counted) and its reference with it, false when the caller
 * must keep it and stop reading (block policy). While closing, what was
 * read is queued even past the queues' caps: the shutdown drain sends it.
 */
static bool offer(lk_lines *r, struct feed *f, lk_item *it)
{
    int rc = 0;
    bool durable = false;
    if (r->closing)
        lk_pipeline_submit_over(r->logs, it);
    else if ((durable = lk_pipeline_durable(r->logs)))
        rc = submit_acked(r, f, it);
    else
        rc = lk_pipeline_submit(r->logs, it);
    if (rc == 0) {
        if (!durable)
            lk_counter_add(r->accepted, it->count);
    } else if (rc == LK_E2BIG) {
        /* Only a single line larger than a queue's max_bytes gets here:
         * items are cut at a quarter of the smallest queue. */
        lk_counter_add(r->refused, it->count);
        lk_counter_add(r->too_large, it->count);
        lk_log(LK_LOG_WARN, "lines larger than the logs queue dropped",
               LK_S("receiver", r->name) LK_U("lines", it->count) LK_U("bytes", it->len));
    } else if (r->overflow == LK_LINES_BLOCK) {
        return false;
    } else {
        lk_counter_add(r->refused, it->count);
        lk_counter_add(rc == LK_EMEMLIMIT ? r->dropped_mem : r->dropped, it->count);
    }
    lk_item_unref(it);
    return true;
}

/* Offers |it| (may be NULL) behind what |f| holds, so order is kept.
 * Returns true when |f| holds something afterwards: stop reading. */
static bool deliver(lk_lines *r, struct feed *f, lk_item *it)
{
    struct held *q = &f->held;
    if (it != NULL && (q->n > 0 || !offer(r, f, it)) && held_push(q, it) < 0) {
        lk_counter_add(r->dropped, it->count);
        lk_item_unref(it);
    }
    return q->n > 0;
}

/* Offers what |f| holds, oldest first. True when it is empty afterwards. */
static bool drain_held(lk_lines *r, struct feed *f)
{
    struct held *q = &f->held;
    while (q->n > 0) {
        if (!offer(r, f, q->v[q->head]))
            return false;
        held_pop(q);
    }
    return true;
}

/* Ends what |f| offered under one ack. True when there is a commit to wait
 * for before reading |f| again. */
static bool feed_seal(struct feed *f)
{
    if (f->ack == NULL)
        return false;
    if (f->acked == 0) {
        lk_ack_cancel(f->ack); /* everything offered was refused */
        f->ack = NULL;
        return false;
    }
    f->waiting = true;
    lk_ack_seal(f->ack);
    return true;
}

/* Stops waiting for |f|'s commit (the feed is closing). What was offered is
 * queued all the same. */
static void feed_cancel(lk_lines *r, struct feed *f)
{
    if (f->ack == NULL)
        return;
    lk_ack_cancel(f->ack);
    lk_counter_add(r->accepted, f->acked);
    f->ack = NULL;
    f->acked = 0;
    f->waiting = false;
}

/* Turns what the encoder holds into an item. NULL when it holds nothing or
 * memory ran out (the lines are then counted as dropped). */
static lk_item *take_item(lk_lines *r)
{
    const uint8_t *data;
    size_t len;
    uint64_t lost = r->enc.nrecs;
    uint32_t n = lk_lines_encoder_finish(&r->enc, &data, &len);
    lost -= n; /* a last run the encoder had no memory to close */
    if (lost > 0)
        lk_counter_add(r->dropped, lost);
    lk_item *it = NULL;
    if (n > 0) {
        /* |data| follows the room the request left for the item header:
         * the request becomes the item without a copy. */
        size_t used = r->enc.req.len;
        it = lk_item_adopt(&r->enc.req, LK_SIGNAL_LOGS, n, uv_now(r->loop));
        if (it != NULL)
            it->form = r->enc.form;
        /* The next request reserves as much up front (within the items'
         * size limit, which cut_item keeps it under). */
        r->enc.req_hint = used < r->item_bytes ? used : r->item_bytes;
        if (it == NULL) {
            lk_counter_add(r->dropped, n);
            lk_log(LK_LOG_WARN, "out of memory, lines dropped",
                   LK_S("receiver", r->name) LK_U("lines", n));
        }
    }
    lk_lines_encoder_reset(&r->enc);
    count_invalid(r);
    return it;
}

/* ---- framing ---- */

void lk_line_framer_init(struct lk_line_framer *f, uint64_t max_line)
{
    memset(f, 0, sizeof(*f));
    f->max_line = max_line;
    f->limit = max_line + 2 > MIN_READ_BUF ? (size_t)max_line + 2 : MIN_READ_BUF;
}

void lk_line_framer_fini(struct lk_line_framer *f)
{
    lk_mem_release(LK_MEM_RECEIVERS, f->cap);
    free(f->buf);
    f->buf = NULL;
    f->len = f->cap = 0;
}

int lk_line_framer_space(struct lk_line_framer *f, uint8_t **p, size_t *n)
{
    /* Grows while little room is left; commit keeps len <= max_line + 1,
     * so at the limit at least one byte is always free. */
    if (f->cap - f->len < FIRST_READ_BUF / 4 && f->cap < f->limit) {
        size_t ncap = f->cap == 0 ? FIRST_READ_BUF : 2 * f->cap;
        if (ncap > f->limit)
            ncap = f->limit;
        uint8_t *nb = realloc(f->buf, ncap);
        if (nb == NULL && f->cap == f->len)
            return LK_ENOMEM;
        if (nb != NULL) {
            /* Bounded by max_line_bytes per writer: charged whatever the
             * limit; a spent budget stops the reads at the pipeline. */
            lk_mem_charge(LK_MEM_RECEIVERS, ncap - f->cap);
            f->buf = nb;
            f->cap = ncap;
        }
    }
    *p = f->buf + f->len;
    *n = f->cap - f->len;
    return 0;
}

static void emit(struct lk_line_framer *f, const uint8_t *p, size_t n, lk_line_cb cb,
                 void *arg)
{
    if (n > 0 && p[n - 1] == '\r')
        n--;
    bool cut = n > f->max_line;
    if (cut)
        n = trim_partial_utf8(p, (size_t)f->max_line);
    if (n > 0) /* an empty line is no log */
        cb(arg, p, n, cut);
}

void lk_line_framer_commit(struct lk_line_framer *f, size_t n, bool at_end,
                           lk_line_cb cb, void *arg)
{
    f->len += n;
    uint8_t *p = f->buf, *end = f->buf + f->len;
    while (p < end) {
        uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break;
        if (f->discarding)
            f->discarding = false;
        else
            emit(f, p, (size_t)(nl - p), cb, arg);
        p = nl + 1;
    }
    size_t rest = (size_t)(end - p);
    if (f->discarding) {
        rest = 0;
    } else if (rest > 0 && rest > f->max_line + (p[rest - 1] == '\r')) {
        /* Over-long for sure: a max_line line plus "\r" may still be
         * followed by its "\n". */
        emit(f, p, rest, cb, arg);
        f->discarding = !at_end;
        rest = 0;
    } else if (at_end && rest > 0) {
        emit(f, p, rest, cb, arg);
        rest = 0;
    }
    if (at_end)
        f->discarding = false;
    if (rest > 0 && p != f->buf)
        memmove(f->buf, p, rest);
    f->len = rest;
}

/* ---- the receiver ---- */

struct line_ctx {
    lk_lines *r;
    const struct lk_lines_origin *origin;
    struct feed *feed;
    uint64_t now;
};

static lk_item *take_item(lk_lines *r);

/* Before a line of |len| bytes: closes the item being built when the line
 * would make it larger than the pipeline takes, and delivers it. */
static void cut_item(lk_lines *r, struct feed *f, size_t len)
{
    const struct lk_lines_encoder *e = &r->enc;
    /* What the item would grow to: the open run's resource (static
     * attributes, service, pid, uid, process name) and the next record (a
     * line may triple when invalid UTF-8 is repaired). */
    size_t header = e->static_attrs.len + LK_LINE_SERVICE_MAX + 256;
    size_t record = 3 * len + 128;
    if (e->nrecs > 0 && (e->nrecs >= r->item_recs ||
                         e->req.len + e->recs.len + header + record > r->item_bytes))
        deliver(r, f, take_item(r));
}

static void on_line(void *arg, const uint8_t *line, size_t len, bool truncated)
{
    struct line_ctx *lc = arg;
    lk_lines *r = lc->r;
    cut_item(r, lc->feed, len);
    if (truncated)
        lk_counter_add(r->truncated, 1);
    if (lk_lines_encoder_add(&r->enc, lc->origin, line, len, lc->now) < 0) {
        lk_counter_add(r->dropped, 1);
        lk_log(LK_LOG_WARN, "out of memory, line dropped", LK_S("receiver", r->name));
    }
}

/* Frames |n| new bytes of |c| (|at_end|: and whatever is left). */
static void frame(struct conn *c, size_t n, bool at_end)
{
    struct line_ctx lc = {.r = c->r, .origin = &c->origin, .feed = &c->feed, .now = now_ns()};
    lk_line_framer_commit(&c->framer, n, at_end, on_line, &lc);
}

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->pending > 0)
        return;
    lk_lines *r = c->r;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        r->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    r->nconns--;
    lk_gauge_add(r->conn_gauge, -1);
    held_fini(&c->feed.held);
    lk_line_framer_fini(&c->framer);
    free(c);
    part_closed(r);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    feed_cancel(c->r, &c->feed);
    c->r->open++;
    c->pending = 2;
    uv_close((uv_handle_t *)&c->h, conn_closed);
    uv_close((uv_handle_t *)&c->idle, conn_closed);
}

static void arm_retry(lk_lines *r)
{
    if (!uv_is_active((uv_handle_t *)&r->retry))
        uv_timer_start(&r->retry, retry_cb, RETRY_MS, RETRY_MS);
}

/* Offers what was framed; on refusal keeps it and stops reading, as it
 * does until what was offered is committed (storage.durable). */
static void submit_conn(struct conn *c)
{
    lk_lines *r = c->r;
    bool held = deliver(r, &c->feed, take_item(r));
    bool waiting = feed_seal(&c->feed);
    if (held) {
        uv_read_stop((uv_stream_t *)&c->h);
        lk_counter_add(r->paused, 1);
        arm_retry(r);
    } else if (waiting) {
        uv_read_stop((uv_stream_t *)&c->h); /* feed_committed reads on */
    } else if (c->ended) {
        conn_close(c);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct conn *c = h->data;
    uint8_t *p;
    size_t n;
    if (lk_line_framer_space(&c->framer, &p, &n) < 0) {
        b->base = NULL; /* the read callback gets UV_ENOBUFS */
        b->len = 0;
        return;
    }
    b->base = (char *)p;
    b->len = n;
}

/*
 * A writer that stops in the middle of a line for idle_timeout is closed and
 * its partial line taken as a line: a crashed or stuck writer's last words
 * get through, and it holds no connection. Writers that are silent between
 * lines stay (a logger keeps its socket open).
 */
static void idle_cb(uv_timer_t *t)
{
    struct conn *c = t->data;
    lk_lines *r = c->r;
    if (c->closing || c->ended)
        return;
    if (c->feed.held.n > 0 || c->feed.waiting) {
        /* We stopped reading (the pipeline is full, or a commit is awaited):
         * not the writer's doing. */
        uv_timer_start(&c->idle, idle_cb, r->idle_timeout_ms, 0);
        return;
    }
    lk_counter_add(r->conn_closed_idle, 1);
    lk_log(LK_LOG_DEBUG, "closing a line writer silent inside a line",
           LK_S("receiver", r->name) LK_I("pid", c->origin.cred.pid));
    uv_read_stop((uv_stream_t *)&c->h);
    c->ended = true;
    frame(c, 0, true);
    submit_conn(c);
}

/* Runs the idle timer while |c| holds part of a line. */
static void arm_idle(struct conn *c)
{
    if (c->r->idle_timeout_ms > 0 && (c->framer.len > 0 || c->framer.discarding))
        uv_timer_start(&c->idle, idle_cb, c->r->idle_timeout_ms, 0);
    else
        uv_timer_stop(&c->idle);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = s->data;
    if (nread > 0) {
        frame(c, (size_t)nread, false);
        arm_idle(c);
        submit_conn(c);
        return;
    }
    if (nread == 0)
        return;
    if (nread != UV_EOF)
        lk_log(LK_LOG_DEBUG, "line connection error", LK_S("receiver", c->r->name)
               LK_S("error", uv_strerror((int)nread)));
    uv_read_stop(s);
    c->ended = true;
    frame(c, 0, true);
    submit_conn(c);
}

static void peer_of(int fd, struct lk_lines_origin *o, char *name, size_t namelen)
{
    name[0] = '\0';
    o->process_name = name;
    if (lk_platform_peer_cred(fd, &o->cred) < 0) {
        o->cred.pid = -1;
        o->cred.uid = (unsigned)-1;
        o->cred.gid = (unsigned)-1;
        return;
    }
    if (o->cred.pid > 0 && lk_platform_process_name(o->cred.pid, name, namelen) < 0)
        name[0] = '\0';
}

static void on_connection(uv_stream_t *server, int status)
{
    lk_lines *r = server->data;
    if (status < 0 || r->closing)
        return;
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->r = r;
    c->feed.r = r;
    c->feed.c = c;
    lk_line_framer_init(&c->framer, r->max_line);
    uv_pipe_init(r->loop, &c->h, 0);
    c->h.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->h) != 0) {
        uv_close((uv_handle_t *)&c->h, (uv_close_cb)free);
        return;
    }
    if (r->nconns >= r->max_conns) {
        lk_counter_add(r->conn_refused, 1);
        uv_close((uv_handle_t *)&c->h, (uv_close_cb)free);
        return;
    }
    c->next = r->conns;
    if (r->conns != NULL)
        r->conns->prev = c;
    r->conns = c;
    r->nconns++;
    lk_gauge_add(r->conn_gauge, 1);
    uv_timer_init(r->loop, &c->idle);
    c->idle.data = c;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->h, &fd) == 0)
        peer_of(fd, &c->origin, c->pname, sizeof(c->pname));
    else
        peer_of(-1, &c->origin, c->pname, sizeof(c->pname));
    uv_read_start((uv_stream_t *)&c->h, on_alloc, on_read);
}

/* ---- datagrams ---- */

static void dgram_submit(lk_lines *r)
{
    bool held = deliver(r, &r->dgram, take_item(r));
    bool waiting = feed_seal(&r->dgram);
    if (held) {
        uv_poll_stop(&r->poll);
        lk_counter_add(r->paused, 1);
        arm_retry(r);
    } else if (waiting) {
        uv_poll_stop(&r->poll); /* feed_committed polls again */
    }
}

/* Reads up to DGRAMS_PER_WAKEUP datagrams; returns how many. */
static int read_dgrams(lk_lines *r);

static void on_dgram(uv_poll_t *h, int status, int events)
{
    lk_lines *r = h->data;
    if (status < 0) {
        /* libuv stopped the handle; keep listening. Logged 1, 2, 4, 8...
         * times, so an error that does not clear cannot flood the log. */
        r->dgram_errors++;
        if ((r->dgram_errors & (r->dgram_errors - 1)) == 0)
            lk_log(LK_LOG_WARN, "datagram socket error", LK_S("receiver", r->name)
                   LK_S("error", uv_strerror(status)) LK_U("errors", r->dgram_errors));
        uv_poll_start(&r->poll, UV_READABLE, on_dgram);
        return;
    }
    read_dgrams(r);
    dgram_submit(r);
}

static int read_dgrams(lk_lines *r)
{
    uint64_t now = now_ns();
    int i;
    for (i = 0; i < DGRAMS_PER_WAKEUP; i++) {
        struct lk_lines_origin o;
        int truncated = 0;
        long n = lk_platform_recv_dgram(r->dgram_fd, r->dgram_buf, r->max_line + 2,
                                        &o.cred, &truncated);
        if (n < 0) {
            if (n != LK_EAGAIN)
                lk_log(LK_LOG_WARN, "datagram receive failed", LK_S("receiver", r->name)
                       LK_S("error", strerror(errno)));
            break;
        }
        size_t len = (size_t)n;
        if (!truncated && len > 0 && r->dgram_buf[len - 1] == '\n')
            len--;
        if (!truncated && len > 0 && r->dgram_buf[len - 1] == '\r')
            len--;
        if (truncated || len > r->max_line) {
            lk_counter_add(r->truncated, 1);
            len = trim_partial_utf8(r->dgram_buf, (size_t)r->max_line);
        }
        if (o.cred.pid != r->dgram_pid) {
            r->dgram_pid = o.cred.pid;
            if (o.cred.pid <= 0 || lk_platform_process_name(o.cred.pid, r->dgram_pname,
                                                             sizeof(r->dgram_pname)) < 0)
                r->dgram_pname[0] = '\0';
        }
        o.process_name = r->dgram_pname;
        if (len == 0)
            continue;
        cut_item(r, &r->dgram, len);
        if (lk_lines_encoder_add(&r->enc, &o, r->dgram_buf, len, now) < 0)
            lk_counter_add(r->dropped, 1);
    }
    return i;
}

/* ---- reading on ---- */

/* Reads |f| again (or closes its ended connection) unless it still holds
 * refused items, which the retry timer offers first. */
static void feed_resume(struct feed *f)
{
    if (f->held.n > 0)
        return;
    if (f->c == NULL)
        uv_poll_start(&f->r->poll, UV_READABLE, on_dgram);
    else if (f->c->ended)
        conn_close(f->c);
    else
        uv_read_start((uv_stream_t *)&f->c->h, on_alloc, on_read);
}

/* The ack's callback: what |f| offered is committed, or could not be (the
 * lines are lost then: a writer cannot be told to send them again). */
static void feed_committed(void *arg, int status)
{
    struct feed *f = arg;
    lk_lines *r = f->r;
    if (status < 0) {
        lk_counter_add(r->refused, f->acked);
        lk_counter_add(r->dropped_spool, f->acked);
        /* Logged 1, 2, 4, 8... times: a spool that keeps failing says so
         * without flooding the log. */
        r->spool_failures++;
        if ((r->spool_failures & (r->spool_failures - 1)) == 0)
            lk_log(LK_LOG_WARN, "lines not stored on disk, dropped", LK_S("receiver", r->name)
                   LK_U("lines", f->acked) LK_S("error", lk_strerror(status))
                   LK_U("failures", r->spool_failures));
    } else {
        lk_counter_add(r->accepted, f->acked);
    }
    f->ack = NULL;
    f->acked = 0;
    f->waiting = false;
    feed_resume(f);
}

/* ---- retrying refused items ---- */

/* Offers what |f| holds; true when some of it is still refused. */
static bool retry_feed(lk_lines *r, struct feed *f)
{
    if (f->waiting)
        return true; /* its commit first */
    bool drained = drain_held(r, f);
    bool waiting = feed_seal(f);
    if (!drained)
        return true;
    if (!waiting)
        feed_resume(f);
    return false;
}

static void retry_cb(uv_timer_t *t)
{
    lk_lines *r = t->data;
    bool more = false;
    for (struct conn *c = r->conns; c != NULL; c = c->next)
        if (c->feed.held.n > 0 && !c->closing && retry_feed(r, &c->feed))
            more = true;
    if (r->dgram.held.n > 0 && retry_feed(r, &r->dgram))
        more = true;
    if (!more)
        uv_timer_stop(t);
}

/* ---- start and close ---- */

/* A user or group given by name or number; (unsigned)-1 when |name| is NULL. */
static int resolve_id(const char *name, bool group, unsigned *out)
{
    *out = (unsigned)-1;
    if (name == NULL)
        return 0;
    struct passwd *pw = group ? NULL : getpwnam(name);
    struct group *gr = group ? getgrnam(name) : NULL;
    char *end;
    unsigned long v = strtoul(name, &end, 10);
    if (pw != NULL)
        *out = (unsigned)pw->pw_uid;
    else if (gr != NULL)
        *out = (unsigned)gr->gr_gid;
    else if (*end == '\0' && end != name)
        *out = (unsigned)v;
    else {
        lk_log(LK_LOG_ERROR, group ? "unknown group for the line socket"
                                   : "unknown user for the line socket",
               LK_S(group ? "group" : "owner", name));
        return LK_EINVAL;
    }
    return 0;
}

/*
 * Whether a process serves the socket at |path| (a connect succeeds): then
 * it is not stale, and not ours to replace.
 */
static bool socket_served(const char *path, bool datagram)
{
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
        return false;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path))
        return false;
    memcpy(sa.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, datagram ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    bool served = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return served;
}

/*
 * Creates the bound socket at |path|: bound under a temporary name, given
 * its mode and owner there, then renamed into place, so no client can
 * connect while the permissions are still the umask's.
 */
static int make_socket(lk_lines *r, const struct lk_lines_receiver_config *cfg,
                       int *out)
{
    unsigned owner, group;
    int rc = resolve_id(cfg->owner, false, &owner);
    if (rc == 0)
        rc = resolve_id(cfg->group, true, &group);
    if (rc < 0)
        return rc;
    uid_t uid = (uid_t)owner;
    gid_t gid = (gid_t)group;
    if (socket_served(r->path, r->datagram)) {
        lk_log(LK_LOG_ERROR, "the line socket path is served by a running process (another "
                             "lookout?); not taking it over",
               LK_S("receiver", r->name) LK_S("path", r->path));
        return LK_EEXIST;
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.~", r->path);
    if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
        return LK_EINVAL;
    const char *what = "socket";
    int fd = socket(AF_UNIX, r->datagram ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (fd < 0)
        goto fail;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    unlink(sa.sun_path);
    what = "bind";
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto fail_fd;
    what = "chmod";
    if (chmod(sa.sun_path, (mode_t)cfg->mode) != 0)
        goto fail_unlink;
    what = "chown";
    if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(sa.sun_path, uid, gid) != 0)
        goto fail_unlink;
    what = "listen";
    if (!r->datagram && listen(fd, 128) != 0)
        goto fail_unlink;
    /* Before the rename: from then on datagrams arrive. */
    if (r->datagram && lk_platform_dgram_creds_enable(fd) == LK_ESYS)
        lk_log(LK_LOG_WARN, "cannot get senders' credentials on the datagram socket",
               LK_S("receiver", r->name) LK_S("error", strerror(errno)));
    what = "rename";
    if (rename(sa.sun_path, r->path) != 0)
        goto fail_unlink;
    struct stat st;
    if (lstat(r->path, &st) == 0) {
        r->dev = st.st_dev;
        r->ino = st.st_ino;
    }
    *out = fd;
    return 0;

fail_unlink:
    unlink(sa.sun_path);
fail_fd:
    close(fd);
fail:
    lk_log(LK_LOG_ERROR, "cannot create the line socket", LK_S("receiver", r->name)
           LK_S("path", r->path) LK_S("op", what) LK_S("error", strerror(errno)));
    return LK_ESYS;
}

static void register_metrics(lk_lines *r, lk_metrics *m)
{
    char labels[256], drop_labels[320];
    snprintf(labels, sizeof(labels), "receiver=\"%s\",transport=\"%s\"", r->name,
             r->datagram ? "unixgram" : "unix");
    snprintf(drop_labels, sizeof(drop_labels),
             "signal=\"logs\",reason=\"pipeline_full\",receiver=\"%s\"", r->name);
    r->accepted = lk_metrics_counter(m, "lookout_receiver_accepted_log_records_total",
                                     "log_records accepted and queued.", labels);
    r->refused = lk_metrics_counter(m, "lookout_receiver_refused_log_records_total",
                                    "log_records refused because the pipeline was full.",
                                    labels);
    r->dropped = lk_metrics_counter(m, "lookout_dropped_items_total",
                                    "Items (spans, points, records) dropped, by reason.",
                                    drop_labels);
    snprintf(drop_labels, sizeof(drop_labels),
             "signal=\"logs\",reason=\"memory_limit\",receiver=\"%s\"", r->name);
    r->dropped_mem = lk_metrics_counter(m, "lookout_dropped_items_total",
                                        "Items (spans, points, records) dropped, by reason.",
                                        drop_labels);
    snprintf(drop_labels, sizeof(drop_labels),
             "signal=\"logs\",reason=\"spool_write_failed\",receiver=\"%s\"", r->name);
    r->dropped_spool = lk_metrics_counter(m, "lookout_dropped_items_total",
                                          "Items (spans, points, records) dropped, by reason.",
                                          drop_labels);
    snprintf(drop_labels, sizeof(drop_labels),
             "signal=\"logs\",reason=\"too_large\",receiver=\"%s\"", r->name);
    r->too_large = lk_metrics_counter(m, "lookout_dropped_items_total",
                                      "Items (spans, points, records) dropped, by reason.",
                                      drop_labels);
    r->truncated = lk_metrics_counter(m, "lookout_receiver_truncated_lines_total",
                                      "Lines cut to max_line_bytes.", labels);
    r->invalid_utf8 = lk_metrics_counter(
        m, "lookout_receiver_invalid_utf8_lines_total",
        "Lines whose invalid UTF-8 bytes were replaced with U+FFFD.", labels);
    r->paused = lk_metrics_counter(
        m, "lookout_receiver_paused_total",
        "Times a line socket stopped being read because the pipeline was full.", labels);
    r->conn_gauge = lk_metrics_gauge(m, "lookout_receiver_connections",
                                     "Open client connections.", labels);
    r->conn_refused = lk_metrics_counter(
        m, "lookout_receiver_connections_refused_total",
        "Connections closed at once because max_connections was reached.", labels);
    if (!r->datagram) {
        char l[320];
        snprintf(l, sizeof(l), "%s,reason=\"idle_timeout\"", labels);
        r->conn_closed_idle = lk_metrics_counter(
            m, "lookout_receiver_connections_closed_total",
            "Connections the receiver closed on its own, by reason.", l);
    }
}

int lk_lines_start(lk_lines **out, uv_loop_t *loop, const char *name,
                   const struct lk_lines_receiver_config *cfg, lk_pipeline *logs,
                   lk_metrics *m)
{
    lk_lines *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return LK_ENOMEM;
    r->loop = loop;
    r->logs = logs;
    r->datagram = cfg->datagram;
    r->max_line = cfg->max_line_bytes;
    r->max_conns = cfg->max_connections;
    r->idle_timeout_ms = cfg->idle_timeout_ms;
    r->overflow = cfg->overflow;
    r->dgram_fd = -1;
    r->dgram_pid = 0;
    r->dgram.r = r;
    r->name = strdup(name);
    r->path = strdup(cfg->path);
    char host[256];
    size_t hlen = sizeof(host);
    if (uv_os_gethostname(host, &hlen) != 0)
        snprintf(host, sizeof(host), "localhost");
    int rc = LK_ENOMEM;
    if (r->name == NULL || r->path == NULL)
        goto err_free;
    rc = lk_lines_encoder_init(&r->enc, cfg, host, name);
    if (rc < 0)
        goto err_free;
    lk_pipeline_item_limits(logs, &r->item_recs, &r->item_bytes);
    r->enc.want_entries = lk_pipeline_accepts(logs, LK_FORM_LOKI_ENTRIES);
    if (r->datagram && (r->dgram_buf = malloc(r->max_line + 2)) == NULL) {
        rc = LK_ENOMEM;
        goto err_enc;
    }
    int fd;
    rc = make_socket(r, cfg, &fd);
    if (rc < 0)
        goto err_enc;

    register_metrics(r, m);
    uv_timer_init(loop, &r->retry);
    r->retry.data = r;
    if (r->datagram) {
        r->dgram_fd = fd;
        uv_poll_init(loop, &r->poll, fd);
        r->poll.data = r;
        uv_poll_start(&r->poll, UV_READABLE, on_dgram);
    } else {
        uv_pipe_init(loop, &r->listener, 0);
        r->listener.data = r;
        int e = uv_pipe_open(&r->listener, fd);
        if (e != 0)
            close(fd); /* not the handle's: closing it would not */
        else
            e = uv_listen((uv_stream_t *)&r->listener, LK_LISTEN_BACKLOG, on_connection);
        if (e != 0) {
            lk_log(LK_LOG_ERROR, "cannot listen on the line socket",
                   LK_S("receiver", name) LK_S("error", uv_strerror(e)));
            /* The loop owns the handles now: close them the normal way. */
            r->handle_open = true;
            lk_lines_close(r, NULL, NULL);
            return LK_ESYS;
        }
    }
    r->handle_open = true;
    lk_log(LK_LOG_INFO, "line receiver listening", LK_S("receiver", name)
           LK_S("path", r->path) LK_S("socket_type", r->datagram ? "datagram" : "stream"));
    *out = r;
    return 0;

err_enc:
    lk_lines_encoder_fini(&r->enc);
err_free:
    free(r->dgram_buf);
    free(r->name);
    free(r->path);
    free(r);
    return rc;
}

static void part_closed(lk_lines *r)
{
    if (--r->open > 0 || !r->closing)
        return;
    void (*done)(void *) = r->done;
    void *arg = r->done_arg;
    count_invalid(r);
    held_fini(&r->dgram.held);
    lk_lines_encoder_fini(&r->enc);
    free(r->dgram_buf);
    free(r->name);
    free(r->path);
    free(r);
    if (done != NULL)
        done(arg);
}

static void listener_closed(uv_handle_t *h)
{
    lk_lines *r = h->data;
    if (r->dgram_fd >= 0)
        close(r->dgram_fd); /* a poll handle leaves its descriptor open */
    part_closed(r);
}

static void timer_closed(uv_handle_t *h)
{
    part_closed(h->data);
}

/* What a writer already wrote is in the socket's buffer: read it (without
 * blocking, up to a bound) so that closing loses nothing written before. */
static void read_rest(struct conn *c)
{
    uv_os_fd_t fd;
    if (c->ended || uv_fileno((uv_handle_t *)&c->h, &fd) != 0)
        return;
    for (size_t total = 0; total < CLOSE_READ_MAX;) {
        uint8_t *p;
        size_t room;
        if (lk_line_framer_space(&c->framer, &p, &room) < 0)
            return;
        ssize_t n = read(fd, p, room);
        if (n <= 0)
            return; /* EOF, EAGAIN or an error: nothing more now */
        frame(c, (size_t)n, false);
        total += (size_t)n;
    }
}

/* Held items of a form the pipeline no longer takes (a reload gave it other
 * exporters) become OTLP items; one there is no memory for is dropped,
 * counted, rather than sent to an exporter that cannot read it. */
static void reform_held(lk_lines *r, struct held *q)
{
    lk_buf otlp, scratch;
    lk_buf_init(&otlp, REQ_MAX);
    lk_buf_init(&scratch, REQ_MAX);
    for (size_t i = 0; i < q->n; i++) {
        lk_item **slot = &q->v[(q->head + i) % q->cap];
        lk_item *it = *slot, *made = NULL;
        if (lk_pipeline_accepts(r->logs, (enum lk_item_form)it->form))
            continue;
        lk_buf_reset(&otlp);
        if (lk_loki_entries_to_otlp(it->data, it->len, &otlp, &scratch) == 0)
            made = lk_item_create(LK_SIGNAL_LOGS, it->count, it->arrived_ms, otlp.data,
                                  otlp.len);
        if (made == NULL) {
            /* Only the held queue refers to a refused item: it may be
             * emptied in place into a valid (empty) OTLP body. */
            lk_counter_add(r->dropped, it->count);
            lk_log(LK_LOG_WARN, "out of memory, lines dropped",
                   LK_S("receiver", r->name) LK_U("lines", it->count));
            lk_item_empty(it);
            continue;
        }
        lk_item_unref(it);
        *slot = made;
    }
    lk_buf_fini(&otlp);
    lk_buf_fini(&scratch);
}

void lk_lines_set_pipeline(lk_lines *r, lk_pipeline *logs)
{
    r->logs = logs;
    r->enc.want_entries = lk_pipeline_accepts(logs, LK_FORM_LOKI_ENTRIES);
    for (struct conn *c = r->conns; c != NULL; c = c->next)
        reform_held(r, &c->feed.held);
    reform_held(r, &r->dgram.held);
    lk_pipeline_item_limits(logs, &r->item_recs, &r->item_bytes);
}

void lk_lines_close(lk_lines *r, void (*done)(void *arg), void *arg)
{
    if (r->closing)
        return;
    r->closing = true;
    r->done = done;
    r->done_arg = arg;
    r->open++; /* held until every close below has started */
    struct stat st; /* a file another process put there since is not ours */
    if (lstat(r->path, &st) == 0 && st.st_dev == r->dev && st.st_ino == r->ino)
        unlink(r->path);
    if (r->handle_open) {
        r->open++;
        if (r->datagram) {
            feed_cancel(r, &r->dgram);
            drain_held(r, &r->dgram); /* closing: queued past the caps */
            /* Datagrams already in the socket's buffer were sent: take them. */
            for (int k = 0; k < CLOSE_READ_ROUNDS && read_dgrams(r) == DGRAMS_PER_WAKEUP; k++)
                ;
            deliver(r, &r->dgram, take_item(r));
            uv_close((uv_handle_t *)&r->poll, listener_closed);
        } else {
            uv_close((uv_handle_t *)&r->listener, listener_closed);
        }
        r->open++;
        uv_close((uv_handle_t *)&r->retry, timer_closed);
    }
    /* What each connection holds goes out now: refused items, what is still
     * in the socket buffer (read_rest) and a partial last line. */
    for (struct conn *c = r->conns; c != NULL; c = c->next) {
        if (c->closing)
            continue;
        uv_read_stop((uv_stream_t *)&c->h);
        feed_cancel(r, &c->feed);
        drain_held(r, &c->feed); /* closing: queued past the caps */
        read_rest(c);
        frame(c, 0, true);
        deliver(r, &c->feed, take_item(r));
        conn_close(c);
    }
    part_closed(r);
}
