/* Unit tests for core/reload: pathlib-style pattern matching, uvicorn's
 * include/exclude rules, which directories are walked, the debounce, and
 * the inotify watcher on a real temporary tree (new subdirectories,
 * rename-saves, ignored caches, extra files, a moved directory). The .c is
 * included so its static rules can be tested directly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/reload.c"

#include <sys/types.h>

static void test_path_match(void **state)
{
    (void)state;
    assert_true(gp_reload_path_match("/a/b/app.py", "*.py"));
    assert_false(gp_reload_path_match("/a/b/app.pyc", "*.py"));
    assert_false(gp_reload_path_match("/a/b/app.py~", "*.py"));
    assert_true(gp_reload_path_match("/a/b/.app.py.swp", ".*"));
    assert_false(gp_reload_path_match("/a/.git/config", ".*")); /* the last component only */
    assert_true(gp_reload_path_match("/a/b/.swp", ".sw.*") == false);
    assert_true(gp_reload_path_match("/a/b/.swx", ".sw.*") == false);
    assert_true(gp_reload_path_match("/a/b/.sw.x", ".sw.*"));
    assert_true(gp_reload_path_match("/x/sub/a.py", "sub/*.py"));
    assert_false(gp_reload_path_match("/x/other/a.py", "sub/*.py"));
    assert_true(gp_reload_path_match("/x/a.py", "/x/*.py"));
    assert_false(gp_reload_path_match("/y/x/a.py", "/x/*.py")); /* absolute: all of it */
    assert_false(gp_reload_path_match("a.py", "/a.py"));
    assert_false(gp_reload_path_match("b", "a/b")); /* a pattern longer than the path */
    assert_false(gp_reload_path_match("/a/b", ""));
    assert_false(gp_reload_path_match("/a/b", "/"));
    assert_true(gp_reload_path_match("/a//b/c.html", "b/*.html")); /* empty components */
    assert_true(gp_reload_path_match("/a/b/c.html", "b//*.html"));
    assert_true(gp_reload_path_match("/t/x[1].py", "x[[]1].py"));
    assert_true(gp_reload_path_match("/t/a\\b.py", "a\\b.py")); /* no escapes, as Python */
    assert_true(gp_reload_path_match("/t/App.PY", "*.PY"));
    assert_false(gp_reload_path_match("/t/App.PY", "*.py")); /* case matters on POSIX */
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    assert_false(gp_reload_path_match(longname, "*")); /* longer than NAME_MAX */
}

/* A gp_reload with only its filters built, as gp_reload_open builds them. */
static gp_reload *filters(const char *const *inc, int ninc, const char *const *exc, int nexc)
{
    gp_reload_opts o = {
        .includes = inc, .num_includes = ninc, .excludes = exc, .num_excludes = nexc};
    gp_reload *r = calloc(1, sizeof *r);
    char err[128];
    assert_non_null(r);
    r->fd = -1;
    assert_int_equal(build_filters(r, &o, err, sizeof err), 0);
    return r;
}

static void test_uvicorn_filters(void **state)
{
    (void)state;
    gp_reload *r = filters(NULL, 0, NULL, 0);
    assert_true(wanted(r, "/p/app.py"));
    assert_true(wanted(r, "/p/pkg/mod.py"));
    assert_false(wanted(r, "/p/.app.py")); /* a hidden file: ".*" */
    assert_false(wanted(r, "/p/app.txt"));
    assert_false(wanted(r, "/p/templates/x.html"));
    gp_reload_close(r);

    const char *inc[] = {"*.html", "settings.cfg"}, *exc[] = {"test_*.py", "*.cfg"};
    r = filters(inc, 2, exc, 2);
    assert_true(wanted(r, "/p/templates/x.html"));
    assert_true(wanted(r, "/p/app.py"));
    assert_false(wanted(r, "/p/test_app.py"));
    assert_true(wanted(r, "/p/settings.cfg")); /* named literally: wins over "*.cfg" */
    assert_false(wanted(r, "/p/other.cfg"));
    gp_reload_close(r);

    const char *exc_py[] = {"*.py"}, *inc_txt[] = {"*.txt"};
    r = filters(inc_txt, 1, exc_py, 1); /* excluding the default include drops it */
    assert_false(wanted(r, "/p/app.py"));
    assert_true(wanted(r, "/p/notes.txt"));
    gp_reload_close(r);

    const char *inc_dot[] = {".*"};
    r = filters(inc_dot, 1, NULL, 0); /* including a default exclude drops it */
    assert_true(wanted(r, "/p/.env"));
    assert_true(wanted(r, "/p/app.py"));
    gp_reload_close(r);
}

