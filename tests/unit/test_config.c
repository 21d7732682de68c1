/* Unit tests for core/config: defaults, every flag, the gunicorn spellings,
 * the worker count sources (--workers, WEB_CONCURRENCY, auto), --help and
 * --version, and every error path with its one "gallop: error:" line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/cpus.h"
#include "core/log.h"

/* getopt_long keeps hidden state between calls (the rest of a short-option
 * cluster); optind = 0 is glibc's full re-initialisation. */
static void reset_getopt(void)
{
    char *argv[] = {"x", NULL};
    optind = 0;
    opterr = 0;
    (void)getopt_long(1, argv, "+", (const struct option[]){{0, 0, 0, 0}}, NULL);
}

static int setup(void **state)
{
    unsetenv("PORT");
    unsetenv("WEB_CONCURRENCY");
    unsetenv("VIRTUAL_ENV");
    reset_getopt();
    return 0;
}

/* argv arrays are built from string literals; getopt permutes nothing with '+'
 * but wants char **, so copy into writable storage that outlives the call. */
typedef struct {
    char store[48][128];
    char *argv[49];
    int argc;
} args;

static args *mkargs(args *a, const char *first, ...)
{
    va_list ap;
    a->argc = 0;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) {
        assert_true(a->argc < 48);
        snprintf(a->store[a->argc], sizeof a->store[a->argc], "%s", s);
        a->argv[a->argc] = a->store[a->argc];
        a->argc++;
    }
    va_end(ap);
    a->argv[a->argc] = NULL;
    return a;
}

#define PARSE(cfg, a, ...)                                                                         \
    gp_config_parse((cfg), mkargs((a), "gallop", __VA_ARGS__, (const char *)NULL)->argc, (a)->argv)

/* Runs the parse with fd 1 and fd 2 pointed at a temp file; returns the result
 * and leaves what was printed in out. */
static int parse_captured(gp_config *cfg, args *a, char *out, size_t outlen)
{
    char path[] = "/tmp/gp_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stdout);
    fflush(stderr);
    int save1 = dup(1), save2 = dup(2);
    dup2(fd, 1);
    dup2(fd, 2);
    int r = gp_config_parse(cfg, a->argc, a->argv);
    fflush(stdout);
    fflush(stderr);
    dup2(save1, 1);
    dup2(save2, 2);
    close(save1);
    close(save2);
    ssize_t n = pread(fd, out, outlen - 1, 0);
    out[n > 0 ? n : 0] = 0;
    close(fd);
    return r;
}

/* Expects -1 and exactly one "gallop: error: " line containing needle. */
static void expect_error(args *a, const char *needle)
{
    gp_config cfg;
    char out[4096];
    reset_getopt();
    int r = parse_captured(&cfg, a, out, sizeof out);
    if (r != -1) fail_msg("argv[1]='%s': expected -1, got %d", a->argc > 1 ? a->argv[1] : "", r);
    if (strncmp(out, "gallop: error: ", 15) != 0)
        fail_msg("output '%s' lacks the error prefix", out);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[1], 0); /* one line only */
    if (needle && !strstr(out, needle)) fail_msg("output '%s' lacks '%s'", out, needle);
}

#define ERR(needle, ...)                                                                           \
    do {                                                                                           \
        args a_;                                                                                   \
        mkargs(&a_, "gallop", __VA_ARGS__, (const char *)NULL);                                    \
        expect_error(&a_, needle);                                                                 \
    } while (0)

static void test_defaults(void **state)
{
    gp_config cfg;
    args a;
    assert_int_equal(PARSE(&cfg, &a, "myapp:application"), 0);
    assert_string_equal(cfg.app, "myapp:application");
    assert_int_equal(cfg.num_binds, 1);
    assert_string_equal(cfg.binds[0], "127.0.0.1:8000");
    assert_int_equal(cfg.backlog, 2048);
    assert_int_equal(cfg.worker_connections, 1000);
    assert_true(cfg.graceful_timeout == 30.0);
    assert_true(cfg.keep_alive == 5.0);
    assert_int_equal(cfg.limit_request_line, 4094);
    assert_int_equal(cfg.limit_request_fields, 100);
    assert_int_equal(cfg.limit_request_field_size, 8190);
    assert_int_equal(cfg.limit_request_body, 0);
    assert_int_equal(cfg.log_level, GP_LOG_INFO);
    assert_null(cfg.access_log);
    assert_null(cfg.error_log);
    assert_null(cfg.chdir);
    assert_null(cfg.venv);
    assert_null(cfg.root_path);
    assert_int_equal(cfg.num_pythonpath, 0);
    assert_false(cfg.factory);
    assert_false(cfg.reuse_port);
    assert_false(cfg.preload);
    assert_true(cfg.timeout == 30.0);
    assert_int_equal(cfg.threads, 1);
    assert_int_equal(cfg.max_requests, 0);
    assert_int_equal(cfg.max_requests_jitter, 0);
    assert_int_equal(cfg.max_worker_memory_mb, 0);
    assert_int_equal(cfg.num_fds, 0);
    assert_null(cfg.pidfile);
    assert_null(cfg.user);
    assert_null(cfg.group);
    assert_int_equal(cfg.umask, -1);
    assert_ptr_equal(cfg.argv, a.argv);
    assert_true(cfg.workers >= 1);
    assert_true(cfg.workers_why[0] != 0);
}

static void test_app_without_attribute(void **state)
{
    gp_config cfg;
    args a;
    assert_int_equal(PARSE(&cfg, &a, "pkg.mod"), 0);
    assert_string_equal(cfg.app, "pkg.mod");
}

