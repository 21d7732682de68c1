/* conn: one connection's HTTP/1.x work in the worker: reading heads, handing
 * requests to the app bridge, the request body, response framing and writing.
 * A sync app's body is read whole in the loop before the app runs (held in a
 * gp_body, body.c), so a slow uploader never holds the worker.
 *
 * Never blocks the loop except inside the app's own body reads and write()
 * calls, which are the WSGI contract. Never buffers a whole response: at most
 * one output buffer plus one chunk the app still owns. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/accesslog.h"
#include "core/exchange.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/numfmt.h"
#include "core/proto.h"
#include "core/static.h"
#include "core/tls.h"
#include "core/worker_internal.h"

/* out of line: its 32 KB line buffer would make every caller's frame probe
 * 8 pages of stack, log or not */
static void end_request_log(gp_conn *c) __attribute__((noinline));

static const gp_proto h1_proto;

/* An exchange of another protocol (exchange.h) is handed to its table; an
 * HTTP/1.1 connection pays one predictable branch per call. */
#define XRET(c, call)                                                                              \
    do {                                                                                           \
        if (__builtin_expect((c)->xops != NULL, 0)) return (c)->xops->call;                        \
    } while (0)
#define XVOID(c, call)                                                                             \
    do {                                                                                           \
        if (__builtin_expect((c)->xops != NULL, 0)) {                                              \
            (c)->xops->call;                                                                       \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* ---- connection lifetime ---------------------------------------------- */

gp_conn *gp_conn_new(gp_worker *w, int fd, int listener, const struct sockaddr_storage *peer,
                     socklen_t peer_len)
{
    bool trusted = gp_fwd_trusts(&w->cfg->forwarded_allow, (const struct sockaddr *)peer);
    bool proxy = w->listeners[listener].proxy;
    if (proxy && !trusted) { /* a PROXY header is believed from a trusted peer only */
        if (!w->proxy_warned || w->now > w->proxy_warned + 60) {
            w->proxy_warned = w->now;
            gp_warn("closing connections to a --proxy-protocol listener from peers not in "
                    "--forwarded-allow-ips (once a minute)");
        }
        return NULL;
    }
    gp_conn *c = w->free_conns;
    if (c) w->free_conns = c->next;
    else if (!(c = malloc(sizeof *c))) return NULL;
    memset(c, 0, sizeof *c);
    gp_stream_init(&c->s, &w->env, fd); /* the read buffer comes with the first bytes: idle costs no buffer */
    gp_stream_set_proto(&c->s, &h1_proto);
    gp_tls_ctx *tls = w->listeners[listener].tls;
    if (tls) {
        gp_tls *t = gp_tls_new(tls, fd, (const struct sockaddr *)&c->peer);
        if (!t) {
            free(c);
            return NULL;
        }
        gp_stream_set_transport(&c->s, &gp_transport_tls, t);
    }
    c->w = w;
    c->listener = listener;
    c->peer = *peer;
    c->peer_len = peer_len;
    c->fwd_trusted = trusted && w->cfg->proxy_headers; /* --no-proxy-headers: never */
    c->proxy_wait = proxy;
    c->own_fd = -1;
    gp_body_init(&c->held, NULL);
    c->state = CS_HEAD;
    if (gp_stream_watch(&c->s, EPOLLIN) < 0) {
        free(c);
        return NULL;
    }
    /* TLS: the handshake must be over within --header-timeout */
    gp_conn_set_deadline(c, w->now + (tls ? w->cfg->header_timeout : w->cfg->keep_alive));
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    w->num_conns++;
    if (gp_log_enabled(GP_LOG_DEBUG)) gp_log_conn("opened", fd, peer);
    return c;
}

/* Drops a body read ahead of the app, and the copy of its head. */
static void held_release(gp_conn *c)
{
    if (c->held_head) {
        free(c->held_head);
        c->held_head = NULL;
    }
    if (c->held.mem || c->held.fd >= 0) gp_body_free(&c->held);
    c->body_held = false;
}

static void to_thread(gp_conn *c, enum gp_thread_job job);

/* Closes now; the memory is recycled after this loop turn, since the batch of
 * events being handled may still name this connection. With request threads,
 * a response the app still owns is first handed to a thread to release. */
void gp_conn_close(gp_conn *c)
{
    gp_worker *w = c->w;
    if (c->dead) return;
    if (c->state == CS_APP_WAIT && w->pool) {
        /* the app's response state is Python's: a request thread releases
         * it (abort), then the connection closes for real on its way back */
        c->s.broken = true;
        to_thread(c, GP_JOB_ABORT);
        return;
    }
    if ((c->state == CS_APP_WAIT || c->state == CS_ASYNC) && w->ops->abort)
        w->ops->abort(w->app, c);
    if (c->state == CS_ASYNC) w->active_async--;
    c->dead = true;
    if (c->m_start_us) { /* cut off before its response was complete */
        gp_metrics_drop(w->slot);
        c->m_start_us = 0;
    }
    if (gp_log_enabled(GP_LOG_DEBUG)) gp_log_conn("closed", c->s.io.fd, &c->peer);
    if (c->alog_pending) end_request_log(c); /* cut off mid-response */
    gp_stream_close(&c->s);
    if (c->own_fd >= 0) close(c->own_fd);
    c->own_fd = -1;
    held_release(c);
    free(c->alog);
    c->alog = NULL;
    if (c->up) c->up->free(c);
    c->up = NULL;
    if (c->app_cache && w->ops->cache_free) w->ops->cache_free(w->app, c->app_cache);
    c->app_cache = NULL;
    if (c->prev) c->prev->next = c->next;
    else w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    w->num_conns--;
    c->next = w->dead;
    w->dead = c;
}

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
    x->w = p->w;
    x->listener = p->listener;
    x->peer = p->peer;
    x->peer_len = p->peer_len;
    x->fwd_trusted = p->fwd_trusted;
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

gp_worker *gp_exchange_worker(gp_conn *x)
{
    return x->w;
}

void gp_exchange_free(gp_conn *x)
{
    gp_worker *w = x->w;
    if (x->app_cache && w->ops->cache_free) w->ops->cache_free(w->app, x->app_cache);
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
    return req->proxy_headers && c->fwd_trusted && c->w->cfg->proxy_headers &&
           gp_fwd_resolve(&c->w->cfg->forwarded_allow, req->headers, req->num_headers, req->host,
                          req->host_len, out);
}

const gp_addr *gp_conn_local(gp_conn *c)
{
    return c->w->listeners[c->listener].addr;
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

/* Blocks the calling thread until fd is ready; the app's hook lets its other
 * threads run meanwhile. Returns poll's result. */
static int wait_fd(gp_conn *c, short events, int timeout_ms)
{
    const gp_app_ops *ops = c->w->ops;
    if (ops->blocking) ops->blocking(c->w->app, 1);
    int n = gp_stream_wait(&c->s, events, timeout_ms);
    if (ops->blocking) ops->blocking(c->w->app, 0);
    return n;
}

static int flush(gp_conn *c);
static void async_idle_deadline(gp_conn *c);

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
        int n = wait_fd(c, POLLOUT, (int)(c->w->cfg->send_timeout * 1000));
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
    if (r == GP_OK && c->state == CS_ASYNC) async_idle_deadline(c);
    return r;
}

static void async_rewatch(gp_conn *c);

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
    if (c->alog_pending && c->w->alog_fmt->num_out)
        gp_alog_forget_response(c->alog, c->w->alog_fmt);
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
    if (c->alog_pending && c->w->alog_fmt->num_out) /* %({name}o)s */
        gp_alog_capture_response(c->alog, c->w->alog_fmt, name, name_len, value, value_len);
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

int gp_conn_head_end(gp_conn *c)
{
    XRET(c, head_end(c));
    gp_worker *w = c->w;
    settle_request_body(c);
    if (w->stopping) c->keep_alive = false;
    c->no_body = c->head_method || status_has_no_body(c->status);
    c->chunked_out = false;
    if (!c->resp_has_length && !c->no_body) {
        if (c->version_minor >= 1) c->chunked_out = true;
        else c->keep_alive = false; /* HTTP/1.0: the close delimits the body */
    }
    if (out_reserve(c, w->date_len + 96)) return GP_ERROR;
    if (!c->has_date)
        out_put(c, w->date_lines[atomic_load_explicit(&w->date_idx, memory_order_acquire)],
                w->date_len);
    if (!c->has_server) OUT_LIT(c, "Server: gallop\r\n");
    if (c->chunked_out) OUT_LIT(c, "Transfer-Encoding: chunked\r\n");
    if (c->up) {
        OUT_LIT(c, "Upgrade: ");
        out_put(c, c->up_proto->name, strlen(c->up_proto->name));
        OUT_LIT(c, "\r\nConnection: Upgrade\r\n");
    }
    else if (!c->keep_alive) OUT_LIT(c, "Connection: close\r\n");
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

int gp_conn_out_append(gp_conn *c, const void *p, size_t n)
{
    if (out_reserve(c, n)) return GP_ERROR;
    out_put(c, p, n);
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

/* ---- request body --------------------------------------------------------- */

static ssize_t body_fail(gp_conn *c, int code, int status)
{
    c->keep_alive = false;
    c->s.broken = code == GP_BODY_CLOSED;
    c->body_error = status;
    c->body_done = true;
    return code;
}

/* Waits for input. Returns 1 when readable, or a GP_BODY_* code. Gives up
 * before --timeout would kill the worker over this wait. */
static int wait_readable(gp_conn *c)
{
    const gp_config *cfg = c->w->cfg;
    double s = cfg->body_timeout;
    if (cfg->timeout > 0 && s > cfg->timeout * 0.75) s = cfg->timeout * 0.75;
    int n = wait_fd(c, POLLIN, (int)(s * 1000));
    if (n == 0) return GP_BODY_TIMEOUT;
    return n < 0 ? GP_BODY_CLOSED : 1;
}

static ssize_t recv_some(gp_conn *c, char *dst, size_t n)
{
    for (;;) {
        ssize_t r = gp_stream_read(&c->s, dst, n);
        if (r > 0) return r;
        if (r != -EAGAIN) return GP_BODY_CLOSED;
        int wr = wait_readable(c);
        if (wr < 0) return wr;
    }
}

static void send_continue(gp_conn *c)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    c->continue_sent = true;
    gp_stream_write(&c->s, msg, sizeof msg - 1);
}

static ssize_t check_body_limit(gp_conn *c, size_t got)
{
    c->body_total += got;
    unsigned long long lim = c->w->cfg->limit_request_body;
    if (lim && c->body_total > lim) return body_fail(c, GP_BODY_TOO_LARGE, 413);
    return (ssize_t)got;
}

/* recv for the body: waits (block) or answers GP_BODY_AGAIN. */
static ssize_t body_recv(gp_conn *c, char *dst, size_t n, bool block)
{
    if (block) return recv_some(c, dst, n);
    ssize_t r = gp_stream_read(&c->s, dst, n);
    if (r > 0) return r;
    if (r == -EAGAIN) return GP_BODY_AGAIN;
    c->peer_gone = true;
    return GP_BODY_CLOSED;
}

static ssize_t body_read(gp_conn *c, char *dst, size_t n, bool block)
{
    if (c->body_held) {
        ssize_t r = gp_body_read(&c->held, dst, n);
        return r < 0 ? body_fail(c, GP_BODY_BAD, 500) : r;
    }
    if (c->body_done || n == 0) return 0;
    if (c->body_late) return body_fail(c, GP_BODY_TIMEOUT, 408);
    if (c->expect_continue && !c->continue_sent && !c->head_sent && c->s.rpos == c->s.len)
        send_continue(c);
    if (c->body_kind == GP_HTTP_BODY_LENGTH) {
        if (n > c->body_left) n = (size_t)c->body_left;
        size_t avail = c->s.len - c->s.rpos;
        ssize_t got;
        if (avail) {
            got = (ssize_t)(avail < n ? avail : n);
            memcpy(dst, c->s.buf + c->s.rpos, (size_t)got);
            c->s.rpos += (size_t)got;
            /* all taken: the room is free again (an async app's loop reads
             * into it while the app runs, and stops once it is full) */
            if (c->s.rpos == c->s.len) c->s.rpos = c->s.len = c->head_len = 0;
        } else {
            got = body_recv(c, dst, n, block);
            if (got == GP_BODY_AGAIN) return got;
            if (got < 0) return body_fail(c, (int)got, got == GP_BODY_TIMEOUT ? 408 : 400);
        }
        c->body_left -= (uint64_t)got;
        if (c->body_left == 0) c->body_done = true;
        return check_body_limit(c, (size_t)got);
    }
    /* chunked: decode what is buffered, read more raw bytes when that gives nothing */
    for (;;) {
        size_t used = 0, outn = n;
        int r = GP_CHUNKED_MORE;
        if (c->s.len > c->s.rpos)
            r = gp_chunked_decode(&c->chunked, c->s.buf + c->s.rpos, c->s.len - c->s.rpos, &used, dst,
                                  &outn);
        else outn = 0;
        c->s.rpos += used;
        if (r == GP_CHUNKED_ERROR) return body_fail(c, GP_BODY_BAD, 400);
        if (r == GP_CHUNKED_DONE) c->body_done = true;
        if (outn || c->body_done) return check_body_limit(c, outn);
        /* all buffered input consumed: make room and read more */
        if (c->s.rpos == c->s.len) c->s.rpos = c->s.len = c->head_len = 0;
        if (c->s.len == c->s.cap) {
            memmove(c->s.buf, c->s.buf + c->s.rpos, c->s.len - c->s.rpos);
            c->s.len -= c->s.rpos;
            c->s.rpos = c->head_len = 0;
        }
        ssize_t got = body_recv(c, c->s.buf + c->s.len, c->s.cap - c->s.len, block);
        if (got == GP_BODY_AGAIN) return got;
        if (got < 0) return body_fail(c, (int)got, got == GP_BODY_TIMEOUT ? 408 : 400);
        c->s.len += (size_t)got;
    }
}

ssize_t gp_conn_body_read(gp_conn *c, char *dst, size_t n)
{
    XRET(c, body_read(c, dst, n, true));
    return body_read(c, dst, n, true);
}

ssize_t gp_conn_body_read_nb(gp_conn *c, char *dst, size_t n)
{
    XRET(c, body_read(c, dst, n, false));
    return body_read(c, dst, n, false);
}

int gp_conn_body_done(gp_conn *c)
{
    XRET(c, body_done(c));
    return c->body_held ? gp_body_left(&c->held) == 0 : c->body_done;
}

int gp_conn_body_would_block(gp_conn *c)
{
    XRET(c, body_would_block(c));
    return !c->body_held && !c->body_done && c->s.rpos == c->s.len;
}

int gp_conn_body_error_status(gp_conn *c)
{
    XRET(c, body_error_status(c));
    return c->body_error;
}

/* ---- request heads and the response cycle ------------------------------- */

static uint64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* the vDSO's: no system call */
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Keeps what the access log and --log-slow need, since the head is gone by
 * the end: the format's values, the client a trusted proxy named (as the
 * app's REMOTE_ADDR), and when the head was in. */
static __attribute__((noinline)) void remember_for_log(gp_conn *c, const gp_http_request *req)
{
    const gp_alog_format *f = c->w->alog_fmt;
    if (!c->alog && !(c->alog = malloc(gp_alog_rec_size(f)))) return;
    gp_alog_capture(c->alog, f, req);
    gp_fwd fw;
    c->alog->host[0] = 0;
    if (req->proxy_headers && gp_conn_forwarded(c, req, &fw) && (fw.set & GP_FWD_FOR))
        snprintf(c->alog->host, sizeof c->alog->host, "%s", fw.client);
    c->alog_pending = true;
    c->alog->start_us = monotonic_us();
}

/* One access-log line, as --access-log-format and --log-format say, for a
 * response that completed or was cut off; the size is the body bytes that
 * left (clipped to the Content-Length, none for HEAD), "0" for none as
 * gunicorn writes it. A request never dispatched (a bad head) gets "-"s. */
static __attribute__((noinline)) void write_access_log(gp_conn *c, const gp_alog_rec *r,
                                                       uint64_t duration_us)
{
    char host[64] = "-", clf[40], iso[40], line[GP_ALOG_LINE_MAX];
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
    if (r && r->host[0]) snprintf(host, sizeof host, "%s", r->host);
    else if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof host);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof host);
    bool json = gp_log_json();
    gp_log_times(clf, json ? iso : NULL);
    uint64_t unsent = c->s.pend_len + c->s.file_left; /* a cut-off response's known rest */
    gp_alog_values v = {
        .host = host,
        .status = c->status,
        .bytes = c->resp_bytes > unsent ? c->resp_bytes - unsent : 0,
        .duration_us = duration_us,
        .pid = c->w->pid,
        .clf_time = clf,
        .iso_time = iso,
    };
    size_t n = gp_alog_render(c->w->alog_fmt, r, &v, json, line);
    gp_worker *w = c->w;
    ssize_t wr;
    do wr = write(w->access_fd, line, n);
    while (wr < 0 && errno == EINTR);
    if (wr == (ssize_t)n) {
        w->access_log_failed = false;
    } else if (!w->access_log_failed) { /* once, not a line per request */
        w->access_log_failed = true;
        gp_warn("cannot write the access log: %s; lines are lost until it can be written again",
                wr < 0 ? strerror(errno) : "short write");
    }
}

/* The request's end: its access-log line, and --log-slow's warning. */
static void end_request_log(gp_conn *c)
{
    gp_worker *w = c->w;
    const gp_alog_rec *r = c->alog_pending ? c->alog : NULL;
    uint64_t us = r ? monotonic_us() - r->start_us : 0;
    c->alog_pending = false;
    if (w->access_fd >= 0) write_access_log(c, r, us);
    /* a WebSocket's session is not a request that was slow */
    if (r && w->log_slow_us && us >= w->log_slow_us && !c->up) {
        char what[2 * GP_ALOG_FIELD];
        size_t m = gp_log_escape(what, GP_ALOG_FIELD, r->data[GP_ALOG_LINE], r->method_len);
        what[m++] = ' ';
        gp_log_escape(what + m, GP_ALOG_FIELD, r->data[GP_ALOG_RPATH],
                      r->len[GP_ALOG_RPATH] == GP_ALOG_ABSENT ? 0 : r->len[GP_ALOG_RPATH]);
        gp_warn("slow request: %s took %llu.%03llu s (status %d)", what,
                (unsigned long long)(us / 1000000), (unsigned long long)(us / 1000 % 1000),
                c->status);
    }
}

static void serve_buffered(gp_conn *c);

/* Nothing to wait for means out of epoll altogether: a registered socket
 * reports hang-ups even with no events asked, over and over. */
static void watch(gp_conn *c, uint32_t events)
{
    if (gp_stream_watch(&c->s, events) < 0) gp_conn_close(c);
}

/* Closes, but first lets the client read our last response: closing with
 * unread input would reset the connection and could destroy it. */
static void linger_close(gp_conn *c)
{
    if (c->s.broken || c->dead) {
        gp_conn_close(c);
        return;
    }
    gp_stream_shutdown(&c->s);
    c->state = CS_LINGER;
    gp_conn_set_deadline(c, c->w->now + GP_LINGER_S);
    c->body_total = 0;
    watch(c, EPOLLIN);
}

/* The response is fully written: log, then close or get ready for the next. */
static void response_complete(gp_conn *c)
{
    gp_worker *w = c->w;
    if (w->alog_on) end_request_log(c);
    gp_slot_request_end(w->slot, c->resp_bytes, c->status >= 500);
    if (c->m_start_us) {
        gp_metrics_end(w->slot, c->m_start_us, c->status);
        c->m_start_us = 0;
    }
    gp_stream_out_release(&c->s);
    c->app_state = NULL;
    if (c->own_fd >= 0) close(c->own_fd);
    c->own_fd = -1;
    if (c->held_head) held_release(c);
    /* a response that did not say close keeps the connection even while
     * stopping: the client may already be sending its next request, which
     * is answered with Connection: close */
    if (!c->keep_alive) {
        linger_close(c);
        return;
    }
    /* pipelined bytes move to the front for the next head */
    size_t rest = c->s.len - c->s.rpos;
    if (rest && c->s.rpos) memmove(c->s.buf, c->s.buf + c->s.rpos, rest);
    c->s.len = rest;
    c->s.rpos = c->head_len = 0;
    if (!rest) gp_stream_in_release(&c->s);
    c->state = CS_HEAD;
    double idle = rest ? w->cfg->header_timeout : w->cfg->keep_alive;
    if (w->stopping && !rest && idle > GP_STOP_IDLE_S) idle = GP_STOP_IDLE_S;
    gp_conn_set_deadline(c, w->now + idle);
    watch(c, EPOLLIN);
}

/* After the app returned or the response otherwise ended: drain output. */
static void after_app(gp_conn *c, gp_app_status st)
{
    if (c->dead) return;
    if (st == GP_APP_ASYNC) {
        c->state = CS_ASYNC;
        c->w->active_async++;
        gp_conn_set_deadline(c, c->w->now + 1e9); /* the app decides how long it takes */
        async_idle_deadline(c); /* unless it waits for a body that does not come */
        async_rewatch(c);
        return;
    }
    if (st == GP_APP_PENDING && !c->s.broken) {
        c->state = CS_APP_WAIT;
        watch(c, EPOLLOUT);
        return;
    }
    if (!c->resp_ended) gp_conn_send_error(c, 500, 0);
    int r = c->s.broken ? GP_ERROR : flush(c);
    if (r == GP_ERROR) {
        gp_conn_close(c);
    } else if (r == GP_AGAIN) {
        c->state = CS_FLUSH;
        watch(c, EPOLLOUT);
    } else {
        response_complete(c);
    }
}

static void reject(gp_conn *c, int status)
{
    c->version_minor = 1;
    c->head_method = false;
    c->head_sent = false;
    c->resp_ended = false;
    c->body_done = true;
    c->s.len = c->s.rpos = 0; /* what follows a bad head cannot be trusted */
    c->head.state = 0;
    /* a lingering connection reads into a scratch buffer: give back what a big
     * head made us allocate now, not when the linger ends */
    if (c->s.cap > GP_IO_BUF_SIZE) gp_stream_in_release(&c->s);
    gp_conn_send_error(c, status, 1);
    after_app(c, GP_APP_DONE);
}

static void run_app(gp_conn *c, gp_http_request *req);
static void hold_body(gp_conn *c, bool on_event);

/* Whether the body is read whole before the app runs: a sync app that would
 * block the worker on it, and a body not all here yet. */
static bool must_hold_body(gp_conn *c)
{
    gp_worker *w = c->w;
    if (c->body_done || !w->cfg->body_buffer_size || w->pool || w->ops->runs_as_tasks) return false;
    return c->body_kind != GP_HTTP_BODY_LENGTH || c->s.len - c->s.rpos < c->body_left;
}

/* Starts reading the body for the app (CS_BODY); the head is kept aside, to
 * be parsed again once the body is in, since the body may reuse its room. */
static void begin_hold(gp_conn *c)
{
    gp_worker *w = c->w;
    if (!(c->held_head = malloc(c->head_len))) {
        reject(c, 500);
        return;
    }
    memcpy(c->held_head, c->s.buf, c->head_len);
    c->held_head_len = c->head_len;
    gp_body_init(&c->held, NULL);
    c->state = CS_BODY;
    gp_conn_set_deadline(c, w->now + w->cfg->body_timeout);
    hold_body(c, false);
}

static void dispatch(gp_conn *c, gp_http_request *req, size_t head_len)
{
    gp_worker *w = c->w;
    c->head_len = c->s.rpos = head_len;
    c->version_minor = req->version_minor;
    c->keep_alive = req->keep_alive;
    c->head_method = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    c->head_sent = c->resp_ended = c->chunked_out = c->no_body = false;
    c->resp_bytes = 0;
    c->status = 0;
    c->body_kind = req->body;
    c->body_left = req->body == GP_HTTP_BODY_LENGTH ? req->content_length : 0;
    c->body_done =
        req->body == GP_HTTP_BODY_NONE || (req->body == GP_HTTP_BODY_LENGTH && c->body_left == 0);
    c->body_total = 0;
    c->body_error = 0;
    c->body_late = false;
    memset(&c->chunked, 0, sizeof c->chunked);
    c->expect_continue = req->expect_continue;
    c->continue_sent = false;
    if (w->alog_on) remember_for_log(c, req);
    if (w->cfg->num_metrics_binds && !c->m_start_us) c->m_start_us = gp_metrics_begin(w->slot);
    if (w->cfg->limit_request_body && req->body == GP_HTTP_BODY_LENGTH &&
        req->content_length > w->cfg->limit_request_body) {
        reject(c, 413);
        return;
    }
    /* a file under --static, answered without the app (so outside its concurrency limit) */
    if (w->statics && w->static_serve(w->statics, c, req)) {
        c->state = CS_FLUSH;
        after_app(c, GP_APP_DONE);
        return;
    }
    if (w->cfg->limit_concurrency && w->active_async >= w->cfg->limit_concurrency) {
        reject(c, 503);
        return;
    }
    if (must_hold_body(c)) {
        begin_hold(c);
        return;
    }
    run_app(c, req);
}

/* Hands a request whose head (and, when held, body) is in to the app. */
static void run_app(gp_conn *c, gp_http_request *req)
{
    gp_worker *w = c->w;
    if (w->pool) {
        to_thread(c, GP_JOB_START);
        return;
    }
    c->state = CS_APP_WAIT; /* the app owns the response from here */
    /* an app run as a task only gets scheduled here: its stalls show in the
     * loop's heartbeat, so the request text would be copied for nothing */
    bool tracked = !w->ops->runs_as_tasks;
    if (tracked)
        gp_slot_request_begin(w->slot, w->now_ms, req->method, req->method_len, req->target,
                              req->target_len);
    gp_app_status st = w->ops->start(w->app, c, req);
    c->state = CS_FLUSH;
    if (tracked) {
        gp_worker_update_clock(w); /* the app may have run long: deadlines start now */
        atomic_store_explicit(&w->slot->req_start_ms, 0, memory_order_relaxed);
        atomic_store_explicit(&w->slot->state, GP_WS_IDLE, memory_order_relaxed);
    }
    after_app(c, st);
}

/* The most body reads one connection gets per loop turn, so a fast upload
 * does not starve the others. */
#define HOLD_READS_PER_TURN 64

/* CS_BODY: reads what the socket has into the held body; once it is whole,
 * runs the app on it. Errors end the request here: 400 (bad chunked), 408
 * (timeout), 413 (past --limit-request-body), 500 (no room to hold it).
 * Pipelined requests after it are served here only on_event: from dispatch,
 * serve_buffered's own loop goes on with them (no recursion per request). */
static void hold_body(gp_conn *c, bool on_event)
{
    gp_worker *w = c->w;
    char tmp[GP_IO_BUF_SIZE];
    for (int i = 0; i < HOLD_READS_PER_TURN; i++) {
        ssize_t n = body_read(c, tmp, sizeof tmp, false);
        if (n == GP_BODY_AGAIN) return;
        if (n == GP_BODY_CLOSED) {
            gp_conn_close(c);
            return;
        }
        if (n < 0) {
            reject(c, c->body_error ? c->body_error : 400);
            return;
        }
        if (n > 0) {
            gp_conn_set_deadline(c, w->now + w->cfg->body_timeout);
            int r = gp_body_append(&c->held, tmp, (size_t)n, w->cfg->body_buffer_size);
            if (r < 0) {
                gp_warn("cannot hold a request body: %s", strerror(-r));
                reject(c, 500);
                return;
            }
        }
        if (c->body_done) break;
    }
    if (!c->body_done) return; /* more next turn: the socket is still readable */
    gp_http_request req;
    req.headers = w->headers;
    req.num_headers = w->cfg->limit_request_fields;
    c->body_held = true;
    if (gp_http_parse_request(c->held_head, c->held_head_len, &req, &w->limits) !=
        (int)c->held_head_len) {
        reject(c, 500);
        return;
    }
    run_app(c, &req);
    if (on_event && !c->dead && c->state == CS_HEAD) serve_buffered(c);
}

/* ---- request threads (--threads) -----------------------------------------
 *
 * A request thread runs the app's code and nothing else: start, then resume
 * each time the socket drained, and abort. Its writes never wait for the
 * socket (but see below): a GP_AGAIN makes the app return GP_APP_PENDING, as
 * on the loop, and the connection goes back to the loop in CS_APP_WAIT. The
 * loop flushes what is queued (the output buffer, the app's piece in place,
 * or the file for sendfile) without blocking, and once it is all out hands
 * the connection to a thread again to resume. So a slow reader holds neither
 * a thread nor the loop between pieces, the worker keeps accepting, and the
 * --timeout clock (gp_thread_slot.started_ms) runs only while app code does.
 *
 * Python stays on the threads: each holds the GIL while it runs the app; the
 * loop thread only sends bytes the app's state keeps alive (immutable while
 * the response waits) and never releases them: resume or abort does, on a
 * thread. The thread's last flush after the app returned does not wait
 * either (it has given the GIL up; the blocking hook would need it): what
 * the socket does not take then, the loop sends.
 *
 * Two waits stay on the thread, because the app's call stack is live there:
 * WSGI's write() callable and request body reads. They wait through the
 * blocking hook with the GIL dropped, and a write's wait for the client does
 * not count towards --timeout. */

/* Queues c for a request thread; the loop leaves it alone until it is back. */
static void to_thread(gp_conn *c, enum gp_thread_job job)
{
    c->state = CS_THREAD;
    c->s.off_loop = true; /* its writes must not touch the loop's timers */
    c->thread_job = (unsigned char)job;
    gp_loop_unwatch(&c->w->loop, &c->s.io); /* fails only when it was not watched */
    gp_pool_submit(c->w->pool, &c->job);
}

static gp_app_status thread_start(gp_conn *c, gp_http_header *headers, gp_thread_slot *ts)
{
    gp_worker *w = c->w;
    gp_http_request req;
    req.headers = headers;
    req.num_headers = w->cfg->limit_request_fields;
    /* the head is parsed again into this thread's array: the loop's is shared */
    if (gp_http_parse_request(c->s.buf, c->head_len, &req, &w->limits) != (int)c->head_len) {
        gp_conn_send_error(c, 500, 1);
        return GP_APP_DONE;
    }
    gp_conn_describe(ts->what, sizeof ts->what, &req);
    atomic_store_explicit(&ts->started_ms, gp_monotonic_ms(), memory_order_release);
    gp_app_status st = w->ops->start(w->app, c, &req);
    /* the head may be gone once the body was read: keep the text for resumes */
    if (st == GP_APP_PENDING) memcpy(c->what, ts->what, sizeof c->what);
    return st;
}

/* On a request thread: runs what c was queued for, then tries the rest of
 * the response once without waiting. gp_conn_job_done takes it from there. */
void gp_conn_job_run(gp_job *j, gp_http_header *headers, gp_thread_slot *ts)
{
    gp_conn *c = (gp_conn *)((char *)j - offsetof(gp_conn, job));
    gp_worker *w = c->w;
    gp_app_status st = GP_APP_DONE;
    c->tslot = ts;
    switch (c->thread_job) {
    case GP_JOB_START: st = thread_start(c, headers, ts); break;
    case GP_JOB_RESUME:
        memcpy(ts->what, c->what, sizeof ts->what);
        atomic_store_explicit(&ts->started_ms, gp_monotonic_ms(), memory_order_release);
        st = w->ops->resume(w->app, c);
        break;
    case GP_JOB_ABORT: w->ops->abort(w->app, c); break;
    }
    atomic_store_explicit(&ts->started_ms, 0, memory_order_release);
    if (st == GP_APP_DONE && !c->s.broken) {
        if (!c->resp_ended) gp_conn_send_error(c, 500, 0);
        flush(c);
    }
    c->tslot = NULL; /* after the last flush: it must not arm the loop's timers */
    c->thread_st = st;
}

/* Back on the loop's thread after a request thread finished with c. */
void gp_conn_job_done(gp_job *j)
{
    gp_conn *c = (gp_conn *)((char *)j - offsetof(gp_conn, job));
    c->s.off_loop = false;
    if (c->thread_st == GP_APP_PENDING) {
        c->state = CS_APP_WAIT;
        /* the app may have run long since its last write reset the deadline */
        gp_conn_set_deadline(c, c->w->now + c->w->cfg->send_timeout);
        watch(c, EPOLLOUT);
        return;
    }
    c->state = CS_FLUSH;
    after_app(c, GP_APP_DONE);
    if (!c->dead && c->state == CS_HEAD) serve_buffered(c);
}

/* The PROXY header before the first request (--proxy-protocol): the address
 * it names is the peer from now on, for the app and for whether its proxy
 * headers count. False while it is incomplete, and when it is not valid (the
 * connection is then closed: no HTTP answer to what is no HTTP client). */
static bool read_proxy_header(gp_conn *c)
{
    gp_pp_result pr;
    int r = gp_pp_parse(&c->pp, c->s.buf, c->s.len, &pr);
    if (r == 0) return false;
    if (r < 0) {
        gp_debug("closing a connection without a valid PROXY protocol header");
        gp_conn_close(c);
        return false;
    }
    if (pr.src.ss_family != AF_UNSPEC) {
        c->peer = pr.src;
        c->peer_len = pr.src_len;
        c->fwd_trusted = c->w->cfg->proxy_headers &&
                         gp_fwd_trusts(&c->w->cfg->forwarded_allow, (struct sockaddr *)&c->peer);
    }
    c->proxy_wait = false;
    c->s.len -= (size_t)r;
    memmove(c->s.buf, c->s.buf + r, c->s.len);
    return true;
}

/* Parses and serves every complete head in the buffer, in order. */
static void serve_buffered(gp_conn *c)
{
    gp_worker *w = c->w;
    while (!c->dead && c->state == CS_HEAD && c->s.len > 0) {
        if (c->proxy_wait && !read_proxy_header(c)) return;
        if (!c->s.len) return;
        gp_http_request req;
        req.headers = w->headers;
        req.num_headers = w->cfg->limit_request_fields;
        /* resumes where the last read's bytes ended: a head that trickles in
         * is scanned once */
        int r = gp_http_parse_head(&c->head, c->s.buf, c->s.len, &req, &w->limits);
        if (r < 0) {
            reject(c, -r);
            return;
        }
        if (r == 0) {
            if (c->s.len >= w->head_cap) reject(c, 431);
            else if (c->s.deadline > w->now + w->cfg->header_timeout)
                gp_conn_set_deadline(c, w->now + w->cfg->header_timeout);
            return;
        }
        dispatch(c, &req, (size_t)r);
    }
}

/* Gets a read buffer for a connection that has none. */
static int ensure_buffer(gp_conn *c)
{
    if (c->s.buf) return 0;
    if (gp_stream_in_ensure(&c->s) < 0) return -1;
    c->head_len = 0;
    return 0;
}

static void read_head(gp_conn *c)
{
    gp_worker *w = c->w;
    if (ensure_buffer(c) < 0) {
        gp_conn_close(c);
        return;
    }
    if (c->s.len == c->s.cap) {
        size_t want = c->s.cap * 2 > w->head_cap ? w->head_cap : c->s.cap * 2;
        if (want <= c->s.cap) {
            reject(c, 431);
            return;
        }
        char *nb = malloc(want);
        if (!nb) {
            gp_conn_close(c);
            return;
        }
        memcpy(nb, c->s.buf, c->s.len);
        gp_stream_in_release(&c->s);
        c->s.buf = nb;
        c->s.cap = want;
    }
    bool first = c->s.len == 0;
    ssize_t n = gp_stream_in_fill(&c->s);
    if (n <= 0) {
        if (n == -EAGAIN) return;
        gp_conn_close(c);
        return;
    }
    if (first) gp_conn_set_deadline(c, w->now + w->cfg->header_timeout);
    serve_buffered(c);
}

static void discard_input(gp_conn *c)
{
    char sink[4096];
    ssize_t n = gp_stream_read(&c->s, sink, sizeof sink);
    if (n == -EAGAIN) return;
    c->body_total += n > 0 ? (uint64_t)n : 0;
    if (n <= 0 || c->body_total > GP_LINGER_MAX) gp_conn_close(c);
}

/* ---- apps that run as tasks on another loop (ASGI) ------------------------ */

static bool output_pending(const gp_conn *c)
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
static void async_idle_deadline(gp_conn *c)
{
    if (c->up) return;
    bool body_wait = c->want_input && !c->body_done && !c->peer_gone;
    gp_conn_set_deadline(c, c->w->now + (body_wait ? c->w->cfg->body_timeout : 1e9));
}

static void async_rewatch(gp_conn *c)
{
    uint32_t ev = 0;
    /* a full buffer that body reads took from has room once compacted */
    if (!c->peer_gone && (!c->s.buf || c->s.len < c->s.cap || (c->s.rpos && !c->up))) ev |= EPOLLIN;
    bool pending = output_pending(c) && !c->s.broken;
    if (pending) {
        ev |= EPOLLOUT;
        double d = c->w->now + c->w->cfg->send_timeout;
        if (!c->up && c->s.deadline > d) gp_conn_set_deadline(c, d);
    }
    if (gp_stream_watch(&c->s, ev) < 0) c->peer_gone = c->s.broken = true;
}

void gp_conn_async_event(gp_stream *s, uint32_t events)
{
    gp_conn *c = (gp_conn *)s;
    if (c->dead) return;
    gp_worker *w = c->w;
    if (events & EPOLLOUT) {
        int r = flush(c);
        if (r == GP_AGAIN) return;
        if (r == GP_ERROR) c->peer_gone = true;
        if (c->up && r == GP_OK && c->up->on_drained(c) == GP_AGAIN) return;
        async_rewatch(c);
        w->ops->resume(w->app, c);
        if (c->dead || c->state != CS_ASYNC) goto next;
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->peer_gone) {
        if (ensure_buffer(c) < 0) {
            c->peer_gone = true;
        } else {
            if (c->s.len == c->s.cap && c->s.rpos && !c->up) { /* drop what body reads took */
                memmove(c->s.buf, c->s.buf + c->s.rpos, c->s.len - c->s.rpos);
                c->s.len -= c->s.rpos;
                c->s.rpos = c->head_len = 0;
            }
            if (c->s.len < c->s.cap) {
                ssize_t n = gp_stream_in_fill(&c->s);
                if (n > 0) {
                    if (!output_pending(c)) async_idle_deadline(c); /* a body byte came */
                } else if (n != -EAGAIN) {
                    c->peer_gone = true;
                }
            }
        }
        if (c->peer_gone || c->s.len == c->s.cap) async_rewatch(c);
        if (c->up) c->up->on_input(c);
        else if (c->want_input || c->peer_gone) w->ops->readable(w->app, c);
    }
next:
    if (!c->dead && c->state == CS_HEAD) serve_buffered(c);
}

void gp_conn_wait_input(gp_conn *c, int on)
{
    XVOID(c, wait_input(c, on));
    bool resumed = on && !c->want_input;
    c->want_input = on;
    if (resumed && c->up && c->state == CS_ASYNC) {
        async_rewatch(c);
        c->up->on_input(c); /* frames already buffered while paused */
        return;
    }
    if (c->state == CS_ASYNC) {
        if (!output_pending(c)) async_idle_deadline(c);
        async_rewatch(c);
    }
}

int gp_conn_peer_gone(gp_conn *c)
{
    XRET(c, peer_gone(c));
    return c->peer_gone || c->s.broken;
}

void gp_conn_app_done(gp_conn *c)
{
    XVOID(c, app_done(c));
    if (c->dead || c->state != CS_ASYNC) return;
    c->w->active_async--;
    c->want_input = false;
    c->state = CS_FLUSH;
    gp_stream_set_proto(&c->s, &h1_proto); /* an upgraded protocol ends with its exchange */
    if (c->peer_gone) c->s.broken = true;
    after_app(c, GP_APP_DONE);
    if (!c->dead && c->state == CS_HEAD) serve_buffered(c);
}

static void h1_on_event(gp_stream *s, uint32_t events)
{
    gp_conn *c = (gp_conn *)s;
    if (c->dead) return;
    gp_app_status st;
    switch (c->state) {
    case CS_HEAD:
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_head(c);
        break;
    case CS_APP_WAIT:
        switch (flush(c)) {
        case GP_AGAIN: return;
        case GP_ERROR:
            gp_conn_close(c); /* tells the app through abort */
            return;
        }
        if (c->w->pool) { /* the app's next pieces come from a request thread */
            to_thread(c, GP_JOB_RESUME);
            return;
        }
        c->state = CS_FLUSH; /* not CS_APP_WAIT: a close now must not abort twice */
        st = c->w->ops->resume(c->w->app, c);
        after_app(c, st);
        if (!c->dead && c->state == CS_HEAD) serve_buffered(c);
        break;
    case CS_FLUSH:
        switch (flush(c)) {
        case GP_AGAIN: return;
        case GP_ERROR: gp_conn_close(c); return;
        }
        response_complete(c);
        if (!c->dead && c->state == CS_HEAD) serve_buffered(c);
        break;
    case CS_BODY:
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) hold_body(c, true);
        break;
    case CS_LINGER: discard_input(c); break;
    case CS_THREAD: break;
    case CS_ASYNC: gp_conn_async_event(s, events); break;
    }
}

