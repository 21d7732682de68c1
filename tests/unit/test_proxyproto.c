/* Unit tests for core/proxyproto: PROXY protocol v1 lines and v2 binary
 * headers, whole, a byte at a time, and refused when wrong or too long. Each
 * input is parsed from an exact-size heap copy, so ASan sees any overread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core/proxyproto.h"

static int parse_copy(gp_pp_state *st, const void *src, size_t len, gp_pp_result *out)
{
    char *b = malloc(len ? len : 1);
    memcpy(b, src, len);
    int r = gp_pp_parse(st, b, len, out);
    free(b);
    return r;
}

/* Whole, then fed one byte more each call: the same answer at the end, 0 before. */
static int parse_both(const void *src, size_t len, gp_pp_result *out)
{
    gp_pp_state st = {0};
    int whole = parse_copy(&st, src, len, out);
    gp_pp_state inc = {0};
    gp_pp_result r2;
    int last = 0;
    for (size_t k = 1; k <= len; k++) {
        last = parse_copy(&inc, src, k, &r2);
        if (last != 0) {
            if (last > 0) assert_int_equal(k, (size_t)last); /* not before it is whole */
            break;
        }
    }
    if (whole > 0) {
        assert_int_equal(last, whole);
        assert_int_equal(r2.src_len, out->src_len);
        assert_memory_equal(&r2.src, &out->src, out->src_len);
    } else if (whole < 0) {
        assert_int_equal(last, -1);
    }
    return whole;
}

static void assert_v4(const gp_pp_result *r, const char *ip, int port)
{
    const struct sockaddr_in *s = (const struct sockaddr_in *)&r->src;
    char buf[64];
    assert_int_equal(s->sin_family, AF_INET);
    assert_string_equal(inet_ntop(AF_INET, &s->sin_addr, buf, sizeof buf), ip);
    assert_int_equal(ntohs(s->sin_port), port);
}

static void assert_v6(const gp_pp_result *r, const char *ip, int port)
{
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&r->src;
    char buf[64];
    assert_int_equal(s->sin6_family, AF_INET6);
    assert_string_equal(inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof buf), ip);
    assert_int_equal(ntohs(s->sin6_port), port);
}

