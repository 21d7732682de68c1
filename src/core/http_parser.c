/* http_parser: owns the byte-level grammar of an HTTP/1.1 request head (RFC 9112
 * sections 2-3, 5-6) and of a chunked body (section 7.1), and the framing
 * semantics derived from the head (body length, keep-alive, Host, Expect).
 *
 * Everything is strict on purpose: a parser that "repairs" input disagrees with
 * some proxy in front of us, and that disagreement is request smuggling. The head
 * parser keeps no state between calls; it re-scans from the start, which is cheap
 * next to a syscall and means a truncated buffer can never leave half a decision. */
#include "core/http_parser.h"

#include <string.h>

/* Byte classes, one table so each inner loop is a load and a test. */
enum {
    C_TOK = 0x01, /* tchar (RFC 9110 5.6.2) */
    C_VAL = 0x02, /* field-content byte: VCHAR, obs-text, SP, HTAB */
    C_TGT = 0x04, /* request-target byte: VCHAR except '#' */
    C_QDT = 0x08, /* qdtext of a quoted-string */
    C_HEX = 0x10, /* HEXDIG */
};

static const unsigned char cls[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  10, 0,  0,  0,  0,  0,  0,  /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    10, 15, 6,  11, 15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15, 14, /* 0x20 */
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 14, 14, 14, 14, 14, 14, /* 0x30 */
    14, 31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 0x40 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 6,  14, 15, 15, /* 0x50 */
    15, 31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 0x60 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 15, 14, 15, 0,  /* 0x70 */
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, /* 0x80 */
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, /* 0x90 */
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, /* 0xA0 */
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, /* 0xB0 */
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, /* 0xC0 */
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, /* 0xD0 */
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, /* 0xE0 */
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, /* 0xF0 */
};

/* RFC 9112 2.2 asks servers to ignore at least one empty line before the request
 * line (clients that send CRLF after a POST body); more than a few is garbage. */
#define MAX_LEADING_CRLF 4

#define CHUNK_LINE_MAX 4096
#define TRAILER_MAX 16384
#define UINT63_MAX ((uint64_t)INT64_MAX)

static const gp_http_limits default_limits = {8192, 100, 8192};

