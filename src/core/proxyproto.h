/* proxyproto: the PROXY protocol header (HAProxy's, versions 1 and 2) that a
 * load balancer sends before the first request, saying who its client is.
 *
 * A pure parser over caller-owned bytes, like the HTTP one: no allocation, no
 * I/O. Strict: the first bytes must be a v1 or v2 signature, a v1 line is at
 * most 107 bytes with single spaces, addresses of the family it names and
 * ports 0..65535; a v2 header is at most GP_PP_MAX bytes with a known command
 * and family. It resumes where the last call stopped. */
#ifndef GP_PROXYPROTO_H
#define GP_PROXYPROTO_H

#include <stddef.h>
#include <sys/socket.h>

#define GP_PP_V1_MAX 107 /* the whole v1 line with its CRLF (spec 2.1) */
#define GP_PP_MAX 4096   /* a v2 header with its TLVs: more is refused */

typedef struct {
    size_t scanned; /* bytes of a v1 line already searched for its LF */
} gp_pp_state;

typedef struct {
    /* the client's address; family AF_UNSPEC when the header gives none
     * (v1 UNKNOWN, v2 LOCAL such as a health check, v2 UNSPEC or UNIX):
     * the connection's own peer then stands */
    struct sockaddr_storage src;
    socklen_t src_len;
} gp_pp_result;

/* Parses the header at buf[0..len), resuming from *st (zeroed before the
 * first call). Returns its length (> 0) once complete, 0 when more bytes are
 * needed and none seen so far is wrong, -1 when it is not a valid header. */
int gp_pp_parse(gp_pp_state *st, const char *buf, size_t len, gp_pp_result *out);

#endif
