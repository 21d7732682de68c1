/* worker: the loop of one worker process; see worker.h.
 *
 * Owns the listeners' registration, accepting, the once-a-second tick (Date
 * header, idle and slow-client deadlines), the timers' timerfd and the
 * graceful stop; its struct is private to this file. Connections get what
 * they read of the worker once, as a gp_worker_env (worker_env.h); the
 * worker reaches them only through their streams and the streams' protocol
 * tables (proto.h), listed by the connection layer (h1.h). */
#include "core/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "core/accesslog.h"
#include "core/h1.h"
#include "core/h2_proto.h"
#include "core/idle.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/reuseport.h"
#include "core/static.h"
#include "core/tlsconf.h"
#include "core/worker_env.h"

#define ACCEPT_BATCH 16

struct gp_worker {
    gp_loop loop;
    gp_worker_env env;       /* what every connection is given (worker_env.h) */
    gp_conns *conns;         /* the connections (h1.h), reached through their streams */
    const size_t *num_conns; /* gp_conns_counter(conns) */
    struct gp_listen_io {
        gp_io io; /* first member */
        gp_worker *w;
        gp_conn_listener info; /* address, TLS, PROXY: what its connections keep */
        bool own;              /* --reuse-port: this worker's socket, its queue is ours alone */
        int rp_socks_fd, rp_prog_fd; /* own: where it joins the round-robin; -1: hash */
    } listeners[GP_MAX_BINDS];
    int num_listeners;
    bool rp_out; /* our own sockets left the round-robin: we cannot take more */
    gp_io signal_io, timer_io;
    gp_timers timers;  /* every deadline: connections' and the worker's own */
    gp_io deadline_io; /* one-shot timerfd, armed at the earliest timer */
    uint64_t armed_ms; /* when deadline_io fires; GP_TIMER_NEVER: disarmed */
    /* accepting */
    bool accepting; /* the listeners are watched */
    struct gp_fresh {
        gp_stream *s;
        uint64_t until_ms;
    } * fresh; /* accepted, no byte handled yet: one per free thread */
    int num_fresh;
    int fifo_turns;            /* turns left of waiting for one event at a time (pace_batch) */
    uint64_t accept_resume_ms; /* after EMFILE: not before this */
    uint64_t emfile_warned_ms;
    gp_timer accept_timer; /* ends a pause */
    gp_scoreboard *sb;     /* the other workers' slots, for balancing */
    size_t share_conns;    /* num_conns as last published */
    bool share_open;       /* open_to_accept as last published */
    bool at_conn_limit;    /* holds --worker-connections (logged at debug) */
    bool share_recheck;    /* read the others' slots again */
    bool stand_aside;      /* holding clearly more than another open worker */
    gp_bufpool bufs;       /* read and output buffers for reuse */
    double stop_deadline;  /* when stopping: cut what is still open */
    int spare_fd;
    uint64_t max_requests; /* this worker's --max-requests plus its jitter; 0: none */
    pid_t master_pid;      /* orphaned when getppid() differs */
    int wake_fd;           /* the master's eventfd, -1 when none */
    bool retire_asked;     /* the master was asked for a replacement */
};

static void worker_stop(gp_worker *w);
static void worker_retire(gp_worker *w, int reason);

/* ---- request threads (--threads) --------------------------------------------
 * The loop thread parses heads and queues complete requests; each request
 * thread runs one at a time and hands the connection back through an
 * eventfd. The loop stops accepting while every thread is taken, so one
 * worker does not hoard connections that idle workers could serve. */

/* Once a second: the oldest request any thread runs goes to the scoreboard,
 * so the master's --timeout sees a stuck thread while the others serve. */
static void publish_oldest_request(gp_worker *w)
{
    gp_pool *p = w->env.pool;
    int oldest = -1;
    uint64_t oldest_ms = 0;
    for (int i = 0; i < p->threads; i++) {
        uint64_t t = atomic_load_explicit(&p->slots[i].started_ms, memory_order_acquire);
        if (t && (oldest < 0 || t < oldest_ms)) oldest = i, oldest_ms = t;
    }
    if (oldest < 0) {
        atomic_store_explicit(&w->env.slot->req_start_ms, 0, memory_order_relaxed);
        return;
    }
    const char *what = p->slots[oldest].what;
    const char *sp = strchr(what, ' ');
    size_t ml = sp ? (size_t)(sp - what) : strlen(what);
    gp_slot_request_begin(w->env.slot, oldest_ms, what, ml, sp ? sp + 1 : "",
                          sp ? strlen(sp + 1) : 0);
}

static void update_accepting(gp_worker *w);

/* Every thread taken: stop accepting; one free again: accept again. */
static void pool_busy(void *arg, bool full)
{
    gp_worker *w = arg;
    if (w->env.stopping || w->env.pool->accept_paused == full) return;
    w->env.pool->accept_paused = full;
    update_accepting(w);
}