static void test_every_flag(void **state)
{
    gp_config cfg;
    args a;
    assert_int_equal(PARSE(&cfg, &a, "--bind", "0.0.0.0:9000", "--workers", "3", "--chdir", "/srv",
                           "--pythonpath", "/p1", "--venv", "/venv", "--root-path", "/api",
                           "--backlog", "64", "--worker-connections", "3", "--graceful-timeout", "2.5", "--keep-alive", "0",
                           "--limit-request-line", "100", "--limit-request-fields", "7",
                           "--limit-request-field_size", "300", "--limit-request-body", "1048576",
                           "--log-level", "WARNING", "--access-log", "-", "--error-log",
                           "/tmp/e.log", "--factory", "--reuse-port", "app:make"),
                     0);
    assert_int_equal(cfg.num_binds, 1);
    assert_string_equal(cfg.binds[0], "0.0.0.0:9000");
    assert_int_equal(cfg.workers, 3);
    assert_string_equal(cfg.workers_why, "from --workers");
    assert_string_equal(cfg.chdir, "/srv");
    assert_int_equal(cfg.num_pythonpath, 1);
    assert_string_equal(cfg.pythonpath[0], "/p1");
    assert_string_equal(cfg.venv, "/venv");
    assert_string_equal(cfg.root_path, "/api");
    assert_int_equal(cfg.backlog, 64);
    assert_int_equal(cfg.worker_connections, 3);
    assert_true(cfg.graceful_timeout == 2.5);
    assert_true(cfg.keep_alive == 0.0);
    assert_int_equal(cfg.limit_request_line, 100);
    assert_int_equal(cfg.limit_request_fields, 7);
    assert_int_equal(cfg.limit_request_field_size, 300);
    assert_int_equal(cfg.limit_request_body, 1048576);
    assert_int_equal(cfg.log_level, GP_LOG_WARNING);
    assert_string_equal(cfg.access_log, "-");
    assert_string_equal(cfg.error_log, "/tmp/e.log");
    assert_true(cfg.factory);
    assert_true(cfg.reuse_port);
    assert_string_equal(cfg.app, "app:make");
}

static void test_newer_flags(void **state)
{
    gp_config cfg;
    args a;
    assert_int_equal(PARSE(&cfg, &a, "--threads", "8", "--timeout", "12.5", "--max-requests",
                           "1000", "--max-requests-jitter", "50", "--max-worker-memory", "512",
                           "--preload", "--fd", "3", "--fd", "7", "--pid", "/run/g.pid", "--user",
                           "www", "--group", "web", "--umask", "027", "app"),
                     0);
    assert_int_equal(cfg.threads, 8);
    assert_true(cfg.timeout == 12.5);
    assert_int_equal(cfg.max_requests, 1000);
    assert_int_equal(cfg.max_requests_jitter, 50);
    assert_int_equal(cfg.max_worker_memory_mb, 512);
    assert_true(cfg.preload);
    assert_int_equal(cfg.num_fds, 2);
    assert_int_equal(cfg.fds[0], 3);
    assert_int_equal(cfg.fds[1], 7);
    /* --fd alone: no default bind */
    assert_int_equal(cfg.num_binds, 0);
    assert_string_equal(cfg.pidfile, "/run/g.pid");
    assert_string_equal(cfg.user, "www");
    assert_string_equal(cfg.group, "web");
    assert_int_equal(cfg.umask, 027);
    reset_getopt();
    assert_int_equal(
        PARSE(&cfg, &a, "--fd", "3", "-b", ":1", "--timeout", "0", "--umask", "0", "app"), 0);
    assert_int_equal(cfg.num_binds, 1);
    assert_true(cfg.timeout == 0.0);
    assert_int_equal(cfg.umask, 0);

    ERR("invalid --threads '0' (1 to 1024)", "--threads", "0", "app");
    ERR("invalid --threads '1025'", "--threads", "1025", "app");
    ERR("invalid --timeout '-3'", "--timeout", "-3", "app");
    ERR("invalid --max-requests 'x'", "--max-requests", "x", "app");
    ERR("invalid --max-requests-jitter '-1'", "--max-requests-jitter", "-1", "app");
    ERR("invalid --max-worker-memory '1073741825' (megabytes)", "--max-worker-memory", "1073741825",
        "app");
    ERR("invalid --fd '2' (a descriptor number >= 3)", "--fd", "2", "app");
    ERR("invalid --fd 'x'", "--fd", "x", "app");
    ERR("invalid --umask '8' (octal, e.g. 022)", "--umask", "8", "app");
    ERR("invalid --umask '1000'", "--umask", "1000", "app");
    ERR("invalid --umask ''", "--umask", "", "app");
    ERR("invalid --umask '-1'", "--umask", "-1", "app");
}

static void test_short_flags_and_equals(void **state)
{
    gp_config cfg;
    args a;
    assert_int_equal(
        PARSE(&cfg, &a, "-b", "unix:/tmp/s", "-w", "2", "--backlog=9", "--bind=[::1]:1", "app"), 0);
    assert_int_equal(cfg.num_binds, 2);
    assert_string_equal(cfg.binds[0], "unix:/tmp/s");
    assert_string_equal(cfg.binds[1], "[::1]:1");
    assert_int_equal(cfg.workers, 2);
    assert_int_equal(cfg.backlog, 9);
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "-w4", "-b:1234", "app"), 0);
    assert_int_equal(cfg.workers, 4);
    assert_string_equal(cfg.binds[0], ":1234");
}

