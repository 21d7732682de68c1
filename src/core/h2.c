/* h2: one HTTP/2 server connection over nghttp2 (see h2.h).
 *
 * Owns the nghttp2 session, the per-stream request heads, request-body
 * buffers and response buffers, and the answers to abusive peers. Never does
 * I/O or blocks, never knows Python, and never calls the host from inside an
 * nghttp2 callback: those only queue events, which run once nghttp2 has
 * returned. */
#include "core/h2.h"

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/retcode.h"
#include "core/log.h"

#define DEFAULT_STREAMS 100
#define DEFAULT_WINDOW 65535
#define DEFAULT_OUT_HIGH (64 * 1024)
#define CONN_WINDOW (1 << 20) /* request bodies of many streams in flight at once */
#define MAX_RESPONSE_HEAD (64 * 1024)
#define MAX_RESPONSE_FIELDS 256
#define HEAD_INLINE 512
#define RESP_INLINE 256
/* Rapid reset (CVE-2023-44487): a peer may reset this many streams more than
 * twice the number it let complete; past that it gets GOAWAY. */
#define RESET_ALLOWANCE 100

enum {
    EV_REQUEST = 1,
    EV_BODY = 2,
    EV_WRITABLE = 4,
    EV_CLOSE = 8,
};

/* One field of a request or response head, as offsets into the stream's
 * head buffer (which may move as it grows). */
typedef struct {
    uint32_t name, name_len, value, value_len;
} field;

typedef struct {
    char *p;
    size_t len, cap;
    char *heap; /* p when it was allocated */
} grow_buf;

struct gp_h2_stream {
    gp_h2 *h;
    gp_h2_stream *prev, *next; /* all streams of the session */
    gp_h2_stream *ev_next;     /* the event queue */
    int32_t id;
    uint8_t events;
    bool queued, held, closed, close_told, released, head_request;
    bool begun, submitted, ended, deferred, want_writable, reset_sent;
    bool expect_continue, continue_sent;
    int reject; /* HTTP status answered by the session itself (431, 400) */
    uint32_t close_code;
    void *data;
    /* request head */
    grow_buf head;
    field *fields;
    size_t nfields, fields_cap, head_bytes;
    field method, path, authority, scheme, protocol;
    uint32_t cookie, cookie_len; /* the joined cookie fields, in head */
    int64_t content_length;
    /* request body */
    grow_buf in;
    size_t in_off;
    uint64_t body_total;
    bool in_end, body_too_large;
    /* response */
    int status;
    grow_buf resp; /* the response's fields and trailers (the request's stay put
                      while the host may still read them) */
    grow_buf out;
    size_t out_off;
    size_t trailers_off, trailers_len; /* in resp, after the response fields */
    uint64_t stall_since;              /* ms; 0: not waiting on the peer's window */
    /* last: a spare stream is reset up to here */
    char head_inline[HEAD_INLINE];
    char resp_inline[RESP_INLINE];
};

struct gp_h2 {
    nghttp2_session *ng;
    const gp_h2_ops *ops;
    void *host;
    gp_h2_limits lim;
    gp_h2_stream *streams;
    gp_h2_stream *spare; /* freed streams kept for the next ones (next-linked) */
    unsigned nspare;
    gp_h2_stream *ev_head, *ev_tail;
    bool in_events, broken, shutting_down, in_free;
    uint64_t resets, completed, now_ms;
    unsigned logged; /* bits: which kinds of abuse were logged already */
    char peer[64];
};

enum { LOG_RESET = 1, LOG_HEAD = 2, LOG_FLOOD = 4, LOG_INVALID = 8, LOG_STALL = 16 };

/* One line per kind of abuse and connection, so a hostile peer cannot flood
 * the log as well. */
static void abuse(gp_h2 *h, unsigned kind, const char *what, int32_t id)
{
    if (h->logged & kind) return;
    h->logged |= kind;
    if (id)
        gp_info("h2 %s: stream %d: %s", h->peer, (int)id, what);
    else
        gp_info("h2 %s: %s", h->peer, what);
}

/* ---- small buffers ---- */

static int gb_reserve(grow_buf *b, size_t more, size_t inline_cap, char *inl)
{
    if (!b->p) {
        b->p = inl;
        b->cap = inline_cap;
    }
    if (b->len + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) cap *= 2;
    char *n = b->heap ? realloc(b->heap, cap) : malloc(cap);
    if (!n) return -1;
    if (!b->heap && b->len) memcpy(n, b->p, b->len);
    b->heap = b->p = n;
    b->cap = cap;
    return 0;
}

static int gb_append(grow_buf *b, const void *d, size_t n, size_t inline_cap, char *inl)
{
    if (gb_reserve(b, n, inline_cap, inl)) return -1;
    if (n) memcpy(b->p + b->len, d, n);
    b->len += n;
    return 0;
}

