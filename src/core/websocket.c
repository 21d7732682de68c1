/* websocket: RFC 6455 handshake, frame decoder/encoder and UTF-8 validation.
 * See websocket.h for the contract. */
#include "core/websocket.h"

#include <string.h>

/* ---- UTF-8 -------------------------------------------------------------------
 * States beyond ACCEPT/REJECT name what the next byte must be. */
enum {
    U_NEED1 = 2, /* one more continuation byte 80..BF */
    U_NEED2,     /* two more */
    U_NEED3,     /* three more */
    U_E0,        /* after E0: A0..BF (no overlong 3-byte form), then one more */
    U_ED,        /* after ED: 80..9F (no surrogates D800..DFFF), then one more */
    U_F0,        /* after F0: 90..BF (no overlong 4-byte form), then two more */
    U_F4,        /* after F4: 80..8F (nothing above U+10FFFF), then two more */
};

size_t gp_utf8_feed(gp_utf8_state *st, const uint8_t *s, size_t n)
{
    unsigned q = st->state;
    size_t i = 0;
    if (q == GP_UTF8_REJECT) return 0;
    while (i < n) {
        uint8_t c;
        if (q == GP_UTF8_ACCEPT) {
            /* ASCII runs eight bytes at a time */
            while (n - i >= 8) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & 0x8080808080808080ull) break;
                i += 8;
            }
            if (i == n) break;
            c = s[i];
            if (c < 0x80) q = GP_UTF8_ACCEPT;
            else if (c >= 0xC2 && c <= 0xDF) q = U_NEED1;
            else if (c == 0xE0) q = U_E0;
            else if (c == 0xED) q = U_ED;
            else if (c >= 0xE1 && c <= 0xEF) q = U_NEED2;
            else if (c == 0xF0) q = U_F0;
            else if (c >= 0xF1 && c <= 0xF3) q = U_NEED3;
            else if (c == 0xF4) q = U_F4;
            else goto reject; /* 80..BF stray continuation, C0/C1 overlong, F5..FF */
            i++;
            continue;
        }
        c = s[i];
        switch (q) {
        case U_NEED1:
        case U_NEED2:
        case U_NEED3:
            if ((c & 0xC0) != 0x80) goto reject;
            q = q == U_NEED1 ? GP_UTF8_ACCEPT : q == U_NEED2 ? U_NEED1 : U_NEED2;
            break;
        case U_E0:
            if (c < 0xA0 || c > 0xBF) goto reject;
            q = U_NEED1;
            break;
        case U_ED:
            if (c < 0x80 || c > 0x9F) goto reject;
            q = U_NEED1;
            break;
        case U_F0:
            if (c < 0x90 || c > 0xBF) goto reject;
            q = U_NEED2;
            break;
        case U_F4:
            if (c < 0x80 || c > 0x8F) goto reject;
            q = U_NEED2;
            break;
        default: goto reject;
        }
        i++;
    }
    st->state = (uint8_t)q;
    return n;
reject:
    st->state = GP_UTF8_REJECT;
    return i;
}

bool gp_utf8_complete(const gp_utf8_state *st)
{
    return st->state == GP_UTF8_ACCEPT;
}

bool gp_utf8_valid(const uint8_t *s, size_t n)
{
    gp_utf8_state st = {0};
    return gp_utf8_feed(&st, s, n) == n && gp_utf8_complete(&st);
}

/* ---- SHA-1 (FIPS 180-4) and base64 -------------------------------------------- */

typedef struct {
    uint32_t h[5];
    uint64_t total; /* bytes fed */
    uint8_t blk[64];
    size_t fill;
} sha1_ctx;

static uint32_t rol32(uint32_t x, unsigned r)
{
    return (x << r) | (x >> (32 - r));
}

