/* conffile: config files read into flags; see conffile.h.
 *
 * Owns finding the file, running a Python one in a child interpreter and
 * mapping what it defines (gunicorn's setting names, gallop's own flags,
 * server hooks) onto "--flag=value" strings, each checked on its own so an
 * error can name its line. Never links or loads Python. */
#include "core/conffile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/scoreboard.h" /* gp_monotonic_ms */

#ifndef GP_PYTHON
#define GP_PYTHON "/usr/bin/python3"
#endif

#define EVAL_TIMEOUT_MS 30000
#define EVAL_MAX_OUTPUT (4u << 20)

/* Run by the child interpreter: argv[1] the location, argv[2] the name to
 * show. Executes the file as gunicorn does (a module "__config__", the
 * current directory on sys.path) and writes to fd 3, one per line,
 * "TYPE<tab>LINE<tab>NAME<tab>VALUE" for each public top-level name (a list
 * or tuple: "[<tab>LINE<tab>NAME<tab>COUNT", then its items). TYPE: b bool,
 * i int, f float, s str, n None, c class (VALUE module.qualname), F other
 * callable, o anything else (VALUE its repr), x a str with a line break.
 * LINE is where the name is last bound at module level. Its own errors are
 * one "gallop: error:" line and exit 2. */
static const char eval_script[] =
    "import ast, os, sys, types, traceback\n"
    "loc, shown = sys.argv[1], sys.argv[2]\n"
    "out = os.fdopen(3, 'w', encoding='utf-8', errors='surrogateescape')\n"
    "def die(line, msg):\n"
    "    sys.stderr.write('gallop: error: config file %s%s: %s' % (shown, ', line %d' % line if "
    "line else '', msg) + chr(10))\n"
    "    sys.stderr.flush()\n"
    "    os._exit(2)\n"
    "def where(tb, path):\n"
    "    line = 0\n"
    "    while tb is not None:\n"
    "        if tb.tb_frame.f_code.co_filename == path: line = tb.tb_lineno\n"
    "        tb = tb.tb_next\n"
    "    return line\n"
    "path = loc[5:] if loc.startswith('file:') else loc\n"
    "src = None\n"
    "try:\n"
    "    if loc.startswith('python:'):\n"
    "        import importlib, importlib.util\n"
    "        spec = importlib.util.find_spec(loc[7:])\n"
    "        if spec is None: die(0, 'no module named %r' % loc[7:])\n"
    "        path = spec.origin or loc\n"
    "        mod = importlib.import_module(loc[7:])\n"
    "    else:\n"
    "        with open(path, 'rb') as f: src = f.read()\n"
    "        code = compile(src, path, 'exec')\n"
    "        mod = types.ModuleType('__config__')\n"
    "        mod.__file__ = path\n"
    "        sys.modules['__config__'] = mod\n"
    "        exec(code, vars(mod))\n"
    "except SyntaxError as e:\n"
    "    if e.filename == path: die(e.lineno, 'SyntaxError: %s' % e.msg)\n"
    "    traceback.print_exc()\n"
    "    die(where(e.__traceback__, path), 'SyntaxError in %s, line %s: %s' % (e.filename, "
    "e.lineno, e.msg))\n"
    "except OSError as e:\n"
    "    if src is None and e.filename == path: die(0, 'cannot read it: %s' % e.strerror)\n"
    "    line = where(e.__traceback__, path)\n"
    "    if not line: traceback.print_exc()\n"
    "    die(line, '%s: %s' % (type(e).__name__, e))\n"
    "except BaseException as e:\n"
    "    line = where(e.__traceback__, path)\n"
    "    if not line: traceback.print_exc()\n"
    "    die(line, ('%s: %s' % (type(e).__name__, e)) if str(e) else type(e).__name__)\n"
    "lines = {}\n"
    "scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)\n"
    "nested = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)\n"
    "def scan(node):\n"
    "    for ch in ast.iter_child_nodes(node):\n"
    "        if isinstance(ch, scopes): lines[ch.name] = ch.lineno; continue\n"
    "        if isinstance(ch, nested): continue\n"
    "        if isinstance(ch, ast.Name) and isinstance(ch.ctx, ast.Store): lines[ch.id] = "
    "ch.lineno\n"
    "        elif isinstance(ch, ast.alias): lines[(ch.asname or ch.name).split('.')[0]] = "
    "getattr(ch, 'lineno', 0)\n"
    "        scan(ch)\n"
    "try:\n"
    "    if src is None and path and os.path.exists(path):\n"
    "        with open(path, 'rb') as f: src = f.read()\n"
    "    if src is not None: scan(ast.parse(src))\n"
    "except Exception:\n"
    "    pass\n"
    "def one(v):\n"
    "    if isinstance(v, bool): return 'b', 'true' if v else 'false'\n"
    "    if isinstance(v, int): return 'i', str(v)\n"
    "    if isinstance(v, float): return 'f', repr(v)\n"
    "    if isinstance(v, str):\n"
    "        if any(c in v for c in (chr(10), chr(13), chr(0))): return 'x', repr(v)[:200]\n"
    "        return 's', v\n"
    "    if v is None: return 'n', ''\n"
    "    if isinstance(v, type): return 'c', v.__module__ + '.' + v.__qualname__\n"
    "    if callable(v): return 'F', getattr(v, '__qualname__', '')\n"
    "    try: r = repr(v)\n"
    "    except Exception: r = '?'\n"
    "    return 'o', r.replace(chr(10), ' ').replace(chr(13), ' ')[:200]\n"
    "for name, v in list(vars(mod).items()):\n"
    "    if name.startswith('_') or isinstance(v, types.ModuleType): continue\n"
    "    line = lines.get(name, 0)\n"
    "    items = [v]\n"
    "    if isinstance(v, (list, tuple)):\n"
    "        out.write('[%s%d%s%s%s%d%s' % (chr(9), line, chr(9), name, chr(9), len(v), "
    "chr(10)))\n"
    "        items = v\n"
    "    for it in items:\n"
    "        t, s = one(it) if not isinstance(it, (list, tuple)) or it is v else ('o', "
    "repr(it)[:200])\n"
    "        out.write('%s%s%d%s%s%s%s%s' % (t, chr(9), line, chr(9), name, chr(9), s, "
    "chr(10)))\n"
    "out.close()\n"
    "sys.stdout.flush()\n"
    "sys.stderr.flush()\n"
    "os._exit(0)  # no waiting for threads the file started, nor its atexit handlers\n";

