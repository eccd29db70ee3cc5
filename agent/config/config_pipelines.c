/* The pipelines: section: signals, receivers and exporters by name. */
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


/* ---- pipelines ---- */

static const char *const signal_names[] = {"traces", "metrics", "logs", NULL};
static const struct field pipeline_fields[] = {
    F_NODE("receivers"),
    F_NODE("exporters"),
};

/* True when |defs| (a receivers: or exporters: mapping) defines |name|. Any
 * key counts, even one with errors of its own, so that one mistake is not
 * reported twice. */
static bool is_defined(const lk__ynode *defs, const char *name)
{
    if (defs == NULL || defs->kind != LK_YNODE_MAP)
        return false;
    for (size_t i = 0; i + 1 < defs->nkids; i += 2) {
        const lk__ynode *k = defs->kids[i];
        if (k->kind == LK_YNODE_SCALAR && !k->dup && strcmp(k->str, name) == 0)
            return true;
    }
    return false;
}

/* Fills |*out| / |*n| from the list of names |node| (|kind|: "receiver" or
 * "exporter"), each defined in |defs|. */
static void do_name_list(struct ctx *c, const lk__ynode *node, const char *path,
                         const char *kind, const lk__ynode *defs, char ***out,
                         size_t *n)
{
    if (node->kind == LK_YNODE_BAD)
        return;
    if (node->kind != LK_YNODE_SEQ) {
        ERR(c, node, "%s: expected a list of %s names like [otlp], got %s", path, kind,
            lk__config_ynode_kind_name(node));
        return;
    }
    if (node->nkids == 0) {
        ERR(c, node, "%s: must name at least one %s", path, kind);
        return;
    }
    if (node->nkids > LIST_MAX) {
        ERR(c, node, "%s: at most %d %ss can be listed", path, LIST_MAX, kind);
        return;
    }
    *out = calloc(node->nkids, sizeof(**out));
    if (*out == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < node->nkids; i++) {
        const lk__ynode *item = node->kids[i];
        if (item->kind == LK_YNODE_BAD)
            continue;
        char *name = cfg_scalar_value(c, item, path, "a name");
        if (name == NULL)
            continue;
        bool dup = false;
        for (size_t j = 0; j < *n && !dup; j++)
            dup = strcmp((*out)[j], name) == 0;
        if (dup) {
            ERR(c, item, "%s: '%s' is listed twice", path, SHOW(c, name));
            free(name);
            continue;
        }
        if (!is_defined(defs, name)) {
            struct suggest sg;
            char sbuf[160];
            cfg_suggest_init(&sg, name);
            for (size_t k = 0; defs && defs->kind == LK_YNODE_MAP && k + 1 < defs->nkids;
                 k += 2)
                if (defs->kids[k]->kind == LK_YNODE_SCALAR)
                    cfg_suggest_try(&sg, defs->kids[k]->str);
            const char *hint = cfg_suggest_text(c, &sg, sbuf, sizeof(sbuf));
            if (hint[0] == '\0' && (defs == NULL || defs->nkids == 0))
                hint = kind[0] == 'r' ? "; no receivers are defined"
                                      : "; no exporters are defined";
            ERR(c, item, "%s: unknown %s '%s'%s", path, kind, SHOW(c, name), hint);
            free(name);
            continue;
        }
        (*out)[(*n)++] = name;
    }
}

/* lines receivers produce logs only and loki exporters take logs only;
 * prometheus and prometheusremotewrite exporters take metrics only. */
