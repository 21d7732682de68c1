/* h2_proto: HTTP/2's ways in from HTTP/1.1, as a table the worker hands to
 * h1.c (env->h2, worker_env.h), so that h1.c never calls this module by name. */
#ifndef GP_H2_PROTO_H
#define GP_H2_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "core/conn.h"

typedef struct gp_h2_entry {
    /* HTTP/1.1's look at a connection's first bytes (a preface?): 1 when
     * HTTP/2 took the stream, or needs more bytes to tell; 0 when they are
     * HTTP/1.1's; a negative HTTP status to answer (--http 2 refuses
     * HTTP/1.1 with 505). */
    int (*preface)(gp_conn *c);
    /* An "Upgrade: h2c" request (head_len bytes of head): true when HTTP/2
     * took the stream (101 sent, the request answered as stream 1). */
    bool (*upgrade)(gp_conn *c, const gp_http_request *req, size_t head_len);
    /* A TLS handshake chose "h2" by ALPN (TLS offers it only when env->h2 is
     * set: not with --http 1 or --threads): HTTP/2 takes the stream before
     * any byte. GP_OK, or GP_ERROR (close). */
    int (*alpn)(gp_conn *c);
} gp_h2_entry;

extern const gp_h2_entry gp_h2_entry_points;

#endif
