/* http_parser: owns the byte-level grammar of an HTTP/1.1 request head (RFC 9112
 * sections 2-3, 5-6) and of a chunked body (section 7.1), and the framing
 * semantics derived from the head (body length, keep-alive, Host, Expect).
 *
 * Everything is strict on purpose: a parser that "repairs" input disagrees with
 * some proxy in front of us, and that disagreement is request smuggling. The head
 * parser resumes where the last call ran out of input (state in a caller-owned
 * struct, nginx-style), so a head that trickles in costs one pass in total; what
 * finished lines decided (framing, Host) is kept as flags and offsets, and a
 * truncated buffer can still never leave half a decision: every verdict waits
 * for the whole head. */
#include "core/http_parser.h"

#include <string.h>

/* Byte classes, one table so each inner loop is a load and a test. */
enum {
    C_TOK = 0x01, /* tchar (RFC 9110 5.6.2) */
    C_VAL = 0x02, /* field-content byte: VCHAR, obs-text, SP, HTAB */
    C_TGT = 0x04, /* request-target byte: VCHAR except '#' */
    C_QDT = 0x08, /* qdtext of a quoted-string */
    C_HEX = 0x10, /* HEXDIG */
    C_REG = 0x20, /* reg-name byte other than pct-encoded: unreserved / sub-delims (RFC 3986) */
};

static const unsigned char cls[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  10, 0,  0,  0,  0,  0,  0,  /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    10, 47, 6,  11, 47, 15, 47, 47, 46, 46, 47, 47, 46, 47, 47, 14, /* 0x20 */
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 14, 46, 14, 46, 14, 14, /* 0x30 */
    14, 63, 63, 63, 63, 63, 63, 47, 47, 47, 47, 47, 47, 47, 47, 47, /* 0x40 */
    47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 14, 6,  14, 15, 47, /* 0x50 */
    15, 63, 63, 63, 63, 63, 63, 47, 47, 47, 47, 47, 47, 47, 47, 47, /* 0x60 */
    47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 14, 15, 14, 47, 0,  /* 0x70 */
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

/* For the pieces of the head parser, which the compiler would otherwise call
 * out of line: a call per field costs more than the work. */
#define HOT static inline __attribute__((always_inline))

static const gp_http_limits default_limits = {8192, 100, 8192, 65536};

static inline bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline unsigned char lower(unsigned char c)
{
    return (unsigned char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
}

HOT bool token_eq(const char *s, size_t n, const char *lit)
{
    return gp_http_token_eq(s, n, lit);
}

/* End (exclusive) of the bytes of a line starting at `start` that still fit in
 * `max`; reaching it with more input present means the line is over the limit. */
static inline size_t line_bound(size_t start, size_t len, size_t max)
{
    return len - start > max ? start + max : len;
}

/* ---- hosts (RFC 3986 3.2.2, RFC 9110 7.2) ------------------------------------ */

/* dec-octet "." dec-octet "." dec-octet "." dec-octet, no leading zeros */
static bool ipv4_address(const unsigned char *s, size_t n)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part && (i == n || s[i++] != '.')) return false;
        size_t d = i;
        unsigned v = 0;
        while (i < n && is_digit(s[i]) && i - d < 3) v = v * 10 + (unsigned)(s[i++] - '0');
        if (i == d || v > 255 || (s[d] == '0' && i - d > 1)) return false;
    }
    return i == n;
}

/* IPv6address: eight h16 groups, or fewer around one "::", the last two of
 * which may be written as an IPv4 address. */
static bool ipv6_address(const unsigned char *s, size_t n)
{
    size_t i = 0;
    int groups = 0;
    bool gap = false;
    if (n >= 2 && s[0] == ':' && s[1] == ':') {
        gap = true;
        i = 2;
    }
    while (i < n) {
        size_t g = i;
        while (i < n && (cls[s[i]] & C_HEX) && i - g < 5) i++;
        if (i < n && s[i] == '.') { /* ls32 as an IPv4 address ends the text */
            if (!ipv4_address(s + g, n - g)) return false;
            groups += 2;
            break;
        }
        if (i == g || i - g > 4) return false;
        groups++;
        if (i == n) break;
        if (s[i++] != ':' || i == n) return false; /* a lone trailing ':' */
        if (s[i] == ':') {
            if (gap) return false;
            gap = true;
            i++;
        }
    }
    return gap ? groups <= 7 : groups == 8;
}

