/* config: command-line parsing; see config.h. */
#include "core/config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpus.h"
#include "core/log.h"

#ifndef GP_VERSION
#define GP_VERSION "0.1.0"
#endif

static const char usage_text[] =
    "usage: gallop [OPTIONS] MODULE[:ATTRIBUTE]\n"
    "\n"
    "Serve a Python WSGI app from a pre-fork master. ATTRIBUTE defaults to 'app'.\n"
    "\n"
    "  -c, --config FILE            settings, one a line (\"workers = 4\"); re-read on HUP\n"
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
    "      --log-level LEVEL        debug, info, warning, error, critical (info)\n"
    "      --access-log FILE|-      write an access log (off by default)\n"
    "      --error-log FILE|-       where the error log goes (- : stderr)\n"
    "  -e, --env KEY=VALUE          set an environment variable for the workers (repeatable)\n"
    "      --wsgi-app SPEC          the app when none is given after the options\n"
    "      --config-hooks FILE      run this Python file's server hooks (set by a .py config)\n"
    "      --version                print the version and exit\n"
    "  -h, --help                   print this help and exit\n"
    "\n"
    "Signals to the master: TERM/INT graceful stop, QUIT immediate stop, HUP reload the app\n"
    "with a new generation of workers, TTIN/TTOU one worker more/less, USR1 reopen logs,\n"
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
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

const char *gp_config_error_where;

int gp_config_has_flag(const char *name)
{
    for (const struct option *o = long_opts; o->name; o++)
        if (strcmp(o->name, name) == 0) return o->has_arg != no_argument;
    return -1;
}

static int fail(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "gallop: error: %s", gp_config_error_where ? gp_config_error_where : "");
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

static int parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0) || v > 1e7) return -1;
    *out = v;
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

int gp_config_parse(gp_config *cfg, int argc, char **argv)
{
    memset(cfg, 0, sizeof *cfg);
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
    cfg->body_buffer_size = 1u << 20;
    bool twice_plus_one = false;
    const char *workers = NULL, *wsgi_app = NULL;
    unsigned long long v;

    opterr = 0;
    optind = 0; /* 0, not 1: glibc then forgets any earlier parse entirely */
    int c;
    while ((c = getopt_long(argc, argv, "+:b:c:w:e:h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'c': cfg->config_file = optarg; break;
        case 'b':
            if (cfg->num_binds == GP_MAX_BINDS)
                return fail("too many --bind addresses%s%s", "", "");
            cfg->binds[cfg->num_binds++] = optarg;
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
            if (cfg->num_fds == GP_MAX_BINDS) return fail("too many --fd%s%s", "", "");
            if (parse_ull(optarg, INT_MAX, &v) || v < 3)
                return fail("invalid --fd '%s' (a descriptor number >= 3)%s", optarg, "");
            cfg->fds[cfg->num_fds++] = (int)v;
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
        case OPT_ACCESS: cfg->access_log = optarg; break;
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
        case ':': return fail("option '%s' needs a value%s", argv[optind - 1], "");
        default:
            if (optopt && optopt < 256) {
                char s[3] = {'-', (char)optopt, 0};
                return fail("unknown option '%s' (see gallop --help)%s", s, "");
            }
            return fail("unknown option '%s' (see gallop --help)%s", argv[optind - 1], "");
        }
    }
    if (optind >= argc && !wsgi_app)
        return fail("no application given: gallop [OPTIONS] MODULE[:ATTRIBUTE]%s%s", "", "");
    if (optind + 1 < argc)
        return fail("unexpected argument '%s' (one application only)%s", argv[optind + 1], "");
    cfg->app = optind < argc ? argv[optind] : wsgi_app; /* the command line's wins */
    if (!cfg->app[0] || cfg->app[0] == ':' || cfg->app[strlen(cfg->app) - 1] == ':')
        return fail("invalid application '%s': use MODULE[:ATTRIBUTE]%s", cfg->app, "");
    if (!cfg->venv) {
        const char *ve = getenv("VIRTUAL_ENV");
        if (ve && *ve) cfg->venv = ve;
    }
    if (cfg->num_binds == 0 && cfg->num_fds == 0) cfg->binds[cfg->num_binds++] = "127.0.0.1:8000";
    if (workers) return resolve_workers(cfg, workers, "--workers", twice_plus_one);
    const char *wc = getenv("WEB_CONCURRENCY");
    if (wc && *wc) return resolve_workers(cfg, wc, "WEB_CONCURRENCY", twice_plus_one);
    return resolve_workers(cfg, "auto", "auto", twice_plus_one);
}
