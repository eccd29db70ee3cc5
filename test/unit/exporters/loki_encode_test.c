/*
 * lk_loki_encode: OTLP inputs packed by protobuf-c (or hand-encoded with
 * pb_enc.h where the bytes must be exact or malformed), encoded, then read
 * back with independent decoders: protobuf-c's logproto.PushRequest for the
 * protobuf body, jansson for the JSON body.
 */
#include "exporters/loki_encode.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "loki/push.pb-c.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"

#include "receivers/pb_enc.h"

typedef Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest Req;
typedef Opentelemetry__Proto__Logs__V1__ResourceLogs RL;
typedef Opentelemetry__Proto__Logs__V1__ScopeLogs SL;
typedef Opentelemetry__Proto__Logs__V1__LogRecord LR;
typedef Opentelemetry__Proto__Resource__V1__Resource Res;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope Scope;
typedef Opentelemetry__Proto__Common__V1__KeyValue KV;
typedef Opentelemetry__Proto__Common__V1__AnyValue AV;
typedef Opentelemetry__Proto__Common__V1__ArrayValue ArrV;
typedef Opentelemetry__Proto__Common__V1__KeyValueList KVL;
typedef Logproto__PushRequest Push;
typedef Logproto__StreamAdapter Stream;
typedef Logproto__EntryAdapter Entry;

#define CAP 1024 /* elements of every repeated field a test builds */

/* --- allocation pool: everything a test allocates is freed in teardown */

static void **pool;
static size_t npool, cap_pool;
static Push *unpacked[64];
static size_t nunpacked;

static void *keep(void *p)
{
    ck_assert_ptr_nonnull(p);
    if (npool == cap_pool) {
        cap_pool = cap_pool ? cap_pool * 2 : 256;
        pool = realloc(pool, cap_pool * sizeof(*pool));
        ck_assert_ptr_nonnull(pool);
    }
    pool[npool++] = p;
    return p;
}

static void *zalloc(size_t n)
{
    return keep(calloc(1, n));
}

/* --- OTLP builders (protobuf-c structs) */

static Req *req_new(void)
{
    Req *q = zalloc(sizeof(*q));
    opentelemetry__proto__collector__logs__v1__export_logs_service_request__init(q);
    q->resource_logs = zalloc(CAP * sizeof(RL *));
    return q;
}

static RL *rl_add(Req *q)
{
    RL *rl = zalloc(sizeof(*rl));
    Res *r = zalloc(sizeof(*r));
    opentelemetry__proto__logs__v1__resource_logs__init(rl);
    opentelemetry__proto__resource__v1__resource__init(r);
    r->attributes = zalloc(CAP * sizeof(KV *));
    rl->resource = r;
    rl->scope_logs = zalloc(CAP * sizeof(SL *));
    q->resource_logs[q->n_resource_logs++] = rl;
    return rl;
}

static SL *sl_add(RL *rl, const char *scope_name)
{
    SL *sl = zalloc(sizeof(*sl));
    opentelemetry__proto__logs__v1__scope_logs__init(sl);
    if (scope_name != NULL) {
        Scope *sc = zalloc(sizeof(*sc));
        opentelemetry__proto__common__v1__instrumentation_scope__init(sc);
        sc->name = (char *)scope_name;
        sl->scope = sc;
    }
    sl->log_records = zalloc(CAP * sizeof(LR *));
    rl->scope_logs[rl->n_scope_logs++] = sl;
    return sl;
}

static AV *av_new(void)
{
    AV *v = zalloc(sizeof(*v));
    opentelemetry__proto__common__v1__any_value__init(v);
    return v;
}

static AV *av_s(const char *s)
{
    AV *v = av_new();
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = (char *)s;
    return v;
}

static AV *av_i(int64_t i)
{
    AV *v = av_new();
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    v->int_value = i;
    return v;
}

static AV *av_d(double d)
{
    AV *v = av_new();
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    v->double_value = d;
    return v;
}

static AV *av_b(bool b)
{
    AV *v = av_new();
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    v->bool_value = b;
    return v;
}

static AV *av_y(const void *p, size_t n)
{
    AV *v = av_new();
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
    v->bytes_value.data = keep(malloc(n + 1));
    memcpy(v->bytes_value.data, p, n);
    v->bytes_value.len = n;
    return v;
}

/* An array of |n| AnyValue. */
static AV *av_arr(int n, ...)
{
    AV *v = av_new();
    ArrV *a = zalloc(sizeof(*a));
    va_list ap;
    opentelemetry__proto__common__v1__array_value__init(a);
    a->values = zalloc((size_t)(n + 1) * sizeof(AV *));
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        a->values[a->n_values++] = va_arg(ap, AV *);
    va_end(ap);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
    v->array_value = a;
    return v;
}

static KV *kv(const char *k, AV *val)
{
    KV *x = zalloc(sizeof(*x));
    opentelemetry__proto__common__v1__key_value__init(x);
    x->key = (char *)k;
    x->value = val;
    return x;
}

/* A kvlist of |n| (const char *key, AV *value) pairs. */
static AV *av_kvl(int n, ...)
{
    AV *v = av_new();
    KVL *l = zalloc(sizeof(*l));
    va_list ap;
    opentelemetry__proto__common__v1__key_value_list__init(l);
    l->values = zalloc((size_t)(n + 1) * sizeof(KV *));
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *k = va_arg(ap, const char *);
        l->values[l->n_values++] = kv(k, va_arg(ap, AV *));
    }
    va_end(ap);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
    v->kvlist_value = l;
    return v;
}

static void res_attr(RL *rl, const char *k, AV *v)
{
    rl->resource->attributes[rl->resource->n_attributes++] = kv(k, v);
}

/* A record with a string body (none when |body| is NULL) at |ts| ns. */
static LR *lr_add(SL *sl, const char *body, uint64_t ts)
{
    LR *r = zalloc(sizeof(*r));
    opentelemetry__proto__logs__v1__log_record__init(r);
    r->attributes = zalloc(CAP * sizeof(KV *));
    if (body != NULL)
        r->body = av_s(body);
    r->time_unix_nano = ts;
    sl->log_records[sl->n_log_records++] = r;
    return r;
}

static void lr_attr(LR *r, const char *k, AV *v)
{
    r->attributes[r->n_attributes++] = kv(k, v);
}

static struct iovec pack(const Req *q)
{
    struct iovec iov;
    size_t n =
        opentelemetry__proto__collector__logs__v1__export_logs_service_request__get_packed_size(
            q);
    iov.iov_base = keep(malloc(n + 1));
    iov.iov_len =
        opentelemetry__proto__collector__logs__v1__export_logs_service_request__pack(
            q, iov.iov_base);
    return iov;
}

/* --- encoder under test */

static const char *const default_labels[] = {
    "service_name", "service_namespace", "deployment_environment", "host",
    "source"};
static struct lk_loki_encoder *enc;
static struct lk_loki_encode_opts opts;
static lk_buf out;
static uint64_t nrec, nstr;

#define NOW 1700000002500000000ull

static void setup(void)
{
    ck_assert_int_eq(lk_loki_encoder_create(&enc), 0);
    memset(&opts, 0, sizeof(opts));
    opts.format = LK_LOKI_PROTOBUF;
    opts.labels = default_labels;
    opts.nlabels = 5;
    opts.host = NULL;
    opts.now_ns = NOW;
    lk_buf_init(&out, 64u << 20);
}

static void teardown(void)
{
    for (size_t i = 0; i < nunpacked; i++)
        logproto__push_request__free_unpacked(unpacked[i], NULL);
    nunpacked = 0;
    for (size_t i = 0; i < npool; i++)
        free(pool[i]);
    npool = 0;
    lk_loki_encoder_destroy(enc);
    enc = NULL;
    lk_buf_fini(&out);
}

static int encode_iov(const struct iovec *iov, size_t n)
{
    lk_buf_reset(&out);
    return lk_loki_encode(enc, &opts, iov, n, &out, &nrec, &nstr);
}

