/* tune: how many workers and threads an app wants, measured; see tune.h.
 *
 * For each configuration it starts `gallop APP --bind 127.0.0.1:PORT
 * --workers N --threads T` from its own binary, waits for the master's
 * READY=1 (sd_notify on a socket of its own, so every worker has loaded the
 * app), warms up, then drives it with core/loadgen for --duration seconds
 * while it samples each worker's CPU time, run-queue wait and RSS (/proc).
 * Closed loop by default, with enough connections to keep every worker
 * busy, so a worker's CPU time over the time it could run (wall time less
 * its wait for a CPU) is its CPU per busy second, whatever else the machine
 * runs. It never stops a process it did not start, and stops the ones it
 * started by pid. */
#include "core/tune.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/cpus.h"
#include "core/http_parser.h"
#include "core/loadgen.h"
#include "core/metrics.h"
#include "core/svg.h"

#define TUNE_MAX_POINTS 32
#define TUNE_MAX_W 256 /* workers sampled per configuration */
#define TUNE_MAX_PATHS 16
#define TUNE_MAX_PASS 128
#define TUNE_MAX_THREADS 64
#define TUNE_GAIN 0.05      /* less than this much more req/s: no better */
#define TUNE_CPU_BOUND 0.60 /* CPU per busy second at or above: CPU-bound */
#define TUNE_MIN_DURATION 0.5
#define TUNE_MEM_MARGIN 0.9 /* of the memory available, what workers may take */
#define TUNE_NOISY 0.15     /* runqueue wait over wall time: other processes are in the way */

enum { TUNE_USAGE = 2, TUNE_FAILED = 1, TUNE_INTERRUPTED = 130 };

typedef struct {
    int workers, threads, concurrency, nw;
    double rps, p50_ms, p99_ms, cpu_ms_per_req, cpu_busy, rss_mb, elapsed_s, loadgen_cpu;
    double cpu[TUNE_MAX_W], rss[TUNE_MAX_W]; /* each worker: CPU / wall, MB */
    double busy[TUNE_MAX_W]; /* each worker: CPU / (wall - waiting for a CPU) */
    double wait[TUNE_MAX_W]; /* each worker: runqueue wait / wall */
    uint64_t responses, errors, status[6];
    char error[160];
} tune_point;

typedef struct {
    const char *app;
    const char *paths[TUNE_MAX_PATHS];
    int num_paths;
    const char *method, *body_file, *plot, *interface;
    char *body;
    size_t body_len;
    double duration, rate, memory_mb; /* memory_mb: --memory, 0 for what the machine has */
    int concurrency;
    bool json;
    const char *pass[TUNE_MAX_PASS];
    int num_pass;
    /* found out */
    char exe[PATH_MAX];
    gp_cpus cpus;
    double mem_mb;
    char mem_why[96];
    bool asgi, interface_known;
    tune_point pts[TUNE_MAX_POINTS];
    int num_pts;
    FILE *out; /* the table and the verdict: stdout, stderr under --json */
    double t0;
    int runs;
    bool remeasuring;
    /* the configuration being measured */
    pid_t master;
    int num_w;
    pid_t wpid[TUNE_MAX_W];
    double wcpu0[TUNE_MAX_W], wwait0[TUNE_MAX_W];
    struct rusage self0;
} tune;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage_error(const char *fmt, const char *a)
{
    fprintf(stderr, "gallop: error: tune: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n");
    return TUNE_USAGE;
}

static const char tune_usage[] =
    "usage: gallop tune MODULE[:ATTRIBUTE] [OPTIONS] [APP OPTIONS]\n"
    "\n"
    "Measure the app under gallop at growing worker (and, for sync WSGI, thread)\n"
    "counts with gallop's own load generator over loopback, then print a table and\n"
    "the --workers/--threads to deploy with.\n"
    "\n"
    "      --path PATH        the URL path to request (repeatable, taken in turn; /)\n"
    "      --method M         the request method (GET, or POST with --body)\n"
    "      --body FILE        send FILE's bytes as the request body\n"
    "      --duration S       seconds measured per configuration (5; at least 0.5)\n"
    "      --concurrency C    connections (default: 2 x workers x threads, at least 8;\n"
    "                         64 for ASGI)\n"
    "      --rate R           open loop: R requests/s on a fixed schedule, latency from\n"
    "                         when each was due (default: closed loop, as fast as it goes)\n"
    "      --plot FILE.svg    draw req/s and p99 against workers x threads\n"
    "      --memory MB        plan for this much memory (default: MemAvailable, or what\n"
    "                         the cgroup's memory.max leaves, if less)\n"
    "      --json             the measurements and the recommendation as JSON on stdout\n"
    "  App options (--chdir, --pythonpath, --env, --interface, --venv ...) are passed\n"
    "  to the gallop it starts; --bind, --workers and --threads are tune's to choose.\n"
    "Exit codes: 0 done, 1 the measurement failed, 2 bad input (flag, app that does\n"
    "not load, path answering 5xx).\n";

/* Flags tune sets itself on the gallop it starts. */
static const char *const owned[] = {"bind", "workers", "threads", "host", "port", "uds", "fd",
                                    "reload", "check-config", "workers-min", "workers-max",
                                    "workers-formula", NULL};

static int read_body(tune *t)
{
    FILE *f = fopen(t->body_file, "re");
    if (!f) return usage_error("cannot read --body %s", t->body_file);
    t->body = malloc(16 << 20);
    t->body_len = t->body ? fread(t->body, 1, 16 << 20, f) : 0;
    bool big = t->body && fgetc(f) != EOF;
    fclose(f);
    if (!t->body || big) return usage_error("--body %s: more than 16 MiB", t->body_file);
    return 0;
}

static int parse_num(const char *flag, const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double d = v ? strtod(v, &end) : 0;
    if (!v || errno || end == v || *end || !(d >= lo && d <= hi)) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s wants a number from %g to %g, not '%%s'", flag, lo, hi);
        return usage_error(msg, v ? v : "");
    }
    *out = d;
    return 0;
}

