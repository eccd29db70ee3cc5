/*
 * The running agent: the receivers, pipelines, queues and exporters a
 * configuration describes, started, reloaded (only the difference applied)
 * and shut down. main.c owns the process (command line, signals); this owns
 * the components. Loop thread only; one service per process.
 */
#ifndef LK_SERVICE_H
#define LK_SERVICE_H

#include <stdbool.h>

#include <uv.h>

#include "admin/admin.h"
#include "config/config.h"
#include "core/selfmetrics.h"

/*
 * Starts every component of |cfg| (taken: freed at lk_service_fini) on
 * |loop|, their metrics in |m|, a Prometheus exporter without an endpoint
 * rendered by |admin|. Returns 0 or the LK_E* of what could not start (the
 * caller then shuts down and exits).
 */
int lk_service_start(uv_loop_t *loop, lk_config *cfg, lk_metrics *m, lk_admin *admin);

/*
 * Loads the configuration file again and applies what changed: unchanged
 * receivers and exporters keep running (connections, queues, series);
 * changed ones are updated in place or replaced, their waiting items moved
 * to the new queue; removed exporters drain for up to shutdown_timeout. A
 * listener that cannot be bound rolls the whole reload back. Returns 0, or
 * LK_ECONFIG (invalid file: *errors, one per line) or another LK_E* with
 * the running configuration unchanged. Counts the result in the
 * lookout_config_* metrics.
 */
int lk_service_reload(char **errors);

/* The configuration in force. */
const lk_config *lk_service_config(void);

/*
 * Shutdown, in stages: receivers close, queues drain (bounded by
 * shutdown_timeout), exporters close; then |done| runs. A second call
 * stops waiting for the queues (what is held is dropped, counted).
 */
void lk_service_shutdown(void (*done)(void));

/* Frees what is left after the loop ended. */
void lk_service_fini(void);

#endif
