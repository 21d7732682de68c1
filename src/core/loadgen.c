/* loadgen: keep-alive HTTP/1.1 client connections driven by core/loop; see
 * loadgen.h. Never reads past a response's framing: bytes that arrive
 * without a request in flight, or a head it cannot read strictly, are
 * errors and close the connection. */
#include "core/loadgen.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/http_parser.h"
#include "core/loop.h"
#include "core/timer.h"

#define LG_BUF 65536
#define LG_RETRY_US 20000 /* a refused connect is tried again this much later */

void gp_lg_hist_add(gp_lg_hist *h, uint64_t us)
{
    size_t b;
    if (us < 2 * GP_LG_SUB) {
        b = (size_t)us;
    } else {
        int e = 63 - __builtin_clzll(us); /* >= 5 */
        b = (size_t)(e - 3) * GP_LG_SUB + ((us >> (e - 4)) & (GP_LG_SUB - 1));
        if (b >= GP_LG_BUCKETS) b = GP_LG_BUCKETS - 1;
    }
    h->counts[b]++;
    h->total++;
    h->sum_us += us;
    if (us > h->max_us) h->max_us = us;
}

/* Midpoint of bucket b, the inverse of the mapping above. */
static uint64_t bucket_mid(size_t b)
{
    if (b < 2 * GP_LG_SUB) return b;
    unsigned e = (unsigned)(b / GP_LG_SUB) + 3, sub = (unsigned)(b % GP_LG_SUB);
    uint64_t low = (uint64_t)(GP_LG_SUB + sub) << (e - 4);
    return low + ((1ull << (e - 4)) >> 1);
}

uint64_t gp_lg_hist_quantile(const gp_lg_hist *h, double q)
{
    if (!h->total) return 0;
    uint64_t want = (uint64_t)(q * (double)h->total + 0.999999), cum = 0;
    if (want < 1) want = 1;
    for (size_t b = 0; b < GP_LG_BUCKETS; b++)
        if ((cum += h->counts[b]) >= want) {
            uint64_t v = bucket_mid(b);
            return v > h->max_us ? h->max_us : v;
        }
    return h->max_us;
}

/* ---- response heads (RFC 9112 section 4 and 6) ---- */

static bool tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Whether the comma-separated list v[0..n) has token tok (lower-case). */
static bool list_has(const char *v, size_t n, const char *tok, bool last_only)
{
    bool found = false;
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t s = i;
        while (i < n && v[i] != ',') i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e > s) found = gp_http_token_eq(v + s, e - s, tok) || (found && !last_only);
    }
    return found;
}

int gp_lg_parse_head(const char *b, size_t len, gp_lg_head *h)
{
    memset(h, 0, sizeof *h);
    const char *end = memmem(b, len, "\r\n\r\n", 4);
    if (!end) return len > GP_LG_MAX_HEAD ? -1 : 0;
    size_t n = (size_t)(end - b) + 4;
    for (size_t i = 0; i < n; i++)
        if ((b[i] == '\r' && b[i + 1] != '\n') || (b[i] == '\n' && (!i || b[i - 1] != '\r')))
            return -1;
    if (n < 16 || memcmp(b, "HTTP/1.", 7) || (b[7] != '0' && b[7] != '1') || b[8] != ' ') return -1;
    h->minor = b[7] - '0';
    for (int i = 9; i < 12; i++)
        if (b[i] < '0' || b[i] > '9') return -1;
    if (b[12] != ' ' && b[12] != '\r') return -1;
    h->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
    if (h->status < 100) return -1;
    bool keep_alive = false, te = false;
    const char *p = memchr(b, '\n', n) + 1;
    while (p < end + 2) {
        const char *eol = memchr(p, '\r', (size_t)(end + 2 - p));
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p) return -1;
        for (const char *q = p; q < colon; q++)
            if (!tchar((unsigned char)*q)) return -1;
        const char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t')) v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        for (const char *q = colon + 1; q < eol; q++)
            if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
                return -1; /* a NUL, a CTL */
        size_t nl = (size_t)(colon - p), vl = (size_t)(ve - v);
        if (gp_http_token_eq(p, nl, "content-length")) {
            uint64_t x = 0;
            if (!vl || vl > 18) return -1;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9') return -1;
                x = x * 10 + (uint64_t)(v[i] - '0');
            }
            if (h->has_length && x != h->length) return -1;
            h->has_length = true;
            h->length = x;
        } else if (gp_http_token_eq(p, nl, "transfer-encoding")) {
            te = true;
            h->chunked = list_has(v, vl, "chunked", true);
        } else if (gp_http_token_eq(p, nl, "connection")) {
            h->close |= list_has(v, vl, "close", false);
            keep_alive |= list_has(v, vl, "keep-alive", false);
        }
        p = eol + 2;
    }
    if (te && h->has_length) return -1;
    if (te && !h->chunked) h->close = true; /* framed by close (RFC 9112 6.3) */
    if (h->minor == 0 && !keep_alive) h->close = true;
    return (int)n;
}

