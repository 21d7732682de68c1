/* h1_log: what each request leaves behind when it ends, for HTTP/1.1 (h1.c)
 * and for other protocols' exchanges (exchange.h): its access-log line, the
 * --log-slow warning, and the metrics' timing of it; see h1_log.h.
 *
 * Part of the connection's owner (conn_h1.h). Never on the path of a
 * request while the access log, --log-slow and the metrics are all off:
 * its callers test for them first. Never blocks but on the access log's
 * own write. */
#include "core/h1_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/accesslog.h"
#include "core/conn_h1.h"
#include "core/exchange.h"
#include "core/log.h"
#include "core/metrics.h"

/* out of line: its 32 KB line buffer would make every caller's frame probe
 * 8 pages of stack, log or not */
static void end_request_log(gp_conn *c, uint64_t now_us) __attribute__((noinline));

/* Keeps what the access log and --log-slow need, since the head is gone by
 * the end: the format's values, the client a trusted proxy named (as the
 * app's REMOTE_ADDR), and when the head was in. */
static void remember_for_log(gp_conn *c, const gp_http_request *req, uint64_t now_us)
{
    const gp_alog_format *f = c->env->alog_fmt;
    if (!c->alog && !(c->alog = malloc(gp_alog_rec_size(f)))) return;
    gp_alog_capture(c->alog, f, req);
    gp_fwd fw;
    c->alog->host[0] = 0;
    if (req->proxy_headers && gp_conn_forwarded(c, req, &fw) && (fw.set & GP_FWD_FOR))
        snprintf(c->alog->host, sizeof c->alog->host, "%s", fw.client);
    c->alog_pending = true;
    c->alog->start_us = now_us;
}

void gp_h1_log_begin(gp_conn *c, const gp_http_request *req)
{
    gp_worker_env *e = c->env;
    uint64_t now = gp_metrics_now_us();
    if (e->alog_on) remember_for_log(c, req, now);
    if (e->count_busy && !c->m_start_us) {
        gp_metrics_begin(e->slot, now);
        c->m_start_us = now;
    }
}

void gp_h1_log_end(gp_conn *c, bool complete)
{
    gp_worker_env *e = c->env;
    uint64_t now = gp_metrics_now_us();
    if (complete ? e->alog_on : c->alog_pending) end_request_log(c, now);
    if (!c->m_start_us) return;
    if (complete) gp_metrics_end(e->slot, c->m_start_us, now, c->status);
    else gp_metrics_drop(e->slot, now);
    c->m_start_us = 0;
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
        .pid = c->env->pid,
        .clf_time = clf,
        .iso_time = iso,
    };
    size_t n = gp_alog_render(c->env->alog_fmt, r, &v, json, line);
    gp_worker_env *e = c->env;
    ssize_t wr;
    do wr = write(e->access_fd, line, n);
    while (wr < 0 && errno == EINTR);
    if (wr == (ssize_t)n) {
        c->cs->access_log_failed = false;
    } else if (!c->cs->access_log_failed) { /* once, not a line per request */
        c->cs->access_log_failed = true;
        gp_warn("cannot write the access log: %s; lines are lost until it can be written again",
                wr < 0 ? strerror(errno) : "short write");
    }
}

/* The request's end: its access-log line, and --log-slow's warning. */
static void end_request_log(gp_conn *c, uint64_t now_us)
{
    gp_worker_env *e = c->env;
    const gp_alog_rec *r = c->alog_pending ? c->alog : NULL;
    uint64_t us = r ? now_us - r->start_us : 0;
    c->alog_pending = false;
    if (e->access_fd >= 0) write_access_log(c, r, us);
    /* a WebSocket's session is not a request that was slow */
    if (r && e->log_slow_us && us >= e->log_slow_us && !c->up) {
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

/* ---- exchanges of other protocols: their log lines and counts (exchange.h) */

void gp_exchange_begin(gp_conn *x, const gp_http_request *req)
{
    gp_worker_env *e = x->env;
    if (e->alog_on || e->count_busy) gp_h1_log_begin(x, req);
}

void gp_exchange_end(gp_conn *x, int status, uint64_t bytes)
{
    gp_worker_env *e = x->env;
    x->status = status;
    x->resp_bytes = bytes;
    if (e->alog_on || x->m_start_us) gp_h1_log_end(x, true);
    gp_slot_request_end(e->slot, bytes, status >= 500);
}
