/* h2_proto: HTTP/2 as the protocol of a connection's stream (proto.h), and
 * its streams as exchanges of the bridge (exchange.h).
 *
 * Owns the ways in from HTTP/1.1 (the client preface; "Upgrade: h2c"), the
 * exchange table that maps conn.h's calls onto h2x, and the h2x environment
 * of a connection (its gp_conn per stream, pump, blocking wait, date line).
 * HTTP/1.1 (h1.c) reaches it only through env->h2 (gp_h2_entry), set by the
 * worker, so the two never call each other in a circle. Request threads
 * (--threads) stay HTTP/1.1's: an exchange runs on the loop's thread. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "core/exchange.h"
#include "core/h2_conn.h"
#include "core/h2x.h"
#include "core/proto.h"
#include "core/static.h"
#include "core/h2_proto.h"
#include "core/h1.h"
#include <stdatomic.h>
#include <sys/epoll.h>

typedef struct h2p {
    gp_h2_conn *hc;
    gp_h2x_env env;
    gp_conn *parent;
    struct h2p *soon_next; /* on soon_list */
    bool soon_queued;
    bool live; /* the stream's protocol now: its output may wait */
} h2p;

/* ---- the exchange table: conn.h calls on an h2 stream ---- */
static gp_h2x *X(gp_conn *c)
{
    return gp_exchange_state(c);
}
static int xo_head_begin(gp_conn *c, const char *s, size_t n)
{
    return gp_h2x_head_begin(X(c), s, n);
}
static int xo_head_add(gp_conn *c, const char *n, size_t nl, const char *v, size_t vl)
{
    return gp_h2x_head_add(X(c), n, nl, v, vl);
}
static void xo_head_set_length(gp_conn *c, uint64_t l)
{
    gp_h2x_head_set_length(X(c), l);
}
static int xo_head_end(gp_conn *c)
{
    return gp_h2x_head_end(X(c));
}
static int xo_head_sent(gp_conn *c)
{
    return gp_h2x_head_sent(X(c));
}
static int xo_write(gp_conn *c, const void *d, size_t n)
{
    return gp_h2x_write(X(c), d, n);
}
static int xo_write_all(gp_conn *c, const void *d, size_t n)
{
    return gp_h2x_write_all(X(c), d, n);
}
static int xo_sendfile(gp_conn *c, int fd, off_t off, uint64_t n)
{
    return gp_h2x_sendfile(X(c), fd, off, n);
}
static int xo_flush(gp_conn *c)
{
    return gp_h2x_flush(X(c));
}
static void xo_end(gp_conn *c, const char *f, size_t n)
{
    gp_h2x_end_response_trailers(X(c), f, n);
}
static void xo_set_close(gp_conn *c)
{
    gp_h2x_set_close(X(c));
}
static void xo_send_error(gp_conn *c, int status, int close_after)
{
    gp_h2x_send_error(X(c), status, close_after);
}
static ssize_t xo_body_read(gp_conn *c, char *d, size_t n, bool block)
{
    return block ? gp_h2x_body_read(X(c), d, n) : gp_h2x_body_read_nb(X(c), d, n);
}
static int xo_body_done(gp_conn *c)
{
    return gp_h2x_body_done(X(c));
}
static int xo_body_would_block(gp_conn *c)
{
    return gp_h2x_body_would_block(X(c));
}
static int xo_body_error_status(gp_conn *c)
{
    return gp_h2x_body_error_status(X(c));
}
static void xo_wait_input(gp_conn *c, int on)
{
    gp_h2x_wait_input(X(c), on);
}
static int xo_peer_gone(gp_conn *c)
{
    return gp_h2x_peer_gone(X(c));
}
static void xo_app_done(gp_conn *c)
{
    gp_h2x_app_done(X(c));
}
static void xo_adopt_fd(gp_conn *c, int fd)
{
    gp_h2x_adopt_fd(X(c), fd);
}

static const gp_exchange_ops H2_EXCHANGE = {
    xo_head_begin, xo_head_add,  xo_head_set_length, xo_head_end,       xo_head_sent,
    xo_write,      xo_write_all, xo_sendfile,        xo_flush,          xo_end,
    xo_set_close,  xo_send_error, xo_body_read,      xo_body_done,      xo_body_would_block,
    xo_body_error_status, xo_wait_input, xo_peer_gone, xo_app_done,     xo_adopt_fd,
};

/* ---- the h2x environment of one connection ---- */
static gp_conn *env_conn_of(void *owner, gp_h2x *x, const gp_http_request *req)
{
    h2p *p = owner;
    gp_conn *c = gp_exchange_new(gp_conn_stream(p->parent), &H2_EXCHANGE, x);
    if (c) gp_exchange_begin(c, req);
    return c;
}
static void h2_close(gp_stream *s);

