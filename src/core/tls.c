/* tls: OpenSSL contexts from a listener's files, and the non-blocking TLS
 * transport of one connection. Owns the SSL objects and nothing else: the
 * socket belongs to the stream above, which is never called from here. */
#include "core/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/log.h"
#include "core/stream.h"

/* One TLS record's worth: what a gathered write or a copied file piece holds. */
#define SCRATCH 16384
#define BUNDLE_MAGIC "gallop-tls-bundle-1\n"
#define TICKET_KEYS 80 /* OpenSSL's: 16 bytes of key name, 32 of HMAC key, 32 of AES key */
#define BUNDLE_MAX (8u << 20) /* a PEM file larger than this is not a certificate */

struct gp_tls_ctx {
    SSL_CTX *ssl;
    unsigned char alpn[32]; /* wire format, our preference first */
    unsigned alpn_len;
};

/* The certificates as text, made once a connection: every request of it
 * (a hundred streams of an h2 connection) asks again. */
enum { MEMO_CLIENT_DN, MEMO_CLIENT_PEM, MEMO_SERVER_PEM, MEMO_COUNT };

struct gp_tls {
    SSL *ssl;
    int fd;
    const struct sockaddr *peer;
    uint32_t wants;
    bool ktls; /* the kernel encrypts our writes: sendfile stays zero-copy */
    bool shut;
    uint64_t serial; /* unique in the process: names this connection's session to caches */
    bool memo_set[MEMO_COUNT];
    char *memo[MEMO_COUNT]; /* NULL when set: no certificate */
    size_t memo_len[MEMO_COUNT];
};

static bool offer_h2;

void gp_tls_set_offer_h2(bool on)
{
    offer_h2 = on;
}

/* The newest OpenSSL error as text, and the queue emptied (SSL_get_error
 * needs it empty before the next call). */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown error";
}

/* ---- contexts ---- */

typedef struct {
    char *data[3]; /* certificate(s), key (NULL: in the certificate file), CAs */
    size_t len[3];
} pem_set;

static void pem_set_free(pem_set *p)
{
    for (int i = 0; i < 3; i++) free(p->data[i]);
}

static int read_file(const char *flag, const char *path, char **out, size_t *len, char *err,
                     size_t errlen)
{
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) goto fail;
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)BUNDLE_MAX) {
        errno = S_ISREG(st.st_mode) ? EFBIG : EISDIR;
        goto fail;
    }
    size_t n = 0, cap = (size_t)st.st_size + 1;
    if (!(buf = malloc(cap))) goto fail;
    for (ssize_t r; n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) != 0; n += (size_t)r)
        if (r < 0) {
            if (errno == EINTR) r = 0;
            else goto fail;
        }
    close(fd);
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
fail:
    snprintf(err, errlen, "%s %s: %s", flag, path, strerror(errno));
    free(buf);
    if (fd >= 0) close(fd);
    return -1;
}

static int read_files(const gp_tls_opts *o, pem_set *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (!o->certfile) {
        snprintf(err, errlen, "TLS needs --certfile");
        return -1;
    }
    const char *flags[3] = {"--certfile", "--keyfile", "--ca-certs"};
    const char *paths[3] = {o->certfile, o->keyfile, o->ca_certs};
    for (int i = 0; i < 3; i++)
        if (paths[i] && read_file(flags[i], paths[i], &p->data[i], &p->len[i], err, errlen) < 0) {
            pem_set_free(p);
            return -1;
        }
    return 0;
}

static int password_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    const char *pw = u;
    if (!pw) return 0; /* never a prompt on the terminal */
    size_t n = strlen(pw);
    if (n > (size_t)size) n = (size_t)size;
    memcpy(buf, pw, n);
    return (int)n;
}

