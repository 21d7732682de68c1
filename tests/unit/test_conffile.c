/* Unit tests for core/conffile: gunicorn's setting names mapped onto flags
 * (lists, switches, umask, pythonpath, worker_class), what gallop lacks
 * (warning, error, silence at gunicorn's default), typos, hooks, the
 * interpreter's answer, one-setting-a-line files, and whole loads of a real
 * Python file through the child interpreter (each error one line naming the
 * file, the line and the setting). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/conffile.c"

static flag_list fresh(void)
{
    return (flag_list){.shown = "t.py"};
}

/* The flags of l joined with spaces. */
static const char *joined(const flag_list *l)
{
    static char buf[4096];
    size_t off = 0;
    buf[0] = 0;
    for (size_t i = 0; i < l->n; i++)
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s", i ? " " : "", l->flags[i]);
    return buf;
}

static int take1(flag_list *l, const char *name, char type, const char *value)
{
    item it = {type, value};
    return take(l, name, 7, &it, 1, false);
}

/* Runs f(arg) with stderr in a temp file; returns what it printed. */
static const char *captured_stderr(int (*f)(void *), void *arg, int *rc)
{
    static char out[8192];
    char path[] = "/tmp/gp_test_conffile_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int save = dup(2);
    dup2(fd, 2);
    *rc = f(arg);
    fflush(stderr);
    dup2(save, 2);
    close(save);
    ssize_t n = pread(fd, out, sizeof out - 1, 0);
    out[n > 0 ? n : 0] = 0;
    close(fd);
    return out;
}

static void test_distance_and_near(void **state)
{
    assert_int_equal(distance("workers", "workers"), 0);
    assert_int_equal(distance("worker", "workers"), 1);
    assert_int_equal(distance("wrokers", "workers"), 2);
    assert_string_equal(near_setting("worker"), "workers");
    assert_string_equal(near_setting("keep_alive"), "keepalive");
    assert_string_equal(near_setting("acesslog"), "accesslog");
    assert_null(near_setting("port_number"));
    assert_null(near_setting("my_helper"));
}

static void test_gunicorn_names_become_flags(void **state)
{
    flag_list l = fresh();
    assert_int_equal(take1(&l, "workers", 'i', "4"), 0);
    assert_int_equal(take1(&l, "keepalive", 'i', "3"), 0);
    assert_int_equal(take1(&l, "accesslog", 's', "-"), 0);
    assert_int_equal(take1(&l, "preload_app", 'b', "true"), 0);
    assert_int_equal(take1(&l, "reuse_port", 'b', "false"), 0); /* off: no flag */
    assert_int_equal(take1(&l, "pidfile", 'n', ""), 0);         /* None: the default */
    assert_int_equal(take1(&l, "umask", 'i', "23"), 0);         /* 0o027 */
    assert_int_equal(take1(&l, "timeout", 'f', "12.5"), 0);
    assert_string_equal(joined(&l), "--workers=4 --keep-alive=3 --access-log=- --preload "
                                    "--umask=027 --timeout=12.5");
    assert_true(l.preload);
    flags_free(&l);
}

static void test_lists(void **state)
{
    flag_list l = fresh();
    item binds[] = {{'s', "127.0.0.1:1"}, {'s', "unix:/tmp/s"}};
    assert_int_equal(take(&l, "bind", 3, binds, 2, true), 0);
    item ips[] = {{'s', "10.0.0.1"}, {'s', "10.0.0.2"}};
    assert_int_equal(take(&l, "forwarded_allow_ips", 4, ips, 2, true), 0);
    assert_int_equal(take1(&l, "pythonpath", 's', "lib,src"), 0);
    item env[] = {{'s', "A=1"}};
    assert_int_equal(take(&l, "raw_env", 5, env, 1, true), 0);
    item none[1] = {{0, NULL}};
    assert_int_equal(take(&l, "reload_extra_files", 6, none, 0, true), 0);
    assert_string_equal(joined(&l), "--bind=127.0.0.1:1 --bind=unix:/tmp/s "
                                    "--forwarded-allow-ips=10.0.0.1,10.0.0.2 --pythonpath=lib "
                                    "--pythonpath=src --env=A=1");
    item two[] = {{'i', "1"}, {'i', "2"}};
    assert_int_equal(take(&l, "workers", 8, two, 2, true), -1); /* one value only */
    assert_int_equal(strstr(l.wheres[0], "config file t.py, line 3: setting 'bind': ") != NULL, 1);
    flags_free(&l);
}

