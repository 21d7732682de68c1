/* Unit tests for core/forwarded: the --forwarded-allow-ips list (addresses,
 * networks, "*", "unix") and what X-Forwarded-* and RFC 7239 Forwarded say,
 * right-most untrusted hop first, malformed values ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "core/forwarded.h"

static gp_fwd_trust trust(const char *spec)
{
    gp_fwd_trust t;
    char err[200];
    assert_int_equal(gp_fwd_trust_parse(&t, spec, err, sizeof err), 0);
    return t;
}

static bool trusts4(const gp_fwd_trust *t, const char *ip)
{
    struct sockaddr_in s = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, ip, &s.sin_addr), 1);
    return gp_fwd_trusts(t, (struct sockaddr *)&s);
}

static bool trusts6(const gp_fwd_trust *t, const char *ip)
{
    struct sockaddr_in6 s = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET6, ip, &s.sin6_addr), 1);
    return gp_fwd_trusts(t, (struct sockaddr *)&s);
}

static bool trusts_unix(const gp_fwd_trust *t)
{
    struct sockaddr_un s = {.sun_family = AF_UNIX};
    return gp_fwd_trusts(t, (struct sockaddr *)&s);
}

static void test_trust_default(void **st)
{
    gp_fwd_trust t = trust("127.0.0.1,::1");
    assert_true(trusts4(&t, "127.0.0.1"));
    assert_false(trusts4(&t, "127.0.0.2"));
    assert_true(trusts6(&t, "::1"));
    assert_true(trusts6(&t, "::ffff:127.0.0.1")); /* a v4 peer on a dual-stack socket */
    assert_false(trusts6(&t, "::2"));
    assert_false(trusts_unix(&t));
}

static void test_trust_networks(void **st)
{
    gp_fwd_trust t = trust(" 10.0.0.0/8 , 192.168.1.128/25,fd00::/8, unix ");
    assert_true(trusts4(&t, "10.255.1.2"));
    assert_false(trusts4(&t, "11.0.0.1"));
    assert_true(trusts4(&t, "192.168.1.200"));
    assert_false(trusts4(&t, "192.168.1.127"));
    assert_true(trusts6(&t, "fd12::1"));
    assert_false(trusts6(&t, "fe80::1"));
    assert_true(trusts_unix(&t));
    gp_fwd_trust z = trust("0.0.0.0/0");
    assert_true(trusts4(&z, "8.8.8.8"));
    assert_false(trusts6(&z, "2001:db8::1")); /* an IPv4 network holds no IPv6 */
    gp_fwd_trust all = trust("*");
    assert_true(trusts4(&all, "8.8.8.8"));
    assert_true(trusts6(&all, "2001:db8::1"));
    assert_true(trusts_unix(&all));
    gp_fwd_trust none = trust("");
    assert_false(trusts4(&none, "127.0.0.1"));
}

static void test_trust_bad(void **st)
{
    const char *bad[] = {"localhost", "10.0.0.0/33", "::/129",       "1.2.3.4/", "1.2.3.4/x",
                         "1.2.3",     "[::1]",       "10.0.0.0/8/8", "unix:",    "1.2.3.4 5.6.7.8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gp_fwd_trust t;
        char err[200] = "";
        assert_int_equal(gp_fwd_trust_parse(&t, bad[i], err, sizeof err), -1);
        assert_non_null(strstr(err, "--forwarded-allow-ips"));
    }
    char many[64 * 12] = "";
    for (int i = 0; i < 40; i++) sprintf(many + strlen(many), "10.0.0.%d,", i);
    gp_fwd_trust t;
    char err[200];
    assert_int_equal(gp_fwd_trust_parse(&t, many, err, sizeof err), -1);
    assert_non_null(strstr(err, "too many"));
}

/* Resolves headers given as "Name: value" strings. */
static bool resolve(const gp_fwd_trust *t, gp_fwd *out, const char *host, int n, ...)
{
    gp_http_header h[16];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *s = va_arg(ap, const char *);
        const char *colon = strchr(s, ':');
        h[i].name = s;
        h[i].name_len = (size_t)(colon - s);
        h[i].value = colon + 2;
        h[i].value_len = strlen(colon + 2);
    }
    va_end(ap);
    return gp_fwd_resolve(t, h, (size_t)n, host, host ? strlen(host) : 0, out);
}

static void assert_host(const gp_fwd *f, const char *want)
{
    assert_true(f->set & GP_FWD_HOST);
    assert_int_equal(f->host_len, strlen(want));
    assert_memory_equal(f->host, want, f->host_len);
}

