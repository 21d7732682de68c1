/* Unit tests for core/h2: the session driven in memory by nghttp2 as the
 * client (and by hand-made frames where a client library would refuse to
 * misbehave): requests and their view, bodies both ways under flow control,
 * a slow stream beside a fast one, trailers, h2c upgrade, the limits (header
 * list, field count, concurrent streams, body size) and the attacks (rapid
 * reset, CONTINUATION and PING floods, a window that never opens), and the
 * graceful GOAWAY. Then core/h2x, the streams as the bridge's requests,
 * with a C app in place of the bridge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/conn.h"
#include "core/h2.h"
#include "core/h2x.h"

/* ---- the app side (host) ---- */

enum { APP_HELLO, APP_ECHO, APP_HOLD, APP_BIG, APP_TRAILERS };

#define MAX_ST 512

typedef struct {
    int mode;
    size_t big; /* APP_BIG: bytes to write */
    gp_h2_stream *st[MAX_ST];
    size_t written[MAX_ST];
    int nreq, nclose, nwritable, again;
    char method[16], path[64], query[64], host[64], cookie[128];
    int body_kind;
    size_t nheaders;
    uint32_t last_close;
} app;

static void app_write_big(app *a, gp_h2_stream *s)
{
    int id = gp_h2_stream_id(s);
    static char chunk[16384];
    while (a->written[id] < a->big) {
        size_t n = a->big - a->written[id];
        if (n > sizeof chunk) n = sizeof chunk;
        memset(chunk, 'a' + (int)(a->written[id] / sizeof chunk % 26), n);
        int r = gp_h2_write(s, chunk, n);
        assert_int_not_equal(r, GP_ERROR);
        a->written[id] += n;
        if (r == GP_AGAIN) {
            a->again++;
            return;
        }
    }
    gp_h2_end(s, NULL, 0);
    gp_h2_stream_release(s);
    a->st[id] = NULL;
}

/* Echo: read what is there; at the body's end answer with all of it. */
static void app_echo(app *a, gp_h2_stream *s)
{
    char buf[4096];
    ssize_t r;
    while ((r = gp_h2_body_read(s, buf, sizeof buf)) > 0) {
        if (!gp_h2_head_begun(s)) gp_h2_head_begin(s, 200);
        gp_h2_write(s, buf, (size_t)r);
    }
    if (r == 0) {
        gp_h2_end(s, NULL, 0);
        gp_h2_stream_release(s);
        a->st[gp_h2_stream_id(s)] = NULL;
    } else if (r == GP_H2_BODY_TOO_LARGE) {
        gp_h2_reset(s, NGHTTP2_INTERNAL_ERROR);
        gp_h2_stream_release(s);
        a->st[gp_h2_stream_id(s)] = NULL;
    }
}

static void on_request(void *host, gp_h2_stream *s, const gp_http_request *req)
{
    app *a = host;
    int id = gp_h2_stream_id(s);
    assert_true(id < MAX_ST);
    a->st[id] = s;
    a->nreq++;
    snprintf(a->method, sizeof a->method, "%.*s", (int)req->method_len, req->method);
    snprintf(a->path, sizeof a->path, "%.*s", (int)req->path_len, req->path);
    snprintf(a->query, sizeof a->query, "%.*s", req->query ? (int)req->query_len : 0,
             req->query ? req->query : "");
    snprintf(a->host, sizeof a->host, "%.*s", req->host ? (int)req->host_len : 0,
             req->host ? req->host : "");
    a->cookie[0] = 0;
    for (size_t i = 0; i < req->num_headers; i++)
        if (req->headers[i].name_len == 6 && memcmp(req->headers[i].name, "cookie", 6) == 0)
            snprintf(a->cookie, sizeof a->cookie, "%.*s", (int)req->headers[i].value_len,
                     req->headers[i].value);
    a->body_kind = req->body;
    a->nheaders = req->num_headers;
    switch (a->mode) {
    case APP_HELLO:
        gp_h2_head_begin(s, 200);
        gp_h2_head_add(s, "Content-Type", 12, "text/plain", 10);
        gp_h2_head_add(s, "Connection", 10, "keep-alive", 10); /* dropped */
        gp_h2_write(s, "hello", 5);
        gp_h2_end(s, NULL, 0);
        gp_h2_stream_release(s);
        a->st[id] = NULL;
        break;
    case APP_ECHO: app_echo(a, s); break;
    case APP_BIG:
        gp_h2_head_begin(s, 200);
        app_write_big(a, s);
        break;
    case APP_TRAILERS: {
        gp_h2_head_begin(s, 200);
        gp_h2_head_add(s, "Trailer", 7, "X-Sum", 5);
        gp_h2_write(s, "data", 4);
        const char t[] = "X-Sum: 42\r\nX-Other: b\r\n";
        gp_h2_end(s, t, sizeof t - 1);
        gp_h2_stream_release(s);
        a->st[id] = NULL;
        break;
    }
    default: break; /* APP_HOLD: answer later, or never */
    }
}

static void on_body(void *host, gp_h2_stream *s)
{
    app *a = host;
    if (a->mode == APP_ECHO) app_echo(a, s);
}

