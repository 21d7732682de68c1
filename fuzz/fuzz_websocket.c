/* libFuzzer driver for core/websocket. The input's first byte picks the size limit
 * and how the rest is split; the rest is a client byte stream. The frame decoder
 * must give the same events (data pieces merged per message) fed whole, in
 * data-derived pieces and byte by byte; every call runs on an exact-size copy so
 * ASan sees any overread, and every returned pointer lies inside the buffer that
 * was passed. Delivered text is valid UTF-8, close codes and reasons are valid,
 * messages respect the limit. The encoder and the handshake helpers get the same
 * bytes too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/websocket.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    int type;
    uint16_t code;
    bool fin;
    size_t off, len; /* bytes in the log's data buffer */
} rec;

typedef struct {
    rec *r;
    size_t n, cap;
    uint8_t *bytes;
    size_t nbytes, bcap;
    int last;
    size_t left;
} evlog;

static void add_bytes(evlog *l, const uint8_t *p, size_t n)
{
    if (l->nbytes + n > l->bcap) {
        l->bcap = (l->nbytes + n) * 2 + 64;
        l->bytes = realloc(l->bytes, l->bcap);
    }
    if (n) memcpy(l->bytes + l->nbytes, p, n);
    l->nbytes += n;
}

static void record(evlog *l, const gp_ws_event *ev)
{
    bool is_data = ev->type == GP_WS_EV_TEXT || ev->type == GP_WS_EV_BINARY;
    rec *prev = l->n ? &l->r[l->n - 1] : NULL;
    if (is_data && prev && prev->type == ev->type && !prev->fin &&
        prev->off + prev->len == l->nbytes) {
        add_bytes(l, ev->data, ev->len);
        prev->len += ev->len;
        prev->fin = ev->fin;
        return;
    }
    if (l->n == l->cap) {
        l->cap = l->cap * 2 + 16;
        l->r = realloc(l->r, l->cap * sizeof *l->r);
    }
    rec *r = &l->r[l->n++];
    r->type = ev->type;
    r->code = ev->code;
    r->fin = ev->fin;
    r->off = l->nbytes;
    r->len = ev->type == GP_WS_EV_ERROR ? 0 : ev->len;
    if (r->len) add_bytes(l, ev->data, ev->len);
}

