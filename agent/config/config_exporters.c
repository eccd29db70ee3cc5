/* The exporters: section: otlp, otlphttp, loki, prometheus, prometheusremotewrite. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_impl.h"
#include "core/buf.h"
#include "core/compress.h"
#include "core/err.h"
#include "core/log.h"
#include "core/utf8.h"

static const char *const exporter_types[] = {"otlp", "otlphttp", "loki", "prometheus",
                                             "prometheusremotewrite", NULL};

/* ---- exporters ---- */

static const char *const compression_names[] = {"none", "gzip", "auto", "zstd", NULL};
static const char *const overflow_names[] = {"refuse", "drop", NULL};

/* Exporter keys that only one type knows carry its bit in .flags. */
#define EX_OTLPHTTP 2u
#define EX_LOKI 4u
#define EX_PROM 16u
#define EX_PRW 64u
#define EX_OTLP 128u
/* Keys of exporters that send somewhere, which a prometheus exporter (it is
 * scraped) does not have. */
#define EX_SENDS 32u
static const char *const loki_format_names[] = {"protobuf", "json", NULL};
/* Indexed by enum lk_loki_md. */
static const char *const loki_md_names[] = {"auto", "on", "off", NULL};

static const struct field exporter_fields[] = {
    {.key = "endpoint", .type = FT_NODE, .flags = EX_SENDS},
    {.key = "timeout", .type = FT_DURATION, .flags = EX_SENDS, .min = 1, .max = DUR_MAX,
     .off = offsetof(struct lk_exporter_config, timeout_ms)},
    {.key = "compression", .type = FT_ENUM, .flags = EX_SENDS, .names = compression_names,
     .off = offsetof(struct lk_exporter_config, compression)},
    {.key = "headers", .type = FT_NODE, .flags = EX_SENDS},
    {.key = "tls", .type = FT_NODE, .flags = EX_SENDS},
    {.key = "retry", .type = FT_NODE, .flags = EX_SENDS},
    F_NODE("queue"),
    F_NODE("batch"),
    {.key = "max_concurrency", .type = FT_U32, .flags = EX_SENDS, .min = 1, .max = 1024,
     .off = offsetof(struct lk_exporter_config, max_concurrency)},
    /* zstd's range; check_compression narrows it for gzip. */
    {.key = "compression_level", .type = FT_U32, .flags = EX_OTLP | EX_OTLPHTTP | EX_LOKI,
     .min = 1, .max = LK_ZSTD_LEVEL_MAX, .off = offsetof(struct lk_exporter_config, compression_level)},
    {.key = "traces_endpoint", .type = FT_NODE, .flags = EX_OTLPHTTP},
    {.key = "metrics_endpoint", .type = FT_NODE, .flags = EX_OTLPHTTP},
    {.key = "logs_endpoint", .type = FT_NODE, .flags = EX_OTLPHTTP},
    {.key = "format", .type = FT_ENUM, .names = loki_format_names, .flags = EX_LOKI,
     .off = offsetof(struct lk_exporter_config, loki.format)},
    {.key = "tenant_id", .type = FT_STRING, .flags = EX_LOKI | EX_PRW | STR_EMPTY_UNSET,
     .off = offsetof(struct lk_exporter_config, auth.tenant_id)},
    {.key = "bearer_token", .type = FT_STRING, .flags = EX_LOKI | EX_PRW | STR_EMPTY_UNSET,
     .off = offsetof(struct lk_exporter_config, auth.bearer_token)},
    {.key = "auth", .type = FT_NODE, .flags = EX_LOKI | EX_PRW},
    {.key = "labels", .type = FT_NODE, .flags = EX_LOKI},
    {.key = "structured_metadata", .type = FT_ENUM, .names = loki_md_names, .flags = EX_LOKI,
     .off = offsetof(struct lk_exporter_config, loki.structured_metadata)},
    {.key = "structured_metadata_max_entries", .type = FT_U32, .flags = EX_LOKI, .min = 0,
     .max = 1000000, .off = offsetof(struct lk_exporter_config, loki.md_max_entries)},
    {.key = "structured_metadata_max_bytes", .type = FT_SIZE, .flags = EX_LOKI, .min = 0,
     .max = 1024 * MIB, .off = offsetof(struct lk_exporter_config, loki.md_max_bytes)},
    {.key = "add_metric_suffixes", .type = FT_BOOL, .flags = EX_PROM | EX_PRW,
     .off = offsetof(struct lk_exporter_config, prometheus.add_metric_suffixes)},
    {.key = "promote_resource_attributes", .type = FT_NODE, .flags = EX_PROM | EX_PRW},
    {.key = "metric_expiration", .type = FT_DURATION, .flags = EX_PROM | EX_PRW, .min = 0,
     .max = DUR_MAX, .off = offsetof(struct lk_exporter_config, prometheus.metric_expiration_ms)},
    {.key = "max_series", .type = FT_U64, .flags = EX_PROM | EX_PRW, .min = 0, .max = 100000000,
     .off = offsetof(struct lk_exporter_config, prometheus.max_series)},
};