static void sha1_init(sha1_ctx *c)
{
    c->h[0] = 0x67452301u;
    c->h[1] = 0xEFCDAB89u;
    c->h[2] = 0x98BADCFEu;
    c->h[3] = 0x10325476u;
    c->h[4] = 0xC3D2E1F0u;
    c->total = 0;
    c->fill = 0;
}

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
    uint32_t w[80];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    for (int t = 16; t < 80; t++) w[t] = rol32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d); /* Ch */
            k = 0x5A827999u;
        } else if (t < 40) {
            f = b ^ c ^ d; /* Parity */
            k = 0x6ED9EBA1u;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d); /* Maj */
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6u;
        }
        uint32_t tmp = rol32(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1_update(sha1_ctx *c, const void *data, size_t n)
{
    const uint8_t *p = data;
    c->total += n;
    if (c->fill) {
        size_t take = 64 - c->fill < n ? 64 - c->fill : n;
        memcpy(c->blk + c->fill, p, take);
        c->fill += take;
        p += take;
        n -= take;
        if (c->fill < 64) return;
        sha1_block(c->h, c->blk);
        c->fill = 0;
    }
    for (; n >= 64; p += 64, n -= 64) sha1_block(c->h, p);
    memcpy(c->blk, p, n);
    c->fill = n;
}

static void sha1_final(sha1_ctx *c, uint8_t out[20])
{
    uint64_t bits = c->total * 8;
    c->blk[c->fill++] = 0x80;
    if (c->fill > 56) {
        memset(c->blk + c->fill, 0, 64 - c->fill);
        sha1_block(c->h, c->blk);
        c->fill = 0;
    }
    memset(c->blk + c->fill, 0, 56 - c->fill);
    for (int i = 0; i < 8; i++) c->blk[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_block(c->h, c->blk);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encodes n bytes; writes 4*ceil(n/3) characters and a NUL. */
static void base64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? B64[v & 63] : '=';
    }
    out[o] = '\0';
}

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* ---- handshake ------------------------------------------------------------------- */

int gp_ws_accept_key(const char *client_key, size_t len, char out[29])
{
    /* 16 bytes encode as 22 characters and "==" (the last character's low four bits
     * are padding; like most servers we do not insist that they are zero). */
    if (!client_key || len != 24 || client_key[22] != '=' || client_key[23] != '=') return -1;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64(client_key[i])) return -1;
    sha1_ctx c;
    uint8_t dig[20];
    sha1_init(&c);
    sha1_update(&c, client_key, len);
    sha1_update(&c, GP_WS_GUID, sizeof GP_WS_GUID - 1);
    sha1_final(&c, dig);
    base64_encode(dig, 20, out);
    return 0;
}

static char lower_ascii(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

bool gp_ws_has_token(const char *s, size_t n, const char *lower)
{
    size_t tl = strlen(lower);
    size_t i = 0;
    if (!s) return false;
    while (i <= n) {
        size_t start = i;
        while (i < n && s[i] != ',') i++;
        size_t a = start, b = i;
        while (a < b && is_ows(s[a])) a++;
        while (b > a && is_ows(s[b - 1])) b--;
        if (b - a == tl) {
            size_t k = 0;
            while (k < tl && lower_ascii(s[a + k]) == lower[k]) k++;
            if (k == tl) return true;
        }
        i++; /* past the comma (or past the end) */
    }
    return false;
}

static bool is_tchar(char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int gp_ws_split_protocols(const char *s, size_t n, gp_ws_token *out, size_t cap)
{
    int count = 0;
    size_t i = 0;
    if (!s) return 0;
    while (i <= n) {
        size_t start = i;
        while (i < n && s[i] != ',') i++;
        size_t a = start, b = i;
        while (a < b && is_ows(s[a])) a++;
        while (b > a && is_ows(s[b - 1])) b--;
        if (b > a) {
            for (size_t k = a; k < b; k++)
                if (!is_tchar(s[k])) return -1;
            if ((size_t)count < cap) {
                out[count].ptr = s + a;
                out[count].len = b - a;
            }
            count++;
        }
        i++;
    }
    return count;
}

int gp_ws_check_handshake(const gp_ws_handshake *h, char accept[29])
{
    if (!h->method || h->method_len != 3 || memcmp(h->method, "GET", 3) != 0) return 400;
    if (h->version_minor != 1) return 400;
    if (!gp_ws_has_token(h->upgrade, h->upgrade_len, "websocket")) return 400;
    if (!gp_ws_has_token(h->connection, h->connection_len, "upgrade")) return 400;
    if (!h->version) return 400;
    if (h->version_len != 2 || memcmp(h->version, "13", 2) != 0) return 426;
    if (h->protocol && gp_ws_split_protocols(h->protocol, h->protocol_len, NULL, 0) < 0) return 400;
    if (gp_ws_accept_key(h->key, h->key_len, accept) != 0) return 400;
    return 0;
}

/* ---- frame decoder ----------------------------------------------------------------- */

enum { ST_HEADER = 0, ST_DATA, ST_CLOSED, ST_ERROR };

bool gp_ws_close_code_valid(unsigned code)
{
    if (code >= 3000 && code <= 4999) return true;
    if (code >= 1000 && code <= 1003) return true;
    return code >= 1007 && code <= 1014;
}

/* XORs d[0..n) with the mask, starting at mask byte `off`; its own inverse. */
static void unmask(uint8_t *d, size_t n, const uint8_t m[4], unsigned off)
{
    uint8_t km[8];
    uint64_t k;
    size_t i = 0;
    for (int j = 0; j < 8; j++) km[j] = m[(off + (unsigned)j) & 3];
    memcpy(&k, km, 8);
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, d + i, 8);
        w ^= k;
        memcpy(d + i, &w, 8);
    }
    for (; i < n; i++) d[i] ^= km[i & 7];
}

