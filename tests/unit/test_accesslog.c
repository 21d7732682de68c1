/* Unit tests for core/accesslog: compiling formats (atoms, literals, bad
 * ones), what a request leaves in its record, the text line (gunicorn's
 * default byte for byte), the JSON object, and cutting values that do not
 * fit without breaking the line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/accesslog.h"
#include "core/log.h"

static gp_alog_format fmt;
static char err[200];

static int compile(const char *f)
{
    err[0] = 0;
    return gp_alog_compile(&fmt, f, err, sizeof err);
}

static void test_compile_atoms(void **state)
{
    assert_int_equal(compile(GP_ALOG_DEFAULT_FORMAT), 0);
    /* h l u t, "r", s b, "f", "a": 9 atoms and the literals between them */
    int atoms = 0;
    for (int i = 0; i < fmt.num_pieces; i++) atoms += fmt.pieces[i].atom != GP_AL_LIT;
    assert_int_equal(atoms, 9);
    assert_int_equal(fmt.num_pieces, 9 + 9); /* the closing quote too */
    assert_int_equal(compile("%(h)s %(l)s %(u)s %(t)s %(r)s %(s)s %(m)s %(U)s %(q)s %(H)s %(b)s "
                             "%(B)s %(f)s %(a)s %(T)s %(D)s %(M)s %(L)s %(p)s %(s)d %(D)d"),
                     0);
    assert_int_equal(compile("%({X-Request-Id}i)s %({x-request-id}i)s %({Content-Type}o)s"), 0);
    assert_int_equal(fmt.num_in, 1); /* one slot for both spellings */
    assert_int_equal(fmt.num_out, 1);
    assert_memory_equal(fmt.text + fmt.in[0].off, "x-request-id", 12);
    assert_memory_equal(fmt.text + fmt.out[0].off, "content-type", 12);
    /* %% is a '%', literals merge */
    assert_int_equal(compile("100%% done"), 0);
    assert_int_equal(fmt.num_pieces, 1);
    assert_memory_equal(fmt.text, "100% done", 9);
    assert_int_equal(compile(""), 0);
    assert_int_equal(fmt.num_pieces, 0);
}

