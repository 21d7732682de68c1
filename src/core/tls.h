/* tls: TLS over OpenSSL for the stream layer: per-listener contexts and the
 * per-connection transport (handshake, read, writev, sendfile, close_notify).
 *
 * Settings and their files: the master reads the certificate, key and CA files
 * into a bundle (a memfd) and checks that they make a context; workers inherit
 * the descriptor and build their own context from it. So a worker that runs as
 * --user need not read a root-only key, a HUP whose new files are bad keeps the
 * bundle that works, and a worker started later gets the same certificate.
 *
 * Never blocks: every call maps OpenSSL's WANT_READ / WANT_WRITE to -EAGAIN (or
 * GP_TLS_AGAIN) and gp_tls_wants says which epoll event to wait for. Knows
 * nothing of HTTP, buffers or the loop. No OpenSSL type in this header. */
#ifndef GP_TLS_H
#define GP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Handshake results; the same values as GP_OK, GP_AGAIN and GP_ERROR. */
enum { GP_TLS_DONE = 0, GP_TLS_AGAIN = 1, GP_TLS_ERROR = -1 };

/* The stream layer's transport (core/stream.h) over these calls: t is the
 * gp_tls from gp_tls_new. */
struct gp_transport;
extern const struct gp_transport gp_transport_tls;

/* --cert-reqs, as Python's ssl.CERT_* (gunicorn's values). */
enum { GP_TLS_CERT_NONE = 0, GP_TLS_CERT_OPTIONAL = 1, GP_TLS_CERT_REQUIRED = 2 };

/* One listener's settings, as the flags give them (strings not owned). */
typedef struct {
    const char *certfile; /* PEM: the certificate, then its chain */
    const char *keyfile;  /* PEM private key; NULL: in certfile */
    const char *password; /* --keyfile-password */
    const char *ca_certs; /* PEM CAs that sign client certificates */
    const char *ciphers;  /* OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites stay default) */
    int cert_reqs;        /* GP_TLS_CERT_* */
    int min_version;      /* 0x0303 (TLS 1.2, the default) or 0x0304 */
} gp_tls_opts;

typedef struct gp_tls_ctx gp_tls_ctx;
typedef struct gp_tls gp_tls;

/* Master (through core/tlsconf, which loads this module on demand): reads
 * o's files into a new bundle and checks that it makes a context. Returns the bundle's descriptor (close-on-exec: core/handoff
 * opens it for the worker's exec), or -1 with a one-line reason in err. */
int gp_tls_bundle(const gp_tls_opts *o, char *err, size_t errlen);

/* A context from a bundle (o gives the other settings). NULL with a one-line
 * reason in err. gp_tls_ctx_new reads o's files directly (tests). */
gp_tls_ctx *gp_tls_ctx_from_bundle(int bundle_fd, const gp_tls_opts *o, char *err, size_t errlen);
gp_tls_ctx *gp_tls_ctx_new(const gp_tls_opts *o, char *err, size_t errlen);
void gp_tls_ctx_free(gp_tls_ctx *ctx);

/* Whether ALPN offers "h2" before "http/1.1" on contexts made from now on
 * (the HTTP/2 protocol turns it on when it is built and enabled). */
void gp_tls_set_offer_h2(bool on);

/* A server connection on socket fd (non-blocking, owned by the caller: never
 * closed here); peer (kept by the caller as long as the connection, or
 * NULL) names the client in log lines. NULL on out-of-memory. */
struct sockaddr;
gp_tls *gp_tls_new(gp_tls_ctx *ctx, int fd, const struct sockaddr *peer);

/* Drives the handshake: GP_TLS_DONE, GP_TLS_AGAIN (wait for gp_tls_wants),
 * or GP_TLS_ERROR after one info line naming the peer and the reason. */
int gp_tls_handshake(void *t);

/* The transport calls (t is a gp_tls *): read returns bytes, 0 at the end
 * (close_notify, or EOF without it), -EAGAIN or -errno (-EPROTO: a TLS
 * error); writev and sendfile return bytes written (partial writes are
 * normal), -EAGAIN or -errno. After -EAGAIN the caller retries with the same
 * bytes first (it may add more after them), as OpenSSL requires. sendfile
 * uses kTLS when the kernel took the keys, else reads a bounded piece of the
 * file (16 KiB) through a buffer; *off advances by what was written. */
ssize_t gp_tls_read(void *t, void *buf, size_t n);
ssize_t gp_tls_writev(void *t, const struct iovec *iov, int n, bool more);
ssize_t gp_tls_sendfile(void *t, int fd, off_t *off, size_t n);
/* close_notify (once, if the handshake finished), then shutdown(SHUT_WR). */
int gp_tls_shutdown(void *t);
/* The epoll event the handshake waits for after GP_TLS_AGAIN; after a read
 * or write's -EAGAIN, the one it needs besides its own (a read that must
 * write: EPOLLOUT), else 0. */
uint32_t gp_tls_wants(void *t);
/* Bytes (decrypted, or read ahead and still to decrypt: then 1) that wait
 * inside OpenSSL, which epoll cannot see: read again before waiting. */
size_t gp_tls_pending(void *t);
void gp_tls_free(void *t);

/* After the handshake. The ALPN protocol chosen ("h2", "http/1.1") or NULL. */
const char *gp_tls_alpn(const gp_tls *t);
/* "TLSv1.3", "TLSv1.2"; and the wire numbers the ASGI tls extension wants. */
const char *gp_tls_version_name(const gp_tls *t);
/* A number no other connection of this process had or will have: what
 * describes the session (certificates, version, cipher) may be cached
 * under it, where a pointer could name a later connection. */
uint64_t gp_tls_serial(const gp_tls *t);
int gp_tls_version(const gp_tls *t);       /* 0x0304 ... */
int gp_tls_cipher_id(const gp_tls *t);     /* IANA 16-bit id */
const char *gp_tls_cipher_name(const gp_tls *t);
/* Whether kTLS carries this connection's writes (sendfile without a copy). */
bool gp_tls_ktls_send(const gp_tls *t);
/* The client certificate's subject as an RFC 2253 (RFC 4514) string, and
 * the certificate as PEM: bytes written (NUL-terminated), 0 when the client
 * sent none, -1 when buf is too small. */
int gp_tls_client_dn(const gp_tls *t, char *buf, size_t len);
int gp_tls_client_pem(const gp_tls *t, char *buf, size_t len);
/* The server's own certificate as PEM (the ASGI tls extension's server_cert). */
int gp_tls_server_pem(const gp_tls *t, char *buf, size_t len);

#endif