static void test_repeatable(void **state)
{
    gp_config cfg;
    args a;
    assert_int_equal(PARSE(&cfg, &a, "-b", "127.0.0.1:1", "--bind", "127.0.0.1:2", "-b", "unix:/x",
                           "--pythonpath", "/a", "--pythonpath", "/b", "--pythonpath", "/c", "app"),
                     0);
    assert_int_equal(cfg.num_binds, 3);
    assert_string_equal(cfg.binds[0], "127.0.0.1:1");
    assert_string_equal(cfg.binds[1], "127.0.0.1:2");
    assert_string_equal(cfg.binds[2], "unix:/x");
    assert_int_equal(cfg.num_pythonpath, 3);
    assert_string_equal(cfg.pythonpath[0], "/a");
    assert_string_equal(cfg.pythonpath[1], "/b");
    assert_string_equal(cfg.pythonpath[2], "/c");
}

static void test_too_many_binds(void **state)
{
    args a;
    a.argc = 0;
    snprintf(a.store[a.argc], 128, "gallop");
    a.argv[a.argc] = a.store[a.argc];
    a.argc++;
    for (int i = 0; i < GP_MAX_BINDS + 1; i++) {
        snprintf(a.store[a.argc], 128, "-b127.0.0.1:%d", 1000 + i);
        a.argv[a.argc] = a.store[a.argc];
        a.argc++;
    }
    snprintf(a.store[a.argc], 128, "app");
    a.argv[a.argc] = a.store[a.argc];
    a.argc++;
    a.argv[a.argc] = NULL;
    expect_error(&a, "too many --bind");

    /* exactly the maximum is fine */
    a.argc -= 2;
    snprintf(a.store[a.argc], 128, "app");
    a.argv[a.argc] = a.store[a.argc];
    a.argc++;
    a.argv[a.argc] = NULL;
    gp_config cfg;
    reset_getopt();
    assert_int_equal(gp_config_parse(&cfg, a.argc, a.argv), 0);
    assert_int_equal(cfg.num_binds, GP_MAX_BINDS);
}

static void test_gunicorn_aliases(void **state)
{
    gp_config cfg;
    args a;
    assert_int_equal(PARSE(&cfg, &a, "--access-logfile", "/tmp/a.log", "--error-logfile",
                           "/tmp/e.log", "--limit-request-field-size", "500", "app"),
                     0);
    assert_string_equal(cfg.access_log, "/tmp/a.log");
    assert_string_equal(cfg.error_log, "/tmp/e.log");
    assert_int_equal(cfg.limit_request_field_size, 500);
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--log-file", "/tmp/l.log", "app"), 0);
    assert_string_equal(cfg.error_log, "/tmp/l.log");
}

static void test_zero_limits_mean_max(void **state)
{
    gp_config cfg;
    args a;
    assert_int_equal(PARSE(&cfg, &a, "--limit-request-line", "0", "--limit-request-field_size", "0",
                           "--limit-request-fields", "256", "--limit-request-body", "0", "app"),
                     0);
    assert_int_equal(cfg.limit_request_line, 65536);
    assert_int_equal(cfg.limit_request_field_size, 65536);
    assert_int_equal(cfg.limit_request_fields, 256);
    assert_int_equal(cfg.limit_request_body, 0);
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--limit-request-line", "65536", "--limit-request-body",
                           "18446744073709551615", "app"),
                     0);
    assert_int_equal(cfg.limit_request_line, 65536);
    assert_true(cfg.limit_request_body == 18446744073709551615ULL);
}

static void test_log_levels(void **state)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {
        {"debug", GP_LOG_DEBUG}, {"info", GP_LOG_INFO},         {"warning", GP_LOG_WARNING},
        {"error", GP_LOG_ERROR}, {"critical", GP_LOG_CRITICAL}, {"Error", GP_LOG_ERROR},
        {"trace", GP_LOG_DEBUG}, {"WARNING", GP_LOG_WARNING},
    };
    for (size_t i = 0; i < sizeof levels / sizeof *levels; i++) {
        gp_config cfg;
        args a;
        reset_getopt();
        assert_int_equal(PARSE(&cfg, &a, "--log-level", levels[i].name, "app"), 0);
        assert_int_equal(cfg.log_level, levels[i].level);
    }
}

static void test_workers_sources(void **state)
{
    gp_config cfg;
    args a;
    gp_cpus c;
    gp_cpus_detect(&c, "", 0);

    /* no flag, no env: auto */
    assert_int_equal(PARSE(&cfg, &a, "app"), 0);
    assert_int_equal(cfg.workers, c.usable);
    assert_string_equal(cfg.workers_why, c.why);

    /* WEB_CONCURRENCY */
    setenv("WEB_CONCURRENCY", "7", 1);
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "app"), 0);
    assert_int_equal(cfg.workers, 7);
    assert_string_equal(cfg.workers_why, "from WEB_CONCURRENCY");

    /* --workers wins over WEB_CONCURRENCY */
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--workers", "3", "app"), 0);
    assert_int_equal(cfg.workers, 3);
    assert_string_equal(cfg.workers_why, "from --workers");

    /* --workers auto wins too */
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--workers", "auto", "app"), 0);
    assert_int_equal(cfg.workers, c.usable);
    assert_string_equal(cfg.workers_why, c.why);

    /* WEB_CONCURRENCY=auto */
    setenv("WEB_CONCURRENCY", "auto", 1);
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "app"), 0);
    assert_int_equal(cfg.workers, c.usable);

    /* empty WEB_CONCURRENCY is ignored */
    setenv("WEB_CONCURRENCY", "", 1);
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "app"), 0);
    assert_int_equal(cfg.workers, c.usable);

    /* a bad WEB_CONCURRENCY is an error naming its source */
    setenv("WEB_CONCURRENCY", "lots", 1);
    ERR("(from WEB_CONCURRENCY)", "app");
    setenv("WEB_CONCURRENCY", "0", 1);
    ERR("invalid worker count '0'", "app");
    unsetenv("WEB_CONCURRENCY");

    /* the maximum */
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "-w", "1024", "app"), 0);
    assert_int_equal(cfg.workers, GP_MAX_WORKERS);
    ERR("invalid worker count '1025' (from --workers)", "-w", "1025", "app");

    /* --workers-formula 2cores+1 changes what auto means, not explicit counts */
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--workers-formula", "2cores+1", "app"), 0);
    assert_int_equal(cfg.workers, 2 * c.usable + 1);
    assert_int_equal(strncmp(cfg.workers_why, "2 x cores + 1; ", 15), 0);
    assert_string_equal(cfg.workers_why + 15, c.why);
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--workers-formula", "2cores+1", "-w", "3", "app"), 0);
    assert_int_equal(cfg.workers, 3);
    reset_getopt();
    assert_int_equal(
        PARSE(&cfg, &a, "--workers-formula", "2cores+1", "--workers-formula", "cores", "app"), 0);
    assert_int_equal(cfg.workers, c.usable);
    ERR("invalid --workers-formula 'cores*2' (cores or 2cores+1)", "--workers-formula", "cores*2",
        "app");
}