static inline bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static inline unsigned char lower(unsigned char c)
{
    return (unsigned char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
}

bool gp_http_token_eq(const char *s, size_t n, const char *lit)
{
    for (size_t i = 0; i < n; i++) {
        /* lit is NUL-terminated, so a shorter literal fails here before overrun */
        if (lower((unsigned char)s[i]) != (unsigned char)lit[i]) return false;
    }
    return lit[n] == '\0';
}

/* End (exclusive) of the bytes of a line starting at `start` that still fit in
 * `max`; reaching it with more input present means the line is over the limit. */
static inline size_t line_bound(size_t start, size_t len, size_t max)
{
    return len - start > max ? start + max : len;
}

/* Classifies the request-target and fills path/query. The byte set was already
 * checked; this enforces which form goes with which method (RFC 9112 3.2). */
static int parse_target(gp_http_request *req, const unsigned char *t, size_t n)
{
    bool is_connect = req->method_len == 7 && memcmp(req->method, "CONNECT", 7) == 0;
    const char *ts = (const char *)t;

    if (is_connect) {
        /* authority-form only: host ":" port, no userinfo, nothing after */
        size_t colon = n;
        for (size_t i = 0; i < n; i++) {
            if (t[i] == '/' || t[i] == '?' || t[i] == '@') return -400;
            if (t[i] == ':') colon = i;
        }
        if (colon == 0 || colon >= n - 1) return -400;
        for (size_t i = colon + 1; i < n; i++) {
            if (t[i] < '0' || t[i] > '9') return -400;
        }
        req->path = ts;
        req->path_len = n;
        return 0;
    }

    size_t q; /* where the path ends: '?' or n */
    if (t[0] == '/') {
        for (q = 0; q < n && t[q] != '?'; q++) {
        }
        req->path = ts;
        req->path_len = q;
    } else if (n == 1 && t[0] == '*') {
        if (!(req->method_len == 7 && memcmp(req->method, "OPTIONS", 7) == 0)) return -400;
        req->path = ts;
        req->path_len = 1;
        return 0;
    } else {
        size_t a; /* start of authority */
        if (n > 7 && gp_http_token_eq(ts, 7, "http://")) a = 7;
        else if (n > 8 && gp_http_token_eq(ts, 8, "https://")) a = 8;
        else return -400;
        size_t i = a;
        while (i < n && t[i] != '/' && t[i] != '?') {
            /* userinfo in an http(s) URI must be treated as an error (RFC 9110 4.2.4) */
            if (t[i] == '@') return -400;
            i++;
        }
        if (i == a) /* empty host is invalid for http(s) (RFC 9110 4.2.1) */
            return -400;
        for (q = i; q < n && t[q] != '?'; q++) {
        }
        if (q > i) {
            req->path = ts + i;
            req->path_len = q - i;
        } else {
            req->path = "/";
            req->path_len = 1;
        }
    }
    if (q < n) {
        req->query = ts + q + 1;
        req->query_len = n - q - 1;
    }
    return 0;
}

/* What the fields said about framing and the connection, resolved at the end of
 * the head because the answer for Transfer-Encoding depends on all of them. */
struct sem {
    uint64_t cl;
    bool has_cl;
    bool has_te, te_bad, te_unknown;
    unsigned te_chunked;
    bool conn_close, conn_keep_alive, conn_upgrade, has_upgrade;
};

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Content-Length = 1*DIGIT, or a list of identical ones ("5, 5": RFC 9110 8.6
 * lets a recipient accept that). Returns false on anything else. */
static bool parse_content_length(const unsigned char *v, size_t n, uint64_t *out)
{
    size_t i = 0;
    bool have = false;
    uint64_t first = 0;
    for (;;) {
        if (i == n || !is_digit(v[i])) return false;
        uint64_t x = 0;
        while (i < n && is_digit(v[i])) {
            unsigned d = (unsigned)(v[i] - '0');
            if (x > (UINT63_MAX - d) / 10) return false;
            x = x * 10 + d;
            i++;
        }
        if (have && x != first) return false;
        first = x;
        have = true;
        while (i < n && is_ws(v[i])) i++;
        if (i == n) break;
        if (v[i] != ',') return false;
        i++;
        while (i < n && is_ws(v[i])) i++;
    }
    *out = first;
    return true;
}

/* Transfer-Encoding is a list of transfer-codings that may span several fields;
 * only the tallies matter, decided in finish_head(). */
static void scan_transfer_encoding(struct sem *s, const unsigned char *v, size_t n)
{
    size_t i = 0;
    for (;;) {
        while (i < n && is_ws(v[i])) i++;
        size_t t = i;
        while (i < n && (cls[v[i]] & C_TOK)) i++;
        size_t tl = i - t;
        if (tl == 0) { /* empty element or a non-token byte */
            s->te_bad = true;
            return;
        }
        bool chunked = gp_http_token_eq((const char *)v + t, tl, "chunked");
        while (i < n && is_ws(v[i])) i++;
        if (i < n && v[i] == ';') {
            /* parameters: chunked takes none; any other coding is refused as 501
             * whatever its parameters say, so they need no closer look */
            if (chunked) s->te_bad = true;
            else s->te_unknown = true;
            while (i < n && v[i] != ',') i++;
        } else if (chunked) {
            s->te_chunked++;
        } else {
            s->te_unknown = true;
        }
        if (i == n) return;
        if (v[i] != ',') {
            s->te_bad = true;
            return;
        }
        i++;
    }
}

/* Connection options are matched loosely: unknown or odd elements are ignored
 * because they cannot change framing. */
static void scan_connection(struct sem *s, const unsigned char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (is_ws(v[i]) || v[i] == ',')) i++;
        size_t t = i;
        while (i < n && v[i] != ',') i++;
        size_t e = i;
        while (e > t && is_ws(v[e - 1])) e--;
        const char *w = (const char *)v + t;
        size_t wl = e - t;
        if (gp_http_token_eq(w, wl, "close")) s->conn_close = true;
        else if (gp_http_token_eq(w, wl, "keep-alive")) s->conn_keep_alive = true;
        else if (gp_http_token_eq(w, wl, "upgrade")) s->conn_upgrade = true;
    }
}