static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    (void)s;
    gp_tls_ctx *c = arg;
    unsigned char *chosen;
    if (SSL_select_next_proto(&chosen, outlen, c->alpn, c->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* as nginx: go on without ALPN */
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* warn: the master's check of the files says what is wrong with them, once */
static int load_chain(SSL_CTX *ssl, const pem_set *p, const gp_tls_opts *o, bool warn, char *err,
                      size_t errlen)
{
    BIO *b = BIO_new_mem_buf(p->data[0], (int)p->len[0]);
    X509 *x = b ? PEM_read_bio_X509_AUX(b, NULL, NULL, NULL) : NULL;
    if (!x || SSL_CTX_use_certificate(ssl, x) != 1) {
        snprintf(err, errlen, "--certfile %s: no PEM certificate (%s)", o->certfile, ssl_reason());
        X509_free(x);
        BIO_free(b);
        return -1;
    }
    const ASN1_TIME *until = X509_get0_notAfter(x);
    if (warn && X509_cmp_current_time(until) < 0) {
        BIO *m = BIO_new(BIO_s_mem());
        char when[64] = "?";
        if (m && ASN1_TIME_print(m, until)) when[BIO_read(m, when, sizeof when - 1)] = 0;
        gp_warn("--certfile %s: the certificate expired on %s; clients will refuse it",
                o->certfile, when);
        BIO_free(m);
    }
    X509_free(x);
    SSL_CTX_clear_chain_certs(ssl);
    X509 *ca;
    while ((ca = PEM_read_bio_X509(b, NULL, NULL, NULL)))
        if (SSL_CTX_add0_chain_cert(ssl, ca) != 1) X509_free(ca);
    ERR_clear_error(); /* the end of the file reads as "no start line" */
    BIO_free(b);
    return 0;
}

static int load_key(SSL_CTX *ssl, const pem_set *p, const gp_tls_opts *o, char *err, size_t errlen)
{
    int i = p->data[1] ? 1 : 0;
    const char *path = i ? o->keyfile : o->certfile;
    BIO *b = BIO_new_mem_buf(p->data[i], (int)p->len[i]);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, password_cb, (void *)o->password) : NULL;
    BIO_free(b);
    if (!k) {
        const char *why = ssl_reason();
        bool encrypted = strstr(p->data[i], "ENCRYPTED") != NULL;
        snprintf(err, errlen, "%s %s: %s (%s)", i ? "--keyfile" : "--certfile", path,
                 encrypted ? (o->password ? "the --keyfile-password does not decrypt the key"
                                          : "the key is encrypted: give --keyfile-password")
                           : "no PEM private key",
                 why);
        return -1;
    }
    int ok = SSL_CTX_use_PrivateKey(ssl, k) == 1 && SSL_CTX_check_private_key(ssl) == 1;
    EVP_PKEY_free(k);
    if (!ok) {
        snprintf(err, errlen, "%s %s: the key does not match the certificate of --certfile (%s)",
                 i ? "--keyfile" : "--certfile", path, ssl_reason());
        return -1;
    }
    return 0;
}

static int load_cas(SSL_CTX *ssl, const pem_set *p, const gp_tls_opts *o, char *err, size_t errlen)
{
    if (!p->data[2]) {
        if (o->cert_reqs == GP_TLS_CERT_NONE) return 0;
        snprintf(err, errlen, "--cert-reqs %d needs --ca-certs (the CAs that sign client "
                 "certificates)", o->cert_reqs);
        return -1;
    }
    BIO *b = BIO_new_mem_buf(p->data[2], (int)p->len[2]);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    X509_STORE *store = SSL_CTX_get_cert_store(ssl);
    int n = 0;
    X509 *x;
    while (b && names && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
        X509_NAME *name = X509_NAME_dup(X509_get_subject_name(x));
        if (X509_STORE_add_cert(store, x) == 1) n++;
        if (name && sk_X509_NAME_push(names, name) <= 0) X509_NAME_free(name);
        X509_free(x);
    }
    ERR_clear_error();
    BIO_free(b);
    if (n == 0) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        snprintf(err, errlen, "--ca-certs %s: no PEM certificate in it", o->ca_certs);
        return -1;
    }
    SSL_CTX_set_client_CA_list(ssl, names); /* tells clients whose certificates we take */
    return 0;
}

