/* master: the arbiter; see master.h.
 *
 * One loop: wait on a signalfd (SIGCHLD included) with a timeout, handle the
 * signals, reap, kill the stuck, then bring the workers to the target count
 * of the current generation. Nothing is done in a signal handler. All state
 * is in one struct. */
#include "core/master.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/autoscale.h"
#include "core/conffile.h"
#include "core/cpus.h"
#include "core/log.h"
#include "core/machine.h"
#include "core/metrics.h"
#include "core/mserve.h"
#include "core/notify.h"
#include "core/reload.h"
#include "core/tlsconf.h"
#include "core/reuseport.h"

#define BOOT_BACKOFF_FIRST 0.1
#define BOOT_BACKOFF_CAP 10.0
#define BOOT_FAILURES_FATAL 6  /* with no worker ever booted */
#define TIMEOUT_KILL_DELAY 1.0 /* time for the traceback dump before SIGKILL */
#define QUIT_GRACE 2.0
#define GRACEFUL_KILL_SLACK 0.4 /* within --graceful-timeout + 0.5 s, as the tests hold it */

enum master_phase { RUNNING, STOPPING, HALTING };

typedef struct {
    pid_t pid; /* 0: free record */
    int slot;
    unsigned gen;
    double started;
    double kill_at; /* > 0: SIGKILL due then (after a timeout dump) */
    bool retiring;  /* we sent TERM */
    double term_at; /* when */
    bool killed;    /* we sent KILL */
    bool booted;
    /* adaptive workers: the counters at the last sample */
    bool sampled;
    double busy_s, cpu_s;
} worker_rec;

typedef struct {
    const gp_config *cfg; /* replaced on HUP by a fresh read of the command line and config file */
    gp_worker_entry entry;
    gp_listener listeners[GP_MAX_BINDS];
    int num_listeners;
    gp_scoreboard *sb;
    worker_rec *recs; /* one per slot */
    int target;
    unsigned gen, prev_gen, next_gen;
    bool reloading;
    bool reload_settling; /* new generation ready, an old worker still accepting */
    int sigfd;
    int wake_fd; /* eventfd the workers write to: ready, or asking to retire */
    enum master_phase phase;
    double deadline;
    int exit_code;
    int boot_failures;
    bool ever_booted;
    double next_spawn;
    bool ready_notified;
    unsigned spawned; /* workers started so far: the next one's age */
    pid_t upgrade_child; /* new master started by USR2 */
    pid_t old_master;    /* when we are that new master: the one to retire */
    char exe[PATH_MAX];
    char pidfile_old[PATH_MAX + 8];
    char oom_events[PATH_MAX]; /* the cgroup's memory.events, "" when unknown */
    unsigned long long oom_kills;
    gp_reuseport *rp; /* --reuse-port round-robin, NULL when off or not permitted */
    int *rp_order;    /* scratch: the serving slots */
    gp_reload *reloader; /* --reload: the file watcher */
    bool parked;         /* --reload: the app never loaded; wait for a change */
    gp_mserve *metrics;     /* --metrics-bind, NULL when off */
    gp_metrics_totals gone; /* counters of the workers that exited */
    /* --workers-min/--workers-max (autoscale.h) */
    bool adaptive;
    gp_autoscale as;
    double next_sample;
    bool async_seen;       /* an ASGI app lowered an implied maximum */
    const char *proc_root; /* "" (tests fake /proc/meminfo with GALLOP_AUTOSCALE_ROOT) */
} gp_master;

static void (*fork_before)(void), (*fork_after_parent)(void);
static gp_master_hook master_hook; /* --preload with a Python config file's hooks */

void gp_master_set_hook(gp_master_hook hook)
{
    master_hook = hook;
}

static void run_hook(const char *name, int pid, int age, int old)
{
    if (master_hook) master_hook(name, pid, age, old);
}

static const int handled_signals[] = {SIGCHLD, SIGTERM, SIGINT,  SIGQUIT, SIGHUP,
                                      SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};

void gp_master_set_fork_hooks(void (*before)(void), void (*after_in_parent)(void))
{
    fork_before = before;
    fork_after_parent = after_in_parent;
}

static double now_s(void)
{
    return (double)gp_monotonic_ms() / 1000.0;
}

static void signal_set(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < sizeof handled_signals / sizeof *handled_signals; i++)
        sigaddset(set, handled_signals[i]);
}

void gp_master_block_signals(void)
{
    sigset_t set;
    signal_set(&set);
    sigprocmask(SIG_BLOCK, &set, NULL);
}

/* What a worker may take with the default action or a handler of its own:
 * QUIT (a plain handler), USR2 (faulthandler) and CHLD (the app's children).
 * The rest stay blocked from fork until the worker, its app loaded, catches
 * them (worker.c catch_signals): threads the app starts at import inherit
 * the block, so only the worker's own threads run the handler. */
static void unblock_worker_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

/* ---- listeners ------------------------------------------------------------ */

static int adopt_fd(gp_master *m, int fd, bool ours, char *err, size_t errlen)
{
    gp_listener *l = &m->listeners[m->num_listeners];
    memset(l, 0, sizeof *l);
    l->addr.sa_len = sizeof l->addr.sa;
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM ||
        getsockname(fd, (struct sockaddr *)&l->addr.sa, &l->addr.sa_len) < 0) {
        snprintf(err, errlen, "descriptor %d is not a stream socket", fd);
        return -1;
    }
    int acc = 0;
    socklen_t al = sizeof acc;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) == 0 && !acc &&
        listen(fd, m->cfg->backlog) < 0) {
        snprintf(err, errlen, "descriptor %d cannot listen: %s", fd, strerror(errno));
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    gp_addr_from_sockaddr(&l->addr);
    l->fd = fd;
    l->inherited = !ours;
    m->num_listeners++;
    return 0;
}

/* Inherited descriptors, in order of precedence: systemd socket activation,
 * a predecessor master (USR2), then --fd. */
static int inherit_listeners(gp_master *m, char *err, size_t errlen)
{
    const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
    if (pid && n && atoi(pid) == (int)getpid()) {
        int count = atoi(n);
        for (int i = 0; i < count && m->num_listeners < GP_MAX_BINDS; i++)
            if (adopt_fd(m, 3 + i, false, err, errlen) < 0) return -1;
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        gp_info("using %d socket%s from systemd", count, count == 1 ? "" : "s");
        return 1;
    }
    const char *fds = getenv("GALLOP_FDS");
    if (fds && *fds) {
        char copy[256];
        snprintf(copy, sizeof copy, "%s", fds);
        for (char *t = strtok(copy, ","); t && m->num_listeners < GP_MAX_BINDS;
             t = strtok(NULL, ","))
            if (adopt_fd(m, atoi(t), true, err, errlen) < 0) return -1;
        unsetenv("GALLOP_FDS");
        return 1;
    }
    for (int i = 0; i < m->cfg->num_fds; i++)
        if (adopt_fd(m, m->cfg->fds[i], false, err, errlen) < 0) return -1;
    return 0;
}

static int open_listeners(gp_master *m)
{
    char err[256];
    int inherited = inherit_listeners(m, err, sizeof err);
    if (inherited < 0) goto fail;
    if (inherited > 0) return 0; /* the sockets came with us: --bind was for the first start */
    for (int i = 0; i < m->cfg->num_binds; i++) {
        gp_listener *l = &m->listeners[m->num_listeners];
        memset(l, 0, sizeof *l);
        if (gp_addr_parse(m->cfg->binds[i], &l->addr, err, sizeof err) < 0 ||
            (l->fd = gp_listen_open(&l->addr, m->cfg->backlog, m->cfg->reuse_port, err,
                                    sizeof err)) < 0)
            goto fail;
        m->num_listeners++;
        if (m->cfg->reuse_port && l->addr.kind == GP_ADDR_TCP) {
            /* workers open their own: a socket nobody accepts on would get a share */
            close(l->fd);
            l->fd = -1;
        }
    }
    return 0;
fail:
    fprintf(stderr, "gallop: error: %s\n", err);
    return -1;
}