/* Reports keys of |es| that exporters of |type| do not know. */
static void check_type_keys(struct ctx *c, const char *path, enum lk_exporter_type type,
                            const struct seen *es)
{
    unsigned mine = type == LK_EXPORTER_OTLP                    ? EX_OTLP
                    : type == LK_EXPORTER_OTLPHTTP              ? EX_OTLPHTTP
                    : type == LK_EXPORTER_LOKI                  ? EX_LOKI
                    : type == LK_EXPORTER_PROMETHEUS            ? EX_PROM
                    : type == LK_EXPORTER_PROMETHEUSREMOTEWRITE ? EX_PRW
                                                                : 0;
    for (size_t i = 0; i < NF(exporter_fields); i++) {
        unsigned f = exporter_fields[i].flags;
        if (es[i].key == NULL)
            continue;
        if ((f & EX_SENDS) && type == LK_EXPORTER_PROMETHEUS &&
            strcmp(exporter_fields[i].key, "endpoint") != 0) {
            ERR(c, es[i].key, "unknown key '%s' in %s (a prometheus exporter is scraped "
                              "on the admin listener; it sends nothing)",
                exporter_fields[i].key, path);
            continue;
        }
        unsigned only = f & (EX_OTLP | EX_OTLPHTTP | EX_LOKI | EX_PROM | EX_PRW);
        if (only == 0 || (only & mine) != 0)
            continue;
        char types[96] = "";
        static const struct {
            unsigned bit;
            const char *name;
        } names[] = {{EX_OTLP, "otlp"}, {EX_OTLPHTTP, "otlphttp"}, {EX_LOKI, "loki"},
                     {EX_PROM, "prometheus"}, {EX_PRW, "prometheusremotewrite"}};
        for (size_t k = 0; k < NF(names); k++)
            if (only & names[k].bit)
                snprintf(types + strlen(types), sizeof(types) - strlen(types), "%s%s",
                         types[0] ? " and " : "", names[k].name);
        ERR(c, es[i].key, "unknown key '%s' in %s (only %s exporters have it)",
            exporter_fields[i].key, path, types);
    }
}

/* Indexed by enum lk_signal. */
static const char *const signal_endpoint_keys[LK_SIGNAL_COUNT] = {
    "traces_endpoint", "metrics_endpoint", "logs_endpoint"};
static const char *const signal_paths[LK_SIGNAL_COUNT] = {"/v1/traces", "/v1/metrics",
                                                          "/v1/logs"};

static const struct field tls_fields[] = {
    F_VAL("enabled", FT_BOOL, struct lk_tls_config, enabled),
    F_VAL("insecure_skip_verify", FT_BOOL, struct lk_tls_config, insecure_skip_verify),
    F_VAL("ca_file", FT_STRING, struct lk_tls_config, ca_file),
    F_VAL("cert_file", FT_STRING, struct lk_tls_config, cert_file),
    F_VAL("key_file", FT_STRING, struct lk_tls_config, key_file),
};

static const struct field retry_fields[] = {
    F_VAL("enabled", FT_BOOL, struct lk_retry_config, enabled),
    F_INT("initial_interval", FT_DURATION, struct lk_retry_config,
          initial_interval_ms, 1, DUR_MAX),
    F_INT("max_interval", FT_DURATION, struct lk_retry_config, max_interval_ms, 1,
          DUR_MAX),
    F_INT("max_elapsed_time", FT_DURATION, struct lk_retry_config,
          max_elapsed_time_ms, 0, DUR_MAX),
    F_DBL("multiplier", struct lk_retry_config, multiplier, 1, 100),
    F_DBL("randomization_factor", struct lk_retry_config, randomization_factor, 0, 1),
};

static const struct field queue_fields[] = {
    F_INT("queue_size", FT_U64, struct lk_queue_config, queue_size, 1, 1000000000),
    F_INT("max_bytes", FT_SIZE, struct lk_queue_config, max_bytes, KIB, 1024 * GIB),
    F_ENUM("overflow", struct lk_queue_config, overflow, overflow_names),
};

static const struct field batch_fields[] = {
    /* Bounded like queue_size, which it may not exceed. */
    F_INT("send_batch_size", FT_U32, struct lk_batch_config, send_batch_size, 1,
          1000000000),
    F_INT("send_batch_max_bytes", FT_SIZE, struct lk_batch_config,
          send_batch_max_bytes, KIB, GIB),
    F_INT("timeout", FT_DURATION, struct lk_batch_config, timeout_ms, 1, DUR_MAX),
};

static void exporter_defaults(struct lk_exporter_config *e)
{
    e->timeout_ms = 10 * MS_S;
    e->compression = LK_COMPRESSION_AUTO;
    /* gzip 1: half of zlib's level 6 CPU for 1-2 % more bytes; zstd 1: the
     * cheapest of 1..19 and as small as any up to 12 (docs/bench.md). */
    e->compression_level = 1;
    e->tls.enabled = false;
    e->tls.insecure_skip_verify = false;
    e->retry.enabled = true;
    e->retry.initial_interval_ms = 1 * MS_S;
    e->retry.max_interval_ms = 30 * MS_S;
    e->retry.max_elapsed_time_ms = 5 * MS_M;
    e->retry.multiplier = 1.5;
    e->retry.randomization_factor = 0.5;
    e->queue.queue_size = 100000;
    e->queue.max_bytes = 32 * MIB;
    e->queue.overflow = LK_OVERFLOW_REFUSE;
    e->batch.send_batch_size = 8192;
    e->batch.send_batch_max_bytes = 4 * MIB;
    e->batch.timeout_ms = 200;
    e->max_concurrency = 4;
}

/* Request headers that describe the body or the connection, which the
 * exporter and its HTTP client own. (Host may be set: virtual hosting.) */
static const char *const http_reserved_headers[] = {
    "content-length", "content-type", "content-encoding", "transfer-encoding",
    "connection", "keep-alive", "te", "upgrade", NULL};

/* Returns NULL when |name| is a valid HTTP header name (RFC 9110 token) that
 * the OTLP/HTTP exporter lets users set. */