/* Applies one complete field; returns 0 or a negative status. Errors that are
 * final whatever follows (bad Content-Length, second Host) are returned at once. */
static int apply_field(gp_http_request *req, struct sem *s, const gp_http_header *h)
{
    const char *nm = h->name;
    const unsigned char *v = (const unsigned char *)h->value;
    switch (h->name_len) {
    case 4:
        if (gp_http_token_eq(nm, 4, "host")) {
            if (req->host) return -400;
            req->host = h->value;
            req->host_len = h->value_len;
        }
        break;
    case 6:
        if (gp_http_token_eq(nm, 6, "expect") &&
            gp_http_token_eq(h->value, h->value_len, "100-continue"))
            req->expect_continue = true;
        break;
    case 7:
        if (gp_http_token_eq(nm, 7, "upgrade") && h->value_len > 0) s->has_upgrade = true;
        break;
    case 10:
        if (gp_http_token_eq(nm, 10, "connection")) scan_connection(s, v, h->value_len);
        break;
    case 14:
        if (gp_http_token_eq(nm, 14, "content-length")) {
            uint64_t x;
            if (!parse_content_length(v, h->value_len, &x)) return -400;
            if (s->has_cl && x != s->cl) return -400;
            s->cl = x;
            s->has_cl = true;
        }
        break;
    case 17:
        if (gp_http_token_eq(nm, 17, "transfer-encoding")) {
            s->has_te = true;
            scan_transfer_encoding(s, v, h->value_len);
        }
        break;
    default: break;
    }
    return 0;
}

static int finish_head(gp_http_request *req, const struct sem *s)
{
    if (req->version_minor == 1 && !req->host) return -400;
    if (s->has_te) {
        /* RFC 9112 6.1: TE in a 1.0 request or next to Content-Length is a
         * smuggling signal, so refuse outright rather than pick one */
        if (req->version_minor == 0 || s->has_cl || s->te_bad) return -400;
        if (s->te_unknown) return -501;
        if (s->te_chunked != 1) return -400;
        req->body = GP_HTTP_BODY_CHUNKED;
    } else if (s->has_cl) {
        req->body = GP_HTTP_BODY_LENGTH;
        req->content_length = s->cl;
    }
    if (req->version_minor == 1) req->keep_alive = !s->conn_close;
    else req->keep_alive = s->conn_keep_alive && !s->conn_close;
    /* both are HTTP/1.1 mechanisms a server must ignore in a 1.0 request
     * (RFC 9110 7.8 and 10.1.1) */
    if (req->version_minor == 1 && s->conn_upgrade && s->has_upgrade) req->upgrade = true;
    if (req->version_minor == 0) req->expect_continue = false;
    return 0;
}