/* ---- where gallop started ------------------------------------------------------------ */

static char start_cwd[PATH_MAX];

/* GALLOP_START_CWD is how a master re-executed by USR2 learns it. */
const char *gp_conffile_start_cwd(void)
{
    if (!start_cwd[0]) {
        const char *e = getenv("GALLOP_START_CWD");
        if (e && e[0] == '/' && strlen(e) < sizeof start_cwd) {
            snprintf(start_cwd, sizeof start_cwd, "%s", e);
            unsetenv("GALLOP_START_CWD");
        } else if (!getcwd(start_cwd, sizeof start_cwd)) {
            snprintf(start_cwd, sizeof start_cwd, "/");
        }
    }
    return start_cwd;
}

void gp_conffile_apply_env(const gp_config *cfg)
{
    for (int i = 0; i < cfg->num_env; i++) {
        const char *eq = strchr(cfg->env[i], '='); /* there is one: config.c checked */
        char *key = strndup(cfg->env[i], (size_t)(eq - cfg->env[i]));
        if (key && setenv(key, eq + 1, 1) < 0)
            gp_warn("cannot set %s: %s", cfg->env[i], strerror(errno));
        free(key);
    }
}

/* ---- the flags a file gives ---------------------------------------------------------- */

typedef struct {
    char **flags;  /* "--name=value", malloc'd */
    char **wheres; /* "config file F, line N: setting 'x': ", malloc'd */
    size_t n, cap;
    const char *shown; /* the file as the user named it */
    bool hooks;        /* it defines worker hooks */
    bool preload;      /* preload_app = True */
    char master_hooks[8][24];
    int master_hook_lines[8];
    int num_master_hooks;
} flag_list;

static void flags_free(flag_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->flags[i]);
        free(l->wheres[i]);
    }
    free(l->flags);
    free(l->wheres);
    memset(l, 0, sizeof *l);
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

static int where_text(char *buf, size_t len, const flag_list *l, int line, const char *name)
{
    return snprintf(buf, len, "config file %s%s%.0d%s%s%s: ", l->shown, line ? ", line " : "", line,
                    name ? ": setting '" : "", name ? name : "", name ? "'" : "");
}

static int add_flag(flag_list *l, int line, const char *name, const char *flag, const char *value)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 32;
        char **f = realloc(l->flags, cap * sizeof *f);
        if (f) l->flags = f;
        char **w = realloc(l->wheres, cap * sizeof *w);
        if (w) l->wheres = w;
        if (!f || !w) return -1;
        l->cap = cap;
    }
    char where[PATH_MAX + 128];
    where_text(where, sizeof where, l, line, name);
    char *f = value ? xasprintf("--%s=%s", flag, value) : xasprintf("--%s", flag);
    char *w = strdup(where);
    if (!f || !w) {
        free(f);
        free(w);
        return -1;
    }
    l->flags[l->n] = f;
    l->wheres[l->n++] = w;
    return 0;
}

/* One "gallop: error: config file F, line N: setting 'x': ..." line, or the
 * same as a logged warning. Returns -1, for errors to return. */
static int file_say(bool error, const flag_list *l, int line, const char *name, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));
static int file_say(bool error, const flag_list *l, int line, const char *name, const char *fmt,
                    ...)
{
    char msg[PATH_MAX + 1024];
    int n = where_text(msg, sizeof msg, l, line, name);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof msg) vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    if (error) fprintf(stderr, "gallop: error: %s\n", msg);
    else gp_warn("%s", msg);
    return -1;
}
#define file_error(...) file_say(true, __VA_ARGS__)
#define file_warn(...) ((void)file_say(false, __VA_ARGS__))

/* ---- gunicorn's settings --------------------------------------------------------------- */

enum {
    S_FLAG,    /* a gallop flag of another name (or the same) */
    S_WARN,    /* not implemented: a warning unless the value is gunicorn's default */
    S_ERROR,   /* not implemented and unsafe to ignore: an error unless default */
    S_SKIP,    /* gallop already behaves as any value asks */
    S_HOOK,    /* a server hook run in the worker */
    S_MASTER,  /* a server hook run in the master (--preload only) */
    S_SPECIAL, /* worker_class, umask, pythonpath */
};

typedef struct {
    const char *name;
    unsigned char kind;
    const char *flag;  /* S_FLAG: the gallop flag; S_WARN/S_ERROR: one that implements it */
    const char *deflt; /* gunicorn's default as the interpreter prints it (NULL: None) */
    const char *why;   /* what the warning or error says */
} setting;

#define NO_SSL_CONTEXT "ignored: gallop makes its TLS context from certfile, keyfile, ca_certs, " \
    "cert_reqs, ciphers and ssl_version"
#define NO_RAGGED "ignored: a client that closes without close_notify ends its connection cleanly"
#define NO_SYSLOG "gallop logs to --error-log only (no syslog, no logging config)"
#define NO_STATSD "gallop sends no StatsD metrics"
#define STRICT "gallop's HTTP parser is strict and has no such switch"