static char tree[64];
static char want_text[PATH_MAX + 32];

static void path_in(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", tree, rel);
}

static void mkdir_in(const char *rel)
{
    char p[256];
    path_in(p, sizeof p, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static void write_in(const char *rel, const char *text)
{
    char p[256];
    path_in(p, sizeof p, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup_tree(void **state)
{
    (void)state;
    snprintf(tree, sizeof tree, "/tmp/gp_test_reload_XXXXXX");
    if (!mkdtemp(tree)) return -1;
    char real[PATH_MAX];
    if (!realpath(tree, real) || strlen(real) >= sizeof tree) return -1;
    memcpy(tree, real, strlen(real) + 1);
    return 0;
}

static int teardown_tree(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tree);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_skipped_directories(void **state)
{
    (void)state;
    mkdir_in("env");
    write_in("env/pyvenv.cfg", "home = /usr/bin\n");
    mkdir_in("code");
    char excl[256];
    path_in(excl, sizeof excl, "data");
    mkdir_in("data");
    const char *exc[] = {excl, "build*"};
    gp_reload *r = filters(NULL, 0, exc, 2);
    char p[256];
    path_in(p, sizeof p, "env");
    assert_true(skip_dir(r, p, "env")); /* a virtual environment */
    path_in(p, sizeof p, "code");
    assert_false(skip_dir(r, p, "code"));
    assert_true(skip_dir(r, "/x/.git", ".git"));
    assert_true(skip_dir(r, "/x/__pycache__", "__pycache__"));
    assert_true(skip_dir(r, "/x/node_modules", "node_modules"));
    assert_true(skip_dir(r, "/x/.cache", ".cache")); /* ".*" */
    assert_true(skip_dir(r, "/x/build-1", "build-1"));
    assert_true(skip_dir(r, excl, "data")); /* an excluded directory */
    assert_true(skip_dir(r, "/proc", "proc"));
    assert_false(skip_dir(r, "/x/proc", "proc"));
    assert_int_equal(r->nskip, 1);
    gp_reload_close(r);
}

static void test_debounce(void **state)
{
    (void)state;
    gp_debounce d = {0};
    assert_true(gp_debounce_check(&d, 1.0, 0.25, 3.0) < 0);
    gp_debounce_note(&d, 1.0);
    gp_debounce_note(&d, 1.1);
    gp_debounce_note(&d, 1.2);
    double w = gp_debounce_check(&d, 1.3, 0.25, 3.0);
    assert_true(w > 0.14 && w < 0.16);
    assert_true(gp_debounce_check(&d, 1.45, 0.25, 3.0) == 0); /* one reload for the burst */
    assert_true(gp_debounce_check(&d, 1.5, 0.25, 3.0) < 0);
    /* a file rewritten every 0.1 s still reloads, at the cap */
    double t = 10.0;
    int fired = 0;
    for (; t < 13.5; t += 0.1) {
        gp_debounce_note(&d, t);
        if (gp_debounce_check(&d, t + 0.05, 0.25, 3.0) == 0) {
            fired++;
            break;
        }
    }
    assert_int_equal(fired, 1);
    assert_true(t >= 12.9 && t <= 13.05);
}

static gp_reload *watch_tree(const char *const *exc, int nexc, const char *const *extra, int nextra)
{
    const char *dirs[] = {tree};
    gp_reload_opts o = {.dirs = dirs,
                        .num_dirs = 1,
                        .excludes = exc,
                        .num_excludes = nexc,
                        .extra_files = extra,
                        .num_extra_files = nextra,
                        .delay = 0.25};
    char err[256] = "";
    gp_reload *r = gp_reload_open(&o, err, sizeof err);
    if (!r) fail_msg("gp_reload_open: %s", err);
    return r;
}

/* Reads events; returns the number of wanted changes and, when one is
 * due, the name it reports. */
static int changes(gp_reload *r, char *what, size_t n)
{
    int c = gp_reload_read(r, 100.0);
    const char *w = NULL;
    what[0] = 0;
    if (gp_reload_due(r, 101.0, &w) == 0 && w) snprintf(what, n, "%s", w);
    return c;
}

static void test_watcher_sees_what_editors_do(void **state)
{
    (void)state;
    mkdir_in("pkg");
    mkdir_in("__pycache__");
    mkdir_in(".git");
    write_in("app.py", "x = 1\n");
    write_in("pkg/mod.py", "y = 1\n");
    gp_reload *r = watch_tree(NULL, 0, NULL, 0);
    assert_int_equal(gp_reload_watched(r), 2); /* the tree and pkg */
    char text[PATH_MAX + 32], small[8];
    gp_reload_describe(r, text, sizeof text);
    snprintf(want_text, sizeof want_text, "%s (2 directories)", tree);
    assert_string_equal(text, want_text);
    gp_reload_describe(r, small, sizeof small); /* truncated, terminated */
    assert_int_equal(strlen(small), sizeof small - 1);
    char what[PATH_MAX], want[PATH_MAX];
    assert_int_equal(changes(r, what, sizeof what), 0);

    write_in("pkg/mod.py", "y = 2\n");
    assert_true(changes(r, what, sizeof what) > 0);
    path_in(want, sizeof want, "pkg/mod.py");
    assert_string_equal(what, want);

    /* an editor's save: write a temp file, rename it over the original */
    write_in(".app.py.swp", "x = 2\n");
    char from[256], to[256];
    path_in(from, sizeof from, ".app.py.swp");
    path_in(to, sizeof to, "app.py");
    assert_true(changes(r, what, sizeof what) == 0); /* the swap file alone is not code */
    assert_int_equal(rename(from, to), 0);
    assert_true(changes(r, what, sizeof what) > 0);
    assert_string_equal(what, to);

    /* caches and text files are not code */
    write_in("__pycache__/app.cpython-311.pyc", "");
    write_in("notes.txt", "hello");
    write_in(".git/x.py", "");
    assert_int_equal(changes(r, what, sizeof what), 0);

    /* a new subdirectory is watched, and code already in it counts */
    mkdir_in("newpkg");
    assert_int_equal(changes(r, what, sizeof what), 0);
    write_in("newpkg/a.py", "");
    assert_true(changes(r, what, sizeof what) > 0);
    mkdir_in("newpkg/deeper");
    changes(r, what, sizeof what);
    write_in("newpkg/deeper/b.py", "");
    assert_true(changes(r, what, sizeof what) > 0);
    path_in(want, sizeof want, "newpkg/deeper/b.py");
    assert_string_equal(what, want);
    int watched = gp_reload_watched(r);

    /* a directory moved in with code inside */
    char outside[300];
    snprintf(outside, sizeof outside, "%s.out", tree);
    assert_int_equal(mkdir(outside, 0755), 0);
    char f[400];
    snprintf(f, sizeof f, "%s/c.py", outside);
    FILE *fp = fopen(f, "w");
    fclose(fp);
    path_in(to, sizeof to, "moved");
    assert_int_equal(rename(outside, to), 0);
    assert_true(changes(r, what, sizeof what) > 0);
    assert_int_equal(gp_reload_watched(r), watched + 1);
    /* ... and away again: its watch goes, and it counts (its code is gone) */
    assert_int_equal(rename(to, outside), 0);
    assert_true(changes(r, what, sizeof what) > 0);
    assert_int_equal(gp_reload_watched(r), watched);
    snprintf(f, sizeof f, "%s/c.py", outside);
    fp = fopen(f, "w");
    fclose(fp);
    assert_int_equal(changes(r, what, sizeof what), 0); /* no longer ours */
    unlink(f);
    rmdir(outside);

    /* deleting code is a change too */
    path_in(f, sizeof f, "pkg/mod.py");
    assert_int_equal(unlink(f), 0);
    assert_true(changes(r, what, sizeof what) > 0);
    gp_reload_close(r);
}

static void test_watcher_excludes_and_extra_files(void **state)
{
    (void)state;
    mkdir_in("tests");
    mkdir_in("src");
    char tests_dir[256], extra[256], outside_extra[300];
    path_in(tests_dir, sizeof tests_dir, "tests");
    path_in(extra, sizeof extra, "src/config.toml");
    snprintf(outside_extra, sizeof outside_extra, "%s.env", tree);
    const char *exc[] = {tests_dir, "*_gen.py"}, *ext[] = {extra, outside_extra};
    gp_reload *r = watch_tree(exc, 2, ext, 2);
    char what[PATH_MAX];
    write_in("tests/test_x.py", "");
    write_in("src/models_gen.py", "");
    write_in("src/other.toml", "");
    assert_int_equal(changes(r, what, sizeof what), 0);
    write_in("src/config.toml", "a = 1\n");
    assert_true(changes(r, what, sizeof what) > 0);
    assert_string_equal(what, extra);
    FILE *f = fopen(outside_extra, "w"); /* outside the tree: its directory is watched */
    fclose(f);
    assert_true(changes(r, what, sizeof what) > 0);
    assert_string_equal(what, outside_extra);
    f = fopen(outside_extra, "w");
    fclose(f);
    unlink(outside_extra);
    gp_reload_close(r);
}

static void test_open_errors(void **state)
{
    (void)state;
    const char *dirs[] = {"/nonexistent/dir"};
    gp_reload_opts o = {.dirs = dirs, .num_dirs = 1, .delay = 0.25};
    char err[256] = "";
    assert_null(gp_reload_open(&o, err, sizeof err));
    assert_non_null(strstr(err, "--reload-dir '/nonexistent/dir'"));
    const char *extra[] = {"/nonexistent/dir/file.py"};
    gp_reload_opts o2 = {.extra_files = extra, .num_extra_files = 1, .delay = 0.25};
    assert_null(gp_reload_open(&o2, err, sizeof err));
    assert_non_null(strstr(err, "--reload-extra-file"));
    write_in("plain", "");
    char p[256];
    path_in(p, sizeof p, "plain");
    const char *notdir[] = {p};
    gp_reload_opts o3 = {.dirs = notdir, .num_dirs = 1};
    assert_null(gp_reload_open(&o3, err, sizeof err));
    assert_non_null(strstr(err, "not a directory"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_match),
        cmocka_unit_test(test_uvicorn_filters),
        cmocka_unit_test_setup_teardown(test_skipped_directories, setup_tree, teardown_tree),
        cmocka_unit_test(test_debounce),
        cmocka_unit_test_setup_teardown(test_watcher_sees_what_editors_do, setup_tree,
                                        teardown_tree),
        cmocka_unit_test_setup_teardown(test_watcher_excludes_and_extra_files, setup_tree,
                                        teardown_tree),
        cmocka_unit_test_setup_teardown(test_open_errors, setup_tree, teardown_tree),
    };
    return cmocka_run_group_tests_name("reload", tests, NULL, NULL);
}