static int parse_head(const unsigned char *b, size_t len, gp_http_request *req,
                      const gp_http_limits *lim, size_t cap)
{
    size_t p = 0;
    int lead = 0;
    for (;;) {
        if (p == len) return 0;
        if (b[p] != '\r') break;
        if (p + 1 == len) return 0;
        if (b[p + 1] != '\n' || ++lead > MAX_LEADING_CRLF) return -400;
        p += 2;
    }

    /* Request line. Each loop stops at the limit bound e; stopping there with
     * more bytes present means the line is too long, with none it needs more. */
    size_t ls = p;
    size_t e = line_bound(ls, len, lim->max_request_line);
    while (p < e && (cls[b[p]] & C_TOK)) p++;
    if (p == e) return e == len ? 0 : -414;
    if (b[p] != ' ' || p == ls) return -400;
    req->method = (const char *)b + ls;
    req->method_len = p - ls;

    size_t ts = ++p;
    while (p < e && (cls[b[p]] & C_TGT)) p++;
    if (p == e) return e == len ? 0 : -414;
    if (b[p] != ' ' || p == ts) return -400;
    req->target = (const char *)b + ts;
    req->target_len = p - ts;
    int rc = parse_target(req, b + ts, p - ts);
    if (rc) return rc;

    size_t vs = ++p;
    for (int i = 0; i < 8; i++, p++) {
        if (p == e) return e == len ? 0 : -414;
        unsigned char c = b[p];
        bool ok = i < 5 ? c == (unsigned char)"HTTP/"[i] : i == 6 ? c == '.' : is_digit(c);
        if (!ok) return -400;
    }
    /* p <= e here: the CR may sit exactly at the limit */
    if (p == len) return 0;
    if (b[p] != '\r') return -400;
    if (p + 1 == len) return 0;
    if (b[p + 1] != '\n') return -400;
    if (b[vs + 5] != '1' || (b[vs + 7] != '0' && b[vs + 7] != '1')) return -505;
    req->version_minor = b[vs + 7] - '0';
    p += 2;

    /* Field lines. */
    struct sem s = {0};
    size_t n = 0;
    for (;;) {
        if (p == len) return 0;
        ls = p;
        if (b[p] == '\r') {
            if (p + 1 == len) return 0;
            if (b[p + 1] != '\n') return -400;
            p += 2;
            break;
        }
        /* also catches obs-fold (SP/HTAB), an empty name, bare LF and controls */
        if (!(cls[b[p]] & C_TOK)) return -400;
        if (n == cap) return -431;
        e = line_bound(ls, len, lim->max_field_size);
        while (p < e && (cls[b[p]] & C_TOK)) p++;
        if (p == e) return e == len ? 0 : -431;
        if (b[p] != ':') return -400;
        size_t nl = p - ls;
        p++;
        while (p < e && is_ws(b[p])) p++;
        size_t v0 = p;
        while (p < e && (cls[b[p]] & C_VAL)) p++;
        if (p == len) return 0;
        if (b[p] != '\r') return p == e ? -431 : -400;
        if (p + 1 == len) return 0;
        if (b[p + 1] != '\n') return -400;
        size_t v1 = p;
        while (v1 > v0 && is_ws(b[v1 - 1])) v1--;
        gp_http_header *h = &req->headers[n++];
        h->name = (const char *)b + ls;
        h->name_len = nl;
        h->value = (const char *)b + v0;
        h->value_len = v1 - v0;
        rc = apply_field(req, &s, h);
        if (rc) return rc;
        p += 2;
    }
    req->num_headers = n;
    rc = finish_head(req, &s);
    if (rc) return rc;
    /* a head longer than INT_MAX cannot be reported; limits make this theoretical */
    if (p > (size_t)INT32_MAX) return -431;
    return (int)p;
}

int gp_http_parse_request(const char *buf, size_t len, gp_http_request *req,
                          const gp_http_limits *lim)
{
    size_t cap_in = req->num_headers;
    size_t cap = req->headers ? cap_in : 0;
    if (!lim) lim = &default_limits;
    if (cap > lim->max_fields) cap = lim->max_fields;
    if (cap > GP_HTTP_MAX_HEADERS) cap = GP_HTTP_MAX_HEADERS;

    req->method = req->target = req->path = req->query = req->host = NULL;
    req->method_len = req->target_len = req->path_len = req->query_len = req->host_len = 0;
    req->version_minor = 0;
    req->body = GP_HTTP_BODY_NONE;
    req->content_length = 0;
    req->keep_alive = req->expect_continue = req->upgrade = false;

    int rc = parse_head((const unsigned char *)buf, len, req, lim, cap);
    if (rc <= 0) req->num_headers = cap_in; /* the caller retries with the same req */
    return rc;
}

