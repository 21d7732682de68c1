/* h1: an HTTP/1.x connection in the worker, the protocol every stream
 * starts with (its gp_proto table): reading and parsing heads, the PROXY
 * header, handing requests to the app bridge (on the loop, on a request
 * thread with --threads, or as a task for async apps), holding a sync app's
 * body before it runs (gp_body, body.c) so a slow uploader never holds the
 * worker, the response cycle (flush, keep-alive, linger, close), timeouts
 * and the graceful stop, the upgrade to another protocol on the same stream
 * (WebSocket, HTTP/2), and the set of a worker's connections (h1.h). The
 * exchange's own calls (head, write, body) are conn.c's; each request's log
 * line and timing are h1_log.c's.
 *
 * Never blocks the loop; never writes a byte but through the stream. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/conn_h1.h"
#include "core/h1_log.h"
#include "core/h1_thread.h"
#include "core/h2_proto.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/tls.h"

static const gp_proto h1_proto;

static inline int flush(gp_conn *c)
{
    return gp_conn_flush_queued(c);
}

static inline bool output_pending(const gp_conn *c)
{
    return gp_stream_output_pending(&c->s);
}

static inline void async_rewatch(gp_conn *c)
{
    gp_conn_async_rewatch(c);
}

static inline void async_idle_deadline(gp_conn *c)
{
    gp_conn_async_idle_deadline(c);
}

/* ---- the set of a worker's connections ---------------------------------- */

gp_conns *gp_conns_new(gp_worker_env *env)
{
    gp_conns *cs = calloc(1, sizeof *cs);
    if (cs) cs->env = env;
    return cs;
}