static void gb_free(grow_buf *b)
{
    free(b->heap);
    memset(b, 0, sizeof *b);
}

static int head_put(gp_h2_stream *s, const void *d, size_t n, uint32_t *off)
{
    *off = (uint32_t)s->head.len;
    return gb_append(&s->head, d, n, HEAD_INLINE, s->head_inline);
}

static const char *at(const gp_h2_stream *s, uint32_t off)
{
    return s->head.p + off;
}

static int resp_put(gp_h2_stream *s, const void *d, size_t n, uint32_t *off)
{
    *off = (uint32_t)s->resp.len;
    return gb_append(&s->resp, d, n, RESP_INLINE, s->resp_inline);
}

static char *rat(gp_h2_stream *s, uint32_t off)
{
    return s->resp.p + off;
}

/* ---- streams and events ---- */

static gp_h2_stream *stream_new(gp_h2 *h, int32_t id)
{
    gp_h2_stream *s = h->spare;
    if (s) {
        h->spare = s->next;
        h->nspare--;
        s->next = NULL;
    } else if (!(s = calloc(1, sizeof *s))) {
        return NULL;
    }
    s->h = h;
    s->id = id;
    s->content_length = -1;
    s->next = h->streams;
    if (h->streams) h->streams->prev = s;
    h->streams = s;
    return s;
}

static void stream_unlink(gp_h2_stream *s)
{
    gp_h2 *h = s->h;
    if (!h) return;
    if (s->prev)
        s->prev->next = s->next;
    else
        h->streams = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
    if (s->queued) {
        gp_h2_stream **pp = &h->ev_head, *last = NULL;
        while (*pp && *pp != s) {
            last = *pp;
            pp = &(*pp)->ev_next;
        }
        if (*pp) *pp = s->ev_next;
        if (h->ev_tail == s) h->ev_tail = last;
        s->queued = false;
    }
    s->h = NULL;
}

/* Streams come and go by the hundred on one connection: a few are kept,
 * with their field table and a modest response buffer, so that a stream
 * costs no allocation of ours once the connection is warm. */
#define SPARE_STREAMS 16
#define SPARE_OUT_CAP 16384

static void stream_free(gp_h2_stream *s)
{
    gp_h2 *h = s->h; /* NULL once the session went */
    stream_unlink(s);
    gb_free(&s->head);
    gb_free(&s->in);
    gb_free(&s->resp);
    if (h && !h->in_free && h->nspare < SPARE_STREAMS) {
        field *fields = s->fields;
        size_t fields_cap = s->fields_cap;
        grow_buf out = {0};
        if (s->out.heap && s->out.cap <= SPARE_OUT_CAP)
            out = (grow_buf){s->out.heap, 0, s->out.cap, s->out.heap};
        else
            gb_free(&s->out);
        memset(s, 0, offsetof(gp_h2_stream, head_inline));
        s->fields = fields;
        s->fields_cap = fields_cap;
        s->out = out;
        s->next = h->spare;
        h->spare = s;
        h->nspare++;
        return;
    }
    gb_free(&s->out);
    free(s->fields);
    free(s);
}

static void queue(gp_h2_stream *s, uint8_t ev)
{
    gp_h2 *h = s->h;
    s->events |= ev;
    if (s->queued || !h) return;
    s->queued = true;
    s->ev_next = NULL;
    if (h->ev_tail)
        h->ev_tail->ev_next = s;
    else
        h->ev_head = s;
    h->ev_tail = s;
}

static void dispatch_request(gp_h2 *h, gp_h2_stream *s);
static void answer_reject(gp_h2 *h, gp_h2_stream *s);

/* Runs queued events outside nghttp2. A stream the host never took (a head
 * the session refused itself) is freed once closed. */
static void run_events(gp_h2 *h)
{
    if (h->in_events) return;
    h->in_events = true;
    while (h->ev_head) {
        gp_h2_stream *s = h->ev_head;
        h->ev_head = s->ev_next;
        if (!h->ev_head) h->ev_tail = NULL;
        s->queued = false;
        uint8_t ev = s->events;
        s->events = 0;
        if ((ev & EV_REQUEST) && !s->closed) dispatch_request(h, s);
        /* each callback may release s: held is asked again before the next */
        if (s->held && (ev & EV_BODY) && !s->closed) h->ops->on_body(h->host, s);
        if (s->held && (ev & EV_WRITABLE) && !s->closed && s->want_writable) {
            s->want_writable = false;
            h->ops->on_writable(h->host, s);
        }
        if (s->held && s->closed && !s->close_told) {
            s->close_told = true;
            h->ops->on_close(h->host, s, s->close_code);
        }
        /* a stream queued again comes back: it is freed then */
        if (!s->held && s->closed && !s->queued) stream_free(s);
    }
    h->in_events = false;
}

