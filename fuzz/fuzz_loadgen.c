/* libFuzzer driver for core/loadgen's response-head reader: it stays inside
 * its input (an exact-size copy), a complete head ends in CRLF CRLF at the
 * length it returns with a status of 100 to 999, the same bytes with more
 * after them give the same answer, and no prefix of a head is complete. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/loadgen.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int parse_copy(const uint8_t *src, size_t len, gp_lg_head *h)
{
    char *b = malloc(len ? len : 1);
    memcpy(b, src, len);
    int r = gp_lg_parse_head(b, len, h);
    free(b);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gp_lg_head h, again;
    int r = parse_copy(data, size, &h);
    CHECK(r >= -1 && r <= (int)size);
    if (r <= 0) return 0;
    CHECK(r >= 16 && !memcmp(data + r - 4, "\r\n\r\n", 4));
    CHECK(h.status >= 100 && h.status <= 999 && (h.minor == 0 || h.minor == 1));
    CHECK(!(h.chunked && h.has_length));
    CHECK(parse_copy(data, (size_t)r, &again) == r);
    CHECK(again.status == h.status && again.length == h.length && again.close == h.close &&
          again.chunked == h.chunked);
    CHECK(parse_copy(data, (size_t)r - 1, &again) <= 0);
    return 0;
}