static Push *decode(void)
{
    Push *p = logproto__push_request__unpack(NULL, out.len, out.data);
    ck_assert_msg(p != NULL, "output does not unpack as PushRequest");
    ck_assert_uint_lt(nunpacked, 64);
    unpacked[nunpacked++] = p;
    ck_assert_uint_eq(p->n_streams, nstr);
    return p;
}

static Push *encode_pb(const Req *q)
{
    struct iovec iov = pack(q);
    int rc = encode_iov(&iov, 1);
    ck_assert_msg(rc == 0, "encode: %s", lk_strerror(rc));
    return decode();
}

static json_t *encode_json(const Req *q)
{
    struct iovec iov = pack(q);
    json_error_t err;
    json_t *j;
    opts.format = LK_LOKI_JSON;
    ck_assert_int_eq(encode_iov(&iov, 1), 0);
    j = json_loadb((const char *)out.data, out.len, 0, &err);
    ck_assert_msg(j != NULL, "JSON output does not parse: %s: %.*s", err.text,
                  (int)out.len, (const char *)out.data);
    return j;
}

/* Value of the structured metadata |name| of |e|, or NULL. */
static const char *meta(const Entry *e, const char *name)
{
    for (size_t i = 0; i < e->n_structuredmetadata; i++)
        if (strcmp(e->structuredmetadata[i]->name, name) == 0)
            return e->structuredmetadata[i]->value;
    return NULL;
}

/* Names of the structured metadata of |e|, comma-separated. */
static const char *meta_names(const Entry *e)
{
    static char s[1024];
    s[0] = '\0';
    for (size_t i = 0; i < e->n_structuredmetadata; i++) {
        if (i > 0)
            strcat(s, ",");
        strcat(s, e->structuredmetadata[i]->name);
    }
    return s;
}

static uint64_t ts_of(const Entry *e)
{
    ck_assert_ptr_nonnull(e->timestamp);
    ck_assert_int_ge(e->timestamp->nanos, 0);
    ck_assert_int_lt(e->timestamp->nanos, 1000000000);
    return (uint64_t)e->timestamp->seconds * 1000000000u +
           (uint64_t)e->timestamp->nanos;
}

static size_t count_labels(const char *labels)
{
    size_t n = 0;
    for (const char *p = labels; (p = strstr(p, "=\"")) != NULL; p += 2)
        n++;
    return n;
}

#define T0 1700000000000000000ull

/* --- default labels */

START_TEST(default_labels_and_fallbacks)
{
    Req *q = req_new();
    RL *rl = rl_add(q);
    lr_add(sl_add(rl, NULL), "hello", T0);
    Push *p = encode_pb(q);

    ck_assert_uint_eq(nrec, 1);
    ck_assert_uint_eq(nstr, 1);
    ck_assert_str_eq(p->streams[0]->labels,
                     "{service_name=\"unknown_service\", source=\"otlp\"}");
    ck_assert_uint_eq(p->streams[0]->n_entries, 1);
    ck_assert_str_eq(p->streams[0]->entries[0]->line, "hello");

    opts.host = "box1";
    p = encode_pb(q);
    ck_assert_str_eq(p->streams[0]->labels,
                     "{host=\"box1\", service_name=\"unknown_service\", "
                     "source=\"otlp\"}");
}
END_TEST

START_TEST(resource_attributes_become_labels)
{
    Req *q = req_new();
    RL *rl = rl_add(q);
    res_attr(rl, "service.name", av_s("api"));
    res_attr(rl, "service.namespace", av_s("shop"));
    res_attr(rl, "deployment.environment.name", av_s("prod"));
    res_attr(rl, "host.name", av_s("h7"));
    res_attr(rl, "os.type", av_s("linux"));
    lr_add(sl_add(rl, NULL), "x", T0);
    opts.host = "agent-host";
    Push *p = encode_pb(q);
    const Entry *e = p->streams[0]->entries[0];

    ck_assert_str_eq(p->streams[0]->labels,
                     "{deployment_environment=\"prod\", host=\"h7\", "
                     "service_name=\"api\", service_namespace=\"shop\", "
                     "source=\"otlp\"}");
    /* Attributes used as labels are not repeated as metadata. */
    ck_assert_str_eq(meta_names(e), "os_type");
    ck_assert_str_eq(meta(e, "os_type"), "linux");
}
END_TEST

/* The resource the lines receiver writes. */
START_TEST(lines_receiver_resource)
{
    Req *q = req_new();
    RL *rl = rl_add(q);
    res_attr(rl, "service.name", av_s("api"));
    res_attr(rl, "host.name", av_s("mac"));
    res_attr(rl, "lookout.source", av_s("lines"));
    res_attr(rl, "process.pid", av_i(4242));
    res_attr(rl, "process.user.id", av_i(501));
    res_attr(rl, "process.executable.name", av_s("api"));
    res_attr(rl, "team", av_s("pay"));
    res_attr(rl, "loki.resource.labels", av_s("team"));
    LR *r = lr_add(sl_add(rl, NULL), "{\"level\":\"info\"}", T0);
    r->severity_number = 9;
    r->severity_text = "info";
    Push *p = encode_pb(q);
    const Entry *e = p->streams[0]->entries[0];

    ck_assert_str_eq(p->streams[0]->labels,
                     "{host=\"mac\", service_name=\"api\", source=\"lines\", "
                     "team=\"pay\"}");
    ck_assert_str_eq(meta_names(e),
                     "level,process_pid,process_user_id,process_executable_name");
    ck_assert_str_eq(meta(e, "process_pid"), "4242");
    ck_assert_str_eq(meta(e, "process_user_id"), "501");
    ck_assert_str_eq(meta(e, "level"), "info");
    ck_assert_str_eq(e->line, "{\"level\":\"info\"}");
}
END_TEST

START_TEST(hint_attributes)
{
    Req *q = req_new();
    RL *rl = rl_add(q);
    SL *sl;
    LR *r;

    res_attr(rl, "service.name", av_s("api"));
    res_attr(rl, "k8s.pod.name", av_s("pod-1"));
    res_attr(rl, "loki.resource.labels", av_s(" k8s.pod.name ,absent,"));
    sl = sl_add(rl, NULL);
    r = lr_add(sl, "with hint", T0);
    lr_attr(r, "http.method", av_s("GET"));
    lr_attr(r, "user.id", av_i(7));
    lr_attr(r, "path", av_s("/a"));
    lr_attr(r, "loki.attribute.labels", av_s("http.method,user.id, nope"));
    lr_add(sl, "without", T0 + 1);
    Push *p = encode_pb(q);

    ck_assert_uint_eq(nstr, 2);
    ck_assert_str_eq(p->streams[0]->labels,
                     "{http_method=\"GET\", k8s_pod_name=\"pod-1\", "
                     "service_name=\"api\", source=\"otlp\", user_id=\"7\"}");
    ck_assert_str_eq(meta_names(p->streams[0]->entries[0]), "path");
    ck_assert_str_eq(p->streams[1]->labels,
                     "{k8s_pod_name=\"pod-1\", service_name=\"api\", "
                     "source=\"otlp\"}");
    ck_assert_str_eq(meta_names(p->streams[1]->entries[0]), "");
    ck_assert_str_eq(p->streams[1]->entries[0]->line, "without");
}
END_TEST