static gp_h2_stream *find(gp_h2 *h, int32_t id)
{
    return nghttp2_session_get_stream_user_data(h->ng, id);
}

/* ---- the request head ---- */

static bool name_is(const uint8_t *n, size_t len, const char *lit)
{
    size_t l = strlen(lit);
    return len == l && memcmp(n, lit, l) == 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    gp_h2 *h = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    gp_h2_stream *s = stream_new(h, f->hd.stream_id);
    if (!s) return NGHTTP2_ERR_CALLBACK_FAILURE;
    nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, s);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags,
                     void *ud)
{
    gp_h2 *h = ud;
    gp_h2_stream *s = find(h, f->hd.stream_id);
    if (!s || f->hd.type != NGHTTP2_HEADERS) return 0;
    /* RFC 9113 6.5.2: the size of a field is its name, its value and 32 */
    s->head_bytes += name_len + value_len + 32;
    if (s->reject) return 0;
    if (f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0; /* request trailers: dropped */
    if (s->head_bytes > h->lim.max_head || name_len + value_len > h->lim.max_field_size) {
        s->reject = 431;
        abuse(h, LOG_HEAD, "request head over the limits: 431", s->id);
        return 0;
    }
    field fl;
    if (head_put(s, name, name_len, &fl.name) || head_put(s, value, value_len, &fl.value))
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    fl.name_len = (uint32_t)name_len;
    fl.value_len = (uint32_t)value_len;
    if (name_len && name[0] == ':') {
        /* nghttp2 checked the pseudo-fields (RFC 9113 8.3.1) */
        if (name_is(name, name_len, ":method")) {
            s->method = fl;
            s->head_request = name_is(value, value_len, "HEAD");
        } else if (name_is(name, name_len, ":path"))
            s->path = fl;
        else if (name_is(name, name_len, ":authority"))
            s->authority = fl;
        else if (name_is(name, name_len, ":scheme"))
            s->scheme = fl;
        else if (name_is(name, name_len, ":protocol"))
            s->protocol = fl;
        return 0;
    }
    if (s->nfields >= h->lim.max_fields || s->nfields >= GP_HTTP_MAX_HEADERS - 1) {
        s->reject = 431;
        abuse(h, LOG_HEAD, "too many request fields: 431", s->id);
        return 0;
    }
    if (s->nfields == s->fields_cap) {
        size_t cap = s->fields_cap ? s->fields_cap * 2 : 16;
        field *n = realloc(s->fields, cap * sizeof *n);
        if (!n) return NGHTTP2_ERR_CALLBACK_FAILURE;
        s->fields = n;
        s->fields_cap = cap;
    }
    if (name_is(name, name_len, "expect") && gp_http_token_eq((const char *)value, value_len,
                                                              "100-continue"))
        s->expect_continue = true;
    if (name_is(name, name_len, "content-length")) {
        /* nghttp2 checked it is digits and matches the DATA */
        int64_t v = 0;
        for (size_t i = 0; i < value_len; i++) v = v * 10 + (value[i] - '0');
        s->content_length = v;
    }
    s->fields[s->nfields++] = fl;
    return 0;
}

/* Joins cookie crumbs (RFC 9113 8.2.3) back into one field, once, when the
 * head is complete: after it the head buffer never grows again, so views
 * built over it stay valid. */
static int join_cookies(gp_h2_stream *s)
{
    uint32_t off;
    size_t n = 0;
    for (size_t i = 0; i < s->nfields; i++) {
        const field *f = &s->fields[i];
        if (f->name_len != 6 || memcmp(at(s, f->name), "cookie", 6) != 0) continue;
        if (!n) s->cookie = (uint32_t)s->head.len;
        if ((n++ && head_put(s, "; ", 2, &off)) || head_put(s, at(s, f->value), f->value_len, &off))
            return -1;
        s->cookie_len = (uint32_t)(s->head.len - s->cookie);
    }
    return 0;
}

void gp_h2_stream_request(gp_h2_stream *s, gp_http_request *req, gp_http_header *hv)
{
    memset(req, 0, sizeof *req);
    size_t n = 0;
    for (size_t i = 0; i < s->nfields && !s->begun; i++) {
        const field *f = &s->fields[i];
        const char *nm = at(s, f->name);
        if (f->name_len == 6 && memcmp(nm, "cookie", 6) == 0) continue;
        hv[n] = (gp_http_header){nm, f->name_len, at(s, f->value), f->value_len};
        if (f->name_len == 4 && memcmp(nm, "host", 4) == 0) {
            req->host = hv[n].value;
            req->host_len = hv[n].value_len;
        }
        if ((f->name_len == 9 && memcmp(nm, "forwarded", 9) == 0) ||
            (f->name_len > 12 && memcmp(nm, "x-forwarded-", 12) == 0))
            req->proxy_headers = true;
        n++;
    }
    if (s->cookie_len) hv[n++] = (gp_http_header){"cookie", 6, at(s, s->cookie), s->cookie_len};
    if (s->authority.value_len && !req->host) {
        /* RFC 9113 8.3.1: :authority stands for Host */
        req->host = at(s, s->authority.value);
        req->host_len = s->authority.value_len;
        hv[n++] = (gp_http_header){"host", 4, req->host, req->host_len};
    }
    req->method = at(s, s->method.value);
    req->method_len = s->method.value_len;
    req->target = at(s, s->path.value);
    req->target_len = s->path.value_len;
    req->path = req->target;
    const char *q = memchr(req->target, '?', req->target_len);
    req->path_len = q ? (size_t)(q - req->target) : req->target_len;
    if (q) {
        req->query = q + 1;
        req->query_len = req->target_len - req->path_len - 1;
    }
    req->version_minor = GP_HTTP_VERSION_2;
    req->headers = hv;
    req->num_headers = n;
    req->keep_alive = true;
    if (s->content_length >= 0) {
        req->body = GP_HTTP_BODY_LENGTH;
        req->content_length = (uint64_t)s->content_length;
    } else if (!s->in_end) {
        /* a body of unknown length, framed by DATA frames */
        req->body = GP_HTTP_BODY_CHUNKED;
    }
}

/* Hands the request to the host. */
static void dispatch_request(gp_h2 *h, gp_h2_stream *s)
{
    gp_http_header hv[GP_HTTP_MAX_HEADERS];
    gp_http_request req;
    if (!s->path.value_len || !s->method.value_len) {
        /* CONNECT (without a path) is not served */
        s->reject = 501;
        answer_reject(h, s);
        return;
    }
    if (join_cookies(s)) {
        s->reject = 500;
        answer_reject(h, s);
        return;
    }
    gp_h2_stream_request(s, &req, hv);
    s->held = true;
    h->ops->on_request(h->host, s, &req);
}

/* Answers a head the session refused itself, without the host. */
static void answer_reject(gp_h2 *h, gp_h2_stream *s)
{
    char st[4];
    snprintf(st, sizeof st, "%d", s->reject);
    nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)st, 7, 3, NGHTTP2_NV_FLAG_NONE}};
    nghttp2_submit_response(h->ng, s->id, nv, 1, NULL);
    s->submitted = s->ended = true;
}

