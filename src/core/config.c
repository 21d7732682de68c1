/* config: command-line parsing; see config.h. */
#include "core/config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cpus.h"
#include "core/listen.h"
#include "core/log.h"
#include "core/tlsconf.h"

#ifndef GP_VERSION
#define GP_VERSION "0.1.0"
#endif
const char gp_version[] = GP_VERSION;

static const char usage_text[] =
    "usage: gallop [OPTIONS] MODULE[:ATTRIBUTE] [OPTIONS]\n"
    "\n"
    "Serve a Python web app, WSGI (Flask, Django) or ASGI (FastAPI, Starlette), from a\n"
    "pre-fork master; which one is detected (see --interface). ATTRIBUTE defaults to\n"
    "'app'; MODULE:create_app('x', debug=True) calls an app factory with literal\n"
    "arguments. Options may come before or after the app.\n"
    "\n"
    "  -c, --config FILE            a Python file as gunicorn reads it (FILE.py, python:MODULE;\n"
    "                               default ./gallop.conf.py, else ./gunicorn.conf.py), or\n"
    "                               one setting a line (\"workers = 4\"); re-read on HUP\n"
    "  -b, --bind ADDR              HOST:PORT, [::1]:PORT or unix:/path (repeatable;\n"
    "                               default 127.0.0.1:8000)\n"
    "  -w, --workers N|auto         worker processes (default $WEB_CONCURRENCY, else auto:\n"
    "                               the CPUs this process may use)\n"
    "      --factory                call MODULE:ATTRIBUTE() to get the app\n"
    "      --chdir DIR              change to DIR before loading the app\n"
    "      --pythonpath DIR         prepend DIR to sys.path (repeatable)\n"
    "      --venv DIR               use this virtual environment (default $VIRTUAL_ENV)\n"
    "      --root-path PATH         SCRIPT_NAME the app is mounted at\n"
    "      --backlog N              listen backlog (2048)\n"
    "      --worker-connections N   connections one worker holds before it stops accepting\n"
    "                               (1000)\n"
    "      --graceful-timeout S     seconds workers get to finish on TERM (30)\n"
    "      --keep-alive S           seconds an idle keep-alive connection is kept (5)\n"
    "      --workers-formula F      what auto means: cores (default) or 2cores+1 (blocking apps)\n"
    "      --workers-min N, --workers-max M  adaptive workers: start at N (or --workers), add\n"
    "                               one while they are saturated, retire one when idle; either\n"
    "                               alone: min 1, max 2 x usable CPUs (1 x for ASGI)\n"
    "      --threads N              WSGI request threads per worker (1)\n"
    "      --timeout S              kill a worker whose request or loop is stuck this long,\n"
    "                               after logging its Python tracebacks (30; 0: never)\n"
    "      --max-requests N         retire a worker after N requests (0: never)\n"
    "      --max-requests-jitter J  add a random 0..J to --max-requests per worker\n"
    "      --max-worker-memory MB   retire a worker whose resident memory passes MB\n"
    "      --preload                import the app in the master before forking\n"
    "      --reuse-port             one SO_REUSEPORT socket per worker\n"
    "      --fd N                   serve on an already-open listening socket (repeatable)\n"
    "      --pid FILE               write the master's pid here\n"
    "      --user USER, --group GROUP  workers run as this user / group\n"
    "      --umask MASK             the master's umask (octal), e.g. 007\n"
    "      --interface I            auto, wsgi, asgi or asgi2 (auto: a coroutine app is ASGI 3)\n"
    "      --loop L                 ASGI event loop: auto, asyncio or uvloop (auto: uvloop if "
    "present)\n"
    "      --lifespan L             ASGI lifespan: auto, on or off (auto)\n"
    "      --limit-concurrency N    ASGI: answer 503 past N requests in progress per worker\n"
    "      --ws-max-size N          largest WebSocket message in bytes (16777216)\n"
    "      --ws-ping-interval S     ping idle WebSockets every S seconds (20; 0: never)\n"
    "      --ws-ping-timeout S      close a WebSocket whose pong is this late (20)\n"
    "      --limit-request-line N   max request line bytes (4094; 0: 65536)\n"
    "      --limit-request-fields N max header fields (100; at most 256)\n"
    "      --limit-request-field_size N  max bytes of one header line (8190; 0: 65536)\n"
    "      --limit-request-body N   max request body bytes (0: unlimited)\n"
    "      --limit-request-head N   max bytes of a whole request head (65536; 1024 to 16777216)\n"
    "      --header-timeout S       408 when a request head takes longer than S (30)\n"
    "      --body-timeout S         408 when no request-body byte comes for S seconds (30)\n"
    "      --send-timeout S         close when a client takes no response byte for S (60)\n"
    "      --body-buffer-size N     sync WSGI: read the body before the app runs, in memory\n"
    "                               up to N bytes, beyond in a temp file (1048576; 0: the\n"
    "                               app reads it from the socket as it arrives)\n"
    "      --static PREFIX=DIR      serve the files of DIR at URL PREFIX from C, before the\n"
    "                               app (repeatable), e.g. --static /static=./staticfiles\n"
    "      --static-max-age S       Cache-Control: max-age=S on static files (default: none)\n"
    "      --forwarded-allow-ips IPS  peers whose X-Forwarded-* / Forwarded / PROXY headers\n"
    "                               are believed: IPs, networks, '*', 'unix' (default\n"
    "                               $FORWARDED_ALLOW_IPS, else 127.0.0.1,::1)\n"
    "      --proxy-protocol[=ADDR]  expect a PROXY v1/v2 header first on every listener\n"
    "                               (or on --bind ADDR only; repeatable)\n"
    "      --log-level LEVEL        debug, info, warning, error, critical (info)\n"
    "      --access-log FILE|-      write an access log (off by default)\n"
    "      --error-log FILE|-       where the error log goes (- : stderr)\n"
    "      --access-log-format F    gunicorn's atoms, e.g. '%(h)s \"%(r)s\" %(s)s %(D)s'\n"
    "                               (default: gunicorn's, as --access-log writes it)\n"
    "      --log-format text|json   error and access log lines as text or one JSON object\n"
    "                               each (text)\n"
    "      --log-slow S             a warning for each request slower than S seconds\n"
    "  -e, --env KEY=VALUE          set an environment variable for the workers (repeatable)\n"
    "      --wsgi-app SPEC          the app when none is given after the options\n"
    "      --config-hooks FILE      run this Python file's server hooks (set by a .py config)\n"
    "  -v, -V, --version            print the version and exit\n"
    "      --reload                 development: new workers when a watched file changes\n"
    "      --reload-dir DIR         watch DIR instead of the current directory (repeatable)\n"
    "      --reload-include GLOB    also reload for files matching GLOB (repeatable; *.py)\n"
    "      --reload-exclude GLOB    ignore files matching GLOB, or directory DIR (repeatable;\n"
    "                               .*, .py[cod], .sw.*, ~*)\n"
    "      --reload-extra-file FILE also reload when FILE changes (repeatable)\n"
    "      --reload-delay S         seconds of quiet before reloading (0.25)\n"
    "      --check-config           check the settings and exit (0 good, 2 bad); loads nothing\n"
    "      --metrics-bind ADDR      the master serves Prometheus /metrics and /healthz at\n"
    "                               HOST:PORT or unix:/path (repeatable; off by default)\n"
    "                               `gallop top [ADDR]` shows the workers live from it\n"
    "      --http 1|2|auto          HTTP versions served: 1 (HTTP/1.1 only), 2 (HTTP/2 only:\n"
    "                               h2 by ALPN, h2c with prior knowledge), auto (both; h2c by\n"
    "                               prior knowledge or Upgrade: h2c) (auto)\n"
    "  -h, --help                   print this help and exit\n"
    "\n"
    "gallop tune MODULE:APP [--path P] [--duration S] [--plot F.svg] [--json]\n"
    "  measures the app at growing --workers/--threads counts with gallop's own load\n"
    "  generator and recommends them (gallop tune --help)\n"
    "\n"
    "TLS (HTTPS and wss on every --bind, or per bind: see below):\n"
    "      --certfile FILE          PEM certificate, then its chain; TLS 1.2 and 1.3\n"
    "      --keyfile FILE           PEM private key (default: in --certfile)\n"
    "      --keyfile-password PW    the key's password\n"
    "      --ca-certs FILE          PEM CAs that sign client certificates\n"
    "      --cert-reqs 0|1|2        client certificates: none, optional, required (0)\n"
    "      --ciphers LIST           OpenSSL cipher list for TLS 1.2\n"
    "      --ssl-min-version V      TLSv1.2 (default) or TLSv1.3 (also --ssl-version)\n"
    "  Per bind: --bind ADDR,certfile=F,keyfile=K[,ca-certs=C,cert-reqs=2,...] (the\n"
    "  flag names as keys; they win over the flags), --bind ADDR,plain or\n"
    "  --insecure-bind ADDR for no TLS there. HUP re-reads the certificates.\n"
    "  uvicorn's --ssl-certfile, --ssl-keyfile, ... are the same flags.\n"
    "\n"
    "uvicorn's and gunicorn's spellings:\n"
    "      --host HOST --port PORT  one --bind HOST:PORT (defaults 127.0.0.1 and 8000)\n"
    "      --uds PATH               --bind unix:PATH\n"
    "      --timeout-keep-alive S   --keep-alive S\n"
    "      --limit-max-requests N   --max-requests N\n"
    "      --no-access-log          no access log (the default without --access-log)\n"
    "      --proxy-headers, --no-proxy-headers  trust X-Forwarded-* from\n"
    "                               --forwarded-allow-ips peers, or not (on)\n"
    "  -k, --worker-class K         sync, gthread or uvicorn.workers.UvicornWorker: gallop's\n"
    "                               own workers serve them all (others are refused)\n"
    "  -t S, -p FILE, -u USER, -g GROUP, -m MASK  --timeout, --pid, --user, --group, --umask\n"
    "      --app-dir DIR            --pythonpath DIR\n"
    "      --http h11|httptools     --http 1 (uvicorn's HTTP/1.1 parsers)\n"
    "      --ws auto|websockets|wsproto, --worker-tmp-dir DIR\n"
    "                               accepted: gallop's own C HTTP and WebSocket code serves,\n"
    "                               and its worker heartbeat lives in shared memory\n"
    "  --bind also takes tcp://HOST:PORT, HOST alone (port 8000), PORT alone\n"
    "  (127.0.0.1:PORT), unix://PATH and fd://N. Without any address: 0.0.0.0:$PORT when\n"
    "  PORT is set (as gunicorn does), else 127.0.0.1:8000.\n"
    "\n"
    "Signals to the master: TERM/INT graceful stop, QUIT immediate stop, HUP reload the app\n"
    "with a new generation of workers, TTIN/TTOU one worker more/less (adaptive: both\n"
    "bounds and the count move by one), USR1 reopen logs,\n"
    "USR2 re-execute the binary (upgrade) keeping the sockets.\n"
    "Exit codes: 0 clean stop, 1 error, 2 usage, 3 worker boot failed, 4 app failed to load.\n";