START_TEST(configured_labels_and_level)
{
    static const char *const labels[] = {"service_name", "level", "region"};
    Req *q = req_new();
    RL *rl = rl_add(q);
    SL *sl;
    LR *r;

    opts.labels = labels;
    opts.nlabels = 3;
    res_attr(rl, "service.name", av_s("api"));
    sl = sl_add(rl, NULL);
    r = lr_add(sl, "a", T0);
    r->severity_number = 18;
    r->severity_text = "ERROR";
    lr_attr(r, "region", av_s("eu"));
    r = lr_add(sl, "b", T0 + 1);
    r->severity_text = "WARNING";
    r = lr_add(sl, "c", T0 + 2);
    r->severity_text = "weird";
    r = lr_add(sl, "d", T0 + 3);
    Push *p = encode_pb(q);

    ck_assert_uint_eq(nstr, 3);
    ck_assert_str_eq(p->streams[0]->labels,
                     "{level=\"error\", region=\"eu\", service_name=\"api\"}");
    /* The level is a label, the region attribute too: neither is metadata. */
    ck_assert_str_eq(meta_names(p->streams[0]->entries[0]), "");
    ck_assert_str_eq(p->streams[1]->labels,
                     "{level=\"warn\", service_name=\"api\"}");
    /* Not a known level: no label, the text stays as metadata. */
    ck_assert_str_eq(p->streams[2]->labels, "{service_name=\"api\"}");
    ck_assert_str_eq(meta(p->streams[2]->entries[0], "level"), "weird");
    ck_assert_str_eq(p->streams[2]->entries[0]->line, "c");
    /* No level at all: the same stream as "c". */
    ck_assert_uint_eq(p->streams[2]->n_entries, 2);
    ck_assert_str_eq(p->streams[2]->entries[1]->line, "d");
    ck_assert_ptr_null(meta(p->streams[2]->entries[1], "level"));
}
END_TEST

/* Configured labels come from the resource first, then the record. */
START_TEST(configured_label_precedence)
{
    static const char *const labels[] = {"service_name", "region", "zone"};
    Req *q = req_new();
    RL *rl = rl_add(q);
    LR *r;

    opts.labels = labels;
    opts.nlabels = 3;
    res_attr(rl, "region", av_s("us"));
    res_attr(rl, "zone", av_s("")); /* empty: no label from it */
    r = lr_add(sl_add(rl, NULL), "x", T0);
    lr_attr(r, "region", av_s("eu"));
    lr_attr(r, "zone", av_s("z1"));
    lr_attr(r, "service_name", av_s("from-record"));
    Push *p = encode_pb(q);

    ck_assert_str_eq(p->streams[0]->labels,
                     "{region=\"us\", service_name=\"from-record\", "
                     "zone=\"z1\"}");
    ck_assert_str_eq(meta_names(p->streams[0]->entries[0]), "");
}
END_TEST

START_TEST(label_cap)
{
    Req *q = req_new();
    RL *rl = rl_add(q);
    char keys[20][16], hint[400] = "";
    Push *p;
    const Entry *e;

    opts.host = "h";
    res_attr(rl, "service.name", av_s("api"));
    for (int i = 0; i < 20; i++) {
        snprintf(keys[i], sizeof(keys[i]), "a%02d", i);
        res_attr(rl, keys[i], av_s("v"));
        strcat(hint, i > 0 ? "," : "");
        strcat(hint, keys[i]);
    }
    res_attr(rl, "loki.resource.labels", av_s(hint));
    lr_add(sl_add(rl, NULL), "x", T0);
    p = encode_pb(q);
    e = p->streams[0]->entries[0];

    ck_assert_uint_eq(count_labels(p->streams[0]->labels), LK_LOKI_MAX_LABELS);
    /* Configured labels first (3 have values), then 12 of the hint. */
    ck_assert_ptr_nonnull(strstr(p->streams[0]->labels, "service_name=\"api\""));
    ck_assert_ptr_nonnull(strstr(p->streams[0]->labels, "host=\"h\""));
    ck_assert_ptr_nonnull(strstr(p->streams[0]->labels, "a11=\"v\""));
    ck_assert_ptr_null(strstr(p->streams[0]->labels, "a12"));
    /* The rest is not lost: it is metadata. */
    ck_assert_str_eq(meta_names(e), "a12,a13,a14,a15,a16,a17,a18,a19");
}
END_TEST

START_TEST(label_escaping)
{
    Req *q = req_new();
    RL *rl = rl_add(q);
    json_t *j, *v;

    res_attr(rl, "service.name", av_s("a\"b\\c\nd"));
    lr_add(sl_add(rl, NULL), "x", T0);
    Push *p = encode_pb(q);
    ck_assert_str_eq(p->streams[0]->labels,
                     "{service_name=\"a\\\"b\\\\c\\nd\", source=\"otlp\"}");

    j = encode_json(q);
    v = json_object_get(
        json_object_get(json_array_get(json_object_get(j, "streams"), 0),
                        "stream"),
        "service_name");
    ck_assert_str_eq(json_string_value(v), "a\"b\\c\nd");
    json_decref(j);
}
END_TEST

START_TEST(name_mapping)
{
    static const struct {
        const char *key, *name;
    } cases[] = {
        {"service.name", "service_name"},
        {"service.namespace", "service_namespace"},
        {"deployment.environment", "deployment_environment"},
        {"deployment.environment.name", "deployment_environment"},
        {"host.name", "host"},
        {"lookout.source", "source"},
        {"process.pid", "process_pid"},
        {"http.status-code", "http_status_code"},
        {"1st.key", "_1st_key"},
        {"Already_OK9", "Already_OK9"},
        {"\xc3\xbc" "ber", "__ber"},
        {"host.name.x", "host_name_x"},
        {"", ""},
    };
    char buf[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = lk_loki_name(cases[i].key, strlen(cases[i].key), buf,
                                sizeof(buf));
        ck_assert_str_eq(buf, cases[i].name);
        ck_assert_uint_eq(n, strlen(cases[i].name));
    }
    /* Cut short like snprintf: the full length is returned. */
    memset(buf, 'x', sizeof(buf));
    ck_assert_uint_eq(lk_loki_name("process.pid", 11, buf, 5), 11);
    ck_assert_str_eq(buf, "proc");
    ck_assert_uint_eq(lk_loki_name("1a", 2, buf, 2), 3);
    ck_assert_str_eq(buf, "_");
    ck_assert_uint_eq(lk_loki_name("host.name", 9, buf, 3), 4);
    ck_assert_str_eq(buf, "ho");
    buf[0] = 'x';
    ck_assert_uint_eq(lk_loki_name("abc", 3, buf, 0), 3);
    ck_assert_int_eq(buf[0], 'x');

    /* The same mapping names metadata. */
    Req *q = req_new();
    RL *rl = rl_add(q);
    LR *r = lr_add(sl_add(rl, NULL), "x", T0);
    lr_attr(r, "k8s.pod-name", av_s("p"));
    lr_attr(r, "2fa", av_b(true));
    Push *p = encode_pb(q);
    ck_assert_str_eq(meta_names(p->streams[0]->entries[0]), "k8s_pod_name,_2fa");
}
END_TEST

/* --- lines and values */