static void test_venv_from_env(void **state)
{
    gp_config cfg;
    args a;
    setenv("VIRTUAL_ENV", "/envs/x", 1);
    assert_int_equal(PARSE(&cfg, &a, "app"), 0);
    assert_string_equal(cfg.venv, "/envs/x");
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--venv", "/other", "app"), 0);
    assert_string_equal(cfg.venv, "/other");
    setenv("VIRTUAL_ENV", "", 1);
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "app"), 0);
    assert_null(cfg.venv);
    unsetenv("VIRTUAL_ENV");
}

static void test_help_and_version(void **state)
{
    gp_config cfg;
    args a;
    char out[8192];
    mkargs(&a, "gallop", "--help", (const char *)NULL);
    assert_int_equal(parse_captured(&cfg, &a, out, sizeof out), 1);
    assert_non_null(strstr(out, "usage: gallop"));
    assert_non_null(strstr(out, "--bind"));

    reset_getopt();
    mkargs(&a, "gallop", "-h", (const char *)NULL);
    assert_int_equal(parse_captured(&cfg, &a, out, sizeof out), 1);
    assert_non_null(strstr(out, "usage: gallop"));

    reset_getopt();
    mkargs(&a, "gallop", "--version", (const char *)NULL);
    assert_int_equal(parse_captured(&cfg, &a, out, sizeof out), 1);
    assert_int_equal(strncmp(out, "gallop ", 7), 0);
    assert_non_null(strchr(out, '\n'));

    /* --help wins even with other flags and no app */
    reset_getopt();
    mkargs(&a, "gallop", "-w", "2", "--help", (const char *)NULL);
    assert_int_equal(parse_captured(&cfg, &a, out, sizeof out), 1);
}

static void test_unknown_flags(void **state)
{
    ERR("unknown option '--bogus' (see gallop --help)", "--bogus", "app");
    ERR("unknown option '-x'", "-x", "app");
    /* an argument given to a no-argument long flag is reported by its short
     * spelling (optopt holds the option's val 'h'): a clumsy but clear message */
    ERR("unknown option '-h'", "--help=1", "app");
}

/* Request bodies and slow clients: defaults, values, range errors. */
static void test_body_and_timeout_flags(void **state)
{
    gp_config cfg;
    args a;
    assert_int_equal(PARSE(&cfg, &a, "app"), 0);
    assert_true(cfg.header_timeout == 30 && cfg.body_timeout == 30 && cfg.send_timeout == 60);
    assert_int_equal(cfg.body_buffer_size, 1 << 20);
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--header-timeout", "2.5", "--body-timeout", "7",
                           "--send-timeout", "90", "--body-buffer-size", "0", "app"),
                     0);
    assert_true(cfg.header_timeout == 2.5 && cfg.body_timeout == 7 && cfg.send_timeout == 90);
    assert_int_equal(cfg.body_buffer_size, 0);
    ERR("invalid --header-timeout '0' (seconds, more than 0)", "--header-timeout", "0", "app");
    ERR("invalid --body-timeout 'x'", "--body-timeout", "x", "app");
    ERR("invalid --send-timeout '-1'", "--send-timeout", "-1", "app");
    ERR("invalid --body-buffer-size '1k' (bytes, 0 to 2^40)", "--body-buffer-size", "1k", "app");
}

/* --http 1|2|auto (issue 12), uvicorn's parser names meaning HTTP/1.1 */
static void test_http_versions(void **state)
{
    gp_config cfg;
    args a;
    assert_int_equal(PARSE(&cfg, &a, "app"), 0);
    assert_int_equal(cfg.http, GP_HTTP_AUTO);
    const char *in[] = {"1", "2", "auto", "h11", "httptools"};
    const int want[] = {GP_HTTP_1, GP_HTTP_2, GP_HTTP_AUTO, GP_HTTP_1, GP_HTTP_1};
    for (int i = 0; i < 5; i++) {
        reset_getopt();
        assert_int_equal(PARSE(&cfg, &a, "--http", in[i], "app"), 0);
        assert_int_equal(cfg.http, want[i]);
    }
    ERR("invalid --http '3' (1, 2 or auto", "--http", "3", "app");
}

