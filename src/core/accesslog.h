/* accesslog: gunicorn's access_log_format, compiled once at start-up into a
 * short program of pieces (literal text and atoms), what a connection keeps
 * of each request for it, and the line it renders, as text or as JSON.
 *
 * Pure: no I/O and no allocation here. h1_log.c captures a request's values
 * into a gp_alog_rec (one per connection, reused), and writes the rendered
 * line; nothing of this runs while the access log and --log-slow are off. */
#ifndef GP_ACCESSLOG_H
#define GP_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/http_parser.h"

#define GP_ALOG_MAX_PIECES 64
#define GP_ALOG_MAX_HEADERS 16 /* %({name}i)s atoms, and %({name}o)s atoms, each */
#define GP_ALOG_TEXT 1024      /* literal text and header names of one format */
#define GP_ALOG_FIELD 512      /* a kept value: at most 511 bytes of it */
#define GP_ALOG_LINE_MAX 32768 /* the longest line rendered (text or JSON) */
#define GP_ALOG_DEFAULT_FORMAT "%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\""

/* The atoms, gunicorn's letters in the comments. */
enum gp_alog_atom {
    GP_AL_LIT,      /* literal text */
    GP_AL_HOST,     /* h: the client's address (REMOTE_ADDR) */
    GP_AL_IDENT,    /* l: "-" */
    GP_AL_USER,     /* u: the Basic auth user, else "-" */
    GP_AL_TIME,     /* t: [10/Oct/2026:13:55:36 +0000] */
    GP_AL_REQUEST,  /* r: the request line */
    GP_AL_STATUS,   /* s */
    GP_AL_METHOD,   /* m */
    GP_AL_PATH,     /* U: the path, percent-decoded (PATH_INFO) */
    GP_AL_QUERY,    /* q: the query string, "" when none */
    GP_AL_PROTOCOL, /* H: HTTP/1.1 */
    GP_AL_BYTES,    /* b: body bytes sent */
    GP_AL_BYTES_B,  /* B: the same number */
    GP_AL_REFERER,  /* f */
    GP_AL_AGENT,    /* a */
    GP_AL_SECONDS,  /* T: whole seconds */
    GP_AL_MICROS,   /* D: microseconds */
    GP_AL_MILLIS,   /* M: milliseconds */
    GP_AL_DECIMAL,  /* L: seconds with 6 decimals */
    GP_AL_PID,      /* p: <pid> */
    GP_AL_IN,       /* {name}i: a request header, "-" when absent */
    GP_AL_OUT,      /* {name}o: a response header, "-" when absent */
    GP_AL_NUM_ATOMS
};

typedef struct {
    uint8_t atom;      /* enum gp_alog_atom */
    uint8_t slot;      /* GP_AL_IN/OUT: which header of the format */
    uint16_t off, len; /* GP_AL_LIT: the bytes in text */
} gp_alog_piece;

typedef struct gp_alog_format {
    gp_alog_piece pieces[GP_ALOG_MAX_PIECES];
    int num_pieces;
    char text[GP_ALOG_TEXT];
    size_t text_len;
    struct {
        uint16_t off, len; /* the name in text, lower case */
    } in[GP_ALOG_MAX_HEADERS], out[GP_ALOG_MAX_HEADERS];
    int num_in, num_out;
    uint32_t atoms; /* bit per enum gp_alog_atom used */
} gp_alog_format;

/* Compiles a gunicorn access_log_format ("%(h)s ... %({x-request-id}i)s",
 * "%%" for a '%'; numeric atoms also take "d"). Returns 0, or -1 with a
 * one-line reason in err: an unknown atom, a conversion other than s/d, a
 * '%' that starts nothing, or a format past the limits above. */
int gp_alog_compile(gp_alog_format *f, const char *fmt, char *err, size_t errlen);

/* What a connection keeps of the request whose line is not written yet:
 * GP_ALOG_SLOTS fixed values, then the format's headers, each at most
 * GP_ALOG_FIELD - 1 bytes as received (escaping happens when writing). */
enum {
    GP_ALOG_LINE,
    GP_ALOG_USER,
    GP_ALOG_REFERER,
    GP_ALOG_AGENT,
    GP_ALOG_RPATH,
    GP_ALOG_QS,
    GP_ALOG_SLOTS
};
#define GP_ALOG_ABSENT 0xffff

typedef struct gp_alog_rec {
    uint64_t start_us;   /* monotonic, when the head was in */
    char host[64];       /* the client a trusted proxy named; "" for the peer */
    uint16_t method_len; /* the method is the line's start */
    uint8_t version_minor;
    uint8_t num_slots;
    uint16_t len[GP_ALOG_SLOTS + 2 * GP_ALOG_MAX_HEADERS]; /* GP_ALOG_ABSENT: none */
    char data[][GP_ALOG_FIELD];
} gp_alog_rec;

/* Bytes a record for f takes. */
size_t gp_alog_rec_size(const gp_alog_format *f);

/* Keeps what f needs of req in r (sized by gp_alog_rec_size); start_us and
 * host are the caller's. */
void gp_alog_capture(gp_alog_rec *r, const gp_alog_format *f, const gp_http_request *req);

/* A response header as the app sets it: kept when f names it (the last of
 * the same name wins, as in gunicorn). gp_alog_forget_response drops those
 * kept, when a response head starts again. */
void gp_alog_capture_response(gp_alog_rec *r, const gp_alog_format *f, const char *name,
                              size_t name_len, const char *value, size_t value_len);
void gp_alog_forget_response(gp_alog_rec *r, const gp_alog_format *f);

/* Everything a line needs beyond the record. */
typedef struct {
    const char *host; /* the client's address as text, "-" when none */
    int status;
    uint64_t bytes;       /* body bytes sent */
    uint64_t duration_us; /* head in to response out */
    int pid;
    const char *clf_time; /* "10/Oct/2026:13:55:36 +0000" */
    const char *iso_time; /* "2026-10-10T13:55:36.123+00:00" */
} gp_alog_values;

/* The line for one request, '\n' included, into dst (GP_ALOG_LINE_MAX
 * bytes): as the format says, or as one JSON object with time, level, pid,
 * message (the text line) and a field per atom of the format. A value too
 * long for the line is cut, never the line's end or its JSON. Returns the
 * length. */
size_t gp_alog_render(const gp_alog_format *f, const gp_alog_rec *r, const gp_alog_values *v,
                      bool json, char *dst);

/* gunicorn's %(u)s: the user of an "Authorization: Basic ..." value, as
 * decoded (not escaped), into dst. Returns its length: 0 when the value is
 * not Basic base64 of "user:password" with a non-empty user. */
size_t gp_alog_basic_user(char *dst, size_t cap, const char *v, size_t n);

#endif
