/* h2: one HTTP/2 server connection over nghttp2, as bytes in and bytes out.
 *
 * The host (the stream layer's h2 protocol) feeds what the socket read with
 * gp_h2_feed and writes what gp_h2_output hands back; it never sees a frame.
 * Each client stream becomes a gp_h2_stream the host receives through
 * gp_h2_ops.on_request, with a request view like HTTP/1.1's, a request body
 * to pull (flow-controlled: the peer may send only what the app has read, so
 * a slow app holds its own stream's window, never the connection's) and a
 * response to write (a bounded per-stream buffer drained as the peer's
 * windows allow). Limits and floods are answered here, each with a log line.
 * Never does I/O, never blocks, never knows Python, never calls the host
 * from inside nghttp2: events are queued and delivered once nghttp2 returned,
 * so the host may call back into this module from any event. Not
 * thread-safe: one thread (or one lock) per connection. */
#ifndef GP_H2_H
#define GP_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/http_parser.h"

typedef struct gp_h2 gp_h2;
typedef struct gp_h2_stream gp_h2_stream;

typedef struct {
    size_t max_field_size; /* bytes of one field, name + value; over -> 431 */
    size_t max_fields;     /* fields in a request head; over -> 431 */
    size_t max_head;       /* SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 6.5.2 sizes); over -> 431 */
    uint32_t max_streams;  /* SETTINGS_MAX_CONCURRENT_STREAMS; 0: 100 */
    uint32_t window;       /* per-stream receive window (request-body bytes held); 0: 65535 */
    uint64_t max_body;     /* request body bytes; over -> the body read fails; 0: none */
    size_t out_high;       /* response bytes buffered per stream before a write says
                              GP_AGAIN; 0: 64 KiB */
    bool connect_protocol; /* SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441) */
} gp_h2_limits;

typedef struct {
    /* A request head arrived on s (req valid during the call only). The host
     * owns s from now on, until it calls gp_h2_stream_release. */
    void (*on_request)(void *host, gp_h2_stream *s, const gp_http_request *req);
    /* Request-body bytes (or its end, or a body error) arrived on s. */
    void (*on_body)(void *host, gp_h2_stream *s);
    /* s's response buffer drained below half of out_high after a write said
     * GP_AGAIN: the app may write again. */
    void (*on_writable)(void *host, gp_h2_stream *s);
    /* s is over at the protocol level: its response completed (error 0), or
     * the peer reset it, or the connection went (an HTTP/2 error code). s
     * stays valid until gp_h2_stream_release; writes now fail. */
    void (*on_close)(void *host, gp_h2_stream *s, uint32_t error_code);
} gp_h2_ops;

/* A server session. peer names the client in log lines (may be NULL).
 * Returns NULL when out of memory. */
gp_h2 *gp_h2_new(const gp_h2_ops *ops, void *host, const gp_h2_limits *lim, const char *peer);
/* Frees the session. Streams the host still holds get on_close first (when
 * they had none) and stay valid until released; their calls then fail. Not
 * from inside one of the session's events. */
void gp_h2_free(gp_h2 *h);

/* True when buf starts like the client preface ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"):
 * 1 complete and right, 0 too short to tell but right so far, -1 not it. */
int gp_h2_is_preface(const char *buf, size_t len);

/* HTTP/1.1 "Upgrade: h2c" (RFC 7540 3.2): settings is the HTTP2-Settings
 * value (base64url), req the HTTP/1.1 request, which becomes stream 1 and is
 * handed to on_request before this returns. The host has sent "101
 * Switching Protocols" and feeds the client's preface next. Only a request
 * without a body may be upgraded (the caller checks). GP_OK or GP_ERROR (bad
 * settings: answer the request over HTTP/1.1 instead). */
int gp_h2_upgrade(gp_h2 *h, const char *settings, size_t settings_len, const gp_http_request *req);

/* Input from the peer. Returns GP_OK, or GP_ERROR when the session is over
 * (a protocol error or a flood: a GOAWAY may be waiting in the output). */
int gp_h2_feed(gp_h2 *h, const char *buf, size_t len);
/* Output: the next bytes to write, *data valid until the next call into the
 * session; 0 when nothing is waiting, GP_ERROR when the session broke. */