enum {
    OPT_CHDIR = 256,
    OPT_PYTHONPATH,
    OPT_BACKLOG,
    OPT_GRACEFUL,
    OPT_KEEPALIVE,
    OPT_LRL,
    OPT_LRF,
    OPT_LRFS,
    OPT_LRB,
    OPT_LRH,
    OPT_LOGLEVEL,
    OPT_ACCESS,
    OPT_ERROR,
    OPT_VERSION,
    OPT_FACTORY,
    OPT_VENV,
    OPT_ROOT,
    OPT_REUSEPORT,
    OPT_FORMULA,
    OPT_THREADS,
    OPT_TIMEOUT,
    OPT_MAXREQ,
    OPT_JITTER,
    OPT_MAXMEM,
    OPT_PRELOAD,
    OPT_FD,
    OPT_PID,
    OPT_USER,
    OPT_GROUP,
    OPT_UMASK,
    OPT_INTERFACE,
    OPT_LOOP,
    OPT_LIFESPAN,
    OPT_LIMITCONC,
    OPT_WSMAX,
    OPT_WSPING,
    OPT_WSPINGTO,
    OPT_CONFIG,
    OPT_HEADERTO,
    OPT_BODYTO,
    OPT_SENDTO,
    OPT_BODYBUF,
    OPT_WORKERCONNS,
    /* Python config files (conffile.c) */
    OPT_WSGIAPP,
    OPT_CONFIGHOOKS,
    /* uvicorn's and gunicorn's spellings */
    OPT_HOST,
    OPT_PORT,
    OPT_UDS,
    OPT_NOACCESS,
    OPT_PROXYHDRS,
    OPT_NOPROXYHDRS,
    OPT_WORKERCLASS,
    OPT_HTTPIMPL,
    OPT_WSIMPL,
    OPT_WORKERTMP,
    OPT_STATIC,
    OPT_STATIC_MAXAGE,
    /* --reload and --check-config */
    OPT_RELOAD,
    OPT_RELOAD_DIR,
    OPT_RELOAD_INCLUDE,
    OPT_RELOAD_EXCLUDE,
    OPT_RELOAD_EXTRA,
    OPT_RELOAD_DELAY,
    OPT_RELOAD_ENGINE,
    OPT_CHECK_CONFIG,
    OPT_FWD_ALLOW,
    OPT_PROXY_PROTOCOL,
    OPT_METRICS_BIND,
    /* logs */
    OPT_ALOG_FORMAT,
    OPT_LOG_FORMAT,
    OPT_LOG_SLOW,
    /* adaptive workers (core/autoscale.h) */
    OPT_WORKERS_MIN,
    OPT_WORKERS_MAX,
    /* TLS */
    OPT_CERTFILE,
    OPT_KEYFILE,
    OPT_KEYPASS,
    OPT_CACERTS,
    OPT_CERTREQS,
    OPT_CIPHERS,
    OPT_SSLMIN,
    OPT_INSECURE_BIND,
};

