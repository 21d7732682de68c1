/* libFuzzer driver for core/h2: the input is what a client sends after its
 * preface (the driver adds the preface, so the fuzzer spends its time on
 * frames), fed in pieces whose sizes come from the input's last byte, with the
 * session's output read between pieces. The host side answers each request
 * in one of several ways (at once, echoing the body, with trailers, holding
 * it, releasing it early), ticks the stall clock and may stop gracefully, so
 * the paths behind the frames run too. Any crash, leak, or sanitizer report
 * is a bug; the session must also end cleanly however the input ends. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/conn.h"
#include "core/h2.h"
#include "core/log.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HELD 8

typedef struct {
    uint8_t sel;
    unsigned n;
    gp_h2_stream *held[HELD];
} host;

static void forget(host *a, gp_h2_stream *s)
{
    for (int i = 0; i < HELD; i++)
        if (a->held[i] == s) a->held[i] = NULL;
}

static void hold(host *a, gp_h2_stream *s)
{
    for (int i = 0; i < HELD; i++)
        if (!a->held[i]) {
            a->held[i] = s;
            return;
        }
    gp_h2_stream_release(s); /* no room: abandoned, as a crashed app would */
}

static void echo(host *a, gp_h2_stream *s)
{
    char buf[1024];
    ssize_t r;
    while ((r = gp_h2_body_read(s, buf, sizeof buf)) > 0) {
        if (!gp_h2_head_begun(s)) gp_h2_head_begin(s, 200);
        if (gp_h2_write(s, buf, (size_t)r) == GP_ERROR) break;
    }
    if (r == 0 || r == GP_H2_BODY_RESET || r == GP_H2_BODY_TOO_LARGE) {
        if (r == 0) gp_h2_end(s, "x-n: 1\r\n", 8);
        forget(a, s);
        gp_h2_stream_release(s);
    }
}

static void on_request(void *p, gp_h2_stream *s, const gp_http_request *req)
{
    host *a = p;
    CHECK(req->method_len > 0 && req->target_len > 0);
    for (size_t i = 0; i < req->num_headers; i++) CHECK(req->headers[i].name_len > 0);
    switch ((a->sel + a->n++) % 5) {
    case 0:
        gp_h2_head_begin(s, 200);
        gp_h2_head_add(s, "Content-Type", 12, "text/plain", 10);
        gp_h2_head_add(s, "Transfer-Encoding", 17, "chunked", 7);
        gp_h2_write(s, "hello", 5);
        gp_h2_end(s, NULL, 0);
        gp_h2_stream_release(s);
        break;
    case 1:
        hold(a, s);
        echo(a, s);
        break;
    case 2:
        gp_h2_head_begin(s, 204);
        gp_h2_flush(s);
        gp_h2_end(s, "x-t: v\r\nbad line\r\n", 18);
        gp_h2_stream_release(s);
        break;
    case 3: hold(a, s); break;
    default:
        gp_h2_write(s, "partial", 7);
        gp_h2_stream_release(s); /* before its end: reset */
        break;
    }
}

static void on_body(void *p, gp_h2_stream *s)
{
    echo(p, s);
}

static void on_writable(void *p, gp_h2_stream *s)
{
    gp_h2_write(s, "more", 4);
}

static void on_close(void *p, gp_h2_stream *s, uint32_t code)
{
    forget(p, s);
    gp_h2_stream_release(s);
}

static const gp_h2_ops OPS = {on_request, on_body, on_writable, on_close};

static void drain(gp_h2 *h)
{
    const uint8_t *d;
    for (int i = 0; i < 64 && gp_h2_output(h, &d) > 0; i++) {
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        gp_log_set_level(GP_LOG_ERROR);
        quiet = 1;
    }
    host a;
    memset(&a, 0, sizeof a);
    a.sel = size ? data[size - 1] : 0;
    gp_h2_limits lim = {200, 8, 1024, 4, (a.sel & 1) ? 100 : 0, (a.sel & 2) ? 3000 : 0,
                        (a.sel & 4) ? 64 : 0, false};
    gp_h2 *h = gp_h2_new(&OPS, &a, &lim, "fuzz");
    CHECK(h);
    static const char P[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    int rc = gp_h2_feed(h, P, sizeof P - 1);
    size_t step = 1 + (a.sel >> 3) * 7, off = 0;
    uint64_t now = 1;
    while (rc == GP_OK && off < size) {
        size_t n = size - off < step ? size - off : step;
        /* each piece from an exact-size copy, so ASan sees overreads */
        char *piece = malloc(n);
        memcpy(piece, data + off, n);
        rc = gp_h2_feed(h, piece, n);
        free(piece);
        off += n;
        if (a.sel & 8) drain(h);
        gp_h2_tick(h, now += 400, 1000);
        if ((a.sel & 0x30) == 0x30 && off * 2 >= size) gp_h2_shutdown(h);
    }
    drain(h);
    /* the app finishes what it held */
    for (int i = 0; i < HELD; i++) {
        gp_h2_stream *s = a.held[i];
        if (!s) continue;
        a.held[i] = NULL;
        if (!gp_h2_stream_closed(s)) gp_h2_end(s, NULL, 0);
        gp_h2_stream_release(s);
    }
    drain(h);
    gp_h2_free(h);
    return 0;
}
