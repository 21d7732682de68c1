/* metrics: counting in the workers, exposition in the master; see metrics.h. */
#include "core/metrics.h"

#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/machine.h"

const uint64_t gp_metrics_bounds_us[GP_METRICS_BUCKETS - 1] = {
    500,    1000,   2500,    5000,    10000,   25000,    50000,    100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000,
};

/* The bounds as Prometheus reads them ("le" labels). */
static const char *const bound_text[GP_METRICS_BUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25",   "0.5",   "1",      "2.5",   "5",    "10",    "30",   "+Inf",
};

static const char *const class_text[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

static const char *const reason_text[GP_RESTART_REASONS] = {"crash", "timeout", "max_requests",
                                                            "memory", "reload"};

static const char *const state_text[] = {"empty", "starting", "idle", "busy", "retiring"};

int gp_metrics_bucket(uint64_t dur_us)
{
    int i = 0;
    while (i < GP_METRICS_BUCKETS - 1 && dur_us > gp_metrics_bounds_us[i]) i++;
    return i;
}

/* ---- worker side: one writer per slot, so plain relaxed loads and stores ---- */

#define LOAD(f) atomic_load_explicit(&(f), memory_order_relaxed)
#define STORE(f, v) atomic_store_explicit(&(f), (v), memory_order_relaxed)

static inline void busy_open(gp_slot *s, uint64_t now_us)
{
    STORE(s->m_busy_since_us, now_us);
}

/* The total grows before the open period is cleared, so a reader that sees
 * neither change, or both, never counts less than before (read_busy). */
static inline void busy_close(gp_slot *s, uint64_t now_us)
{
    uint64_t since = LOAD(s->m_busy_since_us);
    if (since && now_us > since) STORE(s->m_busy_us, LOAD(s->m_busy_us) + (now_us - since));
    atomic_store_explicit(&s->m_busy_since_us, 0, memory_order_release);
}

void gp_metrics_busy_open(gp_slot *s, uint64_t now_us)
{
    busy_open(s, now_us);
}

void gp_metrics_busy_close(gp_slot *s, uint64_t now_us)
{
    busy_close(s, now_us);
}

/* The state a worker shows (gallop top, gallop_worker_state) is busy while
 * any request is in flight, whether it runs as a call or as a task; only an
 * idle or busy worker changes, so a worker that is stopping says so to the
 * master (reload, balancing) until it exits. */
static inline void show_state(gp_slot *s, int from, int to)
{
    /* one step, not a load and a store: the loop may mark the slot stopping
     * meanwhile (worker.c), and a request thread must not write it back */
    atomic_compare_exchange_strong_explicit(&s->state, &from, to, memory_order_relaxed,
                                            memory_order_relaxed);
}

void gp_metrics_begin(gp_slot *s, uint64_t now)
{
    uint32_t n = LOAD(s->m_in_flight);
    if (n == 0) {
        if (!LOAD(s->m_busy_loop)) busy_open(s, now);
        show_state(s, GP_WS_IDLE, GP_WS_BUSY);
    }
    STORE(s->m_in_flight, n + 1);
}

/* One fewer in progress; the busy period closes with the last one. */
static void leave(gp_slot *s, uint64_t now)
{
    uint32_t n = LOAD(s->m_in_flight);
    if (n == 0) return;
    STORE(s->m_in_flight, n - 1);
    if (n == 1) {
        if (!LOAD(s->m_busy_loop)) busy_close(s, now);
        show_state(s, GP_WS_BUSY, GP_WS_IDLE);
    }
}

void gp_metrics_end(gp_slot *s, uint64_t start_us, uint64_t now, int status)
{
    uint64_t dur = now > start_us ? now - start_us : 0;
    int cls = status / 100 - 1;
    if (cls < 0 || cls > 4) cls = 4; /* no status sent: counted as the 500 it was */
    int b = gp_metrics_bucket(dur);
    STORE(s->m_status[cls], LOAD(s->m_status[cls]) + 1);
    STORE(s->m_hist[b], LOAD(s->m_hist[b]) + 1);
    STORE(s->m_dur_us, LOAD(s->m_dur_us) + dur);
    leave(s, now);
}

void gp_metrics_drop(gp_slot *s, uint64_t now)
{
    leave(s, now);
}

/* ---- master side ------------------------------------------------------------- */

/* Busy time including the open period; retried while the worker closes one
 * under our eyes, so the value never runs ahead of a later read. */
static uint64_t read_busy(const gp_slot *s, uint64_t now_us)
{
    for (int tries = 0; tries < 8; tries++) {
        uint64_t a = atomic_load_explicit(&s->m_busy_us, memory_order_acquire);
        uint64_t since = atomic_load_explicit(&s->m_busy_since_us, memory_order_acquire);
        uint64_t b = atomic_load_explicit(&s->m_busy_us, memory_order_acquire);
        if (a == b) return a + (since && now_us > since ? now_us - since : 0);
    }
    return atomic_load_explicit(&s->m_busy_us, memory_order_acquire);
}

void gp_metrics_read_slot(const gp_slot *s, uint64_t now_us, gp_metrics_worker *out)
{
    memset(out, 0, sizeof *out);
    out->pid = LOAD(s->pid);
    out->generation = LOAD(s->generation);
    out->state = LOAD(s->state);
    for (int i = 0; i < 5; i++) out->status[i] = LOAD(s->m_status[i]);
    out->in_flight = LOAD(s->m_in_flight);
    out->busy_us = read_busy(s, now_us);
    out->conns = LOAD(s->conns);
    out->rss_bytes = LOAD(s->rss_kb) * 1024;
    for (int i = 0; i < GP_METRICS_BUCKETS; i++) out->hist[i] = LOAD(s->m_hist[i]);
    out->dur_us = LOAD(s->m_dur_us);
}

void gp_metrics_fold(gp_metrics_totals *t, const gp_slot *s, double cpu_s)
{
    for (int i = 0; i < 5; i++) t->status[i] += LOAD(s->m_status[i]);
    for (int i = 0; i < GP_METRICS_BUCKETS; i++) t->hist[i] += LOAD(s->m_hist[i]);
    t->dur_us += LOAD(s->m_dur_us);
    t->busy_us += read_busy(s, 0); /* a dead worker's open period never closed: not counted */
    t->cpu_s += cpu_s;
}

static int head(gp_mbuf *o, const char *name, const char *type, const char *help)
{
    return gp_mbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One worker's series of the duration histogram: cumulative buckets, sum, count. */
static int histogram(gp_mbuf *o, const char *worker, const uint64_t hist[GP_METRICS_BUCKETS],
                     uint64_t dur_us)
{
    int rc = 0;
    uint64_t cum = 0;
    for (int b = 0; b < GP_METRICS_BUCKETS; b++) {
        cum += hist[b];
        rc |= gp_mbuf_printf(
            o, "gallop_request_duration_seconds_bucket{worker=\"%s\",le=\"%s\"} %llu\n", worker,
            bound_text[b], (unsigned long long)cum);
    }
    rc |= gp_mbuf_printf(o, "gallop_request_duration_seconds_sum{worker=\"%s\"} %.6f\n", worker,
                         (double)dur_us / 1e6);
    rc |= gp_mbuf_printf(o, "gallop_request_duration_seconds_count{worker=\"%s\"} %llu\n", worker,
                         (unsigned long long)cum);
    return rc;
}

int gp_metrics_render(const gp_metrics_view *v, gp_mbuf *o)
{
    int rc = 0;
    const gp_metrics_totals *g = v->gone;

    rc |= head(o, "gallop_requests_total", "counter",
               "Requests answered, by worker pid and status class (worker=\"exited\": workers "
               "that are gone).");
    for (int i = 0; i < v->num_workers; i++)
        for (int c = 0; c < 5; c++)
            rc |= gp_mbuf_printf(o, "gallop_requests_total{worker=\"%d\",code=\"%s\"} %llu\n",
                                 (int)v->workers[i].pid, class_text[c],
                                 (unsigned long long)v->workers[i].status[c]);
    for (int c = 0; c < 5; c++)
        rc |= gp_mbuf_printf(o, "gallop_requests_total{worker=\"exited\",code=\"%s\"} %llu\n",
                             class_text[c], (unsigned long long)g->status[c]);

    rc |= head(o, "gallop_request_duration_seconds", "histogram",
               "Time from a complete request head to the end of its response, by worker pid "
               "(worker=\"exited\": workers that are gone).");
    for (int i = 0; i < v->num_workers; i++) {
        char pid[16];
        snprintf(pid, sizeof pid, "%d", (int)v->workers[i].pid);
        rc |= histogram(o, pid, v->workers[i].hist, v->workers[i].dur_us);
    }
    rc |= histogram(o, "exited", g->hist, g->dur_us);

    rc |= head(o, "gallop_requests_in_flight", "gauge", "Requests in progress, by worker pid.");
    for (int i = 0; i < v->num_workers; i++)
        rc |= gp_mbuf_printf(o, "gallop_requests_in_flight{worker=\"%d\"} %llu\n",
                             (int)v->workers[i].pid, (unsigned long long)v->workers[i].in_flight);

    rc |= head(o, "gallop_worker_busy_seconds_total", "counter",
               "Time a worker had at least one request in progress (ASGI: time its event "
               "loop was not waiting for events).");
    for (int i = 0; i < v->num_workers; i++)
        rc |= gp_mbuf_printf(o, "gallop_worker_busy_seconds_total{worker=\"%d\"} %.6f\n",
                             (int)v->workers[i].pid, (double)v->workers[i].busy_us / 1e6);
    rc |= gp_mbuf_printf(o, "gallop_worker_busy_seconds_total{worker=\"exited\"} %.6f\n",
                         (double)g->busy_us / 1e6);

    rc |= head(o, "gallop_connections_open", "gauge", "Client connections a worker holds.");
    for (int i = 0; i < v->num_workers; i++)
        rc |= gp_mbuf_printf(o, "gallop_connections_open{worker=\"%d\"} %llu\n",
                             (int)v->workers[i].pid, (unsigned long long)v->workers[i].conns);

    rc |= head(o, "gallop_worker_resident_memory_bytes", "gauge",
               "Resident memory of a worker (/proc/PID/statm).");
    for (int i = 0; i < v->num_workers; i++)
        rc |= gp_mbuf_printf(o, "gallop_worker_resident_memory_bytes{worker=\"%d\"} %llu\n",
                             (int)v->workers[i].pid, (unsigned long long)v->workers[i].rss_bytes);

    rc |= head(o, "gallop_worker_cpu_seconds_total", "counter",
               "User and system CPU time of a worker (/proc/PID/stat).");
    for (int i = 0; i < v->num_workers; i++)
        rc |= gp_mbuf_printf(o, "gallop_worker_cpu_seconds_total{worker=\"%d\"} %.2f\n",
                             (int)v->workers[i].pid, v->workers[i].cpu_s);
    rc |= gp_mbuf_printf(o, "gallop_worker_cpu_seconds_total{worker=\"exited\"} %.2f\n", g->cpu_s);

    rc |= head(o, "gallop_worker_state", "gauge",
               "1 for the state a worker is in (starting, idle, busy, retiring).");
    for (int i = 0; i < v->num_workers; i++) {
        int st = v->workers[i].state;
        if (st < GP_WS_BOOTING || st > GP_WS_STOPPING) continue;
        rc |= gp_mbuf_printf(o, "gallop_worker_state{worker=\"%d\",state=\"%s\"} 1\n",
                             (int)v->workers[i].pid, state_text[st]);
    }

    rc |= head(o, "gallop_worker_restarts_total", "counter",
               "Workers the master replaced, by reason.");
    for (int r = 0; r < GP_RESTART_REASONS; r++)
        rc |= gp_mbuf_printf(o, "gallop_worker_restarts_total{reason=\"%s\"} %llu\n",
                             reason_text[r], (unsigned long long)g->restarts[r]);

    rc |= head(o, "gallop_listen_queue_depth", "gauge",
               "Connections waiting in a listener's accept queue (TCP_INFO).");
    for (int i = 0; i < v->num_listeners; i++)
        if (v->listeners[i].has_queue)
            rc |= gp_mbuf_printf(o, "gallop_listen_queue_depth{listener=\"%s\"} %u\n",
                                 v->listeners[i].name, v->listeners[i].depth);
    rc |= head(o, "gallop_listen_queue_limit", "gauge",
               "The accept queue's limit (the backlog the kernel applies).");
    for (int i = 0; i < v->num_listeners; i++)
        if (v->listeners[i].has_queue)
            rc |= gp_mbuf_printf(o, "gallop_listen_queue_limit{listener=\"%s\"} %u\n",
                                 v->listeners[i].name, v->listeners[i].limit);

    rc |= head(o, "gallop_workers", "gauge", "Worker processes: running now, and wanted.");
    rc |= gp_mbuf_printf(
        o, "gallop_workers{kind=\"current\"} %d\ngallop_workers{kind=\"target\"} %d\n",
        v->workers_current, v->workers_target);

    rc |= head(o, "gallop_build_info", "gauge", "The gallop version serving.");
    rc |= gp_mbuf_printf(o, "gallop_build_info{version=\"%s\"} 1\n", v->version);
    return rc ? -1 : 0;
}

int gp_metrics_parse_stat(const char *text, long ticks_per_s, double *cpu_s)
{
    /* the command name may hold spaces and parentheses: fields count from the last ')' */
    const char *p = strrchr(text, ')');
    if (!p || ticks_per_s <= 0) return -1;
    p++;
    /* after ")": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt
     * majflt cmajflt utime(14) stime(15) */
    unsigned long long ut = 0, st = 0;
    if (sscanf(p, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    *cpu_s = (double)(ut + st) / (double)ticks_per_s;
    return 0;
}

int gp_metrics_parse_statm(const char *text, long page_size, uint64_t *rss_bytes)
{
    unsigned long long size, resident;
    if (page_size <= 0 || sscanf(text, "%llu %llu", &size, &resident) != 2) return -1;
    *rss_bytes = resident * (uint64_t)page_size;
    return 0;
}

int gp_metrics_proc(pid_t pid, double *cpu_s, uint64_t *rss_bytes)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (gp_machine_read_text(path, buf, sizeof buf) < 0 ||
        gp_metrics_parse_stat(buf, sysconf(_SC_CLK_TCK), cpu_s) < 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    if (gp_machine_read_text(path, buf, sizeof buf) < 0 ||
        gp_metrics_parse_statm(buf, sysconf(_SC_PAGESIZE), rss_bytes) < 0)
        return -1;
    return 0;
}

/* TCP: on a LISTEN socket TCP_INFO reports the accept queue's length in
 * tcpi_unacked and its limit in tcpi_sacked. */
static int tcp_queue(int fd, uint32_t *depth, uint32_t *limit)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 || ti.tcpi_state != 10)
        return -1; /* 10: TCP_LISTEN */
    *depth = ti.tcpi_unacked;
    *limit = ti.tcpi_sacked;
    return 0;
}

/* UNIX: sock_diag for this socket's inode; for a listener the "receive
 * queue" is the accept queue and the "send queue" its limit. */
static int unix_queue(int fd, uint32_t *depth, uint32_t *limit)
{
    struct stat st;
    if (fstat(fd, &st) < 0) return -1;
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0) return -1;
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000}; /* the kernel answers at once */
    setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct {
        struct nlmsghdr nh;
        struct unix_diag_req req;
    } msg = {.nh = {.nlmsg_len = sizeof msg,
                    .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                    .nlmsg_flags = NLM_F_REQUEST},
             .req = {.sdiag_family = AF_UNIX,
                     .udiag_states = 1u << 10, /* TCP_LISTEN */
                     .udiag_ino = (uint32_t)st.st_ino,
                     .udiag_show = UDIAG_SHOW_RQLEN,
                     .udiag_cookie = {~0u, ~0u}}};
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    int rc = -1;
    char buf[1024] __attribute__((aligned(NLMSG_ALIGNTO)));
    if (sendto(nl, &msg, sizeof msg, 0, (struct sockaddr *)&sa, sizeof sa) != sizeof msg) goto done;
    ssize_t n = recv(nl, buf, sizeof buf, 0);
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; n > 0 && NLMSG_OK(h, (size_t)n);
         h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) break;
        struct unix_diag_msg *m = NLMSG_DATA(h);
        int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
        for (struct nlattr *a = (struct nlattr *)(m + 1);
             alen >= (int)sizeof *a && a->nla_len >= sizeof *a && a->nla_len <= alen;
             alen -= NLA_ALIGN(a->nla_len),
                           a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len))) {
            if (a->nla_type == UNIX_DIAG_RQLEN &&
                a->nla_len >= NLA_HDRLEN + sizeof(struct unix_diag_rqlen)) {
                struct unix_diag_rqlen *q = (struct unix_diag_rqlen *)((char *)a + NLA_HDRLEN);
                *depth = q->udiag_rqueue;
                *limit = q->udiag_wqueue;
                rc = 0;
            }
        }
        break;
    }
done:
    close(nl);
    return rc;
}

int gp_metrics_listen_queue(int fd, bool unix_socket, uint32_t *depth, uint32_t *limit)
{
    if (fd < 0) return -1;
    return unix_socket ? unix_queue(fd, depth, limit) : tcp_queue(fd, depth, limit);
}