static const char *http_header_name_problem(const char *name)
{
    if (name[0] == '\0')
        return "must not be empty";
    for (const char *p = name; *p != '\0'; p++)
        if (!cfg_is_alpha(*p) && !cfg_is_digit(*p) && strchr("!#$%&'*+-.^_`|~", *p) == NULL)
            return "may only use letters, digits and !#$%&'*+-.^_`|~";
    for (int i = 0; http_reserved_headers[i] != NULL; i++)
        if (strcasecmp(name, http_reserved_headers[i]) == 0)
            return "is set by lookout itself";
    return NULL;
}

/* Returns NULL when |name| is a valid gRPC metadata key for us. */
static const char *header_name_problem(const char *name)
{
    bool upper = false;
    if (name[0] == '\0')
        return "must not be empty";
    for (const char *p = name; *p != '\0'; p++) {
        if (*p >= 'A' && *p <= 'Z')
            upper = true;
        else if (!(*p >= 'a' && *p <= 'z') && !cfg_is_digit(*p) && *p != '-' &&
                 *p != '_' && *p != '.')
            return "may only use a-z, 0-9, '-', '_' and '.'";
    }
    if (upper)
        return "must be lowercase (gRPC metadata keys are lowercase)";
    if (strncmp(name, "grpc-", 5) == 0)
        return "names starting with 'grpc-' are reserved by gRPC";
    return NULL;
}