static void test_bad_numbers(void **state)
{
    ERR("invalid --backlog 'abc'", "--backlog", "abc", "app");
    ERR("invalid --backlog '0'", "--backlog", "0", "app");
    ERR("invalid --backlog '-5'", "--backlog", "-5", "app");
    ERR("invalid --backlog '+5'", "--backlog", "+5", "app");
    ERR("invalid --backlog ''", "--backlog", "", "app");
    ERR("invalid --backlog '5x'", "--backlog", "5x", "app");
    ERR("invalid --backlog '99999999999'", "--backlog", "99999999999", "app");
    ERR("invalid --worker-connections '0' (1 to 1000000)", "--worker-connections", "0", "app");
    ERR("invalid --worker-connections 'x' (1 to 1000000)", "--worker-connections", "x", "app");
    ERR("invalid --graceful-timeout '-1'", "--graceful-timeout", "-1", "app");
    ERR("invalid --graceful-timeout 'nan'", "--graceful-timeout", "nan", "app");
    ERR("invalid --graceful-timeout 'inf'", "--graceful-timeout", "inf", "app");
    ERR("invalid --graceful-timeout '1e8'", "--graceful-timeout", "1e8", "app");
    ERR("invalid --keep-alive 'x'", "--keep-alive", "x", "app");
    ERR("invalid --keep-alive '2s'", "--keep-alive", "2s", "app");
    ERR("invalid --keep-alive ''", "--keep-alive", "", "app");
    ERR("invalid --limit-request-line '65537' (0 to 65536)", "--limit-request-line", "65537",
        "app");
    ERR("invalid --limit-request-line '-1'", "--limit-request-line", "-1", "app");
    ERR("invalid --limit-request-fields '0' (1 to 256)", "--limit-request-fields", "0", "app");
    ERR("invalid --limit-request-fields '257'", "--limit-request-fields", "257", "app");
    ERR("invalid --limit-request-field_size '70000'", "--limit-request-field-size", "70000", "app");
    ERR("invalid --limit-request-body '-1'", "--limit-request-body", "-1", "app");
    ERR("invalid --limit-request-body '18446744073709551616'", "--limit-request-body",
        "18446744073709551616", "app");
    ERR("invalid --log-level 'loud'", "--log-level", "loud", "app");
}

static void test_bad_workers(void **state)
{
    ERR("invalid worker count '0' (from --workers): use a number from 1 to 1024 or 'auto'",
        "--workers", "0", "app");
    ERR("invalid worker count '-2'", "-w", "-2", "app");
    ERR("invalid worker count 'many'", "-w", "many", "app");
    ERR("invalid worker count 'AUTO'", "-w", "AUTO", "app");
    ERR("invalid worker count ''", "-w", "", "app");
}

static void test_app_errors(void **state)
{
    ERR("no application given: gallop [OPTIONS] MODULE[:ATTRIBUTE]", "-w", "1");
    {
        gp_config cfg;
        args a;
        char out[512];
        reset_getopt();
        mkargs(&a, "gallop", (const char *)NULL);
        assert_int_equal(parse_captured(&cfg, &a, out, sizeof out), -1);
        assert_string_equal(
            out, "gallop: error: no application given: gallop [OPTIONS] MODULE[:ATTRIBUTE]\n");
    }
    ERR("unexpected argument 'two' (one application only)", "one", "two");
    ERR("unexpected argument 'two' (one application only)", "-w", "1", "one", "--keep-alive", "2",
        "two");
    ERR("unexpected argument 'two' (one application only)", "one", "--", "two");
    ERR("invalid application 'm:f('", "m:f(");
    ERR("invalid application ':x': use MODULE[:ATTRIBUTE]", ":x");
    ERR("invalid application 'x:'", "x:");
    ERR("invalid application ':'", ":");
    ERR("invalid application ''", "");
}

/* Full error line text for a typical bad value. */
static void test_error_line_exact(void **state)
{
    gp_config cfg;
    args a;
    char out[512];
    mkargs(&a, "gallop", "--backlog", "lots", "app", (const char *)NULL);
    assert_int_equal(parse_captured(&cfg, &a, out, sizeof out), -1);
    assert_string_equal(out, "gallop: error: invalid --backlog 'lots'\n");
    reset_getopt();
    mkargs(&a, "gallop", "--frobnicate", "app", (const char *)NULL);
    assert_int_equal(parse_captured(&cfg, &a, out, sizeof out), -1);
    assert_string_equal(out, "gallop: error: unknown option '--frobnicate' (see gallop --help)\n");
}

/* A flag given without its value. gp_config_parse has a "needs a value" branch
 * (case ':'), and the missing value is still an error (-1). */
static void test_missing_value_is_error(void **state)
{
    ERR(NULL, "-b");
    ERR(NULL, "--bind");
    ERR(NULL, "--backlog");
    ERR(NULL, "--workers");
    ERR(NULL, "app", "-w"); /* '+': "-w" after the app is a second argument */
}

/* The "needs a value" message names the flag as typed (this was "unknown
 * option" before the optstring gained its leading ':'). */
static void test_missing_value_message(void **state)
{
    ERR("option '--backlog' needs a value", "--backlog");
    ERR("option '--bind' needs a value", "--bind");
    ERR("option '-b' needs a value", "-b");
    ERR("option '--workers' needs a value", "--workers");
    ERR("option '--fd' needs a value", "--fd");
}

/* BUG: src/core/config.c sets optind = 1 instead of 0 before parsing, so glibc's
 * getopt state from an earlier call (the rest of a short-option cluster such as
 * "-hw") survives: a second gp_config_parse of {"--backlog","7","app"} after one
 * of {"-hw","app"} parses "-w 7"-like leftovers and ignores --backlog. Harmless
 * in main (one parse per process) but it made the parser non-reentrant. */