/* ---- frames ---- */

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    gp_h2 *h = ud;
    int32_t id = f->hd.stream_id;
    switch (f->hd.type) {
    case NGHTTP2_HEADERS: {
        gp_h2_stream *s = find(h, id);
        if (!s) return 0;
        if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) s->in_end = true;
        if (f->headers.cat != NGHTTP2_HCAT_REQUEST) {
            if (s->in_end && s->held) queue(s, EV_BODY);
            return 0;
        }
        if (s->reject) {
            answer_reject(h, s);
            return 0;
        }
        queue(s, EV_REQUEST);
        return 0;
    }
    case NGHTTP2_DATA: {
        gp_h2_stream *s = find(h, id);
        if (s && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            s->in_end = true;
            if (s->held) queue(s, EV_BODY);
        }
        return 0;
    }
    case NGHTTP2_RST_STREAM:
        h->resets++;
        return 0;
    default: return 0;
    }
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    gp_h2 *h = ud;
    /* the connection window opens at once; the stream's only as the app reads */
    nghttp2_session_consume_connection(ng, len);
    gp_h2_stream *s = find(h, id);
    if (!s || s->reject || s->body_too_large || s->released) {
        nghttp2_session_consume_stream(ng, id, len);
        return 0;
    }
    s->body_total += len;
    if (h->lim.max_body && s->body_total > h->lim.max_body) {
        s->body_too_large = true;
        nghttp2_session_consume_stream(ng, id, len);
        if (s->held) queue(s, EV_BODY);
        return 0;
    }
    if (s->in_off == s->in.len) s->in_off = s->in.len = 0;
    if (gb_append(&s->in, data, len, 0, NULL)) return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (s->held) queue(s, EV_BODY);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    gp_h2 *h = ud;
    gp_h2_stream *s = find(h, id);
    if (!s) return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    s->closed = true;
    s->close_code = code;
    if (code == NGHTTP2_NO_ERROR && s->ended)
        h->completed++;
    /* freed now unless an event may be using it (run_events frees it) */
    if (s->released && !h->in_events)
        stream_free(s);
    else
        queue(s, EV_CLOSE);
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    gp_h2 *h = ud;
    if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR) {
        char what[96];
        snprintf(what, sizeof what, "GOAWAY sent: %s",
                 nghttp2_http2_strerror(f->goaway.error_code));
        abuse(h, LOG_FLOOD, what, 0);
    }
    return 0;
}