static void test_worker_class(void **state)
{
    flag_list l = fresh();
    assert_int_equal(take1(&l, "worker_class", 's', "sync"), 0);
    assert_int_equal(take1(&l, "worker_class", 's', "gthread"), 0);
    assert_int_equal(take1(&l, "worker_class", 'c', "uvicorn.workers.UvicornWorker"), 0);
    assert_string_equal(joined(&l), "--interface=asgi");
    flags_free(&l);
}

static void test_what_gallop_lacks(void **state)
{
    flag_list l = fresh();
    /* at gunicorn's default: nothing */
    assert_int_equal(take1(&l, "certfile", 'n', ""), 0);
    assert_int_equal(take1(&l, "daemon", 'b', "false"), 0);
    assert_int_equal(take1(&l, "sendfile", 'b', "true"), 0);
    /* warnings: serving goes on */
    assert_int_equal(take1(&l, "proc_name", 's', "app"), 0);
    assert_int_equal(l.n, 0);
    /* implemented since: the flag */
    assert_int_equal(take1(&l, "worker_tmp_dir", 's', "/dev/shm"), 0);
    assert_string_equal(joined(&l), "--worker-tmp-dir=/dev/shm");
    /* errors */
    assert_int_equal(take1(&l, "daemon", 'b', "true"), -1);
    assert_int_equal(take1(&l, "print_config", 'b', "true"), -1);
    flags_free(&l);
    /* TLS settings are flags now */
    flag_list t = fresh();
    assert_int_equal(take1(&t, "certfile", 's', "/etc/ssl/c.pem"), 0);
    assert_int_equal(take1(&t, "cert_reqs", 'i', "2"), 0);
    assert_string_equal(joined(&t), "--certfile=/etc/ssl/c.pem --cert-reqs=2");
    flags_free(&t);
    /* access_log_format is a flag now, not a warning */
    flag_list m = fresh();
    assert_int_equal(take1(&m, "access_log_format", 's', "%(h)s %(D)s"), 0);
    assert_string_equal(joined(&m), "--access-log-format=%(h)s %(D)s");
    flags_free(&m);
}

static void test_unknown_names(void **state)
{
    flag_list l = fresh();
    assert_int_equal(take1(&l, "worker", 'i', "4"), -1);           /* a typo */
    assert_int_equal(take1(&l, "my_helper", 'i', "4"), 0);         /* warned */
    assert_int_equal(take1(&l, "PORT", 'i', "8000"), 0);           /* a constant */
    assert_int_equal(take1(&l, "port", 'i', "8000"), 0);           /* uvicorn's, not gunicorn's */
    assert_int_equal(take1(&l, "pid", 'i', "4242"), 0);            /* pidfile is the setting */
    assert_int_equal(take1(&l, "env", 's', "prod"), 0);            /* raw_env is the setting */
    assert_int_equal(take1(&l, "cpu_count", 'F', "cpu_count"), 0); /* an imported helper */
    assert_int_equal(take1(&l, "Path", 'c', "pathlib.Path"), 0);
    assert_int_equal(l.n, 0);
    /* gallop's own flags, '_' for '-' */
    assert_int_equal(take1(&l, "max_worker_memory", 'i', "512"), 0);
    assert_int_equal(take1(&l, "interface", 's', "asgi"), 0);
    assert_string_equal(joined(&l), "--max-worker-memory=512 --interface=asgi");
    /* a bad type for a value */
    assert_int_equal(take1(&l, "workers", 'b', "true"), -1);
    assert_int_equal(take1(&l, "preload_app", 's', "maybe"), -1);
    assert_int_equal(take1(&l, "bind", 'x', "'a\\nb'"), -1);
    assert_int_equal(take1(&l, "threads", 'o', "{'a': 1}"), -1);
    flags_free(&l);
}