static const setting settings[] = {
    {"wsgi_app", S_FLAG, "wsgi-app", NULL, NULL},
    {"bind", S_FLAG, "bind", NULL, NULL},
    {"backlog", S_FLAG, "backlog", NULL, NULL},
    {"workers", S_FLAG, "workers", NULL, NULL},
    {"workers_min", S_FLAG, "workers-min", NULL, NULL},
    {"workers_max", S_FLAG, "workers-max", NULL, NULL},
    {"worker_class", S_SPECIAL, NULL, "sync", NULL},
    {"threads", S_FLAG, "threads", NULL, NULL},
    {"worker_connections", S_FLAG, "worker-connections", NULL, NULL},
    {"max_requests", S_FLAG, "max-requests", NULL, NULL},
    {"max_requests_jitter", S_FLAG, "max-requests-jitter", NULL, NULL},
    {"timeout", S_FLAG, "timeout", NULL, NULL},
    {"graceful_timeout", S_FLAG, "graceful-timeout", NULL, NULL},
    {"keepalive", S_FLAG, "keep-alive", NULL, NULL},
    {"limit_request_line", S_FLAG, "limit-request-line", NULL, NULL},
    {"limit_request_fields", S_FLAG, "limit-request-fields", NULL, NULL},
    {"limit_request_field_size", S_FLAG, "limit-request-field_size", NULL, NULL},
    {"reload", S_FLAG, "reload", NULL, NULL},
    {"reload_engine", S_FLAG, "reload-engine", NULL, NULL},
    {"reload_extra_files", S_FLAG, "reload-extra-file", NULL, NULL},
    {"spew", S_WARN, NULL, "false", "gallop has no call tracing; ignored"},
    {"check_config", S_FLAG, "check-config", NULL, NULL},
    {"print_config", S_ERROR, NULL, "false",
     "not supported: gallop would start serving instead of only printing"},
    {"preload_app", S_FLAG, "preload", NULL, NULL},
    {"sendfile", S_WARN, NULL, "true", "gallop always uses sendfile for wsgi.file_wrapper"},
    {"reuse_port", S_FLAG, "reuse-port", NULL, NULL},
    {"chdir", S_FLAG, "chdir", NULL, NULL},
    {"daemon", S_ERROR, NULL, "false",
     "gallop does not detach: run it in the foreground under systemd (Type=notify), a "
     "container or a supervisor"},
    {"raw_env", S_FLAG, "env", NULL, NULL},
    {"pidfile", S_FLAG, "pid", NULL, NULL},
    {"worker_tmp_dir", S_WARN, "worker-tmp-dir", NULL,
     "not needed: gallop's workers report to the master through shared memory; ignored"},
    {"user", S_FLAG, "user", NULL, NULL},
    {"group", S_FLAG, "group", NULL, NULL},
    {"umask", S_SPECIAL, "umask", NULL, NULL},
    {"initgroups", S_SKIP, NULL, NULL, NULL}, /* gallop always sets the user's groups */
    {"tmp_upload_dir", S_WARN, NULL, NULL,
     "ignored: gallop spools large request bodies to $TMPDIR (set TMPDIR instead)"},
    {"secure_scheme_headers", S_WARN, NULL,
     "{'X-FORWARDED-PROTOCOL': 'ssl', 'X-FORWARDED-PROTO': 'https', 'X-FORWARDED-SSL': 'on'}",
     "ignored: gallop reads X-Forwarded-Proto and Forwarded from --forwarded-allow-ips peers"},
    {"forwarded_allow_ips", S_SPECIAL, "forwarded-allow-ips", NULL, NULL},
    {"accesslog", S_FLAG, "access-log", NULL, NULL},
    {"disable_redirect_access_to_syslog", S_WARN, NULL, "false", NO_SYSLOG},
    {"access_log_format", S_FLAG, "access-log-format", NULL, NULL},
    {"errorlog", S_FLAG, "error-log", NULL, NULL},
    {"loglevel", S_FLAG, "log-level", NULL, NULL},
    {"capture_output", S_WARN, NULL, "false",
     "ignored: the workers' stderr goes to --error-log already; their stdout stays gallop's"},
    {"logger_class", S_WARN, NULL, "gunicorn.glogging.Logger", NO_SYSLOG},
    {"logconfig", S_WARN, NULL, NULL, NO_SYSLOG},
    {"logconfig_dict", S_WARN, NULL, "{}", NO_SYSLOG},
    {"logconfig_json", S_WARN, NULL, NULL, NO_SYSLOG},
    {"syslog_addr", S_WARN, NULL, "udp://localhost:514", NO_SYSLOG},
    {"syslog", S_WARN, NULL, "false", NO_SYSLOG},
    {"syslog_prefix", S_WARN, NULL, NULL, NO_SYSLOG},
    {"syslog_facility", S_WARN, NULL, "user", NO_SYSLOG},
    {"enable_stdio_inheritance", S_SKIP, NULL, NULL, NULL}, /* gallop never detaches */
    {"statsd_host", S_WARN, NULL, NULL, NO_STATSD},
    {"dogstatsd_tags", S_WARN, NULL, "", NO_STATSD},
    {"statsd_prefix", S_WARN, NULL, "", NO_STATSD},
    {"proc_name", S_WARN, NULL, NULL, "ignored: gallop does not set process titles"},
    {"default_proc_name", S_WARN, NULL, "gunicorn", "ignored: gallop does not set process titles"},
    {"pythonpath", S_SPECIAL, "pythonpath", NULL, NULL},
    {"paste", S_ERROR, NULL, NULL,
     "PasteDeploy is not supported: name the app as MODULE:ATTRIBUTE"},
    {"raw_paste_global_conf", S_WARN, NULL, NULL, "PasteDeploy is not supported; ignored"},
    {"on_starting", S_MASTER, NULL, NULL, NULL},
    {"on_reload", S_MASTER, NULL, NULL, NULL},
    {"when_ready", S_MASTER, NULL, NULL, NULL},
    {"pre_fork", S_MASTER, NULL, NULL, NULL},
    {"pre_exec", S_MASTER, NULL, NULL, NULL},
    {"child_exit", S_MASTER, NULL, NULL, NULL},
    {"nworkers_changed", S_MASTER, NULL, NULL, NULL},
    {"on_exit", S_MASTER, NULL, NULL, NULL},
    {"post_fork", S_HOOK, NULL, NULL, NULL},
    {"post_worker_init", S_HOOK, NULL, NULL, NULL},
    {"worker_int", S_HOOK, NULL, NULL, NULL},   /* on INT; QUIT exits at once, in C */
    {"worker_abort", S_HOOK, NULL, NULL, NULL}, /* on --timeout, after the traceback dump */
    {"pre_request", S_HOOK, NULL, NULL, NULL},
    {"post_request", S_HOOK, NULL, NULL, NULL},
    {"worker_exit", S_HOOK, NULL, NULL, NULL},
    {"ssl_context", S_HOOK, NULL, NULL, NULL},
    {"proxy_protocol", S_FLAG, "proxy-protocol", NULL, NULL},
    {"proxy_allow_ips", S_WARN, NULL, "127.0.0.1",
     "ignored: gallop takes PROXY headers from --forwarded-allow-ips peers"},
    /* TLS (core/tls.h); ssl.PROTOCOL_* and ssl.CERT_* print as their numbers */
    {"keyfile", S_FLAG, "keyfile", NULL, NULL},
    {"certfile", S_FLAG, "certfile", NULL, NULL},
    {"ca_certs", S_FLAG, "ca-certs", NULL, NULL},
    {"ssl_version", S_FLAG, "ssl-version", NULL, NULL},
    {"cert_reqs", S_FLAG, "cert-reqs", NULL, NULL},
    {"ciphers", S_FLAG, "ciphers", NULL, NULL},
    {"keyfile_password", S_FLAG, "keyfile-password", NULL, NULL},
    {"ssl_min_version", S_FLAG, "ssl-min-version", NULL, NULL},
    {"suppress_ragged_eofs", S_WARN, NULL, "true", NO_RAGGED},
    {"do_handshake_on_connect", S_SKIP, NULL, NULL, NULL}, /* always in the loop, first */
    {"strip_header_spaces", S_WARN, NULL, "false", STRICT},
    {"tolerate_dangerous_framing", S_WARN, NULL, "false", STRICT},
    {"permit_obsolete_folding", S_WARN, NULL, "false", STRICT},
    {"permit_unconventional_http_method", S_WARN, NULL, "false", STRICT},
    {"permit_unconventional_http_version", S_WARN, NULL, "false", STRICT},
    {"casefold_http_method", S_WARN, NULL, "false", STRICT},
    {"header_map", S_WARN, NULL, "drop", "gallop drops header names with '_' (as 'drop')"},
    {"forwarder_headers", S_WARN, NULL, NULL, "ignored: see --forwarded-allow-ips"},
    {"config", S_WARN, NULL, NULL, "ignored inside a config file"},
};