static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *f, int err, void *ud)
{
    gp_h2 *h = ud;
    char what[96];
    if (err == NGHTTP2_ERR_REFUSED_STREAM)
        snprintf(what, sizeof what, "refused: over %u concurrent streams", h->lim.max_streams);
    else
        snprintf(what, sizeof what, "invalid frame: %s", nghttp2_strerror(err));
    abuse(h, LOG_INVALID, what, f->hd.stream_id);
    return 0;
}

/* ---- the response ---- */

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    gp_h2 *h = ud;
    gp_h2_stream *s = src->ptr;
    size_t avail = s->out.len - s->out_off;
    size_t n = avail < length ? avail : length;
    if (n) {
        memcpy(buf, s->out.p + s->out_off, n);
        s->out_off += n;
        s->stall_since = 0;
        if (s->out_off == s->out.len) s->out_off = s->out.len = 0;
        if (s->want_writable && s->out.len - s->out_off <= h->lim.out_high / 2)
            queue(s, EV_WRITABLE);
    }
    if (s->out.len - s->out_off == 0 && s->ended) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (s->trailers_len) {
            nghttp2_nv nv[MAX_RESPONSE_FIELDS];
            size_t k = 0;
            size_t count = s->trailers_len / sizeof(field);
            for (size_t i = 0; i < count && k < MAX_RESPONSE_FIELDS; i++) {
                field fl;
                memcpy(&fl, rat(s, (uint32_t)(s->trailers_off + i * sizeof fl)), sizeof fl);
                nv[k++] = (nghttp2_nv){(uint8_t *)rat(s, fl.name), (uint8_t *)rat(s, fl.value),
                                       fl.name_len, fl.value_len, NGHTTP2_NV_FLAG_NONE};
            }
            if (nghttp2_submit_trailer(ng, id, nv, k) == 0) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
        return (ssize_t)n;
    }
    if (n) return (ssize_t)n;
    s->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
}

static int submit(gp_h2_stream *s)
{
    gp_h2 *h = s->h;
    if (s->submitted) return GP_OK;
    if (!s->begun && gp_h2_head_begin(s, 200)) return GP_ERROR;
    nghttp2_nv nv[MAX_RESPONSE_FIELDS + 1];
    /* head_begin kept it to three digits */
    char st[4] = {(char)('0' + s->status / 100), (char)('0' + s->status / 10 % 10),
                  (char)('0' + s->status % 10), 0};
    nv[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)st, 7, 3, NGHTTP2_NV_FLAG_NONE};
    size_t k = 1;
    for (size_t i = 0; i < s->nfields; i++) {
        const field *fl = &s->fields[i];
        nv[k++] = (nghttp2_nv){(uint8_t *)rat(s, fl->name), (uint8_t *)rat(s, fl->value),
                               fl->name_len, fl->value_len, NGHTTP2_NV_FLAG_NONE};
    }
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_body};
    bool empty = s->ended && s->out.len == s->out_off && !s->trailers_len;
    if (nghttp2_submit_response(h->ng, s->id, nv, k, empty ? NULL : &prd)) return GP_ERROR;
    s->submitted = true;
    return GP_OK;
}

/* Lets nghttp2 read more of s's body when it was waiting for bytes. */
static int kick(gp_h2_stream *s)
{
    if (!s->submitted) return submit(s);
    if (s->deferred) {
        s->deferred = false;
        if (nghttp2_session_resume_data(s->h->ng, s->id)) return GP_ERROR;
    }
    return GP_OK;
}

static bool usable(const gp_h2_stream *s)
{
    return s->h && !s->closed && !s->reset_sent;
}

int gp_h2_head_begin(gp_h2_stream *s, int status)
{
    if (s->begun || status < 100 || status > 999) return GP_ERROR;
    s->begun = true;
    s->status = status;
    /* the request's field records are done with (its bytes are not) */
    s->nfields = 0;
    return GP_OK;
}

bool gp_h2_head_begun(const gp_h2_stream *s)
{
    return s->begun;
}

/* RFC 9113 8.2.2: connection-specific fields have no place in HTTP/2. */
static bool connection_specific(const char *n, size_t len)
{
    switch (len) {
    case 7: return gp_http_token_eq(n, len, "upgrade");
    case 10: return gp_http_token_eq(n, len, "connection") || gp_http_token_eq(n, len, "keep-alive");
    case 16: return gp_http_token_eq(n, len, "proxy-connection");
    case 17: return gp_http_token_eq(n, len, "transfer-encoding");
    default: return false;
    }
}