static int parse_args(tune *t, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(tune_usage, stdout);
            return -1;
        }
        if (a[0] != '-') {
            if (t->app) return usage_error("one app only, but also '%s'", a);
            t->app = a;
            continue;
        }
        /* --name=value or --name value */
        char name[64];
        const char *eq = strchr(a, '=');
        const char *val = NULL;
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        if (n >= sizeof name) return usage_error("unknown flag %s (see gallop tune --help)", a);
        memcpy(name, a, n);
        name[n] = 0;
        bool ours = !strcmp(name, "--path") || !strcmp(name, "--method") ||
                    !strcmp(name, "--body") || !strcmp(name, "--duration") ||
                    !strcmp(name, "--concurrency") || !strcmp(name, "--rate") ||
                    !strcmp(name, "--plot") || !strcmp(name, "--memory");
        if (ours) {
            val = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
            if (!val) return usage_error("%s needs a value", name);
            double d;
            if (!strcmp(name, "--path")) {
                if (val[0] != '/' || strpbrk(val, " \r\n\t"))
                    return usage_error("--path must start with / and hold no spaces: '%s'", val);
                if (t->num_paths == TUNE_MAX_PATHS) return usage_error("too many --path%s", "");
                t->paths[t->num_paths++] = val;
            } else if (!strcmp(name, "--method")) {
                for (const char *p = val; *p; p++)
                    if (!((*p >= 'A' && *p <= 'Z') || *p == '-'))
                        return usage_error("--method must be an upper-case token: '%s'", val);
                if (!*val) return usage_error("--method must not be empty%s", "");
                t->method = val;
            } else if (!strcmp(name, "--body")) {
                t->body_file = val;
            } else if (!strcmp(name, "--plot")) {
                t->plot = val;
            } else if (!strcmp(name, "--memory")) {
                if (parse_num(name, val, 1, 1 << 30, &t->memory_mb)) return TUNE_USAGE;
            } else if (!strcmp(name, "--duration")) {
                if (parse_num(name, val, 0, 3600, &t->duration)) return TUNE_USAGE;
                if (t->duration < TUNE_MIN_DURATION)
                    return usage_error("--duration %s is too short to measure (at least 0.5 s)",
                                       val);
            } else if (!strcmp(name, "--concurrency")) {
                if (parse_num(name, val, 1, 10000, &d) || d != (int)d)
                    return usage_error("--concurrency wants a whole number from 1 to 10000%s",
                                       "");
                t->concurrency = (int)d;
            } else if (parse_num(name, val, 0.1, 1e6, &t->rate)) {
                return TUNE_USAGE;
            }
            continue;
        }
        if (!strcmp(a, "--json")) {
            t->json = true;
            continue;
        }
        /* the app's flags, for the gallop that tune starts */
        int has;
        if (name[1] != '-') {
            /* -e KEY=V, -c FILE, -k CLASS, -t S, -p FILE, -u, -g, -m */
            if (strlen(name) != 2 || !strchr("ecktpugm", name[1]))
                return usage_error(strlen(name) == 2 && strchr("bw", name[1])
                                       ? "%s is tune's to choose"
                                       : "unknown flag %s (see gallop tune --help)",
                                   name);
            has = 1;
        } else {
            for (int k = 0; owned[k]; k++)
                if (!strcmp(name + 2, owned[k])) return usage_error("%s is tune's to choose", name);
            has = gp_config_has_flag(name + 2);
            if (has < 0) return usage_error("unknown flag %s (see gallop tune --help)", name);
        }
        if (t->num_pass + 2 > TUNE_MAX_PASS) return usage_error("too many app flags%s", "");
        t->pass[t->num_pass++] = a;
        if (has == 1 && !eq) {
            if (i + 1 >= argc) return usage_error("%s needs a value", name);
            val = argv[++i];
            t->pass[t->num_pass++] = val;
        } else {
            val = eq ? eq + 1 : NULL;
        }
        if (!strcmp(name, "--interface") && val) t->interface = val;
    }
    if (!t->app) return usage_error("which app? usage: gallop tune MODULE:APP [OPTIONS]%s", "");
    if (!t->num_paths) t->paths[t->num_paths++] = "/";
    if (t->body_file && read_body(t)) return TUNE_USAGE;
    if (!t->method) t->method = t->body_file ? "POST" : "GET";
    if (t->interface) {
        t->interface_known = true;
        t->asgi = !strncmp(t->interface, "asgi", 4);
    }
    return 0;
}

/* ---- the machine ---- */

static double read_kb_line(const char *path, const char *key)
{
    FILE *f = fopen(path, "re");
    char line[256];
    double v = -1;
    size_t k = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, k)) v = atof(line + k);
    if (f) fclose(f);
    return v;
}

/* MemAvailable, or what our cgroup v2 may still take if that is less. */
static void memory_available(tune *t)
{
    t->mem_mb = read_kb_line("/proc/meminfo", "MemAvailable:") / 1024;
    snprintf(t->mem_why, sizeof t->mem_why, "MemAvailable");
    FILE *f = fopen("/proc/self/cgroup", "re");
    char line[512], path[700], buf[64];
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3)) continue;
        line[strcspn(line, "\n")] = 0;
        for (char *end = line + strlen(line); end >= line + 3; end--) {
            /* an ancestor's limit binds too: walk up */
            *end = 0;
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", line + 3);
            FILE *m = fopen(path, "re");
            if (m && fgets(buf, sizeof buf, m) && strncmp(buf, "max", 3)) {
                double max = atof(buf);
                snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.current", line + 3);
                FILE *c = fopen(path, "re");
                double cur = c && fgets(buf, sizeof buf, c) ? atof(buf) : 0;
                if (c) fclose(c);
                double left = (max - cur) / (1 << 20);
                if (left < t->mem_mb || t->mem_mb < 0) {
                    t->mem_mb = left;
                    snprintf(t->mem_why, sizeof t->mem_why, "cgroup memory.max");
                }
                fclose(m);
                break;
            }
            if (m) fclose(m);
            while (end > line + 3 && end[-1] != '/') end--;
        }
    }
    fclose(f);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

/* ---- the gallop under test ---- */

typedef struct {
    pid_t pid;
    int log_fd, notify_fd;
} tune_child;