static const struct option long_opts[] = {
    {"bind", required_argument, 0, 'b'},
    {"config", required_argument, 0, 'c'},
    {"workers", required_argument, 0, 'w'},
    {"chdir", required_argument, 0, OPT_CHDIR},
    {"pythonpath", required_argument, 0, OPT_PYTHONPATH},
    {"backlog", required_argument, 0, OPT_BACKLOG},
    {"worker-connections", required_argument, 0, OPT_WORKERCONNS},
    {"graceful-timeout", required_argument, 0, OPT_GRACEFUL},
    {"keep-alive", required_argument, 0, OPT_KEEPALIVE},
    {"limit-request-line", required_argument, 0, OPT_LRL},
    {"limit-request-fields", required_argument, 0, OPT_LRF},
    {"limit-request-field_size", required_argument, 0, OPT_LRFS},
    {"limit-request-field-size", required_argument, 0, OPT_LRFS},
    {"limit-request-body", required_argument, 0, OPT_LRB},
    {"limit-request-head", required_argument, 0, OPT_LRH},
    {"log-level", required_argument, 0, OPT_LOGLEVEL},
    {"access-log", required_argument, 0, OPT_ACCESS},
    {"access-logfile", required_argument, 0, OPT_ACCESS},
    {"error-log", required_argument, 0, OPT_ERROR},
    {"error-logfile", required_argument, 0, OPT_ERROR},
    {"log-file", required_argument, 0, OPT_ERROR},
    {"version", no_argument, 0, OPT_VERSION},
    {"factory", no_argument, 0, OPT_FACTORY},
    {"venv", required_argument, 0, OPT_VENV},
    {"root-path", required_argument, 0, OPT_ROOT},
    {"reuse-port", no_argument, 0, OPT_REUSEPORT},
    {"workers-formula", required_argument, 0, OPT_FORMULA},
    {"threads", required_argument, 0, OPT_THREADS},
    {"timeout", required_argument, 0, OPT_TIMEOUT},
    {"max-requests", required_argument, 0, OPT_MAXREQ},
    {"max-requests-jitter", required_argument, 0, OPT_JITTER},
    {"max-worker-memory", required_argument, 0, OPT_MAXMEM},
    {"preload", no_argument, 0, OPT_PRELOAD},
    {"fd", required_argument, 0, OPT_FD},
    {"pid", required_argument, 0, OPT_PID},
    {"user", required_argument, 0, OPT_USER},
    {"group", required_argument, 0, OPT_GROUP},
    {"umask", required_argument, 0, OPT_UMASK},
    {"interface", required_argument, 0, OPT_INTERFACE},
    {"loop", required_argument, 0, OPT_LOOP},
    {"lifespan", required_argument, 0, OPT_LIFESPAN},
    {"limit-concurrency", required_argument, 0, OPT_LIMITCONC},
    {"ws-max-size", required_argument, 0, OPT_WSMAX},
    {"ws-ping-interval", required_argument, 0, OPT_WSPING},
    {"ws-ping-timeout", required_argument, 0, OPT_WSPINGTO},
    {"header-timeout", required_argument, 0, OPT_HEADERTO},
    {"body-timeout", required_argument, 0, OPT_BODYTO},
    {"send-timeout", required_argument, 0, OPT_SENDTO},
    {"body-buffer-size", required_argument, 0, OPT_BODYBUF},
    /* Python config files (conffile.c) */
    {"env", required_argument, 0, 'e'},
    {"wsgi-app", required_argument, 0, OPT_WSGIAPP},
    {"config-hooks", required_argument, 0, OPT_CONFIGHOOKS},
    {"static", required_argument, 0, OPT_STATIC},
    {"static-map", required_argument, 0, OPT_STATIC}, /* uWSGI's name, the same syntax */
    {"static-max-age", required_argument, 0, OPT_STATIC_MAXAGE},
    {"reload", no_argument, 0, OPT_RELOAD},
    {"reload-dir", required_argument, 0, OPT_RELOAD_DIR},
    {"reload-dirs", required_argument, 0, OPT_RELOAD_DIR},
    {"reload-include", required_argument, 0, OPT_RELOAD_INCLUDE},
    {"reload-includes", required_argument, 0, OPT_RELOAD_INCLUDE},
    {"reload-exclude", required_argument, 0, OPT_RELOAD_EXCLUDE},
    {"reload-excludes", required_argument, 0, OPT_RELOAD_EXCLUDE},
    {"reload-extra-file", required_argument, 0, OPT_RELOAD_EXTRA},
    {"reload-extra-files", required_argument, 0, OPT_RELOAD_EXTRA},
    {"reload-delay", required_argument, 0, OPT_RELOAD_DELAY},
    {"reload-engine", required_argument, 0, OPT_RELOAD_ENGINE},
    {"check-config", no_argument, 0, OPT_CHECK_CONFIG},
    {"forwarded-allow-ips", required_argument, 0, OPT_FWD_ALLOW},
    {"proxy-protocol", optional_argument, 0, OPT_PROXY_PROTOCOL},
    {"metrics-bind", required_argument, 0, OPT_METRICS_BIND},
    {"help", no_argument, 0, 'h'},
    /* uvicorn's and gunicorn's spellings */
    {"host", required_argument, 0, OPT_HOST},
    {"port", required_argument, 0, OPT_PORT},
    {"uds", required_argument, 0, OPT_UDS},
    {"timeout-keep-alive", required_argument, 0, OPT_KEEPALIVE},
    {"limit-max-requests", required_argument, 0, OPT_MAXREQ},
    {"no-access-log", no_argument, 0, OPT_NOACCESS},
    {"proxy-headers", no_argument, 0, OPT_PROXYHDRS},
    {"no-proxy-headers", no_argument, 0, OPT_NOPROXYHDRS},
    {"worker-class", required_argument, 0, OPT_WORKERCLASS},
    {"app-dir", required_argument, 0, OPT_PYTHONPATH},
    {"http", required_argument, 0, OPT_HTTPIMPL},
    {"ws", required_argument, 0, OPT_WSIMPL},
    {"worker-tmp-dir", required_argument, 0, OPT_WORKERTMP},
    /* logs */
    {"access-log-format", required_argument, 0, OPT_ALOG_FORMAT},
    {"access-logformat", required_argument, 0, OPT_ALOG_FORMAT}, /* gunicorn's spelling */
    {"log-format", required_argument, 0, OPT_LOG_FORMAT},
    {"log-slow", required_argument, 0, OPT_LOG_SLOW},
    {"workers-min", required_argument, 0, OPT_WORKERS_MIN},
    {"workers-max", required_argument, 0, OPT_WORKERS_MAX},
    /* TLS: gunicorn's names, uvicorn's (--ssl-*), hypercorn's --insecure-bind */
    {"certfile", required_argument, 0, OPT_CERTFILE},
    {"ssl-certfile", required_argument, 0, OPT_CERTFILE},
    {"keyfile", required_argument, 0, OPT_KEYFILE},
    {"ssl-keyfile", required_argument, 0, OPT_KEYFILE},
    {"keyfile-password", required_argument, 0, OPT_KEYPASS},
    {"ssl-keyfile-password", required_argument, 0, OPT_KEYPASS},
    {"ca-certs", required_argument, 0, OPT_CACERTS},
    {"ssl-ca-certs", required_argument, 0, OPT_CACERTS},
    {"cert-reqs", required_argument, 0, OPT_CERTREQS},
    {"ssl-cert-reqs", required_argument, 0, OPT_CERTREQS},
    {"ciphers", required_argument, 0, OPT_CIPHERS},
    {"ssl-ciphers", required_argument, 0, OPT_CIPHERS},
    {"ssl-min-version", required_argument, 0, OPT_SSLMIN},
    {"ssl-version", required_argument, 0, OPT_SSLMIN},
    {"insecure-bind", required_argument, 0, OPT_INSECURE_BIND},
    {0, 0, 0, 0},
};