static void pool_thread_init(void *arg)
{
    gp_worker *w = arg;
    w->env.ops->thread_init(w->env.app);
}

static const gp_pool_ops pool_ops = {
    .thread_init = pool_thread_init,
    .run = gp_conn_job_run,
    .done = gp_conn_job_done,
    .busy = pool_busy,
};

static int pool_start(gp_worker *w, int threads)
{
    gp_bufpool_lock_on(&w->bufs);
    w->env.pool = gp_pool_start(&w->loop, threads, &pool_ops, w);
    return w->env.pool ? 0 : -1;
}

static void update_date(gp_worker *w)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    int next = !atomic_load_explicit(&w->env.date_idx, memory_order_relaxed);
    w->env.date_len = strftime(w->env.date_lines[next], sizeof w->env.date_lines[next],
                               "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    atomic_store_explicit(&w->env.date_idx, next, memory_order_release);
}

/* --reuse-port: what queued on this worker's own socket would be reset by
 * its close; it is ours to serve, each answered with Connection: close.
 * Not through on_accept: its fresh-connection bookkeeping is for a worker
 * that goes on accepting. */
static void drain_own_queue(gp_worker *w, struct gp_listen_io *l)
{
    for (int k = 0; k < w->env.cfg->backlog; k++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(l->io.fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED)) continue;
        if (fd < 0) return;
        if (!gp_conn_new(w->conns, fd, &l->info, &peer, plen)) close(fd);
    }
}

static void stop_accepting(gp_worker *w)
{
    for (int i = 0; i < w->num_listeners; i++) {
        if (w->listeners[i].io.fd < 0) continue;
        if (w->listeners[i].own) drain_own_queue(w, &w->listeners[i]);
        gp_loop_unwatch(
            &w->loop,
            &w->listeners[i].io); /* shared with other workers: close alone would not do */
        close(w->listeners[i].io.fd);
        w->listeners[i].io.fd = -1;
    }
}

static void wake_master(gp_worker *w)
{
    uint64_t one = 1;
    if (w->wake_fd >= 0) {
        ssize_t r = write(w->wake_fd, &one, sizeof one); /* EAGAIN: it is awake already */
        (void)r;
    }
}

static void worker_retire(gp_worker *w, int reason)
{
    if (w->env.stopping || w->retire_asked) return;
    w->retire_asked = true;
    atomic_store(&w->env.slot->retire_reason, reason);
    gp_debug("worker %d asks for its replacement (%s)", (int)getpid(),
             reason == GP_RETIRE_MAX_REQUESTS ? "--max-requests" : "--max-worker-memory");
    if (reason == GP_RETIRE_MAX_REQUESTS)
        gp_info("worker %d reached --max-requests after %llu requests; it serves on until its "
                "replacement is ready",
                (int)getpid(), (unsigned long long)atomic_load(&w->env.slot->requests));
    if (w->wake_fd < 0) worker_stop(w); /* no master to start a replacement */
    else wake_master(w);
}

static void worker_stop(gp_worker *w)
{
    if (w->env.stopping) return;
    w->stop_deadline = w->env.now + w->env.cfg->graceful_timeout;
    /* tick faster while stopping, so stragglers are cut on time */
    struct itimerspec fast = {.it_interval = {0, 100000000}, .it_value = {0, 100000000}};
    timerfd_settime(w->timer_io.fd, 0, &fast, NULL);
    stop_accepting(w);
    w->env.stopping = true;
    gp_debug("worker %d stopping: %zu connections open, up to %gs to finish", (int)getpid(),
             (size_t)*w->num_conns, w->env.cfg->graceful_timeout);
    if (w->env.slot) atomic_store(&w->env.slot->state, GP_WS_STOPPING);
    for (gp_stream *s = gp_conns_first(w->conns), *next; s; s = next) {
        next = gp_conns_next(s);
        s->proto->on_stop(s);
    }
}

/* ---- accepting ----------------------------------------------------------
 * Whether this worker watches its listeners is decided in one place,
 * update_accepting, from: stopping, a pause after EMFILE, --worker-connections,
 * busy request threads, and fresh connections. A connection is fresh from its
 * accept until its first bytes are handled (or FRESH_GRACE_MS pass): a worker
 * that runs one request at a time takes one fresh connection, one with threads
 * as many as it has threads free, so a burst of connections spreads over the
 * workers instead of queueing behind one (a worker alone on its queue takes
 * all: no_other_taker). Leaving and rejoining the shared
 * socket's wait queue also puts this worker behind the others for the next
 * wakeup, which EPOLLEXCLUSIVE would otherwise always give the first. */

#define FRESH_GRACE_MS 100  /* a client that connects and says nothing holds no one up */
#define EMFILE_PAUSE_MS 500 /* as nginx: wait for descriptors to come back */
#define EMFILE_WARN_EVERY_MS 1000
#define BALANCE_SLACK 2 /* connections more than another worker before standing aside */
#define BALANCE_RECHECK_MS 20
#define BALANCE_BUSY_MS 50 /* a worker in one request this long cannot take more */