static pid_t spawn(tune *t, tune_child *c, int port, int workers, int threads)
{
    char bind_s[32], w_s[16], t_s[16], nname[80];
    snprintf(bind_s, sizeof bind_s, "127.0.0.1:%d", port);
    snprintf(w_s, sizeof w_s, "%d", workers);
    snprintf(t_s, sizeof t_s, "%d", threads);
    const char *argv[TUNE_MAX_PASS + 16];
    int n = 0;
    argv[n++] = t->exe;
    argv[n++] = t->app;
    argv[n++] = "--bind";
    argv[n++] = bind_s;
    argv[n++] = "--workers";
    argv[n++] = w_s;
    argv[n++] = "--threads";
    argv[n++] = t_s;
    argv[n++] = "--graceful-timeout";
    argv[n++] = "3";
    for (int i = 0; i < t->num_pass; i++) argv[n++] = t->pass[i];
    argv[n] = NULL;

    /* the log, appended to by the master and every worker */
    int mfd = memfd_create("gallop-tune-log", MFD_CLOEXEC);
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", mfd);
    c->log_fd = mfd >= 0 ? open(p, O_RDWR | O_APPEND | O_CLOEXEC) : -1;
    if (mfd >= 0) close(mfd);
    c->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int nl = snprintf(nname, sizeof nname, "@gallop-tune-%d-%d", (int)getpid(), t->runs++);
    memcpy(sa.sun_path, nname, (size_t)nl);
    sa.sun_path[0] = 0;
    if (c->log_fd < 0 || c->notify_fd < 0 ||
        bind(c->notify_fd, (struct sockaddr *)&sa,
             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)nl)) < 0)
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* our own group, so a Ctrl-C reaches tune, which stops us by pid; and
         * a tune that dies takes us along */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(1);
        dup2(c->log_fd, STDOUT_FILENO);
        dup2(c->log_fd, STDERR_FILENO);
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0) dup2(null, STDIN_FILENO);
        setenv("NOTIFY_SOCKET", nname, 1);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(t->exe, (char **)argv);
        _exit(127);
    }
    c->pid = pid;
    return pid;
}

/* TERM, a few seconds, then KILL; always reaps. */
static void stop_child(tune_child *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGTERM);
        int st;
        double until = mono() + 8;
        while (waitpid(c->pid, &st, WNOHANG) == 0) {
            if (mono() > until) {
                kill(c->pid, SIGKILL);
                waitpid(c->pid, &st, 0);
                break;
            }
            poll(NULL, 0, 20);
        }
        c->pid = 0;
    }
    if (c->log_fd >= 0) close(c->log_fd);
    if (c->notify_fd >= 0) close(c->notify_fd);
    c->log_fd = c->notify_fd = -1;
}

/* The log so far, NUL-terminated, at most len - 1 bytes from its start. */
static void read_log(const tune_child *c, char *buf, size_t len)
{
    ssize_t n = pread(c->log_fd, buf, len - 1, 0);
    buf[n > 0 ? n : 0] = 0;
}

/* The line that says why gallop stopped: its "gallop: error: " line, else
 * the first [ERROR] one, else the last line. */
static void log_reason(const tune_child *c, char *out, size_t len)
{
    static char log[1 << 16];
    read_log(c, log, sizeof log);
    const char *line = strstr(log, "gallop: error: ");
    if (line) line += 15;
    else if ((line = strstr(log, "[ERROR] "))) line += 8;
    else if ((line = strstr(log, "[CRITICAL] "))) line += 11;
    if (!line) {
        size_t n = strlen(log);
        while (n && log[n - 1] == '\n') log[--n] = 0;
        line = strrchr(log, '\n');
        line = line ? line + 1 : log;
    }
    snprintf(out, len, "%.*s", (int)strcspn(line, "\n"), line);
    if (!*out) snprintf(out, len, "it printed nothing");
}

/* Waits for READY=1. Returns 0, or the exit code for tune with why. */
static int wait_ready(tune_child *c, char *why, size_t len)
{
    double until = mono() + 90;
    while (!interrupted) {
        struct pollfd p = {.fd = c->notify_fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            char msg[600];
            ssize_t n = recv(c->notify_fd, msg, sizeof msg - 1, 0);
            msg[n > 0 ? n : 0] = 0;
            if (strstr(msg, "READY=1")) return 0;
        }
        int st;
        if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
            c->pid = 0;
            char reason[300];
            log_reason(c, reason, sizeof reason);
            int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            snprintf(why, len, "%s: %s (gallop exited %d)",
                     code == GP_EXIT_APP_ERROR  ? "the app did not load"
                     : code == GP_EXIT_USAGE    ? "gallop refused the app flags"
                                                : "gallop stopped before serving",
                     reason, code);
            return code == GP_EXIT_APP_ERROR || code == GP_EXIT_USAGE ? TUNE_USAGE : TUNE_FAILED;
        }
        if (mono() > until) {
            snprintf(why, len, "the app was not ready after 90 s");
            return TUNE_FAILED;
        }
    }
    snprintf(why, len, "interrupted");
    return TUNE_INTERRUPTED;
}

static int list_workers(pid_t master, pid_t *out, int max)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)master, (int)master);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    int k = 0;
    for (char *p = buf, *end; k < max; p = end) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        out[k++] = (pid_t)v;
    }
    return k;
}

/* A worker's CPU and runqueue-wait seconds, summed over its threads
 * (/proc/PID/task/TID/schedstat, nanoseconds), else its CPU time from
 * /proc/PID/stat and no wait. Waiting for a CPU is neither computing nor
 * waiting on I/O: on a shared machine it is what other processes took. */
static int worker_times(pid_t pid, double *cpu, double *wait)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    double run_ns = 0, wait_ns = 0;
    int tasks = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char sp[300], buf[128];
        snprintf(sp, sizeof sp, "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(sp, "re");
        unsigned long long r, w;
        if (f && fgets(buf, sizeof buf, f) && sscanf(buf, "%llu %llu", &r, &w) == 2) {
            run_ns += (double)r;
            wait_ns += (double)w;
            tasks++;
        }
        if (f) fclose(f);
    }
    if (d) closedir(d);
    if (tasks) {
        *cpu = run_ns / 1e9;
        *wait = wait_ns / 1e9;
        return 0;
    }
    uint64_t rss;
    *wait = 0;
    return gp_metrics_proc(pid, cpu, &rss);
}

static double rusage_s(const struct rusage *r)
{
    return (double)(r->ru_utime.tv_sec + r->ru_stime.tv_sec) +
           (double)(r->ru_utime.tv_usec + r->ru_stime.tv_usec) / 1e6;
}

/* loadgen's window opens: the workers' CPU times now. */
static void on_measure(void *ctx)
{
    tune *t = ctx;
    t->num_w = list_workers(t->master, t->wpid, TUNE_MAX_W);
    for (int i = 0; i < t->num_w; i++)
        if (worker_times(t->wpid[i], &t->wcpu0[i], &t->wwait0[i]) < 0) t->wpid[i] = 0;
    getrusage(RUSAGE_SELF, &t->self0);
}

