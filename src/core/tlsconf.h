/* tlsconf: which listener speaks TLS, with which settings, and the bundles
 * (core/tls.h) the master makes for them.
 *
 * Settings come for every bind (--certfile, --keyfile, ...) and per bind, as
 * options after the address: "--bind 0.0.0.0:8443,certfile=a.pem,keyfile=a.key"
 * (keys: the flag names without "--"; a bind's own value wins over the flag's)
 * or "--bind 0.0.0.0:8080,plain" (no TLS there, whatever the flags say; also
 * --insecure-bind ADDR, hypercorn's name). A bind speaks TLS when it has a
 * certfile of its own or from --certfile, and is not plain. Sockets that come
 * without a --bind (--fd, systemd) follow the flags. No OpenSSL here. */
#ifndef GP_TLSCONF_H
#define GP_TLSCONF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/master.h"

enum { GP_TLSCONF_INHERIT = 0, GP_TLSCONF_OWN = 1, GP_TLSCONF_PLAIN = 2 };

/* Splits a --bind value "ADDR[,KEY=VALUE...][,plain]" into the address
 * (*addr: arg itself, or a copy without the options) and the bind's own
 * settings. 0, or -1 with a one-line reason in err. */
int gp_tlsconf_parse_bind(const char *arg, const char **addr, gp_tls_opts *own,
                          signed char *mode, char *err, size_t errlen);

/* The settings of the listener at addr_text (a gp_addr's canonical text):
 * true and *out filled when it speaks TLS. */
bool gp_tlsconf_for(const gp_config *cfg, const char *addr_text, gp_tls_opts *out);

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