/* How many fresh connections this worker may hold now; -1: no limit. */
static int fresh_room(gp_worker *w)
{
    if (w->env.ops->runs_as_tasks) return -1;
    if (!w->env.pool) return 1;
    int free_threads =
        w->env.pool->threads - w->env.pool->busy; /* busy: written by this thread only */
    return free_threads > 0 ? free_threads : 0;
}

/* Open: able to take connections at all (what the other workers see). */
static bool open_to_accept(gp_worker *w)
{
    if (w->env.stopping || w->env.now_ms < w->accept_resume_ms) return false;
    if (*w->num_conns >= w->env.cfg->worker_connections) return false;
    return !(w->env.pool && w->env.pool->accept_paused);
}

/* Every thread is taken: take a connection all the same when no other
 * worker can, one fresh at a time, or the backlog would starve behind the
 * keep-alive clients that keep every worker's threads busy (they then share
 * the threads' queue, as a sync worker's clients share its loop). Among
 * full workers the one holding fewest connections takes it, so they still
 * spread; the others look again soon, their counts change untold. */
static bool full_but_alone(gp_worker *w)
{
    if (!w->env.pool || !w->env.pool->accept_paused || w->env.stopping ||
        w->env.now_ms < w->accept_resume_ms || *w->num_conns >= w->env.cfg->worker_connections ||
        w->num_fresh > 0)
        return false;
    if (w->env.cfg->reuse_port || !w->sb) return true;
    for (int i = 0; i < w->sb->num_slots; i++) {
        gp_slot *s = &w->sb->slots[i];
        if (s == w->env.slot) continue;
        if (atomic_load_explicit(&s->accepting, memory_order_relaxed)) return false;
        int st = atomic_load_explicit(&s->state, memory_order_relaxed);
        if ((st == GP_WS_IDLE || st == GP_WS_BUSY) &&
            (size_t)atomic_load_explicit(&s->conns, memory_order_relaxed) + BALANCE_SLACK <
                *w->num_conns) {
            uint64_t at = w->env.now_ms + BALANCE_RECHECK_MS;
            if (!gp_timer_armed(&w->accept_timer) || w->accept_timer.at > at)
                gp_timer_set(&w->timers, &w->accept_timer, at);
            return false;
        }
    }
    return true;
}

/* A sync worker holding its one fresh connection takes more only when no
 * other worker reads its accept queue: then the backlog's clients would
 * just wait, a whole round of this worker's keep-alive connections per
 * accept (the listener is watched again only after each fresh connection's
 * first request, and its readiness queues behind theirs), and taken now
 * they are served in turn with the rest. With other workers, the backlog
 * stays where whichever frees first takes the next. */
static bool no_other_taker(gp_worker *w)
{
    if (w->env.cfg->reuse_port || !w->sb) return true; /* a queue only this worker reads */
    for (int i = 0; i < w->sb->num_slots; i++) {
        gp_slot *s = &w->sb->slots[i];
        int st = atomic_load_explicit(&s->state, memory_order_relaxed);
        if (s != w->env.slot && (st == GP_WS_BOOTING || st == GP_WS_IDLE || st == GP_WS_BUSY))
            return false;
    }
    return true;
}

static bool want_accepting_open(gp_worker *w, bool open)
{
    if (!open) return full_but_alone(w);
    int room = fresh_room(w);
    if (room < 0 || w->num_fresh < room) return true;
    return !w->env.pool && no_other_taker(w);
}

static bool want_accepting(gp_worker *w)
{
    return want_accepting_open(w, open_to_accept(w));
}

/* On a shared socket, a worker holding clearly more connections than another
 * that accepts stands aside, so keep-alive connections opened together spread
 * evenly. Decided between turns, never on a wakeup: EPOLLEXCLUSIVE told no
 * other worker of that connection, so the one woken takes it. With
 * --reuse-port each queue has one reader, who must never stand aside. */
static bool over_share(gp_worker *w)
{
    if (w->env.cfg->reuse_port || !w->sb || w->sb->num_slots < 2) return false;
    size_t mine = *w->num_conns;
    for (int i = 0; i < w->sb->num_slots; i++) {
        gp_slot *s = &w->sb->slots[i];
        if (s == w->env.slot || !atomic_load_explicit(&s->accepting, memory_order_relaxed))
            continue;
        uint64_t busy_since = atomic_load_explicit(&s->req_start_ms, memory_order_relaxed);
        if (busy_since && busy_since + BALANCE_BUSY_MS < w->env.now_ms)
            continue; /* stuck in the app */
        if ((size_t)atomic_load_explicit(&s->conns, memory_order_relaxed) + BALANCE_SLACK < mine)
            return true;
    }
    return false;
}

/* --reuse-port: our own sockets into the eBPF round-robin, or out of it
 * while we could not take a connection it gave us (its turns then go to the
 * others). Never for a busy thread pool: that changes with every request. */