static void test_reparse_after_cluster(void **state)
{
    gp_config cfg;
    args a;
    char out[8192];
    mkargs(&a, "gallop", "-hw", "app", (const char *)NULL);
    assert_int_equal(parse_captured(&cfg, &a, out, sizeof out), 1);
    /* no reset_getopt() here on purpose */
    assert_int_equal(PARSE(&cfg, &a, "--backlog", "7", "app"), 0);
    assert_int_equal(cfg.backlog, 7);
}

/* A long config file (600 lines) with a long command line: every line is
 * read (the last one wins), and the command line still comes last. Under
 * ASan this once overflowed a fixed array of argc + 512 slots. */
static void test_config_file_many_lines(void **state)
{
    char path[] = "/tmp/gp_test_config_file_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    for (int i = 1; i < 600; i++) fprintf(f, "backlog = %d\n", i);
    fprintf(f, "graceful_timeout = 7\n");
    fclose(f);
    static args a;
    a.argc = 0;
    const char *fixed[] = {"gallop", "-c", path};
    for (int i = 0; i < 3; i++) snprintf(a.store[a.argc++], sizeof a.store[0], "%s", fixed[i]);
    for (int i = 0; i < 40; i++) snprintf(a.store[a.argc++], sizeof a.store[0], "--keep-alive=3");
    snprintf(a.store[a.argc++], sizeof a.store[0], "app:app");
    for (int i = 0; i < a.argc; i++) a.argv[i] = a.store[i];
    a.argv[a.argc] = NULL;
    static gp_config cfg; /* static: what it points into stays reachable */
    assert_int_equal(gp_config_load(&cfg, a.argc, a.argv), 0);
    unlink(path);
    assert_int_equal(cfg.backlog, 599);
    assert_true(cfg.graceful_timeout == 7.0);
    assert_true(cfg.keep_alive == 3.0);
    assert_string_equal(cfg.app, "app:app");
    assert_int_equal(cfg.argc, a.argc); /* HUP re-reads from what was given */
}

/* A config file's address is replaced by any address flag on the command
 * line: --port as much as --bind. */
static void test_config_file_address_replaced(void **state)
{
    char path[] = "/tmp/gp_test_config_addr_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "bind = 127.0.0.1:9\nworkers = 2\n");
    fclose(f);
    static const char *const lines[][4] = {
        {"--port", "7000", "127.0.0.1:7000"},
        {"--host=0.0.0.0", NULL, "0.0.0.0:8000"},
        {"-b", ":7001", ":7001"},
        {"--uds", "/tmp/s", "unix:/tmp/s"},
        {"--workers=2", NULL, "127.0.0.1:9"},
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        static args a[5];
        static gp_config cfg[5]; /* static: what they point into stays reachable */
        reset_getopt();
        mkargs(&a[i], "gallop", "-c", path, "app:app", lines[i][0], lines[i][1],
               (const char *)NULL);
        assert_int_equal(gp_config_load(&cfg[i], a[i].argc, a[i].argv), 0);
        assert_int_equal(cfg[i].num_binds, 1);
        assert_string_equal(cfg[i].binds[0], lines[i][2]);
        assert_int_equal(cfg[i].workers, 2);
    }
    unlink(path);
}

/* Options after the app, as gunicorn and uvicorn take them. */
static void test_options_after_app(void **state)
{
    gp_config cfg;
    args a;
    assert_int_equal(PARSE(&cfg, &a, "app:app", "-w", "2", "-b", ":8000"), 0);
    assert_string_equal(cfg.app, "app:app");
    assert_int_equal(cfg.workers, 2);
    assert_int_equal(cfg.num_binds, 1);
    assert_string_equal(cfg.binds[0], ":8000");
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--bind=unix:/tmp/x.sock", "app:app", "--log-level", "debug"),
                     0);
    assert_string_equal(cfg.app, "app:app");
    assert_string_equal(cfg.binds[0], "unix:/tmp/x.sock");
    assert_int_equal(cfg.log_level, GP_LOG_DEBUG);
    /* after "--" an argument that looks like a flag is the app */
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "-w", "1", "--", "-odd:app"), 0);
    assert_string_equal(cfg.app, "-odd:app");
    /* POSIXLY_CORRECT does not turn it off */
    setenv("POSIXLY_CORRECT", "1", 1);
    reset_getopt();
    int r = PARSE(&cfg, &a, "main:app", "--workers", "3");
    unsetenv("POSIXLY_CORRECT");
    assert_int_equal(r, 0);
    assert_int_equal(cfg.workers, 3);
    /* the call syntax is the app's text for the bridge */
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "m:create_app('x', debug=True)", "-w", "1"), 0);
    assert_string_equal(cfg.app, "m:create_app('x', debug=True)");
}