static void do_headers(struct ctx *c, const lk__ynode *map, const char *path,
                       struct lk_exporter_config *e)
{
    if (lk__config_ynode_is_null(map) || map->kind == LK_YNODE_BAD)
        return;
    if (map->kind != LK_YNODE_MAP) {
        ERR(c, map, "%s: expected a mapping of header names to values, got %s", path,
            lk__config_ynode_kind_name(map));
        return;
    }
    if (map->nkids < 2)
        return;
    e->headers = calloc(map->nkids / 2, sizeof(*e->headers));
    if (e->headers == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const lk__ynode *key = map->kids[i], *val = map->kids[i + 1];
        if (!cfg_usable_pair(c, key, val))
            continue;
        char hpath[PATH_LEN];
        bool http = e->type != LK_EXPORTER_OTLP;
        cfg_join(hpath, path, key->str);
        const char *why = http ? http_header_name_problem(key->str)
                               : header_name_problem(key->str);
        if (why != NULL) {
            ERR(c, key, "%s: header name '%s' %s", path, SHOW(c, key->str), why);
            continue;
        }
        if (http) {
            /* HTTP header names are case-insensitive; YAML keys are not. */
            bool dup = false;
            for (size_t j = 0; j < e->nheaders && !dup; j++)
                dup = strcasecmp(e->headers[j].name, key->str) == 0;
            if (dup) {
                ERR(c, key, "%s: header '%s' is set twice (names are case-insensitive)",
                    path, SHOW(c, key->str));
                continue;
            }
        }
        /* Values are often secrets (tokens): never quote them in messages. */
        char *v = cfg_scalar_value(c, val, hpath, "a string");
        if (v == NULL)
            continue;
        bool bin = !http && strlen(key->str) >= 4 &&
                   strcmp(key->str + strlen(key->str) - 4, "-bin") == 0;
        bool printable = true;
        for (const char *p = v; *p != '\0' && !bin; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
                printable = false;
        if (!printable) {
            ERR(c, val, http ? "%s: the value must be printable ASCII"
                             : "%s: the value must be printable ASCII (or name the header '...-bin')",
                hpath);
            free(v);
            continue;
        }
        char *name = cfg_xstrdup(c, key->str);
        if (name == NULL) {
            free(v);
            continue;
        }
        e->headers[e->nheaders].name = name;
        e->headers[e->nheaders].value = v;
        e->nheaders++;
    }
}

/* Sets |e->endpoint| from "host:port", "http://host:port" (TLS off) or
 * "https://host:port" (TLS on). |*scheme_tls| gets -1 (no scheme), 0 or 1. */
static bool do_exporter_endpoint(struct ctx *c, const lk__ynode *val,
                                 const char *path, struct lk_exporter_config *e,
                                 int *scheme_tls)
{
    char *s = cfg_scalar_value(c, val, path, "an endpoint like 127.0.0.1:4317");
    if (s == NULL)
        return false;
    const char *hp = s;
    *scheme_tls = -1;
    if (strncmp(s, "http://", 7) == 0) {
        hp = s + 7;
        *scheme_tls = 0;
    } else if (strncmp(s, "https://", 8) == 0) {
        hp = s + 8;
        *scheme_tls = 1;
    }
    size_t n = strlen(hp);
    if (*scheme_tls >= 0 && n > 0 && hp[n - 1] == '/')
        s[(size_t)(hp - s) + n - 1] = '\0'; /* "http://host:port/" */
    const char *why = *scheme_tls >= 0 && strchr(hp, '/') != NULL
                          ? "an OTLP/gRPC endpoint has no path"
                          : cfg_endpoint_problem(hp, false);
    bool ok = why == NULL;
    if (!ok)
        ERR(c, val, "%s: invalid endpoint '%s': %s", path, SHOW(c, s), why);
    else
        cfg_set_str(c, &e->endpoint, hp);
    free(s);
    return ok;
}

/*
 * Returns NULL when |s| is "http://" or "https://" followed by a host, an
 * optional ":port" and an optional path, with no user info, query or
 * fragment; else what is wrong with it. |*tls| gets 0 (http) or 1 (https).
 */
static const char *url_problem(const char *s, int *tls)
{
    const char *rest;
    if (strncmp(s, "http://", 7) == 0) {
        *tls = 0;
        rest = s + 7;
    } else if (strncmp(s, "https://", 8) == 0) {
        *tls = 1;
        rest = s + 8;
    } else if (strstr(s, "://") != NULL) {
        return "the scheme must be http:// or https://";
    } else {
        return "expected a URL starting with http:// or https://";
    }
    size_t alen = strcspn(rest, "/?#");
    if (alen == 0)
        return "missing host after the scheme";
    if (memchr(rest, '@', alen) != NULL)
        return "user info in the URL is not supported; put credentials in headers";
    /* host[:port] as a listener endpoint, with the scheme's port if none. */
    char hp[320];
    if (alen > 260)
        return "the host name is too long";
    memcpy(hp, rest, alen);
    hp[alen] = '\0';
    const char *close = hp[0] == '[' ? strchr(hp, ']') : NULL;
    bool has_port = hp[0] == '[' ? close != NULL && close[1] != '\0'
                                 : strchr(hp, ':') != NULL;
    if (!has_port)
        strcat(hp, *tls ? ":443" : ":80");
    const char *why = cfg_endpoint_problem(hp, false);
    if (why != NULL)
        return why;
    for (const char *p = rest + alen; *p != '\0'; p++) {
        if (*p == '?' || *p == '#')
            return "a query or fragment is not supported";
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return "the URL must not contain spaces or control characters";
    }
    return NULL;
}

/* "http" or "https" for messages. */
static const char *scheme_name(int tls)
{
    return tls ? "https" : "http";
}

/*
 * otlphttp: reads the base URL |ep| (may be absent) and the per-signal URLs
 * into |e|, and sets |*scheme_tls| from their common scheme (-1 when none is
 * valid). |es| is what the walk of exporter_fields found.
 */
static void do_http_endpoints(struct ctx *c, const lk__ynode *key, const char *path,
                              const struct seen *es, struct lk_exporter_config *e,
                              int *scheme_tls)
{
    char sub[PATH_LEN];
    const char *first = NULL; /* key whose scheme the others must share */
    const struct seen *ep = cfg_seen_get(exporter_fields, NF(exporter_fields), es, "endpoint");
    size_t nsig = 0;

    *scheme_tls = -1;
    for (int i = 0; i < LK_SIGNAL_COUNT + 1; i++) {
        bool base = i == 0;
        const char *k = base ? "endpoint" : signal_endpoint_keys[i - 1];
        const struct seen *sn =
            base ? ep : cfg_seen_get(exporter_fields, NF(exporter_fields), es, k);
        if (sn->key == NULL)
            continue;
        nsig += !base;
        cfg_join(sub, path, k);
        char *s = cfg_scalar_value(c, sn->val, sub, "a URL like http://127.0.0.1:4318");
        if (s == NULL)
            continue;
        int tls = -1;
        const char *why = url_problem(s, &tls);
        if (why != NULL) {
            ERR(c, sn->val, "%s: invalid URL '%s': %s", sub, SHOW(c, s), why);
            free(s);
            continue;
        }
        if (base) {
            /* A base URL gets "/v1/traces" etc. appended: drop trailing
             * slashes, and catch a full signal URL given as the base. */
            size_t n = strlen(s), plen = (size_t)(strchr(s, '/') + 2 - s);
            const char *path_start = strchr(s + plen, '/');
            while (path_start != NULL && n > 0 && s[n - 1] == '/')
                s[--n] = '\0';
            int full = -1;
            for (int j = 0; j < LK_SIGNAL_COUNT && full < 0 && path_start != NULL; j++) {
                size_t sl = strlen(signal_paths[j]);
                if (n >= sl && n - sl >= (size_t)(path_start - s) &&
                    strcmp(s + n - sl, signal_paths[j]) == 0)
                    full = j;
            }
            if (full >= 0) {
                ERR(c, sn->val, "%s: '%s' already ends in %s, which is appended to the base "
                                "URL; remove it, or give the full URL as %s",
                    sub, SHOW(c, s), signal_paths[full], signal_endpoint_keys[full]);
                free(s);
                continue;
            }
        }
        if (*scheme_tls < 0) {
            *scheme_tls = tls;
            first = k;
        } else if (tls != *scheme_tls) {
            ERR(c, sn->val, "%s: uses %s:// but %s uses %s://; TLS is on or off for all of an exporter's URLs",
                sub, scheme_name(tls), first, scheme_name(*scheme_tls));
            free(s);
            continue;
        }
        char **dst = base ? &e->endpoint : &e->signal_endpoints[i - 1];
        free(*dst);
        *dst = s;
    }
    if (ep->key == NULL && nsig < LK_SIGNAL_COUNT)
        ERR(c, key, "%s: missing required key 'endpoint' (a base URL like "
                    "http://127.0.0.1:4318), unless traces_endpoint, metrics_endpoint and "
                    "logs_endpoint are all set",
            path);
}

static void do_tls(struct ctx *c, const lk__ynode *node, const char *path,
                   int scheme_tls, struct lk_exporter_config *e)
{
    struct seen ts[NF(tls_fields)];
    if (!cfg_walk_map(c, node, path, tls_fields, NF(tls_fields), &e->tls, ts))
        return;
    const struct seen *enabled = SEEN(tls_fields, ts, "enabled");
    if (scheme_tls >= 0) {
        if (enabled->ok && e->tls.enabled != (scheme_tls == 1))
            ERR(c, enabled->val, "%s.enabled: is %s but the endpoint uses %s://", path,
                e->tls.enabled ? "true" : "false", scheme_tls ? "https" : "http");
        else if (!enabled->ok)
            e->tls.enabled = scheme_tls == 1;
    }
    const struct seen *cert = SEEN(tls_fields, ts, "cert_file");
    const struct seen *key = SEEN(tls_fields, ts, "key_file");
    if (cert->ok != key->ok) {
        const struct seen *has = cert->ok ? cert : key;
        ERR(c, has->key, "%s: cert_file and key_file go together; %s is missing", path,
            cert->ok ? "key_file" : "cert_file");
    }
    if (e->tls.enabled || (enabled->key != NULL && !enabled->ok))
        return;
    /* TLS is off: any TLS setting is most likely a forgotten "enabled". */
    static const char *const tls_only[] = {"insecure_skip_verify", "ca_file",
                                           "cert_file", "key_file"};
    for (size_t i = 0; i < NF(tls_only); i++) {
        const struct seen *s = SEEN(tls_fields, ts, tls_only[i]);
        if (!s->ok || (strcmp(tls_only[i], "insecure_skip_verify") == 0 &&
                       !e->tls.insecure_skip_verify))
            continue;
        ERR(c, s->key, "%s.%s: has no effect while TLS is off; set tls.enabled: true or use an https:// endpoint",
            path, tls_only[i]);
    }
}

/* ---- prometheus ---- */

static void prometheus_defaults(struct lk_exporter_config *e)
{
    e->prometheus.add_metric_suffixes = true;
    e->prometheus.metric_expiration_ms = 5 * MS_M;
    e->prometheus.max_series = 100000;
}

static void do_promote(struct ctx *c, const lk__ynode *node, const char *path,
                       struct lk_prometheus_config *p)
{
    if (node == NULL || lk__config_ynode_is_null(node) || node->kind == LK_YNODE_BAD)
        return;
    if (node->kind != LK_YNODE_SEQ) {
        ERR(c, node, "%s: expected a list of resource attribute keys like "
                     "[deployment.environment], got %s",
            path, lk__config_ynode_kind_name(node));
        return;
    }
    if (node->nkids == 0)
        return;
    p->promote_resource_attributes = calloc(node->nkids, sizeof(char *));
    if (p->promote_resource_attributes == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < node->nkids; i++) {
        char *k = cfg_scalar_value(c, node->kids[i], path, "an attribute key");
        if (k == NULL)
            continue;
        if (k[0] == '\0') {
            ERR(c, node->kids[i], "%s: an empty attribute key", path);
            free(k);
            continue;
        }
        p->promote_resource_attributes[p->npromote++] = k;
    }
}

/* Remote write receivers reject samples older than what they hold for a
 * series: one request at a time keeps them in order. */
static void remote_write_defaults(struct lk_exporter_config *e)
{
    prometheus_defaults(e);
    e->compression = LK_COMPRESSION_NONE;
    e->max_concurrency = 1;
}

/* ---- loki ---- */

/* Loki keeps entries of a stream in order only if one push at a time is in
 * flight; its pushes are also smaller than an OTLP gateway's. */
static void loki_defaults(struct ctx *c, struct lk_exporter_config *e)
{
    static const char *const labels[] = {"service_name", "service_namespace",
                                         "deployment_environment", "host", "source"};
    e->endpoint = cfg_xstrdup(c, "http://127.0.0.1:3100/loki/api/v1/push");
    e->compression = LK_COMPRESSION_NONE;
    e->max_concurrency = 1;
    e->batch.send_batch_max_bytes = 1 * MIB;
    e->loki.format = LK_LOKI_BODY_PROTOBUF;
    e->loki.structured_metadata = LK_LOKI_MD_AUTO;
    e->loki.md_max_entries = 128; /* Loki's max_structured_metadata_entries_count */
    e->loki.md_max_bytes = 64 * KIB; /* max_structured_metadata_size: "64KB", 1024s */
    e->loki.labels = calloc(NF(labels), sizeof(*e->loki.labels));
    if (e->loki.labels == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < NF(labels); i++)
        if ((e->loki.labels[i] = cfg_xstrdup(c, labels[i])) != NULL)
            e->loki.nlabels++;
}



static const struct field auth_fields[] = {
    F_VAL("username", FT_STRING, struct lk_http_auth_config, username),
    F_VAL("password", FT_STRING, struct lk_http_auth_config, password),
};

static void do_loki_labels(struct ctx *c, const lk__ynode *node, const char *path,
                           struct lk_loki_config *l)
{
    if (node->kind == LK_YNODE_BAD)
        return;
    if (node->kind != LK_YNODE_SEQ) {
        ERR(c, node, "%s: expected a list of label names like [service_name, host], got %s",
            path, lk__config_ynode_kind_name(node));
        return;
    }
    if (node->nkids > 15) {
        ERR(c, node, "%s: at most 15 labels (Loki's default limit per stream)", path);
        return;
    }
    for (size_t i = 0; i < l->nlabels; i++)
        free(l->labels[i]);
    free(l->labels);
    l->labels = NULL;
    l->nlabels = 0;
    if (node->nkids == 0)
        return;
    l->labels = calloc(node->nkids, sizeof(*l->labels));
    if (l->labels == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < node->nkids; i++) {
        char *name = cfg_scalar_value(c, node->kids[i], path, "a label name");
        if (name == NULL)
            continue;
        const char *why = cfg_label_name_problem(name);
        bool dup = false;
        for (size_t j = 0; j < l->nlabels && !dup; j++)
            dup = strcmp(l->labels[j], name) == 0;
        if (why != NULL)
            ERR(c, node->kids[i], "%s: label name '%s' %s (attribute keys map to names "
                                  "with '_' for '.', e.g. service_name)",
                path, SHOW(c, name), why);
        else if (dup)
            ERR(c, node->kids[i], "%s: '%s' is listed twice", path, SHOW(c, name));
        if (why != NULL || dup) {
            free(name);
            continue;
        }
        l->labels[l->nlabels++] = name;
    }
}

/* The endpoint of an exporter that POSTs to one URL (loki, remote write). */
static void do_url_endpoint(struct ctx *c, const struct seen *es, const char *path,
                            const char *example, struct lk_exporter_config *e,
                            int *scheme_tls)
{
    char sub[PATH_LEN];
    const struct seen *ep = SEEN(exporter_fields, es, "endpoint");
    *scheme_tls = 0;
    if (ep->key == NULL)
        return;
    cfg_join(sub, path, "endpoint");
    char *s = cfg_scalar_value(c, ep->val, sub, example);
    if (s == NULL)
        return;
    int tls = -1;
    const char *why = url_problem(s, &tls);
    if (why != NULL) {
        ERR(c, ep->val, "%s: invalid URL '%s': %s", sub, SHOW(c, s), why);
        *scheme_tls = -1;
        free(s);
        return;
    }
    free(e->endpoint);
    e->endpoint = s;
    *scheme_tls = tls;
}

/* tenant_id, auth (basic) and bearer_token, and the headers they would
 * contradict. */
static void do_http_auth(struct ctx *c, const lk__ynode *key, const struct seen *es,
                         const char *path, struct lk_exporter_config *e)
{
    char sub[PATH_LEN];
    struct lk_http_auth_config *a = &e->auth;
    const struct seen *auth = SEEN(exporter_fields, es, "auth");
    if (auth->val != NULL) {
        struct seen as[NF(auth_fields)];
        cfg_join(sub, path, "auth");
        if (cfg_walk_map(c, auth->val, sub, auth_fields, NF(auth_fields), a, as)) {
            const struct seen *u = SEEN(auth_fields, as, "username");
            const struct seen *pw = SEEN(auth_fields, as, "password");
            if (u->ok && strchr(a->username, ':') != NULL)
                ERR(c, u->val, "%s.username: must not contain ':'", sub);
            if ((u->val == NULL) != (pw->val == NULL))
                ERR(c, auth->key, "%s: username and password go together; %s is missing",
                    sub, u->val == NULL ? "username" : "password");
        }
    }
    const struct seen *bt = SEEN(exporter_fields, es, "bearer_token");
    if (bt->ok && auth->val != NULL)
        ERR(c, bt->key, "%s: set auth (basic) or bearer_token, not both", path);
    const char *const secrets[] = {"tenant_id", "bearer_token"};
    for (size_t i = 0; i < NF(secrets); i++) {
        const struct seen *sn = SEEN(exporter_fields, es, secrets[i]);
        const char *v = i == 0 ? a->tenant_id : a->bearer_token;
        if (!sn->ok || v == NULL)
            continue;
        for (const char *q = v; *q != '\0'; q++)
            if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e) {
                ERR(c, sn->val, "%s.%s: must be printable ASCII", path, secrets[i]);
                break;
            }
    }
    for (size_t i = 0; i < e->nheaders; i++)
        if (strcasecmp(e->headers[i].name, "authorization") == 0 &&
            (a->bearer_token != NULL || a->username != NULL))
            ERR(c, key, "%s: an Authorization header and auth/bearer_token both set it",
                path);
        else if (strcasecmp(e->headers[i].name, "x-scope-orgid") == 0 &&
                 a->tenant_id != NULL)
            ERR(c, key, "%s: an X-Scope-OrgID header and tenant_id both set it", path);
}