static void close_listeners(gp_master *m)
{
    /* after a USR2 hand-off the socket files belong to the new master */
    bool keep_files = m->upgrade_child > 0;
    for (int i = 0; i < m->num_listeners; i++) {
        gp_listener *l = &m->listeners[i];
        if (keep_files || l->inherited) {
            if (l->fd >= 0) close(l->fd);
        } else {
            gp_listen_close(l->fd, &l->addr);
        }
    }
    m->num_listeners = 0;
}

/* ---- privileges ------------------------------------------------------------- */

static int resolve_ids(const gp_config *cfg, uid_t *uid, gid_t *gid, const char **name)
{
    *uid = (uid_t)-1;
    *gid = (gid_t)-1;
    *name = NULL;
    if (cfg->user) {
        struct passwd *pw = getpwnam(cfg->user);
        char *end;
        long v = strtol(cfg->user, &end, 10);
        if (!pw && !*end && v >= 0) pw = getpwuid((uid_t)v);
        if (!pw) {
            gp_error("unknown user '%s'", cfg->user);
            return -1;
        }
        *uid = pw->pw_uid;
        *gid = pw->pw_gid;
        *name = pw->pw_name;
    }
    if (cfg->group) {
        struct group *gr = getgrnam(cfg->group);
        char *end;
        long v = strtol(cfg->group, &end, 10);
        if (!gr && !*end && v >= 0) gr = getgrgid((gid_t)v);
        if (!gr) {
            gp_error("unknown group '%s'", cfg->group);
            return -1;
        }
        *gid = gr->gr_gid;
    }
    return 0;
}

int gp_master_drop_privileges(const gp_config *cfg)
{
    uid_t uid;
    gid_t gid;
    const char *name;
    if (resolve_ids(cfg, &uid, &gid, &name) < 0) return -1;
    if (gid != (gid_t)-1 && getegid() != gid) {
        if ((name ? initgroups(name, gid) : setgroups(1, &gid)) < 0 || setgid(gid) < 0) {
            gp_error("cannot switch to group %u: %s", (unsigned)gid, strerror(errno));
            return -1;
        }
    }
    if (uid != (uid_t)-1 && geteuid() != uid && setuid(uid) < 0) {
        gp_error("cannot switch to user %u: %s", (unsigned)uid, strerror(errno));
        return -1;
    }
    return 0;
}

/* Unix socket files belong to the workers' user, so they can be replaced. */
static void chown_sockets(gp_master *m)
{
    uid_t uid;
    gid_t gid;
    const char *name;
    if ((!m->cfg->user && !m->cfg->group) || resolve_ids(m->cfg, &uid, &gid, &name) < 0) return;
    for (int i = 0; i < m->num_listeners; i++) {
        const gp_addr *a = &m->listeners[i].addr;
        if (a->kind == GP_ADDR_UNIX && chown(a->text + 5, uid, gid) < 0)
            gp_warn("cannot chown %s: %s", a->text, strerror(errno));
    }
}

/* ---- pid file ----------------------------------------------------------------- */

static void write_pidfile(const gp_config *cfg)
{
    if (!cfg->pidfile) return;
    char tmp[PATH_MAX + 16], buf[32];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", cfg->pidfile, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (fd < 0 || write(fd, buf, (size_t)n) != n || close(fd) < 0 || rename(tmp, cfg->pidfile) < 0)
        gp_error("cannot write pid file %s: %s", cfg->pidfile, strerror(errno));
}

/* Removes path only while it still names this process. */
static void remove_pidfile(const char *path)
{
    char buf[32] = "";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0 && atoi(buf) == (int)getpid()) unlink(path);
}

/* ---- workers ------------------------------------------------------------------- */

static worker_rec *rec_by_pid(gp_master *m, pid_t pid)
{
    for (int i = 0; i < m->sb->num_slots; i++)
        if (m->recs[i].pid == pid) return &m->recs[i];
    return NULL;
}

static int slot_booted(gp_master *m, worker_rec *r)
{
    int st = atomic_load(&m->sb->slots[r->slot].state);
    return st == GP_WS_IDLE || st == GP_WS_BUSY || st == GP_WS_STOPPING;
}

static void signal_workers(gp_master *m, int sig)
{
    for (int i = 0; i < m->sb->num_slots; i++)
        if (m->recs[i].pid > 0) kill(m->recs[i].pid, sig);
}

static int living_workers(const gp_master *m)
{
    int n = 0;
    for (int i = 0; i < m->sb->num_slots; i++) n += m->recs[i].pid > 0;
    return n;
}

