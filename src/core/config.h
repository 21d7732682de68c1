/* config: the command line, parsed into one struct the master and workers share.
 *
 * Flag names and meanings follow gunicorn (and uvicorn where gunicorn has none).
 * No Python here: the app spec is kept as text for the bridge to import. */
#ifndef GP_CONFIG_H
#define GP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/accesslog.h"
#include "core/forwarded.h"
#include "core/tls.h"

#define GP_MAX_BINDS 16
#define GP_MAX_PYTHONPATH 16
#define GP_MAX_WORKERS 1024
#define GP_MAX_ENV 64
#define GP_MAX_STATIC 16
#define GP_MAX_RELOAD 32 /* entries of each --reload-* list */

/* Exit codes, documented in the README. */
enum {
    GP_EXIT_OK = 0,
    GP_EXIT_ERROR = 1,      /* bad configuration, port in use, fatal runtime error */
    GP_EXIT_USAGE = 2,      /* unknown flag or bad flag value */
    GP_EXIT_BOOT_ERROR = 3, /* a worker could not start its interpreter */
    GP_EXIT_APP_ERROR = 4,  /* the app could not be imported or built */
};

typedef struct {
    const char *app; /* "module[:attribute]" */
    const char *binds[GP_MAX_BINDS];
    int num_binds;
    int workers;           /* resolved count, >= 1 */
    char workers_why[200]; /* how the count was chosen, for the log */
    const char *chdir;
    const char *pythonpath[GP_MAX_PYTHONPATH];
    int num_pythonpath;
    const char *venv;      /* --venv, else $VIRTUAL_ENV, else NULL */
    const char *root_path; /* SCRIPT_NAME prefix */
    int backlog;
    size_t worker_connections; /* a worker stops accepting while it holds this many */
    double graceful_timeout;   /* seconds */
    double keep_alive;         /* idle seconds before closing */
    size_t limit_request_line;
    size_t limit_request_fields;
    size_t limit_request_field_size;
    unsigned long long limit_request_body; /* 0: unlimited */
    size_t limit_request_head;             /* bytes of a whole request head (431 past it) */
    int log_level;
    const char *access_log; /* NULL: off; "-": stdout */
    const char *error_log;  /* NULL or "-": stderr */
    bool factory;
    bool reuse_port;
    bool preload;
    double timeout;             /* seconds a request or loop may stall; 0: off */
    unsigned long max_requests; /* 0: never retire */
    unsigned long max_requests_jitter;
    unsigned long max_worker_memory_mb; /* 0: no limit */
    int threads;                        /* WSGI request threads per worker (1: none) */
    const char *pidfile;
    int fds[GP_MAX_BINDS]; /* --fd: listeners handed to us already open */
    int num_fds;
    const char *user, *group; /* workers switch to these after fork */
    int umask;                /* -1: leave as is */
    char **argv;              /* as given: USR2 re-executes it, HUP re-reads it */
    int argc;
    const char *config_file;        /* -c/--config: flags, one per line */
    char **file_args;               /* its lines as flags, which strings here may point into */
    char parse_dir[4096]; /* the working directory at parse time: a worker parses again there */
    int limit_concurrency;          /* async apps: 503 past this many in progress; 0: none */
    const char *interface;          /* auto, wsgi, asgi, asgi2 */
    const char *loop;               /* auto, asyncio, uvloop */
    const char *lifespan;           /* auto, on, off */
    unsigned long long ws_max_size; /* bytes in one WebSocket message */
    double ws_ping_interval, ws_ping_timeout; /* seconds; 0: no pings */
    /* request bodies and slow clients */
    double header_timeout;   /* seconds for a whole request head */
    double body_timeout;     /* seconds without a request-body byte */
    double send_timeout;     /* seconds a client may take no response byte */
    size_t body_buffer_size; /* sync WSGI: body held in memory up to this, then on disk;
                                0: the app reads it from the socket as it comes */
    /* Python config files (conffile.c) */
    const char *env[GP_MAX_ENV]; /* -e/--env, raw_env: "KEY=VALUE" for the workers */
    int num_env;
    const char *hooks_file; /* --config-hooks: the .py whose server hooks workers run */
    /* uvicorn's address flags and proxy switch */
    const char *host;    /* --host (127.0.0.1 when only --port is given) */
    int port;            /* --port; -1: not given */
    char host_bind[300]; /* --host/--port combined into one --bind address */
    char uds_bind[128];  /* --uds PATH as "unix:PATH" */
    bool proxy_headers;  /* --proxy-headers (default) / --no-proxy-headers */
    /* --static URL_PREFIX=DIR, served from C before the app (core/static) */
    struct gp_static_cfg {
        const char *prefix; /* starts with '/', no trailing '/' ("" for "/") */
        const char *dir;    /* absolute, resolved at parse time */
    } statics[GP_MAX_STATIC];
    int num_statics;
    long static_max_age; /* --static-max-age: Cache-Control max-age seconds; -1: none */
    /* --reload (development): replace the workers when the code changes */
    bool reload;
    double reload_delay; /* seconds of quiet before reloading */
    const char *reload_dirs[GP_MAX_RELOAD];
    const char *reload_includes[GP_MAX_RELOAD];
    const char *reload_excludes[GP_MAX_RELOAD];
    const char *reload_extra_files[GP_MAX_RELOAD];
    int num_reload_dirs, num_reload_includes, num_reload_excludes, num_reload_extra_files;
    bool check_config; /* --check-config: parse, report, exit */
    /* behind a proxy (core/forwarded.h, core/proxyproto.h) */
    const char *forwarded_allow_ips; /* as given, else $FORWARDED_ALLOW_IPS, else the default */
    gp_fwd_trust forwarded_allow;    /* parsed from it */
    bool proxy_protocol;             /* every listener expects a PROXY header */
    const char *proxy_protocol_binds[GP_MAX_BINDS]; /* or only these (canonical text) */
    int num_proxy_protocol_binds;
    /* --metrics-bind: the master serves /metrics and /healthz there (core/mserve.h) */
    const char *metrics_binds[GP_MAX_BINDS];
    int num_metrics_binds;
    /* logs people can ship (core/accesslog.h, core/log.h) */
    const char *access_log_format; /* as given; compiled into access_format */
    gp_alog_format access_format;
    int log_format;  /* GP_LOG_TEXT or GP_LOG_JSON */
    double log_slow; /* --log-slow: warn about requests slower than this; 0: off */
    /* --http: which HTTP versions are served (TLS offers "h2" by ALPN unless GP_HTTP_1) */
    int http; /* GP_HTTP_AUTO, GP_HTTP_1, GP_HTTP_2 */
    /* --workers-min / --workers-max: adaptive workers (core/autoscale.h);
     * workers_max 0: off, else workers is the count to start with */
    int workers_min, workers_max;
    bool workers_max_implied; /* from the CPU count for a sync app: lowered for ASGI */
    /* TLS (core/tls.h, core/tlsconf.h): --certfile ... for every --bind, or a
     * bind's own "ADDR,certfile=F,keyfile=K" (",plain": no TLS there) */
    gp_tls_opts tls;
    gp_tls_opts bind_tls[GP_MAX_BINDS]; /* unset: NULL, cert_reqs -1, min_version 0 */
    signed char bind_tls_mode[GP_MAX_BINDS]; /* GP_TLSCONF_* */
} gp_config;

