/* tune_verdict: which configuration `gallop tune` recommends, why, and the
 * table, JSON and plot that show it. Reads the measurements only: it starts,
 * measures and stops nothing (tune.c does). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/svg.h"
#include "core/tune_internal.h"

static bool usable(const tune *t, const tune_point *p)
{
    bool errs = p->errors * 100 > p->responses; /* over 1% failed */
    bool mem = t->mem_mb > 0 && p->workers * p->rss_mb > t->mem_mb * TUNE_MEM_MARGIN;
    return !errs && !mem;
}

double gp_tunev_best_rps(const tune *t)
{
    double b = 0;
    for (int i = 0; i < t->num_pts; i++)
        if (usable(t, &t->pts[i]) && t->pts[i].rps > b) b = t->pts[i].rps;
    return b;
}

/* The smallest configuration within TUNE_GAIN of the best throughput among
 * those with at most max_w workers and max_t threads: fewer workers first
 * (memory), then fewer threads. */
int gp_tunev_pick(const tune *t, int max_w, int max_t)
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
            int size = p->workers * p->threads,
                ksize = k < 0 ? 0 : t->pts[k].workers * t->pts[k].threads;
            if (k < 0 || size < ksize || (size == ksize && p->workers < t->pts[k].workers)) k = i;
        }
    return k;
}

double gp_tunev_busy_of_one(const tune *t)
{
    for (int i = 0; i < t->num_pts; i++)
        if (t->pts[i].workers == 1 && t->pts[i].threads == 1 && t->pts[i].nw)
            return t->pts[i].busy[0];
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

void gp_tunev_print_table(const tune *t, int k)
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
static void describe_next(const tune *t, const tune_point *pk, const tune_point *n, bool by_threads,
                          char *out, size_t len)
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

void gp_tunev_decide(const tune *t, tune_verdict *v)
{
    memset(v, 0, sizeof *v);
    const tune_point *one = find_point(t, 1, 1);
    v->busy = one && one->nw ? one->busy[0] : 0;
    v->cpu_bound = v->busy >= TUNE_CPU_BOUND;
    /* all CPU: more workers than CPUs, or threads, cannot add throughput;
     * what they seemed to add is another process's noise */
    v->k = v->busy >= TUNE_ALL_CPU ? gp_tunev_pick(t, t->cpus.usable, 1) : -1;
    if (v->k < 0) v->k = gp_tunev_pick(t, INT_MAX, INT_MAX);
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
                 "recommend: --workers %d%s (keeps up with %g req/s: p99 %.2f ms; %s)", pk->workers,
                 threads, t->rate, pk->p99_ms, next);
        snprintf(v->verdict, sizeof v->verdict,
                 "open loop: one worker kept up with %g req/s, so no worker was kept busy; to "
                 "tell CPU-bound from I/O-bound, ask for a rate one worker cannot carry (or "
                 "leave --rate out)",
                 t->rate);
    } else if (t->asgi)
        snprintf(v->line, sizeof v->line,
                 "recommend: --workers %d (ASGI, %s: %.0f%% CPU per busy worker; %s)", pk->workers,
                 kind, 100 * v->busy, next);
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
                 t->asgi ? "more connections per worker, not more workers,"
                         : "threads or more workers",
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

void gp_tunev_print_json(const tune *t, const tune_verdict *v)
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
            v->unclassified ? "unclassified"
            : v->cpu_bound  ? "cpu-bound"
                            : "io-bound",
            v->busy, v->contention);
    if (v->k >= 0)
        fprintf(f, " \"recommend\": {\"workers\": %d, \"threads\": %d, \"line\": ",
                t->pts[v->k].workers, t->pts[v->k].threads);
    else fputs(" \"recommend\": {\"workers\": null, \"threads\": null, \"line\": ", f);
    json_string(f, v->line);
    fputs(", \"verdict\": ", f);
    json_string(f, v->verdict);
    fputs("}}\n", f);
}

int gp_tunev_write_plot(const tune *t, const tune_verdict *v)
{
    static gp_svg_point pts[TUNE_MAX_POINTS];
    for (int i = 0; i < t->num_pts; i++) {
        const tune_point *p = &t->pts[i];
        pts[i] = (gp_svg_point){
            .y1 = p->rps, .y2 = p->p99_ms, .workers = p->workers, .threads = p->threads};
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
