/* forwarded: whom to believe about the client, and what they said.
 *
 * Owns the --forwarded-allow-ips list (IP addresses, CIDR networks, "*",
 * "unix") and the reading of the proxy headers a trusted peer sends:
 * X-Forwarded-For/-Proto/-Host/-Port/-Prefix and RFC 7239 Forwarded. Pure
 * functions over caller-owned bytes: no allocation, no I/O, no Python. The
 * result points into the request's header values or into its own buffers,
 * and the bridge applies it to the environ or scope.
 *
 * Rules (README "Behind a proxy"):
 * - Only a peer in the list is believed; from anyone else nothing changes.
 * - The client is the right-most hop of X-Forwarded-For (or of Forwarded's
 *   for=) that is not in the list; when every hop is, the left-most one.
 * - When any X-Forwarded-* header is present, Forwarded is ignored: proxies
 *   that set X-Forwarded-* (nginx, HAProxy, Traefik, ALB) pass a client's
 *   own Forwarded through untouched, so it could be forged.
 * - -Proto, -Host, -Port and -Prefix take their right-most value (what the
 *   nearest proxy said). A malformed value is ignored, alone. */
#ifndef GP_FORWARDED_H
#define GP_FORWARDED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/http_parser.h"

#define GP_FWD_MAX_NETS 32

typedef struct {
    uint8_t addr[16]; /* IPv6, or IPv4 as ::ffff:a.b.c.d */
    uint8_t bits;     /* prefix length over those 128 bits */
} gp_fwd_net;

typedef struct {
    bool all;        /* "*" */
    bool unix_peers; /* "unix": peers on a UNIX socket */
    int num_nets;
    gp_fwd_net nets[GP_FWD_MAX_NETS];
} gp_fwd_trust;

/* Parses "127.0.0.1,::1,10.0.0.0/8,unix" (commas, optional spaces) into t.
 * Returns 0, or -1 with a one-line reason in err. */
int gp_fwd_trust_parse(gp_fwd_trust *t, const char *spec, char *err, size_t errlen);

/* Whether a connected peer is in the list (AF_INET, AF_INET6, AF_UNIX). */
bool gp_fwd_trusts(const gp_fwd_trust *t, const struct sockaddr *sa);

/* Parses an IP literal (IPv4 dotted, IPv6, no zone) into 16 bytes (IPv4
 * mapped). True when it is one. */
bool gp_fwd_ip_parse(const char *s, size_t n, uint8_t out[16]);

enum {
    GP_FWD_FOR = 1,     /* client, client_port */
    GP_FWD_PROTO = 2,   /* secure */
    GP_FWD_HOST = 4,    /* host, host_len: the Host the app should see */
    GP_FWD_PORT = 8,    /* port: SERVER_PORT */
    GP_FWD_PREFIX = 16, /* prefix, prefix_len: where the proxy mounts the app */
};

#define GP_FWD_HOST_MAX 256

typedef struct {
    unsigned set;     /* GP_FWD_* bits: what applies */
    char client[48];  /* the client's IP as text (inet_ntop's canonical form) */
    int client_port;  /* 0 when the header did not say */
    bool secure;      /* https / wss */
    const char *host; /* into a header value, or into hostbuf */
    size_t host_len;
    unsigned port;
    const char *prefix; /* into a header value; trailing '/' trimmed, may be empty */
    size_t prefix_len;
    char hostbuf[GP_FWD_HOST_MAX];
} gp_fwd;

/* Reads the proxy headers among h[0..n) of a request from a trusted peer
 * (the caller checked gp_fwd_trusts). host is the request's own Host (NULL
 * when none): with X-Forwarded-Port and no forwarded host, it gets the port.
 * Returns true when anything applies (out->set != 0). Cheap when no proxy
 * header is present: one look at each name's length and first byte. */
bool gp_fwd_resolve(const gp_fwd_trust *t, const gp_http_header *h, size_t n, const char *host,
                    size_t host_len, gp_fwd *out);

#endif