static uint32_t rng(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

/* mode 0: whole; 1: byte by byte; 2: pseudo-random pieces of 1..maxstep bytes. */
static void run(evlog *l, const uint8_t *in, size_t n, uint64_t max, int mode, uint32_t seed,
                size_t maxstep)
{
    gp_ws_parser p;
    memset(&p, 0, sizeof p);
    p.max_message = max;
    memset(l, 0, sizeof *l);
    uint8_t *pend = malloc(n ? n : 1);
    size_t have = 0, fed = 0;
    bool closed = false;
    for (;;) {
        size_t take = n - fed;
        if (mode == 1 && take > 1) take = 1;
        if (mode == 2) {
            size_t s = 1 + rng(&seed) % maxstep;
            if (take > s) take = s;
        }
        memcpy(pend + have, in + fed, take);
        have += take;
        fed += take;
        for (int guard = 0;; guard++) {
            CHECK(guard < 1000000);
            uint8_t *b = malloc(have ? have : 1);
            memcpy(b, pend, have);
            gp_ws_event ev;
            size_t used = (size_t)-1;
            int r = gp_ws_parse(&p, b, have, &used, &ev);
            CHECK(r == ev.type);
            CHECK(used <= have);
            switch (r) {
            case GP_WS_EV_NEED_MORE: break;
            case GP_WS_EV_ERROR:
                CHECK(!closed);
                CHECK(ev.code == 1002 || ev.code == 1007 || ev.code == 1009);
                break;
            case GP_WS_EV_TEXT:
            case GP_WS_EV_BINARY:
            case GP_WS_EV_PING:
            case GP_WS_EV_PONG:
            case GP_WS_EV_CLOSE:
                CHECK(!closed);
                CHECK(ev.data >= b && ev.len <= have && (size_t)(ev.data - b) <= have - ev.len);
                /* an event's bytes are consumed with it */
                CHECK((size_t)(ev.data - b) + ev.len <= used);
                if (r == GP_WS_EV_PING || r == GP_WS_EV_PONG) CHECK(ev.len <= 125 && !ev.fin);
                if (r == GP_WS_EV_CLOSE) {
                    CHECK(ev.len <= 123);
                    CHECK(ev.code == 1005 ? ev.len == 0 : gp_ws_close_code_valid(ev.code));
                    CHECK(gp_utf8_valid(ev.data, ev.len));
                    closed = true;
                }
                if (r == GP_WS_EV_TEXT || r == GP_WS_EV_BINARY) CHECK(ev.len > 0 || ev.fin);
                break;
            default: CHECK(0);
            }
            if (r != GP_WS_EV_NEED_MORE) record(l, &ev);
            memcpy(pend, b, have);
            memmove(pend, pend + used, have - used);
            have -= used;
            free(b);
            l->last = r;
            if (r == GP_WS_EV_ERROR) {
                /* sticky, consumes nothing */
                gp_ws_event e2;
                size_t u2 = 1;
                CHECK(gp_ws_parse(&p, pend, have, &u2, &e2) == GP_WS_EV_ERROR);
                CHECK(u2 == 0 && e2.code == ev.code);
                goto out;
            }
            if (r == GP_WS_EV_NEED_MORE) {
                /* what is left is less than a frame header or a whole control frame */
                CHECK(closed ? have == 0 : have < GP_WS_MIN_BUFFER);
                break;
            }
        }
        if (fed == n) break;
    }
out:
    l->left = have;
    free(pend);
}

static void same(const evlog *a, const evlog *b)
{
    CHECK(a->n == b->n);
    CHECK(a->last == b->last);
    if (a->last == GP_WS_EV_NEED_MORE) CHECK(a->left == b->left);
    for (size_t i = 0; i < a->n; i++) {
        const rec *x = &a->r[i], *y = &b->r[i];
        CHECK(x->type == y->type && x->code == y->code && x->fin == y->fin && x->len == y->len);
        if (x->len) CHECK(memcmp(a->bytes + x->off, b->bytes + y->off, x->len) == 0);
    }
}

static void check_semantics(const evlog *l, uint64_t max)
{
    for (size_t i = 0; i < l->n; i++) {
        const rec *r = &l->r[i];
        if (r->type == GP_WS_EV_TEXT || r->type == GP_WS_EV_BINARY) {
            if (max) CHECK(r->len <= max);
            /* Only a piece that starts a message can be checked on its own: a
             * later piece may begin inside a code point split across frames. */
            bool starts = true;
            for (size_t j = i; j-- > 0;) {
                const rec *q = &l->r[j];
                if (q->type == GP_WS_EV_TEXT || q->type == GP_WS_EV_BINARY) {
                    starts = q->fin;
                    break;
                }
            }
            if (r->type == GP_WS_EV_TEXT && r->len && starts) {
                gp_utf8_state u = {0}; /* a valid prefix at least ... */
                CHECK(gp_utf8_feed(&u, l->bytes + r->off, r->len) == r->len);
                if (r->fin)
                    CHECK(gp_utf8_valid(l->bytes + r->off, r->len)); /* ... whole if it ends */
            }
        }
        if (r->type == GP_WS_EV_ERROR) CHECK(i == l->n - 1);
    }
}

static void free_log(evlog *l)
{
    free(l->r);
    free(l->bytes);
}

/* The encoder's output, masked with a zero key, decodes to the same payload. */
static void roundtrip(const uint8_t *p, size_t n, uint8_t sel)
{
    int ops[4] = {GP_WS_OP_TEXT, GP_WS_OP_BINARY, GP_WS_OP_PING, GP_WS_OP_PONG};
    int op = ops[sel & 3];
    if (op == GP_WS_OP_TEXT && !gp_utf8_valid(p, n)) op = GP_WS_OP_BINARY;
    if ((op & 8) && n > 125) n = 125;
    uint8_t *f = malloc(n + 14);
    size_t hl = gp_ws_frame_header(f, op, true, n);
    CHECK(hl == (n < 126 ? 2u : n <= 0xFFFF ? 4u : 10u));
    if (op & 8) {
        uint8_t c[127];
        CHECK(gp_ws_control_frame(c, op, p, n) == 2 + n);
        CHECK(memcmp(c, f, 2) == 0 && (n == 0 || memcmp(c + 2, p, n) == 0));
    }
    f[1] |= 0x80;
    memset(f + hl, 0, 4);
    memcpy(f + hl + 4, p, n);
    gp_ws_parser ps = {0};
    gp_ws_event ev;
    size_t used;
    int r = gp_ws_parse(&ps, f, hl + 4 + n, &used, &ev);
    int want = op == GP_WS_OP_TEXT     ? GP_WS_EV_TEXT
               : op == GP_WS_OP_BINARY ? GP_WS_EV_BINARY
               : op == GP_WS_OP_PING   ? GP_WS_EV_PING
                                       : GP_WS_EV_PONG;
    CHECK(r == want && used == hl + 4 + n && ev.len == n);
    CHECK(n == 0 || memcmp(ev.data, p, n) == 0);
    free(f);

    /* close frames: at most 127 bytes, a cut reason stays valid UTF-8 */
    uint8_t c[127];
    uint16_t code = (uint16_t)(1000 + (sel >> 2));
    size_t cl = gp_ws_close_frame(c, code, (const char *)p, n);
    if (code == GP_WS_CLOSE_NO_STATUS) {
        CHECK(cl == 2 && c[0] == 0x88 && c[1] == 0);
        return;
    }
    CHECK(cl >= 4 && cl <= 127 && c[1] == cl - 2 && cl - 4 <= n);
    CHECK(cl - 4 == 0 || memcmp(c + 4, p, cl - 4) == 0);
    if (gp_utf8_valid(p, n)) CHECK(gp_utf8_valid(c + 4, cl - 4));
    if (n <= 123) CHECK(cl == 4 + n);
}

static void handshake(const uint8_t *d, size_t n)
{
    const char *s = (const char *)d;
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    char acc[29];
    if (gp_ws_accept_key(copy, n, acc) == 0) {
        CHECK(n == 24 && strlen(acc) == 28 && acc[27] == '=');
    }
    gp_ws_token t[8];
    int k = gp_ws_split_protocols(copy, n, t, 8);
    CHECK(k >= -1);
    for (int i = 0; i < k && i < 8; i++) {
        CHECK(t[i].ptr >= copy && t[i].len > 0 && t[i].ptr + t[i].len <= copy + n);
    }
    (void)gp_ws_has_token(copy, n, "websocket");
    gp_ws_handshake h = {"GET", 3, 1, "websocket", 9, copy, n, "13", 2, copy, n, copy, n};
    int st = gp_ws_check_handshake(&h, acc);
    CHECK(st == 0 || st == 400);
    if (st == 0) CHECK(gp_ws_has_token(copy, n, "upgrade") && n == 24);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t cfg = data[0];
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    uint64_t max = (cfg & 0x80) ? 0 : (uint64_t)(cfg & 0x3F) * 7;

    evlog a, b, c;
    run(&a, in, n, max, 0, 0, 0);
    check_semantics(&a, max);
    run(&b, in, n, max, 2, cfg * 2654435761u + (uint32_t)n, 1 + (cfg & 0x1F));
    same(&a, &b);
    free_log(&b);
    if (n <= 4096) {
        run(&c, in, n, max, 1, 0, 0);
        same(&a, &c);
        free_log(&c);
    }
    free_log(&a);

    roundtrip(in, n, cfg);
    handshake(in, n);
    return 0;
}
