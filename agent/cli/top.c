/*
 * `lookout top`: the terminal. Raw, silent input (termios), the alternate
 * screen, a frame redrawn every interval and on SIGWINCH, keys and signals
 * through one poll(). Everything it changes on the terminal is put back on
 * every way out of lk_top_run.
 */
#include "cli/top.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/scrape.h"
#include "cli/status.h"
#include "core/buf.h"
#include "core/err.h"

/* A request may take this long; then the agent counts as unreachable. Short
 * enough that q is not kept waiting long behind a hung agent. */
#define REQUEST_TIMEOUT_MS 2000L

#define ENTER_SCREEN "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J"
#define LEAVE_SCREEN "\x1b[?25h\x1b[?1049l"

/* The signals that end top, and SIGWINCH. */
static const int handled[] = {SIGWINCH, SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define NHANDLED (sizeof(handled) / sizeof(handled[0]))

/* The write end of the self-pipe: a signal handler can reach nothing else,
 * and poll() then sees the signal without a race. */
static int signal_fd = -1;

struct top {
    const struct lk_cli_target *target;
    double interval; /* seconds */
    lk_scrape *scrape;
    lk_metrics_text *prev; /* the last scrape, for rates; NULL after a failure */
    double prev_at;        /* monotonic seconds */
    struct lk_status view;
    bool have_view;
    int pipe[2];
    struct sigaction old[NHANDLED];
    bool keys;             /* stdin is a terminal, in raw mode */
    struct termios saved;  /* its mode before */
    int rows, cols;
    lk_buf text, frame;
    char footer[96];
    bool quit;
};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    /* Full pipe: a signal is already waiting, which is as good. */
    ssize_t n = write(signal_fd, &b, 1);
    (void)n;
    errno = saved;
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_all(const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return LK_EIO;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static void read_size(struct top *t)
{
    struct winsize ws;
    t->rows = 24;
    t->cols = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
        t->rows = ws.ws_row;
        t->cols = ws.ws_col;
    }
}

/* ---- terminal set-up and restoring ---- */

static int pipe_open(struct top *t)
{
    if (pipe(t->pipe) != 0)
        return LK_ESYS;
    for (int i = 0; i < 2; i++) {
        fcntl(t->pipe[i], F_SETFL, fcntl(t->pipe[i], F_GETFL) | O_NONBLOCK);
        fcntl(t->pipe[i], F_SETFD, FD_CLOEXEC);
    }
    signal_fd = t->pipe[1];
    return 0;
}

static void pipe_close(struct top *t)
{
    signal_fd = -1;
    close(t->pipe[0]);
    close(t->pipe[1]);
}

static void signals_catch(struct top *t)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NHANDLED; i++)
        sigaction(handled[i], &sa, &t->old[i]);
}

static void signals_restore(struct top *t)
{
    for (size_t i = 0; i < NHANDLED; i++)
        sigaction(handled[i], &t->old[i], NULL);
}

/* Keys one at a time, unechoed; Ctrl-C and Ctrl-\ arrive as keys. */
static int raw_mode(struct top *t)
{
    struct termios raw;
    if (!isatty(STDIN_FILENO))
        return 0; /* no keys: signals still end top */
    if (tcgetattr(STDIN_FILENO, &t->saved) != 0)
        return LK_ESYS;
    raw = t->saved;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ISIG | IEXTEN);
    raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) != 0)
        return LK_ESYS;
    t->keys = true;
    return 0;
}

static void raw_restore(struct top *t)
{
    if (t->keys)
        tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
    t->keys = false;
}

/* ---- a refresh: scrape, build the view ---- */

static void refresh(struct top *t)
{
    lk_metrics_text *cur = NULL;
    char err[512];
    bool ready = false;
    double at = now_mono();

    int rc = lk_scrape_metrics(t->scrape, lk_status_wants_metric, &cur, err, sizeof(err));
    if (rc == 0)
        rc = lk_scrape_ready(t->scrape, &ready, err, sizeof(err));
    if (t->have_view)
        lk_status_fini(&t->view);
    t->have_view = true;
    if (rc == 0)
        rc = lk_status_build(&t->view, t->prev, at - t->prev_at, cur, now_wall());
    if (rc < 0) {
        if (rc == LK_ENOMEM)
            snprintf(err, sizeof(err), "%s", lk_strerror(rc));
        lk_status_unreachable(&t->view, t->target->shown, err);
        lk_metrics_text_destroy(cur);
        /* Rates after an outage start over: the agent may be another one. */
        lk_metrics_text_destroy(t->prev);
        t->prev = NULL;
        snprintf(t->footer, sizeof(t->footer), "retrying every %gs  q: quit", t->interval);
        return;
    }
    t->view.target = t->target->shown;
    t->view.state = ready ? LK_STATUS_READY : LK_STATUS_NOT_READY;
    lk_metrics_text_destroy(t->prev);
    t->prev = cur;
    t->prev_at = at;
    snprintf(t->footer, sizeof(t->footer), "q: quit");
}

/* ---- drawing ---- */

/*
 * The view as one write: from the top-left corner, each line cleared after
 * its text (not when the text fills the row: the cursor then sits on the
 * last column, which an erase would wipe), at most |rows| lines and no line
 * feed after the last row, so the screen never scrolls.
 */