static int ws_fail(gp_ws_parser *p, gp_ws_event *ev, size_t *used, size_t pos, uint16_t code)
{
    p->state = ST_ERROR;
    p->error = code;
    ev->type = GP_WS_EV_ERROR;
    ev->code = code;
    *used = pos;
    return GP_WS_EV_ERROR;
}

static void end_message(gp_ws_parser *p)
{
    p->msg_op = 0;
    p->msg_len = 0;
    p->utf8.state = GP_UTF8_ACCEPT;
}

/* A whole, unmasked control frame at pl[0..n): fills ev or fails. */
static int control(gp_ws_parser *p, int op, uint8_t *pl, size_t n, gp_ws_event *ev)
{
    ev->data = pl;
    ev->len = n;
    if (op == GP_WS_OP_PING) return ev->type = GP_WS_EV_PING;
    if (op == GP_WS_OP_PONG) return ev->type = GP_WS_EV_PONG;
    /* close */
    if (n == 0) {
        ev->code = GP_WS_CLOSE_NO_STATUS;
    } else if (n == 1) {
        return -GP_WS_CLOSE_PROTOCOL;
    } else {
        unsigned code = (unsigned)pl[0] << 8 | pl[1];
        if (!gp_ws_close_code_valid(code)) return -GP_WS_CLOSE_PROTOCOL;
        if (!gp_utf8_valid(pl + 2, n - 2)) return -GP_WS_CLOSE_BAD_DATA;
        ev->code = (uint16_t)code;
        ev->data = pl + 2;
        ev->len = n - 2;
    }
    p->state = ST_CLOSED;
    return ev->type = GP_WS_EV_CLOSE;
}