static void spawn_worker(gp_master *m)
{
    int slot = -1;
    for (int i = 0; i < m->sb->num_slots && slot < 0; i++)
        if (m->recs[i].pid == 0) slot = i;
    if (slot < 0) {
        gp_error("no free scoreboard slot for another worker");
        return;
    }
    gp_slot *s = &m->sb->slots[slot];
    memset((void *)s, 0, sizeof *s);
    atomic_store(&s->state, GP_WS_BOOTING);
    atomic_store(&s->generation, m->gen);
    atomic_store(&s->heartbeat_ms, gp_monotonic_ms());
    pid_t parent = getpid();
    unsigned age = ++m->spawned;
    run_hook("pre_fork", 0, (int)age, 0);
    if (fork_before) fork_before();
    pid_t pid = fork();
    if (pid < 0) {
        if (fork_after_parent) fork_after_parent();
        gp_error("fork failed: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        unblock_worker_signals();
        close(m->sigfd);
        if (m->reloader) close(gp_reload_fd(m->reloader));
        gp_mserve_forget(m->metrics);
        /* a worker must not outlive a master killed with SIGKILL */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(0);
        atomic_store(&s->pid, getpid());
        gp_worker_args args = {m->cfg, m->listeners, m->num_listeners, m->sb,
                               slot,   m->gen,       parent,           m->wake_fd, age};
        _exit(m->entry(&args));
    }
    if (fork_after_parent) fork_after_parent();
    worker_rec *r = &m->recs[slot];
    *r = (worker_rec){.pid = pid, .slot = slot, .gen = m->gen, .started = now_s()};
    atomic_store(&s->pid, pid);
    gp_info("booting worker with pid: %d", (int)pid);
}

static void retire(gp_master *m, worker_rec *r, const char *why)
{
    if (r->retiring || r->killed) return;
    r->retiring = true;
    r->term_at = now_s();
    gp_info("retiring worker %d (%s)", (int)r->pid, why);
    kill(r->pid, SIGTERM);
}

static void begin_stop(gp_master *m, const char *how)
{
    if (m->phase != RUNNING) return;
    m->phase = STOPPING;
    /* workers cut their own stragglers (and an ASGI shutdown) at the
     * timeout and exit 0; the kill, a moment later, is for one that cannot
     * (a request stuck in Python) */
    m->deadline = now_s() + m->cfg->graceful_timeout + GRACEFUL_KILL_SLACK;
    gp_info("handling signal: %s; stopping gracefully (up to %gs)", how, m->cfg->graceful_timeout);
    gp_notify("STOPPING=1");
    close_listeners(m);
    signal_workers(m, SIGTERM);
}

static void begin_halt(gp_master *m, int code, const char *why)
{
    if (m->phase == HALTING) return;
    if (why) gp_error("%s", why);
    m->phase = HALTING;
    m->deadline = now_s() + QUIT_GRACE;
    if (code) m->exit_code = code;
    gp_notify("STOPPING=1");
    close_listeners(m);
    signal_workers(m, SIGQUIT);
}

static void describe_exit(char *buf, size_t len, int status)
{
    if (WIFEXITED(status)) snprintf(buf, len, "exit code %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else snprintf(buf, len, "status %d", status);
}

/* Workers that finished booting and are still there. */
static int serving_workers(const gp_master *m)
{
    int n = 0;
    for (int i = 0; i < m->sb->num_slots; i++) n += m->recs[i].pid > 0 && m->recs[i].booted;
    return n;
}

/* A worker died before it was ready. While another worker serves, the next
 * try only waits longer each time; with none left, a few failures in a row
 * stop the server with code (3: no interpreter, 4: the app does not load). */
static void boot_failed(gp_master *m, worker_rec *r, int status, int code)
{
    char how[96];
    describe_exit(how, sizeof how, status);
    m->boot_failures++;
    int serving = serving_workers(m);
    if (!serving && m->boot_failures >= BOOT_FAILURES_FATAL) {
        char why[200];
        snprintf(why, sizeof why,
                 "no worker could boot (%d tries, the last ended with %s); shutting down (exit %d)",
                 m->boot_failures, how, code);
        begin_halt(m, code, why);
        return;
    }
    double delay = BOOT_BACKOFF_FIRST;
    for (int i = 1; i < m->boot_failures && delay < BOOT_BACKOFF_CAP; i++) delay *= 2;
    if (delay > BOOT_BACKOFF_CAP) delay = BOOT_BACKOFF_CAP;
    m->next_spawn = now_s() + delay;
    gp_error("worker %d %s (%s); next try in %.1fs, %d worker%s still serving", (int)r->pid,
             code == GP_EXIT_APP_ERROR ? "could not load the app" : "died while booting", how,
             delay, serving, serving == 1 ? "" : "s");
}

/* The cgroup's count of OOM kills (cgroup v2 memory.events), or -1. */
static long long read_oom_kills(const char *path)
{
    char buf[1024];
    if (!path[0]) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    const char *p = strstr(buf, "oom_kill ");
    return p ? strtoll(p + 9, NULL, 10) : -1;
}

/* Where the kernel counts this cgroup's OOM kills: memory.events (v2) or
 * memory.oom_control (v1), both with an "oom_kill N" line. */
static void find_oom_events(gp_master *m)
{
    char buf[2048];
    int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0) close(fd);
    if (n <= 0) return;
    buf[n] = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        const char *path = NULL, *fmt = NULL;
        if (strncmp(line, "0::/", 4) == 0) path = line + 3, fmt = "/sys/fs/cgroup%s/memory.events";
        else if ((path = strstr(line, ":memory:/")))
            path += 8, fmt = "/sys/fs/cgroup/memory%s/memory.oom_control";
        if (!path) continue;
        if (strcmp(path, "/") == 0) path = "";
        snprintf(m->oom_events, sizeof m->oom_events, fmt, path);
        long long k = read_oom_kills(m->oom_events);
        if (k >= 0) {
            m->oom_kills = (unsigned long long)k;
            return;
        }
    }
    m->oom_events[0] = 0;
}

/* A SIGKILL we did not send: blamed on the kernel's OOM killer (true) only
 * when the cgroup counted a kill since we last looked. */
static bool killed_by_stranger(gp_master *m, pid_t pid)
{
    long long k = read_oom_kills(m->oom_events);
    if (k >= 0 && (unsigned long long)k > m->oom_kills) {
        gp_error("worker %d was killed by the kernel's OOM killer (signal 9, oom_kill in %s went "
                 "from %llu to %lld); replacing it",
                 (int)pid, m->oom_events, m->oom_kills, k);
        m->oom_kills = (unsigned long long)k;
        return true;
    }
    gp_error("worker %d was killed by signal 9 (SIGKILL) that the master did not send; "
             "replacing it",
             (int)pid);
    return false;
}

/* A reload whose new code cannot load keeps the old generation serving. */
static void abandon_reload(gp_master *m)
{
    gp_error("reload failed: the new generation cannot load the app; keeping the old workers");
    unsigned bad = m->gen;
    m->gen = m->prev_gen;
    m->reloading = false;
    for (int i = 0; i < m->sb->num_slots; i++)
        if (m->recs[i].pid > 0 && m->recs[i].gen == bad) retire(m, &m->recs[i], "failed reload");
    gp_notify("READY=1\nSTATUS=reload failed; old workers serving");
}

/* --reload, the app does not load and no worker serves (at start, or after
 * the last one died): rather than exit, as uvicorn's and gunicorn's
 * reloaders do, wait for the code to be fixed. */
static void park(gp_master *m)
{
    m->reloading = false;
    if (m->parked) return;
    m->parked = true;
    for (int i = 0; i < m->sb->num_slots; i++)
        if (m->recs[i].pid > 0) retire(m, &m->recs[i], "the app does not load");
    gp_error("--reload: the app could not be loaded (above); waiting for a file to change");
}

static void reaped_worker(gp_master *m, worker_rec *r, int status)
{
    gp_slot *s = &m->sb->slots[r->slot];
    bool booted = r->booted || slot_booted(m, r);
    int retire_reason = atomic_load(&s->retire_reason);
    uint64_t served = atomic_load(&s->requests);
    pid_t pid = r->pid;
    char how[96];
    describe_exit(how, sizeof how, status);
    worker_rec copy = *r;
    run_hook("child_exit", (int)pid, 0, 0);
    r->pid = 0;
    atomic_store(&s->state, GP_WS_EMPTY);
    atomic_store(&s->pid, 0);
    if (m->phase != RUNNING) {
        gp_info("worker %d exited (%s)", (int)pid, how);
        return;
    }
    /* exit 4 means "the app did not load" only before the worker was ready:
     * after that it is the app's own sys.exit(4) or os._exit(4), a crash */
    if (!booted && WIFEXITED(status) && WEXITSTATUS(status) == GP_EXIT_APP_ERROR) {
        if (m->reloader && serving_workers(m) == 0) park(m);
        else if (m->reloading && copy.gen == m->gen) abandon_reload(m);
        else if (copy.gen != m->gen) /* a sibling in an abandoned reload: the old ones serve on */
            gp_info("worker %d of the abandoned generation %u exited (%s)", (int)pid, copy.gen,
                    how);
        else if (!m->ever_booted)
            begin_halt(m, GP_EXIT_APP_ERROR,
                       "worker failed to load the app; shutting down (exit 4)");
        else boot_failed(m, &copy, status, GP_EXIT_APP_ERROR);
        return;
    }
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    uint64_t *restarts = m->gone.restarts;
    if (copy.killed || copy.kill_at > 0) {
        gp_warn("worker %d was killed after its timeout; replacing it", (int)pid);
        restarts[GP_RESTART_TIMEOUT]++;
    } else if (!booted && !copy.retiring) {
        boot_failed(m, &copy, status, GP_EXIT_BOOT_ERROR);
        restarts[GP_RESTART_CRASH]++;
    } else if (copy.retiring && clean && retire_reason == GP_RETIRE_MAX_REQUESTS) {
        gp_info("worker %d retired after %llu requests (--max-requests)", (int)pid,
                (unsigned long long)served);
        restarts[GP_RESTART_MAX_REQUESTS]++;
    } else if (copy.retiring && clean && retire_reason == GP_RETIRE_MEMORY) {
        gp_info("worker %d retired: memory over --max-worker-memory", (int)pid);
        restarts[GP_RESTART_MEMORY]++;
    } else if (copy.retiring) {
        gp_info("worker %d exited (retired; %s)", (int)pid, how);
        if (copy.gen != m->gen) restarts[GP_RESTART_RELOAD]++;
    } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
        /* whatever it had asked for: not ours to end */
        restarts[killed_by_stranger(m, pid) ? GP_RESTART_MEMORY : GP_RESTART_CRASH]++;
    } else {
        gp_error("worker %d died unexpectedly (%s); replacing it", (int)pid, how);
        restarts[GP_RESTART_CRASH]++;
    }
}

