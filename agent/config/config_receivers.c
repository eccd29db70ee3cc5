/* The receivers: section: OTLP (gRPC, HTTP) and lines receivers. */
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
#include "core/err.h"
#include "core/utf8.h"

static const char *const receiver_types[] = {"otlp", "lines", NULL};

/* ---- receivers ---- */

static const struct field grpc_fields[] = {
    {.key = "endpoint", .type = FT_ENDPOINT,
     .off = offsetof(struct lk_grpc_receiver_config, endpoint), .flags = EP_UNIX},
    F_INT("max_recv_msg_size", FT_SIZE, struct lk_grpc_receiver_config,
          max_recv_msg_size, KIB, GIB),
    F_INT("max_concurrent_streams", FT_U32, struct lk_grpc_receiver_config,
          max_concurrent_streams, 1, INT32_MAX),
    F_INT("max_connections", FT_U32, struct lk_grpc_receiver_config,
          max_connections, 1, 1000000),
    F_INT("idle_timeout", FT_DURATION, struct lk_grpc_receiver_config,
          idle_timeout_ms, 0, DUR_MAX),
    F_INT("handshake_timeout", FT_DURATION, struct lk_grpc_receiver_config,
          handshake_timeout_ms, 0, DUR_MAX),
};

static const struct field http_fields[] = {
    {.key = "endpoint", .type = FT_ENDPOINT,
     .off = offsetof(struct lk_http_receiver_config, endpoint), .flags = EP_UNIX},
    F_INT("max_request_body_size", FT_SIZE, struct lk_http_receiver_config,
          max_request_body_size, KIB, GIB),
    F_INT("max_connections", FT_U32, struct lk_http_receiver_config,
          max_connections, 1, 1000000),
    F_INT("max_header_bytes", FT_SIZE, struct lk_http_receiver_config,
          max_header_bytes, KIB, MIB),
    /* Zero is not "never" here: the HTTP server has no such mode. */
    F_INT("idle_timeout", FT_DURATION, struct lk_http_receiver_config,
          idle_timeout_ms, 1, DUR_MAX),
    F_INT("read_timeout", FT_DURATION, struct lk_http_receiver_config,
          read_timeout_ms, 1, DUR_MAX),
    F_INT("handshake_timeout", FT_DURATION, struct lk_http_receiver_config,
          handshake_timeout_ms, 1, DUR_MAX),
};

static const struct field protocols_fields[] = {F_NODE("grpc"), F_NODE("http")};
static const struct field receiver_fields[] = {F_NODE("protocols")};

static void receiver_defaults(struct ctx *c, struct lk_receiver_config *r)
{
    r->grpc.enabled = false;
    r->grpc.endpoint = cfg_xstrdup(c, "127.0.0.1:4317");
    r->grpc.max_recv_msg_size = 64 * MIB;
    r->grpc.max_concurrent_streams = 100;
    r->grpc.max_connections = 256;
    r->grpc.idle_timeout_ms = 5 * MS_M;
    r->grpc.handshake_timeout_ms = 10 * MS_S;
    r->http.enabled = false;
    r->http.endpoint = cfg_xstrdup(c, "127.0.0.1:4318");
    r->http.max_request_body_size = 64 * MIB;
    r->http.max_connections = 256;
    r->http.max_header_bytes = 64 * KIB;
    r->http.idle_timeout_ms = 60 * MS_S;
    r->http.read_timeout_ms = 30 * MS_S;
    r->http.handshake_timeout_ms = 10 * MS_S;
}

static void do_receiver(struct ctx *c, const lk__ynode *key, const lk__ynode *val,
                        struct lk_receiver_config *r)
{
    char path[PATH_LEN], ppath[PATH_LEN], gpath[PATH_LEN], hpath[PATH_LEN];
    struct seen rs[NF(receiver_fields)], ps[NF(protocols_fields)],
        gs[NF(grpc_fields)], hs[NF(http_fields)];

    cfg_join(path, "receivers", key->str);
    if (!cfg_walk_map(c, val, path, receiver_fields, NF(receiver_fields), r, rs))
        return;
    const struct seen *protocols = SEEN(receiver_fields, rs, "protocols");
    cfg_join(ppath, path, "protocols");
    if (!cfg_walk_map(c, protocols->val, ppath, protocols_fields, NF(protocols_fields),
                  r, ps))
        return;
    const struct seen *grpc = SEEN(protocols_fields, ps, "grpc");
    const struct seen *http = SEEN(protocols_fields, ps, "http");
    if (grpc->key == NULL && http->key == NULL) {
        ERR(c, key, "%s: no protocol enabled; add 'protocols: grpc:' or 'protocols: http:'",
            path);
        return;
    }
    /* Present means enabled, even as "grpc:" with nothing under it. */
    if (grpc->key != NULL) {
        r->grpc.enabled = true;
        cfg_join(gpath, ppath, "grpc");
        cfg_walk_map(c, grpc->val, gpath, grpc_fields, NF(grpc_fields), &r->grpc, gs);
        const struct seen *ep = SEEN(grpc_fields, gs, "endpoint");
        if (ep->val == NULL || ep->ok)
            cfg_add_listener(c, r->grpc.endpoint, gpath, ep->val ? ep->val : grpc->key);
    }
    if (http->key != NULL) {
        r->http.enabled = true;
        cfg_join(hpath, ppath, "http");
        cfg_walk_map(c, http->val, hpath, http_fields, NF(http_fields), &r->http, hs);
        const struct seen *ep = SEEN(http_fields, hs, "endpoint");
        if (ep->val == NULL || ep->ok)
            cfg_add_listener(c, r->http.endpoint, hpath, ep->val ? ep->val : http->key);
    }
}