/* IP-literal without its brackets: IPv6address / IPvFuture */
static bool ip_literal(const unsigned char *s, size_t n)
{
    if (n == 0 || (s[0] != 'v' && s[0] != 'V')) return ipv6_address(s, n);
    size_t i = 1;
    while (i < n && (cls[s[i]] & C_HEX)) i++;
    if (i == 1 || i == n || s[i++] != '.' || i == n) return false;
    for (; i < n; i++)
        if (!(cls[s[i]] & C_REG) && s[i] != ':') return false;
    return true;
}

/* uri-host [":" port] with a non-empty host (an http(s) URI must not have an
 * empty one, RFC 9110 4.2.1) and a port that fits 16 bits; need_port asks for
 * authority-form's host ":" port (CONNECT). No userinfo: '@' is no host byte. */
__attribute__((noinline)) static bool valid_authority(const unsigned char *s, size_t n,
                                                      bool need_port)
{
    size_t i = 0;
    if (n && s[0] == '[') {
        while (i < n && s[i] != ']') i++;
        if (i == n || !ip_literal(s + 1, i - 1)) return false;
        i++;
    } else {
        for (;;) {
            while (i < n && (cls[s[i]] & C_REG)) i++;
            if (i == n || s[i] != '%') break;
            if (n - i < 3 || !(cls[s[i + 1]] & C_HEX) || !(cls[s[i + 2]] & C_HEX)) return false;
            i += 3;
        }
        if (i == 0) return false;
    }
    if (i == n) return !need_port;
    if (s[i++] != ':') return false;
    if (i == n) return !need_port; /* "host:" is allowed by RFC 3986 */
    unsigned port = 0;
    for (size_t d = i; i < n; i++) {
        if (!is_digit(s[i]) || i - d >= 5) return false;
        port = port * 10 + (unsigned)(s[i] - '0');
    }
    return port <= 65535;
}

/* Host's usual shape, a reg-name and perhaps a short port, checked inline;
 * the rest (IP literals, escapes, long ports) goes the long way. s[0..n) is a
 * field value of a complete line, so s[n] is SP, HTAB or CR: neither a
 * reg-name byte nor a digit, which bounds the loops without a length test. */
HOT bool valid_host(const unsigned char *s, size_t n)
{
    const unsigned char *q = s, *end = s + n;
    while (cls[*q] & C_REG) q++;
    if (q == end) return n > 0;
    if (*q == ':' && q > s && end - q <= 6) {
        const unsigned char *d = q + 1;
        while (is_digit(*++q)) {
        }
        /* five digits compare as text against the largest port */
        if (q == end) return end - d < 5 || memcmp(d, "65535", 5) <= 0;
    }
    return valid_authority(s, n, false);
}

/* ---- the request line --------------------------------------------------------- */

/* Classifies the request-target and fills path/query; for absolute-form also
 * says where its authority is (*auth_len == 0 for the other forms). The byte
 * set was already checked; this enforces which form goes with which method
 * (RFC 9112 3.2). */