void gp_conn_on_timeout(gp_conn *c)
{
    if (c->proxy_wait) { /* no PROXY header in time: nothing HTTP to answer */
        gp_conn_close(c);
        return;
    }
    if ((c->state == CS_HEAD && c->s.len > 0 && !c->head_len) || c->state == CS_BODY) {
        reject(c, 408);
        return;
    }
    if (c->state == CS_ASYNC && !output_pending(c)) {
        /* quiet is fine; only an app waiting for body bytes that do not come
         * is told (408 through its receive), and only once */
        gp_conn_set_deadline(c, c->w->now + 1e9);
        if (c->want_input && !c->body_done && !c->body_late) {
            c->body_late = true;
            c->w->ops->readable(c->w->app, c);
        }
        return;
    }
    /* stopping: a request crossing our FIN is read and dropped, not reset */
    if (c->state == CS_HEAD && c->w->stopping) {
        linger_close(c);
        return;
    }
    gp_conn_close(c);
}

/* An idle keep-alive connection gets a moment to send its next request
 * (answered with Connection: close) rather than a close that could cross
 * that request on the wire: reloads under load then lose nothing. */
void gp_conn_on_stop(gp_conn *c)
{
    /* keep_alive stays: a response whose head already went out without
     * Connection: close must not be followed by a close; the next head
     * says close (gp_conn_head_end sees w->stopping) */
    if (c->state == CS_THREAD) return;
    if (c->state == CS_HEAD && c->s.len == 0 && c->s.deadline > c->w->now + GP_STOP_IDLE_S)
        gp_conn_set_deadline(c, c->w->now + GP_STOP_IDLE_S);
}