static void test_compile_errors(void **state)
{
    assert_int_equal(compile("%(x)s"), -1);
    assert_non_null(strstr(err, "unknown atom '%(x)s'"));
    assert_int_equal(compile("%(h)s %(hh)s"), -1);
    assert_non_null(strstr(err, "'%(hh)s'"));
    assert_int_equal(compile("%s"), -1);
    assert_non_null(strstr(err, "'%s'"));
    assert_int_equal(compile("50%"), -1);
    assert_int_equal(compile("%(h"), -1);
    assert_non_null(strstr(err, "unclosed"));
    assert_int_equal(compile("%(h)x"), -1);
    assert_int_equal(compile("%(h)"), -1);
    assert_int_equal(compile("%(h)d"), -1); /* not a number */
    assert_non_null(strstr(err, "not a number"));
    assert_int_equal(compile("%({}i)s"), -1);
    assert_int_equal(compile("%({REMOTE_ADDR}e)s"), -1);
    assert_non_null(strstr(err, "environ"));
    char many[1024] = "";
    for (int i = 0; i < 65; i++) strcat(many, "%(s)s");
    assert_int_equal(compile(many), -1);
    assert_non_null(strstr(err, "too many"));
    char hdrs[1024] = "";
    for (int i = 0; i < 17; i++) sprintf(hdrs + strlen(hdrs), "%%({h%d}i)s", i);
    assert_int_equal(compile(hdrs), -1);
    char longtext[2000];
    memset(longtext, 'a', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = 0;
    assert_int_equal(compile(longtext), -1);
    assert_non_null(strstr(err, "too long"));
}

static gp_http_header headers[8];
static gp_http_request req;
static char head[] = "GET /a%20b?x=1 HTTP/1.1";

static void make_request(int num_headers)
{
    memset(&req, 0, sizeof req);
    req.method = head;
    req.method_len = 3;
    req.target = head + 4;
    req.target_len = 10;
    req.path = head + 4;
    req.path_len = 6;
    req.query = head + 11;
    req.query_len = 3;
    req.version_minor = 1;
    req.headers = headers;
    req.num_headers = (size_t)num_headers;
}

static void set_header(int i, const char *name, const char *value)
{
    headers[i] = (gp_http_header){name, strlen(name), value, strlen(value)};
}

static gp_alog_rec *record(void)
{
    gp_alog_rec *r = calloc(1, gp_alog_rec_size(&fmt));
    gp_alog_capture(r, &fmt, &req);
    return r;
}

static gp_alog_values values(void)
{
    return (gp_alog_values){.host = "10.0.0.1",
                            .status = 200,
                            .bytes = 5,
                            .duration_us = 1234567,
                            .pid = 42,
                            .clf_time = "02/Dec/2026:01:12:13 +0000",
                            .iso_time = "2026-12-02T01:12:13.123+00:00"};
}

static char line[GP_ALOG_LINE_MAX + 1];

static const char *render(const gp_alog_rec *r, bool json)
{
    gp_alog_values v = values();
    size_t n = gp_alog_render(&fmt, r, &v, json, line);
    assert_true(n > 0 && n <= GP_ALOG_LINE_MAX);
    assert_int_equal(line[n - 1], '\n');
    line[n] = 0;
    return line;
}

static void test_default_line(void **state)
{
    assert_int_equal(compile(GP_ALOG_DEFAULT_FORMAT), 0);
    make_request(3);
    set_header(0, "Authorization", "Basic Ym9iOnNlY3JldA==");
    set_header(1, "User-Agent", "a\"b\xff");
    set_header(2, "Host", "x");
    gp_alog_rec *r = record();
    assert_string_equal(render(r, false),
                        "10.0.0.1 - bob [02/Dec/2026:01:12:13 +0000] "
                        "\"GET /a%20b?x=1 HTTP/1.1\" 200 5 \"-\" \"a\\\"b\\xff\"\n");
    /* a request never dispatched (a bad head): dashes */
    assert_string_equal(render(NULL, false),
                        "10.0.0.1 - - [02/Dec/2026:01:12:13 +0000] \"-\" 200 5 \"-\" \"-\"\n");
    free(r);
}

static void test_every_atom(void **state)
{
    assert_int_equal(compile("%(m)s|%(U)s|%(q)s|%(H)s|%(B)s|%(T)s|%(D)s|%(M)s|%(L)s|%(p)s|"
                             "%({x-id}i)s|%({X-Out}o)s|%({none}i)s|%(l)s|%(s)d"),
                     0);
    make_request(2);
    set_header(0, "X-ID", "first");
    set_header(1, "x-id", "last\"");
    gp_alog_rec *r = record();
    gp_alog_capture_response(r, &fmt, "x-out", 5, "o1", 2);
    gp_alog_capture_response(r, &fmt, "Other", 5, "no", 2);
    assert_string_equal(render(r, false), "GET|/a b|x=1|HTTP/1.1|5|1|1234567|1234|1.234567|<42>|"
                                          "last\\\"|o1|-|-|200\n");
    gp_alog_forget_response(r, &fmt);
    assert_non_null(strstr(render(r, false), "|last\\\"|-|-|"));
    /* no query: an empty %(q)s, as gunicorn's QUERY_STRING */
    req.query = NULL;
    free(r);
    r = record();
    assert_non_null(strstr(render(r, false), "|/a b||HTTP/1.1|"));
    free(r);
}

static void test_json_line(void **state)
{
    assert_int_equal(compile("%(h)s \"%(r)s\" %(s)s %(b)s %(B)s %(D)s %(L)s %(u)s "
                             "%({x-id}i)s %({x-out}o)s %(t)s %(p)s %(l)s"),
                     0);
    make_request(1);
    set_header(0, "X-Id", "caf\xc3\xa9\xff\"\t");
    gp_alog_rec *r = record();
    const char *j = render(r, true);
    assert_non_null(strstr(j, "{\"time\":\"2026-12-02T01:12:13.123+00:00\",\"level\":\"INFO\","
                              "\"pid\":42,\"logger\":\"access\",\"message\":\"10.0.0.1 \\\"GET "));
    assert_non_null(strstr(j, ",\"remote_addr\":\"10.0.0.1\",\"request\":\"GET /a%20b?x=1 "
                              "HTTP/1.1\",\"status\":200,\"bytes\":5,\"duration_us\":1234567,"
                              "\"duration\":1.234567,\"user\":\"-\","
                              "\"request_headers\":{\"x-id\":\"caf\xc3\xa9\\u00ff\\\"\\t\"},"
                              "\"response_headers\":{\"x-out\":null}}\n"));
    free(r);
}

/* Values as long as can be, 64 of them: the line is cut, its end kept. */
static void test_long_values_keep_the_line_whole(void **state)
{
    char f[1024] = "";
    for (int i = 0; i < 16; i++) sprintf(f + strlen(f), "%%({h%d}i)s", i);
    for (int i = 0; i < 16; i++) sprintf(f + strlen(f), "%%({o%d}o)s", i);
    for (int i = 0; i < 32; i++) strcat(f, "%(a)s");
    assert_int_equal(compile(f), 0);
    static char nasty[4000];
    for (size_t i = 0; i < sizeof nasty - 1; i++) nasty[i] = i % 2 ? '\x01' : '\xff';
    make_request(0);
    static char names[16][16];
    static gp_http_header many[17];
    req.headers = many;
    for (int i = 0; i < 16; i++) {
        sprintf(names[i], "h%d", i);
        many[i] = (gp_http_header){names[i], strlen(names[i]), nasty, sizeof nasty - 1};
    }
    many[16] = (gp_http_header){"User-Agent", 10, nasty, sizeof nasty - 1};
    req.num_headers = 17;
    gp_alog_rec *r = record();
    for (int i = 0; i < 16; i++) {
        char o[16];
        sprintf(o, "o%d", i);
        gp_alog_capture_response(r, &fmt, o, strlen(o), nasty, sizeof nasty - 1);
    }
    const char *t = render(r, false);
    assert_int_equal(strchr(t, '\n') - t + 1, (long)strlen(t)); /* one line */
    const char *j = render(r, true);
    size_t n = strlen(j);
    assert_true(n > 20000);
    assert_memory_equal(j + n - 2, "}\n", 2);
    /* a string never ends on a lone backslash or half an escape */
    int quotes = 0;
    for (size_t i = 0; i < n; i++) {
        if (j[i] == '\\') i++;
        else if (j[i] == '"') quotes++;
    }
    assert_int_equal(quotes % 2, 0);
    free(r);
}

static void test_basic_user(void **state)
{
    char out[64];
#define USER(v) gp_alog_basic_user(out, sizeof out, v, strlen(v))
    assert_int_equal(USER("Basic Ym9iOnNlY3JldA=="), 3); /* bob:secret */
    assert_memory_equal(out, "bob", 3);
    assert_int_equal(USER("basic   Ym9iOg=="), 3); /* bob: */
    assert_int_equal(USER("Basic ImE6Yg=="), 2);   /* "a:b, raw: escaping is the writer's */
    assert_memory_equal(out, "\"a", 2);
    assert_int_equal(USER("Basic Ym9i"), 0); /* bob, no colon */
    assert_int_equal(USER("Basic Og=="), 0); /* ":" empty user */
    assert_int_equal(USER("Basic !!!"), 0);
    assert_int_equal(USER("Bearer Ym9iOnB3"), 0);
    assert_int_equal(USER("Basic"), 0);
#undef USER
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile_atoms),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_default_line),
        cmocka_unit_test(test_every_atom),
        cmocka_unit_test(test_json_line),
        cmocka_unit_test(test_long_values_keep_the_line_whole),
        cmocka_unit_test(test_basic_user),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