/* ---- receivers: lines ---- */

static const char *const lines_format_names[] = {"auto", "json", "logfmt", "raw", NULL};
static const char *const lines_overflow_names[] = {"block", "drop", NULL};
static const char *const socket_type_names[] = {"stream", "datagram", NULL};

struct lines_raw {
    int socket_type;
};

static const struct field lines_fields[] = {
    F_VAL("path", FT_STRING, struct lk_lines_receiver_config, path),
    F_NODE("socket_type"),
    F_NODE("mode"),
    {.key = "owner", .type = FT_STRING, .flags = STR_EMPTY_UNSET,
     .off = offsetof(struct lk_lines_receiver_config, owner)},
    {.key = "group", .type = FT_STRING, .flags = STR_EMPTY_UNSET,
     .off = offsetof(struct lk_lines_receiver_config, group)},
    F_ENUM("format", struct lk_lines_receiver_config, format, lines_format_names),
    {.key = "service_name", .type = FT_STRING, .flags = STR_EMPTY_UNSET,
     .off = offsetof(struct lk_lines_receiver_config, service_name)},
    F_NODE("labels"),
    F_INT("max_line_bytes", FT_SIZE, struct lk_lines_receiver_config, max_line_bytes,
          256, 16 * MIB),
    F_INT("max_connections", FT_U32, struct lk_lines_receiver_config, max_connections,
          1, 1000000),
    F_ENUM("overflow", struct lk_lines_receiver_config, overflow, lines_overflow_names),
    F_INT("idle_timeout", FT_DURATION, struct lk_lines_receiver_config, idle_timeout_ms, 0,
          DUR_MAX),
};

static void lines_defaults(struct ctx *c, struct lk_lines_receiver_config *l)
{
    l->path = cfg_xstrdup(c, "/tmp/lookout.sock");
    l->datagram = false;
    l->mode = 0600;
    l->format = LK_LINES_AUTO;
    l->max_line_bytes = 256 * KIB;
    l->max_connections = 256;
    l->overflow = LK_LINES_BLOCK;
    l->idle_timeout_ms = 60 * MS_S;
}

/* A Loki / Prometheus label name: [A-Za-z_][A-Za-z0-9_]*, not "__" reserved. */
const char *cfg_label_name_problem(const char *s)
{
    if (s[0] == '\0')
        return "must not be empty";
    if (cfg_is_digit(s[0]))
        return "must not start with a digit";
    for (const char *p = s; *p != '\0'; p++)
        if (!cfg_is_alpha(*p) && !cfg_is_digit(*p) && *p != '_')
            return "may only use letters, digits and '_'";
    if (strncmp(s, "__", 2) == 0)
        return "must not start with '__' (reserved)";
    return NULL;
}

static void do_static_labels(struct ctx *c, const lk__ynode *map, const char *path,
                             struct lk_lines_receiver_config *l)
{
    if (lk__config_ynode_is_null(map) || map->kind == LK_YNODE_BAD)
        return;
    if (map->kind != LK_YNODE_MAP) {
        ERR(c, map, "%s: expected a mapping of label names to values, got %s", path,
            lk__config_ynode_kind_name(map));
        return;
    }
    if (map->nkids < 2)
        return;
    if (map->nkids / 2 > 15) {
        ERR(c, map, "%s: at most 15 labels (Loki's default limit per stream)", path);
        return;
    }
    l->labels = calloc(map->nkids / 2, sizeof(*l->labels));
    if (l->labels == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const lk__ynode *key = map->kids[i], *val = map->kids[i + 1];
        if (!cfg_usable_pair(c, key, val))
            continue;
        char sub[PATH_LEN];
        cfg_join(sub, path, key->str);
        const char *why = cfg_label_name_problem(key->str);
        if (why != NULL) {
            ERR(c, key, "%s: label name '%s' %s", path, SHOW(c, key->str), why);
            continue;
        }
        /* These labels come from each line and lookout itself. */
        static const char *const own[] = {"service_name", "service_namespace",
                                           "deployment_environment", "host", "source",
                                           "level"};
        bool taken = false;
        for (size_t k = 0; k < NF(own) && !taken; k++)
            taken = strcmp(key->str, own[k]) == 0;
        if (taken) {
            ERR(c, key, "%s: label '%s' is set by lookout%s", path, SHOW(c, key->str),
                strcmp(key->str, "service_name") == 0
                    ? "; use the receiver's service_name key for lines that name no service"
                    : "");
            continue;
        }
        char *v = cfg_scalar_value(c, val, sub, "a string");
        if (v == NULL)
            continue;
        if (!lk_utf8_is_valid((const uint8_t *)v, strlen(v))) {
            ERR(c, val, "%s: the value must be valid UTF-8", sub);
            free(v);
            continue;
        }
        char *name = cfg_xstrdup(c, key->str);
        if (name == NULL) {
            free(v);
            continue;
        }
        l->labels[l->nlabels].name = name;
        l->labels[l->nlabels].value = v;
        l->nlabels++;
    }
}

