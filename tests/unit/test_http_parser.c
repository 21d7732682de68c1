/* Unit tests for core/http_parser: every accepted request shape, every rejection
 * with its exact status (the smuggling cases above all), limits on complete and
 * partial input, the chunked decoder at every byte boundary, and overreads caught
 * by placing input right before an unmapped page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "core/http_parser.h"

static const gp_http_limits LIM = {1024, 32, 1024, 0};

typedef struct {
    gp_http_request req;
    gp_http_header hdr[GP_HTTP_MAX_HEADERS];
} parsed;

static int parse_n(parsed *p, const char *s, size_t n, size_t cap, const gp_http_limits *lim)
{
    memset(p, 0, sizeof *p);
    p->req.headers = p->hdr;
    p->req.num_headers = cap;
    return gp_http_parse_request(s, n, &p->req, lim);
}

/* Parses with the default test limits and a roomy headers array. */
static int P(const char *s)
{
    parsed p;
    return parse_n(&p, s, strlen(s), 64, &LIM);
}

static int PN(const char *s, size_t n)
{
    parsed p;
    return parse_n(&p, s, n, 64, &LIM);
}

static int PL(const char *s, const gp_http_limits *lim, size_t cap)
{
    parsed p;
    return parse_n(&p, s, strlen(s), cap, lim);
}

static bool eqs(const char *p, size_t n, const char *lit)
{
    return p && n == strlen(lit) && memcmp(p, lit, n) == 0;
}

#define H11(extra) "GET / HTTP/1.1\r\nHost: h\r\n" extra "\r\n"
#define POST11(extra) "POST /u HTTP/1.1\r\nHost: h\r\n" extra "\r\n"

/* ---- accepted requests ---------------------------------------------------- */

static void test_simple_get(void **st)
{
    const char *s = "GET /index.html HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "User-Agent:  curl/8.0 \t\r\n"
                    "Accept: */*\r\n"
                    "X-Empty:\r\n"
                    "\r\n";
    parsed p;
    int r = parse_n(&p, s, strlen(s), 64, &LIM);
    assert_int_equal(r, (int)strlen(s));
    gp_http_request *q = &p.req;
    assert_true(eqs(q->method, q->method_len, "GET"));
    assert_true(eqs(q->target, q->target_len, "/index.html"));
    assert_true(eqs(q->path, q->path_len, "/index.html"));
    assert_null(q->query);
    assert_true(eqs(q->host, q->host_len, "example.com"));
    assert_int_equal(q->version_minor, 1);
    assert_int_equal(q->num_headers, 4);
    assert_true(eqs(q->headers[1].name, q->headers[1].name_len, "User-Agent"));
    assert_true(eqs(q->headers[1].value, q->headers[1].value_len, "curl/8.0"));
    assert_true(eqs(q->headers[3].name, q->headers[3].name_len, "X-Empty"));
    assert_int_equal(q->headers[3].value_len, 0);
    assert_int_equal(q->body, GP_HTTP_BODY_NONE);
    assert_true(q->keep_alive);
    assert_false(q->expect_continue);
    assert_false(q->upgrade);
}

static void test_query(void **st)
{
    parsed p;
    const char *s = "GET /a/b?x=1&y=2?z HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(eqs(p.req.path, p.req.path_len, "/a/b"));
    assert_true(eqs(p.req.query, p.req.query_len, "x=1&y=2?z"));

    s = "GET /a? HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(eqs(p.req.path, p.req.path_len, "/a"));
    assert_non_null(p.req.query);
    assert_int_equal(p.req.query_len, 0);
}

static void test_target_forms(void **st)
{
    parsed p;
    const char *s = "GET http://example.com:8080/p/q?x HTTP/1.1\r\nHost: example.com\r\n\r\n";
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(eqs(p.req.path, p.req.path_len, "/p/q"));
    assert_true(eqs(p.req.query, p.req.query_len, "x"));
    assert_true(eqs(p.req.target, p.req.target_len, "http://example.com:8080/p/q?x"));

    s = "GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n";
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(eqs(p.req.path, p.req.path_len, "/"));
    assert_null(p.req.query);

    s = "GET http://e.com?a=b HTTP/1.1\r\nHost: e.com\r\n\r\n";
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(eqs(p.req.path, p.req.path_len, "/"));
    assert_true(eqs(p.req.query, p.req.query_len, "a=b"));

    s = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(eqs(p.req.path, p.req.path_len, "example.com:443"));
    assert_null(p.req.query);

    s = "CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n";
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));

    s = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(eqs(p.req.path, p.req.path_len, "*"));

    s = "OPTIONS /x HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
}