static gp_tls_ctx *ctx_from(const pem_set *p, const gp_tls_opts *o, bool warn, char *err,
                            size_t errlen)
{
    gp_tls_ctx *c = calloc(1, sizeof *c);
    if (!c || !(c->ssl = SSL_CTX_new(TLS_server_method()))) {
        snprintf(err, errlen, "TLS: cannot make a context (%s)", c ? ssl_reason() : "no memory");
        free(c);
        return NULL;
    }
    SSL_CTX *s = c->ssl;
    SSL_CTX_set_min_proto_version(s, o->min_version ? o->min_version : TLS1_2_VERSION);
    /* no client renegotiation (a CPU attack), a client that drops the
     * socket without close_notify ends cleanly (gunicorn's
     * suppress_ragged_eofs), kTLS when the kernel has it */
    SSL_CTX_set_options(s, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                               SSL_OP_ENABLE_KTLS | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_COMPRESSION);
    /* writev's contract: partial writes, and a retry from a fresh gather */
    SSL_CTX_set_mode(s, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(s, 1); /* one read() per record, not a header then a body */
    SSL_CTX_set_session_id_context(s, (const unsigned char *)"gallop", 6);
    /* TLS 1.3: one ticket per connection (OpenSSL's default is two), for
     * the connection after it: each ticket costs a key derivation and an
     * encryption, a quarter of an ECDSA handshake's CPU */
    SSL_CTX_set_num_tickets(s, 1);
    SSL_CTX_set_default_passwd_cb(s, password_cb);
    if (o->ciphers && SSL_CTX_set_cipher_list(s, o->ciphers) != 1) {
        snprintf(err, errlen, "--ciphers '%s': no cipher OpenSSL knows (%s)", o->ciphers,
                 ssl_reason());
        goto fail;
    }
    if (load_chain(s, p, o, warn, err, errlen) || load_key(s, p, o, err, errlen) ||
        load_cas(s, p, o, err, errlen))
        goto fail;
    if (o->cert_reqs != GP_TLS_CERT_NONE)
        SSL_CTX_set_verify(s,
                           SSL_VERIFY_PEER | (o->cert_reqs == GP_TLS_CERT_REQUIRED
                                                  ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                                  : 0),
                           NULL);
    static const unsigned char h2[] = "\x02h2", h1[] = "\x08http/1.1";
    if (offer_h2) {
        memcpy(c->alpn, h2, 3);
        c->alpn_len = 3;
    }
    memcpy(c->alpn + c->alpn_len, h1, 9);
    c->alpn_len += 9;
    SSL_CTX_set_alpn_select_cb(s, alpn_select, c);
    return c;
fail:
    gp_tls_ctx_free(c);
    return NULL;
}

gp_tls_ctx *gp_tls_ctx_new(const gp_tls_opts *o, char *err, size_t errlen)
{
    pem_set p;
    if (read_files(o, &p, err, errlen) < 0) return NULL;
    gp_tls_ctx *c = ctx_from(&p, o, true, err, errlen);
    pem_set_free(&p);
    return c;
}

void gp_tls_ctx_free(gp_tls_ctx *c)
{
    if (!c) return;
    SSL_CTX_free(c->ssl);
    free(c);
}

/* The bundle: the magic line, three (64-bit length, bytes) sections, then
 * the session ticket keys every worker shares, so that a client resumes its
 * session whichever worker takes its next connection. */
int gp_tls_bundle(const gp_tls_opts *o, char *err, size_t errlen)
{
    pem_set p;
    if (read_files(o, &p, err, errlen) < 0) return -1;
    int fd = -1;
    gp_tls_ctx *c = ctx_from(&p, o, true, err, errlen);
    if (!c) goto done;
    gp_tls_ctx_free(c);
    if ((fd = memfd_create("gallop-tls", MFD_CLOEXEC)) < 0) {
        snprintf(err, errlen, "TLS: memfd_create: %s", strerror(errno));
        goto done;
    }
    bool ok = write(fd, BUNDLE_MAGIC, sizeof BUNDLE_MAGIC - 1) == sizeof BUNDLE_MAGIC - 1;
    for (int i = 0; i < 3 && ok; i++) {
        uint64_t n = p.data[i] ? p.len[i] : UINT64_MAX;
        ok = write(fd, &n, sizeof n) == sizeof n &&
             (!p.data[i] || write(fd, p.data[i], p.len[i]) == (ssize_t)p.len[i]);
    }
    unsigned char keys[TICKET_KEYS];
    ok = ok && RAND_bytes(keys, sizeof keys) == 1 && write(fd, keys, sizeof keys) == sizeof keys;
    OPENSSL_cleanse(keys, sizeof keys);
    if (!ok) {
        snprintf(err, errlen, "TLS: cannot write the bundle: %s", strerror(errno));
        close(fd);
        fd = -1;
    }
done:
    pem_set_free(&p);
    return fd;
}

gp_tls_ctx *gp_tls_ctx_from_bundle(int fd, const gp_tls_opts *o, char *err, size_t errlen)
{
    pem_set p;
    memset(&p, 0, sizeof p);
    gp_tls_ctx *c = NULL;
    char magic[sizeof BUNDLE_MAGIC - 1];
    off_t at = sizeof magic;
    if (pread(fd, magic, sizeof magic, 0) != (ssize_t)sizeof magic ||
        memcmp(magic, BUNDLE_MAGIC, sizeof magic) != 0)
        goto bad;
    for (int i = 0; i < 3; i++) {
        uint64_t n;
        if (pread(fd, &n, sizeof n, at) != sizeof n) goto bad;
        at += sizeof n;
        if (n == UINT64_MAX) continue;
        if (n > BUNDLE_MAX || !(p.data[i] = malloc(n + 1))) goto bad;
        if (pread(fd, p.data[i], n, at) != (ssize_t)n) goto bad;
        p.data[i][n] = 0;
        p.len[i] = n;
        at += (off_t)n;
    }
    unsigned char keys[TICKET_KEYS];
    if (pread(fd, keys, sizeof keys, at) != sizeof keys) goto bad;
    c = ctx_from(&p, o, false, err, errlen);
    if (c && SSL_CTX_set_tlsext_ticket_keys(c->ssl, keys, sizeof keys) != 1) ERR_clear_error();
    OPENSSL_cleanse(keys, sizeof keys);
    pem_set_free(&p);
    return c;
bad:
    snprintf(err, errlen, "TLS: the certificate bundle from the master is unreadable");
    pem_set_free(&p);
    return NULL;
}

/* ---- connections ---- */

/* A record's worth of scratch per thread: a gathered writev or a file piece.
 * It need not outlive the call: a retry after -EAGAIN gathers the same bytes
 * again (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). */
static __thread unsigned char *scratch;

static unsigned char *scratch_buf(void)
{
    if (!scratch) scratch = malloc(SCRATCH);
    return scratch;
}

gp_tls *gp_tls_new(gp_tls_ctx *ctx, int fd, const struct sockaddr *peer)
{
    gp_tls *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    if (!(t->ssl = SSL_new(ctx->ssl)) || SSL_set_fd(t->ssl, fd) != 1) {
        ERR_clear_error();
        SSL_free(t->ssl);
        free(t);
        return NULL;
    }
    SSL_set_accept_state(t->ssl);
    static uint64_t serials; /* loop thread only */
    t->serial = ++serials;
    t->fd = fd;
    t->peer = peer;
    t->wants = EPOLLIN; /* the ClientHello */
    return t;
}

void gp_tls_free(void *p)
{
    gp_tls *t = p;
    if (!t) return;
    SSL_free(t->ssl);
    for (int i = 0; i < MEMO_COUNT; i++) free(t->memo[i]);
    free(t);
}

/* OpenSSL's verdict on a call that returned r <= 0, as -errno. wants is
 * set only when the call needs the other direction than its own (own: the
 * event a read or a write waits for anyway, which the protocol watches). */
static ssize_t fail_code(gp_tls *t, int r, uint32_t own)
{
    int saved = errno;
    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        t->wants = own == EPOLLIN ? 0 : EPOLLIN;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        t->wants = own == EPOLLOUT ? 0 : EPOLLOUT;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return saved && saved != EAGAIN ? -saved : -ECONNRESET;
    default:
        ERR_clear_error();
        return -EPROTO;
    }
}

