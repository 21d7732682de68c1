/* Unit tests for core/log: level names, the line format written to fd 2, the
 * level filter, the error log file and its reopening after rotation, and the
 * access log descriptor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

static char dir[64];
static int saved_stderr = -1;

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/gp_test_log_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    fflush(stderr);
    saved_stderr = dup(2);
    return saved_stderr < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    gp_log_setup(GP_LOG_INFO, NULL);
    gp_access_log_setup(NULL);
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_in(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

/* Points fd 2 at a fresh file and returns its path in out. */
static void capture_stderr(char *out, size_t n, const char *name)
{
    path_in(out, n, name);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    dup2(fd, 2);
    close(fd);
}

static size_t slurp(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        buf[0] = 0;
        return 0;
    }
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    return n > 0 ? (size_t)n : 0;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_level_parse(void **state)
{
    assert_int_equal(gp_log_level_parse("debug"), GP_LOG_DEBUG);
    assert_int_equal(gp_log_level_parse("info"), GP_LOG_INFO);
    assert_int_equal(gp_log_level_parse("warning"), GP_LOG_WARNING);
    assert_int_equal(gp_log_level_parse("error"), GP_LOG_ERROR);
    assert_int_equal(gp_log_level_parse("critical"), GP_LOG_CRITICAL);
    assert_int_equal(gp_log_level_parse("DEBUG"), GP_LOG_DEBUG);
    assert_int_equal(gp_log_level_parse("Warning"), GP_LOG_WARNING);
    assert_int_equal(gp_log_level_parse("warn"), -1);
    assert_int_equal(gp_log_level_parse("trace"), GP_LOG_DEBUG);
    assert_int_equal(gp_log_level_parse("TRACE"), GP_LOG_DEBUG);
    assert_int_equal(gp_log_level_parse(""), -1);
    assert_int_equal(gp_log_level_parse("infos"), -1);
    assert_int_equal(gp_log_level_parse("fatal"), -1);
    assert_int_equal(gp_log_level_parse("info "), -1);
}

static void test_line_format(void **state)
{
    char path[128], buf[4096], expect[64];
    capture_stderr(path, sizeof path, "stderr.txt");
    assert_int_equal(gp_log_setup(GP_LOG_INFO, NULL), 0);
    gp_log(GP_LOG_INFO, "hello %s %d", "world", 42);
    slurp(path, buf, sizeof buf);
    assert_int_equal(count_lines(buf), 1);
    snprintf(expect, sizeof expect, "] [%d] [INFO] hello world 42\n", (int)getpid());
    if (!strstr(buf, expect)) fail_msg("line '%s' lacks '%s'", buf, expect);
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^\\[[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} "
                             "[-+][0-9]{4}\\] \\[[0-9]+\\] "
                             "\\[INFO\\] hello world 42\n$",
                             REG_EXTENDED),
                     0);
    if (regexec(&re, buf, 0, NULL, 0) != 0) fail_msg("line '%s' has the wrong shape", buf);
    regfree(&re);
}

static void test_level_names_in_lines(void **state)
{
    char path[128], buf[4096];
    capture_stderr(path, sizeof path, "stderr.txt");
    assert_int_equal(gp_log_setup(GP_LOG_DEBUG, "-"), 0);
    gp_debug("d");
    gp_info("i");
    gp_warn("w");
    gp_error("e");
    gp_log(GP_LOG_CRITICAL, "c");
    slurp(path, buf, sizeof buf);
    assert_int_equal(count_lines(buf), 5);
    assert_non_null(strstr(buf, "[DEBUG] d\n"));
    assert_non_null(strstr(buf, "[INFO] i\n"));
    assert_non_null(strstr(buf, "[WARNING] w\n"));
    assert_non_null(strstr(buf, "[ERROR] e\n"));
    assert_non_null(strstr(buf, "[CRITICAL] c\n"));
}