static void test_v1(void **st)
{
    gp_pp_result r;
    const char *a = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
    assert_int_equal(parse_both(a, strlen(a), &r), 45);
    assert_v4(&r, "192.0.2.1", 56324);
    const char *b = "PROXY TCP6 2001:db8::1 ::1 0 65535\r\n";
    assert_int_equal(parse_both(b, strlen(b), &r), (int)strlen(b));
    assert_v6(&r, "2001:db8::1", 0);
    const char *c = "PROXY UNKNOWN\r\n";
    assert_int_equal(parse_both(c, strlen(c), &r), (int)strlen(c));
    assert_int_equal(r.src.ss_family, AF_UNSPEC);
    const char *d = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
    assert_int_equal(parse_both(d, strlen(d), &r), (int)strlen(d));
    assert_int_equal(r.src.ss_family, AF_UNSPEC);
    /* the longest line there is: 107 bytes */
    const char *e = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_int_equal(strlen(e), GP_PP_V1_MAX);
    assert_int_equal(parse_both(e, strlen(e), &r), GP_PP_V1_MAX);
    const char *f = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe 65535 65535\r\n";
    assert_int_equal(parse_both(f, strlen(f), &r), (int)strlen(f));
    assert_v6(&r, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
}

static void test_v1_bad(void **st)
{
    const char *bad[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        "PROXY TCP4 ::1 ::1 1 2\r\n",
        "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY UNKNOWNX\r\n",
        "PROXY \r\n",
        "PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n",
    };
    gp_pp_result r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(parse_both(bad[i], strlen(bad[i]), &r), -1);
    /* no LF within 107 bytes */
    char longl[200];
    memset(longl, 'x', sizeof longl);
    memcpy(longl, "PROXY UNKNOWN ", 14);
    assert_int_equal(parse_both(longl, sizeof longl, &r), -1);
    gp_pp_state s = {0};
    assert_int_equal(parse_copy(&s, longl, 106, &r), 0);
    assert_int_equal(parse_copy(&s, longl, 107, &r), -1);
    /* the first wrong byte is enough */
    gp_pp_state s2 = {0};
    assert_int_equal(parse_copy(&s2, "G", 1, &r), -1);
    gp_pp_state s3 = {0};
    assert_int_equal(parse_copy(&s3, "PROX", 4, &r), 0);
    assert_int_equal(parse_copy(&s3, "", 0, &r), 0);
}

static size_t v2(unsigned char *b, unsigned ver_cmd, unsigned fam, const void *addr, size_t alen,
                 size_t tlv)
{
    memcpy(b, "\r\n\r\n\0\r\nQUIT\n", 12);
    b[12] = (unsigned char)ver_cmd;
    b[13] = (unsigned char)fam;
    size_t body = alen + tlv;
    b[14] = (unsigned char)(body >> 8);
    b[15] = (unsigned char)body;
    if (alen) memcpy(b + 16, addr, alen);
    memset(b + 16 + alen, 0x5a, tlv);
    return 16 + body;
}

static void test_v2(void **st)
{
    unsigned char b[GP_PP_MAX + 64], a4[12], a6[36], au[216];
    gp_pp_result r;
    inet_pton(AF_INET, "203.0.113.9", a4);
    inet_pton(AF_INET, "10.0.0.1", a4 + 4);
    a4[8] = 0x30, a4[9] = 0x39; /* 12345 */
    a4[10] = 0, a4[11] = 80;
    size_t n = v2(b, 0x21, 0x11, a4, sizeof a4, 0);
    assert_int_equal(parse_both(b, n, &r), 28);
    assert_v4(&r, "203.0.113.9", 12345);
    /* with TLVs, and the request right behind it */
    n = v2(b, 0x21, 0x11, a4, sizeof a4, 100);
    memcpy(b + n, "GET /", 5);
    assert_int_equal(parse_both(b, n + 5, &r), (int)n);
    assert_v4(&r, "203.0.113.9", 12345);
    inet_pton(AF_INET6, "2001:db8::7", a6);
    memset(a6 + 16, 0, 16);
    a6[32] = 0x01, a6[33] = 0x00; /* 256 */
    a6[34] = 0, a6[35] = 80;
    n = v2(b, 0x21, 0x21, a6, sizeof a6, 0);
    assert_int_equal(parse_both(b, n, &r), 52);
    assert_v6(&r, "2001:db8::7", 256);
    /* LOCAL (a health check): no address, whatever the family */
    n = v2(b, 0x20, 0x11, a4, sizeof a4, 0);
    assert_int_equal(parse_both(b, n, &r), (int)n);
    assert_int_equal(r.src.ss_family, AF_UNSPEC);
    n = v2(b, 0x20, 0x00, NULL, 0, 0);
    assert_int_equal(parse_both(b, n, &r), 16);
    assert_int_equal(r.src.ss_family, AF_UNSPEC);
    /* PROXY over UNIX and UNSPEC: the connection's own peer stands */
    memset(au, 0, sizeof au);
    n = v2(b, 0x21, 0x31, au, sizeof au, 0);
    assert_int_equal(parse_both(b, n, &r), (int)n);
    assert_int_equal(r.src.ss_family, AF_UNSPEC);
    n = v2(b, 0x21, 0x00, NULL, 0, 0);
    assert_int_equal(parse_both(b, n, &r), 16);
    /* the largest accepted */
    n = v2(b, 0x21, 0x11, a4, sizeof a4, GP_PP_MAX - 16 - sizeof a4);
    assert_int_equal(parse_both(b, n, &r), GP_PP_MAX);
}

static void test_v2_bad(void **st)
{
    unsigned char b[GP_PP_MAX + 64], a4[12] = {0};
    gp_pp_result r;
    size_t n = v2(b, 0x11, 0x11, a4, sizeof a4, 0); /* version 1 in a v2 header */
    assert_int_equal(parse_both(b, n, &r), -1);
    n = v2(b, 0x22, 0x11, a4, sizeof a4, 0); /* command 2 */
    assert_int_equal(parse_both(b, n, &r), -1);
    n = v2(b, 0x21, 0x12, a4, sizeof a4, 0); /* UDP */
    assert_int_equal(parse_both(b, n, &r), -1);
    n = v2(b, 0x21, 0x41, a4, sizeof a4, 0); /* family 4 */
    assert_int_equal(parse_both(b, n, &r), -1);
    n = v2(b, 0x21, 0x21, a4, sizeof a4, 0); /* IPv6 needs 36 bytes */
    assert_int_equal(parse_both(b, n, &r), -1);
    n = v2(b, 0x21, 0x11, a4, 8, 0); /* IPv4 needs 12 */
    assert_int_equal(parse_both(b, n, &r), -1);
    n = v2(b, 0x21, 0x11, a4, sizeof a4, GP_PP_MAX - 16 - sizeof a4 + 1); /* too long */
    gp_pp_state s = {0};
    assert_int_equal(parse_copy(&s, b, 16, &r), -1); /* known as soon as the length is */
    memcpy(b, "\r\n\r\n\0\r\nQUIX\n", 12);           /* signature */
    gp_pp_state s2 = {0};
    assert_int_equal(parse_copy(&s2, b, 11, &r), -1);
    gp_pp_state s3 = {0};
    assert_int_equal(parse_copy(&s3, b, 10, &r), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_v1_bad),
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_v2_bad),
    };
    return cmocka_run_group_tests_name("proxyproto", tests, NULL, NULL);
}