static int add_field(gp_h2_stream *s, const char *name, size_t name_len, const char *value,
                     size_t value_len)
{
    if (s->resp.len + name_len + value_len > MAX_RESPONSE_HEAD || s->nfields >= MAX_RESPONSE_FIELDS)
        return GP_ERROR;
    if (s->nfields == s->fields_cap) {
        size_t cap = s->fields_cap ? s->fields_cap * 2 : 16;
        field *n = realloc(s->fields, cap * sizeof *n);
        if (!n) return GP_ERROR;
        s->fields = n;
        s->fields_cap = cap;
    }
    field fl;
    if (resp_put(s, name, name_len, &fl.name)) return GP_ERROR;
    char *lc = rat(s, fl.name);
    for (size_t i = 0; i < name_len; i++)
        if (lc[i] >= 'A' && lc[i] <= 'Z') lc[i] = (char)(lc[i] + 32);
    if (resp_put(s, value, value_len, &fl.value)) return GP_ERROR;
    fl.name_len = (uint32_t)name_len;
    fl.value_len = (uint32_t)value_len;
    s->fields[s->nfields++] = fl;
    return GP_OK;
}

int gp_h2_head_add(gp_h2_stream *s, const char *name, size_t name_len, const char *value,
                   size_t value_len)
{
    if (!s->begun || s->submitted) return GP_ERROR;
    if (connection_specific(name, name_len)) return GP_OK;
    return add_field(s, name, name_len, value, value_len);
}

int gp_h2_write(gp_h2_stream *s, const void *data, size_t len)
{
    if (!usable(s) || s->ended) return GP_ERROR;
    if (!s->head_request && len) {
        /* a reader that keeps pace never drains the buffer to empty, so the
           sent bytes go before it grows, or it grows by all a stream sends */
        if (s->out_off && s->out.len + len > s->out.cap) {
            s->out.len -= s->out_off;
            memmove(s->out.p, s->out.p + s->out_off, s->out.len);
            s->out_off = 0;
        }
        if (gb_append(&s->out, data, len, 0, NULL)) return GP_ERROR;
    }
    if (kick(s)) return GP_ERROR;
    if (s->out.len - s->out_off > s->h->lim.out_high) {
        s->want_writable = true; /* the stall clock starts at the next tick */
        return GP_AGAIN;
    }
    return GP_OK;
}

int gp_h2_flush(gp_h2_stream *s)
{
    if (!usable(s)) return GP_ERROR;
    return kick(s);
}

size_t gp_h2_pending(const gp_h2_stream *s)
{
    return s->out.len - s->out_off;
}

/* Keeps "Name: value\r\n" trailer lines as fields after the response's. */
static int keep_trailers(gp_h2_stream *s, const char *t, size_t len)
{
    const char *p = t, *end = t + len;
    size_t first = s->nfields;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        if (line_end > p && line_end[-1] == '\r') line_end--;
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon && colon > p) {
            const char *v = colon + 1;
            while (v < line_end && (*v == ' ' || *v == '\t')) v++;
            if (add_field(s, p, (size_t)(colon - p), v, (size_t)(line_end - v))) return GP_ERROR;
        }
        p = eol ? eol + 1 : end;
    }
    /* the trailer fields' records, copied after the names and values */
    size_t n = s->nfields - first;
    s->nfields = first;
    if (!n) return GP_OK;
    uint32_t off;
    if (resp_put(s, &s->fields[first], n * sizeof(field), &off)) return GP_ERROR;
    s->trailers_off = off;
    s->trailers_len = n * sizeof(field);
    return GP_OK;
}

int gp_h2_end(gp_h2_stream *s, const char *trailers, size_t trailers_len)
{
    if (!usable(s) || s->ended) return GP_ERROR;
    if (!s->begun && gp_h2_head_begin(s, 200)) return GP_ERROR;
    if (trailers_len && !s->submitted && keep_trailers(s, trailers, trailers_len)) return GP_ERROR;
    if (trailers_len && s->submitted) {
        /* the head's fields are already sent: the buffer may take the trailers */
        s->nfields = 0;
        if (keep_trailers(s, trailers, trailers_len)) return GP_ERROR;
    }
    s->ended = true;
    return kick(s);
}

void gp_h2_reset(gp_h2_stream *s, uint32_t error_code)
{
    if (!usable(s)) return;
    s->reset_sent = true;
    nghttp2_submit_rst_stream(s->h->ng, NGHTTP2_FLAG_NONE, s->id, error_code);
}

/* ---- request body ---- */

ssize_t gp_h2_body_read(gp_h2_stream *s, char *dst, size_t n)
{
    if (s->body_too_large) return GP_H2_BODY_TOO_LARGE;
    size_t avail = s->in.len - s->in_off;
    if (!avail) {
        if (s->in_end) return 0;
        return s->closed || !s->h ? GP_H2_BODY_RESET : GP_H2_BODY_AGAIN;
    }
    if (n > avail) n = avail;
    memcpy(dst, s->in.p + s->in_off, n);
    s->in_off += n;
    if (s->in_off == s->in.len) s->in_off = s->in.len = 0;
    if (s->h && !s->closed) nghttp2_session_consume_stream(s->h->ng, s->id, n);
    return (ssize_t)n;
}

