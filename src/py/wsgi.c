/* wsgi: PEP 3333 for the worker core; see wsgi.h.
 *
 * Per request: one environ dict (copied from a template of the constant
 * keys), one Request object that is both the start_response callable and the
 * owner of the response state, and one Input object. Response bytes go to the
 * core without copies when they are large; the core copies small ones into
 * its output buffer so a typical response leaves in one write. A list's
 * pieces go out together; an iterator's (a generator, write()) each leave
 * before the app is asked for the next, since it may wait in between. An
 * exception of any kind from the app, SystemExit included, ends only its
 * request: a 500 (or a cut body) and a traceback in the log. */
#include "py/wsgi.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "py/bridge.h"

#define INPUT_CHUNK 65536
#define KEY_CACHE_SIZE 128
#define KEY_CACHE_NAME 40

typedef struct {
    char name[KEY_CACHE_NAME]; /* lower-case */
    unsigned char len;
    PyObject *key; /* NULL: header dropped (name with '_') */
    bool used;
} key_entry;

struct gp_wsgi {
    PyObject *app;
    PyThreadState *ts;
    PyObject *base_env;
    PyObject *k_method, *k_script, *k_path, *k_query, *k_protocol, *k_raw_uri, *k_remote_addr,
        *k_remote_port, *k_server_name, *k_server_port, *k_input;
    PyObject *v_http10, *v_http11, *v_http2, *v_empty;
    PyObject *k_scheme, *k_host, *v_http, *v_https; /* for proxy headers */
    key_entry keys[KEY_CACHE_SIZE];
};

/* ---- types ------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    gp_conn *conn; /* NULL once the request is over */
    gp_wsgi *wsgi;
    PyObject *status;
    PyObject *headers;
    PyObject *result;
    PyObject *iter; /* NULL while walking a list or tuple by index */
    Py_ssize_t index;
    PyObject *chunk; /* last chunk handed to the core: it may still point into it */
    PyObject *file;  /* the FileWrapper being sent with sendfile */
    char what[160];  /* "GET /path" for error logs */
} Request;

typedef struct {
    PyObject_HEAD
    Request *req;
    char *buf; /* bytes read ahead by readline */
    size_t pos, len, cap;
} Input;

typedef struct {
    PyObject_HEAD
    PyObject *filelike;
    Py_ssize_t blksize;
} FileWrapper;

static PyTypeObject Request_Type, Input_Type, FileWrapper_Type;

/* ---- Input: wsgi.input ------------------------------------------------- */

static gp_conn *input_conn(Input *in)
{
    return in->req ? in->req->conn : NULL;
}

/* Reads up to n body bytes into dst (the core drops the GIL through the
 * blocking hook if it has to wait). Returns bytes read, 0 at the end, -1 with
 * an exception set. */
static ssize_t body_read(gp_conn *c, char *dst, size_t n)
{
    ssize_t r = gp_conn_body_read(c, dst, n);
    if (r >= 0) return r;
    switch (r) {
    case GP_BODY_TOO_LARGE: PyErr_SetString(PyExc_OSError, "request body too large"); break;
    case GP_BODY_BAD: PyErr_SetString(PyExc_OSError, "malformed chunked request body"); break;
    case GP_BODY_TIMEOUT:
        PyErr_SetString(PyExc_OSError, "timed out reading the request body");
        break;
    default: PyErr_SetString(PyExc_OSError, "client disconnected while sending the body"); break;
    }
    return -1;
}

/* read(n) is a file's read: n bytes unless the body ends first (a short read
 * here truncates bodies for apps that read CONTENT_LENGTH at once); read()
 * or read(-1) is the whole rest. */
static PyObject *input_read_impl(Input *in, Py_ssize_t size)
{
    gp_conn *c = input_conn(in);
    size_t have = in->len - in->pos;
    if (size < 0) size = PY_SSIZE_T_MAX;
    size_t k = (size_t)size < have ? (size_t)size : have;
    if (size == 0 || k == (size_t)size || !c) {
        PyObject *b = PyBytes_FromStringAndSize(k ? in->buf + in->pos : NULL, (Py_ssize_t)k);
        in->pos += k;
        return b;
    }
    Py_ssize_t cap = size - (Py_ssize_t)k < INPUT_CHUNK ? size : INPUT_CHUNK + (Py_ssize_t)k;
    PyObject *b = PyBytes_FromStringAndSize(NULL, cap);
    if (!b) return NULL;
    if (k) memcpy(PyBytes_AS_STRING(b), in->buf + in->pos, k);
    in->pos += k;
    Py_ssize_t used = (Py_ssize_t)k;
    while (used < size) {
        if (used == cap) {
            cap = size - cap < cap ? size : cap * 2;
            if (gp_bridge_bytes_resize(&b, cap, used) < 0) return NULL;
        }
        ssize_t r = body_read(c, PyBytes_AS_STRING(b) + used, (size_t)(cap - used));
        if (r < 0) {
            Py_DECREF(b);
            return NULL;
        }
        if (r == 0) break;
        used += r;
    }
    if (gp_bridge_bytes_resize(&b, used, used) < 0) return NULL;
    return b;
}