HOT int parse_target(gp_http_request *req, const unsigned char *t, size_t n, size_t *auth,
                     size_t *auth_len)
{
    bool is_connect = req->method_len == 7 && memcmp(req->method, "CONNECT", 7) == 0;
    const char *ts = (const char *)t;
    *auth_len = 0;

    if (is_connect) { /* authority-form only: host ":" port, nothing after */
        if (!valid_authority(t, n, true)) return -400;
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
        if (n > 7 && token_eq(ts, 7, "http://")) a = 7;
        else if (n > 8 && token_eq(ts, 8, "https://")) a = 8;
        else return -400;
        size_t i = a;
        while (i < n && t[i] != '/' && t[i] != '?') i++;
        /* userinfo ('@') must be treated as an error (RFC 9110 4.2.4), and is
         * no host byte; an empty host is invalid for http(s) (4.2.1) */
        if (!valid_authority(t + a, i - a, false)) return -400;
        *auth = a;
        *auth_len = i - a;
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

/* ---- fields ------------------------------------------------------------------- */

/* What the fields said about framing and the connection (gp_http_head_state.flags),
 * resolved at the end of the head because the answer for Transfer-Encoding
 * depends on all of them. */
enum {
    F_HOST = 1 << 0,
    F_CL = 1 << 1,
    F_TE = 1 << 2,
    F_TE_BAD = 1 << 3,
    F_TE_UNKNOWN = 1 << 4,
    F_TE_LAST_CHUNKED = 1 << 5, /* the last coding so far is chunked */
    F_CONN_CLOSE = 1 << 6,
    F_CONN_KEEP_ALIVE = 1 << 7,
    F_CONN_UPGRADE = 1 << 8,
    F_UPGRADE = 1 << 9,
    F_EXPECT = 1 << 10,
    F_PROXY = 1 << 11, /* maybe X-Forwarded-* or Forwarded (core/forwarded decides) */
};

/* Content-Length = 1*DIGIT. A list, even of equal values ("5, 5"), is refused:
 * RFC 9110 8.6 allows accepting it, but an app handed "5, 5" cannot use it and
 * a proxy may have framed the message differently. */
static bool parse_content_length(const unsigned char *v, size_t n, uint64_t *out)
{
    if (n == 0) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(v[i])) return false;
        unsigned d = (unsigned)(v[i] - '0');
        if (x > (UINT63_MAX - d) / 10) return false;
        x = x * 10 + d;
    }
    *out = x;
    return true;
}

/* Transfer-Encoding is a list of transfer-codings that may span several fields;
 * only the tallies and the last coding matter, decided in finish_head(). */
static void scan_transfer_encoding(gp_http_head_state *st, const unsigned char *v, size_t n)
{
    size_t i = 0;
    for (;;) {
        while (i < n && is_ws(v[i])) i++;
        size_t t = i;
        while (i < n && (cls[v[i]] & C_TOK)) i++;
        size_t tl = i - t;
        if (tl == 0) { /* empty element or a non-token byte */
            st->flags |= F_TE_BAD;
            return;
        }
        bool chunked = token_eq((const char *)v + t, tl, "chunked");
        while (i < n && is_ws(v[i])) i++;
        st->flags &= (uint16_t)~F_TE_LAST_CHUNKED;
        if (i < n && v[i] == ';') {
            /* parameters: chunked takes none; any other coding is refused
             * whatever its parameters say, so they need no closer look */
            st->flags |= chunked ? F_TE_BAD : F_TE_UNKNOWN;
            while (i < n && v[i] != ',') i++;
        } else if (chunked) {
            if (st->te_chunked < 2) st->te_chunked++;
            st->flags |= F_TE_LAST_CHUNKED;
        } else {
            st->flags |= F_TE_UNKNOWN;
        }
        if (i == n) return;
        if (v[i] != ',') {
            st->flags |= F_TE_BAD;
            return;
        }
        i++;
    }
}

/* Connection options are matched loosely: unknown or odd elements are ignored
 * because they cannot change framing. */
static void scan_connection(gp_http_head_state *st, const unsigned char *v, size_t n)
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
        if (token_eq(w, wl, "close")) st->flags |= F_CONN_CLOSE;
        else if (token_eq(w, wl, "keep-alive")) st->flags |= F_CONN_KEEP_ALIVE;
        else if (token_eq(w, wl, "upgrade")) st->flags |= F_CONN_UPGRADE;
    }
}

/* Applies one complete field, the index-th, of a head starting at b; returns 0
 * or a negative status. Errors that are final whatever follows (bad
 * Content-Length, bad or second Host) are returned at once. */