/* loki: the push URL, body format and labels. */
static void do_loki(struct ctx *c, const char *path, const struct seen *es,
                    struct lk_exporter_config *e, int *scheme_tls)
{
    char sub[PATH_LEN];
    struct lk_loki_config *l = &e->loki;

    do_url_endpoint(c, es, path, "a URL like http://127.0.0.1:3100/loki/api/v1/push", e,
                    scheme_tls);
    const struct seen *comp = SEEN(exporter_fields, es, "compression");
    if (comp->ok && l->format == LK_LOKI_BODY_PROTOBUF &&
        e->compression == LK_COMPRESSION_GZIP)
        ERR(c, comp->val, "%s.compression: protobuf bodies are always snappy-compressed; "
                          "compression applies to format: json",
            path);
    const struct seen *labels = SEEN(exporter_fields, es, "labels");
    if (labels->val != NULL) {
        cfg_join(sub, path, "labels");
        do_loki_labels(c, labels->val, sub, l);
    }
}

/* prometheusremotewrite: the write URL (required); bodies are snappy. */
static void do_remote_write(struct ctx *c, const lk__ynode *key, const char *path,
                            const struct seen *es, struct lk_exporter_config *e,
                            int *scheme_tls)
{
    if (SEEN(exporter_fields, es, "endpoint")->key == NULL)
        ERR(c, key, "%s: missing required key 'endpoint' (the remote write URL, e.g. "
                    "http://127.0.0.1:9090/api/v1/write)",
            path);
    do_url_endpoint(c, es, path, "a URL like http://127.0.0.1:9090/api/v1/write", e,
                    scheme_tls);
    const struct seen *comp = SEEN(exporter_fields, es, "compression");
    if (comp->ok && e->compression == LK_COMPRESSION_GZIP)
        ERR(c, comp->val, "%s.compression: remote write bodies are always "
                          "snappy-compressed",
            path);
}