static int parse_size(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t *size)
{
    *size = -1;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "expected at most one argument");
        return -1;
    }
    if (nargs == 1 && args[0] != Py_None) {
        *size = PyLong_AsSsize_t(args[0]);
        if (*size == -1 && PyErr_Occurred()) return -1;
    }
    return 0;
}

static PyObject *Input_read(Input *in, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size;
    if (parse_size(args, nargs, &size) < 0) return NULL;
    return input_read_impl(in, size);
}

/* Tops up the read-ahead buffer; returns bytes added, 0 at the end, -1 error. */
static ssize_t input_fill(Input *in)
{
    gp_conn *c = input_conn(in);
    if (!c) return 0;
    if (in->pos && in->pos == in->len) in->pos = in->len = 0;
    if (in->cap - in->len < 4096) {
        if (in->pos) {
            memmove(in->buf, in->buf + in->pos, in->len - in->pos);
            in->len -= in->pos;
            in->pos = 0;
        }
        if (in->cap - in->len < 4096) {
            size_t ncap = in->cap ? in->cap * 2 : 16384;
            char *nb = PyMem_Realloc(in->buf, ncap);
            if (!nb) {
                PyErr_NoMemory();
                return -1;
            }
            in->buf = nb;
            in->cap = ncap;
        }
    }
    ssize_t r = body_read(c, in->buf + in->len, in->cap - in->len);
    if (r > 0) in->len += (size_t)r;
    return r;
}

static PyObject *input_readline_impl(Input *in, Py_ssize_t size)
{
    size_t scanned = 0;
    for (;;) {
        size_t have = in->len - in->pos;
        size_t limit = size >= 0 && (size_t)size < have ? (size_t)size : have;
        char *nl =
            limit > scanned ? memchr(in->buf + in->pos + scanned, '\n', limit - scanned) : NULL;
        if (nl || (size >= 0 && have >= (size_t)size)) {
            size_t k = nl ? (size_t)(nl - (in->buf + in->pos)) + 1 : limit;
            PyObject *b = PyBytes_FromStringAndSize(in->buf + in->pos, (Py_ssize_t)k);
            in->pos += k;
            return b;
        }
        scanned = limit; /* stays valid: input_fill keeps buf[pos..] in order */
        ssize_t r = input_fill(in);
        if (r < 0) return NULL;
        if (r == 0) return input_read_impl(in, (Py_ssize_t)(in->len - in->pos));
    }
}

static PyObject *Input_readline(Input *in, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size;
    if (parse_size(args, nargs, &size) < 0) return NULL;
    return input_readline_impl(in, size);
}

static PyObject *Input_readlines(Input *in, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t hint;
    if (parse_size(args, nargs, &hint) < 0) return NULL;
    PyObject *lines = PyList_New(0);
    Py_ssize_t total = 0;
    while (lines) {
        PyObject *line = input_readline_impl(in, -1);
        if (!line) {
            Py_CLEAR(lines);
            break;
        }
        Py_ssize_t n = PyBytes_GET_SIZE(line);
        if (n == 0) {
            Py_DECREF(line);
            break;
        }
        int r = PyList_Append(lines, line);
        Py_DECREF(line);
        if (r < 0) Py_CLEAR(lines);
        total += n;
        if (hint > 0 && total >= hint) break;
    }
    return lines;
}

static PyObject *Input_iternext(Input *in)
{
    PyObject *line = input_readline_impl(in, -1);
    if (line && PyBytes_GET_SIZE(line) == 0) Py_CLEAR(line);
    return line;
}

static void Input_dealloc(Input *in)
{
    Py_XDECREF(in->req);
    PyMem_Free(in->buf);
    Py_TYPE(in)->tp_free((PyObject *)in);
}