HOT int apply_field(gp_http_head_state *st, const unsigned char *b, const gp_http_header *h,
                    size_t index)
{
    const char *nm = h->name;
    const unsigned char *v = (const unsigned char *)h->value;
    switch (h->name_len) {
    case 4:
        if (token_eq(nm, 4, "host")) {
            if ((st->flags & F_HOST) || !valid_host(v, h->value_len)) return -400;
            st->flags |= F_HOST;
            st->host = (size_t)(v - b);
            st->host_len = h->value_len;
            st->host_index = (uint32_t)index;
        }
        break;
    case 6:
        if (token_eq(nm, 6, "expect") && token_eq(h->value, h->value_len, "100-continue"))
            st->flags |= F_EXPECT;
        break;
    case 7:
        if (token_eq(nm, 7, "upgrade") && h->value_len > 0) st->flags |= F_UPGRADE;
        break;
    case 10:
        if (token_eq(nm, 10, "connection")) scan_connection(st, v, h->value_len);
        break;
    case 14:
        if (token_eq(nm, 14, "content-length")) {
            if ((st->flags & F_CL) || !parse_content_length(v, h->value_len, &st->cl)) return -400;
            st->flags |= F_CL;
        }
        break;
    case 17:
        if (token_eq(nm, 17, "transfer-encoding")) {
            st->flags |= F_TE;
            scan_transfer_encoding(st, v, h->value_len);
            break;
        }
        __attribute__((fallthrough)); /* X-Forwarded-Proto is 17 bytes too */
    case 9:
    case 15:
    case 16:
    case 18: /* a first byte is enough to rule out the common fields of these lengths */
        if ((nm[0] | 0x20) == 'x' || (nm[0] | 0x20) == 'f') st->flags |= F_PROXY;
        break;
    default: break;
    }
    return 0;
}

HOT int finish_head(gp_http_request *req, const gp_http_head_state *st)
{
    unsigned f = st->flags;
    if (req->version_minor == 1 && !(f & F_HOST)) return -400;
    if (f & F_TE) {
        /* RFC 9112 6.1: TE in a 1.0 request or next to Content-Length is a
         * smuggling signal, so refuse outright rather than pick one; 6.3: a
         * request whose final coding is not chunked has no length we can
         * determine, which MUST be a 400 */
        if (req->version_minor == 0 || (f & (F_CL | F_TE_BAD)) || !(f & F_TE_LAST_CHUNKED) ||
            st->te_chunked != 1)
            return -400;
        if (f & F_TE_UNKNOWN) return -501;
        req->body = GP_HTTP_BODY_CHUNKED;
    } else if (f & F_CL) {
        req->body = GP_HTTP_BODY_LENGTH;
        req->content_length = st->cl;
    }
    if (req->version_minor == 1) req->keep_alive = !(f & F_CONN_CLOSE);
    else req->keep_alive = (f & F_CONN_KEEP_ALIVE) && !(f & F_CONN_CLOSE);
    /* both are HTTP/1.1 mechanisms a server must ignore in a 1.0 request
     * (RFC 9110 7.8 and 10.1.1) */
    if (req->version_minor == 1 && (f & F_CONN_UPGRADE) && (f & F_UPGRADE)) req->upgrade = true;
    req->expect_continue = req->version_minor == 1 && (f & F_EXPECT);
    req->proxy_headers = (f & F_PROXY) != 0;
    return 0;
}

/* Fills h[0..count) again from the field lines starting at b[p]: the caller's
 * array is only lent for one call (a worker shares one among its connections),
 * so lines that finished in earlier calls are read once more, once. They were
 * checked then; `end` only guards against a caller that broke the contract.
 * Returns where the lines end. */
