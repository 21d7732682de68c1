/* conn: an HTTP/1.1 exchange as the bridge drives it (conn.h): the
 * response head and its framing (Content-Length or chunked), body writes
 * and sendfile through the stream's output queue, and the calls that hand
 * an exchange of another protocol to its table (exchange.h). The request
 * body is conn_body.c's; the connection around it (heads, dispatch, the
 * response cycle, threads, async apps) is h1.c's.
 *
 * Never blocks the loop except inside the app's own body reads and write()
 * calls, which are the WSGI contract. Never buffers a whole response: at most
 * one output buffer plus one chunk the app still owns. Never calls h1.c. */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/accesslog.h"
#include "core/conn_h1.h"
#include "core/exchange.h"
#include "core/numfmt.h"
#include "core/proto.h"
#include "core/tls.h"

/* ---- exchanges of other protocols (exchange.h) -------------------------- */

gp_conn *gp_exchange_new(gp_stream *parent, const gp_exchange_ops *ops, void *state)
{
    const gp_conn *p = (const gp_conn *)parent; /* every accepted stream is a gp_conn's */
    gp_conn *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->s.io.fd = -1;
    x->s.file_fd = -1;
    x->s.closed = true; /* the exchange has no socket of its own */
    x->s.env = p->s.env;
    x->env = p->env;
    x->cs = p->cs;
    x->listener = p->listener;
    x->peer = p->peer;
    x->peer_len = p->peer_len;
    x->fwd_trusted = p->fwd_trusted;
    x->xtls = gp_conn_tls((gp_conn *)p); /* lives as long as the connection, which outlives x */
    x->own_fd = -1;
    x->state = CS_ASYNC;
    x->xops = ops;
    x->xstate = state;
    return x;
}

void *gp_exchange_state(gp_conn *x)
{
    return x->xstate;
}

gp_worker_env *gp_exchange_env(gp_conn *x)
{
    return x->env;
}

void gp_exchange_free(gp_conn *x)
{
    gp_worker_env *e = x->env;
    if (x->app_cache && e->ops->cache_free) e->ops->cache_free(e->app, x->app_cache);
    free(x->alog);
    free(x);
}

void *gp_conn_app_cache(gp_conn *c)
{
    return c->app_cache;
}

void gp_conn_set_app_cache(gp_conn *c, void *cache)
{
    c->app_cache = cache;
}

void *gp_conn_app_state(gp_conn *c)
{
    return c->app_state;
}

void gp_conn_set_app_state(gp_conn *c, void *state)
{
    c->app_state = state;
}

struct gp_tls *gp_conn_tls(gp_conn *c)
{
    if (c->xops) return c->xtls;
    return c->s.tr == &gp_transport_tls ? c->s.t : NULL;
}

const struct sockaddr *gp_conn_peer(gp_conn *c, socklen_t *len)
{
    *len = c->peer_len;
    return (const struct sockaddr *)&c->peer;
}

bool gp_conn_forwarded(gp_conn *c, const gp_http_request *req, gp_fwd *out)
{
    /* --no-proxy-headers (uvicorn's): X-Forwarded-* / Forwarded from no one */
    return req->proxy_headers && c->fwd_trusted && c->env->cfg->proxy_headers &&
           gp_fwd_resolve(&c->env->cfg->forwarded_allow, req->headers, req->num_headers, req->host,
                          req->host_len, out);
}

const gp_addr *gp_conn_local(gp_conn *c)
{
    return c->listener->addr;
}

/* ---- output ------------------------------------------------------------- */

static inline int out_reserve(gp_conn *c, size_t n)
{
    return gp_stream_out_reserve(&c->s, n);
}

static inline void out_put(gp_conn *c, const void *p, size_t n)
{
    gp_stream_out_put(&c->s, p, n);
}

#define OUT_LIT(c, s) out_put(c, s, sizeof(s) - 1)

int gp_conn_wait_fd(gp_conn *c, short events, int timeout_ms)
{
    const gp_app_ops *ops = c->env->ops;
    if (ops->blocking) ops->blocking(c->env->app, 1);
    int n = gp_stream_wait(&c->s, events, timeout_ms);
    if (ops->blocking) ops->blocking(c->env->app, 0);
    return n;
}