START_TEST(bodies_of_every_type)
{
    static const uint8_t raw[] = {1, 2, 3, 0xff};
    Req *q = req_new();
    SL *sl = sl_add(rl_add(q), NULL);
    AV *bodies[] = {
        av_s("plain"),
        av_i(42),
        av_i(-7),
        av_d(1.5),
        av_d(0.1),
        av_d(0.1 + 0.2),
        av_d(1e21),
        av_d(NAN),
        av_d(-INFINITY),
        av_b(true),
        av_y(raw, sizeof(raw)),
        av_arr(4, av_i(1), av_s("x\"y"), av_b(false), av_new()),
        av_kvl(3, "a", av_i(1), "b", av_kvl(1, "c", av_s("d")), "e",
               av_arr(0)),
        av_new(), /* AnyValue without a value */
        NULL,     /* no body */
    };
    const char *want[] = {
        "plain",
        "42",
        "-7",
        "1.5",
        "0.1",
        "0.30000000000000004",
        "1e+21",
        "NaN",
        "-Infinity",
        "true",
        "AQID/w==",
        "[1,\"x\\\"y\",false,null]",
        "{\"a\":1,\"b\":{\"c\":\"d\"},\"e\":[]}",
        "",
        "",
    };
    size_t n = sizeof(want) / sizeof(want[0]);

    for (size_t i = 0; i < n; i++) {
        LR *r = lr_add(sl, NULL, T0 + i);
        r->body = bodies[i];
    }
    Push *p = encode_pb(q);
    ck_assert_uint_eq(p->n_streams, 1);
    ck_assert_uint_eq(p->streams[0]->n_entries, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(p->streams[0]->entries[i]->line, want[i]);
}
END_TEST

START_TEST(metadata_values_of_every_type)
{
    static const uint8_t raw[] = {0xff};
    Req *q = req_new();
    LR *r = lr_add(sl_add(rl_add(q), NULL), "x", T0);
    lr_attr(r, "s", av_s("str"));
    lr_attr(r, "i", av_i(-5));
    lr_attr(r, "big", av_i(INT64_MIN));
    lr_attr(r, "d", av_d(2.5));
    lr_attr(r, "b", av_b(false));
    lr_attr(r, "y", av_y(raw, 1));
    lr_attr(r, "arr", av_arr(2, av_s("a"), av_d(0.5)));
    lr_attr(r, "kv", av_kvl(1, "k", av_y(raw, 1)));
    lr_attr(r, "none", av_new());
    lr_attr(r, "empty", av_s(""));
    Push *p = encode_pb(q);
    const Entry *e = p->streams[0]->entries[0];

    ck_assert_str_eq(meta_names(e), "s,i,big,d,b,y,arr,kv,none,empty");
    ck_assert_str_eq(meta(e, "s"), "str");
    ck_assert_str_eq(meta(e, "i"), "-5");
    ck_assert_str_eq(meta(e, "big"), "-9223372036854775808");
    ck_assert_str_eq(meta(e, "d"), "2.5");
    ck_assert_str_eq(meta(e, "b"), "false");
    ck_assert_str_eq(meta(e, "y"), "/w==");
    ck_assert_str_eq(meta(e, "arr"), "[\"a\",0.5]");
    ck_assert_str_eq(meta(e, "kv"), "{\"k\":\"/w==\"}");
    ck_assert_str_eq(meta(e, "none"), "");
    ck_assert_str_eq(meta(e, "empty"), "");
}
END_TEST

START_TEST(metadata_order_and_uniqueness)
{
    static const uint8_t tid[16] = {0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3,
                                    4,    5,    6,    7,    8, 9, 10, 0xab};
    static const uint8_t sid[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t zero[16] = {0};
    Req *q = req_new();
    RL *rl = rl_add(q);
    SL *sl;
    LR *r;

    res_attr(rl, "service.name", av_s("api"));
    res_attr(rl, "res.attr", av_s("r"));
    res_attr(rl, "a", av_s("res-a"));
    sl = sl_add(rl, "github.com/acme/lib");
    r = lr_add(sl, "x", T0);
    r->severity_number = 9;
    r->severity_text = "INFO";
    r->trace_id.data = (uint8_t *)tid;
    r->trace_id.len = 16;
    r->span_id.data = (uint8_t *)sid;
    r->span_id.len = 8;
    lr_attr(r, "b", av_i(1));
    lr_attr(r, "level", av_s("dup"));
    lr_attr(r, "a", av_s("x"));
    lr_attr(r, "b", av_s("second"));
    lr_attr(r, "service.name", av_s("shadowed"));
    r = lr_add(sl, "y", T0 + 1);
    r->trace_id.data = (uint8_t *)zero;
    r->trace_id.len = 16;
    r->span_id.data = (uint8_t *)zero;
    r->span_id.len = 8;
    Push *p = encode_pb(q);
    const Entry *e = p->streams[0]->entries[0];

    ck_assert_uint_eq(nstr, 1);
    ck_assert_str_eq(meta_names(e),
                     "level,trace_id,span_id,b,a,res_attr,scope_name");
    ck_assert_str_eq(meta(e, "level"), "info");
    ck_assert_str_eq(meta(e, "trace_id"), "deadbeef000102030405060708090aab");
    ck_assert_str_eq(meta(e, "span_id"), "0000000000000001");
    ck_assert_str_eq(meta(e, "b"), "1");
    ck_assert_str_eq(meta(e, "a"), "x");
    ck_assert_str_eq(meta(e, "scope_name"), "github.com/acme/lib");
    /* All-zero ids are absent ids; resource attributes in their order. */
    ck_assert_str_eq(meta_names(p->streams[0]->entries[1]),
                     "res_attr,a,scope_name");
}
END_TEST

/* --- timestamps and order */

START_TEST(timestamp_fallbacks)
{
    Req *q = req_new();
    SL *sl = sl_add(rl_add(q), NULL);
    LR *r;

    lr_add(sl, "time", T0 + 123456789);
    r = lr_add(sl, "observed", 0);
    r->observed_time_unix_nano = T0 + 1000000000;
    r = lr_add(sl, "both", T0 + 5);
    r->observed_time_unix_nano = T0 + 9;
    lr_add(sl, "now", 0);
    Push *p = encode_pb(q);
    Entry **e = p->streams[0]->entries;

    ck_assert_uint_eq(p->streams[0]->n_entries, 4);
    ck_assert_str_eq(e[0]->line, "both");
    ck_assert_uint_eq(ts_of(e[0]), T0 + 5);
    ck_assert_str_eq(e[1]->line, "time");
    ck_assert_int_eq(e[1]->timestamp->seconds, 1700000000);
    ck_assert_int_eq(e[1]->timestamp->nanos, 123456789);
    ck_assert_str_eq(e[2]->line, "observed");
    ck_assert_int_eq(e[2]->timestamp->seconds, 1700000001);
    ck_assert_int_eq(e[2]->timestamp->nanos, 0);
    ck_assert_str_eq(e[3]->line, "now");
    ck_assert_uint_eq(ts_of(e[3]), NOW);
}
END_TEST

START_TEST(stable_sort_within_streams)
{
    static const uint64_t ts[] = {30, 10, 20, 10, 30, 5};
    static const char *const svc[] = {"a", "a", "b", "a", "b", "a"};
    Req *q = req_new();
    char body[8][16];
    Push *p;

    for (int i = 0; i < 6; i++) {
        RL *rl = rl_add(q);
        res_attr(rl, "service.name", av_s(svc[i]));
        snprintf(body[i], sizeof(body[i]), "r%d", i);
        lr_add(sl_add(rl, NULL), body[i], T0 + ts[i]);
    }
    p = encode_pb(q);
    ck_assert_uint_eq(p->n_streams, 2);
    ck_assert_ptr_nonnull(strstr(p->streams[0]->labels, "service_name=\"a\""));
    ck_assert_uint_eq(p->streams[0]->n_entries, 4);
    ck_assert_str_eq(p->streams[0]->entries[0]->line, "r5");
    ck_assert_str_eq(p->streams[0]->entries[1]->line, "r1");
    ck_assert_str_eq(p->streams[0]->entries[2]->line, "r3");
    ck_assert_str_eq(p->streams[0]->entries[3]->line, "r0");
    ck_assert_str_eq(p->streams[1]->entries[0]->line, "r2");
    ck_assert_str_eq(p->streams[1]->entries[1]->line, "r4");
}
END_TEST

/* Enough records to take the merge sort through several passes. */
START_TEST(sort_of_many_records)
{
    Req *q = req_new();
    SL *sl = sl_add(rl_add(q), NULL);
    char (*body)[16] = zalloc(700 * 16);
    Push *p;

    for (int i = 0; i < 700; i++) {
        snprintf(body[i], 16, "%d", i);
        /* Descending in steps, with runs of equal timestamps. */
        lr_add(sl, body[i], T0 + (uint64_t)(1000 - i / 3));
    }
    p = encode_pb(q);
    ck_assert_uint_eq(p->streams[0]->n_entries, 700);
    for (size_t k = 1; k < 700; k++) {
        const Entry *a = p->streams[0]->entries[k - 1];
        const Entry *b = p->streams[0]->entries[k];
        ck_assert_uint_le(ts_of(a), ts_of(b));
        if (ts_of(a) == ts_of(b))
            ck_assert_int_lt(atoi(a->line), atoi(b->line));
    }
    ck_assert_str_eq(p->streams[0]->entries[0]->line, "699");
}
END_TEST

START_TEST(bodies_merge_into_streams)
{
    struct iovec iov[3];
    const char *svc[] = {"a", "b", "a"};
    Push *p;

    for (int i = 0; i < 3; i++) {
        Req *q = req_new();
        RL *rl = rl_add(q);
        SL *sl;
        res_attr(rl, "service.name", av_s(svc[i]));
        sl = sl_add(rl, NULL);
        lr_add(sl, i == 0 ? "a-late" : i == 1 ? "b" : "a-early", T0 + 10 - i);
        lr_add(sl, i == 0 ? "a-later" : i == 1 ? "b2" : "a-mid", T0 + 20 - i);
        iov[i] = pack(q);
    }
    ck_assert_int_eq(encode_iov(iov, 3), 0);
    p = decode();
    ck_assert_uint_eq(nrec, 6);
    ck_assert_uint_eq(nstr, 2);
    ck_assert_ptr_nonnull(strstr(p->streams[0]->labels, "service_name=\"a\""));
    ck_assert_ptr_nonnull(strstr(p->streams[1]->labels, "service_name=\"b\""));
    ck_assert_uint_eq(p->streams[0]->n_entries, 4);
    ck_assert_str_eq(p->streams[0]->entries[0]->line, "a-early");
    ck_assert_str_eq(p->streams[0]->entries[1]->line, "a-late");
    ck_assert_str_eq(p->streams[0]->entries[2]->line, "a-mid");
    ck_assert_str_eq(p->streams[0]->entries[3]->line, "a-later");
}
END_TEST

START_TEST(empty_requests)
{
    struct iovec none = {NULL, 0}, iov[2];
    Req *q = req_new();
    RL *rl = rl_add(q);

    res_attr(rl, "service.name", av_s("idle"));
    sl_add(rl, "scope");
    iov[0] = none;
    iov[1] = pack(q);

    ck_assert_int_eq(encode_iov(NULL, 0), 0);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_uint_eq(nrec, 0);
    ck_assert_uint_eq(nstr, 0);
    ck_assert_int_eq(encode_iov(iov, 2), 0);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_uint_eq(nrec, 0);

    opts.format = LK_LOKI_JSON;
    ck_assert_int_eq(encode_iov(iov, 2), 0);
    ck_assert_uint_eq(out.len, strlen("{\"streams\":[]}"));
    ck_assert_int_eq(memcmp(out.data, "{\"streams\":[]}", out.len), 0);
}
END_TEST

/* --- wire order and malformed input (hand-encoded) */

/* Resource after its scope_logs, scope after its records: protobuf allows
 * any field order, and a repeated `resource` merges. */
START_TEST(fields_in_any_order)
{
    struct enc e;
    struct iovec iov;
    Push *p;

    e_init(&e);
    e_begin(&e, 1);       /* resource_logs */
    e_begin(&e, 2);       /* scope_logs */
    e_begin(&e, 2);       /* log_records */
    e_uint(&e, 99, 1);    /* unknown field: skipped */
    e_fixed64(&e, 1, T0);
    e_begin(&e, 5);
    e_str(&e, 1, "first");
    e_end(&e);
    e_str(&e, 3, "warn");
    e_end(&e);
    e_begin(&e, 1); /* scope, after the record */
    e_str(&e, 1, "old");
    e_str(&e, 1, "lib");
    e_end(&e);
    e_end(&e);
    e_begin(&e, 1); /* resource */
    e_kv_str(&e, 1, "service.name", "late");
    e_end(&e);
    e_begin(&e, 1); /* a second resource field merges into the first */
    e_kv_str(&e, 1, "host.name", "h2");
    e_end(&e);
    e_end(&e);
    iov.iov_base = e.buf;
    iov.iov_len = e.len;
    ck_assert_int_eq(encode_iov(&iov, 1), 0);
    p = decode();
    ck_assert_str_eq(p->streams[0]->labels,
                     "{host=\"h2\", service_name=\"late\", source=\"otlp\"}");
    ck_assert_str_eq(p->streams[0]->entries[0]->line, "first");
    ck_assert_str_eq(meta_names(p->streams[0]->entries[0]), "level,scope_name");
    ck_assert_str_eq(meta(p->streams[0]->entries[0], "level"), "warn");
    ck_assert_str_eq(meta(p->streams[0]->entries[0], "scope_name"), "lib");
    e_fini(&e);
}
END_TEST

static int encode_bytes(const void *p, size_t n)
{
    struct iovec iov = {(void *)p, n};
    return encode_iov(&iov, 1);
}

static int encode_enc(const struct enc *e)
{
    return encode_bytes(e->buf, e->len);
}

/* A request whose one record has a body of arrays nested |depth| deep,
 * built from the inside out. */
static void nested_arrays(struct enc *e, int depth)
{
    struct enc in, wrap;

    e_init(&in);
    e_uint(&in, 3, 1); /* AnyValue.int_value */
    for (int i = 0; i < depth; i++) {
        e_init(&wrap);
        e_begin(&wrap, 5);                 /* AnyValue.array_value */
        e_bytes(&wrap, 1, in.buf, in.len); /* ArrayValue.values */
        e_end(&wrap);
        e_fini(&in);
        in = wrap;
    }
    e_init(e);
    e_begin(e, 1);
    e_begin(e, 2);
    e_begin(e, 2);
    e_bytes(e, 5, in.buf, in.len);
    e_end_n(e, 3);
    e_fini(&in);
}

START_TEST(malformed_input)
{
    static const uint8_t trunc_varint[] = {0x0a, 0x80};
    static const uint8_t past_end[] = {0x0a, 0x05, 0x00};
    static const uint8_t group[] = {0x0b, 0x0c};
    static const uint8_t field0[] = {0x02, 0x00};
    static const uint8_t long_varint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0x7f};
    static const uint8_t trunc_fixed[] = {0x09, 1, 2, 3};
    struct enc e;

    ck_assert_int_eq(encode_bytes(trunc_varint, sizeof(trunc_varint)), LK_EPROTO);
    ck_assert_int_eq(encode_bytes(past_end, sizeof(past_end)), LK_EPROTO);
    ck_assert_int_eq(encode_bytes(group, sizeof(group)), LK_EPROTO);
    ck_assert_int_eq(encode_bytes(field0, sizeof(field0)), LK_EPROTO);
    ck_assert_int_eq(encode_bytes(long_varint, sizeof(long_varint)), LK_EPROTO);
    ck_assert_int_eq(encode_bytes(trunc_fixed, sizeof(trunc_fixed)), LK_EPROTO);

    /* resource_logs as a varint */
    e_init(&e);
    e_uint(&e, 1, 3);
    ck_assert_int_eq(encode_enc(&e), LK_EPROTO);
    e_fini(&e);

    /* time_unix_nano as a varint */
    e_init(&e);
    e_begin(&e, 1);
    e_begin(&e, 2);
    e_begin(&e, 2);
    e_uint(&e, 1, 5);
    e_end_n(&e, 3);
    ck_assert_int_eq(encode_enc(&e), LK_EPROTO);
    e_fini(&e);

    /* an attribute key as a fixed32 */
    e_init(&e);
    e_begin(&e, 1);
    e_begin(&e, 1);
    e_begin(&e, 1);
    e_fixed32(&e, 1, 7);
    e_end_n(&e, 3);
    ck_assert_int_eq(encode_enc(&e), LK_EPROTO);
    e_fini(&e);

    /* a length past the end of its enclosing record */
    e_init(&e);
    e_begin(&e, 1);
    e_begin(&e, 2);
    e_begin(&e, 2);
    e_tag(&e, 3, WT_LEN);
    e_varint(&e, 40);
    e_raw(&e, "abc", 3);
    e_end_n(&e, 3);
    e_raw(&e, "padding padding padding padding padding", 40);
    ck_assert_int_eq(encode_enc(&e), LK_EPROTO);
    e_fini(&e);

    /* a kvlist body whose inside is broken: found while rendering it */
    e_init(&e);
    e_begin(&e, 1);
    e_begin(&e, 2);
    e_begin(&e, 2);
    e_begin(&e, 5);
    e_bytes(&e, 6, "\x0a\x05\x01", 3);
    e_end_n(&e, 4);
    ck_assert_int_eq(encode_enc(&e), LK_EPROTO);
    opts.format = LK_LOKI_JSON;
    ck_assert_int_eq(encode_enc(&e), LK_EPROTO);
    opts.format = LK_LOKI_PROTOBUF;
    e_fini(&e);

    /* Arrays nested 100 deep in a body; 50 deep is fine. */
    nested_arrays(&e, 100);
    ck_assert_int_eq(encode_enc(&e), LK_EPROTO);
    e_fini(&e);
    nested_arrays(&e, 50);
    ck_assert_int_eq(encode_enc(&e), 0);
    e_fini(&e);

    /* The encoder is still good after failures. */
    e_init(&e);
    e_begin(&e, 1);
    e_begin(&e, 2);
    e_begin(&e, 2);
    e_fixed64(&e, 1, T0);
    e_end_n(&e, 3);
    ck_assert_int_eq(encode_enc(&e), 0);
    ck_assert_uint_eq(nrec, 1);
    e_fini(&e);
}
END_TEST

START_TEST(output_cap)
{
    Req *q = req_new();
    RL *rl = rl_add(q);
    SL *sl = sl_add(rl, NULL);
    struct iovec iov;
    lk_buf small;
    uint64_t r, s;

    res_attr(rl, "service.name", av_s("api"));
    for (int i = 0; i < 10; i++)
        lr_add(sl, "a line that takes some room in the output", T0 + i);
    iov = pack(q);

    lk_buf_init(&small, 64);
    ck_assert_int_eq(lk_loki_encode(enc, &opts, &iov, 1, &small, &r, &s),
                     LK_E2BIG);
    lk_buf_reset(&small);
    opts.format = LK_LOKI_JSON;
    ck_assert_int_eq(lk_loki_encode(enc, &opts, &iov, 1, &small, &r, &s),
                     LK_E2BIG);
    lk_buf_fini(&small);

    /* Exactly enough room is enough. */
    opts.format = LK_LOKI_PROTOBUF;
    ck_assert_int_eq(encode_iov(&iov, 1), 0);
    lk_buf_init(&small, out.len);
    ck_assert_int_eq(lk_loki_encode(enc, &opts, &iov, 1, &small, &r, &s), 0);
    ck_assert_uint_eq(small.len, out.len);
    lk_buf_fini(&small);
}
END_TEST

/* --- reuse */

static Req *many_streams(int nsvc, int per)
{
    Req *q = req_new();
    for (int i = 0; i < nsvc; i++) {
        RL *rl = rl_add(q);
        SL *sl = sl_add(rl, "s");
        char *name = zalloc(16);
        snprintf(name, 16, "svc%d", i);
        res_attr(rl, "service.name", av_s(name));
        res_attr(rl, "pid", av_i(i));
        for (int k = 0; k < per; k++) {
            LR *r = lr_add(sl, "line", T0 + (uint64_t)(per - k));
            r->severity_number = 13;
            lr_attr(r, "k", av_i(k));
        }
    }
    return q;
}

START_TEST(encoder_reuse)
{
    struct iovec big = pack(many_streams(200, 5));
    struct iovec small = pack(many_streams(2, 3));
    struct lk_loki_encoder *fresh;
    uint8_t *first;
    size_t first_len;
    lk_buf o2;
    uint64_t r, s;

    ck_assert_int_eq(encode_iov(&big, 1), 0);
    ck_assert_uint_eq(nrec, 1000);
    ck_assert_uint_eq(nstr, 200);
    decode();
    first_len = out.len;
    first = keep(malloc(first_len));
    memcpy(first, out.data, first_len);

    ck_assert_int_eq(encode_iov(&small, 1), 0);
    ck_assert_uint_eq(nrec, 6);
    ck_assert_uint_eq(nstr, 2);
    ck_assert_int_eq(lk_loki_encoder_create(&fresh), 0);
    lk_buf_init(&o2, 1 << 20);
    ck_assert_int_eq(lk_loki_encode(fresh, &opts, &small, 1, &o2, &r, &s), 0);
    ck_assert_uint_eq(o2.len, out.len);
    ck_assert_int_eq(memcmp(o2.data, out.data, out.len), 0);
    lk_buf_fini(&o2);
    lk_loki_encoder_destroy(fresh);

    ck_assert_int_eq(encode_iov(&big, 1), 0);
    ck_assert_uint_eq(out.len, first_len);
    ck_assert_int_eq(memcmp(out.data, first, first_len), 0);
}
END_TEST

/* --- JSON */

START_TEST(json_body)
{
    static const uint8_t tid[16] = {[15] = 1};
    Req *q = req_new();
    RL *rl = rl_add(q);
    SL *sl;
    LR *r;
    json_t *j, *st, *vals, *v;

    opts.host = "h";
    res_attr(rl, "service.name", av_s("api"));
    sl = sl_add(rl, NULL);
    r = lr_add(sl, "quote \" and\nnewline \xff!", T0 + 123);
    r->severity_number = 9;
    r->trace_id.data = (uint8_t *)tid;
    r->trace_id.len = 16;
    lr_add(sl, "bare", T0 + 200);
    j = encode_json(q);

    ck_assert_uint_eq(json_array_size(json_object_get(j, "streams")), 1);
    st = json_array_get(json_object_get(j, "streams"), 0);
    ck_assert_uint_eq(json_object_size(json_object_get(st, "stream")), 3);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(st, "stream"), "host")),
        "h");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(st, "stream"), "source")),
                     "otlp");
    vals = json_object_get(st, "values");
    ck_assert_uint_eq(json_array_size(vals), 2);
    v = json_array_get(vals, 0);
    ck_assert_uint_eq(json_array_size(v), 3);
    ck_assert_str_eq(json_string_value(json_array_get(v, 0)),
                     "1700000000000000123");
    ck_assert_str_eq(json_string_value(json_array_get(v, 1)),
                     "quote \" and\nnewline \xef\xbf\xbd!");
    ck_assert_uint_eq(json_object_size(json_array_get(v, 2)), 2);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(v, 2), "level")),
        "info");
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(v, 2), "trace_id")),
        "00000000000000000000000000000001");
    /* No metadata: no third element. */
    v = json_array_get(vals, 1);
    ck_assert_uint_eq(json_array_size(v), 2);
    ck_assert_str_eq(json_string_value(json_array_get(v, 1)), "bare");
    json_decref(j);
}
END_TEST

