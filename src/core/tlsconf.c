/* tlsconf: the per-bind TLS syntax, the settings each listener gets, and the
 * master's bundles for them. Reads files only through core/tls. */
#include "core/tlsconf.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/listen.h"

/* core/tls, wherever this process has it: linked in (the bridge, so every
 * worker; the unit tests), else in a bridge the master loaded (--preload,
 * RTLD_GLOBAL: its workers must use that copy, whose ALPN setting is theirs),
 * else, in the master only, from gallop-tls.so. The master binary leaves
 * core/tls out: a weak reference pulls no object from the archive. */
#pragma weak gp_tls_bundle
#pragma weak gp_tls_ctx_from_bundle
#pragma weak gp_tls_ctx_free

typedef int bundle_fn(const gp_tls_opts *o, char *err, size_t errlen);
typedef gp_tls_ctx *ctx_from_bundle_fn(int bundle_fd, const gp_tls_opts *o, char *err,
                                       size_t errlen);
typedef void ctx_free_fn(gp_tls_ctx *ctx);

static char library[4096];
static void *library_handle; /* kept open: HUP makes bundles again */

void gp_tlsconf_set_library(const char *path)
{
    snprintf(library, sizeof library, "%s", path);
}

/* linked (the weak reference's value) or core/tls's function name, found as
 * above; NULL with a one-line reason in err. */
static void *tls_fn(void *linked, const char *name, char *err, size_t errlen)
{
    void *fn = linked ? linked : dlsym(RTLD_DEFAULT, name);
    if (fn) return fn;
    if (!library_handle && library[0]) library_handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (library_handle && (fn = dlsym(library_handle, name))) return fn;
    /* dlerror names the file and why it would not load */
    snprintf(err, errlen, "TLS needs gallop-tls.so beside the gallop binary: %s",
             library[0] ? dlerror() : "its place is not known");
    return NULL;
}

int gp_tlsconf_parse_version(const char *s)
{
    static const struct {
        const char *name;
        int v;
    } names[] = {
        {"TLSv1.2", 0x0303}, {"TLSv1_2", 0x0303}, {"TLS1.2", 0x0303},    {"1.2", 0x0303},
        {"TLSv1.3", 0x0304}, {"TLSv1_3", 0x0304}, {"TLS1.3", 0x0304},    {"1.3", 0x0304},
        /* Python's ssl.PROTOCOL_* (gunicorn's --ssl-version): negotiate the best */
        {"TLS", 0x0303},     {"SSLv23", 0x0303},  {"TLS_SERVER", 0x0303}, {"2", 0x0303},
        {"17", 0x0303},      {"5", 0x0303},
    };
    if (!s) return -1;
    if (strncasecmp(s, "PROTOCOL_", 9) == 0) s += 9;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(s, names[i].name) == 0) return names[i].v;
    return -1;
}

int gp_tlsconf_parse_cert_reqs(const char *s)
{
    static const char *const names[3][3] = {{"0", "none", "CERT_NONE"},
                                            {"1", "optional", "CERT_OPTIONAL"},
                                            {"2", "required", "CERT_REQUIRED"}};
    for (int v = 0; s && v < 3; v++)
        for (int k = 0; k < 3; k++)
            if (strcasecmp(s, names[v][k]) == 0) return v;
    return -1;
}

/* The value for key, or NULL: "certfile=x" -> "x". */
static const char *value_of(const char *opt, const char *key)
{
    size_t k = strlen(key);
    if (strncmp(opt, key, k) == 0 && opt[k] == '=') return opt + k + 1;
    return NULL;
}

static int bind_option(char *opt, gp_tls_opts *o, signed char *mode, char *err, size_t errlen)
{
    const char *v;
    for (char *p = opt; *p && *p != '='; p++)
        if (*p == '_') *p = '-'; /* keyfile_password, as the config file spells it */
    if (strcmp(opt, "plain") == 0) {
        *mode = GP_TLSCONF_PLAIN;
        return 0;
    }
    if ((v = value_of(opt, "certfile"))) o->certfile = v;
    else if ((v = value_of(opt, "keyfile"))) o->keyfile = v;
    else if ((v = value_of(opt, "keyfile-password"))) o->password = v;
    else if ((v = value_of(opt, "ca-certs"))) o->ca_certs = v;
    else if ((v = value_of(opt, "ciphers"))) o->ciphers = v;
    else if ((v = value_of(opt, "cert-reqs"))) {
        if ((o->cert_reqs = gp_tlsconf_parse_cert_reqs(v)) < 0) {
            snprintf(err, errlen, "invalid cert-reqs '%s' (0, 1 or 2: none, optional, required)",
                     v);
            return -1;
        }
    } else if ((v = value_of(opt, "ssl-min-version")) || (v = value_of(opt, "ssl-version"))) {
        if ((o->min_version = gp_tlsconf_parse_version(v)) < 0) {
            snprintf(err, errlen, "invalid ssl-min-version '%s' (TLSv1.2 or TLSv1.3)", v);
            return -1;
        }
    } else {
        snprintf(err, errlen,
                 "unknown bind option '%s' (certfile, keyfile, keyfile-password, ca-certs, "
                 "cert-reqs, ciphers, ssl-min-version, plain)",
                 opt);
        return -1;
    }
    if (*mode != GP_TLSCONF_PLAIN) *mode = GP_TLSCONF_OWN;
    return 0;
}