static int flush(gp_conn *c);
static void async_rewatch(gp_conn *c);

/* flush, waiting for the socket as long as the client takes bytes. On a
 * request thread the wait is not the request's own time: its --timeout clock
 * stops meanwhile (and resumes where it was). */
static int flush_blocking(gp_conn *c)
{
    int r;
    while ((r = flush(c)) == GP_AGAIN) {
        uint64_t ran = 0, t0 = 0;
        if (c->tslot) {
            t0 = gp_monotonic_ms();
            ran = atomic_exchange_explicit(&c->tslot->started_ms, 0, memory_order_acq_rel);
        }
        int n = gp_conn_wait_fd(c, POLLOUT, (int)(c->env->cfg->send_timeout * 1000));
        if (ran)
            atomic_store_explicit(&c->tslot->started_ms, ran + (gp_monotonic_ms() - t0),
                                  memory_order_release);
        if (n <= 0) {
            c->s.broken = true;
            return GP_ERROR;
        }
    }
    return r;
}

/* The stream's flush; an async app's deadline goes back to its idle one
 * once everything is out. */
static int flush(gp_conn *c)
{
    int r = gp_stream_flush(&c->s);
    if (r == GP_OK && c->state == CS_ASYNC) gp_conn_async_idle_deadline(c);
    return r;
}

int gp_conn_flush_queued(gp_conn *c)
{
    return flush(c);
}

/* After queueing output: an async app is told through resume once the socket
 * drained; a WSGI app returns GP_APP_PENDING, on the loop or on a thread. */
static int finish_write(gp_conn *c)
{
    int r = flush(c);
    if (r == GP_AGAIN && c->state == CS_ASYNC) async_rewatch(c);
    return r;
}

static int status_has_no_body(int status)
{
    return status < 200 || status == 204 || status == 304;
}

int gp_conn_head_begin(gp_conn *c, const char *status, size_t status_len)
{
    XRET(c, head_begin(c, status, status_len));
    if (c->head_sent) return GP_ERROR;
    c->status = (status[0] - '0') * 100 + (status[1] - '0') * 10 + (status[2] - '0');
    c->resp_has_length = false;
    c->has_date = c->has_server = false;
    if (c->alog_pending && c->env->alog_fmt->num_out)
        gp_alog_forget_response(c->alog, c->env->alog_fmt);
    if (c->s.out) c->s.out_len = c->s.out_pos = 0;
    if (out_reserve(c, status_len + 11)) return GP_ERROR;
    OUT_LIT(c, "HTTP/1.1 ");
    out_put(c, status, status_len);
    OUT_LIT(c, "\r\n");
    return GP_OK;
}

int gp_conn_head_begin_status(gp_conn *c, int status)
{
    if (status < 100 || status > 999) return GP_ERROR;
    const char *why = gp_http_reason(status);
    size_t wl = strlen(why);
    char line[64];
    line[0] = (char)('0' + status / 100);
    line[1] = (char)('0' + status / 10 % 10);
    line[2] = (char)('0' + status % 10);
    line[3] = ' ';
    memcpy(line + 4, why, wl);
    return gp_conn_head_begin(c, line, 4 + wl);
}

/* token characters of RFC 9110 */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static int parse_length(const char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    if (n == 0 || n > 19) return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return 0;
}