static void test_no_proxy_headers(void **st)
{
    gp_fwd_trust t = trust("127.0.0.1");
    gp_fwd f;
    assert_false(resolve(&t, &f, "h", 0));
    assert_false(resolve(&t, &f, "h", 3, "Host: h", "Accept-Encoding: gzip", "X-Forwarded: x"));
    assert_false(resolve(&t, &f, "h", 2, "X-Forwarded-Fo: 1.2.3.4", "Forwardedd: for=1.2.3.4"));
    assert_int_equal(f.set, 0);
}

static void test_xff_rightmost_untrusted(void **st)
{
    gp_fwd_trust t = trust("127.0.0.1,10.0.0.0/8");
    gp_fwd f;
    assert_true(resolve(&t, &f, NULL, 1, "X-Forwarded-For: 6.6.6.6, 1.2.3.4, 10.0.0.7"));
    assert_int_equal(f.set, GP_FWD_FOR);
    assert_string_equal(f.client, "1.2.3.4");
    assert_int_equal(f.client_port, 0);
    /* over several lines, the last line is the nearest hop */
    assert_true(resolve(&t, &f, NULL, 3, "x-forwarded-for: 6.6.6.6", "Host: h",
                        "X-FORWARDED-FOR: 5.5.5.5 ,10.1.1.1"));
    assert_string_equal(f.client, "5.5.5.5");
    /* every hop trusted: the left-most */
    assert_true(resolve(&t, &f, NULL, 1, "X-Forwarded-For: 10.0.0.1, 127.0.0.1"));
    assert_string_equal(f.client, "10.0.0.1");
    /* ports and IPv6, canonical text */
    assert_true(resolve(&t, &f, NULL, 1, "X-Forwarded-For: [2001:DB8:0::1]:4711"));
    assert_string_equal(f.client, "2001:db8::1");
    assert_int_equal(f.client_port, 4711);
    assert_true(resolve(&t, &f, NULL, 1, "X-Forwarded-For: 2001:db8::2"));
    assert_string_equal(f.client, "2001:db8::2");
    assert_true(resolve(&t, &f, NULL, 1, "X-Forwarded-For: 1.2.3.4:8080"));
    assert_string_equal(f.client, "1.2.3.4");
    assert_int_equal(f.client_port, 8080);
    /* empty list elements are no hops */
    assert_true(resolve(&t, &f, NULL, 1, "X-Forwarded-For: 1.2.3.4, ,"));
    assert_string_equal(f.client, "1.2.3.4");
}

static void test_xff_all_trusted(void **st)
{
    gp_fwd_trust t = trust("*");
    gp_fwd f;
    assert_true(resolve(&t, &f, NULL, 1, "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3"));
    assert_string_equal(f.client, "1.1.1.1"); /* as uvicorn: the left-most */
}

static void test_xff_malformed(void **st)
{
    gp_fwd_trust t = trust("127.0.0.1,10.0.0.0/8");
    gp_fwd f;
    const char *bad[] = {"X-Forwarded-For: junk",
                         "X-Forwarded-For: 1.2.3.4.5",
                         "X-Forwarded-For: unknown",
                         "X-Forwarded-For: 1.2.3.4:99999",
                         "X-Forwarded-For: [1.2.3.4]",
                         "X-Forwarded-For: fe80::1%eth0",
                         "X-Forwarded-For: 1.2.3.4, junk, 10.0.0.1",
                         "X-Forwarded-For: [::1",
                         "X-Forwarded-For: 1.2.3.4:",
                         "X-Forwarded-For: 1.2.3.4:+80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(resolve(&t, &f, NULL, 1, bad[i]));
        assert_int_equal(f.set, 0);
    }
    /* a bad hop to the left of the client is never looked at */
    assert_true(resolve(&t, &f, NULL, 1, "X-Forwarded-For: junk, 1.2.3.4, 10.0.0.1"));
    assert_string_equal(f.client, "1.2.3.4");
}