static int draw(struct top *t)
{
    struct lk_status_render_opts o = {.width = t->cols, .footer = t->footer};
    lk_buf_reset(&t->text);
    lk_buf_reset(&t->frame);
    int rc = lk_status_render(&t->view, &o, &t->text);
    if (rc == 0)
        rc = lk_buf_append_str(&t->frame, "\x1b[H");
    const char *s = (const char *)t->text.data, *end = s + t->text.len;
    int row = 0;
    while (rc == 0 && s < end && row < t->rows) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = (size_t)((nl != NULL ? nl : end) - s);
        if (row > 0)
            rc = lk_buf_append(&t->frame, "\r\n", 2);
        if (rc == 0)
            rc = lk_buf_append(&t->frame, s, n);
        if (rc == 0 && lk_status_text_width(s, n) < (size_t)t->cols)
            rc = lk_buf_append_str(&t->frame, "\x1b[K");
        row++;
        s = nl != NULL ? nl + 1 : end;
    }
    if (rc == 0 && row < t->rows)
        rc = lk_buf_append_str(&t->frame, row > 0 ? "\r\n\x1b[J" : "\x1b[J");
    if (rc == 0)
        rc = write_all(t->frame.data, t->frame.len);
    return rc;
}

/* ---- input ---- */

/* What arrived on the self-pipe. */
static void on_signals(struct top *t, bool *redraw)
{
    unsigned char sig[32];
    ssize_t n;
    while ((n = read(t->pipe[0], sig, sizeof(sig))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (sig[i] == SIGWINCH) {
                read_size(t);
                *redraw = true;
            } else {
                t->quit = true;
            }
        }
    }
}

/* Keys: q, Ctrl-C, Ctrl-\ and Ctrl-D quit; Ctrl-L redraws; space refreshes. */
static void on_keys(struct top *t, bool *redraw, bool *now)
{
    unsigned char k[64];
    ssize_t n = read(STDIN_FILENO, k, sizeof(k));
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        t->quit = true; /* the terminal went away */
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        switch (k[i]) {
        case 'q':
        case 'Q':
        case 0x03:
        case 0x04:
        case 0x1c:
            t->quit = true;
            break;
        case 0x0c:
            *redraw = true;
            break;
        case ' ':
            *now = true;
            break;
        default:
            break;
        }
    }
}

/* Refreshes every interval, redraws on resize, until told to quit. */
static int loop(struct top *t)
{
    double next = now_mono();
    int rc = 0;
    while (!t->quit && rc == 0) {
        bool redraw = false, now = false;
        if (now_mono() >= next) {
            refresh(t);
            redraw = true;
            next += t->interval;
            if (next < now_mono())
                next = now_mono() + t->interval;
        }
        if (redraw && (rc = draw(t)) < 0)
            break;
        redraw = false;
        struct pollfd fds[2] = {{t->pipe[0], POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
        double wait = ceil((next - now_mono()) * 1000);
        int n = poll(fds, t->keys ? 2 : 1, wait > 0 ? (int)wait : 0);
        if (n < 0 && errno != EINTR) {
            rc = LK_ESYS;
            break;
        }
        if (n > 0 && fds[0].revents != 0)
            on_signals(t, &redraw);
        if (n > 0 && t->keys && fds[1].revents != 0)
            on_keys(t, &redraw, &now);
        if (now)
            next = now_mono();
        else if (redraw && !t->quit)
            rc = draw(t);
    }
    return rc;
}

int lk_top_run(const struct lk_cli_target *target, double interval)
{
    struct top t = {.target = target, .interval = interval, .pipe = {-1, -1}};
    int rc, code = LK_CLI_EXIT_FAILURE;

    if (!isatty(STDOUT_FILENO)) {
        fprintf(stderr, "lookout top: stdout is not a terminal; use `lookout status`\n");
        return LK_CLI_EXIT_USAGE;
    }
    lk_buf_init(&t.text, SIZE_MAX);
    lk_buf_init(&t.frame, SIZE_MAX);
    rc = lk_scrape_create(&t.scrape, target->url, target->unix_path[0] ? target->unix_path : NULL,
                          REQUEST_TIMEOUT_MS);
    if (rc < 0)
        goto out_bufs;
    rc = pipe_open(&t);
    if (rc < 0)
        goto out_scrape;
    signals_catch(&t);
    rc = raw_mode(&t);
    if (rc < 0)
        goto out_signals;
    read_size(&t);
    rc = write_all(ENTER_SCREEN, strlen(ENTER_SCREEN));
    if (rc == 0)
        rc = loop(&t);
    /* Leave the screen even when entering it failed halfway. */
    write_all(LEAVE_SCREEN, strlen(LEAVE_SCREEN));
    raw_restore(&t);
    code = rc == 0 ? LK_CLI_EXIT_OK : LK_CLI_EXIT_FAILURE;
out_signals:
    signals_restore(&t);
    pipe_close(&t);
out_scrape:
    lk_scrape_destroy(t.scrape);
out_bufs:
    if (t.have_view)
        lk_status_fini(&t.view);
    lk_metrics_text_destroy(t.prev);
    lk_buf_fini(&t.text);
    lk_buf_fini(&t.frame);
    if (code == LK_CLI_EXIT_FAILURE)
        fprintf(stderr, "lookout top: %s\n", rc < 0 ? lk_strerror(rc) : "failed");
    return code;
}