void gp_conns_free(gp_conns *cs)
{
    if (!cs) return;
    while (cs->open) gp_conn_close(cs->open);
    gp_conns_recycle(cs);
    for (gp_conn *c = cs->free_conns, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(cs);
}

const size_t *gp_conns_counter(const gp_conns *cs)
{
    return &cs->count;
}

gp_stream *gp_conns_first(gp_conns *cs)
{
    return cs->open ? &cs->open->s : NULL;
}

gp_stream *gp_conns_next(gp_stream *s)
{
    gp_conn *n = gp_stream_conn(s)->next;
    return n ? &n->s : NULL;
}

void gp_conns_recycle(gp_conns *cs)
{
    while (cs->dead) {
        gp_conn *c = cs->dead;
        cs->dead = c->next;
        c->next = cs->free_conns;
        cs->free_conns = c;
    }
}

gp_conn *gp_conns_oldest_task(gp_conns *cs, uint64_t *since_ms)
{
    gp_conn *oldest = NULL;
    for (gp_conn *c = cs->open; c; c = c->next)
        if (c->state == CS_ASYNC && !c->up && !c->dead && (!oldest || c->task_ms < oldest->task_ms))
            oldest = c;
    *since_ms = oldest ? oldest->task_ms : 0;
    return oldest;
}

/* ---- connection lifetime ---------------------------------------------- */

void gp_conn_tls_ready(gp_stream *s)
{
    gp_conn *c = gp_stream_conn(s);
    const char *proto = gp_tls_alpn(s->t);
    if (proto && !strcmp(proto, "h2") && c->env->h2 && c->env->h2->alpn(c) != GP_OK)
        gp_conn_close(c);
}

gp_stream *gp_conn_new(gp_conns *cs, int fd, const gp_conn_listener *l,
                       const struct sockaddr_storage *peer, socklen_t peer_len)
{
    gp_worker_env *e = cs->env;
    bool trusted = gp_fwd_trusts(&e->cfg->forwarded_allow, (const struct sockaddr *)peer);
    if (l->proxy && !trusted) { /* a PROXY header is believed from a trusted peer only */
        if (!cs->proxy_warned || e->now > cs->proxy_warned + 60) {
            cs->proxy_warned = e->now;
            gp_warn("closing connections to a --proxy-protocol listener from peers not in "
                    "--forwarded-allow-ips (once a minute)");
        }
        return NULL;
    }
    gp_conn *c = cs->free_conns;
    if (c) cs->free_conns = c->next;
    else if (!(c = malloc(sizeof *c))) return NULL;
    memset(c, 0, sizeof *c);
    gp_stream_init(&c->s, &e->stream,
                   fd); /* the read buffer comes with the first bytes: idle costs no buffer */
    gp_stream_set_proto(&c->s, &h1_proto);
    if (l->tls) {
        gp_tls *t = gp_tls_new(l->tls, fd, (const struct sockaddr *)&c->peer);
        if (!t) {
            free(c);
            return NULL;
        }
        gp_stream_set_transport(&c->s, &gp_transport_tls, t);
    }
    c->env = e;
    c->cs = cs;
    c->listener = l;
    c->peer = *peer;
    c->peer_len = peer_len;
    c->fwd_trusted = trusted && e->cfg->proxy_headers; /* --no-proxy-headers: never */
    c->proxy_wait = l->proxy;
    c->own_fd = -1;
    gp_body_init(&c->held, NULL);
    c->state = CS_HEAD;
    if (gp_stream_watch(&c->s, EPOLLIN) < 0) {
        if (l->tls) gp_tls_free(c->s.t);
        free(c);
        return NULL;
    }
    /* TLS: the handshake must be over within --header-timeout */
    gp_conn_set_deadline(c, e->now + (l->tls ? e->cfg->header_timeout : e->cfg->keep_alive));
    c->next = cs->open;
    if (cs->open) cs->open->prev = c;
    cs->open = c;
    cs->count++;
    if (gp_log_enabled(GP_LOG_DEBUG)) gp_log_conn("opened", fd, peer);
    return &c->s;
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

/* Closes now; the memory is recycled after this loop turn, since the batch of
 * events being handled may still name this connection. With request threads,
 * a response the app still owns is first handed to a thread to release. */
void gp_conn_close(gp_conn *c)
{
    gp_worker_env *e = c->env;
    if (c->dead) return;
    if (c->state == CS_APP_WAIT && e->pool) {
        /* the app's response state is Python's: a request thread releases
         * it (abort), then the connection closes for real on its way back */
        c->s.broken = true;
        gp_h1_to_thread(c, GP_JOB_ABORT);
        return;
    }
    if ((c->state == CS_APP_WAIT || c->state == CS_ASYNC) && e->ops->abort)
        e->ops->abort(e->app, c);
    if (c->state == CS_ASYNC) c->cs->active_async--;
    c->dead = true;
    /* cut off before its response was complete */
    if (c->m_start_us || c->alog_pending) gp_h1_log_end(c, false);
    if (gp_log_enabled(GP_LOG_DEBUG)) gp_log_conn("closed", c->s.io.fd, &c->peer);
    gp_stream_close(&c->s);
    if (c->own_fd >= 0) close(c->own_fd);
    c->own_fd = -1;
    held_release(c);
    free(c->alog);
    c->alog = NULL;
    if (c->up) c->up->free(c);
    c->up = NULL;
    if (c->app_cache && e->ops->cache_free) e->ops->cache_free(e->app, c->app_cache);
    c->app_cache = NULL;
    gp_conns *cs = c->cs;
    if (c->prev) c->prev->next = c->next;
    else cs->open = c->next;
    if (c->next) c->next->prev = c->prev;
    cs->count--;
    c->next = cs->dead;
    cs->dead = c;
}

/* ---- request heads and the response cycle ------------------------------- */

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
    gp_conn_set_deadline(c, c->env->now + GP_LINGER_S);
    c->body_total = 0;
    watch(c, EPOLLIN);
}

/* The response is fully written: log, then close or get ready for the next. */
static void response_complete(gp_conn *c)
{
    gp_worker_env *e = c->env;
    if (e->alog_on || c->m_start_us) gp_h1_log_end(c, true);
    gp_slot_request_end(e->slot, c->resp_bytes, c->status >= 500);
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
    double idle = rest ? e->cfg->header_timeout : e->cfg->keep_alive;
    if (e->stopping && !rest && idle > GP_STOP_IDLE_S) idle = GP_STOP_IDLE_S;
    gp_conn_set_deadline(c, e->now + idle);
    watch(c, EPOLLIN);
}

/* After the app returned or the response otherwise ended: drain output. */
static void after_app(gp_conn *c, gp_app_status st)
{
    if (c->dead) return;
    if (st == GP_APP_ASYNC) {
        c->state = CS_ASYNC;
        c->cs->active_async++;
        gp_conn_set_deadline(c, c->env->now + 1e9); /* the app decides how long it takes */
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
    gp_worker_env *e = c->env;
    if (c->body_done || !e->cfg->body_buffer_size || e->pool || e->ops->runs_as_tasks) return false;
    return c->body_kind != GP_HTTP_BODY_LENGTH || c->s.len - c->s.rpos < c->body_left;
}

/* Starts reading the body for the app (CS_BODY); the head is kept aside, to
 * be parsed again once the body is in, since the body may reuse its room. */
static void begin_hold(gp_conn *c)
{
    gp_worker_env *e = c->env;
    if (!(c->held_head = malloc(c->head_len))) {
        reject(c, 500);
        return;
    }
    memcpy(c->held_head, c->s.buf, c->head_len);
    c->held_head_len = c->head_len;
    gp_body_init(&c->held, NULL);
    c->state = CS_BODY;
    gp_conn_set_deadline(c, e->now + e->cfg->body_timeout);
    hold_body(c, false);
}

static void dispatch(gp_conn *c, gp_http_request *req, size_t head_len)
{
    gp_worker_env *e = c->env;
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
    if (e->alog_on || e->count_busy) gp_h1_log_begin(c, req);
    if (e->cfg->limit_request_body && req->body == GP_HTTP_BODY_LENGTH &&
        req->content_length > e->cfg->limit_request_body) {
        reject(c, 413);
        return;
    }
    /* a file under --static, answered without the app (so outside its concurrency limit) */
    if (e->statics && e->static_serve(e->statics, c, req)) {
        c->state = CS_FLUSH;
        after_app(c, GP_APP_DONE);
        return;
    }
    if (e->cfg->limit_concurrency && c->cs->active_async >= e->cfg->limit_concurrency) {
        reject(c, 503);
        return;
    }
    if (req->upgrade && e->h2 && e->h2->upgrade(c, req, head_len)) return; /* h2c */
    if (must_hold_body(c)) {
        begin_hold(c);
        return;
    }
    run_app(c, req);
}

/* Hands a request whose head (and, when held, body) is in to the app. */
static void run_app(gp_conn *c, gp_http_request *req)
{
    gp_worker_env *e = c->env;
    if (e->pool) {
        gp_h1_to_thread(c, GP_JOB_START);
        return;
    }
    c->state = CS_APP_WAIT; /* the app owns the response from here */
    /* an app run as a task only gets scheduled here: its stalls show in the
     * loop's heartbeat, so the request text would be copied for nothing */
    bool tracked = !e->ops->runs_as_tasks;
    if (tracked)
        gp_slot_request_begin(e->slot, e->now_ms, req->method, req->method_len, req->target,
                              req->target_len);
    else c->task_ms = e->now_ms;
    gp_app_status st = e->ops->start(e->app, c, req);
    c->state = CS_FLUSH;
    if (tracked) {
        gp_worker_env_clock(e); /* the app may have run long: deadlines start now */
        atomic_store_explicit(&e->slot->req_start_ms, 0, memory_order_relaxed);
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
    gp_worker_env *e = c->env;
    char tmp[GP_IO_BUF_SIZE];
    for (int i = 0; i < HOLD_READS_PER_TURN; i++) {
        ssize_t n = gp_conn_body_read_nb(c, tmp, sizeof tmp);
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
            gp_conn_set_deadline(c, e->now + e->cfg->body_timeout);
            int r = gp_body_append(&c->held, tmp, (size_t)n, e->cfg->body_buffer_size);
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
    req.headers = c->cs->headers;
    req.num_headers = e->cfg->limit_request_fields;
    c->body_held = true;
    if (gp_http_parse_request(c->held_head, c->held_head_len, &req, &e->limits) !=
        (int)c->held_head_len) {
        reject(c, 500);
        return;
    }
    run_app(c, &req);
    if (on_event && !c->dead && c->state == CS_HEAD) serve_buffered(c);
}

/* ---- request threads (--threads): the loop's side (h1_thread.c runs the app) */

/* Back on the loop's thread after a request thread finished with c. */
void gp_conn_job_done(gp_job *j)
{
    gp_conn *c = (gp_conn *)((char *)j - offsetof(gp_conn, job));
    c->s.off_loop = false;
    if (c->thread_st == GP_APP_PENDING) {
        c->state = CS_APP_WAIT;
        /* the app may have run long since its last write reset the deadline */
        gp_conn_set_deadline(c, c->env->now + c->env->cfg->send_timeout);
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
        c->fwd_trusted = c->env->cfg->proxy_headers &&
                         gp_fwd_trusts(&c->env->cfg->forwarded_allow, (struct sockaddr *)&c->peer);
    }
    c->proxy_wait = false;
    c->s.len -= (size_t)r;
    memmove(c->s.buf, c->s.buf + r, c->s.len);
    return true;
}

/* Parses and serves every complete head in the buffer, in order. */
static void serve_buffered(gp_conn *c)
{
    gp_worker_env *e = c->env;
    while (!c->dead && c->state == CS_HEAD && c->s.len > 0) {
        if (c->proxy_wait && !read_proxy_header(c)) return;
        if (!c->s.len) return;
        /* an HTTP/2 preface takes the stream (h2_proto.h); it begins with
         * 'P', and only --http 2 has anything to say about other bytes */
        if (e->h2 && (c->s.buf[c->s.rpos] == 'P' || e->cfg->http == GP_HTTP_2)) {
            int h2 = e->h2->preface(c);
            if (h2 < 0) reject(c, -h2);
            if (h2) return;
        }
        gp_http_request req;
        req.headers = c->cs->headers;
        req.num_headers = e->cfg->limit_request_fields;
        /* resumes where the last read's bytes ended: a head that trickles in
         * is scanned once */
        int r = gp_http_parse_head(&c->head, c->s.buf, c->s.len, &req, &e->limits);
        if (r < 0) {
            reject(c, -r);
            return;
        }
        if (r == 0) {
            if (c->s.len >= e->head_cap) reject(c, 431);
            else if (c->s.deadline > e->now + e->cfg->header_timeout)
                gp_conn_set_deadline(c, e->now + e->cfg->header_timeout);
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
    gp_worker_env *e = c->env;
    if (ensure_buffer(c) < 0) {
        gp_conn_close(c);
        return;
    }
    if (c->s.len == c->s.cap) {
        size_t want = c->s.cap * 2 > e->head_cap ? e->head_cap : c->s.cap * 2;
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
    if (first) gp_conn_set_deadline(c, e->now + e->cfg->header_timeout);
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

void gp_conn_async_event(gp_stream *s, uint32_t events)
{
    gp_conn *c = (gp_conn *)s;
    if (c->dead) return;
    gp_worker_env *e = c->env;
    if (events & EPOLLOUT) {
        int r = flush(c);
        if (r == GP_AGAIN) return;
        if (r == GP_ERROR) c->peer_gone = true;
        if (c->up && r == GP_OK && c->up->on_drained(c) == GP_AGAIN) return;
        async_rewatch(c);
        e->ops->resume(e->app, c);
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
        else if (c->want_input || c->peer_gone) e->ops->readable(e->app, c);
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

void gp_conn_app_done(gp_conn *c)
{
    XVOID(c, app_done(c));
    if (c->dead || c->state != CS_ASYNC) return;
    c->cs->active_async--;
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
        if (c->env->pool) { /* the app's next pieces come from a request thread */
            gp_h1_to_thread(c, GP_JOB_RESUME);
            return;
        }
        c->state = CS_FLUSH; /* not CS_APP_WAIT: a close now must not abort twice */
        st = c->env->ops->resume(c->env->app, c);
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
        gp_conn_set_deadline(c, c->env->now + 1e9);
        if (c->want_input && !c->body_done && !c->body_late) {
            c->body_late = true;
            c->env->ops->readable(c->env->app, c);
        }
        return;
    }
    /* stopping: a request crossing our FIN is read and dropped, not reset */
    if (c->state == CS_HEAD && c->env->stopping) {
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
     * says close (gp_conn_head_end sees e->stopping) */
    if (c->state == CS_THREAD) return;
    if (c->state == CS_HEAD && c->s.len == 0 && c->s.deadline > c->env->now + GP_STOP_IDLE_S)
        gp_conn_set_deadline(c, c->env->now + GP_STOP_IDLE_S);
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

const gp_worker_env *gp_conn_env(gp_conn *c)
{
    return c->env;
}

const gp_config *gp_conn_config(gp_conn *c)
{
    return c->env->cfg;
}

const gp_app_ops *gp_conn_app_ops(gp_conn *c, void **app)
{
    *app = c->env->app;
    return c->env->ops;
}
