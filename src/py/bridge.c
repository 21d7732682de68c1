/* bridge: what the WSGI and ASGI bridges share; see bridge.h. */
#include "py/bridge.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core/http_parser.h"
#include "core/log.h"
#include "core/tls.h"

#define CACHE_SLOTS 16

static const char *const known_methods[] = {"GET",    "POST",    "HEAD", "PUT",
                                            "DELETE", "OPTIONS", "PATCH"};
#define NUM_METHODS (sizeof known_methods / sizeof known_methods[0])

static struct {
    PyObject *methods[NUM_METHODS];
    const char *root;
    size_t root_len;
    PyObject *root_str;
    char *scratch; /* the decoded path: a request line's worth */
    const gp_addr *server_addr[GP_MAX_BINDS];
    gp_bridge_server server[GP_MAX_BINDS];
    /* Recent clients' (host, port) and TLS sessions' extension dicts: the
     * streams of one HTTP/2 connection are requests of one client each.
     * Keyed by value (the address) or by a serial never reused, so a stale
     * entry is only memory until replaced. */
    struct {
        struct sockaddr_storage sa;
        PyObject *tuple;
    } addr[CACHE_SLOTS];
    struct {
        uint64_t serial;
        PyObject *ext;
    } tls[CACHE_SLOTS];
} B;

PyObject *gp_bridge_intern(const char *s)
{
    return PyUnicode_InternFromString(s);
}

int gp_bridge_bytes_resize(PyObject **b, Py_ssize_t n, Py_ssize_t keep)
{
    if (PyBytes_GET_SIZE(*b) == n) return 0;
    PyObject *nb = PyBytes_FromStringAndSize(NULL, n);
    if (nb) memcpy(PyBytes_AS_STRING(nb), PyBytes_AS_STRING(*b), (size_t)(keep < n ? keep : n));
    Py_SETREF(*b, nb);
    return nb ? 0 : -1;
}

void gp_bridge_stop_iteration(PyObject *value)
{
    if (!PyTuple_Check(value) && !PyExceptionInstance_Check(value)) {
        PyErr_SetObject(PyExc_StopIteration, value);
        return;
    }
    PyObject *args = PyTuple_Pack(1, value); /* StopIteration(*args) */
    if (args) PyErr_SetObject(PyExc_StopIteration, args);
    Py_XDECREF(args);
}

PyObject *gp_bridge_take_error(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (!t) return NULL;
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb && v) PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    return v;
#endif
}

void gp_bridge_restore_error(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    if (!exc) return;
    PyObject *tb = PyException_GetTraceback(exc);
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, tb);
#endif
}

static void flush_stderr(void)
{
    PyObject *f = PySys_GetObject("stderr"); /* borrowed */
    PyObject *r = f && f != Py_None ? PyObject_CallMethod(f, "flush", NULL) : NULL;
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
}

/* The traceback through the log: in text each of its lines an ERROR line,
 * so that it carries the time and pid as every other line does (two
 * workers' tracebacks stay apart); in JSON one object. 0, or -1 (nothing
 * written) when it cannot be formatted. */
static int log_traceback(PyObject *e)
{
    PyObject *tbm = PyImport_ImportModule("traceback");
    PyObject *lines = tbm ? PyObject_CallMethod(tbm, "format_exception", "O", e) : NULL;
    PyObject *sep = lines ? PyUnicode_FromString("") : NULL;
    PyObject *text = sep ? PyUnicode_Join(sep, lines) : NULL;
    Py_ssize_t n = 0;
    const char *s = text ? PyUnicode_AsUTF8AndSize(text, &n) : NULL;
    if (s) {
        flush_stderr(); /* what the app printed comes first */
        gp_log_lines(GP_LOG_ERROR, s, (size_t)n);
    }
    Py_XDECREF(text);
    Py_XDECREF(sep);
    Py_XDECREF(lines);
    Py_XDECREF(tbm);
    if (s) return 0;
    PyErr_Clear();
    return -1;
}