/* The client as "1.2.3.4:5678": from the caller's address (the socket may
 * be gone by now), else the socket's. */
static void peer_text(const gp_tls *t, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    snprintf(buf, len, "a client");
    if (t->peer) memcpy(&ss, t->peer, t->peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                      : t->peer->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                                      : sizeof(sa_family_t));
    else if (getpeername(t->fd, (struct sockaddr *)&ss, &sl) < 0) return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        snprintf(buf, len, "%s:%d", host, port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        snprintf(buf, len, "[%s]:%d", host, port);
    } else {
        snprintf(buf, len, "a unix socket client");
    }
}

int gp_tls_handshake(void *p)
{
    gp_tls *t = p;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->ktls = BIO_get_ktls_send(SSL_get_wbio(t->ssl)) > 0;
        t->wants = 0;
        if (gp_log_enabled(GP_LOG_DEBUG)) {
            char peer[80];
            const char *alpn = gp_tls_alpn(t);
            peer_text(t, peer, sizeof peer);
            gp_log(GP_LOG_DEBUG, "tls: %s: %s %s, ALPN %s, %s", peer, SSL_get_version(t->ssl),
                   gp_tls_cipher_name(t), alpn ? alpn : "none",
                   t->ktls ? "kTLS sends" : "user-space encryption");
        }
        return GP_TLS_DONE;
    }
    int saved = errno;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        t->wants = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
        return GP_TLS_AGAIN;
    }
    char peer[80];
    peer_text(t, peer, sizeof peer);
    if (e == SSL_ERROR_SSL) {
        /* the innermost reason: "wrong version number", "sslv3 alert
         * certificate expired", "peer did not return a certificate" */
        unsigned long code = ERR_peek_last_error();
        const char *why = ssl_reason();
        if (ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            gp_debug("tls: %s closed the connection during the handshake", peer);
        else gp_info("tls: handshake with %s failed: %s", peer, why);
    } else if (e == SSL_ERROR_SYSCALL && saved && saved != EAGAIN) {
        ERR_clear_error();
        gp_info("tls: handshake with %s failed: %s", peer, strerror(saved));
    } else {
        ERR_clear_error(); /* EOF before a ClientHello: a port check, not news */
        gp_debug("tls: %s closed the connection during the handshake", peer);
    }
    return GP_TLS_ERROR;
}

