/* bridge: what the WSGI and ASGI bridges share, written once.
 *
 * Interned strings, the request method as a str, the root path (one setting,
 * one meaning for both: --root-path, else $SCRIPT_NAME, trailing '/' trimmed),
 * the percent-decoded request path, and the server and peer addresses. One
 * bridge per worker process, set up by gp_bridge_init before the app's first
 * request; every call needs the GIL. Uses public CPython API only. */
#ifndef GP_PY_BRIDGE_H
#define GP_PY_BRIDGE_H

#include <Python.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/conn.h"

/* Resolves the root path and allocates the path buffer. 0, or -1 with a
 * Python error set. */
int gp_bridge_init(const gp_config *cfg);

/* An interned str (new reference), or NULL with an error set. */
PyObject *gp_bridge_intern(const char *s);

/* d[k] = v, stealing v; -1 (with an error set) when v is NULL or it fails.
 * Inline: it is on every request's path. */
static inline int gp_bridge_set_steal(PyObject *d, PyObject *k, PyObject *v)
{
    if (!v) return -1;
    int r = PyDict_SetItem(d, k, v);
    Py_DECREF(v);
    return r;
}

/* Resizes the bytes object *b to n bytes, keeping its first keep bytes (the
 * public API has no in-place resize, so this copies: grow geometrically).
 * A no-op when the size is n already. 0, or -1 with an error set and *b
 * released and NULL. */
int gp_bridge_bytes_resize(PyObject **b, Py_ssize_t n, Py_ssize_t keep);

/* Sets StopIteration(value) (value borrowed), as a generator's return does:
 * a tuple or an exception as the value stays one value. */
void gp_bridge_stop_iteration(PyObject *value);

/* The pending exception as one object, cleared (NULL when none), and back:
 * PyErr_GetRaisedException/SetRaisedException on 3.12+, their equivalent
 * on 3.11 (where the triple API is not yet deprecated). */
PyObject *gp_bridge_take_error(void);
void gp_bridge_restore_error(PyObject *exc);

/* Logs the pending exception with its traceback, one ERROR line of the
 * error log per line, and clears it. Unlike PyErr_Print, a SystemExit is printed like any other error and
 * never acted on: an app's sys.exit() must not end the worker mid-loop. */
void gp_bridge_print_error(void);

/* --log-format json: sys.stderr becomes a stream whose writes reach the log
 * as JSON records (one per write that ends a line), so what the app prints
 * or logs there (wsgi.errors too) stays one object a line. Once; nothing in
 * text mode. */
void gp_bridge_json_stderr(void);

/* The request method as a str (new reference): the common ones are shared. */
PyObject *gp_bridge_method(const char *m, size_t n);

/* The root path, trimmed; its length in *len. */
const char *gp_bridge_root(size_t *len);
/* The root path as a str (borrowed). */
PyObject *gp_bridge_root_str(void);

/* Percent-decodes the request path into the bridge's buffer (valid until the
 * next call) and points *path at it; returns its length. *under_root is the
 * length of the root-path prefix it starts with: the whole root, followed by
 * '/' or the end, or 0 when it does not start with the root. */
size_t gp_bridge_path(const gp_http_request *req, const char **path, size_t *under_root);

/* An IP peer's address as text (host needs GP_BRIDGE_HOST bytes) and port;
 * false for anything else (a unix socket). */
#define GP_BRIDGE_HOST 64
bool gp_bridge_ip(const struct sockaddr *sa, char *host, int *port);

/* (host, port) for an IP address, None otherwise (new reference). */
PyObject *gp_bridge_addr_tuple(const struct sockaddr *sa);

/* The listening address a connection came in on, built once per listener:
 * name and port are the WSGI SERVER_NAME/SERVER_PORT strs ("localhost", "80"
 * on a unix socket), tuple is the ASGI (host, port) or (path, None). */
typedef struct {
    PyObject *name, *port, *tuple;
} gp_bridge_server;
/* Borrowed, or NULL with an error set. */
const gp_bridge_server *gp_bridge_server_of(gp_conn *c);

/* TLS connections (c's gp_conn_tls is not NULL): WSGI's HTTPS, SSL_PROTOCOL,
 * SSL_CIPHER, SSL_CLIENT_S_DN and SSL_CLIENT_CERT (as mod_ssl and uWSGI set
 * them; the DN in RFC 2253 form) into env; and the ASGI "tls" extension's
 * dict (new reference). -1 / NULL with an error set. */
int gp_bridge_tls_environ(PyObject *env, struct gp_tls *t);
PyObject *gp_bridge_tls_extension(struct gp_tls *t);

#endif