static void reap(gp_master *m)
{
    int status;
    pid_t pid;
    struct rusage ru;
    while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0) {
        if (pid == m->upgrade_child) {
            char how[96];
            describe_exit(how, sizeof how, status);
            gp_error("the upgraded master %d exited (%s); this master keeps serving", (int)pid,
                     how);
            m->upgrade_child = 0;
            if (m->cfg->pidfile) rename(m->pidfile_old, m->cfg->pidfile);
            continue;
        }
        worker_rec *r = rec_by_pid(m, pid);
        if (!r) continue;
        /* its counters go on in the totals; the kernel's CPU count is exact */
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        gp_metrics_fold(&m->gone, &m->sb->slots[r->slot], cpu);
        reaped_worker(m, r, status);
    }
}

/* Dumps the Python stacks of a stuck worker (its faulthandler listens on
 * SIGUSR2), then kills it a moment later. */
static void check_timeouts(gp_master *m)
{
    double t = now_s();
    uint64_t now_ms = gp_monotonic_ms();
    uint64_t limit_ms = (uint64_t)(m->cfg->timeout * 1000);
    for (int i = 0; i < m->sb->num_slots; i++) {
        worker_rec *r = &m->recs[i];
        if (r->pid <= 0) continue;
        if (r->kill_at > 0) {
            if (t >= r->kill_at && !r->killed) {
                r->killed = true;
                gp_debug("worker %d: sending SIGKILL", (int)r->pid);
                kill(r->pid, SIGKILL);
            }
            continue;
        }
        if (!r->booted && slot_booted(m, r)) {
            r->booted = true;
            m->ever_booted = true;
            m->boot_failures = 0;
            gp_debug("worker %d booted (generation %u)", (int)r->pid, r->gen);
        }
        /* a retiring worker gets the graceful timeout, as on a stop */
        if (r->retiring && m->phase == RUNNING && t >= r->term_at + m->cfg->graceful_timeout) {
            gp_warn("worker %d still running %gs after its TERM (--graceful-timeout); killing it",
                    (int)r->pid, m->cfg->graceful_timeout);
            r->killed = true;
            r->kill_at = t;
            kill(r->pid, SIGKILL);
            continue;
        }
        if (!limit_ms || !r->booted || r->retiring) continue;
        gp_slot *s = &m->sb->slots[r->slot];
        uint64_t hb = atomic_load(&s->heartbeat_ms);
        char what[GP_SLOT_WHAT];
        uint64_t started = gp_slot_request_read(s, what, sizeof what);
        bool stuck_req = started && now_ms > started && now_ms - started > limit_ms;
        bool stuck_loop = now_ms > hb && now_ms - hb > limit_ms;
        if (!stuck_req && !stuck_loop) continue;
        if (started)
            gp_error("WORKER TIMEOUT (pid:%d): request %s has run for %.1fs (--timeout %g); "
                     "its Python tracebacks follow, then it is killed",
                     (int)r->pid, what, (double)(now_ms - started) / 1000.0, m->cfg->timeout);
        else
            gp_error(
                "WORKER TIMEOUT (pid:%d): its event loop has not moved for %.1fs (--timeout %g); "
                "its Python tracebacks follow, then it is killed",
                (int)r->pid, (double)(now_ms - hb) / 1000.0, m->cfg->timeout);
        kill(r->pid, SIGUSR2);
        r->kill_at = t + TIMEOUT_KILL_DELAY;
        if (started && !stuck_loop && m->cfg->threads > 1) {
            /* one stuck request thread: the worker stops gracefully, so its
             * other threads finish theirs, and exits once only stuck ones are
             * left; the kill waits for --graceful-timeout */
            kill(r->pid, SIGTERM);
            r->retiring = true;
            if (m->cfg->graceful_timeout > TIMEOUT_KILL_DELAY)
                r->kill_at = t + m->cfg->graceful_timeout;
        }
    }
}

/* Why a worker should make way for a new one, or NULL: it is of an old
 * generation, or it asked (--max-requests, --max-worker-memory). */
static const char *leave_reason(gp_master *m, const worker_rec *r)
{
    if (r->gen != m->gen) return "replaced by the new generation";
    switch (atomic_load(&m->sb->slots[r->slot].retire_reason)) {
    case GP_RETIRE_MAX_REQUESTS: return "--max-requests reached; its replacement is ready";
    case GP_RETIRE_MEMORY: return "over --max-worker-memory; its replacement is ready";
    }
    return NULL;
}

/* The worker to retire when more serve than wanted: the one in the highest
 * slot, or with adaptive workers the newest (the least warmed up, holding
 * the fewest kept-alive clients). */
static worker_rec *surplus_worker(gp_master *m)
{
    worker_rec *pick = NULL;
    for (int i = m->sb->num_slots - 1; i >= 0; i--) {
        worker_rec *r = &m->recs[i];
        if (r->pid <= 0 || r->retiring || r->kill_at != 0 || leave_reason(m, r)) continue;
        if (!m->adaptive) return r;
        if (!pick || r->started > pick->started) pick = r;
    }
    return pick;
}

/* Brings the current generation to the target, and retires old, surplus
 * and retirement-asking workers only as new ones are ready, so capacity
 * never dips. */