static int build_requests(const tune *t, int port, char **texts, gp_lg_req *reqs)
{
    for (int i = 0; i < t->num_paths; i++) {
        size_t cap = strlen(t->paths[i]) + t->body_len + 256;
        if (!(texts[i] = malloc(cap))) return -1;
        int n = snprintf(texts[i], cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                         "User-Agent: gallop-tune\r\n", t->method, t->paths[i], port);
        if (t->body_file) {
            size_t k = 0;
            while (k < t->body_len && (t->body[k] == ' ' || t->body[k] == '\n')) k++;
            bool json = k < t->body_len && (t->body[k] == '{' || t->body[k] == '[');
            n += snprintf(texts[i] + n, cap - (size_t)n,
                          "Content-Type: %s\r\nContent-Length: %zu\r\n",
                          json ? "application/json" : "application/octet-stream", t->body_len);
        }
        n += snprintf(texts[i] + n, cap - (size_t)n, "\r\n");
        if (t->body_len) memcpy(texts[i] + n, t->body, t->body_len);
        reqs[i] = (gp_lg_req){.data = texts[i], .len = (size_t)n + t->body_len,
                              .head = !strcmp(t->method, "HEAD")};
    }
    return 0;
}

static void set_addr(gp_lg_opts *o, int port)
{
    struct sockaddr_in *sa = (struct sockaddr_in *)&o->addr;
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    o->addr_len = sizeof *sa;
}

/* The first time: one request to each path must answer, and not with 5xx. */
static int probe(tune *t, int port, const gp_lg_req *reqs, char *why, size_t len)
{
    for (int i = 0; i < t->num_paths; i++) {
        gp_lg_opts o = {.reqs = &reqs[i], .num_reqs = 1, .connections = 1, .duration_s = 60,
                        .max_requests = 1, .timeout_s = 30, .stop = &interrupted};
        set_addr(&o, port);
        gp_lg_result r;
        if (gp_lg_run(&o, &r) < 0) {
            snprintf(why, len, "cannot run the load generator");
            return TUNE_FAILED;
        }
        if (interrupted) return TUNE_INTERRUPTED;
        if (!r.responses) {
            snprintf(why, len, "%s %s got no answer: %s", t->method, t->paths[i],
                     r.error[0] ? r.error : "timed out");
            return TUNE_FAILED;
        }
        if (r.last_status >= 500) {
            snprintf(why, len, "%s %s answers %d %s; tune needs a path that works", t->method,
                     t->paths[i], r.last_status, gp_http_reason(r.last_status));
            return TUNE_USAGE;
        }
        if (r.last_status >= 400)
            fprintf(stderr, "tune: warning: %s %s answers %d; measuring it anyway\n", t->method,
                    t->paths[i], r.last_status);
    }
    return 0;
}

static int default_concurrency(const tune *t, int workers, int threads)
{
    if (t->concurrency) return t->concurrency;
    int c = 2 * workers * threads;
    int floor = t->asgi ? 64 : 8;
    return c < floor ? floor : c;
}

static int next_workers(int w, int cpus);

/* How many configurations the sweep can try at most: the worker counts,
 * then (sync WSGI, or not known yet) the thread counts. */
static int max_configs(const tune *t)
{
    int n = 1;
    for (int w = 1; (w = next_workers(w, t->cpus.usable)) <= t->cpus.usable + 1;) n++;
    if (!t->interface_known || !t->asgi)
        for (int th = 2; th <= TUNE_MAX_THREADS; th *= 2) n++;
    return n;
}

/* Measures one configuration into p. Returns 0 or an exit code (why set). */
static int measure(tune *t, int workers, int threads, tune_point *p, char *why, size_t len)
{
    memset(p, 0, sizeof *p);
    p->workers = workers;
    p->threads = threads;
    int port = free_port();
    tune_child c = {.log_fd = -1, .notify_fd = -1};
    char *texts[TUNE_MAX_PATHS] = {0};
    gp_lg_req reqs[TUNE_MAX_PATHS];
    int rc = TUNE_FAILED;
    fprintf(stderr, "tune: [%3.0fs] configuration %d of at most %d: %d worker%s x %d thread%s: "
            "starting\n",
            mono() - t->t0, t->num_pts + 1, max_configs(t), workers, workers == 1 ? "" : "s",
            threads, threads == 1 ? "" : "s");
    if (port < 0 || spawn(t, &c, port, workers, threads) < 0) {
        snprintf(why, len, "cannot start gallop: %s", strerror(errno));
        goto done;
    }
    t->master = c.pid;
    if ((rc = wait_ready(&c, why, len))) goto done;
    rc = TUNE_FAILED;
    if (build_requests(t, port, texts, reqs) < 0) {
        snprintf(why, len, "out of memory");
        goto done;
    }
    if (!t->interface_known) {
        static char log[1 << 16];
        read_log(&c, log, sizeof log);
        t->asgi = strstr(log, "] ASGI ") != NULL;
        t->interface_known = true;
        fprintf(stderr, "tune: the app is %s: trying %s\n", t->asgi ? "ASGI" : "WSGI",
                t->asgi ? "worker counts (one event loop each; threads are for sync WSGI)"
                        : "worker counts, then thread counts");
    }
    if (t->num_pts == 0 && (rc = probe(t, port, reqs, why, len))) goto done;
    p->concurrency = default_concurrency(t, workers, threads);
    double warm = t->duration * 0.3;
    warm = warm < 0.5 ? 0.5 : warm > 2 ? 2 : warm;
    fprintf(stderr, "tune: [%3.0fs] %dx%d: %d connections, %.1f s warm-up, measuring %.1f s\n",
            mono() - t->t0, workers, threads, p->concurrency, warm, t->duration);
    gp_lg_opts o = {.reqs = reqs, .num_reqs = t->num_paths, .connections = p->concurrency,
                    .rate = t->rate, .warmup_s = warm, .duration_s = t->duration,
                    .timeout_s = 30, .on_measure = on_measure, .ctx = t, .stop = &interrupted};
    set_addr(&o, port);
    static gp_lg_result r;
    if (gp_lg_run(&o, &r) < 0) {
        snprintf(why, len, "cannot run the load generator");
        goto done;
    }
    struct rusage self1;
    getrusage(RUSAGE_SELF, &self1);
    double cpu_sum = 0;
    for (int i = 0; i < t->num_w; i++) {
        double cpu, wait, ignored;
        uint64_t rss;
        if (!t->wpid[i] || worker_times(t->wpid[i], &cpu, &wait) < 0 ||
            gp_metrics_proc(t->wpid[i], &ignored, &rss) < 0)
            continue;
        double dc = cpu - t->wcpu0[i], dw = wait - t->wwait0[i], wall = r.elapsed_s;
        p->cpu[p->nw] = wall > 0 ? dc / wall : 0;
        p->wait[p->nw] = wall > 0 ? dw / wall : 0;
        double could_run = wall - dw > dc ? wall - dw : dc;
        p->busy[p->nw] = could_run > 0 ? dc / could_run : 0;
        p->rss[p->nw] = (double)rss / (1 << 20);
        cpu_sum += cpu - t->wcpu0[i];
        p->cpu_busy += p->cpu[p->nw];
        p->rss_mb += p->rss[p->nw];
        p->nw++;
    }
    if (p->nw) {
        p->cpu_busy /= p->nw;
        p->rss_mb /= p->nw;
    }
    if (interrupted) {
        rc = TUNE_INTERRUPTED;
        snprintf(why, len, "interrupted");
        goto done;
    }
    p->responses = r.responses;
    p->errors = r.errors;
    memcpy(p->status, r.status, sizeof p->status);
    p->elapsed_s = r.elapsed_s;
    p->rps = r.elapsed_s > 0 ? (double)r.responses / r.elapsed_s : 0;
    p->p50_ms = (double)gp_lg_hist_quantile(&r.hist, 0.50) / 1000;
    p->p99_ms = (double)gp_lg_hist_quantile(&r.hist, 0.99) / 1000;
    p->cpu_ms_per_req = r.responses ? cpu_sum * 1000 / (double)r.responses : 0;
    p->loadgen_cpu = r.elapsed_s > 0 ? (rusage_s(&self1) - rusage_s(&t->self0)) / r.elapsed_s : 0;
    snprintf(p->error, sizeof p->error, "%s", r.error);
    if (!r.responses) {
        snprintf(why, len, "%dx%d: no response in %.1f s: %s", workers, threads, r.elapsed_s,
                 r.error[0] ? r.error : "the app never answered");
        goto done;
    }
    rc = 0;
done:
    stop_child(&c);
    for (int i = 0; i < t->num_paths; i++) free(texts[i]);
    return rc;
}

