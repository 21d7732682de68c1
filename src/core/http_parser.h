/* http_parser: the strict HTTP/1.1 request-head parser and chunked body decoder.
 *
 * Pure functions over caller-owned bytes: no allocation, no I/O, no knowledge of
 * the server or of Python. Strict per RFC 9112, because request smuggling lives in
 * leniency: anything ambiguous is rejected with the HTTP status to answer. */
#ifndef GP_HTTP_PARSER_H
#define GP_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GP_HTTP_MAX_HEADERS 256 /* hard ceiling of the headers array */

typedef struct {
    const char *name; /* as sent (case preserved), not NUL-terminated */
    size_t name_len;
    const char *value; /* leading/trailing OWS stripped */
    size_t value_len;
} gp_http_header;

typedef struct {
    size_t max_request_line; /* bytes in the request line, CRLF excluded; over -> 414 */
    size_t max_fields;       /* number of header fields; over -> 431 */
    size_t max_field_size;   /* bytes in one field line (name: value), CRLF excluded; over -> 431 */
    size_t max_head;         /* bytes of the whole head, CRLFs included; over -> 431; 0: no bound */
} gp_http_limits;

enum gp_http_body {
    GP_HTTP_BODY_NONE = 0,    /* no Content-Length, no Transfer-Encoding */
    GP_HTTP_BODY_LENGTH = 1,  /* Content-Length: n (n may be 0) */
    GP_HTTP_BODY_CHUNKED = 2, /* Transfer-Encoding ending in chunked */
};

typedef struct {
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len; /* the request-target as sent */
    const char *path;
    size_t path_len; /* target up to '?' (origin-form), or the whole
                        authority / "*" for the other forms; for an
                        absolute-form target, the path part after the
                        authority ("/" when empty) */
    const char *query;
    size_t query_len; /* after '?', without it; query==NULL when absent */
    const char *host;
    size_t host_len;         /* Host header value; NULL when absent */
    int version_minor;       /* 0 or 1 (HTTP/1.0 or HTTP/1.1); GP_HTTP_VERSION_2 for HTTP/2 */
    gp_http_header *headers; /* caller-provided array ... */
    size_t num_headers;      /* ... capacity on input, count on output */
    enum gp_http_body body;
    uint64_t content_length; /* valid when body == GP_HTTP_BODY_LENGTH */
    bool keep_alive;      /* HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with keep-alive */
    bool expect_continue; /* "Expect: 100-continue" (case-insensitive) */
    bool upgrade;         /* a Connection: upgrade + Upgrade header pair is present */
    bool proxy_headers;   /* a field that may be X-Forwarded-* or Forwarded is present
                             (core/forwarded reads them; false: there is none) */
} gp_http_request;

/* version_minor of a request that came over HTTP/2 (core/h2): nonzero, so
 * that every "HTTP/1.1 or later" test holds for it too. */
#define GP_HTTP_VERSION_2 20

/* Where a partial head stopped, so that the next call resumes there instead of
 * re-scanning from buf[0] (nginx keeps the same kind of state): feeding a head
 * in n pieces costs O(length), not O(n * length). The caller owns one per
 * connection and zeroes it before the first call; after any nonzero return it
 * is ready for the next head again. It holds offsets, never pointers, so the
 * buffer may be moved or grown between calls, provided bytes already passed
 * stay as they were and len never shrinks. Fields below `scanned` are private. */
typedef struct {
    size_t scanned; /* bytes examined over all calls, never reset by the parser (a
                       test hook: resuming must keep this linear) */
    size_t pos, line, mark, name_len, fields;
    size_t method_len, target, target_len, host, host_len, authority, authority_len;
    uint64_t cl;
    uint32_t num_fields, host_index;
    uint16_t flags;
    uint8_t state, lead, te_chunked, version_minor;
} gp_http_head_state;

/* Parses one request head from buf[0..len), resuming from *st.
 * Returns the number of bytes of the head (request line, fields, and the final
 * CRLF) when complete; 0 when the head is not complete yet and nothing seen so far
 * is invalid; or a negative HTTP status to answer and then close:
 *   -400 malformed (bare CR or LF, obs-fold, bad token byte, space before colon,
 *        bad target or version, both Content-Length and Transfer-Encoding, more
 *        than one Content-Length (equal or not, list or repeat), Transfer-Encoding
 *        not ending in chunked, with chunked twice or with parameters on chunked,
 *        missing, repeated, empty or malformed Host (not uri-host[:port]), a NUL
 *        or other control byte ...)
 *   -414 request line longer than lim->max_request_line
 *   -431 a field line over lim->max_field_size, more than lim->max_fields fields,
 *        or a head longer than lim->max_head
 *   -501 a coding other than chunked before the final chunked ("gzip, chunked")
 *   -505 an HTTP version other than 1.0 / 1.1
 * Limits are checked on partial input too: a request line that is already longer
 * than allowed gives -414 before its CRLF arrives, so a caller can stop reading.
 * req->headers/num_headers must be set by the caller (array and its capacity) on
 * every call; the array may be used by others between calls (entries of lines
 * finished in earlier calls are filled again, once, when the head completes). */