static void test_hooks(void **state)
{
    flag_list l = fresh();
    assert_int_equal(take1(&l, "post_fork", 'F', "post_fork"), 0);
    assert_true(l.hooks);
    assert_int_equal(take1(&l, "on_starting", 'F', "on_starting"), 0);
    assert_int_equal(l.num_master_hooks, 1);
    assert_string_equal(l.master_hooks[0], "on_starting");
    assert_int_equal(l.master_hook_lines[0], 7);
    assert_int_equal(take1(&l, "pre_request", 'i', "5"), -1);
    assert_int_equal(take1(&l, "post_request", 'n', ""), 0);
    assert_int_equal(l.n, 0);
    flags_free(&l);
}

static void test_interpreter_answer(void **state)
{
    flag_list l = fresh();
    char out[] =
        "i\t2\tworkers\t3\n[\t3\tbind\t2\ns\t3\tbind\t:1\ns\t3\tbind\t:2\nF\t5\tpost_fork\tf\n";
    assert_int_equal(take_output(&l, out), 0);
    assert_string_equal(joined(&l), "--workers=3 --bind=:1 --bind=:2");
    assert_true(l.hooks);
    char bad[] = "[\t3\tbind\t2\ns\t3\tbind\t:1\n";
    assert_int_equal(take_output(&l, bad), -1);
    char garbage[] = "nonsense\n";
    assert_int_equal(take_output(&l, garbage), -1);
    flags_free(&l);
}

static void test_key_value_lines(void **state)
{
    flag_list l = fresh();
    char a[] = "keepalive = 3   # gunicorn's name\n", b[] = "max_requests=10\n", c[] = "preload\n",
         d[] = "  # only a comment\n", e[] = "bind = \"unix:/run/a.sock\"\n",
         f[] = "import multiprocessing\n";
    assert_int_equal(read_line(&l, a, 1), 0);
    assert_int_equal(read_line(&l, b, 2), 0);
    assert_int_equal(read_line(&l, c, 3), 0);
    assert_int_equal(read_line(&l, d, 4), 0);
    assert_int_equal(read_line(&l, e, 5), 0);
    assert_string_equal(joined(&l), "--keep-alive=3 --max-requests=10 --preload "
                                    "--bind=unix:/run/a.sock");
    assert_string_equal(l.wheres[1], "config file t.py, line 2: setting 'max_requests': ");
    assert_int_equal(read_line(&l, f, 6), -1);
    flags_free(&l);
}

static void test_split_words(void **state)
{
    char **w;
    int n = split_words("  --bind 0.0.0.0:80 -e 'A=b c' \"q\\\"x\" f\\ g  ", "gallop", &w);
    assert_int_equal(n, 7);
    assert_string_equal(w[0], "gallop");
    assert_string_equal(w[1], "--bind");
    assert_string_equal(w[2], "0.0.0.0:80");
    assert_string_equal(w[3], "-e");
    assert_string_equal(w[4], "A=b c");
    assert_string_equal(w[5], "q\"x");
    assert_string_equal(w[6], "f g");
    for (int i = 1; i < n; i++) free(w[i]);
    free(w);
    assert_int_equal(split_words("--bind 'open", "gallop", &w), -1);
    assert_int_equal(split_words("   ", "gallop", &w), 1);
    free(w);
}

/* ---- whole loads through the interpreter ---------------------------------------------- */

static char dir[64];

static int setup_dir(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/gp_conffile_XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(start_cwd, sizeof start_cwd, "%s", dir); /* where default files are looked for */
    unsetenv("VIRTUAL_ENV");
    unsetenv("WEB_CONCURRENCY");
    return 0;
}

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