/* ---- deciding ---- */

static bool usable(const tune *t, const tune_point *p)
{
    bool errs = p->errors * 100 > p->responses; /* over 1% failed */
    bool mem = t->mem_mb > 0 && p->workers * p->rss_mb > t->mem_mb * TUNE_MEM_MARGIN;
    return !errs && !mem;
}

static double best_rps(const tune *t)
{
    double b = 0;
    for (int i = 0; i < t->num_pts; i++)
        if (usable(t, &t->pts[i]) && t->pts[i].rps > b) b = t->pts[i].rps;
    return b;
}

/* The smallest configuration within TUNE_GAIN of the best throughput among
 * those with at most max_w workers and max_t threads: fewer workers first
 * (memory), then fewer threads. */
static int pick(const tune *t, int max_w, int max_t)
{
    double best = 0;
    int k = -1;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < t->num_pts; i++) {
            const tune_point *p = &t->pts[i];
            if (!usable(t, p) || p->workers > max_w || p->threads > max_t) continue;
            if (pass == 0) {
                if (p->rps > best) best = p->rps;
                continue;
            }
            /* open loop: every configuration that kept up with the rate will do */
            double enough = best * (1 - TUNE_GAIN);
            if (t->rate > 0 && enough > t->rate * 0.9) enough = t->rate * 0.9;
            if (p->rps < enough) continue;
            int size = p->workers * p->threads, ksize = k < 0 ? 0 : t->pts[k].workers * t->pts[k].threads;
            if (k < 0 || size < ksize || (size == ksize && p->workers < t->pts[k].workers)) k = i;
        }
    return k;
}

/* A worker on the CPU this much of the time it could run has no idle time
 * for a thread or an extra worker to fill: a gain measured there is noise. */
#define TUNE_ALL_CPU 0.90

static double busy_of_one(const tune *t)
{
    for (int i = 0; i < t->num_pts; i++)
        if (t->pts[i].workers == 1 && t->pts[i].threads == 1 && t->pts[i].nw)
            return t->pts[i].busy[0];
    return 0;
}

static int next_workers(int w, int cpus)
{
    int n = w < 4 ? w + 1 : w + w / 2;
    if (w < cpus && n > cpus) n = cpus;
    if (w == cpus) n = cpus + 1; /* just past the CPUs, the last one tried */
    return n;
}

static void progress_done(tune *t, const tune_point *p, double before)
{
    char gain[32] = "";
    if (before > 0) snprintf(gain, sizeof gain, ", %+.0f%% req/s", 100 * (p->rps / before - 1));
    fprintf(stderr,
            "tune: [%3.0fs] %dx%d: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %.2f CPU ms/req, "
            "%.0f%% CPU per worker%s%s\n",
            mono() - t->t0, p->workers, p->threads, p->rps, p->p50_ms, p->p99_ms,
            p->cpu_ms_per_req, 100 * p->cpu_busy, gain, p->errors ? " (errors)" : "");
}

static int run_point(tune *t, int workers, int threads)
{
    char why[512];
    double before = best_rps(t);
    if (t->num_pts == TUNE_MAX_POINTS) return 0;
    tune_point *p = &t->pts[t->num_pts];
    int rc = measure(t, workers, threads, p, why, sizeof why);
    if (rc) {
        if (rc == TUNE_INTERRUPTED) fprintf(stderr, "tune: interrupted\n");
        else fprintf(stderr, "gallop: error: tune: %s\n", why);
        return rc;
    }
    double wait = 0;
    for (int i = 0; i < p->nw; i++) wait += p->wait[i] / p->nw;
    if (threads == 1 && workers <= t->cpus.usable && wait > TUNE_NOISY && !t->remeasuring) {
        /* one thread each, no more workers than CPUs: the wait is another process's
         * (threads of one worker would wait for each other);
         * measure again and keep the better, as interference only slows */
        fprintf(stderr,
                "tune: [%3.0fs] %dx%d: %.0f req/s, but the workers waited %.0f%% of the time "
                "for a CPU other processes held: measuring again\n",
                mono() - t->t0, workers, threads, p->rps, 100 * wait);
        tune_point first = *p;
        t->remeasuring = true;
        rc = measure(t, workers, threads, p, why, sizeof why);
        t->remeasuring = false;
        if (rc) {
            fprintf(stderr, "gallop: error: tune: %s\n", why);
            return rc;
        }
        if (first.rps > p->rps) *p = first;
    }
    t->num_pts++;
    progress_done(t, p, before);
    return 0;
}