ssize_t gp_tls_read(void *p, void *buf, size_t n)
{
    gp_tls *t = p;
    size_t got;
    int r = SSL_read_ex(t->ssl, buf, n, &got);
    if (r != 1) return fail_code(t, r, EPOLLIN);
    t->wants = 0;
    return (ssize_t)got;
}

static ssize_t write_bytes(gp_tls *t, const void *buf, size_t n)
{
    size_t done;
    int r = SSL_write_ex(t->ssl, buf, n, &done);
    if (r == 1) {
        t->wants = 0;
        return (ssize_t)done;
    }
    ssize_t rc = fail_code(t, r, EPOLLOUT);
    return rc == 0 ? -EPIPE : rc; /* close_notify: no more writes */
}

ssize_t gp_tls_writev(void *p, const struct iovec *iov, int n, bool more)
{
    (void)more; /* a record is a record: nothing to coalesce with a file after it */
    gp_tls *t = p;
    while (n > 0 && iov[0].iov_len == 0) iov++, n--;
    if (n <= 0) return 0;
    /* one buffer, or a large first one: encrypt from it in place */
    if (n == 1 || iov[0].iov_len >= SCRATCH) return write_bytes(t, iov[0].iov_base, iov[0].iov_len);
    unsigned char *s = scratch_buf();
    if (!s) return write_bytes(t, iov[0].iov_base, iov[0].iov_len);
    size_t len = 0;
    for (int i = 0; i < n && len < SCRATCH; i++) {
        size_t k = iov[i].iov_len < SCRATCH - len ? iov[i].iov_len : SCRATCH - len;
        memcpy(s + len, iov[i].iov_base, k);
        len += k;
    }
    return write_bytes(t, s, len);
}

ssize_t gp_tls_sendfile(void *p, int fd, off_t *off, size_t n)
{
    gp_tls *t = p;
    if (n == 0) return 0;
    if (t->ktls) {
        ossl_ssize_t r = SSL_sendfile(t->ssl, fd, *off, n, 0);
        if (r >= 0) {
            t->wants = 0;
            *off += r;
            return r;
        }
        ssize_t rc = fail_code(t, (int)r, EPOLLOUT);
        return rc == 0 ? -EPIPE : rc;
    }
    unsigned char *s = scratch_buf();
    if (!s) return -ENOMEM;
    ssize_t got = pread(fd, s, n < SCRATCH ? n : SCRATCH, *off);
    if (got <= 0) return got < 0 ? -errno : 0;
    ssize_t w = write_bytes(t, s, (size_t)got);
    if (w > 0) *off += w;
    return w;
}

int gp_tls_shutdown(void *p)
{
    gp_tls *t = p;
    if (!t->shut && SSL_is_init_finished(t->ssl)) {
        t->shut = true;
        if (SSL_shutdown(t->ssl) < 0) ERR_clear_error(); /* best effort: the socket may be full */
    }
    return shutdown(t->fd, SHUT_WR) == 0 ? 0 : -errno;
}

