/* Unit tests for core/mime: a mime.types file over the built-in table, the
 * first entry for an extension winning, case-insensitive extensions, the
 * UTF-8 charset on text types only, the octet-stream default, a missing file,
 * and Debian's own /etc/mime.types for the types a web site needs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mime.h"

static const char *type_of(const gp_mime *m, const char *name)
{
    size_t n;
    const char *t = gp_mime_type(m, name, strlen(name), &n);
    assert_int_equal(n, strlen(t));
    return t;
}

static void test_file_entries(void **state)
{
    char path[] = "/tmp/gp_test_mime_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("# comment line\n"
          "application/x-first\tdup  other\n"
          "application/x-second\t\tdup\n"
          "text/x-custom  cst # trailing comment\n"
          "image/png  png\n"
          "text/css\n"       /* no extension: nothing */
          "notatype  nope\n" /* no '/': not a type line */
          "application/vnd.api+json  apijson\n"
          "image/svg+xml  svg\n",
          f);
    fclose(f);
    gp_mime *m = gp_mime_load(path);
    unlink(path);
    assert_non_null(m);
    assert_string_equal(type_of(m, "a/b/x.dup"), "application/x-first");
    assert_string_equal(type_of(m, "x.other"), "application/x-first");
    assert_string_equal(type_of(m, "x.cst"), "text/x-custom; charset=utf-8");
    assert_string_equal(type_of(m, "x.apijson"), "application/vnd.api+json; charset=utf-8");
    assert_string_equal(type_of(m, "x.svg"), "image/svg+xml; charset=utf-8");
    assert_string_equal(type_of(m, "X.PNG"), "image/png");
    assert_string_equal(type_of(m, "x.nope"), "application/octet-stream");
    /* built-ins fill what the file lacks */
    assert_string_equal(type_of(m, "app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(type_of(m, "font.woff2"), "font/woff2");
    gp_mime_free(m);
}

static void test_defaults_and_odd_names(void **state)
{
    gp_mime *m = gp_mime_load("/nonexistent/mime.types");
    assert_non_null(m);
    assert_string_equal(type_of(m, "index.html"), "text/html; charset=utf-8");
    assert_string_equal(type_of(m, "data.json"), "application/json; charset=utf-8");
    assert_string_equal(type_of(m, "logo.png"), "image/png");
    assert_string_equal(type_of(m, "README"), "application/octet-stream");
    assert_string_equal(type_of(m, "archive.tar.unknownext"), "application/octet-stream");
    assert_string_equal(type_of(m, "dir.css/file"), "application/octet-stream");
    assert_string_equal(type_of(m, "trailingdot."), "application/octet-stream");
    assert_string_equal(type_of(m, ""), "application/octet-stream");
    /* an extension longer than any we store */
    assert_string_equal(type_of(m, "x.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
                        "application/octet-stream");
    gp_mime_free(m);
    gp_mime_free(NULL);
}

static void test_debian_file(void **state)
{
    gp_mime *m = gp_mime_load("/etc/mime.types");
    assert_non_null(m);
    assert_string_equal(type_of(m, "base.css"), "text/css; charset=utf-8");
    assert_string_equal(type_of(m, "app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(type_of(m, "x.woff2"), "font/woff2");
    assert_string_equal(type_of(m, "x.wasm"), "application/wasm");
    assert_string_equal(type_of(m, "x.jpg"), "image/jpeg");
    assert_string_equal(type_of(m, "x.gz"), "application/gzip");
    assert_string_equal(type_of(m, "x.bin"), "application/octet-stream");
    gp_mime_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_entries),
        cmocka_unit_test(test_defaults_and_odd_names),
        cmocka_unit_test(test_debian_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