static size_t refill_fields(const unsigned char *b, size_t p, size_t end, gp_http_header *h,
                            size_t count)
{
    for (size_t i = 0; i < count && p < end; i++) {
        size_t ls = p;
        while (p < end && b[p] != ':') p++;
        h[i].name = (const char *)b + ls;
        h[i].name_len = p - ls;
        p++;
        while (p < end && is_ws(b[p])) p++;
        size_t v0 = p;
        while (p < end && b[p] != '\r') p++;
        size_t v1 = p;
        while (v1 > v0 && is_ws(b[v1 - 1])) v1--;
        h[i].value = (const char *)b + v0;
        h[i].value_len = v1 - v0;
        p += 2;
    }
    return p;
}

/* ---- the head ------------------------------------------------------------------ */

/* Where parse_head stopped (gp_http_head_state.state): each names the loop to
 * re-enter, with pos where that loop's next byte is. */
enum {
    HS_FRESH = 0, /* nothing parsed: a new head starts at buf[0] */
    HS_LEAD,      /* empty lines before the request line */
    HS_METHOD,    /* line = request line start */
    HS_TARGET,    /* mark = target start */
    HS_VERSION,   /* mark = version start; re-read from there (at most 10 bytes) */
    HS_LINE,      /* at the start of a field line or of the final CRLF */
    HS_NAME,      /* line = field line start */
    HS_VALUE,     /* name_len; mark = value start, or pos while still in OWS */
};

/* Ran out of input: keep the place, count what this call examined. */
#define NEED_MORE(where)                                                                           \
    do {                                                                                           \
        L.state = (where);                                                                         \
        L.pos = p;                                                                                 \
        L.line = ls;                                                                               \
        L.num_fields = (uint32_t)n;                                                                \
        L.mark = mark;                                                                             \
        L.name_len = nl;                                                                           \
        L.scanned += len - start;                                                                  \
        *out = L;                                                                                  \
        return 0;                                                                                  \
    } while (0)

