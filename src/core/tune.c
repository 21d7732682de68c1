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

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "core/tune_internal.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
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
static const char *const owned[] = {
    "bind", "workers", "threads",      "host",        "port",        "uds",
    "fd",   "reload",  "check-config", "workers-min", "workers-max", "workers-formula",
    NULL};

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
                    return usage_error("--concurrency wants a whole number from 1 to 10000%s", "");
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
        double until = gp_metrics_now_s() + 8;
        while (waitpid(c->pid, &st, WNOHANG) == 0) {
            if (gp_metrics_now_s() > until) {
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

/* Appends to out the traceback lines that follow the log's "(traceback below)"
 * line, without their log prefixes: tune's error line says what the worker
 * logged, and the traceback is the part a user needs to fix the app. */
static void log_traceback(const tune_child *c, char *out, size_t len)
{
    static char log[1 << 16];
    read_log(c, log, sizeof log);
    const char *p = strstr(log, "(traceback below)");
    if (!p) return;
    /* the traceback is the lines that worker logged next: "[PID] [ERROR] " */
    const char *end = p, *tag;
    while (end > log && end[-1] != '\n') end--;
    end = strstr(end, "] [ERROR] ");
    if (!end || end > p) return;
    for (tag = end; tag > log && *tag != '['; tag--) {}
    int tag_len = (int)(end + 10 - tag);
    size_t used = strlen(out);
    for (p = strchr(p, '\n'); p && used + 1 < len; p = strchr(p, '\n')) {
        const char *line = ++p, *eol = line + strcspn(line, "\n");
        const char *at = memmem(line, (size_t)(eol - line), tag, (size_t)tag_len);
        if (!at) break;
        at += tag_len;
        int n = snprintf(out + used, len - used, "\n  %.*s", (int)(eol - at), at);
        if (n < 0 || (size_t)n >= len - used) break;
        used += (size_t)n;
    }
}

/* Waits for READY=1. Returns 0, or the exit code for tune with why. */
static int wait_ready(tune_child *c, char *why, size_t len)
{
    double until = gp_metrics_now_s() + 90;
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
                     code == GP_EXIT_APP_ERROR ? "the app did not load"
                     : code == GP_EXIT_USAGE   ? "gallop refused the app flags"
                                               : "gallop stopped before serving",
                     reason, code);
            if (code == GP_EXIT_APP_ERROR) log_traceback(c, why, len);
            return code == GP_EXIT_APP_ERROR || code == GP_EXIT_USAGE ? TUNE_USAGE : TUNE_FAILED;
        }
        if (gp_metrics_now_s() > until) {
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
        int n = snprintf(texts[i], cap,
                         "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                         "User-Agent: gallop-tune\r\n",
                         t->method, t->paths[i], port);
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
        reqs[i] = (gp_lg_req){
            .data = texts[i], .len = (size_t)n + t->body_len, .head = !strcmp(t->method, "HEAD")};
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
        gp_lg_opts o = {.reqs = &reqs[i],
                        .num_reqs = 1,
                        .connections = 1,
                        .duration_s = 60,
                        .max_requests = 1,
                        .timeout_s = 30,
                        .stop = &interrupted};
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
    fprintf(stderr,
            "tune: [%3.0fs] configuration %d of at most %d: %d worker%s x %d thread%s: "
            "starting\n",
            gp_metrics_now_s() - t->t0, t->num_pts + 1, max_configs(t), workers,
            workers == 1 ? "" : "s", threads, threads == 1 ? "" : "s");
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
            gp_metrics_now_s() - t->t0, workers, threads, p->concurrency, warm, t->duration);
    gp_lg_opts o = {.reqs = reqs,
                    .num_reqs = t->num_paths,
                    .connections = p->concurrency,
                    .rate = t->rate,
                    .warmup_s = warm,
                    .duration_s = t->duration,
                    .timeout_s = 30,
                    .on_measure = on_measure,
                    .ctx = t,
                    .stop = &interrupted};
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
            gp_metrics_now_s() - t->t0, p->workers, p->threads, p->rps, p->p50_ms, p->p99_ms,
            p->cpu_ms_per_req, 100 * p->cpu_busy, gain, p->errors ? " (errors)" : "");
}

static int run_point(tune *t, int workers, int threads)
{
    char why[4096];
    double before = gp_tunev_best_rps(t);
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
                gp_metrics_now_s() - t->t0, workers, threads, p->rps, 100 * wait);
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
        double before = gp_tunev_best_rps(t);
        if ((rc = run_point(t, w, 1))) return rc;
        if (gain_over(before, &t->pts[t->num_pts - 1]) >= TUNE_GAIN) {
            flat = 0;
        } else if (w >= cpus || ++flat >= 2) {
            break; /* no better: below the CPUs, twice in a row, for the noise */
        }
    }
    if (t->asgi) return 0;
    int k = gp_tunev_pick(t, INT_MAX, 1);
    int w = k >= 0 ? t->pts[k].workers : 1;
    /* all CPU: one step shows that threads do not help */
    int max_t = gp_tunev_busy_of_one(t) >= TUNE_ALL_CPU ? 2 : TUNE_MAX_THREADS;
    for (int th = 2; th <= max_t; th *= 2) {
        double before = gp_tunev_best_rps(t);
        if ((rc = run_point(t, w, th))) return rc;
        if (gain_over(before, &t->pts[t->num_pts - 1]) < TUNE_GAIN) break;
    }
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
    t.t0 = gp_metrics_now_s();
    fprintf(stderr, "tune: %s on %s; %.0f MB available (%s); %.1f s per configuration%s\n", t.app,
            t.cpus.why, t.mem_mb, t.mem_why, t.duration, t.rate > 0 ? ", open loop" : "");
    if ((rc = sweep(&t))) return rc;
    tune_verdict v;
    gp_tunev_decide(&t, &v);
    gp_tunev_print_table(&t, v.k);
    fprintf(t.out, "%s\n", v.verdict);
    if (v.memory[0]) fprintf(t.out, "%s\n", v.memory);
    if (v.noisy[0]) fprintf(t.out, "%s\n", v.noisy);
    fprintf(t.out, "%s\n", v.line);
    fflush(t.out);
    fprintf(stderr, "tune: done in %.0f s\n", gp_metrics_now_s() - t.t0);
    if (t.json) gp_tunev_print_json(&t, &v);
    if (t.plot && (rc = gp_tunev_write_plot(&t, &v))) return rc;
    return v.k < 0 ? TUNE_FAILED : 0;
}