static void check_signal_only(struct ctx *c, const struct lk_pipeline_config *p,
                              const lk__ynode *rnode, const lk__ynode *xnode,
                              const char *path)
{
    const lk_config *cfg = c->cfg;
    for (size_t i = 0; p->signal != LK_SIGNAL_LOGS && i < p->nreceivers; i++)
        for (size_t j = 0; j < cfg->nreceivers; j++)
            if (cfg->receivers[j].type == LK_RECEIVER_LINES &&
                strcmp(cfg->receivers[j].name, p->receivers[i]) == 0)
                ERR(c, rnode, "%s.receivers: '%s' receives log lines; list it in the logs pipeline",
                    path, SHOW(c, p->receivers[i]));
    for (size_t i = 0; i < p->nexporters; i++)
        for (size_t j = 0; j < cfg->nexporters; j++)
            if (p->signal != LK_SIGNAL_LOGS && cfg->exporters[j].type == LK_EXPORTER_LOKI &&
                strcmp(cfg->exporters[j].name, p->exporters[i]) == 0)
                ERR(c, xnode, "%s.exporters: '%s' sends to Loki, which takes logs only",
                    path, SHOW(c, p->exporters[i]));
            else if (p->signal != LK_SIGNAL_METRICS &&
                     cfg->exporters[j].type == LK_EXPORTER_PROMETHEUS &&
                     strcmp(cfg->exporters[j].name, p->exporters[i]) == 0)
                ERR(c, xnode, "%s.exporters: '%s' exposes metrics for Prometheus; list it "
                              "in the metrics pipeline",
                    path, SHOW(c, p->exporters[i]));
            else if (p->signal != LK_SIGNAL_METRICS &&
                     cfg->exporters[j].type == LK_EXPORTER_PROMETHEUSREMOTEWRITE &&
                     strcmp(cfg->exporters[j].name, p->exporters[i]) == 0)
                ERR(c, xnode, "%s.exporters: '%s' sends Prometheus remote write, which takes "
                              "metrics only",
                    path, SHOW(c, p->exporters[i]));
}

void cfg_do_pipelines(struct ctx *c, const lk__ynode *pkey, const lk__ynode *map,
                         const lk__ynode *root)
{
    lk_config *cfg = c->cfg;
    if (map != NULL && map->kind == LK_YNODE_BAD)
        return;
    if (map != NULL && !lk__config_ynode_is_null(map) && map->kind != LK_YNODE_MAP) {
        ERR(c, map, "pipelines: expected a mapping of signals (traces, metrics, logs) to pipelines, got %s",
            lk__config_ynode_kind_name(map));
        return;
    }
    if (lk__config_ynode_is_null(map) || map->nkids < 2) {
        const lk__ynode *at = pkey ? pkey : root ? root : &cfg_top_pos;
        ERR(c, at, "no pipelines defined; at least one is required, e.g. pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}");
        return;
    }
    cfg->pipelines = calloc(map->nkids / 2, sizeof(*cfg->pipelines));
    if (cfg->pipelines == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const lk__ynode *key = map->kids[i], *val = map->kids[i + 1];
        if (!cfg_usable_pair(c, key, val))
            continue;
        int sig = -1;
        struct suggest sg;
        char sbuf[128];
        cfg_suggest_init(&sg, key->str);
        for (int j = 0; signal_names[j] != NULL; j++) {
            if (strcmp(key->str, signal_names[j]) == 0)
                sig = j;
            cfg_suggest_try(&sg, signal_names[j]);
        }
        if (sig < 0) {
            ERR(c, key, "unknown pipeline '%s' (known: traces, metrics, logs)%s",
                SHOW(c, key->str), cfg_suggest_text(c, &sg, sbuf, sizeof(sbuf)));
            continue;
        }
        struct lk_pipeline_config *p = &cfg->pipelines[cfg->npipelines++];
        p->signal = (enum lk_signal)sig;
        char path[PATH_LEN], sub[PATH_LEN];
        struct seen ps[NF(pipeline_fields)];
        cfg_join(path, "pipelines", key->str);
        if (!cfg_walk_map(c, val, path, pipeline_fields, NF(pipeline_fields), p, ps))
            continue;
        const struct seen *rs = SEEN(pipeline_fields, ps, "receivers");
        const struct seen *xs = SEEN(pipeline_fields, ps, "exporters");
        if (rs->key == NULL)
            ERR(c, key, "%s: missing required key 'receivers'", path);
        else {
            cfg_join(sub, path, "receivers");
            do_name_list(c, rs->val, sub, "receiver", c->receivers, &p->receivers,
                         &p->nreceivers);
        }
        if (xs->key == NULL)
            ERR(c, key, "%s: missing required key 'exporters'", path);
        else {
            cfg_join(sub, path, "exporters");
            do_name_list(c, xs->val, sub, "exporter", c->exporters, &p->exporters,
                         &p->nexporters);
        }
        check_signal_only(c, p, rs->val, xs->val, path);
    }
}