ssize_t gp_h2_output(gp_h2 *h, const uint8_t **data);
/* True once the session is over: both sides said goodbye (or it broke), no
 * stream is open and nothing is left to write. The host then closes. */
bool gp_h2_done(gp_h2 *h);
/* Graceful stop: GOAWAY with the last stream seen; open streams finish. */
void gp_h2_shutdown(gp_h2 *h);
/* Streams open at the protocol level. */
size_t gp_h2_open_streams(gp_h2 *h);
/* Resets streams whose response has waited more than stall_ms for the
 * peer's flow-control window to open (zero window forever), and answers
 * the rapid-reset check. Returns the ms until the next such stall could
 * expire, -1 when none. now_ms: a monotonic clock. */
long gp_h2_tick(gp_h2 *h, uint64_t now_ms, uint64_t stall_ms);

/* ---- per stream ---- */
int32_t gp_h2_stream_id(const gp_h2_stream *s);
void *gp_h2_stream_data(const gp_h2_stream *s);
void gp_h2_stream_set_data(gp_h2_stream *s, void *data);
/* The host is done with s (response ended or abandoned): a stream still open
 * is reset (CANCEL) when its response did not end. s is freed. */
void gp_h2_stream_release(gp_h2_stream *s);
/* on_close came (or the session went): nothing more can be sent. */
bool gp_h2_stream_closed(const gp_h2_stream *s);

/* The request view of s again (as on_request gave it), for a host that runs
 * the app later (once the body is in). Valid until gp_h2_head_begin; hv has
 * GP_HTTP_MAX_HEADERS entries. */
void gp_h2_stream_request(gp_h2_stream *s, gp_http_request *req, gp_http_header *hv);

/* Request body: bytes copied (> 0), 0 at its end, GP_H2_BODY_AGAIN when
 * nothing is buffered yet, or a negative code: GP_H2_BODY_RESET (the stream
 * was reset or closed), GP_H2_BODY_TOO_LARGE (over max_body). Reading opens
 * the peer's window by what was read (a WINDOW_UPDATE in the next output). */
enum { GP_H2_BODY_RESET = -1, GP_H2_BODY_TOO_LARGE = -3, GP_H2_BODY_AGAIN = -5 };
ssize_t gp_h2_body_read(gp_h2_stream *s, char *dst, size_t n);
size_t gp_h2_body_buffered(const gp_h2_stream *s);
/* RFC 9110 10.1.1: the request said "expect: 100-continue", so its client
 * may hold the body back until it hears 100. Submits that informational
 * head once, when the app first asks for a body none of which came yet, and
 * never once the app began its response. True when it did (the caller
 * writes the session's output). */
bool gp_h2_stream_continue(gp_h2_stream *s);
bool gp_h2_body_done(const gp_h2_stream *s);
/* The request's content-length when it sent one, else -1. */
int64_t gp_h2_body_length(const gp_h2_stream *s);

/* Response head: status, then fields (names lower-cased here; HTTP/1.1's
 * connection-specific fields dropped, RFC 9113 8.2.2). GP_ERROR when a head
 * was already begun on s or the fields outgrow 64 KiB. Nothing is sent before
 * the first write, flush or end. */
int gp_h2_head_begin(gp_h2_stream *s, int status);
int gp_h2_head_add(gp_h2_stream *s, const char *name, size_t name_len, const char *value,
                   size_t value_len);
bool gp_h2_head_begun(const gp_h2_stream *s);
/* Body bytes, copied. GP_OK; GP_AGAIN: copied too, but the stream's buffer
 * is past out_high, wait for on_writable; GP_ERROR: the stream is closed. */
int gp_h2_write(gp_h2_stream *s, const void *data, size_t len);
/* Sends the head now if it was not (a streamed response's first flush). */
int gp_h2_flush(gp_h2_stream *s);
/* Response bytes still buffered on s. */
size_t gp_h2_pending(const gp_h2_stream *s);
/* Ends the response; trailers ("Name: value\r\n" lines, validated by the
 * caller) go in a HEADERS frame after the data. A head not begun is 200. */
int gp_h2_end(gp_h2_stream *s, const char *trailers, size_t trailers_len);
/* Abandons the response: RST_STREAM with this error code. */
void gp_h2_reset(gp_h2_stream *s, uint32_t error_code);

#endif