static void on_writable(void *host, gp_h2_stream *s)
{
    app *a = host;
    a->nwritable++;
    if (a->mode == APP_BIG) app_write_big(a, s);
}

static void on_close(void *host, gp_h2_stream *s, uint32_t code)
{
    app *a = host;
    a->nclose++;
    a->last_close = code;
    a->st[gp_h2_stream_id(s)] = NULL;
    gp_h2_stream_release(s);
}

static const gp_h2_ops OPS = {on_request, on_body, on_writable, on_close};

/* ---- the client side ---- */

typedef struct {
    int status;
    char body[8192];
    size_t body_len, body_total; /* body_total: bytes not yet acknowledged */
    uint64_t hash, got;          /* of every body byte, in order */
    char trailer[128];
    uint32_t rst;
    bool closed, reset;
    char ctype[32];
} resp;

typedef struct {
    nghttp2_session *ng;
    resp r[MAX_ST];
    int goaway;
    uint32_t goaway_code;
    int32_t goaway_last;
    int rst_frames;
    bool no_consume; /* leave the server's DATA unacknowledged (window stays shut) */
} client;

static int c_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                    const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    client *c = ud;
    resp *r = &c->r[f->hd.stream_id];
    if (nl == 7 && memcmp(name, ":status", 7) == 0) r->status = atoi((const char *)value);
    if (nl == 12 && memcmp(name, "content-type", 12) == 0)
        snprintf(r->ctype, sizeof r->ctype, "%.*s", (int)vl, value);
    if (nl == 10 && memcmp(name, "connection", 10) == 0) fail_msg("connection field sent");
    if (f->headers.cat == NGHTTP2_HCAT_HEADERS) {
        size_t l = strlen(r->trailer);
        snprintf(r->trailer + l, sizeof r->trailer - l, "%.*s=%.*s;", (int)nl, name, (int)vl,
                 value);
    }
    return 0;
}

static int c_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
                  void *ud)
{
    client *c = ud;
    resp *r = &c->r[id];
    size_t room = sizeof r->body - r->body_len;
    memcpy(r->body + r->body_len, d, n < room ? n : room);
    r->body_len += n < room ? n : room;
    r->body_total += n;
    for (size_t i = 0; i < n; i++) r->hash = r->hash * 31 + d[i];
    r->got += n;
    return 0;
}

static int c_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    client *c = ud;
    c->r[id].closed = true;
    c->r[id].rst = code;
    return 0;
}

static int c_frame(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    client *c = ud;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        c->goaway++;
        c->goaway_code = f->goaway.error_code;
        c->goaway_last = f->goaway.last_stream_id;
    }
    if (f->hd.type == NGHTTP2_RST_STREAM) {
        c->rst_frames++;
        c->r[f->hd.stream_id].reset = true;
    }
    return 0;
}

static void client_init(client *c, uint32_t window)
{
    memset(c, 0, sizeof *c);
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, c_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, c_frame);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, 1000); /* until the server's SETTINGS */
    assert_int_equal(nghttp2_session_client_new2(&c->ng, cb, c, opt), 0);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window}};
    nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 1);
}

/* Moves bytes both ways until neither side has anything to say. Returns
 * the server's last feed result. */
static int pump(client *c, gp_h2 *h)
{
    int rc = GP_OK;
    for (int round = 0; round < 10000; round++) {
        bool moved = false;
        const uint8_t *d;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(c->ng, &d)) > 0) {
            moved = true;
            if (rc == GP_OK) rc = gp_h2_feed(h, (const char *)d, (size_t)n);
        }
        while ((n = gp_h2_output(h, &d)) > 0) {
            moved = true;
            nghttp2_session_mem_recv(c->ng, d, (size_t)n);
        }
        if (!c->no_consume) {
            /* the client reads everything at once: its windows reopen */
            for (int id = 1; id < MAX_ST; id++)
                if (c->r[id].body_total) {
                    nghttp2_session_consume(c->ng, id, c->r[id].body_total);
                    c->r[id].body_total = 0;
                }
        }
        if (!moved) break;
    }
    return rc;
}

static const gp_h2_limits LIM = {8190, 100, 65536, 100, 0, 0, 0, false};