int gp_ws_parse(gp_ws_parser *p, uint8_t *buf, size_t len, size_t *used, gp_ws_event *ev)
{
    size_t pos = 0;
    memset(ev, 0, sizeof *ev);
    for (;;) {
        if (p->state == ST_ERROR) return ws_fail(p, ev, used, pos, p->error);
        if (p->state == ST_CLOSED) {
            *used = len; /* nothing may follow a close frame: discard */
            return ev->type = GP_WS_EV_NEED_MORE;
        }
        if (p->state == ST_HEADER) {
            const uint8_t *h = buf + pos;
            size_t avail = len - pos;
            if (avail < 2) break;
            bool fin = h[0] & 0x80;
            int op = h[0] & 0x0F;
            uint64_t plen = h[1] & 0x7F;
            if (h[0] & 0x70) return ws_fail(p, ev, used, pos, GP_WS_CLOSE_PROTOCOL); /* RSV1-3 */
            if (!(h[1] & 0x80))
                return ws_fail(p, ev, used, pos, GP_WS_CLOSE_PROTOCOL); /* unmasked */
            switch (op) {
            case GP_WS_OP_CONT:
                if (!p->msg_op) return ws_fail(p, ev, used, pos, GP_WS_CLOSE_PROTOCOL);
                break;
            case GP_WS_OP_TEXT:
            case GP_WS_OP_BINARY:
                if (p->msg_op) return ws_fail(p, ev, used, pos, GP_WS_CLOSE_PROTOCOL);
                break;
            case GP_WS_OP_CLOSE:
            case GP_WS_OP_PING:
            case GP_WS_OP_PONG:
                if (!fin || plen > 125) return ws_fail(p, ev, used, pos, GP_WS_CLOSE_PROTOCOL);
                break;
            default: return ws_fail(p, ev, used, pos, GP_WS_CLOSE_PROTOCOL);
            }
            size_t hl = 2;
            if (plen == 126) {
                if (avail < 4) break;
                plen = (uint64_t)h[2] << 8 | h[3];
                hl = 4;
            } else if (plen == 127) {
                if (avail < 10) break;
                if (h[2] & 0x80) return ws_fail(p, ev, used, pos, GP_WS_CLOSE_PROTOCOL);
                plen = 0;
                for (int i = 0; i < 8; i++) plen = plen << 8 | h[2 + i];
                hl = 10;
            }
            /* Non-minimal length encodings are accepted (RFC 6455 5.2 asks senders
             * for the minimal one but gives receivers no rule). */
            bool is_control = op & 0x8;
            if (!is_control && p->max_message) {
                uint64_t before = op == GP_WS_OP_CONT ? p->msg_len : 0;
                if (plen > p->max_message - before)
                    return ws_fail(p, ev, used, pos, GP_WS_CLOSE_TOO_BIG);
            }
            if (avail < hl + 4) break;
            const uint8_t *mk = h + hl;
            hl += 4;
            if (is_control) {
                if (avail - hl < plen) break; /* control frames are decoded whole */
                uint8_t *pl = buf + pos + hl;
                unmask(pl, (size_t)plen, mk, 0);
                int r = control(p, op, pl, (size_t)plen, ev);
                if (r < 0) {
                    unmask(pl, (size_t)plen, mk, 0); /* leave the unconsumed bytes as they were */
                    return ws_fail(p, ev, used, pos, (uint16_t)-r);
                }
                *used = pos + hl + (size_t)plen;
                return r;
            }
            memcpy(p->mask, mk, 4);
            pos += hl;
            if (op != GP_WS_OP_CONT) {
                end_message(p);
                p->msg_op = (uint8_t)op;
            }
            p->msg_len += plen;
            p->remaining = plen;
            p->frame_fin = fin;
            p->mask_off = 0;
            if (plen == 0) {
                if (!fin) continue; /* an empty fragment: nothing to report */
                if (p->msg_op == GP_WS_OP_TEXT && !gp_utf8_complete(&p->utf8))
                    return ws_fail(p, ev, used, pos - hl, GP_WS_CLOSE_BAD_DATA);
                ev->type = p->msg_op;
                ev->data = buf + pos;
                ev->len = 0;
                ev->fin = true;
                end_message(p);
                *used = pos;
                return ev->type;
            }
            p->state = ST_DATA;
        }
        /* ST_DATA: stream what is there of the payload */
        size_t avail = len - pos;
        if (avail == 0) break;
        size_t n = avail < p->remaining ? avail : (size_t)p->remaining;
        uint8_t *d = buf + pos;
        bool last = n == p->remaining && p->frame_fin;
        bool bad = false;
        unmask(d, n, p->mask, p->mask_off);
        if (p->msg_op == GP_WS_OP_TEXT) {
            size_t k = gp_utf8_feed(&p->utf8, d, n);
            if (k == n && last && !gp_utf8_complete(&p->utf8))
                k = n - 1; /* the message ends inside a code point: its last byte is wrong */
            if (k < n) {
                unmask(d + k, n - k, p->mask, (p->mask_off + (unsigned)k) & 3);
                n = k;
                bad = true;
            }
        }
        if (bad && n == 0) return ws_fail(p, ev, used, pos, GP_WS_CLOSE_BAD_DATA);
        p->remaining -= n;
        p->mask_off = (uint8_t)((p->mask_off + n) & 3);
        ev->type = p->msg_op;
        ev->data = d;
        ev->len = n;
        ev->fin = last && !bad;
        *used = pos + n;
        if (bad) {
            /* deliver the valid prefix now, the error on the next call */
            p->state = ST_ERROR;
            p->error = GP_WS_CLOSE_BAD_DATA;
        } else if (p->remaining == 0) {
            p->state = ST_HEADER;
            if (p->frame_fin) end_message(p);
        }
        return ev->type;
    }
    *used = pos;
    return ev->type = GP_WS_EV_NEED_MORE;
}

/* ---- frame encoder ------------------------------------------------------------------ */

size_t gp_ws_frame_header(uint8_t out[10], int opcode, bool fin, uint64_t payload_len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (payload_len < 126) {
        out[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    return 10;
}

size_t gp_ws_close_frame(uint8_t out[127], uint16_t code, const char *reason, size_t reason_len)
{
    out[0] = 0x80 | GP_WS_OP_CLOSE;
    if (code == 0 || code == GP_WS_CLOSE_NO_STATUS) {
        out[1] = 0;
        return 2;
    }
    if (!reason) reason_len = 0;
    if (reason_len > 123) {
        reason_len = 123;
        /* do not cut a code point: back up to the start of the one that crosses */
        while (reason_len > 0 && ((uint8_t)reason[reason_len] & 0xC0) == 0x80) reason_len--;
    }
    out[1] = (uint8_t)(2 + reason_len);
    out[2] = (uint8_t)(code >> 8);
    out[3] = (uint8_t)code;
    if (reason_len) memcpy(out + 4, reason, reason_len);
    return 4 + reason_len;
}

size_t gp_ws_control_frame(uint8_t out[127], int opcode, const uint8_t *payload, size_t payload_len)
{
    if ((opcode != GP_WS_OP_PING && opcode != GP_WS_OP_PONG) || payload_len > 125) return 0;
    out[0] = (uint8_t)(0x80 | opcode);
    out[1] = (uint8_t)payload_len;
    if (payload_len) memcpy(out + 2, payload, payload_len);
    return 2 + payload_len;
}