static void test_level_filter(void **state)
{
    char path[128], buf[4096];
    capture_stderr(path, sizeof path, "stderr.txt");
    assert_int_equal(gp_log_setup(GP_LOG_WARNING, NULL), 0);
    assert_false(gp_log_enabled(GP_LOG_DEBUG));
    assert_false(gp_log_enabled(GP_LOG_INFO));
    assert_true(gp_log_enabled(GP_LOG_WARNING));
    assert_true(gp_log_enabled(GP_LOG_CRITICAL));
    gp_debug("dropped debug");
    gp_info("dropped info");
    gp_warn("kept warning");
    gp_error("kept error");
    slurp(path, buf, sizeof buf);
    assert_int_equal(count_lines(buf), 2);
    assert_null(strstr(buf, "dropped"));
    assert_non_null(strstr(buf, "[WARNING] kept warning\n"));
    assert_non_null(strstr(buf, "[ERROR] kept error\n"));

    assert_int_equal(gp_log_setup(GP_LOG_CRITICAL, NULL), 0);
    gp_error("dropped too");
    gp_log(GP_LOG_CRITICAL, "kept critical");
    slurp(path, buf, sizeof buf);
    assert_int_equal(count_lines(buf), 3);
    assert_null(strstr(buf, "dropped"));
}

/* A message longer than the line buffer is cut, still one line with its newline. */
static void test_long_line_truncated(void **state)
{
    char path[128], buf[8192];
    static char big[5000];
    memset(big, 'x', sizeof big - 1);
    capture_stderr(path, sizeof path, "stderr.txt");
    assert_int_equal(gp_log_setup(GP_LOG_INFO, NULL), 0);
    gp_info("%s", big);
    gp_info("after");
    size_t n = slurp(path, buf, sizeof buf);
    assert_int_equal(count_lines(buf), 2);
    char *nl = strchr(buf, '\n');
    assert_non_null(nl);
    assert_true((size_t)(nl - buf) < 2048);
    assert_true(nl[-1] == 'x');
    assert_true(n > 2000);
    assert_non_null(strstr(nl + 1, "[INFO] after\n"));
}

static void test_error_log_file_and_rotation(void **state)
{
    char path[128], rotated[128], buf[4096];
    path_in(path, sizeof path, "error.log");
    path_in(rotated, sizeof rotated, "error.log.1");
    assert_int_equal(gp_log_setup(GP_LOG_INFO, path), 0);
    /* fd 2 now points at the file: stray stderr output lands there too */
    gp_info("first");
    fprintf(stderr, "stray\n");
    fflush(stderr);
    slurp(path, buf, sizeof buf);
    assert_non_null(strstr(buf, "[INFO] first\n"));
    assert_non_null(strstr(buf, "stray\n"));
    assert_true(fcntl(2, F_GETFL) & O_APPEND);

    /* rotation: rename, write (goes to the old file), reopen, write (new file) */
    assert_int_equal(rename(path, rotated), 0);
    gp_info("second");
    assert_int_equal(gp_log_reopen(), 0);
    gp_info("third");
    slurp(rotated, buf, sizeof buf);
    assert_non_null(strstr(buf, "first"));
    assert_non_null(strstr(buf, "second"));
    assert_null(strstr(buf, "third"));
    slurp(path, buf, sizeof buf);
    assert_int_equal(count_lines(buf), 1);
    assert_non_null(strstr(buf, "[INFO] third\n"));

    /* appends to an existing file rather than truncating it */
    assert_int_equal(gp_log_setup(GP_LOG_INFO, path), 0);
    gp_info("fourth");
    slurp(path, buf, sizeof buf);
    assert_int_equal(count_lines(buf), 2);
    assert_non_null(strstr(buf, "third"));
    assert_non_null(strstr(buf, "fourth"));
}

static void test_reopen_without_file(void **state)
{
    assert_int_equal(gp_log_setup(GP_LOG_INFO, NULL), 0);
    assert_int_equal(gp_log_reopen(), 0);
    assert_int_equal(gp_log_setup(GP_LOG_INFO, "-"), 0);
    assert_int_equal(gp_log_reopen(), 0);
}

static void test_error_log_unwritable(void **state)
{
    char path[160];
    path_in(path, sizeof path, "missing/dir/error.log");
    int r = gp_log_setup(GP_LOG_INFO, path);
    assert_true(r < 0);
}

