/* libFuzzer driver for core/accesslog and the JSON escaper of core/log: the
 * input's first line is a format, the rest header values. A format compiles
 * or is refused with a reason; a line, text or JSON, stays inside
 * GP_ALOG_LINE_MAX, ends with its newline, and a JSON one is balanced: its
 * strings close, no byte below 0x20 is left raw, and it ends in "}\n". */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/accesslog.h"
#include "core/log.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static gp_alog_format fmt;
static char line[GP_ALOG_LINE_MAX];

static void check_json(const char *j, size_t n)
{
    CHECK(n >= 3 && j[0] == '{' && j[n - 2] == '}' && j[n - 1] == '\n');
    bool in = false;
    for (size_t i = 0; i < n - 1; i++) {
        unsigned char ch = (unsigned char)j[i];
        CHECK(ch >= 0x20);
        if (in && ch == '\\') {
            CHECK(i + 1 < n - 1);
            i++;
        } else if (ch == '"') {
            in = !in;
        }
    }
    CHECK(!in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    size_t flen = nl ? (size_t)(nl - (const char *)data) : size;
    char *f = malloc(flen + 1);
    memcpy(f, data, flen);
    f[flen] = 0;
    char err[200] = "";
    int r = gp_alog_compile(&fmt, f, err, sizeof err);
    free(f);
    if (r < 0) {
        CHECK(err[0]);
        return 0;
    }
    /* the rest: values for every header slot, and the request's line */
    const char *v = nl ? nl + 1 : "";
    size_t vlen = nl ? size - flen - 1 : 0;
    gp_http_header hs[GP_ALOG_MAX_HEADERS + 2];
    gp_http_request req;
    memset(&req, 0, sizeof req);
    char reqline[] = "GET /%zz%41?q HTTP/1.1";
    req.method = reqline;
    req.method_len = 3;
    req.target = reqline + 4;
    req.target_len = 9;
    req.path = reqline + 4;
    req.path_len = 6;
    req.version_minor = 1;
    int nh = 0;
    for (int k = 0; k < fmt.num_in; k++)
        hs[nh++] = (gp_http_header){fmt.text + fmt.in[k].off, fmt.in[k].len, v, vlen};
    hs[nh++] = (gp_http_header){"User-Agent", 10, v, vlen};
    hs[nh++] = (gp_http_header){"Authorization", 13, v, vlen};
    req.headers = hs;
    req.num_headers = (size_t)nh;
    gp_alog_rec *rec = calloc(1, gp_alog_rec_size(&fmt));
    gp_alog_capture(rec, &fmt, &req);
    for (int k = 0; k < fmt.num_out; k++)
        gp_alog_capture_response(rec, &fmt, fmt.text + fmt.out[k].off, fmt.out[k].len, v, vlen);
    gp_alog_values vals = {.host = "::1", .status = 200, .bytes = vlen, .duration_us = vlen * 997,
                           .pid = 1, .clf_time = "02/Dec/2026:01:12:13 +0000",
                           .iso_time = "2026-12-02T01:12:13.123+00:00"};
    size_t n = gp_alog_render(&fmt, rec, &vals, false, line);
    CHECK(n >= 1 && n <= sizeof line && line[n - 1] == '\n');
    CHECK(memchr(line, '\n', n - 1) == NULL); /* one line, whatever the values */
    n = gp_alog_render(&fmt, rec, &vals, true, line);
    CHECK(n <= sizeof line);
    check_json(line, n);
    free(rec);
    /* the escaper alone, at every cap up to the value's worst case */
    char out[64];
    size_t cap = vlen % (sizeof out + 1);
    size_t m = gp_json_escape(out, cap, v, vlen);
    CHECK(m <= cap);
    return 0;
}
