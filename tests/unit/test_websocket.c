/* Unit tests for core/websocket: SHA-1 and base64 against known vectors, the
 * accept key of RFC 6455, handshake validation, the frame decoder on every length
 * encoding fed whole, byte by byte and in odd pieces (identical results), every
 * protocol error with its close code, UTF-8 across frame boundaries and the Markus
 * Kuhn boundary cases, close frames, the size limit, and the encoder.
 * The .c is included to reach the static SHA-1 and base64 helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/websocket.c"

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* ---- helpers ------------------------------------------------------------------ */

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static void sha1_hex(const void *data, size_t n, char out[41])
{
    sha1_ctx c;
    uint8_t dig[20];
    sha1_init(&c);
    sha1_update(&c, data, n);
    sha1_final(&c, dig);
    hex(dig, 20, out);
}

/* Length encodings for mkframe. */
enum { LEN_MIN = 0, LEN_16 = 16, LEN_64 = 64 };

/* Writes a client frame: b0 = FIN|RSV|opcode as sent; masked with MASK unless
 * unmasked; the length in its minimal form or forced to 16/64 bits. Returns size. */
static size_t mkframe_x(uint8_t *out, uint8_t b0, bool masked, const void *payload, uint64_t n,
                        int lenform)
{
    size_t o = 0;
    out[o++] = b0;
    uint8_t m = masked ? 0x80 : 0;
    if (lenform == LEN_MIN && n < 126) {
        out[o++] = m | (uint8_t)n;
    } else if (lenform != LEN_64 && n <= 0xFFFF) {
        out[o++] = m | 126;
        out[o++] = (uint8_t)(n >> 8);
        out[o++] = (uint8_t)n;
    } else {
        out[o++] = m | 127;
        for (int i = 0; i < 8; i++) out[o++] = (uint8_t)(n >> (56 - 8 * i));
    }
    if (masked) {
        memcpy(out + o, MASK, 4);
        o += 4;
    }
    const uint8_t *p = payload;
    for (uint64_t i = 0; i < n; i++) out[o + i] = masked ? p[i] ^ MASK[i & 3] : p[i];
    return o + (size_t)n;
}

static size_t mkframe(uint8_t *out, int op, bool fin, const void *payload, size_t n)
{
    return mkframe_x(out, (uint8_t)((fin ? 0x80 : 0) | op), true, payload, n, LEN_MIN);
}

/* One normalised event: data pieces of a message are merged into one record. */
typedef struct {
    int type;
    uint16_t code;
    bool fin;
    size_t len;
    uint8_t *data;
    size_t cap;
    size_t pieces;
} rec;

typedef struct {
    rec r[64];
    size_t n;
    size_t left; /* unconsumed bytes at the end */
    int last;    /* NEED_MORE or ERROR */
    size_t calls;
} log_t;

static void log_free(log_t *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->r[i].data);
    l->n = 0;
}

static void log_event(log_t *l, const gp_ws_event *ev, const uint8_t *buf, size_t blen)
{
    /* every pointer lies inside the buffer that was passed */
    if (ev->type != GP_WS_EV_NEED_MORE && ev->type != GP_WS_EV_ERROR) {
        assert_true(ev->data >= buf && ev->data + ev->len <= buf + blen);
    }
    if (ev->type == GP_WS_EV_NEED_MORE) return;
    rec *prev = l->n ? &l->r[l->n - 1] : NULL;
    bool data = ev->type == GP_WS_EV_TEXT || ev->type == GP_WS_EV_BINARY;
    if (data && prev && prev->type == ev->type && !prev->fin) {
        /* continue the open message: is it still this one? (a control record in
         * between starts a new record, which is fine for comparisons) */
        if (prev->len + ev->len + 1 > prev->cap) {
            prev->cap = (prev->len + ev->len + 1) * 2;
            prev->data = realloc(prev->data, prev->cap);
        }
        memcpy(prev->data + prev->len, ev->data, ev->len);
        prev->len += ev->len;
        prev->fin = ev->fin;
        prev->pieces++;
        return;
    }
    assert_true(l->n < 64);
    rec *r = &l->r[l->n++];
    memset(r, 0, sizeof *r);
    r->type = ev->type;
    r->code = ev->code;
    r->fin = ev->fin;
    r->len = ev->len;
    r->cap = ev->len + 1;
    r->data = malloc(r->cap);
    if (ev->len) memcpy(r->data, ev->data, ev->len);
    r->pieces = 1;
}

/* Feeds in[0..n) to a fresh parser in pieces of `step` bytes (0: whole; with
 * step_seed, pseudo-random sizes up to step), keeping unconsumed bytes, each call
 * on an exact-size copy so ASan sees any overread. */
static void run(log_t *l, const uint8_t *in, size_t n, size_t step, uint64_t max,
                unsigned step_seed)
{
    gp_ws_parser p;
    memset(&p, 0, sizeof p);
    p.max_message = max;
    memset(l, 0, sizeof *l);
    uint8_t *pend = malloc(n + 1);
    size_t have = 0, fed = 0;
    unsigned seed = step_seed;
    for (;;) {
        size_t take = n - fed;
        if (step) {
            size_t s = step;
            if (step_seed) {
                seed = seed * 1103515245u + 12345u;
                s = 1 + (seed >> 16) % step;
            }
            if (take > s) take = s;
        }
        memcpy(pend + have, in + fed, take);
        have += take;
        fed += take;
        for (;;) {
            uint8_t *b = malloc(have ? have : 1);
            memcpy(b, pend, have);
            gp_ws_event ev;
            size_t used = 12345;
            int r = gp_ws_parse(&p, b, have, &used, &ev);
            l->calls++;
            assert_int_equal(r, ev.type);
            assert_true(used <= have);
            log_event(l, &ev, b, have);
            /* consumed bytes are gone; the rest are kept as the parser left them */
            memcpy(pend, b, have);
            memmove(pend, pend + used, have - used);
            have -= used;
            free(b);
            l->last = r;
            if (r == GP_WS_EV_ERROR) {
                l->r[l->n - 1].code = ev.code;
                /* sticky */
                gp_ws_event ev2;
                size_t u2 = 99;
                assert_int_equal(gp_ws_parse(&p, pend, have, &u2, &ev2), GP_WS_EV_ERROR);
                assert_int_equal(u2, 0);
                assert_int_equal(ev2.code, ev.code);
                goto out;
            }
            if (r == GP_WS_EV_NEED_MORE) break;
        }
        if (fed == n) break;
    }
out:
    l->left = have;
    free(pend);
}

static void same_log(const log_t *a, const log_t *b)
{
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->last, b->last);
    if (a->last == GP_WS_EV_NEED_MORE) /* after an error, it depends on what was fed */
        assert_int_equal(a->left, b->left);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->r[i].type, b->r[i].type);
        assert_int_equal(a->r[i].code, b->r[i].code);
        assert_int_equal(a->r[i].fin, b->r[i].fin);
        assert_int_equal(a->r[i].len, b->r[i].len);
        assert_memory_equal(a->r[i].data, b->r[i].data, a->r[i].len);
    }
}

/* Runs whole, byte by byte and in random pieces; checks they agree; leaves the
 * whole-input log in *l. */
static void run_all(log_t *l, const uint8_t *in, size_t n, uint64_t max)
{
    log_t b, c, d;
    run(l, in, n, 0, max, 0);
    run(&b, in, n, 1, max, 0);
    run(&c, in, n, 7, max, 0);
    run(&d, in, n, 300, max, 12345);
    same_log(l, &b);
    same_log(l, &c);
    same_log(l, &d);
    log_free(&b);
    log_free(&c);
    log_free(&d);
}