static void test_access_log_setup(void **state)
{
    char path[128], rotated[128], buf[256];
    assert_int_equal(gp_access_log_setup(NULL), 0);
    assert_int_equal(gp_access_log_fd(), -1);
    assert_int_equal(gp_access_log_reopen(), 0); /* nothing to reopen */
    assert_int_equal(gp_access_log_setup("-"), 0);
    assert_int_equal(gp_access_log_fd(), 1);
    assert_int_equal(gp_access_log_setup(NULL), 0);
    assert_int_equal(gp_access_log_fd(), -1);

    path_in(path, sizeof path, "access.log");
    assert_int_equal(gp_access_log_setup(path), 0);
    int fd = gp_access_log_fd();
    assert_true(fd > 2);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(fd, F_GETFL) & O_APPEND);
    assert_int_equal(write(fd, "one\n", 4), 4);

    /* rotation keeps the same descriptor number, pointed at the new file */
    path_in(rotated, sizeof rotated, "access.log.1");
    assert_int_equal(rename(path, rotated), 0);
    assert_int_equal(gp_access_log_reopen(), 0);
    assert_int_equal(gp_access_log_fd(), fd);
    assert_int_equal(write(fd, "two\n", 4), 4);
    slurp(rotated, buf, sizeof buf);
    assert_string_equal(buf, "one\n");
    slurp(path, buf, sizeof buf);
    assert_string_equal(buf, "two\n");
    close(fd);
}

static void test_access_log_bad_path(void **state)
{
    char path[160];
    assert_int_equal(gp_access_log_setup(NULL), 0);
    path_in(path, sizeof path, "no/such/access.log");
    assert_true(gp_access_log_setup(path) < 0);
    assert_int_equal(gp_access_log_fd(), -1);
}

/* BUG: src/core/log.c gp_access_log_setup(NULL) and gp_access_log_setup("-")
 * set access_fd but leave access_path from an earlier file setup in place, so
 * the next gp_access_log_reopen() (the master's SIGUSR1) reopens the old file
 * and, for "-", dup2()s it over fd 1: stdout silently becomes the old access
 * log. Expected: switching to "-" or off forgets the path (reopen is a no-op
 * and fd 1 stays stdout). Only reachable when setup runs more than once per
 * process. Guards the fix. */
static void test_access_log_switch_to_stdout(void **state)
{
    char path[128];
    path_in(path, sizeof path, "old-access.log");
    assert_int_equal(gp_access_log_setup(path), 0);
    int fd = gp_access_log_fd();
    assert_int_equal(gp_access_log_setup("-"), 0);
    close(fd);
    struct stat before, after;
    assert_int_equal(fstat(1, &before), 0);
    assert_int_equal(gp_access_log_reopen(), 0);
    assert_int_equal(fstat(1, &after), 0);
    assert_int_equal(gp_access_log_fd(), 1);
    assert_true(before.st_ino == after.st_ino && before.st_dev == after.st_dev);
}

/* Access-log fields: quotes and backslashes get a backslash, other bytes
 * outside printable ASCII become \xhh, and an escape is never cut in half. */
static void test_escape(void **state)
{
    char out[64];
    assert_int_equal(gp_log_escape(out, sizeof out, "a\"b\\c", 5), 7);
    assert_string_equal(out, "a\\\"b\\\\c");
    assert_int_equal(gp_log_escape(out, sizeof out, "x\xff\x01\n\x7f", 5), 17);
    assert_string_equal(out, "x\\xff\\x01\\x0a\\x7f");
    assert_int_equal(gp_log_escape(out, 4, "ab\xff", 3), 2); /* \xff would not fit */
    assert_string_equal(out, "ab");
    assert_int_equal(gp_log_escape(out, 1, "abc", 3), 0);
    assert_string_equal(out, "");
}

/* JSON strings: escapes, UTF-8 kept, invalid bytes as \u00XX, never cut
 * in the middle of an escape or a character. */