/* The JSON and protobuf bodies carry the same streams and entries. */
START_TEST(json_matches_protobuf)
{
    Req *q = many_streams(3, 4);
    Push *p = encode_pb(q);
    json_t *j = encode_json(q);
    json_t *streams = json_object_get(j, "streams");

    ck_assert_uint_eq(json_array_size(streams), p->n_streams);
    for (size_t s = 0; s < p->n_streams; s++) {
        json_t *vals = json_object_get(json_array_get(streams, s), "values");
        ck_assert_uint_eq(json_array_size(vals), p->streams[s]->n_entries);
        for (size_t k = 0; k < p->streams[s]->n_entries; k++) {
            const Entry *e = p->streams[s]->entries[k];
            json_t *v = json_array_get(vals, k);
            json_t *md = json_array_get(v, 2);
            char ts[32];
            snprintf(ts, sizeof(ts), "%llu", (unsigned long long)ts_of(e));
            ck_assert_str_eq(json_string_value(json_array_get(v, 0)), ts);
            ck_assert_str_eq(json_string_value(json_array_get(v, 1)), e->line);
            ck_assert_uint_eq(json_object_size(md), e->n_structuredmetadata);
            for (size_t m = 0; m < e->n_structuredmetadata; m++)
                ck_assert_str_eq(
                    json_string_value(json_object_get(
                        md, e->structuredmetadata[m]->name)),
                    e->structuredmetadata[m]->value);
        }
    }
    json_decref(j);
}
END_TEST