static void test_x_proto_host_port_prefix(void **st)
{
    gp_fwd_trust t = trust("127.0.0.1");
    gp_fwd f;
    assert_true(resolve(&t, &f, "internal:8000", 4, "X-Forwarded-Proto: HTTPS",
                        "X-Forwarded-Host: example.com", "X-Forwarded-Port: 8443",
                        "X-Forwarded-Prefix: /app/"));
    assert_int_equal(f.set, GP_FWD_PROTO | GP_FWD_HOST | GP_FWD_PORT | GP_FWD_PREFIX);
    assert_true(f.secure);
    assert_host(&f, "example.com:8443");
    assert_int_equal(f.port, 8443);
    assert_int_equal(f.prefix_len, 4);
    assert_memory_equal(f.prefix, "/app", 4);
    /* the scheme's own port is not written into the Host */
    assert_true(
        resolve(&t, &f, "internal:8000", 2, "X-Forwarded-Proto: https", "X-Forwarded-Port: 443"));
    assert_host(&f, "internal");
    assert_true(resolve(&t, &f, "[::1]:8000", 1, "X-Forwarded-Port: 8080"));
    assert_host(&f, "[::1]:8080");
    assert_false(f.secure);
    assert_true(resolve(&t, &f, NULL, 1, "X-Forwarded-Port: 8080"));
    assert_int_equal(f.set, GP_FWD_PORT); /* no Host to put it in */
    /* lists: the right-most value, the nearest proxy's */
    assert_true(resolve(&t, &f, NULL, 2, "X-Forwarded-Proto: http, https",
                        "X-Forwarded-Host: a.example, b.example:81"));
    assert_true(f.secure);
    assert_host(&f, "b.example:81");
    assert_true(resolve(&t, &f, NULL, 1, "X-Forwarded-Proto: wss"));
    assert_true(f.secure);
    assert_true(resolve(&t, &f, NULL, 1, "X-Forwarded-Proto: ws"));
    assert_false(f.secure);
    assert_true(resolve(&t, &f, NULL, 1, "X-Forwarded-Prefix: /"));
    assert_int_equal(f.prefix_len, 0);
}

static void test_x_malformed_values(void **st)
{
    gp_fwd_trust t = trust("127.0.0.1");
    gp_fwd f;
    const char *bad[] = {"X-Forwarded-Proto: gopher", "X-Forwarded-Proto: https,",
                         "X-Forwarded-Proto: ",       "X-Forwarded-Host: a b",
                         "X-Forwarded-Host: a/b",     "X-Forwarded-Host: :80",
                         "X-Forwarded-Host: a:0",     "X-Forwarded-Host: a:65536",
                         "X-Forwarded-Host: [zz]",    "X-Forwarded-Host: a@b",
                         "X-Forwarded-Port: 0",       "X-Forwarded-Port: 65536",
                         "X-Forwarded-Port: 80x",     "X-Forwarded-Port: -1",
                         "X-Forwarded-Prefix: app",   "X-Forwarded-Prefix: /a?b",
                         "X-Forwarded-Prefix: /a b",  "X-Forwarded-Prefix: /a#b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(resolve(&t, &f, "h", 1, bad[i]));
        assert_int_equal(f.set, 0);
    }
    /* one bad value spoils only itself */
    assert_true(resolve(&t, &f, "h", 2, "X-Forwarded-Proto: gopher", "X-Forwarded-For: 1.2.3.4"));
    assert_int_equal(f.set, GP_FWD_FOR);
    char longhost[400];
    memset(longhost, 'a', sizeof longhost);
    memcpy(longhost, "X-Forwarded-Host: ", 18);
    longhost[sizeof longhost - 1] = 0;
    assert_false(resolve(&t, &f, "h", 1, longhost));
}

static void test_forwarded_rfc7239(void **st)
{
    gp_fwd_trust t = trust("127.0.0.1,10.0.0.0/8");
    gp_fwd f;
    assert_true(resolve(&t, &f, NULL, 1,
                        "Forwarded: for=6.6.6.6;proto=http, for=\"[2001:db8:cafe::17]:4711\";"
                        "proto=https;host=example.com, for=10.0.0.2;proto=http;host=inner"));
    assert_int_equal(f.set, GP_FWD_FOR | GP_FWD_PROTO | GP_FWD_HOST);
    assert_string_equal(f.client, "2001:db8:cafe::17");
    assert_int_equal(f.client_port, 4711);
    assert_true(f.secure);
    assert_host(&f, "example.com");
    /* case, spaces, several lines */
    assert_true(resolve(&t, &f, NULL, 2, "Forwarded: For=1.2.3.4 ; Proto=HTTPS",
                        "forwarded: for=10.0.0.9"));
    assert_string_equal(f.client, "1.2.3.4");
    assert_true(f.secure);
    /* every hop trusted: the first element */
    assert_true(resolve(&t, &f, NULL, 1, "Forwarded: for=10.0.0.1;proto=https, for=127.0.0.1"));
    assert_string_equal(f.client, "10.0.0.1");
    /* an unknown or obfuscated client: its proto and host still count */
    assert_true(resolve(&t, &f, NULL, 1, "Forwarded: for=unknown;proto=https;host=h.example"));
    assert_int_equal(f.set, GP_FWD_PROTO | GP_FWD_HOST);
    assert_false(resolve(&t, &f, NULL, 1, "Forwarded: for=_hidden, for=10.0.0.1"));
    assert_int_equal(f.set, 0);
    assert_true(resolve(&t, &f, NULL, 1, "Forwarded: for=\"1.2.3.4:_port\""));
    assert_string_equal(f.client, "1.2.3.4");
    assert_int_equal(f.client_port, 0);
    /* unknown parameters are ignored */
    assert_true(resolve(&t, &f, NULL, 1, "Forwarded: by=10.0.0.1;for=1.2.3.4;ext=\"x y\""));
    assert_string_equal(f.client, "1.2.3.4");
}