/* The gain of a point over the best before it, as a fraction. */
static double gain_over(double best_before, const tune_point *p)
{
    return best_before > 0 ? p->rps / best_before - 1 : 1;
}

static bool fits_memory(tune *t, int workers)
{
    const tune_point *last = &t->pts[t->num_pts - 1];
    if (t->mem_mb <= 0 || workers * last->rss_mb <= t->mem_mb * TUNE_MEM_MARGIN) return true;
    fprintf(stderr, "tune: %d workers of %.0f MB would not fit in %.0f MB (%s): stopping there\n",
            workers, last->rss_mb, t->mem_mb, t->mem_why);
    return false;
}

static int sweep(tune *t)
{
    int cpus = t->cpus.usable, rc, flat = 0;
    if ((rc = run_point(t, 1, 1))) return rc;
    for (int w = next_workers(1, cpus); w <= cpus + 1; w = next_workers(w, cpus)) {
        if (!fits_memory(t, w)) break;
        double before = best_rps(t);
        if ((rc = run_point(t, w, 1))) return rc;
        if (gain_over(before, &t->pts[t->num_pts - 1]) >= TUNE_GAIN) {
            flat = 0;
        } else if (w >= cpus || ++flat >= 2) {
            break; /* no better: below the CPUs, twice in a row, for the noise */
        }
    }
    if (t->asgi) return 0;
    int k = pick(t, INT_MAX, 1);
    int w = k >= 0 ? t->pts[k].workers : 1;
    /* all CPU: one step shows that threads do not help */
    int max_t = busy_of_one(t) >= TUNE_ALL_CPU ? 2 : TUNE_MAX_THREADS;
    for (int th = 2; th <= max_t; th *= 2) {
        double before = best_rps(t);
        if ((rc = run_point(t, w, th))) return rc;
        if (gain_over(before, &t->pts[t->num_pts - 1]) < TUNE_GAIN) break;
    }
    return 0;
}

static const tune_point *find_point(const tune *t, int workers, int threads)
{
    for (int i = 0; i < t->num_pts; i++)
        if (t->pts[i].workers == workers && t->pts[i].threads == threads) return &t->pts[i];
    return NULL;
}

/* The next larger configuration tried after pk along workers, or threads. */
static const tune_point *next_bigger(const tune *t, const tune_point *pk, bool by_threads)
{
    const tune_point *n = NULL;
    for (int i = 0; i < t->num_pts; i++) {
        const tune_point *p = &t->pts[i];
        bool along = by_threads ? p->workers == pk->workers && p->threads > pk->threads
                                : p->threads == pk->threads && p->workers > pk->workers;
        if (along && (!n || (by_threads ? p->threads < n->threads : p->workers < n->workers)))
            n = p;
    }
    return n;
}

static void cpu_cell(const tune_point *p, char *out, size_t len)
{
    if (p->nw <= 3) {
        size_t o = 0;
        out[0] = 0;
        for (int i = 0; i < p->nw && o < len; i++)
            o += (size_t)snprintf(out + o, len - o, "%s%.0f%%", i ? " " : "", 100 * p->cpu[i]);
        return;
    }
    double lo = p->cpu[0], hi = p->cpu[0];
    for (int i = 1; i < p->nw; i++) {
        if (p->cpu[i] < lo) lo = p->cpu[i];
        if (p->cpu[i] > hi) hi = p->cpu[i];
    }
    snprintf(out, len, "%.0f%% (%.0f-%.0f)", 100 * p->cpu_busy, 100 * lo, 100 * hi);
}

static void print_table(const tune *t, int k)
{
    FILE *f = t->out;
    fprintf(f, "\n%7s %7s %5s %9s %8s %8s %10s %-16s %8s %6s\n", "workers", "threads", "conns",
            "req/s", "p50 ms", "p99 ms", "CPU ms/req", "CPU per worker", "RSS MB", "errors");
    for (int i = 0; i < t->num_pts; i++) {
        const tune_point *p = &t->pts[i];
        char cpu[48];
        cpu_cell(p, cpu, sizeof cpu);
        fprintf(f, "%7d %7d %5d %9.1f %8.2f %8.2f %10.3f %-16s %8.1f %6llu%s\n", p->workers,
                p->threads, p->concurrency, p->rps, p->p50_ms, p->p99_ms, p->cpu_ms_per_req, cpu,
                p->rss_mb, (unsigned long long)(p->errors + p->status[5]),
                i == k ? "  <- pick" : "");
    }
    fputc('\n', f);
}

/* What the step after the pick did, or, at the end of what tune tries,
 * what the last step did. */
static void describe_next(const tune *t, const tune_point *pk, const tune_point *n,
                          bool by_threads, char *out, size_t len)
{
    const char *unit = by_threads ? "thread" : "worker";
    if (!n) {
        const tune_point *prev = NULL;
        for (int i = 0; i < t->num_pts; i++) {
            const tune_point *p = &t->pts[i];
            if (p != pk && (by_threads ? p->workers == pk->workers && p->threads < pk->threads
                                       : p->threads == pk->threads && p->workers < pk->workers))
                prev = p;
        }
        if (!prev) {
            snprintf(out, len, "no other %s count tried", unit);
            return;
        }
        int count = by_threads ? prev->threads : prev->workers;
        snprintf(out, len, "%+.0f%% req/s over %d %s%s, the most tune tries", 
                 100 * (pk->rps / prev->rps - 1), count, unit, count == 1 ? "" : "s");
        return;
    }
    int count = by_threads ? n->threads : n->workers;
    snprintf(out, len, "%d %s%s gave %+.0f%% req/s and %+.0f%% p99", count, unit,
             count == 1 ? "" : "s", 100 * (n->rps / pk->rps - 1),
             pk->p99_ms > 0 ? 100 * (n->p99_ms / pk->p99_ms - 1) : 0);
}