static PyMethodDef Input_methods[] = {
    {"read", (PyCFunction)(void (*)(void))Input_read, METH_FASTCALL, "read([size]) -> bytes"},
    {"readline", (PyCFunction)(void (*)(void))Input_readline, METH_FASTCALL,
     "readline([size]) -> bytes"},
    {"readlines", (PyCFunction)(void (*)(void))Input_readlines, METH_FASTCALL,
     "readlines([hint]) -> list"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject Input_Type = {
    .ob_base = {PyObject_HEAD_INIT(NULL) 0},
    .tp_name = "gallop.Input",
    .tp_basicsize = sizeof(Input),
    .tp_dealloc = (destructor)Input_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "wsgi.input: the request body, streamed from the socket",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Input_iternext,
    .tp_methods = Input_methods,
};

/* ---- FileWrapper: wsgi.file_wrapper ------------------------------------ */

static PyObject *FileWrapper_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyObject *filelike;
    Py_ssize_t blksize = 8192;
    static char *kwlist[] = {"filelike", "block_size", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|n:file_wrapper", kwlist, &filelike, &blksize))
        return NULL;
    FileWrapper *fw = (FileWrapper *)type->tp_alloc(type, 0);
    if (!fw) return NULL;
    Py_INCREF(filelike);
    fw->filelike = filelike;
    fw->blksize = blksize > 0 ? blksize : 8192;
    return (PyObject *)fw;
}

static PyObject *FileWrapper_iternext(FileWrapper *fw)
{
    PyObject *data = PyObject_CallMethod(fw->filelike, "read", "n", fw->blksize);
    if (data && PyBytes_Check(data) && PyBytes_GET_SIZE(data) == 0) Py_CLEAR(data);
    return data;
}

static PyObject *FileWrapper_close(FileWrapper *fw, PyObject *unused)
{
    if (PyObject_HasAttrString(fw->filelike, "close"))
        return PyObject_CallMethod(fw->filelike, "close", NULL);
    Py_RETURN_NONE;
}

static void FileWrapper_dealloc(FileWrapper *fw)
{
    Py_XDECREF(fw->filelike);
    Py_TYPE(fw)->tp_free((PyObject *)fw);
}

static PyMethodDef FileWrapper_methods[] = {
    {"close", (PyCFunction)FileWrapper_close, METH_NOARGS, "close the file"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FileWrapper_Type = {
    .ob_base = {PyObject_HEAD_INIT(NULL) 0},
    .tp_name = "gallop.FileWrapper",
    .tp_basicsize = sizeof(FileWrapper),
    .tp_dealloc = (destructor)FileWrapper_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "wsgi.file_wrapper: a file sent with sendfile(2) when it is a regular file",
    .tp_new = FileWrapper_new,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)FileWrapper_iternext,
    .tp_methods = FileWrapper_methods,
};

/* ---- Request: start_response and the response state --------------------- */

/* The latin-1 name and value of header i of the list. The app holds the list
 * and may change it after start_response, so it is checked again before the
 * head is written. 0, or -1 with an exception set. */
static int header_at(PyObject *headers, Py_ssize_t i, const char **n, size_t *nl, const char **v,
                     size_t *vl)
{
    PyObject *h = PyList_GET_ITEM(headers, i);
    if (!PyTuple_Check(h) || PyTuple_GET_SIZE(h) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(h, 0)) ||
        !PyUnicode_Check(PyTuple_GET_ITEM(h, 1))) {
        PyErr_Format(PyExc_TypeError, "response header %R is not a (str, str) tuple", h);
        return -1;
    }
    PyObject *no = PyTuple_GET_ITEM(h, 0), *vo = PyTuple_GET_ITEM(h, 1);
    if (PyUnicode_KIND(no) != PyUnicode_1BYTE_KIND || PyUnicode_KIND(vo) != PyUnicode_1BYTE_KIND) {
        PyErr_Format(PyExc_ValueError, "response header %R is not latin-1", h);
        return -1;
    }
    *n = (const char *)PyUnicode_1BYTE_DATA(no);
    *nl = (size_t)PyUnicode_GET_LENGTH(no);
    *v = (const char *)PyUnicode_1BYTE_DATA(vo);
    *vl = (size_t)PyUnicode_GET_LENGTH(vo);
    return 0;
}

/* Checks (and so raises at once, while the app still runs) what the core
 * would refuse when the head is written. */
static int check_headers(PyObject *headers)
{
    if (!PyList_Check(headers)) {
        PyErr_SetString(PyExc_TypeError,
                        "start_response: headers must be a list of (name, value) tuples");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(headers); i++) {
        const char *n, *v;
        size_t nl, vl;
        if (header_at(headers, i, &n, &nl, &v, &vl) < 0) return -1;
        if (!gp_conn_field_ok(n, nl, v, vl)) {
            PyErr_Format(PyExc_ValueError,
                         "start_response: invalid header %R (bad name, or a control "
                         "character such as CR or LF in the value)",
                         PyList_GET_ITEM(headers, i));
            return -1;
        }
    }
    return 0;
}

/* PEP 3333: the status is a latin-1 str, "NNN reason"; RFC 9112 4 allows HTAB,
 * SP, visible and obs-text bytes in the reason. */
static int check_status(PyObject *status)
{
    if (!PyUnicode_Check(status)) {
        PyErr_SetString(PyExc_TypeError, "start_response: status must be a str such as '200 OK'");
        return -1;
    }
    if (PyUnicode_KIND(status) != PyUnicode_1BYTE_KIND) {
        PyErr_Format(PyExc_ValueError, "start_response: status %R is not latin-1", status);
        return -1;
    }
    const unsigned char *s = PyUnicode_1BYTE_DATA(status);
    Py_ssize_t sl = PyUnicode_GET_LENGTH(status);
    if (sl < 4 || !isdigit(s[0]) || !isdigit(s[1]) || !isdigit(s[2]) || s[3] != ' ' ||
        s[0] == '0') {
        PyErr_Format(PyExc_ValueError, "start_response: invalid status %R (want e.g. '200 OK')",
                     status);
        return -1;
    }
    for (Py_ssize_t i = 4; i < sl; i++)
        if ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f) {
            PyErr_Format(PyExc_ValueError, "start_response: control character in status %R",
                         status);
            return -1;
        }
    return 0;
}

static PyObject *Request_write(Request *r, PyObject *data);

static PyMethodDef write_def = {"write", (PyCFunction)Request_write, METH_O, "write(bytes)"};

static PyObject *Request_call(Request *r, PyObject *args, PyObject *kw)
{
    PyObject *status, *headers, *exc_info = Py_None;
    static char *kwlist[] = {"status", "headers", "exc_info", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:start_response", kwlist, &status, &headers,
                                     &exc_info))
        return NULL;
    if (exc_info != Py_None) {
        if (r->conn && gp_conn_head_sent(r->conn)) {
            /* too late to change the response: re-raise the app's error */
            if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
                PyErr_SetString(PyExc_TypeError,
                                "exc_info must be a (type, value, traceback) tuple");
                return NULL;
            }
            PyObject *v = PyTuple_GET_ITEM(exc_info, 1), *tb = PyTuple_GET_ITEM(exc_info, 2);
            if (!PyExceptionInstance_Check(v)) {
                PyErr_SetString(PyExc_TypeError, "exc_info[1] must be an exception");
                return NULL;
            }
            if (tb != Py_None && PyException_SetTraceback(v, tb) < 0) return NULL;
            gp_bridge_restore_error(Py_NewRef(v));
            return NULL;
        }
    } else if (r->status) {
        PyErr_SetString(PyExc_AssertionError,
                        "start_response called a second time without exc_info");
        return NULL;
    }
    if (check_status(status) < 0) return NULL;
    if (check_headers(headers) < 0) return NULL;
    Py_INCREF(status);
    Py_XSETREF(r->status, status);
    Py_INCREF(headers);
    Py_XSETREF(r->headers, headers);
    return PyCFunction_New(&write_def, (PyObject *)r);
}

