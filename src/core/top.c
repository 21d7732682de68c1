/* top: `gallop top [URL]`, a live view of a running gallop's workers in the
 * terminal, read from the master's --metrics-bind (/metrics and /workers)
 * once a second. Plain ANSI output, no curses: it works over ssh and in an
 * 80x24 terminal; 'q' (or Ctrl-C) quits and restores the terminal.
 *
 * A client only: it never touches a server's memory, and one that does not
 * answer is shown as such, retried each second. */
#include "core/top.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "core/listen.h"
#include "core/metrics.h"
#include "core/mserve.h"

#define TOP_MAX_WORKERS 256

typedef struct {
    int pid;
    char state[16];
    double age_s, running_ms;
    uint64_t hist[GP_METRICS_BUCKETS];
    char what[GP_SLOT_WHAT];
    double requests, in_flight, busy_s, rss, cpu_s;
} top_worker;

typedef struct {
    top_worker w[TOP_MAX_WORKERS];
    int n;
    double current, target, depth, total;
    uint64_t hist[GP_METRICS_BUCKETS];
    double at; /* monotonic seconds of the fetch */
} top_snap;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* GET path from addr; the body into out. Returns 0, or -1 with why. */
static int fetch(const gp_addr *addr, const char *path, gp_mbuf *out, char *why, size_t len)
{
    int fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = 2};
    if (fd < 0) goto fail;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (const struct sockaddr *)&addr->sa, addr->sa_len) < 0) goto fail;
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: gallop\r\nConnection: close\r\n\r\n", path);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) goto fail;
    out->len = 0;
    out->failed = false;
    char buf[16384];
    ssize_t r;
    while ((r = recv(fd, buf, sizeof buf, 0)) > 0)
        if (gp_mbuf_printf(out, "%.*s", (int)r, buf) < 0) break;
    if (r < 0) goto fail;
    close(fd);
    char *body = out->p ? strstr(out->p, "\r\n\r\n") : NULL;
    if (!body || strncmp(out->p, "HTTP/1.1 200", 12) != 0) {
        snprintf(why, len, "%s%s: not a gallop metrics endpoint", addr->text, path);
        return -1;
    }
    body += 4;
    out->len -= (size_t)(body - out->p);
    memmove(out->p, body, out->len + 1);
    return 0;
fail:
    snprintf(why, len, "%s: %s", addr->text, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
}

static top_worker *find(top_snap *s, int pid)
{
    for (int i = 0; i < s->n; i++)
        if (s->w[i].pid == pid) return &s->w[i];
    return NULL;
}

/* The value of label key in "{a="b",key="v"}", copied into out. */
static int label(const char *labels, const char *key, char *out, size_t len)
{
    char pat[40];
    snprintf(pat, sizeof pat, "%s=\"", key);
    const char *p = strstr(labels, pat);
    if (!p) return -1;
    p += strlen(pat);
    const char *e = strchr(p, '"');
    if (!e || (size_t)(e - p) >= len) return -1;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = 0;
    return 0;
}

static void parse_workers(top_snap *s, char *text)
{
    for (char *line = strtok(text, "\n"); line && s->n < TOP_MAX_WORKERS;
         line = strtok(NULL, "\n")) {
        top_worker *w = &s->w[s->n];
        memset(w, 0, sizeof *w);
        char *tab = strchr(line, '\t');
        if (tab) {
            *tab = 0;
            snprintf(w->what, sizeof w->what, "%s", tab + 1);
        }
        char *p = line, *end;
        w->pid = (int)strtol(p, &end, 10);
        if (end == p || sscanf(end, " %15s %lf %lf", w->state, &w->age_s, &w->running_ms) != 3)
            continue;
        for (int k = 0; k < 3; k++) end = strchr(end + 1, ' ');
        for (int b = 0; b < GP_METRICS_BUCKETS && end; b++) {
            w->hist[b] = strtoull(end, &end, 10);
            s->hist[b] += w->hist[b];
        }
        s->n++;
    }
}

