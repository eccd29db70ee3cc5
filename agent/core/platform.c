#include "core/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/err.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <dirent.h>
#elif defined(__APPLE__)
#include <libproc.h>
#include <mach/mach.h>
#include <sys/param.h>
#include <sys/proc_info.h>
#include <sys/sysctl.h>
#include <sys/un.h>
#endif

/* Portable parts: CPU time through getrusage (microsecond resolution on both
 * systems, finer than /proc's clock ticks) and the descriptor limit. */
static int common_stats(struct lk_process_stats *out)
{
    int rc = 0;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        out->cpu_seconds = (double)ru.ru_utime.tv_sec +
                           (double)ru.ru_utime.tv_usec / 1e6 +
                           (double)ru.ru_stime.tv_sec +
                           (double)ru.ru_stime.tv_usec / 1e6;
    } else {
        rc = LK_ESYS;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        out->max_fds =
            rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    } else {
        rc = LK_ESYS;
    }
    return rc;
}

#if defined(__linux__)

/* Reads up to |size| - 1 bytes of a (small, /proc) file, NUL-terminated.
 * Returns the length or a negative errno. */
static ssize_t read_small_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    while (len < size - 1) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* Seconds since the epoch at boot, from the `btime` line of /proc/stat. That
 * file can be long (one `intr` line holds thousands of numbers), so it is read
 * line by line; only chunks that start a line are examined. */
static int boot_time(double *out)
{
    FILE *f = fopen("/proc/stat", "re");
    if (f == NULL)
        return LK_EIO;
    char line[256];
    int at_line_start = 1;
    int rc = LK_EIO;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long bt;
        if (at_line_start && sscanf(line, "btime %llu", &bt) == 1) {
            *out = (double)bt;
            rc = 0;
            break;
        }
        at_line_start = strchr(line, '\n') != NULL;
    }
    fclose(f);
    return rc;
}

static int count_open_fds(uint64_t *out)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return LK_EIO;
    /* The directory stream holds a descriptor of its own: leave it out. */
    int self = dirfd(d);
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (atoi(e->d_name) == self)
            continue;
        n++;
    }
    closedir(d);
    *out = n;
    return 0;
}

/*
 * /proc/self/stat: "pid (comm) state ppid ...". comm may hold spaces and
 * parentheses, so fields are counted from the last ')'. After it come field 3
 * (state) onwards; we want 22 starttime (clock ticks after boot), 23 vsize
 * (bytes) and 24 rss (pages).
 */
static int proc_stat(struct lk_process_stats *out)
{
    char buf[1024];
    if (read_small_file("/proc/self/stat", buf, sizeof(buf)) < 0)
        return LK_EIO;
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return LK_EIO;
    p++;
    unsigned long long starttime = 0, vsize = 0, rss = 0;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " \n", &save); tok != NULL;
         tok = strtok_r(NULL, " \n", &save)) {
        field++;
        if (field == 22)
            starttime = strtoull(tok, NULL, 10);
        else if (field == 23)
            vsize = strtoull(tok, NULL, 10);
        else if (field == 24) {
            rss = strtoull(tok, NULL, 10);
            break;
        }
    }
    if (field != 24)
        return LK_EIO;
    long page = sysconf(_SC_PAGESIZE);
    long hz = sysconf(_SC_CLK_TCK);
    out->virtual_bytes = vsize;
    out->resident_bytes = rss * (unsigned long long)(page > 0 ? page : 4096);
    double btime;
    if (hz <= 0 || boot_time(&btime) < 0)
        return LK_EIO;
    out->start_time_seconds = btime + (double)starttime / (double)hz;
    return 0;
}

int lk_platform_process_stats(struct lk_process_stats *out)
{
    memset(out, 0, sizeof(*out));
    int rc = common_stats(out);
    int r = proc_stat(out);
    if (rc == 0)
        rc = r;
    r = count_open_fds(&out->open_fds);
    if (rc == 0)
        rc = r;
    return rc;
}

int lk_platform_peer_cred(int fd, struct lk_peer_cred *out)
{
    struct ucred uc;
    socklen_t len = sizeof(uc);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0 ||
        len != sizeof(uc))
        return LK_ESYS;
    out->pid = (int)uc.pid;
    out->uid = (unsigned)uc.uid;
    out->gid = (unsigned)uc.gid;
    return 0;
}

int lk_platform_process_name(int pid, char *buf, size_t len)
{
    if (len == 0)
        return LK_EINVAL;
    if (pid <= 0)
        return LK_ENOENT;
    char path[64];
    char comm[64]; /* the kernel limits comm to 16 bytes */
    snprintf(path, sizeof(path), "/proc/%d/comm", pid);
    ssize_t n = read_small_file(path, comm, sizeof(comm));
    if (n == -ENOENT || n == -ESRCH)
        return LK_ENOENT;
    if (n < 0)
        return LK_ESYS;
    while (n > 0 && comm[n - 1] == '\n')
        comm[--n] = '\0';
    snprintf(buf, len, "%s", comm);
    return 0;
}