static void test_json_escape(void **state)
{
    char out[128];
    size_t n;
#define J(s) (n = gp_json_escape(out, sizeof out, s, sizeof(s) - 1), out[n] = 0, out)
    assert_string_equal(J("plain text"), "plain text");
    assert_string_equal(J("q\"b\\"), "q\\\"b\\\\");
    assert_string_equal(J("a\nb\r\t\b\f"), "a\\nb\\r\\t\\b\\f");
    assert_string_equal(J("\x01\x1f\x7f"), "\\u0001\\u001f\\u007f");
    assert_string_equal(J("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    assert_string_equal(J("\xff\xfe"), "\\u00ff\\u00fe");
    assert_string_equal(J("\xc3"), "\\u00c3");                       /* truncated sequence */
    assert_string_equal(J("\xc0\xaf"), "\\u00c0\\u00af");            /* overlong '/' */
    assert_string_equal(J("\xed\xa0\x80"), "\\u00ed\\u00a0\\u0080"); /* a surrogate */
    assert_string_equal(J("\xf4\x90\x80\x80"), "\\u00f4\\u0090\\u0080\\u0080"); /* > U+10FFFF */
    assert_string_equal(J("\xe2\x82"), "\\u00e2\\u0082");
#undef J
    memset(out, 'X', sizeof out);
    assert_int_equal(gp_json_escape(out, 3, "ab\"", 3), 2); /* \" would not fit */
    assert_int_equal(gp_json_escape(out, 4, "a\xe2\x82\xac", 4), 4);
    assert_int_equal(gp_json_escape(out, 3, "a\xe2\x82\xac", 4), 1); /* nor half the euro */
    assert_int_equal(gp_json_escape(out, 5, "\xff", 1), 0);
}

/* --log-format json: one object a line, the block of a traceback in one. */
static void test_json_lines(void **state)
{
    char path[128], buf[8192], expect[64];
    capture_stderr(path, sizeof path, "stderr.txt");
    assert_int_equal(gp_log_setup(GP_LOG_INFO, NULL), 0);
    assert_int_equal(gp_log_format_parse("json"), GP_LOG_JSON);
    assert_int_equal(gp_log_format_parse("text"), GP_LOG_TEXT);
    assert_int_equal(gp_log_format_parse("JSON5"), -1);
    gp_log_set_format(GP_LOG_JSON);
    assert_true(gp_log_json());
    gp_warn("say \"%s\"", "hi");
    gp_log_lines(GP_LOG_ERROR, "Traceback:\n  line 1\nValueError: x\n", 34);
    gp_debug("filtered");
    gp_log_set_format(GP_LOG_TEXT);
    slurp(path, buf, sizeof buf);
    assert_int_equal(count_lines(buf), 2);
    snprintf(expect, sizeof expect, "\",\"level\":\"WARNING\",\"pid\":%d,", (int)getpid());
    if (!strstr(buf, expect)) fail_msg("'%s' lacks '%s'", buf, expect);
    assert_non_null(strstr(buf, "\"logger\":\"error\",\"message\":\"say \\\"hi\\\"\"}\n"));
    assert_non_null(strstr(buf, "\"message\":\"Traceback:\\n  line 1\\nValueError: x\"}\n"));
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^\\{\"time\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                             "\\.[0-9]{3}[-+][0-9]{2}:[0-9]{2}\",\"level\":\"WARNING\"",
                             REG_EXTENDED),
                     0);
    if (regexec(&re, buf, 0, NULL, 0) != 0) fail_msg("line '%s' has the wrong shape", buf);
    regfree(&re);
}

/* In text, a block is a line each, every one with the prefix. */
static void test_lines_in_text(void **state)
{
    char path[128], buf[4096];
    capture_stderr(path, sizeof path, "stderr.txt");
    assert_int_equal(gp_log_setup(GP_LOG_INFO, NULL), 0);
    gp_log_lines(GP_LOG_ERROR, "one\ntwo\n\nthree\n", 15);
    slurp(path, buf, sizeof buf);
    assert_int_equal(count_lines(buf), 4);
    assert_non_null(strstr(buf, "[ERROR] one\n"));
    assert_non_null(strstr(buf, "[ERROR] two\n"));
    assert_non_null(strstr(buf, "[ERROR] \n"));
    assert_non_null(strstr(buf, "[ERROR] three\n"));
}

/* A JSON record longer than the stack buffer is whole and valid. */
static void test_json_long_block(void **state)
{
    char path[128];
    static char big[40000], buf[300000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = i % 50 == 49 ? '\n' : "\"x\\"[i % 3];
    capture_stderr(path, sizeof path, "stderr.txt");
    assert_int_equal(gp_log_setup(GP_LOG_INFO, NULL), 0);
    gp_log_set_format(GP_LOG_JSON);
    gp_log_lines(GP_LOG_ERROR, big, sizeof big);
    gp_log_set_format(GP_LOG_TEXT);
    size_t n = slurp(path, buf, sizeof buf);
    assert_int_equal(count_lines(buf), 1);
    assert_true(n > sizeof big);
    assert_memory_equal(buf + n - 3, "\"}\n", 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test_setup_teardown(test_json_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lines_in_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_long_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_names_in_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_log_file_and_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_without_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_log_unwritable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_log_setup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_log_bad_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_log_switch_to_stdout, setup, teardown),
    };

    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