static const setting *find_setting(const char *name)
{
    for (size_t i = 0; i < sizeof settings / sizeof *settings; i++)
        if (strcmp(settings[i].name, name) == 0) return &settings[i];
    return NULL;
}

/* Flags the command line gives as a list: there, they replace the file's. */
static bool repeatable(const char *flag)
{
    static const char *const list[] = {"bind",
                                       "fd",
                                       "pythonpath",
                                       "env",
                                       "reload-dir",
                                       "static",
                                       "reload-include",
                                       "reload-exclude",
                                       "reload-extra-file"};
    for (size_t i = 0; i < sizeof list / sizeof *list; i++)
        if (strcmp(list[i], flag) == 0) return true;
    return false;
}

/* Edit distance, for "did you mean": small names only. */
static int distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40) return 99;
    int row[41];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The setting name nearest to name, or NULL when none is close. */
static const char *near_setting(const char *name)
{
    const char *best = NULL;
    int bd = strlen(name) <= 5 ? 2 : 3;
    for (size_t i = 0; i < sizeof settings / sizeof *settings; i++) {
        int d = distance(name, settings[i].name);
        if (d < bd) {
            bd = d;
            best = settings[i].name;
        }
    }
    return best;
}

/* ---- what the interpreter printed -------------------------------------------------------- */

typedef struct {
    char type;
    const char *value;
} item;

static bool all_lowercase(const char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') return false;
    return true;
}

static const char *type_name(char t)
{
    switch (t) {
    case 'b': return "True/False";
    case 'i': return "a number";
    case 'f': return "a number";
    case 's': return "a string";
    case 'c': return "a class";
    case 'F': return "a function";
    case 'x': return "a string with a line break";
    default: return "an object";
    }
}

static bool is_default(const setting *s, const item *it, int n, bool list)
{
    if (list) return n == 0;
    if (it->type == 'n') return true;
    return s->deflt && strcmp(it->value, s->deflt) == 0;
}

/* One value as flag text, or an error. */
static int value_text(const flag_list *l, int line, const char *name, const item *it)
{
    if (it->type == 's' || it->type == 'i' || it->type == 'f') return 0;
    if (it->type == 'x')
        return file_error(l, line, name, "a value cannot contain a line break: %s", it->value);
    return file_error(l, line, name, "expects a value, not %s%s%s", type_name(it->type),
                      it->type == 'o' ? ": " : "", it->type == 'o' ? it->value : "");
}

static int emit(flag_list *l, int line, const char *name, const char *flag, const item *items,
                int n, bool list)
{
    int has_arg = gp_config_has_flag(flag);
    if (has_arg == 2 && !list && n == 1 && items[0].type != 's')
        has_arg = 0;    /* True: the bare flag */
    if (has_arg == 0) { /* a switch */
        if (list || n != 1) return file_error(l, line, name, "expects True or False, not a list");
        const item *it = &items[0];
        const char *v = it->value;
        if (it->type == 'n') return 0;
        bool on = strcasecmp(v, "true") == 0 || (it->type == 'i' && strcmp(v, "1") == 0);
        bool off = strcasecmp(v, "false") == 0 || (it->type == 'i' && strcmp(v, "0") == 0);
        if ((it->type != 'b' && it->type != 's' && it->type != 'i') || (!on && !off))
            return file_error(l, line, name, "expects True or False, not %s", type_name(it->type));
        if (on && strcmp(flag, "preload") == 0) l->preload = true;
        return on ? add_flag(l, line, name, flag, NULL) : 0;
    }
    if (list && n != 1 && !repeatable(flag))
        return file_error(l, line, name, "takes one value, not a list");
    for (int i = 0; i < n; i++) {
        if (items[i].type == 'n') continue;
        if (value_text(l, line, name, &items[i]) < 0) return -1;
        if (add_flag(l, line, name, flag, items[i].value) < 0) return -1;
    }
    return 0;
}