typedef struct {
    int k;
    bool cpu_bound;
    double busy;
    double contention; /* the 1x1 worker's runqueue wait over the wall time */
    bool unclassified; /* open loop that one worker carried: it was not kept busy */
    char line[400], verdict[600], memory[200], noisy[300];
} tune_verdict;

static void decide(const tune *t, tune_verdict *v)
{
    memset(v, 0, sizeof *v);
    const tune_point *one = find_point(t, 1, 1);
    v->busy = one && one->nw ? one->busy[0] : 0;
    v->cpu_bound = v->busy >= TUNE_CPU_BOUND;
    /* all CPU: more workers than CPUs, or threads, cannot add throughput;
     * what they seemed to add is another process's noise */
    v->k = v->busy >= TUNE_ALL_CPU ? pick(t, t->cpus.usable, 1) : -1;
    if (v->k < 0) v->k = pick(t, INT_MAX, INT_MAX);
    v->contention = one && one->nw ? one->wait[0] : 0;
    if (v->contention > 0.10)
        snprintf(v->noisy, sizeof v->noisy,
                 "warning: other processes held the CPUs: one worker alone waited %.0f%% of the "
                 "time for one, so req/s and latency are noisy (the CPU figures are not)",
                 100 * v->contention);
    if (v->k < 0) {
        const tune_point *p1 = &t->pts[0];
        if (t->mem_mb > 0 && p1->rss_mb > t->mem_mb * TUNE_MEM_MARGIN)
            snprintf(v->line, sizeof v->line,
                     "recommend: nothing fits: one worker takes %.1f MB, over 90%% of the %.0f MB "
                     "available (%s)",
                     p1->rss_mb, t->mem_mb, t->mem_why);
        else
            snprintf(v->line, sizeof v->line,
                     "recommend: nothing: every configuration failed over 1%% of its requests");
        return;
    }
    const tune_point *pk = &t->pts[v->k];
    /* the next step along the dimension that matters for this kind of app */
    bool by_threads = !t->asgi && !v->cpu_bound;
    const tune_point *n = next_bigger(t, pk, by_threads);
    char next[160];
    describe_next(t, pk, n, by_threads, next, sizeof next);
    const char *kind = v->cpu_bound ? "CPU-bound" : "I/O-bound";
    v->unclassified = t->rate > 0 && one && one->rps >= t->rate * 0.9;
    if (v->unclassified) {
        char threads[32] = "";
        if (!t->asgi) snprintf(threads, sizeof threads, " --threads %d", pk->threads);
        snprintf(v->line, sizeof v->line,
                 "recommend: --workers %d%s (keeps up with %g req/s: p99 %.2f ms; %s)",
                 pk->workers, threads, t->rate, pk->p99_ms, next);
        snprintf(v->verdict, sizeof v->verdict,
                 "open loop: one worker kept up with %g req/s, so no worker was kept busy; to "
                 "tell CPU-bound from I/O-bound, ask for a rate one worker cannot carry (or "
                 "leave --rate out)",
                 t->rate);
    } else if (t->asgi)
        snprintf(v->line, sizeof v->line,
                 "recommend: --workers %d (ASGI, %s: %.0f%% CPU per busy worker; %s)",
                 pk->workers, kind, 100 * v->busy, next);
    else
        snprintf(v->line, sizeof v->line,
                 "recommend: --workers %d --threads %d (%s: %.0f%% CPU per busy worker; %s)",
                 pk->workers, pk->threads, kind, 100 * v->busy, next);
    const tune_point *th2 = next_bigger(t, pk, true);
    size_t o = 0;
    if (v->unclassified) {
        /* said above */
    } else if (v->cpu_bound) {
        o = (size_t)snprintf(v->verdict, sizeof v->verdict,
                             "CPU-bound: a busy worker is on the CPU %.0f%% of the time, so more "
                             "workers than the %d usable CPUs cannot help",
                             100 * v->busy, t->cpus.usable);
        double g = th2 ? th2->rps / pk->rps - 1 : 0;
        if (!t->asgi && th2 && g >= TUNE_GAIN && v->busy >= TUNE_ALL_CPU)
            snprintf(v->verdict + o, sizeof v->verdict - o,
                     ", and threads do not either (the GIL runs one at a time; %d threads "
                     "measured %+.0f%% req/s, but with no idle time to fill that is other "
                     "processes' noise)",
                     th2->threads, 100 * g);
        else if (!t->asgi && th2)
            snprintf(v->verdict + o, sizeof v->verdict - o,
                     ", and threads do not either (the GIL runs one at a time): %d threads gave "
                     "%+.0f%% req/s",
                     th2->threads, 100 * g);
        else if (!t->asgi)
            snprintf(v->verdict + o, sizeof v->verdict - o,
                     ", and threads would not either (the GIL runs one at a time)");
    } else {
        snprintf(v->verdict, sizeof v->verdict,
                 "I/O-bound: a busy worker is on the CPU %.0f%% of the time and waits the rest, "
                 "so %s help: %dx%d served %.1fx the req/s of 1x1%s",
                 100 * v->busy,
                 t->asgi ? "more connections per worker, not more workers," : "threads or more workers",
                 pk->workers, pk->threads, one && one->rps > 0 ? pk->rps / one->rps : 0,
                 t->asgi ? "" : "; as an ASGI app it would wait without a thread per request");
    }
    if (t->mem_mb > 0 && pk->rss_mb > 0)
        snprintf(v->memory, sizeof v->memory,
                 "memory: %.1f MB per worker, %.0f MB available (%s): room for %d workers",
                 pk->rss_mb, t->mem_mb, t->mem_why,
                 (int)(t->mem_mb * TUNE_MEM_MARGIN / pk->rss_mb));
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

static void print_json(const tune *t, const tune_verdict *v)
{
    FILE *f = stdout;
    fputs("{\"app\": ", f);
    json_string(f, t->app);
    fprintf(f, ", \"interface\": \"%s\", \"usable_cpus\": %d, \"cpus_why\": ",
            t->asgi ? "asgi" : "wsgi", t->cpus.usable);
    json_string(f, t->cpus.why);
    fprintf(f, ", \"memory_available_mb\": %.1f, \"duration_s\": %g, \"rate\": %g, \"paths\": [",
            t->mem_mb, t->duration, t->rate);
    for (int i = 0; i < t->num_paths; i++) {
        if (i) fputs(", ", f);
        json_string(f, t->paths[i]);
    }
    fputs("],\n \"configs\": [", f);
    for (int i = 0; i < t->num_pts; i++) {
        const tune_point *p = &t->pts[i];
        fprintf(f,
                "%s\n  {\"workers\": %d, \"threads\": %d, \"concurrency\": %d, \"requests\": %llu, "
                "\"seconds\": %.3f, \"rps\": %.2f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
                "\"cpu_ms_per_request\": %.4f, \"cpu_per_worker\": [",
                i ? "," : "", p->workers, p->threads, p->concurrency,
                (unsigned long long)p->responses, p->elapsed_s, p->rps, p->p50_ms, p->p99_ms,
                p->cpu_ms_per_req);
        for (int w = 0; w < p->nw; w++) fprintf(f, "%s%.3f", w ? ", " : "", p->cpu[w]);
        fputs("], \"cpu_wait_per_worker\": [", f);
        for (int w = 0; w < p->nw; w++) fprintf(f, "%s%.3f", w ? ", " : "", p->wait[w]);
        fputs("], \"cpu_per_busy_worker\": [", f);
        for (int w = 0; w < p->nw; w++) fprintf(f, "%s%.3f", w ? ", " : "", p->busy[w]);
        fputs("], \"rss_mb_per_worker\": [", f);
        for (int w = 0; w < p->nw; w++) fprintf(f, "%s%.1f", w ? ", " : "", p->rss[w]);
        fprintf(f,
                "], \"errors\": %llu, \"status\": {\"2xx\": %llu, \"3xx\": %llu, \"4xx\": %llu, "
                "\"5xx\": %llu}, \"loadgen_cpu\": %.3f}",
                (unsigned long long)p->errors, (unsigned long long)p->status[2],
                (unsigned long long)p->status[3], (unsigned long long)p->status[4],
                (unsigned long long)p->status[5], p->loadgen_cpu);
    }
    fprintf(f,
            "\n ],\n \"classification\": \"%s\", \"cpu_per_busy_worker\": %.3f, "
            "\"cpu_contention\": %.3f,\n",
            v->unclassified ? "unclassified" : v->cpu_bound ? "cpu-bound" : "io-bound", v->busy,
            v->contention);
    if (v->k >= 0)
        fprintf(f, " \"recommend\": {\"workers\": %d, \"threads\": %d, \"line\": ",
                t->pts[v->k].workers, t->pts[v->k].threads);
    else fputs(" \"recommend\": {\"workers\": null, \"threads\": null, \"line\": ", f);
    json_string(f, v->line);
    fputs(", \"verdict\": ", f);
    json_string(f, v->verdict);
    fputs("}}\n", f);
}

static int write_plot(const tune *t, const tune_verdict *v)
{
    static gp_svg_point pts[TUNE_MAX_POINTS];
    for (int i = 0; i < t->num_pts; i++) {
        const tune_point *p = &t->pts[i];
        pts[i] = (gp_svg_point){.y1 = p->rps, .y2 = p->p99_ms, .workers = p->workers,
                                .threads = p->threads};
        snprintf(pts[i].label, sizeof pts[i].label, "%dx%d", p->workers, p->threads);
    }
    char title[300], sub[400];
    const char *why = strchr(v->line, '(');
    snprintf(title, sizeof title, "gallop tune %s: %.*s", t->app,
             why ? (int)(why - v->line - 12) : (int)strlen(v->line + 11), v->line + 11);
    snprintf(sub, sizeof sub, "%s", why ? why : "");
    gp_svg_chart c = {.title = title,
                      .subtitle = sub,
                      .x_label = "workers x threads (in the order tried)",
                      .y1_label = "throughput (req/s)",
                      .y2_label = "p99 latency (ms)",
                      .points = pts,
                      .num_points = t->num_pts,
                      .pick = v->k};
    FILE *f = fopen(t->plot, "we");
    if (!f) {
        fprintf(stderr, "gallop: error: tune: cannot write --plot %s: %s\n", t->plot,
                strerror(errno));
        return TUNE_FAILED;
    }
    int r = gp_svg_write(f, &c);
    if (fclose(f) || r) {
        fprintf(stderr, "gallop: error: tune: cannot write --plot %s\n", t->plot);
        return TUNE_FAILED;
    }
    fprintf(stderr, "tune: plot written to %s\n", t->plot);
    return 0;
}

int gp_tune_main(int argc, char **argv)
{
    static tune t;
    memset(&t, 0, sizeof t);
    t.duration = 5;
    int rc = parse_args(&t, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    ssize_t n = readlink("/proc/self/exe", t.exe, sizeof t.exe - 1);
    if (n <= 0) {
        fprintf(stderr, "gallop: error: tune: cannot find its own binary: %s\n", strerror(errno));
        return TUNE_FAILED;
    }
    t.exe[n] = 0;
    if (t.plot) {
        /* a plot that cannot be written is bad input: say so before minutes of work */
        FILE *f = fopen(t.plot, "ae");
        if (!f) return usage_error("cannot write --plot %s", t.plot);
        fclose(f);
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    setvbuf(stderr, NULL, _IOLBF, 0);
    gp_cpus_detect(&t.cpus, "", 0);
    memory_available(&t);
    if (t.memory_mb > 0) {
        t.mem_mb = t.memory_mb;
        snprintf(t.mem_why, sizeof t.mem_why, "--memory");
    }
    t.out = t.json ? stderr : stdout;
    t.t0 = mono();
    fprintf(stderr, "tune: %s on %s; %.0f MB available (%s); %.1f s per configuration%s\n",
            t.app, t.cpus.why, t.mem_mb, t.mem_why, t.duration,
            t.rate > 0 ? ", open loop" : "");
    if ((rc = sweep(&t))) return rc;
    tune_verdict v;
    decide(&t, &v);
    print_table(&t, v.k);
    fprintf(t.out, "%s\n", v.verdict);
    if (v.memory[0]) fprintf(t.out, "%s\n", v.memory);
    if (v.noisy[0]) fprintf(t.out, "%s\n", v.noisy);
    fprintf(t.out, "%s\n", v.line);
    fflush(t.out);
    fprintf(stderr, "tune: done in %.0f s\n", mono() - t.t0);
    if (t.json) print_json(&t, &v);
    if (t.plot && (rc = write_plot(&t, &v))) return rc;
    return v.k < 0 ? TUNE_FAILED : 0;
}