int gp_tlsconf_parse_bind(const char *arg, const char **addr, gp_tls_opts *own,
                          signed char *mode, char *err, size_t errlen)
{
    *own = (gp_tls_opts){.cert_reqs = -1};
    *mode = GP_TLSCONF_INHERIT;
    *addr = arg;
    const char *comma = strchr(arg, ',');
    if (!comma) return 0;
    char *copy = strdup(arg); /* kept: own's strings point into it */
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    copy[comma - arg] = 0;
    *addr = copy;
    char *save = NULL;
    for (char *o = strtok_r(copy + (comma - arg) + 1, ",", &save); o; o = strtok_r(NULL, ",", &save))
        if (bind_option(o, own, mode, err, errlen) < 0) {
            char why[300];
            snprintf(why, sizeof why, "%s", err);
            snprintf(err, errlen, "invalid --bind '%s': %s", arg, why);
            return -1;
        }
    if (*mode == GP_TLSCONF_PLAIN && (own->certfile || own->keyfile || own->ca_certs)) {
        snprintf(err, errlen, "invalid --bind '%s': plain and TLS settings together", arg);
        return -1;
    }
    return 0;
}

static gp_tls_opts merged(const gp_tls_opts *all, const gp_tls_opts *own)
{
    gp_tls_opts o = *all;
    if (own->certfile) {
        /* a bind's own certificate comes with its own key (or none: in it) */
        o.certfile = own->certfile;
        o.keyfile = own->keyfile;
        o.password = own->password ? own->password : all->password;
    } else if (own->keyfile) {
        o.keyfile = own->keyfile;
    }
    if (own->password) o.password = own->password;
    if (own->ca_certs) o.ca_certs = own->ca_certs;
    if (own->ciphers) o.ciphers = own->ciphers;
    if (own->cert_reqs >= 0) o.cert_reqs = own->cert_reqs;
    if (own->min_version) o.min_version = own->min_version;
    return o;
}

bool gp_tlsconf_for(const gp_config *cfg, const char *addr_text, gp_tls_opts *out)
{
    for (int i = 0; i < cfg->num_binds; i++) {
        gp_addr a;
        char err[256];
        if (gp_addr_parse(cfg->binds[i], &a, err, sizeof err) < 0 || strcmp(a.text, addr_text))
            continue;
        if (cfg->bind_tls_mode[i] == GP_TLSCONF_PLAIN) return false;
        *out = merged(&cfg->tls, &cfg->bind_tls[i]);
        return out->certfile != NULL;
    }
    *out = cfg->tls;
    return cfg->tls.certfile != NULL;
}

int gp_tlsconf_check(const gp_tls_opts *o, char *err, size_t errlen)
{
    bundle_fn *make = tls_fn(gp_tls_bundle, "gp_tls_bundle", err, errlen);
    int fd = make ? make(o, err, errlen) : -1;
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

int gp_tlsconf_bundles(const gp_config *cfg, const gp_listener *ls, int n, int *fds, char *err,
                       size_t errlen)
{
    for (int i = 0; i < n; i++) fds[i] = -1;
    for (int i = 0; i < n; i++) {
        gp_tls_opts o;
        if (!gp_tlsconf_for(cfg, ls[i].addr.text, &o)) continue;
        char why[600];
        bundle_fn *make = tls_fn(gp_tls_bundle, "gp_tls_bundle", why, sizeof why);
        if (!make || (fds[i] = make(&o, why, sizeof why)) < 0) {
            snprintf(err, errlen, "%s: %s", ls[i].addr.text, why);
            for (int j = 0; j < i; j++)
                if (fds[j] >= 0) close(fds[j]);
            return -1;
        }
    }
    return 0;
}

void gp_tlsconf_install(gp_listener *ls, int n, const int *fds)
{
    for (int i = 0; i < n; i++) {
        if (ls[i].tls_fd > 0) close(ls[i].tls_fd);
        ls[i].tls_fd = fds[i];
    }
}

int gp_tlsconf_contexts(const gp_config *cfg, gp_listener *ls, int n, gp_tls_ctx **ctxs,
                        char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) ctxs[i] = NULL;
    for (int i = 0; i < n; i++) {
        gp_tls_opts o;
        if (ls[i].tls_fd <= 0 || !gp_tlsconf_for(cfg, ls[i].addr.text, &o)) continue;
        char why[600];
        ctx_from_bundle_fn *make =
            tls_fn(gp_tls_ctx_from_bundle, "gp_tls_ctx_from_bundle", why, sizeof why);
        ctx_free_fn *ctx_free = tls_fn(gp_tls_ctx_free, "gp_tls_ctx_free", why, sizeof why);
        if (!make || !ctx_free || !(ctxs[i] = make(ls[i].tls_fd, &o, why, sizeof why))) {
            snprintf(err, errlen, "%s: %s", ls[i].addr.text, why);
            for (int j = 0; j < i && ctx_free; j++) ctx_free(ctxs[j]);
            return -1;
        }
    }
    /* the worker holds its contexts: the bundles (key included) can go */
    for (int i = 0; i < n; i++)
        if (ls[i].tls_fd > 0) {
            close(ls[i].tls_fd);
            ls[i].tls_fd = -1;
        }
    return 0;
}