/* static, with a setter: a global variable would exist twice with --preload
 * (the binary's core and the bridge's), which ASan reports as an ODR violation */
static const char *error_where;

void gp_config_set_error_where(const char *where)
{
    error_where = where;
}

int gp_config_has_flag(const char *name)
{
    for (const struct option *o = long_opts; o->name; o++)
        if (strcmp(o->name, name) == 0)
            return o->has_arg == no_argument ? 0 : o->has_arg == required_argument ? 1 : 2;
    return -1;
}

static int fail(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "gallop: error: %s", error_where ? error_where : "");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    return -1;
}

static int parse_ull(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    if (!*s || *s == '-' || *s == '+') return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max) return -1;
    *out = v;
    return 0;
}

/* --reload-dir/-include/-exclude/-extra-file: each a list, one value a flag. */
static int add_reload_entry(gp_config *cfg, int opt, char *value)
{
    const char **list = opt == OPT_RELOAD_DIR       ? cfg->reload_dirs
                        : opt == OPT_RELOAD_INCLUDE ? cfg->reload_includes
                        : opt == OPT_RELOAD_EXCLUDE ? cfg->reload_excludes
                                                    : cfg->reload_extra_files;
    int *n = opt == OPT_RELOAD_DIR       ? &cfg->num_reload_dirs
             : opt == OPT_RELOAD_INCLUDE ? &cfg->num_reload_includes
             : opt == OPT_RELOAD_EXCLUDE ? &cfg->num_reload_excludes
                                         : &cfg->num_reload_extra_files;
    const char *name = opt == OPT_RELOAD_DIR       ? "--reload-dir"
                       : opt == OPT_RELOAD_INCLUDE ? "--reload-include"
                       : opt == OPT_RELOAD_EXCLUDE ? "--reload-exclude"
                                                   : "--reload-extra-file";
    if (!*value) return fail("%s needs a value%s", name, "");
    if (*n == GP_MAX_RELOAD) return fail("too many %s (at most 32)%s", name, "");
    list[(*n)++] = value;
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0) || v > 1e7) return -1;
    *out = v;
    return 0;
}

/* --static URL_PREFIX=DIR: DIR is resolved now (relative to where gallop
 * started, before --chdir) and must be a directory. */
static int parse_static(gp_config *cfg, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || arg[0] != '/' || !eq[1])
        return fail("invalid --static '%s': use URL_PREFIX=DIR, the prefix starting with '/'%s",
                    arg, "");
    size_t n = (size_t)(eq - arg);
    while (n > 0 && arg[n - 1] == '/') n--;
    if (memchr(arg, '?', n) || memchr(arg, '#', n) || memchr(arg, '%', n))
        return fail("invalid --static '%s': the prefix is a plain path (no '?', '#' or '%%')%s",
                    arg, "");
    if (cfg->num_statics == GP_MAX_STATIC)
        return fail("too many --static (at most 16)%s%s", "", "");
    char *prefix = strndup(arg, n), *dir = realpath(eq + 1, NULL);
    if (!prefix) return fail("out of memory%s%s", "", "");
    if (!dir) {
        free(prefix);
        return fail("invalid --static '%s': %s", arg, strerror(errno));
    }
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        free(prefix);
        free(dir);
        return fail("invalid --static '%s': %s", arg, "not a directory");
    }
    for (int i = 0; i < cfg->num_statics; i++)
        if (strcmp(cfg->statics[i].prefix, prefix) == 0) {
            free(prefix);
            free(dir);
            return fail("invalid --static '%s': that prefix is mounted already%s", arg, "");
        }
    cfg->statics[cfg->num_statics].prefix = prefix;
    cfg->statics[cfg->num_statics++].dir = dir;
    return 0;
}

/* Resolves "auto" / a number / WEB_CONCURRENCY into cfg->workers and its reason. */
static int resolve_workers(gp_config *cfg, const char *spec, const char *source,
                           bool twice_plus_one)
{
    if (strcmp(spec, "auto") == 0) {
        gp_cpus c;
        gp_cpus_detect(&c, "", 0);
        cfg->workers = twice_plus_one ? 2 * c.usable + 1 : c.usable;
        snprintf(cfg->workers_why, sizeof cfg->workers_why, "%s%s",
                 twice_plus_one ? "2 x cores + 1; " : "", c.why);
        return 0;
    }
    unsigned long long n;
    if (parse_ull(spec, GP_MAX_WORKERS, &n) || n < 1)
        return fail("invalid worker count '%s' (from %s): use a number from 1 to 1024 or 'auto'",
                    spec, source);
    cfg->workers = (int)n;
    snprintf(cfg->workers_why, sizeof cfg->workers_why, "from %s", source);
    return 0;
}

/* --workers-min / --workers-max (0: not given): either alone implies the
 * other. An explicit --workers N is the count to start with, and must lie
 * within the bounds (a number outside them is a mistake to report, not to
 * guess at); without it the master starts at the minimum. */
static int resolve_adaptive(gp_config *cfg, int min, int max, int start)
{
    char max_why[120] = "";
    if (!min) min = 1;
    if (!max) {
        gp_cpus c;
        gp_cpus_detect(&c, "", 0);
        bool asgi = !strcmp(cfg->interface, "asgi") || !strcmp(cfg->interface, "asgi2");
        max = c.usable * (asgi ? 1 : 2);
        if (max > GP_MAX_WORKERS) max = GP_MAX_WORKERS;
        if (max < min) max = min;
        cfg->workers_max_implied = !asgi; /* an app found to be ASGI lowers it (master.c) */
        snprintf(max_why, sizeof max_why, ", max %s%d usable CPU%s", asgi ? "" : "2 x ", c.usable,
                 c.usable == 1 ? "" : "s");
    }
    char a[64], b[32];
    snprintf(a, sizeof a, "%d", min);
    snprintf(b, sizeof b, "%d", max);
    if (min > max) return fail("--workers-min %s is above --workers-max %s", a, b);
    if (start && (start < min || start > max)) {
        snprintf(a, sizeof a, "%d is outside --workers-min %d", start, min);
        return fail("--workers %s to --workers-max %s (with adaptive workers, --workers is the "
                    "count to start with)",
                    a, b);
    }
    cfg->workers_min = min;
    cfg->workers_max = max;
    cfg->workers = start ? start : min;
    snprintf(cfg->workers_why, sizeof cfg->workers_why, "adaptive: %d to %d workers%s%s", min, max,
             max_why, start ? ", starting at --workers" : "");
    return 0;
}

/* gunicorn's one-letter spellings of flags that are long ones here. */
static int short_alias(int c)
{
    switch (c) {
    case 't': return OPT_TIMEOUT;
    case 'p': return OPT_PID;
    case 'u': return OPT_USER;
    case 'g': return OPT_GROUP;
    case 'm': return OPT_UMASK;
    case 'k': return OPT_WORKERCLASS;
    case 'v':
    case 'V': return OPT_VERSION;
    default: return c;
    }
}