enum { GP_HTTP_AUTO = 0, GP_HTTP_1 = 1, GP_HTTP_2 = 2 };

/* The version gallop reports (--version, gallop_build_info). */
extern const char gp_version[];

/* Parses argv into cfg. Returns 0 to run, 1 when --help/--version printed and
 * the process should exit 0, or -1 after printing one "gallop: error: ..." line
 * to stderr (exit GP_EXIT_USAGE). */
int gp_config_parse(gp_config *cfg, int argc, char **argv);

/* The same, with the settings of a config file first (the command line
 * wins): -c/--config FILE, else ./gallop.conf.py or ./gunicorn.conf.py. A
 * Python file is evaluated by a short-lived interpreter, others hold one
 * setting a line; see conffile.h. cfg->file_args is then every flag in
 * order, the file's first: a worker can gp_config_parse it without reading
 * the file again. The master calls it again on HUP. Strings cfg points to
 * are never freed. Implemented in conffile.c. */
int gp_config_load(gp_config *cfg, int argc, char **argv);

/* Whether --NAME is a flag: -1 no, 0 one without a value, 1 one with, 2 one
 * whose value is optional. */
int gp_config_has_flag(const char *name);

/* Printed after "gallop: error: " in every error of gp_config_parse (NULL:
 * nothing): the config file's "FILE, line N (setting): " while one of its
 * settings is checked alone (checks across settings are then skipped). */
void gp_config_set_error_where(const char *where);

#endif
