/* master: process manager; see master.h.
 *
 * All events arrive through one signalfd (SIGCHLD included), so no work is
 * ever done in a signal handler. State lives in one struct. */
#include "core/master.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

enum master_phase { RUNNING, STOPPING, HALTING };

typedef struct {
    const gp_config *cfg;
    gp_worker_entry entry;
    gp_listener listeners[GP_MAX_BINDS];
    int num_listeners;
    gp_scoreboard *sb;
    pid_t *pids; /* per slot, 0 when empty */
    int sigfd;
    enum master_phase phase;
    double deadline; /* when STOPPING: kill what is left past this */
    int exit_code;
} gp_master;

static const int handled_signals[] = {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP,
                                      SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void signal_set(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < sizeof handled_signals / sizeof *handled_signals; i++)
        sigaddset(set, handled_signals[i]);
}

static int open_listeners(gp_master *m)
{
    char err[256];
    for (int i = 0; i < m->cfg->num_binds; i++) {
        gp_listener *l = &m->listeners[i];
        if (gp_addr_parse(m->cfg->binds[i], &l->addr, err, sizeof err) < 0 ||
            (l->fd = gp_listen_open(&l->addr, m->cfg->backlog, 0, err, sizeof err)) < 0) {
            fprintf(stderr, "gallop: error: %s\n", err);
            return -1;
        }
        m->num_listeners++;
    }
    return 0;
}

static void close_listeners(gp_master *m)
{
    for (int i = 0; i < m->num_listeners; i++) gp_listen_close(m->listeners[i].fd, &m->listeners[i].addr);
    m->num_listeners = 0;
}

static int living_workers(const gp_master *m)
{
    int n = 0;
    for (int i = 0; i < m->cfg->workers; i++) n += m->pids[i] > 0;
    return n;
}

static void signal_workers(gp_master *m, int sig)
{
    for (int i = 0; i < m->cfg->workers; i++)
        if (m->pids[i] > 0) kill(m->pids[i], sig);
}

