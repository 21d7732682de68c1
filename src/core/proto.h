/* proto: the table of callbacks through which a stream (stream.h) and the
 * worker reach the protocol spoken on it: HTTP/1.1 (h1.c), WebSocket after
 * an upgrade (ws_conn.c), HTTP/2 (h2.c). An upgrade swaps the table on the
 * same stream (gp_stream_set_proto); so does ALPN "h2" once a TLS handshake
 * is done, or an h2c preface.
 *
 * The worker and the stream call a protocol only through this table, never
 * by name, so no protocol file and no lower layer call each other in a
 * circle. Every callback runs on the loop's thread. */
#ifndef GP_PROTO_H
#define GP_PROTO_H

#include <stdint.h>

#include "core/stream.h"

struct gp_proto {
    const char *name; /* "http/1.1", "websocket", "h2" */
    /* The socket is ready: events as epoll reported them, EPOLLIN (input,
     * EOF), EPOLLOUT (room to write: flush with gp_stream_flush, then
     * produce more: "drained"), EPOLLHUP, EPOLLERR. One callback for both
     * directions, so a protocol orders them itself: HTTP/1.1 finishes a
     * response before it reads the next request, HTTP/2 reads frames, then
     * writes. Reads go through gp_stream_read / gp_stream_in_fill. */
    void (*on_event)(gp_stream *s, uint32_t events);
    /* The stream's deadline (gp_stream_set_deadline) passed. */
    void (*on_timeout)(gp_stream *s);
    /* Graceful stop (TERM): finish what is in flight, take nothing new
     * (HTTP/1.1: Connection: close; WebSocket: close 1001; h2: GOAWAY). */
    void (*on_stop)(gp_stream *s);
    /* Close now (the graceful timeout passed, or the worker gives up on the
     * stream): release protocol state, then gp_stream_close. A stream a
     * request thread holds may stay open; the worker asks again. */
    void (*on_close)(gp_stream *s);
};

#endif