static void test_forwarded_malformed(void **st)
{
    gp_fwd_trust t = trust("127.0.0.1");
    gp_fwd f;
    const char *bad[] = {"Forwarded: for",
                         "Forwarded: for=",
                         "Forwarded: =1.2.3.4",
                         "Forwarded: for=1.2.3.4;for=5.6.7.8",
                         "Forwarded: for=\"1.2.3.4",
                         "Forwarded: for=\"1.2\\.3.4\"",
                         "Forwarded: for=junk",
                         "Forwarded: for=1.2.3.4 proto=https",
                         "Forwarded: for=1.2.3.4;proto=ftp;host=a b",
                         "Forwarded: for=[::1",
                         "Forwarded: for=1.2.3.4, for=bad!"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        resolve(&t, &f, NULL, 1, bad[i]);
        assert_false(f.set & GP_FWD_FOR);
        assert_false(f.set & GP_FWD_HOST);
    }
    assert_true(resolve(&t, &f, NULL, 1, "Forwarded: for=1.2.3.4;proto=ftp"));
    assert_int_equal(f.set, GP_FWD_FOR); /* the bad proto alone is ignored */
    assert_false(resolve(&t, &f, NULL, 1, "Forwarded: "));
    assert_false(resolve(&t, &f, NULL, 1, "Forwarded: ,,"));
}

static void test_x_forwarded_wins_over_forwarded(void **st)
{
    gp_fwd_trust t = trust("127.0.0.1");
    gp_fwd f;
    /* nginx adds X-Forwarded-For and passes the client's own Forwarded on */
    assert_true(resolve(&t, &f, NULL, 2, "Forwarded: for=6.6.6.6;proto=https;host=evil",
                        "X-Forwarded-For: 1.2.3.4"));
    assert_int_equal(f.set, GP_FWD_FOR);
    assert_string_equal(f.client, "1.2.3.4");
    assert_true(resolve(&t, &f, NULL, 2, "X-Forwarded-Proto: http", "Forwarded: for=6.6.6.6"));
    assert_int_equal(f.set, GP_FWD_PROTO);
}

static void test_ip_parse(void **st)
{
    uint8_t a[16];
    assert_true(gp_fwd_ip_parse("1.2.3.4", 7, a));
    assert_int_equal(a[10], 0xff);
    assert_int_equal(a[15], 4);
    assert_true(gp_fwd_ip_parse("::", 2, a));
    assert_false(gp_fwd_ip_parse("", 0, a));
    assert_false(gp_fwd_ip_parse("1.2.3.4x", 8, a));
    assert_false(gp_fwd_ip_parse("0000:0000:0000:0000:0000:0000:0000:0000:0", 41, a));
    assert_false(
        gp_fwd_ip_parse("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 57, a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trust_default),
        cmocka_unit_test(test_trust_networks),
        cmocka_unit_test(test_trust_bad),
        cmocka_unit_test(test_no_proxy_headers),
        cmocka_unit_test(test_xff_rightmost_untrusted),
        cmocka_unit_test(test_xff_all_trusted),
        cmocka_unit_test(test_xff_malformed),
        cmocka_unit_test(test_x_proto_host_port_prefix),
        cmocka_unit_test(test_x_malformed_values),
        cmocka_unit_test(test_forwarded_rfc7239),
        cmocka_unit_test(test_forwarded_malformed),
        cmocka_unit_test(test_x_forwarded_wins_over_forwarded),
        cmocka_unit_test(test_ip_parse),
    };
    return cmocka_run_group_tests_name("forwarded", tests, NULL, NULL);
}