static int parse_head(gp_http_head_state *out, const unsigned char *b, size_t len,
                      gp_http_request *req, const gp_http_limits *lim, size_t cap)
{
    /* mark: start of the target, of the version, or of a field value;
     * e: where the current line reaches its limit (see line_bound);
     * n0: entries filled by earlier calls, stale by now */
    size_t p = 0, start = 0, ls = 0, e = 0, nl = 0, mark = 0, n = 0, n0 = 0;
    bool target_before = false; /* the target was parsed by an earlier call */
    int rc;

    /* Work on a copy in this frame; *out is written back only when the call
     * stops for more input (NEED_MORE) or counts what it scanned. */
    gp_http_head_state L;
    if (out->state == HS_FRESH) { /* every other field is set before it is read */
        L.scanned = out->scanned;
        L.authority_len = 0;
        L.flags = 0;
        L.lead = L.te_chunked = 0;
        goto lead;
    }
    L = *out;
    p = start = L.pos;
    ls = L.line;
    nl = L.name_len;
    mark = L.mark;
    n = n0 = L.num_fields;
    target_before = L.state >= HS_VERSION;
    switch (L.state) {
    case HS_LEAD: break;
    case HS_METHOD: e = line_bound(ls, len, lim->max_request_line); goto method;
    case HS_TARGET: e = line_bound(ls, len, lim->max_request_line); goto target;
    case HS_VERSION:
        p = start = mark;
        e = line_bound(ls, len, lim->max_request_line);
        goto version;
    case HS_LINE: goto line;
    case HS_NAME: e = line_bound(ls, len, lim->max_field_size); goto name;
    case HS_VALUE:
        e = line_bound(ls, len, lim->max_field_size);
        if (p == mark) goto ows; /* more OWS may come before the value */
        goto value;
    default: return -400;
    }

lead:
    for (;;) {
        if (p == len) NEED_MORE(HS_LEAD);
        if (b[p] != '\r') break;
        if (p + 1 == len) NEED_MORE(HS_LEAD);
        if (b[p + 1] != '\n' || ++L.lead > MAX_LEADING_CRLF) return -400;
        p += 2;
    }

    /* Request line. Each loop stops at the limit bound e; stopping there with
     * more bytes present means the line is too long, with none it needs more. */
    ls = p;
    e = line_bound(ls, len, lim->max_request_line);
method:
    while (p < e && (cls[b[p]] & C_TOK)) p++;
    if (p == e) {
        if (e == len) NEED_MORE(HS_METHOD);
        return -414;
    }
    if (b[p] != ' ' || p == ls) return -400;
    L.method_len = p - ls;
    mark = ++p;
target:
    while (p < e && (cls[b[p]] & C_TGT)) p++;
    if (p == e) {
        if (e == len) NEED_MORE(HS_TARGET);
        return -414;
    }
    if (b[p] != ' ' || p == mark) return -400;
    L.target = mark;
    L.target_len = p - mark;
    req->method = (const char *)b + ls;
    req->method_len = L.method_len;
    rc = parse_target(req, b + L.target, L.target_len, &L.authority, &L.authority_len);
    if (rc) return rc;
    L.authority += L.target;
    mark = ++p;
version:
    for (int i = 0; i < 8; i++, p++) {
        if (p == e) {
            if (e == len) NEED_MORE(HS_VERSION);
            return -414;
        }
        unsigned char c = b[p];
        bool ok = i < 5 ? c == (unsigned char)"HTTP/"[i] : i == 6 ? c == '.' : is_digit(c);
        if (!ok) return -400;
    }
    /* p <= e here: the CR may sit exactly at the limit */
    if (p == len) NEED_MORE(HS_VERSION);
    if (b[p] != '\r') return -400;
    if (p + 1 == len) NEED_MORE(HS_VERSION);
    if (b[p + 1] != '\n') return -400;
    {
        const unsigned char *v = b + mark;
        if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) return -505;
        L.version_minor = (uint8_t)(v[7] - '0');
    }
    p += 2;
    L.fields = p;

    /* Field lines. */
    for (;;) {
    line:
        if (p == len) NEED_MORE(HS_LINE);
        ls = p;
        if (b[p] == '\r') {
            if (p + 1 == len) NEED_MORE(HS_LINE);
            if (b[p + 1] != '\n') return -400;
            p += 2;
            break;
        }
        /* also catches obs-fold (SP/HTAB), an empty name, bare LF and controls */
        if (!(cls[b[p]] & C_TOK)) return -400;
        if (n == cap) return -431;
        e = line_bound(ls, len, lim->max_field_size);
    name:
        while (p < e && (cls[b[p]] & C_TOK)) p++;
        if (p == e) {
            if (e == len) NEED_MORE(HS_NAME);
            return -431;
        }
        if (b[p] != ':') return -400;
        nl = p - ls;
        p++;
    ows:
        while (p < e && is_ws(b[p])) p++;
        mark = p;
    value:
        while (p < e && (cls[b[p]] & C_VAL)) p++;
        if (p == len) NEED_MORE(HS_VALUE);
        if (b[p] != '\r') return p == e ? -431 : -400;
        if (p + 1 == len) NEED_MORE(HS_VALUE);
        if (b[p + 1] != '\n') return -400;
        size_t v1 = p;
        while (v1 > mark && is_ws(b[v1 - 1])) v1--;
        gp_http_header *h = &req->headers[n];
        h->name = (const char *)b + ls;
        h->name_len = nl;
        h->value = (const char *)b + mark;
        h->value_len = v1 - mark;
        rc = apply_field(&L, b, h, n);
        if (rc) return rc;
        n++;
        p += 2;
    }

    /* The head is whole. What earlier calls saw is rebuilt from offsets. */
    size_t scanned = p - start;
    req->version_minor = L.version_minor;
    if (target_before) {
        size_t rl = L.target - L.method_len - 1; /* request line start */
        size_t a, al;
        req->method = (const char *)b + rl;
        req->method_len = L.method_len;
        parse_target(req, b + L.target, L.target_len, &a, &al); /* passed before */
        scanned += L.target_len;
    }
    req->target = (const char *)b + L.target;
    req->target_len = L.target_len;
    if (n0) scanned += refill_fields(b, L.fields, p, req->headers, n0) - L.fields;
    req->num_headers = n;
    if (L.flags & F_HOST) {
        req->host = (const char *)b + L.host;
        req->host_len = L.host_len;
    }
    if (L.authority_len) { /* absolute-form: the target's authority is the host */
        const char *auth = (const char *)b + L.authority;
        gp_http_header *h = NULL;
        if (L.flags & F_HOST) h = &req->headers[L.host_index];
        else if (n < cap) {
            h = &req->headers[n];
            req->num_headers = n + 1;
            h->name = "Host";
            h->name_len = 4;
        }
        if (h) {
            h->value = auth;
            h->value_len = L.authority_len;
        }
        req->host = auth;
        req->host_len = L.authority_len;
    }
    out->scanned = L.scanned + scanned;
    rc = finish_head(req, &L);
    if (rc) return rc;
    /* a head longer than INT_MAX cannot be reported; limits make this theoretical */
    if (p > (size_t)INT32_MAX) return -431;
    return (int)p;
}