/* gunicorn worker classes whose behaviour gallop's own workers give. */
static bool worker_class_ok(const char *k)
{
    static const char *const ok[] = {"sync",
                                     "gthread",
                                     "gunicorn.workers.sync.SyncWorker",
                                     "gunicorn.workers.gthread.ThreadWorker",
                                     "uvicorn.workers.UvicornWorker",
                                     "uvicorn.workers.UvicornH11Worker"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(k, ok[i]) == 0) return true;
    return false;
}

static int add_fd(gp_config *cfg, const char *text, const char *flag)
{
    unsigned long long v;
    if (cfg->num_fds == GP_MAX_BINDS) return fail("too many %s%s", flag, "");
    if (parse_ull(text, INT_MAX, &v) || v < 3)
        return fail("invalid %s '%s' (a descriptor number >= 3)", flag, text);
    cfg->fds[cfg->num_fds++] = (int)v;
    return 0;
}

/* addr may end in TLS options (core/tlsconf.h): the address is kept without them. */
static int add_bind(gp_config *cfg, const char *addr)
{
    if (cfg->num_binds == GP_MAX_BINDS) return fail("too many --bind addresses%s%s", "", "");
    int i = cfg->num_binds;
    char err[600];
    if (gp_tlsconf_parse_bind(addr, &cfg->binds[i], &cfg->bind_tls[i], &cfg->bind_tls_mode[i], err,
                              sizeof err) < 0)
        return fail("%s%s", err, "");
    cfg->num_binds++;
    return 0;
}

/* --certfile and the other TLS flags, for every bind. */
static int tls_flag(gp_config *cfg, int opt, const char *arg)
{
    gp_tls_opts *o = &cfg->tls;
    switch (opt) {
    case OPT_CERTFILE: o->certfile = *arg ? arg : NULL; break;
    case OPT_KEYFILE: o->keyfile = *arg ? arg : NULL; break;
    case OPT_KEYPASS: o->password = arg; break;
    case OPT_CACERTS: o->ca_certs = *arg ? arg : NULL; break;
    case OPT_CIPHERS: o->ciphers = *arg ? arg : NULL; break;
    case OPT_CERTREQS:
        if ((o->cert_reqs = gp_tlsconf_parse_cert_reqs(arg)) < 0)
            return fail("invalid --cert-reqs '%s' (0, 1 or 2: none, optional, required)%s", arg,
                        "");
        break;
    case OPT_SSLMIN:
        if ((o->min_version = gp_tlsconf_parse_version(arg)) < 0)
            return fail("invalid --ssl-min-version '%s' (TLSv1.2 or TLSv1.3: gallop speaks no "
                        "older TLS)%s",
                        arg, "");
        break;
    case OPT_INSECURE_BIND:
        if (add_bind(cfg, arg)) return -1;
        if (cfg->bind_tls_mode[cfg->num_binds - 1] == GP_TLSCONF_OWN)
            return fail("invalid --insecure-bind '%s': TLS options on a plain bind%s", arg, "");
        cfg->bind_tls_mode[cfg->num_binds - 1] = GP_TLSCONF_PLAIN;
        break;
    }
    return 0;
}

/* After the flags: --host/--port become one address, --uds another, and
 * with no address at all gunicorn's default applies (0.0.0.0:$PORT when
 * PORT is set, as on Heroku, else 127.0.0.1:8000). */
static int finish_binds(gp_config *cfg)
{
    if (cfg->host || cfg->port >= 0) {
        const char *h = cfg->host ? cfg->host : "127.0.0.1";
        bool v6 = strchr(h, ':') && h[0] != '[';
        snprintf(cfg->host_bind, sizeof cfg->host_bind, v6 ? "[%s]:%d" : "%s:%d", h,
                 cfg->port >= 0 ? cfg->port : 8000);
        if (add_bind(cfg, cfg->host_bind)) return -1;
    }
    if (cfg->uds_bind[0] && add_bind(cfg, cfg->uds_bind)) return -1;
    if (cfg->num_binds || cfg->num_fds) return 0;
    const char *port = getenv("PORT");
    unsigned long long v;
    if (port && *port) {
        if (parse_ull(port, 65535, &v) || v < 1)
            return fail("invalid PORT '%s' in the environment (1 to 65535)%s", port, "");
        snprintf(cfg->host_bind, sizeof cfg->host_bind, "0.0.0.0:%llu", v);
        return add_bind(cfg, cfg->host_bind);
    }
    return add_bind(cfg, "127.0.0.1:8000");
}

/* What the flags cannot say one at a time; then --check-config's report:
 * every address is parsed (nothing is bound, nothing imported). */
static int check_reload_and_config(const gp_config *cfg)
{
    if (error_where) return 0; /* one setting of a config file, checked alone */
    if (cfg->reload && cfg->preload)
        return fail("--reload cannot work with --preload: workers would fork from the code "
                    "the master imported%s%s",
                    "", "");
    if (!cfg->reload && (cfg->num_reload_dirs || cfg->num_reload_includes ||
                         cfg->num_reload_excludes || cfg->num_reload_extra_files))
        gp_warn("--reload-dir, --reload-include, --reload-exclude and --reload-extra-file do "
                "nothing without --reload");
    if (!cfg->check_config) return 0;
    for (int i = 0; i < cfg->num_binds; i++) {
        gp_addr a;
        char err[600];
        gp_tls_opts tls;
        if (gp_addr_parse(cfg->binds[i], &a, err, sizeof err) < 0) return fail("%s%s", err, "");
        if (gp_tlsconf_for(cfg, a.text, &tls) && gp_tlsconf_check(&tls, err, sizeof err) < 0)
            return fail("%s: %s", a.text, err);
    }
    printf("gallop: configuration OK: %s, %d worker%s, %s%s\n", cfg->app, cfg->workers,
           cfg->workers == 1 ? "" : "s", cfg->num_fds ? "inherited sockets" : cfg->binds[0],
           cfg->num_binds > 1 ? " and more" : "");
    return 1;
}

/* --forwarded-allow-ips (else $FORWARDED_ALLOW_IPS, as gunicorn and uvicorn
 * read it) parsed, and each --proxy-protocol=ADDR one of the --bind addresses. */
static int check_proxy_settings(gp_config *cfg)
{
    char err[200];
    const char *env = getenv("FORWARDED_ALLOW_IPS");
    if (!cfg->forwarded_allow_ips) cfg->forwarded_allow_ips = env && *env ? env : "127.0.0.1,::1";
    if (gp_fwd_trust_parse(&cfg->forwarded_allow, cfg->forwarded_allow_ips, err, sizeof err) < 0)
        return fail("%s%s", err, "");
    for (int i = 0; i < cfg->num_proxy_protocol_binds; i++) {
        gp_addr want, have;
        int found = 0;
        if (gp_addr_parse(cfg->proxy_protocol_binds[i], &want, err, sizeof err) < 0)
            return fail("invalid --proxy-protocol address: %s%s", err, "");
        for (int b = 0; b < cfg->num_binds && !found; b++)
            found = gp_addr_parse(cfg->binds[b], &have, err, sizeof err) == 0 &&
                    strcmp(have.text, want.text) == 0;
        if (!found)
            return fail("--proxy-protocol=%s is not one of the --bind addresses%s",
                        cfg->proxy_protocol_binds[i], "");
        char *canon = strdup(want.text); /* what the listener's text will be */
        if (!canon) return fail("out of memory%s%s", "", "");
        cfg->proxy_protocol_binds[i] = canon;
    }
    return 0;
}