void gp_bridge_print_error(void)
{
    PyObject *e = gp_bridge_take_error();
    if (!e) return;
    if (log_traceback(e) == 0) {
        Py_DECREF(e);
        return;
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_DisplayException(e);
#else
    PyObject *tb = PyException_GetTraceback(e);
    PyErr_Display((PyObject *)Py_TYPE(e), e, tb);
    Py_XDECREF(tb);
#endif
    Py_DECREF(e);
    PyErr_Clear(); /* a failure to print is not the app's error */
}

int gp_bridge_init(const gp_config *cfg)
{
    if (B.scratch) return 0;
    for (size_t i = 0; i < NUM_METHODS; i++)
        if (!(B.methods[i] = gp_bridge_intern(known_methods[i]))) return -1;
    const char *root = cfg->root_path ? cfg->root_path : getenv("SCRIPT_NAME");
    if (!root) root = "";
    size_t n = strlen(root);
    while (n && root[n - 1] == '/') n--;
    B.root = root;
    B.root_len = n;
    if (!(B.root_str = PyUnicode_DecodeLatin1(root, (Py_ssize_t)n, NULL))) return -1;
    if (!(B.scratch = PyMem_Malloc(cfg->limit_request_line + 16))) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

PyObject *gp_bridge_method(const char *m, size_t n)
{
    for (size_t i = 0; i < NUM_METHODS; i++)
        if (strlen(known_methods[i]) == n && memcmp(known_methods[i], m, n) == 0)
            return Py_NewRef(B.methods[i]);
    return PyUnicode_DecodeLatin1(m, (Py_ssize_t)n, NULL);
}

const char *gp_bridge_root(size_t *len)
{
    *len = B.root_len;
    return B.root;
}

PyObject *gp_bridge_root_str(void)
{
    return B.root_str;
}

size_t gp_bridge_path(const gp_http_request *req, const char **path, size_t *under_root)
{
    size_t n = gp_http_percent_decode(B.scratch, req->path, req->path_len);
    size_t k = B.root_len;
    *path = B.scratch;
    *under_root =
        k && n >= k && memcmp(B.scratch, B.root, k) == 0 && (n == k || B.scratch[k] == '/') ? k : 0;
    return n;
}

bool gp_bridge_ip(const struct sockaddr *sa, char *host, int *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, host, GP_BRIDGE_HOST);
        *port = ntohs(s4->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, GP_BRIDGE_HOST);
        *port = ntohs(s6->sin6_port);
        return true;
    }
    return false;
}

/* The bytes of sa that name it (family, port, address), 0 for neither IP. */
static size_t addr_size(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET    ? sizeof(struct sockaddr_in)
           : sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                       : 0;
}

PyObject *gp_bridge_addr_tuple(const struct sockaddr *sa)
{
    char host[GP_BRIDGE_HOST];
    int port;
    size_t n = addr_size(sa);
    if (!n) Py_RETURN_NONE;
    unsigned h = 0;
    for (size_t i = 0; i < n; i++) h = h * 31 + ((const unsigned char *)sa)[i];
    unsigned slot = h % CACHE_SLOTS;
    if (B.addr[slot].tuple && memcmp(&B.addr[slot].sa, sa, n) == 0)
        return Py_NewRef(B.addr[slot].tuple);
    gp_bridge_ip(sa, host, &port);
    PyObject *t = Py_BuildValue("(si)", host, port);
    if (!t) return NULL;
    Py_XSETREF(B.addr[slot].tuple, Py_NewRef(t));
    memset(&B.addr[slot].sa, 0, sizeof B.addr[slot].sa);
    memcpy(&B.addr[slot].sa, sa, n);
    return t;
}