static void rotation(gp_worker *w, bool in)
{
    for (int i = 0; i < w->num_listeners; i++) {
        struct gp_listen_io *l = &w->listeners[i];
        if (l->rp_socks_fd < 0) continue;
        int slot = (int)(w->env.slot - w->sb->slots);
        int rc = in ? gp_reuseport_join(l->rp_socks_fd, l->rp_prog_fd, slot, l->io.fd)
                    : gp_reuseport_leave(l->rp_socks_fd, slot);
        if (rc < 0)
            gp_warn("--reuse-port: worker %d cannot %s the round-robin: %s", (int)getpid(),
                    in ? "join" : "leave", strerror(-rc));
    }
    w->rp_out = !in;
}

/* Runs after every turn, so it is cheap when nothing changed: the other
 * workers' slots are read only when this worker's own count moved, or when
 * the recheck timer asks while it stands aside. */
static void update_accepting(gp_worker *w)
{
    bool open = open_to_accept(w);
    if (*w->num_conns != w->share_conns) {
        w->share_conns = *w->num_conns;
        w->share_recheck = true;
        atomic_store_explicit(&w->env.slot->conns, (uint32_t)*w->num_conns, memory_order_relaxed);
        if ((*w->num_conns >= w->env.cfg->worker_connections) != w->at_conn_limit) {
            w->at_conn_limit = !w->at_conn_limit;
            gp_debug("worker %d %s (%zu connections, --worker-connections %zu)", (int)getpid(),
                     w->at_conn_limit ? "is full: stops accepting" : "accepts again",
                     (size_t)*w->num_conns, w->env.cfg->worker_connections);
        }
    }
    if (open != w->share_open) {
        w->share_open = open;
        atomic_store_explicit(&w->env.slot->accepting, open, memory_order_relaxed);
    }
    bool out =
        *w->num_conns >= w->env.cfg->worker_connections || w->env.now_ms < w->accept_resume_ms;
    if (out != w->rp_out && !w->env.stopping) rotation(w, !out);
    bool on = want_accepting_open(w, open);
    if (on && w->share_recheck) {
        w->share_recheck = false;
        w->stand_aside = over_share(w);
    }
    if (on && w->stand_aside) {
        on = false;
        /* the others' counts change without telling us: look again soon */
        uint64_t at = w->env.now_ms + BALANCE_RECHECK_MS;
        if (!gp_timer_armed(&w->accept_timer) || w->accept_timer.at > at)
            gp_timer_set(&w->timers, &w->accept_timer, at);
    }
    if (on == w->accepting) return;
    w->accepting = on;
    for (int i = 0; i < w->num_listeners; i++) {
        gp_io *io = &w->listeners[i].io;
        if (io->fd < 0) continue;
        /* one wakeup per connection, not one per worker */
        if (on) gp_loop_watch(&w->loop, io, EPOLLIN | EPOLLEXCLUSIVE);
        else gp_loop_unwatch(&w->loop, io);
    }
}

static void forget_fresh(gp_worker *w, int i)
{
    gp_stream *s = w->fresh[i].s;
    if (!s->closed && s->io.cb != gp_stream_on_io) s->io.cb = gp_stream_on_io;
    w->fresh[i] = w->fresh[--w->num_fresh];
}

/* A fresh connection's first event: no longer fresh, then the usual work. */
static void on_fresh_event(gp_io *io, uint32_t events)
{
    gp_stream *s = (gp_stream *)io;
    gp_worker *w = (gp_worker *)((char *)s->env - offsetof(gp_worker, env.stream));
    for (int i = 0; i < w->num_fresh; i++)
        if (w->fresh[i].s == s) {
            forget_fresh(w, i);
            break;
        }
    s->io.cb = gp_stream_on_io;
    gp_stream_on_io(io, events);
}

/* After a turn, before closed connections are recycled: the fresh ones that
 * closed or waited long enough stop counting. */
static void expire_fresh(gp_worker *w)
{
    uint64_t next = GP_TIMER_NEVER;
    for (int i = 0; i < w->num_fresh;) {
        if (w->fresh[i].s->closed || w->fresh[i].until_ms <= w->env.now_ms) {
            forget_fresh(w, i);
            continue;
        }
        if (w->fresh[i].until_ms < next) next = w->fresh[i].until_ms;
        i++;
    }
    if (next < GP_TIMER_NEVER && (!gp_timer_armed(&w->accept_timer) || next < w->accept_timer.at))
        gp_timer_set(&w->timers, &w->accept_timer, next);
}