/* ---- chunked body ---------------------------------------------------------- */

enum {
    CS_SIZE = 0,    /* chunk-size digits (line_len counts them) */
    CS_SIZE_BWS,    /* BWS after size or after a quoted value: only ';' may follow */
    CS_EXT_NAME0,   /* after ';': BWS then ext-name */
    CS_EXT_NAME,    /* in ext-name */
    CS_EXT_NAME_WS, /* BWS after ext-name: '=' or ';' may follow */
    CS_EXT_VAL0,    /* after '=': BWS then token or quoted-string */
    CS_EXT_VAL_TOK, /* in a token value */
    CS_EXT_QS,      /* in a quoted-string */
    CS_EXT_QS_ESC,  /* after a backslash in a quoted-string */
    CS_EXT_QS_END,  /* right after the closing quote */
    CS_SIZE_LF,     /* CR of the size line seen */
    CS_DATA,        /* chunk_left bytes of data to copy */
    CS_DATA_CR,     /* CRLF that must follow chunk data */
    CS_DATA_LF,
    CS_TR_START, /* start of a trailer line or of the final CRLF */
    CS_TR_NAME,
    CS_TR_VALUE,
    CS_TR_LF,
    CS_FINAL_LF,
    CS_DONE,
    CS_ERROR,
};