bool gp_h2_stream_continue(gp_h2_stream *s)
{
    if (!s->expect_continue || s->continue_sent || s->begun || !usable(s) || s->in_end ||
        s->body_total)
        return false;
    s->continue_sent = true;
    nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)"100", 7, 3, NGHTTP2_NV_FLAG_NONE}};
    /* a non-final head: the stream stays open for the response */
    return nghttp2_submit_headers(s->h->ng, NGHTTP2_FLAG_NONE, s->id, NULL, nv, 1, NULL) == 0;
}

size_t gp_h2_body_buffered(const gp_h2_stream *s)
{
    return s->in.len - s->in_off;
}

bool gp_h2_body_done(const gp_h2_stream *s)
{
    return s->in_end && s->in.len == s->in_off;
}

int64_t gp_h2_body_length(const gp_h2_stream *s)
{
    return s->content_length;
}

/* ---- stream accessors ---- */

int32_t gp_h2_stream_id(const gp_h2_stream *s)
{
    return s->id;
}

void *gp_h2_stream_data(const gp_h2_stream *s)
{
    return s->data;
}

void gp_h2_stream_set_data(gp_h2_stream *s, void *data)
{
    s->data = data;
}

bool gp_h2_stream_closed(const gp_h2_stream *s)
{
    return s->closed || !s->h;
}

void gp_h2_stream_release(gp_h2_stream *s)
{
    s->released = true;
    s->held = false;
    if (!s->h) {
        stream_free(s);
        return;
    }
    if (s->closed) {
        if (s->h->in_events)
            queue(s, EV_CLOSE);
        else
            stream_free(s);
        return;
    }
    if (!s->ended) gp_h2_reset(s, NGHTTP2_CANCEL);
    /* the stream's unread body no longer holds the peer's window */
    size_t unread = s->in.len - s->in_off;
    if (unread) nghttp2_session_consume_stream(s->h->ng, s->id, unread);
    s->in_off = s->in.len = 0;
}

/* ---- the session ---- */

int gp_h2_is_preface(const char *buf, size_t len)
{
    static const char P[] = NGHTTP2_CLIENT_MAGIC;
    size_t n = len < sizeof P - 1 ? len : sizeof P - 1;
    if (memcmp(buf, P, n) != 0) return -1;
    return n == sizeof P - 1 ? 1 : 0;
}

gp_h2 *gp_h2_new(const gp_h2_ops *ops, void *host, const gp_h2_limits *lim, const char *peer)
{
    gp_h2 *h = calloc(1, sizeof *h);
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    if (!h) return NULL;
    h->ops = ops;
    h->host = host;
    h->lim = *lim;
    if (!h->lim.max_streams) h->lim.max_streams = DEFAULT_STREAMS;
    if (!h->lim.window) h->lim.window = DEFAULT_WINDOW;
    if (!h->lim.out_high) h->lim.out_high = DEFAULT_OUT_HIGH;
    if (!h->lim.max_fields) h->lim.max_fields = 100;
    if (!h->lim.max_field_size) h->lim.max_field_size = 8190;
    if (!h->lim.max_head) h->lim.max_head = 65536;
    snprintf(h->peer, sizeof h->peer, "%s", peer ? peer : "-");
    if (nghttp2_session_callbacks_new(&cb) || nghttp2_option_new(&opt)) goto fail;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, on_invalid_frame);
    /* the request body's window opens only as the app reads it */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    /* nghttp2's own flood answers, at its defaults, said out loud: SETTINGS
     * and PING acks queued unread (1000), SETTINGS entries (32), CONTINUATION
     * frames after one HEADERS (8, CVE-2024-27316), resets (1000 at once,
     * 33/s after: CVE-2023-44487, with our own count on top) */
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
    nghttp2_option_set_no_closed_streams(opt, 1);
    if (nghttp2_session_server_new2(&h->ng, cb, h, opt)) goto fail;
    nghttp2_settings_entry iv[5] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, h->lim.max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, h->lim.window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)h->lim.max_head},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
        {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
    };
    if (nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, h->lim.connect_protocol ? 5 : 4))
        goto fail;
    nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    return h;
fail:
    if (cb) nghttp2_session_callbacks_del(cb);
    if (opt) nghttp2_option_del(opt);
    if (h->ng) nghttp2_session_del(h->ng);
    free(h);
    return NULL;
}

void gp_h2_free(gp_h2 *h)
{
    if (!h) return;
    h->in_free = true;
    /* every stream learns it is over; those the host still holds outlive us */
    for (gp_h2_stream *s = h->streams; s; s = s->next) {
        if (!s->closed) {
            s->closed = true;
            s->close_code = NGHTTP2_CANCEL;
        }
        if (s->held && !s->close_told) queue(s, EV_CLOSE);
    }
    run_events(h);
    while (h->streams) {
        gp_h2_stream *s = h->streams;
        if (s->held) {
            stream_unlink(s);
            continue;
        }
        stream_free(s);
    }
    while (h->spare) {
        gp_h2_stream *s = h->spare;
        h->spare = s->next;
        gb_free(&s->out);
        free(s->fields);
        free(s);
    }
    nghttp2_session_del(h->ng);
    free(h);
}