static void maintain(gp_master *m)
{
    if (m->phase != RUNNING) return;
    /* gen_ready and old_gen decide READY: a ready worker waiting for its
     * replacement (--max-requests) still serves the generation */
    int cur = 0, cur_ready = 0, old_active = 0, gen_ready = 0, old_gen = 0;
    for (int i = 0; i < m->sb->num_slots; i++) {
        worker_rec *r = &m->recs[i];
        if (r->pid <= 0 || r->retiring || r->kill_at > 0) continue;
        gen_ready += r->gen == m->gen && r->booted;
        old_gen += r->gen != m->gen;
        if (!leave_reason(m, r)) {
            cur++;
            cur_ready += r->booted;
        } else {
            old_active++;
        }
    }
    if (now_s() >= m->next_spawn && !m->parked)
        for (; cur < m->target; cur++) spawn_worker(m);
    int allowed_old = m->target - cur_ready;
    if (allowed_old < 0) allowed_old = 0;
    for (int i = 0; i < m->sb->num_slots && old_active > allowed_old; i++) {
        worker_rec *r = &m->recs[i];
        const char *why = r->pid > 0 && !r->retiring && r->kill_at == 0 ? leave_reason(m, r) : NULL;
        if (why) {
            retire(m, r, why);
            old_active--;
            old_gen -= r->gen != m->gen;
            gen_ready -= r->gen == m->gen && r->booted;
        }
    }
    for (worker_rec *r; cur > m->target && (r = surplus_worker(m)); cur--)
        retire(m, r,
               m->adaptive ? "fewer workers wanted; the newest goes first"
                           : "fewer workers asked for");
    /* a retired worker may still accept until its loop handles the TERM:
     * the reload is complete once every old one has stopped accepting */
    int old_accepting = 0;
    for (int i = 0; i < m->sb->num_slots; i++) {
        worker_rec *r = &m->recs[i];
        if (r->pid > 0 && r->retiring && r->gen != m->gen &&
            atomic_load(&m->sb->slots[i].state) != GP_WS_STOPPING)
            old_accepting++;
    }
    m->reload_settling = m->reloading && old_accepting && gen_ready >= m->target && old_gen == 0;
    if (gen_ready >= m->target && old_gen == 0 && !m->reload_settling) {
        /* one READY=1 per state change: the first generation, then each reload */
        if (m->reloading) {
            m->reloading = false;
            gp_info("reload complete: generation %u serving with %d workers", m->gen, gen_ready);
            gp_notify("READY=1\nMAINPID=%d\nSTATUS=serving with %d workers (generation %u)",
                      (int)getpid(), gen_ready, m->gen);
        } else if (!m->ready_notified) {
            gp_notify("READY=1\nMAINPID=%d\nSTATUS=serving with %d workers", (int)getpid(),
                      gen_ready);
        }
        if (!m->ready_notified) {
            m->ready_notified = true;
            if (m->old_master > 0) {
                gp_info("upgrade: this master is ready; retiring the old master %d",
                        (int)m->old_master);
                kill(m->old_master, SIGTERM);
                m->old_master = 0;
            }
        }
    }
}

/* ---- adaptive workers (--workers-min/--workers-max) ----------------------------- */

static void set_target(gp_master *m, int n)
{
    if (n == m->target) return;
    run_hook("nworkers_changed", 0, n, m->target);
    m->target = n;
}

/* New bounds, kept within what the scoreboard holds (a reload needs room
 * for two generations); the target moves inside them. */
static void adaptive_bounds(gp_master *m, int min, int max)
{
    int cap = m->sb->num_slots / 2;
    if (max > cap) max = cap;
    if (max < 1) max = 1;
    if (min < 1) min = 1;
    if (min > max) min = max;
    gp_autoscale_set_bounds(&m->as, min, max);
    set_target(m, m->target < min ? min : m->target > max ? max : m->target);
}

static void start_adaptive(gp_master *m, const gp_config *cfg)
{
    gp_cpus c;
    gp_cpus_detect(&c, "", 0);
    gp_as_params p;
    gp_autoscale_defaults(&p, cfg->workers_min, cfg->workers_max, c.usable);
    gp_autoscale_init(&m->as, &p);
    m->adaptive = true;
    m->async_seen = false;
    adaptive_bounds(m, cfg->workers_min, cfg->workers_max);
}

/* TTIN/TTOU: one worker more or fewer now, and the range moves with it, so
 * the decisions that follow do not undo the signal. */
static void adaptive_signal(gp_master *m, int step, const char *name)
{
    int min = m->as.p.min + step, max = m->as.p.max + step;
    if (max < 1) max = 1;
    if (min < 1) min = 1;
    set_target(m, m->target + step);
    adaptive_bounds(m, min, max);
    gp_autoscale_changed(&m->as, now_s());
    gp_info("handling signal: %s; adaptive workers %d to %d, %d wanted", name, m->as.p.min,
            m->as.p.max, m->target);
}

/* One worker's counters since the last sample, added to s. */
static void sample_worker(gp_master *m, worker_rec *r, uint64_t now_us, gp_as_sample *s)
{
    gp_metrics_worker w;
    uint64_t rss;
    double cpu, run, wait;
    gp_metrics_read_slot(&m->sb->slots[r->slot], now_us, &w);
    if (gp_metrics_proc(r->pid, &cpu, &rss) < 0) return;
    /* time waiting for a CPU counts as wanting one: on a crowded machine a
     * CPU-bound worker gets less than it asks */
    if (gp_machine_sched("", r->pid, &run, &wait) == 0) cpu = run + wait;
    double busy = (double)w.busy_us / 1e6;
    s->workers++;
    if (rss > s->rss) s->rss = rss;
    if (r->sampled) {
        s->busy_s += busy - r->busy_s;
        s->cpu_s += cpu - r->cpu_s;
    } else {
        s->settling = true; /* its first interval is not measured */
    }
    r->sampled = true;
    r->busy_s = busy;
    r->cpu_s = cpu;
}

/* Keep-alive clients stay with the worker that accepted them, so a worker
 * added under load would get only new connections: a worker holding clearly
 * more than an even share (two past it, while another holds two below) ends
 * its surplus at their next responses, and they reconnect to one with fewer
 * (the workers' accept balance). Set afresh each second, never added up. */
static void even_out(gp_master *m)
{
    int n = 0;
    uint64_t total = 0;
    uint32_t least = UINT32_MAX;
    for (int i = 0; i < m->sb->num_slots; i++) {
        worker_rec *r = &m->recs[i];
        if (r->pid <= 0 || !r->booted || r->retiring || r->kill_at > 0) continue;
        uint32_t c = atomic_load(&m->sb->slots[r->slot].conns);
        total += c;
        n++;
        if (c < least) least = c;
    }
    uint64_t fair = n ? (total + (uint64_t)n - 1) / (uint64_t)n : 0;
    for (int i = 0; i < m->sb->num_slots; i++) {
        worker_rec *r = &m->recs[i];
        if (r->pid <= 0) continue;
        gp_slot *s = &m->sb->slots[r->slot];
        uint32_t c = atomic_load(&s->conns), shed = 0;
        if (r->booted && !r->retiring && n > 1 && (uint64_t)least + 2 <= fair && c >= fair + 2)
            shed = (uint32_t)(c - fair);
        atomic_store(&s->shed, shed);
    }
}

/* Once a second: measures, asks autoscale, applies its answer. */
static void adaptive_tick(gp_master *m, double t)
{
    if (m->cfg->workers_max_implied && !m->async_seen && atomic_load(&m->sb->app_async) == 2) {
        m->async_seen = true;
        int max = m->as.p.cpus > m->as.p.min ? m->as.p.cpus : m->as.p.min;
        gp_info("adaptive workers: an ASGI app, one event loop per usable CPU: at most %d", max);
        adaptive_bounds(m, m->as.p.min, max);
    }
    even_out(m);
    gp_as_sample s = {.t = t, .settling = m->reloading || m->parked};
    uint64_t now_us = gp_metrics_now_us();
    for (int i = 0; i < m->sb->num_slots; i++) {
        worker_rec *r = &m->recs[i];
        if (r->pid <= 0) continue;
        if (!r->booted || r->retiring || r->kill_at > 0 || r->gen != m->gen) s.settling = true;
        if (r->booted) sample_worker(m, r, now_us, &s);
    }
    for (int i = 0; i < m->num_listeners; i++) {
        const gp_listener *l = &m->listeners[i];
        uint32_t depth, limit;
        if (gp_metrics_listen_queue(l->fd, l->addr.kind == GP_ADDR_UNIX, &depth, &limit) == 0)
            s.backlog += depth;
    }
    s.free = gp_machine_mem_free(m->proc_root);
    gp_debug("adaptive: %d workers%s, busy %.2f s, CPU %.2f s, backlog %u, %llu MiB free",
             s.workers, s.settling ? " (settling)" : "", s.busy_s, s.cpu_s, s.backlog,
             (unsigned long long)(s.free >> 20));
    int target = m->target;
    char line[200];
    enum gp_as_action act = gp_autoscale_step(&m->as, &s, &target, line, sizeof line);
    if (act != GP_AS_NONE) gp_info("%s", line);
    set_target(m, target);
}