const gp_bridge_server *gp_bridge_server_of(gp_conn *c)
{
    const gp_addr *a = gp_conn_local(c);
    int i = 0;
    for (; i < GP_MAX_BINDS && B.server_addr[i] && B.server_addr[i] != a; i++) {
    }
    if (i == GP_MAX_BINDS) i = 0;
    gp_bridge_server *s = &B.server[i];
    if (B.server_addr[i] == a) return s;
    Py_CLEAR(s->name);
    Py_CLEAR(s->port);
    Py_CLEAR(s->tuple);
    B.server_addr[i] = NULL;
    char host[GP_BRIDGE_HOST];
    int port;
    if (a->kind == GP_ADDR_TCP && gp_bridge_ip((const struct sockaddr *)&a->sa, host, &port)) {
        s->name = PyUnicode_FromString(host);
        s->port = PyUnicode_FromFormat("%d", port);
        s->tuple = Py_BuildValue("(si)", host, port);
    } else { /* unix:/path */
        s->name = PyUnicode_FromString("localhost");
        s->port = PyUnicode_FromString("80");
        s->tuple = Py_BuildValue("(sO)", a->text + 5, Py_None);
    }
    if (!s->name || !s->port || !s->tuple) return NULL;
    B.server_addr[i] = a;
    return s;
}

/* ---- --log-format json: the app's stderr as log records ------------------ */

static PyObject *stderr_emit(PyObject *self, PyObject *arg)
{
    char *p;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(arg, &p, &n) < 0) return NULL;
    gp_log_lines(GP_LOG_ERROR, p, (size_t)n);
    Py_RETURN_NONE;
}

static PyMethodDef stderr_emit_def = {"emit", stderr_emit, METH_O, "log bytes as one record"};

/* What is written between two newlines that end a write becomes one record:
 * print() is one, and a logging handler's record with its traceback
 * (Flask's "Exception on /path") is one too. */
static const char json_stderr_src[] =
    "import io\n"
    "class JsonStderr(io.TextIOBase):\n"
    "    encoding, errors = 'utf-8', 'backslashreplace'\n"
    "    def __init__(self, emit, raw):\n"
    "        self._emit, self._raw, self._buf = emit, raw, []\n"
    "        self._n = 0\n"
    "    def writable(self): return True\n"
    "    def fileno(self): return self._raw.fileno()\n"
    "    def isatty(self): return False\n"
    "    def write(self, s):\n"
    "        self._buf.append(s)\n"
    "        self._n += len(s)\n"
    "        if s.endswith('\\n') or self._n > 65536: self.flush()\n"
    "        return len(s)\n"
    "    def flush(self):\n"
    "        if self._buf:\n"
    "            text, self._buf, self._n = ''.join(self._buf), [], 0\n"
    "            self._emit(text.encode('utf-8', 'backslashreplace'))\n";

void gp_bridge_json_stderr(void)
{
    static bool done;
    if (done || !gp_log_json()) return;
    done = true;
    PyObject *g = PyDict_New();
    PyObject *r = g && PyDict_SetItemString(g, "__builtins__", PyEval_GetBuiltins()) == 0
                      ? PyRun_String(json_stderr_src, Py_file_input, g, g)
                      : NULL;
    PyObject *cls = r ? PyDict_GetItemString(g, "JsonStderr") : NULL; /* borrowed */
    PyObject *emit = cls ? PyCFunction_New(&stderr_emit_def, NULL) : NULL;
    PyObject *raw = PySys_GetObject("stderr"); /* borrowed */
    PyObject *obj = emit && raw ? PyObject_CallFunctionObjArgs(cls, emit, raw, NULL) : NULL;
    if (!obj || PySys_SetObject("stderr", obj) < 0) PyErr_Clear(); /* stays raw */
    Py_XDECREF(obj);
    Py_XDECREF(emit);
    Py_XDECREF(r);
    Py_XDECREF(g);
}

/* ---- TLS facts ------------------------------------------------------------- */

enum { TLS_DN_MAX = 2048, TLS_PEM_MAX = 16384 };

/* d[k] = the n bytes of text (n > 0); n == 0: None when none_if_empty, else
 * nothing; n < 0 (larger than the buffer) as n == 0. */
static int set_text(PyObject *d, const char *k, const char *text, int n, bool none_if_empty)
{
    if (n <= 0 && !none_if_empty) return 0;
    PyObject *v = n > 0 ? PyUnicode_DecodeLatin1(text, n, NULL) : Py_NewRef(Py_None);
    if (!v) return -1;
    int r = PyDict_SetItemString(d, k, v);
    Py_DECREF(v);
    return r;
}