static inline int hexval(unsigned char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

int gp_chunked_decode(gp_chunked *d, const char *in, size_t in_len, size_t *in_used, char *out,
                      size_t *out_len)
{
    const unsigned char *b = (const unsigned char *)in;
    size_t out_cap = *out_len, o = 0, i = 0;
    int st = d->state;

    if (st == CS_DONE || st == CS_ERROR) {
        *in_used = 0;
        *out_len = 0;
        return st == CS_DONE ? GP_CHUNKED_DONE : GP_CHUNKED_ERROR;
    }

    while (i < in_len) {
        if (st == CS_DATA) {
            size_t n = in_len - i;
            if (n > d->chunk_left) n = (size_t)d->chunk_left;
            if (n > out_cap - o) n = out_cap - o;
            if (n == 0) break; /* out is full */
            /* memmove: in place, out + o never passes in + i, but they may overlap */
            memmove(out + o, in + i, n);
            o += n;
            i += n;
            d->chunk_left -= n;
            if (d->chunk_left == 0) st = CS_DATA_CR;
            continue;
        }

        unsigned char c = b[i++];
        if (st <= CS_EXT_QS_END && c != '\r' && ++d->line_len > CHUNK_LINE_MAX) goto fail;
        if (st >= CS_TR_START && ++d->trailer_bytes > TRAILER_MAX) goto fail;

        switch (st) {
        case CS_SIZE:
            if (cls[c] & C_HEX) {
                if (d->chunk_left > (UINT63_MAX >> 4)) goto fail;
                d->chunk_left = (d->chunk_left << 4) | (uint64_t)hexval(c);
                break;
            }
            /* line_len counted this byte unless it is the CR: the rest are digits */
            if (d->line_len - (c != '\r') == 0) goto fail;
            if (c == '\r') st = CS_SIZE_LF;
            else if (c == ';') st = CS_EXT_NAME0;
            else if (is_ws(c)) st = CS_SIZE_BWS;
            else goto fail;
            break;
        case CS_SIZE_BWS:
            if (c == ';') st = CS_EXT_NAME0;
            else if (!is_ws(c)) goto fail;
            break;
        case CS_EXT_NAME0:
            if (cls[c] & C_TOK) st = CS_EXT_NAME;
            else if (!is_ws(c)) goto fail;
            break;
        case CS_EXT_NAME:
            if (cls[c] & C_TOK) break;
            if (c == '\r') st = CS_SIZE_LF;
            else if (c == ';') st = CS_EXT_NAME0;
            else if (c == '=') st = CS_EXT_VAL0;
            else if (is_ws(c)) st = CS_EXT_NAME_WS;
            else goto fail;
            break;
        case CS_EXT_NAME_WS:
            if (c == ';') st = CS_EXT_NAME0;
            else if (c == '=') st = CS_EXT_VAL0;
            else if (!is_ws(c)) goto fail;
            break;
        case CS_EXT_VAL0:
            if (c == '"') st = CS_EXT_QS;
            else if (cls[c] & C_TOK) st = CS_EXT_VAL_TOK;
            else if (!is_ws(c)) goto fail;
            break;
        case CS_EXT_VAL_TOK:
            if (cls[c] & C_TOK) break;
            if (c == '\r') st = CS_SIZE_LF;
            else if (c == ';') st = CS_EXT_NAME0;
            else if (is_ws(c)) st = CS_SIZE_BWS;
            else goto fail;
            break;
        case CS_EXT_QS:
            if (c == '"') st = CS_EXT_QS_END;
            else if (c == '\\') st = CS_EXT_QS_ESC;
            else if (!(cls[c] & C_QDT)) goto fail;
            break;
        case CS_EXT_QS_ESC:
            if (!(cls[c] & C_VAL)) /* HTAB / SP / VCHAR / obs-text */
                goto fail;
            st = CS_EXT_QS;
            break;
        case CS_EXT_QS_END:
            if (c == '\r') st = CS_SIZE_LF;
            else if (c == ';') st = CS_EXT_NAME0;
            else if (is_ws(c)) st = CS_SIZE_BWS;
            else goto fail;
            break;
        case CS_SIZE_LF:
            if (c != '\n') goto fail;
            d->line_len = 0;
            st = d->chunk_left ? CS_DATA : CS_TR_START;
            break;
        case CS_DATA_CR:
            if (c != '\r') goto fail;
            st = CS_DATA_LF;
            break;
        case CS_DATA_LF:
            if (c != '\n') goto fail;
            st = CS_SIZE;
            break;
        case CS_TR_START:
            if (c == '\r') st = CS_FINAL_LF;
            else if (cls[c] & C_TOK) st = CS_TR_NAME;
            else /* obs-fold, empty name, bare LF, controls */ goto fail;
            break;
        case CS_TR_NAME:
            if (c == ':') st = CS_TR_VALUE;
            else if (!(cls[c] & C_TOK)) goto fail;
            break;
        case CS_TR_VALUE:
            if (c == '\r') st = CS_TR_LF;
            else if (!(cls[c] & C_VAL)) goto fail;
            break;
        case CS_TR_LF:
            if (c != '\n') goto fail;
            st = CS_TR_START;
            break;
        case CS_FINAL_LF:
            if (c != '\n') goto fail;
            d->state = CS_DONE;
            *in_used = i;
            *out_len = o;
            return GP_CHUNKED_DONE;
        default: goto fail;
        }
    }
    d->state = st;
    *in_used = i;
    *out_len = o;
    return GP_CHUNKED_MORE;

fail:
    d->state = CS_ERROR;
    *in_used = i;
    *out_len = o;
    return GP_CHUNKED_ERROR;
}

static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

size_t gp_http_percent_decode(char *dst, const char *src, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (src[i] == '%' && i + 2 < n && (hi = hex_value((unsigned char)src[i + 1])) >= 0 &&
            (lo = hex_value((unsigned char)src[i + 2])) >= 0) {
            dst[k++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            dst[k++] = src[i];
        }
    }
    return k;
}

const char *gp_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}
