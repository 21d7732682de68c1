/* libFuzzer driver for core/proxyproto and core/forwarded: the PROXY header
 * parser must stay inside its input and give the same answer fed a byte at
 * a time as whole (never complete before its last byte); the proxy-header
 * reader must stay inside the header values and return text that fits. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/forwarded.h"
#include "core/proxyproto.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int parse_copy(gp_pp_state *st, const uint8_t *src, size_t len, gp_pp_result *out)
{
    char *b = malloc(len ? len : 1);
    memcpy(b, src, len);
    int r = gp_pp_parse(st, b, len, out);
    free(b);
    return r;
}

/* The input split at NULs into header values, each under a proxy header name. */
static void forwarded(const uint8_t *data, size_t size)
{
    static const char *names[] = {"X-Forwarded-For",  "X-Forwarded-Proto",  "X-Forwarded-Host",
                                  "X-Forwarded-Port", "X-Forwarded-Prefix", "Forwarded"};
    char *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    gp_http_header h[16];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= size && n < 16; i++) {
        if (i < size && copy[i]) continue;
        h[n].name = names[(start + n) % 6];
        h[n].name_len = strlen(h[n].name);
        h[n].value = copy + start;
        h[n].value_len = i - start;
        n++;
        start = i + 1;
    }
    gp_fwd_trust t;
    char err[200];
    gp_fwd_trust_parse(&t, "127.0.0.1,10.0.0.0/8,::1", err, sizeof err);
    gp_fwd f;
    if (gp_fwd_resolve(&t, h, n, "host.example:81", 15, &f)) {
        if (f.set & GP_FWD_FOR) CHECK(memchr(f.client, 0, sizeof f.client));
        if (f.set & GP_FWD_HOST) CHECK(f.host_len > 0 && f.host_len < GP_FWD_HOST_MAX);
        if (f.set & GP_FWD_PORT) CHECK(f.port >= 1 && f.port <= 65535);
        if (f.set & GP_FWD_PREFIX)
            CHECK(f.prefix >= copy && f.prefix + f.prefix_len <= copy + size);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gp_pp_state st = {0};
    gp_pp_result whole, part;
    int r = parse_copy(&st, data, size, &whole);
    CHECK(r >= -1 && (r <= 0 || (size_t)r <= size));
    CHECK(r <= GP_PP_MAX);
    gp_pp_state inc = {0};
    int last = 0;
    for (size_t k = 1; k <= size && last == 0; k++) {
        last = parse_copy(&inc, data, k, &part);
        if (last > 0) CHECK((size_t)last == k);
    }
    CHECK(last == r);
    if (r > 0) {
        CHECK(part.src_len == whole.src_len);
        CHECK(memcmp(&part.src, &whole.src, whole.src_len) == 0);
    }
    forwarded(data, size);
    return 0;
}