/* zstd only where the protocol has it; compression_level within the
 * codec's range. */
static void check_compression(struct ctx *c, const char *path, const struct seen *es,
                              struct lk_exporter_config *e)
{
    const struct seen *comp = SEEN(exporter_fields, es, "compression");
    const struct seen *lvl = SEEN(exporter_fields, es, "compression_level");
    bool zstd = e->compression == LK_COMPRESSION_ZSTD;
    if (comp->ok && zstd && e->type != LK_EXPORTER_OTLPHTTP)
        ERR(c, comp->val, "%s.compression: zstd is for otlphttp exporters only; %s", path,
            e->type == LK_EXPORTER_OTLP ? "use gzip or none (OTLP/gRPC receivers take gzip)"
            : e->type == LK_EXPORTER_LOKI
                ? "use gzip or none (Loki takes gzip JSON or snappy protobuf)"
                : "remote write bodies are always snappy-compressed");
    unsigned max = zstd ? LK_ZSTD_LEVEL_MAX : LK_GZIP_LEVEL_MAX;
    if (lvl->ok && e->compression_level > max)
        ERR(c, lvl->val, "%s.compression_level: must be between 1 and %u for %s, got %u%s", path,
            max, zstd ? "zstd" : "gzip", (unsigned)e->compression_level,
            !zstd && e->type == LK_EXPORTER_OTLPHTTP ? " (zstd's are 1 to 19)" : "");
}