/* A list of strings (or one with commas) as one "a,b" value. */
static int emit_joined(flag_list *l, int line, const char *name, const char *flag,
                       const item *items, int n)
{
    char buf[4096] = "";
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if (items[i].type == 'n') continue;
        if (value_text(l, line, name, &items[i]) < 0) return -1;
        off += (size_t)snprintf(buf + off, off < sizeof buf ? sizeof buf - off : 0, "%s%s",
                                off ? "," : "", items[i].value);
    }
    if (off >= sizeof buf) return file_error(l, line, name, "the list is too long");
    return off ? add_flag(l, line, name, flag, buf) : 0;
}

static int worker_class(flag_list *l, int line, const char *name, const item *it)
{
    const char *v = it->value;
    if (it->type == 'n' || strcmp(v, "sync") == 0 || strcmp(v, "gthread") == 0 ||
        strcmp(v, "gunicorn.workers.sync.SyncWorker") == 0 ||
        strcmp(v, "gunicorn.workers.gthread.ThreadWorker") == 0)
        return 0; /* gallop's own loop, with --threads for gthread */
    if (strncmp(v, "uvicorn.workers.Uvicorn", 23) == 0) /* UvicornWorker, UvicornH11Worker */
        return add_flag(l, line, name, "interface", "asgi");
    if (it->type != 's' && it->type != 'c') return value_text(l, line, name, it);
    if (gp_config_has_flag("worker-class") > 0) /* which refuses the classes gallop lacks */
        return add_flag(l, line, name, "worker-class", v);
    file_warn(l, line, name,
              "'%s' is not supported: gallop serves with its own event loop (sync WSGI, "
              "--threads, or ASGI)",
              v);
    return 0;
}

static int special(flag_list *l, int line, const setting *s, const item *items, int n, bool list)
{
    const char *name = s->name;
    if (strcmp(name, "worker_class") == 0) {
        if (list) return file_error(l, line, name, "takes one value, not a list");
        return worker_class(l, line, name, &items[0]);
    }
    if (strcmp(name, "forwarded_allow_ips") == 0)
        return emit_joined(l, line, name, s->flag, items, n);
    if (strcmp(name, "umask") == 0 && !list && items[0].type == 'i') {
        /* gunicorn takes an int (umask = 0o022); --umask is octal text */
        char *end;
        long v = strtol(items[0].value, &end, 10);
        if (v < 0 || v > 0777) return file_error(l, line, name, "invalid umask %s", items[0].value);
        char oct[8];
        snprintf(oct, sizeof oct, "%03lo", v);
        return add_flag(l, line, name, s->flag, oct);
    }
    if (strcmp(name, "umask") == 0 && !list && items[0].type == 's' &&
        strncmp(items[0].value, "0o", 2) == 0)
        return add_flag(l, line, name, s->flag, items[0].value + 2);
    if (strcmp(name, "pythonpath") == 0 && !list && items[0].type == 's') {
        /* gunicorn's is "dir1,dir2" */
        char *copy = strdup(items[0].value), *save = NULL;
        if (!copy) return -1;
        int r = 0;
        for (char *p = strtok_r(copy, ",", &save); p && r == 0; p = strtok_r(NULL, ",", &save))
            if (*p) r = add_flag(l, line, name, s->flag, p);
        free(copy);
        return r;
    }
    return emit(l, line, name, s->flag, items, n, list);
}

static int take_hook(flag_list *l, int line, const setting *s, const item *it, int n, bool list)
{
    if (list || n != 1 || (it->type != 'F' && it->type != 'n'))
        return file_error(l, line, s->name, "a server hook must be a function, not %s",
                          list ? "a list" : type_name(it->type));
    if (it->type == 'n') return 0;
    if (strcmp(s->name, "ssl_context") == 0) {
        file_warn(l, line, s->name, "%s", NO_SSL_CONTEXT);
        return 0;
    }
    if (s->kind == S_HOOK) {
        l->hooks = true;
    } else if (l->num_master_hooks < 8) {
        snprintf(l->master_hooks[l->num_master_hooks], sizeof l->master_hooks[0], "%s", s->name);
        l->master_hook_lines[l->num_master_hooks++] = line;
    }
    return 0;
}

/* One top-level name the file defines, with its value (n items when list). */
static int take(flag_list *l, const char *name, int line, const item *items, int n, bool list)
{
    const setting *s = find_setting(name);
    if (s) {
        switch (s->kind) {
        case S_FLAG: return emit(l, line, name, s->flag, items, n, list);
        case S_SPECIAL: return special(l, line, s, items, n, list);
        case S_HOOK:
        case S_MASTER: return take_hook(l, line, s, items, n, list);
        case S_SKIP: return 0;
        }
        if (s->flag && gp_config_has_flag(s->flag) >= 0) /* implemented since */
            return emit(l, line, name, s->flag, items, n, list);
        if (is_default(s, items, n, list)) return 0;
        if (s->kind == S_ERROR) return file_error(l, line, name, "%s", s->why);
        file_warn(l, line, name, "%s", s->why);
        return 0;
    }
    /* command-line spellings are not settings: a gunicorn.conf.py's
     * "port = 8000" or "env = 'prod'" is a helper, which gunicorn ignores */
    static const char *const helpers[][2] = {{"host", "bind = \"HOST:PORT\""},
                                             {"port", "bind = \"HOST:PORT\""},
                                             {"uds", "bind = \"unix:PATH\""},
                                             {"fd", "bind = \"fd://N\""},
                                             {"pid", "pidfile"},
                                             {"env", "raw_env"}};
    for (size_t i = 0; i < sizeof helpers / sizeof *helpers; i++)
        if (strcmp(name, helpers[i][0]) == 0) {
            file_warn(l, line, name, "not a setting; ignored, as gunicorn does (the setting is %s)",
                      helpers[i][1]);
            return 0;
        }
    /* gallop's own flags, with '_' for '-' */
    char flag[64];
    snprintf(flag, sizeof flag, "%s", name);
    for (char *p = flag; *p; p++)
        if (*p == '_') *p = '-';
    if (strlen(name) < sizeof flag && gp_config_has_flag(flag) >= 0 && strcmp(flag, "help") &&
        strcmp(flag, "version") && strcmp(flag, "config") && strcmp(flag, "config-hooks"))
        return emit(l, line, name, flag, items, n, list);
    /* helpers: functions, classes, CONSTANTS; gunicorn ignores every unknown name */
    if (!list && (items[0].type == 'F' || items[0].type == 'c')) return 0;
    if (!all_lowercase(name)) return 0;
    const char *near = near_setting(name);
    if (near) return file_error(l, line, name, "unknown setting (did you mean '%s'?)", near);
    file_warn(l, line, name, "not a gunicorn or gallop setting; ignored");
    return 0;
}