uint32_t gp_tls_wants(void *p)
{
    return ((gp_tls *)p)->wants;
}

size_t gp_tls_pending(void *p)
{
    SSL *ssl = ((gp_tls *)p)->ssl;
    if (SSL_has_pending(ssl) != 1) return 0;
    int n = SSL_pending(ssl);
    return n > 0 ? (size_t)n : 1;
}

const gp_transport gp_transport_tls = {
    .name = "tls",
    .read = gp_tls_read,
    .writev = gp_tls_writev,
    .sendfile = gp_tls_sendfile,
    .shutdown = gp_tls_shutdown,
    .wants = gp_tls_wants,
    .pending = gp_tls_pending,
    .handshake = gp_tls_handshake,
    .free = gp_tls_free,
};

const char *gp_tls_alpn(const gp_tls *t)
{
    const unsigned char *a;
    unsigned len;
    SSL_get0_alpn_selected(t->ssl, &a, &len);
    if (len == 2 && memcmp(a, "h2", 2) == 0) return "h2";
    if (len == 8 && memcmp(a, "http/1.1", 8) == 0) return "http/1.1";
    return NULL;
}

const char *gp_tls_version_name(const gp_tls *t)
{
    return SSL_get_version(t->ssl);
}

uint64_t gp_tls_serial(const gp_tls *t)
{
    return t->serial;
}

int gp_tls_version(const gp_tls *t)
{
    return SSL_version(t->ssl);
}

int gp_tls_cipher_id(const gp_tls *t)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
    return c ? SSL_CIPHER_get_protocol_id(c) : 0;
}

const char *gp_tls_cipher_name(const gp_tls *t)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
    return c ? SSL_CIPHER_get_name(c) : NULL;
}

bool gp_tls_ktls_send(const gp_tls *t)
{
    return t->ktls;
}

/* Makes the text of one memo into a memory BIO; NULL with *none when there
 * is no certificate to describe. */
static BIO *describe(const gp_tls *t, int which, bool *none)
{
    X509 *x = which == MEMO_SERVER_PEM ? SSL_get_certificate(t->ssl)
                                       : SSL_get0_peer_certificate(t->ssl);
    *none = !x;
    if (!x) return NULL;
    BIO *b = BIO_new(BIO_s_mem());
    bool ok = b && (which == MEMO_CLIENT_DN
                        ? X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0
                        : PEM_write_bio_X509(b, x) == 1);
    if (!ok) {
        BIO_free(b);
        return NULL;
    }
    return b;
}

/* The memo into buf, NUL-terminated: bytes, 0 for no certificate, -1 when
 * it does not fit (or could not be made). */
static int memo_out(const gp_tls *t, int which, char *buf, size_t len)
{
    gp_tls *m = (gp_tls *)t; /* a cache: what the caller can see never changes */
    if (!m->memo_set[which]) {
        bool none;
        BIO *b = describe(t, which, &none);
        char *data;
        long n = b ? BIO_get_mem_data(b, &data) : -1;
        if (n >= 0 && (m->memo[which] = malloc((size_t)n + 1))) {
            memcpy(m->memo[which], data, (size_t)n);
            m->memo[which][n] = 0;
            m->memo_len[which] = (size_t)n;
            m->memo_set[which] = true;
        } else if (none) {
            m->memo_set[which] = true;
        }
        BIO_free(b);
        ERR_clear_error();
        if (!m->memo_set[which]) return -1;
    }
    if (!m->memo[which]) return 0;
    if (m->memo_len[which] >= len) return -1;
    memcpy(buf, m->memo[which], m->memo_len[which] + 1);
    return (int)m->memo_len[which];
}

int gp_tls_client_dn(const gp_tls *t, char *buf, size_t len)
{
    return memo_out(t, MEMO_CLIENT_DN, buf, len);
}

int gp_tls_client_pem(const gp_tls *t, char *buf, size_t len)
{
    return memo_out(t, MEMO_CLIENT_PEM, buf, len);
}

int gp_tls_server_pem(const gp_tls *t, char *buf, size_t len)
{
    return memo_out(t, MEMO_SERVER_PEM, buf, len);
}