const char *lk_platform_os(void)
{
    return "linux";
}

#elif defined(__APPLE__)

int lk_platform_process_stats(struct lk_process_stats *out)
{
    memset(out, 0, sizeof(*out));
    int rc = common_stats(out);

    struct mach_task_basic_info info;
    mach_msg_type_number_t count = MACH_TASK_BASIC_INFO_COUNT;
    if (task_info(mach_task_self(), MACH_TASK_BASIC_INFO, (task_info_t)&info,
                  &count) == KERN_SUCCESS) {
        out->resident_bytes = (uint64_t)info.resident_size;
        out->virtual_bytes = (uint64_t)info.virtual_size;
    } else if (rc == 0) {
        rc = LK_ESYS;
    }

    /* With no buffer, PROC_PIDLISTFDS reports the size it would need; the
     * second call reports the bytes actually filled. */
    pid_t self = getpid();
    int size = proc_pidinfo(self, PROC_PIDLISTFDS, 0, NULL, 0);
    struct proc_fdinfo *fds = size > 0 ? malloc((size_t)size) : NULL;
    int filled = fds != NULL ? proc_pidinfo(self, PROC_PIDLISTFDS, 0, fds, size)
                             : -1;
    if (filled >= 0)
        out->open_fds = (uint64_t)filled / PROC_PIDLISTFD_SIZE;
    else if (rc == 0)
        rc = LK_ESYS;
    free(fds);

    int mib[4] = {CTL_KERN, KERN_PROC, KERN_PROC_PID, (int)self};
    struct kinfo_proc kp;
    size_t kplen = sizeof(kp);
    if (sysctl(mib, 4, &kp, &kplen, NULL, 0) == 0 && kplen == sizeof(kp)) {
        out->start_time_seconds =
            (double)kp.kp_proc.p_starttime.tv_sec +
            (double)kp.kp_proc.p_starttime.tv_usec / 1e6;
    } else if (rc == 0) {
        rc = LK_ESYS;
    }
    return rc;
}

int lk_platform_peer_cred(int fd, struct lk_peer_cred *out)
{
    uid_t uid;
    gid_t gid;
    if (getpeereid(fd, &uid, &gid) != 0)
        return LK_ESYS;
    pid_t pid = -1;
    socklen_t len = sizeof(pid);
    if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &pid, &len) != 0)
        pid = -1;
    out->pid = (int)pid;
    out->uid = (unsigned)uid;
    out->gid = (unsigned)gid;
    return 0;
}

int lk_platform_process_name(int pid, char *buf, size_t len)
{
    if (len == 0)
        return LK_EINVAL;
    if (pid <= 0)
        return LK_ENOENT;
    char name[2 * MAXCOMLEN + 1];
    int n = proc_name(pid, name, (uint32_t)sizeof(name));
    if (n <= 0) {
        if (kill(pid, 0) != 0 && errno == ESRCH)
            return LK_ENOENT;
        return LK_ESYS;
    }
    name[n < (int)sizeof(name) ? n : (int)sizeof(name) - 1] = '\0';
    snprintf(buf, len, "%s", name);
    return 0;
}

const char *lk_platform_os(void)
{
    return "darwin";
}

#else

int lk_platform_process_stats(struct lk_process_stats *out)
{
    memset(out, 0, sizeof(*out));
    int rc = common_stats(out);
    return rc < 0 ? rc : LK_EUNSUPPORTED;
}

int lk_platform_peer_cred(int fd, struct lk_peer_cred *out)
{
    return LK_EUNSUPPORTED;
}

int lk_platform_process_name(int pid, char *buf, size_t len)
{
    return LK_EUNSUPPORTED;
}

const char *lk_platform_os(void)
{
    return "unknown";
}

#endif

/* Shared by every OS: recvmsg with room for one credentials message. */
static long recv_dgram(int fd, void *buf, size_t len, struct lk_peer_cred *cred,
                       int *truncated, void *ctl, size_t ctllen)
{
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl;
    msg.msg_controllen = (socklen_t)ctllen;
    ssize_t n;
    do
        n = recvmsg(fd, &msg, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? LK_EAGAIN : LK_ESYS;
    cred->pid = -1;
    cred->uid = (unsigned)-1;
    cred->gid = (unsigned)-1;
    *truncated = (msg.msg_flags & MSG_TRUNC) != 0;
#if defined(__linux__)
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
            c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
            struct ucred uc;
            memcpy(&uc, CMSG_DATA(c), sizeof(uc));
            cred->pid = (int)uc.pid;
            cred->uid = (unsigned)uc.uid;
            cred->gid = (unsigned)uc.gid;
        }
    }