static void do_exporter(struct ctx *c, const lk__ynode *key, const lk__ynode *val,
                        struct lk_exporter_config *e)
{
    char path[PATH_LEN], sub[PATH_LEN];
    struct seen es[NF(exporter_fields)], rs[NF(retry_fields)], qs[NF(queue_fields)],
        bs[NF(batch_fields)];
    int scheme_tls = -1;

    cfg_join(path, "exporters", key->str);
    if (!cfg_walk_map(c, val, path, exporter_fields, NF(exporter_fields), e, es))
        return;
    check_type_keys(c, path, e->type, es);
    check_compression(c, path, es, e);

    const struct seen *ep = SEEN(exporter_fields, es, "endpoint");
    if (e->type == LK_EXPORTER_PROMETHEUS || e->type == LK_EXPORTER_PROMETHEUSREMOTEWRITE) {
        cfg_join(sub, path, "promote_resource_attributes");
        do_promote(c, SEEN(exporter_fields, es, "promote_resource_attributes")->val, sub,
                   &e->prometheus);
    }
    if (e->type == LK_EXPORTER_PROMETHEUS) {
        if (ep->key != NULL && !lk__config_ynode_is_null(ep->val)) {
            /* A listener of its own, as the admin one. */
            static const struct field listen = {
                .key = "endpoint", .type = FT_ENDPOINT, .flags = EP_UNIX,
                .off = offsetof(struct lk_exporter_config, endpoint)};
            cfg_join(sub, path, "endpoint");
            if (cfg_set_field(c, &listen, ep->val, sub, e))
                cfg_add_listener(c, e->endpoint, e->name, ep->val);
        }
    } else if (e->type == LK_EXPORTER_OTLPHTTP) {
        do_http_endpoints(c, key, path, es, e, &scheme_tls);
    } else if (e->type == LK_EXPORTER_LOKI) {
        do_loki(c, path, es, e, &scheme_tls);
    } else if (e->type == LK_EXPORTER_PROMETHEUSREMOTEWRITE) {
        do_remote_write(c, key, path, es, e, &scheme_tls);
    } else if (ep->key == NULL) {
        ERR(c, key, "%s: missing required key 'endpoint'", path);
    } else {
        cfg_join(sub, path, "endpoint");
        do_exporter_endpoint(c, ep->val, sub, e, &scheme_tls);
    }

    cfg_join(sub, path, "headers");
    do_headers(c, SEEN(exporter_fields, es, "headers")->val, sub, e);
    if (e->type == LK_EXPORTER_LOKI || e->type == LK_EXPORTER_PROMETHEUSREMOTEWRITE)
        do_http_auth(c, key, es, path, e);

    cfg_join(sub, path, "tls");
    do_tls(c, SEEN(exporter_fields, es, "tls")->val, sub, scheme_tls, e);

    cfg_join(sub, path, "retry");
    if (cfg_walk_map(c, SEEN(exporter_fields, es, "retry")->val, sub, retry_fields,
                 NF(retry_fields), &e->retry, rs)) {
        const struct seen *ini = SEEN(retry_fields, rs, "initial_interval");
        const struct seen *max = SEEN(retry_fields, rs, "max_interval");
        if ((ini->ok || max->ok) && (ini->ok || !ini->val) && (max->ok || !max->val) &&
            e->retry.max_interval_ms < e->retry.initial_interval_ms) {
            char a[48], b[48];
            cfg_fmt_duration(a, sizeof(a), e->retry.max_interval_ms);
            cfg_fmt_duration(b, sizeof(b), e->retry.initial_interval_ms);
            const struct seen *at = max->ok ? max : ini;
            ERR(c, at->val, "%s: max_interval (%s) must be at least initial_interval (%s)",
                sub, a, b);
        }
    }