static void spawn_worker(gp_master *m, int slot)
{
    gp_slot *s = &m->sb->slots[slot];
    atomic_store(&s->state, GP_WS_BOOTING);
    atomic_store(&s->requests, 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        gp_error("fork failed: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        sigset_t set;
        signal_set(&set);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        close(m->sigfd);
        /* A worker must not outlive a master killed with SIGKILL. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(0);
        atomic_store(&s->pid, getpid());
        gp_worker_args args = {m->cfg, m->listeners, m->num_listeners, m->sb, slot};
        _exit(m->entry(&args));
    }
    m->pids[slot] = pid;
    atomic_store(&s->pid, pid);
    gp_info("booting worker with pid: %d", (int)pid);
}

static void begin_stop(gp_master *m, int sig)
{
    if (m->phase == RUNNING) {
        m->phase = STOPPING;
        m->deadline = now_s() + m->cfg->graceful_timeout;
        gp_info("handling signal: %s; stopping gracefully (up to %gs)", sig == SIGINT ? "int" : "term",
                m->cfg->graceful_timeout);
        close_listeners(m);
        signal_workers(m, SIGTERM);
    }
}

static void begin_halt(gp_master *m, int code, const char *why)
{
    if (m->phase != HALTING) {
        if (why) gp_error("%s", why);
        m->phase = HALTING;
        m->deadline = now_s() + 2.0;
        if (code) m->exit_code = code;
        close_listeners(m);
        signal_workers(m, SIGQUIT);
    }
}

/* Reaps every exited child; logs it, and decides whether to replace it. */
static void reap(gp_master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int slot = -1;
        for (int i = 0; i < m->cfg->workers; i++)
            if (m->pids[i] == pid) slot = i;
        if (slot < 0) continue;
        m->pids[slot] = 0;
        atomic_store(&m->sb->slots[slot].state, GP_WS_EMPTY);
        atomic_store(&m->sb->slots[slot].pid, 0);
        if (WIFEXITED(status)) {
            int code = WEXITSTATUS(status);
            if (code == GP_EXIT_APP_ERROR) {
                begin_halt(m, GP_EXIT_APP_ERROR, "worker failed to load the app; shutting down (exit 4)");
            } else if (code == GP_EXIT_BOOT_ERROR) {
                begin_halt(m, GP_EXIT_BOOT_ERROR, "worker failed to boot; shutting down (exit 3)");
            } else if (m->phase == RUNNING) {
                gp_warn("worker (pid:%d) exited with code %d", (int)pid, code);
            } else {
                gp_info("worker exiting (pid: %d)", (int)pid);
            }
        } else if (WIFSIGNALED(status)) {
            int sig = WTERMSIG(status);
            if (m->phase == RUNNING)
                gp_error("worker (pid:%d) was killed by signal %d (%s)%s", (int)pid, sig, strsignal(sig),
                         sig == SIGKILL ? "; perhaps out of memory?" : "");
            else
                gp_info("worker (pid:%d) killed by signal %d", (int)pid, sig);
        }
        if (m->phase == RUNNING) spawn_worker(m, slot);
    }
}

static void handle_signal(gp_master *m, int sig)
{
    switch (sig) {
    case SIGCHLD: reap(m); break;
    case SIGTERM:
    case SIGINT: begin_stop(m, sig); break;
    case SIGQUIT:
        gp_info("handling signal: quit; stopping now");
        begin_halt(m, 0, NULL);
        break;
    case SIGUSR1:
        gp_log_reopen();
        gp_access_log_reopen();
        signal_workers(m, SIGUSR1);
        break;
    default:
        gp_info("ignoring signal %d (%s)", sig, strsignal(sig));
        break;
    }
}

int gp_master_run(const gp_config *cfg, gp_worker_entry entry)
{
    gp_master m = {.cfg = cfg, .entry = entry, .sigfd = -1, .phase = RUNNING};
    int rc = GP_EXIT_ERROR;
    sigset_t set;

    if (open_listeners(&m) < 0) goto fail;
    m.sb = gp_scoreboard_create(cfg->workers);
    m.pids = calloc((size_t)cfg->workers, sizeof *m.pids);
    if (!m.sb || !m.pids) {
        fprintf(stderr, "gallop: error: out of memory\n");
        goto fail;
    }
    signal_set(&set);
    sigprocmask(SIG_BLOCK, &set, NULL);
    m.sigfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (m.sigfd < 0) {
        fprintf(stderr, "gallop: error: signalfd: %s\n", strerror(errno));
        goto fail;
    }
    signal(SIGPIPE, SIG_IGN);

    for (int i = 0; i < m.num_listeners; i++) {
        const gp_addr *a = &m.listeners[i].addr;
        gp_info("listening at %s%s (%d)", a->kind == GP_ADDR_UNIX ? "" : "http://", a->text, (int)getpid());
    }
    gp_info("starting %d worker%s (%s)", cfg->workers, cfg->workers == 1 ? "" : "s", cfg->workers_why);
    for (int i = 0; i < cfg->workers; i++) spawn_worker(&m, i);

    for (;;) {
        if (m.phase != RUNNING && living_workers(&m) == 0) break;
        int timeout = -1;
        if (m.phase != RUNNING) {
            double left = m.deadline - now_s();
            if (left <= 0) {
                gp_warn("workers still alive after the %s timeout; killing them",
                        m.phase == STOPPING ? "graceful" : "quit");
                signal_workers(&m, SIGKILL);
                m.deadline = now_s() + 3600;
                left = 1;
            }
            timeout = (int)(left * 1000) + 1;
        }
        struct pollfd pfd = {.fd = m.sigfd, .events = POLLIN};
        int n = poll(&pfd, 1, timeout);
        if (n < 0 && errno != EINTR) {
            gp_error("poll: %s", strerror(errno));
            break;
        }
        struct signalfd_siginfo si;
        while (n > 0 && read(m.sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
            handle_signal(&m, (int)si.ssi_signo);
            n = poll(&pfd, 1, 0);
        }
        reap(&m); /* SIGCHLD coalesces: reap on every turn */
    }
    rc = m.exit_code;
    gp_info("shutting down%s", rc ? " after an error" : "");
fail:
    close_listeners(&m);
    if (m.sigfd >= 0) close(m.sigfd);
    gp_scoreboard_destroy(m.sb);
    free(m.pids);
    return rc;
}