/* TLS settings that would do nothing: a key or CA with no certificate. */
static int check_tls(const gp_config *cfg)
{
    const gp_tls_opts *o = &cfg->tls;
    bool any = o->keyfile || o->password || o->ca_certs || o->ciphers || o->cert_reqs > 0 ||
               o->min_version;
    bool own = false;
    for (int i = 0; i < cfg->num_binds; i++) {
        const gp_tls_opts *b = &cfg->bind_tls[i];
        own |= b->certfile != NULL;
        if (cfg->bind_tls_mode[i] == GP_TLSCONF_OWN && !b->certfile && !o->certfile)
            return fail("--bind %s has TLS options but no certfile (give certfile= or "
                        "--certfile)%s",
                        cfg->binds[i], "");
    }
    if (any && !o->certfile && !own)
        return fail("TLS settings without a certificate: give --certfile%s%s", "", "");
    return 0;
}

int gp_config_parse(gp_config *cfg, int argc, char **argv)
{
    memset(cfg, 0, sizeof *cfg);
    if (!getcwd(cfg->parse_dir, sizeof cfg->parse_dir)) cfg->parse_dir[0] = 0;
    cfg->backlog = 2048;
    cfg->worker_connections = 1000;
    cfg->graceful_timeout = 30;
    cfg->keep_alive = 5;
    cfg->limit_request_line = 4094;
    cfg->limit_request_fields = 100;
    cfg->limit_request_field_size = 8190;
    cfg->limit_request_head = 65536;
    cfg->log_level = GP_LOG_INFO;
    cfg->timeout = 30;
    cfg->threads = 1;
    cfg->umask = -1;
    cfg->argv = argv;
    cfg->argc = argc;
    cfg->interface = "auto";
    cfg->loop = "auto";
    cfg->lifespan = "auto";
    cfg->ws_max_size = 16u << 20;
    cfg->ws_ping_interval = 20;
    cfg->ws_ping_timeout = 20;
    cfg->header_timeout = 30;
    cfg->body_timeout = 30;
    cfg->send_timeout = 60;
    cfg->http = GP_HTTP_AUTO;
    cfg->body_buffer_size = 1u << 20;
    cfg->port = -1;
    cfg->proxy_headers = true;
    cfg->static_max_age = -1;
    cfg->reload_delay = 0.25;
    char alog_err[8];
    cfg->access_log_format = GP_ALOG_DEFAULT_FORMAT;
    gp_alog_compile(&cfg->access_format, GP_ALOG_DEFAULT_FORMAT, alog_err, sizeof alog_err);
    bool twice_plus_one = false;
    const char *workers = NULL, *wsgi_app = NULL;
    unsigned long long v;
    int adaptive_min = 0, adaptive_max = 0;

    opterr = 0;
    optind = 0; /* 0, not 1: glibc then forgets any earlier parse entirely */
    int c;
    /* '-': options before and after the app, as gunicorn and uvicorn take
     * them, whatever POSIXLY_CORRECT says; the app comes back as 1 */
    while ((c = getopt_long(argc, argv, "-:b:c:w:e:hvVt:p:u:g:m:k:", long_opts, NULL)) != -1) {
        switch (short_alias(c)) {
        case 1:
            if (cfg->app)
                return fail("unexpected argument '%s' (one application only)%s", optarg, "");
            cfg->app = optarg;
            break;
        case 'c': cfg->config_file = optarg; break;
        case 'b':
            if (strncmp(optarg, "fd://", 5) == 0) { /* gunicorn's spelling of --fd */
                if (add_fd(cfg, optarg + 5, "--bind fd://")) return -1;
                break;
            }
            if (add_bind(cfg, optarg)) return -1;
            break;
        case 'w': workers = optarg; break;
        case OPT_CHDIR: cfg->chdir = optarg; break;
        case OPT_PYTHONPATH:
            if (cfg->num_pythonpath == GP_MAX_PYTHONPATH)
                return fail("too many --pythonpath%s%s", "", "");
            cfg->pythonpath[cfg->num_pythonpath++] = optarg;
            break;
        case OPT_VENV: cfg->venv = optarg; break;
        case OPT_ROOT: cfg->root_path = optarg; break;
        case OPT_FACTORY: cfg->factory = true; break;
        case OPT_REUSEPORT: cfg->reuse_port = true; break;
        case OPT_PRELOAD: cfg->preload = true; break;
        case OPT_FORMULA:
            if (strcmp(optarg, "cores") == 0) twice_plus_one = false;
            else if (strcmp(optarg, "2cores+1") == 0) twice_plus_one = true;
            else return fail("invalid --workers-formula '%s' (cores or 2cores+1)%s", optarg, "");
            break;
        case OPT_THREADS:
            if (parse_ull(optarg, 1024, &v) || v < 1)
                return fail("invalid --threads '%s' (1 to 1024)%s", optarg, "");
            cfg->threads = (int)v;
            break;
        case OPT_TIMEOUT:
            if (parse_seconds(optarg, &cfg->timeout))
                return fail("invalid --timeout '%s'%s", optarg, "");
            break;
        case OPT_MAXREQ:
            if (parse_ull(optarg, ULONG_MAX, &v))
                return fail("invalid --max-requests '%s'%s", optarg, "");
            cfg->max_requests = (unsigned long)v;
            break;
        case OPT_JITTER:
            if (parse_ull(optarg, ULONG_MAX, &v))
                return fail("invalid --max-requests-jitter '%s'%s", optarg, "");
            cfg->max_requests_jitter = (unsigned long)v;
            break;
        case OPT_MAXMEM:
            if (parse_ull(optarg, 1ull << 30, &v))
                return fail("invalid --max-worker-memory '%s' (megabytes)%s", optarg, "");
            cfg->max_worker_memory_mb = (unsigned long)v;
            break;
        case OPT_FD:
            if (add_fd(cfg, optarg, "--fd")) return -1;
            break;
        case OPT_PID: cfg->pidfile = optarg; break;
        case OPT_INTERFACE:
            if (strcmp(optarg, "auto") && strcmp(optarg, "wsgi") && strcmp(optarg, "asgi") &&
                strcmp(optarg, "asgi2") && strcmp(optarg, "asgi3"))
                return fail("invalid --interface '%s' (auto, wsgi, asgi, asgi2)%s", optarg, "");
            cfg->interface = strcmp(optarg, "asgi3") ? optarg : "asgi";
            break;
        case OPT_LOOP:
            if (strcmp(optarg, "auto") && strcmp(optarg, "asyncio") && strcmp(optarg, "uvloop"))
                return fail("invalid --loop '%s' (auto, asyncio, uvloop)%s", optarg, "");
            cfg->loop = optarg;
            break;
        case OPT_LIFESPAN:
            if (strcmp(optarg, "auto") && strcmp(optarg, "on") && strcmp(optarg, "off"))
                return fail("invalid --lifespan '%s' (auto, on, off)%s", optarg, "");
            cfg->lifespan = optarg;
            break;
        case OPT_LIMITCONC:
            if (parse_ull(optarg, INT_MAX, &v))
                return fail("invalid --limit-concurrency '%s'%s", optarg, "");
            cfg->limit_concurrency = (int)v;
            break;
        case OPT_WSMAX:
            if (parse_ull(optarg, 1ull << 40, &v) || v < 1)
                return fail("invalid --ws-max-size '%s'%s", optarg, "");
            cfg->ws_max_size = v;
            break;
        case OPT_WSPING:
            if (parse_seconds(optarg, &cfg->ws_ping_interval))
                return fail("invalid --ws-ping-interval '%s'%s", optarg, "");
            break;
        case OPT_WSPINGTO:
            if (parse_seconds(optarg, &cfg->ws_ping_timeout))
                return fail("invalid --ws-ping-timeout '%s'%s", optarg, "");
            break;
        case OPT_HEADERTO:
            if (parse_seconds(optarg, &cfg->header_timeout) || cfg->header_timeout <= 0)
                return fail("invalid --header-timeout '%s' (seconds, more than 0)%s", optarg, "");
            break;
        case OPT_BODYTO:
            if (parse_seconds(optarg, &cfg->body_timeout) || cfg->body_timeout <= 0)
                return fail("invalid --body-timeout '%s' (seconds, more than 0)%s", optarg, "");
            break;
        case OPT_SENDTO:
            if (parse_seconds(optarg, &cfg->send_timeout) || cfg->send_timeout <= 0)
                return fail("invalid --send-timeout '%s' (seconds, more than 0)%s", optarg, "");
            break;
        case OPT_BODYBUF:
            if (parse_ull(optarg, 1ull << 40, &v))
                return fail("invalid --body-buffer-size '%s' (bytes, 0 to 2^40)%s", optarg, "");
            cfg->body_buffer_size = (size_t)v;
            break;
        case OPT_STATIC:
            if (parse_static(cfg, optarg)) return -1;
            break;
        case OPT_STATIC_MAXAGE:
            if (parse_ull(optarg, 1u << 31, &v))
                return fail("invalid --static-max-age '%s' (seconds, 0 to 2147483648)%s", optarg,
                            "");
            cfg->static_max_age = (long)v;
            break;
        case OPT_RELOAD: cfg->reload = true; break;
        case OPT_RELOAD_DIR:
        case OPT_RELOAD_INCLUDE:
        case OPT_RELOAD_EXCLUDE:
        case OPT_RELOAD_EXTRA:
            if (add_reload_entry(cfg, c, optarg) < 0) return -1;
            break;
        case OPT_RELOAD_DELAY:
            if (parse_seconds(optarg, &cfg->reload_delay) || cfg->reload_delay > 60)
                return fail("invalid --reload-delay '%s' (seconds, 0 to 60)%s", optarg, "");
            break;
        case OPT_RELOAD_ENGINE:
            if (strcmp(optarg, "auto") && strcmp(optarg, "inotify"))
                return fail("invalid --reload-engine '%s' (auto or inotify: gallop watches with "
                            "inotify)%s",
                            optarg, "");
            break;
        case OPT_CHECK_CONFIG: cfg->check_config = true; break;
        case OPT_FWD_ALLOW: cfg->forwarded_allow_ips = optarg; break;
        case OPT_PROXY_PROTOCOL:
            if (!optarg || !strcasecmp(optarg, "true") || !strcasecmp(optarg, "1") ||
                !strcasecmp(optarg, "yes") || !strcasecmp(optarg, "on")) {
                cfg->proxy_protocol = true;
            } else if (!strcasecmp(optarg, "false") || !strcasecmp(optarg, "0") ||
                       !strcasecmp(optarg, "no") || !strcasecmp(optarg, "off")) {
                cfg->proxy_protocol = false;
                cfg->num_proxy_protocol_binds = 0;
            } else if (cfg->num_proxy_protocol_binds == GP_MAX_BINDS) {
                return fail("too many --proxy-protocol addresses%s%s", "", "");
            } else {
                cfg->proxy_protocol_binds[cfg->num_proxy_protocol_binds++] = optarg;
            }
            break;
        case OPT_METRICS_BIND: {
            gp_addr a;
            char err[256];
            if (cfg->num_metrics_binds == GP_MAX_BINDS)
                return fail("too many --metrics-bind addresses%s%s", "", "");
            if (!strncmp(optarg, "fd://", 5) || gp_addr_parse(optarg, &a, err, sizeof err) < 0)
                return fail("invalid --metrics-bind '%s' (HOST:PORT or unix:/path)%s", optarg, "");
            cfg->metrics_binds[cfg->num_metrics_binds++] = optarg;
            break;
        }
        case OPT_USER: cfg->user = optarg; break;
        case OPT_GROUP: cfg->group = optarg; break;
        case OPT_UMASK: {
            char *end;
            errno = 0;
            long m = strtol(optarg, &end, 8);
            if (errno || !*optarg || *end || m < 0 || m > 0777)
                return fail("invalid --umask '%s' (octal, e.g. 022)%s", optarg, "");
            cfg->umask = (int)m;
            break;
        }
        case OPT_BACKLOG:
            if (parse_ull(optarg, INT_MAX, &v) || v < 1)
                return fail("invalid --backlog '%s'%s", optarg, "");
            cfg->backlog = (int)v;
            break;
        case OPT_WORKERCONNS:
            if (parse_ull(optarg, 1000000, &v) || v < 1)
                return fail("invalid --worker-connections '%s' (1 to 1000000)%s", optarg, "");
            cfg->worker_connections = (size_t)v;
            break;
        case OPT_GRACEFUL:
            if (parse_seconds(optarg, &cfg->graceful_timeout))
                return fail("invalid --graceful-timeout '%s'%s", optarg, "");
            break;
        case OPT_KEEPALIVE:
            if (parse_seconds(optarg, &cfg->keep_alive))
                return fail("invalid --keep-alive '%s'%s", optarg, "");
            break;
        case OPT_LRL:
            if (parse_ull(optarg, 65536, &v))
                return fail("invalid --limit-request-line '%s' (0 to 65536)%s", optarg, "");
            cfg->limit_request_line = v ? v : 65536;
            break;
        case OPT_LRF:
            if (parse_ull(optarg, 256, &v) || v < 1)
                return fail("invalid --limit-request-fields '%s' (1 to 256)%s", optarg, "");
            cfg->limit_request_fields = v;
            break;
        case OPT_LRFS:
            if (parse_ull(optarg, 65536, &v))
                return fail("invalid --limit-request-field_size '%s' (0 to 65536)%s", optarg, "");
            cfg->limit_request_field_size = v ? v : 65536;
            break;
        case OPT_LRB:
            if (parse_ull(optarg, ULLONG_MAX, &v))
                return fail("invalid --limit-request-body '%s'%s", optarg, "");
            cfg->limit_request_body = v;
            break;
        case OPT_LRH:
            if (parse_ull(optarg, 16u << 20, &v) || v < 1024)
                return fail("invalid --limit-request-head '%s' (1024 to 16777216)%s", optarg, "");
            cfg->limit_request_head = v;
            break;
        case OPT_LOGLEVEL:
            if ((cfg->log_level = gp_log_level_parse(optarg)) < 0)
                return fail("invalid --log-level '%s' (debug, info, warning, error, critical)%s",
                            optarg, "");
            break;
        case OPT_ACCESS:
            /* uvicorn's --access-log is a switch: never take its next flag for a file */
            if (optarg[0] == '-' && optarg[1] == '-')
                return fail("--access-log takes a file or - (stdout), not '%s'%s", optarg, "");
            cfg->access_log = optarg;
            break;
        case OPT_ERROR: cfg->error_log = optarg; break;
        /* Python config files (conffile.c) */
        case 'e':
            if (cfg->num_env == GP_MAX_ENV) return fail("too many --env%s%s", "", "");
            if (optarg[0] == '=' || !strchr(optarg, '='))
                return fail("invalid --env '%s' (KEY=VALUE)%s", optarg, "");
            cfg->env[cfg->num_env++] = optarg;
            break;
        case OPT_WSGIAPP: wsgi_app = optarg; break;
        case OPT_CONFIGHOOKS: cfg->hooks_file = optarg; break;
        case OPT_VERSION: printf("gallop %s\n", GP_VERSION); return 1;
        case 'h': fputs(usage_text, stdout); return 1;
        /* uvicorn's and gunicorn's spellings */
        case OPT_HOST:
            if (!*optarg || strlen(optarg) > 255)
                return fail("invalid --host '%s' (an address or a name)%s", optarg, "");
            cfg->host = optarg;
            break;
        case OPT_PORT:
            if (parse_ull(optarg, 65535, &v))
                return fail("invalid --port '%s' (0 to 65535)%s", optarg, "");
            cfg->port = (int)v;
            break;
        case OPT_UDS:
            if (!*optarg || strlen(optarg) + 6 > sizeof cfg->uds_bind)
                return fail("invalid --uds '%s' (a socket path of 1 to 107 bytes)%s", optarg, "");
            snprintf(cfg->uds_bind, sizeof cfg->uds_bind, "unix:%s", optarg);
            break;
        case OPT_NOACCESS: cfg->access_log = NULL; break;
        case OPT_PROXYHDRS: cfg->proxy_headers = true; break;
        case OPT_NOPROXYHDRS: cfg->proxy_headers = false; break;
        case OPT_WORKERCLASS:
            if (!worker_class_ok(optarg))
                return fail("unsupported worker class '%s': gallop's own workers serve WSGI (sync, "
                            "or gthread with --threads) and ASGI (uvicorn.workers.UvicornWorker)%s",
                            optarg, "");
            break;
        case OPT_HTTPIMPL:
            /* uvicorn's h11 and httptools are HTTP/1.1 parsers: HTTP/1.1 only */
            if (!strcmp(optarg, "auto"))
                cfg->http = GP_HTTP_AUTO;
            else if (!strcmp(optarg, "1") || !strcmp(optarg, "h11") || !strcmp(optarg, "httptools"))
                cfg->http = GP_HTTP_1;
            else if (!strcmp(optarg, "2"))
                cfg->http = GP_HTTP_2;
            else
                return fail("invalid --http '%s' (1, 2 or auto; uvicorn's h11 and httptools mean "
                            "1)%s",
                            optarg, "");
            break;
        case OPT_WSIMPL:
            if (strcmp(optarg, "auto") && strcmp(optarg, "websockets") && strcmp(optarg, "wsproto"))
                return fail("invalid --ws '%s' (auto, websockets, wsproto: all mean gallop's own "
                            "WebSocket code; 'none' is not supported)%s",
                            optarg, "");
            break;
        case OPT_WORKERTMP: {
            struct stat st;
            if (stat(optarg, &st) != 0 || !S_ISDIR(st.st_mode))
                return fail("invalid --worker-tmp-dir '%s': not a directory%s", optarg, "");
            break;
        }
        /* logs */
        case OPT_ALOG_FORMAT: {
            char err[200] = "";
            if (gp_alog_compile(&cfg->access_format, optarg, err, sizeof err) < 0)
                return fail("invalid --access-log-format: %s%s", err, "");
            cfg->access_log_format = optarg;
            break;
        }
        case OPT_LOG_FORMAT:
            if ((cfg->log_format = gp_log_format_parse(optarg)) < 0)
                return fail("invalid --log-format '%s' (text or json)%s", optarg, "");
            break;
        case OPT_LOG_SLOW:
            if (parse_seconds(optarg, &cfg->log_slow))
                return fail("invalid --log-slow '%s' (seconds; 0: off)%s", optarg, "");
            break;
        case OPT_WORKERS_MIN:
        case OPT_WORKERS_MAX:
            if (parse_ull(optarg, GP_MAX_WORKERS, &v) || v < 1)
                return fail("invalid --%s '%s' (1 to 1024)",
                            c == OPT_WORKERS_MIN ? "workers-min" : "workers-max", optarg);
            *(c == OPT_WORKERS_MIN ? &adaptive_min : &adaptive_max) = (int)v;
            break;
        case OPT_CERTFILE:
        case OPT_KEYFILE:
        case OPT_KEYPASS:
        case OPT_CACERTS:
        case OPT_CERTREQS:
        case OPT_CIPHERS:
        case OPT_SSLMIN:
        case OPT_INSECURE_BIND:
            if (tls_flag(cfg, c, optarg)) return -1;
            break;
        case ':': return fail("option '%s' needs a value%s", argv[optind - 1], "");
        default:
            if (optopt && optopt < 256) {
                char s[3] = {'-', (char)optopt, 0};
                return fail("unknown option '%s' (see gallop --help)%s", s, "");
            }
            return fail("unknown option '%s' (see gallop --help)%s", argv[optind - 1], "");
        }
    }
    /* what follows "--" is positional too */
    for (; optind < argc; optind++) {
        if (cfg->app)
            return fail("unexpected argument '%s' (one application only)%s", argv[optind], "");
        cfg->app = argv[optind];
    }
    if (!cfg->app) cfg->app = wsgi_app; /* the command line's app wins */
    if (!cfg->app)
        return fail("no application given: gallop [OPTIONS] MODULE[:ATTRIBUTE]%s%s", "", "");
    size_t applen = strlen(cfg->app);
    if (!cfg->app[0] || cfg->app[0] == ':' || cfg->app[applen - 1] == ':' ||
        (strchr(cfg->app, '(') && (cfg->app[applen - 1] != ')' || strstr(cfg->app, ":("))))
        return fail("invalid application '%s': use MODULE[:ATTRIBUTE]%s", cfg->app, "");
    if (!cfg->venv) {
        const char *ve = getenv("VIRTUAL_ENV");
        if (ve && *ve) cfg->venv = ve;
    }
    if (finish_binds(cfg)) return -1;
    if (check_proxy_settings(cfg) < 0) return -1;
    if (!error_where && check_tls(cfg) < 0) return -1;
    const char *wc = getenv("WEB_CONCURRENCY");
    int r = workers     ? resolve_workers(cfg, workers, "--workers", twice_plus_one)
            : wc && *wc ? resolve_workers(cfg, wc, "WEB_CONCURRENCY", twice_plus_one)
                        : resolve_workers(cfg, "auto", "auto", twice_plus_one);
    if (r == 0 && (adaptive_min || adaptive_max))
        r = resolve_adaptive(cfg, adaptive_min, adaptive_max,
                             workers && strcmp(workers, "auto") ? cfg->workers : 0);
    if (r == 0) r = check_reload_and_config(cfg);
    return r;
}