/* Wakes the loop when a pause ends; update_accepting does the rest. */
static void on_accept_timer(gp_timer *t)
{
    gp_worker *w = (gp_worker *)((char *)t - offsetof(gp_worker, accept_timer));
    w->share_recheck = true;
    if (w->spare_fd < 0) w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Out of descriptors: the spare one makes room to accept the oldest waiting
 * client and tell it 503 rather than leave it hanging, then accepting pauses
 * (other workers may have descriptors to spare meanwhile). */
static void out_of_fds(gp_worker *w, int lfd, int err)
{
    if (w->spare_fd >= 0) {
        close(w->spare_fd);
        w->spare_fd = -1;
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                       "Connection: close\r\n\r\n";
            char sink[4096]; /* read what came, so the close does not reset the answer */
            ssize_t r = recv(fd, sink, sizeof sink, 0);
            r = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL);
            (void)r;
            close(fd);
        }
        w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC); /* retried by the timer */
    }
    w->accept_resume_ms = w->env.now_ms + EMFILE_PAUSE_MS;
    gp_timer_set(&w->timers, &w->accept_timer, w->accept_resume_ms);
    if (!w->emfile_warned_ms || w->env.now_ms - w->emfile_warned_ms >= EMFILE_WARN_EVERY_MS) {
        w->emfile_warned_ms = w->env.now_ms;
        gp_warn("worker %d: shedding connections: too many open files (%s, %zu connections); "
                "accepting again in %d ms",
                (int)getpid(), strerror(err), *w->num_conns, EMFILE_PAUSE_MS);
    }
    update_accepting(w);
}

static void on_accept(gp_io *io, uint32_t events)
{
    struct gp_listen_io *l = (struct gp_listen_io *)io;
    gp_worker *w = l->w;
    int room = fresh_room(w);
    for (int i = 0; i < ACCEPT_BATCH && (i == 0 || want_accepting(w)); i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(io->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                out_of_fds(w, io->fd, errno);
            break;
        }
        if (peer.ss_family == AF_INET || peer.ss_family == AF_INET6) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        gp_stream *s = gp_conn_new(w->conns, fd, &l->info, &peer, plen);
        if (!s) {
            close(fd);
            continue;
        }
        /* past the room (no other taker): not fresh, just served in turn */
        if (room >= 0 && w->num_fresh < (room > 0 ? room : 1)) {
            s->io.cb = on_fresh_event;
            w->fresh[w->num_fresh++] = (struct gp_fresh){s, w->env.now_ms + FRESH_GRACE_MS};
        }
    }
    expire_fresh(w);
    update_accepting(w); /* now: the next connection's wakeup goes to another worker */
}

/* The worker's signals arrive through a self-pipe written by a handler, not
 * through a blocked mask and a signalfd: a process the app starts (fork and
 * exec, vfork, posix_spawn) keeps a mask, so it would never see TERM, while
 * exec resets a handler. Whichever thread the kernel picks runs the handler,
 * which only writes the signal's number; a child the app forked without
 * exec gets the default action, as if we had installed nothing. */
static int signal_pipe = -1;
static pid_t signal_pid;

static void on_signal_caught(int sig)
{
    int saved = errno;
    if (getpid() != signal_pid) {
        signal(sig, SIG_DFL);
        raise(sig);
    } else {
        unsigned char b = (unsigned char)sig;
        ssize_t r = write(signal_pipe, &b, 1);
        (void)r; /* a full pipe already holds a wakeup */
    }
    errno = saved;
}

static void (*int_hook)(void);

void gp_worker_set_int_hook(void (*hook)(void))
{
    int_hook = hook;
}

static void on_signal(gp_io *io, uint32_t events)
{
    gp_worker *w = (gp_worker *)((char *)io - offsetof(gp_worker, signal_io));
    unsigned char sigs[64];
    ssize_t n;
    while ((n = read(io->fd, sigs, sizeof sigs)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            switch (sigs[i]) {
            case SIGINT:
                if (int_hook && !w->env.stopping) int_hook();
                worker_stop(w);
                break;
            case SIGTERM: worker_stop(w); break;
            case SIGUSR1:
                gp_log_reopen();
                gp_access_log_reopen();
                break;
            default: break; /* HUP, TTIN, TTOU are the master's */
            }
        }
    }
}

static int catch_signals(gp_worker *w)
{
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) return -1;
    signal_pipe = p[1];
    signal_pid = getpid();
    w->signal_io.fd = p[0];
    w->signal_io.cb = on_signal;
    struct sigaction sa = {.sa_handler = on_signal_caught, .sa_flags = SA_RESTART};
    sigfillset(&sa.sa_mask);
    static const int caught[] = {SIGTERM, SIGINT, SIGUSR1, SIGHUP, SIGTTIN, SIGTTOU};
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof caught / sizeof caught[0]; i++) {
        if (sigaction(caught[i], &sa, NULL) < 0) return -1;
        sigaddset(&set, caught[i]);
    }
    /* blocked since fork (so that nothing was lost while the app loaded): what
     * came meanwhile is delivered to the handler now */
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    return gp_loop_watch(&w->loop, &w->signal_io, EPOLLIN);
}