/* ---- --reuse-port balance ---------------------------------------------------- */

/* With --reuse-port, an eBPF program hands new connections round-robin to
 * the workers' own sockets (reuseport.h); without the privilege for it the
 * kernel's hash of the client's address and port does. */
static void start_balance(gp_master *m)
{
    char why[200];
    bool own = false;
    for (int i = 0; i < m->num_listeners; i++) own = own || m->listeners[i].fd < 0;
    if (!m->cfg->reuse_port || !own) return;
    if (gp_reuseport_create(m->num_listeners, m->sb->num_slots, &m->rp, why, sizeof why) < 0 ||
        !(m->rp_order = calloc((size_t)m->sb->num_slots, sizeof *m->rp_order))) {
        gp_info("--reuse-port: the kernel's hash spreads connections over the workers "
                "(no eBPF balancing: %s)",
                m->rp ? "out of memory" : why);
        gp_reuseport_destroy(m->rp);
        m->rp = NULL;
        return;
    }
    for (int i = 0; i < m->num_listeners; i++) {
        gp_listener *l = &m->listeners[i];
        l->balanced = l->fd < 0;
        if (l->balanced) gp_reuseport_listener_fds(m->rp, i, &l->rp_socks_fd, &l->rp_prog_fd);
    }
    gp_info("--reuse-port: an eBPF program deals connections round-robin to the workers%s",
            gp_reuseport_migrates(m->rp) ? "; a closing worker's queue moves to the others" : "");
}

/* The workers that may take new connections: all but those on their way
 * out. One still booting is skipped by the program until it joins. */
static void sync_balance(gp_master *m)
{
    int n = 0;
    if (!m->rp) return;
    for (int i = 0; i < m->sb->num_slots; i++) {
        const worker_rec *r = &m->recs[i];
        if (r->pid > 0 && !r->retiring && r->kill_at == 0 && m->phase == RUNNING)
            m->rp_order[n++] = r->slot;
    }
    int rc = gp_reuseport_set_order(m->rp, m->rp_order, n);
    if (rc < 0) gp_warn("--reuse-port: cannot update the eBPF worker list: %s", strerror(-rc));
}

/* ---- --metrics-bind ------------------------------------------------------------ */

/* /healthz: ready once the first generation's workers all booted, as long
 * as one serves; 503 while starting, while stopping and while --reload
 * waits for a fix. A reload keeps it 200: the old workers serve on. */
static int healthz(gp_master *m, gp_mbuf *body)
{
    const char *what = m->phase != RUNNING   ? "stopping"
                       : m->parked           ? "app not loaded"
                       : !m->ready_notified  ? "starting"
                       : !serving_workers(m) ? "no worker serving"
                                             : NULL;
    gp_mbuf_printf(body, "%s\n", what ? what : "ok");
    return what ? 503 : 200;
}

static int metrics_page(gp_master *m, gp_mbuf *body)
{
    gp_metrics_worker *ws = calloc((size_t)m->sb->num_slots, sizeof *ws);
    if (!ws) return 500;
    gp_metrics_listener ls[GP_MAX_BINDS];
    gp_metrics_view v = {.workers = ws,
                         .gone = &m->gone,
                         .listeners = ls,
                         .workers_current = living_workers(m),
                         .workers_target = m->target,
                         .version = gp_version};
    uint64_t now_us = gp_metrics_now_us();
    double t = now_s();
    for (int i = 0; i < m->sb->num_slots; i++) {
        worker_rec *r = &m->recs[i];
        if (r->pid <= 0) continue;
        gp_metrics_worker *w = &ws[v.num_workers++];
        gp_metrics_read_slot(&m->sb->slots[r->slot], now_us, w);
        w->pid = r->pid; /* the slot's copy is 0 until the child stores its own */
        w->age_s = t - r->started;
        double cpu;
        uint64_t rss;
        if (gp_metrics_proc(r->pid, &cpu, &rss) == 0) {
            w->cpu_s = cpu;
            w->rss_bytes = rss;
        }
    }
    for (int i = 0; i < m->num_listeners; i++) {
        const gp_listener *l = &m->listeners[i];
        gp_metrics_listener *o = &ls[v.num_listeners++];
        *o = (gp_metrics_listener){.name = l->addr.text};
        o->has_queue =
            gp_metrics_listen_queue(l->fd, l->addr.kind == GP_ADDR_UNIX, &o->depth, &o->limit) == 0;
    }
    int rc = gp_metrics_render(&v, body);
    if (rc == 0 && m->adaptive) rc = gp_autoscale_render(&m->as, m->target, body);
    free(ws);
    return rc < 0 ? 500 : 200;
}

/* /workers, for gallop top: one line per worker, "pid state age_s
 * running_ms b0 .. b15<TAB>request", with its own (not cumulative) duration
 * buckets and the request it runs now. Not Prometheus's format: the
 * request text would be an unbounded label. */