static void do_lines_receiver(struct ctx *c, const lk__ynode *key,
                              const lk__ynode *val, struct lk_receiver_config *r)
{
    char path[PATH_LEN], sub[PATH_LEN];
    struct seen ls[NF(lines_fields)];
    struct lk_lines_receiver_config *l = &r->lines;

    cfg_join(path, "receivers", key->str);
    if (!cfg_walk_map(c, val, path, lines_fields, NF(lines_fields), l, ls))
        return;

    const struct seen *p = SEEN(lines_fields, ls, "path");
    if (p->ok && l->path[0] != '/')
        ERR(c, p->val, "%s.path: must be an absolute path, got '%s'", path,
            SHOW(c, l->path));
    else if (p->ok && strlen(l->path) >= 100)
        /* sockaddr_un.sun_path: 108 bytes on Linux, 104 on macOS, and the
         * socket is first bound under the path plus ".~". */
        ERR(c, p->val, "%s.path: must be shorter than 100 bytes (a Unix socket limit)",
            path);

    const struct seen *st = SEEN(lines_fields, ls, "socket_type");
    if (st->val != NULL) {
        struct field f = F_ENUM("socket_type", struct lines_raw, socket_type,
                                socket_type_names);
        struct lines_raw raw = {0};
        cfg_join(sub, path, "socket_type");
        if (cfg_set_field(c, &f, st->val, sub, &raw))
            l->datagram = raw.socket_type == 1;
    }

    const struct seen *mode = SEEN(lines_fields, ls, "mode");
    if (mode->val != NULL) {
        cfg_join(sub, path, "mode");
        char *m = cfg_scalar_value(c, mode->val, sub, "octal permission bits like \"0600\"");
        if (m != NULL) {
            unsigned v = 0;
            bool ok = m[0] != '\0' && strlen(m) <= 4;
            for (const char *q = m; *q != '\0' && ok; q++) {
                if (*q < '0' || *q > '7')
                    ok = false;
                else
                    v = v * 8 + (unsigned)(*q - '0');
            }
            if (!ok || v > 0777)
                ERR(c, mode->val, "%s: expected octal permission bits like \"0600\" or \"0660\", got '%s'",
                    sub, SHOW(c, m));
            else if ((v & 0600) != 0600)
                ERR(c, mode->val, "%s: the owner must keep read and write (0600), got '%s'",
                    sub, SHOW(c, m));
            else
                l->mode = v;
            free(m);
        }
    }

    cfg_join(sub, path, "labels");
    do_static_labels(c, SEEN(lines_fields, ls, "labels")->val, sub, l);

    if (p->ok || p->val == NULL) {
        /* Reported against a unix:// gRPC or HTTP endpoint on the same file. */
        char ep[PATH_LEN + 8];
        snprintf(ep, sizeof(ep), "unix://%s", l->path);
        cfg_add_listener(c, ep, path, p->val ? p->val : key);
    }
}

void cfg_do_receivers(struct ctx *c, const lk__ynode *map)
{
    lk_config *cfg = c->cfg;
    if (lk__config_ynode_is_null(map) || map->kind == LK_YNODE_BAD)
        return;
    if (map->kind != LK_YNODE_MAP) {
        ERR(c, map, "receivers: expected a mapping of receiver names to settings, got %s",
            lk__config_ynode_kind_name(map));
        return;
    }
    c->receivers = map;
    if (map->nkids < 2)
        return;
    cfg->receivers = calloc(map->nkids / 2, sizeof(*cfg->receivers));
    if (cfg->receivers == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const lk__ynode *key = map->kids[i], *val = map->kids[i + 1];
        if (!cfg_usable_pair(c, key, val))
            continue;
        int type = cfg_check_component_name(c, key, "receiver", receiver_types);
        if (type < 0)
            continue;
        struct lk_receiver_config *r = &cfg->receivers[cfg->nreceivers++];
        r->name = cfg_xstrdup(c, key->str);
        r->type = (enum lk_receiver_type)type;
        if (r->type == LK_RECEIVER_LINES) {
            lines_defaults(c, &r->lines);
            do_lines_receiver(c, key, val, r);
        } else {
            receiver_defaults(c, r);
            do_receiver(c, key, val, r);
        }
    }
}