static void test_bad_target_forms(void **st)
{
    assert_int_equal(P("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("OPTIONS ** HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("CONNECT http://h:80/ HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("CONNECT h HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("CONNECT h: HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("CONNECT :80 HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("CONNECT h:8x HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("CONNECT u@h:80 HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET index.html HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET http:// HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET http://u:p@h/ HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET http:/h/ HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
}

static void test_bad_target_bytes(void **st)
{
    assert_int_equal(P("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET /a\x80 HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET /a\xff HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(PN("GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n", 31), -400);
    /* detected before the line is complete */
    assert_int_equal(P("GET /a\x7f"), -400);
    assert_int_equal(P("GET /a#"), -400);
}

static void test_post_content_length(void **st)
{
    parsed p;
    const char *s = "POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world";
    int r = parse_n(&p, s, strlen(s), 8, &LIM);
    assert_int_equal(r, (int)strlen(s) - 11);
    assert_int_equal(p.req.body, GP_HTTP_BODY_LENGTH);
    assert_int_equal(p.req.content_length, 11);

    s = POST11("content-length: 0\r\n");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_int_equal(p.req.body, GP_HTTP_BODY_LENGTH);
    assert_int_equal(p.req.content_length, 0);

    s = POST11("Content-Length: 9223372036854775807\r\n");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(p.req.content_length == (uint64_t)INT64_MAX);

    s = POST11("Content-Length: 007\r\n");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_int_equal(p.req.content_length, 7);
}

static void test_bad_content_length(void **st)
{
    assert_int_equal(P(POST11("Content-Length: +5\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: -5\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length:  5 5\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: 5,6\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: 5, 6\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: 5,\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: ,5\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: 5,,5\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: 5\r\nContent-Length: 6\r\n")), -400);
    /* a list or a repeat, even of one value, is refused: the app would get "5, 5" */
    assert_int_equal(P(POST11("Content-Length: 5, 5\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: 5,5\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: 5\r\nContent-Length: 5\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: 5,5\r\nContent-Length: 5\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: 0\r\ncontent-length: 0\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: \r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: abc\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: 0x5\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: 5.0\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: 9223372036854775808\r\n")), -400);
    assert_int_equal(P(POST11("Content-Length: 99999999999999999999999\r\n")), -400);
}

static void test_chunked_head(void **st)
{
    parsed p;
    const char *s = POST11("Transfer-Encoding: chunked\r\n");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_int_equal(p.req.body, GP_HTTP_BODY_CHUNKED);

    s = POST11("transfer-encoding:  Chunked \r\n");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_int_equal(p.req.body, GP_HTTP_BODY_CHUNKED);
}

static void test_transfer_encoding_rejections(void **st)
{
    /* smuggling classics */
    assert_int_equal(P(POST11("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n")), -400);
    /* not ending in chunked: no way to find the end of the body (RFC 9112 6.3) */
    assert_int_equal(P(POST11("Transfer-Encoding: chunked, gzip\r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: gzip\r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: compress\r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: identity\r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: chunked, identity\r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: xchunked\r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: x-custom\r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: gzip;level=1\r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: chunked, gzip, chunked\r\n")), -400);
    /* a coding we do not know before the final chunked: 501 */
    assert_int_equal(P(POST11("Transfer-Encoding: gzip, chunked\r\n")), -501);
    assert_int_equal(P(POST11("Transfer-Encoding: deflate, chunked\r\n")), -501);
    assert_int_equal(P(POST11("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n")), -501);
    assert_int_equal(P(POST11("Transfer-Encoding: gzip;level=1, chunked\r\n")), -501);
    assert_int_equal(P(POST11("Transfer-Encoding: GZIP ,  Chunked\r\n")), -501);
    /* syntax */
    assert_int_equal(P(POST11("Transfer-Encoding: chunked, chunked\r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")),
                     -400);
    assert_int_equal(P(POST11("Transfer-Encoding: \r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: chunked,\r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: ,chunked\r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: chunked,,chunked\r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: chunked;x=1\r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: chunked x\r\n")), -400);
    assert_int_equal(P(POST11("Transfer-Encoding: \"chunked\"\r\n")), -400);
    /* HTTP/1.0 may not use it at all */
    assert_int_equal(P("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), -400);
    assert_int_equal(P("POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n"), -400);
}

static void test_keep_alive(void **st)
{
    parsed p;
    const char *s = "GET / HTTP/1.0\r\n\r\n";
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_int_equal(p.req.version_minor, 0);
    assert_false(p.req.keep_alive);
    assert_null(p.req.host);

    s = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(p.req.keep_alive);

    s = "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n";
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_false(p.req.keep_alive);

    s = H11("");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(p.req.keep_alive);

    s = H11("Connection: close\r\n");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_false(p.req.keep_alive);

    s = H11("Connection: foo , CLOSE\r\n");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_false(p.req.keep_alive);

    s = H11("Connection: keep-alive\r\nConnection: close\r\n");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_false(p.req.keep_alive);

    s = H11("Connection: closed\r\n");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(p.req.keep_alive);
}

static void test_upgrade(void **st)
{
    parsed p;
    const char *s = H11("Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(p.req.upgrade);
    assert_true(p.req.keep_alive);

    s = H11("Connection: upgrade\r\n");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_false(p.req.upgrade);

    s = H11("Upgrade: websocket\r\n");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_false(p.req.upgrade);
}

static void test_expect(void **st)
{
    parsed p;
    const char *s = POST11("Content-Length: 3\r\nExpect: 100-continue\r\n");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(p.req.expect_continue);

    s = POST11("Content-Length: 3\r\nexpect: 100-Continue\r\n");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(p.req.expect_continue);

    s = POST11("Expect: something-else\r\n");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_false(p.req.expect_continue);

    s = "POST / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_false(p.req.expect_continue);
}

/* The hint core/forwarded relies on: set for every proxy header name, and
 * not for the usual fields (so a request without them costs nothing more). */
static void test_proxy_headers_hint(void **st)
{
    const char *with[] = {"X-Forwarded-For: 1.2.3.4\r\n", "x-forwarded-proto: https\r\n",
                          "X-FORWARDED-HOST: a\r\n",     "X-Forwarded-Port: 1\r\n",
                          "X-Forwarded-Prefix: /a\r\n",  "Forwarded: for=1.2.3.4\r\n"};
    const char *without[] = {"Accept-Encoding: gzip\r\nUser-Agent: x\r\n",
                             "Accept-Language: en\r\nContent-Type: a/b\r\n",
                             "Transfer-Encoding: chunked\r\n", "Cache-Control: no\r\n", ""};
    parsed p;
    char buf[256];
    for (size_t i = 0; i < sizeof with / sizeof with[0]; i++) {
        snprintf(buf, sizeof buf, H11("%s"), with[i]);
        assert_true(parse_n(&p, buf, strlen(buf), 8, &LIM) > 0);
        assert_true(p.req.proxy_headers);
    }
    for (size_t i = 0; i < sizeof without / sizeof without[0]; i++) {
        snprintf(buf, sizeof buf, POST11("%s"), without[i]);
        assert_true(parse_n(&p, buf, strlen(buf), 8, &LIM) > 0);
        assert_false(p.req.proxy_headers);
    }
}

static void test_pipelined(void **st)
{
    const char *a = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n";
    const char *b = "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi";
    char buf[256];
    snprintf(buf, sizeof buf, "%s%s%s", a, b, a);
    parsed p;
    int r = parse_n(&p, buf, strlen(buf), 8, &LIM);
    assert_int_equal(r, (int)strlen(a));
    assert_true(eqs(p.req.path, p.req.path_len, "/1"));
    int r2 = parse_n(&p, buf + r, strlen(buf) - (size_t)r, 8, &LIM);
    assert_int_equal(r2, (int)strlen(b) - 2);
    assert_int_equal(p.req.content_length, 2);
    /* a second request that is only partly there does not matter */
    assert_int_equal(PN(buf, strlen(a) + 3), (int)strlen(a));
}

static void test_incremental(void **st)
{
    const char *reqs[] = {
        "\r\nPOST /x?y HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nX-A: b\r\n\r\n",
        "GET http://a.b/c HTTP/1.1\r\nHost: a.b\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
    };
    for (size_t k = 0; k < sizeof reqs / sizeof reqs[0]; k++) {
        const char *s = reqs[k];
        size_t n = strlen(s);
        parsed p;
        memset(&p, 0, sizeof p);
        p.req.headers = p.hdr;
        p.req.num_headers = 5;
        /* the same req is reused across calls, as a server would */
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(gp_http_parse_request(s, i, &p.req, &LIM), 0);
            assert_int_equal(p.req.num_headers, 5);
        }
        assert_int_equal(gp_http_parse_request(s, n, &p.req, &LIM), (int)n);
    }
}

static void test_leading_crlf(void **st)
{
    assert_int_equal(P("\r\nGET / HTTP/1.0\r\n\r\n"), 20);
    assert_int_equal(P("\r\n\r\n\r\n\r\nGET / HTTP/1.0\r\n\r\n"), 26);
    assert_int_equal(P("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.0\r\n\r\n"), -400);
    assert_int_equal(P("\nGET / HTTP/1.0\r\n\r\n"), -400);
    assert_int_equal(P("\r\n\nGET / HTTP/1.0\r\n\r\n"), -400);
    assert_int_equal(P("\rGET / HTTP/1.0\r\n\r\n"), -400);
    assert_int_equal(P("\r"), 0);
    assert_int_equal(P("\r\n"), 0);
    assert_int_equal(P(""), 0);
}

static void test_request_line_rejections(void **st)
{
    assert_int_equal(P("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), -505);
    assert_int_equal(P("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), -505);
    assert_int_equal(P("GET / HTTP/0.9\r\nHost: h\r\n\r\n"), -505);
    assert_int_equal(P("GET / HTTP/9.9\r\n"), -505); /* known before the fields */
    assert_int_equal(P("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET / http/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET / HTTP/1.10\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET / HTTP/11\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET / HTTP/1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET / HTTP/1,1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET / HTTP/a.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET /\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET /  HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P(" GET / HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("G(T / HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET / HTTP/1.1\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET / HTTP/1.1\rHost: h\r\n\r\n"), -400);
    assert_int_equal(P("GET / HTTP/1.1\n"), -400);
    assert_int_equal(P("GET /\n"), -400);
    assert_int_equal(P("GET / HTTP/1.1\r\r\n"), -400);
    /* errors are found before the line ends */
    assert_int_equal(P("GET / HTTP/1.1 "), -400);
    assert_int_equal(P("GET / htt"), -400);
    assert_int_equal(P("G\x01"), -400);
    assert_int_equal(P("GET / HTTP/1.1\r"), 0);
}

static void test_field_rejections(void **st)
{
    assert_int_equal(P(H11("X-A : b\r\n")), -400);      /* space before colon */
    assert_int_equal(P(H11("X-A\t: b\r\n")), -400);     /* tab before colon */
    assert_int_equal(P(H11("X\tA: b\r\n")), -400);      /* tab in name */
    assert_int_equal(P(H11("X A: b\r\n")), -400);       /* space in name */
    assert_int_equal(P(H11(": b\r\n")), -400);          /* empty name */
    assert_int_equal(P(H11("X-A b\r\n")), -400);        /* no colon */
    assert_int_equal(P(H11("X-A: b\r\n c\r\n")), -400); /* obs-fold */
    assert_int_equal(P(H11("X-A: b\r\n\tc\r\n")), -400);
    assert_int_equal(P("GET / HTTP/1.1\r\n Host: h\r\n\r\n"), -400);
    assert_int_equal(P(H11("X-A: b\n")), -400); /* bare LF */
    assert_int_equal(P("GET / HTTP/1.1\r\nHost: h\n\r\n"), -400);
    assert_int_equal(P("GET / HTTP/1.1\r\nHost: h\r\n\n"), -400);
    assert_int_equal(P(H11("X-A: b\rc\r\n")), -400); /* bare CR */
    assert_int_equal(P("GET / HTTP/1.1\r\nHost: h\r\n\rX"), -400);
    assert_int_equal(P(H11("X-A: b\x7f\r\n")), -400); /* DEL */
    assert_int_equal(P(H11("X-A: \x01\r\n")), -400);
    assert_int_equal(P(H11("X-A: a\x1b[0m\r\n")), -400);
    assert_int_equal(P(H11("X-\x80: b\r\n")), -400); /* obs-text is not a token */
    const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n";
    assert_int_equal(PN(nul, sizeof nul - 1), -400);
    const char nul2[] = "GET / HTTP/1.1\r\nHost: h\r\nX-\0: a\r\n\r\n";
    assert_int_equal(PN(nul2, sizeof nul2 - 1), -400);
    /* found on partial input */
    assert_int_equal(P("GET / HTTP/1.1\r\nX-A : "), -400);
    assert_int_equal(P("GET / HTTP/1.1\r\nX-A: a\x7f"), -400);
    assert_int_equal(P("GET / HTTP/1.1\r\nX-A: a\n"), -400);
    assert_int_equal(P("GET / HTTP/1.1\r\n "), -400);
    /* obs-text and tabs are legal in values */
    parsed p;
    const char *s = H11("X-A: caf\xc3\xa9\tok\r\n");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(eqs(p.req.headers[1].value, p.req.headers[1].value_len, "caf\xc3\xa9\tok"));
}

static void test_host(void **st)
{
    assert_int_equal(P("GET / HTTP/1.1\r\n\r\n"), -400);
    assert_int_equal(P("GET / HTTP/1.1\r\nX-Host: h\r\n\r\n"), -400);
    assert_int_equal(P("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), -400);
    assert_int_equal(P("GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n"), -400);
    assert_int_equal(P("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), -400);
}

/* Host = uri-host [":" port] (RFC 9110 7.2, RFC 3986 3.2.2); empty is refused
 * too: every http(s) URI has a non-empty host (RFC 9110 4.2.1). */
static void test_host_syntax(void **st)
{
    static const char *const good[] = {
        "h",
        "example.com",
        "example.com:8080",
        "EXAMPLE.com.",
        "a-b_c~d",
        "x:",
        "x:0",
        "x:65535",
        "127.0.0.1",
        "127.0.0.1:80",
        "1.2.3.999",
        "%41bc",
        "a!$&'()*+,;=b",
        "[::1]",
        "[::1]:443",
        "[::]",
        "[2001:db8::7]:8",
        "[1:2:3:4:5:6:7:8]",
        "[1:2:3:4:5:6:7::]",
        "[::2:3:4:5:6:7:8]",
        "[::ffff:192.0.2.1]",
        "[1::2:3]",
        "[v1.x:y]",
        "[V7F.a]",
    };
    static const char *const bad[] = {
        "",
        "   ",
        ":80",
        "u@h",
        "u:p@h",
        "h:8o",
        "h:65536",
        "h:000080",
        "h:80:81",
        "h/x",
        "h?x",
        "h#x",
        "a b",
        "a\"b",
        "%4",
        "%zz",
        "h%",
        "[::1",
        "::1]",
        "[]",
        "[:1]",
        "[1:]",
        "[1:2:3:4:5:6:7:8:9]",
        "[1:2:3:4:5:6:7]",
        "[1::2::3]",
        "[12345::]",
        "[::1.2.3]",
        "[::1.2.3.256]",
        "[::01.2.3.4]",
        "[::1.2.3.4:5]",
        "[g::1]",
        "[::1]x",
        "[::1]:x",
        "[::1%25eth0]",
        "[v.x]",
        "[v1.]",
        "[v1x]",
        "h\x80",
        "h, h2",
        "[::1]]",
    };
    char buf[256];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", good[i]);
        parsed p;
        if (parse_n(&p, buf, (size_t)n, 8, &LIM) != n) fail_msg("refused Host: %s", good[i]);
        assert_true(eqs(p.req.host, p.req.host_len, good[i]));
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", bad[i]);
        if (PN(buf, (size_t)n) != -400) fail_msg("accepted Host: '%s'", bad[i]);
        /* on HTTP/1.0 too, and as an absolute-form authority */
        n = snprintf(buf, sizeof buf, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", bad[i]);
        if (PN(buf, (size_t)n) != -400) fail_msg("accepted 1.0 Host: '%s'", bad[i]);
        if (!strpbrk(bad[i], " /?#\"\x80") && bad[i][0]) {
            n = snprintf(buf, sizeof buf, "GET http://%s/x HTTP/1.1\r\nHost: h\r\n\r\n", bad[i]);
            if (PN(buf, (size_t)n) != -400) fail_msg("accepted authority: '%s'", bad[i]);
        }
    }
    /* the Host value is checked when its line ends, before the head does */
    assert_int_equal(P("GET / HTTP/1.1\r\nHost: a@b\r\n"), -400);
    const char *c = "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n";
    assert_int_equal(P(c), (int)strlen(c));
    assert_int_equal(P("CONNECT [::1]x:443 HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(P("CONNECT h:99999 HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
}

/* An absolute-form target's authority is the host (RFC 9112 3.2.2): req->host
 * and the Host entry the app reads both carry it, whatever Host said. */
static void test_absolute_form_host(void **st)
{
    parsed p;
    const char *s = "GET http://example.com:8080/x/y?q=1 HTTP/1.1\r\nX-A: 1\r\n"
                    "Host: other.example\r\nX-B: 2\r\n\r\n";
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(eqs(p.req.host, p.req.host_len, "example.com:8080"));
    assert_int_equal(p.req.num_headers, 3);
    assert_true(eqs(p.hdr[1].name, p.hdr[1].name_len, "Host"));
    assert_true(eqs(p.hdr[1].value, p.hdr[1].value_len, "example.com:8080"));
    assert_true(eqs(p.hdr[2].value, p.hdr[2].value_len, "2"));
    assert_true(eqs(p.req.path, p.req.path_len, "/x/y"));
    assert_true(eqs(p.req.query, p.req.query_len, "q=1"));
    assert_true(eqs(p.req.target, p.req.target_len, "http://example.com:8080/x/y?q=1"));

    /* HTTP/1.0 without Host: an entry is added while the array has room */
    s = "GET https://[::1]:8443 HTTP/1.0\r\nX-A: 1\r\n\r\n";
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(eqs(p.req.host, p.req.host_len, "[::1]:8443"));
    assert_int_equal(p.req.num_headers, 2);
    assert_true(eqs(p.hdr[1].name, p.hdr[1].name_len, "Host"));
    assert_true(eqs(p.hdr[1].value, p.hdr[1].value_len, "[::1]:8443"));
    assert_true(eqs(p.req.path, p.req.path_len, "/"));
    assert_int_equal(parse_n(&p, s, strlen(s), 1, &LIM), (int)strlen(s));
    assert_int_equal(p.req.num_headers, 1);
    assert_true(eqs(p.req.host, p.req.host_len, "[::1]:8443"));

    /* origin-form: the Host field as sent */
    s = "GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n";
    assert_int_equal(parse_n(&p, s, strlen(s), 8, &LIM), (int)strlen(s));
    assert_true(eqs(p.req.host, p.req.host_len, "a.example"));
    assert_true(eqs(p.hdr[0].value, p.hdr[0].value_len, "a.example"));

    /* still one Host at most, and a valid one */
    assert_int_equal(P("GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), -400);
    assert_int_equal(P("GET http://a/ HTTP/1.1\r\nHost: \r\n\r\n"), -400);
    assert_int_equal(P("GET http://a/ HTTP/1.1\r\n\r\n"), -400);
}

static void test_request_line_limit(void **st)
{
    gp_http_limits lim = {16, 8, 64, 0};
    /* "GET /0123456 HTTP/1.1" style: pick targets to land on the limit exactly */
    const char *at = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"; /* 15 bytes of line */
    assert_int_equal(PL(at, &lim, 8), (int)strlen(at));
    const char *exact = "GET /ab HTTP/1.1\r\nHost: h\r\n\r\n"; /* 16 */
    assert_int_equal(PL(exact, &lim, 8), (int)strlen(exact));
    assert_int_equal(PL("GET /abc HTTP/1.1\r\nHost: h\r\n\r\n", &lim, 8), -414);
    /* partial input: 16 bytes is not over, the 17th is */
    assert_int_equal(PL("GET /ab HTTP/1.1", &lim, 8), 0);
    assert_int_equal(PL("GET /abcdefghijkl", &lim, 8), -414);
    assert_int_equal(PL("GET /abcdefghijk", &lim, 8), 0);
    assert_int_equal(PL("GETGETGETGETGETGETGET", &lim, 8), -414);
    /* leading CRLFs do not count */
    assert_int_equal(PL("\r\n\r\nGET /ab HTTP/1.1\r\nHost: h\r\n\r\n", &lim, 8), 33);
}

static void test_field_limits(void **st)
{
    gp_http_limits lim = {64, 3, 10, 0};
    /* "Host: abcd" is 10 bytes */
    const char *ok = "GET / HTTP/1.1\r\nHost: abcd\r\n\r\n";
    assert_int_equal(PL(ok, &lim, 8), (int)strlen(ok));
    assert_int_equal(PL("GET / HTTP/1.1\r\nHost: abcde\r\n\r\n", &lim, 8), -431);
    assert_int_equal(PL("GET / HTTP/1.1\r\nX-Very-Long-Name: 1\r\n\r\n", &lim, 8), -431);
    /* partial */
    assert_int_equal(PL("GET / HTTP/1.1\r\nHost: abcd", &lim, 8), 0);
    assert_int_equal(PL("GET / HTTP/1.1\r\nHost: abcde", &lim, 8), -431);
    assert_int_equal(PL("GET / HTTP/1.1\r\nHost: abcd\r", &lim, 8), 0);
    assert_int_equal(PL("GET / HTTP/1.1\r\nXXXXXXXXXXX", &lim, 8), -431);

    /* count: 3 fields allowed */
    const char *three = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    assert_int_equal(PL(three, &lim, 8), (int)strlen(three));
    assert_int_equal(PL("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &lim, 8),
                     -431);
    assert_int_equal(PL("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC", &lim, 8), -431);
    /* the caller's array is smaller than max_fields */
    assert_int_equal(PL(three, &lim, 2), -431);
    assert_int_equal(PL("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB", &lim, 2), -431);
    assert_int_equal(PL("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n", &lim, 2), 0);
    assert_int_equal(PL("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n\r\n", &lim, 2), 33);
    assert_int_equal(PL("GET / HTTP/1.0\r\n\r\n", &lim, 0), 18);
    assert_int_equal(PL("GET / HTTP/1.0\r\nA: 1\r\n\r\n", &lim, 0), -431);
}

static void test_null_limits(void **st)
{
    parsed p;
    const char *s = H11("");
    assert_int_equal(parse_n(&p, s, strlen(s), 8, NULL), (int)strlen(s));
}

static void test_pointers_inside(void **st)
{
    const char *s = "PUT /p?q HTTP/1.1\r\nHost: h\r\nA: 1\r\nB:\r\nC:  x  \r\n\r\n";
    parsed p;
    size_t n = strlen(s);
    assert_int_equal(parse_n(&p, s, n, 8, &LIM), (int)n);
    const char *lo = s, *hi = s + n;
    assert_true(p.req.method >= lo && p.req.method + p.req.method_len <= hi);
    assert_true(p.req.target >= lo && p.req.target + p.req.target_len <= hi);
    assert_true(p.req.path >= lo && p.req.path + p.req.path_len <= hi);
    assert_true(p.req.query >= lo && p.req.query + p.req.query_len <= hi);
    assert_true(p.req.host >= lo && p.req.host + p.req.host_len <= hi);
    for (size_t i = 0; i < p.req.num_headers; i++) {
        const gp_http_header *h = &p.req.headers[i];
        assert_true(h->name >= lo && h->name + h->name_len <= hi);
        assert_true(h->value >= lo && h->value + h->value_len <= hi);
    }
    assert_true(eqs(p.req.headers[3].value, p.req.headers[3].value_len, "x"));
}

static void test_token_eq(void **st)
{
    assert_true(gp_http_token_eq("Chunked", 7, "chunked"));
    assert_true(gp_http_token_eq("CHUNKED", 7, "chunked"));
    assert_false(gp_http_token_eq("chunke", 6, "chunked"));
    assert_false(gp_http_token_eq("chunkedx", 8, "chunked"));
    assert_false(gp_http_token_eq("chunked", 7, "chunkes"));
    assert_true(gp_http_token_eq("", 0, ""));
    assert_false(gp_http_token_eq("a", 1, ""));
    assert_true(gp_http_token_eq("100-Continue", 12, "100-continue"));
    /* only ASCII letters fold: '@' (0x40) is not '`' (0x60) */
    assert_false(gp_http_token_eq("@", 1, "`"));
    /* a NUL in the input where the literal ends must not match the literal's
     * terminator and read on past it (ASan: the literal is exactly 2 bytes) */
    static const char lit[2] = "a";
    assert_false(gp_http_token_eq("a\0z", 3, lit));
}

/* A 200-byte GET with 5 fields must parse well under a microsecond (optimised
 * build); sanitizer builds are only held to a loose bound. */
static void test_speed(void **st)
{
    const char *s = "GET /api/v1/items?id=12345&sort=desc HTTP/1.1\r\n"
                    "Host: www.example.com\r\n"
                    "User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
                    "Accept: application/json\r\n"
                    "Accept-Encoding: gzip, deflate\r\n"
                    "Connection: keep-alive\r\n"
                    "\r\n";
    size_t n = strlen(s);
    parsed p;
    const int iters = 200000;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int sum = 0;
    for (int i = 0; i < iters; i++) {
        p.req.headers = p.hdr;
        p.req.num_headers = 16;
        sum += gp_http_parse_request(s, n, &p.req, &LIM);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_int_equal(sum, iters * (int)n);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / iters;
    printf("[ INFO     ] %zu-byte GET, 5 fields: %.0f ns per parse\n", n, ns);
    assert_true(ns < 20000.0);
}

/* ---- resuming --------------------------------------------------------------- */

/* Feeds s[0..n) in pieces ending at the given cut points (then the rest),
 * through one state, moving the bytes to a fresh exact-size copy before each
 * call (a buffer that grows) and scribbling over the headers array between
 * calls (a worker shares it). Returns the final status; p holds the result. */
static int feed(parsed *p, const char *s, size_t n, const size_t *cuts, size_t ncuts, size_t cap,
                const gp_http_limits *lim, gp_http_head_state *st, char **keep)
{
    memset(p, 0, sizeof *p);
    char *buf = NULL;
    int r = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t len = k < ncuts ? cuts[k] : n;
        free(buf);
        buf = malloc(len ? len : 1);
        memcpy(buf, s, len);
        memset(p->hdr, 0xa5, sizeof p->hdr);
        p->req.headers = p->hdr;
        p->req.num_headers = cap;
        r = gp_http_parse_head(st, buf, len, &p->req, lim);
        if (r != 0) break;
        assert_int_equal(p->req.num_headers, cap);
    }
    *keep = buf; /* the result points into it */
    return r;
}

/* Every field of two results, as offsets from their own buffers. */
static void same_result(const parsed *a, const char *ba, const parsed *b, const char *bb)
{
    const gp_http_request *x = &a->req, *y = &b->req;
#define SAME_SPAN(f, fl)                                                                           \
    do {                                                                                           \
        assert_int_equal(x->fl, y->fl);                                                            \
        assert_true((x->f == NULL) == (y->f == NULL));                                             \
        if (x->f) assert_memory_equal(x->f, y->f, x->fl);                                          \
    } while (0)
    SAME_SPAN(method, method_len);
    SAME_SPAN(target, target_len);
    SAME_SPAN(path, path_len);
    SAME_SPAN(query, query_len);
    SAME_SPAN(host, host_len);
    assert_int_equal(x->method - ba, y->method - bb);
    assert_int_equal(x->target - ba, y->target - bb);
    assert_int_equal(x->version_minor, y->version_minor);
    assert_int_equal(x->num_headers, y->num_headers);
    assert_int_equal(x->body, y->body);
    assert_true(x->content_length == y->content_length);
    assert_int_equal(x->keep_alive, y->keep_alive);
    assert_int_equal(x->expect_continue, y->expect_continue);
    assert_int_equal(x->upgrade, y->upgrade);
    for (size_t i = 0; i < x->num_headers; i++) {
        assert_int_equal(a->hdr[i].name_len, b->hdr[i].name_len);
        assert_memory_equal(a->hdr[i].name, b->hdr[i].name, a->hdr[i].name_len);
        assert_int_equal(a->hdr[i].value_len, b->hdr[i].value_len);
        assert_memory_equal(a->hdr[i].value, b->hdr[i].value, a->hdr[i].value_len);
    }
#undef SAME_SPAN
}

static const char *const resume_heads[] = {
    "\r\n\r\nPOST /x?y=1 HTTP/1.1\r\nHost: h:80\r\nContent-Length: 5\r\nX-A:   b  c \t\r\n"
    "X-Empty:\r\nX-Ws: \t \r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
    "Expect: 100-continue\r\n\r\n",
    "GET http://a.example:8/c?d HTTP/1.1\r\nX: 1\r\nHost: other\r\nTransfer-Encoding: gzip, "
    "chunked\r\n\r\n",
    "GET http://[::1]/ HTTP/1.0\r\nX: 1\r\n\r\n",
    "PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    "GET / HTTP/1.0\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n c\r\n\r\n",                       /* obs-fold */
    "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n",               /* CL list */
    "GET / HTTP/1.1\r\nHost: h\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n", /* over 32 */
    "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n", /* over 48 */
    "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",       /* 5 fields > 4 */
    "GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX: 1\r\n\r\nGET /next HTTP/1.1\r\n", /* pipelined */
};

/* Splitting a head anywhere, in two or three pieces, gives what parsing it
 * whole gives, errors included. */
static void test_resume_every_split(void **state)
{
    const gp_http_limits lim = {48, 4, 32, 0};
    for (size_t k = 0; k < sizeof resume_heads / sizeof resume_heads[0]; k++) {
        const char *s = resume_heads[k];
        size_t n = strlen(s);
        parsed whole, part;
        int rw = parse_n(&whole, s, n, 5, &lim);
        for (size_t i = 0; i <= n; i++) {
            for (size_t j = i; j <= n; j += (j < i + 3 || j == n) ? 1 : 7) {
                gp_http_head_state st = {0};
                size_t cuts[2] = {i, j};
                char *b;
                int r = feed(&part, s, n, cuts, 2, 5, &lim, &st, &b);
                if (r != rw) fail_msg("head %zu cut at %zu,%zu: %d, whole %d", k, i, j, r, rw);
                if (r > 0) same_result(&whole, s, &part, b);
                free(b);
                assert_int_equal(st.state, 0); /* ready for the next head */
            }
        }
    }
}

/* A head fed one byte at a time is scanned about once, not once per byte:
 * 8 KB of fields in 1-byte pieces costs under 3 bytes scanned per byte (it
 * would be ~4000 per byte rescanning from the start), one long field too. */
static void test_resume_linear(void **state)
{
    static char head[9000];
    size_t n = (size_t)snprintf(head, sizeof head, "GET /a HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; n < 8192 - 100; i++)
        n += (size_t)snprintf(head + n, sizeof head - n, "X-Field-%02d: %070d\r\n", i, i);
    n += (size_t)snprintf(head + n, sizeof head - n, "\r\n");

    static char one[9000];
    size_t m = (size_t)snprintf(one, sizeof one, "GET / HTTP/1.1\r\nHost: h\r\nCookie: ");
    while (m < 8150) one[m++] = 'c';
    m += (size_t)snprintf(one + m, sizeof one - m, "\r\n\r\n");

    const gp_http_limits lim = {8192, 100, 8190, 65536};
    const char *heads[] = {head, one};
    size_t lens[] = {n, m};
    for (int k = 0; k < 2; k++) {
        const char *s = heads[k];
        size_t len = lens[k];
        parsed whole, p;
        assert_int_equal(parse_n(&whole, s, len, 100, &lim), (int)len);
        gp_http_head_state st = {0};
        memset(&p, 0, sizeof p);
        int r = 0;
        for (size_t i = 1; i <= len && r == 0; i++) {
            memset(p.hdr, 0x5a, sizeof p.hdr);
            p.req.headers = p.hdr;
            p.req.num_headers = 100;
            r = gp_http_parse_head(&st, s, i, &p.req, &lim);
            if (i < len) assert_int_equal(r, 0);
        }
        assert_int_equal(r, (int)len);
        same_result(&whole, s, &p, s);
        printf("[ INFO     ] %zu-byte head in 1-byte pieces: %zu bytes scanned\n", len, st.scanned);
        assert_true(st.scanned >= len);
        assert_true(st.scanned < 3 * len);
        /* what a parser without resuming costs: each read rescans from buf[0] */
        if (k == 0) {
            size_t total = 0;
            for (size_t i = 1; i <= len; i++) {
                gp_http_head_state fresh = {0};
                p.req.num_headers = 100;
                gp_http_parse_head(&fresh, s, i, &p.req, &lim);
                total += fresh.scanned;
            }
            printf("[ INFO     ] the same rescanning from the start: %zu bytes scanned\n", total);
            assert_true(total > 1000 * len);
        }
        /* the counter keeps counting across heads; one whole read scans it once */
        size_t before = st.scanned;
        p.req.num_headers = 100;
        assert_int_equal(gp_http_parse_head(&st, s, len, &p.req, &lim), (int)len);
        assert_int_equal(st.scanned - before, len);
    }
}

/* ---- the head budget --------------------------------------------------------- */

static void test_head_budget(void **state)
{
    static char big[70000];
    /* 99 fields of 670 bytes: each within its limit, 66 KB in all */
    size_t n = (size_t)snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 99; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "X-%03d: %0660d\r\n", i, i);
    n += (size_t)snprintf(big + n, sizeof big - n, "\r\n");
    assert_true(n > 65536);
    gp_http_limits lim = {8192, 100, 8190, 65536};
    parsed p;
    assert_int_equal(parse_n(&p, big, n, 100, &lim), -431);
    /* partial: refused once the budget is passed without an end of head */
    assert_int_equal(parse_n(&p, big, 65536, 100, &lim), 0);
    assert_int_equal(parse_n(&p, big, 65537, 100, &lim), -431);
    /* a head of exactly the budget fits; one byte more does not */
    lim.max_head = n;
    assert_int_equal(parse_n(&p, big, n, 100, &lim), (int)n);
    lim.max_head = n - 1;
    assert_int_equal(parse_n(&p, big, n, 100, &lim), -431);
    /* bytes after a head that fits (a pipelined request, a body) do not count */
    lim.max_head = 64;
    const char *s = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n"
                    "0123456789012345678901234567890123456789012345678901234567890123456789";
    assert_int_equal(PL(s, &lim, 8), (int)(strstr(s, "\r\n\r\n") - s + 4));
    /* resuming honours it as well */
    gp_http_head_state st = {0};
    char *b;
    size_t cuts[2] = {1000, 60000};
    lim.max_head = 65536;
    assert_int_equal(feed(&p, big, n, cuts, 2, 100, &lim, &st, &b), -431);
    free(b);
    /* a browser head with 30 KB of cookies in several Cookie lines fits */
    n = (size_t)snprintf(big, sizeof big,
                         "GET /app HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0 "
                         "(X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
                         "Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\n"
                         "Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\n");
    for (int i = 0; i < 4; i++) {
        n += (size_t)snprintf(big + n, sizeof big - n, "Cookie: ");
        for (int c = 0; c < 30; c++)
            n += (size_t)snprintf(big + n, sizeof big - n, "c%d_%d=%0240d; ", i, c, c);
        n += (size_t)snprintf(big + n, sizeof big - n, "z=1\r\n");
    }
    n += (size_t)snprintf(big + n, sizeof big - n, "\r\n");
    assert_true(n > 30000);
    lim.max_fields = 100;
    assert_int_equal(parse_n(&p, big, n, 100, &lim), (int)n);
}

/* ---- chunked decoder --------------------------------------------------------- */

/* Decodes all of `in` in one call; returns the status, fills out/used. */
static int dec_all(const char *in, size_t n, char *out, size_t *out_n, size_t *used)
{
    gp_chunked d = {0};
    size_t cap = *out_n;
    int r = gp_chunked_decode(&d, in, n, used, out, &cap);
    *out_n = cap;
    return r;
}

/* Decodes one byte per call; same outputs as dec_all. */
static int dec_bytes(const char *in, size_t n, char *out, size_t *out_n, size_t *used)
{
    gp_chunked d = {0};
    size_t o = 0, i = 0;
    int r = GP_CHUNKED_MORE;
    while (i < n) {
        size_t u, cap = *out_n - o;
        r = gp_chunked_decode(&d, in + i, 1, &u, out + o, &cap);
        o += cap;
        i += u;
        if (r != GP_CHUNKED_MORE) break;
        assert_int_equal(u, 1);
    }
    *out_n = o;
    *used = i;
    return r;
}

/* Checks the decoded result three ways: at once, byte by byte, and in place. */
static void chunk_ok(const char *in, const char *want, size_t want_used)
{
    size_t n = strlen(in);
    char out[4096], out2[4096];
    size_t on = sizeof out, used;
    assert_int_equal(dec_all(in, n, out, &on, &used), GP_CHUNKED_DONE);
    assert_int_equal(used, want_used);
    assert_int_equal(on, strlen(want));
    assert_memory_equal(out, want, on);

    size_t on2 = sizeof out2, used2;
    assert_int_equal(dec_bytes(in, n, out2, &on2, &used2), GP_CHUNKED_DONE);
    assert_int_equal(used2, want_used);
    assert_int_equal(on2, on);
    assert_memory_equal(out2, want, on2);

    char *buf = malloc(n + 1);
    memcpy(buf, in, n);
    size_t on3 = n, used3;
    assert_int_equal(dec_all(buf, n, buf, &on3, &used3), GP_CHUNKED_DONE);
    assert_int_equal(used3, want_used);
    assert_int_equal(on3, strlen(want));
    assert_memory_equal(buf, want, on3);
    free(buf);
}

static void chunk_err(const char *in, size_t n)
{
    char out[4096];
    size_t on = sizeof out, used;
    assert_int_equal(dec_all(in, n, out, &on, &used), GP_CHUNKED_ERROR);
    on = sizeof out;
    assert_int_equal(dec_bytes(in, n, out, &on, &used), GP_CHUNKED_ERROR);
}

#define CHUNK_ERR(s) chunk_err(s, sizeof(s) - 1)

static void test_chunked_basic(void **st)
{
    const char *s = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    chunk_ok(s, "hello world", strlen(s));
    chunk_ok("0\r\n\r\n", "", 5);
    s = "a\r\n0123456789\r\nA\r\nabcdefghij\r\n1\r\n!\r\n0\r\n\r\n";
    chunk_ok(s, "0123456789abcdefghij!", strlen(s));
    s = "0000B\r\nhello world\r\n000\r\n\r\n";
    chunk_ok(s, "hello world", strlen(s));
    s = "f\r\n0123456789abcde\r\nF\r\n0123456789ABCDE\r\n0\r\n\r\n";
    chunk_ok(s, "0123456789abcde0123456789ABCDE", strlen(s));
}

static void test_chunked_extensions(void **st)
{
    const char *s = "5;foo=bar\r\nhello\r\n0;last\r\n\r\n";
    chunk_ok(s, "hello", strlen(s));
    s = "5 ; a = \"q \\\"x\\\\ ;\" ; b ;c=d\t;e\r\nhello\r\n0\r\n\r\n";
    chunk_ok(s, "hello", strlen(s));
    s = "5;a=\"\"\r\nhello\r\n0\r\n\r\n";
    chunk_ok(s, "hello", strlen(s));
    s = "5;a=\"caf\xc3\xa9\"\r\nhello\r\n0\r\n\r\n";
    chunk_ok(s, "hello", strlen(s));

    CHUNK_ERR("5;\r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("5;=x\r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("5;a=\r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("5;a=\"open\r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("5 \r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("5;a \r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("5;a=b c\r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("5;a=b \r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("5;a=\"b\"c\r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("5;a=\"b\" \r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("5;a\x01\r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("5;a=\"\x7f\"\r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("5;a=b,c\r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("5,a\r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("5;a\n\r\nhello\r\n0\r\n\r\n");

    /* the size line is bounded at 4096 bytes */
    char big[5000];
    size_t n = 0;
    memcpy(big, "1;a=", 4);
    n = 4;
    while (n < 4096) big[n++] = 'x';
    memcpy(big + n, "\r\nZ\r\n0\r\n\r\n", 11);
    chunk_ok(big, "Z", n + 10);
    memmove(big + n + 1, big + n, 11);
    big[n] = 'x';
    chunk_err(big, strlen(big));
}

static void test_chunked_size_errors(void **st)
{
    CHUNK_ERR("\r\n");
    CHUNK_ERR(" 5\r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("0x5\r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("+5\r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("-5\r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("g\r\n");
    CHUNK_ERR(";a\r\n");
    CHUNK_ERR("5\nhello\r\n0\r\n\r\n"); /* bare LF */
    CHUNK_ERR("5\rhello\r\n0\r\n\r\n"); /* CR without LF */
    CHUNK_ERR("FFFFFFFFFFFFFFFFF\r\n"); /* 17 digits */
    CHUNK_ERR("FFFFFFFFFFFFFFFF\r\n");  /* 2^64 - 1 */
    CHUNK_ERR("8000000000000000\r\n");  /* 2^63 */
    /* 2^63 - 1 is a legal size: the decoder waits for data */
    gp_chunked d = {0};
    const char *s = "7fffffffffffffff\r\nab";
    char out[8];
    size_t used, on = sizeof out;
    assert_int_equal(gp_chunked_decode(&d, s, strlen(s), &used, out, &on), GP_CHUNKED_MORE);
    assert_int_equal(used, strlen(s));
    assert_int_equal(on, 2);
    assert_true(d.chunk_left == (uint64_t)INT64_MAX - 2);
}

static void test_chunked_data_crlf(void **st)
{
    CHUNK_ERR("5\r\nhelloX\r\n0\r\n\r\n");
    CHUNK_ERR("5\r\nhello\n0\r\n\r\n");
    CHUNK_ERR("5\r\nhello\r0\r\n\r\n");
    CHUNK_ERR("5\r\nhello0\r\n\r\n");
    CHUNK_ERR("5\r\nhello\r\n\r\n0\r\n\r\n");
    CHUNK_ERR("3\r\nhello\r\n0\r\n\r\n");
    CHUNK_ERR("0\r\n\n");
    CHUNK_ERR("0\r\n\r\r");
    CHUNK_ERR("0\n\r\n");
}

static void test_chunked_trailers(void **st)
{
    const char *s = "5\r\nhello\r\n0\r\nX-Expires: never\r\nX-Sum:  abc \t\r\nX-E:\r\n\r\n";
    chunk_ok(s, "hello", strlen(s));
    CHUNK_ERR("0\r\n Folded: x\r\n\r\n");
    CHUNK_ERR("0\r\nA: b\r\n c\r\n\r\n");
    CHUNK_ERR("0\r\nA : b\r\n\r\n");
    CHUNK_ERR("0\r\n: b\r\n\r\n");
    CHUNK_ERR("0\r\nNoColon\r\n\r\n");
    CHUNK_ERR("0\r\nA: b\n\r\n");
    CHUNK_ERR("0\r\nA: b\rc\r\n\r\n");
    CHUNK_ERR("0\r\nA: \x7f\r\n\r\n");
    chunk_err("0\r\nA: x\0y\r\n\r\n", 14);

    /* trailers are bounded to 16384 bytes in total */
    static char big[20000];
    size_t n = 0;
    memcpy(big, "0\r\n", 3);
    n = 3;
    while (n < 3 + 16384) {
        memcpy(big + n, "X-Pad: 0123456789012345678901234567890123456789\r\n", 49);
        n += 49;
    }
    memcpy(big + n, "\r\n", 3);
    chunk_err(big, n + 2);

    n = 3;
    while (n < 3 + 16384 - 49 - 2) {
        memcpy(big + n, "X-Pad: 0123456789012345678901234567890123456789\r\n", 49);
        n += 49;
    }
    memcpy(big + n, "\r\n", 3);
    chunk_ok(big, "", n + 2);
}

/* Fields that would change the request if a proxy merged them into the head
 * must not come as trailers (RFC 9110 6.5.1). */
static void test_chunked_forbidden_trailers(void **state)
{
    static const char *const names[] = {
        "Content-Length",
        "transfer-encoding",
        "Trailer",
        "Host",
        "HOST",
        "Connection",
        "TE",
        "Upgrade",
        "Keep-Alive",
        "Cache-Control",
        "Expect",
        "Range",
        "If-Match",
        "If-Modified-Since",
        "Max-Forwards",
        "Authorization",
        "Proxy-Authorization",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Content-Encoding",
        "Content-Type",
        "Content-Range",
        "Age",
        "Expires",
        "Location",
        "Retry-After",
        "Vary",
        "Pragma",
    };
    char in[256];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int k = snprintf(in, sizeof in, "3\r\nabc\r\n0\r\nX-Ok: 1\r\n%s: 5\r\n\r\n", names[i]);
        chunk_err(in, (size_t)k);
    }
    /* names that only look alike are fine */
    static const char *const ok[] = {"X-Content-Length",
                                     "Content-Lengths",
                                     "Hosts",
                                     "T",
                                     "Date",
                                     "X-Checksum",
                                     "Server-Timing",
                                     "A-Very-Long-Trailer-Name-Beyond-The-Buffer"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int k = snprintf(in, sizeof in, "3\r\nabc\r\n0\r\n%s: 5\r\n\r\n", ok[i]);
        chunk_ok(in, "abc", (size_t)k);
    }
}

static void test_chunked_pipelined(void **st)
{
    const char *body = "3\r\nabc\r\n0\r\nT: v\r\n\r\n";
    char buf[256];
    snprintf(buf, sizeof buf, "%sGET / HTTP/1.1\r\n", body);
    char out[64];
    size_t on = sizeof out, used;
    assert_int_equal(dec_all(buf, strlen(buf), out, &on, &used), GP_CHUNKED_DONE);
    assert_int_equal(used, strlen(body));
    assert_int_equal(on, 3);
    on = sizeof out;
    assert_int_equal(dec_bytes(buf, strlen(buf), out, &on, &used), GP_CHUNKED_DONE);
    assert_int_equal(used, strlen(body));

    /* once done (or failed) it stays so and consumes nothing */
    gp_chunked d = {0};
    on = sizeof out;
    assert_int_equal(gp_chunked_decode(&d, buf, strlen(buf), &used, out, &on), GP_CHUNKED_DONE);
    on = sizeof out;
    assert_int_equal(gp_chunked_decode(&d, buf, strlen(buf), &used, out, &on), GP_CHUNKED_DONE);
    assert_int_equal(used, 0);
    assert_int_equal(on, 0);
    gp_chunked e = {0};
    on = sizeof out;
    assert_int_equal(gp_chunked_decode(&e, "x", 1, &used, out, &on), GP_CHUNKED_ERROR);
    on = sizeof out;
    assert_int_equal(gp_chunked_decode(&e, "0\r\n\r\n", 5, &used, out, &on), GP_CHUNKED_ERROR);
}

static void test_chunked_out_full(void **st)
{
    const char *s = "a\r\n0123456789\r\n3\r\nabc\r\n0\r\n\r\n";
    size_t n = strlen(s), i = 0;
    gp_chunked d = {0};
    char out[64];
    size_t o = 0;
    int r = GP_CHUNKED_MORE, calls = 0;
    while (r == GP_CHUNKED_MORE) {
        size_t used, cap = 4; /* out holds only 4 bytes per call */
        if (o + cap > sizeof out) cap = sizeof out - o;
        r = gp_chunked_decode(&d, s + i, n - i, &used, out + o, &cap);
        assert_true(cap <= 4);
        if (r == GP_CHUNKED_MORE && i + used < n)
            assert_int_equal(cap, 4); /* stopped early only because out was full */
        i += used;
        o += cap;
        assert_true(++calls < 20);
    }
    assert_int_equal(r, GP_CHUNKED_DONE);
    assert_int_equal(i, n);
    assert_int_equal(o, 13);
    assert_memory_equal(out, "0123456789abc", 13);

    /* zero capacity: framing may advance, data may not */
    gp_chunked z = {0};
    size_t used, cap = 0;
    assert_int_equal(gp_chunked_decode(&z, s, n, &used, out, &cap), GP_CHUNKED_MORE);
    assert_int_equal(used, 3);
    assert_int_equal(cap, 0);
}

static void test_chunked_every_split(void **st)
{
    const char *s =
        "4;x=\"y\"\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nA: b\r\n\r\n";
    const char *want = "Wikipedia in\r\n\r\nchunks.";
    size_t n = strlen(s);
    for (size_t k = 0; k <= n; k++) {
        gp_chunked d = {0};
        char buf[128];
        memcpy(buf, s, n); /* in place, split in two calls at k */
        size_t u1, o1 = n, u2, o2;
        int r1 = gp_chunked_decode(&d, buf, k, &u1, buf, &o1);
        assert_int_equal(r1, k == n ? GP_CHUNKED_DONE : GP_CHUNKED_MORE);
        assert_int_equal(u1, k);
        o2 = n - o1;
        int r2 = gp_chunked_decode(&d, buf + k, n - k, &u2, buf + o1, &o2);
        assert_int_equal(r2, GP_CHUNKED_DONE);
        if (k < n) assert_int_equal(u2, n - k);
        assert_int_equal(o1 + o2, strlen(want));
        assert_memory_equal(buf, want, strlen(want));
    }
}

/* ---- overreads ----------------------------------------------------------------- */

/* Puts the input so that its last byte is the last readable byte of a page: any
 * read past `len` faults instead of silently passing. */
static void test_guard_page(void **st)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *m =
        mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect(m + pg, (size_t)pg, PROT_NONE), 0);
    char *end = m + pg;

    const char *heads[] = {
        "\r\n\r\nGET /a?b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nX: y  \r\n\r\n",
        "CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET http://h HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    };
    for (size_t k = 0; k < sizeof heads / sizeof heads[0]; k++) {
        size_t n = strlen(heads[k]);
        for (size_t i = 0; i <= n; i++) {
            char *b = end - i;
            memcpy(b, heads[k], i);
            parsed p;
            int r = parse_n(&p, b, i, 8, &LIM);
            assert_int_equal(r, i == n ? (int)n : 0);
        }
    }
    /* truncated errors also stop at the end */
    const char *bad[] = {"GET / HTTP/1.1\r", "GET / HTTP/1.1\r\nHost: h\r", "GET /x HTTP/1."};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        size_t n = strlen(bad[k]);
        memcpy(end - n, bad[k], n);
        assert_int_equal(PN(end - n, n), 0);
    }

    const char *body = "5;a=\"b\"\r\nhello\r\n0\r\nT: x\r\n\r\n";
    size_t n = strlen(body);
    for (size_t i = 0; i <= n; i++) {
        char *b = end - i;
        memcpy(b, body, i);
        gp_chunked d = {0};
        char out[64];
        size_t used, on = sizeof out;
        int r = gp_chunked_decode(&d, b, i, &used, out, &on);
        assert_int_equal(r, i == n ? GP_CHUNKED_DONE : GP_CHUNKED_MORE);
        assert_int_equal(used, i);
    }
    munmap(m, (size_t)pg * 2);
}

static void test_percent_decode(void **state)
{
    (void)state;
    char out[64];
    size_t n = gp_http_percent_decode(out, "/a%20b%2Fc%zz%4", 15);
    assert_int_equal(n, 11);
    assert_memory_equal(out, "/a b/c%zz%4", 11);
    char in_place[] = "%41%42%43%";
    n = gp_http_percent_decode(in_place, in_place, 10);
    assert_int_equal(n, 4);
    assert_memory_equal(in_place, "ABC%", 4);
    n = gp_http_percent_decode(out, "%e2%82%AC", 9);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "\xe2\x82\xac", 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_target_forms),
        cmocka_unit_test(test_bad_target_forms),
        cmocka_unit_test(test_bad_target_bytes),
        cmocka_unit_test(test_post_content_length),
        cmocka_unit_test(test_bad_content_length),
        cmocka_unit_test(test_chunked_head),
        cmocka_unit_test(test_transfer_encoding_rejections),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_expect),
        cmocka_unit_test(test_proxy_headers_hint),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_leading_crlf),
        cmocka_unit_test(test_request_line_rejections),
        cmocka_unit_test(test_field_rejections),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_host_syntax),
        cmocka_unit_test(test_absolute_form_host),
        cmocka_unit_test(test_request_line_limit),
        cmocka_unit_test(test_field_limits),
        cmocka_unit_test(test_null_limits),
        cmocka_unit_test(test_pointers_inside),
        cmocka_unit_test(test_token_eq),
        cmocka_unit_test(test_speed),
        cmocka_unit_test(test_resume_every_split),
        cmocka_unit_test(test_resume_linear),
        cmocka_unit_test(test_head_budget),
        cmocka_unit_test(test_chunked_forbidden_trailers),
        cmocka_unit_test(test_chunked_basic),
        cmocka_unit_test(test_chunked_extensions),
        cmocka_unit_test(test_chunked_size_errors),
        cmocka_unit_test(test_chunked_data_crlf),
        cmocka_unit_test(test_chunked_trailers),
        cmocka_unit_test(test_chunked_pipelined),
        cmocka_unit_test(test_chunked_out_full),
        cmocka_unit_test(test_chunked_every_split),
        cmocka_unit_test(test_guard_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