static int set_cstr(PyObject *d, const char *k, const char *text)
{
    return text ? set_text(d, k, text, (int)strlen(text), false) : 0;
}

static int set_long(PyObject *d, const char *k, long v)
{
    PyObject *o = PyLong_FromLong(v);
    int r = o ? PyDict_SetItemString(d, k, o) : -1;
    Py_XDECREF(o);
    return r;
}

int gp_bridge_tls_environ(PyObject *env, gp_tls *t)
{
    static char buf[TLS_PEM_MAX]; /* under the GIL */
    if (set_cstr(env, "wsgi.url_scheme", "https") < 0 || set_cstr(env, "HTTPS", "on") < 0 ||
        set_cstr(env, "SSL_PROTOCOL", gp_tls_version_name(t)) < 0 ||
        set_cstr(env, "SSL_CIPHER", gp_tls_cipher_name(t)) < 0 ||
        set_text(env, "SSL_CLIENT_S_DN", buf, gp_tls_client_dn(t, buf, TLS_DN_MAX), false) < 0)
        return -1;
    return set_text(env, "SSL_CLIENT_CERT", buf, gp_tls_client_pem(t, buf, sizeof buf), false);
}

/* The ASGI TLS extension (spec 0.2): server_cert, client_cert_chain,
 * client_cert_name, client_cert_error, tls_version, cipher_suite. A client
 * certificate that fails verification ends the handshake, so the error is
 * always None here. */
static PyObject *tls_extension_new(gp_tls *t);

/* A fresh copy each request (the app may change it) of what is built once
 * a connection. */
PyObject *gp_bridge_tls_extension(gp_tls *t)
{
    uint64_t serial = gp_tls_serial(t);
    unsigned slot = (unsigned)(serial % CACHE_SLOTS);
    if (B.tls[slot].serial != serial || !B.tls[slot].ext) {
        PyObject *ext = tls_extension_new(t);
        if (!ext) return NULL;
        Py_XSETREF(B.tls[slot].ext, ext);
        B.tls[slot].serial = serial;
    }
    PyObject *d = PyDict_Copy(B.tls[slot].ext);
    PyObject *chain = d ? PyDict_GetItemString(d, "client_cert_chain") : NULL;
    PyObject *copy = chain ? PyList_GetSlice(chain, 0, PyList_GET_SIZE(chain)) : NULL;
    if (!copy || PyDict_SetItemString(d, "client_cert_chain", copy) < 0) {
        Py_XDECREF(copy);
        Py_XDECREF(d);
        return NULL;
    }
    Py_DECREF(copy);
    return d;
}

static PyObject *tls_extension_new(gp_tls *t)
{
    static char buf[TLS_PEM_MAX];
    PyObject *d = PyDict_New();
    PyObject *chain = PyList_New(0);
    if (!d || !chain) goto fail;
    int n = gp_tls_client_pem(t, buf, sizeof buf);
    if (n > 0) {
        PyObject *pem = PyUnicode_DecodeLatin1(buf, n, NULL);
        int r = pem ? PyList_Append(chain, pem) : -1;
        Py_XDECREF(pem);
        if (r < 0) goto fail;
    }
    if (PyDict_SetItemString(d, "client_cert_chain", chain) < 0) goto fail;
    Py_CLEAR(chain);
    if (set_text(d, "server_cert", buf, gp_tls_server_pem(t, buf, sizeof buf), true) < 0 ||
        set_text(d, "client_cert_name", buf, gp_tls_client_dn(t, buf, TLS_DN_MAX), true) < 0 ||
        PyDict_SetItemString(d, "client_cert_error", Py_None) < 0 ||
        set_long(d, "tls_version", gp_tls_version(t)) < 0 ||
        set_long(d, "cipher_suite", gp_tls_cipher_id(t)) < 0)
        goto fail;
    return d;
fail:
    Py_XDECREF(chain);
    Py_XDECREF(d);
    return NULL;
}
