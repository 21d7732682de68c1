/* numfmt: unsigned numbers written into a caller's buffer, without printf,
 * for the response heads built on the request path (conn, static). */
#ifndef GP_NUMFMT_H
#define GP_NUMFMT_H

#include <stddef.h>
#include <stdint.h>

/* Writes v in base 10 or 16 (lowercase) at dst, no terminator; returns the
 * length (at most 20). */
static inline size_t gp_put_u64(char *dst, uint64_t v, unsigned base)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[20];
    size_t k = 0;
    do tmp[k++] = digits[v % base];
    while ((v /= base));
    for (size_t i = 0; i < k; i++) dst[i] = tmp[k - 1 - i];
    return k;
}

#endif