/* Once a second, never per request: one read of /proc/self/statm. */
static void check_memory(gp_worker *w)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return;
    buf[n] = 0;
    unsigned long long size, resident;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2) return;
    uint64_t rss_kb = resident * (uint64_t)(sysconf(_SC_PAGESIZE) / 1024);
    atomic_store_explicit(&w->env.slot->rss_kb, rss_kb, memory_order_relaxed);
    if (rss_kb / 1024 > w->env.cfg->max_worker_memory_mb && !w->retire_asked) { /* warned once */
        gp_warn("worker %d uses %llu MB, over --max-worker-memory %lu; retiring once its "
                "replacement is ready",
                (int)getpid(), (unsigned long long)(rss_kb / 1024),
                w->env.cfg->max_worker_memory_mb);
        worker_retire(w, GP_RETIRE_MEMORY);
    }
}

/* Once a second, for gallop top: the request whose task has run longest. */
static void publish_oldest_task(gp_worker *w)
{
    uint64_t since_ms;
    gp_conn *oldest = gp_conns_oldest_task(w->conns, &since_ms);
    const char *what = oldest ? w->env.ops->describe(w->env.app, oldest) : NULL;
    gp_slot_task_publish(w->env.slot, what ? since_ms : 0, what);
}

static void on_tick(gp_io *io, uint32_t events)
{
    gp_worker *w = (gp_worker *)((char *)io - offsetof(gp_worker, timer_io));
    uint64_t ticks;
    ssize_t r = read(io->fd, &ticks, sizeof ticks);
    (void)r;
    update_date(w);
    if (getppid() != w->master_pid) worker_stop(w); /* orphaned: the death signal was missed */
    if (w->env.cfg->max_worker_memory_mb && !w->env.stopping) check_memory(w);
    if (w->env.pool) publish_oldest_request(w);
    if (w->env.ops->describe && w->env.cfg->num_metrics_binds) publish_oldest_task(w);
}

static void on_deadline(gp_io *io, uint32_t events)
{
    gp_worker *w = (gp_worker *)((char *)io - offsetof(gp_worker, deadline_io));
    uint64_t n;
    ssize_t r = read(io->fd, &n, sizeof n);
    (void)r;
    /* the loop's clock is the coarse one, a few ms behind the timerfd's: it
     * fired, so it is at least that late */
    if (w->armed_ms != GP_TIMER_NEVER && w->env.now_ms < w->armed_ms) {
        w->env.now_ms = w->armed_ms;
        w->env.now = (double)w->env.now_ms / 1000.0;
    }
    w->armed_ms = GP_TIMER_NEVER; /* one-shot: it fired */
    gp_timers_run(&w->timers, w->env.now_ms);
}

/* After a turn: the timerfd must fire no later than the earliest timer. One
 * armed too early only costs a wakeup that re-arms it, so a deadline that
 * moved later needs no system call. */
static void arm_deadline(gp_worker *w)
{
    uint64_t at = gp_timers_earliest(&w->timers);
    if (at >= w->armed_ms) return;
    struct itimerspec its = {.it_value = {(time_t)(at / 1000), (long)(at % 1000) * 1000000}};
    if (at == 0) its.it_value.tv_nsec = 1; /* zero would disarm */
    if (timerfd_settime(w->deadline_io.fd, TFD_TIMER_ABSTIME, &its, NULL) == 0) w->armed_ms = at;
}

static void quit_now(int sig)
{
    (void)sig;
    _exit(0);
}

