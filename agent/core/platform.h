/* The one module with OS-specific code (Linux and macOS): process statistics,
 * peer credentials of Unix sockets, process names. Everything else in lookout
 * goes through libuv or POSIX. */
#ifndef LK_CORE_PLATFORM_H
#define LK_CORE_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "core/selfmetrics.h"

struct lk_process_stats {
    double cpu_seconds;        /* user + system CPU time of this process */
    uint64_t resident_bytes;   /* resident set size */
    uint64_t virtual_bytes;    /* virtual address space size */
    uint64_t open_fds;         /* open file descriptors */
    uint64_t max_fds;          /* RLIMIT_NOFILE soft limit; UINT64_MAX: unlimited */
    double start_time_seconds; /* process start, seconds since the Unix epoch */
};

/*
 * Fills |out| for the calling process. Every field that can be read is filled
 * even when another fails; fields that could not be read are 0.
 * Returns 0, or LK_ESYS / LK_EIO when at least one source failed.
 */
int lk_platform_process_stats(struct lk_process_stats *out);

struct lk_peer_cred {
    int pid; /* -1 when the OS does not report it */
    unsigned uid;
    unsigned gid;
};

/*
 * Credentials of the process at the other end of the connected Unix stream
 * socket |fd| (as of connect time). Returns 0, LK_ESYS (not a Unix socket,
 * or the call failed), or LK_EUNSUPPORTED on an OS without the facility.
 */
int lk_platform_peer_cred(int fd, struct lk_peer_cred *out);

/*
 * Datagram Unix sockets carry no connection to ask for credentials, so each
 * datagram brings its sender's (Linux: SO_PASSCRED / SCM_CREDENTIALS).
 * lk_platform_dgram_creds_enable asks for them on the bound socket |fd|;
 * returns 0 or LK_EUNSUPPORTED where the OS does not give them (macOS).
 */
int lk_platform_dgram_creds_enable(int fd);

/*
 * Receives one datagram from the non-blocking socket |fd| into |buf| (|len|
 * bytes). Returns its length (at most |len|), with |*truncated| set when it
 * was longer and the rest was discarded, and |*cred| the sender's pid and
 * uid (pid -1 when unknown). Returns LK_EAGAIN when nothing is waiting, or
 * LK_ESYS.
 */
long lk_platform_recv_dgram(int fd, void *buf, size_t len, struct lk_peer_cred *cred,
                            int *truncated);

/*
 * Writes the short command name of process |pid| (at most |len| - 1 bytes,
 * NUL-terminated) into |buf|. Returns 0, LK_ENOENT (no such process),
 * LK_EINVAL (|len| is 0), LK_ESYS or LK_EUNSUPPORTED.
 */
int lk_platform_process_name(int pid, char *buf, size_t len);

/* "linux", "darwin" or "unknown". */
const char *lk_platform_os(void);

/*
 * Makes the C library give large blocks back to the OS when they are freed
 * (glibc: a fixed mmap threshold of 4 MiB instead of its dynamic one, which
 * after the first large free serves blocks of up to 32 MiB from the heap and
 * keeps them resident afterwards; and a trim threshold of 8 MiB). Without
 * it, RSS after a burst of large requests stays well above what the memory
 * budget counts. No-op elsewhere.
 */
void lk_platform_tune_allocator(void);
/* Blocks of this size or more come straight from the OS (mmap) once
 * lk_platform_tune_allocator has run: a buffer that will be large is best
 * allocated at this size at once rather than grown to it on the heap. */
#define LK_PLATFORM_LARGE_BLOCK (4u * 1024 * 1024)

/*
 * Registers the standard process_* metrics in |m| and refreshes them on every
 * render through lk_metrics_on_collect:
 *   process_cpu_seconds_total (counter, fractional: lk_metrics_float_counter),
 *   process_resident_memory_bytes, process_virtual_memory_bytes,
 *   process_open_fds, process_max_fds (+Inf when unlimited),
 *   process_start_time_seconds (gauges).
 * Call once per registry. Allocation failures leave the affected series out.
 */
void lk_platform_register_process_metrics(lk_metrics *m);

/* Registers lookout_build_info{version=|version|,os=...} 1 (a gauge). */
void lk_platform_register_build_info(lk_metrics *m, const char *version);

#endif