int gp_http_parse_head(gp_http_head_state *st, const char *buf, size_t len, gp_http_request *req,
                       const gp_http_limits *lim);

/* The same as a pure function: parses buf[0..len) from its start with a fresh
 * state (for a buffer that holds a whole head, or for tests). */
int gp_http_parse_request(const char *buf, size_t len, gp_http_request *req,
                          const gp_http_limits *lim);
/* Details of the above:
 * - The other fields of *req are meaningful only after a positive return. On 0 or
 *   an error req->num_headers is left at its input capacity, so the same req can be
 *   passed again once more bytes have arrived.
 * - Up to 4 empty lines (CRLF) before the request line are skipped; the returned
 *   length includes them.
 * - The field capacity is min(num_headers, lim->max_fields, GP_HTTP_MAX_HEADERS);
 *   the field after the last one that fits gives -431 as soon as it starts.
 * - lim == NULL means 8192 / 100 / 8192 / 65536.
 * - For an absolute-form target without a path, req->path is a static "/" (not
 *   inside buf); every other returned pointer points into buf, except as below.
 * - Absolute-form target ("GET http://a.example:8080/x HTTP/1.1"): its authority
 *   is the request's host (RFC 9112 3.2.2), whatever Host says. req->host points
 *   at it, and so does the value of the Host entry in req->headers, so that an
 *   app reading the Host header sees it too; when there is no Host field (HTTP/1.0)
 *   and the array has room, an entry named by a static "Host" is appended.
 *   Otherwise req->host is the Host field value.
 * - Transfer-Encoding precedence: on HTTP/1.0, next to Content-Length,
 *   syntactically broken, not ending in chunked, or chunked twice -> -400; else
 *   any other coding before the final chunked -> -501. */

/* Incremental decoder of a chunked body (RFC 9112 section 7.1). Zero-initialise it. */
typedef struct {
    int state;
    uint64_t chunk_left;  /* bytes of data left in the current chunk */
    size_t line_len;      /* bytes seen in the current size/extension/trailer line */
    size_t trailer_bytes; /* total trailer bytes seen, bounded */
    uint8_t name_len;     /* bytes of the current trailer name (saturates) */
    char name[20];        /* its first bytes, lower-cased: long enough for every
                             name that must not be a trailer */
} gp_chunked;

enum {
    GP_CHUNKED_MORE = 0,   /* all input consumed, body not finished: feed more */
    GP_CHUNKED_DONE = 1,   /* last-chunk and trailer section consumed; *in_used tells where
                              the body ended (pipelined bytes may follow) */
    GP_CHUNKED_ERROR = -1, /* malformed: answer 400 (or just close if the response started) */
};

/* Consumes raw bytes in[0..in_len) and writes decoded data to out (capacity
 * *out_len on input, bytes written on output). out may be the same buffer as in
 * (decoding in place is allowed: output never overtakes input). Stops early when
 * out is full, returning GP_CHUNKED_MORE with *in_used < in_len. Chunk sizes are
 * 1*HEXDIG with no overflow of 2^63; chunk extensions must be well-formed
 * (; token [= token / quoted-string], with optional BWS) and a size line with
 * extensions is limited to 4096 bytes; trailers must be well-formed field lines and
 * are discarded, at most 16384 bytes in total; a trailer field that must not be
 * one (RFC 9110 6.5.1: framing, routing, request modifiers, authentication,
 * response control, content format, as Content-Length or Host) is an error. */
int gp_chunked_decode(gp_chunked *d, const char *in, size_t in_len, size_t *in_used, char *out,
                      size_t *out_len);

/* The reason phrase of a status code (RFC 9110), "" when it has none we know. */
const char *gp_http_reason(int status);

/* Decodes %XX escapes of src[0..n) into dst (which may be src; it needs n
 * bytes). A '%' not followed by two hex digits is kept as it is. Returns the
 * decoded length. */
size_t gp_http_percent_decode(char *dst, const char *src, size_t n);

/* Case-insensitive comparison of a token against a lower-case literal.
 * Inline and lengths first: a literal's strlen is then a constant, most
 * calls end there, and the loop never reaches the literal's NUL (so a NUL
 * byte in s cannot match it and walk past its end). */
static inline bool gp_http_token_eq(const char *s, size_t n, const char *lower)
{
    if (n != strlen(lower)) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != (unsigned char)lower[i]) return false;
    }
    return true;
}

#endif