static void parse_metrics(top_snap *s, char *text)
{
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char *sp = strrchr(line, ' ');
        if (!sp) continue;
        double v = strtod(sp + 1, NULL);
        *sp = 0;
        char *brace = strchr(line, '{');
        const char *labels = brace ? brace + 1 : "";
        if (brace) *brace = 0;
        char pid[32];
        top_worker *w = label(labels, "worker", pid, sizeof pid) == 0 ? find(s, atoi(pid)) : NULL;
        if (!strcmp(line, "gallop_requests_total")) {
            s->total += v;
            if (w) w->requests += v;
        } else if (!strcmp(line, "gallop_requests_in_flight") && w) {
            w->in_flight = v;
        } else if (!strcmp(line, "gallop_worker_busy_seconds_total") && w) {
            w->busy_s = v;
        } else if (!strcmp(line, "gallop_worker_resident_memory_bytes") && w) {
            w->rss = v;
        } else if (!strcmp(line, "gallop_worker_cpu_seconds_total") && w) {
            w->cpu_s = v;
        } else if (!strcmp(line, "gallop_listen_queue_depth")) {
            s->depth += v;
        } else if (!strcmp(line, "gallop_workers")) {
            char kind[16];
            if (label(labels, "kind", kind, sizeof kind) == 0)
                *(strcmp(kind, "target") ? &s->current : &s->target) = v;
        }
    }
}

/* The bucket bound below which quantile q of the counts falls, as text. */
static void quantile(const uint64_t *now, const uint64_t *before, double q, char *out, size_t len)
{
    uint64_t d[GP_METRICS_BUCKETS], total = 0;
    for (int b = 0; b < GP_METRICS_BUCKETS; b++) {
        d[b] = before && now[b] >= before[b] ? now[b] - before[b] : now[b];
        total += d[b];
    }
    if (!total) {
        snprintf(out, len, "-");
        return;
    }
    uint64_t want = (uint64_t)(q * (double)total + 0.999999), cum = 0;
    int b = 0;
    for (; b < GP_METRICS_BUCKETS - 1; b++)
        if ((cum += d[b]) >= want) break;
    if (b == GP_METRICS_BUCKETS - 1) snprintf(out, len, ">30s");
    else if (gp_metrics_bounds_us[b] < 1000000)
        snprintf(out, len, "%.4gms", (double)gp_metrics_bounds_us[b] / 1000);
    else snprintf(out, len, "%.3gs", (double)gp_metrics_bounds_us[b] / 1e6);
}

static void human_bytes(double v, char *out, size_t len)
{
    if (v >= 1 << 30) snprintf(out, len, "%.1fG", v / (1 << 30));
    else snprintf(out, len, "%.0fM", v / (1 << 20));
}

static void human_age(double s, char *out, size_t len)
{
    if (s < 120) snprintf(out, len, "%.0fs", s);
    else if (s < 7200) snprintf(out, len, "%.0fm", s / 60);
    else snprintf(out, len, "%.0fh", s / 3600);
}

static void draw(const char *url, const top_snap *s, const top_snap *prev, const char *error)
{
    struct winsize ws = {0};
    int rows = 24, cols = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
        rows = ws.ws_row;
        cols = ws.ws_col;
    }
    if (cols > 250) cols = 250;
    char line[512];
    fputs("\033[H\033[2J", stdout);
    if (error) {
        snprintf(line, sizeof line, "gallop top %s: %s (retrying; q quits)", url, error);
        printf("%.*s\r\n", cols, line);
        fflush(stdout);
        return;
    }
    double dt = prev && s->at > prev->at ? s->at - prev->at : 0;
    char p50[16], p99[16];
    quantile(s->hist, prev ? prev->hist : NULL, 0.5, p50, sizeof p50);
    quantile(s->hist, prev ? prev->hist : NULL, 0.99, p99, sizeof p99);
    snprintf(line, sizeof line,
             "%s  %.0f/%.0f workers  %.0f req %.1f/s  p50 %s p99 %s  backlog %.0f",
             strncmp(url, "http://", 7) ? url : url + 7, s->current, s->target, s->total,
             dt ? (s->total - prev->total) / dt : 0.0, p50, p99, s->depth);
    printf("\033[1m%.*s\033[0m\r\n", cols, line);
    snprintf(line, sizeof line, "%6s %-8s %7s %6s %3s %4s %6s %6s %5s %4s %4s %s", "PID", "STATE",
             "REQS", "REQ/S", "INF", "BUSY", "P50", "P99", "RSS", "CPU", "AGE", "REQUEST");
    printf("\033[7m%-*.*s\033[0m\r\n", cols, cols, line);
    int shown = 0;
    const top_worker *longest = NULL;
    for (int i = 0; i < s->n; i++)
        if (s->w[i].what[0] && (!longest || s->w[i].running_ms > longest->running_ms))
            longest = &s->w[i];
    for (int i = 0; i < s->n && shown < rows - 4; i++, shown++) {
        const top_worker *w = &s->w[i];
        const top_worker *o = prev ? find((top_snap *)prev, w->pid) : NULL;
        double rate = o && dt ? (w->requests - o->requests) / dt : 0;
        double busy = o && dt ? 100 * (w->busy_s - o->busy_s) / dt : 0;
        double cpu = o && dt ? 100 * (w->cpu_s - o->cpu_s) / dt : 0;
        char wp50[16], wp99[16], rss[16], age[16], req[GP_SLOT_WHAT + 32] = "";
        quantile(w->hist, o ? o->hist : NULL, 0.5, wp50, sizeof wp50);
        quantile(w->hist, o ? o->hist : NULL, 0.99, wp99, sizeof wp99);
        human_bytes(w->rss, rss, sizeof rss);
        human_age(w->age_s, age, sizeof age);
        if (w->what[0]) snprintf(req, sizeof req, "%s %.1fs", w->what, w->running_ms / 1000);
        snprintf(line, sizeof line, "%6d %-8s %7.0f %6.1f %3.0f %3.0f%% %6s %6s %5s %3.0f%% %4s %s",
                 w->pid, w->state, w->requests, rate, w->in_flight, busy > 100 ? 100 : busy, wp50,
                 wp99, rss, cpu, age, req);
        printf("%.*s\r\n", cols, line);
    }
    if (shown < s->n) printf("... %d more workers\r\n", s->n - shown);
    if (longest) {
        snprintf(line, sizeof line, "longest: worker %d %s for %.1fs", longest->pid, longest->what,
                 longest->running_ms / 1000);
        printf("%.*s\r\n", cols, line);
    }
    fflush(stdout);
}

