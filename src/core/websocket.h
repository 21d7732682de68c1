/* websocket: the RFC 6455 protocol layer, server side.
 *
 * Pure functions over caller-owned bytes: no allocation, no I/O, no knowledge of
 * the event loop or of Python. Four parts:
 *   - the opening handshake: validation of the upgrade request and the
 *     Sec-WebSocket-Accept value (self-contained SHA-1 and base64);
 *   - an incremental decoder of client->server frames that unmasks in place and
 *     streams message data, so a 16 MiB message never has to be buffered whole;
 *   - an encoder of server->client frame headers and control frames;
 *   - an incremental UTF-8 validator (also used by the ASGI bridge).
 * No extension (permessage-deflate) is supported: any RSV bit is an error. */
#ifndef GP_WEBSOCKET_H
#define GP_WEBSOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- UTF-8 ------------------------------------------------------------------ */

/* Incremental UTF-8 validator (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF). Zero-initialise it; it is in GP_UTF8_ACCEPT between code points. */
typedef struct {
    uint8_t state;
} gp_utf8_state;

enum { GP_UTF8_ACCEPT = 0, GP_UTF8_REJECT = 1 };

/* Feeds s[0..n). Returns n when no byte was invalid (the state may then be in the
 * middle of a code point, which a later call may complete), else the index of the
 * first invalid byte: the bytes before it are a valid prefix and the state becomes
 * GP_UTF8_REJECT, where it stays (every later call returns 0). */
size_t gp_utf8_feed(gp_utf8_state *st, const uint8_t *s, size_t n);

/* True when the bytes fed so far end on a code point boundary (and none was invalid). */
bool gp_utf8_complete(const gp_utf8_state *st);

/* One-shot: true when s[0..n) is complete, valid UTF-8. */
bool gp_utf8_valid(const uint8_t *s, size_t n);

/* ---- opening handshake -------------------------------------------------------- */

#define GP_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)), written
 * as 28 characters and a NUL. Returns 0, or -1 (out untouched) when the key is not
 * 24 characters of base64 (22 + "==") that decode to 16 bytes. */
int gp_ws_accept_key(const char *client_key, size_t len, char out[29]);

/* The request fields the handshake depends on. Values as the HTTP parser gives
 * them (OWS stripped, not NUL-terminated); NULL when the field is absent. A list
 * field sent on several lines (Connection: keep-alive / Connection: Upgrade) must
 * be passed joined with ", ", or the caller checks each line with gp_ws_has_token. */
typedef struct {
    const char *method;
    size_t method_len;
    int version_minor; /* 1 for HTTP/1.1 */
    const char *upgrade;
    size_t upgrade_len;
    const char *connection;
    size_t connection_len;
    const char *version;
    size_t version_len; /* Sec-WebSocket-Version */
    const char *key;
    size_t key_len; /* Sec-WebSocket-Key */
    const char *protocol;
    size_t protocol_len; /* Sec-WebSocket-Protocol, optional */
} gp_ws_handshake;

/* Validates an upgrade request (RFC 6455 4.2.1). Returns 0 when it is a valid
 * WebSocket opening handshake, with accept[] set to the Sec-WebSocket-Accept value;
 * else the HTTP status to answer:
 *   400 not GET, not HTTP/1.1, Upgrade without the token "websocket", Connection
 *       without the token "upgrade" (both case-insensitive), Sec-WebSocket-Version
 *       missing, Sec-WebSocket-Key missing or invalid, Sec-WebSocket-Protocol not a
 *       comma-separated list of tokens;
 *   426 Sec-WebSocket-Version present but not "13": answer with the header field
 *       "Sec-WebSocket-Version: 13" (checked before the key, so an old client
 *       learns which version to use). */
int gp_ws_check_handshake(const gp_ws_handshake *h, char accept[29]);

/* True when the comma-separated list s[0..n) has an element equal to `lower`
 * (a lower-case literal), compared case-insensitively, OWS around elements ignored. */
bool gp_ws_has_token(const char *s, size_t n, const char *lower);

typedef struct {
    const char *ptr;
    size_t len;
} gp_ws_token;

/* Splits a Sec-WebSocket-Protocol value into its tokens (1#token, RFC 9110 list
 * syntax: empty elements and OWS are skipped). Fills out[0..min(count, cap)) with
 * pointers into s and returns the count (which may exceed cap), or -1 when an
 * element is not a token. */
int gp_ws_split_protocols(const char *s, size_t n, gp_ws_token *out, size_t cap);

/* ---- frames -------------------------------------------------------------------- */

enum {
    GP_WS_OP_CONT = 0x0,
    GP_WS_OP_TEXT = 0x1,
    GP_WS_OP_BINARY = 0x2,
    GP_WS_OP_CLOSE = 0x8,
    GP_WS_OP_PING = 0x9,
    GP_WS_OP_PONG = 0xA,
};