#endif
    return (long)((size_t)n > len ? len : (size_t)n);
}

#if defined(__linux__)

int lk_platform_dgram_creds_enable(int fd)
{
    int on = 1;
    return setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) == 0 ? 0 : LK_ESYS;
}

long lk_platform_recv_dgram(int fd, void *buf, size_t len, struct lk_peer_cred *cred,
                            int *truncated)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(struct ucred))];
    } ctl;
    return recv_dgram(fd, buf, len, cred, truncated, &ctl, sizeof(ctl));
}

#else

int lk_platform_dgram_creds_enable(int fd)
{
    return LK_EUNSUPPORTED;
}

long lk_platform_recv_dgram(int fd, void *buf, size_t len, struct lk_peer_cred *cred,
                            int *truncated)
{
    return recv_dgram(fd, buf, len, cred, truncated, NULL, 0);
}

#endif

/* The registry hands back the same series for the same name on every lookup,
 * so the collector keeps no state of its own (and nothing to free). */
#define CPU_HELP "CPU time used by lookout (user plus system), in seconds."
#define RSS_HELP "Resident set size of lookout, in bytes."
#define VSZ_HELP "Virtual address space size of lookout, in bytes."
#define FDS_HELP "File descriptors lookout has open."
#define MAXFDS_HELP "Soft limit on lookout's open file descriptors."
#define START_HELP "When lookout started, in seconds since the Unix epoch."

static void collect_process(lk_metrics *m, void *arg)
{
    struct lk_process_stats st;
    (void)lk_platform_process_stats(&st);
    lk_gauge_set(lk_metrics_float_counter(m, "process_cpu_seconds_total",
                                          CPU_HELP, ""),
                 st.cpu_seconds);
    lk_gauge_set(lk_metrics_gauge(m, "process_resident_memory_bytes",
                                  RSS_HELP, ""),
                 (double)st.resident_bytes);
    lk_gauge_set(lk_metrics_gauge(m, "process_virtual_memory_bytes",
                                  VSZ_HELP, ""),
                 (double)st.virtual_bytes);
    lk_gauge_set(lk_metrics_gauge(m, "process_open_fds", FDS_HELP, ""),
                 (double)st.open_fds);
    lk_gauge_set(lk_metrics_gauge(m, "process_max_fds", MAXFDS_HELP, ""),
                 st.max_fds == UINT64_MAX ? INFINITY : (double)st.max_fds);
    lk_gauge_set(lk_metrics_gauge(m, "process_start_time_seconds", START_HELP,
                                  ""),
                 st.start_time_seconds);
}

void lk_platform_register_process_metrics(lk_metrics *m)
{
    if (m == NULL)
        return;
    /* Register now so that the families keep this order in the exposition. */
    collect_process(m, NULL);
    lk_metrics_on_collect(m, collect_process, NULL);
}

void lk_platform_register_build_info(lk_metrics *m, const char *version)
{
    lk_buf labels;
    lk_buf_init(&labels, 512);
    int rc = lk_buf_append_str(&labels, "version=\"");
    if (rc == 0)
        rc = lk_metrics_label_escape(&labels, version != NULL ? version : "");
    if (rc == 0)
        rc = lk_buf_printf(&labels, "\",os=\"%s\"", lk_platform_os());
    if (rc == 0)
        rc = lk_buf_append(&labels, "", 1);
    if (rc == 0) {
        lk_gauge_set(lk_metrics_gauge(m, "lookout_build_info",
                                      "Always 1; the labels give the version of "
                                      "lookout and the OS it runs on.",
                                      (const char *)labels.data),
                     1.0);
    }
    lk_buf_fini(&labels);
}

void lk_platform_tune_allocator(void)
{
#if defined(__GLIBC__)
    /* MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the environment
     * still win: they are the documented way to tune glibc. A fixed mmap
     * threshold also fixes the trim threshold (128 KiB by default, which
     * gives heap pages back after every large request and faults them in
     * again: +50 % CPU per span in traces-grpc); 8 MiB keeps them. Batches
     * (send_batch_max_bytes, 4 MiB by default) stay on the heap. */
    if (getenv("MALLOC_MMAP_THRESHOLD_") == NULL)
        (void)mallopt(M_MMAP_THRESHOLD, LK_PLATFORM_LARGE_BLOCK);
    if (getenv("MALLOC_TRIM_THRESHOLD_") == NULL)
        (void)mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
#endif
}
