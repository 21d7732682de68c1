/* mserve: the master's /metrics and /healthz responder; see mserve.h.
 *
 * One request per connection (Connection: close), so there is no keep-alive
 * state, no body to read and no pipelining to order. */
#include "core/mserve.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/listen.h"

#define ACCEPTS_PER_TURN 16

typedef struct {
    int fd; /* -1: free */
    double deadline;
    size_t len; /* of the head read so far */
    char head[GP_MSERVE_HEAD];
    gp_mbuf out; /* the response, once the head is in */
    size_t out_pos;
    bool writing;
} client;

struct gp_mserve {
    gp_addr addrs[GP_MAX_BINDS];
    int fds[GP_MAX_BINDS];
    int num;
    client clients[GP_MSERVE_CLIENTS];
    int polled[GP_MAX_BINDS +
               GP_MSERVE_CLIENTS]; /* per pollfd: listener i as -1 - i, else a client */
    int num_polled;
    gp_mserve_handler handler;
    void *ctx;
};

int gp_mbuf_printf(gp_mbuf *b, const char *fmt, ...)
{
    if (b->failed) return -1;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) goto fail;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return 0;
        }
        size_t cap = b->cap ? b->cap * 2 : 16384;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        if (cap > GP_MSERVE_MAX_BODY) goto fail;
        char *p = realloc(b->p, cap);
        if (!p) goto fail;
        b->p = p;
        b->cap = cap;
    }
fail:
    b->failed = true;
    return -1;
}

void gp_mbuf_free(gp_mbuf *b)
{
    free(b->p);
    *b = (gp_mbuf){0};
}

gp_mserve *gp_mserve_open(const char *const *addrs, int n, gp_mserve_handler h, void *ctx,
                          char *err, size_t errlen)
{
    gp_mserve *ms = calloc(1, sizeof *ms);
    if (!ms) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ms->handler = h;
    ms->ctx = ctx;
    for (int i = 0; i < GP_MSERVE_CLIENTS; i++) ms->clients[i].fd = -1;
    for (int i = 0; i < n && i < GP_MAX_BINDS; i++) {
        gp_addr *a = &ms->addrs[ms->num];
        if (gp_addr_parse(addrs[i], a, err, errlen) < 0) goto fail;
        /* SO_REUSEPORT: a master started by USR2 binds the same port while
         * this one still serves */
        int fd = gp_listen_open(a, 64, a->kind == GP_ADDR_TCP, err, errlen);
        if (fd < 0) goto fail;
        ms->fds[ms->num++] = fd;
    }
    return ms;
fail:
    gp_mserve_close(ms);
    return NULL;
}

const char *gp_mserve_addr(const gp_mserve *ms, int i)
{
    return ms && i >= 0 && i < ms->num ? ms->addrs[i].text : NULL;
}

int gp_mserve_max_pollfds(const gp_mserve *ms)
{
    return ms ? ms->num + GP_MSERVE_CLIENTS : 0;
}

int gp_mserve_pollfds(gp_mserve *ms, struct pollfd *pfd, int max)
{
    int n = 0;
    if (!ms) return 0;
    for (int i = 0; i < ms->num && n < max; i++) {
        pfd[n] = (struct pollfd){.fd = ms->fds[i], .events = POLLIN};
        ms->polled[n++] = -1 - i;
    }
    for (int i = 0; i < GP_MSERVE_CLIENTS && n < max; i++) {
        client *c = &ms->clients[i];
        if (c->fd < 0) continue;
        pfd[n] = (struct pollfd){.fd = c->fd, .events = c->writing ? POLLOUT : POLLIN};
        ms->polled[n++] = i;
    }
    ms->num_polled = n;
    return n;
}