/* The close code of a stream that must fail. */
static int err_of(const uint8_t *in, size_t n, uint64_t max)
{
    log_t l;
    run_all(&l, in, n, max);
    int code = l.last == GP_WS_EV_ERROR ? l.r[l.n - 1].code : 0;
    log_free(&l);
    return code;
}

/* ---- SHA-1, base64, accept key -------------------------------------------------- */

static void test_sha1_vectors(void **st)
{
    char h[41];
    sha1_hex("abc", 3, h);
    assert_string_equal(h, "a9993e364706816aba3e25717850c26c9cd0d89d");
    sha1_hex("", 0, h);
    assert_string_equal(h, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    const char *s448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha1_hex(s448, strlen(s448), h);
    assert_string_equal(h, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    char *m = malloc(1000000);
    memset(m, 'a', 1000000);
    sha1_hex(m, 1000000, h);
    assert_string_equal(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    /* fed in odd pieces: same digest */
    sha1_ctx c;
    uint8_t dig[20];
    sha1_init(&c);
    for (size_t i = 0, k = 1; i < 1000000; k = k * 7 % 131 + 1) {
        size_t t = 1000000 - i < k ? 1000000 - i : k;
        sha1_update(&c, m + i, t);
        i += t;
    }
    sha1_final(&c, dig);
    hex(dig, 20, h);
    assert_string_equal(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(m);
    /* lengths around the padding boundary (55, 56, 63, 64 bytes) are self-consistent */
    for (size_t n = 50; n < 130; n++) {
        char buf[130];
        memset(buf, 'x', n);
        char one[41], two[41];
        sha1_hex(buf, n, one);
        sha1_init(&c);
        sha1_update(&c, buf, n / 2);
        sha1_update(&c, buf + n / 2, n - n / 2);
        sha1_final(&c, dig);
        hex(dig, 20, two);
        assert_string_equal(one, two);
    }
    sha1_hex("The quick brown fox jumps over the lazy dog", 43, h);
    assert_string_equal(h, "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12");
}

static void test_base64(void **st)
{
    char out[16];
    base64_encode((const uint8_t *)"", 0, out);
    assert_string_equal(out, "");
    base64_encode((const uint8_t *)"f", 1, out);
    assert_string_equal(out, "Zg==");
    base64_encode((const uint8_t *)"fo", 2, out);
    assert_string_equal(out, "Zm8=");
    base64_encode((const uint8_t *)"foo", 3, out);
    assert_string_equal(out, "Zm9v");
    base64_encode((const uint8_t *)"foobar", 6, out);
    assert_string_equal(out, "Zm9vYmFy");
    const uint8_t hi[3] = {0xfb, 0xff, 0xfe};
    base64_encode(hi, 3, out);
    assert_string_equal(out, "+//+");
}

static void test_accept_key(void **st)
{
    char out[29];
    const char *k = "dGhlIHNhbXBsZSBub25jZQ==";
    assert_int_equal(gp_ws_accept_key(k, 24, out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* another known pair (RFC 6455 1.3 style, computed independently) */
    assert_int_equal(gp_ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out), 0);
    assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");

    memcpy(out, "untouched", 10);
    assert_int_equal(gp_ws_accept_key(k, 23, out), -1);
    assert_string_equal(out, "untouched");
    assert_int_equal(gp_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==A", 25, out), -1);
    assert_int_equal(gp_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=x", 24, out), -1);
    assert_int_equal(gp_ws_accept_key("dGhlIHNhbXBsZSBub25jZ===", 24, out), -1);
    assert_int_equal(gp_ws_accept_key("dGhlIHNhbXBsZSBub25j*Q==", 24, out), -1);
    assert_int_equal(gp_ws_accept_key("dGhlIHNhbXBsZSBub25 ZQ==", 24, out), -1);
    assert_int_equal(gp_ws_accept_key("dGhlIHNhbXBsZSBub25jZQA=", 24, out), -1); /* 17 bytes */
    assert_int_equal(gp_ws_accept_key("dGhlIHNhbXBsZSBub25jZQAA", 24, out), -1); /* 18 bytes */
    assert_int_equal(gp_ws_accept_key("", 0, out), -1);
    assert_int_equal(gp_ws_accept_key(NULL, 24, out), -1);
    /* an embedded NUL is not base64 */
    assert_int_equal(gp_ws_accept_key("dGhlIHNhbXBsZSBub25\0ZQ==", 24, out), -1);
    /* url-safe alphabet is not the one of RFC 4648 section 4 */
    assert_int_equal(gp_ws_accept_key("dGhlIHNhbXBsZSBub25-ZQ==", 24, out), -1);
    assert_int_equal(gp_ws_accept_key("AAAAAAAAAAAAAAAAAAAAA+/=", 24, out), -1);
    assert_int_equal(gp_ws_accept_key("AAAAAAAAAAAAAAAAAAAA+/==", 24, out), 0);
}

/* ---- handshake -------------------------------------------------------------------- */

#define S(x) x, sizeof(x) - 1

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

static gp_ws_handshake good_hs(void)
{
    gp_ws_handshake h = {
        S("GET"), 1, S("websocket"), S("Upgrade"), S("13"), S("dGhlIHNhbXBsZSBub25jZQ=="), NULL, 0,
    };
    return h;
}

static void test_handshake_valid(void **st)
{
    char acc[29];
    gp_ws_handshake h = good_hs();
    assert_int_equal(gp_ws_check_handshake(&h, acc), 0);
    assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    const char *ups[] = {"WebSocket", "WEBSOCKET", "h2c, websocket", "websocket ,foo",
                         "  websocket\t"};
    for (size_t i = 0; i < sizeof ups / sizeof *ups; i++) {
        h = good_hs();
        h.upgrade = ups[i];
        h.upgrade_len = strlen(ups[i]);
        assert_int_equal(gp_ws_check_handshake(&h, acc), 0);
    }
    const char *conns[] = {"upgrade", "UPGRADE", "keep-alive, Upgrade", "Upgrade,keep-alive",
                           "close ,  upgrade  ,x"};
    for (size_t i = 0; i < sizeof conns / sizeof *conns; i++) {
        h = good_hs();
        h.connection = conns[i];
        h.connection_len = strlen(conns[i]);
        assert_int_equal(gp_ws_check_handshake(&h, acc), 0);
    }
    h = good_hs();
    h.protocol = "chat, superchat";
    h.protocol_len = strlen(h.protocol);
    assert_int_equal(gp_ws_check_handshake(&h, acc), 0);
}

static void test_handshake_rejects(void **st)
{
    char acc[29];
    gp_ws_handshake h;
#define EXPECT(status, field, value)                                                               \
    do {                                                                                           \
        h = good_hs();                                                                             \
        h.field = value;                                                                           \
        h.field##_len = slen(value);                                                               \
        assert_int_equal(gp_ws_check_handshake(&h, acc), status);                                  \
    } while (0)
    EXPECT(400, method, "POST");
    EXPECT(400, method, "get");
    EXPECT(400, method, "HEAD");
    EXPECT(400, method, (const char *)NULL);
    EXPECT(400, upgrade, (const char *)NULL);
    EXPECT(400, upgrade, "");
    EXPECT(400, upgrade, "websocket2");
    EXPECT(400, upgrade, "web socket");
    EXPECT(400, upgrade, "h2c");
    EXPECT(400, upgrade, "websocket/13");
    EXPECT(400, connection, (const char *)NULL);
    EXPECT(400, connection, "keep-alive");
    EXPECT(400, connection, "upgrade-insecure-requests");
    EXPECT(400, connection, "up grade");
    EXPECT(400, version, (const char *)NULL);
    EXPECT(426, version, "8");
    EXPECT(426, version, "7");
    EXPECT(426, version, "130");
    EXPECT(426, version, "1");
    EXPECT(426, version, "");
    EXPECT(426, version, "13, 8");
    EXPECT(400, key, (const char *)NULL);
    EXPECT(400, key, "");
    EXPECT(400, key, "dGhlIHNhbXBsZSBub25jZQ=");
    EXPECT(400, key, "dGhlIHNhbXBsZSBub25jZQ===");
    EXPECT(400, key, "AQIDBAUGBwgJCgsMDQ4PEBES"); /* 18 bytes */
    EXPECT(400, key, "dGhlIHNhbXBsZSBub25jZQ!=");
    EXPECT(400, protocol, "chat, super chat");
    EXPECT(400, protocol, "chat/1;x");
    EXPECT(400, protocol, "\"chat\"");
#undef EXPECT
    h = good_hs();
    h.version_minor = 0;
    assert_int_equal(gp_ws_check_handshake(&h, acc), 400);
    /* version 8 wins over a bad key: the client learns to use 13 */
    h = good_hs();
    h.version = "8";
    h.version_len = 1;
    h.key = "short";
    h.key_len = 5;
    assert_int_equal(gp_ws_check_handshake(&h, acc), 426);
}

static void test_has_token(void **st)
{
    assert_true(gp_ws_has_token(S("a, b ,c"), "b"));
    assert_true(gp_ws_has_token(S("a, b ,c"), "c"));
    assert_true(gp_ws_has_token(S("a"), "a"));
    assert_true(gp_ws_has_token(S(",,A,,"), "a"));
    assert_false(gp_ws_has_token(S("ab"), "a"));
    assert_false(gp_ws_has_token(S("a b"), "a"));
    assert_false(gp_ws_has_token(S(""), "a"));
    assert_false(gp_ws_has_token(NULL, 0, "a"));
    assert_false(gp_ws_has_token(S("upgrad"), "upgrade"));
    /* only n bytes are looked at */
    assert_false(gp_ws_has_token("upgrade", 6, "upgrade"));
}

static void test_split_protocols(void **st)
{
    gp_ws_token t[4];
    int n = gp_ws_split_protocols(S(" chat, superchat ,, v2.bin.example.com\t"), t, 4);
    assert_int_equal(n, 3);
    assert_int_equal(t[0].len, 4);
    assert_memory_equal(t[0].ptr, "chat", 4);
    assert_int_equal(t[1].len, 9);
    assert_memory_equal(t[1].ptr, "superchat", 9);
    assert_int_equal(t[2].len, 18);
    assert_memory_equal(t[2].ptr, "v2.bin.example.com", 18);
    assert_int_equal(gp_ws_split_protocols(S(""), t, 4), 0);
    assert_int_equal(gp_ws_split_protocols(S(" , "), t, 4), 0);
    assert_int_equal(gp_ws_split_protocols(NULL, 0, t, 4), 0);
    /* more than the capacity: the count, only cap filled */
    n = gp_ws_split_protocols(S("a,b,c,d,e,f"), t, 2);
    assert_int_equal(n, 6);
    assert_memory_equal(t[1].ptr, "b", 1);
    assert_int_equal(gp_ws_split_protocols(S("a,b,c"), NULL, 0), 3);
    assert_int_equal(gp_ws_split_protocols(S("a b"), t, 4), -1);
    assert_int_equal(gp_ws_split_protocols(S("a,b=c"), t, 4), -1);
    assert_int_equal(gp_ws_split_protocols(S("a,\"b\""), t, 4), -1);
    assert_int_equal(gp_ws_split_protocols(S("a,(b)"), t, 4), -1);
    assert_int_equal(gp_ws_split_protocols("a,\x80", 3, t, 4), -1);
}

/* ---- frames: lengths, unmasking, splits ----------------------------------------------- */

static void check_one_message(const uint8_t *payload, size_t n, int op, int lenform)
{
    uint8_t *f = malloc(n + 14);
    size_t fl = mkframe_x(f, (uint8_t)(0x80 | op), true, payload, n, lenform);
    log_t l;
    run_all(&l, f, fl, 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.r[0].type, op == GP_WS_OP_TEXT ? GP_WS_EV_TEXT : GP_WS_EV_BINARY);
    assert_true(l.r[0].fin);
    assert_int_equal(l.r[0].len, n);
    if (n) assert_memory_equal(l.r[0].data, payload, n);
    assert_int_equal(l.last, GP_WS_EV_NEED_MORE);
    assert_int_equal(l.left, 0);
    log_free(&l);
    free(f);
}

static void test_length_encodings(void **st)
{
    size_t lens[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 125, 126, 127, 65535, 65536, 1u << 20};
    size_t maxn = 1u << 20;
    uint8_t *p = malloc(maxn);
    for (size_t i = 0; i < maxn; i++) p[i] = (uint8_t)(i * 31 + (i >> 8));
    for (size_t k = 0; k < sizeof lens / sizeof *lens; k++) {
        check_one_message(p, lens[k], GP_WS_OP_BINARY, LEN_MIN);
        if (lens[k] <= 1000) {
            /* non-minimal encodings are accepted */
            check_one_message(p, lens[k], GP_WS_OP_BINARY, LEN_16);
            check_one_message(p, lens[k], GP_WS_OP_BINARY, LEN_64);
        }
    }
    /* and text, ASCII */
    for (size_t i = 0; i < maxn; i++) p[i] = (uint8_t)('a' + i % 26);
    for (size_t k = 0; k < sizeof lens / sizeof *lens; k++)
        check_one_message(p, lens[k], GP_WS_OP_TEXT, LEN_MIN);
    free(p);
}

static void test_unmask_exact(void **st)
{
    /* RFC 6455 5.7: a single-frame masked text message "Hello" */
    uint8_t f[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    gp_ws_parser p = {0};
    gp_ws_event ev;
    size_t used;
    assert_int_equal(gp_ws_parse(&p, f, sizeof f, &used, &ev), GP_WS_EV_TEXT);
    assert_int_equal(used, sizeof f);
    assert_ptr_equal(ev.data, f + 6);
    assert_int_equal(ev.len, 5);
    assert_memory_equal(ev.data, "Hello", 5);
    assert_true(ev.fin);
    /* unmasked in place */
    assert_memory_equal(f + 6, "Hello", 5);
    assert_int_equal(gp_ws_parse(&p, f + used, 0, &used, &ev), GP_WS_EV_NEED_MORE);
    assert_int_equal(used, 0);

    /* ping "Hello", RFC 6455 5.7 */
    uint8_t g[] = {0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    assert_int_equal(gp_ws_parse(&p, g, sizeof g, &used, &ev), GP_WS_EV_PING);
    assert_int_equal(used, sizeof g);
    assert_memory_equal(ev.data, "Hello", 5);
}

static void test_streaming_pieces(void **st)
{
    /* a payload arriving in pieces: each piece unmasked, the mask offset carried */
    uint8_t payload[1000];
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)(i * 7);
    uint8_t f[1100];
    size_t fl = mkframe(f, GP_WS_OP_BINARY, true, payload, sizeof payload);
    size_t cuts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 100, 333, 999, 1003};
    gp_ws_parser p = {0};
    gp_ws_event ev;
    size_t used, pos = 0, got = 0;
    /* the 4-byte header and mask need all their bytes: nothing is consumed before */
    assert_int_equal(gp_ws_parse(&p, f, 3, &used, &ev), GP_WS_EV_NEED_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(gp_ws_parse(&p, f, 7, &used, &ev), GP_WS_EV_NEED_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(gp_ws_parse(&p, f, 8, &used, &ev), GP_WS_EV_NEED_MORE);
    assert_int_equal(used, 8);
    pos = 8;
    for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
        size_t end = cuts[k] + 8 + 1;
        if (end > fl) end = fl;
        if (end <= pos) continue;
        int r = gp_ws_parse(&p, f + pos, end - pos, &used, &ev);
        assert_int_equal(r, GP_WS_EV_BINARY);
        assert_int_equal(used, end - pos);
        assert_ptr_equal(ev.data, f + pos);
        assert_memory_equal(ev.data, payload + got, ev.len);
        assert_int_equal(ev.fin, end == fl);
        got += ev.len;
        pos = end;
    }
    assert_int_equal(got, sizeof payload);
    assert_int_equal(gp_ws_parse(&p, f + pos, 0, &used, &ev), GP_WS_EV_NEED_MORE);
}

static void test_control_needs_whole_frame(void **st)
{
    uint8_t f[200];
    uint8_t pl[125];
    memset(pl, 'p', sizeof pl);
    size_t fl = mkframe(f, GP_WS_OP_PING, true, pl, 125);
    assert_int_equal(fl, 131);
    for (size_t i = 0; i < fl; i++) {
        gp_ws_parser p = {0};
        gp_ws_event ev;
        size_t used = 7;
        assert_int_equal(gp_ws_parse(&p, f, i, &used, &ev), GP_WS_EV_NEED_MORE);
        assert_int_equal(used, 0);
    }
    /* untouched: still masked */
    assert_int_equal(f[6], 'p' ^ MASK[0]);
    gp_ws_parser p = {0};
    gp_ws_event ev;
    size_t used;
    assert_int_equal(gp_ws_parse(&p, f, fl, &used, &ev), GP_WS_EV_PING);
    assert_int_equal(used, fl);
    assert_int_equal(ev.len, 125);
    assert_memory_equal(ev.data, pl, 125);
    assert_int_equal(GP_WS_MIN_BUFFER, 131);
}

static void test_several_frames_one_buffer(void **st)
{
    uint8_t in[512];
    size_t o = 0;
    o += mkframe(in + o, GP_WS_OP_TEXT, true, "one", 3);
    o += mkframe(in + o, GP_WS_OP_BINARY, true, "\x00\x01", 2);
    o += mkframe(in + o, GP_WS_OP_PONG, true, "pp", 2);
    o += mkframe(in + o, GP_WS_OP_TEXT, true, "", 0);
    o += mkframe(in + o, GP_WS_OP_PING, true, "", 0);
    o += mkframe(in + o, GP_WS_OP_TEXT, true, "two", 3);
    /* a partial frame at the end */
    size_t part = mkframe(in + o, GP_WS_OP_TEXT, true, "three", 5);
    o += 3;
    (void)part;
    log_t l;
    run_all(&l, in, o, 0);
    assert_int_equal(l.n, 6);
    assert_int_equal(l.r[0].type, GP_WS_EV_TEXT);
    assert_memory_equal(l.r[0].data, "one", 3);
    assert_int_equal(l.r[1].type, GP_WS_EV_BINARY);
    assert_int_equal(l.r[1].len, 2);
    assert_int_equal(l.r[2].type, GP_WS_EV_PONG);
    assert_memory_equal(l.r[2].data, "pp", 2);
    assert_int_equal(l.r[3].type, GP_WS_EV_TEXT);
    assert_int_equal(l.r[3].len, 0);
    assert_true(l.r[3].fin);
    assert_int_equal(l.r[4].type, GP_WS_EV_PING);
    assert_int_equal(l.r[4].len, 0);
    assert_int_equal(l.r[5].type, GP_WS_EV_TEXT);
    assert_memory_equal(l.r[5].data, "two", 3);
    assert_int_equal(l.last, GP_WS_EV_NEED_MORE);
    assert_int_equal(l.left, 3); /* the partial header, kept for later */
    log_free(&l);
}

/* ---- fragmentation ---------------------------------------------------------------------- */

static void test_fragmented_with_ping(void **st)
{
    uint8_t in[256];
    size_t o = 0;
    o += mkframe(in + o, GP_WS_OP_TEXT, false, "Hel", 3);
    o += mkframe(in + o, GP_WS_OP_CONT, false, "lo, ", 4);
    o += mkframe(in + o, GP_WS_OP_PING, true, "?", 1);
    o += mkframe(in + o, GP_WS_OP_CONT, true, "world", 5);
    o += mkframe(in + o, GP_WS_OP_BINARY, true, "b", 1);
    uint8_t copy[256];
    memcpy(copy, in, o);

    /* exact event sequence when fed whole */
    gp_ws_parser p = {0};
    gp_ws_event ev;
    size_t used, pos = 0;
    int want[] = {GP_WS_EV_TEXT, GP_WS_EV_TEXT,   GP_WS_EV_PING,
                  GP_WS_EV_TEXT, GP_WS_EV_BINARY, GP_WS_EV_NEED_MORE};
    const char *wd[] = {"Hel", "lo, ", "?", "world", "b", ""};
    bool wf[] = {false, false, false, true, true, false};
    for (size_t i = 0; i < 6; i++) {
        int r = gp_ws_parse(&p, in + pos, o - pos, &used, &ev);
        assert_int_equal(r, want[i]);
        assert_int_equal(ev.len, strlen(wd[i]));
        assert_memory_equal(ev.data ? (const char *)ev.data : "", wd[i], ev.len);
        assert_int_equal(ev.fin, wf[i]);
        pos += used;
    }
    assert_int_equal(pos, o);

    /* merged, any split */
    log_t l;
    run_all(&l, copy, o, 0);
    assert_int_equal(l.n, 4);
    assert_int_equal(l.r[0].type, GP_WS_EV_TEXT);
    assert_false(l.r[0].fin);
    assert_int_equal(l.r[0].len, 7);
    assert_memory_equal(l.r[0].data, "Hello, ", 7);
    assert_int_equal(l.r[1].type, GP_WS_EV_PING);
    assert_int_equal(l.r[2].type, GP_WS_EV_TEXT);
    assert_true(l.r[2].fin);
    assert_memory_equal(l.r[2].data, "world", 5);
    assert_int_equal(l.r[3].type, GP_WS_EV_BINARY);
    log_free(&l);
}

static void test_fragmented_binary_and_empty(void **st)
{
    uint8_t in[256];
    size_t o = 0;
    o += mkframe(in + o, GP_WS_OP_BINARY, false, "", 0); /* empty first fragment */
    o += mkframe(in + o, GP_WS_OP_CONT, false, "ab", 2);
    o += mkframe(in + o, GP_WS_OP_CONT, false, "", 0);
    o += mkframe(in + o, GP_WS_OP_PONG, true, "", 0);
    o += mkframe(in + o, GP_WS_OP_CONT, false, "cd", 2);
    o += mkframe(in + o, GP_WS_OP_CONT, true, "", 0); /* empty last fragment */
    o += mkframe(in + o, GP_WS_OP_TEXT, false, "", 0);
    o += mkframe(in + o, GP_WS_OP_CONT, true, "", 0);
    log_t l;
    run_all(&l, in, o, 0);
    assert_int_equal(l.n, 4);
    assert_int_equal(l.r[0].type, GP_WS_EV_BINARY);
    assert_memory_equal(l.r[0].data, "ab", 2);
    assert_false(l.r[0].fin);
    assert_int_equal(l.r[1].type, GP_WS_EV_PONG);
    assert_int_equal(l.r[2].type, GP_WS_EV_BINARY);
    assert_int_equal(l.r[2].len, 2);
    assert_true(l.r[2].fin);
    assert_int_equal(l.r[3].type, GP_WS_EV_TEXT);
    assert_int_equal(l.r[3].len, 0);
    assert_true(l.r[3].fin);
    log_free(&l);
}

/* ---- protocol errors ------------------------------------------------------------------------ */

static void test_errors_header(void **st)
{
    uint8_t f[64];
    size_t n;
    /* unmasked client frame */
    n = mkframe_x(f, 0x81, false, "hi", 2, LEN_MIN);
    assert_int_equal(err_of(f, n, 0), 1002);
    n = mkframe_x(f, 0x89, false, "", 0, LEN_MIN);
    assert_int_equal(err_of(f, n, 0), 1002);
    /* reserved bits */
    for (int rsv = 1; rsv < 8; rsv++) {
        n = mkframe_x(f, (uint8_t)(0x81 | rsv << 4), true, "hi", 2, LEN_MIN);
        assert_int_equal(err_of(f, n, 0), 1002);
        n = mkframe_x(f, (uint8_t)(0x89 | rsv << 4), true, "", 0, LEN_MIN);
        assert_int_equal(err_of(f, n, 0), 1002);
    }
    /* unknown opcodes */
    int bad[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        n = mkframe_x(f, (uint8_t)(0x80 | bad[i]), true, "x", 1, LEN_MIN);
        assert_int_equal(err_of(f, n, 0), 1002);
        n = mkframe_x(f, (uint8_t)bad[i], true, "x", 1, LEN_MIN);
        assert_int_equal(err_of(f, n, 0), 1002);
    }
    /* detected from the first two bytes alone */
    uint8_t two[2] = {0x83, 0x80};
    assert_int_equal(err_of(two, 2, 0), 1002);
    /* control frames: more than 125 bytes (any encoding), or fragmented */
    uint8_t big[200] = {0};
    uint8_t fb[300];
    int ctl[] = {GP_WS_OP_PING, GP_WS_OP_PONG, GP_WS_OP_CLOSE};
    for (size_t i = 0; i < 3; i++) {
        n = mkframe_x(fb, (uint8_t)(0x80 | ctl[i]), true, big, 126, LEN_MIN);
        assert_int_equal(err_of(fb, n, 0), 1002);
        n = mkframe_x(fb, (uint8_t)(0x80 | ctl[i]), true, big, 5, LEN_16);
        assert_int_equal(err_of(fb, n, 0), 1002);
        n = mkframe_x(fb, (uint8_t)(0x80 | ctl[i]), true, big, 5, LEN_64);
        assert_int_equal(err_of(fb, n, 0), 1002);
        n = mkframe_x(fb, (uint8_t)ctl[i], true, big, 0, LEN_MIN);
        assert_int_equal(err_of(fb, n, 0), 1002);
    }
    /* 64-bit length with the top bit set: error as soon as the length is there */
    uint8_t h64[10] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(err_of(h64, 10, 0), 1002);
    h64[2] = 0xFF;
    assert_int_equal(err_of(h64, 10, 0), 1002);
    /* 2^63 - 1 is a legal length (it just never arrives) */
    uint8_t h63[14] = {0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4};
    assert_int_equal(err_of(h63, 14, 0), 0);
    /* ... but over any configured maximum */
    assert_int_equal(err_of(h63, 10, 1u << 24), 1009);
}

static void test_errors_sequence(void **st)
{
    uint8_t in[128];
    size_t o;
    /* continuation with no message open */
    o = mkframe(in, GP_WS_OP_CONT, true, "x", 1);
    assert_int_equal(err_of(in, o, 0), 1002);
    o = mkframe(in, GP_WS_OP_CONT, false, "", 0);
    assert_int_equal(err_of(in, o, 0), 1002);
    /* ... nor after a finished one */
    o = mkframe(in, GP_WS_OP_TEXT, true, "a", 1);
    o += mkframe(in + o, GP_WS_OP_CONT, true, "b", 1);
    assert_int_equal(err_of(in, o, 0), 1002);
    /* a new data frame while a fragmented message is open */
    int ops[] = {GP_WS_OP_TEXT, GP_WS_OP_BINARY};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            o = mkframe(in, ops[a], false, "a", 1);
            o += mkframe(in + o, GP_WS_OP_PING, true, "", 0);
            o += mkframe(in + o, ops[b], true, "b", 1);
            log_t l;
            run_all(&l, in, o, 0);
            assert_int_equal(l.last, GP_WS_EV_ERROR);
            assert_int_equal(l.n, 3); /* the piece, the ping, the error */
            assert_int_equal(l.r[2].code, 1002);
            log_free(&l);
        }
}

static void test_error_sticky_and_nothing_consumed(void **st)
{
    uint8_t in[64];
    size_t o = mkframe(in, GP_WS_OP_TEXT, true, "ok", 2);
    size_t bad_at = o;
    o += mkframe_x(in + o, 0x81, false, "no", 2, LEN_MIN);
    gp_ws_parser p = {0};
    gp_ws_event ev;
    size_t used;
    assert_int_equal(gp_ws_parse(&p, in, o, &used, &ev), GP_WS_EV_TEXT);
    assert_int_equal(used, bad_at);
    assert_int_equal(gp_ws_parse(&p, in + used, o - used, &used, &ev), GP_WS_EV_ERROR);
    assert_int_equal(used, 0);
    assert_int_equal(ev.code, 1002);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gp_ws_parse(&p, in, o, &used, &ev), GP_WS_EV_ERROR);
        assert_int_equal(used, 0);
        assert_int_equal(ev.code, 1002);
    }
}

/* ---- close frames ------------------------------------------------------------------------------
 */

static int close_of(const void *payload, size_t n, uint16_t *code, char *reason, size_t *rlen)
{
    uint8_t f[200];
    size_t fl = mkframe(f, GP_WS_OP_CLOSE, true, payload, n);
    log_t l;
    run_all(&l, f, fl, 0);
    int type = l.r[0].type;
    assert_int_equal(l.n, 1);
    if (code) *code = l.r[0].code;
    if (reason && type == GP_WS_EV_CLOSE) {
        memcpy(reason, l.r[0].data, l.r[0].len);
        *rlen = l.r[0].len;
    }
    log_free(&l);
    return type;
}

static void test_close_parsing(void **st)
{
    uint16_t code;
    char reason[200];
    size_t rl = 99;
    assert_int_equal(close_of("", 0, &code, reason, &rl), GP_WS_EV_CLOSE);
    assert_int_equal(code, 1005);
    assert_int_equal(rl, 0);
    assert_int_equal(close_of("\x03\xe8", 2, &code, reason, &rl), GP_WS_EV_CLOSE);
    assert_int_equal(code, 1000);
    assert_int_equal(rl, 0);
    assert_int_equal(close_of("\x0f\xa0"
                              "bye",
                              5, &code, reason, &rl),
                     GP_WS_EV_CLOSE);
    assert_int_equal(code, 4000);
    assert_int_equal(rl, 3);
    assert_memory_equal(reason, "bye", 3);
    assert_int_equal(close_of("\x03\xe9"
                              "\xc3\xa9t\xc3\xa9",
                              7, &code, reason, &rl),
                     GP_WS_EV_CLOSE);
    assert_int_equal(code, 1001);
    assert_int_equal(rl, 5);
    /* 123 bytes of reason: the largest */
    char big[125];
    big[0] = 0x03;
    big[1] = (char)0xe8;
    memset(big + 2, 'r', 123);
    assert_int_equal(close_of(big, 125, &code, reason, &rl), GP_WS_EV_CLOSE);
    assert_int_equal(rl, 123);

    /* one byte: protocol error */
    assert_int_equal(close_of("\x03", 1, &code, NULL, NULL), GP_WS_EV_ERROR);
    assert_int_equal(code, 1002);
    /* invalid reason UTF-8 */
    assert_int_equal(close_of("\x03\xe8\xff", 3, &code, NULL, NULL), GP_WS_EV_ERROR);
    assert_int_equal(code, 1007);
    assert_int_equal(close_of("\x03\xe8"
                              "ab\xc3",
                              5, &code, NULL, NULL),
                     GP_WS_EV_ERROR);
    assert_int_equal(code, 1007);
    assert_int_equal(close_of("\x03\xe8\xed\xa0\x80", 5, &code, NULL, NULL), GP_WS_EV_ERROR);
    assert_int_equal(code, 1007);
    /* a bad code wins over a bad reason */
    assert_int_equal(close_of("\x03\xed\xff", 3, &code, NULL, NULL), GP_WS_EV_ERROR);
    assert_int_equal(code, 1002);
}

static void test_close_codes(void **st)
{
    unsigned ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                     1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    unsigned bad[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 6000, 65535};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        uint8_t pl[2] = {(uint8_t)(ok[i] >> 8), (uint8_t)ok[i]};
        uint16_t code;
        assert_true(gp_ws_close_code_valid(ok[i]));
        assert_int_equal(close_of(pl, 2, &code, NULL, NULL), GP_WS_EV_CLOSE);
        assert_int_equal(code, ok[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint8_t pl[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        uint16_t code;
        assert_false(gp_ws_close_code_valid(bad[i]));
        assert_int_equal(close_of(pl, 2, &code, NULL, NULL), GP_WS_EV_ERROR);
        assert_int_equal(code, 1002);
    }
}

static void test_after_close(void **st)
{
    uint8_t in[128];
    size_t o = mkframe(in, GP_WS_OP_TEXT, false, "par", 3);
    o += mkframe(in + o, GP_WS_OP_CLOSE, true, "\x03\xe8", 2); /* close inside a message */
    o += mkframe(in + o, GP_WS_OP_TEXT, true, "late", 4);
    o += mkframe_x(in + o, 0x81, false, "bad", 3, LEN_MIN); /* even garbage */
    log_t l;
    run_all(&l, in, o, 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.r[0].type, GP_WS_EV_TEXT);
    assert_int_equal(l.r[1].type, GP_WS_EV_CLOSE);
    assert_int_equal(l.r[1].code, 1000);
    assert_int_equal(l.last, GP_WS_EV_NEED_MORE);
    assert_int_equal(l.left, 0);
    log_free(&l);
}

/* ---- UTF-8
 * --------------------------------------------------------------------------------------- */

static bool V(const char *s, size_t n)
{
    return gp_utf8_valid((const uint8_t *)s, n);
}

static void test_utf8_kuhn(void **st)
{
    /* 2. boundary conditions: first and last of each length */
    assert_true(V("\x00", 1));
    assert_true(V("\xc2\x80", 2));
    assert_true(V("\xe0\xa0\x80", 3));
    assert_true(V("\xf0\x90\x80\x80", 4));
    assert_true(V("\x7f", 1));
    assert_true(V("\xdf\xbf", 2));
    assert_true(V("\xef\xbf\xbf", 3));     /* U+FFFF: a noncharacter, still valid */
    assert_true(V("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
    assert_true(V("\xed\x9f\xbf", 3));     /* U+D7FF */
    assert_true(V("\xee\x80\x80", 3));     /* U+E000 */
    assert_true(V("\xef\xbf\xbd", 3));     /* U+FFFD */
    assert_true(V("\xef\xbf\xbe", 3));     /* U+FFFE */
    assert_true(V("\xf3\xbf\xbf\xbf", 4));
    assert_true(V("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11)); /* kosme */
    assert_true(V("", 0));
    /* beyond U+10FFFF, 5- and 6-byte forms */
    assert_false(V("\xf4\x90\x80\x80", 4));
    assert_false(V("\xf7\xbf\xbf\xbf", 4));
    assert_false(V("\xf8\x88\x80\x80\x80", 5));
    assert_false(V("\xfb\xbf\xbf\xbf\xbf", 5));
    assert_false(V("\xfc\x84\x80\x80\x80\x80", 6));
    assert_false(V("\xfd\xbf\xbf\xbf\xbf\xbf", 6));
    /* 3. malformed: lone continuations, lonely starts, incomplete sequences */
    for (int c = 0x80; c <= 0xbf; c++) {
        char s[1] = {(char)c};
        assert_false(V(s, 1));
    }
    for (int c = 0xc0; c <= 0xff; c++) {
        char s[2] = {(char)c, ' '};
        assert_false(V(s, 2));
        assert_false(V(s, 1));
    }
    assert_false(V("\xe0\x80", 2));
    assert_false(V("\xe1\x80", 2));
    assert_false(V("\xf0\x90\x80", 3));
    assert_false(V("\xf1\x80\x80", 3));
    assert_false(V("\xdf", 1));
    assert_false(V("\xef\xbf", 2));
    assert_false(V("\xf4\x8f\xbf", 3));
    assert_false(V("\xfe", 1));
    assert_false(V("\xff", 1));
    assert_false(V("\xfe\xfe\xff\xff", 4));
    /* 4. overlong forms */
    assert_false(V("\xc0\xaf", 2));
    assert_false(V("\xe0\x80\xaf", 3));
    assert_false(V("\xf0\x80\x80\xaf", 4));
    assert_false(V("\xf8\x80\x80\x80\xaf", 5));
    assert_false(V("\xc1\xbf", 2));
    assert_false(V("\xe0\x9f\xbf", 3));
    assert_false(V("\xf0\x8f\xbf\xbf", 4));
    assert_false(V("\xc0\x80", 2));
    assert_false(V("\xe0\x80\x80", 3));
    /* 5. surrogates, single and paired */
    assert_false(V("\xed\xa0\x80", 3));
    assert_false(V("\xed\xad\xbf", 3));
    assert_false(V("\xed\xae\x80", 3));
    assert_false(V("\xed\xaf\xbf", 3));
    assert_false(V("\xed\xb0\x80", 3));
    assert_false(V("\xed\xbe\x80", 3));
    assert_false(V("\xed\xbf\xbf", 3));
    assert_false(V("\xed\xa0\x80\xed\xb0\x80", 6));
    assert_false(V("\xed\xaf\xbf\xed\xbf\xbf", 6));
    /* invalid in the middle of long ASCII (the 8-byte fast path) */
    char s[40];
    for (int at = 0; at < 40; at++) {
        memset(s, 'a', sizeof s);
        assert_true(V(s, sizeof s));
        s[at] = (char)0x80;
        assert_false(V(s, sizeof s));
        gp_utf8_state u = {0};
        assert_int_equal(gp_utf8_feed(&u, (const uint8_t *)s, sizeof s), at);
    }
}

static void test_utf8_incremental(void **st)
{
    /* every split of every sequence gives the same answer as whole */
    const char *seqs[] = {"\xc2\xa9",     "\xe2\x82\xac",     "\xf0\x9f\x98\x80",
                          "\xed\x9f\xbf", "\xf4\x8f\xbf\xbf", "a\xce\xbaz"};
    for (size_t k = 0; k < sizeof seqs / sizeof *seqs; k++) {
        size_t n = strlen(seqs[k]);
        for (size_t cut = 0; cut <= n; cut++) {
            gp_utf8_state u = {0};
            assert_int_equal(gp_utf8_feed(&u, (const uint8_t *)seqs[k], cut), cut);
            assert_int_equal(gp_utf8_complete(&u), cut == n || cut == 0 || (k == 5 && cut != 2));
            assert_int_equal(gp_utf8_feed(&u, (const uint8_t *)seqs[k] + cut, n - cut), n - cut);
            assert_true(gp_utf8_complete(&u));
        }
    }
    /* rejection index and stickiness */
    gp_utf8_state u = {0};
    assert_int_equal(gp_utf8_feed(&u, (const uint8_t *)"ab\xe0", 3), 3);
    assert_false(gp_utf8_complete(&u));
    assert_int_equal(gp_utf8_feed(&u, (const uint8_t *)"\x80zz", 3), 0);
    assert_int_equal(u.state, GP_UTF8_REJECT);
    assert_int_equal(gp_utf8_feed(&u, (const uint8_t *)"ok", 2), 0);
    assert_false(gp_utf8_complete(&u));
}

static size_t text_frames(uint8_t *out, const char *s, size_t n, const size_t *cuts, size_t ncut)
{
    /* splits s at cuts into a text frame and continuations */
    size_t o = 0, prev = 0;
    for (size_t i = 0; i <= ncut; i++) {
        size_t end = i < ncut ? cuts[i] : n;
        o += mkframe(out + o, i == 0 ? GP_WS_OP_TEXT : GP_WS_OP_CONT, i == ncut, s + prev,
                     end - prev);
        prev = end;
    }
    return o;
}

static void test_utf8_across_frames(void **st)
{
    const char *s = "a\xc2\xa9"
                    "b\xe2\x82\xac"
                    "c\xf0\x9f\x98\x80"
                    "d";
    size_t n = strlen(s);
    uint8_t in[256];
    /* every single cut and every pair of cuts */
    for (size_t c1 = 0; c1 <= n; c1++)
        for (size_t c2 = c1; c2 <= n; c2++) {
            size_t cuts[2] = {c1, c2};
            size_t o = text_frames(in, s, n, cuts, 2);
            /* a ping in the middle too */
            log_t l;
            run_all(&l, in, o, 0);
            assert_int_equal(l.last, GP_WS_EV_NEED_MORE);
            assert_int_equal(l.n, 1);
            assert_int_equal(l.r[0].len, n);
            assert_memory_equal(l.r[0].data, s, n);
            assert_true(l.r[0].fin);
            log_free(&l);
        }
    /* a code point split around a ping */
    size_t o = mkframe(in, GP_WS_OP_TEXT, false, "\xf0\x9f", 2);
    o += mkframe(in + o, GP_WS_OP_PING, true, "", 0);
    o += mkframe(in + o, GP_WS_OP_CONT, true, "\x98\x80", 2);
    log_t l;
    run_all(&l, in, o, 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.r[2].type, GP_WS_EV_TEXT);
    assert_true(l.r[2].fin);
    log_free(&l);
}

static void test_utf8_errors_in_messages(void **st)
{
    struct {
        const char *s;
        size_t n;
    } bad[] = {
        {"\xc0\x80", 2},         {"ab\xc0\x80", 4}, {"\xed\xa0\x80", 3},
        {"\xf4\x90\x80\x80", 4}, {"\xff", 1},       {"x\x80", 2},
        {"\xe2\x82", 2}, /* truncated at the end of the final frame */
        {"abc\xf0\x9f\x98", 7},  {"\xc2", 1},
    };
    uint8_t in[256];
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        size_t n = bad[k].n;
        /* as one frame, and split at every point */
        size_t o = mkframe(in, GP_WS_OP_TEXT, true, bad[k].s, n);
        assert_int_equal(err_of(in, o, 0), 1007);
        for (size_t c = 0; c <= n; c++) {
            size_t cuts[1] = {c};
            o = text_frames(in, bad[k].s, n, cuts, 1);
            assert_int_equal(err_of(in, o, 0), 1007);
        }
        /* the same bytes in a binary message are fine */
        o = mkframe(in, GP_WS_OP_BINARY, true, bad[k].s, n);
        assert_int_equal(err_of(in, o, 0), 0);
    }
    /* a message ending inside a code point with an empty final frame */
    size_t o = mkframe(in, GP_WS_OP_TEXT, false, "\xe2\x82", 2);
    o += mkframe(in + o, GP_WS_OP_CONT, true, "", 0);
    assert_int_equal(err_of(in, o, 0), 1007);
    /* the valid prefix is delivered, then the error */
    o = mkframe(in, GP_WS_OP_TEXT, true, "hello\xff", 6);
    gp_ws_parser p = {0};
    gp_ws_event ev;
    size_t used;
    assert_int_equal(gp_ws_parse(&p, in, o, &used, &ev), GP_WS_EV_TEXT);
    assert_int_equal(ev.len, 5);
    assert_false(ev.fin);
    assert_memory_equal(ev.data, "hello", 5);
    assert_int_equal(used, 6 + 5);
    /* the bad byte is left as it was received (masked) */
    assert_int_equal(in[used], 0xff ^ MASK[5 & 3]);
    assert_int_equal(gp_ws_parse(&p, in + used, o - used, &used, &ev), GP_WS_EV_ERROR);
    assert_int_equal(ev.code, 1007);
    assert_int_equal(used, 0);
}

/* ---- size limit
 * ----------------------------------------------------------------------------------- */

static void test_max_message(void **st)
{
    uint8_t pl[300];
    memset(pl, 'z', sizeof pl);
    uint8_t in[1024];
    size_t o = mkframe(in, GP_WS_OP_BINARY, true, pl, 100);
    assert_int_equal(err_of(in, o, 100), 0);
    assert_int_equal(err_of(in, o, 99), 1009);
    /* detected from the header: nothing of the payload is needed */
    assert_int_equal(err_of(in, 6, 99), 1009);
    /* total across fragments */
    o = mkframe(in, GP_WS_OP_TEXT, false, pl, 60);
    o += mkframe(in + o, GP_WS_OP_PING, true, pl, 100); /* control frames do not count */
    o += mkframe(in + o, GP_WS_OP_CONT, false, pl, 40);
    size_t ok_end = o;
    o += mkframe(in + o, GP_WS_OP_CONT, true, pl, 1);
    assert_int_equal(err_of(in, ok_end, 100), 0);
    assert_int_equal(err_of(in, o, 100), 1009);
    assert_int_equal(err_of(in, o, 101), 0);
    log_t l;
    run_all(&l, in, o, 100);
    assert_int_equal(l.n, 4); /* 60 bytes, the ping, 40 bytes, the error */
    assert_int_equal(l.r[0].len, 60);
    assert_int_equal(l.r[1].type, GP_WS_EV_PING);
    assert_int_equal(l.r[2].len, 40);
    assert_int_equal(l.r[3].code, 1009);
    log_free(&l);
    /* the count restarts with each message */
    o = 0;
    for (int i = 0; i < 5; i++) o += mkframe(in + o, GP_WS_OP_BINARY, true, pl, 100);
    assert_int_equal(err_of(in, o, 100), 0);
    /* 16-bit and 64-bit lengths */
    uint8_t h16[8] = {0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4};
    assert_int_equal(err_of(h16, 8, 255), 1009);
    assert_int_equal(err_of(h16, 8, 256), 0);
    uint8_t h64[14] = {0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4};
    assert_int_equal(err_of(h64, 14, 16u << 20), 1009);
}

/* ---- encoder
 * ---------------------------------------------------------------------------------------- */

static void test_frame_header(void **st)
{
    uint8_t h[10];
    assert_int_equal(gp_ws_frame_header(h, GP_WS_OP_TEXT, true, 0), 2);
    assert_memory_equal(h, "\x81\x00", 2);
    assert_int_equal(gp_ws_frame_header(h, GP_WS_OP_BINARY, true, 125), 2);
    assert_memory_equal(h, "\x82\x7d", 2);
    assert_int_equal(gp_ws_frame_header(h, GP_WS_OP_BINARY, false, 126), 4);
    assert_memory_equal(h, "\x02\x7e\x00\x7e", 4);
    assert_int_equal(gp_ws_frame_header(h, GP_WS_OP_CONT, true, 65535), 4);
    assert_memory_equal(h, "\x80\x7e\xff\xff", 4);
    assert_int_equal(gp_ws_frame_header(h, GP_WS_OP_TEXT, true, 65536), 10);
    assert_memory_equal(h, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    assert_int_equal(gp_ws_frame_header(h, GP_WS_OP_BINARY, true, 0x0123456789abcdefull), 10);
    assert_memory_equal(h, "\x82\x7f\x01\x23\x45\x67\x89\xab\xcd\xef", 10);
    assert_int_equal(gp_ws_frame_header(h, GP_WS_OP_PING, true, 3), 2);
    assert_memory_equal(h, "\x89\x03", 2);
}

static void test_close_frame_encoder(void **st)
{
    uint8_t f[127];
    assert_int_equal(gp_ws_close_frame(f, 1000, NULL, 0), 4);
    assert_memory_equal(f, "\x88\x02\x03\xe8", 4);
    assert_int_equal(gp_ws_close_frame(f, 1005, "x", 1), 2);
    assert_memory_equal(f, "\x88\x00", 2);
    assert_int_equal(gp_ws_close_frame(f, 0, NULL, 0), 2);
    assert_int_equal(gp_ws_close_frame(f, 1011, "oops", 4), 8);
    assert_memory_equal(f, "\x88\x06\x03\xf3oops", 8);
    /* 123 bytes fit, 124 are cut */
    char r[200];
    memset(r, 'r', sizeof r);
    assert_int_equal(gp_ws_close_frame(f, 1000, r, 123), 127);
    assert_int_equal(f[1], 125);
    assert_int_equal(gp_ws_close_frame(f, 1000, r, 200), 127);
    /* cut at a code point boundary: 122 ASCII + a 2-byte char -> 122 */
    memcpy(r + 122, "\xc3\xa9", 2);
    assert_int_equal(gp_ws_close_frame(f, 1000, r, 124), 4 + 122);
    /* 121 ASCII + a 4-byte char (bytes 121..124) -> 121 */
    memset(r, 'r', sizeof r);
    memcpy(r + 121, "\xf0\x9f\x98\x80", 4);
    assert_int_equal(gp_ws_close_frame(f, 1000, r, 125), 4 + 121);
    /* a 3-byte char ending exactly at 123 stays */
    memset(r, 'r', sizeof r);
    memcpy(r + 120, "\xe2\x82\xac", 3);
    assert_int_equal(gp_ws_close_frame(f, 1000, r, 130), 4 + 123);
    /* what the encoder writes, the decoder reads back (after masking) */
    uint8_t m[140];
    size_t fl = gp_ws_close_frame(f, 3001, "\xc3\xa9t\xc3\xa9", 5);
    size_t ml = mkframe(m, GP_WS_OP_CLOSE, true, f + 2, fl - 2);
    gp_ws_parser p = {0};
    gp_ws_event ev;
    size_t used;
    assert_int_equal(gp_ws_parse(&p, m, ml, &used, &ev), GP_WS_EV_CLOSE);
    assert_int_equal(ev.code, 3001);
    assert_int_equal(ev.len, 5);
}

static void test_control_frame_encoder(void **st)
{
    uint8_t f[127];
    assert_int_equal(gp_ws_control_frame(f, GP_WS_OP_PONG, (const uint8_t *)"Hello", 5), 7);
    assert_memory_equal(f, "\x8a\x05Hello", 7);
    assert_int_equal(gp_ws_control_frame(f, GP_WS_OP_PING, NULL, 0), 2);
    assert_memory_equal(f, "\x89\x00", 2);
    uint8_t big[126] = {0};
    assert_int_equal(gp_ws_control_frame(f, GP_WS_OP_PING, big, 125), 127);
    assert_int_equal(gp_ws_control_frame(f, GP_WS_OP_PING, big, 126), 0);
    assert_int_equal(gp_ws_control_frame(f, GP_WS_OP_CLOSE, big, 2), 0);
    assert_int_equal(gp_ws_control_frame(f, GP_WS_OP_TEXT, big, 2), 0);
}

/* ---- overreads: input ending right before an unmapped page
 * ----------------------------------------- */

static void test_guard_page(void **st)
{
    long pg = sysconf(_SC_PAGESIZE);
    uint8_t *m =
        mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect(m + pg, (size_t)pg, PROT_NONE), 0);
    uint8_t *end = m + pg;
    uint8_t src[600];
    size_t o = mkframe(src, GP_WS_OP_TEXT, false, "h\xc3\xa9llo world, long enough", 25);
    o += mkframe(src + o, GP_WS_OP_PING, true, "pp", 2);
    o += mkframe(src + o, GP_WS_OP_CONT, true, "!", 1);
    o += mkframe(src + o, GP_WS_OP_CLOSE, true, "\x03\xe8ok", 4);
    uint8_t big[300];
    memset(big, 'B', sizeof big);
    size_t o2 = mkframe_x(src + o, 0x82, true, big, 300, LEN_64);
    for (size_t i = 0; i <= o + o2; i++) {
        uint8_t *b = end - i;
        memcpy(b, src, i);
        gp_ws_parser p = {0};
        size_t pos = 0;
        for (int guard = 0; guard < 100; guard++) {
            gp_ws_event ev;
            size_t used;
            int r = gp_ws_parse(&p, b + pos, i - pos, &used, &ev);
            pos += used;
            if (r == GP_WS_EV_NEED_MORE || r == GP_WS_EV_ERROR) break;
        }
        assert_true(pos <= i);
    }
    munmap(m, (size_t)pg * 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha1_vectors),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_handshake_valid),
        cmocka_unit_test(test_handshake_rejects),
        cmocka_unit_test(test_has_token),
        cmocka_unit_test(test_split_protocols),
        cmocka_unit_test(test_length_encodings),
        cmocka_unit_test(test_unmask_exact),
        cmocka_unit_test(test_streaming_pieces),
        cmocka_unit_test(test_control_needs_whole_frame),
        cmocka_unit_test(test_several_frames_one_buffer),
        cmocka_unit_test(test_fragmented_with_ping),
        cmocka_unit_test(test_fragmented_binary_and_empty),
        cmocka_unit_test(test_errors_header),
        cmocka_unit_test(test_errors_sequence),
        cmocka_unit_test(test_error_sticky_and_nothing_consumed),
        cmocka_unit_test(test_close_parsing),
        cmocka_unit_test(test_close_codes),
        cmocka_unit_test(test_after_close),
        cmocka_unit_test(test_utf8_kuhn),
        cmocka_unit_test(test_utf8_incremental),
        cmocka_unit_test(test_utf8_across_frames),
        cmocka_unit_test(test_utf8_errors_in_messages),
        cmocka_unit_test(test_max_message),
        cmocka_unit_test(test_frame_header),
        cmocka_unit_test(test_close_frame_encoder),
        cmocka_unit_test(test_control_frame_encoder),
        cmocka_unit_test(test_guard_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