/* Rapid reset: resets far beyond completed streams end the connection. */
static void check_resets(gp_h2 *h)
{
    if (h->broken || h->resets <= 2 * h->completed + RESET_ALLOWANCE) return;
    abuse(h, LOG_RESET, "rapid reset (streams reset much faster than completed): GOAWAY", 0);
    nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->ng),
                          NGHTTP2_ENHANCE_YOUR_CALM, NULL, 0);
    h->broken = true;
}

int gp_h2_feed(gp_h2 *h, const char *buf, size_t len)
{
    if (h->broken) return GP_ERROR;
    ssize_t r = nghttp2_session_mem_recv(h->ng, (const uint8_t *)buf, len);
    if (r < 0) {
        char what[96];
        snprintf(what, sizeof what, "closed: %s", nghttp2_strerror((int)r));
        abuse(h, r == NGHTTP2_ERR_FLOODED ? LOG_FLOOD : LOG_INVALID, what, 0);
        h->broken = true;
    }
    check_resets(h);
    run_events(h);
    return h->broken ? GP_ERROR : GP_OK;
}

ssize_t gp_h2_output(gp_h2 *h, const uint8_t **data)
{
    const uint8_t *d = NULL;
    ssize_t n;
    /* events first: one may call back here, and nghttp2's buffer handed
     * out below must stay as it is until the caller's next call */
    for (;;) {
        run_events(h);
        n = nghttp2_session_mem_send(h->ng, &d);
        if (n != 0 || !h->ev_head || h->in_events) break;
    }
    if (n < 0) {
        h->broken = true;
        return GP_ERROR;
    }
    *data = d;
    return n;
}

bool gp_h2_done(gp_h2 *h)
{
    if (nghttp2_session_want_write(h->ng)) return false;
    return h->broken || !nghttp2_session_want_read(h->ng);
}

void gp_h2_shutdown(gp_h2 *h)
{
    if (h->shutting_down) return;
    h->shutting_down = true;
    nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
}

size_t gp_h2_open_streams(gp_h2 *h)
{
    size_t n = 0;
    for (gp_h2_stream *s = h->streams; s; s = s->next) n += !s->closed;
    return n;
}

long gp_h2_tick(gp_h2 *h, uint64_t now_ms, uint64_t stall_ms)
{
    h->now_ms = now_ms;
    long next = -1;
    for (gp_h2_stream *s = h->streams; s; s = s->next) {
        if (s->closed || s->reset_sent) continue;
        bool waiting = s->submitted && gp_h2_pending(s) > 0;
        if (!waiting) {
            s->stall_since = 0;
            continue;
        }
        if (!s->stall_since) s->stall_since = now_ms;
        uint64_t due = s->stall_since + stall_ms;
        if (now_ms >= due) {
            abuse(h, LOG_STALL, "the peer's window stayed shut: stream reset", s->id);
            gp_h2_reset(s, NGHTTP2_CANCEL);
            continue;
        }
        if (next < 0 || (long)(due - now_ms) < next) next = (long)(due - now_ms);
    }
    check_resets(h);
    return next;
}

/* ---- h2c upgrade ---- */

static int b64url_value(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-' || c == '+') return 62;
    if (c == '_' || c == '/') return 63;
    return -1;
}

/* base64url without padding (RFC 7540 3.2.1); returns bytes or -1. */
static ssize_t b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '=') break;
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0) return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap) return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return (ssize_t)o;
}

int gp_h2_upgrade(gp_h2 *h, const char *settings, size_t settings_len, const gp_http_request *req)
{
    uint8_t raw[256];
    ssize_t n = b64url_decode(settings, settings_len, raw, sizeof raw);
    if (n < 0 || n % 6) return GP_ERROR;
    bool head = gp_http_token_eq(req->method, req->method_len, "head");
    if (nghttp2_session_upgrade2(h->ng, raw, (size_t)n, head, NULL)) return GP_ERROR;
    gp_h2_stream *s = stream_new(h, 1);
    if (!s) return GP_ERROR;
    nghttp2_session_set_stream_user_data(h->ng, 1, s);
    s->in_end = true;
    s->head_request = head;
    s->held = true;
    /* answered over HTTP/2: the app sees an HTTP/2 request */
    gp_http_request r2 = *req;
    r2.version_minor = GP_HTTP_VERSION_2;
    r2.keep_alive = true;
    r2.upgrade = false;
    h->ops->on_request(h->host, s, &r2);
    run_events(h);
    return GP_OK;
}