/* Close codes this layer produces. */
enum {
    GP_WS_CLOSE_NORMAL = 1000,
    GP_WS_CLOSE_GOING_AWAY = 1001,
    GP_WS_CLOSE_PROTOCOL = 1002,
    GP_WS_CLOSE_NO_STATUS = 1005, /* never sent: "the close frame had no code" */
    GP_WS_CLOSE_BAD_DATA = 1007,  /* invalid UTF-8 */
    GP_WS_CLOSE_TOO_BIG = 1009,
    GP_WS_CLOSE_INTERNAL = 1011,
};

/* What gp_ws_parse returns (and ev->type). */
enum gp_ws_event_type {
    GP_WS_EV_NEED_MORE = 0, /* feed more bytes */
    GP_WS_EV_TEXT = 1,      /* a piece of a text message: data/len, fin */
    GP_WS_EV_BINARY = 2,    /* a piece of a binary message: data/len, fin */
    GP_WS_EV_PING = 3,      /* data/len: the payload, to echo in a pong */
    GP_WS_EV_PONG = 4,      /* data/len: the payload */
    GP_WS_EV_CLOSE = 5,     /* code (1005 when none), data/len: the reason (valid UTF-8) */
    GP_WS_EV_ERROR = -1,    /* code: the close code to send (1002, 1007, 1009), then close */
};

typedef struct {
    int type;      /* enum gp_ws_event_type */
    uint8_t *data; /* unmasked payload bytes, inside the buffer given to gp_ws_parse */
    size_t len;
    bool fin;      /* TEXT/BINARY: this piece ends the message */
    uint16_t code; /* CLOSE: the code received; ERROR: the code to send */
} gp_ws_event;

/* Decoder state for one connection's client->server stream. Zero-initialise it,
 * then set max_message. The other fields are private. */
typedef struct {
    uint64_t max_message; /* config: largest message (sum of its frames' payloads); 0 = no limit */
    uint64_t remaining;   /* payload bytes left in the current data frame */
    uint64_t msg_len;     /* payload bytes announced so far for the open message */
    uint8_t mask[4];
    uint8_t mask_off; /* payload bytes of the current frame already unmasked, mod 4 */
    uint8_t state;
    uint8_t msg_op; /* GP_WS_OP_TEXT/BINARY while a message is open, else 0 */
    bool frame_fin;
    uint16_t error;     /* the sticky error code once in the error state */
    gp_utf8_state utf8; /* across the frames of a text message */
} gp_ws_parser;

/* The read buffer must be able to hold this many unconsumed bytes: a control
 * frame (6 header bytes + 125 payload bytes) is only decoded once it is whole. */
#define GP_WS_MIN_BUFFER 131

/* Decodes client frames from buf[0..len), one event per call, and sets *used to the
 * bytes consumed. The caller keeps buf[*used..len) and passes it again, followed by
 * newly read bytes, in the next call (the parser may stop at any byte boundary,
 * inside a header, a mask key or a payload). Payload bytes are unmasked in place;
 * ev->data points into buf, and is valid until the caller reuses that memory.
 *
 * Data frames are streamed: every call returns the payload bytes available so far
 * (TEXT or BINARY for every piece of a message, continuation frames included), with
 * fin set on the last piece of the message. An empty frame gives an empty piece
 * only when it ends the message. A text message is validated as it streams; the
 * bytes before an invalid one are still returned, and the next call gives the error.
 * Control frames (PING, PONG, CLOSE) are returned whole, also between the frames of
 * a fragmented message. After CLOSE, further bytes are consumed and ignored (return
 * NEED_MORE). With ERROR, *used counts only bytes consumed before the error was
 * found (send the close frame and close: nothing more is decoded); every later call
 * returns the same error and consumes nothing.
 *
 * Errors (ev->code): 1002 unmasked frame, RSV bit set, unknown opcode, fragmented
 * control frame or one with more than 125 bytes, continuation with no message
 * open, new message while one is open, 64-bit length with the top bit set, close
 * payload of 1 byte, invalid close code; 1007 invalid UTF-8 in a text message
 * (including one that ends inside a code point) or in a close reason; 1009 a
 * message over max_message (detected from frame headers, before its data). */
int gp_ws_parse(gp_ws_parser *p, uint8_t *buf, size_t len, size_t *used, gp_ws_event *ev);

/* True for a close code a peer may send (1000-1003, 1007-1014, 3000-4999). */
bool gp_ws_close_code_valid(unsigned code);

/* Writes a server->client (unmasked) frame header for a payload of payload_len
 * bytes; returns its length: 2, 4 or 10. The RSV bits are 0. */
size_t gp_ws_frame_header(uint8_t out[10], int opcode, bool fin, uint64_t payload_len);

/* Writes a whole close frame (at most 127 bytes) and returns its length. code 0 or
 * 1005 gives an empty payload (no code, no reason); otherwise the code is followed by
 * the reason, which is cut to at most 123 bytes at a UTF-8 code point boundary. */
size_t gp_ws_close_frame(uint8_t out[127], uint16_t code, const char *reason, size_t reason_len);

/* Writes a whole ping or pong frame (opcode GP_WS_OP_PING / GP_WS_OP_PONG) and
 * returns its length, or 0 when payload_len > 125 or the opcode is another one. */
size_t gp_ws_control_frame(uint8_t out[127], int opcode, const uint8_t *payload,
                           size_t payload_len);

#endif