/* Splits one "TYPE\tLINE\tNAME\tVALUE" line in place. */
static int split_line(char *s, char *type, int *line, char **name, char **value)
{
    char *t1 = strchr(s, '\t');
    char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
    char *t3 = t2 ? strchr(t2 + 1, '\t') : NULL;
    if (!t3 || t1 != s + 1) return -1;
    *t1 = *t2 = *t3 = 0;
    *type = s[0];
    *line = atoi(t1 + 1);
    *name = t2 + 1;
    *value = t3 + 1;
    return 0;
}

/* Maps the interpreter's output (modified in place) onto l. */
static int take_output(flag_list *l, char *out)
{
    item items[256];
    char *save = NULL;
    for (char *ln = strtok_r(out, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        char type, *name, *value;
        int line;
        if (split_line(ln, &type, &line, &name, &value) < 0) goto bad;
        if (type != '[') {
            items[0] = (item){type, value};
            if (take(l, name, line, items, 1, false) < 0) return -1;
            continue;
        }
        int count = atoi(value), n = 0;
        for (; n < count; n++) {
            char t, *nm, *v;
            int li;
            char *next = strtok_r(NULL, "\n", &save);
            if (!next || split_line(next, &t, &li, &nm, &v) < 0 || strcmp(nm, name)) goto bad;
            if (n < 256) items[n] = (item){t, v};
        }
        if (count > 256) return file_error(l, line, name, "a list of more than 256 values");
        if (take(l, name, line, items, count, true) < 0) return -1;
    }
    return 0;
bad:
    return file_error(l, 0, NULL, "the interpreter's answer could not be read");
}

/* ---- running the interpreter --------------------------------------------------------- */

static const char *pick_python(int argc, char **argv, char *buf, size_t len)
{
    const char *venv = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--venv") == 0 && i + 1 < argc) venv = argv[i + 1];
        else if (strncmp(argv[i], "--venv=", 7) == 0) venv = argv[i] + 7;
    }
    if (!venv) venv = getenv("VIRTUAL_ENV");
    if (venv && *venv) {
        snprintf(buf, len, "%s/bin/python", venv);
        if (access(buf, X_OK) == 0) return buf;
    }
    return GP_PYTHON;
}

/* Runs the evaluator on location; *out gets what it wrote to fd 3. */
static int evaluate(const flag_list *l, const char *python, const char *location, char **out)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return file_error(l, 0, NULL, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return file_error(l, 0, NULL, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL); /* the master blocks its signals */
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0) dup2(null, 0);
        dup2(fds[1], 3); /* dup2 clears close-on-exec */
        char *args[] = {(char *)python,   "-c", (char *)eval_script, (char *)location,
                        (char *)l->shown, NULL};
        execv(python, args);
        fprintf(stderr, "gallop: error: config file %s: cannot run the Python interpreter %s: %s\n",
                l->shown, python, strerror(errno));
        _exit(2);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    int64_t deadline = (int64_t)gp_monotonic_ms() + EVAL_TIMEOUT_MS;
    bool eof = false, exited = false, timed_out = false, too_big = false;
    int status = 0;
    while (buf && !eof) {
        int64_t left = deadline - (int64_t)gp_monotonic_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        poll(&p, 1, left < 100 ? (int)left : 100);
        for (;;) {
            if (n + 4096 > cap) {
                char *more = cap < EVAL_MAX_OUTPUT ? realloc(buf, cap * 2) : NULL;
                if (!more) {
                    too_big = true;
                    break;
                }
                buf = more;
                cap *= 2;
            }
            ssize_t r = read(fds[0], buf + n, cap - n - 1);
            if (r > 0) {
                n += (size_t)r;
                continue;
            }
            if (r == 0) eof = true;
            else if (errno == EINTR) continue;
            break;
        }
        /* drained once more after the exit: whatever still holds the pipe
         * (a process the file started) is not waited for */
        if (too_big || exited) break;
        if (waitpid(pid, &status, WNOHANG) == pid) exited = true;
    }
    close(fds[0]);
    if (!exited) {
        if (!eof) kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    if (!buf) return file_error(l, 0, NULL, "out of memory");
    buf[n] = 0;
    if (timed_out)
        return free(buf), file_error(l, 0, NULL,
                                     "still running after %d s; is it waiting on "
                                     "something?",
                                     EVAL_TIMEOUT_MS / 1000);
    if (too_big) return free(buf), file_error(l, 0, NULL, "defines too much");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 2) return free(buf), -1; /* it said why */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return free(buf), file_error(l, 0, NULL, "the Python interpreter %s failed (%s %d)", python,
                                     WIFEXITED(status) ? "exit status" : "signal",
                                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    *out = buf;
    return 0;
}

static int read_python(flag_list *l, int argc, char **argv, const char *location,
                       const char *abs_path)
{
    char pybuf[PATH_MAX];
    const char *python = pick_python(argc, argv, pybuf, sizeof pybuf);
    char *out = NULL;
    if (evaluate(l, python, location, &out) < 0) return -1;
    int r = take_output(l, out);
    free(out);
    if (r < 0) return -1;
    bool cli_preload = false;
    for (int i = 1; i < argc; i++) cli_preload |= strcmp(argv[i], "--preload") == 0;
    for (int i = 0; i < l->num_master_hooks; i++)
        if (!l->preload && !cli_preload)
            file_warn(l, l->master_hook_lines[i], l->master_hooks[i],
                      "this master hook is not run: the master runs Python only with --preload "
                      "(preload_app = True)");
    if ((l->hooks || l->num_master_hooks) && abs_path)
        return add_flag(l, 0, NULL, "config-hooks", abs_path);
    return 0;
}