    cfg_join(sub, path, "queue");
    bool queue_ok = cfg_walk_map(c, SEEN(exporter_fields, es, "queue")->val, sub,
                             queue_fields, NF(queue_fields), &e->queue, qs);
    cfg_join(sub, path, "batch");
    bool batch_ok = cfg_walk_map(c, SEEN(exporter_fields, es, "batch")->val, sub,
                             batch_fields, NF(batch_fields), &e->batch, bs);
    if (queue_ok && batch_ok) {
        const struct seen *mb = SEEN(queue_fields, qs, "max_bytes");
        const struct seen *qsz = SEEN(queue_fields, qs, "queue_size");
        const struct seen *bmb = SEEN(batch_fields, bs, "send_batch_max_bytes");
        const struct seen *bsz = SEEN(batch_fields, bs, "send_batch_size");
        if ((mb->ok || !mb->val) && (bmb->ok || !bmb->val) &&
            e->batch.send_batch_max_bytes > e->queue.max_bytes) {
            char a[48], b[48];
            cfg_fmt_size(a, sizeof(a), e->batch.send_batch_max_bytes);
            cfg_fmt_size(b, sizeof(b), e->queue.max_bytes);
            const lk__ynode *at = bmb->ok ? bmb->val : mb->ok ? mb->val : key;
            ERR(c, at, "%s: batch.send_batch_max_bytes (%s) must not exceed queue.max_bytes (%s)",
                path, a, b);
        }
        if ((qsz->ok || !qsz->val) && (bsz->ok || !bsz->val) &&
            e->batch.send_batch_size > e->queue.queue_size) {
            const lk__ynode *at = bsz->ok ? bsz->val : qsz->ok ? qsz->val : key;
            ERR(c, at, "%s: batch.send_batch_size (%u) must not exceed queue.queue_size (%llu)",
                path, (unsigned)e->batch.send_batch_size,
                (unsigned long long)e->queue.queue_size);
        }
    }
}

void cfg_do_exporters(struct ctx *c, const lk__ynode *map)
{
    lk_config *cfg = c->cfg;
    if (lk__config_ynode_is_null(map) || map->kind == LK_YNODE_BAD)
        return;
    if (map->kind != LK_YNODE_MAP) {
        ERR(c, map, "exporters: expected a mapping of exporter names to settings, got %s",
            lk__config_ynode_kind_name(map));
        return;
    }
    c->exporters = map;
    if (map->nkids < 2)
        return;
    cfg->exporters = calloc(map->nkids / 2, sizeof(*cfg->exporters));
    if (cfg->exporters == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const lk__ynode *key = map->kids[i], *val = map->kids[i + 1];
        if (!cfg_usable_pair(c, key, val))
            continue;
        int type = cfg_check_component_name(c, key, "exporter", exporter_types);
        if (type < 0)
            continue;
        struct lk_exporter_config *e = &cfg->exporters[cfg->nexporters++];
        e->name = cfg_xstrdup(c, key->str);
        exporter_defaults(e);
        e->type = (enum lk_exporter_type)type;
        if (e->type == LK_EXPORTER_LOKI)
            loki_defaults(c, e);
        if (e->type == LK_EXPORTER_PROMETHEUS)
            prometheus_defaults(e);
        if (e->type == LK_EXPORTER_PROMETHEUSREMOTEWRITE)
            remote_write_defaults(e);
        do_exporter(c, key, val, e);
    }
    /* A prometheus exporter without an endpoint renders on the admin
     * listener's one /metrics: one of them at most. */
    const char *first = NULL;
    for (size_t i = 0; i < cfg->nexporters; i++) {
        if (cfg->exporters[i].type != LK_EXPORTER_PROMETHEUS || cfg->exporters[i].endpoint)
            continue;
        if (first != NULL)
            ERR(c, map, "exporters: '%s' and '%s': one prometheus exporter without an "
                        "endpoint at most (both would be served on the admin listener's "
                        "/metrics)",
                SHOW(c, first), SHOW(c, cfg->exporters[i].name));
        first = cfg->exporters[i].name;
    }
}


bool lk_endpoint_is_local(const char *ep)
{
    if (ep == NULL)
        return false;
    if (strncmp(ep, "unix:", 5) == 0)
        return true;
    const char *p = strstr(ep, "://");
    p = p != NULL ? p + 3 : ep;
    char host[256];
    size_t n = 0;
    if (*p == '[') { /* [v6]:port */
        for (p++; *p != '\0' && *p != ']' && n + 1 < sizeof(host); p++)
            host[n++] = *p;
    } else {
        const char *end = p + strcspn(p, "/?#");
        const char *colon = NULL;
        for (const char *q = p; q < end; q++)
            if (*q == ':')
                colon = q;
        if (colon != NULL)
            end = colon;
        for (; p < end && n + 1 < sizeof(host); p++)
            host[n++] = *p;
    }
    host[n] = '\0';
    bool v4 = n > 0 && strspn(host, "0123456789.") == n;
    return strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0 ||
           strcasecmp(host, "ip6-localhost") == 0 || (v4 && strncmp(host, "127.", 4) == 0) ||
           strcmp(host, "::1") == 0 || strcmp(host, "0:0:0:0:0:0:0:1") == 0;
}

enum lk_compression lk_exporter_compression(const struct lk_exporter_config *e)
{
    if (e->compression != LK_COMPRESSION_AUTO)
        return e->compression;
    const char *ep = e->endpoint;
    for (int i = 0; ep == NULL && i < LK_SIGNAL_COUNT; i++)
        ep = e->signal_endpoints[i];
    bool local = lk_endpoint_is_local(ep);
    lk_log(LK_LOG_INFO, local ? "compression auto: none, the endpoint is on this machine"
                              : "compression auto: gzip, the endpoint is remote",
           LK_S("exporter", e->name) LK_S("endpoint", ep ? ep : ""));
    return local ? LK_COMPRESSION_NONE : LK_COMPRESSION_GZIP;
}

bool lk_exporter_gzip(const struct lk_exporter_config *e)
{
    return lk_exporter_compression(e) == LK_COMPRESSION_GZIP;
}