/* ---- connections ---- */

enum { C_CLOSED, C_CONNECTING, C_IDLE, C_BUSY };
enum { R_HEAD, R_LENGTH, R_CHUNKED, R_TO_CLOSE };

typedef struct lg lg;

typedef struct {
    gp_io io;
    gp_timer timer; /* the response deadline, or when to connect again */
    lg *g;
    int state, rstate;
    const gp_lg_req *req;
    size_t sent;
    uint64_t due_us; /* when the request in flight was due */
    uint64_t body_left;
    bool close_after;
    int status;
    gp_chunked chunked;
    size_t len;
    char *buf;
} lg_conn;

struct lg {
    const gp_lg_opts *o;
    gp_lg_result *r;
    gp_loop loop;
    gp_timers timers;
    lg_conn *conns;
    int *idle; /* open loop: connections free to send */
    int num_idle;
    int next_req;
    uint64_t t0, measure_at, end_at, timeout_us;
    uint64_t sched_k, next_due; /* open loop: the k-th request is due at t0 + k / rate */
    bool measuring;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void note_error(lg *g, const char *what, int err)
{
    if (!g->measuring) return;
    g->r->errors++;
    if (!g->r->error[0])
        snprintf(g->r->error, sizeof g->r->error, "%s%s%s", what, err ? ": " : "",
                 err ? strerror(err) : "");
}

static void conn_cb(gp_io *io, uint32_t events);
static void start_request(lg_conn *c, uint64_t due);

static bool enough(const lg *g)
{
    return g->o->max_requests && g->r->responses >= g->o->max_requests;
}

static void make_idle(lg_conn *c)
{
    lg *g = c->g;
    c->state = C_IDLE;
    gp_timer_stop(&g->timers, &c->timer);
    gp_loop_watch(&g->loop, &c->io, EPOLLIN);
    if (g->o->rate > 0) g->idle[g->num_idle++] = (int)(c - g->conns);
    else if (!enough(g)) start_request(c, now_us());
}

static void conn_open(lg_conn *c)
{
    lg *g = c->g;
    int fd = socket(g->o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        note_error(g, "socket", errno);
        gp_timer_set(&g->timers, &c->timer, now_us() + LG_RETRY_US);
        return;
    }
    int one = 1;
    if (g->o->addr.ss_family != AF_UNIX) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->io.fd = fd;
    c->io.registered = false;
    c->len = 0;
    c->state = C_CONNECTING;
    if (connect(fd, (const struct sockaddr *)&g->o->addr, g->o->addr_len) == 0) {
        make_idle(c);
        return;
    }
    if (errno != EINPROGRESS) {
        note_error(g, "connect", errno);
        close(fd);
        c->state = C_CLOSED;
        gp_timer_set(&g->timers, &c->timer, now_us() + LG_RETRY_US);
        return;
    }
    gp_loop_watch(&g->loop, &c->io, EPOLLOUT);
}

/* Drops the connection (counting what was in flight as failed when err)
 * and opens a new one. */
static void conn_reset(lg_conn *c, const char *what, int err)
{
    lg *g = c->g;
    if (what) note_error(g, what, err);
    if (c->state == C_IDLE && g->o->rate > 0)
        for (int i = 0; i < g->num_idle; i++)
            if (g->idle[i] == (int)(c - g->conns)) g->idle[i] = g->idle[--g->num_idle];
    gp_loop_unwatch(&g->loop, &c->io);
    close(c->io.fd);
    c->state = C_CLOSED;
    gp_timer_stop(&g->timers, &c->timer);
    conn_open(c);
}

static void flush_request(lg_conn *c)
{
    const gp_lg_req *q = c->req;
    while (c->sent < q->len) {
        ssize_t n = send(c->io.fd, q->data + c->sent, q->len - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            gp_loop_watch(&c->g->loop, &c->io, EPOLLIN | EPOLLOUT);
            return;
        }
        if (n < 0) {
            conn_reset(c, "send", errno);
            return;
        }
        c->sent += (size_t)n;
    }
    gp_loop_watch(&c->g->loop, &c->io, EPOLLIN);
}

static void start_request(lg_conn *c, uint64_t due)
{
    lg *g = c->g;
    c->req = &g->o->reqs[g->next_req];
    g->next_req = (g->next_req + 1) % g->o->num_reqs;
    c->sent = 0;
    c->due_us = due;
    c->state = C_BUSY;
    c->rstate = R_HEAD;
    gp_timer_set(&g->timers, &c->timer, now_us() + g->timeout_us);
    flush_request(c);
}

static void complete(lg_conn *c)
{
    lg *g = c->g;
    uint64_t t = now_us();
    if (g->measuring && !enough(g)) {
        gp_lg_result *r = g->r;
        r->responses++;
        r->status[c->status / 100 <= 5 ? c->status / 100 : 5]++;
        r->last_status = c->status;
        gp_lg_hist_add(&r->hist, t > c->due_us ? t - c->due_us : 0);
    }
    if (c->close_after || c->len) {
        /* bytes past the response: the server answered what was not asked */
        conn_reset(c, c->len ? "bytes after a response" : NULL, 0);
        return;
    }
    make_idle(c);
}

static void consume(lg_conn *c, size_t n)
{
    c->len -= n;
    memmove(c->buf, c->buf + n, c->len);
}

/* Advances the response in c->buf; returns false when c was reset. */
static bool parse_response(lg_conn *c)
{
    while (c->state == C_BUSY) {
        if (c->rstate == R_HEAD) {
            gp_lg_head h;
            int n = gp_lg_parse_head(c->buf, c->len, &h);
            if (n < 0) {
                conn_reset(c, "malformed response head", 0);
                return false;
            }
            if (n == 0) return true;
            consume(c, (size_t)n);
            if (h.status < 200) continue; /* 100 Continue and the like: the answer follows */
            c->status = h.status;
            c->close_after = h.close;
            bool none = c->req->head || h.status == 204 || h.status == 304;
            if (none || (h.has_length && h.length == 0)) {
                complete(c);
                return c->state != C_CLOSED && c->state != C_CONNECTING;
            }
            if (h.chunked) {
                memset(&c->chunked, 0, sizeof c->chunked);
                c->rstate = R_CHUNKED;
            } else if (h.has_length) {
                c->rstate = R_LENGTH;
                c->body_left = h.length;
            } else {
                c->rstate = R_TO_CLOSE;
            }
        }
        if (c->rstate == R_LENGTH) {
            size_t take = c->len < c->body_left ? c->len : (size_t)c->body_left;
            consume(c, take);
            c->body_left -= take;
            if (c->body_left) return true;
        } else if (c->rstate == R_CHUNKED) {
            size_t used = 0, out = c->len;
            int d = gp_chunked_decode(&c->chunked, c->buf, c->len, &used, c->buf, &out);
            if (d == GP_CHUNKED_ERROR) {
                conn_reset(c, "malformed chunked body", 0);
                return false;
            }
            /* decoded in place: what is left to read starts after `used` */
            memmove(c->buf, c->buf + used, c->len - used);
            c->len -= used;
            if (d != GP_CHUNKED_DONE) return true;
        } else {
            c->len = 0;
            return true; /* R_TO_CLOSE: the end comes as EOF */
        }
        complete(c);
        return c->state != C_CLOSED && c->state != C_CONNECTING;
    }
    return true;
}

static void conn_readable(lg_conn *c)
{
    for (;;) {
        ssize_t n = recv(c->io.fd, c->buf + c->len, LG_BUF - c->len, 0);
        if (n < 0 && errno == EAGAIN) return;
        if (n < 0) {
            conn_reset(c, c->state == C_BUSY ? "recv" : NULL, errno);
            return;
        }
        if (n == 0) {
            if (c->state == C_BUSY && c->rstate == R_TO_CLOSE) {
                c->close_after = true;
                complete(c);
            } else {
                /* an idle keep-alive connection may be closed by the server */
                conn_reset(c, c->state == C_BUSY ? "connection closed before the response" : NULL,
                           0);
            }
            return;
        }
        c->len += (size_t)n;
        if (c->state != C_BUSY) {
            conn_reset(c, "bytes without a request", 0);
            return;
        }
        if (!parse_response(c)) return;
        if (c->len == LG_BUF) {
            conn_reset(c, "response head too large", 0);
            return;
        }
    }
}

static void conn_cb(gp_io *io, uint32_t events)
{
    lg_conn *c = (lg_conn *)((char *)io - offsetof(lg_conn, io));
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            note_error(c->g, "connect", err);
            gp_loop_unwatch(&c->g->loop, io);
            close(io->fd);
            c->state = C_CLOSED;
            gp_timer_set(&c->g->timers, &c->timer, now_us() + LG_RETRY_US);
            return;
        }
        make_idle(c);
        return;
    }
    if ((events & EPOLLOUT) && c->state == C_BUSY && c->sent < c->req->len) {
        flush_request(c);
        if (c->state != C_BUSY) return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) conn_readable(c);
}