static void drop(client *c)
{
    close(c->fd);
    c->fd = -1;
    gp_mbuf_free(&c->out);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

/* The whole response in c->out, built from the head (or an error status). */
static void respond(gp_mserve *ms, client *c, int status)
{
    gp_mbuf body = {0};
    const char *ctype = "text/plain; charset=utf-8";
    bool head_only = false;
    if (!status) {
        /* "GET /path HTTP/1.x": the path up to '?' is all that matters */
        char *sp1 = memchr(c->head, ' ', c->len);
        char *sp2 = sp1 ? memchr(sp1 + 1, ' ', c->len - (size_t)(sp1 + 1 - c->head)) : NULL;
        if (!sp1 || !sp2 || sp1[1] != '/' || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
            status = 400;
        } else if (!(sp1 - c->head == 3 && !memcmp(c->head, "GET", 3)) &&
                   !(head_only = sp1 - c->head == 4 && !memcmp(c->head, "HEAD", 4))) {
            status = 405;
        } else {
            *sp2 = 0;
            char *q = strchr(sp1 + 1, '?');
            if (q) *q = 0;
            status = ms->handler(ms->ctx, sp1 + 1, &body, &ctype);
            if (body.failed) {
                status = 500;
                body.len = 0;
            }
        }
    }
    if (status != 200 && !body.len) gp_mbuf_printf(&body, "%d %s\n", status, reason(status));
    gp_mbuf_printf(&c->out,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                   "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                   status, reason(status), ctype, body.len,
                   status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (!head_only && body.len && gp_mbuf_printf(&c->out, "%.*s", (int)body.len, body.p) < 0) {
        /* %.*s stops at a NUL: the body is text, it has none */
    }
    gp_mbuf_free(&body);
    if (c->out.failed) {
        drop(c);
        return;
    }
    c->writing = true;
    c->out_pos = 0;
}

static void write_some(client *c)
{
    while (c->out_pos < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_pos, c->out.len - c->out_pos, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) break;
        c->out_pos += (size_t)n;
    }
    shutdown(c->fd, SHUT_WR);
    drop(c);
}

static void read_some(gp_mserve *ms, client *c)
{
    for (;;) {
        if (c->len == sizeof c->head - 1) {
            respond(ms, c, 431);
            break;
        }
        ssize_t n = recv(c->fd, c->head + c->len, sizeof c->head - 1 - c->len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) { /* gone, or an error, before a whole head */
            drop(c);
            return;
        }
        c->len += (size_t)n;
        c->head[c->len] = 0;
        if (memchr(c->head, 0, c->len)) {
            respond(ms, c, 400);
            break;
        }
        if (strstr(c->head, "\r\n\r\n") || strstr(c->head, "\n\n")) {
            respond(ms, c, 0);
            break;
        }
    }
    if (c->fd >= 0) write_some(c);
}

static void accept_some(gp_mserve *ms, int lfd, double now)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n";
    for (int k = 0; k < ACCEPTS_PER_TURN; k++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        client *c = NULL;
        for (int i = 0; i < GP_MSERVE_CLIENTS && !c; i++)
            if (ms->clients[i].fd < 0) c = &ms->clients[i];
        if (!c) { /* all taken: a scraper learns so at once rather than waits */
            if (send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
                /* nothing more to tell it */
            }
            close(fd);
            continue;
        }
        *c = (client){.fd = fd, .deadline = now + GP_MSERVE_TIMEOUT_S};
    }
}

void gp_mserve_handle(gp_mserve *ms, const struct pollfd *pfd, int n, double now)
{
    if (!ms) return;
    for (int i = 0; i < n && i < ms->num_polled; i++) {
        if (!pfd[i].revents) continue;
        int who = ms->polled[i];
        if (who < 0) {
            accept_some(ms, ms->fds[-1 - who], now);
            continue;
        }
        client *c = &ms->clients[who];
        if (c->fd != pfd[i].fd) continue; /* reused in this turn */
        if (c->writing) write_some(c);
        else read_some(ms, c);
    }
    for (int i = 0; i < GP_MSERVE_CLIENTS; i++)
        if (ms->clients[i].fd >= 0 && now >= ms->clients[i].deadline) drop(&ms->clients[i]);
}

void gp_mserve_forget(gp_mserve *ms)
{
    if (!ms) return;
    for (int i = 0; i < ms->num; i++) close(ms->fds[i]);
    for (int i = 0; i < GP_MSERVE_CLIENTS; i++)
        if (ms->clients[i].fd >= 0) close(ms->clients[i].fd);
}

void gp_mserve_close(gp_mserve *ms)
{
    if (!ms) return;
    for (int i = 0; i < ms->num; i++) gp_listen_close(ms->fds[i], &ms->addrs[i]);
    for (int i = 0; i < GP_MSERVE_CLIENTS; i++)
        if (ms->clients[i].fd >= 0) drop(&ms->clients[i]);
    free(ms);
}
