/* h2_conn: HTTP/2 on a stream (stream.h): moves the stream's bytes through
 * an h2 session (h2.h) and back, keeps its deadline (idle, stalled windows,
 * the graceful stop) and says when the connection is over.
 *
 * The owner (the stream layer's protocol table, proto.h) calls these from
 * its on_event, on_timeout, on_stop and on_close; the streams' requests go
 * to the gp_h2_ops it passes. After any call into a gp_h2_stream from the
 * app side (a write, an end, a body read), the owner calls gp_h2_conn_pump
 * so that the frames go out, at once or (gp_h2_conn_busy) once the event
 * that runs those apps is over. Never knows Python, never blocks. */
#ifndef GP_H2_CONN_H
#define GP_H2_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/h2.h"
#include "core/stream.h"

typedef struct gp_h2_conn gp_h2_conn;

typedef struct {
    double idle;  /* seconds with no open stream before GOAWAY and close (--keep-alive) */
    double stall; /* seconds a stream's response may wait on a shut window (--send-timeout) */
} gp_h2_conn_times;

/* HTTP/2 on s, whose input may already hold the client's first bytes (a
 * preface read by HTTP/1.1's detection). NULL when out of memory. */
gp_h2_conn *gp_h2_conn_new(gp_stream *s, const gp_h2_ops *ops, void *host, const gp_h2_limits *lim,
                           const gp_h2_conn_times *times, const char *peer);
gp_h2 *gp_h2_conn_session(gp_h2_conn *hc);

/* The protocol's event: reads what there is, feeds it, writes the answers.
 * Returns GP_OK, or GP_ERROR when the connection is over (the
 * owner then closes: gp_h2_conn_free, gp_stream_close). */
int gp_h2_conn_event(gp_h2_conn *hc, uint32_t events);
/* Writes what the session has to say now; same return values. */
int gp_h2_conn_pump(gp_h2_conn *hc);
/* True while gp_h2_conn_event feeds input (and so runs the streams' apps):
 * it pumps when that is over, so what the requests of one read answer
 * leaves in one write. */
bool gp_h2_conn_busy(const gp_h2_conn *hc);
/* The stream's deadline passed: idle close, stalled streams, a client that
 * takes no bytes. Same return values. */
int gp_h2_conn_timeout(gp_h2_conn *hc);
/* Graceful stop: GOAWAY; open streams finish. */
int gp_h2_conn_stop(gp_h2_conn *hc);
/* Frees the session (its streams get on_close). The stream stays the owner's. */
void gp_h2_conn_free(gp_h2_conn *hc);

#endif