int gp_http_parse_head(gp_http_head_state *st, const char *buf, size_t len, gp_http_request *req,
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
    req->keep_alive = req->expect_continue = req->upgrade = req->proxy_headers = false;

    /* past the head budget, a head that has not ended is too large */
    size_t end = lim->max_head && len > lim->max_head ? lim->max_head : len;
    const unsigned char *b = (const unsigned char *)buf;
    int rc = parse_head(st, b, end, req, lim, cap);
    if (rc == 0 && end < len) rc = -431;
    if (rc <= 0) req->num_headers = cap_in; /* the caller retries with the same req */
    if (rc != 0) st->state = HS_FRESH;
    return rc;
}

int gp_http_parse_request(const char *buf, size_t len, gp_http_request *req,
                          const gp_http_limits *lim)
{
    gp_http_head_state st;
    st.state = HS_FRESH;
    st.scanned = 0;
    return gp_http_parse_head(&st, buf, len, req, lim);
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

/* Fields a sender must not put in a trailer section, because a recipient needs
 * them before the content (RFC 9110 6.5.1): message framing and connection
 * control, routing, request modifiers (controls, conditionals, range,
 * negotiation), authentication, response control, and content format. A
 * proxy that merged them into the head would change what the request means. */
static const char *const forbidden_trailers[] = {
    "content-length",
    "transfer-encoding",
    "trailer",
    "connection",
    "keep-alive",
    "upgrade",
    "proxy-connection",
    "te",
    "host",
    "max-forwards",
    "cache-control",
    "expect",
    "pragma",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "authorization",
    "proxy-authorization",
    "www-authenticate",
    "proxy-authenticate",
    "age",
    "expires",
    "location",
    "retry-after",
    "vary",
    "content-encoding",
    "content-type",
    "content-range",
    NULL,
};

static bool forbidden_trailer(const char *name, size_t n)
{
    for (const char *const *f = forbidden_trailers; *f; f++)
        if (strlen(*f) == n && memcmp(*f, name, n) == 0) return true;
    return false;
}

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
            if (c == '\r') {
                st = CS_FINAL_LF;
            } else if (cls[c] & C_TOK) {
                st = CS_TR_NAME;
                d->name_len = 1;
                d->name[0] = (char)lower(c);
            } else /* obs-fold, empty name, bare LF, controls */ {
                goto fail;
            }
            break;
        case CS_TR_NAME:
            if (c == ':') {
                if (d->name_len <= sizeof d->name && forbidden_trailer(d->name, d->name_len))
                    goto fail;
                st = CS_TR_VALUE;
            } else if (!(cls[c] & C_TOK)) {
                goto fail;
            } else if (d->name_len <= sizeof d->name) {
                if (d->name_len < sizeof d->name) d->name[d->name_len] = (char)lower(c);
                d->name_len++; /* sizeof + 1: too long to be one we refuse */
            }
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
    case 416: return "Range Not Satisfiable";
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