static int32_t get(client *c, const char *path, const char *extra_name, const char *extra_value)
{
    nghttp2_nv nv[] = {
        {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"example.test", 10, 12, 0},
        {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
        {(uint8_t *)extra_name, (uint8_t *)extra_value, extra_name ? strlen(extra_name) : 0,
         extra_value ? strlen(extra_value) : 0, 0},
    };
    return nghttp2_submit_request(c->ng, NULL, nv, extra_name ? 5 : 4, NULL, NULL);
}

/* A POST whose body is len bytes of a pattern. */
typedef struct {
    size_t len, off;
} upload;

static ssize_t up_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t n, uint32_t *flags,
                       nghttp2_data_source *src, void *ud)
{
    upload *u = src->ptr;
    size_t left = u->len - u->off;
    if (n > left) n = left;
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)('0' + (u->off + i) % 10);
    u->off += n;
    if (u->off == u->len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int32_t post(client *c, upload *u)
{
    nghttp2_nv nv[] = {
        {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"example.test", 10, 12, 0},
        {(uint8_t *)":path", (uint8_t *)"/up", 5, 3, 0},
    };
    nghttp2_data_provider prd = {.source.ptr = u, .read_callback = up_read};
    return nghttp2_submit_request(c->ng, NULL, nv, 4, &prd, NULL);
}

/* ---- tests ---- */

static void test_hello(void **state)
{
    app a = {.mode = APP_HELLO};
    client c;
    client_init(&c, 65535);
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    assert_non_null(h);
    int32_t id = get(&c, "/a/b?x=1", "cookie", "a=1");
    nghttp2_nv more[] = {
        {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"example.test", 10, 12, 0},
        {(uint8_t *)":path", (uint8_t *)"/c", 5, 2, 0},
        {(uint8_t *)"cookie", (uint8_t *)"a=1", 6, 3, 0},
        {(uint8_t *)"cookie", (uint8_t *)"b=2", 6, 3, 0},
    };
    assert_int_equal(pump(&c, h), GP_OK);
    assert_int_equal(a.nreq, 1);
    assert_string_equal(a.method, "GET");
    assert_string_equal(a.path, "/a/b");
    assert_string_equal(a.query, "x=1");
    assert_string_equal(a.host, "example.test"); /* from :authority */
    assert_int_equal(a.body_kind, GP_HTTP_BODY_NONE);
    assert_int_equal(c.r[id].status, 200);
    assert_string_equal(c.r[id].ctype, "text/plain");
    assert_int_equal(c.r[id].body_len, 5);
    assert_memory_equal(c.r[id].body, "hello", 5);
    assert_true(c.r[id].closed);
    assert_int_equal(c.r[id].rst, 0);
    int32_t id2 = nghttp2_submit_request(c.ng, NULL, more, 6, NULL, NULL);
    pump(&c, h);
    assert_int_equal(c.r[id2].status, 200);
    assert_string_equal(a.cookie, "a=1; b=2"); /* RFC 9113 8.2.3 */
    assert_string_equal(a.query, "");
    assert_int_equal(gp_h2_open_streams(h), 0);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

static void test_echo_body_larger_than_window(void **state)
{
    app a = {.mode = APP_ECHO};
    client c;
    client_init(&c, 1 << 20);
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    upload u = {300000, 0};
    int32_t id = post(&c, &u);
    assert_int_equal(pump(&c, h), GP_OK);
    assert_int_equal(a.body_kind, GP_HTTP_BODY_CHUNKED); /* no content-length */
    assert_int_equal(c.r[id].status, 200);
    assert_true(c.r[id].closed);
    assert_int_equal(c.r[id].rst, 0);
    assert_memory_equal(c.r[id].body, "0123456789", 10);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

/* A stream whose app never reads holds only its own window: another
 * stream's request is answered, and the held body is at most one window. */
static void test_slow_stream_does_not_block_others(void **state)
{
    app a = {.mode = APP_HOLD};
    client c;
    client_init(&c, 65535);
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    upload u = {500000, 0};
    int32_t slow = post(&c, &u);
    pump(&c, h);
    assert_non_null(a.st[slow]);
    assert_true(gp_h2_body_buffered(a.st[slow]) <= 65535);
    assert_true(gp_h2_body_buffered(a.st[slow]) > 0);
    a.mode = APP_HELLO;
    int32_t fast = get(&c, "/fast", NULL, NULL);
    pump(&c, h);
    assert_int_equal(c.r[fast].status, 200);
    assert_true(c.r[fast].closed);
    assert_false(c.r[slow].closed);
    /* the slow app reads now: the rest of its body flows */
    a.mode = APP_ECHO;
    app_echo(&a, a.st[slow]);
    pump(&c, h);
    assert_true(c.r[slow].closed);
    assert_int_equal(c.r[slow].status, 200);
    assert_int_equal(c.r[slow].rst, 0);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

/* The app writes more than the per-stream buffer: GP_AGAIN, then
 * on_writable as the client's window lets it drain; everything arrives. */
static void test_response_backpressure(void **state)
{
    app a = {.mode = APP_BIG, .big = 1 << 20};
    client c;
    client_init(&c, 65535);
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    int32_t id = get(&c, "/big", NULL, NULL);
    pump(&c, h);
    assert_true(a.again > 0);
    assert_true(a.nwritable > 0);
    assert_true(c.r[id].closed);
    assert_int_equal(c.r[id].rst, 0);
    /* every byte, in order, though the app wrote more from inside the
     * session's output call (on_writable) */
    uint64_t want = 0;
    for (size_t i = 0; i < a.big; i++) want = want * 31 + (uint64_t)('a' + (int)(i / 16384 % 26));
    assert_int_equal(c.r[id].got, a.big);
    assert_true(c.r[id].hash == want);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

static void test_trailers(void **state)
{
    app a = {.mode = APP_TRAILERS};
    client c;
    client_init(&c, 65535);
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    int32_t id = get(&c, "/t", NULL, NULL);
    pump(&c, h);
    assert_int_equal(c.r[id].status, 200);
    assert_memory_equal(c.r[id].body, "data", 4);
    assert_string_equal(c.r[id].trailer, "x-sum=42;x-other=b;");
    assert_int_equal(c.r[id].rst, 0);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

static void test_head_request_sends_no_body(void **state)
{
    app a = {.mode = APP_HELLO};
    client c;
    client_init(&c, 65535);
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    nghttp2_nv nv[] = {
        {(uint8_t *)":method", (uint8_t *)"HEAD", 7, 4, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"x", 10, 1, 0},
        {(uint8_t *)":path", (uint8_t *)"/", 5, 1, 0},
    };
    int32_t id = nghttp2_submit_request(c.ng, NULL, nv, 4, NULL, NULL);
    pump(&c, h);
    assert_int_equal(c.r[id].status, 200);
    assert_int_equal(c.r[id].body_len, 0);
    assert_true(c.r[id].closed);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

static void test_header_list_too_large_431(void **state)
{
    app a = {.mode = APP_HELLO};
    client c;
    client_init(&c, 65535);
    gp_h2_limits lim = LIM;
    lim.max_head = 4096;
    gp_h2 *h = gp_h2_new(&OPS, &a, &lim, "test");
    char big[5000];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = 0;
    int32_t id = get(&c, "/", "x-big", big);
    assert_int_equal(pump(&c, h), GP_OK);
    assert_int_equal(c.r[id].status, 431);
    assert_int_equal(a.nreq, 0); /* the app never saw it */
    /* the connection goes on */
    int32_t id2 = get(&c, "/", NULL, NULL);
    pump(&c, h);
    assert_int_equal(c.r[id2].status, 200);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

static void test_too_many_fields_431(void **state)
{
    app a = {.mode = APP_HELLO};
    client c;
    client_init(&c, 65535);
    gp_h2_limits lim = LIM;
    lim.max_fields = 5;
    gp_h2 *h = gp_h2_new(&OPS, &a, &lim, "test");
    nghttp2_nv nv[12];
    nv[0] = (nghttp2_nv){(uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0};
    nv[1] = (nghttp2_nv){(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0};
    nv[2] = (nghttp2_nv){(uint8_t *)":authority", (uint8_t *)"x", 10, 1, 0};
    nv[3] = (nghttp2_nv){(uint8_t *)":path", (uint8_t *)"/", 5, 1, 0};
    static char names[8][16];
    for (int i = 0; i < 8; i++) {
        snprintf(names[i], sizeof names[i], "x-h%d", i);
        nv[4 + i] = (nghttp2_nv){(uint8_t *)names[i], (uint8_t *)"v", 4, 1, 0};
    }
    int32_t id = nghttp2_submit_request(c.ng, NULL, nv, 12, NULL, NULL);
    pump(&c, h);
    assert_int_equal(c.r[id].status, 431);
    assert_int_equal(a.nreq, 0);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

/* Requests sent before the server's SETTINGS arrive: past 100 open streams
 * the rest are refused with RST_STREAM. */
static void test_max_concurrent_streams(void **state)
{
    app a = {.mode = APP_HOLD};
    client c;
    client_init(&c, 65535);
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    for (int i = 0; i < 110; i++) get(&c, "/", NULL, NULL);
    pump(&c, h);
    assert_int_equal(a.nreq, 100);
    assert_int_equal(gp_h2_open_streams(h), 100);
    assert_int_equal(c.rst_frames, 10);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

static void test_body_too_large(void **state)
{
    app a = {.mode = APP_ECHO};
    client c;
    client_init(&c, 65535);
    gp_h2_limits lim = LIM;
    lim.max_body = 1000;
    gp_h2 *h = gp_h2_new(&OPS, &a, &lim, "test");
    upload u = {5000, 0};
    int32_t id = post(&c, &u);
    pump(&c, h);
    assert_true(c.r[id].closed);
    assert_int_equal(c.r[id].rst, NGHTTP2_INTERNAL_ERROR);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

/* CVE-2023-44487: streams opened and reset at once, never completed. */
static void test_rapid_reset_goaway(void **state)
{
    app a = {.mode = APP_HOLD};
    client c;
    client_init(&c, 65535);
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    pump(&c, h);
    int rc = GP_OK;
    for (int i = 0; i < 300 && !c.goaway; i++) {
        int32_t id = get(&c, "/", NULL, NULL);
        const uint8_t *d;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(c.ng, &d)) > 0)
            if (rc == GP_OK) rc = gp_h2_feed(h, (const char *)d, (size_t)n);
        nghttp2_submit_rst_stream(c.ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        pump(&c, h);
    }
    assert_int_equal(c.goaway, 1);
    assert_int_equal(c.goaway_code, NGHTTP2_ENHANCE_YOUR_CALM);
    assert_true(gp_h2_done(h));
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

/* Hand-made frames, for what no client library sends. */
static size_t frame(uint8_t *out, uint8_t type, uint8_t flags, uint32_t id, const void *p,
                    size_t n)
{
    out[0] = (uint8_t)(n >> 16);
    out[1] = (uint8_t)(n >> 8);
    out[2] = (uint8_t)n;
    out[3] = type;
    out[4] = flags;
    out[5] = (uint8_t)(id >> 24);
    out[6] = (uint8_t)(id >> 16);
    out[7] = (uint8_t)(id >> 8);
    out[8] = (uint8_t)id;
    if (n) memcpy(out + 9, p, n);
    return 9 + n;
}

static size_t preface(uint8_t *out)
{
    memcpy(out, NGHTTP2_CLIENT_MAGIC, 24);
    return 24 + frame(out + 24, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
}

/* CVE-2024-27316: HEADERS followed by CONTINUATION frames without end. */
static void test_continuation_flood(void **state)
{
    app a = {.mode = APP_HELLO};
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    static uint8_t buf[65536];
    size_t n = preface(buf);
    /* ":method GET" as an indexed field, then literal junk fields */
    uint8_t hb[] = {0x82};
    n += frame(buf + n, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM, 1, hb, 1);
    uint8_t lit[] = {0x40, 1, 'x', 1, 'y'}; /* literal with indexing, "x: y" */
    int rc = gp_h2_feed(h, (const char *)buf, n);
    for (int i = 0; i < 50 && rc == GP_OK; i++) {
        n = frame(buf, NGHTTP2_CONTINUATION, 0, 1, lit, sizeof lit);
        rc = gp_h2_feed(h, (const char *)buf, n);
    }
    assert_int_equal(rc, GP_ERROR);
    assert_int_equal(a.nreq, 0);
    gp_h2_free(h);
}

/* PINGs whose answers the peer never reads. */
static void test_ping_flood(void **state)
{
    app a = {.mode = APP_HELLO};
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    static uint8_t buf[4096];
    size_t n = preface(buf);
    int rc = gp_h2_feed(h, (const char *)buf, n);
    int i;
    for (i = 0; i < 5000 && rc == GP_OK; i++) {
        n = frame(buf, NGHTTP2_PING, 0, 0, "12345678", 8);
        rc = gp_h2_feed(h, (const char *)buf, n);
    }
    assert_int_equal(rc, GP_ERROR);
    assert_true(i > 900 && i < 1200);
    gp_h2_free(h);
}

static void test_settings_flood(void **state)
{
    app a = {.mode = APP_HELLO};
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    static uint8_t buf[4096];
    size_t n = preface(buf);
    int rc = gp_h2_feed(h, (const char *)buf, n);
    for (int i = 0; i < 5000 && rc == GP_OK; i++) {
        n = frame(buf, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
        rc = gp_h2_feed(h, (const char *)buf, n);
    }
    assert_int_equal(rc, GP_ERROR);
    gp_h2_free(h);
}

/* The client's window never opens: the stream is reset after the stall
 * time, and the session goes on. */
static void test_zero_window_forever(void **state)
{
    app a = {.mode = APP_BIG, .big = 200000};
    client c;
    client_init(&c, 0);
    c.no_consume = true;
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    assert_int_equal(gp_h2_tick(h, 1000, 5000), -1);
    int32_t id = get(&c, "/z", NULL, NULL);
    pump(&c, h);
    assert_int_equal(c.r[id].status, 200);
    assert_false(c.r[id].closed);
    /* stalled as the tick at 2000 first sees it */
    assert_int_equal(gp_h2_tick(h, 2000, 5000), 5000);
    assert_int_equal(gp_h2_tick(h, 4000, 5000), 3000);
    gp_h2_tick(h, 6999, 5000);
    pump(&c, h);
    assert_false(c.r[id].closed);
    gp_h2_tick(h, 7001, 5000);
    pump(&c, h);
    assert_true(c.r[id].closed);
    assert_int_equal(c.r[id].rst, NGHTTP2_CANCEL);
    assert_int_equal(a.nclose, 1);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

/* Graceful stop: GOAWAY(NO_ERROR) with the last stream; an open stream
 * still completes; then the session is done. */
static void test_graceful_shutdown(void **state)
{
    app a = {.mode = APP_HOLD};
    client c;
    client_init(&c, 65535);
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    int32_t id = get(&c, "/", NULL, NULL);
    pump(&c, h);
    gp_h2_shutdown(h);
    pump(&c, h);
    assert_int_equal(c.goaway, 1);
    assert_int_equal(c.goaway_code, NGHTTP2_NO_ERROR);
    assert_int_equal(c.goaway_last, id);
    assert_false(gp_h2_done(h));
    gp_h2_stream *s = a.st[id];
    gp_h2_head_begin(s, 204);
    gp_h2_end(s, NULL, 0);
    gp_h2_stream_release(s);
    pump(&c, h);
    assert_int_equal(c.r[id].status, 204);
    assert_true(c.r[id].closed);
    /* the client said nothing more: the server is done once it stops reading */
    nghttp2_session_terminate_session(c.ng, NGHTTP2_NO_ERROR);
    pump(&c, h);
    assert_true(gp_h2_done(h));
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

/* A stream released before its end is reset; one the peer resets reaches
 * the app as on_close, and writes to it fail. */
static void test_release_and_peer_reset(void **state)
{
    app a = {.mode = APP_HOLD};
    client c;
    client_init(&c, 65535);
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    int32_t id1 = get(&c, "/1", NULL, NULL);
    int32_t id2 = get(&c, "/2", NULL, NULL);
    pump(&c, h);
    gp_h2_stream *s1 = a.st[id1], *s2 = a.st[id2];
    gp_h2_head_begin(s1, 200);
    gp_h2_write(s1, "x", 1);
    gp_h2_stream_release(s1);
    a.st[id1] = NULL;
    pump(&c, h);
    assert_true(c.r[id1].closed);
    assert_int_equal(c.r[id1].rst, NGHTTP2_CANCEL);
    nghttp2_submit_rst_stream(c.ng, NGHTTP2_FLAG_NONE, id2, NGHTTP2_CANCEL);
    /* the app keeps s2 past on_close in this case */
    a.mode = APP_HOLD;
    pump(&c, h);
    assert_int_equal(a.nclose, 1);
    assert_int_equal(a.last_close, NGHTTP2_CANCEL);
    (void)s2;
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

/* Streams the host still holds when the session goes get on_close. */
static void test_free_with_streams_held(void **state)
{
    app a = {.mode = APP_HOLD};
    client c;
    client_init(&c, 65535);
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    for (int i = 0; i < 3; i++) get(&c, "/", NULL, NULL);
    pump(&c, h);
    assert_int_equal(a.nreq, 3);
    gp_h2_free(h);
    assert_int_equal(a.nclose, 3);
    nghttp2_session_del(c.ng);
}

static void test_upgrade_h2c(void **state)
{
    app a = {.mode = APP_HELLO};
    client c;
    client_init(&c, 65535);
    /* the client's HTTP2-Settings: its SETTINGS payload, base64url */
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 65535}};
    uint8_t payload[64];
    ssize_t pl = nghttp2_pack_settings_payload(payload, sizeof payload, iv, 2);
    assert_true(pl == 12);
    static const char B64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char enc[32];
    size_t e = 0;
    for (ssize_t i = 0; i < pl; i += 3) {
        uint32_t v = (uint32_t)payload[i] << 16 | (uint32_t)payload[i + 1] << 8 | payload[i + 2];
        for (int k = 3; k >= 0; k--) enc[e++] = B64[(v >> (6 * k)) & 63];
    }
    nghttp2_session_del(c.ng);
    client_init(&c, 65535);
    assert_int_equal(nghttp2_session_upgrade2(c.ng, payload, (size_t)pl, 0, NULL), 0);
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    gp_http_header hd[1] = {{"Host", 4, "example.test", 12}};
    gp_http_request req = {.method = "GET", .method_len = 3, .target = "/up", .target_len = 3,
                           .path = "/up", .path_len = 3, .host = "example.test", .host_len = 12,
                           .version_minor = 1, .headers = hd, .num_headers = 1};
    assert_int_equal(gp_h2_upgrade(h, "!!", 2, &req), GP_ERROR);
    assert_int_equal(gp_h2_upgrade(h, enc, e, &req), GP_OK);
    assert_int_equal(a.nreq, 1);
    pump(&c, h);
    assert_int_equal(c.r[1].status, 200);
    assert_memory_equal(c.r[1].body, "hello", 5);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

static void test_preface(void **state)
{
    assert_int_equal(gp_h2_is_preface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24), 1);
    assert_int_equal(gp_h2_is_preface("PRI * HT", 8), 0);
    assert_int_equal(gp_h2_is_preface("GET / HTTP/1.1\r\n", 16), -1);
    assert_int_equal(gp_h2_is_preface("", 0), 0);
}

/* Garbage instead of a preface: an error, no crash. */
static void test_bad_preface(void **state)
{
    app a = {.mode = APP_HELLO};
    gp_h2 *h = gp_h2_new(&OPS, &a, &LIM, "test");
    assert_int_equal(gp_h2_feed(h, "GET / HTTP/1.1\r\n\r\nxxxxxxxxxxxxxx", 32), GP_ERROR);
    const uint8_t *d;
    while (gp_h2_output(h, &d) > 0) {
    }
    assert_true(gp_h2_done(h));
    gp_h2_free(h);
}

/* ---- h2x: each stream an exchange, with a C app for the bridge ---- */

enum { XA_HELLO, XA_READ_ALL, XA_ASYNC_ECHO, XA_BIG, XA_FILE, XA_ERROR, XA_TRAILERS };

typedef struct {
    int mode;
    client *c;
    gp_h2 *h;
    gp_h2x_env env;
    int starts, resumes, aborts, readables, dones, last_status;
    bool body_done_at_start; /* no body read could wait at start */
    size_t got, sent;
    int file_fd;
    gp_h2x *last;
} xapp;

static gp_conn *x_conn_of(void *owner, gp_h2x *x, const gp_http_request *req)
{
    return (gp_conn *)x; /* the test's exchange layer: the pointer itself */
}

static void x_pump(void *owner)
{
}

static void x_wait(void *owner, int ms)
{
    xapp *a = owner;
    pump(a->c, a->h);
}

static const char *x_date(void *owner, size_t *len)
{
    *len = 29;
    return "Wed, 02 Dec 2026 05:00:00 GMT";
}

static void x_done(void *owner, gp_h2x *x, int status, uint64_t bytes)
{
    xapp *a = owner;
    a->dones++;
    a->last_status = status;
}

static gp_app_status x_more(xapp *a, gp_h2x *x)
{
    static char chunk[16384];
    memset(chunk, 'z', sizeof chunk);
    while (a->sent < (1u << 20)) {
        a->sent += sizeof chunk;
        if (gp_h2x_write(x, chunk, sizeof chunk) == GP_AGAIN) return GP_APP_PENDING;
    }
    gp_h2x_end_response(x);
    return GP_APP_DONE;
}

static gp_app_status x_start(void *ap, gp_conn *c, const gp_http_request *req)
{
    xapp *a = ap;
    gp_h2x *x = (gp_h2x *)c;
    a->starts++;
    a->last = x;
    a->body_done_at_start = !gp_h2x_body_would_block(x);
    char buf[4096];
    switch (a->mode) {
    case XA_HELLO:
        gp_h2x_head_begin(x, "200 OK", 6);
        gp_h2x_head_add(x, "Content-Type", 12, "text/plain", 10);
        assert_int_equal(gp_h2x_head_add(x, "Bad", 3, "a\nb", 3), GP_ERROR);
        gp_h2x_head_set_length(x, 5);
        gp_h2x_head_end(x);
        gp_h2x_write(x, "hello", 5);
        gp_h2x_end_response(x);
        return GP_APP_DONE;
    case XA_READ_ALL: {
        ssize_t r;
        while ((r = gp_h2x_body_read(x, buf, sizeof buf)) > 0) a->got += (size_t)r;
        assert_int_equal(r, 0);
        char n[32];
        int k = snprintf(n, sizeof n, "%zu", a->got);
        gp_h2x_head_begin_status(x, 200);
        gp_h2x_head_end(x);
        gp_h2x_write_all(x, n, (size_t)k);
        gp_h2x_end_response(x);
        return GP_APP_DONE;
    }
    case XA_ASYNC_ECHO: gp_h2x_wait_input(x, 1); return GP_APP_ASYNC;
    case XA_BIG:
        gp_h2x_head_begin_status(x, 200);
        gp_h2x_head_end(x);
        return x_more(a, x);
    case XA_FILE: {
        gp_h2x_head_begin_status(x, 200);
        gp_h2x_head_set_length(x, 200000);
        gp_h2x_head_end(x);
        int r = gp_h2x_sendfile(x, a->file_fd, 0, 200000);
        gp_h2x_end_response(x);
        return r == GP_AGAIN ? GP_APP_PENDING : GP_APP_DONE;
    }
    case XA_ERROR: gp_h2x_send_error(x, 503, 1); return GP_APP_DONE;
    case XA_TRAILERS:
        gp_h2x_head_begin_status(x, 200);
        gp_h2x_head_end(x);
        gp_h2x_write(x, "ab", 2);
        gp_h2x_end_response_trailers(x, "x-done: yes\r\n", 13);
        return GP_APP_DONE;
    }
    return GP_APP_DONE;
}

static gp_app_status x_resume(void *ap, gp_conn *c)
{
    xapp *a = ap;
    a->resumes++;
    if (a->mode == XA_FILE) return GP_APP_DONE; /* the end was held behind the file */
    return x_more(a, (gp_h2x *)c);
}

static void x_abort(void *ap, gp_conn *c)
{
    ((xapp *)ap)->aborts++;
}

static void x_readable(void *ap, gp_conn *c)
{
    xapp *a = ap;
    gp_h2x *x = (gp_h2x *)c;
    a->readables++;
    char buf[4096];
    ssize_t r;
    while ((r = gp_h2x_body_read_nb(x, buf, sizeof buf)) > 0) a->got += (size_t)r;
    if (r == 0) {
        gp_h2x_head_begin_status(x, 201);
        gp_h2x_head_end(x);
        gp_h2x_end_response(x);
        gp_h2x_app_done(x);
    }
}

static const gp_app_ops XOPS = {.start = x_start,
                                .resume = x_resume,
                                .abort = x_abort,
                                .readable = x_readable,
                                .runs_as_tasks = true};

static gp_h2 *x_session(xapp *a, client *c, int mode, bool hold)
{
    memset(a, 0, sizeof *a);
    a->mode = mode;
    a->c = c;
    a->env = (gp_h2x_env){&XOPS, a, a, x_conn_of, x_pump, x_wait, x_date, x_done, NULL, 1 << 16,
                          hold, 1000};
    a->h = gp_h2_new(&gp_h2x_session_ops, &a->env, &LIM, "test");
    assert_non_null(a->h);
    return a->h;
}

static void test_x_hello(void **state)
{
    client c;
    client_init(&c, 65535);
    xapp a;
    gp_h2 *h = x_session(&a, &c, XA_HELLO, true);
    int32_t id = get(&c, "/", NULL, NULL);
    pump(&c, h);
    assert_int_equal(c.r[id].status, 200);
    assert_memory_equal(c.r[id].body, "hello", 5);
    assert_string_equal(c.r[id].ctype, "text/plain");
    assert_int_equal(a.dones, 1);
    assert_int_equal(a.last_status, 200);
    assert_int_equal(c.r[id].rst, 0);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

/* A sync app gets its body whole (memory, then a file) before it starts. */
static void test_x_body_held_before_start(void **state)
{
    client c;
    client_init(&c, 65535);
    xapp a;
    gp_h2 *h = x_session(&a, &c, XA_READ_ALL, true);
    upload u = {300000, 0};
    int32_t id = post(&c, &u);
    pump(&c, h);
    assert_int_equal(a.starts, 1);
    assert_true(a.body_done_at_start); /* all of it held: reads never wait */
    assert_int_equal(a.got, 300000);
    assert_int_equal(c.r[id].status, 200);
    assert_memory_equal(c.r[id].body, "300000", 6);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

/* An async app streams its body: readable as DATA arrives. */
static void test_x_async_body(void **state)
{
    client c;
    client_init(&c, 65535);
    xapp a;
    gp_h2 *h = x_session(&a, &c, XA_ASYNC_ECHO, false);
    upload u = {200000, 0};
    int32_t id = post(&c, &u);
    pump(&c, h);
    assert_int_equal(a.got, 200000);
    assert_true(a.readables > 1);
    assert_int_equal(c.r[id].status, 201);
    assert_int_equal(a.dones, 1);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

/* A response bigger than the stream's buffer: PENDING, then resume. */
static void test_x_pending_resume(void **state)
{
    client c;
    client_init(&c, 65535);
    xapp a;
    gp_h2 *h = x_session(&a, &c, XA_BIG, true);
    int32_t id = get(&c, "/", NULL, NULL);
    pump(&c, h);
    assert_true(a.resumes > 0);
    assert_true(c.r[id].closed);
    assert_int_equal(c.r[id].rst, 0);
    assert_int_equal(a.dones, 1);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

static void test_x_sendfile(void **state)
{
    client c;
    client_init(&c, 65535);
    xapp a;
    gp_h2 *h = x_session(&a, &c, XA_FILE, true);
    char path[] = "/tmp/gp_h2x_XXXXXX";
    a.file_fd = mkstemp(path);
    unlink(path);
    static char data[200000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (char)('a' + i % 23);
    assert_int_equal(write(a.file_fd, data, sizeof data), (ssize_t)sizeof data);
    int32_t id = get(&c, "/f", NULL, NULL);
    pump(&c, h);
    assert_true(c.r[id].closed);
    assert_int_equal(c.r[id].rst, 0);
    assert_memory_equal(c.r[id].body, data, sizeof c.r[id].body);
    assert_int_equal(a.dones, 1);
    close(a.file_fd);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

static void test_x_error_and_trailers(void **state)
{
    client c;
    client_init(&c, 65535);
    xapp a;
    gp_h2 *h = x_session(&a, &c, XA_ERROR, true);
    int32_t id = get(&c, "/", NULL, NULL);
    pump(&c, h);
    assert_int_equal(c.r[id].status, 503);
    assert_memory_equal(c.r[id].body, "Service Unavailable\n", 20);
    a.mode = XA_TRAILERS;
    id = get(&c, "/", NULL, NULL);
    pump(&c, h);
    assert_int_equal(c.r[id].status, 200);
    assert_string_equal(c.r[id].trailer, "x-done=yes;");
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

/* The peer resets a stream an async app still runs: abort, then done. */
static void test_x_abort_on_reset(void **state)
{
    client c;
    client_init(&c, 65535);
    xapp a;
    gp_h2 *h = x_session(&a, &c, XA_ASYNC_ECHO, false);
    upload u = {100000, 0};
    u.len = 100000;
    int32_t id = post(&c, &u);
    const uint8_t *d;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(c.ng, &d)) > 0 && a.starts == 0)
        gp_h2_feed(h, (const char *)d, (size_t)n);
    assert_int_equal(a.starts, 1);
    nghttp2_submit_rst_stream(c.ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    pump(&c, h);
    assert_int_equal(a.aborts, 1);
    assert_int_equal(a.dones, 1);
    gp_h2_free(h);
    nghttp2_session_del(c.ng);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_echo_body_larger_than_window),
        cmocka_unit_test(test_slow_stream_does_not_block_others),
        cmocka_unit_test(test_response_backpressure),
        cmocka_unit_test(test_trailers),
        cmocka_unit_test(test_head_request_sends_no_body),
        cmocka_unit_test(test_header_list_too_large_431),
        cmocka_unit_test(test_too_many_fields_431),
        cmocka_unit_test(test_max_concurrent_streams),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_rapid_reset_goaway),
        cmocka_unit_test(test_continuation_flood),
        cmocka_unit_test(test_ping_flood),
        cmocka_unit_test(test_settings_flood),
        cmocka_unit_test(test_zero_window_forever),
        cmocka_unit_test(test_graceful_shutdown),
        cmocka_unit_test(test_release_and_peer_reset),
        cmocka_unit_test(test_free_with_streams_held),
        cmocka_unit_test(test_upgrade_h2c),
        cmocka_unit_test(test_preface),
        cmocka_unit_test(test_bad_preface),
        cmocka_unit_test(test_x_hello),
        cmocka_unit_test(test_x_body_held_before_start),
        cmocka_unit_test(test_x_async_body),
        cmocka_unit_test(test_x_pending_resume),
        cmocka_unit_test(test_x_sendfile),
        cmocka_unit_test(test_x_error_and_trailers),
        cmocka_unit_test(test_x_abort_on_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