/* --- structured metadata: lines without it, and Loki's limits */

/* lk_loki_line_with_fields on |line| with level / trace_id / span_id values
 * (NULL: the entry has none); the result (the line itself when unchanged). */
static const char *with_fields(const char *line, const char *level, const char *trace,
                               const char *span)
{
    static char res[4096];
    const char *names[3], *vals[3];
    const uint8_t *uv[3];
    size_t ul[3], n = 0;
    const char *all[3] = {"level", "trace_id", "span_id"};
    const char *given[3] = {level, trace, span};
    lk_buf b;
    bool changed;

    for (int k = 0; k < 3; k++) {
        if (given[k] == NULL)
            continue;
        names[n] = all[k];
        vals[n] = given[k];
        uv[n] = (const uint8_t *)vals[n];
        ul[n] = strlen(vals[n]);
        n++;
    }
    lk_buf_init(&b, SIZE_MAX);
    ck_assert_int_eq(lk_buf_append(&b, "prefix", 6), 0); /* appends, never rewrites */
    ck_assert_int_eq(lk_loki_line_with_fields(&b, (const uint8_t *)line, strlen(line),
                                              names, uv, ul, n, &changed),
                     0);
    ck_assert_uint_eq(changed, b.len > 6);
    ck_assert_uint_lt(b.len, sizeof(res));
    if (!changed) {
        snprintf(res, sizeof(res), "%s", line);
    } else {
        memcpy(res, b.data + 6, b.len - 6);
        res[b.len - 6] = '\0';
    }
    lk_buf_fini(&b);
    return res;
}