static void h1_on_timeout(gp_stream *s)
{
    gp_conn_on_timeout((gp_conn *)s);
}

static void h1_on_stop(gp_stream *s)
{
    gp_conn_on_stop((gp_conn *)s);
}

/* A request thread's connection is closed on its way back, not under it. */
static void h1_on_close(gp_stream *s)
{
    gp_conn *c = (gp_conn *)s;
    if (c->state != CS_THREAD) gp_conn_close(c);
}

static const gp_proto h1_proto = {
    .name = "http/1.1",
    .on_event = h1_on_event,
    .on_timeout = h1_on_timeout,
    .on_stop = h1_on_stop,
    .on_close = h1_on_close,
};

void gp_conn_on_event(gp_io *io, uint32_t events)
{
    gp_stream_on_io(io, events);
}

/* ---- upgraded protocols (WebSocket) --------------------------------------- */

void gp_conn_upgrade(gp_conn *c, const gp_proto *p, const gp_upgrade_hooks *h, void *state)
{
    c->up = h;
    c->up_proto = p;
    c->up_state = state;
}

void gp_conn_upgrade_begin(gp_conn *c)
{
    gp_stream_set_proto(&c->s, c->up_proto);
}

void *gp_conn_upgrade_state(gp_conn *c)
{
    return c->up_state;
}

bool gp_conn_in_app(gp_conn *c)
{
    return !c->dead && c->state == CS_ASYNC;
}

bool gp_conn_reading(gp_conn *c)
{
    return !c->dead && c->state == CS_ASYNC && c->want_input;
}

bool gp_conn_input_gone(gp_conn *c)
{
    return c->peer_gone;
}

bool gp_conn_closed(gp_conn *c)
{
    return c->dead;
}

const gp_config *gp_conn_config(gp_conn *c)
{
    return c->w->cfg;
}

const gp_app_ops *gp_conn_app_ops(gp_conn *c, void **app)
{
    *app = c->w->app;
    return c->w->ops;
}