/* ---- files of "name = value" lines ------------------------------------------------------- */

/* One line as a flag: "max_requests = 10" -> "--max-requests=10"; gunicorn's
 * names (keepalive, accesslog, preload_app) map as in a Python file. */
static int read_line(flag_list *l, char *line, int lineno)
{
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    char *end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
        *--end = 0;
    if (!*p) return 0;
    while (*p == '-') p++;
    char *name = p;
    while (*p && *p != '=' && *p != ' ' && *p != '\t') p++;
    char *value = NULL;
    if (*p) {
        *p++ = 0;
        while (*p == ' ' || *p == '\t' || *p == '=') p++;
        value = p;
        size_t n = strlen(value);
        if (n >= 2 && (value[0] == '"' || value[0] == '\'') && value[n - 1] == value[0]) {
            value[n - 1] = 0;
            value++;
        }
    }
    if (strcmp(name, "import") == 0 || strcmp(name, "from") == 0 || strcmp(name, "def") == 0)
        return file_error(l, lineno, NULL,
                          "this looks like Python: a Python config file's name ends in .py");
    const setting *s = find_setting(name);
    char flag[4096];
    snprintf(flag, sizeof flag, "%s", s && s->kind == S_FLAG ? s->flag : name);
    if (!(s && s->kind == S_FLAG))
        for (char *q = flag; *q; q++)
            if (*q == '_') *q = '-';
    return add_flag(l, lineno, name, flag, value && *value ? value : NULL);
}

static int read_lines(flag_list *l, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return file_error(l, 0, NULL, "cannot read it: %s", strerror(errno));
    char line[4096];
    int lineno = 0, r = 0;
    while (r == 0 && fgets(line, sizeof line, f)) r = read_line(l, line, ++lineno);
    fclose(f);
    return r;
}

/* ---- putting it together ----------------------------------------------------------------- */

static const char *find_config_arg(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) return NULL;
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--config=", 9) == 0) return argv[i] + 9;
    }
    return NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Checks each of the file's flags alone, so an error can say where it came from. */
static int check_each(const flag_list *l, const char *argv0)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *f = l->flags[i] + 2;
        if (strncmp(f, "help", 4) == 0 || strncmp(f, "version", 7) == 0 ||
            strncmp(f, "config=", 7) == 0 || strcmp(f, "config") == 0) {
            fprintf(stderr, "gallop: error: %snot a setting\n", l->wheres[i]);
            return -1;
        }
        char *one[] = {(char *)argv0, l->flags[i], (char *)"app", NULL};
        gp_config tmp;
        gp_config_set_error_where(l->wheres[i]);
        int r = gp_config_parse(&tmp, 3, one);
        gp_config_set_error_where(NULL);
        if (r != 0) return -1;
    }
    return 0;
}

/* Where to listen: one of these on the command line replaces all of the file's. */
static const char *const address_flags[] = {"bind", "host", "port", "uds", "fd", NULL};

static bool address_flag(const char *name)
{
    for (const char *const *a = address_flags; *a; a++)
        if (strcmp(*a, name) == 0) return true;
    return false;
}

/* Whether the command line gives --flag (or its short form). */
static bool cli_has(int argc, char **argv, const char *flag, const char *shortf)
{
    size_t k = strlen(flag);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (shortf && strncmp(a, shortf, 2) == 0) return true;
        if (a[0] == '-' && a[1] == '-' && strncmp(a + 2, flag, k) == 0 &&
            (a[2 + k] == 0 || a[2 + k] == '='))
            return true;
    }
    return false;
}

/* Splits s as a POSIX shell would (quotes, backslashes; no expansions), as
 * gunicorn splits GUNICORN_CMD_ARGS with shlex. words[0] is argv0, so the
 * result reads like an argv. Returns the count, or -1 for an open quote. */
static int split_words(const char *s, const char *argv0, char ***out)
{
    size_t cap = 8, n = 0, len = strlen(s);
    char **w = malloc(cap * sizeof *w);
    char *buf = malloc(len + 1);
    if (!w || !buf) goto fail;
    w[n++] = (char *)argv0;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        size_t k = 0;
        char quote = 0;
        for (; *p && (quote || (*p != ' ' && *p != '\t' && *p != '\n')); p++) {
            if (quote == '\'') {
                if (*p == '\'') quote = 0;
                else buf[k++] = *p;
            } else if (*p == '\\' && p[1] && (!quote || strchr("\"\\$`", p[1]))) {
                buf[k++] = *++p;
            } else if (quote == '"' && *p == '"') {
                quote = 0;
            } else if (!quote && (*p == '\'' || *p == '"')) {
                quote = *p;
            } else {
                buf[k++] = *p;
            }
        }
        if (quote) goto fail;
        if (n + 2 > cap) {
            char **more = realloc(w, 2 * cap * sizeof *w);
            if (!more) goto fail;
            w = more;
            cap *= 2;
        }
        if (!(w[n] = strndup(buf, k))) goto fail;
        n++;
    }
    free(buf);
    w[n] = NULL;
    *out = w;
    return (int)n;
fail:
    for (size_t i = 1; w && i < n; i++) free(w[i]);
    free(w);
    free(buf);
    return -1;
}

/* The long name of an option word (-b is bind, -e env), or NULL; *takes_next
 * when its value is the next word. */