/* Writes the head the app gave. known_length >= 0 sets Content-Length when
 * the app did not. Returns 0, or -1 with an exception set. */
static int send_head(Request *r, long long known_length)
{
    gp_conn *c = r->conn;
    if (!r->status) {
        PyErr_SetString(PyExc_AssertionError,
                        "the app returned body data before calling start_response");
        return -1;
    }
    const char *s = (const char *)PyUnicode_1BYTE_DATA(r->status);
    if (gp_conn_head_begin(c, s, (size_t)PyUnicode_GET_LENGTH(r->status)) < 0) goto bad;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(r->headers); i++) {
        const char *n, *v;
        size_t nl, vl;
        if (header_at(r->headers, i, &n, &nl, &v, &vl) < 0) return -1;
        if (gp_conn_head_add(c, n, nl, v, vl) < 0) goto bad;
    }
    if (known_length >= 0) gp_conn_head_set_length(c, (uint64_t)known_length);
    if (gp_conn_head_end(c) < 0) goto bad;
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError,
                    "invalid response head (bad Content-Length, or the head is too large)");
    return -1;
}

static PyObject *Request_write(Request *r, PyObject *data)
{
    if (!r->conn) {
        PyErr_SetString(PyExc_OSError, "write() after the response ended");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return NULL;
    int rc = 0;
    if (view.len) { /* PEP 3333: the head waits for the first non-empty piece */
        if (!gp_conn_head_sent(r->conn)) rc = send_head(r, -1);
        /* written to the socket before returning: the app may wait next */
        if (rc == 0 && gp_conn_write_all(r->conn, view.buf, (size_t)view.len) != GP_OK) {
            PyErr_SetString(PyExc_OSError, "client disconnected");
            rc = -1;
        }
    }
    PyBuffer_Release(&view);
    if (rc != 0) return NULL;
    Py_RETURN_NONE;
}

static void Request_dealloc(Request *r)
{
    Py_XDECREF(r->status);
    Py_XDECREF(r->headers);
    Py_XDECREF(r->result);
    Py_XDECREF(r->iter);
    Py_XDECREF(r->chunk);
    Py_XDECREF(r->file);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static PyTypeObject Request_Type = {
    .ob_base = {PyObject_HEAD_INIT(NULL) 0},
    .tp_name = "gallop.start_response",
    .tp_basicsize = sizeof(Request),
    .tp_dealloc = (destructor)Request_dealloc,
    .tp_call = (ternaryfunc)Request_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "start_response(status, headers, exc_info=None) -> write",
};

/* ---- environ ------------------------------------------------------------ */

static int set_str(PyObject *env, PyObject *key, const char *s, size_t n)
{
    PyObject *v = PyUnicode_DecodeLatin1(s, (Py_ssize_t)n, NULL);
    if (!v) return -1;
    int r = PyDict_SetItem(env, key, v);
    Py_DECREF(v);
    return r;
}

/* The environ key for a header name: HTTP_ACCEPT_ENCODING, CONTENT_TYPE ...
 * Returns a borrowed key, Py_None for a dropped header (a name with '_' could
 * pass for one with '-' in the environ: a classic spoofing trick), or NULL. */
static PyObject *header_key(gp_wsgi *w, const char *name, size_t n, PyObject **owned)
{
    char lower[KEY_CACHE_NAME];
    *owned = NULL;
    unsigned h = 2166136261u;
    bool cacheable = n < KEY_CACHE_NAME;
    if (cacheable) {
        for (size_t i = 0; i < n; i++) {
            lower[i] = (char)tolower((unsigned char)name[i]);
            h = (h ^ (unsigned char)lower[i]) * 16777619u;
        }
        for (unsigned probe = 0; probe < 8; probe++) {
            key_entry *e = &w->keys[(h + probe) % KEY_CACHE_SIZE];
            if (!e->used) break;
            if (e->len == n && memcmp(e->name, lower, n) == 0) return e->key ? e->key : Py_None;
        }
    }
    PyObject *key;
    if (memchr(name, '_', n)) {
        key = Py_None;
    } else if (n == 12 && gp_http_token_eq(name, n, "content-type")) {
        key = gp_bridge_intern("CONTENT_TYPE");
    } else if (n == 14 && gp_http_token_eq(name, n, "content-length")) {
        key = gp_bridge_intern("CONTENT_LENGTH");
    } else { /* the parser took only token characters: ASCII, of any length */
        key = PyUnicode_New((Py_ssize_t)(5 + n), 127);
        if (key) {
            char *buf = (char *)PyUnicode_1BYTE_DATA(key);
            memcpy(buf, "HTTP_", 5);
            for (size_t i = 0; i < n; i++)
                buf[5 + i] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
            PyUnicode_InternInPlace(&key);
        }
    }
    if (!key) return NULL;
    if (cacheable) {
        for (unsigned probe = 0; probe < 8; probe++) {
            key_entry *e = &w->keys[(h + probe) % KEY_CACHE_SIZE];
            if (e->used) continue;
            e->used = true;
            e->len = (unsigned char)n;
            memcpy(e->name, lower, n);
            e->key = key == Py_None ? NULL : key; /* the cache owns it */
            return key;
        }
    }
    if (key != Py_None) *owned = key;
    return key;
}

static int add_header(gp_wsgi *w, PyObject *env, const gp_http_header *hd)
{
    PyObject *owned;
    PyObject *key = header_key(w, hd->name, hd->name_len, &owned);
    if (!key) return -1;
    if (key == Py_None) return 0;
    PyObject *v = PyUnicode_DecodeLatin1(hd->value, (Py_ssize_t)hd->value_len, NULL);
    if (!v) goto fail;
    PyObject *old = PyDict_GetItemWithError(env, key);
    if (old) { /* repeated field: join as RFC 9110 allows */
        PyObject *joined = PyUnicode_FromFormat("%U,%U", old, v);
        Py_DECREF(v);
        if (!(v = joined)) goto fail;
    }
    int r = PyDict_SetItem(env, key, v);
    Py_DECREF(v);
    Py_XDECREF(owned);
    return r;
fail:
    Py_XDECREF(owned);
    return -1;
}

static int set_server(gp_wsgi *w, PyObject *env, gp_conn *c)
{
    const gp_bridge_server *sv = gp_bridge_server_of(c);
    if (!sv || PyDict_SetItem(env, w->k_server_name, sv->name) < 0) return -1;
    return PyDict_SetItem(env, w->k_server_port, sv->port);
}

static int set_remote(gp_wsgi *w, PyObject *env, gp_conn *c)
{
    socklen_t len;
    char host[GP_BRIDGE_HOST];
    int port;
    if (!gp_bridge_ip(gp_conn_peer(c, &len), host, &port)) /* unix socket: "", as gunicorn */
        return PyDict_SetItem(env, w->k_remote_addr, w->v_empty);
    if (gp_bridge_set_steal(env, w->k_remote_addr, PyUnicode_FromString(host)) < 0) return -1;
    return gp_bridge_set_steal(env, w->k_remote_port, PyUnicode_FromFormat("%d", port));
}

/* What a trusted proxy said (core/forwarded.h): the client, the scheme, the
 * Host, the port and the prefix the app is mounted at by the proxy. */
static int set_forwarded(gp_wsgi *w, PyObject *env, const gp_fwd *f)
{
    if ((f->set & GP_FWD_FOR) &&
        (gp_bridge_set_steal(env, w->k_remote_addr, PyUnicode_FromString(f->client)) < 0 ||
         gp_bridge_set_steal(env, w->k_remote_port, PyUnicode_FromFormat("%d", f->client_port)) <
             0))
        return -1;
    if ((f->set & GP_FWD_PROTO) &&
        PyDict_SetItem(env, w->k_scheme, f->secure ? w->v_https : w->v_http) < 0)
        return -1;
    if ((f->set & GP_FWD_HOST) && set_str(env, w->k_host, f->host, f->host_len) < 0) return -1;
    if ((f->set & GP_FWD_PORT) &&
        gp_bridge_set_steal(env, w->k_server_port, PyUnicode_FromFormat("%u", f->port)) < 0)
        return -1;
    if (f->set & GP_FWD_PREFIX) {
        PyObject *pre = PyUnicode_DecodeLatin1(f->prefix, (Py_ssize_t)f->prefix_len, NULL);
        PyObject *sn = pre ? PyUnicode_Concat(pre, gp_bridge_root_str()) : NULL;
        Py_XDECREF(pre);
        if (gp_bridge_set_steal(env, w->k_script, sn) < 0) return -1;
    }
    return 0;
}

static PyObject *build_environ(gp_wsgi *w, gp_conn *c, const gp_http_request *req, Request *r)
{
    PyObject *env = PyDict_Copy(w->base_env);
    if (!env) return NULL;
    if (gp_bridge_set_steal(env, w->k_method, gp_bridge_method(req->method, req->method_len)) < 0)
        goto fail;
    PyObject *proto = req->version_minor == 1   ? w->v_http11
                      : req->version_minor == 0 ? w->v_http10
                                                : w->v_http2;
    if (PyDict_SetItem(env, w->k_protocol, proto) < 0)
        goto fail;
    const char *p;
    size_t under_root, plen = gp_bridge_path(req, &p, &under_root);
    if (set_str(env, w->k_path, p + under_root, plen - under_root) < 0) goto fail;
    if (req->query ? set_str(env, w->k_query, req->query, req->query_len) < 0
                   : PyDict_SetItem(env, w->k_query, w->v_empty) < 0)
        goto fail;
    if (set_str(env, w->k_raw_uri, req->target, req->target_len) < 0) goto fail;
    for (size_t i = 0; i < req->num_headers; i++)
        if (add_header(w, env, &req->headers[i]) < 0) goto fail;
    if (set_server(w, env, c) < 0 || set_remote(w, env, c) < 0) goto fail;
    gp_tls *tls = gp_conn_tls(c);
    if (tls && gp_bridge_tls_environ(env, tls) < 0) goto fail;
    gp_fwd fwd;
    if (req->proxy_headers && gp_conn_forwarded(c, req, &fwd) && set_forwarded(w, env, &fwd) < 0)
        goto fail;
    Input *in = PyObject_New(Input, &Input_Type);
    if (!in) goto fail;
    Py_INCREF(r);
    in->req = r;
    in->buf = NULL;
    in->pos = in->len = in->cap = 0;
    int rc = PyDict_SetItem(env, w->k_input, (PyObject *)in);
    Py_DECREF(in);
    if (rc < 0) goto fail;
    return env;
fail:
    Py_DECREF(env);
    return NULL;
}

/* ---- running the app ---------------------------------------------------- */

static void log_app_error(Request *r, const char *when)
{
    gp_error("Error handling request %s (%s)", r->what, when);
    gp_bridge_print_error();
}

/* Calls the iterable's close(), as PEP 3333 requires in every case. */
static void close_result(Request *r)
{
    if (!r->result) return;
    PyObject *res = r->result;
    r->result = NULL;
    if (!PyList_CheckExact(res) && !PyTuple_CheckExact(res)) {
        PyObject *close = PyObject_GetAttrString(res, "close");
        if (close) {
            PyObject *x = PyObject_CallNoArgs(close);
            Py_DECREF(close);
            if (!x) log_app_error(r, "in the iterable's close()");
            Py_XDECREF(x);
        } else {
            PyErr_Clear();
        }
    }
    Py_DECREF(res);
}

/* Ends the request on the Python side; the core finishes the socket side. */
static gp_app_status finish(Request *r)
{
    close_result(r);
    Py_CLEAR(r->iter);
    Py_CLEAR(r->chunk);
    Py_CLEAR(r->file);
    if (r->conn) gp_conn_set_app_state(r->conn, NULL);
    r->conn = NULL;
    Py_DECREF(r);
    return GP_APP_DONE;
}

static gp_app_status fail_response(Request *r, const char *when)
{
    gp_conn *c = r->conn;
    int status = gp_conn_body_error_status(c);
    if (status) PyErr_Clear(); /* the client's fault: answer it, no traceback */
    else log_app_error(r, when);
    gp_conn_send_error(c, status ? status : 500, status != 0);
    return finish(r);
}

/* A regular file behind a FileWrapper goes out with sendfile. Returns 1 when
 * it took the file, 0 to fall back to iterating, -1 on error. */
static int try_sendfile(Request *r, FileWrapper *fw, int *rc)
{
    PyObject *fo = PyObject_CallMethod(fw->filelike, "fileno", NULL);
    if (!fo) {
        PyErr_Clear();
        return 0;
    }
    int fd = (int)PyLong_AsLong(fo);
    Py_DECREF(fo);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        PyErr_Clear();
        return 0;
    }
    off_t off = 0;
    PyObject *pos = PyObject_CallMethod(fw->filelike, "tell", NULL);
    if (pos) {
        off = (off_t)PyLong_AsLongLong(pos);
        Py_DECREF(pos);
    }
    if (!pos || off < 0) {
        PyErr_Clear();
        off = 0;
    }
    /* flush Python's buffer position into the fd offset we hand the kernel */
    uint64_t len = st.st_size > off ? (uint64_t)(st.st_size - off) : 0;
    if (!gp_conn_head_sent(r->conn) && send_head(r, (long long)len) < 0) return -1;
    Py_INCREF(fw);
    Py_XSETREF(r->file, (PyObject *)fw);
    *rc = gp_conn_sendfile(r->conn, fd, off, len);
    return 1;
}

/* Pulls body pieces from the app and writes them until done or the socket is
 * full. The only loop that runs app code after the first call. */
static gp_app_status pump(Request *r)
{
    gp_conn *c = r->conn;
    PyObject *res = r->result;
    for (;;) {
        PyObject *chunk;
        if (!r->iter) {
            if (r->index >= PySequence_Fast_GET_SIZE(res)) break;
            chunk = PySequence_Fast_GET_ITEM(res, r->index);
            r->index++;
            Py_INCREF(chunk);
        } else {
            chunk = PyIter_Next(r->iter);
            if (!chunk) {
                if (PyErr_Occurred()) return fail_response(r, "while iterating the response");
                break;
            }
        }
        if (!PyBytes_Check(chunk)) {
            PyErr_Format(PyExc_TypeError, "the response iterable yielded %.100s, not bytes",
                         Py_TYPE(chunk)->tp_name);
            Py_DECREF(chunk);
            return fail_response(r, "bad response body");
        }
        Py_ssize_t n = PyBytes_GET_SIZE(chunk);
        if (n == 0) {
            Py_DECREF(chunk);
            continue;
        }
        if (!gp_conn_head_sent(c)) {
            /* a one-piece body gets a Content-Length instead of chunks */
            long long known = (!r->iter && PySequence_Fast_GET_SIZE(res) == 1) ? (long long)n : -1;
            if (send_head(r, known) < 0) {
                Py_DECREF(chunk);
                return fail_response(r, "invalid response head");
            }
        }
        Py_XSETREF(r->chunk, chunk);
        int rc = gp_conn_write(c, PyBytes_AS_STRING(chunk), (size_t)n);
        /* an iterator may wait before its next piece, so this one leaves now;
         * a list's pieces are all there and go out together */
        if (rc == GP_OK && r->iter) rc = gp_conn_flush(c);
        if (rc == GP_AGAIN) return GP_APP_PENDING;
        if (rc == GP_ERROR) return finish(r); /* client gone */
    }
    if (!gp_conn_head_sent(c) && send_head(r, 0) < 0)
        return fail_response(r, "invalid response head");
    gp_conn_end_response(c);
    return finish(r);
}

static gp_app_status wsgi_start(void *app, gp_conn *c, const gp_http_request *req)
{
    gp_wsgi *w = app;
    Request *r = PyObject_New(Request, &Request_Type);
    if (!r) {
        PyErr_Clear();
        gp_conn_send_error(c, 500, 1);
        return GP_APP_DONE;
    }
    r->conn = c;
    r->wsgi = w;
    r->status = r->headers = r->result = r->iter = r->chunk = r->file = NULL;
    r->index = 0;
    gp_conn_describe(r->what, sizeof r->what, req);
    gp_conn_set_app_state(c, r);

    PyObject *env = build_environ(w, c, req, r);
    if (!env) return fail_response(r, "building the environ");
    PyObject *res = PyObject_CallFunctionObjArgs(w->app, env, (PyObject *)r, NULL);
    Py_DECREF(env);
    if (!res) return fail_response(r, "in the app");
    r->result = res;
    if (PyList_CheckExact(res) || PyTuple_CheckExact(res)) {
        r->iter = NULL;
    } else if (Py_IS_TYPE(res, &FileWrapper_Type)) {
        int rc;
        int took = try_sendfile(r, (FileWrapper *)res, &rc);
        if (took < 0) return fail_response(r, "invalid response head");
        if (took) {
            if (rc == GP_AGAIN) {
                r->index = -1; /* marks "file in flight" for resume */
                return GP_APP_PENDING;
            }
            if (rc == GP_OK) gp_conn_end_response(c);
            return finish(r);
        }
        if (!(r->iter = PyObject_GetIter(res))) return fail_response(r, "iter() of the response");
    } else if (!(r->iter = PyObject_GetIter(res))) {
        return fail_response(r, "iter() of the response");
    }
    return pump(r);
}

static gp_app_status wsgi_resume(void *app, gp_conn *c)
{
    Request *r = gp_conn_app_state(c);
    if (r->index == -1) { /* the file is out */
        gp_conn_end_response(c);
        return finish(r);
    }
    return pump(r);
}

static void wsgi_abort(void *app, gp_conn *c)
{
    Request *r = gp_conn_app_state(c);
    if (r) finish(r);
}

static void wsgi_before_wait(void *app)
{
    gp_wsgi *w = app;
    w->ts = PyEval_SaveThread();
}

static void wsgi_after_wait(void *app)
{
    gp_wsgi *w = app;
    PyEval_RestoreThread(w->ts);
}

/* The thread state of the calling thread while it waits without the GIL. */
static __thread PyThreadState *waiting_ts;

static void wsgi_blocking(void *app, int entering)
{
    if (entering) waiting_ts = PyEval_SaveThread();
    else PyEval_RestoreThread(waiting_ts);
}

const gp_app_ops gp_wsgi_ops = {
    .start = wsgi_start,
    .resume = wsgi_resume,
    .abort = wsgi_abort,
    .before_wait = wsgi_before_wait,
    .after_wait = wsgi_after_wait,
    .blocking = wsgi_blocking,
};

/* --threads: each request thread keeps one thread state for its lifetime
 * (so threading.local and the like survive between requests) and holds the
 * GIL only while the app runs. */
static __thread PyThreadState *request_thread_ts;

static void wsgi_thread_init(void *app)
{
    PyGILState_Ensure();
    request_thread_ts = PyEval_SaveThread();
}

static gp_app_status wsgi_start_threaded(void *app, gp_conn *c, const gp_http_request *req)
{
    PyEval_RestoreThread(request_thread_ts);
    gp_app_status st = wsgi_start(app, c, req);
    request_thread_ts = PyEval_SaveThread();
    return st;
}

/* The core calls resume and abort on a request thread too (never on the
 * loop's, which holds no GIL): a response that waited on a slow reader goes
 * on, or is released, with the GIL taken here. */
static gp_app_status wsgi_resume_threaded(void *app, gp_conn *c)
{
    PyEval_RestoreThread(request_thread_ts);
    gp_app_status st = wsgi_resume(app, c);
    request_thread_ts = PyEval_SaveThread();
    return st;
}

static void wsgi_abort_threaded(void *app, gp_conn *c)
{
    PyEval_RestoreThread(request_thread_ts);
    wsgi_abort(app, c);
    request_thread_ts = PyEval_SaveThread();
}

const gp_app_ops gp_wsgi_threaded_ops = {
    .start = wsgi_start_threaded,
    .resume = wsgi_resume_threaded,
    .abort = wsgi_abort_threaded,
    .blocking = wsgi_blocking,
    .thread_init = wsgi_thread_init,
};

gp_wsgi *gp_wsgi_new(PyObject *app, const gp_config *cfg)
{
    if (PyType_Ready(&Request_Type) < 0 || PyType_Ready(&Input_Type) < 0 ||
        PyType_Ready(&FileWrapper_Type) < 0)
        return NULL;
    gp_wsgi *w = PyMem_Calloc(1, sizeof *w);
    if (!w) return (gp_wsgi *)PyErr_NoMemory();
    Py_INCREF(app);
    w->app = app;
    w->k_method = gp_bridge_intern("REQUEST_METHOD");
    w->k_script = gp_bridge_intern("SCRIPT_NAME");
    w->k_path = gp_bridge_intern("PATH_INFO");
    w->k_query = gp_bridge_intern("QUERY_STRING");
    w->k_protocol = gp_bridge_intern("SERVER_PROTOCOL");
    w->k_raw_uri = gp_bridge_intern("RAW_URI");
    w->k_remote_addr = gp_bridge_intern("REMOTE_ADDR");
    w->k_remote_port = gp_bridge_intern("REMOTE_PORT");
    w->k_server_name = gp_bridge_intern("SERVER_NAME");
    w->k_server_port = gp_bridge_intern("SERVER_PORT");
    w->k_input = gp_bridge_intern("wsgi.input");
    w->v_http10 = gp_bridge_intern("HTTP/1.0");
    w->v_http11 = gp_bridge_intern("HTTP/1.1");
    w->v_http2 = gp_bridge_intern("HTTP/2");
    w->v_empty = gp_bridge_intern("");
    w->k_scheme = gp_bridge_intern("wsgi.url_scheme");
    w->k_host = gp_bridge_intern("HTTP_HOST");
    w->v_http = gp_bridge_intern("http");
    w->v_https = gp_bridge_intern("https");

    gp_bridge_json_stderr(); /* wsgi.errors is sys.stderr */
    PyObject *errors = PySys_GetObject("stderr");
    PyObject *env = PyDict_New();
    if (!env || !errors) return NULL;
    int bad = PyDict_SetItem(env, w->k_script, gp_bridge_root_str()) < 0;
    PyObject *version = Py_BuildValue("(ii)", 1, 0);
    bad = bad || !version || PyDict_SetItemString(env, "wsgi.version", version) < 0;
    Py_XDECREF(version);
    PyObject *scheme = gp_bridge_intern("http"), *software = gp_bridge_intern("gallop");
    bad =
        bad || PyDict_SetItemString(env, "wsgi.url_scheme", scheme) < 0 ||
        PyDict_SetItemString(env, "wsgi.errors", errors) < 0 ||
        PyDict_SetItemString(env, "wsgi.multithread", cfg->threads > 1 ? Py_True : Py_False) < 0 ||
        PyDict_SetItemString(env, "wsgi.multiprocess", Py_True) < 0 ||
        PyDict_SetItemString(env, "wsgi.run_once", Py_False) < 0 ||
        PyDict_SetItemString(env, "wsgi.input_terminated", Py_True) < 0 ||
        PyDict_SetItemString(env, "wsgi.file_wrapper", (PyObject *)&FileWrapper_Type) < 0 ||
        PyDict_SetItemString(env, "SERVER_SOFTWARE", software) < 0;
    Py_XDECREF(scheme);
    Py_XDECREF(software);
    if (bad) return NULL;
    w->base_env = env;
    return w;
}