#define TR "4bf92f3577b34da6a3ce929d0e0e4736"
#define SP "00f067aa0ba902b7"

START_TEST(line_fields_json)
{
    /* Keys it lacks are added at its top level, before the closing brace. */
    ck_assert_str_eq(with_fields("{\"msg\":\"hi\"}", "info", TR, SP),
                     "{\"msg\":\"hi\",\"level\":\"info\",\"trace_id\":\"" TR
                     "\",\"span_id\":\"" SP "\"}");
    /* Keys it has stay as they are (the line keeps its own spelling). */
    ck_assert_str_eq(with_fields("{\"level\":\"WARNING\",\"msg\":\"x\"}", "warn", TR, NULL),
                     "{\"level\":\"WARNING\",\"msg\":\"x\",\"trace_id\":\"" TR "\"}");
    ck_assert_str_eq(with_fields("{\"level\":\"info\",\"trace_id\":\"" TR "\"}", "info", TR,
                                 NULL),
                     "{\"level\":\"info\",\"trace_id\":\"" TR "\"}");
    /* Empty object, blanks around and inside, nested and quoted look-alikes. */
    ck_assert_str_eq(with_fields("{}", "info", NULL, NULL), "{\"level\":\"info\"}");
    ck_assert_str_eq(with_fields(" { } \n", "info", NULL, NULL), " { \"level\":\"info\"} \n");
    ck_assert_str_eq(with_fields(" {\"a\" : [1,{\"level\":2}] , \"b\":{\"level\":\"x\"} }",
                                 "error", NULL, NULL),
                     " {\"a\" : [1,{\"level\":2}] , \"b\":{\"level\":\"x\"} ,\"level\":\"error\"}");
    ck_assert_str_eq(with_fields("{\"msg\":\"\\\"level\\\":\\\"x\\\"\",\"n\":1.5e3,\"t\":true}",
                                 "debug", NULL, NULL),
                     "{\"msg\":\"\\\"level\\\":\\\"x\\\"\",\"n\":1.5e3,\"t\":true,"
                     "\"level\":\"debug\"}");
    /* A value that JSON must escape. */
    ck_assert_str_eq(with_fields("{\"a\":1}", "we\"ird\n", NULL, NULL),
                     "{\"a\":1,\"level\":\"we\\\"ird\\n\"}");
}
END_TEST

START_TEST(line_fields_not_json)
{
    /* logfmt: appended, unless the line has the key as a token. */
    ck_assert_str_eq(with_fields("ts=1 msg=hello", "info", TR, SP),
                     "ts=1 msg=hello level=info trace_id=" TR " span_id=" SP);
    ck_assert_str_eq(with_fields("level=warn msg=\"a trace_id=1 b\"", "warn", TR, NULL),
                     "level=warn msg=\"a trace_id=1 b\" trace_id=" TR);
    ck_assert_str_eq(with_fields("level=warn trace_id=" TR, "warn", TR, NULL),
                     "level=warn trace_id=" TR);
    ck_assert_str_eq(with_fields("xlevel=1 level_x=2", "info", NULL, NULL),
                     "xlevel=1 level_x=2 level=info");
    /* Raw text, the empty line, values that need quotes. */
    ck_assert_str_eq(with_fields("plain text", "error", NULL, SP),
                     "plain text level=error span_id=" SP);
    ck_assert_str_eq(with_fields("", "info", NULL, NULL), "level=info");
    ck_assert_str_eq(with_fields("x", "my level", NULL, NULL), "x level=\"my level\"");
    ck_assert_str_eq(with_fields("x", "a=\"b\\", NULL, NULL), "x level=\"a=\\\"b\\\\\"");
    /* Not quite JSON objects: logfmt. */
    ck_assert_str_eq(with_fields("{\"a\":}", "info", NULL, NULL), "{\"a\":} level=info");
    ck_assert_str_eq(with_fields("{\"a\":1,}", "info", NULL, NULL), "{\"a\":1,} level=info");
    ck_assert_str_eq(with_fields("{\"a\":1} tail", "info", NULL, NULL),
                     "{\"a\":1} tail level=info");
    ck_assert_str_eq(with_fields("[1,2]", "info", NULL, NULL), "[1,2] level=info");
    ck_assert_str_eq(with_fields("{\"a\":\"unterminated}", "info", NULL, NULL),
                     "{\"a\":\"unterminated} level=info");
    /* Nothing to add: unchanged. */
    ck_assert_str_eq(with_fields("anything", NULL, NULL, NULL), "anything");
}
END_TEST