static int take(const gp_addr *addr, top_snap *s, gp_mbuf *buf, char *why, size_t len)
{
    memset(s, 0, sizeof *s);
    s->at = gp_metrics_now_s();
    if (fetch(addr, "/workers", buf, why, len) < 0) return -1;
    parse_workers(s, buf->p ? buf->p : (char *)"");
    if (fetch(addr, "/metrics", buf, why, len) < 0) return -1;
    parse_metrics(s, buf->p ? buf->p : (char *)"");
    return 0;
}

int gp_top_main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("GALLOP_METRICS_BIND");
    if (!url || !*url) url = "127.0.0.1:9100";
    if (argc > 2 || (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))) {
        fprintf(argc > 2 ? stderr : stdout,
                "usage: gallop top [URL]   (http://HOST:PORT, HOST:PORT or unix:/path of a "
                "--metrics-bind; default $GALLOP_METRICS_BIND, else 127.0.0.1:9100)\n");
        return argc > 2 ? 2 : 0;
    }
    char text[300], err[300];
    snprintf(text, sizeof text, "%s", url);
    if (!strncmp(text, "http://", 7)) memmove(text, text + 7, strlen(text + 7) + 1);
    char *slash = strncmp(text, "unix:", 5) ? strchr(text, '/') : NULL;
    if (slash) *slash = 0; /* the path is always /metrics and /workers */
    gp_addr addr;
    if (gp_addr_parse(text, &addr, err, sizeof err) < 0) {
        fprintf(stderr, "gallop: error: top: %s\n", err);
        return 2;
    }
    struct termios saved;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
        struct termios raw = saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    fputs("\033[?25l", stdout); /* no cursor */
    static top_snap snaps[2];
    int cur = 0;
    bool have_prev = false;
    gp_mbuf buf = {0};
    while (!stop_flag) {
        char why[400];
        if (take(&addr, &snaps[cur], &buf, why, sizeof why) < 0) {
            draw(url, NULL, NULL, why);
            have_prev = false;
        } else {
            draw(url, &snaps[cur], have_prev ? &snaps[cur ^ 1] : NULL, NULL);
            have_prev = true;
            cur ^= 1;
        }
        double until = gp_metrics_now_s() + 1.0;
        while (!stop_flag) {
            int ms = (int)((until - gp_metrics_now_s()) * 1000);
            if (ms <= 0) break;
            struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
            int r = poll(&p, 1, ms);
            if (r > 0) {
                char c;
                ssize_t n = read(STDIN_FILENO, &c, 1);
                if (n == 1 && (c == 'q' || c == 'Q')) stop_flag = 1;
                if (n == 0) { /* stdin at EOF: only time goes on */
                    poll(NULL, 0, ms);
                    break;
                }
            }
        }
    }
    fputs("\033[?25h\r\n", stdout);
    fflush(stdout);
    if (tty) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    gp_mbuf_free(&buf);
    return 0;
}