typedef struct {
    gp_config cfg;
    char *argv[8];
    int argc;
} load_args;

static int do_load(void *p)
{
    load_args *a = p;
    return gp_config_load(&a->cfg, a->argc, a->argv);
}

/* What a load keeps for the process's lifetime: the file's flags (the
 * command line's strings follow them) and the file's path. */
static void free_load(load_args *a)
{
    char **all = a->cfg.file_args;
    for (int i = 1; all && all[i] && all[i] != a->argv[1]; i++) free(all[i]);
    free(all);
    free((char *)a->cfg.config_file);
}

static void test_load_python_file(void **state)
{
    write_file("gunicorn.conf.py", "import multiprocessing\n"
                                   "bind = ['127.0.0.1:7001', '127.0.0.1:7002']\n"
                                   "workers = 3\n"
                                   "raw_env = ['GREETING=hi']\n"
                                   "def post_fork(server, worker):\n"
                                   "    pass\n");
    load_args a = {.argv = {"gallop", "app:app", NULL}, .argc = 2};
    int rc;
    captured_stderr(do_load, &a, &rc); /* the default file: no -c */
    assert_int_equal(rc, 0);
    assert_int_equal(a.cfg.workers, 3);
    assert_int_equal(a.cfg.num_binds, 2);
    assert_string_equal(a.cfg.binds[1], "127.0.0.1:7002");
    assert_int_equal(a.cfg.num_env, 1);
    assert_string_equal(a.cfg.env[0], "GREETING=hi");
    char want[128];
    snprintf(want, sizeof want, "%s/gunicorn.conf.py", dir);
    assert_string_equal(a.cfg.hooks_file, want);
    assert_string_equal(a.cfg.config_file, want);
    free_load(&a);
    /* the command line wins, and its --bind replaces the file's list */
    load_args b = {.argv = {"gallop", "-w", "2", "--bind", "127.0.0.1:7003", "app:app", NULL},
                   .argc = 6};
    captured_stderr(do_load, &b, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(b.cfg.workers, 2);
    assert_int_equal(b.cfg.num_binds, 1);
    assert_string_equal(b.cfg.binds[0], "127.0.0.1:7003");
    free_load(&b);
}

static void test_load_errors_are_one_line(void **state)
{
    static const struct {
        const char *text, *line;
    } cases[] = {
        {"workers = 2\nworkerz = 3\n",
         "gallop: error: config file bad.py, line 2: setting 'workerz': unknown setting (did you "
         "mean 'workers'?)\n"},
        {"\nworkers = 'x'\n",
         "gallop: error: config file bad.py, line 2: setting 'workers': invalid worker count 'x' "
         "(from --workers): use a number from 1 to 1024 or 'auto'\n"},
        {"bind = (\n", "gallop: error: config file bad.py, line 1: SyntaxError: '(' was never "
                       "closed\n"},
        {"import os\nworkers = os.nope\n",
         "gallop: error: config file bad.py, line 2: AttributeError: module 'os' has no attribute "
         "'nope'\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_file("bad.py", cases[i].text);
        load_args a = {.argv = {"gallop", "-c", "bad.py", "app:app", NULL}, .argc = 4};
        int rc;
        const char *err = captured_stderr(do_load, &a, &rc);
        assert_int_equal(rc, -1);
        assert_string_equal(err, cases[i].line);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distance_and_near),
        cmocka_unit_test(test_gunicorn_names_become_flags),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_worker_class),
        cmocka_unit_test(test_what_gallop_lacks),
        cmocka_unit_test(test_unknown_names),
        cmocka_unit_test(test_hooks),
        cmocka_unit_test(test_interpreter_answer),
        cmocka_unit_test(test_key_value_lines),
        cmocka_unit_test(test_split_words),
        cmocka_unit_test_setup(test_load_python_file, setup_dir),
        cmocka_unit_test_setup(test_load_errors_are_one_line, setup_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
