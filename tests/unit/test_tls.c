/* Unit tests for core/tls: a gp_tls server end and an OpenSSL client end over
 * a non-blocking socketpair, both driven from this thread, with certificates
 * that tests/tls_certs.sh makes at start: handshakes, reads and gathered
 * writes with their WANT_* waits, sendfile, close_notify, mTLS accepted and
 * refused, the bundle the master hands to workers, and every bad file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/tls.h"

static char dir[64];

/* dir/name, the same string for every call with the same name (options
 * keep pointers to it). */
static const char *path(const char *name)
{
    static char buf[32][128];
    static int used;
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    for (int i = 0; i < used; i++)
        if (strcmp(buf[i], p) == 0) return buf[i];
    assert_true(used < 32);
    memcpy(buf[used], p, sizeof p);
    return buf[used++];
}

static int make_certs(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/gallop-tls-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char cmd[256];
    /* from the repository root (make unit), or from tests/unit */
    const char *script = access("tests/tls_certs.sh", R_OK) == 0 ? "tests/tls_certs.sh"
                                                                  : "../tls_certs.sh";
    snprintf(cmd, sizeof cmd, "sh %s %s", script, dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int remove_certs(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

typedef struct {
    int sv[2];
    gp_tls_ctx *ctx;
    gp_tls *srv;
    SSL_CTX *cctx;
    SSL *cli;
} pair;

static gp_tls_opts server_opts(void)
{
    return (gp_tls_opts){.certfile = path("server.pem"), .keyfile = path("server.key")};
}

/* A connected pair; the client trusts the test CA, offers h2 and http/1.1,
 * and presents client_cert (NULL: none). */
static void pair_open(pair *p, const gp_tls_opts *o, const char *client_cert, int client_max)
{
    memset(p, 0, sizeof *p);
    char err[512] = "";
    p->ctx = gp_tls_ctx_new(o, err, sizeof err);
    if (!p->ctx) fail_msg("context: %s", err);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->sv), 0);
    p->srv = gp_tls_new(p->ctx, p->sv[0], NULL);
    assert_non_null(p->srv);
    p->cctx = SSL_CTX_new(TLS_client_method());
    assert_int_equal(SSL_CTX_load_verify_locations(p->cctx, path("ca.pem"), NULL), 1);
    SSL_CTX_set_verify(p->cctx, SSL_VERIFY_PEER, NULL);
    if (client_max) SSL_CTX_set_max_proto_version(p->cctx, client_max);
    if (client_cert) {
        char key[128];
        snprintf(key, sizeof key, "%s", client_cert);
        memcpy(key + strlen(key) - 3, "key", 3);
        assert_int_equal(SSL_CTX_use_certificate_file(p->cctx, client_cert, SSL_FILETYPE_PEM), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(p->cctx, key, SSL_FILETYPE_PEM), 1);
    }
    p->cli = SSL_new(p->cctx);
    SSL_set_fd(p->cli, p->sv[1]);
    SSL_set_tlsext_host_name(p->cli, "localhost");
    SSL_set1_host(p->cli, "localhost");
    static const unsigned char alpn[] = "\x02h2\x08http/1.1";
    SSL_set_alpn_protos(p->cli, alpn, sizeof alpn - 1);
    SSL_set_connect_state(p->cli);
}

static void pair_close(pair *p)
{
    gp_tls_free(p->srv);
    gp_tls_ctx_free(p->ctx);
    SSL_free(p->cli);
    SSL_CTX_free(p->cctx);
    close(p->sv[0]);
    close(p->sv[1]);
    ERR_clear_error();
}

/* Both ends step until the server's handshake is over: its result. The
 * server waits (GP_TLS_AGAIN with EPOLLIN) whenever the client has not spoken. */
static int handshake(pair *p)
{
    int srv = GP_TLS_AGAIN;
    for (int i = 0; i < 50 && srv == GP_TLS_AGAIN; i++) {
        if (!SSL_is_init_finished(p->cli)) SSL_do_handshake(p->cli);
        srv = gp_tls_handshake(p->srv);
        if (srv == GP_TLS_AGAIN) assert_true(gp_tls_wants(p->srv) & (EPOLLIN | EPOLLOUT));
    }
    /* TLS 1.3: the client learns of a refusal on its next read */
    if (srv == GP_TLS_DONE) SSL_do_handshake(p->cli);
    return srv;
}

/* Whatever the client can read now, appended at buf + *have. */
static void client_drain(pair *p, char *buf, size_t cap, size_t *have)
{
    size_t n;
    while (*have < cap && SSL_read_ex(p->cli, buf + *have, cap - *have, &n) == 1) *have += n;
    ERR_clear_error();
}

static void test_handshake_read_writev(void **state)
{
    (void)state;
    pair p;
    gp_tls_opts o = server_opts();
    pair_open(&p, &o, NULL, 0);
    assert_int_equal(handshake(&p), GP_TLS_DONE);
    assert_string_equal(gp_tls_version_name(p.srv), "TLSv1.3");
    assert_int_equal(gp_tls_version(p.srv), 0x0304);
    assert_true(gp_tls_cipher_id(p.srv) != 0);
    assert_string_equal(gp_tls_alpn(p.srv), "http/1.1"); /* h2 is not offered yet */
    char buf[64];
    /* nothing sent yet: wait for EPOLLIN */
    assert_int_equal(gp_tls_read(p.srv, buf, sizeof buf), -EAGAIN);
    assert_int_equal(gp_tls_wants(p.srv), 0); /* EPOLLIN, which the reader watches anyway */
    size_t w;
    assert_int_equal(SSL_write_ex(p.cli, "GET / HTTP/1.1\r\n\r\n", 18, &w), 1);
    assert_int_equal(gp_tls_read(p.srv, buf, sizeof buf), 18);
    assert_memory_equal(buf, "GET / HTTP/1.1\r\n\r\n", 18);
    struct iovec iov[3] = {{(void *)"HTTP/1.1 200 OK\r\n", 17}, {(void *)"", 0}, {(void *)"\r\nhi", 4}};
    assert_int_equal(gp_tls_writev(p.srv, iov, 3, false), 21);
    size_t have = 0;
    client_drain(&p, buf, sizeof buf, &have);
    assert_int_equal(have, 21);
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n\r\nhi", 21);
    char pem[4096];
    assert_true(gp_tls_server_pem(p.srv, pem, sizeof pem) > 0);
    assert_non_null(strstr(pem, "BEGIN CERTIFICATE"));
    assert_int_equal(gp_tls_client_dn(p.srv, pem, sizeof pem), 0); /* no client certificate */
    pair_close(&p);
}

/* A full socket: -EAGAIN with EPOLLOUT, then the same bytes again go through
 * and the client gets every byte once, in order. */
static void test_writev_want_write(void **state)
{
    (void)state;
    pair p;
    gp_tls_opts o = server_opts();
    pair_open(&p, &o, NULL, 0);
    assert_int_equal(handshake(&p), GP_TLS_DONE);
    enum { TOTAL = 4 << 20 };
    char *data = malloc(TOTAL), *got = malloc(TOTAL);
    for (size_t i = 0; i < TOTAL; i++) data[i] = (char)(i * 7 + i / 4096);
    size_t sent = 0, have = 0;
    int blocked = 0;
    while (have < TOTAL) {
        if (sent < TOTAL) {
            size_t half = (TOTAL - sent) / 2;
            struct iovec iov[2] = {{data + sent, half}, {data + sent + half, TOTAL - sent - half}};
            if (half < 100) iov[0].iov_len = TOTAL - sent, iov[1].iov_len = 0;
            ssize_t n = gp_tls_writev(p.srv, iov, 2, false);
            if (n == -EAGAIN) {
                assert_int_equal(gp_tls_wants(p.srv), 0); /* only EPOLLOUT, its own */
                blocked++;
                client_drain(&p, got, TOTAL, &have);
            } else {
                assert_true(n > 0);
                sent += (size_t)n;
            }
        } else {
            client_drain(&p, got, TOTAL, &have);
        }
    }
    assert_true(blocked > 0);
    assert_memory_equal(got, data, TOTAL);
    free(data);
    free(got);
    pair_close(&p);
}

/* Small pieces are gathered into one record-sized write. */
static void test_writev_gathers(void **state)
{
    (void)state;
    pair p;
    gp_tls_opts o = server_opts();
    pair_open(&p, &o, NULL, 0);
    assert_int_equal(handshake(&p), GP_TLS_DONE);
    static char pieces[40][1000];
    struct iovec iov[40];
    for (int i = 0; i < 40; i++) {
        memset(pieces[i], 'a' + i % 26, sizeof pieces[i]);
        iov[i] = (struct iovec){pieces[i], sizeof pieces[i]};
    }
    ssize_t n = gp_tls_writev(p.srv, iov, 40, false);
    assert_int_equal(n, 16384); /* one record's worth, the rest on the next call */
    char buf[20000];
    size_t have = 0;
    client_drain(&p, buf, sizeof buf, &have);
    assert_int_equal(have, 16384);
    assert_int_equal(buf[16383], 'a' + 16 % 26);
    pair_close(&p);
}

static void test_sendfile(void **state)
{
    (void)state;
    pair p;
    gp_tls_opts o = server_opts();
    pair_open(&p, &o, NULL, 0);
    assert_int_equal(handshake(&p), GP_TLS_DONE);
    enum { SIZE = 300000 };
    char *data = malloc(SIZE), *got = malloc(SIZE + 1);
    for (size_t i = 0; i < SIZE; i++) data[i] = (char)(i % 251);
    int fd = open(path("body.bin"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_int_equal(write(fd, data, SIZE), SIZE);
    off_t off = 1000; /* a range: bytes 1000.. */
    size_t have = 0;
    while (have < SIZE - 1000) {
        if (off < SIZE) {
            ssize_t n = gp_tls_sendfile(p.srv, fd, &off, (size_t)(SIZE - off));
            assert_true(n > 0 || n == -EAGAIN);
        }
        client_drain(&p, got, SIZE + 1, &have);
    }
    assert_int_equal(off, SIZE);
    assert_int_equal(have, SIZE - 1000);
    assert_memory_equal(got, data + 1000, SIZE - 1000);
    close(fd);
    free(data);
    free(got);
    pair_close(&p);
}

/* close_notify both ways: the client's reads as 0 (the end), and ours
 * reaches the client. */
static void test_shutdown(void **state)
{
    (void)state;
    pair p;
    gp_tls_opts o = server_opts();
    pair_open(&p, &o, NULL, 0);
    assert_int_equal(handshake(&p), GP_TLS_DONE);
    SSL_shutdown(p.cli);
    char buf[16];
    assert_int_equal(gp_tls_read(p.srv, buf, sizeof buf), 0);
    assert_int_equal(gp_tls_shutdown(p.srv), 0);
    size_t n;
    assert_int_equal(SSL_read_ex(p.cli, buf, sizeof buf, &n), 0);
    assert_int_equal(SSL_get_error(p.cli, 0), SSL_ERROR_ZERO_RETURN);
    /* a client that drops the socket without close_notify is an end too */
    pair_close(&p);
    pair_open(&p, &o, NULL, 0);
    assert_int_equal(handshake(&p), GP_TLS_DONE);
    shutdown(p.sv[1], SHUT_WR);
    assert_int_equal(gp_tls_read(p.srv, buf, sizeof buf), 0);
    pair_close(&p);
}

static void test_mtls(void **state)
{
    (void)state;
    pair p;
    gp_tls_opts o = server_opts();
    o.ca_certs = path("ca.pem");
    o.cert_reqs = GP_TLS_CERT_REQUIRED;
    pair_open(&p, &o, NULL, 0); /* no certificate: refused */
    assert_int_equal(handshake(&p), GP_TLS_ERROR);
    pair_close(&p);
    pair_open(&p, &o, path("stranger.pem"), 0); /* signed by a CA we do not know */
    assert_int_equal(handshake(&p), GP_TLS_ERROR);
    pair_close(&p);
    pair_open(&p, &o, path("client.pem"), 0);
    assert_int_equal(handshake(&p), GP_TLS_DONE);
    char dn[512], pem[4096];
    assert_true(gp_tls_client_dn(p.srv, dn, sizeof dn) > 0);
    assert_string_equal(dn, "CN=alice,O=Gallop Test,C=FR");
    assert_true(gp_tls_client_pem(p.srv, pem, sizeof pem) > 0);
    assert_memory_equal(pem, "-----BEGIN CERTIFICATE-----\n", 28);
    assert_int_equal(gp_tls_client_dn(p.srv, dn, 4), -1); /* too small */
    pair_close(&p);
    o.cert_reqs = GP_TLS_CERT_OPTIONAL; /* optional: none is fine, a bad one is not */
    pair_open(&p, &o, NULL, 0);
    assert_int_equal(handshake(&p), GP_TLS_DONE);
    assert_int_equal(gp_tls_client_dn(p.srv, dn, sizeof dn), 0);
    pair_close(&p);
    pair_open(&p, &o, path("stranger.pem"), 0);
    assert_int_equal(handshake(&p), GP_TLS_ERROR);
    pair_close(&p);
}

static void test_versions_and_alpn(void **state)
{
    (void)state;
    pair p;
    gp_tls_opts o = server_opts();
    pair_open(&p, &o, NULL, TLS1_2_VERSION);
    assert_int_equal(handshake(&p), GP_TLS_DONE);
    assert_string_equal(gp_tls_version_name(p.srv), "TLSv1.2");
    pair_close(&p);
    o.min_version = 0x0304;
    pair_open(&p, &o, NULL, TLS1_2_VERSION);
    assert_int_equal(handshake(&p), GP_TLS_ERROR);
    pair_close(&p);
    gp_tls_set_offer_h2(true);
    pair_open(&p, &o, NULL, 0);
    gp_tls_set_offer_h2(false);
    assert_int_equal(handshake(&p), GP_TLS_DONE);
    assert_string_equal(gp_tls_alpn(p.srv), "h2");
    pair_close(&p);
}

/* Bytes that are not a ClientHello end the handshake at once. */
static void test_garbage(void **state)
{
    (void)state;
    pair p;
    gp_tls_opts o = server_opts();
    pair_open(&p, &o, NULL, 0);
    assert_int_equal(write(p.sv[1], "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27), 27);
    assert_int_equal(gp_tls_handshake(p.srv), GP_TLS_ERROR);
    pair_close(&p);
}

/* What the master hands to workers makes the same context. */
static void test_bundle(void **state)
{
    (void)state;
    char err[512] = "";
    gp_tls_opts o = {.certfile = path("server.pem"), .keyfile = path("server-enc.key"),
                     .password = "secret"};
    int fd = gp_tls_bundle(&o, err, sizeof err);
    if (fd < 0) fail_msg("bundle: %s", err);
    assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    gp_tls_ctx *c = gp_tls_ctx_from_bundle(fd, &o, err, sizeof err);
    if (!c) fail_msg("from bundle: %s", err);
    pair p;
    pair_open(&p, &o, NULL, 0);
    gp_tls_ctx_free(p.ctx);
    gp_tls_free(p.srv);
    p.ctx = NULL; /* c is freed below */
    p.srv = gp_tls_new(c, p.sv[0], NULL);
    assert_int_equal(handshake(&p), GP_TLS_DONE);
    pair_close(&p);
    gp_tls_ctx_free(c);
    int junk = open(path("ca.pem"), O_RDONLY);
    assert_null(gp_tls_ctx_from_bundle(junk, &o, err, sizeof err));
    assert_non_null(strstr(err, "unreadable"));
    close(junk);
    close(fd);
}

static void bad(gp_tls_opts o, const char *expect)
{
    char err[512] = "";
    assert_null(gp_tls_ctx_new(&o, err, sizeof err));
    if (!strstr(err, expect)) fail_msg("error '%s' lacks '%s'", err, expect);
    assert_int_equal(gp_tls_bundle(&o, err, sizeof err), -1);
    assert_int_equal(ERR_peek_error(), 0); /* the queue is left empty */
}

static void test_bad_files(void **state)
{
    (void)state;
    gp_tls_opts o = server_opts();
    o.certfile = path("missing.pem");
    bad(o, "missing.pem: No such file");
    o = server_opts();
    o.certfile = dir;
    bad(o, "Is a directory");
    o.certfile = path("server.key");
    bad(o, "no PEM certificate");
    o = server_opts();
    o.keyfile = path("server.pem");
    bad(o, "no PEM private key");
    o.keyfile = path("server2.key");
    bad(o, "does not match");
    o.keyfile = path("server-enc.key");
    bad(o, "give --keyfile-password");
    o.password = "wrong";
    bad(o, "does not decrypt");
    o = server_opts();
    o.cert_reqs = GP_TLS_CERT_REQUIRED;
    bad(o, "needs --ca-certs");
    o.ca_certs = path("server.key");
    bad(o, "no PEM certificate");
    o = server_opts();
    o.ciphers = "NOT-A-CIPHER";
    bad(o, "--ciphers");
    o = (gp_tls_opts){0};
    bad(o, "needs --certfile");
    /* the key inside the certificate file is fine */
    char cmd[512], err[512];
    snprintf(cmd, sizeof cmd, "cat %s %s > %s", path("server.pem"), path("server.key"),
             path("both.pem"));
    assert_int_equal(system(cmd), 0);
    o = (gp_tls_opts){.certfile = path("both.pem")};
    gp_tls_ctx *c = gp_tls_ctx_new(&o, err, sizeof err);
    if (!c) fail_msg("cert+key in one file: %s", err);
    gp_tls_ctx_free(c);
}

static void test_parse(void **state)
{
    (void)state;
    assert_int_equal(gp_tlsconf_parse_version("TLSv1.2"), 0x0303);
    assert_int_equal(gp_tlsconf_parse_version("TLSv1_3"), 0x0304);
    assert_int_equal(gp_tlsconf_parse_version("1.3"), 0x0304);
    assert_int_equal(gp_tlsconf_parse_version("PROTOCOL_TLS_SERVER"), 0x0303);
    assert_int_equal(gp_tlsconf_parse_version("17"), 0x0303);
    assert_int_equal(gp_tlsconf_parse_version("TLSv1"), -1);
    assert_int_equal(gp_tlsconf_parse_version("TLSv1.1"), -1);
    assert_int_equal(gp_tlsconf_parse_version(""), -1);
    assert_int_equal(gp_tlsconf_parse_cert_reqs("2"), 2);
    assert_int_equal(gp_tlsconf_parse_cert_reqs("CERT_OPTIONAL"), 1);
    assert_int_equal(gp_tlsconf_parse_cert_reqs("none"), 0);
    assert_int_equal(gp_tlsconf_parse_cert_reqs("3"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_read_writev),
        cmocka_unit_test(test_writev_want_write),
        cmocka_unit_test(test_writev_gathers),
        cmocka_unit_test(test_sendfile),
        cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_versions_and_alpn),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_bundle),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