static void timer_cb(gp_timer *t)
{
    lg_conn *c = (lg_conn *)((char *)t - offsetof(lg_conn, timer));
    if (c->state == C_CLOSED) conn_open(c);
    else if (c->state == C_BUSY) conn_reset(c, "response timed out", 0);
}

/* Open loop: sends every request that is due on a free connection. */
static void send_due(lg *g, uint64_t now)
{
    while (g->next_due <= now && g->num_idle > 0 && !enough(g)) {
        lg_conn *c = &g->conns[g->idle[--g->num_idle]];
        start_request(c, g->next_due);
        g->sched_k++;
        g->next_due = g->t0 + (uint64_t)((double)g->sched_k * 1e6 / g->o->rate);
    }
}

static void open_window(lg *g)
{
    g->measuring = true;
    if (g->o->on_measure) g->o->on_measure(g->o->ctx);
    g->measure_at = now_us();
    g->end_at = g->measure_at + (uint64_t)(g->o->duration_s * 1e6);
}

int gp_lg_run(const gp_lg_opts *o, gp_lg_result *r)
{
    memset(r, 0, sizeof *r);
    if (o->connections < 1 || o->num_reqs < 1 || o->duration_s <= 0) return -EINVAL;
    lg g = {.o = o, .r = r};
    int rc = gp_loop_init(&g.loop);
    if (rc < 0) return rc;
    gp_timers_init(&g.timers);
    g.conns = calloc((size_t)o->connections, sizeof *g.conns);
    g.idle = calloc((size_t)o->connections, sizeof *g.idle);
    int made = 0;
    rc = -ENOMEM;
    if (!g.conns || !g.idle) goto fail;
    g.timeout_us = (uint64_t)((o->timeout_s > 0 ? o->timeout_s : 10.0) * 1e6);
    g.t0 = now_us();
    g.next_due = g.t0;
    g.measure_at = g.t0 + (uint64_t)(o->warmup_s * 1e6);
    g.end_at = UINT64_MAX;
    if (o->warmup_s <= 0) open_window(&g);
    for (; made < o->connections; made++) {
        lg_conn *c = &g.conns[made];
        if (!(c->buf = malloc(LG_BUF))) goto fail;
        c->g = &g;
        c->io.cb = conn_cb;
        c->io.fd = -1;
        c->timer.cb = timer_cb;
        conn_open(c);
    }
    for (;;) {
        uint64_t now = now_us();
        if (!g.measuring && now >= g.measure_at) {
            open_window(&g);
            now = g.measure_at;
        }
        if (now >= g.end_at || (o->stop && *o->stop)) break;
        if (o->max_requests && r->responses >= o->max_requests) break;
        gp_timers_run(&g.timers, now);
        if (o->rate > 0) send_due(&g, now);
        uint64_t wake = g.measuring ? g.end_at : g.measure_at;
        uint64_t t = gp_timers_earliest(&g.timers);
        if (t < wake) wake = t;
        if (o->rate > 0 && g.num_idle > 0 && g.next_due < wake) wake = g.next_due;
        int ms = wake > now ? (int)((wake - now + 999) / 1000) : 0;
        if (ms > 1000) ms = 1000;
        if (gp_loop_wait(&g.loop, ms) > 0) gp_loop_dispatch(&g.loop);
    }
    uint64_t stop = now_us();
    r->elapsed_s = g.measuring ? (double)(stop - g.measure_at) / 1e6 : 0;
    rc = 0;
fail:
    gp_timers_free(&g.timers); /* it writes into the connections' timers */
    for (int i = 0; i < made; i++) {
        lg_conn *c = &g.conns[i];
        if (c->state != C_CLOSED) close(c->io.fd);
        free(c->buf);
    }
    free(g.conns);
    free(g.idle);
    gp_loop_close(&g.loop);
    return rc;
}
