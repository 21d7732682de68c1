/* libFuzzer driver for core/http_parser: the head parser must stay inside its
 * input, report consistent results for prefixes of the same bytes, give the
 * same result fed in random pieces (resuming, with the buffer moved and the
 * headers array scribbled on between calls) as parsed whole, and the chunked
 * decoder must give the same result however its input is split, in place or
 * not, with a roomy or a tiny output buffer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/http_parser.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const gp_http_limits LIM = {200, 20, 120, 600};

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && n <= len && p - buf <= (ptrdiff_t)(len - n);
}

/* Parses buf[0..len) from its own exact-size copy so ASan sees any overread. */
static int parse_copy(const char *src, size_t len, gp_http_request *req, gp_http_header *h,
                      size_t cap)
{
    char *b = malloc(len ? len : 1);
    memcpy(b, src, len);
    req->headers = h;
    req->num_headers = cap;
    int r = gp_http_parse_request(b, len, req, &LIM);
    free(b);
    return r;
}

static void check_head(const char *buf, size_t len, size_t cap, gp_http_request *req, int r)
{
    CHECK(r <= (int)len);
    CHECK(r >= 0 || r == -400 || r == -414 || r == -431 || r == -501 || r == -505);
    if (r <= 0) {
        CHECK(req->num_headers == cap);
        return;
    }
    CHECK(req->num_headers <= cap && req->num_headers <= LIM.max_fields);
    CHECK(inside(req->method, req->method_len, buf, (size_t)r) && req->method_len > 0);
    CHECK(inside(req->target, req->target_len, buf, (size_t)r) && req->target_len > 0);
    CHECK(inside(req->path, req->path_len, buf, (size_t)r) ||
          (req->path_len == 1 && req->path[0] == '/'));
    CHECK((size_t)r <= LIM.max_head);
    if (req->query) CHECK(inside(req->query, req->query_len, buf, (size_t)r));
    if (req->host) CHECK(inside(req->host, req->host_len, buf, (size_t)r));
    CHECK(req->host || req->version_minor == 0);
    CHECK(req->version_minor == 0 || req->version_minor == 1);
    CHECK(req->body == GP_HTTP_BODY_NONE || req->body == GP_HTTP_BODY_LENGTH ||
          req->body == GP_HTTP_BODY_CHUNKED);
    CHECK(req->body != GP_HTTP_BODY_CHUNKED || req->version_minor == 1);
    CHECK(req->content_length <= (uint64_t)INT64_MAX);
    for (size_t i = 0; i < req->num_headers; i++) {
        const gp_http_header *h = &req->headers[i];
        /* an absolute-form request without Host gets a "Host" entry */
        CHECK((inside(h->name, h->name_len, buf, (size_t)r) && h->name_len > 0) ||
              (h->name_len == 4 && memcmp(h->name, "Host", 4) == 0 && req->host &&
               h->value == req->host));
        CHECK(inside(h->value, h->value_len, buf, (size_t)r));
        CHECK(h->name_len + 1 <= LIM.max_field_size);
        for (size_t j = 0; j < h->value_len; j++)
            CHECK(h->value[j] != '\r' && h->value[j] != '\n' && h->value[j] != '\0');
        if (h->value_len) {
            CHECK(h->value[0] != ' ' && h->value[0] != '\t');
            CHECK(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
        }
    }
}

/* Parses src[0..size) fed in pieces whose ends come from a small PRNG seeded
 * by `seed`, each call on a fresh exact-size copy (offsets, not pointers, must
 * carry over) with the headers array scribbled on in between; the result must
 * be the one of parsing it whole (whole_r, *whole, which points into wbuf). */
static void check_splits(const char *src, size_t size, size_t cap, uint32_t seed, int whole_r,
                         const gp_http_request *whole, const char *wbuf)
{
    gp_http_head_state st;
    memset(&st, 0, sizeof st);
    gp_http_header hdr[64];
    gp_http_request req;
    char *b = NULL;
    size_t len = 0;
    int r = 0;
    for (;;) {
        seed = seed * 1103515245u + 12345u;
        size_t step = 1 + ((seed >> 16) % 9 == 0 ? (seed >> 8) % 64 : (seed >> 16) % 4);
        len = len + step > size ? size : len + step;
        free(b);
        b = malloc(len ? len : 1);
        memcpy(b, src, len);
        memset(hdr, 0x5a, sizeof hdr);
        req.headers = hdr;
        req.num_headers = cap;
        r = gp_http_parse_head(&st, b, len, &req, &LIM);
        if (r != 0 || len == size) break;
        CHECK(req.num_headers == cap);
    }
    CHECK(r == whole_r);
    if (r > 0) {
        check_head(b, len, cap, &req, r);
        CHECK(req.num_headers == whole->num_headers && req.body == whole->body &&
              req.content_length == whole->content_length &&
              req.keep_alive == whole->keep_alive && req.upgrade == whole->upgrade &&
              req.expect_continue == whole->expect_continue &&
              req.version_minor == whole->version_minor);
        CHECK(req.method - b == whole->method - wbuf && req.method_len == whole->method_len);
        CHECK(req.target - b == whole->target - wbuf && req.target_len == whole->target_len);
        CHECK(req.path_len == whole->path_len && memcmp(req.path, whole->path, req.path_len) == 0);
        CHECK((req.query == NULL) == (whole->query == NULL) && req.query_len == whole->query_len);
        CHECK((req.host == NULL) == (whole->host == NULL) && req.host_len == whole->host_len);
        if (req.host) CHECK(req.host - b == whole->host - wbuf);
        for (size_t i = 0; i < req.num_headers; i++) {
            const gp_http_header *x = &req.headers[i], *y = &whole->headers[i];
            CHECK(x->name_len == y->name_len && memcmp(x->name, y->name, x->name_len) == 0);
            CHECK(x->value - b == y->value - wbuf && x->value_len == y->value_len);
        }
        /* resuming scans each byte a bounded number of times */
        CHECK(st.scanned <= 4 * (size_t)r + 128);
    }
    free(b);
}

typedef struct {
    int r;
    size_t used, out_len;
    char *out;
} dec_result;

/* Decodes in[0..n) feeding it in pieces of `step` bytes (0: all at once), with
 * at most `ocap` bytes of output room per call (0: room for everything). */
static dec_result decode(const char *in, size_t n, size_t split, size_t ocap, bool in_place)
{
    dec_result res = {GP_CHUNKED_MORE, 0, 0, NULL};
    char *src = malloc(n ? n : 1);
    memcpy(src, in, n);
    char *out = in_place ? src : malloc(n ? n : 1);
    gp_chunked d = {0};
    size_t i = 0, o = 0;
    /* two pieces: [0, split) then [split, n) */
    size_t ends[2] = {split < n ? split : n, n};
    for (int piece = 0; piece < 2; piece++) {
        size_t end = ends[piece];
        for (;;) {
            size_t used, room = n - o;
            if (ocap && room > ocap) room = ocap;
            size_t want_room = room;
            int r = gp_chunked_decode(&d, src + i, end - i, &used, out + o, &room);
            CHECK(used <= end - i && room <= want_room);
            CHECK(!in_place || o + room <= i + used); /* output never overtakes input */
            i += used;
            o += room;
            res.r = r;
            if (r != GP_CHUNKED_MORE) goto done;
            if (i == end) break;
            /* stopped early: only legal when the output room was used up */
            CHECK(room == want_room && want_room > 0);
        }
    }
done:
    res.used = i;
    res.out_len = o;
    res.out = malloc(o ? o : 1);
    memcpy(res.out, out, o);
    if (!in_place) free(out);
    free(src);
    return res;
}

static void same(const dec_result *a, const dec_result *b)
{
    CHECK(a->r == b->r);
    CHECK(a->used == b->used);
    CHECK(a->out_len == b->out_len);
    CHECK(memcmp(a->out, b->out, a->out_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *src = (const char *)data;
    uint8_t sel = size ? data[size - 1] : 0;
    size_t cap = (sel & 1) ? 64 : 6;

    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    gp_http_header hdr[64];
    gp_http_request req;
    memset(&req, 0, sizeof req);
    req.headers = hdr;
    req.num_headers = cap;
    int r = gp_http_parse_request(buf, size, &req, &LIM);
    check_head(buf, size, cap, &req, r);
    check_splits(src, size, cap, (uint32_t)size * 2654435761u ^ sel, r, &req, buf);

    /* prefixes: a complete head is 0 until its last byte, and stands alone */
    gp_http_request req2;
    gp_http_header hdr2[64];
    size_t cut = size ? (size_t)sel * 131 % size : 0;
    int r2 = parse_copy(src, cut, &req2, hdr2, cap);
    if (r > 0) {
        CHECK(r2 == ((size_t)r <= cut ? r : 0));
        CHECK(parse_copy(src, (size_t)r - 1, &req2, hdr2, cap) == 0);
        CHECK(parse_copy(src, (size_t)r, &req2, hdr2, cap) == r);
        CHECK(req2.num_headers == req.num_headers && req2.body == req.body &&
              req2.content_length == req.content_length && req2.keep_alive == req.keep_alive);
    } else {
        /* once a prefix is invalid, more bytes cannot make it valid */
        CHECK(r2 <= 0 && (r2 == 0 || r < 0));
    }
    free(buf);

    /* chunked decoder over what follows the head, or over everything */
    size_t off = r > 0 ? (size_t)r : 0;
    const char *body = src + off;
    size_t n = size - off;
    size_t split = n ? (size_t)sel * 7 % (n + 1) : 0;
    dec_result a = decode(body, n, n, 0, false);
    dec_result b = decode(body, n, split, 0, false);
    dec_result c = decode(body, n, split, 0, true);
    dec_result e = decode(body, n, n, 1 + (sel >> 5), sel & 2);
    CHECK(a.used <= n && a.out_len <= a.used);
    same(&a, &b);
    same(&a, &c);
    same(&a, &e);
    free(a.out);
    free(b.out);
    free(c.out);
    free(e.out);
    return 0;
}