/* The app's ready tasks have run: what they answered leaves, one write a
 * connection. Taken one at a time from the list itself, which a close
 * (of this connection or, through an app it aborts, another) edits. */
/* The worker's HTTP/2 connections whose output waits for the app's ready
 * tasks: one list a process (a worker has one loop, and only its thread
 * runs HTTP/2). */
static h2p *soon_list;

static void run_soon(void *arg)
{
    h2p *p;
    while ((p = soon_list)) {
        soon_list = p->soon_next;
        p->soon_queued = false;
        p->soon_next = NULL;
        if (gp_h2_conn_pump(p->hc) != GP_OK) h2_close(gp_conn_stream(p->parent));
    }
}

static void soon_unlink(h2p *p)
{
    if (!p->soon_queued) return;
    h2p **pp = &soon_list;
    while (*pp && *pp != p) pp = &(*pp)->soon_next;
    if (*pp) *pp = p->soon_next;
    p->soon_queued = false;
}

/* Output waits where more of it is coming: to the end of the event that
 * runs the apps (gp_h2_conn_busy), or, for tasks (ASGI), until the tasks
 * ready now have run; so ten streams answered in one turn cost one write
 * (one TLS record), not ten. */
static void env_pump(void *owner)
{
    h2p *p = owner;
    if (gp_h2_conn_busy(p->hc) || p->soon_queued) return;
    const gp_worker_env *e = gp_conn_env(p->parent);
    if (p->live && e->ops->soon) {
        bool ask = !soon_list;
        p->soon_next = soon_list;
        soon_list = p;
        p->soon_queued = true;
        if (!ask || e->ops->soon(e->app, run_soon, NULL) == 0) return;
        run_soon(NULL);
        return;
    }
    gp_h2_conn_pump(p->hc);
}
static void env_flush(void *owner)
{
    h2p *p = owner;
    gp_h2_conn_pump(p->hc);
}
/* A blocking call of a sync app waits on this connection alone: its
 * session takes frames (window updates, body) while other streams' new
 * requests stay queued until the app returns. What waited to be gathered
 * goes first: the peer may be waiting on it (a window update). */
static void env_wait(void *owner, int ms)
{
    h2p *p = owner;
    gp_h2_conn_pump(p->hc);
    gp_stream *s = gp_conn_stream(p->parent);
    struct pollfd pfd = {s->io.fd, POLLIN | POLLOUT, 0};
    if (!gp_stream_output_pending(s)) pfd.events = POLLIN;
    if (poll(&pfd, 1, ms) > 0) gp_h2_conn_event(p->hc, EPOLLIN | EPOLLOUT);
}
static const char *env_date(void *owner, size_t *len)
{
    h2p *p = owner;
    const gp_worker_env *e = gp_conn_env(p->parent);
    const char *line = e->date_lines[atomic_load_explicit(&e->date_idx, memory_order_acquire)];
    *len = e->date_len - 8; /* "Date: " and CRLF off */
    return line + 6;
}
static int env_static(void *owner, gp_conn *c, const gp_http_request *req)
{
    h2p *p = owner;
    return gp_static_serve(gp_conn_env(p->parent)->statics, c, req);
}

static void env_done(void *owner, gp_h2x *x, int status, uint64_t bytes)
{
    /* the log line and the counts, then the exchange's gp_conn goes */
    gp_exchange_end(gp_h2x_conn(x), status, bytes);
    gp_exchange_free(gp_h2x_conn(x));
}

/* ---- the protocol table on the connection's stream ---- */
static h2p *P(gp_stream *s)
{
    return gp_conn_upgrade_state(gp_stream_conn(s));
}

/* The connection closes (ours or the worker's doing): the session goes,
 * and with it every exchange (on_close: the apps abort). */
static void h2_free(gp_conn *c)
{
    h2p *p = gp_conn_upgrade_state(c);
    if (!p) return;
    p->live = false; /* what the aborted apps write now has nowhere to wait */
    soon_unlink(p);
    gp_h2_conn_free(p->hc);
    free(p);
}

static void h2_unused_input(gp_conn *c)
{
}

static int h2_unused_drained(gp_conn *c)
{
    return GP_OK;
}

static const gp_upgrade_hooks H2_HOOKS = {h2_unused_input, h2_unused_drained, h2_free};

static void h2_close(gp_stream *s)
{
    gp_conn_close(gp_stream_conn(s));
}

static void h2_event(gp_stream *s, uint32_t events)
{
    if (gp_h2_conn_event(P(s)->hc, events) != GP_OK) h2_close(s);
}

static void h2_timeout(gp_stream *s)
{
    if (gp_h2_conn_timeout(P(s)->hc) != GP_OK) h2_close(s);
}