static int setup(gp_worker *w, const gp_worker_args *a)
{
    const gp_config *cfg = a->cfg;
    w->env.limits.max_request_line = cfg->limit_request_line;
    w->env.limits.max_fields = cfg->limit_request_fields;
    w->env.limits.max_field_size = cfg->limit_request_field_size;
    w->env.limits.max_head = cfg->limit_request_head;
    /* the head budget bounds what one connection may make us buffer */
    w->env.head_cap = cfg->limit_request_head;
    if (w->env.head_cap < GP_IO_BUF_SIZE) w->env.head_cap = GP_IO_BUF_SIZE;
    w->env.access_fd = gp_access_log_fd();
    w->env.alog_fmt = &cfg->access_format;
    w->env.log_slow_us = (uint64_t)(cfg->log_slow * 1e6);
    w->env.alog_on = w->env.access_fd >= 0 || w->env.log_slow_us;
    w->env.count_busy = cfg->num_metrics_binds || cfg->workers_max;
    w->env.pid = (int)getpid();
    w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    gp_worker_env_init(&w->env, &w->loop, &w->timers, &w->bufs);
    if (gp_bufpool_init(&w->bufs) < 0 || gp_loop_init(&w->loop) < 0) return -1;
    if (!(w->conns = gp_conns_new(&w->env))) return -1;
    w->num_conns = gp_conns_counter(w->conns);
    update_date(w);

    /* QUIT must work even while the app is running Python: a plain handler. */
    struct sigaction sa = {.sa_handler = quit_now};
    sigaction(SIGQUIT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (catch_signals(w) < 0) return -1;

    w->timer_io.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its = {.it_interval = {1, 0}, .it_value = {1, 0}};
    w->timer_io.cb = on_tick;
    if (w->timer_io.fd < 0 || timerfd_settime(w->timer_io.fd, 0, &its, NULL) < 0 ||
        gp_loop_watch(&w->loop, &w->timer_io, EPOLLIN) < 0)
        return -1;

    char serr[512];
    w->env.static_serve = gp_static_serve;
    if (gp_static_open(cfg, &w->env.statics, serr, sizeof serr) < 0) {
        gp_error("%s", serr);
        return -1;
    }

    gp_timers_init(&w->timers);
    w->accept_timer.cb = on_accept_timer;
    int max_fresh = a->cfg->threads > 1 ? a->cfg->threads : 1;
    if (!(w->fresh = calloc((size_t)max_fresh, sizeof *w->fresh))) return -1;
    w->armed_ms = GP_TIMER_NEVER;
    w->deadline_io.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    w->deadline_io.cb = on_deadline;
    if (w->deadline_io.fd < 0 || gp_loop_watch(&w->loop, &w->deadline_io, EPOLLIN) < 0) return -1;

    gp_tls_ctx *tls[GP_MAX_BINDS];
    char tls_err[1024];
    gp_tls_set_offer_h2(w->env.h2 != NULL); /* ALPN "h2" only where HTTP/2 will answer */
    if (w->env.h2) w->env.stream.ready = gp_conn_tls_ready;
    if (gp_tlsconf_contexts(a->cfg, a->listeners, a->num_listeners, tls, tls_err, sizeof tls_err) <
        0) {
        gp_error("worker: TLS: %s", tls_err);
        return -1;
    }
    for (int i = 0; i < a->num_listeners; i++) {
        w->listeners[i].info.tls = tls[i];
        w->listeners[i].io.fd = a->listeners[i].fd;
        if (w->listeners[i].io.fd < 0) { /* --reuse-port: a socket of our own */
            char err[256];
            gp_addr addr = a->listeners[i].addr;
            w->listeners[i].io.fd = gp_listen_open(&addr, cfg->backlog, 1, err, sizeof err);
            if (w->listeners[i].io.fd < 0) {
                gp_error("%s", err);
                return -1;
            }
            w->listeners[i].own = true;
        }
        bool rr = w->listeners[i].own && a->listeners[i].balanced;
        w->listeners[i].rp_socks_fd = rr ? a->listeners[i].rp_socks_fd : -1;
        w->listeners[i].rp_prog_fd = rr ? a->listeners[i].rp_prog_fd : -1;
        w->listeners[i].io.cb = on_accept;
        w->listeners[i].info.addr = &a->listeners[i].addr;
        w->listeners[i].w = w;
        w->listeners[i].info.proxy = cfg->proxy_protocol;
        for (int k = 0; k < cfg->num_proxy_protocol_binds; k++)
            w->listeners[i].info.proxy |=
                !strcmp(cfg->proxy_protocol_binds[k], a->listeners[i].addr.text);
        w->num_listeners++;
    }
    return 0;
}

int gp_worker_accept(gp_worker *w)
{
    for (int i = 0; i < w->num_listeners; i++) /* one wakeup per connection, not one per worker */
        if (gp_loop_watch(&w->loop, &w->listeners[i].io, EPOLLIN | EPOLLEXCLUSIVE) < 0) return -1;
    rotation(w, true); /* only now: until the app is ready our turns go to the others */
    w->accepting = w->share_open = true;
    atomic_store_explicit(&w->env.slot->accepting, 1, memory_order_relaxed);
    atomic_store(&w->env.slot->state, GP_WS_IDLE);
    gp_info("worker %d ready", (int)getpid());
    wake_master(w); /* so it retires what this one replaces without waiting for its tick */
    return 0;
}

static void free_dead(gp_worker *w)
{
    gp_conns_recycle(w->conns);
}

gp_worker *gp_worker_create(const gp_worker_args *a, const gp_app_ops *ops, void *app)
{
    gp_worker *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->env.cfg = a->cfg;
    w->env.ops = ops;
    w->env.app = app;
    /* HTTP/2 unless --http 1; request threads stay HTTP/1.1's (exchange.h) */
    if (a->cfg->http != GP_HTTP_1 && a->cfg->threads <= 1) w->env.h2 = &gp_h2_entry_points;
    w->env.slot = &a->scoreboard->slots[a->slot];
    w->sb = a->scoreboard;
    w->master_pid = a->master_pid;
    w->wake_fd = a->wake_fd;
    atomic_store_explicit(&w->sb->app_async, ops->runs_as_tasks ? 2 : 1, memory_order_relaxed);
    gp_worker_env_clock(&w->env);
    if (setup(w, a) < 0) {
        gp_error("worker setup failed: %s", strerror(errno));
        return NULL;
    }
    if (a->cfg->max_requests) {
        unsigned long j = a->cfg->max_requests_jitter;
        srandom((unsigned)getpid() ^ (unsigned)w->env.now_ms);
        w->max_requests = a->cfg->max_requests + (j ? (uint64_t)random() % (j + 1) : 0);
    }
    if (a->cfg->threads > 1 && ops->thread_init && pool_start(w, a->cfg->threads) < 0) {
        gp_error("cannot start %d request threads: %s", a->cfg->threads, strerror(errno));
        return NULL;
    }
    /* tasks overlap on one loop: that loop's waits, not the requests in
     * progress, tell idle from busy; the loop is created by now */
    if (ops->runs_as_tasks && w->env.count_busy) gp_idle_track(w->env.slot);
    return w;
}

int gp_worker_fd(gp_worker *w)
{
    return w->loop.epfd;
}

/* Every connection left is a request whose thread has run past --timeout:
 * the master has dumped its traceback and asked us to stop; waiting on for
 * it would only delay the kill. */
static bool only_stuck_left(gp_worker *w)
{
    gp_pool *p = w->env.pool;
    uint64_t limit_ms = (uint64_t)(w->env.cfg->timeout * 1000);
    if (!p || !limit_ms) return false;
    size_t stuck = 0;
    for (int i = 0; i < p->threads; i++) {
        uint64_t t = atomic_load_explicit(&p->slots[i].started_ms, memory_order_acquire);
        stuck += t && w->env.now_ms > t && w->env.now_ms - t > limit_ms;
    }
    return stuck && stuck >= *w->num_conns;
}

int gp_worker_done(gp_worker *w)
{
    return w->env.stopping && (*w->num_conns == 0 || only_stuck_left(w));
}

double gp_worker_stop_left(const gp_worker *w)
{
    if (!w->env.stopping) return w->env.cfg->graceful_timeout;
    double left = w->stop_deadline - w->env.now;
    return left > 0 ? left : 0;
}

/* Past the graceful timeout, what is still open is cut: tasks are cancelled
 * through the app's abort callback. */
static void cut_stragglers(gp_worker *w)
{
    if (!w->env.stopping || w->env.now < w->stop_deadline) return;
    for (gp_stream *s = gp_conns_first(w->conns), *next; s; s = next) {
        next = gp_conns_next(s);
        s->proto->on_close(s); /* a request thread's is left for later */
    }
}

/* Serving ready connections in turn. A batch of events is what was ready
 * when the wait began: a keep-alive client whose next request arrives a
 * moment after that (the last one served before the wait, say) goes to the
 * back of the next batch, behind connections that became ready after it,
 * and with an app slow enough that is a whole round of waiting, on the same
 * connections every round. So after a turn that ran long (the sync app's
 * own clock update says so), the loop takes one event per wait, in the
 * order the kernel saw them become ready: the extra wait costs little next
 * to such a turn. Fast turns return to batches after FIFO_HOLD_TURNS. */
#define FIFO_SLOW_MS 2 /* a difference of 2 on the ms clock: at least 1 ms ran */
#define FIFO_HOLD_TURNS 16

static inline void pace_batch(gp_worker *w, uint64_t began_ms)
{
    if (w->env.now_ms - began_ms >= FIFO_SLOW_MS) {
        w->fifo_turns = FIFO_HOLD_TURNS;
        w->loop.batch = 1;
    } else if (w->fifo_turns && !--w->fifo_turns) {
        w->loop.batch = GP_LOOP_BATCH;
    }
}

int gp_worker_turn(gp_worker *w, int timeout_ms)
{
    const gp_app_ops *ops = w->env.ops;
    if (timeout_ms && ops->before_wait) ops->before_wait(w->env.app);
    gp_loop_wait(&w->loop, timeout_ms);
    if (timeout_ms && ops->after_wait) ops->after_wait(w->env.app);
    gp_worker_env_clock(&w->env);
    uint64_t began_ms = w->env.now_ms;
    gp_loop_dispatch(&w->loop);
    pace_batch(w, began_ms);
    if (w->num_fresh) expire_fresh(w);
    /* --max-requests: counted by the connections, acted on here */
    if (w->max_requests && !w->retire_asked &&
        atomic_load_explicit(&w->env.slot->requests, memory_order_relaxed) >= w->max_requests)
        worker_retire(w, GP_RETIRE_MAX_REQUESTS);
    update_accepting(w);
    free_dead(w);
    cut_stragglers(w);
    arm_deadline(w);
    return !gp_worker_done(w);
}

int gp_worker_run(const gp_worker_args *a, const gp_app_ops *ops, void *app)
{
    gp_worker *w = gp_worker_create(a, ops, app);
    if (!w) return GP_EXIT_BOOT_ERROR;
    if (gp_worker_accept(w) < 0) return GP_EXIT_ERROR;
    while (gp_worker_turn(w, -1)) {
    }
    return GP_EXIT_OK;
}