/* --reload's lists and limits, and --check-config's report. */
static void test_reload_and_check_config(void **state)
{
    gp_config cfg;
    args a;
    assert_int_equal(PARSE(&cfg, &a, "main:app"), 0);
    assert_false(cfg.reload);
    assert_true(cfg.reload_delay == 0.25);
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--reload", "--reload-dir", "src", "--reload-dir=lib",
                           "--reload-include", "*.html", "--reload-exclude", "tests",
                           "--reload-extra-file", "a.toml", "--reload-extra-files=b.toml",
                           "--reload-delay", "0.5", "--reload-engine", "inotify", "main:app"),
                     0);
    assert_true(cfg.reload);
    assert_int_equal(cfg.num_reload_dirs, 2);
    assert_string_equal(cfg.reload_dirs[1], "lib");
    assert_string_equal(cfg.reload_includes[0], "*.html");
    assert_string_equal(cfg.reload_excludes[0], "tests");
    assert_int_equal(cfg.num_reload_extra_files, 2);
    assert_string_equal(cfg.reload_extra_files[1], "b.toml");
    assert_true(cfg.reload_delay == 0.5);
    ERR("--reload cannot work with --preload", "--reload", "--preload", "app");
    ERR("invalid --reload-delay '61' (seconds, 0 to 60)", "--reload-delay", "61", "app");
    ERR("invalid --reload-delay '-1'", "--reload-delay", "-1", "app");
    ERR("invalid --reload-engine 'poll'", "--reload-engine", "poll", "app");
    ERR("--reload-include needs a value", "--reload-include=", "app");
    args many;
    mkargs(&many, "gallop", "app", (const char *)NULL);
    for (int i = 0; i < 33; i++) {
        snprintf(many.store[many.argc], sizeof many.store[0], "--reload-dir=d%d", i);
        many.argv[many.argc] = many.store[many.argc];
        many.argc++;
    }
    many.argv[many.argc] = NULL;
    expect_error(&many, "too many --reload-dir (at most 32)");

    char out[4096];
    reset_getopt();
    mkargs(&a, "gallop", "--check-config", "-w", "3", "-b", "127.0.0.1:9", "-b", "unix:/x",
           "m:app", (const char *)NULL);
    assert_int_equal(parse_captured(&cfg, &a, out, sizeof out), 1); /* 1: exit 0 */
    assert_string_equal(out, "gallop: configuration OK: m:app, 3 workers, 127.0.0.1:9 and more\n");
    ERR("invalid port", "--check-config", "-b", "127.0.0.1:x", "app");
}

static void test_uvicorn_flags(void **state)
{
    gp_config cfg;
    args a;
    assert_int_equal(
        PARSE(&cfg, &a, "main:app", "--host", "0.0.0.0", "--port", "8001", "--workers", "2"), 0);
    assert_int_equal(cfg.num_binds, 1);
    assert_string_equal(cfg.binds[0], "0.0.0.0:8001");
    assert_int_equal(cfg.workers, 2);
    assert_true(cfg.proxy_headers);
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--port", "9000", "main:app"), 0);
    assert_string_equal(cfg.binds[0], "127.0.0.1:9000");
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--host", "::", "main:app"), 0);
    assert_string_equal(cfg.binds[0], "[::]:8000");
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--host=[::1]", "--port=0", "main:app"), 0);
    assert_string_equal(cfg.binds[0], "[::1]:0");
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "main:app", "--uds", "/tmp/u.sock", "--fd", "5"), 0);
    assert_int_equal(cfg.num_binds, 1);
    assert_string_equal(cfg.binds[0], "unix:/tmp/u.sock");
    assert_int_equal(cfg.num_fds, 1);
    assert_int_equal(cfg.fds[0], 5);
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "main:app", "--timeout-keep-alive", "7",
                           "--limit-max-requests", "100", "--root-path", "/api", "--access-log",
                           "-", "--no-access-log", "--no-proxy-headers"),
                     0);
    assert_true(cfg.keep_alive == 7);
    assert_int_equal(cfg.max_requests, 100);
    assert_string_equal(cfg.root_path, "/api");
    assert_null(cfg.access_log);
    assert_false(cfg.proxy_headers);
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--no-proxy-headers", "--proxy-headers", "main:app"), 0);
    assert_true(cfg.proxy_headers);
    ERR("--access-log takes a file or - (stdout), not '--port'", "app", "--access-log", "--port",
        "8000");
    ERR("invalid --port '70000' (0 to 65535)", "--port", "70000", "app");
    ERR("invalid --port 'http'", "--port", "http", "app");
    ERR("invalid --host ''", "--host", "", "app");
    ERR("invalid --keep-alive 'x'", "--timeout-keep-alive", "x", "app");
}

static void test_gunicorn_short_flags(void **state)
{
    gp_config cfg;
    args a;
    assert_int_equal(PARSE(&cfg, &a, "-t", "5", "-p", "/tmp/p.pid", "-u", "nobody", "-g", "nogroup",
                           "-m", "007", "-k", "uvicorn.workers.UvicornWorker", "app"),
                     0);
    assert_true(cfg.timeout == 5);
    assert_string_equal(cfg.pidfile, "/tmp/p.pid");
    assert_string_equal(cfg.user, "nobody");
    assert_string_equal(cfg.group, "nogroup");
    assert_int_equal(cfg.umask, 07);
    static const char *const classes[] = {"sync", "gthread", "uvicorn.workers.UvicornH11Worker"};
    for (size_t i = 0; i < 3; i++) {
        reset_getopt();
        assert_int_equal(PARSE(&cfg, &a, "--worker-class", classes[i], "app"), 0);
    }
    ERR("unsupported worker class 'gevent'", "-k", "gevent", "app");
    /* uvicorn's implementation choices and gunicorn's heartbeat directory are
     * accepted (gallop has one of each), checked for typos */
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--http", "httptools", "--ws", "websockets", "--app-dir",
                           "/srv/app", "--worker-tmp-dir", "/tmp", "app"),
                     0);
    assert_int_equal(cfg.num_pythonpath, 1);
    assert_string_equal(cfg.pythonpath[0], "/srv/app");
    ERR("invalid --http 'h2'", "--http", "h2", "app");
    ERR("invalid --ws 'none'", "--ws", "none", "app");
    ERR("invalid --worker-tmp-dir '/nonexistent/x': not a directory", "--worker-tmp-dir",
        "/nonexistent/x", "app");
    ERR("unsupported worker class 'eventlet'", "app", "--worker-class=eventlet");
    for (int i = 0; i < 2; i++) {
        char out[512];
        reset_getopt();
        mkargs(&a, "gallop", i ? "-V" : "-v", (const char *)NULL);
        assert_int_equal(parse_captured(&cfg, &a, out, sizeof out), 1);
        assert_int_equal(strncmp(out, "gallop ", 7), 0);
    }
}

