/*
 * Equality of configuration sections, for a reload: what is equal is kept as
 * it runs, what differs is rebuilt or updated (see main.c).
 */
#include <string.h>

#include "config/config.h"

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool strv_eq(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!str_eq(a[i], b[i]))
            return false;
    return true;
}

static bool headers_eq(const struct lk_header *a, size_t na, const struct lk_header *b,
                       size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!str_eq(a[i].name, b[i].name) || !str_eq(a[i].value, b[i].value))
            return false;
    return true;
}

static bool tls_eq(const struct lk_tls_config *a, const struct lk_tls_config *b)
{
    return a->enabled == b->enabled && a->insecure_skip_verify == b->insecure_skip_verify &&
           str_eq(a->ca_file, b->ca_file) && str_eq(a->cert_file, b->cert_file) &&
           str_eq(a->key_file, b->key_file);
}

bool lk_exporter_config_equal(const struct lk_exporter_config *a,
                              const struct lk_exporter_config *b)
{
    if (!str_eq(a->name, b->name) || a->type != b->type || !str_eq(a->endpoint, b->endpoint) ||
        a->timeout_ms != b->timeout_ms || a->compression != b->compression ||
        a->compression_level != b->compression_level ||
        a->max_concurrency != b->max_concurrency ||
        !headers_eq(a->headers, a->nheaders, b->headers, b->nheaders) ||
        !tls_eq(&a->tls, &b->tls))
        return false;
    for (int i = 0; i < LK_SIGNAL_COUNT; i++)
        if (!str_eq(a->signal_endpoints[i], b->signal_endpoints[i]))
            return false;
    const struct lk_retry_config *ra = &a->retry, *rb = &b->retry;
    if (ra->enabled != rb->enabled || ra->initial_interval_ms != rb->initial_interval_ms ||
        ra->max_interval_ms != rb->max_interval_ms ||
        ra->max_elapsed_time_ms != rb->max_elapsed_time_ms ||
        ra->multiplier != rb->multiplier ||
        ra->randomization_factor != rb->randomization_factor)
        return false;
    if (a->queue.queue_size != b->queue.queue_size || a->queue.max_bytes != b->queue.max_bytes ||
        a->queue.overflow != b->queue.overflow)
        return false;
    if (a->batch.send_batch_size != b->batch.send_batch_size ||
        a->batch.send_batch_max_bytes != b->batch.send_batch_max_bytes ||
        a->batch.timeout_ms != b->batch.timeout_ms)
        return false;
    if (!str_eq(a->auth.tenant_id, b->auth.tenant_id) ||
        !str_eq(a->auth.username, b->auth.username) ||
        !str_eq(a->auth.password, b->auth.password) ||
        !str_eq(a->auth.bearer_token, b->auth.bearer_token))
        return false;
    if (a->loki.format != b->loki.format ||
        a->loki.structured_metadata != b->loki.structured_metadata ||
        a->loki.md_max_entries != b->loki.md_max_entries ||
        a->loki.md_max_bytes != b->loki.md_max_bytes ||
        !strv_eq(a->loki.labels, a->loki.nlabels, b->loki.labels, b->loki.nlabels))
        return false;
    const struct lk_prometheus_config *pa = &a->prometheus, *pb = &b->prometheus;
    return pa->add_metric_suffixes == pb->add_metric_suffixes &&
           pa->metric_expiration_ms == pb->metric_expiration_ms &&
           pa->max_series == pb->max_series &&
           strv_eq(pa->promote_resource_attributes, pa->npromote,
                   pb->promote_resource_attributes, pb->npromote);
}

bool lk_lines_receiver_config_equal(const struct lk_lines_receiver_config *a,
                                    const struct lk_lines_receiver_config *b)
{
    return str_eq(a->path, b->path) && a->datagram == b->datagram && a->mode == b->mode &&
           str_eq(a->owner, b->owner) && str_eq(a->group, b->group) && a->format == b->format &&
           str_eq(a->service_name, b->service_name) &&
           headers_eq(a->labels, a->nlabels, b->labels, b->nlabels) &&
           a->max_line_bytes == b->max_line_bytes && a->max_connections == b->max_connections &&
           a->overflow == b->overflow && a->idle_timeout_ms == b->idle_timeout_ms;
}

bool lk_storage_config_equal(const struct lk_storage_config *a,
                             const struct lk_storage_config *b)
{
    return str_eq(a->path, b->path) && a->max_bytes == b->max_bytes &&
           a->durable == b->durable && a->commit_interval_ms == b->commit_interval_ms;
}
