/* tlsconf: which listener speaks TLS, with which settings, and the bundles
 * (core/tls.h) the master makes for them.
 *
 * Settings come for every bind (--certfile, --keyfile, ...) and per bind, as
 * options after the address: "--bind 0.0.0.0:8443,certfile=a.pem,keyfile=a.key"
 * (keys: the flag names without "--"; a bind's own value wins over the flag's)
 * or "--bind 0.0.0.0:8080,plain" (no TLS there, whatever the flags say; also
 * --insecure-bind ADDR, hypercorn's name). A bind speaks TLS when it has a
 * certfile of its own or from --certfile, and is not plain. Sockets that come
 * without a --bind (--fd, systemd) follow the flags.
 *
 * No OpenSSL here, and none in the master until a listener speaks TLS: the
 * master binary leaves core/tls out (libssl and libcrypto are 1.7 MB of its
 * resident memory) and loads it from gallop-tls.so, beside the binary, the
 * first time it makes a bundle. Processes that have core/tls linked in (the
 * bridge, hence every worker; the unit tests) call it directly. */
#ifndef GP_TLSCONF_H
#define GP_TLSCONF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/master.h"

/* Parses a --ssl-min-version / --ssl-version value: TLSv1.2, TLSv1_2, TLS1.2,
 * 1.2 (and the same for 1.3), or Python's ssl.PROTOCOL_* names and numbers
 * that gunicorn documents (TLS, SSLv23, TLS_SERVER: 2, 17; TLSv1_2: 5).
 * Returns 0x0303 or 0x0304, or -1 (TLS 1.0 and 1.1 are refused too). */
int gp_tlsconf_parse_version(const char *s);

/* Parses --cert-reqs: 0/1/2, none/optional/required, CERT_NONE/... ; -1 if bad. */
int gp_tlsconf_parse_cert_reqs(const char *s);

enum { GP_TLSCONF_INHERIT = 0, GP_TLSCONF_OWN = 1, GP_TLSCONF_PLAIN = 2 };

/* Splits a --bind value "ADDR[,KEY=VALUE...][,plain]" into the address
 * (*addr: arg itself, or a copy without the options) and the bind's own
 * settings. 0, or -1 with a one-line reason in err. */
int gp_tlsconf_parse_bind(const char *arg, const char **addr, gp_tls_opts *own,
                          signed char *mode, char *err, size_t errlen);

/* The settings of the listener at addr_text (a gp_addr's canonical text):
 * true and *out filled when it speaks TLS. */
bool gp_tlsconf_for(const gp_config *cfg, const char *addr_text, gp_tls_opts *out);

/* Master, at start: where gallop-tls.so lies (not opened before it is needed). */
void gp_tlsconf_set_library(const char *path);

/* --check-config: 0 when o's files make a context (the master's check of a
 * bundle), else -1 with a one-line reason in err. */
int gp_tlsconf_check(const gp_tls_opts *o, char *err, size_t errlen);

/* Master, at start and on HUP: a bundle for every TLS listener of cfg into
 * fds[i] (-1: plain). 0, or -1 with a one-line reason in err and no
 * descriptor left open. */
int gp_tlsconf_bundles(const gp_config *cfg, const gp_listener *ls, int n, int *fds, char *err,
                       size_t errlen);

/* Master: swaps in the listeners' new bundles (closing the old ones). */
void gp_tlsconf_install(gp_listener *ls, int n, const int *fds);

/* Worker: a context for every TLS listener from its bundle into ctxs[i]
 * (NULL: plain), and the bundles closed. 0, or -1 with a one-line reason in
 * err and every context freed. */
int gp_tlsconf_contexts(const gp_config *cfg, gp_listener *ls, int n, gp_tls_ctx **ctxs,
                        char *err, size_t errlen);

#endif