static const char *option_name(const char *word, char *name, size_t len, bool *takes_next)
{
    *takes_next = false;
    if (word[0] != '-' || !word[1]) return NULL;
    if (word[1] != '-') {
        static const char *const shorts[][2] = {{"b", "bind"}, {"e", "env"}, {"c", "config"}};
        for (size_t i = 0; i < sizeof shorts / sizeof *shorts; i++)
            if (word[1] == shorts[i][0][0]) {
                *takes_next = !word[2];
                return snprintf(name, len, "%s", shorts[i][1]), name;
            }
        return NULL;
    }
    size_t k = strcspn(word + 2, "=");
    snprintf(name, len, "%.*s", (int)k, word + 2);
    *takes_next = !word[2 + k] && gp_config_has_flag(name) == 1;
    return name;
}

/* A list the command line gives replaces the file's (or GUNICORN_CMD_ARGS'):
 * every address flag when it names any, else the same repeatable flag. */
static bool replaced(const char *name, int argc, char **argv, bool cli_address)
{
    if (address_flag(name)) return cli_address;
    const char *shortf = strcmp(name, "env") == 0 ? "-e" : NULL;
    return (repeatable(name) || strcmp(name, "config-hooks") == 0) &&
           cli_has(argc, argv, name, shortf);
}

static bool has_address(int argc, char **argv)
{
    bool any = cli_has(argc, argv, "bind", "-b");
    for (const char *const *a = address_flags; *a; a++) any |= cli_has(argc, argv, *a, NULL);
    return any;
}

/* GUNICORN_CMD_ARGS, split and checked on their own ("app" stands in for the app). */
static int env_args(const char *argv0, char ***words)
{
    const char *e = getenv("GUNICORN_CMD_ARGS");
    *words = NULL;
    if (!e || !*e) return 0;
    int n = split_words(e, argv0, words);
    if (n < 0) {
        fprintf(stderr, "gallop: error: GUNICORN_CMD_ARGS: an open quote in '%s'\n", e);
        return -1;
    }
    char **check = malloc(((size_t)n + 2) * sizeof *check);
    if (!check) return -1;
    memcpy(check, *words, (size_t)n * sizeof *check);
    check[n] = (char *)"app";
    check[n + 1] = NULL;
    gp_config tmp;
    gp_config_set_error_where("GUNICORN_CMD_ARGS: ");
    int r = gp_config_parse(&tmp, n + 1, check);
    gp_config_set_error_where(NULL);
    free(check);
    return r < 0 ? -1 : n - 1;
}

int gp_config_load(gp_config *cfg, int argc, char **argv)
{
    char **env; /* GUNICORN_CMD_ARGS: between the file and the command line, as in gunicorn */
    int envc = env_args(argv[0], &env);
    if (envc < 0) return -1;
    const char *given = find_config_arg(argc, argv), *cwd = gp_conffile_start_cwd();
    if (!given && envc) given = find_config_arg(envc + 1, env);
    char path[2 * PATH_MAX + 8] = "";
    bool python = false;
    if (given) {
        const char *p = strncmp(given, "file:", 5) == 0 ? given + 5 : given;
        python = strncmp(given, "python:", 7) == 0 || ends_with(p, ".py");
        if (strncmp(given, "python:", 7) == 0) snprintf(path, sizeof path, "%s", given);
        else if (p[0] == '/') snprintf(path, sizeof path, "%s", p);
        else snprintf(path, sizeof path, "%s/%s", cwd, p);
    } else {
        /* gunicorn reads ./gunicorn.conf.py when no -c is given; gallop's own name first */
        static const char *const defaults[] = {"gallop.conf.py", "gunicorn.conf.py"};
        for (int i = 0; i < 2 && !given; i++) {
            snprintf(path, sizeof path, "%s/%s", cwd, defaults[i]);
            if (access(path, F_OK) == 0) given = defaults[i];
        }
        if (!given && !envc) return gp_config_parse(cfg, argc, argv);
        python = given != NULL;
    }
    bool module = given && strncmp(given, "python:", 7) == 0;
    flag_list l = {.shown = given};
    int r = !given   ? 0
            : python ? read_python(&l, argc, argv, path, module ? NULL : path)
                     : read_lines(&l, path);
    if (r == 0) r = check_each(&l, argv[0]);
    if (r < 0) {
        flags_free(&l);
        return -1;
    }
    /* the file's flags, GUNICORN_CMD_ARGS, then the command line's */
    char **all = malloc((l.n + (size_t)envc + (size_t)argc + 1) * sizeof *all);
    if (!all) {
        r = file_error(&l, 0, NULL, "out of memory");
        flags_free(&l);
        return r;
    }
    size_t n = 0;
    all[n++] = argv[0];
    bool cli_address = has_address(argc, argv), env_address = envc && has_address(envc + 1, env);
    for (size_t i = 0; i < l.n; i++) {
        char *f = l.flags[i], name[64];
        bool next;
        option_name(f, name, sizeof name, &next);
        bool drop = replaced(name, argc, argv, cli_address) ||
                    (envc && replaced(name, envc + 1, env, env_address));
        free(l.wheres[i]);
        if (drop) free(f);
        else all[n++] = f;
    }
    free(l.flags);
    free(l.wheres);
    for (int i = 1; i <= envc; i++) {
        char name[64];
        bool next;
        bool drop = option_name(env[i], name, sizeof name, &next) &&
                    replaced(name, argc, argv, cli_address);
        if (!drop) all[n++] = env[i];
        if (next && i < envc && !drop) all[n++] = env[++i];
        else if (next) i++;
    }
    if (envc) gp_info("settings from GUNICORN_CMD_ARGS: %s", getenv("GUNICORN_CMD_ARGS"));
    free(env); /* its words stay: cfg may point into them */
    for (int i = 1; i < argc; i++) all[n++] = argv[i];
    all[n] = NULL;
    r = gp_config_parse(cfg, (int)n, all);
    cfg->argv = argv; /* USR2 and HUP start again from what was given */
    cfg->argc = argc;
    cfg->file_args = all; /* kept: the strings cfg points to are in it */
    if (r == 0 && given) {
        char *shown = strdup(path);
        cfg->config_file = shown ? shown : given;
        gp_info("config file %s read (%s)", cfg->config_file,
                python ? "Python, as gunicorn reads it" : "one setting a line");
    }
    return r;
}