static void h2_stop(gp_stream *s)
{
    if (gp_h2_conn_stop(P(s)->hc) != GP_OK) h2_close(s);
}

static const gp_proto H2_PROTO = {"h2", h2_event, h2_timeout, h2_stop, h2_close};

/* HTTP/2 takes over c's stream (the preface is in its input, or req is an
 * h2c upgrade already answered with 101). GP_OK or GP_ERROR (c unchanged). */
static int begin(gp_conn *c, const char *settings, size_t settings_len,
                 const gp_http_request *req)
{
    const gp_worker_env *e = gp_conn_env(c);
    const gp_config *cfg = e->cfg;
    h2p *p = calloc(1, sizeof *p);
    if (!p) return GP_ERROR;
    p->parent = c;
    p->env = (gp_h2x_env){e->ops,
                          e->app,
                          p,
                          env_conn_of,
                          env_pump,
                          env_wait,
                          env_date,
                          env_done,
                          e->statics ? env_static : NULL,
                          cfg->body_buffer_size,
                          !e->ops->runs_as_tasks,
                          (int)(cfg->body_timeout * 1000),
                          env_flush};
    gp_h2_limits lim = {cfg->limit_request_field_size, cfg->limit_request_fields,
                        cfg->limit_request_head, 100, 0, cfg->limit_request_body, 0, false};
    gp_h2_conn_times t = {cfg->keep_alive, cfg->send_timeout};
    /* the client's address names the connection in h2's log lines */
    char peer[INET6_ADDRSTRLEN] = "unix";
    socklen_t plen;
    const struct sockaddr *sa = gp_conn_peer(c, &plen);
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, peer, sizeof peer);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, peer, sizeof peer);
    p->hc = gp_h2_conn_new(gp_conn_stream(c), &gp_h2x_session_ops, &p->env, &lim, &t, peer);
    if (!p->hc) {
        free(p);
        return GP_ERROR;
    }
    if (req && gp_h2_upgrade(gp_h2_conn_session(p->hc), settings, settings_len, req) != GP_OK) {
        gp_h2_conn_free(p->hc);
        free(p);
        return GP_ERROR;
    }
    gp_conn_upgrade(c, &H2_PROTO, &H2_HOOKS, p);
    gp_conn_upgrade_begin(c);
    p->live = true;
    /* the preface and what followed it are in the input already */
    h2_event(gp_conn_stream(c), EPOLLIN);
    return GP_OK;
}

/* ---- the ways in from HTTP/1.1 ---- */

static int preface(gp_conn *c)
{
    bool only = gp_conn_config(c)->http == GP_HTTP_2;
    const gp_stream *s = gp_conn_stream(c);
    int pre = s->buf[s->rpos] == 'P' ? gp_h2_is_preface(s->buf + s->rpos, s->len - s->rpos) : -1;
    if (pre < 0) return only ? -505 : 0; /* --http 2: no HTTP/1.1 */
    if (pre == 0) return 1;              /* wait for the rest of it */
    if (begin(c, NULL, 0, NULL) != GP_OK) gp_conn_close(c);
    return 1;
}

/* RFC 7540 3.2: "Upgrade: h2c" with one HTTP2-Settings, on a request
 * without a body (one with a body is served over HTTP/1.1: the server may
 * ignore an upgrade). The 101 goes first, the server's SETTINGS after it. */
static bool upgrade(gp_conn *c, const gp_http_request *req, size_t head_len)
{
    if (req->body != GP_HTTP_BODY_NONE) return false;
    const gp_http_header *settings = NULL;
    bool h2c = false;
    for (size_t i = 0; i < req->num_headers; i++) {
        const gp_http_header *h = &req->headers[i];
        if (gp_http_token_eq(h->name, h->name_len, "upgrade"))
            h2c = gp_http_token_eq(h->value, h->value_len, "h2c");
        else if (gp_http_token_eq(h->name, h->name_len, "http2-settings")) {
            if (settings) return false;
            settings = h;
        }
    }
    if (!h2c || !settings) return false;
    gp_stream *s = gp_conn_stream(c);
    size_t mark = s->out_len;
    static const char SWITCH[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                                 "Upgrade: h2c\r\n\r\n";
    if (gp_stream_out_append(s, SWITCH, sizeof SWITCH - 1)) return false;
    s->rpos = head_len; /* the HTTP/1.1 head is not HTTP/2's to read */
    if (begin(c, settings->value, settings->value_len, req) != GP_OK) {
        s->out_len = mark;
        return false;
    }
    return true;
}

/* TLS chose "h2" by ALPN: HTTP/2 from the first byte. */
static int alpn(gp_conn *c)
{
    return begin(c, NULL, 0, NULL);
}

const gp_h2_entry gp_h2_entry_points = {preface, upgrade, alpn};