/* A record with |sev| (0: none), trace and span ids when |ids|. */
static LR *md_record(SL *sl, const char *body, int sev, bool ids)
{
    static const uint8_t tr[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                   0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
    static const uint8_t sp[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
    LR *r = lr_add(sl, body, T0);
    r->severity_number = sev;
    if (ids) {
        r->trace_id.data = (uint8_t *)tr;
        r->trace_id.len = 16;
        r->span_id.data = (uint8_t *)sp;
        r->span_id.len = 8;
    }
    return r;
}

START_TEST(no_metadata_bodies)
{
    Req *q = req_new();
    RL *rl = rl_add(q);
    res_attr(rl, "service.name", av_s("api"));
    res_attr(rl, "process.pid", av_i(42));
    SL *sl = sl_add(rl, "my.lib");
    LR *r = md_record(sl, "{\"msg\":\"json\"}", 9, true);
    lr_attr(r, "user", av_s("u1"));
    md_record(sl, "text line", 17, true);
    md_record(sl, "no level", 0, false);
    r = md_record(sl, NULL, 13, false);
    r->body = av_kvl(1, "k", av_s("v"));
    opts.no_metadata = true;
    Push *p = encode_pb(q);
    ck_assert_uint_eq(p->n_streams, 1);
    Stream *st = p->streams[0];
    ck_assert_uint_eq(st->n_entries, 4);
    for (size_t i = 0; i < 4; i++)
        ck_assert_msg(st->entries[i]->n_structuredmetadata == 0, "entry %zu: %s", i,
                      meta_names(st->entries[i]));
    ck_assert_str_eq(st->entries[0]->line, "{\"msg\":\"json\",\"level\":\"info\",\"trace_id\":\"" TR
                                           "\",\"span_id\":\"" SP "\"}");
    ck_assert_str_eq(st->entries[1]->line, "text line level=error trace_id=" TR " span_id=" SP);
    ck_assert_str_eq(st->entries[2]->line, "no level");
    ck_assert_str_eq(st->entries[3]->line, "{\"k\":\"v\",\"level\":\"warn\"}");
    /* The same in a JSON body: no metadata object at all. */
    json_t *j = encode_json(q);
    json_t *values = json_object_get(json_array_get(json_object_get(j, "streams"), 0), "values");
    ck_assert_uint_eq(json_array_size(values), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *v = json_array_get(values, i);
        ck_assert_uint_eq(json_array_size(v), 2);
        ck_assert_str_eq(json_string_value(json_array_get(v, 1)), st->entries[i]->line);
    }
    json_decref(j);
}
END_TEST

START_TEST(no_metadata_level_label)
{
    /* A `level` stream label already says it: not put into the line. */
    static const char *const lab[] = {"service_name", "level"};
    Req *q = req_new();
    RL *rl = rl_add(q);
    SL *sl = sl_add(rl, NULL);
    md_record(sl, "x", 9, true);
    opts.labels = lab;
    opts.nlabels = 2;
    opts.no_metadata = true;
    Push *p = encode_pb(q);
    ck_assert_str_eq(p->streams[0]->entries[0]->line, "x trace_id=" TR " span_id=" SP);
    ck_assert_ptr_nonnull(strstr(p->streams[0]->labels, "level=\"info\""));
}
END_TEST

static uint64_t md_bytes(const Entry *e)
{
    uint64_t n = 0;
    for (size_t i = 0; i < e->n_structuredmetadata; i++)
        n += strlen(e->structuredmetadata[i]->name) + strlen(e->structuredmetadata[i]->value);
    return n;
}

START_TEST(limit_entries)
{
    Req *q = req_new();
    RL *rl = rl_add(q);
    SL *sl = sl_add(rl, NULL);
    char k[16];
    LR *r = md_record(sl, "many", 9, true); /* level, trace_id, span_id first */
    for (int i = 0; i < 127; i++) {
        snprintf(k, sizeof(k), "a%03d", i);
        lr_attr(r, keep(strdup(k)), av_s("v"));
    }
    r = md_record(sl, "exactly", 0, false);
    for (int i = 0; i < 128; i++) {
        snprintf(k, sizeof(k), "b%03d", i);
        lr_attr(r, keep(strdup(k)), av_s("v"));
    }
    opts.md_max_entries = LK_LOKI_MD_MAX_ENTRIES;
    opts.md_max_bytes = LK_LOKI_MD_MAX_BYTES;
    Push *p = encode_pb(q);
    uint64_t ce, cs;
    lk_loki_encoder_cuts(enc, &ce, &cs);
    ck_assert_uint_eq(ce, 2);
    ck_assert_uint_eq(cs, 0);
    Entry *e0 = p->streams[0]->entries[0], *e1 = p->streams[0]->entries[1];
    ck_assert_uint_eq(e0->n_structuredmetadata, 128);
    ck_assert_str_eq(e0->structuredmetadata[0]->name, "level");
    ck_assert_str_eq(e0->structuredmetadata[2]->name, "span_id");
    ck_assert_str_eq(e0->structuredmetadata[127]->name, "a124"); /* a125, a126 cut */
    ck_assert_uint_eq(e1->n_structuredmetadata, 128);               /* at the limit */
    /* No limit: all of them. */
    opts.md_max_entries = 0;
    p = encode_pb(q);
    lk_loki_encoder_cuts(enc, &ce, &cs);
    ck_assert_uint_eq(ce, 0);
    ck_assert_uint_eq(p->streams[0]->entries[0]->n_structuredmetadata, 130);
}
END_TEST

START_TEST(limit_size)
{
    /* level "info" counts 5 + 4 bytes; the attribute fills the rest exactly. */
    size_t fill = LK_LOKI_MD_MAX_BYTES - 9 - 1;
    char *big = keep(malloc(fill + 2));
    memset(big, 'x', fill + 1);
    big[fill] = '\0';
    Req *q = req_new();
    RL *rl = rl_add(q);
    SL *sl = sl_add(rl, NULL);
    LR *r = md_record(sl, "at the limit", 9, false);
    lr_attr(r, "k", av_s(big));
    r = md_record(sl, "one over", 9, false);
    char *over = keep(malloc(fill + 2));
    memset(over, 'x', fill + 1);
    over[fill + 1] = '\0';
    lr_attr(r, "k", av_s(over));
    lr_attr(r, "z", av_s("1")); /* fits after the big one is cut */
    opts.md_max_entries = LK_LOKI_MD_MAX_ENTRIES;
    opts.md_max_bytes = LK_LOKI_MD_MAX_BYTES;
    Push *p = encode_pb(q);
    uint64_t ce, cs;
    lk_loki_encoder_cuts(enc, &ce, &cs);
    ck_assert_uint_eq(ce, 0);
    ck_assert_uint_eq(cs, 1);
    Entry *e0 = p->streams[0]->entries[0], *e1 = p->streams[0]->entries[1];
    ck_assert_str_eq(e0->line, "at the limit");
    ck_assert_uint_eq(md_bytes(e0), LK_LOKI_MD_MAX_BYTES);
    ck_assert_str_eq(meta_names(e0), "level,k");
    ck_assert_str_eq(meta_names(e1), "level,z");
    /* The same cut in a JSON body. */
    json_t *j = encode_json(q);
    json_t *values = json_object_get(json_array_get(json_object_get(j, "streams"), 0), "values");
    json_t *md = json_array_get(json_array_get(values, 1), 2);
    ck_assert_uint_eq(json_object_size(md), 2);
    ck_assert_ptr_nonnull(json_object_get(md, "z"));
    json_decref(j);
    lk_loki_encoder_cuts(enc, &ce, &cs);
    ck_assert_uint_eq(cs, 1);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("loki_encode");
    struct {
        const char *name;
        const TTest *t;
    } cases[] = {
        {"default_labels", default_labels_and_fallbacks},
        {"resource_labels", resource_attributes_become_labels},
        {"lines_resource", lines_receiver_resource},
        {"hints", hint_attributes},
        {"configured_level", configured_labels_and_level},
        {"configured_precedence", configured_label_precedence},
        {"label_cap", label_cap},
        {"label_escaping", label_escaping},
        {"name_mapping", name_mapping},
        {"bodies", bodies_of_every_type},
        {"metadata_values", metadata_values_of_every_type},
        {"metadata_order", metadata_order_and_uniqueness},
        {"timestamps", timestamp_fallbacks},
        {"stable_sort", stable_sort_within_streams},
        {"sort_many", sort_of_many_records},
        {"merge_bodies", bodies_merge_into_streams},
        {"empty", empty_requests},
        {"field_order", fields_in_any_order},
        {"malformed", malformed_input},
        {"output_cap", output_cap},
        {"reuse", encoder_reuse},
        {"json", json_body},
        {"json_vs_protobuf", json_matches_protobuf},
        {"line_fields_json", line_fields_json},
        {"line_fields_not_json", line_fields_not_json},
        {"no_metadata_bodies", no_metadata_bodies},
        {"no_metadata_level_label", no_metadata_level_label},
        {"limit_entries", limit_entries},
        {"limit_size", limit_size},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, cases[i].t);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