int gp_conn_field_ok(const char *name, size_t name_len, const char *value, size_t value_len)
{
    if (name_len == 0) return 0;
    for (size_t i = 0; i < name_len; i++)
        if (!tchar[(unsigned char)name[i]]) return 0;
    for (size_t i = 0; i < value_len; i++) {
        unsigned char ch = (unsigned char)value[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return 0;
    }
    return 1;
}

int gp_conn_head_add(gp_conn *c, const char *name, size_t name_len, const char *value,
                     size_t value_len)
{
    XRET(c, head_add(c, name, name_len, value, value_len));
    if (!gp_conn_field_ok(name, name_len, value, value_len)) return GP_ERROR;
    switch (name_len) {
    case 4:
        if (gp_http_token_eq(name, name_len, "date")) c->has_date = true;
        break;
    case 6:
        if (gp_http_token_eq(name, name_len, "server")) c->has_server = true;
        break;
    case 10:
        if (gp_http_token_eq(name, name_len, "connection")) {
            /* the app may ask to close; keep-alive is ours to decide */
            for (size_t i = 0; i + 5 <= value_len; i++)
                if (gp_http_token_eq(value + i, 5, "close")) c->keep_alive = false;
            return GP_OK;
        }
        if (gp_http_token_eq(name, name_len, "keep-alive")) return GP_OK;
        break;
    case 14:
        if (gp_http_token_eq(name, name_len, "content-length")) {
            uint64_t n;
            if (parse_length(value, value_len, &n) || c->resp_has_length) return GP_ERROR;
            c->resp_has_length = true;
            c->resp_left = n;
        }
        break;
    case 17:
        if (gp_http_token_eq(name, name_len, "transfer-encoding")) return GP_OK;
        break;
    }
    if (c->alog_pending && c->env->alog_fmt->num_out) /* %({name}o)s */
        gp_alog_capture_response(c->alog, c->env->alog_fmt, name, name_len, value, value_len);
    if (out_reserve(c, name_len + value_len + 4)) return GP_ERROR;
    out_put(c, name, name_len);
    OUT_LIT(c, ": ");
    out_put(c, value, value_len);
    OUT_LIT(c, "\r\n");
    return GP_OK;
}

void gp_conn_describe(char *dst, size_t cap, const gp_http_request *req)
{
    size_t m = req->method_len < 16 ? req->method_len : 16;
    size_t t = req->target_len;
    if (m + 2 + t > cap) t = cap - m - 2;
    memcpy(dst, req->method, m);
    dst[m] = ' ';
    memcpy(dst + m + 1, req->target, t);
    dst[m + 1 + t] = 0;
}

void gp_conn_head_set_length(gp_conn *c, uint64_t length)
{
    XVOID(c, head_set_length(c, length));
    /* RFC 9110 8.6: no Content-Length on 1xx/204, and on 304 only the real one */
    if (c->resp_has_length || status_has_no_body(c->status)) return;
    /* an app answering HEAD gives no body (Flask, Django), so 0 would tell
     * the client and any cache the GET is empty: say nothing, as gunicorn */
    if (c->head_method && length == 0) return;
    char num[24];
    size_t k = gp_put_u64(num, length, 10);
    if (gp_conn_head_add(c, "Content-Length", 14, num, k) == GP_OK) {
        c->resp_has_length = true;
        c->resp_left = length;
    }
}

/* Unread request body that is not in the buffer forces a close: reading it
 * all just to keep the connection is not worth a slow upload. */
static void settle_request_body(gp_conn *c)
{
    if (c->body_done) return;
    if (c->body_kind == GP_HTTP_BODY_LENGTH) {
        uint64_t avail = c->s.len - c->s.rpos;
        if (avail >= c->body_left) {
            c->s.rpos += (size_t)c->body_left;
            c->body_left = 0;
            c->body_done = true;
            return;
        }
    } else if (c->body_kind == GP_HTTP_BODY_CHUNKED && c->s.len > c->s.rpos) {
        size_t used, outn = c->s.len - c->s.rpos;
        int r = gp_chunked_decode(&c->chunked, c->s.buf + c->s.rpos, c->s.len - c->s.rpos, &used,
                                  c->s.buf + c->s.rpos, &outn);
        c->s.rpos += used;
        if (r == GP_CHUNKED_DONE) {
            c->body_done = true;
            return;
        }
    }
    c->keep_alive = false;
}

/* Adaptive workers: the master asks a worker holding more than its share
 * of keep-alive clients to end some (Connection: close), so that they
 * reconnect to a worker it added. One relaxed load when it asks nothing;
 * request threads may race here, hence the exchange. */
static bool shed_one(gp_slot *s)
{
    uint32_t n = atomic_load_explicit(&s->shed, memory_order_relaxed);
    while (n && !atomic_compare_exchange_weak_explicit(&s->shed, &n, n - 1, memory_order_relaxed,
                                                       memory_order_relaxed)) {
    }
    return n != 0;
}

int gp_conn_head_end(gp_conn *c)
{
    XRET(c, head_end(c));
    gp_worker_env *e = c->env;
    settle_request_body(c);
    if (e->stopping || (c->keep_alive && shed_one(e->slot))) c->keep_alive = false;
    c->no_body = c->head_method || status_has_no_body(c->status);
    c->chunked_out = false;
    if (!c->resp_has_length && !c->no_body) {
        if (c->version_minor >= 1) c->chunked_out = true;
        else c->keep_alive = false; /* HTTP/1.0: the close delimits the body */
    }
    if (out_reserve(c, e->date_len + 96)) return GP_ERROR;
    if (!c->has_date)
        out_put(c, e->date_lines[atomic_load_explicit(&e->date_idx, memory_order_acquire)],
                e->date_len);
    if (!c->has_server) OUT_LIT(c, "Server: gallop\r\n");
    if (c->chunked_out) OUT_LIT(c, "Transfer-Encoding: chunked\r\n");
    if (c->up) {
        OUT_LIT(c, "Upgrade: ");
        out_put(c, c->up_proto->name, strlen(c->up_proto->name));
        OUT_LIT(c, "\r\nConnection: Upgrade\r\n");
    } else if (!c->keep_alive) OUT_LIT(c, "Connection: close\r\n");
    else if (c->version_minor == 0) OUT_LIT(c, "Connection: keep-alive\r\n");
    OUT_LIT(c, "\r\n");
    c->head_sent = true;
    if (c->up) { /* from here the stream is the new protocol's, not an HTTP body */
        c->no_body = c->chunked_out = c->resp_has_length = false;
        c->resp_ended = true;
        c->keep_alive = false;
        c->want_input = true;
    }
    return GP_OK;
}

int gp_conn_flush(gp_conn *c)
{
    XRET(c, flush(c));
    return c->s.broken ? GP_ERROR : finish_write(c);
}

int gp_conn_head_sent(gp_conn *c)
{
    XRET(c, head_sent(c));
    return c->head_sent;
}

static size_t chunk_prefix(char *dst, uint64_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t k = 0;
    do tmp[k++] = hex[n & 15];
    while ((n >>= 4));
    for (size_t i = 0; i < k; i++) dst[i] = tmp[k - 1 - i];
    dst[k] = '\r';
    dst[k + 1] = '\n';
    return k + 2;
}

/* Clips a body piece to the declared Content-Length; an app that says less
 * than it sends would otherwise desynchronise the stream. */
static size_t clip_to_length(gp_conn *c, size_t len)
{
    if (c->resp_has_length) {
        if (len > c->resp_left) {
            len = (size_t)c->resp_left;
            c->keep_alive = false;
        }
        c->resp_left -= len;
    }
    if (!c->no_body) c->resp_bytes += len;
    return len;
}

int gp_conn_write(gp_conn *c, const void *data, size_t len)
{
    XRET(c, write(c, data, len));
    if (c->s.broken) return GP_ERROR;
    len = clip_to_length(c, len);
    if (c->no_body || len == 0) return GP_OK;
    size_t framing = c->chunked_out ? 20 : 0;
    if (c->s.out_len + len + framing <= GP_IO_BUF_SIZE ||
        (c->s.out && c->s.out_len + len + framing <= c->s.out_cap)) {
        if (out_reserve(c, len + framing)) return GP_ERROR;
        if (c->chunked_out) c->s.out_len += chunk_prefix(c->s.out + c->s.out_len, len);
        out_put(c, data, len);
        if (c->chunked_out) OUT_LIT(c, "\r\n");
        return GP_OK;
    }
    if (c->chunked_out) {
        if (out_reserve(c, 20)) return GP_ERROR;
        c->s.out_len += chunk_prefix(c->s.out + c->s.out_len, len);
        c->s.crlf_after = true;
    }
    gp_stream_queue_ref(&c->s, data, len);
    return finish_write(c);
}

/* Written means on the socket, not just copied: WSGI's write() streams. */
int gp_conn_write_all(gp_conn *c, const void *data, size_t len)
{
    XRET(c, write_all(c, data, len));
    int r = gp_conn_write(c, data, len);
    return r == GP_ERROR ? r : flush_blocking(c);
}

void gp_conn_adopt_fd(gp_conn *c, int fd)
{
    XVOID(c, adopt_fd(c, fd));
    c->own_fd = fd;
}

int gp_conn_sendfile(gp_conn *c, int fd, off_t offset, uint64_t len)
{
    XRET(c, sendfile(c, fd, offset, len));
    if (c->s.broken) return GP_ERROR;
    len = clip_to_length(c, (size_t)len);
    if (c->no_body || len == 0) return GP_OK;
    if (c->chunked_out) {
        if (out_reserve(c, 20)) return GP_ERROR;
        c->s.out_len += chunk_prefix(c->s.out + c->s.out_len, len);
        c->s.crlf_after = true;
    }
    gp_stream_queue_file(&c->s, fd, offset, len);
    return finish_write(c);
}

void gp_conn_end_response_trailers(gp_conn *c, const char *fields, size_t len)
{
    XVOID(c, end_response(c, fields, len));
    if (c->resp_ended) return;
    if (!c->head_sent) gp_conn_head_end(c);
    c->resp_ended = true;
    if (c->resp_has_length && c->resp_left > 0 && !c->no_body) c->keep_alive = false;
    if (c->chunked_out && !c->s.broken && out_reserve(c, len + 5) == GP_OK) {
        OUT_LIT(c, "0\r\n");
        out_put(c, fields, len);
        OUT_LIT(c, "\r\n");
    }
}

void gp_conn_end_response(gp_conn *c)
{
    gp_conn_end_response_trailers(c, NULL, 0);
}

void gp_conn_set_close(gp_conn *c)
{
    XVOID(c, set_close(c));
    c->keep_alive = false;
    c->chunked_out = false; /* no last-chunk: the client must see a truncated body */
}

void gp_conn_send_error(gp_conn *c, int status, int close_after)
{
    XVOID(c, send_error(c, status, close_after));
    if (c->head_sent) {
        gp_conn_set_close(c);
        c->resp_ended = true;
        return;
    }
    if (close_after) c->keep_alive = false;
    gp_stream_drop_queued(&c->s);
    if (gp_conn_head_begin_status(c, status) ||
        gp_conn_head_add(c, "Content-Type", 12, "text/plain", 10)) {
        c->s.broken = true;
        return;
    }
    const char *why = gp_http_reason(status);
    char body[64];
    size_t bn = strlen(why);
    memcpy(body, why, bn);
    body[bn++] = '\n';
    gp_conn_head_set_length(c, bn);
    gp_conn_head_end(c);
    gp_conn_write(c, body, bn);
    gp_conn_end_response(c);
}

/* ---- apps that run as tasks on another loop (ASGI) ------------------------ */

static inline bool output_pending(const gp_conn *c)
{
    return gp_stream_output_pending(&c->s);
}

/* Input stays watched while the app runs, whether it asked for input or not:
 * that catches a disconnect at once, and costs no epoll_ctl per request. */
void gp_conn_async_rewatch(gp_conn *c)
{
    async_rewatch(c);
}

/* The deadline of an async request with no output waiting: --body-timeout
 * while the app waits for body bytes, else none. A response that is quiet
 * between pieces (server-sent events, a long poll) is never cut for it;
 * --send-timeout runs only while bytes wait for a client that takes none.
 * WebSocket sessions keep their own timers. */
void gp_conn_async_idle_deadline(gp_conn *c)
{
    if (c->up) return;
    bool body_wait = c->want_input && !c->body_done && !c->peer_gone;
    gp_conn_set_deadline(c, c->env->now + (body_wait ? c->env->cfg->body_timeout : 1e9));
}

static void async_rewatch(gp_conn *c)
{
    uint32_t ev = 0;
    /* a full buffer that body reads took from has room once compacted */
    if (!c->peer_gone && (!c->s.buf || c->s.len < c->s.cap || (c->s.rpos && !c->up))) ev |= EPOLLIN;
    bool pending = output_pending(c) && !c->s.broken;
    if (pending) {
        ev |= EPOLLOUT;
        double d = c->env->now + c->env->cfg->send_timeout;
        if (!c->up && c->s.deadline > d) gp_conn_set_deadline(c, d);
    }
    if (gp_stream_watch(&c->s, ev) < 0) c->peer_gone = c->s.broken = true;
}

int gp_conn_peer_gone(gp_conn *c)
{
    XRET(c, peer_gone(c));
    return c->peer_gone || c->s.broken;
}