/* gunicorn's fd://N and, with no address at all, $PORT. */
static void test_bind_defaults_and_fd(void **state)
{
    gp_config cfg;
    args a;
    assert_int_equal(PARSE(&cfg, &a, "-b", "fd://7", "app"), 0);
    assert_int_equal(cfg.num_binds, 0);
    assert_int_equal(cfg.num_fds, 1);
    assert_int_equal(cfg.fds[0], 7);
    ERR("invalid --bind fd:// '1'", "-b", "fd://1", "app");
    ERR("invalid --bind fd:// 'x'", "--bind", "fd://x", "app");
    setenv("PORT", "5000", 1);
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "app"), 0);
    assert_int_equal(cfg.num_binds, 1);
    assert_string_equal(cfg.binds[0], "0.0.0.0:5000");
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "-b", "127.0.0.1:6000", "app"), 0);
    assert_int_equal(cfg.num_binds, 1);
    assert_string_equal(cfg.binds[0], "127.0.0.1:6000");
    setenv("PORT", "fifty", 1);
    ERR("invalid PORT 'fifty' in the environment", "app");
    unsetenv("PORT");
}

/* --workers-min / --workers-max: either implies the other; --workers is the
 * start, inside the bounds */
static void test_adaptive_workers(void **state)
{
    gp_config cfg;
    args a;
    gp_cpus c;
    gp_cpus_detect(&c, "", 0);

    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "app"), 0);
    assert_int_equal(cfg.workers_max, 0); /* off by default */

    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--workers-min", "2", "--workers-max", "6", "app"), 0);
    assert_int_equal(cfg.workers_min, 2);
    assert_int_equal(cfg.workers_max, 6);
    assert_int_equal(cfg.workers, 2);
    assert_false(cfg.workers_max_implied);
    assert_string_equal(cfg.workers_why, "adaptive: 2 to 6 workers");

    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--workers-max", "3", "app"), 0);
    assert_int_equal(cfg.workers_min, 1);
    assert_int_equal(cfg.workers, 1);

    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--workers-min", "1", "app"), 0);
    assert_int_equal(cfg.workers_max, 2 * c.usable);
    assert_true(cfg.workers_max_implied);

    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--workers-min", "1", "--interface", "asgi", "app"), 0);
    assert_int_equal(cfg.workers_max, c.usable);
    assert_false(cfg.workers_max_implied);

    /* a minimum above the implied maximum raises it */
    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "--workers-min", "1000", "app"), 0);
    assert_int_equal(cfg.workers_max, 2 * c.usable > 1000 ? 2 * c.usable : 1000);

    reset_getopt();
    assert_int_equal(PARSE(&cfg, &a, "-w", "3", "--workers-max", "4", "app"), 0);
    assert_int_equal(cfg.workers, 3);

    ERR("--workers-min 3 is above --workers-max 2", "--workers-min", "3", "--workers-max", "2",
        "app");
    ERR("--workers 5 is outside --workers-min 1 to --workers-max 4", "-w", "5", "--workers-max",
        "4", "app");
    ERR("invalid --workers-max '0' (1 to 1024)", "--workers-max", "0", "app");
    ERR("invalid --workers-min 'x' (1 to 1024)", "--workers-min", "x", "app");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, setup),
        cmocka_unit_test_setup(test_app_without_attribute, setup),
        cmocka_unit_test_setup(test_every_flag, setup),
        cmocka_unit_test_setup(test_newer_flags, setup),
        cmocka_unit_test_setup(test_body_and_timeout_flags, setup),
        cmocka_unit_test_setup(test_short_flags_and_equals, setup),
        cmocka_unit_test_setup(test_repeatable, setup),
        cmocka_unit_test_setup(test_too_many_binds, setup),
        cmocka_unit_test_setup(test_gunicorn_aliases, setup),
        cmocka_unit_test_setup(test_zero_limits_mean_max, setup),
        cmocka_unit_test_setup(test_log_levels, setup),
        cmocka_unit_test_setup(test_workers_sources, setup),
        cmocka_unit_test_setup(test_venv_from_env, setup),
        cmocka_unit_test_setup(test_help_and_version, setup),
        cmocka_unit_test_setup(test_unknown_flags, setup),
        cmocka_unit_test_setup(test_bad_numbers, setup),
        cmocka_unit_test_setup(test_bad_workers, setup),
        cmocka_unit_test_setup(test_app_errors, setup),
        cmocka_unit_test_setup(test_error_line_exact, setup),
        cmocka_unit_test_setup(test_missing_value_is_error, setup),
        cmocka_unit_test_setup(test_missing_value_message, setup),
        cmocka_unit_test_setup(test_reparse_after_cluster, setup),
        cmocka_unit_test_setup(test_config_file_many_lines, setup),
        cmocka_unit_test_setup(test_options_after_app, setup),
        cmocka_unit_test_setup(test_config_file_address_replaced, setup),
        cmocka_unit_test_setup(test_uvicorn_flags, setup),
        cmocka_unit_test_setup(test_reload_and_check_config, setup),
        cmocka_unit_test_setup(test_gunicorn_short_flags, setup),
        cmocka_unit_test_setup(test_bind_defaults_and_fd, setup),
        cmocka_unit_test_setup(test_http_versions, setup),
        cmocka_unit_test_setup(test_adaptive_workers, setup),
    };

    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