static int workers_page(gp_master *m, gp_mbuf *body)
{
    static const char *const states[] = {"empty", "starting", "idle", "busy", "retiring"};
    uint64_t now_ms = gp_monotonic_ms();
    double t = now_s();
    for (int i = 0; i < m->sb->num_slots; i++) {
        worker_rec *r = &m->recs[i];
        if (r->pid <= 0) continue;
        gp_slot *s = &m->sb->slots[r->slot];
        char what[GP_SLOT_WHAT];
        uint64_t started = gp_slot_request_read(s, what, sizeof what);
        if (!started) started = gp_slot_task_read(s, what, sizeof what);
        int st = atomic_load(&s->state);
        if (st < GP_WS_EMPTY || st > GP_WS_STOPPING) st = GP_WS_EMPTY;
        if (r->retiring) st = GP_WS_STOPPING;
        gp_mbuf_printf(body, "%d %s %.0f %llu", (int)r->pid, states[st], t - r->started,
                       (unsigned long long)(started && now_ms > started ? now_ms - started : 0));
        for (int b = 0; b < GP_METRICS_BUCKETS; b++)
            gp_mbuf_printf(body, " %llu", (unsigned long long)atomic_load(&s->m_hist[b]));
        for (char *p = what; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
        gp_mbuf_printf(body, "\t%s\n", started ? what : "");
    }
    return 200;
}

static int metrics_handler(void *ctx, const char *path, gp_mbuf *body, const char **ctype)
{
    gp_master *m = ctx;
    if (!strcmp(path, "/healthz")) return healthz(m, body);
    if (!strcmp(path, "/workers")) return workers_page(m, body);
    if (strcmp(path, "/metrics")) return 404;
    *ctype = "text/plain; version=0.0.4; charset=utf-8";
    return metrics_page(m, body);
}

static int open_metrics(gp_master *m)
{
    char err[300];
    if (!m->cfg->num_metrics_binds) return 0;
    m->metrics = gp_mserve_open(m->cfg->metrics_binds, m->cfg->num_metrics_binds,
                                metrics_handler, m, err, sizeof err);
    if (!m->metrics && m->old_master > 0) {
        /* USR2: the old master may still hold a UNIX path; serving beats metrics */
        gp_warn("--metrics-bind: %s; this master serves without metrics", err);
        return 0;
    }
    if (!m->metrics) {
        fprintf(stderr, "gallop: error: --metrics-bind: %s\n", err);
        return -1;
    }
    for (int i = 0; gp_mserve_addr(m->metrics, i); i++) {
        const char *a = gp_mserve_addr(m->metrics, i);
        gp_info("metrics at %s%s/metrics, health at /healthz", strncmp(a, "unix:", 5) ? "http://" : "",
                a);
    }
    return 0;
}

/* HUP re-reads the settings; what only a new master can change (the sockets,
 * the user, preloading) waits for USR2. */
static void reread_config(gp_master *m)
{
    gp_config *fresh = malloc(sizeof *fresh);
    if (!fresh) return;
    if (gp_config_load(fresh, m->cfg->argc, m->cfg->argv) != 0) {
        gp_error("reload: the configuration has an error (above); keeping the current one");
        free(fresh);
        return;
    }
    /* certbot renewed the files: new workers get the new certificate; a bad
     * one keeps the certificate that works */
    int fds[GP_MAX_BINDS];
    char err[1024];
    if (gp_tlsconf_bundles(fresh, m->listeners, m->num_listeners, fds, err, sizeof err) < 0)
        gp_error("reload: TLS: %s; keeping the current certificates", err);
    else gp_tlsconf_install(m->listeners, m->num_listeners, fds);
    gp_conffile_apply_env(fresh);
    if (fresh->workers_max && m->adaptive && fresh->workers_min == m->cfg->workers_min &&
        fresh->workers_max == m->cfg->workers_max) {
        /* the bounds as TTIN/TTOU left them, and the count measured */
        gp_info("reload: adaptive workers kept at %d to %d, %d now", m->as.p.min, m->as.p.max,
                m->target);
    } else if (fresh->workers_max) {
        if (!m->adaptive) start_adaptive(m, fresh);
        else adaptive_bounds(m, fresh->workers_min, fresh->workers_max);
        gp_info("reload: adaptive workers %d to %d, %d now (%s)", m->as.p.min, m->as.p.max,
                m->target, fresh->workers_why);
    } else {
        if (fresh->workers != m->cfg->workers || m->adaptive)
            gp_info("reload: %d workers (%s)", fresh->workers, fresh->workers_why);
        for (int i = 0; m->adaptive && i < m->sb->num_slots; i++)
            atomic_store(&m->sb->slots[i].shed, 0); /* no hand-over asked any more */
        m->adaptive = false;
        set_target(m, fresh->workers);
    }
    gp_log_set_level(fresh->log_level);
    gp_log_set_format(fresh->log_format);
    m->cfg = fresh; /* the old one may still be main's: never freed */
}

/* A new generation of workers; the old one retires as it becomes ready
 * (maintain), or serves on if it cannot load (abandon_reload). */
static void start_generation(gp_master *m)
{
    m->prev_gen = m->reloading ? m->prev_gen : m->gen;
    m->gen = ++m->next_gen;
    m->reloading = true;
    m->boot_failures = 0;
    m->next_spawn = 0;
    m->parked = false;
    atomic_store(&m->sb->load_error_reported, 0); /* this generation's failure is news */
    gp_notify("RELOADING=1\nSTATUS=reloading");
}

static void reload(gp_master *m)
{
    run_hook("on_reload", 0, 0, 0);
    reread_config(m);
    if (m->cfg->preload)
        gp_warn("reloading with --preload: workers fork from the master's copy of the app, "
                "so code changes need USR2");
    start_generation(m);
    gp_info("handling signal: hup; starting worker generation %u", m->gen);
}

/* --reload: reads the watcher's events and starts a generation once the
 * debounce is over. Returns when to look again (-1: nothing pending). */
static double watch_files(gp_master *m, bool readable)
{
    if (!m->reloader) return -1;
    double t = now_s();
    if (readable) gp_reload_read(m->reloader, t);
    const char *what = NULL;
    double wait = gp_reload_due(m->reloader, t, &what);
    if (wait > 0) return t + wait;
    if (wait == 0 && m->phase == RUNNING) {
        start_generation(m);
        gp_info("--reload: %s changed; starting worker generation %u", what, m->gen);
    }
    return -1;
}

/* USR2: a fresh copy of the binary takes the sockets; it retires us once its
 * workers are ready. */
static void upgrade(gp_master *m)
{
    if (m->upgrade_child > 0) {
        gp_warn("an upgrade is already under way (new master %d)", (int)m->upgrade_child);
        return;
    }
    char fds[256] = "";
    size_t off = 0;
    for (int i = 0; i < m->num_listeners; i++)
        if (m->listeners[i].fd >= 0)
            off += (size_t)snprintf(fds + off, sizeof fds - off, "%s%d", off ? "," : "",
                                    m->listeners[i].fd);
    if (m->cfg->pidfile) {
        snprintf(m->pidfile_old, sizeof m->pidfile_old, "%s.oldbin", m->cfg->pidfile);
        rename(m->cfg->pidfile, m->pidfile_old);
    }
    pid_t pid = fork();
    if (pid < 0) {
        gp_error("upgrade: fork failed: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        sigset_t set;
        signal_set(&set);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        for (int i = 0; i < m->num_listeners; i++)
            if (m->listeners[i].fd >= 0) fcntl(m->listeners[i].fd, F_SETFD, 0);
        char parent[32];
        snprintf(parent, sizeof parent, "%d", (int)getppid());
        setenv("GALLOP_FDS", fds, 1);
        setenv("GALLOP_OLD_MASTER", parent, 1);
        setenv("GALLOP_START_CWD", gp_conffile_start_cwd(), 1); /* config files are found there */
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_PID");
        run_hook("pre_exec", 0, 0, 0);
        execv(m->exe, m->cfg->argv);
        fprintf(stderr, "gallop: error: upgrade: cannot execute %s: %s\n", m->exe, strerror(errno));
        _exit(GP_EXIT_ERROR);
    }
    m->upgrade_child = pid;
    gp_info("handling signal: usr2; started new master %d from %s", (int)pid, m->exe);
}

static void handle_signal(gp_master *m, int sig)
{
    switch (sig) {
    case SIGCHLD: reap(m); break;
    case SIGTERM: begin_stop(m, "term"); break;
    case SIGINT: begin_stop(m, "int"); break;
    case SIGQUIT:
        gp_info("handling signal: quit; stopping now");
        begin_halt(m, 0, NULL);
        break;
    case SIGHUP:
        if (m->phase == RUNNING) reload(m);
        break;
    case SIGTTIN:
        if (m->adaptive) {
            adaptive_signal(m, 1, "ttin");
            break;
        }
        if (m->target < m->sb->num_slots / 2) {
            m->target++;
            run_hook("nworkers_changed", 0, m->target, m->target - 1);
        }
        gp_info("handling signal: ttin; %d workers wanted", m->target);
        break;
    case SIGTTOU:
        if (m->adaptive) {
            adaptive_signal(m, -1, "ttou");
            break;
        }
        if (m->target > 1) {
            m->target--;
            run_hook("nworkers_changed", 0, m->target, m->target + 1);
        }
        gp_info("handling signal: ttou; %d workers wanted", m->target);
        break;
    case SIGUSR1:
        gp_log_reopen();
        gp_access_log_reopen();
        signal_workers(m, SIGUSR1);
        gp_info("handling signal: usr1; log files reopened");
        break;
    case SIGUSR2:
        if (m->phase == RUNNING) upgrade(m);
        break;
    }
}

/* TLS: the certificates are read once here, before any worker forks; a bad
 * file stops the start with one line. */
static int setup_tls(gp_master *m)
{
    int fds[GP_MAX_BINDS];
    char err[1024];
    if (gp_tlsconf_bundles(m->cfg, m->listeners, m->num_listeners, fds, err, sizeof err) < 0) {
        fprintf(stderr, "gallop: error: %s\n", err);
        return -1;
    }
    gp_tlsconf_install(m->listeners, m->num_listeners, fds);
    return 0;
}

static int setup(gp_master *m)
{
    const gp_config *cfg = m->cfg;
    ssize_t n = readlink("/proc/self/exe", m->exe, sizeof m->exe - 1);
    m->exe[n > 0 ? n : 0] = 0;
    if (cfg->umask >= 0) umask((mode_t)cfg->umask);
    const char *old = getenv("GALLOP_OLD_MASTER");
    if (old) {
        m->old_master = (pid_t)atoi(old);
        unsetenv("GALLOP_OLD_MASTER");
    }
    /* a UNIX socket is made with --umask, else 0 (mode 0777) as gunicorn's:
     * nginx running as another user (www-data) can connect */
    mode_t mask = umask(cfg->umask >= 0 ? (mode_t)cfg->umask : 0);
    int opened = open_listeners(m);
    umask(mask);
    if (opened < 0) return -1;
    chown_sockets(m);
    if (setup_tls(m) < 0) return -1;
    int most = cfg->workers > cfg->workers_max ? cfg->workers : cfg->workers_max;
    int slots = 2 * most + 64;
    if (slots < 256) slots = 256;
    m->sb = gp_scoreboard_create(slots);
    m->recs = calloc((size_t)slots, sizeof *m->recs);
    if (!m->sb || !m->recs) {
        fprintf(stderr, "gallop: error: out of memory\n");
        return -1;
    }
    if (open_metrics(m) < 0) return -1;
    start_balance(m);
    m->target = cfg->workers;
    if (cfg->workers_max) start_adaptive(m, cfg);
    const char *root = getenv("GALLOP_AUTOSCALE_ROOT"); /* tests: a fake /proc/meminfo */
    m->proc_root = root ? root : "";
    m->gen = m->next_gen = 1;
    sigset_t set;
    signal_set(&set);
    sigprocmask(SIG_BLOCK, &set, NULL);
    m->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m->sigfd < 0 || m->wake_fd < 0) {
        fprintf(stderr, "gallop: error: signalfd/eventfd: %s\n", strerror(errno));
        return -1;
    }
    if (cfg->reload) {
        char err[PATH_MAX + 128];
        gp_reload_opts o = {.dirs = cfg->reload_dirs,
                            .num_dirs = cfg->num_reload_dirs,
                            .includes = cfg->reload_includes,
                            .num_includes = cfg->num_reload_includes,
                            .excludes = cfg->reload_excludes,
                            .num_excludes = cfg->num_reload_excludes,
                            .extra_files = cfg->reload_extra_files,
                            .num_extra_files = cfg->num_reload_extra_files,
                            .delay = cfg->reload_delay};
        if (!(m->reloader = gp_reload_open(&o, err, sizeof err))) {
            fprintf(stderr, "gallop: error: %s\n", err);
            return -1;
        }
        char dirs[1024];
        gp_reload_describe(m->reloader, dirs, sizeof dirs);
        gp_warn("--reload is for development, not production: watching %s for changes", dirs);
    }
    find_oom_events(m);
    signal(SIGPIPE, SIG_IGN);
    write_pidfile(cfg);
    return 0;
}

int gp_master_run(const gp_config *cfg, gp_worker_entry entry)
{
    gp_master m = {.cfg = cfg, .entry = entry, .sigfd = -1, .wake_fd = -1, .phase = RUNNING};
    int rc = GP_EXIT_ERROR;
    run_hook("on_starting", 0, 0, 0);
    if (setup(&m) < 0) goto done;

    for (int i = 0; i < m.num_listeners; i++) {
        const gp_addr *a = &m.listeners[i].addr;
        bool tls = m.listeners[i].tls_fd > 0;
        gp_info("listening at %s%s%s (%d)", a->kind == GP_ADDR_UNIX ? "" : tls ? "https://" : "http://",
                a->text, a->kind == GP_ADDR_UNIX && tls ? " (TLS)" : "", (int)getpid());
    }
    gp_info("starting %d worker%s (%s)", cfg->workers, cfg->workers == 1 ? "" : "s",
            cfg->workers_why);
    run_hook("when_ready", 0, 0, 0);
    maintain(&m);

    double reload_at = -1; /* --reload: when the debounce ends */
    for (;;) {
        if (m.phase != RUNNING && living_workers(&m) == 0) break;
        double t = now_s();
        double wake = t + 1.0; /* the timeout and boot checks tick once a second */
        if (m.phase != RUNNING) {
            if (t >= m.deadline) {
                gp_warn("workers still alive after the %s timeout; killing them",
                        m.phase == STOPPING ? "graceful" : "quit");
                signal_workers(&m, SIGKILL);
                m.deadline = t + 3600;
            }
            if (m.deadline < wake) wake = m.deadline;
        } else if (m.next_spawn > t && m.next_spawn < wake) {
            wake = m.next_spawn;
        }
        if (m.adaptive && m.phase == RUNNING && m.next_sample > t && m.next_sample < wake)
            wake = m.next_sample;
        if (reload_at > 0 && reload_at < wake) wake = reload_at > t ? reload_at : t;
        if (m.reload_settling && t + 0.02 < wake) wake = t + 0.02;
        struct pollfd pfd[3 + GP_MAX_BINDS + GP_MSERVE_CLIENTS] = {
            {.fd = m.sigfd, .events = POLLIN},
            {.fd = m.wake_fd, .events = POLLIN},
            {.fd = m.reloader ? gp_reload_fd(m.reloader) : -1, .events = POLLIN}};
        int nm = gp_mserve_pollfds(m.metrics, pfd + 3, GP_MAX_BINDS + GP_MSERVE_CLIENTS);
        int n = poll(pfd, (nfds_t)(3 + nm), (int)((wake - t) * 1000) + 1);
        if (n < 0 && errno != EINTR) {
            gp_error("poll: %s", strerror(errno));
            break;
        }
        uint64_t wakes;
        if (pfd[1].revents && read(m.wake_fd, &wakes, sizeof wakes) < 0 && errno != EAGAIN)
            gp_error("eventfd: %s", strerror(errno));
        struct signalfd_siginfo si;
        while (read(m.sigfd, &si, sizeof si) == (ssize_t)sizeof si)
            handle_signal(&m, (int)si.ssi_signo);
        reload_at = watch_files(&m, pfd[2].revents != 0);
        reap(&m); /* SIGCHLD coalesces: reap on every turn */
        check_timeouts(&m);
        if (m.adaptive && m.phase == RUNNING && now_s() >= m.next_sample) {
            m.next_sample = now_s() + 1.0;
            adaptive_tick(&m, now_s());
        }
        maintain(&m);
        sync_balance(&m);
        gp_mserve_handle(m.metrics, pfd + 3, n > 0 ? nm : 0, now_s()); /* after: it reports the state */
    }
    rc = m.exit_code;
    gp_info("shutting down%s", rc ? " after an error" : "");
    run_hook("on_exit", 0, 0, 0);
done:
    close_listeners(&m);
    if (cfg->pidfile) {
        remove_pidfile(cfg->pidfile);
        if (m.pidfile_old[0]) remove_pidfile(m.pidfile_old);
    }
    if (m.sigfd >= 0) close(m.sigfd);
    if (m.wake_fd >= 0) close(m.wake_fd);
    gp_reload_close(m.reloader);
    gp_mserve_close(m.metrics);
    gp_scoreboard_destroy(m.sb);
    free(m.recs);
    gp_reuseport_destroy(m.rp);
    free(m.rp_order);
    return rc;
}
